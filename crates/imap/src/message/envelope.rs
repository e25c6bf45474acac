//! ENVELOPE (RFC 3501 section 7.4.2) as Dovecot writes it: header values as
//! they are in the message (encoded words not decoded, line breaks removed),
//! `Sender` and `Reply-To` defaulting to `From`, addresses with RFC 3501's
//! group syntax, and `MISSING_MAILBOX` / `MISSING_DOMAIN` where an address
//! lacks one.

use imap_types::core::{IString, NString};
use imap_types::envelope::{Address, Envelope};

use super::header::{self, Field};

const MISSING_MAILBOX: &[u8] = b"MISSING_MAILBOX";
const MISSING_DOMAIN: &[u8] = b"MISSING_DOMAIN";

/// The ENVELOPE of the message whose header fields are `fields`.
pub(crate) fn envelope(fields: &[Field<'_>]) -> Envelope<'static> {
    let text =
        |name: &[u8]| header::first(fields, name).map_or(NString::NIL, |f| nstring(f.unfolded()));
    let addresses = |name: &[u8]| {
        header::first(fields, name).map_or_else(Vec::new, |field| addresses(field.value))
    };
    let from = addresses(b"from");
    let or_from = |list: Vec<Address<'static>>| if list.is_empty() { from.clone() } else { list };
    Envelope {
        date: text(b"date"),
        subject: text(b"subject"),
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

/// `bytes` as an IMAP string (quoted where it can be, a literal otherwise).
pub(crate) fn istring(bytes: Vec<u8>) -> IString<'static> {
    let bytes: Vec<u8> = bytes.into_iter().filter(|&b| b != 0).collect();
    IString::try_from(bytes).unwrap_or_else(|_| IString::try_from("").expect("empty is a string"))
}

/// `bytes` as an IMAP nstring that is not NIL.
pub(crate) fn nstring(bytes: Vec<u8>) -> NString<'static> {
    NString(Some(istring(bytes)))
}

fn optional(bytes: Option<Vec<u8>>) -> NString<'static> {
    bytes.map_or(NString::NIL, nstring)
}

/// An address list (RFC 5322 section 3.4) in ENVELOPE form.
pub(crate) fn addresses(value: &[u8]) -> Vec<Address<'static>> {
    let mut parser = AddressParser {
        bytes: value,
        at: 0,
    };
    let mut list = Vec::new();
    parser.list(&mut list, false);
    list
}

/// One address as parsed, before it becomes an ENVELOPE address.
#[derive(Default)]
struct Mailbox {
    name: Option<Vec<u8>>,
    route: Option<Vec<u8>>,
    local: Vec<u8>,
    domain: Option<Vec<u8>>,
}

impl Mailbox {
    fn into_address(self) -> Address<'static> {
        let local = if self.local.is_empty() {
            MISSING_MAILBOX.to_vec()
        } else {
            self.local
        };
        let domain = match self.domain {
            Some(domain) if !domain.is_empty() => domain,
            _ => MISSING_DOMAIN.to_vec(),
        };
        Address {
            name: optional(self.name),
            adl: optional(self.route),
            mailbox: nstring(local),
            host: nstring(domain),
        }
    }
}

struct AddressParser<'r> {
    bytes: &'r [u8],
    at: usize,
}

impl AddressParser<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    /// Skips blanks and comments; the text of the last comment skipped.
    fn skip_cfws(&mut self) -> Option<Vec<u8>> {
        let mut comment = None;
        while let Some(byte) = self.peek() {
            match byte {
                b' ' | b'\t' | b'\r' | b'\n' => self.at += 1,
                b'(' => comment = Some(self.comment()),
                _ => break,
            }
        }
        comment
    }

    fn comment(&mut self) -> Vec<u8> {
        let mut depth = 0usize;
        let mut text = Vec::new();
        while let Some(byte) = self.peek() {
            self.at += 1;
            match byte {
                b'(' => {
                    depth += 1;
                    if depth == 1 {
                        continue;
                    }
                }
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                b'\\' => {
                    if let Some(escaped) = self.peek() {
                        self.at += 1;
                        text.push(escaped);
                    }
                    continue;
                }
                b'\r' | b'\n' => continue,
                _ => {}
            }
            text.push(byte);
        }
        text
    }

    fn quoted(&mut self) -> Vec<u8> {
        self.at += 1;
        let mut text = Vec::new();
        while let Some(byte) = self.peek() {
            self.at += 1;
            match byte {
                b'"' => break,
                b'\\' => {
                    if let Some(escaped) = self.peek() {
                        self.at += 1;
                        text.push(escaped);
                    }
                }
                b'\r' | b'\n' => {}
                _ => text.push(byte),
            }
        }
        text
    }

    fn atom(&mut self) -> Vec<u8> {
        let start = self.at;
        while let Some(byte) = self.peek() {
            if byte <= b' ' || b"()<>[]:;@\\,\".".contains(&byte) {
                break;
            }
            self.at += 1;
        }
        self.bytes[start..self.at].to_vec()
    }

    /// A phrase: words joined by single spaces, dots kept where they are
    /// (`J. Smith`).
    fn phrase(&mut self) -> Vec<u8> {
        let mut phrase = Vec::new();
        loop {
            let before = self.at;
            self.skip_cfws();
            let spaced = self.at > before;
            let word = match self.peek() {
                Some(b'"') => self.quoted(),
                Some(b'.') => {
                    self.at += 1;
                    phrase.push(b'.');
                    continue;
                }
                _ => match self.atom() {
                    atom if atom.is_empty() => return phrase,
                    atom => atom,
                },
            };
            if !phrase.is_empty() && (phrase.last() != Some(&b'.') || spaced) {
                phrase.push(b' ');
            }
            phrase.extend(word);
        }
    }

    /// `word *("." word)` with no blanks added: a local part or a domain. A
    /// comment after it is left for the caller.
    fn dotted(&mut self) -> Vec<u8> {
        let mut text = Vec::new();
        loop {
            self.skip_cfws();
            match self.peek() {
                Some(b'"') => text.extend(self.quoted()),
                Some(b'[') => {
                    let start = self.at;
                    while let Some(byte) = self.peek() {
                        self.at += 1;
                        if byte == b']' {
                            break;
                        }
                    }
                    text.extend_from_slice(&self.bytes[start..self.at]);
                }
                _ => text.extend(self.atom()),
            }
            let end = self.at;
            self.skip_cfws();
            if self.peek() != Some(b'.') {
                self.at = end;
                return text;
            }
            self.at += 1;
            text.push(b'.');
        }
    }

    /// `addr-spec`, then an optional comment (Dovecot's name when there is no
    /// phrase).
    fn addr_spec(&mut self) -> Mailbox {
        let local = self.dotted();
        let end = self.at;
        self.skip_cfws();
        if self.peek() != Some(b'@') {
            self.at = end;
        }
        let domain = (self.peek() == Some(b'@')).then(|| {
            self.at += 1;
            self.dotted()
        });
        Mailbox {
            local,
            domain,
            ..Mailbox::default()
        }
    }

    /// `"<" [route ":"] addr-spec ">"`, the `<` already seen.
    fn angle_addr(&mut self, name: Option<Vec<u8>>) -> Mailbox {
        self.at += 1;
        self.skip_cfws();
        let mut route = None;
        if self.peek() == Some(b'@') {
            let start = self.at;
            while let Some(byte) = self.peek() {
                if byte == b':' || byte == b'>' {
                    break;
                }
                self.at += 1;
            }
            route = Some(self.bytes[start..self.at].to_vec());
            if self.peek() == Some(b':') {
                self.at += 1;
            }
        }
        let mut mailbox = self.addr_spec();
        self.skip_cfws();
        if self.peek() == Some(b'>') {
            self.at += 1;
        }
        mailbox.name = name;
        mailbox.route = route;
        mailbox
    }

    /// Skips to the `,` (or `;` in a group) that ends a broken address.
    fn skip_rest(&mut self, in_group: bool) {
        while let Some(byte) = self.peek() {
            match byte {
                b',' => return,
                b';' if in_group => return,
                b'"' => {
                    self.quoted();
                }
                b'(' => {
                    self.comment();
                }
                _ => self.at += 1,
            }
        }
    }

    /// An address list, up to the end (or to `;` inside a group).
    fn list(&mut self, list: &mut Vec<Address<'static>>, in_group: bool) {
        loop {
            self.skip_cfws();
            match self.peek() {
                None => return,
                Some(b',') => self.at += 1,
                Some(b';') if in_group => return,
                Some(_) => self.address(list, in_group),
            }
        }
    }

    /// A mailbox or, outside a group, a group.
    fn address(&mut self, list: &mut Vec<Address<'static>>, in_group: bool) {
        let start = self.at;
        let phrase = self.phrase();
        self.skip_cfws();
        match self.peek() {
            Some(b'<') => {
                let name = (!phrase.is_empty()).then_some(phrase);
                list.push(self.angle_addr(name).into_address());
            }
            Some(b':') if !in_group => {
                self.at += 1;
                list.push(group_mark(Some(phrase)));
                self.list(list, true);
                if self.peek() == Some(b';') {
                    self.at += 1;
                }
                list.push(group_mark(None));
            }
            _ => {
                self.at = start;
                let mut mailbox = self.addr_spec();
                let comment = self.skip_cfws();
                if matches!(self.peek(), None | Some(b','))
                    || (in_group && self.peek() == Some(b';'))
                {
                    mailbox.name = comment;
                } else {
                    self.at = start;
                    mailbox = Mailbox {
                        name: Some(self.phrase()).filter(|p| !p.is_empty()),
                        ..Mailbox::default()
                    };
                    self.skip_rest(in_group);
                }
                list.push(mailbox.into_address());
            }
        }
        if self.at == start {
            self.at += 1;
        }
    }
}

/// The start (with the group's name) or the end of a group (RFC 3501).
fn group_mark(name: Option<Vec<u8>>) -> Address<'static> {
    Address {
        name: NString::NIL,
        adl: NString::NIL,
        mailbox: optional(name),
        host: NString::NIL,
    }
}
