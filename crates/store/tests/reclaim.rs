//! Issue #16: the store's size on disk follows what it holds. The log's
//! segments are recycled once their messages have rows (crates/store
//! src/sqlite/log); this is the database file's side: space freed by deletes
//! goes back to the disk, so the store does not stay at the most it ever held.

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use sokkel_store::{Deliver, Envelope, ListQuery, MessageId, NewMessage, Store, StoreOptions};
use tempfile::TempDir;

const MESSAGES: u64 = 1_500;
const BODY: usize = 8 << 10;

fn message(n: u64) -> NewMessage {
    let mut raw = format!("From: a@example.com\r\nSubject: message {n}\r\n\r\n").into_bytes();
    // Varied bytes, so that neither SQLite nor the file system can make
    // light of them.
    raw.extend((0..BODY).map(|i| b'a' + ((i as u64 * 31 + n * 17) % 26) as u8));
    raw.extend_from_slice(b"\r\n");
    NewMessage {
        envelope: Envelope {
            mail_from: "a@example.com".into(),
            rcpt_to: vec!["b@example.com".into()],
            helo: "client".into(),
            client_addr: "127.0.0.1:50000".parse().unwrap(),
            bare_lf: false,
            smtputf8: false,
            tls: None,
            auth_user: None,
        },
        received_at: UNIX_EPOCH + Duration::from_secs(1_790_000_000 + n),
        raw,
    }
}

/// The database file and its WAL.
fn database_size(path: &Path) -> u64 {
    let size = |path: &Path| std::fs::metadata(path).map_or(0, |meta| meta.len());
    size(path) + size(&path.with_file_name("mail.db-wal"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_most_messages_gives_their_space_back_to_the_disk() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("mail.db");
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    let mut ids = Vec::new();
    for chunk in (0..MESSAGES).collect::<Vec<_>>().chunks(100) {
        let tasks: Vec<_> = chunk
            .iter()
            .map(|n| {
                let (store, message) = (store.clone(), message(*n));
                tokio::spawn(async move { store.deliver(message).await })
            })
            .collect();
        for task in tasks {
            ids.push(task.await.unwrap().unwrap());
        }
    }
    assert_eq!(store.count().unwrap().total, MESSAGES);
    let full = database_size(&path);
    let raw = MESSAGES * BODY as u64;
    assert!(full >= raw, "{full} bytes hold {raw} bytes of messages");

    // Keep every tenth message.
    let doomed: Vec<MessageId> = ids
        .iter()
        .enumerate()
        .filter(|(at, _)| at % 10 != 0)
        .map(|(_, id)| *id)
        .collect();
    let store_for_delete = store.clone();
    let deleted = tokio::task::spawn_blocking(move || store_for_delete.delete(&doomed))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(deleted, MESSAGES - MESSAGES / 10);
    let kept = database_size(&path);
    assert!(
        kept < full / 3,
        "after deleting 90 %, the database takes {kept} bytes; it took {full}"
    );
    // What is left: the live messages, their index, and free pages of at
    // most an eighth of the file or 4 MiB, whichever is more.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let value = |pragma: &str| -> i64 {
        conn.query_row(&format!("PRAGMA {pragma}"), [], |row| row.get(0))
            .unwrap()
    };
    let (free, pages) = (value("freelist_count"), value("page_count"));
    assert!(
        free <= (pages / 8).max(1024),
        "{free} of {pages} pages free after the delete"
    );
    drop(conn);

    // Every kept message is whole.
    let listed = store
        .list(&ListQuery {
            limit: 1000,
            ..ListQuery::default()
        })
        .unwrap();
    assert_eq!(listed.len() as u64, MESSAGES / 10);
    for summary in listed {
        let n = summary
            .subject
            .strip_prefix("message ")
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(store.raw(summary.id).unwrap().unwrap(), message(n).raw);
    }
}
