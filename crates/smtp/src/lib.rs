//! SMTP for sokkel: the catcher's server side.
//!
//! - [`server::session`]: the session core, a state machine fed with bytes that hands
//!   back replies and finished messages. No sockets, no clock, no store.
//! - [`server::shell`]: the tokio shell that owns the sockets, applies timeouts and
//!   limits, and hands finished messages to a [`sokkel_message::Deliver`] sink:
//!   the mail store in the catcher, a sink in memory in the tests. This crate does
//!   not depend on the store, so fuzzing the session core compiles no database.
//! - [`reply`]: reply codes and how they are written on the wire.
//! - [`client`]: the client that sends mail, with STARTTLS, AUTH and pipelining.
#![warn(missing_docs)]

pub mod client;
pub mod reply;
pub mod server;
