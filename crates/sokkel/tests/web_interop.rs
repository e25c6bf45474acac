//! `sokkel mail serve`'s web side against programs nobody here wrote: the npm client
//! `mailpit-api` that test suites use against Mailpit, and Debian's Chromium driven by
//! `playwright-core` (mail appears live, opens, downloads, searches, deletes; a hostile
//! HTML mail runs no script and loads nothing remote; issue #17's page: links and
//! history, tags, selection, stars, dark mode, notifications, the release dialog
//! against aiosmtpd, screenshots, and axe-core's accessibility check).
//!
//! These need node, chromium and `npm ci` in tests/web_js; `.ci/run` installs them
//! and runs `cargo test -- --ignored`. A missing peer fails the test with a hint.

mod kit;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use kit::net::free_tcp_port;
use kit::peers::{Aiosmtpd, AiosmtpdOptions};
use kit::process::require_program;
use kit::{Catcher, Finished, program, tempdir};

/// How long one node script may take.
const SCRIPT_LIMIT: Duration = Duration::from_secs(120);

fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web_js")
}

/// node, with the npm packages of tests/web_js installed.
#[track_caller]
fn require_node_packages() -> PathBuf {
    let node = require_program("node", "nodejs");
    let modules = js_dir().join("node_modules");
    for package in ["mailpit-api", "playwright-core", "axe-core"] {
        assert!(
            modules.join(package).is_dir(),
            "interop peer missing: npm package `{package}`. Run `npm ci` in {} \
             (.ci/run does it)",
            js_dir().display()
        );
    }
    node
}

/// A catcher with the web server on a free loopback port, and its base URL.
fn catcher_with_web() -> (Catcher, String) {
    let catcher = Catcher::builder().http().start();
    let base = format!("http://{}/", catcher.http());
    (catcher, base)
}

fn send(catcher: &Catcher, kind: &str, extra: &[&str]) {
    program("python3", [js_dir().join("send_mail.py")])
        .arg(catcher.addr().port().to_string())
        .arg(kind)
        .args(extra)
        .run()
        .assert_success("send_mail.py");
}

fn node(script: &str, args: &[&str]) -> Finished {
    let node = require_node_packages();
    program(node, [script])
        .args(args)
        .current_dir(&js_dir())
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .timeout(SCRIPT_LIMIT)
        .run()
}

#[test]
#[ignore = "interop: needs node and `npm ci` in tests/web_js"]
fn mailpit_api_client_lists_reads_searches_marks_and_deletes() {
    require_node_packages();
    let (catcher, base) = catcher_with_web();
    send(&catcher, "hostile", &["9"]);
    send(&catcher, "plain", &[]);
    let out = node("mailpit_api.mjs", &[&base]);
    assert!(
        out.status.success() && out.stdout_text().trim() == "ok",
        "{}",
        out.describe()
    );
}

#[test]
#[ignore = "interop: needs node and `npm ci` in tests/web_js"]
fn mailpit_api_client_finds_with_every_mailpit_search_operator() {
    // Issue #12: a Mailpit client that sent `tag:` or `message-id:` got a 400.
    require_node_packages();
    let (catcher, base) = catcher_with_web();
    program("python3", [js_dir().join("send_search_corpus.py")])
        .arg(catcher.addr().port().to_string())
        .run()
        .assert_success("send_search_corpus.py");
    let out = node("mailpit_search.mjs", &[&base]);
    assert!(
        out.status.success() && out.stdout_text().trim() == "ok",
        "{}",
        out.describe()
    );
}

/// Counts connections to a 127.0.0.1 port until dropped: the remote-image trap.
struct Trap {
    port: u16,
    hits: Arc<AtomicUsize>,
    stop: Arc<AtomicUsize>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Trap {
    fn start() -> Trap {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicUsize::new(0));
        let (thread_hits, thread_stop) = (hits.clone(), stop.clone());
        let thread = thread::spawn(move || {
            // Bounded: stops when told, or after the longest a test may run.
            let deadline = Instant::now() + SCRIPT_LIMIT * 2;
            while thread_stop.load(Ordering::Relaxed) == 0 && Instant::now() < deadline {
                match listener.accept() {
                    Ok(_) => {
                        thread_hits.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Trap {
            port,
            hits,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Trap {
    fn drop(&mut self) {
        self.stop.store(1, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
#[ignore = "interop: needs chromium, node and `npm ci` in tests/web_js"]
fn browser_shows_live_mail_and_runs_no_mail_script() {
    require_program("chromium", "chromium");
    require_node_packages();
    let (catcher, base) = catcher_with_web();
    let trap = Trap::start();
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/test-artifacts/web")
        .display()
        .to_string();
    let smtp: SocketAddr = catcher.addr();
    let out = node(
        "browser.mjs",
        &[
            &base,
            &smtp.port().to_string(),
            &trap.port.to_string(),
            &artifacts,
        ],
    );
    assert!(
        out.status.success() && out.stdout_text().trim().ends_with("ok"),
        "{}",
        out.describe()
    );
    assert_eq!(
        trap.hits.load(Ordering::Relaxed),
        0,
        "the page loaded a remote image from a hostile mail"
    );
    assert!(
        Path::new(&artifacts)
            .join("3-hostile-blocked.png")
            .is_file()
    );
}

/// Where the page's browser tests leave their screenshots.
fn artifacts(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/test-artifacts")
        .join(name)
}

/// Runs a page script and fails with its output (which names the feature that
/// broke) unless it ends with "ok".
#[track_caller]
fn run_page_script(script: &str, args: &[&str]) -> Finished {
    require_program("chromium", "chromium");
    let out = node(script, args);
    assert!(
        out.status.success() && out.stdout_text().trim().ends_with("ok"),
        "{}",
        out.describe()
    );
    out
}

/// A relay configuration for `mail serve --relay-config`: 127.0.0.1:`port`,
/// allowing only addresses at allowed.test. Keep the directory while the
/// catcher runs.
fn relay_config(port: u16) -> (tempfile::TempDir, String) {
    let dir = tempdir();
    let file = dir.path().join("relay.toml");
    std::fs::write(
        &file,
        format!(
            "host = \"127.0.0.1\"\nport = {port}\nallowed-recipients = \"@allowed\\\\.test$\"\n"
        ),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let file = file.to_str().expect("a UTF-8 temporary path").to_string();
    (dir, file)
}

#[test]
#[ignore = "interop: needs chromium, node and `npm ci` in tests/web_js"]
fn browser_page_links_tags_selection_stars_theme_notifications_and_previews() {
    let (catcher, base) = catcher_with_web();
    let out = run_page_script(
        "page_features.mjs",
        &[&base, &catcher.addr().port().to_string()],
    );
    let text = out.stdout_text();
    for feature in [
        "deep links and history",
        "tags: editing, live sidebar counts, filtering",
        "multi-select",
        "star from the list and the view",
        "dark mode",
        "notification for new mail",
        "empty state",
        "previews",
        "thumbnails",
        "tabs added later",
        "paging",
        "tags: rapid repeated edits all count",
        "keys: arrows scroll a focused panel",
    ] {
        assert!(
            text.contains(&format!("feature ok: {feature}")),
            "{feature} was not checked:\n{text}"
        );
    }
}

#[test]
#[ignore = "interop: needs chromium, node, `npm ci` in tests/web_js and aiosmtpd"]
fn browser_release_dialog_checks_recipients_and_sends_through_aiosmtpd() {
    let server = Aiosmtpd::start(&AiosmtpdOptions::default());
    let port: u16 = server
        .server()
        .rsplit(':')
        .next()
        .and_then(|port| port.parse().ok())
        .expect("aiosmtpd's port");
    let (_dir, config) = relay_config(port);
    let catcher = Catcher::builder()
        .http()
        .args(&["--relay-config", &config])
        .start();
    let base = format!("http://{}/", catcher.http());
    run_page_script(
        "page_release.mjs",
        &[&base, &catcher.addr().port().to_string(), &server.server()],
    );
    // The refused recipient never reached the relay: one message for the
    // single release, two for the selection of two, all to the allowed
    // address, then one to the two "Name <addr>" entries.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut saved = server.messages();
    while saved.len() < 4 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
        saved = server.messages();
    }
    assert_eq!(saved.len(), 4, "messages aiosmtpd got");
    for got in &saved[..3] {
        assert_eq!(got.rcpt_tos, ["qa@allowed.test"]);
    }
    assert_eq!(
        saved[3].rcpt_tos,
        ["bob@allowed.test", "j@allowed.test"],
        "the addresses out of `Bob <...>` and `\"Doe, John\" <...>`"
    );
    let subjects: Vec<String> = saved
        .iter()
        .map(|got| {
            let text = String::from_utf8_lossy(&got.raw);
            text.lines()
                .find_map(|line| line.strip_prefix("Subject: "))
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(subjects[0], "Release me", "{subjects:?}");
    let mut rest = subjects[1..3].to_vec();
    rest.sort();
    assert_eq!(rest, ["Batch one", "Batch two"]);
    assert_eq!(subjects[3], "Named recipients", "{subjects:?}");
    let list = catcher.get_json("/api/v1/messages");
    let id = list["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["Subject"] == "Release me")
        .and_then(|m| m["ID"].as_str()?.parse().ok())
        .expect("the released message");
    assert_eq!(saved[0].raw, catcher.raw(id), "the stored bytes, unchanged");
}

#[test]
#[ignore = "interop: needs chromium, node and `npm ci` in tests/web_js (with axe-core)"]
fn browser_page_screenshots_and_accessibility_in_both_themes() {
    // The relay is a port nobody listens on: the release dialog opens for the
    // accessibility check, and nothing is sent.
    let (_dir, config) = relay_config(free_tcp_port());
    let catcher = Catcher::builder()
        .http()
        .args(&["--relay-config", &config])
        .start();
    let base = format!("http://{}/", catcher.http());
    let dir = artifacts("web-page");
    let dir_text = dir.display().to_string();
    let out = run_page_script(
        "page_look.mjs",
        &[&base, &catcher.addr().port().to_string(), &dir_text],
    );
    let mut shots = Vec::new();
    for view in ["empty", "list", "message"] {
        for width in [375, 768, 1280] {
            for theme in ["light", "dark"] {
                let file = dir.join(format!("{view}-{width}-{theme}.png"));
                assert!(file.is_file(), "no screenshot {}", file.display());
                shots.push(file);
            }
        }
    }
    println!("screenshots:");
    for shot in &shots {
        println!("  {}", shot.display());
    }
    print!("{}", out.stdout_text());
}
