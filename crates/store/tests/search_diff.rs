//! The differential search test (issue #12): every operator of the search
//! language checked against a second, independent implementation.
//!
//! `search_diff.py` (next to this file) writes a generated corpus (fixed seed:
//! 2,000 messages with names with diacritics, To/Cc/Bcc/Reply-To, blind
//! envelope recipients, sizes, four months of dates, attachments, inline
//! images, tags, read and flagged states) and 300 generated queries, each with
//! the messages it should find, worked out from the raw bytes with Python's
//! `email` package. This test stores the corpus with [`Store::import`] and
//! compares what [`Store::search`] finds, query by query.
//!
//! Needs `python3` (3.9 or later, for `zoneinfo`) on the PATH; the test fails
//! without it rather than pass without checking anything.
//!
//! The same corpus and queries run on PostgreSQL (an interop test: it needs
//! PostgreSQL's server programs, `pg/mod.rs`), with the same expected
//! results: a query finds the same messages on both backends.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};

use serde_json::Value;
use sokkel_store::{
    Envelope, FlagChange, ListQuery, MessageId, NewMessage, SearchQuery, Store, StoreOptions,
};
use tempfile::TempDir;

#[path = "pg/mod.rs"]
mod pg;

const MESSAGES: usize = 2000;
const QUERIES: usize = 300;

fn json_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// Run the script into `dir`.
fn generate(dir: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/search_diff.py");
    let output = Command::new("python3")
        .arg(&script)
        .arg(dir)
        .arg(MESSAGES.to_string())
        .arg(QUERIES.to_string())
        .output()
        .unwrap_or_else(|error| {
            panic!("this test needs python3 on the PATH to run {script:?}: {error}")
        });
    assert!(
        output.status.success(),
        "{script:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Store the corpus, with its tags, read and flagged states; message `n` of
/// the corpus gets id `n`.
fn load(dir: &Path, store: &Store) {
    let corpus = json_lines(&dir.join("corpus.jsonl"));
    assert_eq!(corpus.len(), MESSAGES);
    let messages: Vec<NewMessage> = corpus
        .iter()
        .map(|entry| NewMessage {
            envelope: Envelope {
                mail_from: entry["mail_from"].as_str().unwrap().into(),
                rcpt_to: strings(&entry["rcpt_to"]),
                helo: "corpus.test".into(),
                client_addr: "127.0.0.1:2525".parse().unwrap(),
                bare_lf: false,
                smtputf8: false,
                tls: None,
                auth_user: None,
            },
            received_at: UNIX_EPOCH + Duration::from_millis(entry["received_ms"].as_u64().unwrap()),
            raw: std::fs::read(dir.join(entry["file"].as_str().unwrap())).unwrap(),
        })
        .collect();
    let mut ids = Vec::new();
    let mut messages = messages.into_iter().peekable();
    while messages.peek().is_some() {
        ids.extend(store.import(messages.by_ref().take(500).collect()).unwrap());
    }
    assert_eq!(
        ids,
        (1..=MESSAGES as i64).map(MessageId).collect::<Vec<_>>()
    );

    let read: Vec<MessageId> = corpus
        .iter()
        .zip(&ids)
        .filter(|(entry, _)| entry["read"].as_bool().unwrap())
        .map(|(_, id)| *id)
        .collect();
    store.set_read(&read, true).unwrap();

    let flagged: Vec<MessageId> = corpus
        .iter()
        .zip(&ids)
        .filter(|(entry, _)| entry["flagged"].as_bool().unwrap())
        .map(|(_, id)| *id)
        .collect();
    let star = FlagChange {
        read: None,
        flagged: Some(true),
    };
    store.set_flags(&flagged, star).unwrap();
    // One call per tag, with every message that has it.
    let mut tagged: BTreeMap<String, Vec<MessageId>> = BTreeMap::new();
    for (entry, id) in corpus.iter().zip(&ids) {
        for tag in strings(&entry["tags"]) {
            tagged.entry(tag).or_default().push(*id);
        }
    }
    for (tag, ids) in tagged {
        store.add_tags(&ids, &[tag]).unwrap();
    }
}

#[test]
fn search_agrees_with_python_email_on_a_generated_corpus() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(&dir.path().join("mail.db"), StoreOptions::default()).unwrap();
    agrees(&dir, &store);
}

#[test]
#[ignore = "interop: needs PostgreSQL; .ci/run installs it and runs cargo test -- --ignored"]
fn on_postgresql_search_agrees_with_python_email_on_the_same_corpus() {
    let dir = TempDir::new().unwrap();
    let location: sokkel_store::Location = pg::fresh_database().parse().unwrap();
    let store = Store::open_at(&location, StoreOptions::default()).unwrap();
    agrees(&dir, &store);
}

/// Store the corpus in `store` and check every query's answer.
fn agrees(dir: &TempDir, store: &Store) {
    let corpus = dir.path().join("corpus");
    std::fs::create_dir(&corpus).unwrap();
    generate(&corpus);
    load(&corpus, store);

    let queries = json_lines(&corpus.join("queries.jsonl"));
    assert_eq!(queries.len(), QUERIES);
    let everything = ListQuery {
        limit: MESSAGES,
        ..ListQuery::default()
    };
    let mut disagreements = Vec::new();
    let mut narrowing = 0;
    for entry in &queries {
        let text = entry["query"].as_str().unwrap();
        let tz = entry["tz"].as_str();
        let expected: BTreeSet<i64> = entry["expected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_i64().unwrap())
            .collect();
        let query = SearchQuery::parse_in(text, tz)
            .unwrap_or_else(|error| panic!("{text:?} (tz {tz:?}): {error}"));
        let page = store.search(&query, &everything).unwrap();
        let found: BTreeSet<i64> = page.messages.iter().map(|m| m.id.0).collect();
        assert_eq!(
            page.matches as usize,
            found.len(),
            "{text:?}: count and page"
        );
        if !expected.is_empty() && expected.len() < MESSAGES {
            narrowing += 1;
        }
        if found != expected {
            let only_sokkel: Vec<_> = found.difference(&expected).take(5).collect();
            let only_python: Vec<_> = expected.difference(&found).take(5).collect();
            disagreements.push(format!(
                "{text:?} (tz {tz:?}): sokkel {} vs python {}; only sokkel: {only_sokkel:?}, \
                 only python: {only_python:?}",
                found.len(),
                expected.len(),
            ));
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} of {QUERIES} queries disagree (message N is file NNNN.eml of \
         `python3 tests/search_diff.py DIR {MESSAGES} {QUERIES}`; the seed is fixed):\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
    // The queries must mostly narrow the corpus, or agreeing proves little.
    assert!(
        narrowing >= QUERIES * 3 / 4,
        "only {narrowing} of {QUERIES} queries find some but not all messages"
    );
}
