//! ENVELOPE (RFC 3501 section 7.4.2) as Dovecot writes it: header values as
//! they are in the message (encoded words not decoded, line breaks removed;
//! the subject and display names with their blanks squeezed, "for humans"),
//! the last of repeated fields (all of repeated address fields), `Sender`
//! and `Reply-To` defaulting to `From`, and addresses parsed as [`super::address`] parses them.

use imap_types::core::{IString, NString};
use imap_types::envelope::{Address as ImapAddress, Envelope};

use super::address::{self, Address};
use super::header::Field;

/// The ENVELOPE of the message whose header fields are `fields`.
pub(crate) fn envelope(fields: &[Field<'_>]) -> Envelope<'static> {
    let last = |name: &[u8]| fields.iter().rev().find(|field| field.is(name));
    let text = |name: &[u8]| last(name).map_or(NString::NIL, |field| nstring(field.unfolded()));
    // Repeated address fields add up; other repeated fields replace.
    let addresses = |name: &[u8]| {
        let mut list = Vec::new();
        for field in fields.iter().filter(|field| field.is(name)) {
            list.extend(addresses(field.value));
        }
        list
    };
    let from = addresses(b"from");
    let or_from =
        |list: Vec<ImapAddress<'static>>| if list.is_empty() { from.clone() } else { list };
    Envelope {
        date: text(b"date"),
        subject: last(b"subject")
            .map_or(NString::NIL, |field| nstring(for_humans(&field.unfolded()))),
        sender: or_from(addresses(b"sender")),
        reply_to: or_from(addresses(b"reply-to")),
        to: addresses(b"to"),
        cc: addresses(b"cc"),
        bcc: addresses(b"bcc"),
        in_reply_to: text(b"in-reply-to"),
        message_id: text(b"message-id"),
        from,
    }
}

/// An address field's value in ENVELOPE form.
fn addresses(value: &[u8]) -> Vec<ImapAddress<'static>> {
    address::parse(value)
        .into_iter()
        .map(
            |Address {
                 name,
                 route,
                 mailbox,
                 domain,
             }| ImapAddress {
                name: name.map_or(NString::NIL, |name| nstring(for_humans(&name))),
                adl: optional(route),
                mailbox: optional(mailbox),
                host: optional(domain),
            },
        )
        .collect()
}

/// Text for people to read, as Dovecot sends it: runs of blanks and line
/// breaks squeezed to one space, none at either end, NUL shown as 0x80.
pub(crate) fn for_humans(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut blank = false;
    for &byte in text {
        match byte {
            b' ' | b'\t' | b'\r' | b'\n' => blank = true,
            _ => {
                if blank && !out.is_empty() {
                    out.push(b' ');
                }
                blank = false;
                out.push(if byte == 0 { 0x80 } else { byte });
            }
        }
    }
    out
}

/// `bytes` as an IMAP string (quoted where it can be, a literal otherwise;
/// a NUL, which neither may hold, shown as 0x80 as Dovecot does).
pub(crate) fn istring(bytes: Vec<u8>) -> IString<'static> {
    let bytes: Vec<u8> = bytes
        .into_iter()
        .map(|b| if b == 0 { 0x80 } else { b })
        .collect();
    IString::try_from(bytes).unwrap_or_else(|_| IString::try_from("").expect("empty is a string"))
}

/// `bytes` as an IMAP nstring that is not NIL.
pub(crate) fn nstring(bytes: Vec<u8>) -> NString<'static> {
    NString(Some(istring(bytes)))
}

fn optional(bytes: Option<Vec<u8>>) -> NString<'static> {
    bytes.map_or(NString::NIL, nstring)
}
