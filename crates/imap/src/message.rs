//! What FETCH and SEARCH read from a message: ENVELOPE, BODYSTRUCTURE,
//! `BODY[section]<partial>` and the search keys that look at headers and text.
//!
//! A message is split once into its MIME tree of byte ranges
//! (`message/mime.rs`); every item is then read from the raw bytes, so what a
//! client sees is the message as stored. Where RFC 3501 leaves a choice, the
//! answer is Dovecot's (the differential test in `tests/dovecot.rs` compares
//! the two).

use std::borrow::Cow;

use imap_types::body::BodyStructure;
use imap_types::envelope::Envelope;
use imap_types::fetch::Section;
use imap_types::search::SearchKey;

mod address;
mod envelope;
mod header;
mod mime;
mod rfc822;
mod search;
mod section;
mod structure;
#[cfg(test)]
mod tests;

/// A message parsed once for every item a FETCH or SEARCH asks of it.
#[derive(Debug)]
pub struct Parsed {
    raw: Vec<u8>,
    root: mime::Part,
}

impl Parsed {
    /// Parses `raw`, the message exactly as stored. Never fails: a message
    /// that is not valid MIME is shown as one `text/plain` part, as Dovecot does.
    pub fn new(raw: Vec<u8>) -> Parsed {
        let root = mime::parse(&raw);
        Parsed { raw, root }
    }

    /// The raw message.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// ENVELOPE (RFC 3501 section 7.4.2).
    pub fn envelope(&self) -> Envelope<'static> {
        envelope::envelope(&self.root.fields(&self.raw))
    }

    /// BODYSTRUCTURE with extension data (`extended`), or BODY without it.
    pub fn body_structure(&self, extended: bool) -> BodyStructure<'static> {
        structure::body_structure(&self.raw, &self.root, extended)
    }

    /// The bytes of `BODY[section]` (`None` for `BODY[]`, the whole message),
    /// before any `<partial>` is applied; empty for a part that does not exist,
    /// as RFC 3501 asks.
    pub fn section(&self, section: Option<&Section<'_>>) -> Vec<u8> {
        self.section_bytes(section).into_owned()
    }

    /// [`Parsed::section`] without a copy where the section is one run of the
    /// message (the whole message, a header, a body, a part); only
    /// `HEADER.FIELDS[.NOT]` are put together.
    pub fn section_bytes(&self, section: Option<&Section<'_>>) -> Cow<'_, [u8]> {
        match section {
            None => Cow::Borrowed(&self.raw),
            Some(section) => section::section(&self.raw, &self.root, section),
        }
    }

    /// Whether the message matches a search key that reads its content:
    /// `BCC`, `BODY`, `CC`, `FROM`, `HEADER`, `SUBJECT`, `TEXT`, `TO`,
    /// `SENTBEFORE`, `SENTON`, `SENTSINCE`. Any other key is the session's to
    /// evaluate and gives `None`. Strings compare as RFC 3501 section 6.4.4 says:
    /// substrings, without regard to case, after decoding encoded words and
    /// transfer encodings.
    pub fn matches(&self, key: &SearchKey<'_>) -> Option<bool> {
        search::matches(&self.raw, &self.root, key)
    }
}
