//! The client shell: connect, then run the [`Conversation`] over the socket.
//!
//! The conversation (greeting, EHLO, STARTTLS, AUTH, pipelined MAIL/RCPT/DATA) is
//! decided in [`super::core`]; this shell owns the TCP and TLS streams, applies a
//! timeout to every read and write, performs the TLS handshake when the
//! conversation asks for it, and shows every line to a [`Transcript`]. Every
//! failure says which [`Stage`] it happened in.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::capabilities::Capabilities;
pub use super::core::{AuthMechanism, Credentials, Envelope, SendReport, TlsMode};
use super::core::{Conversation, Output, Settings};
pub use super::error::{ClientError, FailureKind, Stage};
use super::reply::ServerReply;
use super::tls::HandshakeFailure;

/// Where to connect and how to behave.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The server as the user named it, for messages.
    pub server: String,
    /// Its addresses, tried in order.
    pub addrs: Vec<SocketAddr>,
    /// The name the server's certificate must carry.
    pub tls_name: String,
    /// When to use TLS.
    pub tls: TlsMode,
    /// The TLS settings; needed unless `tls` is [`TlsMode::None`].
    pub tls_config: Option<Arc<rustls::ClientConfig>>,
    /// The name to give in EHLO.
    pub ehlo_name: String,
    /// The longest wait for a connection, a reply or a write.
    pub timeout: Duration,
    /// The login, if any.
    pub credentials: Option<Credentials>,
}

/// What the transcript shows a line as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to server.
    Sent,
    /// Server to client.
    Received,
}

/// Receives every line of the conversation, for `-v`. Secrets are already redacted.
pub trait Transcript: Send {
    /// One protocol line (without CRLF); `tls` when it travelled encrypted.
    fn line(&mut self, direction: Direction, tls: bool, text: &str);
    /// The message content: its wire bytes, for a summary or in full.
    fn content(&mut self, tls: bool, wire: &[u8]);
    /// Something the client did that is not a protocol line (TLS established ...).
    fn note(&mut self, text: &str);
}

/// A transcript that shows nothing.
#[derive(Debug, Default)]
pub struct Silent;

impl Transcript for Silent {
    fn line(&mut self, _: Direction, _: bool, _: &str) {}
    fn content(&mut self, _: bool, _: &[u8]) {}
    fn note(&mut self, _: &str) {}
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Only while the plain stream is handed to the TLS handshake.
    Detached,
}

fn detached() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "the connection was lost during the TLS handshake",
    )
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Detached => Poll::Ready(Err(detached())),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Detached => Poll::Ready(Err(detached())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s).poll_flush(cx),
            Stream::Detached => Poll::Ready(Err(detached())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Detached => Poll::Ready(Err(detached())),
        }
    }
}

/// A connection that has greeted, upgraded and authenticated as configured, and can
/// send any number of messages.
pub struct SmtpClient<T: Transcript> {
    stream: Stream,
    conversation: Conversation,
    config: ClientConfig,
    transcript: T,
    peer: SocketAddr,
}

impl<T: Transcript> fmt::Debug for SmtpClient<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpClient")
            .field("peer", &self.peer)
            .field("caps", self.capabilities())
            .finish()
    }
}

/// Where a run of the conversation stopped, when it did not fail.
enum Pause {
    Ready,
    Sent(SendReport),
    Closed,
}

impl<T: Transcript> SmtpClient<T> {
    /// Connects and gets ready to send: greeting, EHLO (HELO if EHLO is refused),
    /// TLS as configured, AUTH if credentials were given.
    pub async fn connect(config: ClientConfig, mut transcript: T) -> Result<Self, ClientError> {
        let (tcp, peer) = sokkel_net::connect_any(&config.server, &config.addrs, config.timeout)
            .await
            .map_err(|e| ClientError::new(Stage::Connect, FailureKind::Connect(e)))?;
        let _ = tcp.set_nodelay(true);
        transcript.note(&format!("connected to {peer}"));
        let conversation = Conversation::new(Settings {
            ehlo_name: config.ehlo_name.clone(),
            tls: config.tls,
            credentials: config.credentials.clone(),
            peer,
        });
        let mut client = SmtpClient {
            stream: Stream::Plain(tcp),
            conversation,
            config,
            transcript,
            peer,
        };
        match client.run().await? {
            Pause::Ready => Ok(client),
            Pause::Sent(_) | Pause::Closed => {
                Err(ClientError::new(Stage::Banner, FailureKind::Closed))
            }
        }
    }

    /// What the server offered in its (last) EHLO reply.
    pub fn capabilities(&self) -> &Capabilities {
        self.conversation.capabilities()
    }

    /// The address the connection went to.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Whether the connection is encrypted.
    pub fn is_tls(&self) -> bool {
        matches!(self.stream, Stream::Tls(_))
    }

    /// The TLS protocol version and cipher suite, when encrypted.
    pub fn tls_parameters(&self) -> Option<(String, String)> {
        let Stream::Tls(tls) = &self.stream else {
            return None;
        };
        let (_, conn) = tls.get_ref();
        let version = conn
            .protocol_version()
            .map(|v| format!("{v:?}"))
            .unwrap_or_default();
        let cipher = conn
            .negotiated_cipher_suite()
            .map(|c| format!("{:?}", c.suite()))
            .unwrap_or_default();
        Some((version, cipher))
    }

    /// Sends one message to every recipient of `envelope`. Succeeds when at least one
    /// recipient accepted it; the report lists the ones that refused.
    pub async fn send(
        &mut self,
        envelope: &Envelope,
        message: &[u8],
    ) -> Result<SendReport, ClientError> {
        self.conversation.send(envelope, message);
        match self.run().await? {
            Pause::Sent(report) => Ok(report),
            Pause::Ready | Pause::Closed => {
                Err(ClientError::new(Stage::Mail, FailureKind::NotReady))
            }
        }
    }

    /// Says goodbye. Errors are ignored: the mail is already sent.
    pub async fn quit(mut self) {
        self.conversation.quit();
        let _ = self.run().await;
        let _ = self.stream.shutdown().await;
    }

    /// Does what the conversation says until it is ready, has sent a message, is
    /// over, or failed.
    async fn run(&mut self) -> Result<Pause, ClientError> {
        // One deadline per reply, from the moment the conversation waits for it.
        let mut reply_deadline = None;
        loop {
            let done = match self.conversation.next_output() {
                Output::Send { wire, shown } => {
                    let tls = self.is_tls();
                    for line in &shown {
                        self.transcript.line(Direction::Sent, tls, line);
                    }
                    self.write_all(&wire).await
                }
                Output::Content(wire) => {
                    self.transcript.content(self.is_tls(), &wire);
                    self.write_all(&wire).await
                }
                Output::Received(reply) => {
                    reply_deadline = None;
                    self.show_reply(&reply);
                    Ok(())
                }
                Output::Note(text) => {
                    self.transcript.note(&text);
                    Ok(())
                }
                Output::Read => {
                    let deadline =
                        *reply_deadline.get_or_insert_with(|| Instant::now() + self.config.timeout);
                    self.read_some(deadline).await
                }
                Output::StartTls => self.handshake().await,
                Output::Ready => return Ok(Pause::Ready),
                Output::Sent(report) => return Ok(Pause::Sent(report)),
                Output::Closed => return Ok(Pause::Closed),
                Output::Failed(err) => return Err(err),
            };
            if let Err(kind) = done {
                return Err(self.conversation.connection_lost(kind));
            }
        }
    }

    fn show_reply(&mut self, reply: &ServerReply) {
        let tls = self.is_tls();
        let last = reply.lines.len().saturating_sub(1);
        for (i, line) in reply.lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            self.transcript.line(
                Direction::Received,
                tls,
                &format!("{}{sep}{line}", reply.code),
            );
        }
    }

    async fn handshake(&mut self) -> Result<(), FailureKind> {
        let failed = |reason| FailureKind::Handshake {
            server: self.config.server.clone(),
            reason,
        };
        let config = self
            .config
            .tls_config
            .clone()
            .ok_or_else(|| failed(HandshakeFailure::NoSettings))?;
        let name = ServerName::try_from(self.config.tls_name.clone())
            .map_err(|_| failed(HandshakeFailure::InvalidName(self.config.tls_name.clone())))?;
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Detached) else {
            let why = "the connection is already encrypted".to_owned();
            return Err(failed(HandshakeFailure::Other(why)));
        };
        let handshake = TlsConnector::from(config).connect(name, tcp);
        let tls = tokio::time::timeout(self.config.timeout, handshake)
            .await
            .map_err(|_| FailureKind::Timeout(self.config.timeout))?
            .map_err(|e| failed(super::tls::handshake_failure(&e)))?;
        self.stream = Stream::Tls(Box::new(tls));
        self.conversation.tls_established();
        if let Some((version, cipher)) = self.tls_parameters() {
            self.transcript
                .note(&format!("TLS established: {version}, {cipher}"));
        }
        Ok(())
    }

    async fn write_all(&mut self, bytes: &[u8]) -> Result<(), FailureKind> {
        let timeout = self.config.timeout;
        let write = async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        };
        tokio::time::timeout(timeout, write)
            .await
            .map_err(|_| FailureKind::Timeout(timeout))?
            .map_err(io_failure)
    }

    /// Reads what has arrived (at least a byte) into the conversation.
    async fn read_some(&mut self, deadline: Instant) -> Result<(), FailureKind> {
        let mut buf = [0u8; 4096];
        let read = tokio::time::timeout_at(deadline, self.stream.read(&mut buf))
            .await
            .map_err(|_| FailureKind::Timeout(self.config.timeout))?
            .map_err(io_failure)?;
        if read == 0 {
            return Err(FailureKind::Closed);
        }
        self.conversation.received(&buf[..read]);
        Ok(())
    }
}

fn io_failure(err: io::Error) -> FailureKind {
    match err.kind() {
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::BrokenPipe => FailureKind::Closed,
        _ => FailureKind::Io(err),
    }
}
