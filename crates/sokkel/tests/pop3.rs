//! POP3 on `sokkel mail serve` (issue #6), read with Python's poplib (python3 is on
//! every machine these tests run on): every command, STLS with the catcher's
//! self-signed certificate, deletions that happen at QUIT and only then, mail
//! deleted over POP3 gone from the CLI and the other way round, and UIDs that
//! survive a restart.

mod kit;

use std::net::SocketAddr;

use kit::catcher::ids;
use kit::smtp::{Smtp, message};
use kit::{Catcher, python3, sokkel};
use serde_json::Value;

/// A catcher with a self-signed certificate, one user (`morty` / `pickle rick`) and a
/// short failure delay, holding `count` messages sent over SMTP; their ids.
fn catcher_with_mail(count: usize, extra: &[&str]) -> (Catcher, Vec<u64>) {
    let catcher = Catcher::builder()
        .users("morty:pickle rick\n")
        .args(&["--tls-self-signed", "--auth-failure-delay", "20ms"])
        .args(extra)
        .start();
    let ids = deliver(&catcher, count);
    (catcher, ids)
}

fn deliver(catcher: &Catcher, count: usize) -> Vec<u64> {
    let mut smtp = Smtp::ehlo(catcher.addr());
    let ids = (0..count)
        .map(|n| {
            let body = format!(".a line with a dot\r\n\r\nmessage {n}");
            smtp.deliver(
                "rick@example.test",
                &["morty@example.test"],
                &message(&format!("pop {n}"), &body),
            )
        })
        .collect();
    smtp.quit();
    ids
}

fn pop3_port(catcher: &Catcher) -> String {
    let addr: SocketAddr = catcher.pop3[0];
    addr.port().to_string()
}

/// Runs a poplib program (`port`, `user` and `password` are set, and `pop` is
/// connected) and parses the JSON it prints.
fn poplib(catcher: &Catcher, user: &str, password: &str, body: &str) -> Value {
    let program = format!(
        r#"
import base64, json, poplib, ssl, sys
port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
out = {{}}
def text(lines):
    return [l.decode() for l in lines]
def raw(lines):
    return base64.b64encode(b"\r\n".join(lines) + b"\r\n").decode()
pop = poplib.POP3("127.0.0.1", port, timeout=10)
{body}
print(json.dumps(out))
"#
    );
    let done = python3(&program, &[&pop3_port(catcher), user, password])
        .run()
        .assert_success("python3 poplib");
    serde_json::from_slice(&done.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", done.describe()))
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

fn base64_decode(value: &Value) -> Vec<u8> {
    let text = value.as_str().unwrap();
    let done = python3(
        "import base64, sys; sys.stdout.buffer.write(base64.b64decode(sys.argv[1]))",
        &[text],
    )
    .run();
    done.stdout
}

#[test]
fn poplib_every_command_over_stls() {
    let (catcher, sent) = catcher_with_mail(3, &[]);
    let raws: Vec<Vec<u8>> = sent.iter().map(|id| catcher.raw(*id)).collect();
    let out = poplib(
        &catcher,
        "morty",
        "pickle rick",
        r#"
out["welcome"] = pop.getwelcome().decode()
out["capa_before"] = sorted(pop.capa().keys())
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
out["stls"] = pop.stls(context=ctx).decode()
out["capa_after"] = sorted(pop.capa().keys())
pop.user(user)
out["pass"] = pop.pass_(password).decode()
out["stat"] = list(pop.stat())
out["list"] = text(pop.list()[1])
out["list2"] = pop.list(2).decode()
out["uidl"] = text(pop.uidl()[1])
out["uidl3"] = pop.uidl(3).decode()
out["top"] = raw(pop.top(1, 0)[1])
out["retr"] = raw(pop.retr(1)[1])
out["dele"] = pop.dele(1).decode()
out["noop"] = pop.noop().decode()
out["rset"] = pop.rset().decode()
pop.dele(2)
try:
    pop.retr(2)
except poplib.error_proto as e:
    out["retr_deleted"] = e.args[0].decode()
out["quit"] = pop.quit().decode()
"#,
    );
    assert_eq!(
        out["welcome"], "+OK sokkel POP3 ready on test.local",
        "no <timestamp>: no APOP"
    );
    let capa_before = strings(&out["capa_before"]);
    for want in [
        "TOP",
        "UIDL",
        "USER",
        "SASL",
        "RESP-CODES",
        "PIPELINING",
        "STLS",
    ] {
        assert!(
            capa_before.contains(&want.to_owned()),
            "{want} in {capa_before:?}"
        );
    }
    assert_eq!(out["stls"], "+OK begin TLS negotiation");
    assert!(!strings(&out["capa_after"]).contains(&"STLS".to_owned()));
    let raw1 = &raws[0];
    let total: usize = raws.iter().map(Vec::len).sum();
    assert_eq!(
        out["pass"],
        format!("+OK morty has 3 messages ({total} octets)")
    );
    assert_eq!(out["stat"], serde_json::json!([3, total]));
    let sizes: Vec<String> = raws
        .iter()
        .enumerate()
        .map(|(n, raw)| format!("{} {}", n + 1, raw.len()))
        .collect();
    assert_eq!(strings(&out["list"]), sizes);
    assert_eq!(out["list2"], format!("+OK {}", sizes[1]));
    let uids: Vec<String> = sent
        .iter()
        .enumerate()
        .map(|(n, id)| format!("{} {id}", n + 1))
        .collect();
    assert_eq!(strings(&out["uidl"]), uids, "the UID is the store's id");
    assert_eq!(out["uidl3"], format!("+OK {}", uids[2]));
    let header_end = raw1.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(base64_decode(&out["top"]), raw1[..header_end]);
    assert_eq!(&base64_decode(&out["retr"]), raw1, "RETR is byte-identical");
    assert_eq!(out["dele"], "+OK message 1 deleted");
    assert_eq!(out["noop"], "+OK");
    assert_eq!(
        out["rset"],
        format!("+OK maildrop has 3 messages ({total} octets)")
    );
    assert_eq!(out["retr_deleted"], "-ERR message 2 already deleted");
    assert_eq!(
        out["quit"],
        "+OK sokkel POP3 signing off (1 message deleted)"
    );

    assert_eq!(
        ids(&catcher.list()),
        vec![sent[2], sent[0]],
        "after RSET only message 2 was deleted, and the CLI no longer lists it"
    );
}

#[test]
fn dele_then_a_dropped_connection_keeps_the_mail() {
    let (catcher, sent) = catcher_with_mail(2, &[]);
    let out = poplib(
        &catcher,
        "morty",
        "pickle rick",
        r#"
pop.user(user)
pop.pass_(password)
out["dele"] = [pop.dele(1).decode(), pop.dele(2).decode()]
pop.sock.close()
again = poplib.POP3("127.0.0.1", port, timeout=10)
again.user(user)
again.pass_(password)
out["stat"] = list(again.stat())
again.quit()
"#,
    );
    assert_eq!(out["dele"][1], "+OK message 2 deleted");
    assert_eq!(out["stat"][0], 2, "nothing was deleted: {out}");
    let mut listed = ids(&catcher.list());
    listed.sort();
    assert_eq!(listed, sent);
}

#[test]
fn a_wrong_password_is_refused_with_the_auth_code() {
    let (catcher, _ids) = catcher_with_mail(1, &[]);
    let out = poplib(
        &catcher,
        "morty",
        "pickle morty",
        r#"
pop.user(user)
try:
    pop.pass_(password)
except poplib.error_proto as e:
    out["pass"] = e.args[0].decode()
try:
    pop.stat()
except poplib.error_proto as e:
    out["stat"] = e.args[0].decode()
"#,
    );
    assert_eq!(out["pass"], "-ERR [AUTH] invalid user name or password");
    assert!(
        out["stat"]
            .as_str()
            .unwrap()
            .starts_with("-ERR log in first")
    );
    assert!(
        !catcher.stderr.text().contains("pickle"),
        "no password in the log:\n{}",
        catcher.stderr.text()
    );
}

#[test]
fn mail_deleted_with_the_cli_is_gone_from_pop3_and_uids_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mail.db");
    let mut catcher = Catcher::builder()
        .db(&db)
        .args(&["--auth-accept-any"])
        .start();
    let sent = deliver(&catcher, 3);
    let uidl = r#"
pop.user(user)
pop.pass_(password)
out["uidl"] = text(pop.uidl()[1])
pop.quit()
"#;
    let before = strings(&poplib(&catcher, "anyone", "anything", uidl)["uidl"]);
    assert_eq!(before.len(), 3);
    catcher.kill_hard();
    drop(catcher);

    let catcher = Catcher::builder()
        .db(&db)
        .args(&["--auth-accept-any"])
        .start();
    let after = strings(&poplib(&catcher, "anyone", "anything", uidl)["uidl"]);
    assert_eq!(after, before, "the same UIDs after a restart");

    catcher
        .cli(&["delete", &sent[0].to_string()])
        .assert_success("mail delete");
    let after_delete = strings(&poplib(&catcher, "anyone", "anything", uidl)["uidl"]);
    assert_eq!(
        after_delete,
        vec![format!("1 {}", sent[1]), format!("2 {}", sent[2])],
        "renumbered, with the same UIDs"
    );
}

#[test]
fn per_recipient_logins_see_only_their_mail() {
    let catcher = Catcher::with(&["--auth-accept-any", "--pop3-per-recipient"]);
    let mut smtp = Smtp::ehlo(catcher.addr());
    let for_morty = smtp.deliver("x@y.test", &["morty@example.test"], &message("m", "m"));
    smtp.deliver("x@y.test", &["rick@example.test"], &message("r", "r"));
    smtp.quit();
    let out = poplib(
        &catcher,
        "Morty@Example.TEST",
        "x",
        r#"
pop.user(user)
pop.pass_(password)
out["uidl"] = text(pop.uidl()[1])
pop.quit()
"#,
    );
    assert_eq!(strings(&out["uidl"]), vec![format!("1 {for_morty}")]);
}

#[test]
fn no_pop3_and_pop3s_without_a_certificate() {
    let catcher = Catcher::with(&["--no-pop3"]);
    assert!(catcher.pop3.is_empty());
    assert!(
        !catcher.stdout.text().contains("pop3"),
        "{}",
        catcher.stdout.text()
    );

    let done = sokkel([
        "mail",
        "serve",
        "--ephemeral",
        "--smtp",
        "127.0.0.1:0",
        "--pop3s",
        "127.0.0.1:0",
    ])
    .run();
    let line = done.one_error_line();
    assert!(line.contains("--pop3s needs a certificate"), "{line}");
}
