//! The webhook: every message that arrives is POSTed, as the JSON summary the
//! message list shows (Mailpit's `MessageSummary`; a missing From is an empty
//! object, as Mailpit sends it), to one URL
//! (`--webhook-url`), at most [`WebhookConfig::per_second`] a second
//! (`--webhook-limit`).
//!
//! ```text
//! Store::subscribe() ──New──▶ dispatcher ──rate limit──▶ queue (QUEUE) ──▶ SENDERS tasks ──POST──▶ receiver
//!                                  │ over the limit: skipped    │ full: dropped
//! ```
//!
//! Nothing here can hold up a delivery: the store announces a message after
//! its commit, the dispatcher never waits (a full queue drops the message
//! instead), and each POST, from connect to the answer's status line, has
//! [`REQUEST_TIMEOUT`]. So a receiver that never answers costs at most
//! [`SENDERS`] connections and [`QUEUE`] summaries in memory. Skips, drops and
//! failures are counted ([`Webhook::counts`]) and logged, at most one line per
//! kind every 10 seconds with the count.
//!
//! The limit follows Mailpit: a message over it is skipped, not delayed, so a
//! burst of arrivals gives the first N posts and the rest are skipped; 0
//! means no limit. The URL may carry `user:password@` for Basic auth; it is
//! sent in the `Authorization` header and never shown or logged.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode, Uri, header};
use base64::Engine;
use hyper_util::rt::TokioIo;
use sokkel_net::repeated::{REPEAT_INTERVAL, RepeatedLog};
use sokkel_store::{Store, StoreEvent, Summary};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, broadcast, mpsc};

use crate::json::MessageSummaryJson;

/// How many messages may wait for a sender; more are dropped.
pub const QUEUE: usize = 128;

/// How many POSTs are in flight at once.
pub const SENDERS: usize = 4;

/// How long one POST may take, from connecting to the receiver's status line
/// (Mailpit's 5 seconds).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The default of `--webhook-limit`: Mailpit's, one post a second.
pub const DEFAULT_PER_SECOND: u32 = 1;

/// Where the webhook posts: an `http` or `https` URL, with optional
/// `user:password@` for Basic auth. [`fmt::Display`] and [`fmt::Debug`] leave
/// the credentials out.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    https: bool,
    /// The host name or IP address, without IPv6 brackets.
    host: String,
    port: u16,
    /// The `Host` header: the host as written, with the port unless it is the
    /// scheme's default.
    authority: String,
    /// Path and query, at least `/`.
    target: String,
    /// `Basic ...`, when the URL carries credentials.
    authorization: Option<String>,
}

/// Why a `--webhook-url` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookUrlError {
    /// It does not parse as an absolute URL.
    #[error("not a URL like http://127.0.0.1:8080/hook: {0}")]
    NotUrl(String),
    /// The scheme is not `http` or `https`.
    #[error("the webhook URL must start with http:// or https://")]
    Scheme,
    /// There is no host.
    #[error("the webhook URL has no host")]
    NoHost,
}

impl FromStr for WebhookUrl {
    type Err = WebhookUrlError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let uri: Uri = text
            .trim()
            .parse()
            .map_err(|error: axum::http::uri::InvalidUri| {
                WebhookUrlError::NotUrl(error.to_string())
            })?;
        let https = match uri.scheme_str() {
            Some(scheme) if scheme.eq_ignore_ascii_case("http") => false,
            Some(scheme) if scheme.eq_ignore_ascii_case("https") => true,
            _ => return Err(WebhookUrlError::Scheme),
        };
        let authority = uri.authority().ok_or(WebhookUrlError::NoHost)?;
        let (credentials, host_port) = match authority.as_str().rsplit_once('@') {
            Some((credentials, host_port)) => (Some(credentials), host_port),
            None => (None, authority.as_str()),
        };
        let host = authority.host();
        if host.is_empty() {
            return Err(WebhookUrlError::NoHost);
        }
        let default_port = if https { 443 } else { 80 };
        let port = authority.port_u16().unwrap_or(default_port);
        let authorization = credentials.map(|credentials| {
            let (user, password) = credentials.split_once(':').unwrap_or((credentials, ""));
            let pair = format!("{}:{}", percent_decode(user), percent_decode(password));
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        });
        let authority = if port == default_port {
            host.to_string()
        } else {
            host_port.to_string()
        };
        Ok(WebhookUrl {
            https,
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port,
            authority,
            target: uri
                .path_and_query()
                .map_or("/".to_string(), |target| target.as_str().to_string()),
            authorization,
        })
    }
}

/// `%40` → `@` in the user and password of a URL; other bytes as they are.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(&high), Some(&low)) = (bytes.get(i + 1), bytes.get(i + 2))
            && let (Some(high), Some(low)) = (hex(high), hex(low))
        {
            out.push((high * 16 + low) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Shows the scheme and the receiver, and of the path only that there is
/// one: many receivers (Slack, Teams, Zapier) carry their secret in the path
/// or the query, and this is what the log shows.
impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        let path = if self.target == "/" { "/" } else { "/…" };
        write!(f, "{scheme}://{}{path}", self.authority)
    }
}

impl fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookUrl({self}")?;
        if self.authorization.is_some() {
            f.write_str(", with credentials")?;
        }
        f.write_str(")")
    }
}

/// How the webhook behaves.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Where to post.
    pub url: WebhookUrl,
    /// At most this many posts a second; 0 for no limit. Default
    /// [`DEFAULT_PER_SECOND`].
    pub per_second: u32,
    /// Sent as `User-Agent: sokkel/VERSION`.
    pub version: String,
}

/// Why the webhook could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// An `https` URL, but the system has no trusted certificates.
    #[error(
        "no trusted CA certificates found for the https webhook (install ca-certificates, or set SSL_CERT_FILE)"
    )]
    NoRoots,
    /// The TLS setup failed.
    #[error("cannot set up TLS for the webhook: {0}")]
    Tls(String),
}

/// What the webhook has done since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookCounts {
    /// Posts the receiver answered with a 2xx status.
    pub sent: u64,
    /// Posts that failed: no connection, a timeout, or a status other than 2xx.
    pub failed: u64,
    /// Messages not posted because they came over the limit.
    pub skipped: u64,
    /// Messages not posted because the queue was full (the receiver is too
    /// slow) or the webhook fell behind the store's announcements.
    pub dropped: u64,
}

#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    failed: AtomicU64,
    skipped: AtomicU64,
    dropped: AtomicU64,
}

/// The running webhook: a cheap handle to its counts. Its tasks run until the
/// store closes or the runtime stops.
#[derive(Debug, Clone)]
pub struct Webhook {
    counters: Arc<Counters>,
}

impl Webhook {
    /// Starts posting every message `store` announces from now on. Must be
    /// called inside a tokio runtime.
    pub fn spawn(store: &Store, config: WebhookConfig) -> Result<Webhook, WebhookError> {
        let tls = if config.url.https {
            Some(tls_connector()?)
        } else {
            None
        };
        let counters = Arc::new(Counters::default());
        let (queue, waiting) = mpsc::channel(QUEUE);
        let waiting = Arc::new(Mutex::new(waiting));
        let poster = Arc::new(Poster {
            url: config.url,
            user_agent: format!("sokkel/{}", config.version),
            tls,
        });
        for _ in 0..SENDERS {
            tokio::spawn(send_loop(
                Arc::clone(&waiting),
                Arc::clone(&poster),
                Arc::clone(&counters),
            ));
        }
        tokio::spawn(dispatch(
            store.subscribe(),
            RateLimit::new(config.per_second),
            queue,
            Arc::clone(&counters),
        ));
        Ok(Webhook { counters })
    }

    /// What the webhook has done so far.
    pub fn counts(&self) -> WebhookCounts {
        WebhookCounts {
            sent: self.counters.sent.load(Ordering::Relaxed),
            failed: self.counters.failed.load(Ordering::Relaxed),
            skipped: self.counters.skipped.load(Ordering::Relaxed),
            dropped: self.counters.dropped.load(Ordering::Relaxed),
        }
    }
}

/// At most `per_second` events in any one-second window; the time is passed in.
#[derive(Debug, Clone)]
pub struct RateLimit {
    per_second: u32,
    /// When the last `per_second` allowed events happened, oldest first.
    recent: VecDeque<Instant>,
}

impl RateLimit {
    /// A limit of `per_second` (0: no limit).
    pub fn new(per_second: u32) -> RateLimit {
        RateLimit {
            per_second,
            recent: VecDeque::new(),
        }
    }

    /// Whether an event at `now` is within the limit; counts it if it is.
    pub fn allow(&mut self, now: Instant) -> bool {
        if self.per_second == 0 {
            return true;
        }
        let window = Duration::from_secs(1);
        while self
            .recent
            .front()
            .is_some_and(|&at| now.saturating_duration_since(at) >= window)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.per_second as usize {
            return false;
        }
        self.recent.push_back(now);
        true
    }
}

static SKIPPED_LOG: RepeatedLog = RepeatedLog::new(REPEAT_INTERVAL);
static DROPPED_LOG: RepeatedLog = RepeatedLog::new(REPEAT_INTERVAL);
static FAILED_LOG: RepeatedLog = RepeatedLog::new(REPEAT_INTERVAL);

/// Takes each new message from the store's announcements to the queue, never
/// waiting on the receiver.
async fn dispatch(
    mut events: broadcast::Receiver<StoreEvent>,
    mut limit: RateLimit,
    queue: mpsc::Sender<Arc<Summary>>,
    counters: Arc<Counters>,
) {
    loop {
        match events.recv().await {
            Ok(StoreEvent::New(summary)) => {
                if !limit.allow(Instant::now()) {
                    counters.skipped.fetch_add(1, Ordering::Relaxed);
                    let repeat = SKIPPED_LOG.occurrence("skipped");
                    if repeat.should_log() {
                        tracing::info!(
                            "webhook: message {} not posted, over --webhook-limit {} per second{repeat}",
                            summary.id,
                            limit.per_second
                        );
                    }
                    continue;
                }
                match queue.try_send(summary) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(summary)) => {
                        counters.dropped.fetch_add(1, Ordering::Relaxed);
                        let repeat = DROPPED_LOG.occurrence("full");
                        if repeat.should_log() {
                            tracing::warn!(
                                "webhook: message {} dropped, {QUEUE} posts are waiting for a slow receiver{repeat}",
                                summary.id
                            );
                        }
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                }
            }
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                counters.dropped.fetch_add(missed, Ordering::Relaxed);
                tracing::warn!("webhook: {missed} messages dropped, the webhook fell behind");
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// One of the [`SENDERS`]: posts queued summaries one at a time.
async fn send_loop(
    waiting: Arc<Mutex<mpsc::Receiver<Arc<Summary>>>>,
    poster: Arc<Poster>,
    counters: Arc<Counters>,
) {
    loop {
        let Some(summary) = waiting.lock().await.recv().await else {
            return;
        };
        let body = match payload(&summary) {
            Ok(body) => body,
            Err(error) => {
                tracing::error!(%error, "webhook: cannot write message {} as JSON", summary.id);
                continue;
            }
        };
        let outcome = match tokio::time::timeout(REQUEST_TIMEOUT, poster.post(body)).await {
            Ok(Ok(status)) if status.is_success() => Ok(()),
            Ok(Ok(status)) => Err(format!("answered {status}")),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(format!(
                "did not answer within {} s",
                REQUEST_TIMEOUT.as_secs()
            )),
        };
        match outcome {
            Ok(()) => {
                counters.sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                let repeat = FAILED_LOG.occurrence(&error);
                if repeat.should_log() {
                    tracing::warn!(
                        "webhook: posting message {} to {} failed: the receiver {error}{repeat}",
                        summary.id,
                        poster.url
                    );
                }
            }
        }
    }
}

/// The JSON posted for a message: its list row, except that a message without
/// a From header has an empty From object rather than `null`, as Mailpit posts it.
fn payload(summary: &Summary) -> Result<Vec<u8>, serde_json::Error> {
    let mut row = serde_json::to_value(MessageSummaryJson::from(summary))?;
    if row["From"].is_null() {
        row["From"] = serde_json::json!({"Name": "", "Address": ""});
    }
    serde_json::to_vec(&row)
}

/// Makes one POST to the webhook URL.
struct Poster {
    url: WebhookUrl,
    user_agent: String,
    tls: Option<tokio_rustls::TlsConnector>,
}

impl Poster {
    /// POSTs `body` on a connection of its own and returns the status; an
    /// error is a sentence that follows "the receiver".
    async fn post(&self, body: Vec<u8>) -> Result<StatusCode, String> {
        let url = &self.url;
        let tcp = TcpStream::connect((url.host.as_str(), url.port))
            .await
            .map_err(|error| format!("cannot be reached: {error}"))?;
        let _ = tcp.set_nodelay(true);
        let mut request = Request::post(url.target.as_str())
            .header(header::HOST, url.authority.as_str())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::USER_AGENT, self.user_agent.as_str())
            .header(header::CONNECTION, "close");
        if let Some(authorization) = &url.authorization {
            request = request.header(header::AUTHORIZATION, authorization.as_str());
        }
        let request = request
            .body(Body::from(body))
            .map_err(|error| format!("cannot be asked: {error}"))?;
        match &self.tls {
            None => exchange(tcp, request).await,
            Some(connector) => {
                let name = rustls::pki_types::ServerName::try_from(url.host.clone())
                    .map_err(|error| format!("has no valid TLS name: {error}"))?;
                let tls = connector
                    .connect(name, tcp)
                    .await
                    .map_err(|error| format!("failed the TLS handshake: {error}"))?;
                exchange(tls, request).await
            }
        }
    }
}

/// One HTTP/1.1 request on `io`, driven within the caller's future so that
/// dropping it (the timeout) closes the connection.
async fn exchange<S>(io: S, request: Request<Body>) -> Result<StatusCode, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|error| format!("failed HTTP: {error}"))?;
    let response = sender.send_request(request);
    tokio::pin!(connection, response);
    let answered = tokio::select! {
        answered = &mut response => answered,
        ended = &mut connection => {
            ended.map_err(|error| format!("failed HTTP: {error}"))?;
            response.await
        }
    };
    answered
        .map(|answer| answer.status())
        .map_err(|error| format!("failed HTTP: {error}"))
}

/// The system's trusted CAs (`SSL_CERT_FILE` and `SSL_CERT_DIR` are honoured).
pub(crate) fn tls_connector() -> Result<tokio_rustls::TlsConnector, WebhookError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return Err(WebhookError::NoRoots);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| WebhookError::Tls(error.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_never_show_credentials() {
        let url: WebhookUrl = "https://hook%40me:s3cr%3At@example.com/in?x=1"
            .parse()
            .unwrap();
        assert!(url.https);
        assert_eq!((url.host.as_str(), url.port), ("example.com", 443));
        assert_eq!(url.authority, "example.com");
        assert_eq!(url.target, "/in?x=1");
        let expected = base64::engine::general_purpose::STANDARD.encode("hook@me:s3cr:t");
        assert_eq!(url.authorization, Some(format!("Basic {expected}")));
        assert_eq!(url.to_string(), "https://example.com/…");
        assert!(!format!("{url:?}").contains("s3cr"));

        let url: WebhookUrl = "http://[::1]:8080".parse().unwrap();
        assert_eq!((url.host.as_str(), url.port), ("::1", 8080));
        assert_eq!(url.authority, "[::1]:8080");
        assert_eq!(url.target, "/");
        assert_eq!(url.authorization, None);

        for bad in [
            "ftp://x/",
            "127.0.0.1:80/x",
            "http://",
            "not a url",
            "/path",
        ] {
            assert!(bad.parse::<WebhookUrl>().is_err(), "{bad}");
        }
    }

    #[test]
    fn payload_is_the_list_row_with_from_never_null() {
        let summary = Summary {
            id: sokkel_store::MessageId(7),
            received_at: std::time::SystemTime::UNIX_EPOCH,
            mail_from: String::new(),
            rcpt_to: vec!["a@example.com".into()],
            from: None,
            to: Vec::new(),
            to_count: 0,
            cc: Vec::new(),
            cc_count: 0,
            reply_to: Vec::new(),
            reply_to_count: 0,
            bcc: Vec::new(),
            bcc_count: 0,
            subject: "no sender".into(),
            date: None,
            message_id: None,
            size: 10,
            attachments: 0,
            snippet: String::new(),
            read: false,
            flagged: false,
            tags: vec!["t".into()],
            bare_lf: false,
            parsed: true,
        };
        let row: serde_json::Value = serde_json::from_slice(&payload(&summary).unwrap()).unwrap();
        assert_eq!(row["ID"], "7");
        assert_eq!(row["From"], serde_json::json!({"Name": "", "Address": ""}));
        assert_eq!(row["Subject"], "no sender");
        assert_eq!(row["Tags"], serde_json::json!(["t"]));
        assert_eq!(row["Bcc"], serde_json::json!([]));
    }

    #[test]
    fn rate_limit_lets_n_through_in_any_second() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut limit = RateLimit::new(2);
        let allowed: Vec<bool> = [0, 100, 200, 999, 1000, 1050, 1100, 2100]
            .into_iter()
            .map(|ms| limit.allow(at(ms)))
            .collect();
        assert_eq!(allowed, [true, true, false, false, true, false, true, true]);
        let mut none = RateLimit::new(0);
        assert!((0..10_000).all(|_| none.allow(start)));
    }
}
