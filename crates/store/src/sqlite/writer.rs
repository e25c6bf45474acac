//! The materialiser: the thread that writes the rows of logged messages.
//!
//! A delivery is acknowledged once it is in the log (`super::log`); its rows
//! (summary, recipients, tags, bytes) are written here afterwards, many
//! messages to a transaction, on one connection that commits without waiting
//! for the disk (`synchronous=NORMAL`): the log is what makes a message
//! durable. New records wait in the log while deliveries keep coming: until
//! the log has had no new batch for [`LULL`], or the oldest has waited
//! [`MAX_DELAY`], or they come to half the log's lag limit (the thread does
//! not read them at every batch the log syncs, and a burst of deliveries is
//! not slowed by the rows' writes to the same disk), unless somebody needs
//! their rows now: a reader at the barrier, a job, the close; then they are
//! read and written in transactions of up to [`COMMIT_MESSAGES`] or
//! [`COMMIT_BYTES`]. The position in the log up to which rows exist is kept in
//! `store_state`, in the same transaction as the rows, so a crash at any point
//! replays exactly what is missing. Only a commit that passes into a later
//! segment waits for the disk (`synchronous=FULL`), after which the log may
//! recycle the segments before it.
//!
//! ```text
//! appender ──on_synced──▶ poke ─▶ (a 50 ms lull, 10 s, half the lag limit, or a reader/job asks) ─▶ read ≤ 2,000 / 4 MiB ─▶ one transaction ─▶ materialised(pos)
//!                                  ▲                             │ (FULL into a new segment: durable(pos))
//!          readers wait for ───────┴── Progress ◀────────────────┘
//!          jobs (prune, import, APPEND) run between transactions
//!          indexing: from the `unindexed` table, when caught up (or lagging > MAX_INDEX_LAG)
//! ```
//!
//! Readers wait on [`Shared`]'s progress before they read (the barrier: a
//! read that starts after a 250 sees that message); the thread itself never
//! waits on it.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use super::changes::{Announcer, commit_change};
use super::connection::cap_pages;
use super::index::{IndexTexts, OlderMessages, index_queued};
use super::log::{Log, Logged, Position};
use super::queries::{Indexing, insert_message, pending_seq, summary_of, touch};
use super::tags::{apply_rules, tag_event, tag_message};
use crate::index_text::IndexText;
use crate::mime::{self, Digest};
use crate::repeated::{REPEAT_INTERVAL, RepeatedLog};
use crate::store::{StoreEvent, WriterStats};
use crate::tags::{TagRule, Tagging};
use crate::{MessageId, StoreError};

/// A transaction writes the rows of this many messages, or of
/// [`COMMIT_BYTES`] of them, whichever comes first: the cost of a commit
/// (pages of several b-trees, WAL frames) is spread over many messages.
/// The bytes are held in memory until the commit: with 8 MiB, peak RSS
/// under `smtp-source -d` reached 48 MB at 100,000 messages of 4 KiB
/// (the issue's bound is 50 MB), so 4 MiB (about 1,000 such messages).
const COMMIT_MESSAGES: usize = 2000;
const COMMIT_BYTES: usize = 4 << 20;

/// Records durable in the log get their rows once the log has had no new
/// batch for this long: a burst of deliveries is over. During one, the rows'
/// writes (SQLite's WAL, its checkpoints) would share the disk with the
/// log's `fdatasync`, which every 250 waits for: measured with 20 sessions of
/// `smtp-source -d`, 0.59× smtp-sink's rate with rows written throughout,
/// 0.76× with them written after (docs/benchmarks.md, "Log-first ingest").
/// Nobody waits for them meanwhile: a reader asks for them at the barrier.
const LULL: Duration = Duration::from_millis(50);

/// Under a stream of deliveries with no lull, records wait at most this long
/// (rows are then written beside deliveries, as when the lag grows to
/// `1 / LAG_SHARE` of the log's limit).
const MAX_DELAY: Duration = Duration::from_secs(10);

/// The rows are written at once when the records waiting for them come to
/// this share of [`super::log::LogOptions::max_lag_bytes`] (half: 128 MiB by
/// default, where deliveries would wait at 256 MiB).
const LAG_SHARE: u64 = 2;

/// The most messages that may have rows but no index entries before the
/// materialiser indexes a batch ahead of the next transaction: searches lag
/// by at most this under sustained load.
const MAX_INDEX_LAG: u64 = 20_000;

/// The niceness the thread gives itself: under load it yields to the network
/// threads and the appender, whose work is what clients wait for.
const NICE: i32 = 10;

/// A failed transaction is tried again after this, doubling up to
/// [`RETRY_MAX`]: the log still holds the messages, so nothing acknowledged
/// is lost meanwhile.
const RETRY_FIRST: Duration = Duration::from_millis(10);
const RETRY_MAX: Duration = Duration::from_secs(1);

/// How often the thread tries to catch up when the store closes before it
/// gives up (what is left stays in the log for the next open).
const FINAL_ATTEMPTS: usize = 3;

/// How long the thread goes on indexing when the store closes: a server
/// stopped after a burst leaves the index whole (other processes' searches
/// have no one to wait for after it), but does not take long to stop; what
/// is left is indexed at the next open.
const FINAL_INDEXING: Duration = Duration::from_secs(2);

/// A transaction of one record that fails this many times in a row with an
/// error that is not the disk's or a lock's is taken to fail for that record
/// (the message has something the rows cannot take): the record is stored
/// without its summary instead.
const POISON_TRIES: u32 = 3;

/// How long a reader waits for the materialiser before it answers
/// [`StoreError::Unavailable`].
pub(super) const BARRIER_TIMEOUT: Duration = Duration::from_secs(30);

/// Work that needs the materialiser's connection (pruning, imports, IMAP
/// APPEND): it waits its turn and runs between two transactions.
pub(super) type Job = Box<dyn FnOnce(&mut Worker) + Send>;

/// What a reader waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Need {
    /// The rows of every message acknowledged before the read started.
    Rows,
    /// Those rows and their search index entries (and `--tag` rules' tags).
    Index,
}

/// The error of a reader that waited [`BARRIER_TIMEOUT`] in vain.
pub(super) fn behind() -> StoreError {
    StoreError::unavailable("the store is behind: the messages acknowledged last have no rows yet")
}

/// What the thread is asked to do, and whether it should stop.
#[derive(Default)]
struct Inbox {
    jobs: VecDeque<Job>,
    /// The log has new records (coalesced: one flag for many batches).
    poked: bool,
    /// The thread waits and would act on `poked`: only then does a poke wake
    /// it (not at every batch the log syncs while records wait their turn).
    listening: bool,
    /// A reader waits for rows or index: commit now.
    wanted: bool,
    stopping: bool,
}

/// How far the rows and the index have got.
#[derive(Debug, Default)]
struct Reached {
    /// Every record before it has rows (or there is none between the
    /// committed position and it).
    rows: Position,
    /// Every record before it has rows and index entries.
    index: Position,
    /// Where the log's durable records end, as last heard.
    synced: Position,
    /// When that was heard (the end of the log's last batch).
    synced_at: Option<Instant>,
    /// Readers waiting for rows: the thread commits what it holds at once.
    rows_waiters: usize,
    /// Readers waiting for the index: the thread indexes before it writes
    /// more rows while there are any.
    index_waiters: usize,
    /// The thread has ended.
    closed: bool,
}

impl Reached {
    fn waiters(&mut self, need: Need) -> &mut usize {
        match need {
            Need::Rows => &mut self.rows_waiters,
            Need::Index => &mut self.index_waiters,
        }
    }
}

/// What the materialiser and the store's handles share.
#[derive(Default)]
pub(super) struct Shared {
    inbox: Mutex<Inbox>,
    wake: Condvar,
    reached: Mutex<Reached>,
    moved: Condvar,
    counters: Counters,
    /// The thread ended by a panic: nothing more is materialised.
    broken: AtomicBool,
}

/// What [`WriterStats`] and [`crate::RuntimeStats`] say, and the bytes that
/// wait to be materialised (for the size limit).
#[derive(Default)]
struct Counters {
    accepted_messages: AtomicU64,
    accepted_bytes: AtomicU64,
    failed: AtomicU64,
    transactions: AtomicU64,
    messages: AtomicU64,
    bytes: AtomicU64,
    /// Messages materialised that this process appended (not those it found
    /// in the log at open): against the accepted ones, the lag.
    live_messages: AtomicU64,
    live_bytes: AtomicU64,
    max_lag_messages: AtomicU64,
    max_lag_bytes: AtomicU64,
    max_index_lag_messages: AtomicU64,
    max_index_lag_bytes: AtomicU64,
}

impl Shared {
    /// Shared state for a materialiser whose rows end at `position`.
    pub(super) fn new(position: Position) -> Shared {
        let shared = Shared::default();
        shared.lock_reached().rows = position;
        // What the log held at open (a crash's leftovers) is written first.
        shared.lock_inbox().poked = true;
        shared
    }

    /// The log has made the records before `at` durable (the appender's
    /// `on_synced`). Cheap: a flag and a notify.
    pub(super) fn synced(&self, at: Position) {
        let mut reached = self.lock_reached();
        reached.synced = reached.synced.max(at);
        reached.synced_at = Some(Instant::now());
        drop(reached);
        self.poke();
    }

    /// When the log last made a batch durable.
    fn last_synced(&self) -> Option<Instant> {
        self.lock_reached().synced_at
    }

    /// Wait (at most `timeout`) until every record the log has made durable
    /// has rows: for the size limit's admission, which then counts pages
    /// rather than estimates.
    pub(super) fn wait_for_rows(&self, timeout: Duration) -> Result<(), StoreError> {
        let synced = self.lock_reached().synced;
        self.wait_for(synced, Need::Rows, timeout)
    }

    /// Whether the thread ended by a panic: the log must refuse deliveries
    /// (nobody would write their rows) and reads fail at once.
    pub(super) fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Relaxed)
    }

    /// The thread is going down with a panic: say so to deliveries (see
    /// [`Shared::is_broken`]), readers and jobs, which would otherwise wait
    /// for it.
    fn break_down(&self) {
        self.broken.store(true, Ordering::Relaxed);
        let jobs = {
            let mut inbox = self.lock_inbox();
            inbox.stopping = true;
            std::mem::take(&mut inbox.jobs)
        };
        // Their callers get `Closed` as their answers' senders drop.
        drop(jobs);
        self.close();
        tracing::error!(
            "the mail store's materialiser stopped after a panic: deliveries are refused (451) and reads fail until sokkel is restarted; the log keeps every message acknowledged"
        );
    }

    /// Tell the thread the log has new records; wake it if it waits for them.
    fn poke(&self) {
        let mut inbox = self.lock_inbox();
        inbox.poked = true;
        if inbox.listening {
            inbox.listening = false;
            drop(inbox);
            self.wake.notify_one();
        }
    }

    /// A delivery of `bytes` was acknowledged.
    pub(super) fn accepted(&self, bytes: usize) {
        let counters = &self.counters;
        counters.accepted_messages.fetch_add(1, Ordering::Relaxed);
        counters
            .accepted_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// A delivery was refused or failed.
    pub(super) fn failed(&self) {
        self.counters.failed.fetch_add(1, Ordering::Relaxed);
    }

    /// About how many bytes of the database the messages acknowledged but
    /// not yet materialised will take, erring high: their raw bytes twice
    /// (the bytes, the summary and the index entries) and 1 KiB each (rows
    /// and b-tree pages).
    pub(super) fn pending_room(&self) -> u64 {
        let c = &self.counters;
        let behind = |accepted: &AtomicU64, done: &AtomicU64| {
            let accepted = accepted.load(Ordering::Relaxed);
            accepted.saturating_sub(done.load(Ordering::Relaxed))
        };
        let messages = behind(&c.accepted_messages, &c.live_messages);
        let bytes = behind(&c.accepted_bytes, &c.live_bytes);
        bytes.saturating_mul(2).saturating_add(messages << 10)
    }

    pub(super) fn stats(&self) -> WriterStats {
        let c = &self.counters;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        WriterStats {
            transactions: load(&c.transactions),
            messages: load(&c.messages),
            bytes: load(&c.bytes),
            failed_transactions: load(&c.failed),
            max_lag_messages: load(&c.max_lag_messages),
            max_lag_bytes: load(&c.max_lag_bytes),
            max_index_lag_messages: load(&c.max_index_lag_messages),
            max_index_lag_bytes: load(&c.max_index_lag_bytes),
        }
    }

    /// Deliveries acknowledged through this process: messages and bytes.
    pub(super) fn accepted_totals(&self) -> (u64, u64) {
        let c = &self.counters;
        (
            c.accepted_messages.load(Ordering::Relaxed),
            c.accepted_bytes.load(Ordering::Relaxed),
        )
    }

    /// Wait until the rows (and with [`Need::Index`] the index) reach
    /// `target`, at most `timeout`.
    pub(super) fn wait_for(
        &self,
        target: Position,
        need: Need,
        timeout: Duration,
    ) -> Result<(), StoreError> {
        let there = |reached: &Reached| match need {
            Need::Rows => reached.rows >= target,
            Need::Index => reached.index >= target,
        };
        let mut reached = self.lock_reached();
        if there(&reached) {
            return Ok(());
        }
        // Ask for it (see Reached::rows_waiters); the lock is let go before
        // the poke, which takes the other one.
        *reached.waiters(need) += 1;
        drop(reached);
        self.lock_inbox().wanted = true;
        self.wake.notify_one();
        reached = self.lock_reached();
        let deadline = Instant::now() + timeout;
        let result = loop {
            if there(&reached) {
                break Ok(());
            }
            if reached.closed {
                break Err(StoreError::Closed);
            }
            let now = Instant::now();
            if now >= deadline {
                break Err(behind());
            }
            reached = self
                .moved
                .wait_timeout(reached, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        };
        *reached.waiters(need) -= 1;
        result
    }

    fn index_wanted(&self) -> bool {
        self.lock_reached().index_waiters > 0
    }

    /// Whether a reader waits for rows or index: commit what is held now.
    fn wanted(&self) -> bool {
        let reached = self.lock_reached();
        reached.rows_waiters > 0 || reached.index_waiters > 0
    }

    /// Rows reach `rows`, the index `index`; wake the readers.
    fn publish(&self, rows: Position, index: Position) {
        let mut reached = self.lock_reached();
        reached.rows = reached.rows.max(rows);
        reached.index = reached.index.max(index);
        drop(reached);
        self.moved.notify_all();
    }

    fn close(&self) {
        self.lock_reached().closed = true;
        self.moved.notify_all();
    }

    /// Wait until there is something to do, at most `wait` (`None`: no
    /// limit), and take it. New records in the log count only if
    /// `log_pokes` (the thread is not already gathering them).
    fn take(&self, wait: Option<Duration>, log_pokes: bool) -> Inbox {
        let deadline = wait.map(|wait| Instant::now() + wait);
        let mut inbox = self.lock_inbox();
        let ready = |inbox: &Inbox| {
            !inbox.jobs.is_empty() || inbox.wanted || inbox.stopping || (log_pokes && inbox.poked)
        };
        while !ready(&inbox) {
            inbox.listening = log_pokes;
            inbox = match deadline {
                None => self
                    .wake
                    .wait(inbox)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    self.wake
                        .wait_timeout(inbox, deadline - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
        let stopping = inbox.stopping;
        let taken = std::mem::take(&mut *inbox);
        inbox.stopping = stopping;
        taken
    }

    /// The jobs queued now, without waiting.
    fn take_jobs(&self) -> VecDeque<Job> {
        std::mem::take(&mut self.lock_inbox().jobs)
    }

    fn lock_inbox(&self) -> MutexGuard<'_, Inbox> {
        // A panic while the lock was held cannot leave it half-changed.
        self.inbox.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_reached(&self) -> MutexGuard<'_, Reached> {
        self.reached.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Records a maximum.
fn raise(max: &AtomicU64, value: u64) {
    max.fetch_max(value, Ordering::Relaxed);
}

/// The handle to the materialiser thread. Dropping it lets the thread write
/// the rows of everything in the log, commit them durably, and end.
pub(super) struct Materialiser {
    shared: Arc<Shared>,
    log: Arc<Log>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Materialiser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Materialiser").finish_non_exhaustive()
    }
}

/// What [`Materialiser::spawn`] needs besides the connection and the log.
pub(super) struct Setup {
    /// Where the rows end in the log (`store_state`'s position).
    pub(super) position: Position,
    pub(super) announcer: Announcer,
    pub(super) tagging: Tagging,
}

impl Materialiser {
    /// Start the thread on `conn` (with the schema in place), writing the
    /// rows of what `log` holds from `setup.position` on.
    pub(super) fn spawn(
        path: &Path,
        conn: Connection,
        log: Arc<Log>,
        shared: Arc<Shared>,
        setup: Setup,
    ) -> Result<Materialiser, StoreError> {
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let worker = Worker {
            recovered_to: log.synced(),
            conn,
            reserve: super::reserve::Reserve::of(path),
            db: path.to_path_buf(),
            log: Arc::clone(&log),
            shared: Arc::clone(&shared),
            announcer: setup.announcer,
            tagging: setup.tagging,
            failures: RepeatedLog::new(REPEAT_INTERVAL),
            position: setup.position,
            pending: VecDeque::new(),
            pending_bytes: 0,
            dirty_since: None,
            read_to: setup.position,
            durable: setup.position,
            unindexed: VecDeque::new(),
            indexed_to: Position::START,
            index_lag: (0, 0),
            index_retry: None,
            index_texts: IndexTexts::default(),
            older: OlderMessages::default(),
            paused: paused_for_tests(),
            limit: COMMIT_MESSAGES,
            bisect_to: Position::START,
            single_failures: 0,
        };
        let thread = std::thread::Builder::new()
            .name("sokkel-store-materialiser".into())
            .spawn(move || worker.run())
            .map_err(|error| StoreError::io("starting the materialiser for", path, error))?;
        Ok(Materialiser {
            shared,
            log,
            thread: Some(thread),
        })
    }

    pub(super) fn log(&self) -> &Log {
        &self.log
    }

    /// Wait until every message acknowledged before this call has rows
    /// (and, with [`Need::Index`], index entries).
    pub(super) fn wait_for(&self, need: Need) -> Result<(), StoreError> {
        self.shared
            .wait_for(self.log.synced(), need, BARRIER_TIMEOUT)
    }

    /// Run `job` on the thread between two transactions and wait for its
    /// answer. Blocks: call it from a thread that may block.
    pub(super) fn run_job<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Worker) -> T + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        let job: Job = Box::new(move |worker| {
            let _ = reply.send(job(worker));
        });
        {
            let mut inbox = self.shared.lock_inbox();
            if inbox.stopping {
                return Err(StoreError::Closed);
            }
            inbox.jobs.push_back(job);
        }
        self.shared.wake.notify_one();
        answer.recv().map_err(|_| StoreError::Closed)
    }

    pub(super) fn shared(&self) -> &Shared {
        &self.shared
    }
}

impl Drop for Materialiser {
    fn drop(&mut self) {
        self.shared.lock_inbox().stopping = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the mail store's materialiser thread panicked");
        }
        self.shared.close();
        log_closing(&self.shared, &self.log);
    }
}

/// One line with what the log and the materialiser did, when the store
/// closes (the end of `mail serve`): what benchmarks read.
fn log_closing(shared: &Shared, log: &Log) {
    let stats = shared.stats();
    let log = log.stats();
    // A command-line reader that took no mail has nothing to report.
    if log.messages == 0 {
        tracing::debug!(materialised = stats.messages, "mail store closed");
        return;
    }
    tracing::info!(
        materialised = stats.messages,
        transactions = stats.transactions,
        failed = stats.failed_transactions,
        max_lag_messages = stats.max_lag_messages,
        max_lag_bytes = stats.max_lag_bytes,
        max_index_lag_messages = stats.max_index_lag_messages,
        max_index_lag_bytes = stats.max_index_lag_bytes,
        log_batches = log.batches,
        log_messages = log.messages,
        log_bytes = log.bytes,
        log_failed_syncs = log.failed_syncs,
        log_max_batch = log.max_batch,
        ack_p50_us = log.ack_p50_us,
        ack_p99_us = log.ack_p99_us,
        "mail store closed"
    );
}

/// Messages a transaction materialised that are not indexed yet.
#[derive(Debug)]
struct Unindexed {
    /// The highest id among them.
    last_id: MessageId,
    /// The position the transaction reached: once they are indexed, so is
    /// everything before it.
    at: Position,
}

/// The ids a direct insert ([`Worker::insert_directly`]) gives its
/// messages: taken from the log's id hold, so that they stay above every id
/// the log gave and below every one it will give.
#[derive(Debug)]
pub(super) struct NewIds {
    next: i64,
}

impl NewIds {
    /// The id for the next message inserted.
    pub(super) fn take(&mut self) -> MessageId {
        let id = MessageId(self.next);
        self.next += 1;
        id
    }
}

/// The thread's state: its connection and how far it got.
pub(super) struct Worker {
    conn: Connection,
    /// The disk kept for deletes: given up if rows of acknowledged messages
    /// would otherwise not fit (they must be stored; deletes then make room).
    reserve: super::reserve::Reserve,
    db: std::path::PathBuf,
    log: Arc<Log>,
    shared: Arc<Shared>,
    announcer: Announcer,
    tagging: Tagging,
    /// A store that stays broken fails every transaction the same way; one
    /// line per interval says so, with the count.
    failures: RepeatedLog,
    /// Where the committed rows end in the log (`store_state`'s position).
    position: Position,
    /// Records read from the log, waiting for their transaction.
    pending: VecDeque<Logged>,
    /// Their raw bytes.
    pending_bytes: usize,
    /// Since when the log has had records without rows: they are read and
    /// committed when due (see [`Worker::due`]), or at once if somebody
    /// needs them.
    dirty_since: Option<Instant>,
    /// Where the records read end (`position` when none wait).
    read_to: Position,
    /// Where the rows durably committed end (the last commit with FULL).
    durable: Position,
    /// Where the records the log held at open end: those were acknowledged
    /// by an earlier process, so they do not count towards this one's lag.
    recovered_to: Position,
    /// Transactions whose messages wait for the index, oldest first.
    unindexed: VecDeque<Unindexed>,
    /// Where the index is complete up to, while `unindexed` is not empty.
    indexed_to: Position,
    /// Messages and bytes waiting for the index (about: deletes shrink it
    /// unseen until the queue empties).
    index_lag: (u64, u64),
    /// After an indexing failure, when to try again.
    index_retry: Option<Instant>,
    /// The search text of messages written and not yet indexed.
    index_texts: IndexTexts,
    older: OlderMessages,
    /// Debug builds: write no rows (`SOKKEL_TEST_MATERIALISE=off`), so that
    /// a test can leave messages in the log alone and check recovery.
    paused: bool,
    /// After a failed transaction: the most records the next ones take (it
    /// halves at each failure, to find a record that makes it fail), until
    /// the rows pass `bisect_to`.
    limit: usize,
    bisect_to: Position,
    /// How often a transaction of one record failed in a row.
    single_failures: u32,
}

/// Whether `SOKKEL_TEST_MATERIALISE=off` asks (debug builds only) for a
/// materialiser that writes nothing: deliveries are acknowledged and stay in
/// the log, as a crash right after their 250 leaves them.
fn paused_for_tests() -> bool {
    cfg!(debug_assertions)
        && std::env::var("SOKKEL_TEST_MATERIALISE").is_ok_and(|value| value == "off")
}

impl Worker {
    /// The connection, for jobs.
    pub(super) fn conn(&mut self) -> &mut Connection {
        &mut self.conn
    }

    fn run(mut self) {
        let _guard = PanicGuard(Arc::clone(&self.shared));
        lower_priority();
        self.find_unindexed();
        let mut retry: Option<(Instant, Duration)> = None;
        loop {
            let now = Instant::now();
            let wait = match (retry, self.dirty_since) {
                (Some((at, _)), _) => Some(at.saturating_duration_since(now)),
                (None, Some(since)) => Some(self.until_due(since, now)),
                (None, None) if self.background_pending() => Some(Duration::ZERO),
                (None, None) => None,
            };
            let inbox = self.shared.take(wait, self.dirty_since.is_none());
            for job in inbox.jobs {
                self.run_job(job);
            }
            if inbox.stopping {
                break;
            }
            if inbox.poked && !self.paused {
                self.dirty_since.get_or_insert(now);
            }
            if retry.is_some_and(|(at, _)| Instant::now() < at) {
                continue;
            }
            match self.step() {
                Ok(()) => retry = None,
                Err(error) => {
                    let delay = retry.map_or(RETRY_FIRST, |(_, delay)| (delay * 2).min(RETRY_MAX));
                    self.failed(&error);
                    retry = Some((Instant::now() + delay, delay));
                }
            }
        }
        self.finish();
    }

    /// What the `unindexed` table holds at open (left by a crash, or by a
    /// store closed while indexing lagged): all of it before the position.
    fn find_unindexed(&mut self) {
        let found = self
            .conn
            .query_row(
                "SELECT count(*), max(u.id), coalesce(sum(m.size), 0)
                 FROM unindexed AS u JOIN messages AS m ON m.id = u.id",
                [],
                |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, Option<i64>>(1)?,
                        row.get::<_, i64>(2)?,
                    ))
                },
            )
            .optional();
        match found {
            Ok(Some((count, Some(last), bytes))) if count > 0 => {
                self.unindexed.push_back(Unindexed {
                    last_id: MessageId(last),
                    at: self.position,
                });
                self.index_lag = (count as u64, bytes.max(0) as u64);
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "cannot tell which stored messages wait for the search index");
            }
        }
        self.older = OlderMessages::find(&self.conn);
        self.publish();
    }

    /// Tell the readers how far the rows and the index are.
    fn publish_rows(&mut self, rows: Position) {
        let index = if self.unindexed.is_empty() {
            rows
        } else {
            self.indexed_to
        };
        self.shared.publish(rows, index);
    }

    fn publish(&mut self) {
        self.publish_rows(self.position);
    }

    /// If the records gathered are due, write the rows of what the log held
    /// when this began (running the jobs that arrive between transactions);
    /// index when nothing waits for rows.
    fn step(&mut self) -> Result<(), StoreError> {
        if self.paused {
            return Ok(());
        }
        // Each batch either shrinks the queue or, failing, sets a time to
        // try again: this ends.
        while self.index_due() {
            self.index_batch();
        }
        if self.due() {
            let target = self.log.synced();
            loop {
                self.fill()?;
                if self.pending.is_empty() {
                    break;
                }
                self.commit()?;
                for job in self.shared.take_jobs() {
                    self.run_job(job);
                }
                while self.index_due() {
                    self.index_batch();
                }
                if self.position >= target && !self.shared.wanted() {
                    break;
                }
            }
            // Records read past the target wait for the next round.
            self.dirty_since = (!self.pending.is_empty()).then(Instant::now);
        }
        if self.dirty_since.is_none() {
            self.background_step();
        }
        Ok(())
    }

    /// Write the rows of everything the log holds now, at once (a job that
    /// inserts, the close).
    fn flush(&mut self) -> Result<(), StoreError> {
        if self.paused {
            return Ok(());
        }
        loop {
            self.fill()?;
            if self.pending.is_empty() {
                return Ok(());
            }
            self.commit()?;
        }
    }

    /// Read records from the log into `pending`, up to a transaction's worth.
    /// With nothing pending and nothing new, the rows have caught up with
    /// what was durable before the read: readers waiting for that go on.
    fn fill(&mut self) -> Result<(), StoreError> {
        while self.pending.len() < COMMIT_MESSAGES && self.pending_bytes < COMMIT_BYTES {
            let synced = self.log.synced();
            let records = self
                .log
                .read(self.read_to, COMMIT_BYTES - self.pending_bytes)?;
            let Some(end) = records.last().map(|record| record.end) else {
                if self.pending.is_empty() {
                    self.publish_rows(synced.max(self.position));
                }
                return Ok(());
            };
            self.read_to = end;
            self.pending_bytes += records.iter().map(|r| r.message.raw.len()).sum::<usize>();
            self.pending.extend(records);
        }
        Ok(())
    }

    /// Whether the records the log gathered should be committed now: the
    /// deliveries paused ([`LULL`]), they have waited long enough
    /// ([`MAX_DELAY`]), there are many of them ([`LAG_SHARE`]), or somebody
    /// needs them.
    fn due(&self) -> bool {
        let now = Instant::now();
        self.dirty_since
            .is_some_and(|since| self.until_due(since, now).is_zero())
            || self.shared.wanted()
    }

    /// How long records waiting since `since` may go on waiting: until the
    /// next lull or [`MAX_DELAY`], whichever comes first; at most [`LULL`],
    /// so that the lag is looked at that often. Zero when they are due.
    fn until_due(&self, since: Instant, now: Instant) -> Duration {
        if self.log.lag_past(LAG_SHARE) {
            return Duration::ZERO;
        }
        let lull = self.shared.last_synced().unwrap_or(since) + LULL;
        lull.min(since + MAX_DELAY).saturating_duration_since(now)
    }

    /// One transaction with the rows of the oldest pending records (at most
    /// [`COMMIT_MESSAGES`]).
    fn commit(&mut self) -> Result<(), StoreError> {
        let count = self.pending.len().min(self.limit);
        self.pending.make_contiguous();
        let records = &self.pending.as_slices().0[..count];
        let Some(end) = records.last().map(|record| record.end) else {
            return Ok(());
        };
        self.note_lag(records);
        // Into a later segment: this commit waits for the disk, so that the
        // log can recycle the segments the rows are now durably out of.
        let durably = end.segment > self.durable.segment;
        let listening = self.announcer.listening();
        let whole = self.single_failures < POISON_TRIES;
        let began = Instant::now();
        let mut written = match self.write_rows(count, end, durably, listening, whole) {
            Ok(written) => {
                self.log.counters().commit().observe(began.elapsed());
                written
            }
            Err(error) => {
                self.shared.counters.failed.fetch_add(1, Ordering::Relaxed);
                if matches!(error, StoreError::Full) && self.reserve.release() {
                    // The log admits only what the free disk can take, but
                    // another program may have taken it since.
                    super::connection::warn_reserve_released(&self.db);
                    return Err(error);
                }
                self.bisect(count, end, &error);
                return Err(error);
            }
        };
        if !whole {
            tracing::error!(
                id = %self.pending[0].id,
                "a logged message's rows could not be written; it is stored without its summary, tags and search index"
            );
        }
        self.single_failures = 0;
        if end >= self.bisect_to {
            self.limit = COMMIT_MESSAGES;
        }
        let records: Vec<Logged> = self.pending.drain(..count).collect();
        self.pending_bytes -= records.iter().map(|r| r.message.raw.len()).sum::<usize>();
        for row in &mut written.rows {
            if let Some(text) = row.index_text.take() {
                self.index_texts.keep(records[row.record].id.0, text);
            }
        }
        self.count(&records, &written);
        self.position = end;
        self.log.materialised(end);
        if durably {
            self.durable = end;
            self.log.durable(end);
        }
        if let Some(last) = written.rows.last() {
            self.unindexed.push_back(Unindexed {
                last_id: records[last.record].id,
                at: end,
            });
            let c = &self.shared.counters;
            raise(&c.max_index_lag_messages, self.index_lag.0);
            raise(&c.max_index_lag_bytes, self.index_lag.1);
        }
        // Announced before the readers go on: a reader that found the
        // message and subscribes after does not hear of it as new.
        self.announce(&records, written);
        self.publish();
        Ok(())
    }

    /// After a transaction of `count` records ending at `end` failed with
    /// `error`: try half as many next time, down to one; a single record
    /// that keeps failing with an error of its own (not the disk's, not a
    /// lock's) is then stored without its summary.
    fn bisect(&mut self, count: usize, end: Position, error: &StoreError) {
        self.bisect_to = self.bisect_to.max(end);
        if count > 1 {
            self.limit = count / 2;
        } else if !matches!(error, StoreError::Busy) && !error.may_be_disk_full() {
            self.single_failures += 1;
        }
    }

    /// Run `job`; one that panics is abandoned (its caller gets
    /// [`StoreError::Closed`]) and the thread goes on, its connection set
    /// back as it runs.
    fn run_job(&mut self, job: Job) {
        if catch_unwind(AssertUnwindSafe(|| job(self))).is_err() {
            tracing::error!("a task on the mail store's materialiser panicked; it was abandoned");
            let reset = self
                .conn
                .pragma_update(None, "synchronous", "NORMAL")
                .and_then(|()| cap_pages(&self.conn, None));
            if let Err(error) = reset {
                tracing::warn!(%error, "cannot set the materialiser's connection back");
            }
        }
    }

    /// The lag before `records` are written: messages acknowledged through
    /// this process whose rows are not written yet.
    fn note_lag(&self, records: &[Logged]) {
        let c = &self.shared.counters;
        let (accepted, accepted_bytes) = self.shared.accepted_totals();
        let live = records.iter().filter(|r| r.end > self.recovered_to);
        let (count, bytes) = live.fold((0, 0), |(n, b), r| (n + 1, b + r.message.raw.len()));
        // Acknowledged ones may not be counted as accepted yet (the count
        // follows the answer): these records are behind either way.
        let behind = |accepted: u64, done: &AtomicU64, here: u64| {
            accepted
                .saturating_sub(done.load(Ordering::Relaxed))
                .max(here)
        };
        raise(
            &c.max_lag_messages,
            behind(accepted, &c.live_messages, count),
        );
        raise(
            &c.max_lag_bytes,
            behind(accepted_bytes, &c.live_bytes, bytes as u64),
        );
    }

    /// Count what a transaction wrote.
    fn count(&mut self, records: &[Logged], written: &Written) {
        let c = &self.shared.counters;
        c.transactions.fetch_add(1, Ordering::Relaxed);
        for row in &written.rows {
            let bytes = records[row.record].message.raw.len() as u64;
            c.messages.fetch_add(1, Ordering::Relaxed);
            c.bytes.fetch_add(bytes, Ordering::Relaxed);
            self.index_lag.0 += 1;
            self.index_lag.1 += bytes;
        }
        let live = records.iter().filter(|r| r.end > self.recovered_to);
        for record in live {
            c.live_messages.fetch_add(1, Ordering::Relaxed);
            c.live_bytes
                .fetch_add(record.message.raw.len() as u64, Ordering::Relaxed);
        }
    }

    /// Insert the rows of the first `count` pending records (skipping any
    /// whose id has rows: replay is idempotent) and move `store_state`'s
    /// position to `end`, in one transaction, `durably` or not.
    fn write_rows(
        &mut self,
        count: usize,
        end: Position,
        durably: bool,
        listening: bool,
        whole: bool,
    ) -> Result<Written, StoreError> {
        if durably {
            self.conn.pragma_update(None, "synchronous", "FULL")?;
        }
        let records = &self.pending.as_slices().0[..count];
        let parse = Parse { listening, whole };
        let result = insert_records(&mut self.conn, &self.tagging, records, end, parse);
        if durably {
            self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        }
        Ok(result?)
    }

    /// After the commit: record the change as this process's own and
    /// announce the new messages.
    fn announce(&self, records: &[Logged], written: Written) {
        let events = written.rows.into_iter().filter_map(|row| {
            let record = &records[row.record];
            let summary = summary_of(record.id, &record.message, row.digest?, &row.tags);
            Some(StoreEvent::New(Arc::new(summary)))
        });
        self.announcer
            .announce(written.seq, events.collect::<Vec<_>>());
    }

    /// Whether a batch of the index should go before the next rows.
    fn index_due(&self) -> bool {
        !self.unindexed.is_empty()
            && self.index_retry.is_none_or(|at| Instant::now() >= at)
            && (self.index_lag.0 >= MAX_INDEX_LAG || self.shared.index_wanted())
    }

    /// Whether there is indexing to do when the rows are caught up.
    fn background_pending(&self) -> bool {
        if self.paused {
            return false;
        }
        let index =
            !self.unindexed.is_empty() && self.index_retry.is_none_or(|at| Instant::now() >= at);
        index || self.older.pending()
    }

    /// One batch of indexing: new messages first, then older ones.
    fn background_step(&mut self) {
        if !self.unindexed.is_empty() {
            if self.index_retry.is_none_or(|at| Instant::now() >= at) {
                self.index_batch();
            }
        } else if self.older.pending() {
            self.older.index_batch(&mut self.conn);
        }
    }

    /// Index the oldest batch of the `unindexed` queue and run the `--tag`
    /// rules on it, in one transaction (so that no reader sees a message
    /// indexed but not yet tagged by the rules: `--relay-matching tag:...`
    /// waits for the index).
    fn index_batch(&mut self) {
        let (rules, announcer) = (&self.tagging.rules, &self.announcer);
        let result = index_queued(&mut self.conn, &mut self.index_texts, |tx, ids| {
            tag_by_rules(tx, ids, rules, announcer)
        });
        match result {
            Ok((batch, tagged)) => {
                self.index_retry = None;
                if let Some((event, seq)) = tagged {
                    self.announcer.announce(seq, [event]);
                }
                let last = batch.ids.last().copied();
                while let Some(front) = self.unindexed.front() {
                    if !batch.emptied && last.is_none_or(|last| front.last_id > last) {
                        break;
                    }
                    self.indexed_to = front.at;
                    self.unindexed.pop_front();
                }
                self.index_lag = if batch.emptied || self.unindexed.is_empty() {
                    (0, 0)
                } else {
                    (
                        self.index_lag.0.saturating_sub(batch.ids.len() as u64),
                        self.index_lag.1.saturating_sub(batch.bytes),
                    )
                };
                self.publish();
            }
            Err(error) => {
                let error = StoreError::from(error);
                let repeat = self.failures.occurrence(&error.to_string());
                if repeat.should_log() {
                    tracing::warn!(%error, "indexing messages for search (and tagging them by the --tag rules) failed; trying again{repeat}");
                }
                self.index_retry = Some(Instant::now() + RETRY_MAX);
            }
        }
    }

    /// Log a failed transaction (once per interval when it repeats).
    fn failed(&self, error: &StoreError) {
        let repeat = self.failures.occurrence(&error.to_string());
        if repeat.should_log() {
            tracing::warn!(
                %error,
                "writing the rows of logged messages failed; they stay in the log and are written when it works again{repeat}"
            );
        }
    }

    /// At close: the rows of everything in the log, made durable by a
    /// checkpoint so that the log can let its segments go; then some
    /// indexing.
    fn finish(&mut self) {
        for attempt in 1..=FINAL_ATTEMPTS {
            match self.flush() {
                Ok(()) => break,
                Err(error) => {
                    self.failed(&error);
                    if attempt < FINAL_ATTEMPTS {
                        std::thread::sleep(RETRY_FIRST * 10);
                    }
                }
            }
        }
        if let Err(error) = self.make_durable() {
            tracing::warn!(%error, "the mail store's last rows were not committed durably; the log keeps their messages");
        }
        let deadline = Instant::now() + FINAL_INDEXING;
        while !self.paused
            && !self.unindexed.is_empty()
            && self.index_retry.is_none()
            && Instant::now() < deadline
        {
            self.index_batch();
        }
    }

    /// Make every row written so far durable and tell the log: a
    /// checkpoint that copies the whole WAL into the database syncs the WAL
    /// before and the database after (`synchronous=NORMAL` does that much).
    /// A commit with nothing to write would sync nothing, so this is not
    /// one. When readers keep part of the WAL from being copied, the log is
    /// not told; the next owner's first commit into a new segment does it.
    fn make_durable(&mut self) -> Result<(), StoreError> {
        if self.durable >= self.position {
            return Ok(());
        }
        let (busy, frames, copied): (i64, i64, i64) =
            self.conn
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })?;
        if busy == 0 && frames >= 0 && copied == frames {
            self.durable = self.position;
            self.log.durable(self.position);
        }
        Ok(())
    }

    /// Insert messages that do not come through the log (imports, IMAP
    /// APPEND): with the rows of every logged message written first and the
    /// log giving no ids meanwhile, `work` gets ids above every id given so
    /// far, in one transaction it commits, held to the store's size limit
    /// (`max_size`) and committed durably, as its caller returns at once.
    pub(super) fn insert_directly<T>(
        &mut self,
        max_size: Option<u64>,
        work: impl FnOnce(&mut Connection, &mut NewIds) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // Most of the lag first, so that the hold, which stops deliveries,
        // is short.
        self.flush()?;
        let log = Arc::clone(&self.log);
        let mut hold = log.hold_ids();
        self.flush()?;
        let mut ids = NewIds {
            next: hold.next_id(),
        };
        cap_pages(&self.conn, max_size)?;
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        let result = work(&mut self.conn, &mut ids);
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        cap_pages(&self.conn, None)?;
        let value = result?;
        hold.advance_to(ids.next);
        Ok(value)
    }
}

/// What one transaction of records wrote.
struct Written {
    rows: Vec<Row>,
    /// Its change number.
    seq: Option<i64>,
}

/// A record that got rows, with the tags delivery gave it.
struct Row {
    /// Its index among the transaction's records.
    record: usize,
    tags: Vec<crate::tags::TagName>,
    /// Its summary's makings, kept for the announcement if anybody listens.
    digest: Option<Digest>,
    /// Its search text, for the index (none if it was not parsed).
    index_text: Option<IndexText>,
}

/// How [`insert_records`] treats the messages.
#[derive(Debug, Clone, Copy)]
struct Parse {
    /// Keep their digests for the announcement.
    listening: bool,
    /// Parse them for their summaries and tags; else store the bytes and
    /// envelope only, as for bytes that are no message.
    whole: bool,
}

/// Insert the rows of `records` in one transaction that moves the position
/// to `end`.
fn insert_records(
    conn: &mut Connection,
    tagging: &Tagging,
    records: &[Logged],
    end: Position,
    parse: Parse,
) -> rusqlite::Result<Written> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut rows = Vec::with_capacity(records.len());
    for (index, record) in records.iter().enumerate() {
        poisoned_for_tests(record.id, parse.whole)?;
        let exists = tx
            .prepare_cached("SELECT 1 FROM messages WHERE id = ?1")?
            .query_row([record.id.0], |_| Ok(()))
            .optional()?
            .is_some();
        if exists {
            continue;
        }
        let (digest, tags, index_text) = if parse.whole {
            let digest = mime::digest(&record.message.raw);
            // Tagging reads headers again; a panic there costs the tags only.
            let tags = catch_unwind(AssertUnwindSafe(|| {
                tagging.at_delivery(&record.message, &digest)
            }))
            .unwrap_or_default();
            let envelope = &record.message.envelope;
            let text = IndexText::new(&envelope.mail_from, &envelope.rcpt_to, &digest);
            (digest, tags, Some(text))
        } else {
            (Digest::default(), Vec::new(), None)
        };
        insert_message(&tx, record.id, &record.message, &digest, Indexing::Deferred)?;
        tag_message(&tx, record.id, &tags)?;
        rows.push(Row {
            record: index,
            tags,
            digest: parse.listening.then_some(digest),
            index_text,
        });
    }
    set_position(&tx, end)?;
    let seq = commit_change(tx, !rows.is_empty())?;
    Ok(Written { rows, seq })
}

fn set_position(conn: &Connection, at: Position) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE store_state SET log_segment = ?1, log_offset = ?2")?
        .execute(params![to_sql(at.segment), to_sql(at.offset)])?;
    Ok(())
}

fn to_sql(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Where the rows end in the log, as `store_state` says.
pub(super) fn stored_position(conn: &Connection) -> rusqlite::Result<Position> {
    conn.prepare_cached("SELECT log_segment, log_offset FROM store_state")?
        .query_row([], |row| {
            Ok(Position {
                segment: row.get::<_, i64>(0)?.max(0) as u64,
                offset: row.get::<_, i64>(1)?.max(0) as u64,
            })
        })
}

/// Run the `--tag` rules on the messages `ids` just indexed in `tx`, and
/// commit it; the event to announce for what they tagged, if there are rules.
fn tag_by_rules(
    tx: Transaction<'_>,
    ids: &[MessageId],
    rules: &[TagRule],
    announcer: &Announcer,
) -> rusqlite::Result<Option<(StoreEvent, Option<i64>)>> {
    if rules.is_empty() {
        tx.commit()?;
        return Ok(None);
    }
    let tagged = apply_rules(&tx, rules, ids)?;
    let event = tag_event(&tx, &tagged, announcer.listening())?;
    touch(&tx, &tagged, pending_seq(&tx)?)?;
    let seq = commit_change(tx, !tagged.is_empty())?;
    Ok(Some((event, seq)))
}

/// Debug builds: `SOKKEL_TEST_POISON=ID` makes the rows of message ID fail
/// to insert whole (a record the rows cannot take), `SOKKEL_TEST_POISON=ID:panic`
/// makes the thread panic at it.
fn poisoned_for_tests(id: MessageId, whole: bool) -> rusqlite::Result<()> {
    if !cfg!(debug_assertions) {
        return Ok(());
    }
    let Ok(poison) = std::env::var("SOKKEL_TEST_POISON") else {
        return Ok(());
    };
    let (poisoned, panics) = match poison.split_once(':') {
        Some((number, how)) => (number.parse() == Ok(id.0), how == "panic"),
        None => (poison.parse() == Ok(id.0), false),
    };
    if poisoned && panics {
        panic!("SOKKEL_TEST_POISON: message {id}");
    }
    if poisoned && whole {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "SOKKEL_TEST_POISON: message {id}"
        )));
    }
    Ok(())
}

/// Marks the materialiser broken if its thread unwinds (see
/// [`Shared::break_down`]).
struct PanicGuard(Arc<Shared>);

impl Drop for PanicGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.break_down();
        }
    }
}

/// Give the calling thread a lower priority ([`NICE`]). Best effort.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    if let Err(error) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), NICE) {
        tracing::debug!(%error, "cannot lower the materialiser's priority");
    }
}
