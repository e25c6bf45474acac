//! Reading a raw message for display: its headers, its text and HTML bodies, its
//! attachments, and any one part's decoded bytes.
//!
//! Built on mail-parser, which never panics on hostile input and makes a best
//! effort with broken MIME. The store uses it at delivery for the list summary;
//! the CLI's `show` and the web API use [`parse`] and [`part`] on the bytes from
//! [`crate::Store::raw`].
//!
//! A part is named by its `part_id`, the decimal index of the part in the
//! message's depth-first order of MIME parts (the root is `0`). The ids are stable
//! for the same bytes, which is all a link from a message view to a download needs.
//! Parts inside an attached message (`message/rfc822`) are not numbered: the
//! attached message is one part, downloadable as a whole.
//!
//! Any bytes can arrive, so taking them apart is bounded (issue #11): a container
//! nested deeper than [`MAX_DEPTH`] and everything after the first [`MAX_PARTS`]
//! parts are kept as opaque parts, listed and downloadable like any other (see
//! [`AttachmentInfo`] for their type and name); no step recurses as deep as the
//! input nests, and the work is linear in the message size. The `walk` submodule
//! says how.

use std::panic::{AssertUnwindSafe, catch_unwind};

use mail_parser::{
    Addr, Header, HeaderValue, Message, MessagePart, MimeHeaders, PartType,
    decoders::html::html_to_text, parsers::MessageStream,
};
use serde::{Deserialize, Serialize};

use crate::Address;

mod walk;

pub use walk::{MAX_DEPTH, MAX_PARTS};
use walk::{Opaque, Walked};

/// The longest [`AttachmentInfo::file_name`] in bytes; a longer name the sender
/// gave is cut on a character boundary, keeping a short extension. File systems
/// take 255 bytes, and the name goes into a download's `Content-Disposition`.
pub const MAX_FILE_NAME_BYTES: usize = 255;

/// A message taken apart for display.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParsedMessage {
    /// The top-level header fields in the order they appear, each value unfolded
    /// and with RFC 2047 encoded words decoded. Names are as the sender wrote them.
    pub headers: Vec<(String, String)>,
    /// The plain-text body, if the message has one. When the message has only an
    /// HTML body this is `None`, not a conversion. Several inline text parts (as in
    /// `multipart/mixed`) are joined with newlines.
    pub text: Option<String>,
    /// The HTML body, if the message has one; `None` for a text-only message.
    pub html: Option<String>,
    /// The attachments and inline parts (such as `cid:` images) in message order.
    pub attachments: Vec<AttachmentInfo>,
}

/// One attachment or inline part of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentInfo {
    /// The part's id, for [`part`].
    pub part_id: String,
    /// The file name the sender gave (Content-Disposition `filename` or
    /// Content-Type `name`, at most [`MAX_FILE_NAME_BYTES`]), or `part-<id>` with an
    /// extension guessed from the type.
    pub file_name: String,
    /// The media type without parameters, lowercase, e.g. `application/pdf`.
    ///
    /// A container nested deeper than [`MAX_DEPTH`] is `message/rfc822`, named
    /// `part-<id>.eml`: its header block and body as sent, which a mail program
    /// opens as a message. What follows the first [`MAX_PARTS`] parts is
    /// `application/octet-stream`, named `part-<id>-rest.bin`: the rest of the
    /// message as sent.
    pub content_type: String,
    /// The Content-ID without angle brackets, which HTML refers to as `cid:...`.
    pub content_id: Option<String>,
    /// The size of the decoded content in bytes.
    pub size: usize,
    /// The part is meant to be shown within the body (Content-Disposition `inline`,
    /// or an image the message embeds) rather than offered as a download.
    pub inline: bool,
}

/// Take `raw` apart. Never fails: bytes that are not a message give a value with
/// no headers and no bodies.
pub fn parse(raw: &[u8]) -> ParsedMessage {
    let Some(walked) = walk::walk(raw) else {
        return ParsedMessage::default();
    };
    let message = &walked.message;
    let text = join_bodies(message, &message.text_body, |body| match body {
        PartType::Text(text) => Some(text.as_ref()),
        _ => None,
    });
    let html = join_bodies(message, &message.html_body, |body| match body {
        PartType::Html(html) => Some(html.as_ref()),
        _ => None,
    });
    ParsedMessage {
        headers: headers(message),
        text,
        html,
        attachments: message
            .attachments
            .iter()
            .filter_map(|&index| attachment_info(&walked, index))
            .collect(),
    }
}

/// The part `part_id` of `raw` (as listed in [`ParsedMessage::attachments`]) with
/// its content decoded from base64 or quoted-printable. Text parts come back as
/// UTF-8, converted from their declared charset. `None` if there is no such part or
/// it is a multipart container.
pub fn part(raw: &[u8], part_id: &str) -> Option<(AttachmentInfo, Vec<u8>)> {
    let index: u32 = part_id.parse().ok()?;
    let walked = walk::walk(raw)?;
    let info = attachment_info(&walked, index)?;
    let bytes = walked.message.part(index)?.contents().to_vec();
    Some((info, bytes))
}

fn join_bodies<'m>(
    message: &'m Message<'m>,
    indices: &[u32],
    pick: impl Fn(&'m PartType<'m>) -> Option<&'m str>,
) -> Option<String> {
    let bodies: Vec<&str> = indices
        .iter()
        .filter_map(|&index| pick(&message.part(index)?.body))
        .collect();
    (!bodies.is_empty()).then(|| bodies.join("\n"))
}

fn headers(message: &Message<'_>) -> Vec<(String, String)> {
    let raw = message.raw_message();
    message
        .root_part()
        .headers
        .iter()
        .filter_map(|header| {
            let name = field_name(raw, header)?;
            let value = raw
                .get(header.offset_start as usize..header.offset_end as usize)
                .unwrap_or_default();
            // Every header, structured or not, is shown the way a person reads it:
            // unfolded, encoded words decoded, otherwise as written.
            let value = match MessageStream::new(value).parse_unstructured() {
                HeaderValue::Text(text) => text.into_owned(),
                _ => String::new(),
            };
            Some((name.to_string(), value))
        })
        .collect()
}

/// The name of `header` as written, if it is a real header field: printable ASCII
/// followed by a colon (RFC 5322 section 2.2). mail-parser also reports a line
/// without a colon, or garbage up to the end of the input, as a header with an
/// empty value; those are not headers to show and do not make a message parse.
fn field_name<'r>(raw: &'r [u8], header: &Header<'_>) -> Option<&'r str> {
    let field = raw.get(header.offset_field as usize..header.offset_start as usize)?;
    let name = field.strip_suffix(b":")?.trim_ascii_end();
    let valid = !name.is_empty() && name.iter().all(|&b| (33..=126).contains(&b) && b != b':');
    // Printable ASCII is valid UTF-8.
    valid.then(|| std::str::from_utf8(name).ok()).flatten()
}

fn attachment_info(walked: &Walked<'_>, index: u32) -> Option<AttachmentInfo> {
    let part = walked.message.part(index)?;
    if matches!(part.body, PartType::Multipart(_)) {
        return None;
    }
    if let Some(opaque) = walked.opaque(index) {
        let (content_type, file_name) = match opaque {
            Opaque::TooDeep => (
                "message/rfc822",
                fallback_file_name(index, "message/rfc822"),
            ),
            Opaque::TooMany => ("application/octet-stream", format!("part-{index}-rest.bin")),
        };
        return Some(AttachmentInfo {
            part_id: index.to_string(),
            file_name,
            content_type: content_type.to_string(),
            content_id: None,
            size: part.len(),
            inline: false,
        });
    }
    let content_type = media_type(part);
    let disposition_inline = part
        .content_disposition()
        .is_some_and(|disposition| disposition.ctype().eq_ignore_ascii_case("inline"));
    let file_name = match part.attachment_name() {
        Some(name) if !name.trim().is_empty() => cap_file_name(name),
        _ => fallback_file_name(index, &content_type),
    };
    Some(AttachmentInfo {
        part_id: index.to_string(),
        file_name,
        content_id: part.content_id().map(str::to_string),
        size: part.len(),
        inline: disposition_inline || matches!(part.body, PartType::InlineBinary(_)),
        content_type,
    })
}

/// `type/subtype`, lowercase; `text/plain` when the part does not say (RFC 2045).
fn media_type(part: &MessagePart<'_>) -> String {
    match part.content_type() {
        Some(content_type) => match content_type.subtype() {
            Some(subtype) => format!("{}/{}", content_type.ctype(), subtype),
            None => content_type.ctype().to_string(),
        }
        .to_ascii_lowercase(),
        None if matches!(part.body, PartType::Message(_)) => "message/rfc822".to_string(),
        None => "text/plain".to_string(),
    }
}

fn fallback_file_name(index: u32, content_type: &str) -> String {
    let extension = match content_type.split_once('/') {
        Some(("message", "rfc822" | "global")) => Some("eml"),
        Some(("text", "plain")) => Some("txt"),
        Some(("text", "html")) => Some("html"),
        Some(("image" | "audio" | "video", subtype))
            if !subtype.is_empty() && subtype.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            Some(subtype)
        }
        _ => None,
    };
    match extension {
        Some(extension) => format!("part-{index}.{extension}"),
        None => format!("part-{index}"),
    }
}

/// `name`, cut to at most [`MAX_FILE_NAME_BYTES`] on a character boundary. A
/// short extension (up to 16 bytes after the last dot) is kept, so the file still
/// opens with the right program.
fn cap_file_name(name: &str) -> String {
    if name.len() <= MAX_FILE_NAME_BYTES {
        return name.to_string();
    }
    match name.rsplit_once('.') {
        Some((stem, extension))
            if !stem.is_empty() && !extension.is_empty() && extension.len() <= 16 =>
        {
            let stem = prefix(stem, MAX_FILE_NAME_BYTES - extension.len() - 1);
            format!("{stem}.{extension}")
        }
        _ => prefix(name, MAX_FILE_NAME_BYTES).to_string(),
    }
}

/// How many characters of body text a summary keeps.
const SNIPPET_CHARS: usize = 200;

/// The header fields and body preview a list shows, computed once at delivery.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Digest {
    pub parsed: bool,
    pub from: Option<Address>,
    pub to: Vec<Address>,
    pub cc: Vec<Address>,
    pub reply_to: Vec<Address>,
    pub bcc: Vec<Address>,
    pub subject: String,
    pub date: Option<String>,
    pub message_id: Option<String>,
    pub attachments: u32,
    /// Inline parts (such as `cid:` images), which `attachments` does not count.
    pub inline: u32,
    pub snippet: String,
    /// What the search index gets of the body: the text parts (or the HTML parts
    /// as text when there is no text part) and attachment file names, at most
    /// [`MAX_INDEXED_TEXT`] bytes.
    pub body_text: String,
}

/// Summarize `raw` for the message list. Bytes that are not a message give an
/// empty digest with `parsed: false`; so does a parser panic, because a catcher
/// must store what it was sent even if the parser cannot read it.
pub(crate) fn digest(raw: &[u8]) -> Digest {
    catch_unwind(AssertUnwindSafe(|| try_digest(raw)))
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// The list summary of `raw` without [`digest`]'s panic guard, for the
/// `mime_summary` fuzz target (a panic is what it looks for): `None` when the
/// bytes are no message, else the attachment count, the snippet's length in
/// characters and the indexed text's length in bytes. Not an API.
#[doc(hidden)]
pub fn fuzz_summary(raw: &[u8]) -> Option<(u32, usize, usize)> {
    try_digest(raw).map(|digest| {
        (
            digest.attachments,
            digest.snippet.chars().count(),
            digest.body_text.len(),
        )
    })
}

fn try_digest(raw: &[u8]) -> Option<Digest> {
    let walked = walk::walk(raw)?;
    let message = &walked.message;
    let raw = message.raw_message();
    if !message
        .root_part()
        .headers
        .iter()
        .any(|header| field_name(raw, header).is_some())
    {
        return None;
    }
    let addresses = |address: Option<&mail_parser::Address<'_>>| -> Vec<Address> {
        address
            .map(|address| address.iter().filter_map(to_address).collect())
            .unwrap_or_default()
    };
    let (inline, attachments): (Vec<AttachmentInfo>, Vec<AttachmentInfo>) = message
        .attachments
        .iter()
        .filter_map(|&index| attachment_info(&walked, index))
        .partition(|info| info.inline);
    Some(Digest {
        parsed: true,
        from: message
            .from()
            .and_then(|from| from.iter().find_map(to_address)),
        to: addresses(message.to()),
        cc: addresses(message.cc()),
        reply_to: addresses(message.reply_to()),
        bcc: addresses(message.bcc()),
        subject: message.subject().unwrap_or_default().to_string(),
        date: message
            .date()
            .filter(|date| date.is_valid())
            .map(|date| date.to_rfc3339()),
        message_id: message.message_id().map(str::to_string),
        attachments: u32::try_from(attachments.len()).unwrap_or(u32::MAX),
        inline: u32::try_from(inline.len()).unwrap_or(u32::MAX),
        snippet: snippet(message),
        body_text: body_text(&walked),
    })
}

/// How many bytes of body text a message contributes to the search index. A word
/// beyond it is not found; the cap keeps a huge message from stalling the writer
/// thread, which indexes inside the delivery's transaction.
pub(crate) const MAX_INDEXED_TEXT: usize = 64 << 10;

/// How much of an HTML body is converted to text for the index; the conversion
/// of more could not add to the [`MAX_INDEXED_TEXT`] bytes kept anyway (tags and
/// markup make HTML several times longer than its text).
const MAX_INDEXED_HTML: usize = 4 * MAX_INDEXED_TEXT;

fn body_text(walked: &Walked<'_>) -> String {
    let message = &walked.message;
    let mut text = String::new();
    let bodies = if message.text_body.is_empty() {
        &message.html_body
    } else {
        &message.text_body
    };
    for &index in bodies {
        match message.part(index).map(|part| &part.body) {
            Some(PartType::Text(body)) => push_capped(&mut text, body),
            Some(PartType::Html(html)) => {
                push_capped(&mut text, &html_to_text(prefix(html, MAX_INDEXED_HTML)));
            }
            _ => continue,
        }
        push_capped(&mut text, "\n");
    }
    for &index in &message.attachments {
        if walked.opaque(index).is_some() {
            continue;
        }
        if let Some(name) = message.part(index).and_then(|part| part.attachment_name()) {
            push_capped(&mut text, name);
            push_capped(&mut text, "\n");
        }
    }
    text
}

/// Append as much of `more` as fits in [`MAX_INDEXED_TEXT`], ending on a
/// character boundary.
fn push_capped(text: &mut String, more: &str) {
    let room = MAX_INDEXED_TEXT.saturating_sub(text.len());
    text.push_str(prefix(more, room));
}

/// The longest start of `text` of at most `max` bytes that ends on a character
/// boundary.
fn prefix(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn to_address(addr: &Addr<'_>) -> Option<Address> {
    let name = addr.name().unwrap_or_default();
    let address = addr.address().unwrap_or_default();
    (!name.is_empty() || !address.is_empty()).then(|| Address {
        name: name.to_string(),
        address: address.to_string(),
    })
}

fn snippet(message: &Message<'_>) -> String {
    let Some(index) = message.text_body.first().or(message.html_body.first()) else {
        return String::new();
    };
    match message.part(*index).map(|part| &part.body) {
        Some(PartType::Text(text)) => collapse_whitespace(text, SNIPPET_CHARS),
        Some(PartType::Html(html)) => {
            // The start of the HTML is enough for the start of its text.
            collapse_whitespace(&html_to_text(prefix(html, MAX_INDEXED_HTML)), SNIPPET_CHARS)
        }
        _ => String::new(),
    }
}

/// The first `max_chars` characters of `text` with every run of whitespace (and
/// control characters, which would garble a terminal) turned into one space and
/// none at either end.
fn collapse_whitespace(text: &str, max_chars: usize) -> String {
    let mut out = String::new();
    let mut chars = 0;
    let mut gap = false;
    for ch in text.chars() {
        if ch.is_whitespace() || ch.is_control() {
            gap = !out.is_empty();
            continue;
        }
        let needed = if gap { 2 } else { 1 };
        if chars + needed > max_chars {
            break;
        }
        if gap {
            out.push(' ');
            gap = false;
        }
        out.push(ch);
        chars += needed;
    }
    out
}

#[cfg(test)]
mod hostile;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collapse_whitespace_cases() {
        let cases = [
            ("", 10, ""),
            ("  hello \r\n\t world  ", 20, "hello world"),
            ("a\u{0}b", 10, "a b"),
            ("abcdef", 3, "abc"),
            ("ab cd", 3, "ab"),
            ("ab cd", 4, "ab c"),
            ("ééé", 2, "éé"),
        ];
        for (input, max, expected) in cases {
            assert_eq!(collapse_whitespace(input, max), expected, "{input:?} {max}");
        }
    }

    #[test]
    fn indexed_body_text_is_capped_on_a_character_boundary() {
        let mut text = "é".repeat(MAX_INDEXED_TEXT);
        text.insert(0, 'x');
        let mut capped = String::new();
        push_capped(&mut capped, &text);
        assert!(capped.len() <= MAX_INDEXED_TEXT);
        assert!(capped.len() > MAX_INDEXED_TEXT - 2);
        push_capped(&mut capped, "more");
        assert!(!capped.ends_with("more"));
    }

    #[test]
    fn indexed_body_text_has_text_html_and_file_names() {
        let raw = b"From: a@x.test\r\nSubject: s\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\r\n\
--b\r\nContent-Type: text/html\r\n\r\n<p>Hello <b>there</b></p>\r\n\
--b\r\nContent-Type: application/pdf\r\n\
Content-Disposition: attachment; filename=\"invoice-42.pdf\"\r\n\r\nJVBER\r\n\
--b--\r\n";
        let text = digest(raw).body_text;
        assert!(text.contains("Hello there"), "{text:?}");
        assert!(text.contains("invoice-42.pdf"), "{text:?}");
        assert!(!text.contains("<p>"), "{text:?}");
    }

    #[test]
    fn fallback_file_names() {
        assert_eq!(fallback_file_name(3, "message/rfc822"), "part-3.eml");
        assert_eq!(fallback_file_name(2, "image/png"), "part-2.png");
        assert_eq!(fallback_file_name(2, "image/svg+xml"), "part-2");
        assert_eq!(fallback_file_name(4, "application/octet-stream"), "part-4");
    }
}
