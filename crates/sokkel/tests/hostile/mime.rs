//! Messages built to break the MIME parser, sent over real SMTP to `sokkel mail
//! serve` (issue #11). Before the fix, about 34,000 nested `message/rfc822` parts
//! overflowed a thread's stack while the message was summarized, which aborted the
//! process: SMTP, HTTP and POP3 all stopped.
//!
//! Each message must be accepted with a 250, the catcher must go on answering on
//! every protocol, the message must be listed with its subject, and what the parser
//! kept as one opaque part must download through the API.

use std::net::SocketAddr;

use crate::kit::http::{self, get_json};
use crate::kit::pop3::Pop3;
use crate::kit::{Catcher, smtp::Smtp};

/// `levels` attached messages, each the only content of the one around it, under a
/// header block with `subject`: the shape of the report.
fn nested_messages(subject: &str, levels: usize) -> Vec<u8> {
    let mut raw = format!("From: mallory@example.test\r\nSubject: {subject}\r\n").into_bytes();
    raw.extend_from_slice(&b"Content-Type: message/rfc822\r\n\r\n".repeat(levels));
    raw.extend_from_slice(b"Subject: bottom\r\n\r\nbottom\r\n");
    raw
}

/// A text part and `levels` nested multiparts, of which the parser opens only the
/// first ones.
fn nested_multiparts(subject: &str, levels: usize) -> Vec<u8> {
    let mut raw = format!(
        "From: mallory@example.test\r\nSubject: {subject}\r\n\
         Content-Type: multipart/mixed; boundary=top\r\n\r\n\
         --top\r\nContent-Type: text/plain\r\n\r\nHello.\r\n--top\r\n"
    )
    .into_bytes();
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
    raw.extend_from_slice(b"--top--\r\n");
    raw
}

/// The process is alive, and answers SMTP, HTTP and POP3.
fn assert_answers_everywhere(catcher: &Catcher, http: SocketAddr) {
    let status = std::fs::read_to_string(format!("/proc/{}/status", catcher.pid()))
        .expect("the catcher process exists");
    assert!(
        !status.contains("\nState:\tZ"),
        "the catcher exited:\n{}",
        catcher.stderr.text()
    );

    catcher.session().quit();
    assert_eq!(http::get(http, "/api/v1/messages").status, 200);
    Pop3::open(catcher.pop3[0]).cmd("QUIT");
}

/// The listed parts of message `id`: `(PartID, ContentType)`.
fn listed_parts(http: SocketAddr, id: u64) -> Vec<(String, String)> {
    let message = get_json(http, &format!("/api/v1/message/{id}"));
    message["Attachments"]
        .as_array()
        .expect("an attachment list")
        .iter()
        .map(|part| {
            let text = |key: &str| part[key].as_str().unwrap_or_default().to_string();
            (text("PartID"), text("ContentType"))
        })
        .collect()
}

fn download(http: SocketAddr, id: u64, part_id: &str) -> Vec<u8> {
    let response = http::get(http, &format!("/api/v1/message/{id}/part/{part_id}"));
    assert_eq!(response.status, 200, "part {part_id}: {}", response.text());
    response.body
}

#[test]
fn deeply_nested_messages_do_not_take_the_catcher_down() {
    // Issue #11: 34,000 nested message/rfc822 parts aborted the process.
    let catcher = Catcher::builder().http().start();
    let http = catcher.http();

    let mut smtp = Smtp::ehlo(catcher.addr());
    let sent = [
        (
            "the report's nest",
            nested_messages("the report's nest", 34_000),
        ),
        ("a deeper nest", nested_messages("a deeper nest", 100_000)),
        (
            "nested multiparts",
            nested_multiparts("nested multiparts", 2_000),
        ),
    ];
    let ids: Vec<u64> = sent
        .iter()
        .map(|(_, raw)| smtp.deliver("mallory@example.test", &["bob@example.test"], raw))
        .collect();
    smtp.quit();
    assert_answers_everywhere(&catcher, http);

    let list = get_json(http, "/api/v1/messages");
    let subjects: Vec<&str> = list["messages"]
        .as_array()
        .expect("a message list")
        .iter()
        .map(|message| message["Subject"].as_str().unwrap_or_default())
        .collect();
    for (subject, _) in &sent {
        assert!(
            subjects.contains(subject),
            "{subject:?} not in {subjects:?}"
        );
    }

    // A nest of attached messages is one part: the attached message as sent.
    for (id, (_, raw)) in ids.iter().zip(&sent).take(2) {
        let parts = listed_parts(http, *id);
        assert_eq!(parts, [("0".to_string(), "message/rfc822".to_string())]);
        let bytes = download(http, *id, "0");
        let body = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert_eq!(bytes, &raw[body..], "the attached message downloads whole");
    }

    // Multiparts nested too deep: the deepest one opened holds one opaque part,
    // the 33rd container with everything inside it, as sent.
    let parts = listed_parts(http, ids[2]);
    assert_eq!(parts.len(), 1, "{parts:?}");
    let (part_id, content_type) = &parts[0];
    assert_eq!(content_type, "message/rfc822");
    let bytes = download(http, ids[2], part_id);
    let deepest = b"Content-Type: multipart/mixed; boundary=b31x\r\n\r\n--b31x\r\n";
    assert!(
        bytes.starts_with(deepest),
        "{:?}",
        String::from_utf8_lossy(&bytes[..80])
    );
    assert!(bytes.ends_with(b"--b31x--"));

    assert_answers_everywhere(&catcher, http);
}

#[test]
fn a_file_name_in_50000_pieces_gets_a_header_clients_accept() {
    // Issue #11: a part whose RFC 2231 file name came in 50,000 pieces produced a
    // 578 KB Content-Disposition response header that curl and Python refuse.
    let catcher = Catcher::builder().http().arg("--no-pop3").start();
    let http = catcher.http();
    let pieces: String = (0..50_000)
        .map(|n| format!(";\r\n filename*{n}=\"piece{n}-\""))
        .collect();
    let raw = format!(
        "From: mallory@example.test\r\nSubject: long name\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=b\r\n\r\n\
         --b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n\
         --b\r\nContent-Type: application/octet-stream\r\n\
         Content-Disposition: attachment{pieces}\r\n\r\nattached bytes\r\n--b--\r\n"
    );
    let mut smtp = Smtp::ehlo(catcher.addr());
    let id = smtp.deliver(
        "mallory@example.test",
        &["bob@example.test"],
        raw.as_bytes(),
    );
    smtp.quit();

    let parts = listed_parts(http, id);
    assert_eq!(parts.len(), 1, "{parts:?}");
    let response = http::get(http, &format!("/api/v1/message/{id}/part/{}", parts[0].0));
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"attached bytes");
    let head = response.head;
    let disposition = head
        .lines()
        .find(|line| line.starts_with("content-disposition:"))
        .unwrap_or_else(|| panic!("no Content-Disposition in {head:?}"));
    assert!(
        disposition.starts_with("content-disposition: inline; filename=\"piece0-piece1-"),
        "{disposition}"
    );
    assert!(disposition.len() < 1024, "{} bytes", disposition.len());
    assert!(head.len() < 4096, "{} bytes of headers", head.len());
}
