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
//! - [`Folders`]: what the IMAP shell reads and changes, the store as
//!   [`Folder`]s of [`FolderMessage`]s with [`Flags`].
//! - [`mailbox`]: messages in files, as mbox and Maildir keep them (for
//!   `mail import` and `mail export`).
#![warn(missing_docs)]

pub mod mailbox;

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

/// Why the store could not answer a [`Mailbox`] or [`Folders`] call.
///
/// The POP3 shell logs it and answers the client with a transient `-ERR`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MailboxError {
    /// The store could not be read or changed (locked by another process, an I/O
    /// error, a full disk); the text is the store's own one-line account of it.
    #[error("{0}")]
    Unavailable(String),
    /// The request breaks one of the store's rules (a tag name it cannot take,
    /// a message over the size limit); the text says which, for the client.
    #[error("{0}")]
    Refused(String),
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

/// A folder of the store as IMAP shows it ([`Folders`]).
///
/// Each folder numbers its messages with its own UIDs, ascending in the order
/// messages entered it and never reused: a message tagged late gets a UID in
/// the tag's folder above every earlier one, as RFC 3501 section 2.3.1.1
/// requires, even though its store id is older.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Folder {
    /// The caught mail: every message, or with `recipient` only the messages
    /// [`Mailbox::maildrop`] gives that login. UIDs are the store's ids.
    Inbox {
        /// The login whose mail this is, when the server shows each login
        /// only its own mail (`--pop3-per-recipient`).
        recipient: Option<String>,
    },
    /// Copies a mail client saved after sending (Thunderbird APPENDs one per
    /// message it sends). Kept apart from the caught mail: they are not in the
    /// web page, the API, search, POP3 or the INBOX.
    Sent,
    /// The messages with this tag (Gmail-style labels): COPY into it adds the
    /// tag, EXPUNGE there takes it off. The name is the tag's, in its case.
    Tag(String),
}

/// One message in a [`Folder`], as an IMAP session keeps track of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderMessage {
    /// Its UID in the folder (see [`Folder`]).
    pub uid: u32,
    /// The message in the store, for [`Folders::raw`] and every change.
    pub id: MessageId,
    /// The size of the raw message in bytes (RFC822.SIZE).
    pub size: u64,
    /// When the store received it (INTERNALDATE).
    pub received_at: SystemTime,
    /// The flags (see [`Flags`]).
    pub flags: Flags,
    /// The number of the last change to this message (CONDSTORE MODSEQ).
    pub modseq: u64,
}

/// The IMAP flags of a message, shared by every folder that shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    /// `\Seen`: the store's read state, the same the web page shows.
    pub seen: bool,
    /// `\Flagged`: the store's star.
    pub flagged: bool,
    /// Every other flag, as the client spelled it: `\Answered`, `\Draft`,
    /// `\Deleted` and keywords (`$Forwarded`, `$label1`, `NonJunk`, ...), each
    /// once (compared without regard to case), in the order they were set.
    pub other: Vec<String>,
}

/// A change to the flags of messages ([`Folders::set_flags`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlagEdit {
    /// Replace all flags (`STORE FLAGS`).
    Set(Flags),
    /// Add these (`STORE +FLAGS`); `seen`/`flagged` false means "leave as is".
    Add(Flags),
    /// Take these off (`STORE -FLAGS`); `seen`/`flagged` false means "leave as is".
    Remove(Flags),
}

/// What the IMAP shell reads and changes: the store as folders of messages.
///
/// Every call blocks (on disk or a database): async callers run it under
/// `tokio::task::spawn_blocking`. Changes are committed before the call returns
/// and bump the store's change counter ([`Folders::highest_modseq`]), which is
/// how other sessions learn of them.
pub trait Folders: Send + Sync {
    /// The UIDVALIDITY of `folder`: never zero; it changes when the store is
    /// created anew, and for a tag's folder when the tag is deleted and made
    /// again, so that no client mixes up the UIDs of the old and new folder.
    fn uid_validity(&self, folder: &Folder) -> Result<u32, MailboxError>;

    /// The number of the store's latest change, deletes included: it only
    /// grows, so a session that saw `n` knows nothing changed while it is `n`.
    fn highest_modseq(&self) -> Result<u64, MailboxError>;

    /// The tag folders that exist: every tag a message has, and every folder
    /// made with [`Folders::create_folder`] even while empty; sorted by name
    /// without regard to case.
    fn folder_names(&self) -> Result<Vec<String>, MailboxError>;

    /// The messages in `folder`, by ascending UID, and the UID the next
    /// message to enter it will get (UIDNEXT). `None` if a tag folder does not
    /// exist.
    fn messages(&self, folder: &Folder) -> Result<Option<(Vec<FolderMessage>, u32)>, MailboxError>;

    /// The message exactly as received (for [`Folder::Sent`], as appended);
    /// `None` if it no longer exists.
    fn raw(&self, folder: &Folder, id: MessageId) -> Result<Option<Vec<u8>>, MailboxError>;

    /// Change the flags of these messages in one transaction. Messages whose
    /// flags this changes get a new modseq; `\Seen` and `\Flagged` are the read
    /// state and the star that the web page, the API and POP3 share.
    fn set_flags(
        &self,
        folder: &Folder,
        ids: &[MessageId],
        edit: &FlagEdit,
    ) -> Result<(), MailboxError>;

    /// Store `raw` in `folder` with these flags and INTERNALDATE, as APPEND
    /// does: into [`Folder::Inbox`] as if delivered over SMTP, into
    /// [`Folder::Sent`] as a sent copy, into a tag's folder as a delivered
    /// message with that tag. Returns the UID it got in `folder`.
    fn append(
        &self,
        folder: &Folder,
        raw: Vec<u8>,
        flags: &Flags,
        received_at: SystemTime,
    ) -> Result<u32, MailboxError>;

    /// Put the messages `ids` of folder `from` into folder `to` (COPY), in
    /// order, and return the UID each got in `to`, for COPYUID: into a tag's
    /// folder, the tag is added (a message that has it already keeps its UID
    /// there); into [`Folder::Sent`], copies are made; into the INBOX, the
    /// message is there already (a sent copy is delivered as a new message).
    fn copy(&self, from: &Folder, ids: &[MessageId], to: &Folder)
    -> Result<Vec<u32>, MailboxError>;

    /// Take the messages `ids` out of `folder` (EXPUNGE): from the INBOX they
    /// are deleted from the store, from a tag's folder the tag is taken off
    /// (and `\Deleted` cleared, so the message does not vanish from the INBOX
    /// at its next EXPUNGE), from Sent the copies are deleted.
    fn expunge(&self, folder: &Folder, ids: &[MessageId]) -> Result<(), MailboxError>;

    /// Make an empty tag folder (CREATE). `false` if it exists already.
    fn create_folder(&self, name: &str) -> Result<bool, MailboxError>;

    /// Delete a tag folder: the tag is taken off every message, which stay in
    /// the INBOX. `false` if there is no such folder.
    fn delete_folder(&self, name: &str) -> Result<bool, MailboxError>;

    /// Rename a tag folder (and the tag on every message). `false` if there is
    /// no folder `from`.
    fn rename_folder(&self, from: &str, to: &str) -> Result<bool, MailboxError>;

    /// What changed in `folder` since the store's change counter was
    /// `since_modseq`, for a session that polls it: the messages whose modseq
    /// is above it (new ones and re-flagged ones, by ascending UID), with the
    /// folder's message count, UIDNEXT and the counter they were read at. A
    /// session that finds the count is not the messages it knows plus the new
    /// ones (some left the folder) reads the whole folder instead.
    /// `None` if a tag folder does not exist.
    ///
    /// The default reads the whole folder; a store overrides it to read only
    /// the changed rows, so that a delivery does not cost every idling session
    /// a full listing.
    fn changes(
        &self,
        folder: &Folder,
        since_modseq: u64,
    ) -> Result<Option<FolderChanges>, MailboxError> {
        // The counter first: a change made during the listing is seen again at
        // the next poll rather than missed.
        let highest_modseq = self.highest_modseq()?;
        let Some((messages, uid_next)) = self.messages(folder)? else {
            return Ok(None);
        };
        Ok(Some(FolderChanges {
            count: messages.len(),
            uid_next,
            highest_modseq,
            changed: messages
                .into_iter()
                .filter(|m| m.modseq > since_modseq)
                .collect(),
        }))
    }
}

/// What changed in a folder since a session last looked ([`Folders::changes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderChanges {
    /// How many messages the folder holds now.
    pub count: usize,
    /// UIDNEXT.
    pub uid_next: u32,
    /// The store's change counter these were read at (or before).
    pub highest_modseq: u64,
    /// The messages changed or added since, by ascending UID.
    pub changed: Vec<FolderMessage>,
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
