//! Live events over a WebSocket at `/api/events`, in Mailpit's frames.
//!
//! ```text
//! Store::subscribe() ──▶ hub task ──JSON frames──▶ broadcast ──▶ one task per client
//!                          └── at most 4 times a second: {"Type":"stats",...}
//! ```
//!
//! Frames: `{"Type":"new","Data":<summary>}` for each delivered message,
//! `{"Type":"delete","Data":{"ID":"7"}}`, `{"Type":"update","Data":{"ID":"7",
//! "Read":true}}`, `{"Type":"stats","Data":{"Total":..,"Unread":..,"Version":..}}`,
//! and `{"Type":"prune","Data":null}` when a client should reload its list: after
//! "delete all", after changes too many to send one by one, or when it fell
//! behind. The hub turns each store event into JSON once, however many clients
//! listen.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sokkel_store::{Store, StoreEvent};
use tokio::sync::{OwnedSemaphorePermit, broadcast};
use tokio::time::Instant;

use crate::json::{EventJson, IdJson, MessageSummaryJson, ReadJson, StatsJson};
use crate::{ApiError, AppState};

/// One JSON text frame, shared by every client.
type Frame = Arc<str>;

/// Frames a slow client may fall behind by before it is told to reload.
const CLIENT_BACKLOG: usize = 1024;

/// More ids than this in one change are announced as `prune` (reload), not one
/// frame each, as Mailpit does.
const MAX_FRAMES_PER_CHANGE: usize = 200;

/// Stats go out at most this often, so a burst of mail costs one count.
const STATS_INTERVAL: Duration = Duration::from_millis(250);

/// The largest frame a client may send; clients have nothing to say but pings.
const MAX_CLIENT_FRAME: usize = 4096;

/// Turns store events into frames for every connected client. Started by the
/// first client, so a server nobody watches does no event work.
#[derive(Debug)]
pub(crate) struct Hub {
    store: Store,
    version: String,
    frames: OnceLock<broadcast::Sender<Frame>>,
}

impl Hub {
    pub(crate) fn new(store: Store, version: String) -> Hub {
        Hub {
            store,
            version,
            frames: OnceLock::new(),
        }
    }

    /// Frames from now on. Must be called inside the tokio runtime.
    fn subscribe(&self) -> broadcast::Receiver<Frame> {
        self.frames
            .get_or_init(|| {
                let (sender, _) = broadcast::channel(CLIENT_BACKLOG);
                // Subscribed here, before the task runs, so nothing is missed.
                let events = self.store.subscribe();
                tokio::spawn(run_hub(
                    self.store.clone(),
                    self.version.clone(),
                    events,
                    sender.clone(),
                ));
                sender
            })
            .subscribe()
    }
}

fn frame<T: Serialize>(kind: &'static str, data: T) -> Frame {
    // Serializing these plain structs cannot fail.
    serde_json::to_string(&EventJson { kind, data })
        .unwrap_or_default()
        .into()
}

fn prune() -> Frame {
    frame("prune", ())
}

/// The frames that announce one store event.
fn frames_for(event: &StoreEvent) -> Vec<Frame> {
    match event {
        StoreEvent::New(summary) => vec![frame("new", MessageSummaryJson::from(&**summary))],
        StoreEvent::Deleted(ids) if ids.len() <= MAX_FRAMES_PER_CHANGE => ids
            .iter()
            .map(|id| frame("delete", IdJson { id: id.to_string() }))
            .collect(),
        StoreEvent::ReadChanged(ids, read) if ids.len() <= MAX_FRAMES_PER_CHANGE => ids
            .iter()
            .map(|id| {
                frame(
                    "update",
                    ReadJson {
                        id: id.to_string(),
                        read: *read,
                    },
                )
            })
            .collect(),
        // Another process (`sokkel mail delete`, say) changed the store: reload.
        StoreEvent::Deleted(_)
        | StoreEvent::ReadChanged(..)
        | StoreEvent::DeletedAll
        | StoreEvent::Changed => {
            vec![prune()]
        }
    }
}

async fn run_hub(
    store: Store,
    version: String,
    mut events: broadcast::Receiver<StoreEvent>,
    frames: broadcast::Sender<Frame>,
) {
    let mut stats_due: Option<Instant> = None;
    loop {
        let stats_at = stats_due.unwrap_or_else(Instant::now);
        tokio::select! {
            event = events.recv() => {
                match event {
                    Ok(event) => {
                        for frame in frames_for(&event) {
                            let _ = frames.send(frame);
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let _ = frames.send(prune());
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
                stats_due.get_or_insert_with(|| Instant::now() + STATS_INTERVAL);
            }
            () = tokio::time::sleep_until(stats_at), if stats_due.is_some() => {
                stats_due = None;
                let store = store.clone();
                match tokio::task::spawn_blocking(move || store.count()).await {
                    Ok(Ok(counts)) => {
                        let stats = StatsJson {
                            total: counts.total,
                            unread: counts.unread,
                            version: version.clone(),
                        };
                        let _ = frames.send(frame("stats", stats));
                    }
                    Ok(Err(error)) => tracing::warn!(%error, "cannot count messages for the web page"),
                    Err(_) => return,
                }
            }
        }
    }
}

/// `GET /api/events`: upgrades to a WebSocket that receives the frames above.
///
/// A browser sends `Origin` with every WebSocket request and does not apply the
/// same-origin policy to them, so a page elsewhere could otherwise read the
/// events; an `Origin` whose host differs from `Host` is refused.
pub(crate) async fn websocket(
    State(state): State<AppState>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(_) => {
            return ApiError::BadRequest(
                "/api/events is a WebSocket; connect with a WebSocket client".into(),
            )
            .into_response();
        }
    };
    if !same_origin(&headers) {
        return ApiError::Forbidden("WebSocket from another origin refused".into()).into_response();
    }
    let Ok(permit) = state.inner.websockets.clone().try_acquire_owned() else {
        return ApiError::Unavailable("too many WebSocket clients; try again later".into())
            .into_response();
    };
    let frames = state.inner.hub.subscribe();
    let stopped = state.stopped();
    // Often enough that the connection's idle timeout never closes a live page.
    let ping_every = (state.config().idle_timeout / 3).max(Duration::from_millis(100));
    upgrade
        .max_message_size(MAX_CLIENT_FRAME)
        .on_upgrade(move |socket| client(socket, frames, stopped, ping_every, permit))
}

/// No `Origin` (not a browser), or one whose host is the `Host` asked for.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|origin| origin.split_once("://"))
        .map(|(_, rest)| rest.trim_end_matches('/'));
    matches!((origin_host, host), (Some(a), Some(b)) if a.eq_ignore_ascii_case(b))
}

async fn client(
    mut socket: WebSocket,
    mut frames: broadcast::Receiver<Frame>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
    ping_every: Duration,
    _permit: OwnedSemaphorePermit,
) {
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    loop {
        tokio::select! {
            _ = ping.tick() => {
                // The browser's pong is what keeps the connection from looking idle.
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                // Pings are answered by the library; text from clients is ignored.
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
            frame = frames.recv() => {
                let frame = match frame {
                    Ok(frame) => frame,
                    Err(broadcast::error::RecvError::Lagged(_)) => prune(),
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if socket.send(Message::Text(frame.as_ref().into())).await.is_err() {
                    return;
                }
            }
            () = until_stopped(&mut stopped) => {
                let _ = socket.send(Message::Close(None)).await;
                return;
            }
        }
    }
}

/// Completes once the server is stopping.
async fn until_stopped(stopped: &mut tokio::sync::watch::Receiver<bool>) {
    // An error means the sender is gone, which also means stop.
    let _ = stopped.wait_for(|stop| *stop).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use sokkel_store::MessageId;

    #[test]
    fn frames_follow_mailpit() {
        let deleted = frames_for(&StoreEvent::Deleted(vec![MessageId(3), MessageId(4)]));
        assert_eq!(
            deleted.iter().map(|f| f.as_ref()).collect::<Vec<_>>(),
            [
                r#"{"Type":"delete","Data":{"ID":"3"}}"#,
                r#"{"Type":"delete","Data":{"ID":"4"}}"#
            ]
        );
        let read = frames_for(&StoreEvent::ReadChanged(vec![MessageId(5)], true));
        assert_eq!(
            read[0].as_ref(),
            r#"{"Type":"update","Data":{"ID":"5","Read":true}}"#
        );
        let all = frames_for(&StoreEvent::DeletedAll);
        assert_eq!(all[0].as_ref(), r#"{"Type":"prune","Data":null}"#);
        let many = (1..=500).map(MessageId).collect();
        assert_eq!(frames_for(&StoreEvent::Deleted(many)).len(), 1);
    }

    #[test]
    fn origin_must_match_host() {
        let headers = |origin: Option<&'static str>, host: &'static str| {
            let mut map = HeaderMap::new();
            map.insert(header::HOST, HeaderValue::from_static(host));
            if let Some(origin) = origin {
                map.insert(header::ORIGIN, HeaderValue::from_static(origin));
            }
            map
        };
        assert!(same_origin(&headers(None, "127.0.0.1:8025")));
        assert!(same_origin(&headers(
            Some("http://127.0.0.1:8025"),
            "127.0.0.1:8025"
        )));
        assert!(!same_origin(&headers(
            Some("http://evil.example"),
            "127.0.0.1:8025"
        )));
        assert!(!same_origin(&headers(Some("null"), "127.0.0.1:8025")));
    }
}
