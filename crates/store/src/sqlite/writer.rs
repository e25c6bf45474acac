//! The writer thread and its group commit.
//!
//! Every delivery goes through one thread that owns one connection. It blocks for
//! the first request, takes whatever else is already queued (up to a batch cap),
//! writes them all in one `BEGIN IMMEDIATE ... COMMIT`, and then answers every
//! waiter. With `synchronous=FULL` the commit is one fsync, so durability costs one
//! sync per batch rather than one per message, and the more sessions deliver at
//! once, the bigger the batches get.
//!
//! ```text
//! deliver ─┐                      ┌─▶ Ok(id)  (every waiter, after COMMIT returned)
//! deliver ─┼─▶ channel ─▶ batch ──┤
//! deliver ─┘                      └─▶ Err(e)  (every waiter, after ROLLBACK)
//! ```

use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use rusqlite::{Connection, Transaction, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::changes::{Announcer, commit_change};
use super::index::{OlderMessages, index_pending};
use super::queries::{Indexing, insert_message, pending_seq, summary_of, touch};
use super::tags::{apply_rules, tag_event, tag_message};
use crate::delivery::{Counters, MAX_BATCH_BYTES, WriteRequest};
use crate::index_text::IndexText;
use crate::repeated::{REPEAT_INTERVAL, RepeatedLog};
use crate::store::{StoreEvent, WriterStats};
use crate::tags::TagRule;
use crate::{MessageId, StoreError};

/// Stored messages wait for the search index until the writer has nothing else to
/// do, or until this many (or [`MAX_INDEX_BYTES`] of text) are waiting: under a
/// steady stream of mail search lags by at most one such batch.
const MAX_INDEX_BATCH: usize = 512;
const MAX_INDEX_BYTES: usize = 16 << 20;

/// Work other than a delivery that needs the write lock and must not starve
/// behind deliveries (pruning): it waits its turn in the same queue and runs
/// between two group commits on the writer's connection.
pub(super) type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// What the writer thread is asked to do, in order of arrival.
enum Request {
    Write(Box<WriteRequest>),
    Job(Job),
}

/// The handle to the writer thread. Dropping it lets the thread finish the batch
/// it is writing and waits for it to close its connection.
#[derive(Debug)]
pub(crate) struct Writer {
    requests: Option<mpsc::Sender<Request>>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
}

impl Writer {
    /// Start the writer thread on `conn`, which must already have the schema.
    pub(crate) fn spawn(
        path: &Path,
        conn: Connection,
        max_batch: usize,
        rules: Vec<TagRule>,
        announcer: Announcer,
    ) -> Result<Writer, StoreError> {
        let max_batch = max_batch.max(1);
        // Senders wait (asynchronously) when this many are queued: backpressure
        // instead of an unbounded pile of message bytes in memory.
        let (requests, receiver) = mpsc::channel(max_batch);
        let counters = Arc::new(Counters::default());
        let thread_counters = Arc::clone(&counters);
        let thread = std::thread::Builder::new()
            .name("sokkel-store-writer".into())
            .spawn(move || {
                let failures = RepeatedLog::new(REPEAT_INTERVAL);
                let announce = Announce {
                    counters: &thread_counters,
                    announcer: &announcer,
                    failures: &failures,
                    rules: &rules,
                };
                run(conn, receiver, max_batch, &announce);
            })
            .map_err(|error| StoreError::io("starting the writer thread for", path, error))?;
        Ok(Writer {
            requests: Some(requests),
            thread: Some(thread),
            counters,
        })
    }

    /// Queue `message` for the next group commit and wait until it is durable.
    /// `answer` is the receiver [`WriteRequest::prepare`] gave with `request`.
    pub(crate) async fn submit(
        &self,
        request: WriteRequest,
        answer: oneshot::Receiver<Result<MessageId, StoreError>>,
    ) -> Result<MessageId, StoreError> {
        let requests = self.requests.as_ref().ok_or(StoreError::Closed)?;
        requests
            .send(Request::Write(Box::new(request)))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Run `job` on the writer thread after what is queued before it, and wait
    /// for its answer. Blocks: call it from a thread that may block, never from
    /// async code.
    pub(crate) fn run_job<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Connection) -> T + Send + 'static,
    ) -> Result<T, StoreError> {
        let requests = self.requests.as_ref().ok_or(StoreError::Closed)?;
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        let job: Job = Box::new(move |conn| {
            let _ = reply.send(job(conn));
        });
        requests
            .blocking_send(Request::Job(job))
            .map_err(|_| StoreError::Closed)?;
        answer.recv().map_err(|_| StoreError::Closed)
    }

    pub(crate) fn stats(&self) -> WriterStats {
        self.counters.stats()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop once it has written what is
        // still queued (deliveries whose waiters went away), so nothing is lost.
        self.requests = None;
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the mail store writer thread panicked");
        }
    }
}

/// Where the writer tells what it committed.
struct Announce<'a> {
    counters: &'a Counters,
    announcer: &'a Announcer,
    /// A store that stays full fails every batch the same way; one line per
    /// interval says so, with the count.
    failures: &'a RepeatedLog,
    /// `--tag` rules, run on messages once they are indexed.
    rules: &'a [TagRule],
}

fn run(
    mut conn: Connection,
    mut requests: mpsc::Receiver<Request>,
    max_batch: usize,
    announce: &Announce<'_>,
) {
    let mut batch = Vec::with_capacity(max_batch);
    let mut unindexed = Unindexed::default();
    let mut older = OlderMessages::find(&conn);
    loop {
        // Index when idle: only when no delivery is waiting, so the tokenizer
        // never delays a 250. New messages first, then older ones a batch at
        // a time.
        let next = if unindexed.pending.is_empty() && !older.pending() {
            requests.blocking_recv()
        } else {
            match requests.try_recv() {
                Ok(request) => Some(request),
                Err(mpsc::error::TryRecvError::Empty) => {
                    if unindexed.pending.is_empty() {
                        older.index_batch(&mut conn);
                    } else {
                        unindexed.index(&mut conn, announce);
                    }
                    continue;
                }
                Err(mpsc::error::TryRecvError::Disconnected) => None,
            }
        };
        let first = match next {
            None => break,
            Some(Request::Job(job)) => {
                job(&mut conn);
                continue;
            }
            Some(Request::Write(first)) => *first,
        };
        let mut bytes = first.message.raw.len();
        batch.push(first);
        // A job that arrives while the batch fills runs right after its commit.
        let mut job = None;
        while batch.len() < max_batch && bytes < MAX_BATCH_BYTES {
            match requests.try_recv() {
                Ok(Request::Write(next)) => {
                    bytes += next.message.raw.len();
                    batch.push(*next);
                }
                Ok(Request::Job(next)) => {
                    job = Some(next);
                    break;
                }
                Err(_) => break,
            }
        }
        group_commit(&mut conn, &mut batch, bytes, announce, &mut unindexed);
        if let Some(job) = job {
            job(&mut conn);
        }
        if unindexed.full() {
            unindexed.index(&mut conn, announce);
        }
    }
    unindexed.index(&mut conn, announce);
}

/// Messages committed but not yet in the search index.
#[derive(Default)]
struct Unindexed {
    pending: Vec<(i64, IndexText)>,
    bytes: usize,
}

impl Unindexed {
    fn push(&mut self, id: MessageId, text: IndexText) {
        self.bytes += text.len();
        self.pending.push((id.0, text));
    }

    fn full(&self) -> bool {
        self.pending.len() >= MAX_INDEX_BATCH || self.bytes >= MAX_INDEX_BYTES
    }

    /// Index everything pending and run the `--tag` rules on it (they need the
    /// index) in the same transaction, so that no reader sees a new message
    /// indexed but not yet tagged by the rules (`--relay-matching tag:...`
    /// waits for the index). On failure the ids stay in the `unindexed` table
    /// and the next open of the store indexes them.
    fn index(&mut self, conn: &mut rusqlite::Connection, announce: &Announce<'_>) {
        if self.pending.is_empty() {
            return;
        }
        let ids: Vec<MessageId> = self.pending.iter().map(|(id, _)| MessageId(*id)).collect();
        match index_pending(conn, &self.pending, |tx| tag_by_rules(tx, &ids, announce)) {
            Ok(Some((event, seq))) => announce.announcer.announce(seq, [event]),
            Ok(None) => {}
            Err(error) => {
                let repeat = announce.failures.occurrence(&error.to_string());
                if repeat.should_log() {
                    tracing::warn!(
                        %error,
                        messages = self.pending.len(),
                        "indexing messages for search (and tagging them by the --tag rules) failed; they are indexed when the store is next opened{repeat}"
                    );
                }
            }
        }
        self.pending.clear();
        self.bytes = 0;
    }
}

/// Write `batch` in one transaction and answer every waiter in it.
fn group_commit(
    conn: &mut Connection,
    batch: &mut Vec<WriteRequest>,
    bytes: usize,
    announce: &Announce<'_>,
    unindexed: &mut Unindexed,
) {
    let Announce {
        counters,
        announcer,
        failures,
        ..
    } = announce;
    let messages = batch.len();
    match insert_batch(conn, batch) {
        Ok((ids, seq)) => {
            counters.committed(messages, bytes);
            tracing::debug!(messages, bytes, "group commit");
            let notify = announcer.listening();
            let mut events = Vec::new();
            for (request, id) in batch.drain(..).zip(ids) {
                let WriteRequest {
                    message,
                    digest,
                    tags,
                    reply,
                } = request;
                // The waiter may be gone (its client hung up); the message is
                // stored all the same.
                let _ = reply.send(Ok(id));
                let text = IndexText::new(
                    &message.envelope.mail_from,
                    &message.envelope.rcpt_to,
                    &digest,
                );
                unindexed.push(id, text);
                if notify {
                    let summary = Arc::new(summary_of(id, &message, digest, &tags));
                    events.push(StoreEvent::New(summary));
                }
            }
            announcer.announce(seq, events);
        }
        Err(error) => {
            counters.failed();
            let error = StoreError::from(error);
            let repeat = failures.occurrence(&error.to_string());
            if repeat.should_log() {
                tracing::warn!(%error, messages, bytes, "group commit failed; batch rolled back{repeat}");
            }
            for request in batch.drain(..) {
                let _ = request.reply.send(Err(error.clone()));
            }
        }
    }
}

/// Insert every message of `batch`, all or nothing. On error the transaction is
/// rolled back when it drops (SQLite may already have rolled it back itself, as it
/// does on `SQLITE_FULL`), and the connection is ready for the next batch.
fn insert_batch(
    conn: &mut Connection,
    batch: &[WriteRequest],
) -> rusqlite::Result<(Vec<MessageId>, Option<i64>)> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let ids = batch
        .iter()
        .map(|request| {
            let id = insert_message(&tx, &request.message, &request.digest, Indexing::Deferred)?;
            tag_message(&tx, id, &request.tags)?;
            Ok(id)
        })
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let seq = commit_change(tx, !ids.is_empty())?;
    Ok((ids, seq))
}

/// Run the `--tag` rules on the messages `ids` just indexed in `tx`, and
/// commit it; the event to announce for what they tagged, if there are rules.
fn tag_by_rules(
    tx: Transaction<'_>,
    ids: &[MessageId],
    announce: &Announce<'_>,
) -> rusqlite::Result<Option<(StoreEvent, Option<i64>)>> {
    if announce.rules.is_empty() {
        tx.commit()?;
        return Ok(None);
    }
    let tagged = apply_rules(&tx, announce.rules, ids)?;
    let event = tag_event(&tx, &tagged, announce.announcer.listening())?;
    touch(&tx, &tagged, pending_seq(&tx)?)?;
    let seq = commit_change(tx, !tagged.is_empty())?;
    Ok(Some((event, seq)))
}
