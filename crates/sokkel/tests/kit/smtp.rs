//! SMTP in raw bytes, as a test speaks it to the catcher: one session whose every
//! reply is read whole and compared line by line, the exact replies the catcher
//! gives (greeting, EHLO), and building messages (dot-stuffing, a small well-formed
//! message).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::net::{connect, is_reset};
use super::process::PROMPT;

/// The greeting name every test catcher is started with, so replies are exact.
pub const HOST: &str = "test.local";

/// How a session ended when the test expected it to.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// The server closed the connection (FIN or RST).
    Closed,
    /// Nothing arrived and the connection stayed open.
    StillOpen,
}

/// One SMTP connection spoken to in raw bytes.
#[derive(Debug)]
pub struct Smtp {
    stream: TcpStream,
    pending: Vec<u8>,
    /// The start of what was sent last, for failure messages.
    last_sent: String,
}

impl Smtp {
    /// Connects without reading anything.
    pub fn connect(addr: SocketAddr) -> Smtp {
        let stream = connect(addr);
        Smtp {
            stream,
            pending: Vec::new(),
            last_sent: String::from("(connect)"),
        }
    }

    /// This end's address (what the server should record as the client's).
    pub fn local_addr(&self) -> SocketAddr {
        self.stream.local_addr().expect("a connected socket")
    }

    /// Connects and checks the greeting.
    pub fn open(addr: SocketAddr) -> Smtp {
        let mut smtp = Smtp::connect(addr);
        smtp.expect_reply(&[&greeting()]);
        smtp
    }

    /// Connects, checks the greeting, and says EHLO.
    pub fn ehlo(addr: SocketAddr) -> Smtp {
        let mut smtp = Smtp::open(addr);
        smtp.send(b"EHLO client.test\r\n");
        let reply = smtp.reply();
        assert_eq!(reply[0], format!("250-{HOST} greets client.test"));
        smtp
    }

    /// How long the next reads wait for the server (the kit's default is
    /// [`PROMPT`]); for replies that come after real work on a busy machine,
    /// such as committing a 20 MiB message.
    pub fn set_read_timeout(&self, timeout: Duration) {
        self.stream.set_read_timeout(Some(timeout)).unwrap();
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.last_sent = show(&bytes[..bytes.len().min(200)]);
        self.stream
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("cannot send {:?}: {e}", String::from_utf8_lossy(bytes)));
    }

    /// Sends one byte per write, so the server sees every possible split.
    pub fn send_bytewise(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.send(std::slice::from_ref(byte));
        }
        self.last_sent = format!("{} (byte by byte)", show(&bytes[..bytes.len().min(200)]));
    }

    /// The next line (without CRLF), or `None` if the connection closed first. Panics
    /// on a read timeout, showing what did arrive.
    pub fn line(&mut self) -> Option<String> {
        loop {
            if let Some(at) = self.pending.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.pending.drain(..at + 2).take(at).collect();
                return Some(String::from_utf8(line).expect("replies are UTF-8"));
            }
            let mut buf = [0u8; 8192];
            match self.stream.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if is_reset(&e) => return None,
                Err(e) => panic!(
                    "no complete reply line: {e}; partial input {:?}",
                    String::from_utf8_lossy(&self.pending)
                ),
            }
        }
    }

    /// One whole reply (every line of a multi-line reply), or `None` if the connection
    /// closed before it began.
    pub fn try_reply(&mut self) -> Option<Vec<String>> {
        let mut lines = Vec::new();
        loop {
            let Some(line) = self.line() else {
                assert!(
                    lines.is_empty(),
                    "connection closed inside a reply: {lines:?}"
                );
                return None;
            };
            let last = line.as_bytes().get(3) != Some(&b'-');
            assert!(
                line.len() >= 3 && line.as_bytes()[..3].iter().all(u8::is_ascii_digit),
                "not a reply line: {line:?}"
            );
            lines.push(line);
            if last {
                return Some(lines);
            }
        }
    }

    /// One whole reply; panics if the connection closed.
    pub fn reply(&mut self) -> Vec<String> {
        self.try_reply()
            .expect("the server closed the connection instead of replying")
    }

    /// Reads one reply and checks it line by line against `want` (see [`matches`]).
    pub fn expect_reply(&mut self, want: &[&str]) -> Vec<String> {
        let got = self.reply();
        assert_lines(&got, want, &self.last_sent);
        got
    }

    /// Sends `bytes` and checks the one reply they get.
    pub fn cmd(&mut self, bytes: &str, want: &[&str]) -> Vec<String> {
        self.send(bytes.as_bytes());
        let got = self.reply();
        assert_lines(&got, want, bytes);
        got
    }

    /// Reads replies until `n` lines have arrived (pipelined replies), checking them.
    pub fn expect_lines(&mut self, want: &[&str]) -> Vec<String> {
        let mut got = Vec::new();
        while got.len() < want.len() {
            match self.line() {
                Some(line) => got.push(line),
                None => panic!("connection closed after {got:?}; wanted {want:?}"),
            }
        }
        assert_lines(&got, want, &self.last_sent);
        got
    }

    /// Every line until the server closes the connection (within `timeout`).
    pub fn lines_until_closed(&mut self, timeout: Duration) -> Vec<String> {
        self.set_read_timeout(timeout);
        let mut got = Vec::new();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match self.line() {
                Some(line) => got.push(line),
                None => return got,
            }
        }
        panic!("the server did not close the connection within {timeout:?}; got {got:?}")
    }

    /// Whether the server closes the connection within `wait` with nothing more said.
    pub fn ends_silently(&mut self, wait: Duration) -> Ended {
        self.stream.set_read_timeout(Some(wait)).unwrap();
        let mut buf = [0u8; 512];
        let result = loop {
            match self.stream.read(&mut buf) {
                Ok(0) => break Ended::Closed,
                Ok(n) => panic!(
                    "expected nothing more, got {:?}",
                    String::from_utf8_lossy(&buf[..n])
                ),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if is_reset(&e) => break Ended::Closed,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    break Ended::StillOpen;
                }
                Err(e) => panic!("reading failed: {e}"),
            }
        };
        self.stream.set_read_timeout(Some(PROMPT)).unwrap();
        assert!(self.pending.is_empty(), "unread input {:?}", self.pending);
        result
    }

    /// MAIL, a RCPT for each of `to`, and DATA, each getting the catcher's 250 or 354.
    pub fn begin_data(&mut self, from: &str, to: &[&str]) {
        self.cmd(&format!("MAIL FROM:<{from}>\r\n"), &["250 2.1.0 Ok"]);
        for rcpt in to {
            self.cmd(&format!("RCPT TO:<{rcpt}>\r\n"), &["250 2.1.5 Ok"]);
        }
        self.cmd("DATA\r\n", &["354 End data with <CR><LF>.<CR><LF>"]);
    }

    /// Sends one message over an open session (EHLO already said): [`Smtp::begin_data`],
    /// the dot-stuffed `content`, and the final dot. Returns the reply to the dot,
    /// whatever it is.
    pub fn send_message(&mut self, from: &str, to: &[&str], content: &[u8]) -> Vec<String> {
        self.begin_data(from, to);
        self.send(&dot_stuff(content));
        self.send(b".\r\n");
        self.reply()
    }

    /// [`Smtp::send_message`], which must be stored; returns the store id.
    pub fn deliver(&mut self, from: &str, to: &[&str], content: &[u8]) -> u64 {
        let reply = self.send_message(from, to, content);
        queued_id(&reply[0])
    }

    /// QUIT, the 221, and the close.
    pub fn quit(mut self) {
        self.cmd("QUIT\r\n", &[&format!("221 2.0.0 {HOST} Bye")]);
        assert_eq!(
            self.ends_silently(PROMPT),
            Ended::Closed,
            "no close after 221"
        );
    }
}

/// `want` is either the exact line or, ending in `*`, the start of it (for reply texts
/// the server may word as it likes after the codes).
pub fn matches(line: &str, want: &str) -> bool {
    match want.strip_suffix('*') {
        Some(prefix) => line.starts_with(prefix),
        None => line == want,
    }
}

pub fn assert_lines(got: &[String], want: &[&str], after: &str) {
    let ok = got.len() == want.len() && got.iter().zip(want).all(|(g, w)| matches(g, w));
    assert!(ok, "after {after:?}\n  got:  {got:?}\n  want: {want:?}");
}

/// `220 test.local ESMTP sokkel mail catcher`.
pub fn greeting() -> String {
    format!("220 {HOST} ESMTP sokkel mail catcher")
}

/// The whole EHLO reply of `mail serve` for a client calling itself `name`.
pub fn ehlo_reply(name: &str, size: usize) -> Vec<String> {
    vec![
        format!("250-{HOST} greets {name}"),
        "250-PIPELINING".into(),
        format!("250-SIZE {size}"),
        "250-8BITMIME".into(),
        "250-SMTPUTF8".into(),
        "250-ENHANCEDSTATUSCODES".into(),
        "250-CHUNKING".into(),
        // The store's token, for `mail import` in another process.
        "250 XSOKKEL-STORE *".into(),
    ]
}

/// The store id in `250 2.0.0 Ok: queued as ID`; panics on any other reply.
pub fn queued_id(line: &str) -> u64 {
    line.strip_prefix("250 2.0.0 Ok: queued as ")
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("expected `250 2.0.0 Ok: queued as ID`, got {line:?}"))
}

/// Dot-stuffing as a client does it (RFC 5321 section 4.5.2): a line that starts with
/// `.` gets another. `content` must end with CRLF.
pub fn dot_stuff(content: &[u8]) -> Vec<u8> {
    assert!(
        content.ends_with(b"\r\n"),
        "message content must end with CRLF"
    );
    let mut out = Vec::with_capacity(content.len() + 16);
    let mut line_start = true;
    for (i, &byte) in content.iter().enumerate() {
        if line_start && byte == b'.' {
            out.push(b'.');
        }
        out.push(byte);
        line_start = byte == b'\n' && i > 0 && content[i - 1] == b'\r';
    }
    out
}

/// A small well-formed message.
pub fn message(subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Sender <sender@example.test>\r\nTo: rcpt@example.test\r\n\
         Subject: {subject}\r\nMessage-ID: <{}@example.test>\r\n\r\n{body}\r\n",
        subject.replace(' ', ".")
    )
    .into_bytes()
}

/// Lossy text of bytes, for assertion messages.
pub fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Whether `haystack` contains `needle`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle).is_some()
}

/// Where `needle` first stands in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Panics unless every CR in `bytes` is followed by LF and every LF preceded by CR.
#[track_caller]
pub fn assert_only_crlf(bytes: &[u8], what: &str) {
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' {
            assert!(
                i > 0 && bytes[i - 1] == b'\r',
                "{what}: bare LF at byte {i}: {:?}",
                String::from_utf8_lossy(&bytes[i.saturating_sub(40)..(i + 10).min(bytes.len())])
            );
        }
        if b == b'\r' {
            assert!(
                bytes.get(i + 1) == Some(&b'\n'),
                "{what}: bare CR at byte {i}: {:?}",
                String::from_utf8_lossy(&bytes[i.saturating_sub(40)..(i + 10).min(bytes.len())])
            );
        }
    }
}
