//! What can go wrong in the store, sorted by what a caller does about it.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use rusqlite::ErrorCode;

/// An error from the store.
///
/// Each variant's text is whole: it names its cause (the operating system's or
/// the database engine's words) itself, and `source()` gives none, so that a
/// chain printed as `a: b: c` (anyhow's `{:#}`) says each cause once.
///
/// Every variant a delivery can meet is transient from SMTP's point of view
/// (`451 4.3.0`): the message was not stored, and nothing of it was. The error is `Clone` because one failed
/// group commit answers every delivery in the batch with the same error.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store reached its size limit ([`crate::StoreOptions::max_size`]) or the
    /// disk is full. Deleting messages makes room again.
    #[error("the mail store is full; delete messages to make room")]
    Full,
    /// Another process held the database locked for longer than the busy timeout.
    #[error("the mail store is locked by another process; try again")]
    Busy,
    /// A file system operation around the database failed, such as creating its
    /// directory.
    #[error("{action} {}: {cause}", path.display())]
    Io {
        /// What the store was doing.
        action: &'static str,
        /// The path it was doing it to.
        path: PathBuf,
        /// The operating system's error (in the text, not `source()`).
        cause: Arc<io::Error>,
    },
    /// Any other failure of the database behind the store: an I/O error while
    /// writing, a corrupt file, a file that is not a database.
    #[error("mail store database error: {0}")]
    Database(DatabaseError),
    /// The database was written by a newer sokkel whose schema this one does not
    /// know; opening it could damage it.
    #[error(
        "the mail store has schema version {found}, newer than the {supported} this sokkel knows; upgrade sokkel"
    )]
    TooNew {
        /// The version found in the file.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// A tag name broke the rules of [`crate::tags`], or a request named too
    /// many: the caller's mistake, nothing was changed.
    #[error(transparent)]
    Tag(#[from] crate::tags::TagError),
    /// An IMAP folder request the store cannot do as asked: a folder that
    /// does not exist or exists already, a flag that is not an IMAP atom,
    /// messages that no longer exist. The caller's mistake (or a race with
    /// another client); nothing was changed. The text says which, for the client.
    #[error("{0}")]
    Folder(String),
    /// The database server cannot be reached, or dropped the connection, or
    /// is shutting down or starting up (PostgreSQL): nothing was changed, and
    /// the same request may succeed once it is back (SMTP answers `451 4.3.0`,
    /// the web API `503`).
    #[error("the mail store's database is unavailable: {0}; try again")]
    Unavailable(DatabaseError),
    /// The store's writer thread is gone (it panicked, or the process is shutting
    /// down), so nothing more can be delivered through this handle.
    #[error("the mail store is closed")]
    Closed,
    /// Another process serves this SQLite store: it owns the store's log, and
    /// only the owner adds messages (deliver through its SMTP port, or stop
    /// it first). Reading, flags and deletes work from any process.
    #[error("{}", served_text(*.pid))]
    Served {
        /// The owner's process id, if its lock file says.
        pid: Option<u32>,
    },
}

fn served_text(pid: Option<u32>) -> String {
    let who = match pid {
        Some(pid) => format!("another sokkel process (pid {pid})"),
        None => "another sokkel process".to_owned(),
    };
    format!(
        "{who} serves this mail store and only it can add messages; send them to its SMTP port, or stop it first"
    )
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        match error.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => StoreError::Full,
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Busy,
            code => StoreError::Database(DatabaseError {
                io_trouble: matches!(
                    code,
                    Some(ErrorCode::SystemIoFailure | ErrorCode::CannotOpen)
                ),
                source: Arc::new(error),
            }),
        }
    }
}

/// What PostgreSQL's SQLSTATE says a caller should do: connection trouble,
/// shutdown and start-up are [`StoreError::Unavailable`], a full disk is
/// [`StoreError::Full`], lock trouble is [`StoreError::Busy`].
impl From<tokio_postgres::Error> for StoreError {
    fn from(error: tokio_postgres::Error) -> Self {
        use tokio_postgres::error::SqlState;
        let unavailable = match error.code() {
            Some(code) if *code == SqlState::DISK_FULL => return StoreError::Full,
            Some(code)
                if *code == SqlState::T_R_SERIALIZATION_FAILURE
                    || *code == SqlState::T_R_DEADLOCK_DETECTED
                    || *code == SqlState::LOCK_NOT_AVAILABLE =>
            {
                return StoreError::Busy;
            }
            Some(code) => {
                code.code().starts_with("08")
                    || code.code().starts_with("57P")
                    || *code == SqlState::TOO_MANY_CONNECTIONS
                    || *code == SqlState::READ_ONLY_SQL_TRANSACTION
            }
            // No SQLSTATE: the client's side of the conversation failed
            // (connecting, TLS, the socket, a closed connection).
            None => {
                error.is_closed()
                    || std::error::Error::source(&error)
                        .is_some_and(|source| source.is::<std::io::Error>())
                    || error.to_string().starts_with("error connecting")
                    || error.to_string().starts_with("timeout")
                    || error.to_string().starts_with("error performing TLS")
                    || error.to_string().starts_with("error communicating")
            }
        };
        let source = DatabaseError {
            source: Arc::new(error),
            io_trouble: false,
        };
        if unavailable {
            StoreError::Unavailable(source)
        } else {
            StoreError::Database(source)
        }
    }
}

/// A connection the pool could not give: the server is unreachable or slow.
impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        match error {
            deadpool_postgres::PoolError::Backend(error) => StoreError::from(error),
            other => StoreError::unavailable(other.to_string()),
        }
    }
}

impl StoreError {
    /// [`StoreError::Unavailable`] with `text` as its reason.
    pub(crate) fn unavailable(text: impl Into<String>) -> Self {
        StoreError::Unavailable(DatabaseError::text(text))
    }

    /// [`StoreError::Database`] for a row the store cannot read back.
    pub(crate) fn corrupt(text: impl Into<String>) -> Self {
        StoreError::Database(DatabaseError::text(text))
    }

    /// Whether the database is unavailable for now (and the caller should
    /// say "try again later", not "failed").
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }

    /// Whether this may have been the disk running out of room: SQLite says
    /// `SQLITE_FULL` for a write that hit `ENOSPC`, and may say it could not open
    /// or extend a file (the WAL index) for the same reason.
    pub(crate) fn may_be_disk_full(&self) -> bool {
        match self {
            StoreError::Full | StoreError::Io { .. } => true,
            StoreError::Database(error) => error.io_trouble,
            _ => false,
        }
    }

    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StoreError::Io {
            action,
            path: path.into(),
            cause: Arc::new(source),
        }
    }
}

/// A failure the database engine reported, as it described it. Opaque, so that
/// no backend's types show in the store's API. Its text is the engine's error
/// and each cause under it, once: `source()` is `None`.
#[derive(Debug, Clone)]
pub struct DatabaseError {
    source: Arc<dyn std::error::Error + Send + Sync>,
    /// The engine could not read, write or open a file: on a full disk this
    /// may be the disk, not the database.
    io_trouble: bool,
}

impl DatabaseError {
    fn text(text: impl Into<String>) -> Self {
        let text: String = text.into();
        DatabaseError {
            source: Arc::new(std::io::Error::other(text)),
            io_trouble: false,
        }
    }
}

impl std::fmt::Display for DatabaseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.source, f)?;
        // rusqlite's text already holds its cause's: SQLite's message for a
        // failure says what its result code's own text says again ("file is
        // not a database", then "Error code 26: file is not a database").
        if self.source.is::<rusqlite::Error>() {
            return Ok(());
        }
        // tokio-postgres' text does not ("db error", then the server's
        // message as its source), nor does an I/O error's.
        let mut cause = self.source.source();
        while let Some(error) = cause {
            write!(f, ": {error}")?;
            cause = error.source();
        }
        Ok(())
    }
}

impl std::error::Error for DatabaseError {}
