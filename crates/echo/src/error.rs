//! The one error type of this crate.

use std::io;
use std::time::Duration;

use crate::framing::FrameError;

/// What can go wrong in an echo client session or a load run.
#[derive(Debug, thiserror::Error)]
pub enum EchoError {
    /// Connecting, resolving or binding failed.
    #[error(transparent)]
    Net(#[from] sokkel_net::NetError),
    /// Writing to the server failed.
    #[error("sending failed: {0}")]
    Send(#[source] io::Error),
    /// Reading from the server failed.
    #[error("receiving failed: {0}")]
    Receive(#[source] io::Error),
    /// The reply did not come in time.
    #[error("no reply within {} (--timeout)", humanize(.0))]
    Timeout(Duration),
    /// The server closed the connection before the reply was complete.
    #[error("the server closed the connection after {received} of {expected} reply bytes")]
    Closed {
        /// Bytes of the reply received before the close.
        received: usize,
        /// Bytes the complete reply has (0 when the framing does not say).
        expected: usize,
    },
    /// A frame that breaks the framing rules, sent or received.
    #[error("{0}")]
    Frame(#[from] FrameError),
    /// The echo differs from what was sent.
    #[error("the echo differs from what was sent ({differ} of {len} bytes differ)")]
    Mismatch {
        /// How many bytes differ.
        differ: usize,
        /// The message length.
        len: usize,
    },
}

pub(crate) fn humanize(d: &Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.3} s", d.as_secs_f64())
    }
}
