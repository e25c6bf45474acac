//! The SQLite backend: one file in WAL mode, the embedded default.
//!
//! ```text
//! deliver ──▶ writer.rs: batch → one transaction → fsync ──▶ id
//! list / search / get ──▶ a pool of reader connections (connection.rs)
//! ```
//!
//! The jobs live in modules of their own: [`connection`] opens connections and
//! sets their pragmas, [`schema`] migrates, [`writer`] group-commits deliveries,
//! [`queries`] maps rows to the store's types, [`search_sql`] turns a parsed
//! search into SQL, [`index`] keeps the FTS5 index, [`folders`] is IMAP's view, [`changes`] numbers commits
//! and watches for other processes' ones, [`blob`] reads raw bytes a chunk at a
//! time and [`reserve`] keeps disk for deletes on a full disk. This module holds
//! the handle and the operations that combine them; every change ends in
//! [`SqliteStore::commit_and_announce`].

mod blob;
mod changes;
mod connection;
mod folders;
mod index;
mod log;
mod queries;
mod relays;
mod reserve;
mod retention;
mod schema;
mod search_sql;
mod tags;
mod writer;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tokio::sync::broadcast;

use crate::delivery::{WriteRequest, prepare_import};
use crate::mime::Digest;
use crate::relay::RelayAttempt;
use crate::store::{
    FlagChange, MessageCounts, RuntimeStats, StoreEvent, StoreOptions, WriterStats,
};
use crate::tags::TagName;
use crate::{
    ListQuery, MessageId, NewMessage, SearchPage, SearchQuery, StoreError, StoredMessage, Summary,
};
use changes::{Announcer, ChangeLog, Watcher, commit_change};
use connection::{
    FTS5_DELETE_MERGE, Room, cap_pages, compact, open_connection, open_writer_connection,
    restart_wal, set_delete_merge, warn_reserve_released,
};
use queries::{
    Indexing, SUMMARY_COLUMNS, insert_message, pending_seq, stored_message_from_row, summary_of,
    touch,
};
use reserve::Reserve;
use search_sql::{SqlParts, count_matching, ids_matching, page_matching, to_sql};
use tags::{apply_rules, tag_message};
use writer::Writer;

pub use blob::RAW_CHUNK_BYTES;
pub(crate) use tags::Edit as TagEdit;

/// Connections for queries and deletes, opened on demand and kept for reuse. More
/// callers than this wait for one to come free: every connection has its own page
/// cache, so an unbounded number under load (the web API hit by many clients) costs
/// memory, and a fresh connection starts with a cold cache anyway.
const MAX_READERS: usize = 8;

/// A delete of many messages commits this many at a time, so that one
/// transaction's WAL fits the disk reserve on a full disk with room to spare:
/// 256 deletes spread over a store of 20,000 messages (every message on pages of
/// its own) wrote 3.4 MiB of WAL, 256 neighbours 173 KiB. Deleting 100,000 by id
/// costs some 800 commits.
const DELETE_BATCH: usize = 128;

/// How many events a slow subscriber may fall behind before it sees
/// `RecvError::Lagged` and should reload.
const EVENT_CAPACITY: usize = 1024;

/// The SQLite store: a cheap `Clone` handle to one file, its writer thread and
/// its pool of reader connections. What each operation promises is documented
/// on [`crate::Store`], which hands every call to this.
#[derive(Clone)]
pub(crate) struct SqliteStore {
    inner: Arc<Inner>,
}

/// The reader connections: those not in use, and how many exist in all.
#[derive(Default)]
struct ReaderPool {
    idle: Vec<Connection>,
    open: usize,
}

struct Inner {
    path: PathBuf,
    options: StoreOptions,
    readers: Mutex<ReaderPool>,
    reader_freed: Condvar,
    /// Every change ends there.
    announcer: Announcer,
    /// Started by the first [`Store::subscribe`]; stops when the last handle drops.
    watcher: Mutex<Option<Watcher>>,
    /// Disk the store keeps for deleting on a full disk.
    reserve: Reserve,
    writer: Writer,
    /// Messages deleted through this handle since it was opened.
    deleted: AtomicU64,
}

impl Inner {
    /// The tags `message` gets from its headers and addresses.
    fn delivery_tags(&self, message: &NewMessage, digest: &Digest) -> Vec<TagName> {
        self.options.tagging.at_delivery(message, digest)
    }
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    pub(crate) fn open(path: &Path, options: StoreOptions) -> Result<SqliteStore, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|error| StoreError::io("creating the directory", parent, error))?;
        }
        let created = !path.exists();
        let reserve = Reserve::of(path);
        // On a full disk even opening may need a block (the `-shm` file, a
        // rolled-back journal); the reserve is there so that the store can be
        // opened and emptied.
        let conn = match open_writer_connection(path, created) {
            Err(error) if error.may_be_disk_full() && reserve.release() => {
                warn_reserve_released(path);
                open_writer_connection(path, created)?
            }
            result => result?,
        };
        reserve.ensure();
        // The size limit applies to new messages only, so it is set on the
        // writer's connection alone, after the schema is in place: a store at its
        // limit still opens, and deletes (on the other connections) never fail
        // for want of a page.
        cap_pages(&conn, options.max_size)?;

        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let announcer = Announcer::new(Arc::new(ChangeLog::default()), events);
        let writer = Writer::spawn(
            path,
            conn,
            options.max_batch,
            options.tagging.rules.clone(),
            announcer.clone(),
        )?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                options,
                readers: Mutex::new(ReaderPool::default()),
                reader_freed: Condvar::new(),
                announcer,
                watcher: Mutex::new(None),
                reserve,
                writer,
                deleted: AtomicU64::new(0),
            }),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.inner.path
    }

    pub(crate) fn size_on_disk(&self) -> u64 {
        let size = |path: &Path| std::fs::metadata(path).map_or(0, |meta| meta.len());
        let mut wal = self.inner.path.as_os_str().to_owned();
        wal.push("-wal");
        size(&self.inner.path) + size(Path::new(&wal))
    }

    pub(crate) fn list(&self, query: &ListQuery) -> Result<Vec<Summary>, StoreError> {
        self.with_connection(|conn| Ok(page_matching(conn, &SqlParts::default(), query)?))
    }

    pub(crate) fn search(
        &self,
        query: &SearchQuery,
        page: &ListQuery,
    ) -> Result<SearchPage, StoreError> {
        let parts = to_sql(query);
        self.with_connection(|conn| {
            let tx = conn.transaction()?;
            let matches = count_matching(&tx, &parts)?;
            let messages = page_matching(&tx, &parts, page)?;
            tx.commit()?;
            Ok(SearchPage { matches, messages })
        })
    }

    pub(crate) fn delete_matching(&self, query: &SearchQuery) -> Result<u64, StoreError> {
        let parts = to_sql(query);
        let ids = self.with_connection(|conn| Ok(ids_matching(conn, &parts)?))?;
        self.delete(&ids)
    }

    pub(crate) fn count(&self) -> Result<MessageCounts, StoreError> {
        // Kept up to date by triggers on `messages` (schema migration 4).
        self.with_connection(|conn| {
            let (total, unread): (i64, i64) = conn
                .prepare_cached("SELECT total, unread FROM store_state")?
                .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))?;
            Ok(MessageCounts {
                total: total.max(0) as u64,
                unread: unread.max(0) as u64,
            })
        })
    }

    pub(crate) fn get(&self, id: MessageId) -> Result<Option<StoredMessage>, StoreError> {
        self.with_connection(|conn| {
            let mut statement = conn.prepare_cached(&format!(
                "SELECT {SUMMARY_COLUMNS}, m.helo, m.client_addr, m.smtputf8, m.tls_version,
                        m.tls_cipher, m.auth_user, r.data
                 FROM messages AS m JOIN raw AS r ON r.id = m.id
                 WHERE m.id = ?1"
            ))?;
            Ok(statement
                .query_row([id.0], stored_message_from_row)
                .optional()?)
        })
    }

    pub(crate) fn record_relay(
        &self,
        id: MessageId,
        attempt: &RelayAttempt,
    ) -> Result<bool, StoreError> {
        self.with_connection(|conn| Ok(relays::insert_attempt(conn, id, attempt)?))
    }

    pub(crate) fn relay_attempts(&self, id: MessageId) -> Result<Vec<RelayAttempt>, StoreError> {
        self.with_connection(|conn| Ok(relays::attempts(conn, id)?))
    }

    pub(crate) fn matches(
        &self,
        id: MessageId,
        query: &SearchQuery,
    ) -> Result<Option<bool>, StoreError> {
        let parts = to_sql(query);
        // The --tag rules tag a new message in the transaction that indexes
        // it, so a tag filter waits for the index as words do.
        let rules = !self.inner.options.tagging.rules.is_empty();
        let needs_index = query.has_words() || (rules && query.has_tag_filters());
        self.with_connection(|conn| Ok(relays::matches(conn, id, &parts, needs_index)?))
    }

    pub(crate) fn latest(&self) -> Result<Option<MessageId>, StoreError> {
        self.with_connection(|conn| {
            let id: Option<i64> =
                conn.query_row("SELECT max(id) FROM messages", [], |row| row.get(0))?;
            Ok(id.map(MessageId))
        })
    }

    pub(crate) fn raw(&self, id: MessageId) -> Result<Option<Vec<u8>>, StoreError> {
        self.with_connection(|conn| {
            Ok(conn
                .prepare_cached("SELECT data FROM raw WHERE id = ?1")?
                .query_row([id.0], |row| row.get(0))
                .optional()?)
        })
    }

    pub(crate) fn delete(&self, ids: &[MessageId]) -> Result<u64, StoreError> {
        let mut room = Room::default();
        let mut count = 0;
        for batch in unique(ids).chunks(DELETE_BATCH) {
            count += self.delete_batch(batch, &mut room, StoreEvent::Deleted)?;
        }
        self.after_delete(count);
        Ok(count)
    }

    pub(crate) fn delete_all(&self) -> Result<u64, StoreError> {
        let mut room = Room::default();
        let all = self.with_room(&mut room, |conn, _tight| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            // Emptying `raw` first spares the cascade a lookup per message, and
            // emptying the index first leaves the trigger nothing to look up.
            tx.execute("DELETE FROM raw", [])?;
            tx.execute("INSERT INTO search (search) VALUES ('delete-all')", [])?;
            let deleted = tx.execute("DELETE FROM messages", [])?;
            let seq = commit_change(tx, deleted > 0)?;
            Ok((deleted as u64, seq))
        });
        let deleted = match all {
            Ok((deleted, seq)) => {
                self.inner.deleted.fetch_add(deleted, Ordering::Relaxed);
                self.inner.announcer.announce(seq, [StoreEvent::DeletedAll]);
                deleted
            }
            // One transaction for everything writes about as much WAL as the
            // table of messages is big; on a full disk that does not fit even
            // with the reserve, a batch at a time does.
            Err(StoreError::Full) => {
                let ids = self.with_connection(|conn| {
                    let mut statement = conn.prepare("SELECT id FROM messages ORDER BY id")?;
                    let ids = statement.query_map([], |row| row.get(0).map(MessageId))?;
                    Ok(ids.collect::<rusqlite::Result<Vec<_>>>()?)
                })?;
                let mut count = 0;
                for batch in ids.chunks(DELETE_BATCH) {
                    count += self.delete_batch(batch, &mut room, StoreEvent::Deleted)?;
                }
                count
            }
            Err(error) => return Err(error),
        };
        self.after_delete(deleted);
        Ok(deleted)
    }

    /// Delete the messages `ids` (no repeats) in one transaction and announce
    /// those that existed with `announce_as` (a deletion or a prune); returns
    /// how many did.
    fn delete_batch(
        &self,
        ids: &[MessageId],
        room: &mut Room,
        announce_as: fn(Vec<MessageId>) -> StoreEvent,
    ) -> Result<u64, StoreError> {
        let (deleted, seq) = self.with_room(room, |conn, tight| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if tight {
                // Past a share of deleted rows, FTS5 rewrites a whole level of
                // the index in the transaction that crosses it (`deletemerge`):
                // megabytes of WAL for a few deletes. On a full disk that waits
                // for a transaction that has the room; the setting is read when
                // the index flushes, so it is off only for this one.
                set_delete_merge(&tx, 0)?;
            }
            let mut deleted = Vec::new();
            {
                let mut statement = tx.prepare_cached("DELETE FROM messages WHERE id = ?1")?;
                for id in ids {
                    if statement.execute([id.0])? > 0 {
                        deleted.push(*id);
                    }
                }
            }
            if tight {
                set_delete_merge(&tx, FTS5_DELETE_MERGE)?;
            }
            let seq = commit_change(tx, !deleted.is_empty())?;
            Ok((deleted, seq))
        })?;
        let count = deleted.len() as u64;
        self.count_deleted(count);
        self.inner.announcer.announce(seq, [announce_as(deleted)]);
        Ok(count)
    }

    /// Count `count` more deleted messages for [`RuntimeStats`].
    fn count_deleted(&self, count: u64) {
        self.inner.deleted.fetch_add(count, Ordering::Relaxed);
    }

    /// Run the delete transaction `work` on a pooled connection, making room for
    /// it on a full disk: when it fails with [`StoreError::Full`], release the
    /// disk reserve, let the WAL start over from its beginning, and run it once
    /// more, telling it (`tight`) to write as little as it can. From then on
    /// every delete transaction of this call is tight and followed by such a
    /// restart, so the WAL reuses the same blocks instead of growing until
    /// SQLite's automatic checkpoint.
    fn with_room<T>(
        &self,
        room: &mut Room,
        mut work: impl FnMut(&mut Connection, bool) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.with_connection(|conn| {
            let result = match work(conn, room.tight) {
                Err(StoreError::Full) if !room.tight => {
                    room.tight = true;
                    if self.inner.reserve.release() {
                        warn_reserve_released(&self.inner.path);
                    }
                    restart_wal(conn);
                    work(conn, true)
                }
                result => result,
            };
            if room.tight && result.is_ok() {
                restart_wal(conn);
            }
            result
        })
    }

    /// After a delete: if it left the store empty, give the file's space back to
    /// the disk; then write the disk reserve again if it is missing. Best effort
    /// both: the delete itself has succeeded.
    fn after_delete(&self, deleted: u64) {
        if deleted > 0 {
            let compacted = self.with_connection(|conn| {
                let empty: bool =
                    conn.query_row("SELECT NOT EXISTS (SELECT 1 FROM messages)", [], |row| {
                        row.get(0)
                    })?;
                if empty {
                    compact(conn);
                }
                Ok(())
            });
            if let Err(error) = compacted {
                tracing::debug!(%error, "could not compact the emptied mail store");
            }
        }
        self.inner.reserve.ensure();
    }

    pub(crate) fn set_flags(
        &self,
        ids: &[MessageId],
        change: FlagChange,
    ) -> Result<u64, StoreError> {
        let flagged = self.with_connection(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let flagged = set_flags_in(&tx, &unique(ids), change)?;
            let changed = !flagged.read.is_empty() || !flagged.flagged.is_empty();
            let seq = commit_change(tx, changed)?;
            Ok((flagged, seq))
        });
        let (flagged, seq) = flagged?;
        let mut events = Vec::new();
        if let (Some(read), false) = (change.read, flagged.read.is_empty()) {
            events.push(StoreEvent::ReadChanged(flagged.read, read));
        }
        if let (Some(star), false) = (change.flagged, flagged.flagged.is_empty()) {
            events.push(StoreEvent::FlaggedChanged(flagged.flagged, star));
        }
        self.inner.announcer.announce(seq, events);
        Ok(flagged.existing)
    }

    pub(crate) fn changed_since(&self, modseq: u64) -> Result<Vec<(MessageId, u64)>, StoreError> {
        self.with_connection(|conn| {
            let mut statement = conn
                .prepare_cached("SELECT id, modseq FROM messages WHERE modseq > ?1 ORDER BY id")?;
            let rows = statement.query_map([to_i64(modseq)], |row| {
                Ok((MessageId(row.get(0)?), row.get::<_, i64>(1)?.max(0) as u64))
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    pub(crate) fn highest_modseq(&self) -> Result<u64, StoreError> {
        self.with_connection(|conn| {
            let seq: i64 = conn
                .prepare_cached("SELECT change_seq FROM store_state")?
                .query_row([], |row| row.get(0))?;
            Ok(seq.max(0) as u64)
        })
    }

    pub(crate) fn uid_validity(&self) -> Result<u32, StoreError> {
        self.with_connection(|conn| {
            let value: i64 = conn
                .prepare_cached("SELECT uid_validity FROM store_state")?
                .query_row([], |row| row.get(0))?;
            // Seconds since 1970 when the store got schema 6: a u32 until 2106,
            // and never 0, which IMAP does not allow.
            Ok(u32::try_from(value).unwrap_or(u32::MAX).max(1))
        })
    }

    pub(crate) fn runtime_stats(&self) -> RuntimeStats {
        let writer = self.inner.writer.stats();
        RuntimeStats {
            messages_accepted: writer.messages,
            bytes_accepted: writer.bytes,
            messages_deleted: self.inner.deleted.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        let receiver = self.inner.announcer.subscribe();
        let mut watcher = self
            .inner
            .watcher
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if watcher.is_none() {
            let started = open_connection(&self.inner.path, false).and_then(|conn| {
                Watcher::spawn(
                    &self.inner.path,
                    conn,
                    self.inner.announcer.changes(),
                    self.inner.announcer.sender(),
                )
            });
            match started {
                Ok(started) => *watcher = Some(started),
                Err(error) => tracing::warn!(
                    %error,
                    "cannot watch the mail store for other processes' changes"
                ),
            }
        }
        receiver
    }

    pub(crate) fn writer_stats(&self) -> WriterStats {
        self.inner.writer.stats()
    }

    pub(crate) fn import(&self, messages: Vec<NewMessage>) -> Result<Vec<MessageId>, StoreError> {
        let (digests, tags) = prepare_import(&messages, &self.inner.options.tagging);
        let (ids, seq) = self.with_connection(|conn| {
            // New messages, so held to the size limit, which pooled connections
            // otherwise do not have (deletes must not fail for want of a page).
            cap_pages(conn, self.inner.options.max_size)?;
            let imported = (|| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let mut ids = Vec::with_capacity(messages.len());
                for ((message, digest), tags) in messages.iter().zip(&digests).zip(&tags) {
                    let id = insert_message(&tx, message, digest, Indexing::Now)?;
                    tag_message(&tx, id, tags)?;
                    ids.push(id);
                }
                // Indexed in this transaction, so the rules can run in it too.
                apply_rules(&tx, &self.inner.options.tagging.rules, &ids)?;
                let seq = commit_change(tx, !ids.is_empty())?;
                Ok((ids, seq))
            })();
            cap_pages(conn, None)?;
            imported
        })?;
        let listening = self.inner.announcer.listening();
        let events = ids
            .iter()
            .zip(&messages)
            .zip(digests)
            .zip(tags)
            .filter(|_| listening)
            .map(|(((id, message), digest), tags)| {
                StoreEvent::New(Arc::new(summary_of(*id, message, digest, &tags)))
            });
        self.inner.announcer.announce(seq, events);
        Ok(ids)
    }

    /// Run `work` on a pooled connection: an idle one, a new one while fewer than
    /// [`MAX_READERS`] are open, or else the next one another caller returns.
    pub(crate) fn with_connection<T>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut pool = self.lock_readers();
        let idle = loop {
            if let Some(conn) = pool.idle.pop() {
                break Some(conn);
            }
            if pool.open < MAX_READERS {
                pool.open += 1;
                break None;
            }
            pool = self
                .inner
                .reader_freed
                .wait(pool)
                .unwrap_or_else(PoisonError::into_inner);
        };
        drop(pool);
        let mut conn = match idle {
            Some(conn) => conn,
            None => match open_connection(&self.inner.path, false) {
                Ok(conn) => conn,
                Err(error) => {
                    self.lock_readers().open -= 1;
                    self.inner.reader_freed.notify_one();
                    return Err(error);
                }
            },
        };
        // If `work` panics the connection is dropped with the unwinding, and its
        // place in the pool must be given back all the same.
        struct Lent<'a>(&'a SqliteStore, Option<Connection>);
        impl Drop for Lent<'_> {
            fn drop(&mut self) {
                let mut pool = self.0.lock_readers();
                match self.1.take() {
                    Some(conn) => pool.idle.push(conn),
                    None => pool.open -= 1,
                }
                drop(pool);
                self.0.inner.reader_freed.notify_one();
            }
        }
        let mut lent = Lent(self, None);
        let result = work(&mut conn);
        lent.1 = Some(conn);
        result
    }

    fn lock_readers(&self) -> std::sync::MutexGuard<'_, ReaderPool> {
        // A panic while the lock was held cannot leave the pool half-changed.
        self.inner
            .readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn maildrop(
        &self,
        recipient: Option<&str>,
    ) -> Result<Vec<(MessageId, u64)>, StoreError> {
        self.with_connection(|conn| {
            let row = |row: &rusqlite::Row<'_>| {
                Ok((MessageId(row.get(0)?), row.get::<_, i64>(1)?.max(0) as u64))
            };
            let Some(recipient) = recipient else {
                let mut statement =
                    conn.prepare_cached("SELECT id, size FROM messages ORDER BY id")?;
                let rows = statement.query_map([], row)?;
                return Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?);
            };
            let wanted = mailbox_address(recipient);
            let rows = if wanted.contains('@') {
                conn.prepare_cached(MAILDROP_OF_ADDRESS)?
                    .query_map([&wanted], row)?
                    .collect::<rusqlite::Result<Vec<_>>>()?
            } else {
                conn.prepare_cached(MAILDROP_OF_NAME)?
                    .query_map(local_part_range(&wanted), row)?
                    .collect::<rusqlite::Result<Vec<_>>>()?
            };
            Ok(rows)
        })
    }
}

impl SqliteStore {
    /// Parse the message for its summary (on tokio's blocking pool if it is
    /// large, so this must run inside a tokio runtime), queue it for the writer
    /// thread, and resolve once the group commit that holds it has returned.
    pub(crate) async fn deliver(&self, message: NewMessage) -> Result<MessageId, StoreError> {
        let inner = Arc::clone(&self.inner);
        let (request, answer) = WriteRequest::prepare(message, move |message, digest| {
            inner.delivery_tags(message, digest)
        })
        .await?;
        self.inner.writer.submit(request, answer).await
    }
}

/// SQLite integers are i64; counts and sizes beyond that cannot happen, so clamp.
fn to_i64(value: impl TryInto<i64>) -> i64 {
    value.try_into().unwrap_or(i64::MAX)
}

/// `ids` without repeats, so a repeated id is neither counted nor announced twice.
pub(crate) fn unique(ids: &[MessageId]) -> Vec<MessageId> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The changes [`set_flags_in`] made.
#[derive(Debug, Default)]
struct FlagsChanged {
    /// How many of the ids exist.
    existing: u64,
    /// The messages whose read flag changed.
    read: Vec<MessageId>,
    /// The messages whose star changed.
    flagged: Vec<MessageId>,
}

/// Apply `change` to the messages `ids` (no repeats) inside the write
/// transaction `tx`, which the caller commits with [`commit_change`]. A message
/// whose flags change gets that commit's number as its modseq.
fn set_flags_in(
    tx: &rusqlite::Transaction<'_>,
    ids: &[MessageId],
    change: FlagChange,
) -> rusqlite::Result<FlagsChanged> {
    let mut flags = tx.prepare_cached("SELECT read, flagged FROM messages WHERE id = ?1")?;
    let mut update =
        tx.prepare_cached("UPDATE messages SET read = ?2, flagged = ?3 WHERE id = ?1")?;
    let mut changed = FlagsChanged::default();
    let mut touched = Vec::new();
    for id in ids {
        let Some((read, flagged)) = flags
            .query_row([id.0], |row| {
                Ok((row.get::<_, bool>(0)?, row.get::<_, bool>(1)?))
            })
            .optional()?
        else {
            continue;
        };
        changed.existing += 1;
        let new_read = change.read.unwrap_or(read);
        let new_flagged = change.flagged.unwrap_or(flagged);
        if (new_read, new_flagged) == (read, flagged) {
            continue;
        }
        update.execute(params![id.0, new_read, new_flagged])?;
        touched.push(*id);
        if new_read != read {
            changed.read.push(*id);
        }
        if new_flagged != flagged {
            changed.flagged.push(*id);
        }
    }
    touch(tx, &touched, pending_seq(tx)?)?;
    Ok(changed)
}

/// The messages sent to the address `?1`, oldest first.
const MAILDROP_OF_ADDRESS: &str = "SELECT m.id, m.size FROM mailboxes AS b
    JOIN messages AS m ON m.id = b.message_id
    WHERE b.address = ?1 ORDER BY b.message_id";

/// The messages sent to any address with a local part, given as a range by
/// [`local_part_range`], oldest first.
const MAILDROP_OF_NAME: &str = "SELECT DISTINCT m.id, m.size FROM mailboxes AS b
    JOIN messages AS m ON m.id = b.message_id
    WHERE b.address >= ?1 AND b.address < ?2 AND instr(substr(b.address, ?3), '@') = 0
    ORDER BY m.id";

/// The parameters of [`MAILDROP_OF_NAME`] for the local part `name`: every
/// address that starts with `name@` (a range of the primary key, as '@' + 1 is
/// 'A') and has no `@` after it, since the local part is what precedes the
/// last `@`.
pub(crate) fn local_part_range(name: &str) -> (String, String, i64) {
    let from = format!("{name}@");
    let after = to_i64(from.chars().count() + 1);
    (from, format!("{name}A"), after)
}

/// `address` as the `mailboxes` table keeps it.
pub(crate) fn mailbox_address(address: &str) -> String {
    address.to_lowercase()
}

#[cfg(test)]
mod tests {
    use rusqlite::params_from_iter;
    use rusqlite::types::Value;

    use super::search_sql::{matching_clauses, matching_from, order_column, to_sql};
    use super::*;

    /// Many threads querying at once share at most MAX_READERS connections, and
    /// every one of them gets its answer.
    #[test]
    fn concurrent_queries_share_a_bounded_pool() {
        let dir = tempfile::TempDir::new().unwrap();
        let store =
            SqliteStore::open(&dir.path().join("mail.db"), StoreOptions::default()).unwrap();
        let threads: Vec<_> = (0..32)
            .map(|_| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        store.list(&ListQuery::default()).unwrap();
                        store.count().unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let pool = store.lock_readers();
        assert!(
            pool.open <= MAX_READERS && pool.open >= 1,
            "{} open",
            pool.open
        );
        assert_eq!(pool.idle.len(), pool.open);
    }

    /// A per-recipient maildrop (POP3's `--pop3-per-recipient`) is a lookup in
    /// the `mailboxes` primary key, for a whole address and for a bare name,
    /// never a scan of every message.
    #[test]
    fn maildrops_are_index_lookups() {
        let dir = tempfile::TempDir::new().unwrap();
        let store =
            SqliteStore::open(&dir.path().join("mail.db"), StoreOptions::default()).unwrap();
        let explain = |sql: &str, params: &[Value]| {
            store
                .with_connection(|conn| {
                    let mut statement = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                    let rows = statement.query_map(params_from_iter(params), |row| row.get(3))?;
                    Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
                })
                .unwrap()
                .join("\n")
        };
        let (from, to, after) = local_part_range("morty");
        for plan in [
            explain(
                MAILDROP_OF_ADDRESS,
                &[Value::Text("morty@example.com".into())],
            ),
            explain(
                MAILDROP_OF_NAME,
                &[Value::Text(from), Value::Text(to), Value::Integer(after)],
            ),
        ] {
            assert!(
                plan.contains("SEARCH b USING PRIMARY KEY (address") && !plan.contains("SCAN"),
                "{plan}"
            );
        }
    }

    /// The query plan of a page of `query`, one line per step.
    fn plan(store: &SqliteStore, query: &str, before: Option<i64>) -> String {
        let parts = to_sql(&SearchQuery::parse(query).unwrap());
        let (clauses, mut params) = matching_clauses(&parts, before.map(MessageId));
        params.extend([Value::Integer(50), Value::Integer(0)]);
        let sql = format!(
            "EXPLAIN QUERY PLAN SELECT {SUMMARY_COLUMNS} FROM {} WHERE {} ORDER BY {} DESC LIMIT ? OFFSET ?",
            matching_from(&parts),
            clauses.join(" AND "),
            order_column(&parts),
        );
        store
            .with_connection(|conn| {
                let mut statement = conn.prepare(&sql)?;
                let rows = statement.query_map(params_from_iter(params), |row| row.get(3))?;
                Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
            })
            .unwrap()
            .join("\n")
    }

    /// A page of 50 must come from walking an index newest first and stopping,
    /// not from sorting every match: at 100,000 messages the sort is what makes a
    /// search slow.
    #[test]
    fn pages_are_read_in_order_without_sorting() {
        let dir = tempfile::TempDir::new().unwrap();
        let store =
            SqliteStore::open(&dir.path().join("mail.db"), StoreOptions::default()).unwrap();
        for (query, before) in [
            ("", None),
            ("", Some(10)),
            ("invoice", None),
            ("invoice from:alice is:unread", Some(10)),
            ("-invoice", None),
            ("is:unread", Some(10)),
            ("has:attachment -from:x", None),
            ("tag:urgent", None),
            ("tag:urgent", Some(10)),
            ("invoice tag:urgent", None),
            ("-tag:urgent is:untagged", Some(10)),
            ("is:flagged", Some(10)),
            ("is:tagged larger:10k smaller:1m", None),
            ("addressed:bob cc:x -bcc:y has:inline", Some(10)),
            ("message-id:abc reply-to:z after:2026-11-24", None),
        ] {
            let plan = plan(&store, query, before);
            assert!(!plan.contains("TEMP B-TREE"), "{query:?}:\n{plan}");
        }
    }
}
