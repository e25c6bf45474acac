//! `sokkel mail serve`'s web side against programs nobody here wrote: the npm client
//! `mailpit-api` that test suites use against Mailpit, and Debian's Chromium driven by
//! `playwright-core` (mail appears live, opens, downloads, searches, deletes; a hostile
//! HTML mail runs no script and loads nothing remote).
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

use kit::process::require_program;
use kit::{Catcher, Finished, program};

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
    for package in ["mailpit-api", "playwright-core"] {
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
