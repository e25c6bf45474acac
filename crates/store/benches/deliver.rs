//! Group-commit throughput: many SMTP sessions delivering 4 KiB messages at once.
//!
//! Each sender delivers its messages one after another, waiting for each to be
//! durable, as an SMTP session waits before it answers 250. Prints messages per
//! second, latency percentiles and the average batch size. Run with
//! `cargo bench -p sokkel-store --bench deliver`; optional arguments: senders and
//! messages per sender (default 20 and 500). The store lives in the system's
//! temporary directory, so its disk decides the fsync cost; set TMPDIR to measure
//! another.

use std::time::{Duration, Instant, SystemTime};

use sokkel_store::{Deliver, Envelope, NewMessage, Store, StoreOptions};

fn message(sender: usize, n: usize) -> NewMessage {
    let mut raw = format!(
        "From: sender{sender}@example.com\r\nTo: rcpt@example.net\r\n\
         Subject: sender {sender} message {n}\r\n\r\n"
    )
    .into_bytes();
    while raw.len() < 4096 {
        raw.extend_from_slice(b"Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n");
    }
    NewMessage {
        envelope: Envelope {
            mail_from: format!("sender{sender}@example.com"),
            rcpt_to: vec!["rcpt@example.net".into()],
            helo: "bench".into(),
            client_addr: "127.0.0.1:40000".parse().unwrap(),
            bare_lf: false,
            smtputf8: false,
            tls: None,
            auth_user: None,
        },
        received_at: SystemTime::now(),
        raw,
    }
}

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with('-'))
        .filter_map(|arg| arg.parse::<usize>().ok());
    let senders = args.next().unwrap_or(20);
    let per_sender = args.next().unwrap_or(500);

    let dir = tempfile::TempDir::new().unwrap();
    let store = Store::open(&dir.path().join("mail.db"), StoreOptions::default()).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();

    let start = Instant::now();
    let mut latencies: Vec<Duration> = runtime.block_on(async {
        let tasks: Vec<_> = (0..senders)
            .map(|sender| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut latencies = Vec::with_capacity(per_sender);
                    for n in 0..per_sender {
                        let message = message(sender, n);
                        let sent = Instant::now();
                        store.deliver(message).await.unwrap();
                        latencies.push(sent.elapsed());
                    }
                    latencies
                })
            })
            .collect();
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.unwrap());
        }
        all
    });
    let elapsed = start.elapsed();

    latencies.sort();
    let percentile = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
    let stats = store.writer_stats();
    let total = senders * per_sender;
    println!(
        "{total} messages of 4 KiB from {senders} concurrent senders: {elapsed:.2?}, {:.0} messages/s",
        total as f64 / elapsed.as_secs_f64()
    );
    println!(
        "latency p50 {:.2?}, p99 {:.2?}, max {:.2?}",
        percentile(0.5),
        percentile(0.99),
        percentile(1.0)
    );
    println!(
        "{} commits, {:.1} messages per commit",
        stats.transactions,
        stats.messages as f64 / stats.transactions as f64
    );
}
