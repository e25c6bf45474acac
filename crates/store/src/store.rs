//! The [`Store`] handle: opening the file, delivering, and every query.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::types::Type;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior, params};
use tokio::sync::broadcast;

use crate::mime::{self, Digest};
use crate::writer::Writer;
use crate::{
    Address, Deliver, Envelope, ListQuery, MessageId, NewMessage, StoreError, StoredMessage,
    Summary, TlsInfo, paths, schema,
};

/// How long any connection waits for another one (in this process or another) to
/// release the write lock before giving up with [`StoreError::Busy`].
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Idle reader connections kept open for reuse; more are opened under load and
/// closed afterwards.
const MAX_IDLE_READERS: usize = 4;

/// Messages bigger than this are parsed on tokio's blocking pool instead of the
/// async worker that delivers them, so one huge message cannot stall other
/// sessions.
const INLINE_PARSE_LIMIT: usize = 256 << 10;

/// How many events a slow subscriber may fall behind before it sees
/// `RecvError::Lagged` and should reload.
const EVENT_CAPACITY: usize = 1024;

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
/// is committed. Only changes made through this process's handles are announced.
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
}

/// The mail store: a cheap `Clone` handle to one SQLite file.
///
/// Deliveries go through [`Deliver::deliver`] to the writer thread. Queries and
/// deletes are synchronous and block on SQLite: from async code, call them inside
/// `tokio::task::spawn_blocking`. Several processes may open the same file at
/// once (the server writing, the CLI listing and deleting).
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    options: StoreOptions,
    readers: Mutex<Vec<Connection>>,
    events: broadcast::Sender<StoreEvent>,
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
        let mut conn = open_connection(path, &options, true)?;
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

        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let writer = Writer::spawn(path, conn, options.max_batch, events.clone())?;
        Ok(Store {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                options,
                readers: Mutex::new(Vec::new()),
                events,
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
    pub fn list(&self, query: &ListQuery) -> Result<Vec<Summary>, StoreError> {
        self.with_connection(|conn| {
            let mut statement = conn.prepare_cached(&format!(
                "SELECT {SUMMARY_COLUMNS} FROM messages AS m ORDER BY m.id DESC LIMIT ?1 OFFSET ?2"
            ))?;
            let rows = statement.query_map(
                params![to_i64(query.limit), to_i64(query.offset)],
                summary_from_row,
            )?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// How many messages there are, and how many of them are unread.
    pub fn count(&self) -> Result<MessageCounts, StoreError> {
        self.with_connection(|conn| {
            let total: i64 =
                conn.query_row("SELECT count(*) FROM messages", [], |row| row.get(0))?;
            let unread: i64 =
                conn.query_row("SELECT count(*) FROM messages WHERE read = 0", [], |row| {
                    row.get(0)
                })?;
            Ok(MessageCounts {
                total: total as u64,
                unread: unread as u64,
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
    pub fn delete(&self, ids: &[MessageId]) -> Result<u64, StoreError> {
        let deleted = self.with_connection(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut deleted = Vec::new();
            {
                let mut statement = tx.prepare_cached("DELETE FROM messages WHERE id = ?1")?;
                for id in unique(ids) {
                    if statement.execute([id.0])? > 0 {
                        deleted.push(id);
                    }
                }
            }
            tx.commit()?;
            Ok(deleted)
        })?;
        let count = deleted.len() as u64;
        if !deleted.is_empty() {
            let _ = self.inner.events.send(StoreEvent::Deleted(deleted));
        }
        Ok(count)
    }

    /// Delete every message; returns how many there were. Ids are still never
    /// reused afterwards.
    pub fn delete_all(&self) -> Result<u64, StoreError> {
        let deleted = self.with_connection(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            // Emptying `raw` first spares the cascade a lookup per message.
            tx.execute("DELETE FROM raw", [])?;
            let deleted = tx.execute("DELETE FROM messages", [])?;
            tx.commit()?;
            Ok(deleted as u64)
        })?;
        if deleted > 0 {
            let _ = self.inner.events.send(StoreEvent::DeletedAll);
        }
        Ok(deleted)
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
            tx.commit()?;
            Ok(changed)
        })?;
        let count = changed.len() as u64;
        if !changed.is_empty() {
            let _ = self
                .inner
                .events
                .send(StoreEvent::ReadChanged(changed, read));
        }
        Ok(count)
    }

    /// Announcements of changes made through this process's handles, sent after
    /// they are committed. Events sent while nobody subscribes are dropped.
    pub fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        self.inner.events.subscribe()
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
        let ids = self.with_connection(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let ids = messages
                .iter()
                .zip(&digests)
                .map(|(message, digest)| insert_message(&tx, message, digest))
                .collect::<rusqlite::Result<Vec<_>>>()?;
            tx.commit()?;
            Ok(ids)
        })?;
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

    /// Run `work` on a pooled connection, opening one if none is idle.
    fn with_connection<T>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let idle = self.lock_readers().pop();
        let mut conn = match idle {
            Some(conn) => conn,
            None => open_connection(&self.inner.path, &self.inner.options, false)?,
        };
        let result = work(&mut conn);
        let mut readers = self.lock_readers();
        if readers.len() < MAX_IDLE_READERS {
            readers.push(conn);
        }
        result
    }

    fn lock_readers(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        // A panic while the lock was held cannot leave the Vec half-changed.
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

/// Open one connection with the settings every connection needs: the busy
/// timeout, full sync on commit (a per-connection setting in SQLite), foreign keys
/// for the `raw` cascade, the WAL size limit, and the store's size limit.
fn open_connection(
    path: &Path,
    options: &StoreOptions,
    create: bool,
) -> Result<Connection, StoreError> {
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
    if let Some(max_size) = options.max_size {
        let page_size: i64 = conn.pragma_query_value(None, "page_size", |row| row.get(0))?;
        let pages = (max_size / page_size.max(1) as u64).max(1);
        conn.pragma_update(None, "max_page_count", to_i64(pages))?;
    }
    Ok(conn)
}

/// The columns [`summary_from_row`] reads, in its order, from `messages AS m`.
const SUMMARY_COLUMNS: &str = "m.id, m.received_at, m.mail_from, m.rcpt_to, m.from_name, \
    m.from_addr, m.to_list, m.cc_list, m.reply_to_list, m.subject, m.date, m.message_id, \
    m.size, m.attachments, m.snippet, m.read, m.bare_lf, m.parsed";
const SUMMARY_COLUMN_COUNT: usize = 18;

const INSERT_MESSAGE: &str = "INSERT INTO messages (
        received_at, mail_from, rcpt_to, helo, client_addr, bare_lf, smtputf8,
        tls_version, tls_cipher, auth_user, size, parsed, subject, from_name, from_addr,
        to_list, cc_list, reply_to_list, date, message_id, attachments, snippet
    ) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
        ?18, ?19, ?20, ?21, ?22)";

/// Insert one message and its bytes; the caller owns the transaction.
pub(crate) fn insert_message(
    conn: &Connection,
    message: &NewMessage,
    digest: &Digest,
) -> rusqlite::Result<MessageId> {
    let envelope = &message.envelope;
    let from = digest.from.as_ref();
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
        to_json(&digest.to)?,
        to_json(&digest.cc)?,
        to_json(&digest.reply_to)?,
        digest.date,
        digest.message_id,
        digest.attachments,
        digest.snippet,
    ])?;
    let id = conn.last_insert_rowid();
    conn.prepare_cached("INSERT INTO raw (id, data) VALUES (?1, ?2)")?
        .execute(params![id, message.raw])?;
    Ok(MessageId(id))
}

/// The summary a list would show for `message` once stored as `id`.
pub(crate) fn summary_of(id: MessageId, message: &NewMessage, digest: Digest) -> Summary {
    Summary {
        id,
        // Stored with millisecond precision; announce what a reader will read.
        received_at: from_millis(to_millis(message.received_at)),
        mail_from: message.envelope.mail_from.clone(),
        rcpt_to: message.envelope.rcpt_to.clone(),
        from: digest.from,
        to: digest.to,
        cc: digest.cc,
        reply_to: digest.reply_to,
        subject: digest.subject,
        date: digest.date,
        message_id: digest.message_id,
        size: message.raw.len() as u64,
        attachments: digest.attachments,
        snippet: digest.snippet,
        read: false,
        bare_lf: message.envelope.bare_lf,
        parsed: digest.parsed,
    }
}

fn summary_from_row(row: &Row<'_>) -> rusqlite::Result<Summary> {
    let from_name: Option<String> = row.get(4)?;
    let from_addr: Option<String> = row.get(5)?;
    let from = match (from_name, from_addr) {
        (None, None) => None,
        (name, address) => Some(Address {
            name: name.unwrap_or_default(),
            address: address.unwrap_or_default(),
        }),
    };
    Ok(Summary {
        id: MessageId(row.get(0)?),
        received_at: from_millis(row.get(1)?),
        mail_from: row.get(2)?,
        rcpt_to: from_json(row, 3)?,
        from,
        to: from_json(row, 6)?,
        cc: from_json(row, 7)?,
        reply_to: from_json(row, 8)?,
        subject: row.get(9)?,
        date: row.get(10)?,
        message_id: row.get(11)?,
        size: row.get::<_, i64>(12)? as u64,
        attachments: row.get(13)?,
        snippet: row.get(14)?,
        read: row.get(15)?,
        bare_lf: row.get(16)?,
        parsed: row.get(17)?,
    })
}

fn stored_message_from_row(row: &Row<'_>) -> rusqlite::Result<StoredMessage> {
    let summary = summary_from_row(row)?;
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
    let json: String = row.get(index)?;
    serde_json::from_str(&json).map_err(|error| {
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
