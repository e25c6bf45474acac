//! Mailpit's tag endpoints through the router: set, list, rename, delete, the
//! tags in every answer, the 400s for bad names, and the `update` frames on
//! `/api/events` over a real socket.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Method, Request, StatusCode, header};
use futures_util::StreamExt;
use serde_json::{Value, json};
use sokkel_store::{Envelope, NewMessage, Store, StoreOptions};
use sokkel_web::{AppState, WebConfig, app};
use tempfile::TempDir;
use tower::ServiceExt;

const HOST: &str = "127.0.0.1:8025";

fn new_message(subject: &str) -> NewMessage {
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
        raw: format!(
            "From: a@example.com\r\nTo: rcpt@example.com\r\nSubject: {subject}\r\n\r\nHi.\r\n"
        )
        .into_bytes(),
    }
}

fn store_with(subjects: &[&str]) -> (TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("mail.db"), StoreOptions::default()).unwrap();
    store
        .import(subjects.iter().map(|s| new_message(s)).collect())
        .unwrap();
    (dir, store)
}

async fn call(
    router: &Router,
    method: Method,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Vec<u8>) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, HOST)
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap()
        .to_vec();
    (status, body)
}

async fn json_of(router: &Router, uri: &str) -> Value {
    let (status, body) = call(router, Method::GET, uri, None).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

async fn ok(router: &Router, method: Method, uri: &str, body: Option<Value>) {
    let (status, text) = call(router, method, uri, body).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&text));
}

#[tokio::test]
async fn set_list_rename_delete_in_mailpit_shapes() {
    let (_dir, store) = store_with(&["one", "two", "three"]);
    let router = app(AppState::new(store, WebConfig::default()));
    assert_eq!(json_of(&router, "/api/v1/tags").await, json!([]));

    ok(
        &router,
        Method::PUT,
        "/api/v1/tags",
        Some(json!({"IDs": ["1", "2"], "Tags": ["Work", "urgent"]})),
    )
    .await;
    ok(
        &router,
        Method::PUT,
        "/api/v1/tags",
        Some(json!({"IDs": ["3"], "Tags": ["work"]})),
    )
    .await;
    assert_eq!(
        json_of(&router, "/api/v1/tags").await,
        json!(["urgent", "Work"])
    );

    let list = json_of(&router, "/api/v1/messages").await;
    assert_eq!(list["tags"], json!(["urgent", "Work"]));
    let tags: Vec<Value> = list["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["Tags"].clone())
        .collect();
    assert_eq!(
        tags,
        [
            json!(["Work"]),
            json!(["urgent", "Work"]),
            json!(["urgent", "Work"])
        ]
    );
    assert_eq!(
        json_of(&router, "/api/v1/message/1").await["Tags"],
        json!(["urgent", "Work"])
    );
    assert_eq!(
        json_of(&router, "/api/v1/search?query=two").await["tags"],
        json!(["urgent", "Work"])
    );
    assert_eq!(
        json_of(&router, "/api/v1/info").await["Tags"],
        json!({"urgent": 2, "Work": 3})
    );

    // Rename merges into an existing tag; delete takes a tag off everywhere.
    ok(
        &router,
        Method::PUT,
        "/api/v1/tags/URGENT",
        Some(json!({"Name": "work"})),
    )
    .await;
    assert_eq!(
        json_of(&router, "/api/v1/info").await["Tags"],
        json!({"Work": 3})
    );
    ok(
        &router,
        Method::PUT,
        "/api/v1/tags/Work",
        Some(json!({"Name": "Done later"})),
    )
    .await;
    assert_eq!(
        json_of(&router, "/api/v1/tags").await,
        json!(["Done later"])
    );
    ok(&router, Method::DELETE, "/api/v1/tags/done%20later", None).await;
    assert_eq!(json_of(&router, "/api/v1/tags").await, json!([]));
    assert_eq!(
        json_of(&router, "/api/v1/message/2").await["Tags"],
        json!([])
    );

    // An empty Tags clears; no IDs changes nothing (as in Mailpit).
    ok(
        &router,
        Method::PUT,
        "/api/v1/tags",
        Some(json!({"IDs": ["1"], "Tags": ["x"]})),
    )
    .await;
    ok(
        &router,
        Method::PUT,
        "/api/v1/tags",
        Some(json!({"Tags": ["y"]})),
    )
    .await;
    assert_eq!(json_of(&router, "/api/v1/tags").await, json!(["x"]));
    ok(
        &router,
        Method::PUT,
        "/api/v1/tags",
        Some(json!({"IDs": ["1"], "Tags": []})),
    )
    .await;
    assert_eq!(json_of(&router, "/api/v1/tags").await, json!([]));
}

#[tokio::test]
async fn tag_counts_give_each_tags_total_and_unread() {
    let (_dir, store) = store_with(&["one", "two", "three"]);
    let router = app(AppState::new(store, WebConfig::default()));
    assert_eq!(json_of(&router, "/api/v1/tag-counts").await, json!([]));
    ok(
        &router,
        Method::PUT,
        "/api/v1/tags",
        Some(json!({"IDs": ["1", "2"], "Tags": ["work"]})),
    )
    .await;
    ok(
        &router,
        Method::PUT,
        "/api/v1/tags",
        Some(json!({"IDs": ["3"], "Tags": ["Home"]})),
    )
    .await;
    ok(
        &router,
        Method::PUT,
        "/api/v1/messages",
        Some(json!({"IDs": ["1"], "Read": true})),
    )
    .await;
    assert_eq!(
        json_of(&router, "/api/v1/tag-counts").await,
        json!([
            {"Name": "Home", "Total": 1, "Unread": 1},
            {"Name": "work", "Total": 2, "Unread": 1},
        ])
    );
}

#[tokio::test]
async fn bad_names_and_missing_tags_are_4xx_with_the_reason() {
    let (_dir, store) = store_with(&["one"]);
    let router = app(AppState::new(store, WebConfig::default()));
    ok(
        &router,
        Method::PUT,
        "/api/v1/tags",
        Some(json!({"IDs": ["1"], "Tags": ["keep"]})),
    )
    .await;
    let many: Vec<String> = (0..101).map(|i| format!("t{i}")).collect();
    let cases = [
        (
            Method::PUT,
            "/api/v1/tags",
            Some(json!({"IDs": ["1"], "Tags": ["a;b"]})),
            StatusCode::BAD_REQUEST,
            "';'",
        ),
        (
            Method::PUT,
            "/api/v1/tags",
            Some(json!({"IDs": ["1"], "Tags": ["  "]})),
            StatusCode::BAD_REQUEST,
            "empty",
        ),
        (
            Method::PUT,
            "/api/v1/tags",
            Some(json!({"IDs": ["1"], "Tags": ["x".repeat(101)]})),
            StatusCode::BAD_REQUEST,
            "longer than 100",
        ),
        (
            Method::PUT,
            "/api/v1/tags",
            Some(json!({"IDs": ["1"], "Tags": many})),
            StatusCode::BAD_REQUEST,
            "at most 100",
        ),
        (
            Method::PUT,
            "/api/v1/tags",
            Some(json!({"IDs": ["x"], "Tags": ["a"]})),
            StatusCode::BAD_REQUEST,
            "positive number",
        ),
        (
            Method::PUT,
            "/api/v1/tags",
            Some(json!(["not", "an", "object"])),
            StatusCode::BAD_REQUEST,
            "must be JSON like",
        ),
        (
            Method::PUT,
            "/api/v1/tags/keep",
            Some(json!({"Name": "a/b"})),
            StatusCode::BAD_REQUEST,
            "'/'",
        ),
        (
            Method::PUT,
            "/api/v1/tags/keep",
            Some(json!({})),
            StatusCode::BAD_REQUEST,
            "Name",
        ),
        (
            Method::PUT,
            "/api/v1/tags/nope",
            Some(json!({"Name": "b"})),
            StatusCode::NOT_FOUND,
            "no tag",
        ),
        (
            Method::DELETE,
            "/api/v1/tags/nope",
            None,
            StatusCode::NOT_FOUND,
            "no tag",
        ),
        (
            Method::DELETE,
            "/api/v1/tags/a%3Bb",
            None,
            StatusCode::BAD_REQUEST,
            "';'",
        ),
    ];
    for (method, uri, body, status, reason) in cases {
        let (got, text) = call(&router, method.clone(), uri, body.clone()).await;
        let text = String::from_utf8_lossy(&text);
        assert_eq!(got, status, "{method} {uri} {body:?}: {text}");
        assert!(
            text.contains(reason),
            "{method} {uri}: {text:?} lacks {reason:?}"
        );
    }
    assert_eq!(
        json_of(&router, "/api/v1/message/1").await["Tags"],
        json!(["keep"])
    );
}

#[tokio::test]
async fn tag_changes_are_update_frames_on_the_websocket() {
    let (_dir, store) = store_with(&["one"]);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let state = AppState::new(store.clone(), WebConfig::default());
    let router = app(state.clone());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(sokkel_web::serve(
        vec![listener],
        state,
        async move {
            let _ = stop_rx.await;
        },
        Duration::from_secs(5),
    ));
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut socket, _) =
        tokio_tungstenite::client_async(format!("ws://{addr}/api/events"), stream)
            .await
            .unwrap();
    let mut next_update = async || loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a frame within 10 s")
            .expect("the socket is open")
            .unwrap();
        if let tokio_tungstenite::tungstenite::Message::Text(text) = frame {
            let value: Value = serde_json::from_str(&text).unwrap();
            if value["Type"] == "update" {
                return value["Data"].clone();
            }
        }
    };
    ok(
        &router,
        Method::PUT,
        "/api/v1/tags",
        Some(json!({"IDs": ["1"], "Tags": ["b", "a"]})),
    )
    .await;
    assert_eq!(next_update().await, json!({"ID": "1", "Tags": ["a", "b"]}));
    ok(
        &router,
        Method::PUT,
        "/api/v1/tags/a",
        Some(json!({"Name": "c"})),
    )
    .await;
    assert_eq!(next_update().await, json!({"ID": "1", "Tags": ["b", "c"]}));
    ok(&router, Method::DELETE, "/api/v1/tags/b", None).await;
    assert_eq!(next_update().await, json!({"ID": "1", "Tags": ["c"]}));

    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();
}
