//! The web login (`--ui-auth-file`): HTTP Basic over the page, the API and the
//! WebSocket alike, checked by one middleware before any handler runs. The
//! health checks stay open for load balancers ([`OPEN_PATHS`]).
//!
//! ```text
//! request ─▶ open path? ──yes──▶ handler
//!              │ no
//!              ▼
//!            Authorization: Basic ... ─ none or unreadable ─▶ 401 at once
//!              │
//!              ▼
//!            verified recently? (keyed hash of the header) ──yes──▶ handler
//!              │ no
//!              ▼
//!            the address group penalised? ──yes──▶ 429 + Retry-After, unchecked
//!              │ no
//!              ▼
//!            the group's turn (one check at a time per group), then a verifier
//!            (at most VERIFIERS at once), within CHECK_WAIT ─ not in time ─▶ 503
//!              │
//!              ▼
//!            Credentials::verify on the blocking pool
//!              ├─ right ─▶ remembered for CACHE_FOR ─▶ handler
//!              └─ wrong ─▶ the group penalised for its delay; logged (user name
//!                          and address, never the password) ─▶ the delay ─▶ 401
//! ```
//!
//! bcrypt and Argon2 are slow on purpose, so a page's burst of requests would
//! cost one hash each without the cache, and a flood of guesses would take every
//! core without the cap on verifiers.
//!
//! The delay after a failure is a penalty on the client's address group (an IPv4
//! address, an IPv6 /64): until it ends, no login from the group is checked, the
//! right one included, so sending guesses without waiting for the answers gains
//! nothing. A client that waits for its 401 is never refused: the answer comes
//! when the penalty ends. The delay grows with the group's failures, which are
//! forgotten one a minute rather than cleared by a right login, since a right
//! login from a shared address (a proxy, a NAT) need not be the guesser's. Behind
//! a reverse proxy every client is the proxy's address, one group: the proxy has
//! to limit logins per client itself.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::hmac;
use sokkel_net::auth::Credentials;
use sokkel_net::repeated::{REPEAT_INTERVAL, RepeatedLog};
use tokio::sync::Semaphore;

use crate::proxy::WebRoot;
use crate::{AppState, WebConfig};

/// Paths answered without a login: the health checks (and the metrics, when
/// served) are for load balancers and Prometheus, and tell nothing of the mail.
pub const OPEN_PATHS: [&str; 3] = ["/livez", "/readyz", "/metrics"];

/// The challenge of every 401 (RFC 7617; the charset says user names and
/// passwords are sent as UTF-8, which is what browsers then do).
pub const CHALLENGE: &str = "Basic realm=\"sokkel\", charset=\"UTF-8\"";

/// Password checks running at once; more wait their turn, so guesses cannot
/// take every core from SMTP and the store.
const VERIFIERS: usize = 2;

/// How long a verified `Authorization` header is taken without a new check.
const CACHE_FOR: Duration = Duration::from_secs(120);

/// The most headers remembered as verified.
const MAX_CACHED: usize = 256;

/// The longest a client waits after a wrong login, however many it made
/// (unless the configured delay itself is longer).
const MAX_FAILURE_DELAY: Duration = Duration::from_secs(30);

/// How long a group's failure counts: one is forgotten after each such
/// stretch without a new one.
const FORGET_ONE_AFTER: Duration = Duration::from_secs(60);

/// The most address groups whose failures are counted at once; beyond that,
/// new groups share one count and one turn ([`Origin::Overflow`]).
const MAX_TRACKED: usize = 4096;

/// How long a login may wait for its group's turn and a verifier before the
/// answer is 503: the wait is bounded even when guesses from many groups queue.
const CHECK_WAIT: Duration = Duration::from_secs(10);

/// When a client whose login could not be checked in time may try again.
const RETRY_BUSY_AFTER: Duration = Duration::from_secs(5);

/// The most characters of a user name a log line shows.
const MAX_LOGGED_NAME: usize = 64;

/// What the login middleware shares between requests. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Gate {
    inner: Arc<GateInner>,
}

struct GateInner {
    credentials: Credentials,
    failure_delay: Duration,
    verifiers: Arc<Semaphore>,
    /// Keys the cache, so it holds no hash an attacker could test guesses against.
    cache_key: hmac::Key,
    /// A keyed hash of each recently verified header, and until when it stands.
    verified: Mutex<HashMap<Vec<u8>, Instant>>,
    groups: Mutex<Groups>,
    /// [`OPEN_PATHS`] under the web root.
    open_paths: Vec<String>,
}

/// Where a login comes from, as far as its failures are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Origin {
    /// An IPv4 address, or an IPv6 /64 (one host may pick addresses from a whole
    /// /64, as `sokkel_net::server::address_group` groups them too).
    Group(IpAddr),
    /// Every client met while [`MAX_TRACKED`] groups were already counted (or
    /// whose address is unknown): a client cannot escape its count by using
    /// ever-new addresses.
    Overflow,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Group(IpAddr::V6(prefix)) => write!(f, "{prefix}/64"),
            Origin::Group(ip) => write!(f, "{ip}"),
            Origin::Overflow => f.write_str("addresses beyond the counted ones"),
        }
    }
}

/// The origin of a client at `ip`.
fn origin_of(ip: IpAddr) -> Origin {
    match ip.to_canonical() {
        IpAddr::V4(v4) => Origin::Group(IpAddr::V4(v4)),
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            Origin::Group(IpAddr::V6(prefix.into()))
        }
    }
}

/// The failures counted per origin.
struct Groups {
    tracked: HashMap<IpAddr, Group>,
    overflow: Group,
}

/// One origin's wrong logins, its penalty, and its turn to be checked.
#[derive(Default)]
struct Group {
    /// Failures not yet forgotten, as of `last_failure`.
    count: u32,
    last_failure: Option<Instant>,
    /// No login from the group is checked before then.
    penalised_until: Option<Instant>,
    /// Held while one of the group's logins is checked.
    turn: Turn,
}

/// An origin's turn to have a login checked.
type Turn = Arc<tokio::sync::Mutex<()>>;

impl Group {
    /// The failures still counted at `now`: one is forgotten per
    /// [`FORGET_ONE_AFTER`] since the last.
    fn count_at(&self, now: Instant) -> u32 {
        let Some(last) = self.last_failure else {
            return 0;
        };
        let forgotten = now.saturating_duration_since(last).as_secs() / FORGET_ONE_AFTER.as_secs();
        self.count
            .saturating_sub(u32::try_from(forgotten).unwrap_or(u32::MAX))
    }

    /// How much of its penalty is left at `now`, if any.
    fn penalty_left(&self, now: Instant) -> Option<Duration> {
        self.penalised_until
            .map(|until| until.saturating_duration_since(now))
            .filter(|left| !left.is_zero())
    }

    /// Whether forgetting the group loses nothing: no failure counted, no
    /// penalty, no login checked or waiting.
    fn idle(&self, now: Instant) -> bool {
        self.count_at(now) == 0
            && self.penalty_left(now).is_none()
            && Arc::strong_count(&self.turn) == 1
    }
}

impl Groups {
    fn get(&mut self, origin: Origin) -> &mut Group {
        match origin {
            Origin::Group(ip) => self.tracked.entry(ip).or_default(),
            Origin::Overflow => &mut self.overflow,
        }
    }

    /// Where a client at `ip` counts: its own group while there is room (idle
    /// groups make room), the shared overflow otherwise.
    fn origin(&mut self, ip: Option<IpAddr>, now: Instant) -> Origin {
        let Some(origin @ Origin::Group(group)) = ip.map(origin_of) else {
            return Origin::Overflow;
        };
        if self.tracked.len() >= MAX_TRACKED && !self.tracked.contains_key(&group) {
            self.tracked.retain(|_, g| !g.idle(now));
            if self.tracked.len() >= MAX_TRACKED {
                return Origin::Overflow;
            }
        }
        origin
    }
}

/// What came of a login the gate took up.
enum Verdict {
    Right,
    /// Wrong; the answer waits this long.
    Wrong(Duration),
    /// Its group is penalised for this much longer: not checked.
    Penalised(Duration),
    /// No turn or verifier within [`CHECK_WAIT`]: not checked.
    Busy,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("credentials", &self.inner.credentials)
            .finish_non_exhaustive()
    }
}

impl Gate {
    /// A gate letting in the users of `credentials`; a wrong login waits at
    /// least `failure_delay`.
    pub(crate) fn new(credentials: Credentials, failure_delay: Duration, root: &WebRoot) -> Gate {
        let rng = ring::rand::SystemRandom::new();
        let cache_key = hmac::Key::generate(hmac::HMAC_SHA256, &rng)
            .expect("the system's random number generator works");
        Gate {
            inner: Arc::new(GateInner {
                credentials,
                failure_delay,
                verifiers: Arc::new(Semaphore::new(VERIFIERS)),
                cache_key,
                verified: Mutex::new(HashMap::new()),
                groups: Mutex::new(Groups {
                    tracked: HashMap::new(),
                    overflow: Group::default(),
                }),
                open_paths: OPEN_PATHS.iter().map(|path| root.join(path)).collect(),
            }),
        }
    }

    /// Whether `authorization` (the header's bytes) was verified within
    /// [`CACHE_FOR`].
    fn recently_verified(&self, tag: &[u8], now: Instant) -> bool {
        let verified = self
            .inner
            .verified
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        verified.get(tag).is_some_and(|until| *until > now)
    }

    fn remember_verified(&self, tag: Vec<u8>, now: Instant) {
        let mut verified = self
            .inner
            .verified
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if verified.len() >= MAX_CACHED {
            verified.retain(|_, until| *until > now);
            if verified.len() >= MAX_CACHED {
                // Only right logins get here; forgetting them costs one more
                // hash each.
                verified.clear();
            }
        }
        verified.insert(tag, now + CACHE_FOR);
    }

    fn groups(&self) -> std::sync::MutexGuard<'_, Groups> {
        self.inner
            .groups
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Where a login from `ip` counts, and its group's turn, or instead how
    /// much of the group's penalty is left.
    fn enter(&self, ip: Option<IpAddr>, now: Instant) -> (Origin, Result<Turn, Duration>) {
        let mut groups = self.groups();
        let origin = groups.origin(ip, now);
        let group = groups.get(origin);
        let turn = match group.penalty_left(now) {
            Some(left) => Err(left),
            None => Ok(Arc::clone(&group.turn)),
        };
        (origin, turn)
    }

    /// How much of `origin`'s penalty is left at `now`, if any.
    fn penalty_left(&self, origin: Origin, now: Instant) -> Option<Duration> {
        self.groups().get(origin).penalty_left(now)
    }

    /// Counts a wrong login from `origin` and penalises the group: the
    /// configured delay, doubled with each further failure not yet forgotten,
    /// up to [`MAX_FAILURE_DELAY`]. Returns the delay.
    fn failed_from(&self, origin: Origin, now: Instant) -> Duration {
        let mut groups = self.groups();
        let group = groups.get(origin);
        group.count = group.count_at(now).saturating_add(1);
        group.last_failure = Some(now);
        let delay = failure_delay(self.inner.failure_delay, group.count);
        group.penalised_until = Some(now + delay);
        delay
    }

    /// Checks the login with the authorization header `tag`ged so, one at a
    /// time per origin and at most [`VERIFIERS`] at once, waiting at most
    /// [`CHECK_WAIT`] for both.
    async fn check(
        &self,
        ip: Option<IpAddr>,
        tag: Vec<u8>,
        user: String,
        password: String,
    ) -> (Origin, Verdict) {
        let (origin, turn) = self.enter(ip, Instant::now());
        let turn = match turn {
            Ok(turn) => turn,
            Err(left) => return (origin, Verdict::Penalised(left)),
        };
        let deadline = tokio::time::Instant::now() + CHECK_WAIT;
        let Ok(turn) = tokio::time::timeout_at(deadline, turn.lock_owned()).await else {
            return (origin, Verdict::Busy);
        };
        // While this waited, the group may have got in with the same header,
        // or failed.
        let now = Instant::now();
        if self.recently_verified(&tag, now) {
            return (origin, Verdict::Right);
        }
        if let Some(left) = self.penalty_left(origin, now) {
            return (origin, Verdict::Penalised(left));
        }
        let verifier = Arc::clone(&self.inner.verifiers).acquire_owned();
        let Ok(Ok(verifier)) = tokio::time::timeout_at(deadline, verifier).await else {
            return (origin, Verdict::Busy);
        };
        let gate = self.clone();
        // The turn and the verifier go with the check, and the failure is
        // counted there: a client that hangs up frees neither early, nor
        // escapes its penalty.
        let checked = tokio::task::spawn_blocking(move || {
            let _held = (turn, verifier);
            if gate.inner.credentials.verify(&user, &password) {
                gate.remember_verified(tag, Instant::now());
                Verdict::Right
            } else {
                Verdict::Wrong(gate.failed_from(origin, Instant::now()))
            }
        })
        .await;
        // A check that panicked is a wrong login.
        let verdict =
            checked.unwrap_or_else(|_| Verdict::Wrong(self.failed_from(origin, Instant::now())));
        (origin, verdict)
    }
}

/// The delay after the `count`th failure counted for one origin.
fn failure_delay(base: Duration, count: u32) -> Duration {
    let doublings = count.saturating_sub(1).min(16);
    base.saturating_mul(1 << doublings)
        .min(base.max(MAX_FAILURE_DELAY))
}

/// The user name and password of a `Basic` authorization header, if it is one.
fn basic_credentials(value: &HeaderValue) -> Option<(String, String)> {
    let text = value.to_str().ok()?;
    let (scheme, encoded) = text.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// `router` behind the login [`crate::WebConfig::login`] asks for, if any.
pub(crate) fn require_login_on(router: Router<AppState>, config: &WebConfig) -> Router<AppState> {
    match &config.login {
        Some(credentials) => router.layer(axum::middleware::from_fn_with_state(
            Gate::new(
                credentials.clone(),
                config.login_failure_delay,
                &config.web_root,
            ),
            require_login,
        )),
        None => router,
    }
}

/// Lets a request through when it carries a right login (or asks for one of
/// the [`OPEN_PATHS`] under the web root); answers 401 with the Basic challenge otherwise.
pub(crate) async fn require_login(
    State(gate): State<Gate>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    if gate.inner.open_paths.iter().any(|open| open == path) {
        return next.run(request).await;
    }
    let Some(authorization) = request.headers().get(header::AUTHORIZATION) else {
        return challenge("this page needs a login");
    };
    let tag = hmac::sign(&gate.inner.cache_key, authorization.as_bytes());
    let now = Instant::now();
    if gate.recently_verified(tag.as_ref(), now) {
        return next.run(request).await;
    }
    let Some((user, password)) = basic_credentials(authorization) else {
        return challenge("the login must be HTTP Basic: user name and password");
    };
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let (origin, verdict) = gate
        .check(peer, tag.as_ref().to_vec(), user.clone(), password)
        .await;
    let delay = match verdict {
        Verdict::Right => return next.run(request).await,
        Verdict::Penalised(left) => return too_many_failures(left),
        Verdict::Busy => return busy(),
        Verdict::Wrong(delay) => delay,
    };
    // One key per origin: a client rotating user names gets no more lines.
    static FAILED: RepeatedLog = RepeatedLog::new(REPEAT_INTERVAL);
    let from = peer.map_or_else(|| "an unknown address".to_string(), |ip| ip.to_string());
    // The name is the client's to choose: bounded in the log.
    let user: String = user.chars().take(MAX_LOGGED_NAME).collect();
    let repeat = FAILED.occurrence(&origin.to_string());
    if repeat.should_log() {
        tracing::warn!("failed web login for user {user:?} from {from}{repeat}");
    }
    // The penalty ends as this answer goes out: a client that waits for it
    // may try again at once.
    tokio::time::sleep(delay).await;
    challenge("wrong user name or password")
}

/// 429 for a login from a penalised group, with when to try again.
fn too_many_failures(left: Duration) -> Response {
    let seconds = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        format!("too many wrong logins from this address; try again in {seconds} s\n"),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

/// 503 for a login that could not be checked in time.
fn busy() -> Response {
    let seconds = RETRY_BUSY_AFTER.as_secs();
    let mut response = (
        StatusCode::SERVICE_UNAVAILABLE,
        format!("too many logins are being checked; try again in {seconds} s\n"),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

/// 401 with the Basic challenge, so browsers ask for a login.
fn challenge(why: &str) -> Response {
    let mut response = (StatusCode::UNAUTHORIZED, format!("{why}\n")).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(CHALLENGE),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_doubles_up_to_a_cap() {
        let second = Duration::from_secs(1);
        let delays: Vec<u64> = (1..=8)
            .map(|n| failure_delay(second, n).as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(failure_delay(Duration::ZERO, 9), Duration::ZERO);
        // A configured delay longer than the cap stays as it is.
        let minute = Duration::from_secs(60);
        assert_eq!(failure_delay(minute, 5), minute);
        assert_eq!(failure_delay(second, u32::MAX).as_secs(), 30);
    }

    fn gate(delay: Duration) -> Gate {
        Gate::new(
            Credentials::parse("u:p\n").unwrap(),
            delay,
            &WebRoot::default(),
        )
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn addresses_are_grouped_as_the_connection_limit_groups_them() {
        let origin = |text: &str| origin_of(text.parse().unwrap()).to_string();
        assert_eq!(origin("192.0.2.1"), "192.0.2.1");
        assert_eq!(origin("::ffff:192.0.2.1"), "192.0.2.1");
        // Loopback counts too: behind a proxy, it is every client.
        assert_eq!(origin("127.0.0.1"), "127.0.0.1");
        assert_eq!(origin("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(origin("2001:db8:1:2:bbbb::9"), "2001:db8:1:2::/64");
        assert_eq!(origin("2001:db8:1:3::1"), "2001:db8:1:3::/64");
    }

    #[test]
    fn a_failure_penalises_its_group_alone_and_grows() {
        let gate = gate(Duration::from_secs(1));
        let now = Instant::now();
        let second = |n| Duration::from_secs(n);
        let (a, _) = gate.enter(ip("2001:db8::1"), now);
        assert_eq!(gate.failed_from(a, now), second(1));
        // Another address in the same /64 is under the same penalty.
        let (same, turn) = gate.enter(ip("2001:db8::2"), now);
        assert_eq!(same, a);
        assert_eq!(turn.err(), Some(second(1)));
        // Another /64 is not.
        let (b, turn) = gate.enter(ip("2001:db8:0:1::1"), now);
        assert_ne!(b, a);
        assert!(turn.is_ok());
        // The penalty ends with the delay; the next failure doubles it.
        assert_eq!(gate.penalty_left(a, now + second(1)), None);
        assert_eq!(gate.failed_from(a, now + second(1)), second(2));
        assert_eq!(gate.failed_from(a, now + second(3)), second(4));
        assert_eq!(
            gate.penalty_left(a, now + second(4)),
            Some(second(3)),
            "penalised until 7 s"
        );
    }

    #[test]
    fn failures_are_forgotten_one_a_minute_not_cleared_by_a_right_login() {
        let gate = gate(Duration::from_secs(1));
        let now = Instant::now();
        let (a, _) = gate.enter(ip("192.0.2.1"), now);
        for _ in 0..3 {
            gate.failed_from(a, now);
        }
        // Three counted; a minute later two, so the next is the third again.
        let later = now + FORGET_ONE_AFTER;
        assert_eq!(gate.failed_from(a, later), Duration::from_secs(4));
        // Ten minutes later, none.
        let much_later = later + 10 * FORGET_ONE_AFTER;
        assert_eq!(gate.failed_from(a, much_later), Duration::from_secs(1));
    }

    #[test]
    fn beyond_the_tracked_groups_new_addresses_share_one_count() {
        let gate = gate(Duration::from_secs(1));
        let now = Instant::now();
        for n in 0..MAX_TRACKED as u32 {
            let (origin, _) = gate.enter(Some(IpAddr::from((0x0a00_0000 + n).to_be_bytes())), now);
            assert!(matches!(origin, Origin::Group(_)));
            gate.failed_from(origin, now);
        }
        // A new address does not get a fresh count for free.
        let (origin, turn) = gate.enter(ip("192.0.2.1"), now);
        assert_eq!(origin, Origin::Overflow);
        assert!(turn.is_ok());
        gate.failed_from(Origin::Overflow, now);
        let (origin, turn) = gate.enter(ip("192.0.2.2"), now);
        assert_eq!(origin, Origin::Overflow);
        assert_eq!(turn.err(), Some(Duration::from_secs(1)), "penalised");
        // Once the counted groups have gone quiet, there is room again.
        let quiet = now + 2 * FORGET_ONE_AFTER;
        let (origin, _) = gate.enter(ip("192.0.2.3"), quiet);
        assert_eq!(origin, origin_of("192.0.2.3".parse().unwrap()));
        assert!(gate.groups().tracked.len() <= MAX_TRACKED);
    }

    #[tokio::test]
    async fn a_penalised_group_is_not_checked_even_with_the_right_password() {
        let gate = gate(Duration::from_secs(3600));
        let tag = |text: &str| text.as_bytes().to_vec();
        let right = |gate: &Gate, from: &str, header: &str| {
            let gate = gate.clone();
            let from = ip(from);
            let header = tag(header);
            async move { gate.check(from, header, "u".into(), "p".into()).await.1 }
        };
        let (origin, verdict) = gate
            .check(ip("192.0.2.1"), tag("wrong"), "u".into(), "x".into())
            .await;
        assert!(matches!(verdict, Verdict::Wrong(d) if d == Duration::from_secs(3600)));
        assert_eq!(origin, origin_of("192.0.2.1".parse().unwrap()));
        assert!(matches!(
            right(&gate, "192.0.2.1", "right").await,
            Verdict::Penalised(_)
        ));
        // Another address gets in.
        assert!(matches!(
            right(&gate, "192.0.2.2", "right").await,
            Verdict::Right
        ));

        // A login waiting for its group's turn while the check ahead of it
        // fails is not checked either (a header not verified before: one that
        // was is let in from the cache, penalty or not).
        let (origin, turn) = gate.enter(ip("192.0.2.3"), Instant::now());
        let held = turn.unwrap().lock_owned().await;
        let waiting = tokio::spawn(right(&gate, "192.0.2.3", "right, another header"));
        tokio::task::yield_now().await;
        gate.failed_from(origin, Instant::now());
        drop(held);
        assert!(matches!(waiting.await.unwrap(), Verdict::Penalised(_)));
    }

    /// A login that cannot have its group's turn or a verifier within
    /// [`CHECK_WAIT`] is answered 503, not queued for ever.
    #[tokio::test]
    async fn a_login_waits_for_its_turn_and_a_verifier_within_a_deadline() {
        tokio::time::pause();
        let gate = gate(Duration::from_secs(1));
        let check = |from: &str| gate.check(ip(from), b"header".to_vec(), "u".into(), "p".into());
        // Its group's turn is taken (by a check that does not end).
        let (_, turn) = gate.enter(ip("192.0.2.1"), Instant::now());
        let _held = turn.unwrap().lock_owned().await;
        assert!(matches!(check("192.0.2.1").await.1, Verdict::Busy));
        // Every verifier is taken.
        let _verifiers = Arc::clone(&gate.inner.verifiers)
            .acquire_many_owned(VERIFIERS as u32)
            .await
            .unwrap();
        assert!(matches!(check("192.0.2.2").await.1, Verdict::Busy));

        let answer = busy();
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(answer.headers()[header::RETRY_AFTER], "5");
        let answer = too_many_failures(Duration::from_millis(2100));
        assert_eq!(answer.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(answer.headers()[header::RETRY_AFTER], "3", "rounded up");
    }

    #[tokio::test]
    async fn the_right_login_gets_in_once_the_penalty_is_over() {
        let delay = Duration::from_millis(20);
        let gate = gate(delay);
        let from = ip("192.0.2.1");
        let (_, verdict) = gate
            .check(from, b"wrong".to_vec(), "u".into(), "x".into())
            .await;
        assert!(matches!(verdict, Verdict::Wrong(d) if d == delay));
        // As the 401 would: wait the delay out.
        tokio::time::sleep(delay).await;
        let (_, verdict) = gate
            .check(from, b"right".to_vec(), "u".into(), "p".into())
            .await;
        assert!(matches!(verdict, Verdict::Right));
    }

    #[test]
    fn basic_headers() {
        let header = |text: &'static str| HeaderValue::from_static(text);
        // "alice:pa:ss wörd" in UTF-8.
        let encoded = format!("Basic {}", STANDARD.encode("alice:pa:ss wörd"));
        assert_eq!(
            basic_credentials(&HeaderValue::from_str(&encoded).unwrap()),
            Some(("alice".into(), "pa:ss wörd".into()))
        );
        assert_eq!(
            basic_credentials(&header("basic   YTpi")),
            Some(("a".into(), "b".into()))
        );
        for bad in ["Bearer YTpi", "Basic", "Basic !!!", "Basic YWI=", "YTpi"] {
            assert_eq!(basic_credentials(&header(bad)), None, "{bad}");
        }
    }
}
