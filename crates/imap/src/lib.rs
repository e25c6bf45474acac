//! IMAP for sokkel: Thunderbird, mutt, mbsync and every IMAP library read, flag,
//! tag and delete what the catcher caught.
//!
//! ```text
//! client ──TCP/TLS──▶ shell ──bytes──▶ session core ──requests──▶ shell ──▶ Folders (the store)
//!                       ▲                                                    │
//!                       └──────── store changes (IDLE, next command) ◀───────┘
//! ```
//!
//! - [`session`]: the session core (RFC 3501 IMAP4rev1 with IDLE, UIDPLUS, MOVE,
//!   UNSELECT, NAMESPACE, ID, SASL-IR, STARTTLS, CHILDREN, LITERAL+, ENABLE),
//!   fed bytes and store answers, handing back bytes and requests. No I/O.
//! - [`message`]: what FETCH and SEARCH read from a message: ENVELOPE,
//!   BODYSTRUCTURE, `BODY[section]<partial>`, the header and body search keys.
//! - [`serve`]: the tokio shell that owns the sockets and TLS, applies timeouts
//!   and limits, checks logins against [`sokkel_net::auth::Credentials`] and reads
//!   and changes mail through [`sokkel_message::Folders`], which the store
//!   implements. This crate does not depend on the store.
#![warn(missing_docs)]

mod error;
pub mod message;
pub mod session;
mod shell;

pub use error::ImapError;
pub use shell::{ImapConfig, ImapSummary, serve};
