//! Mailbox names: which folder a name means, how names are written on the wire
//! (modified UTF-7, RFC 3501 section 5.1.3, or UTF-8 after `ENABLE UTF8=ACCEPT`)
//! and which names a LIST pattern matches.

use base64::Engine;
use base64::alphabet::IMAP_MUTF7;
use base64::engine::{GeneralPurpose, GeneralPurposeConfig};
use imap_types::core::{AString, IString};
use imap_types::extensions::utf8::QuotedUtf8;
use imap_types::mailbox::{Mailbox, MailboxOther};

/// The hierarchy delimiter LIST shows; tag names may contain it.
pub(super) const DELIMITER: char = '/';

/// The folder a mailbox name means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Name {
    /// `INBOX`, in any case.
    Inbox,
    /// `Sent`: the copies clients save after sending.
    Sent,
    /// `Trash`: always empty; what is moved there is deleted.
    Trash,
    /// A tag's folder, by the tag's name.
    Tag(String),
}

impl Name {
    /// What a client's mailbox argument names; `None` if it is not valid
    /// modified UTF-7 (nor UTF-8). After `ENABLE UTF8=ACCEPT` (`utf8`) names
    /// are UTF-8 as they are, `&` included (RFC 6855 section 3).
    pub(super) fn parse(mailbox: &Mailbox<'_>, utf8: bool) -> Option<Name> {
        let bytes = match mailbox {
            Mailbox::Inbox => return Some(Name::Inbox),
            Mailbox::Other(other) => other.as_ref(),
        };
        Some(Name::from_decoded(decode(bytes, utf8)?))
    }

    /// The folder a decoded name means.
    pub(super) fn from_decoded(name: String) -> Name {
        let name = name
            .strip_suffix(DELIMITER)
            .map(str::to_owned)
            .unwrap_or(name);
        if name.eq_ignore_ascii_case("INBOX") {
            Name::Inbox
        } else if name.eq_ignore_ascii_case("Sent") {
            Name::Sent
        } else if name.eq_ignore_ascii_case("Trash") {
            Name::Trash
        } else {
            Name::Tag(name)
        }
    }

    /// The name as LIST shows it (before encoding).
    pub(super) fn display(&self) -> &str {
        match self {
            Name::Inbox => "INBOX",
            Name::Sent => "Sent",
            Name::Trash => "Trash",
            Name::Tag(name) => name,
        }
    }

    /// The name on the wire: modified UTF-7, or UTF-8 once the client enabled it.
    pub(super) fn to_mailbox(&self, utf8: bool) -> Mailbox<'static> {
        wire_mailbox(self.display(), utf8)
    }
}

/// `name` as a mailbox on the wire.
pub(super) fn wire_mailbox(name: &str, utf8: bool) -> Mailbox<'static> {
    if name.eq_ignore_ascii_case("INBOX") {
        return Mailbox::Inbox;
    }
    if utf8 && !name.is_ascii() {
        // Quoted UTF-8 (RFC 6855), as Dovecot sends it, rather than a literal.
        let quoted = AString::String(IString::QuotedUtf8(QuotedUtf8(name.to_owned().into())));
        if let Ok(other) = MailboxOther::try_from(quoted) {
            return Mailbox::Other(other);
        }
    }
    let wire = if utf8 {
        name.to_owned()
    } else {
        encode_utf7(name)
    };
    Mailbox::try_from(wire).unwrap_or(Mailbox::Inbox)
}

fn engine() -> GeneralPurpose {
    GeneralPurpose::new(
        &IMAP_MUTF7,
        GeneralPurposeConfig::new()
            .with_encode_padding(false)
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone),
    )
}

/// A name or pattern as the client sent it: UTF-8 once it enabled UTF8=ACCEPT,
/// modified UTF-7 before.
pub(super) fn decode(bytes: &[u8], utf8: bool) -> Option<String> {
    if utf8 {
        String::from_utf8(bytes.to_vec()).ok()
    } else {
        decode_utf7(bytes)
    }
}

/// Modified UTF-7 (RFC 3501 section 5.1.3): `&` starts base64 of UTF-16,
/// `-` ends it, `&-` is `&`. A name that is valid UTF-8 with non-ASCII bytes
/// (a client that skipped the encoding) is taken as it is.
pub(super) fn decode_utf7(bytes: &[u8]) -> Option<String> {
    if !bytes.is_ascii() {
        return String::from_utf8(bytes.to_vec()).ok();
    }
    let text = std::str::from_utf8(bytes).ok()?;
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let end = after.find('-')?;
        let encoded = &after[..end];
        if encoded.is_empty() {
            out.push('&');
        } else {
            let raw = engine().decode(encoded).ok()?;
            if raw.len() % 2 != 0 {
                return None;
            }
            let units = raw
                .chunks(2)
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]]));
            for c in char::decode_utf16(units) {
                out.push(c.ok()?);
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// The modified UTF-7 form of `name`.
pub(super) fn encode_utf7(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending: Vec<u16> = Vec::new();
    let flush = |pending: &mut Vec<u16>, out: &mut String| {
        if pending.is_empty() {
            return;
        }
        let bytes: Vec<u8> = pending.iter().flat_map(|u| u.to_be_bytes()).collect();
        out.push('&');
        out.push_str(&engine().encode(bytes));
        out.push('-');
        pending.clear();
    };
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut pending, &mut out);
            out.push(c);
            if c == '&' {
                out.push('-');
            }
        } else {
            let mut units = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut units));
        }
    }
    flush(&mut pending, &mut out);
    out
}

/// Whether `name` matches a LIST pattern: `*` matches anything, `%` anything
/// but the delimiter. INBOX matches without regard to case.
pub(super) fn matches(pattern: &str, name: &str) -> bool {
    if name == "INBOX" && wildcard(pattern.to_ascii_uppercase().as_bytes(), b"INBOX") {
        return true;
    }
    wildcard(pattern.as_bytes(), name.as_bytes())
}

fn wildcard(pattern: &[u8], name: &[u8]) -> bool {
    // reachable[j]: the pattern so far can match exactly name[..j]. One pass
    // per pattern byte, so a hostile pattern of many `*` stays linear in each.
    let mut reachable = vec![false; name.len() + 1];
    reachable[0] = true;
    for &p in pattern {
        let mut next = vec![false; name.len() + 1];
        match p {
            b'*' | b'%' => {
                let mut open = false;
                for j in 0..=name.len() {
                    open |= reachable[j];
                    next[j] = open;
                    if p == b'%' && j < name.len() && name[j] == DELIMITER as u8 {
                        open = false;
                    }
                }
            }
            _ => {
                for j in 0..name.len() {
                    next[j + 1] = reachable[j] && name[j] == p;
                }
            }
        }
        reachable = next;
    }
    reachable[name.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf7_round_trips_names_clients_send() {
        for (plain, wire) in [
            ("Entwürfe", "Entw&APw-rfe"),
            ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
            ("Tom & Jerry", "Tom &- Jerry"),
            ("plain", "plain"),
        ] {
            assert_eq!(encode_utf7(plain), wire);
            assert_eq!(decode_utf7(wire.as_bytes()).as_deref(), Some(plain));
        }
        assert_eq!(decode_utf7(b"bad&AB"), None);
    }

    #[test]
    fn list_patterns_match_as_rfc_3501_says() {
        assert!(matches("*", "a/b/c"));
        assert!(matches("%", "a"));
        assert!(!matches("%", "a/b"));
        assert!(matches("a/%", "a/b"));
        assert!(matches("inbox", "INBOX"));
        assert!(matches("In%", "INBOX"));
        assert!(!matches("Tr", "Trash"));
        assert!(matches("T*h", "Trash"));
        assert!(matches("%/%", "a/b"));
        assert!(!matches("%/%", "a/b/c"));
        assert!(matches("a/*", "a/b/c"));
        let hostile = "*a".repeat(200);
        assert!(!matches(&hostile, &"a".repeat(150)));
    }
}
