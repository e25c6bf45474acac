//! The mail store: where every message the catcher accepts is kept.
//!
//! It sits at the end of the SMTP data flow and at the start of every reader:
//!
//! ```text
//! smtp shell ──deliver()──▶ writer thread: batch → one SQLite transaction → fsync ──▶ id
//!                                   │
//!                                   └──StoreEvent::New──▶ web / pop3 / CLI readers
//! CLI, web, pop3 ──list() / get() / delete()──▶ pool of reader connections (WAL)
//! ```
//!
//! - [`Store`] is a cheap `Clone` handle over one SQLite file in WAL mode with
//!   `synchronous=FULL`. [`Deliver::deliver`] returns only once the message is
//!   committed and synced, so the SMTP 250 after DATA is a promise that survives
//!   `kill -9` and power loss. Deliveries from many sessions share one commit
//!   (group commit, see [`StoreOptions::max_batch`]).
//! - Queries ([`Store::list`], [`Store::get`], ...) are synchronous: async callers run
//!   them under `spawn_blocking`, the CLI calls them directly, even while a server
//!   process writes to the same file.
//! - [`SearchQuery`] parses the search language of the web page and API;
//!   [`Store::search`] answers it from an FTS5 index kept in the same transactions
//!   as the messages.
//! - [`mime`] turns raw bytes into headers, bodies and attachments for display.
//! - [`Store`] implements [`Deliver`] (what the SMTP shell hands finished messages
//!   to), [`Mailbox`] (what the POP3 shell reads and deletes) and [`Folders`]
//!   (what the IMAP shell reads and changes: the INBOX, Sent and one folder
//!   per tag, each with its own UIDs). The traits and
//!   the message types they carry live in `sokkel-message` and are re-exported
//!   here, so the protocol crates do not depend on this one and another store can
//!   replace it.
//! - A full store can always be emptied: the size limit holds new messages only,
//!   and a reserve file next to the database (`mail.db-reserve`, 8 MiB) is given
//!   back to a full disk so that deletes can write their WAL (see [`Store`]).
//! - [`Retention`] says how many messages the store keeps and for how long;
//!   a [`Pruner`] deletes the rest in the background, in small batches that
//!   deliveries get between.
//! - [`tags`] says what a tag name may be and which tags an arriving message
//!   gets (`X-Tags`, plus addresses, `--tag` rules).
//! - [`Store::record_relay`] keeps each attempt to relay a message to a real
//!   server ([`RelayAttempt`]) with the message; [`Store::matches`] tells
//!   auto-relay whether a new message matches its search.
//! - An error that repeats on every retry (a full disk) is logged once per
//!   interval with its count (`sokkel_net::repeated`).
#![warn(missing_docs)]

mod delivery;
mod error;
mod folders;
mod index_text;
pub mod mime;
mod paths;
mod postgres;
mod protocols;
mod relay;
mod retention;
mod search;
mod sqlite;
mod store;
mod summary;
pub mod tags;
pub mod time;

use std::time::SystemTime;

use serde::{Deserialize, Serialize};
// As `crate::repeated`: the writer thread logs a failing commit once per interval.
use sokkel_net::repeated;

pub use error::{DatabaseError, StoreError};
pub use folders::{MAX_FLAG_BYTES, MAX_OTHER_FLAGS, is_folder_copy};
pub use postgres::{PgConfig, PgConfigError};
pub use relay::{RELAY_ATTEMPTS_KEPT, RELAY_REPLY_BYTES, RelayAttempt};
pub use retention::{
    AgeError, CHECK_INTERVAL, MAX_AGE_LIMIT, MaxAge, PruneReport, Pruner, Retention,
};
pub use search::{MAX_QUERY_BYTES, MAX_TERMS, SearchError, SearchPage, SearchQuery};
pub use sokkel_message::{
    Deliver, DeliverError, Envelope, FlagEdit, Flags, Folder, FolderChanges, FolderMessage,
    Folders, Mailbox, MailboxError, MessageId, NewMessage, TlsInfo,
};
pub use sqlite::RAW_CHUNK_BYTES;
pub use store::{
    FlagChange, Location, MessageCounts, Ownership, RuntimeStats, SmtpRecord, Store, StoreEvent,
    StoreOptions, TagChange, TagCount, WriterStats,
};
pub use summary::{
    SUMMARY_ADDRESS_BYTES, SUMMARY_ADDRESSES, SUMMARY_FIELD_BYTES, SUMMARY_RECIPIENT_BYTES,
    SUMMARY_TEXT_BYTES, cut,
};

/// A mailbox from a header such as From or To.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    /// The display name, decoded; empty if there is none.
    pub name: String,
    /// The address itself, e.g. `jane@example.com`; may be empty for a group name.
    pub address: String,
}

/// What a message list shows about a message: envelope basics and parsed headers,
/// without the body. Computed once at delivery.
///
/// Every field is bounded: a summary holds at most [`SUMMARY_ADDRESSES`]
/// addresses per list, and a summary read for a list ([`Store::list`],
/// [`Store::search`], [`StoreEvent::New`]) is cut further as the `summary`
/// module's documentation says (at most [`SUMMARY_FIELD_BYTES`] of addresses per
/// list, [`SUMMARY_TEXT_BYTES`] of Subject). The `*_count` fields say how many
/// addresses the header has in all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// The store's id.
    pub id: MessageId,
    /// When the server finished receiving it (millisecond precision).
    pub received_at: SystemTime,
    /// The envelope sender; empty for the null sender.
    pub mail_from: String,
    /// The envelope recipients (in a listed summary, those that fit in
    /// [`SUMMARY_RECIPIENT_BYTES`]; [`Store::get`] has them all).
    pub rcpt_to: Vec<String>,
    /// The first address of the From header.
    pub from: Option<Address>,
    /// The first of the To header's addresses.
    pub to: Vec<Address>,
    /// How many addresses the To header has.
    pub to_count: u64,
    /// The first of the Cc header's addresses.
    pub cc: Vec<Address>,
    /// How many addresses the Cc header has.
    pub cc_count: u64,
    /// The first of the Reply-To header's addresses.
    pub reply_to: Vec<Address>,
    /// How many addresses the Reply-To header has.
    pub reply_to_count: u64,
    /// The first of the Bcc header's addresses (a message sent with Bcc
    /// usually has none; its blind recipients are in `rcpt_to`).
    pub bcc: Vec<Address>,
    /// How many addresses the Bcc header has.
    pub bcc_count: u64,
    /// The Subject header, decoded; empty if there is none. Cut to
    /// [`SUMMARY_TEXT_BYTES`] in a listed summary.
    pub subject: String,
    /// The Date header as RFC 3339, if it parsed.
    pub date: Option<String>,
    /// The Message-ID header without angle brackets.
    pub message_id: Option<String>,
    /// The size of the raw message in bytes.
    pub size: u64,
    /// How many parts are attachments proper (inline parts such as `cid:` images
    /// are not counted; [`mime::parse`] lists both).
    pub attachments: u32,
    /// About 200 characters of the text body (or the HTML body without tags), with
    /// runs of whitespace collapsed to one space.
    pub snippet: String,
    /// Whether a reader marked it read.
    pub read: bool,
    /// Whether somebody starred it (IMAP's `\Flagged`).
    pub flagged: bool,
    /// Its tags, sorted by name.
    pub tags: Vec<String>,
    /// The client sent bare LF line endings.
    pub bare_lf: bool,
    /// Whether the bytes parsed as a message with headers. When false, the header
    /// fields above are empty, but the message is stored and listed all the same.
    pub parsed: bool,
}

/// One message as stored: its summary, its envelope and its exact bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// What a list shows.
    pub summary: Summary,
    /// What SMTP said.
    pub envelope: Envelope,
    /// The message exactly as received.
    pub raw: Vec<u8>,
}

/// Which page of the message list (or of search results) to return, newest
/// first. The default is the newest 50.
///
/// For paging through a long list, pass the id of the last message of the page
/// shown as `before` of the next one: the store seeks straight to it, so page
/// 2,000 is as fast as page 1, and messages arriving meanwhile do not shift the
/// pages. `offset` has to walk past every skipped message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListQuery {
    /// At most this many messages.
    pub limit: usize,
    /// Skip this many of the newest messages first (after `before` applies).
    pub offset: usize,
    /// Only messages with an id below this one.
    pub before: Option<MessageId>,
}

impl Default for ListQuery {
    fn default() -> Self {
        ListQuery {
            limit: 50,
            offset: 0,
            before: None,
        }
    }
}
