//! The log in front of the SQLite store (issue #16), through the binary: a failed
//! `fdatasync` answers its batch with 451 and the message never appears, not even
//! after a restart, also when it was the last delivery before a stop or a crash, or
//! the first of a new log; a new `mail.db` beside an old `mail.db-log/` starts
//! empty; a second `mail serve` on a served store says who serves it; small
//! segments are recycled while a store fills, empties and fills again, and a kill
//! -9 after that loses nothing; and every read that starts after a 250 sees the
//! message, through the web API, a search, POP3, IMAP and the CLI as a second
//! process, also while small segments are recycled under load.
//!
//! Several tests use the debug builds' hooks (`SOKKEL_TEST_FAIL_SYNC`,
//! `SOKKEL_TEST_SEGMENT_SIZE`), which a release build leaves out: under
//! `cargo test --release` they are ignored. The kill -9 loops under Postfix's
//! smtp-source are in `log_interop.rs`.

mod kit;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use kit::catcher::{ids, list_json};
use kit::process::{SOKKEL, sigterm};
use kit::smtp::{Smtp, message, queued_id, show};
use kit::{Catcher, PROMPT, python3, sokkel, tempdir};
use serde_json::json;

/// The reply a delivery whose batch failed to sync gets.
const SYNC_FAILED: &str = "451 4.3.0 ";

#[test]
#[cfg_attr(
    not(debug_assertions),
    ignore = "SOKKEL_TEST_FAIL_SYNC is a debug build's hook"
)]
fn a_failed_fdatasync_answers_451_and_that_message_never_appears() {
    let dir = tempdir();
    let db = dir.path().join("mail.db");
    let mut catcher = Catcher::builder()
        .db(&db)
        .env("SOKKEL_TEST_FAIL_SYNC", "3")
        .start();

    // One message at a time on one session: each batch holds one message, so the
    // third sync of the log is the third delivery's, or an earlier one's if the log
    // syncs more than once per batch at first. Exactly one delivery fails.
    let replies = deliver_one_by_one(&catcher, 0..8, |_| false);
    let failed = refused(&replies);
    assert_eq!(
        failed.len(),
        1,
        "want exactly one `{SYNC_FAILED}...` with SOKKEL_TEST_FAIL_SYNC=3: {replies:#?}"
    );
    assert!(
        failed[0] <= 2,
        "the third sync failed after the third delivery: {replies:#?}"
    );
    let mut kept = acknowledged(&replies);
    assert_eq!(kept.len(), 7, "every other delivery has an id of its own");
    // The server goes on: a new session delivers too.
    let after = message("sync after", "a new session after the failure");
    kept.insert(catcher.send(&after), after);
    let lost = [sync_subject(failed[0])];
    assert_holds_exactly(&catcher, &kept, &lost, "while serving");

    catcher.kill_hard();
    let mut restarted = Catcher::builder().db(&db).start();
    assert_holds_exactly(&restarted, &kept, &lost, "after kill -9 and a restart");
    let last_id = restarted.send(&message("sync last", "after the restart"));
    assert!(
        kept.keys().all(|&id| id < last_id),
        "id {last_id} after the restart is not above every earlier one: {:?}",
        kept.keys()
    );
    sigterm(restarted.pid());
    assert_eq!(restarted.wait_exit(PROMPT).code(), Some(0));
}

/// How a test stops a server.
#[derive(Debug, Clone, Copy)]
enum Stop {
    /// SIGTERM: the store closes as it should.
    Term,
    /// SIGKILL: a crash.
    Kill,
}

impl Stop {
    fn stop(self, catcher: &mut Catcher) {
        match self {
            Stop::Term => {
                sigterm(catcher.pid());
                assert_eq!(catcher.wait_exit(PROMPT).code(), Some(0));
            }
            Stop::Kill => catcher.kill_hard(),
        }
    }
}

#[test]
#[cfg_attr(
    not(debug_assertions),
    ignore = "SOKKEL_TEST_FAIL_SYNC is a debug build's hook"
)]
fn a_refused_last_delivery_stays_refused_after_a_stop_or_a_kill() {
    // Nothing is delivered after the 451, so nothing overwrites the refused
    // record before the server goes away: only the log itself can cut it off.
    let dir = tempdir();
    let db = dir.path().join("mail.db");
    let mut kept = BTreeMap::new();
    let mut lost = Vec::new();
    let mut next = 0;
    for stop in [Stop::Term, Stop::Kill] {
        let mut catcher = Catcher::builder()
            .db(&db)
            .env("SOKKEL_TEST_FAIL_SYNC", "3")
            .start();
        let replies = deliver_one_by_one(&catcher, next..next + 3, |reply| {
            reply.starts_with(SYNC_FAILED)
        });
        let failed = refused(&replies);
        assert_eq!(failed.len(), 1, "want one 451 in three: {replies:#?}");
        assert_eq!(failed[0], replies.len() - 1, "delivery stopped at the 451");
        kept.extend(acknowledged(&replies));
        lost.push(sync_subject(next + failed[0]));
        next += 3;
        stop.stop(&mut catcher);
        let restarted = Catcher::builder().db(&db).start();
        assert_holds_exactly(
            &restarted,
            &kept,
            &lost,
            &format!("after {stop:?} right after the 451 and a restart"),
        );
    }
}

#[test]
#[cfg_attr(
    not(debug_assertions),
    ignore = "SOKKEL_TEST_FAIL_SYNC is a debug build's hook"
)]
fn a_failed_first_sync_of_a_new_log_answers_451_and_the_log_goes_on() {
    let dir = tempdir();
    let db = dir.path().join("mail.db");
    let mut catcher = Catcher::builder()
        .db(&db)
        .env("SOKKEL_TEST_FAIL_SYNC", "1")
        .start();
    let replies = deliver_one_by_one(&catcher, 0..4, |_| false);
    assert_eq!(
        refused(&replies),
        vec![0],
        "the first batch of a new segment fails with SOKKEL_TEST_FAIL_SYNC=1: {replies:#?}"
    );
    let kept = acknowledged(&replies);
    let lost = [sync_subject(0)];
    assert_holds_exactly(&catcher, &kept, &lost, "while serving");
    catcher.kill_hard();
    let restarted = Catcher::builder().db(&db).start();
    assert_holds_exactly(&restarted, &kept, &lost, "after kill -9 and a restart");
}

/// Subject of message `n` of the fdatasync tests.
fn sync_subject(n: usize) -> String {
    format!("sync {n}")
}

/// Message `n` of the fdatasync tests. Each is shorter than the one before, so a
/// record written where a refused one was does not cover it byte for byte.
fn sync_message(n: usize) -> Vec<u8> {
    let body = "a line that shrinks\r\n".repeat(40_usize.saturating_sub(n * 3).max(1));
    message(&sync_subject(n), body.trim_end())
}

/// Delivers message `n` for each of `numbers` one at a time on one session, so that
/// each batch of the log holds one message, until `last` holds for a reply; each
/// message's bytes and the first line of its reply.
fn deliver_one_by_one(
    catcher: &Catcher,
    numbers: std::ops::Range<usize>,
    last: impl Fn(&str) -> bool,
) -> Vec<(usize, Vec<u8>, String)> {
    let mut smtp = Smtp::ehlo(catcher.addr());
    let mut replies = Vec::new();
    for n in numbers {
        let content = sync_message(n);
        let reply = smtp.send_message("a@sync.test", &["b@sync.test"], &content);
        let done = last(&reply[0]);
        replies.push((n, content, reply[0].clone()));
        if done {
            break;
        }
    }
    smtp.quit();
    replies
}

/// Where in `replies` the deliveries answered `451 4.3.0` are.
fn refused(replies: &[(usize, Vec<u8>, String)]) -> Vec<usize> {
    (0..replies.len())
        .filter(|&i| replies[i].2.starts_with(SYNC_FAILED))
        .collect()
}

/// The deliveries answered 250, by id; panics on any reply but 250 and 451.
fn acknowledged(replies: &[(usize, Vec<u8>, String)]) -> BTreeMap<u64, Vec<u8>> {
    replies
        .iter()
        .filter(|(_, _, reply)| !reply.starts_with(SYNC_FAILED))
        .map(|(_, content, reply)| (queued_id(reply), content.clone()))
        .collect()
}

/// The store holds exactly the messages `kept` (by id, byte for byte) and none
/// with a subject in `lost`.
#[track_caller]
fn assert_holds_exactly(
    catcher: &Catcher,
    kept: &BTreeMap<u64, Vec<u8>>,
    lost: &[String],
    when: &str,
) {
    let listed = catcher.list();
    let subjects: Vec<&str> = listed
        .iter()
        .map(|m| m["subject"].as_str().unwrap_or(""))
        .collect();
    for subject in lost {
        assert!(
            !subjects.contains(&subject.as_str()),
            "{when}: {subject:?} was answered 451 but is stored: {subjects:?}"
        );
    }
    let stored: BTreeSet<u64> = ids(&listed).into_iter().collect();
    let acked: BTreeSet<u64> = kept.keys().copied().collect();
    assert_eq!(stored, acked, "{when}: stored ids against the 250s");
    for (&id, content) in kept {
        let raw = catcher.raw(id);
        assert!(
            &raw == content,
            "{when}: message {id} differs: {:?}",
            show(&raw)
        );
    }
}

#[test]
fn a_new_store_next_to_an_old_log_does_not_bring_back_its_messages() {
    // `rm mail.db*` resets a catcher: it removes the database and its WAL and
    // fails on the log's directory, which stays.
    for stop in [Stop::Term, Stop::Kill] {
        let dir = tempdir();
        let db = dir.path().join("mail.db");
        let mut old = Catcher::builder().db(&db).start();
        for n in 0..20 {
            old.send(&message(&format!("old {n}"), "from before the reset"));
        }
        stop.stop(&mut old);
        for file in ["mail.db", "mail.db-wal", "mail.db-shm"] {
            let _ = std::fs::remove_file(dir.path().join(file));
        }
        assert!(
            log_dir(&db).is_dir(),
            "the store has no log to leave behind"
        );
        let new = Catcher::builder().db(&db).start();
        let listed = new.list();
        assert!(
            listed.is_empty(),
            "after {stop:?} and removing mail.db, the new store holds {} old messages: {:?}",
            listed.len(),
            listed.iter().map(|m| &m["subject"]).collect::<Vec<_>>()
        );
        let id = new.send(&message("new", "after the reset"));
        assert_eq!(ids(&new.list()), vec![id], "after {stop:?}");
    }
}

#[test]
fn a_second_mail_serve_on_a_served_store_fails_naming_the_first_ones_pid() {
    let dir = tempdir();
    let db = dir.path().join("mail.db");
    let first = Catcher::builder().db(&db).start();

    // The second waits a while for the first to let go (a reader that opened the
    // store a moment before), then gives up.
    let second = sokkel(["mail", "serve", "--smtp", "127.0.0.1:0", "--no-http"])
        .args(["--no-pop3", "--no-imap", "--db"])
        .arg(&db)
        .timeout(Duration::from_secs(45))
        .run();
    assert!(
        !second.status.success() && !second.stderr.contains("panicked"),
        "{}",
        second.describe()
    );
    let line = second.failure();
    assert!(
        line.contains(&format!("pid {}", first.pid())),
        "the one line does not name the pid {} that serves the store: {line:?}",
        first.pid()
    );
    assert!(
        !second.stdout_text().contains("listening on smtp"),
        "the second server listened before failing: {}",
        second.describe()
    );
    // The first is untouched.
    let id = first.send(&message("still served", "after the second gave up"));
    assert_eq!(first.list()[0]["id"], id);
}

/// `SOKKEL_TEST_SEGMENT_SIZE` for the segment test: 64 KiB, about 30 messages.
const SMALL_SEGMENT: u64 = 64 << 10;

#[test]
#[cfg_attr(
    not(debug_assertions),
    ignore = "SOKKEL_TEST_SEGMENT_SIZE is a debug build's hook"
)]
fn small_segments_are_recycled_as_the_store_fills_empties_and_fills_and_a_kill_loses_nothing() {
    let dir = tempdir();
    let db = dir.path().join("mail.db");
    let start = || {
        Catcher::builder()
            .db(&db)
            .http()
            .env("SOKKEL_TEST_SEGMENT_SIZE", &SMALL_SEGMENT.to_string())
            .start()
    };
    let mut catcher = start();

    let first = deliver_numbered(&catcher, 0..3000);
    assert_eq!(total(&catcher), 3000);
    // Keep one in thirty; delete the rest through the API, as a user would.
    let (kept, gone): (Vec<_>, Vec<_>) = first.into_iter().partition(|(id, _)| id % 30 == 0);
    for chunk in gone.chunks(500) {
        let ids: Vec<String> = chunk.iter().map(|(id, _)| id.to_string()).collect();
        let response = catcher.delete("/api/v1/messages", Some(&json!({ "IDs": ids })));
        assert_eq!(response.status, 200, "{}", response.text());
    }
    let mut live: BTreeMap<u64, Vec<u8>> = kept.into_iter().collect();
    live.extend(deliver_numbered(&catcher, 3000..4000));
    assert_eq!(total(&catcher), live.len() as u64);

    // What was logged is 4,000 messages; what lives is about 1,100. The log may hold
    // twice the live bytes and 16 segments besides (the one being filled, a spare,
    // and those the materialiser has not yet made durable in SQLite).
    let live_bytes: u64 = live.values().map(|c| c.len() as u64).sum();
    let logged_bytes: u64 = live_bytes + gone.iter().map(|(_, c)| c.len() as u64).sum::<u64>();
    let limit = 2 * live_bytes + 16 * SMALL_SEGMENT;
    assert!(
        limit < logged_bytes,
        "the test's limit ({limit}) must be below what was logged ({logged_bytes})"
    );
    let log_dir = log_dir(&db);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut size = dir_size(&log_dir);
    while size.0 > limit && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
        size = dir_size(&log_dir);
    }
    let (bytes, segments) = size;
    assert!(
        segments > 0,
        "no segment files in {}: the store has no log",
        log_dir.display()
    );
    let (sqlite, wal) = (file_size(&db), file_size(&db.with_extension("db-wal")));
    let sizes = format!(
        "the log {bytes} B in {segments} segments, mail.db {sqlite} B, its WAL {wal} B; \
         live messages {live_bytes} B, logged {logged_bytes} B"
    );
    assert!(bytes <= limit, "over the limit of {limit} B: {sizes}");
    eprintln!("{sizes}");

    catcher.kill_hard();
    let restarted = start();
    let stored: BTreeSet<u64> = ids(&list_json(&db, 1_000_000)).into_iter().collect();
    let want: BTreeSet<u64> = live.keys().copied().collect();
    assert_eq!(
        stored.symmetric_difference(&want).collect::<Vec<_>>(),
        Vec::<&u64>::new(),
        "after kill -9 and a restart the store holds other messages than the live ones"
    );
    for (id, content) in &live {
        let raw = restarted.get(&format!("/api/v1/message/{id}/raw"));
        assert_eq!(raw.status, 200, "raw of {id}: {}", raw.text());
        assert!(
            &raw.body == content,
            "message {id} differs after the restart: {:?}",
            show(&raw.body[..raw.body.len().min(300)])
        );
    }
}

/// Delivers message `n` for each `n` of `numbers` over 8 sessions at once; the id
/// each got, with its bytes (about 2 KiB each).
fn deliver_numbered(catcher: &Catcher, numbers: std::ops::Range<usize>) -> Vec<(u64, Vec<u8>)> {
    const SESSIONS: usize = 8;
    thread::scope(|scope| {
        let senders: Vec<_> = (0..SESSIONS)
            .map(|session| {
                let numbers = numbers.clone();
                scope.spawn(move || {
                    let mut smtp = Smtp::ehlo(catcher.addr());
                    let delivered: Vec<(u64, Vec<u8>)> = numbers
                        .skip(session)
                        .step_by(SESSIONS)
                        .map(|n| {
                            let line = format!("message {n:05} of the segment test\r\n");
                            let content = message(&format!("segment {n}"), &line.repeat(60));
                            let id = smtp.deliver("a@seg.test", &["b@seg.test"], &content);
                            (id, content)
                        })
                        .collect();
                    smtp.quit();
                    delivered
                })
            })
            .collect();
        senders
            .into_iter()
            .flat_map(|s| s.join().expect("a sender panicked"))
            .collect()
    })
}

/// How many messages the web API counts.
fn total(catcher: &Catcher) -> u64 {
    catcher.get_json("/api/v1/messages?limit=1")["total"]
        .as_u64()
        .expect("a total")
}

/// The log's directory next to the store `db` (`mail.db` → `mail.db-log`).
fn log_dir(db: &Path) -> std::path::PathBuf {
    let mut dir = db.as_os_str().to_owned();
    dir.push("-log");
    dir.into()
}

/// Bytes on disk (allocated blocks, since segments are preallocated) of the files
/// in `dir`, and how many of them are segments (`*.seg`).
fn dir_size(dir: &Path) -> (u64, usize) {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (0, 0);
    };
    let mut bytes = 0;
    let mut segments = 0;
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        bytes += (meta.blocks() * 512).max(meta.len());
        if entry.path().extension().is_some_and(|e| e == "seg") {
            segments += 1;
        }
    }
    (bytes, segments)
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

#[test]
fn every_read_that_starts_after_a_250_sees_the_message() {
    let catcher = Catcher::builder().http().start();
    assert_reads_after_250_see_it(&catcher, 8, 20);
    assert_eq!(catcher.list().len(), 8 * 20);
}

#[test]
#[cfg_attr(
    not(debug_assertions),
    ignore = "SOKKEL_TEST_SEGMENT_SIZE is a debug build's hook"
)]
fn every_read_after_a_250_sees_the_message_while_small_segments_are_recycled() {
    // Segments of 64 KiB and a steady load beside the readers: the log changes
    // segment and recycles old ones all the time, also while a second process
    // (the CLI) looks for the end of the log to wait for.
    let catcher = Catcher::builder()
        .http()
        .env("SOKKEL_TEST_SEGMENT_SIZE", &SMALL_SEGMENT.to_string())
        .start();
    let stop = AtomicBool::new(false);
    let loaded = thread::scope(|scope| {
        let load: Vec<_> = (0..2)
            .map(|session| {
                let (catcher, stop) = (&catcher, &stop);
                scope.spawn(move || {
                    let mut smtp = Smtp::ehlo(catcher.addr());
                    let filler = "filler line to fill segments quickly\r\n".repeat(100);
                    let mut sent = 0;
                    // Paced, so that the readers are not starved on a debug build.
                    while !stop.load(Ordering::Relaxed) && sent < 3_000 {
                        let subject = format!("load {session}-{sent}");
                        smtp.deliver("l@load.test", &["r@load.test"], &message(&subject, &filler));
                        sent += 1;
                        thread::sleep(Duration::from_millis(2));
                    }
                    smtp.quit();
                    sent
                })
            })
            .collect();
        let _stop_load = StopOnDrop(&stop);
        assert_reads_after_250_see_it(&catcher, 6, 15);
        drop(_stop_load);
        load.into_iter()
            .map(|l| l.join().expect("a load session panicked"))
            .sum::<usize>()
    });
    eprintln!("{loaded} messages of load beside the readers");
    assert!(
        loaded * 4000 > 8 * SMALL_SEGMENT as usize,
        "the load ({loaded} messages) did not fill eight segments"
    );
}

/// Sets the flag when dropped, so that the load stops even when the readers' check
/// panics.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The send-then-read barrier's client, in Python (smtplib, http.client, poplib,
/// imaplib, and the CLI run as a second process).
const READ_AFTER_250: &str = include_str!("kit/py/read_after_250.py");

/// `senders` smtplib senders deliver `per_sender` messages each; every read that
/// starts after a 250 (API, search, POP3, IMAP, the CLI) finds the message.
#[track_caller]
fn assert_reads_after_250_see_it(catcher: &Catcher, senders: usize, per_sender: usize) {
    let port = |addr: std::net::SocketAddr| addr.port().to_string();
    let out = python3(
        READ_AFTER_250,
        &[
            &port(catcher.addr()),
            &port(catcher.http()),
            &port(catcher.pop3[0]),
            &port(catcher.imap_addr()),
            SOKKEL,
            &catcher.db.display().to_string(),
            &senders.to_string(),
            &per_sender.to_string(),
        ],
    )
    .timeout(Duration::from_secs(300))
    .run()
    .assert_success("python3 read_after_250.py");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", out.describe()));
    assert_eq!(
        report["failures"],
        json!([]),
        "reads that started after a 250 and missed the message"
    );
    assert_eq!(
        report["checked"],
        senders * per_sender,
        "every delivery is checked: {report}"
    );
}
