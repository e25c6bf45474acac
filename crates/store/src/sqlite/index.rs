//! The FTS5 search index: what of a message goes into it, and indexing what
//! the materialiser stored, what was stored before the index existed, and
//! what a crash left unindexed.

use std::collections::HashMap;

use rusqlite::{Connection, Transaction, TransactionBehavior, params};

use super::queries::{from_json, to_json};
use super::to_i64;
use crate::index_text::IndexText;
use crate::mime::Digest;
use crate::{MessageId, StoreError, mime, summary};

/// The most bytes of messages one indexing transaction parses (an
/// [`index_queued`] or an [`OlderMessages`] batch).
pub(super) const BACKFILL_BATCH_BYTES: usize = 16 << 20;

/// The materialiser indexes older messages ([`OlderMessages`]) this many at a
/// time: messages that arrive meanwhile wait for the batch to commit before
/// their rows are written, so it is small, and a transaction without a sync
/// costs little.
const OLDER_BATCH: usize = 32;

/// Add message `id` to the search index; the caller owns the transaction.
pub(super) fn index_message(conn: &Connection, id: i64, text: &IndexText) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO search
            (rowid, subject, sender, recipients, body, cc, bcc, reply_to, message_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        id,
        text.subject,
        text.sender,
        text.recipients,
        text.body,
        text.cc,
        text.bcc,
        text.reply_to,
        text.message_id,
    ])?;
    Ok(())
}

/// The materialiser indexes messages from the `unindexed` queue this many
/// (or [`BACKFILL_BATCH_BYTES`] of them) at a time, one transaction each:
/// big, as the index's commit costs much the same for few as for many.
pub(super) const INDEX_BATCH: usize = 2000;

/// The search text of messages the materialiser has just written, kept for
/// the index so that it does not read and parse their bytes a second time
/// (callgrind: the parse is a quarter of the materialiser's work on 4 KiB
/// messages). Bounded by [`IndexTexts::MAX_BYTES`] of text: a message that
/// finds it full, or one written before a restart, is parsed again from its
/// bytes, as every message was before.
#[derive(Debug, Default)]
pub(super) struct IndexTexts {
    texts: HashMap<i64, IndexText>,
    bytes: usize,
}

impl IndexTexts {
    /// The most text kept, all messages together: about one transaction's
    /// worth of rows ([`super::writer`] commits up to 4 MiB of messages), the
    /// usual distance between the rows and the index. With 32 MiB, the
    /// server's peak RSS after a burst of 20,000 messages of 4 KiB was 89 MB
    /// (the bar is 50 MB); behind a longer lag the rest are parsed again.
    pub(super) const MAX_BYTES: usize = 4 << 20;

    /// Keep `text` for message `id` if there is room.
    pub(super) fn keep(&mut self, id: i64, text: IndexText) {
        let size = text.len();
        if self.bytes + size <= Self::MAX_BYTES && self.texts.insert(id, text).is_none() {
            self.bytes += size;
        }
    }

    /// The text kept for `id`, no longer kept.
    pub(super) fn take(&mut self, id: i64) -> Option<IndexText> {
        let text = self.texts.remove(&id)?;
        self.bytes -= text.len();
        Some(text)
    }

    /// Keep nothing.
    pub(super) fn clear(&mut self) {
        self.texts = HashMap::new();
        self.bytes = 0;
    }
}

/// What one [`index_queued`] batch did.
#[derive(Debug, Default)]
pub(super) struct IndexedBatch {
    /// The messages indexed, in id order.
    pub(super) ids: Vec<MessageId>,
    /// Their raw bytes.
    pub(super) bytes: u64,
    /// Whether the queue is empty now: the batch took all there was.
    pub(super) emptied: bool,
}

/// Index the oldest messages of the `unindexed` queue (the materialiser
/// stores messages with [`Indexing::Deferred`]; a crash may have left some
/// from before) in one transaction, parsing each again from its bytes:
/// nothing waits for the index in memory. `then` finishes the transaction
/// (the `--tag` rules, which need the index, then the commit). The
/// materialiser's connection commits without waiting for the disk: losing
/// this in a power cut loses nothing but the work, as the ids stay queued.
///
/// [`Indexing::Deferred`]: super::queries::Indexing::Deferred
pub(super) fn index_queued<T>(
    conn: &mut Connection,
    texts: &mut IndexTexts,
    then: impl FnOnce(Transaction<'_>, &[MessageId]) -> rusqlite::Result<T>,
) -> rusqlite::Result<(IndexedBatch, T)> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut batch = IndexedBatch::default();
    {
        // length() of a blob reads its size, not its pages: the bytes are
        // read only for a message whose text is not kept in `texts`.
        let mut statement = tx.prepare_cached(
            "SELECT u.id, m.mail_from, m.rcpt_to, length(r.data)
             FROM unindexed AS u JOIN messages AS m ON m.id = u.id JOIN raw AS r ON r.id = u.id
             ORDER BY u.id LIMIT ?1",
        )?;
        let mut raw = tx.prepare_cached("SELECT data FROM raw WHERE id = ?1")?;
        let mut rows = statement.query([to_i64(INDEX_BATCH + 1)])?;
        let mut dequeue = tx.prepare_cached("DELETE FROM unindexed WHERE id = ?1")?;
        loop {
            let Some(row) = rows.next()? else {
                batch.emptied = true;
                break;
            };
            if batch.ids.len() >= INDEX_BATCH || batch.bytes >= BACKFILL_BATCH_BYTES as u64 {
                break;
            }
            let id: i64 = row.get(0)?;
            let size: i64 = row.get(3)?;
            let text = match texts.take(id) {
                Some(text) => text,
                None => {
                    let rcpt_to: Vec<String> = from_json(row, 2)?;
                    let mail_from: String = row.get(1)?;
                    raw.query_row([id], |raw| {
                        let raw = raw.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?;
                        Ok(IndexText::new(&mail_from, &rcpt_to, &mime::digest(raw)))
                    })?
                }
            };
            index_message(&tx, id, &text)?;
            dequeue.execute([id])?;
            batch.ids.push(MessageId(id));
            batch.bytes += u64::try_from(size).unwrap_or(0);
        }
    }
    if batch.emptied {
        // Whatever is left belongs to messages deleted before their turn.
        texts.clear();
    }
    let done = then(tx, &batch.ids)?;
    Ok((batch, done))
}

/// The messages stored before the search index had its present columns (a
/// store from a build before schema migration 2, or 6, which rebuilt it): the
/// writer thread indexes them newest first, a batch at a time in its own
/// transaction, whenever no delivery is waiting ([`OlderMessages::index_batch`]).
/// Opening a store does not wait for this: at 100,000 messages it takes
/// minutes in a debug build. Until it is done, search finds the older
/// messages not yet reached. Two processes with the file open share the work
/// rather than repeat it: each batch starts below where the last one, of
/// either process, ended (`store_state.unindexed_below`).
#[derive(Debug, Default)]
pub(super) struct OlderMessages {
    pending: bool,
}

impl OlderMessages {
    /// Whether there is such work, logging how much.
    pub(super) fn find(conn: &Connection) -> OlderMessages {
        let pending = || -> rusqlite::Result<i64> {
            let below = unindexed_below(conn)?;
            if below <= 1 {
                return Ok(0);
            }
            conn.query_row(
                "SELECT count(*) FROM messages WHERE id < ?1",
                [below],
                |row| row.get(0),
            )
        };
        match pending() {
            Ok(0) => OlderMessages { pending: false },
            Ok(messages) => {
                tracing::info!(
                    messages,
                    "indexing stored messages for search in the background"
                );
                OlderMessages { pending: true }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot tell whether stored messages need indexing for search");
                OlderMessages { pending: false }
            }
        }
    }

    /// Whether some messages still wait.
    pub(super) fn pending(&self) -> bool {
        self.pending
    }

    /// Index the next batch. On failure the work stops here and the next open of
    /// the store takes it up again where it ended.
    pub(super) fn index_batch(&mut self, conn: &mut Connection) {
        match index_older_batch(conn) {
            Ok(true) => {}
            Ok(false) => {
                self.pending = false;
                tracing::info!("search index complete");
            }
            Err(error) => {
                self.pending = false;
                tracing::warn!(
                    %error,
                    "indexing stored messages for search failed; it goes on when the store is next opened"
                );
            }
        }
    }
}

/// Index one batch of older messages ([`OlderMessages`]) in one transaction;
/// `false` once none are left.
/// On the materialiser's connection, which commits without waiting for the
/// disk: a batch lost in a power cut is redone at the next open, as
/// `unindexed_below` moves in the same transaction.
fn index_older_batch(conn: &mut Connection) -> Result<bool, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let below = unindexed_below(&tx)?;
    if below <= 1 {
        return Ok(false);
    }
    let mut next_below = 0;
    {
        let mut statement = tx.prepare_cached(
            "SELECT m.id, m.mail_from, m.rcpt_to, r.data
             FROM messages AS m JOIN raw AS r ON r.id = m.id
             WHERE m.id < ?1 ORDER BY m.id DESC",
        )?;
        let mut rows = statement.query([below])?;
        let (mut count, mut bytes) = (0, 0);
        while count < OLDER_BATCH && bytes < BACKFILL_BATCH_BYTES {
            let Some(row) = rows.next()? else {
                break;
            };
            let id: i64 = row.get(0)?;
            let rcpt_to: Vec<String> = from_json(row, 2)?;
            let raw = row.get_ref(3)?.as_blob().map_err(rusqlite::Error::from)?;
            let digest = mime::digest(raw);
            let text = IndexText::new(&row.get::<_, String>(1)?, &rcpt_to, &digest);
            index_message(&tx, id, &text)?;
            fill_parsed_columns(&tx, id, &digest)?;
            next_below = id;
            count += 1;
            bytes += raw.len();
        }
    }
    // No change number (changes.rs): no reader has to reload for this, and
    // with one, a server's own web page would be told to at every batch.
    tx.execute("UPDATE store_state SET unindexed_below = ?1", [next_below])?;
    tx.commit()?;
    Ok(next_below > 1)
}

/// Fill the columns schema migration 6 added from what only the raw message
/// says (`inline`, `bcc_list`, `bcc_count`) for a message stored before it,
/// whose `inline` is still NULL.
fn fill_parsed_columns(conn: &Connection, id: i64, digest: &Digest) -> rusqlite::Result<()> {
    let (bcc, bcc_count) = summary::stored_list(&digest.bcc);
    // As at delivery: the count only when the list is cut (schema migration 5).
    let bcc_count = (bcc_count > bcc.len() as u64).then_some(to_i64(bcc_count));
    conn.prepare_cached(
        "UPDATE messages SET inline = ?2, bcc_list = ?3, bcc_count = ?4
         WHERE id = ?1 AND inline IS NULL",
    )?
    .execute(params![id, digest.inline, to_json(&bcc)?, bcc_count])?;
    Ok(())
}

pub(super) fn unindexed_below(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT unindexed_below FROM store_state")?
        .query_row([], |row| row.get(0))
}
