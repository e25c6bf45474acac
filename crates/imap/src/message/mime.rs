//! The MIME tree of a message as byte ranges of the raw message, split the way
//! Dovecot splits it, so that sizes, line counts and `BODY[section]` bytes are
//! the ones IMAP clients already see from Dovecot.
//!
//! ```text
//! header: the part's header lines and the empty line that ends them
//! body:   after that empty line, up to (not including) the line break that
//!         precedes the next boundary line, or to the end of the enclosing part
//! ```

use std::ops::Range;

use super::header::{self, ContentType};

/// How deep multiparts and attached messages may nest before the rest is shown
/// as one opaque part: bounds the recursion on hostile input.
const MAX_DEPTH: usize = 64;

/// One MIME part: where its header and body are in the raw message.
#[derive(Debug)]
pub(crate) struct Part {
    pub header: Range<usize>,
    pub body: Range<usize>,
    pub content_type: ContentType,
    pub kind: Kind,
    /// Whether the part ends with a multipart's close delimiter that has no
    /// line break of its own: the break after it was taken as the one before
    /// the enclosing boundary, and Dovecot gives it back to this part.
    ends_in_close_delimiter: bool,
}

/// What a part holds below it.
#[derive(Debug)]
pub(crate) enum Kind {
    /// A leaf: text, an attachment, anything that is not a container.
    Single,
    /// A multipart's parts (never empty: a multipart without any is shown
    /// with one empty `text/plain` part, as Dovecot does).
    Multipart(Vec<Part>),
    /// A `message/rfc822` part's message.
    Message(Box<Part>),
}

/// Parses the message in `raw` into its tree.
pub(crate) fn parse(raw: &[u8]) -> Part {
    parse_part(raw, 0..raw.len(), false, 0)
}

fn parse_part(raw: &[u8], range: Range<usize>, in_digest: bool, depth: usize) -> Part {
    let header_end = header_end(raw, range.clone());
    let header = range.start..header_end;
    let body = header_end..range.end;
    let content_type = ContentType::of(raw, header.clone(), in_digest);
    let mut ends_in_close_delimiter = false;
    let kind = if depth >= MAX_DEPTH {
        Kind::Single
    } else if content_type.is("multipart", None) && !content_type.subtype.is_empty() {
        let digest = content_type.is("multipart", Some("digest"));
        let split = match content_type.param(b"boundary").filter(|b| !b.is_empty()) {
            Some(boundary) => split(raw, body.clone(), boundary),
            None => Split::default(),
        };
        ends_in_close_delimiter = split.ends_in_close_delimiter;
        let mut parts: Vec<Part> = split
            .parts
            .into_iter()
            .map(|(range, up_to_boundary)| {
                let mut part = parse_part(raw, range, digest, depth + 1);
                if part.ends_in_close_delimiter {
                    part.extend_to(up_to_boundary);
                }
                part
            })
            .collect();
        if parts.is_empty() {
            parts.push(empty_part(body.end));
        }
        Kind::Multipart(parts)
    } else if content_type.is("message", Some("rfc822")) {
        let message = parse_part(raw, body.clone(), false, depth + 1);
        ends_in_close_delimiter = message.ends_in_close_delimiter;
        Kind::Message(Box::new(message))
    } else {
        Kind::Single
    };
    Part {
        header,
        body,
        content_type,
        kind,
        ends_in_close_delimiter,
    }
}

/// The part Dovecot shows for a multipart that has none.
fn empty_part(at: usize) -> Part {
    Part {
        header: at..at,
        body: at..at,
        content_type: ContentType::default_text(),
        kind: Kind::Single,
        ends_in_close_delimiter: false,
    }
}

/// Where the header block in `range` ends: just after the first empty line, or
/// at the end of `range` when there is none (then it is all header).
fn header_end(raw: &[u8], range: Range<usize>) -> usize {
    let mut at = range.start;
    while at < range.end {
        let line_end = memchr::memchr(b'\n', &raw[at..range.end]).map_or(range.end, |i| at + i + 1);
        let line = &raw[at..line_end];
        if line == b"\n" || line == b"\r\n" {
            return line_end;
        }
        at = line_end;
    }
    range.end
}

/// A multipart body cut at its boundaries.
#[derive(Default)]
struct Split {
    /// Each part's range, and where its boundary line starts.
    parts: Vec<(Range<usize>, usize)>,
    /// Whether the close delimiter is the body's last line, without a line
    /// break.
    ends_in_close_delimiter: bool,
}

/// Cuts a multipart body at the lines that start with `--boundary`: the
/// preamble and the epilogue are left out, and the line break before each
/// boundary line belongs to the boundary (RFC 2046 section 5.1.1).
fn split(raw: &[u8], body: Range<usize>, boundary: &[u8]) -> Split {
    let mut split = Split::default();
    let mut start = None;
    let mut at = body.start;
    while at < body.end {
        let line_end = memchr::memchr(b'\n', &raw[at..body.end]).map_or(body.end, |i| at + i + 1);
        let line = &raw[at..line_end];
        if let Some(rest) = line
            .strip_prefix(b"--")
            .and_then(|l| l.strip_prefix(boundary))
        {
            if let Some(begun) = start {
                split
                    .parts
                    .push((begun..before_line_break(raw, begun, at), at));
            }
            if rest.starts_with(b"--") {
                split.ends_in_close_delimiter = line_end == body.end && !line.ends_with(b"\n");
                return split;
            }
            start = Some(line_end);
        }
        at = line_end;
    }
    if let Some(begun) = start {
        split.parts.push((begun..body.end, body.end));
    }
    split
}

/// `at` moved back over the line break just before it, but not before `floor`.
fn before_line_break(raw: &[u8], floor: usize, at: usize) -> usize {
    let mut end = at;
    if end > floor && raw[end - 1] == b'\n' {
        end -= 1;
        if end > floor && raw[end - 1] == b'\r' {
            end -= 1;
        }
    }
    end
}

impl Part {
    /// Moves the end of this part (and of its message) to `end`.
    fn extend_to(&mut self, end: usize) {
        self.body.end = end;
        if let Kind::Message(message) = &mut self.kind {
            message.extend_to(end);
        }
    }

    /// The part a section's part number (`1`, `2.1`, ...) names, from the top
    /// of the message (RFC 3501 section 6.4.5), as Dovecot finds it: a
    /// multipart's parts count from 1; number 1 of anything else is the part
    /// itself, and only a message/rfc822 part may be looked into further (its
    /// numbers are then those of its message).
    pub(crate) fn find(&self, numbers: &[u32]) -> Option<&Part> {
        let mut part = self;
        for (at, &number) in numbers.iter().enumerate() {
            let more = at + 1 < numbers.len();
            part = match &part.kind {
                Kind::Multipart(parts) => parts.get(index(number)?)?,
                Kind::Message(_) if number == 1 => part,
                Kind::Single if number == 1 && !more => part,
                _ => return None,
            };
            if let (true, Kind::Message(message)) = (more, &part.kind) {
                part = message;
            }
        }
        Some(part)
    }

    /// The header fields of this part.
    pub(crate) fn fields<'r>(&self, raw: &'r [u8]) -> Vec<header::Field<'r>> {
        header::fields(&raw[self.header.clone()])
    }
}

fn index(number: u32) -> Option<usize> {
    usize::try_from(number).ok()?.checked_sub(1)
}

/// Counts the lines of `bytes` as IMAP's body line counts do: line feeds.
pub(crate) fn lines(bytes: &[u8]) -> u32 {
    u32::try_from(memchr::memchr_iter(b'\n', bytes).count()).unwrap_or(u32::MAX)
}
