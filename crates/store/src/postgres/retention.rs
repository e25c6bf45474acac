//! The retention policy on PostgreSQL: one node of the cluster prunes, the
//! one holding the session-level advisory lock [`locks::RETENTION`].
//!
//! ```text
//! node A: prune ─ pg_try_advisory_lock ✓ (kept on a connection of its own) ─ batches of deletes
//! node B: prune ─ pg_try_advisory_lock ✗ ─ nothing to do (A prunes)
//! A dies ─ its connection closes, the lock with it ─ B's next prune takes it
//! ```
//!
//! The node that gets the lock keeps it, on a connection taken out of the
//! pool, for as long as it lives: the work stays on one node instead of
//! going to whichever asks first, and moves when that node stops (or loses
//! its connection). Every node's [`crate::Pruner`] keeps asking, once a
//! second. As on SQLite (`sqlite/retention.rs`), the ids come from indexed
//! queries and go in small batches, each one transaction announced as
//! [`StoreEvent::Pruned`] (and published as [`Notice::Pruned`]), so a
//! delivery waiting for the cluster's write lock waits for one batch at most.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use deadpool_postgres::ClientWrapper;
use tokio_postgres::IsolationLevel;

use super::{Notice, PgStore, Shared, ids_of, locks, next_seq, publish, take_session_lock};
use crate::retention::{PruneReport, Retention};
use crate::store::StoreEvent;
use crate::time::unix_millis;
use crate::{MessageId, StoreError};

/// Messages deleted per transaction: small, so that deliveries, which wait
/// for the same write lock on every node, wait for little.
const PRUNE_BATCH: i64 = 128;

/// The connection that holds [`locks::RETENTION`], once this node has it.
#[derive(Default)]
pub(crate) struct RetentionLock(tokio::sync::Mutex<Option<ClientWrapper>>);

impl PgStore {
    pub(crate) fn prune(
        &self,
        policy: &Retention,
        now: SystemTime,
        stop: &AtomicBool,
    ) -> Result<PruneReport, StoreError> {
        let shared = self.shared();
        self.run(async {
            // One run at a time on this node.
            let mut held = shared.retention.0.lock().await;
            if held.as_ref().is_some_and(|client| client.is_closed()) {
                *held = None;
            }
            if held.is_none() {
                match take_session_lock(shared, locks::RETENTION).await? {
                    Some(client) => *held = Some(client),
                    // Another node prunes.
                    None => return Ok(PruneReport::default()),
                }
            }
            let Some(client) = held.as_mut() else {
                return Ok(PruneReport::default());
            };
            let pruned = prune_with(client, shared, policy, now, stop).await;
            if client.is_closed() {
                // The lock went with the connection; whoever asks next takes it.
                *held = None;
            }
            pruned
        })
    }
}

async fn prune_with(
    client: &mut ClientWrapper,
    shared: &Shared,
    policy: &Retention,
    now: SystemTime,
    stop: &AtomicBool,
) -> Result<PruneReport, StoreError> {
    let mut report = PruneReport::default();
    if let Some(max) = policy.max_messages()
        && let Some(last) = newest_beyond(client, max).await?
    {
        report.beyond_max = prune_batches(
            client,
            shared,
            stop,
            "SELECT id FROM messages WHERE id <= $1 ORDER BY id LIMIT $2",
            last.0,
        )
        .await?;
    }
    if let Some(age) = policy.max_age() {
        let age = i64::try_from(age.duration().as_millis()).unwrap_or(i64::MAX);
        let cutoff = unix_millis(now).saturating_sub(age);
        report.too_old = prune_batches(
            client,
            shared,
            stop,
            "SELECT id FROM messages WHERE received_at < $1 ORDER BY received_at LIMIT $2",
            cutoff,
        )
        .await?;
    }
    Ok(report)
}

/// The id of the newest message beyond the newest `max`, if there are more.
/// Counted from the oldest end, so that the index walk is as long as the
/// excess, not as `max`; total and walk see one snapshot, so a delete in
/// between cannot make it reach into the messages kept.
async fn newest_beyond(
    client: &mut ClientWrapper,
    max: u64,
) -> Result<Option<MessageId>, StoreError> {
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let statement = tx.prepare_cached("SELECT total FROM store_state").await?;
    let total: i64 = tx.query_one(&statement, &[]).await?.try_get(0)?;
    let excess = total.saturating_sub(i64::try_from(max).unwrap_or(i64::MAX));
    if excess <= 0 {
        return Ok(None);
    }
    let statement = tx
        .prepare_cached("SELECT id FROM messages ORDER BY id LIMIT 1 OFFSET $1")
        .await?;
    let id = tx
        .query_opt(&statement, &[&(excess - 1)])
        .await?
        .map(|row| row.try_get(0).map(MessageId))
        .transpose()?;
    tx.commit().await?;
    Ok(id)
}

/// Delete the messages `select` names (it takes a bound as `$1` and the
/// batch size as `$2`), a batch per transaction, until it names no more or
/// `stop` is set; returns how many were deleted.
async fn prune_batches(
    client: &mut ClientWrapper,
    shared: &Shared,
    stop: &AtomicBool,
    select: &str,
    bound: i64,
) -> Result<u64, StoreError> {
    let delete = format!("DELETE FROM messages WHERE id IN ({select}) RETURNING id");
    let mut count = 0;
    while !stop.load(Ordering::Relaxed) {
        let tx = client.transaction().await?;
        next_seq(&tx).await?;
        let statement = tx.prepare_cached(&delete).await?;
        let mut deleted = tx
            .query(&statement, &[&bound, &PRUNE_BATCH])
            .await?
            .iter()
            .map(|row| row.try_get(0).map(MessageId))
            .collect::<Result<Vec<_>, _>>()?;
        if deleted.is_empty() {
            // Nothing changed: the change number stays where it was.
            tx.rollback().await?;
            break;
        }
        deleted.sort_unstable();
        publish(
            &tx,
            shared,
            Notice::Pruned {
                ids: ids_of(&deleted),
            },
        )
        .await?;
        tx.commit().await?;
        let batch = deleted.len() as u64;
        count += batch;
        shared.deleted.fetch_add(batch, Ordering::Relaxed);
        shared.announce(StoreEvent::Pruned(deleted));
        if batch < PRUNE_BATCH as u64 {
            break;
        }
    }
    Ok(count)
}
