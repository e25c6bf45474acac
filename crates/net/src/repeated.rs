//! Logging an error once with a count, not once per retry.
//!
//! A client that retries against a full store meets the same error thousands of
//! times a second; logging each one buries everything else (and fills the disk
//! that is already full). [`RepeatedLog`] lets the first occurrence of an error
//! through, keeps quiet about the repeats, and lets at most one line per interval
//! through after that, carrying how many there were:
//!
//! ```text
//! t=0 s     storing a message failed; ... the mail store is full
//! t=0..10 s (9,999 more: nothing)
//! t=10 s    storing a message failed; ... the mail store is full (repeated 10000 times in the last 10 s)
//! ```
//!
//! The count is told with the first repeat after the interval, so repeats that
//! stop within an interval are never summed up; the first line already said what
//! went wrong. It is keyed by the error's text, so two different errors are both
//! logged. The SMTP shell uses it for failed deliveries and the store's writer
//! thread for failed commits.

use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The interval the store and the servers use: at most one line per error text
/// every 10 seconds.
pub const REPEAT_INTERVAL: Duration = Duration::from_secs(10);

/// How many different errors are tracked at once. Beyond that the one logged
/// longest ago is forgotten (its next occurrence is logged as a first), so a
/// stream of ever-different texts costs bounded memory.
const MAX_KEYS: usize = 32;

/// Decides which occurrences of an error are worth a log line. Cheap to share:
/// put one in a `static` next to the statement that logs.
#[derive(Debug)]
pub struct RepeatedLog {
    interval: Duration,
    seen: Mutex<Vec<Seen>>,
}

/// One error text and what was logged about it.
#[derive(Debug)]
struct Seen {
    key: String,
    /// When the last line about it was let through.
    logged_at: Instant,
    /// Occurrences kept quiet since then.
    quiet: u64,
}

/// What to do with one occurrence of an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    /// Log it: the first occurrence, or the first after a quiet interval.
    First,
    /// Log it with the count it carries ([`fmt::Display`] writes
    /// ` (repeated N times in the last S s)`).
    Summary {
        /// Occurrences since the last line, this one included.
        times: u64,
        /// Time since the last line.
        over: Duration,
    },
    /// Say nothing: a line about it went out less than the interval ago.
    Quiet,
}

impl Repeat {
    /// Whether this occurrence gets a log line.
    pub fn should_log(self) -> bool {
        self != Repeat::Quiet
    }
}

/// Empty for [`Repeat::First`] and [`Repeat::Quiet`]; the count for
/// [`Repeat::Summary`], to append to the log message.
impl fmt::Display for Repeat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Repeat::Summary { times, over } => write!(
                f,
                " (repeated {times} times in the last {} s)",
                over.as_secs()
            ),
            Repeat::First | Repeat::Quiet => Ok(()),
        }
    }
}

impl RepeatedLog {
    /// Let at most one line per `interval` through for each error text.
    pub const fn new(interval: Duration) -> RepeatedLog {
        RepeatedLog {
            interval,
            seen: Mutex::new(Vec::new()),
        }
    }

    /// Count one occurrence of the error `key` (its text) now.
    pub fn occurrence(&self, key: &str) -> Repeat {
        self.occurrence_at(key, Instant::now())
    }

    /// Count one occurrence of the error `key` at `now` (tests pass their own
    /// clock; times must not go backwards).
    pub fn occurrence_at(&self, key: &str, now: Instant) -> Repeat {
        // A panic while the lock was held cannot leave an entry half-changed.
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(entry) = seen.iter_mut().find(|entry| entry.key == key) else {
            if seen.len() >= MAX_KEYS
                && let Some(oldest) = (0..seen.len()).min_by_key(|&i| seen[i].logged_at)
            {
                seen.swap_remove(oldest);
            }
            seen.push(Seen {
                key: key.to_owned(),
                logged_at: now,
                quiet: 0,
            });
            return Repeat::First;
        };
        let over = now.saturating_duration_since(entry.logged_at);
        if over < self.interval {
            entry.quiet += 1;
            return Repeat::Quiet;
        }
        let times = entry.quiet + 1;
        entry.logged_at = now;
        entry.quiet = 0;
        if times == 1 {
            Repeat::First
        } else {
            Repeat::Summary { times, over }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = "the mail store is full; delete messages to make room";

    #[test]
    fn the_first_is_logged_repeats_are_counted_once_per_interval() {
        let log = RepeatedLog::new(Duration::from_secs(10));
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        assert_eq!(log.occurrence_at(FULL, at(0)), Repeat::First);
        let logged = (1..10_000)
            .filter(|&n| log.occurrence_at(FULL, at(n)).should_log())
            .count();
        assert_eq!(logged, 0, "a repeat inside the interval was logged");
        let summary = log.occurrence_at(FULL, at(10_000));
        assert_eq!(
            summary,
            Repeat::Summary {
                times: 10_000,
                over: Duration::from_secs(10)
            }
        );
        assert_eq!(
            summary.to_string(),
            " (repeated 10000 times in the last 10 s)"
        );
        // The next interval starts from the summary line.
        assert_eq!(log.occurrence_at(FULL, at(15_000)), Repeat::Quiet);
        assert_eq!(
            log.occurrence_at(FULL, at(20_000)),
            Repeat::Summary {
                times: 2,
                over: Duration::from_secs(10)
            }
        );
    }

    #[test]
    fn an_error_after_a_quiet_interval_is_a_first_again() {
        let log = RepeatedLog::new(Duration::from_secs(10));
        let start = Instant::now();
        assert_eq!(log.occurrence_at(FULL, start), Repeat::First);
        let later = log.occurrence_at(FULL, start + Duration::from_secs(60));
        assert_eq!(later, Repeat::First);
        assert_eq!(later.to_string(), "");
    }

    #[test]
    fn different_errors_are_each_logged() {
        let log = RepeatedLog::new(Duration::from_secs(10));
        let now = Instant::now();
        assert_eq!(log.occurrence_at(FULL, now), Repeat::First);
        assert_eq!(log.occurrence_at("database is locked", now), Repeat::First);
        assert_eq!(log.occurrence_at(FULL, now), Repeat::Quiet);
        assert_eq!(log.occurrence_at("database is locked", now), Repeat::Quiet);
    }

    /// Ever-different texts (an error naming a peer, say) cannot grow the table
    /// without bound; the oldest is forgotten and logged again as a first.
    #[test]
    fn the_table_is_bounded() {
        let log = RepeatedLog::new(Duration::from_secs(10));
        let start = Instant::now();
        for n in 0..1000 {
            let key = format!("error {n}");
            let now = start + Duration::from_millis(n);
            assert_eq!(log.occurrence_at(&key, now), Repeat::First);
        }
        assert_eq!(log.seen.lock().unwrap().len(), MAX_KEYS);
        let now = start + Duration::from_millis(1000);
        assert_eq!(log.occurrence_at("error 0", now), Repeat::First);
        assert_eq!(log.occurrence_at("error 999", now), Repeat::Quiet);
    }
}
