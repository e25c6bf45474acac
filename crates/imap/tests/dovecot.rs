//! The differential test against Dovecot (issue #13): a corpus of tricky MIME
//! messages (nested multiparts, encoded words, odd charsets, attachments with
//! long names, message/rfc822 parts) goes to a throwaway Dovecot by APPEND;
//! Dovecot's FETCH ENVELOPE, BODY, BODYSTRUCTURE, `BODY[n.MIME]`, `BODY[n]`,
//! `BODY[HEADER.FIELDS ...]` and SEARCH answers must equal what
//! [`sokkel_imap::message::Parsed`] gives for the same bytes.
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

use std::collections::BTreeSet;
use std::num::NonZeroU32;

use dovecot_kit::Dovecot;
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
    ] {
        searches.push(utf8(key, text));
    }
    searches
}

#[test]
#[ignore = "interop: needs dovecot-imapd"]
fn fetch_and_search_answers_equal_dovecots() {
    let corpus = corpus();
    let dovecot = Dovecot::start();
    let mut imap = dovecot.login();
    for message in &corpus {
        imap.append(message);
    }
    let mut differences = Vec::new();
    for (index, raw) in corpus.iter().enumerate() {
        let seq = index + 1;
        let ours = Parsed::new(raw.clone());
        let theirs = fetch(&mut imap, seq, "(ENVELOPE BODY BODYSTRUCTURE)");
        for item in theirs {
            let mine = match &item {
                MessageDataItem::Envelope(_) => MessageDataItem::Envelope(ours.envelope()),
                MessageDataItem::Body(_) => MessageDataItem::Body(ours.body_structure(false)),
                MessageDataItem::BodyStructure(_) => {
                    MessageDataItem::BodyStructure(ours.body_structure(true))
                }
                _ => continue,
            };
            compare(&mut differences, seq, &canonical(&item), &canonical(&mine));
        }
        for (name, section) in sections() {
            let theirs = fetch(&mut imap, seq, &format!("(BODY.PEEK[{name}])"));
            let theirs = match theirs.first() {
                Some(MessageDataItem::BodyExt { data, .. }) => {
                    data.clone().into_option().unwrap_or_default().into_owned()
                }
                other => panic!("BODY[{name}] of message {seq}: {other:?}"),
            };
            let mine = ours.section(Some(&section));
            compare(
                &mut differences,
                seq,
                &format!("BODY[{name}] {}", String::from_utf8_lossy(&theirs)),
                &format!("BODY[{name}] {}", String::from_utf8_lossy(&mine)),
            );
        }
    }
    let parsed: Vec<Parsed> = corpus.into_iter().map(Parsed::new).collect();
    for search in searches() {
        let theirs = search_dovecot(&mut imap, &search);
        let mine = search_parsed(&parsed, &search);
        let query = String::from_utf8_lossy(&search).replace("\r\n", " ");
        compare(
            &mut differences,
            0,
            &format!("SEARCH {query} → {theirs:?}"),
            &format!("SEARCH {query} → {mine:?}"),
        );
    }
    assert!(
        differences.is_empty(),
        "{} differences from Dovecot:\n{}",
        differences.len(),
        differences.join("\n")
    );
}

fn compare(differences: &mut Vec<String>, seq: usize, dovecot: &str, sokkel: &str) {
    if dovecot != sokkel {
        differences.push(format!(
            "message {seq}:\n  dovecot: {dovecot}\n  sokkel:  {sokkel}"
        ));
    }
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

/// The FETCH items Dovecot answers for message `seq`.
fn fetch(imap: &mut dovecot_kit::Client, seq: usize, items: &str) -> Vec<MessageDataItem<'static>> {
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

fn search_dovecot(imap: &mut dovecot_kit::Client, search: &[u8]) -> BTreeSet<u32> {
    let mut command = b"SEARCH ".to_vec();
    command.extend_from_slice(search);
    let mut found = BTreeSet::new();
    for response in imap.ok_bytes(&command) {
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

fn search_parsed(messages: &[Parsed], search: &[u8]) -> BTreeSet<u32> {
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
        .zip(messages)
        .filter(|(_, message)| evaluate(message, &key))
        .map(|(seq, _)| seq)
        .collect()
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

/// The corpus: each message as it travels (CRLF line ends).
fn corpus() -> Vec<Vec<u8>> {
    MESSAGES
        .iter()
        .map(|message| message.replace('\n', "\r\n").into_bytes())
        .chain(eight_bit_messages())
        .chain(
            broken_headers()
                .into_iter()
                .map(|header| format!("{header}\r\n\r\nbody\r\n").into_bytes()),
        )
        .collect()
}

/// Header blocks that break the rules, each with a one-line body.
fn broken_headers() -> Vec<String> {
    [
        "From: \"never closed <a@b>\nTo: (open comment a@b\nCc: <x@y\nContent-Type: text/plain; name=\"open",
        "From: foo\nTo: \nCc: \"\" <a@b>, Joe \"Q\" Smith <j@x>\nBcc: \"john doe\"@x, a@b, , c@d\nReply-To: a@b (c1) (c2), x@y (outer (inner))\nSender: J. R. R. Tolkien <t@x>",
        "From: Group One: ;, Two: a@b,c@d;\nTo: <a@b> (comment)\nCc: name (comment) <a@b>\nSubject:  two  spaces  \nIn-Reply-To: ",
        "Subject: a\nSubject: b\nFrom: x@y\nFrom: z@w\nDate: d1\nDate: d2\nTo: <@r1,@r2:a@b>, <@bad a@b>",
        "Content-Type: text",
        "Content-Type: ;",
        "Content-Type: text/",
        "Content-Type:",
        "Content-Type: multipart/mixed",
        "Content-Type: multipart/mixed; boundary=\"\"",
        "Content-Type: image/png\nContent-Type: text/html",
        "Content-Type: text/plain; foo; a=b; =c; d=\"x\"; e==?utf-8?q?x?=",
        "Content-Type: application/x; n*1=b%; n*0*=a%; m*0=x; m*2=z; p*=utf-8''%41",
        "Content-Type: text/plain\nContent-Transfer-Encoding: 8bit garbage",
        "Content-Type: text/plain\nContent-Transfer-Encoding: base64 (c)",
        "Content-Type: text/plain\nContent-Disposition: ; filename=a",
        "Content-Type: text/plain\nContent-Language: en-US (c), (x) de,,fr",
        "Content-Type: text/plain\nContent-ID:  <a>\n  <b>\nContent-Description: \t desc  \nContent-Location:\n http://x",
    ]
    .iter()
    .map(|header| header.replace('\n', "\r\n"))
    .collect()
}

/// Messages with bytes that are not UTF-8 text, or raw UTF-8 in headers.
fn eight_bit_messages() -> Vec<Vec<u8>> {
    let mut koi8 = b"From: =?koi8-r?b?8NLJ18XU?= <koi@example.ru>\r\nTo: bob@example.com\r\nSubject: =?koi8-r?b?8NLJ18XU?=\r\nDate: 3 Dec 2026 12:00:00 +0300\r\nContent-Type: text/plain; charset=koi8-r\r\nContent-Transfer-Encoding: 8bit\r\n\r\n".to_vec();
    // "текст" in KOI8-R.
    koi8.extend_from_slice(&[0xd4, 0xc5, 0xcb, 0xd3, 0xd4, b'\r', b'\n']);
    let raw_utf8 = "From: Jürgen <j@example.de>\r\nTo: bob@example.com\r\nSubject: Grüße raw\r\nDate: 4 Dec 2026 08:00:00 +0100\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nRaw UTF-8 body: Grüße\r\n"
        .as_bytes()
        .to_vec();
    let latin1_body = b"From: latin@example.com\r\nSubject: latin-1 body\r\nContent-Type: text/plain; charset=\"ISO-8859-1\"\r\nContent-Transfer-Encoding: 8bit\r\n\r\ncaf\xe9 cr\xe8me\r\n".to_vec();
    vec![koi8, raw_utf8, latin1_body]
}

const MESSAGES: &[&str] = &[
    // 1: the simplest message, no line break at the end.
    "From: Alice <alice@example.com>
To: bob@example.com
Subject: plain
Date: Mon, 30 Nov 2026 10:00:00 +0000
Message-ID: <a1@example.com>

hello",
    // 2: encoded words, groups, a folded subject, quoted-printable Latin-1.
    "From: =?utf-8?q?J=C3=B6rg?= <jorg@example.com>, \"Quoted, Name\" <q@example.com>
To: undisclosed-recipients:;
Cc: Team: a@x.org, B <b@y.org>;, c@z.org
Bcc: hidden@example.com
Subject: =?iso-8859-1?q?caf=E9?= au lait
 folded
Date: Tue, 1 Dec 2026 23:59:59 -0800
In-Reply-To: <x@y>
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: quoted-printable

caf=E9
line2
",
    // 3: an attachment with RFC 2231 names, a message/rfc822 part holding
    // a multipart/alternative, preamble and epilogue.
    "From: a@b
Subject:
Content-Type: multipart/mixed; boundary=\"XX\"

preamble
--XX
Content-Type: text/plain

one
--XX
Content-Type: application/octet-stream; name*0*=utf-8''%E2%82%AC%20a%20very%20long; name*1*=%20name.pdf
Content-Disposition: attachment; filename*0*=utf-8''%E2%82%AC%20a%20very; filename*1=\"long name.pdf\"
Content-Transfer-Encoding: base64
Content-Language: en, fr
Content-Location: http://x/y
Content-ID: <id1>
Content-Description: desc

AAAA
--XX
Content-Type: message/rfc822

From: inner@x
Subject: inner
Content-Type: multipart/alternative; boundary=YY

--YY
Content-Type: text/plain; charset=utf-8; format=flowed

inner text
--YY
Content-Type: text/html

<b>x</b>
--YY--
--XX--
epilogue
",
    // 4: addresses that are not addresses, type names in odd case, base64 text.
    "From: bad address
To: \"x\" <>, <@route:a@b>
Sender: s@x
Content-Type: TEXT/Plain; FORMAT=flowed
Content-Transfer-Encoding: BASE64

aGVsbG8=
",
    // 5: comments as names, blank Reply-To, trailing blanks, MD5, language.
    "From: a@b (Comment Name), \"=?utf-8?b?w6k=?=\" <e@x>, Plain Name <p@x>
To: =?utf-8?q?A_B?= <ab@x>, foo@bar
Reply-To: 
Message-ID:   <spaces@x>  
Content-Type: text/plain; charset=\"utf-8\"; name=\"with \\\"quote\\\"\"
Content-Language: en
Content-Disposition: inline
Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==

x
",
    // 6: a digest, whose parts are messages unless they say otherwise.
    "From: a@b
Content-Type: multipart/digest; boundary=D

--D

From: d1@x
Subject: d1

digest one
--D
Content-Type: text/plain

not message
--D--
",
    // 7: a multipart without a boundary.
    "From: a@b
Content-Type: multipart/mixed

no boundary here
",
    // 8: a nested multipart closed right before the outer boundary, an empty
    // part, and no line break after the last boundary.
    "From: a@b
Content-Type: multipart/mixed; boundary=Q
MIME-Version: 1.0

--Q
Content-Type: multipart/related; boundary=R

--R
Content-Type: image/png
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename=\"a.png\"; size=4

iVBO
--R--

--Q
--Q--",
    // 9: odd charsets: Windows-1252 quoted-printable, ISO-2022-JP.
    "From: =?iso-2022-jp?b?GyRCRnxLXBsoQg==?= <jp@example.jp>
To: bob@example.com
Subject: =?koi8-r?b?8NLJ18XU?= and more
Date: 2 Dec 2026 09:30:00 +0900
Content-Type: multipart/alternative; boundary=\"=_alt\"

--=_alt
Content-Type: text/plain; charset=windows-1252
Content-Transfer-Encoding: quoted-printable

na=EFve caf=E9
--=_alt
Content-Type: text/plain; charset=ISO-2022-JP
Content-Transfer-Encoding: 7bit

\u{1b}$BF|K\\\u{1b}(B
--=_alt--
",
    // 10: base64 UTF-8 text and an attachment with a long folded RFC 2231 name.
    "From: Gr <gr@example.de>
To: bob@example.com
Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=
Date: Mon, 30 Nov 2026 23:00:00 -1100
Content-Type: multipart/mixed;
 boundary=\"----=_Part_0_1234.5678\"

------=_Part_0_1234.5678
Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: base64

R3LDvMOfZSBhdXMgS8O2bG4K
------=_Part_0_1234.5678
Content-Type: application/pdf;
 name*0*=UTF-8''%E4%B8%80%E4%BB%BD%E9%9D%9E%E5%B8%B8%E9%9D%9E%E5%B8%B8%E9%95%BF;
 name*1*=%E7%9A%84%E6%96%87%E4%BB%B6%E5%90%8D%E7%A7%B0%20with%20a%20very%20long;
 name*2*=%20name%20that%20goes%20on%20and%20on.pdf
Content-Disposition: attachment;
 filename*0*=UTF-8''%E4%B8%80%E4%BB%BD%E9%9D%9E%E5%B8%B8%E9%9D%9E%E5%B8%B8%E9%95%BF;
 filename*1*=%E7%9A%84%E6%96%87%E4%BB%B6%E5%90%8D%E7%A7%B0%20with%20a%20very%20long;
 filename*2*=%20name%20that%20goes%20on%20and%20on.pdf;
 size=12
Content-Transfer-Encoding: base64

JVBERi0xLjQK
------=_Part_0_1234.5678--
",
    // 11: a message that is itself a message/rfc822.
    "From: fwd@example.com
Subject: forwarded whole
Date: 1 Dec 2026 00:00:00 +0000
Content-Type: message/rfc822

From: original@example.com
To: bob@example.com
Subject: the original
Content-Type: multipart/mixed; boundary=orig

--orig
Content-Type: text/plain

original text
--orig
Content-Type: application/zip; name=a.zip
Content-Transfer-Encoding: base64

UEsDBA==
--orig--
",
    // 12: three levels: mixed > alternative > related, and an attached
    // message with its own attachment.
    "From: deep@example.com
To: a@x, b@y, c@z
Subject: deep
Date: Sun, 29 Nov 2026 12:00:00 +0000
Content-Type: multipart/mixed; boundary=L1

--L1
Content-Type: multipart/alternative; boundary=L2

--L2
Content-Type: text/plain

plain alternative
--L2
Content-Type: multipart/related; boundary=L3

--L3
Content-Type: text/html; charset=utf-8

<img src=\"cid:i\">
--L3
Content-Type: image/gif
Content-ID: <i>
Content-Transfer-Encoding: base64

R0lGODlhAQABAAAAACw=
--L3--
--L2--
--L1
Content-Type: message/rfc822; name=\"attached.eml\"
Content-Disposition: attachment; filename=\"attached.eml\"

From: inner2@example.com
Subject: =?utf-8?b?0L/RgNC40LLQtdGC?=
Date: 28 Nov 2026 10:00:00 +0000
Content-Type: multipart/mixed; boundary=IN

--IN
Content-Type: text/plain; charset=utf-8

attached body
--IN
Content-Type: text/csv; name=data.csv
Content-Disposition: attachment; filename=data.csv

a,b
1,2
--IN--

--L1--
",
    // 13: a part without headers, comments in Content-Type, a quoted
    // boundary with odd characters.
    "From: odd@example.com
Subject: odd boundaries
Content-Type: multipart/mixed (comment); boundary=\"b'()+_,-./:=?\"

--b'()+_,-./:=?

implicit text/plain part
--b'()+_,-./:=?
Content-Type: text/plain (plain text); charset=us-ascii (ascii)
Content-Description: =?utf-8?q?descr=C3=AFption?=

second
--b'()+_,-./:=?--
",
    // 14: every address field, several message ids, a folded Message-ID.
    "From: From Person <from@example.com>
Sender: Sender Person <sender@example.com>
Reply-To: Reply <reply@example.com>, other@example.com
To: One <one@example.com>, two@example.com, \"Three, Esq.\" <three@example.com>
Cc: J. Smith <js@example.com>
Bcc: Hidden <hidden2@example.com>
Subject: addresses
Date: Wed, 2 Dec 2026 07:00:00 +0000
In-Reply-To: <one@x> <two@x>
Message-ID:
 <folded@example.com>

addresses
",
];
