//! Where `sokkel mail serve` listens, as a new user meets it: a second catcher
//! started beside a first names every port that is taken and a command line that
//! starts, `:PORT` (Mailpit's form) listens on every address with a warning, and a
//! listen address that cannot be right is a usage error (exit 2) whose hint fits
//! the flag.

mod kit;

use std::net::SocketAddr;

use kit::net::free_tcp_port;
use kit::process::{ChildGuard, Lines, SOKKEL, sigterm, sokkel_command, spawn_collected};
use kit::smtp::{HOST, Smtp, message};
use kit::{Catcher, Finished, PROMPT, sokkel};

/// Splits a command line as a POSIX shell would, for the quoting sokkel uses:
/// words apart by spaces, single quotes around words that need them.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                in_word = true;
            }
            ' ' if !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// The command line after `intro` in `line`, as arguments for the binary it
/// names (which must be this one).
fn suggested_args(line: &str, intro: &str) -> Vec<String> {
    let (_, command) = line
        .split_once(intro)
        .unwrap_or_else(|| panic!("no {intro:?} in: {line}"));
    let words = shell_words(command);
    assert_eq!(
        words[0], SOKKEL,
        "the command names another program: {line}"
    );
    words[1..].to_vec()
}

/// Runs `args` as `sokkel` until it says where it keeps mail; returns its
/// guard (killed when dropped) and the addresses it announced per scheme.
fn start_suggested(args: &[String]) -> (ChildGuard, Vec<(String, SocketAddr)>, Lines) {
    let (process, stdout, stderr) = spawn_collected(
        sokkel_command().args(args),
        format!("sokkel {}", args.join(" ")),
    );
    let Some(lines) = stdout.wait_until(PROMPT, |lines| {
        lines.iter().any(|l| l.starts_with("mail is kept in "))
    }) else {
        panic!(
            "the suggested command did not start: sokkel {}\nstdout:\n{}\nstderr:\n{}",
            args.join(" "),
            stdout.text(),
            stderr.text()
        );
    };
    let announced = lines
        .iter()
        .filter_map(|l| l.strip_prefix("listening on "))
        .map(|rest| {
            let (scheme, addr) = rest.split_once(' ').expect("scheme and address");
            let addr = addr.trim_start_matches("http://").trim_end_matches('/');
            (scheme.to_owned(), addr.parse().expect("an address"))
        })
        .collect();
    (process, announced, stderr)
}

/// `mail serve` on exactly the ports `first` holds, with its own store unless
/// `same_store`.
fn second_serve(first: &Catcher, dir: &std::path::Path, same_store: bool) -> Finished {
    let db = if same_store {
        first.db.clone()
    } else {
        dir.join("second.db")
    };
    sokkel(["mail", "serve", "--hostname", HOST])
        .args(["--smtp", &first.addr().to_string()])
        .args(["--http", &first.http().to_string()])
        .args(["--pop3", &first.pop3[0].to_string()])
        .args(["--imap", &first.imap_addr().to_string()])
        .arg("--db")
        .arg(&db)
        .run()
}

#[test]
fn a_second_serve_names_every_busy_port_and_a_command_that_starts() {
    let first = Catcher::builder().http().start();
    let dir = kit::tempdir();
    let out = second_serve(&first, dir.path(), false);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    let line = out.one_error_line();
    for (flag, addr) in [
        ("--smtp", first.addr()),
        ("--http", first.http()),
        ("--pop3", first.pop3[0]),
        ("--imap", first.imap_addr()),
    ] {
        assert!(
            line.contains(&format!("{flag} {addr}")),
            "{flag} {addr} not named: {line}"
        );
    }
    assert!(line.contains("already in use"), "{line}");
    assert!(
        !dir.path().join("second.db").exists(),
        "a failed start left a store behind"
    );

    // The command it suggests starts, on other ports, keeping what was typed.
    let args = suggested_args(&line, "to run on free ports instead: ");
    assert!(
        args.windows(2).any(|w| w == ["--hostname", HOST]),
        "{args:?}"
    );
    let (_second, announced, _) = start_suggested(&args);
    let schemes: Vec<&str> = announced.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(schemes, ["smtp", "http", "pop3", "imap"], "{announced:?}");
    for (scheme, addr) in &announced {
        assert!(addr.ip().is_loopback(), "{scheme} {addr}");
        for taken in [first.addr(), first.http(), first.pop3[0], first.imap_addr()] {
            assert_ne!(addr.port(), taken.port(), "{scheme} on a taken port");
        }
    }
    let smtp = announced[0].1;
    let mut session = Smtp::ehlo(smtp);
    session.deliver(
        "sender@example.test",
        &["rcpt@example.test"],
        &message("second", "caught by the second catcher"),
    );
    session.quit();
}

#[test]
fn a_second_serve_on_the_same_store_is_told_to_take_a_temporary_one() {
    let first = Catcher::builder().http().start();
    let dir = kit::tempdir();
    let out = second_serve(&first, dir.path(), true);
    let line = out.one_error_line();
    assert!(
        line.contains("another sokkel serves the same store"),
        "{line}"
    );
    let args = suggested_args(&line, "with a temporary store: ");
    assert!(args.iter().any(|a| a == "--ephemeral"), "{args:?}");
    assert!(!args.iter().any(|a| a.starts_with("--db")), "{args:?}");
    let (_second, announced, _) = start_suggested(&args);
    assert_eq!(announced.len(), 4, "{announced:?}");
}

#[test]
fn colon_port_listens_on_every_address_with_a_warning() {
    let port = free_tcp_port();
    let mut catcher = Catcher::builder()
        .args(&["--smtp", &format!(":{port}"), "--http", ":0"])
        .start();
    let smtp = catcher.addr();
    assert!(
        smtp.ip().is_unspecified(),
        "--smtp :{port} listens on {smtp}"
    );
    assert_eq!(smtp.port(), port);
    assert!(catcher.http().ip().is_unspecified(), "{:?}", catcher.http);
    for (what, flag) in [("SMTP on ", "--smtp"), ("the web page on ", "--http")] {
        catcher
            .stderr
            .expect_line_where("warning it listens beyond loopback", |l| {
                l.contains("WARN")
                    && l.contains(what)
                    && l.contains("listens beyond loopback")
                    && l.contains(flag)
            });
    }
    // Reached through IPv4 loopback.
    let id = {
        let mut session = Smtp::ehlo(SocketAddr::from(([127, 0, 0, 1], port)));
        let id = session.deliver(
            "sender@example.test",
            &["rcpt@example.test"],
            &message("everywhere", "hello"),
        );
        session.quit();
        id
    };
    assert_eq!(kit::catcher::ids(&catcher.list()), [id]);
    sigterm(catcher.pid());
    assert!(catcher.wait_exit(PROMPT).success());
}

#[test]
fn loopback_gives_no_warning() {
    let mut catcher = Catcher::builder().http().start();
    sigterm(catcher.pid());
    assert!(catcher.wait_exit(PROMPT).success());
    // Everything it wrote, up to the pipe's close.
    catcher.stderr.wait_until(PROMPT, |_| false);
    let text = catcher.stderr.text();
    assert!(!text.contains("beyond loopback"), "{text}");
}

/// `args` must be refused as a usage error: exit 2, no store made, and one line
/// (besides clap's pointer to --help) that names `flag` and says `says`.
#[track_caller]
fn refused(args: &[&str], flag: &str, says: &[&str]) -> String {
    let dir = kit::tempdir();
    let db = dir.path().join("mail.db");
    let run = if args[0] == "echo" {
        sokkel(args)
    } else {
        sokkel(["mail", "serve", "--no-http"])
            .args(args)
            .arg("--db")
            .arg(&db)
    };
    let out = run.run();
    assert_eq!(out.code(), Some(2), "{args:?}: {}", out.describe());
    assert!(!out.stderr.contains("panicked"), "{}", out.describe());
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("For more information"))
        .collect();
    assert_eq!(lines.len(), 1, "{args:?}: {}", out.describe());
    let line = lines[0];
    assert!(
        line.starts_with("error: invalid value") && line.contains(&format!("'{flag} <ADDR>'")),
        "{args:?}: {line}"
    );
    for needle in says {
        assert!(line.contains(needle), "{args:?}: {needle:?} not in {line}");
    }
    assert!(!db.exists(), "{args:?} left a store behind");
    line.to_owned()
}

#[test]
fn a_bad_listen_address_is_a_usage_error_on_every_flag() {
    for (flag, port) in [
        ("--smtp", 1025),
        ("--http", 8025),
        ("--pop3", 1110),
        ("--imap", 1143),
        ("--smtps", 1465),
        ("--pop3s", 1995),
        ("--imaps", 1993),
    ] {
        for (value, says) in [
            ("nonsense", "the port is missing"),
            ("127.0.0.1:99999", "from 0 to 65535"),
            ("", "it is empty"),
            (":port", "from 0 to 65535"),
        ] {
            let line = refused(&[flag, value], flag, &[says]);
            assert!(
                !line.contains("10000"),
                "{flag} {value:?} suggests the echo port: {line}"
            );
            if value != "127.0.0.1:99999" && value != ":port" {
                assert!(line.contains(&port.to_string()), "{flag} {value:?}: {line}");
            }
        }
    }
    refused(
        &["echo", "serve", "--listen", "10000"],
        "--listen",
        &["127.0.0.1:10000", ":10000"],
    );
}

#[test]
fn a_bad_address_from_the_environment_is_a_usage_error_too() {
    let out = sokkel(["mail", "serve", "--no-http", "--ephemeral"])
        .env("SOKKEL_SMTP_LISTEN", "1025")
        .run();
    assert_eq!(out.code(), Some(2), "{}", out.describe());
    let first = out.stderr.lines().next().unwrap_or_default();
    assert!(first.contains("'--smtp <ADDR>'"), "{}", out.describe());
}

#[test]
fn the_hint_for_a_wrong_smtp_address_names_smtp_and_its_port() {
    // A port alone: the two forms that mean it.
    refused(
        &["--smtp", "1025"],
        "--smtp",
        &["a port alone", "127.0.0.1:1025", ":1025"],
    );
    // A host alone: the same host on the SMTP port.
    refused(&["--smtp", "localhost"], "--smtp", &["localhost:1025"]);
    // IPv6 without brackets: the brackets where they go.
    refused(&["--smtp", "::1:2525"], "--smtp", &["[::1]:2525"]);
    refused(&["--smtp", "[::1"], "--smtp", &["[::1]:1025"]);
}
