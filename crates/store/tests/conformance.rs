//! The store's conformance suite: what every backend behind [`Store`] must do,
//! written against the public API alone.
//!
//! Each case is a function that takes an opener: every call opens the same
//! store (a fresh one per case), so a case can also drop its handle and open
//! the store again, or hold two at once. The openers and `cases!` are in
//! `backends/`: each backend is one more `cases!` invocation that runs every
//! case unchanged.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, SystemTime};

use sokkel_store::{
    Deliver, Envelope, FlagChange, FlagEdit, Flags, Folder, Folders, ListQuery, MailboxError,
    MessageId, NewMessage, RELAY_ATTEMPTS_KEPT, RELAY_REPLY_BYTES, RelayAttempt, SearchQuery,
    Store, StoreEvent,
};
use tokio::sync::broadcast;

mod backends;

use backends::{Open, cases, postgres, sqlite};

/// Every case on every backend, from one list.
macro_rules! on_every_backend {
    ($($case:ident),* $(,)?) => {
        cases!(sqlite: $($case),*);
        cases!(interop postgres: $($case),*);
    };
}

on_every_backend!(
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
    folder_uids_ascend_and_a_late_tag_goes_last,
    folders_have_their_own_uid_validity,
    flags_are_shared_by_every_folder_but_sent,
    expunge_deletes_untags_or_drops_the_copy,
    copy_returns_the_uids_in_the_target,
    append_stores_into_each_folder,
    folders_are_created_renamed_and_deleted,
    sent_copies_stay_apart_from_the_caught_mail,
    the_inbox_of_a_login_holds_its_mail,
    modseq_moves_on_every_folder_change,
    changes_give_only_what_moved_past_a_modseq,
    relay_attempts_are_kept_with_their_message,
    one_message_matches_a_search_once_indexed,
    uids_ascend_in_commit_order_across_handles,
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

/// The store as the IMAP shell sees it: through the trait alone.
fn folders(store: &Store) -> &dyn Folders {
    store
}

fn inbox() -> Folder {
    Folder::Inbox { recipient: None }
}

fn tag(name: &str) -> Folder {
    Folder::Tag(name.into())
}

fn flags(seen: bool, flagged: bool, other: &[&str]) -> Flags {
    Flags {
        seen,
        flagged,
        other: other.iter().map(|flag| flag.to_string()).collect(),
    }
}

/// The UIDs and ids of `folder`, and its UIDNEXT.
fn listing(store: &Store, folder: &Folder) -> (Vec<(u32, MessageId)>, u32) {
    let (messages, next) = folders(store)
        .messages(folder)
        .unwrap()
        .expect("the folder exists");
    let uids = messages.iter().map(|m| (m.uid, m.id)).collect();
    (uids, next)
}

/// The flags of message `id` in `folder`.
fn flags_in(store: &Store, folder: &Folder, id: MessageId) -> Flags {
    let (messages, _) = folders(store).messages(folder).unwrap().unwrap();
    messages
        .into_iter()
        .find(|m| m.id == id)
        .expect("the message is in the folder")
        .flags
}

fn refused<T: std::fmt::Debug>(result: Result<T, MailboxError>) -> bool {
    matches!(result, Err(MailboxError::Refused(_)))
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
    // Deliveries that arrive together may share one change (SQLite writes
    // the rows of many logged messages in one transaction): never going back.
    assert!(
        modseqs.windows(2).all(|w| w[0].1 <= w[1].1) && modseqs[0].1 > before,
        "deliveries are changes after the one before: {modseqs:?}"
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

/// Each folder numbers its messages in the order they entered it (RFC 3501
/// 2.3.1.1): a message tagged late gets a UID above every earlier one there,
/// though its id is older, and UIDNEXT is above them all.
fn folder_uids_ascend_and_a_late_tag_goes_last(open: Open<'_>) {
    let store = open();
    let f = folders(&store);
    let ids = deliver(&store, (1..=3).map(numbered));
    let (a, b, c) = (ids[0], ids[1], ids[2]);
    let uid = |id: MessageId| u32::try_from(id.0).unwrap();
    assert_eq!(
        listing(&store, &inbox()),
        (vec![(uid(a), a), (uid(b), b), (uid(c), c)], uid(c) + 1),
        "the INBOX's UIDs are the store's ids"
    );

    store.add_tags(&[c], &["work"]).unwrap();
    store.add_tags(&[a], &["work"]).unwrap();
    assert_eq!(f.copy(&inbox(), &[b], &tag("work")).unwrap(), [3]);
    assert_eq!(
        listing(&store, &tag("work")),
        (vec![(1, c), (2, a), (3, b)], 4)
    );

    // Taken off and put back, a message enters the folder anew.
    store.remove_tags(&[a], &["work"]).unwrap();
    store.add_tags(&[a], &["WORK"]).unwrap();
    assert_eq!(
        listing(&store, &tag("Work")),
        (vec![(1, c), (3, b), (4, a)], 5)
    );

    // Ids and UIDs are never reused, in either folder.
    store.delete(&[c]).unwrap();
    let d = deliver(&store, [numbered(4)])[0];
    store.add_tags(&[d], &["work"]).unwrap();
    assert_eq!(
        listing(&store, &tag("work")),
        (vec![(3, b), (4, a), (5, d)], 6)
    );
    let (inbox_uids, next) = listing(&store, &inbox());
    assert_eq!(inbox_uids, [(uid(a), a), (uid(b), b), (uid(d), d)]);
    assert_eq!(next, uid(d) + 1);
    assert!(f.messages(&tag("nothing")).unwrap().is_none());
}

/// A tag's folder has a UIDVALIDITY of its own, new when the tag is deleted
/// and made again, so a client never mixes up the old folder's UIDs with the
/// new one's; every UIDVALIDITY stays across opens.
fn folders_have_their_own_uid_validity(open: Open<'_>) {
    let store = open();
    let f = folders(&store);
    let store_validity = store.uid_validity().unwrap();
    assert_eq!(f.uid_validity(&inbox()).unwrap(), store_validity);
    assert_ne!(f.uid_validity(&Folder::Sent).unwrap(), 0);
    assert!(refused(f.uid_validity(&tag("work"))), "no such folder");

    assert!(f.create_folder("work").unwrap());
    let first = f.uid_validity(&tag("work")).unwrap();
    assert_ne!(first, 0);
    assert_eq!(listing(&store, &tag("work")), (vec![], 1));
    let id = deliver(&store, [numbered(1)])[0];
    store.add_tags(&[id], &["home"]).unwrap();
    let home = f.uid_validity(&tag("home")).unwrap();
    assert_ne!(home, first, "each tag has its own");

    assert!(f.delete_folder("work").unwrap());
    assert!(f.messages(&tag("work")).unwrap().is_none());
    assert!(f.create_folder("Work").unwrap());
    let second = f.uid_validity(&tag("work")).unwrap();
    assert!(
        second != first && second != home,
        "made again, a new UIDVALIDITY: {first} {second}"
    );
    drop(store);
    let store = open();
    let f = folders(&store);
    assert_eq!(f.uid_validity(&tag("work")).unwrap(), second);
    assert_eq!(f.uid_validity(&tag("home")).unwrap(), home);
    assert_eq!(f.uid_validity(&inbox()).unwrap(), store_validity);
}

/// A message's flags are the same in every folder that shows it; `\Seen` is
/// the read state and `\Flagged` the star the web page and API show; other
/// flags keep the client's spelling. Sent copies have flags of their own.
fn flags_are_shared_by_every_folder_but_sent(open: Open<'_>) {
    let store = open();
    let f = folders(&store);
    let ids = deliver(&store, (1..=2).map(numbered));
    let (a, b) = (ids[0], ids[1]);
    store.add_tags(&[a], &["work"]).unwrap();

    let add = flags(true, false, &["$Forwarded", "\\Answered"]);
    f.set_flags(&inbox(), &[a], &FlagEdit::Add(add.clone()))
        .unwrap();
    assert_eq!(flags_in(&store, &tag("work"), a), add);
    assert!(store.get(a).unwrap().unwrap().summary.read);
    assert_eq!(store.count().unwrap().unread, 1);

    // The star set on the web page is \Flagged; a repeat in another case is
    // no second flag.
    store
        .set_flags(
            &[a],
            FlagChange {
                read: None,
                flagged: Some(true),
            },
        )
        .unwrap();
    f.set_flags(
        &tag("work"),
        &[a],
        &FlagEdit::Add(flags(false, false, &["$forwarded"])),
    )
    .unwrap();
    assert_eq!(
        flags_in(&store, &inbox(), a),
        flags(true, true, &["$Forwarded", "\\Answered"])
    );

    // Taking \Seen off in a tag's folder marks it unread everywhere.
    f.set_flags(
        &tag("work"),
        &[a],
        &FlagEdit::Remove(flags(true, false, &["\\ANSWERED"])),
    )
    .unwrap();
    let summary = store.get(a).unwrap().unwrap().summary;
    assert!(!summary.read && summary.flagged);
    assert_eq!(store.count().unwrap().unread, 2);
    assert_eq!(
        flags_in(&store, &inbox(), a),
        flags(false, true, &["$Forwarded"])
    );

    // STORE FLAGS replaces them all, on every message named.
    let set = flags(true, false, &["NonJunk"]);
    f.set_flags(&inbox(), &[a, b], &FlagEdit::Set(set.clone()))
        .unwrap();
    assert_eq!(flags_in(&store, &inbox(), a), set);
    assert_eq!(flags_in(&store, &inbox(), b), set);
    assert!(!store.get(a).unwrap().unwrap().summary.flagged);

    // A flag that is not an IMAP atom is refused and changes nothing.
    assert!(refused(f.set_flags(
        &inbox(),
        &[a],
        &FlagEdit::Set(flags(false, false, &["two words"]))
    )));
    assert_eq!(flags_in(&store, &inbox(), a), set);

    // A sent copy's flags are its own.
    let sent = f
        .append(
            &Folder::Sent,
            b"Subject: s\r\n\r\nx\r\n".to_vec(),
            &flags(false, false, &[]),
            SystemTime::now(),
        )
        .unwrap();
    let sent = MessageId(i64::from(sent));
    f.set_flags(
        &Folder::Sent,
        &[sent],
        &FlagEdit::Add(flags(true, true, &["$Sent"])),
    )
    .unwrap();
    assert_eq!(
        flags_in(&store, &Folder::Sent, sent),
        flags(true, true, &["$Sent"])
    );
    assert_eq!(flags_in(&store, &inbox(), a), set);
}

/// EXPUNGE in the INBOX deletes from the store; in a tag's folder it takes
/// the tag off and clears `\Deleted` (the message stays in the INBOX, and the
/// folder stays though empty); in Sent it deletes the copy.
fn expunge_deletes_untags_or_drops_the_copy(open: Open<'_>) {
    let store = open();
    let f = folders(&store);
    let ids = deliver(&store, (1..=3).map(numbered));
    let (a, b, c) = (ids[0], ids[1], ids[2]);
    store.add_tags(&[a, b], &["work"]).unwrap();
    let deleted = flags(true, false, &["\\Deleted", "$label1"]);
    f.set_flags(&tag("work"), &[a], &FlagEdit::Add(deleted))
        .unwrap();

    f.expunge(&tag("work"), &[a]).unwrap();
    assert_eq!(listing(&store, &tag("work")).0, [(2, b)]);
    assert!(store.get(a).unwrap().is_some(), "still in the store");
    assert_eq!(
        flags_in(&store, &inbox(), a),
        flags(true, false, &["$label1"])
    );
    assert!(store.get(a).unwrap().unwrap().summary.tags.is_empty());

    f.expunge(&inbox(), &[b]).unwrap();
    assert!(store.get(b).unwrap().is_none(), "deleted from the store");
    assert_eq!(listing(&store, &inbox()).0.len(), 2);
    assert_eq!(listing(&store, &tag("work")).0, [], "and from its folders");
    assert!(
        f.folder_names().unwrap().contains(&"work".to_string()),
        "a folder emptied by EXPUNGE stays"
    );

    let s1 = f
        .append(
            &Folder::Sent,
            b"Subject: 1\r\n\r\n1\r\n".to_vec(),
            &Flags::default(),
            SystemTime::now(),
        )
        .unwrap();
    let s2 = f
        .append(
            &Folder::Sent,
            b"Subject: 2\r\n\r\n2\r\n".to_vec(),
            &Flags::default(),
            SystemTime::now(),
        )
        .unwrap();
    let (s1, s2) = (MessageId(s1.into()), MessageId(s2.into()));
    f.expunge(&Folder::Sent, &[s1]).unwrap();
    assert_eq!(listing(&store, &Folder::Sent).0, [(2, s2)]);
    assert!(f.raw(&Folder::Sent, s1).unwrap().is_none());
    assert!(f.raw(&Folder::Sent, s2).unwrap().is_some());
    assert_eq!(
        store.count().unwrap().total,
        2,
        "the caught mail is untouched"
    );
    assert!(store.get(c).unwrap().is_some());
}

/// COPY answers the UID each message got in the target, for COPYUID: a tag's
/// folder adds the tag (a message that has it keeps its UID), the INBOX has
/// the message already, Sent makes copies, and a sent copy copied out of
/// Sent is delivered as a new message. All or nothing.
fn copy_returns_the_uids_in_the_target(open: Open<'_>) {
    let store = open();
    let f = folders(&store);
    let ids = deliver(&store, (1..=2).map(numbered));
    let (a, b) = (ids[0], ids[1]);
    assert!(f.create_folder("work").unwrap());
    assert_eq!(f.copy(&inbox(), &[b, a], &tag("work")).unwrap(), [1, 2]);
    assert_eq!(f.copy(&tag("work"), &[a], &tag("work")).unwrap(), [2]);
    assert_eq!(store.get(b).unwrap().unwrap().summary.tags, ["work"]);
    let uid_a = u32::try_from(a.0).unwrap();
    assert_eq!(f.copy(&tag("work"), &[a], &inbox()).unwrap(), [uid_a]);

    f.set_flags(&inbox(), &[a], &FlagEdit::Add(flags(true, false, &["$x"])))
        .unwrap();
    let sent = f.copy(&inbox(), &[a], &Folder::Sent).unwrap();
    assert_eq!(sent, [1]);
    let sent = MessageId(sent[0].into());
    assert_eq!(f.raw(&Folder::Sent, sent).unwrap(), store.raw(a).unwrap());
    assert_eq!(
        flags_in(&store, &Folder::Sent, sent),
        flags(true, false, &["$x"])
    );

    let back = f.copy(&Folder::Sent, &[sent], &inbox()).unwrap();
    let new = MessageId(back[0].into());
    assert!(new > b, "delivered as a new message");
    assert_eq!(store.raw(new).unwrap(), store.raw(a).unwrap());
    assert_eq!(store.count().unwrap().total, 3);
    assert_eq!(f.copy(&Folder::Sent, &[sent], &tag("work")).unwrap(), [3]);
    assert_eq!(store.count().unwrap().total, 4);

    assert!(refused(f.copy(&inbox(), &[a], &tag("nowhere"))));
    let before = listing(&store, &tag("work"));
    assert!(
        refused(f.copy(&inbox(), &[b, MessageId(999)], &tag("other"))),
        "no such folder"
    );
    store.add_tags(&[b], &["other"]).unwrap();
    assert!(
        refused(f.copy(&inbox(), &[a, MessageId(999)], &tag("other"))),
        "a message that is gone"
    );
    assert_eq!(listing(&store, &tag("other")).0, [(1, b)], "nothing copied");
    assert_eq!(listing(&store, &tag("work")), before);
}

/// APPEND into the INBOX stores a message as if delivered (with the envelope
/// its headers give, on the web page and in search at once), into a tag's
/// folder the same with that tag, into Sent a copy apart from the caught mail.
fn append_stores_into_each_folder(open: Open<'_>) {
    let store = open();
    let f = folders(&store);
    let mut events = store.subscribe();
    let raw = b"From: Rick <rick@example.com>\r\nTo: morty@example.com\r\nCc: summer@example.com\r\nSubject: appended\r\n\r\nhello\r\n".to_vec();
    let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let uid = f
        .append(
            &inbox(),
            raw.clone(),
            &flags(true, false, &["$label1"]),
            when,
        )
        .unwrap();
    let id = MessageId(uid.into());
    let stored = store.get(id).unwrap().expect("stored");
    assert_eq!(stored.raw, raw);
    assert_eq!(stored.envelope.mail_from, "rick@example.com");
    assert_eq!(
        stored.envelope.rcpt_to,
        ["morty@example.com", "summer@example.com"]
    );
    assert_eq!(stored.envelope.helo, "imap");
    assert!(stored.summary.read);
    assert_eq!(stored.summary.received_at, when);
    assert_eq!(search(&store, "appended"), (1, vec![id]));
    assert_eq!(
        store.maildrop(Some("summer")).unwrap(),
        [(id, raw.len() as u64)]
    );
    match events.try_recv() {
        Ok(StoreEvent::New(summary)) => assert_eq!(summary.id, id),
        other => panic!("announced as new: {other:?}"),
    }
    let (messages, _) = f.messages(&inbox()).unwrap().unwrap();
    assert_eq!(messages[0].received_at, when);
    assert_eq!(messages[0].size, raw.len() as u64);
    assert_eq!(messages[0].flags, flags(true, false, &["$label1"]));

    assert!(refused(f.append(
        &tag("work"),
        raw.clone(),
        &Flags::default(),
        when
    )));
    assert!(f.create_folder("work").unwrap());
    assert_eq!(
        f.append(&tag("work"), raw.clone(), &Flags::default(), when)
            .unwrap(),
        1
    );
    let tagged = listing(&store, &tag("work")).0[0].1;
    assert_eq!(store.get(tagged).unwrap().unwrap().summary.tags, ["work"]);
    assert_eq!(store.count().unwrap().total, 2);

    let sent = f
        .append(&Folder::Sent, raw.clone(), &Flags::default(), when)
        .unwrap();
    assert_eq!(sent, 1);
    assert_eq!(f.raw(&Folder::Sent, MessageId(1)).unwrap(), Some(raw));
    assert_eq!(
        store.count().unwrap().total,
        2,
        "a sent copy is not caught mail"
    );
}

/// CREATE makes a folder that stays while empty; RENAME renames the tag on
/// every message and keeps the folder's UIDs; DELETE takes the tag off every
/// message, which stay in the INBOX. A tag never made as a folder still goes
/// once no message has it.
fn folders_are_created_renamed_and_deleted(open: Open<'_>) {
    let store = open();
    let f = folders(&store);
    let a = deliver(&store, [numbered(1)])[0];
    assert!(f.create_folder("Projects").unwrap());
    assert!(!f.create_folder("projects").unwrap(), "exists already");
    assert_eq!(f.folder_names().unwrap(), ["Projects"]);
    assert!(refused(f.create_folder("a/b")), "not a tag name");

    store.add_tags(&[a], &["x"]).unwrap();
    let validity = f.uid_validity(&tag("x")).unwrap();
    assert_eq!(f.folder_names().unwrap(), ["Projects", "x"]);
    assert!(f.rename_folder("x", "y").unwrap());
    assert_eq!(store.get(a).unwrap().unwrap().summary.tags, ["y"]);
    assert_eq!(listing(&store, &tag("y")).0, [(1, a)]);
    assert_eq!(f.uid_validity(&tag("y")).unwrap(), validity);
    assert!(!f.rename_folder("x", "z").unwrap());
    assert!(
        refused(f.rename_folder("y", "projects")),
        "the name is taken"
    );
    assert!(f.rename_folder("Projects", "Archive").unwrap());
    assert_eq!(f.folder_names().unwrap(), ["Archive", "y"]);

    assert!(f.delete_folder("y").unwrap());
    assert!(!f.delete_folder("y").unwrap());
    assert!(store.get(a).unwrap().unwrap().summary.tags.is_empty());
    assert_eq!(listing(&store, &inbox()).0.len(), 1);
    assert_eq!(f.folder_names().unwrap(), ["Archive"]);

    store.add_tags(&[a], &["temp"]).unwrap();
    store.remove_tags(&[a], &["temp"]).unwrap();
    assert_eq!(
        f.folder_names().unwrap(),
        ["Archive"],
        "temp was only a tag"
    );
    assert!(f.delete_folder("Archive").unwrap());
    assert!(f.folder_names().unwrap().is_empty());
}

/// Sent copies are nowhere the caught mail is: not listed, searched,
/// counted, in a maildrop or in the INBOX, and deleting all mail leaves them.
fn sent_copies_stay_apart_from_the_caught_mail(open: Open<'_>) {
    let store = open();
    let f = folders(&store);
    // Imported, so that it is in the search index at once.
    let a = store.import(vec![numbered(1)]).unwrap()[0];
    let raw =
        b"From: morty@example.com\r\nTo: rick@example.com\r\nSubject: number1\r\n\r\nbody\r\n";
    f.append(
        &Folder::Sent,
        raw.to_vec(),
        &Flags::default(),
        SystemTime::now(),
    )
    .unwrap();
    assert_eq!(ids(&store.list(&ListQuery::default()).unwrap()), [a]);
    assert_eq!(search(&store, "number1"), (1, vec![a]));
    assert_eq!(search(&store, ""), (1, vec![a]));
    assert_eq!(store.count().unwrap().total, 1);
    assert_eq!(store.maildrop(None).unwrap().len(), 1);
    assert_eq!(store.maildrop(Some("rick@example.com")).unwrap().len(), 0);
    assert_eq!(store.latest().unwrap(), Some(a));
    assert_eq!(
        listing(&store, &inbox()).0,
        [(u32::try_from(a.0).unwrap(), a)]
    );
    store.delete_all().unwrap();
    assert_eq!(listing(&store, &Folder::Sent).0.len(), 1);
}

/// With the per-recipient option, a login's INBOX holds only the mail sent
/// to it, as its POP3 maildrop does.
fn the_inbox_of_a_login_holds_its_mail(open: Open<'_>) {
    let store = open();
    let morty = deliver(&store, [numbered(1)])[0];
    let summer = deliver(
        &store,
        [message(
            "a@x.test",
            "summer@example.com",
            &["summer@example.com"],
            "s",
            "s",
        )],
    )[0];
    let of = |login: &str| Folder::Inbox {
        recipient: Some(login.into()),
    };
    let (all, next) = listing(&store, &inbox());
    assert_eq!(all.len(), 2);
    for login in ["morty", "MORTY@example.com"] {
        assert_eq!(
            listing(&store, &of(login)),
            (vec![(u32::try_from(morty.0).unwrap(), morty)], next)
        );
    }
    assert_eq!(listing(&store, &of("summer")).0[0].1, summer);
    assert_eq!(listing(&store, &of("nobody")).0, []);
}

/// HIGHESTMODSEQ moves on every change a session must see, each announced:
/// other flags, Sent, tag folders, expunges, appends, folder changes.
fn modseq_moves_on_every_folder_change(open: Open<'_>) {
    let store = open();
    let f = folders(&store);
    let a = deliver(&store, [numbered(1)])[0];
    let mut events = store.subscribe();
    let mut last = f.highest_modseq().unwrap();
    let mut moved = |what: &str| {
        let now = f.highest_modseq().unwrap();
        assert!(now > last, "{what}: {last} -> {now}");
        assert!(events.try_recv().is_ok(), "{what} is announced");
        while events.try_recv().is_ok() {}
        last = now;
    };
    let keyword = FlagEdit::Add(flags(false, false, &["$label1"]));
    f.set_flags(&inbox(), &[a], &keyword).unwrap();
    moved("a keyword");
    assert_eq!(
        f.messages(&inbox()).unwrap().unwrap().0[0].modseq,
        f.highest_modseq().unwrap()
    );
    f.create_folder("work").unwrap();
    moved("create");
    f.copy(&inbox(), &[a], &tag("work")).unwrap();
    moved("copy into a tag");
    f.expunge(&tag("work"), &[a]).unwrap();
    moved("expunge from a tag");
    f.rename_folder("work", "play").unwrap();
    moved("rename");
    f.delete_folder("play").unwrap();
    moved("delete");
    let sent = f
        .append(
            &Folder::Sent,
            b"x\r\n".to_vec(),
            &Flags::default(),
            SystemTime::now(),
        )
        .unwrap();
    moved("append to Sent");
    let sent = MessageId(sent.into());
    f.set_flags(&Folder::Sent, &[sent], &keyword).unwrap();
    moved("flags in Sent");
    f.expunge(&Folder::Sent, &[sent]).unwrap();
    moved("expunge from Sent");
    let b = f
        .append(
            &inbox(),
            b"Subject: b\r\n\r\nb\r\n".to_vec(),
            &Flags::default(),
            SystemTime::now(),
        )
        .unwrap();
    moved("append to the INBOX");
    f.expunge(&inbox(), &[MessageId(b.into())]).unwrap();
    moved("expunge from the INBOX");
    let now = f.highest_modseq().unwrap();
    f.set_flags(&inbox(), &[a], &keyword).unwrap();
    assert_eq!(f.highest_modseq().unwrap(), now, "no change, no move");
}

/// A poll reads only what changed (issue #13: a delivery must not cost every
/// idling IMAP session a full listing): the messages past the modseq it saw,
/// the folder's count and UIDNEXT, in every kind of folder.
fn changes_give_only_what_moved_past_a_modseq(open: Open<'_>) {
    let store = open();
    let f = folders(&store);
    let ids = deliver(&store, [numbered(1), numbered(2)]);
    f.create_folder("work").unwrap();
    f.copy(&inbox(), &ids, &tag("work")).unwrap();
    let seen = f.highest_modseq().unwrap();
    let none = f.changes(&inbox(), seen).unwrap().unwrap();
    assert_eq!((none.count, none.changed.len()), (2, 0));
    assert_eq!(none.highest_modseq, seen);

    let star = FlagEdit::Add(flags(false, true, &[]));
    f.set_flags(&inbox(), &ids[..1], &star).unwrap();
    let c = deliver(&store, [numbered(3)])[0];
    let changes = f.changes(&inbox(), seen).unwrap().unwrap();
    let changed: Vec<MessageId> = changes.changed.iter().map(|m| m.id).collect();
    assert_eq!(changed, [ids[0], c]);
    assert!(changes.changed[0].flags.flagged);
    assert_eq!(changes.count, 3);
    assert_eq!(changes.uid_next, listing(&store, &inbox()).1);
    assert_eq!(changes.highest_modseq, f.highest_modseq().unwrap());

    // A tag's folder: its own UIDs, its own count.
    let work = f.changes(&tag("work"), seen).unwrap().unwrap();
    assert_eq!(work.count, 2);
    assert_eq!(
        work.changed.iter().map(|m| m.id).collect::<Vec<_>>(),
        [ids[0]]
    );
    assert_eq!(work.changed[0].uid, listing(&store, &tag("work")).0[0].0);
    assert_eq!(f.changes(&tag("nope"), seen).unwrap(), None);

    // A delete shows as a smaller count: the session then reads the folder.
    f.expunge(&inbox(), &ids[1..]).unwrap();
    assert_eq!(f.changes(&inbox(), seen).unwrap().unwrap().count, 2);
}

// ---------------------------------------------------------------------------------------
// Relay attempts (issue #14)

fn attempt(to: &str, ok: bool, reply: &str) -> RelayAttempt {
    RelayAttempt {
        at: SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_478_400_123),
        recipients: vec![to.to_string()],
        skipped: vec!["boss@example.com".to_string()],
        ok,
        reply: reply.to_string(),
    }
}

fn relay_attempts_are_kept_with_their_message(open: Open<'_>) {
    let store = open();
    let ids = deliver(&store, [numbered(1), numbered(2)]);
    assert_eq!(store.relay_attempts(ids[0]).unwrap(), []);
    let first = attempt("a@example.com", true, "250 2.0.0 queued");
    let second = attempt("b@example.com", false, "connect failed: refused");
    assert!(store.record_relay(ids[0], &first).unwrap());
    assert!(store.record_relay(ids[0], &second).unwrap());
    assert!(
        !store.record_relay(MessageId(999), &first).unwrap(),
        "no such message"
    );
    drop(store);

    // Kept across opening again, oldest first, the time to the millisecond.
    let store = open();
    assert_eq!(
        store.relay_attempts(ids[0]).unwrap(),
        [first.clone(), second]
    );
    assert_eq!(store.relay_attempts(ids[1]).unwrap(), []);

    // Bounded: the newest RELAY_ATTEMPTS_KEPT, each reply cut.
    let long = "x".repeat(RELAY_REPLY_BYTES * 2);
    for n in 0..RELAY_ATTEMPTS_KEPT {
        let reply = if n == 0 {
            long.clone()
        } else {
            format!("250 {n}")
        };
        store
            .record_relay(ids[1], &attempt("c@example.com", true, &reply))
            .unwrap();
    }
    store
        .record_relay(ids[1], &attempt("c@example.com", true, "250 last"))
        .unwrap();
    let kept = store.relay_attempts(ids[1]).unwrap();
    assert_eq!(kept.len(), RELAY_ATTEMPTS_KEPT);
    assert_eq!(kept[0].reply, "250 1", "the oldest went");
    assert_eq!(kept.last().unwrap().reply, "250 last");
    store
        .record_relay(ids[0], &attempt("d@example.com", false, &long))
        .unwrap();
    let cut = store.relay_attempts(ids[0]).unwrap().pop().unwrap();
    assert_eq!(cut.reply.len(), RELAY_REPLY_BYTES);

    // Deleted with the message, and with every message.
    store.delete(&[ids[0]]).unwrap();
    assert_eq!(store.relay_attempts(ids[0]).unwrap(), []);
    store.delete_all().unwrap();
    assert_eq!(store.relay_attempts(ids[1]).unwrap(), []);
}

fn one_message_matches_a_search_once_indexed(open: Open<'_>) {
    let store = open();
    let ids = deliver(
        &store,
        [
            message(
                "rick@example.com",
                "morty@example.com",
                &["morty@example.com"],
                "invoice",
                "pay",
            ),
            message(
                "rick@example.com",
                "beth@example.com",
                &["beth@example.com"],
                "hello",
                "hi",
            ),
        ],
    );
    let query = |text: &str| SearchQuery::parse(text).unwrap();
    // Words wait for the index, which follows a delivery by a moment.
    let answer = |id: MessageId, text: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match store.matches(id, &query(text)).unwrap() {
                Some(matched) => return matched,
                None if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                None => panic!("message {id} never reached the search index"),
            }
        }
    };
    assert!(answer(ids[0], "subject:invoice"));
    assert!(!answer(ids[1], "subject:invoice"));
    assert!(answer(ids[1], "to:beth@example.com -invoice"));
    assert!(answer(ids[0], ""), "an empty query matches");
    // Filters alone need no index.
    assert_eq!(
        store.matches(ids[0], &query("is:unread")).unwrap(),
        Some(true)
    );
    assert_eq!(
        store.matches(ids[0], &query("is:read")).unwrap(),
        Some(false)
    );
    assert_eq!(store.matches(MessageId(999), &query("")).unwrap(), None);
}

/// Two handles on one store (two nodes, on PostgreSQL) delivering and
/// appending at once: every folder's UIDs are handed out in the order the
/// messages become visible, so a reader never sees a new message appear
/// below a UID it has seen already (RFC 3501 2.3.1.1; a client that fetched
/// `UID n:*` would never see it). Also UIDNEXT never falls behind a listing.
fn uids_ascend_in_commit_order_across_handles(open: Open<'_>) {
    const EACH: usize = 30;
    let (one, two, reader) = (open(), open(), open());
    assert!(folders(&one).create_folder("work").unwrap());
    let done = AtomicBool::new(false);
    let raw = |n: usize| format!("Subject: append {n}\r\n\r\nbody {n}\r\n").into_bytes();
    std::thread::scope(|scope| {
        let writers = [&one, &two].map(|store| {
            let raw = &raw;
            scope.spawn(move || {
                let f = folders(store);
                for n in 0..EACH {
                    deliver(store, [numbered(n)]);
                    f.append(&tag("work"), raw(n), &Flags::default(), SystemTime::now())
                        .unwrap();
                    f.append(&inbox(), raw(n), &Flags::default(), SystemTime::now())
                        .unwrap();
                }
            })
        });
        let watcher = scope.spawn(|| {
            let deadline = std::time::Instant::now() + Duration::from_secs(120);
            let mut polls = 0;
            let mut seen = [BTreeSet::new(), BTreeSet::new()];
            // The UIDNEXT each folder's last listing gave.
            let mut told = [1, 1];
            loop {
                let finished = done.load(Ordering::Relaxed);
                let folders = [inbox(), tag("work")];
                for ((folder, seen), told) in folders.iter().zip(&mut seen).zip(&mut told) {
                    let (uids, next) = listing(&reader, folder);
                    let highest = seen.last().copied().unwrap_or(0);
                    for (uid, _) in &uids {
                        assert!(
                            seen.contains(uid) || (*uid > highest && *uid >= *told),
                            "{folder:?}: UID {uid} appeared after UID {highest} was seen \
                             and UIDNEXT {told} told"
                        );
                        assert!(
                            *uid < next,
                            "{folder:?}: UID {uid} at or past UIDNEXT {next}"
                        );
                    }
                    assert!(next >= *told, "{folder:?}: UIDNEXT {told} fell to {next}");
                    seen.extend(uids.iter().map(|(uid, _)| *uid));
                    *told = next;
                }
                polls += 1;
                if finished {
                    return (polls, seen);
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "the writers took 120 s"
                );
            }
        });
        let written = writers.map(|writer| writer.join());
        done.store(true, Ordering::Relaxed);
        for result in written {
            result.unwrap();
        }
        let (polls, seen) = watcher.join().unwrap();
        assert!(polls > 1, "the reader listed the folders while they grew");
        assert_eq!(
            seen[0].len(),
            6 * EACH,
            "every delivery and append (a tag's too)"
        );
        assert_eq!(seen[1].len(), 2 * EACH, "every append to the tag's folder");
    });
}
