//! Pruning: deleting what a [`Retention`] policy no longer keeps, a small batch
//! at a time, out of the way of deliveries.
//!
//! The ids come from indexed queries: for a maximum count, the id of the
//! newest message beyond it (every id up to it goes, by the primary key); for a
//! maximum age, the oldest messages by `messages_received_at`. Each batch is
//! one transaction through the same delete path as [`SqliteStore::delete`]
//! (full-disk aware), announced as [`StoreEvent::Pruned`].
//!
//! Each batch runs on the materialiser's thread, between two of its
//! transactions, so that new rows and pruning take turns and pruning keeps its
//! pace under a steady stream of mail. (A batch on a connection of its own
//! lost every race for the write lock to the writer, which always had the
//! next group commit queued: at 1,100 messages a second it pruned some 45 a
//! second, and `--max` did not hold.) On a full disk a batch goes through
//! [`SqliteStore::delete`]'s path instead, which gives the disk reserve back.
//!
//! ```text
//! materialiser:  [rows] [prune 128] [rows] [rows] [prune 128] ...
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::changes::commit_change;

use super::SqliteStore;
use super::connection::Room;
use crate::retention::{PruneReport, Retention};
use crate::store::StoreEvent;
use crate::time::unix_millis;
use crate::{MessageId, StoreError};

/// Messages deleted per transaction: small, so that a delivery waiting for the
/// write lock waits for little, and one batch's WAL fits the disk reserve.
const PRUNE_BATCH: usize = 128;

impl SqliteStore {
    pub(crate) fn prune(
        &self,
        policy: &Retention,
        now: SystemTime,
        stop: &AtomicBool,
    ) -> Result<PruneReport, StoreError> {
        let mut report = PruneReport::default();
        let mut room = Room::default();
        let pruned = (|| -> Result<(), StoreError> {
            if let Some(max) = policy.max_messages()
                && self.count()?.total > max
                && let Some(last) = self.with_connection(|conn| Ok(newest_beyond(conn, max)?))?
            {
                report.beyond_max = self.prune_batches(&mut room, stop, |conn| {
                    select_ids(
                        conn,
                        "SELECT id FROM messages WHERE id <= ?1 ORDER BY id LIMIT ?2",
                        last.0,
                    )
                })?;
            }
            if let Some(age) = policy.max_age() {
                let age = i64::try_from(age.duration().as_millis()).unwrap_or(i64::MAX);
                let cutoff = unix_millis(now).saturating_sub(age);
                report.too_old = self.prune_batches(&mut room, stop, |conn| {
                    select_ids(
                        conn,
                        "SELECT id FROM messages WHERE received_at < ?1
                         ORDER BY received_at LIMIT ?2",
                        cutoff,
                    )
                })?;
            }
            Ok(())
        })();
        self.after_delete(report.total());
        pruned.map(|()| report)
    }

    /// Delete the messages `select` names, a batch at a time, until it names
    /// none or `stop` is set; returns how many were deleted.
    fn prune_batches(
        &self,
        room: &mut Room,
        stop: &AtomicBool,
        select: impl Fn(&Connection) -> rusqlite::Result<Vec<MessageId>>,
    ) -> Result<u64, StoreError> {
        let mut count = 0;
        while !stop.load(Ordering::Relaxed) {
            let ids = self.with_connection(|conn| Ok(select(conn)?))?;
            if ids.is_empty() {
                break;
            }
            let deleted = match self.prune_on_writer(ids.clone()) {
                Err(StoreError::Full) => self.delete_batch(&ids, room, StoreEvent::Pruned)?,
                result => result?,
            };
            count += deleted;
            // A batch that deleted nothing was deleted by somebody else in the
            // meantime; the next run sees what is left.
            if deleted == 0 || ids.len() < PRUNE_BATCH {
                break;
            }
        }
        Ok(count)
    }
}

impl SqliteStore {
    /// Delete `ids` in one transaction on the writer thread and announce them
    /// as pruned; returns how many existed.
    fn prune_on_writer(&self, ids: Vec<MessageId>) -> Result<u64, StoreError> {
        let (deleted, seq) = self.on_writer(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut deleted = Vec::new();
            {
                let mut statement = tx.prepare_cached("DELETE FROM messages WHERE id = ?1")?;
                for id in ids {
                    if statement.execute([id.0])? > 0 {
                        deleted.push(id);
                    }
                }
            }
            let seq = commit_change(tx, !deleted.is_empty())?;
            Ok((deleted, seq))
        })?;
        let count = deleted.len() as u64;
        self.count_deleted(count);
        self.inner
            .announcer
            .announce(seq, [StoreEvent::Pruned(deleted)]);
        Ok(count)
    }
}

/// The id of the newest message beyond the newest `max`, if there are more.
/// Counted from the oldest end, so that the index walk is as long as the
/// excess, not as `max` (920,000 entries a run for `--max 920000`); total and
/// walk come from one read transaction, so a delete in between cannot make it
/// reach into the messages kept.
fn newest_beyond(conn: &mut Connection, max: u64) -> rusqlite::Result<Option<MessageId>> {
    let tx = conn.transaction()?;
    let total: i64 = tx
        .prepare_cached("SELECT total FROM store_state")?
        .query_row([], |row| row.get(0))?;
    let excess = total.saturating_sub(i64::try_from(max).unwrap_or(i64::MAX));
    if excess <= 0 {
        return Ok(None);
    }
    let id = tx
        .prepare_cached("SELECT id FROM messages ORDER BY id LIMIT 1 OFFSET ?1")?
        .query_row([excess - 1], |row| row.get(0).map(MessageId))
        .optional()?;
    tx.commit()?;
    Ok(id)
}

/// Up to [`PRUNE_BATCH`] ids from `sql`, which takes the bound `value` as `?1`
/// and the batch size as `?2`.
fn select_ids(conn: &Connection, sql: &str, value: i64) -> rusqlite::Result<Vec<MessageId>> {
    let mut statement = conn.prepare_cached(sql)?;
    let ids = statement.query_map([value, PRUNE_BATCH as i64], |row| row.get(0).map(MessageId))?;
    ids.collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreOptions;

    fn plan(store: &SqliteStore, sql: &str) -> String {
        store
            .with_connection(|conn| {
                let mut statement = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                let rows = statement.query_map([1, 128], |row| row.get::<_, String>(3))?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?.join("\n"))
            })
            .unwrap()
    }

    /// Picking what to prune must not scan every message: at a million
    /// messages a scan per check is what would make pruning felt.
    #[test]
    fn prune_ids_come_from_indexes() {
        let dir = tempfile::TempDir::new().unwrap();
        let store =
            SqliteStore::open(&dir.path().join("mail.db"), StoreOptions::default()).unwrap();
        let by_id = plan(
            &store,
            "SELECT id FROM messages WHERE id <= ?1 ORDER BY id LIMIT ?2",
        );
        assert!(by_id.contains("USING INTEGER PRIMARY KEY"), "{by_id}");
        let by_age = plan(
            &store,
            "SELECT id FROM messages WHERE received_at < ?1 ORDER BY received_at LIMIT ?2",
        );
        assert!(by_age.contains("messages_received_at"), "{by_age}");
        for plan in [by_id, by_age] {
            assert!(!plan.contains("TEMP B-TREE"), "{plan}");
        }
    }
}
