//! The FTS5 search index: what of a message goes into it, and indexing what
//! was stored before it existed or before a crash let the writer index it.

use rusqlite::{Connection, TransactionBehavior, params};

use super::changes::ChangeLog;
use super::queries::from_json;
use super::to_i64;
use crate::mime::Digest;
use crate::{Address, StoreError, mime};

/// Messages stored before the search index existed are indexed this many at a
/// time (or [`BACKFILL_BATCH_BYTES`]), one transaction each, so other processes
/// get the write lock in between.
pub(super) const BACKFILL_BATCH: usize = 256;
pub(super) const BACKFILL_BATCH_BYTES: usize = 16 << 20;

/// What the search index gets of one message, column by column.
#[derive(Debug, Clone, Default)]
pub(super) struct IndexText {
    subject: String,
    sender: String,
    recipients: String,
    body: String,
}

impl IndexText {
    pub(super) fn new(mail_from: &str, rcpt_to: &[String], digest: &Digest) -> IndexText {
        let mut sender = String::new();
        push_addresses(&mut sender, digest.from.iter());
        sender.push_str(mail_from);
        let mut recipients = rcpt_to.join(" ");
        recipients.push(' ');
        push_addresses(&mut recipients, digest.to.iter().chain(&digest.cc));
        IndexText {
            subject: digest.subject.clone(),
            sender,
            recipients,
            body: digest.body_text.clone(),
        }
    }

    /// The bytes this holds, to bound how much waits for indexing.
    pub(super) fn len(&self) -> usize {
        self.subject.len() + self.sender.len() + self.recipients.len() + self.body.len()
    }
}

/// Add message `id` to the search index; the caller owns the transaction.
pub(super) fn index_message(conn: &Connection, id: i64, text: &IndexText) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO search (rowid, subject, sender, recipients, body)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        id,
        text.subject,
        text.sender,
        text.recipients,
        text.body
    ])?;
    Ok(())
}

/// Index messages the writer stored with [`Indexing::Deferred`], in one
/// transaction. A message deleted meanwhile (its id gone from `unindexed`) is
/// skipped, and so is one another process already indexed. The transaction is
/// committed without waiting for the disk (`synchronous=NORMAL`): losing it in a
/// power cut loses nothing but this work, which the next open redoes from
/// `unindexed`, and the next message commit syncs it anyway.
pub(super) fn index_pending(
    conn: &mut Connection,
    pending: &[(i64, IndexText)],
) -> rusqlite::Result<()> {
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    let result = (|| {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut dequeue = tx.prepare_cached("DELETE FROM unindexed WHERE id = ?1")?;
            for (id, text) in pending {
                if dequeue.execute([id])? == 1 {
                    index_message(&tx, *id, text)?;
                }
            }
        }
        tx.commit()
    })();
    conn.pragma_update(None, "synchronous", "FULL")?;
    result
}

/// Index what a writer left in `unindexed` when its process ended before it got to
/// it (killed, or the machine went down), in batches.
pub(super) fn index_unindexed(conn: &mut Connection) -> Result<(), StoreError> {
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut done = 0;
        {
            let mut statement = tx.prepare_cached(
                "SELECT u.id, m.mail_from, m.rcpt_to, r.data
                 FROM unindexed AS u JOIN messages AS m ON m.id = u.id JOIN raw AS r ON r.id = u.id
                 ORDER BY u.id LIMIT ?1",
            )?;
            let mut rows = statement.query([to_i64(BACKFILL_BATCH)])?;
            let mut dequeue = tx.prepare_cached("DELETE FROM unindexed WHERE id = ?1")?;
            while let Some(row) = rows.next()? {
                let id: i64 = row.get(0)?;
                let rcpt_to: Vec<String> = from_json(row, 2)?;
                let raw = row.get_ref(3)?.as_blob().map_err(rusqlite::Error::from)?;
                let text = IndexText::new(&row.get::<_, String>(1)?, &rcpt_to, &mime::digest(raw));
                index_message(&tx, id, &text)?;
                dequeue.execute([id])?;
                done += 1;
            }
        }
        tx.commit()?;
        if done < BACKFILL_BATCH {
            return Ok(());
        }
    }
}

pub(super) fn push_addresses<'a>(text: &mut String, addresses: impl Iterator<Item = &'a Address>) {
    for address in addresses {
        text.push_str(&address.name);
        text.push(' ');
        text.push_str(&address.address);
        text.push(' ');
    }
}

/// Index the messages stored before the search index existed (a store from a
/// build without it), newest first, in batches of their own transactions. Two
/// processes opening the file at once share the work rather than repeat it.
pub(super) fn index_older_messages(conn: &mut Connection) -> Result<(), StoreError> {
    let mut below = unindexed_below(conn)?;
    if below <= 1 {
        return Ok(());
    }
    let pending: i64 = conn.query_row(
        "SELECT count(*) FROM messages WHERE id < ?1",
        [below],
        |row| row.get(0),
    )?;
    tracing::info!(messages = pending, "indexing stored messages for search");
    while below > 1 {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        below = unindexed_below(&tx)?;
        let mut next_below = 0;
        {
            let mut statement = tx.prepare_cached(
                "SELECT m.id, m.mail_from, m.rcpt_to, r.data
                 FROM messages AS m JOIN raw AS r ON r.id = m.id
                 WHERE m.id < ?1 ORDER BY m.id DESC",
            )?;
            let mut rows = statement.query([below])?;
            let (mut count, mut bytes) = (0, 0);
            while count < BACKFILL_BATCH && bytes < BACKFILL_BATCH_BYTES {
                let Some(row) = rows.next()? else {
                    break;
                };
                let id: i64 = row.get(0)?;
                let rcpt_to: Vec<String> = from_json(row, 2)?;
                let raw = row.get_ref(3)?.as_blob().map_err(rusqlite::Error::from)?;
                let text = IndexText::new(&row.get::<_, String>(1)?, &rcpt_to, &mime::digest(raw));
                index_message(&tx, id, &text)?;
                next_below = id;
                count += 1;
                bytes += raw.len();
            }
        }
        tx.execute("UPDATE store_state SET unindexed_below = ?1", [next_below])?;
        ChangeLog::next_seq(&tx)?;
        tx.commit()?;
        below = next_below;
    }
    tracing::info!("search index complete");
    Ok(())
}

pub(super) fn unindexed_below(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT unindexed_below FROM store_state")?
        .query_row([], |row| row.get(0))
}
