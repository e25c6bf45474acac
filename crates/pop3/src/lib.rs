//! POP3 for sokkel: mail readers (mutt, s-nail, fetchmail, Thunderbird) fetch what
//! the catcher caught.
//!
//! ```text
//! client ──TCP/TLS──▶ shell ──bytes──▶ session core ──Step──▶ shell ──▶ Mailbox (the store)
//!                                                    Login: credentials, maildrop()
//!                                                    Retrieve: raw(id), streamed
//!                                                    Update: delete(ids) at QUIT
//! ```
//!
//! - [`session`]: the session core (RFC 1939, RFC 2449 CAPA and response codes,
//!   RFC 2595 STLS, RFC 5034 AUTH PLAIN), a state machine fed with bytes that hands
//!   back responses and requests. No sockets, no clock, no store.
//! - [`body`]: a message as a dot-stuffed multi-line response, written in chunks.
//! - [`serve`]: the tokio shell that owns the sockets and TLS, applies timeouts and
//!   limits, checks logins against [`sokkel_net::auth::Credentials`] and reads and
//!   deletes mail through a [`sokkel_message::Mailbox`], which the mail store
//!   implements. This crate does not depend on the store.
#![warn(missing_docs)]

pub mod body;
mod error;
pub mod session;
mod shell;

pub use error::Pop3Error;
pub use shell::{Pop3Config, Pop3Summary, serve};
