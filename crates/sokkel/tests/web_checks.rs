//! The page's HTML check and link check tabs (issue #17) in Debian's Chromium
//! driven by `playwright-core`: an HTML mail with features some clients lack
//! shows its score and a warning naming a client; the link check, pressed,
//! shows 200, 404 and a timeout for a local server's links, and nothing was
//! requested before it was pressed.
//!
//! Needs node, chromium and `npm ci` in tests/web_js, as web_interop.rs does;
//! a missing peer fails the test with a hint.

mod kit;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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
    assert!(
        modules.join("playwright-core").is_dir(),
        "interop peer missing: npm package `playwright-core`. Run `npm ci` in {} \
         (.ci/run does it)",
        js_dir().display()
    );
    node
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

/// A local HTTP server for the link check: `/ok` 200, `/missing` 404, `/hang`
/// never answers (the connection is held until the site stops); `/count`
/// answers how many other requests it has read. Stops when dropped, or after
/// the longest a test may run.
struct Site {
    port: u16,
    requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Site {
    fn start() -> Site {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (counted, stopping) = (Arc::clone(&requests), Arc::clone(&stop));
        let thread = thread::spawn(move || {
            let deadline = Instant::now() + SCRIPT_LIMIT * 2;
            let mut connections = Vec::new();
            while !stopping.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (counted, stopping) = (Arc::clone(&counted), Arc::clone(&stopping));
                        connections.push(thread::spawn(move || {
                            answer(stream, &counted, &stopping, deadline);
                        }));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
            stopping.store(true, Ordering::Relaxed);
            for connection in connections {
                let _ = connection.join();
            }
        });
        Site {
            port,
            requests,
            stop,
            thread: Some(thread),
        }
    }
}

/// Reads one request head and answers it (or, for `/hang`, holds on).
fn answer(mut stream: TcpStream, counted: &AtomicUsize, stop: &AtomicBool, deadline: Instant) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut head = Vec::new();
    let mut buffer = [0_u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 << 10 {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buffer[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split(' ').nth(1).unwrap_or_default().to_string();
    if path != "/count" {
        counted.fetch_add(1, Ordering::Relaxed);
    }
    let (status, body) = match path.as_str() {
        "/ok" => ("200 OK", "ok".to_string()),
        "/missing" => ("404 Not Found", String::new()),
        "/count" => ("200 OK", counted.load(Ordering::Relaxed).to_string()),
        "/hang" => {
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
            return;
        }
        _ => ("500 Internal Server Error", String::new()),
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nAccess-Control-Allow-Origin: *\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

impl Drop for Site {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
#[ignore = "interop: needs chromium, node and `npm ci` in tests/web_js"]
fn browser_html_check_and_link_check_tabs() {
    require_program("chromium", "chromium");
    require_node_packages();
    let catcher = Catcher::builder().http().start();
    let base = format!("http://{}/", catcher.http());
    let site = Site::start();
    let site_url = format!("http://127.0.0.1:{}/", site.port);
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/test-artifacts/web")
        .display()
        .to_string();
    let out = node("checks.mjs", &[&base, &site_url, &artifacts]);
    assert!(
        out.status.success() && out.stdout_text().trim().ends_with("ok"),
        "{}",
        out.describe()
    );
    assert!(
        site.requests.load(Ordering::Relaxed) >= 3,
        "the link check asked the site"
    );
    assert!(
        Path::new(&artifacts)
            .join("checks-2-link-check.png")
            .is_file()
    );
}
