//! Helpers shared by the echo integration tests: start `sokkel` (and peers nobody here
//! wrote), learn their ports from what they print, speak raw bytes to them, and make
//! sure every process started is killed and reaped, even when a test panics.
//!
//! Every wait here has a deadline, so a broken binary fails a test instead of hanging it.
//! The process plumbing (child guards, collected output lines, `run`) is in `common`.

// Each test crate (`echo`, `echo_interop`) uses a different part of this module.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::{ChildGuard, Lines, PROMPT, sokkel_command, spawn_collected};

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
        let (child, stdout, stderr) = spawn_collected(
            sokkel_command().args(["echo", "serve"]).args(args),
            format!("sokkel echo serve {}", args.join(" ")),
        );
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
