//! Helpers shared by the echo integration tests: start `sokkel` (and peers nobody here
//! wrote), learn their ports from what they print, speak raw bytes to them, and make
//! sure every process started is killed and reaped, even when a test panics.
//!
//! Every wait here has a deadline, so a broken binary fails a test instead of hanging it.

// Each test crate (`echo`, `echo_interop`) uses a different part of this module.
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The binary under test, built by cargo for this test run.
pub const SOKKEL: &str = env!("CARGO_BIN_EXE_sokkel");

/// How long a test waits for anything that should happen at once on loopback.
pub const PROMPT: Duration = Duration::from_secs(5);

/// A child process that is killed and reaped when dropped, so that no test leaves a
/// server behind, whether it passes or panics.
#[derive(Debug)]
pub struct ChildGuard {
    child: Child,
    what: String,
}

impl ChildGuard {
    pub fn new(child: Child, what: impl Into<String>) -> Self {
        ChildGuard {
            child,
            what: what.into(),
        }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if the process has exited by `timeout`, else `None` (the
    /// process is left running for `Drop` to kill).
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
                Ok(None) => return None,
                Err(err) => panic!("cannot wait for {}: {err}", self.what),
            }
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Sends SIGTERM to a process, as `kill -TERM` or a service manager would.
pub fn send_sigterm(pid: u32) {
    let status = Command::new("sh")
        .args(["-c", "kill -TERM \"$1\"", "sh", &pid.to_string()])
        .status()
        .expect("cannot run sh to send SIGTERM");
    assert!(status.success(), "kill -TERM {pid} failed: {status}");
}

/// The lines a child writes to one of its pipes, collected by a thread as they come so
/// a test can wait for a particular one.
#[derive(Debug, Clone, Default)]
pub struct Lines {
    shared: Arc<(Mutex<LinesState>, Condvar)>,
}

#[derive(Debug, Default)]
struct LinesState {
    lines: Vec<String>,
    closed: bool,
}

impl Lines {
    /// Starts a thread that reads `pipe` line by line until it closes.
    pub fn collect(pipe: impl Read + Send + 'static) -> Lines {
        let lines = Lines::default();
        let sink = lines.clone();
        thread::spawn(move || {
            let mut reader = BufReader::new(pipe);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                let n = reader.read_until(b'\n', &mut buf).unwrap_or(0);
                let (lock, changed) = &*sink.shared;
                let mut state = lock.lock().unwrap_or_else(|e| e.into_inner());
                if n == 0 {
                    state.closed = true;
                    changed.notify_all();
                    return;
                }
                if buf.last() == Some(&b'\n') {
                    buf.pop();
                }
                state.lines.push(String::from_utf8_lossy(&buf).into_owned());
                changed.notify_all();
            }
        });
        lines
    }

    /// Every line so far.
    pub fn snapshot(&self) -> Vec<String> {
        let (lock, _) = &*self.shared;
        lock.lock().unwrap_or_else(|e| e.into_inner()).lines.clone()
    }

    /// Everything so far, one line each, for failure messages.
    pub fn text(&self) -> String {
        self.snapshot().join("\n")
    }

    /// Waits until `done` holds for the lines so far; returns them. `None` on timeout.
    pub fn wait_until(
        &self,
        timeout: Duration,
        done: impl Fn(&[String]) -> bool,
    ) -> Option<Vec<String>> {
        let deadline = Instant::now() + timeout;
        let (lock, changed) = &*self.shared;
        let mut state = lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if done(&state.lines) {
                return Some(state.lines.clone());
            }
            let now = Instant::now();
            if state.closed || now >= deadline {
                return None;
            }
            state = changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Waits for a line equal to `want`; panics, showing every line, if none comes.
    pub fn expect_line(&self, want: &str) {
        if self
            .wait_until(PROMPT, |lines| lines.iter().any(|l| l == want))
            .is_none()
        {
            panic!("no line {want:?} within {PROMPT:?}; got:\n{}", self.text());
        }
    }

    /// Waits for a line for which `matches` holds and returns it; panics if none comes.
    pub fn expect_line_where(&self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        match self.wait_until(PROMPT, |lines| lines.iter().any(|l| matches(l))) {
            Some(lines) => lines.into_iter().find(|l| matches(l)).unwrap_or_default(),
            None => panic!("no line {what} within {PROMPT:?}; got:\n{}", self.text()),
        }
    }
}

/// A running `sokkel echo serve`, with the addresses it announced.
#[derive(Debug)]
pub struct Server {
    child: ChildGuard,
    pub stdout: Lines,
    pub stderr: Lines,
    pub tcp: Vec<SocketAddr>,
    pub udp: Vec<SocketAddr>,
}

impl Server {
    /// Starts `sokkel echo serve ARGS` and waits until it has printed a `listening on`
    /// line for every socket it should open. Give `--listen` with port 0.
    pub fn start(args: &[&str]) -> Server {
        let expected = expected_listen_lines(args);
        let mut command = sokkel_command();
        command
            .args(["echo", "serve"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("cannot start sokkel echo serve");
        let stdout = Lines::collect(child.stdout.take().expect("stdout is piped"));
        let stderr = Lines::collect(child.stderr.take().expect("stderr is piped"));
        let child = ChildGuard::new(child, format!("sokkel echo serve {}", args.join(" ")));
        let announced = stdout.wait_until(PROMPT, |lines| {
            lines
                .iter()
                .filter(|l| l.starts_with("listening on "))
                .count()
                >= expected
        });
        let Some(lines) = announced else {
            panic!(
                "sokkel echo serve {} did not print {expected} `listening on` lines\nstdout:\n{}\nstderr:\n{}",
                args.join(" "),
                stdout.text(),
                stderr.text()
            );
        };
        let (mut tcp, mut udp) = (Vec::new(), Vec::new());
        for line in lines.iter().filter_map(|l| l.strip_prefix("listening on ")) {
            let (transport, addr) = line
                .split_once(' ')
                .unwrap_or_else(|| panic!("cannot parse listen line {line:?}"));
            let addr: SocketAddr = addr
                .parse()
                .unwrap_or_else(|e| panic!("bad address in listen line {line:?}: {e}"));
            match transport {
                "tcp" => tcp.push(addr),
                "udp" => udp.push(addr),
                other => panic!("unknown transport {other:?} in {line:?}"),
            }
        }
        Server {
            child,
            stdout,
            stderr,
            tcp,
            udp,
        }
    }

    /// The first TCP address announced.
    pub fn tcp_addr(&self) -> SocketAddr {
        *self.tcp.first().expect("the server listens on TCP")
    }

    /// The first UDP address announced.
    pub fn udp_addr(&self) -> SocketAddr {
        *self.udp.first().expect("the server listens on UDP")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the server to exit; panics with its output if it does not in time.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        match self.child.wait_timeout(timeout) {
            Some(status) => status,
            None => panic!(
                "the server did not exit within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                self.stdout.text(),
                self.stderr.text()
            ),
        }
    }

    /// The lines on stdout about messages from `peer` over `transport`, without the
    /// `tcp PEER ` prefix: `5 bytes: hello`.
    pub fn messages_from(&self, transport: &str, peer: SocketAddr) -> Vec<String> {
        message_lines(&self.stdout.snapshot(), transport, peer)
    }

    /// Waits for the line saying how a TCP peer's connection ended and returns it
    /// without the `tcp PEER ` prefix: `left after 0.01 s, sent 6 bytes in 1 message`.
    pub fn expect_end_of(&self, peer: SocketAddr) -> String {
        let prefix = format!("tcp {peer} ");
        let line = self
            .stdout
            .expect_line_where(&format!("ending {peer}"), |l| {
                l.strip_prefix(&prefix).is_some_and(is_ending)
            });
        line[prefix.len()..].to_owned()
    }
}

fn is_ending(rest: &str) -> bool {
    ["left after ", "was closed (", "was disconnected ("]
        .iter()
        .any(|start| rest.starts_with(start))
}

/// The message lines (`N bytes: DATA`) for `peer` among `lines`, prefix removed.
pub fn message_lines(lines: &[String], transport: &str, peer: SocketAddr) -> Vec<String> {
    let prefix = format!("{transport} {peer} ");
    lines
        .iter()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter(|rest| {
            let (count, after) = rest.split_once(' ').unwrap_or_default();
            !count.is_empty()
                && count.bytes().all(|b| b.is_ascii_digit())
                && (after.starts_with("bytes: ") || after.starts_with("byte: "))
        })
        .map(str::to_owned)
        .collect()
}

/// How many `listening on` lines `serve ARGS` prints: one per address and transport.
fn expected_listen_lines(args: &[&str]) -> usize {
    let mut addresses = 0;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if let Some(value) = arg.strip_prefix("--listen=") {
            addresses += value.split(',').count();
        } else if *arg == "--listen" {
            addresses += iter.next().map_or(0, |v| v.split(',').count());
        }
    }
    let transports = if args.contains(&"--udp") { 2 } else { 1 };
    addresses.max(1) * transports
}

/// A `sokkel` command with no `SOKKEL_*` or `RUST_LOG` settings leaking in from the
/// environment of whoever runs the tests.
pub fn sokkel_command() -> Command {
    let mut command = Command::new(SOKKEL);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SOKKEL_") {
            command.env_remove(name);
        }
    }
    command.env_remove("RUST_LOG");
    command
}

/// What a finished `sokkel` run printed.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Finished {
    /// Stdout and stderr, for assertion messages.
    pub fn output(&self) -> String {
        format!(
            "exit: {}\nstdout:\n{}\nstderr:\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs `sokkel ARGS` with `stdin` piped in and waits for it to exit; kills it and
/// panics if it takes longer than `timeout`.
pub fn run_sokkel(args: &[&str], stdin: &[u8], timeout: Duration) -> Finished {
    let mut command = sokkel_command();
    command.args(args);
    run(command, stdin, timeout)
}

/// Runs `command` with `stdin` piped in and waits for it to exit; kills it and panics
/// if it takes longer than `timeout`.
pub fn run(mut command: Command, stdin: &[u8], timeout: Duration) -> Finished {
    let what = format!("{command:?}");
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let mut input = child.stdin.take().expect("stdin is piped");
    let stdin = stdin.to_vec();
    // The child may exit without reading everything; a broken pipe here is fine.
    let writer = thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let stdout = read_all_in_background(child.stdout.take().expect("stdout is piped"));
    let stderr = read_all_in_background(child.stderr.take().expect("stderr is piped"));
    let mut guard = ChildGuard::new(child, what.clone());
    let status = guard.wait_timeout(timeout);
    let elapsed = started.elapsed();
    drop(guard);
    let _ = writer.join();
    let stdout = String::from_utf8_lossy(&stdout.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&stderr.join().unwrap_or_default()).into_owned();
    match status {
        Some(status) => Finished {
            status,
            stdout,
            stderr,
            elapsed,
        },
        None => {
            panic!("{what} did not finish within {timeout:?}\nstdout:\n{stdout}\nstderr:\n{stderr}")
        }
    }
}

fn read_all_in_background(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut out = Vec::new();
        let _ = pipe.read_to_end(&mut out);
        out
    })
}

/// Connects with Nagle off and read/write timeouts, so no read in a test blocks forever.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, PROMPT)
        .unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"));
    stream.set_nodelay(true).expect("TCP_NODELAY");
    stream.set_read_timeout(Some(PROMPT)).expect("read timeout");
    stream
        .set_write_timeout(Some(PROMPT))
        .expect("write timeout");
    stream
}

/// Reads exactly `n` bytes, or panics saying what did arrive.
pub fn read_exactly(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    let mut got = 0;
    while got < n {
        match stream.read(&mut buf[got..]) {
            Ok(0) => panic!(
                "connection closed after {got} of {n} bytes: {:?}",
                String::from_utf8_lossy(&buf[..got])
            ),
            Ok(k) => got += k,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => panic!(
                "read failed after {got} of {n} bytes ({err}): {:?}",
                String::from_utf8_lossy(&buf[..got])
            ),
        }
    }
    buf
}

/// Sends `data` and checks that exactly `data` comes back.
pub fn assert_echo(stream: &mut TcpStream, data: &[u8]) {
    stream.write_all(data).expect("send");
    let echo = read_exactly(stream, data.len());
    assert_eq!(
        String::from_utf8_lossy(&echo),
        String::from_utf8_lossy(data),
        "the echo differs from what was sent"
    );
    assert_eq!(echo, data, "the echo differs from what was sent");
}

/// How a connection ended, seen from the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Closed {
    /// An orderly close (FIN) after these bytes.
    Eof(Vec<u8>),
    /// A reset after these bytes.
    Reset(Vec<u8>),
}

/// Reads until the peer closes, within `within`; panics if it does not close in time.
pub fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Closed {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            panic!(
                "the connection was not closed within {within:?}; received {:?}",
                String::from_utf8_lossy(&got)
            );
        }
        stream.set_read_timeout(Some(left)).expect("read timeout");
        match stream.read(&mut buf) {
            Ok(0) => return Closed::Eof(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
                ) =>
            {
                return Closed::Reset(got);
            }
            Err(err) if is_timeout(&err) => {}
            Err(err) => panic!("read failed: {err}"),
        }
    }
}

/// Checks that nothing arrives on `stream` for `quiet`.
pub fn assert_nothing_arrives(stream: &mut TcpStream, quiet: Duration, why: &str) {
    stream.set_read_timeout(Some(quiet)).expect("read timeout");
    let mut buf = [0u8; 256];
    match stream.read(&mut buf) {
        Err(err) if is_timeout(&err) => {}
        Ok(n) => panic!(
            "{why}, but {n} bytes arrived: {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(err) => panic!("{why}, but the read failed: {err}"),
    }
    stream.set_read_timeout(Some(PROMPT)).expect("read timeout");
}

pub fn is_timeout(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Half-closes our side, as a client that is done sending does.
pub fn finish_sending(stream: &TcpStream) {
    stream.shutdown(Shutdown::Write).expect("shutdown(SHUT_WR)");
}

/// A UDP socket for talking to `server`, with a read timeout.
pub fn udp_socket_for(server: SocketAddr) -> UdpSocket {
    let local: SocketAddr = if server.is_ipv6() {
        "[::1]:0".parse().unwrap()
    } else {
        "127.0.0.1:0".parse().unwrap()
    };
    let socket = UdpSocket::bind(local).expect("bind a UDP socket");
    socket.set_read_timeout(Some(PROMPT)).expect("read timeout");
    socket
}

/// A TCP port nothing listens on right now (bound, read and released). For programs
/// that cannot be told to pick their own port.
pub fn free_tcp_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// A UDP port nothing is bound to right now.
pub fn free_udp_port() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    socket.local_addr().expect("local address").port()
}

/// Connects until something accepts on `addr`; panics if nothing does within `timeout`.
pub fn wait_until_listening(addr: SocketAddr, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            Ok(_) => return,
            Err(err) if Instant::now() >= deadline => {
                panic!("nothing listens on {addr} after {timeout:?}: {err}")
            }
            Err(_) => thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Fails the test, with what to do, when a program a test needs is not installed.
pub fn require_program(name: &str, install: &str) {
    let found = Command::new("sh")
        .args(["-c", "command -v \"$1\"", "sh", name])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(found, "{name} is not installed; {install}");
}

/// A program nobody here wrote (ncat, socat) running as an echo peer. Such servers
/// fork a child per connection (ncat's UDP children even outlive their parent), so the
/// peer runs in a process group of its own and the whole group is killed on drop.
#[derive(Debug)]
pub struct Peer {
    child: ChildGuard,
    pub stderr: Lines,
}

impl Peer {
    /// Starts `program ARGS` with stdout discarded and stderr kept for failure messages.
    pub fn start(program: &str, args: &[&str]) -> Peer {
        use std::os::unix::process::CommandExt;
        let what = format!("{program} {}", args.join(" "));
        let mut child = Command::new(program)
            .args(args)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let stderr = Lines::collect(child.stderr.take().expect("stderr is piped"));
        Peer {
            child: ChildGuard::new(child, what),
            stderr,
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // The group's id is the leader's pid; the leader is not reaped yet (ChildGuard
        // does that after this), so the id cannot have been reused.
        let _ = Command::new("sh")
            .args([
                "-c",
                "kill -KILL -\"$1\"",
                "sh",
                &self.child.id().to_string(),
            ])
            .stderr(Stdio::null())
            .status();
    }
}
