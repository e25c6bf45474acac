//! The web API through the router (tower's `oneshot`, no socket), checked field by
//! field against Mailpit's shapes, every user mistake answered with a 4xx; then
//! once through a real socket, with a WebSocket that sees mail arrive.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use futures_util::StreamExt;
use serde_json::Value;
use sokkel_store::{Envelope, NewMessage, Store, StoreOptions};
use sokkel_web::{AppState, WebConfig, app, routes};
use tempfile::TempDir;
use tower::ServiceExt;

const HOST: &str = "127.0.0.1:8025";

/// A store in a temporary directory, with `messages` imported in order.
fn store_with(messages: &[&str]) -> (TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("mail.db"), StoreOptions::default()).unwrap();
    if !messages.is_empty() {
        store
            .import(messages.iter().map(|raw| new_message(raw)).collect())
            .unwrap();
    }
    (dir, store)
}

fn new_message(raw: &str) -> NewMessage {
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
        raw: raw.replace('\n', "\r\n").into_bytes(),
    }
}

fn plain(subject: &str, body: &str) -> String {
    format!(
        "From: Rick Sanchez <rick@example.com>\nTo: Morty <morty@example.com>, summer@example.com\n\
         Cc: beth@example.com\nSubject: {subject}\nMessage-ID: <{subject}@example.com>\n\
         Date: Tue, 24 Nov 2026 16:24:05 +0000\n\n{body}\n"
    )
}

/// A message with text, HTML, an inline image and a PDF attachment.
const MIXED: &str = "From: Rick <rick@example.com>\nTo: morty@example.com\nBcc: secret@example.com\n\
Subject: Invoice\nMessage-ID: <invoice@example.com>\nList-Unsubscribe: <mailto:u@example.com>\n\
MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=outer\n\n\
--outer\nContent-Type: multipart/related; boundary=rel\n\n\
--rel\nContent-Type: multipart/alternative; boundary=alt\n\n\
--alt\nContent-Type: text/plain; charset=utf-8\n\nPlease pay.\n\
--alt\nContent-Type: text/html; charset=utf-8\n\n<p>Please <b>pay</b>.<img src=\"cid:logo@x\"></p>\n\
--alt--\n\
--rel\nContent-Type: image/png\nContent-ID: <logo@x>\nContent-Disposition: inline\nContent-Transfer-Encoding: base64\n\niVBORw0K\n\
--rel--\n\
--outer\nContent-Type: application/pdf; name=\"invoice.pdf\"\nContent-Disposition: attachment; filename=\"invoice.pdf\"\n\
Content-Transfer-Encoding: base64\n\nJVBERi0xLjQK\n\
--outer--\n";

fn router(store: &Store) -> Router {
    app(AppState::new(store.clone(), WebConfig::default()))
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "not JSON ({error}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(&name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

async fn send(router: &Router, request: Request<Body>) -> Answer {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = to_bytes(response.into_body(), 64 << 20)
        .await
        .unwrap()
        .to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

async fn call(router: &Router, method: Method, uri: &str, body: Option<&str>) -> Answer {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, HOST);
    if body.is_some() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
    send(router, request.body(body).unwrap()).await
}

async fn get(router: &Router, uri: &str) -> Answer {
    call(router, Method::GET, uri, None).await
}

fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

#[tokio::test]
async fn list_has_mailpit_shape_newest_first_and_pages_by_cursor() {
    let (_dir, store) = store_with(&[
        &plain("one", "first body"),
        &plain("two", "second body"),
        &plain("three", "third body"),
    ]);
    let router = router(&store);
    let answer = get(&router, "/api/v1/messages?limit=2").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(
        answer
            .header(header::CONTENT_TYPE)
            .starts_with("application/json")
    );
    let page = answer.json();
    assert_eq!(
        keys(&page),
        [
            "count",
            "messages",
            "messages_count",
            "messages_unread",
            "start",
            "tags",
            "total",
            "unread"
        ]
    );
    assert_eq!(page["total"], 3);
    assert_eq!(page["unread"], 3);
    assert_eq!(page["count"], 2);
    assert_eq!(page["messages_count"], 3);
    assert_eq!(page["start"], 0);
    assert_eq!(page["tags"], serde_json::json!([]));
    let first = &page["messages"][0];
    assert_eq!(
        keys(first),
        [
            "Attachments",
            "Bcc",
            "Cc",
            "CcCount",
            "Created",
            "Flagged",
            "From",
            "ID",
            "MessageID",
            "Read",
            "ReplyTo",
            "ReplyToCount",
            "Size",
            "Snippet",
            "Subject",
            "Tags",
            "To",
            "ToCount"
        ]
    );
    assert_eq!(first["ID"], "3", "IDs are strings, newest first");
    assert_eq!(first["MessageID"], "three@example.com");
    assert_eq!(first["Read"], false);
    assert_eq!(
        first["From"],
        serde_json::json!({"Name": "Rick Sanchez", "Address": "rick@example.com"})
    );
    assert_eq!(
        first["To"],
        serde_json::json!([
            {"Name": "Morty", "Address": "morty@example.com"},
            {"Name": "", "Address": "summer@example.com"}
        ])
    );
    assert_eq!(first["Cc"][0]["Address"], "beth@example.com");
    assert_eq!(
        (first["ToCount"].as_u64(), first["CcCount"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(first["ReplyToCount"], 0);
    assert_eq!(first["Subject"], "three");
    assert_eq!(first["Snippet"], "third body");
    assert_eq!(first["Attachments"], 0);
    assert!(first["Size"].as_u64().unwrap() > 100);
    let created = first["Created"].as_str().unwrap();
    assert!(
        created.len() == 24 && created.ends_with('Z') && created.contains('T'),
        "{created}"
    );

    let next = get(&router, "/api/v1/messages?limit=2&before=2")
        .await
        .json();
    let ids: Vec<&str> = next["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["ID"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["1"]);
    let offset = get(&router, "/api/v1/messages?start=1&limit=1")
        .await
        .json();
    assert_eq!(offset["start"], 1);
    assert_eq!(offset["messages"][0]["ID"], "2");
}

#[tokio::test]
async fn message_has_mailpit_shape_and_is_marked_read() {
    let (_dir, store) = store_with(&[MIXED]);
    let router = router(&store);
    let answer = get(&router, "/api/v1/message/latest").await;
    assert_eq!(answer.status, StatusCode::OK);
    let m = answer.json();
    assert_eq!(
        keys(&m),
        [
            "Attachments",
            "Bcc",
            "BccCount",
            "Cc",
            "CcCount",
            "Date",
            "Flagged",
            "From",
            "HTML",
            "ID",
            "Inline",
            "ListUnsubscribe",
            "MessageID",
            "Relays",
            "ReplyTo",
            "ReplyToCount",
            "ReturnPath",
            "Size",
            "Subject",
            "Tags",
            "Text",
            "To",
            "ToCount"
        ]
    );
    assert_eq!(m["ID"], "1");
    assert_eq!(m["MessageID"], "invoice@example.com");
    assert_eq!(m["Subject"], "Invoice");
    assert_eq!(m["Bcc"][0]["Address"], "secret@example.com");
    assert_eq!(
        (m["ToCount"].as_u64(), m["BccCount"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(m["ReturnPath"], "sender@example.com", "the envelope sender");
    assert_eq!(m["Text"].as_str().unwrap().trim(), "Please pay.");
    assert!(m["HTML"].as_str().unwrap().contains("<b>pay</b>"));
    assert_eq!(m["Tags"], serde_json::json!([]));
    assert_eq!(m["Relays"], serde_json::json!([]), "never relayed");
    assert_eq!(m["ListUnsubscribe"]["Links"][0], "mailto:u@example.com");
    let pdf = &m["Attachments"][0];
    assert_eq!(
        keys(pdf),
        ["ContentID", "ContentType", "FileName", "PartID", "Size"]
    );
    assert_eq!(pdf["FileName"], "invoice.pdf");
    assert_eq!(pdf["ContentType"], "application/pdf");
    assert_eq!(pdf["Size"], 9);
    let logo = &m["Inline"][0];
    assert_eq!(logo["ContentID"], "logo@x");
    assert_eq!(logo["ContentType"], "image/png");

    let list = get(&router, "/api/v1/messages").await.json();
    assert_eq!(list["messages"][0]["Read"], true, "reading marks it read");
    assert_eq!(list["unread"], 0);
    assert_eq!(
        list["messages"][0]["Attachments"], 1,
        "inline parts are not counted"
    );
}

#[tokio::test]
async fn raw_headers_parts_and_envelope() {
    let (_dir, store) = store_with(&[MIXED]);
    let router = router(&store);
    let raw = get(&router, "/api/v1/message/1/raw").await;
    assert_eq!(raw.status, StatusCode::OK);
    assert_eq!(
        raw.header(header::CONTENT_TYPE),
        "text/plain; charset=utf-8"
    );
    assert_eq!(raw.body, MIXED.replace('\n', "\r\n").as_bytes());
    let download = get(&router, "/api/v1/message/latest/raw?dl=1").await;
    assert!(
        download
            .header(header::CONTENT_DISPOSITION)
            .starts_with("attachment; filename=\"1.eml\"")
    );

    let headers = get(&router, "/api/v1/message/1/headers").await.json();
    assert_eq!(headers["Subject"], serde_json::json!(["Invoice"]));
    assert_eq!(
        headers["Message-Id"],
        serde_json::json!(["<invoice@example.com>"])
    );
    assert!(
        headers["Content-Type"][0]
            .as_str()
            .unwrap()
            .starts_with("multipart/mixed")
    );

    let m = get(&router, "/api/v1/message/1").await.json();
    let pdf_part = m["Attachments"][0]["PartID"].as_str().unwrap().to_string();
    let pdf = get(&router, &format!("/api/v1/message/1/part/{pdf_part}")).await;
    assert_eq!(pdf.status, StatusCode::OK);
    assert_eq!(pdf.body, b"%PDF-1.4\n");
    assert_eq!(pdf.header(header::CONTENT_TYPE), "application/pdf");
    assert!(
        pdf.header(header::CONTENT_DISPOSITION)
            .contains("invoice.pdf")
    );

    // The HTML body as a part is a download, never a page of sokkel's origin.
    let html_part = (0..12)
        .map(|n| n.to_string())
        .find(|n| {
            let raw = MIXED.replace('\n', "\r\n");
            sokkel_store::mime::part(raw.as_bytes(), n)
                .is_some_and(|(info, _)| info.content_type == "text/html")
        })
        .unwrap();
    let html = get(&router, &format!("/api/v1/message/1/part/{html_part}")).await;
    assert_eq!(
        html.header(header::CONTENT_TYPE),
        "application/octet-stream"
    );
    assert!(
        html.header(header::CONTENT_DISPOSITION)
            .starts_with("attachment")
    );

    let envelope = get(&router, "/api/v1/message/1/envelope").await.json();
    assert_eq!(envelope["MailFrom"], "sender@example.com");
    assert_eq!(envelope["RcptTo"], serde_json::json!(["rcpt@example.com"]));
    assert_eq!(envelope["Helo"], "client.example");
    assert_eq!(envelope["BareLF"], false);
    assert_eq!(envelope["TLS"], Value::Null);
}

#[tokio::test]
async fn read_status_and_deletes() {
    let (_dir, store) = store_with(&[&plain("a", "x"), &plain("b", "y"), &plain("c", "z")]);
    let router = router(&store);
    let put = call(
        &router,
        Method::PUT,
        "/api/v1/messages",
        Some(r#"{"IDs":["1","2"],"Read":true}"#),
    )
    .await;
    assert_eq!((put.status, put.text().trim()), (StatusCode::OK, "ok"));
    assert_eq!(get(&router, "/api/v1/messages").await.json()["unread"], 1);
    let put = call(
        &router,
        Method::PUT,
        "/api/v1/messages",
        Some(r#"{"Read":true}"#),
    )
    .await;
    assert_eq!(put.status, StatusCode::OK);
    assert_eq!(get(&router, "/api/v1/messages").await.json()["unread"], 0);
    let put = call(
        &router,
        Method::PUT,
        "/api/v1/messages",
        Some(r#"{"Search":"subject:b","Read":false}"#),
    )
    .await;
    assert_eq!(put.status, StatusCode::OK);
    let list = get(&router, "/api/v1/messages").await.json();
    assert_eq!(list["unread"], 1);
    assert_eq!(list["messages"][1]["Read"], false, "b is unread again");

    let delete = call(
        &router,
        Method::DELETE,
        "/api/v1/messages",
        Some(r#"{"IDs":["2","99"]}"#),
    )
    .await;
    assert_eq!(delete.status, StatusCode::OK);
    assert_eq!(get(&router, "/api/v1/messages").await.json()["total"], 2);
    assert_eq!(
        get(&router, "/api/v1/message/2").await.status,
        StatusCode::NOT_FOUND
    );
    // mailpit-api sends no body at all to delete everything.
    let all = call(&router, Method::DELETE, "/api/v1/messages", None).await;
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(get(&router, "/api/v1/messages").await.json()["total"], 0);
    assert_eq!(
        get(&router, "/api/v1/message/latest").await.status,
        StatusCode::NOT_FOUND
    );
}

/// `PUT /api/v1/messages` also takes sokkel's `Flagged`, by IDs, for all and by
/// search, without touching `Read` unless it is given; lists, messages and the
/// WebSocket show the star.
#[tokio::test]
async fn flags_are_set_by_put_and_shown() {
    let (_dir, store) = store_with(&[&plain("a", "x"), &plain("b", "y"), &plain("c", "z")]);
    let router = router(&store);
    let mut events = store.subscribe();
    let put = |body: &'static str| {
        let router = router.clone();
        async move {
            let answer = call(&router, Method::PUT, "/api/v1/messages", Some(body)).await;
            assert_eq!(
                (answer.status, answer.text().trim()),
                (StatusCode::OK, "ok")
            );
        }
    };
    // Newest first: c, b, a.
    let flags = |list: &Value| -> Vec<(bool, bool)> {
        list["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["Read"].as_bool().unwrap(),
                    m["Flagged"].as_bool().unwrap(),
                )
            })
            .collect()
    };
    put(r#"{"IDs":["1"],"Flagged":true}"#).await;
    let list = get(&router, "/api/v1/messages").await.json();
    assert_eq!(
        flags(&list),
        [(false, false), (false, false), (false, true)]
    );
    assert_eq!(list["unread"], 3, "Read was not given, so it stays");
    assert_eq!(
        events.recv().await.unwrap(),
        sokkel_store::StoreEvent::FlaggedChanged(vec![sokkel_store::MessageId(1)], true)
    );
    put(r#"{"Flagged":true,"Read":true}"#).await;
    let list = get(&router, "/api/v1/messages").await.json();
    assert_eq!(flags(&list), [(true, true); 3], "no IDs: every message");
    put(r#"{"Search":"subject:b","Flagged":false}"#).await;
    let list = get(&router, "/api/v1/messages").await.json();
    assert_eq!(flags(&list), [(true, true), (true, false), (true, true)]);
    assert_eq!(
        get(&router, "/api/v1/message/2").await.json()["Flagged"],
        false
    );
    assert_eq!(
        get(&router, "/api/v1/message/3").await.json()["Flagged"],
        true
    );
    // Mailpit's own body: Read defaults to false, the star stays.
    put(r#"{"IDs":["3"]}"#).await;
    let list = get(&router, "/api/v1/messages").await.json();
    assert_eq!(flags(&list)[0], (false, true));
    let bad = call(
        &router,
        Method::PUT,
        "/api/v1/messages",
        Some(r#"{"IDs":["1"],"Flagged":"yes"}"#),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

/// `/api/v1/info` in Mailpit's full shape, its runtime statistics counted by the
/// store (accepted, deleted) and by the SMTP server (rejected).
#[tokio::test]
async fn info_has_mailpit_shape_and_counts() {
    use sokkel_store::Deliver;
    let (_dir, store) = store_with(&[&plain("imported", "x")]);
    let config = WebConfig::default();
    // Mailpit's one number adds up every reason.
    use sokkel_net::stats::RejectReason;
    config.smtp_counters.add_rejected(RejectReason::Size, 2);
    config.smtp_counters.add_rejected(RejectReason::Syntax, 1);
    let router = app(AppState::new(store.clone(), config));
    let raw = plain("delivered", "y");
    let size = raw.replace('\n', "\r\n").len() as u64;
    let delivered = store.deliver(new_message(&raw)).await.unwrap();
    store.delete(&[delivered]).unwrap();
    let info = get(&router, "/api/v1/info").await.json();
    assert_eq!(
        keys(&info),
        [
            "Database",
            "DatabaseSize",
            "LatestVersion",
            "Messages",
            "RuntimeStats",
            "Tags",
            "Unread",
            "Version"
        ]
    );
    let stats = &info["RuntimeStats"];
    assert_eq!(
        keys(stats),
        [
            "Memory",
            "MessagesDeleted",
            "SMTPAccepted",
            "SMTPAcceptedSize",
            "SMTPIgnored",
            "SMTPRejected",
            "Uptime",
            "WebSocketsDropped"
        ]
    );
    assert_eq!(info["Messages"], 1);
    assert_eq!(info["Tags"], serde_json::json!({}));
    assert_eq!(stats["SMTPAccepted"], 1, "imports are not SMTP");
    assert_eq!(stats["SMTPAcceptedSize"], size);
    assert_eq!(stats["MessagesDeleted"], 1);
    assert_eq!(stats["SMTPRejected"], 3);
    assert_eq!(stats["SMTPIgnored"], 0);
}

#[tokio::test]
async fn search_lists_and_deletes_matches() {
    let (_dir, store) = store_with(&[
        &plain("Invoice 12", "pay now"),
        &plain("Hello", "nothing to pay"),
        &plain("Invoice 13", "again"),
    ]);
    let router = router(&store);
    let found = get(&router, "/api/v1/search?query=subject%3Ainvoice&limit=1").await;
    assert_eq!(found.status, StatusCode::OK);
    let found = found.json();
    assert_eq!(found["messages_count"], 2);
    assert_eq!(found["messages_unread"], 2);
    assert_eq!(found["total"], 3);
    assert_eq!(found["count"], 1);
    assert_eq!(found["messages"][0]["Subject"], "Invoice 13");
    let next = get(&router, "/api/v1/search?query=subject%3Ainvoice&before=3")
        .await
        .json();
    assert_eq!(next["messages"][0]["Subject"], "Invoice 12");
    let text = get(&router, "/api/v1/search?query=pay").await.json();
    assert_eq!(text["messages_count"], 2);

    let delete = call(
        &router,
        Method::DELETE,
        "/api/v1/search?query=subject%3Ainvoice",
        None,
    )
    .await;
    assert_eq!(delete.status, StatusCode::OK);
    let left = get(&router, "/api/v1/messages").await.json();
    assert_eq!(left["total"], 1);
    assert_eq!(left["messages"][0]["Subject"], "Hello");
}

/// Every Mailpit operator is understood (issue #12: `tag:` and `message-id:`
/// used to be a 400), and `tz` puts `before:`/`after:` days in the user's zone.
#[tokio::test]
async fn search_knows_mailpit_operators_and_time_zones() {
    let (_dir, store) = store_with(&[MIXED, &plain("Hello", "nothing to pay")]);
    let router = router(&store);
    let subjects = |answer: Value| -> Vec<String> {
        let messages = answer["messages"].as_array().unwrap().clone();
        messages
            .iter()
            .map(|m| m["Subject"].as_str().unwrap().to_string())
            .collect()
    };
    let cases: &[(&str, &[&str])] = &[
        ("has%3Ainline", &["Invoice"]),
        ("%21has%3Ainline", &["Hello"]),
        ("bcc%3Asecret", &["Invoice"]),
        ("cc%3Abeth", &["Hello"]),
        ("addressed%3Asummer", &["Hello"]),
        ("message-id%3Ainvoice%40example.com", &["Invoice"]),
        ("reply-to%3Arick", &[]),
        ("larger%3A100k", &[]),
        ("smaller%3A100k", &["Hello", "Invoice"]),
        ("tag%3Aurgent", &[]),
        (
            "is%3Auntagged+is%3Aunflagged+is%3Aunread",
            &["Hello", "Invoice"],
        ),
    ];
    for (query, expected) in cases {
        let answer = get(&router, &format!("/api/v1/search?query={query}")).await;
        assert_eq!(answer.status, StatusCode::OK, "{query}");
        assert_eq!(subjects(answer.json()), *expected, "{query}");
    }

    // 23:30 and 22:30 UTC on the 23rd: in Amsterdam (UTC+1) the first is
    // already the 24th.
    let late = |raw: &str, time: &str| {
        let mut message = new_message(raw);
        let millis = match time {
            "23:30" => 1_795_476_600_000,
            _ => 1_795_473_000_000,
        };
        message.received_at = SystemTime::UNIX_EPOCH + Duration::from_millis(millis);
        message
    };
    let (_zoned_dir, zoned) = store_with(&[]);
    zoned
        .import(vec![
            late(&plain("Early", "x"), "22:30"),
            late(&plain("Late", "x"), "23:30"),
        ])
        .unwrap();
    let router = self::router(&zoned);
    let after = "/api/v1/search?query=after%3A2026-11-24";
    assert_eq!(
        subjects(get(&router, after).await.json()),
        Vec::<String>::new()
    );
    let amsterdam = format!("{after}&tz=Europe%2FAmsterdam");
    assert_eq!(subjects(get(&router, &amsterdam).await.json()), ["Late"]);
    let offset = format!("{after}&tz=%2B01%3A00");
    assert_eq!(subjects(get(&router, &offset).await.json()), ["Late"]);
    let delete = call(
        &router,
        Method::DELETE,
        "/api/v1/search?query=before%3A2026-11-24&tz=Europe%2FAmsterdam",
        None,
    )
    .await;
    assert_eq!(delete.status, StatusCode::OK);
    let left = get(&router, "/api/v1/messages").await.json();
    assert_eq!(subjects(left), ["Late"]);
    let bad = get(&router, "/api/v1/search?query=x&tz=Mars%2FBase").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        String::from_utf8_lossy(&bad.body).contains("unknown time zone \"Mars/Base\""),
        "{}",
        String::from_utf8_lossy(&bad.body)
    );
}

/// Method, URI, body, Content-Type, expected status.
type Case<'a> = (
    Method,
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    StatusCode,
);

/// Every mistake a user can make gets a 4xx and a one-line text/plain reason.
#[tokio::test]
async fn user_mistakes_get_4xx_never_500() {
    let (_dir, store) = store_with(&[MIXED]);
    let router = router(&store);
    let big = format!("{{\"IDs\": [\"{}\"]}}", "1".repeat(2 << 20));
    let cases: &[Case<'_>] = &[
        (
            Method::GET,
            "/api/v1/message/999",
            None,
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::GET,
            "/api/v1/message/abc",
            None,
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/api/v1/message/-1",
            None,
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/api/v1/message/99999999999999999999999",
            None,
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/api/v1/message/abc/raw",
            None,
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/api/v1/message/999/headers",
            None,
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::GET,
            "/api/v1/message/1/part/x",
            None,
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/api/v1/message/1/part/77",
            None,
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::GET,
            "/api/v1/message/999/part/1",
            None,
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::GET,
            "/api/v1/messages?limit=ten",
            None,
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/api/v1/messages?start=-5",
            None,
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/api/v1/messages?before=yesterday",
            None,
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/api/v1/messages?start=%FF%FE",
            None,
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/api/v1/search",
            None,
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/api/v1/search?query=bogus%3Athing",
            None,
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/api/v1/search?query=%22unclosed",
            None,
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/api/v1/search?query=larger%3Abig",
            None,
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/api/v1/search?query=before%3A2026-11-24&tz=Nowhere%2FLand",
            None,
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::DELETE,
            "/api/v1/search?query=after%3A2026-11-24&tz=%2B99%3A00",
            None,
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::DELETE,
            "/api/v1/search?query=",
            None,
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::DELETE,
            "/api/v1/search?query=%26",
            None,
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::PUT,
            "/api/v1/messages",
            Some("{not json"),
            Some("application/json"),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::PUT,
            "/api/v1/messages",
            Some("IDs=1"),
            Some("application/x-www-form-urlencoded"),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::PUT,
            "/api/v1/messages",
            Some(r#"{"IDs":[1]}"#),
            Some("application/json"),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::PUT,
            "/api/v1/messages",
            Some(r#"{"IDs":["x"]}"#),
            Some("application/json"),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::PUT,
            "/api/v1/messages",
            Some(r#"{"IDs":["1"],"Search":"a"}"#),
            Some("application/json"),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::DELETE,
            "/api/v1/messages",
            Some("[1,2"),
            Some("text/plain"),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::DELETE,
            "/api/v1/messages",
            Some(r#"{"IDs":["latest"]}"#),
            Some("application/json"),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::DELETE,
            "/api/v1/messages",
            Some(&big),
            Some("application/json"),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            Method::POST,
            "/api/v1/messages",
            None,
            None,
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::GET,
            "/api/v1/nothing",
            None,
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::GET,
            "/static/../Cargo.toml",
            None,
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::GET,
            "/view/1.exe",
            None,
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::GET,
            "/view/abc.html",
            None,
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/api/events",
            None,
            None,
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (method, uri, body, content_type, expected) in cases {
        let mut request = Request::builder()
            .method(method.clone())
            .uri(*uri)
            .header(header::HOST, HOST);
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, *content_type);
        }
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        let answer = send(&router, request.body(body).unwrap()).await;
        assert_eq!(
            answer.status,
            *expected,
            "{method} {uri}: {}",
            answer.text()
        );
        if answer.status != StatusCode::METHOD_NOT_ALLOWED
            && answer.status != StatusCode::PAYLOAD_TOO_LARGE
        {
            assert!(
                answer
                    .header(header::CONTENT_TYPE)
                    .starts_with("text/plain"),
                "{method} {uri}"
            );
            let text = answer.text();
            assert!(
                !text.trim().is_empty() && text.trim().lines().count() == 1,
                "{method} {uri}: {text:?}"
            );
        }
    }
    let huge = get(&router, "/api/v1/messages?start=18446744073709551615").await;
    assert_eq!(huge.status, StatusCode::OK);
    assert_eq!(huge.json()["messages"], serde_json::json!([]));
    let capped = get(&router, "/api/v1/messages?limit=100000").await;
    assert_eq!(capped.status, StatusCode::OK);
}

#[tokio::test]
async fn foreign_host_is_refused_on_loopback() {
    let (_dir, store) = store_with(&[]);
    let router = router(&store);
    for (host, expected) in [
        ("evil.example:8025", StatusCode::FORBIDDEN),
        ("localhost:8025", StatusCode::OK),
        ("[::1]:8025", StatusCode::OK),
    ] {
        let request = Request::get("/api/v1/messages")
            .header(header::HOST, host)
            .body(Body::empty())
            .unwrap();
        assert_eq!(send(&router, request).await.status, expected, "{host}");
    }
    let open = app(AppState::new(
        store.clone(),
        WebConfig {
            host_policy: sokkel_web::HostPolicy::Any,
            ..WebConfig::default()
        },
    ));
    let request = Request::get("/api/v1/messages")
        .header(header::HOST, "mail.internal:8025")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&open, request).await.status, StatusCode::OK);
}

#[tokio::test]
async fn page_is_cached_by_etag_and_locked_down() {
    let (_dir, store) = store_with(&[]);
    let router = router(&store);
    let page = get(&router, "/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        page.header(header::CONTENT_TYPE),
        "text/html; charset=utf-8"
    );
    assert_eq!(page.header(header::CACHE_CONTROL), "no-cache");
    assert_eq!(page.header(header::X_CONTENT_TYPE_OPTIONS), "nosniff");
    let csp = page.header(header::CONTENT_SECURITY_POLICY);
    assert!(
        csp.contains("script-src 'self'")
            && csp.contains("frame-ancestors 'none'")
            && csp.contains("base-uri 'none'"),
        "{csp}"
    );
    for script in ["static/theme.js", "static/app.js", "static/checks.js"] {
        assert!(page.text().contains(script), "the page loads {script}");
    }
    let etag = page.header(header::ETAG).to_string();
    assert!(etag.starts_with('"'));
    let request = Request::get("/")
        .header(header::HOST, HOST)
        .header(header::IF_NONE_MATCH, &etag)
        .body(Body::empty())
        .unwrap();
    let again = send(&router, request).await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert!(again.body.is_empty());
    for (file, content_type) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("theme.js", "text/javascript; charset=utf-8"),
        ("checks.js", "text/javascript; charset=utf-8"),
        ("app.css", "text/css; charset=utf-8"),
        ("checks.css", "text/css; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
    ] {
        let asset = get(&router, &format!("/static/{file}")).await;
        assert_eq!(asset.status, StatusCode::OK, "{file}");
        assert_eq!(asset.header(header::CONTENT_TYPE), content_type);
        assert!(!asset.header(header::ETAG).is_empty());
    }
}

#[tokio::test]
async fn a_message_link_opens_the_page() {
    let (_dir, store) = store_with(&[]);
    let router = router(&store);
    let page = get(&router, "/").await;
    for uri in ["/view/7", "/view/latest"] {
        let linked = get(&router, uri).await;
        assert_eq!(linked.status, StatusCode::OK, "{uri}");
        assert_eq!(linked.body, page.body, "{uri} is the page");
        assert_eq!(
            linked.header(header::CONTENT_SECURITY_POLICY),
            page.header(header::CONTENT_SECURITY_POLICY)
        );
    }
    for uri in ["/view/7x", "/view/", "/view/..%2Fetc"] {
        assert_eq!(
            get(&router, uri).await.status,
            StatusCode::NOT_FOUND,
            "{uri}"
        );
    }
}

#[tokio::test]
async fn webui_says_where_to_send_and_whether_release_works() {
    let (_dir, store) = store_with(&[]);
    let config = WebConfig {
        smtp_addresses: vec!["127.0.0.1:2525".into()],
        ..WebConfig::default()
    };
    let router = app(AppState::new(store.clone(), config));
    let webui = get(&router, "/api/v1/webui").await.json();
    assert_eq!(
        webui["SMTPAddresses"],
        serde_json::json!(["127.0.0.1:2525"])
    );
    assert_eq!(webui["MessageRelay"]["Enabled"], false);
    assert_eq!(webui["ChaosEnabled"], false);
    for key in [
        "Label",
        "SpamAssassin",
        "DuplicatesIgnored",
        "HideDeleteAllButton",
    ] {
        assert!(webui.get(key).is_some(), "Mailpit's {key}");
    }
}

#[tokio::test]
async fn message_html_is_served_sandboxed_without_scripts() {
    let (_dir, store) = store_with(&[MIXED]);
    let router = router(&store);
    let view = get(&router, "/view/1.html").await;
    assert_eq!(view.status, StatusCode::OK);
    let csp = view.header(header::CONTENT_SECURITY_POLICY).to_string();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    assert!(
        csp.contains("sandbox") && !csp.contains("allow-scripts"),
        "{csp}"
    );
    // Any http: or https: URL is a remote image; this server's parts are not.
    let sources = |csp: &str| -> Vec<String> { csp.split([' ', ';']).map(String::from).collect() };
    assert!(
        !sources(&csp).iter().any(|s| s == "http:" || s == "https:"),
        "remote images blocked: {csp}"
    );
    assert!(
        view.text().contains("/api/v1/message/1/part/"),
        "cid: points at the part"
    );
    let remote = get(&router, "/view/1.html?remote=1").await;
    assert!(
        remote
            .header(header::CONTENT_SECURITY_POLICY)
            .contains("http: https:")
    );
    let text = get(&router, "/view/latest.txt").await;
    assert_eq!(text.text().trim(), "Please pay.");
}

#[tokio::test]
async fn openapi_lists_every_route_and_nothing_else() {
    let (_dir, store) = store_with(&[]);
    let router = router(&store);
    for path in ["/api/v1/openapi.json", "/api/v1/swagger.json"] {
        let doc = get(&router, path).await;
        assert_eq!(doc.status, StatusCode::OK);
        assert_eq!(doc.header(header::CONTENT_TYPE), "application/json");
        let doc = doc.json();
        let mut documented = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                documented.push((method.to_uppercase(), path.clone()));
            }
        }
        documented.sort();
        let mut served: Vec<(String, String)> = routes()
            .into_iter()
            .map(|(method, path)| (method.to_string(), path.to_string()))
            .collect();
        served.sort();
        assert_eq!(served, documented);
    }
}

/// A real socket: plain HTTP, then a WebSocket that gets `new` and `stats` frames
/// as mail is stored, and is closed when the server stops.
#[tokio::test]
async fn real_socket_and_websocket_new_event() {
    let (_dir, store) = store_with(&[]);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let state = AppState::new(store.clone(), WebConfig::default());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(sokkel_web::serve(
        vec![listener],
        state,
        async move {
            let _ = stop_rx.await;
        },
        Duration::from_secs(5),
    ));

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut http = tokio::net::TcpStream::connect(addr).await.unwrap();
    http.write_all(
        format!("GET /api/v1/messages HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut reply = String::new();
    tokio::time::timeout(Duration::from_secs(10), http.read_to_string(&mut reply))
        .await
        .unwrap()
        .unwrap();
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert!(reply.contains("\"total\":0"), "{reply}");

    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut socket, _) =
        tokio_tungstenite::client_async(format!("ws://{addr}/api/events"), stream)
            .await
            .unwrap();
    // The handler subscribes before it answers 101, so nothing after the
    // handshake is missed.
    let import_store = store.clone();
    tokio::task::spawn_blocking(move || {
        import_store.import(vec![new_message(&plain("live", "hi"))])
    })
    .await
    .unwrap()
    .unwrap();
    let mut seen_new = None;
    let mut seen_stats = None;
    for _ in 0..10 {
        let frame = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a frame within 10 s")
            .expect("the socket is open")
            .unwrap();
        let tokio_tungstenite::tungstenite::Message::Text(text) = frame else {
            continue;
        };
        let value: Value = serde_json::from_str(&text).unwrap();
        match value["Type"].as_str() {
            Some("new") => seen_new = Some(value["Data"].clone()),
            Some("stats") => seen_stats = Some(value["Data"].clone()),
            _ => {}
        }
        if seen_new.is_some() && seen_stats.is_some() {
            break;
        }
    }
    let new = seen_new.expect("a new frame");
    assert_eq!(new["Subject"], "live");
    assert_eq!(new["ID"], "1");
    assert_eq!(new["Read"], false);
    let stats = seen_stats.expect("a stats frame");
    assert_eq!(keys(&stats), ["Total", "Unread", "Version"]);
    assert_eq!(stats["Total"], 1);

    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server stops with a WebSocket open")
        .unwrap()
        .unwrap();
}

/// A client that connects and says nothing loses its connection after the idle
/// timeout, so stalled clients cannot hold every slot; an open page's WebSocket,
/// answering the server's pings, stays.
#[tokio::test]
async fn silent_connections_are_closed_but_websockets_are_kept_alive() {
    use tokio::io::AsyncReadExt;
    let (_dir, store) = store_with(&[]);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let idle = Duration::from_millis(300);
    let config = WebConfig {
        idle_timeout: idle,
        ..WebConfig::default()
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(sokkel_web::serve(
        vec![listener],
        AppState::new(store, config),
        async move {
            let _ = stop_rx.await;
        },
        Duration::from_secs(5),
    ));

    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(10), silent.read(&mut byte))
        .await
        .expect("the server closes a silent connection");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");

    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut socket, _) =
        tokio_tungstenite::client_async(format!("ws://{addr}/api/events"), stream)
            .await
            .unwrap();
    // Reading lets tungstenite answer pings; for ten idle periods only pings come.
    let until = tokio::time::Instant::now() + idle * 10;
    let mut pings = 0;
    while let Ok(frame) = tokio::time::timeout_at(until, socket.next()).await {
        match frame.expect("the WebSocket stays open").unwrap() {
            tokio_tungstenite::tungstenite::Message::Ping(_) => pings += 1,
            other => panic!("unexpected frame {other:?}"),
        }
    }
    assert!(pings >= 5, "{pings} pings in ten idle periods");

    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
}

/// Issue #15: a load balancer's checks. A SQLite store is always ready once
/// open; what PostgreSQL down looks like is tested in the binary's cluster tests.
#[tokio::test]
async fn livez_and_readyz_answer_for_a_balancer() {
    let (_dir, store) = store_with(&[]);
    let router = router(&store);
    let live = get(&router, "/livez").await;
    assert_eq!(live.status, StatusCode::OK);
    assert_eq!(live.json()["status"], "ok");
    let ready = get(&router, "/readyz").await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.header(header::CONTENT_TYPE), "application/json");
    assert_eq!(ready.json(), serde_json::json!({ "store": "ok" }));
}
