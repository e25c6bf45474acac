//! Issue #11: summaries read for a list are bounded, whatever the message, and a
//! message's raw bytes can be read a chunk at a time.

use std::time::SystemTime;

use sokkel_store::{
    Envelope, ListQuery, MessageId, NewMessage, RAW_CHUNK_BYTES, SUMMARY_ADDRESSES,
    SUMMARY_RECIPIENT_BYTES, SUMMARY_TEXT_BYTES, SearchQuery, Store, StoreOptions,
};
use tempfile::TempDir;

fn message(raw: Vec<u8>) -> NewMessage {
    NewMessage {
        envelope: Envelope {
            mail_from: "sender@example.com".into(),
            rcpt_to: (0..1000).map(|n| format!("rcpt{n}@example.net")).collect(),
            helo: "client.example.com".into(),
            client_addr: "127.0.0.1:50000".parse().unwrap(),
            bare_lf: false,
            smtputf8: false,
            tls: None,
            auth_user: None,
        },
        received_at: SystemTime::now(),
        raw,
    }
}

fn many_to(count: usize) -> Vec<u8> {
    let to: Vec<String> = (0..count).map(|n| format!("user{n}@example.com")).collect();
    format!(
        "From: a@example.com\r\nTo: {}\r\nCc: c@example.com\r\nSubject: {}\r\n\r\nbody\r\n",
        to.join(", "),
        "s".repeat(100_000)
    )
    .into_bytes()
}

fn open(path: &std::path::Path) -> Store {
    Store::open(path, StoreOptions::default()).unwrap()
}

#[test]
fn listed_summaries_are_bounded_and_count_what_they_leave_out() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir.path().join("mail.db"));
    let ids = store.import(vec![message(many_to(20_000))]).unwrap();
    let listed = store.list(&ListQuery::default()).unwrap().remove(0);
    assert_eq!(listed.to.len(), SUMMARY_ADDRESSES);
    assert_eq!(listed.to_count, 20_000);
    assert_eq!(listed.to[0].address, "user0@example.com");
    assert_eq!(listed.to[49].address, "user49@example.com");
    assert_eq!((listed.cc.len(), listed.cc_count), (1, 1));
    assert_eq!((listed.reply_to.len(), listed.reply_to_count), (0, 0));
    assert_eq!(listed.subject.len(), SUMMARY_TEXT_BYTES);
    // 1,000 recipients of 17 bytes: those that fit in 16 KiB.
    let recipient_bytes: usize = listed.rcpt_to.iter().map(String::len).sum();
    assert!(listed.rcpt_to.len() > 800 && listed.rcpt_to.len() < 1000);
    assert!(recipient_bytes <= SUMMARY_RECIPIENT_BYTES);
    let found = store
        .search(&SearchQuery::parse("user0").unwrap(), &ListQuery::default())
        .unwrap();
    assert_eq!(found.messages[0].to.len(), SUMMARY_ADDRESSES);
    assert_eq!(found.messages[0].to_count, 20_000);

    // One message on its own has its whole subject and envelope.
    let whole = store.get(ids[0]).unwrap().unwrap();
    assert_eq!(whole.summary.subject.len(), 100_000);
    assert_eq!(whole.envelope.rcpt_to.len(), 1000);
    assert_eq!(whole.summary.to_count, 20_000);
}

#[test]
fn raw_bytes_come_in_chunks_until_the_message_is_deleted() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir.path().join("mail.db"));
    let raw: Vec<u8> = (0..2 * RAW_CHUNK_BYTES + 7)
        .map(|n| b'a' + (n % 26) as u8)
        .collect();
    let id = store.import(vec![message(raw.clone())]).unwrap()[0];
    assert_eq!(store.raw_len(id).unwrap(), Some(raw.len() as u64));
    let mut read = Vec::new();
    loop {
        let chunk = store
            .raw_chunk(id, read.len() as u64, usize::MAX)
            .unwrap()
            .unwrap();
        assert!(chunk.len() <= RAW_CHUNK_BYTES);
        if chunk.is_empty() {
            break;
        }
        read.extend_from_slice(&chunk);
    }
    assert_eq!(read, raw);
    assert_eq!(store.raw_chunk(id, 5, 3).unwrap().unwrap(), &raw[5..8]);
    assert_eq!(store.raw_chunk(id, u64::MAX, 10).unwrap().unwrap(), b"");
    store.delete(&[id]).unwrap();
    assert_eq!(store.raw_chunk(id, 0, 10).unwrap(), None);
    assert_eq!(store.raw_len(id).unwrap(), None);
    assert_eq!(store.raw_len(MessageId(999)).unwrap(), None);
}

/// A store written before schema 5 kept every address in the list columns; the
/// migration caps them, records the counts and keeps every message.
#[test]
fn migration_caps_old_address_lists_and_keeps_every_message() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("mail.db");
    let full: Vec<serde_json::Value> = (0..120)
        .map(|n| serde_json::json!({"name": format!("N{n}"), "address": format!("u{n}@x.test")}))
        .collect();
    {
        let store = open(&path);
        store.import(vec![message(many_to(120))]).unwrap();
        store.import(vec![message(many_to(3))]).unwrap();
        drop(store);
        // Back to what schema 4 would have written: the whole lists, no counts
        // (and none of what schemas 6 and 7 added).
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "ALTER TABLE store_state DROP COLUMN log_segment;
             ALTER TABLE store_state DROP COLUMN log_offset;
             ALTER TABLE store_state DROP COLUMN log_id;
             DROP TABLE relays;
             DROP TABLE sent_raw;
             DROP TABLE sent;
             ALTER TABLE messages DROP COLUMN keywords;
             DROP INDEX messages_flagged;
             DROP INDEX messages_modseq;
             ALTER TABLE messages DROP COLUMN flagged;
             ALTER TABLE messages DROP COLUMN inline;
             ALTER TABLE messages DROP COLUMN bcc_list;
             ALTER TABLE messages DROP COLUMN bcc_count;
             ALTER TABLE messages DROP COLUMN modseq;
             DROP TABLE message_tags;
             DROP TABLE tags;
             ALTER TABLE store_state DROP COLUMN last_uid_validity;
             DROP TABLE mailboxes;
             ALTER TABLE store_state DROP COLUMN uid_validity;
             ALTER TABLE messages DROP COLUMN to_count;
             ALTER TABLE messages DROP COLUMN cc_count;
             ALTER TABLE messages DROP COLUMN reply_to_count;
             PRAGMA user_version = 4;",
        )
        .unwrap();
        let json = serde_json::to_string(&full).unwrap();
        conn.execute(
            "UPDATE messages SET to_list = ?1, reply_to_list = ?1 WHERE id = 1",
            [&json],
        )
        .unwrap();
    }
    let store = open(&path);
    assert_eq!(store.count().unwrap().total, 2);
    let page = store.list(&ListQuery::default()).unwrap();
    let (new, old) = (&page[0], &page[1]);
    assert_eq!((new.to.len(), new.to_count), (3, 3));
    assert_eq!(old.to.len(), SUMMARY_ADDRESSES);
    assert_eq!(old.to_count, 120);
    assert_eq!(old.reply_to_count, 120);
    assert_eq!((old.cc.len(), old.cc_count), (1, 1));
    let names: Vec<&str> = old.to.iter().map(|a| a.name.as_str()).collect();
    let expected: Vec<String> = (0..SUMMARY_ADDRESSES).map(|n| format!("N{n}")).collect();
    assert_eq!(names, expected, "the first addresses, in order");
    assert_eq!(store.raw(MessageId(1)).unwrap().unwrap(), many_to(120));
}

// Issue #11: found by the `web_query` fuzz target. A NUL in a search ended
// FTS5's reading of the expression: "unterminated string", a 500.
#[test]
fn searches_with_control_characters_are_answered() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir.path().join("mail.db"));
    store.import(vec![message(many_to(3))]).unwrap();
    for text in [
        "\0",
        "\0lnucosed wor* (a OR b) NOT c",
        "sub\0ject:x",
        "\"a\0b\"",
        "\u{1}\u{7f}",
    ] {
        let query = SearchQuery::parse(text).unwrap();
        store
            .search(&query, &ListQuery::default())
            .unwrap_or_else(|error| panic!("{text:?}: {error}"));
    }
}
