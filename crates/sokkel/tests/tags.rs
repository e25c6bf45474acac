//! Tags through the real binary: mail sent over SMTP to `sokkel mail serve` is
//! tagged by its X-Tags header, its plus addresses and `--tag` rules (or not,
//! with `--tags-disable`), and `sokkel mail tag | list --tag | show` change and
//! show the tags; mistakes are one clear line.

mod kit;

use std::time::Duration;

use kit::{Catcher, sokkel, tempdir};
use serde_json::Value;

/// How long the server may take to tag what it has stored.
const DEADLINE: Duration = Duration::from_secs(20);

/// `sokkel mail serve --no-pop3 EXTRA` (and what the kit adds).
fn serve(extra: &[&str]) -> Catcher {
    Catcher::builder().arg("--no-pop3").args(extra).start()
}

/// Delivers `message` (lines ending in `\n`) from sender@example.com to `rcpt`.
fn send(catcher: &Catcher, rcpt: &str, message: &str) {
    let content = format!("{}\r\n", message.replace('\n', "\r\n"));
    catcher.deliver("sender@example.com", &[rcpt], content.as_bytes());
}

/// `(id, tags)` of each message in `mail list --json` output.
fn tagged(rows: &[Value]) -> Vec<(u64, Vec<String>)> {
    rows.iter()
        .map(|row| {
            let tags = row["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().to_string())
                .collect();
            (row["id"].as_u64().unwrap(), tags)
        })
        .collect()
}

/// `(id, tags)` of the newest messages, from `mail list --json EXTRA`.
fn listed(catcher: &Catcher, extra: &[&str]) -> Vec<(u64, Vec<String>)> {
    let mut args = vec!["list", "--json"];
    args.extend(extra);
    let output = catcher.cli(&args).assert_success("mail list --json");
    let rows: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    tagged(&rows)
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(ToString::to_string).collect()
}

#[test]
fn mail_is_tagged_on_arrival_and_by_the_cli() {
    let server = serve(&["--tag", "invoices=subject:invoice"]);
    send(
        &server,
        "morty+Signup@example.com",
        "From: rick@example.com\nTo: morty+Signup@example.com\nX-Tags: news, urgent!\nSubject: hello\n\nhi",
    );
    send(
        &server,
        "beth@example.com",
        "From: rick@example.com\nTo: beth@example.com\nSubject: Your invoice\n\npay",
    );
    // Header and address tags come with the message; the rule's once the
    // server has indexed it.
    let want = vec![
        (2, strings(&["invoices"])),
        (1, strings(&["news", "Signup", "urgent"])),
    ];
    server.list_until(DEADLINE, "tagged", |rows| tagged(rows) == want);

    let output = server
        .cli(&["tag", "1", "2", "--add", "to do", "--remove", "news"])
        .assert_success("mail tag");
    assert_eq!(
        output.stdout_text(),
        "1: Signup, to do, urgent\n2: invoices, to do\n"
    );
    assert_eq!(listed(&server, &["--tag", "TO DO"]).len(), 2);
    assert_eq!(
        listed(&server, &["--tag", "signup"]),
        [(1, strings(&["Signup", "to do", "urgent"]))]
    );
    let none = server.cli(&["list", "--tag", "nothing"]);
    assert!(
        none.stdout_text()
            .starts_with("no messages tagged \"nothing\""),
        "{}",
        none.describe()
    );

    let table = server.cli(&["list"]).stdout_text();
    assert!(table.contains("  [invoices, to do]\n"), "{table}");
    let show = server.cli(&["show", "1"]).stdout_text();
    assert!(
        show.contains("\nTags:     Signup, to do, urgent\n"),
        "{show}"
    );

    // A bad name is one line saying what is wrong, and changes nothing.
    let bad = server.cli(&["tag", "1", "--add", "a;b"]);
    bad.expect_code(1);
    let line = &bad.stderr;
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(
        line.contains("';'") && line.contains("letters, digits"),
        "{line}"
    );
    let missing = server.cli(&["tag", "99", "--add", "x"]);
    missing.expect_code(1);
    assert!(
        missing.stderr.contains("no message 99"),
        "{}",
        missing.describe()
    );
    drop(server);
}

#[test]
fn tags_disable_turns_header_and_plus_tags_off() {
    let server = serve(&["--tags-disable", "plus-addresses,x-tags"]);
    send(
        &server,
        "morty+signup@example.com",
        "From: rick@example.com\nTo: morty+signup@example.com\nX-Tags: news\nSubject: hello\n\nhi",
    );
    assert_eq!(listed(&server, &[]), [(1, Vec::new())]);
    drop(server);
}

#[test]
fn bad_tag_flags_are_one_clear_line() {
    let dir = tempdir();
    let db = dir.path().join("mail.db");
    for (flag, value, wanted) in [
        ("--tag", "no-equals-sign", "NAME=SEARCH QUERY"),
        ("--tag", "a;b=subject:x", "';'"),
        ("--tag", "x=before:notadate", "before:"),
        ("--tags-disable", "smileys", "plus-addresses, x-tags"),
    ] {
        let output = sokkel(["mail", "serve", "--no-http", "--no-pop3"])
            .args(["--smtp", "127.0.0.1:0", "--db"])
            .arg(&db)
            .args([flag, value])
            .run();
        let text = &output.stderr;
        assert_eq!(output.code(), Some(2), "{flag} {value}: {text}");
        // clap's usage error: the first line names the flag, the value and why.
        let first = text.lines().next().unwrap();
        assert!(
            first.starts_with("error: invalid value") && first.contains(flag),
            "{text}"
        );
        assert!(text.contains(wanted), "{flag} {value}: {text}");
    }
}
