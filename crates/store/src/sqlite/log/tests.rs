//! The log on its own: what comes back after appends, restarts, torn tails,
//! garbage, failed syncs and recycling.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;
use crate::{Envelope, NewMessage};

fn message(n: usize, len: usize) -> NewMessage {
    let mut raw = format!("Subject: message {n}\r\n\r\n").into_bytes();
    raw.resize(raw.len() + len, b'a' + (n % 26) as u8);
    NewMessage {
        envelope: Envelope {
            mail_from: format!("from{n}@example.test"),
            rcpt_to: vec![format!("to{n}@example.test")],
            helo: "client".into(),
            client_addr: "127.0.0.1:4000".parse().unwrap(),
            bare_lf: false,
            smtputf8: false,
            tls: None,
            auth_user: None,
        },
        received_at: UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + n as u64),
        raw,
    }
}

fn options(segment_size: u64) -> LogOptions {
    LogOptions {
        segment_size,
        max_batch: 64,
        max_lag_bytes: u64::MAX,
        admit: Box::new(|_| Ok(())),
        on_synced: Box::new(|_| {}),
        fail_syncs: Vec::new(),
        store_id: STORE,
        counters: Default::default(),
    }
}

const STORE: u64 = 0x5eed;

fn open(dir: &Path, from: Position, options: LogOptions) -> Log {
    Log::open(dir, from, 1, Duration::ZERO, options)
        .unwrap()
        .expect("nobody else owns it")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Append `messages` concurrently (so that they batch); their results in order.
fn append_all(log: &Arc<Log>, messages: Vec<NewMessage>) -> Vec<Result<MessageId, StoreError>> {
    runtime().block_on(async {
        let tasks: Vec<_> = messages
            .into_iter()
            .map(|message| {
                let log = Arc::clone(log);
                tokio::spawn(async move { log.append(message).await })
            })
            .collect();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.unwrap());
        }
        results
    })
}

fn read_all(log: &Log, from: Position) -> Vec<Logged> {
    let mut out: Vec<Logged> = Vec::new();
    let mut at = from;
    loop {
        let batch = log.read(at, 64 << 10).unwrap();
        let Some(last) = batch.last() else { break };
        at = last.end;
        out.extend(batch);
    }
    out
}

#[test]
fn appended_messages_read_back_in_order_with_their_ids() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(open(dir.path(), Position::START, options(1 << 20)));
    let sent: Vec<NewMessage> = (0..300).map(|n| message(n, 100 + n * 7)).collect();
    let ids: Vec<MessageId> = append_all(&log, sent.clone())
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 300, "ids are unique");
    let read = read_all(&log, Position::START);
    assert_eq!(read.len(), 300);
    for pair in read.windows(2) {
        assert!(
            pair[0].id < pair[1].id && pair[0].end < pair[1].end,
            "in order"
        );
    }
    for logged in &read {
        let at = ids.iter().position(|id| *id == logged.id).unwrap();
        assert_eq!(logged.message, sent[at], "message {at} byte for byte");
    }
    assert_eq!(log.synced(), read.last().unwrap().end);
    let stats = log.stats();
    assert_eq!(stats.messages, 300);
    assert!(
        stats.batches < 300,
        "concurrent appends share syncs: {stats:?}"
    );
}

#[test]
fn a_reopened_log_gives_back_what_was_not_materialised_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(open(dir.path(), Position::START, options(1 << 20)));
    let first = append_all(&log, (0..50).map(|n| message(n, 500)).collect());
    let read = read_all(&log, Position::START);
    let materialised = read[19].end;
    drop(read);
    drop(log);

    let log = Arc::new(open(dir.path(), materialised, options(1 << 20)));
    let again = read_all(&log, materialised);
    assert_eq!(again.len(), 30, "the 30 after the materialised position");
    let ids: Vec<i64> = again.iter().map(|logged| logged.id.0).collect();
    assert_eq!(ids, (21..=50).collect::<Vec<_>>(), "ids in log order");
    let later = append_all(&log, vec![message(99, 10)]);
    let later = *later[0].as_ref().unwrap();
    assert!(
        later > *first[49].as_ref().unwrap(),
        "ids go on after a restart"
    );
    let all = read_all(&log, materialised);
    assert_eq!(all.len(), 31);
    assert_eq!(all[30].id, later);
    assert_eq!(all[30].message, message(99, 10));
}

/// Cut the last segment at every byte of its last three records, then
/// scribble after the last whole record: each time exactly the whole records
/// come back, and an append after that is read after them.
#[test]
fn torn_tails_and_garbage_lose_exactly_the_incomplete_records() {
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("log");
    let log = Arc::new(open(&original, Position::START, options(64 << 10)));
    let sent: Vec<NewMessage> = (0..12).map(|n| message(n, 40 + n)).collect();
    for message in &sent {
        append_all(&log, vec![message.clone()]);
    }
    let whole = read_all(&log, Position::START);
    drop(log);
    let segment = whole[0].end.segment;
    let name = segment::path_of(Path::new(""), segment);
    let starts: Vec<u64> = std::iter::once(SEGMENT_HEADER)
        .chain(whole.iter().map(|logged| logged.end.offset))
        .collect();
    let cuts = starts[starts.len() - 4]..=starts[starts.len() - 1];
    let copy = dir.path().join("copy");
    let mut tried = 0;
    for cut in cuts.clone() {
        let _ = fs::remove_dir_all(&copy);
        copy_dir(&original, &copy);
        OpenOptions::new()
            .write(true)
            .open(copy.join(&name))
            .unwrap()
            .set_len(cut)
            .unwrap();
        let complete = starts[1..].iter().filter(|end| **end <= cut).count();
        let log = Arc::new(open(&copy, Position::START, options(64 << 10)));
        let read = read_all(&log, Position::START);
        assert_eq!(read.len(), complete, "cut at byte {cut}");
        for (logged, sent) in read.iter().zip(&sent) {
            assert_eq!(&logged.message, sent, "cut at byte {cut}");
        }
        let next = append_all(&log, vec![message(77, 5)]);
        let read = read_all(&log, Position::START);
        assert_eq!(read.len(), complete + 1, "cut at byte {cut}, then one more");
        assert_eq!(read[complete].id, *next[0].as_ref().unwrap());
        tried += 1;
    }
    assert!(tried > 100, "every byte of the last records: {tried}");

    for garbage in [
        &b"\x01\x00\x00\x00junkjunkjunkjunkjunk"[..],
        &[0xff; 64],
        &[0x10, 0, 0, 0],
    ] {
        let _ = fs::remove_dir_all(&copy);
        copy_dir(&original, &copy);
        let file = OpenOptions::new()
            .write(true)
            .open(copy.join(&name))
            .unwrap();
        std::os::unix::fs::FileExt::write_all_at(&file, garbage, *starts.last().unwrap()).unwrap();
        let log = Arc::new(open(&copy, Position::START, options(64 << 10)));
        assert_eq!(
            read_all(&log, Position::START).len(),
            sent.len(),
            "garbage {garbage:?}"
        );
        append_all(&log, vec![message(78, 5)]);
        drop(log);
        // Reopened once more: the garbage stays cut off by the next segment.
        let log = Arc::new(open(&copy, Position::START, options(64 << 10)));
        let read = read_all(&log, Position::START);
        assert_eq!(read.len(), sent.len() + 1, "garbage {garbage:?}, reopened");
        assert_eq!(read.last().unwrap().message, message(78, 5));
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != "lock" {
            fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

#[test]
fn a_failed_sync_refuses_its_batch_and_it_never_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut failing = options(1 << 20);
    failing.fail_syncs = vec![2];
    let log = Arc::new(open(dir.path(), Position::START, failing));
    let first = append_all(&log, vec![message(1, 50)]);
    let failed = append_all(&log, vec![message(2, 50)]);
    let after = append_all(&log, vec![message(3, 50)]);
    assert!(first[0].is_ok() && after[0].is_ok());
    let error = failed[0].as_ref().unwrap_err();
    assert!(
        error.to_string().contains("SOKKEL_TEST_FAIL_SYNC"),
        "the error says what failed: {error}"
    );
    assert_eq!(log.stats().failed_syncs, 1);
    let bodies = |log: &Log| -> Vec<NewMessage> {
        read_all(log, Position::START)
            .into_iter()
            .map(|logged| logged.message)
            .collect()
    };
    assert_eq!(bodies(&log), vec![message(1, 50), message(3, 50)]);
    drop(log);
    let log = open(dir.path(), Position::START, options(1 << 20));
    assert_eq!(
        bodies(&log),
        vec![message(1, 50), message(3, 50)],
        "after reopening"
    );
}

/// The batch that fails last, with nothing after it (the record stays in the
/// file with a valid checksum unless it is cut at once), and the first batch
/// of a fresh segment (its header must come back too), and a shorter message
/// after a longer refused one: none of the refused come back, after a
/// restart either.
#[test]
fn refused_batches_are_cut_at_once_wherever_they_are() {
    for (fail, sizes) in [
        (vec![3], vec![50, 50, 50]),
        (vec![1], vec![50, 50]),
        (vec![2], vec![50, 900, 10, 10]),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut failing = options(1 << 20);
        failing.fail_syncs = fail.clone();
        let log = Arc::new(open(dir.path(), Position::START, failing));
        let mut kept = Vec::new();
        for (n, size) in sizes.iter().enumerate() {
            let sent = message(n, *size);
            let result = append_all(&log, vec![sent.clone()]).remove(0);
            if fail.contains(&(n as u64 + 1)) {
                assert!(result.is_err(), "sync {} fails", n + 1);
            } else {
                result.unwrap();
                kept.push(sent);
            }
        }
        drop(log);
        let log = open(dir.path(), Position::START, options(1 << 20));
        let read: Vec<NewMessage> = read_all(&log, Position::START)
            .into_iter()
            .map(|logged| logged.message)
            .collect();
        assert_eq!(
            read, kept,
            "failing sync {fail:?} of {sizes:?}, after a restart"
        );
    }
}

/// A database made anew beside an old log (`rm mail.db`), or another
/// store's log: its records are not this store's.
#[test]
fn a_log_of_another_database_is_not_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(open(dir.path(), Position::START, options(1 << 20)));
    append_all(&log, (0..5).map(|n| message(n, 100)).collect());
    drop(log);
    let mut other = options(1 << 20);
    other.store_id = STORE + 1;
    let log = Arc::new(open(dir.path(), Position::START, other));
    assert!(
        read_all(&log, Position::START).is_empty(),
        "nothing of the old log"
    );
    assert_eq!(
        scan_end(dir.path(), STORE + 1, Position::START).unwrap(),
        Position::START
    );
    let id = append_all(&log, vec![message(9, 10)]).remove(0).unwrap();
    assert_eq!(id, MessageId(1), "ids start where the database says");
    let read = read_all(&log, Position::START);
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].message, message(9, 10));
}

#[test]
fn segments_are_recycled_behind_the_durable_position_and_disk_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(open(dir.path(), Position::START, options(16 << 10)));
    let mut at = Position::START;
    let mut count = 0;
    let mut largest = 0;
    for round in 0..40 {
        let sent: Vec<NewMessage> = (0..20).map(|n| message(round * 20 + n, 900)).collect();
        append_all(&log, sent.clone());
        for logged in read_all(&log, at) {
            assert!(
                sent.contains(&logged.message),
                "round {round}: one of its messages"
            );
            count += 1;
            at = logged.end;
        }
        log.materialised(at);
        log.durable(at);
        // A spare being made may be renamed between listing and looking.
        let size: u64 = fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|entry| entry.ok()?.metadata().ok())
            .map(|meta| meta.len())
            .sum();
        largest = largest.max(size);
    }
    assert_eq!(count, 800);
    assert!(at.segment > 20, "many segments were used: {at:?}");
    // Live, two spares, one being made, and the lock: a handful of 16 KiB
    // segments, however much went through.
    assert!(
        largest <= 6 * (16 << 10) + 4096,
        "log size peaked at {largest}"
    );
}

#[test]
fn appends_wait_while_the_materialiser_lags_too_far() {
    let dir = tempfile::tempdir().unwrap();
    let mut lagging = options(1 << 20);
    lagging.max_lag_bytes = 10_000;
    let synced = Arc::new(AtomicU64::new(0));
    let seen = Arc::clone(&synced);
    lagging.on_synced = Box::new(move |_| {
        seen.fetch_add(1, Ordering::SeqCst);
    });
    let log = Arc::new(open(dir.path(), Position::START, lagging));
    append_all(&log, (0..3).map(|n| message(n, 5_000)).collect());
    let runtime = runtime();
    let waiting = {
        let log = Arc::clone(&log);
        runtime.spawn(async move { log.append(message(9, 10)).await })
    };
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !waiting.is_finished(),
        "held back while 15 kB wait for the materialiser"
    );
    let read = read_all(&log, Position::START);
    log.materialised(read.last().unwrap().end);
    let id = runtime.block_on(waiting).unwrap().unwrap();
    assert_eq!(id, MessageId(4));
    assert!(
        synced.load(Ordering::SeqCst) >= 2,
        "on_synced is called per batch"
    );
}

#[test]
fn held_ids_stop_the_appender_and_it_goes_on_after_them() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(open(dir.path(), Position::START, options(1 << 20)));
    append_all(&log, vec![message(1, 10)]);
    let runtime = runtime();
    let mut hold = log.hold_ids();
    assert_eq!(hold.next_id(), 2);
    let waiting = {
        let log = Arc::clone(&log);
        runtime.spawn(async move { log.append(message(2, 10)).await })
    };
    std::thread::sleep(Duration::from_millis(100));
    assert!(!waiting.is_finished(), "no ids while held");
    hold.advance_to(10);
    drop(hold);
    assert_eq!(runtime.block_on(waiting).unwrap().unwrap(), MessageId(10));
}

#[test]
fn one_owner_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), Position::START, options(1 << 20));
    let second = Log::open(
        dir.path(),
        Position::START,
        1,
        Duration::from_millis(50),
        options(1 << 20),
    );
    assert!(second.unwrap().is_none(), "the lock is taken");
    assert_eq!(owner_pid(dir.path()), Some(std::process::id()));
    drop(log);
    assert!(
        Log::open(
            dir.path(),
            Position::START,
            1,
            Duration::ZERO,
            options(1 << 20)
        )
        .unwrap()
        .is_some(),
        "free again once the owner is gone"
    );
}

#[test]
fn a_follower_finds_where_the_records_end() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(open(dir.path(), Position::START, options(1 << 20)));
    assert_eq!(
        scan_end(dir.path(), STORE, Position::START).unwrap(),
        Position::START
    );
    append_all(&log, (0..5).map(|n| message(n, 10)).collect());
    assert_eq!(
        scan_end(dir.path(), STORE, Position::START).unwrap(),
        log.synced()
    );
    let _ = SystemTime::now();
    let missing = dir.path().join("nothing-here");
    assert_eq!(
        scan_end(&missing, STORE, Position::START).unwrap(),
        Position::START
    );
    let mut lock = fs::File::create(dir.path().join("unrelated.txt")).unwrap();
    lock.write_all(b"x").unwrap();
    assert_eq!(
        scan_end(dir.path(), STORE, Position::START).unwrap(),
        log.synced()
    );
}
