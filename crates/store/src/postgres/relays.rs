//! Relay attempts on PostgreSQL: rows of `relays`, keyed by message, deleted
//! with it by the foreign key's cascade (as `sqlite/relays.rs`).
//!
//! Recording an attempt changes no message (no modseq, no event), so its
//! transaction takes no change number ([`super::next_seq`]) and waits for no
//! other node's commit.

use super::PgStore;
use super::queries::{from_json, to_i64, to_json};
use crate::relay::{RELAY_ATTEMPTS_KEPT, RELAY_REPLY_BYTES, RelayAttempt};
use crate::summary::cut;
use crate::time::{from_millis, to_millis};
use crate::{MessageId, StoreError};

impl PgStore {
    /// Add `attempt` to message `id` and drop its attempts beyond the newest
    /// [`RELAY_ATTEMPTS_KEPT`]; `false` if there is no such message (any more).
    pub(crate) fn record_relay(
        &self,
        id: MessageId,
        attempt: &RelayAttempt,
    ) -> Result<bool, StoreError> {
        self.run(async {
            let mut client = self.shared().client().await?;
            let tx = client.transaction().await?;
            // Inserting only where the message exists: one deleted meanwhile
            // gets no orphan row (and no foreign-key error to tell apart from
            // a real one).
            let statement = tx
                .prepare_cached(
                    "INSERT INTO relays (message_id, at, recipients, skipped, ok, reply)
                     SELECT id, $2, $3, $4, $5, $6 FROM messages WHERE id = $1",
                )
                .await?;
            let inserted = tx
                .execute(
                    &statement,
                    &[
                        &id.0,
                        &to_millis(attempt.at),
                        &to_json(&attempt.recipients)?,
                        &to_json(&attempt.skipped)?,
                        &attempt.ok,
                        &cut(&attempt.reply, RELAY_REPLY_BYTES),
                    ],
                )
                .await?;
            let statement = tx
                .prepare_cached(
                    "DELETE FROM relays WHERE message_id = $1 AND id NOT IN
                         (SELECT id FROM relays WHERE message_id = $1 ORDER BY id DESC LIMIT $2)",
                )
                .await?;
            tx.execute(&statement, &[&id.0, &to_i64(RELAY_ATTEMPTS_KEPT)])
                .await?;
            tx.commit().await?;
            Ok(inserted > 0)
        })
    }

    /// The attempts recorded for message `id`, oldest first.
    pub(crate) fn relay_attempts(&self, id: MessageId) -> Result<Vec<RelayAttempt>, StoreError> {
        self.run(async {
            let client = self.shared().client().await?;
            let statement = client
                .prepare_cached(
                    "SELECT at, recipients, skipped, ok, reply FROM relays
                     WHERE message_id = $1 ORDER BY id",
                )
                .await?;
            client
                .query(&statement, &[&id.0])
                .await?
                .iter()
                .map(|row| {
                    Ok(RelayAttempt {
                        at: from_millis(row.try_get(0)?),
                        recipients: from_json(row.try_get(1)?)?,
                        skipped: from_json(row.try_get(2)?)?,
                        ok: row.try_get(3)?,
                        reply: row.try_get(4)?,
                    })
                })
                .collect()
        })
    }
}
