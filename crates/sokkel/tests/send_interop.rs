//! The sending side against programs nobody here wrote: aiosmtpd (plain, STARTTLS,
//! implicit TLS, AUTH PLAIN and LOGIN), Python's ssl module playing a STARTTLS
//! injection trick, Postfix's smtp-sink (pipelining, and refusals at every stage),
//! and tmux as the terminal for `sokkel mail compose` and the password prompt.
//!
//! Every test is `#[ignore]`d: `.ci/run` installs the peers and runs
//! `cargo test -- --ignored`. A missing peer fails the test with what to install.

mod kit;

use kit::email::{pair, parse_message};
use kit::peers::{Aiosmtpd, AiosmtpdOptions, Cert, SmtpSink, StarttlsInjector, Tmux};
use kit::process::SOKKEL;
use kit::send::mail_send;
use kit::smtp::assert_only_crlf;
use kit::{Catcher, Finished, sokkel, tempdir};

fn send(server: &str, args: &[&str]) -> Finished {
    mail_send(server, args).run()
}

fn send_with_password(server: &str, password: &str, args: &[&str]) -> Finished {
    let mut all = vec!["mail", "send", "--server", server, "--from", "me@x.test"];
    all.extend_from_slice(args);
    sokkel(all).env("SOKKEL_SMTP_PASSWORD", password).run()
}

fn path(p: &std::path::Path) -> &str {
    p.to_str().expect("a UTF-8 temporary path")
}

// ---------------------------------------------------------------------------------
// aiosmtpd
// ---------------------------------------------------------------------------------

#[test]
#[ignore = "interop: needs aiosmtpd, openssl, postfix, tmux; .ci/run installs them and runs cargo test -- --ignored"]
fn aiosmtpd_gets_a_full_message_intact() {
    let server = Aiosmtpd::start(&AiosmtpdOptions::default());
    let dir = tempdir();
    let html = dir.path().join("body.html");
    let bin = dir.path().join("every-byte.bin");
    std::fs::write(&html, "<p>Grüße ✓</p>\n").unwrap();
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    std::fs::write(&bin, &all_bytes).unwrap();
    let subject = "Grüße aus Tromsø — 日本語 ✓";
    let out = send(
        &server.server(),
        &[
            "--from",
            "Åse Øvrebø <ase@x.test>",
            "--to",
            "Zoë <zoe@x.test>,b@x.test",
            "--cc",
            "c@x.test",
            "--bcc",
            "hidden@x.test",
            "--subject",
            subject,
            "--body",
            "Blåbær\n.dot line\n",
            "--html-file",
            path(&html),
            "--attach",
            path(&bin),
            "--header",
            "X-Interop: aiosmtpd",
        ],
    );
    out.expect_code(0);
    assert!(
        out.stdout_text().starts_with(
            "sent to zoe@x.test, b@x.test, c@x.test, hidden@x.test: 250 2.0.0 saved as 1"
        ),
        "{}",
        out.stdout_text()
    );
    let saved = server.only_message();
    assert_eq!(saved.mail_from, "ase@x.test");
    assert_eq!(
        saved.rcpt_tos,
        ["zoe@x.test", "b@x.test", "c@x.test", "hidden@x.test"]
    );
    assert!(!saved.tls);
    assert_only_crlf(&saved.raw, "what aiosmtpd received");
    let parsed = parse_message(&saved.raw);
    assert_eq!(parsed.defects(), Vec::<String>::new());
    assert_eq!(
        parsed.addresses("from"),
        Some(vec![pair("Åse Øvrebø", "ase@x.test")])
    );
    assert_eq!(
        parsed.addresses("to"),
        Some(vec![pair("Zoë", "zoe@x.test"), pair("", "b@x.test")])
    );
    assert_eq!(parsed.addresses("cc"), Some(vec![pair("", "c@x.test")]));
    assert_eq!(parsed.addresses("bcc"), None);
    assert!(
        !String::from_utf8_lossy(&saved.raw).contains("hidden@x.test"),
        "the Bcc recipient shows"
    );
    assert_eq!(parsed.subject().as_deref(), Some(subject));
    assert_eq!(parsed.header("X-Interop"), "aiosmtpd");
    let parts = parsed.parts();
    assert_eq!(parts.len(), 3, "{parts:#?}");
    assert_eq!(parts[0].text.as_deref(), Some("Blåbær\n.dot line\n"));
    assert_eq!(parts[1].content_type, "text/html");
    assert_eq!(parts[1].text.as_deref(), Some("<p>Grüße ✓</p>\n"));
    assert_eq!(parts[2].filename.as_deref(), Some("every-byte.bin"));
    assert_eq!(parts[2].bytes, all_bytes);
}

#[test]
#[ignore = "interop: needs aiosmtpd, openssl, postfix, tmux; .ci/run installs them and runs cargo test -- --ignored"]
fn aiosmtpd_starttls_verified_with_ca() {
    let cert = Cert::for_loopback();
    let server = Aiosmtpd::start(&AiosmtpdOptions {
        starttls: Some(&cert),
        require_starttls: true,
        ..AiosmtpdOptions::default()
    });
    let out = send(
        &server.server(),
        &[
            "--tls",
            "starttls",
            "--ca",
            path(&cert.cert),
            "--to",
            "a@x.test",
            "--subject",
            "over STARTTLS",
            "-v",
        ],
    );
    out.expect_code(0);
    let saved = server.only_message();
    assert!(saved.tls, "aiosmtpd saw no TLS");
    assert_eq!(
        parse_message(&saved.raw).subject().as_deref(),
        Some("over STARTTLS")
    );
    let transcript = out.transcript();
    let established = transcript
        .iter()
        .position(|l| l.starts_with("=== TLS established: "))
        .unwrap_or_else(|| panic!("no TLS note: {transcript:#?}"));
    let (before, after) = transcript.split_at(established);
    assert!(before.contains(&" -> EHLO client.test"), "{transcript:#?}");
    assert!(before.contains(&" -> STARTTLS"), "{transcript:#?}");
    // Nothing but EHLO and STARTTLS in clear; EHLO again under TLS (RFC 3207 4.2).
    assert!(
        before
            .iter()
            .filter(|l| l.starts_with(" -> "))
            .all(|l| *l == " -> EHLO client.test" || *l == " -> STARTTLS"),
        "{transcript:#?}"
    );
    assert_eq!(after[1], " ~> EHLO client.test", "{transcript:#?}");
    assert!(
        after
            .iter()
            .any(|l| l.starts_with(" ~> MAIL FROM:<me@x.test>"))
    );
    assert!(after.iter().any(|l| l.starts_with(" <~ 250")));
    assert!(
        !after
            .iter()
            .any(|l| l.starts_with(" -> ") || l.starts_with(" <- ")),
        "clear-text lines after TLS: {transcript:#?}"
    );
}

#[test]
#[ignore = "interop: needs aiosmtpd, openssl, postfix, tmux; .ci/run installs them and runs cargo test -- --ignored"]
fn aiosmtpd_starttls_with_a_plain_self_signed_cert_and_insecure() {
    // The cert from the usual one-liner: CA:TRUE, no subjectAltName.
    let cert = Cert::generate(&["-subj", "/CN=localhost"]);
    let server = Aiosmtpd::start(&AiosmtpdOptions {
        starttls: Some(&cert),
        require_starttls: true,
        ..AiosmtpdOptions::default()
    });
    let out = send(
        &server.server(),
        &["--tls", "starttls", "--insecure", "--to", "a@x.test"],
    );
    out.expect_code(0);
    assert!(server.only_message().tls);
}

#[test]
#[ignore = "interop: needs aiosmtpd, openssl, postfix, tmux; .ci/run installs them and runs cargo test -- --ignored"]
fn aiosmtpd_implicit_tls() {
    let cert = Cert::generate(&["-subj", "/CN=localhost"]);
    let server = Aiosmtpd::start(&AiosmtpdOptions {
        implicit: Some(&cert),
        ..AiosmtpdOptions::default()
    });
    let out = send(
        &server.server(),
        &[
            "--tls",
            "implicit",
            "--insecure",
            "--to",
            "a@x.test",
            "--subject",
            "SMTPS",
            "-v",
        ],
    );
    out.expect_code(0);
    let saved = server.only_message();
    assert!(saved.tls);
    assert_eq!(
        parse_message(&saved.raw).subject().as_deref(),
        Some("SMTPS")
    );
    let transcript = out.transcript();
    assert!(
        transcript[1].starts_with("=== TLS established: "),
        "TLS comes first: {transcript:#?}"
    );
    assert!(
        transcript[2..]
            .iter()
            .all(|l| l.starts_with(" ~> ") || l.starts_with(" <~ ")),
        "{transcript:#?}"
    );
}

#[test]
#[ignore = "interop: needs aiosmtpd, openssl, postfix, tmux; .ci/run installs them and runs cargo test -- --ignored"]
fn ca_file_trusts_a_self_signed_cert_made_the_usual_way() {
    // `openssl req -x509` marks the certificate CA:TRUE unless told otherwise.
    // Python's ssl module and swaks --tls-verify accept it as its own trust anchor;
    // `--ca cert.pem` should too, with the server's own certificate in the file.
    let cert = Cert::generate(&[
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=DNS:localhost,IP:127.0.0.1",
    ]);
    let server = Aiosmtpd::start(&AiosmtpdOptions {
        starttls: Some(&cert),
        ..AiosmtpdOptions::default()
    });
    let out = send(
        &server.server(),
        &[
            "--tls",
            "starttls",
            "--ca",
            path(&cert.cert),
            "--to",
            "a@x.test",
        ],
    );
    out.expect_code(0);
}

#[test]
#[ignore = "interop: needs aiosmtpd, openssl, postfix, tmux; .ci/run installs them and runs cargo test -- --ignored"]
fn tls_handshake_failures_exit_29_and_send_nothing() {
    let cert = Cert::for_loopback();
    let other = Cert::for_loopback();
    let server = Aiosmtpd::start(&AiosmtpdOptions {
        starttls: Some(&cert),
        ..AiosmtpdOptions::default()
    });
    // A CA file that does not hold the server's certificate.
    let out = send(
        &server.server(),
        &[
            "--tls",
            "starttls",
            "--ca",
            path(&other.cert),
            "--to",
            "a@x.test",
        ],
    );
    out.expect_code(29);
    let prefix = format!(
        "sokkel: TLS failed: TLS handshake with {} failed: the server's certificate",
        server.server()
    );
    assert!(out.failure().starts_with(&prefix), "{}", out.failure());
    // The system's roots do not know a self-signed certificate either.
    let out = send(&server.server(), &["--tls", "starttls", "--to", "a@x.test"]);
    out.expect_code(29);
    assert!(out.failure().starts_with(&prefix), "{}", out.failure());
    assert!(server.messages().is_empty());
}

#[test]
#[ignore = "interop: needs aiosmtpd, openssl, postfix, tmux; .ci/run installs them and runs cargo test -- --ignored"]
fn implicit_tls_to_a_plain_server_exits_29() {
    let server = Aiosmtpd::start(&AiosmtpdOptions::default());
    let out = send(
        &server.server(),
        &["--tls", "implicit", "--insecure", "--to", "a@x.test"],
    );
    out.expect_code(29);
    assert!(
        out.failure().starts_with("sokkel: TLS failed: "),
        "{}",
        out.failure()
    );
}

#[test]
#[ignore = "interop: needs aiosmtpd, openssl, postfix, tmux; .ci/run installs them and runs cargo test -- --ignored"]
fn plain_client_to_an_implicit_tls_server_times_out_at_the_greeting() {
    let cert = Cert::generate(&["-subj", "/CN=localhost"]);
    let server = Aiosmtpd::start(&AiosmtpdOptions {
        implicit: Some(&cert),
        ..AiosmtpdOptions::default()
    });
    let out = sokkel([
        "mail",
        "send",
        "--server",
        &server.server(),
        "--to",
        "a@x.test",
        "--timeout",
        "1s",
    ])
    .run();
    out.expect_code(21);
    assert_eq!(
        out.failure(),
        "sokkel: greeting failed: no answer within 1 s (--timeout)"
    );
}

#[test]
#[ignore = "interop: needs aiosmtpd, openssl, postfix, tmux; .ci/run installs them and runs cargo test -- --ignored"]
fn aiosmtpd_auth_plain_and_login() {
    let server = Aiosmtpd::start(&AiosmtpdOptions {
        login: Some(("alice", "s3cret pw ✓")),
        ..AiosmtpdOptions::default()
    });
    for (mechanism, want) in [("plain", "PLAIN"), ("login", "LOGIN"), ("auto", "PLAIN")] {
        let out = send_with_password(
            &server.server(),
            "s3cret pw ✓",
            &[
                "--user", "alice", "--auth", mechanism, "--to", "a@x.test", "-v",
            ],
        );
        out.expect_code(0);
        assert!(
            !out.stderr.contains("s3cret"),
            "the password shows: {}",
            out.stderr
        );
        let saved = server.messages().pop().expect("a saved message");
        assert_eq!(
            (saved.auth_mechanism.as_deref(), saved.auth_user.as_deref()),
            (Some(want), Some("alice")),
            "--auth {mechanism}"
        );
    }
    for mechanism in ["plain", "login"] {
        let out = send_with_password(
            &server.server(),
            "wrong",
            &["--user", "alice", "--auth", mechanism, "--to", "a@x.test"],
        );
        out.expect_code(28);
        assert!(
            out.failure()
                .starts_with("sokkel: AUTH failed: the server said 535 "),
            "--auth {mechanism}: {}",
            out.failure()
        );
    }
    assert_eq!(server.messages().len(), 3, "the failed logins sent nothing");
}

#[test]
#[ignore = "interop: needs aiosmtpd, openssl, postfix, tmux; .ci/run installs them and runs cargo test -- --ignored"]
fn aiosmtpd_auth_after_starttls() {
    // aiosmtpd offers AUTH only under TLS here, as a submission server does.
    let cert = Cert::for_loopback();
    let server = Aiosmtpd::start(&AiosmtpdOptions {
        starttls: Some(&cert),
        login: Some(("alice", "pw")),
        ..AiosmtpdOptions::default()
    });
    let out = send_with_password(
        &server.server(),
        "pw",
        &["--user", "alice", "--to", "a@x.test"],
    );
    out.expect_code(28);
    assert!(
        out.failure()
            .starts_with("sokkel: AUTH failed: the server offers no AUTH mechanism"),
        "{}",
        out.failure()
    );
    let out = send_with_password(
        &server.server(),
        "pw",
        &[
            "--tls",
            "starttls",
            "--ca",
            path(&cert.cert),
            "--user",
            "alice",
            "--to",
            "a@x.test",
            "-v",
        ],
    );
    out.expect_code(0);
    assert!(
        out.stderr.contains(" ~> AUTH PLAIN [redacted]"),
        "{}",
        out.stderr
    );
    let saved = server.only_message();
    assert!(saved.tls);
    assert_eq!(saved.auth_user.as_deref(), Some("alice"));
}

// ---------------------------------------------------------------------------------
// STARTTLS injection (Python's ssl module)
// ---------------------------------------------------------------------------------

#[test]
#[ignore = "interop: needs aiosmtpd, openssl, postfix, tmux; .ci/run installs them and runs cargo test -- --ignored"]
fn bytes_sent_before_the_tls_handshake_are_discarded() {
    let cert = Cert::for_loopback();
    let mut server = StarttlsInjector::start(&cert);
    let out = send(
        &server.server(),
        &[
            "--tls",
            "starttls",
            "--ca",
            path(&cert.cert),
            "--to",
            "a@x.test",
            "--subject",
            "after injection",
            "-v",
        ],
    );
    out.expect_code(0);
    let transcript = out.transcript();
    // "250 injected\r\n": 14 bytes, in the same TCP write as the 220.
    assert!(
        transcript.contains(&"=== discarded 14 bytes the server sent before TLS"),
        "{transcript:#?}"
    );
    assert!(
        !out.stderr.contains("injected"),
        "the injected line was read as a reply: {}",
        out.stderr
    );
    let log = server.log();
    let plain: Vec<&str> = log["plain"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c.as_str())
        .collect();
    assert_eq!(plain, ["EHLO client.test", "STARTTLS"]);
    let tls: Vec<&str> = log["tls"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c.as_str())
        .collect();
    assert_eq!(tls[0], "EHLO client.test", "EHLO again under TLS");
    // The pre-TLS EHLO offered PIPELINING; under TLS only 8BITMIME. Forgotten
    // capabilities mean one command per reply, so the log lists them in order.
    assert_eq!(
        tls[1..],
        [
            "MAIL FROM:<me@x.test>",
            "RCPT TO:<a@x.test>",
            "DATA",
            "QUIT"
        ]
    );
    assert!(
        log["content"]
            .as_str()
            .unwrap()
            .contains("Subject: after injection")
    );
}

// ---------------------------------------------------------------------------------
// Postfix smtp-sink
// ---------------------------------------------------------------------------------

#[test]
#[ignore = "interop: needs aiosmtpd, openssl, postfix, tmux; .ci/run installs them and runs cargo test -- --ignored"]
fn smtp_sink_pipelining_batches_mail_rcpt_and_data() {
    let sink = SmtpSink::start(&[]);
    let out = send(
        &sink.server(),
        &["--to", "a@x.test,b@x.test", "--cc", "c@x.test", "-v"],
    );
    out.expect_code(0);
    let transcript = out.transcript();
    assert!(
        transcript.contains(&" <- 250-PIPELINING"),
        "{transcript:#?}"
    );
    let mail = transcript
        .iter()
        .position(|l| l.starts_with(" -> MAIL FROM:<me@x.test>"))
        .expect("a MAIL line");
    assert_eq!(
        transcript[mail + 1..mail + 5],
        [
            " -> RCPT TO:<a@x.test>",
            " -> RCPT TO:<b@x.test>",
            " -> RCPT TO:<c@x.test>",
            " -> DATA"
        ],
        "MAIL, the RCPTs and DATA before any reply: {transcript:#?}"
    );
    assert!(
        transcript[mail + 5].starts_with(" <- 250"),
        "{transcript:#?}"
    );
    assert!(
        transcript[mail + 9].starts_with(" <- 354"),
        "{transcript:#?}"
    );
}

#[test]
#[ignore = "interop: needs aiosmtpd, openssl, postfix, tmux; .ci/run installs them and runs cargo test -- --ignored"]
fn smtp_sink_repeat_over_one_connection() {
    let sink = SmtpSink::start(&[]);
    let out = send(&sink.server(), &["--to", "a@x.test", "--repeat", "200"]);
    out.expect_code(0);
    assert!(
        out.stdout_text().contains("sent 200 messages in "),
        "{}",
        out.stdout_text()
    );
}

#[test]
#[ignore = "interop: needs aiosmtpd, openssl, postfix, tmux; .ci/run installs them and runs cargo test -- --ignored"]
fn smtp_sink_refusing_each_stage() {
    // smtp-sink's -f (5xx), -r (4xx) and -Q (421 and hang up) options: a real
    // server refusing at every stage, each with the stage's exit code.
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["-f", "connect"],
            21,
            "sokkel: greeting failed: the server said 5",
        ),
        (
            &["-r", "connect"],
            21,
            "sokkel: greeting failed: the server said 4",
        ),
        (
            &["-f", "ehlo,helo"],
            22,
            "sokkel: EHLO failed: the server said 5",
        ),
        (
            &["-r", "ehlo"],
            22,
            "sokkel: EHLO failed: the server said 4",
        ),
        (
            &["-f", "mail"],
            23,
            "sokkel: MAIL FROM failed: the server said 5",
        ),
        (
            &["-f", "rcpt"],
            24,
            "sokkel: RCPT TO failed: the server said 5",
        ),
        (
            &["-r", "rcpt"],
            24,
            "sokkel: RCPT TO failed: the server said 4",
        ),
        (
            &["-f", "data"],
            25,
            "sokkel: DATA failed: the server said 5",
        ),
        (
            &["-f", "."],
            26,
            "sokkel: message content failed: the server said 5",
        ),
        (
            &["-r", "."],
            26,
            "sokkel: message content failed: the server said 4",
        ),
    ];
    let mut failures = Vec::new();
    for (options, code, message) in cases {
        let sink = SmtpSink::start(options);
        let out = send(&sink.server(), &["--to", "a@x.test"]);
        let failure = out.failure_lines().join("\n");
        if out.code() != Some(*code) || !failure.starts_with(message) {
            failures.push(format!(
                "smtp-sink {options:?}: exit {:?}, stderr {:?} (wanted {code}, {message:?})",
                out.code(),
                out.stderr
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
#[ignore = "interop: needs aiosmtpd, openssl, postfix, tmux; .ci/run installs them and runs cargo test -- --ignored"]
fn smtp_sink_421_and_hangup_in_a_pipeline_reports_the_421() {
    // -Q: smtp-sink answers 421 and disconnects. With PIPELINING the replies to the
    // commands after it never come; the failure is the 421, at its stage.
    let mut failures = Vec::new();
    for (command, code, stage) in [
        ("mail", 23, "MAIL FROM"),
        ("rcpt", 24, "RCPT TO"),
        ("data", 25, "DATA"),
    ] {
        let sink = SmtpSink::start(&["-Q", command]);
        let out = send(&sink.server(), &["--to", "a@x.test"]);
        let message = format!("sokkel: {stage} failed: the server said 421 ");
        let failure = out.failure_lines().join("\n");
        if out.code() != Some(code) || !failure.starts_with(&message) {
            failures.push(format!(
                "smtp-sink -Q {command}: exit {:?}, stderr {:?} (wanted {code}, {message:?})",
                out.code(),
                out.stderr
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
#[ignore = "interop: needs aiosmtpd, openssl, postfix, tmux; .ci/run installs them and runs cargo test -- --ignored"]
fn smtp_sink_without_esmtp_gets_helo() {
    // -e: smtp-sink answers EHLO with 502, as an old server does.
    let sink = SmtpSink::start(&["-e"]);
    let out = send(&sink.server(), &["--to", "a@x.test", "-v"]);
    out.expect_code(0);
    let transcript = out.transcript();
    assert!(
        transcript.contains(&" -> HELO client.test"),
        "{transcript:#?}"
    );
}

// ---------------------------------------------------------------------------------
// A real terminal: compose and the password prompt under tmux
// ---------------------------------------------------------------------------------

/// A shell script that runs sokkel with `args` in `env`, then prints its exit code
/// and stays, so the screen can still be read.
fn terminal_script(dir: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> String {
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let mut script = String::from("#!/bin/sh\n");
    script.push_str(
        "for v in $(env | sed -n 's/^\\(SOKKEL_[A-Z_]*\\)=.*/\\1/p'); do unset \"$v\"; done\n",
    );
    for (name, value) in env {
        script.push_str(&format!("export {name}={}\n", quote(value)));
    }
    script.push_str(&quote(SOKKEL));
    for arg in args {
        script.push(' ');
        script.push_str(&quote(arg));
    }
    script.push_str("\necho \"[exited with $?]\"\nsleep 600\n");
    let path = dir.join("run.sh");
    std::fs::write(&path, script).unwrap();
    format!("sh {}", quote(path.to_str().unwrap()))
}

#[test]
#[ignore = "interop: needs aiosmtpd, openssl, postfix, tmux; .ci/run installs them and runs cargo test -- --ignored"]
fn compose_in_a_terminal_with_line_editing() {
    let catcher = Catcher::start();
    let home = tempdir();
    let command = terminal_script(
        home.path(),
        &[("XDG_DATA_HOME", path(home.path())), ("USER", "tester")],
        &[
            "mail",
            "compose",
            "--server",
            &catcher.server(),
            "--timeout",
            "10s",
        ],
    );
    let tmux = Tmux::start(&command);

    // From: the default is in the line, ready to edit; Ctrl-U clears it.
    tmux.wait_for("From: tester@");
    tmux.keys(&["C-u"]);
    tmux.type_line("Tmux User <tmux@x.test>");
    // To: a typo, Backspace, the fix.
    tmux.wait_for("To: ");
    tmux.type_text("you@x.tesr");
    tmux.wait_for("you@x.tesr");
    tmux.keys(&["BSpace"]);
    tmux.type_text("t");
    tmux.enter_when_shown("To: you@x.test");
    tmux.wait_for("Cc: ");
    tmux.keys(&["Enter"]);
    // Subject: typed without its first letter, then Ctrl-A and the letter.
    tmux.wait_for("Subject: ");
    tmux.type_text("ello from tmux");
    tmux.wait_for("Subject: ello from tmux");
    tmux.keys(&["C-a"]);
    tmux.type_text("H");
    tmux.enter_when_shown("Subject: Hello from tmux");
    tmux.wait_for("Body (end with");
    let (_, row) = tmux.cursor();
    tmux.type_line("first line");
    tmux.wait_for_new_line(row);
    let (_, row) = tmux.cursor();
    // "second lime": two steps left, Backspace over the m, an n.
    tmux.type_text("second lime");
    tmux.wait_for("second lime");
    tmux.keys(&["Left", "BSpace"]);
    tmux.type_text("n");
    tmux.enter_when_shown("second line");
    tmux.wait_for_new_line(row);
    // Ctrl-D on an empty line ends the body.
    tmux.keys(&["C-d"]);
    tmux.wait_for("attach> ");
    tmux.keys(&["Enter"]);
    tmux.wait_for("Send, edit or cancel? [s/e/c] ");
    tmux.type_line("s");
    let screen = tmux.wait_for("[exited with ");
    assert!(screen.contains("[exited with 0]"), "{screen}");
    assert!(
        screen.contains(&format!(
            "Sent. {} accepted the message for you@x.test (250 ",
            catcher.server()
        )),
        "{screen}"
    );

    let parsed = parse_message(&catcher.only_raw());
    assert_eq!(
        parsed.addresses("from"),
        Some(vec![pair("Tmux User", "tmux@x.test")])
    );
    assert_eq!(parsed.addresses("to"), Some(vec![pair("", "you@x.test")]));
    assert_eq!(parsed.subject().as_deref(), Some("Hello from tmux"));
    assert_eq!(parsed.text_body(), "first line\nsecond line\n");
    assert_eq!(
        std::fs::read_to_string(home.path().join("sokkel/compose-last-from")).unwrap(),
        "Tmux User <tmux@x.test>"
    );
}

#[test]
#[ignore = "interop: needs aiosmtpd, openssl, postfix, tmux; .ci/run installs them and runs cargo test -- --ignored"]
fn password_prompt_in_a_terminal_does_not_echo() {
    let server = Aiosmtpd::start(&AiosmtpdOptions {
        login: Some(("alice", "typed-secret")),
        ..AiosmtpdOptions::default()
    });
    let dir = tempdir();
    let command = terminal_script(
        dir.path(),
        &[],
        &[
            "mail",
            "send",
            "--server",
            &server.server(),
            "--from",
            "me@x.test",
            "--to",
            "a@x.test",
            "--body",
            "hi",
            "--user",
            "alice",
            "--timeout",
            "10s",
        ],
    );
    let tmux = Tmux::start(&command);
    tmux.wait_for(&format!("password for alice at {}: ", server.server()));
    tmux.type_text("typed-secret");
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for("[exited with ");
    assert!(screen.contains("[exited with 0]"), "{screen}");
    assert!(
        !screen.contains("typed-secret"),
        "the password echoed: {screen}"
    );
    assert_eq!(server.only_message().auth_user.as_deref(), Some("alice"));
}
