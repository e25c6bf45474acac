//! The backend-neutral [`Store`] handle and the types its operations share.
//!
//! Every operation is one method here that hands the call to the backend the
//! store was opened on. The SQLite backend lives in `crate::sqlite`; a second
//! backend is one more [`Backend`] variant and one more arm in each method, and
//! no protocol crate changes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime};

use sokkel_net::stats::StoreCounters;
use tokio::sync::broadcast;

use crate::postgres::{PgConfig, PgConfigError, PgStore, is_postgres};
use crate::relay::RelayAttempt;
use crate::retention::{PruneReport, Retention};
use crate::sqlite::{SqliteStore, TagEdit};
use crate::tags::{TagName, Tagging};
use crate::{
    FlagEdit, Flags, Folder, FolderChanges, FolderMessage, ListQuery, MessageId, NewMessage,
    SearchPage, SearchQuery, StoreError, StoredMessage, Summary, paths, sqlite,
};

/// How [`Store::open`] sets up the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// The most the database may grow to, in bytes (the WAL file and, on
    /// SQLite, the log's segments come on top: a few MiB, more while rows
    /// lag behind a burst). A delivery that would exceed it fails with
    /// [`StoreError::Full`] until messages are deleted. `None` means only the disk
    /// limits it. On PostgreSQL it is the raw size of the stored messages
    /// (the database's files keep their size when messages are deleted, and
    /// the space is reused), checked in the transaction that would exceed it.
    pub max_size: Option<u64>,
    /// The most messages one group commit writes (on SQLite: one `fdatasync`
    /// of the log). Default 256.
    pub max_batch: usize,
    /// How arriving messages are tagged (see [`crate::tags`]).
    pub tagging: Tagging,
    /// Whether this process must be the one that takes in the SQLite store's
    /// mail. Ignored on PostgreSQL, where every node does.
    pub ownership: Ownership,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_size: None,
            max_batch: 256,
            tagging: Tagging::default(),
            ownership: Ownership::default(),
        }
    }
}

/// Where the process that owns a SQLite store takes mail over SMTP
/// ([`Store::record_smtp`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpRecord {
    /// The owner's process id.
    pub pid: u32,
    /// What its SMTP server names in its EHLO reply (`XSOKKEL-STORE <token>`).
    pub token: String,
    /// Its SMTP listeners' addresses.
    pub addrs: Vec<std::net::SocketAddr>,
}

/// Who takes in a SQLite store's mail. One process at a time owns the store's
/// log (`mail.db-log/`): it appends arriving messages to it and writes their
/// rows into the database. Any other process that opens the store follows:
/// it reads, deletes and changes flags and tags as the owner does, waiting
/// before each read until the owner has written the rows of every message
/// acknowledged so far, but it cannot add messages
/// ([`StoreError::Served`]). Two handles on one file in one process share
/// one owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ownership {
    /// Own the log if no other process does, else follow (the command-line
    /// readers). An owner that finds messages a crashed owner left in the log
    /// writes their rows before its first read answers.
    #[default]
    IfFree,
    /// Own the log, waiting up to this long for another process to let go of
    /// it, else fail with [`StoreError::Served`] (`sokkel mail serve`).
    Required(Duration),
}

/// How many messages the store holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MessageCounts {
    /// All messages.
    pub total: u64,
    /// Messages not marked read.
    pub unread: u64,
}

/// A tag in use and how many messages have it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagCount {
    /// The tag's name, as it was first written.
    pub name: String,
    /// The messages that have it, and how many of them are unread.
    pub counts: MessageCounts,
}

/// A change to the flags of messages; `None` leaves that flag as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlagChange {
    /// Mark read (`true`) or unread (`false`); IMAP's `\Seen`.
    pub read: Option<bool>,
    /// Star (`true`) or unstar (`false`); IMAP's `\Flagged`.
    pub flagged: Option<bool>,
}

/// What this store handle has done since it was opened: the store's part of
/// Mailpit's runtime statistics (`/api/v1/info`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuntimeStats {
    /// Messages delivered ([`crate::Deliver::deliver`]; imports are not counted).
    pub messages_accepted: u64,
    /// The raw bytes of those messages.
    pub bytes_accepted: u64,
    /// Messages deleted, by every kind of delete.
    pub messages_deleted: u64,
}

/// What the group-commit writer has done since the store was opened. On
/// SQLite the writer is the materialiser, which writes the rows of the
/// messages in the log after they were acknowledged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Transactions committed.
    pub transactions: u64,
    /// Messages those transactions stored; over `transactions`, the batch size.
    pub messages: u64,
    /// The raw bytes of those messages.
    pub bytes: u64,
    /// Transactions that failed and were rolled back; on SQLite, deliveries
    /// the log refused or could not make durable (each answered with an
    /// error) and materialiser transactions that failed (and were retried).
    pub failed_transactions: u64,
    /// SQLite: the most messages, and bytes of them, that were acknowledged
    /// but had no rows yet at once (how far the materialiser fell behind).
    pub max_lag_messages: u64,
    /// See `max_lag_messages`.
    pub max_lag_bytes: u64,
    /// SQLite: the most messages, and bytes of them, that had rows but were
    /// not yet in the search index at once.
    pub max_index_lag_messages: u64,
    /// See `max_index_lag_messages`.
    pub max_index_lag_bytes: u64,
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
    /// A message another node of the cluster stored (PostgreSQL): show it
    /// as [`StoreEvent::New`], but act on an arrival (relay it, post a
    /// webhook, log it) only on the node it arrived at, where it is `New`,
    /// so that the cluster acts once.
    NewElsewhere(Arc<Summary>),
    /// These messages were deleted.
    Deleted(Vec<MessageId>),
    /// These messages were deleted by the retention policy ([`Store::prune`]),
    /// one event per batch of a run.
    Pruned(Vec<MessageId>),
    /// Every message was deleted.
    DeletedAll,
    /// These messages were marked read (`true`) or unread (`false`).
    ReadChanged(Vec<MessageId>, bool),
    /// These messages were starred (`true`) or unstarred (`false`).
    FlaggedChanged(Vec<MessageId>, bool),
    /// These messages' tags changed (set, added, removed, renamed, deleted, or
    /// given by a `--tag` rule after delivery); each with its tags now. Empty
    /// when nobody listened as the change was made. A change of more than 1,000
    /// messages is announced as [`StoreEvent::Changed`] instead.
    TagsChanged(Vec<TagChange>),
    /// Another process changed the store (delivered, deleted, marked messages),
    /// or this one changed the tags of too many messages to name them:
    /// whatever a subscriber shows may be stale, so it should query again. Sent
    /// within about a second of the other process's commit.
    Changed,
}

/// One message's tags after a change ([`StoreEvent::TagsChanged`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagChange {
    /// The message.
    pub id: MessageId,
    /// Its tags now, sorted by name.
    pub tags: Vec<String>,
}

/// The mail store: a cheap `Clone` handle that SMTP, POP3, the web API and the
/// CLI share. Nothing outside this crate knows which backend is behind it;
/// today that is one SQLite file (the embedded default).
///
/// Deliveries go through [`crate::Deliver::deliver`] to the writer thread. Queries and
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
#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
}

/// The backends a [`Store`] can run on.
#[derive(Clone, Debug)]
enum Backend {
    /// One SQLite file: the embedded default.
    Sqlite(SqliteStore),
    /// A PostgreSQL database that several nodes share.
    Postgres(PgStore),
}

/// Where a store lives: a SQLite file (the default), or a PostgreSQL database
/// that several nodes share. Parsed from what `--db` (or `SOKKEL_DB`) says: a
/// `postgres://` or `postgresql://` URL is a database, anything else a path.
#[derive(Debug, Clone)]
pub enum Location {
    /// A SQLite file.
    File(PathBuf),
    /// A PostgreSQL database.
    Postgres(Box<PgConfig>),
}

impl std::str::FromStr for Location {
    type Err = PgConfigError;

    fn from_str(text: &str) -> Result<Location, PgConfigError> {
        if is_postgres(text) {
            text.parse()
                .map(|config| Location::Postgres(Box::new(config)))
        } else {
            Ok(Location::File(PathBuf::from(text)))
        }
    }
}

impl std::fmt::Display for Location {
    /// The file's path, or the database's URL without secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::File(path) => write!(f, "{}", path.display()),
            Location::Postgres(config) => write!(f, "{config}"),
        }
    }
}

impl Store {
    /// Open the store at `path`, creating the file and its parent directories if
    /// needed and bringing the schema up to date, and start its writer thread.
    ///
    /// Blocks on file I/O: from async code, call it inside `spawn_blocking`.
    pub fn open(path: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        sqlite::SqliteStore::open(path, options).map(|store| Store {
            backend: Backend::Sqlite(store),
        })
    }

    /// Open the store at `location`: [`Store::open`] for a file; for
    /// PostgreSQL, connect, create or migrate the schema (once, when several
    /// nodes start at once) and start the writer.
    ///
    /// Blocks: from async code, call it inside `spawn_blocking`.
    pub fn open_at(location: &Location, options: StoreOptions) -> Result<Store, StoreError> {
        match location {
            Location::File(path) => Store::open(path, options),
            Location::Postgres(config) => {
                PgStore::open((**config).clone(), options).map(|store| Store {
                    backend: Backend::Postgres(store),
                })
            }
        }
    }

    /// The default location of the store: `sokkel/mail.db` under the per-user data
    /// directory (`$XDG_DATA_HOME`, else `~/.local/share`, on Linux and other Unix;
    /// `~/Library/Application Support` on macOS; `%APPDATA%` on Windows). `None` if
    /// the environment does not say where that is.
    pub fn default_path() -> Option<PathBuf> {
        paths::default_path_from(|name| std::env::var_os(name))
    }

    /// Where the store lives, for people: the database file's path for
    /// SQLite.
    pub fn location(&self) -> String {
        match &self.backend {
            Backend::Sqlite(store) => store.path().display().to_string(),
            Backend::Postgres(store) => store.location(),
        }
    }

    /// Whether the store can be used now: for PostgreSQL, whether the
    /// database answers (`/readyz`); a SQLite store is always ready once open.
    pub fn ping(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(_) => Ok(()),
            Backend::Postgres(store) => store.ping(),
        }
    }

    /// How many bytes the store takes on disk (for SQLite, the database file,
    /// its write-ahead log and the log of arriving messages, `mail.db-log/`).
    pub fn size_on_disk(&self) -> u64 {
        match &self.backend {
            Backend::Sqlite(store) => store.size_on_disk(),
            Backend::Postgres(store) => store.size_on_disk(),
        }
    }

    /// A page of message summaries, newest first.
    /// Each summary is bounded as the `summary` module says (at most
    /// [`crate::SUMMARY_ADDRESSES`] addresses per field, with their counts).
    pub fn list(&self, query: &ListQuery) -> Result<Vec<Summary>, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.list(query),
            Backend::Postgres(store) => store.list(query),
        }
    }

    /// A page of the messages that match `query`, newest first, and how many match
    /// in all. An empty query matches every message. Count and page come from one
    /// read transaction, so they agree.
    pub fn search(&self, query: &SearchQuery, page: &ListQuery) -> Result<SearchPage, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.search(query, page),
            Backend::Postgres(store) => store.search(query, page),
        }
    }

    /// Delete every message that matches `query`; returns how many. Announced as
    /// [`StoreEvent::Deleted`] with their ids. An empty query matches every
    /// message, as in [`Store::search`], so it deletes them all: a caller taking a
    /// query from a user should refuse an empty one.
    ///
    /// The matches are looked up first and then deleted as [`Store::delete`]
    /// deletes, so this works on a full store too.
    pub fn delete_matching(&self, query: &SearchQuery) -> Result<u64, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.delete_matching(query),
            Backend::Postgres(store) => store.delete_matching(query),
        }
    }

    /// How many messages there are, and how many of them are unread.
    pub fn count(&self) -> Result<MessageCounts, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.count(),
            Backend::Postgres(store) => store.count(),
        }
    }

    /// One message: summary, envelope and raw bytes. `None` if there is no such
    /// message (any more).
    pub fn get(&self, id: MessageId) -> Result<Option<StoredMessage>, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.get(id),
            Backend::Postgres(store) => store.get(id),
        }
    }

    /// Record an attempt to relay message `id` (release or auto-relay); the
    /// message keeps its newest [`crate::RELAY_ATTEMPTS_KEPT`] attempts, and
    /// they are deleted with it. `false` if there is no such message (any
    /// more): nothing is recorded then.
    pub fn record_relay(&self, id: MessageId, attempt: &RelayAttempt) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.record_relay(id, attempt),
            Backend::Postgres(store) => store.record_relay(id, attempt),
        }
    }

    /// The relay attempts recorded for message `id`, oldest first; empty if
    /// there are none or there is no such message.
    pub fn relay_attempts(&self, id: MessageId) -> Result<Vec<RelayAttempt>, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.relay_attempts(id),
            Backend::Postgres(store) => store.relay_attempts(id),
        }
    }

    /// Whether message `id` matches `query`, as [`Store::search`] would find
    /// it (an empty query matches). `None` if there is no such message, or if
    /// the query has words and the message is not in the search index yet:
    /// the index follows a delivery by a moment (it never delays the 250), so
    /// a caller reacting to [`StoreEvent::New`] asks again shortly.
    pub fn matches(&self, id: MessageId, query: &SearchQuery) -> Result<Option<bool>, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.matches(id, query),
            Backend::Postgres(store) => store.matches(id, query),
        }
    }

    /// The id of the newest message, if there is any.
    pub fn latest(&self) -> Result<Option<MessageId>, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.latest(),
            Backend::Postgres(store) => store.latest(),
        }
    }

    /// The raw bytes of one message, exactly as received.
    pub fn raw(&self, id: MessageId) -> Result<Option<Vec<u8>>, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.raw(id),
            Backend::Postgres(store) => store.raw(id),
        }
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
        match &self.backend {
            Backend::Sqlite(store) => store.delete(ids),
            Backend::Postgres(store) => store.delete(ids),
        }
    }

    /// Delete every message; returns how many there were. Ids are still never
    /// reused afterwards. Once the store is empty, the space its file took goes
    /// back to the disk.
    pub fn delete_all(&self) -> Result<u64, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.delete_all(),
            Backend::Postgres(store) => store.delete_all(),
        }
    }

    /// Delete what `policy` does not keep: messages beyond the newest
    /// [`Retention::max_messages`], then those received before `now` minus
    /// [`Retention::max_age`]. Returns what it deleted.
    ///
    /// Deletes in small batches, each a transaction of its own announced as
    /// [`StoreEvent::Pruned`], and pauses between them so that deliveries are
    /// never held up by more than about one batch. Setting `stop` ends it after
    /// the batch being deleted. Blocks: a [`crate::Pruner`] calls it in the
    /// background. Deleting works on a full store as [`Store::delete`] does.
    ///
    /// On PostgreSQL one node of a cluster prunes: the first to ask takes an
    /// advisory lock and keeps it while it lives; on the others this returns
    /// an empty report at once, until that node is gone and one of them takes
    /// the lock at its next call.
    pub fn prune(
        &self,
        policy: &Retention,
        now: SystemTime,
        stop: &AtomicBool,
    ) -> Result<PruneReport, StoreError> {
        let report = match &self.backend {
            Backend::Sqlite(store) => store.prune(policy, now, stop),
            Backend::Postgres(store) => store.prune(policy, now, stop),
        }?;
        self.counters().add_pruned(report.total());
        Ok(report)
    }

    /// What this store counts for `/metrics`: its commit times and the
    /// messages retention deleted. Handles on one store share them.
    pub fn counters(&self) -> &Arc<StoreCounters> {
        match &self.backend {
            Backend::Sqlite(store) => store.counters(),
            Backend::Postgres(store) => store.counters(),
        }
    }

    /// Mark these messages read or unread; returns how many of them exist.
    /// [`Store::set_flags`] with only `read`.
    pub fn set_read(&self, ids: &[MessageId], read: bool) -> Result<u64, StoreError> {
        self.set_flags(
            ids,
            FlagChange {
                read: Some(read),
                flagged: None,
            },
        )
    }

    /// Change the flags of these messages in one transaction; returns how many
    /// of them exist. Only the messages whose flags this changes get a new
    /// modseq ([`Store::changed_since`]) and are announced, as
    /// [`StoreEvent::ReadChanged`] and [`StoreEvent::FlaggedChanged`].
    pub fn set_flags(&self, ids: &[MessageId], change: FlagChange) -> Result<u64, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.set_flags(ids, change),
            Backend::Postgres(store) => store.set_flags(ids, change),
        }
    }

    /// The messages changed (delivered, flags or tags changed) after change
    /// number `modseq`, by id, each with the number of the last change to it:
    /// IMAP CONDSTORE's "what changed since". Messages stored before schema 6
    /// (an upgraded store) have modseq 0 until they change.
    pub fn changed_since(&self, modseq: u64) -> Result<Vec<(MessageId, u64)>, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.changed_since(modseq),
            Backend::Postgres(store) => store.changed_since(modseq),
        }
    }

    /// The number of the store's latest change (deletes included): never
    /// smaller than any message's modseq, and never going down (IMAP's
    /// HIGHESTMODSEQ).
    pub fn highest_modseq(&self) -> Result<u64, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.highest_modseq(),
            Backend::Postgres(store) => store.highest_modseq(),
        }
    }

    /// The store's IMAP UIDVALIDITY: fixed when the store was created (or
    /// upgraded to schema 6), never zero. Ids are never reused, so it never has
    /// to change.
    pub fn uid_validity(&self) -> Result<u32, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.uid_validity(),
            Backend::Postgres(store) => store.uid_validity(),
        }
    }

    /// What this handle has delivered and deleted since it was opened.
    pub fn runtime_stats(&self) -> RuntimeStats {
        match &self.backend {
            Backend::Sqlite(store) => store.runtime_stats(),
            Backend::Postgres(store) => store.runtime_stats(),
        }
    }

    /// Announcements of changes, sent after they are committed: each change made
    /// through this process's handles, and [`StoreEvent::Changed`] when another
    /// process changed the file. Events sent while nobody subscribes are dropped.
    ///
    /// The first call starts a thread that watches the file for other processes'
    /// changes (a cheap poll a few times a second); it stops when the last handle
    /// to this store drops.
    pub fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        match &self.backend {
            Backend::Sqlite(store) => store.subscribe(),
            Backend::Postgres(store) => store.subscribe(),
        }
    }

    /// Record where this process takes mail over SMTP (`mail serve`, once it
    /// listens) and the token its server names in EHLO, so that another
    /// process, which cannot add messages to a SQLite store it does not own
    /// ([`StoreError::Served`]), can hand them to it instead:
    /// [`Store::served_smtp`]. SQLite keeps them in `mail.db-log/smtp`; only
    /// the owner may write it. PostgreSQL keeps nothing: every process adds
    /// messages itself there.
    pub fn record_smtp(
        &self,
        addrs: &[std::net::SocketAddr],
        token: &str,
    ) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.record_smtp(&SmtpRecord {
                pid: std::process::id(),
                token: token.to_owned(),
                addrs: addrs.to_vec(),
            }),
            Backend::Postgres(_) => Ok(()),
        }
    }

    /// Removes what [`Store::record_smtp`] recorded (the server stops).
    pub fn forget_smtp(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.forget_smtp(),
            Backend::Postgres(_) => Ok(()),
        }
    }

    /// What the process that owns this store now recorded with
    /// [`Store::record_smtp`]; `None` if it recorded nothing (it is no server)
    /// or the record is an earlier owner's. The server there must still name
    /// the token before it gets a message: a process id may be reused.
    pub fn served_smtp(&self) -> Option<SmtpRecord> {
        match &self.backend {
            Backend::Sqlite(store) => store.smtp_record(),
            Backend::Postgres(_) => None,
        }
    }

    /// What the group-commit writer has done since this store was opened.
    pub fn writer_stats(&self) -> WriterStats {
        match &self.backend {
            Backend::Sqlite(store) => store.writer_stats(),
            Backend::Postgres(store) => store.writer_stats(),
        }
    }

    /// Store `messages` in one transaction, bypassing the writer thread, and return
    /// their ids in order. Meant for bulk loads (importing a mailbox, seeding a
    /// benchmark), not for SMTP: call it with chunks of a few thousand messages,
    /// since the whole chunk is parsed, held and written at once. Blocks.
    pub fn import(&self, messages: Vec<NewMessage>) -> Result<Vec<MessageId>, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.import(messages),
            Backend::Postgres(store) => store.import(messages),
        }
    }

    /// The messages a POP3 login sees, oldest first, with their sizes in bytes.
    /// POP3 numbers them 1..n in this order; the id is the message's UID.
    ///
    /// `None` lists every message. `Some(recipient)` lists only the messages sent
    /// to that address (its mailbox: the envelope recipients and the first
    /// [`crate::SUMMARY_ADDRESSES`] of To and of Cc), compared without regard to
    /// case: an address with an `@` must match whole; a bare name without an `@`
    /// (a login such as `morty`) matches every address with that local part,
    /// whatever its domain, since a catcher sees mail for domains it does not
    /// own. Either is an index lookup, not a scan of every message.
    pub fn maildrop(&self, recipient: Option<&str>) -> Result<Vec<(MessageId, u64)>, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.maildrop(recipient),
            Backend::Postgres(store) => store.maildrop(recipient),
        }
    }

    /// How many raw bytes message `id` has; `None` if there is no such message.
    pub fn raw_len(&self, id: MessageId) -> Result<Option<u64>, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.raw_len(id),
            Backend::Postgres(store) => store.raw_len(id),
        }
    }

    /// Up to `max` (at most [`crate::RAW_CHUNK_BYTES`]) raw bytes of message
    /// `id` from byte `offset` on: fewer only at the end, none past it. `None`
    /// if the message does not exist (any more). Each chunk is read on its own,
    /// so a download of a 32 MiB message holds one chunk in memory and a client
    /// that stops reading holds nothing in the store.
    pub fn raw_chunk(
        &self,
        id: MessageId,
        offset: u64,
        max: usize,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.raw_chunk(id, offset, max),
            Backend::Postgres(store) => store.raw_chunk(id, offset, max),
        }
    }

    /// Every tag in use, sorted by name (ignoring case), with how many messages
    /// have it and how many of those are unread.
    pub fn tags(&self) -> Result<Vec<TagCount>, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.tags(),
            Backend::Postgres(store) => store.tags(),
        }
    }

    /// The names of every tag in use, sorted by name (ignoring case): what
    /// [`Store::tags`] lists without counting, so it stays cheap however many
    /// messages are tagged.
    pub fn tag_names(&self) -> Result<Vec<String>, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.tag_names(),
            Backend::Postgres(store) => store.tag_names(),
        }
    }

    /// A page of the messages tagged `tag` (any case), newest first, as
    /// [`Store::list`] pages. A tag no message has gives an empty page.
    pub fn list_tagged(&self, tag: &str, page: &ListQuery) -> Result<Vec<Summary>, StoreError> {
        let tag = TagName::parse(tag)?;
        match &self.backend {
            Backend::Sqlite(store) => store.list_tagged(&tag, page),
            Backend::Postgres(store) => store.list_tagged(&tag, page),
        }
    }

    /// Replace the tags of the messages `ids` with `tags` (an empty list clears
    /// them); returns how many of the messages exist. Names follow
    /// [`crate::tags`]'s rules, else [`StoreError::Tag`] and nothing changes.
    /// Announced as [`StoreEvent::TagsChanged`] for the messages that changed.
    pub fn set_tags<S: AsRef<str>>(
        &self,
        ids: &[MessageId],
        tags: &[S],
    ) -> Result<u64, StoreError> {
        self.edit_tags(ids, tags, TagEdit::Set)
    }

    /// Add `tags` to the messages `ids`, as [`Store::set_tags`] does.
    pub fn add_tags<S: AsRef<str>>(
        &self,
        ids: &[MessageId],
        tags: &[S],
    ) -> Result<u64, StoreError> {
        self.edit_tags(ids, tags, TagEdit::Add)
    }

    /// Take `tags` off the messages `ids`, as [`Store::set_tags`] does. A tag
    /// no message has any more disappears.
    pub fn remove_tags<S: AsRef<str>>(
        &self,
        ids: &[MessageId],
        tags: &[S],
    ) -> Result<u64, StoreError> {
        self.edit_tags(ids, tags, TagEdit::Remove)
    }

    fn edit_tags<S: AsRef<str>>(
        &self,
        ids: &[MessageId],
        tags: &[S],
        edit: TagEdit,
    ) -> Result<u64, StoreError> {
        let tags = TagName::parse_all(tags)?;
        match &self.backend {
            Backend::Sqlite(store) => store.change_tags(ids, &tags, edit),
            Backend::Postgres(store) => store.change_tags(ids, &tags, edit),
        }
    }

    /// Rename tag `from` to `to` on every message; if a tag `to` exists (in
    /// any case) the two become one. A rename that changes only case keeps the
    /// new spelling. `None` if there is no tag `from`, else how many messages
    /// have it. Announced as [`StoreEvent::TagsChanged`].
    pub fn rename_tag(&self, from: &str, to: &str) -> Result<Option<u64>, StoreError> {
        let (from, to) = (TagName::parse(from)?, TagName::parse(to)?);
        match &self.backend {
            Backend::Sqlite(store) => store.rename_tag(&from, &to),
            Backend::Postgres(store) => store.rename_tag(&from, &to),
        }
    }

    /// Take tag `name` off every message. `None` if there is no such tag, else
    /// how many messages had it. Announced as [`StoreEvent::TagsChanged`].
    pub fn delete_tag(&self, name: &str) -> Result<Option<u64>, StoreError> {
        let name = TagName::parse(name)?;
        match &self.backend {
            Backend::Sqlite(store) => store.delete_tag(&name),
            Backend::Postgres(store) => store.delete_tag(&name),
        }
    }

    /// The UIDVALIDITY of an IMAP folder ([`crate::Folders::uid_validity`]):
    /// the store's ([`Store::uid_validity`]) for the INBOX and Sent, the tag's
    /// own for a tag's folder, new each time a tag is made (again).
    /// [`StoreError::Folder`] if there is no such tag.
    pub fn folder_validity(&self, folder: &Folder) -> Result<u32, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.folder_validity(folder),
            Backend::Postgres(store) => store.folder_validity(folder),
        }
    }

    /// The tags that are IMAP folders ([`crate::Folders::folder_names`]):
    /// every tag a message has, and every tag made as a folder (by
    /// [`Store::create_folder`], or emptied by [`Store::expunge_from_folder`]
    /// in its folder) until it is deleted; sorted by name ignoring case.
    /// Other tags disappear when no message has them, as they always did.
    pub fn folder_names(&self) -> Result<Vec<String>, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.folder_names(),
            Backend::Postgres(store) => store.folder_names(),
        }
    }

    /// The messages of an IMAP folder by ascending UID, and its UIDNEXT
    /// ([`crate::Folders::messages`]); `None` for a tag that does not exist.
    /// One indexed query that reads no message bytes: an IMAP session asks
    /// after every change it sees.
    pub fn folder_messages(
        &self,
        folder: &Folder,
    ) -> Result<Option<(Vec<FolderMessage>, u32)>, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.folder_messages(folder),
            Backend::Postgres(store) => store.folder_messages(folder),
        }
    }

    /// What changed in `folder` since the change counter was `since`
    /// ([`crate::Folders::changes`]): only the changed rows are read.
    pub fn folder_changes(
        &self,
        folder: &Folder,
        since: u64,
    ) -> Result<Option<FolderChanges>, StoreError> {
        // The counter first: a change made meanwhile is seen again next time.
        let highest_modseq = self.highest_modseq()?;
        let read = match &self.backend {
            Backend::Sqlite(store) => store.folder_changes(folder, since)?,
            Backend::Postgres(store) => store.folder_changes(folder, since)?,
        };
        let listed = match read {
            Some(listed) => listed,
            // A per-recipient INBOX: its membership is a join on addresses,
            // listed whole.
            None => self.folder_messages(folder)?.map(|(messages, uid_next)| {
                let count = messages.len();
                let changed = messages.into_iter().filter(|m| m.modseq > since).collect();
                (count, uid_next, changed)
            }),
        };
        Ok(listed.map(|(count, uid_next, changed)| FolderChanges {
            count,
            uid_next,
            highest_modseq,
            changed,
        }))
    }

    /// The bytes of a message of `folder` (a sent copy's for Sent).
    pub fn folder_raw(
        &self,
        folder: &Folder,
        id: MessageId,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.folder_raw(folder, id),
            Backend::Postgres(store) => store.folder_raw(folder, id),
        }
    }

    /// Change the IMAP flags of messages of `folder` in one transaction
    /// ([`crate::Folders::set_flags`]). Messages whose flags change get a new
    /// modseq; announced as [`StoreEvent::ReadChanged`] and
    /// [`StoreEvent::FlaggedChanged`], and as [`StoreEvent::Changed`] when
    /// other flags or sent copies changed. Flags must be IMAP atoms, at most
    /// [`crate::MAX_OTHER_FLAGS`] besides `\Seen` and `\Flagged` per message,
    /// else [`StoreError::Folder`] and nothing changes.
    pub fn set_folder_flags(
        &self,
        folder: &Folder,
        ids: &[MessageId],
        edit: &FlagEdit,
    ) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.set_folder_flags(folder, ids, edit),
            Backend::Postgres(store) => store.set_folder_flags(folder, ids, edit),
        }
    }

    /// IMAP APPEND ([`crate::Folders::append`]); returns the UID the message
    /// got in `folder`. Into the INBOX or a tag's folder the message is
    /// stored as delivered (shown on the web page and announced as
    /// [`StoreEvent::New`] at once) with the envelope its headers give: the
    /// From address as the sender, the To, Cc and Bcc addresses as the
    /// recipients, HELO `imap` from 127.0.0.1 port 0. Into Sent it is a sent
    /// copy, which no list, search, count or maildrop shows. Held to the
    /// store's size limit.
    pub fn append_to_folder(
        &self,
        folder: &Folder,
        raw: Vec<u8>,
        flags: &Flags,
        received_at: SystemTime,
    ) -> Result<u32, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.append_to_folder(folder, raw, flags, received_at),
            Backend::Postgres(store) => store.append_to_folder(folder, raw, flags, received_at),
        }
    }

    /// IMAP COPY ([`crate::Folders::copy`]): the UID each message got in
    /// `to`, in order. All or nothing: if one of `ids` no longer exists,
    /// [`StoreError::Folder`] and nothing is copied.
    pub fn copy_to_folder(
        &self,
        from: &Folder,
        ids: &[MessageId],
        to: &Folder,
    ) -> Result<Vec<u32>, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.copy_to_folder(from, ids, to),
            Backend::Postgres(store) => store.copy_to_folder(from, ids, to),
        }
    }

    /// IMAP EXPUNGE ([`crate::Folders::expunge`]): from the INBOX the
    /// messages are deleted as [`Store::delete`] deletes them; from a tag's
    /// folder the tag is taken off and `\Deleted` cleared (the folder then
    /// stays even if empty); from Sent the copies are deleted.
    pub fn expunge_from_folder(
        &self,
        folder: &Folder,
        ids: &[MessageId],
    ) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.expunge_from_folder(folder, ids),
            Backend::Postgres(store) => store.expunge_from_folder(folder, ids),
        }
    }

    /// IMAP CREATE: make tag `name` as an empty folder, which stays while no
    /// message has it. `false` if the tag exists already.
    pub fn create_folder(&self, name: &str) -> Result<bool, StoreError> {
        let name = TagName::parse(name)?;
        match &self.backend {
            Backend::Sqlite(store) => store.create_folder(&name),
            Backend::Postgres(store) => store.create_folder(&name),
        }
    }

    /// IMAP DELETE: take tag `name` off every message and forget it. `false`
    /// if there is no such tag.
    pub fn delete_folder(&self, name: &str) -> Result<bool, StoreError> {
        let name = TagName::parse(name)?;
        match &self.backend {
            Backend::Sqlite(store) => store.delete_folder(&name),
            Backend::Postgres(store) => store.delete_folder(&name),
        }
    }

    /// IMAP RENAME: rename tag `from` (on every message) to `to`, keeping its
    /// UIDs and UIDVALIDITY; the folder then stays while empty, as one made by
    /// [`Store::create_folder`] does. `false` if there is no tag `from`;
    /// [`StoreError::Folder`] if another tag is called `to` (unlike
    /// [`Store::rename_tag`], which merges the two).
    pub fn rename_folder(&self, from: &str, to: &str) -> Result<bool, StoreError> {
        let (from, to) = (TagName::parse(from)?, TagName::parse(to)?);
        match &self.backend {
            Backend::Sqlite(store) => store.rename_folder(&from, &to),
            Backend::Postgres(store) => store.rename_folder(&from, &to),
        }
    }

    /// [`crate::Deliver::deliver`]: store `message` and return its id once it
    /// is durable. Must run inside a tokio runtime (large messages are parsed on
    /// its blocking pool).
    pub(crate) async fn submit(&self, message: NewMessage) -> Result<MessageId, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.deliver(message).await,
            Backend::Postgres(store) => store.deliver(message).await,
        }
    }
}
