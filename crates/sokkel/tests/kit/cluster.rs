//! Several catchers on one PostgreSQL database behind HAProxy, as the README's
//! recipe runs them: the balancer ([`Haproxy`], `mode tcp`, `send-proxy-v2`,
//! health checks on each node's `/readyz`), PROXY protocol headers written by
//! hand ([`proxy_v2`]), a node's live events ([`EventSocket`]) and senders that
//! retry what was refused for the moment ([`RetryingSenders`]).
//!
//! The database itself comes from the store's test cluster, which each test
//! file includes (`#[path = "../../store/tests/pg/mod.rs"] mod pg;`).

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use super::catcher::Catcher;
pub use super::crash::Acked;
use super::net::free_tcp_port;
use super::process::{ChildGuard, Lines, PROMPT, require_program, spawn_collected, tempdir};
use super::smtp::dot_stuff;

/// The address HAProxy connects to the nodes from: not the clients' 127.0.0.1,
/// so that a node that stored the balancer's address instead of the client's
/// is caught.
pub const BALANCER_SOURCE: &str = "127.0.0.2";

/// HAProxy in front of the SMTP ports of some nodes, with its admin socket for
/// the servers' states; killed when dropped.
#[derive(Debug)]
pub struct Haproxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    process: ChildGuard,
    stderr: Lines,
    dir: TempDir,
}

impl Haproxy {
    /// The README's configuration for `nodes` (each serving SMTP and HTTP with
    /// `--proxy-protocol`), checks every 300 ms; waits until every node is UP.
    pub fn start(nodes: &[&Catcher]) -> Haproxy {
        let haproxy = require_program("haproxy", "haproxy");
        let dir = tempdir();
        let port = free_tcp_port();
        let servers: String = nodes
            .iter()
            .enumerate()
            .map(|(n, node)| {
                format!(
                    "    server n{} {} check port {}\n",
                    n + 1,
                    node.addr(),
                    node.http().port()
                )
            })
            .collect();
        let config = format!(
            "global\n    maxconn 2000\n    stats socket {dir}/admin.sock mode 600 level admin\n\n\
             defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 60s\n    \
             timeout server 60s\n    timeout check 2s\n\n\
             frontend smtp\n    bind 127.0.0.1:{port}\n    default_backend sokkel_smtp\n\n\
             backend sokkel_smtp\n    balance roundrobin\n    option httpchk GET /readyz\n    \
             default-server send-proxy-v2 inter 300ms fall 2 rise 2 source {BALANCER_SOURCE}\n\
             {servers}",
            dir = dir.path().display(),
        );
        let file = dir.path().join("haproxy.cfg");
        std::fs::write(&file, &config).expect("write haproxy.cfg");
        let check = Command::new(&haproxy)
            .args(["-c", "-q", "-f"])
            .arg(&file)
            .output()
            .expect("run haproxy -c");
        assert!(
            check.status.success(),
            "haproxy refused its configuration:\n{config}\n{}",
            String::from_utf8_lossy(&check.stderr)
        );
        let (process, _stdout, stderr) = spawn_collected(
            Command::new(&haproxy).args(["-db", "-f"]).arg(&file),
            "haproxy",
        );
        let haproxy = Haproxy {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            process,
            stderr,
            dir,
        };
        for n in 1..=nodes.len() {
            haproxy.wait_for_state(&format!("n{n}"), "UP", Duration::from_secs(20));
        }
        haproxy
    }

    /// `(server, status)` of each node, from `show stat` on the admin socket.
    pub fn states(&self) -> Vec<(String, String)> {
        let socket: PathBuf = self.dir.path().join("admin.sock");
        let Ok(mut stream) = UnixStream::connect(&socket) else {
            return Vec::new();
        };
        stream.set_read_timeout(Some(PROMPT)).unwrap();
        stream.write_all(b"show stat\n").unwrap();
        let mut csv = String::new();
        let _ = stream.read_to_string(&mut csv);
        let mut lines = csv.lines();
        let Some(header) = lines.next() else {
            return Vec::new();
        };
        let columns: Vec<&str> = header.trim_start_matches("# ").split(',').collect();
        let column = |name: &str| columns.iter().position(|c| *c == name).unwrap();
        let (proxy, server, status) = (column("pxname"), column("svname"), column("status"));
        lines
            .map(|line| line.split(',').collect::<Vec<_>>())
            .filter(|row| row.len() > status && row[proxy] == "sokkel_smtp")
            .filter(|row| row[server] != "BACKEND")
            .map(|row| (row[server].to_string(), row[status].to_string()))
            .collect()
    }

    /// Waits until HAProxy's check says `status` (`UP`, `DOWN`) for `server`.
    #[track_caller]
    pub fn wait_for_state(&self, server: &str, status: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let states = self.states();
            if states
                .iter()
                .any(|(s, st)| s == server && st.starts_with(status))
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "haproxy did not see {server} {status} within {within:?}: {states:?}\n{}",
                self.stderr.text()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.process.id()
    }
}

/// A PROXY protocol v2 header, as HAProxy's `send-proxy-v2` writes it, for a
/// TCP connection from `source` to `destination` (both IPv4).
pub fn proxy_v2(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let (SocketAddr::V4(source), SocketAddr::V4(destination)) = (source, destination) else {
        panic!("proxy_v2 takes IPv4 addresses");
    };
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.extend_from_slice(&[0x21, 0x11, 0, 12]);
    header.extend_from_slice(&source.ip().octets());
    header.extend_from_slice(&destination.ip().octets());
    header.extend_from_slice(&source.port().to_be_bytes());
    header.extend_from_slice(&destination.port().to_be_bytes());
    header
}

/// A node's `/api/events` WebSocket, read frame by frame with deadlines.
#[derive(Debug)]
pub struct EventSocket {
    socket: tungstenite::WebSocket<TcpStream>,
}

impl EventSocket {
    /// Connects to `/api/events` at `http`.
    pub fn connect(http: SocketAddr) -> EventSocket {
        let stream = TcpStream::connect_timeout(&http, PROMPT).expect("connect to the web port");
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let (socket, _) = tungstenite::client(format!("ws://{http}/api/events"), stream)
            .expect("the WebSocket handshake");
        EventSocket { socket }
    }

    /// The first frame for which `wanted` holds, within `within`; panics,
    /// listing the frames seen, if none comes.
    #[track_caller]
    pub fn wait_for(
        &mut self,
        what: &str,
        within: Duration,
        wanted: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            match self.socket.read() {
                Ok(tungstenite::Message::Text(text)) => {
                    let frame: Value = serde_json::from_str(&text).expect("a JSON frame");
                    if wanted(&frame) {
                        return frame;
                    }
                    seen.push(frame["Type"].to_string());
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(err))
                    if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(err) => panic!("the WebSocket failed waiting for {what}: {err}"),
            }
        }
        panic!("no {what} frame within {within:?}; saw {seen:?}");
    }
}

/// What the senders met on the way: answers 4xx, connections that failed or
/// closed, and the first permanent (5xx) refusal if any.
#[derive(Debug, Default, Clone)]
pub struct Troubles {
    pub transient: u64,
    pub broken: u64,
    pub permanent: Option<String>,
}

/// Sender threads that each deliver `count` distinct messages, as a patient
/// client does: a 4xx or a lost connection means "try that message again"
/// (reconnecting when needed), until it gets a 250 or the time runs out.
#[derive(Debug)]
pub struct RetryingSenders {
    acked: Arc<Mutex<Vec<Acked>>>,
    troubles: Arc<Mutex<Troubles>>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl RetryingSenders {
    /// Starts `senders` threads of `count` messages each, to `addr`, all
    /// done by `limit` at the latest.
    pub fn start(
        addr: SocketAddr,
        senders: usize,
        count: usize,
        limit: Duration,
    ) -> RetryingSenders {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let troubles = Arc::new(Mutex::new(Troubles::default()));
        let deadline = Instant::now() + limit;
        let threads = (0..senders)
            .map(|sender| {
                let (acked, troubles) = (acked.clone(), troubles.clone());
                thread::spawn(move || {
                    let mut connection: Option<Connection> = None;
                    for n in 0..count {
                        let content = numbered_message(sender, n);
                        loop {
                            if Instant::now() >= deadline {
                                return;
                            }
                            let attempt = match connection.as_mut() {
                                Some(open) => open.deliver(&content),
                                None => match Connection::open(addr) {
                                    Ok(open) => connection.insert(open).deliver(&content),
                                    Err(err) => Err(Outcome::Broken(err.to_string())),
                                },
                            };
                            let mut trouble = troubles.lock().unwrap();
                            match attempt {
                                Ok(id) => {
                                    drop(trouble);
                                    acked.lock().unwrap().push(Acked { id, content });
                                    break;
                                }
                                Err(Outcome::Transient(_)) => trouble.transient += 1,
                                Err(Outcome::Broken(_)) => {
                                    trouble.broken += 1;
                                    connection = None;
                                }
                                Err(Outcome::Permanent(reply)) => {
                                    trouble.permanent.get_or_insert(reply);
                                    return;
                                }
                            }
                            drop(trouble);
                            thread::sleep(Duration::from_millis(100));
                        }
                    }
                    if let Some(mut open) = connection {
                        let _ = open.stream.write_all(b"QUIT\r\n");
                    }
                })
            })
            .collect();
        RetryingSenders {
            acked,
            troubles,
            threads,
        }
    }

    /// How many messages have a 250 so far.
    pub fn acked_count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// What went wrong so far.
    pub fn troubles(&self) -> Troubles {
        self.troubles.lock().unwrap().clone()
    }

    /// Waits until `count` messages have a 250, or `within` has passed.
    pub fn wait_for(&self, count: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self.acked_count() < count && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for every thread (each stops by its deadline); every message
    /// acknowledged, and what went wrong on the way.
    pub fn join(self) -> (Vec<Acked>, Troubles) {
        for thread in self.threads {
            thread.join().expect("a sender thread panicked");
        }
        let acked = self.acked.lock().unwrap().clone();
        let troubles = self.troubles.lock().unwrap().clone();
        (acked, troubles)
    }
}

/// How one delivery attempt failed.
#[derive(Debug)]
enum Outcome {
    Transient(String),
    Permanent(String),
    Broken(String),
}

/// One SMTP connection of a [`RetryingSenders`] thread, after its EHLO.
struct Connection {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Connection {
    fn open(addr: SocketAddr) -> std::io::Result<Connection> {
        let stream = TcpStream::connect_timeout(&addr, PROMPT)?;
        stream.set_read_timeout(Some(Duration::from_secs(15)))?;
        stream.set_write_timeout(Some(PROMPT))?;
        let reader = BufReader::new(stream.try_clone()?);
        let mut connection = Connection { stream, reader };
        let greeting = connection.reply()?;
        if !greeting.starts_with("220") {
            return Err(std::io::Error::other(greeting));
        }
        connection.stream.write_all(b"EHLO retry.test\r\n")?;
        let ehlo = connection.reply()?;
        if !ehlo.starts_with("250") {
            return Err(std::io::Error::other(ehlo));
        }
        Ok(connection)
    }

    /// The last line of the next reply.
    fn reply(&mut self) -> std::io::Result<String> {
        let mut line = String::new();
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(std::io::Error::new(ErrorKind::UnexpectedEof, "closed"));
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(line.trim_end().to_owned());
            }
        }
    }

    /// MAIL, RCPT, DATA and the message, one step at a time; the id in the
    /// final 250.
    fn deliver(&mut self, content: &[u8]) -> Result<u64, Outcome> {
        let broken = |err: std::io::Error| Outcome::Broken(err.to_string());
        let refused = |reply: String| {
            if reply.starts_with('4') {
                Outcome::Transient(reply)
            } else {
                Outcome::Permanent(reply)
            }
        };
        for (command, want) in [
            (&b"RSET\r\n"[..], "250"),
            (b"MAIL FROM:<s@retry.test>\r\n", "250"),
            (b"RCPT TO:<t@retry.test>\r\n", "250"),
            (b"DATA\r\n", "354"),
        ] {
            self.stream.write_all(command).map_err(broken)?;
            let reply = self.reply().map_err(broken)?;
            if !reply.starts_with(want) {
                return Err(refused(reply));
            }
        }
        let mut wire = dot_stuff(content);
        wire.extend_from_slice(b".\r\n");
        self.stream.write_all(&wire).map_err(broken)?;
        let reply = self.reply().map_err(broken)?;
        match reply
            .strip_prefix("250 2.0.0 Ok: queued as ")
            .and_then(|id| id.parse().ok())
        {
            Some(id) => Ok(id),
            None => Err(refused(reply)),
        }
    }
}

/// Message `n` of sender `sender`: unique Subject and Message-ID, a few
/// hundred bytes to a few KiB, with a line that starts with a dot.
pub fn numbered_message(sender: usize, n: usize) -> Vec<u8> {
    let mut content = format!(
        "From: s{sender}@retry.test\r\nTo: t@retry.test\r\nSubject: retry {sender}-{n}\r\n\
         Message-ID: <{sender}.{n}@retry.test>\r\n\r\n.leading dot {sender}-{n}\r\n"
    )
    .into_bytes();
    for i in 0..(sender * 7 + n * 13) % 60 {
        content.extend_from_slice(format!("{sender:02}-{n:05}-{i:03} filler text\r\n").as_bytes());
    }
    content
}

/// Checks that every acknowledged message is readable through the REST API
/// at `http`, byte for byte.
#[track_caller]
pub fn assert_all_readable(http: SocketAddr, acked: &[Acked]) {
    for message in acked {
        let raw = super::http::get(http, &format!("/api/v1/message/{}/raw", message.id));
        assert_eq!(
            raw.status, 200,
            "message {} got a 250 but {http} does not have it",
            message.id
        );
        assert!(
            raw.body == message.content,
            "message {} at {http} is not what was sent",
            message.id
        );
    }
}
