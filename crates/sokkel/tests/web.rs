//! The web side of `sokkel mail serve` through the real binary, with no browser and no
//! HTTP client crate: mail sent with Python's smtplib shows up in `GET /api/v1/messages`
//! (raw HTTP/1.1 over a std `TcpStream`) with Mailpit's field names; `--no-http` serves
//! nothing; a bad `--http` value is one clear line.
//!
//! The API's every route and user mistake is tested through the router in
//! crates/web/tests; the npm client and the browser in `web_interop.rs`.

mod kit;

use std::net::{TcpListener, TcpStream};

use kit::http::get_json;
use kit::net::free_tcp_port;
use kit::{Catcher, Finished, PROMPT, python3, sokkel};
use serde_json::Value;

/// `sokkel mail serve --ephemeral --no-pop3 EXTRA` (and what the kit adds).
fn start(extra: &[&str]) -> Catcher {
    Catcher::builder()
        .args(&["--ephemeral", "--no-pop3"])
        .args(extra)
        .start()
}

/// The message every test sends: a sender with a name, To, Cc and a Message-ID.
const MAIL: &str = "From: Rick Sanchez <rick@example.com>\r\n\
                    To: Morty <morty@example.com>\r\n\
                    Cc: summer@example.com\r\n\
                    Subject: Portal gun warranty\r\n\
                    Message-ID: <portal-1@example.com>\r\n\
                    \r\n\
                    The warranty covers one dimension only.\r\n";

/// Sends [`MAIL`] with Python's smtplib, as a test suite would.
fn send_with_smtplib(port: u16) {
    const PROGRAM: &str = r#"
import smtplib, sys
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=10) as smtp:
    smtp.sendmail("rick@example.com", ["morty@example.com", "summer@example.com"], sys.argv[2])
"#;
    python3(PROGRAM, &[&port.to_string(), MAIL])
        .run()
        .assert_success("smtplib");
}

/// The keys of a JSON object, sorted.
fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

#[test]
fn smtplib_mail_is_listed_by_the_api_with_mailpit_field_names() {
    let catcher = start(&["--http", "127.0.0.1:0"]);
    let http = catcher
        .http
        .unwrap_or_else(|| panic!("no `listening on http` line:\n{}", catcher.stdout.text()));
    assert!(http.ip().is_loopback(), "{http}");

    let empty = get_json(http, "/api/v1/messages");
    assert_eq!(empty["total"], 0, "{empty}");

    send_with_smtplib(catcher.addr().port());
    let list = get_json(http, "/api/v1/messages");
    assert_eq!(
        keys(&list),
        [
            "count",
            "messages",
            "messages_count",
            "messages_unread",
            "start",
            "tags",
            "total",
            "unread"
        ],
        "{list}"
    );
    for (field, want) in [
        ("total", 1),
        ("unread", 1),
        ("count", 1),
        ("messages_count", 1),
        ("messages_unread", 1),
        ("start", 0),
    ] {
        assert_eq!(list[field], want, "{field} in {list}");
    }
    let summary = &list["messages"][0];
    assert_eq!(
        keys(summary),
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
        ],
        "{summary}"
    );
    assert!(
        summary["ID"].as_str().is_some_and(|id| !id.is_empty()),
        "{summary}"
    );
    assert_eq!(summary["MessageID"], "portal-1@example.com");
    assert_eq!(summary["Read"], false);
    assert_eq!(
        summary["From"],
        serde_json::json!({"Name": "Rick Sanchez", "Address": "rick@example.com"})
    );
    assert_eq!(
        summary["To"],
        serde_json::json!([{"Name": "Morty", "Address": "morty@example.com"}])
    );
    assert_eq!(
        summary["Cc"],
        serde_json::json!([{"Name": "", "Address": "summer@example.com"}])
    );
    assert_eq!(summary["Subject"], "Portal gun warranty");
    assert_eq!(summary["Attachments"], 0);
    assert_eq!(summary["Size"], MAIL.len(), "{summary}");
    assert!(
        summary["Snippet"]
            .as_str()
            .is_some_and(|s| s.starts_with("The warranty covers one dimension only")),
        "{summary}"
    );
    assert!(
        summary["Created"].as_str().is_some_and(|c| c.contains('T')),
        "{summary}"
    );

    // Marking it read the way Mailpit clients do.
    let marked = catcher.put_json(
        "/api/v1/messages",
        &serde_json::json!({"IDs": [summary["ID"]], "Read": true}),
    );
    assert_eq!(marked.status, 200, "{}", marked.text());
    let list = get_json(http, "/api/v1/messages");
    assert_eq!(list["unread"], 0, "{list}");
    assert_eq!(list["messages"][0]["Read"], true, "{list}");
}

#[test]
fn no_http_serves_nothing_even_when_an_address_is_named() {
    let port = free_tcp_port();
    let named = format!("127.0.0.1:{port}");
    let catcher = start(&["--http", &named, "--no-http"]);
    assert_eq!(catcher.http, None, "{}", catcher.stdout.text());
    assert!(
        !catcher.stdout.text().contains("http"),
        "{}",
        catcher.stdout.text()
    );
    let refused = TcpStream::connect_timeout(&named.parse().unwrap(), PROMPT);
    assert!(
        refused.is_err(),
        "something listens on {named} despite --no-http"
    );
    // SMTP still works without the web side.
    send_with_smtplib(catcher.addr().port());
}

/// Runs `mail serve` expected to fail at once; returns what it printed.
fn serve_fails(http: &str) -> Finished {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mail.db");
    let out = sokkel([
        "mail",
        "serve",
        "--smtp",
        "127.0.0.1:0",
        "--no-pop3",
        "--http",
        http,
        "--db",
    ])
    .arg(&db)
    .run();
    assert!(!db.exists(), "--http {http:?} left a store behind");
    out
}

#[test]
fn a_bad_http_address_is_one_clear_line() {
    for (value, says) in [
        ("nonsense", "the port is missing"),
        ("127.0.0.1:99999", "from 0 to 65535"),
        ("", "it is empty"),
    ] {
        // A usage error, as clap reports one: exit 2, the flag and what is wrong.
        let out = serve_fails(value);
        assert_eq!(out.code(), Some(2), "--http {value:?}: {}", out.describe());
        let line = out.stderr.lines().next().unwrap_or_default();
        assert!(
            line.contains("'--http <ADDR>'") && line.contains(says),
            "--http {value:?}: {line}"
        );
    }

    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let line = serve_fails(&addr).one_error_line();
    assert!(
        line.contains("already in use") && line.contains("--http"),
        "--http on a taken port: {line}"
    );
}
