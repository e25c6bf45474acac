//! Counters the servers keep for others to read: the SMTP server counts what it
//! takes in and refuses, each protocol its open sessions, the store its commit
//! times; the web side reports them in `/api/v1/info` and `/metrics`. The
//! binary creates one of each and hands it to the server that counts and to
//! the web side.
//!
//! Counting is one relaxed atomic add (a histogram: three), with no lock and no
//! allocation, so that it costs nothing worth measuring on the paths it
//! watches. Reading is for scrapes: a snapshot of each atomic, not of all of
//! them at one instant.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Why the SMTP server refused a transaction command (MAIL, RCPT, DATA, BDAT)
/// or a message at its end: the `reason` label of
/// `sokkel_smtp_messages_rejected_total`. A small fixed set, so that a client
/// cannot grow the labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// A message over the size limit, declared with SIZE or sent.
    Size,
    /// One recipient over the limit.
    Recipients,
    /// The server's budget for messages in flight is spent (452 4.3.1).
    Memory,
    /// Content with bare LFs where they are refused.
    BareLf,
    /// The store failed to keep the message (full, or an I/O error).
    Store,
    /// A chaos trigger fired (`--chaos`, `/api/v1/chaos`).
    Chaos,
    /// MAIL before STARTTLS where TLS is required.
    TlsRequired,
    /// A command the server could not read: bad syntax, a bad address, an
    /// unknown parameter.
    Syntax,
    /// A command out of order: MAIL before HELO, DATA before RCPT, ...
    Sequence,
}

impl RejectReason {
    /// Every reason, in the order of their label values in `/metrics`.
    pub const ALL: [RejectReason; 9] = [
        RejectReason::Size,
        RejectReason::Recipients,
        RejectReason::Memory,
        RejectReason::BareLf,
        RejectReason::Store,
        RejectReason::Chaos,
        RejectReason::TlsRequired,
        RejectReason::Syntax,
        RejectReason::Sequence,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Size => "size",
            RejectReason::Recipients => "recipients",
            RejectReason::Memory => "memory",
            RejectReason::BareLf => "bare_lf",
            RejectReason::Store => "store",
            RejectReason::Chaos => "chaos",
            RejectReason::TlsRequired => "tls_required",
            RejectReason::Syntax => "syntax",
            RejectReason::Sequence => "sequence",
        }
    }

    /// Its place in [`RejectReason::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// What the SMTP server took in and refused since it started. Shared as an
/// `Arc<SmtpCounters>` between the server and the web side.
#[derive(Debug)]
pub struct SmtpCounters {
    rejected: [AtomicU64; RejectReason::ALL.len()],
    accepted: AtomicU64,
    received_bytes: AtomicU64,
    /// From the end of a message (DATA's final dot, BDAT LAST) to its 250
    /// written to the client.
    ack: Histogram,
    sessions: Arc<OpenSessions>,
}

impl Default for SmtpCounters {
    fn default() -> Self {
        SmtpCounters {
            rejected: Default::default(),
            accepted: AtomicU64::new(0),
            received_bytes: AtomicU64::new(0),
            ack: Histogram::new(LATENCY_BUCKETS),
            sessions: Arc::default(),
        }
    }
}

impl SmtpCounters {
    /// Count `n` more refusals for `reason`: a MAIL, RCPT, DATA or BDAT
    /// answered with a 4xx or 5xx reply, or a message refused at its end.
    pub fn add_rejected(&self, reason: RejectReason, n: u64) {
        self.rejected[reason.index()].fetch_add(n, Ordering::Relaxed);
    }

    /// The refusals counted so far, for every reason.
    pub fn rejected(&self) -> u64 {
        RejectReason::ALL
            .iter()
            .map(|r| self.rejected_for(*r))
            .sum()
    }

    /// The refusals counted so far for `reason`.
    pub fn rejected_for(&self, reason: RejectReason) -> u64 {
        self.rejected[reason.index()].load(Ordering::Relaxed)
    }

    /// Count a message stored, its `bytes` as received.
    pub fn add_accepted(&self, bytes: usize) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        self.received_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Count how long a client waited from the end of its message to the
    /// 250 written to it.
    pub fn add_ack(&self, waited: Duration) {
        self.ack.observe(waited);
    }

    /// Messages stored so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Bytes of the accepted messages, as received.
    pub fn received_bytes(&self) -> u64 {
        self.received_bytes.load(Ordering::Relaxed)
    }

    /// The times from the end of a message to its 250.
    pub fn ack(&self) -> &Histogram {
        &self.ack
    }

    /// The SMTP sessions open now.
    pub fn sessions(&self) -> &Arc<OpenSessions> {
        &self.sessions
    }
}

/// Sessions of one protocol open now: a gauge that each session raises while
/// it holds its [`SessionGuard`].
#[derive(Debug, Default)]
pub struct OpenSessions(AtomicI64);

impl OpenSessions {
    /// One more session, until the guard drops.
    pub fn open(self: &Arc<Self>) -> SessionGuard {
        self.0.fetch_add(1, Ordering::Relaxed);
        SessionGuard(Arc::clone(self))
    }

    /// Sessions open now.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Held by an open session; dropping it counts the session closed.
#[derive(Debug)]
pub struct SessionGuard(Arc<OpenSessions>);

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What happened to messages relayed to a real server (release or
/// auto-relay): the `outcome` label of `sokkel_relay_messages_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayOutcome {
    /// The relay server accepted the message.
    Sent,
    /// The relay server refused it, or could not be reached.
    Failed,
    /// The relay configuration allowed none of its recipients: not sent.
    Blocked,
}

impl RelayOutcome {
    /// Every outcome, in the order of their label values in `/metrics`.
    pub const ALL: [RelayOutcome; 3] = [
        RelayOutcome::Sent,
        RelayOutcome::Failed,
        RelayOutcome::Blocked,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RelayOutcome::Sent => "sent",
            RelayOutcome::Failed => "failed",
            RelayOutcome::Blocked => "blocked",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Relay attempts by outcome, shared between the relay and the web side.
#[derive(Debug, Default)]
pub struct RelayCounters([AtomicU64; RelayOutcome::ALL.len()]);

impl RelayCounters {
    /// Count one attempt.
    pub fn add(&self, outcome: RelayOutcome) {
        self.0[outcome.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// The attempts with `outcome` so far.
    pub fn get(&self, outcome: RelayOutcome) -> u64 {
        self.0[outcome.index()].load(Ordering::Relaxed)
    }
}

/// What a store did since it was opened: how long making arriving messages
/// durable took, and how many messages retention deleted. The store owns one
/// (`Store::counters`); the web side reads it.
#[derive(Debug)]
pub struct StoreCounters {
    /// SQLite: each batch of the log in front of the database, written and
    /// `fdatasync`ed; the 250s of its messages wait for it.
    log_sync: Histogram,
    /// A database transaction that stores arriving messages: SQLite's
    /// materialiser writing logged messages into rows (after their 250s),
    /// PostgreSQL's insert of a batch (before them).
    commit: Histogram,
    pruned: AtomicU64,
}

impl Default for StoreCounters {
    fn default() -> Self {
        StoreCounters {
            log_sync: Histogram::new(LATENCY_BUCKETS),
            commit: Histogram::new(LATENCY_BUCKETS),
            pruned: AtomicU64::new(0),
        }
    }
}

impl StoreCounters {
    /// The times of the SQLite log's batch syncs.
    pub fn log_sync(&self) -> &Histogram {
        &self.log_sync
    }

    /// The times of the transactions that store arriving messages.
    pub fn commit(&self) -> &Histogram {
        &self.commit
    }

    /// Count `n` more messages deleted by retention.
    pub fn add_pruned(&self, n: u64) {
        self.pruned.fetch_add(n, Ordering::Relaxed);
    }

    /// Messages deleted by retention so far.
    pub fn pruned(&self) -> u64 {
        self.pruned.load(Ordering::Relaxed)
    }
}

/// Upper bounds, in seconds, for waits from a fraction of a millisecond (an
/// `fdatasync` on fast storage) to seconds (a slow disk, a remote database).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A histogram of durations over fixed buckets, counted with atomics only
/// (a Prometheus client's histograms take a lock per observation).
#[derive(Debug)]
pub struct Histogram {
    /// Upper bounds in seconds, ascending; a last bucket above them all is
    /// implicit (`+Inf`).
    bounds: &'static [f64],
    /// Observations per bucket (not cumulative), one more than `bounds`.
    counts: Box<[AtomicU64]>,
    sum_nanos: AtomicU64,
}

/// A histogram's counts as read for a scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// The sum of the observations, in seconds.
    pub sum: f64,
    /// The number of observations.
    pub count: u64,
    /// Each bucket's upper bound (the last `f64::INFINITY`) and its
    /// observations, not cumulative.
    pub buckets: Vec<(f64, u64)>,
}

impl Histogram {
    /// An empty histogram over `bounds` (seconds, ascending).
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    /// Counts one duration.
    pub fn observe(&self, duration: Duration) {
        let seconds = duration.as_secs_f64();
        let bucket = self
            .bounds
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(self.bounds.len());
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// The counts now. The count is the buckets' sum, so that the `+Inf`
    /// bucket and `_count` agree in every scrape.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let buckets: Vec<(f64, u64)> = (self.bounds.iter().copied())
            .chain([f64::INFINITY])
            .zip(self.counts.iter().map(|n| n.load(Ordering::Relaxed)))
            .collect();
        HistogramSnapshot {
            sum: Duration::from_nanos(self.sum_nanos.load(Ordering::Relaxed)).as_secs_f64(),
            count: buckets.iter().map(|(_, n)| n).sum(),
            buckets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duration_lands_in_the_first_bucket_that_holds_it() {
        let histogram = Histogram::new(&[0.001, 0.01]);
        for millis in [0, 1, 5, 10, 11, 5000] {
            histogram.observe(Duration::from_millis(millis));
        }
        let snapshot = histogram.snapshot();
        assert_eq!(
            snapshot.buckets,
            [(0.001, 2), (0.01, 2), (f64::INFINITY, 2)]
        );
        assert_eq!(snapshot.count, 6);
        assert!((snapshot.sum - 5.027).abs() < 1e-9, "{}", snapshot.sum);
    }

    #[test]
    fn a_session_counts_until_its_guard_drops() {
        let sessions = Arc::new(OpenSessions::default());
        let first = sessions.open();
        let second = sessions.open();
        assert_eq!(sessions.get(), 2);
        drop(first);
        assert_eq!(sessions.get(), 1);
        drop(second);
        assert_eq!(sessions.get(), 0);
    }

    #[test]
    fn refusals_add_up_over_their_reasons() {
        let counters = SmtpCounters::default();
        counters.add_rejected(RejectReason::Size, 2);
        counters.add_rejected(RejectReason::Syntax, 1);
        assert_eq!(counters.rejected_for(RejectReason::Size), 2);
        assert_eq!(counters.rejected_for(RejectReason::Recipients), 0);
        assert_eq!(counters.rejected(), 3);
    }
}
