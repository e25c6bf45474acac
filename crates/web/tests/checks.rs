//! The message checks through the router: the HTML check against the embedded
//! caniemail data, the link check against a real HTTP server on 127.0.0.1, and
//! the thumbnails of image attachments.

use std::time::{Duration, SystemTime};

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
    get_with(router, uri, &[]).await
}

/// A GET with extra headers, as a browser would send them.
async fn get_with(router: &Router, uri: &str, headers: &[(&str, &str)]) -> Answer {
    let mut request = Request::get(uri).header(header::HOST, HOST);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Body::empty()).unwrap();
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
    assert!(
        unsupported > 1.0 && supported < 95.0,
        "a form and flex cost: {total}"
    );
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
async fn html_check_of_plain_html_scores_high_and_text_only_is_400_as_in_mailpit() {
    let plain = "<p>Hello <b>there</b>,</p>\n<p>see <a href=\"https://example.com/\">this</a>.</p>";
    let (_dir, store) = store_with(&[html_message(plain), text_message("no html here")]);
    let router = router_with(&store, WebConfig::default());
    let check = get(&router, "/api/v1/message/1/html-check").await.json();
    let supported = number(&check["Total"]["Supported"]);
    assert!(supported > 95.0, "{:#}", check["Total"]);
    let none = get(&router, "/api/v1/message/2/html-check").await;
    assert_eq!(none.status, StatusCode::BAD_REQUEST);
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
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn html_check_of_a_hostile_10_mb_body_answers() {
    // Unclosed tags, attribute storms, a style sheet of braces and a huge
    // style attribute: every construct the tokenizer steps through, and one
    // link past them all but before the unclosed comments, for the link finder.
    let site = Site::start().await;
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
    html.push_str(&format!("><a href=\"{}\">end</a>", site.url("/ok")));
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
    // The link finder steps through the same body and finds its one link.
    let answer = get(&router, "/api/v1/message/1/link-check").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let check = answer.json();
    assert_eq!(check["Links"].as_array().unwrap().len(), 1, "{check:#}");
    assert_eq!(link(&check, &site.url("/ok")), (200, "OK".into()));
}

// ---- link check ----------------------------------------------------------------

/// A real HTTP server on 127.0.0.1: `/ok` 200, `/missing` 404, `/moved` a 302
/// to `/ok`, `/nohead` 405 to HEAD and 200 to GET, `/loop` a redirect to
/// itself, and `/hang` never answers. It counts the requests it reads.
struct Site {
    addr: std::net::SocketAddr,
    requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Site {
    async fn start() -> Site {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = std::sync::Arc::clone(&requests);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let seen = std::sync::Arc::clone(&seen);
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buffer = [0_u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 << 10 {
                        match socket.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buffer[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let line = head.lines().next().unwrap_or_default().to_string();
                    let user_agent = head
                        .lines()
                        .find_map(|l| {
                            l.strip_prefix("user-agent: ")
                                .or(l.strip_prefix("User-Agent: "))
                        })
                        .unwrap_or_default()
                        .to_string();
                    seen.lock().unwrap().push(format!("{line} | {user_agent}"));
                    let mut parts = line.split(' ');
                    let method = parts.next().unwrap_or("");
                    let path = parts.next().unwrap_or("").split('?').next().unwrap_or("");
                    let status = match (method, path) {
                        (_, "/ok") => "200 OK\r\nContent-Length: 2",
                        (_, "/missing") => "404 Not Found\r\nContent-Length: 0",
                        (_, "/moved") => "302 Found\r\nLocation: /ok\r\nContent-Length: 0",
                        (_, "/loop") => "302 Found\r\nLocation: /loop\r\nContent-Length: 0",
                        ("HEAD", "/nohead") => "405 Method Not Allowed\r\nContent-Length: 0",
                        ("GET", "/nohead") => "200 OK\r\nContent-Length: 1000000",
                        (_, "/hang") => {
                            tokio::time::sleep(Duration::from_secs(60)).await;
                            return;
                        }
                        _ => "500 Internal Server Error\r\nContent-Length: 0",
                    };
                    let _ = socket
                        .write_all(
                            format!("HTTP/1.1 {status}\r\nConnection: close\r\n\r\n").as_bytes(),
                        )
                        .await;
                    if method == "GET" && path == "/ok" {
                        let _ = socket.write_all(b"ok").await;
                    }
                    let _ = socket.shutdown().await;
                });
            }
        });
        Site {
            addr,
            requests,
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn link(check: &Value, url: &str) -> (u64, String) {
    let link = check["Links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|link| link["URL"] == url)
        .unwrap_or_else(|| panic!("{url} not checked: {check:#}"));
    (
        link["StatusCode"].as_u64().unwrap(),
        link["Status"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn link_check_reports_statuses_timeouts_and_follows_redirects_when_asked() {
    let site = Site::start().await;
    let html = format!(
        "<p><a href=\"{ok}\">ok</a> <a href=\"{missing}\">gone</a>\n<img src=\"{hang}\">\
         <a href=\"{moved}\">moved</a> <a href=\"{nohead}\">nohead</a> <a href=\"{ok}\">again</a>\
         <a href=\"mailto:x@example.com\">mail</a> <a href=\"#top\">top</a></p>",
        ok = site.url("/ok"),
        missing = site.url("/missing"),
        hang = site.url("/hang"),
        moved = site.url("/moved"),
        nohead = site.url("/nohead"),
    );
    let refused = {
        // A port nobody listens on: bound, then closed.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        format!("http://{addr}/")
    };
    let message = format!(
        "From: a@example.com\nTo: b@example.com\nSubject: links\nMIME-Version: 1.0\n\
         Content-Type: multipart/alternative; boundary=b\n\n--b\nContent-Type: text/plain\n\n\
         Text links: {refused} and {loop_} and {ok}.\n--b\nContent-Type: text/html\n\n{html}\n--b--\n",
        ok = site.url("/ok"),
        loop_ = site.url("/loop"),
    );
    let (_dir, store) = store_with(&[message]);
    let config = WebConfig {
        link_check_timeout: Duration::from_millis(700),
        ..WebConfig::default()
    };
    let router = router_with(&store, config);
    assert!(site.requests().is_empty(), "nothing asked before the check");

    let answer = get(&router, "/api/v1/message/1/link-check").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let check = answer.json();
    let urls: Vec<&str> = check["Links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|link| link["URL"].as_str().unwrap())
        .collect();
    assert_eq!(
        urls,
        [
            site.url("/ok"),
            site.url("/missing"),
            site.url("/hang"),
            site.url("/moved"),
            site.url("/nohead"),
            refused.clone(),
            site.url("/loop"),
        ],
        "unique http links, HTML first, then text"
    );
    assert_eq!(link(&check, &site.url("/ok")), (200, "OK".into()));
    assert_eq!(
        link(&check, &site.url("/missing")),
        (404, "Not Found".into())
    );
    assert_eq!(link(&check, &site.url("/hang")), (0, "timeout".into()));
    assert_eq!(link(&check, &site.url("/moved")), (302, "Found".into()));
    assert_eq!(link(&check, &site.url("/nohead")), (200, "OK".into()));
    assert_eq!(link(&check, &refused), (0, "connection refused".into()));
    assert_eq!(link(&check, &site.url("/loop")), (302, "Found".into()));
    // 404, the timeout and the refused connection.
    assert_eq!(check["Errors"], 3, "{check:#}");
    assert_eq!(check["LinksCut"], 0);
    let requests = site.requests();
    assert!(
        requests.iter().all(|r| r.contains("| sokkel/")),
        "a User-Agent naming sokkel: {requests:?}"
    );
    assert!(
        requests.iter().any(|r| r.starts_with("HEAD /ok ")),
        "{requests:?}"
    );
    assert!(
        requests.iter().any(|r| r.starts_with("GET /nohead ")),
        "{requests:?}"
    );
    assert!(
        !requests.iter().any(|r| r.starts_with("GET /ok ")),
        "{requests:?}"
    );

    let followed = get(&router, "/api/v1/message/1/link-check?follow=true")
        .await
        .json();
    assert_eq!(link(&followed, &site.url("/moved")), (200, "OK".into()));
    assert_eq!(
        link(&followed, &site.url("/loop")),
        (0, "more than 5 redirects".into())
    );
    assert_eq!(followed["Errors"], 4, "{followed:#}");
    let loops = site
        .requests()
        .iter()
        .filter(|r| r.starts_with("HEAD /loop "))
        .count();
    assert_eq!(
        loops,
        1 + 6,
        "once unfollowed, then the first ask and 5 hops"
    );

    assert_eq!(
        get(&router, "/api/v1/message/1/link-check?follow=maybe")
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        get(&router, "/api/v1/message/7/link-check").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn link_check_can_refuse_private_addresses() {
    let site = Site::start().await;
    let (_dir, store) = store_with(&[text_message(&format!("Go to {}", site.url("/ok")))]);
    let config = WebConfig {
        link_check_block_private: true,
        ..WebConfig::default()
    };
    let router = router_with(&store, config);
    let check = get(&router, "/api/v1/message/latest/link-check")
        .await
        .json();
    assert_eq!(
        link(&check, &site.url("/ok")),
        (451, "Blocked private/reserved address".into())
    );
    assert_eq!(check["Errors"], 1);
    assert!(site.requests().is_empty());
}

#[tokio::test]
async fn link_check_from_another_site_is_refused_and_fetches_nothing() {
    let site = Site::start().await;
    let (_dir, store) = store_with(&[text_message(&format!("Go to {}", site.url("/ok")))]);
    let router = router_with(&store, WebConfig::default());
    // What an <img src> on another site, a sandboxed frame (the message's own
    // HTML) and a foreign page's fetch send.
    for headers in [
        &[
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-dest", "image"),
        ][..],
        &[("sec-fetch-site", "same-site")],
        &[("origin", "null")],
        &[("origin", "http://evil.example")],
        &[("sec-fetch-site", "cross-site"), ("origin", "null")],
    ] {
        let answer = get_with(&router, "/api/v1/message/latest/link-check", headers).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{headers:?}");
        assert!(answer.text().contains("another site"), "{}", answer.text());
    }
    assert!(
        site.requests().is_empty(),
        "nothing fetched for a foreign request: {:?}",
        site.requests()
    );
    // The page (same origin) and clients that are not browsers (curl) may.
    for headers in [
        &[
            ("sec-fetch-site", "same-origin"),
            ("origin", "http://127.0.0.1:8025"),
        ][..],
        &[("sec-fetch-site", "same-origin")],
        &[],
    ] {
        let answer = get_with(&router, "/api/v1/message/latest/link-check", headers).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{headers:?}: {}",
            answer.text()
        );
        assert_eq!(link(&answer.json(), &site.url("/ok")), (200, "OK".into()));
    }
    assert_eq!(site.requests().len(), 3, "{:?}", site.requests());
}

#[tokio::test]
async fn one_hanging_link_does_not_hold_up_the_others() {
    let site = Site::start().await;
    // The hanging link first, then more /ok links than are asked at once: all
    // of them must be answered while it hangs, within the check's budget (1 s,
    // half the idle timeout; the link timeout is longer).
    let mut text = format!("{} ", site.url("/hang"));
    for n in 0..12 {
        text.push_str(&format!("{} ", site.url(&format!("/ok?{n}"))));
    }
    text.push_str(&site.url("/missing"));
    let (_dir, store) = store_with(&[text_message(&text)]);
    let config = WebConfig {
        idle_timeout: Duration::from_secs(2),
        link_check_timeout: Duration::from_secs(10),
        ..WebConfig::default()
    };
    let router = router_with(&store, config);
    let check = get(&router, "/api/v1/message/1/link-check").await.json();
    let links = check["Links"].as_array().unwrap();
    assert_eq!(links.len(), 14, "{check:#}");
    // In the message's order, whatever order they were answered in.
    assert_eq!(links[0]["URL"], site.url("/hang"));
    assert_eq!(links[0]["Status"], "timeout", "{check:#}");
    for (n, link) in links[1..13].iter().enumerate() {
        assert_eq!(link["URL"], site.url(&format!("/ok?{n}")));
        assert_eq!(link["StatusCode"], 200, "{check:#}");
    }
    assert_eq!(links[13]["StatusCode"], 404, "{check:#}");
    assert_eq!(check["Errors"], 2);
}

#[tokio::test]
async fn link_check_follows_relative_redirects_and_decodes_numeric_references() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // /a/b/start redirects to "?x=1" (the same path, a new query), that to
    // "../c" (/a/c), that to /a/c/./../done, answered 200.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let log = std::sync::Arc::clone(&seen);
    let server = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut head = Vec::new();
            let mut buffer = [0_u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 << 10 {
                match socket.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buffer[..n]),
                }
            }
            let line = String::from_utf8_lossy(&head)
                .lines()
                .next()
                .unwrap_or_default()
                .to_string();
            let target = line.split(' ').nth(1).unwrap_or_default().to_string();
            log.lock().unwrap().push(target.clone());
            let answer = match target.as_str() {
                "/a/b/start?y=2" => "302 Found\r\nLocation: ?x=1",
                "/a/b/start?x=1" => "302 Found\r\nLocation: ../c",
                "/a/c" => "302 Found\r\nLocation: /a/c/./../done",
                "/a/done" => "200 OK",
                _ => "404 Not Found",
            };
            let _ = socket
                .write_all(
                    format!("HTTP/1.1 {answer}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                )
                .await;
        }
    });
    // The link is written with numeric references, as some mailers do.
    let href = format!("http://{addr}/a/b/start&#63;y&#x3D;2");
    let (_dir, store) = store_with(&[html_message(&format!("<a href=\"{href}\">go</a>"))]);
    let router = router_with(&store, WebConfig::default());
    let check = get(&router, "/api/v1/message/1/link-check?follow=true")
        .await
        .json();
    server.abort();
    let url = format!("http://{addr}/a/b/start?y=2");
    assert_eq!(link(&check, &url), (200, "OK".into()), "{check:#}");
    assert_eq!(
        *seen.lock().unwrap(),
        ["/a/b/start?y=2", "/a/b/start?x=1", "/a/c", "/a/done"]
    );
}

// ---- thumbnails ----------------------------------------------------------------

/// A message with `parts` as attachments: (content type, file name, bytes).
fn with_attachments(parts: &[(&str, &str, &[u8])]) -> String {
    use base64::Engine;
    let mut message = String::from(
        "From: a@example.com\nTo: b@example.com\nSubject: files\nMIME-Version: 1.0\n\
         Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nSee attached.\n",
    );
    for (content_type, name, bytes) in parts {
        let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
        message.push_str(&format!(
            "--b\nContent-Type: {content_type}; name=\"{name}\"\nContent-Disposition: attachment; filename=\"{name}\"\n\
             Content-Transfer-Encoding: base64\n\n"
        ));
        for line in encoded.as_bytes().chunks(76) {
            message.push_str(std::str::from_utf8(line).unwrap());
            message.push('\n');
        }
    }
    message.push_str("--b--\n");
    message
}

/// A PNG of `width` x `height`: red on the left half, blue on the right.
fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, _| {
        if x < width / 2 {
            image::Rgb([255, 0, 0])
        } else {
            image::Rgb([0, 0, 255])
        }
    });
    let mut bytes = Vec::new();
    image
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .unwrap();
    bytes
}

/// A valid PNG signature and header chunk claiming `width` x `height`, and no
/// pixels: a few bytes that would decode to gigabytes.
fn png_bomb(width: u32, height: u32) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0_u32;
        for &byte in bytes {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        png.extend_from_slice(&u32::try_from(data.len()).unwrap().to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        png.extend_from_slice(&body);
        png.extend_from_slice(&crc32(&body).to_be_bytes());
    };
    let mut header = width.to_be_bytes().to_vec();
    header.extend_from_slice(&height.to_be_bytes());
    header.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(b"IHDR", &header);
    // The start of a zlib stream of zeros: what a real bomb carries.
    chunk(
        b"IDAT",
        &[0x78, 0x9c, 0xed, 0xc1, 0x01, 0x0d, 0x00, 0x00, 0x00],
    );
    chunk(b"IEND", &[]);
    png
}

fn decode_jpeg(answer: &Answer) -> image::RgbImage {
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.header(header::CONTENT_TYPE), "image/jpeg");
    image::load_from_memory_with_format(&answer.body, image::ImageFormat::Jpeg)
        .unwrap()
        .to_rgb8()
}

#[tokio::test]
async fn thumbnails_fill_180x120_blank_for_non_images_and_refuse_bombs() {
    let large = png(600, 200);
    let small = png(40, 20);
    let bomb = png_bomb(100_000, 100_000);
    let (_dir, store) = store_with(&[with_attachments(&[
        ("image/png", "wide.png", &large),
        ("image/png", "small.png", &small),
        ("application/pdf", "doc.pdf", b"%PDF-1.4\n"),
        ("image/png", "bomb.png", &bomb),
        ("image/png", "broken.png", b"not a png at all"),
    ])]);
    let router = router_with(&store, WebConfig::default());
    let message = get(&router, "/api/v1/message/1").await.json();
    let part = |name: &str| {
        message["Attachments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|part| part["FileName"] == name)
            .unwrap_or_else(|| panic!("{name} in {message:#}"))["PartID"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let thumb = |name: &str| format!("/api/v1/message/1/part/{}/thumb", part(name));

    // 600x200 filled into 180x120: cropped to the middle 300x200, so both
    // halves show, red left and blue right, edge to edge.
    let answer = get(&router, &thumb("wide.png")).await;
    // IDs start again with a new store: the browser must ask each time, and
    // an unchanged thumbnail costs it a 304.
    assert_eq!(answer.header(header::CACHE_CONTROL), "private, no-cache");
    let etag = answer.header(header::ETAG).to_string();
    assert!(etag.starts_with('"') && etag.len() > 2, "{etag:?}");
    let again = get_with(&router, &thumb("wide.png"), &[("if-none-match", &etag)]).await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert!(again.body.is_empty());
    assert_eq!(again.header(header::ETAG), etag);
    let other = get(&router, &thumb("small.png")).await;
    assert_ne!(other.header(header::ETAG), etag);
    let stale = get_with(&router, &thumb("small.png"), &[("if-none-match", &etag)]).await;
    assert_eq!(
        stale.status,
        StatusCode::OK,
        "another image's ETag is stale"
    );
    let wide = decode_jpeg(&answer);
    assert_eq!(wide.dimensions(), (180, 120));
    let red = wide.get_pixel(5, 60).0;
    let blue = wide.get_pixel(174, 60).0;
    assert!(red[0] > 200 && red[2] < 60, "{red:?}");
    assert!(blue[2] > 200 && blue[0] < 60, "{blue:?}");

    // 40x20 is not enlarged: centred on white.
    let small = decode_jpeg(&get(&router, &thumb("small.png")).await);
    assert_eq!(small.dimensions(), (180, 120));
    let corner = small.get_pixel(2, 2).0;
    assert!(corner.iter().all(|&c| c > 240), "white padding: {corner:?}");
    let centre = small.get_pixel(80, 60).0;
    assert!(
        centre[0] > 200 && centre[1] < 60,
        "the image in the middle: {centre:?}"
    );

    for blank in ["doc.pdf", "broken.png"] {
        let image = decode_jpeg(&get(&router, &thumb(blank)).await);
        assert_eq!(image.dimensions(), (180, 120), "{blank}");
        assert!(
            image.pixels().all(|p| p.0.iter().all(|&c| c > 240)),
            "{blank} is blank"
        );
    }

    let refused = get(&router, &thumb("bomb.png")).await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.text()
    );
    assert!(
        refused.text().contains("100000 x 100000"),
        "{}",
        refused.text()
    );

    assert_eq!(
        get(&router, "/api/v1/message/1/part/99/thumb").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&router, "/api/v1/message/1/part/x/thumb").await.status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn the_page_loads_the_checks_script_and_style() {
    let (_dir, store) = store_with(&[]);
    let router = router_with(&store, WebConfig::default());
    let page = get(&router, "/").await.text();
    assert!(page.contains("<link rel=\"stylesheet\" href=\"/static/checks.css\">"));
    assert!(page.contains("<script src=\"/static/checks.js\" defer></script>"));
    for (path, content_type, needle) in [
        (
            "/static/checks.css",
            "text/css; charset=utf-8",
            "var(--bad, #b00020)",
        ),
        (
            "/static/checks.js",
            "text/javascript; charset=utf-8",
            "link-check",
        ),
    ] {
        let asset = get(&router, path).await;
        assert_eq!(asset.status, StatusCode::OK, "{path}");
        assert_eq!(asset.header(header::CONTENT_TYPE), content_type, "{path}");
        assert!(asset.text().contains(needle), "{path}");
    }
}

#[tokio::test]
async fn link_check_ends_within_its_budget_whatever_the_links() {
    let site = Site::start().await;
    // Seven links that never answer, five asked at once; the budget is half
    // the idle timeout, 1 s, well under the 5 s a link may take.
    let text: String = (0..7)
        .map(|n| format!("{} ", site.url(&format!("/hang?{n}"))))
        .collect();
    let (_dir, store) = store_with(&[text_message(&text)]);
    let config = WebConfig {
        idle_timeout: Duration::from_secs(2),
        ..WebConfig::default()
    };
    let router = router_with(&store, config);
    let check = get(&router, "/api/v1/message/1/link-check").await.json();
    let statuses: Vec<&str> = check["Links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|link| link["Status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses.len(), 7);
    assert_eq!(&statuses[..5], ["timeout"; 5], "{statuses:?}");
    assert!(
        statuses[5..]
            .iter()
            .all(|status| status.starts_with("not checked")),
        "{statuses:?}"
    );
    assert_eq!(check["Errors"], 7);
}

#[tokio::test]
async fn link_check_speaks_tls_and_refuses_a_certificate_nobody_signed() {
    // An https server on 127.0.0.1 with a self-signed certificate for
    // localhost: the handshake is made and the certificate refused.
    let tls = sokkel_net::tls::ServerTls::self_signed(&["localhost".into()]).unwrap();
    let acceptor = tls.acceptor();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let handshakes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = std::sync::Arc::clone(&handshakes);
    let server = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(5), acceptor.accept(tcp)).await;
            });
        }
    });
    let url = format!("https://localhost:{port}/ok");
    let (_dir, store) = store_with(&[text_message(&format!("Secure: {url}"))]);
    let router = router_with(&store, WebConfig::default());
    let check = get(&router, "/api/v1/message/1/link-check").await.json();
    server.abort();
    let (code, status) = link(&check, &url);
    assert_eq!(code, 0, "{status}");
    assert!(
        status.starts_with("tls error: ") && status.contains("certificate"),
        "{status}"
    );
    assert!(handshakes.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    assert_eq!(check["Errors"], 1);
}
