//! Chaos (issue #14): SMTP faults on purpose, seen from Python's smtplib the way
//! an application under test sees them. Triggers set with `--chaos` at start and
//! with `PUT /api/v1/chaos` at run time refuse MAIL, RCPT or AUTH with the
//! configured code, hang up at a stage, or slow every reply down.

mod kit;

use std::time::Duration;

use kit::{Catcher, python3};
use serde_json::{Value, json};

/// One transaction through smtplib, a stage at a time; prints one line per
/// stage (`mail 250 2.1.0 Ok`), or `<stage> disconnected` where the server hung
/// up. With a third argument, logs in first (AUTH PLAIN).
const TRANSACTION: &str = r#"
import smtplib, sys
port = int(sys.argv[1])
stage = "connect"
try:
    s = smtplib.SMTP("127.0.0.1", port, timeout=10)
    print("connect", 220, flush=True)
    stage = "ehlo"
    code, _ = s.ehlo()
    print("ehlo", code, flush=True)
    if len(sys.argv) > 2:
        stage = "auth"
        try:
            code, msg = s.login("user", "password")
        except smtplib.SMTPAuthenticationError as e:
            code, msg = e.smtp_code, e.smtp_error
        print("auth", code, msg.decode(), flush=True)
    for stage, command in (("mail", "MAIL FROM:<a@x.test>"), ("rcpt", "RCPT TO:<b@y.test>"), ("data", "DATA")):
        code, msg = s.docmd(command)
        print(stage, code, msg.decode(), flush=True)
        if code >= 400:
            sys.exit(0)
    stage = "content"
    s.send(b"Subject: chaos\r\n\r\nhello\r\n.\r\n")
    code, msg = s.getreply()
    print(stage, code, msg.decode(), flush=True)
    s.quit()
except smtplib.SMTPServerDisconnected:
    print(stage, "disconnected", flush=True)
"#;

/// Runs [`TRANSACTION`] against the catcher and returns its lines.
fn transaction(catcher: &Catcher, login: bool) -> Vec<String> {
    let port = catcher.addr().port().to_string();
    let mut args = vec![port.as_str()];
    if login {
        args.push("login");
    }
    python3(TRANSACTION, &args)
        .run()
        .assert_success("the smtplib transaction")
        .stdout_text()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The line for `stage`, or a panic showing them all.
#[track_caller]
fn line<'a>(lines: &'a [String], stage: &str) -> &'a str {
    lines
        .iter()
        .find(|l| l.split(' ').next() == Some(stage))
        .unwrap_or_else(|| panic!("no {stage} line in {lines:#?}"))
}

#[test]
fn a_trigger_at_100_refuses_at_its_stage_and_at_0_mail_goes_through() {
    let recipient = Catcher::with(&["--chaos", "recipient:550:100", "--chaos-seed", "1"]);
    let lines = transaction(&recipient, false);
    assert_eq!(line(&lines, "mail"), "mail 250 2.1.0 Ok");
    assert_eq!(
        line(&lines, "rcpt"),
        "rcpt 550 5.1.1 RCPT TO refused by a chaos trigger (a simulated failure)"
    );
    assert!(recipient.list().is_empty(), "a refused message was stored");

    // Mailpit's own flag and syntax, any case, comma separated.
    let sender = Catcher::with(&["--chaos-triggers", "Sender:452:100,Recipient:550:0"]);
    let lines = transaction(&sender, false);
    assert_eq!(
        line(&lines, "mail"),
        "mail 452 4.3.1 MAIL FROM refused by a chaos trigger (a simulated failure)"
    );

    let auth = Catcher::with(&[
        "--chaos",
        "auth:454:100",
        "--auth-accept-any",
        "--allow-insecure-auth",
    ]);
    let lines = transaction(&auth, true);
    assert_eq!(
        line(&lines, "auth"),
        "auth 454 4.7.0 AUTH refused by a chaos trigger (a simulated failure)"
    );

    let off = Catcher::with(&["--chaos", "sender:451:0,recipient:550:0,disconnect:rcpt:0"]);
    let lines = transaction(&off, false);
    assert!(
        line(&lines, "content").starts_with("content 250 2.0.0 Ok: queued as "),
        "{lines:#?}"
    );
    assert_eq!(off.list().len(), 1);
}

/// `--chaos-seed`: the same seed gives a client doing the same things the same
/// faults, so a failing test run can be repeated.
#[test]
fn the_same_seed_gives_the_same_faults() {
    const RCPTS: &str = r#"
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=10)
s.ehlo()
s.mail("a@x.test")
print(" ".join(str(s.rcpt("b%d@y.test" % i)[0]) for i in range(30)))
s.quit()
"#;
    let codes = |seed: &str| {
        let catcher = Catcher::with(&["--chaos", "recipient:451:50", "--chaos-seed", seed]);
        python3(RCPTS, &[&catcher.addr().port().to_string()])
            .run()
            .assert_success("30 RCPTs through smtplib")
            .stdout_text()
    };
    let first = codes("7");
    assert!(
        first.contains("250") && first.contains("451"),
        "at 50% both answers should show in 30 tries: {first}"
    );
    assert_eq!(first, codes("7"));
}

#[test]
fn put_and_get_chaos_round_trip_and_change_what_smtp_clients_see() {
    let catcher = Catcher::builder().http().arg("--enable-chaos").start();
    let defaults = json!({
        "Sender": {"ErrorCode": 451, "Probability": 0},
        "Recipient": {"ErrorCode": 451, "Probability": 0},
        "Authentication": {"ErrorCode": 535, "Probability": 0},
        "Disconnect": {"Stage": "connect", "Probability": 0},
        "SlowLink": {"BytesPerSecond": 0}
    });
    assert_eq!(catcher.get_json("/api/v1/chaos"), defaults);

    // Omitted triggers go back to their defaults, as in Mailpit.
    let put = catcher.put_json(
        "/api/v1/chaos",
        &json!({"Sender": {"ErrorCode": 452, "Probability": 100}}),
    );
    assert_eq!(put.status, 200, "{}", put.text());
    let mut want = defaults.clone();
    want["Sender"] = json!({"ErrorCode": 452, "Probability": 100});
    assert_eq!(put.json(), want);
    assert_eq!(catcher.get_json("/api/v1/chaos"), want);
    let lines = transaction(&catcher, false);
    assert!(
        line(&lines, "mail").starts_with("mail 452 4.3.1 "),
        "{lines:#?}"
    );

    // An ErrorCode of 0 or none is the default code.
    let put = catcher.put_json(
        "/api/v1/chaos",
        &json!({"Recipient": {"Probability": 100}, "Sender": {"ErrorCode": 0}}),
    );
    assert_eq!(
        put.json()["Recipient"],
        json!({"ErrorCode": 451, "Probability": 100})
    );
    assert_eq!(
        put.json()["Sender"],
        json!({"ErrorCode": 451, "Probability": 0})
    );

    // Field names in any case, as Go's JSON decoder in Mailpit takes them.
    let put = catcher.put_json(
        "/api/v1/chaos",
        &json!({"recipient": {"errorCode": 550, "PROBABILITY": 100}}),
    );
    assert_eq!(
        put.json()["Recipient"],
        json!({"ErrorCode": 550, "Probability": 100})
    );

    // `{}` switches everything off again.
    let put = catcher.put_json("/api/v1/chaos", &json!({}));
    assert_eq!(put.json(), defaults);
    let lines = transaction(&catcher, false);
    assert!(
        line(&lines, "content").starts_with("content 250 "),
        "{lines:#?}"
    );

    // Bad values are refused, naming the field, and change nothing.
    let bad: &[(Value, &str)] = &[
        (
            json!({"Recipient": {"ErrorCode": 200, "Probability": 5}}),
            "Recipient.ErrorCode",
        ),
        (
            json!({"Sender": {"ErrorCode": 451, "Probability": 101}}),
            "Sender.Probability",
        ),
        (
            json!({"Authentication": {"ErrorCode": 535, "Probability": -1}}),
            "Authentication.Probability",
        ),
        (
            json!({"Disconnect": {"Stage": "quit", "Probability": 5}}),
            "quit",
        ),
        (json!({"SlowLink": {"BytesPerSecond": -5}}), "slowlink"),
        (json!({"Sender": {"ErrorCode": "451"}}), "JSON"),
        (json!([1]), "JSON"),
    ];
    for (body, names) in bad {
        let answer = catcher.put_json("/api/v1/chaos", body);
        assert_eq!(answer.status, 400, "{body}: {}", answer.text());
        assert!(answer.text().contains(names), "{body}: {}", answer.text());
    }
    assert_eq!(catcher.get_json("/api/v1/chaos"), defaults);

    // Without --enable-chaos, Mailpit's answer.
    let plain = Catcher::builder().http().start();
    for answer in [
        plain.get("/api/v1/chaos"),
        plain.put_json("/api/v1/chaos", &json!({})),
    ] {
        assert_eq!(answer.status, 400);
        assert_eq!(answer.text().trim(), "Chaos is not enabled");
    }
}

/// smtplib sees the server hang up (`SMTPServerDisconnected`) at the stage
/// chosen, after every earlier stage went through; nothing is stored.
#[test]
fn disconnect_hangs_up_at_the_chosen_stage() {
    let catcher = Catcher::builder().http().arg("--enable-chaos").start();
    for stage in ["connect", "mail", "rcpt", "data", "content"] {
        let put = catcher.put_json(
            "/api/v1/chaos",
            &json!({"Disconnect": {"Stage": stage, "Probability": 100}}),
        );
        assert_eq!(put.status, 200, "{}", put.text());
        let lines = transaction(&catcher, false);
        assert_eq!(
            lines.last().map(String::as_str),
            Some(format!("{stage} disconnected").as_str()),
            "{lines:#?}"
        );
        for earlier in lines.iter().rev().skip(1) {
            assert!(
                earlier.contains(" 2") || earlier.contains(" 354"),
                "{stage}: {lines:#?}"
            );
        }
    }
    assert!(catcher.list().is_empty(), "a message was stored");
}

/// `slowlink:R`: N bytes of replies take at least about N/R seconds to arrive,
/// and so does a message of N bytes before its 250; mail still goes through.
/// The bounds are generous (half of N/R: the first piece of each reply leaves
/// at once, and the kernel buffers what the client sends) and only lower ones.
#[test]
fn slow_link_paces_what_the_server_writes_and_reads() {
    const MEASURE: &str = r#"
import socket, sys, time
start = time.monotonic()
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
received = 0
def reply():
    # Until the last line of one reply ("250 ..."), however the bytes come.
    global received
    text = b""
    while not (text.endswith(b"\r\n") and text.split(b"\r\n")[-2][3:4] == b" "):
        chunk = s.recv(4096)
        if not chunk:
            raise SystemExit("closed early")
        text += chunk
    received += len(text)
    return text
reply()
for command in (b"EHLO client.test", b"HELP", b"MAIL FROM:<a@x.test>", b"RCPT TO:<b@y.test>", b"DATA"):
    s.sendall(command + b"\r\n")
    reply()
replies = time.monotonic() - start
content = b"Subject: slow\r\n\r\n" + b"x" * 78 + b"\r\n"
content = content * (1200 // len(content)) + b".\r\n"
sent = time.monotonic()
s.sendall(content)
queued = reply()
print(received, replies, len(content), time.monotonic() - sent, queued[:3].decode())
"#;
    let rate = 400.0;
    let catcher = Catcher::with(&["--chaos", "slowlink:400"]);
    let out = python3(MEASURE, &[&catcher.addr().port().to_string()])
        .timeout(Duration::from_secs(60))
        .run()
        .assert_success("talking over a slow link")
        .stdout_text();
    let fields: Vec<&str> = out.split_whitespace().collect();
    let number = |i: usize| -> f64 {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .unwrap_or_else(|| panic!("field {i} of {out}"))
    };
    let (written, writing, read, reading) = (number(0), number(1), number(2), number(3));
    assert!(written > 300.0 && read > 1000.0, "{out}");
    assert!(
        writing >= 0.5 * written / rate,
        "{written} bytes of replies at {rate} bytes/s arrived in {writing:.2} s"
    );
    assert!(
        reading >= 0.5 * read / rate,
        "a {read}-byte message at {rate} bytes/s was read in {reading:.2} s"
    );
    assert_eq!(fields.get(4), Some(&"250"), "{out}");
    assert_eq!(catcher.list().len(), 1);
}

/// The npm client test suites use against Mailpit: `setChaosTriggers` and
/// `getChaosTriggers` work unchanged, and what it sets is what smtplib meets.
/// `node --input-type=module -e SCRIPT BASE MODE`, run in tests/web_js.
const MAILPIT_API_CHAOS: &str = r#"
import assert from "node:assert/strict";
import { MailpitClient } from "mailpit-api";
const [base, mode] = process.argv.slice(1);
const mailpit = new MailpitClient(base);
if (mode === "set") {
    const off = await mailpit.getChaosTriggers();
    assert.deepEqual(off.Sender, { ErrorCode: 451, Probability: 0 });
    assert.deepEqual(off.Authentication, { ErrorCode: 535, Probability: 0 });
    const set = await mailpit.setChaosTriggers({ Recipient: { ErrorCode: 550, Probability: 100 } });
    assert.deepEqual(set.Recipient, { ErrorCode: 550, Probability: 100 });
    assert.deepEqual(set.Sender, { ErrorCode: 451, Probability: 0 });
    assert.deepEqual((await mailpit.getChaosTriggers()).Recipient, set.Recipient);
} else {
    await assert.rejects(
        mailpit.setChaosTriggers({ Sender: { ErrorCode: 200, Probability: 1 } }),
        /400 .*Sender\.ErrorCode/,
    );
    const reset = await mailpit.setChaosTriggers();
    assert.deepEqual(reset.Recipient, { ErrorCode: 451, Probability: 0 });
}
console.log("ok");
"#;

#[test]
#[ignore = "interop: needs node and `npm ci` in tests/web_js"]
fn mailpit_api_sets_and_reads_the_chaos_triggers() {
    let js_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web_js");
    let node = kit::process::require_program("node", "nodejs");
    assert!(
        js_dir.join("node_modules/mailpit-api").is_dir(),
        "interop peer missing: npm package `mailpit-api`. Run `npm ci` in {} (.ci/run does it)",
        js_dir.display()
    );
    let catcher = Catcher::builder().http().arg("--enable-chaos").start();
    let base = format!("http://{}/", catcher.http());
    let client = |mode: &str| {
        let run = kit::program(&node, ["--input-type=module", "-e", MAILPIT_API_CHAOS])
            .args([base.as_str(), mode])
            .current_dir(&js_dir)
            .timeout(Duration::from_secs(60))
            .run();
        assert_eq!(run.stdout_text().trim(), "ok", "{}", run.describe());
    };
    client("set");
    let lines = transaction(&catcher, false);
    assert!(
        line(&lines, "rcpt").starts_with("rcpt 550 5.1.1 "),
        "{lines:#?}"
    );
    client("reset");
    let lines = transaction(&catcher, false);
    assert!(
        line(&lines, "content").starts_with("content 250 "),
        "{lines:#?}"
    );
}
