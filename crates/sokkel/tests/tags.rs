//! Tags through the real binary: mail sent over SMTP to `sokkel mail serve` is
//! tagged by its X-Tags header, its plus addresses and `--tag` rules (or not,
//! with `--tags-disable`), and `sokkel mail tag | list --tag | show` change and
//! show the tags; mistakes are one clear line.
//!
//! Self-contained (its own small runner), so it does not depend on the shared
//! test kit while that is rewritten.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

const DEADLINE: Duration = Duration::from_secs(20);

fn sokkel() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sokkel"));
    // Nothing from the developer's environment may change what is tested.
    for (name, _) in std::env::vars() {
        if name.starts_with("SOKKEL_") {
            command.env_remove(name);
        }
    }
    command
}

/// A running `sokkel mail serve`, killed when dropped.
struct Server {
    child: Child,
    smtp: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(db: &Path, extra: &[&str]) -> Server {
    let mut child = sokkel()
        .args([
            "mail",
            "serve",
            "--smtp",
            "127.0.0.1:0",
            "--no-http",
            "--no-pop3",
        ])
        .args(["--hostname", "test.example", "--db"])
        .arg(db)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut server = Server {
        child,
        smtp: "0.0.0.0:0".parse().unwrap(),
    };
    let deadline = Instant::now() + DEADLINE;
    loop {
        let line = received
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("sokkel mail serve announces its store within 20 s");
        if let Some(addr) = line.strip_prefix("listening on smtp ") {
            server.smtp = addr.parse().unwrap();
        }
        if line.starts_with("mail is kept in ") {
            return server;
        }
    }
}

/// Sends one message over SMTP and waits for its 250.
fn send(addr: SocketAddr, rcpt: &str, message: &str) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut expect = |code: &str| loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(line.starts_with(code), "wanted {code}, got {line:?}");
        if line.as_bytes().get(3) == Some(&b' ') {
            break;
        }
    };
    expect("220");
    for (command, code) in [
        ("EHLO client.example".to_string(), "250"),
        ("MAIL FROM:<sender@example.com>".to_string(), "250"),
        (format!("RCPT TO:<{rcpt}>"), "250"),
        ("DATA".to_string(), "354"),
    ] {
        stream
            .write_all(format!("{command}\r\n").as_bytes())
            .unwrap();
        expect(code);
    }
    stream
        .write_all(format!("{}\r\n.\r\n", message.replace('\n', "\r\n")).as_bytes())
        .unwrap();
    expect("250");
    stream.write_all(b"QUIT\r\n").unwrap();
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
}

fn cli(db: &Path, args: &[&str]) -> Output {
    let output = sokkel()
        .arg("mail")
        .args(args)
        .arg("--db")
        .arg(db)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&output.stderr).contains("panicked"),
        "{output:?}"
    );
    output
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `(id, tags)` of the newest messages, from `mail list --json`.
fn listed(db: &Path, extra: &[&str]) -> Vec<(u64, Vec<String>)> {
    let mut args = vec!["list", "--json"];
    args.extend(extra);
    let output = cli(db, &args);
    assert!(output.status.success(), "{output:?}");
    let rows: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    rows.iter()
        .map(|row| {
            let tags = row["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().to_string())
                .collect();
            (row["id"].as_u64().unwrap(), tags)
        })
        .collect()
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(ToString::to_string).collect()
}

#[test]
fn mail_is_tagged_on_arrival_and_by_the_cli() {
    let dir = TempDir::new().unwrap();
    let db = dir.path().join("mail.db");
    let server = serve(&db, &["--tag", "invoices=subject:invoice"]);
    send(
        server.smtp,
        "morty+Signup@example.com",
        "From: rick@example.com\nTo: morty+Signup@example.com\nX-Tags: news, urgent!\nSubject: hello\n\nhi",
    );
    send(
        server.smtp,
        "beth@example.com",
        "From: rick@example.com\nTo: beth@example.com\nSubject: Your invoice\n\npay",
    );
    // Header and address tags come with the message; the rule's once the
    // server has indexed it.
    let want = vec![
        (2, strings(&["invoices"])),
        (1, strings(&["news", "Signup", "urgent"])),
    ];
    let deadline = Instant::now() + DEADLINE;
    while listed(&db, &[]) != want {
        assert!(Instant::now() < deadline, "{:?}", listed(&db, &[]));
        std::thread::sleep(Duration::from_millis(100));
    }

    let output = cli(
        &db,
        &["tag", "1", "2", "--add", "to do", "--remove", "news"],
    );
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        stdout(&output),
        "1: Signup, to do, urgent\n2: invoices, to do\n"
    );
    assert_eq!(listed(&db, &["--tag", "TO DO"]).len(), 2);
    assert_eq!(
        listed(&db, &["--tag", "signup"]),
        [(1, strings(&["Signup", "to do", "urgent"]))]
    );
    let none = cli(&db, &["list", "--tag", "nothing"]);
    assert!(
        stdout(&none).starts_with("no messages tagged \"nothing\""),
        "{none:?}"
    );

    let table = stdout(&cli(&db, &["list"]));
    assert!(table.contains("  [invoices, to do]\n"), "{table}");
    let show = stdout(&cli(&db, &["show", "1"]));
    assert!(
        show.contains("\nTags:     Signup, to do, urgent\n"),
        "{show}"
    );

    // A bad name is one line saying what is wrong, and changes nothing.
    let bad = cli(&db, &["tag", "1", "--add", "a;b"]);
    assert_eq!(bad.status.code(), Some(1), "{bad:?}");
    let line = stderr(&bad);
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(
        line.contains("';'") && line.contains("letters, digits"),
        "{line}"
    );
    let missing = cli(&db, &["tag", "99", "--add", "x"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("no message 99"), "{missing:?}");
    drop(server);
}

#[test]
fn tags_disable_turns_header_and_plus_tags_off() {
    let dir = TempDir::new().unwrap();
    let db = dir.path().join("mail.db");
    let server = serve(&db, &["--tags-disable", "plus-addresses,x-tags"]);
    send(
        server.smtp,
        "morty+signup@example.com",
        "From: rick@example.com\nTo: morty+signup@example.com\nX-Tags: news\nSubject: hello\n\nhi",
    );
    assert_eq!(listed(&db, &[]), [(1, Vec::new())]);
    drop(server);
}

#[test]
fn bad_tag_flags_are_one_clear_line() {
    let dir = TempDir::new().unwrap();
    let db = dir.path().join("mail.db");
    for (flag, value, wanted) in [
        ("--tag", "no-equals-sign", "NAME=SEARCH QUERY"),
        ("--tag", "a;b=subject:x", "';'"),
        ("--tag", "x=before:notadate", "before:"),
        ("--tags-disable", "smileys", "plus-addresses, x-tags"),
    ] {
        let output = sokkel()
            .args([
                "mail",
                "serve",
                "--no-http",
                "--no-pop3",
                "--smtp",
                "127.0.0.1:0",
                "--db",
            ])
            .arg(&db)
            .args([flag, value])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{flag} {value}: {text}");
        // clap's usage error: the first line names the flag, the value and why.
        let first = text.lines().next().unwrap();
        assert!(
            first.starts_with("error: invalid value") && first.contains(flag),
            "{text}"
        );
        assert!(text.contains(wanted), "{flag} {value}: {text}");
    }
}
