//! Messages: deliver, list, get, raw bytes, delete, flags, counts, import.
//!
//! Reads take a pooled connection each; every write is one transaction that
//! starts with [`next_seq`], publishes its [`Notice`] for the other nodes and,
//! once committed, announces its [`StoreEvent`] here, as the SQLite backend
//! announces it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::broadcast;

use super::queries::{
    Rows, STORED_COLUMNS, SUMMARY_COLUMNS, insert_messages, listed_summary_from_row,
    stored_message_from_row, to_i64,
};
use super::tags::{apply_rules, tag_message};
use super::{NOTICE_IDS, Notice, PgStore, Shared, events, ids_of, next_seq, publish, room_for};
use crate::delivery::{WriteRequest, prepare_import};
use crate::mime::Digest;
use crate::sqlite::unique;
use crate::store::{FlagChange, MessageCounts, RuntimeStats, StoreEvent, WriterStats};
use crate::summary::summary_of;
use crate::tags::TagName;
use crate::{
    ListQuery, MessageId, NewMessage, RAW_CHUNK_BYTES, StoreError, StoredMessage, Summary,
};

/// A delete of many messages commits this many at a time: short
/// transactions (the write lock is the cluster's), and each batch's notice
/// names its ids.
const DELETE_BATCH: usize = NOTICE_IDS;

impl PgStore {
    /// The database's size: every table and index of the store, and whatever
    /// else shares its database. 0 if it cannot be read.
    pub(crate) fn size_on_disk(&self) -> u64 {
        let size = self.run(async {
            let client = self.shared().client().await?;
            let row = client
                .query_one("SELECT pg_database_size(current_database())", &[])
                .await?;
            Ok(row.get::<_, i64>(0))
        });
        size.map_or(0, |size| size.max(0) as u64)
    }

    /// Parse the message for its summary and tags ([`WriteRequest::prepare`]:
    /// inside a tokio runtime), queue it for the writer, and resolve once the
    /// group commit that holds it has committed.
    pub(crate) async fn deliver(&self, message: NewMessage) -> Result<MessageId, StoreError> {
        let shared = Arc::clone(self.shared());
        let (request, answer) = WriteRequest::prepare(message, move |message, digest| {
            shared.options.tagging.at_delivery(message, digest)
        })
        .await?;
        self.inner.writer.submit(request, answer).await
    }

    pub(crate) fn list(&self, query: &ListQuery) -> Result<Vec<Summary>, StoreError> {
        let limit = to_i64(query.limit);
        let offset = to_i64(query.offset);
        self.run(async {
            let client = self.shared().client().await?;
            let rows = match query.before {
                Some(before) => {
                    let statement = client
                        .prepare_cached(&format!(
                            "SELECT {SUMMARY_COLUMNS} FROM messages AS m WHERE m.id < $1
                             ORDER BY m.id DESC LIMIT $2 OFFSET $3"
                        ))
                        .await?;
                    client
                        .query(&statement, &[&before.0, &limit, &offset])
                        .await?
                }
                None => {
                    let statement = client
                        .prepare_cached(&format!(
                            "SELECT {SUMMARY_COLUMNS} FROM messages AS m
                             ORDER BY m.id DESC LIMIT $1 OFFSET $2"
                        ))
                        .await?;
                    client.query(&statement, &[&limit, &offset]).await?
                }
            };
            rows.iter().map(listed_summary_from_row).collect()
        })
    }

    pub(crate) fn count(&self) -> Result<MessageCounts, StoreError> {
        // Kept up to date by triggers on `messages` (schema.rs).
        self.run(async {
            let client = self.shared().client().await?;
            let statement = client
                .prepare_cached("SELECT total, unread FROM store_state")
                .await?;
            let row = client.query_one(&statement, &[]).await?;
            Ok(MessageCounts {
                total: row.get::<_, i64>(0).max(0) as u64,
                unread: row.get::<_, i64>(1).max(0) as u64,
            })
        })
    }

    pub(crate) fn get(&self, id: MessageId) -> Result<Option<StoredMessage>, StoreError> {
        self.run(async {
            let client = self.shared().client().await?;
            let statement = client
                .prepare_cached(&format!(
                    "SELECT {SUMMARY_COLUMNS}, {STORED_COLUMNS}
                     FROM messages AS m JOIN raw AS r ON r.id = m.id
                     WHERE m.id = $1"
                ))
                .await?;
            client
                .query_opt(&statement, &[&id.0])
                .await?
                .as_ref()
                .map(stored_message_from_row)
                .transpose()
        })
    }

    pub(crate) fn latest(&self) -> Result<Option<MessageId>, StoreError> {
        self.run(async {
            let client = self.shared().client().await?;
            let statement = client
                .prepare_cached("SELECT max(id) FROM messages")
                .await?;
            let id: Option<i64> = client.query_one(&statement, &[]).await?.get(0);
            Ok(id.map(MessageId))
        })
    }

    pub(crate) fn raw(&self, id: MessageId) -> Result<Option<Vec<u8>>, StoreError> {
        self.run(async {
            let client = self.shared().client().await?;
            let statement = client
                .prepare_cached("SELECT data FROM raw WHERE id = $1")
                .await?;
            let row = client.query_opt(&statement, &[&id.0]).await?;
            Ok(row.map(|row| row.get(0)))
        })
    }

    /// How many raw bytes message `id` has; `None` if there is no such
    /// message. The length of an out-of-line value is read from its pointer,
    /// not from its bytes.
    pub(crate) fn raw_len(&self, id: MessageId) -> Result<Option<u64>, StoreError> {
        self.run(async {
            let client = self.shared().client().await?;
            let statement = client
                .prepare_cached("SELECT octet_length(data)::bigint FROM raw WHERE id = $1")
                .await?;
            let row = client.query_opt(&statement, &[&id.0]).await?;
            Ok(row.map(|row| row.get::<_, i64>(0).max(0) as u64))
        })
    }

    /// Up to `max` (at most [`RAW_CHUNK_BYTES`]) raw bytes of message `id`
    /// from byte `offset` on: fewer only at the end, none past it. `None` if
    /// the message does not exist (any more). The column is stored
    /// uncompressed out of line, so `substring` reads only the chunks of the
    /// value it returns.
    pub(crate) fn raw_chunk(
        &self,
        id: MessageId,
        offset: u64,
        max: usize,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        // `substring` counts from 1, in `integer`s; a message is far smaller
        // than 2 GiB, so an offset past that is past its end.
        let from = i32::try_from(offset.saturating_add(1)).unwrap_or(i32::MAX);
        let length = i32::try_from(max.min(RAW_CHUNK_BYTES)).unwrap_or(i32::MAX);
        self.run(async {
            let client = self.shared().client().await?;
            let statement = client
                .prepare_cached("SELECT substring(data FROM $2 FOR $3) FROM raw WHERE id = $1")
                .await?;
            let row = client
                .query_opt(&statement, &[&id.0, &from, &length])
                .await?;
            Ok(row.map(|row| row.get(0)))
        })
    }

    pub(crate) fn delete(&self, ids: &[MessageId]) -> Result<u64, StoreError> {
        let mut count = 0;
        for batch in unique(ids).chunks(DELETE_BATCH) {
            count += self.delete_batch(batch)?;
        }
        Ok(count)
    }

    /// Delete the messages `ids` (no repeats) in one transaction and announce
    /// those that existed; returns how many did.
    fn delete_batch(&self, ids: &[MessageId]) -> Result<u64, StoreError> {
        let shared = self.shared();
        let deleted = self.run(async {
            let mut client = shared.client().await?;
            let tx = client.transaction().await?;
            next_seq(&tx).await?;
            let statement = tx
                .prepare_cached("DELETE FROM messages WHERE id = ANY($1) RETURNING id")
                .await?;
            let mut deleted: Vec<i64> = tx
                .query(&statement, &[&ids_of(ids)])
                .await?
                .iter()
                .map(|row| row.get(0))
                .collect();
            if deleted.is_empty() {
                // Nothing changed: no change number taken, nobody told.
                tx.rollback().await?;
                return Ok(Vec::new());
            }
            deleted.sort_unstable();
            let notice = Notice::Deleted {
                ids: deleted.clone(),
            };
            publish(&tx, shared, notice).await?;
            tx.commit().await?;
            Ok(deleted)
        })?;
        let count = deleted.len() as u64;
        if count > 0 {
            shared.deleted.fetch_add(count, Ordering::Relaxed);
            shared.announce(StoreEvent::Deleted(
                deleted.into_iter().map(MessageId).collect(),
            ));
        }
        Ok(count)
    }

    pub(crate) fn delete_all(&self) -> Result<u64, StoreError> {
        let shared = self.shared();
        let deleted = self.run(async {
            let mut client = shared.client().await?;
            let tx = client.transaction().await?;
            next_seq(&tx).await?;
            let deleted = tx.execute("DELETE FROM messages", &[]).await?;
            if deleted == 0 {
                tx.rollback().await?;
                return Ok(0);
            }
            publish(&tx, shared, Notice::DeletedAll).await?;
            tx.commit().await?;
            Ok(deleted)
        })?;
        if deleted > 0 {
            shared.deleted.fetch_add(deleted, Ordering::Relaxed);
            shared.announce(StoreEvent::DeletedAll);
        }
        Ok(deleted)
    }

    /// Apply `change` to the messages `ids`; returns how many of them exist.
    /// A message whose flags change gets the transaction's change number as
    /// its modseq; one already as asked is left alone.
    pub(crate) fn set_flags(
        &self,
        ids: &[MessageId],
        change: FlagChange,
    ) -> Result<u64, StoreError> {
        let shared = self.shared();
        let ids = unique(ids);
        if ids.is_empty() {
            return Ok(0);
        }
        let changed = self.run(async {
            let mut client = shared.client().await?;
            let tx = client.transaction().await?;
            let seq = next_seq(&tx).await?;
            let statement = tx
                .prepare_cached("SELECT id, read, flagged FROM messages WHERE id = ANY($1)")
                .await?;
            let rows = tx.query(&statement, &[&ids_of(&ids)]).await?;
            let mut changed = FlagsChanged {
                existing: rows.len() as u64,
                ..FlagsChanged::default()
            };
            let mut touched = Vec::new();
            for row in &rows {
                let (id, read, flagged): (i64, bool, bool) = (row.get(0), row.get(1), row.get(2));
                let read_changes = change.read.is_some_and(|new| new != read);
                let star_changes = change.flagged.is_some_and(|new| new != flagged);
                if read_changes {
                    changed.read.push(id);
                }
                if star_changes {
                    changed.flagged.push(id);
                }
                if read_changes || star_changes {
                    touched.push(id);
                }
            }
            if touched.is_empty() {
                tx.rollback().await?;
                return Ok(changed);
            }
            let statement = tx
                .prepare_cached(
                    "UPDATE messages SET read = coalesce($2, read),
                         flagged = coalesce($3, flagged), modseq = $4
                     WHERE id = ANY($1)",
                )
                .await?;
            tx.execute(&statement, &[&touched, &change.read, &change.flagged, &seq])
                .await?;
            changed.read.sort_unstable();
            changed.flagged.sort_unstable();
            if let (Some(value), false) = (change.read, changed.read.is_empty()) {
                let ids = changed.read.clone();
                publish(&tx, shared, Notice::Read { ids, value }).await?;
            }
            if let (Some(value), false) = (change.flagged, changed.flagged.is_empty()) {
                let ids = changed.flagged.clone();
                publish(&tx, shared, Notice::Flagged { ids, value }).await?;
            }
            tx.commit().await?;
            Ok(changed)
        })?;
        if let (Some(read), false) = (change.read, changed.read.is_empty()) {
            shared.announce(StoreEvent::ReadChanged(to_ids(changed.read), read));
        }
        if let (Some(star), false) = (change.flagged, changed.flagged.is_empty()) {
            shared.announce(StoreEvent::FlaggedChanged(to_ids(changed.flagged), star));
        }
        Ok(changed.existing)
    }

    pub(crate) fn runtime_stats(&self) -> RuntimeStats {
        let writer = self.inner.writer.stats();
        RuntimeStats {
            messages_accepted: writer.messages,
            bytes_accepted: writer.bytes,
            messages_deleted: self.shared().deleted.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn writer_stats(&self) -> WriterStats {
        self.inner.writer.stats()
    }

    /// Subscribe to this node's changes and, from the first subscriber on,
    /// every other node's (the listener, [`events`]).
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        let receiver = self.shared().events.subscribe();
        let mut listener = self
            .inner
            .listener
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if listener.is_none() {
            *listener = Some(events::Listener::spawn(Arc::clone(self.shared())));
        }
        receiver
    }

    /// Store `messages` in one transaction, indexed in it, and return their
    /// ids in order.
    pub(crate) fn import(&self, messages: Vec<NewMessage>) -> Result<Vec<MessageId>, StoreError> {
        let shared = self.shared();
        let (digests, tags) = prepare_import(&messages, &shared.options.tagging);
        let ids = self.run(import_in(shared, &messages, &digests, &tags))?;
        if shared.events.receiver_count() > 0 {
            for (((id, message), digest), tags) in ids.iter().zip(&messages).zip(digests).zip(tags)
            {
                let summary = summary_of(*id, message, digest, &tags);
                shared.announce(StoreEvent::New(Arc::new(summary)));
            }
        }
        Ok(ids)
    }
}

/// The transaction of [`PgStore::import`].
async fn import_in(
    shared: &Shared,
    messages: &[NewMessage],
    digests: &[Digest],
    tags: &[Vec<TagName>],
) -> Result<Vec<MessageId>, StoreError> {
    if messages.is_empty() {
        return Ok(Vec::new());
    }
    // Indexed as they are inserted; tags in order after.
    let rows = Rows::new(messages.iter().zip(digests))?;
    let mut client = shared.client().await?;
    let tx = client.transaction().await?;
    let seq = next_seq(&tx).await?;
    room_for(
        &tx,
        shared,
        messages.iter().map(|message| message.raw.len()).sum(),
    )
    .await?;
    let ids = insert_messages(&tx, &rows, seq).await?;
    for (id, tags) in ids.iter().zip(tags) {
        if !tags.is_empty() {
            tag_message(&tx, *id, tags).await?;
        }
    }
    // Indexed in this transaction, so the rules can run in it too.
    apply_rules(&tx, &shared.options.tagging.rules, &ids).await?;
    let notice = Notice::New { ids: ids_of(&ids) };
    publish(&tx, shared, notice).await?;
    tx.commit().await?;
    Ok(ids)
}

/// The changes [`PgStore::set_flags`] made.
#[derive(Debug, Default)]
struct FlagsChanged {
    /// How many of the ids exist.
    existing: u64,
    /// The messages whose read flag changed.
    read: Vec<i64>,
    /// The messages whose star changed.
    flagged: Vec<i64>,
}

fn to_ids(ids: Vec<i64>) -> Vec<MessageId> {
    ids.into_iter().map(MessageId).collect()
}
