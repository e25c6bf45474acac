//! A message's raw bytes a chunk at a time, so that a download of a 32 MiB
//! message holds one chunk in memory, not the message (issue #11).
//!
//! ```text
//! web /raw ──raw_chunk(id, offset)──▶ pooled reader: sqlite3_blob_read ──▶ ≤ RAW_CHUNK_BYTES
//! ```
//!
//! Each chunk is read in a read transaction of its own on a pooled connection,
//! so a client that stops reading holds neither a connection nor a WAL snapshot
//! (which would keep checkpoints from shrinking the WAL). A message deleted while
//! it is being read answers `None` from the next chunk on: the reader ends the
//! download there. Ids are never reused, so the chunks of one id are always the
//! bytes of one message.

use rusqlite::OptionalExtension;

use super::SqliteStore;
use crate::{MessageId, StoreError};

/// The most bytes [`Store::raw_chunk`] returns at once.
pub const RAW_CHUNK_BYTES: usize = 256 << 10;

impl SqliteStore {
    /// How many raw bytes message `id` has; `None` if there is no such message.
    pub(crate) fn raw_len(&self, id: MessageId) -> Result<Option<u64>, StoreError> {
        self.with_connection(|conn| {
            // length() of a BLOB reads its size from the record header, not the
            // bytes.
            let len: Option<i64> = conn
                .prepare_cached("SELECT length(data) FROM raw WHERE id = ?1")?
                .query_row([id.0], |row| row.get(0))
                .optional()?;
            Ok(len.map(|len| len.max(0) as u64))
        })
    }

    /// Up to `max` (at most [`RAW_CHUNK_BYTES`]) raw bytes of message `id` from
    /// byte `offset` on: fewer only at the end, none past it. `None` if the
    /// message does not exist (any more).
    pub(crate) fn raw_chunk(
        &self,
        id: MessageId,
        offset: u64,
        max: usize,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.with_connection(|conn| {
            let tx = conn.transaction()?;
            let exists = tx
                .prepare_cached("SELECT 1 FROM raw WHERE id = ?1")?
                .query_row([id.0], |_| Ok(()))
                .optional()?
                .is_some();
            if !exists {
                return Ok(None);
            }
            let chunk = {
                let blob = tx.blob_open("main", "raw", "data", id.0, true)?;
                let start = usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .min(blob.len());
                let mut chunk = vec![0; max.min(RAW_CHUNK_BYTES).min(blob.len() - start)];
                blob.read_at_exact(&mut chunk, start)?;
                chunk
            };
            tx.commit()?;
            Ok(Some(chunk))
        })
    }
}
