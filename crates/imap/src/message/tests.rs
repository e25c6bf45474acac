//! Tricky messages and what Dovecot 2.3 answers for them, verbatim but for
//! two things imap-codec writes its own way: a literal Dovecot sends is the
//! quoted string imap-codec sends, and the media types of text and
//! message/rfc822 parts are in capitals (`"TEXT"`, `"MESSAGE" "RFC822"`), which
//! IMAP compares without regard to case.

use std::num::NonZeroU32;

use imap_codec::ResponseCodec;
use imap_codec::encode::Encoder;
use imap_types::core::{AString, Vec1};
use imap_types::fetch::{MessageDataItem, Part as PartNumber, Section};
use imap_types::response::{Data, Response};
use imap_types::search::SearchKey;

use super::Parsed;

/// `text` with its line feeds made CRLF, as messages travel.
fn message(text: &str) -> Parsed {
    Parsed::new(text.replace('\n', "\r\n").into_bytes())
}

/// The FETCH items as the wire shows them, between `* 1 FETCH (` and `)`.
fn wire(items: Vec<MessageDataItem<'static>>) -> String {
    let response = Response::Data(Data::Fetch {
        seq: NonZeroU32::MIN,
        items: Vec1::try_from(items).expect("items"),
    });
    let bytes = ResponseCodec::default().encode(&response).dump();
    let text = String::from_utf8(bytes).expect("utf-8");
    text.strip_prefix("* 1 FETCH (")
        .and_then(|t| t.strip_suffix(")\r\n"))
        .expect("a FETCH line")
        .to_owned()
}

fn envelope(parsed: &Parsed) -> String {
    wire(vec![MessageDataItem::Envelope(parsed.envelope())])
}

fn structure(parsed: &Parsed) -> String {
    wire(vec![MessageDataItem::BodyStructure(
        parsed.body_structure(true),
    )])
}

fn body(parsed: &Parsed) -> String {
    wire(vec![MessageDataItem::Body(parsed.body_structure(false))])
}

fn part(numbers: &[u32]) -> PartNumber {
    let numbers: Vec<NonZeroU32> = numbers
        .iter()
        .map(|&n| NonZeroU32::new(n).expect("n > 0"))
        .collect();
    PartNumber(Vec1::try_from(numbers).expect("numbers"))
}

fn section(parsed: &Parsed, section: Section<'static>) -> String {
    String::from_utf8(parsed.section(Some(&section))).expect("utf-8")
}

fn names(names: &[&'static str]) -> Vec1<AString<'static>> {
    let names: Vec<AString<'static>> = names
        .iter()
        .map(|&n| AString::try_from(n).expect("astring"))
        .collect();
    Vec1::try_from(names).expect("names")
}

const PLAIN: &str = "From: Alice <alice@example.com>
To: bob@example.com
Subject: plain
Date: Mon, 30 Nov 2026 10:00:00 +0000
Message-ID: <a1@example.com>

hello";

const ENCODED: &str =
    "From: =?utf-8?q?J=C3=B6rg?= <jorg@example.com>, \"Quoted, Name\" <q@example.com>
To: undisclosed-recipients:;
Cc: Team: a@x.org, B <b@y.org>;, c@z.org
Subject: =?iso-8859-1?q?caf=E9?= au lait
 folded
Date: Tue, 1 Dec 2026 23:59:59 -0800
In-Reply-To: <x@y>
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: quoted-printable

caf=E9
line2
";

const MIXED: &str = "From: a@b
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
";

const ODD: &str = "From: bad address
To: \"x\" <>, <@route:a@b>
Sender: s@x
Content-Type: TEXT/Plain; FORMAT=flowed
Content-Transfer-Encoding: BASE64

aGVsbG8=
";

const COMMENTS: &str = "From: a@b (Comment Name), \"=?utf-8?b?w6k=?=\" <e@x>, Plain Name <p@x>
To: =?utf-8?q?A_B?= <ab@x>, foo@bar
Reply-To: 
Message-ID:   <spaces@x>  
Content-Type: text/plain; charset=\"utf-8\"; name=\"with \\\"quote\\\"\"
Content-Language: en
Content-Disposition: inline
Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==

x
";

const DIGEST: &str = "From: a@b
Content-Type: multipart/digest; boundary=D

--D

From: d1@x
Subject: d1

digest one
--D
Content-Type: text/plain

not message
--D--
";

const NO_BOUNDARY: &str = "From: a@b
Content-Type: multipart/mixed

no boundary here
";

const NESTED: &str = "From: a@b
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
--Q--";

#[test]
fn envelope_of_a_plain_message_defaults_sender_and_reply_to_to_from() {
    assert_eq!(
        envelope(&message(PLAIN)),
        r#"ENVELOPE ("Mon, 30 Nov 2026 10:00:00 +0000" "plain" (("Alice" NIL "alice" "example.com")) (("Alice" NIL "alice" "example.com")) (("Alice" NIL "alice" "example.com")) ((NIL NIL "bob" "example.com")) NIL NIL NIL "<a1@example.com>")"#
    );
}

#[test]
fn envelope_keeps_encoded_words_and_shows_groups() {
    assert_eq!(
        envelope(&message(ENCODED)),
        r#"ENVELOPE ("Tue, 1 Dec 2026 23:59:59 -0800" "=?iso-8859-1?q?caf=E9?= au lait folded" (("=?utf-8?q?J=C3=B6rg?=" NIL "jorg" "example.com")("Quoted, Name" NIL "q" "example.com")) (("=?utf-8?q?J=C3=B6rg?=" NIL "jorg" "example.com")("Quoted, Name" NIL "q" "example.com")) (("=?utf-8?q?J=C3=B6rg?=" NIL "jorg" "example.com")("Quoted, Name" NIL "q" "example.com")) ((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL)) ((NIL NIL "Team" NIL)(NIL NIL "a" "x.org")("B" NIL "b" "y.org")(NIL NIL NIL NIL)(NIL NIL "c" "z.org")) NIL "<x@y>" NIL)"#
    );
}

#[test]
fn envelope_of_broken_addresses_names_what_is_missing() {
    assert_eq!(
        envelope(&message(ODD)),
        r#"ENVELOPE (NIL NIL (("bad address" NIL "MISSING_MAILBOX" "MISSING_DOMAIN")) ((NIL NIL "s" "x")) (("bad address" NIL "MISSING_MAILBOX" "MISSING_DOMAIN")) (("x" NIL "MISSING_MAILBOX" "MISSING_DOMAIN")(NIL "@route" "a" "b")) NIL NIL NIL NIL)"#
    );
    assert_eq!(
        envelope(&message("Subject: no from\n\nbody\n")),
        r#"ENVELOPE (NIL "no from" NIL NIL NIL NIL NIL NIL NIL NIL)"#
    );
}

#[test]
fn envelope_takes_comments_as_names_and_keeps_trailing_blanks() {
    assert_eq!(
        envelope(&message(COMMENTS)),
        r#"ENVELOPE (NIL NIL (("Comment Name" NIL "a" "b")("=?utf-8?b?w6k=?=" NIL "e" "x")("Plain Name" NIL "p" "x")) (("Comment Name" NIL "a" "b")("=?utf-8?b?w6k=?=" NIL "e" "x")("Plain Name" NIL "p" "x")) (("Comment Name" NIL "a" "b")("=?utf-8?b?w6k=?=" NIL "e" "x")("Plain Name" NIL "p" "x")) (("=?utf-8?q?A_B?=" NIL "ab" "x")(NIL NIL "foo" "bar")) NIL NIL NIL "<spaces@x>  ")"#
    );
}

#[test]
fn bodystructure_of_single_parts() {
    assert_eq!(
        structure(&message(PLAIN)),
        r#"BODYSTRUCTURE ("TEXT" "plain" ("charset" "us-ascii") NIL NIL "7bit" 5 0 NIL NIL NIL NIL)"#
    );
    assert_eq!(
        structure(&message(ENCODED)),
        r#"BODYSTRUCTURE ("TEXT" "plain" ("charset" "iso-8859-1") NIL NIL "quoted-printable" 15 2 NIL NIL NIL NIL)"#
    );
    assert_eq!(
        structure(&message(ODD)),
        r#"BODYSTRUCTURE ("TEXT" "Plain" ("FORMAT" "flowed" "charset" "us-ascii") NIL NIL "BASE64" 10 1 NIL NIL NIL NIL)"#
    );
    let comments = message(COMMENTS);
    assert_eq!(
        structure(&comments),
        r#"BODYSTRUCTURE ("TEXT" "plain" ("charset" "utf-8" "name" "with \"quote\"") NIL NIL "7bit" 3 1 "Q2hlY2sgSW50ZWdyaXR5IQ==" ("inline" NIL) ("en") NIL)"#
    );
    assert_eq!(
        body(&comments),
        r#"BODY ("TEXT" "plain" ("charset" "utf-8" "name" "with \"quote\"") NIL NIL "7bit" 3 1)"#
    );
}

#[test]
fn bodystructure_of_multiparts_with_attachments_and_a_message() {
    assert_eq!(
        structure(&message(MIXED)),
        r#"BODYSTRUCTURE (("TEXT" "plain" ("charset" "us-ascii") NIL NIL "7bit" 3 0 NIL NIL NIL NIL)("application" "octet-stream" ("name*" "utf-8''%E2%82%AC%20a%20very%20long%20name.pdf") "<id1>" "desc" "base64" 4 NIL ("attachment" ("filename*" "utf-8''%E2%82%AC%20a%20verylong name.pdf")) ("en" "fr") "http://x/y")("MESSAGE" "RFC822" NIL NIL NIL "7bit" 210 (NIL "inner" ((NIL NIL "inner" "x")) ((NIL NIL "inner" "x")) ((NIL NIL "inner" "x")) NIL NIL NIL NIL NIL) (("TEXT" "plain" ("charset" "utf-8" "format" "flowed") NIL NIL "7bit" 10 0 NIL NIL NIL NIL)("TEXT" "html" ("charset" "us-ascii") NIL NIL "7bit" 8 0 NIL NIL NIL NIL) "alternative" ("boundary" "YY") NIL NIL NIL) 13 NIL NIL NIL NIL) "mixed" ("boundary" "XX") NIL NIL NIL)"#
    );
    assert_eq!(
        body(&message(DIGEST)),
        r#"BODY (("MESSAGE" "RFC822" NIL NIL NIL "7bit" 37 (NIL "d1" ((NIL NIL "d1" "x")) ((NIL NIL "d1" "x")) ((NIL NIL "d1" "x")) NIL NIL NIL NIL NIL) ("TEXT" "plain" ("charset" "us-ascii") NIL NIL "7bit" 10 0) 3)("TEXT" "plain" ("charset" "us-ascii") NIL NIL "7bit" 11 0) "digest")"#
    );
}

#[test]
fn bodystructure_of_empty_and_boundaryless_multiparts() {
    assert_eq!(
        structure(&message(NO_BOUNDARY)),
        r#"BODYSTRUCTURE (("TEXT" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL) "mixed" NIL NIL NIL NIL)"#
    );
    assert_eq!(
        structure(&message(NESTED)),
        r#"BODYSTRUCTURE ((("image" "png" NIL NIL NIL "base64" 4 NIL ("attachment" ("filename" "a.png" "size" "4")) NIL NIL) "related" ("boundary" "R") NIL NIL NIL)("TEXT" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL) "mixed" ("boundary" "Q") NIL NIL NIL)"#
    );
}

#[test]
fn mime_sections_are_part_headers() {
    let comments = message(COMMENTS);
    let header = COMMENTS.split("\n\n").next().unwrap().replace('\n', "\r\n") + "\r\n\r\n";
    assert_eq!(
        section(&comments, Section::Mime(part(&[1]))),
        header,
        "1.MIME of a single part"
    );
    assert_eq!(section(&comments, Section::Mime(part(&[2]))), "");
    let digest = message(DIGEST);
    assert_eq!(section(&digest, Section::Mime(part(&[1]))), "\r\n");
    assert_eq!(
        section(&digest, Section::Mime(part(&[2]))),
        "Content-Type: text/plain\r\n\r\n"
    );
    assert_eq!(
        section(&message(NO_BOUNDARY), Section::Mime(part(&[1]))),
        ""
    );
    let nested = message(NESTED);
    assert_eq!(
        section(&nested, Section::Mime(part(&[1]))),
        "Content-Type: multipart/related; boundary=R\r\n\r\n"
    );
    assert_eq!(section(&nested, Section::Mime(part(&[2]))), "");
}

#[test]
fn header_fields_are_the_lines_as_written_then_an_empty_line() {
    let comments = message(COMMENTS);
    let wanted = Section::HeaderFields(None, names(&["from", "subject", "x-none"]));
    assert_eq!(
        section(&comments, wanted),
        "From: a@b (Comment Name), \"=?utf-8?b?w6k=?=\" <e@x>, Plain Name <p@x>\r\n\r\n"
    );
    let encoded = message(ENCODED);
    let not = Section::HeaderFieldsNot(
        None,
        names(&["From", "To", "Cc", "Date", "In-Reply-To", "Content-Type"]),
    );
    assert_eq!(
        section(&encoded, not),
        "Subject: =?iso-8859-1?q?caf=E9?= au lait\r\n folded\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    );
}

#[test]
fn sections_of_parts_and_of_attached_messages() {
    let mixed = message(MIXED);
    assert_eq!(section(&mixed, Section::Part(part(&[1]))), "one");
    assert_eq!(section(&mixed, Section::Part(part(&[2]))), "AAAA");
    assert_eq!(section(&mixed, Section::Part(part(&[3, 1]))), "inner text");
    assert_eq!(section(&mixed, Section::Part(part(&[3, 2]))), "<b>x</b>");
    assert_eq!(section(&mixed, Section::Part(part(&[3, 3]))), "");
    assert_eq!(section(&mixed, Section::Part(part(&[4]))), "");
    assert_eq!(
        section(&mixed, Section::Header(Some(part(&[3])))),
        "From: inner@x\r\nSubject: inner\r\nContent-Type: multipart/alternative; boundary=YY\r\n\r\n"
    );
    assert!(section(&mixed, Section::Text(Some(part(&[3])))).starts_with("--YY\r\n"));
    assert!(section(&mixed, Section::Part(part(&[3]))).starts_with("From: inner@x\r\n"));
    assert_eq!(
        section(
            &mixed,
            Section::HeaderFields(Some(part(&[3])), names(&["subject"]))
        ),
        "Subject: inner\r\n\r\n"
    );
    assert_eq!(
        section(&mixed, Section::Header(Some(part(&[1])))),
        "",
        "part 1 is no message"
    );
    assert_eq!(
        section(&mixed, Section::Mime(part(&[3, 2]))),
        "Content-Type: text/html\r\n\r\n"
    );

    let plain = message(PLAIN);
    assert_eq!(section(&plain, Section::Part(part(&[1]))), "hello");
    assert_eq!(section(&plain, Section::Text(None)), "hello");
    assert!(section(&plain, Section::Header(None)).ends_with("<a1@example.com>\r\n\r\n"));
    assert_eq!(plain.section(None), plain.raw());
}

fn matches(parsed: &Parsed, key: SearchKey<'static>) -> bool {
    parsed.matches(&key).expect("a content key")
}

fn astring(text: &'static str) -> AString<'static> {
    AString::try_from(text).expect("astring")
}

#[test]
fn searches_decode_encoded_words_transfer_encodings_and_charsets() {
    let encoded = message(ENCODED);
    assert!(matches(&encoded, SearchKey::From(astring("jörg"))));
    assert!(matches(&encoded, SearchKey::From(astring("JORG@EXAMPLE"))));
    assert!(!matches(&encoded, SearchKey::From(astring("bob"))));
    assert!(matches(&encoded, SearchKey::Subject(astring("CAFÉ au"))));
    assert!(matches(&encoded, SearchKey::Body(astring("café"))));
    assert!(!matches(&encoded, SearchKey::Body(astring("lait"))));
    assert!(matches(&encoded, SearchKey::Text(astring("lait"))));
    assert!(matches(&encoded, SearchKey::Cc(astring("b@y.org"))));
    assert!(matches(
        &encoded,
        SearchKey::Header(astring("in-reply-to"), astring(""))
    ));
    assert!(!matches(
        &encoded,
        SearchKey::Header(astring("message-id"), astring(""))
    ));
    assert!(!matches(&encoded, SearchKey::Bcc(astring("a"))));
    let odd = message(ODD);
    assert!(matches(&odd, SearchKey::Body(astring("HELLO"))), "base64");
    assert!(
        matches(&odd, SearchKey::From(astring("missing_mailbox"))),
        "addresses as ENVELOPE has them"
    );
    let mixed = message(MIXED);
    assert!(
        matches(&mixed, SearchKey::Body(astring("inner text"))),
        "in an attached message"
    );
    assert!(
        !matches(&mixed, SearchKey::Body(astring("inner@x"))),
        "BODY leaves headers out"
    );
    assert!(matches(&mixed, SearchKey::Text(astring("inner@x"))));
    assert_eq!(mixed.matches(&SearchKey::Seen), None);
}

#[test]
fn sent_dates_ignore_time_and_zone() {
    use chrono::NaiveDate as Date;
    let date = |y, m, d| {
        imap_types::datetime::NaiveDate::try_from(Date::from_ymd_opt(y, m, d).unwrap()).unwrap()
    };
    let encoded = message(ENCODED);
    assert!(
        matches(&encoded, SearchKey::SentOn(date(2026, 12, 1))),
        "the date as written, not in UTC"
    );
    assert!(matches(&encoded, SearchKey::SentSince(date(2026, 12, 1))));
    assert!(!matches(&encoded, SearchKey::SentSince(date(2026, 12, 2))));
    assert!(matches(&encoded, SearchKey::SentBefore(date(2026, 12, 2))));
    assert!(!matches(&encoded, SearchKey::SentBefore(date(2026, 12, 1))));
    let undated = message(ODD);
    assert!(!matches(&undated, SearchKey::SentOn(date(2026, 12, 1))));
    assert!(
        matches(&undated, SearchKey::SentBefore(date(1970, 1, 2))),
        "no Date: is 1 January 1970"
    );
}

/// Every item of every section form and search key a client can ask for.
fn everything(parsed: &Parsed) {
    let _ = (envelope(parsed), structure(parsed), body(parsed));
    for numbers in [&[1][..], &[2], &[1, 1], &[3, 1], &[3, 2, 1], &[1, 1, 1, 1]] {
        for section in [
            Section::Part(part(numbers)),
            Section::Mime(part(numbers)),
            Section::Header(Some(part(numbers))),
            Section::Text(Some(part(numbers))),
            Section::HeaderFields(Some(part(numbers)), names(&["subject"])),
        ] {
            let _ = parsed.section(Some(&section));
        }
    }
    for key in [
        SearchKey::Text(astring("x")),
        SearchKey::From(astring("x")),
        SearchKey::Header(astring("content-type"), astring("")),
    ] {
        let _ = parsed.matches(&key);
    }
}

#[test]
fn every_prefix_of_every_message_renders_without_panicking() {
    for text in [
        PLAIN,
        ENCODED,
        MIXED,
        ODD,
        COMMENTS,
        DIGEST,
        NO_BOUNDARY,
        NESTED,
    ] {
        let raw = text.replace('\n', "\r\n").into_bytes();
        for end in 0..=raw.len() {
            everything(&Parsed::new(raw[..end].to_vec()));
        }
    }
}

#[test]
fn hostile_nesting_is_cut_off_not_followed() {
    let depth = 10_000;
    let mut raw = String::new();
    for level in 0..depth {
        raw.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=b{level}\r\n\r\n--b{level}\r\n"
        ));
    }
    let multiparts = Parsed::new(raw.into_bytes());
    everything(&multiparts);
    let messages = Parsed::new(
        "Content-Type: message/rfc822\r\n\r\n"
            .repeat(depth)
            .into_bytes(),
    );
    everything(&messages);
}

#[test]
fn unterminated_quotes_comments_and_angle_brackets_break_as_in_dovecot() {
    let parsed = message(
        "From: \"never closed <a@b>\nTo: (open comment a@b\nCc: <x@y\nContent-Type: text/plain; name=\"open\n\nbody\n",
    );
    assert_eq!(
        envelope(&parsed),
        r#"ENVELOPE (NIL NIL ((NIL NIL "MISSING_MAILBOX" "MISSING_DOMAIN")) ((NIL NIL "MISSING_MAILBOX" "MISSING_DOMAIN")) ((NIL NIL "MISSING_MAILBOX" "MISSING_DOMAIN")) NIL ((NIL NIL "x" "SYNTAX_ERROR")) NIL NIL NIL)"#
    );
    assert_eq!(
        structure(&parsed),
        r#"BODYSTRUCTURE ("TEXT" "plain" ("charset" "us-ascii") NIL NIL "7bit" 6 1 NIL NIL NIL NIL)"#
    );
}

#[test]
fn repeated_fields_replace_but_repeated_address_fields_add_up() {
    let parsed = message(
        "Subject: a\nSubject:  two  spaces  \nFrom: x@y\nFrom: z@w\nDate: d1\nDate: d2\n\nbody\n",
    );
    assert_eq!(
        envelope(&parsed),
        r#"ENVELOPE ("d2" "two spaces" ((NIL NIL "x" "y")(NIL NIL "z" "w")) ((NIL NIL "x" "y")(NIL NIL "z" "w")) ((NIL NIL "x" "y")(NIL NIL "z" "w")) NIL NIL NIL NIL NIL)"#
    );
}

#[test]
fn body_searches_read_only_the_text_dovecot_reads() {
    let attachment = message(
        "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: application/pdf\nContent-Transfer-Encoding: base64\n\nJVBERi0xLjQK\n--b\nContent-Type: text/plain\nContent-Transfer-Encoding: x-uuencode\n\nuuencoded\n--b\nContent-Type: image/png\nContent-Type: text/html\n\n<p>last type wins</p>\n--b--\n",
    );
    assert!(
        !matches(&attachment, SearchKey::Body(astring("%PDF"))),
        "not text"
    );
    assert!(
        !matches(&attachment, SearchKey::Body(astring("JVBERi"))),
        "nor its base64"
    );
    assert!(
        !matches(&attachment, SearchKey::Body(astring("uuencoded"))),
        "unknown encoding"
    );
    assert!(matches(
        &attachment,
        SearchKey::Body(astring("last type wins"))
    ));
    assert!(matches(&attachment, SearchKey::Body(astring(""))));
    let routed = message("To: <@r1,@r2:a@b>\n\nx\n");
    assert!(
        matches(&routed, SearchKey::To(astring("<@r1,@r2:a@b>"))),
        "addresses as Dovecot writes them"
    );
}
