//! Helpers for the mail catcher tests: start `sokkel mail serve` on port 0 with a store
//! in a temporary directory, learn its addresses from what it prints, speak SMTP to it
//! in raw bytes, read the store back through `sokkel mail list | show | delete`, and run
//! the peers nobody here wrote (python3, swaks, smtp-source).
//!
//! Every process started here is owned by a `common::ChildGuard`, which kills and waits for it
//! when dropped, so a failing test leaves nothing running. Every read and every wait
//! has a deadline, so a server that stops answering fails the test instead of hanging it.

// `mail` and `mail_interop` each use a different part of this module.
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use crate::common::{ChildGuard, Finished, Lines, PROMPT, run, sokkel_command, spawn_collected};

/// The greeting name every test server is started with, so replies are exact.
pub const HOST: &str = "test.local";

/// How long a short command (`sokkel mail list`, python3 -c ...) may take.
pub const COMMAND_LIMIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------
// Short commands

/// Runs a Python program with python3, which every machine these tests run on has: a
/// missing python3 fails the test rather than skipping it.
pub fn python3(program: &str, args: &[&str], timeout: Duration) -> Finished {
    let mut command = Command::new("python3");
    command.arg("-c").arg(program).args(args);
    run(command, b"", timeout)
}

// ---------------------------------------------------------------------------------------
// The catcher

/// A running `sokkel mail serve`.
#[derive(Debug)]
pub struct Catcher {
    process: ChildGuard,
    pub stdout: Lines,
    pub stderr: Lines,
    /// The SMTP addresses it announced, in the order of the `--smtp` flags.
    pub smtp: Vec<SocketAddr>,
    /// The POP3 addresses it announced (port 0 unless the test names `--pop3`).
    pub pop3: Vec<SocketAddr>,
    pub db: PathBuf,
    // Dropped after `process` (fields drop in order), so the store outlives the server.
    _dir: Option<TempDir>,
}

impl Catcher {
    /// Starts a catcher on 127.0.0.1 port 0 with a store in a new temporary directory,
    /// named [`HOST`], with `extra` flags.
    pub fn start(extra: &[&str]) -> Catcher {
        let dir = tempfile::Builder::new()
            .prefix("sokkel-mail-test-")
            .tempdir()
            .expect("cannot create a temporary directory");
        let db = dir.path().join("mail.db");
        let mut catcher = Catcher::start_at(&db, extra);
        catcher._dir = Some(dir);
        catcher
    }

    /// Starts a catcher on an existing (or new) store at `db`; the caller keeps the
    /// directory. Adds `--smtp 127.0.0.1:0` unless `extra` names `--smtp`.
    pub fn start_at(db: &Path, extra: &[&str]) -> Catcher {
        let mut args: Vec<String> = vec!["mail".into(), "serve".into()];
        let listeners = extra.iter().filter(|a| **a == "--smtp").count();
        if listeners == 0 {
            args.extend(["--smtp".into(), "127.0.0.1:0".into()]);
        }
        // The web server is tested on its own; its default port must not clash.
        if !extra.contains(&"--http") {
            args.push("--no-http".into());
        }
        // Never the default POP3 port: tests run in parallel.
        let pop3_listeners = if extra.contains(&"--no-pop3") {
            0
        } else {
            let named = extra.iter().filter(|a| **a == "--pop3").count();
            if named == 0 {
                args.extend(["--pop3".into(), "127.0.0.1:0".into()]);
            }
            named.max(1)
        };
        if !extra.contains(&"--hostname") {
            args.extend(["--hostname".into(), HOST.into()]);
        }
        args.extend(["--db".into(), db.display().to_string()]);
        args.extend(extra.iter().map(|a| a.to_string()));
        let expected = listeners.max(1);

        let (process, stdout, stderr) = spawn_collected(
            sokkel_command().args(&args),
            format!("sokkel {}", args.join(" ")),
        );
        let ready = stdout
            .wait_until(PROMPT, |lines| {
                lines.iter().any(|l| l.starts_with("mail is kept in "))
                    && lines
                        .iter()
                        .filter(|l| l.starts_with("listening on smtp "))
                        .count()
                        >= expected
                    && lines
                        .iter()
                        .filter(|l| l.starts_with("listening on pop3 "))
                        .count()
                        >= pop3_listeners
            })
            .is_some();
        assert!(
            ready,
            "sokkel mail serve did not announce {expected} listener(s) and its store within \
             {PROMPT:?}\nstdout:\n{}\nstderr:\n{}",
            stdout.text(),
            stderr.text()
        );
        let lines = stdout.snapshot();
        let smtp = lines
            .iter()
            .filter_map(|l| l.strip_prefix("listening on smtp "))
            .map(|a| {
                a.parse::<SocketAddr>()
                    .unwrap_or_else(|e| panic!("bad address in {a:?}: {e}"))
            })
            .collect();
        let pop3 = lines
            .iter()
            .filter_map(|l| l.strip_prefix("listening on pop3 "))
            .map(|a| {
                a.parse::<SocketAddr>()
                    .unwrap_or_else(|e| panic!("bad address in {a:?}: {e}"))
            })
            .collect();
        Catcher {
            process,
            stdout,
            stderr,
            smtp,
            pop3,
            db: db.to_owned(),
            _dir: None,
        }
    }

    /// The first SMTP address.
    pub fn addr(&self) -> SocketAddr {
        self.smtp[0]
    }

    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// Opens a session and checks the greeting.
    pub fn session(&self) -> Smtp {
        Smtp::open(self.addr())
    }

    /// SIGKILL, and wait until the process is gone.
    pub fn kill_hard(&mut self) {
        self.process.kill_hard();
    }

    /// Waits for the process to exit; panics with its stderr if it does not.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        match self.process.wait_timeout(timeout) {
            Some(status) => status,
            None => panic!(
                "sokkel mail serve still running after {timeout:?}; stderr:\n{}",
                self.stderr.text()
            ),
        }
    }

    /// `sokkel mail ARGS --db <this store>`.
    pub fn cli(&self, args: &[&str]) -> Finished {
        mail_cli(&self.db, args)
    }

    /// Every stored message as `mail list --json` gives it, newest first.
    pub fn list(&self) -> Vec<Value> {
        list_json(&self.db, 1_000_000)
    }

    /// The exact stored bytes of message `id`.
    pub fn raw(&self, id: u64) -> Vec<u8> {
        raw(&self.db, id)
    }

    /// The one message in the store; panics if there is not exactly one.
    pub fn only_message(&self) -> Value {
        let mut all = self.list();
        assert_eq!(
            all.len(),
            1,
            "expected exactly one stored message, got {all:#?}"
        );
        all.remove(0)
    }
}

/// `sokkel mail ARGS --db DB`.
pub fn mail_cli(db: &Path, args: &[&str]) -> Finished {
    let mut command = sokkel_command();
    command.arg("mail").args(args).arg("--db").arg(db);
    run(command, b"", COMMAND_LIMIT)
}

/// `mail list --json --limit LIMIT`, parsed.
pub fn list_json(db: &Path, limit: usize) -> Vec<Value> {
    let out = mail_cli(db, &["list", "--json", "--limit", &limit.to_string()])
        .assert_success("sokkel mail list --json");
    match serde_json::from_slice(&out.stdout) {
        Ok(Value::Array(items)) => items,
        other => panic!(
            "mail list --json did not print an array: {other:?}\n{}",
            out.describe()
        ),
    }
}

/// `mail show ID --raw`.
pub fn raw(db: &Path, id: u64) -> Vec<u8> {
    mail_cli(db, &["show", &id.to_string(), "--raw"])
        .assert_success("sokkel mail show --raw")
        .stdout
}

/// The ids in `mail list --json` output, in its order.
pub fn ids(list: &[Value]) -> Vec<u64> {
    list.iter()
        .map(|m| {
            m["id"]
                .as_u64()
                .unwrap_or_else(|| panic!("no numeric id in {m}"))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Speaking SMTP in raw bytes

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
        let stream = TcpStream::connect_timeout(&addr, PROMPT)
            .unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"));
        stream.set_read_timeout(Some(PROMPT)).unwrap();
        stream.set_write_timeout(Some(PROMPT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Smtp {
            stream,
            pending: Vec::new(),
            last_sent: String::from("(connect)"),
        }
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

    fn set_read_timeout(&self, timeout: Duration) {
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

    /// Sends one message over an open session (EHLO already said): MAIL, RCPT, DATA,
    /// the dot-stuffed `content`, and the final dot. Returns the store id.
    pub fn deliver(&mut self, from: &str, to: &[&str], content: &[u8]) -> u64 {
        self.cmd(&format!("MAIL FROM:<{from}>\r\n"), &["250 2.1.0 Ok"]);
        for rcpt in to {
            self.cmd(&format!("RCPT TO:<{rcpt}>\r\n"), &["250 2.1.5 Ok"]);
        }
        self.cmd("DATA\r\n", &["354 End data with <CR><LF>.<CR><LF>"]);
        self.send(&dot_stuff(content));
        self.send(b".\r\n");
        let reply = self.reply();
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

fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
    )
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

/// The whole EHLO reply for a client calling itself `name`.
pub fn ehlo_reply(name: &str, size: usize) -> Vec<String> {
    vec![
        format!("250-{HOST} greets {name}"),
        "250-PIPELINING".into(),
        format!("250-SIZE {size}"),
        "250-8BITMIME".into(),
        "250-SMTPUTF8".into(),
        "250-ENHANCEDSTATUSCODES".into(),
        "250 CHUNKING".into(),
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
    haystack.windows(needle.len()).any(|w| w == needle)
}

// ---------------------------------------------------------------------------------------
// Crash test: senders that remember every message the server acknowledged

/// A message the server answered `250 ... queued as ID`, with the bytes it must keep.
#[derive(Debug, Clone)]
pub struct Acked {
    pub id: u64,
    pub content: Vec<u8>,
}

/// How a sender thread stopped.
#[derive(Debug)]
pub enum SenderEnd {
    /// It sent all its messages, or its time ran out.
    Done,
    /// The server answered something other than 250/354 (a 451 from a full store).
    Refused(String),
    /// The connection failed (the server died).
    Broken(io::Error),
}

/// Runs `senders` threads that each deliver messages over one connection, recording
/// every acknowledged one in `acked`, until the server refuses one or goes away, or
/// `max_per_sender` messages or `limit` time have passed.
pub fn start_senders(
    addr: SocketAddr,
    senders: usize,
    max_per_sender: usize,
    limit: Duration,
    acked: Arc<Mutex<Vec<Acked>>>,
) -> Vec<thread::JoinHandle<SenderEnd>> {
    (0..senders)
        .map(|sender| {
            let acked = acked.clone();
            thread::spawn(move || {
                let deadline = Instant::now() + limit;
                match send_until_error(addr, sender, max_per_sender, deadline, &acked) {
                    Ok(()) => SenderEnd::Done,
                    Err(err) => match err.kind() {
                        ErrorKind::InvalidData => SenderEnd::Refused(err.to_string()),
                        _ => SenderEnd::Broken(err),
                    },
                }
            })
        })
        .collect()
}

/// Joins the sender threads (each ends within [`PROMPT`] of the server going away).
pub fn join_senders(senders: Vec<thread::JoinHandle<SenderEnd>>) -> Vec<SenderEnd> {
    senders
        .into_iter()
        .map(|sender| sender.join().expect("a sender thread panicked"))
        .collect()
}

/// One sender: messages of varied sizes (some with dot-stuffed lines), unique Subject
/// and Message-ID. Returns at the first refusal (as `InvalidData`) or I/O error.
fn send_until_error(
    addr: SocketAddr,
    sender: usize,
    max: usize,
    deadline: Instant,
    acked: &Mutex<Vec<Acked>>,
) -> io::Result<()> {
    let mut stream = TcpStream::connect_timeout(&addr, PROMPT)?;
    stream.set_read_timeout(Some(PROMPT))?;
    stream.set_write_timeout(Some(PROMPT))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    let mut read_reply = |reader: &mut BufReader<TcpStream>| -> io::Result<String> {
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Err(io::Error::new(ErrorKind::UnexpectedEof, "closed"));
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(line.trim_end().to_owned());
            }
        }
    };
    let refused = |reply: String| io::Error::new(ErrorKind::InvalidData, reply);
    read_reply(&mut reader)?;
    stream.write_all(b"EHLO crash.test\r\n")?;
    read_reply(&mut reader)?;
    for n in 0..max {
        if Instant::now() >= deadline {
            break;
        }
        let content = crash_message(sender, n);
        let mut wire =
            format!("MAIL FROM:<s{sender}@crash.test>\r\nRCPT TO:<t@crash.test>\r\nDATA\r\n")
                .into_bytes();
        wire.extend_from_slice(&dot_stuff(&content));
        wire.extend_from_slice(b".\r\n");
        stream.write_all(&wire)?;
        for _ in 0..3 {
            let reply = read_reply(&mut reader)?;
            if !(reply.starts_with("250 ") || reply.starts_with("354 ")) {
                return Err(refused(reply));
            }
        }
        let reply = read_reply(&mut reader)?;
        let Some(id) = reply
            .strip_prefix("250 2.0.0 Ok: queued as ")
            .and_then(|id| id.parse().ok())
        else {
            return Err(refused(reply));
        };
        acked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Acked { id, content });
    }
    stream.write_all(b"QUIT\r\n")?;
    Ok(())
}

/// Message `n` of sender `sender`: 200 bytes to about 8 KiB, with a line starting with
/// a dot, so a lost or mangled byte anywhere shows up in the comparison.
fn crash_message(sender: usize, n: usize) -> Vec<u8> {
    let mut content = format!(
        "From: s{sender}@crash.test\r\nTo: t@crash.test\r\nSubject: crash {sender}-{n}\r\n\
         Message-ID: <{sender}.{n}@crash.test>\r\n\r\n.leading dot {sender}-{n}\r\n"
    )
    .into_bytes();
    let lines = (sender * 7 + n * 13) % 120;
    for i in 0..lines {
        content.extend_from_slice(
            format!("{sender:02}-{n:05}-{i:03} the quick brown fox jumps over the lazy dog\r\n")
                .as_bytes(),
        );
    }
    content
}

/// `PRAGMA integrity_check` on the store, through python3's sqlite3 module; returns
/// what it printed.
pub fn integrity_check(db: &Path) -> String {
    let program = "import sqlite3, sys\n\
                   c = sqlite3.connect(sys.argv[1])\n\
                   print('\\n'.join(r[0] for r in c.execute('PRAGMA integrity_check')))\n";
    let out = python3(program, &[&db.display().to_string()], COMMAND_LIMIT)
        .assert_success("python3 sqlite3 integrity_check");
    out.stdout_text().trim().to_owned()
}

/// Checks that every acknowledged message is in the store at `db` under its id with
/// exactly the bytes that were sent. Reads them with a few threads at once.
pub fn assert_all_kept(db: &Path, acked: &[Acked]) {
    let listed = list_json(db, 1_000_000);
    let stored: std::collections::HashMap<u64, &Value> = listed
        .iter()
        .map(|m| (m["id"].as_u64().unwrap(), m))
        .collect();
    let mut ids: Vec<u64> = acked.iter().map(|a| a.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        ids.len(),
        acked.len(),
        "the server gave one id to two messages"
    );
    let missing: Vec<u64> = ids
        .iter()
        .copied()
        .filter(|id| !stored.contains_key(id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged messages are gone after the crash: ids {missing:?}",
        missing.len(),
        acked.len()
    );
    let chunks: Vec<Vec<Acked>> = acked
        .chunks(acked.len().div_ceil(4).max(1))
        .map(<[Acked]>::to_vec)
        .collect();
    let db = db.to_owned();
    let checkers: Vec<_> = chunks
        .into_iter()
        .map(|chunk| {
            let db = db.clone();
            thread::spawn(move || {
                for a in chunk {
                    let got = raw(&db, a.id);
                    assert!(
                        got == a.content,
                        "message {} differs from what was acknowledged:\n got {} bytes: {:?}\nsent {} bytes: {:?}",
                        a.id,
                        got.len(),
                        show(&got[..got.len().min(300)]),
                        a.content.len(),
                        show(&a.content[..a.content.len().min(300)])
                    );
                }
            })
        })
        .collect();
    for checker in checkers {
        if let Err(panic) = checker.join() {
            std::panic::resume_unwind(panic);
        }
    }
}
