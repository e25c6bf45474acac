//! A store written by the release before schema 6 opens with today's code and
//! keeps every message, id, read state and byte; search, mailboxes, flags and
//! UIDVALIDITY work on the old messages (issue #12), and so do IMAP's folders
//! (schema 7, issue #13).
//!
//! `data/store-v5.db` was made by that release's own binary over SMTP and its
//! web API (`data/README.md` says how); the test works on a copy.

use std::collections::BTreeMap;
use std::path::Path;

use sokkel_store::{
    FlagChange, Folder, Folders, ListQuery, MessageId, SearchQuery, Store, StoreOptions,
};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/store-v5.db");

/// The ids the fixture holds: 20 delivered, 4, 10, 11 and 17 deleted.
const IDS: [i64; 16] = [1, 2, 3, 5, 6, 7, 8, 9, 12, 13, 14, 15, 16, 18, 19, 20];
/// The ones marked read over the web API.
const READ: [i64; 6] = [2, 3, 5, 8, 13, 20];

/// What the old schema says about each message, read straight from the file.
struct OldRow {
    read: bool,
    subject: String,
    rcpt_to: String,
    raw: Vec<u8>,
}

fn old_rows(path: &Path) -> BTreeMap<i64, OldRow> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap();
    assert_eq!(version, 5, "the fixture is a schema 5 store");
    let mut statement = conn
        .prepare(
            "SELECT m.id, m.read, m.subject, m.rcpt_to, r.data
             FROM messages AS m JOIN raw AS r ON r.id = m.id",
        )
        .unwrap();
    statement
        .query_map([], |row| {
            Ok((
                row.get(0)?,
                OldRow {
                    read: row.get(1)?,
                    subject: row.get(2)?,
                    rcpt_to: row.get(3)?,
                    raw: row.get(4)?,
                },
            ))
        })
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

fn search(store: &Store, query: &str) -> Vec<i64> {
    let query = SearchQuery::parse(query).unwrap();
    let page = ListQuery {
        limit: 1000,
        ..ListQuery::default()
    };
    let mut ids: Vec<i64> = store
        .search(&query, &page)
        .unwrap()
        .messages
        .iter()
        .map(|m| m.id.0)
        .collect();
    ids.sort_unstable();
    ids
}

fn maildrop(store: &Store, recipient: &str) -> Vec<i64> {
    store
        .maildrop(Some(recipient))
        .unwrap()
        .into_iter()
        .map(|(id, _)| id.0)
        .collect()
}

#[test]
fn a_store_of_the_previous_release_opens_and_keeps_everything() {
    let dir = tempfile::TempDir::new().unwrap();
    let path = dir.path().join("mail.db");
    std::fs::copy(FIXTURE, &path).unwrap();
    let old = old_rows(&path);
    assert_eq!(old.keys().copied().collect::<Vec<_>>(), IDS);

    let store = Store::open(&path, StoreOptions::default()).unwrap();

    // Every message, id, read state and byte.
    let listed: Vec<i64> = store
        .list(&ListQuery {
            limit: 100,
            ..ListQuery::default()
        })
        .unwrap()
        .iter()
        .rev()
        .map(|m| m.id.0)
        .collect();
    assert_eq!(listed, IDS);
    let counts = store.count().unwrap();
    assert_eq!((counts.total, counts.unread), (16, 10));
    for (id, row) in &old {
        let message = store.get(MessageId(*id)).unwrap().expect("kept");
        assert_eq!(message.raw, row.raw, "message {id}");
        assert_eq!(message.summary.read, row.read, "message {id}");
        assert_eq!(message.summary.read, READ.contains(id), "message {id}");
        assert_eq!(message.summary.subject, row.subject, "message {id}");
        assert_eq!(
            serde_json::to_string(&message.envelope.rcpt_to).unwrap(),
            row.rcpt_to
        );
        assert!(!message.summary.flagged);
        assert!(message.summary.tags.is_empty());
    }
    assert_eq!(store.latest().unwrap(), Some(MessageId(20)));

    // Search finds words in old messages once the writer has indexed them: it
    // does so in the background after the upgrade, in small batches, so a
    // loaded machine may take a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let indexed = |store: &Store| {
        search(store, "quokka") == [2]
            && search(store, "Résumé") == [2, 7, 12]
            && search(store, "capybara") == [9]
            && search(store, "report") == [3, 8, 13, 18]
    };
    while !indexed(&store) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(search(&store, "quokka"), [2], "a subject word");
    assert_eq!(search(&store, "Résumé"), [2, 7, 12]);
    assert_eq!(search(&store, "capybara"), [9], "a word only in HTML");
    assert_eq!(search(&store, "report"), [3, 8, 13, 18], "a body word");
    assert_eq!(
        search(&store, "from:alice@old.test"),
        [1, 2, 3, 6, 7, 8, 12, 13, 16, 18]
    );
    assert_eq!(search(&store, "is:read"), READ);

    // Mailboxes were filled from the old rows: envelope recipients, To and Cc.
    assert_eq!(maildrop(&store, "morty@example.com"), [1, 6, 16]);
    assert_eq!(maildrop(&store, "MORTY"), [1, 6, 16]);
    assert_eq!(
        maildrop(&store, "carol@other.test"),
        [3, 8, 13, 18],
        "Cc only"
    );
    assert_eq!(maildrop(&store, "user2"), [3, 7, 15, 19]);

    // IMAP's groundwork: a UIDVALIDITY, and flags that change on old mail.
    let uid_validity = store.uid_validity().unwrap();
    assert_ne!(uid_validity, 0);
    let since = store.highest_modseq().unwrap();
    let star = FlagChange {
        read: None,
        flagged: Some(true),
    };
    assert_eq!(
        store
            .set_flags(&[MessageId(1), MessageId(4)], star)
            .unwrap(),
        1
    );
    let changed: Vec<i64> = store
        .changed_since(since)
        .unwrap()
        .into_iter()
        .map(|(id, _)| id.0)
        .collect();
    assert_eq!(changed, [1]);

    // IMAP's folders (schema 7) over the old messages: the INBOX with their
    // ids as UIDs and their read state as \Seen; a tag's folder numbered anew.
    let folders: &dyn Folders = &store;
    let (inbox, next) = folders
        .messages(&Folder::Inbox { recipient: None })
        .unwrap()
        .unwrap();
    let uids: Vec<i64> = inbox.iter().map(|m| i64::from(m.uid)).collect();
    assert_eq!(uids, IDS);
    assert!(inbox.iter().all(|m| m.flags.seen == READ.contains(&m.id.0)));
    assert_eq!(next, 21);
    store
        .add_tags(&[MessageId(9), MessageId(3)], &["old"])
        .unwrap();
    let (tagged, next) = folders
        .messages(&Folder::Tag("old".into()))
        .unwrap()
        .unwrap();
    let tagged: Vec<(u32, i64)> = tagged.iter().map(|m| (m.uid, m.id.0)).collect();
    assert_eq!((tagged, next), (vec![(1, 3), (2, 9)], 3));

    // New mail goes on from the old ids, and everything stays on reopening.
    let next = store
        .import(vec![sokkel_store::NewMessage {
            envelope: store.get(MessageId(1)).unwrap().unwrap().envelope,
            received_at: std::time::SystemTime::now(),
            raw: b"Subject: new\r\n\r\nafter the upgrade\r\n".to_vec(),
        }])
        .unwrap()[0];
    assert_eq!(next, MessageId(21));
    drop(store);
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    assert_eq!(store.uid_validity().unwrap(), uid_validity);
    assert!(store.get(MessageId(1)).unwrap().unwrap().summary.flagged);
    assert_eq!(store.count().unwrap().total, 17);
    let version: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap();
    assert_eq!(version, 9, "migrated to the newest schema");
    // Relay attempts (schema 8) on an old message, deleted with it.
    let attempt = sokkel_store::RelayAttempt {
        at: std::time::SystemTime::now(),
        recipients: vec!["dev@example.com".into()],
        skipped: Vec::new(),
        ok: true,
        reply: "250 ok".into(),
    };
    assert!(store.record_relay(MessageId(2), &attempt).unwrap());
    assert_eq!(store.relay_attempts(MessageId(2)).unwrap().len(), 1);
    store.delete(&[MessageId(2)]).unwrap();
    assert_eq!(store.relay_attempts(MessageId(2)).unwrap(), []);
}

/// A schema 7 store (the release before relaying, issue #14) gets the table of
/// relay attempts and keeps its messages.
#[test]
fn a_schema_7_store_gains_relay_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mail.db");
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    let envelope = sokkel_store::Envelope {
        mail_from: "rick@example.com".into(),
        rcpt_to: vec!["morty@example.com".into()],
        helo: "client.example".into(),
        client_addr: "127.0.0.1:40000".parse().unwrap(),
        bare_lf: false,
        smtputf8: false,
        tls: None,
        auth_user: None,
    };
    let raw = b"Subject: before\r\n\r\nrelay me later\r\n".to_vec();
    let id = store
        .import(vec![sokkel_store::NewMessage {
            envelope,
            received_at: std::time::SystemTime::now(),
            raw: raw.clone(),
        }])
        .unwrap()[0];
    drop(store);
    // What schema 7 had: everything but the relays and the log's position.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "DROP TABLE relays;
         ALTER TABLE store_state DROP COLUMN log_segment;
         ALTER TABLE store_state DROP COLUMN log_offset;
             ALTER TABLE store_state DROP COLUMN log_id;
         PRAGMA user_version = 7;",
    )
    .unwrap();
    drop(conn);

    let store = Store::open(&path, StoreOptions::default()).unwrap();
    assert_eq!(store.raw(id).unwrap(), Some(raw));
    let attempt = sokkel_store::RelayAttempt {
        at: std::time::SystemTime::now(),
        recipients: vec!["dev@example.com".into()],
        skipped: vec!["boss@example.com".into()],
        ok: false,
        reply: "connect failed".into(),
    };
    assert!(store.record_relay(id, &attempt).unwrap());
    assert_eq!(
        store.relay_attempts(id).unwrap()[0].skipped,
        ["boss@example.com"]
    );
    let version: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap();
    assert_eq!(version, 9);
}
