//! The catcher's web side: a Mailpit-compatible REST API under `/api/v1`, live
//! events over a WebSocket at `/api/events`, and a web page embedded in the binary.
//!
//! It sits on top of the store, next to SMTP:
//!
//! ```text
//! browser / test suite ──HTTP──▶ app(state): Router ──spawn_blocking──▶ Store queries
//!                                     │
//!   WebSocket /api/events ◀── hub ◀── Store::subscribe() (new, delete, flag changes)
//! ```
//!
//! - [`app`] builds the router; tests drive it without a socket through tower's
//!   `oneshot`. [`serve`] runs it on already-bound listeners with a cap on
//!   connections and a graceful stop.
//! - Releasing a message to a real server (`POST /api/v1/message/{ID}/release`)
//!   goes through a [`release::Release`] the binary hands over in [`WebConfig::release`]:
//!   web knows no SMTP.
//! - The JSON shapes, paths, parameters and plain-text errors follow Mailpit's
//!   `/api/v1`, so clients written for Mailpit (such as the npm package
//!   `mailpit-api`) work unchanged. IDs are the store's decimal ids as strings.
//! - Every store call blocks on SQLite, so handlers run them in `spawn_blocking`.
//! - `GET /livez` and `GET /readyz` are for load balancers ([`health`]): the
//!   second says whether the node can reach its store.
//! - `GET /metrics` is for Prometheus ([`metrics`]): counters the servers keep,
//!   and the store's message counts.
//! - `POST /api/v1/send` (Mailpit's send API) builds a message and hands it to
//!   the store's delivery, as SMTP does ([`SendLimits`]); [`webhook`] posts
//!   each new message's summary to a URL, fed by `Store::subscribe()`.
//! - Every path here is under [`WebConfig::web_root`]: `/` by default, `/mail/`
//!   behind a reverse proxy that forwards that path (`proxy`).
//! - With [`WebConfig::login`], every request but the health checks needs an
//!   HTTP Basic login ([`auth`]); [`ServeLimits::tls`] makes the listener speak
//!   HTTPS.
//! - Requests whose `Host` is not a loopback name (or one of
//!   [`WebConfig::allowed_hosts`]) are refused while sokkel listens
//!   on loopback only ([`HostPolicy`]): that stops DNS-rebinding pages from reading
//!   caught mail through a victim's browser. Requests that change something (any
//!   method but GET, HEAD, OPTIONS) with an `Origin` other than the server's own
//!   are refused with 403, so a foreign page cannot delete mail through the
//!   browser whatever content type it sends.
//! - Every answer is bounded (issue #11): list summaries carry at most 50
//!   addresses per field with their counts (`ToCount`, ...) and cut strings
//!   (`sokkel_store::SUMMARY_*`); the full message view at most
//!   [`MESSAGE_ADDRESSES`] per field and [`MESSAGE_BODY_BYTES`] of Text and of
//!   HTML; `/raw` streams the message a chunk at a time with backpressure;
//!   headers built from message content are capped ([`MAX_HEADER_FILE_NAME`]);
//!   at most [`MAX_PARSES`] messages are parsed for an answer at once, and at
//!   most [`WebConfig::max_buffered_bytes`] of answers built in memory wait for slow
//!   clients; and a WebSocket client more than [`CLIENT_BACKLOG_BYTES`] behind is
//!   dropped.
#![warn(missing_docs)]

mod api;
mod auth;
mod chaos;
mod error;
mod events;
#[doc(hidden)]
pub mod fuzzing;
mod guard;
mod health;
mod htmlcheck;
mod json;
pub mod linkcheck;
mod metrics;
mod openapi;
mod proxy;
pub mod release;
mod search;
mod send;
mod serve;
mod tags;
mod thumb;
mod ui;
pub mod webhook;
mod webui;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, get, on};
use sokkel_net::stats::SmtpCounters;
use sokkel_store::Store;
use tokio::sync::watch;

pub use api::{MAX_HEADER_CONTENT_TYPE, MAX_HEADER_FILE_NAME};
pub use error::{ApiError, WebError};
pub use events::CLIENT_BACKLOG_BYTES;
pub use json::{MESSAGE_ADDRESSES, MESSAGE_BODY_BYTES};
pub use metrics::MetricSources;
pub use proxy::{WebRoot, parse_allowed_host};
pub use send::{SEND_HELO, SendLimits};
pub use serve::{ServeLimits, serve, serve_with};

/// The largest request body accepted (JSON lists of IDs); more is answered 413.
/// `POST /api/v1/send` has its own limit, [`SendLimits::max_body_bytes`].
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// The most messages one list or search page returns; a larger `limit` is cut to it.
pub const MAX_PAGE: usize = 1000;

/// The most messages parsed at once to answer requests (the full message view,
/// `/headers`, parts and `/view`): parsing a 32 MiB message takes several times
/// its size in memory, so more requests wait their turn instead.
pub const MAX_PARSES: usize = 4;

/// The most `POST /api/v1/send` requests read and stored at once: each holds
/// its body (up to 4/3 of the largest message) and the message built from it.
/// More wait their turn.
pub const MAX_SENDS: usize = 4;

/// The default of [`WebConfig::max_buffered_bytes`]: the most bytes of answers
/// built in memory (list pages, the full message view, decoded parts,
/// `/headers`, `/view`) that may wait for their clients to read them, all
/// together; answers under 64 KiB are not counted. Past it a large answer is a
/// 503 to retry, so clients that stop reading cannot make the server hold more.
/// `/raw` is streamed and needs none of it.
pub const MAX_BUFFERED_BYTES: usize = 256 << 20;

/// Which `Host` headers the server answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPolicy {
    /// Only `localhost` (and names under `.localhost`), `127.0.0.1` and other
    /// loopback IPs, with any port, and requests without a `Host` header. The
    /// right choice whenever every listening address is a loopback address.
    Loopback,
    /// Any host: the user chose to listen on a non-loopback address.
    Any,
}

/// How the web side behaves.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// Which `Host` headers to answer.
    pub host_policy: HostPolicy,
    /// Host names [`HostPolicy::Loopback`] answers besides the loopback ones,
    /// with any port, as [`parse_allowed_host`] reads them: the public names a
    /// reverse proxy on this machine passes on.
    pub allowed_hosts: Vec<String>,
    /// The path the page, the API, the WebSocket and the health checks are
    /// served under; anything outside it is 404. Default `/`.
    pub web_root: WebRoot,
    /// The SMTP server's chaos triggers, for `GET`/`PUT /api/v1/chaos`; `None`
    /// (the default, chaos not enabled) answers them 400 as Mailpit does.
    pub chaos: Option<Arc<sokkel_net::chaos::Chaos>>,
    /// The version reported by `/api/v1/info` and in `stats` events.
    pub version: String,
    /// WebSocket clients at once; more are answered 503.
    pub max_websockets: usize,
    /// The most connections served at once by [`serve`]; more wait to be accepted.
    pub max_connections: usize,
    /// A connection that sends nothing for this long is closed, so idle or
    /// stalled clients cannot hold the connection slots forever. WebSocket clients
    /// stay: the server pings them at a third of this.
    pub idle_timeout: std::time::Duration,
    /// The most bytes of answers built in memory that may wait for slow clients
    /// at once; default [`MAX_BUFFERED_BYTES`].
    pub max_buffered_bytes: usize,
    /// The relay that `POST /api/v1/message/{ID}/release` sends through;
    /// `None` (the default) answers every release with a 400.
    pub release: Option<Arc<dyn release::Release>>,
    /// What the SMTP server running beside this one refused, for
    /// `/api/v1/info` (the binary hands the same counters to both); fresh
    /// zeros by default.
    pub smtp_counters: Arc<SmtpCounters>,
    /// What `POST /api/v1/send` accepts: SMTP's message size and recipient
    /// limits.
    pub send: SendLimits,
    /// The addresses the SMTP server beside this one listens on, as
    /// `host:port`, for the page to say where to send mail; empty if unknown.
    pub smtp_addresses: Vec<String>,
    /// How long the link check (`GET /api/v1/message/{ID}/link-check`) waits
    /// for one link, from its DNS look-up to its status line; default
    /// [`linkcheck::DEFAULT_TIMEOUT`].
    pub link_check_timeout: std::time::Duration,
    /// Whether the link check refuses links that resolve to loopback,
    /// private or link-local addresses (answering 451, as Mailpit does);
    /// default false, since a catcher's mail often links to the developer's
    /// own machine.
    pub link_check_block_private: bool,
    /// Who may use the page, the API and the WebSocket (HTTP Basic, see
    /// [`auth`]); `None` (the default) lets anyone in.
    pub login: Option<sokkel_net::auth::Credentials>,
    /// How long the answer to a wrong login waits, and no login from the same
    /// address (IPv6: /64) is checked; it doubles with each further failure from
    /// there, up to 30 s.
    pub login_failure_delay: std::time::Duration,
    /// What the POP3 and IMAP servers, the relay and the webhook count, for
    /// `GET /metrics`; fresh zeros by default.
    pub metrics: MetricSources,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            host_policy: HostPolicy::Loopback,
            allowed_hosts: Vec::new(),
            web_root: WebRoot::default(),
            chaos: None,
            version: env!("CARGO_PKG_VERSION").to_string(),
            max_websockets: 128,
            max_connections: 512,
            idle_timeout: std::time::Duration::from_secs(120),
            max_buffered_bytes: MAX_BUFFERED_BYTES,
            release: None,
            smtp_counters: Arc::default(),
            send: SendLimits::default(),
            smtp_addresses: Vec::new(),
            link_check_timeout: linkcheck::DEFAULT_TIMEOUT,
            link_check_block_private: false,
            login: None,
            login_failure_delay: std::time::Duration::from_secs(1),
            metrics: MetricSources::default(),
        }
    }
}

/// What every handler shares: the store, the configuration and the event hub.
/// A cheap `Clone` handle.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    config: WebConfig,
    started: Instant,
    hub: events::Hub,
    /// The page, with the web root filled in.
    page: ui::Page,
    websockets: Arc<tokio::sync::Semaphore>,
    parses: Arc<tokio::sync::Semaphore>,
    /// `POST /api/v1/send` requests reading their bodies and storing their
    /// messages (at most [`MAX_SENDS`] at once), apart from `parses` so that
    /// slow senders cannot hold up the message views.
    sends: Arc<tokio::sync::Semaphore>,
    /// [`WebConfig::max_buffered_bytes`] in units of 64 KiB.
    buffered: Arc<tokio::sync::Semaphore>,
    stop: watch::Sender<bool>,
}

impl AppState {
    /// State for a web server over `store`.
    pub fn new(store: Store, config: WebConfig) -> AppState {
        let websockets = Arc::new(tokio::sync::Semaphore::new(config.max_websockets));
        let buffered = Arc::new(tokio::sync::Semaphore::new(
            (config.max_buffered_bytes >> 16).max(1),
        ));
        AppState {
            inner: Arc::new(Inner {
                hub: events::Hub::new(store.clone(), config.version.clone()),
                page: ui::Page::new(&config.web_root),
                store,
                config,
                started: Instant::now(),
                websockets,
                parses: Arc::new(tokio::sync::Semaphore::new(MAX_PARSES)),
                sends: Arc::new(tokio::sync::Semaphore::new(MAX_SENDS)),
                buffered,
                stop: watch::channel(false).0,
            }),
        }
    }

    /// The store this state serves.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The configuration.
    pub fn config(&self) -> &WebConfig {
        &self.inner.config
    }

    /// Tells long-lived responses (WebSockets) to end, so a graceful stop does
    /// not wait for browsers to close their tabs.
    pub fn stop(&self) {
        self.inner.stop.send_replace(true);
    }

    fn stopped(&self) -> watch::Receiver<bool> {
        self.inner.stop.subscribe()
    }

    /// How many WebSocket clients were dropped since the server started for
    /// falling more than [`CLIENT_BACKLOG_BYTES`] behind (they stopped reading).
    pub fn websocket_drops(&self) -> u64 {
        self.inner.hub.dropped()
    }

    /// A turn to send a message through `POST /api/v1/send` (at most
    /// [`MAX_SENDS`] at once).
    async fn send_permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        Arc::clone(&self.inner.sends)
            .acquire_owned()
            .await
            .map_err(|_| ApiError::ShuttingDown)
    }

    /// A turn to parse a message for an answer (at most [`MAX_PARSES`] at once).
    async fn parse_permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        Arc::clone(&self.inner.parses)
            .acquire_owned()
            .await
            .map_err(|_| ApiError::ShuttingDown)
    }
}

/// The router with every route sokkel serves under the web root, its limits
/// and its guards.
pub fn app(state: AppState) -> Router {
    let root = state.config().web_root.clone();
    let mut router = route_table(&root).router;
    if !root.is_top() {
        let target = root.clone();
        router = router.route(
            root.as_str().trim_end_matches('/'),
            get(move |uri| proxy::redirect_into(target.clone(), uri)),
        );
    }
    let router = router
        .fallback(api::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(guard::check_origin));
    auth::require_login_on(router, state.config())
        .layer(axum::middleware::from_fn(guard::security_headers))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::check_host,
        ))
        .with_state(state)
}

/// Every `(method, path)` the router serves, in the order they were added, with
/// paths as in the OpenAPI description (`/api/v1/message/{ID}`).
pub fn routes() -> Vec<(Method, &'static str)> {
    route_table(&WebRoot::default()).routes
}

/// The router and the list of what it serves, built together so that they cannot
/// disagree.
struct RouteTable {
    root: WebRoot,
    router: Router<AppState>,
    routes: Vec<(Method, &'static str)>,
}

impl RouteTable {
    fn add<H, T>(mut self, method: Method, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).expect("a standard method");
        self.router = self
            .router
            .route(&self.root.join(path), on(filter, handler));
        self.routes.push((method, path));
        self
    }
}

fn route_table(root: &WebRoot) -> RouteTable {
    let table = RouteTable {
        root: root.clone(),
        router: Router::new(),
        routes: Vec::new(),
    };
    table
        .add(Method::GET, "/", ui::index)
        .add(Method::GET, "/static/{file}", ui::asset)
        .add(Method::GET, "/view/{file}", ui::view)
        .add(Method::GET, "/api/events", events::websocket)
        .add(Method::GET, "/livez", health::livez)
        .add(Method::GET, "/readyz", health::readyz)
        .add(Method::GET, "/metrics", metrics::metrics)
        .add(Method::GET, "/api/v1/info", api::info)
        .add(Method::GET, "/api/v1/messages", api::list)
        .add(Method::PUT, "/api/v1/messages", api::set_read)
        .add(Method::DELETE, "/api/v1/messages", api::delete)
        .add(Method::GET, "/api/v1/message/{ID}", api::message)
        .add(Method::GET, "/api/v1/message/{ID}/raw", api::raw)
        .add(Method::GET, "/api/v1/message/{ID}/headers", api::headers)
        .add(Method::GET, "/api/v1/message/{ID}/envelope", api::envelope)
        .add(Method::GET, "/api/v1/message/{ID}/part/{PartID}", api::part)
        .add(
            Method::GET,
            "/api/v1/message/{ID}/part/{PartID}/thumb",
            thumb::thumb,
        )
        .add(
            Method::GET,
            "/api/v1/message/{ID}/html-check",
            htmlcheck::html_check,
        )
        .add(
            Method::GET,
            "/api/v1/message/{ID}/link-check",
            linkcheck::link_check,
        )
        .add(
            Method::POST,
            "/api/v1/message/{ID}/release",
            release::release,
        )
        .add(Method::GET, "/api/v1/webui", webui::webui)
        .add(Method::GET, "/api/v1/tags", tags::list)
        .add(Method::GET, "/api/v1/tag-counts", tags::counts)
        .add(Method::PUT, "/api/v1/tags", tags::set)
        .add(Method::PUT, "/api/v1/tags/{Tag}", tags::rename)
        .add(Method::DELETE, "/api/v1/tags/{Tag}", tags::delete)
        .add(Method::GET, "/api/v1/chaos", chaos::get)
        .add(Method::PUT, "/api/v1/chaos", chaos::set)
        .add(Method::GET, "/api/v1/search", search::search)
        .add(Method::DELETE, "/api/v1/search", search::delete)
        .add(Method::POST, "/api/v1/send", send::send)
        .add(Method::GET, "/api/v1/openapi.json", openapi::document)
        .add(Method::GET, "/api/v1/swagger.json", openapi::document)
}
