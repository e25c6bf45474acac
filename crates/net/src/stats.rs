//! Counters a server shell keeps for others to read: the SMTP server counts
//! what it refuses, and the web API reports it in `/api/v1/info`. The binary
//! creates one [`SmtpCounters`] and hands it to both.

use std::sync::atomic::{AtomicU64, Ordering};

/// What the SMTP server refused since it started. Shared as an
/// `Arc<SmtpCounters>`; counting is one relaxed atomic add.
#[derive(Debug, Default)]
pub struct SmtpCounters {
    rejected: AtomicU64,
}

impl SmtpCounters {
    /// Count `n` more refusals: a MAIL, RCPT, DATA or BDAT answered with a 4xx
    /// or 5xx reply, or a message refused at its end.
    pub fn add_rejected(&self, n: u64) {
        self.rejected.fetch_add(n, Ordering::Relaxed);
    }

    /// The refusals counted so far.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }
}
