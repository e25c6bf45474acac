//! The differential test against Dovecot (issue #13): a corpus of tricky MIME
//! messages (nested multiparts, encoded words, odd charsets, attachments with
//! long names, message/rfc822 parts, broken headers) goes to a throwaway
//! Dovecot by APPEND and to a real `sokkel mail serve` over SMTP; the two
//! servers' FETCH ENVELOPE, BODY, BODYSTRUCTURE, `BODY[n.MIME]`, `BODY[n]`,
//! header sections and SEARCH answers must be the same. A second test holds
//! Dovecot's answers against [`sokkel_imap::message::Parsed`] directly, which
//! points at the renderer when the first one fails.
//!
//! sokkel must store what SMTP hands it unchanged (checked); Dovecot gets
//! those stored bytes, so a line break SMTP adds at the end of a message that
//! had none is in both.
//!
//! Normalised before comparing, because it must differ and IMAP gives it no
//! meaning: a string Dovecot sends as a literal and imap-codec as a quoted
//! string (or the reverse) compares by its bytes, and the media types of text
//! and message/rfc822 parts compare without regard to case (imap-codec writes
//! `"TEXT"` and `"MESSAGE" "RFC822"`, Dovecot the message's own spelling).
//! Both answers are parsed and re-encoded with imap-codec, which does both.
//! Messages are compared by sequence number (UIDs and INTERNALDATE are never
//! asked for).

mod dovecot_kit;

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU32;

use dovecot_kit::sokkel::{self, Sokkel};
use dovecot_kit::{Client, Dovecot, corpus};
use imap_codec::encode::Encoder;
use imap_codec::{CommandCodec, ResponseCodec, decode::Decoder};
use imap_types::command::CommandBody;
use imap_types::core::Vec1;
use imap_types::fetch::{MessageDataItem, Section};
use imap_types::response::{Data, Response};
use imap_types::search::SearchKey;
use sokkel_imap::message::Parsed;

/// The part numbers whose `BODY[n.MIME]` and `BODY[n]` are compared: every
/// part of the corpus, and some that do not exist.
const PARTS: &[&str] = &[
    "1", "2", "3", "4", "1.1", "1.2", "2.1", "2.2", "2.3", "3.1", "3.2", "1.1.1", "1.1.2", "1.2.1",
    "2.2.1", "2.2.2", "3.1.1", "3.2.1", "1.1.1.1", "1.1.1.2",
];

/// The searches whose matching message sets are compared, as a client sends
/// them after `SEARCH `.
fn searches() -> Vec<Vec<u8>> {
    let utf8 = |key: &str, text: &str| {
        let mut search = format!("CHARSET UTF-8 {key} {{{}+}}\r\n", text.len()).into_bytes();
        search.extend_from_slice(text.as_bytes());
        search
    };
    let mut searches: Vec<Vec<u8>> = [
        "FROM alice",
        "FROM \"Comment Name\"",
        "FROM MISSING",
        "TO undisclosed",
        "TO bob@example.com",
        "CC b@y.org",
        "BCC hidden",
        "SUBJECT \"au lait\"",
        "SUBJECT inner",
        "HEADER In-Reply-To \"\"",
        "HEADER Content-Type multipart",
        "HEADER X-Missing \"\"",
        "HEADER Message-ID spaces",
        "BODY hello",
        "BODY \"inner text\"",
        "BODY inner@x",
        "TEXT inner@x",
        "TEXT \"Comment Name\"",
        "TEXT boundary",
        "SENTSINCE 1-Dec-2026",
        "SENTBEFORE 1-Dec-2026",
        "SENTON 30-Nov-2026",
        "SENTON 1-Dec-2026",
        "NOT FROM a@b",
        "OR SUBJECT plain SUBJECT inner",
        "OR BODY hello NOT TO bob",
        "NOT SENTSINCE 2-Jan-2026",
        "CHARSET US-ASCII BODY naive",
        "BODY JVBERi",
        "BODY \"%PDF\"",
        "BODY \"a,b\"",
        "TEXT attached.eml",
        "TEXT \"Content-Type\"",
        "BODY UEsDBA",
        "BODY body",
        "TEXT body",
        "SUBJECT =?koi8-r",
        "HEADER Subject \"and more\"",
        "HEADER Content-Disposition attachment",
        "FROM \"Group One\"",
        "TO \"@r1\"",
        "CC SYNTAX_ERROR",
        "BODY \"\"",
        "SUBJECT \"\"",
    ]
    .iter()
    .map(|search| search.as_bytes().to_vec())
    .collect();
    for (key, text) in [
        ("FROM", "jörg"),
        ("FROM", "JÜRGEN"),
        ("SUBJECT", "café"),
        ("SUBJECT", "привет"),
        ("SUBJECT", "grüße"),
        ("BODY", "grüße aus köln"),
        ("BODY", "café"),
        ("BODY", "naïve"),
        ("BODY", "текст"),
        ("BODY", "日本"),
        ("TEXT", "привет"),
        ("HEADER Subject", "привет"),
        ("FROM", "日本"),
        ("TEXT", "grüße raw"),
        ("BODY", "crème"),
    ] {
        searches.push(utf8(key, text));
    }
    searches
}

/// What one server answers for one message: each item's text (see the
/// module's doc for the normalisation), by item name.
type Answers = BTreeMap<String, String>;

/// An IMAP server, or [`Parsed`] standing in for one.
trait Server {
    /// The FETCH answers for message `seq`.
    fn answers(&mut self, seq: usize) -> Answers;
    /// The message numbers `SEARCH <search>` finds.
    fn search(&mut self, search: &[u8]) -> BTreeSet<u32>;
}

#[test]
#[ignore = "interop: needs dovecot-imapd"]
fn parsed_renders_what_dovecot_answers() {
    let corpus = corpus::corpus();
    let dovecot = Dovecot::start();
    let mut dovecot_session = dovecot.login();
    for message in &corpus {
        dovecot_session.append(message);
    }
    let mut parsed = ParsedCorpus(corpus.into_iter().map(Parsed::new).collect());
    let count = parsed.0.len();
    assert_same_answers(&mut dovecot_session, &mut parsed, count);
}

#[test]
#[ignore = "interop: needs dovecot-imapd"]
fn sokkel_answers_over_imap_what_dovecot_answers() {
    let corpus = corpus::corpus();
    let sokkel = Sokkel::start();
    for message in &corpus {
        sokkel.deliver(message);
    }
    let mut sokkel_session = Client::login(sokkel.imap.port(), sokkel::USER, sokkel::PASSWORD);
    let dovecot = Dovecot::start();
    let mut dovecot_session = dovecot.login();
    for (seq, message) in (1..).zip(&corpus) {
        let stored = body(&mut sokkel_session, seq);
        let mut sent = message.clone();
        if !sent.ends_with(b"\r\n") {
            sent.extend_from_slice(b"\r\n");
        }
        assert!(
            stored == sent,
            "sokkel changed message {seq} on the way in:\n{}",
            String::from_utf8_lossy(&stored)
        );
        dovecot_session.append(&stored);
    }
    assert_same_answers(&mut dovecot_session, &mut sokkel_session, corpus.len());
}

/// Compares every answer of `dovecot` and `sokkel` for `count` messages and
/// every search, and fails with all the differences.
fn assert_same_answers(dovecot: &mut dyn Server, sokkel: &mut dyn Server, count: usize) {
    let mut differences = Vec::new();
    for seq in 1..=count {
        let (theirs, ours) = (dovecot.answers(seq), sokkel.answers(seq));
        let names: BTreeSet<&String> = theirs.keys().chain(ours.keys()).collect();
        for name in names {
            let (theirs, ours) = (theirs.get(name), ours.get(name));
            if theirs != ours {
                differences.push(format!(
                    "message {seq} {name}:\n  dovecot: {theirs:?}\n  sokkel:  {ours:?}"
                ));
            }
        }
    }
    for search in searches() {
        let (theirs, ours) = (dovecot.search(&search), sokkel.search(&search));
        if theirs != ours {
            let query = String::from_utf8_lossy(&search).replace("\r\n", " ");
            differences.push(format!(
                "SEARCH {query}:\n  dovecot: {theirs:?}\n  sokkel:  {ours:?}"
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "{} differences from Dovecot:\n{}",
        differences.len(),
        differences.join("\n")
    );
}

/// The whole of message `seq` as a server keeps it.
fn body(session: &mut Client, seq: usize) -> Vec<u8> {
    fetch(session, seq, "(BODY.PEEK[])")
        .into_iter()
        .find_map(|item| match item {
            MessageDataItem::BodyExt {
                section: None,
                data,
                ..
            } => data.into_option().map(|d| d.into_owned()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no BODY[] for message {seq}"))
}

impl Server for Client {
    fn answers(&mut self, seq: usize) -> Answers {
        let sections = sections();
        let mut items = String::from("(ENVELOPE BODY BODYSTRUCTURE");
        for (name, _) in &sections {
            items.push_str(&format!(" BODY.PEEK[{name}]"));
        }
        items.push(')');
        let mut answers = Answers::new();
        for item in fetch(self, seq, &items) {
            match &item {
                MessageDataItem::Envelope(_) => answers.insert("ENVELOPE".into(), canonical(&item)),
                MessageDataItem::Body(_) => answers.insert("BODY".into(), canonical(&item)),
                MessageDataItem::BodyStructure(_) => {
                    answers.insert("BODYSTRUCTURE".into(), canonical(&item))
                }
                MessageDataItem::BodyExt {
                    section: Some(section),
                    data,
                    ..
                } => {
                    // Servers may echo header names in another case.
                    let key = |section: &Section<'_>| format!("{section:?}").to_ascii_uppercase();
                    let name = sections
                        .iter()
                        .find(|(_, asked)| key(asked) == key(section))
                        .map_or_else(|| format!("{section:?}"), |(name, _)| name.clone());
                    answers.insert(
                        format!("BODY[{name}]"),
                        text(data.clone().into_option().as_deref()),
                    )
                }
                _ => None,
            };
        }
        answers
    }

    fn search(&mut self, search: &[u8]) -> BTreeSet<u32> {
        let mut command = b"SEARCH ".to_vec();
        command.extend_from_slice(search);
        let mut found = BTreeSet::new();
        for response in self.ok_bytes(&command) {
            if let Some(numbers) = response.strip_prefix(b"* SEARCH") {
                found.extend(
                    String::from_utf8_lossy(numbers)
                        .split_whitespace()
                        .map(|n| n.parse::<u32>().expect("a message number")),
                );
            }
        }
        found
    }
}

/// The corpus parsed, answering as an IMAP server would.
struct ParsedCorpus(Vec<Parsed>);

impl Server for ParsedCorpus {
    fn answers(&mut self, seq: usize) -> Answers {
        let parsed = &self.0[seq - 1];
        let mut answers = Answers::new();
        answers.insert(
            "ENVELOPE".into(),
            canonical(&MessageDataItem::Envelope(parsed.envelope())),
        );
        answers.insert(
            "BODY".into(),
            canonical(&MessageDataItem::Body(parsed.body_structure(false))),
        );
        answers.insert(
            "BODYSTRUCTURE".into(),
            canonical(&MessageDataItem::BodyStructure(parsed.body_structure(true))),
        );
        for (name, section) in sections() {
            answers.insert(
                format!("BODY[{name}]"),
                text(Some(&parsed.section(Some(&section)))),
            );
        }
        answers
    }

    fn search(&mut self, search: &[u8]) -> BTreeSet<u32> {
        let mut command = b"A SEARCH ".to_vec();
        command.extend_from_slice(search);
        command.extend_from_slice(b"\r\n");
        let (_, command) = CommandCodec::default()
            .decode_static(&command)
            .unwrap_or_else(|e| {
                panic!(
                    "imap-codec cannot parse SEARCH {}: {e:?}",
                    String::from_utf8_lossy(search)
                )
            });
        let CommandBody::Search { criteria, .. } = command.body else {
            panic!("not a SEARCH");
        };
        let key = SearchKey::And(criteria);
        (1..)
            .zip(&self.0)
            .filter(|(_, message)| evaluate(message, &key))
            .map(|(seq, _)| seq)
            .collect()
    }
}

/// Section bytes as text for the report (`NIL` for no bytes at all).
fn text(data: Option<&[u8]>) -> String {
    data.map_or_else(
        || "NIL".to_owned(),
        |bytes| String::from_utf8_lossy(bytes).into_owned(),
    )
}

/// The sections compared for every message: `n.MIME` and `n` for every
/// number in [`PARTS`], and the header forms.
fn sections() -> Vec<(String, Section<'static>)> {
    let mut names: Vec<String> = Vec::new();
    for part in PARTS {
        names.push(format!("{part}.MIME"));
        names.push((*part).to_owned());
    }
    names.extend(
        [
            "HEADER",
            "TEXT",
            "HEADER.FIELDS (From Subject Content-Type)",
            "HEADER.FIELDS.NOT (Date Message-ID)",
            "1.HEADER",
            "3.HEADER",
            "3.TEXT",
            "3.HEADER.FIELDS (Subject)",
        ]
        .map(str::to_owned),
    );
    names
        .into_iter()
        .map(|name| {
            let section = section(&name);
            (name, section)
        })
        .collect()
}

/// `name` parsed as the section of a `BODY.PEEK[name]` FETCH item.
fn section(name: &str) -> Section<'static> {
    let command = format!("A FETCH 1 (BODY.PEEK[{name}])\r\n");
    let (_, command) = CommandCodec::default()
        .decode_static(command.as_bytes())
        .expect("a FETCH command");
    let CommandBody::Fetch {
        macro_or_item_names,
        ..
    } = command.body
    else {
        panic!("not a FETCH");
    };
    let imap_types::fetch::MacroOrMessageDataItemNames::MessageDataItemNames(names) =
        macro_or_item_names
    else {
        panic!("not an item list");
    };
    match names.into_iter().next() {
        Some(imap_types::fetch::MessageDataItemName::BodyExt {
            section: Some(section),
            ..
        }) => section,
        other => panic!("BODY.PEEK[{name}] parsed as {other:?}"),
    }
}

/// The FETCH items a server answers for message `seq`.
fn fetch(imap: &mut Client, seq: usize, items: &str) -> Vec<MessageDataItem<'static>> {
    let responses = imap.ok(&format!("FETCH {seq} {items}"));
    let mut found = Vec::new();
    for response in responses {
        let (_, response) = ResponseCodec::default()
            .decode_static(&response)
            .unwrap_or_else(|e| {
                panic!(
                    "imap-codec cannot parse {:?}: {e:?}",
                    String::from_utf8_lossy(&response)
                )
            });
        if let Response::Data(Data::Fetch { items, .. }) = response {
            found.extend(items);
        }
    }
    found
}

/// An item as imap-codec writes it, literals turned into quoted strings where
/// they can be.
fn canonical(item: &MessageDataItem<'_>) -> String {
    let response = Response::Data(Data::Fetch {
        seq: NonZeroU32::MIN,
        items: Vec1::from(item.clone()),
    });
    let bytes = ResponseCodec::default().encode(&response).dump();
    String::from_utf8_lossy(&literals_quoted(&bytes)).into_owned()
}

/// `{n}\r\n` + n bytes → a quoted string, when the bytes can be one.
fn literals_quoted(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b'{' {
            if let Some(close) = bytes[at..].iter().position(|&b| b == b'}').map(|i| at + i) {
                let length = std::str::from_utf8(&bytes[at + 1..close])
                    .ok()
                    .and_then(|n| n.parse::<usize>().ok());
                if let Some(length) = length.filter(|_| bytes[close + 1..].starts_with(b"\r\n")) {
                    let data = &bytes[close + 3..close + 3 + length];
                    if data
                        .iter()
                        .all(|&b| (0x01..0x80).contains(&b) && b != b'\r' && b != b'\n')
                    {
                        out.push(b'"');
                        for &b in data {
                            if b == b'"' || b == b'\\' {
                                out.push(b'\\');
                            }
                            out.push(b);
                        }
                        out.push(b'"');
                    } else {
                        out.extend_from_slice(&bytes[at..close + 3 + length]);
                    }
                    at = close + 3 + length;
                    continue;
                }
            }
        }
        out.push(bytes[at]);
        at += 1;
    }
    out
}

/// What the session core does with the keys that combine others.
fn evaluate(message: &Parsed, key: &SearchKey<'_>) -> bool {
    match key {
        SearchKey::And(keys) => keys.as_ref().iter().all(|key| evaluate(message, key)),
        SearchKey::Or(a, b) => evaluate(message, a) || evaluate(message, b),
        SearchKey::Not(key) => !evaluate(message, key),
        SearchKey::All => true,
        key => message
            .matches(key)
            .unwrap_or_else(|| panic!("not a content key: {key:?}")),
    }
}
