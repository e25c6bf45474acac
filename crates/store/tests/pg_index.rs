//! The cluster's search indexer on PostgreSQL: a node indexes what it
//! delivers in the delivery's transaction; what an older node left unindexed
//! (it queued deliveries in `unindexed` and died before indexing them) is
//! taken up by the node that holds the indexer's advisory lock, and the lock
//! moves to another node when its holder goes.
//!
//! Interop tests: they need PostgreSQL's server programs (`pg/mod.rs`).

use std::time::{Duration, Instant, SystemTime};

use sokkel_store::{Envelope, MessageId, NewMessage, SearchQuery, Store, StoreOptions};

#[path = "pg/mod.rs"]
mod pg;

fn message(subject: &str) -> NewMessage {
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
        raw: format!("From: rick@example.com\r\nSubject: {subject}\r\n\r\nHello.\r\n").into_bytes(),
    }
}

/// Make message `id` look as a node leaves it that died after its commit and
/// before indexing it: no index entry, queued a minute ago.
fn leave_unindexed(database: &str, id: MessageId) {
    pg::cluster().psql(
        database,
        &format!(
            "UPDATE messages SET search = NULL WHERE id = {id};
             INSERT INTO unindexed (id, queued_at) VALUES ({id}, now() - interval '1 minute')",
            id = id.0
        ),
    );
}

/// Whether `store` finds message `id` by `query` once it is indexed, asked
/// for at most 30 s.
fn found_once_indexed(store: &Store, id: MessageId, query: &str) -> bool {
    let query = SearchQuery::parse(query).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match store.matches(id, &query).unwrap() {
            Some(found) => return found,
            None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            None => panic!("message {id} was never indexed"),
        }
    }
}

#[test]
#[ignore = "interop: needs PostgreSQL; .ci/run installs it and runs cargo test -- --ignored"]
fn what_a_dead_node_left_unindexed_is_indexed_by_the_next_holder_of_the_lock() {
    let url = pg::fresh_database();
    let database = url.rsplit('/').next().unwrap().to_string();
    let location: sokkel_store::Location = url.parse().unwrap();
    let first = Store::open_at(&location, StoreOptions::default()).unwrap();
    let second = Store::open_at(&location, StoreOptions::default()).unwrap();
    let ids = first
        .import(vec![message("quarterly invoice"), message("lunch")])
        .unwrap();

    // Whichever node holds the lock indexes it.
    leave_unindexed(&database, ids[0]);
    assert!(found_once_indexed(&second, ids[0], "subject:invoice"));

    // The first node (which took the lock as it opened) goes; the second
    // takes the lock over and indexes what is left from then on.
    drop(first);
    leave_unindexed(&database, ids[1]);
    assert!(found_once_indexed(&second, ids[1], "subject:lunch"));
    assert!(!found_once_indexed(&second, ids[1], "subject:invoice"));
    let unindexed = pg::cluster().psql(&database, "SELECT count(*) FROM unindexed");
    assert_eq!(unindexed, "0");
}

#[test]
#[ignore = "interop: needs PostgreSQL; .ci/run installs it and runs cargo test -- --ignored"]
fn a_delivery_is_searchable_and_tagged_by_the_rules_once_it_returns() {
    use sokkel_store::Deliver;
    use sokkel_store::tags::{TagRule, Tagging};
    let url = pg::fresh_database();
    let database = url.rsplit('/').next().unwrap().to_string();
    let location: sokkel_store::Location = url.parse().unwrap();
    let options = StoreOptions {
        tagging: Tagging {
            rules: vec![TagRule::parse("invoices=subject:invoice").unwrap()],
            ..Tagging::default()
        },
        ..StoreOptions::default()
    };
    let store = Store::open_at(&location, options).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (invoice, lunch) = runtime.block_on(async {
        let invoice = store.deliver(message("quarterly invoice"));
        let lunch = store.deliver(message("lunch"));
        let (invoice, lunch) = futures_util::future::join(invoice, lunch).await;
        (invoice.unwrap(), lunch.unwrap())
    });
    // Indexed and tagged in the delivery's own transaction: nothing waits
    // for an indexer, and nothing is queued for one.
    let query = SearchQuery::parse("subject:invoice").unwrap();
    assert_eq!(store.matches(invoice, &query).unwrap(), Some(true));
    assert_eq!(store.matches(lunch, &query).unwrap(), Some(false));
    assert_eq!(
        store.get(invoice).unwrap().unwrap().summary.tags,
        ["invoices"]
    );
    assert!(store.get(lunch).unwrap().unwrap().summary.tags.is_empty());
    let unindexed = pg::cluster().psql(&database, "SELECT count(*) FROM unindexed");
    assert_eq!(unindexed, "0");
}
