//! The echo client session: send a message framed, wait for its complete echo.
//!
//! Used by `sokkel echo client`; the terminal and stdin handling live in the binary.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::Instant;

use crate::EchoError;
use crate::framing::Framing;

/// The socket a client talks over.
#[derive(Debug)]
pub enum Link {
    /// A TCP connection.
    Tcp(TcpStream),
    /// A UDP socket connected to the server's address.
    Udp(UdpSocket),
}

impl Link {
    /// Opens a UDP socket of the right family and connects it to `server`.
    pub async fn udp(server: SocketAddr) -> Result<Link, EchoError> {
        let local: SocketAddr = if server.is_ipv6() {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(local).await.map_err(EchoError::Send)?;
        socket.connect(server).await.map_err(EchoError::Send)?;
        Ok(Link::Udp(socket))
    }
}

/// An echo reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The reply's payload: the frame without header or line feed.
    pub payload: Vec<u8>,
    /// From the first byte sent to the last byte of the reply received.
    pub rtt: Duration,
}

/// A client session over one link.
#[derive(Debug)]
pub struct EchoClient {
    link: Link,
    framing: Framing,
    max_frame: usize,
    timeout: Duration,
    /// Bytes received beyond the last reply.
    inbox: Vec<u8>,
}

impl EchoClient {
    /// Starts a session; every reply must come within `timeout`.
    pub fn new(link: Link, framing: Framing, max_frame: usize, timeout: Duration) -> Self {
        if let Link::Tcp(stream) = &link {
            let _ = stream.set_nodelay(true);
        }
        EchoClient {
            link,
            framing,
            max_frame,
            timeout,
            inbox: Vec::new(),
        }
    }

    /// Sends `payload` in one frame and waits for its echo. Over UDP the payload is
    /// one datagram and the reply the next datagram.
    pub async fn round_trip(&mut self, payload: &[u8]) -> Result<Reply, EchoError> {
        let mut frame = Vec::with_capacity(payload.len() + self.framing.overhead());
        self.framing.encode(payload, &mut frame)?;
        let started = Instant::now();
        let deadline = started + self.timeout;
        let payload = match &mut self.link {
            Link::Udp(socket) => {
                socket.send(payload).await.map_err(EchoError::Send)?;
                let mut buf = vec![0; 65_536];
                let n = tokio::time::timeout_at(deadline, socket.recv(&mut buf))
                    .await
                    .map_err(|_| EchoError::Timeout(self.timeout))?
                    .map_err(EchoError::Receive)?;
                buf.truncate(n);
                buf
            }
            Link::Tcp(stream) => {
                stream.write_all(&frame).await.map_err(EchoError::Send)?;
                // Raw bytes have no frame: the echo is as long as what was sent.
                let expected = match self.framing {
                    Framing::Raw => Some(frame.len()),
                    _ => None,
                };
                loop {
                    let complete = match expected {
                        Some(len) => (self.inbox.len() >= len).then_some((len, 0, len)),
                        None => self
                            .framing
                            .next_frame(&self.inbox, self.max_frame)?
                            .map(|s| (s.len, s.payload_start, s.payload_end)),
                    };
                    if let Some((len, start, end)) = complete {
                        let payload = self.inbox[start..end].to_vec();
                        self.inbox.drain(..len);
                        break payload;
                    }
                    let mut buf = [0u8; 16 * 1024];
                    let n = tokio::time::timeout_at(deadline, stream.read(&mut buf))
                        .await
                        .map_err(|_| EchoError::Timeout(self.timeout))?
                        .map_err(EchoError::Receive)?;
                    if n == 0 {
                        return Err(EchoError::Closed {
                            received: self.inbox.len(),
                            expected: expected.unwrap_or(0),
                        });
                    }
                    self.inbox.extend_from_slice(&buf[..n]);
                }
            }
        };
        Ok(Reply {
            payload,
            rtt: started.elapsed(),
        })
    }

    /// Ends the session the polite way: shuts down the sending side, then returns
    /// whatever the server still sends until it closes (bounded by the timeout).
    pub async fn finish(mut self) -> Result<Vec<u8>, EchoError> {
        let Link::Tcp(stream) = &mut self.link else {
            return Ok(Vec::new());
        };
        stream.shutdown().await.map_err(EchoError::Send)?;
        let mut rest = std::mem::take(&mut self.inbox);
        tokio::time::timeout(self.timeout, stream.read_to_end(&mut rest))
            .await
            .map_err(|_| EchoError::Timeout(self.timeout))?
            .map_err(EchoError::Receive)?;
        Ok(rest)
    }
}
