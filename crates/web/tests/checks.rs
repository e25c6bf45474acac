//! The message checks through the router: the HTML check against the embedded
//! caniemail data, the link check against a real HTTP server on 127.0.0.1, and
//! the thumbnails of image attachments.

use std::time::SystemTime;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{HeaderMap, Request, StatusCode, header};
use serde_json::Value;
use sokkel_store::{Envelope, NewMessage, Store, StoreOptions};
use sokkel_web::{AppState, WebConfig, app};
use tempfile::TempDir;
use tower::ServiceExt;

const HOST: &str = "127.0.0.1:8025";

fn store_with(messages: &[String]) -> (TempDir, Store) {
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
        raw: raw.replace("\r\n", "\n").replace('\n', "\r\n").into_bytes(),
    }
}

/// A message whose only body is `html`.
fn html_message(html: &str) -> String {
    format!(
        "From: a@example.com\nTo: b@example.com\nSubject: html\nMIME-Version: 1.0\n\
         Content-Type: text/html; charset=utf-8\n\n{html}\n"
    )
}

fn text_message(text: &str) -> String {
    format!("From: a@example.com\nTo: b@example.com\nSubject: text\n\n{text}\n")
}

fn router_with(store: &Store, config: WebConfig) -> Router {
    app(AppState::new(store.clone(), config))
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
                "{} not JSON ({error}): {}",
                self.status,
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

async fn get(router: &Router, uri: &str) -> Answer {
    let request = Request::get(uri)
        .header(header::HOST, HOST)
        .body(Body::empty())
        .unwrap();
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

// ---- HTML check ----------------------------------------------------------------

/// Features caniemail knows some clients lack, each on its own line.
const UNSUPPORTED_HTML: &str = "<!doctype html>
<html><head>
<style>
a:hover { color: red }
</style>
</head><body>
<div style=\"display: flex\">flex</div>
<div style=\"position: absolute; top: 0\">absolute</div>
<form action=\"https://example.com/subscribe\"><input type=\"text\" name=\"q\"></form>
<table><tr><td style=\"background-image: url(https://example.com/bg.png)\">bg</td></tr></table>
</body></html>";

fn warning<'a>(check: &'a Value, slug: &str) -> &'a Value {
    check["Warnings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|warning| warning["Slug"] == slug)
        .unwrap_or_else(|| panic!("no warning {slug} in {:#}", check["Warnings"]))
}

fn number(value: &Value) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("not a number: {value}"))
}

#[tokio::test]
async fn html_check_names_unsupported_features_clients_and_lines() {
    let (_dir, store) = store_with(&[html_message(UNSUPPORTED_HTML)]);
    let router = router_with(&store, WebConfig::default());
    let answer = get(&router, "/api/v1/message/1/html-check").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.header(header::CONTENT_TYPE), "application/json");
    let check = answer.json();
    // Lines are those of the HTML body, 1-based.
    for (slug, line) in [
        ("css-display-flex", 7),
        ("css-position", 8),
        ("html-form", 9),
        ("css-background-image", 10),
        ("css-pseudo-class-hover", 4),
    ] {
        let warning = warning(&check, slug);
        assert_eq!(warning["Lines"], serde_json::json!([line]), "{slug}");
        assert_eq!(warning["Score"]["Found"], 1, "{slug}");
        let results = warning["Results"].as_array().unwrap();
        let unsupported: Vec<&str> = results
            .iter()
            .filter(|result| result["Support"] == "no")
            .map(|result| result["Name"].as_str().unwrap())
            .collect();
        assert!(!unsupported.is_empty(), "{slug}: no client without it");
        for result in results {
            for key in ["Name", "Family", "Platform", "Version", "NoteNumber"] {
                assert!(result[key].is_string(), "{slug} {key}: {result}");
            }
            assert!(
                ["yes", "no", "partial"].contains(&result["Support"].as_str().unwrap()),
                "{result}"
            );
        }
        let score = &warning["Score"];
        let sum =
            number(&score["Supported"]) + number(&score["Partial"]) + number(&score["Unsupported"]);
        assert!((sum - 100.0).abs() < 0.01, "{slug}: {score}");
        // The score is the share of the listed results.
        let no = unsupported.len() as f64 / results.len() as f64 * 100.0;
        assert!((number(&score["Unsupported"]) - no).abs() < 0.01, "{slug}");
        assert!(
            warning["URL"]
                .as_str()
                .unwrap()
                .starts_with("https://www.caniemail.com/")
        );
        assert!(!warning["Title"].as_str().unwrap().is_empty());
        for key in ["Description", "Category", "Keywords"] {
            assert!(warning[key].is_string(), "{slug} {key}");
        }
        assert!(warning["Tags"].is_array() && warning["NotesByNumber"].is_object());
    }
    // Outlook on Windows is one client that does not do flex.
    let flex = warning(&check, "css-display-flex");
    assert!(
        flex["Results"].as_array().unwrap().iter().any(|result| {
            result["Family"] == "outlook"
                && result["Platform"] == "windows"
                && result["Support"] == "no"
        }),
        "{flex:#}"
    );
    let total = &check["Total"];
    let (supported, partial, unsupported) = (
        number(&total["Supported"]),
        number(&total["Partial"]),
        number(&total["Unsupported"]),
    );
    for share in [supported, partial, unsupported] {
        assert!((0.0..=100.0).contains(&share), "{total}");
    }
    assert!(
        (supported + partial + unsupported - 100.0).abs() < 0.01,
        "{total}"
    );
    assert!(unsupported > 1.0 && supported < 95.0, "a form and flex cost: {total}");
    // html, head, body not counted: style, 2 div, form, input, table, tr, td.
    assert_eq!(total["Nodes"], 8, "{total}");
    assert!(total["Tests"].as_u64().unwrap() > 100, "{total}");
    let platforms = check["Platforms"].as_object().unwrap();
    assert!(
        platforms["windows"]
            .as_array()
            .unwrap()
            .contains(&"Outlook".into())
    );
    // Worst first.
    let warnings = check["Warnings"].as_array().unwrap();
    assert_ne!(warnings.last().unwrap()["Slug"], "html-form");
}

#[tokio::test]
async fn html_check_of_plain_html_scores_high_and_text_only_is_404() {
    let plain = "<p>Hello <b>there</b>,</p>\n<p>see <a href=\"https://example.com/\">this</a>.</p>";
    let (_dir, store) = store_with(&[html_message(plain), text_message("no html here")]);
    let router = router_with(&store, WebConfig::default());
    let check = get(&router, "/api/v1/message/1/html-check").await.json();
    let supported = number(&check["Total"]["Supported"]);
    assert!(supported > 95.0, "{:#}", check["Total"]);
    let none = get(&router, "/api/v1/message/2/html-check").await;
    assert_eq!(none.status, StatusCode::NOT_FOUND);
    assert!(none.text().contains("no HTML"), "{}", none.text());
    assert_eq!(
        get(&router, "/api/v1/message/9/html-check").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&router, "/api/v1/message/x/html-check").await.status,
        StatusCode::BAD_REQUEST
    );
    // `latest` is message 2, the text one.
    assert_eq!(
        get(&router, "/api/v1/message/latest/html-check")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn html_check_of_a_hostile_10_mb_body_answers() {
    // Unclosed tags, attribute storms, a style sheet of braces and a huge
    // style attribute: every construct the tokenizer steps through.
    let mut html = String::with_capacity(11 << 20);
    html.push_str("<style>");
    while html.len() < 2 << 20 {
        html.push_str("a:hover{{{{b:c;:;");
    }
    html.push_str("</style><p style=\"");
    while html.len() < 4 << 20 {
        html.push_str("display:flex;width:1rem;");
    }
    html.push_str("\"><a ");
    while html.len() < 6 << 20 {
        html.push_str("x=1 y ");
    }
    html.push('>');
    while html.len() < 8 << 20 {
        html.push_str("<div><span <i\n");
    }
    while html.len() < 10 << 20 {
        html.push_str("<!-- <");
    }
    let (_dir, store) = store_with(&[html_message(&html)]);
    let router = router_with(&store, WebConfig::default());
    let answer = get(&router, "/api/v1/message/1/html-check").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let check = answer.json();
    let flex = warning(&check, "css-display-flex");
    assert!(flex["Score"]["Found"].as_u64().unwrap() > 10_000);
    assert!(flex["Lines"].as_array().unwrap().len() <= 20);
}
