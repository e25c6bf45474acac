//! Noticing what other processes change in the store file.
//!
//! `sokkel mail delete 7` run in a terminal is another process: the server's web
//! page must hear of it all the same. Every transaction that changes messages
//! (in any process) increments `store_state.change_seq` and, once committed, this
//! process remembers the numbers its own transactions got. A watcher thread polls
//! the file a few times a second: `PRAGMA data_version` says cheaply whether
//! anyone else's connection committed; if so, it reads `change_seq`, and any
//! number in between that is not one of this process's own means another process
//! changed something, announced as [`StoreEvent::Changed`].
//!
//! ```text
//! this process:  commit → seq 41 (own) ─┐
//! CLI process:   commit → seq 42 ───────┼─▶ watcher: 40 → 42, 42 not own ─▶ Changed
//! ```
//!
//! A race can only make a spurious `Changed` (a commit polled before this process
//! recorded it as its own), never hide another process's change: a reload too
//! many is harmless, a missed delete is not.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, Transaction};
use tokio::sync::broadcast;

use crate::StoreError;
use crate::store::StoreEvent;

/// How often the watcher looks at the file: a change from another process
/// reaches subscribers within this (plus the poll itself).
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// The change numbers of this process's own commits not yet seen by the watcher.
/// `None` while no watcher runs, so a process that never subscribes (the CLI)
/// keeps nothing.
#[derive(Debug, Default)]
pub(crate) struct ChangeLog {
    own: Mutex<Option<BTreeSet<i64>>>,
}

impl ChangeLog {
    /// Give the change inside `conn`'s open write transaction its number.
    pub(crate) fn next_seq(conn: &Connection) -> rusqlite::Result<i64> {
        conn.prepare_cached(
            "UPDATE store_state SET change_seq = change_seq + 1 RETURNING change_seq",
        )?
        .query_row([], |row| row.get(0))
    }

    /// The transaction that took `seq` from [`ChangeLog::next_seq`] has committed
    /// (`None`: it changed nothing and took no number).
    pub(crate) fn committed_if(&self, seq: Option<i64>) {
        if let (Some(seq), Some(own)) = (seq, self.lock().as_mut()) {
            own.insert(seq);
        }
    }

    fn start_recording(&self) {
        self.lock().get_or_insert_with(BTreeSet::new);
    }

    /// Whether any change after `from` up to `to` was not this process's own;
    /// forgets own changes up to `to`.
    fn foreign_between(&self, from: i64, to: i64) -> bool {
        let mut guard = self.lock();
        let own = guard.get_or_insert_with(BTreeSet::new);
        if to < from {
            // The counter went back: the file was replaced by another one.
            own.clear();
            return true;
        }
        if to == from {
            // A commit that changed no message (the search index catching up) is
            // nobody's news.
            return false;
        }
        let own_count = own.range(from + 1..=to).count() as i64;
        *own = own.split_off(&(to + 1));
        to - from > own_count
    }

    fn lock(&self) -> MutexGuard<'_, Option<BTreeSet<i64>>> {
        // A panic while the lock was held cannot leave the set half-changed.
        self.own.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The watcher thread. Dropping the handle stops the thread and waits for it.
#[derive(Debug)]
pub(crate) struct Watcher {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Watcher {
    /// Start watching through `conn`, a connection of its own.
    pub(crate) fn spawn(
        path: &Path,
        conn: Connection,
        log: Arc<ChangeLog>,
        events: broadcast::Sender<StoreEvent>,
    ) -> Result<Watcher, StoreError> {
        log.start_recording();
        let mut state = PollState::new(&conn)?;
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("sokkel-store-watcher".into())
            .spawn(move || {
                // Disconnected (the handle dropped) ends the loop; so would a
                // message, though none is ever sent.
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(POLL_INTERVAL) {
                    match state.poll(&conn, &log) {
                        Ok(true) => {
                            let _ = events.send(StoreEvent::Changed);
                        }
                        Ok(false) => {}
                        Err(error) => {
                            tracing::debug!(%error, "could not poll the mail store for changes");
                        }
                    }
                }
            })
            .map_err(|error| StoreError::io("starting the change watcher for", path, error))?;
        Ok(Watcher {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop = None;
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the mail store change watcher panicked");
        }
    }
}

/// What the watcher saw at its last poll.
struct PollState {
    data_version: i64,
    seq: i64,
}

impl PollState {
    fn new(conn: &Connection) -> rusqlite::Result<PollState> {
        Ok(PollState {
            data_version: data_version(conn)?,
            seq: change_seq(conn)?,
        })
    }

    /// Whether another process changed the store since the last poll.
    fn poll(&mut self, conn: &Connection, log: &ChangeLog) -> rusqlite::Result<bool> {
        let data_version = data_version(conn)?;
        if data_version == self.data_version {
            return Ok(false);
        }
        let seq = change_seq(conn)?;
        let foreign = seq != self.seq && log.foreign_between(self.seq, seq);
        self.data_version = data_version;
        self.seq = seq;
        Ok(foreign)
    }
}

/// Changes whenever another connection to the file (in any process) commits.
fn data_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "data_version", |row| row.get(0))
}

fn change_seq(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT change_seq FROM store_state")?
        .query_row([], |row| row.get(0))
}

/// Commit the write transaction `tx`, numbering the change first if it
/// `changed` anything; the number goes to [`Announcer::announce`].
pub(super) fn commit_change(tx: Transaction<'_>, changed: bool) -> rusqlite::Result<Option<i64>> {
    let seq = changed.then(|| ChangeLog::next_seq(&tx)).transpose()?;
    tx.commit()?;
    Ok(seq)
}

/// The tail every change of this process goes through once its transaction
/// has committed ([`commit_change`]): record the change as this process's own
/// (so the [`Watcher`] does not announce it a second time as
/// [`StoreEvent::Changed`]) and announce it to subscribers.
#[derive(Debug, Clone)]
pub(super) struct Announcer {
    changes: Arc<ChangeLog>,
    events: broadcast::Sender<StoreEvent>,
}

impl Announcer {
    pub(super) fn new(changes: Arc<ChangeLog>, events: broadcast::Sender<StoreEvent>) -> Announcer {
        Announcer { changes, events }
    }

    /// Whether anybody listens: events that cost work to build are built only
    /// then.
    pub(super) fn listening(&self) -> bool {
        self.events.receiver_count() > 0
    }

    /// The change numbered `seq` (`None`: nothing changed) has committed;
    /// announce `events` for it.
    pub(super) fn announce(&self, seq: Option<i64>, events: impl IntoIterator<Item = StoreEvent>) {
        self.changes.committed_if(seq);
        if seq.is_some() {
            for event in events {
                // Nobody listening is not an error.
                let _ = self.events.send(event);
            }
        }
    }

    pub(super) fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        self.events.subscribe()
    }

    pub(super) fn sender(&self) -> broadcast::Sender<StoreEvent> {
        self.events.clone()
    }

    pub(super) fn changes(&self) -> Arc<ChangeLog> {
        Arc::clone(&self.changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_changes_are_not_foreign_and_gaps_are() {
        let log = ChangeLog::default();
        log.committed_if(Some(1));
        assert!(
            log.foreign_between(0, 1),
            "nothing is recorded before a watcher starts"
        );
        log.start_recording();
        log.committed_if(Some(2));
        log.committed_if(Some(3));
        assert!(!log.foreign_between(1, 3));
        log.committed_if(Some(5));
        assert!(log.foreign_between(3, 5), "4 was another process's");
        // An own commit recorded after the poll that saw it is forgotten later.
        log.committed_if(Some(6));
        assert!(log.foreign_between(5, 7));
        assert!(log.lock().as_ref().unwrap().is_empty());
        assert!(
            log.foreign_between(7, 2),
            "the counter went back: a new file"
        );
    }
}
