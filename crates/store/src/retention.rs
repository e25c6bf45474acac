//! Retention: how many messages the store keeps and for how long, and the
//! background task that deletes the rest.
//!
//! ```text
//! StoreEvent::New ──┐
//! timer (1 s) ──────┴─▶ Pruner task ──spawn_blocking──▶ Store::prune ──▶ batches of deletes
//!                                                            │ (yielding to the writer between them)
//!                                                            └─▶ StoreEvent::Pruned(ids) per batch
//! ```
//!
//! [`Retention`] is the policy, backend-neutral: keep the newest N messages
//! (`--max`), none older than some age (`--max-age 7d`, by received time).
//! Both are off by default: a catcher that silently deletes mail surprises
//! people. [`Pruner`] applies a policy in the background: it checks at most
//! once a [`CHECK_INTERVAL`], and only when a message arrived since the last
//! check or a maximum age is set, so pruning starts within about a second of a
//! limit being passed. Each run is logged once, with what it removed. On
//! PostgreSQL every node runs a pruner and one of them, the holder of an
//! advisory lock, does the work ([`Store::prune`]).

use std::fmt;
use std::num::NonZeroU64;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use tokio::sync::{Notify, broadcast};
use tokio::task::JoinHandle;

use crate::repeated::{REPEAT_INTERVAL, RepeatedLog};
use crate::{Store, StoreEvent};

/// How often the [`Pruner`] looks whether anything is due: a message that
/// passes a limit is deleted within this (plus the time the run takes).
pub const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The longest [`MaxAge`]: about a hundred years. Longer would keep every
/// message anyway, and the limit keeps the arithmetic in range.
pub const MAX_AGE_LIMIT: Duration = Duration::from_secs(36_500 * 86_400);

/// Which messages the store keeps; the others are deleted by a [`Pruner`].
/// The default keeps every message.
///
/// Zero of either limit means no limit, as in Mailpit, whose `--max 0` is how
/// its users switch its default limit off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    max_messages: Option<NonZeroU64>,
    max_age: Option<MaxAge>,
}

impl Retention {
    /// Keep at most the newest `max_messages` messages (by id, that is in the
    /// order they arrived), and none received longer than `max_age` ago.
    /// `None` or zero: no such limit.
    pub fn new(max_messages: Option<u64>, max_age: Option<MaxAge>) -> Retention {
        Retention {
            max_messages: max_messages.and_then(NonZeroU64::new),
            max_age: max_age.filter(|age| !age.0.is_zero()),
        }
    }

    /// How many messages are kept at most, if that is limited.
    pub fn max_messages(&self) -> Option<u64> {
        self.max_messages.map(NonZeroU64::get)
    }

    /// How old a message may get, if that is limited.
    pub fn max_age(&self) -> Option<MaxAge> {
        self.max_age
    }

    /// Whether the policy keeps every message.
    pub fn is_off(&self) -> bool {
        self.max_messages.is_none() && self.max_age.is_none()
    }
}

/// What `mail serve` prints at start: `keep the newest 100 messages, none older
/// than 7d`, `keep no message older than 7d`, or `off`.
impl fmt::Display for Retention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.max_messages, self.max_age) {
            (None, None) => f.write_str("off"),
            (Some(max), None) => write!(f, "keep the newest {max} {}", messages(max.get())),
            (None, Some(age)) => write!(f, "keep no message older than {age}"),
            (Some(max), Some(age)) => write!(
                f,
                "keep the newest {max} {}, none older than {age}",
                messages(max.get())
            ),
        }
    }
}

fn messages(count: u64) -> &'static str {
    if count == 1 { "message" } else { "messages" }
}

/// How long a message is kept after it was received: a whole number of
/// seconds, written `30s`, `15m`, `12h` or `7d` (a unit is required, except
/// for `0`, which [`Retention::new`] takes as no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct MaxAge(Duration);

impl MaxAge {
    /// The age as a duration.
    pub fn duration(&self) -> Duration {
        self.0
    }
}

/// Why a maximum age did not parse. Each message says what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AgeError {
    /// Not a whole number followed by a unit.
    #[error("{0:?} is not an age; write a whole number and a unit: 30s, 15m, 12h or 7d")]
    Malformed(String),
    /// A number without a unit, which could mean anything.
    #[error("{0:?} needs a unit: s, m, h or d (e.g. {0}d)")]
    NoUnit(String),
    /// A unit other than s, m, h and d.
    #[error("unknown unit {unit:?} in {input:?}; use s, m, h or d")]
    UnknownUnit {
        /// What was given.
        input: String,
        /// The unit in it.
        unit: String,
    },
    /// Longer than [`MAX_AGE_LIMIT`].
    #[error("{0:?} is too long; at most 36500d")]
    TooLong(String),
}

impl FromStr for MaxAge {
    type Err = AgeError;

    fn from_str(input: &str) -> Result<MaxAge, AgeError> {
        let s = input.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (number, unit) = s.split_at(split);
        if number.is_empty() {
            return Err(AgeError::Malformed(input.into()));
        }
        let scale = match unit.trim() {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            // Zero is zero in any unit: Mailpit's way of saying "no limit".
            "" if number.bytes().all(|b| b == b'0') => 1,
            "" => return Err(AgeError::NoUnit(input.into())),
            unit if unit.starts_with(|c: char| c.is_ascii_alphabetic()) => {
                return Err(AgeError::UnknownUnit {
                    input: input.into(),
                    unit: unit.into(),
                });
            }
            _ => return Err(AgeError::Malformed(input.into())),
        };
        let seconds = number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(scale))
            .map(Duration::from_secs)
            .filter(|age| *age <= MAX_AGE_LIMIT)
            .ok_or_else(|| AgeError::TooLong(input.into()))?;
        Ok(MaxAge(seconds))
    }
}

/// In the largest of d, h, m, s that gives a whole number: `7d`, `90m`.
impl fmt::Display for MaxAge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.0.as_secs();
        let (scale, unit) = [(86_400, 'd'), (3600, 'h'), (60, 'm')]
            .into_iter()
            .find(|(scale, _)| seconds > 0 && seconds % scale == 0)
            .unwrap_or((1, 's'));
        write!(f, "{}{unit}", seconds / scale)
    }
}

/// What one [`Store::prune`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Messages beyond the newest [`Retention::max_messages`].
    pub beyond_max: u64,
    /// Messages older than [`Retention::max_age`] (not counting those already
    /// deleted as beyond the maximum).
    pub too_old: u64,
}

impl PruneReport {
    /// All messages deleted.
    pub fn total(&self) -> u64 {
        self.beyond_max + self.too_old
    }

    /// `pruned 50 messages beyond the newest 100 and 3 older than 7d`, for the
    /// log line of a run under `policy`.
    pub fn describe(&self, policy: &Retention) -> String {
        let mut parts = Vec::new();
        if let (n @ 1.., Some(max)) = (self.beyond_max, policy.max_messages()) {
            parts.push(format!("{n} {} beyond the newest {max}", messages(n)));
        }
        if let (n @ 1.., Some(age)) = (self.too_old, policy.max_age()) {
            let noun = if parts.is_empty() {
                format!("{n} {}", messages(n))
            } else {
                n.to_string()
            };
            parts.push(format!("{noun} older than {age}"));
        }
        format!("pruned {}", parts.join(" and "))
    }
}

/// The background task that applies a [`Retention`] to a store. Stop it with
/// [`Pruner::stop`]; dropping it stops it too, without waiting.
#[derive(Debug)]
pub struct Pruner {
    stop: Arc<AtomicBool>,
    wake: Arc<Notify>,
    task: Option<JoinHandle<()>>,
}

impl Pruner {
    /// Start applying `policy` to `store`: once at once (a store opened over
    /// its limit is pruned first thing), then whenever a limit may have been
    /// passed. Must be called inside a tokio runtime. A policy that keeps
    /// everything starts no task.
    pub fn spawn(store: Store, policy: Retention) -> Pruner {
        let stop = Arc::new(AtomicBool::new(false));
        let wake = Arc::new(Notify::new());
        let task = (!policy.is_off()).then(|| {
            // Subscribed before the task runs, so no delivery is missed.
            let events = store.subscribe();
            tokio::spawn(run(
                store,
                policy,
                events,
                Arc::clone(&stop),
                Arc::clone(&wake),
            ))
        });
        Pruner { stop, wake, task }
    }

    /// Stop pruning, and wait until the batch being deleted (if any) has
    /// committed.
    pub async fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.wake.notify_one();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Pruner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.wake.notify_one();
    }
}

async fn run(
    store: Store,
    policy: Retention,
    mut events: broadcast::Receiver<StoreEvent>,
    stop: Arc<AtomicBool>,
    wake: Arc<Notify>,
) {
    static FAILED: RepeatedLog = RepeatedLog::new(REPEAT_INTERVAL);
    let mut check = tokio::time::interval(CHECK_INTERVAL);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Messages age without any event, so a maximum age is checked on every
    // tick; a maximum count can only be passed by a new message.
    let mut due = true;
    loop {
        tokio::select! {
            () = wake.notified() => return,
            _ = check.tick() => {
                if !(due || policy.max_age.is_some()) {
                    continue;
                }
                due = false;
                let (store, stop_run) = (store.clone(), Arc::clone(&stop));
                let run = tokio::task::spawn_blocking(move || {
                    store.prune(&policy, SystemTime::now(), &stop_run)
                });
                match run.await {
                    Ok(Ok(report)) if report.total() > 0 => {
                        tracing::info!("{}", report.describe(&policy));
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => {
                        // Tried again at the next check.
                        due = true;
                        let repeat = FAILED.occurrence(&error.to_string());
                        if repeat.should_log() {
                            tracing::warn!("pruning old messages failed: {error}{repeat}");
                        }
                    }
                    Err(_) => return,
                }
                if stop.load(Ordering::Relaxed) {
                    return;
                }
            }
            event = events.recv() => match event {
                // Another process may have delivered too (`Changed`), and a
                // subscriber that fell behind has missed deliveries (`Lagged`).
                Ok(StoreEvent::New(_) | StoreEvent::Changed)
                | Err(broadcast::error::RecvError::Lagged(_)) => due = true,
                Ok(_) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_parse_in_four_units_and_print_back() {
        for (input, seconds, printed) in [
            ("30s", 30, "30s"),
            ("15m", 900, "15m"),
            ("12h", 43_200, "12h"),
            ("7d", 604_800, "7d"),
            (" 2s ", 2, "2s"),
            ("90m", 5400, "90m"),
            ("120m", 7200, "2h"),
            ("36500d", 36_500 * 86_400, "36500d"),
            ("0d", 0, "0s"),
            ("0", 0, "0s"),
        ] {
            let age: MaxAge = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(age.duration(), Duration::from_secs(seconds), "{input}");
            assert_eq!(age.to_string(), printed, "{input}");
        }
    }

    #[test]
    fn bad_ages_say_what_to_write() {
        for (input, expected) in [
            ("", AgeError::Malformed("".into())),
            ("d", AgeError::Malformed("d".into())),
            ("-7d", AgeError::Malformed("-7d".into())),
            ("1.5d", AgeError::Malformed("1.5d".into())),
            ("7", AgeError::NoUnit("7".into())),
            (
                "7w",
                AgeError::UnknownUnit {
                    input: "7w".into(),
                    unit: "w".into(),
                },
            ),
            (
                "7days",
                AgeError::UnknownUnit {
                    input: "7days".into(),
                    unit: "days".into(),
                },
            ),
            ("36501d", AgeError::TooLong("36501d".into())),
            (
                "99999999999999999999d",
                AgeError::TooLong("99999999999999999999d".into()),
            ),
        ] {
            assert_eq!(input.parse::<MaxAge>(), Err(expected), "{input:?}");
        }
        assert_eq!(
            "7".parse::<MaxAge>().unwrap_err().to_string(),
            r#""7" needs a unit: s, m, h or d (e.g. 7d)"#
        );
    }

    #[test]
    fn the_policy_reads_as_mail_serve_prints_it() {
        let week: MaxAge = "7d".parse().unwrap();
        assert_eq!(Retention::default().to_string(), "off");
        assert_eq!(
            Retention::new(Some(100), Some(week)).to_string(),
            "keep the newest 100 messages, none older than 7d"
        );
        assert_eq!(
            Retention::new(Some(1), None).to_string(),
            "keep the newest 1 message"
        );
        assert_eq!(
            Retention::new(None, Some(week)).to_string(),
            "keep no message older than 7d"
        );
        // Zero is no limit, as in Mailpit.
        let none: MaxAge = "0s".parse().unwrap();
        assert!(Retention::new(Some(0), Some(none)).is_off());
    }

    #[test]
    fn a_run_is_described_in_one_line() {
        let policy = Retention::new(Some(100), Some("7d".parse().unwrap()));
        let report = |beyond_max, too_old| PruneReport {
            beyond_max,
            too_old,
        };
        assert_eq!(
            report(50, 0).describe(&policy),
            "pruned 50 messages beyond the newest 100"
        );
        assert_eq!(
            report(0, 1).describe(&policy),
            "pruned 1 message older than 7d"
        );
        assert_eq!(
            report(50, 3).describe(&policy),
            "pruned 50 messages beyond the newest 100 and 3 older than 7d"
        );
    }
}
