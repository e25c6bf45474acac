//! IMAP on `sokkel mail serve` (issue #13): the listeners the flags ask for,
//! announced like the others, their mistakes as one line, and a session that
//! hears of mail as it arrives and goes. What the sessions speak is tested
//! beside the IMAP crate and with real clients.

mod kit;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};

use kit::net::connect;
use kit::smtp::message;
use kit::{Catcher, sokkel};

/// One IMAP connection spoken to line by line (each read has the kit's
/// deadline).
struct Imap {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Imap {
    fn open(catcher: &Catcher) -> Imap {
        let writer = connect(catcher.imap_addr());
        let reader = BufReader::new(writer.try_clone().expect("clone the stream"));
        let mut imap = Imap { reader, writer };
        let greeting = imap.line();
        assert!(greeting.starts_with("* OK"), "greeting: {greeting:?}");
        imap
    }

    fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .expect("send a command");
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("a line in time");
        assert!(!line.is_empty(), "the server closed the connection");
        line.trim_end().to_string()
    }

    /// Sends `tag command` and returns every line up to the tagged one,
    /// which must be OK.
    fn run(&mut self, tag: &str, command: &str) -> Vec<String> {
        self.send(&format!("{tag} {command}"));
        let mut lines = Vec::new();
        loop {
            let line = self.line();
            let done = line.starts_with(&format!("{tag} "));
            lines.push(line);
            if done {
                break;
            }
        }
        let last = lines.last().expect("the tagged line");
        assert!(
            last.starts_with(&format!("{tag} OK")),
            "{command}: {lines:?}"
        );
        lines
    }
}

#[test]
fn imap_and_imaps_are_announced_and_no_imap_turns_them_off() {
    let catcher = Catcher::start();
    let addr = catcher.imap_addr();
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
    assert!(catcher.imaps.is_empty());

    let catcher = Catcher::with(&["--tls-self-signed", "--imaps", "127.0.0.1:0"]);
    assert_eq!(catcher.imaps.len(), 1, "{}", catcher.stdout.text());
    assert_eq!(catcher.imap.len(), 1, "IMAPS comes beside IMAP");

    let catcher = Catcher::with(&["--no-imap"]);
    assert!(catcher.imap.is_empty());
    assert!(
        !catcher.stdout.text().contains("imap"),
        "{}",
        catcher.stdout.text()
    );
}

#[test]
fn imaps_without_a_certificate_is_one_line() {
    let done = sokkel([
        "mail",
        "serve",
        "--ephemeral",
        "--smtp",
        "127.0.0.1:0",
        "--imaps",
        "127.0.0.1:0",
    ])
    .run();
    let line = done.one_error_line();
    assert!(line.contains("--imaps needs a certificate"), "{line}");
}

#[test]
fn an_imap_port_in_use_is_one_line_naming_imap_and_leaves_no_store() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = kit::tempdir();
    let db = dir.path().join("mail.db");
    let out = sokkel([
        "mail",
        "serve",
        "--no-http",
        "--smtp",
        "127.0.0.1:0",
        "--imap",
        &addr,
        "--db",
    ])
    .arg(&db)
    .run();
    let line = out.one_error_line();
    assert!(
        line.contains("already in use") && line.contains("--imap"),
        "{}",
        out.describe()
    );
    assert!(!db.exists(), "a failed start left a store behind");
}

/// A client that logged in and idles in the INBOX hears of mail the moment
/// SMTP stores it, and of a delete made by another process (the CLI).
#[test]
fn an_idling_login_hears_of_new_and_deleted_mail() {
    let catcher = Catcher::start();
    let mut imap = Imap::open(&catcher);
    imap.run("a1", "LOGIN morty pickle");
    let selected = imap.run("a2", "SELECT INBOX");
    assert!(selected.iter().any(|l| l == "* 0 EXISTS"), "{selected:?}");

    imap.send("a3 IDLE");
    let idling = imap.line();
    assert!(idling.starts_with('+'), "{idling}");
    let id = catcher.send(&message("over imap", "hello"));
    assert_eq!(imap.line(), "* 1 EXISTS");

    let deleted = catcher.cli(&["delete", &id.to_string()]);
    assert!(deleted.status.success(), "{}", deleted.describe());
    assert_eq!(imap.line(), "* 1 EXPUNGE", "another process's delete");
    imap.send("DONE");
    let done = imap.line();
    assert!(done.starts_with("a3 OK"), "{done}");
    imap.run("a4", "LOGOUT");
}

/// `--per-recipient` shows an IMAP login in its INBOX only the mail sent to
/// it, as it does POP3's.
#[test]
fn per_recipient_inboxes_hold_the_logins_own_mail() {
    let catcher = Catcher::with(&["--per-recipient"]);
    catcher.deliver(
        "a@example.test",
        &["morty@example.test"],
        &message("m", "m"),
    );
    catcher.deliver(
        "a@example.test",
        &["summer@example.test"],
        &message("s", "s"),
    );
    let mut imap = Imap::open(&catcher);
    imap.run("a1", "LOGIN morty x");
    let selected = imap.run("a2", "SELECT INBOX");
    assert!(selected.iter().any(|l| l == "* 1 EXISTS"), "{selected:?}");
    imap.run("a3", "LOGOUT");
}
