//! Reading a store whose log another process owns (the CLI while `mail
//! serve` runs).
//!
//! A follower cannot see the owner's progress in memory, only what it
//! committed: `store_state`'s position in the log. Before each read it finds
//! the end of the log's valid records (what the owner acknowledged so far)
//! and polls the position until it gets there:
//!
//! ```text
//! read ─▶ scan_end(log, position) = target ─▶ poll store_state every 2 ms until position ≥ target ─▶ read
//! ```

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::log;
use super::writer::{BARRIER_TIMEOUT, Need, behind, stored_position};
use crate::StoreError;

/// How often a waiting follower looks at the owner's progress.
const POLL: Duration = Duration::from_millis(2);

/// Wait on `conn` until the owner of the log in `dir` has written the rows
/// of every record the log holds now (with [`Need::Index`], also their index
/// entries), at most [`BARRIER_TIMEOUT`].
pub(super) fn wait_for_owner(conn: &Connection, dir: &Path, need: Need) -> Result<(), StoreError> {
    let deadline = Instant::now() + BARRIER_TIMEOUT;
    let mut position = stored_position(conn)?;
    let target = log::scan_end(dir, super::log_id(conn)?, position)?;
    while position < target {
        if !owned(dir) {
            return Err(StoreError::unavailable(
                "the process that served this store ended before it stored its last messages; they are stored when the store is next opened",
            ));
        }
        wait_a_little(deadline)?;
        position = stored_position(conn)?;
    }
    if need == Need::Index {
        // Ids grow in the order rows are written: once none up to the newest
        // waits for the index, every message acknowledged so far is in it.
        let newest: Option<i64> =
            conn.query_row("SELECT max(id) FROM messages", [], |row| row.get(0))?;
        let Some(newest) = newest else {
            return Ok(());
        };
        let mut waiting =
            conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM unindexed WHERE id <= ?1)")?;
        while waiting.query_row([newest], |row| row.get::<_, bool>(0))? {
            if !owned(dir) {
                // Nobody indexes until the next owner opens the store:
                // answer from the index as it is.
                break;
            }
            wait_a_little(deadline)?;
        }
    }
    Ok(())
}

/// Sleep one poll, unless the deadline has passed.
fn wait_a_little(deadline: Instant) -> Result<(), StoreError> {
    if Instant::now() >= deadline {
        return Err(behind());
    }
    std::thread::sleep(POLL);
    Ok(())
}

/// Whether a process holds the log in `dir`: its lock is taken. Asked with a
/// shared lock that is let go at once (an owner's exclusive lock is what
/// makes it wait; a process that ended, even one not yet reaped, holds none).
fn owned(dir: &Path) -> bool {
    use rustix::fs::{FlockOperation, flock};
    let Ok(file) = std::fs::File::open(dir.join("lock")) else {
        return false;
    };
    matches!(
        flock(&file, FlockOperation::NonBlockingLockShared),
        Err(rustix::io::Errno::WOULDBLOCK)
    )
}
