//! How a client conversation fails: which [`Stage`] and what happened.
//!
//! The texts say what happened in SMTP terms and nothing about how the program
//! that uses the client is invoked: a caller that has flags (the `sokkel` binary)
//! adds its own hints, a caller that records failures (relay) records these words.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use super::reply::ServerReply;
use super::tls::HandshakeFailure;

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
    /// The stage's name in messages: "{name} failed: ...".
    pub fn name(self) -> &'static str {
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
    /// No answer in time (the configured timeout).
    #[error("no answer within {} s", .0.as_secs_f64())]
    Timeout(Duration),
    /// The server closed the connection.
    #[error("the server closed the connection")]
    Closed,
    /// The server broke the protocol.
    #[error("{0}")]
    Protocol(String),
    /// TLS was required, and the server does not offer STARTTLS.
    #[error("the server does not offer STARTTLS")]
    StartTlsNotOffered,
    /// The TLS handshake (or getting ready for it) failed.
    #[error("TLS handshake with {server} failed: {reason}")]
    Handshake {
        /// The server as the user named it.
        server: String,
        /// Why.
        reason: HandshakeFailure,
    },
    /// A password would have gone unencrypted to a server that is not on this
    /// machine; the client refuses before sending it.
    #[error("refusing to send a password unencrypted to {0}")]
    CleartextPassword(SocketAddr),
    /// The server offers no AUTH mechanism at all.
    #[error("the server offers no AUTH mechanism (does it need TLS first?)")]
    NoAuthMechanism,
    /// The server offers AUTH, but neither PLAIN nor LOGIN.
    #[error("the server offers only {}", .0.join(" "))]
    NoUsableAuthMechanism(Vec<String>),
    /// The message is larger than the server's SIZE limit (RFC 1870).
    #[error("the message is {size} bytes; the server accepts at most {limit} (SIZE)")]
    TooBig {
        /// The message's size on the wire, without dot-stuffing.
        size: u64,
        /// The server's limit.
        limit: u64,
    },
    /// An address needs SMTPUTF8 (RFC 6531) and the server does not offer it.
    #[error("an address is not ASCII and the server does not offer SMTPUTF8")]
    Utf8NotOffered,
    /// An address holds a line break, another control character or an angle
    /// bracket, which would change the command it is written into; refused
    /// before anything is sent.
    #[error(
        "{0:?} is not an address that can be sent: it holds a control character or an angle bracket"
    )]
    UnsafeAddress(String),
    /// The envelope has no recipient.
    #[error("the envelope names no recipient")]
    NoRecipient,
    /// A message was given while the conversation could not take one (still
    /// connecting, or already over).
    #[error("the connection is not ready for a message")]
    NotReady,
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
    /// A failure at `stage`.
    pub fn new(stage: Stage, kind: FailureKind) -> Self {
        ClientError { stage, kind }
    }
}
