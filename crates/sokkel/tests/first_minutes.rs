//! The first ten minutes with sokkel (issue #18), through the binary: `mail list`
//! fits the terminal and says what it left out, `mail show` marks what it shows
//! read, errors say each cause once and never suggest the flag the user gave,
//! `mail delete` names the ids it could not find, `mail serve --db` does not make
//! directories the user did not ask for, and the help texts paste and tell the
//! truth.

mod kit;

use std::process::Command;

use kit::catcher::mail_cli;
use kit::process::{run, sokkel_command};
use kit::smtp::message;
use kit::{COMMAND_LIMIT, Catcher, Finished, python3, sokkel, tempdir};
use serde_json::Value;

/// `sokkel mail ARGS --db DB` with `COLUMNS` set to `columns`, or removed.
fn list_at(db: &std::path::Path, columns: Option<&str>, args: &[&str]) -> Finished {
    let mut command: Command = sokkel_command();
    command
        .args(["mail", "list"])
        .args(args)
        .arg("--db")
        .arg(db);
    match columns {
        Some(columns) => command.env("COLUMNS", columns),
        None => command.env_remove("COLUMNS"),
    };
    let out = run(command, b"", COMMAND_LIMIT);
    assert!(out.status.success(), "{}", out.describe());
    out
}

/// Terminal columns a line takes (the table is ASCII but for `…` and `★`).
fn columns(line: &str) -> usize {
    line.chars().count()
}

#[test]
fn mail_list_fits_the_terminal_cuts_subjects_not_ids_and_says_how_many_more() {
    let catcher = Catcher::start();
    let subject = format!("Quarterly report {}", "with a long subject ".repeat(2));
    let from = "someone.with.a.rather.long.name@sender.example.test";
    let mut ids = Vec::new();
    for n in 0..3 {
        let content = format!(
            "From: {from}\r\nTo: recipient.with.a.long.name@example.test\r\n\
             Subject: {subject}{n}\r\n\r\nbody {n}\r\n"
        );
        ids.push(catcher.deliver(
            from,
            &["recipient.with.a.long.name@example.test"],
            content.as_bytes(),
        ));
    }
    let newest = ids
        .iter()
        .rev()
        .take(2)
        .map(u64::to_string)
        .collect::<Vec<_>>();

    // 60 columns: every line fits, both rows start with their whole id.
    let narrow = list_at(&catcher.db, Some("60"), &["--limit", "2"]).stdout_text();
    let lines: Vec<&str> = narrow.lines().collect();
    assert_eq!(
        lines.len(),
        4,
        "header, two rows, the 'more' line:\n{narrow}"
    );
    for line in &lines {
        assert!(
            columns(line) <= 60,
            "{} columns: {line:?}\n{narrow}",
            columns(line)
        );
    }
    for (row, id) in lines[1..3].iter().zip(&newest) {
        assert_eq!(
            row.split_whitespace().next(),
            Some(format!("{id}*").as_str()),
            "{narrow}"
        );
        assert!(row.contains('…'), "the subject is cut, marked: {row:?}");
    }
    assert_eq!(
        lines[3],
        "1 more message not shown; --limit 3 lists them all"
    );

    // 200 columns: the whole subject and sender, on one line each.
    let wide = list_at(&catcher.db, Some("200"), &[]).stdout_text();
    let lines: Vec<&str> = wide.lines().collect();
    assert_eq!(
        lines.len(),
        4,
        "header and three rows, nothing more:\n{wide}"
    );
    for (line, n) in lines[1..].iter().zip([2, 1, 0]) {
        assert!(columns(line) <= 200, "{line:?}");
        assert!(
            line.contains(&format!("{subject}{n}")),
            "whole subject: {line:?}"
        );
        assert!(line.contains(from), "whole sender: {line:?}");
        assert!(!line.contains('…'), "{line:?}");
    }

    // Not a terminal and no COLUMNS: the widths `mail list` always had.
    let piped = list_at(&catcher.db, None, &["--limit", "2"]).stdout_text();
    let lines: Vec<&str> = piped.lines().collect();
    assert_eq!(
        lines[0],
        format!(
            "{:>2}   {:19}  {:28}  {:28}  {:30}  {:>9}",
            "ID", "RECEIVED (UTC)", "FROM", "TO", "SUBJECT", "SIZE"
        )
    );
    assert!(lines[1].contains("someone.with.a.rather.long.…"), "{piped}");
    assert_eq!(
        lines[3],
        "1 more message not shown; --limit 3 lists them all"
    );
}

/// Runs ARGV with stdout on a pseudo-terminal 70 columns wide and no `COLUMNS`;
/// prints what it wrote there, line ends as `\n`.
const ON_A_TERMINAL: &str = r#"
import fcntl, os, pty, struct, subprocess, sys, termios
master, slave = pty.openpty()
fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 70, 0, 0))
env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
child = subprocess.Popen(sys.argv[1:], stdout=slave, stdin=subprocess.DEVNULL, env=env)
os.close(slave)
out = b""
while True:
    try:
        chunk = os.read(master, 65536)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
sys.stdout.buffer.write(out.replace(b"\r\n", b"\n"))
sys.exit(child.wait())
"#;

#[test]
fn mail_list_fits_the_terminal_it_writes_to() {
    let catcher = Catcher::start();
    let subject = "A subject much longer than what a 70 column terminal has room for";
    catcher.send(&message(subject, "body"));
    let db = catcher.db.display().to_string();
    let out = python3(
        ON_A_TERMINAL,
        &[kit::process::SOKKEL, "mail", "list", "--db", &db],
    )
    .run()
    .assert_success("mail list on a terminal");
    let text = out.stdout_text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{}", out.describe());
    for line in &lines {
        assert!(columns(line) <= 70, "{} columns: {line:?}", columns(line));
    }
    assert!(lines[1].contains("A subject"), "{text}");
    assert!(!lines[1].contains(subject), "cut: {text}");
}

#[test]
fn mail_show_marks_the_message_read_unless_asked_not_to() {
    let catcher = Catcher::start();
    let id = catcher.send(&message("read me", "hello")).to_string();
    let read = |catcher: &Catcher| catcher.only_message()["read"].clone();
    assert_eq!(read(&catcher), Value::Bool(false));

    // The bytes and the envelope are for scripts; --keep-unread says so.
    for args in [&["--raw"][..], &["--envelope"], &["--keep-unread"]] {
        let mut show = vec!["show", id.as_str()];
        show.extend(args);
        catcher.cli(&show).assert_success("mail show");
        assert_eq!(read(&catcher), Value::Bool(false), "after show {args:?}");
    }

    let shown = catcher.cli(&["show", &id]).assert_success("mail show");
    assert!(
        shown.stdout_text().contains("read me"),
        "{}",
        shown.describe()
    );
    assert_eq!(read(&catcher), Value::Bool(true));
    let table = catcher
        .cli(&["list"])
        .assert_success("mail list")
        .stdout_text();
    assert!(
        table
            .lines()
            .nth(1)
            .is_some_and(|row| row.starts_with(&format!("{id:>2}  "))),
        "no unread star any more:\n{table}"
    );
}

#[test]
fn a_store_that_is_not_a_database_is_said_once() {
    let dir = tempdir();
    let db = dir.path().join("mail.db");
    std::fs::write(
        &db,
        "these are not the bytes of a SQLite database, ".repeat(40),
    )
    .expect("write the file");
    let list = mail_cli(&db, &["list"]);
    let line = list.one_error_line();
    assert_eq!(
        line.matches("not a database").count(),
        1,
        "the cause once: {line}"
    );
    assert!(line.contains(&db.display().to_string()), "{line}");

    let serve = sokkel([
        "mail",
        "serve",
        "--smtp",
        "127.0.0.1:0",
        "--no-http",
        "--db",
    ])
    .arg(&db)
    .run();
    let line = serve.one_error_line();
    assert_eq!(line.matches("not a database").count(), 1, "{line}");
}

#[test]
fn mail_delete_deletes_what_exists_and_names_the_ids_that_do_not() {
    let catcher = Catcher::start();
    let first = catcher.send(&message("first", "one"));
    let second = catcher.send(&message("second", "two"));

    let out = catcher.cli(&["delete", &first.to_string(), "998", "999"]);
    out.expect_code(1);
    assert_eq!(
        out.stdout_text(),
        "deleted 1 message\n",
        "{}",
        out.describe()
    );
    assert_eq!(
        out.one_error_line(),
        "sokkel: messages 998, 999 are not in the store; `sokkel mail list` shows the ids"
    );
    let left: Vec<u64> = catcher
        .list()
        .iter()
        .filter_map(|m| m["id"].as_u64())
        .collect();
    assert_eq!(left, [second]);

    // None of them there: no "deleted 0 messages", only what is wrong.
    let out = catcher.cli(&["delete", &first.to_string()]);
    out.expect_code(1);
    assert_eq!(out.stdout_text(), "", "{}", out.describe());
    assert_eq!(
        out.one_error_line(),
        format!("sokkel: message {first} is not in the store; `sokkel mail list` shows the ids")
    );
    assert_eq!(catcher.list().len(), 1);
}

#[test]
fn a_db_the_user_names_is_never_in_a_directory_sokkel_made() {
    let dir = tempdir();
    let missing = dir.path().join("no").join("such");
    let db = missing.join("mail.db");
    let serve = sokkel([
        "mail",
        "serve",
        "--smtp",
        "127.0.0.1:0",
        "--no-http",
        "--no-pop3",
        "--no-imap",
        "--db",
    ])
    .arg(&db)
    .run();
    serve.expect_code(1);
    let line = serve.one_error_line();
    assert!(
        line.contains(&format!(
            "the directory {} does not exist",
            missing.display()
        )),
        "{line}"
    );
    assert!(!dir.path().join("no").exists(), "it made the directory");

    // The reading commands: no store there, and no advice to pass the --db given.
    let list = mail_cli(&db, &["list"]);
    list.expect_code(1);
    let line = list.one_error_line();
    assert!(line.contains("no mail store at"), "{line}");
    assert!(!line.contains("pass --db"), "{line}");
}

#[test]
fn help_texts_show_the_real_defaults_and_paste_at_80_columns() {
    let help = |args: &[&str], columns: &str| {
        sokkel(args.iter().chain(&["--help"]))
            .env("COLUMNS", columns)
            .run()
            .assert_success("--help")
            .stdout_text()
    };
    // The subject shown as the default is the one sent.
    let send = help(&["mail", "send"], "200");
    assert!(
        send.contains("[default: \"Test message from sokkel\"]"),
        "{send}"
    );
    let dry = sokkel([
        "mail",
        "send",
        "--to",
        "you@example.test",
        "--body",
        "hi",
        "--dry-run",
    ])
    .run()
    .assert_success("mail send --dry-run")
    .stdout_text();
    assert!(dry.contains("Subject: Test message from sokkel"), "{dry}");

    // Examples are not wrapped at 80 columns: the same as on a wide terminal.
    for command in [
        &[][..],
        &["mail", "serve"],
        &["mail", "send"],
        &["mail", "list"],
        &["mail", "show"],
        &["mail", "delete"],
        &["mail", "tag"],
        &["mail", "release"],
        &["mail", "compose"],
        &["echo", "serve"],
        &["echo", "client"],
        &["echo", "bench"],
        &["sendmail"],
    ] {
        let examples = |text: String| {
            let start = text
                .find("Examples:")
                .unwrap_or_else(|| panic!("no examples: {text}"));
            text[start..].to_owned()
        };
        assert_eq!(
            examples(help(command, "80")),
            examples(help(command, "1000")),
            "`sokkel {} --help` wraps its examples at 80 columns",
            command.join(" ")
        );
    }

    // The Python example pastes into Python as it is printed.
    let serve = help(&["mail", "serve"], "80");
    let python: Vec<&str> = serve
        .lines()
        .skip_while(|l| !l.starts_with("Then send to it"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    assert!(python.iter().any(|l| l.contains("sendmail(")), "{serve}");
    python3(
        "import ast, sys; ast.parse(sys.argv[1])",
        &[&python.join("\n")],
    )
    .run()
    .assert_success("the Python example parses");

    // The exit codes: one a line, the meanings in one column.
    let table: Vec<&str> = send
        .lines()
        .skip_while(|l| *l != "Exit codes:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(table.len(), 13, "{send}");
    for row in &table {
        let (code, meaning) = row.split_at(6);
        assert!(
            code.trim().parse::<u8>().is_ok() && code.ends_with("  "),
            "{row:?}"
        );
        assert!(
            !meaning.starts_with(' ') && !meaning.contains("  "),
            "{row:?}"
        );
    }
}
