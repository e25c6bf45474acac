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
mod writer;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{MessageId, NewMessage, StoreError};

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
    shared: std::sync::Arc<writer::Shared>,
    appender: writer::Appender,
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
        let _ = (dir, materialised, next_id, wait, options);
        todo!("log: open")
    }

    /// Append `message` and resolve once it is durable, with the id it was
    /// given. An `Err` means nothing of it will ever be materialised: a failed
    /// sync (`StoreError::Io`, the batch's records are cut off the log), the
    /// size limit (`StoreError::Full`), or a closed log.
    pub(crate) async fn append(&self, message: NewMessage) -> Result<MessageId, StoreError> {
        let _ = message;
        todo!("log: append")
    }

    /// The end of the last durable record: every delivery answered `Ok` so
    /// far is before it. What a reader that must see every acknowledged
    /// message waits for the materialiser to reach.
    pub(crate) fn synced(&self) -> Position {
        todo!("log: synced")
    }

    /// Durable records from `from` on (the materialised position), in order,
    /// up to about `max_bytes` of messages (at least one record if there is
    /// one); empty when the materialiser has caught up. Reads the segment
    /// files (the page cache has them), so what waits costs no memory.
    pub(crate) fn read(&self, from: Position, max_bytes: usize) -> Result<Vec<Logged>, StoreError> {
        let _ = (from, max_bytes);
        todo!("log: read")
    }

    /// The materialiser has committed the rows of every record before `at`
    /// (not necessarily durably): appends held back by the lag limit go on.
    pub(crate) fn materialised(&self, at: Position) {
        let _ = at;
        todo!("log: materialised")
    }

    /// The rows of every record before `at` are durable in SQLite (a commit
    /// with `synchronous=FULL` after them returned): the segments wholly
    /// before `at.segment` are recycled.
    pub(crate) fn durable(&self, at: Position) {
        let _ = at;
        todo!("log: durable")
    }

    /// Stop the appender giving ids, once every id it gave is durable or
    /// failed, so that the caller (the materialiser, importing messages that
    /// do not come through the log) can materialise up to [`Log::synced`] and
    /// insert rows with the ids it takes from the hold. Appends wait until the
    /// hold is dropped; keep it short.
    pub(crate) fn hold_ids(&self) -> IdHold<'_> {
        todo!("log: hold_ids")
    }

    pub(crate) fn stats(&self) -> LogStats {
        todo!("log: stats")
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
        let _ = self.log;
        todo!("log: next_id")
    }

    /// Ids below `next` are taken (by rows the caller inserted): the log goes
    /// on from `next` (never back).
    pub(crate) fn advance_to(&mut self, next: i64) {
        let _ = next;
        todo!("log: advance_to")
    }
}

/// The log's directory for the SQLite database at `db`: `mail.db` →
/// `mail.db-log`.
pub(crate) fn dir_for(db: &Path) -> PathBuf {
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

/// For a process that does not own the log: the end of the valid records in
/// `dir` from `from` on (`from` itself if there are none, or no log). A
/// reader waits until the owner's materialised position reaches it.
pub(crate) fn scan_end(dir: &Path, from: Position) -> Result<Position, StoreError> {
    let _ = (dir, from);
    todo!("log: scan_end")
}
