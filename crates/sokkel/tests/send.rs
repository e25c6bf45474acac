//! Integration tests for the sending side: `sokkel mail send`, `sokkel sendmail` and
//! `sokkel mail compose`, run as the real binary.
//!
//! Two kinds of server are on the other end: a scripted server (Rust std sockets, in
//! `kit::send`) that fails each stage of the conversation on cue, to pin down every
//! exit code and the one-line message a user sees; and `sokkel mail serve`, to check
//! what arrives, parsed by Python's email package rather than by sokkel's own code.
//! Needs only Rust and python3. The tests against peers nobody here wrote are in
//! `send_interop.rs`.

mod kit;

use kit::email::{Parsed, pair, parse_message};
use kit::net::free_tcp_port;
use kit::send::{Received, Reply, Script, ScriptedServer, mail_send};
use kit::smtp::{assert_only_crlf, find};
use kit::{Catcher, Finished, program, sokkel, tempdir};

/// [`mail_send`] with a password in the environment (for the AUTH tests).
fn send(server: &str, args: &[&str]) -> Finished {
    mail_send(server, args)
        .env("SOKKEL_SMTP_PASSWORD", "s3cret-pw")
        .run()
}

/// Sends one message to a scripted server and checks the exit code and the start of
/// the one failure line on stderr. Returns what the server received.
#[track_caller]
fn expect_failure(script: Script, args: &[&str], code: i32, message: &str) -> (Finished, Received) {
    let server = ScriptedServer::start(script);
    let mut all = vec!["--to", "a@x.test", "--body", "hello"];
    all.extend_from_slice(args);
    let out = send(&server.server(), &all);
    out.expect_code(code);
    let failure = out.failure();
    assert!(
        failure.starts_with(message),
        "stderr line {failure:?} should start with {message:?}"
    );
    assert!(
        !out.stdout_text().contains("sent to"),
        "a failed send printed {:?}",
        out.stdout_text()
    );
    let received = server.received();
    (out, received)
}

/// Whether any command line the server saw starts with `prefix`.
fn saw(received: &Received, prefix: &str) -> bool {
    received.commands.iter().any(|c| c.starts_with(prefix))
}

// ---------------------------------------------------------------------------------
// Every stage failing: exit code and message
// ---------------------------------------------------------------------------------

#[test]
fn connection_refused_exits_20() {
    let port = free_tcp_port();
    let out = send(&format!("127.0.0.1:{port}"), &["--to", "a@x.test"]);
    out.expect_code(20);
    let failure = out.failure();
    assert!(
        failure.starts_with("sokkel: connect failed: "),
        "{failure:?}"
    );
    assert!(
        failure.contains(&port.to_string()),
        "names the port: {failure:?}"
    );
}

#[test]
fn greeting_4xx_exits_21() {
    expect_failure(
        Script::new().banner("421 4.3.2 too busy, try later"),
        &[],
        21,
        "sokkel: greeting failed: the server said 421 4.3.2 too busy, try later",
    );
}

#[test]
fn greeting_5xx_exits_21() {
    let (_, received) = expect_failure(
        Script::new().banner("554 5.3.2 no SMTP service here"),
        &[],
        21,
        "sokkel: greeting failed: the server said 554 5.3.2 no SMTP service here",
    );
    assert!(
        !saw(&received, "EHLO"),
        "greeted a refusing server: {received:?}"
    );
}

#[test]
fn greeting_that_never_comes_times_out_with_21() {
    expect_failure(
        Script::new().banner(Reply::Silent),
        &["--timeout", "1s"],
        21,
        "sokkel: greeting failed: no answer within 1 s (--timeout)",
    );
}

#[test]
fn connection_closed_before_greeting_exits_21() {
    expect_failure(
        Script::new().banner(Reply::Close),
        &[],
        21,
        "sokkel: greeting failed: the server closed the connection",
    );
}

#[test]
fn ehlo_4xx_exits_22_without_trying_helo() {
    let (_, received) = expect_failure(
        Script::new().on("EHLO", "421 4.7.0 slow down"),
        &[],
        22,
        "sokkel: EHLO failed: the server said 421 4.7.0 slow down",
    );
    // A transient refusal is not "I do not speak ESMTP": HELO would not help.
    assert!(!saw(&received, "HELO"), "{:?}", received.commands);
}

#[test]
fn ehlo_5xx_falls_back_to_helo() {
    let server = ScriptedServer::start(
        Script::new()
            .on("EHLO", "502 5.5.1 EHLO not implemented")
            .on("HELO", "250 old.test"),
    );
    let out = send(&server.server(), &["--to", "a@x.test", "--body", "hi"]);
    out.expect_code(0);
    assert!(
        out.stdout_text()
            .starts_with("sent to a@x.test: 250 2.0.0 queued as 1"),
        "{}",
        out.stdout_text()
    );
    let commands = server.received().commands;
    assert_eq!(commands[..2], ["EHLO client.test", "HELO client.test"]);
    // A HELO server has no ESMTP extensions: no SIZE= or BODY= parameters.
    assert!(
        commands.contains(&"MAIL FROM:<me@x.test>".to_owned()),
        "{commands:?}"
    );
}

#[test]
fn ehlo_and_helo_refused_exits_22() {
    let (_, received) = expect_failure(
        Script::new()
            .on("EHLO", "500 5.5.1 unrecognised")
            .on("HELO", "501 5.5.4 go away"),
        &[],
        22,
        "sokkel: EHLO failed: the server said 501 5.5.4 go away",
    );
    assert!(!saw(&received, "MAIL"), "{:?}", received.commands);
}

#[test]
fn mail_4xx_exits_23() {
    let (_, received) = expect_failure(
        Script::new().on("MAIL", "451 4.3.0 try again later"),
        &[],
        23,
        "sokkel: MAIL FROM failed: the server said 451 4.3.0 try again later",
    );
    assert!(!saw(&received, "RCPT"), "{:?}", received.commands);
}

#[test]
fn mail_5xx_exits_23() {
    expect_failure(
        Script::new().on("MAIL", "550 5.7.1 sender rejected"),
        &[],
        23,
        "sokkel: MAIL FROM failed: the server said 550 5.7.1 sender rejected",
    );
}

#[test]
fn every_recipient_refused_exits_24() {
    let (_, received) = expect_failure(
        Script::new().on("RCPT", "550 5.1.1 no such user"),
        &["--to", "b@x.test"],
        24,
        "sokkel: RCPT TO failed: the server said 550 5.1.1 no such user",
    );
    assert_eq!(
        received
            .commands
            .iter()
            .filter(|c| c.starts_with("RCPT"))
            .count(),
        2,
        "asked for both recipients: {:?}",
        received.commands
    );
    assert!(!saw(&received, "DATA"), "{:?}", received.commands);
}

#[test]
fn every_recipient_deferred_exits_24() {
    expect_failure(
        Script::new().on("RCPT", "450 4.2.0 mailbox busy"),
        &[],
        24,
        "sokkel: RCPT TO failed: the server said 450 4.2.0 mailbox busy",
    );
}

#[test]
fn some_recipients_refused_exits_3_and_names_them() {
    let server = ScriptedServer::start(
        Script::new()
            .on("RCPT TO:<c@x.test>", "550 5.1.1 c does not live here")
            .on("RCPT TO:<d@x.test>", "452 4.2.2 d is over quota"),
    );
    let out = send(
        &server.server(),
        &[
            "--to",
            "a@x.test,c@x.test",
            "--cc",
            "d@x.test",
            "--bcc",
            "b@x.test",
            "--body",
            "hi",
        ],
    );
    out.expect_code(3);
    let stdout = out.stdout_text();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "sent to a@x.test, b@x.test: 250 2.0.0 queued as 1",
            "refused c@x.test: 550 5.1.1 c does not live here",
            "refused d@x.test: 452 4.2.2 d is over quota",
        ]
    );
    assert_eq!(server.received().contents.len(), 1, "the message was sent");
}

#[test]
fn data_4xx_exits_25() {
    expect_failure(
        Script::new().on("DATA", "451 4.3.0 not now"),
        &[],
        25,
        "sokkel: DATA failed: the server said 451 4.3.0 not now",
    );
}

#[test]
fn data_5xx_exits_25() {
    let (_, received) = expect_failure(
        Script::new().on("DATA", "554 5.5.1 no valid recipients"),
        &[],
        25,
        "sokkel: DATA failed: the server said 554 5.5.1 no valid recipients",
    );
    assert!(
        received.contents.is_empty(),
        "sent content after a refused DATA"
    );
}

#[test]
fn refused_after_the_final_dot_5xx_exits_26() {
    expect_failure(
        Script::new().on(".", "554 5.7.1 message looks like spam"),
        &[],
        26,
        "sokkel: message content failed: the server said 554 5.7.1 message looks like spam",
    );
}

#[test]
fn refused_after_the_final_dot_4xx_exits_26() {
    expect_failure(
        Script::new().on(".", "452 4.3.1 out of disk"),
        &[],
        26,
        "sokkel: message content failed: the server said 452 4.3.1 out of disk",
    );
}

#[test]
fn server_closing_mid_data_exits_26() {
    let dir = tempdir();
    // Large enough that the client is still writing when the server hangs up.
    let body = dir.path().join("big.txt");
    std::fs::write(
        &body,
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n".repeat(64 * 1024),
    )
    .unwrap();
    let server = ScriptedServer::start(Script::new().close_mid_data());
    let out = send(
        &server.server(),
        &["--to", "a@x.test", "--body-file", body.to_str().unwrap()],
    );
    out.expect_code(26);
    assert_eq!(
        out.failure(),
        "sokkel: message content failed: the server closed the connection"
    );
}

#[test]
fn server_closing_instead_of_answering_mail_exits_23() {
    expect_failure(
        Script::new().on("MAIL", Reply::Close),
        &[],
        23,
        "sokkel: MAIL FROM failed: the server closed the connection",
    );
}

#[test]
fn auth_plain_535_exits_28_and_never_shows_the_password() {
    let (out, received) = expect_failure(
        Script::new()
            .capability("AUTH PLAIN LOGIN")
            .on("AUTH", "535 5.7.8 authentication credentials invalid"),
        &["--user", "alice", "--auth", "plain", "-v"],
        28,
        "sokkel: AUTH failed: the server said 535 5.7.8 authentication credentials invalid",
    );
    // base64("\0alice\0s3cret-pw")
    let token = "AGFsaWNlAHMzY3JldC1wdw==";
    assert!(
        received.commands.contains(&format!("AUTH PLAIN {token}")),
        "{:?}",
        received.commands
    );
    assert!(
        out.stderr.contains(" -> AUTH PLAIN [redacted]"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains(token) && !out.stderr.contains("s3cret-pw"),
        "{}",
        out.stderr
    );
    assert!(!saw(&received, "MAIL"), "{:?}", received.commands);
}

#[test]
fn auth_login_535_exits_28_and_redacts_both_lines() {
    let (out, received) = expect_failure(
        Script::new()
            .capability("AUTH LOGIN")
            .on("AUTH LOGIN", "334 VXNlcm5hbWU6")
            .on("YWxpY2U=", "334 UGFzc3dvcmQ6")
            .on("czNjcmV0LXB3", "535 5.7.8 no"),
        &["--user", "alice", "-v"],
        28,
        "sokkel: AUTH failed: the server said 535 5.7.8 no",
    );
    assert_eq!(
        received.commands[1..4],
        ["AUTH LOGIN", "YWxpY2U=", "czNjcmV0LXB3"],
        "auto picks LOGIN when only LOGIN is offered"
    );
    assert!(
        out.stderr.contains(" -> [user name redacted]"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(" -> [password redacted]"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("czNjcmV0LXB3") && !out.stderr.contains("YWxpY2U="),
        "{}",
        out.stderr
    );
}

#[test]
fn auth_accepted_then_the_message_goes() {
    let server = ScriptedServer::start(
        Script::new()
            .capability("AUTH PLAIN")
            .on("AUTH PLAIN", "235 2.7.0 welcome"),
    );
    let out = sokkel([
        "mail",
        "send",
        "--server",
        &server.server(),
        "--from",
        "me@x.test",
        "--to",
        "a@x.test",
        "--user",
        "alice",
        "--body",
        "hi",
    ])
    .env("SOKKEL_SMTP_PASSWORD", "s3cret-pw")
    .run();
    out.expect_code(0);
    let commands = server.received().commands;
    let auth = commands.iter().position(|c| c.starts_with("AUTH")).unwrap();
    let mail = commands.iter().position(|c| c.starts_with("MAIL")).unwrap();
    assert!(auth < mail, "{commands:?}");
}

#[test]
fn auth_without_an_offered_mechanism_exits_28() {
    expect_failure(
        Script::new(),
        &["--user", "alice"],
        28,
        "sokkel: AUTH failed: the server offers no AUTH mechanism",
    );
}

#[test]
fn starttls_refused_exits_29() {
    let (_, received) = expect_failure(
        Script::new().capability("STARTTLS").on(
            "STARTTLS",
            "454 4.7.0 TLS not available due to temporary reason",
        ),
        &["--tls", "starttls"],
        29,
        "sokkel: TLS failed: the server said 454 4.7.0 TLS not available due to temporary reason",
    );
    assert!(
        !saw(&received, "MAIL"),
        "sent in clear text: {:?}",
        received.commands
    );
}

#[test]
fn starttls_required_but_not_offered_exits_29_and_sends_nothing() {
    let (out, received) = expect_failure(
        Script::new(),
        &["--tls", "starttls"],
        29,
        "sokkel: TLS failed: the server does not offer STARTTLS",
    );
    assert!(
        out.failure().contains("starttls-if-offered"),
        "suggests the way out"
    );
    assert!(
        !saw(&received, "MAIL"),
        "sent in clear text: {:?}",
        received.commands
    );
}

#[test]
fn starttls_if_offered_sends_in_clear_when_not_offered() {
    let server = ScriptedServer::start(Script::new());
    let out = send(
        &server.server(),
        &[
            "--tls",
            "starttls-if-offered",
            "--to",
            "a@x.test",
            "--body",
            "hi",
        ],
    );
    out.expect_code(0);
    assert!(!saw(&server.received(), "STARTTLS"));
}

/// A reply that never comes, at each stage: the stage's exit code and a message
/// that names the timeout.
#[test]
fn every_stage_times_out_with_its_own_code() {
    let cases: &[(&str, Script, &[&str], i32, &str)] = &[
        (
            "EHLO",
            Script::new().on("EHLO", Reply::Silent),
            &[],
            22,
            "EHLO",
        ),
        (
            "STARTTLS",
            Script::new()
                .capability("STARTTLS")
                .on("STARTTLS", Reply::Silent),
            &["--tls", "starttls"],
            29,
            "TLS",
        ),
        (
            "AUTH",
            Script::new()
                .capability("AUTH PLAIN")
                .on("AUTH", Reply::Silent),
            &["--user", "alice"],
            28,
            "AUTH",
        ),
        (
            "MAIL",
            Script::new().on("MAIL", Reply::Silent),
            &[],
            23,
            "MAIL FROM",
        ),
        (
            "RCPT",
            Script::new().on("RCPT", Reply::Silent),
            &[],
            24,
            "RCPT TO",
        ),
        (
            "DATA",
            Script::new().on("DATA", Reply::Silent),
            &[],
            25,
            "DATA",
        ),
        (
            ".",
            Script::new().on(".", Reply::Silent),
            &[],
            26,
            "message content",
        ),
    ];
    // The cases wait in parallel: each takes the one second of its timeout.
    std::thread::scope(|scope| {
        let runs: Vec<_> = cases
            .iter()
            .map(|(_, script, args, code, stage)| {
                let script = script.clone();
                scope.spawn(move || {
                    let mut all = vec!["--timeout", "1s"];
                    all.extend_from_slice(args);
                    let message =
                        format!("sokkel: {stage} failed: no answer within 1 s (--timeout)");
                    expect_failure(script, &all, *code, &message);
                })
            })
            .collect();
        let failed: Vec<&str> = runs
            .into_iter()
            .zip(cases)
            .filter_map(|(run, case)| run.join().is_err().then_some(case.0))
            .collect();
        assert!(
            failed.is_empty(),
            "timeout cases failed (see above): {failed:?}"
        );
    });
}

// ---------------------------------------------------------------------------------
// What goes over the wire
// ---------------------------------------------------------------------------------

#[test]
fn pipelining_sends_mail_rcpt_and_data_in_one_go() {
    // The server answers MAIL and RCPT only once DATA has arrived: a client that
    // waited for each reply would time out.
    let server = ScriptedServer::start(
        Script::new()
            .capability("PIPELINING")
            .hold_replies_until_data(),
    );
    let out = send(
        &server.server(),
        &[
            "--to",
            "a@x.test,b@x.test",
            "--timeout",
            "3s",
            "--body",
            "hi",
            "-v",
        ],
    );
    out.expect_code(0);
    let commands = server.received().commands;
    assert_eq!(
        commands[1..5],
        [
            "MAIL FROM:<me@x.test>",
            "RCPT TO:<a@x.test>",
            "RCPT TO:<b@x.test>",
            "DATA"
        ]
    );
}

#[test]
fn pipelined_partial_refusal_exits_3() {
    let server = ScriptedServer::start(
        Script::new()
            .capability("PIPELINING")
            .on("RCPT TO:<b@x.test>", "550 5.1.1 unknown")
            .hold_replies_until_data(),
    );
    let out = send(
        &server.server(),
        &["--to", "a@x.test,b@x.test", "--body", "hi"],
    );
    out.expect_code(3);
    assert!(
        out.stdout_text()
            .contains("refused b@x.test: 550 5.1.1 unknown"),
        "{}",
        out.stdout_text()
    );
    assert_eq!(server.received().contents.len(), 1);
}

#[test]
fn pipelined_with_no_recipient_ends_an_unwanted_354_with_an_empty_message() {
    // RFC 2920: if DATA was pipelined and still got 354 although no recipient was
    // accepted, the client must send just the terminating dot.
    let server = ScriptedServer::start(
        Script::new()
            .capability("PIPELINING")
            .on("RCPT", "550 5.1.1 unknown")
            .on(".", "554 5.5.1 no valid recipients"),
    );
    let out = send(
        &server.server(),
        &["--to", "a@x.test", "--body", "secret body"],
    );
    out.expect_code(24);
    assert_eq!(
        out.failure(),
        "sokkel: RCPT TO failed: the server said 550 5.1.1 unknown"
    );
    let received = server.received();
    assert_eq!(
        received.contents,
        [Vec::<u8>::new()],
        "only the dot was sent"
    );
    assert!(find(&received.bytes, b"secret body").is_none());
}

#[test]
fn pipelined_mail_refusal_exits_23() {
    expect_failure(
        Script::new()
            .capability("PIPELINING")
            .on("MAIL", "550 5.7.1 go away")
            .on("RCPT", "503 5.5.1 MAIL first")
            .on("DATA", "503 5.5.1 MAIL first"),
        &[],
        23,
        "sokkel: MAIL FROM failed: the server said 550 5.7.1 go away",
    );
}

/// A 421 "closing" reply to a pipelined command, then the connection closes: the
/// user must see the 421 and the stage it answered, not a later read failing.
#[test]
fn pipelined_421_to_mail_then_hangup_reports_the_421() {
    expect_failure(
        Script::new()
            .capability("PIPELINING")
            .on("MAIL", Reply::Hangup("421 4.3.2 shutting down".into())),
        &[],
        23,
        "sokkel: MAIL FROM failed: the server said 421 4.3.2 shutting down",
    );
}

#[test]
fn pipelined_421_to_rcpt_then_hangup_reports_the_421() {
    expect_failure(
        Script::new()
            .capability("PIPELINING")
            .on("RCPT", Reply::Hangup("421 4.3.2 shutting down".into())),
        &[],
        24,
        "sokkel: RCPT TO failed: the server said 421 4.3.2 shutting down",
    );
}

#[test]
fn unpipelined_421_to_mail_then_hangup_reports_the_421() {
    expect_failure(
        Script::new().on("MAIL", Reply::Hangup("421 4.3.2 shutting down".into())),
        &[],
        23,
        "sokkel: MAIL FROM failed: the server said 421 4.3.2 shutting down",
    );
}

#[test]
fn sloppy_and_broken_greetings() {
    // Bare LF line ends are tolerated in replies.
    let server = ScriptedServer::start(Script::new().banner("220-first line\n220 second line"));
    send(&server.server(), &["--to", "a@x.test", "--body", "hi"]).expect_code(0);
    // Lines of one reply with different codes, and a reply far too long.
    expect_failure(
        Script::new().banner("220-first line\r\n250 second line"),
        &[],
        21,
        "sokkel: greeting failed: the server's reply makes no sense",
    );
    let long = format!("220 {}", "x".repeat(10_000));
    expect_failure(
        Script::new().banner(long.as_str()),
        &[],
        21,
        "sokkel: greeting failed: the server's reply makes no sense",
    );
    expect_failure(
        Script::new().banner("hello there"),
        &[],
        21,
        "sokkel: greeting failed: the server's reply makes no sense",
    );
}

#[test]
fn message_over_the_servers_size_exits_23_before_mail() {
    let (out, received) = expect_failure(
        Script::new().capability("SIZE 100"),
        &["--subject", "too big for a 100 byte limit"],
        23,
        "sokkel: MAIL FROM failed: the message is ",
    );
    assert!(out.failure().contains("SIZE"), "{}", out.failure());
    assert!(!saw(&received, "MAIL"), "{:?}", received.commands);
}

#[test]
fn size_parameter_declares_the_bytes_transmitted() {
    let server = ScriptedServer::start(Script::new().capability("SIZE 10000000"));
    // No newline at the end: the client adds the CRLF, and it counts (RFC 1870:
    // "the number of octets, including CR-LF pairs ... to be transmitted").
    let out = send(
        &server.server(),
        &["--to", "a@x.test", "--body", "no final newline"],
    );
    out.expect_code(0);
    let received = server.received();
    let mail = received
        .commands
        .iter()
        .find(|c| c.starts_with("MAIL"))
        .unwrap();
    let declared: usize = mail
        .split(" SIZE=")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no SIZE= in {mail:?}"));
    let content = &received.contents[0];
    assert_eq!(
        declared,
        content.len(),
        "SIZE={declared} but {} octets were transmitted (no dot-stuffing here)",
        content.len()
    );
}

#[test]
fn non_ascii_address_without_smtputf8_exits_23() {
    let (_, received) = expect_failure(
        Script::new(),
        &["--to", "zoë@x.test"],
        23,
        "sokkel: MAIL FROM failed: an address is not ASCII and the server does not offer SMTPUTF8",
    );
    assert!(!saw(&received, "MAIL"), "{:?}", received.commands);
}

#[test]
fn non_ascii_address_with_smtputf8_asks_for_it() {
    let server = ScriptedServer::start(Script::new().capability("SMTPUTF8"));
    let out = send(&server.server(), &["--to", "zoë@x.test", "--body", "hi"]);
    out.expect_code(0);
    let commands = server.received().commands;
    assert!(
        commands
            .iter()
            .any(|c| c.starts_with("MAIL FROM:<me@x.test>") && c.ends_with(" SMTPUTF8")),
        "{commands:?}"
    );
    assert!(
        commands.contains(&"RCPT TO:<zoë@x.test>".to_owned()),
        "{commands:?}"
    );
}

#[test]
fn eight_bit_content_declares_8bitmime() {
    let dir = tempdir();
    let data = dir.path().join("m.eml");
    std::fs::write(
        &data,
        "Subject: 8bit\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nblåbær\r\n",
    )
    .unwrap();
    let server = ScriptedServer::start(Script::new());
    let out = send(
        &server.server(),
        &["--to", "a@x.test", "--data", data.to_str().unwrap()],
    );
    out.expect_code(0);
    let commands = server.received().commands;
    assert!(
        commands.contains(&"MAIL FROM:<me@x.test> BODY=8BITMIME".to_owned()),
        "{commands:?}"
    );
}

#[test]
fn data_file_with_bare_line_ends_and_dots_goes_out_as_crlf_only_and_stuffed() {
    let dir = tempdir();
    let data = dir.path().join("m.eml");
    // Bare LF, bare CR, a lone dot, a dotted line, the smuggling shapes `\n.\n` and
    // `\r.\r`, and no final line end.
    std::fs::write(
        &data,
        b"Subject: wire\nFrom: me@x.test\r\rline1\nline2\r.\n..two\n\r.\r\nend",
    )
    .unwrap();
    let server = ScriptedServer::start(Script::new());
    let out = send(
        &server.server(),
        &["--to", "a@x.test", "--data", data.to_str().unwrap()],
    );
    out.expect_code(0);
    let received = server.received();
    assert_only_crlf(&received.bytes, "everything the client sent");
    assert_eq!(
        String::from_utf8_lossy(&received.contents[0]),
        "Subject: wire\r\nFrom: me@x.test\r\n\r\nline1\r\nline2\r\n..\r\n...two\r\n\r\n..\r\nend\r\n"
    );
}

#[test]
fn verbose_shows_the_conversation_and_summarises_the_content() {
    let server = ScriptedServer::start(Script::new());
    let out = send(
        &server.server(),
        &[
            "--to",
            "a@x.test",
            "--subject",
            "transcript",
            "--body",
            "line\n",
            "-v",
        ],
    );
    out.expect_code(0);
    let transcript = out.transcript();
    let addr = server.server();
    let start = [
        format!("=== connected to {addr}"),
        " <- 220 scripted.test ESMTP ready".to_owned(),
        " -> EHLO client.test".to_owned(),
        " <- 250-scripted.test greets you".to_owned(),
        " <- 250-8BITMIME".to_owned(),
        " <- 250 ENHANCEDSTATUSCODES".to_owned(),
        " -> MAIL FROM:<me@x.test>".to_owned(),
        " <- 250 2.1.0 sender ok".to_owned(),
        " -> RCPT TO:<a@x.test>".to_owned(),
        " <- 250 2.1.5 recipient ok".to_owned(),
        " -> DATA".to_owned(),
        " <- 354 go ahead".to_owned(),
    ];
    assert_eq!(transcript[..start.len()], start, "{transcript:#?}");
    let rest = &transcript[start.len()..];
    assert!(
        rest[0].starts_with(" -> [message content: ") && rest[0].ends_with(" bytes; -vv shows it]"),
        "{rest:?}"
    );
    assert_eq!(
        rest[1..],
        [
            " -> .",
            " <- 250 2.0.0 queued as 1",
            " -> QUIT",
            " <- 221 2.0.0 bye"
        ]
    );
    assert!(
        !out.stderr.contains("Subject: transcript"),
        "-v shows no content"
    );

    let out = send(
        &server.server(),
        &[
            "--to",
            "a@x.test",
            "--subject",
            "transcript",
            "--body",
            ".dot\n",
            "-vv",
        ],
    );
    out.expect_code(0);
    assert!(
        out.stderr.contains(" -> Subject: transcript"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(" -> ..dot"),
        "-vv shows the wire form: {}",
        out.stderr
    );
}

#[test]
fn without_verbose_stderr_is_empty() {
    let server = ScriptedServer::start(Script::new());
    let out = send(&server.server(), &["--to", "a@x.test", "--body", "hi"]);
    out.expect_code(0);
    assert_eq!(out.stderr, "");
    assert_eq!(
        out.stdout_text(),
        "sent to a@x.test: 250 2.0.0 queued as 1\n"
    );
}

#[test]
fn repeat_reuses_one_connection() {
    let server = ScriptedServer::start(Script::new());
    let out = send(
        &server.server(),
        &["--to", "a@x.test", "--body", "hi", "--repeat", "5"],
    );
    out.expect_code(0);
    let received = server.received();
    assert_eq!(received.connections, 1);
    assert_eq!(received.contents.len(), 5);
    assert_eq!(
        received
            .commands
            .iter()
            .filter(|c| c.starts_with("EHLO"))
            .count(),
        1
    );
    assert!(
        out.stdout_text()
            .lines()
            .any(|l| l.starts_with("sent 5 messages in ") && l.ends_with(" messages/s)")),
        "{}",
        out.stdout_text()
    );
}

#[test]
fn ipv6_server_in_brackets() {
    let server = ScriptedServer::start_on("[::1]:0", Script::new());
    let port = server.server().rsplit(':').next().unwrap().to_owned();
    let out = send(
        &format!("[::1]:{port}"),
        &["--to", "a@x.test", "--body", "hi", "-v"],
    );
    out.expect_code(0);
    assert!(
        out.stderr
            .contains(&format!("=== connected to [::1]:{port}")),
        "{}",
        out.stderr
    );
}

#[test]
fn usage_and_input_errors() {
    let server = ScriptedServer::start(Script::new());
    let addr = server.server();
    let out = send(&addr, &["--to", "a@x.test", "--tls", "sometimes"]);
    out.expect_code(2);
    let out = send(
        &addr,
        &["--to", "a@x.test", "--attach", "/nonexistent/file.pdf"],
    );
    out.expect_code(1);
    assert!(
        out.failure().contains("/nonexistent/file.pdf"),
        "{}",
        out.stderr
    );
    let out = send(&addr, &["--to", "not an address"]);
    out.expect_code(1);
    let out = send(&addr, &["--body", "no recipient"]);
    out.expect_code(2);
    let dir = tempdir();
    let data = dir.path().join("m.eml");
    std::fs::write(&data, "Subject: no recipient header\r\n\r\nhi\r\n").unwrap();
    let out = send(&addr, &["--data", data.to_str().unwrap()]);
    out.expect_code(1);
    assert!(out.failure().contains("--to"), "{}", out.stderr);
    let out = send(&addr, &["--to", "a@x.test", "--header", "no colon here"]);
    out.expect_code(1);
    assert_eq!(server.received().connections, 0, "nothing was sent");
}

// ---------------------------------------------------------------------------------
// What arrives at `sokkel mail serve`, as Python's email package reads it
// ---------------------------------------------------------------------------------

/// Sends to `catcher` and returns the one stored message, parsed, and the raw bytes.
fn send_and_parse(catcher: &Catcher, args: &[&str]) -> (Parsed, Vec<u8>) {
    let out = send(&catcher.server(), args);
    out.expect_code(0);
    let raw = catcher.only_raw();
    assert_only_crlf(&raw, "the stored message");
    let parsed = parse_message(&raw);
    assert_eq!(
        parsed.defects(),
        Vec::<String>::new(),
        "email package defects"
    );
    (parsed, raw)
}

#[test]
fn plain_text_message_arrives_as_sent() {
    let catcher = Catcher::start();
    let out = sokkel([
        "mail",
        "send",
        "--server",
        &catcher.server(),
        "--from",
        "Test Sender <me@x.test>",
        "--to",
        "a@x.test",
        "--subject",
        "plain and simple",
        "--body",
        "line one\nline two\n",
    ])
    .run();
    out.expect_code(0);
    assert!(
        out.stdout_text().starts_with("sent to a@x.test: 250 "),
        "{}",
        out.stdout_text()
    );
    let raw = catcher.only_raw();
    assert_only_crlf(&raw, "the stored message");
    let parsed = parse_message(&raw);
    assert_eq!(parsed.defects(), Vec::<String>::new());
    assert_eq!(
        parsed.addresses("from"),
        Some(vec![pair("Test Sender", "me@x.test")])
    );
    assert_eq!(parsed.addresses("to"), Some(vec![pair("", "a@x.test")]));
    assert_eq!(parsed.addresses("cc"), None);
    assert_eq!(parsed.subject().as_deref(), Some("plain and simple"));
    assert_eq!(parsed.content_type(), "text/plain");
    assert_eq!(parsed.header("MIME-Version"), "1.0");
    assert!(parsed.date_parses(), "Date: {:?}", parsed.headers("Date"));
    let id = parsed.message_id().expect("a Message-ID");
    assert!(id.starts_with('<') && id.ends_with("@x.test>"), "{id}");
    assert_eq!(parsed.text_body(), "line one\nline two\n");
    assert_eq!(
        catcher.envelope("latest"),
        ("me@x.test".to_owned(), vec!["a@x.test".to_owned()])
    );
}

#[test]
fn body_from_stdin() {
    let catcher = Catcher::start();
    let out = sokkel([
        "mail",
        "send",
        "--server",
        &catcher.server(),
        "--from",
        "me@x.test",
        "--to",
        "a@x.test",
    ])
    .stdin("piped in\nsecond line\n")
    .run();
    out.expect_code(0);
    assert_eq!(
        parse_message(&catcher.only_raw()).text_body(),
        "piped in\nsecond line\n"
    );
}

#[test]
fn utf8_subject_and_display_names_are_encoded_and_come_back_intact() {
    let catcher = Catcher::start();
    let subject =
        "Grüße aus Tromsø — 日本語の件名 ✓ and a long tail to make the encoder fold the line";
    let (parsed, raw) = send_and_parse(
        &catcher,
        &[
            "--from",
            "Åse Øvrebø <ase@x.test>",
            "--to",
            "Zoë Ünal <zoe@x.test>,山田 太郎 <yamada@x.test>",
            "--cc",
            "Seán Ó Briain <sean@x.test>",
            "--subject",
            subject,
            "--body",
            "Blåbærsyltetøy ✓\n",
        ],
    );
    let header_end = find(&raw, b"\r\n\r\n").unwrap();
    assert!(
        raw[..header_end].is_ascii(),
        "headers must be RFC 2047 encoded"
    );
    assert_eq!(
        parsed.addresses("from"),
        Some(vec![pair("Åse Øvrebø", "ase@x.test")])
    );
    assert_eq!(
        parsed.addresses("to"),
        Some(vec![
            pair("Zoë Ünal", "zoe@x.test"),
            pair("山田 太郎", "yamada@x.test")
        ])
    );
    assert_eq!(
        parsed.addresses("cc"),
        Some(vec![pair("Seán Ó Briain", "sean@x.test")])
    );
    assert_eq!(parsed.subject().as_deref(), Some(subject));
    assert_eq!(parsed.text_body(), "Blåbærsyltetøy ✓\n");
}

#[test]
fn quoted_display_name_with_a_comma() {
    // RFC 5322 allows a comma inside a quoted display name; splitting the list on
    // every comma breaks such an address in two.
    let catcher = Catcher::start();
    let (parsed, _) = send_and_parse(
        &catcher,
        &[
            "--to",
            "\"O'Brien, Seán\" <sean@x.test>,b@x.test",
            "--body",
            "hi",
        ],
    );
    assert_eq!(
        parsed.addresses("to"),
        Some(vec![
            pair("O'Brien, Seán", "sean@x.test"),
            pair("", "b@x.test")
        ])
    );
}

#[test]
fn html_alternative_and_attachments_of_every_byte_value() {
    let catcher = Catcher::start();
    let dir = tempdir();
    let text = dir.path().join("body.txt");
    let html = dir.path().join("body.html");
    let bin = dir.path().join("all-bytes.bin");
    let pdf = dir.path().join("Report.PDF");
    let notes = dir.path().join("notes.txt");
    std::fs::write(&text, "Plain part ✓\n").unwrap();
    std::fs::write(&html, "<p>HTML part <b>✓</b></p>\n").unwrap();
    let all_bytes: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    std::fs::write(&bin, &all_bytes).unwrap();
    std::fs::write(&pdf, b"%PDF-1.4\n\x00\xff\r\n\r.\n%%EOF").unwrap();
    std::fs::write(&notes, "notes\r\n.\r\nmore\n").unwrap();
    let path = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    let (parsed, _) = send_and_parse(
        &catcher,
        &[
            "--to",
            "a@x.test",
            "--subject",
            "parts",
            "--body-file",
            &path(&text),
            "--html-file",
            &path(&html),
            "--attach",
            &path(&bin),
            "--attach",
            &path(&pdf),
            "--attach",
            &path(&notes),
        ],
    );
    assert_eq!(parsed.content_type(), "multipart/mixed");
    let parts = parsed.parts();
    let summary: Vec<(&str, Option<&str>, Option<&str>)> = parts
        .iter()
        .map(|p| {
            (
                p.content_type.as_str(),
                p.disposition.as_deref(),
                p.filename.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("text/plain", None, None),
            ("text/html", None, None),
            (
                "application/octet-stream",
                Some("attachment"),
                Some("all-bytes.bin")
            ),
            ("application/pdf", Some("attachment"), Some("Report.PDF")),
            ("text/plain", Some("attachment"), Some("notes.txt")),
        ],
        "{parts:#?}"
    );
    assert_eq!(parts[0].text.as_deref(), Some("Plain part ✓\n"));
    assert_eq!(
        parts[1].text.as_deref(),
        Some("<p>HTML part <b>✓</b></p>\n")
    );
    assert_eq!(
        parts[2].bytes, all_bytes,
        "binary attachment, byte for byte"
    );
    assert_eq!(parts[3].bytes, std::fs::read(&pdf).unwrap());
    assert_eq!(parts[4].bytes, std::fs::read(&notes).unwrap());
}

#[test]
fn html_alone_makes_multipart_alternative() {
    let catcher = Catcher::start();
    let dir = tempdir();
    let html = dir.path().join("b.html");
    std::fs::write(&html, "<h1>Hi</h1>\n").unwrap();
    let (parsed, _) = send_and_parse(
        &catcher,
        &[
            "--to",
            "a@x.test",
            "--body",
            "Hi\n",
            "--html-file",
            html.to_str().unwrap(),
        ],
    );
    assert_eq!(parsed.content_type(), "multipart/alternative");
    let types: Vec<String> = parsed.parts().into_iter().map(|p| p.content_type).collect();
    assert_eq!(types, ["text/plain", "text/html"]);
}

#[test]
fn extra_headers_are_added() {
    let catcher = Catcher::start();
    let (parsed, _) = send_and_parse(
        &catcher,
        &[
            "--to",
            "a@x.test",
            "--body",
            "hi",
            "--header",
            "X-Test-Case: extra headers",
            "--header",
            "Reply-To: replies@x.test",
            "--header",
            "X-Priority:1",
        ],
    );
    assert_eq!(parsed.header("X-Test-Case"), "extra headers");
    assert_eq!(parsed.header("Reply-To"), "replies@x.test");
    assert_eq!(parsed.header("X-Priority"), "1");
}

#[test]
fn cc_and_bcc_get_it_and_bcc_is_in_no_header() {
    let catcher = Catcher::start();
    let (parsed, raw) = send_and_parse(
        &catcher,
        &[
            "--to",
            "a@x.test",
            "--cc",
            "Carol <c@x.test>,d@x.test",
            "--bcc",
            "Hidden <b@x.test>",
            "--body",
            "hi",
        ],
    );
    let (_, rcpts) = catcher.envelope("latest");
    assert_eq!(rcpts, ["a@x.test", "c@x.test", "d@x.test", "b@x.test"]);
    assert_eq!(parsed.addresses("to"), Some(vec![pair("", "a@x.test")]));
    assert_eq!(
        parsed.addresses("cc"),
        Some(vec![pair("Carol", "c@x.test"), pair("", "d@x.test")])
    );
    assert_eq!(parsed.addresses("bcc"), None);
    let text = String::from_utf8_lossy(&raw).to_ascii_lowercase();
    assert!(
        !text.contains("bcc:") && !text.contains("b@x.test"),
        "{text}"
    );
}

#[test]
fn data_file_with_bare_lf_and_cr_is_stored_with_crlf_only() {
    let catcher = Catcher::start();
    let dir = tempdir();
    let data = dir.path().join("m.eml");
    std::fs::write(
        &data,
        b"From: me@x.test\nTo: a@x.test\rSubject: bare line ends\r\n\nLF line\nCR line\r.\n..two dots\r\nend",
    )
    .unwrap();
    let out = send(
        &catcher.server(),
        &["--to", "a@x.test", "--data", data.to_str().unwrap()],
    );
    out.expect_code(0);
    let raw = catcher.only_raw();
    assert_eq!(
        String::from_utf8_lossy(&raw),
        "From: me@x.test\r\nTo: a@x.test\r\nSubject: bare line ends\r\n\r\nLF line\r\nCR line\r\n.\r\n..two dots\r\nend\r\n"
    );
    assert_eq!(catcher.list()[0]["bare_lf"], false);
}

#[test]
fn data_file_without_recipients_uses_its_headers() {
    let catcher = Catcher::start();
    let dir = tempdir();
    let data = dir.path().join("m.eml");
    std::fs::write(
        &data,
        "From: me@x.test\r\nTo: a@x.test\r\nCc: c@x.test\r\nSubject: s\r\n\r\nhi\r\n",
    )
    .unwrap();
    let out = send(&catcher.server(), &["--data", data.to_str().unwrap()]);
    out.expect_code(0);
    assert_eq!(catcher.envelope("latest").1, ["a@x.test", "c@x.test"]);
}

#[test]
fn body_lines_starting_with_dots_survive() {
    let catcher = Catcher::start();
    let body = ".\n..\n.leading\nmiddle . dot\n.\n...\n";
    let (parsed, _) = send_and_parse(&catcher, &["--to", "a@x.test", "--body", body]);
    assert_eq!(parsed.text_body(), body);
}

#[test]
fn dry_run_prints_the_message_and_sends_nothing() {
    let server = ScriptedServer::start(Script::new());
    let out = send(
        &server.server(),
        &[
            "--to",
            "a@x.test",
            "--subject",
            "dry",
            "--body",
            "not sent\n",
            "--dry-run",
        ],
    );
    out.expect_code(0);
    assert_only_crlf(&out.stdout, "the dry-run output");
    let parsed = parse_message(&out.stdout);
    assert_eq!(parsed.subject().as_deref(), Some("dry"));
    assert_eq!(parsed.addresses("to"), Some(vec![pair("", "a@x.test")]));
    assert_eq!(parsed.text_body(), "not sent\n");
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(server.received().connections, 0, "--dry-run connected");
}

#[test]
fn repeat_50_stores_50() {
    let catcher = Catcher::start();
    let out = send(
        &catcher.server(),
        &[
            "--to",
            "a@x.test",
            "--subject",
            "load",
            "--body",
            "hi",
            "--repeat",
            "50",
        ],
    );
    out.expect_code(0);
    assert!(
        out.stdout_text().contains("sent 50 messages in "),
        "{}",
        out.stdout_text()
    );
    let summaries = catcher.list();
    assert_eq!(summaries.len(), 50);
    assert!(summaries.iter().all(|m| m["subject"] == "load"));
}

#[test]
fn catcher_takes_a_utf8_envelope() {
    let catcher = Catcher::start();
    let out = send(&catcher.server(), &["--to", "zoë@x.test", "--body", "hi"]);
    out.expect_code(0);
    assert_eq!(catcher.envelope("latest").1, ["zoë@x.test"]);
}

// ---------------------------------------------------------------------------------
// sendmail
// ---------------------------------------------------------------------------------

/// `sokkel sendmail ARGS` pointed at `catcher` through the environment.
fn sendmail(catcher: &Catcher, args: &[&str], stdin: &str) -> Finished {
    let mut all = vec!["sendmail"];
    all.extend_from_slice(args);
    sokkel(all)
        .env("SOKKEL_SMTP_SERVER", catcher.server())
        .env("SOKKEL_SMTP_TIMEOUT", "10s")
        .env("USER", "cron")
        .stdin(stdin)
        .run()
}

#[test]
fn sendmail_t_takes_to_cc_and_bcc_and_strips_bcc() {
    let catcher = Catcher::start();
    // As PHP's mail() hands it over: LF line ends, no From, Date or Message-ID.
    let message = "To: Ann <a@x.test>, b@x.test\nCc: c@x.test\nBcc: Hidden <h@x.test>,\n  h2@x.test\nSubject: via sendmail -t\n\nHello from -t\n";
    let out = sendmail(&catcher, &["-t", "-i", "-f", "app@x.test"], message);
    out.expect_code(0);
    let (from, rcpts) = catcher.envelope("latest");
    assert_eq!(from, "app@x.test");
    let mut rcpts = rcpts;
    rcpts.sort();
    assert_eq!(
        rcpts,
        ["a@x.test", "b@x.test", "c@x.test", "h2@x.test", "h@x.test"]
    );
    let raw = catcher.only_raw();
    assert_only_crlf(&raw, "the stored message");
    let text = String::from_utf8_lossy(&raw).to_ascii_lowercase();
    assert!(
        !text.contains("bcc") && !text.contains("h@x.test") && !text.contains("h2@x.test"),
        "{text}"
    );
    let parsed = parse_message(&raw);
    assert_eq!(parsed.defects(), Vec::<String>::new());
    assert_eq!(
        parsed.addresses("to"),
        Some(vec![pair("Ann", "a@x.test"), pair("", "b@x.test")])
    );
    assert_eq!(parsed.addresses("cc"), Some(vec![pair("", "c@x.test")]));
    assert_eq!(
        parsed.addresses("from"),
        Some(vec![pair("", "app@x.test")]),
        "From added from -f"
    );
    assert!(parsed.date_parses(), "Date added");
    assert!(parsed.message_id().is_some(), "Message-ID added");
    assert_eq!(parsed.text_body(), "Hello from -t\n");
}

#[test]
fn sendmail_keeps_headers_the_message_has() {
    let catcher = Catcher::start();
    let message = "From: Boss <boss@x.test>\nDate: Mon, 2 Jan 2006 15:04:05 +0000\nMessage-ID: <fixed@x.test>\nSubject: kept\n\nbody\n";
    sendmail(&catcher, &["-i", "a@x.test"], message).expect_code(0);
    let parsed = parse_message(&catcher.only_raw());
    assert_eq!(parsed.headers("From"), ["Boss <boss@x.test>"]);
    assert_eq!(parsed.headers("Date"), ["Mon, 02 Jan 2006 15:04:05 +0000"]);
    assert_eq!(parsed.headers("Message-ID"), ["<fixed@x.test>"]);
    // Without -f the envelope sender is the user at this host.
    assert!(catcher.envelope("latest").0.starts_with("cron@"));
}

#[test]
fn sendmail_lone_dot_ends_input_unless_i() {
    let message = "Subject: dots\n\nbefore\n.\nafter\n";
    for (args, body) in [
        (&["a@x.test"][..], "before\n"),
        (&["-i", "a@x.test"][..], "before\n.\nafter\n"),
        (&["-oi", "a@x.test"][..], "before\n.\nafter\n"),
    ] {
        let catcher = Catcher::start();
        sendmail(&catcher, args, message).expect_code(0);
        let parsed = parse_message(&catcher.only_raw());
        assert_eq!(parsed.text_body(), body, "sendmail {args:?}");
    }
}

#[test]
fn sendmail_recipients_as_arguments_with_commas() {
    let catcher = Catcher::start();
    sendmail(
        &catcher,
        &["-i", "a@x.test, b@x.test", "c@x.test"],
        "Subject: args\n\nhi\n",
    )
    .expect_code(0);
    assert_eq!(
        catcher.envelope("latest").1,
        ["a@x.test", "b@x.test", "c@x.test"]
    );
}

#[test]
fn sendmail_without_recipients_fails() {
    let catcher = Catcher::start();
    let out = sendmail(&catcher, &["-i"], "Subject: nobody\n\nhi\n");
    out.expect_code(1);
    assert!(out.failure().contains("-t"), "{}", out.stderr);
    assert_eq!(catcher.list().len(), 0);
}

#[test]
fn sendmail_exit_codes_are_those_of_mail_send() {
    let out = sokkel(["sendmail", "-i", "a@x.test"])
        .env(
            "SOKKEL_SMTP_SERVER",
            format!("127.0.0.1:{}", free_tcp_port()),
        )
        .stdin("Subject: s\n\nhi\n")
        .run();
    out.expect_code(20);
    let server = ScriptedServer::start(Script::new().on("RCPT", "550 5.1.1 no"));
    let out = sokkel(["sendmail", "-i", "a@x.test"])
        .env("SOKKEL_SMTP_SERVER", server.server())
        .stdin("Subject: s\n\nhi\n")
        .run();
    out.expect_code(24);
}

#[test]
fn invoked_as_sendmail_through_a_symlink() {
    let catcher = Catcher::start();
    let dir = tempdir();
    let link = dir.path().join("sendmail");
    std::os::unix::fs::symlink(kit::process::SOKKEL, &link).unwrap();
    let out = program(&link, ["-t", "-oi"])
        .env("SOKKEL_SMTP_SERVER", catcher.server())
        .stdin("To: a@x.test\nSubject: symlinked\n\nhi\n")
        .run();
    out.expect_code(0);
    assert_eq!(
        parse_message(&catcher.only_raw()).subject().as_deref(),
        Some("symlinked")
    );
}

// ---------------------------------------------------------------------------------
// compose, with piped answers
// ---------------------------------------------------------------------------------

/// `sokkel mail compose` with its data directory in `data_home`.
fn compose(server: &str, data_home: &std::path::Path, answers: &str) -> Finished {
    sokkel([
        "mail",
        "compose",
        "--server",
        server,
        "--ehlo",
        "client.test",
        "--timeout",
        "10s",
    ])
    .env("XDG_DATA_HOME", data_home)
    .env("USER", "tester")
    .stdin(answers)
    .run()
}

fn remembered_from(data_home: &std::path::Path) -> Option<String> {
    std::fs::read_to_string(data_home.join("sokkel/compose-last-from")).ok()
}

#[test]
fn compose_happy_path() {
    let catcher = Catcher::start();
    let home = tempdir();
    let dir = tempdir();
    let attachment = dir.path().join("data.bin");
    std::fs::write(&attachment, [0u8, 1, 2, 255, b'\r', b'\n', b'.']).unwrap();
    let answers = format!(
        "Composer <me@x.test>\na@x.test, Bea <b@x.test>\nc@x.test\nCompose ✓\nline one\n.leading dot\n\nlast line\n.\n{}\n\ns\n",
        attachment.display()
    );
    let out = compose(&catcher.server(), home.path(), &answers);
    out.expect_code(0);
    assert_eq!(
        out.stdout_text().lines().count(),
        1,
        "one outcome line: {}",
        out.stdout_text()
    );
    let stdout = out.stdout_text();
    let line = stdout.trim_end();
    let prefix = format!(
        "Sent. {} accepted the message for a@x.test, b@x.test, c@x.test (250 ",
        catcher.server()
    );
    assert!(line.starts_with(&prefix) && line.ends_with(")."), "{line}");
    for prompt in [
        "From: ",
        "To: ",
        "Cc: ",
        "Subject: ",
        "attach> ",
        "Send, edit or cancel? [s/e/c] ",
    ] {
        assert!(
            out.stderr.contains(prompt),
            "prompt {prompt:?} missing from {}",
            out.stderr
        );
    }
    let raw = catcher.only_raw();
    assert_only_crlf(&raw, "the stored message");
    let parsed = parse_message(&raw);
    assert_eq!(parsed.defects(), Vec::<String>::new());
    assert_eq!(
        parsed.addresses("from"),
        Some(vec![pair("Composer", "me@x.test")])
    );
    assert_eq!(
        parsed.addresses("to"),
        Some(vec![pair("", "a@x.test"), pair("Bea", "b@x.test")])
    );
    assert_eq!(parsed.addresses("cc"), Some(vec![pair("", "c@x.test")]));
    assert_eq!(parsed.subject().as_deref(), Some("Compose ✓"));
    assert_eq!(parsed.text_body(), "line one\n.leading dot\n\nlast line\n");
    let parts = parsed.parts();
    let attached = parts
        .iter()
        .find(|p| p.filename.as_deref() == Some("data.bin"))
        .expect("the attachment");
    assert_eq!(attached.bytes, std::fs::read(&attachment).unwrap());
    assert_eq!(
        remembered_from(home.path()).as_deref(),
        Some("Composer <me@x.test>")
    );
}

#[test]
fn compose_edit_keeps_what_is_not_retyped() {
    let catcher = Catcher::start();
    let home = tempdir();
    // First round, then `e`: From kept (empty answer), To fixed, Cc kept empty,
    // Subject kept, body replaced; second time round `e` again keeps the body.
    let answers = "me@x.test\nwrong@x.test\n\nfirst subject\nfirst body\n.\n\ne\n\nright@x.test\n\n\nn\nsecond body\n.\n\ne\n\n\n\nfinal subject\ny\n\ns\n";
    let out = compose(&catcher.server(), home.path(), answers);
    out.expect_code(0);
    assert_eq!(
        out.stderr.matches("Keep the body? [y/n]").count(),
        2,
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("To: [wrong@x.test]"),
        "offers the old answer: {}",
        out.stderr
    );
    let parsed = parse_message(&catcher.only_raw());
    assert_eq!(parsed.addresses("from"), Some(vec![pair("", "me@x.test")]));
    assert_eq!(parsed.addresses("to"), Some(vec![pair("", "right@x.test")]));
    assert_eq!(parsed.addresses("cc"), None);
    assert_eq!(parsed.subject().as_deref(), Some("final subject"));
    assert_eq!(parsed.text_body(), "second body\n");
    assert_eq!(catcher.envelope("latest").1, ["right@x.test"]);
}

#[test]
fn compose_cancel_sends_nothing() {
    let catcher = Catcher::start();
    let home = tempdir();
    for answers in [
        "me@x.test\na@x.test\n\nsubject\nbody\n.\n\nc\n",
        // End of input before the question is answered.
        "me@x.test\na@x.test\n\nsubject\nbody\n.\n\n",
        // End of input in the middle of the fields.
        "me@x.test\na@x.test\n",
    ] {
        let out = compose(&catcher.server(), home.path(), answers);
        out.expect_code(1);
        assert!(
            out.stderr.contains("cancelled; nothing was sent"),
            "{}",
            out.stderr
        );
        assert!(
            !out.stdout_text().contains("Sent."),
            "{}",
            out.stdout_text()
        );
    }
    assert_eq!(catcher.list().len(), 0);
    assert_eq!(
        remembered_from(home.path()),
        None,
        "a cancelled From is not remembered"
    );
}

#[test]
fn compose_remembers_the_last_from() {
    let catcher = Catcher::start();
    let home = tempdir();
    let out = compose(&catcher.server(), home.path(), "");
    out.expect_code(1);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let default = format!("From: [tester@{}]", host.trim());
    assert!(
        out.stderr.contains(&default),
        "default From {default:?}: {}",
        out.stderr
    );

    compose(
        &catcher.server(),
        home.path(),
        "Remember Me <rm@x.test>\na@x.test\n\none\nbody\n.\n\ns\n",
    )
    .expect_code(0);
    let out = compose(
        &catcher.server(),
        home.path(),
        "\na@x.test\n\ntwo\nbody\n.\n\ns\n",
    );
    out.expect_code(0);
    assert!(
        out.stderr.contains("From: [Remember Me <rm@x.test>]"),
        "{}",
        out.stderr
    );
    let ids = kit::catcher::ids(&catcher.list());
    assert_eq!(ids.len(), 2);
    // The newer message, listed first.
    let parsed = parse_message(&catcher.raw(ids[0]));
    assert_eq!(
        parsed.addresses("from"),
        Some(vec![pair("Remember Me", "rm@x.test")])
    );
    assert_eq!(parsed.subject().as_deref(), Some("two"));
}

#[test]
fn compose_reports_a_refusal_in_plain_words() {
    let server = ScriptedServer::start(Script::new().on("RCPT", "550 5.1.1 no such user"));
    let home = tempdir();
    let out = compose(
        &server.server(),
        home.path(),
        "me@x.test\na@x.test\n\ns\nbody\n.\n\ns\n",
    );
    out.expect_code(24);
    assert_eq!(
        out.stdout_text().trim_end(),
        format!(
            "Not sent. {} accepted none of the recipients (it said: 550 5.1.1 no such user).",
            server.server()
        )
    );
    let out = compose(
        &format!("127.0.0.1:{}", free_tcp_port()),
        home.path(),
        "me@x.test\na@x.test\n\ns\nbody\n.\n\ns\n",
    );
    out.expect_code(20);
    assert!(
        out.stdout_text().starts_with("Not sent. Could not reach "),
        "{}",
        out.stdout_text()
    );
}
