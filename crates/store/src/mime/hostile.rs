//! Hostile and ordinary messages through [`super::walk`], `digest`, `parse` and
//! `part`.
//!
//! Issue #11: a message of 34,000 nested `message/rfc822` parts overflowed a
//! thread's stack and aborted the catcher. The hostile cases here run on a thread
//! with a deliberately small stack, so any recursion that follows the input's
//! nesting fails them (as an abort of the test binary) long before it could on a
//! real thread.

use mail_parser::{MessageParser, PartType};

use super::walk::{MAX_DEPTH, MAX_PARAMETER_FIELD, MAX_PARTS, walk};
use super::*;

/// Far below the 2 MiB of a Rust thread and the 8 MiB of a main thread.
const SMALL_STACK: usize = 256 * 1024;

const SAMPLED_PARTS: usize = 8;

/// What a reader of the message gets, computed on a small stack: the summary, the
/// view, and the listed parts with their bytes (every one, or the first and last
/// [`SAMPLED_PARTS`] of a long list: each download takes the message apart anew).
struct Seen {
    digest: Digest,
    parsed: ParsedMessage,
    parts: Vec<(AttachmentInfo, Vec<u8>)>,
}

fn read_on_small_stack(raw: Vec<u8>) -> Seen {
    std::thread::Builder::new()
        .stack_size(SMALL_STACK)
        .spawn(move || {
            let digest = digest(&raw);
            let parsed = parse(&raw);
            let listed = &parsed.attachments;
            let sampled = if listed.len() <= 2 * SAMPLED_PARTS {
                listed.iter().collect::<Vec<_>>()
            } else {
                let (first, last) = (
                    &listed[..SAMPLED_PARTS],
                    &listed[listed.len() - SAMPLED_PARTS..],
                );
                first.iter().chain(last).collect()
            };
            let parts = sampled
                .into_iter()
                .map(|info| part(&raw, &info.part_id).expect("a listed part downloads"))
                .collect();
            Seen {
                digest,
                parsed,
                parts,
            }
        })
        .unwrap()
        .join()
        .unwrap()
}

fn base64(bytes: &[u8]) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(bytes.len() / 3 * 4 + bytes.len() / 57 * 2 + 8);
    for (n, chunk) in bytes.chunks(3).enumerate() {
        let word = chunk
            .iter()
            .enumerate()
            .fold(0u32, |word, (i, &b)| word | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(word >> (18 - 6 * i) & 63) as usize]);
            } else {
                out.push(b'=');
            }
        }
        if n % 19 == 18 {
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// `levels` attached messages, each the only content of the one around it.
fn nested_messages(levels: usize) -> Vec<u8> {
    let mut raw = b"Subject: level\r\nContent-Type: message/rfc822\r\n\r\n".repeat(levels);
    raw.extend_from_slice(b"Subject: bottom\r\n\r\nbottom\r\n");
    raw
}

/// A message with a text part and `attachment` (a header block and body).
fn with_attachment(attachment: &[u8]) -> Vec<u8> {
    let mut raw = b"From: Jane <jane@example.com>\r\n\
To: bob@example.net\r\n\
Subject: hostile\r\n\
Content-Type: multipart/mixed; boundary=\"outer\"\r\n\
\r\n\
--outer\r\n\
Content-Type: text/plain\r\n\
\r\n\
Hello.\r\n\
--outer\r\n"
        .to_vec();
    raw.extend_from_slice(attachment);
    raw.extend_from_slice(b"\r\n--outer--\r\n");
    raw
}

/// `levels` multiparts, each the only part of the one around it.
fn nested_multiparts(levels: usize) -> Vec<u8> {
    let mut raw = b"Subject: deep\r\n".to_vec();
    for level in 0..levels {
        raw.extend_from_slice(
            format!("Content-Type: multipart/mixed; boundary=b{level}x\r\n\r\n--b{level}x\r\n")
                .as_bytes(),
        );
    }
    raw.extend_from_slice(b"Content-Type: text/plain\r\n\r\nbottom\r\n");
    for level in (0..levels).rev() {
        raw.extend_from_slice(format!("--b{level}x--\r\n").as_bytes());
    }
    raw
}

fn assert_summary(seen: &Seen, subject: &str) {
    assert!(seen.digest.parsed);
    assert_eq!(seen.digest.subject, subject);
    let subject_header = seen
        .parsed
        .headers
        .iter()
        .find(|(name, _)| name == "Subject");
    assert_eq!(
        subject_header.map(|(_, value)| value.as_str()),
        Some(subject)
    );
}

#[test]
fn deeply_nested_attached_messages_are_one_part() {
    // Issue #11: the report's 34,000 levels and far more.
    for levels in [34_000, 100_000] {
        let nest = nested_messages(levels);
        let mut attachment = b"Content-Type: message/rfc822\r\n\r\n".to_vec();
        attachment.extend_from_slice(&nest);
        let seen = read_on_small_stack(with_attachment(&attachment));
        assert_summary(&seen, "hostile");
        assert_eq!(
            seen.digest.from.as_ref().unwrap().address,
            "jane@example.com"
        );
        assert_eq!(seen.digest.snippet, "Hello.");
        assert_eq!(seen.parsed.text.as_deref(), Some("Hello."));
        assert_eq!(seen.parts.len(), 1);
        let (info, bytes) = &seen.parts[0];
        assert_eq!(info.content_type, "message/rfc822");
        assert_eq!(info.file_name, format!("part-{}.eml", info.part_id));
        // As mail-parser ends a chain of attached messages: at the end of the
        // enclosing multipart.
        let mut expected = nest.clone();
        expected.extend_from_slice(b"\r\n--outer--");
        assert_eq!(bytes, &expected, "the attached message downloads as sent");
        assert_eq!(info.size, expected.len());
    }

    // The same with no multipart around it: the message is its own first part.
    let seen = read_on_small_stack(nested_messages(100_000));
    assert_summary(&seen, "level");
    assert_eq!(seen.parts.len(), 1);
    assert_eq!(seen.parts[0].0.content_type, "message/rfc822");
    assert!(
        seen.parts[0]
            .1
            .ends_with(b"Subject: bottom\r\n\r\nbottom\r\n")
    );
}

#[test]
fn encoded_attached_messages_are_not_parsed() {
    // Issue #11: mail-parser parses a base64 attached message, and the deep nest
    // inside it, in a recursive `into_owned`.
    // mail-parser parses three levels of encoded messages: two here, and the
    // attachment itself.
    let mut nest = b"Content-Type: message/rfc822\r\n\r\n".repeat(50_000);
    nest.extend_from_slice(b"Subject: bottom\r\n\r\nbottom\r\n");
    let mut encoded = nest;
    for _ in 0..2 {
        let mut wrapped =
            b"Subject: wrapped\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                .to_vec();
        wrapped.extend_from_slice(&base64(&encoded));
        encoded = wrapped;
    }
    // `encoded` is now a message whose body is a base64 message around the
    // nest; attach it, itself encoded once more.
    let mut attachment =
        b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n".to_vec();
    attachment.extend_from_slice(&base64(&encoded));
    let seen = read_on_small_stack(with_attachment(&attachment));
    assert_summary(&seen, "hostile");
    assert_eq!(seen.parts.len(), 1);
    let (info, bytes) = &seen.parts[0];
    assert_eq!(info.content_type, "message/rfc822");
    assert_eq!(bytes, &encoded, "the attached message downloads decoded");
}

#[test]
fn deeply_nested_multiparts_end_in_one_opaque_part() {
    // Issue #11: parts below MAX_DEPTH containers are kept as sent.
    let raw = nested_multiparts(100_000);
    let seen = read_on_small_stack(raw.clone());
    assert_summary(&seen, "deep");
    assert_eq!(seen.parts.len(), 1, "{:?}", seen.parsed.attachments);
    let (info, bytes) = &seen.parts[0];
    assert_eq!(
        info.part_id,
        MAX_DEPTH.to_string(),
        "parts 0..MAX_DEPTH are the containers"
    );
    assert_eq!(info.content_type, "message/rfc822");
    assert_eq!(info.file_name, format!("part-{MAX_DEPTH}.eml"));
    assert!(!info.inline);
    assert_eq!(seen.digest.attachments, 1);
    let first =
        format!("Content-Type: multipart/mixed; boundary=b{MAX_DEPTH}x\r\n\r\n--b{MAX_DEPTH}x\r\n");
    assert!(
        bytes.starts_with(first.as_bytes()),
        "{:?}",
        String::from_utf8_lossy(&bytes[..80])
    );
    let last = format!("--b{MAX_DEPTH}x--");
    assert!(
        bytes.ends_with(last.as_bytes()),
        "it ends before its parent's boundary"
    );

    // Within the limit nothing changes: the text at the bottom is the body.
    let seen = read_on_small_stack(nested_multiparts(MAX_DEPTH));
    assert_eq!(seen.parsed.text.as_deref(), Some("bottom"));
    assert!(seen.parts.is_empty());
}

#[test]
fn nested_digests_are_bounded() {
    // A part without a type inside multipart/digest is an attached message.
    let levels = 100_000;
    let mut raw = b"Subject: digests\r\n".to_vec();
    for level in 0..levels {
        raw.extend_from_slice(
            format!(
                "Content-Type: multipart/digest; boundary=d{level}x\r\n\r\n--d{level}x\r\n\r\n"
            )
            .as_bytes(),
        );
    }
    raw.extend_from_slice(b"Subject: bottom\r\n\r\nbottom\r\n");
    for level in (0..levels).rev() {
        raw.extend_from_slice(format!("--d{level}x--\r\n").as_bytes());
    }
    let seen = read_on_small_stack(raw);
    assert_summary(&seen, "digests");
    assert_eq!(seen.parts.len(), 1);
    assert_eq!(seen.parts[0].0.content_type, "message/rfc822");
    assert!(
        seen.parts[0]
            .1
            .starts_with(b"Content-Type: multipart/digest; boundary=d1x\r\n")
    );
}

#[test]
fn alternating_multiparts_and_attached_messages_are_bounded() {
    let levels = 50_000;
    let mut raw = b"Subject: mixed nest\r\n".to_vec();
    for level in 0..levels {
        raw.extend_from_slice(
            format!(
                "Content-Type: multipart/mixed; boundary=m{level}x\r\n\r\n--m{level}x\r\n\
                 Content-Type: message/rfc822\r\n\r\nSubject: {level}\r\n"
            )
            .as_bytes(),
        );
    }
    raw.extend_from_slice(b"\r\nbottom\r\n");
    for level in (0..levels).rev() {
        raw.extend_from_slice(format!("--m{level}x--\r\n").as_bytes());
    }
    let seen = read_on_small_stack(raw);
    assert_summary(&seen, "mixed nest");
    assert_eq!(seen.parts.len(), 1);
    assert_eq!(seen.parts[0].0.content_type, "message/rfc822");
    assert!(
        seen.parts[0]
            .1
            .starts_with(b"Subject: 0\r\nContent-Type: multipart/mixed; boundary=m1x\r\n")
    );
}

#[test]
fn parts_beyond_the_limit_are_one_opaque_part() {
    // Issue #11: 100,000 attachments; the first ones are listed, the rest is kept.
    let siblings = 100_000;
    let mut raw = b"Subject: many\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n".to_vec();
    for n in 0..siblings {
        raw.extend_from_slice(
            format!("--b\r\nContent-Type: application/octet-stream\r\n\r\n{n}\r\n").as_bytes(),
        );
    }
    raw.extend_from_slice(b"--b--\r\n");
    let seen = read_on_small_stack(raw.clone());
    assert_summary(&seen, "many");
    // The root is one of the MAX_PARTS parts.
    assert_eq!(seen.parsed.attachments.len(), MAX_PARTS);
    assert_eq!(seen.digest.attachments as usize, MAX_PARTS);
    let (first, bytes) = &seen.parts[0];
    assert_eq!((first.part_id.as_str(), bytes.as_slice()), ("1", &b"0"[..]));
    let (rest, bytes) = seen.parts.last().unwrap();
    assert_eq!(rest.part_id, MAX_PARTS.to_string());
    assert_eq!(rest.content_type, "application/octet-stream");
    assert_eq!(rest.file_name, format!("part-{MAX_PARTS}-rest.bin"));
    let first_unlisted = format!(
        "Content-Type: application/octet-stream\r\n\r\n{}\r\n",
        MAX_PARTS - 1
    );
    assert!(bytes.starts_with(first_unlisted.as_bytes()));
    assert!(raw.ends_with(bytes), "the rest of the message, as sent");
}

#[test]
fn missing_boundaries_do_not_make_the_walk_quadratic() {
    // Each multipart whose boundary never comes would scan to the end of the
    // message; they share a budget. (No timing here: a quadratic walk over 4 MB
    // shows as a test that takes minutes.)
    let mut raw = b"Subject: lost\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n".to_vec();
    for n in 0..MAX_PARTS {
        raw.extend_from_slice(
            format!("--b\r\nContent-Type: multipart/mixed; boundary=never{n}\r\n\r\nx\r\n")
                .as_bytes(),
        );
    }
    raw.extend_from_slice(&b"filler line\r\n".repeat(100_000));
    raw.extend_from_slice(b"--b--\r\n");
    let seen = read_on_small_stack(raw);
    assert_summary(&seen, "lost");
    assert!(
        seen.parsed.attachments.len() > 900,
        "{}",
        seen.parsed.attachments.len()
    );
}

#[test]
fn a_file_name_in_50000_pieces_is_capped() {
    // Issue #11: an RFC 2231 name in 50,000 pieces made a 578 KB response header.
    let mut disposition = String::from("Content-Disposition: attachment");
    for n in 0..50_000 {
        disposition.push_str(&format!(";\r\n filename*{n}=\"part{n}-\""));
    }
    disposition.push_str(";\r\n filename*50000=\".pdf\"\r\n");
    let attachment = format!("Content-Type: application/pdf\r\n{disposition}\r\nJVBERi0=\r\n");
    let seen = read_on_small_stack(with_attachment(attachment.as_bytes()));
    let (info, _) = &seen.parts[0];
    assert!(
        info.file_name.len() <= MAX_FILE_NAME_BYTES,
        "{}",
        info.file_name.len()
    );
    assert!(
        info.file_name.starts_with("part0-part1-part2-"),
        "{}",
        info.file_name
    );
    assert!(seen.digest.body_text.len() <= MAX_INDEXED_TEXT);
}

#[test]
fn a_long_parameter_field_is_read_up_to_the_cap() {
    let filler = "x".repeat(MAX_PARAMETER_FIELD);
    let attachment = format!(
        "Content-Type: application/pdf; name=\"a.pdf\"; comment=\"{filler}\"\r\n\
         Content-Disposition: attachment; filename=\"report.pdf\"\r\n\r\nJVBERi0=\r\n"
    );
    let seen = read_on_small_stack(with_attachment(attachment.as_bytes()));
    let (info, _) = &seen.parts[0];
    assert_eq!(info.content_type, "application/pdf");
    assert_eq!(info.file_name, "report.pdf");
}

#[test]
fn file_names_are_capped_on_a_character_boundary_keeping_the_extension() {
    let cases = [
        ("report.pdf".to_string(), "report.pdf".to_string()),
        (
            format!("{}.pdf", "é".repeat(200)),
            format!("{}.pdf", "é".repeat(125)),
        ),
        ("é".repeat(200), "é".repeat(127)),
        (
            format!("{}.{}", "a".repeat(300), "x".repeat(40)),
            "a".repeat(255),
        ),
        (
            format!(".{}", "b".repeat(300)),
            format!(".{}", "b".repeat(254)),
        ),
    ];
    for (name, expected) in cases {
        let capped = cap_file_name(&name);
        assert!(capped.len() <= MAX_FILE_NAME_BYTES);
        assert_eq!(capped, expected, "{name}");
    }
}

#[test]
fn many_addresses_and_a_long_subject_are_summarized_whole() {
    // The summary of a large header block: every To address, the whole subject
    // (the API caps what it sends; the digest does linear work on them).
    let to: Vec<String> = (0..20_000)
        .map(|n| format!("user{n}@example.com"))
        .collect();
    let subject = "s".repeat(1 << 20);
    let raw = format!(
        "From: a@x.test\r\nTo: {}\r\nSubject: {subject}\r\n\r\nbody\r\n",
        to.join(",\r\n ")
    );
    let seen = read_on_small_stack(raw.into_bytes());
    assert_eq!(seen.digest.to.len(), 20_000);
    assert_eq!(seen.digest.to[19_999].address, "user19999@example.com");
    assert_eq!(seen.digest.subject.len(), 1 << 20);
}

/// Ordinary messages, parsed by mail-parser itself and by the walk: the walk
/// must agree on every top-level part, or part ids and bodies would change.
#[test]
fn the_walk_agrees_with_mail_parser_on_ordinary_messages() {
    let messages: [&[u8]; 9] = [
        b"Subject: t\r\n\r\nhi\r\n",
        b"Subject: h\r\nContent-Type: text/html; charset=iso-8859-1\r\n\r\n<b>caf\xe9</b>\r\n",
        b"Subject: alt\r\nContent-Type: multipart/alternative; boundary=a\r\n\r\n\
preamble\r\n--a\r\nContent-Type: text/plain\r\n\r\nplain\r\n--a\r\n\
Content-Type: text/html\r\n\r\n<p>html</p>\r\n--a--\r\nepilogue\r\n",
        b"Subject: mixed\r\nContent-Type: multipart/mixed; boundary=m\r\n\r\n\
--m\r\nContent-Type: multipart/related; boundary=r\r\n\r\n\
--r\r\nContent-Type: text/html\r\n\r\n<img src=cid:i>\r\n\
--r\r\nContent-Type: image/png; name=i.png\r\nContent-ID: <i>\r\n\
Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--r--\r\n\
--m\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment;\r\n\
 filename*0=\"re\"; filename*1=\"port.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n\
JVBERi0=\r\n--m\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\r\nCaf=C3=A9 =\r\nmenu\r\n--m--\r\n",
        b"Subject: fwd\r\nContent-Type: multipart/mixed; boundary=f\r\n\r\n\
--f\r\nContent-Type: text/plain\r\n\r\nSee below.\r\n\
--f\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\
Content-Type: multipart/alternative; boundary=i\r\n\r\n--i\r\nContent-Type: text/plain\r\n\r\n\
inner text\r\n--i\r\nContent-Type: text/html\r\n\r\n<p>inner</p>\r\n--i--\r\n\
--f\r\nContent-Type: image/gif\r\nContent-Transfer-Encoding: base64\r\n\r\nR0lGODlh\r\n--f--\r\n",
        b"Subject: digest\r\nContent-Type: multipart/digest; boundary=d\r\n\r\n\
--d\r\n\r\nSubject: one\r\n\r\nfirst\r\n--d\r\n\r\nSubject: two\r\n\r\nsecond\r\n--d--\r\n",
        b"Subject: encoded fwd\r\nContent-Type: multipart/mixed; boundary=e\r\n\r\n\
--e\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n\
U3ViamVjdDogaW5uZXIKCmJvZHkK\r\n--e--\r\n",
        b"Subject: unterminated\r\nContent-Type: multipart/mixed; boundary=u\r\n\r\n\
--u\r\nContent-Type: text/plain\r\n\r\nno end\r\n--u\r\nContent-Type: message/rfc822\r\n\r\n\
Subject: cut\r\n\r\ncut off",
        b"Subject: lost boundary\r\nContent-Type: multipart/mixed; boundary=zzz\r\n\r\n\
just text\r\n",
    ];
    let mut nested = b"Content-Type: message/rfc822\r\n\r\n".to_vec();
    nested.extend_from_slice(&nested_messages(MAX_DEPTH - 2));
    let nested = with_attachment(&nested);
    let multiparts = nested_multiparts(MAX_DEPTH - 1);
    for raw in messages.into_iter().chain([&nested[..], &multiparts[..]]) {
        let expected = MessageParser::default().parse(raw).unwrap();
        let walked = walk(raw).unwrap().message;
        let context = String::from_utf8_lossy(raw);
        assert_eq!(walked.text_body, expected.text_body, "{context}");
        assert_eq!(walked.html_body, expected.html_body, "{context}");
        assert_eq!(walked.attachments, expected.attachments, "{context}");
        assert_eq!(walked.parts.len(), expected.parts.len(), "{context}");
        for (got, want) in walked.parts.iter().zip(&expected.parts) {
            assert_eq!(got.headers, want.headers, "{context}");
            assert_eq!(
                (got.offset_header, got.offset_body, got.offset_end),
                (want.offset_header, want.offset_body, want.offset_end),
                "{context}"
            );
            assert_eq!(got.contents(), want.contents(), "{context}");
            assert_eq!(
                std::mem::discriminant(&got.body),
                std::mem::discriminant(&want.body),
                "{context}"
            );
            if let (PartType::Multipart(got), PartType::Multipart(want)) = (&got.body, &want.body) {
                assert_eq!(got, want, "{context}");
            }
        }
    }
}
