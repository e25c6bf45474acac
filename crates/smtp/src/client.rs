//! The SMTP client: what `sokkel mail send`, `sendmail`, `compose` and relay speak.
//!
//! - [`core`]: the conversation as a state machine without I/O (commands out,
//!   replies in), with [`reply`], [`capabilities`] and [`data`], the other parts that
//!   do no I/O (reading replies, reading EHLO, preparing DATA content); table-tested;
//! - [`session`]: the tokio shell that connects, runs the conversation over TCP or
//!   TLS, applies timeouts and shows the transcript;
//! - [`error`]: which stage failed and why;
//! - [`tls`]: which certificates to trust, and why a handshake failed.

pub mod capabilities;
pub mod core;
pub mod data;
pub mod error;
pub mod reply;
pub mod session;
pub mod tls;
