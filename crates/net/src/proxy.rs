//! HAProxy's PROXY protocol (versions 2 and 1): how a TCP load balancer in
//! front of the mail servers tells them who the client really is.
//!
//! With `--proxy-protocol`, every connection to the SMTP, POP3 and IMAP
//! listeners must start with the header the balancer writes before the
//! client's bytes; the server reads it before its greeting and uses the source
//! address it names as the client's address everywhere (the stored envelope,
//! logs, the per-address share of the connection cap). A connection without a
//! valid header within [`HEADER_TIMEOUT`] is closed.
//!
//! ```text
//! version 2 (binary), what `send-proxy-v2` writes:
//!   0  12 bytes  signature \r\n\r\n\0\r\nQUIT\n
//!  12  1 byte    0x2_ version, low nibble: 0 LOCAL (a health check), 1 PROXY
//!  13  1 byte    family (high nibble: 0 unspec, 1 IPv4, 2 IPv6, 3 unix),
//!                protocol (low nibble: 1 stream)
//!  14  2 bytes   length of what follows, big-endian
//!  16  IPv4: source, destination (4 bytes each), source port, destination port
//!      IPv6: the same with 16-byte addresses; then TLVs, skipped
//! version 1 (text), what `send-proxy` writes, at most 107 bytes:
//!   PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\r\n      (TCP6, or UNKNOWN ...)
//! ```
//!
//! [`parse`] is the core: no I/O, fed with what has arrived, it says how many
//! more bytes it needs at least, so [`read_header`], the shell, never reads past
//! the header into the client's own bytes.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::AsyncReadExt;

/// How long a connection may take to send its whole header.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest header accepted, TLVs included: far more than a balancer's
/// addresses and usual TLVs (ALPN, authority, SSL details) take.
pub const MAX_HEADER_BYTES: usize = 4096;

/// The version 2 signature.
const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The fixed part of a version 2 header: signature, version and command,
/// family, length.
const V2_FIXED: usize = 16;

/// The longest version 1 line, CRLF included (the specification's limit).
const V1_MAX: usize = 107;

/// What a header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyHeader {
    /// A proxied connection from `source` to `destination`.
    Proxied {
        /// The client's address: what the server should use as its peer.
        source: SocketAddr,
        /// The address the client connected to, on the balancer.
        destination: SocketAddr,
    },
    /// The balancer's own connection (version 2 LOCAL, such as a health
    /// check), or one whose addresses it does not name (version 1 UNKNOWN, a
    /// unix socket): the connection's own address stands.
    Local,
}

/// What [`parse`] found in the bytes so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// The header is not complete: read at least this many more bytes.
    Incomplete(usize),
    /// A whole header, `length` bytes long; what follows is the client's.
    Header {
        /// What it says.
        header: ProxyHeader,
        /// Its length in bytes.
        length: usize,
    },
}

/// Why a connection's header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The connection does not start with either version's signature: it did
    /// not come through a balancer speaking the PROXY protocol.
    #[error("no PROXY protocol header (is the balancer set to send-proxy-v2?)")]
    NoSignature,
    /// A version 2 header with another version or an unknown command.
    #[error("unsupported PROXY protocol version or command byte {0:#04x}")]
    Unsupported(u8),
    /// A version 2 header whose length cannot hold the addresses its family
    /// names, or longer than [`MAX_HEADER_BYTES`].
    #[error("a PROXY protocol header of impossible length {0}")]
    BadLength(usize),
    /// A version 1 line that does not parse.
    #[error("a malformed PROXY protocol v1 line")]
    BadLine,
    /// The connection closed before a whole header arrived (a balancer's
    /// plain TCP health check closes without a byte).
    #[error("the connection closed before its PROXY protocol header")]
    Closed {
        /// Whether any byte had arrived.
        partial: bool,
    },
    /// The header did not arrive within [`HEADER_TIMEOUT`].
    #[error("no whole PROXY protocol header within {} s", HEADER_TIMEOUT.as_secs())]
    TimedOut,
    /// Reading the socket failed.
    #[error("reading the PROXY protocol header failed: {0}")]
    Io(String),
}

/// Parses the header at the start of `input`, without I/O.
pub fn parse(input: &[u8]) -> Result<Parsed, ProxyError> {
    // Decide the version on as few bytes as tell them apart: "\r\n" or "PR".
    let known = input.len().min(SIGNATURE.len());
    if input[..known] == SIGNATURE[..known] {
        return if known < SIGNATURE.len() {
            Ok(Parsed::Incomplete(SIGNATURE.len() - known))
        } else {
            parse_v2(input)
        };
    }
    let v1 = b"PROXY ";
    let known = input.len().min(v1.len());
    if input[..known] == v1[..known] {
        return parse_v1(input);
    }
    Err(ProxyError::NoSignature)
}

fn parse_v2(input: &[u8]) -> Result<Parsed, ProxyError> {
    if input.len() < V2_FIXED {
        return Ok(Parsed::Incomplete(V2_FIXED - input.len()));
    }
    let version_command = input[12];
    let family = input[13];
    let length = usize::from(u16::from_be_bytes([input[14], input[15]]));
    let command = match version_command {
        0x20 => Command::Local,
        0x21 => Command::Proxy,
        other => return Err(ProxyError::Unsupported(other)),
    };
    let total = V2_FIXED + length;
    if total > MAX_HEADER_BYTES {
        return Err(ProxyError::BadLength(length));
    }
    let addresses = match family >> 4 {
        0x1 => 12,
        0x2 => 36,
        0x3 => 216,
        _ => 0,
    };
    if length < addresses {
        return Err(ProxyError::BadLength(length));
    }
    if input.len() < total {
        return Ok(Parsed::Incomplete(total - input.len()));
    }
    let body = &input[V2_FIXED..total];
    // Only TCP over IPv4 or IPv6 names a client; TLVs after the addresses
    // are skipped.
    let header = match (command, family) {
        (Command::Proxy, 0x11) => {
            let ip = |at: usize| {
                IpAddr::V4(Ipv4Addr::new(
                    body[at],
                    body[at + 1],
                    body[at + 2],
                    body[at + 3],
                ))
            };
            let port = |at: usize| u16::from_be_bytes([body[at], body[at + 1]]);
            ProxyHeader::Proxied {
                source: SocketAddr::new(ip(0), port(8)),
                destination: SocketAddr::new(ip(4), port(10)),
            }
        }
        (Command::Proxy, 0x21) => {
            let ip = |at: usize| {
                let octets: [u8; 16] = body[at..at + 16].try_into().expect("16 bytes");
                IpAddr::V6(Ipv6Addr::from(octets))
            };
            let port = |at: usize| u16::from_be_bytes([body[at], body[at + 1]]);
            ProxyHeader::Proxied {
                source: SocketAddr::new(ip(0), port(32)),
                destination: SocketAddr::new(ip(16), port(34)),
            }
        }
        _ => ProxyHeader::Local,
    };
    Ok(Parsed::Header {
        header,
        length: total,
    })
}

#[derive(Clone, Copy)]
enum Command {
    Local,
    Proxy,
}

fn parse_v1(input: &[u8]) -> Result<Parsed, ProxyError> {
    let Some(end) = input.windows(2).position(|pair| pair == b"\r\n") else {
        if input.len() >= V1_MAX {
            return Err(ProxyError::BadLine);
        }
        // The line ends somewhere after: one byte at a time, so that nothing
        // of the client's is read with it.
        return Ok(Parsed::Incomplete(1));
    };
    let length = end + 2;
    if length > V1_MAX {
        return Err(ProxyError::BadLine);
    }
    let line = std::str::from_utf8(&input[..end]).map_err(|_| ProxyError::BadLine)?;
    let fields: Vec<&str> = line.split(' ').collect();
    let header = match fields.as_slice() {
        ["PROXY", "UNKNOWN", ..] => ProxyHeader::Local,
        [
            "PROXY",
            family @ ("TCP4" | "TCP6"),
            source,
            destination,
            source_port,
            destination_port,
        ] => {
            let address = |ip: &str, port: &str| -> Result<SocketAddr, ProxyError> {
                let ip: IpAddr = ip.parse().map_err(|_| ProxyError::BadLine)?;
                if ip.is_ipv4() != (*family == "TCP4") {
                    return Err(ProxyError::BadLine);
                }
                let port: u16 = port.parse().map_err(|_| ProxyError::BadLine)?;
                Ok(SocketAddr::new(ip, port))
            };
            ProxyHeader::Proxied {
                source: address(source, source_port)?,
                destination: address(destination, destination_port)?,
            }
        }
        _ => return Err(ProxyError::BadLine),
    };
    Ok(Parsed::Header { header, length })
}

/// Reads the header from the start of `stream` within [`HEADER_TIMEOUT`],
/// never a byte past it.
pub async fn read_header<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<ProxyHeader, ProxyError> {
    read_header_within(stream, HEADER_TIMEOUT).await
}

/// [`read_header`] with another deadline (for tests).
pub async fn read_header_within<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
    timeout: Duration,
) -> Result<ProxyHeader, ProxyError> {
    let read = async {
        let mut input = Vec::with_capacity(V2_FIXED + 36);
        loop {
            match parse(&input)? {
                Parsed::Header { header, .. } => return Ok(header),
                Parsed::Incomplete(more) => {
                    let mut filled = input.len();
                    input.resize(filled + more, 0);
                    while filled < input.len() {
                        match stream.read(&mut input[filled..]).await {
                            Ok(0) => {
                                return Err(ProxyError::Closed {
                                    partial: filled > 0,
                                });
                            }
                            Ok(read) => filled += read,
                            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                            Err(error) => return Err(ProxyError::Io(error.to_string())),
                        }
                    }
                }
            }
        }
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| ProxyError::TimedOut)?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut header = SIGNATURE.to_vec();
        header.push(command);
        header.push(family);
        header.extend_from_slice(&(body.len() as u16).to_be_bytes());
        header.extend_from_slice(body);
        header
    }

    fn ipv4_body() -> Vec<u8> {
        let mut body = vec![192, 0, 2, 1, 198, 51, 100, 2];
        body.extend_from_slice(&56324u16.to_be_bytes());
        body.extend_from_slice(&25u16.to_be_bytes());
        body
    }

    fn whole(input: &[u8]) -> (ProxyHeader, usize) {
        match parse(input) {
            Ok(Parsed::Header { header, length }) => (header, length),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_v2_ipv4_header_names_the_client_and_its_length_leaves_the_rest() {
        let mut input = v2(0x21, 0x11, &ipv4_body());
        input.extend_from_slice(b"EHLO x\r\n");
        let (header, length) = whole(&input);
        assert_eq!(
            header,
            ProxyHeader::Proxied {
                source: "192.0.2.1:56324".parse().unwrap(),
                destination: "198.51.100.2:25".parse().unwrap(),
            }
        );
        assert_eq!(&input[length..], b"EHLO x\r\n");
    }

    #[test]
    fn a_v2_ipv6_header_names_the_client() {
        let source: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let destination: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let mut body = source.octets().to_vec();
        body.extend_from_slice(&destination.octets());
        body.extend_from_slice(&443u16.to_be_bytes());
        body.extend_from_slice(&1025u16.to_be_bytes());
        let (header, length) = whole(&v2(0x21, 0x21, &body));
        assert_eq!(
            header,
            ProxyHeader::Proxied {
                source: "[2001:db8::1]:443".parse().unwrap(),
                destination: "[2001:db8::2]:1025".parse().unwrap(),
            }
        );
        assert_eq!(length, 16 + 36);
    }

    #[test]
    fn tlvs_after_the_addresses_are_skipped() {
        let mut body = ipv4_body();
        // PP2_TYPE_ALPN "smtp", then PP2_TYPE_NOOP of 3 bytes.
        body.extend_from_slice(&[0x01, 0x00, 0x04]);
        body.extend_from_slice(b"smtp");
        body.extend_from_slice(&[0x04, 0x00, 0x03, 0, 0, 0]);
        let input = v2(0x21, 0x11, &body);
        let (header, length) = whole(&input);
        assert!(matches!(header, ProxyHeader::Proxied { .. }));
        assert_eq!(length, input.len());
    }

    #[test]
    fn local_and_unspecified_families_leave_the_connection_address() {
        assert_eq!(whole(&v2(0x20, 0x00, &[])), (ProxyHeader::Local, 16));
        // LOCAL may still carry addresses; they are not the client's.
        assert_eq!(whole(&v2(0x20, 0x11, &ipv4_body())).0, ProxyHeader::Local);
        // PROXY over a unix socket names no IP client.
        assert_eq!(whole(&v2(0x21, 0x31, &[0; 216])).0, ProxyHeader::Local);
        // UDP is not a connection of ours.
        assert_eq!(whole(&v2(0x21, 0x12, &ipv4_body())).0, ProxyHeader::Local);
    }

    #[test]
    fn a_truncated_header_asks_for_exactly_what_is_missing() {
        let input = v2(0x21, 0x11, &ipv4_body());
        assert_eq!(parse(&[]), Ok(Parsed::Incomplete(12)));
        assert_eq!(parse(&input[..5]), Ok(Parsed::Incomplete(7)));
        assert_eq!(parse(&input[..12]), Ok(Parsed::Incomplete(4)));
        assert_eq!(parse(&input[..16]), Ok(Parsed::Incomplete(12)));
        assert_eq!(parse(&input[..27]), Ok(Parsed::Incomplete(1)));
        assert!(matches!(parse(&input), Ok(Parsed::Header { .. })));
    }

    #[test]
    fn hostile_headers_are_refused() {
        assert_eq!(parse(b"EHLO x\r\n"), Err(ProxyError::NoSignature));
        assert_eq!(parse(b"\r\n\r\nX"), Err(ProxyError::NoSignature));
        assert_eq!(parse(b"\x16\x03\x01"), Err(ProxyError::NoSignature));
        // Version 3, and version 2 with command 2.
        assert_eq!(
            parse(&v2(0x31, 0x11, &ipv4_body())),
            Err(ProxyError::Unsupported(0x31))
        );
        assert_eq!(
            parse(&v2(0x22, 0x11, &ipv4_body())),
            Err(ProxyError::Unsupported(0x22))
        );
        // IPv4 addresses need 12 bytes.
        assert_eq!(
            parse(&v2(0x21, 0x11, &[0; 8])),
            Err(ProxyError::BadLength(8))
        );
        // Over the cap: refused on the length alone, before it is read.
        let mut huge = v2(0x21, 0x11, &[]);
        huge[14..16].copy_from_slice(&60000u16.to_be_bytes());
        assert_eq!(parse(&huge), Err(ProxyError::BadLength(60000)));
    }

    #[test]
    fn v1_lines_name_the_client_or_nobody() {
        let (header, length) = whole(b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\r\nEHLO");
        assert_eq!(
            header,
            ProxyHeader::Proxied {
                source: "192.0.2.1:56324".parse().unwrap(),
                destination: "198.51.100.2:25".parse().unwrap(),
            }
        );
        assert_eq!(length, 44);
        let (header, _) = whole(b"PROXY TCP6 2001:db8::1 2001:db8::2 443 1025\r\n");
        assert!(matches!(header, ProxyHeader::Proxied { source, .. } if source.is_ipv6()));
        assert_eq!(whole(b"PROXY UNKNOWN\r\n").0, ProxyHeader::Local);
        assert_eq!(parse(b"PROXY TCP4 192.0.2.1"), Ok(Parsed::Incomplete(1)));
        assert_eq!(parse(b"PRO"), Ok(Parsed::Incomplete(1)));
        for bad in [
            &b"PROXY TCP4 2001:db8::1 192.0.2.2 1 2\r\n"[..],
            b"PROXY TCP4 192.0.2.1 192.0.2.2 99999 2\r\n",
            b"PROXY TCP4 192.0.2.1 192.0.2.2 1\r\n",
            b"PROXY SCTP 192.0.2.1 192.0.2.2 1 2\r\n",
        ] {
            assert_eq!(parse(bad), Err(ProxyError::BadLine), "{bad:?}");
        }
        let endless = [b"PROXY ".as_slice(), &[b'1'; 120]].concat();
        assert_eq!(parse(&endless), Err(ProxyError::BadLine));
    }

    #[tokio::test]
    async fn the_reader_stops_at_the_end_of_the_header() {
        let mut input = v2(0x21, 0x11, &ipv4_body());
        input.extend_from_slice(b"QUIT\r\n");
        let mut stream = &input[..];
        let header = read_header(&mut stream).await.unwrap();
        assert!(matches!(header, ProxyHeader::Proxied { .. }));
        assert_eq!(stream, b"QUIT\r\n");

        let mut v1 = &b"PROXY UNKNOWN\r\nQUIT\r\n"[..];
        assert_eq!(read_header(&mut v1).await, Ok(ProxyHeader::Local));
        assert_eq!(v1, b"QUIT\r\n");
    }

    #[tokio::test]
    async fn the_reader_tells_a_silent_close_from_a_cut_header_and_a_stall() {
        let mut empty = &b""[..];
        assert_eq!(
            read_header(&mut empty).await,
            Err(ProxyError::Closed { partial: false })
        );
        let mut cut = &SIGNATURE[..6];
        assert_eq!(
            read_header(&mut cut).await,
            Err(ProxyError::Closed { partial: true })
        );
        let (_client, mut server) = tokio::io::duplex(64);
        let stalled = read_header_within(&mut server, Duration::from_millis(20)).await;
        assert_eq!(stalled, Err(ProxyError::TimedOut));
    }
}
