//! `sokkel mail import` and `mail export` (issue #18), through the binary:
//! mbox files and Maildirs written by Python's `mailbox` module and `.eml`
//! files go in, and come back out byte for byte as `mailbox` reads them (the
//! helper `mailbox_roundtrip.py` writes and compares them); `--query` selects
//! what a search finds; a file that is not mail is named in one line while the
//! rest is imported; and an import while `mail serve` runs on the same store
//! reaches it over SMTP, byte for byte, at the address it recorded. On
//! PostgreSQL (interop) every process imports itself, while nodes serve it.

// Its watchdog shell outlives the test process on purpose (see cluster.rs).
#[allow(clippy::zombie_processes)]
#[path = "../../store/tests/pg/mod.rs"]
mod pg;

mod kit;

use std::collections::HashMap;
use std::path::Path;

use kit::catcher::{ids, list_json, mail_cli, raw};
use kit::{Catcher, Finished, python3, tempdir};
use serde_json::Value;

const HELPER: &str = include_str!("mailbox_roundtrip.py");

/// `mailbox_roundtrip.py ARGS`; panics unless it succeeds. Its stdout.
#[track_caller]
fn helper(args: &[&str]) -> String {
    python3(HELPER, args)
        .run()
        .assert_success("mailbox_roundtrip.py")
        .stdout_text()
}

fn text(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temporary path")
}

/// Panics unless `out` exited 0 and printed `summary` as its only line.
#[track_caller]
fn expect_summary(out: Finished, summary: &str) {
    let out = out.assert_success("sokkel mail import/export");
    assert_eq!(out.stdout_text().trim_end(), summary, "{}", out.describe());
}

#[test]
fn an_mbox_from_python_round_trips_as_python_reads_it() {
    let dir = tempdir();
    let (mbox, db, out) = (
        dir.path().join("in.mbox"),
        dir.path().join("mail.db"),
        dir.path().join("out.mbox"),
    );
    helper(&["write-mbox", text(&mbox)]);
    expect_summary(
        mail_cli(&db, &["import", text(&mbox)]),
        "imported 6 messages from 1 file",
    );
    let list = list_json(&db, 50);
    // The envelope sender and time come from the From_ lines.
    let oldest = list.last().expect("messages");
    assert_eq!(oldest["mail_from"], "alice@example.com", "{oldest}");
    assert_eq!(oldest["received"], "2026-11-30T10:00:00Z", "{oldest}");
    assert_eq!(oldest["rcpt_to"], serde_json::json!(["bob@example.com"]));
    // Python quoted the body's From lines (mboxo); the store has them unquoted.
    let stored = raw(&db, ids(&list)[list.len() - 1]);
    assert!(
        stored.ends_with(
            b"\n\nFrom the start of a line.\nFrom quoted already.\n>From twice.\nFrom\n\nend\n"
        ),
        "{}",
        String::from_utf8_lossy(&stored)
    );
    expect_summary(
        mail_cli(&db, &["export", "--format", "mbox", text(&out)]),
        &format!("exported 6 messages to {}", out.display()),
    );
    assert_eq!(
        helper(&["compare-mbox", text(&mbox), text(&out)]).trim(),
        "6"
    );
    // The file is there now: not overwritten unless asked.
    let refused = mail_cli(&db, &["export", "--format", "mbox", text(&out)]);
    assert_eq!(refused.code(), Some(1), "{}", refused.describe());
    assert!(
        refused.one_error_line().contains("--force"),
        "{}",
        refused.describe()
    );
    mail_cli(&db, &["export", "--format", "mbox", "--force", text(&out)])
        .assert_success("export --force");
    assert_eq!(
        helper(&["compare-mbox", text(&mbox), text(&out)]).trim(),
        "6"
    );
}

#[test]
fn a_maildir_from_python_round_trips_with_its_seen_flags() {
    let dir = tempdir();
    let (maildir, db, out) = (
        dir.path().join("Maildir"),
        dir.path().join("mail.db"),
        dir.path().join("out"),
    );
    helper(&["write-maildir", text(&maildir)]);
    // Three in the Maildir, one in its Maildir++ folder .Archive.
    expect_summary(
        mail_cli(&db, &["import", text(&maildir)]),
        "imported 4 messages from 4 files",
    );
    let list = list_json(&db, 50);
    let read: HashMap<String, bool> = list
        .iter()
        .map(|m| {
            (
                m["subject"].as_str().unwrap_or_default().to_owned(),
                m["read"].as_bool().unwrap_or_default(),
            )
        })
        .collect();
    let want: HashMap<String, bool> = [
        ("new one", false),
        ("seen one", true),
        ("seen, 8-bit", true),
        ("archived", false),
    ]
    .into_iter()
    .map(|(s, r)| (s.to_owned(), r))
    .collect();
    assert_eq!(read, want);
    expect_summary(
        mail_cli(&db, &["export", "--format", "maildir", text(&out)]),
        &format!("exported 4 messages to {}", out.display()),
    );
    assert_eq!(
        helper(&["compare-maildir", text(&maildir), text(&out)]).trim(),
        "4"
    );
    // Exporting again would write the same messages twice.
    let again = mail_cli(&db, &["export", "--format", "maildir", text(&out)]);
    assert!(
        again.one_error_line().contains("--force"),
        "{}",
        again.describe()
    );
    mail_cli(
        &db,
        &["export", "--format", "maildir", "--force", text(&out)],
    )
    .assert_success("export --force");
    assert_eq!(
        helper(&["compare-maildir", text(&maildir), text(&out)]).trim(),
        "4"
    );
}

/// The messages of the .eml test, by file name: CRLF without a final line
/// break, bare LF, 8-bit bytes, a dot line.
const EMLS: [(&str, &[u8]); 3] = [
    (
        "a.eml",
        b"From: Alice <alice@example.com>\r\nTo: bob@example.com\r\nSubject: first\r\n\r\nno final line break",
    ),
    (
        "dir/b.eml",
        b"Return-Path: <bounces@example.net>\nFrom: Bob <bob@example.com>\nTo: carol@example.com\nSubject: second\n\n.\nbare LF\n",
    ),
    (
        "dir/c.eml",
        b"From: alice@example.com\nTo: dave@example.com\nSubject: third\n\ncaf\xe9 \xff\n",
    ),
];

#[test]
fn eml_files_round_trip_byte_for_byte_and_a_bad_file_is_named_in_one_line() {
    let dir = tempdir();
    let root = dir.path();
    std::fs::create_dir(root.join("dir")).expect("mkdir");
    for (name, bytes) in EMLS {
        std::fs::write(root.join(name), bytes).expect("write an .eml");
    }
    std::fs::write(root.join("notes.txt"), "just some notes\n").expect("write");
    let db = root.join("mail.db");
    let out = mail_cli(
        &db,
        &[
            "import",
            text(&root.join("a.eml")),
            text(&root.join("notes.txt")),
            text(&root.join("dir")),
        ],
    );
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    let line = out.one_error_line();
    assert!(
        line.starts_with("sokkel: ") && line.contains("notes.txt") && line.contains("not an mbox"),
        "{line}"
    );
    assert_eq!(
        out.stdout_text().trim_end(),
        "imported 3 messages from 3 files; skipped 1 not mail"
    );
    let list = list_json(&db, 50);
    let bob = list
        .iter()
        .find(|m| m["subject"] == "second")
        .expect("b.eml");
    assert_eq!(bob["mail_from"], "bounces@example.net", "{bob}");
    assert_eq!(bob["rcpt_to"], serde_json::json!(["carol@example.com"]));

    let exported = root.join("exported");
    expect_summary(
        mail_cli(&db, &["export", "--format", "eml", text(&exported)]),
        &format!("exported 3 messages to {}", exported.display()),
    );
    let subjects: HashMap<&str, &[u8]> = [
        ("first", EMLS[0].1),
        ("second", EMLS[1].1),
        ("third", EMLS[2].1),
    ]
    .into_iter()
    .collect();
    for message in &list {
        let id = message["id"].as_u64().expect("an id");
        let file = exported.join(format!("{id}.eml"));
        let bytes = std::fs::read(&file).expect("an exported .eml");
        let subject = message["subject"].as_str().expect("a subject");
        assert_eq!(bytes, subjects[subject], "{}", file.display());
    }
    let again = mail_cli(&db, &["export", "--format", "eml", text(&exported)]);
    assert!(
        again.one_error_line().contains("--force"),
        "{}",
        again.describe()
    );
}

#[test]
fn a_message_over_the_limit_is_skipped_with_a_note_and_the_rest_imported() {
    let dir = tempdir();
    let mbox = dir.path().join("in.mbox");
    let big = format!("Subject: big\n\n{}", "x".repeat(2000));
    let content = format!(
        "From a@example.com Mon Nov 30 10:00:00 2026\n{big}\n\n\
         From b@example.com Mon Nov 30 10:01:00 2026\nSubject: small\n\nhi\n"
    );
    std::fs::write(&mbox, content).expect("write the mbox");
    let db = dir.path().join("mail.db");
    let out = mail_cli(&db, &["import", "--max-message-size", "1KiB", text(&mbox)]);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    let line = out.one_error_line();
    assert!(
        line.contains("in.mbox: message 1: 2015 bytes, over --max-message-size"),
        "{line}"
    );
    assert_eq!(
        out.stdout_text().trim_end(),
        "imported 1 message from 1 file; skipped 1 too big"
    );
    let list = list_json(&db, 10);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["subject"], "small");
}

/// The examples paste: not wrapped on an 80-column terminal.
#[test]
fn import_and_export_help_examples_fit_80_columns() {
    for command in ["import", "export"] {
        let help = kit::sokkel(["mail", command, "--help"])
            .env("COLUMNS", "80")
            .run()
            .assert_success("--help")
            .stdout_text();
        let examples = &help[help.find("Examples:").expect("examples")..];
        assert!(examples.lines().all(|l| l.chars().count() <= 80), "{help}");
        assert!(
            examples
                .lines()
                .filter(|l| l.starts_with("  sokkel mail"))
                .count()
                >= 3
        );
    }
}

#[test]
fn export_query_selects_what_a_search_finds_and_a_bad_query_is_a_usage_error() {
    let dir = tempdir();
    let root = dir.path();
    std::fs::create_dir(root.join("dir")).expect("mkdir");
    for (name, bytes) in EMLS {
        std::fs::write(root.join(name), bytes).expect("write an .eml");
    }
    let db = root.join("mail.db");
    mail_cli(
        &db,
        &["import", text(&root.join("a.eml")), text(&root.join("dir"))],
    )
    .assert_success("import");
    let out = root.join("alice");
    expect_summary(
        mail_cli(
            &db,
            &[
                "export",
                "--format",
                "eml",
                "--query",
                "from:alice",
                text(&out),
            ],
        ),
        &format!("exported 2 messages to {}", out.display()),
    );
    let mut written: Vec<Vec<u8>> = std::fs::read_dir(&out)
        .expect("the directory export made")
        .map(|entry| std::fs::read(entry.expect("an entry").path()).expect("read"))
        .collect();
    written.sort();
    let mut want = vec![EMLS[0].1.to_vec(), EMLS[2].1.to_vec()];
    want.sort();
    assert_eq!(written, want);
    // To stdout, oldest first: only the summary goes to stderr.
    let stdout = mail_cli(
        &db,
        &[
            "export",
            "--format",
            "mbox",
            "--query",
            "subject:second",
            "-",
        ],
    )
    .assert_success("export to stdout");
    let mbox = stdout.stdout_text();
    assert!(mbox.starts_with("From bounces@example.net "), "{mbox}");
    assert!(mbox.ends_with("\n.\nbare LF\n\n"), "{mbox:?}");
    assert_eq!(stdout.stderr.trim(), "exported 1 message to stdout");

    let bad = mail_cli(
        &db,
        &[
            "export",
            "--format",
            "eml",
            "--query",
            "frm:alice",
            text(&out),
        ],
    );
    assert_eq!(bad.code(), Some(2), "{}", bad.describe());
    assert!(
        bad.stderr.contains("unknown filter \"frm:\""),
        "{}",
        bad.describe()
    );
}

#[test]
fn import_while_serve_runs_delivers_over_smtp_byte_for_byte() {
    let dir = tempdir();
    let root = dir.path();
    let db = root.join("mail.db");
    let catcher = Catcher::builder().db(&db).start();
    let (mbox, maildir) = (root.join("in.mbox"), root.join("Maildir"));
    helper(&["write-mbox", text(&mbox)]);
    helper(&["write-maildir", text(&maildir)]);

    // An --smtp where nothing listens: one line says what to do.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let nobody = closed.local_addr().expect("addr").to_string();
    drop(closed);
    let refused = mail_cli(&db, &["import", "--smtp", &nobody, text(&mbox)]);
    let line = refused.one_error_line();
    assert!(line.contains("serves") && line.contains("--smtp"), "{line}");
    assert!(catcher.list().is_empty());

    // Without --smtp: the address the server recorded for its store.
    expect_summary(
        mail_cli(&db, &["import", text(&mbox), text(&maildir)]),
        "imported 10 messages from 5 files",
    );
    let list = catcher.list();
    assert_eq!(list.len(), 10, "{list:?}");
    // Byte for byte: the same bytes as a direct import into another store.
    let direct = root.join("direct.db");
    mail_cli(&direct, &["import", text(&mbox), text(&maildir)]).assert_success("direct import");
    let by_subject =
        |list: &[Value], get: &dyn Fn(u64) -> Vec<u8>| -> HashMap<String, (Vec<u8>, bool)> {
            list.iter()
                .map(|m| {
                    let id = m["id"].as_u64().expect("an id");
                    (
                        m["subject"].as_str().expect("a subject").to_owned(),
                        (get(id), m["read"].as_bool().expect("read")),
                    )
                })
                .collect()
        };
    let served = by_subject(&list, &|id| catcher.raw(id));
    let direct_list = list_json(&direct, 50);
    let imported = by_subject(&direct_list, &|id| raw(&direct, id));
    assert_eq!(served.len(), 10);
    assert!(
        served == imported,
        "the served store's messages differ from a direct import's"
    );
    assert!(served["seen one"].1 && !served["new one"].1);

    // Export reads the served store too; Python reads it back as it wrote it.
    let out = root.join("out.mbox");
    mail_cli(
        &db,
        &[
            "export",
            "--format",
            "mbox",
            "--query",
            "-subject:seen -subject:new -subject:archived",
            text(&out),
        ],
    )
    .assert_success("export while serving");
    assert_eq!(
        helper(&["compare-mbox", text(&mbox), text(&out)]).trim(),
        "6"
    );
}

/// `--smtp` naming a server that keeps another store: the first message
/// shows it, and import stops there with one line instead of filling the
/// wrong store.
#[test]
fn import_refuses_to_go_on_into_another_servers_store() {
    let dir = tempdir();
    let db = dir.path().join("mail.db");
    let ours = Catcher::builder().db(&db).start();
    let other = Catcher::start();
    let mbox = dir.path().join("in.mbox");
    helper(&["write-mbox", text(&mbox)]);
    let out = mail_cli(&db, &["import", "--smtp", &other.server(), text(&mbox)]);
    let line = out.one_error_line();
    assert!(
        line.contains("is not the `sokkel mail serve` that serves this store")
            && line.contains("--smtp"),
        "{line}"
    );
    assert!(ours.list().is_empty());
    assert!(other.list().is_empty(), "no message went astray");
}

/// A plain SMTP server that takes anything and writes down every command
/// line it gets: what a Postfix on the recorded port would see.
struct SmtpSink {
    addr: std::net::SocketAddr,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl SmtpSink {
    fn start() -> SmtpSink {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        let lines: std::sync::Arc<std::sync::Mutex<Vec<String>>> = std::sync::Arc::default();
        let seen = std::sync::Arc::clone(&lines);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut writer = stream.try_clone().expect("clone");
                let _ = writer.write_all(b"220 sink ESMTP\r\n");
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    seen.lock().unwrap().push(line.clone());
                    let reply: &[u8] = if line.starts_with("EHLO") {
                        b"250-sink\r\n250-8BITMIME\r\n250 CHUNKING\r\n"
                    } else if line.starts_with("QUIT") {
                        b"221 bye\r\n"
                    } else {
                        b"250 2.0.0 Ok: queued as 1\r\n"
                    };
                    if writer.write_all(reply).is_err() || line.starts_with("QUIT") {
                        break;
                    }
                }
            }
        });
        SmtpSink { addr, lines }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

/// The address `mail serve` recorded now belongs to another program (the
/// server was killed, Postfix took the port): the import stops with one line
/// before any MAIL, whether it found the address in the record or in --smtp.
#[test]
fn a_stale_smtp_address_at_a_plain_smtp_server_gets_no_mail() {
    let dir = tempdir();
    let db = dir.path().join("mail.db");
    let ours = Catcher::builder().db(&db).start();
    let sink = SmtpSink::start();
    let record = dir.path().join("mail.db-log/smtp");
    let recorded = std::fs::read_to_string(&record).expect("mail serve's SMTP record");
    let head: Vec<&str> = recorded.lines().take(2).collect();
    assert!(
        head[0] == format!("pid {}", ours.pid()) && head[1].starts_with("token "),
        "{recorded}"
    );
    std::fs::write(
        &record,
        format!("{}\n{}\n{}\n", head[0], head[1], sink.addr),
    )
    .expect("rewrite the record");
    let mbox = dir.path().join("in.mbox");
    helper(&["write-mbox", text(&mbox)]);
    let sink_addr = sink.addr.to_string();
    for extra in [&[][..], &["--smtp", sink_addr.as_str()][..]] {
        let mut args = vec!["import"];
        args.extend_from_slice(extra);
        args.push(text(&mbox));
        let line = mail_cli(&db, &args).one_error_line();
        assert!(line.contains("nothing was sent to it"), "{line}");
    }
    let lines = sink.lines();
    assert!(lines.iter().any(|l| l.starts_with("EHLO")), "{lines:?}");
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with("MAIL") || l.starts_with("RCPT")),
        "{lines:?}"
    );
    assert!(ours.list().is_empty());
}

/// A process that holds the store but takes no mail over SMTP (its record is
/// gone, as when a `mail serve` that stopped is followed by another command)
/// is named, and nothing is sent anywhere; a `mail serve` that stops removes
/// its record.
#[test]
fn import_waits_for_a_holder_that_is_no_server_and_serve_removes_its_record() {
    let dir = tempdir();
    let db = dir.path().join("mail.db");
    let mut ours = Catcher::builder().db(&db).start();
    let record = dir.path().join("mail.db-log/smtp");
    assert!(record.exists(), "mail serve records its SMTP addresses");
    std::fs::remove_file(&record).expect("remove the record");
    let mbox = dir.path().join("in.mbox");
    helper(&["write-mbox", text(&mbox)]);
    let line = mail_cli(&db, &["import", text(&mbox)]).one_error_line();
    assert!(
        line.contains(&format!("process {} (sokkel mail serve", ours.pid()))
            && line.ends_with("try again when it ends"),
        "{line}"
    );
    assert!(ours.list().is_empty());

    std::fs::write(&record, "pid 1\ntoken x\n127.0.0.1:9\n").expect("write a record");
    kit::process::sigterm(ours.pid());
    assert!(ours.wait_exit(std::time::Duration::from_secs(30)).success());
    assert!(!record.exists(), "mail serve left its SMTP record behind");
}

/// On PostgreSQL every process adds messages itself: an import while a node
/// serves the database needs no SMTP, and the node shows what came in.
#[test]
#[ignore = "interop: needs PostgreSQL's server programs"]
fn on_postgresql_import_goes_straight_into_the_database_while_a_node_serves_it() {
    let db = pg::fresh_database();
    let node = Catcher::builder().http().args(&["--db", &db]).start();
    let dir = tempdir();
    let (mbox, out) = (dir.path().join("in.mbox"), dir.path().join("out.mbox"));
    helper(&["write-mbox", text(&mbox)]);
    let imported = kit::sokkel([
        "mail",
        "import",
        "--db",
        &db,
        "--smtp",
        "127.0.0.1:9",
        text(&mbox),
    ])
    .run()
    .assert_success("import into PostgreSQL");
    assert_eq!(
        imported.stdout_text().trim(),
        "imported 6 messages from 1 file"
    );
    let listed = node.get_json("/api/v1/messages?limit=50");
    assert_eq!(listed["total"], 6, "{listed}");
    kit::sokkel([
        "mail",
        "export",
        "--db",
        &db,
        "--format",
        "mbox",
        text(&out),
    ])
    .run()
    .assert_success("export from PostgreSQL");
    assert_eq!(
        helper(&["compare-mbox", text(&mbox), text(&out)]).trim(),
        "6"
    );
}

/// `mail import <(zcat all.mbox.gz)` or `/dev/stdin`: a pipe is read once,
/// from its first byte, however long (the first 8 KiB were lost once).
#[test]
fn an_mbox_from_a_pipe_is_imported_whole() {
    let dir = tempdir();
    let db = dir.path().join("mail.db");
    let mut mbox = Vec::new();
    for n in 0..300 {
        mbox.extend_from_slice(
            format!(
                "From a@x.test Tue Dec  1 07:29:09 2026\nFrom: a@x.test\nTo: b@y.test\n\
                 Subject: piped {n}\n\nbody {n}\n\n"
            )
            .as_bytes(),
        );
    }
    assert!(mbox.len() > 3 * 8192);
    let out = kit::sokkel(["mail", "import", "--db", text(&db), "/dev/stdin"])
        .stdin(mbox)
        .run();
    expect_summary(out, "imported 300 messages from 1 file");
    let list = list_json(&db, 500);
    assert_eq!(list.len(), 300);
    assert_eq!(list.last().unwrap()["subject"], "piped 0", "{}", list[299]);
    assert_eq!(
        raw(&db, ids(&list)[299]),
        b"From: a@x.test\nTo: b@y.test\nSubject: piped 0\n\nbody 0\n"
    );
}

/// A symlinked directory (`self -> .`, a link back to a parent) is read once:
/// it once gave 16 copies of every message, and three such links never ended
/// (issue #18).
#[cfg(unix)]
#[test]
fn a_directory_linked_to_itself_is_imported_once() {
    let dir = tempdir();
    let mail = dir.path().join("mail");
    std::fs::create_dir_all(mail.join("sub")).expect("mkdir");
    std::fs::write(mail.join("a.eml"), EMLS[0].1).expect("write an .eml");
    std::os::unix::fs::symlink(".", mail.join("self")).expect("symlink");
    std::os::unix::fs::symlink(".", mail.join("same")).expect("symlink");
    std::os::unix::fs::symlink("..", mail.join("sub").join("back")).expect("symlink");
    let db = dir.path().join("mail.db");
    expect_summary(
        mail_cli(&db, &["import", text(&mail)]),
        "imported 1 message from 1 file",
    );
    assert_eq!(list_json(&db, 50).len(), 1);
}

/// `export --format mbox` writes a temporary file beside DEST and renames it
/// over DEST when done: an existing file is kept without --force, replaced
/// whole with it, and nothing else is left in the directory (issue #18: the
/// old file was truncated before the export began).
#[test]
fn an_mbox_export_replaces_a_file_whole_and_only_when_told() {
    let dir = tempdir();
    let (eml, db, out) = (
        dir.path().join("in").join("a.eml"),
        dir.path().join("mail.db"),
        dir.path().join("out").join("all.mbox"),
    );
    std::fs::create_dir_all(eml.parent().unwrap()).expect("mkdir");
    std::fs::create_dir_all(out.parent().unwrap()).expect("mkdir");
    std::fs::write(&eml, EMLS[1].1).expect("write an .eml");
    std::fs::write(&out, "old mbox\n").expect("write");
    expect_summary(
        mail_cli(&db, &["import", text(&eml)]),
        "imported 1 message from 1 file",
    );
    let refused = mail_cli(&db, &["export", "--format", "mbox", text(&out)]);
    assert_eq!(refused.code(), Some(1), "{}", refused.describe());
    assert!(
        refused.one_error_line().contains("exists; pass --force"),
        "{}",
        refused.describe()
    );
    assert_eq!(std::fs::read(&out).expect("the old file"), b"old mbox\n");
    expect_summary(
        mail_cli(&db, &["export", "--format", "mbox", "--force", text(&out)]),
        &format!("exported 1 message to {}", out.display()),
    );
    let written = std::fs::read(&out).expect("the new file");
    assert!(written.starts_with(b"From bounces@example.net "));
    assert!(written.ends_with(b"\nSubject: second\n\n.\nbare LF\n\n"));
    let names: Vec<_> = std::fs::read_dir(out.parent().unwrap())
        .expect("ls")
        .map(|e| e.expect("an entry").file_name())
        .collect();
    assert_eq!(names, ["all.mbox"]);
}

/// An `.eml` file is one message, whatever its first bytes: an exported
/// message that begins with "From " is not read as an mbox, and an empty
/// message comes back empty (issue #18).
#[test]
fn an_eml_file_is_one_message_even_when_it_looks_like_an_mbox_or_is_empty() {
    let dir = tempdir();
    let (input, db) = (dir.path().join("in"), dir.path().join("mail.db"));
    std::fs::create_dir(&input).expect("mkdir");
    let from_first: &[u8] =
        b"From someone on a line of its own\nFrom: a@x.test\nSubject: odd\n\nbody\n";
    std::fs::write(input.join("a.eml"), from_first).expect("write");
    std::fs::write(input.join("b.EML"), b"").expect("write");
    expect_summary(
        mail_cli(&db, &["import", text(&input)]),
        "imported 2 messages from 2 files",
    );
    let exported = dir.path().join("out");
    expect_summary(
        mail_cli(&db, &["export", "--format", "eml", text(&exported)]),
        &format!("exported 2 messages to {}", exported.display()),
    );
    let db2 = dir.path().join("again.db");
    expect_summary(
        mail_cli(&db2, &["import", text(&exported)]),
        "imported 2 messages from 2 files",
    );
    let mut raws: Vec<Vec<u8>> = ids(&list_json(&db2, 50))
        .into_iter()
        .map(|id| raw(&db2, id))
        .collect();
    raws.sort();
    assert_eq!(raws, [b"".to_vec(), from_first.to_vec()]);
}

/// Thunderbird writes "From - DATE": the envelope sender "-" (or any without
/// an @) is unknown, so it comes from the headers, as for MAILER-DAEMON, and
/// the time still from the From_ line (issue #18).
#[test]
fn a_thunderbird_mbox_takes_the_sender_from_the_headers() {
    let dir = tempdir();
    let (mbox, db) = (dir.path().join("Inbox"), dir.path().join("mail.db"));
    std::fs::write(
        &mbox,
        "From - Tue Dec  1 07:29:09 2026\nX-Mozilla-Status: 0001\n\
         Return-Path: <alice@example.com>\nFrom: Alice <alice@example.com>\n\
         To: bob@example.com\nSubject: from thunderbird\n\nhi\n\n\
         From root Tue Dec  1 07:30:00 2026\nFrom: carol@example.com\n\
         To: bob@example.com\nSubject: local\n\nhi\n",
    )
    .expect("write an mbox");
    expect_summary(
        mail_cli(&db, &["import", text(&mbox)]),
        "imported 2 messages from 1 file",
    );
    let list = list_json(&db, 50);
    let thunderbird = list.last().expect("messages");
    assert_eq!(
        thunderbird["mail_from"], "alice@example.com",
        "{thunderbird}"
    );
    assert_eq!(
        thunderbird["received"], "2026-12-01T07:29:09Z",
        "{thunderbird}"
    );
    assert_eq!(list[0]["mail_from"], "carol@example.com", "{}", list[0]);
}

/// What an mbox round trip changes, as README and --help say (issue #18): a
/// message without a final line break gets one, and nothing else.
#[test]
fn an_mbox_round_trip_adds_only_a_final_line_break_as_the_help_says() {
    let dir = tempdir();
    let (eml, db, mbox, db2) = (
        dir.path().join("a.eml"),
        dir.path().join("mail.db"),
        dir.path().join("all.mbox"),
        dir.path().join("again.db"),
    );
    let message: &[u8] = b"From: a@x.test\r\nSubject: s\r\n\r\nFrom here\r\n>From there\r\nlast";
    std::fs::write(&eml, message).expect("write an .eml");
    expect_summary(
        mail_cli(&db, &["import", text(&eml)]),
        "imported 1 message from 1 file",
    );
    mail_cli(&db, &["export", "--format", "mbox", text(&mbox)]).assert_success("export");
    expect_summary(
        mail_cli(&db2, &["import", text(&mbox)]),
        "imported 1 message from 1 file",
    );
    let list = list_json(&db2, 5);
    assert_eq!(raw(&db2, ids(&list)[0]), [message, b"\n"].concat());
    let help = kit::sokkel(["mail", "export", "--help"])
        .run()
        .assert_success("export --help")
        .stdout_text();
    assert!(help.contains("adds\na final line break"), "{help}");
}
