//! What the store keeps about relaying a caught message to a real server
//! (release, auto-relay): one [`RelayAttempt`] per try, kept with the message
//! and deleted with it.
//!
//! The store only records and lists attempts; the relaying itself (the SMTP
//! client, the policy of which recipients may be relayed to) lives in the
//! binary.

use std::time::SystemTime;

/// How many attempts the store keeps per message: the newest. A message
/// released in a loop by a test suite would otherwise grow its record
/// without bound.
pub const RELAY_ATTEMPTS_KEPT: usize = 50;

/// The most bytes of a reply or error text kept per attempt (cut at a
/// character boundary); the rest is dropped.
pub const RELAY_REPLY_BYTES: usize = 2048;

/// One attempt to relay a stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayAttempt {
    /// When the attempt ended (millisecond precision once stored).
    pub at: SystemTime,
    /// The recipients it was sent to (RCPT TO); empty if the policy allowed
    /// none of them and nothing was sent.
    pub recipients: Vec<String>,
    /// Recipients left out because the relay policy does not allow them
    /// (auto-relay sends to the allowed ones and records the rest here).
    pub skipped: Vec<String>,
    /// Whether the relay server accepted the message (for at least one
    /// recipient).
    pub ok: bool,
    /// The server's last reply, or what went wrong; at most
    /// [`RELAY_REPLY_BYTES`].
    pub reply: String,
}
