//! `GET /metrics` of `sokkel mail serve` (issue #18, "Health and metrics"): the
//! Prometheus text format a Prometheus server scrapes, every family under
//! `sokkel_` with its type, and counters that move as mail arrives, is refused
//! and is read, sessions open and WebSocket clients connect.
//!
//! The same scenario runs twice: with the text read by a small parser here (no
//! Python needed), and, in the interop pass, by the Prometheus Python client's
//! own parser (`prometheus_client`, from PyPI; `.ci/run` installs it).

mod kit;
#[path = "../../store/tests/pg/mod.rs"]
mod pg;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use kit::cluster::EventSocket;
use kit::net::free_tcp_port;
use kit::smtp::message;
use kit::{Catcher, PROMPT, python3, tempdir};
use serde_json::{Value, json};

/// Every family `/metrics` has, named as in its TYPE line, with that type.
const FAMILIES: &[(&str, &str)] = &[
    ("sokkel_messages", "gauge"),
    ("sokkel_messages_unread", "gauge"),
    ("sokkel_smtp_messages_accepted_total", "counter"),
    ("sokkel_smtp_messages_rejected_total", "counter"),
    ("sokkel_smtp_received_bytes_total", "counter"),
    ("sokkel_sessions", "gauge"),
    ("sokkel_smtp_ack_seconds", "histogram"),
    ("sokkel_store_log_sync_seconds", "histogram"),
    ("sokkel_store_commit_seconds", "histogram"),
    ("sokkel_store_pruned_messages_total", "counter"),
    ("sokkel_relay_messages_total", "counter"),
    ("sokkel_webhook_requests_total", "counter"),
    ("sokkel_websocket_clients", "gauge"),
];

/// The refusal reasons, each shown even at zero.
const REASONS: &[&str] = &[
    "size",
    "recipients",
    "memory",
    "bare_lf",
    "store",
    "chaos",
    "tls_required",
    "syntax",
    "sequence",
];

/// How long counters may take to catch up with what a client saw (a session
/// counted closed after its client saw the close, an ack timed after its 250).
const SETTLE: Duration = Duration::from_secs(10);

/// A scrape as a parser understood it.
#[derive(Debug)]
struct Exposition {
    /// Family name (as in the TYPE line) to type.
    types: BTreeMap<String, String>,
    samples: Vec<Sample>,
    text: String,
}

#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

impl Exposition {
    /// The sample `name` with exactly `labels`; panics, showing the text, if
    /// there is none.
    #[track_caller]
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let labels: BTreeMap<String, String> = (labels.iter())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        (self.samples.iter())
            .find(|s| s.name == name && s.labels == labels)
            .unwrap_or_else(|| panic!("no {name} {labels:?} in:\n{}", self.text))
            .value
    }

    #[track_caller]
    fn get(&self, name: &str) -> f64 {
        self.value(name, &[])
    }

    fn sessions(&self, protocol: &str) -> f64 {
        self.value("sokkel_sessions", &[("protocol", protocol)])
    }

    fn rejected(&self, reason: &str) -> f64 {
        self.value("sokkel_smtp_messages_rejected_total", &[("reason", reason)])
    }
}

/// A parser of the text: ours or Python's.
type Parse = fn(&str) -> Exposition;

/// `GET /metrics`, which must answer 200 in the Prometheus text format.
#[track_caller]
fn scrape_text(catcher: &Catcher) -> String {
    let response = catcher.get("/metrics");
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(
        response
            .head
            .contains("\r\ncontent-type: text/plain; version=0.0.4; charset=utf-8\r\n"),
        "{}",
        response.head
    );
    response.text()
}

/// Scrapes until `settled` holds, for at most [`SETTLE`]; panics with the
/// last scrape if it never does.
#[track_caller]
fn scrape_until(
    catcher: &Catcher,
    parse: Parse,
    what: &str,
    settled: impl Fn(&Exposition) -> bool,
) -> Exposition {
    let deadline = Instant::now() + SETTLE;
    loop {
        let scrape = parse(&scrape_text(catcher));
        if settled(&scrape) {
            return scrape;
        }
        if Instant::now() > deadline {
            panic!(
                "{what}: not within {SETTLE:?}; last scrape:\n{}",
                scrape.text
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The text format read line by line: `# TYPE name type` and
/// `name{label="value",...} value`. Enough for what sokkel writes (label
/// values without escapes); the interop test reads it with Prometheus' own.
fn parse_here(text: &str) -> Exposition {
    let mut types = BTreeMap::new();
    let mut helped = Vec::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP name text");
            assert!(!help.is_empty(), "no help text: {line}");
            helped.push(name.to_string());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name type");
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "{name} typed twice"
            );
        } else {
            assert!(!line.starts_with('#'), "an unexpected comment: {line}");
            let (series, value) = line.rsplit_once(' ').expect("a series and a value");
            let (name, labels) = match series.split_once('{') {
                None => (series, BTreeMap::new()),
                Some((name, labels)) => {
                    let labels = labels.strip_suffix('}').expect("labels end with }");
                    let labels = (labels.split(','))
                        .map(|pair| {
                            let (key, value) = pair.split_once('=').expect("label=value");
                            let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"'));
                            (key.to_string(), value.expect("a quoted value").to_string())
                        })
                        .collect();
                    (name, labels)
                }
            };
            let value = match value {
                "+Inf" => f64::INFINITY,
                value => value.parse().unwrap_or_else(|_| panic!("a number: {line}")),
            };
            samples.push(Sample {
                name: name.to_string(),
                labels,
                value,
            });
        }
    }
    let typed: Vec<&String> = types.keys().collect();
    helped.sort();
    assert_eq!(
        helped.iter().collect::<Vec<_>>(),
        typed,
        "every family has HELP and TYPE"
    );
    Exposition {
        types,
        samples,
        text: text.to_string(),
    }
}

/// The text read by `prometheus_client.parser.text_string_to_metric_families`
/// (tests/metrics_parse.py).
fn parse_python(text: &str) -> Exposition {
    let finished = python3(include_str!("metrics_parse.py"), &[])
        .stdin(text.as_bytes().to_vec())
        .run();
    assert!(
        finished.status.success(),
        "the Prometheus Python client cannot read /metrics (pip install prometheus_client): {}\n{text}",
        finished.stderr
    );
    let parsed: Value = serde_json::from_slice(&finished.stdout).expect("JSON from the parser");
    let types = (parsed["types"].as_object().unwrap().iter())
        .map(|(name, kind)| (name.clone(), kind.as_str().unwrap().to_string()))
        .collect();
    let samples = (parsed["samples"].as_array().unwrap().iter())
        .map(|sample| Sample {
            name: sample[0].as_str().unwrap().to_string(),
            labels: (sample[1].as_object().unwrap().iter())
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect(),
            value: sample[2].as_f64().unwrap(),
        })
        .collect();
    Exposition {
        types,
        samples,
        text: text.to_string(),
    }
}

/// Every family is there with its type and nothing else is; every label
/// value of the fixed sets shows, at zero before anything happened.
fn check_families(scrape: &Exposition) {
    let want: BTreeMap<String, String> = (FAMILIES.iter())
        .map(|(name, kind)| (name.to_string(), kind.to_string()))
        .collect();
    assert_eq!(scrape.types, want, "{}", scrape.text);
    for reason in REASONS {
        assert_eq!(scrape.rejected(reason), 0.0, "{reason}");
    }
    for outcome in ["sent", "failed", "blocked"] {
        let relayed = scrape.value("sokkel_relay_messages_total", &[("outcome", outcome)]);
        assert_eq!(relayed, 0.0);
    }
    for outcome in ["sent", "failed", "skipped", "dropped"] {
        let posted = scrape.value("sokkel_webhook_requests_total", &[("outcome", outcome)]);
        assert_eq!(posted, 0.0);
    }
    for name in [
        "sokkel_messages",
        "sokkel_messages_unread",
        "sokkel_smtp_messages_accepted_total",
        "sokkel_smtp_received_bytes_total",
        "sokkel_store_pruned_messages_total",
        "sokkel_smtp_ack_seconds_count",
        "sokkel_websocket_clients",
    ] {
        assert_eq!(scrape.get(name), 0.0, "{name}\n{}", scrape.text);
    }
    let inf = scrape.value("sokkel_smtp_ack_seconds_bucket", &[("le", "+Inf")]);
    assert_eq!(inf, 0.0);
}

/// Two messages in, one refused as too big, one read: the counters and gauges
/// follow; an open SMTP session, an IMAP session and a web page show.
fn counters_follow_the_mail(parse: Parse) {
    let catcher = Catcher::builder()
        .http()
        .args(&["--max-message-size", "4KiB"])
        .start();
    check_families(&parse(&scrape_text(&catcher)));

    let first = message("metrics one", "first");
    let second = message("metrics two", &"second ".repeat(100));
    let first_id = catcher.send(&first);
    catcher.send(&second);
    let mut smtp = kit::smtp::Smtp::ehlo(catcher.addr());
    let too_big = message("metrics too big", &"x".repeat(8 << 10));
    let reply = smtp.send_message("sender@example.test", &["rcpt@example.test"], &too_big);
    assert!(reply[0].starts_with("552 "), "{reply:?}");
    smtp.quit();

    let scrape = scrape_until(&catcher, parse, "two messages acknowledged", |s| {
        s.get("sokkel_smtp_ack_seconds_count") == 2.0
    });
    assert_eq!(scrape.get("sokkel_smtp_messages_accepted_total"), 2.0);
    assert_eq!(scrape.rejected("size"), 1.0, "{}", scrape.text);
    for reason in REASONS.iter().filter(|r| **r != "size") {
        assert_eq!(scrape.rejected(reason), 0.0, "{reason}");
    }
    let sent = (first.len() + second.len()) as f64;
    let received = scrape.get("sokkel_smtp_received_bytes_total");
    assert!(received >= sent, "received {received} < sent {sent}");
    let acked = scrape.value("sokkel_smtp_ack_seconds_bucket", &[("le", "+Inf")]);
    assert_eq!(acked, 2.0);
    assert!(scrape.get("sokkel_smtp_ack_seconds_sum") > 0.0);
    // The SQLite store's log synced them before their 250s.
    assert!(scrape.get("sokkel_store_log_sync_seconds_count") >= 1.0);
    assert_eq!(scrape.get("sokkel_messages"), 2.0);
    assert_eq!(scrape.get("sokkel_messages_unread"), 2.0);
    // The rows are written from the log a moment later.
    scrape_until(&catcher, parse, "the store's commit", |s| {
        s.get("sokkel_store_commit_seconds_count") >= 1.0
    });

    let read = catcher.put_json(
        "/api/v1/messages",
        &json!({"IDs": [first_id.to_string()], "Read": true}),
    );
    assert_eq!(read.status, 200, "{}", read.text());
    let scrape = parse(&scrape_text(&catcher));
    assert_eq!(scrape.get("sokkel_messages"), 2.0);
    assert_eq!(scrape.get("sokkel_messages_unread"), 1.0);

    // Sessions: the ones above are over; one SMTP and one IMAP session now.
    let open_smtp = catcher.session();
    let mut imap = BufReader::new(TcpStream::connect(catcher.imap_addr()).expect("IMAP"));
    imap.get_ref().set_read_timeout(Some(PROMPT)).unwrap();
    let mut greeting = String::new();
    imap.read_line(&mut greeting).expect("the IMAP greeting");
    assert!(greeting.starts_with("* OK"), "{greeting}");
    let scrape = scrape_until(&catcher, parse, "one SMTP and one IMAP session", |s| {
        s.sessions("smtp") == 1.0 && s.sessions("imap") == 1.0
    });
    assert_eq!(scrape.sessions("pop3"), 0.0);
    drop(open_smtp);
    drop(imap);
    scrape_until(&catcher, parse, "the sessions closed", |s| {
        s.sessions("smtp") == 0.0 && s.sessions("imap") == 0.0
    });

    let page = EventSocket::connect(catcher.http());
    scrape_until(&catcher, parse, "one WebSocket client", |s| {
        s.get("sokkel_websocket_clients") == 1.0
    });
    drop(page);
    scrape_until(&catcher, parse, "no WebSocket client", |s| {
        s.get("sokkel_websocket_clients") == 0.0
    });
}

#[test]
fn metrics_count_mail_sessions_and_pages() {
    counters_follow_the_mail(parse_here);
}

#[test]
#[ignore = "interop: needs python3 and the pip package prometheus_client; .ci/run installs it and runs cargo test -- --ignored"]
fn prometheus_python_client_reads_the_metrics() {
    counters_follow_the_mail(parse_python);
}

/// Retention (`--max 1`), an auto-relay to a server that is down and a
/// webhook nobody receives: what each did is counted.
#[test]
fn pruned_relayed_and_posted_messages_are_counted() {
    let dir = tempdir();
    let relay = dir.path().join("relay.toml");
    let config = format!(
        "host = \"127.0.0.1\"\nport = {}\ntimeout = 5\n",
        free_tcp_port()
    );
    std::fs::write(&relay, config).unwrap();
    let relay = relay.to_str().expect("a UTF-8 temporary path");
    let hook = format!("http://127.0.0.1:{}/hook", free_tcp_port());
    let catcher = Catcher::builder()
        .http()
        .args(&["--max", "1", "--relay-config", relay, "--relay-all"])
        .args(&["--webhook-url", &hook, "--webhook-limit", "0"])
        .start();
    catcher.send(&message("metrics pruned", "first"));
    catcher.send(&message("metrics kept", "second"));
    let failed_relays =
        |s: &Exposition| s.value("sokkel_relay_messages_total", &[("outcome", "failed")]);
    let posts = |s: &Exposition, outcome: &str| {
        s.value("sokkel_webhook_requests_total", &[("outcome", outcome)])
    };
    let scrape = scrape_until(&catcher, parse_here, "retention, relay and webhook", |s| {
        s.get("sokkel_store_pruned_messages_total") == 1.0
            && failed_relays(s) >= 1.0
            && posts(s, "failed") == 2.0
    });
    assert_eq!(scrape.get("sokkel_messages"), 1.0);
    // The first message may be pruned before the relay gets to it; the
    // second is relayed (and fails), never sent.
    assert!(failed_relays(&scrape) <= 2.0, "{}", scrape.text);
    for outcome in ["sent", "blocked"] {
        let relayed = scrape.value("sokkel_relay_messages_total", &[("outcome", outcome)]);
        assert_eq!(relayed, 0.0, "{outcome}");
    }
    for outcome in ["sent", "skipped", "dropped"] {
        assert_eq!(posts(&scrape, outcome), 0.0, "{outcome}");
    }
}

/// On PostgreSQL the 250 waits for the insert transaction: that is the
/// commit counted, and there is no SQLite log to sync.
#[test]
#[ignore = "interop: needs PostgreSQL's server programs; .ci/run installs them and runs cargo test -- --ignored"]
fn on_postgresql_the_commit_is_the_insert_transaction() {
    let db = pg::fresh_database();
    let catcher = Catcher::builder().http().args(&["--db", &db]).start();
    catcher.send(&message("metrics on postgres", "hi"));
    let scrape = scrape_until(&catcher, parse_here, "the message acknowledged", |s| {
        s.get("sokkel_smtp_ack_seconds_count") == 1.0
    });
    assert!(scrape.get("sokkel_store_commit_seconds_count") >= 1.0);
    assert_eq!(scrape.get("sokkel_store_log_sync_seconds_count"), 0.0);
    assert_eq!(scrape.get("sokkel_messages"), 1.0);
    assert_eq!(scrape.get("sokkel_messages_unread"), 1.0);
}

/// With a login for the page (`--ui-auth-file`) and under a web root
/// (`--webroot`), Prometheus scrapes `/mail/metrics` without credentials, as
/// a load balancer checks `/mail/livez`; the API still asks for them.
#[test]
fn metrics_need_no_login_and_live_under_the_web_root() {
    let dir = tempdir();
    let users = dir.path().join("ui-users");
    std::fs::write(&users, "admin:secret\n").unwrap();
    let users = users.to_str().expect("a UTF-8 temporary path");
    let catcher = Catcher::builder()
        .http()
        .args(&["--ui-auth-file", users, "--webroot", "/mail/"])
        .start();
    let scrape = catcher.get("/mail/metrics");
    assert_eq!(scrape.status, 200, "{}", scrape.text());
    let scrape = parse_here(&scrape.text());
    assert_eq!(scrape.get("sokkel_messages"), 0.0);
    assert_eq!(catcher.get("/mail/api/v1/messages").status, 401);
    // Outside the root there is nothing to scrape (the login answers first).
    let outside = catcher.get("/metrics");
    assert_ne!(outside.status, 200, "{}", outside.text());
}

/// `/metrics` is open like `/livez` but answers only loopback names while
/// sokkel listens on loopback, as the rest of the web side does.
#[test]
fn metrics_pass_the_host_guard() {
    let catcher = Catcher::builder().http().start();
    let rebinding = kit::http::exchange(
        catcher.http(),
        b"GET /metrics HTTP/1.1\r\nHost: attacker.example\r\nConnection: close\r\n\r\n",
    );
    assert_ne!(rebinding.status, 200, "{}", rebinding.text());
    assert!(!rebinding.text().contains("sokkel_messages"));
}
