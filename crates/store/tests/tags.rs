//! Tags through the store API: set, add, remove, rename (merging), delete, the
//! name rules, the tags a message gets at delivery, and the events.

use std::time::{Duration, SystemTime};

use sokkel_store::tags::{TagError, TagRule, Tagging};
use sokkel_store::{
    Deliver, Envelope, ListQuery, MessageId, NewMessage, Store, StoreError, StoreEvent,
    StoreOptions, TagChange,
};
use tempfile::TempDir;

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

fn open_with(dir: &TempDir, tagging: Tagging) -> Store {
    Store::open(
        &dir.path().join("mail.db"),
        StoreOptions {
            tagging,
            ..StoreOptions::default()
        },
    )
    .unwrap()
}

fn tags_of(store: &Store, id: MessageId) -> Vec<String> {
    store.get(id).unwrap().unwrap().summary.tags
}

fn all_tags(store: &Store) -> Vec<(String, u64)> {
    store.tags().unwrap()
}

fn pairs(list: &[(&str, u64)]) -> Vec<(String, u64)> {
    list.iter().map(|(n, c)| (n.to_string(), *c)).collect()
}

async fn deliver(store: &Store, count: usize) -> Vec<MessageId> {
    let mut ids = Vec::new();
    for i in 0..count {
        let id = store
            .deliver(message("a@example.net", "", &format!("message {i}")))
            .await
            .unwrap();
        ids.push(id);
    }
    ids
}

#[tokio::test]
async fn set_add_remove_and_unused_tags_disappear() {
    let dir = TempDir::new().unwrap();
    let store = open_with(&dir, Tagging::default());
    let ids = deliver(&store, 3).await;

    assert_eq!(store.set_tags(&ids[..2], &["Work", "urgent"]).unwrap(), 2);
    assert_eq!(
        tags_of(&store, ids[0]),
        ["urgent", "Work"],
        "sorted ignoring case"
    );
    assert_eq!(all_tags(&store), pairs(&[("urgent", 2), ("Work", 2)]));

    // Another case is the same tag; the first spelling stays.
    store.add_tags(&[ids[2]], &["WORK"]).unwrap();
    assert_eq!(tags_of(&store, ids[2]), ["Work"]);
    assert_eq!(all_tags(&store), pairs(&[("urgent", 2), ("Work", 3)]));

    store.remove_tags(&ids, &["urgent"]).unwrap();
    assert_eq!(all_tags(&store), pairs(&[("Work", 3)]));

    // Set replaces, an empty set clears; the list of messages shows it too.
    store.set_tags(&[ids[0]], &["other"]).unwrap();
    store.set_tags(&ids[1..], &[] as &[&str]).unwrap();
    assert_eq!(all_tags(&store), pairs(&[("other", 1)]));
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
    assert_eq!(all_tags(&store), pairs(&[("other", 1)]));

    // Deleting the message leaves no tag in use.
    store.delete(&[ids[0]]).unwrap();
    assert!(all_tags(&store).is_empty());
}

#[tokio::test]
async fn rename_merges_and_delete_removes_everywhere() {
    let dir = TempDir::new().unwrap();
    let store = open_with(&dir, Tagging::default());
    let ids = deliver(&store, 3).await;
    store.set_tags(&ids[..2], &["old"]).unwrap();
    store.set_tags(&ids[1..], &["new"]).unwrap();
    store.add_tags(&[ids[0]], &["keep"]).unwrap();

    // ids[0]: old keep; ids[1]: new (set replaced old); ids[2]: new.
    assert_eq!(store.rename_tag("old", "NEW").unwrap(), Some(1));
    assert_eq!(all_tags(&store), pairs(&[("keep", 1), ("new", 3)]));
    assert_eq!(tags_of(&store, ids[0]), ["keep", "new"]);

    // A rename that changes only case takes the new spelling.
    assert_eq!(store.rename_tag("new", "New").unwrap(), Some(3));
    assert_eq!(all_tags(&store), pairs(&[("keep", 1), ("New", 3)]));

    assert_eq!(store.rename_tag("missing", "x").unwrap(), None);
    assert_eq!(store.delete_tag("missing").unwrap(), None);

    assert_eq!(store.delete_tag("new").unwrap(), Some(3));
    assert_eq!(all_tags(&store), pairs(&[("keep", 1)]));
    assert!(tags_of(&store, ids[1]).is_empty());
}

#[tokio::test]
async fn bad_names_are_refused_with_the_reason_and_change_nothing() {
    let dir = TempDir::new().unwrap();
    let store = open_with(&dir, Tagging::default());
    let ids = deliver(&store, 1).await;
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
    assert_eq!(tags_of(&store, ids[0]), ["fine"]);
    // Letters of any script, trimmed, inner spaces collapsed.
    store.set_tags(&ids, &["  Überfällig   heute "]).unwrap();
    assert_eq!(tags_of(&store, ids[0]), ["Überfällig heute"]);
    store.add_tags(&ids, &["überfällig heute"]).unwrap();
    assert_eq!(tags_of(&store, ids[0]), ["Überfällig heute"]);
}

#[tokio::test]
async fn x_tags_and_plus_addresses_tag_at_delivery_unless_disabled() {
    let dir = TempDir::new().unwrap();
    let store = open_with(&dir, Tagging::default());
    let mut events = store.subscribe();
    let id = store
        .deliver(message(
            "user+Signup+beta@example.net",
            "X-Tags: news, urgent!, , news\r\nCc: x+cc@example.org\r\n",
            "hello",
        ))
        .await
        .unwrap();
    assert_eq!(
        tags_of(&store, id),
        ["beta", "cc", "news", "Signup", "urgent"]
    );
    // The `new` event already carries them.
    let event = tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .unwrap()
        .unwrap();
    let StoreEvent::New(summary) = event else {
        panic!("{event:?}")
    };
    assert_eq!(summary.tags, ["beta", "cc", "news", "Signup", "urgent"]);
    drop(store);

    let dir = TempDir::new().unwrap();
    let store = open_with(
        &dir,
        Tagging {
            x_tags: false,
            plus_addresses: false,
            rules: Vec::new(),
        },
    );
    let id = store
        .deliver(message(
            "user+signup@example.net",
            "X-Tags: news\r\n",
            "hello",
        ))
        .await
        .unwrap();
    assert!(tags_of(&store, id).is_empty());
}

#[tokio::test]
async fn rules_tag_matching_messages_after_delivery() {
    let dir = TempDir::new().unwrap();
    let rules = vec![
        TagRule::parse("invoices=subject:invoice").unwrap(),
        TagRule::parse("to bob=to:bob@example.net").unwrap(),
    ];
    let store = open_with(
        &dir,
        Tagging {
            rules,
            ..Tagging::default()
        },
    );
    let mut events = store.subscribe();
    let invoice = store
        .deliver(message("bob@example.net", "", "Your invoice 42"))
        .await
        .unwrap();
    let other = store
        .deliver(message("alice@example.net", "", "Lunch"))
        .await
        .unwrap();
    // The rules run once the writer has indexed the messages; they say so.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut changed = Vec::new();
    while changed.is_empty() {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("a TagsChanged event within 10 s")
            .unwrap();
        if let StoreEvent::TagsChanged(changes) = event {
            changed = changes;
        }
    }
    assert_eq!(
        changed,
        [TagChange {
            id: invoice,
            tags: vec!["invoices".into(), "to bob".into()]
        }]
    );
    assert_eq!(tags_of(&store, invoice), ["invoices", "to bob"]);
    assert!(tags_of(&store, other).is_empty());

    // Imports run them too.
    let ids = store
        .import(vec![message("carol@example.net", "", "invoice again")])
        .unwrap();
    assert_eq!(tags_of(&store, ids[0]), ["invoices"]);
}

#[tokio::test]
async fn every_change_is_announced_with_the_tags_now() {
    let dir = TempDir::new().unwrap();
    let store = open_with(&dir, Tagging::default());
    let ids = deliver(&store, 2).await;
    let mut events = store.subscribe();
    let mut next = async || {
        let event = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .unwrap()
            .unwrap();
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
    assert_eq!(
        next().await,
        [change(ids[0], &["a"]), change(ids[1], &["a"])]
    );
    store.add_tags(&[ids[0]], &["b"]).unwrap();
    assert_eq!(next().await, [change(ids[0], &["a", "b"])]);
    store.rename_tag("a", "c").unwrap();
    assert_eq!(
        next().await,
        [change(ids[0], &["b", "c"]), change(ids[1], &["c"])]
    );
    store.delete_tag("b").unwrap();
    assert_eq!(next().await, [change(ids[0], &["c"])]);
    store.remove_tags(&ids, &["c"]).unwrap();
    assert_eq!(next().await, [change(ids[0], &[]), change(ids[1], &[])]);
}

#[tokio::test]
async fn a_change_of_very_many_messages_says_reload() {
    let dir = TempDir::new().unwrap();
    let store = open_with(&dir, Tagging::default());
    let ids = store
        .import(
            (0..1001)
                .map(|i| message("a@example.net", "", &format!("m{i}")))
                .collect(),
        )
        .unwrap();
    let mut events = store.subscribe();
    store.set_tags(&ids, &["bulk"]).unwrap();
    let event = tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event, StoreEvent::Changed);
    assert_eq!(all_tags(&store), pairs(&[("bulk", 1001)]));
    // 1,000 are still named one by one.
    store.remove_tags(&ids[1..], &["bulk"]).unwrap();
    let event = tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(&event, StoreEvent::TagsChanged(changes) if changes.len() == 1000),
        "not 1,000 changes"
    );
    store.delete_tag("bulk").unwrap();
    let event = tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        event,
        StoreEvent::TagsChanged(vec![TagChange {
            id: ids[0],
            tags: Vec::new()
        }])
    );
}

#[tokio::test]
async fn a_tags_messages_page_newest_first() {
    let dir = TempDir::new().unwrap();
    let store = open_with(&dir, Tagging::default());
    let ids = deliver(&store, 6).await;
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
