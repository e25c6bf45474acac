//! The search language of the message list, and how it becomes SQL.
//!
//! A user (the web page's search box, `GET /api/v1/search?query=`) types something
//! like `from:alice@example.com subject:"quarterly report" -is:read invoice`.
//! [`SearchQuery::parse`] turns that text into terms without touching the
//! database; [`crate::Store::search`] and [`crate::Store::delete_matching`] turn
//! the terms into one SQL statement over the `messages` table and the `search`
//! full-text index (SQLite FTS5, filled at delivery).
//!
//! ```text
//! invoice            a word in the subject, an address (From, To, Cc, envelope) or the body
//! "quarterly report" these words, next to each other
//! from:alice         From header or envelope sender contains the word(s)
//! to:example.com     To, Cc or an envelope recipient contains the word(s)
//! subject:"a b"      the subject contains the phrase
//! is:read is:unread  read state
//! has:attachment     has at least one attachment (inline images do not count)
//! before:2026-11-24  received before that UTC day (or RFC 3339 instant)
//! after:2026-11-24   received on that UTC day or later (after an RFC 3339 instant)
//! -term -from:x      not
//! ```
//!
//! Terms are ANDed; matching ignores case and diacritics (`resume` finds `Résumé`).
//! Words match whole words, as FTS5 splits text into words at every character
//! that is not a letter or digit: `alice@example.com` is the words `alice`,
//! `example`, `com`, so `from:example.com` and `to:alice` are phrase searches that
//! find it. For results as you type, the last term matches as a prefix
//! (`invo` finds `invoice`) unless it is quoted, negated, or followed by a space.

use std::fmt::Write as _;

use rusqlite::types::Value;

use crate::Summary;
use crate::time::days_from_civil;

/// The longest search text accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 1000;

/// The most terms (words, phrases, filters) one search may have.
pub const MAX_TERMS: usize = 32;

/// A prefix shorter than this matches as a whole word instead: a one-letter
/// prefix would merge the index entries of thousands of words for a result
/// nobody reads, on every first keystroke.
const MIN_PREFIX_CHARS: usize = 2;

/// How many characters of a user's filter name an error message repeats.
const MAX_ECHO_CHARS: usize = 40;

/// Why a search text is not a valid query. The message is one line meant for the
/// user who typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SearchError {
    /// A `name:` that is not a known filter (the name as typed, without colon).
    #[error(
        "unknown filter \"{0}:\"; filters are from:, to:, subject:, is:, has:, before:, after: (quote text that has a colon)"
    )]
    UnknownFilter(String),
    /// `before:` or `after:` with a value that is not a date (the filter name).
    #[error("\"{0}:\" needs a date like 2026-11-24")]
    BadDate(&'static str),
    /// `is:` with something other than `read` or `unread`.
    #[error("\"is:\" takes read or unread, not \"{0}\"")]
    BadIs(String),
    /// `has:` with something other than `attachment`.
    #[error("\"has:\" takes attachment, not \"{0}\"")]
    BadHas(String),
    /// A `"` without its closing `"`.
    #[error("unclosed quote")]
    UnclosedQuote,
    /// More than [`MAX_QUERY_BYTES`] bytes or [`MAX_TERMS`] terms.
    #[error(
        "the search is too long; use at most {MAX_TERMS} terms and {MAX_QUERY_BYTES} characters"
    )]
    TooLong,
}

/// One page of search results, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchPage {
    /// How many messages match the query in all, regardless of the page.
    pub matches: u64,
    /// The page asked for ([`crate::ListQuery`]) of the matching messages.
    pub messages: Vec<Summary>,
}

/// A parsed search: what [`crate::Store::search`] looks for. Parsing does no I/O.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchQuery {
    terms: Vec<Term>,
}

/// One condition of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    /// Words looked up in the full-text index.
    Text(TextTerm),
    /// A condition on a column of `messages`.
    Flag { flag: Flag, negated: bool },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct TextTerm {
    /// `None` searches every column.
    column: Option<Column>,
    /// The words, as typed (FTS5 tokenizes them like the indexed text).
    text: String,
    /// The last word may be the start of a longer one.
    prefix: bool,
    negated: bool,
}

/// The columns of the `search` full-text table a filter can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Subject,
    Sender,
    Recipients,
}

impl Column {
    fn name(self) -> &'static str {
        match self {
            Column::Subject => "subject",
            Column::Sender => "sender",
            Column::Recipients => "recipients",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flag {
    Read,
    HasAttachment,
    /// Received before this many milliseconds since the Unix epoch.
    Before(i64),
    /// Received at or after this many milliseconds since the Unix epoch.
    After(i64),
}

impl SearchQuery {
    /// Parse a search as a user typed it. An empty or blank text gives an empty
    /// query, which matches every message. Words without a letter or digit (`&`,
    /// `-`) and filters without a value (`from:` while it is being typed) are
    /// ignored, as they cannot narrow anything.
    pub fn parse(text: &str) -> Result<SearchQuery, SearchError> {
        if text.len() > MAX_QUERY_BYTES {
            return Err(SearchError::TooLong);
        }
        let words = lex(text)?;
        let mut terms = Vec::new();
        let last = words.len().checked_sub(1);
        let ends_open = !text.ends_with(char::is_whitespace);
        for (index, word) in words.into_iter().enumerate() {
            let may_be_prefix = ends_open && Some(index) == last;
            if let Some(term) = interpret(word, may_be_prefix)? {
                terms.push(term);
            }
        }
        if terms.len() > MAX_TERMS {
            return Err(SearchError::TooLong);
        }
        Ok(SearchQuery { terms })
    }

    /// Whether the query has no conditions at all, so it matches every message.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The query as SQL pieces for the store to put together.
    pub(crate) fn to_sql(&self) -> SqlParts {
        let (include, exclude): (Vec<&TextTerm>, Vec<&TextTerm>) = self
            .terms
            .iter()
            .filter_map(|term| match term {
                Term::Text(text) => Some(text),
                Term::Flag { .. } => None,
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
        for term in &self.terms {
            if let Term::Flag { flag, negated } = term {
                push_flag(&mut parts, *flag, *negated);
            }
        }
        parts
    }
}

/// A query as SQL: an optional FTS5 `MATCH` expression for the `search` table,
/// and conditions over `messages AS m`, whose `?` placeholders take `params` in
/// order.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct SqlParts {
    pub fts_match: Option<String>,
    pub conditions: Vec<String>,
    pub params: Vec<Value>,
}

fn push_flag(parts: &mut SqlParts, flag: Flag, negated: bool) {
    let condition = match (flag, negated) {
        (Flag::Read, false) => "m.read = 1",
        (Flag::Read, true) => "m.read = 0",
        (Flag::HasAttachment, false) => "m.attachments > 0",
        (Flag::HasAttachment, true) => "m.attachments = 0",
        (Flag::Before(_), false) | (Flag::After(_), true) => "m.received_at < ?",
        (Flag::Before(_), true) | (Flag::After(_), false) => "m.received_at >= ?",
    };
    parts.conditions.push(condition.into());
    if let Flag::Before(millis) | Flag::After(millis) = flag {
        parts.params.push(Value::Integer(millis));
    }
}

/// One term as an FTS5 phrase: a string (FTS5 tokenizes it as it tokenized the
/// indexed text, so punctuation inside becomes word breaks), its column filter,
/// and `*` for a prefix. A NUL would end FTS5's reading of the expression
/// ("unterminated string", a 500 for the user: issue #11, found by the
/// `web_query` fuzz target); it is a word break like any control character.
fn fts_phrase(term: &TextTerm) -> String {
    let mut phrase = String::new();
    if let Some(column) = term.column {
        phrase.push_str(column.name());
        phrase.push_str(" : ");
    }
    phrase.push('"');
    phrase.push_str(&term.text.replace('"', "\"\"").replace('\0', " "));
    phrase.push('"');
    if term.prefix {
        phrase.push_str(" *");
    }
    phrase
}

/// A whitespace-separated piece of the search text, quotes removed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Word {
    negated: bool,
    /// The filter name before the colon, as typed.
    filter: Option<String>,
    value: String,
    /// Some of the value was in quotes.
    quoted: bool,
}

/// Split the text into words: whitespace separates them except inside quotes; a
/// leading `-` negates; a leading run of letters (and `-`) ending in `:` names a
/// filter.
fn lex(text: &str) -> Result<Vec<Word>, SearchError> {
    let mut words = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let Some(&first) = chars.peek() else {
            return Ok(words);
        };
        let mut rest: String = chars.clone().take_while(|c| !c.is_whitespace()).collect();
        let negated = first == '-' && rest.len() > 1;
        if negated {
            chars.next();
            rest.remove(0);
        }
        let filter = filter_name(&rest).map(str::to_string);
        if let Some(name) = &filter {
            // The name and the colon.
            for _ in 0..=name.chars().count() {
                chars.next();
            }
        }
        let mut value = String::new();
        let mut quoted = false;
        while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
            if c != '"' {
                value.push(c);
                continue;
            }
            quoted = true;
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some(c) => value.push(c),
                    None => return Err(SearchError::UnclosedQuote),
                }
            }
        }
        words.push(Word {
            negated,
            filter,
            value,
            quoted,
        });
    }
}

/// `from` for `from:alice`: letters, then letters or `-`, then a colon.
fn filter_name(word: &str) -> Option<&str> {
    let (name, _) = word.split_once(':')?;
    let mut chars = name.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    (starts_with_letter && chars.all(|c| c.is_ascii_alphabetic() || c == '-')).then_some(name)
}

/// What a word means, or `None` if it cannot narrow a search.
fn interpret(word: Word, may_be_prefix: bool) -> Result<Option<Term>, SearchError> {
    let Word {
        negated,
        filter,
        value,
        quoted,
    } = word;
    let column = match filter.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None => None,
        Some("from") => Some(Column::Sender),
        Some("to") => Some(Column::Recipients),
        Some("subject") => Some(Column::Subject),
        Some(name @ ("is" | "has" | "before" | "after")) => {
            if value.trim().is_empty() {
                return Ok(None);
            }
            let flag = parse_flag(name, value.trim())?;
            return Ok(Some(flag_term(flag, negated)));
        }
        Some(_) => {
            let name: String = filter
                .unwrap_or_default()
                .chars()
                .take(MAX_ECHO_CHARS)
                .collect();
            return Err(SearchError::UnknownFilter(name));
        }
    };
    let mut words = value
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty());
    let Some(last_word) = words.next_back() else {
        return Ok(None);
    };
    let prefix = may_be_prefix
        && !quoted
        && !negated
        && last_word.chars().count() >= MIN_PREFIX_CHARS
        && value.ends_with(char::is_alphanumeric);
    Ok(Some(Term::Text(TextTerm {
        column,
        text: value,
        prefix,
        negated,
    })))
}

fn parse_flag(name: &str, value: &str) -> Result<(Flag, bool), SearchError> {
    let lower = value.to_ascii_lowercase();
    match name {
        "is" => match lower.as_str() {
            "read" | "seen" => Ok((Flag::Read, false)),
            "unread" | "unseen" => Ok((Flag::Read, true)),
            _ => Err(SearchError::BadIs(echo(value))),
        },
        "has" => match lower.as_str() {
            "attachment" | "attachments" => Ok((Flag::HasAttachment, false)),
            _ => Err(SearchError::BadHas(echo(value))),
        },
        "before" => {
            let (millis, _) = parse_time(value).ok_or(SearchError::BadDate("before"))?;
            Ok((Flag::Before(millis), false))
        }
        _ => {
            let (millis, date_only) = parse_time(value).ok_or(SearchError::BadDate("after"))?;
            // A day includes its first instant; an instant does not include itself.
            let millis = if date_only { millis } else { millis + 1 };
            Ok((Flag::After(millis), false))
        }
    }
}

fn flag_term((flag, inverted): (Flag, bool), negated: bool) -> Term {
    Term::Flag {
        flag,
        negated: negated != inverted,
    }
}

fn echo(value: &str) -> String {
    // A quoted value may hold a line break (`is:"a<LF>b"`); the message must
    // stay one line (issue #11, found by the `web_query` fuzz target).
    value
        .chars()
        .take(MAX_ECHO_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Milliseconds since the Unix epoch of `YYYY-MM-DD` (the start of that UTC day,
/// with `true`) or of an RFC 3339 date-time (`false`).
fn parse_time(text: &str) -> Option<(i64, bool)> {
    let date = text.get(..10)?;
    let days = parse_date(date)?;
    let rest = &text[10..];
    if rest.is_empty() {
        return Some((days * 86_400_000, true));
    }
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let (clock, offset) = split_offset(rest)?;
    let (hms, fraction) = match clock.split_once('.') {
        Some((hms, fraction)) => (hms, Some(fraction)),
        None => (clock, None),
    };
    let mut fields = hms.split(':');
    let hour = two_digits(fields.next()?, 23)?;
    let minute = two_digits(fields.next()?, 59)?;
    // 60 for a leap second, which lands on the next second's first instant.
    let second = two_digits(fields.next()?, 60)?;
    if fields.next().is_some() {
        return None;
    }
    let millis = match fraction {
        None => 0,
        Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
            let padded: String = digits.chars().chain("00".chars()).take(3).collect();
            padded.parse::<i64>().ok()?
        }
        Some(_) => return None,
    };
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset;
    Some((seconds * 1000 + millis, false))
}

/// The clock part and the UTC offset in seconds of `HH:MM:SS[.fff](Z|+HH:MM|-HH:MM)`.
fn split_offset(text: &str) -> Option<(&str, i64)> {
    if let Some(clock) = text.strip_suffix(['Z', 'z']) {
        return Some((clock, 0));
    }
    let split = text.len().checked_sub(6)?;
    let (clock, offset) = (text.get(..split)?, text.get(split..)?);
    let sign = match offset.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (hours, minutes) = offset[1..].split_once(':')?;
    Some((
        clock,
        sign * (two_digits(hours, 23)? * 3_600 + two_digits(minutes, 59)? * 60),
    ))
}

fn two_digits(text: &str, max: i64) -> Option<i64> {
    if text.len() != 2 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().filter(|&n| n <= max)
}

/// Days since 1970-01-01 of a valid `YYYY-MM-DD`.
fn parse_date(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    let shape_ok = bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
    if !shape_ok {
        return None;
    }
    let year: i64 = text[..4].parse().ok()?;
    let month: i64 = text[5..7].parse().ok()?;
    let day: i64 = text[8..].parse().ok()?;
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    (1..=month_days)
        .contains(&day)
        .then(|| days_from_civil(year, month, day))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;
    /// 2026-11-24T00:00:00Z in milliseconds.
    const NOV_24: i64 = 20_781 * DAY;

    fn text(column: Option<Column>, text: &str, prefix: bool, negated: bool) -> Term {
        Term::Text(TextTerm {
            column,
            text: text.into(),
            prefix,
            negated,
        })
    }

    fn flag(flag: Flag, negated: bool) -> Term {
        Term::Flag { flag, negated }
    }

    fn terms(input: &str) -> Vec<Term> {
        SearchQuery::parse(input)
            .unwrap_or_else(|error| panic!("{input:?}: {error}"))
            .terms
    }

    #[test]
    fn parses_every_kind_of_term() {
        use Column::*;
        let cases: Vec<(&str, Vec<Term>)> = vec![
            ("", vec![]),
            ("   \t ", vec![]),
            ("invoice", vec![text(None, "invoice", true, false)]),
            ("invoice ", vec![text(None, "invoice", false, false)]),
            (
                "Invoice March",
                vec![
                    text(None, "Invoice", false, false),
                    text(None, "March", true, false),
                ],
            ),
            ("i", vec![text(None, "i", false, false)]),
            (
                "\"quarterly report\"",
                vec![text(None, "quarterly report", false, false)],
            ),
            ("-spam", vec![text(None, "spam", false, true)]),
            ("-\"big sale\"", vec![text(None, "big sale", false, true)]),
            (
                "from:alice@example.com",
                vec![text(Some(Sender), "alice@example.com", true, false)],
            ),
            (
                "FROM:Alice ",
                vec![text(Some(Sender), "Alice", false, false)],
            ),
            (
                "to:alice",
                vec![text(Some(Recipients), "alice", true, false)],
            ),
            (
                "-from:x.test",
                vec![text(Some(Sender), "x.test", false, true)],
            ),
            (
                "subject:\"quarterly report\"",
                vec![text(Some(Subject), "quarterly report", false, false)],
            ),
            (
                "subject:q\"1 report\"",
                vec![text(Some(Subject), "q1 report", false, false)],
            ),
            ("is:read", vec![flag(Flag::Read, false)]),
            ("is:unread", vec![flag(Flag::Read, true)]),
            ("-is:read", vec![flag(Flag::Read, true)]),
            ("-is:unread", vec![flag(Flag::Read, false)]),
            ("IS:UNREAD", vec![flag(Flag::Read, true)]),
            ("has:attachment", vec![flag(Flag::HasAttachment, false)]),
            ("has:attachments", vec![flag(Flag::HasAttachment, false)]),
            ("-has:attachment", vec![flag(Flag::HasAttachment, true)]),
            ("before:2026-11-24", vec![flag(Flag::Before(NOV_24), false)]),
            ("after:2026-11-24", vec![flag(Flag::After(NOV_24), false)]),
            ("-after:2026-11-24", vec![flag(Flag::After(NOV_24), true)]),
            (
                "before:2026-11-24T10:30:00Z",
                vec![flag(Flag::Before(NOV_24 + 37_800_000), false)],
            ),
            (
                "after:2026-11-24T10:30:00.25+01:00",
                vec![flag(Flag::After(NOV_24 + 34_200_250 + 1), false)],
            ),
            (
                "before:\"2026-11-24 00:00:00-00:30\"",
                vec![flag(Flag::Before(NOV_24 + 1_800_000), false)],
            ),
            // Incomplete or empty pieces, as while typing, narrow nothing.
            ("from:", vec![]),
            ("is: ", vec![]),
            ("subject:\"\"", vec![]),
            ("& - --", vec![]),
            ("10:30", vec![text(None, "10:30", true, false)]),
            (
                "from:alice@example.com subject:invoice -is:read",
                vec![
                    text(Some(Sender), "alice@example.com", false, false),
                    text(Some(Subject), "invoice", false, false),
                    flag(Flag::Read, true),
                ],
            ),
            ("smörgåsbord", vec![text(None, "smörgåsbord", true, false)]),
            // A prefix needs the text to end in a word character.
            ("alice@", vec![text(None, "alice@", false, false)]),
        ];
        for (input, expected) in cases {
            assert_eq!(terms(input), expected, "{input:?}");
        }
    }

    #[test]
    fn errors_are_one_clear_line() {
        let cases = [
            (
                "form:alice",
                "unknown filter \"form:\"; filters are from:, to:, subject:, is:, has:, before:, after: (quote text that has a colon)",
            ),
            (
                "http://example.com",
                "unknown filter \"http:\"; filters are from:, to:, subject:, is:, has:, before:, after: (quote text that has a colon)",
            ),
            (
                "before:yesterday",
                "\"before:\" needs a date like 2026-11-24",
            ),
            (
                "after:2026-02-30",
                "\"after:\" needs a date like 2026-11-24",
            ),
            (
                "after:2026-11-24T25:00:00Z",
                "\"after:\" needs a date like 2026-11-24",
            ),
            (
                "before:2026-11-24T10:00:00",
                "\"before:\" needs a date like 2026-11-24",
            ),
            ("before:2026-11", "\"before:\" needs a date like 2026-11-24"),
            (
                "is:starred",
                "\"is:\" takes read or unread, not \"starred\"",
            ),
            ("has:pdf", "\"has:\" takes attachment, not \"pdf\""),
            (
                "is:\"r\nea\u{0}d\"",
                "\"is:\" takes read or unread, not \"r ea d\"",
            ),
            ("\"quarterly report", "unclosed quote"),
            ("subject:\"quarterly", "unclosed quote"),
        ];
        for (input, message) in cases {
            let error = SearchQuery::parse(input).expect_err(input);
            assert_eq!(error.to_string(), message, "{input:?}");
            assert!(!error.to_string().contains('\n'));
        }
    }

    #[test]
    fn quoted_text_with_a_colon_is_text() {
        assert_eq!(
            terms("\"http://example.com\""),
            vec![text(None, "http://example.com", false, false)]
        );
    }

    #[test]
    fn long_queries_are_refused() {
        let long = "a".repeat(MAX_QUERY_BYTES + 1);
        assert_eq!(SearchQuery::parse(&long), Err(SearchError::TooLong));
        let many = "ab ".repeat(MAX_TERMS + 1);
        assert_eq!(SearchQuery::parse(&many), Err(SearchError::TooLong));
        let name = format!("{}:x", "z".repeat(200));
        let message = SearchQuery::parse(&name).unwrap_err().to_string();
        assert!(message.len() < 200, "{message}");
    }

    #[test]
    fn is_empty_only_without_conditions() {
        assert!(SearchQuery::parse("").unwrap().is_empty());
        assert!(SearchQuery::parse("from: &").unwrap().is_empty());
        assert!(!SearchQuery::parse("is:read").unwrap().is_empty());
        assert!(SearchQuery::default().is_empty());
    }

    fn sql(input: &str) -> SqlParts {
        SearchQuery::parse(input).unwrap().to_sql()
    }

    #[test]
    fn words_become_one_fts_expression() {
        let cases = [
            ("invoice", "(\"invoice\" *)"),
            ("\"a b\" c ", "(\"a b\" AND \"c\")"),
            (
                "from:alice@example.com to:bob",
                "(sender : \"alice@example.com\" AND recipients : \"bob\" *)",
            ),
            (
                "subject:x -spam -from:y",
                "(subject : \"x\") NOT (\"spam\" OR sender : \"y\")",
            ),
        ];
        for (input, expression) in cases {
            let parts = sql(input);
            assert_eq!(parts.fts_match.as_deref(), Some(expression), "{input:?}");
            assert!(parts.conditions.is_empty());
        }
    }

    #[test]
    fn only_negated_words_exclude_through_a_subquery() {
        let parts = sql("-spam -from:y");
        assert_eq!(parts.fts_match, None);
        assert_eq!(
            parts.conditions,
            ["m.id NOT IN (SELECT rowid FROM search WHERE search MATCH ?)"]
        );
        assert_eq!(
            parts.params,
            [Value::Text("\"spam\" OR sender : \"y\"".into())]
        );
    }

    #[test]
    fn flags_become_conditions_with_parameters() {
        let parts = sql("is:unread has:attachment before:2026-11-24 -after:2026-11-24");
        assert_eq!(parts.fts_match, None);
        assert_eq!(
            parts.conditions,
            [
                "m.read = 0",
                "m.attachments > 0",
                "m.received_at < ?",
                "m.received_at < ?"
            ]
        );
        assert_eq!(
            parts.params,
            [Value::Integer(NOV_24), Value::Integer(NOV_24)]
        );
    }

    #[test]
    fn a_double_quote_cannot_escape_the_fts_string() {
        let term = TextTerm {
            column: None,
            text: "a\" OR \"b".into(),
            prefix: false,
            negated: false,
        };
        assert_eq!(fts_phrase(&term), "\"a\"\" OR \"\"b\"");
        let nul = TextTerm {
            column: None,
            text: "\0abc\0".into(),
            prefix: true,
            negated: false,
        };
        assert_eq!(fts_phrase(&nul), "\" abc \" *");
    }

    #[test]
    fn dates() {
        let cases = [
            ("1970-01-01", Some((0, true))),
            ("2000-02-29", Some((951_782_400_000, true))),
            ("1900-02-29", None),
            ("2026-13-01", None),
            ("2026-1-01", None),
            ("1969-12-31T23:59:59Z", Some((-1000, false))),
            ("1970-01-01T00:00:00.5Z", Some((500, false))),
            ("1970-01-01T00:00:00.123456z", Some((123, false))),
            ("1970-01-01t01:00:00+01:00", Some((0, false))),
            ("1970-01-01T00:00:00.Z", None),
            ("1970-01-01T00:00Z", None),
            ("1970-01-01X00:00:00Z", None),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_time(input), expected, "{input:?}");
        }
    }
}
