//! The search language of the message list, parsed into terms any backend can
//! answer.
//!
//! A user (the web page's search box, `GET /api/v1/search?query=`) types something
//! like `from:alice@example.com subject:"quarterly report" -is:read invoice`.
//! [`SearchQuery::parse`] (or [`SearchQuery::parse_in`], with a time zone for
//! dates) turns that text into terms without touching the database; the backend
//! behind [`crate::Store::search`] and [`crate::Store::delete_matching`] turns
//! the terms into its own query (for SQLite: `sqlite/search_sql.rs`, over the
//! `messages` table and the FTS5 index filled at delivery; for PostgreSQL:
//! `postgres/search.rs`, over a tsvector of the same words, split in Rust as
//! FTS5 splits them, so a query finds the same messages on both).
//!
//! ```text
//! invoice             a word in the subject, an address (From, To, Cc, Bcc,
//!                     Reply-To, envelope) or the body (text and attachment names)
//! "quarterly report"  these words, next to each other
//! from:alice          From header or envelope sender contains the word(s)
//! to:example.com      To, Cc or an envelope recipient contains the word(s)
//! cc:bob              Cc header
//! bcc:carol           Bcc header, or an envelope recipient not in To or Cc
//!                     (a blind recipient)
//! reply-to:dave       Reply-To header
//! addressed:erin      any of From, To, Cc, Bcc, Reply-To and the envelope
//! subject:"a b"       the subject contains the phrase
//! message-id:abc@x    the Message-ID header contains the word(s)
//! tag:urgent          tagged with exactly that tag (any case)
//! is:read is:unread   read state
//! is:flagged          starred (is:unflagged: not)
//! is:tagged           has at least one tag (is:untagged: none)
//! has:attachment      has at least one attachment (inline parts do not count)
//! has:inline          has at least one inline part (a cid: image)
//! larger:10k          bigger than 10 KiB (k or kb: KiB, m or mb: MiB, none:
//! smaller:1.5m        bytes; decimals allowed), smaller than 1.5 MiB
//! before:2026-11-24   received before that day began (or before an instant)
//! after:2026-11-24    received on that day or later (or after an instant)
//! -term !term         not (either sign negates any term)
//! ```
//!
//! Terms are ANDed; matching ignores case and diacritics (`resume` finds `Résumé`).
//! Words match whole words, as the index splits text into words at every
//! character that is not a letter or digit: `alice@example.com` is the words
//! `alice`, `example`, `com`, so `from:example.com` and `to:alice` are phrase
//! searches that find it. For results as you type, the last term matches as a
//! prefix (`invo` finds `invoice`) unless it is quoted, negated, or followed by a
//! space. The negation of `larger:N` is "at most N bytes", of `smaller:N` "at
//! least N bytes".
//!
//! Dates: `2026-11-24` is the start of that day and `2026-11-24T10:30:00` a
//! wall-clock time, both in the query's time zone (UTC unless
//! [`SearchQuery::parse_in`] names another); an RFC 3339 time with an offset
//! (`2026-11-24T10:30:00+01:00`, `...Z`) is that instant wherever it is asked.

use jiff::tz::{Offset, TimeZone};

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

/// How many characters of a user's text an error message repeats.
const MAX_ECHO_CHARS: usize = 40;

/// Why a search text is not a valid query. The message is one line meant for the
/// user who typed it, naming the term that is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SearchError {
    /// A `name:` that is not a known filter (the name as typed, without colon).
    #[error(
        "unknown filter \"{0}:\"; filters are from:, to:, cc:, bcc:, reply-to:, addressed:, subject:, message-id:, tag:, is:, has:, larger:, smaller:, before:, after: (quote text that has a colon)"
    )]
    UnknownFilter(String),
    /// `before:` or `after:` with a value that is not a date (the filter name and
    /// the value).
    #[error("\"{0}:\" needs a date like 2026-11-24, not \"{1}\"")]
    BadDate(&'static str, String),
    /// `larger:` or `smaller:` with a value that is not a size (the filter name
    /// and the value).
    #[error("\"{0}:\" needs a size like 10k, 1.5m or 2048, not \"{1}\"")]
    BadSize(&'static str, String),
    /// `is:` with a value it does not know.
    #[error("\"is:\" takes read, unread, flagged, unflagged, tagged or untagged, not \"{0}\"")]
    BadIs(String),
    /// `has:` with a value it does not know.
    #[error("\"has:\" takes attachment or inline, not \"{0}\"")]
    BadHas(String),
    /// A time zone that is neither an IANA name nor an offset.
    #[error(
        "unknown time zone \"{0}\"; use a name like Europe/Amsterdam, UTC, or an offset like +02:00"
    )]
    BadTimeZone(String),
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

/// A parsed search: what [`crate::Store::search`] looks for. Parsing does no I/O
/// (except reading the time zone database when [`SearchQuery::parse_in`] is
/// given a zone name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchQuery {
    terms: Vec<Term>,
}

/// One condition of a query; a backend answers every kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Term {
    /// Words looked up in the full-text index.
    Text(TextTerm),
    /// A condition on what the store keeps of a message besides its words.
    Filter {
        /// The condition.
        filter: Filter,
        /// The term matches the messages the condition does not hold for.
        negated: bool,
    },
}

/// Words, and where to look for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TextTerm {
    pub(crate) field: Field,
    /// The words, as typed (the backend splits them into words as it splits the
    /// indexed text).
    pub(crate) text: String,
    /// The last word may be the start of a longer one.
    pub(crate) prefix: bool,
    pub(crate) negated: bool,
}

/// What of a message a text term looks in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    /// Everything but the Message-ID.
    Any,
    Subject,
    /// The From header and the envelope sender.
    From,
    /// The To and Cc headers and the envelope recipients.
    To,
    Cc,
    /// The Bcc header and the blind envelope recipients (not in To or Cc).
    Bcc,
    ReplyTo,
    /// Every address field: From, To, Cc, Bcc, Reply-To and the envelope.
    Addressed,
    MessageId,
}

/// A condition that is not about words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Filter {
    Read,
    Flagged,
    /// Has at least one tag.
    Tagged,
    /// Has this tag (compared without regard to case).
    Tag(String),
    HasAttachment,
    HasInline,
    /// More than this many bytes.
    Larger(u64),
    /// Fewer than this many bytes.
    Smaller(u64),
    /// Received before this many milliseconds since the Unix epoch.
    Before(i64),
    /// Received at or after this many milliseconds since the Unix epoch.
    After(i64),
}

impl SearchQuery {
    /// Parse a search as a user typed it, with dates in UTC. An empty or blank
    /// text gives an empty query, which matches every message. Words without a
    /// letter or digit (`&`, `-`) and filters without a value (`from:` while it
    /// is being typed) are ignored, as they cannot narrow anything.
    pub fn parse(text: &str) -> Result<SearchQuery, SearchError> {
        Self::parse_zoned(text, &TimeZone::UTC)
    }

    /// [`SearchQuery::parse`] with the dates of `before:` and `after:` in time
    /// zone `tz`: an IANA name (`Europe/Amsterdam`, read from the system's time
    /// zone database), `UTC`, or a fixed offset (`+02:00`, `-0530`, `+02`).
    /// `None` or a blank zone is UTC. Mailpit's `tz` parameter.
    pub fn parse_in(text: &str, tz: Option<&str>) -> Result<SearchQuery, SearchError> {
        if text.len() > MAX_QUERY_BYTES {
            return Err(SearchError::TooLong);
        }
        let zone = match tz.map(str::trim).filter(|tz| !tz.is_empty()) {
            None => TimeZone::UTC,
            Some(name) => time_zone(name).ok_or_else(|| SearchError::BadTimeZone(echo(name)))?,
        };
        Self::parse_zoned(text, &zone)
    }

    fn parse_zoned(text: &str, zone: &TimeZone) -> Result<SearchQuery, SearchError> {
        if text.len() > MAX_QUERY_BYTES {
            return Err(SearchError::TooLong);
        }
        let words = lex(text)?;
        let mut terms = Vec::new();
        let last = words.len().checked_sub(1);
        let ends_open = !text.ends_with(char::is_whitespace);
        for (index, word) in words.into_iter().enumerate() {
            let may_be_prefix = ends_open && Some(index) == last;
            if let Some(term) = interpret(word, may_be_prefix, zone)? {
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

    /// Whether the query looks words up in the search index (as opposed to
    /// filters on flags, tags, sizes and dates alone).
    pub(crate) fn has_words(&self) -> bool {
        self.terms.iter().any(|term| matches!(term, Term::Text(_)))
    }

    /// Whether the query asks about tags (`tag:`, `is:tagged`), which the
    /// `--tag` rules may add to a new message together with its index entry.
    pub(crate) fn has_tag_filters(&self) -> bool {
        self.terms.iter().any(|term| {
            matches!(
                term,
                Term::Filter {
                    filter: Filter::Tag(_) | Filter::Tagged,
                    ..
                }
            )
        })
    }

    /// The conditions, all of which a message must meet.
    pub(crate) fn terms(&self) -> &[Term] {
        &self.terms
    }
}

/// `UTC`, an offset, or an IANA zone name from the system's database.
fn time_zone(name: &str) -> Option<TimeZone> {
    if ["utc", "z", "gmt"].contains(&name.to_ascii_lowercase().as_str()) {
        return Some(TimeZone::UTC);
    }
    if name.starts_with(['+', '-']) {
        let seconds = i32::try_from(parse_offset(name)?).ok()?;
        return Some(TimeZone::fixed(Offset::from_seconds(seconds).ok()?));
    }
    TimeZone::get(name).ok()
}

/// Seconds east of UTC of `+HH:MM`, `+HHMM` or `+HH` (or with `-`).
fn parse_offset(text: &str) -> Option<i64> {
    let sign = match text.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits = &text[1..];
    let (hours, minutes) = match digits.len() {
        2 => (digits, "00"),
        4 => digits.split_at(2),
        5 if digits.as_bytes()[2] == b':' => (&digits[..2], &digits[3..]),
        _ => return None,
    };
    Some(sign * (two_digits(hours, 23)? * 3_600 + two_digits(minutes, 59)? * 60))
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
/// leading `-` or `!` negates; a leading run of letters (and `-`) ending in `:`
/// names a filter.
fn lex(text: &str) -> Result<Vec<Word>, SearchError> {
    let mut words = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let Some(&first) = chars.peek() else {
            return Ok(words);
        };
        let mut rest: String = chars.clone().take_while(|c| !c.is_whitespace()).collect();
        let negated = matches!(first, '-' | '!') && rest.len() > 1;
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
fn interpret(
    word: Word,
    may_be_prefix: bool,
    zone: &TimeZone,
) -> Result<Option<Term>, SearchError> {
    let Word {
        negated,
        filter,
        value,
        quoted,
    } = word;
    let field = match filter.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None => Field::Any,
        Some("from") => Field::From,
        Some("to") => Field::To,
        Some("cc") => Field::Cc,
        Some("bcc") => Field::Bcc,
        Some("reply-to") => Field::ReplyTo,
        Some("addressed") => Field::Addressed,
        Some("subject") => Field::Subject,
        Some("message-id") => Field::MessageId,
        Some(name @ ("is" | "has" | "tag" | "larger" | "smaller" | "before" | "after")) => {
            let value = value.trim();
            if value.is_empty() {
                return Ok(None);
            }
            let (filter, inverted) = parse_filter(name, value, zone)?;
            return Ok(Some(Term::Filter {
                filter,
                negated: negated != inverted,
            }));
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
        field,
        text: value,
        prefix,
        negated,
    })))
}

/// The filter `name:value` means, and whether it is the negation of that
/// filter (`is:unread` is "not read").
fn parse_filter(name: &str, value: &str, zone: &TimeZone) -> Result<(Filter, bool), SearchError> {
    let lower = value.to_ascii_lowercase();
    match name {
        "is" => match lower.as_str() {
            "read" | "seen" => Ok((Filter::Read, false)),
            "unread" | "unseen" => Ok((Filter::Read, true)),
            "flagged" | "starred" => Ok((Filter::Flagged, false)),
            "unflagged" | "unstarred" => Ok((Filter::Flagged, true)),
            "tagged" => Ok((Filter::Tagged, false)),
            "untagged" => Ok((Filter::Tagged, true)),
            _ => Err(SearchError::BadIs(echo(value))),
        },
        "has" => match lower.as_str() {
            "attachment" | "attachments" => Ok((Filter::HasAttachment, false)),
            "inline" | "inlines" => Ok((Filter::HasInline, false)),
            _ => Err(SearchError::BadHas(echo(value))),
        },
        "tag" => Ok((Filter::Tag(value.to_string()), false)),
        "larger" => {
            let bytes =
                parse_size(value).ok_or_else(|| SearchError::BadSize("larger", echo(value)))?;
            Ok((Filter::Larger(bytes), false))
        }
        "smaller" => {
            let bytes =
                parse_size(value).ok_or_else(|| SearchError::BadSize("smaller", echo(value)))?;
            Ok((Filter::Smaller(bytes), false))
        }
        "before" => {
            let (millis, _) = parse_time(value, zone)
                .ok_or_else(|| SearchError::BadDate("before", echo(value)))?;
            Ok((Filter::Before(millis), false))
        }
        _ => {
            let (millis, date_only) = parse_time(value, zone)
                .ok_or_else(|| SearchError::BadDate("after", echo(value)))?;
            // A day includes its first instant; an instant does not include itself.
            let millis = if date_only { millis } else { millis + 1 };
            Ok((Filter::After(millis), false))
        }
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

/// Bytes of a size as Mailpit reads one (its `sizeToBytes`): digits with an
/// optional decimal part, an optional space, and an optional unit, `k`/`kb`
/// (1024) or `m`/`mb` (1024²), any case; no unit is bytes. Fractions of a byte
/// are dropped.
fn parse_size(text: &str) -> Option<u64> {
    let lower = text.to_ascii_lowercase();
    let number_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(number_end);
    let (whole, fraction) = match number.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (number, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || fraction.is_some_and(|fraction| !digits(fraction)) {
        return None;
    }
    let scale: f64 = match unit.strip_prefix(' ').unwrap_or(unit) {
        "" => 1.0,
        "k" | "kb" => 1024.0,
        "m" | "mb" => 1024.0 * 1024.0,
        _ => return None,
    };
    let value: f64 = number.parse().ok()?;
    // `as` saturates: an absurd size is the largest one.
    Some((value * scale) as u64)
}

/// Milliseconds since the Unix epoch of `YYYY-MM-DD` (the start of that day in
/// `zone`, with `true`) or of a date-time (`false`): RFC 3339 with an offset is
/// that instant; without one, a wall-clock time in `zone`.
fn parse_time(text: &str, zone: &TimeZone) -> Option<(i64, bool)> {
    let (year, month, day) = parse_date(text.get(..10)?)?;
    let rest = &text[10..];
    let date = jiff::civil::Date::new(year, month, day).ok()?;
    if rest.is_empty() {
        let start = date.to_zoned_datetime(zone.clone()).ok()?;
        return Some((start.timestamp().as_millisecond(), true));
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
    let midnight_utc = days_from_civil(i64::from(year), i64::from(month), i64::from(day)) * 86_400;
    let wall = midnight_utc + hour * 3_600 + minute * 60 + second;
    let offset = match offset {
        Some(offset) => offset,
        // The wall-clock time in the zone; jiff resolves gaps and folds of
        // daylight saving time as RFC 9557 says (the earlier of a fold).
        None => {
            let civil = date.at(hour as i8, minute as i8, 0, 0);
            let zoned = civil.to_zoned_datetime(zone.clone()).ok()?;
            i64::from(zoned.offset().seconds())
        }
    };
    Some(((wall - offset) * 1000 + millis, false))
}

/// The clock part and, if given, the UTC offset in seconds of
/// `HH:MM:SS[.fff][Z|+HH:MM|-HH:MM]`.
fn split_offset(text: &str) -> Option<(&str, Option<i64>)> {
    if let Some(clock) = text.strip_suffix(['Z', 'z']) {
        return Some((clock, Some(0)));
    }
    let Some(split) = text.len().checked_sub(6) else {
        return Some((text, None));
    };
    match (text.get(..split), text.get(split..)) {
        (Some(clock), Some(offset)) if offset.starts_with(['+', '-']) => {
            Some((clock, Some(parse_offset(offset)?)))
        }
        _ => Some((text, None)),
    }
}

fn two_digits(text: &str, max: i64) -> Option<i64> {
    if text.len() != 2 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().filter(|&n| n <= max)
}

/// Year, month and day of a valid `YYYY-MM-DD`.
fn parse_date(text: &str) -> Option<(i16, i8, i8)> {
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
    let year: i16 = text[..4].parse().ok()?;
    let month: i8 = text[5..7].parse().ok()?;
    let day: i8 = text[8..].parse().ok()?;
    // jiff checks the day against the month (and leap years).
    jiff::civil::Date::new(year, month, day).ok()?;
    Some((year, month, day))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;
    const HOUR: i64 = 3_600_000;
    /// 2026-11-24T00:00:00Z in milliseconds.
    const NOV_24: i64 = 20_781 * DAY;

    fn text(field: Field, text: &str, prefix: bool, negated: bool) -> Term {
        Term::Text(TextTerm {
            field,
            text: text.into(),
            prefix,
            negated,
        })
    }

    fn filter(filter: Filter, negated: bool) -> Term {
        Term::Filter { filter, negated }
    }

    fn terms(input: &str) -> Vec<Term> {
        SearchQuery::parse(input)
            .unwrap_or_else(|error| panic!("{input:?}: {error}"))
            .terms
    }

    #[test]
    fn parses_every_kind_of_term() {
        use Field::*;
        let cases: Vec<(&str, Vec<Term>)> = vec![
            ("", vec![]),
            ("   \t ", vec![]),
            ("invoice", vec![text(Any, "invoice", true, false)]),
            ("invoice ", vec![text(Any, "invoice", false, false)]),
            (
                "Invoice March",
                vec![
                    text(Any, "Invoice", false, false),
                    text(Any, "March", true, false),
                ],
            ),
            ("i", vec![text(Any, "i", false, false)]),
            (
                "\"quarterly report\"",
                vec![text(Any, "quarterly report", false, false)],
            ),
            ("-spam", vec![text(Any, "spam", false, true)]),
            ("!spam", vec![text(Any, "spam", false, true)]),
            ("-\"big sale\"", vec![text(Any, "big sale", false, true)]),
            (
                "from:alice@example.com",
                vec![text(From, "alice@example.com", true, false)],
            ),
            ("FROM:Alice ", vec![text(From, "Alice", false, false)]),
            ("to:alice", vec![text(To, "alice", true, false)]),
            ("cc:bob ", vec![text(Cc, "bob", false, false)]),
            ("Bcc:carol ", vec![text(Bcc, "carol", false, false)]),
            ("reply-to:dave ", vec![text(ReplyTo, "dave", false, false)]),
            (
                "addressed:erin ",
                vec![text(Addressed, "erin", false, false)],
            ),
            (
                "message-id:abc.1@host ",
                vec![text(MessageId, "abc.1@host", false, false)],
            ),
            ("-from:x.test", vec![text(From, "x.test", false, true)]),
            ("!to:x.test", vec![text(To, "x.test", false, true)]),
            (
                "subject:\"quarterly report\"",
                vec![text(Subject, "quarterly report", false, false)],
            ),
            (
                "subject:q\"1 report\"",
                vec![text(Subject, "q1 report", false, false)],
            ),
            ("is:read", vec![filter(Filter::Read, false)]),
            ("is:unread", vec![filter(Filter::Read, true)]),
            ("-is:read", vec![filter(Filter::Read, true)]),
            ("-is:unread", vec![filter(Filter::Read, false)]),
            ("!is:unread", vec![filter(Filter::Read, false)]),
            ("IS:UNREAD", vec![filter(Filter::Read, true)]),
            ("is:flagged", vec![filter(Filter::Flagged, false)]),
            ("is:unflagged", vec![filter(Filter::Flagged, true)]),
            ("-is:unflagged", vec![filter(Filter::Flagged, false)]),
            ("is:tagged", vec![filter(Filter::Tagged, false)]),
            ("is:untagged", vec![filter(Filter::Tagged, true)]),
            (
                "tag:Urgent",
                vec![filter(Filter::Tag("Urgent".into()), false)],
            ),
            (
                "-tag:\"to do\"",
                vec![filter(Filter::Tag("to do".into()), true)],
            ),
            ("has:attachment", vec![filter(Filter::HasAttachment, false)]),
            (
                "has:attachments",
                vec![filter(Filter::HasAttachment, false)],
            ),
            ("-has:attachment", vec![filter(Filter::HasAttachment, true)]),
            ("has:inline", vec![filter(Filter::HasInline, false)]),
            ("!has:inlines", vec![filter(Filter::HasInline, true)]),
            ("larger:10k", vec![filter(Filter::Larger(10_240), false)]),
            ("larger:2048", vec![filter(Filter::Larger(2048), false)]),
            (
                "smaller:1.5M",
                vec![filter(Filter::Smaller(1_572_864), false)],
            ),
            ("-smaller:2mb", vec![filter(Filter::Smaller(2 << 20), true)]),
            ("larger:\"1 KB\"", vec![filter(Filter::Larger(1024), false)]),
            (
                "before:2026-11-24",
                vec![filter(Filter::Before(NOV_24), false)],
            ),
            (
                "after:2026-11-24",
                vec![filter(Filter::After(NOV_24), false)],
            ),
            (
                "-after:2026-11-24",
                vec![filter(Filter::After(NOV_24), true)],
            ),
            (
                "before:2026-11-24T10:30:00Z",
                vec![filter(Filter::Before(NOV_24 + 37_800_000), false)],
            ),
            (
                "before:2026-11-24T10:30:00",
                vec![filter(Filter::Before(NOV_24 + 37_800_000), false)],
            ),
            (
                "after:2026-11-24T10:30:00.25+01:00",
                vec![filter(Filter::After(NOV_24 + 34_200_250 + 1), false)],
            ),
            (
                "before:\"2026-11-24 00:00:00-00:30\"",
                vec![filter(Filter::Before(NOV_24 + 1_800_000), false)],
            ),
            // Incomplete or empty pieces, as while typing, narrow nothing.
            ("from:", vec![]),
            ("is: ", vec![]),
            ("tag:", vec![]),
            ("subject:\"\"", vec![]),
            ("& - -- ! !!", vec![]),
            ("10:30", vec![text(Any, "10:30", true, false)]),
            (
                "from:alice@example.com subject:invoice -is:read",
                vec![
                    text(From, "alice@example.com", false, false),
                    text(Subject, "invoice", false, false),
                    filter(Filter::Read, true),
                ],
            ),
            ("smörgåsbord", vec![text(Any, "smörgåsbord", true, false)]),
            // A prefix needs the text to end in a word character.
            ("alice@", vec![text(Any, "alice@", false, false)]),
        ];
        for (input, expected) in cases {
            assert_eq!(terms(input), expected, "{input:?}");
        }
    }

    #[test]
    fn errors_name_the_term_in_one_line() {
        let cases = [
            (
                "form:alice",
                "unknown filter \"form:\"; filters are from:, to:, cc:, bcc:, reply-to:, addressed:, subject:, message-id:, tag:, is:, has:, larger:, smaller:, before:, after: (quote text that has a colon)",
            ),
            (
                "http://example.com",
                "unknown filter \"http:\"; filters are from:, to:, cc:, bcc:, reply-to:, addressed:, subject:, message-id:, tag:, is:, has:, larger:, smaller:, before:, after: (quote text that has a colon)",
            ),
            (
                "before:yesterday",
                "\"before:\" needs a date like 2026-11-24, not \"yesterday\"",
            ),
            (
                "after:2026-02-30",
                "\"after:\" needs a date like 2026-11-24, not \"2026-02-30\"",
            ),
            (
                "after:2026-11-24T25:00:00Z",
                "\"after:\" needs a date like 2026-11-24, not \"2026-11-24T25:00:00Z\"",
            ),
            (
                "before:2026-11",
                "\"before:\" needs a date like 2026-11-24, not \"2026-11\"",
            ),
            (
                "is:important",
                "\"is:\" takes read, unread, flagged, unflagged, tagged or untagged, not \"important\"",
            ),
            (
                "has:pdf",
                "\"has:\" takes attachment or inline, not \"pdf\"",
            ),
            (
                "is:\"r\nea\u{0}d\"",
                "\"is:\" takes read, unread, flagged, unflagged, tagged or untagged, not \"r ea d\"",
            ),
            (
                "larger:10g",
                "\"larger:\" needs a size like 10k, 1.5m or 2048, not \"10g\"",
            ),
            (
                "smaller:.5m",
                "\"smaller:\" needs a size like 10k, 1.5m or 2048, not \".5m\"",
            ),
            (
                "-larger:big",
                "\"larger:\" needs a size like 10k, 1.5m or 2048, not \"big\"",
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
            vec![text(Field::Any, "http://example.com", false, false)]
        );
    }

    #[test]
    fn long_queries_are_refused() {
        let long = "a".repeat(MAX_QUERY_BYTES + 1);
        assert_eq!(SearchQuery::parse(&long), Err(SearchError::TooLong));
        assert_eq!(
            SearchQuery::parse_in(&long, Some("UTC")),
            Err(SearchError::TooLong)
        );
        let many = "ab ".repeat(MAX_TERMS + 1);
        assert_eq!(SearchQuery::parse(&many), Err(SearchError::TooLong));
        let name = format!("{}:x", "z".repeat(200));
        let message = SearchQuery::parse(&name).unwrap_err().to_string();
        assert!(message.len() < 250, "{message}");
    }

    #[test]
    fn is_empty_only_without_conditions() {
        assert!(SearchQuery::parse("").unwrap().is_empty());
        assert!(SearchQuery::parse("from: &").unwrap().is_empty());
        assert!(!SearchQuery::parse("is:read").unwrap().is_empty());
        assert!(SearchQuery::default().is_empty());
    }

    #[test]
    fn sizes_as_mailpit_reads_them() {
        let cases = [
            ("0", Some(0)),
            ("2048", Some(2048)),
            ("10k", Some(10_240)),
            ("10KB", Some(10_240)),
            ("10 kb", Some(10_240)),
            ("1.5m", Some(1_572_864)),
            ("2Mb", Some(2_097_152)),
            ("0.5k", Some(512)),
            ("1.0001", Some(1)),
            ("10g", None),
            ("10kib", None),
            ("k", None),
            ("1.", None),
            (".5", None),
            ("1.2.3", None),
            ("-1", None),
            ("10  k", None),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_size(input), expected, "{input:?}");
        }
    }

    fn before_in(date: &str, tz: Option<&str>) -> Result<Vec<Term>, SearchError> {
        SearchQuery::parse_in(&format!("before:{date}"), tz).map(|query| query.terms)
    }

    #[test]
    fn dates_in_a_time_zone() {
        let before = |millis| Ok(vec![filter(Filter::Before(millis), false)]);
        let cases = [
            ("2026-11-24", None, before(NOV_24)),
            ("2026-11-24", Some(""), before(NOV_24)),
            ("2026-11-24", Some("UTC"), before(NOV_24)),
            ("2026-11-24", Some("z"), before(NOV_24)),
            ("2026-11-24", Some("+02:00"), before(NOV_24 - 2 * HOUR)),
            (
                "2026-11-24",
                Some("-0530"),
                before(NOV_24 + 5 * HOUR + HOUR / 2),
            ),
            ("2026-11-24", Some("+09"), before(NOV_24 - 9 * HOUR)),
            // Winter in Amsterdam is UTC+1, summer UTC+2.
            (
                "2026-11-24",
                Some("Europe/Amsterdam"),
                before(NOV_24 - HOUR),
            ),
            (
                "2026-07-01",
                Some("Europe/Amsterdam"),
                before(20_635 * DAY - 2 * HOUR),
            ),
            (
                "2026-11-24T10:30:00",
                Some("America/New_York"),
                before(NOV_24 + 15 * HOUR + HOUR / 2),
            ),
            // An explicit offset wins over the zone.
            (
                "2026-11-24T10:30:00Z",
                Some("America/New_York"),
                before(NOV_24 + 10 * HOUR + HOUR / 2),
            ),
        ];
        for (date, tz, expected) in cases {
            assert_eq!(before_in(date, tz), expected, "{date:?} in {tz:?}");
        }
        for tz in [
            "Mars/Olympus_Mons",
            "+25:00",
            "+1",
            "../../etc/passwd",
            "local\ntime",
        ] {
            let error = before_in("2026-11-24", Some(tz)).unwrap_err();
            assert!(
                matches!(error, SearchError::BadTimeZone(_)),
                "{tz:?}: {error}"
            );
            assert!(!error.to_string().contains('\n'), "{error}");
        }
        assert_eq!(
            before_in("2026-11-24", Some("Mars/Olympus_Mons"))
                .unwrap_err()
                .to_string(),
            "unknown time zone \"Mars/Olympus_Mons\"; use a name like Europe/Amsterdam, UTC, or an offset like +02:00"
        );
    }

    #[test]
    fn dates() {
        let utc = TimeZone::UTC;
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
            ("1970-01-01T00:00:60Z", Some((60_000, false))),
            ("1970-01-01T00:00:00", Some((0, false))),
            ("1970-01-01T00:00:00.Z", None),
            ("1970-01-01T00:00Z", None),
            ("1970-01-01X00:00:00Z", None),
            ("1970-01-01T00:00:00+1:00", None),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_time(input, &utc), expected, "{input:?}");
        }
    }
}
