//! `sokkel echo serve` as a test starts it: on port 0, its addresses learnt from the
//! `listening on` lines it prints, killed and reaped when dropped; and what a test
//! checks against it (an exact echo, the lines it prints about each peer).

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::process::ExitStatus;
use std::time::Duration;

use super::net::read_exactly;
use super::process::{ChildGuard, Lines, PROMPT, sokkel_command, spawn_collected};

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
