//! How fast the web page's list, paging and search answer at 100,000 messages.
//!
//! Fills a fresh store in a temporary directory through [`Store::import`] with
//! varied messages: subjects and bodies from a vocabulary, a few hundred senders,
//! some HTML and attachments, and one of 400 "rare" words (`rareword000` to
//! `rareword399`, one length so that none is the start of another) per message,
//! so searching a rare word matches 250 messages at the default size. Then prints p50 and p99 of each
//! query a page or an API client makes (200 runs, or what fits in 15 s), and
//! p50/p99 over the whole mix (20 rounds). Run with
//! `cargo bench -p sokkel-store --bench search`; an optional argument sets the
//! number of messages. With `--postgres` the same messages also go into a
//! PostgreSQL store (a throwaway cluster, as the tests start one: `initdb` in a
//! temporary directory, `fsync=off`; needs PostgreSQL's server programs), in the
//! same run, and every figure is printed for both backends.

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use sokkel_store::{Envelope, ListQuery, MessageId, NewMessage, SearchQuery, Store, StoreOptions};

#[path = "../tests/pg/mod.rs"]
mod pg;

const CHUNK: usize = 5_000;
const RARE_WORDS: usize = 400;

const WORDS: &[&str] = &[
    "account", "agenda", "approval", "budget", "call", "client", "contract", "customer",
    "deadline", "delivery", "design", "draft", "estimate", "feedback", "follow", "forecast",
    "invoice", "launch", "meeting", "minutes", "notes", "offer", "order", "payment", "plan",
    "policy", "price", "project", "proposal", "quarter", "receipt", "release", "report", "request",
    "review", "schedule", "shipment", "signup", "status", "summary", "support", "team", "ticket",
    "timeline", "update", "welcome", "weekly", "the", "and", "for", "with", "please", "thanks",
    "attached", "below", "today", "tomorrow", "next", "week", "you", "we",
];

const DOMAINS: &[&str] = &[
    "example.com",
    "example.org",
    "shop.test",
    "corp.test",
    "mail.test",
    "news.test",
];

/// A small deterministic generator, so every run fills the same store.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }

    fn words(&mut self, count: usize) -> String {
        (0..count)
            .map(|_| self.pick(WORDS))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn message(n: usize, rng: &mut Rng) -> NewMessage {
    let sender = format!("user{}@{}", rng.next() % 300, rng.pick(DOMAINS));
    let rcpt = format!("team{}@{}", rng.next() % 50, rng.pick(DOMAINS));
    let subject = format!("{} {}", rng.words(4), n);
    let rare = format!("rareword{:03}", n % RARE_WORDS);
    let paragraphs = 1 + (rng.next() % 8) as usize;
    let mut body = String::new();
    for p in 0..paragraphs {
        body.push_str(&rng.words(40));
        if p == paragraphs / 2 {
            body.push(' ');
            body.push_str(&rare);
        }
        body.push_str(".\r\n\r\n");
    }
    let raw = if n % 10 == 5 {
        format!(
            "From: User <{sender}>\r\nTo: {rcpt}\r\nSubject: {subject}\r\n\
             MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
             --b\r\nContent-Type: text/plain\r\n\r\n{body}\r\n\
             --b\r\nContent-Type: application/pdf\r\n\
             Content-Disposition: attachment; filename=\"report-{n}.pdf\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b--\r\n"
        )
    } else if n % 4 == 0 {
        format!(
            "From: User <{sender}>\r\nTo: {rcpt}\r\nSubject: {subject}\r\n\
             MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
             <html><body><p>{}</p></body></html>\r\n",
            body.replace("\r\n\r\n", "</p><p>")
        )
    } else {
        format!("From: User <{sender}>\r\nTo: {rcpt}\r\nSubject: {subject}\r\n\r\n{body}")
    };
    NewMessage {
        envelope: Envelope {
            mail_from: sender,
            rcpt_to: vec![rcpt],
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

/// Run `work` `runs` times, or as many as fit in [`BUDGET`] but at least
/// [`MIN_RUNS`]; print p50, p99, the maximum and the number of runs.
fn report<T>(label: &str, runs: usize, mut work: impl FnMut() -> T) {
    let started = Instant::now();
    let mut times = Vec::with_capacity(runs);
    while times.len() < runs && (times.len() < MIN_RUNS || started.elapsed() < BUDGET) {
        let start = Instant::now();
        black_box(work());
        times.push(start.elapsed());
    }
    print_times(label, times);
}

/// How long one figure's runs may take, once [`MIN_RUNS`] are done: a
/// search that counts most of a large store takes seconds on PostgreSQL.
const BUDGET: Duration = Duration::from_secs(15);
const MIN_RUNS: usize = 20;

fn print_times(label: &str, mut times: Vec<Duration>) {
    times.sort();
    let at = |p: f64| times[((times.len() - 1) as f64 * p) as usize];
    println!(
        "{label:<52} p50 {:>9.2?}  p99 {:>9.2?}  max {:>9.2?}  ({} runs)",
        at(0.5),
        at(0.99),
        at(1.0),
        times.len()
    );
}

/// The searches measured, each alone and together as the mix.
const SEARCHES: &[&str] = &[
    "rareword017",
    "rareword01",
    "rareword017 is:unread",
    "rareword017 -is:read invoice",
    "from:user42@example.com",
    "to:team7 rareword003",
    "\"weekly report\" rareword099",
    "rare",
    "rarewo",
    "invoice",
    "-rareword001",
    "after:2020-01-01 has:attachment",
];

fn main() {
    let total: usize = std::env::args()
        .skip(1)
        .find(|arg| !arg.starts_with('-'))
        .and_then(|arg| arg.parse().ok())
        .unwrap_or(100_000);
    let postgres = std::env::args().any(|arg| arg == "--postgres");
    let dir = tempfile::TempDir::new().unwrap();
    let path = dir.path().join("mail.db");
    let mut backends = vec![(
        "sqlite".to_string(),
        Store::open(&path, StoreOptions::default()).unwrap(),
    )];
    let mut database = None;
    if postgres {
        let url = pg::fresh_database();
        let location: sokkel_store::Location = url.parse().unwrap();
        backends.push((
            "postgres".to_string(),
            Store::open_at(&location, StoreOptions::default()).unwrap(),
        ));
        database = url.rsplit('/').next().map(str::to_string);
    }

    let mut rng = Rng(0x5eed_cafe_f00d);
    let mut spent = vec![Duration::ZERO; backends.len()];
    let mut stored = 0;
    while stored < total {
        let chunk = CHUNK.min(total - stored);
        let messages: Vec<NewMessage> = (stored..stored + chunk)
            .map(|n| message(n, &mut rng))
            .collect();
        for ((_, store), spent) in backends.iter().zip(&mut spent) {
            let start = Instant::now();
            store.import(messages.clone()).unwrap();
            *spent += start.elapsed();
        }
        stored += chunk;
    }
    for ((name, store), spent) in backends.iter().zip(&spent) {
        println!(
            "{name}: import {total} messages with indexing: {spent:.2?} ({:.0} messages/s)",
            total as f64 / spent.as_secs_f64()
        );
        let read: Vec<MessageId> = (1..=total as i64).step_by(3).map(MessageId).collect();
        store.set_read(&read, true).unwrap();
    }
    let size = std::fs::metadata(&path).unwrap().len();
    println!(
        "sqlite: database file {:.1} MiB",
        size as f64 / (1 << 20) as f64
    );
    if let Some(database) = &database {
        // The planner's statistics, as autovacuum would have them a while
        // after the fill.
        pg::cluster().psql(database, "VACUUM ANALYZE");
        let size = pg::cluster().psql(
            database,
            "SELECT pg_size_pretty(pg_database_size(current_database())) \
             || ', search index ' || pg_size_pretty(pg_relation_size('messages_search'))",
        );
        println!("postgres: database {size}");
    }
    for (name, store) in &backends {
        measure(name, store, total);
    }
}

/// Print the figures of one backend's store of `total` messages.
fn measure(name: &str, store: &Store, total: usize) {
    let page = |before: Option<i64>, offset: usize| ListQuery {
        limit: 50,
        offset,
        before: before.map(MessageId),
    };
    report(&format!("{name}: list 50 newest"), 300, || {
        store.list(&page(None, 0)).unwrap()
    });
    report(
        &format!("{name}: list 50 before the middle (cursor)"),
        300,
        || store.list(&page(Some(total as i64 / 2), 0)).unwrap(),
    );
    report(
        &format!("{name}: list 50 at offset of the middle"),
        50,
        || store.list(&page(None, total / 2)).unwrap(),
    );

    let queries: Vec<SearchQuery> = SEARCHES
        .iter()
        .map(|text| SearchQuery::parse(text).unwrap())
        .collect();
    let mut matches = Vec::new();
    for (text, query) in SEARCHES.iter().zip(&queries) {
        let found = store.search(query, &page(None, 0)).unwrap().matches;
        matches.push((text, found));
        report(&format!("{name}: search {text:?} + count"), 200, || {
            store.search(query, &page(None, 0)).unwrap()
        });
    }
    // The mix: every query in turn, 20 rounds.
    let mut times = Vec::new();
    for _ in 0..20 {
        for query in &queries {
            let start = Instant::now();
            black_box(store.search(query, &page(None, 0)).unwrap());
            times.push(start.elapsed());
        }
    }
    print_times(
        &format!("{name}: the mix of {} searches", queries.len()),
        times,
    );
    let query = SearchQuery::parse("rareword017").unwrap();
    report(
        &format!("{name}: search \"rareword017\" page 2 by cursor"),
        200,
        || {
            let first = store.search(&query, &page(None, 0)).unwrap();
            let before = first.messages.last().map(|m| m.id.0);
            store.search(&query, &page(before, 0)).unwrap()
        },
    );
    for (text, found) in matches {
        println!("  {name}: {text:?} matches {found}");
    }

    let start = Instant::now();
    let deleted = store
        .delete_matching(&SearchQuery::parse("rareword005").unwrap())
        .unwrap();
    println!(
        "{name}: delete_matching \"rareword005\": {deleted} in {:.2?}",
        start.elapsed()
    );
    let start = Instant::now();
    let deleted = store.delete_all().unwrap();
    println!("{name}: delete_all: {deleted} in {:.2?}", start.elapsed());
}
