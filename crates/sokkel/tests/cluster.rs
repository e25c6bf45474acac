//! Issue #15: several `sokkel mail serve` nodes on one PostgreSQL database behind
//! HAProxy act as one catcher. Without a database: `--db` refuses a password in
//! the URL without repeating it, `serve` waits for a database that is down, and
//! `--proxy-protocol` takes the client's address from the balancer's header.
//! With PostgreSQL, HAProxy and smtp-source (interop): the README's recipe
//! with two nodes, and one node killed with `kill -9` in the middle of a run.
//! A PostgreSQL restart is in `cluster_restart.rs`, alone in its binary since
//! it stops the database every test here uses.

// Its watchdog shell outlives the test process on purpose (it stops the
// server once the tests are gone), so it is never waited for.
#[allow(clippy::zombie_processes)]
#[path = "../../store/tests/pg/mod.rs"]
mod pg;

mod kit;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use kit::catcher::list_json;
use kit::cluster::{EventSocket, Haproxy, assert_all_readable, proxy_v2};
use kit::crash::{SenderEnd, Senders};
use kit::http::{get, get_json, request};
use kit::net::free_tcp_port;
use kit::process::{sigterm, sokkel_command, spawn_collected};
use kit::smtp::{Ended, Smtp, greeting, message};
use kit::{Catcher, PROMPT, program, sokkel};
use serde_json::json;

/// A node of a cluster on `db`, behind a balancer that speaks the PROXY protocol.
fn node(db: &str) -> Catcher {
    Catcher::builder()
        .http()
        .args(&["--db", db, "--proxy-protocol"])
        .start()
}

/// `mail serve` with SMTP only, on the store at `db`.
fn serve_on(db: &str) -> [&str; 7] {
    [
        "mail",
        "serve",
        "--smtp",
        "127.0.0.1:0",
        "--no-http",
        "--db",
        db,
    ]
}

#[test]
fn a_password_in_the_database_url_is_refused_in_one_line_that_does_not_repeat_it() {
    let url = "postgres://sokkel:hunter2secret@127.0.0.1/mail";
    for run in [
        sokkel(["mail", "list", "--db", url]),
        sokkel(["mail", "show", "latest"]).env("SOKKEL_DB", url),
        sokkel(serve_on(url)),
    ] {
        let out = run.run();
        let line = out.one_error_line();
        assert!(!line.contains("hunter2secret"), "{line}");
        assert!(line.contains("holds a password"), "{line}");
        assert!(line.contains("PGPASSWORD"), "{line}");
    }
}

/// A node whose database is not up yet waits for it, saying so in one line,
/// and stops at once when told to.
#[test]
fn serve_waits_for_a_database_that_does_not_answer_and_stops_when_told() {
    let url = format!("postgres://sokkel@127.0.0.1:{}/mail", free_tcp_port());
    let (mut process, _stdout, stderr) = spawn_collected(
        sokkel_command().args(serve_on(&url)),
        "sokkel mail serve --db (nothing listening)",
    );
    let waiting = stderr.expect_line_where("the line saying it waits", |line| {
        line.contains("cannot reach the mail store")
            && line.contains("waits for it, trying every 2 s")
    });
    assert!(
        waiting.contains(&url),
        "the location, without secrets: {waiting}"
    );
    // Tries again every 2 s, but says it once per interval.
    std::thread::sleep(Duration::from_millis(4500));
    assert!(process.running(), "it gave up:\n{}", stderr.text());
    let lines = stderr.snapshot();
    assert_eq!(
        lines.iter().filter(|l| l.contains("cannot reach")).count(),
        1,
        "{lines:#?}"
    );
    sigterm(process.id());
    let status = process.wait_timeout(PROMPT).expect("it stops on SIGTERM");
    assert!(status.success(), "{status}\n{}", stderr.text());
}

/// With `--proxy-protocol`, the address in the balancer's header is the client's
/// on SMTP (version 2), POP3 and IMAP (version 1); a connection without a header is
/// closed before any greeting.
#[test]
fn the_proxy_protocol_header_names_the_client_and_no_header_is_no_session() {
    let catcher = Catcher::builder().http().arg("--proxy-protocol").start();
    let client: SocketAddr = "192.0.2.7:4242".parse().unwrap();
    let mut smtp = Smtp::connect(catcher.addr());
    smtp.send(&proxy_v2(client, catcher.addr()));
    smtp.expect_reply(&[&greeting()]);
    smtp.send(b"EHLO client.test\r\n");
    smtp.reply();
    let id = smtp.deliver("a@x.test", &["b@y.test"], &message("proxied", "hi"));
    smtp.quit();
    let envelope = catcher.get_json(&format!("/api/v1/message/{id}/envelope"));
    assert_eq!(envelope["ClientAddr"], "192.0.2.7:4242");

    let mut pop3 = Smtp::connect(catcher.pop3[0]);
    pop3.send(format!("PROXY TCP4 192.0.2.8 {} 5555 110\r\n", catcher.pop3[0].ip()).as_bytes());
    assert!(pop3.line().unwrap().starts_with("+OK"));
    let mut imap = Smtp::connect(catcher.imap_addr());
    imap.send(b"PROXY UNKNOWN\r\n");
    assert!(imap.line().unwrap().starts_with("* OK"));

    let mut direct = Smtp::connect(catcher.addr());
    direct.send(b"EHLO client.test\r\n");
    assert_eq!(direct.ends_silently(PROMPT), Ended::Closed);
}

/// The README's recipe: two nodes on one database behind HAProxy. Everything sent
/// through the balancer is readable through both nodes; the stored client address
/// is the client's; node 1's live page sees node 2's arrivals and deletes.
#[test]
#[ignore = "interop: needs PostgreSQL's server programs, haproxy and smtp-source"]
fn two_nodes_behind_haproxy_act_as_one_catcher() {
    let db = pg::fresh_database();
    let n1 = node(&db);
    let n2 = node(&db);
    let haproxy = Haproxy::start(&[&n1, &n2]);

    // The client's own address and port, not the balancer's (127.0.0.2).
    let mut smtp = Smtp::connect(haproxy.addr);
    let client = smtp.local_addr();
    smtp.expect_reply(&[&greeting()]);
    smtp.send(b"EHLO client.test\r\n");
    smtp.reply();
    let first = smtp.deliver("a@x.test", &["b@y.test"], &message("through haproxy", "hi"));
    smtp.quit();
    for node in [&n1, &n2] {
        let envelope = get_json(node.http(), &format!("/api/v1/message/{first}/envelope"));
        assert_eq!(envelope["ClientAddr"], client.to_string());
    }

    let source = program(
        "/usr/sbin/smtp-source",
        ["-s", "4", "-m", "200", "-l", "2048"]
            .into_iter()
            .map(String::from)
            .chain([haproxy.addr.to_string()]),
    )
    .timeout(Duration::from_secs(180))
    .run()
    .assert_success("smtp-source through haproxy");
    assert!(source.stderr.is_empty(), "{}", source.describe());

    // Every message, as `mail list --db URL` (a third client of the database)
    // sees them, counted, listed and read through both nodes' API.
    let listed: BTreeSet<u64> = list_json(Path::new(&db), 1000)
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect();
    assert_eq!(listed.len(), 201);
    for node in [&n1, &n2] {
        assert_eq!(get_json(node.http(), "/api/v1/info")["Messages"], 201);
        let page = get_json(node.http(), "/api/v1/messages?limit=1000");
        let ids: BTreeSet<u64> = page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["ID"].as_str().unwrap().parse().unwrap())
            .collect();
        assert_eq!(ids, listed, "{}", node.http());
        for id in &listed {
            let envelope = get_json(node.http(), &format!("/api/v1/message/{id}/envelope"));
            let addr: SocketAddr = envelope["ClientAddr"].as_str().unwrap().parse().unwrap();
            assert_eq!(
                addr.ip().to_string(),
                "127.0.0.1",
                "message {id}: {envelope}"
            );
        }
    }
    // Round robin: both nodes took some of it.
    let accepted = |node: &Catcher| {
        get_json(node.http(), "/api/v1/info")["RuntimeStats"]["SMTPAccepted"]
            .as_u64()
            .unwrap()
    };
    let (a1, a2) = (accepted(&n1), accepted(&n2));
    assert!(a1 > 0 && a2 > 0 && a1 + a2 == 201, "{a1} + {a2}");

    // Node 1's live page: a message that arrives at node 2, then its delete there.
    let mut events = EventSocket::connect(n1.http());
    let mut direct = Smtp::connect(n2.addr());
    direct.send(&proxy_v2("192.0.2.9:2525".parse().unwrap(), n2.addr()));
    direct.expect_reply(&[&greeting()]);
    direct.send(b"EHLO client.test\r\n");
    direct.reply();
    let arrived = direct.deliver("a@x.test", &["b@y.test"], &message("from node 2", "hi"));
    direct.quit();
    let arrived_id = arrived.to_string();
    let frame = events.wait_for("new", Duration::from_secs(10), |f| {
        f["Type"] == "new" && f["Data"]["Subject"] == "from node 2"
    });
    assert_eq!(frame["Data"]["ID"], arrived_id.as_str());
    let deleted = request(
        n2.http(),
        "DELETE",
        "/api/v1/messages",
        Some(&json!({ "IDs": [arrived_id] })),
    );
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    events.wait_for("delete", Duration::from_secs(10), |f| {
        f["Type"] == "delete" && f["Data"]["ID"] == arrived_id.as_str()
    });
    assert_eq!(
        get(n1.http(), &format!("/api/v1/message/{arrived}")).status,
        404
    );
    drop(haproxy);
}

/// `kill -9` one node in the middle of a run: every message that got a 250 is in
/// the database, HAProxy's check takes the dead node out, and the other node
/// keeps taking mail.
#[test]
#[ignore = "interop: needs PostgreSQL's server programs, haproxy and smtp-source"]
fn a_node_killed_mid_run_loses_no_acknowledged_message_and_the_other_serves_on() {
    let db = pg::fresh_database();
    let mut n1 = node(&db);
    let n2 = node(&db);
    let haproxy = Haproxy::start(&[&n1, &n2]);

    let senders = Senders::start(haproxy.addr, 4, 150, Duration::from_secs(90));
    senders.wait_for(80, Duration::from_secs(60));
    n1.kill_hard();
    haproxy.wait_for_state("n1", "DOWN", Duration::from_secs(10));
    let (ends, acked) = senders.join();
    assert!(
        ends.iter().any(|end| matches!(end, SenderEnd::Broken(_))),
        "no sender was on the killed node: {ends:?}"
    );
    assert!(
        ends.iter().any(|end| matches!(end, SenderEnd::Done)),
        "no sender finished on the other node: {ends:?}"
    );
    assert!(acked.len() >= 80, "{}", acked.len());

    // New clients all reach the living node.
    let started = Instant::now();
    for n in 0..10 {
        let mut smtp = Smtp::connect(haproxy.addr);
        smtp.expect_reply(&[&greeting()]);
        smtp.send(b"EHLO client.test\r\n");
        smtp.reply();
        smtp.deliver(
            "a@x.test",
            &["b@y.test"],
            &message(&format!("after {n}"), "hi"),
        );
        smtp.quit();
    }
    assert!(started.elapsed() < Duration::from_secs(60));

    assert_all_readable(n2.http(), &acked);
    let total = get_json(n2.http(), "/api/v1/messages?limit=1")["total"].clone();
    assert!(
        total.as_u64().unwrap() >= acked.len() as u64 + 10,
        "{total} stored for {} acknowledged + 10",
        acked.len()
    );
}
