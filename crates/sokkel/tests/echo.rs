//! `sokkel echo serve | client | bench` as a user runs them: the real binary, on
//! 127.0.0.1 / ::1 port 0, spoken to in raw bytes with std sockets, and its stdout and
//! stderr read line by line. Also the course's own Python client, the first program any
//! student points at this server.
//!
//! Interop with ncat and socat lives in `echo_interop.rs`.

mod kit;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use kit::echo::{Server, assert_echo};
use kit::net::{
    Closed, assert_nothing_arrives, connect, finish_sending, free_tcp_port, is_timeout,
    read_exactly, read_until_closed, udp_socket_for,
};
use kit::process::{require_program, sigterm};
use kit::{Finished, PROMPT, program, sokkel};
use serde_json::Value;

const V4: &str = "127.0.0.1:0";
const V6: &str = "[::1]:0";

/// A client run should end well within this, or something hangs.
const RUN_LIMIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------
// Echo over both transports and both address families, and what the server prints.

#[test]
fn tcp_echo_over_ipv4_and_ipv6_prints_connect_message_and_leave_lines() {
    let server = Server::start(&["--listen", V4, "--listen", V6]);
    assert_eq!(server.tcp.len(), 2, "one TCP listener per --listen");
    assert!(server.tcp[0].is_ipv4() && server.tcp[1].is_ipv6());
    assert!(server.udp.is_empty(), "no UDP without --udp");

    for &addr in &server.tcp {
        let mut stream = connect(addr);
        let peer = stream.local_addr().unwrap();
        assert_echo(&mut stream, b"hello\n");
        finish_sending(&stream);
        assert_eq!(
            read_until_closed(&mut stream, PROMPT),
            Closed::Eof(Vec::new()),
            "after our FIN the server closes too"
        );

        server
            .stdout
            .expect_line(&format!("tcp {peer} connected to {addr}"));
        let end = server.expect_end_of(peer);
        assert!(
            end.starts_with("left after ") && end.ends_with(" s, sent 6 bytes in 1 message"),
            "end line for {peer}: {end:?}"
        );
        assert_eq!(server.messages_from("tcp", peer), ["6 bytes: hello\\n"]);
    }
}

#[test]
fn udp_echo_over_ipv4_and_ipv6_answers_each_datagram_and_prints_it() {
    let server = Server::start(&["--listen", V4, "--listen", V6, "--udp"]);
    assert_eq!(
        server.udp.len(),
        2,
        "one UDP socket per --listen with --udp"
    );
    for (tcp, udp) in server.tcp.iter().zip(&server.udp) {
        assert_eq!(tcp, udp, "with port 0, UDP gets the port TCP was given");
    }

    for &addr in &server.udp {
        let socket = udp_socket_for(addr);
        let peer = socket.local_addr().unwrap();
        for datagram in [&b"udp!"[..], b"two\nlines", b"x"] {
            socket.send_to(datagram, addr).unwrap();
        }
        // Datagram boundaries are kept: three sends, three replies, in order.
        let mut buf = [0u8; 1024];
        for want in [&b"udp!"[..], b"two\nlines", b"x"] {
            let (n, from) = socket
                .recv_from(&mut buf)
                .unwrap_or_else(|e| panic!("no UDP reply from {addr}: {e}"));
            assert_eq!(from, addr, "the reply comes from the address we sent to");
            assert_eq!(&buf[..n], want);
        }
        server
            .stdout
            .wait_until(PROMPT, |lines| {
                kit::echo::message_lines(lines, "udp", peer).len() >= 3
            })
            .unwrap_or_else(|| panic!("no udp lines for {peer}:\n{}", server.stdout.text()));
        assert_eq!(
            server.messages_from("udp", peer),
            ["4 bytes: udp!", "9 bytes: two\\nlines", "1 byte: x"]
        );
    }
}

// ---------------------------------------------------------------------------------------
// Framing: every mode reassembles frames cut into 1-byte writes and splits frames that
// arrive together, echoing each frame unchanged (header and line feed included).

/// Checks one framing mode. `frames` are whole frames on the wire; `logged` is what the
/// server should print per frame (`N bytes: payload`), or `None` for raw, where a
/// message is whatever one read returned.
fn check_framing(mode: &str, frames: &[&[u8]], logged: Option<&[&str]>) {
    let server = Server::start(&["--listen", V4, "--framing", mode]);
    let addr = server.tcp_addr();
    let all: Vec<u8> = frames.concat();
    let end_words = match logged {
        Some(lines) => format!(
            ", sent {} bytes in {} message{}",
            all.len(),
            lines.len(),
            if lines.len() == 1 { "" } else { "s" }
        ),
        None => format!(", sent {} bytes in ", all.len()),
    };

    // (a) One byte per write, TCP_NODELAY on, a short pause between the bytes of the
    // first frame so they arrive in separate reads.
    let mut stream = connect(addr);
    let peer = stream.local_addr().unwrap();
    let first = frames[0];
    if logged.is_none() {
        stream.write_all(&first[..1]).unwrap();
        assert_eq!(
            read_exactly(&mut stream, 1),
            &first[..1],
            "{mode}: a single byte is echoed as it arrives"
        );
        for &byte in &first[1..] {
            stream.write_all(&[byte]).unwrap();
            thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(read_exactly(&mut stream, first.len() - 1), &first[1..]);
    } else {
        for &byte in &first[..first.len() - 1] {
            stream.write_all(&[byte]).unwrap();
            thread::sleep(Duration::from_millis(1));
        }
        assert_nothing_arrives(
            &mut stream,
            Duration::from_millis(100),
            &format!("{mode}: a frame is echoed only once it is complete"),
        );
        stream.write_all(&first[first.len() - 1..]).unwrap();
        assert_eq!(
            read_exactly(&mut stream, first.len()),
            first,
            "{mode}: echo of the first frame"
        );
    }
    let rest = &all[first.len()..];
    for &byte in rest {
        stream.write_all(&[byte]).unwrap();
    }
    let echo = read_exactly(&mut stream, rest.len());
    assert_eq!(echo, rest, "{mode}: echo of frames sent one byte per write");
    finish_sending(&stream);
    assert_eq!(
        read_until_closed(&mut stream, PROMPT),
        Closed::Eof(Vec::new())
    );
    let end = server.expect_end_of(peer);
    assert!(end.contains(&end_words), "{mode}: end line {end:?}");
    if let Some(lines) = logged {
        assert_eq!(
            server.messages_from("tcp", peer),
            lines,
            "{mode}: one line per frame sent byte by byte"
        );
    }

    // (b) Every frame in one write.
    let mut stream = connect(addr);
    let peer = stream.local_addr().unwrap();
    stream.write_all(&all).unwrap();
    let echo = read_exactly(&mut stream, all.len());
    assert_eq!(echo, all, "{mode}: echo of frames sent in one write");
    finish_sending(&stream);
    assert_eq!(
        read_until_closed(&mut stream, PROMPT),
        Closed::Eof(Vec::new())
    );
    let end = server.expect_end_of(peer);
    assert!(end.contains(&end_words), "{mode}: end line {end:?}");
    if let Some(lines) = logged {
        assert_eq!(
            server.messages_from("tcp", peer),
            lines,
            "{mode}: one line per frame sent in one write"
        );
    }
}

#[test]
fn raw_framing_echoes_bytes_as_they_arrive() {
    check_framing("raw", &[b"raw bytes\0\xff", b" and more\n"], None);
}

#[test]
fn line_framing_echoes_whole_lines_and_prints_one_line_each() {
    check_framing(
        "line",
        &[b"hello\n", b"\n", b"two words\r\n", b"tab\there\n"],
        Some(&[
            "5 bytes: hello",
            "0 bytes: ",
            "10 bytes: two words\\r",
            "8 bytes: tab\\there",
        ]),
    );
}

#[test]
fn length_framing_reads_a_big_endian_header_and_prints_one_line_per_frame() {
    // 300 = 0x012c: a length that needs both low header bytes, and a payload long
    // enough that the printed line is cut after 200 bytes.
    let long: Vec<u8> = (0..300u32).map(|i| b'a' + (i % 26) as u8).collect();
    let long_frame = [&[0, 0, 1, 0x2c][..], &long].concat();
    let shown = format!(
        "300 bytes: {}… (+100 bytes)",
        String::from_utf8_lossy(&long[..200])
    );
    check_framing(
        "length",
        &[b"\0\0\0\x05hello", b"\0\0\0\0", &long_frame],
        Some(&["5 bytes: hello", "0 bytes: ", &shown]),
    );
}

#[test]
fn ascii_length_framing_takes_four_digits_with_space_padding() {
    check_framing(
        "ascii-length",
        &[b"0005hello", b"0000", b"  12hello world!", b"3   abc"],
        Some(&[
            "5 bytes: hello",
            "0 bytes: ",
            "12 bytes: hello world!",
            "3 bytes: abc",
        ]),
    );
}

#[test]
fn fixed_framing_cuts_every_n_bytes_whatever_they_hold() {
    check_framing(
        "fixed:5",
        &[b"hello", b"world", b"\0\x01\xff\n5"],
        Some(&[
            "5 bytes: hello",
            "5 bytes: world",
            "5 bytes: \\0\\x01\\xff\\n5",
        ]),
    );
}

// ---------------------------------------------------------------------------------------
// Many connections at once.

#[test]
fn a_thousand_concurrent_connections_each_get_their_own_echo() {
    const CONNS: usize = 1000;
    let server = Server::start(&["--listen", V4, "--quiet"]);
    let addr = server.tcp_addr();
    let deadline = Instant::now() + Duration::from_secs(25);

    let mut streams: Vec<TcpStream> = (0..CONNS).map(|_| connect(addr)).collect();
    for (i, stream) in streams.iter_mut().enumerate() {
        stream
            .write_all(format!("connection {i:04} says hello\n").as_bytes())
            .unwrap();
    }
    // All are still open here; only now is any echo read.
    for (i, stream) in streams.iter_mut().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "out of time after {i} echoes");
        stream.set_read_timeout(Some(left)).unwrap();
        let want = format!("connection {i:04} says hello\n");
        let echo = read_exactly(stream, want.len());
        assert_eq!(
            String::from_utf8_lossy(&echo),
            want,
            "echo on connection {i}"
        );
    }
    let connected = server.stdout.wait_until(PROMPT, |lines| {
        lines
            .iter()
            .filter(|l| l.contains(" connected to "))
            .count()
            >= CONNS
    });
    assert!(
        connected.is_some(),
        "the server did not print {CONNS} connected lines"
    );
}

// ---------------------------------------------------------------------------------------
// Bytes that are not text.

#[test]
fn binary_data_is_echoed_unchanged_and_printed_escaped() {
    let payload: &[u8] = b"nul\0ff\xff\xfe lf\n esc\x1b[2J bs\\ \xc3\xa9";
    let shown = format!(
        "{} bytes: nul\\0ff\\xff\\xfe lf\\n esc\\x1b[2J bs\\\\ é",
        payload.len()
    );
    let server = Server::start(&["--listen", V4, "--udp"]);

    let mut stream = connect(server.tcp_addr());
    let peer = stream.local_addr().unwrap();
    assert_echo(&mut stream, payload);
    drop(stream);
    server.expect_end_of(peer);
    assert_eq!(server.messages_from("tcp", peer), [shown.as_str()]);

    let socket = udp_socket_for(server.udp_addr());
    let peer = socket.local_addr().unwrap();
    socket.send_to(payload, server.udp_addr()).unwrap();
    let mut buf = [0u8; 256];
    let (n, _) = socket.recv_from(&mut buf).expect("UDP echo");
    assert_eq!(&buf[..n], payload);
    server.stdout.expect_line(&format!("udp {peer} {shown}"));
}

// ---------------------------------------------------------------------------------------
// Malformed frames close only the connection that sent them.

/// `good` is a valid frame, `bad` a malformed one sent right after it in the same write.
/// The sender gets the echo of `good`, then EOF; stderr names it; others go on.
fn check_malformed_frame_closes_only_its_connection(args: &[&str], good: &[u8], bad: &[u8]) {
    let mut full = vec!["--listen", V4];
    full.extend_from_slice(args);
    let server = Server::start(&full);
    let addr = server.tcp_addr();

    let mut bystander = connect(addr);
    assert_echo(&mut bystander, good);

    let mut offender = connect(addr);
    let peer = offender.local_addr().unwrap();
    offender.write_all(&[good, bad].concat()).unwrap();
    assert_eq!(
        read_until_closed(&mut offender, PROMPT),
        Closed::Eof(good.to_vec()),
        "the frame before the bad one is echoed, then the server closes (FIN)"
    );

    let warning = server
        .stderr
        .expect_line_where(&format!("naming {peer}"), |l| l.contains(&peer.to_string()));
    assert!(warning.contains("WARN"), "stderr line: {warning:?}");
    let end = server.expect_end_of(peer);
    assert!(end.starts_with("was closed (malformed frame)"), "{end:?}");

    assert_echo(&mut bystander, good);
    let mut newcomer = connect(addr);
    assert_echo(&mut newcomer, good);
}

#[test]
fn length_frame_over_max_frame_closes_only_that_connection() {
    // A 64-byte frame (60-byte payload) is exactly at the limit, header included.
    let at_limit = [&[0, 0, 0, 60][..], &[b'z'; 60]].concat();
    check_malformed_frame_closes_only_its_connection(
        &["--framing", "length", "--max-frame", "64"],
        &at_limit,
        &[0, 0, 0x03, 0xe8],
    );
}

#[test]
fn ascii_length_header_that_is_not_digits_closes_only_that_connection() {
    check_malformed_frame_closes_only_its_connection(
        &["--framing", "ascii-length"],
        b"0002ok",
        b"12ab",
    );
}

#[test]
fn line_longer_than_max_frame_closes_only_that_connection() {
    check_malformed_frame_closes_only_its_connection(
        &["--framing", "line", "--max-frame", "16"],
        b"fifteen bytes!\n",
        b"this line never ends",
    );
}

// ---------------------------------------------------------------------------------------
// Idle timeout.

#[test]
fn idle_connection_is_closed_after_the_idle_timeout_and_a_busy_one_is_not() {
    let server = Server::start(&["--listen", V4, "--idle-timeout", "1s"]);
    let addr = server.tcp_addr();

    let mut idle = connect(addr);
    let idle_peer = idle.local_addr().unwrap();
    let connected_at = Instant::now();
    let watcher = thread::spawn(move || {
        let closed = read_until_closed(&mut idle, Duration::from_secs(5));
        (closed, connected_at.elapsed())
    });

    // Traffic every 300 ms keeps this one open well past one second.
    let mut busy = connect(addr);
    let busy_peer = busy.local_addr().unwrap();
    for i in 0..6 {
        thread::sleep(Duration::from_millis(300));
        assert_echo(&mut busy, format!("ping {i}").as_bytes());
    }

    let (closed, after) = watcher.join().expect("watcher thread");
    assert_eq!(closed, Closed::Eof(Vec::new()), "idle connection gets FIN");
    assert!(
        after >= Duration::from_millis(800),
        "closed after {after:?}, before the 1 s idle timeout"
    );
    let end = server.expect_end_of(idle_peer);
    assert!(end.starts_with("was closed (idle timeout)"), "{end:?}");

    finish_sending(&busy);
    assert_eq!(
        read_until_closed(&mut busy, PROMPT),
        Closed::Eof(Vec::new())
    );
    let end = server.expect_end_of(busy_peer);
    assert!(end.starts_with("left after "), "busy connection: {end:?}");
}

// ---------------------------------------------------------------------------------------
// Stopping.

/// Sends a complete frame and the start of another in one write, and waits for the
/// echo of the first: then the server has read the partial frame too.
fn leave_a_partial_length_frame(stream: &mut TcpStream) {
    stream.write_all(b"\0\0\0\x03one\0\0\0\x05he").unwrap();
    assert_eq!(read_exactly(stream, 7), b"\0\0\0\x03one");
}

#[test]
fn sigterm_lets_a_partial_frame_finish_then_closes_and_exits_zero() {
    let mut server = Server::start(&[
        "--listen",
        V4,
        "--framing",
        "length",
        "--shutdown-timeout",
        "5s",
    ]);
    let addr = server.tcp_addr();
    let mut mid_frame = connect(addr);
    let mid_frame_peer = mid_frame.local_addr().unwrap();
    leave_a_partial_length_frame(&mut mid_frame);
    let mut between_frames = connect(addr);
    let between_peer = between_frames.local_addr().unwrap();
    assert_echo(&mut between_frames, b"\0\0\0\x02hi");

    sigterm(server.pid());

    assert_eq!(
        read_until_closed(&mut between_frames, Duration::from_secs(3)),
        Closed::Eof(Vec::new()),
        "a connection with nothing in flight is closed at once"
    );
    let refused_by = Instant::now() + Duration::from_secs(3);
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            Err(err) if err.kind() == ErrorKind::ConnectionRefused => break,
            _ if Instant::now() >= refused_by => {
                panic!("new connections are still accepted 3 s after SIGTERM")
            }
            _ => thread::sleep(Duration::from_millis(20)),
        }
    }

    mid_frame.write_all(b"llo").unwrap();
    assert_eq!(
        read_exactly(&mut mid_frame, 9),
        b"\0\0\0\x05hello",
        "the frame in flight is finished and echoed"
    );
    assert_eq!(
        read_until_closed(&mut mid_frame, PROMPT),
        Closed::Eof(Vec::new()),
        "then the connection is closed"
    );

    let status = server.wait_exit(Duration::from_secs(10));
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM: {status}"
    );
    for (peer, bytes) in [
        (mid_frame_peer, "16 bytes in 2 messages"),
        (between_peer, "6 bytes in 1 message"),
    ] {
        let end = server.expect_end_of(peer);
        assert!(
            end.starts_with("was closed (server stopping)") && end.ends_with(bytes),
            "{peer}: {end:?}"
        );
    }
}

#[test]
fn sigterm_cuts_off_an_unfinished_frame_after_the_shutdown_timeout() {
    let mut server = Server::start(&[
        "--listen",
        V4,
        "--framing",
        "length",
        "--shutdown-timeout",
        "1s",
    ]);
    let mut stream = connect(server.tcp_addr());
    let peer = stream.local_addr().unwrap();
    leave_a_partial_length_frame(&mut stream);

    let signalled = Instant::now();
    sigterm(server.pid());
    assert_eq!(
        read_until_closed(&mut stream, Duration::from_secs(6)),
        Closed::Eof(Vec::new())
    );
    let waited = signalled.elapsed();
    assert!(
        waited >= Duration::from_millis(800),
        "closed {waited:?} after SIGTERM, before the 1 s --shutdown-timeout"
    );
    let status = server.wait_exit(Duration::from_secs(6));
    assert_eq!(status.code(), Some(0), "exit status: {status}");
    let end = server.expect_end_of(peer);
    assert!(end.starts_with("was closed (server stopping)"), "{end:?}");
}

/// A supervisor that waits for the `listening on` line and then stops the server (a
/// test harness, `docker stop` right after start) must get a clean exit, not death by
/// the signal's default action.
#[test]
fn sigterm_right_after_the_listening_line_still_exits_zero() {
    for attempt in 1..=20 {
        let mut server = Server::start(&["--listen", V4]);
        sigterm(server.pid());
        let status = server.wait_exit(Duration::from_secs(10));
        assert_eq!(
            status.code(),
            Some(0),
            "attempt {attempt}: SIGTERM just after `listening on` ended the server with {status}"
        );
    }
}

#[test]
fn port_in_use_is_one_line_with_a_hint_and_a_nonzero_exit() {
    let taken = TcpListener::bind(V4).unwrap();
    let addr = taken.local_addr().unwrap();
    let done = sokkel(["echo", "serve", "--listen", &addr.to_string()])
        .timeout(RUN_LIMIT)
        .run();
    let line = done.one_error_line();
    for needle in ["already in use", "--listen", &addr.to_string()] {
        assert!(line.contains(needle), "stderr lacks {needle:?}: {line:?}");
    }
    assert!(
        !done.stdout_text().contains("listening on"),
        "{}",
        done.describe()
    );
}

// ---------------------------------------------------------------------------------------
// The client.

#[test]
fn client_falls_through_a_refusing_address_to_the_next_one() {
    let server = Server::start(&["--listen", V4, "--framing", "line"]);
    let port = server.tcp_addr().port();
    let resolve = format!("echo.test:{port}:127.0.0.2,127.0.0.1");
    let target = format!("echo.test:{port}");
    let done = sokkel(["echo", "client", "--resolve", &resolve, &target])
        .stdin(b"hi\n")
        .timeout(RUN_LIMIT)
        .run();
    assert!(done.status.success(), "{}", done.describe());
    assert_eq!(done.stdout_text(), "hi\n", "{}", done.describe());
    server
        .stdout
        .expect_line_where("about a 127.0.0.1 peer sending hi", |l| {
            l.starts_with("tcp 127.0.0.1:") && l.ends_with(" 2 bytes: hi")
        });
}

#[test]
fn client_lists_every_address_it_tried_when_none_accepts() {
    let port = free_tcp_port();
    let resolve = format!("echo.test:{port}:127.0.0.2,127.0.0.1");
    let target = format!("echo.test:{port}");
    let done = sokkel([
        "echo",
        "client",
        "--resolve",
        &resolve,
        &target,
        "--timeout",
        "2s",
    ])
    .stdin(b"hi\n")
    .timeout(RUN_LIMIT)
    .run();
    assert!(!done.status.success(), "{}", done.describe());
    for addr in [format!("127.0.0.2:{port}"), format!("127.0.0.1:{port}")] {
        assert!(
            done.stderr.contains(&addr),
            "stderr lacks {addr}:\n{}",
            done.describe()
        );
    }
    assert!(done.stderr.contains("refused"), "{}", done.describe());
    assert!(!done.stderr.contains("panicked"), "{}", done.describe());
    assert_eq!(done.stdout_text(), "", "nothing on stdout");
}

/// Pipes `input` through `sokkel echo client --framing MODE` to a server in the same
/// mode; checks stdout and, when `logged` is given, the server's line per frame.
fn check_piped_client(mode: &str, input: &str, want: &str, logged: Option<&[&str]>) {
    let server = Server::start(&["--listen", V4, "--framing", mode]);
    let addr = server.tcp_addr().to_string();
    let done = sokkel(["echo", "client", "--framing", mode, &addr])
        .stdin(input.as_bytes())
        .timeout(RUN_LIMIT)
        .run();
    assert!(done.status.success(), "{mode}: {}", done.describe());
    assert_eq!(
        done.stdout_text(),
        want,
        "{mode}: stdout of the piped client"
    );

    let connected = server.stdout.expect_line_where("connected", |l| {
        l.starts_with("tcp ") && l.contains(" connected to ")
    });
    let peer: SocketAddr = connected["tcp ".len()..]
        .split(' ')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no peer in {connected:?}"));
    let end = server.expect_end_of(peer);
    assert!(
        end.starts_with("left after "),
        "{mode}: the client half-closes at EOF: {end:?}"
    );
    if let Some(lines) = logged {
        assert_eq!(
            server.messages_from("tcp", peer),
            lines,
            "{mode}: frames sent"
        );
    }
}

const PIPED: &str = "one\ntwo\n\nthree\n";
const PIPED_FRAMES: &[&str] = &[
    "3 bytes: one",
    "3 bytes: two",
    "0 bytes: ",
    "5 bytes: three",
];

#[test]
fn piped_client_prints_each_reply_with_raw_framing() {
    check_piped_client("raw", PIPED, PIPED, None);
}

#[test]
fn piped_client_prints_each_reply_with_line_framing() {
    check_piped_client("line", PIPED, PIPED, Some(PIPED_FRAMES));
}

#[test]
fn piped_client_prints_each_reply_with_length_framing() {
    check_piped_client("length", PIPED, PIPED, Some(PIPED_FRAMES));
}

#[test]
fn piped_client_prints_each_reply_with_ascii_length_framing() {
    check_piped_client("ascii-length", PIPED, PIPED, Some(PIPED_FRAMES));
}

#[test]
fn piped_client_prints_each_reply_with_fixed_framing_and_a_last_line_without_newline() {
    check_piped_client(
        "fixed:5",
        "hello\nworld",
        "hello\nworld\n",
        Some(&["5 bytes: hello", "5 bytes: world"]),
    );
}

#[test]
fn piped_client_over_udp_sends_one_datagram_per_line() {
    let server = Server::start(&["--listen", V4, "--udp"]);
    let addr = server.udp_addr().to_string();
    let done = sokkel(["echo", "client", "--udp", &addr])
        .stdin(b"one\ntwo\n")
        .timeout(RUN_LIMIT)
        .run();
    assert!(done.status.success(), "{}", done.describe());
    assert_eq!(done.stdout_text(), "one\ntwo\n");
    let lines = server
        .stdout
        .wait_until(PROMPT, |lines| {
            lines.iter().filter(|l| l.starts_with("udp ")).count() >= 2
        })
        .unwrap_or_else(|| panic!("no udp lines:\n{}", server.stdout.text()));
    let udp: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("udp "))
        .map(|l| l.split_once(' ').unwrap().1.split_once(' ').unwrap().1)
        .collect();
    assert_eq!(udp, ["3 bytes: one", "3 bytes: two"]);
}

#[test]
fn client_gives_up_when_a_tcp_reply_never_comes() {
    let silent = TcpListener::bind(V4).unwrap();
    let addr = silent.local_addr().unwrap();
    // Accept and hold the connection without ever answering, until the client leaves.
    let holder = thread::spawn(move || {
        if let Ok((mut stream, _)) = silent.accept() {
            stream.set_read_timeout(Some(RUN_LIMIT)).unwrap();
            let _ = std::io::copy(&mut stream, &mut std::io::sink());
        }
    });
    let done = sokkel(["echo", "client", &addr.to_string(), "--timeout", "1s"])
        .stdin(b"hi\n")
        .timeout(RUN_LIMIT)
        .run();
    assert!(!done.status.success(), "{}", done.describe());
    assert!(
        done.stderr.contains("no reply within"),
        "{}",
        done.describe()
    );
    assert!(
        done.elapsed >= Duration::from_millis(900),
        "gave up after {:?}",
        done.elapsed
    );
    assert_eq!(done.stdout_text(), "");
    holder.join().unwrap();
}

#[test]
fn client_gives_up_when_a_udp_reply_never_comes() {
    let silent = UdpSocket::bind(V4).unwrap();
    let addr = silent.local_addr().unwrap();
    let done = sokkel([
        "echo",
        "client",
        "--udp",
        &addr.to_string(),
        "--timeout",
        "1s",
    ])
    .stdin(b"hi\n")
    .timeout(RUN_LIMIT)
    .run();
    assert!(!done.status.success(), "{}", done.describe());
    assert!(
        done.stderr.contains("no reply within"),
        "{}",
        done.describe()
    );
    assert_eq!(done.stdout_text(), "");
}

// ---------------------------------------------------------------------------------------
// The load generator.

fn bench_json(args: &[&str]) -> (Finished, Value) {
    let mut full = vec!["echo", "bench", "--json", "--timeout", "5s"];
    full.extend_from_slice(args);
    let done = sokkel(&full).timeout(RUN_LIMIT).run();
    let report = serde_json::from_str(&done.stdout_text())
        .unwrap_or_else(|e| panic!("bench --json printed no JSON ({e}):\n{}", done.describe()));
    (done, report)
}

fn check_clean_bench_report(report: &Value, transport: &str, framing: &str, trips: u64) {
    assert_eq!(report["round_trips"], trips, "{report:#}");
    assert_eq!(report["errors"], 0, "{report:#}");
    assert_eq!(
        report["error_samples"],
        Value::Array(Vec::new()),
        "{report:#}"
    );
    assert_eq!(report["transport"], transport, "{report:#}");
    assert_eq!(report["framing"], framing, "{report:#}");
    for field in ["elapsed_secs", "round_trips_per_sec", "mb_per_sec"] {
        assert!(report[field].is_f64(), "{field} in {report:#}");
    }
    let latency = &report["latency_us"];
    for field in ["p50", "p90", "p99", "p999", "max", "mean"] {
        assert!(
            latency[field].as_f64().is_some_and(|v| v > 0.0),
            "latency {field}: {report:#}"
        );
    }
    let (p50, p99, max) = (
        latency["p50"].as_f64().unwrap(),
        latency["p99"].as_f64().unwrap(),
        latency["max"].as_f64().unwrap(),
    );
    assert!(
        p50 <= p99 && p99 <= max,
        "percentiles out of order: {report:#}"
    );
}

#[test]
fn bench_over_tcp_verifies_exactly_the_requested_round_trips() {
    let server = Server::start(&["--listen", V4, "--quiet"]);
    let addr = server.tcp_addr().to_string();
    let (done, report) = bench_json(&[&addr, "--requests", "2000", "--conns", "10"]);
    assert!(done.status.success(), "{}", done.describe());
    check_clean_bench_report(&report, "tcp", "raw", 2000);
    assert_eq!(report["connections"], 10);
    assert_eq!(report["message_size"], 64);
    assert_eq!(report["target"], addr.as_str());
}

#[test]
fn bench_with_length_framing_against_a_length_framing_server() {
    let server = Server::start(&["--listen", V4, "--quiet", "--framing", "length"]);
    let addr = server.tcp_addr().to_string();
    let (done, report) = bench_json(&[
        &addr,
        "--requests",
        "500",
        "--conns",
        "4",
        "--framing",
        "length",
        "--size",
        "1000",
    ]);
    assert!(done.status.success(), "{}", done.describe());
    check_clean_bench_report(&report, "tcp", "length", 500);
    assert_eq!(report["message_size"], 1000);
}

#[test]
fn bench_over_udp_verifies_exactly_the_requested_round_trips() {
    let server = Server::start(&["--listen", V4, "--udp", "--quiet"]);
    let addr = server.udp_addr().to_string();
    let (done, report) = bench_json(&[&addr, "--udp", "--requests", "200", "--conns", "2"]);
    assert!(done.status.success(), "{}", done.describe());
    check_clean_bench_report(&report, "udp", "datagram", 200);
}

#[test]
fn bench_counts_a_corrupted_echo_as_an_error_and_exits_nonzero() {
    // An "echo" server that changes the first byte of everything it sends back.
    let liar = TcpListener::bind(V4).unwrap();
    let addr = liar.local_addr().unwrap();
    let server = thread::spawn(move || {
        if let Ok((mut stream, _)) = liar.accept() {
            stream.set_read_timeout(Some(RUN_LIMIT)).unwrap();
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = std::io::Read::read(&mut stream, &mut buf) {
                buf[0] ^= 0x20;
                if stream.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    });
    let (done, report) = bench_json(&[&addr.to_string(), "--requests", "20", "--conns", "1"]);
    assert!(
        !done.status.success(),
        "a corrupted echo must fail the run:\n{}",
        done.describe()
    );
    assert_eq!(report["round_trips"], 0, "{report:#}");
    assert!(
        report["errors"].as_u64().is_some_and(|e| e >= 1),
        "{report:#}"
    );
    let samples = report["error_samples"].to_string();
    assert!(samples.contains("differs"), "error samples: {samples}");
    server.join().unwrap();
}

// ---------------------------------------------------------------------------------------
// Connection cap.

#[test]
fn max_conns_turns_away_the_third_connection_and_keeps_the_first_two() {
    let server = Server::start(&["--listen", V4, "--max-conns", "2"]);
    let addr = server.tcp_addr();
    let mut first = connect(addr);
    let mut second = connect(addr);
    for stream in [&first, &second] {
        let peer = stream.local_addr().unwrap();
        server
            .stdout
            .expect_line(&format!("tcp {peer} connected to {addr}"));
    }

    let mut third = connect(addr);
    let third_peer = third.local_addr().unwrap();
    match read_until_closed(&mut third, Duration::from_secs(3)) {
        Closed::Eof(got) | Closed::Reset(got) => {
            assert!(got.is_empty(), "the refused connection got {got:?}")
        }
    }
    server.stdout.expect_line(&format!(
        "tcp {third_peer} refused: 2 connections already open (--max-conns)"
    ));

    assert_echo(&mut first, b"first still here");
    assert_echo(&mut second, b"second still here");

    // A freed slot is taken by the next newcomer.
    let first_peer = first.local_addr().unwrap();
    drop(first);
    server.expect_end_of(first_peer);
    let mut fourth = connect(addr);
    assert_echo(&mut fourth, b"fourth gets the free slot");
}

// ---------------------------------------------------------------------------------------
// The course's own Python client.

fn course_client(args: &[String]) -> Finished {
    require_program("python3", "python3");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/course_client.py");
    program(
        "python3",
        [script]
            .into_iter()
            .map(String::from)
            .chain(args.iter().cloned()),
    )
    .timeout(RUN_LIMIT)
    .run()
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn course_python_client_gets_its_echo_and_leaves_cleanly() {
    let server = Server::start(&["--listen", V4, "--quiet"]);
    let port = server.tcp_addr().port().to_string();
    // The second message needs many recv(1024) calls and more than one read server-side.
    let long: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
    let messages: [&[u8]; 2] = [b"Hello from the course!", &long];
    let mut args = vec!["plain".to_owned(), "127.0.0.1".to_owned(), port];
    args.extend(messages.iter().map(|m| hex(m)));
    let done = course_client(&args);
    assert!(done.status.success(), "{}", done.describe());
    let stdout = done.stdout_text();
    let replies: Vec<&str> = stdout.lines().collect();
    let want: Vec<String> = messages.iter().map(|m| hex(m)).collect();
    assert_eq!(replies, want, "{}", done.stderr);

    let ends = server
        .stdout
        .wait_until(PROMPT, |lines| {
            lines.iter().filter(|l| l.contains(" after ")).count() >= 2
        })
        .unwrap_or_else(|| panic!("two connections should end:\n{}", server.stdout.text()));
    let ends: Vec<&String> = ends.iter().filter(|l| l.contains(" after ")).collect();
    assert!(
        ends.iter().all(|l| l.contains(" left after ")),
        "shutdown(SHUT_RDWR) and close are a normal leave: {ends:?}"
    );
}

#[test]
fn course_python_ascii_length_client_reads_its_header_with_int() {
    let server = Server::start(&["--listen", V4, "--framing", "ascii-length"]);
    let port = server.tcp_addr().port().to_string();
    let long: Vec<u8> = (0..5000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let messages: [&[u8]; 3] = [b"hello", b"", &long];
    for pad in ["0", " "] {
        let mut args = vec![
            "ascii-length".to_owned(),
            pad.to_owned(),
            "127.0.0.1".to_owned(),
            port.clone(),
        ];
        args.extend(messages.iter().map(|m| hex(m)));
        let done = course_client(&args);
        assert!(done.status.success(), "pad {pad:?}: {}", done.describe());
        let stdout = done.stdout_text();
        let replies: Vec<&str> = stdout.lines().collect();
        let want: Vec<String> = messages.iter().map(|m| hex(m)).collect();
        assert_eq!(replies, want, "pad {pad:?}: {}", done.stderr);
    }
    // Each run sent each message once, in one frame.
    let frames = [" 5 bytes: hello", " 0 bytes: ", " 5000 bytes: abcde"];
    let count = |lines: &[String], want: &str| lines.iter().filter(|l| l.contains(want)).count();
    let lines = server
        .stdout
        .wait_until(PROMPT, |lines| frames.iter().all(|f| count(lines, f) >= 2))
        .unwrap_or_else(|| panic!("missing frames:\n{}", server.stdout.text()));
    for want in frames {
        assert_eq!(
            count(&lines, want),
            2,
            "{want:?} frames:\n{}",
            lines.join("\n")
        );
    }
}

/// A peer that sends without ever reading its echo fills its socket buffers; the
/// server must stop reading from it (not buffer without bound, not block) and go on
/// serving everyone else at full speed.
#[test]
fn a_peer_that_never_reads_its_echo_stalls_no_one_else() {
    let server = Server::start(&["--listen", "127.0.0.1:0", "--quiet"]);
    let addr = server.tcp_addr();
    let mut hog = connect(addr);
    hog.set_write_timeout(Some(Duration::from_millis(500)))
        .expect("write timeout");
    let chunk = vec![b'x'; 64 * 1024];
    let mut pushed = 0usize;
    // Bounded: at most 256 MiB, and it stops as soon as a write blocks for 0.5 s,
    // which happens once both directions' buffers are full.
    while pushed < 256 << 20 {
        match hog.write(&chunk) {
            Ok(n) => pushed += n,
            Err(err) if is_timeout(&err) => break,
            Err(err) => panic!("the server dropped the hog instead of pushing back: {err}"),
        }
    }
    assert!(
        pushed < 256 << 20,
        "the server kept reading {pushed} bytes it could not echo"
    );
    // Meanwhile another peer gets every echo, promptly.
    let mut other = connect(addr);
    for i in 0..200 {
        assert_echo(&mut other, format!("message {i}\n").as_bytes());
    }
    // And the hog still gets its echo once it reads again.
    let mut echoed = vec![0u8; chunk.len()];
    hog.set_read_timeout(Some(PROMPT)).expect("read timeout");
    hog.read_exact(&mut echoed).expect("the hog's echo");
    assert!(echoed.iter().all(|&b| b == b'x'));
}
