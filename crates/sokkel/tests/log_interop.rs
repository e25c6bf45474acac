//! kill -9 again and again under Postfix's smtp-source (issue #16): the store's log
//! must keep every message that got a 250, byte for byte, under the id the 250
//! named, through eight crashes at random moments; and a message that did not get
//! its 250 is either wholly there or not there at all.
//!
//! smtp-source is the load (it does not say which of its messages got a 250); beside
//! it, the crash kit's senders record every 250 with its `queued as ID` and the
//! bytes sent. Needs postfix installed; `.ci/run` installs it and runs
//! `cargo test -- --ignored`. `KILL_LOOP_SEED=N` repeats a run's kill moments.

mod kit;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kit::catcher::{ids, list_json};
use kit::crash::{Acked, SenderEnd, Senders, crash_message, integrity_check};
use kit::process::{ChildGuard, require_program};
use kit::smtp::show;
use kit::{Catcher, tempdir};
use serde_json::Value;

const ROUNDS: usize = 8;

/// A small random number generator (xorshift64*): the kill moments vary from run to
/// run, and a failing run's seed, printed, repeats them.
struct Moments(u64);

impl Moments {
    fn new() -> Moments {
        let seed = std::env::var("KILL_LOOP_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
                    | 1
            });
        eprintln!("kill moments from KILL_LOOP_SEED={seed}");
        Moments(seed)
    }

    /// A duration in `[0, max)`.
    fn below(&mut self, max: Duration) -> Duration {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        max.mul_f64((x >> 11) as f64 / (1u64 << 53) as f64)
    }
}

fn smtp_source(catcher: &Catcher) -> ChildGuard {
    let program = require_program("smtp-source", "postfix");
    let child = Command::new(program)
        .args(["-s", "10", "-m", "200000", "-l", "4096"])
        .args(["-f", "from@load.test", "-t", "to@load.test"])
        .arg(catcher.addr().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start smtp-source");
    ChildGuard::new(child, "smtp-source")
}

#[test]
#[ignore = "interop: needs postfix (smtp-source); .ci/run installs it and runs cargo test -- --ignored"]
fn kill_9_eight_times_under_smtp_source_loses_no_acknowledged_message() {
    kill_loop(None);
}

#[test]
#[ignore = "interop: needs postfix (smtp-source); .ci/run installs it and runs cargo test -- --ignored"]
fn kill_9_eight_times_with_64_kib_segments_loses_no_acknowledged_message() {
    // About 16 messages to a segment: the kills land during segment changes,
    // spare making and recycling. Release builds have no segment-size hook and
    // run this with the default segments.
    kill_loop(Some(64 << 10));
}

/// Eight rounds of: start on the store, load, kill -9 at a random moment, check.
fn kill_loop(segment_size: Option<u64>) {
    let dir = tempdir();
    let db = dir.path().join("mail.db");
    let mut moments = Moments::new();
    let mut acked: Vec<Acked> = Vec::new();
    let start = || {
        let builder = Catcher::builder().db(&db).http();
        match segment_size {
            Some(size) => builder.env("SOKKEL_TEST_SEGMENT_SIZE", &size.to_string()),
            None => builder,
        }
        .start()
    };

    for round in 1..=ROUNDS {
        let mut catcher = start();
        // What the previous round acknowledged, now read through the restarted server.
        let earlier = acked.len();
        assert_kept(&catcher, &acked, round);

        let mut load = smtp_source(&catcher);
        let senders = Senders::start(catcher.addr(), 4, 1_000_000, Duration::from_secs(60));
        senders.wait_for(20, Duration::from_secs(15));
        thread::sleep(moments.below(Duration::from_millis(1500)));
        assert!(
            load.wait_timeout(Duration::ZERO).is_none(),
            "round {round}: smtp-source finished before the kill: no load at the crash"
        );
        catcher.kill_hard();
        let (ends, round_acked) = senders.join();
        assert!(
            ends.iter().all(|end| matches!(end, SenderEnd::Broken(_))),
            "round {round}: every sender should have been cut off by the kill: {ends:?}"
        );
        load.wait_timeout(Duration::from_secs(30))
            .expect("smtp-source kept running after the server died");
        assert!(
            !round_acked.is_empty(),
            "round {round}: no message was acknowledged before the kill"
        );
        eprintln!(
            "round {round}: {} acknowledged to the senders before the kill",
            round_acked.len()
        );
        acked.extend(round_acked);
        assert_eq!(integrity_check(&db), "ok", "round {round}");

        // The CLI is the first to open the store after the crash: it recovers the
        // log and lists every acknowledged message.
        let listed: BTreeSet<u64> = ids(&list_json(&db, 10_000_000)).into_iter().collect();
        let missing: Vec<u64> = acked[earlier..]
            .iter()
            .map(|a| a.id)
            .filter(|id| !listed.contains(id))
            .collect();
        assert!(
            missing.is_empty(),
            "round {round}: `mail list` after the kill misses acknowledged ids {missing:?}"
        );
    }

    let catcher = start();
    assert_kept(&catcher, &acked, ROUNDS + 1);
    assert_all_complete(&catcher, &db);
}

/// Every acknowledged message is listed under its id, and ids are unique across every
/// round; the bytes of each are compared with what was sent through the web API.
fn assert_kept(catcher: &Catcher, acked: &[Acked], round: usize) {
    let mut seen = BTreeSet::new();
    let twice: Vec<u64> = acked
        .iter()
        .map(|a| a.id)
        .filter(|&id| !seen.insert(id))
        .collect();
    assert!(
        twice.is_empty(),
        "before round {round}: the server gave these ids to two messages: {twice:?}"
    );
    in_parallel(acked, |a| {
        let raw = api_raw(catcher, a.id);
        assert!(
            raw.as_ref() == Some(&a.content),
            "before round {round}: acknowledged message {} is {}; sent {} bytes: {:?}",
            a.id,
            raw.map_or("gone".into(), |r| format!(
                "{} bytes: {:?}",
                r.len(),
                show(&r[..r.len().min(300)])
            )),
            a.content.len(),
            show(&a.content[..a.content.len().min(300)])
        );
    });
}

/// Nothing half-stored: every stored message is one that was sent, whole. The
/// crash senders' messages (acknowledged or not) are known byte for byte from their
/// subject; smtp-source's all have the same body and the same headers but for
/// `Date` and `Message-Id`.
fn assert_all_complete(catcher: &Catcher, db: &Path) {
    let listed = list_json(db, 10_000_000);
    let reference = listed
        .iter()
        .find(|m| m["mail_from"] == "from@load.test")
        .map(|m| body(&api_raw(catcher, m["id"].as_u64().unwrap()).unwrap()).to_vec())
        .expect("no smtp-source message stored at all");
    assert!(
        reference.len() >= 4096,
        "the first smtp-source message's body is {} bytes",
        reference.len()
    );
    let mut kinds = BTreeMap::<&str, usize>::new();
    for m in &listed {
        *kinds
            .entry(m["mail_from"].as_str().unwrap_or("?"))
            .or_default() += 1;
    }
    eprintln!("stored after {ROUNDS} kills: {kinds:?}");
    in_parallel(&listed, |m: &Value| {
        let id = m["id"].as_u64().unwrap();
        let raw = api_raw(catcher, id).unwrap_or_else(|| panic!("{id} is listed but has no raw"));
        let whole = if m["mail_from"] == "from@load.test" {
            raw.starts_with(b"From: <from@load.test>\r\nTo: <to@load.test>\r\n")
                && body(&raw) == reference.as_slice()
        } else {
            let subject = m["subject"].as_str().unwrap_or("");
            let numbers = subject
                .strip_prefix("crash ")
                .and_then(|s| s.split_once('-'))
                .and_then(|(s, n)| Some((s.parse().ok()?, n.parse().ok()?)));
            numbers.is_some_and(|(sender, n)| raw == crash_message(sender, n))
        };
        assert!(
            whole,
            "message {id} ({m}) is not a whole message that was sent: {} bytes: {:?}",
            raw.len(),
            show(&raw[..raw.len().min(400)])
        );
    });
}

/// What follows the header block.
fn body(raw: &[u8]) -> &[u8] {
    raw.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(&[], |at| &raw[at + 4..])
}

/// The raw bytes of message `id` from the web API; `None` if it is not there.
fn api_raw(catcher: &Catcher, id: u64) -> Option<Vec<u8>> {
    let response = catcher.get(&format!("/api/v1/message/{id}/raw"));
    match response.status {
        200 => Some(response.body),
        404 => None,
        other => panic!("raw of {id}: {other} {}", response.text()),
    }
}

/// Runs `check` on every item, on four threads.
fn in_parallel<T: Sync>(items: &[T], check: impl Fn(&T) + Sync) {
    let check = &check;
    thread::scope(|scope| {
        for chunk in items.chunks(items.len().div_ceil(4).max(1)) {
            scope.spawn(move || chunk.iter().for_each(check));
        }
    });
}
