//! Several nodes on one PostgreSQL database: what one node changes, the
//! others announce as if it had happened locally; the database going away
//! and coming back is an error for a while, never a lost or false success;
//! deliveries from many sessions share their commits.
//!
//! Two `Store` handles opened on one database are two nodes: each has its
//! own writer, pool and listener, and skips only its own notices.
//!
//! One test restarts the server, which every test of this binary shares:
//! they run one at a time ([`SERIAL`]).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use sokkel_store::{
    Deliver, DeliverError, Envelope, FlagChange, ListQuery, Location, MessageId, NewMessage, Store,
    StoreError, StoreEvent, StoreOptions, TagChange,
};
use tokio::sync::broadcast;

#[path = "pg/mod.rs"]
mod pg;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A fresh database and its name.
fn database() -> (Location, String) {
    let url = pg::fresh_database();
    let name = url.rsplit('/').next().unwrap().to_string();
    (url.parse().unwrap(), name)
}

fn node(location: &Location) -> Store {
    Store::open_at(location, StoreOptions::default()).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn message(n: usize) -> NewMessage {
    let raw = format!(
        "From: rick@example.com\r\nTo: morty@example.com\r\nSubject: number {n}\r\n\r\nbody {n}\r\n"
    );
    NewMessage {
        envelope: Envelope {
            mail_from: "rick@example.com".into(),
            rcpt_to: vec!["morty@example.com".into()],
            helo: "client.example".into(),
            client_addr: "127.0.0.1:40000".parse().unwrap(),
            bare_lf: false,
            smtputf8: false,
            tls: None,
            auth_user: None,
        },
        received_at: SystemTime::now(),
        raw: raw.into_bytes(),
    }
}

/// Wait until `count` listeners are listening on database `db`, so that no
/// notice is sent before one of them hears it.
fn wait_for_listeners(db: &str, count: usize) {
    let sql = "SELECT count(*) FROM pg_stat_activity
               WHERE datname = current_database() AND query = 'LISTEN sokkel' AND state = 'idle'";
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found: usize = pg::cluster().psql(db, sql).trim().parse().unwrap();
        if found >= count {
            return;
        }
        assert!(Instant::now() < deadline, "{found} of {count} listeners");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The next event within `timeout`, or `None`.
fn event_within(
    runtime: &tokio::runtime::Runtime,
    events: &mut broadcast::Receiver<StoreEvent>,
    timeout: Duration,
) -> Option<StoreEvent> {
    runtime
        .block_on(async { tokio::time::timeout(timeout, events.recv()).await })
        .ok()
        .map(|event| event.unwrap())
}

fn next_event(
    runtime: &tokio::runtime::Runtime,
    events: &mut broadcast::Receiver<StoreEvent>,
) -> StoreEvent {
    event_within(runtime, events, Duration::from_secs(5)).expect("no event within 5 s")
}

/// The next event of the node that made a change (`here`) and of the other
/// node (`there`): the same.
fn both_hear(
    runtime: &tokio::runtime::Runtime,
    here: &mut broadcast::Receiver<StoreEvent>,
    there: &mut broadcast::Receiver<StoreEvent>,
) -> StoreEvent {
    let local = next_event(runtime, here);
    let remote = next_event(runtime, there);
    // An arrival is `New` where it arrived and `NewElsewhere` on the other
    // nodes, so that only one node relays it or posts its webhook.
    let as_here = match &remote {
        StoreEvent::NewElsewhere(summary) => StoreEvent::New(Arc::clone(summary)),
        StoreEvent::New(_) => panic!("another node's arrival announced as this node's own"),
        other => other.clone(),
    };
    assert_eq!(
        local, as_here,
        "the other node announces what this one does"
    );
    local
}

/// A delivery, a flag change, a star, a tag change and a delete made through
/// one node reach the other node's subscribers as the same events the first
/// node announces to its own, in the same order, and once each; a node that
/// goes leaves no connection behind.
#[test]
#[ignore = "interop: needs PostgreSQL; .ci/run installs it and runs cargo test -- --ignored"]
fn every_node_announces_every_nodes_changes() {
    let _serial = serial();
    let (location, db) = database();
    let (one, two) = (node(&location), node(&location));
    let mut here = one.subscribe();
    let mut there = two.subscribe();
    wait_for_listeners(&db, 2);
    let runtime = runtime();

    // One change at a time: the other node reads what a notice names when
    // it hears it, so a summary or tags read after a later change show that
    // change already (whose own event follows).
    let id = runtime.block_on(one.deliver(message(1))).unwrap();
    match both_hear(&runtime, &mut here, &mut there) {
        StoreEvent::New(summary) => {
            assert_eq!(summary.id, id);
            assert_eq!(summary.subject, "number 1");
        }
        other => panic!("expected New, got {other:?}"),
    }
    let star = FlagChange {
        read: None,
        flagged: Some(true),
    };
    let changes: [(&dyn Fn(), StoreEvent); 4] = [
        (
            &|| assert_eq!(one.set_read(&[id], true).unwrap(), 1),
            StoreEvent::ReadChanged(vec![id], true),
        ),
        (
            &|| assert_eq!(one.set_flags(&[id], star).unwrap(), 1),
            StoreEvent::FlaggedChanged(vec![id], true),
        ),
        (
            &|| assert_eq!(one.add_tags(&[id], &["urgent"]).unwrap(), 1),
            StoreEvent::TagsChanged(vec![TagChange {
                id,
                tags: vec!["urgent".into()],
            }]),
        ),
        (
            &|| assert_eq!(one.delete(&[id]).unwrap(), 1),
            StoreEvent::Deleted(vec![id]),
        ),
    ];
    for (change, expected) in changes {
        change();
        assert_eq!(both_hear(&runtime, &mut here, &mut there), expected);
    }
    // Nothing twice: neither node hears its own notices back.
    let quiet = Duration::from_millis(500);
    assert_eq!(event_within(&runtime, &mut here, quiet), None);
    assert_eq!(event_within(&runtime, &mut there, quiet), None);

    // Dropping the handles closes their listeners and pools.
    drop((one, two));
    let sessions = "SELECT count(*) FROM pg_stat_activity
                    WHERE datname = current_database() AND pid <> pg_backend_pid()";
    let deadline = Instant::now() + Duration::from_secs(10);
    while pg::cluster().psql(&db, sessions).trim() != "0" {
        assert!(Instant::now() < deadline, "connections left open");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// While the server is down a delivery fails (SMTP 451, never a 250) and so does a list (HTTP 503), within the connect timeout;
/// once it is back both work again on the same handles, and the listener,
/// reconnected, says `Changed` and hears the other node again.
#[test]
#[ignore = "interop: needs PostgreSQL; .ci/run installs it and runs cargo test -- --ignored"]
fn nodes_ride_out_a_database_restart() {
    let _serial = serial();
    let (location, db) = database();
    let (one, two) = (node(&location), node(&location));
    let mut there = two.subscribe();
    wait_for_listeners(&db, 1);
    let runtime = runtime();
    let before = runtime.block_on(one.deliver(message(1))).unwrap();
    assert!(matches!(
        next_event(&runtime, &mut there),
        StoreEvent::NewElsewhere(_)
    ));

    pg::cluster().stop_server(true);
    let started = Instant::now();
    let delivered = runtime.block_on(one.deliver(message(2)));
    assert!(
        matches!(delivered, Err(DeliverError::Unavailable(_))),
        "{delivered:?}"
    );
    let listed = two.list(&ListQuery::default());
    assert!(
        matches!(listed, Err(StoreError::Unavailable(_))),
        "{listed:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "waited {:?} for a database that is down",
        started.elapsed()
    );
    eprintln!(
        "down: a delivery and a list failed in {:?}",
        started.elapsed()
    );
    pg::cluster().start_server();

    // The first use of a connection that died with the server may fail; the
    // next one is a new connection.
    let deadline = Instant::now() + Duration::from_secs(20);
    let after = loop {
        match runtime.block_on(one.deliver(message(3))) {
            Ok(id) => break id,
            Err(DeliverError::Unavailable(error)) if Instant::now() < deadline => {
                eprintln!("not yet: {error}");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(error) => panic!("delivery after the restart: {error}"),
        }
    };
    assert!(after > before);
    // The listener comes back within its longest backoff and says that it
    // may have missed something; then it hears the other node again.
    let mut saw_changed = false;
    let mut saw_new = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(saw_changed && saw_new) && Instant::now() < deadline {
        match event_within(&runtime, &mut there, Duration::from_secs(1)) {
            Some(StoreEvent::Changed) => saw_changed = true,
            Some(StoreEvent::NewElsewhere(summary)) if saw_changed && summary.id > after => {
                saw_new = true;
            }
            Some(_) => {}
            None if saw_changed && !saw_new => {
                runtime.block_on(one.deliver(message(4))).unwrap();
            }
            None => {}
        }
    }
    assert!(saw_changed, "no Changed after the listener reconnected");
    assert!(saw_new, "the listener hears nothing after reconnecting");
    let listed: Vec<MessageId> = two
        .list(&ListQuery::default())
        .unwrap()
        .iter()
        .map(|summary| summary.id)
        .collect();
    assert!(
        listed.contains(&before) && listed.contains(&after),
        "{listed:?}"
    );
}

/// 10,000 deliveries from 50 sessions at once are all stored, once each, in
/// far fewer transactions than messages: each commit carries what queued
/// while the one before it ran.
#[test]
#[ignore = "interop: needs PostgreSQL; .ci/run installs it and runs cargo test -- --ignored"]
fn concurrent_deliveries_share_commits() {
    const SESSIONS: usize = 50;
    const EACH: usize = 200;
    let _serial = serial();
    let (location, _) = database();
    let store = node(&location);
    let runtime = runtime();
    let ids = runtime.block_on(async {
        let sessions: Vec<_> = (0..SESSIONS)
            .map(|session| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut ids = Vec::with_capacity(EACH);
                    for n in 0..EACH {
                        ids.push(store.deliver(message(session * EACH + n)).await.unwrap());
                    }
                    ids
                })
            })
            .collect();
        let mut ids = BTreeSet::new();
        for session in sessions {
            for id in session.await.unwrap() {
                assert!(ids.insert(id), "id {id} given twice");
            }
        }
        ids
    });
    assert_eq!(ids.len(), SESSIONS * EACH);
    assert_eq!(store.count().unwrap().total, (SESSIONS * EACH) as u64);
    let stats = store.writer_stats();
    eprintln!("{stats:?}");
    assert_eq!(stats.messages, (SESSIONS * EACH) as u64);
    assert_eq!(stats.failed_transactions, 0);
    assert!(
        stats.transactions * 5 <= stats.messages,
        "{} transactions for {} messages",
        stats.transactions,
        stats.messages
    );
}

/// The writer's connection killed again and again while sessions deliver:
/// some deliveries fail (SMTP 451), and every one that succeeded is stored.
/// A commit whose answer is lost may or may not have stored its batch; its
/// waiters get an error all the same, so a 250 always means stored.
#[test]
#[ignore = "interop: needs PostgreSQL; .ci/run installs it and runs cargo test -- --ignored"]
fn a_delivery_that_succeeded_survives_a_killed_connection() {
    const SESSIONS: usize = 20;
    let _serial = serial();
    let (location, db) = database();
    let store = node(&location);
    let runtime = runtime();
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicUsize::new(0));
    let sessions: Vec<_> = (0..SESSIONS)
        .map(|session| {
            let (store, stop, failed) = (store.clone(), Arc::clone(&stop), Arc::clone(&failed));
            runtime.spawn(async move {
                let mut stored = Vec::new();
                for n in 0..10_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    match store.deliver(message(session * 10_000 + n)).await {
                        Ok(id) => stored.push(id),
                        Err(DeliverError::Unavailable(_)) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(error) => panic!("{error}"),
                    }
                }
                stored
            })
        })
        .collect();
    // Kill whatever backend is in the middle of something (the writer's, in
    // a transaction) until a delivery has failed.
    let deadline = Instant::now() + Duration::from_secs(30);
    while failed.load(Ordering::Relaxed) == 0 && Instant::now() < deadline {
        pg::cluster().psql(
            &db,
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()
               AND state IN ('active', 'idle in transaction')",
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    let stored: Vec<MessageId> = runtime.block_on(async {
        let mut stored = Vec::new();
        for session in sessions {
            stored.extend(session.await.unwrap());
        }
        stored
    });
    assert!(failed.load(Ordering::Relaxed) > 0, "no delivery failed");
    let deadline = Instant::now() + Duration::from_secs(10);
    let listed: BTreeSet<MessageId> = loop {
        match store.list(&ListQuery {
            limit: 1_000_000,
            ..ListQuery::default()
        }) {
            Ok(listed) => break listed.iter().map(|summary| summary.id).collect(),
            Err(StoreError::Unavailable(_)) if Instant::now() < deadline => {}
            Err(error) => panic!("{error}"),
        }
    };
    let lost: Vec<_> = stored.iter().filter(|id| !listed.contains(id)).collect();
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
    eprintln!(
        "{} stored, {} failed, {:?}",
        stored.len(),
        failed.load(Ordering::Relaxed),
        store.writer_stats()
    );
}

/// `max_size` holds every node to the raw bytes the cluster stores: a node
/// refuses a message that would pass it, with [`DeliverError::Full`] (SMTP
/// 452), and takes it again once another node deletes.
#[test]
#[ignore = "interop: needs PostgreSQL; .ci/run installs it and runs cargo test -- --ignored"]
fn the_size_limit_holds_every_node_and_deletes_make_room() {
    let _serial = serial();
    let (location, _) = database();
    let options = StoreOptions {
        max_size: Some(1_000),
        ..StoreOptions::default()
    };
    let one = Store::open_at(&location, options.clone()).unwrap();
    let two = Store::open_at(&location, options).unwrap();
    let size = message(0).raw.len();
    let fits = 1_000 / size;
    let rt = runtime();
    rt.block_on(async {
        for n in 0..fits {
            let node = if n % 2 == 0 { &one } else { &two };
            node.deliver(message(n)).await.unwrap();
        }
        for node in [&one, &two] {
            assert!(matches!(
                node.deliver(message(99)).await,
                Err(DeliverError::Full)
            ));
        }
    });
    assert_eq!(one.count().unwrap().total, fits as u64);
    let oldest = *one
        .list(&ListQuery::default())
        .unwrap()
        .last()
        .map(|s| &s.id)
        .unwrap();
    assert_eq!(two.delete(&[oldest]).unwrap(), 1);
    rt.block_on(async { one.deliver(message(100)).await.unwrap() });
    assert_eq!(two.count().unwrap().total, fits as u64);
}
