//! Opening connections and the settings each one needs; the disk-space
//! housekeeping (size cap, WAL restarts, compaction) that works on one.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::reserve::RESERVE_BYTES;
use super::schema;
use super::to_i64;
use crate::StoreError;

/// How long any connection waits for another one (in this process or another) to
/// release the write lock before giving up with [`StoreError::Busy`].
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the clean-up after emptying the store waits for other connections
/// (readers finishing, the writer committing) before it gives up for this time.
pub(super) const COMPACT_BUSY_TIMEOUT: Duration = Duration::from_secs(1);

/// Open the connection the materialiser will own (or, in a process that
/// follows another's log, the first connection of the pool), bringing the
/// schema up to date. Nothing else happens here, so that a command-line reader
/// opens the store at once: indexing what is left unindexed is the
/// materialiser's work, in the background.
pub(super) fn open_writer_connection(path: &Path, created: bool) -> Result<Connection, StoreError> {
    let mut conn = open_connection(path, true)?;
    if created {
        // Before the first table, or it is too late: a map of the pages lets
        // `reclaim` give space freed by deletes back to the disk.
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    }
    // WAL lets readers in other processes work while the materialiser commits.
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
    Ok(conn)
}

/// Open one connection with the settings every connection needs: the busy
/// timeout, full sync on commit (a per-connection setting in SQLite), foreign keys
/// for the `raw` cascade, and the WAL size limit. The store's size limit is not
/// among them: only connections that add messages get it ([`cap_pages`]).
pub(super) fn open_connection(path: &Path, create: bool) -> Result<Connection, StoreError> {
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
pub(super) const SQLITE_MAX_PAGE_COUNT: i64 = 0xffff_fffe;

/// Hold `conn` to the store's size limit (`PRAGMA max_page_count`), or lift the
/// limit with `None`. Only the connections that add messages are held to it;
/// SQLite keeps a limit below the file's current size at that size.
pub(super) fn cap_pages(conn: &Connection, max_size: Option<u64>) -> rusqlite::Result<()> {
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
pub(super) const FTS5_DELETE_MERGE: i64 = 10;

/// Set the share (in percent) of deleted rows at which FTS5 rewrites a level of
/// the search index, 0 for never. Setting it first writes out what the index
/// holds in memory, under the setting before.
pub(super) fn set_delete_merge(conn: &Connection, percent: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT INTO search (search, rank) VALUES ('deletemerge', ?1)")?
        .execute([percent])?;
    Ok(())
}

/// Whether a delete has had to make room on a full disk (see [`Store::delete`]).
#[derive(Debug, Default)]
pub(super) struct Room {
    pub(super) tight: bool,
}

/// Copy what the WAL holds into the database and have the next transaction
/// write the WAL from its beginning again, so it reuses blocks it already has.
/// Best effort: readers still on old pages make it wait up to the busy timeout
/// and then leave the WAL as it is.
pub(super) fn restart_wal(conn: &Connection) {
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
/// temporary file, but its pages go through the WAL: on a full disk it fails
/// (`Err`, with nothing changed) until some room is made.
pub(super) fn compact(conn: &Connection) -> Result<(), StoreError> {
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
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(result?)
}

/// Free pages are given back to the disk once they are more than this share
/// of the file ([`reclaim`])...
const RECLAIM_ABOVE: i64 = 4;
/// ...down to this share...
const RECLAIM_TO: i64 = 8;
/// ...and only once they are at least this many (4 MiB of 4 KiB pages).
const RECLAIM_MIN_PAGES: i64 = 1024;
/// Pages moved per step: each is a write transaction of its own, so deliveries
/// and other writers get their turn in between.
const RECLAIM_STEP: i64 = 4096;

/// Give the space that deletes freed back to the disk when it has grown to a
/// quarter of the file, so that the store stays within about 8/7 of what its
/// messages take rather than at the most it ever held. `PRAGMA
/// incremental_vacuum` moves pages from the end of the file into the free
/// ones and cuts the end off (at the next checkpoint, in WAL mode). Stores
/// made before schema 9 have no page map (`auto_vacuum` cannot be switched
/// on without rewriting the file): they keep reusing their free pages for
/// new mail, as they always did.
pub(super) fn reclaim(conn: &Connection) {
    let value = |pragma: &str| conn.query_row(&format!("PRAGMA {pragma}"), [], |row| row.get(0));
    let steps = || -> rusqlite::Result<bool> {
        if value("auto_vacuum")? != 2_i64 {
            return Ok(false);
        }
        let mut moved = false;
        loop {
            let free: i64 = value("freelist_count")?;
            let pages: i64 = value("page_count")?;
            if !moved && (free < RECLAIM_MIN_PAGES || free * RECLAIM_ABOVE <= pages) {
                break;
            }
            let excess = free - pages / RECLAIM_TO;
            if excess <= 0 {
                break;
            }
            conn.execute_batch(&format!(
                "PRAGMA incremental_vacuum({})",
                excess.min(RECLAIM_STEP)
            ))?;
            moved = true;
        }
        if moved {
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        }
        Ok(moved)
    };
    match steps() {
        Ok(true) => tracing::debug!("gave the space of deleted messages back to the disk"),
        Ok(false) => {}
        Err(error) => {
            tracing::debug!(%error, "could not give deleted messages' space back to the disk")
        }
    }
}

pub(super) fn warn_reserve_released(path: &Path) {
    tracing::warn!(
        path = %path.display(),
        reserve_mib = RESERVE_BYTES >> 20,
        "the disk holding the mail store is full; released its disk reserve so that messages can be deleted"
    );
}

/// Make the directory entry of a newly created database file durable. SQLite syncs
/// the directory when it creates the WAL file but not when it creates the database
/// file itself, so without this a power cut soon after the very first delivery
/// could lose the file. Best effort: a failure only weakens that first-run case.
pub(super) fn sync_parent_dir(path: &Path) {
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
