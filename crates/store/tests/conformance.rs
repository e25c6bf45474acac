//! The store's conformance suite: what every backend behind [`Store`] must do,
//! written against the public API alone.
//!
//! Each case is a function that takes an opener: every call opens the same
//! store (a fresh one per case), so a case can also drop its handle and open
//! the store again. [`sqlite`] is the SQLite opener; a second backend adds its
//! own opener and one more `cases!` invocation, and runs every case unchanged.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, SystemTime};

use sokkel_store::{
    Deliver, Envelope, FlagChange, ListQuery, MessageId, NewMessage, SearchQuery, Store,
    StoreEvent, StoreOptions,
};
use tokio::sync::broadcast;

/// Opens the case's store; every call opens the same one.
type Open<'a> = &'a dyn Fn() -> Store;

/// Runs `case` on a fresh SQLite store in a temporary directory.
fn sqlite(case: fn(Open<'_>)) {
    let dir = tempfile::TempDir::new().unwrap();
    let path = dir.path().join("mail.db");
    case(&|| Store::open(&path, StoreOptions::default()).unwrap());
}

/// One `#[test]` per case for a backend's opener.
macro_rules! cases {
    ($backend:ident: $($case:ident),* $(,)?) => {
        mod $backend {
            $(
                #[test]
                fn $case() {
                    super::$backend(super::$case);
                }
            )*
        }
    };
}

cases!(sqlite:
    delivered_and_imported_messages_read_back_whole,
    lists_page_newest_first_by_before_and_offset,
    search_finds_words_addresses_and_flags,
    flags_change_and_count,
    maildrops_hold_the_mail_sent_to_an_address,
    changes_are_announced,
    readers_and_writers_work_at_once,
    deletes_remove_and_ids_are_never_reused,
    uid_validity_is_fixed,
    modseq_grows_with_each_change,
);

// ---------------------------------------------------------------------------------------
// Helpers

fn envelope(mail_from: &str, rcpt_to: &[&str]) -> Envelope {
    Envelope {
        mail_from: mail_from.into(),
        rcpt_to: rcpt_to.iter().map(|to| to.to_string()).collect(),
        helo: "client.example".into(),
        client_addr: "127.0.0.1:40000".parse().unwrap(),
        bare_lf: false,
        smtputf8: false,
        tls: None,
        auth_user: None,
    }
}

/// A message from `from` with headers To `to`, Subject `subject` and a text
/// body, sent to the envelope recipients `rcpt_to`.
fn message(from: &str, to: &str, rcpt_to: &[&str], subject: &str, body: &str) -> NewMessage {
    let raw = format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{subject}@example.com>\r\n\r\n{body}\r\n"
    );
    NewMessage {
        envelope: envelope(from, rcpt_to),
        received_at: SystemTime::now(),
        raw: raw.into_bytes(),
    }
}

fn numbered(n: usize) -> NewMessage {
    message(
        "rick@example.com",
        "morty@example.com",
        &["morty@example.com"],
        &format!("number{n}"),
        &format!("body of message {n}"),
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Delivers `messages` one after another as SMTP does, through [`Deliver`].
fn deliver(store: &Store, messages: impl IntoIterator<Item = NewMessage>) -> Vec<MessageId> {
    runtime().block_on(async {
        let mut ids = Vec::new();
        for message in messages {
            ids.push(store.deliver(message).await.unwrap());
        }
        ids
    })
}

fn ids(summaries: &[sokkel_store::Summary]) -> Vec<MessageId> {
    summaries.iter().map(|summary| summary.id).collect()
}

fn page(limit: usize, offset: usize, before: Option<MessageId>) -> ListQuery {
    ListQuery {
        limit,
        offset,
        before,
    }
}

fn search(store: &Store, query: &str) -> (u64, Vec<MessageId>) {
    let query = SearchQuery::parse(query).unwrap();
    let page = store.search(&query, &page(1000, 0, None)).unwrap();
    (page.matches, ids(&page.messages))
}

/// The next event, within 10 s.
fn next_event(
    runtime: &tokio::runtime::Runtime,
    events: &mut broadcast::Receiver<StoreEvent>,
) -> StoreEvent {
    runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(10), events.recv()).await })
        .expect("an event within 10 s")
        .expect("no event lost")
}

// ---------------------------------------------------------------------------------------
// Cases

/// A message comes back with its summary, envelope and every byte, whole and
/// in chunks, whether it was delivered or imported.
fn delivered_and_imported_messages_read_back_whole(open: Open<'_>) {
    let store = open();
    assert_eq!(store.latest().unwrap(), None);
    let mut sent = message(
        "Rick <rick@example.com>",
        "Morty <morty@example.com>",
        &["morty@example.com", "summer@example.com"],
        "delivered",
        &"x".repeat(5000),
    );
    sent.envelope.tls = Some(sokkel_store::TlsInfo {
        version: "TLSv1.3".into(),
        cipher: "TLS_AES_256_GCM_SHA384".into(),
    });
    let delivered = deliver(&store, [sent.clone()])[0];
    let imported = message("a@x.test", "b@y.test", &["b@y.test"], "imported", "hi");
    let imported_id = store.import(vec![imported.clone()]).unwrap()[0];
    assert!(imported_id > delivered);
    assert_eq!(store.latest().unwrap(), Some(imported_id));

    for (id, sent) in [(delivered, &sent), (imported_id, &imported)] {
        let stored = store.get(id).unwrap().expect("stored");
        assert_eq!(stored.raw, sent.raw);
        assert_eq!(stored.envelope, sent.envelope);
        assert_eq!(stored.summary.id, id);
        assert_eq!(stored.summary.size, sent.raw.len() as u64);
        assert!(!stored.summary.read && !stored.summary.flagged);
        assert_eq!(store.raw(id).unwrap().as_ref(), Some(&sent.raw));
        assert_eq!(store.raw_len(id).unwrap(), Some(sent.raw.len() as u64));
        let mut chunks = Vec::new();
        let mut offset = 0;
        while let Some(chunk) = store.raw_chunk(id, offset, 1000).unwrap() {
            if chunk.is_empty() {
                break;
            }
            assert!(chunk.len() <= 1000);
            offset += chunk.len() as u64;
            chunks.extend(chunk);
        }
        assert_eq!(chunks, sent.raw, "the chunks make up the message");
    }
    let summary = store.get(delivered).unwrap().unwrap().summary;
    assert_eq!(summary.subject, "delivered");
    assert_eq!(summary.from.unwrap().address, "rick@example.com");
    assert_eq!(summary.to[0].name, "Morty");
    assert_eq!(summary.rcpt_to, ["morty@example.com", "summer@example.com"]);
    assert_eq!(summary.message_id.as_deref(), Some("delivered@example.com"));

    let missing = MessageId(imported_id.0 + 100);
    assert!(store.get(missing).unwrap().is_none());
    assert!(store.raw(missing).unwrap().is_none());
    assert!(store.raw_len(missing).unwrap().is_none());
    assert!(store.raw_chunk(missing, 0, 10).unwrap().is_none());
    assert_eq!(
        store.raw_chunk(imported_id, 10_000, 10).unwrap(),
        Some(Vec::new()),
        "nothing past the end"
    );
}

/// Pages are newest first; `before` seeks past an id and `offset` skips.
fn lists_page_newest_first_by_before_and_offset(open: Open<'_>) {
    let store = open();
    let all = store.import((1..=25).map(numbered).collect()).unwrap();
    let newest_first: Vec<MessageId> = all.iter().rev().copied().collect();
    assert_eq!(
        ids(&store.list(&page(10, 0, None)).unwrap()),
        newest_first[..10]
    );
    assert_eq!(
        ids(&store.list(&page(10, 0, Some(newest_first[9]))).unwrap()),
        newest_first[10..20]
    );
    assert_eq!(
        ids(&store.list(&page(10, 20, None)).unwrap()),
        newest_first[20..]
    );
    assert_eq!(
        ids(&store.list(&page(3, 2, Some(newest_first[4]))).unwrap()),
        newest_first[7..10],
        "offset counts after before"
    );
    assert!(store.list(&page(10, 0, Some(all[0]))).unwrap().is_empty());
    let counts = store.count().unwrap();
    assert_eq!((counts.total, counts.unread), (25, 25));
    assert_eq!(store.list(&ListQuery::default()).unwrap().len(), 25);
}

/// Free text, address operators, flags and negation, with the count of all
/// matches beside the page.
fn search_finds_words_addresses_and_flags(open: Open<'_>) {
    let store = open();
    let ids = store
        .import(vec![
            message(
                "rick@example.com",
                "morty@example.com",
                &["morty@example.com"],
                "portal gun",
                "Wubba lubba",
            ),
            message(
                "beth@example.com",
                "jerry@example.com",
                &["jerry@example.com"],
                "horse surgery",
                "a portal to nowhere",
            ),
            message(
                "summer@example.com",
                "rick@example.com",
                &["rick@example.com"],
                "phone",
                "nothing here",
            ),
        ])
        .unwrap();
    store.set_read(&[ids[0]], true).unwrap();
    store
        .set_flags(
            &[ids[2]],
            FlagChange {
                read: None,
                flagged: Some(true),
            },
        )
        .unwrap();
    assert_eq!(search(&store, "portal"), (2, vec![ids[1], ids[0]]));
    assert_eq!(search(&store, "lubba"), (1, vec![ids[0]]));
    assert_eq!(search(&store, "from:beth@example.com"), (1, vec![ids[1]]));
    assert_eq!(search(&store, "to:rick@example.com"), (1, vec![ids[2]]));
    assert_eq!(search(&store, "subject:phone"), (1, vec![ids[2]]));
    assert_eq!(search(&store, "is:unread"), (2, vec![ids[2], ids[1]]));
    assert_eq!(search(&store, "is:read portal"), (1, vec![ids[0]]));
    assert_eq!(search(&store, "portal -surgery"), (1, vec![ids[0]]));
    assert_eq!(search(&store, "\"to nowhere\""), (1, vec![ids[1]]));
    assert_eq!(search(&store, "zyxwv"), (0, vec![]));
    let first = SearchQuery::parse("portal").unwrap();
    let limited = store.search(&first, &page(1, 0, None)).unwrap();
    assert_eq!((limited.matches, limited.messages.len()), (2, 1));
}

/// Read and the star change independently, and only for messages that exist.
fn flags_change_and_count(open: Open<'_>) {
    let store = open();
    let ids = store.import((1..=3).map(numbered).collect()).unwrap();
    let missing = MessageId(ids[2].0 + 10);
    let star = FlagChange {
        read: None,
        flagged: Some(true),
    };
    assert_eq!(
        store
            .set_flags(&[ids[0], ids[1], missing, ids[0]], star)
            .unwrap(),
        2
    );
    let flags = |id| {
        let summary = store.get(id).unwrap().unwrap().summary;
        (summary.read, summary.flagged)
    };
    assert_eq!(flags(ids[0]), (false, true));
    assert_eq!(flags(ids[2]), (false, false));
    assert_eq!(store.set_read(&[ids[0], ids[2]], true).unwrap(), 2);
    assert_eq!(flags(ids[0]), (true, true), "marking read keeps the star");
    assert_eq!(flags(ids[2]), (true, false));
    assert_eq!(store.count().unwrap().unread, 1);
    let both = FlagChange {
        read: Some(false),
        flagged: Some(false),
    };
    assert_eq!(store.set_flags(&[ids[0]], both).unwrap(), 1);
    assert_eq!(flags(ids[0]), (false, false));
    assert_eq!(store.count().unwrap().unread, 2);
    let listed: Vec<(bool, bool)> = store
        .list(&ListQuery::default())
        .unwrap()
        .iter()
        .map(|m| (m.read, m.flagged))
        .collect();
    assert_eq!(listed, [(true, false), (false, true), (false, false)]);
    assert_eq!(store.set_flags(&[missing], star).unwrap(), 0);
    assert_eq!(store.set_flags(&[], star).unwrap(), 0);
}

/// A mailbox holds what was sent to an address: as envelope recipient, in To
/// or in Cc, whatever the case; a bare name sees its local part at any domain.
fn maildrops_hold_the_mail_sent_to_an_address(open: Open<'_>) {
    let store = open();
    let mut cc = message(
        "a@x.test",
        "Other <other@x.test>",
        &["other@x.test"],
        "cc",
        "c",
    );
    cc.raw = b"From: a@x.test\r\nTo: other@x.test\r\nCc: Morty <MORTY@example.com>\r\nSubject: cc\r\n\r\nc\r\n".to_vec();
    let ids = deliver(
        &store,
        [
            message(
                "a@x.test",
                "b@x.test",
                &["Morty@Example.com"],
                "envelope",
                "1",
            ),
            message(
                "a@x.test",
                "morty@other.test",
                &["bcc@x.test"],
                "to header",
                "2",
            ),
            cc,
            message(
                "a@x.test",
                "xmorty@example.com",
                &["xmorty@example.com"],
                "other",
                "4",
            ),
            message(
                "a@x.test",
                "b@x.test",
                &["morty@odd@example.com"],
                "quoted",
                "5",
            ),
            message(
                "a@x.test",
                "morty@example.com",
                &["morty@example.com"],
                "both",
                "6",
            ),
        ],
    );
    let drop = |recipient| -> Vec<MessageId> {
        store
            .maildrop(Some(recipient))
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    };
    assert_eq!(drop("morty@example.com"), [ids[0], ids[2], ids[5]]);
    assert_eq!(drop("MORTY@EXAMPLE.COM"), [ids[0], ids[2], ids[5]]);
    assert_eq!(
        drop("morty"),
        [ids[0], ids[1], ids[2], ids[5]],
        "every domain, each message once; not xmorty, nor morty@odd, whose local part is \"morty@odd\""
    );
    assert_eq!(
        drop("bcc@x.test"),
        [ids[1]],
        "a blind recipient has its mail"
    );
    assert_eq!(drop("nobody@example.com"), []);
    let all = store.maildrop(None).unwrap();
    assert_eq!(all.iter().map(|(id, _)| *id).collect::<Vec<_>>(), ids);
    let size = store.get(ids[3]).unwrap().unwrap().raw.len() as u64;
    assert_eq!(all[3].1, size, "with sizes in bytes");
    store.delete(&[ids[0]]).unwrap();
    assert_eq!(
        drop("morty@example.com"),
        [ids[2], ids[5]],
        "deleted mail leaves"
    );
}

/// Every change made through a handle is announced to its subscribers once
/// committed.
fn changes_are_announced(open: Open<'_>) {
    let store = open();
    let runtime = runtime();
    let mut events = store.subscribe();
    let id = runtime.block_on(store.deliver(numbered(1))).unwrap();
    let StoreEvent::New(summary) = next_event(&runtime, &mut events) else {
        panic!("not New")
    };
    assert_eq!((summary.id, summary.subject.as_str()), (id, "number1"));
    let imported = store.import(vec![numbered(2)]).unwrap()[0];
    assert!(matches!(next_event(&runtime, &mut events), StoreEvent::New(m) if m.id == imported));
    store
        .set_flags(
            &[id, imported],
            FlagChange {
                read: Some(true),
                flagged: Some(true),
            },
        )
        .unwrap();
    assert_eq!(
        next_event(&runtime, &mut events),
        StoreEvent::ReadChanged(vec![id, imported], true)
    );
    assert_eq!(
        next_event(&runtime, &mut events),
        StoreEvent::FlaggedChanged(vec![id, imported], true)
    );
    // Changing nothing announces nothing: the next event is the delete.
    store.set_read(&[id], true).unwrap();
    store.delete(&[id]).unwrap();
    assert_eq!(
        next_event(&runtime, &mut events),
        StoreEvent::Deleted(vec![id])
    );
    store.delete_all().unwrap();
    assert_eq!(next_event(&runtime, &mut events), StoreEvent::DeletedAll);
}

/// Threads delivering, listing, searching and flagging at once all succeed,
/// and every message ends up stored once.
fn readers_and_writers_work_at_once(open: Open<'_>) {
    const WRITERS: usize = 4;
    const PER_WRITER: usize = 25;
    let store = open();
    let start = Arc::new(Barrier::new(WRITERS + 3));
    let writing = Arc::new(AtomicBool::new(true));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (store, start) = (store.clone(), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                deliver(&store, (0..PER_WRITER).map(|n| numbered(w * 1000 + n)))
            })
        })
        .collect();
    let readers: Vec<_> = (0..3)
        .map(|r| {
            let (store, start, writing) = (store.clone(), Arc::clone(&start), Arc::clone(&writing));
            std::thread::spawn(move || {
                start.wait();
                let mut last_total = 0;
                let mut rounds = 0;
                while writing.load(Ordering::Relaxed) && rounds < 10_000 {
                    let total = store.count().unwrap().total;
                    assert!(total >= last_total, "the count went back");
                    last_total = total;
                    let listed = store.list(&page(20, 0, None)).unwrap();
                    assert!(listed.windows(2).all(|w| w[0].id > w[1].id));
                    if r == 0 {
                        search(&store, "body");
                    } else if let Some(newest) = listed.first() {
                        store.set_read(&[newest.id], true).unwrap();
                    }
                    rounds += 1;
                }
            })
        })
        .collect();
    let mut delivered = BTreeSet::new();
    for writer in writers {
        for id in writer.join().unwrap() {
            assert!(delivered.insert(id), "id {id} given twice");
        }
    }
    writing.store(false, Ordering::Relaxed);
    for reader in readers {
        reader.join().unwrap();
    }
    assert_eq!(delivered.len(), WRITERS * PER_WRITER);
    assert_eq!(store.count().unwrap().total, delivered.len() as u64);
    let listed: BTreeSet<MessageId> = ids(&store.list(&page(1000, 0, None)).unwrap())
        .into_iter()
        .collect();
    assert_eq!(listed, delivered);
}

/// Deletes by id (missing and repeated ids are no error) and of everything;
/// ids are never given out again.
fn deletes_remove_and_ids_are_never_reused(open: Open<'_>) {
    let store = open();
    let ids = deliver(&store, (1..=5).map(numbered));
    let missing = MessageId(ids[4].0 + 50);
    assert_eq!(store.delete(&[ids[1], ids[1], missing, ids[3]]).unwrap(), 2);
    assert!(store.get(ids[1]).unwrap().is_none());
    assert_eq!(
        crate::ids(&store.list(&ListQuery::default()).unwrap()),
        [ids[4], ids[2], ids[0]]
    );
    assert_eq!(store.delete_all().unwrap(), 3);
    assert_eq!(store.count().unwrap().total, 0);
    assert!(store.list(&ListQuery::default()).unwrap().is_empty());
    assert_eq!(store.runtime_stats().messages_deleted, 5);
    assert_eq!(store.runtime_stats().messages_accepted, 5);
    drop(store);
    let store = open();
    let next = deliver(&store, [numbered(6)])[0];
    assert!(next > ids[4], "{next} reuses an id");
    assert_eq!(store.delete_all().unwrap(), 1);
    assert_eq!(store.delete_all().unwrap(), 0);
}

/// UIDVALIDITY is set when the store is made and stays across opens.
fn uid_validity_is_fixed(open: Open<'_>) {
    let store = open();
    let first = store.uid_validity().unwrap();
    assert_ne!(first, 0);
    deliver(&store, [numbered(1)]);
    store.delete_all().unwrap();
    drop(store);
    assert_eq!(open().uid_validity().unwrap(), first);
}

/// Every change to a message gives it a modseq above every earlier one;
/// `changed_since` finds exactly the messages changed after a point.
fn modseq_grows_with_each_change(open: Open<'_>) {
    let store = open();
    let before = store.highest_modseq().unwrap();
    let ids = deliver(&store, (1..=3).map(numbered));
    let modseqs = store.changed_since(before).unwrap();
    assert_eq!(modseqs.iter().map(|(id, _)| *id).collect::<Vec<_>>(), ids);
    assert!(
        modseqs.windows(2).all(|w| w[0].1 < w[1].1),
        "each delivery is a change of its own: {modseqs:?}"
    );
    let delivered = store.highest_modseq().unwrap();
    assert!(delivered >= modseqs[2].1);

    store.set_read(&[ids[0]], true).unwrap();
    let changed = store.changed_since(delivered).unwrap();
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].0, ids[0]);
    assert!(changed[0].1 > delivered);
    assert_eq!(store.highest_modseq().unwrap(), changed[0].1);

    // Tags are a change too (IMAP keywords, later), also when renamed.
    let flagged = store.highest_modseq().unwrap();
    store.add_tags(&[ids[2]], &["later"]).unwrap();
    let changed = store.changed_since(flagged).unwrap();
    assert_eq!(
        changed.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        [ids[2]]
    );
    let tagged = store.highest_modseq().unwrap();
    store.rename_tag("later", "someday").unwrap();
    let changed = store.changed_since(tagged).unwrap();
    assert_eq!(
        changed.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        [ids[2]]
    );

    // Changing nothing is no change.
    let now = store.highest_modseq().unwrap();
    store.set_read(&[ids[0]], true).unwrap();
    assert_eq!(store.highest_modseq().unwrap(), now);
    assert!(store.changed_since(now).unwrap().is_empty());

    // A delete moves the highest modseq on, so a client knows to look.
    store.delete(&[ids[1]]).unwrap();
    assert!(store.highest_modseq().unwrap() > now);
    let all: Vec<MessageId> = store
        .changed_since(0)
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(all, [ids[0], ids[2]]);
    drop(store);
    assert!(open().highest_modseq().unwrap() > now, "kept across opens");
}
