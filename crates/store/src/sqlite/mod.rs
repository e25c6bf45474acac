//! The SQLite backend: one file in WAL mode, the embedded default, with a log
//! in front of it.
//!
//! ```text
//! deliver ──▶ log/: append, one fdatasync per batch ──▶ id (the 250)
//!                  └─▶ writer.rs (the materialiser): rows, many messages a transaction; then the index
//! list / search / get ──▶ wait until the rows reach what was acknowledged ──▶ a pool of reader connections
//! ```
//!
//! The jobs live in modules of their own: [`connection`] opens connections and
//! sets their pragmas, [`schema`] migrates, [`log`] makes deliveries durable,
//! [`writer`] writes their rows and indexes them, [`registry`] keeps one open
//! store per file in a process, [`follower`] waits for another process that
//! owns the log, [`queries`] maps rows to the store's types, [`search_sql`]
//! turns a parsed search into SQL, [`index`] keeps the FTS5 index,
//! [`folders`] is IMAP's view, [`changes`] numbers commits and watches for
//! other processes' ones, [`blob`] reads raw bytes a chunk at a time and
//! [`reserve`] keeps disk for deletes on a full disk. This module holds the
//! handle and the operations that combine them.
//!
//! One process owns the log and materialises it ([`crate::Ownership`]);
//! every read and change here first waits until the rows of every message
//! acknowledged before it are written (on the owner, the materialiser's
//! progress; on a follower, `store_state`'s position against the log's end),
//! so that a client that got a 250 finds its message.

mod blob;
mod changes;
mod connection;
mod folders;
mod follower;
mod index;
mod log;
mod queries;
mod registry;
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
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use sokkel_net::stats::StoreCounters;
use tokio::sync::broadcast;

use crate::delivery::prepare_import;
use crate::relay::RelayAttempt;
use crate::store::{
    FlagChange, MessageCounts, Ownership, RuntimeStats, SmtpRecord, StoreEvent, StoreOptions,
    WriterStats,
};
use crate::{
    ListQuery, MessageId, NewMessage, SearchPage, SearchQuery, StoreError, StoredMessage, Summary,
};
use changes::{Announcer, ChangeLog, Watcher, commit_change};
use connection::{
    FTS5_DELETE_MERGE, Room, compact, open_connection, open_writer_connection, reclaim,
    restart_wal, set_delete_merge, warn_reserve_released,
};
use log::{Log, LogOptions};
use queries::{
    Indexing, SUMMARY_COLUMNS, insert_message, pending_seq, stored_message_from_row, summary_of,
    touch,
};
use registry::Registration;
use reserve::Reserve;
use search_sql::{SqlParts, count_matching, ids_matching, page_matching, to_sql};
use tags::{apply_rules, tag_message};
use writer::{Materialiser, Need, NewIds, Setup, Shared, stored_position};

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

/// The SQLite store: a cheap `Clone` handle to one file, its log and
/// materialiser (or, if another process owns them, the way to follow it) and
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
    role: Role,
    /// Messages deleted through this handle since it was opened.
    deleted: AtomicU64,
    /// Commit times and pruned messages, for `/metrics`.
    counters: Arc<StoreCounters>,
    /// Last: the file's place in this process's registry goes once the log
    /// (in `role`) is let go.
    _registration: Registration,
}

/// Whether this process owns the store's log.
enum Role {
    /// It does: it appends deliveries and writes their rows.
    Owner(Materialiser),
    /// Another process does; this one reads and changes the rows it wrote.
    Follower {
        /// The log's directory.
        dir: PathBuf,
    },
}

impl Role {
    /// The error for adding messages as a follower.
    fn served(dir: &Path) -> StoreError {
        StoreError::Served {
            pid: log::owner_pid(dir),
        }
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
        let required = matches!(options.ownership, Ownership::Required(_));
        let inner = registry::open_once(registry::key(path), |registration| {
            open_inner(path, options, registration).map(Arc::new)
        })?;
        // Open already in this process, as a follower: a server must not
        // start as one.
        if let (true, Role::Follower { dir }) = (required, &inner.role) {
            return Err(Role::served(dir));
        }
        Ok(SqliteStore { inner })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Records where this process, the owner, takes mail over SMTP, and the
    /// token its server names.
    pub(crate) fn record_smtp(&self, record: &SmtpRecord) -> Result<(), StoreError> {
        let dir = log::dir_for(&self.inner.path);
        match &self.inner.role {
            Role::Owner(_) => log::write_smtp_record(&dir, record)
                .map_err(|error| StoreError::io("writing the SMTP addresses in", &dir, error)),
            Role::Follower { dir } => Err(Role::served(dir)),
        }
    }

    /// Removes what [`SqliteStore::record_smtp`] wrote, if this process owns the log.
    pub(crate) fn forget_smtp(&self) -> Result<(), StoreError> {
        let dir = log::dir_for(&self.inner.path);
        match &self.inner.role {
            Role::Owner(_) => log::remove_smtp_record(&dir)
                .map_err(|error| StoreError::io("removing the SMTP addresses in", &dir, error)),
            Role::Follower { .. } => Ok(()),
        }
    }

    /// Where the process that owns the log now said it takes mail over SMTP.
    pub(crate) fn smtp_record(&self) -> Option<SmtpRecord> {
        log::smtp_record(&log::dir_for(&self.inner.path))
    }

    pub(crate) fn counters(&self) -> &Arc<StoreCounters> {
        &self.inner.counters
    }

    /// The database, its WAL and its log's segments (the log's current
    /// segment, its spares, and what waits to be materialised).
    pub(crate) fn size_on_disk(&self) -> u64 {
        let size = |path: &Path| std::fs::metadata(path).map_or(0, |meta| meta.len());
        let mut wal = self.inner.path.as_os_str().to_owned();
        wal.push("-wal");
        let log = std::fs::read_dir(log::dir_for(&self.inner.path))
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.metadata().map_or(0, |meta| meta.len()))
            .sum::<u64>();
        size(&self.inner.path) + size(Path::new(&wal)) + log
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
        self.after(self.needs_index(query), |conn| {
            let tx = conn.transaction()?;
            let matches = count_matching(&tx, &parts)?;
            let messages = page_matching(&tx, &parts, page)?;
            tx.commit()?;
            Ok(SearchPage { matches, messages })
        })
    }

    pub(crate) fn delete_matching(&self, query: &SearchQuery) -> Result<u64, StoreError> {
        let parts = to_sql(query);
        let ids = self.after(self.needs_index(query), |conn| {
            Ok(ids_matching(conn, &parts)?)
        })?;
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
        let need = self.needs_index(query);
        self.after(need, |conn| {
            Ok(relays::matches(conn, id, &parts, need == Need::Index)?)
        })
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
                    let compacted = match compact(conn) {
                        // The rebuild goes through the WAL: on a full disk the
                        // reserve is what lets it run, and it is written again
                        // below once the emptied file has given its space back.
                        Err(error) if error.may_be_disk_full() && self.inner.reserve.release() => {
                            warn_reserve_released(&self.inner.path);
                            compact(conn)
                        }
                        result => result,
                    };
                    if let Err(error) = compacted {
                        tracing::debug!(%error, "could not give the emptied mail store's space back to the disk");
                    }
                } else {
                    reclaim(conn);
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
        let (messages_accepted, bytes_accepted) = match &self.inner.role {
            Role::Owner(materialiser) => materialiser.shared().accepted_totals(),
            Role::Follower { .. } => (0, 0),
        };
        RuntimeStats {
            messages_accepted,
            bytes_accepted,
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
        match &self.inner.role {
            Role::Owner(materialiser) => materialiser.shared().stats(),
            Role::Follower { .. } => WriterStats::default(),
        }
    }

    pub(crate) fn import(&self, messages: Vec<NewMessage>) -> Result<Vec<MessageId>, StoreError> {
        // Parsed here, on the caller's thread, not the materialiser's.
        let (digests, tags) = prepare_import(&messages, &self.inner.options.tagging);
        let rules = self.inner.options.tagging.rules.clone();
        let (ids, seq, messages, digests, tags) = self.insert_directly(move |conn, new_ids| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut ids = Vec::with_capacity(messages.len());
            for ((message, digest), tags) in messages.iter().zip(&digests).zip(&tags) {
                let id = new_ids.take();
                insert_message(&tx, id, message, digest, Indexing::Now)?;
                tag_message(&tx, id, tags)?;
                ids.push(id);
            }
            // Indexed in this transaction, so the rules can run in it too.
            apply_rules(&tx, &rules, &ids)?;
            let seq = commit_change(tx, !ids.is_empty())?;
            Ok((ids, seq, messages, digests, tags))
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

    /// Run `work`, which inserts messages that do not come through the log
    /// (imports, IMAP APPEND), on the materialiser's thread, with ids from the
    /// log ([`writer::Worker::insert_directly`]); it commits its own
    /// transaction. A follower cannot: [`StoreError::Served`].
    fn insert_directly<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection, &mut NewIds) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        match &self.inner.role {
            Role::Owner(materialiser) => {
                let max_size = self.inner.options.max_size;
                materialiser.run_job(move |worker| worker.insert_directly(max_size, work))?
            }
            Role::Follower { dir } => Err(Role::served(dir)),
        }
    }

    /// Run `job` where writes of this process line up: on the materialiser's
    /// thread between two of its transactions, or (a follower) on a pooled
    /// connection.
    fn on_writer<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        match &self.inner.role {
            Role::Owner(materialiser) => materialiser.run_job(move |worker| job(worker.conn()))?,
            Role::Follower { .. } => self.with_connection(job),
        }
    }

    /// Run `work` on a pooled connection once every message acknowledged
    /// before this call has rows: the read-your-writes barrier every read
    /// and change goes through (see the module's documentation).
    pub(crate) fn with_connection<T>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.after(Need::Rows, work)
    }

    /// Whether a search for `query` needs the index: words do, and tag
    /// filters when `--tag` rules exist (they tag a new message in the
    /// transaction that indexes it).
    fn needs_index(&self, query: &SearchQuery) -> Need {
        let rules = !self.inner.options.tagging.rules.is_empty();
        if query.has_words() || (rules && query.has_tag_filters()) {
            Need::Index
        } else {
            Need::Rows
        }
    }

    /// What reads of tags need: the index when `--tag` rules give tags.
    fn tags_need(&self) -> Need {
        if self.inner.options.tagging.rules.is_empty() {
            Need::Rows
        } else {
            Need::Index
        }
    }

    fn after<T>(
        &self,
        need: Need,
        work: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match &self.inner.role {
            Role::Owner(materialiser) => {
                materialiser.wait_for(need)?;
                self.with_pooled(work)
            }
            Role::Follower { dir } => self.with_pooled(|conn| {
                follower::wait_for_owner(conn, dir, need)?;
                work(conn)
            }),
        }
    }

    /// Run `work` on a pooled connection: an idle one, a new one while fewer than
    /// [`MAX_READERS`] are open, or else the next one another caller returns.
    fn with_pooled<T>(
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
    /// Append `message` to the log and resolve once it is durable there, with
    /// its id; its rows are written after. A follower cannot:
    /// [`StoreError::Served`].
    pub(crate) async fn deliver(&self, message: NewMessage) -> Result<MessageId, StoreError> {
        let materialiser = match &self.inner.role {
            Role::Owner(materialiser) => materialiser,
            Role::Follower { dir } => return Err(Role::served(dir)),
        };
        let bytes = message.raw.len();
        let appended = materialiser.log().append(message).await;
        match &appended {
            Ok(_) => materialiser.shared().accepted(bytes),
            Err(_) => materialiser.shared().failed(),
        }
        appended
    }
}

/// Open the store at `path` for the first time in this process: the schema,
/// the disk reserve, and the log, as its owner or as a follower.
fn open_inner(
    path: &Path,
    options: StoreOptions,
    registration: Registration,
) -> Result<Inner, StoreError> {
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
    let (events, _) = broadcast::channel(EVENT_CAPACITY);
    let announcer = Announcer::new(Arc::new(ChangeLog::default()), events);
    let mut readers = ReaderPool::default();
    let counters = Arc::new(StoreCounters::default());
    let role = match open_log(path, conn, &options, &announcer, &counters)? {
        Opened::Owner(materialiser) => Role::Owner(materialiser),
        Opened::Follower(dir, conn) => {
            // The connection that migrated serves reads.
            readers.idle.push(conn);
            readers.open = 1;
            Role::Follower { dir }
        }
    };
    Ok(Inner {
        path: path.to_path_buf(),
        options,
        readers: Mutex::new(readers),
        reader_freed: Condvar::new(),
        announcer,
        watcher: Mutex::new(None),
        reserve,
        role,
        deleted: AtomicU64::new(0),
        counters,
        _registration: registration,
    })
}

/// What [`open_log`] found.
enum Opened {
    Owner(Materialiser),
    /// Another process owns the log in this directory; the connection is
    /// given back.
    Follower(PathBuf, Connection),
}

/// Take the log of the store at `path` and start materialising it on `conn`,
/// or, if another process owns it, follow (or fail, as `options.ownership`
/// says).
fn open_log(
    path: &Path,
    conn: Connection,
    options: &StoreOptions,
    announcer: &Announcer,
    counters: &Arc<StoreCounters>,
) -> Result<Opened, StoreError> {
    let position = stored_position(&conn)?;
    let next_id = next_id(&conn)?;
    let store_id = log_id(&conn)?;
    let dir = log::dir_for(path);
    let shared = Arc::new(Shared::new(position));
    let poked = Arc::clone(&shared);
    let log_options = LogOptions {
        segment_size: LogOptions::SEGMENT_SIZE,
        max_batch: options.max_batch.max(1),
        max_lag_bytes: LogOptions::MAX_LAG_BYTES,
        admit: admission(path, options.max_size, &shared),
        on_synced: Box::new(move |at| poked.synced(at)),
        fail_syncs: Vec::new(),
        store_id,
        counters: Arc::clone(counters),
    };
    let wait = match options.ownership {
        Ownership::IfFree => Duration::ZERO,
        Ownership::Required(wait) => wait,
    };
    match Log::open(&dir, position, next_id, wait, log_options)? {
        Some(log) => {
            // Where an earlier owner took mail is not where this one does.
            log::remove_smtp_record(&dir)
                .map_err(|error| StoreError::io("removing the SMTP addresses in", &dir, error))?;
            let setup = Setup {
                position,
                announcer: announcer.clone(),
                tagging: options.tagging.clone(),
            };
            let materialiser = Materialiser::spawn(path, conn, Arc::new(log), shared, setup)?;
            Ok(Opened::Owner(materialiser))
        }
        None => match options.ownership {
            Ownership::Required(_) => Err(Role::served(&dir)),
            Ownership::IfFree => Ok(Opened::Follower(dir, conn)),
        },
    }
}

/// The id that ties the store's log to this database file (schema 9).
pub(super) fn log_id(conn: &Connection) -> rusqlite::Result<u64> {
    conn.query_row("SELECT log_id FROM store_state", [], |row| {
        row.get::<_, i64>(0)
    })
    .map(|id| id as u64)
}

/// The lowest id the log may give: above every id SQLite has ever given
/// (deleted ones too: ids are never reused, they are POP3 and IMAP UIDs).
fn next_id(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'messages'), 0),
                    coalesce((SELECT max(id) FROM messages), 0)) + 1",
        [],
        |row| row.get(0),
    )
}

/// What the log asks before each batch: whether the materialiser still runs
/// (else nobody would write the batch's rows), and whether the store's size
/// limit (`max_size`) leaves room for it. It is applied at the log, not to the
/// rows, because a message acknowledged must never fail to materialise for
/// want of room: the database's pages in use (free pages inside the file,
/// left by deletes, are room) plus what the messages acknowledged but not
/// yet materialised will take plus the batch must fit.
fn admission(
    path: &Path,
    max_size: Option<u64>,
    shared: &Arc<Shared>,
) -> Box<dyn Fn(u64) -> Result<(), StoreError> + Send + Sync> {
    let (path, shared) = (path.to_path_buf(), Arc::clone(shared));
    // Opened at the first batch, so that a store that never takes mail
    // (a follower) does not open it.
    let conn: Mutex<Option<Connection>> = Mutex::new(None);
    Box::new(move |batch| {
        if shared.is_broken() {
            return Err(StoreError::unavailable(
                "the mail store stopped writing the rows of new messages; restart sokkel",
            ));
        }
        disk_admits(&path, &shared, batch)?;
        let Some(max_size) = max_size else {
            return Ok(());
        };
        let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
        if conn.is_none() {
            *conn = Some(open_connection(&path, false)?);
        }
        let fits = || -> Result<bool, StoreError> {
            let used = conn.as_ref().map_or(Ok(0), pages_in_use)?;
            Ok(used + shared.pending_room() + batch <= max_size)
        };
        if fits()? {
            return Ok(());
        }
        // Near the limit the estimate is not good enough: have the rows
        // written, and count the pages.
        if shared.pending_room() > 0 && shared.wait_for_rows(ADMISSION_WAIT).is_ok() && fits()? {
            return Ok(());
        }
        Err(StoreError::Full)
    })
}

/// Whether the disk under the store at `path` has room for the rows of a
/// batch of `batch` bytes beside those of what is acknowledged but not yet
/// written: an acknowledged message must never fail to get its rows for want
/// of disk. Rows take about twice the message (the WAL, then the database
/// file), plus [`DISK_MARGIN`]. The disk reserve is a file already written,
/// so it is not counted as free: it stays for deletes.
fn disk_admits(path: &Path, shared: &Shared, batch: u64) -> Result<(), StoreError> {
    let need = || {
        shared
            .pending_room()
            .saturating_add(batch.saturating_mul(2))
            .saturating_mul(2)
            .saturating_add(DISK_MARGIN)
    };
    let dir = path.parent().filter(|dir| !dir.as_os_str().is_empty());
    let free_bytes = || {
        rustix::fs::statvfs(dir.unwrap_or(Path::new(".")))
            .ok()
            .map(|stat| stat.f_bavail.saturating_mul(stat.f_frsize))
    };
    match free_bytes() {
        Some(free) if free < need() => {
            // What is pending takes its room as it is written; then look again.
            if shared.pending_room() > 0 {
                let _ = shared.wait_for_rows(ADMISSION_WAIT);
            }
            match free_bytes() {
                Some(free) if free < need() => Err(StoreError::Full),
                _ => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

/// Room the disk keeps free beyond what the rows need (4 MiB).
const DISK_MARGIN: u64 = 4 << 20;

/// How long the log's admission waits for the rows of what is acknowledged
/// before it decides on a batch near the size limit.
const ADMISSION_WAIT: Duration = Duration::from_secs(1);

/// The bytes of the database's pages that hold something (not free ones).
fn pages_in_use(conn: &Connection) -> Result<u64, StoreError> {
    let (size, pages, free): (i64, i64, i64) = conn.query_row(
        "SELECT page_size, page_count, freelist_count
         FROM pragma_page_size(), pragma_page_count(), pragma_freelist_count()",
        [],
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
    )?;
    Ok((size.max(0) as u64) * (pages - free).max(0) as u64)
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
