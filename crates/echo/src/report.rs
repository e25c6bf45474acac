//! What the echo server tells a person: who came, what they sent, when they left.
//!
//! One line per event on stdout, so the output can be read live or piped to grep:
//!
//! ```text
//! tcp 127.0.0.1:50312 connected to 127.0.0.1:10000
//! tcp 127.0.0.1:50312 12 bytes: hello world\n
//! tcp 127.0.0.1:50312 left after 3.20 s, sent 12 bytes in 1 message
//! udp [::1]:41000 5 bytes: hello
//! ```

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use crate::display::render;

/// How many bytes of a message a line shows before it is cut.
pub const SHOWN_BYTES: usize = 200;

/// The transport a peer used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A TCP connection.
    Tcp,
    /// UDP datagrams.
    Udp,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        }
    }
}

/// Receives the server's events; the binary prints them, tests may collect them.
pub trait Report: Send + Sync + 'static {
    /// A TCP peer connected to `local`.
    fn connected(&self, peer: SocketAddr, local: SocketAddr);
    /// A message arrived (a datagram, a frame, or in raw mode one read's worth).
    fn message(&self, transport: Transport, peer: SocketAddr, data: &[u8]);
    /// A TCP peer left, or was closed, after `stayed`, having sent `bytes` in `messages`.
    fn left(&self, peer: SocketAddr, stayed: Duration, bytes: u64, messages: u64, why: &str);
    /// A TCP peer was turned away because the server is at its connection cap.
    fn refused(&self, peer: SocketAddr, cap: usize);
}

/// Writes one line per event to stdout; `messages: false` is `--quiet`.
#[derive(Debug, Clone, Copy)]
pub struct StdoutReport {
    /// Whether to print a line per message received.
    pub messages: bool,
}

impl StdoutReport {
    fn line(&self, args: std::fmt::Arguments<'_>) {
        // A closed stdout (a pipe whose reader went away) must not stop the server.
        let mut out = std::io::stdout().lock();
        let _ = out.write_fmt(args).and_then(|()| out.write_all(b"\n"));
    }
}

fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

impl Report for StdoutReport {
    fn connected(&self, peer: SocketAddr, local: SocketAddr) {
        self.line(format_args!("tcp {peer} connected to {local}"));
    }

    fn message(&self, transport: Transport, peer: SocketAddr, data: &[u8]) {
        if self.messages {
            let name = transport.name();
            let shown = render(data, SHOWN_BYTES);
            self.line(format_args!(
                "{name} {peer} {}: {shown}",
                plural(data.len() as u64, "byte")
            ));
        }
    }

    fn left(&self, peer: SocketAddr, stayed: Duration, bytes: u64, messages: u64, why: &str) {
        self.line(format_args!(
            "tcp {peer} {why} after {:.2} s, sent {} in {}",
            stayed.as_secs_f64(),
            plural(bytes, "byte"),
            plural(messages, "message"),
        ));
    }

    fn refused(&self, peer: SocketAddr, cap: usize) {
        self.line(format_args!(
            "tcp {peer} refused: {cap} connections already open (--max-conns)"
        ));
    }
}
