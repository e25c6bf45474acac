//! `sokkel mail serve` behind a reverse proxy (issue #18): `--webroot /mail/` serves
//! the page, the API, the WebSocket and the health checks under that path and
//! nothing outside it; `--http-allow-host NAME` lets the DNS-rebinding guard answer
//! the name a proxy passes on.
//!
//! The interop tests put Debian's nginx in front, configured as the README's
//! example, and run the page's browser tests and the npm client `mailpit-api`
//! through it. They need nginx, node, chromium and `npm ci` in tests/web_js;
//! `.ci/run` installs them. A missing peer fails the test with a hint.

mod kit;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kit::http::{Response, exchange, get, get_json};
use kit::net::{connect, free_tcp_port, wait_until_listening};
use kit::peers::{Aiosmtpd, AiosmtpdOptions};
use kit::process::{ChildGuard, require_program, spawn_collected};
use kit::{Catcher, Finished, program, sokkel, tempdir};

/// How long one node script may take.
const SCRIPT_LIMIT: Duration = Duration::from_secs(120);

/// A catcher with its web side under `root` (one path name, with or without
/// slashes) on a free loopback port, and the page's URL.
fn catcher_under(root: &str, extra: &[&str]) -> (Catcher, String) {
    let catcher = Catcher::builder()
        .http()
        .args(&["--webroot", root])
        .args(extra)
        .start();
    let url = format!("http://{}/{}/", catcher.http(), root.trim_matches('/'));
    (catcher, url)
}

/// `METHOD path` with the given extra header lines, on a new connection.
fn request_with(addr: SocketAddr, method: &str, path: &str, headers: &[&str]) -> Response {
    let mut request = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers
        .iter()
        .any(|h| h.to_ascii_lowercase().starts_with("host:"))
    {
        request.push_str(&format!("Host: {addr}\r\n"));
    }
    for header in headers {
        request.push_str(header);
        request.push_str("\r\n");
    }
    let body = if method == "DELETE" {
        "{\"IDs\":[]}"
    } else {
        ""
    };
    if !body.is_empty() {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(body);
    exchange(addr, request.as_bytes())
}

/// The status line of a WebSocket handshake for `path`.
fn websocket_status(addr: SocketAddr, path: &str) -> String {
    let mut stream = connect(addr);
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            other => panic!(
                "no whole answer to the WebSocket handshake ({other:?}): {}",
                String::from_utf8_lossy(&head)
            ),
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    head.lines().next().unwrap_or_default().to_string()
}

#[test]
fn webroot_serves_the_page_api_websocket_and_health_under_the_path_only() {
    // "mail" is read as /mail/, as Mailpit reads it.
    let (catcher, url) = catcher_under("mail", &[]);
    let http = catcher.http();
    catcher
        .stdout
        .expect_line(&format!("listening on http {url}"));
    let id = catcher.send(
        b"From: a@example.com\r\nTo: b@example.com\r\nSubject: Under a root\r\n\
          Content-Type: text/html\r\n\r\n<p>hello</p>\r\n",
    );

    let page = get(http, "/mail/");
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(
        page.text().contains("data-root=\"/mail/\"")
            && page.text().contains("src=\"/mail/static/app.js\""),
        "the page does not name its root: {}",
        page.text()
    );
    // The root is written into the page, so no <base> may move its URLs.
    assert!(page.head.contains("base-uri 'none'"), "{}", page.head);
    // The page's script and icon, relative to that base.
    for asset in ["/mail/static/app.js", "/mail/static/favicon.svg"] {
        assert_eq!(get(http, asset).status, 200, "{asset}");
    }
    // A deep link is the page too.
    let deep = get(http, &format!("/mail/view/{id}"));
    assert!(deep.text().contains("data-root=\"/mail/\""));

    let list = get_json(http, "/mail/api/v1/messages");
    assert_eq!(list["total"], 1);
    assert_eq!(list["messages"][0]["Subject"], "Under a root");
    // The message's HTML document may show its own parts, under the root.
    let view = get(http, &format!("/mail/view/{id}.html"));
    assert_eq!(view.status, 200, "{}", view.text());
    assert!(
        view.head
            .contains(&format!("{http}/mail/api/v1/message/{id}/part/")),
        "{}",
        view.head
    );
    assert_eq!(get(http, "/mail/livez").status, 200);
    assert_eq!(get(http, "/mail/readyz").status, 200);
    // An API explorer or a generated client prefixes the root.
    let openapi = get_json(http, "/mail/api/v1/openapi.json");
    assert_eq!(openapi["servers"], serde_json::json!([{"url": "/mail"}]));
    assert_eq!(
        websocket_status(http, "/mail/api/events"),
        "HTTP/1.1 101 Switching Protocols"
    );

    // Nothing outside the root.
    for outside in [
        "/",
        "/api/v1/messages",
        "/livez",
        "/static/app.js",
        "/mailx/",
    ] {
        assert_eq!(get(http, outside).status, 404, "{outside}");
    }
    assert!(websocket_status(http, "/api/events").contains(" 404 "));
    // Who opens the server's address without the root learns where the page is.
    let top = get(http, "/");
    assert!(
        top.text().contains("the page is at /mail/"),
        "{}",
        top.text()
    );

    // The root without its slash leads to the page, keeping a search.
    let moved = get(http, "/mail?q=subject:root");
    assert!(
        matches!(moved.status, 301 | 308),
        "{} {}",
        moved.status,
        moved.head
    );
    assert!(
        moved
            .head
            .contains("\r\nlocation: /mail/?q=subject:root\r\n"),
        "{}",
        moved.head
    );
}

#[test]
fn sokkel_webroot_sets_the_root_and_openapi_stays_plain_at_the_top() {
    let catcher = Catcher::builder()
        .http()
        .env("SOKKEL_WEBROOT", "/tools/mail")
        .start();
    let http = catcher.http();
    catcher
        .stdout
        .expect_line(&format!("listening on http http://{http}/tools/mail/"));
    assert_eq!(get(http, "/tools/mail/livez").status, 200);
    assert_eq!(get(http, "/livez").status, 404);
    let top = Catcher::builder().http().start();
    let openapi = get_json(top.http(), "/api/v1/openapi.json");
    assert!(openapi.get("servers").is_none(), "{}", openapi["servers"]);
    let missing = get(top.http(), "/nothing/here");
    assert_eq!(missing.status, 404);
    assert!(
        !missing.text().contains("the page is at"),
        "{}",
        missing.text()
    );
}

#[test]
fn start_up_lines_name_the_root_and_an_allowed_host_that_does_nothing() {
    let catcher = Catcher::builder()
        .args(&[
            "--http",
            "0.0.0.0:0",
            "--webroot",
            "/mail/",
            "--http-allow-host",
            "mail.test",
            "--enable-chaos",
        ])
        .start();
    catcher
        .stderr
        .expect_line_where("the chaos hint under the root", |line| {
            line.contains("WARN") && line.contains("PUT /mail/api/v1/chaos")
        });
    catcher
        .stderr
        .expect_line_where("--http-allow-host ignored beyond loopback", |line| {
            line.contains("WARN")
                && line.contains("--http-allow-host has no effect")
                && line.contains("--http 127.0.0.1:PORT")
        });
    // It answers any name indeed, so the warning is true.
    let answer = request_with(
        SocketAddr::from(([127, 0, 0, 1], catcher.http().port())),
        "GET",
        "/mail/api/v1/info",
        &["Host: evil.test"],
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
}

#[test]
fn webroot_and_allowed_hosts_that_make_no_sense_are_usage_errors() {
    for args in [
        &["--webroot", "/../etc/"][..],
        &["--webroot", "/mail?x=1"],
        &["--http-allow-host", "mail.test:8080"],
        &["--http-allow-host", "mail test"],
    ] {
        let out = sokkel(["mail", "serve", "--ephemeral", "--http", "127.0.0.1:0"])
            .args(args)
            .run();
        out.expect_code(2);
        let stderr = out.stderr.clone();
        assert!(
            stderr.starts_with(&format!("error: invalid value '{}'", args[1])),
            "{args:?}: {}",
            out.describe()
        );
        assert!(!stderr.contains("panicked"), "{}", out.describe());
    }
}

#[test]
fn http_allow_host_admits_the_proxy_name_and_still_refuses_others() {
    let catcher = Catcher::builder()
        .http()
        .args(&[
            "--http-allow-host",
            "mail.test",
            "--http-allow-host",
            "[fe80::1]",
        ])
        .start();
    let http = catcher.http();
    for host in [
        "mail.test:8080",
        "MAIL.test",
        "mail.test.:443",
        "127.0.0.1",
        "[FE80:0::1]:8025",
    ] {
        let answer = request_with(http, "GET", "/api/v1/info", &[&format!("Host: {host}")]);
        assert_eq!(answer.status, 200, "Host: {host}: {}", answer.text());
    }
    for host in [
        "evil.test",
        "evil.test:8080",
        "mail.test.evil.test",
        "sub.mail.test",
        "[mail.test]",
        "mail.test..",
        "[localhost]:8025",
    ] {
        let answer = request_with(http, "GET", "/api/v1/info", &[&format!("Host: {host}")]);
        assert_eq!(answer.status, 403, "Host: {host}");
        assert!(
            answer.text().contains("--http-allow-host"),
            "{}",
            answer.text()
        );
    }
    // The page on the proxy's name may change things; a page elsewhere may not.
    let own = request_with(
        http,
        "DELETE",
        "/api/v1/messages",
        &["Host: mail.test:8080", "Origin: http://mail.test:8080"],
    );
    assert_eq!(own.status, 200, "{}", own.text());
    let foreign = request_with(
        http,
        "DELETE",
        "/api/v1/messages",
        &["Host: mail.test:8080", "Origin: http://evil.test:8080"],
    );
    assert_eq!(foreign.status, 403);

    // SOKKEL_HTTP_ALLOW_HOST takes a comma-separated list.
    let catcher = Catcher::builder()
        .http()
        .env("SOKKEL_HTTP_ALLOW_HOST", "mail.test,Other.Test")
        .start();
    for (host, status) in [
        ("other.test:443", 200),
        ("mail.test", 200),
        ("evil.test", 403),
    ] {
        let answer = request_with(
            catcher.http(),
            "GET",
            "/api/v1/info",
            &[&format!("Host: {host}")],
        );
        assert_eq!(answer.status, status, "Host: {host}");
    }
}

// ---- through nginx ----------------------------------------------------------------

/// The name nginx is reached by in the browser tests, which the catcher allows
/// with `--http-allow-host` and Chromium resolves to 127.0.0.1.
const PROXY_NAME: &str = "mail.test";

/// Debian's nginx as the README configures it: `/mail/` proxied to a catcher
/// with the browser's Host passed on and WebSocket upgrades; in the foreground,
/// with its configuration, pid, logs and temporary files in its own directory.
/// Killed when dropped.
struct Nginx {
    /// Where browsers connect.
    addr: SocketAddr,
    /// Whether it speaks HTTPS (with a self-signed certificate for
    /// [`PROXY_NAME`]).
    tls: bool,
    _process: ChildGuard,
    dir: tempfile::TempDir,
}

impl Nginx {
    /// nginx in front of `upstream` on a free port; with `tls`, `listen ...
    /// ssl` (so HTTPS on a port other than 443), its certificate made with
    /// openssl.
    fn start(upstream: SocketAddr, tls: bool) -> Nginx {
        let nginx = require_program("nginx", "nginx");
        let dir = tempdir();
        let port = free_tcp_port();
        let path = dir.path().display();
        let ssl = if tls {
            let openssl = require_program("openssl", "openssl");
            program(
                openssl,
                [
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                ],
            )
            .arg("-subj")
            .arg(format!("/CN={PROXY_NAME}"))
            .arg("-addext")
            .arg(format!("subjectAltName=DNS:{PROXY_NAME}"))
            .arg("-keyout")
            .arg(dir.path().join("key.pem"))
            .arg("-out")
            .arg(dir.path().join("cert.pem"))
            .run()
            .assert_success("openssl req");
            format!(" ssl;\nssl_certificate {path}/cert.pem;\nssl_certificate_key {path}/key.pem")
        } else {
            String::new()
        };
        let config = format!(
            "master_process off;\n\
             worker_processes 1;\n\
             pid {path}/nginx.pid;\n\
             error_log {path}/error.log info;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n\
             access_log {path}/access.log;\n\
             client_body_temp_path {path}/client_body;\n\
             proxy_temp_path {path}/proxy;\n\
             fastcgi_temp_path {path}/fastcgi;\n\
             uwsgi_temp_path {path}/uwsgi;\n\
             scgi_temp_path {path}/scgi;\n\
             map $http_upgrade $connection_upgrade {{\n    default upgrade;\n    '' close;\n}}\n\
             server {{\n\
             listen 127.0.0.1:{port}{ssl};\n\
             location /mail/ {{\n\
                 proxy_pass http://{upstream};\n\
                 proxy_http_version 1.1;\n\
                 proxy_set_header Host $http_host;\n\
                 proxy_set_header Upgrade $http_upgrade;\n\
                 proxy_set_header Connection $connection_upgrade;\n\
                 proxy_read_timeout 1h;\n\
             }}\n\
             }}\n\
             }}\n"
        );
        let file = dir.path().join("nginx.conf");
        std::fs::write(&file, &config).expect("write nginx.conf");
        let command = |extra: &[&str]| {
            let mut command = Command::new(&nginx);
            command
                .arg("-p")
                .arg(dir.path())
                .arg("-e")
                .arg(dir.path().join("error.log"))
                .arg("-c")
                .arg(&file)
                .args(extra);
            command
        };
        let check = command(&["-t", "-q"]).output().expect("run nginx -t");
        assert!(
            check.status.success(),
            "nginx refused its configuration:\n{config}\n{}",
            String::from_utf8_lossy(&check.stderr)
        );
        let (process, _stdout, _stderr) =
            spawn_collected(&mut command(&["-g", "daemon off;"]), "nginx");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        wait_until_listening(addr, Duration::from_secs(20));
        Nginx {
            addr,
            tls,
            _process: process,
            dir,
        }
    }

    /// The page's URL through nginx, by address (for clients that resolve
    /// names themselves).
    fn url(&self) -> String {
        format!("http://{}/mail/", self.addr)
    }

    /// The page's URL by the name the proxy is known by, as a browser opens it.
    fn named_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{PROXY_NAME}:{}/mail/", self.addr.port())
    }

    /// nginx's error log, for failure messages.
    fn errors(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web_js")
}

/// node with the npm packages of tests/web_js, running `script` there.
fn node(script: &str, args: &[&str]) -> Finished {
    node_with(script, args, &[])
}

/// [`node`] with environment variables.
fn node_with(script: &str, args: &[&str], env: &[(&str, &str)]) -> Finished {
    let node = require_program("node", "nodejs");
    let modules = js_dir().join("node_modules");
    for package in ["mailpit-api", "playwright-core"] {
        assert!(
            modules.join(package).is_dir(),
            "interop peer missing: npm package `{package}`. Run `npm ci` in {} \
             (.ci/run does it)",
            js_dir().display()
        );
    }
    env.iter()
        .fold(program(node, [script]), |run, (name, value)| {
            run.env(name, value)
        })
        .args(args)
        .current_dir(&js_dir())
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .timeout(SCRIPT_LIMIT)
        .run()
}

/// A page script in Chromium through `nginx`: the browser resolves
/// [`PROXY_NAME`] to 127.0.0.1 and opens the page by that name, and the script
/// fails if the page asks for anything outside the root or gets an error
/// answer (page_kit.mjs).
fn page_script(script: &str, nginx: &Nginx, args: &[&str]) -> Finished {
    require_program("chromium", "chromium");
    let mut env = vec![("PAGE_MAP_HOST", PROXY_NAME), ("PAGE_STRICT_ROOT", "1")];
    if nginx.tls {
        // The script's own API calls go to nginx's self-signed certificate
        // too (the browser's are told by page_kit.mjs).
        env.push(("NODE_TLS_REJECT_UNAUTHORIZED", "0"));
    }
    node_with(
        script,
        &[&[nginx.named_url().as_str()][..], args].concat(),
        &env,
    )
}

/// A catcher under /mail/ that allows the name [`PROXY_NAME`], with nginx in
/// front (HTTPS if `tls`).
fn catcher_behind_nginx_with(tls: bool) -> (Catcher, Nginx) {
    let (catcher, _) = catcher_under("/mail/", &["--http-allow-host", PROXY_NAME]);
    let nginx = Nginx::start(catcher.http(), tls);
    (catcher, nginx)
}

fn catcher_behind_nginx() -> (Catcher, Nginx) {
    catcher_behind_nginx_with(false)
}

#[track_caller]
fn assert_ok(out: &Finished, nginx: &Nginx) {
    assert!(
        out.status.success() && out.stdout_text().trim().ends_with("ok"),
        "{}\nnginx's error log:\n{}",
        out.describe(),
        nginx.errors()
    );
}

#[test]
#[ignore = "interop: needs nginx"]
fn nginx_passes_the_allowed_name_and_the_page_origin_through() {
    let (_catcher, nginx) = catcher_behind_nginx();
    let host = format!("mail.test:{}", nginx.addr.port());
    let origin = format!("Origin: http://{host}");
    let page = request_with(nginx.addr, "GET", "/mail/", &[&format!("Host: {host}")]);
    assert_eq!(page.status, 200, "{}\n{}", page.text(), nginx.errors());
    assert!(page.text().contains("data-root=\"/mail/\""));
    let deleted = request_with(
        nginx.addr,
        "DELETE",
        "/mail/api/v1/messages",
        &[&format!("Host: {host}"), &origin],
    );
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    let foreign = request_with(
        nginx.addr,
        "DELETE",
        "/mail/api/v1/messages",
        &[&format!("Host: {host}"), "Origin: http://evil.test"],
    );
    assert_eq!(foreign.status, 403);
    let rebound = request_with(nginx.addr, "GET", "/mail/api/v1/info", &["Host: evil.test"]);
    assert_eq!(rebound.status, 403, "{}", rebound.text());
    assert_eq!(
        websocket_status(nginx.addr, "/mail/api/events"),
        "HTTP/1.1 101 Switching Protocols"
    );
}

#[test]
#[ignore = "interop: needs nginx, node and `npm ci` in tests/web_js"]
fn mailpit_api_client_with_a_base_path_through_nginx() {
    let (catcher, nginx) = catcher_behind_nginx();
    for (kind, extra) in [("hostile", &["9"][..]), ("plain", &[])] {
        program("python3", [js_dir().join("send_mail.py")])
            .arg(catcher.addr().port().to_string())
            .arg(kind)
            .args(extra)
            .run()
            .assert_success("send_mail.py");
    }
    // Lists, reads, searches, tags, marks and deletes (DELETE included).
    let out = node("mailpit_api.mjs", &[&nginx.url()]);
    assert_ok(&out, &nginx);
}

#[test]
#[ignore = "interop: needs nginx, chromium, node and `npm ci` in tests/web_js"]
fn browser_shows_live_mail_through_nginx_under_a_web_root() {
    let (catcher, nginx) = catcher_behind_nginx();
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/test-artifacts/proxy")
        .display()
        .to_string();
    // Nothing listens on the trap port: a remote image the page wrongly
    // loaded would only fail (and count as a request outside the root).
    let trap = free_tcp_port();
    let out = page_script(
        "browser.mjs",
        &nginx,
        &[
            &catcher.addr().port().to_string(),
            &trap.to_string(),
            &artifacts,
        ],
    );
    assert_ok(&out, &nginx);
}

/// Through nginx's HTTPS on a port other than 443, as a team would run it
/// (and a secure context, which notifications and the clipboard need). Issue
/// #18: the message's HTML frame was blocked there by its own policy, which
/// named only http://; several features wait for the frame's content.
#[test]
#[ignore = "interop: needs nginx, openssl, chromium, node and `npm ci` in tests/web_js"]
fn browser_page_features_through_nginx_https_under_a_web_root() {
    let (catcher, nginx) = catcher_behind_nginx_with(true);
    let out = page_script(
        "page_features.mjs",
        &nginx,
        &[&catcher.addr().port().to_string()],
    );
    assert_ok(&out, &nginx);
    let text = out.stdout_text();
    for feature in [
        "deep links and history",
        "tags: editing, live sidebar counts, filtering",
        "multi-select",
        "notification for new mail",
        "previews",
        "thumbnails",
    ] {
        assert!(
            text.contains(&format!("feature ok: {feature}")),
            "{feature} was not checked:\n{text}"
        );
    }
}

/// The release dialog through nginx: its requests stay under the root, and the
/// only error answers are the server's refusals of a recipient the relay does
/// not allow (page_release.mjs expects those).
#[test]
#[ignore = "interop: needs nginx, chromium, node, `npm ci` in tests/web_js and aiosmtpd"]
fn browser_release_dialog_through_nginx_under_a_web_root() {
    let server = Aiosmtpd::start(&AiosmtpdOptions::default());
    let port = server
        .server()
        .rsplit(':')
        .next()
        .and_then(|port| port.parse::<u16>().ok())
        .expect("aiosmtpd's port");
    let dir = tempdir();
    let relay = dir.path().join("relay.toml");
    std::fs::write(
        &relay,
        format!(
            "host = \"127.0.0.1\"\nport = {port}\nallowed-recipients = \"@allowed\\\\.test$\"\n"
        ),
    )
    .unwrap();
    let (catcher, _) = catcher_under(
        "/mail/",
        &[
            "--http-allow-host",
            PROXY_NAME,
            "--relay-config",
            relay.to_str().expect("a UTF-8 temporary path"),
        ],
    );
    let nginx = Nginx::start(catcher.http(), false);
    let out = page_script(
        "page_release.mjs",
        &nginx,
        &[&catcher.addr().port().to_string(), &server.server()],
    );
    assert_ok(&out, &nginx);
}
