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
//!            Credentials::verify on the blocking pool, at most VERIFIERS at once
//!              ├─ right ─▶ remembered for CACHE_FOR ─▶ handler
//!              └─ wrong ─▶ logged (user name and address, never the password)
//!                          ─▶ this address's delay ─▶ 401
//! ```
//!
//! bcrypt and Argon2 are slow on purpose, so a page's burst of requests would
//! cost one hash each without the cache, and a flood of guesses would take every
//! core without the cap on verifiers. The delay after a failure grows with the
//! failures from the same address and does not touch other clients.

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

/// How long an address's failures count after its last one.
const FAILURES_KEPT: Duration = Duration::from_secs(15 * 60);

/// The most client addresses whose failures are counted at once.
const MAX_TRACKED: usize = 4096;

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
    failures: Mutex<HashMap<IpAddr, Failures>>,
    /// [`OPEN_PATHS`] under the web root.
    open_paths: Vec<String>,
}

/// Wrong logins from one address.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
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
                failures: Mutex::new(HashMap::new()),
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

    /// Counts a wrong login from `ip` and says how long its answer waits: the
    /// configured delay, doubled with each further failure from the same address
    /// up to [`MAX_FAILURE_DELAY`].
    fn failed_from(&self, ip: Option<IpAddr>, now: Instant) -> Duration {
        let base = self.inner.failure_delay;
        let Some(ip) = ip else {
            return base;
        };
        let mut failures = self
            .inner
            .failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let fresh = |f: &Failures| now.duration_since(f.last) < FAILURES_KEPT;
        if failures.len() >= MAX_TRACKED && !failures.contains_key(&ip) {
            failures.retain(|_, f| fresh(f));
            if failures.len() >= MAX_TRACKED {
                return base;
            }
        }
        let entry = failures.entry(ip).or_insert(Failures {
            count: 0,
            last: now,
        });
        if !fresh(entry) {
            entry.count = 0;
        }
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
        failure_delay(base, entry.count)
    }

    /// A right login from `ip` clears its failures.
    fn succeeded_from(&self, ip: Option<IpAddr>) {
        if let Some(ip) = ip {
            let mut failures = self
                .inner
                .failures
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            failures.remove(&ip);
        }
    }

    /// Checks `user` and `password` on the blocking pool, at most
    /// [`VERIFIERS`] at once. A check that panicked is a wrong login.
    async fn verify(&self, user: String, password: String) -> bool {
        let Ok(turn) = Arc::clone(&self.inner.verifiers).acquire_owned().await else {
            return false;
        };
        let credentials = self.inner.credentials.clone();
        // The turn goes with the check: a client that hangs up does not free
        // it while its hash still runs.
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            credentials.verify(&user, &password)
        })
        .await
        .unwrap_or(false)
    }
}

/// The delay after the `count`th failure in a row from one address.
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
        .map(|ConnectInfo(addr)| *addr);
    if gate.verify(user.clone(), password).await {
        gate.remember_verified(tag.as_ref().to_vec(), Instant::now());
        gate.succeeded_from(peer.map(|addr| addr.ip()));
        return next.run(request).await;
    }
    let delay = gate.failed_from(peer.map(|addr| addr.ip()), Instant::now());
    static FAILED: RepeatedLog = RepeatedLog::new(REPEAT_INTERVAL);
    let from = peer.map_or_else(|| "an unknown address".to_string(), |a| a.ip().to_string());
    // The name is the client's to choose: bounded in the log.
    let user: String = user.chars().take(MAX_LOGGED_NAME).collect();
    let repeat = FAILED.occurrence(&format!("{user}\0{from}"));
    if repeat.should_log() {
        tracing::warn!("failed web login for user {user:?} from {from}{repeat}");
    }
    tokio::time::sleep(delay).await;
    challenge("wrong user name or password")
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

    #[test]
    fn failures_count_per_address() {
        let gate = Gate::new(
            Credentials::parse("u:p\n").unwrap(),
            Duration::from_secs(1),
            &WebRoot::default(),
        );
        let now = Instant::now();
        let a = Some(IpAddr::from([192, 0, 2, 1]));
        let b = Some(IpAddr::from([192, 0, 2, 2]));
        assert_eq!(gate.failed_from(a, now).as_secs(), 1);
        assert_eq!(gate.failed_from(a, now).as_secs(), 2);
        assert_eq!(gate.failed_from(a, now).as_secs(), 4);
        assert_eq!(gate.failed_from(b, now).as_secs(), 1, "others unaffected");
        gate.succeeded_from(a);
        assert_eq!(
            gate.failed_from(a, now).as_secs(),
            1,
            "a right login clears"
        );
        let later = now + FAILURES_KEPT;
        assert_eq!(gate.failed_from(b, later).as_secs(), 1, "old failures fade");
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
