//! sokkel against echo programs nobody here wrote: ncat and socat, as servers for
//! `sokkel echo client` and `sokkel echo bench`, and as clients of `sokkel echo serve`.
//!
//! These need ncat and socat installed, so they are ignored by a plain `cargo test`;
//! `.ci/run` installs both and runs `cargo test -- --ignored`. A missing program fails
//! the test, it never skips it.

mod kit;

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use kit::echo::Server;
use kit::net::{free_tcp_port, free_udp_port, wait_until_listening};
use kit::peers::Peer;
use kit::process::{require_program, run};
use kit::sokkel;
use serde_json::Value;

const RUN_LIMIT: Duration = Duration::from_secs(30);

/// Which reference echo server to start.
#[derive(Debug, Clone, Copy)]
enum Reference {
    Ncat,
    Socat,
}

/// Starts the reference echo server on a free 127.0.0.1 port and waits until it answers.
fn start_reference(reference: Reference, udp: bool) -> (Peer, SocketAddr) {
    let program = match reference {
        Reference::Ncat => "ncat",
        Reference::Socat => "socat",
    };
    require_program(program, program);
    let port = if udp {
        free_udp_port()
    } else {
        free_tcp_port()
    };
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let port = port.to_string();
    let peer = match (reference, udp) {
        (Reference::Ncat, false) => Peer::start(
            "ncat",
            &[
                "-l",
                "127.0.0.1",
                &port,
                "--keep-open",
                "--exec",
                "/bin/cat",
            ],
        ),
        (Reference::Ncat, true) => Peer::start(
            "ncat",
            &[
                "-u",
                "-l",
                "127.0.0.1",
                &port,
                "--keep-open",
                "--exec",
                "/bin/cat",
            ],
        ),
        (Reference::Socat, false) => Peer::start(
            "socat",
            &[
                &format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"),
                "EXEC:cat",
            ],
        ),
        (Reference::Socat, true) => Peer::start(
            "socat",
            &[
                &format!("UDP-RECVFROM:{port},bind=127.0.0.1,fork"),
                "EXEC:cat",
            ],
        ),
    };
    if udp {
        wait_until_udp_echoes(addr, Duration::from_secs(10), &peer);
    } else {
        wait_until_listening(addr, Duration::from_secs(10));
    }
    (peer, addr)
}

/// Sends probes until one is echoed; panics if none is within `timeout`.
fn wait_until_udp_echoes(addr: SocketAddr, timeout: Duration, peer: &Peer) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 64];
    while Instant::now() < deadline {
        // An ICMP "port unreachable" for a probe sent too early shows up as an error here.
        if socket.send_to(b"probe", addr).is_ok()
            && matches!(socket.recv_from(&mut buf), Ok((5, _)))
            && &buf[..5] == b"probe"
        {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "no UDP echo from {addr} within {timeout:?}; stderr:\n{}",
        peer.stderr.text()
    );
}

fn client_gets_every_line_back(addr: SocketAddr, udp: bool, peer: &Peer) {
    let target = addr.to_string();
    let mut args = vec!["echo", "client", &target, "--timeout", "5s"];
    // An empty line is an empty datagram over UDP, which `cat` behind ncat or socat
    // reads as nothing and never answers; over TCP it is a frame of its own.
    let input = if udp {
        args.push("--udp");
        "one\ntwo words\nthree\n"
    } else {
        "one\ntwo words\n\nthree\n"
    };
    let done = sokkel(&args)
        .stdin(input.as_bytes())
        .timeout(RUN_LIMIT)
        .run();
    assert!(
        done.status.success(),
        "{}\npeer stderr:\n{}",
        done.describe(),
        peer.stderr.text()
    );
    assert_eq!(done.stdout_text(), input, "{}", done.describe());
}

fn bench_verifies_every_round_trip(addr: SocketAddr, udp: bool, conns: &str, peer: &Peer) {
    let target = addr.to_string();
    let mut args = vec![
        "echo",
        "bench",
        &target,
        "--requests",
        "500",
        "--conns",
        conns,
        "--json",
        "--timeout",
        "5s",
    ];
    if udp {
        args.push("--udp");
    }
    let done = sokkel(&args).timeout(RUN_LIMIT).run();
    let report: Value = serde_json::from_str(&done.stdout_text())
        .unwrap_or_else(|e| panic!("no JSON from bench ({e}):\n{}", done.describe()));
    assert!(
        done.status.success(),
        "{}\npeer stderr:\n{}",
        done.describe(),
        peer.stderr.text()
    );
    assert_eq!(report["round_trips"], 500, "{report:#}");
    assert_eq!(report["errors"], 0, "{report:#}");
    assert_eq!(
        report["transport"],
        if udp { "udp" } else { "tcp" },
        "{report:#}"
    );
}

#[test]
#[ignore = "interop: needs ncat and socat; .ci/run installs them and runs cargo test -- --ignored"]
fn sokkel_client_and_bench_against_ncat_tcp_echo() {
    let (peer, addr) = start_reference(Reference::Ncat, false);
    client_gets_every_line_back(addr, false, &peer);
    bench_verifies_every_round_trip(addr, false, "4", &peer);
}

#[test]
#[ignore = "interop: needs ncat and socat; .ci/run installs them and runs cargo test -- --ignored"]
fn sokkel_client_and_bench_against_socat_tcp_echo() {
    let (peer, addr) = start_reference(Reference::Socat, false);
    client_gets_every_line_back(addr, false, &peer);
    bench_verifies_every_round_trip(addr, false, "4", &peer);
}

// ncat's UDP mode serves one peer at a time (a second concurrent peer gets "connection
// refused"), and socat's forking UDP listener can drop a datagram while it forks; one
// bench socket at a time keeps both runs deterministic.

#[test]
#[ignore = "interop: needs ncat and socat; .ci/run installs them and runs cargo test -- --ignored"]
fn sokkel_client_and_bench_against_ncat_udp_echo() {
    let (peer, addr) = start_reference(Reference::Ncat, true);
    client_gets_every_line_back(addr, true, &peer);
    bench_verifies_every_round_trip(addr, true, "1", &peer);
}

#[test]
#[ignore = "interop: needs ncat and socat; .ci/run installs them and runs cargo test -- --ignored"]
fn sokkel_client_and_bench_against_socat_udp_echo() {
    let (peer, addr) = start_reference(Reference::Socat, true);
    client_gets_every_line_back(addr, true, &peer);
    bench_verifies_every_round_trip(addr, true, "1", &peer);
}

#[test]
#[ignore = "interop: needs ncat and socat; .ci/run installs them and runs cargo test -- --ignored"]
fn ncat_and_socat_clients_get_their_echo_from_sokkel_serve() {
    require_program("ncat", "ncat");
    require_program("socat", "socat");
    let server = Server::start(&["--listen", "127.0.0.1:0"]);
    let addr = server.tcp_addr();
    let input = b"hello from a client nobody here wrote\nsecond line\n";

    let mut ncat = Command::new("ncat");
    ncat.args([&addr.ip().to_string(), &addr.port().to_string()]);
    let mut socat = Command::new("socat");
    socat.args(["-", &format!("TCP:{addr}")]);
    for (name, command) in [("ncat", ncat), ("socat", socat)] {
        let done = run(command, input, RUN_LIMIT);
        assert!(done.status.success(), "{name}: {}", done.describe());
        assert_eq!(
            done.stdout_text().as_bytes(),
            input,
            "{name} got back: {}",
            done.describe()
        );
    }
    // Both closed their sending side at EOF, and the server saw two normal leaves.
    let lines = server
        .stdout
        .wait_until(Duration::from_secs(5), |lines| {
            lines.iter().filter(|l| l.contains(" left after ")).count() >= 2
        })
        .unwrap_or_else(|| panic!("two clients should leave:\n{}", server.stdout.text()));
    let sent = format!("sent {} bytes in ", input.len());
    let ends: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains(" left after "))
        .collect();
    assert!(ends.iter().all(|l| l.contains(&sent)), "{ends:?}");
}
