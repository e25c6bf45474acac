//! The web side of `sokkel mail serve` through the real binary, with no browser and no
//! HTTP client crate: mail sent with Python's smtplib shows up in `GET /api/v1/messages`
//! (raw HTTP/1.1 over a std `TcpStream`) with Mailpit's field names; `--no-http` serves
//! nothing; a bad `--http` value is one clear line.
//!
//! The API's every route and user mistake is tested through the router in
//! crates/web/tests; the npm client and the browser in `web_interop.rs`.

mod common;
mod mail_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

use common::{
    ChildGuard, Finished, Lines, PROMPT, free_tcp_port, run, sokkel_command, spawn_collected,
};
use mail_support::{COMMAND_LIMIT, python3};
use serde_json::Value;

/// A running `sokkel mail serve --ephemeral` and what it announced.
struct WebCatcher {
    _process: ChildGuard,
    stdout: Lines,
    smtp: SocketAddr,
    /// `None` when it announced no web listener.
    http: Option<SocketAddr>,
}

/// Starts `sokkel mail serve --ephemeral --smtp 127.0.0.1:0 --no-pop3 EXTRA` and waits
/// until it says where it keeps mail, the last line it prints when ready.
fn start(extra: &[&str]) -> WebCatcher {
    let mut args = vec![
        "mail",
        "serve",
        "--ephemeral",
        "--smtp",
        "127.0.0.1:0",
        "--no-pop3",
    ];
    args.extend(extra);
    let (process, stdout, stderr) = spawn_collected(
        sokkel_command().args(&args),
        format!("sokkel {}", args.join(" ")),
    );
    let ready = stdout.wait_until(PROMPT, |lines| {
        lines.iter().any(|l| l.starts_with("mail is kept in "))
    });
    let Some(lines) = ready else {
        panic!(
            "sokkel {} did not get ready within {PROMPT:?}\nstdout:\n{}\nstderr:\n{}",
            args.join(" "),
            stdout.text(),
            stderr.text()
        );
    };
    let address = |prefix: &str, suffix: &str| {
        lines.iter().find_map(|l| {
            let addr = l.strip_prefix(prefix)?.strip_suffix(suffix)?;
            Some(
                addr.parse::<SocketAddr>()
                    .unwrap_or_else(|e| panic!("bad address in {l:?}: {e}")),
            )
        })
    };
    WebCatcher {
        smtp: address("listening on smtp ", "").expect("an smtp listener"),
        http: address("listening on http http://", "/"),
        stdout,
        _process: process,
    }
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
    python3(PROGRAM, &[&port.to_string(), MAIL], COMMAND_LIMIT).assert_success("smtplib");
}

/// `GET path` over HTTP/1.1 on a plain socket: the status code and the body.
fn http_get(addr: SocketAddr, path: &str) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect_timeout(&addr, PROMPT)
        .unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"));
    stream.set_read_timeout(Some(PROMPT)).unwrap();
    stream.set_write_timeout(Some(PROMPT)).unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .unwrap_or_else(|e| panic!("GET {path}: no complete answer: {e}"));
    let end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("GET {path}: no end of headers in {response:?}"));
    let head = String::from_utf8_lossy(&response[..end]).to_ascii_lowercase();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("GET {path}: no status in {head:?}"));
    let body = response[end + 4..].to_vec();
    if head.contains("\r\ntransfer-encoding: chunked") {
        (status, dechunk(&body))
    } else {
        (status, body)
    }
}

/// The payload of a chunked body.
fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("a chunk size line");
        let size_text = String::from_utf8_lossy(&body[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
            .unwrap_or_else(|e| panic!("bad chunk size {size_text:?}: {e}"));
        if size == 0 {
            return out;
        }
        let start = line_end + 2;
        out.extend_from_slice(&body[start..start + size]);
        body = &body[start + size + 2..];
    }
}

fn get_json(addr: SocketAddr, path: &str) -> Value {
    let (status, body) = http_get(addr, path);
    assert_eq!(
        status,
        200,
        "GET {path}: {}",
        String::from_utf8_lossy(&body)
    );
    serde_json::from_slice(&body).unwrap_or_else(|e| {
        panic!(
            "GET {path}: not JSON ({e}): {}",
            String::from_utf8_lossy(&body)
        )
    })
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

    send_with_smtplib(catcher.smtp.port());
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
    send_with_smtplib(catcher.smtp.port());
}

/// Runs `mail serve` expected to fail at once; returns what it printed.
fn serve_fails(http: &str) -> Finished {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mail.db");
    let mut command = sokkel_command();
    command
        .args([
            "mail",
            "serve",
            "--smtp",
            "127.0.0.1:0",
            "--no-pop3",
            "--http",
            http,
            "--db",
        ])
        .arg(&db);
    let out = run(command, b"", COMMAND_LIMIT);
    assert!(
        !out.status.success(),
        "--http {http:?} started: {}",
        out.describe()
    );
    assert!(!db.exists(), "--http {http:?} left a store behind");
    out
}

/// One non-empty stderr line, no panic.
fn one_line(out: &Finished) -> String {
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), 1, "want one line: {}", out.describe());
    assert!(!out.stderr.contains("panicked"), "{}", out.describe());
    lines[0].to_string()
}

#[test]
fn a_bad_http_address_is_one_clear_line() {
    for (value, says) in [
        ("nonsense", "the port is missing"),
        ("127.0.0.1:99999", "from 0 to 65535"),
        ("", "it is empty"),
    ] {
        let line = one_line(&serve_fails(value));
        assert!(
            line.contains("--http takes host:port") && line.contains(says),
            "--http {value:?}: {line}"
        );
    }

    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let line = one_line(&serve_fails(&addr));
    assert!(
        line.contains("already in use") && line.contains("--http"),
        "--http on a taken port: {line}"
    );
}
