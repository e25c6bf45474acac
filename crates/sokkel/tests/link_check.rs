//! `mail serve`'s link-check flags through the real binary: `--help` lists
//! them, a bad `--link-check-timeout` is a usage error (exit 2) whose first
//! line says what is wrong, and both reach the link check: with
//! `--link-check-block-private` a link to 127.0.0.1 is answered 451 and never
//! requested; with `--link-check-timeout 1` a link that answers after 3 s is
//! a timeout, where the default of 5 s waits for its 200. The link check's
//! every other behaviour is tested through the router in
//! crates/web/tests/checks.rs.

mod kit;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use kit::{Catcher, sokkel};

/// A real HTTP server on 127.0.0.1 that answers every request `200 OK` after
/// `delay`, counting the requests it reads; stopped on drop.
struct Site {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Site {
    fn start(delay: Duration) -> Site {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (counted, stopping) = (Arc::clone(&requests), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(mut stream) = stream else { continue };
                let counted = Arc::clone(&counted);
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                    let mut head = Vec::new();
                    let mut buffer = [0_u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 << 10 {
                        match stream.read(&mut buffer) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buffer[..n]),
                        }
                    }
                    counted.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(delay);
                    let _ = stream.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                });
            }
        });
        Site {
            addr,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://{}/page", self.addr)
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A catcher with the web side and `flags`, holding one message linking to `url`.
fn catcher_with_link(flags: &[&str], url: &str) -> Catcher {
    let catcher = Catcher::builder()
        .http()
        .args(&["--ephemeral", "--no-pop3", "--no-imap"])
        .args(flags)
        .start();
    catcher.send(
        format!(
            "From: sender@example.test\r\nTo: rcpt@example.test\r\nSubject: links\r\n\r\n\
             See {url} please.\r\n"
        )
        .as_bytes(),
    );
    catcher
}

/// The one link's (StatusCode, Status) of the latest message's link check.
fn only_link(catcher: &Catcher) -> (u64, String) {
    let check = catcher.get_json("/api/v1/message/latest/link-check");
    let links = check["Links"].as_array().unwrap();
    assert_eq!(links.len(), 1, "{check:#}");
    (
        links[0]["StatusCode"].as_u64().unwrap(),
        links[0]["Status"].as_str().unwrap().to_string(),
    )
}

#[test]
fn help_lists_the_link_check_flags() {
    let help = sokkel(["mail", "serve", "--help"]).run();
    assert!(help.status.success(), "{}", help.describe());
    let text = String::from_utf8_lossy(&help.stdout);
    for needle in [
        "--link-check-timeout <SECS>",
        "SOKKEL_LINK_CHECK_TIMEOUT",
        "--link-check-block-private",
        "SOKKEL_LINK_CHECK_BLOCK_PRIVATE",
    ] {
        assert!(text.contains(needle), "{needle} not in:\n{text}");
    }
}

#[test]
fn a_bad_link_check_timeout_is_a_usage_error() {
    for value in ["0", "61", "5s", ""] {
        let out = sokkel(["mail", "serve", "--ephemeral", "--smtp", "127.0.0.1:0"])
            .args(["--no-http", "--no-pop3", "--link-check-timeout", value])
            .run();
        assert_eq!(out.code(), Some(2), "{value:?}: {}", out.describe());
        let first = out.stderr.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("error: invalid value") && first.contains("--link-check-timeout"),
            "{value:?}: {}",
            out.describe()
        );
        assert!(!out.stderr.contains("panicked"), "{}", out.describe());
    }
    // The same from the environment.
    let out = sokkel(["mail", "serve", "--ephemeral", "--smtp", "127.0.0.1:0"])
        .args(["--no-http", "--no-pop3"])
        .env("SOKKEL_LINK_CHECK_TIMEOUT", "0")
        .run();
    assert_eq!(out.code(), Some(2), "{}", out.describe());
    assert!(
        out.stderr
            .lines()
            .next()
            .unwrap_or_default()
            .contains("--link-check-timeout"),
        "{}",
        out.describe()
    );
}

#[test]
fn block_private_answers_451_and_requests_nothing() {
    let site = Site::start(Duration::ZERO);
    let catcher = catcher_with_link(&["--link-check-block-private"], &site.url());
    assert_eq!(
        only_link(&catcher),
        (451, "Blocked private/reserved address".to_string())
    );
    assert_eq!(site.requests(), 0, "a blocked link was requested");

    // Without the flag, the developer's own machine is checked.
    let catcher = catcher_with_link(&[], &site.url());
    assert_eq!(only_link(&catcher), (200, "OK".to_string()));
    assert_eq!(site.requests(), 1);
}

#[test]
fn the_link_check_timeout_reaches_the_check() {
    // Answers after 3 s: past a 1 s timeout, within the default 5 s.
    let site = Site::start(Duration::from_secs(3));
    let catcher = catcher_with_link(&["--link-check-timeout", "1"], &site.url());
    assert_eq!(only_link(&catcher), (0, "timeout".to_string()));
    assert_eq!(site.requests(), 1, "the link was asked");

    let catcher = catcher_with_link(&[], &site.url());
    assert_eq!(only_link(&catcher), (200, "OK".to_string()));
}
