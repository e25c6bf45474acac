//! How fast `sokkel mail list` answers at 100,000 messages.
//!
//! Fills a fresh store in a temporary directory through [`Store::import`] (the batch
//! path, one transaction per chunk), then times what the CLI does: open the file,
//! list the newest 50, count. Run with `cargo bench -p sokkel-store --bench list`;
//! an optional argument sets the number of messages.

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use sokkel_store::{Envelope, ListQuery, MessageId, NewMessage, Store, StoreOptions};

const CHUNK: usize = 5_000;

fn message(n: usize) -> NewMessage {
    let raw = format!(
        "From: Sender {n} <sender{n}@example.com>\r\n\
         To: Rcpt <rcpt@example.net>\r\n\
         Subject: Message number {n}\r\n\
         Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n\
         Message-ID: <{n}@example.com>\r\n\
         \r\n\
         Hello, this is message {n}. It has a short body of a couple of lines\r\n\
         so that the snippet has something to show.\r\n"
    );
    NewMessage {
        envelope: Envelope {
            mail_from: format!("sender{n}@example.com"),
            rcpt_to: vec!["rcpt@example.net".into()],
            helo: "bench".into(),
            client_addr: "127.0.0.1:40000".parse().unwrap(),
            bare_lf: false,
            smtputf8: false,
            tls: None,
            auth_user: None,
        },
        received_at: SystemTime::now(),
        raw: raw.into_bytes(),
    }
}

/// Run `work` `runs` times; return the minimum and median.
fn time<T>(runs: usize, mut work: impl FnMut() -> T) -> (Duration, Duration) {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            black_box(work());
            start.elapsed()
        })
        .collect();
    times.sort();
    (times[0], times[runs / 2])
}

fn main() {
    let total: usize = std::env::args()
        .skip(1)
        .find(|arg| !arg.starts_with('-'))
        .and_then(|arg| arg.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::TempDir::new().unwrap();
    let path = dir.path().join("mail.db");

    let store = Store::open(&path, StoreOptions::default()).unwrap();
    let start = Instant::now();
    let mut stored = 0;
    while stored < total {
        let chunk = CHUNK.min(total - stored);
        store
            .import((stored..stored + chunk).map(message).collect())
            .unwrap();
        stored += chunk;
    }
    let elapsed = start.elapsed();
    println!(
        "import {total} messages: {elapsed:.2?} ({:.0} messages/s)",
        total as f64 / elapsed.as_secs_f64()
    );
    drop(store);
    let size = std::fs::metadata(&path).unwrap().len();
    println!("database file: {:.1} MiB", size as f64 / (1 << 20) as f64);

    // What one `sokkel mail list --limit 50` does, from opening the file on.
    let (min, median) = time(20, || {
        let store = Store::open(&path, StoreOptions::default()).unwrap();
        let page = store
            .list(&ListQuery {
                limit: 50,
                offset: 0,
                before: None,
            })
            .unwrap();
        let counts = store.count().unwrap();
        (page.len(), counts)
    });
    println!("open + list 50 + count: min {min:.2?}, median {median:.2?}");

    let store = Store::open(&path, StoreOptions::default()).unwrap();
    let newest = ListQuery {
        limit: 50,
        offset: 0,
        before: None,
    };
    let (min, median) = time(200, || store.list(&newest).unwrap());
    println!("list 50 newest: min {min:.2?}, median {median:.2?}");
    let deep = ListQuery {
        limit: 50,
        offset: total / 2,
        before: None,
    };
    let (min, median) = time(50, || store.list(&deep).unwrap());
    println!(
        "list 50 at offset {}: min {min:.2?}, median {median:.2?}",
        deep.offset
    );
    let (min, median) = time(200, || store.count().unwrap());
    println!("count: min {min:.2?}, median {median:.2?}");
    let (min, median) = time(200, || store.latest().unwrap());
    println!("latest: min {min:.2?}, median {median:.2?}");
    let id = MessageId(total as i64 / 2);
    let (min, median) = time(200, || store.get(id).unwrap());
    println!("get one: min {min:.2?}, median {median:.2?}");
}
