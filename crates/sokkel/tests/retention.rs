//! Retention through the real binary (issue #12): `mail serve --max` and
//! `--max-age` prune what SMTP delivers, in the background, while every
//! delivery still gets its 250.
//!
//! The helpers here are this file's own: a catcher on 127.0.0.1 port 0 whose
//! output lines are collected by threads, a raw SMTP session, and `mail list
//! --json` with a deadline. Every process is killed and reaped when its guard
//! drops, and every wait has a deadline.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

const SOKKEL: &str = env!("CARGO_BIN_EXE_sokkel");

/// How long anything that should happen at once on loopback may take.
const PROMPT: Duration = Duration::from_secs(10);

/// `sokkel` with no `SOKKEL_*` or `RUST_LOG` from the environment running the tests.
fn sokkel() -> Command {
    let mut command = Command::new(SOKKEL);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SOKKEL_") {
            command.env_remove(name);
        }
    }
    command.env_remove("RUST_LOG").stdin(Stdio::null());
    command
}

/// Runs `command` to its end, for at most 30 s; its status, stdout and stderr.
fn finish(command: &mut Command) -> (ExitStatus, String, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start sokkel");
    // Read while it runs, so that a full pipe cannot stop it.
    let read = |mut from: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut text = String::new();
            let _ = from.read_to_string(&mut text);
            text
        })
    };
    let stdout = read(Box::new(child.stdout.take().unwrap()));
    let stderr = read(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} still running after 30 s");
        }
        thread::sleep(Duration::from_millis(10));
    };
    (status, stdout.join().unwrap(), stderr.join().unwrap())
}

/// The lines a child printed so far, collected by a thread.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    fn collect(from: impl Read + Send + 'static) -> Lines {
        let lines = Lines::default();
        let sink = lines.clone();
        thread::spawn(move || {
            for line in BufReader::new(from).lines() {
                let Ok(line) = line else { return };
                sink.0.lock().unwrap().push(line);
            }
        });
        lines
    }

    fn snapshot(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// Waits up to [`PROMPT`] for a line starting with `prefix`; returns the rest.
    fn wait_for(&self, prefix: &str) -> Option<String> {
        let deadline = Instant::now() + PROMPT;
        while Instant::now() < deadline {
            if let Some(rest) = self
                .snapshot()
                .iter()
                .find_map(|line| line.strip_prefix(prefix))
            {
                return Some(rest.to_string());
            }
            thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

/// A running `sokkel mail serve`, killed and reaped when dropped.
struct Catcher {
    child: Child,
    stdout: Lines,
    stderr: Lines,
    smtp: SocketAddr,
    /// The `retention: ...` line it printed at start, after the prefix.
    retention: String,
    dir: TempDir,
}

impl Catcher {
    fn start(extra: &[&str]) -> Catcher {
        let dir = TempDir::new().unwrap();
        let mut child = sokkel()
            .args(["mail", "serve", "--smtp", "127.0.0.1:0", "--no-http"])
            .args(["--no-pop3", "--hostname", "test.local", "--db"])
            .arg(dir.path().join("mail.db"))
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start sokkel mail serve");
        let stdout = Lines::collect(child.stdout.take().unwrap());
        let stderr = Lines::collect(child.stderr.take().unwrap());
        let mut catcher = Catcher {
            child,
            stdout,
            stderr,
            smtp: "127.0.0.1:0".parse().unwrap(),
            retention: String::new(),
            dir,
        };
        let started = catcher
            .stdout
            .wait_for("listening on smtp ")
            .zip(catcher.stdout.wait_for("retention: "));
        let Some((smtp, retention)) = started else {
            panic!(
                "mail serve did not start within {PROMPT:?}\nstdout: {:?}\nstderr: {:?}",
                catcher.stdout.snapshot(),
                catcher.stderr.snapshot()
            );
        };
        catcher.smtp = smtp.parse().unwrap();
        catcher.retention = retention;
        catcher
    }

    /// `mail list --json`: every message, newest first, as (id, subject).
    fn list(&self) -> Vec<(u64, String)> {
        let (status, out, err) = finish(
            sokkel()
                .args(["mail", "list", "--json", "--limit", "100000", "--db"])
                .arg(self.dir.path().join("mail.db")),
        );
        assert!(status.success(), "mail list failed: {status}: {err}");
        let Ok(Value::Array(items)) = serde_json::from_str(&out) else {
            panic!("mail list --json printed {out}");
        };
        items
            .iter()
            .map(|m| {
                (
                    m["id"].as_u64().unwrap(),
                    m["subject"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// Polls `mail list` until `done` holds for it, for up to 10 s.
    fn wait_for_list(
        &self,
        what: &str,
        done: impl Fn(&[(u64, String)]) -> bool,
    ) -> Vec<(u64, String)> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let list = self.list();
            if done(&list) {
                return list;
            }
            assert!(
                Instant::now() < deadline,
                "not {what} within 10 s: {} messages left\nstderr: {:?}",
                list.len(),
                self.stderr.snapshot()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// The numbers in the log lines `pruned N messages <rest>`.
    fn pruned_logged(&self, rest: &str) -> u64 {
        self.stderr
            .snapshot()
            .iter()
            .filter_map(|line| {
                let (_, pruned) = line.split_once("pruned ")?;
                let (count, tail) = pruned.split_once(' ')?;
                tail.split_once(' ')
                    .filter(|(_, tail)| *tail == rest)
                    .and_then(|_| count.parse::<u64>().ok())
            })
            .sum()
    }
}

impl Drop for Catcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One SMTP session spoken in raw bytes, every read with a deadline.
struct Smtp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Smtp {
    fn open(addr: SocketAddr) -> Smtp {
        let stream = TcpStream::connect_timeout(&addr, PROMPT).unwrap();
        stream.set_read_timeout(Some(PROMPT)).unwrap();
        let writer = stream.try_clone().unwrap();
        let mut smtp = Smtp {
            reader: BufReader::new(stream),
            writer,
        };
        smtp.expect("220");
        smtp.command("EHLO client.test", "250");
        smtp
    }

    /// Reads one reply (every line of a multi-line one); panics unless it has `code`.
    fn expect(&mut self, code: &str) -> String {
        let mut reply = String::new();
        loop {
            let mut line = String::new();
            self.reader
                .read_line(&mut line)
                .expect("no reply within the deadline");
            assert!(!line.is_empty(), "the server closed the connection");
            reply.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                break;
            }
        }
        assert!(reply.starts_with(code), "expected {code}, got {reply:?}");
        reply
    }

    fn command(&mut self, line: &str, code: &str) -> String {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap();
        self.expect(code)
    }

    /// One message with `subject`; panics unless the server answers 250.
    fn send(&mut self, subject: &str) {
        self.command("MAIL FROM:<sender@example.com>", "250");
        self.command("RCPT TO:<rcpt@example.net>", "250");
        self.command("DATA", "354");
        let body = format!(
            "From: sender@example.com\r\nTo: rcpt@example.net\r\nSubject: {subject}\r\n\r\nHello.\r\n."
        );
        self.command(&body, "250");
    }
}

fn subjects(list: &[(u64, String)]) -> Vec<&str> {
    list.iter().map(|(_, subject)| subject.as_str()).collect()
}

#[test]
fn max_keeps_the_newest_messages_sent_over_smtp() {
    let catcher = Catcher::start(&["--max", "100"]);
    assert_eq!(catcher.retention, "keep the newest 100 messages");
    let mut smtp = Smtp::open(catcher.smtp);
    for n in 0..150 {
        smtp.send(&format!("message {n}"));
    }
    smtp.command("QUIT", "221");

    let list = catcher.wait_for_list("pruned to 100", |list| list.len() <= 100);
    let newest: Vec<String> = (50..150).rev().map(|n| format!("message {n}")).collect();
    assert_eq!(subjects(&list), newest, "the newest 100, newest first");
    // Logged once per run, not per batch; the runs add up to the 50.
    let deadline = Instant::now() + PROMPT;
    while catcher.pruned_logged("beyond the newest 100") < 50 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        catcher.pruned_logged("beyond the newest 100"),
        50,
        "{:?}",
        catcher.stderr.snapshot()
    );
}

#[test]
fn max_age_prunes_old_messages_while_new_ones_keep_arriving() {
    let catcher = Catcher::start(&["--max-age", "2s"]);
    assert_eq!(catcher.retention, "keep no message older than 2s");
    // Two sessions delivering side by side for 6 s: every message gets its
    // 250 (`send` checks), however many are pruned meanwhile.
    let started = Instant::now();
    let senders: Vec<_> = (0..2)
        .map(|session| {
            let addr = catcher.smtp;
            thread::spawn(move || {
                let mut smtp = Smtp::open(addr);
                let mut sent = 0;
                while started.elapsed() < Duration::from_secs(6) {
                    smtp.send(&format!("session {session} message {sent}"));
                    sent += 1;
                    thread::sleep(Duration::from_millis(50));
                }
                smtp.command("QUIT", "221");
                sent
            })
        })
        .collect();
    let sent: Vec<u32> = senders.into_iter().map(|s| s.join().unwrap()).collect();

    let list = catcher.list();
    for (session, sent) in sent.iter().enumerate() {
        let newest = format!("session {session} message {}", sent - 1);
        assert!(
            subjects(&list).contains(&newest.as_str()),
            "{newest:?}, under 2 s old, is kept"
        );
    }
    // The first messages were 6 s old when the stream ended: pruned while
    // the stream went on, or at the latest within seconds after it.
    let list = catcher.wait_for_list("pruned of the oldest messages", |list| {
        !subjects(list)
            .iter()
            .any(|s| s.ends_with(" message 0") || s.ends_with(" message 1"))
    });
    assert!(list.len() < (sent[0] + sent[1]) as usize);
    assert!(
        catcher.pruned_logged("older than 2s") > 0,
        "{:?}",
        catcher.stderr.snapshot()
    );
}

#[test]
fn retention_is_off_unless_asked_for() {
    let catcher = Catcher::start(&[]);
    assert_eq!(catcher.retention, "off");
    drop(catcher);
    // `0` is no limit, as in Mailpit.
    let catcher = Catcher::start(&["--max", "0", "--max-age", "0"]);
    assert_eq!(catcher.retention, "off");
}

#[test]
fn a_bad_limit_is_one_clear_line() {
    for (args, says) in [
        (&["--max-age", "7"][..], "needs a unit"),
        (&["--max-age", "7w"], "unknown unit"),
        (&["--max", "lots"], "not a number of messages"),
    ] {
        let (status, _, stderr) = finish(
            sokkel()
                .args(["mail", "serve", "--ephemeral", "--smtp", "127.0.0.1:0"])
                .args(["--no-http", "--no-pop3"])
                .args(args),
        );
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        let first = stderr.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("error: invalid value") && first.contains(says),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
