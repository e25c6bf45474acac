//! Retention through the real binary (issue #12): `mail serve --max` and
//! `--max-age` prune what SMTP delivers, in the background, while every
//! delivery still gets its 250.

mod kit;

use std::thread;
use std::time::{Duration, Instant};

use kit::smtp::{Smtp, message};
use kit::{Catcher, sokkel};
use serde_json::Value;

/// How long pruning, which runs in the background, may take to show.
const WITHIN: Duration = Duration::from_secs(10);

/// `sokkel mail serve --no-pop3 EXTRA` (and what the kit adds), and the `retention: ...`
/// line it printed at start, after the prefix.
fn start(extra: &[&str]) -> (Catcher, String) {
    let catcher = Catcher::builder().arg("--no-pop3").args(extra).start();
    let retention = catcher.stdout.expect_map(WITHIN, "retention: ...", |line| {
        line.strip_prefix("retention: ").map(str::to_owned)
    });
    (catcher, retention)
}

/// One message with `subject` over an open session; panics unless it is stored.
fn send(smtp: &mut Smtp, subject: &str) {
    smtp.deliver(
        "sender@example.test",
        &["rcpt@example.test"],
        &message(subject, "Hello."),
    );
}

/// The subjects in `mail list --json` output, in its order.
fn subjects(list: &[Value]) -> Vec<&str> {
    list.iter()
        .map(|m| m["subject"].as_str().unwrap())
        .collect()
}

/// The numbers in the log lines `pruned N messages <rest>`.
fn pruned_logged(lines: &[String], rest: &str) -> u64 {
    lines
        .iter()
        .filter_map(|line| {
            let (_, pruned) = line.split_once("pruned ")?;
            let (count, tail) = pruned.split_once(' ')?;
            tail.split_once(' ')
                .filter(|(_, tail)| *tail == rest)
                .and_then(|_| count.parse::<u64>().ok())
        })
        .sum()
}

#[test]
fn max_keeps_the_newest_messages_sent_over_smtp() {
    let (catcher, retention) = start(&["--max", "100"]);
    assert_eq!(retention, "keep the newest 100 messages");
    let mut smtp = Smtp::ehlo(catcher.addr());
    for n in 0..150 {
        send(&mut smtp, &format!("message {n}"));
    }
    smtp.quit();

    let list = catcher.list_until(WITHIN, "pruned to 100", |list| list.len() <= 100);
    let newest: Vec<String> = (50..150).rev().map(|n| format!("message {n}")).collect();
    assert_eq!(subjects(&list), newest, "the newest 100, newest first");
    // Logged once per run, not per batch; the runs add up to the 50.
    catcher.stderr.wait_until(WITHIN, |lines| {
        pruned_logged(lines, "beyond the newest 100") >= 50
    });
    assert_eq!(
        pruned_logged(&catcher.stderr.snapshot(), "beyond the newest 100"),
        50,
        "{}",
        catcher.stderr.text()
    );
}

#[test]
fn max_age_prunes_old_messages_while_new_ones_keep_arriving() {
    let (catcher, retention) = start(&["--max-age", "2s"]);
    assert_eq!(retention, "keep no message older than 2s");
    // Two sessions delivering side by side for 6 s: every message gets its
    // 250 (`send` checks), however many are pruned meanwhile.
    let started = Instant::now();
    let senders: Vec<_> = (0..2)
        .map(|session| {
            let addr = catcher.addr();
            thread::spawn(move || {
                let mut smtp = Smtp::ehlo(addr);
                let mut sent = 0;
                while started.elapsed() < Duration::from_secs(6) {
                    send(&mut smtp, &format!("session {session} message {sent}"));
                    sent += 1;
                    thread::sleep(Duration::from_millis(50));
                }
                smtp.quit();
                sent
            })
        })
        .collect();
    let sent: Vec<u32> = senders.into_iter().map(|s| s.join().unwrap()).collect();

    let list = catcher.list();
    for (session, sent) in sent.iter().enumerate() {
        let newest = format!("session {session} message {}", sent - 1);
        assert!(
            subjects(&list).contains(&newest.as_str()),
            "{newest:?}, under 2 s old, is kept"
        );
    }
    // The first messages were 6 s old when the stream ended: pruned while
    // the stream went on, or at the latest within seconds after it.
    let list = catcher.list_until(WITHIN, "pruned of the oldest messages", |list| {
        !subjects(list)
            .iter()
            .any(|s| s.ends_with(" message 0") || s.ends_with(" message 1"))
    });
    assert!(list.len() < (sent[0] + sent[1]) as usize);
    assert!(
        pruned_logged(&catcher.stderr.snapshot(), "older than 2s") > 0,
        "{}",
        catcher.stderr.text()
    );
}

#[test]
fn retention_is_off_unless_asked_for() {
    let (catcher, retention) = start(&[]);
    assert_eq!(retention, "off");
    drop(catcher);
    // `0` is no limit, as in Mailpit.
    let (_catcher, retention) = start(&["--max", "0", "--max-age", "0"]);
    assert_eq!(retention, "off");
}

#[test]
fn a_bad_limit_is_one_clear_line() {
    for (args, says) in [
        (&["--max-age", "7"][..], "needs a unit"),
        (&["--max-age", "7w"], "unknown unit"),
        (&["--max", "lots"], "not a number of messages"),
    ] {
        let done = sokkel(["mail", "serve", "--ephemeral", "--smtp", "127.0.0.1:0"])
            .args(["--no-http", "--no-pop3"])
            .args(args)
            .run();
        let stderr = &done.stderr;
        assert_eq!(done.code(), Some(2), "{args:?}: {stderr}");
        let first = stderr.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("error: invalid value") && first.contains(says),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
