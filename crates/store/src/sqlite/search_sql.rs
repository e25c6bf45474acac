//! A parsed search ([`crate::search`]) as SQL over `messages` and the FTS5
//! `search` table.
//!
//! Words become one FTS5 `MATCH` expression, each term a phrase limited to the
//! index columns its field names (schema migration 6; what fills each column is
//! in `index.rs`):
//!
//! ```text
//! field       columns
//! (none)      subject sender recipients body cc bcc reply_to
//! from:       sender               (From, envelope sender)
//! to:         recipients           (To, Cc, envelope recipients)
//! cc:         cc                   bcc:        bcc (Bcc, blind recipients)
//! reply-to:   reply_to             subject:    subject
//! addressed:  sender recipients cc bcc reply_to
//! message-id: message_id
//! ```
//!
//! Every other filter is a condition on `messages AS m`: an indexed column, or
//! for tags an `IN` over `message_tags`, which is keyed by tag first.

use std::fmt::Write as _;

use rusqlite::types::Value;
use rusqlite::{Connection, params_from_iter};

use super::queries::{SUMMARY_COLUMNS, listed_summary_from_row};
use super::to_i64;
use crate::search::{Field, Filter, Term, TextTerm};
use crate::{ListQuery, MessageId, SearchQuery, Summary};

/// A query as SQL: an optional FTS5 `MATCH` expression for the `search` table,
/// and conditions over `messages AS m`, whose `?` placeholders take `params` in
/// order.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct SqlParts {
    pub fts_match: Option<String>,
    pub conditions: Vec<String>,
    pub params: Vec<Value>,
}

/// `query` as SQL pieces for [`page_matching`], [`count_matching`] and
/// [`ids_matching`].
pub(super) fn to_sql(query: &SearchQuery) -> SqlParts {
    let (include, exclude): (Vec<&TextTerm>, Vec<&TextTerm>) = query
        .terms()
        .iter()
        .filter_map(|term| match term {
            Term::Text(text) => Some(text),
            Term::Filter { .. } => None,
        })
        .partition(|text| !text.negated);

    let mut parts = SqlParts::default();
    let excluded = (!exclude.is_empty()).then(|| {
        let phrases: Vec<String> = exclude.iter().map(|term| fts_phrase(term)).collect();
        phrases.join(" OR ")
    });
    if !include.is_empty() {
        let phrases: Vec<String> = include.iter().map(|term| fts_phrase(term)).collect();
        let mut expression = format!("({})", phrases.join(" AND "));
        // FTS5's NOT is binary ("a NOT b"), so negated words go into the same
        // expression when there is something to subtract them from.
        if let Some(excluded) = excluded {
            let _ = write!(expression, " NOT ({excluded})");
        }
        parts.fts_match = Some(expression);
    } else if let Some(excluded) = excluded {
        parts
            .conditions
            .push("m.id NOT IN (SELECT rowid FROM search WHERE search MATCH ?)".into());
        parts.params.push(Value::Text(excluded));
    }
    for term in query.terms() {
        if let Term::Filter { filter, negated } = term {
            push_filter(&mut parts, filter, *negated);
        }
    }
    parts
}

/// The condition of a `tag:` term.
const TAGGED_WITH: &str = "m.id IN (SELECT mt.message_id FROM message_tags AS mt \
    WHERE mt.tag_id = (SELECT t.id FROM tags AS t WHERE t.name = ?))";

fn push_filter(parts: &mut SqlParts, filter: &Filter, negated: bool) {
    let condition = match (filter, negated) {
        (Filter::Read, false) => "m.read = 1",
        (Filter::Read, true) => "m.read = 0",
        // The partial index `messages_flagged` serves exactly `flagged = 1`.
        (Filter::Flagged, false) => "m.flagged = 1",
        (Filter::Flagged, true) => "m.flagged = 0",
        // A list of the tagged (read from `message_tags_message` in id order)
        // rather than a lookup per message: tagged messages are usually few.
        (Filter::Tagged, false) => "m.id IN (SELECT mt.message_id FROM message_tags AS mt)",
        (Filter::Tagged, true) => {
            "NOT EXISTS (SELECT 1 FROM message_tags AS mt WHERE mt.message_id = m.id)"
        }
        // `message_tags` is keyed by tag first, so this reads one tag's entries.
        (Filter::Tag(_), false) => TAGGED_WITH,
        (Filter::Tag(_), true) => {
            "m.id NOT IN (SELECT mt.message_id FROM message_tags AS mt \
            WHERE mt.tag_id = (SELECT t.id FROM tags AS t WHERE t.name = ?))"
        }
        (Filter::HasAttachment, false) => "m.attachments > 0",
        (Filter::HasAttachment, true) => "m.attachments = 0",
        // NULL until the index backfill has parsed a message stored before
        // schema migration 6: such a message is neither.
        (Filter::HasInline, false) => "m.inline > 0",
        (Filter::HasInline, true) => "m.inline = 0",
        (Filter::Larger(_), false) => "m.size > ?",
        (Filter::Larger(_), true) => "m.size <= ?",
        (Filter::Smaller(_), false) => "m.size < ?",
        (Filter::Smaller(_), true) => "m.size >= ?",
        (Filter::Before(_), false) | (Filter::After(_), true) => "m.received_at < ?",
        (Filter::Before(_), true) | (Filter::After(_), false) => "m.received_at >= ?",
    };
    parts.conditions.push(condition.into());
    match filter {
        Filter::Tag(name) => parts.params.push(Value::Text(name.clone())),
        Filter::Larger(bytes) | Filter::Smaller(bytes) => {
            parts.params.push(Value::Integer(to_i64(*bytes)));
        }
        Filter::Before(millis) | Filter::After(millis) => {
            parts.params.push(Value::Integer(*millis));
        }
        _ => {}
    }
}

/// The index columns a field searches, as an FTS5 column filter.
fn columns(field: Field) -> &'static str {
    match field {
        Field::Any => "{subject sender recipients body cc bcc reply_to}",
        Field::Subject => "subject",
        Field::From => "sender",
        Field::To => "recipients",
        Field::Cc => "cc",
        Field::Bcc => "bcc",
        Field::ReplyTo => "reply_to",
        Field::Addressed => "{sender recipients cc bcc reply_to}",
        Field::MessageId => "message_id",
    }
}

/// One term as an FTS5 phrase: a string (FTS5 tokenizes it as it tokenized the
/// indexed text, so punctuation inside becomes word breaks), its column filter,
/// and `*` for a prefix. A NUL would end FTS5's reading of the expression
/// ("unterminated string", a 500 for the user: issue #11, found by the
/// `web_query` fuzz target); it is a word break like any control character.
fn fts_phrase(term: &TextTerm) -> String {
    let mut phrase = String::from(columns(term.field));
    phrase.push_str(" : \"");
    phrase.push_str(&term.text.replace('"', "\"\"").replace('\0', " "));
    phrase.push('"');
    if term.prefix {
        phrase.push_str(" *");
    }
    phrase
}

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
    // A `tag:` alone is counted in `message_tags`, whose rows cascade with
    // their messages: looking up each of 5,000 tagged messages among 1,000,000
    // to count them took most of a 40 ms answer.
    if parts.fts_match.is_none() && parts.conditions == [TAGGED_WITH] {
        let count: i64 = conn
            .prepare_cached(
                "SELECT count(*) FROM message_tags AS mt \
                 WHERE mt.tag_id = (SELECT t.id FROM tags AS t WHERE t.name = ?)",
            )?
            .query_row(params_from_iter(&parts.params), |row| row.get(0))?;
        return Ok(count as u64);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-24T00:00:00Z in milliseconds.
    const NOV_24: i64 = 1_795_478_400_000;

    fn sql(input: &str) -> SqlParts {
        to_sql(&SearchQuery::parse(input).unwrap())
    }

    const ANY: &str = "{subject sender recipients body cc bcc reply_to}";

    #[test]
    fn words_become_one_fts_expression() {
        let cases = [
            ("invoice", format!("({ANY} : \"invoice\" *)")),
            ("\"a b\" c ", format!("({ANY} : \"a b\" AND {ANY} : \"c\")")),
            (
                "from:alice@example.com to:bob",
                "(sender : \"alice@example.com\" AND recipients : \"bob\" *)".into(),
            ),
            (
                "cc:a bcc:b reply-to:c message-id:d@e subject:f ",
                "(cc : \"a\" AND bcc : \"b\" AND reply_to : \"c\" AND message_id : \"d@e\" \
                 AND subject : \"f\")"
                    .into(),
            ),
            (
                "addressed:erin ",
                "({sender recipients cc bcc reply_to} : \"erin\")".into(),
            ),
            (
                "subject:x -spam !from:y",
                format!("(subject : \"x\") NOT ({ANY} : \"spam\" OR sender : \"y\")"),
            ),
        ];
        for (input, expression) in cases {
            let parts = sql(input);
            assert_eq!(parts.fts_match.as_deref(), Some(&*expression), "{input:?}");
            assert!(parts.conditions.is_empty());
        }
    }

    #[test]
    fn only_negated_words_exclude_through_a_subquery() {
        let parts = sql("-spam -addressed:y");
        assert_eq!(parts.fts_match, None);
        assert_eq!(
            parts.conditions,
            ["m.id NOT IN (SELECT rowid FROM search WHERE search MATCH ?)"]
        );
        assert_eq!(
            parts.params,
            [Value::Text(format!(
                "{ANY} : \"spam\" OR {{sender recipients cc bcc reply_to}} : \"y\""
            ))]
        );
    }

    #[test]
    fn filters_become_conditions_with_parameters() {
        let cases: &[(&str, &str, Option<Value>)] = &[
            ("is:read", "m.read = 1", None),
            ("is:unread", "m.read = 0", None),
            ("is:flagged", "m.flagged = 1", None),
            ("-is:flagged", "m.flagged = 0", None),
            (
                "is:tagged",
                "m.id IN (SELECT mt.message_id FROM message_tags AS mt)",
                None,
            ),
            (
                "is:untagged",
                "NOT EXISTS (SELECT 1 FROM message_tags AS mt WHERE mt.message_id = m.id)",
                None,
            ),
            (
                "tag:Urgent",
                "m.id IN (SELECT mt.message_id FROM message_tags AS mt \
                 WHERE mt.tag_id = (SELECT t.id FROM tags AS t WHERE t.name = ?))",
                Some(Value::Text("Urgent".into())),
            ),
            (
                "!tag:x",
                "m.id NOT IN (SELECT mt.message_id FROM message_tags AS mt \
                 WHERE mt.tag_id = (SELECT t.id FROM tags AS t WHERE t.name = ?))",
                Some(Value::Text("x".into())),
            ),
            ("has:attachment", "m.attachments > 0", None),
            ("-has:attachment", "m.attachments = 0", None),
            ("has:inline", "m.inline > 0", None),
            ("-has:inline", "m.inline = 0", None),
            ("larger:1k", "m.size > ?", Some(Value::Integer(1024))),
            ("-larger:1k", "m.size <= ?", Some(Value::Integer(1024))),
            ("smaller:2", "m.size < ?", Some(Value::Integer(2))),
            ("!smaller:2", "m.size >= ?", Some(Value::Integer(2))),
            (
                "before:2026-11-24",
                "m.received_at < ?",
                Some(Value::Integer(NOV_24)),
            ),
            (
                "-after:2026-11-24",
                "m.received_at < ?",
                Some(Value::Integer(NOV_24)),
            ),
            (
                "after:2026-11-24",
                "m.received_at >= ?",
                Some(Value::Integer(NOV_24)),
            ),
        ];
        for (input, condition, param) in cases {
            let parts = sql(input);
            assert_eq!(parts.fts_match, None, "{input:?}");
            assert_eq!(parts.conditions, [*condition], "{input:?}");
            assert_eq!(
                parts.params,
                param.iter().cloned().collect::<Vec<_>>(),
                "{input:?}"
            );
        }
        let parts = sql("is:unread tag:a larger:1 -spam");
        assert_eq!(parts.conditions.len(), 4);
        assert_eq!(
            parts.params,
            [
                Value::Text(format!("{ANY} : \"spam\"")),
                Value::Text("a".into()),
                Value::Integer(1)
            ],
            "placeholders take their parameters in order"
        );
    }

    #[test]
    fn a_double_quote_cannot_escape_the_fts_string() {
        let term = TextTerm {
            field: Field::Subject,
            text: "a\" OR \"b".into(),
            prefix: false,
            negated: false,
        };
        assert_eq!(fts_phrase(&term), "subject : \"a\"\" OR \"\"b\"");
        let nul = TextTerm {
            field: Field::Subject,
            text: "\0abc\0".into(),
            prefix: true,
            negated: false,
        };
        assert_eq!(fts_phrase(&nul), "subject : \" abc \" *");
    }
}
