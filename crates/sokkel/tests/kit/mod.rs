//! The one kit every integration test crate in `tests/` uses (`mod kit;`): start the
//! real binary and the peers nobody here wrote, speak each protocol to them in raw
//! bytes, run commands to completion, and make sure every process started is killed
//! and reaped, even when a test panics. Every read and every wait has a deadline, so
//! a broken binary fails a test instead of hanging it; every socket is on loopback.
//!
//! - [`process`]: the binary, child guards, collected output lines, the command
//!   runner ([`Run`]: `sokkel([...]).stdin(..).run()`), temporary directories.
//! - [`net`]: free ports, connected streams with deadlines, reading to a close.
//! - [`catcher`]: `sokkel mail serve` ([`Catcher::builder`]), its store read back
//!   through the CLI, and its web API.
//! - [`smtp`], [`pop3`], [`http`]: each protocol in raw bytes.
//! - [`crash`]: senders that remember every acknowledged message, for crash tests.
//! - [`cluster`]: HAProxy in front of several catchers on PostgreSQL, PROXY protocol
//!   headers, a node's live events, senders that retry what was refused for now.
//! - [`echo`]: `sokkel echo serve`.
//! - [`send`]: `sokkel mail send` as the sending tests run it, and a scripted server.
//! - [`email`]: reading a message with Python's email package.
//! - [`peers`]: aiosmtpd, smtp-sink, swaks, tmux, openssl, ncat and socat.

// Each test crate uses a different part of the kit, re-exports included.
#![allow(dead_code, unused_imports)]

pub mod catcher;
pub mod cluster;
pub mod crash;
pub mod echo;
pub mod email;
pub mod http;
pub mod net;
pub mod peers;
pub mod pop3;
pub mod process;
pub mod send;
pub mod smtp;

pub use catcher::Catcher;
pub use process::{COMMAND_LIMIT, Finished, PROMPT, Run, program, python3, sokkel, tempdir};
