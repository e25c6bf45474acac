//! Chaos: faults the SMTP server injects on purpose, so a test suite can see how
//! its application copes with a mail server that refuses, hangs up or crawls.
//!
//! Mailpit's three triggers refuse a command with a chosen code at a chosen
//! probability: [`Point::Sender`] (MAIL), [`Point::Recipient`] (RCPT) and
//! [`Point::Authentication`] (AUTH). sokkel adds what MailHog's "Jim" did: a
//! probability of dropping the connection without a reply at one [`Stage`], and a
//! slow link that moves at most so many bytes per second each way.
//!
//! ```text
//! binary (--chaos ...) ──▶ Arc<Chaos> ◀── web: GET/PUT /api/v1/chaos
//!                             │
//!     SMTP session core ──draw(Point) / disconnect(Stage)──▶ refuse, hang up
//!     SMTP shell        ──slow_link()──▶ paced writes and reads
//! ```
//!
//! One [`Chaos`] is shared by every session and the web API, and changes at run
//! time. Its draws come from one small generator (SplitMix64) behind a mutex: with
//! a fixed seed, one client doing the same things in the same order sees the same
//! faults on every run. A trigger at probability 0 draws nothing, so switching one
//! trigger on does not change the draws of another.

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::{Mutex, PoisonError};

/// The lowest error code a trigger may use (Mailpit's range).
pub const MIN_ERROR_CODE: u16 = 400;
/// The highest error code a trigger may use.
pub const MAX_ERROR_CODE: u16 = 599;

/// Where one of Mailpit's triggers refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// MAIL FROM.
    Sender,
    /// RCPT TO.
    Recipient,
    /// AUTH.
    Authentication,
}

impl Point {
    /// The code a trigger gets when none is given: 451 for the addresses, 535
    /// for AUTH (Mailpit's defaults).
    pub fn default_code(self) -> u16 {
        match self {
            Point::Sender | Point::Recipient => 451,
            Point::Authentication => 535,
        }
    }

    /// The name in `--chaos` and in the API.
    pub fn name(self) -> &'static str {
        match self {
            Point::Sender => "Sender",
            Point::Recipient => "Recipient",
            Point::Authentication => "Authentication",
        }
    }
}

/// Where a session may be dropped without a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stage {
    /// On connect, before the greeting.
    #[default]
    Connect,
    /// On MAIL FROM, instead of its reply.
    Mail,
    /// On RCPT TO, instead of its reply.
    Rcpt,
    /// On DATA (or a first BDAT), instead of its reply.
    Data,
    /// After the message content has arrived, before it is stored or answered.
    Content,
}

impl Stage {
    /// Every stage, in session order.
    pub const ALL: [Stage; 5] = [
        Stage::Connect,
        Stage::Mail,
        Stage::Rcpt,
        Stage::Data,
        Stage::Content,
    ];

    /// The name in `--chaos` and in the API.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Connect => "connect",
            Stage::Mail => "mail",
            Stage::Rcpt => "rcpt",
            Stage::Data => "data",
            Stage::Content => "content",
        }
    }
}

impl FromStr for Stage {
    type Err = ChaosError;

    fn from_str(name: &str) -> Result<Self, ChaosError> {
        Stage::ALL
            .into_iter()
            .find(|stage| stage.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| ChaosError::Stage(name.to_owned()))
    }
}

/// One of Mailpit's triggers: refuse with `error_code` in `probability`
/// percent of the draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trigger {
    /// The reply code, 400 to 599.
    pub error_code: u16,
    /// The chance in percent, 0 (never) to 100 (always).
    pub probability: u8,
}

impl Trigger {
    /// A trigger, checked: the code must be a 4xx or 5xx, the probability at
    /// most 100. `point` names the trigger in the error.
    pub fn new(point: Point, error_code: u16, probability: u8) -> Result<Self, ChaosError> {
        if !(MIN_ERROR_CODE..=MAX_ERROR_CODE).contains(&error_code) {
            return Err(ChaosError::ErrorCode {
                trigger: point.name(),
                code: i64::from(error_code),
            });
        }
        check_probability(point.name(), i64::from(probability))?;
        Ok(Trigger {
            error_code,
            probability,
        })
    }

    /// A trigger from a code of any size (as JSON or a command line gives it).
    pub fn checked(point: Point, error_code: i64, probability: u8) -> Result<Self, ChaosError> {
        let code = u16::try_from(error_code).map_err(|_| ChaosError::ErrorCode {
            trigger: point.name(),
            code: error_code,
        })?;
        Trigger::new(point, code, probability)
    }

    /// The trigger switched off, with its default code.
    pub fn off(point: Point) -> Self {
        Trigger {
            error_code: point.default_code(),
            probability: 0,
        }
    }
}

/// Dropping the connection at `stage` in `probability` percent of the draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Disconnect {
    /// Where.
    pub stage: Stage,
    /// The chance in percent; 0 is off.
    pub probability: u8,
}

/// Every trigger at once: what `GET /api/v1/chaos` shows and `PUT` replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Triggers {
    /// MAIL FROM.
    pub sender: Trigger,
    /// RCPT TO.
    pub recipient: Trigger,
    /// AUTH.
    pub authentication: Trigger,
    /// Hanging up without a reply.
    pub disconnect: Disconnect,
    /// The most bytes per second the server writes to a client and reads
    /// from it; `None` is full speed.
    pub slow_link: Option<NonZeroU32>,
}

impl Default for Triggers {
    /// Everything off; Mailpit's default codes.
    fn default() -> Self {
        Triggers {
            sender: Trigger::off(Point::Sender),
            recipient: Trigger::off(Point::Recipient),
            authentication: Trigger::off(Point::Authentication),
            disconnect: Disconnect::default(),
            slow_link: None,
        }
    }
}

impl Triggers {
    /// The trigger at `point`.
    pub fn trigger(&self, point: Point) -> Trigger {
        match point {
            Point::Sender => self.sender,
            Point::Recipient => self.recipient,
            Point::Authentication => self.authentication,
        }
    }

    fn trigger_mut(&mut self, point: Point) -> &mut Trigger {
        match point {
            Point::Sender => &mut self.sender,
            Point::Recipient => &mut self.recipient,
            Point::Authentication => &mut self.authentication,
        }
    }

    /// Applies one setting (a later one for the same trigger wins).
    pub fn apply(&mut self, setting: Setting) {
        match setting {
            Setting::Refuse(point, trigger) => *self.trigger_mut(point) = trigger,
            Setting::Disconnect(disconnect) => self.disconnect = disconnect,
            Setting::SlowLink(rate) => self.slow_link = rate,
        }
    }

    /// Parses a list of `--chaos` settings (each may hold several, comma
    /// separated) onto the defaults. See [`Setting`] for the syntax. Empty
    /// settings are skipped, so `SOKKEL_CHAOS=` sets nothing, as Mailpit's
    /// empty `MP_CHAOS_TRIGGERS` does.
    pub fn parse<S: AsRef<str>>(specs: &[S]) -> Result<Self, ChaosError> {
        let mut triggers = Triggers::default();
        for part in settings(specs) {
            triggers.apply(part.parse()?);
        }
        Ok(triggers)
    }

    /// Whether any trigger can fire.
    pub fn any(&self) -> bool {
        [self.sender, self.recipient, self.authentication]
            .iter()
            .any(|trigger| trigger.probability > 0)
            || self.disconnect.probability > 0
            || self.slow_link.is_some()
    }
}

impl fmt::Display for Triggers {
    /// The settings in `--chaos` syntax, for the log line at start.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for point in [Point::Sender, Point::Recipient, Point::Authentication] {
            let trigger = self.trigger(point);
            write!(
                f,
                "{}:{}:{}, ",
                point.name().to_ascii_lowercase(),
                trigger.error_code,
                trigger.probability
            )?;
        }
        let Disconnect { stage, probability } = self.disconnect;
        write!(f, "disconnect:{}:{probability}, ", stage.name())?;
        write!(f, "slowlink:{}", self.slow_link.map_or(0, NonZeroU32::get))
    }
}

/// The non-empty settings in a list of `--chaos` values.
pub fn settings<S: AsRef<str>>(specs: &[S]) -> impl Iterator<Item = &str> {
    specs
        .iter()
        .flat_map(|spec| spec.as_ref().split(','))
        .map(str::trim)
        .filter(|part| !part.is_empty())
}

/// One `--chaos` setting.
///
/// ```text
/// sender:451:50          MAIL gets 451 half of the time (Mailpit's syntax;
/// recipient:550:100      also "recipients", "auth", "authentication"; any case)
/// disconnect:rcpt:30     hang up instead of answering RCPT, 30% of the time
///                        (stages: connect, mail, rcpt, data, content)
/// slowlink:2000          write and read at most 2000 bytes per second (0: full speed)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    /// One of Mailpit's triggers.
    Refuse(Point, Trigger),
    /// The disconnect trigger.
    Disconnect(Disconnect),
    /// The slow link.
    SlowLink(Option<NonZeroU32>),
}

impl FromStr for Setting {
    type Err = ChaosError;

    fn from_str(spec: &str) -> Result<Self, ChaosError> {
        let fields: Vec<&str> = spec.split(':').map(str::trim).collect();
        let malformed = || ChaosError::Malformed(spec.to_owned());
        let point = match fields[0].to_ascii_lowercase().as_str() {
            "sender" => Point::Sender,
            "recipient" | "recipients" => Point::Recipient,
            "auth" | "authentication" => Point::Authentication,
            "disconnect" => {
                let [_, stage, probability] = fields[..] else {
                    return Err(malformed());
                };
                let probability =
                    check_probability("Disconnect", parse_number(spec, probability)?)?;
                return Ok(Setting::Disconnect(Disconnect {
                    stage: stage.parse()?,
                    probability,
                }));
            }
            "slowlink" => {
                let [_, rate] = fields[..] else {
                    return Err(malformed());
                };
                let rate = parse_number(spec, rate)?;
                let rate = u32::try_from(rate).map_err(|_| ChaosError::Rate(rate))?;
                return Ok(Setting::SlowLink(NonZeroU32::new(rate)));
            }
            "" => return Err(malformed()),
            other => return Err(ChaosError::Unknown(other.to_owned())),
        };
        let [_, code, probability] = fields[..] else {
            return Err(malformed());
        };
        let code = parse_number(spec, code)?;
        let probability = check_probability(point.name(), parse_number(spec, probability)?)?;
        Ok(Setting::Refuse(
            point,
            Trigger::checked(point, code, probability)?,
        ))
    }
}

fn parse_number(spec: &str, field: &str) -> Result<i64, ChaosError> {
    field.parse().map_err(|_| ChaosError::Number {
        spec: spec.to_owned(),
        field: field.to_owned(),
    })
}

/// Checks a probability in percent, naming the trigger it is for.
pub fn check_probability(trigger: &'static str, probability: i64) -> Result<u8, ChaosError> {
    if !(0..=100).contains(&probability) {
        return Err(ChaosError::Probability {
            trigger,
            probability,
        });
    }
    Ok(probability as u8)
}

/// A chaos setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChaosError {
    /// Not `name:value[:value]`.
    #[error(
        "chaos setting {0:?} is malformed; use sender|recipient|auth:CODE:PERCENT, disconnect:STAGE:PERCENT or slowlink:BYTES_PER_SECOND"
    )]
    Malformed(String),
    /// An unknown trigger name.
    #[error("unknown chaos trigger {0:?}; use sender, recipient, auth, disconnect or slowlink")]
    Unknown(String),
    /// A field that is not a number.
    #[error("chaos setting {spec:?}: {field:?} is not a number")]
    Number {
        /// The whole setting.
        spec: String,
        /// The field.
        field: String,
    },
    /// An error code outside 400-599.
    #[error("{trigger}.ErrorCode {code} must be between 400 and 599")]
    ErrorCode {
        /// Which trigger.
        trigger: &'static str,
        /// The code given.
        code: i64,
    },
    /// A probability over 100.
    #[error("{trigger}.Probability {probability} must be between 0 and 100")]
    Probability {
        /// Which trigger.
        trigger: &'static str,
        /// The probability given.
        probability: i64,
    },
    /// An unknown disconnect stage.
    #[error("disconnect stage {0:?} is unknown; use connect, mail, rcpt, data or content")]
    Stage(String),
    /// A slow-link rate that is negative or beyond `u32`.
    #[error("slowlink rate {0} must be between 0 and 4294967295 bytes per second")]
    Rate(i64),
}

/// A seed that differs from run to run, for when the user gave none (log it, so
/// a run that found a bug can be repeated with `--chaos-seed`).
pub fn random_seed() -> u64 {
    // The standard library's per-process random keys: no new dependency.
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// The shared, runtime-changeable chaos state: the triggers and the generator
/// their draws come from. Share it as an `Arc<Chaos>`.
#[derive(Debug)]
pub struct Chaos {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    triggers: Triggers,
    random: SplitMix64,
}

impl Chaos {
    /// Chaos with these triggers, its draws starting from `seed` (see
    /// [`random_seed`] for a different sequence on every run).
    pub fn new(triggers: Triggers, seed: u64) -> Self {
        Chaos {
            state: Mutex::new(State {
                triggers,
                random: SplitMix64(seed),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is always whole: a panic elsewhere leaves nothing half set.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The triggers now.
    pub fn triggers(&self) -> Triggers {
        self.state().triggers
    }

    /// Replaces every trigger (the generator goes on where it was).
    pub fn set(&self, triggers: Triggers) {
        self.state().triggers = triggers;
    }

    /// Draws for the trigger at `point`: the code to refuse with, if it fires.
    pub fn refusal(&self, point: Point) -> Option<u16> {
        let mut state = self.state();
        let trigger = state.triggers.trigger(point);
        state
            .draw(trigger.probability)
            .then_some(trigger.error_code)
    }

    /// Draws for the disconnect trigger at `stage`: whether to hang up now.
    pub fn disconnect(&self, stage: Stage) -> bool {
        let mut state = self.state();
        let disconnect = state.triggers.disconnect;
        disconnect.stage == stage && state.draw(disconnect.probability)
    }

    /// The most bytes per second to write and to read, if the link is slowed.
    pub fn slow_link(&self) -> Option<NonZeroU32> {
        self.state().triggers.slow_link
    }
}

impl State {
    /// True in `probability` percent of the draws; no draw at 0.
    fn draw(&mut self, probability: u8) -> bool {
        if probability == 0 {
            return false;
        }
        // The top bits scaled to 0..100 (Lemire's multiply-shift): unbiased enough
        // for a test fault, and 100 always fires.
        let roll = ((self.random.next() >> 32) * 100) >> 32;
        roll < u64::from(probability)
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny generator with good statistics,
/// the usual seeder of xorshift-family generators.
#[derive(Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_in_mailpit_and_sokkel_syntax() {
        let triggers = Triggers::parse(&[
            "Sender:452:10,RECIPIENTS:550:100",
            "auth:454:5",
            "disconnect:RCPT:30",
            "slowlink:2000",
        ])
        .unwrap();
        assert_eq!(
            triggers.sender,
            Trigger::new(Point::Sender, 452, 10).unwrap()
        );
        assert_eq!(triggers.recipient.error_code, 550);
        assert_eq!(triggers.recipient.probability, 100);
        assert_eq!(triggers.authentication.error_code, 454);
        assert_eq!(
            triggers.disconnect,
            Disconnect {
                stage: Stage::Rcpt,
                probability: 30
            }
        );
        assert_eq!(triggers.slow_link, NonZeroU32::new(2000));
        assert!(triggers.any());
        assert!(!Triggers::parse(&["slowlink:0"]).unwrap().any());
        assert_eq!(Triggers::parse(&["", " , "]), Ok(Triggers::default()));
        assert_eq!(
            triggers.to_string(),
            "sender:452:10, recipient:550:100, authentication:454:5, disconnect:rcpt:30, slowlink:2000"
        );
    }

    #[test]
    fn bad_settings_name_the_bad_part() {
        let cases = [
            ("recipient:451", "malformed"),
            ("bogus:451:1", "\"bogus\""),
            ("sender:abc:1", "\"abc\" is not a number"),
            ("sender:399:1", "Sender.ErrorCode 399"),
            ("recipient:70000:1", "Recipient.ErrorCode 70000"),
            ("auth:535:101", "Authentication.Probability 101"),
            ("disconnect:quit:5", "\"quit\""),
            ("disconnect:rcpt:200", "Disconnect.Probability 200"),
            ("slowlink:99999999999", "slowlink rate 99999999999"),
            ("slowlink:-1", "slowlink rate -1"),
            ("sender:451:-1", "Sender.Probability -1"),
            (":", "malformed"),
        ];
        for (spec, want) in cases {
            let error = Triggers::parse(&[spec]).unwrap_err().to_string();
            assert!(error.contains(want), "{spec}: {error}");
        }
    }

    fn fires(chaos: &Chaos, point: Point, draws: usize) -> usize {
        (0..draws)
            .filter(|_| chaos.refusal(point).is_some())
            .count()
    }

    #[test]
    fn probability_0_never_fires_100_always_and_50_about_half() {
        let triggers = Triggers {
            sender: Trigger::new(Point::Sender, 451, 100).unwrap(),
            recipient: Trigger::new(Point::Recipient, 550, 50).unwrap(),
            ..Triggers::default()
        };
        let chaos = Chaos::new(triggers, 7);
        assert_eq!(chaos.refusal(Point::Sender), Some(451));
        assert_eq!(fires(&chaos, Point::Sender, 1000), 1000);
        assert_eq!(fires(&chaos, Point::Authentication, 1000), 0);
        let half = fires(&chaos, Point::Recipient, 1000);
        assert!((400..600).contains(&half), "{half}");
    }

    #[test]
    fn a_seed_makes_the_draws_reproducible() {
        let triggers = Triggers::parse(&["recipient:451:50", "disconnect:mail:50"]).unwrap();
        let play = |seed| {
            let chaos = Chaos::new(triggers, seed);
            (0..64)
                .map(|i| {
                    if i % 2 == 0 {
                        chaos.refusal(Point::Recipient).is_some()
                    } else {
                        chaos.disconnect(Stage::Mail)
                    }
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(play(1), play(1));
        assert_ne!(play(1), play(2));
    }

    #[test]
    fn disconnect_fires_only_at_its_stage() {
        let triggers = Triggers::parse(&["disconnect:data:100"]).unwrap();
        let chaos = Chaos::new(triggers, 1);
        for stage in Stage::ALL {
            assert_eq!(chaos.disconnect(stage), stage == Stage::Data, "{stage:?}");
        }
    }
}
