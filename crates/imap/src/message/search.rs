//! The SEARCH keys that read a message's content (RFC 3501 section 6.4.4):
//! case-insensitive substring matches on header values with encoded words
//! decoded, and on body text with transfer encodings and charsets decoded;
//! the `SENT*` keys on the `Date:` field's calendar date.

use chrono::Datelike;
use imap_types::datetime::NaiveDate;
use imap_types::search::SearchKey;
use mail_parser::DateTime;
use mail_parser::HeaderValue;
use mail_parser::decoders::base64::base64_decode;
use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::decoders::quoted_printable::quoted_printable_decode;
use mail_parser::parsers::MessageStream;

use super::address::{self, Address};
use std::borrow::Cow;

use super::header::{self, ContentType, Field};
use super::mime::{Kind, Part};

/// Whether the message `root` was parsed from matches `key`; `None` for a key
/// that does not read the content.
pub(crate) fn matches(raw: &[u8], root: &Part, key: &SearchKey<'_>) -> Option<bool> {
    let fields = root.fields(raw);
    let in_addresses = |name: &[u8], needle: &[u8]| address_contains(&fields, name, needle);
    Some(match key {
        SearchKey::Bcc(needle) => in_addresses(b"bcc", needle.as_ref()),
        SearchKey::Cc(needle) => in_addresses(b"cc", needle.as_ref()),
        SearchKey::From(needle) => in_addresses(b"from", needle.as_ref()),
        SearchKey::To(needle) => in_addresses(b"to", needle.as_ref()),
        SearchKey::Subject(needle) => field_contains(&fields, b"subject", needle.as_ref()),
        SearchKey::Header(name, needle) => field_contains(&fields, name.as_ref(), needle.as_ref()),
        // An empty string is in every message, even one without text.
        SearchKey::Body(needle) | SearchKey::Text(needle) if needle.as_ref().is_empty() => true,
        SearchKey::Body(needle) => {
            let needle = folded(needle.as_ref());
            let mut texts = Vec::new();
            body_texts(raw, root, false, &mut texts);
            texts.iter().any(|text| contains(text, &needle))
        }
        SearchKey::Text(needle) => {
            let needle = folded(needle.as_ref());
            let mut texts = vec![header_text(&fields)];
            body_texts(raw, root, true, &mut texts);
            texts.iter().any(|text| contains(text, &needle))
        }
        SearchKey::SentBefore(date) => sent(&fields) < day(date),
        SearchKey::SentOn(date) => sent(&fields) == day(date),
        SearchKey::SentSince(date) => sent(&fields) >= day(date),
        _ => return None,
    })
}

/// Whether a field called `name` holds `needle`; an empty needle asks only
/// whether there is such a field.
fn field_contains(fields: &[Field<'_>], name: &[u8], needle: &[u8]) -> bool {
    let needle = folded(needle);
    fields
        .iter()
        .filter(|field| field.is(name))
        .any(|field| needle.is_empty() || contains(&decoded(field.value), &needle))
}

/// Whether an address field called `name` holds `needle` in its addresses
/// written out again (`Name <mailbox@host>`, names decoded, what is missing
/// named as in ENVELOPE): what Dovecot matches these keys against.
fn address_contains(fields: &[Field<'_>], name: &[u8], needle: &[u8]) -> bool {
    let needle = folded(needle);
    fields
        .iter()
        .filter(|field| field.is(name))
        .any(|field| contains(&written_addresses(field.value), &needle))
}

/// An address list written out again as Dovecot writes it for these keys:
/// `name <@route:mailbox@domain>`, groups as `name: ...;`.
fn written_addresses(value: &[u8]) -> String {
    let mut written = Vec::new();
    for address in address::parse(value) {
        if !written.is_empty() && !written.ends_with(b": ") {
            written.extend_from_slice(b", ");
        }
        match address {
            Address {
                mailbox: Some(group),
                domain: None,
                ..
            } => {
                written.extend_from_slice(&group);
                written.extend_from_slice(b": ");
            }
            Address {
                mailbox: None,
                domain: None,
                ..
            } => {
                while written.ends_with(b" ") || written.ends_with(b",") {
                    written.pop();
                }
                written.push(b';');
            }
            Address {
                name,
                route,
                mailbox,
                domain,
            } => {
                if let Some(name) = name {
                    written.extend_from_slice(&name);
                    written.push(b' ');
                }
                written.push(b'<');
                if let Some(route) = route {
                    written.extend_from_slice(&route);
                    written.push(b':');
                }
                written.extend_from_slice(&mailbox.unwrap_or_default());
                written.push(b'@');
                written.extend_from_slice(&domain.unwrap_or_default());
                written.push(b'>');
            }
        }
    }
    decoded(&written)
}

/// `text` (a header value) with its encoded words (RFC 2047) decoded and its
/// folding undone.
fn decoded(text: &[u8]) -> String {
    let mut value = text.to_vec();
    value.extend_from_slice(b"\r\n");
    match MessageStream::new(&value).parse_unstructured() {
        HeaderValue::Text(text) => text.into_owned(),
        _ => String::new(),
    }
}

/// The header block as text for `TEXT`: every field, decoded.
fn header_text(fields: &[Field<'_>]) -> String {
    let mut text = String::new();
    for field in fields {
        text.push_str(&String::from_utf8_lossy(field.name));
        text.push_str(": ");
        text.push_str(&decoded(field.value));
        text.push('\n');
    }
    text
}

/// The decoded text of every leaf part below `part` that Dovecot searches
/// (and, with `headers`, the header fields of every part and attached
/// message below it).
fn body_texts(raw: &[u8], part: &Part, headers: bool, texts: &mut Vec<String>) {
    match &part.kind {
        Kind::Multipart(parts) => {
            for child in parts {
                if headers {
                    texts.push(header_text(&child.fields(raw)));
                }
                body_texts(raw, child, headers, texts);
            }
        }
        Kind::Message(message) => {
            if headers {
                texts.push(header_text(&message.fields(raw)));
            }
            body_texts(raw, message, headers, texts);
        }
        Kind::Single => texts.extend(decoded_body(raw, part)),
    }
}

/// A leaf part's body with its transfer encoding undone and its charset
/// converted, when it is text Dovecot searches: a part whose last
/// `Content-Type` is `text/*` or `message/*` (or that has none), in a
/// transfer encoding it knows.
fn decoded_body(raw: &[u8], part: &Part) -> Option<String> {
    let body = &raw[part.body.clone()];
    let fields = part.fields(raw);
    let content_type = fields
        .iter()
        .rev()
        .find(|field| field.is(b"content-type"))
        .map(|field| ContentType::parse(field.value));
    if let Some(content_type) = &content_type {
        let text = content_type.is("text", None) || content_type.is("message", None);
        if !text || content_type.subtype.is_empty() {
            return None;
        }
    }
    let encoding = fields
        .iter()
        .rev()
        .find(|field| field.is(b"content-transfer-encoding"))
        .map(|field| header::transfer_encoding(field).map(|e| e.to_ascii_lowercase()));
    let decoded = match encoding {
        None => Cow::Borrowed(body),
        Some(None) => return None,
        Some(Some(encoding)) => match encoding.as_slice() {
            b"7bit" | b"8bit" | b"binary" => Cow::Borrowed(body),
            // A broken one decodes to nothing useful either way.
            b"base64" => Cow::Owned(base64_decode(body).unwrap_or_default()),
            // Dovecot keeps what is not valid quoted-printable as it is.
            b"quoted-printable" => {
                quoted_printable_decode(body).map_or(Cow::Borrowed(body), Cow::Owned)
            }
            _ => return None,
        },
    };
    let decoder = content_type
        .as_ref()
        .and_then(|content_type| content_type.param(b"charset"))
        .and_then(charset_decoder);
    Some(match decoder {
        Some(decode) => decode(&decoded),
        None => String::from_utf8_lossy(&decoded).into_owned(),
    })
}

/// Text folded for comparing without regard to case.
fn folded(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_lowercase()
}

fn contains(haystack: &str, folded_needle: &str) -> bool {
    haystack.to_lowercase().contains(folded_needle)
}

/// The calendar date of the `Date:` field as written there: RFC 3501 has the
/// `SENT*` keys disregard time and time zone. A message without a valid one
/// was sent on 1 January 1970, as Dovecot has it.
fn sent(fields: &[Field<'_>]) -> (i32, u32, u32) {
    header::first(fields, b"date")
        .and_then(|field| DateTime::parse_rfc822(&String::from_utf8_lossy(&field.unfolded())))
        .filter(valid)
        .map_or((1970, 1, 1), |date| {
            (
                i32::from(date.year),
                u32::from(date.month),
                u32::from(date.day),
            )
        })
}

/// Whether a parsed date is one (mail-parser takes 25:61 as a time).
fn valid(date: &DateTime) -> bool {
    (1..=12).contains(&date.month)
        && (1..=31).contains(&date.day)
        && date.hour <= 23
        && date.minute <= 59
        && date.second <= 60
}

fn day(date: &NaiveDate) -> (i32, u32, u32) {
    let date = date.as_ref();
    (date.year(), date.month(), date.day())
}
