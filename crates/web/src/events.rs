//! Live events over a WebSocket at `/api/events`, in Mailpit's frames.
//!
//! ```text
//! Store::subscribe() ──▶ hub task ──JSON frames──▶ one queue per client ──▶ one task per client
//!                          └── at most 4 times a second: {"Type":"stats",...}
//! ```
//!
//! Frames: `{"Type":"new","Data":<summary>}` for each delivered message,
//! `{"Type":"delete","Data":{"ID":"7"}}`, `{"Type":"update","Data":{"ID":"7",
//! "Read":true}}`, `{"Type":"update","Data":{"ID":"7","Tags":["a"]}}` when its
//! tags changed, `{"Type":"stats","Data":{"Total":..,"Unread":..,"Version":..}}`,
//! and `{"Type":"prune","Data":null}` when a client should reload its list: after
//! "delete all", after changes too many to send one by one, when the hub fell
//! behind the store, or after the retention policy pruned messages (as Mailpit
//! sends it; one frame, with the next stats, for all the batches of a run).
//! The hub turns each store event into JSON once, however many clients listen.
//!
//! Every frame is bounded: a `new` frame carries the store's bounded summary (see
//! [`crate::json::MessageSummaryJson`]). Every client's queue is bounded in bytes
//! ([`CLIENT_BACKLOG_BYTES`]): a client that stops reading is dropped once its
//! unsent frames pass it, the drop is logged and counted ([`Hub::dropped`],
//! `WebSocketsDropped` in `/api/v1/info`), and the page reconnects and reloads.
//! Frames are shared between the queues, so all clients together hold at most
//! about one backlog's worth of distinct frames.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sokkel_store::{Store, StoreEvent};
use tokio::sync::{Notify, OwnedSemaphorePermit, broadcast};
use tokio::time::Instant;

use crate::json::{
    EventJson, FlaggedJson, IdJson, MessageSummaryJson, ReadJson, StatsJson, TagsUpdateJson,
};
use crate::{ApiError, AppState};

/// One JSON text frame, shared by every client.
type Frame = Arc<str>;

/// The most bytes of frames waiting to be sent to one client. A client further
/// behind has stopped reading (a live page reads within milliseconds); it is
/// dropped rather than let its queue grow.
pub const CLIENT_BACKLOG_BYTES: usize = 1 << 20;

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
    started: OnceLock<()>,
    clients: Arc<Clients>,
}

/// The queues of the connected clients, and how many were dropped.
#[derive(Debug, Default)]
struct Clients {
    queues: Mutex<Vec<Arc<ClientQueue>>>,
    dropped: AtomicU64,
}

impl Clients {
    /// Queues `frame` for every client, dropping those it would put over
    /// [`CLIENT_BACKLOG_BYTES`] and forgetting those that are gone.
    fn send(&self, frame: &Frame) {
        let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        queues.retain(|queue| match queue.push(frame) {
            Push::Queued => true,
            Push::Gone => false,
            Push::Overflow => {
                let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(
                    backlog_bytes = CLIENT_BACKLOG_BYTES,
                    dropped,
                    "dropped a WebSocket client that stopped reading its events"
                );
                false
            }
        });
    }
}

/// What [`ClientQueue::push`] did.
enum Push {
    Queued,
    /// The client's task has ended.
    Gone,
    /// The frame would have put the client over its backlog: it is closed now.
    Overflow,
}

/// The frames waiting for one client.
#[derive(Debug, Default)]
struct ClientQueue {
    state: Mutex<QueueState>,
    changed: Notify,
}

#[derive(Debug, Default)]
struct QueueState {
    frames: VecDeque<Frame>,
    bytes: usize,
    closed: bool,
}

impl ClientQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, frame: &Frame) -> Push {
        let mut state = self.lock();
        if state.closed {
            return Push::Gone;
        }
        if state.bytes + frame.len() > CLIENT_BACKLOG_BYTES {
            state.closed = true;
            state.frames = VecDeque::new();
            state.bytes = 0;
            drop(state);
            self.changed.notify_one();
            return Push::Overflow;
        }
        state.bytes += frame.len();
        state.frames.push_back(Arc::clone(frame));
        drop(state);
        self.changed.notify_one();
        Push::Queued
    }

    /// The next frame to send; `Err` once the queue is closed.
    fn pop(&self) -> Result<Option<Frame>, Closed> {
        let mut state = self.lock();
        if state.closed {
            return Err(Closed);
        }
        let frame = state.frames.pop_front();
        if let Some(frame) = &frame {
            state.bytes -= frame.len();
        }
        Ok(frame)
    }

    fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.frames = VecDeque::new();
        state.bytes = 0;
    }

    /// Completes once the hub closed the queue.
    async fn closed(&self) {
        loop {
            let changed = self.changed.notified();
            if self.lock().closed {
                return;
            }
            changed.await;
        }
    }
}

/// The queue was closed: the client fell too far behind.
struct Closed;

/// Closes a client's queue when its task ends, however it ends.
struct Subscription(Arc<ClientQueue>);

impl Drop for Subscription {
    fn drop(&mut self) {
        self.0.close();
    }
}

impl Hub {
    pub(crate) fn new(store: Store, version: String) -> Hub {
        Hub {
            store,
            version,
            started: OnceLock::new(),
            clients: Arc::default(),
        }
    }

    /// A queue of the frames from now on. Must be called inside the tokio runtime.
    fn subscribe(&self) -> Subscription {
        self.started.get_or_init(|| {
            // Subscribed here, before the task runs, so nothing is missed.
            let events = self.store.subscribe();
            tokio::spawn(run_hub(
                self.store.clone(),
                self.version.clone(),
                events,
                Arc::clone(&self.clients),
            ));
        });
        let queue = Arc::new(ClientQueue::default());
        self.clients
            .queues
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::clone(&queue));
        Subscription(queue)
    }

    /// How many WebSocket clients were dropped for falling more than
    /// [`CLIENT_BACKLOG_BYTES`] behind, since the server started.
    pub(crate) fn dropped(&self) -> u64 {
        self.clients.dropped.load(Ordering::Relaxed)
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
        StoreEvent::New(summary) | StoreEvent::NewElsewhere(summary) => {
            vec![frame("new", MessageSummaryJson::from(&**summary))]
        }
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
        StoreEvent::FlaggedChanged(ids, flagged) if ids.len() <= MAX_FRAMES_PER_CHANGE => ids
            .iter()
            .map(|id| {
                frame(
                    "update",
                    FlaggedJson {
                        id: id.to_string(),
                        flagged: *flagged,
                    },
                )
            })
            .collect(),
        StoreEvent::TagsChanged(changes) if changes.len() <= MAX_FRAMES_PER_CHANGE => changes
            .iter()
            .map(|change| {
                frame(
                    "update",
                    TagsUpdateJson {
                        id: change.id.to_string(),
                        tags: &change.tags,
                    },
                )
            })
            .collect(),
        // Another process (`sokkel mail delete`, say) changed the store: reload.
        StoreEvent::Deleted(_)
        | StoreEvent::ReadChanged(..)
        | StoreEvent::FlaggedChanged(..)
        | StoreEvent::TagsChanged(_)
        | StoreEvent::DeletedAll
        | StoreEvent::Pruned(_)
        | StoreEvent::Changed => {
            vec![prune()]
        }
    }
}

async fn run_hub(
    store: Store,
    version: String,
    mut events: broadcast::Receiver<StoreEvent>,
    clients: Arc<Clients>,
) {
    let mut stats_due: Option<Instant> = None;
    // Pruning announces every batch; clients reload once, with the stats.
    let mut pruned: Option<StoreEvent> = None;
    loop {
        let stats_at = stats_due.unwrap_or_else(Instant::now);
        tokio::select! {
            event = events.recv() => {
                match event {
                    Ok(event @ StoreEvent::Pruned(_)) => pruned = Some(event),
                    Ok(event) => {
                        for frame in frames_for(&event) {
                            clients.send(&frame);
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => clients.send(&prune()),
                    Err(broadcast::error::RecvError::Closed) => return,
                }
                stats_due.get_or_insert_with(|| Instant::now() + STATS_INTERVAL);
            }
            () = tokio::time::sleep_until(stats_at), if stats_due.is_some() => {
                stats_due = None;
                for frame in pruned.take().iter().flat_map(frames_for) {
                    clients.send(&frame);
                }
                let store = store.clone();
                match tokio::task::spawn_blocking(move || store.count()).await {
                    Ok(Ok(counts)) => {
                        let stats = StatsJson {
                            total: counts.total,
                            unread: counts.unread,
                            version: version.clone(),
                        };
                        clients.send(&frame("stats", stats));
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
    if !crate::guard::same_origin(&headers) {
        return ApiError::Forbidden("WebSocket from another origin refused".into()).into_response();
    }
    let Ok(permit) = state.inner.websockets.clone().try_acquire_owned() else {
        return ApiError::Unavailable("too many WebSocket clients; try again later".into())
            .into_response();
    };
    let queue = state.inner.hub.subscribe();
    let stopped = state.stopped();
    // Often enough that the connection's idle timeout never closes a live page.
    let ping_every = (state.config().idle_timeout / 3).max(Duration::from_millis(100));
    upgrade
        .max_message_size(MAX_CLIENT_FRAME)
        .on_upgrade(move |socket| client(socket, queue, stopped, ping_every, permit))
}

async fn client(
    mut socket: WebSocket,
    queue: Subscription,
    mut stopped: tokio::sync::watch::Receiver<bool>,
    ping_every: Duration,
    _permit: OwnedSemaphorePermit,
) {
    let queue = &queue.0;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    loop {
        // Send what is queued; a client that stops reading blocks here until the
        // hub closes its queue for falling too far behind.
        match queue.pop() {
            Err(Closed) => return,
            Ok(Some(frame)) => {
                tokio::select! {
                    sent = socket.send(Message::Text(frame.as_ref().into())) => {
                        if sent.is_err() {
                            return;
                        }
                    }
                    () = queue.closed() => return,
                }
                continue;
            }
            Ok(None) => {}
        }
        tokio::select! {
            _ = ping.tick() => {
                // The browser's pong is what keeps the connection from looking idle.
                tokio::select! {
                    sent = socket.send(Message::Ping(Default::default())) => {
                        if sent.is_err() {
                            return;
                        }
                    }
                    () = queue.closed() => return,
                }
            }
            incoming = socket.recv() => match incoming {
                // Pings are answered by the library; text from clients is ignored.
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
            () = queue.changed.notified() => {}
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
    use sokkel_store::MessageId;

    #[test]
    fn a_client_past_its_backlog_is_dropped_and_counted() {
        let clients = Clients::default();
        let (slow, fast) = (
            Arc::new(ClientQueue::default()),
            Arc::new(ClientQueue::default()),
        );
        clients.queues.lock().unwrap().push(Arc::clone(&slow));
        clients.queues.lock().unwrap().push(Arc::clone(&fast));
        let frame: Frame = "x".repeat(CLIENT_BACKLOG_BYTES / 4).into();
        for _ in 0..4 {
            clients.send(&frame);
            assert!(fast.pop().ok().flatten().is_some());
        }
        assert_eq!(clients.dropped.load(Ordering::Relaxed), 0);
        clients.send(&frame);
        assert_eq!(clients.dropped.load(Ordering::Relaxed), 1);
        assert!(slow.pop().is_err(), "the slow client's queue is closed");
        assert_eq!(slow.lock().bytes, 0, "and its frames are released");
        assert!(fast.pop().ok().flatten().is_some(), "the fast one goes on");
        assert_eq!(clients.queues.lock().unwrap().len(), 1);
        // A client whose task ended is forgotten without counting as a drop.
        fast.close();
        clients.send(&frame);
        assert!(clients.queues.lock().unwrap().is_empty());
        assert_eq!(clients.dropped.load(Ordering::Relaxed), 1);
    }

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
        let flagged = frames_for(&StoreEvent::FlaggedChanged(vec![MessageId(6)], false));
        assert_eq!(
            flagged[0].as_ref(),
            r#"{"Type":"update","Data":{"ID":"6","Flagged":false}}"#
        );
        let all = frames_for(&StoreEvent::DeletedAll);
        assert_eq!(all[0].as_ref(), r#"{"Type":"prune","Data":null}"#);
        let many = (1..=500).map(MessageId).collect();
        assert_eq!(frames_for(&StoreEvent::Deleted(many)).len(), 1);
        // Mailpit's retention sends one `prune`, which its page answers by
        // reloading the list.
        let pruned = frames_for(&StoreEvent::Pruned(vec![MessageId(1), MessageId(2)]));
        assert_eq!(
            pruned.iter().map(|f| f.as_ref()).collect::<Vec<_>>(),
            [r#"{"Type":"prune","Data":null}"#]
        );
    }
}
