//! The client shell: connect, greet, upgrade to TLS, authenticate, send.
//!
//! Every step belongs to a [`Stage`], and every failure says which, so that callers
//! can map failures to stable exit codes. Each read and write has a timeout.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::capabilities::Capabilities;
use super::data::{encode_data, normalise_line_endings};
use super::reply::{ReplyError, ServerReply, parse_reply};

/// When and how to use TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Never.
    None,
    /// STARTTLS, and fail if the server does not offer it.
    StartTls,
    /// STARTTLS if the server offers it, plain text otherwise.
    StartTlsIfOffered,
    /// TLS from the first byte (SMTPS, port 465).
    Implicit,
}

/// Which AUTH mechanism to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMechanism {
    /// AUTH PLAIN (RFC 4616).
    Plain,
    /// AUTH LOGIN.
    Login,
    /// PLAIN if offered, else LOGIN.
    Auto,
}

/// A login. The password is never shown: not in `Debug`, not in the transcript.
#[derive(Clone)]
pub struct Credentials {
    /// The user name.
    pub user: String,
    /// The password.
    pub password: String,
    /// The mechanism to use.
    pub mechanism: AuthMechanism,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"[redacted]")
            .field("mechanism", &self.mechanism)
            .finish()
    }
}

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

/// The step of the conversation an error happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Connecting to the server.
    Connect,
    /// Waiting for the 220 greeting.
    Banner,
    /// EHLO, or HELO after EHLO was refused.
    Ehlo,
    /// STARTTLS or the TLS handshake.
    Tls,
    /// AUTH.
    Auth,
    /// MAIL FROM, including checks of the message against the server's limits.
    Mail,
    /// RCPT TO: no recipient was accepted.
    Rcpt,
    /// The DATA command (before the content).
    Data,
    /// The reply after the content's final dot.
    AfterData,
}

impl Stage {
    /// The stable exit code `sokkel mail send` uses for a failure at this stage.
    pub fn exit_code(self) -> u8 {
        match self {
            Stage::Connect => 20,
            Stage::Banner => 21,
            Stage::Ehlo => 22,
            Stage::Mail => 23,
            Stage::Rcpt => 24,
            Stage::Data => 25,
            Stage::AfterData => 26,
            Stage::Auth => 28,
            Stage::Tls => 29,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Stage::Connect => "connect",
            Stage::Banner => "greeting",
            Stage::Ehlo => "EHLO",
            Stage::Tls => "TLS",
            Stage::Auth => "AUTH",
            Stage::Mail => "MAIL FROM",
            Stage::Rcpt => "RCPT TO",
            Stage::Data => "DATA",
            Stage::AfterData => "message content",
        }
    }
}

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum FailureKind {
    /// The server answered with an error reply.
    #[error("the server said {0}")]
    Refused(ServerReply),
    /// Connecting failed at every address.
    #[error(transparent)]
    Connect(sokkel_net::NetError),
    /// A read or write failed.
    #[error("{0}")]
    Io(#[source] io::Error),
    /// No answer in time.
    #[error("no answer within {} s (--timeout)", .0.as_secs_f64())]
    Timeout(Duration),
    /// The server closed the connection.
    #[error("the server closed the connection")]
    Closed,
    /// The server broke the protocol.
    #[error("{0}")]
    Protocol(String),
}

/// A failed step, and which stage it was in.
#[derive(Debug, thiserror::Error)]
#[error("{} failed: {kind}", stage.name())]
pub struct ClientError {
    /// The stage.
    pub stage: Stage,
    /// What happened.
    pub kind: FailureKind,
}

impl ClientError {
    fn new(stage: Stage, kind: FailureKind) -> Self {
        ClientError { stage, kind }
    }
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

/// One message to send.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// MAIL FROM; empty for the null sender.
    pub from: String,
    /// RCPT TO, in order.
    pub to: Vec<String>,
}

/// How sending one message went, when at least one recipient got it.
#[derive(Debug, Clone)]
pub struct SendReport {
    /// Recipients the server accepted.
    pub accepted: Vec<String>,
    /// Recipients the server refused, with its reply.
    pub refused: Vec<(String, ServerReply)>,
    /// The server's reply after the content (the "queued as" line).
    pub reply: ServerReply,
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
    /// Bytes read but not yet parsed into replies.
    inbox: Vec<u8>,
    caps: Capabilities,
    config: ClientConfig,
    transcript: T,
    peer: SocketAddr,
}

impl<T: Transcript> fmt::Debug for SmtpClient<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpClient")
            .field("peer", &self.peer)
            .field("caps", &self.caps)
            .finish()
    }
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
        let mut client = SmtpClient {
            stream: Stream::Plain(tcp),
            inbox: Vec::new(),
            caps: Capabilities::default(),
            config,
            transcript,
            peer,
        };
        if client.config.tls == TlsMode::Implicit {
            client.handshake().await?;
        }
        let banner = client.read_reply(Stage::Banner).await?;
        if banner.code != 220 {
            return Err(ClientError::new(
                Stage::Banner,
                FailureKind::Refused(banner),
            ));
        }
        client.hello().await?;
        let want_tls = match client.config.tls {
            TlsMode::StartTls => {
                if !client.caps.starttls {
                    let why = "the server does not offer STARTTLS (use --tls starttls-if-offered or none)";
                    return Err(ClientError::new(
                        Stage::Tls,
                        FailureKind::Protocol(why.into()),
                    ));
                }
                true
            }
            TlsMode::StartTlsIfOffered => client.caps.starttls,
            TlsMode::None | TlsMode::Implicit => false,
        };
        if want_tls {
            let reply = client.command(Stage::Tls, "STARTTLS").await?;
            if reply.code != 220 {
                return Err(ClientError::new(Stage::Tls, FailureKind::Refused(reply)));
            }
            // Anything the server sent after its 220 came before the handshake: it
            // was never protected, so it must not be read as a reply.
            if !client.inbox.is_empty() {
                client.transcript.note(&format!(
                    "discarded {} bytes the server sent before TLS",
                    client.inbox.len()
                ));
                client.inbox.clear();
            }
            client.handshake().await?;
            // Everything learnt before TLS is forgotten (RFC 3207 section 4.2).
            client.caps = Capabilities::default();
            client.hello().await?;
        }
        if let Some(credentials) = client.config.credentials.clone() {
            client.authenticate(&credentials).await?;
        }
        Ok(client)
    }

    /// What the server offered in its (last) EHLO reply.
    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
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

    async fn handshake(&mut self) -> Result<(), ClientError> {
        let tls_error = |why: String| ClientError::new(Stage::Tls, FailureKind::Protocol(why));
        let config = self
            .config
            .tls_config
            .clone()
            .ok_or_else(|| tls_error("no TLS configuration".into()))?;
        let name = ServerName::try_from(self.config.tls_name.clone()).map_err(|_| {
            tls_error(format!(
                "{:?} is not a valid TLS server name",
                self.config.tls_name
            ))
        })?;
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Detached) else {
            return Err(tls_error("the connection is already encrypted".into()));
        };
        let handshake = TlsConnector::from(config).connect(name, tcp);
        let tls = tokio::time::timeout(self.config.timeout, handshake)
            .await
            .map_err(|_| ClientError::new(Stage::Tls, FailureKind::Timeout(self.config.timeout)))?
            .map_err(|e| {
                tls_error(format!(
                    "TLS handshake with {} failed: {}",
                    self.config.server,
                    super::tls::explain(&e)
                ))
            })?;
        self.stream = Stream::Tls(Box::new(tls));
        if let Some((version, cipher)) = self.tls_parameters() {
            self.transcript
                .note(&format!("TLS established: {version}, {cipher}"));
        }
        Ok(())
    }

    async fn hello(&mut self) -> Result<(), ClientError> {
        let ehlo = format!("EHLO {}", self.config.ehlo_name);
        let reply = self.command(Stage::Ehlo, &ehlo).await?;
        if reply.is_positive() {
            self.caps = Capabilities::from_ehlo(&reply);
            return Ok(());
        }
        if !reply.is_transient() {
            let helo = format!("HELO {}", self.config.ehlo_name);
            let reply = self.command(Stage::Ehlo, &helo).await?;
            if reply.is_positive() {
                self.caps = Capabilities::default();
                return Ok(());
            }
            return Err(ClientError::new(Stage::Ehlo, FailureKind::Refused(reply)));
        }
        Err(ClientError::new(Stage::Ehlo, FailureKind::Refused(reply)))
    }

    async fn authenticate(&mut self, credentials: &Credentials) -> Result<(), ClientError> {
        let auth_error = |why: String| ClientError::new(Stage::Auth, FailureKind::Protocol(why));
        if !self.is_tls() && !self.peer.ip().is_loopback() {
            return Err(auth_error(format!(
                "refusing to send a password unencrypted to {}; use --tls starttls or --tls implicit",
                self.peer
            )));
        }
        let mechanism = match credentials.mechanism {
            AuthMechanism::Plain => AuthMechanism::Plain,
            AuthMechanism::Login => AuthMechanism::Login,
            AuthMechanism::Auto if self.caps.offers_auth("PLAIN") => AuthMechanism::Plain,
            AuthMechanism::Auto if self.caps.offers_auth("LOGIN") => AuthMechanism::Login,
            AuthMechanism::Auto if self.caps.auth.is_empty() => {
                return Err(auth_error(
                    "the server offers no AUTH mechanism (does it need TLS first?)".into(),
                ));
            }
            AuthMechanism::Auto => {
                return Err(auth_error(format!(
                    "the server offers only {}",
                    self.caps.auth.join(" ")
                )));
            }
        };
        let reply = match mechanism {
            AuthMechanism::Plain => {
                let token =
                    BASE64.encode(format!("\0{}\0{}", credentials.user, credentials.password));
                self.send_line(
                    Stage::Auth,
                    &format!("AUTH PLAIN {token}"),
                    "AUTH PLAIN [redacted]",
                )
                .await?;
                self.read_reply(Stage::Auth).await?
            }
            _ => {
                let reply = self.command(Stage::Auth, "AUTH LOGIN").await?;
                if reply.code != 334 {
                    return Err(ClientError::new(Stage::Auth, FailureKind::Refused(reply)));
                }
                self.send_line(
                    Stage::Auth,
                    &BASE64.encode(&credentials.user),
                    "[user name redacted]",
                )
                .await?;
                let reply = self.read_reply(Stage::Auth).await?;
                if reply.code != 334 {
                    return Err(ClientError::new(Stage::Auth, FailureKind::Refused(reply)));
                }
                self.send_line(
                    Stage::Auth,
                    &BASE64.encode(&credentials.password),
                    "[password redacted]",
                )
                .await?;
                self.read_reply(Stage::Auth).await?
            }
        };
        if reply.code != 235 {
            return Err(ClientError::new(Stage::Auth, FailureKind::Refused(reply)));
        }
        Ok(())
    }

    /// Sends one message to every recipient of `envelope`. Succeeds when at least one
    /// recipient accepted it; the report lists the ones that refused.
    pub async fn send(
        &mut self,
        envelope: &Envelope,
        message: &[u8],
    ) -> Result<SendReport, ClientError> {
        // What goes on the wire after 354, less dot-stuffing and the final dot: the
        // number SIZE= declares (RFC 1870), so the last line gets its CRLF here.
        let mut content = normalise_line_endings(message);
        if !content.is_empty() && !content.ends_with(b"\r\n") {
            content.extend_from_slice(b"\r\n");
        }
        if let Some(limit) = self.caps.size.filter(|&n| n > 0)
            && content.len() as u64 > limit
        {
            let why = format!(
                "the message is {} bytes; the server accepts at most {limit} (SIZE)",
                content.len()
            );
            return Err(ClientError::new(Stage::Mail, FailureKind::Protocol(why)));
        }
        let needs_utf8 = !envelope.from.is_ascii() || envelope.to.iter().any(|a| !a.is_ascii());
        if needs_utf8 && !self.caps.smtputf8 {
            let why = "an address is not ASCII and the server does not offer SMTPUTF8";
            return Err(ClientError::new(
                Stage::Mail,
                FailureKind::Protocol(why.into()),
            ));
        }
        let mut mail = format!("MAIL FROM:<{}>", envelope.from);
        if self.caps.size.is_some() {
            mail.push_str(&format!(" SIZE={}", content.len()));
        }
        if self.caps.eight_bit_mime && !content.is_ascii() {
            mail.push_str(" BODY=8BITMIME");
        }
        if needs_utf8 {
            mail.push_str(" SMTPUTF8");
        }
        let rcpts: Vec<String> = envelope
            .to
            .iter()
            .map(|to| format!("RCPT TO:<{to}>"))
            .collect();

        // With PIPELINING, MAIL, every RCPT and DATA go in one write (RFC 2920); the
        // replies are then read in the same order.
        let pipelined = self.caps.pipelining;
        if pipelined {
            let mut batch = String::new();
            for line in std::iter::once(&mail)
                .chain(&rcpts)
                .chain(std::iter::once(&"DATA".to_owned()))
            {
                self.transcript.line(Direction::Sent, self.is_tls(), line);
                batch.push_str(line);
                batch.push_str("\r\n");
            }
            self.write_all(Stage::Mail, batch.as_bytes()).await?;
        }
        let mail_reply = if pipelined {
            self.read_reply(Stage::Mail).await?
        } else {
            self.command(Stage::Mail, &mail).await?
        };
        let mut accepted = Vec::new();
        let mut refused = Vec::new();
        for (to, line) in envelope.to.iter().zip(&rcpts) {
            if !pipelined && !mail_reply.is_positive() {
                break;
            }
            let reply = if pipelined {
                self.read_reply(Stage::Rcpt).await
            } else {
                self.command(Stage::Rcpt, line).await
            };
            // A server that refused MAIL (or every RCPT so far) with 421 and hung up:
            // its refusal is the news, not the closed connection after it.
            let reply = reply
                .map_err(|err| earlier_failure(&mail_reply, &accepted, &refused).unwrap_or(err))?;
            if reply.is_positive() {
                accepted.push(to.clone());
            } else {
                refused.push((to.clone(), reply));
            }
        }
        let data_reply =
            if pipelined {
                let reply = self.read_reply(Stage::Data).await;
                Some(reply.map_err(|err| {
                    earlier_failure(&mail_reply, &accepted, &refused).unwrap_or(err)
                })?)
            } else if mail_reply.is_positive() && !accepted.is_empty() {
                Some(self.command(Stage::Data, "DATA").await?)
            } else {
                None
            };
        let failure = earlier_failure(&mail_reply, &accepted, &refused);
        match (failure, data_reply) {
            (Some(failure), Some(reply)) if reply.code == 354 => {
                // The server wants content it will throw away: end it at once, then
                // say why the message was not sent.
                self.write_all(Stage::Data, b".\r\n").await?;
                self.read_reply(Stage::Data).await?;
                Err(failure)
            }
            (Some(failure), _) => {
                let _ = self.command(Stage::Mail, "RSET").await;
                Err(failure)
            }
            (None, Some(reply)) if reply.code == 354 => {
                let wire = encode_data(&content);
                self.transcript.content(self.is_tls(), &wire);
                self.write_all(Stage::AfterData, &wire).await?;
                let reply = self.read_reply(Stage::AfterData).await?;
                if !reply.is_positive() {
                    return Err(ClientError::new(
                        Stage::AfterData,
                        FailureKind::Refused(reply),
                    ));
                }
                Ok(SendReport {
                    accepted,
                    refused,
                    reply,
                })
            }
            (None, reply) => {
                let kind = reply.map_or(FailureKind::Closed, FailureKind::Refused);
                Err(ClientError::new(Stage::Data, kind))
            }
        }
    }

    /// Says goodbye. Errors are ignored: the mail is already sent.
    pub async fn quit(mut self) {
        let _ = self.command(Stage::AfterData, "QUIT").await;
        let _ = self.stream.shutdown().await;
    }

    async fn command(&mut self, stage: Stage, line: &str) -> Result<ServerReply, ClientError> {
        self.send_line(stage, line, line).await?;
        self.read_reply(stage).await
    }

    async fn send_line(
        &mut self,
        stage: Stage,
        line: &str,
        shown: &str,
    ) -> Result<(), ClientError> {
        self.transcript.line(Direction::Sent, self.is_tls(), shown);
        let mut wire = Vec::with_capacity(line.len() + 2);
        wire.extend_from_slice(line.as_bytes());
        wire.extend_from_slice(b"\r\n");
        self.write_all(stage, &wire).await
    }

    async fn write_all(&mut self, stage: Stage, bytes: &[u8]) -> Result<(), ClientError> {
        let timeout = self.config.timeout;
        let write = async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        };
        tokio::time::timeout(timeout, write)
            .await
            .map_err(|_| ClientError::new(stage, FailureKind::Timeout(timeout)))?
            .map_err(|e| ClientError::new(stage, io_failure(e)))
    }

    async fn read_reply(&mut self, stage: Stage) -> Result<ServerReply, ClientError> {
        let timeout = self.config.timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match parse_reply(&self.inbox) {
                Ok(Some((reply, used))) => {
                    self.inbox.drain(..used);
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
                    return Ok(reply);
                }
                Ok(None) => {}
                Err(err) => return Err(ClientError::new(stage, protocol_failure(err))),
            }
            self.inbox.reserve(4096);
            let read = tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.inbox))
                .await
                .map_err(|_| ClientError::new(stage, FailureKind::Timeout(timeout)))?
                .map_err(|e| ClientError::new(stage, io_failure(e)))?;
            if read == 0 {
                return Err(ClientError::new(stage, FailureKind::Closed));
            }
        }
    }
}

/// The refusal that stops the transaction, judged from the replies so far: MAIL
/// refused, or every recipient so far refused (the first refusal is reported).
fn earlier_failure(
    mail_reply: &ServerReply,
    accepted: &[String],
    refused: &[(String, ServerReply)],
) -> Option<ClientError> {
    if !mail_reply.is_positive() {
        return Some(ClientError::new(
            Stage::Mail,
            FailureKind::Refused(mail_reply.clone()),
        ));
    }
    match refused.first() {
        Some((_, reply)) if accepted.is_empty() => Some(ClientError::new(
            Stage::Rcpt,
            FailureKind::Refused(reply.clone()),
        )),
        _ => None,
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

fn protocol_failure(err: ReplyError) -> FailureKind {
    FailureKind::Protocol(format!("the server's reply makes no sense: {err}"))
}
