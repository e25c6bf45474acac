//! The store against real SQLite files in temporary directories.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sokkel_store::{
    Address, Deliver, DeliverError, Envelope, ListQuery, MessageCounts, MessageId, NewMessage,
    Store, StoreError, StoreEvent, StoreOptions, TlsInfo,
};
use tempfile::TempDir;

fn envelope() -> Envelope {
    Envelope {
        mail_from: "sender@example.com".into(),
        rcpt_to: vec!["a@example.net".into(), "b@example.net".into()],
        helo: "client.example.com".into(),
        client_addr: "127.0.0.1:50000".parse().unwrap(),
        bare_lf: false,
        smtputf8: false,
        tls: None,
        auth_user: None,
    }
}

fn message_with(raw: impl Into<Vec<u8>>) -> NewMessage {
    NewMessage {
        envelope: envelope(),
        received_at: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
        raw: raw.into(),
    }
}

fn message(subject: &str) -> NewMessage {
    message_with(format!(
        "From: Sender <sender@example.com>\r\nTo: a@example.net\r\nSubject: {subject}\r\n\r\nBody of {subject}.\r\n"
    ))
}

fn db_path(dir: &TempDir) -> PathBuf {
    dir.path().join("nested/dir/mail.db")
}

fn open(path: &Path) -> Store {
    Store::open(path, StoreOptions::default()).unwrap()
}

fn subjects(store: &Store, limit: usize, offset: usize) -> Vec<String> {
    store
        .list(&ListQuery {
            limit,
            offset,
            before: None,
        })
        .unwrap()
        .into_iter()
        .map(|summary| summary.subject)
        .collect()
}

/// `PRAGMA integrity_check` and `foreign_key_check` through a connection of our own.
fn assert_consistent(path: &Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    let orphans: i64 = conn
        .query_row(
            "SELECT (SELECT count(*) FROM raw WHERE id NOT IN (SELECT id FROM messages))
                  + (SELECT count(*) FROM messages WHERE id NOT IN (SELECT id FROM raw))",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(
        orphans, 0,
        "every message has its bytes and no bytes lack a message"
    );
}

#[tokio::test]
async fn deliver_then_get_returns_exact_bytes_and_envelope() {
    let dir = TempDir::new().unwrap();
    let store = open(&db_path(&dir));
    let raw = b"From: =?UTF-8?Q?J=C3=B8rgen?= <j@example.com>\r\n\
        To: A <a@example.net>, b@example.net\r\n\
        Cc: c@example.net\r\n\
        Reply-To: replies@example.com\r\n\
        Subject: =?UTF-8?B?SGVsbG8g8J+Riw==?=\r\n\
        Date: Tue, 14 Nov 2023 22:13:20 +0100\r\n\
        Message-ID: <abc@example.com>\r\n\
        \r\n\
        Hello\r\n   there,\r\n\r\nfriend.\r\n"
        .to_vec();
    let envelope = Envelope {
        mail_from: String::new(),
        rcpt_to: vec!["ø@example.net".into()],
        helo: "[::1]".into(),
        client_addr: "[::1]:2525".parse().unwrap(),
        bare_lf: true,
        smtputf8: true,
        tls: Some(TlsInfo {
            version: "TLSv1.3".into(),
            cipher: "TLS13_AES_256_GCM_SHA384".into(),
        }),
        auth_user: Some("user".into()),
    };
    let received_at = SystemTime::now();
    let id = store
        .deliver(NewMessage {
            envelope: envelope.clone(),
            received_at,
            raw: raw.clone(),
        })
        .await
        .unwrap();

    let stored = store.get(id).unwrap().expect("the message is there");
    assert_eq!(stored.raw, raw);
    assert_eq!(stored.envelope, envelope);
    assert_eq!(store.raw(id).unwrap(), Some(raw.clone()));

    let summary = stored.summary;
    assert_eq!(summary.id, id);
    let drift = received_at
        .duration_since(summary.received_at)
        .expect("stored with millisecond precision, never later");
    assert!(drift < Duration::from_millis(1));
    assert_eq!(summary.mail_from, "");
    assert_eq!(summary.rcpt_to, vec!["ø@example.net".to_string()]);
    assert_eq!(
        summary.from,
        Some(Address {
            name: "Jørgen".into(),
            address: "j@example.com".into()
        })
    );
    assert_eq!(
        summary.to,
        vec![
            Address {
                name: "A".into(),
                address: "a@example.net".into()
            },
            Address {
                name: String::new(),
                address: "b@example.net".into()
            },
        ]
    );
    assert_eq!(summary.cc.len(), 1);
    assert_eq!(summary.reply_to[0].address, "replies@example.com");
    assert_eq!(summary.subject, "Hello 👋");
    assert_eq!(summary.date.as_deref(), Some("2023-11-14T22:13:20+01:00"));
    assert_eq!(summary.message_id.as_deref(), Some("abc@example.com"));
    assert_eq!(summary.size, raw.len() as u64);
    assert_eq!(summary.attachments, 0);
    assert_eq!(summary.snippet, "Hello there, friend.");
    assert!(!summary.read);
    assert!(summary.bare_lf);
    assert!(summary.parsed);

    assert_eq!(store.list(&ListQuery::default()).unwrap(), vec![summary]);
    assert_eq!(store.get(MessageId(id.0 + 1)).unwrap(), None);
    assert_eq!(store.raw(MessageId(id.0 + 1)).unwrap(), None);
}

#[tokio::test]
async fn list_is_newest_first_with_limit_and_offset() {
    let dir = TempDir::new().unwrap();
    let store = open(&db_path(&dir));
    assert_eq!(store.latest().unwrap(), None);
    assert!(store.list(&ListQuery::default()).unwrap().is_empty());

    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(store.deliver(message(&format!("m{n}"))).await.unwrap());
    }
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]));
    assert_eq!(store.latest().unwrap(), Some(ids[4]));
    assert_eq!(subjects(&store, 50, 0), ["m4", "m3", "m2", "m1", "m0"]);
    assert_eq!(subjects(&store, 2, 0), ["m4", "m3"]);
    assert_eq!(subjects(&store, 2, 2), ["m2", "m1"]);
    assert_eq!(subjects(&store, 2, 4), ["m0"]);
    assert!(subjects(&store, 2, 5).is_empty());
    assert_eq!(
        store.count().unwrap(),
        MessageCounts {
            total: 5,
            unread: 5
        }
    );
}

#[tokio::test]
async fn delete_delete_all_and_set_read() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    let store = open(&path);
    let mut ids = Vec::new();
    for n in 0..4 {
        ids.push(store.deliver(message(&format!("m{n}"))).await.unwrap());
    }

    assert_eq!(store.set_read(&[ids[0], ids[1], ids[1]], true).unwrap(), 2);
    assert_eq!(
        store.count().unwrap(),
        MessageCounts {
            total: 4,
            unread: 2
        }
    );
    assert!(store.get(ids[0]).unwrap().unwrap().summary.read);
    assert_eq!(store.set_read(&[ids[0]], false).unwrap(), 1);
    assert_eq!(store.count().unwrap().unread, 3);
    assert_eq!(store.set_read(&[MessageId(999)], true).unwrap(), 0);

    assert_eq!(store.delete(&[ids[1], ids[1], MessageId(999)]).unwrap(), 1);
    assert_eq!(store.get(ids[1]).unwrap(), None);
    assert_eq!(store.raw(ids[1]).unwrap(), None);
    assert_eq!(subjects(&store, 10, 0), ["m3", "m2", "m0"]);
    assert_eq!(store.delete(&[ids[1]]).unwrap(), 0);
    assert_consistent(&path);

    assert_eq!(store.delete_all().unwrap(), 3);
    assert_eq!(store.count().unwrap(), MessageCounts::default());
    assert_eq!(store.latest().unwrap(), None);
    assert_eq!(store.delete_all().unwrap(), 0);
    assert_consistent(&path);

    // Ids are never reused, even after everything was deleted: POP3 UIDs rely on it.
    let next = store.deliver(message("after")).await.unwrap();
    assert!(next > ids[3], "{next} after {}", ids[3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deliveries_share_commits() {
    let dir = TempDir::new().unwrap();
    let store = open(&db_path(&dir));
    let mut tasks = Vec::new();
    for task in 0..50 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for n in 0..20 {
                ids.push(
                    store
                        .deliver(message(&format!("t{task} m{n}")))
                        .await
                        .unwrap(),
                );
            }
            ids
        }));
    }
    let mut ids = HashSet::new();
    for task in tasks {
        for id in task.await.unwrap() {
            assert!(ids.insert(id), "{id} handed out twice");
        }
    }
    assert_eq!(ids.len(), 1000);
    assert_eq!(store.count().unwrap().total, 1000);

    let stats = store.writer_stats();
    println!("{stats:?}");
    assert_eq!(stats.messages, 1000);
    assert_eq!(stats.failed_transactions, 0);
    assert!(
        stats.transactions < stats.messages,
        "deliveries should share commits: {stats:?}"
    );
}

#[tokio::test]
async fn everything_acknowledged_survives_reopening() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    let store = open(&path);
    let mut expected = Vec::new();
    for n in 0..10 {
        let message = message(&format!("m{n}"));
        let id = store.deliver(message.clone()).await.unwrap();
        expected.push((id, message));
    }
    store.set_read(&[expected[0].0], true).unwrap();
    drop(store);

    let store = open(&path);
    assert_eq!(store.count().unwrap().total, 10);
    for (id, message) in &expected {
        let stored = store.get(*id).unwrap().unwrap();
        assert_eq!(stored.raw, message.raw);
        assert_eq!(stored.envelope, message.envelope);
        assert_eq!(stored.summary.received_at, message.received_at);
    }
    assert!(store.get(expected[0].0).unwrap().unwrap().summary.read);
    let next = store.deliver(message("after reopening")).await.unwrap();
    assert!(next > expected[9].0);
    drop(store);
    assert_consistent(&path);
}

#[tokio::test]
async fn a_full_store_refuses_deliveries_and_recovers_after_deletes() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    let options = StoreOptions {
        max_size: Some(256 << 10),
        ..StoreOptions::default()
    };
    let store = Store::open(&path, options.clone()).unwrap();
    // 16 KiB of words: the limit counts the search index too, and a 16 KiB
    // word would be as big there as in the message.
    let body = |n: usize| {
        message_with(format!(
            "Subject: m{n}\r\n\r\n{}\r\n",
            "some words of text ".repeat(16 << 10 >> 4)
        ))
    };

    let mut stored = Vec::new();
    let error = loop {
        assert!(stored.len() < 100, "the size limit never applied");
        let message = body(stored.len());
        match store.deliver(message.clone()).await {
            Ok(id) => stored.push((id, message)),
            Err(error) => break error,
        }
    };
    assert!(matches!(error, DeliverError::Full), "{error:?}");
    assert!(stored.len() >= 5, "only {} fit", stored.len());
    assert_eq!(store.count().unwrap().total, stored.len() as u64);
    for (id, message) in &stored {
        assert_eq!(store.raw(*id).unwrap().as_ref(), Some(&message.raw));
    }
    assert_consistent(&path);
    // Still full: the writer keeps answering, with the same error.
    assert!(matches!(
        store.deliver(body(999)).await,
        Err(DeliverError::Full)
    ));
    assert_eq!(store.writer_stats().failed_transactions, 2);

    let (first, _) = stored.remove(0);
    let (second, _) = stored.remove(0);
    assert_eq!(store.delete(&[first, second]).unwrap(), 2);
    let id = store
        .deliver(body(1000))
        .await
        .expect("room again after deleting");
    assert!(store.get(id).unwrap().is_some());
    assert_consistent(&path);

    // The content and the limit hold across reopening: two deleted, one added
    // leaves room for about one more.
    drop(store);
    let store = Store::open(&path, options).unwrap();
    assert_eq!(store.count().unwrap().total, stored.len() as u64 + 1);
    let mut added = 0;
    while store.deliver(body(2000 + added)).await.is_ok() {
        added += 1;
        assert!(
            added <= 2,
            "the size limit no longer applies after reopening"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_overflows_the_store_fails_whole() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    let store = Store::open(
        &path,
        StoreOptions {
            max_size: Some(256 << 10),
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let mut tasks = Vec::new();
    for n in 0..40 {
        let store = store.clone();
        let message = message_with(format!("Subject: m{n}\r\n\r\n{}\r\n", "y".repeat(16 << 10)));
        tasks.push(tokio::spawn(async move {
            let result = store.deliver(message.clone()).await;
            (result, message)
        }));
    }
    let mut stored = 0;
    for task in tasks {
        match task.await.unwrap() {
            (Ok(id), message) => {
                stored += 1;
                assert_eq!(store.raw(id).unwrap(), Some(message.raw));
            }
            (Err(error), _) => assert!(matches!(error, DeliverError::Full), "{error:?}"),
        }
    }
    assert!(stored < 40, "the size limit never applied");
    assert_eq!(store.count().unwrap().total, stored);
    let stats = store.writer_stats();
    assert_eq!(stats.messages, stored);
    assert!(stats.failed_transactions > 0);
    drop(store);
    assert_consistent(&path);
}

#[tokio::test]
async fn a_message_that_does_not_parse_is_stored_and_listed() {
    let dir = TempDir::new().unwrap();
    let store = open(&db_path(&dir));
    let garbage: Vec<u8> = b"\x00\xff\xfe not a message at all\r\n\x01\x02"
        .iter()
        .copied()
        .chain((0..=255u8).cycle().take(5000))
        .collect();
    for raw in [garbage, Vec::new()] {
        let id = store.deliver(message_with(raw.clone())).await.unwrap();
        let listed = store
            .list(&ListQuery {
                limit: 1,
                offset: 0,
                before: None,
            })
            .unwrap();
        assert_eq!(listed.len(), 1);
        let summary = &listed[0];
        assert_eq!(summary.id, id);
        assert!(!summary.parsed);
        assert_eq!(summary.subject, "");
        assert_eq!(summary.from, None);
        assert_eq!(summary.size, raw.len() as u64);
        assert_eq!(summary.mail_from, "sender@example.com");
        assert_eq!(store.raw(id).unwrap(), Some(raw));
    }
}

#[tokio::test]
async fn html_only_and_attachments_in_the_summary() {
    let dir = TempDir::new().unwrap();
    let store = open(&db_path(&dir));
    let html = "Subject: html\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
        <html><head><style>p { color: red }</style></head>\
        <body><p>Hello <b>HTML</b></p>\n\n<p>world</p></body></html>\r\n";
    let id = store.deliver(message_with(html)).await.unwrap();
    let summary = store.get(id).unwrap().unwrap().summary;
    assert_eq!(summary.snippet, "Hello HTML world");

    let long = format!("Subject: long\r\n\r\n{}\r\n", "word ".repeat(500));
    let id = store.deliver(message_with(long)).await.unwrap();
    let snippet = store.get(id).unwrap().unwrap().summary.snippet;
    assert_eq!(snippet.chars().count(), 199, "{snippet:?}");
    assert!(snippet.starts_with("word word"));

    let id = store.deliver(message_with(MULTIPART)).await.unwrap();
    let summary = store.get(id).unwrap().unwrap().summary;
    assert_eq!(summary.attachments, 1);
    assert_eq!(summary.snippet, "Hello from the text part.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_message_is_parsed_off_the_async_workers() {
    let dir = TempDir::new().unwrap();
    let store = open(&db_path(&dir));
    let raw = format!(
        "Subject: big\r\n\r\n{}\r\n",
        "0123456789abcdef\r\n".repeat(100_000)
    );
    let id = store.deliver(message_with(raw.clone())).await.unwrap();
    let stored = store.get(id).unwrap().unwrap();
    assert_eq!(stored.raw, raw.as_bytes());
    assert_eq!(stored.summary.subject, "big");
}

#[tokio::test]
async fn a_second_handle_sees_commits_and_can_delete() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    let server = open(&path);
    // What `sokkel mail list` does while the server runs.
    let cli = open(&path);

    let first = server.deliver(message("one")).await.unwrap();
    assert_eq!(cli.latest().unwrap(), Some(first));
    assert_eq!(subjects(&cli, 10, 0), ["one"]);

    let second = server.deliver(message("two")).await.unwrap();
    assert_eq!(subjects(&cli, 10, 0), ["two", "one"]);
    assert_eq!(cli.delete(&[first]).unwrap(), 1);
    assert_eq!(server.get(first).unwrap(), None);
    assert_eq!(cli.set_read(&[second], true).unwrap(), 1);
    assert!(server.get(second).unwrap().unwrap().summary.read);

    // Both write: the CLI's import and the server's deliveries take turns.
    let imported = cli.import(vec![message("three")]).unwrap();
    let fourth = server.deliver(message("four")).await.unwrap();
    assert!(fourth > imported[0]);
    assert_eq!(subjects(&server, 10, 0), ["four", "three", "two"]);
    assert_eq!(cli.delete_all().unwrap(), 3);
    assert_eq!(server.count().unwrap(), MessageCounts::default());
}

#[tokio::test]
async fn subscribers_hear_of_committed_changes() {
    let dir = TempDir::new().unwrap();
    let store = open(&db_path(&dir));
    let mut events = store.subscribe();

    let id = store.deliver(message("hello")).await.unwrap();
    let StoreEvent::New(summary) = events.recv().await.unwrap() else {
        panic!("expected New");
    };
    assert_eq!(*summary, store.list(&ListQuery::default()).unwrap()[0]);

    store.set_read(&[id], true).unwrap();
    assert_eq!(
        events.recv().await.unwrap(),
        StoreEvent::ReadChanged(vec![id], true)
    );
    store.delete(&[id]).unwrap();
    assert_eq!(events.recv().await.unwrap(), StoreEvent::Deleted(vec![id]));
    // Nothing changed, nothing announced.
    store.delete(&[id]).unwrap();
    store.import(vec![message("a"), message("b")]).unwrap();
    for expected in ["a", "b"] {
        match events.recv().await.unwrap() {
            StoreEvent::New(summary) => assert_eq!(summary.subject, expected),
            other => panic!("expected New, got {other:?}"),
        }
    }
    store.delete_all().unwrap();
    assert_eq!(events.recv().await.unwrap(), StoreEvent::DeletedAll);
}

#[test]
fn a_store_from_a_newer_sokkel_is_refused() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    drop(open(&path));
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let error = Store::open(&path, StoreOptions::default()).unwrap_err();
    assert!(
        matches!(error, StoreError::TooNew { found: 99, .. }),
        "{error:?}"
    );
}

#[test]
fn a_file_that_is_not_a_database_is_an_error_not_a_panic() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("mail.db");
    std::fs::write(&path, vec![b'x'; 8192]).unwrap();
    let error = Store::open(&path, StoreOptions::default()).unwrap_err();
    assert!(matches!(error, StoreError::Database(_)), "{error:?}");
    assert!(error.to_string().contains("not a database"), "{error}");
}

#[test]
fn message_ids_print_and_parse_as_numbers() {
    assert_eq!(MessageId(42).to_string(), "42");
    assert_eq!("42".parse::<MessageId>().unwrap(), MessageId(42));
    assert!("4x".parse::<MessageId>().is_err());
}

const MULTIPART: &str = "From: a@example.com\r\n\
Subject: parts\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"outer\"\r\n\
\r\n\
--outer\r\n\
Content-Type: multipart/alternative; boundary=\"inner\"\r\n\
\r\n\
--inner\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Hello from the text part.\r\n\
--inner\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<p>Hello from the HTML part.</p>\r\n\
--inner--\r\n\
--outer\r\n\
Content-Type: application/pdf; name=\"report.pdf\"\r\n\
Content-Disposition: attachment; filename=\"report.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
JVBERi0xLjQK\r\n\
--outer--\r\n";

/// The counts every web page shows are kept by triggers, not counted: check them
/// against real counts through every kind of change, and across reopening.
#[tokio::test]
async fn counts_stay_exact_through_every_change() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    let store = open(&path);
    let real = |path: &Path| {
        let conn = rusqlite::Connection::open(path).unwrap();
        let total: i64 = conn
            .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
            .unwrap();
        let unread: i64 = conn
            .query_row("SELECT count(*) FROM messages WHERE read = 0", [], |r| {
                r.get(0)
            })
            .unwrap();
        MessageCounts {
            total: total as u64,
            unread: unread as u64,
        }
    };
    let check = |store: &Store, want: (u64, u64)| {
        let counts = store.count().unwrap();
        assert_eq!((counts.total, counts.unread), want);
        assert_eq!(counts, real(Path::new(&store.location())));
    };
    check(&store, (0, 0));
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(store.deliver(message(&format!("m{n}"))).await.unwrap());
    }
    ids.extend(store.import(vec![message("i1"), message("i2")]).unwrap());
    check(&store, (7, 7));
    store.set_read(&ids[..3], true).unwrap();
    store.set_read(&ids[..1], true).unwrap();
    check(&store, (7, 4));
    store.set_read(&ids[..1], false).unwrap();
    check(&store, (7, 5));
    store.delete(&[ids[1], ids[5]]).unwrap();
    check(&store, (5, 4));
    drop(store);
    let store = open(&path);
    check(&store, (5, 4));
    store.delete_all().unwrap();
    check(&store, (0, 0));
}
