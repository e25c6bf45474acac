//! TLS and AUTH on the catcher's SMTP side (issue #6), driven by Python's smtplib and
//! ssl modules (python3 is on every machine these tests run on) and raw sockets:
//! STARTTLS and SMTPS with a self-signed certificate, AUTH PLAIN and LOGIN with right
//! and wrong passwords, the STARTTLS pipelining attack, --require-tls, certificate
//! mistakes at start, and passwords kept out of the logs.

mod kit;

use std::net::SocketAddr;
use std::time::Duration;

use kit::peers::swaks;
use kit::{Catcher, python3, sokkel};

/// A catcher with a self-signed certificate, an auth file with one user
/// (`alice` / `wonder land`), a short failure delay, and an SMTPS listener.
fn secure_catcher(extra: &[&str]) -> Catcher {
    Catcher::builder()
        .users("# who may log in\nalice:wonder land\n")
        .args(&[
            "--tls-self-signed",
            "--auth-failure-delay",
            "50ms",
            "--smtps",
            "127.0.0.1:0",
        ])
        .args(extra)
        .start()
}

const SEND_WITH_STARTTLS: &str = r#"
import os, smtplib, ssl, sys
port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
    s.ehlo("client.test")
    before = s.esmtp_features.copy()
    s.starttls(context=ctx)
    s.ehlo("client.test")
    print("before:", sorted(before))
    print("after:", sorted(s.esmtp_features))
    print("tls:", s.sock.version(), s.sock.cipher()[0])
    try:
        s.login(user, password)
    except smtplib.SMTPAuthenticationError as e:
        print("login refused:", e.smtp_code, e.smtp_error.decode(), flush=True)
        os._exit(0)  # the server may have closed the session: no QUIT
    s.sendmail("app@x.test", ["dev@y.test"], b"Subject: over tls\r\n\r\nsecret body\r\n")
    print("sent")
"#;

#[test]
fn smtplib_starttls_then_login_stores_the_tls_parameters_and_the_user() {
    let catcher = secure_catcher(&[]);
    let port = catcher.addr().port().to_string();
    let run = python3(SEND_WITH_STARTTLS, &[&port, "alice", "wonder land"]).run();
    let out = run.assert_success("smtplib starttls + login").stdout_text();
    let before = out.lines().find(|l| l.starts_with("before:")).unwrap();
    let after = out.lines().find(|l| l.starts_with("after:")).unwrap();
    assert!(
        before.contains("'starttls'") && !before.contains("'auth'"),
        "{out}"
    );
    assert!(
        after.contains("'auth'") && !after.contains("'starttls'"),
        "{out}"
    );
    assert!(out.contains("sent"), "{out}");

    let tls = out.lines().find_map(|l| l.strip_prefix("tls: ")).unwrap();
    let shown = catcher.envelope_text("latest");
    assert!(
        shown.contains(&format!("TLS:       {tls}")),
        "client saw {tls}; store says:\n{shown}"
    );
    assert!(shown.contains("AUTH:      alice"), "{shown}");
}

#[test]
fn wrong_password_gets_535_and_the_password_never_reaches_the_log() {
    let catcher = secure_catcher(&["--max-auth-failures", "2"]);
    let port = catcher.addr().port().to_string();
    let run = python3(SEND_WITH_STARTTLS, &[&port, "alice", "s3cret-guess"]).run();
    let out = run.assert_success("smtplib wrong password").stdout_text();
    // smtplib tries PLAIN, then LOGIN: both refused, and the second closes.
    assert!(
        out.contains("login refused: 535 5.7.8 Authentication credentials invalid"),
        "{out}"
    );
    assert!(catcher.list().is_empty());

    // A user that does not exist is refused the same way.
    let run = python3(SEND_WITH_STARTTLS, &[&port, "mallory", "wonder land"]).run();
    assert!(
        run.assert_success("unknown user")
            .stdout_text()
            .contains("login refused: 535")
    );

    catcher
        .stderr
        .wait_until(Duration::from_secs(5), |lines| {
            lines
                .iter()
                .filter(|l| l.contains("authentication failed"))
                .count()
                >= 2
        })
        .expect("each failure is logged");
    let logs = format!("{}{}", catcher.stdout.text(), catcher.stderr.text());
    for secret in ["s3cret-guess", "wonder land", "wonder"] {
        assert!(!logs.contains(secret), "{secret:?} in the logs:\n{logs}");
    }
}

#[test]
fn smtps_is_tls_from_the_first_byte_and_the_fingerprint_printed_matches() {
    let catcher = secure_catcher(&[]);
    let smtps = catcher.smtps[0];
    let printed = catcher
        .stdout
        .snapshot()
        .iter()
        .find_map(|l| {
            l.strip_prefix("TLS self-signed certificate, SHA-256 fingerprint ")
                .map(str::to_string)
        })
        .unwrap_or_else(|| panic!("no fingerprint line:\n{}", catcher.stdout.text()));
    let program = r#"
import hashlib, smtplib, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
with smtplib.SMTP_SSL("127.0.0.1", int(sys.argv[1]), context=ctx, timeout=20) as s:
    code, _ = s.ehlo("client.test")
    der = s.sock.getpeercert(binary_form=True)
    print("fingerprint:", ":".join("%02X" % b for b in hashlib.sha256(der).digest()))
    print("starttls offered:", s.has_extn("starttls"))
    s.login("alice", "wonder land")
    s.sendmail("app@x.test", ["dev@y.test"], b"Subject: smtps\r\n\r\nhi\r\n")
    print("sent")
"#;
    let out = python3(program, &[&smtps.port().to_string()])
        .run()
        .assert_success("smtplib SMTP_SSL")
        .stdout_text();
    assert!(
        out.contains(&format!("fingerprint: {printed}")),
        "printed {printed}\n{out}"
    );
    assert!(out.contains("starttls offered: False"), "{out}");
    assert!(out.contains("sent"), "{out}");
    let shown = catcher.envelope_text("latest");
    assert!(shown.contains("TLS:       TLSv1.3"), "{shown}");
}

#[test]
fn commands_pipelined_behind_starttls_are_discarded_not_executed() {
    let catcher = secure_catcher(&[]);
    // CVE-2011-0411: a man in the middle appends a command to the client's STARTTLS;
    // a server that kept the bytes would run it inside the TLS session.
    let program = r#"
import socket, ssl, sys
sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
f = sock.makefile("rb")
def reply():
    lines = []
    while True:
        line = f.readline().decode()
        lines.append(line.rstrip("\r\n"))
        if line[3:4] != "-":
            return lines
print("greeting", reply())
sock.sendall(b"EHLO client.test\r\n"); reply()
sock.sendall(b"STARTTLS\r\nMAIL FROM:<evil@x.test>\r\nRCPT TO:<victim@y.test>\r\n")
print("starttls", reply())
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
tls = ctx.wrap_socket(sock)
g = tls.makefile("rb")
tls.sendall(b"EHLO client.test\r\nRCPT TO:<b@y.test>\r\nDATA\r\nQUIT\r\n")
for _ in range(4):
    lines = []
    while True:
        line = g.readline().decode()
        lines.append(line.rstrip("\r\n"))
        if line[3:4] != "-":
            break
    print("after", lines[-1])
"#;
    let out = python3(program, &[&catcher.addr().port().to_string()])
        .run()
        .assert_success("pipelined STARTTLS")
        .stdout_text();
    let after: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("after "))
        .collect();
    assert!(
        out.contains("starttls ['220 2.0.0 Ready to start TLS']"),
        "{out}"
    );
    assert_eq!(after.len(), 4, "{out}");
    assert!(after[0].starts_with("250 "), "{out}");
    assert_eq!(after[1], "503 5.5.1 Need MAIL before RCPT", "{out}");
    assert_eq!(after[2], "503 5.5.1 Need MAIL command", "{out}");
    assert!(after[3].starts_with("221 "), "{out}");
    assert!(catcher.list().is_empty());
}

#[test]
fn require_tls_refuses_mail_in_clear_text() {
    let catcher = secure_catcher(&["--require-tls"]);
    let program = r#"
import smtplib, sys
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20) as s:
    try:
        s.sendmail("app@x.test", ["dev@y.test"], b"Subject: clear\r\n\r\nhi\r\n")
        print("sent")
    except smtplib.SMTPSenderRefused as e:
        print("refused:", e.smtp_code, e.smtp_error.decode())
"#;
    let out = python3(program, &[&catcher.addr().port().to_string()])
        .run()
        .assert_success("clear-text send")
        .stdout_text();
    assert_eq!(
        out.trim(),
        "refused: 530 5.7.0 Must issue a STARTTLS command first"
    );
    assert!(catcher.list().is_empty());
}

#[test]
fn auth_is_not_offered_in_clear_text_unless_allowed() {
    let program = r#"
import smtplib, sys
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20) as s:
    s.ehlo("client.test")
    print("auth offered:", s.has_extn("auth"))
    code, text = s.docmd("AUTH", "PLAIN AGFsaWNlAHdvbmRlciBsYW5k")
    print(code, text.decode())
"#;
    let catcher = secure_catcher(&[]);
    let out = python3(program, &[&catcher.addr().port().to_string()])
        .run()
        .assert_success("clear-text AUTH")
        .stdout_text();
    assert!(out.contains("auth offered: False"), "{out}");
    assert!(out.contains("538 5.7.11 Encryption required"), "{out}");

    let catcher = secure_catcher(&["--allow-insecure-auth"]);
    let out = python3(program, &[&catcher.addr().port().to_string()])
        .run()
        .assert_success("clear-text AUTH, allowed")
        .stdout_text();
    assert!(out.contains("auth offered: True"), "{out}");
    assert!(out.contains("235 2.7.0 Authentication successful"), "{out}");
}

#[test]
fn auth_accept_any_takes_any_password() {
    let program = r#"
import smtplib, sys
with smtplib.SMTP_SSL("127.0.0.1", int(sys.argv[1]), timeout=20,
                      context=__import__("ssl")._create_unverified_context()) as s:
    s.login("whoever", "whatever")
    s.sendmail("app@x.test", ["dev@y.test"], b"Subject: any\r\n\r\nhi\r\n")
    print("sent")
"#;
    let catcher = Catcher::with(&[
        "--tls-self-signed",
        "--auth-accept-any",
        "--smtps",
        "127.0.0.1:0",
    ]);
    let out = python3(program, &[&catcher.smtps[0].port().to_string()])
        .run()
        .assert_success("accept any")
        .stdout_text();
    assert_eq!(out.trim(), "sent");
    assert!(
        catcher
            .envelope_text("latest")
            .contains("AUTH:      whoever")
    );
}

/// `mail serve` with these flags must fail at start with exactly one line on stderr
/// containing `want`, and listen on nothing.
fn refuses_to_start(extra: &[&str], want: &str) {
    let mut args = vec![
        "mail",
        "serve",
        "--ephemeral",
        "--smtp",
        "127.0.0.1:0",
        "--no-http",
    ];
    args.extend_from_slice(extra);
    let done = sokkel(&args).run();
    let line = done.one_error_line();
    assert!(line.contains(want), "want {want:?} in {line:?}");
    assert!(
        !done.stdout_text().contains("listening on"),
        "{}",
        done.describe()
    );
}

#[test]
fn certificate_and_auth_file_mistakes_are_one_clear_line_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    let program = r#"
import subprocess, sys
d = sys.argv[1]
for name in ("a", "b"):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-keyout", f"{d}/{name}.key", "-out", f"{d}/{name}.crt"],
                   check=True, capture_output=True)
"#;
    let made = python3(program, &[&dir.path().display().to_string()]).run();
    made.assert_success("openssl req (package openssl)");

    refuses_to_start(
        &[
            "--tls-cert",
            &path("missing.crt"),
            "--tls-key",
            &path("a.key"),
        ],
        &format!(
            "cannot use the certificate file {}: no such file",
            path("missing.crt")
        ),
    );
    refuses_to_start(
        &["--tls-cert", &path("a.crt"), "--tls-key", &path("b.key")],
        "the private key does not belong to the certificate",
    );
    refuses_to_start(
        &["--tls-cert", &path("a.crt"), "--tls-key", &path("a.crt")],
        "holds no private key",
    );
    refuses_to_start(&["--smtps", "127.0.0.1:0"], "--smtps needs a certificate");
    refuses_to_start(&["--require-tls"], "--require-tls needs a certificate");
    std::fs::write(path("users"), "alice\n").unwrap();
    refuses_to_start(
        &["--auth-file", &path("users")],
        &format!(
            "cannot use {} as auth file: line 1 is not user:password",
            path("users")
        ),
    );

    // And the matching pair works, announcing the certificate.
    let catcher = Catcher::with(&["--tls-cert", &path("a.crt"), "--tls-key", &path("a.key")]);
    assert!(
        catcher
            .stdout
            .snapshot()
            .iter()
            .any(|l| l.starts_with("TLS certificate, SHA-256 fingerprint "))
    );
}

#[test]
#[ignore = "interop: needs swaks; .ci/run installs it and runs cargo test -- --ignored"]
fn swaks_starttls_and_smtps_with_plain_and_login() {
    let catcher = secure_catcher(&[]);
    let smtps = catcher.smtps[0];
    let cases: &[(SocketAddr, &str, &str)] = &[
        (catcher.addr(), "-tls", "PLAIN"),
        (catcher.addr(), "-tls", "LOGIN"),
        (smtps, "-tlsc", "PLAIN"),
        (smtps, "-tlsc", "LOGIN"),
    ];
    for (n, (addr, tls, mechanism)) in cases.iter().enumerate() {
        let subject = format!("swaks {tls} {mechanism}");
        let done = swaks(
            *addr,
            &[
                tls,
                "--auth",
                mechanism,
                "--auth-user",
                "alice",
                "--auth-password",
                "wonder land",
                "--header",
                &format!("Subject: {subject}"),
            ],
        );
        let done = done.assert_success(&subject);
        let transcript = done.stdout_text();
        assert!(
            transcript.contains("<~  235 2.7.0 Authentication successful"),
            "{transcript}"
        );
        assert!(
            !transcript.contains("wonder land"),
            "swaks printed the password?\n{transcript}"
        );
        let list = catcher.list();
        assert_eq!(list.len(), n + 1, "{subject}");
        assert_eq!(list[0]["subject"], subject.as_str());
        let shown = catcher.envelope_text("latest");
        assert!(
            shown.contains("TLS:       TLSv1.") && shown.contains("AUTH:      alice"),
            "{shown}"
        );
    }
}

#[test]
#[ignore = "interop: needs swaks; .ci/run installs it and runs cargo test -- --ignored"]
fn swaks_wrong_passwords_are_refused_with_535() {
    let catcher = secure_catcher(&[]);
    for (tls, mechanism) in [("-tls", "PLAIN"), ("-tls", "LOGIN")] {
        let done = swaks(
            catcher.addr(),
            &[
                tls,
                "--auth",
                mechanism,
                "--auth-user",
                "alice",
                "--auth-password",
                "wrong",
            ],
        );
        assert_eq!(
            done.status.code(),
            Some(28),
            "swaks' AUTH error code; {}",
            done.describe()
        );
        assert!(
            done.stdout_text()
                .contains("<~* 535 5.7.8 Authentication credentials invalid"),
            "{}",
            done.describe()
        );
    }
    // swaks without TLS is not offered AUTH at all.
    let done = swaks(
        catcher.addr(),
        &[
            "--auth",
            "PLAIN",
            "--auth-user",
            "alice",
            "--auth-password",
            "x",
        ],
    );
    assert_eq!(done.status.code(), Some(28), "{}", done.describe());
    assert!(catcher.list().is_empty());
}

#[test]
fn smtps_connections_over_the_cap_are_closed_without_a_handshake() {
    let catcher = secure_catcher(&["--max-conns", "1"]);
    let smtps = catcher.smtps[0];
    let program = r#"
import socket, ssl, sys
port = int(sys.argv[1])
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
first = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10))
print("first:", first.recv(100).decode().split()[0])
second = socket.create_connection(("127.0.0.1", port), timeout=10)
second.sendall(b"\x16\x03\x01\x00\x05hello")  # the start of a ClientHello
try:
    data = second.recv(100)
    print("second:", "closed" if data == b"" else repr(data))
except ConnectionResetError:
    print("second: closed")  # closed with our bytes unread: a reset
"#;
    let out = python3(program, &[&smtps.port().to_string()])
        .run()
        .assert_success("two SMTPS connections under --max-conns 1")
        .stdout_text();
    assert!(out.contains("first: 220"), "{out}");
    assert!(out.contains("second: closed"), "{out}");
}
