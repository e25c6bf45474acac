//! Echo: the course's first exercise, built to be measured against real servers.
//!
//! - [`framing`]: how a byte stream is cut into messages (no I/O);
//! - [`server`]: the TCP and UDP echo server;
//! - [`client`]: a client session that sends a message and waits for its echo;
//! - [`bench`]: the load generator;
//! - [`report`] and [`display`]: what the server prints, and how bytes are shown.
#![warn(missing_docs)]

pub mod bench;
pub mod client;
pub mod display;
mod error;
pub mod framing;
pub mod report;
pub mod server;

pub use error::EchoError;
pub use framing::{FrameError, Framing};
