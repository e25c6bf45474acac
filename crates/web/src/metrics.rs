//! `GET /metrics`: what the catcher did and holds, in Prometheus' text
//! exposition format (version 0.0.4), for a Prometheus server to scrape.
//!
//! The servers count as they go, with atomics only ([`sokkel_net::stats`]);
//! a scrape reads those counters, asks the store for its message counts (one
//! cheap query), and has `prometheus-client` write the text:
//!
//! ```text
//! SMTP shell ──▶ SmtpCounters ─┐
//! POP3, IMAP ──▶ OpenSessions ─┤
//! store ──────▶ StoreCounters ─┼─▶ GET /metrics: Scrape ──prometheus-client──▶ text/plain; version=0.0.4
//! relay, webhook, WebSockets ──┤
//! Store::count() ──────────────┘
//! ```
//!
//! Names follow Prometheus' conventions: all under `sokkel_`, base units
//! (seconds, bytes), `_total` on counters. Labels take values from small
//! fixed sets, every one shown even at zero, so that a rate over a label
//! that has not happened yet is 0 rather than missing. Like `/livez`, the
//! route needs no login.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use sokkel_net::stats::{
    HistogramSnapshot, OpenSessions, RejectReason, RelayCounters, RelayOutcome,
};
use sokkel_store::MessageCounts;

use crate::AppState;
use crate::webhook::Webhook;

/// What the servers beside the web side count, handed over by the binary
/// (SMTP's counters come in [`crate::WebConfig::smtp_counters`], the store's
/// with the store). Fresh zeros by default.
#[derive(Debug, Clone, Default)]
pub struct MetricSources {
    /// The POP3 server's open sessions.
    pub pop3_sessions: Arc<OpenSessions>,
    /// The IMAP server's open sessions.
    pub imap_sessions: Arc<OpenSessions>,
    /// The relay's attempts (release and auto-relay).
    pub relay: Arc<RelayCounters>,
    /// The webhook, if one runs.
    pub webhook: Option<Webhook>,
}

/// `GET /metrics`.
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let store = state.store().clone();
    let messages = match tokio::task::spawn_blocking(move || store.count()).await {
        Ok(Ok(counts)) => counts,
        Ok(Err(error)) => {
            // A scrape that fails shows as `up == 0`, which is what a store
            // that cannot count its messages deserves.
            tracing::warn!(%error, "/metrics: the store cannot count its messages");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
        Err(_) => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
    };
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape::read(&state, messages)));
    let mut body = String::new();
    if let Err(error) = prometheus_client::encoding::prometheus_text::encode(&mut body, &registry) {
        tracing::error!(%error, "/metrics: encoding failed");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let content_type =
        HeaderValue::from_static(prometheus_client::encoding::prometheus_text::CONTENT_TYPE);
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// Every value of one scrape, read at its start.
#[derive(Debug)]
struct Scrape {
    messages: MessageCounts,
    accepted: u64,
    rejected: Vec<(&'static str, u64)>,
    received_bytes: u64,
    sessions: [(&'static str, i64); 3],
    ack: HistogramSnapshot,
    log_sync: HistogramSnapshot,
    commit: HistogramSnapshot,
    pruned: u64,
    relay: Vec<(&'static str, u64)>,
    webhook: [(&'static str, u64); 4],
    websocket_clients: u64,
}

impl Scrape {
    fn read(state: &AppState, messages: MessageCounts) -> Scrape {
        let config = state.config();
        let smtp = &config.smtp_counters;
        let sources = &config.metrics;
        let store = state.store().counters();
        let webhook = sources
            .webhook
            .as_ref()
            .map(Webhook::counts)
            .unwrap_or_default();
        let websocket_permits = state.inner.websockets.available_permits();
        Scrape {
            messages,
            accepted: smtp.accepted(),
            rejected: (RejectReason::ALL.iter())
                .map(|reason| (reason.as_str(), smtp.rejected_for(*reason)))
                .collect(),
            received_bytes: smtp.received_bytes(),
            sessions: [
                ("smtp", smtp.sessions().get()),
                ("pop3", sources.pop3_sessions.get()),
                ("imap", sources.imap_sessions.get()),
            ],
            ack: smtp.ack().snapshot(),
            log_sync: store.log_sync().snapshot(),
            commit: store.commit().snapshot(),
            pruned: store.pruned(),
            relay: (RelayOutcome::ALL.iter())
                .map(|outcome| (outcome.as_str(), sources.relay.get(*outcome)))
                .collect(),
            webhook: [
                ("sent", webhook.sent),
                ("failed", webhook.failed),
                ("skipped", webhook.skipped),
                ("dropped", webhook.dropped),
            ],
            websocket_clients: config.max_websockets.saturating_sub(websocket_permits) as u64,
        }
    }
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        gauge(
            &mut encoder,
            "sokkel_messages",
            "Messages in the store.",
            self.messages.total,
        )?;
        gauge(
            &mut encoder,
            "sokkel_messages_unread",
            "Messages in the store not marked read.",
            self.messages.unread,
        )?;
        counter(
            &mut encoder,
            "sokkel_smtp_messages_accepted",
            "Messages the SMTP server stored (and answered 250).",
            self.accepted,
        )?;
        labelled_counters(
            &mut encoder,
            "sokkel_smtp_messages_rejected",
            "MAIL, RCPT, DATA and BDAT commands and messages the SMTP server refused, by reason.",
            "reason",
            &self.rejected,
        )?;
        counter(
            &mut encoder,
            "sokkel_smtp_received_bytes",
            "Bytes of the messages the SMTP server accepted, as received.",
            self.received_bytes,
        )?;
        let mut sessions = encoder.encode_descriptor(
            "sokkel_sessions",
            "Sessions open now, by protocol.",
            None,
            MetricType::Gauge,
        )?;
        for (protocol, open) in &self.sessions {
            let labels = [("protocol", *protocol)];
            ConstGauge::new(*open).encode(sessions.encode_family(&labels)?)?;
        }
        histogram(
            &mut encoder,
            "sokkel_smtp_ack_seconds",
            "Time from the end of a message (DATA's final dot, BDAT LAST) to its 250 written to the client.",
            &self.ack,
        )?;
        histogram(
            &mut encoder,
            "sokkel_store_log_sync_seconds",
            "SQLite store: time to write and fdatasync one batch of arriving messages to the log; their 250s wait for it.",
            &self.log_sync,
        )?;
        histogram(
            &mut encoder,
            "sokkel_store_commit_seconds",
            "Time of a database transaction storing arriving messages: SQLite's rows written from the log (after the 250s), PostgreSQL's insert (before them).",
            &self.commit,
        )?;
        counter(
            &mut encoder,
            "sokkel_store_pruned_messages",
            "Messages deleted by retention (--max, --max-age).",
            self.pruned,
        )?;
        labelled_counters(
            &mut encoder,
            "sokkel_relay_messages",
            "Messages relayed to the relay server (release and auto-relay), by outcome.",
            "outcome",
            &self.relay,
        )?;
        labelled_counters(
            &mut encoder,
            "sokkel_webhook_requests",
            "New messages for the webhook, by outcome: sent (2xx), failed, skipped (over the rate limit), dropped (queue full).",
            "outcome",
            &self.webhook,
        )?;
        gauge(
            &mut encoder,
            "sokkel_websocket_clients",
            "WebSocket clients (web pages) connected to /api/events.",
            self.websocket_clients,
        )
    }
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// `name` gets its `_total` from the encoder.
fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn labelled_counters(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &'static str,
    values: &[(&'static str, u64)],
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (value, count) in values {
        let labels = [(label, *value)];
        ConstCounter::new(*count).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

fn histogram(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    snapshot: &HistogramSnapshot,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
    metric.encode_histogram::<NoLabelSet>(snapshot.sum, snapshot.count, &snapshot.buckets, None)
}
