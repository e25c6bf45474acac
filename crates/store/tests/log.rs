//! Issue #16: the SQLite store's log-first write path, from outside.
//!
//! A delivery is acknowledged once it is in the log; its rows come after.
//! These tests hold the promises that make that invisible: every read that
//! starts after an acknowledgement sees the message (in this process and in
//! another one that follows the owner's log); whatever was acknowledged is
//! there, byte for byte, after the process dies, and replaying it twice
//! changes nothing; ids stay unique and in order when imports and IMAP
//! APPEND go around the log; a store from the schema before the log keeps
//! working.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sokkel_store::{
    Deliver, DeliverError, Envelope, Flags, Folder, ListQuery, MessageId, NewMessage, Ownership,
    SearchQuery, Store, StoreError, StoreOptions,
};
use tempfile::TempDir;

mod process;

/// Message `n`: a word and a recipient of its own, and a size that varies.
fn message(n: u64) -> NewMessage {
    let filler = "lorem ipsum dolor sit amet ".repeat((n % 7) as usize * 20);
    NewMessage {
        envelope: Envelope {
            mail_from: "sender@example.com".into(),
            rcpt_to: vec![recipient(n)],
            helo: "client.example.com".into(),
            client_addr: "127.0.0.1:50000".parse().unwrap(),
            bare_lf: false,
            smtputf8: false,
            tls: None,
            auth_user: None,
        },
        received_at: UNIX_EPOCH + Duration::from_millis(1_790_000_000_000 + n),
        raw: format!(
            "From: sender@example.com\r\nTo: {}\r\nSubject: message {n}\r\n\r\n{} {filler}\r\n",
            recipient(n),
            word(n)
        )
        .into_bytes(),
    }
}

fn word(n: u64) -> String {
    format!("zq{n}zq")
}

fn recipient(n: u64) -> String {
    format!("r{n}@example.com")
}

fn open(path: &Path) -> Store {
    Store::open(path, StoreOptions::default()).unwrap()
}

fn search_ids(store: &Store, query: &str) -> Vec<MessageId> {
    let query = SearchQuery::parse(query).unwrap();
    let page = ListQuery {
        limit: 1000,
        ..ListQuery::default()
    };
    let found = store.search(&query, &page).unwrap();
    found.messages.iter().map(|m| m.id).collect()
}

/// Every way a reader looks for message `id` (number `n`): each must find it.
fn assert_visible(store: &Store, id: MessageId, n: u64) {
    let newest = ListQuery {
        limit: 1,
        before: Some(MessageId(id.0 + 1)),
        ..ListQuery::default()
    };
    let listed = store.list(&newest).unwrap();
    assert_eq!(listed.first().map(|m| m.id), Some(id), "list");
    assert_eq!(search_ids(store, &word(n)), [id], "search for {}", word(n));
    let stored = store.get(id).unwrap().expect("get");
    assert_eq!(stored.raw, message(n).raw, "get");
    let maildrop = store.maildrop(Some(&recipient(n))).unwrap();
    assert_eq!(maildrop.first().map(|(id, _)| *id), Some(id), "maildrop");
    let inbox = Folder::Inbox {
        recipient: Some(recipient(n)),
    };
    let (folder, _) = store.folder_messages(&inbox).unwrap().unwrap();
    assert_eq!(folder.first().map(|m| m.id), Some(id), "folder_messages");
}

/// Many tasks deliver while reader threads check, for the latest
/// acknowledged messages, that every read started after the `Ok(id)` finds
/// it: list, search by a word of the body, get, count, maildrop, IMAP folder.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_read_that_starts_after_an_acknowledgement_sees_the_message() {
    const TASKS: u64 = 16;
    const EACH: u64 = 40;
    let dir = TempDir::new().unwrap();
    let store = open(&dir.path().join("mail.db"));
    let acked: Arc<Mutex<Vec<(MessageId, u64)>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|reader| {
            let (store, acked, done) = (store.clone(), Arc::clone(&acked), Arc::clone(&done));
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(120);
                let mut checks = 0;
                while !done.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let (count, latest) = {
                        let acked = acked.lock().unwrap();
                        (acked.len() as u64, acked.last().copied())
                    };
                    let Some((id, n)) = latest else {
                        std::thread::yield_now();
                        continue;
                    };
                    assert!(store.count().unwrap().total >= count, "count");
                    assert_visible(&store, id, n);
                    checks += 1;
                    if reader == 0 && checks % 10 == 0 {
                        // An older one too: still there.
                        let (id, n) = acked.lock().unwrap()[checks % count as usize];
                        assert_visible(&store, id, n);
                    }
                }
                checks
            })
        })
        .collect();
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let (store, acked) = (store.clone(), Arc::clone(&acked));
            tokio::spawn(async move {
                for k in 0..EACH {
                    let n = task * EACH + k;
                    let id = store.deliver(message(n)).await.unwrap();
                    acked.lock().unwrap().push((id, n));
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    done.store(true, Ordering::Relaxed);
    let checks: usize = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(checks > 0, "the readers never ran");
    let acked = acked.lock().unwrap();
    let ids: HashSet<MessageId> = acked.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids.len() as u64, TASKS * EACH, "ids handed out twice");
    assert_eq!(store.count().unwrap().total, TASKS * EACH);
    for (id, n) in acked.iter().step_by(37) {
        assert_visible(&store, *id, *n);
    }
}

/// A second process opens the store while this one owns it: it follows.
/// Every message acknowledged before its reads is there, and it cannot add
/// messages: the error names this process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_follows_the_owner_and_cannot_add_mail() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("mail.db");
    let store = open(&path);
    let mut last = None;
    for n in 0..30 {
        last = Some(store.deliver(message(n)).await.unwrap());
    }
    let last = last.unwrap();
    // Acknowledged just now: the other process's reads wait for the rows.
    let me = std::process::id().to_string();
    let answer = process::run(
        FOLLOWER,
        &[path.to_str().unwrap(), &last.to_string(), "29", &me],
    );
    assert_eq!(process::answer_in(&answer), format!("30 {last}"));
    assert!(
        store.get(last).unwrap().unwrap().summary.read,
        "its flag change"
    );
    // A server started meanwhile waits for the log, then gives up.
    let answer = process::run(SECOND_SERVER, &[path.to_str().unwrap()]);
    assert_eq!(
        process::answer_in(&answer),
        format!("served by {}", std::process::id())
    );
}

const FOLLOWER: &str = "the_follower_process";

/// The other process of the test above: `PATH LAST_ID LAST_N OWNER_PID`.
#[tokio::test]
async fn the_follower_process() {
    let Some(args) = process::other_process_args() else {
        return;
    };
    let store = open(Path::new(&args[0]));
    let last = MessageId(args[1].parse().unwrap());
    let n: u64 = args[2].parse().unwrap();
    assert_visible(&store, last, n);
    let count = store.count().unwrap().total;
    let owner: u32 = args[3].parse().unwrap();
    let refused = store.deliver(message(1000)).await;
    let Err(DeliverError::Unavailable(text)) = refused else {
        panic!("a follower delivered: {refused:?}");
    };
    assert!(text.contains(&format!("(pid {owner})")), "{text}");
    assert!(matches!(
        store.import(vec![message(1001)]),
        Err(StoreError::Served { pid: Some(pid) }) if pid == owner
    ));
    let appended = store.append_to_folder(
        &Folder::Inbox { recipient: None },
        message(1002).raw,
        &Flags::default(),
        SystemTime::now(),
    );
    assert!(
        matches!(appended, Err(StoreError::Served { .. })),
        "{appended:?}"
    );
    // Deletes and flags work from here.
    assert_eq!(store.set_read(&[last], true).unwrap(), 1);
    process::answer(format!("{count} {last}"));
}

const SECOND_SERVER: &str = "a_second_server_process";

/// The other process of the test above: `PATH`, opened as a server opens it.
#[test]
fn a_second_server_process() {
    let Some(args) = process::other_process_args() else {
        return;
    };
    let options = StoreOptions {
        ownership: Ownership::Required(Duration::from_millis(300)),
        ..StoreOptions::default()
    };
    let started = Instant::now();
    match Store::open(Path::new(&args[0]), options) {
        Err(StoreError::Served { pid: Some(pid) }) => {
            assert!(
                started.elapsed() >= Duration::from_millis(300),
                "did not wait"
            );
            process::answer(format!("served by {pid}"));
        }
        other => panic!("{other:?}"),
    }
}

/// An owner in another process delivers without pause; this process opens
/// the store after it and follows: each message whose acknowledgement it
/// reads is there at once, although the owner writes its rows later.
#[test]
fn a_follower_reads_what_the_owner_acknowledged_under_load() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("mail.db");
    let mut owner = process::spawn(OWNER, &[path.to_str().unwrap(), "400"]);
    let mut lines = BufReader::new(owner.stdout.take().unwrap()).lines();
    let mut next = || loop {
        let line = lines.next().expect("the owner ended early").unwrap();
        if let Some(ack) = ack(&line) {
            return Some(ack);
        }
        if line.ends_with("READY") {
            return None;
        }
    };
    assert_eq!(next(), None, "the owner opens the store first");
    let store = open(&path);
    // Open here as a follower: a server's open of the same file fails at
    // once, not at its first delivery.
    let server = StoreOptions {
        ownership: Ownership::Required(Duration::from_millis(100)),
        ..StoreOptions::default()
    };
    assert!(matches!(
        Store::open(&path, server),
        Err(StoreError::Served { pid: Some(_) })
    ));
    let mut seen = 0;
    while let Some((id, n)) = next() {
        // Every other one, so that the owner gets ahead in between.
        if n % 2 == 0 {
            let stored = store.get(id).unwrap();
            assert_eq!(stored.map(|m| m.raw), Some(message(n).raw), "{id}");
            assert!(store.count().unwrap().total > n);
        }
        if n % 50 == 0 {
            assert_eq!(search_ids(&store, &word(n)), [id]);
        }
        seen += 1;
        if seen == 400 {
            break;
        }
    }
    assert!(owner.wait().unwrap().success());
    assert_eq!(seen, 400);
}

const OWNER: &str = "the_owner_process";

/// The other process of the tests here: `PATH COUNT [settle]`: open the
/// store (as its owner), say `READY`, deliver `COUNT` messages one after
/// another and say `ACK ID N` for each as soon as it is acknowledged; with
/// `settle`, wait for their rows before ending.
#[tokio::test]
async fn the_owner_process() {
    let Some(args) = process::other_process_args() else {
        return;
    };
    let store = open(Path::new(&args[0]));
    println!("READY");
    let count: u64 = args[1].parse().unwrap();
    for n in 0..count {
        let id = store.deliver(message(n)).await.unwrap();
        println!("ACK {id} {n}");
    }
    if args.get(2).is_some_and(|arg| arg == "settle") {
        assert_eq!(store.count().unwrap().total, count);
    }
}

/// Messages acknowledged but never written as rows (the materialiser held
/// back by a debug hook, as a crash right after the 250s would leave them)
/// are there, byte for byte, when the store is next opened; and replaying
/// the log again over rows that exist changes nothing.
#[test]
fn what_only_the_log_holds_is_stored_at_the_next_open_and_replay_is_idempotent() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("mail.db");
    let mut owner = process::spawn_with(
        OWNER,
        &[path.to_str().unwrap(), "60"],
        &[("SOKKEL_TEST_MATERIALISE", "off")],
    );
    let acked = acknowledged(&mut owner);
    assert!(owner.wait().unwrap().success());
    assert_eq!(acked.len(), 60);
    assert_eq!(
        rows_in(&path),
        0,
        "the hook wrote no rows: only the log has them"
    );

    let store = open(&path);
    assert_eq!(store.count().unwrap().total, 60);
    for (id, n) in &acked {
        let stored = store.get(*id).unwrap().expect("recovered");
        assert_eq!(stored.raw, message(*n).raw);
        assert_eq!(stored.envelope, message(*n).envelope);
    }
    assert_eq!(search_ids(&store, &word(17)), [acked[17].0]);
    drop(store);

    // Back to the start of the log, as if the position had not been saved:
    // every record there has rows, and each is skipped.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("UPDATE store_state SET log_segment = 0, log_offset = 0", [])
        .unwrap();
    drop(conn);
    let store = open(&path);
    assert_eq!(store.count().unwrap().total, 60);
    let ids = search_ids(&store, "");
    assert_eq!(ids.len(), 60);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 60);
    // And the next id goes on after them.
    let next = store.import(vec![message(100)]).unwrap()[0];
    assert!(next > acked.last().unwrap().0);
}

/// The owner is killed (SIGKILL) while it delivers, again and again: every
/// message it acknowledged is there byte for byte when the store is opened
/// again, and nothing else is.
#[test]
fn every_acknowledged_message_survives_kill_9() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("mail.db");
    let mut all = Vec::new();
    let mut recovered = 0;
    for round in 0..4 {
        let mut owner = process::spawn(OWNER, &[path.to_str().unwrap(), "100000"]);
        let mut lines = BufReader::new(owner.stdout.take().unwrap()).lines();
        let wanted = 50 + round * 40;
        let mut acked = Vec::new();
        for line in lines.by_ref() {
            if let Some(ack) = ack(&line.unwrap()) {
                acked.push(ack);
                if acked.len() == wanted {
                    break;
                }
            }
        }
        owner.kill().unwrap();
        // Acknowledged while this read the lines: they count too.
        acked.extend(lines.map_while(Result::ok).filter_map(|line| ack(&line)));
        owner.wait().unwrap();
        if rows_in(&path) < (all.len() + acked.len()) as i64 {
            recovered += 1;
        }
        all.extend(acked);
        let store = open(&path);
        for (id, n) in &all {
            let stored = store.get(*id).unwrap();
            assert_eq!(
                stored.map(|m| m.raw),
                Some(message(*n).raw),
                "{id} (round {round})"
            );
        }
        // Nothing without an acknowledgement: at most the one in flight per
        // kill (synced, its 250 not read) may be there besides.
        let total = store.count().unwrap().total as usize;
        assert!(
            total >= all.len() && total <= all.len() + round + 1,
            "{total} stored, {} acknowledged",
            all.len()
        );
    }
    println!("{recovered} of 4 rounds needed the log to recover");
}

/// The acknowledgements an owner process printed, until it ends.
fn acknowledged(owner: &mut std::process::Child) -> Vec<(MessageId, u64)> {
    let lines = BufReader::new(owner.stdout.take().unwrap()).lines();
    lines
        .map_while(Result::ok)
        .filter_map(|line| ack(&line))
        .collect()
}

/// The id and message number of an `ACK ID N` line.
fn ack(line: &str) -> Option<(MessageId, u64)> {
    let (id, n) = process::after_marker(line, "ACK ")?.split_once(' ')?;
    Some((MessageId(id.parse().ok()?), n.parse().ok()?))
}

/// How many rows `messages` has, read straight from the file.
fn rows_in(path: &Path) -> i64 {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row("SELECT count(*) FROM messages", [], |row| row.get(0))
        .unwrap()
}

/// Imports and IMAP APPENDs take ids from the log's hold while deliveries
/// go on: every id is unique, and an operation that ended before another
/// began has lower ids (what IMAP UIDs promise a client).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn imports_and_appends_interleaved_with_deliveries_keep_ids_unique_and_ascending() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir.path().join("mail.db"));
    // When each operation started and ended, and the ids it got.
    type Timed = (Instant, Instant, Vec<MessageId>);
    let log: Arc<Mutex<Vec<Timed>>> = Arc::default();
    let record =
        |log: &Mutex<Vec<_>>, start, ids| log.lock().unwrap().push((start, Instant::now(), ids));
    let deliveries: Vec<_> = (0..8)
        .map(|task| {
            let (store, log) = (store.clone(), Arc::clone(&log));
            tokio::spawn(async move {
                for k in 0..40 {
                    let start = Instant::now();
                    let id = store.deliver(message(task * 100 + k)).await.unwrap();
                    record(&log, start, vec![id]);
                }
            })
        })
        .collect();
    let direct: Vec<_> = (0..2)
        .map(|thread| {
            let (store, log) = (store.clone(), Arc::clone(&log));
            std::thread::spawn(move || {
                for k in 0..15 {
                    let n = 10_000 + thread * 100 + k;
                    let start = Instant::now();
                    let ids = if k % 2 == 0 {
                        store.import(vec![message(n), message(n + 50)]).unwrap()
                    } else {
                        let uid = store
                            .append_to_folder(
                                &Folder::Inbox { recipient: None },
                                message(n).raw,
                                &Flags::default(),
                                SystemTime::now(),
                            )
                            .unwrap();
                        vec![MessageId(i64::from(uid))]
                    };
                    record(&log, start, ids);
                }
            })
        })
        .collect();
    for task in deliveries {
        task.await.unwrap();
    }
    for thread in direct {
        thread.join().unwrap();
    }
    let log = log.lock().unwrap();
    let all: Vec<MessageId> = log.iter().flat_map(|(_, _, ids)| ids.clone()).collect();
    assert_eq!(all.len(), 8 * 40 + 2 * (8 * 2 + 7));
    assert_eq!(
        all.iter().collect::<HashSet<_>>().len(),
        all.len(),
        "an id twice"
    );
    for (_, _, ids) in log.iter() {
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    }
    for (_, end_a, ids_a) in log.iter() {
        for (start_b, _, ids_b) in log.iter() {
            if end_a < start_b {
                assert!(
                    ids_a.iter().max() < ids_b.iter().min(),
                    "{ids_a:?} ended before {ids_b:?} began"
                );
            }
        }
    }
    assert_eq!(store.count().unwrap().total, all.len() as u64);
    let (inbox, uid_next) = store
        .folder_messages(&Folder::Inbox { recipient: None })
        .unwrap()
        .unwrap();
    assert_eq!(inbox.len(), all.len());
    assert!(i64::from(uid_next) > all.iter().max().unwrap().0);
}

/// A store of schema 8 (the release before the log) gains the log's
/// position, keeps its messages, and takes new mail with ids after every id
/// it ever gave, the deleted highest one included.
#[tokio::test]
async fn a_schema_8_store_gains_the_log_and_goes_on_with_its_ids() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("mail.db");
    let store = open(&path);
    let ids = store.import((0..3).map(message).collect()).unwrap();
    assert_eq!(store.delete(&[ids[2]]).unwrap(), 1);
    drop(store);
    // What schema 8 had: no log position, and no log.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "ALTER TABLE store_state DROP COLUMN log_segment;
         ALTER TABLE store_state DROP COLUMN log_offset;
         ALTER TABLE store_state DROP COLUMN log_id;
         PRAGMA user_version = 8;",
    )
    .unwrap();
    drop(conn);
    std::fs::remove_dir_all(dir.path().join("mail.db-log")).unwrap();

    let store = open(&path);
    assert_eq!(store.count().unwrap().total, 2);
    assert_eq!(store.get(ids[1]).unwrap().unwrap().raw, message(1).raw);
    let next = store.deliver(message(3)).await.unwrap();
    assert_eq!(
        next,
        MessageId(ids[2].0 + 1),
        "the deleted id is not reused"
    );
    assert_visible(&store, next, 3);
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let (version, segment): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT user_version FROM pragma_user_version), log_segment FROM store_state",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!(version, 9);
    assert!(segment > 0, "the position moved into the log");
    let store = open(&path);
    assert_eq!(store.count().unwrap().total, 3);
}

/// The store's size on disk counts its log's segments too.
#[tokio::test]
async fn the_size_on_disk_counts_the_log() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("mail.db");
    let store = open(&path);
    store.deliver(message(1)).await.unwrap();
    store.count().unwrap();
    let size = |path: &Path| std::fs::metadata(path).map_or(0, |meta| meta.len());
    let log: u64 = std::fs::read_dir(dir.path().join("mail.db-log"))
        .unwrap()
        .map(|entry| size(&entry.unwrap().path()))
        .sum();
    assert!(log > 0);
    let files = size(&path) + size(&dir.path().join("mail.db-wal")) + log;
    // Spares may come or go meanwhile: about, not exactly.
    let reported = store.size_on_disk();
    assert!(reported >= size(&path) + log / 2, "{reported} < {files}");
}

/// Opening a store that holds messages stays cheap for a command: the log's
/// segments are made at the first delivery, not at open.
#[test]
fn opening_writes_no_segment_until_the_first_delivery() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("mail.db");
    let store = open(&path);
    store.count().unwrap();
    drop(store);
    let segments = std::fs::read_dir(dir.path().join("mail.db-log"))
        .unwrap()
        .filter(|entry| {
            entry
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".seg")
        })
        .count();
    assert_eq!(segments, 0);
}

/// Issue #16 review: a record whose rows cannot be written whole (a debug
/// hook poisons one) does not stop the store: the transactions around it
/// shrink until it is alone, and it is stored without its summary; every
/// other message is stored whole.
#[test]
fn a_record_the_rows_cannot_take_is_stored_bare_and_the_rest_go_on() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("mail.db");
    let mut owner = process::spawn_with(
        OWNER,
        &[path.to_str().unwrap(), "40", "settle"],
        &[("SOKKEL_TEST_POISON", "17")],
    );
    let acked = acknowledged(&mut owner);
    assert!(owner.wait().unwrap().success());
    assert_eq!(acked.len(), 40);
    let store = open(&path);
    for (id, n) in &acked {
        let stored = store.get(*id).unwrap().expect("stored");
        assert_eq!(stored.raw, message(*n).raw);
        assert_eq!(stored.summary.parsed, id.0 != 17, "{id}");
    }
    assert_eq!(search_ids(&store, &word(30)), [acked[30].0]);
}

/// Issue #16 review: when the materialiser's thread dies, deliveries are
/// refused at once (451) and reads fail at once, instead of waiting; what
/// was acknowledged is stored at the next open.
#[test]
fn a_dead_materialiser_refuses_deliveries_and_fails_reads_at_once() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("mail.db");
    let answer = process::run_with(
        BROKEN,
        &[path.to_str().unwrap()],
        &[("SOKKEL_TEST_POISON", "3:panic")],
    );
    assert_eq!(process::answer_in(&answer), "refused and failed fast");
    let store = open(&path);
    assert_eq!(store.count().unwrap().total, 3);
}

const BROKEN: &str = "the_broken_materialiser_process";

/// The other process of the test above: `PATH`.
#[tokio::test]
async fn the_broken_materialiser_process() {
    let Some(args) = process::other_process_args() else {
        return;
    };
    let store = open(Path::new(&args[0]));
    for n in 0..3 {
        store.deliver(message(n)).await.unwrap();
    }
    // The third's rows make the thread panic.
    let started = Instant::now();
    assert!(store.count().is_err(), "a read after the panic");
    let refused = store.deliver(message(3)).await;
    assert!(
        matches!(refused, Err(DeliverError::Unavailable(_))),
        "{refused:?}"
    );
    assert!(store.import(vec![message(4)]).is_err());
    assert!(started.elapsed() < Duration::from_secs(10), "waited");
    process::answer("refused and failed fast");
}

/// `mail serve` records where it takes mail and the token its server names,
/// for `mail import` in another process (issue #18); the record replaces the
/// last one, is removed when the server stops or a new owner takes the log,
/// and counts only while the process that wrote it owns the log.
#[test]
fn the_owner_records_its_smtp_addresses_in_the_log_directory() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("mail.db");
    let file = dir.path().join("mail.db-log/smtp");
    let store = open(&path);
    assert_eq!(store.served_smtp(), None);
    let addrs: Vec<std::net::SocketAddr> = vec![
        "127.0.0.1:2525".parse().unwrap(),
        "[::1]:2525".parse().unwrap(),
    ];
    store.record_smtp(&addrs, "t1").unwrap();
    let record = store.served_smtp().expect("the record");
    assert_eq!(
        (record.pid, record.token.as_str(), record.addrs),
        (std::process::id(), "t1", addrs.clone())
    );
    store.record_smtp(&addrs[1..], "t2").unwrap();
    assert_eq!(store.served_smtp().unwrap().addrs, addrs[1..]);
    // An earlier owner's record is not the owner's.
    let text = std::fs::read_to_string(&file).unwrap();
    let other = text.replacen(
        &format!("pid {}", std::process::id()),
        &format!("pid {}", std::process::id() + 1),
        1,
    );
    std::fs::write(&file, other).unwrap();
    assert_eq!(store.served_smtp(), None);
    store.forget_smtp().unwrap();
    assert!(!file.exists());
    std::fs::write(&file, text).unwrap();
    drop(store);
    let _store = open(&path);
    assert!(
        !file.exists(),
        "a new owner keeps an earlier owner's record"
    );
}
