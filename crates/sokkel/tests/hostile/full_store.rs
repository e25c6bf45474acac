//! Issue #11: a full store can always be emptied, and a client retrying against it
//! cannot flood the log. The catcher runs with a small `--max-store-size`, is filled
//! over SMTP until it answers 451, and is then emptied every way a user has: the web
//! API's DELETE (by IDs and everything), POP3's DELE + QUIT, and `sokkel mail delete
//! --all` while the server runs. Then the same on a real full disk: a small tmpfs
//! the test mounts (as root, which CI is; without the permission it fails, saying
//! so), filled to the last byte.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::kit::Catcher;
use crate::kit::catcher::ids;
use crate::kit::pop3::Pop3;
use crate::kit::smtp::{Smtp, dot_stuff, message, queued_id};

/// The smallest size the flag takes is 64 KiB; this fills in a few hundred small
/// messages.
const STORE_SIZE: &str = "128KiB";

fn start() -> Catcher {
    Catcher::builder()
        .http()
        .args(&["--max-store-size", STORE_SIZE])
        .start()
}

/// Delivers messages of about 500 bytes over one session until the store answers
/// 451; returns the ids of those it took. Small messages are the hard case: their
/// bytes sit in the table's own pages, so deleting one frees no whole page, yet
/// the search index needs a new one to record the delete. Bounded: a store that
/// never fills fails.
fn fill(catcher: &Catcher, tag: &str) -> Vec<u64> {
    fill_with(catcher, tag, 10)
}

/// [`fill`] with bodies of `lines` lines of about 30 bytes.
fn fill_with(catcher: &Catcher, tag: &str, lines: usize) -> Vec<u64> {
    let mut smtp = Smtp::ehlo(catcher.addr());
    let mut taken = Vec::new();
    for n in 0..2000 {
        let content = message(
            &format!("{tag} {n}"),
            &format!("{tag} {n:04} words{n} and more{n}\r\n").repeat(lines),
        );
        let reply = smtp.send_message("a@x.test", &["morty@y.test"], &content);
        if reply[0].starts_with("451 4.3.0 ") {
            smtp.quit();
            return taken;
        }
        taken.push(queued_id(&reply[0]));
    }
    panic!("a {STORE_SIZE} store took 2000 messages");
}

/// `DELETE /api/v1/messages` of `ids` (all when `None`); panics, saying `what`,
/// unless it answers 200.
#[track_caller]
fn api_delete(catcher: &Catcher, ids: Option<&[u64]>, what: &str) {
    let body = ids.map(|ids| {
        let ids: Vec<String> = ids.iter().map(u64::to_string).collect();
        serde_json::json!({ "IDs": ids })
    });
    let response = catcher.delete("/api/v1/messages", body.as_ref());
    assert_eq!(response.status, 200, "{what}:\n{}", response.text());
}

fn listed(catcher: &Catcher) -> Vec<u64> {
    let mut listed = ids(&catcher.list());
    listed.sort_unstable();
    listed
}

#[test]
fn a_full_store_is_emptied_through_the_api_pop3_and_the_cli() {
    let catcher = start();
    let first = fill(&catcher, "first");
    assert!(first.len() >= 10, "only {} messages fit", first.len());

    // The API's DELETE with IDs, on the full store: the older half, as a user
    // selecting pages of messages in the web page does.
    let (gone, kept) = first.split_at(first.len() / 2);
    api_delete(&catcher, Some(gone), "DELETE with IDs on a full store");
    assert_eq!(listed(&catcher), kept, "the messages were not deleted");

    // POP3's DELE + QUIT, once the store is full again.
    let second = fill(&catcher, "second");
    let mut pop3 = Pop3::login(catcher.pop3[0], "morty", "anything");
    let dele = pop3.cmd("DELE 1");
    let quit = pop3.cmd("QUIT");
    assert!(dele.starts_with("+OK"), "DELE: {dele}");
    assert!(quit.starts_with("+OK"), "QUIT on a full store: {quit}");
    let left = listed(&catcher);
    assert_eq!(
        left,
        [&kept[1..], &second[..]].concat(),
        "POP3 did not delete the oldest message"
    );

    // `mail delete --all` while the server runs, full again.
    fill(&catcher, "third");
    let total = catcher.list().len();
    let out = catcher
        .cli(&["delete", "--all"])
        .assert_success("mail delete --all on a full store");
    assert_eq!(out.stdout_text(), format!("deleted {total} messages\n"));
    assert!(catcher.list().is_empty());

    // The API's DELETE with no body (everything), full again.
    fill(&catcher, "fourth");
    api_delete(&catcher, None, "DELETE of everything on a full store");
    assert!(catcher.list().is_empty());

    // New mail is taken again.
    let mut smtp = Smtp::ehlo(catcher.addr());
    let again = message("after emptying", "room again");
    let id = smtp.deliver("a@x.test", &["morty@y.test"], &again);
    assert_eq!(catcher.raw(id), again);
    smtp.quit();
}

/// How many times the retrying client delivers against the full store.
const RETRIES: usize = 2000;

#[test]
fn a_client_retrying_against_a_full_store_makes_a_handful_of_log_lines() {
    let catcher = start();
    // Filling logs every stored message and the first refusal; the lines reach
    // the pipe a moment after the replies, so wait for both before counting.
    let filled = fill(&catcher, "fill");
    let last = format!(
        "message {} from",
        filled.last().expect("the store took some mail")
    );
    let logged = catcher.stderr.wait_until(Duration::from_secs(30), |lines| {
        lines.iter().any(|line| line.contains(&last))
            && lines
                .iter()
                .any(|line| line.contains("storing a message failed"))
    });
    assert!(
        logged.is_some(),
        "the fill's last message or its refusal was never logged:\n{}",
        catcher.stderr.text()
    );
    let before = catcher.stderr.snapshot().len();

    let mut smtp = Smtp::ehlo(catcher.addr());
    // Bigger than the messages that filled the store, so it cannot slip into a
    // gap they left.
    let content = dot_stuff(&message("retry", &"once more\r\n".repeat(400)));
    let deadline = Instant::now() + Duration::from_secs(60);
    for n in 0..RETRIES {
        assert!(
            Instant::now() < deadline,
            "only {n} retries in a minute; the server is stuck"
        );
        // Pipelined as a retrying client sends it: the envelope and DATA in one
        // write, the message and its dot in the next.
        smtp.send(b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n");
        smtp.expect_lines(&["250 2.1.0 Ok", "250 2.1.5 Ok", "354 *"]);
        let mut data = content.clone();
        data.extend_from_slice(b".\r\n");
        smtp.send(&data);
        smtp.expect_reply(&["451 4.3.0 *"]);
    }
    smtp.quit();

    let all = catcher.stderr.snapshot();
    assert!(
        all.iter()
            .any(|line| line.contains("storing a message failed")),
        "the failure was not logged at all:\n{}",
        all.join("\n")
    );
    // What the retries added: nothing but a summary per 10 s.
    let lines = &all[before..];
    assert!(
        lines.len() <= 5,
        "{RETRIES} failed deliveries wrote {} log lines:\n{}",
        lines.len(),
        lines.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// A full disk

/// A tmpfs of `mib` MiB mounted on a new temporary directory, unmounted when
/// dropped (after the catcher using it, which the test drops first).
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
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Appends to `path` until the disk answers ENOSPC, as another program filling
/// the disk would; then gives `leave` bytes back.
fn take_the_disk(path: &Path, leave: u64) {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let block = vec![0xa5u8; 4096];
    for size in [4096, 512, 1] {
        loop {
            match file.write(&block[..size]) {
                Ok(0) => break,
                Ok(_) => {}
                Err(error) if error.raw_os_error() == Some(28) => break,
                Err(error) => panic!("filling the disk: {error}"),
            }
        }
    }
    let len = file.metadata().unwrap().len();
    file.set_len(len.saturating_sub(leave)).unwrap();
}

#[test]
#[ignore = "needs root: mounts a small tmpfs that really fills up; .ci/run (as root) runs cargo test -- --ignored"]
fn a_store_that_filled_the_disk_is_emptied_through_the_api_and_the_cli() {
    let disk = SmallDisk::mount(24);
    let db = disk.path("mail.db");
    let filler = disk.path("filler");
    let catcher = Catcher::builder().db(&db).http().start();

    // Another program leaves 6 MiB, the catcher fills it, and the other program
    // takes whatever bytes are left. (The log takes a message only while the
    // disk keeps 4 MiB beyond room for its rows, so less would fit none.)
    take_the_disk(&filler, 6 << 20);
    let stored = fill_with(&catcher, "disk", 100);
    assert!(stored.len() >= 10, "only {} messages fit", stored.len());
    take_the_disk(&filler, 0);

    api_delete(
        &catcher,
        Some(&stored[..2]),
        "DELETE with IDs on a full disk",
    );
    let out = catcher
        .cli(&["delete", "--all"])
        .assert_success("mail delete --all on a full disk");
    assert_eq!(
        out.stdout_text(),
        format!("deleted {} messages\n", stored.len() - 2)
    );
    assert!(catcher.list().is_empty());

    std::fs::remove_file(&filler).unwrap();
    let mut smtp = Smtp::ehlo(catcher.addr());
    let again = message("after emptying", "room again");
    let id = smtp.deliver("a@x.test", &["morty@y.test"], &again);
    assert_eq!(catcher.raw(id), again);
    smtp.quit();
    drop(catcher);
}
