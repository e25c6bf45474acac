//! A parsed search as SQL over `messages` and the FTS5 `search` table.

use rusqlite::types::Value;
use rusqlite::{Connection, params_from_iter};

use super::queries::{SUMMARY_COLUMNS, listed_summary_from_row};
use super::to_i64;
use crate::search::SqlParts;
use crate::{ListQuery, MessageId, Summary};

/// `WHERE` clauses and their parameters for the messages that match `parts`,
/// below `before`. With words to look up, the query is driven by the `search`
/// table, aliased so, joined to `messages AS m`.
pub(super) fn matching_clauses(
    parts: &SqlParts,
    before: Option<MessageId>,
) -> (Vec<String>, Vec<Value>) {
    let mut clauses = Vec::new();
    let mut params = Vec::new();
    if let Some(expression) = &parts.fts_match {
        clauses.push("search MATCH ?".to_string());
        params.push(Value::Text(expression.clone()));
    }
    if let Some(before) = before {
        // On the FTS table's rowid, FTS5 seeks to the cursor itself.
        let column = if parts.fts_match.is_some() {
            "search.rowid"
        } else {
            "m.id"
        };
        clauses.push(format!("{column} < ?"));
        params.push(Value::Integer(before.0));
    }
    clauses.extend(parts.conditions.iter().cloned());
    params.extend(parts.params.iter().cloned());
    if clauses.is_empty() {
        clauses.push("1".into());
    }
    (clauses, params)
}

/// The `FROM` part: the FTS table first when there are words, so that FTS5 walks
/// its matches newest first and the `LIMIT` stops it early.
pub(super) fn matching_from(parts: &SqlParts) -> &'static str {
    if parts.fts_match.is_some() {
        "search CROSS JOIN messages AS m ON m.id = search.rowid"
    } else {
        "messages AS m"
    }
}

pub(super) fn order_column(parts: &SqlParts) -> &'static str {
    if parts.fts_match.is_some() {
        "search.rowid"
    } else {
        "m.id"
    }
}

pub(super) fn page_matching(
    conn: &Connection,
    parts: &SqlParts,
    page: &ListQuery,
) -> rusqlite::Result<Vec<Summary>> {
    let (clauses, mut params) = matching_clauses(parts, page.before);
    params.push(Value::Integer(to_i64(page.limit)));
    params.push(Value::Integer(to_i64(page.offset)));
    let sql = format!(
        "SELECT {SUMMARY_COLUMNS} FROM {} WHERE {} ORDER BY {} DESC LIMIT ? OFFSET ?",
        matching_from(parts),
        clauses.join(" AND "),
        order_column(parts),
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement.query_map(params_from_iter(params), listed_summary_from_row)?;
    rows.collect()
}

pub(super) fn count_matching(conn: &Connection, parts: &SqlParts) -> rusqlite::Result<u64> {
    let (clauses, params) = matching_clauses(parts, None);
    // Every message has exactly one index row, so words alone are counted in the
    // index without touching `messages`.
    let from = if parts.conditions.is_empty() && parts.fts_match.is_some() {
        "search"
    } else {
        matching_from(parts)
    };
    let sql = format!(
        "SELECT count(*) FROM {from} WHERE {}",
        clauses.join(" AND ")
    );
    let count: i64 = conn
        .prepare_cached(&sql)?
        .query_row(params_from_iter(params), |row| row.get(0))?;
    Ok(count as u64)
}

pub(super) fn ids_matching(
    conn: &Connection,
    parts: &SqlParts,
) -> rusqlite::Result<Vec<MessageId>> {
    let (clauses, params) = matching_clauses(parts, None);
    let sql = format!(
        "SELECT m.id FROM {} WHERE {} ORDER BY m.id",
        matching_from(parts),
        clauses.join(" AND "),
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let ids = statement.query_map(params_from_iter(params), |row| row.get(0).map(MessageId))?;
    ids.collect()
}
