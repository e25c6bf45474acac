//! Issue #11: a full store can always be emptied, whether `--max-store-size` or
//! the disk itself is what is full.
//!
//! The disk-full tests mount a small tmpfs of their own: a real file system that
//! answers ENOSPC, not a simulation. That takes root, so they are in the suite
//! `.ci/run` runs as root (`cargo test -- --ignored`), not in the README's test
//! command; without the permission to mount they fail, saying so.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};

use sokkel_store::{
    Deliver, DeliverError, Envelope, ListQuery, MessageId, NewMessage, SearchQuery, Store,
    StoreEvent, StoreOptions,
};
use tempfile::TempDir;

fn message(n: usize, body_bytes: usize) -> NewMessage {
    let word = ["alpha", "beta", "gamma"][n % 3];
    // Varied text, so it does not compress into a few pages of the index.
    let mut body = String::with_capacity(body_bytes + 80);
    let mut i = 0;
    while body.len() < body_bytes {
        body.push_str(&format!("line {n}-{i} {word} filler text\r\n"));
        i += 1;
    }
    NewMessage {
        envelope: Envelope {
            mail_from: "sender@example.com".into(),
            rcpt_to: vec!["rcpt@example.net".into()],
            helo: "client.example.com".into(),
            client_addr: "127.0.0.1:50000".parse().unwrap(),
            bare_lf: false,
            smtputf8: false,
            tls: None,
            auth_user: None,
        },
        received_at: UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + n as u64),
        raw: format!(
            "From: sender@example.com\r\nTo: rcpt@example.net\r\nSubject: m{n} {word}\r\n\r\n{body}"
        )
        .into_bytes(),
    }
}

/// Deliver messages of `body_bytes` until the store refuses one; returns the ids
/// it took. The refusal must be [`DeliverError::Full`].
async fn fill(store: &Store, first: usize, body_bytes: usize) -> Vec<MessageId> {
    let mut ids = Vec::new();
    for n in first..first + 10_000 {
        match store.deliver(message(n, body_bytes)).await {
            Ok(id) => ids.push(id),
            Err(DeliverError::Full) => return ids,
            Err(error) => panic!("delivery {n} failed with {error:?}, not Full"),
        }
    }
    panic!("the store never filled up")
}

fn assert_consistent(path: &Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    let counted: bool = conn
        .query_row(
            "SELECT total = (SELECT count(*) FROM messages) FROM store_state",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert!(counted, "the message count drifted");
}

/// Every stored id, oldest first.
fn stored_ids(store: &Store) -> Vec<MessageId> {
    let page = ListQuery {
        limit: 100_000,
        ..ListQuery::default()
    };
    let mut ids: Vec<MessageId> = store.list(&page).unwrap().iter().map(|m| m.id).collect();
    ids.reverse();
    ids
}

fn search_count(store: &Store, query: &str) -> u64 {
    let query = SearchQuery::parse(query).unwrap();
    store.search(&query, &Default::default()).unwrap().matches
}

// ---------------------------------------------------------------------------------------
// --max-store-size

#[tokio::test]
async fn a_store_at_its_size_limit_deletes_every_way_and_takes_mail_again() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("mail.db");
    let options = StoreOptions {
        max_size: Some(256 << 10),
        ..StoreOptions::default()
    };
    let store = Store::open(&path, options.clone()).unwrap();
    // Small messages: most of what they take is rows and index, not blobs whose
    // pages a delete frees first.
    let ids = fill(&store, 0, 600).await;
    assert!(ids.len() > 50, "only {} fit", ids.len());

    // Delete by search (the API's DELETE /api/v1/search).
    let gamma = search_count(&store, "gamma");
    assert!(gamma > 0);
    assert_eq!(
        store
            .delete_matching(&SearchQuery::parse("gamma").unwrap())
            .unwrap(),
        gamma
    );
    assert_eq!(search_count(&store, "gamma"), 0);
    fill(&store, 10_000, 600).await;
    let ids = stored_ids(&store);

    // Delete by ids, one (POP3's DELE + QUIT) and many (the API's DELETE with IDs).
    assert_eq!(store.delete(&ids[..1]).unwrap(), 1);
    fill(&store, 20_000, 600).await;
    assert_eq!(store.delete(&ids[1..40]).unwrap(), 39);
    fill(&store, 30_000, 600).await;

    // Everything, from a second handle as the CLI opens it (no size limit of
    // its own), while the first still runs.
    let cli = Store::open(&path, StoreOptions::default()).unwrap();
    let total = store.count().unwrap().total;
    assert_eq!(cli.delete_all().unwrap(), total);
    assert_eq!(store.count().unwrap().total, 0);
    drop(cli);

    // Room again, and the limit still holds for new mail.
    let again = fill(&store, 40_000, 600).await;
    assert!(again.len() > 50, "only {} fit after emptying", again.len());
    assert_eq!(store.delete_all().unwrap(), again.len() as u64);
    drop(store);
    assert_consistent(&path);
}

/// A delete fills the pages the store gave up only with what fits; the limit
/// itself is not lifted for new mail by a delete that needed a page or two.
#[tokio::test]
async fn deleting_at_the_limit_does_not_lift_the_limit() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("mail.db");
    let store = Store::open(
        &path,
        StoreOptions {
            max_size: Some(256 << 10),
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let ids = fill(&store, 0, 600).await;
    for id in &ids[..ids.len() / 2] {
        store.delete(&[*id]).unwrap();
    }
    fill(&store, 10_000, 600).await;
    let pages: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA page_count", [], |row| row.get(0))
        .unwrap();
    assert!(pages * 4096 <= 300 << 10, "{pages} pages of 4 KiB");
}

// ---------------------------------------------------------------------------------------
// A full disk

/// A tmpfs of `mib` MiB mounted on a new temporary directory, unmounted when
/// dropped.
struct SmallDisk {
    dir: TempDir,
}

impl SmallDisk {
    fn mount(mib: u32) -> SmallDisk {
        let dir = TempDir::new().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("cannot run mount");
        assert!(
            out.status.success(),
            "this test needs a small file system that really fills up: it mounts a \
             {mib} MiB tmpfs, which takes root (CI runs as root); mount said: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        SmallDisk { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Take every byte left but `leave` with a file of its own, as another
    /// program filling the disk would; returns the file's path.
    fn fill_up(&self, leave: u64) -> PathBuf {
        let path = self.path("filler");
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        let block = vec![0xa5u8; 4096];
        loop {
            match file.write_all(&block) {
                Ok(()) => {}
                Err(error) if error.raw_os_error() == Some(28) => break,
                Err(error) => panic!("filling the disk: {error}"),
            }
        }
        // The last block may have gone in part; a smaller write may still fit.
        while let Ok(1..) = file.write(&block[..512]) {}
        let len = file.metadata().unwrap().len();
        file.set_len(len.saturating_sub(leave)).unwrap();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |meta| meta.len())
}

#[tokio::test]
#[ignore = "needs root: mounts a small tmpfs that really fills up; .ci/run (as root) runs cargo test -- --ignored"]
async fn a_store_that_filled_the_disk_can_be_emptied() {
    let disk = SmallDisk::mount(24);
    let path = disk.path("mail.db");
    let reserve = disk.path("mail.db-reserve");
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    assert_eq!(file_size(&reserve), 8 << 20, "no disk reserve was written");

    let ids = fill(&store, 0, 16 << 10).await;
    assert!(ids.len() > 100, "only {} fit", ids.len());
    assert_eq!(
        file_size(&reserve),
        8 << 20,
        "a delivery took the reserve that deletes need"
    );
    // Whatever the store could not use goes to another program.
    let filler = disk.fill_up(0);
    let refused = store.deliver(message(99_999, 16 << 10)).await;
    assert!(matches!(refused, Err(DeliverError::Full)), "{refused:?}");

    // A second process-like handle opens the full store, as the CLI does.
    let cli = Store::open(&path, StoreOptions::default()).unwrap();
    // POP3's DELE + QUIT, the API's delete by ids, delete by search.
    assert_eq!(store.delete(&ids[..1]).unwrap(), 1);
    // (How many fit depends on the room the log keeps for rows it has not
    // written yet; a half of them is deleted here.)
    let half = ids.len() / 2;
    assert_eq!(store.delete(&ids[1..half]).unwrap(), half as u64 - 1);
    let beta = search_count(&store, "beta");
    assert_eq!(
        cli.delete_matching(&SearchQuery::parse("beta").unwrap())
            .unwrap(),
        beta
    );
    // Everything else; the emptied file gives its space back to the disk.
    let left = store.count().unwrap().total;
    assert!(left > 0);
    assert_eq!(cli.delete_all().unwrap(), left);
    assert_eq!(store.count().unwrap().total, 0);
    assert!(
        file_size(&path) < 256 << 10,
        "the emptied store still takes {} bytes",
        file_size(&path)
    );
    assert!(
        file_size(&disk.path("mail.db-wal")) < 1 << 20,
        "the WAL still takes {} bytes",
        file_size(&disk.path("mail.db-wal"))
    );
    drop(cli);

    // With the other program's file gone, the reserve comes back, and mail is
    // accepted again.
    std::fs::remove_file(filler).unwrap();
    let id = store.deliver(message(100_000, 100)).await.unwrap();
    assert!(id > *ids.last().unwrap(), "an id was reused");
    assert_eq!(store.delete(&[id]).unwrap(), 1);
    assert_eq!(
        file_size(&reserve),
        8 << 20,
        "the reserve was not written again"
    );
    drop(store);
    assert_consistent(&path);
}

/// With no server running, the CLI opens the store on a disk filled to the last
/// byte (opening needs a block for the WAL index) and empties it.
#[tokio::test]
#[ignore = "needs root: mounts a small tmpfs that really fills up; .ci/run (as root) runs cargo test -- --ignored"]
async fn a_full_disk_store_opens_and_empties_with_no_server_running() {
    let disk = SmallDisk::mount(24);
    let path = disk.path("mail.db");
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    let ids = fill(&store, 0, 16 << 10).await;
    drop(store);
    disk.fill_up(0);
    assert!(
        File::create(disk.path("probe"))
            .and_then(|mut f| f.write_all(&[0; 4096]))
            .is_err(),
        "the disk is not full"
    );

    let cli = Store::open(&path, StoreOptions::default()).unwrap();
    assert_eq!(cli.delete_all().unwrap(), ids.len() as u64);
    drop(cli);
    assert_consistent(&path);
}

/// Deleting every message in one transaction writes WAL for a good part of the
/// store (a fifth of it, measured, with read and unread messages mixed); on a
/// disk with less room than that (here 1 MiB, the reserve already given up by an
/// earlier delete) the store deletes them a batch at a time, each batch's WAL
/// reusing the blocks of the one before.
#[tokio::test]
#[ignore = "needs root: mounts a small tmpfs that really fills up; .ci/run (as root) runs cargo test -- --ignored"]
async fn emptying_a_store_bigger_than_the_room_left_goes_in_batches() {
    let disk = SmallDisk::mount(32);
    let path = disk.path("mail.db");
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    let mut ids = Vec::new();
    for chunk in 0..3 {
        let messages = (0..2000)
            .map(|n| message(chunk * 2000 + n, 300 + (n % 2) * 1200))
            .collect();
        ids.extend(store.import(messages).unwrap());
    }
    let read: Vec<MessageId> = ids.iter().step_by(3).copied().collect();
    store.set_read(&read, true).unwrap();
    assert!(
        file_size(&path) > 8 << 20,
        "the store is only {} bytes",
        file_size(&path)
    );
    std::fs::remove_file(disk.path("mail.db-reserve")).unwrap();
    rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let filler = disk.fill_up(1 << 20);

    let mut events = store.subscribe();
    assert_eq!(store.delete_all().unwrap(), ids.len() as u64);
    assert_eq!(store.count().unwrap().total, 0);
    let mut batches = 0;
    while let Ok(event) = events.try_recv() {
        match event {
            StoreEvent::Deleted(_) => batches += 1,
            StoreEvent::DeletedAll => panic!("deleted in one transaction: the disk had room"),
            _ => {}
        }
    }
    assert!(batches > 1, "{batches} batches");
    std::fs::remove_file(filler).unwrap();
    assert!(store.deliver(message(0, 100)).await.is_ok());
    drop(store);
    assert_consistent(&path);
}
