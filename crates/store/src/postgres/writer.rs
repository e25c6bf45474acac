//! Group commit on PostgreSQL: the deliveries that arrive while a commit is
//! under way go into the next one, one transaction and one round trip of
//! commits for the batch (`synchronous_commit` on: the 250 means committed).
//!
//! ```text
//! deliver ─┐                      ┌─▶ Ok(id)  (every waiter, after COMMIT returned)
//! deliver ─┼─▶ channel ─▶ batch ──┤
//! deliver ─┘                      └─▶ Err(e)  (every waiter, after ROLLBACK or a lost
//!                                              connection: never Ok for what may not
//!                                              be stored)
//! ```
//!
//! The writer is a task on the backend's runtime with one pooled connection
//! per batch. Each message goes in with its search index entry (the
//! tsvector, made before the transaction from the digest the session
//! parsed), and the `--tag` rules run in the same transaction: no second
//! version of each row for the index, and no reader sees a message
//! unindexed or not yet tagged by the rules.
//!
//! A COMMIT whose answer is lost (the connection dropped after
//! sending it) leaves the batch stored or not: its waiters get
//! [`StoreError::Unavailable`], the SMTP client retries, and the worst case
//! is a duplicate, never a lost message that got a 250.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::queries::{Rows, insert_messages};
use super::tags::{apply_rules, tag_event, tag_message};
use super::{Notice, Shared, ids_of, next_seq, publish, room_for};
use crate::delivery::{Counters, MAX_BATCH_BYTES, WriteRequest};
use crate::repeated::{REPEAT_INTERVAL, RepeatedLog};
use crate::store::{StoreEvent, WriterStats};
use crate::summary::summary_of;
use crate::{MessageId, StoreError};

/// The handle to the writer task, which ends when this drops (and with the
/// backend's runtime).
pub(crate) struct Writer {
    requests: mpsc::Sender<WriteRequest>,
    counters: Arc<Counters>,
}

impl Writer {
    /// Start the writer task on the backend's runtime.
    pub(super) fn spawn(shared: Arc<Shared>) -> Writer {
        let max_batch = shared.options.max_batch.max(1);
        // Senders wait (asynchronously) when this many are queued: backpressure
        // instead of an unbounded pile of message bytes in memory.
        let (requests, receiver) = mpsc::channel(max_batch);
        let counters = Arc::new(Counters::default());
        let task = Task {
            shared: Arc::clone(&shared),
            counters: Arc::clone(&counters),
            failures: RepeatedLog::new(REPEAT_INTERVAL),
            max_batch,
        };
        shared.handle.spawn(task.run(receiver));
        Writer { requests, counters }
    }

    /// Queue `request` for the next group commit and wait until it is
    /// committed; `answer` is the receiver [`WriteRequest::prepare`] gave
    /// with it.
    pub(super) async fn submit(
        &self,
        request: WriteRequest,
        answer: oneshot::Receiver<Result<MessageId, StoreError>>,
    ) -> Result<MessageId, StoreError> {
        self.requests
            .send(request)
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    pub(super) fn stats(&self) -> WriterStats {
        self.counters.stats()
    }
}

/// What the writer task owns.
struct Task {
    shared: Arc<Shared>,
    counters: Arc<Counters>,
    /// A database that stays down fails every batch the same way; one line
    /// per interval says so, with the count.
    failures: RepeatedLog,
    max_batch: usize,
}

impl Task {
    async fn run(self, mut requests: mpsc::Receiver<WriteRequest>) {
        let mut batch = Vec::with_capacity(self.max_batch);
        while let Some(first) = requests.recv().await {
            let mut bytes = first.message.raw.len();
            batch.push(first);
            while batch.len() < self.max_batch && bytes < MAX_BATCH_BYTES {
                match requests.try_recv() {
                    Ok(next) => {
                        bytes += next.message.raw.len();
                        batch.push(next);
                    }
                    Err(_) => break,
                }
            }
            self.group_commit(&mut batch, bytes).await;
        }
    }

    /// Write `batch` in one transaction and answer every waiter in it.
    async fn group_commit(&self, batch: &mut Vec<WriteRequest>, bytes: usize) {
        let messages = batch.len();
        let (ids, tagged) = match insert_batch(&self.shared, batch).await {
            Ok(committed) => committed,
            Err(error) => {
                self.counters.failed();
                let repeat = self.failures.occurrence(&error.to_string());
                if repeat.should_log() {
                    tracing::warn!(%error, messages, bytes, "group commit failed; batch not stored{repeat}");
                }
                for request in batch.drain(..) {
                    let _ = request.reply.send(Err(error.clone()));
                }
                return;
            }
        };
        self.counters.committed(messages, bytes);
        tracing::debug!(messages, bytes, "group commit");
        let listening = self.shared.events.receiver_count() > 0;
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
            if listening {
                let summary = summary_of(id, &message, digest, &tags);
                self.shared.announce(StoreEvent::New(Arc::new(summary)));
            }
        }
        // The rules' tags after the messages, as the SQLite backend tells them.
        if let Some(event) = tagged {
            self.shared.announce(event);
        }
    }
}

/// Insert every message of `batch`, indexed, with its delivery tags and the
/// rules' in one transaction, all or nothing, and tell the other nodes once
/// it commits; gives the ids and, if the rules tagged some, the event that
/// says so. On error the transaction rolls back as it drops (or went with
/// the lost connection).
async fn insert_batch(
    shared: &Shared,
    batch: &[WriteRequest],
) -> Result<(Vec<MessageId>, Option<StoreEvent>), StoreError> {
    let rows = Rows::new((batch.iter()).map(|request| (&request.message, &request.digest)))?;
    let mut client = shared.client().await?;
    // From BEGIN to COMMIT: the connection is the pool's already.
    let began = std::time::Instant::now();
    let tx = client.transaction().await?;
    let seq = next_seq(&tx).await?;
    let arriving = batch.iter().map(|request| request.message.raw.len()).sum();
    room_for(&tx, shared, arriving).await?;
    let ids = insert_messages(&tx, &rows, seq).await?;
    // Tags after, in order, so that a folder's UIDs follow the ids.
    for (request, id) in batch.iter().zip(&ids) {
        if !request.tags.is_empty() {
            tag_message(&tx, *id, &request.tags).await?;
        }
    }
    // The new rows carry this change's modseq already: nothing to touch.
    let tagged = apply_rules(&tx, &shared.options.tagging.rules, &ids).await?;
    publish(&tx, shared, Notice::New { ids: ids_of(&ids) }).await?;
    let mut event = None;
    if !tagged.is_empty() {
        let notice = Notice::Tags {
            ids: ids_of(&tagged),
        };
        publish(&tx, shared, notice).await?;
        let listening = shared.events.receiver_count() > 0;
        event = Some(tag_event(&tx, &tagged, listening).await?);
    }
    tx.commit().await?;
    shared.counters.commit().observe(began.elapsed());
    Ok((ids, event))
}
