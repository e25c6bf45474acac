//! Search, cursor paging and change events against real SQLite files.

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use sokkel_store::{
    Deliver, Envelope, ListQuery, MessageId, NewMessage, SearchQuery, Store, StoreEvent,
    StoreOptions,
};
use tempfile::TempDir;
use tokio::sync::broadcast::{self, error::RecvError};

mod process;

/// 2026-11-24T00:00:00Z.
const NOV_24_MS: u64 = 1_795_478_400_000;
const HOUR_MS: u64 = 3_600_000;

struct Mail<'a> {
    mail_from: &'a str,
    rcpt_to: &'a [&'a str],
    headers: &'a str,
    body: &'a str,
    received_ms: u64,
}

impl Default for Mail<'_> {
    fn default() -> Self {
        Mail {
            mail_from: "bounce@sender.test",
            rcpt_to: &["inbox@receiver.test"],
            headers: "From: Someone <someone@sender.test>\r\nTo: inbox@receiver.test\r\nSubject: hello\r\n",
            body: "nothing to see\r\n",
            received_ms: NOV_24_MS,
        }
    }
}

impl Mail<'_> {
    fn build(&self) -> NewMessage {
        NewMessage {
            envelope: Envelope {
                mail_from: self.mail_from.into(),
                rcpt_to: self.rcpt_to.iter().map(|r| r.to_string()).collect(),
                helo: "client.test".into(),
                client_addr: "127.0.0.1:50000".parse().unwrap(),
                bare_lf: false,
                smtputf8: false,
                tls: None,
                auth_user: None,
            },
            received_at: UNIX_EPOCH + Duration::from_millis(self.received_ms),
            raw: format!("{}\r\n{}", self.headers, self.body).into_bytes(),
        }
    }
}

fn open(path: &Path) -> Store {
    Store::open(path, StoreOptions::default()).unwrap()
}

fn subjects_of(store: &Store, query: &str) -> Vec<String> {
    let query = SearchQuery::parse(query).unwrap_or_else(|error| panic!("{query:?}: {error}"));
    let page = store.search(&query, &ListQuery::default()).unwrap();
    assert_eq!(
        page.matches as usize,
        page.messages.len(),
        "the count agrees with a page that holds every match"
    );
    page.messages.into_iter().map(|m| m.subject).collect()
}

/// A store with one message per feature a filter looks at; ids 1..=8 in order.
fn sample_store(dir: &TempDir) -> Store {
    let store = open(&dir.path().join("mail.db"));
    let long_body = format!(
        "{}the zanzibar clause is at the very end\r\n",
        "filler text that says little. ".repeat(1500)
    );
    let messages = [
        Mail {
            headers: "From: Alice Liddell <alice@example.com>\r\nTo: Bob <bob@corp.test>\r\nSubject: Invoice March\r\n",
            body: "Please pay the invoice for March.\r\n",
            received_ms: NOV_24_MS - 2 * 24 * HOUR_MS,
            ..Mail::default()
        },
        Mail {
            headers: "From: Carol <carol@other.test>\r\nTo: alice@example.com\r\nCc: Dave <dave@corp.test>\r\nSubject: Quarterly report\r\n",
            body: "The quarterly report is attached.\r\n",
            received_ms: NOV_24_MS - 24 * HOUR_MS,
            ..Mail::default()
        },
        Mail {
            headers: "From: Erin <erin@example.org>\r\nTo: frank@corp.test\r\nSubject: =?ISO-8859-1?Q?R=E9sum=E9?= for the job\r\n",
            body: "My r\u{e9}sum\u{e9} and a report, not quarterly.\r\n",
            received_ms: NOV_24_MS,
            ..Mail::default()
        },
        Mail {
            headers: "From: news@shop.test\r\nTo: inbox@receiver.test\r\nSubject: Big sale\r\n",
            body: "Everything must go: crème brûlée moulds half price.\r\n",
            received_ms: NOV_24_MS + HOUR_MS,
            ..Mail::default()
        },
        Mail {
            headers: "From: legal@firm.test\r\nTo: inbox@receiver.test\r\nSubject: Contract\r\n",
            body: &long_body,
            received_ms: NOV_24_MS + 24 * HOUR_MS,
            ..Mail::default()
        },
        Mail {
            mail_from: "envelope-only@relay.test",
            rcpt_to: &["hidden-bcc@secret.test", "inbox@receiver.test"],
            headers: "From: Grace <grace@sender.test>\r\nTo: inbox@receiver.test\r\nSubject: Bcc copy\r\n",
            received_ms: NOV_24_MS + 24 * HOUR_MS + 1,
            ..Mail::default()
        },
        Mail {
            headers: "From: heidi@example.com\r\nTo: bob@corp.test\r\nSubject: Photos\r\n\
                      MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n",
            body: "--b\r\nContent-Type: text/plain\r\n\r\nHoliday pictures.\r\n\
                   --b\r\nContent-Type: image/jpeg\r\nContent-Disposition: attachment; filename=\"beach.jpg\"\r\n\
                   Content-Transfer-Encoding: base64\r\n\r\n/9j/4AAQ\r\n--b--\r\n",
            received_ms: NOV_24_MS + 2 * 24 * HOUR_MS,
            ..Mail::default()
        },
        Mail {
            headers: "From: Alice Liddell <alice@example.com>\r\nTo: Bob <bob@corp.test>\r\nSubject: Invoices paid\r\n",
            body: "All invoices are paid.\r\n",
            received_ms: NOV_24_MS + 3 * 24 * HOUR_MS,
            ..Mail::default()
        },
    ];
    let ids = store
        .import(messages.iter().map(Mail::build).collect())
        .unwrap();
    assert_eq!(ids, (1..=8).map(MessageId).collect::<Vec<_>>());
    store.set_read(&[MessageId(1), MessageId(2)], true).unwrap();
    store
}

#[test]
fn every_filter_finds_what_it_says() {
    let dir = TempDir::new().unwrap();
    let store = sample_store(&dir);
    let cases: &[(&str, &[&str])] = &[
        // Free text: subject, addresses, body; ANDed; case-insensitive.
        ("invoice ", &["Invoice March"]),
        ("INVOICE march", &["Invoice March"]),
        ("pictures", &["Photos"]),
        ("liddell", &["Invoices paid", "Invoice March"]),
        ("dave", &["Quarterly report"]),
        // Prefix for the last word as it is typed, not after a space or quotes.
        ("invoic", &["Invoices paid", "Invoice March"]),
        ("invoic ", &[]),
        ("\"invoic\"", &[]),
        ("march invo", &["Invoice March"]),
        // Phrases.
        ("\"quarterly report\"", &["Quarterly report"]),
        ("\"report quarterly\"", &[]),
        ("report", &["Résumé for the job", "Quarterly report"]),
        // Diacritics are folded both ways.
        ("resume", &["Résumé for the job"]),
        ("\"creme brulee\"", &["Big sale"]),
        ("brûlée ", &["Big sale"]),
        // A word deep in a long body.
        ("zanzibar", &["Contract"]),
        // Address filters: header and envelope, whole address or a piece.
        (
            "from:alice@example.com",
            &["Invoices paid", "Invoice March"],
        ),
        (
            "from:example.com",
            &["Invoices paid", "Photos", "Invoice March"],
        ),
        ("from:example.org", &["Résumé for the job"]),
        ("from:relay.test", &["Bcc copy"]),
        ("from:alic", &["Invoices paid", "Invoice March"]),
        ("from:\"carol other test\"", &["Quarterly report"]),
        ("to:alice", &["Quarterly report"]),
        ("to:dave@corp.test", &["Quarterly report"]),
        (
            "to:corp.test",
            &[
                "Invoices paid",
                "Photos",
                "Résumé for the job",
                "Quarterly report",
                "Invoice March",
            ],
        ),
        ("to:hidden-bcc", &["Bcc copy"]),
        ("from:alice", &["Invoices paid", "Invoice March"]),
        ("to:bob -from:alice", &["Photos"]),
        ("subject:report", &["Quarterly report"]),
        ("subject:\"quarterly report\"", &["Quarterly report"]),
        ("subject:resume", &["Résumé for the job"]),
        // State filters.
        ("is:read", &["Quarterly report", "Invoice March"]),
        ("is:unread invoice", &["Invoices paid"]),
        ("-is:unread", &["Quarterly report", "Invoice March"]),
        ("has:attachment", &["Photos"]),
        ("beach.jpg", &["Photos"]),
        (
            "-has:attachment from:example.com",
            &["Invoices paid", "Invoice March"],
        ),
        // Dates: before a day excludes it, after a day includes it.
        ("before:2026-11-24", &["Quarterly report", "Invoice March"]),
        ("after:2026-11-26", &["Invoices paid", "Photos"]),
        (
            "after:2026-11-24 before:2026-11-25",
            &["Big sale", "Résumé for the job"],
        ),
        (
            "after:2026-11-24T00:00:00Z before:2026-11-25",
            &["Big sale"],
        ),
        ("-before:2026-11-27", &["Invoices paid"]),
        // Negation alone, of words and of filters.
        (
            "-invoice -invoices -report -sale -contract",
            &["Photos", "Bcc copy"],
        ),
        (
            "-from:example.com -to:corp.test",
            &["Bcc copy", "Contract", "Big sale"],
        ),
        ("report -quarterly", &[]),
        ("report -\"quarterly report\"", &["Résumé for the job"]),
        // Mailpit users type this.
        ("from:alice@example.com subject:invoice -is:read", &[]),
        (
            "from:alice@example.com subject:invoices -is:read",
            &["Invoices paid"],
        ),
        // Nothing to narrow: everything.
        (
            "",
            &[
                "Invoices paid",
                "Photos",
                "Bcc copy",
                "Contract",
                "Big sale",
                "Résumé for the job",
                "Quarterly report",
                "Invoice March",
            ],
        ),
    ];
    for (query, expected) in cases {
        assert_eq!(subjects_of(&store, query), *expected, "{query:?}");
    }
}

#[test]
fn paging_with_a_cursor_walks_every_match_once() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir.path().join("mail.db"));
    let messages: Vec<NewMessage> = (0..120)
        .map(|n| {
            let word = if n % 3 == 0 { "needle" } else { "hay" };
            let headers = format!("From: a@x.test\r\nSubject: {word} {n}\r\n");
            Mail {
                headers: &headers,
                ..Mail::default()
            }
            .build()
        })
        .collect();
    store.import(messages).unwrap();
    let query = SearchQuery::parse("needle").unwrap();

    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .search(
                &query,
                &ListQuery {
                    limit: 7,
                    offset: 0,
                    before,
                },
            )
            .unwrap();
        assert_eq!(page.matches, 40, "the count ignores the page");
        let Some(last) = page.messages.last() else {
            break;
        };
        before = Some(last.id);
        seen.extend(page.messages.iter().map(|m| m.id.0));
        assert!(seen.len() <= 40);
    }
    let expected: Vec<i64> = (1..=120).rev().filter(|id| (id - 1) % 3 == 0).collect();
    assert_eq!(seen, expected, "newest first, each once");

    // The plain list takes the same cursor.
    let page = store
        .list(&ListQuery {
            limit: 3,
            offset: 1,
            before: Some(MessageId(50)),
        })
        .unwrap();
    let ids: Vec<i64> = page.iter().map(|m| m.id.0).collect();
    assert_eq!(ids, [48, 47, 46]);

    // And so does a search without words.
    let unread = SearchQuery::parse("is:unread").unwrap();
    let page = store
        .search(
            &unread,
            &ListQuery {
                limit: 2,
                offset: 0,
                before: Some(MessageId(3)),
            },
        )
        .unwrap();
    assert_eq!(page.matches, 120);
    let ids: Vec<i64> = page.messages.iter().map(|m| m.id.0).collect();
    assert_eq!(ids, [2, 1]);
}

/// Rows in the index, counted through a connection of our own.
fn index_rows(path: &Path) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("SELECT count(*) FROM search", [], |row| row.get(0))
        .unwrap()
}

#[tokio::test]
async fn delete_matching_deletes_only_matches_and_announces_them() {
    let dir = TempDir::new().unwrap();
    let store = sample_store(&dir);
    let mut events = store.subscribe();

    let query = SearchQuery::parse("from:alice@example.com").unwrap();
    assert_eq!(store.delete_matching(&query).unwrap(), 2);
    assert_eq!(
        events.recv().await.unwrap(),
        StoreEvent::Deleted(vec![MessageId(1), MessageId(8)])
    );
    assert!(subjects_of(&store, "invoice").is_empty());
    assert_eq!(store.count().unwrap().total, 6);
    assert!(store.get(MessageId(1)).unwrap().is_none());
    assert!(store.get(MessageId(2)).unwrap().is_some());
    assert_eq!(
        index_rows(Path::new(&store.location())),
        6,
        "index rows went with the messages"
    );

    assert_eq!(store.delete_matching(&query).unwrap(), 0, "nothing left");
    let negated = SearchQuery::parse("-has:attachment -is:read").unwrap();
    assert_eq!(store.delete_matching(&negated).unwrap(), 4);
    assert_eq!(subjects_of(&store, ""), ["Photos", "Quarterly report"]);
}

#[tokio::test]
async fn the_index_keeps_in_step_with_deletes_and_deliveries() {
    let dir = TempDir::new().unwrap();
    let store = sample_store(&dir);
    store.delete(&[MessageId(2), MessageId(3)]).unwrap();
    assert!(subjects_of(&store, "report").is_empty());
    assert_eq!(index_rows(Path::new(&store.location())), 6);

    store.delete_all().unwrap();
    assert_eq!(index_rows(Path::new(&store.location())), 0);
    assert!(subjects_of(&store, "invoice").is_empty());

    // Delivered through the writer thread: searchable once the writer has had a
    // moment with nothing to deliver (it indexes after answering, not before).
    let id = store
        .deliver(
            Mail {
                headers: "From: new@x.test\r\nSubject: Invoice again\r\n",
                ..Mail::default()
            }
            .build(),
        )
        .await
        .unwrap();
    assert_eq!(id, MessageId(9));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while subjects_of(&store, "invoice").is_empty() {
        assert!(std::time::Instant::now() < deadline, "never indexed");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(subjects_of(&store, "invoice"), ["Invoice again"]);
    assert_eq!(index_rows(Path::new(&store.location())), 1);

    // A writer killed between storing and indexing leaves the id in `unindexed`
    // (here faked by hand): the next open indexes it.
    let path = Path::new(&store.location()).to_path_buf();
    drop(store);
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("DELETE FROM search WHERE rowid = 9; INSERT INTO unindexed VALUES (9);")
            .unwrap();
    }
    assert_eq!(index_rows(&path), 0);
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    assert_eq!(subjects_of(&store, "invoice"), ["Invoice again"]);
    assert_eq!(index_rows(&path), 1);
    let left: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT count(*) FROM unindexed", [], |row| row.get(0))
        .unwrap();
    assert_eq!(left, 0);
}

/// The schema of the first release, exactly, so an upgrade is tested against the
/// file an old sokkel left behind.
const V1_SCHEMA: &str = r#"
    CREATE TABLE messages (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        received_at   INTEGER NOT NULL,
        mail_from     TEXT    NOT NULL,
        rcpt_to       TEXT    NOT NULL,
        helo          TEXT    NOT NULL,
        client_addr   TEXT    NOT NULL,
        bare_lf       INTEGER NOT NULL,
        smtputf8      INTEGER NOT NULL,
        tls_version   TEXT,
        tls_cipher    TEXT,
        auth_user     TEXT,
        size          INTEGER NOT NULL,
        parsed        INTEGER NOT NULL,
        subject       TEXT    NOT NULL,
        from_name     TEXT,
        from_addr     TEXT,
        to_list       TEXT    NOT NULL,
        cc_list       TEXT    NOT NULL,
        reply_to_list TEXT    NOT NULL,
        date          TEXT,
        message_id    TEXT,
        attachments   INTEGER NOT NULL,
        snippet       TEXT    NOT NULL,
        read          INTEGER NOT NULL DEFAULT 0
    ) STRICT;
    CREATE INDEX messages_read ON messages(read);
    CREATE TABLE raw (
        id   INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
        data BLOB NOT NULL
    ) STRICT;
    PRAGMA user_version = 1;
"#;

#[test]
fn a_store_from_before_search_gets_its_messages_indexed() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("old.db");
    // More than one backfill batch, with a word only in the oldest and newest.
    let total = 600;
    {
        let mut conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(V1_SCHEMA).unwrap();
        let tx = conn.transaction().unwrap();
        for n in 1..=total {
            let word = if n == 1 || n == total {
                "marmalade"
            } else {
                "toast"
            };
            let raw = if n == 2 {
                // What only the raw message says, for the columns of schema
                // migration 6 (issue #12).
                "From: Old Sender <old2@legacy.test>\r\nBcc: Hidden <hidden@legacy.test>\r\n\
                 Reply-To: answers@legacy.test\r\nMessage-ID: <old-two@legacy.test>\r\n\
                 Subject: breakfast 2\r\nMIME-Version: 1.0\r\n\
                 Content-Type: multipart/related; boundary=b\r\n\r\n\
                 --b\r\nContent-Type: text/html\r\n\r\n<p>with toast <img src=\"cid:egg\"></p>\r\n\
                 --b\r\nContent-Type: image/png\r\nContent-ID: <egg>\r\n\
                 Content-Disposition: inline\r\n\r\nPNG\r\n--b--\r\n"
                    .to_string()
            } else {
                format!(
                    "From: Old Sender <old{n}@legacy.test>\r\nSubject: breakfast {n}\r\n\r\nwith {word}\r\n"
                )
            };
            tx.execute(
                "INSERT INTO messages (received_at, mail_from, rcpt_to, helo, client_addr,
                    bare_lf, smtputf8, size, parsed, subject, to_list, cc_list, reply_to_list,
                    attachments, snippet)
                 VALUES (0, ?1, '[\"rcpt@legacy.test\"]', 'h', '127.0.0.1:1', 0, 0, ?2, 1, ?3,
                    '[]', '[]', '[]', 0, '')",
                rusqlite::params![
                    format!("env{n}@legacy.test"),
                    raw.len() as i64,
                    format!("breakfast {n}")
                ],
            )
            .unwrap();
            tx.execute(
                "INSERT INTO raw (id, data) VALUES (last_insert_rowid(), ?1)",
                [raw.as_bytes()],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }

    let store = open(&path);
    // The writer thread indexes them in the background, newest first.
    let everyone = SearchQuery::parse("to:rcpt@legacy.test").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while store
        .search(&everyone, &ListQuery::default())
        .unwrap()
        .matches
        < total as u64
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the stored messages are indexed within a minute"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        subjects_of(&store, "marmalade"),
        [format!("breakfast {total}"), "breakfast 1".to_string()]
    );
    assert_eq!(
        subjects_of(&store, "from:old1@legacy.test"),
        ["breakfast 1"]
    );
    let page = store.search(&everyone, &ListQuery::default()).unwrap();
    assert_eq!(
        page.matches, total as u64,
        "envelope recipients were indexed"
    );
    assert_eq!(index_rows(&path), total as i64);
    for query in [
        "bcc:hidden@legacy.test",
        "reply-to:answers",
        "message-id:old-two@legacy.test",
        "has:inline",
    ] {
        assert_eq!(subjects_of(&store, query), ["breakfast 2"], "{query}");
    }
    let not_inline = SearchQuery::parse("-has:inline").unwrap();
    assert_eq!(
        store
            .search(&not_inline, &ListQuery::default())
            .unwrap()
            .matches,
        total as u64 - 1,
        "every message's inline count is filled in"
    );
    let bcc = store.get(MessageId(2)).unwrap().unwrap().summary.bcc;
    assert_eq!(bcc[0].address, "hidden@legacy.test");
    drop(store);
    // Opening again does not index anything twice.
    let store = open(&path);
    assert_eq!(index_rows(&path), total as i64);
    assert_eq!(subjects_of(&store, "marmalade").len(), 2);
}

/// The next event, waiting at most ten seconds for it.
async fn next_event(events: &mut broadcast::Receiver<StoreEvent>) -> StoreEvent {
    tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .expect("an event within ten seconds")
        .expect("an event, not a closed channel")
}

#[tokio::test]
async fn another_process_changing_the_store_is_announced_as_changed() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("mail.db");
    let server = open(&path);
    let mut events = server.subscribe();

    // Its own change is announced as what it is.
    let id = server.deliver(Mail::default().build()).await.unwrap();
    assert!(matches!(next_event(&mut events).await, StoreEvent::New(m) if m.id == id));
    let other = server.deliver(Mail::default().build()).await.unwrap();
    assert!(matches!(next_event(&mut events).await, StoreEvent::New(m) if m.id == other));

    // A second process (the CLI while a server runs) follows the server's
    // log: it deletes and marks messages read in the file, and the server
    // hears of each as a change.
    let file = path.to_str().unwrap();
    process::run(CHANGER, &[file, "delete", &id.to_string()]);
    assert_eq!(next_event(&mut events).await, StoreEvent::Changed);
    process::run(CHANGER, &[file, "read", &other.to_string()]);
    assert_eq!(next_event(&mut events).await, StoreEvent::Changed);
    assert!(server.get(id).unwrap().is_none());
    assert!(server.get(other).unwrap().unwrap().summary.read);
    let query = SearchQuery::parse("nothing").unwrap();
    assert_eq!(
        server
            .search(&query, &ListQuery::default())
            .unwrap()
            .matches,
        1
    );

    // The watcher ends with the last handle: then the channel closes.
    drop(server);
    let closed = tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .expect("the channel closes once the store is gone");
    assert_eq!(closed, Err(RecvError::Closed));
}

const CHANGER: &str = "changes_from_another_process";

/// The other process of the test above: `PATH delete|read ID`.
#[test]
fn changes_from_another_process() {
    let Some(args) = process::other_process_args() else {
        return;
    };
    let store = open(Path::new(&args[0]));
    let id = MessageId(args[2].parse().unwrap());
    match args[1].as_str() {
        "delete" => assert_eq!(store.delete(&[id]).unwrap(), 1),
        _ => assert_eq!(store.set_read(&[id], true).unwrap(), 1),
    }
}
