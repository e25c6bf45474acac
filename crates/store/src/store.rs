//! The [`Store`] handle: opening the file, delivering, and every query.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::types::{Type, Value};
use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior, params, params_from_iter,
};
use tokio::sync::broadcast;

use crate::changes::{ChangeLog, Watcher};
use crate::mime::{self, Digest};
use crate::reserve::{RESERVE_BYTES, Reserve};
use crate::search::SqlParts;
use crate::writer::Writer;
use crate::{
    Address, Deliver, Envelope, ListQuery, MessageId, NewMessage, SUMMARY_TEXT_BYTES, SearchPage,
    SearchQuery, StoreError, StoredMessage, Summary, TlsInfo, paths, schema, summary,
};

/// How long any connection waits for another one (in this process or another) to
/// release the write lock before giving up with [`StoreError::Busy`].
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections for queries and deletes, opened on demand and kept for reuse. More
/// callers than this wait for one to come free: every connection has its own page
/// cache, so an unbounded number under load (the web API hit by many clients) costs
/// memory, and a fresh connection starts with a cold cache anyway.
const MAX_READERS: usize = 8;

/// Messages bigger than this are parsed on tokio's blocking pool instead of the
/// async worker that delivers them, so one huge message cannot stall other
/// sessions.
const INLINE_PARSE_LIMIT: usize = 256 << 10;

/// A delete of many messages commits this many at a time, so that one
/// transaction's WAL fits the disk reserve on a full disk with room to spare:
/// 256 deletes spread over a store of 20,000 messages (every message on pages of
/// its own) wrote 3.4 MiB of WAL, 256 neighbours 173 KiB. Deleting 100,000 by id
/// costs some 800 commits.
const DELETE_BATCH: usize = 128;

/// How long the clean-up after emptying the store waits for other connections
/// (readers finishing, the writer committing) before it gives up for this time.
const COMPACT_BUSY_TIMEOUT: Duration = Duration::from_secs(1);

/// How many events a slow subscriber may fall behind before it sees
/// `RecvError::Lagged` and should reload.
const EVENT_CAPACITY: usize = 1024;

/// Messages stored before the search index existed are indexed this many at a
/// time (or [`BACKFILL_BATCH_BYTES`]), one transaction each, so other processes
/// get the write lock in between.
const BACKFILL_BATCH: usize = 256;
const BACKFILL_BATCH_BYTES: usize = 16 << 20;

/// How [`Store::open`] sets up the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// The most the database may grow to, in bytes (rounded down to whole pages;
    /// the WAL file comes on top). A delivery that would exceed it fails with
    /// [`StoreError::Full`] until messages are deleted. `None` means only the disk
    /// limits it.
    pub max_size: Option<u64>,
    /// The most messages one group commit writes. Default 256.
    pub max_batch: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_size: None,
            max_batch: 256,
        }
    }
}

/// How many messages the store holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MessageCounts {
    /// All messages.
    pub total: u64,
    /// Messages not marked read.
    pub unread: u64,
}

/// What the group-commit writer has done since the store was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Transactions committed.
    pub transactions: u64,
    /// Messages those transactions stored; over `transactions`, the batch size.
    pub messages: u64,
    /// Transactions that failed and were rolled back.
    pub failed_transactions: u64,
}

/// A change to the store, announced to subscribers ([`Store::subscribe`]) after it
/// is committed. Changes made through this process's handles are announced one by
/// one; changes by other processes (the CLI deleting while a server runs) as
/// [`StoreEvent::Changed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreEvent {
    /// A message was delivered (or imported). Shared, because every subscriber
    /// receives its own clone of the event.
    New(Arc<Summary>),
    /// These messages were deleted.
    Deleted(Vec<MessageId>),
    /// Every message was deleted.
    DeletedAll,
    /// These messages were marked read (`true`) or unread (`false`).
    ReadChanged(Vec<MessageId>, bool),
    /// Another process changed the store (delivered, deleted, marked messages):
    /// whatever a subscriber shows may be stale, so it should query again. Sent
    /// within about a second of the other process's commit.
    Changed,
}

/// The mail store: a cheap `Clone` handle to one SQLite file.
///
/// Deliveries go through [`Deliver::deliver`] to the writer thread. Queries and
/// deletes are synchronous and block on SQLite: from async code, call them inside
/// `tokio::task::spawn_blocking`. Several processes may open the same file at
/// once (the server writing, the CLI listing and deleting).
///
/// A full store can always be emptied. The size limit
/// ([`StoreOptions::max_size`]) holds new messages only: deletes run on
/// connections without it. On a full disk, the store keeps a few MiB of it in a
/// reserve file next to the database (`mail.db-reserve`) that deletes give back
/// to the disk when they would otherwise fail, and a delete then proceeds in
/// small transactions that reuse the same WAL blocks. What deleting gives back:
/// deleted messages' pages are free inside the file for new mail at once (the
/// file keeps its size); once a delete leaves the store empty, the file and its
/// WAL shrink to almost nothing and the disk gets the space back.
#[derive(Clone)]
pub struct Store {
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
    events: broadcast::Sender<StoreEvent>,
    changes: Arc<ChangeLog>,
    /// Started by the first [`Store::subscribe`]; stops when the last handle drops.
    watcher: Mutex<Option<Watcher>>,
    /// Disk the store keeps for deleting on a full disk.
    reserve: Reserve,
    writer: Writer,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Open the store at `path`, creating the file and its parent directories if
    /// needed and bringing the schema up to date, and start its writer thread.
    ///
    /// Blocks on file I/O: from async code, call it inside `spawn_blocking`.
    pub fn open(path: &Path, options: StoreOptions) -> Result<Store, StoreError> {
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
        let changes = Arc::new(ChangeLog::default());
        let writer = Writer::spawn(
            path,
            conn,
            options.max_batch,
            events.clone(),
            Arc::clone(&changes),
        )?;
        Ok(Store {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                options,
                readers: Mutex::new(ReaderPool::default()),
                reader_freed: Condvar::new(),
                events,
                changes,
                watcher: Mutex::new(None),
                reserve,
                writer,
            }),
        })
    }

    /// The default location of the store: `sokkel/mail.db` under the per-user data
    /// directory (`$XDG_DATA_HOME`, else `~/.local/share`, on Linux and other Unix;
    /// `~/Library/Application Support` on macOS; `%APPDATA%` on Windows). `None` if
    /// the environment does not say where that is.
    pub fn default_path() -> Option<PathBuf> {
        paths::default_path_from(|name| std::env::var_os(name))
    }

    /// The path the store was opened at.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// A page of message summaries, newest first.
    /// Each summary is bounded as the `summary` module says (at most
    /// [`crate::SUMMARY_ADDRESSES`] addresses per field, with their counts).
    pub fn list(&self, query: &ListQuery) -> Result<Vec<Summary>, StoreError> {
        self.with_connection(|conn| Ok(page_matching(conn, &SqlParts::default(), query)?))
    }

    /// A page of the messages that match `query`, newest first, and how many match
    /// in all. An empty query matches every message. Count and page come from one
    /// read transaction, so they agree.
    pub fn search(&self, query: &SearchQuery, page: &ListQuery) -> Result<SearchPage, StoreError> {
        let parts = query.to_sql();
        self.with_connection(|conn| {
            let tx = conn.transaction()?;
            let matches = count_matching(&tx, &parts)?;
            let messages = page_matching(&tx, &parts, page)?;
            tx.commit()?;
            Ok(SearchPage { matches, messages })
        })
    }

    /// Delete every message that matches `query`; returns how many. Announced as
    /// [`StoreEvent::Deleted`] with their ids. An empty query matches every
    /// message, as in [`Store::search`], so it deletes them all: a caller taking a
    /// query from a user should refuse an empty one.
    ///
    /// The matches are looked up first and then deleted as [`Store::delete`]
    /// deletes, so this works on a full store too.
    pub fn delete_matching(&self, query: &SearchQuery) -> Result<u64, StoreError> {
        let parts = query.to_sql();
        let ids = self.with_connection(|conn| Ok(ids_matching(conn, &parts)?))?;
        self.delete(&ids)
    }

    /// How many messages there are, and how many of them are unread.
    pub fn count(&self) -> Result<MessageCounts, StoreError> {
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

    /// One message: summary, envelope and raw bytes. `None` if there is no such
    /// message (any more).
    pub fn get(&self, id: MessageId) -> Result<Option<StoredMessage>, StoreError> {
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

    /// The id of the newest message, if there is any.
    pub fn latest(&self) -> Result<Option<MessageId>, StoreError> {
        self.with_connection(|conn| {
            let id: Option<i64> =
                conn.query_row("SELECT max(id) FROM messages", [], |row| row.get(0))?;
            Ok(id.map(MessageId))
        })
    }

    /// The raw bytes of one message, exactly as received.
    pub fn raw(&self, id: MessageId) -> Result<Option<Vec<u8>>, StoreError> {
        self.with_connection(|conn| {
            Ok(conn
                .prepare_cached("SELECT data FROM raw WHERE id = ?1")?
                .query_row([id.0], |row| row.get(0))
                .optional()?)
        })
    }

    /// Delete these messages; returns how many existed and were deleted.
    ///
    /// Deleting works on a full store: the size limit holds new messages only,
    /// and on a full disk the store gives up its disk reserve to make room (see
    /// [`Store`]). The ids are deleted 128 at a time, each batch in a
    /// transaction of its own, announced as [`StoreEvent::Deleted`] once
    /// committed, so that what one transaction writes stays small; an error stops
    /// the delete with the batches before it done.
    pub fn delete(&self, ids: &[MessageId]) -> Result<u64, StoreError> {
        let mut room = Room::default();
        let mut count = 0;
        for batch in unique(ids).chunks(DELETE_BATCH) {
            count += self.delete_batch(batch, &mut room)?;
        }
        self.after_delete(count);
        Ok(count)
    }

    /// Delete every message; returns how many there were. Ids are still never
    /// reused afterwards. Once the store is empty, the space its file took goes
    /// back to the disk.
    pub fn delete_all(&self) -> Result<u64, StoreError> {
        let mut room = Room::default();
        let all = self.with_room(&mut room, |conn, _tight| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            // Emptying `raw` first spares the cascade a lookup per message, and
            // emptying the index first leaves the trigger nothing to look up.
            tx.execute("DELETE FROM raw", [])?;
            tx.execute("INSERT INTO search (search) VALUES ('delete-all')", [])?;
            let deleted = tx.execute("DELETE FROM messages", [])?;
            let seq = next_seq_if(&tx, deleted > 0)?;
            tx.commit()?;
            Ok((deleted as u64, seq))
        });
        let deleted = match all {
            Ok((deleted, seq)) => {
                self.inner.changes.committed_if(seq);
                if deleted > 0 {
                    let _ = self.inner.events.send(StoreEvent::DeletedAll);
                }
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
                    count += self.delete_batch(batch, &mut room)?;
                }
                count
            }
            Err(error) => return Err(error),
        };
        self.after_delete(deleted);
        Ok(deleted)
    }

    /// Delete the messages `ids` (no repeats) in one transaction and announce
    /// those that existed; returns how many did.
    fn delete_batch(&self, ids: &[MessageId], room: &mut Room) -> Result<u64, StoreError> {
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
            let seq = next_seq_if(&tx, !deleted.is_empty())?;
            tx.commit()?;
            Ok((deleted, seq))
        })?;
        self.inner.changes.committed_if(seq);
        let count = deleted.len() as u64;
        if !deleted.is_empty() {
            let _ = self.inner.events.send(StoreEvent::Deleted(deleted));
        }
        Ok(count)
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

    /// Mark these messages read or unread; returns how many of them exist.
    pub fn set_read(&self, ids: &[MessageId], read: bool) -> Result<u64, StoreError> {
        let changed = self.with_connection(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut changed = Vec::new();
            {
                let mut statement =
                    tx.prepare_cached("UPDATE messages SET read = ?2 WHERE id = ?1")?;
                for id in unique(ids) {
                    if statement.execute(params![id.0, read])? > 0 {
                        changed.push(id);
                    }
                }
            }
            let seq = next_seq_if(&tx, !changed.is_empty())?;
            tx.commit()?;
            Ok((changed, seq))
        });
        let (changed, seq) = changed?;
        self.inner.changes.committed_if(seq);
        let count = changed.len() as u64;
        if !changed.is_empty() {
            let _ = self
                .inner
                .events
                .send(StoreEvent::ReadChanged(changed, read));
        }
        Ok(count)
    }

    /// Announcements of changes, sent after they are committed: each change made
    /// through this process's handles, and [`StoreEvent::Changed`] when another
    /// process changed the file. Events sent while nobody subscribes are dropped.
    ///
    /// The first call starts a thread that watches the file for other processes'
    /// changes (a cheap poll a few times a second); it stops when the last handle
    /// to this store drops.
    pub fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        let receiver = self.inner.events.subscribe();
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
                    Arc::clone(&self.inner.changes),
                    self.inner.events.clone(),
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

    /// What the group-commit writer has done since this store was opened.
    pub fn writer_stats(&self) -> WriterStats {
        self.inner.writer.stats()
    }

    /// Store `messages` in one transaction, bypassing the writer thread, and return
    /// their ids in order. Meant for bulk loads (importing a mailbox, seeding a
    /// benchmark), not for SMTP: call it with chunks of a few thousand messages,
    /// since the whole chunk is parsed, held and written at once. Blocks.
    pub fn import(&self, messages: Vec<NewMessage>) -> Result<Vec<MessageId>, StoreError> {
        let digests: Vec<Digest> = messages
            .iter()
            .map(|message| mime::digest(&message.raw))
            .collect();
        let (ids, seq) = self.with_connection(|conn| {
            // New messages, so held to the size limit, which pooled connections
            // otherwise do not have (deletes must not fail for want of a page).
            cap_pages(conn, self.inner.options.max_size)?;
            let imported = (|| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let ids = messages
                    .iter()
                    .zip(&digests)
                    .map(|(message, digest)| insert_message(&tx, message, digest, Indexing::Now))
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                let seq = next_seq_if(&tx, !ids.is_empty())?;
                tx.commit()?;
                Ok((ids, seq))
            })();
            cap_pages(conn, None)?;
            imported
        })?;
        self.inner.changes.committed_if(seq);
        if self.inner.events.receiver_count() > 0 {
            for ((id, message), digest) in ids.iter().zip(&messages).zip(digests) {
                let _ = self
                    .inner
                    .events
                    .send(StoreEvent::New(Arc::new(summary_of(*id, message, digest))));
            }
        }
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
        struct Lent<'a>(&'a Store, Option<Connection>);
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

    /// The messages a POP3 login sees, oldest first, with their sizes in bytes.
    /// POP3 numbers them 1..n in this order; the id is the message's UID.
    ///
    /// `None` lists every message. `Some(recipient)` lists only messages with that
    /// address among their envelope recipients, compared without regard to case:
    /// an address with an `@` must match a recipient whole; a bare name without an
    /// `@` (a login such as `morty`) matches every recipient with that local part,
    /// whatever its domain, since a catcher sees mail for domains it does not own.
    pub fn maildrop(&self, recipient: Option<&str>) -> Result<Vec<(MessageId, u64)>, StoreError> {
        self.with_connection(|conn| {
            let Some(recipient) = recipient else {
                let mut statement =
                    conn.prepare_cached("SELECT id, size FROM messages ORDER BY id")?;
                let rows = statement.query_map([], |row| {
                    Ok((MessageId(row.get(0)?), row.get::<_, i64>(1)? as u64))
                })?;
                return Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?);
            };
            let wanted = recipient.to_lowercase();
            let mut statement =
                conn.prepare_cached("SELECT id, size, rcpt_to FROM messages ORDER BY id")?;
            let mut rows = statement.query([])?;
            let mut drop = Vec::new();
            while let Some(row) = rows.next()? {
                let rcpt_to: Vec<String> = from_json(row, 2)?;
                if rcpt_to.iter().any(|to| recipient_matches(to, &wanted)) {
                    drop.push((MessageId(row.get(0)?), row.get::<_, i64>(1)? as u64));
                }
            }
            Ok(drop)
        })
    }
}

/// Parses the message for its summary (on tokio's blocking pool if it is large,
/// so this must run inside a tokio runtime), queues it for the writer thread, and
/// resolves once the group commit that holds it has returned.
impl Deliver for Store {
    async fn deliver(&self, message: NewMessage) -> Result<MessageId, StoreError> {
        let (message, digest) = if message.raw.len() > INLINE_PARSE_LIMIT {
            tokio::task::spawn_blocking(move || {
                let digest = mime::digest(&message.raw);
                (message, digest)
            })
            .await
            .map_err(|_| StoreError::Closed)?
        } else {
            let digest = mime::digest(&message.raw);
            (message, digest)
        };
        self.inner.writer.submit(message, digest).await
    }
}

/// Open the connection the writer thread will own, bringing the schema up to date
/// and indexing what an earlier process left unindexed.
fn open_writer_connection(path: &Path, created: bool) -> Result<Connection, StoreError> {
    let mut conn = open_connection(path, true)?;
    // WAL lets readers in other processes work while the writer commits, and
    // with synchronous=FULL a returned COMMIT has been fsynced.
    let journal_mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !journal_mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(
            path = %path.display(),
            journal_mode,
            "the mail store could not switch to WAL mode; readers will wait for writers"
        );
    }
    schema::migrate(&mut conn)?;
    if created {
        sync_parent_dir(path);
    }
    index_older_messages(&mut conn)?;
    // Best effort: a store at its size limit must still open (to be read and
    // emptied) even if there is no room for the index rows.
    if let Err(error) = index_unindexed(&mut conn) {
        tracing::warn!(%error, "could not index every stored message for search");
    }
    Ok(conn)
}

/// Open one connection with the settings every connection needs: the busy
/// timeout, full sync on commit (a per-connection setting in SQLite), foreign keys
/// for the `raw` cascade, and the WAL size limit. The store's size limit is not
/// among them: only connections that add messages get it ([`cap_pages`]).
fn open_connection(path: &Path, create: bool) -> Result<Connection, StoreError> {
    // No SQLITE_OPEN_URI: the path is a path, even if it starts with "file:".
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    // Whichever connection checkpoints truncates the WAL file to this afterwards,
    // so it does not stay at its high-water mark after a big batch.
    conn.pragma_update(None, "journal_size_limit", 64_i64 << 20)?;
    Ok(conn)
}

/// SQLite's own ceiling on a database's pages, which `max_page_count` is reset
/// to when a connection is to write without the store's limit.
const SQLITE_MAX_PAGE_COUNT: i64 = 0xffff_fffe;

/// Hold `conn` to the store's size limit (`PRAGMA max_page_count`), or lift the
/// limit with `None`. Only the connections that add messages are held to it;
/// SQLite keeps a limit below the file's current size at that size.
fn cap_pages(conn: &Connection, max_size: Option<u64>) -> rusqlite::Result<()> {
    let pages = match max_size {
        Some(max_size) => {
            let page_size: i64 = conn.pragma_query_value(None, "page_size", |row| row.get(0))?;
            to_i64((max_size / page_size.max(1) as u64).max(1))
        }
        None => SQLITE_MAX_PAGE_COUNT,
    };
    conn.pragma_update(None, "max_page_count", pages)
}

/// FTS5's default `deletemerge` (SQLite's `FTS5_DEFAULT_DELETE_AUTOMERGE`), which
/// [`set_delete_merge`] puts back.
const FTS5_DELETE_MERGE: i64 = 10;

/// Set the share (in percent) of deleted rows at which FTS5 rewrites a level of
/// the search index, 0 for never. Setting it first writes out what the index
/// holds in memory, under the setting before.
fn set_delete_merge(conn: &Connection, percent: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT INTO search (search, rank) VALUES ('deletemerge', ?1)")?
        .execute([percent])?;
    Ok(())
}

/// Whether a delete has had to make room on a full disk (see [`Store::delete`]).
#[derive(Debug, Default)]
struct Room {
    tight: bool,
}

/// Copy what the WAL holds into the database and have the next transaction
/// write the WAL from its beginning again, so it reuses blocks it already has.
/// Best effort: readers still on old pages make it wait up to the busy timeout
/// and then leave the WAL as it is.
fn restart_wal(conn: &Connection) {
    match conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |row| {
        row.get::<_, i64>(0)
    }) {
        Ok(0) => {}
        Ok(_) => tracing::debug!("the mail store's WAL could not start over: readers are busy"),
        Err(error) => tracing::debug!(%error, "checkpointing the mail store's WAL failed"),
    }
}

/// Give an empty store's space back to the disk: fold the WAL into the database
/// and truncate it, rebuild the file (`VACUUM`: cheap, there are no messages to
/// copy; the schema, the id counter and the settings stay), and truncate again so
/// the smaller file is what stays. The rebuild happens in memory, so it needs no
/// temporary file on a disk that may be full.
fn compact(conn: &Connection) {
    let steps = || -> rusqlite::Result<()> {
        conn.busy_timeout(COMPACT_BUSY_TIMEOUT)?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        let vacuumed = conn.execute_batch("VACUUM");
        conn.pragma_update(None, "temp_store", "DEFAULT")?;
        vacuumed?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    };
    let result = steps();
    if let Err(error) = conn.busy_timeout(BUSY_TIMEOUT).and(result) {
        tracing::debug!(%error, "could not give the emptied mail store's space back to the disk");
    }
}

fn warn_reserve_released(path: &Path) {
    tracing::warn!(
        path = %path.display(),
        reserve_mib = RESERVE_BYTES >> 20,
        "the disk holding the mail store is full; released its disk reserve so that messages can be deleted"
    );
}

/// The columns [`summary_from_row`] reads, in its order, from `messages AS m`.
const SUMMARY_COLUMNS: &str = "m.id, m.received_at, m.mail_from, m.rcpt_to, m.from_name, \
    m.from_addr, m.to_list, m.cc_list, m.reply_to_list, m.subject, m.date, m.message_id, \
    m.size, m.attachments, m.snippet, m.read, m.bare_lf, m.parsed, m.to_count, m.cc_count, \
    m.reply_to_count";
const SUMMARY_COLUMN_COUNT: usize = 21;

const INSERT_MESSAGE: &str = "INSERT INTO messages (
        received_at, mail_from, rcpt_to, helo, client_addr, bare_lf, smtputf8,
        tls_version, tls_cipher, auth_user, size, parsed, subject, from_name, from_addr,
        to_list, cc_list, reply_to_list, date, message_id, attachments, snippet,
        to_count, cc_count, reply_to_count
    ) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
        ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25)";

/// When a new message goes into the search index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Indexing {
    /// In the same transaction (bulk imports).
    Now,
    /// Later, by the writer thread in a batch of its own ([`index_pending`]); until
    /// then the message's id waits in the `unindexed` table, so a crash in between
    /// only delays its indexing to the next open.
    Deferred,
}

/// Insert one message and its bytes; the caller owns the transaction.
pub(crate) fn insert_message(
    conn: &Connection,
    message: &NewMessage,
    digest: &Digest,
    indexing: Indexing,
) -> rusqlite::Result<MessageId> {
    let envelope = &message.envelope;
    let from = digest.from.as_ref();
    // At most SUMMARY_ADDRESSES per list, and the count only when it says more
    // (schema migration 5).
    let (to, to_count) = summary::stored_list(&digest.to);
    let (cc, cc_count) = summary::stored_list(&digest.cc);
    let (reply_to, reply_to_count) = summary::stored_list(&digest.reply_to);
    let count_if_cut =
        |list: &[Address], count: u64| (count > list.len() as u64).then_some(to_i64(count));
    conn.prepare_cached(INSERT_MESSAGE)?.execute(params![
        to_millis(message.received_at),
        envelope.mail_from,
        to_json(&envelope.rcpt_to)?,
        envelope.helo,
        envelope.client_addr.to_string(),
        envelope.bare_lf,
        envelope.smtputf8,
        envelope.tls.as_ref().map(|tls| &tls.version),
        envelope.tls.as_ref().map(|tls| &tls.cipher),
        envelope.auth_user,
        to_i64(message.raw.len()),
        digest.parsed,
        digest.subject,
        from.map(|from| &from.name),
        from.map(|from| &from.address),
        to_json(&to)?,
        to_json(&cc)?,
        to_json(&reply_to)?,
        digest.date,
        digest.message_id,
        digest.attachments,
        digest.snippet,
        count_if_cut(&to, to_count),
        count_if_cut(&cc, cc_count),
        count_if_cut(&reply_to, reply_to_count),
    ])?;
    let id = conn.last_insert_rowid();
    conn.prepare_cached("INSERT INTO raw (id, data) VALUES (?1, ?2)")?
        .execute(params![id, message.raw])?;
    match indexing {
        Indexing::Now => {
            let text = IndexText::new(&envelope.mail_from, &envelope.rcpt_to, digest);
            index_message(conn, id, &text)?;
        }
        Indexing::Deferred => {
            conn.prepare_cached("INSERT INTO unindexed (id) VALUES (?1)")?
                .execute([id])?;
        }
    }
    Ok(MessageId(id))
}

/// What the search index gets of one message, column by column.
#[derive(Debug, Clone, Default)]
pub(crate) struct IndexText {
    subject: String,
    sender: String,
    recipients: String,
    body: String,
}

impl IndexText {
    pub(crate) fn new(mail_from: &str, rcpt_to: &[String], digest: &Digest) -> IndexText {
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
    pub(crate) fn len(&self) -> usize {
        self.subject.len() + self.sender.len() + self.recipients.len() + self.body.len()
    }
}

/// Add message `id` to the search index; the caller owns the transaction.
fn index_message(conn: &Connection, id: i64, text: &IndexText) -> rusqlite::Result<()> {
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
pub(crate) fn index_pending(
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
fn index_unindexed(conn: &mut Connection) -> Result<(), StoreError> {
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

fn push_addresses<'a>(text: &mut String, addresses: impl Iterator<Item = &'a Address>) {
    for address in addresses {
        text.push_str(&address.name);
        text.push(' ');
        text.push_str(&address.address);
        text.push(' ');
    }
}

/// Give the change in `conn`'s open write transaction its number, if it changed
/// anything.
pub(crate) fn next_seq_if(conn: &Connection, changed: bool) -> rusqlite::Result<Option<i64>> {
    changed.then(|| ChangeLog::next_seq(conn)).transpose()
}

/// Index the messages stored before the search index existed (a store from a
/// build without it), newest first, in batches of their own transactions. Two
/// processes opening the file at once share the work rather than repeat it.
fn index_older_messages(conn: &mut Connection) -> Result<(), StoreError> {
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

fn unindexed_below(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT unindexed_below FROM store_state")?
        .query_row([], |row| row.get(0))
}

/// `WHERE` clauses and their parameters for the messages that match `parts`,
/// below `before`. With words to look up, the query is driven by the `search`
/// table, aliased so, joined to `messages AS m`.
fn matching_clauses(parts: &SqlParts, before: Option<MessageId>) -> (Vec<String>, Vec<Value>) {
    let mut clauses = Vec::new();
    let mut params = Vec::new();
    if let Some(expression) = &parts.fts_match {
        clauses.push("search MATCH ?".to_string());
        params.push(Value::Text(expression.clone()));
    }
    if let Some(before) = before {
        // On the FTS table's rowid, FTS5 seeks to the cursor itself.
        let column = if parts.fts_match.is_some() {
            "search.rowid"
        } else {
            "m.id"
        };
        clauses.push(format!("{column} < ?"));
        params.push(Value::Integer(before.0));
    }
    clauses.extend(parts.conditions.iter().cloned());
    params.extend(parts.params.iter().cloned());
    if clauses.is_empty() {
        clauses.push("1".into());
    }
    (clauses, params)
}

/// The `FROM` part: the FTS table first when there are words, so that FTS5 walks
/// its matches newest first and the `LIMIT` stops it early.
fn matching_from(parts: &SqlParts) -> &'static str {
    if parts.fts_match.is_some() {
        "search CROSS JOIN messages AS m ON m.id = search.rowid"
    } else {
        "messages AS m"
    }
}

fn order_column(parts: &SqlParts) -> &'static str {
    if parts.fts_match.is_some() {
        "search.rowid"
    } else {
        "m.id"
    }
}

fn page_matching(
    conn: &Connection,
    parts: &SqlParts,
    page: &ListQuery,
) -> rusqlite::Result<Vec<Summary>> {
    let (clauses, mut params) = matching_clauses(parts, page.before);
    params.push(Value::Integer(to_i64(page.limit)));
    params.push(Value::Integer(to_i64(page.offset)));
    let sql = format!(
        "SELECT {SUMMARY_COLUMNS} FROM {} WHERE {} ORDER BY {} DESC LIMIT ? OFFSET ?",
        matching_from(parts),
        clauses.join(" AND "),
        order_column(parts),
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement.query_map(params_from_iter(params), listed_summary_from_row)?;
    rows.collect()
}

fn count_matching(conn: &Connection, parts: &SqlParts) -> rusqlite::Result<u64> {
    let (clauses, params) = matching_clauses(parts, None);
    // Every message has exactly one index row, so words alone are counted in the
    // index without touching `messages`.
    let from = if parts.conditions.is_empty() && parts.fts_match.is_some() {
        "search"
    } else {
        matching_from(parts)
    };
    let sql = format!(
        "SELECT count(*) FROM {from} WHERE {}",
        clauses.join(" AND ")
    );
    let count: i64 = conn
        .prepare_cached(&sql)?
        .query_row(params_from_iter(params), |row| row.get(0))?;
    Ok(count as u64)
}

fn ids_matching(conn: &Connection, parts: &SqlParts) -> rusqlite::Result<Vec<MessageId>> {
    let (clauses, params) = matching_clauses(parts, None);
    let sql = format!(
        "SELECT m.id FROM {} WHERE {} ORDER BY m.id",
        matching_from(parts),
        clauses.join(" AND "),
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let ids = statement.query_map(params_from_iter(params), |row| row.get(0).map(MessageId))?;
    ids.collect()
}

/// The summary a list would show for `message` once stored as `id`, bounded as
/// a listed summary is.
pub(crate) fn summary_of(id: MessageId, message: &NewMessage, digest: Digest) -> Summary {
    let listed = |list: &[Address]| {
        let (stored, count) = summary::stored_list(list);
        (summary::listed(stored), count)
    };
    let (to, to_count) = listed(&digest.to);
    let (cc, cc_count) = listed(&digest.cc);
    let (reply_to, reply_to_count) = listed(&digest.reply_to);
    Summary {
        id,
        // Stored with millisecond precision; announce what a reader will read.
        received_at: from_millis(to_millis(message.received_at)),
        mail_from: message.envelope.mail_from.clone(),
        rcpt_to: summary::listed_recipients(message.envelope.rcpt_to.clone()),
        from: digest.from.map(listed_from),
        to,
        to_count,
        cc,
        cc_count,
        reply_to,
        reply_to_count,
        subject: summary::cut_string(digest.subject, SUMMARY_TEXT_BYTES),
        date: digest.date,
        message_id: digest
            .message_id
            .map(|id| summary::cut_string(id, SUMMARY_TEXT_BYTES)),
        size: message.raw.len() as u64,
        attachments: digest.attachments,
        snippet: digest.snippet,
        read: false,
        bare_lf: message.envelope.bare_lf,
        parsed: digest.parsed,
    }
}

fn listed_from(from: Address) -> Address {
    Address {
        name: summary::cut_string(from.name, SUMMARY_TEXT_BYTES),
        address: summary::cut_string(from.address, SUMMARY_TEXT_BYTES),
    }
}

/// How much of a row [`summary_from_row`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    /// A summary for a list: every field bounded (summary.rs).
    Listed,
    /// The summary of one message on its own: every string whole, every
    /// envelope recipient, the address lists as stored.
    Whole,
}

/// A text column, cut in place for a listed summary so that a huge value is not
/// copied first.
fn text_column(row: &Row<'_>, index: usize, read: Read) -> rusqlite::Result<Option<String>> {
    let value = row.get_ref(index)?;
    if value == rusqlite::types::ValueRef::Null {
        return Ok(None);
    }
    let text = value.as_str()?;
    Ok(Some(match read {
        Read::Listed => summary::cut(text, SUMMARY_TEXT_BYTES).to_string(),
        Read::Whole => text.to_string(),
    }))
}

fn summary_from_row(row: &Row<'_>, read: Read) -> rusqlite::Result<Summary> {
    let from_name = text_column(row, 4, read)?;
    let from_addr = text_column(row, 5, read)?;
    let from = match (from_name, from_addr) {
        (None, None) => None,
        (name, address) => Some(Address {
            name: name.unwrap_or_default(),
            address: address.unwrap_or_default(),
        }),
    };
    let rcpt_to: Vec<String> = from_json(row, 3)?;
    // The stored lists hold at most SUMMARY_ADDRESSES; a NULL count means that
    // the list is the whole header.
    let list = |index: usize| -> rusqlite::Result<(Vec<Address>, u64)> {
        let list: Vec<Address> = from_json(row, index)?;
        let count = row
            .get::<_, Option<i64>>(index + 12)?
            .map_or(list.len() as u64, |count| count.max(0) as u64);
        Ok(match read {
            Read::Listed => (summary::listed(list), count),
            Read::Whole => (list, count),
        })
    };
    let (to, to_count) = list(6)?;
    let (cc, cc_count) = list(7)?;
    let (reply_to, reply_to_count) = list(8)?;
    Ok(Summary {
        id: MessageId(row.get(0)?),
        received_at: from_millis(row.get(1)?),
        mail_from: row.get(2)?,
        rcpt_to: match read {
            Read::Listed => summary::listed_recipients(rcpt_to),
            Read::Whole => rcpt_to,
        },
        from,
        to,
        to_count,
        cc,
        cc_count,
        reply_to,
        reply_to_count,
        subject: text_column(row, 9, read)?.unwrap_or_default(),
        date: row.get(10)?,
        message_id: text_column(row, 11, read)?,
        size: row.get::<_, i64>(12)? as u64,
        attachments: row.get(13)?,
        // At most 200 characters since the first release; cut all the same.
        snippet: text_column(row, 14, read)?.unwrap_or_default(),
        read: row.get(15)?,
        bare_lf: row.get(16)?,
        parsed: row.get(17)?,
    })
}

fn listed_summary_from_row(row: &Row<'_>) -> rusqlite::Result<Summary> {
    summary_from_row(row, Read::Listed)
}

fn stored_message_from_row(row: &Row<'_>) -> rusqlite::Result<StoredMessage> {
    let summary = summary_from_row(row, Read::Whole)?;
    let n = SUMMARY_COLUMN_COUNT;
    let client_addr: String = row.get(n + 1)?;
    let client_addr = client_addr.parse().map_err(|error| {
        rusqlite::Error::FromSqlConversionFailure(n + 1, Type::Text, Box::new(error))
    })?;
    let tls = match (row.get(n + 3)?, row.get(n + 4)?) {
        (Some(version), Some(cipher)) => Some(TlsInfo { version, cipher }),
        _ => None,
    };
    let envelope = Envelope {
        mail_from: summary.mail_from.clone(),
        rcpt_to: summary.rcpt_to.clone(),
        helo: row.get(n)?,
        client_addr,
        bare_lf: summary.bare_lf,
        smtputf8: row.get(n + 2)?,
        tls,
        auth_user: row.get(n + 5)?,
    };
    Ok(StoredMessage {
        summary,
        envelope,
        raw: row.get(n + 6)?,
    })
}

fn to_json<T: serde::Serialize>(value: &T) -> rusqlite::Result<String> {
    serde_json::to_string(value)
        .map_err(|error| rusqlite::Error::ToSqlConversionFailure(Box::new(error)))
}

fn from_json<T: serde::de::DeserializeOwned>(row: &Row<'_>, index: usize) -> rusqlite::Result<T> {
    let json = row.get_ref(index)?.as_str()?;
    serde_json::from_str(json).map_err(|error| {
        rusqlite::Error::FromSqlConversionFailure(index, Type::Text, Box::new(error))
    })
}

fn to_millis(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => to_i64(after.as_millis()),
        Err(before) => -to_i64(before.duration().as_millis()),
    }
}

fn from_millis(millis: i64) -> SystemTime {
    let magnitude = Duration::from_millis(millis.unsigned_abs());
    if millis >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

/// Make the directory entry of a newly created database file durable. SQLite syncs
/// the directory when it creates the WAL file but not when it creates the database
/// file itself, so without this a power cut soon after the very first delivery
/// could lose the file. Best effort: a failure only weakens that first-run case.
fn sync_parent_dir(path: &Path) {
    #[cfg(unix)]
    if let Some(parent) = path.parent() {
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        if let Err(error) = std::fs::File::open(parent).and_then(|dir| dir.sync_all()) {
            tracing::debug!(%error, dir = %parent.display(), "could not sync the store's directory");
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// SQLite integers are i64; counts and sizes beyond that cannot happen, so clamp.
fn to_i64(value: impl TryInto<i64>) -> i64 {
    value.try_into().unwrap_or(i64::MAX)
}

/// `ids` without repeats, so a repeated id is neither counted nor announced twice.
fn unique(ids: &[MessageId]) -> Vec<MessageId> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Whether envelope recipient `to` is the mailbox `wanted` (already lowercase) as
/// [`Store::maildrop`] defines it.
fn recipient_matches(to: &str, wanted: &str) -> bool {
    let to = to.to_lowercase();
    if wanted.contains('@') {
        to == wanted
    } else {
        to.rsplit_once('@')
            .is_some_and(|(local, _)| local == wanted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Many threads querying at once share at most MAX_READERS connections, and
    /// every one of them gets its answer.
    #[test]
    fn concurrent_queries_share_a_bounded_pool() {
        let dir = tempfile::TempDir::new().unwrap();
        let store = Store::open(&dir.path().join("mail.db"), StoreOptions::default()).unwrap();
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

    /// The query plan of a page of `query`, one line per step.
    fn plan(store: &Store, query: &str, before: Option<i64>) -> String {
        let parts = SearchQuery::parse(query).unwrap().to_sql();
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
        let store = Store::open(&dir.path().join("mail.db"), StoreOptions::default()).unwrap();
        for (query, before) in [
            ("", None),
            ("", Some(10)),
            ("invoice", None),
            ("invoice from:alice is:unread", Some(10)),
            ("-invoice", None),
            ("is:unread", Some(10)),
            ("has:attachment -from:x", None),
        ] {
            let plan = plan(&store, query, before);
            assert!(!plan.contains("TEMP B-TREE"), "{query:?}:\n{plan}");
        }
    }
}
