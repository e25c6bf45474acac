//! Sockets on loopback: free ports, a connected stream whose every read and write has
//! a deadline, reading exactly so many bytes or until the peer closes, and telling a
//! timeout or a reset from other errors.

use std::io::{self, Read};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use super::process::PROMPT;

/// A 127.0.0.1 TCP port nothing listens on right now (bound, read and released). For
/// programs that cannot be told to pick their own port, and for refused connections.
pub fn free_tcp_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// A 127.0.0.1 UDP port nothing is bound to right now.
pub fn free_udp_port() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    socket.local_addr().expect("local address").port()
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

/// [`connect`] from `local` (another loopback address, `127.0.0.2`, to be
/// another client to the server).
pub fn connect_from(local: IpAddr, addr: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )
    .expect("a TCP socket");
    socket
        .bind(&SocketAddr::new(local, 0).into())
        .unwrap_or_else(|e| panic!("cannot bind {local}: {e}"));
    socket
        .connect_timeout(&addr.into(), PROMPT)
        .unwrap_or_else(|e| panic!("cannot connect to {addr} from {local}: {e}"));
    let stream = TcpStream::from(socket);
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

/// Whether a read gave up because its timeout passed.
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

/// Whether the peer reset or aborted the connection (or it broke under a write).
pub fn is_reset(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}
