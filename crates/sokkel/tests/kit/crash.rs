//! The crash tests' senders: threads that deliver messages as fast as the catcher
//! takes them and remember every one it acknowledged, and the checks that every
//! acknowledged message survived, byte for byte, in a store that is still sound.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::catcher::{list_json, raw};
use super::process::{PROMPT, python3};
use super::smtp::{dot_stuff, show};

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

/// Sender threads that each deliver messages over one connection, recording every
/// acknowledged one, until the server refuses one or goes away, or their count or
/// time runs out.
#[derive(Debug)]
pub struct Senders {
    acked: Arc<Mutex<Vec<Acked>>>,
    threads: Vec<thread::JoinHandle<SenderEnd>>,
}

impl Senders {
    /// Starts `senders` threads of at most `max_per_sender` messages and `limit`.
    pub fn start(
        addr: SocketAddr,
        senders: usize,
        max_per_sender: usize,
        limit: Duration,
    ) -> Senders {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let threads = (0..senders)
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
            .collect();
        Senders { acked, threads }
    }

    /// How many messages are acknowledged so far.
    pub fn acked_count(&self) -> usize {
        self.acked.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Waits until `count` messages are acknowledged or `within` has passed.
    pub fn wait_for(&self, count: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self.acked_count() < count && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Joins the threads (each ends within [`PROMPT`] of the server going away): how
    /// each ended, and every acknowledged message.
    pub fn join(self) -> (Vec<SenderEnd>, Vec<Acked>) {
        let ends = self
            .threads
            .into_iter()
            .map(|sender| sender.join().expect("a sender thread panicked"))
            .collect();
        let acked = self.acked.lock().unwrap_or_else(|e| e.into_inner()).clone();
        (ends, acked)
    }
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
pub fn crash_message(sender: usize, n: usize) -> Vec<u8> {
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
    let out = python3(program, &[&db.display().to_string()])
        .run()
        .assert_success("python3 sqlite3 integrity_check");
    out.stdout_text().trim().to_owned()
}

/// Checks that every acknowledged message is in the store at `db` under its id with
/// exactly the bytes that were sent. Reads them with a few threads at once.
pub fn assert_all_kept(db: &Path, acked: &[Acked]) {
    let listed = list_json(db, 1_000_000);
    let stored: HashMap<u64, &Value> = listed
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
