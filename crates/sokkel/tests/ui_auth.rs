//! Issue #18: a login for the web page, the API and the WebSocket
//! (`--ui-auth-file`, HTTP Basic), the delay after a wrong one, no password in
//! any log; HTTPS on the web listener (`--ui-tls-cert`/`--ui-tls-key`,
//! `--ui-tls-self-signed`) with curl and Chromium; and the warning for a web
//! page beyond loopback that anyone may use.
//!
//! The curl and browser tests are interop tests (`--ignored`): they need curl,
//! openssl, node with tests/web_js's packages and Debian's chromium, which
//! `.ci/run` installs.

mod kit;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kit::catcher::Catcher;
use kit::http::{Response, exchange, exchange_on};
use kit::peers::Cert;
use kit::process::{require_program, sigterm};
use kit::smtp::message;
use kit::{PROMPT, program, python3, sokkel, tempdir};

/// alice's password, in clear in the file: distinctive, so that a log that
/// carried it would be caught.
const ALICE: &str = "Sesame-Kumquat-3319";

/// bob's password; the file holds only its bcrypt hash (cost 4).
const BOB: &str = "Zebra-Pancake-7781";
const BOB_HASH: &str = "$2b$04$GPnAm0wTTdEGjKt0eqFEf.FGgcfwHAqpy1UJFsTAjx9N3tF6t2uEq";

/// A wrong password, as distinctive.
const WRONG: &str = "Wrong-Quince-5521";

/// The challenge every 401 must carry, lowercased as the kit reads headers.
const CHALLENGE: &str = "www-authenticate: basic realm=\"sokkel\", charset=\"utf-8\"";

/// How far below the configured delay a wrong login's answer may come (timer
/// granularity); only a lower bound is checked.
const MARGIN: Duration = Duration::from_millis(100);

/// The users file: alice in clear text, bob as a bcrypt hash.
fn users_file(dir: &Path) -> PathBuf {
    let path = dir.join("web-users");
    std::fs::write(&path, format!("alice:{ALICE}\nbob:{BOB_HASH}\n")).unwrap();
    path
}

/// `Authorization: Basic ...` for `user` and `password`.
fn basic(user: &str, password: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = format!("{user}:{password}").into_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    format!("Basic {out}")
}

/// `GET path` with `authorization` if given.
fn get(addr: SocketAddr, path: &str, authorization: Option<&str>) -> Response {
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(value) = authorization {
        request.push_str(&format!("Authorization: {value}\r\n"));
    }
    request.push_str("\r\n");
    exchange(addr, request.as_bytes())
}

#[track_caller]
fn assert_challenged(response: &Response, what: &str) {
    assert_eq!(response.status, 401, "{what}: {}", response.text());
    assert!(
        response.head.contains(CHALLENGE),
        "{what}: no Basic challenge in\n{}",
        response.head
    );
}

/// The server's answer to a WebSocket handshake it refused.
type Refusal = Box<tungstenite::http::Response<Option<Vec<u8>>>>;

/// Opens `/api/events` with `authorization` if given; the handshake's error
/// answer if refused.
fn websocket(
    addr: SocketAddr,
    authorization: Option<&str>,
) -> Result<tungstenite::WebSocket<TcpStream>, Refusal> {
    use tungstenite::client::IntoClientRequest;
    let stream = TcpStream::connect_timeout(&addr, PROMPT).expect("connect to the web port");
    stream.set_read_timeout(Some(PROMPT)).unwrap();
    let mut request = format!("ws://{addr}/api/events")
        .into_client_request()
        .unwrap();
    if let Some(value) = authorization {
        request
            .headers_mut()
            .insert("authorization", value.parse().unwrap());
    }
    match tungstenite::client(request, stream) {
        Ok((socket, _)) => Ok(socket),
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response))) => {
            Err(response)
        }
        Err(error) => panic!("the WebSocket handshake failed otherwise: {error}"),
    }
}

/// Stops `catcher` and returns everything it wrote, stdout and stderr.
fn stop_and_collect(mut catcher: Catcher) -> String {
    sigterm(catcher.pid());
    assert!(catcher.wait_exit(PROMPT).success());
    // Everything, up to the pipes' close.
    catcher.stderr.wait_until(PROMPT, |_| false);
    catcher.stdout.wait_until(PROMPT, |_| false);
    format!("{}\n{}", catcher.stdout.text(), catcher.stderr.text())
}

#[test]
fn the_login_guards_the_page_the_api_and_the_websocket_but_not_health() {
    let dir = tempdir();
    let users = users_file(dir.path());
    let catcher = Catcher::builder()
        .http()
        .arg("--ui-auth-file")
        .arg(users.display().to_string())
        // The most a log could say.
        .env("RUST_LOG", "debug")
        .start();
    let web = catcher.http();
    catcher
        .stdout
        .expect_line_where("the login announced", |l| {
            l.starts_with("the web page and API ask for a login")
        });

    // No credentials: the page, the API, the WebSocket, any other path.
    for path in ["/", "/api/v1/messages", "/api/v1/info", "/no/such/page"] {
        assert_challenged(&get(web, path, None), path);
    }
    let refused = websocket(web, None).expect_err("a WebSocket without a login");
    assert_eq!(refused.status(), 401);
    assert_eq!(
        refused.headers()["www-authenticate"],
        "Basic realm=\"sokkel\", charset=\"UTF-8\""
    );
    // Not Basic, or not readable: no better.
    assert_challenged(&get(web, "/", Some("Bearer abc")), "a Bearer token");
    assert_challenged(&get(web, "/", Some("Basic !!!")), "bad base64");

    // The health checks stay open for load balancers.
    for path in ["/livez", "/readyz"] {
        assert_eq!(get(web, path, None).status, 200, "{path}");
    }

    // alice (clear text in the file): the page, the API and the live events.
    let alice = basic("alice", ALICE);
    let page = get(web, "/", Some(&alice));
    assert_eq!(page.status, 200);
    assert!(page.text().contains("<html"), "{}", page.text());
    let list = get(web, "/api/v1/messages", Some(&alice));
    assert_eq!(list.status, 200, "{}", list.text());
    assert_eq!(list.json()["total"], 0);
    let mut events = websocket(web, Some(&alice)).expect("alice's WebSocket");
    catcher.send(&message("through the login", "hello"));
    let frame = loop {
        let text = match events.read().expect("a WebSocket frame") {
            tungstenite::Message::Text(text) => text,
            _ => continue,
        };
        let frame: serde_json::Value = serde_json::from_str(&text).unwrap();
        if frame["Type"] == "new" {
            break frame;
        }
    };
    assert_eq!(frame["Data"]["Subject"], "through the login");

    // bob (a bcrypt hash in the file), twice: the second comes from the cache.
    for _ in 0..2 {
        let list = get(web, "/api/v1/messages", Some(&basic("bob", BOB)));
        assert_eq!(list.status, 200, "{}", list.text());
        assert_eq!(list.json()["total"], 1);
    }

    // Wrong: a password, a user name, a password that is another user's.
    assert_challenged(
        &get(web, "/api/v1/messages", Some(&basic("alice", WRONG))),
        "a wrong password",
    );
    assert_challenged(
        &get(web, "/api/v1/messages", Some(&basic("mallory", ALICE))),
        "an unknown user",
    );
    assert_challenged(
        &get(web, "/api/v1/messages", Some(&basic("bob", ALICE))),
        "alice's password for bob",
    );
    catcher.stderr.expect_line_where("the failure logged", |l| {
        l.contains("failed web login for user \"alice\" from 127.0.0.1")
    });

    drop(events);
    let everything = stop_and_collect(catcher);
    for secret in [ALICE, BOB, WRONG, BOB_HASH, alice.as_str()] {
        assert!(
            !everything.contains(secret),
            "the output shows {secret:?}:\n{everything}"
        );
    }
}

#[test]
fn a_wrong_login_waits_longer_with_each_failure_from_that_address() {
    let dir = tempdir();
    let users = users_file(dir.path());
    let catcher = Catcher::builder()
        .http()
        .arg("--ui-auth-file")
        .arg(users.display().to_string())
        .args(&["--auth-failure-delay", "1s"])
        .start();
    let web = catcher.http();
    let wrong = basic("alice", WRONG);
    for (failure, at_least) in [(1, 1), (2, 2)] {
        let started = Instant::now();
        let answer = get(web, "/api/v1/messages", Some(&wrong));
        let waited = started.elapsed();
        assert_challenged(&answer, "a wrong password");
        assert!(
            waited + MARGIN >= Duration::from_secs(at_least),
            "failure {failure} answered after {waited:?}, before the {at_least} s delay"
        );
    }
    // The penalty ended as the 401 came: the right password gets in.
    let list = get(web, "/api/v1/messages", Some(&basic("alice", ALICE)));
    assert_eq!(list.status, 200, "{}", list.text());
}

/// `GET path` with `authorization`, from the loopback address `local`.
fn get_from(local: &str, web: SocketAddr, path: &str, authorization: &str) -> Response {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {web}\r\nConnection: close\r\nAuthorization: {authorization}\r\n\r\n"
    );
    exchange_on(
        kit::net::connect_from(local.parse().unwrap(), web),
        request.as_bytes(),
    )
}

/// Review of issue #18's login: guesses sent without waiting for their slow
/// answers must not be checked, or a fast 200 among them gives the password away.
#[test]
fn while_an_address_is_penalised_not_even_the_right_password_is_checked() {
    let dir = tempdir();
    let users = users_file(dir.path());
    let catcher = Catcher::builder()
        .http()
        .arg("--ui-auth-file")
        .arg(users.display().to_string())
        // Longer than the test: the penalty cannot end under it.
        .args(&["--auth-failure-delay", "10m"])
        .start();
    let web = catcher.http();

    // A guess whose answer nobody waits for.
    let mut guess = kit::net::connect(web);
    let request = format!(
        "GET /api/v1/messages HTTP/1.1\r\nHost: {web}\r\nAuthorization: {}\r\n\r\n",
        basic("alice", WRONG)
    );
    guess.write_all(request.as_bytes()).unwrap();
    catcher.stderr.expect_line_where("the failure logged", |l| {
        l.contains("failed web login for user \"alice\" from 127.0.0.1")
    });

    // From that address, nothing is checked now, the right passwords included.
    for (user, password) in [("alice", WRONG), ("alice", ALICE), ("bob", BOB)] {
        let answer = get(web, "/api/v1/messages", Some(&basic(user, password)));
        assert_eq!(answer.status, 429, "{user}: {}", answer.text());
        let retry: u64 = answer
            .head
            .lines()
            .find_map(|l| l.strip_prefix("retry-after: "))
            .unwrap_or_else(|| panic!("no retry-after in\n{}", answer.head))
            .trim()
            .parse()
            .unwrap();
        assert!((1..=600).contains(&retry), "retry-after: {retry}");
        assert!(
            answer.text().contains("too many wrong logins"),
            "{}",
            answer.text()
        );
    }
    // Another address is not penalised.
    let other = get_from("127.0.0.2", web, "/api/v1/messages", &basic("alice", ALICE));
    assert_eq!(other.status, 200, "{}", other.text());
    drop(guess);
}

/// A client that tries a new user name with each guess gets no more log lines
/// than one that keeps to one name; another address gets its own line.
#[test]
fn failed_logins_with_ever_new_user_names_are_logged_once_per_address() {
    let dir = tempdir();
    let users = users_file(dir.path());
    let catcher = Catcher::builder()
        .http()
        .arg("--ui-auth-file")
        .arg(users.display().to_string())
        .args(&["--auth-failure-delay", "0s"])
        .start();
    let web = catcher.http();
    const GUESSES: usize = 40;
    for n in 0..GUESSES {
        let answer = get(web, "/", Some(&basic(&format!("user-{n}"), WRONG)));
        assert_challenged(&answer, "a wrong login");
    }
    let other = get_from("127.0.0.2", web, "/", &basic("alice", WRONG));
    assert_challenged(&other, "a wrong login from another address");
    catcher
        .stderr
        .expect_line_where("the other address's failure", |l| {
            l.contains("failed web login for user \"alice\" from 127.0.0.2")
        });

    let text = stop_and_collect(catcher);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("failed web login") && l.contains("from 127.0.0.1"))
        .collect();
    // One line, plus one with a count for each 10 s the guesses took.
    assert!(
        !lines.is_empty() && lines.len() < GUESSES / 4,
        "{} lines for {GUESSES} failures:\n{}",
        lines.len(),
        lines.join("\n")
    );
    assert!(lines[0].contains("user \"user-0\""), "{}", lines[0]);
}

#[test]
fn a_web_page_beyond_loopback_without_a_login_warns() {
    let warned = |l: &str| {
        l.contains("WARN")
            && l.contains("the web page on 0.0.0.0:")
            && l.contains("with no login")
            && l.contains("--ui-auth-file")
    };
    let clear = |l: &str| l.contains("WARN") && l.contains("crosses the network in clear text");

    let open = Catcher::builder().args(&["--http", "0.0.0.0:0"]).start();
    open.stderr
        .expect_line_where("the no-login warning", |l| warned(l));
    drop(open);

    // With a login, no such warning; without TLS, one about passwords in clear.
    let dir = tempdir();
    let users = users_file(dir.path());
    let users = users.display().to_string();
    let guarded = Catcher::builder()
        .args(&["--http", "0.0.0.0:0", "--ui-auth-file", &users])
        .start();
    guarded
        .stderr
        .expect_line_where("the clear-text warning", |l| clear(l));
    let text = stop_and_collect(guarded);
    assert!(!text.lines().any(warned), "{text}");

    // With a login over HTTPS: nothing to warn about.
    let safe = Catcher::builder()
        .args(&["--http", "0.0.0.0:0", "--ui-auth-file", &users])
        .arg("--ui-tls-self-signed")
        .start();
    let text = stop_and_collect(safe);
    assert!(
        !text.lines().any(|l| warned(l) || clear(l)),
        "a warning with a login over HTTPS:\n{text}"
    );
}

/// `sokkel mail serve` with `extra`, which must fail to start.
fn serve_refused(extra: &[&str]) -> kit::Finished {
    let mut args = vec!["mail", "serve", "--ephemeral", "--smtp", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    args.extend(["--pop3", "127.0.0.1:0", "--imap", "127.0.0.1:0"]);
    let done = sokkel(&args).run();
    assert!(
        !done.stdout_text().contains("listening on"),
        "{}",
        done.describe()
    );
    done
}

#[test]
fn login_and_certificate_mistakes_are_one_line_at_start() {
    let dir = tempdir();
    let missing = dir.path().join("no-such-users");
    let missing = missing.display().to_string();
    let done = serve_refused(&["--http", "127.0.0.1:0", "--ui-auth-file", &missing]);
    done.expect_code(1);
    let line = done.one_error_line();
    assert!(
        line.contains(&format!("cannot use {missing} as auth file: no such file")),
        "{line}"
    );

    let empty = dir.path().join("empty-users");
    std::fs::write(&empty, "# nobody yet\n").unwrap();
    let empty = empty.display().to_string();
    let line = serve_refused(&["--http", "127.0.0.1:0", "--ui-auth-file", &empty]).one_error_line();
    assert!(line.contains("it lists no user"), "{line}");

    let cert = dir.path().join("no-cert.pem").display().to_string();
    let line = serve_refused(&[
        "--http",
        "127.0.0.1:0",
        "--ui-tls-cert",
        &cert,
        "--ui-tls-key",
        &cert,
    ])
    .one_error_line();
    assert!(
        line.contains("cannot use the certificate file") && line.contains("no such file"),
        "{line}"
    );

    // Usage mistakes are clap's: exit 2, naming the flags.
    for (args, names) in [
        (&["--ui-tls-cert", "c.pem"][..], "--ui-tls-key"),
        (&["--no-http", "--ui-auth-file", "users"], "--no-http"),
        (
            &[
                "--ui-tls-self-signed",
                "--ui-tls-cert",
                "c",
                "--ui-tls-key",
                "k",
            ],
            "--ui-tls-cert",
        ),
    ] {
        let done = serve_refused(args);
        done.expect_code(2);
        assert!(done.stderr.contains(names), "{}", done.describe());
    }
}

// ---------------------------------------------------------------------------------------
// HTTPS with curl, and the page in Chromium (interop)

/// The `listening on https https://ADDR/` address a catcher printed.
#[track_caller]
fn https_addr(catcher: &Catcher) -> SocketAddr {
    let lines = catcher.stdout.snapshot();
    lines
        .iter()
        .find_map(|l| {
            l.strip_prefix("listening on https https://")?
                .strip_suffix('/')
        })
        .unwrap_or_else(|| panic!("no https listener announced:\n{}", lines.join("\n")))
        .parse()
        .unwrap()
}

/// The fingerprint printed after `prefix`.
#[track_caller]
fn printed_fingerprint(catcher: &Catcher, prefix: &str) -> String {
    let lines = catcher.stdout.snapshot();
    lines
        .iter()
        .find_map(|l| l.strip_prefix(prefix).map(str::to_owned))
        .unwrap_or_else(|| panic!("no line {prefix}...:\n{}", lines.join("\n")))
}

#[test]
fn the_https_port_tells_plain_http_clients_and_closes_silent_ones() {
    let catcher = Catcher::builder()
        .http()
        .args(&["--ui-tls-self-signed", "--http-header-timeout", "1s"])
        .start();
    let web = https_addr(&catcher);
    catcher.stdout.expect_line_where("the fingerprint", |l| {
        l.starts_with("HTTPS self-signed certificate, SHA-256 fingerprint ")
    });

    let answer = get(web, "/", None);
    assert_eq!(answer.status, 400, "{}", answer.text());
    assert!(answer.text().contains("speaks HTTPS"), "{}", answer.text());

    // A client that connects and never starts the handshake does not keep
    // its connection.
    let mut silent = kit::net::connect(web);
    kit::net::read_until_closed(&mut silent, PROMPT);

    // The server goes on answering.
    let again = get(web, "/livez", None);
    assert_eq!(again.status, 400, "{}", again.text());
}

/// curl with `args`, printing the status code last on its own line.
fn curl(args: &[&str]) -> (u16, String) {
    let curl = require_program("curl", "curl");
    let done = program(curl, ["--silent", "--show-error", "--max-time", "20"])
        .args(args)
        .args(["--write-out", "\n%{http_code}"])
        .run()
        .assert_success("curl");
    let out = done.stdout_text();
    let (body, code) = out.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), body.to_owned())
}

#[test]
#[ignore = "interop: needs curl and openssl"]
fn curl_speaks_https_with_a_login_to_a_certificate_it_trusts() {
    let cert = Cert::for_loopback();
    let dir = tempdir();
    let users = users_file(dir.path());
    let catcher = Catcher::builder()
        .http()
        .arg("--ui-auth-file")
        .arg(users.display().to_string())
        .arg("--ui-tls-cert")
        .arg(cert.cert.display().to_string())
        .arg("--ui-tls-key")
        .arg(cert.key.display().to_string())
        .start();
    let web = https_addr(&catcher);
    catcher.stdout.expect_line_where("the certificate", |l| {
        l.starts_with("HTTPS certificate, SHA-256 fingerprint ")
    });
    catcher.send(&message("over https", "hello"));
    let url = |path: &str| format!("https://localhost:{}{path}", web.port());
    let cacert = cert.cert.display().to_string();
    let login = format!("alice:{ALICE}");

    let (code, body) = curl(&[
        "--cacert",
        &cacert,
        "--user",
        &login,
        &url("/api/v1/messages"),
    ]);
    assert_eq!(code, 200, "{body}");
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list["messages"][0]["Subject"], "over https");

    let (code, head) = curl(&["--cacert", &cacert, "--head", &url("/")]);
    assert_eq!(code, 401, "{head}");
    assert!(head.to_ascii_lowercase().contains(CHALLENGE), "{head}");
    let (code, _) = curl(&["--cacert", &cacert, &url("/livez")]);
    assert_eq!(code, 200);

    // curl told to use plain HTTP on the HTTPS port hears why it fails.
    let (code, body) = curl(&[&format!("http://localhost:{}/", web.port())]);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("speaks HTTPS"), "{body}");
}

#[test]
#[ignore = "interop: needs curl"]
fn the_self_signed_certificate_is_the_one_whose_fingerprint_is_printed() {
    // With --tls-self-signed too, one certificate (one fingerprint to trust).
    let catcher = Catcher::builder()
        .http()
        .args(&["--ui-tls-self-signed", "--tls-self-signed"])
        .start();
    let web = https_addr(&catcher);
    let printed = printed_fingerprint(
        &catcher,
        "HTTPS self-signed certificate, SHA-256 fingerprint ",
    );
    let mail = printed_fingerprint(
        &catcher,
        "TLS self-signed certificate, SHA-256 fingerprint ",
    );
    assert_eq!(printed, mail);
    let (code, _) = curl(&[
        "--insecure",
        &format!("https://127.0.0.1:{}/livez", web.port()),
    ]);
    assert_eq!(code, 200);
    let served = python3(
        r#"
import hashlib, ssl, sys
pem = ssl.get_server_certificate(("127.0.0.1", int(sys.argv[1])))
der = ssl.PEM_cert_to_DER_cert(pem)
print(":".join("%02X" % b for b in hashlib.sha256(der).digest()))
"#,
        &[&web.port().to_string()],
    )
    .run()
    .assert_success("python ssl")
    .stdout_text();
    assert_eq!(served.trim(), printed);
}

/// node, with tests/web_js's packages.
#[track_caller]
fn node(script: &str, args: &[&str]) -> kit::Finished {
    let node = require_program("node", "nodejs");
    let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web_js");
    assert!(
        js.join("node_modules/playwright-core").is_dir(),
        "interop peer missing: npm package `playwright-core`. Run `npm ci` in {} (.ci/run does it)",
        js.display()
    );
    program(node, [script])
        .args(args)
        .current_dir(&js)
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .timeout(Duration::from_secs(120))
        .run()
}

#[test]
#[ignore = "interop: needs node, `npm ci` in tests/web_js and chromium"]
fn chromium_logs_in_over_https_and_sees_mail_arrive_live() {
    require_program("chromium", "chromium");
    let dir = tempdir();
    let users = users_file(dir.path());
    let catcher = Catcher::builder()
        .http()
        .arg("--ui-auth-file")
        .arg(users.display().to_string())
        .arg("--ui-tls-self-signed")
        .start();
    let base = format!("https://localhost:{}/", https_addr(&catcher).port());
    let out = node(
        "ui_auth.mjs",
        &[&base, &catcher.addr().port().to_string(), "bob", BOB],
    );
    assert!(
        out.status.success() && out.stdout_text().trim_end().ends_with("ok"),
        "{}",
        out.describe()
    );
}
