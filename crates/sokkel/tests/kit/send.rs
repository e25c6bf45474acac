//! The sending side's tests (`send`, `send_interop`): `sokkel mail send` as they run
//! it, and a one-thread SMTP server on 127.0.0.1 that follows a script and
//! misbehaves on cue, recording every byte it got.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::process::{Run, sokkel};
use super::smtp::find;

/// `sokkel mail send` to `server`, greeting as client.test, from me@x.test unless
/// `args` (which come after) say otherwise, with a 10 s SMTP timeout from the
/// environment so that a test can still pass `--timeout`.
pub fn mail_send(server: &str, args: &[&str]) -> Run {
    let mut all = vec!["mail", "send", "--server", server, "--ehlo", "client.test"];
    if !args.contains(&"--from") {
        all.extend_from_slice(&["--from", "me@x.test"]);
    }
    all.extend_from_slice(args);
    sokkel(all).env("SOKKEL_SMTP_TIMEOUT", "10s")
}

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
