//! Tags through the store API: set, add, remove, rename (merging), delete, the
//! name rules, the tags a message gets at delivery, and the events; every case
//! on SQLite and (an interop test: it needs PostgreSQL's server programs,
//! `pg/mod.rs`) on PostgreSQL.
//!
//! The store's calls block (on PostgreSQL they wait on the backend's own
//! runtime), so the cases are plain functions: only deliveries and events are
//! awaited, on a runtime of the case's own.

use std::time::{Duration, SystemTime};

use sokkel_store::tags::{TagError, TagRule, Tagging};
use sokkel_store::{
    Deliver, Envelope, ListQuery, MessageId, NewMessage, Store, StoreError, StoreEvent,
    StoreOptions, TagChange,
};
use tempfile::TempDir;
use tokio::runtime::Runtime;
use tokio::sync::broadcast;

#[path = "pg/mod.rs"]
mod pg;

/// A store opened for a case, with what must live as long as it.
struct Opened {
    store: Store,
    _dir: Option<TempDir>,
}

/// Opens a fresh store with `tagging` on the case's backend.
type Open = fn(Tagging) -> Opened;

fn sqlite(tagging: Tagging) -> Opened {
    let dir = TempDir::new().unwrap();
    let store = Store::open(&dir.path().join("mail.db"), options(tagging)).unwrap();
    Opened {
        store,
        _dir: Some(dir),
    }
}

fn postgres(tagging: Tagging) -> Opened {
    let location: sokkel_store::Location = pg::fresh_database().parse().unwrap();
    let store = Store::open_at(&location, options(tagging)).unwrap();
    Opened { store, _dir: None }
}

fn options(tagging: Tagging) -> StoreOptions {
    StoreOptions {
        tagging,
        ..StoreOptions::default()
    }
}

/// One `#[test]` per case for a backend's opener.
macro_rules! cases {
    ($backend:ident: $($case:ident),* $(,)?) => {
        mod $backend {
            $(
                #[test]
                fn $case() {
                    super::$case(super::$backend);
                }
            )*
        }
    };
    (interop $backend:ident: $($case:ident),* $(,)?) => {
        mod $backend {
            $(
                #[test]
                #[ignore = "interop: needs PostgreSQL; .ci/run installs it and runs cargo test -- --ignored"]
                fn $case() {
                    super::$case(super::$backend);
                }
            )*
        }
    };
}

cases!(sqlite:
    each_tag_counts_its_unread_messages,
    set_add_remove_and_unused_tags_disappear,
    rename_merges_and_delete_removes_everywhere,
    bad_names_are_refused_with_the_reason_and_change_nothing,
    x_tags_and_plus_addresses_tag_at_delivery_unless_disabled,
    rules_tag_matching_messages_after_delivery,
    every_change_is_announced_with_the_tags_now,
    a_change_of_very_many_messages_says_reload,
    a_tags_messages_page_newest_first,
    a_batch_of_deliveries_is_stored_counted_and_tagged_exactly,
);

cases!(interop postgres:
    each_tag_counts_its_unread_messages,
    set_add_remove_and_unused_tags_disappear,
    rename_merges_and_delete_removes_everywhere,
    bad_names_are_refused_with_the_reason_and_change_nothing,
    x_tags_and_plus_addresses_tag_at_delivery_unless_disabled,
    rules_tag_matching_messages_after_delivery,
    every_change_is_announced_with_the_tags_now,
    a_change_of_very_many_messages_says_reload,
    a_tags_messages_page_newest_first,
    a_batch_of_deliveries_is_stored_counted_and_tagged_exactly,
);

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The next event, within 10 s.
fn next_event(events: &mut broadcast::Receiver<StoreEvent>) -> StoreEvent {
    runtime()
        .block_on(async { tokio::time::timeout(Duration::from_secs(10), events.recv()).await })
        .expect("an event within 10 s")
        .unwrap()
}

fn message(rcpt: &str, headers: &str, subject: &str) -> NewMessage {
    NewMessage {
        envelope: Envelope {
            mail_from: "sender@example.com".into(),
            rcpt_to: vec![rcpt.into()],
            helo: "client.example.com".into(),
            client_addr: "127.0.0.1:50000".parse().unwrap(),
            bare_lf: false,
            smtputf8: false,
            tls: None,
            auth_user: None,
        },
        received_at: SystemTime::now(),
        raw: format!(
            "From: sender@example.com\r\nTo: {rcpt}\r\n{headers}Subject: {subject}\r\n\r\nHello.\r\n"
        )
        .into_bytes(),
    }
}

fn tags_of(store: &Store, id: MessageId) -> Vec<String> {
    store.get(id).unwrap().unwrap().summary.tags
}

fn all_tags(store: &Store) -> Vec<(String, u64)> {
    store
        .tags()
        .unwrap()
        .into_iter()
        .map(|tag| (tag.name, tag.counts.total))
        .collect()
}

fn pairs(list: &[(&str, u64)]) -> Vec<(String, u64)> {
    list.iter().map(|(n, c)| (n.to_string(), *c)).collect()
}

fn deliver(store: &Store, count: usize) -> Vec<MessageId> {
    (0..count)
        .map(|i| deliver_one(store, message("a@example.net", "", &format!("message {i}"))))
        .collect()
}

fn deliver_one(store: &Store, message: NewMessage) -> MessageId {
    runtime().block_on(store.deliver(message)).unwrap()
}

fn set_add_remove_and_unused_tags_disappear(open: Open) {
    let Opened { store, .. } = &open(Tagging::default());
    let ids = deliver(store, 3);

    assert_eq!(store.set_tags(&ids[..2], &["Work", "urgent"]).unwrap(), 2);
    assert_eq!(
        tags_of(store, ids[0]),
        ["urgent", "Work"],
        "sorted ignoring case"
    );
    assert_eq!(all_tags(store), pairs(&[("urgent", 2), ("Work", 2)]));

    // Another case is the same tag; the first spelling stays.
    store.add_tags(&[ids[2]], &["WORK"]).unwrap();
    assert_eq!(tags_of(store, ids[2]), ["Work"]);
    assert_eq!(all_tags(store), pairs(&[("urgent", 2), ("Work", 3)]));

    store.remove_tags(&ids, &["urgent"]).unwrap();
    assert_eq!(all_tags(store), pairs(&[("Work", 3)]));

    // Set replaces, an empty set clears; the list of messages shows it too.
    store.set_tags(&[ids[0]], &["other"]).unwrap();
    store.set_tags(&ids[1..], &[] as &[&str]).unwrap();
    assert_eq!(all_tags(store), pairs(&[("other", 1)]));
    let listed = store.list(&ListQuery::default()).unwrap();
    let listed: Vec<_> = listed.iter().map(|s| (s.id, s.tags.clone())).collect();
    assert_eq!(
        listed,
        [
            (ids[2], vec![]),
            (ids[1], vec![]),
            (ids[0], vec!["other".to_string()])
        ]
    );

    // Unknown ids are skipped and not counted.
    assert_eq!(store.set_tags(&[MessageId(999)], &["x"]).unwrap(), 0);
    assert_eq!(all_tags(store), pairs(&[("other", 1)]));

    // Deleting the message leaves no tag in use.
    store.delete(&[ids[0]]).unwrap();
    assert!(all_tags(store).is_empty());
}

fn each_tag_counts_its_unread_messages(open: Open) {
    let Opened { store, .. } = &open(Tagging::default());
    let ids = deliver(store, 4);
    store.set_tags(&ids[..3], &["work"]).unwrap();
    store.set_tags(&ids[3..], &["home"]).unwrap();
    store.set_read(&ids[..2], true).unwrap();
    let counts = |store: &Store| {
        store
            .tags()
            .unwrap()
            .into_iter()
            .map(|tag| (tag.name, tag.counts.total, tag.counts.unread))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        counts(store),
        [("home".to_string(), 1, 1), ("work".to_string(), 3, 1)]
    );
    store.set_read(&ids, true).unwrap();
    assert_eq!(
        counts(store),
        [("home".to_string(), 1, 0), ("work".to_string(), 3, 0)]
    );
}

fn rename_merges_and_delete_removes_everywhere(open: Open) {
    let Opened { store, .. } = &open(Tagging::default());
    let ids = deliver(store, 3);
    store.set_tags(&ids[..2], &["old"]).unwrap();
    store.set_tags(&ids[1..], &["new"]).unwrap();
    store.add_tags(&[ids[0]], &["keep"]).unwrap();

    // ids[0]: old keep; ids[1]: new (set replaced old); ids[2]: new.
    assert_eq!(store.rename_tag("old", "NEW").unwrap(), Some(1));
    assert_eq!(all_tags(store), pairs(&[("keep", 1), ("new", 3)]));
    assert_eq!(tags_of(store, ids[0]), ["keep", "new"]);

    // A rename that changes only case takes the new spelling.
    assert_eq!(store.rename_tag("new", "New").unwrap(), Some(3));
    assert_eq!(all_tags(store), pairs(&[("keep", 1), ("New", 3)]));

    assert_eq!(store.rename_tag("missing", "x").unwrap(), None);
    assert_eq!(store.delete_tag("missing").unwrap(), None);

    assert_eq!(store.delete_tag("new").unwrap(), Some(3));
    assert_eq!(all_tags(store), pairs(&[("keep", 1)]));
    assert!(tags_of(store, ids[1]).is_empty());
}

fn bad_names_are_refused_with_the_reason_and_change_nothing(open: Open) {
    let Opened { store, .. } = &open(Tagging::default());
    let ids = deliver(store, 1);
    store.set_tags(&ids, &["fine"]).unwrap();
    for bad in ["", "   ", "semi;colon", &"x".repeat(101)] {
        let error = store.set_tags(&ids, &["ok", bad]).unwrap_err();
        assert!(matches!(error, StoreError::Tag(_)), "{bad:?}: {error}");
        assert!(!error.to_string().is_empty());
    }
    assert!(matches!(
        store.rename_tag("fine", "a/b"),
        Err(StoreError::Tag(TagError::BadCharacter {
            character: '/',
            ..
        }))
    ));
    let many: Vec<String> = (0..101).map(|i| format!("t{i}")).collect();
    assert!(matches!(
        store.add_tags(&ids, &many),
        Err(StoreError::Tag(TagError::TooMany { count: 101 }))
    ));
    assert_eq!(tags_of(store, ids[0]), ["fine"]);
    // Letters of any script, trimmed, inner spaces collapsed.
    store.set_tags(&ids, &["  Überfällig   heute "]).unwrap();
    assert_eq!(tags_of(store, ids[0]), ["Überfällig heute"]);
    store.add_tags(&ids, &["überfällig heute"]).unwrap();
    assert_eq!(tags_of(store, ids[0]), ["Überfällig heute"]);
}

fn x_tags_and_plus_addresses_tag_at_delivery_unless_disabled(open: Open) {
    let Opened { store, .. } = &open(Tagging::default());
    let mut events = store.subscribe();
    let id = deliver_one(
        store,
        message(
            "user+Signup+beta@example.net",
            "X-Tags: news, urgent!, , news\r\nCc: x+cc@example.org\r\n",
            "hello",
        ),
    );
    assert_eq!(
        tags_of(store, id),
        ["beta", "cc", "news", "Signup", "urgent"]
    );
    // The `new` event already carries them.
    let event = next_event(&mut events);
    let StoreEvent::New(summary) = event else {
        panic!("{event:?}")
    };
    assert_eq!(summary.tags, ["beta", "cc", "news", "Signup", "urgent"]);

    let Opened { store, .. } = &open(Tagging {
        x_tags: false,
        plus_addresses: false,
        rules: Vec::new(),
    });
    let id = deliver_one(
        store,
        message("user+signup@example.net", "X-Tags: news\r\n", "hello"),
    );
    assert!(tags_of(store, id).is_empty());
}

fn rules_tag_matching_messages_after_delivery(open: Open) {
    let rules = vec![
        TagRule::parse("invoices=subject:invoice").unwrap(),
        TagRule::parse("to bob=to:bob@example.net").unwrap(),
    ];
    let Opened { store, .. } = &open(Tagging {
        rules,
        ..Tagging::default()
    });
    let mut events = store.subscribe();
    let invoice = deliver_one(store, message("bob@example.net", "", "Your invoice 42"));
    let other = deliver_one(store, message("alice@example.net", "", "Lunch"));
    // The rules run once the writer has indexed the messages; they say so.
    let mut changed = Vec::new();
    for _ in 0..10 {
        if let StoreEvent::TagsChanged(changes) = next_event(&mut events) {
            changed = changes;
            break;
        }
    }
    assert_eq!(
        changed,
        [TagChange {
            id: invoice,
            tags: vec!["invoices".into(), "to bob".into()]
        }]
    );
    assert_eq!(tags_of(store, invoice), ["invoices", "to bob"]);
    assert!(tags_of(store, other).is_empty());

    // Imports run them too.
    let ids = store
        .import(vec![message("carol@example.net", "", "invoice again")])
        .unwrap();
    assert_eq!(tags_of(store, ids[0]), ["invoices"]);
}

/// Deliveries that arrive together go into one group commit (one statement
/// on PostgreSQL): each id is its own message's, the counts are exact after
/// the batch, the rules and the flags and deletes that follow, and every
/// rule's tag lands on the messages it matches.
fn a_batch_of_deliveries_is_stored_counted_and_tagged_exactly(open: Open) {
    const MESSAGES: usize = 60;
    let rules = vec![TagRule::parse("invoices=subject:invoice").unwrap()];
    let Opened { store, .. } = &open(Tagging {
        rules,
        ..Tagging::default()
    });
    let subject = |n: usize| {
        if n % 3 == 0 {
            format!("invoice {n}")
        } else {
            format!("lunch {n}")
        }
    };
    let ids: Vec<MessageId> = runtime().block_on(async {
        let deliveries = (0..MESSAGES).map(|n| {
            let headers = if n % 5 == 0 { "X-Tags: batch\r\n" } else { "" };
            store.deliver(message("a@example.net", headers, &subject(n)))
        });
        futures_util::future::join_all(deliveries)
            .await
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap()
    });
    for (n, id) in ids.iter().enumerate() {
        let stored = store.get(*id).unwrap().unwrap();
        assert_eq!(stored.summary.subject, subject(n), "message {id}");
    }
    let counts = store.count().unwrap();
    assert_eq!(
        (counts.total, counts.unread),
        (MESSAGES as u64, MESSAGES as u64)
    );
    // The rules tag once the messages are indexed (after the commit on
    // SQLite): at most 10 s.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let expected = pairs(&[("batch", 12), ("invoices", 20)]);
    while all_tags(store) != expected && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(all_tags(store), expected);
    assert_eq!(tags_of(store, ids[15]), ["batch", "invoices"]);

    assert_eq!(store.set_read(&ids[..10], true).unwrap(), 10);
    assert_eq!(
        store.set_read(&ids[..5], true).unwrap(),
        5,
        "read already: no change"
    );
    assert_eq!(store.delete(&ids[5..20]).unwrap(), 15);
    let counts = store.count().unwrap();
    assert_eq!((counts.total, counts.unread), (45, 40));
}

fn every_change_is_announced_with_the_tags_now(open: Open) {
    let Opened { store, .. } = &open(Tagging::default());
    let ids = deliver(store, 2);
    // On SQLite a delivery is announced once its rows are written, after the
    // 250; a read waits for that, so its New events come before this
    // subscription.
    store.count().unwrap();
    let mut events = store.subscribe();
    let mut next = || {
        let event = next_event(&mut events);
        match event {
            StoreEvent::TagsChanged(changes) => changes,
            other => panic!("{other:?}"),
        }
    };
    let change = |id: MessageId, tags: &[&str]| TagChange {
        id,
        tags: tags.iter().map(ToString::to_string).collect(),
    };
    store.set_tags(&ids, &["a"]).unwrap();
    assert_eq!(next(), [change(ids[0], &["a"]), change(ids[1], &["a"])]);
    store.add_tags(&[ids[0]], &["b"]).unwrap();
    assert_eq!(next(), [change(ids[0], &["a", "b"])]);
    store.rename_tag("a", "c").unwrap();
    assert_eq!(
        next(),
        [change(ids[0], &["b", "c"]), change(ids[1], &["c"])]
    );
    store.delete_tag("b").unwrap();
    assert_eq!(next(), [change(ids[0], &["c"])]);
    store.remove_tags(&ids, &["c"]).unwrap();
    assert_eq!(next(), [change(ids[0], &[]), change(ids[1], &[])]);
}

fn a_change_of_very_many_messages_says_reload(open: Open) {
    let Opened { store, .. } = &open(Tagging::default());
    let ids = store
        .import(
            (0..1001)
                .map(|i| message("a@example.net", "", &format!("m{i}")))
                .collect(),
        )
        .unwrap();
    let mut events = store.subscribe();
    store.set_tags(&ids, &["bulk"]).unwrap();
    let event = next_event(&mut events);
    assert_eq!(event, StoreEvent::Changed);
    assert_eq!(all_tags(store), pairs(&[("bulk", 1001)]));
    // 1,000 are still named one by one.
    store.remove_tags(&ids[1..], &["bulk"]).unwrap();
    let event = next_event(&mut events);
    assert!(
        matches!(&event, StoreEvent::TagsChanged(changes) if changes.len() == 1000),
        "not 1,000 changes"
    );
    store.delete_tag("bulk").unwrap();
    let event = next_event(&mut events);
    assert_eq!(
        event,
        StoreEvent::TagsChanged(vec![TagChange {
            id: ids[0],
            tags: Vec::new()
        }])
    );
}

fn a_tags_messages_page_newest_first(open: Open) {
    let Opened { store, .. } = &open(Tagging::default());
    let ids = deliver(store, 6);
    let tagged = [ids[0], ids[2], ids[3], ids[5]];
    store.set_tags(&tagged, &["Page"]).unwrap();
    let page = |limit, offset, before| {
        store
            .list_tagged(
                "page",
                &ListQuery {
                    limit,
                    offset,
                    before,
                },
            )
            .unwrap()
            .iter()
            .map(|summary| summary.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(page(2, 0, None), [ids[5], ids[3]]);
    assert_eq!(page(2, 0, Some(ids[3])), [ids[2], ids[0]]);
    assert_eq!(page(10, 1, Some(ids[5])), [ids[2], ids[0]]);
    assert!(
        store
            .list_tagged("nothing", &ListQuery::default())
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        store.list_tagged("a;b", &ListQuery::default()),
        Err(StoreError::Tag(_))
    ));
}
