//! What FETCH and SEARCH read from a message: ENVELOPE, BODYSTRUCTURE,
//! `BODY[section]<partial>` and the search keys that look at headers and text.
//!
//! The interface the session core calls is fixed; the bodies are being written
//! (issue #13).

use imap_types::body::BodyStructure;
use imap_types::envelope::Envelope;
use imap_types::fetch::Section;
use imap_types::search::SearchKey;

/// A message parsed once for every item a FETCH or SEARCH asks of it.
#[derive(Debug)]
pub struct Parsed {
    raw: Vec<u8>,
}

impl Parsed {
    /// Parses `raw`, the message exactly as stored. Never fails: a message
    /// that is not valid MIME is shown as one `text/plain` part, as Dovecot does.
    pub fn new(raw: Vec<u8>) -> Parsed {
        Parsed { raw }
    }

    /// The raw message.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// ENVELOPE (RFC 3501 section 7.4.2).
    pub fn envelope(&self) -> Envelope<'static> {
        unimplemented!("issue #13: message rendering")
    }

    /// BODYSTRUCTURE with extension data (`extended`), or BODY without it.
    pub fn body_structure(&self, extended: bool) -> BodyStructure<'static> {
        let _ = extended;
        unimplemented!("issue #13: message rendering")
    }

    /// The bytes of `BODY[section]` (`None` for `BODY[]`, the whole message),
    /// before any `<partial>` is applied; empty for a part that does not exist,
    /// as RFC 3501 asks.
    pub fn section(&self, section: Option<&Section<'_>>) -> Vec<u8> {
        let _ = section;
        unimplemented!("issue #13: message rendering")
    }

    /// Whether the message matches a search key that reads its content:
    /// `BCC`, `BODY`, `CC`, `FROM`, `HEADER`, `SUBJECT`, `TEXT`, `TO`,
    /// `SENTBEFORE`, `SENTON`, `SENTSINCE`. Any other key is the session's to
    /// evaluate and gives `None`. Strings compare as RFC 3501 section 6.4.4 says:
    /// substrings, without regard to case, after decoding encoded words and
    /// transfer encodings.
    pub fn matches(&self, key: &SearchKey<'_>) -> Option<bool> {
        let _ = key;
        unimplemented!("issue #13: message rendering")
    }
}
