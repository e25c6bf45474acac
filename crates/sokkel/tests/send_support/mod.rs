//! Helpers for the mail-sending tests (`send`, `send_interop`): run `sokkel` with a
//! deadline, start `sokkel mail serve` as a real server, a scripted SMTP server that
//! misbehaves on cue, and the peers nobody here wrote (aiosmtpd, Postfix's smtp-sink,
//! tmux). Parsing of what arrived is done by Python's email package
//! (`parse_message.py`), so the comparison does not trust sokkel's own parser.
//!
//! Every wait has a deadline and every process started here is killed and reaped in
//! `Drop`, so a broken binary fails a test instead of hanging it or leaking a server.

// `send` and `send_interop` each use a different part of this module.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{
    ChildGuard, SOKKEL, free_tcp_port, require_program, run, sokkel_command, spawn_collected,
    without_sokkel_env,
};

/// How long a test waits for something that should happen at once on loopback (longer
/// than `common::PROMPT`: the Python peers are slow to start).
pub const PROMPT: Duration = Duration::from_secs(10);

/// The longest any one command may run before the test gives up on it.
pub const RUN_LIMIT: Duration = Duration::from_secs(60);

/// A file next to this module (the Python helpers).
pub fn support_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/send_support")
        .join(name)
}

// ---------------------------------------------------------------------------------
// Running commands
// ---------------------------------------------------------------------------------

/// What a finished command did.
#[derive(Debug)]
pub struct Outcome {
    pub command: String,
    /// The exit code; `None` if a signal ended it.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// Panics, showing everything, unless the exit code is `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "`{}` exited with {:?}, expected {code}\n--- stdout\n{}\n--- stderr\n{}",
            self.command,
            self.code,
            self.stdout,
            self.stderr
        );
        self
    }

    /// The lines of stderr that are not the transcript or log output: the one-line
    /// failure message `sokkel: ...`.
    pub fn failure_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("sokkel: "))
            .collect()
    }

    /// The single `sokkel: ...` failure line; panics if there is not exactly one.
    #[track_caller]
    pub fn failure(&self) -> &str {
        let lines = self.failure_lines();
        assert_eq!(
            lines.len(),
            1,
            "`{}`: expected one `sokkel: ...` line on stderr, got:\n{}",
            self.command,
            self.stderr
        );
        lines[0]
    }

    /// The transcript lines of `-v` output (` -> `, ` <- `, ` ~> `, ` <~ `, `=== `).
    pub fn transcript(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| {
                l.starts_with(" -> ")
                    || l.starts_with(" <- ")
                    || l.starts_with(" ~> ")
                    || l.starts_with(" <~ ")
                    || l.starts_with("=== ")
            })
            .collect()
    }
}

/// A command to run with a deadline: `sokkel` by default, with every `SOKKEL_*`
/// variable of the test's own environment removed so the developer's settings
/// cannot leak into a test.
#[derive(Debug)]
pub struct Run {
    command: Command,
    stdin: Vec<u8>,
    shown: String,
}

pub fn sokkel<S: AsRef<std::ffi::OsStr>>(args: impl IntoIterator<Item = S>) -> Run {
    run_program(SOKKEL, args)
}

pub fn run_program<S: AsRef<std::ffi::OsStr>>(
    program: impl AsRef<std::ffi::OsStr>,
    args: impl IntoIterator<Item = S>,
) -> Run {
    let mut command = Command::new(program.as_ref());
    let mut shown = Path::new(program.as_ref())
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    for arg in args {
        shown.push(' ');
        shown.push_str(&arg.as_ref().to_string_lossy());
        command.arg(arg);
    }
    without_sokkel_env(&mut command);
    Run {
        command,
        stdin: Vec::new(),
        shown,
    }
}

impl Run {
    pub fn env(mut self, name: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        self.command.env(name, value);
        self
    }

    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = bytes.into();
        self
    }

    pub fn current_dir(mut self, dir: &Path) -> Self {
        self.command.current_dir(dir);
        self
    }

    /// Runs to the end (at most [`RUN_LIMIT`]) and collects the output.
    pub fn run(self) -> Outcome {
        let finished = run(self.command, &self.stdin, RUN_LIMIT);
        Outcome {
            command: self.shown,
            code: finished.status.code(),
            stdout: finished.stdout_text(),
            stderr: finished.stderr,
        }
    }
}

/// A fresh temporary directory, removed when dropped.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("sokkel-send-test-")
        .tempdir()
        .expect("cannot create a temporary directory")
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

/// Searches `haystack` for `needle`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

// ---------------------------------------------------------------------------------
// `sokkel mail serve`
// ---------------------------------------------------------------------------------

/// `sokkel mail serve` on 127.0.0.1 with a store in its own temporary directory.
#[derive(Debug)]
pub struct Catcher {
    child: ChildGuard,
    addr: SocketAddr,
    db: PathBuf,
    _dir: tempfile::TempDir,
}

impl Catcher {
    pub fn start() -> Catcher {
        Self::start_on("127.0.0.1:0")
    }

    pub fn start_on(listen: &str) -> Catcher {
        let dir = tempdir();
        let db = dir.path().join("mail.db");
        let (child, stdout, _stderr) = spawn_collected(
            sokkel_command()
                .args([
                    "mail",
                    "serve",
                    "--no-http",
                    "--hostname",
                    "catcher.test",
                    "--smtp",
                    listen,
                ])
                .arg("--db")
                .arg(&db),
            "sokkel mail serve",
        );
        let addr = stdout.expect_map(PROMPT, "where sokkel mail serve listens", |line| {
            line.strip_prefix("listening on smtp ")
                .and_then(|a| a.trim().parse::<SocketAddr>().ok())
        });
        Catcher {
            child,
            addr,
            db,
            _dir: dir,
        }
    }

    /// The address for `--server`.
    pub fn server(&self) -> String {
        self.addr.to_string()
    }

    pub fn db(&self) -> &Path {
        &self.db
    }

    fn read(&self, args: &[&str]) -> Outcome {
        let mut all: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
        all.push("--db".into());
        all.push(self.db.clone().into());
        let outcome = sokkel(all).run();
        outcome.expect_code(0);
        outcome
    }

    /// Every message's summary, oldest first, as `mail list --json` prints it.
    pub fn summaries(&self) -> Vec<Value> {
        if !self.db.exists() {
            return Vec::new();
        }
        let out = self.read(&["mail", "list", "--json", "--limit", "100000"]);
        let list: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("mail list --json printed no JSON ({e}): {}", out.stdout));
        let mut list = list.as_array().cloned().unwrap_or_default();
        list.reverse();
        list
    }

    pub fn count(&self) -> usize {
        self.summaries().len()
    }

    /// The ids of every message, oldest first.
    pub fn ids(&self) -> Vec<u64> {
        self.summaries()
            .iter()
            .map(|m| m["id"].as_u64().expect("a message id"))
            .collect()
    }

    /// The exact bytes stored for message `id` (`latest` works too).
    pub fn raw(&self, id: &str) -> Vec<u8> {
        let out = sokkel_command()
            .args(["mail", "show", id, "--raw", "--db"])
            .arg(&self.db)
            .output()
            .expect("cannot run sokkel mail show");
        assert!(
            out.status.success(),
            "mail show {id} --raw failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// The only message stored; panics if there is not exactly one.
    #[track_caller]
    pub fn only_message(&self) -> Vec<u8> {
        let ids = self.ids();
        assert_eq!(ids.len(), 1, "expected one stored message, found {ids:?}");
        self.raw(&ids[0].to_string())
    }

    /// MAIL FROM and the RCPT TOs of message `id`, from `mail show --envelope`.
    pub fn envelope(&self, id: &str) -> (String, Vec<String>) {
        let out = self.read(&["mail", "show", id, "--envelope"]);
        let unbracket = |s: &str| {
            s.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned()
        };
        let mut from = None;
        let mut to = Vec::new();
        for line in out.stdout.lines() {
            if let Some(v) = line.strip_prefix("MAIL FROM:") {
                from = Some(unbracket(v));
            } else if let Some(v) = line.strip_prefix("RCPT TO:") {
                to.push(unbracket(v));
            }
        }
        let from = from.unwrap_or_else(|| panic!("no MAIL FROM in:\n{}", out.stdout));
        (from, to)
    }

    /// Whether the server is still running.
    pub fn running(&mut self) -> bool {
        self.child.running()
    }
}

// ---------------------------------------------------------------------------------
// Parsing what arrived, with Python's email package
// ---------------------------------------------------------------------------------

/// One leaf part of a parsed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub content_type: String,
    pub charset: Option<String>,
    pub disposition: Option<String>,
    pub filename: Option<String>,
    /// Decoded text, for text/* parts.
    pub text: Option<String>,
    /// The decoded payload (transfer encoding undone).
    pub bytes: Vec<u8>,
}

/// A message as `email.message_from_bytes(raw, policy=email.policy.default)` sees it.
#[derive(Debug)]
pub struct Parsed {
    pub json: Value,
}

/// Parses `raw` with `parse_message.py`.
pub fn parse_message(raw: &[u8]) -> Parsed {
    let out = run_program("python3", [support_file("parse_message.py")])
        .stdin(raw)
        .run();
    out.expect_code(0);
    let json = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("parse_message.py printed no JSON ({e}): {}", out.stdout));
    Parsed { json }
}

fn opt_string(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

fn hex_decode(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex from parse_message.py"))
        .collect()
}

impl Parsed {
    /// Every value of header `name` (case-insensitive), decoded.
    pub fn headers(&self, name: &str) -> Vec<String> {
        self.json["headers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|h| h[0].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))
            .map(|h| h[1].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// The one value of header `name`; panics if it is missing or repeated.
    #[track_caller]
    pub fn header(&self, name: &str) -> String {
        let values = self.headers(name);
        assert_eq!(
            values.len(),
            1,
            "header {name}: {values:?} in {:#}",
            self.json
        );
        values[0].clone()
    }

    /// The (display name, address) pairs of an address header: "from", "to", "cc",
    /// "bcc". `None` when the header is absent.
    pub fn addresses(&self, field: &str) -> Option<Vec<(String, String)>> {
        self.json[field].as_array().map(|list| {
            list.iter()
                .map(|pair| {
                    (
                        pair[0].as_str().unwrap_or_default().to_owned(),
                        pair[1].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
    }

    pub fn subject(&self) -> Option<String> {
        opt_string(&self.json["subject"])
    }

    pub fn content_type(&self) -> String {
        opt_string(&self.json["content_type"]).unwrap_or_default()
    }

    pub fn date_parses(&self) -> bool {
        self.json["date_parses"].as_bool().unwrap_or(false)
    }

    pub fn message_id(&self) -> Option<String> {
        opt_string(&self.json["message_id"])
    }

    /// What the email package found wrong with the message; should be empty.
    pub fn defects(&self) -> Vec<String> {
        self.json["defects"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d.as_str().map(str::to_owned))
            .collect()
    }

    pub fn parts(&self) -> Vec<Part> {
        self.json["parts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| Part {
                content_type: opt_string(&p["content_type"]).unwrap_or_default(),
                charset: opt_string(&p["charset"]),
                disposition: opt_string(&p["disposition"]),
                filename: opt_string(&p["filename"]),
                text: opt_string(&p["text"]),
                bytes: hex_decode(p["hex"].as_str().unwrap_or_default()),
            })
            .collect()
    }

    /// The text of the first text/plain part that is not an attachment.
    #[track_caller]
    pub fn text_body(&self) -> String {
        self.parts()
            .into_iter()
            .find(|p| {
                p.content_type == "text/plain" && p.disposition.as_deref() != Some("attachment")
            })
            .and_then(|p| p.text)
            .unwrap_or_else(|| panic!("no text/plain part in {:#}", self.json))
    }
}

// ---------------------------------------------------------------------------------
// A scripted SMTP server that misbehaves on cue
// ---------------------------------------------------------------------------------

/// What the scripted server does in answer to something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Send these reply lines (`\r\n` between lines of a multi-line reply; the last
    /// CRLF is added).
    Say(String),
    /// Send these reply lines, then close the connection (a 421 shutdown).
    Hangup(String),
    /// Close the connection without a word.
    Close,
    /// Say nothing, read and ignore whatever comes, until the client gives up.
    Silent,
}

impl From<&str> for Reply {
    fn from(text: &str) -> Reply {
        Reply::Say(text.to_owned())
    }
}

/// How the scripted server behaves: a reply per command prefix, defaults for the rest.
#[derive(Debug, Clone)]
pub struct Script {
    banner: Reply,
    capabilities: Vec<String>,
    rules: Vec<(String, Reply)>,
    close_mid_data: bool,
    hold_until_data: bool,
}

impl Default for Script {
    fn default() -> Self {
        Script::new()
    }
}

impl Script {
    /// A well-behaved server: 220, EHLO with 8BITMIME and ENHANCEDSTATUSCODES (no
    /// PIPELINING, so every command waits for its reply), 250 to everything, 354 to
    /// DATA.
    pub fn new() -> Script {
        Script {
            banner: "220 scripted.test ESMTP ready".into(),
            capabilities: vec!["8BITMIME".into(), "ENHANCEDSTATUSCODES".into()],
            rules: Vec::new(),
            close_mid_data: false,
            hold_until_data: false,
        }
    }

    pub fn banner(mut self, reply: impl Into<Reply>) -> Script {
        self.banner = reply.into();
        self
    }

    /// Adds an EHLO capability line (`PIPELINING`, `SIZE 100`, `AUTH PLAIN LOGIN` ...).
    pub fn capability(mut self, capability: &str) -> Script {
        self.capabilities.push(capability.to_owned());
        self
    }

    /// Answers commands starting with `prefix` (case-insensitive) with `reply`. The
    /// first matching rule wins. The prefix `.` is the reply after the final dot.
    pub fn on(mut self, prefix: &str, reply: impl Into<Reply>) -> Script {
        self.rules.push((prefix.to_ascii_uppercase(), reply.into()));
        self
    }

    /// Close the connection as soon as message content starts arriving.
    pub fn close_mid_data(mut self) -> Script {
        self.close_mid_data = true;
        self
    }

    /// Hold the replies to MAIL and RCPT until DATA arrives, then send them all in
    /// one write. A client that waits for the MAIL reply before sending RCPT (that
    /// does not pipeline) then waits forever: this proves pipelining.
    pub fn hold_replies_until_data(mut self) -> Script {
        self.hold_until_data = true;
        self
    }

    fn reply_to(&self, line: &str) -> Reply {
        let upper = line.to_ascii_uppercase();
        if let Some((_, reply)) = self
            .rules
            .iter()
            .find(|(p, _)| upper.starts_with(p.as_str()))
        {
            return reply.clone();
        }
        let verb = upper.split(' ').next().unwrap_or_default();
        match verb {
            "EHLO" => {
                let mut lines = vec!["scripted.test greets you".to_owned()];
                lines.extend(self.capabilities.iter().cloned());
                let last = lines.len() - 1;
                let text: Vec<String> = lines
                    .iter()
                    .enumerate()
                    .map(|(i, l)| format!("250{}{l}", if i == last { ' ' } else { '-' }))
                    .collect();
                Reply::Say(text.join("\r\n"))
            }
            "HELO" => "250 scripted.test".into(),
            "MAIL" => "250 2.1.0 sender ok".into(),
            "RCPT" => "250 2.1.5 recipient ok".into(),
            "DATA" => "354 go ahead".into(),
            "." => "250 2.0.0 queued as 1".into(),
            "RSET" | "NOOP" => "250 2.0.0 ok".into(),
            "QUIT" => "221 2.0.0 bye".into(),
            _ => "500 5.5.2 what?".into(),
        }
    }
}

/// Everything the scripted server got from clients.
#[derive(Debug, Default, Clone)]
pub struct Received {
    /// Every byte, in order, over all connections.
    pub bytes: Vec<u8>,
    /// Command lines (outside message content), without CRLF.
    pub commands: Vec<String>,
    /// Message contents in wire form (dot-stuffed), without the final `.` line.
    pub contents: Vec<Vec<u8>>,
    pub connections: usize,
}

/// A one-thread SMTP server on 127.0.0.1 that follows a [`Script`]. Connections are
/// served one after another. Stops when dropped.
#[derive(Debug)]
pub struct ScriptedServer {
    addr: SocketAddr,
    received: Arc<Mutex<Received>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl ScriptedServer {
    pub fn start(script: Script) -> ScriptedServer {
        Self::start_on("127.0.0.1:0", script)
    }

    pub fn start_on(listen: &str, script: Script) -> ScriptedServer {
        let listener = TcpListener::bind(listen)
            .unwrap_or_else(|e| panic!("cannot bind the scripted server to {listen}: {e}"));
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("local address");
        let received = Arc::new(Mutex::new(Received::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (received, stop) = (received.clone(), stop.clone());
            thread::spawn(move || accept_loop(&listener, &script, &received, &stop))
        };
        ScriptedServer {
            addr,
            received,
            stop,
            thread: Some(thread),
        }
    }

    pub fn server(&self) -> String {
        self.addr.to_string()
    }

    /// What clients sent so far.
    pub fn received(&self) -> Received {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// No scripted conversation lasts longer than this.
const SCRIPT_LIMIT: Duration = Duration::from_secs(60);

fn accept_loop(
    listener: &TcpListener,
    script: &Script,
    received: &Mutex<Received>,
    stop: &AtomicBool,
) {
    let deadline = Instant::now() + SCRIPT_LIMIT;
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        match listener.accept() {
            Ok((stream, _)) => {
                received
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .connections += 1;
                serve_one(stream, script, received, stop, deadline);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(Duration::from_millis(5)),
            Err(_) => return,
        }
    }
}

fn serve_one(
    mut stream: TcpStream,
    script: &Script,
    received: &Mutex<Received>,
    stop: &AtomicBool,
    deadline: Instant,
) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(20)));
    let record = |f: &mut dyn FnMut(&mut Received)| {
        f(&mut received.lock().unwrap_or_else(|e| e.into_inner()))
    };
    // Reads until the client closes, the test ends or the deadline passes; the
    // bytes are recorded, nothing is answered.
    let ignore_rest = |stream: &mut TcpStream| {
        let mut buf = [0u8; 65536];
        while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
            match stream.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => record(&mut |r| r.bytes.extend_from_slice(&buf[..n])),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return,
            }
        }
    };
    match &script.banner {
        Reply::Say(text) => {
            if stream.write_all(format!("{text}\r\n").as_bytes()).is_err() {
                return;
            }
        }
        Reply::Hangup(text) => {
            let _ = stream.write_all(format!("{text}\r\n").as_bytes());
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
        Reply::Close => return,
        Reply::Silent => return ignore_rest(&mut stream),
    }
    let mut inbox: Vec<u8> = Vec::new();
    let mut in_data = false;
    let mut held = String::new();
    let mut buf = [0u8; 65536];
    loop {
        // Act on every complete command (or content) in the inbox.
        loop {
            let (line, reply) = if in_data {
                if script.close_mid_data && !inbox.is_empty() {
                    let _ = stream.shutdown(Shutdown::Both);
                    return;
                }
                let end = if inbox.starts_with(b".\r\n") {
                    Some((0, 3))
                } else {
                    find(&inbox, b"\r\n.\r\n").map(|i| (i + 2, i + 5))
                };
                let Some((content_end, used)) = end else {
                    break;
                };
                let content = inbox[..content_end].to_vec();
                inbox.drain(..used);
                record(&mut |r| r.contents.push(content.clone()));
                in_data = false;
                (".".to_owned(), script.reply_to("."))
            } else {
                let Some(newline) = inbox.iter().position(|&b| b == b'\n') else {
                    break;
                };
                let raw: Vec<u8> = inbox.drain(..=newline).collect();
                let line = String::from_utf8_lossy(&raw)
                    .trim_end_matches(['\r', '\n'])
                    .to_owned();
                record(&mut |r| r.commands.push(line.clone()));
                let reply = script.reply_to(&line);
                (line, reply)
            };
            let verb = line
                .split(' ')
                .next()
                .unwrap_or_default()
                .to_ascii_uppercase();
            match reply {
                Reply::Say(text) => {
                    let text = format!("{text}\r\n");
                    if script.hold_until_data
                        && (verb.starts_with("MAIL") || verb.starts_with("RCPT"))
                    {
                        held.push_str(&text);
                        continue;
                    }
                    if verb == "DATA" && text.starts_with("354") {
                        in_data = true;
                    }
                    held.push_str(&text);
                    if stream
                        .write_all(std::mem::take(&mut held).as_bytes())
                        .is_err()
                    {
                        return;
                    }
                    if verb == "QUIT" {
                        let _ = stream.shutdown(Shutdown::Both);
                        return;
                    }
                }
                Reply::Hangup(text) => {
                    held.push_str(&format!("{text}\r\n"));
                    let _ = stream.write_all(held.as_bytes());
                    let _ = stream.shutdown(Shutdown::Both);
                    return;
                }
                Reply::Close => {
                    let _ = stream.shutdown(Shutdown::Both);
                    return;
                }
                Reply::Silent => return ignore_rest(&mut stream),
            }
        }
        if stop.load(Ordering::SeqCst) || Instant::now() >= deadline {
            return;
        }
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                record(&mut |r| r.bytes.extend_from_slice(&buf[..n]));
                inbox.extend_from_slice(&buf[..n]);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

// ---------------------------------------------------------------------------------
// Interop peers
// ---------------------------------------------------------------------------------

/// Panics with what to install unless Python's aiosmtpd can be imported.
#[track_caller]
pub fn require_aiosmtpd() {
    let ok = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "interop peer missing: Python's aiosmtpd cannot be imported. Install it with \
         `python3 -m pip install aiosmtpd` (.ci/run installs it)."
    );
}

/// A self-signed certificate and its key, made by the `openssl` command.
#[derive(Debug)]
pub struct Cert {
    pub cert: PathBuf,
    pub key: PathBuf,
    _dir: tempfile::TempDir,
}

impl Cert {
    /// `openssl req -x509 -newkey rsa:2048 -nodes -days 1` with `extra` arguments
    /// (e.g. `-subj /CN=localhost`, `-addext ...`).
    pub fn generate(extra: &[&str]) -> Cert {
        require_program("openssl", "openssl");
        let dir = tempdir();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        let out = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(extra)
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stdin(Stdio::null())
            .output()
            .expect("cannot run openssl");
        assert!(
            out.status.success(),
            "openssl req failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Cert {
            cert,
            key,
            _dir: dir,
        }
    }

    /// A server certificate for 127.0.0.1 and localhost, as a TLS client that checks
    /// names (rustls/webpki) wants it: subjectAltName entries and CA:FALSE.
    pub fn for_loopback() -> Cert {
        Cert::generate(&[
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ])
    }
}

/// What the aiosmtpd server saved for one message.
#[derive(Debug, Clone)]
pub struct Saved {
    pub raw: Vec<u8>,
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    pub tls: bool,
    pub auth_mechanism: Option<String>,
    pub auth_user: Option<String>,
}

/// Options for [`Aiosmtpd::start`].
#[derive(Debug, Default)]
pub struct AiosmtpdOptions<'a> {
    pub starttls: Option<&'a Cert>,
    pub implicit: Option<&'a Cert>,
    pub require_starttls: bool,
    /// Accept exactly this user and password for AUTH.
    pub login: Option<(&'a str, &'a str)>,
}

/// `aiosmtpd_server.py`: aiosmtpd's `SMTP` protocol with a handler that saves every
/// message, on a port the kernel picked.
#[derive(Debug)]
pub struct Aiosmtpd {
    child: ChildGuard,
    port: u16,
    dir: tempfile::TempDir,
}

impl Aiosmtpd {
    pub fn start(options: &AiosmtpdOptions<'_>) -> Aiosmtpd {
        require_aiosmtpd();
        let dir = tempdir();
        let mut command = Command::new("python3");
        command
            .arg(support_file("aiosmtpd_server.py"))
            .arg("--dir")
            .arg(dir.path());
        if let Some(cert) = options.starttls {
            command.arg("--starttls").arg(&cert.cert).arg(&cert.key);
        }
        if let Some(cert) = options.implicit {
            command.arg("--implicit").arg(&cert.cert).arg(&cert.key);
        }
        if options.require_starttls {
            command.arg("--require-starttls");
        }
        if let Some((user, password)) = options.login {
            command.args(["--user", user, "--password", password]);
        }
        let (child, stdout, _stderr) = spawn_collected(&mut command, "python3 aiosmtpd_server.py");
        let port = stdout.expect_map(PROMPT, "where aiosmtpd_server.py listens", |line| {
            line.strip_prefix("listening on ")
                .and_then(|p| p.trim().parse().ok())
        });
        Aiosmtpd { child, port, dir }
    }

    pub fn server(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Every message saved so far, in arrival order.
    pub fn messages(&self) -> Vec<Saved> {
        let mut numbered = BTreeMap::new();
        for entry in std::fs::read_dir(self.dir.path()).expect("read the aiosmtpd directory") {
            let path = entry.expect("directory entry").path();
            if path.extension().is_some_and(|e| e == "json")
                && let Some(n) = path
                    .file_stem()
                    .and_then(|s| s.to_str()?.parse::<u32>().ok())
            {
                numbered.insert(n, path);
            }
        }
        numbered
            .into_values()
            .map(|json_path| {
                let json: Value =
                    serde_json::from_slice(&std::fs::read(&json_path).expect("read json"))
                        .expect("aiosmtpd_server.py wrote JSON");
                let raw = std::fs::read(json_path.with_extension("eml")).expect("read eml");
                Saved {
                    raw,
                    mail_from: json["mail_from"].as_str().unwrap_or_default().to_owned(),
                    rcpt_tos: json["rcpt_tos"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|r| r.as_str().map(str::to_owned))
                        .collect(),
                    tls: json["tls"].as_bool().unwrap_or(false),
                    auth_mechanism: opt_string(&json["auth_mechanism"]),
                    auth_user: opt_string(&json["auth_user"]),
                }
            })
            .collect()
    }

    /// The only message saved; panics if there is not exactly one.
    #[track_caller]
    pub fn only_message(&self) -> Saved {
        let mut all = self.messages();
        assert_eq!(
            all.len(),
            1,
            "expected one message saved by aiosmtpd, got {}",
            all.len()
        );
        all.remove(0)
    }
}

/// Starts a server that binds a port it was given; retries with another free port
/// when the process dies at once (the port was taken between the check and the bind).
fn start_on_free_port(what: &str, mut spawn: impl FnMut(u16) -> Child) -> (ChildGuard, u16) {
    for _ in 0..5 {
        let port = free_tcp_port();
        let mut child = ChildGuard::new(spawn(port), what);
        let deadline = Instant::now() + PROMPT;
        while Instant::now() < deadline && child.running() {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return (child, port);
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
    panic!("{what} did not start listening (five attempts)");
}

/// Postfix's `smtp-sink`: accepts everything, stores nothing.
#[derive(Debug)]
pub struct SmtpSink {
    child: ChildGuard,
    port: u16,
}

impl SmtpSink {
    /// `smtp-sink [-u nobody] OPTIONS 127.0.0.1:PORT 256` (`-u` only as root, where
    /// smtp-sink insists on dropping privileges).
    pub fn start(options: &[&str]) -> SmtpSink {
        let program = require_program("smtp-sink", "postfix");
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        let (child, port) = start_on_free_port("smtp-sink", |port| {
            let mut command = Command::new(&program);
            if root {
                command.args(["-u", "nobody"]);
            }
            command
                .args(options)
                .arg(format!("127.0.0.1:{port}"))
                .arg("256")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("cannot start smtp-sink")
        });
        SmtpSink { child, port }
    }

    pub fn server(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// Counts tmux sockets made by this test process, for unique names.
static TMUX_SESSIONS: AtomicUsize = AtomicUsize::new(0);

/// A detached tmux session on its own server socket (`tmux -L NAME`), so parallel
/// tests never share a tmux server. The server is killed when this is dropped.
#[derive(Debug)]
pub struct Tmux {
    socket: String,
}

impl Tmux {
    /// Runs `command` (a shell command line) in a new 120x40 session.
    pub fn start(command: &str) -> Tmux {
        require_program("tmux", "tmux");
        let socket = format!(
            "sokkel-send-{}-{}",
            std::process::id(),
            TMUX_SESSIONS.fetch_add(1, Ordering::SeqCst)
        );
        let tmux = Tmux { socket };
        tmux.run(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-x",
            "120",
            "-y",
            "40",
            "-s",
            "main",
            command,
        ]);
        tmux
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("cannot run tmux");
        assert!(
            out.status.success(),
            "tmux {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types `keys` (tmux key names such as `Enter`, `BSpace`, `C-d`, `Left`).
    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "main"];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    /// Types `text` literally.
    pub fn type_text(&self, text: &str) {
        self.run(&["send-keys", "-t", "main", "-l", text]);
    }

    /// Types `text`, waits until the terminal shows it, and presses Enter.
    #[track_caller]
    pub fn type_line(&self, text: &str) {
        self.type_text(text);
        self.enter_when_shown(text);
    }

    /// Waits until the terminal shows `text`, then presses Enter.
    #[track_caller]
    pub fn enter_when_shown(&self, text: &str) {
        self.wait_for(text);
        self.keys(&["Enter"]);
    }

    /// The cursor position: (column, row).
    pub fn cursor(&self) -> (u32, u32) {
        let out = self.run(&[
            "display-message",
            "-p",
            "-t",
            "main",
            "#{cursor_x} #{cursor_y}",
        ]);
        let mut numbers = out
            .split_whitespace()
            .map(|n| n.parse().expect("a cursor position"));
        (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0))
    }

    /// Waits until the cursor is at the start of a row below `row`: the program has
    /// taken the line just entered.
    #[track_caller]
    pub fn wait_for_new_line(&self, row: u32) {
        let deadline = Instant::now() + PROMPT;
        loop {
            let (x, y) = self.cursor();
            if x == 0 && y > row {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cursor did not move below row {row} within {PROMPT:?}; it shows:\n{}",
                self.screen()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the pane shows now, history included.
    pub fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "main", "-S", "-200"])
    }

    /// Waits until the screen holds `text`; panics with the screen otherwise.
    #[track_caller]
    pub fn wait_for(&self, text: &str) -> String {
        self.wait_for_count(text, 1)
    }

    /// Waits until `text` appears at least `count` times on the screen. Trailing
    /// spaces are not compared: capture-pane drops them.
    #[track_caller]
    pub fn wait_for_count(&self, text: &str, count: usize) -> String {
        let text = text.trim_end();
        let deadline = Instant::now() + PROMPT;
        loop {
            let screen = self.screen();
            if screen.matches(text).count() >= count {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "the terminal did not show {text:?} (x{count}) within {PROMPT:?}; it shows:\n{screen}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .arg("kill-server")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// `starttls_injector.py`: answers STARTTLS with `220` and an injected line in the
/// same write, then does a real TLS handshake and accepts one message.
#[derive(Debug)]
pub struct StarttlsInjector {
    child: ChildGuard,
    port: u16,
    /// Where the server writes the message it got, and its command log.
    pub out: PathBuf,
    _dir: tempfile::TempDir,
}

impl StarttlsInjector {
    pub fn start(cert: &Cert) -> StarttlsInjector {
        let dir = tempdir();
        let out = dir.path().join("log.json");
        let (child, stdout, _stderr) = spawn_collected(
            Command::new("python3")
                .arg(support_file("starttls_injector.py"))
                .arg(&cert.cert)
                .arg(&cert.key)
                .arg(&out),
            "python3 starttls_injector.py",
        );
        let port = stdout.expect_map(PROMPT, "where starttls_injector.py listens", |line| {
            line.strip_prefix("listening on ")
                .and_then(|p| p.trim().parse().ok())
        });
        StarttlsInjector {
            child,
            port,
            out,
            _dir: dir,
        }
    }

    pub fn server(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The server's log once it has finished the session.
    pub fn log(&mut self) -> Value {
        let status = self.child.wait_timeout(PROMPT);
        assert!(
            status.is_some_and(|s| s.success()),
            "starttls_injector.py did not finish cleanly: {status:?}"
        );
        serde_json::from_slice(&std::fs::read(&self.out).expect("read the injector log"))
            .expect("starttls_injector.py wrote JSON")
    }
}
