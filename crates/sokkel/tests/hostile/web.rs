//! Issue #11, the web side, against the real binary through real sockets: list
//! pages over messages with 20,000 To addresses, clients that never read a big
//! `/raw` or their WebSocket, and a foreign page's `text/plain` DELETE. Each test
//! checks what a user would notice: the server's memory (VmRSS / VmHWM from
//! /proc), and that it keeps answering a well-behaved client.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::PROMPT;
use crate::mail_support::{Catcher, Smtp};

const MIB: u64 = 1 << 20;

/// A catcher with its web side on a free loopback port.
struct Web {
    catcher: Catcher,
    http: SocketAddr,
}

impl Web {
    fn start() -> Web {
        let catcher = Catcher::start(&["--http", "127.0.0.1:0", "--no-pop3"]);
        let http = catcher
            .stdout
            .snapshot()
            .iter()
            .find_map(|line| {
                line.strip_prefix("listening on http http://")?
                    .strip_suffix('/')?
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no http listener in {}", catcher.stdout.text()));
        Web { catcher, http }
    }

    /// (VmRSS, VmHWM) of the server, in bytes.
    fn memory(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.catcher.pid()))
            .expect("the server's /proc status");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|value| {
                    value
                        .trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
                .unwrap_or_else(|| panic!("no {name} in {status}"))
                * 1024
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// Sends `request` (a whole HTTP/1.1 request) and reads the whole answer.
    fn request(&self, request: &str) -> (u16, Vec<u8>) {
        http(self.http, request)
    }

    fn get(&self, path: &str) -> (u16, Vec<u8>) {
        self.request(&format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.http
        ))
    }

    fn get_json(&self, path: &str) -> Value {
        let (status, body) = self.get(path);
        assert_eq!(
            status,
            200,
            "GET {path}: {}",
            String::from_utf8_lossy(&body)
        );
        serde_json::from_slice(&body).unwrap_or_else(|e| panic!("GET {path}: not JSON: {e}"))
    }

    /// Delivers `count` copies of `message` over `sessions` SMTP sessions at once.
    fn deliver(&self, message: &[u8], count: usize, sessions: usize) {
        let senders: Vec<_> = (0..sessions)
            .map(|session| {
                let addr = self.catcher.addr();
                let message = message.to_vec();
                let mine = count / sessions + usize::from(session < count % sessions);
                thread::spawn(move || {
                    let mut smtp = Smtp::ehlo(addr);
                    for _ in 0..mine {
                        smtp.deliver("rick@example.com", &["morty@example.com"], &message);
                    }
                })
            })
            .collect();
        for sender in senders {
            sender.join().expect("a sender failed");
        }
    }
}

/// One whole HTTP/1.1 exchange on a new connection (the request says `Connection:
/// close`): the status and the body, de-chunked.
fn http(addr: SocketAddr, request: &str) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect_timeout(&addr, PROMPT).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.set_write_timeout(Some(PROMPT)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .unwrap_or_else(|e| panic!("no whole answer to {request:?}: {e}"));
    let end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers: {}", String::from_utf8_lossy(&response)));
    let head = String::from_utf8_lossy(&response[..end]).to_ascii_lowercase();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap();
    let mut body = &response[end + 4..];
    if !head.contains("\r\ntransfer-encoding: chunked") {
        return (status, body.to_vec());
    }
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n").unwrap();
        let size_text = String::from_utf8_lossy(&body[..line_end]).to_string();
        let size = usize::from_str_radix(size_text.trim(), 16).unwrap();
        if size == 0 {
            return (status, out);
        }
        out.extend_from_slice(&body[line_end + 2..line_end + 2 + size]);
        body = &body[line_end + 4 + size..];
    }
}

/// A header of `count` addresses, folded one per line.
fn address_list(count: usize, name: &str) -> String {
    (0..count)
        .map(|n| format!("\"{name} {n}\" <user{n}@example.com>"))
        .collect::<Vec<_>>()
        .join(",\r\n ")
}

// Issue #11: `GET /api/v1/messages?limit=1000` over messages with 20,000 To
// addresses each produced 343 MB of JSON and a 1.7 GB peak RSS; eight at once
// 14.4 GB. Summaries now carry at most 50 addresses per field and the count.
#[test]
fn list_pages_over_messages_with_20000_recipients_stay_small() {
    let web = Web::start();
    let message = format!(
        "From: rick@example.com\r\nTo: {}\r\nSubject: everyone\r\n\r\nhi\r\n",
        address_list(20_000, "Recipient")
    );
    let messages = 30;
    web.deliver(message.as_bytes(), messages, 2);
    let (rss_before, _) = web.memory();

    let pages: Vec<_> = (0..8)
        .map(|_| {
            let addr = web.http;
            thread::spawn(move || {
                http(
                    addr,
                    &format!(
                        "GET /api/v1/messages?limit=1000 HTTP/1.1\r\nHost: {addr}\r\n\
                         Connection: close\r\n\r\n"
                    ),
                )
            })
        })
        .collect();
    for page in pages {
        let (status, body) = page.join().unwrap();
        assert_eq!(status, 200);
        // About 2 KB a summary, not 1.3 MB.
        assert!(body.len() < messages * (8 << 10), "{} bytes", body.len());
        let page: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(page["count"], messages);
        assert_eq!(page["messages"][0]["To"].as_array().unwrap().len(), 50);
        assert_eq!(page["messages"][0]["ToCount"], 20_000);
    }
    let (_, peak) = web.memory();
    assert!(
        peak < rss_before + 100 * MIB,
        "peak RSS {} MiB over {} MiB before the requests",
        peak / MIB,
        rss_before / MIB
    );
    assert_eq!(web.get_json("/api/v1/info")["Messages"], messages);

    // `mail list` reads the same bounded summaries and still counts every address.
    let table = web
        .catcher
        .cli(&["list", "--limit", "1"])
        .assert_success("mail list")
        .stdout_text();
    assert!(table.contains("user0@example.com +19999"), "{table}");
}

// Issue #11: 40 clients that never read a 32 MiB `/raw` took 1.3 GB. `/raw` is
// streamed a chunk at a time, each read when the socket takes the last one.
#[test]
fn clients_that_never_read_a_big_raw_hold_little_memory() {
    let web = Web::start();
    let mut message = b"From: rick@example.com\r\nSubject: big\r\n\r\n".to_vec();
    let line = b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n";
    while message.len() < 16 << 20 {
        message.extend_from_slice(line);
    }
    web.deliver(&message, 1, 1);
    let (rss_before, _) = web.memory();

    let request = format!(
        "GET /api/v1/message/1/raw HTTP/1.1\r\nHost: {}\r\n\r\n",
        web.http
    );
    let stalled: Vec<TcpStream> = (0..30)
        .map(|_| {
            let mut stream = TcpStream::connect_timeout(&web.http, PROMPT).unwrap();
            stream.write_all(request.as_bytes()).unwrap();
            stream
        })
        .collect();
    // Long enough for the server to answer all 30 and fill their sockets.
    thread::sleep(Duration::from_secs(2));
    let (rss_during, _) = web.memory();
    assert!(
        rss_during < rss_before + 100 * MIB,
        "30 stalled downloads of a 16 MiB message hold {} MiB (from {} MiB)",
        rss_during / MIB,
        rss_before / MIB
    );
    // Another client is served, whole, while they stall.
    let started = Instant::now();
    let (status, body) = web.get("/api/v1/message/1/raw");
    assert_eq!(status, 200);
    assert_eq!(body.len(), message.len());
    assert!(body == message, "the exact bytes");
    assert!(started.elapsed() < Duration::from_secs(20));
    drop(stalled);
}

/// Opens `/api/events` with a hand-made handshake and returns the socket, which
/// the caller then never reads.
fn websocket(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect_timeout(&addr, PROMPT).unwrap();
    stream.set_read_timeout(Some(PROMPT)).unwrap();
    stream
        .write_all(
            format!(
                "GET /api/events HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                 Sec-WebSocket-Version: 13\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
    // Only the handshake's answer; the frames behind it stay unread.
    let mut head = Vec::new();
    let mut byte = [0];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    stream
}

// Issue #11: a WebSocket client that never reads queued up to 1,024 events of any
// size (352 MB seen). Now its queue is bounded in bytes; past it, it is dropped
// and counted.
#[test]
fn a_websocket_client_that_never_reads_is_dropped_and_counted() {
    let web = Web::start();
    let _stalled = websocket(web.http);
    let (rss_before, _) = web.memory();
    // Summaries of about 12 KB: 50 addresses with long names in To, Cc, Reply-To.
    let name = "n".repeat(80);
    let message = format!(
        "From: rick@example.com\r\nTo: {0}\r\nCc: {0}\r\nReply-To: {0}\r\nSubject: s\r\n\r\nhi\r\n",
        address_list(50, &name)
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut delivered = 0;
    loop {
        let info = web.get_json("/api/v1/info");
        if info["RuntimeStats"]["WebSocketsDropped"] == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not dropped after {delivered} messages: {info}"
        );
        web.deliver(message.as_bytes(), 100, 2);
        delivered += 100;
    }
    let (rss_after, peak) = web.memory();
    assert!(
        peak < rss_before + 100 * MIB,
        "peak {} MiB, {} MiB before",
        peak / MIB,
        rss_before / MIB
    );
    assert!(rss_after < rss_before + 100 * MIB);
    assert!(
        web.catcher
            .stderr
            .text()
            .contains("dropped a WebSocket client that stopped reading"),
        "the drop is logged"
    );
    // A new page's WebSocket is served.
    let _fresh = websocket(web.http);
}

// Issue #11: the server accepted a text/plain DELETE carrying a foreign Origin
// (only the browser's preflight stopped it).
#[test]
fn a_foreign_pages_simple_delete_is_refused_and_deletes_nothing() {
    let web = Web::start();
    web.deliver(
        b"From: rick@example.com\r\nSubject: keep me\r\n\r\nhi\r\n",
        2,
        1,
    );
    for origin in ["http://evil.example", "null"] {
        let body = r#"{"IDs":["1"]}"#;
        let (status, answer) = web.request(&format!(
            "DELETE /api/v1/messages HTTP/1.1\r\nHost: {}\r\nOrigin: {origin}\r\n\
             Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            web.http,
            body.len()
        ));
        assert_eq!(status, 403, "{}", String::from_utf8_lossy(&answer));
        let reason = String::from_utf8(answer).unwrap();
        assert_eq!(reason.trim_end().lines().count(), 1, "{reason}");
    }
    assert_eq!(web.get_json("/api/v1/messages")["total"], 2);
    // curl, which sends no Origin, still deletes.
    let (status, _) = web.request(&format!(
        "DELETE /api/v1/messages HTTP/1.1\r\nHost: {}\r\nContent-Length: 13\r\n\
         Connection: close\r\n\r\n{{\"IDs\":[\"1\"]}}",
        web.http
    ));
    assert_eq!(status, 200);
    assert_eq!(web.get_json("/api/v1/messages")["total"], 1);
}
