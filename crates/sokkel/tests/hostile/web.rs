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

use crate::kit::http::{self, Response};
use crate::kit::{Catcher, PROMPT, process};

const MIB: u64 = 1 << 20;

/// A catcher with its web side on a free loopback port.
fn start() -> Catcher {
    Catcher::builder().http().arg("--no-pop3").start()
}

/// (VmRSS, VmHWM) of the catcher, in bytes.
fn memory(catcher: &Catcher) -> (u64, u64) {
    process::memory(catcher.pid())
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
    let web = start();
    let message = format!(
        "From: rick@example.com\r\nTo: {}\r\nSubject: everyone\r\n\r\nhi\r\n",
        address_list(20_000, "Recipient")
    );
    let messages = 30;
    web.deliver_many(messages, 2, |_| message.clone().into_bytes());
    let (rss_before, _) = memory(&web);

    let pages: Vec<_> = (0..8)
        .map(|_| {
            let addr = web.http();
            thread::spawn(move || http::get(addr, "/api/v1/messages?limit=1000"))
        })
        .collect();
    for page in pages {
        let Response { status, body, .. } = page.join().unwrap();
        assert_eq!(status, 200);
        // About 2 KB a summary, not 1.3 MB.
        assert!(body.len() < messages * (8 << 10), "{} bytes", body.len());
        let page: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(page["count"], messages);
        assert_eq!(page["messages"][0]["To"].as_array().unwrap().len(), 50);
        assert_eq!(page["messages"][0]["ToCount"], 20_000);
    }
    let (_, peak) = memory(&web);
    assert!(
        peak < rss_before + 100 * MIB,
        "peak RSS {} MiB over {} MiB before the requests",
        peak / MIB,
        rss_before / MIB
    );
    assert_eq!(web.get_json("/api/v1/info")["Messages"], messages);

    // `mail list` reads the same bounded summaries and still counts every address.
    let table = web
        .cli(&["list", "--limit", "1"])
        .assert_success("mail list")
        .stdout_text();
    assert!(table.contains("user0@example.com +19999"), "{table}");
}

// Issue #11: 40 clients that never read a 32 MiB `/raw` took 1.3 GB. `/raw` is
// streamed a chunk at a time, each read when the socket takes the last one.
#[test]
fn clients_that_never_read_a_big_raw_hold_little_memory() {
    let web = start();
    let mut message = b"From: rick@example.com\r\nSubject: big\r\n\r\n".to_vec();
    let line = b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n";
    while message.len() < 16 << 20 {
        message.extend_from_slice(line);
    }
    web.deliver_many(1, 1, |_| message.clone());
    let (rss_before, _) = memory(&web);

    let request = format!(
        "GET /api/v1/message/1/raw HTTP/1.1\r\nHost: {}\r\n\r\n",
        web.http()
    );
    let stalled: Vec<TcpStream> = (0..30)
        .map(|_| {
            let mut stream = TcpStream::connect_timeout(&web.http(), PROMPT).unwrap();
            stream.write_all(request.as_bytes()).unwrap();
            stream
        })
        .collect();
    // Long enough for the server to answer all 30 and fill their sockets.
    thread::sleep(Duration::from_secs(2));
    let (rss_during, _) = memory(&web);
    assert!(
        rss_during < rss_before + 100 * MIB,
        "30 stalled downloads of a 16 MiB message hold {} MiB (from {} MiB)",
        rss_during / MIB,
        rss_before / MIB
    );
    // Another client is served, whole, while they stall.
    let started = Instant::now();
    let Response { status, body, .. } = web.get("/api/v1/message/1/raw");
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
    let web = start();
    let _stalled = websocket(web.http());
    let (rss_before, _) = memory(&web);
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
        web.deliver_many(100, 2, |_| message.clone().into_bytes());
        delivered += 100;
    }
    let (rss_after, peak) = memory(&web);
    assert!(
        peak < rss_before + 100 * MIB,
        "peak {} MiB, {} MiB before",
        peak / MIB,
        rss_before / MIB
    );
    assert!(rss_after < rss_before + 100 * MIB);
    assert!(
        web.stderr
            .text()
            .contains("dropped a WebSocket client that stopped reading"),
        "the drop is logged"
    );
    // A new page's WebSocket is served.
    let _fresh = websocket(web.http());
}

// Issue #11: the server accepted a text/plain DELETE carrying a foreign Origin
// (only the browser's preflight stopped it).
#[test]
fn a_foreign_pages_simple_delete_is_refused_and_deletes_nothing() {
    let web = start();
    web.deliver_many(2, 1, |_| {
        b"From: rick@example.com\r\nSubject: keep me\r\n\r\nhi\r\n".to_vec()
    });
    for origin in ["http://evil.example", "null"] {
        let body = r#"{"IDs":["1"]}"#;
        let Response {
            status,
            body: answer,
            ..
        } = http::exchange(
            web.http(),
            format!(
                "DELETE /api/v1/messages HTTP/1.1\r\nHost: {}\r\nOrigin: {origin}\r\n\
             Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                web.http(),
                body.len()
            )
            .as_bytes(),
        );
        assert_eq!(status, 403, "{}", String::from_utf8_lossy(&answer));
        let reason = String::from_utf8(answer).unwrap();
        assert_eq!(reason.trim_end().lines().count(), 1, "{reason}");
    }
    assert_eq!(web.get_json("/api/v1/messages")["total"], 2);
    // curl, which sends no Origin, still deletes.
    let Response { status, .. } = http::exchange(
        web.http(),
        format!(
            "DELETE /api/v1/messages HTTP/1.1\r\nHost: {}\r\nContent-Length: 13\r\n\
         Connection: close\r\n\r\n{{\"IDs\":[\"1\"]}}",
            web.http()
        )
        .as_bytes(),
    );
    assert_eq!(status, 200);
    assert_eq!(web.get_json("/api/v1/messages")["total"], 1);
}
