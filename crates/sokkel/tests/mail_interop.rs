//! `sokkel mail serve` against SMTP clients nobody here wrote: swaks (plain, pipelined,
//! with a binary attachment checked byte for byte through Python's email package) and
//! Postfix's smtp-source (load, with and without reused connections, and as the load
//! under which the catcher is killed with SIGKILL).
//!
//! These need swaks and postfix installed; `.ci/run` installs them and runs
//! `cargo test -- --ignored`. A missing peer fails the test with an install hint.

mod kit;

use std::process::{Command, Stdio};
use std::time::Duration;

use kit::catcher::{ids, list_json};
use kit::crash::{SenderEnd, Senders, assert_all_kept, integrity_check};
use kit::peers::swaks;
use kit::process::{ChildGuard, require_program, run, sigterm};
use kit::{Catcher, python3};

/// How long one smtp-source run of a few thousand messages may take before the test
/// calls it stuck (it takes a few seconds).
const LOAD_LIMIT: Duration = Duration::from_secs(60);

fn smtp_source(catcher: &Catcher, extra: &[&str]) -> Command {
    let program = require_program("smtp-source", "postfix");
    let mut command = Command::new(program);
    command
        .args(extra)
        .args(["-f", "from@x.test", "-t", "to@x.test"])
        .arg(catcher.addr().to_string());
    command
}

#[test]
#[ignore = "interop: needs swaks and postfix (smtp-source); .ci/run installs them and runs cargo test -- --ignored"]
fn swaks_plain_and_pipelined_messages_are_stored() {
    let catcher = Catcher::start();
    for (n, pipeline) in [false, true].into_iter().enumerate() {
        let subject = format!("swaks test {n}");
        let header = format!("Subject: {subject}");
        let mut args = vec!["--header", &header, "--body", "hello"];
        if pipeline {
            args.push("--pipeline");
        }
        let out = swaks(catcher.addr(), &args).assert_success("swaks");
        let transcript = out.stdout_text();
        assert!(
            transcript.contains("<-  250 2.0.0 Ok: queued as "),
            "{transcript}"
        );
        if pipeline {
            // The whole envelope went out before the first reply came back.
            let sent_data = transcript.find(" -> DATA").expect("DATA in the transcript");
            let mail_ok = transcript.find("<-  250 2.1.0 Ok").expect("MAIL's reply");
            assert!(sent_data < mail_ok, "swaks did not pipeline:\n{transcript}");
        }

        let stored = &catcher.list()[0];
        assert_eq!(stored["subject"], subject.as_str());
        assert_eq!(stored["mail_from"], "app@x.test");
        assert_eq!(stored["rcpt_to"], serde_json::json!(["dev@y.test"]));
        let shown = catcher
            .cli(&["show", "latest"])
            .assert_success("mail show latest")
            .stdout_text();
        let body = shown.split_once("\n\n").map(|(_, body)| body.trim());
        assert_eq!(body, Some("hello"), "{shown}");
    }
    assert_eq!(catcher.list().len(), 2);
}

/// Finds the attachment named argv[3] in the message at argv[1] and compares its
/// decoded bytes with the file at argv[2].
const COMPARE_ATTACHMENT: &str = r#"
import email, email.policy, sys

raw = open(sys.argv[1], "rb").read()
want = open(sys.argv[2], "rb").read()
msg = email.message_from_bytes(raw, policy=email.policy.default)
found = [p for p in msg.iter_attachments() if p.get_filename() == sys.argv[3]]
if len(found) != 1:
    sys.exit(f"want one attachment {sys.argv[3]!r}, found {[p.get_filename() for p in msg.iter_attachments()]}")
got = found[0].get_content()
if got != want:
    sys.exit(f"attachment differs: got {len(got)} bytes, want {len(want)}; first difference at "
             f"{next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))}")
print("same", len(got))
"#;

#[test]
#[ignore = "interop: needs swaks and postfix (smtp-source); .ci/run installs them and runs cargo test -- --ignored"]
fn a_swaks_attachment_with_all_256_byte_values_comes_back_exactly() {
    let catcher = Catcher::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("every-byte.bin");
    let mut bytes: Vec<u8> = (0u8..=255).collect();
    bytes.extend((0u8..=255).rev());
    bytes.extend_from_slice(b"\r\n.\r\n\n.\n\r.\r");
    std::fs::write(&file, &bytes).unwrap();
    let file_arg = file.display().to_string();

    swaks(
        catcher.addr(),
        &[
            "--header",
            "Subject: swaks attachment",
            "--attach",
            &file_arg,
        ],
    )
    .assert_success("swaks --attach");

    let stored = &catcher.list()[0];
    assert_eq!(stored["subject"], "swaks attachment");
    assert_eq!(stored["attachments"], 1, "{stored}");
    let id = stored["id"].as_u64().unwrap();
    let shown = catcher
        .cli(&["show", &id.to_string()])
        .assert_success("mail show")
        .stdout_text();
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("Attached:") && l.contains("every-byte.bin")),
        "mail show does not list the attachment:\n{shown}"
    );
    let raw_path = dir.path().join("stored.eml");
    std::fs::write(&raw_path, catcher.raw(id)).unwrap();
    let out = python3(
        COMPARE_ATTACHMENT,
        &[&raw_path.display().to_string(), &file_arg, "every-byte.bin"],
    )
    .run();
    assert!(out.status.success(), "{}", out.describe());
    assert_eq!(out.stdout_text().trim(), format!("same {}", bytes.len()));
}

#[test]
#[ignore = "interop: needs swaks and postfix (smtp-source); .ci/run installs them and runs cargo test -- --ignored"]
fn smtp_source_2000_messages_are_all_stored_with_and_without_reused_connections() {
    for reuse in [false, true] {
        let catcher = Catcher::start();
        let mut args = vec!["-s", "20", "-m", "2000", "-l", "4096"];
        if reuse {
            args.push("-d");
        }
        let out = run(smtp_source(&catcher, &args), b"", LOAD_LIMIT);
        assert!(
            out.status.success(),
            "smtp-source {args:?}: {}",
            out.describe()
        );

        let listed = list_json(&catcher.db, 3000);
        assert_eq!(listed.len(), 2000, "smtp-source {args:?}");
        let mut seen = ids(&listed);
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 2000, "every message has its own id");
        for m in &listed {
            assert_eq!(m["mail_from"], "from@x.test");
            assert_eq!(m["rcpt_to"], serde_json::json!(["to@x.test"]));
            assert!(m["size"].as_u64().unwrap() > 4096, "{m}");
        }
        let raw = catcher.raw(seen[0]);
        assert!(
            raw.starts_with(b"From: <from@x.test>\r\nTo: <to@x.test>\r\n"),
            "{}",
            kit::smtp::show(&raw[..raw.len().min(200)])
        );
    }
}

#[test]
#[ignore = "interop: needs swaks and postfix (smtp-source); .ci/run installs them and runs cargo test -- --ignored"]
fn sigkill_under_smtp_source_load_loses_no_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mail.db");
    let mut catcher = Catcher::builder().db(&db).start();

    let mut load = smtp_source(&catcher, &["-s", "20", "-m", "20000", "-l", "4096"]);
    load.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut load = ChildGuard::new(
        load.spawn().expect("cannot start smtp-source"),
        "smtp-source",
    );

    let senders = Senders::start(catcher.addr(), 4, 5000, Duration::from_secs(30));
    senders.wait_for(200, Duration::from_secs(15));
    assert!(
        load.wait_timeout(Duration::ZERO).is_none(),
        "smtp-source finished before the kill: no load at the crash"
    );
    catcher.kill_hard();
    let (ends, acked) = senders.join();
    assert!(
        ends.iter().all(|end| matches!(end, SenderEnd::Broken(_))),
        "every sender should have been cut off mid-run by the kill: {ends:?}"
    );
    let status = load
        .wait_timeout(Duration::from_secs(30))
        .expect("smtp-source kept running after the server died");
    assert!(
        !status.success(),
        "smtp-source did not notice the server died"
    );

    assert!(
        !acked.is_empty(),
        "no message was acknowledged before the kill"
    );
    assert_eq!(integrity_check(&db), "ok");
    let mut restarted = Catcher::builder().db(&db).start();
    assert_all_kept(&db, &acked);
    let stored = list_json(&db, 1_000_000).len();
    assert!(
        stored >= acked.len(),
        "{stored} stored < {} acknowledged",
        acked.len()
    );

    sigterm(restarted.pid());
    assert_eq!(restarted.wait_exit(Duration::from_secs(15)).code(), Some(0));
}
