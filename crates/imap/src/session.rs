//! The IMAP session core: bytes in, responses and requests for the shell out.
//!
//! It does no I/O and knows no clock, no store and no password file. The shell
//! feeds it whatever bytes arrived with [`Session::advance`]; the session
//! takes them (it keeps a command that is not complete yet, literals included,
//! itself, within its limits), appends responses to the output buffer, and
//! stops when the shell has to act ([`Step`]): flush output (a continuation
//! request), start TLS, close, or carry out a [`Request`] (check a login, call
//! the store). It then says how many bytes it took: the shell reports back
//! with [`Session::answer`] and calls `advance` again with the rest, so
//! pipelined commands get their responses in order.
//!
//! ```text
//! bytes ─▶ frame (lines, literals) ─▶ imap-codec ─▶ command ─▶ Request ─▶ shell
//!                                                     │                     │
//! bytes ◀──────── reply (imap-codec) ◀── view ◀────────┴────── Answer ◀──────┘
//! ```
//!
//! Submodules: `machine` is the session itself (with its `auth`, `mailboxes`
//! and `selected` commands), `frame` cuts commands, `names` maps mailbox names
//! to folders, `view` keeps the selected folder as the client knows it,
//! `fetch` and `search` answer FETCH and SEARCH, `reply` writes.

mod fetch;
mod frame;
mod machine;
mod names;
mod reply;
mod search;
#[cfg(test)]
mod tests;
mod view;

use std::time::SystemTime;

use sokkel_message::{
    FlagEdit, Flags, Folder, FolderChanges, FolderMessage, MailboxError, MessageId,
};

pub use machine::Session;

/// The session's limits and what the server offers.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The name the server gives in its greeting.
    pub hostname: String,
    /// The longest command line, literals not counted.
    pub max_line_length: usize,
    /// The largest literal a client may send (APPEND's message among them).
    pub max_literal: u64,
    /// Commands one session may send before it is closed.
    pub max_commands: u64,
    /// Malformed or unknown commands before the session is closed.
    pub max_errors: u32,
    /// Failed logins before the session is closed.
    pub max_auth_failures: u32,
    /// The server has a certificate, so STARTTLS is offered before TLS.
    pub tls_available: bool,
    /// Allow LOGIN and AUTHENTICATE PLAIN in plain text from peers that are
    /// not on loopback. Loopback and TLS sessions may always log in.
    pub allow_insecure_auth: bool,
    /// The INBOX of a login shows only its own mail ([`Folder::Inbox`]'s
    /// `recipient`).
    pub per_recipient: bool,
}

/// What the shell knows about the connection when the session starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// The connection is already under TLS (the implicit-TLS port).
    pub tls: bool,
    /// The client connects from a loopback address.
    pub loopback: bool,
}

/// How many raw bytes one [`StoreReply::Raw`] carries before the shell stops
/// adding messages to it: a FETCH or SEARCH of 64 messages of 30 MiB each
/// holds one reply's worth in memory (and its rendering in the output), not
/// 2 GiB.
pub const RAW_REPLY_BYTES: usize = 8 << 20;

/// What the shell must do before the session can go on.
#[derive(Debug)]
pub enum Step {
    /// Every complete command was handled; read more input.
    NeedMore,
    /// Write the output now and wait until it is written (a continuation
    /// request the client waits for), then call `advance` again.
    Flush,
    /// Write the output, then do the TLS handshake and call
    /// [`Session::tls_started`]; input buffered before it is discarded.
    StartTls,
    /// Write the output and close the connection.
    Close,
    /// Carry out the request and hand the result to [`Session::answer`].
    /// Output written so far may be flushed first (the shell does when it is
    /// large: a FETCH of many messages asks for them in batches).
    Request(Request),
}

/// Something only the shell can do.
#[derive(Debug)]
pub enum Request {
    /// Check a login; answer with [`Answer::Login`].
    Login(Login),
    /// Call the store; answer with [`Answer::Store`].
    Store(StoreCall),
}

/// A login to check, from LOGIN or AUTHENTICATE PLAIN.
#[derive(Clone, PartialEq, Eq)]
pub struct Login {
    /// The user name as the client sent it.
    pub user: String,
    /// The password. Never logged: `Debug` leaves it out.
    pub password: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// A call of the store ([`sokkel_message::Folders`]), as data. The shell runs it
/// and answers with the [`StoreReply`] named on each variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreCall {
    /// [`sokkel_message::Folders::folder_names`] → [`StoreReply::FolderNames`].
    FolderNames,
    /// Everything SELECT, EXAMINE and STATUS need of a folder →
    /// [`StoreReply::Opened`] (`None` if the folder does not exist).
    Open {
        /// The folder.
        folder: Folder,
    },
    /// What changed in the selected folder: if the store's change counter is
    /// still `seen_modseq`, [`StoreReply::Unchanged`]; otherwise what changed,
    /// as [`StoreReply::Changes`] (or the folder's messages now, as
    /// [`StoreReply::Opened`]).
    Poll {
        /// The folder.
        folder: Folder,
        /// The change counter the session last saw.
        seen_modseq: u64,
    },
    /// The raw messages, in the order of `ids` → [`StoreReply::Raw`]: all of
    /// them, or only the first ones once those add up to
    /// [`RAW_REPLY_BYTES`] (at least one); the session asks again for the rest.
    Raw {
        /// The folder they are in.
        folder: Folder,
        /// The messages.
        ids: Vec<MessageId>,
    },
    /// [`sokkel_message::Folders::set_flags`] → [`StoreReply::Done`].
    SetFlags {
        /// The folder they are in.
        folder: Folder,
        /// The messages.
        ids: Vec<MessageId>,
        /// The change.
        edit: FlagEdit,
    },
    /// [`sokkel_message::Folders::append`] → [`StoreReply::Appended`].
    Append {
        /// The folder to append to.
        folder: Folder,
        /// The message.
        raw: Vec<u8>,
        /// Its flags.
        flags: Flags,
        /// The INTERNALDATE the client gave; `None` means now (the shell's
        /// clock).
        received_at: Option<SystemTime>,
    },
    /// [`sokkel_message::Folders::copy`] → [`StoreReply::Copied`].
    Copy {
        /// The folder they are in.
        from: Folder,
        /// The messages.
        ids: Vec<MessageId>,
        /// Where to.
        to: Folder,
    },
    /// [`sokkel_message::Folders::expunge`] → [`StoreReply::Done`].
    Expunge {
        /// The folder.
        folder: Folder,
        /// The messages.
        ids: Vec<MessageId>,
    },
    /// [`sokkel_message::Folders::create_folder`] → [`StoreReply::Changed`].
    Create(String),
    /// [`sokkel_message::Folders::delete_folder`] → [`StoreReply::Changed`].
    Delete(String),
    /// [`sokkel_message::Folders::rename_folder`] → [`StoreReply::Changed`].
    Rename {
        /// The folder's name now.
        from: String,
        /// Its new name.
        to: String,
    },
}

/// A folder's state as the store gave it ([`StoreCall::Open`], [`StoreCall::Poll`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderState {
    /// UIDVALIDITY.
    pub uid_validity: u32,
    /// UIDNEXT.
    pub uid_next: u32,
    /// The store's change counter when this was read.
    pub highest_modseq: u64,
    /// The messages, by ascending UID.
    pub messages: Vec<FolderMessage>,
}

/// The store's answer to a [`StoreCall`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreReply {
    /// The tag folders.
    FolderNames(Vec<String>),
    /// The folder now; `None` if it does not exist.
    Opened(Option<FolderState>),
    /// Nothing changed since the counter the session gave.
    Unchanged,
    /// What changed since the counter the session gave, as
    /// [`sokkel_message::Folders::changes`] reads it (an answer to
    /// [`StoreCall::Poll`] that spares listing the whole folder); `None` if the
    /// folder does not exist. A session that cannot apply it asks for the
    /// whole folder with [`StoreCall::Open`].
    Changes(Option<FolderChanges>),
    /// The raw messages of the first ids asked for, in order, `None` for one
    /// that no longer exists (see [`StoreCall::Raw`]).
    Raw(Vec<Option<Vec<u8>>>),
    /// Done.
    Done,
    /// Appended with this UID, in a folder of this UIDVALIDITY (APPENDUID).
    Appended {
        /// The folder's UIDVALIDITY.
        uid_validity: u32,
        /// The new message's UID.
        uid: u32,
    },
    /// Copied: the UIDs in the target folder, in the order asked (COPYUID).
    Copied {
        /// The target folder's UIDVALIDITY.
        uid_validity: u32,
        /// The UIDs there.
        uids: Vec<u32>,
    },
    /// Whether the folder call changed anything (`false`: no such folder, or
    /// it exists already).
    Changed(bool),
}

/// What the shell hands back after a [`Request`].
#[derive(Debug)]
pub enum Answer {
    /// The login was right (`true`) or wrong.
    Login(bool),
    /// The store's reply, or why it could not answer.
    Store(Result<StoreReply, MailboxError>),
}
