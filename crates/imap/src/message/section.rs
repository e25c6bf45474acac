//! `BODY[section]` bytes (RFC 3501 section 6.4.5), cut from the raw message.

use std::borrow::Cow;
use std::ops::Range;

use imap_types::core::{AString, Vec1};
use imap_types::fetch::{Part as PartNumber, Section};

use super::header;
use super::mime::{Kind, Part};

/// The bytes of `section` of the message `root` was parsed from, borrowed
/// where they are one run of the message; empty when the part does not exist
/// or has no such section.
pub(crate) fn section<'r>(raw: &'r [u8], root: &Part, section: &Section<'_>) -> Cow<'r, [u8]> {
    let slice = |range: Range<usize>| Cow::Borrowed(&raw[range]);
    let found = match section {
        Section::Part(number) => find(root, number).map(|part| slice(part.body.clone())),
        Section::Mime(number) => find(root, number).map(|part| slice(part.header.clone())),
        Section::Header(number) => message(root, number.as_ref()).map(|m| slice(m.header.clone())),
        Section::Text(number) => message(root, number.as_ref()).map(|m| slice(m.body.clone())),
        Section::HeaderFields(number, names) => {
            message(root, number.as_ref()).map(|m| Cow::Owned(header_fields(raw, m, names, true)))
        }
        Section::HeaderFieldsNot(number, names) => {
            message(root, number.as_ref()).map(|m| Cow::Owned(header_fields(raw, m, names, false)))
        }
    };
    found.unwrap_or(Cow::Borrowed(&[]))
}

fn find<'p>(root: &'p Part, number: &PartNumber) -> Option<&'p Part> {
    let numbers: Vec<u32> = number.0.as_ref().iter().map(|n| n.get()).collect();
    root.find(&numbers)
}

/// The message whose header or text a section asks for: the whole message,
/// or the message of a `message/rfc822` part.
fn message<'p>(root: &'p Part, number: Option<&PartNumber>) -> Option<&'p Part> {
    let Some(number) = number else {
        return Some(root);
    };
    match &find(root, number)?.kind {
        Kind::Message(message) => Some(message),
        _ => None,
    }
}

/// The header fields named (or, for `wanted == false`, not named) in `names`,
/// as they are in the message, then the empty line.
fn header_fields(raw: &[u8], message: &Part, names: &Vec1<AString<'_>>, wanted: bool) -> Vec<u8> {
    let names: Vec<&[u8]> = names.as_ref().iter().map(|name| name.as_ref()).collect();
    let mut out = Vec::new();
    for field in header::fields(&raw[message.header.clone()]) {
        if names.iter().any(|name| field.is(name)) == wanted {
            out.extend_from_slice(field.lines);
            if !field.lines.ends_with(b"\n") {
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}
