//! Issue #11: every answer of the web side is bounded or streamed, and it trusts
//! no browser. Through the router (`oneshot`) and, for the WebSocket, a real
//! socket.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Method, Request, StatusCode, header};
use axum::response::IntoResponse;
use futures_util::StreamExt;
use serde_json::Value;
use sokkel_store::{
    Envelope, NewMessage, RAW_CHUNK_BYTES, SUMMARY_ADDRESSES, SUMMARY_TEXT_BYTES, Store,
    StoreError, StoreOptions,
};
use sokkel_web::{ApiError, AppState, MESSAGE_ADDRESSES, WebConfig, app};
use tempfile::TempDir;
use tower::ServiceExt;

const HOST: &str = "127.0.0.1:8025";

fn store() -> (TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("mail.db"), StoreOptions::default()).unwrap();
    (dir, store)
}

fn new_message(raw: Vec<u8>) -> NewMessage {
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
        raw,
    }
}

fn addresses(count: usize, name: &str) -> String {
    (0..count)
        .map(|n| format!("\"{name} {n}\" <user{n}@example.com>"))
        .collect::<Vec<_>>()
        .join(",\r\n ")
}

/// A message built to make list answers big: 20,000 To addresses, a 1 MB
/// subject, 200 Cc with long names.
fn huge_headers() -> Vec<u8> {
    format!(
        "From: \"{}\" <rick@example.com>\r\nTo: {}\r\nCc: {}\r\nSubject: {}\r\n\
         Message-ID: <{}@example.com>\r\n\r\nbody\r\n",
        "F".repeat(100_000),
        addresses(20_000, "Someone"),
        addresses(200, &"N".repeat(300)),
        "S".repeat(1 << 20),
        "m".repeat(100_000),
    )
    .into_bytes()
}

fn router(store: &Store) -> Router {
    app(AppState::new(store.clone(), WebConfig::default()))
}

async fn call(router: &Router, request: Request<Body>) -> (StatusCode, Vec<u8>) {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = to_bytes(response.into_body(), 256 << 20).await.unwrap();
    (status, body.to_vec())
}

fn get(uri: &str) -> Request<Body> {
    Request::builder()
        .uri(uri)
        .header(header::HOST, HOST)
        .body(Body::empty())
        .unwrap()
}

// Issue #11: `limit=1000` over messages with 20,000 To addresses produced 343 MB
// of JSON.
#[tokio::test]
async fn list_summaries_carry_a_bounded_number_of_addresses_with_counts() {
    let (_dir, store) = store();
    store
        .import((0..3).map(|_| new_message(huge_headers())).collect())
        .unwrap();
    let router = router(&store);
    for uri in [
        "/api/v1/messages?limit=1000",
        "/api/v1/search?query=someone&limit=1000",
    ] {
        let (status, body) = call(&router, get(uri)).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        // Three summaries in a few tens of KB, not 3 x 1.3 MB of addresses.
        assert!(body.len() < 3 * (32 << 10), "{uri}: {} bytes", body.len());
        let page: Value = serde_json::from_slice(&body).unwrap();
        let first = &page["messages"][0];
        assert_eq!(first["To"].as_array().unwrap().len(), SUMMARY_ADDRESSES);
        assert_eq!(first["ToCount"], 20_000);
        assert_eq!(first["To"][0]["Name"], "Someone 0");
        assert_eq!(first["To"][0]["Address"], "user0@example.com");
        let cc = first["Cc"].as_array().unwrap();
        assert!(
            !cc.is_empty() && cc.len() < SUMMARY_ADDRESSES,
            "{}",
            cc.len()
        );
        assert_eq!(first["CcCount"], 200);
        assert_eq!(first["Bcc"], serde_json::json!([]));
        assert_eq!(
            first["Subject"].as_str().unwrap(),
            "S".repeat(SUMMARY_TEXT_BYTES)
        );
        assert!(first["MessageID"].as_str().unwrap().len() <= SUMMARY_TEXT_BYTES);
        assert!(first["From"]["Name"].as_str().unwrap().len() <= SUMMARY_TEXT_BYTES);
    }

    // The full view has more of them, still bounded, with the whole count.
    let (status, body) = call(&router, get("/api/v1/message/1")).await;
    assert_eq!(status, StatusCode::OK);
    let message: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(message["To"].as_array().unwrap().len(), MESSAGE_ADDRESSES);
    assert_eq!(message["ToCount"], 20_000);
    assert_eq!(message["Cc"].as_array().unwrap().len(), 200);
    assert_eq!(message["Cc"][199]["Address"], "user199@example.com");
    assert_eq!(message["Subject"].as_str().unwrap().len(), 1 << 20);
}

/// A page of summaries for the web page's WebSocket is the same bounded shape.
#[tokio::test]
async fn new_message_events_carry_the_bounded_summary() {
    let (_dir, store) = store();
    let (addr, stop, server) = serve(&store).await;
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut socket, _) =
        tokio_tungstenite::client_async(format!("ws://{addr}/api/events"), stream)
            .await
            .unwrap();
    let import = store.clone();
    tokio::task::spawn_blocking(move || import.import(vec![new_message(huge_headers())]))
        .await
        .unwrap()
        .unwrap();
    let new = loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a frame within 10 s")
            .unwrap()
            .unwrap();
        if let tokio_tungstenite::tungstenite::Message::Text(text) = frame
            && text.starts_with(r#"{"Type":"new""#)
        {
            assert!(text.len() < 32 << 10, "a {} byte frame", text.len());
            break serde_json::from_str::<Value>(&text).unwrap();
        }
    };
    assert_eq!(new["Data"]["ToCount"], 20_000);
    assert_eq!(
        new["Data"]["To"].as_array().unwrap().len(),
        SUMMARY_ADDRESSES
    );
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

type Server = tokio::task::JoinHandle<Result<(), sokkel_web::WebError>>;

async fn serve(store: &Store) -> (SocketAddr, tokio::sync::oneshot::Sender<()>, Server) {
    let (addr, _, stop, server) = serve_state(store).await;
    (addr, stop, server)
}

/// A real server on a free loopback port, its state, and how to stop it.
async fn serve_state(
    store: &Store,
) -> (
    SocketAddr,
    AppState,
    tokio::sync::oneshot::Sender<()>,
    Server,
) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let state = AppState::new(store.clone(), WebConfig::default());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(sokkel_web::serve(
        vec![listener],
        state.clone(),
        async move {
            let _ = stop_rx.await;
        },
        Duration::from_secs(5),
    ));
    (addr, state, stop_tx, server)
}

// Issue #11: the server accepted a text/plain DELETE carrying a foreign Origin.
#[tokio::test]
async fn changes_from_a_foreign_origin_are_refused_whatever_the_content_type() {
    let (_dir, store) = store();
    store
        .import(vec![new_message(
            b"From: a@example.com\r\nSubject: keep\r\n\r\nhi\r\n".to_vec(),
        )])
        .unwrap();
    let router = router(&store);
    let request = |method: Method, uri: &str, origin: Option<&str>| {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, HOST)
            .header(header::CONTENT_TYPE, "text/plain");
        if let Some(origin) = origin {
            request = request.header(header::ORIGIN, origin);
        }
        request.body(Body::from("{}")).unwrap()
    };
    for origin in ["http://evil.example", "null", "http://127.0.0.1:9999"] {
        for (method, uri) in [
            (Method::DELETE, "/api/v1/messages"),
            (Method::PUT, "/api/v1/messages"),
            (Method::DELETE, "/api/v1/search?query=keep"),
            (Method::POST, "/api/v1/messages"),
            (Method::PATCH, "/api/v1/messages"),
        ] {
            let (status, body) = call(&router, request(method.clone(), uri, Some(origin))).await;
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "{method} {uri} from {origin}"
            );
            let body = String::from_utf8(body).unwrap();
            assert!(body.contains("another origin"), "{body}");
            assert_eq!(body.lines().count(), 1, "{body}");
        }
    }
    assert_eq!(store.count().unwrap().total, 1, "nothing was deleted");
    assert_eq!(store.count().unwrap().unread, 1, "nothing was marked");

    // Reading from a foreign page is the browser's to stop; GET still marks read.
    let (status, _) = call(
        &router,
        Request::builder()
            .uri("/api/v1/message/1")
            .header(header::HOST, HOST)
            .header(header::ORIGIN, "http://evil.example")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(store.count().unwrap().unread, 0);

    // The page itself, and clients that send no Origin, may change things.
    let (status, _) = call(
        &router,
        request(
            Method::PUT,
            "/api/v1/messages",
            Some("http://127.0.0.1:8025"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(&router, request(Method::DELETE, "/api/v1/messages", None)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(store.count().unwrap().total, 0);
}

fn big_message(len: usize) -> Vec<u8> {
    let mut raw = b"From: a@example.com\r\nSubject: big\r\n\r\n".to_vec();
    let mut line = 0_u64;
    while raw.len() < len {
        raw.extend_from_slice(format!("line {line:>10} of a big message\r\n").as_bytes());
        line += 1;
    }
    raw.truncate(len);
    raw
}

// Issue #11: 40 clients that never read a 32 MiB `/raw` took 1.3 GB, because the
// whole message was loaded for each.
#[tokio::test]
async fn raw_streams_in_chunks_and_ends_when_the_message_is_deleted() {
    let (_dir, store) = store();
    let raw = big_message(3 * RAW_CHUNK_BYTES + 1234);
    store.import(vec![new_message(raw.clone())]).unwrap();
    let router = router(&store);

    let response = router
        .clone()
        .oneshot(get("/api/v1/message/1/raw"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_LENGTH].to_str().unwrap(),
        raw.len().to_string()
    );
    let mut chunks = response.into_body().into_data_stream();
    let mut received = Vec::new();
    let mut sizes = Vec::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.unwrap();
        sizes.push(chunk.len());
        received.extend_from_slice(&chunk);
    }
    assert_eq!(received, raw, "the exact bytes");
    assert!(
        sizes.iter().all(|&size| size <= RAW_CHUNK_BYTES),
        "{sizes:?}"
    );
    assert_eq!(sizes.len(), 4);

    // Deleted after the first chunk: the stream ends with an error, no panic,
    // and the client never gets a whole-looking message.
    let response = router
        .clone()
        .oneshot(get("/api/v1/message/latest/raw?dl=1"))
        .await
        .unwrap();
    assert!(
        response.headers()[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .contains("1.eml")
    );
    let mut chunks = response.into_body().into_data_stream();
    assert!(chunks.next().await.unwrap().is_ok());
    store.delete(&[sokkel_store::MessageId(1)]).unwrap();
    assert!(chunks.next().await.unwrap().is_err());

    let (status, _) = call(&router, get("/api/v1/message/1/raw")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

// Issue #11: a part whose RFC 2231 file name came in 50,000 pieces produced a
// 578 KB Content-Disposition header that curl and Python refuse. The name here is
// long, but short enough (12 KB) for the MIME walk to read the field whole: longer
// fields are read only up to their first 16 KiB (sokkel_store::mime).
#[tokio::test]
async fn part_headers_from_message_content_are_capped() {
    let (_dir, store) = store();
    let name = format!("{}.pdf", "r\u{e9}sum\u{e9}-".repeat(1_500));
    let raw = format!(
        "From: a@example.com\r\nSubject: cv\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n\
         --b\r\nContent-Type: application/{}\r\nContent-Disposition: attachment; filename=\"{name}\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b--\r\n",
        "x".repeat(10_000)
    );
    store.import(vec![new_message(raw.into_bytes())]).unwrap();
    let router = router(&store);
    let (_, body) = call(&router, get("/api/v1/message/1")).await;
    let message: Value = serde_json::from_slice(&body).unwrap();
    let part_id = message["Attachments"][0]["PartID"]
        .as_str()
        .unwrap()
        .to_string();
    let response = router
        .clone()
        .oneshot(get(&format!("/api/v1/message/1/part/{part_id}")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let disposition = response.headers()[header::CONTENT_DISPOSITION]
        .to_str()
        .unwrap();
    assert!(disposition.len() < 1024, "{} bytes", disposition.len());
    assert!(
        disposition.starts_with("inline; filename=\"r_sum_-"),
        "{disposition}"
    );
    assert!(disposition.ends_with(".pdf"), "{disposition}");
    assert!(
        disposition.contains("filename*=UTF-8''r%C3%A9sum%C3%A9-"),
        "{disposition}"
    );
    let content_type = response.headers()[header::CONTENT_TYPE].to_str().unwrap();
    assert_eq!(content_type, "application/octet-stream");
    let total: usize = response
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    assert!(total < 4096, "{total} bytes of headers");
}

// Issue #11: a full store answered DELETE with an opaque 500.
#[test]
fn store_errors_get_statuses_a_client_can_act_on() {
    let status = |error: StoreError| ApiError::Store(error).into_response().status();
    assert_eq!(status(StoreError::Full), StatusCode::INSUFFICIENT_STORAGE);
    assert_eq!(status(StoreError::Busy), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(status(StoreError::Closed), StatusCode::SERVICE_UNAVAILABLE);
}

// Issue #11: a WebSocket client that never reads queued up to 1,024 events of any
// size (352 MB seen).
#[tokio::test]
async fn a_websocket_client_that_stops_reading_is_dropped_and_counted() {
    let (_dir, store) = store();
    let (addr, state, stop, server) = serve_state(&store).await;
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut stalled, _) =
        tokio_tungstenite::client_async(format!("ws://{addr}/api/events"), stream)
            .await
            .unwrap();
    // Summaries of about 12 KB each (50 addresses with long names); the socket
    // buffers take several MB before the server's queue grows.
    let message = format!(
        "From: a@example.com\r\nTo: {}\r\nSubject: s\r\n\r\nhi\r\n",
        addresses(60, &"n".repeat(200))
    )
    .into_bytes();
    let deadline = Instant::now() + Duration::from_secs(30);
    while state.websocket_drops() == 0 {
        assert!(
            Instant::now() < deadline,
            "the stalled client was never dropped"
        );
        let import = store.clone();
        let batch: Vec<NewMessage> = (0..200).map(|_| new_message(message.clone())).collect();
        tokio::task::spawn_blocking(move || import.import(batch))
            .await
            .unwrap()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, body) = call(&app(state.clone()), get("/api/v1/info")).await;
    let info: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(info["RuntimeStats"]["WebSocketsDropped"], 1);
    // The dropped client finds its connection closed once it reads what the
    // socket buffers held.
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(frame)) = stalled.next().await {
            if frame.is_close() {
                break;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the connection was closed");
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

// Issue #11: answers built in memory (a decoded part, the message view) wait for
// slow clients within one budget; past it a large answer is a 503, not more
// memory, and the budget comes back when a client goes away.
#[tokio::test]
async fn answers_waiting_for_slow_clients_share_a_bounded_budget() {
    let (_dir, store) = store();
    let payload = "QUJD".repeat(200_000); // 600,000 bytes decoded
    let raw = format!(
        "From: a@example.com\r\nSubject: pdf\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n\
         --b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=a.pdf\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{payload}\r\n--b--\r\n"
    );
    store.import(vec![new_message(raw.into_bytes())]).unwrap();
    let router = app(AppState::new(
        store.clone(),
        WebConfig {
            max_buffered_bytes: 1 << 20,
            ..WebConfig::default()
        },
    ));
    let (_, body) = call(&router, get("/api/v1/message/1")).await;
    let message: Value = serde_json::from_slice(&body).unwrap();
    let part = format!(
        "/api/v1/message/1/part/{}",
        message["Attachments"][0]["PartID"].as_str().unwrap()
    );
    // A client that does not read: its answer holds 600 KB of the 1 MiB budget.
    let stalled = router.clone().oneshot(get(&part)).await.unwrap();
    assert_eq!(stalled.status(), StatusCode::OK);
    let (status, body) = call(&router, get(&part)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(String::from_utf8(body).unwrap().contains("try again"));
    // Small answers are not held up.
    let (status, _) = call(&router, get("/api/v1/messages")).await;
    assert_eq!(status, StatusCode::OK);
    drop(stalled);
    let (status, body) = call(&router, get(&part)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.len(), 600_000);
}
