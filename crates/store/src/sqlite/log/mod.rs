//! The log in front of SQLite: where an arriving message becomes durable.
//!
//! A delivery is appended to a log of preallocated segment files, one record
//! per message with a checksum, and acknowledged after one `fdatasync` for the
//! whole batch it arrived in. Nothing else stands between the end of DATA and
//! the 250. The SQLite rows are written from the log afterwards, in larger
//! transactions, by the materialiser (`super::writer`), which reports back how
//! far it got; segments it has durably passed are recycled.
//!
//! ```text
//! deliver ─┐                                   ┌─▶ Ok(id)   every waiter, after fdatasync
//! deliver ─┼─▶ appender: ids, records, pwrite ─┤
//! deliver ─┘        │                          └─▶ Err      every waiter, after a failed sync
//!                   ▼ on_synced(position)
//!            materialiser: read(from) ─▶ SQLite rows ─▶ materialised(pos) / durable(pos)
//! ```
//!
//! On disk, `mail.db-log/` next to `mail.db`:
//! - `lock`: held with `flock` by the one process that owns the log (it also
//!   holds that process's id, for error messages). Only the owner appends and
//!   materialises; other processes read SQLite and wait for the owner
//!   ([`scan_end`]).
//! - `smtp`: the owner's pid, the token its SMTP server names in EHLO and the
//!   addresses it takes mail on, if it said ([`write_smtp_record`]): where
//!   `mail import` in another process hands messages over, since it cannot add
//!   them itself. Removed when that server stops or a new owner takes the log.
//! - `NNNNNNNNNNNNNNNN.seg`: segments. A segment's identity is the number in
//!   its header, not its name: a recycled segment gets a new number in its
//!   header, and a record is valid only if its checksum, which covers the
//!   segment number, matches, so stale records from the segment's earlier
//!   life end the scan like zeros or a torn write do.
//!
//! Recovery is the scan: from the materialised position, records are read in
//! order until the first that is incomplete or fails its checksum; that record
//! and everything after it in that segment never got a 250. A segment whose
//! header says its predecessor ends early (written after a failed sync) cuts
//! the predecessor there.

#![allow(dead_code)] // the skeleton: removed once the store uses all of it

mod record;
mod segment;
#[cfg(test)]
mod tests;
mod writer;

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use sokkel_net::stats::StoreCounters;
use tokio::sync::oneshot;

use crate::{MessageId, NewMessage, SmtpRecord, StoreError};
use segment::SEGMENT_HEADER;
use writer::{Append, Appender, Counters, Live, Shared, State};

/// Where a record starts or ends: a segment number and a byte offset in it.
/// Ordered as the log is. [`Position::START`] is before every record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub(crate) struct Position {
    pub(crate) segment: u64,
    pub(crate) offset: u64,
}

impl Position {
    /// Before the first record of an empty log: what a store that has never
    /// had a log (a new one, or one made before the log existed) has
    /// materialised.
    pub(crate) const START: Position = Position {
        segment: 0,
        offset: 0,
    };
}

/// One record read back from the log.
#[derive(Debug)]
pub(crate) struct Logged {
    /// The id the message was acknowledged with (`250 ... queued as ID`).
    pub(crate) id: MessageId,
    pub(crate) message: NewMessage,
    /// Where the next record starts: the position to materialise up to.
    pub(crate) end: Position,
}

/// Settings of an open log and the store's hooks into its appender.
pub(crate) struct LogOptions {
    /// The size segments are preallocated to. A record that does not fit in
    /// what is left of one starts the next; a record bigger than this gets a
    /// segment of its own, as big as it needs.
    pub(crate) segment_size: u64,
    /// The most messages one batch (one `fdatasync`) holds.
    pub(crate) max_batch: usize,
    /// Appends wait (the 250s are held back) while more than this many bytes
    /// are logged but not yet materialised: the materialiser's lag is bounded.
    pub(crate) max_lag_bytes: u64,
    /// Asked by the appender before each batch, with the batch's bytes: an
    /// `Err` (the store's size limit, [`StoreError::Full`]) answers every
    /// delivery in it without writing anything.
    pub(crate) admit: Box<dyn Fn(u64) -> Result<(), StoreError> + Send + Sync>,
    /// Called by the appender after each batch is durable (and before its
    /// waiters are answered), with the end of its last record: the
    /// materialiser's cue.
    pub(crate) on_synced: Box<dyn Fn(Position) + Send + Sync>,
    /// Test hook: the batch syncs (1-based) that fail as if the disk had
    /// failed them. Empty in production; see also `SOKKEL_TEST_FAIL_SYNC`.
    pub(crate) fail_syncs: Vec<u64>,
    /// The database's log id (`store_state.log_id`): segments and records
    /// of another store's log are not this one's.
    pub(crate) store_id: u64,
    /// Where each batch's write and sync time is counted.
    pub(crate) counters: Arc<StoreCounters>,
}

impl LogOptions {
    /// 16 MiB segments: a spare one is ready while the current one fills, so a
    /// store that receives nothing costs two segments of disk.
    pub(crate) const SEGMENT_SIZE: u64 = 16 << 20;
    /// 256 MiB of messages may wait for the materialiser (about 60,000 of
    /// 4 KiB): bursts are taken at the log's speed.
    pub(crate) const MAX_LAG_BYTES: u64 = 256 << 20;
}

/// What the appender has done since the log was opened, for logs and
/// benchmarks.
#[derive(Debug, Clone, Default)]
pub(crate) struct LogStats {
    /// Batches made durable (one `fdatasync` each, two when a batch crossed
    /// into a new segment).
    pub(crate) batches: u64,
    pub(crate) messages: u64,
    /// Bytes of records written, headers included.
    pub(crate) bytes: u64,
    /// Syncs that failed (their batches were answered with an error).
    pub(crate) failed_syncs: u64,
    /// From a delivery reaching the appender's queue to its answer: the
    /// median and the 99th percentile, in microseconds.
    pub(crate) ack_p50_us: u64,
    pub(crate) ack_p99_us: u64,
    /// The largest batch.
    pub(crate) max_batch: u64,
}

/// The log of one SQLite store, owned by this process. Dropping it lets the
/// appender answer what is queued, and waits for its thread.
pub(crate) struct Log {
    shared: Arc<Shared>,
    appender: Appender,
    /// The `flock` that makes this process the owner; let go of last, after
    /// the appender's thread (and any spare being made) is done.
    _lock: File,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("dir", &self.shared.dir)
            .finish_non_exhaustive()
    }
}

impl Log {
    /// Take ownership of the log in `dir`, creating the directory if it is
    /// missing, and find its end by scanning from `materialised` (where the
    /// store's rows end). `next_id` is the lowest id the log may give (one
    /// more than the highest id SQLite has ever given); ids of records found
    /// in the log count too.
    ///
    /// `Ok(None)` when another process owns the log; waits up to `wait` for
    /// it to let go first (a command-line reader that opened the store just
    /// before a server started).
    pub(crate) fn open(
        dir: &Path,
        materialised: Position,
        next_id: i64,
        wait: Duration,
        options: LogOptions,
    ) -> Result<Option<Log>, StoreError> {
        let io = |action, error| StoreError::io(action, dir, error);
        fs::create_dir_all(dir).map_err(|error| io("creating the log directory", error))?;
        let Some(lock) = take_lock(dir, wait).map_err(|error| io("locking the log in", error))?
        else {
            return Ok(None);
        };
        segment::remove_partial(dir);
        let scan = segment::scan(dir, options.store_id, materialised)
            .map_err(|error| io("reading the log in", error))?;
        if scan.records > 0 {
            tracing::info!(
                messages = scan.records,
                log = %dir.display(),
                "the mail store's log holds messages not yet stored in the database; storing them"
            );
        }
        let mut live = VecDeque::new();
        let mut base = 0;
        for found in &scan.segments {
            live.push_back(Live {
                number: found.number,
                path: found.path.clone(),
                limit: Some(found.end),
                base,
            });
            base += found.end;
        }
        let mut options = options;
        let mut fail_syncs = test_hooks(&mut options);
        fail_syncs.extend(options.fail_syncs.iter().copied());
        let state = State {
            synced: scan.end,
            materialised,
            durable: materialised,
            next_id: next_id.max(scan.max_id + 1).max(1),
            first_number: (materialised.segment + 1).max(scan.max_number + 1),
            held: false,
            in_flight: false,
            waiting: 0,
            live,
            spares: scan.spares,
            preparing: false,
            next_size: writer::FIRST_SEGMENT_SIZE.min(options.segment_size),
            closed: false,
            stats: Counters::default(),
        };
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            state: Mutex::new(state),
            changed: Condvar::new(),
            options,
            acks: Mutex::new(
                hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 2)
                    .expect("valid histogram bounds"),
            ),
        });
        let appender = Appender::spawn(Arc::clone(&shared), fail_syncs)?;
        Ok(Some(Log {
            shared,
            appender,
            _lock: lock,
        }))
    }

    /// Append `message` and resolve once it is durable, with the id it was
    /// given. An `Err` means nothing of it will ever be materialised: a failed
    /// sync (`StoreError::Io`, the batch's records are cut off the log), the
    /// size limit (`StoreError::Full`), or a closed log.
    pub(crate) async fn append(&self, message: NewMessage) -> Result<MessageId, StoreError> {
        let requests = self.appender.requests.as_ref().ok_or(StoreError::Closed)?;
        let (reply, answer) = oneshot::channel();
        let append = Append {
            message,
            queued: Instant::now(),
            reply,
        };
        requests
            .send(append)
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Where the store's times are counted.
    pub(crate) fn counters(&self) -> &StoreCounters {
        &self.shared.options.counters
    }

    /// The end of the last durable record: every delivery answered `Ok` so
    /// far is before it. What a reader that must see every acknowledged
    /// message waits for the materialiser to reach.
    pub(crate) fn synced(&self) -> Position {
        self.shared.lock().synced
    }

    /// Durable records from `from` on (the materialised position), in order,
    /// up to about `max_bytes` of messages (at least one record if there is
    /// one); empty when the materialiser has caught up. Reads the segment
    /// files (the page cache has them), so what waits costs no memory.
    pub(crate) fn read(&self, from: Position, max_bytes: usize) -> Result<Vec<Logged>, StoreError> {
        let (synced, segments) = {
            let state = self.shared.lock();
            (state.synced, state.live.clone())
        };
        let mut out = Vec::new();
        let mut bytes = 0;
        for live in segments.iter().filter(|live| live.number >= from.segment) {
            if live.number > synced.segment || bytes >= max_bytes.max(1) {
                break;
            }
            let start = if live.number == from.segment {
                from.offset.max(SEGMENT_HEADER)
            } else {
                SEGMENT_HEADER
            };
            let limit = if live.number == synced.segment {
                synced.offset
            } else {
                live.limit.unwrap_or(SEGMENT_HEADER)
            };
            if start >= limit {
                continue;
            }
            let file = File::open(&live.path)
                .map_err(|error| StoreError::io("reading the log segment", &live.path, error))?;
            let mut offset = start;
            let key = record::Key {
                store_id: self.shared.options.store_id,
                segment: live.number,
            };
            let end = segment::walk(&file, key, start, Some(limit), |id, record| {
                offset += record.len() as u64;
                let end = Position {
                    segment: live.number,
                    offset,
                };
                match record::decode(&record[record::HEADER..]) {
                    Some(message) => {
                        bytes += message.raw.len();
                        out.push(Logged {
                            id: MessageId(id),
                            message,
                            end,
                        });
                    }
                    None => tracing::error!(
                        id,
                        segment = live.number,
                        "a record of the mail store's log passed its checksum but does not parse; skipped"
                    ),
                }
                bytes < max_bytes.max(1)
            })
            .map_err(|error| StoreError::io("reading the log segment", &live.path, error))?;
            if end < limit && bytes < max_bytes.max(1) {
                tracing::error!(
                    segment = live.number,
                    offset = end,
                    "the mail store's log is damaged: a record it acknowledged does not read back"
                );
                if out.is_empty() {
                    return Err(StoreError::corrupt(format!(
                        "the log segment {} is damaged at byte {end}",
                        live.path.display()
                    )));
                }
                break;
            }
        }
        Ok(out)
    }

    /// Whether the records durable but not yet materialised have come to
    /// `1 / fraction` of [`LogOptions::max_lag_bytes`].
    pub(crate) fn lag_past(&self, fraction: u64) -> bool {
        self.shared.lock().lag() >= self.shared.options.max_lag_bytes / fraction.max(1)
    }

    /// The materialiser has committed the rows of every record before `at`
    /// (not necessarily durably): appends held back by the lag limit go on.
    pub(crate) fn materialised(&self, at: Position) {
        self.shared.lock().materialised = at;
        self.shared.changed.notify_all();
    }

    /// The rows of every record before `at` are durable in SQLite (a commit
    /// with `synchronous=FULL` after them returned): the segments wholly
    /// before `at.segment` are recycled.
    pub(crate) fn durable(&self, at: Position) {
        self.shared.lock().durable = at;
        self.shared.free_before(at);
    }

    /// Stop the appender giving ids, once every id it gave is durable or
    /// failed, so that the caller (the materialiser, importing messages that
    /// do not come through the log) can materialise up to [`Log::synced`] and
    /// insert rows with the ids it takes from the hold. Appends wait until the
    /// hold is dropped; keep it short.
    pub(crate) fn hold_ids(&self) -> IdHold<'_> {
        let mut state = self.shared.lock();
        while state.held || state.in_flight {
            state = self.shared.wait(state);
        }
        state.held = true;
        IdHold { log: self }
    }

    pub(crate) fn stats(&self) -> LogStats {
        self.shared.stats()
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.shared.dir
    }
}

/// The appender stopped between batches (see [`Log::hold_ids`]).
#[derive(Debug)]
pub(crate) struct IdHold<'a> {
    log: &'a Log,
}

impl IdHold<'_> {
    /// The next id the log would give.
    pub(crate) fn next_id(&self) -> i64 {
        self.log.shared.lock().next_id
    }

    /// Ids below `next` are taken (by rows the caller inserted): the log goes
    /// on from `next` (never back).
    pub(crate) fn advance_to(&mut self, next: i64) {
        let mut state = self.log.shared.lock();
        state.next_id = state.next_id.max(next);
    }
}

impl Drop for IdHold<'_> {
    fn drop(&mut self) {
        self.log.shared.lock().held = false;
        self.log.shared.changed.notify_all();
    }
}

/// Take the log's lock in `dir`, waiting up to `wait` for another process
/// to let go of it; write this process's id in it. `None` if it stayed taken.
fn take_lock(dir: &Path, wait: Duration) -> io::Result<Option<File>> {
    use rustix::fs::{FlockOperation, flock};
    let mut lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join("lock"))?;
    let deadline = Instant::now() + wait;
    loop {
        match flock(&lock, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => break,
            Err(rustix::io::Errno::WOULDBLOCK) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(rustix::io::Errno::WOULDBLOCK) => return Ok(None),
            Err(error) => return Err(error.into()),
        }
    }
    lock.set_len(0)?;
    writeln!(lock, "{}", std::process::id())?;
    Ok(Some(lock))
}

/// The test hooks of debug builds: `SOKKEL_TEST_SEGMENT_SIZE=BYTES` sets the
/// segment size; `SOKKEL_TEST_FAIL_SYNC=N[,M...]` makes the N-th batch's
/// `fdatasync` (counted from this open) fail. Release builds have neither.
fn test_hooks(options: &mut LogOptions) -> Vec<u64> {
    if !cfg!(debug_assertions) {
        return Vec::new();
    }
    if let Some(size) = std::env::var("SOKKEL_TEST_SEGMENT_SIZE")
        .ok()
        .and_then(|size| size.parse::<u64>().ok())
    {
        options.segment_size = size.max(4096);
    }
    std::env::var("SOKKEL_TEST_FAIL_SYNC")
        .ok()
        .map(|list| {
            list.split(',')
                .filter_map(|n| n.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The log's directory for the SQLite database at `db`: `mail.db` →
/// `mail.db-log`.
///
/// The path is resolved first (when the file exists), so that a database
/// reached through a symbolic link has one log, not one per link.
pub(crate) fn dir_for(db: &Path) -> PathBuf {
    let db = fs::canonicalize(db).unwrap_or_else(|_| db.to_path_buf());
    let mut dir = db.as_os_str().to_owned();
    dir.push("-log");
    PathBuf::from(dir)
}

/// The process id written in the lock of the log in `dir`, if another
/// process owns it (for an error message that names it).
pub(crate) fn owner_pid(dir: &Path) -> Option<u32> {
    std::fs::read_to_string(dir.join("lock"))
        .ok()
        .and_then(|text| text.trim().parse().ok())
}

/// Write the owner's `smtp` record in the log's `dir` (replacing what was
/// there, at once: through `smtp.new`, which a crash leaves for
/// [`segment::remove_partial`]):
///
/// ```text
/// pid 4242                 the owner's process id, as in `lock`
/// token 9f0c...            what its SMTP server names in its EHLO reply
/// 127.0.0.1:1025           one address a line
/// ```
pub(crate) fn write_smtp_record(dir: &Path, record: &SmtpRecord) -> io::Result<()> {
    let mut text = format!("pid {}\ntoken {}\n", record.pid, record.token);
    for addr in &record.addrs {
        text.push_str(&format!("{addr}\n"));
    }
    let new = dir.join("smtp.new");
    fs::write(&new, text)?;
    fs::rename(&new, dir.join("smtp"))
}

/// The `smtp` record in the log's `dir`, if the process that owns the log now
/// wrote it (a record left by an earlier owner is not its).
pub(crate) fn smtp_record(dir: &Path) -> Option<SmtpRecord> {
    let text = fs::read_to_string(dir.join("smtp")).ok()?;
    let mut lines = text.lines();
    let pid: u32 = lines.next()?.strip_prefix("pid ")?.trim().parse().ok()?;
    let token = lines.next()?.strip_prefix("token ")?.trim().to_owned();
    if token.is_empty() || owner_pid(dir) != Some(pid) {
        return None;
    }
    let addrs = lines.filter_map(|line| line.trim().parse().ok()).collect();
    Some(SmtpRecord { pid, token, addrs })
}

/// Removes the `smtp` record in the log's `dir` (the server that wrote it
/// stops, or a new owner took the log).
pub(crate) fn remove_smtp_record(dir: &Path) -> io::Result<()> {
    match fs::remove_file(dir.join("smtp")) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

/// For a process that does not own the log: the end of the valid records in
/// `dir` from `from` on (`from` itself if there are none, or no log). A
/// reader waits until the owner's materialised position reaches it.
pub(crate) fn scan_end(dir: &Path, store_id: u64, from: Position) -> Result<Position, StoreError> {
    segment::scan(dir, store_id, from)
        .map(|scan| scan.end)
        .map_err(|error| StoreError::io("reading the log in", dir, error))
}
