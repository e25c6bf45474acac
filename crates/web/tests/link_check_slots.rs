//! The link check's wait for one of its four process-wide turns counts against
//! the check's own time budget. In a test binary of its own: the turns are
//! shared by every server in the process, and this test holds all of them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use sokkel_store::{Envelope, NewMessage, Store, StoreOptions};
use sokkel_web::{AppState, WebConfig, app};
use tower::ServiceExt;

fn message(text: &str) -> NewMessage {
    NewMessage {
        envelope: Envelope {
            mail_from: "sender@example.com".into(),
            rcpt_to: vec!["rcpt@example.com".into()],
            helo: "client.example".into(),
            client_addr: "127.0.0.1:40000".parse().unwrap(),
            bare_lf: false,
            smtputf8: false,
            tls: None,
            auth_user: None,
        },
        received_at: SystemTime::now(),
        raw: format!("From: a@example.com\r\nTo: b@example.com\r\nSubject: t\r\n\r\n{text}\r\n")
            .into_bytes(),
    }
}

async fn get(router: &axum::Router) -> (StatusCode, String) {
    let request = Request::get("/api/v1/message/1/link-check")
        .header(header::HOST, "127.0.0.1:8025")
        .body(Body::empty())
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn a_fifth_check_ends_within_its_own_budget_while_four_hold_the_turns() {
    // A server that accepts and never answers, counting connections.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&connections);
    let hang = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("mail.db"), StoreOptions::default()).unwrap();
    store
        .import(vec![message(&format!("http://{addr}/hang"))])
        .unwrap();

    // Four long checks (a 10 s budget, half their 20 s idle timeout) hold
    // every turn, each on its one hanging link.
    let long = app(AppState::new(
        store.clone(),
        WebConfig {
            idle_timeout: Duration::from_secs(20),
            link_check_timeout: Duration::from_secs(20),
            ..WebConfig::default()
        },
    ));
    let holders: Vec<_> = (0..4)
        .map(|_| {
            let long = long.clone();
            tokio::spawn(async move { get(&long).await })
        })
        .collect();
    // Until all four are asking their link (bounded: 10 s of 10 ms steps).
    for _ in 0..1000 {
        if connections.load(Ordering::SeqCst) >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(connections.load(Ordering::SeqCst), 4, "four checks running");

    // A fifth on a server with a 2 s idle timeout has a 1 s budget: it must
    // answer within it (a 503 saying why), not wait for a turn and then
    // start a fresh budget, which would outlast its client's connection.
    let short = app(AppState::new(
        store.clone(),
        WebConfig {
            idle_timeout: Duration::from_secs(2),
            ..WebConfig::default()
        },
    ));
    let (status, text) = get(&short).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{text}");
    assert!(text.contains("4 link checks are running"), "{text}");
    assert!(
        holders.iter().all(|holder| !holder.is_finished()),
        "the fifth answered while the four still held their turns"
    );
    assert_eq!(
        connections.load(Ordering::SeqCst),
        4,
        "the fifth fetched nothing"
    );

    for holder in holders {
        holder.abort();
    }
    hang.abort();
}
