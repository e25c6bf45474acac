//! The message as it travels between the protocols and the mail store.
//!
//! ```text
//! smtp shell ──NewMessage──▶ Deliver::deliver ──▶ store ──MessageId──▶ "250 ... queued as <id>"
//! pop3 shell ──maildrop() / raw(id) / delete(ids) / set_read(ids)──▶ Mailbox (the store)
//! ```
//!
//! The protocol crates depend on this crate and not on the store, so their cores
//! and shells compile (and are fuzzed) without a database, their tests use a sink
//! in memory, and another store can take the place of the SQLite one by
//! implementing [`Deliver`] and [`Mailbox`].
//!
//! - [`MessageId`], [`Envelope`], [`TlsInfo`], [`NewMessage`]: what a message is
//!   before and after it is stored.
//! - [`Deliver`]: what the SMTP shell hands finished messages to; [`DeliverError`]
//!   is every way that can fail.
//! - [`Mailbox`]: what the POP3 shell reads and deletes; [`MailboxError`] is every
//!   way that can fail.
#![warn(missing_docs)]

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::num::ParseIntError;
use std::str::FromStr;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// The store's id of a message: positive, assigned at delivery, never reused, even
/// after the message (or every message) is deleted, so POP3 UIDs stay stable.
///
/// Written and parsed as the plain decimal number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageId(pub i64);

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for MessageId {
    type Err = ParseIntError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(MessageId)
    }
}

/// The TLS parameters of the connection a message arrived on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsInfo {
    /// The protocol version, e.g. `TLSv1.3`.
    pub version: String,
    /// The negotiated cipher suite by its IANA name, e.g. `TLS_AES_256_GCM_SHA384`.
    pub cipher: String,
}

/// What the SMTP conversation said about a message, as opposed to its headers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The reverse-path without angle brackets; empty for the null sender `<>`.
    pub mail_from: String,
    /// Every accepted forward-path, in order, without angle brackets.
    pub rcpt_to: Vec<String>,
    /// The name the client gave in HELO or EHLO.
    pub helo: String,
    /// The client's address and port.
    pub client_addr: SocketAddr,
    /// The client ended lines with a bare LF instead of CRLF.
    pub bare_lf: bool,
    /// The client asked for SMTPUTF8.
    pub smtputf8: bool,
    /// The TLS parameters, if the session used TLS.
    pub tls: Option<TlsInfo>,
    /// The user the client authenticated as, if it did.
    pub auth_user: Option<String>,
}

/// A finished message on its way into the store.
#[derive(Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// What SMTP knows about the message.
    pub envelope: Envelope,
    /// When the server finished receiving it.
    pub received_at: SystemTime,
    /// The message exactly as received (dot-unstuffed), headers and body.
    pub raw: Vec<u8>,
}

impl fmt::Debug for NewMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewMessage")
            .field("envelope", &self.envelope)
            .field("received_at", &self.received_at)
            .field("raw_len", &self.raw.len())
            .finish()
    }
}

/// Why a message was not stored.
///
/// Every variant is transient for the SMTP client (`451 4.3.0`): nothing of the
/// message was kept, and trying again later may work. The error is `Clone` because
/// a store may answer every delivery of a failed batch with the same error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeliverError {
    /// The store reached its size limit or the disk is full. Deleting messages
    /// makes room again.
    #[error("the mail store is full; delete messages to make room")]
    Full,
    /// The store could not take the message for any other reason (locked by
    /// another process, an I/O error, shutting down); the text is the store's own
    /// one-line account of it.
    #[error("{0}")]
    Unavailable(String),
}

/// What the SMTP shell hands finished messages to.
///
/// The mail store implements it; SMTP tests use an in-memory sink. The returned
/// future resolves only once the message is durably stored: an `Ok` is the promise
/// behind the SMTP `250` after DATA, an `Err` becomes a transient `451`.
pub trait Deliver: Send + Sync + 'static {
    /// Store `message` and return its id once it is durable.
    fn deliver(
        &self,
        message: NewMessage,
    ) -> impl Future<Output = Result<MessageId, DeliverError>> + Send;
}

/// Why the store could not answer a [`Mailbox`] call.
///
/// The POP3 shell logs it and answers the client with a transient `-ERR`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MailboxError {
    /// The store could not be read or changed (locked by another process, an I/O
    /// error, a full disk); the text is the store's own one-line account of it.
    #[error("{0}")]
    Unavailable(String),
}

/// What the POP3 shell reads and deletes: the store seen as one mailbox per login.
///
/// Every call blocks (on disk or a database): async callers run it under
/// `tokio::task::spawn_blocking`. Ids are those [`Deliver::deliver`] returned.
pub trait Mailbox: Send + Sync {
    /// The messages a login sees, oldest first, with their sizes in bytes. POP3
    /// numbers them 1..n in this order; the id is the message's UID.
    ///
    /// `None` lists every message. `Some(recipient)` lists only messages with that
    /// address among their envelope recipients, compared without regard to case:
    /// an address with an `@` must match a recipient whole; a bare name without an
    /// `@` (a login such as `morty`) matches every recipient with that local part,
    /// whatever its domain, since a catcher sees mail for domains it does not own.
    fn maildrop(&self, recipient: Option<&str>) -> Result<Vec<(MessageId, u64)>, MailboxError>;

    /// The message exactly as received; `None` if it no longer exists.
    fn raw(&self, id: MessageId) -> Result<Option<Vec<u8>>, MailboxError>;

    /// Delete these messages; returns how many existed and were deleted.
    fn delete(&self, ids: &[MessageId]) -> Result<u64, MailboxError>;

    /// Mark these messages read or unread; returns how many of them exist.
    fn set_read(&self, ids: &[MessageId], read: bool) -> Result<u64, MailboxError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids appear in URLs, POP3 UIDs, SMTP replies and JSON: all the same number.
    #[test]
    fn message_id_is_the_plain_number_in_text_and_json() {
        let id: MessageId = "42".parse().unwrap();
        assert_eq!(id, MessageId(42));
        assert_eq!(id.to_string(), "42");
        assert_eq!(serde_json::to_string(&id).unwrap(), "42");
        assert_eq!(serde_json::from_str::<MessageId>("42").unwrap(), id);
        let big = MessageId(i64::MAX);
        assert_eq!(big.to_string().parse::<MessageId>().unwrap(), big);
    }

    #[test]
    fn message_id_refuses_what_is_not_a_number() {
        for text in ["", "4 2", "x1", "1.0", "99999999999999999999"] {
            assert!(text.parse::<MessageId>().is_err(), "{text:?}");
        }
        assert!(serde_json::from_str::<MessageId>("\"42\"").is_err());
    }
}
