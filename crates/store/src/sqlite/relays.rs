//! Relay attempts (schema migration 8): rows of `relays`, keyed by message,
//! deleted with it by the foreign key's cascade.

use rusqlite::{Connection, OptionalExtension, params};

use super::queries::{from_json, from_millis, to_json, to_millis};
use super::search_sql::{SqlParts, matching_clauses, matching_from};
use super::to_i64;
use crate::MessageId;
use crate::relay::{RELAY_ATTEMPTS_KEPT, RELAY_REPLY_BYTES, RelayAttempt};
use crate::summary::cut;

/// Add `attempt` to message `id` and drop its attempts beyond the newest
/// [`RELAY_ATTEMPTS_KEPT`]; `false` if there is no such message (any more).
pub(super) fn insert_attempt(
    conn: &mut Connection,
    id: MessageId,
    attempt: &RelayAttempt,
) -> rusqlite::Result<bool> {
    let tx = conn.transaction()?;
    // Inserting only where the message exists: one deleted meanwhile gets no
    // orphan row (and no foreign-key error to tell apart from a real one).
    let inserted = tx
        .prepare_cached(
            "INSERT INTO relays (message_id, at, recipients, skipped, ok, reply)
             SELECT id, ?2, ?3, ?4, ?5, ?6 FROM messages WHERE id = ?1",
        )?
        .execute(params![
            id.0,
            to_millis(attempt.at),
            to_json(&attempt.recipients)?,
            to_json(&attempt.skipped)?,
            attempt.ok,
            cut(&attempt.reply, RELAY_REPLY_BYTES),
        ])?;
    tx.prepare_cached(
        "DELETE FROM relays WHERE message_id = ?1 AND id NOT IN
             (SELECT id FROM relays WHERE message_id = ?1 ORDER BY id DESC LIMIT ?2)",
    )?
    .execute(params![id.0, to_i64(RELAY_ATTEMPTS_KEPT)])?;
    tx.commit()?;
    Ok(inserted > 0)
}

/// The attempts recorded for message `id`, oldest first.
pub(super) fn attempts(conn: &Connection, id: MessageId) -> rusqlite::Result<Vec<RelayAttempt>> {
    let mut statement = conn.prepare_cached(
        "SELECT at, recipients, skipped, ok, reply FROM relays
         WHERE message_id = ?1 ORDER BY id",
    )?;
    let rows = statement.query_map([id.0], |row| {
        Ok(RelayAttempt {
            at: from_millis(row.get(0)?),
            recipients: from_json(row, 1)?,
            skipped: from_json(row, 2)?,
            ok: row.get(3)?,
            reply: row.get(4)?,
        })
    })?;
    rows.collect()
}

/// Whether message `id` matches the search `parts`: `None` if there is no
/// such message, or if the query has words and the message is not in the
/// search index yet (the writer indexes right after answering the client).
pub(super) fn matches(
    conn: &Connection,
    id: MessageId,
    parts: &SqlParts,
    needs_index: bool,
) -> rusqlite::Result<Option<bool>> {
    let waiting: Option<bool> = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM unindexed WHERE id = ?1) FROM messages WHERE id = ?1",
        )?
        .query_row([id.0], |row| row.get(0))
        .optional()?;
    match waiting {
        None => return Ok(None),
        Some(true) if needs_index => return Ok(None),
        Some(_) => {}
    }
    let (mut clauses, mut params) = matching_clauses(parts, None);
    clauses.push("m.id = ?".into());
    params.push(rusqlite::types::Value::Integer(id.0));
    let sql = format!(
        "SELECT EXISTS (SELECT 1 FROM {} WHERE {})",
        matching_from(parts),
        clauses.join(" AND ")
    );
    conn.prepare_cached(&sql)?
        .query_row(rusqlite::params_from_iter(params), |row| row.get(0))
        .map(Some)
}
