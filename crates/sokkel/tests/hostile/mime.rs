//! Messages built to break the MIME parser, sent over real SMTP to `sokkel mail
//! serve` (issue #11). Before the fix, about 34,000 nested `message/rfc822` parts
//! overflowed a thread's stack while the message was summarized, which aborted the
//! process: SMTP, HTTP and POP3 all stopped.
//!
//! Each message must be accepted with a 250, the catcher must go on answering on
//! every protocol, the message must be listed with its subject, and what the parser
//! kept as one opaque part must download through the API.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use serde_json::Value;

use crate::common::PROMPT;
use crate::mail_support::{Catcher, Smtp};

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

/// `GET path` over HTTP/1.1 on a plain socket: the status code and the body.
fn http_get(addr: SocketAddr, path: &str) -> (u16, Vec<u8>) {
    let (status, _, body) = http_exchange(addr, path);
    (status, body)
}

/// `GET path` over HTTP/1.1 on a plain socket: the status code, the header block
/// as sent (names lowercased) and the body.
fn http_exchange(addr: SocketAddr, path: &str) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect_timeout(&addr, PROMPT)
        .unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"));
    stream.set_read_timeout(Some(PROMPT)).unwrap();
    stream.set_write_timeout(Some(PROMPT)).unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .unwrap_or_else(|e| panic!("GET {path}: no complete answer: {e}"));
    let end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("GET {path}: no end of headers"));
    let head = String::from_utf8_lossy(&response[..end]).to_ascii_lowercase();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("GET {path}: no status in {head:?}"));
    let mut body = response[end + 4..].to_vec();
    if head.contains("\r\ntransfer-encoding: chunked") {
        body = dechunk(&body);
    }
    (status, head, body)
}

/// The payload of a chunked body.
fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("a chunk size line");
        let size = String::from_utf8_lossy(&body[..line_end]);
        let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16)
            .unwrap_or_else(|e| panic!("bad chunk size {size:?}: {e}"));
        if size == 0 {
            return out;
        }
        let start = line_end + 2;
        out.extend_from_slice(&body[start..start + size]);
        body = &body[start + size + 2..];
    }
}

fn get_json(addr: SocketAddr, path: &str) -> Value {
    let (status, body) = http_get(addr, path);
    assert_eq!(
        status,
        200,
        "GET {path}: {}",
        String::from_utf8_lossy(&body)
    );
    serde_json::from_slice(&body).unwrap_or_else(|e| {
        panic!(
            "GET {path}: not JSON ({e}): {}",
            String::from_utf8_lossy(&body)
        )
    })
}

/// The web address the catcher announced.
fn http_addr(catcher: &Catcher) -> SocketAddr {
    catcher
        .stdout
        .snapshot()
        .iter()
        .find_map(|line| {
            let addr = line
                .strip_prefix("listening on http http://")?
                .strip_suffix('/')?;
            addr.parse().ok()
        })
        .expect("an http listener")
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
    let (code, _) = http_get(http, "/api/v1/messages");
    assert_eq!(code, 200);
    let mut pop3 = TcpStream::connect_timeout(&catcher.pop3[0], PROMPT).expect("POP3 accepts");
    pop3.set_read_timeout(Some(PROMPT)).unwrap();
    let mut greeting = [0u8; 3];
    pop3.read_exact(&mut greeting).expect("a POP3 greeting");
    assert_eq!(&greeting, b"+OK");
    pop3.write_all(b"QUIT\r\n").unwrap();
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
    let (status, bytes) = http_get(http, &format!("/api/v1/message/{id}/part/{part_id}"));
    assert_eq!(
        status,
        200,
        "part {part_id}: {}",
        String::from_utf8_lossy(&bytes)
    );
    bytes
}

#[test]
fn deeply_nested_messages_do_not_take_the_catcher_down() {
    // Issue #11: 34,000 nested message/rfc822 parts aborted the process.
    let catcher = Catcher::start(&["--http", "127.0.0.1:0"]);
    let http = http_addr(&catcher);

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
    let catcher = Catcher::start(&["--http", "127.0.0.1:0", "--no-pop3"]);
    let http = http_addr(&catcher);
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
    let (status, head, body) =
        http_exchange(http, &format!("/api/v1/message/{id}/part/{}", parts[0].0));
    assert_eq!(status, 200);
    assert_eq!(body, b"attached bytes");
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
