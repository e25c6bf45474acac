//! LISTEN/NOTIFY: every node announces every node's changes to its
//! subscribers as if they had happened locally.
//!
//! ```text
//! node 2: commit ─▶ NOTIFY sokkel {"node": "2…", "notice": {"kind": "new", "ids": [7]}}
//! node 1: Listener ─▶ reads message 7's summary ─▶ StoreEvent::NewElsewhere
//! ```
//!
//! The listener has a connection of its own (not from the pool: `LISTEN`
//! belongs to a session), started by the first [`crate::Store::subscribe`];
//! what a notice only names (a new message's summary, a message's tags) it
//! reads through the pool when it hears the notice, so a change committed
//! meanwhile may show in it already, and that change's own event follows (a
//! message deleted meanwhile gets no `New`, only its `Deleted`).
//! Its own node's notices are skipped: the node announced those itself. When
//! the connection is lost it reconnects, waiting longer each time up to
//! [`MAX_BACKOFF`], and then announces [`StoreEvent::Changed`] once: what
//! was committed meanwhile was not heard, so subscribers reload.

use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{AsyncMessage, Client, Socket};

use super::queries::{SUMMARY_COLUMNS, listed_summary_from_row};
use super::tags::tags_of;
use super::{CHANNEL, Notice, Shared};
use crate::store::StoreEvent;
use crate::{MessageId, StoreError};

/// Notifications waiting for the listener at most. The connection is driven
/// apart from the listener, so that the server never waits for it (its
/// notification queue filling up would fail every node's commits); past
/// this many the rest are dropped and the listener announces
/// [`StoreEvent::Changed`] instead.
const QUEUED_NOTIFICATIONS: usize = 1024;

/// The first wait before reconnecting; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The listener task; it stops when this drops (and with the backend's
/// runtime, which the store owns).
pub(crate) struct Listener {
    task: JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Listener {
    /// Start listening on the backend's runtime.
    pub(crate) fn spawn(shared: Arc<Shared>) -> Listener {
        let handle = shared.handle.clone();
        Listener {
            task: handle.spawn(listen(shared)),
        }
    }
}

/// A notification as [`super::publish`] sends it.
#[derive(serde::Deserialize)]
struct Payload {
    node: String,
    notice: Notice,
}

/// Listen, and listen again after every lost connection.
async fn listen(shared: Arc<Shared>) {
    let mut backoff = FIRST_BACKOFF;
    let mut reconnected = false;
    loop {
        match connect(&shared).await {
            Ok((client, notifications)) => {
                backoff = FIRST_BACKOFF;
                if reconnected {
                    shared.announce(StoreEvent::Changed);
                }
                relay(&shared, &client, notifications).await;
                tracing::debug!("lost the connection that listens for other nodes' changes");
            }
            Err(error) => {
                tracing::debug!(%error, "cannot listen for other nodes' changes; retrying");
            }
        }
        reconnected = true;
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// The payloads of a connection's notifications, and whether some were
/// dropped for want of room.
struct Notifications {
    payloads: mpsc::Receiver<String>,
    dropped: Arc<AtomicBool>,
}

/// A connection of its own that listens on [`CHANNEL`], and its
/// notifications.
async fn connect(shared: &Shared) -> Result<(Client, Notifications), StoreError> {
    // With the timeouts and keepalives PgStore::open gave every connection.
    let config = shared.config.config.clone();
    let (client, notifications) = if shared.config.tls {
        open(&config, shared.config.tls_connector()?, &shared.handle).await?
    } else {
        open(&config, tokio_postgres::NoTls, &shared.handle).await?
    };
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    Ok((client, notifications))
}

/// Connect with `tls` and drive the connection on a task of its own, which
/// hands on the payloads of notifications and ends with the connection.
async fn open<T>(
    config: &tokio_postgres::Config,
    tls: T,
    handle: &tokio::runtime::Handle,
) -> Result<(Client, Notifications), StoreError>
where
    T: MakeTlsConnect<Socket>,
    T::Stream: Send + 'static,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    let (client, mut connection) = config.connect(tls).await?;
    let (sender, payloads) = mpsc::channel(QUEUED_NOTIFICATIONS);
    let dropped = Arc::new(AtomicBool::new(false));
    let dropping = Arc::clone(&dropped);
    handle.spawn(async move {
        while let Some(message) = poll_fn(|cx| connection.poll_message(cx)).await {
            match message {
                Ok(AsyncMessage::Notification(notification)) => {
                    match sender.try_send(notification.payload().to_string()) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            dropping.store(true, Ordering::Relaxed);
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => break,
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::debug!(%error, "the connection that listens for changes failed");
                    break;
                }
            }
        }
    });
    Ok((client, Notifications { payloads, dropped }))
}

/// Announce every other node's notice until the connection ends.
async fn relay(shared: &Shared, client: &Client, mut notifications: Notifications) {
    while let Some(payload) = notifications.payloads.recv().await {
        let events = match serde_json::from_str::<Payload>(&payload) {
            Ok(payload) if payload.node == shared.node => Ok(Vec::new()),
            Ok(_) if shared.events.receiver_count() == 0 => Ok(Vec::new()),
            Ok(payload) => event_of(shared, payload.notice).await,
            Err(error) => Err(StoreError::corrupt(format!("a notification: {error}"))),
        };
        match events {
            Ok(events) => {
                for event in events {
                    shared.announce(event);
                }
            }
            Err(error) => {
                // Whatever happened is not known in detail: reload.
                tracing::debug!(%error, "cannot tell what another node changed");
                shared.announce(StoreEvent::Changed);
                if client.is_closed() {
                    return;
                }
            }
        }
        // Set while the queue was full: what came after this one was
        // dropped, so subscribers reload.
        if notifications.dropped.swap(false, Ordering::Relaxed) {
            shared.announce(StoreEvent::Changed);
        }
    }
}

/// The events this node would have announced for `notice` had it made the
/// change, read through a pooled connection where they carry more than the
/// notice does.
async fn event_of(shared: &Shared, notice: Notice) -> Result<Vec<StoreEvent>, StoreError> {
    let ids = |ids: Vec<i64>| ids.into_iter().map(MessageId).collect::<Vec<_>>();
    Ok(match notice {
        Notice::New { ids } => {
            let client = shared.client().await?;
            let statement = client
                .prepare_cached(&format!(
                    "SELECT {SUMMARY_COLUMNS} FROM messages AS m WHERE m.id = ANY($1) ORDER BY m.id"
                ))
                .await?;
            // A message deleted in the meantime is left out: its delete
            // follows.
            client
                .query(&statement, &[&ids])
                .await?
                .iter()
                .map(|row| {
                    Ok(StoreEvent::NewElsewhere(Arc::new(listed_summary_from_row(
                        row,
                    )?)))
                })
                .collect::<Result<_, StoreError>>()?
        }
        Notice::Tags { ids: tagged } => {
            let client = shared.client().await?;
            vec![StoreEvent::TagsChanged(
                tags_of(&client, &ids(tagged)).await?,
            )]
        }
        Notice::Deleted { ids: deleted } => vec![StoreEvent::Deleted(ids(deleted))],
        Notice::Pruned { ids: pruned } => vec![StoreEvent::Pruned(ids(pruned))],
        Notice::DeletedAll => vec![StoreEvent::DeletedAll],
        Notice::Read { ids: read, value } => vec![StoreEvent::ReadChanged(ids(read), value)],
        Notice::Flagged {
            ids: flagged,
            value,
        } => {
            vec![StoreEvent::FlaggedChanged(ids(flagged), value)]
        }
        Notice::Changed => vec![StoreEvent::Changed],
    })
}
