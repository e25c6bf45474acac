//! Socket plumbing that every sokkel server and client shares.
//!
//! This crate sits below the protocol crates (`sokkel-echo`, and later SMTP and POP3):
//! it turns what a user typed (`host:port`, `[::1]:port`) into socket addresses, resolves
//! host names to *every* address they have, connects by trying those addresses in turn,
//! binds listeners with the options a server wants (dual stack, address reuse, a deep
//! backlog), raises the open-file limit so thousands of connections fit, turns
//! Ctrl-C and SIGTERM into one shutdown future, and runs the accept loop with its
//! connection cap and graceful stop ([`server`]), and drives every session of the
//! line-oriented mail servers through one loop ([`driver`]). [`chaos`] holds the
//! SMTP server's fault triggers, shared with the web API. [`proxy`] reads the PROXY
//! protocol header a load balancer sends before a client's bytes. It also keeps an error that repeats
//! on every retry to one log line per interval ([`repeated`]).
#![warn(missing_docs)]

mod addr;
pub mod auth;
pub mod chaos;
mod connect;
pub mod driver;
mod error;
mod limits;
pub mod lines;
mod listen;
pub mod proxy;
pub mod repeated;
pub mod server;
mod shutdown;
pub mod stats;
pub mod tls;

pub use addr::{HostPort, ResolveOverride};
pub use connect::{ConnectAttempt, connect_any};
pub use error::NetError;
pub use limits::raise_open_file_limit;
pub use listen::{DEFAULT_BACKLOG, bind_tcp, bind_udp};
pub use shutdown::shutdown_signal;
