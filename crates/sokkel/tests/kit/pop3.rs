//! POP3 in raw bytes: one session, a command and its one-line reply at a time.
//! Whole-protocol tests use Python's poplib instead (`pop3.rs`).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};

use super::net::connect;

/// One POP3 connection spoken to line by line.
#[derive(Debug)]
pub struct Pop3 {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Pop3 {
    /// Connects and checks that the greeting is `+OK`.
    #[track_caller]
    pub fn open(addr: SocketAddr) -> Pop3 {
        let writer = connect(addr);
        let reader = BufReader::new(writer.try_clone().expect("clone the stream"));
        let mut pop3 = Pop3 { reader, writer };
        let greeting = pop3.line();
        assert!(greeting.starts_with("+OK"), "POP3 greeting: {greeting:?}");
        pop3
    }

    /// Connects and logs in with USER and PASS, which must both answer `+OK`.
    #[track_caller]
    pub fn login(addr: SocketAddr, user: &str, password: &str) -> Pop3 {
        let mut pop3 = Pop3::open(addr);
        let reply = pop3.cmd(&format!("USER {user}"));
        assert!(reply.starts_with("+OK"), "USER {user}: {reply}");
        let reply = pop3.cmd(&format!("PASS {password}"));
        assert!(reply.starts_with("+OK"), "login refused: {reply}");
        pop3
    }

    /// Sends `command` (CRLF added) and returns the first line of the reply.
    pub fn cmd(&mut self, command: &str) -> String {
        self.writer
            .write_all(format!("{command}\r\n").as_bytes())
            .unwrap_or_else(|e| panic!("cannot send {command:?}: {e}"));
        self.line()
    }

    /// The next line, without CRLF ("" if the server closed the connection).
    pub fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader
            .read_line(&mut line)
            .unwrap_or_else(|e| panic!("no POP3 line: {e}"));
        line.trim_end().to_owned()
    }
}
