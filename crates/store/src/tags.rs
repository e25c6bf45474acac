//! Tags: what a valid tag name is, and which tags a message gets when it
//! arrives. Backend-neutral; the SQL lives in the backend (`sqlite/tags.rs`).
//!
//! A tag name is, once trimmed and with every run of whitespace made one space,
//! 1 to [`MAX_TAG_CHARS`] characters of: letters and digits (any script), space,
//! `-`, `_`, `.` and `@`. That is Mailpit's set with letters and digits beyond
//! ASCII. Names compare without regard to case (`Invoice` and `invoice` are one
//! tag); the first spelling stored is the one kept. Where a user names a tag
//! ([`crate::Store::set_tags`] and the others, the API, the CLI) a name outside
//! these rules is refused with a [`TagError`] saying why; Mailpit silently
//! cleans such names instead.
//!
//! At delivery ([`Tagging`]), tags come from three places:
//!
//! - an `X-Tags: a, b` header (every such header, split on commas);
//! - plus addresses: `user+tag@host` (and `user+a+b@host`) among the envelope
//!   recipients, To, Cc, Bcc and From, as Mailpit reads them;
//! - rules ([`TagRule`], `--tag 'NAME=QUERY'`): a message that matches the
//!   search query gets the tag.
//!
//! What arrives is cleaned as Mailpit cleans it rather than refused (a 250
//! cannot be taken back over a tag): characters outside the set become spaces,
//! spaces are collapsed, the name is cut to [`MAX_TAG_CHARS`], and what is left
//! empty is dropped. A message gets at most [`MAX_DELIVERY_TAGS`] tags from its
//! headers and addresses.
//!
//! Header and address tags are written in the same transaction as the message,
//! so its `new` event already carries them. Rules need the search index, which
//! the writer fills after the commit when it is idle (see `sqlite/writer.rs`):
//! they are evaluated right after a batch is indexed, on just the new messages,
//! and the tags they add are announced as [`crate::StoreEvent::TagsChanged`].
//! The 250 never waits for a rule. If indexing a batch fails (it is then redone
//! when the store is next opened), the rules are not run for that batch; an
//! import ([`crate::Store::import`]) indexes at once and runs them in its own
//! transaction.

use std::fmt;
use std::str::FromStr;

use mail_parser::{HeaderName, MessageParser};

use crate::mime::Digest;
use crate::{NewMessage, SearchError, SearchQuery};

/// The longest tag name, in characters (Mailpit cuts names at 100).
pub const MAX_TAG_CHARS: usize = 100;

/// The most tags a message gets at delivery from its `X-Tags` headers and plus
/// addresses together; further ones are ignored.
pub const MAX_DELIVERY_TAGS: usize = 50;

/// The most tag names one request ([`crate::Store::set_tags`] and the others)
/// may name.
pub const MAX_REQUEST_TAGS: usize = 100;

/// Why a tag name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TagError {
    /// Nothing is left once the name is trimmed.
    #[error("a tag name cannot be empty")]
    Empty,
    /// The name has more than [`MAX_TAG_CHARS`] characters.
    #[error("tag name {name:?} is longer than {MAX_TAG_CHARS} characters")]
    TooLong {
        /// The name as given (cut for the message).
        name: String,
    },
    /// The name has a character outside the allowed set.
    #[error(
        "tag name {name:?} has {character:?}; tag names hold letters, digits, spaces and - _ . @"
    )]
    BadCharacter {
        /// The name as given.
        name: String,
        /// The first character not allowed.
        character: char,
    },
    /// One request named more than [`MAX_REQUEST_TAGS`] tags.
    #[error("{count} tags in one request; at most {MAX_REQUEST_TAGS}")]
    TooMany {
        /// How many were named.
        count: usize,
    },
    /// A `--tag` rule is not `NAME=QUERY`.
    #[error("tag rule {rule:?} is not NAME=SEARCH QUERY (for example 'invoices=subject:invoice')")]
    BadRule {
        /// The rule as given.
        rule: String,
    },
    /// A `--tag` rule's query does not parse.
    #[error("tag rule {rule:?}: {error}")]
    BadRuleQuery {
        /// The rule as given.
        rule: String,
        /// What is wrong with its query.
        error: SearchError,
    },
}

/// A valid tag name (see the module documentation for the rules). Compare two
/// names with [`TagName::same_as`]: names are case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TagName(String);

impl TagName {
    /// Check and normalise `name`: trimmed, whitespace runs made one space.
    pub fn parse(name: &str) -> Result<TagName, TagError> {
        let normal = collapse_spaces(name);
        if normal.is_empty() {
            return Err(TagError::Empty);
        }
        if let Some(character) = normal.chars().find(|c| !allowed(*c)) {
            return Err(TagError::BadCharacter {
                name: name.chars().take(MAX_TAG_CHARS).collect(),
                character,
            });
        }
        if normal.chars().count() > MAX_TAG_CHARS {
            return Err(TagError::TooLong {
                name: name.chars().take(MAX_TAG_CHARS).collect::<String>() + "…",
            });
        }
        Ok(TagName(normal))
    }

    /// Parse every name of one request, dropping repeats (ignoring case).
    pub fn parse_all<S: AsRef<str>>(names: &[S]) -> Result<Vec<TagName>, TagError> {
        if names.len() > MAX_REQUEST_TAGS {
            return Err(TagError::TooMany { count: names.len() });
        }
        let mut tags: Vec<TagName> = Vec::with_capacity(names.len());
        for name in names {
            let tag = TagName::parse(name.as_ref())?;
            if !tags.iter().any(|seen| seen.same_as(&tag)) {
                tags.push(tag);
            }
        }
        Ok(tags)
    }

    /// Clean `text` as Mailpit does with tags that arrive with a message:
    /// characters outside the set become spaces, then trimmed, collapsed and cut.
    /// `None` if nothing is left.
    pub fn clean(text: &str) -> Option<TagName> {
        let replaced: String = text
            .chars()
            .map(|c| if allowed(c) { c } else { ' ' })
            .collect();
        let normal: String = collapse_spaces(&replaced)
            .chars()
            .take(MAX_TAG_CHARS)
            .collect();
        let normal = normal.trim_end().to_string();
        (!normal.is_empty()).then_some(TagName(normal))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is the same tag as `other`: equal ignoring case.
    pub fn same_as(&self, other: &TagName) -> bool {
        self.key() == other.key()
    }

    /// The name folded for case-insensitive comparison.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

impl fmt::Display for TagName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for TagName {
    type Err = TagError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TagName::parse(s)
    }
}

fn allowed(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.' | '@')
}

fn collapse_spaces(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `--tag 'NAME=QUERY'`: every arriving message that matches the search query
/// gets the tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRule {
    /// The tag to give.
    pub tag: TagName,
    /// Which messages get it.
    pub query: SearchQuery,
}

impl TagRule {
    /// Parse `NAME=QUERY`; the first `=` separates them. An empty query is
    /// refused: it would tag every message.
    pub fn parse(rule: &str) -> Result<TagRule, TagError> {
        let bad = || TagError::BadRule {
            rule: rule.to_string(),
        };
        let (name, query) = rule.split_once('=').ok_or_else(bad)?;
        let tag = TagName::parse(name)?;
        let query = SearchQuery::parse(query).map_err(|error| TagError::BadRuleQuery {
            rule: rule.to_string(),
            error,
        })?;
        if query.is_empty() {
            return Err(bad());
        }
        Ok(TagRule { tag, query })
    }
}

impl FromStr for TagRule {
    type Err = TagError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TagRule::parse(s)
    }
}

/// How messages are tagged at delivery ([`crate::StoreOptions::tagging`]). The
/// default reads `X-Tags` and plus addresses, as Mailpit does, and has no rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tagging {
    /// Read `X-Tags` headers (Mailpit's `--tags-disable x-tags` turns it off).
    pub x_tags: bool,
    /// Read `user+tag@host` addresses (`--tags-disable plus-addresses`).
    pub plus_addresses: bool,
    /// `--tag` rules, evaluated after the message is indexed.
    pub rules: Vec<TagRule>,
}

impl Default for Tagging {
    fn default() -> Self {
        Tagging {
            x_tags: true,
            plus_addresses: true,
            rules: Vec::new(),
        }
    }
}

impl Tagging {
    /// The tags `message` gets from its `X-Tags` headers and plus addresses,
    /// without repeats, at most [`MAX_DELIVERY_TAGS`]. `digest` is its summary,
    /// with the From, To, Cc and Bcc headers.
    pub(crate) fn at_delivery(&self, message: &NewMessage, digest: &Digest) -> Vec<TagName> {
        let mut found = Vec::new();
        // Bytes that are no message have no header to read.
        if self.x_tags && digest.parsed {
            found.extend(x_tags(&message.raw));
        }
        let from = digest.from.as_ref();
        let headers = [&digest.to, &digest.cc, &digest.bcc];
        if self.plus_addresses {
            let addresses = message
                .envelope
                .rcpt_to
                .iter()
                .map(String::as_str)
                .chain(headers.into_iter().flatten().map(|a| a.address.as_str()))
                .chain(from.map(|a| a.address.as_str()));
            for address in addresses {
                found.extend(plus_tags(address));
            }
        }
        let mut tags: Vec<TagName> = Vec::new();
        for tag in found {
            if tags.len() == MAX_DELIVERY_TAGS {
                break;
            }
            if !tags.iter().any(|seen| seen.same_as(&tag)) {
                tags.push(tag);
            }
        }
        tags
    }
}

/// The tags named in `raw`'s `X-Tags` headers, looked for in the first
/// [`MAX_HEADER_SCAN`] bytes of its header block only.
fn x_tags(raw: &[u8]) -> Vec<TagName> {
    let parser = MessageParser::new()
        .header_text(HeaderName::Other("X-Tags".into()))
        .default_header_ignore();
    let Some(headers) = parser.parse_headers(header_block(raw)) else {
        return Vec::new();
    };
    headers
        .header_values("X-Tags")
        .filter_map(|value| value.as_text())
        .flat_map(|text| text.split(','))
        .filter_map(TagName::clean)
        .take(MAX_DELIVERY_TAGS)
        .collect()
}

/// How much of a message is searched for its `X-Tags` headers: a header block
/// is rarely more than a few KiB (20,000 To addresses make some 600 KiB), and
/// without a bound a 32 MiB message of one long "header" would be parsed a
/// second time whole.
const MAX_HEADER_SCAN: usize = 1 << 20;

/// `raw` up to the blank line that ends its header block, at most
/// [`MAX_HEADER_SCAN`] bytes.
fn header_block(raw: &[u8]) -> &[u8] {
    let scanned = &raw[..raw.len().min(MAX_HEADER_SCAN)];
    let end = (0..scanned.len())
        .find(|&at| {
            scanned[at] == b'\n' && matches!(&scanned[at + 1..], [b'\n', ..] | [b'\r', b'\n', ..])
        })
        .map_or(scanned.len(), |at| at + 1);
    &scanned[..end]
}

/// The tags of a plus address: `user+a+b@host` gives `a` and `b`.
fn plus_tags(address: &str) -> Vec<TagName> {
    let Some((local, _)) = address.rsplit_once('@') else {
        return Vec::new();
    };
    let Some((_, tags)) = local.split_once('+') else {
        return Vec::new();
    };
    tags.split('+').filter_map(TagName::clean).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_normalised() {
        assert_eq!(TagName::parse("  a  b ").unwrap().as_str(), "a b");
        assert_eq!(
            TagName::parse("Größe-1_x.y@z").unwrap().as_str(),
            "Größe-1_x.y@z"
        );
        assert_eq!(TagName::parse(" "), Err(TagError::Empty));
        assert!(matches!(
            TagName::parse("a,b"),
            Err(TagError::BadCharacter { character: ',', .. })
        ));
        assert!(TagName::parse(&"x".repeat(MAX_TAG_CHARS)).is_ok());
        assert!(matches!(
            TagName::parse(&"x".repeat(MAX_TAG_CHARS + 1)),
            Err(TagError::TooLong { .. })
        ));
        let a = TagName::parse("ÄBC").unwrap();
        assert!(a.same_as(&TagName::parse("äbc").unwrap()));
        let all = TagName::parse_all(&["a", "A", "b"]).unwrap();
        assert_eq!(all.len(), 2);
    }

    #[test]
    fn arriving_names_are_cleaned_like_mailpit() {
        assert_eq!(TagName::clean(" urgent! ").unwrap().as_str(), "urgent");
        assert_eq!(TagName::clean("a,,b").unwrap().as_str(), "a b");
        assert_eq!(TagName::clean("!!"), None);
        assert_eq!(
            TagName::clean(&"y".repeat(300)).unwrap().as_str().len(),
            MAX_TAG_CHARS
        );
    }

    #[test]
    fn x_tags_and_plus_addresses() {
        let raw = b"Subject: x\r\nX-Tags: one, Two\r\n  ,three\r\nx-tags: four\r\n\r\nbody";
        let names: Vec<String> = x_tags(raw).iter().map(ToString::to_string).collect();
        assert_eq!(names, ["one", "Two", "three", "four"]);
        // Only the header block counts, and only its first MiB.
        let in_body = b"Subject: x\r\n\r\nX-Tags: body\r\n";
        assert!(x_tags(in_body).is_empty());
        assert_eq!(header_block(b"A: 1\nB: 2\n\nC: 3\r\n\r\n"), b"A: 1\nB: 2\n");
        assert_eq!(header_block(b"A: 1\r\n\r\nB: 2\n\n"), b"A: 1\r\n");
        let mut late = b"Subject: x\r\n".to_vec();
        late.extend(b"X-Filler: y\r\n".repeat(MAX_HEADER_SCAN / 13));
        late.extend(b"X-Tags: late\r\n\r\nbody");
        assert!(x_tags(&late).is_empty());
        let plus: Vec<String> = plus_tags("user+a+b@example.com")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(plus, ["a", "b"]);
        assert!(plus_tags("user@example.com").is_empty());
        assert!(plus_tags("a+b").is_empty());
    }

    #[test]
    fn rules_parse() {
        let rule = TagRule::parse("invoices=subject:invoice").unwrap();
        assert_eq!(rule.tag.as_str(), "invoices");
        assert!(matches!(
            TagRule::parse("no equals"),
            Err(TagError::BadRule { .. })
        ));
        assert!(matches!(
            TagRule::parse("x="),
            Err(TagError::BadRule { .. })
        ));
        assert!(matches!(
            TagRule::parse("a,b=x"),
            Err(TagError::BadCharacter { .. })
        ));
    }
}
