//! What the backends' group-commit writers share: a delivery prepared for
//! its commit (parsed, with its delivery tags), the request a writer queues,
//! and the writer's counters ([`WriterStats`]).

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::oneshot;

use crate::mime::{self, Digest};
use crate::store::WriterStats;
use crate::tags::{TagName, Tagging};
use crate::{MessageId, NewMessage, StoreError};

/// Messages bigger than this are parsed on tokio's blocking pool instead of
/// the async worker that delivers them, so one huge message cannot stall
/// other sessions.
const INLINE_PARSE_LIMIT: usize = 256 << 10;

/// A batch stops growing once it holds this many bytes of messages, so one
/// commit does not have to write (and hold in memory) an unbounded amount.
pub(crate) const MAX_BATCH_BYTES: usize = 64 << 20;

/// One delivery waiting for its commit.
pub(crate) struct WriteRequest {
    pub(crate) message: NewMessage,
    pub(crate) digest: Digest,
    /// From its headers and addresses.
    pub(crate) tags: Vec<TagName>,
    pub(crate) reply: oneshot::Sender<Result<MessageId, StoreError>>,
}

impl WriteRequest {
    /// Parse `message` for its summary (on tokio's blocking pool if it is
    /// large, so this must run inside a tokio runtime) and give it the tags
    /// `tags_of` finds; the request and the receiver of its answer.
    pub(crate) async fn prepare(
        message: NewMessage,
        tags_of: impl FnOnce(&NewMessage, &Digest) -> Vec<TagName> + Send + 'static,
    ) -> Result<
        (
            WriteRequest,
            oneshot::Receiver<Result<MessageId, StoreError>>,
        ),
        StoreError,
    > {
        let large = message.raw.len() > INLINE_PARSE_LIMIT;
        let prepare = move || {
            let digest = mime::digest(&message.raw);
            let tags = tags_of(&message, &digest);
            (message, digest, tags)
        };
        let (message, digest, tags) = if large {
            tokio::task::spawn_blocking(prepare)
                .await
                .map_err(|_| StoreError::Closed)?
        } else {
            prepare()
        };
        let (reply, answer) = oneshot::channel();
        let request = WriteRequest {
            message,
            digest,
            tags,
            reply,
        };
        Ok((request, answer))
    }
}

/// The digests of `messages` and the tags each gets at delivery, for an
/// import, which bypasses the writer.
pub(crate) fn prepare_import(
    messages: &[NewMessage],
    tagging: &Tagging,
) -> (Vec<Digest>, Vec<Vec<TagName>>) {
    let digests: Vec<Digest> = messages
        .iter()
        .map(|message| mime::digest(&message.raw))
        .collect();
    let tags = messages
        .iter()
        .zip(&digests)
        .map(|(message, digest)| tagging.at_delivery(message, digest))
        .collect();
    (digests, tags)
}

/// What a writer has done: read as [`WriterStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    transactions: AtomicU64,
    messages: AtomicU64,
    bytes: AtomicU64,
    failed_transactions: AtomicU64,
}

impl Counters {
    /// A transaction of `messages` messages, `bytes` in all, committed.
    pub(crate) fn committed(&self, messages: usize, bytes: usize) {
        self.transactions.fetch_add(1, Ordering::Relaxed);
        self.messages.fetch_add(messages as u64, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// A transaction failed and was rolled back.
    pub(crate) fn failed(&self) {
        self.failed_transactions.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self) -> WriterStats {
        WriterStats {
            transactions: self.transactions.load(Ordering::Relaxed),
            messages: self.messages.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            failed_transactions: self.failed_transactions.load(Ordering::Relaxed),
            ..WriterStats::default()
        }
    }
}
