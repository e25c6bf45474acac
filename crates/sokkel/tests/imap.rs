//! IMAP on `sokkel mail serve` (issue #13): the listeners the flags ask for,
//! announced like the others, and their mistakes as one line. What the
//! sessions speak is tested beside the IMAP crate and with real clients
//! (`imap_interop.rs`).

mod kit;

use std::net::TcpListener;

use kit::{Catcher, sokkel};

#[test]
fn imap_is_announced_on_its_port_and_no_imap_turns_it_off() {
    let catcher = Catcher::start();
    let addr = catcher.imap_addr();
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
    assert!(catcher.imaps.is_empty());

    let catcher = Catcher::with(&["--no-imap"]);
    assert!(catcher.imap.is_empty());
    assert!(
        !catcher.stdout.text().contains("imap"),
        "{}",
        catcher.stdout.text()
    );
}

#[test]
fn imaps_without_a_certificate_is_one_line() {
    let done = sokkel([
        "mail",
        "serve",
        "--ephemeral",
        "--smtp",
        "127.0.0.1:0",
        "--imaps",
        "127.0.0.1:0",
    ])
    .run();
    let line = done.one_error_line();
    assert!(line.contains("--imaps needs a certificate"), "{line}");
}

#[test]
fn an_imap_port_in_use_is_one_line_naming_imap_and_leaves_no_store() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = kit::tempdir();
    let db = dir.path().join("mail.db");
    let out = sokkel([
        "mail",
        "serve",
        "--no-http",
        "--smtp",
        "127.0.0.1:0",
        "--imap",
        &addr,
        "--db",
    ])
    .arg(&db)
    .run();
    let line = out.one_error_line();
    assert!(
        line.contains("already in use") && line.contains("--imap"),
        "{}",
        out.describe()
    );
    assert!(!db.exists(), "a failed start left a store behind");
}
