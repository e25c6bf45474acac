//! Issue #15: PostgreSQL restarts under two nodes taking mail through HAProxy.
//! Alone in its binary: it stops the database server that every test of a
//! binary shares.
//!
//! While the database is down, SMTP still takes MAIL and RCPT and answers the
//! end of DATA with 451 4.3.0 (never a 250 it cannot keep), the web API and
//! `/readyz` answer 503, and HAProxy's checks take the nodes out; once it is
//! back, the nodes serve again without a restart and every patient client's
//! message gets its 250, each of them stored.

// Its watchdog shell outlives the test process on purpose (it stops the
// server once the tests are gone), so it is never waited for.
#[allow(clippy::zombie_processes)]
#[path = "../../store/tests/pg/mod.rs"]
mod pg;

mod kit;

use std::thread;
use std::time::{Duration, Instant};

use kit::Catcher;
use kit::cluster::{Haproxy, RetryingSenders, assert_all_readable, proxy_v2};
use kit::http::{get, get_json};
use kit::smtp::{Smtp, dot_stuff, greeting, message};

/// How many messages each of the four senders delivers.
const PER_SENDER: usize = 60;

#[test]
#[ignore = "interop: needs PostgreSQL's server programs and haproxy"]
fn a_postgres_restart_costs_retries_and_no_acknowledged_message() {
    let db = pg::fresh_database();
    let node = || {
        Catcher::builder()
            .http()
            .args(&["--db", &db, "--proxy-protocol"])
            .start()
    };
    let (n1, n2) = (node(), node());
    let haproxy = Haproxy::start(&[&n1, &n2]);

    let senders = RetryingSenders::start(haproxy.addr, 4, PER_SENDER, Duration::from_secs(150));
    senders.wait_for(40, Duration::from_secs(60));
    assert!(senders.acked_count() >= 40, "{:?}", senders.troubles());

    // A session that has said MAIL and RCPT when the database goes away.
    let mut session = Smtp::connect(n2.addr());
    session.send(&proxy_v2("192.0.2.9:2525".parse().unwrap(), n2.addr()));
    session.expect_reply(&[&greeting()]);
    session.send(b"EHLO client.test\r\n");
    session.reply();
    session.cmd("MAIL FROM:<a@x.test>\r\n", &["250 2.1.0 Ok"]);

    pg::cluster().stop_server(true);
    session.cmd("RCPT TO:<b@y.test>\r\n", &["250 2.1.5 Ok"]);
    session.cmd("DATA\r\n", &["354 *"]);
    session.send(&dot_stuff(&message("while down", "hi")));
    session.send(b".\r\n");
    session.set_read_timeout(Duration::from_secs(20));
    let reply = session.reply();
    assert!(reply[0].starts_with("451 4.3.0"), "{reply:?}");

    for node in [&n1, &n2] {
        let listed = get(node.http(), "/api/v1/messages");
        assert_eq!(listed.status, 503, "{}", listed.text());
        assert!(listed.head.contains("retry-after: 2"), "{}", listed.head);
        let ready = get(node.http(), "/readyz");
        assert_eq!(ready.status, 503, "{}", ready.text());
        assert_eq!(ready.json()["store"], "unavailable");
    }
    // Long enough for the senders to meet it, and for HAProxy to notice.
    thread::sleep(Duration::from_secs(2));
    pg::cluster().start_server();

    // Back without a restart: ready again, and the same session delivers.
    for node in [&n1, &n2] {
        let deadline = Instant::now() + Duration::from_secs(30);
        while get(node.http(), "/readyz").status != 200 {
            assert!(Instant::now() < deadline, "{} not ready again", node.http());
            thread::sleep(Duration::from_millis(200));
        }
    }
    session.set_read_timeout(Duration::from_secs(20));
    let id = session.deliver(
        "a@x.test",
        &["b@y.test"],
        &message("after the restart", "hi"),
    );
    session.quit();
    haproxy.wait_for_state("n1", "UP", Duration::from_secs(20));
    haproxy.wait_for_state("n2", "UP", Duration::from_secs(20));

    let (acked, troubles) = senders.join();
    assert_eq!(troubles.permanent, None);
    assert!(
        troubles.transient + troubles.broken > 0,
        "the senders never met the restart: {troubles:?}"
    );
    assert_eq!(acked.len(), 4 * PER_SENDER, "{troubles:?}");
    assert_all_readable(n1.http(), &acked);
    assert_all_readable(n2.http(), &acked);
    let envelope = get_json(n1.http(), &format!("/api/v1/message/{id}/envelope"));
    assert_eq!(envelope["ClientAddr"], "192.0.2.9:2525");
}
