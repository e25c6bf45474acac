//! Auto-relay (`--relay-all`, `--relay-matching QUERY`): every message that
//! arrives while the catcher runs is relayed to its envelope recipients that
//! the policy allows; the others are recorded as skipped.
//!
//! ```text
//! Store::subscribe ──New(id)──▶ feeder ──bounded queue──▶ worker ──▶ Relay::relay_message
//!                   └─Lagged──▶ feeder lists the ids it missed, by id
//! ```
//!
//! Ingest never waits for the relay: the store announces a message after its
//! 250, and a full queue holds up only the feeder, whose subscription then
//! lags; it catches up from the store by id, so no arrival is skipped. A relay
//! that is down or refuses makes a failed attempt, recorded with the message,
//! which stays caught.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use sokkel_store::{ListQuery, MessageId, SearchQuery, Store, StoreEvent};
use tokio::sync::{broadcast, mpsc};

use super::Relay;

/// How many arrivals may wait for the relay worker; past it the feeder waits
/// and catches up from the store later.
pub const QUEUE: usize = 256;

/// How long `--relay-matching` waits for a new message to reach the search
/// index (it follows the 250 by a moment; longer only under heavy load).
const INDEX_WAIT: Duration = Duration::from_secs(30);

/// Which arriving messages to relay.
#[derive(Debug, Clone)]
pub enum Trigger {
    /// Every one (`--relay-all`).
    All,
    /// Those that match this search (`--relay-matching`).
    Matching(SearchQuery),
}

/// Starts relaying the messages that arrive from now on. Subscribes before
/// it returns, so that nothing delivered afterwards is missed.
pub async fn spawn(relay: Relay, trigger: Trigger) -> anyhow::Result<()> {
    let store = relay.store().clone();
    let events = store.subscribe();
    // Messages caught before this run are not relayed: only arrivals are.
    // A store query blocks (on PostgreSQL it must not run on this runtime).
    let latest = store.clone();
    let floor = tokio::task::spawn_blocking(move || latest.latest())
        .await??
        .unwrap_or(MessageId(0));
    let (queue, arrivals) = mpsc::channel(QUEUE);
    tokio::spawn(feed(store, events, floor, queue));
    tokio::spawn(work(relay, trigger, arrivals));
    Ok(())
}

/// How many of the newest queued ids the feeder remembers.
const REMEMBERED: usize = 4096;

/// Which ids the feeder has queued. Not just the highest: the store announces
/// after each commit, and an IMAP APPEND can commit and announce between the
/// SMTP writer's commit and its announcement, so a higher id may come first.
#[derive(Debug)]
struct Queued {
    /// Nothing at or below it is queued: messages from before the start, and
    /// the ids forgotten to keep [`Queued::recent`] at [`REMEMBERED`].
    floor: MessageId,
    recent: BTreeSet<MessageId>,
}

impl Queued {
    fn above(floor: MessageId) -> Queued {
        Queued {
            floor,
            recent: BTreeSet::new(),
        }
    }

    /// Whether `id` is to be queued now: above the floor and not queued yet.
    fn first_time(&mut self, id: MessageId) -> bool {
        if id <= self.floor || !self.recent.insert(id) {
            return false;
        }
        while self.recent.len() > REMEMBERED {
            if let Some(oldest) = self.recent.pop_first() {
                self.floor = oldest;
            }
        }
        true
    }
}

/// Hands every new id, once, to the worker.
async fn feed(
    store: Store,
    mut events: broadcast::Receiver<StoreEvent>,
    floor: MessageId,
    queue: mpsc::Sender<MessageId>,
) {
    let mut queued = Queued::above(floor);
    loop {
        let new = match events.recv().await {
            Ok(StoreEvent::New(summary)) => vec![summary.id],
            Ok(_) => continue,
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::debug!(missed, "auto-relay fell behind; catching up from the store");
                match ids_after(&store, queued.floor).await {
                    Ok(ids) => ids,
                    Err(error) => {
                        tracing::warn!("auto-relay cannot list new messages: {error:#}");
                        continue;
                    }
                }
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        for id in new.into_iter().filter(|&id| queued.first_time(id)) {
            if queue.send(id).await.is_err() {
                return;
            }
        }
    }
}

/// The ids above `last_seen`, oldest first, read a page at a time.
async fn ids_after(store: &Store, last_seen: MessageId) -> anyhow::Result<Vec<MessageId>> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || {
        let mut ids = Vec::new();
        let mut before = None;
        'pages: loop {
            let page = store.list(&ListQuery {
                limit: 1000,
                offset: 0,
                before,
            })?;
            let Some(last) = page.last() else {
                break;
            };
            before = Some(last.id);
            for summary in &page {
                if summary.id <= last_seen {
                    break 'pages;
                }
                ids.push(summary.id);
            }
        }
        ids.reverse();
        Ok(ids)
    })
    .await?
}

/// Relays each queued message, one at a time.
async fn work(relay: Relay, trigger: Trigger, mut arrivals: mpsc::Receiver<MessageId>) {
    while let Some(id) = arrivals.recv().await {
        if let Err(error) = relay_one(&relay, &trigger, id).await {
            tracing::warn!("auto-relay of message {id} failed: {error:#}");
        }
    }
}

async fn relay_one(relay: &Relay, trigger: &Trigger, id: MessageId) -> anyhow::Result<()> {
    if let Trigger::Matching(query) = trigger
        && !matches(relay.store(), id, query).await?
    {
        return Ok(());
    }
    let store = relay.store().clone();
    let Some(message) = tokio::task::spawn_blocking(move || store.get(id)).await?? else {
        // Deleted before its turn.
        return Ok(());
    };
    if sokkel_store::is_folder_copy(&message.envelope) {
        // Not an arrival: an IMAP client filed it (a draft, a copy out of
        // Sent), and its recipients come from its headers.
        tracing::debug!("auto-relay leaves message {id} alone: an IMAP client filed it");
        return Ok(());
    }
    let (allowed, skipped) = relay.split_allowed(&message.envelope.rcpt_to);
    if allowed.is_empty() {
        let attempt = sokkel_store::RelayAttempt {
            at: std::time::SystemTime::now(),
            recipients: Vec::new(),
            skipped,
            ok: false,
            reply: "not relayed: the relay configuration allows none of its recipients".into(),
        };
        return relay.record(id, &attempt).await;
    }
    relay.relay_message(message, allowed, skipped).await?;
    Ok(())
}

/// Whether message `id` matches `query`, waiting for the search index when
/// the query has words; `false` for a message deleted meanwhile.
async fn matches(store: &Store, id: MessageId, query: &SearchQuery) -> anyhow::Result<bool> {
    let deadline = Instant::now() + INDEX_WAIT;
    let mut pause = Duration::from_millis(10);
    loop {
        let (store, query) = (store.clone(), query.clone());
        let answer = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let matched = store.matches(id, &query)?;
            let exists = matched.is_some() || store.raw_len(id)?.is_some();
            Ok((matched, exists))
        })
        .await??;
        match answer {
            (Some(matched), _) => return Ok(matched),
            (None, false) => return Ok(false),
            (None, true) if Instant::now() >= deadline => {
                anyhow::bail!(
                    "it was not in the search index within {} s, so --relay-matching could not tell",
                    INDEX_WAIT.as_secs()
                );
            }
            (None, true) => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(500));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::SystemTime;

    use sokkel_store::{Envelope, NewMessage, StoreOptions};

    use super::*;

    fn messages(count: usize) -> Vec<NewMessage> {
        (0..count)
            .map(|n| NewMessage {
                envelope: Envelope {
                    mail_from: "app@example.test".into(),
                    rcpt_to: vec!["dev@example.test".into()],
                    helo: "client".into(),
                    client_addr: "127.0.0.1:40000".parse().unwrap(),
                    bare_lf: false,
                    smtputf8: false,
                    tls: None,
                    auth_user: None,
                },
                received_at: SystemTime::now(),
                raw: format!("Subject: {n}\r\n\r\nbody\r\n").into_bytes(),
            })
            .collect()
    }

    /// A subscription that lags (here: a channel of one event for three
    /// arrivals) loses events; the feeder finds the missed ids in the store,
    /// so every arrival after the start is queued once, in order.
    #[tokio::test]
    async fn a_lagging_subscription_skips_no_arrival() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("mail.db"), StoreOptions::default()).unwrap();
        let before = store.import(messages(2)).unwrap();
        let (events, receiver) = broadcast::channel(1);
        let (queue, mut arrivals) = mpsc::channel(QUEUE);
        let feeder = tokio::spawn(feed(store.clone(), receiver, before[1], queue));

        let ids = store.import(messages(3)).unwrap();
        for summary in store.list(&ListQuery::default()).unwrap().into_iter().rev() {
            if summary.id > before[1] {
                events.send(StoreEvent::New(Arc::new(summary))).unwrap();
            }
        }
        let mut queued = Vec::new();
        while queued.len() < ids.len() {
            let next = tokio::time::timeout(Duration::from_secs(10), arrivals.recv()).await;
            queued.push(next.expect("queued within 10 s").expect("the feeder runs"));
        }
        assert_eq!(
            queued, ids,
            "each new id once, oldest first; none from before"
        );

        // An event for an id already caught up on is not queued again.
        let last = store.list(&ListQuery::default()).unwrap().remove(0);
        events.send(StoreEvent::New(Arc::new(last))).unwrap();
        drop(events);
        feeder.await.unwrap();
        assert_eq!(arrivals.recv().await, None);
    }

    /// An arrival announced after a higher id (an IMAP APPEND committed and
    /// announced in between) is still queued, and each id only once.
    #[tokio::test]
    async fn an_arrival_announced_out_of_order_is_queued() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("mail.db"), StoreOptions::default()).unwrap();
        let before = store.import(messages(1)).unwrap();
        let (events, receiver) = broadcast::channel(16);
        let (queue, mut arrivals) = mpsc::channel(QUEUE);
        let feeder = tokio::spawn(feed(store.clone(), receiver, before[0], queue));

        let ids = store.import(messages(2)).unwrap();
        let mut summaries = store.list(&ListQuery::default()).unwrap();
        summaries.retain(|summary| summary.id > before[0]);
        // Newest first: the higher id is announced before the lower one, then
        // the higher one again.
        let again = summaries[0].clone();
        for summary in summaries.into_iter().chain([again]) {
            events.send(StoreEvent::New(Arc::new(summary))).unwrap();
        }
        drop(events);
        feeder.await.unwrap();
        let mut queued = Vec::new();
        while let Some(id) = arrivals.recv().await {
            queued.push(id);
        }
        assert_eq!(queued, [ids[1], ids[0]], "both, once each, as announced");
    }

    #[test]
    fn the_feeder_forgets_only_the_oldest_ids() {
        let mut queued = Queued::above(MessageId(10));
        assert!(!queued.first_time(MessageId(10)), "from before the start");
        let top = 10 + REMEMBERED as i64;
        for id in (11..=top).rev() {
            assert!(queued.first_time(MessageId(id)));
        }
        assert!(!queued.first_time(MessageId(top)), "queued already");
        assert!(queued.first_time(MessageId(top + 1)));
        assert_eq!(queued.floor, MessageId(11), "the oldest was forgotten");
        assert!(!queued.first_time(MessageId(11)));
    }
}
