//! The appender thread: batches deliveries, gives them ids, writes their
//! records and makes them durable with one `fdatasync` per batch.
//!
//! A batch is what is queued when the thread comes round, cut where a record
//! does not fit in the current segment (the rest is the next batch, in the
//! next segment), so every batch lies in one segment and is made durable by
//! one sync of one file.
//!
//! A failed sync is not retried: the pages it was to write may be gone, and
//! a second sync can succeed without them (the PostgreSQL fsync lesson). The
//! batch is answered with the error, and its bytes are overwritten with zeros
//! and synced before anything else is written: the next batch goes where it
//! was, so no record of it can come back in a later scan. Until the zeros are
//! durable every batch fails.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::segment::{self, SEGMENT_HEADER, SegmentHeader};
use super::{LogOptions, LogStats, Position, record};
use crate::delivery::MAX_BATCH_BYTES;
use crate::{MessageId, NewMessage, StoreError};

/// The first segment a log makes is this big; each new one twice the last,
/// up to [`LogOptions::segment_size`]: a store that gets a few messages (every
/// test) costs little disk, one that gets many soon has full-size segments.
pub(super) const FIRST_SEGMENT_SIZE: u64 = 256 << 10;

/// The pause after each synced megabyte of a spare segment being made
/// beside deliveries (see [`segment::create_zeroed`]).
const SPARE_PACE: Duration = Duration::from_millis(2);

/// How long a batch waits for the materialiser to come within
/// [`LogOptions::max_lag_bytes`] before it is refused (451): a database that
/// cannot take rows (locked, broken) refuses mail rather than holding every
/// session and its message in memory.
const LAG_WAIT: Duration = Duration::from_secs(30);

/// The encoding buffer is given back after a batch that made it bigger.
const BUF_KEEP: usize = 1 << 20;

/// Freed segments kept for reuse; more are deleted.
const MAX_SPARES: usize = 2;

/// One delivery waiting for the appender.
pub(super) struct Append {
    pub(super) message: NewMessage,
    pub(super) queued: Instant,
    pub(super) reply: oneshot::Sender<Result<MessageId, StoreError>>,
}

/// A segment the log still needs: its records are not all durably
/// materialised.
#[derive(Debug, Clone)]
pub(super) struct Live {
    pub(super) number: u64,
    pub(super) path: PathBuf,
    /// Where its records end, once the appender has left it; the current
    /// segment's durable records end at [`State::synced`].
    pub(super) limit: Option<u64>,
    /// Bytes of the log before this segment's first byte: positions in
    /// different segments compare as `base + offset`.
    pub(super) base: u64,
}

/// What the appender and the handles share, under [`Shared::state`].
#[derive(Debug)]
pub(super) struct State {
    pub(super) synced: Position,
    pub(super) materialised: Position,
    pub(super) durable: Position,
    pub(super) next_id: i64,
    /// New segments are numbered from here on at least (one more than the
    /// materialised position's, so that a log whose files are gone does not
    /// start again below it).
    pub(super) first_number: u64,
    /// [`super::Log::hold_ids`] is held: the appender gives no ids.
    pub(super) held: bool,
    /// The appender has given ids whose batch is not yet durable or failed.
    pub(super) in_flight: bool,
    /// Threads in [`Shared::wait`]: the end of a batch wakes them only if
    /// there are any (a notify is a system call even with nobody to wake).
    pub(super) waiting: usize,
    pub(super) live: VecDeque<Live>,
    pub(super) spares: Vec<PathBuf>,
    /// A spare segment is being made on a thread of its own.
    pub(super) preparing: bool,
    /// The size the next new segment gets.
    pub(super) next_size: u64,
    /// The handle is gone: the appender and any waiter stop waiting.
    pub(super) closed: bool,
    pub(super) stats: Counters,
}

impl State {
    /// `at` as a byte count from the start of the log, for the lag.
    pub(super) fn global(&self, at: Position) -> u64 {
        self.live
            .iter()
            .find(|live| live.number == at.segment)
            .map_or(0, |live| live.base + at.offset)
    }

    /// Bytes durable in the log but not yet materialised.
    pub(super) fn lag(&self) -> u64 {
        let materialised = if self.materialised.segment == 0 {
            0
        } else {
            self.global(self.materialised)
        };
        self.global(self.synced).saturating_sub(materialised)
    }
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) batches: u64,
    pub(super) messages: u64,
    pub(super) bytes: u64,
    pub(super) failed_syncs: u64,
    pub(super) max_batch: u64,
}

/// What the appender thread and the handles share.
pub(super) struct Shared {
    pub(super) dir: PathBuf,
    pub(super) state: Mutex<State>,
    /// Notified whenever `state` changes.
    pub(super) changed: Condvar,
    pub(super) options: LogOptions,
    /// The ack waits, in microseconds.
    pub(super) acks: Mutex<hdrhistogram::Histogram<u64>>,
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn wait<'a>(&self, mut guard: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        guard.waiting += 1;
        let mut guard = self
            .changed
            .wait(guard)
            .unwrap_or_else(PoisonError::into_inner);
        guard.waiting -= 1;
        guard
    }

    pub(super) fn stats(&self) -> LogStats {
        let state = self.lock();
        let acks = self.acks.lock().unwrap_or_else(PoisonError::into_inner);
        let counters = &state.stats;
        LogStats {
            batches: counters.batches,
            messages: counters.messages,
            bytes: counters.bytes,
            failed_syncs: counters.failed_syncs,
            ack_p50_us: acks.value_at_quantile(0.5),
            ack_p99_us: acks.value_at_quantile(0.99),
            max_batch: counters.max_batch,
        }
    }

    /// Let go of the segments wholly before `at`: rename them to spares, and
    /// delete what is beyond [`MAX_SPARES`].
    pub(super) fn free_before(&self, at: Position) {
        let mut state = self.lock();
        let mut freed = Vec::new();
        while state
            .live
            .front()
            .is_some_and(|live| live.number < at.segment && live.limit.is_some())
        {
            let live = state.live.pop_front().expect("checked");
            freed.push(live);
        }
        drop(state);
        for live in freed {
            let spare = segment::spare_path(&self.dir, live.number);
            let mut state = self.lock();
            // Small early segments are not worth keeping once segments are
            // bigger: a spare is reused only if it is of today's size.
            let big_enough =
                fs::metadata(&live.path).is_ok_and(|meta| meta.len() >= state.next_size);
            let keep = state.spares.len() < MAX_SPARES && big_enough;
            drop(state);
            let result = if keep {
                fs::rename(&live.path, &spare).map(|()| Some(spare))
            } else {
                fs::remove_file(&live.path).map(|()| None)
            };
            match result {
                Ok(Some(spare)) => {
                    state = self.lock();
                    state.spares.push(spare);
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(
                    %error,
                    segment = %live.path.display(),
                    "cannot free a segment of the mail store's log"
                ),
            }
        }
    }
}

/// The handle to the appender thread: dropping it closes the queue, lets the
/// thread answer what is in it, and waits for the thread.
pub(super) struct Appender {
    pub(super) requests: Option<mpsc::Sender<Append>>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl Appender {
    pub(super) fn spawn(shared: Arc<Shared>, fail_syncs: Vec<u64>) -> Result<Appender, StoreError> {
        let (requests, receiver) = mpsc::channel(shared.options.max_batch.max(1));
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("sokkel-store-log".into())
            .spawn(move || {
                let mut thread = Thread {
                    shared: thread_shared,
                    current: None,
                    prev_end: SEGMENT_HEADER,
                    buf: Vec::new(),
                    syncs: 0,
                    fail_syncs,
                    damaged: None,
                };
                thread.run(receiver);
            })
            .map_err(|error| StoreError::io("starting the log thread for", &shared.dir, error))?;
        Ok(Appender {
            requests: Some(requests),
            thread: Some(thread),
            shared,
        })
    }
}

impl Drop for Appender {
    fn drop(&mut self) {
        self.requests = None;
        {
            let mut state = self.shared.lock();
            state.closed = true;
        }
        self.shared.changed.notify_all();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the mail store's log thread panicked");
        }
        // A spare being made holds the shared part, and with it the lock:
        // the log is not let go of until it is done.
        let mut state = self.shared.lock();
        while state.preparing {
            state = self.shared.wait(state);
        }
    }
}

/// The segment being appended to.
struct Current {
    number: u64,
    file: File,
    /// Where the next record goes.
    offset: u64,
    /// Its preallocated size.
    size: u64,
}

struct Thread {
    shared: Arc<Shared>,
    current: Option<Current>,
    /// Where the last segment's records end, for the header of the next one.
    prev_end: u64,
    buf: Vec<u8>,
    /// Batch syncs so far, for the test hook.
    syncs: u64,
    fail_syncs: Vec<u64>,
    /// A failed batch's bytes not yet overwritten durably: (offset, len).
    damaged: Option<(u64, usize)>,
}

impl Thread {
    fn run(&mut self, mut receiver: mpsc::Receiver<Append>) {
        let max_batch = self.shared.options.max_batch.max(1);
        let mut waiting: VecDeque<Append> = VecDeque::new();
        loop {
            if waiting.is_empty() {
                match receiver.blocking_recv() {
                    Some(first) => waiting.push_back(first),
                    None => break,
                }
            }
            let mut bytes: usize = waiting.iter().map(|append| append.message.raw.len()).sum();
            while waiting.len() < max_batch && bytes < MAX_BATCH_BYTES {
                match receiver.try_recv() {
                    Ok(next) => {
                        bytes += next.message.raw.len();
                        waiting.push_back(next);
                    }
                    Err(_) => break,
                }
            }
            self.batch(&mut waiting, max_batch);
        }
        if let Err(error) = self.repair() {
            tracing::error!(%error, "the log still holds a batch that was refused; the next start may store it");
        }
        let mut state = self.shared.lock();
        state.closed = true;
        drop(state);
        self.shared.changed.notify_all();
    }

    /// Make a batch of the front of `waiting` durable and answer it; what did
    /// not fit in the current segment stays in `waiting`.
    fn batch(&mut self, waiting: &mut VecDeque<Append>, max_batch: usize) {
        let take = waiting.len().min(max_batch);
        let bytes: u64 = waiting
            .iter()
            .take(take)
            .map(|append| append.message.raw.len() as u64)
            .sum();
        if let Err(error) = (self.shared.options.admit)(bytes) {
            for append in waiting.drain(..take) {
                let _ = append.reply.send(Err(error.clone()));
            }
            return;
        }
        if let Err(error) = self.repair() {
            self.fail(waiting.drain(..take), &error);
            return;
        }
        let Some(first_id) = self.take_ids(take) else {
            let error = StoreError::unavailable(
                "the store's database has fallen too far behind its log; try again",
            );
            tracing::warn!(%error, messages = take, "refused a batch while the database catches up");
            self.fail(waiting.drain(..take), &error);
            return;
        };
        match self.write(waiting, take, first_id) {
            Ok((written, end)) => {
                let answered: Vec<Append> = waiting.drain(..written).collect();
                let unused = take - written;
                self.settle(Some(end), answered.len(), unused, first_id);
                (self.shared.options.on_synced)(end);
                self.answer(answered, first_id);
            }
            Err((written, error)) => {
                self.settle(None, 0, 0, first_id);
                let error = if error.kind() == io::ErrorKind::StorageFull {
                    StoreError::Full
                } else {
                    StoreError::io("writing the mail store's log in", &self.shared.dir, error)
                };
                // Cut the batch off the log before anyone hears it was
                // refused: a refused message must not come back at the next
                // start, whatever happens after this answer.
                let cut = self.repair();
                if let Err(cut) = &cut {
                    tracing::error!(error = %cut, "cannot cut a refused batch off the log; refusing everything until it is");
                }
                tracing::error!(%error, messages = written, "writing the log failed; the batch was refused (451) and cut off the log");
                self.fail(waiting.drain(..written), &error);
            }
        }
    }

    /// Wait while the materialiser lags too far or ids are held (unless the
    /// log is closing: what is queued is still written), then give `n` ids;
    /// `None` if the materialiser has not caught up within [`LAG_WAIT`].
    fn take_ids(&self, n: usize) -> Option<i64> {
        let max_lag = self.shared.options.max_lag_bytes;
        let deadline = Instant::now() + LAG_WAIT;
        let mut state = self.shared.lock();
        while (state.held || state.lag() > max_lag) && !state.closed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() && !state.held {
                return None;
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, left.max(Duration::from_millis(10)))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        let first = state.next_id;
        state.next_id += n as i64;
        state.in_flight = true;
        Some(first)
    }

    /// The batch is over: durable up to `end` (or failed), `unused` of its ids
    /// not used (the messages that go to the next segment get new ones).
    fn settle(&self, end: Option<Position>, messages: usize, unused: usize, first_id: i64) {
        let mut state = self.shared.lock();
        if let Some(end) = end {
            state.synced = end;
            let counters = &mut state.stats;
            counters.batches += 1;
            counters.messages += messages as u64;
            counters.max_batch = counters.max_batch.max(messages as u64);
            if unused > 0 && state.next_id == first_id + (messages + unused) as i64 {
                state.next_id -= unused as i64;
            }
        } else {
            state.stats.failed_syncs += 1;
        }
        state.in_flight = false;
        let waiting = state.waiting > 0;
        drop(state);
        if waiting {
            self.shared.changed.notify_all();
        }
    }

    fn answer(&self, answered: Vec<Append>, first_id: i64) {
        let now = Instant::now();
        let mut acks = self
            .shared
            .acks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (n, append) in answered.into_iter().enumerate() {
            let waited = now.duration_since(append.queued).as_micros();
            let _ = acks.record(u64::try_from(waited).unwrap_or(u64::MAX).max(1));
            let _ = append.reply.send(Ok(MessageId(first_id + n as i64)));
        }
    }

    fn fail(&self, failed: impl Iterator<Item = Append>, error: &StoreError) {
        for append in failed {
            let _ = append.reply.send(Err(error.clone()));
        }
    }

    /// Write the first `take` of `waiting` (those that fit in one segment) and
    /// sync them: how many were written and where they end, or how many were
    /// lost with the error.
    fn write(
        &mut self,
        waiting: &VecDeque<Append>,
        take: usize,
        first_id: i64,
    ) -> Result<(usize, Position), (usize, io::Error)> {
        let first_len = waiting
            .front()
            .map_or(0, |append| record::encoded_len(&append.message));
        let fresh = match self.room() {
            Some(room) if room >= first_len => false,
            _ => {
                self.next_segment(first_len)
                    .map_err(|error| (take, error))?;
                true
            }
        };
        let current = self.current.as_mut().expect("a segment is open");
        let key = record::Key {
            store_id: self.shared.options.store_id,
            segment: current.number,
        };
        // A batch of big messages leaves a big buffer: give it back.
        if self.buf.capacity() > BUF_KEEP {
            self.buf = Vec::with_capacity(BUF_KEEP);
        }
        self.buf.clear();
        let mut written = 0;
        for (n, append) in waiting.iter().take(take).enumerate() {
            let before = self.buf.len();
            record::encode(key, first_id + n as i64, &append.message, &mut self.buf);
            if current.offset + self.buf.len() as u64 > current.size && n > 0 {
                self.buf.truncate(before);
                break;
            }
            written += 1;
        }
        let start = current.offset;
        let began = Instant::now();
        let result = current.file.write_all_at(&self.buf, start).and_then(|()| {
            self.syncs += 1;
            if self.fail_syncs.contains(&self.syncs) {
                return Err(io::Error::other(
                    "fdatasync failed (injected by SOKKEL_TEST_FAIL_SYNC)",
                ));
            }
            current.file.sync_data()
        });
        match result {
            Ok(()) => {
                self.shared
                    .options
                    .counters
                    .log_sync()
                    .observe(began.elapsed());
                current.offset += self.buf.len() as u64;
                let mut state = self.shared.lock();
                state.stats.bytes += self.buf.len() as u64;
                drop(state);
                Ok((
                    written,
                    Position {
                        segment: current.number,
                        offset: current.offset,
                    },
                ))
            }
            Err(error) => {
                self.damaged = Some((start, self.buf.len()));
                if fresh {
                    // The new segment's header may not be on disk either:
                    // write it again with the zeros.
                    self.damaged = Some((0, self.buf.len() + SEGMENT_HEADER as usize));
                }
                Err((written, error))
            }
        }
    }

    /// Overwrite a failed batch's bytes with zeros (and rewrite the segment's
    /// header if the batch was its first) and sync: until that has worked,
    /// nothing more is written.
    fn repair(&mut self) -> Result<(), StoreError> {
        let Some((at, len)) = self.damaged else {
            return Ok(());
        };
        let current = self
            .current
            .as_ref()
            .expect("damage is in the current segment");
        let header = SegmentHeader {
            number: current.number,
            prev_end: self.prev_end,
            store_id: self.shared.options.store_id,
        };
        let result = (|| {
            let zeros = vec![0; len.min(1 << 20)];
            let mut done = 0;
            while done < len {
                let n = zeros.len().min(len - done);
                current.file.write_all_at(&zeros[..n], at + done as u64)?;
                done += n;
            }
            if at == 0 {
                current.file.write_all_at(&header.bytes(), 0)?;
            }
            current.file.sync_data()
        })();
        match result {
            Ok(()) => {
                self.damaged = None;
                Ok(())
            }
            Err(error) => Err(StoreError::io(
                "clearing a failed batch from the mail store's log in",
                &self.shared.dir,
                error,
            )),
        }
    }

    /// Room left in the current segment, if there is one.
    fn room(&self) -> Option<u64> {
        let current = self.current.as_ref()?;
        Some(current.size.saturating_sub(current.offset))
    }

    /// Leave the current segment (if any) and start the next, big enough for
    /// a record of `need` bytes: a spare renamed, or a new zeroed file.
    fn next_segment(&mut self, need: u64) -> io::Result<()> {
        let dir = self.shared.dir.clone();
        let dir = &dir;
        let mut state = self.shared.lock();
        let number = state
            .live
            .back()
            .map_or(1, |live| live.number + 1)
            .max(state.first_number);
        if let Some(current) = &self.current {
            self.prev_end = current.offset;
            if let Some(live) = state
                .live
                .iter_mut()
                .find(|live| live.number == current.number)
            {
                live.limit = Some(current.offset);
            }
        } else if let Some(last) = state.live.back_mut() {
            // After a restart the last segment ends where the scan found its
            // records end (its limit was set then).
            self.prev_end = last.limit.unwrap_or(SEGMENT_HEADER);
        }
        let base = state
            .live
            .back()
            .map_or(0, |live| live.base + live.limit.unwrap_or(SEGMENT_HEADER));
        let wanted = state.next_size.max(need + SEGMENT_HEADER);
        // A spare being made is worth waiting for: making one here would
        // take as long.
        while state.spares.is_empty() && state.preparing {
            state = self.shared.wait(state);
        }
        let spare = state.spares.pop();
        let prepare = state.spares.is_empty() && !state.preparing;
        // Segments grow from small to full size as the log is used; spares
        // are made at the size the next segment will have.
        state.next_size = (state.next_size * 2).min(self.shared.options.segment_size);
        drop(state);
        let path = segment::path_of(dir, number);
        if let Some(spare) = spare {
            fs::rename(&spare, &path)?;
        } else {
            segment::create_zeroed(dir, &path, wanted, None)?;
        }
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        let size = file.metadata()?.len().max(need + SEGMENT_HEADER);
        let header = SegmentHeader {
            number,
            prev_end: self.prev_end,
            store_id: self.shared.options.store_id,
        };
        // Written now, made durable by the first batch's sync.
        file.write_all_at(&header.bytes(), 0)?;
        let mut state = self.shared.lock();
        state.live.push_back(super::writer::Live {
            number,
            path,
            limit: None,
            base,
        });
        drop(state);
        self.current = Some(Current {
            number,
            file,
            offset: SEGMENT_HEADER,
            size,
        });
        if prepare {
            self.prepare_spare();
        }
        Ok(())
    }

    /// Make one spare segment on a thread of its own, so that the next
    /// segment change does not wait for zeros to be written.
    fn prepare_spare(&self) {
        let shared = Arc::clone(&self.shared);
        let mut state = shared.lock();
        if state.preparing || !state.spares.is_empty() {
            return;
        }
        state.preparing = true;
        let size = state.next_size;
        drop(state);
        let spawned = std::thread::Builder::new()
            .name("sokkel-store-log-prepare".into())
            .spawn(move || {
                let path = shared
                    .dir
                    .join(format!("spare-new-{}.seg", std::process::id()));
                let made = segment::create_zeroed(&shared.dir, &path, size, Some(SPARE_PACE));
                let mut state = shared.lock();
                match made {
                    Ok(()) => state.spares.push(path),
                    Err(error) => tracing::warn!(
                        %error,
                        "cannot prepare a spare segment for the mail store's log"
                    ),
                }
                state.preparing = false;
                drop(state);
                shared.changed.notify_all();
            });
        if spawned.is_err() {
            self.shared.lock().preparing = false;
        }
    }
}
