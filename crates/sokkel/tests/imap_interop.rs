//! IMAP on `sokkel mail serve` against the clients people read mail with (issue #13),
//! each driven headless: curl's `imap://`, Python's imaplib, imapclient, imap-tools and
//! aioimaplib, the npm package imapflow, mbsync, offlineimap3, fetchmail (with
//! `--idle`), s-nail, mutt and neomutt. Each checks what its user relies on, and that
//! reads, stars, tags and deletes made through IMAP show in the web API, and the
//! reverse. The Python and Node scripts live in `tests/imap_clients/`.
//!
//! `.ci/run` installs every client and runs `cargo test -- --ignored`; a missing one
//! fails its test saying what to install.

mod kit;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;

use kit::http;
use kit::peers::Tmux;
use kit::process::{ChildGuard, Lines, require_program, spawn_collected};
use kit::smtp::{Smtp, show};
use kit::{Catcher, Finished, PROMPT, program, tempdir};

/// The one login every test catcher has.
const USER: &str = "morty";
const PASSWORD: &str = "secret";

/// How long one client run may take (offlineimap and the Python clients start slowly).
const CLIENT_LIMIT: Duration = Duration::from_secs(60);

/// A catcher serving IMAP, SMTP and the web API on free loopback ports, whose only
/// login is morty / secret, and a scratch directory for the client's files.
struct Server {
    catcher: Catcher,
    imap: SocketAddr,
    dir: TempDir,
}

impl Server {
    fn start() -> Server {
        Server::start_with(&[])
    }

    /// With more flags for `sokkel mail serve`.
    fn start_with(args: &[&str]) -> Server {
        let catcher = Catcher::builder()
            .http()
            .users(&format!("{USER}:{PASSWORD}\n"))
            .args(args)
            .start();
        let imap = catcher.imap_addr();
        Server {
            catcher,
            imap,
            dir: tempdir(),
        }
    }

    fn imap_port(&self) -> String {
        self.imap.port().to_string()
    }

    /// The IMAP, SMTP and web ports, as the client scripts take them.
    fn ports(&self) -> [String; 3] {
        [
            self.imap_port(),
            self.catcher.addr().port().to_string(),
            self.catcher.http().port().to_string(),
        ]
    }

    /// Delivers `content` over SMTP to morty@example.test; the store id.
    fn deliver(&self, content: &[u8]) -> u64 {
        let mut smtp = Smtp::ehlo(self.catcher.addr());
        let id = smtp.deliver("rick@example.test", &["morty@example.test"], content);
        smtp.quit();
        id
    }

    /// Delivers a small message with this subject; the store id.
    fn send(&self, subject: &str) -> u64 {
        self.deliver(&plain(subject))
    }

    /// Every message as the web API lists it.
    fn messages(&self) -> Vec<Value> {
        let list = http::get_json(self.catcher.http(), "/api/v1/messages?limit=1000");
        list["messages"]
            .as_array()
            .cloned()
            .unwrap_or_else(|| panic!("no messages array in {list}"))
    }

    /// The API's summary of message `id`, if it still lists it.
    fn summary(&self, id: u64) -> Option<Value> {
        self.messages()
            .into_iter()
            .find(|m| m["ID"].as_str() == Some(id.to_string().as_str()))
    }

    /// The exact bytes of message `id`, from the web API.
    fn raw(&self, id: u64) -> Vec<u8> {
        let response = http::get(self.catcher.http(), &format!("/api/v1/message/{id}/raw"));
        assert_eq!(response.status, 200, "raw of {id}: {}", response.text());
        response.body
    }

    /// An API call that must answer 200.
    #[track_caller]
    fn api(&self, method: &str, path: &str, body: &Value) {
        let response = http::request(self.catcher.http(), method, path, Some(body));
        assert_eq!(
            response.status,
            200,
            "{method} {path} {body}: {}",
            response.text()
        );
    }

    /// Polls the API until `holds` is true of message `id`'s summary (`None` once it
    /// is deleted); panics with the last summary after [`PROMPT`].
    #[track_caller]
    fn wait_for(&self, id: u64, what: &str, holds: impl Fn(Option<&Value>) -> bool) {
        let deadline = Instant::now() + PROMPT;
        loop {
            let summary = self.summary(id);
            if holds(summary.as_ref()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the web API does not show message {id} {what} within {PROMPT:?}: {summary:#?}"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// A file in the scratch directory with `text`, private to its owner (fetchmail
    /// and offlineimap refuse configurations others can read).
    fn write_private(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write a client configuration");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    /// A directory in the scratch directory.
    fn mkdir(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::create_dir_all(&path).expect("create a directory");
        path
    }
}

fn is_read(m: Option<&Value>) -> bool {
    m.is_some_and(|m| m["Read"] == true)
}

fn is_starred(m: Option<&Value>) -> bool {
    m.is_some_and(|m| m["Flagged"] == true)
}

fn is_gone(m: Option<&Value>) -> bool {
    m.is_none()
}

/// A small plain message from Rick with this subject.
fn plain(subject: &str) -> Vec<u8> {
    format!(
        "From: Rick <rick@example.test>\r\nTo: <morty@example.test>\r\nSubject: {subject}\r\n\
         Date: Mon, 30 Nov 2026 12:00:00 +0000\r\n\r\nbody of {subject}\r\n"
    )
    .into_bytes()
}

/// A message whose bytes a sloppy client would change: a multipart with UTF-8 text,
/// a line that starts with a dot, trailing spaces, a base64 attachment.
fn tricky(subject: &str) -> Vec<u8> {
    format!(
        "From: =?utf-8?q?R=C3=ADck?= <rick@example.test>\r\nTo: <morty@example.test>\r\n\
         Subject: {subject}\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
         preamble\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\r\nblåbærsyltetøy   \r\n.a dot line\r\n\r\n\
         --b1\r\nContent-Type: application/octet-stream; name=\"x.bin\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\nAAECAwQFBgcICQ==\r\n--b1--\r\n"
    )
    .into_bytes()
}

/// `bytes` with every CRLF turned into LF, as Maildir clients store mail.
fn lf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    for (i, &b) in bytes.iter().enumerate() {
        if !(b == b'\r' && bytes.get(i + 1) == Some(&b'\n')) {
            out.push(b);
        }
    }
    out
}

/// The files of a maildir folder (`new` and `cur`), by file name.
fn maildir(folder: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for sub in ["new", "cur"] {
        let Ok(entries) = std::fs::read_dir(folder.join(sub)) else {
            continue;
        };
        for entry in entries {
            let entry = entry.expect("a maildir entry");
            let name = entry.file_name().to_string_lossy().into_owned();
            files.push((
                name,
                std::fs::read(entry.path()).expect("read a maildir file"),
            ));
        }
    }
    files.sort();
    files
}

/// The Maildir flags of a file name (`...:2,FS` → `FS`).
fn maildir_flags(name: &str) -> &str {
    name.rsplit_once(":2,").map_or("", |(_, flags)| flags)
}

/// The maildir file whose content is `want` once `clean` is applied to it; panics,
/// showing every file, if there is none.
#[track_caller]
fn find_file<'a>(
    files: &'a [(String, Vec<u8>)],
    want: &[u8],
    clean: impl Fn(&[u8]) -> Vec<u8>,
) -> &'a str {
    files
        .iter()
        .find(|(_, content)| clean(content) == want)
        .map(|(name, _)| name.as_str())
        .unwrap_or_else(|| {
            panic!(
                "no maildir file holds exactly:\n{}\nfiles:\n{}",
                show(want),
                files
                    .iter()
                    .map(|(name, content)| format!("{name}:\n{}", show(content)))
                    .collect::<Vec<_>>()
                    .join("\n----\n")
            )
        })
}

// ---------------------------------------------------------------------------------------
// curl

/// `curl imap://127.0.0.1:PORT/PATH` as morty with `extra` arguments.
fn curl(server: &Server, path: &str, extra: &[&str]) -> Finished {
    curl_url(
        &format!("imap://127.0.0.1:{}/{path}", server.imap_port()),
        extra,
    )
}

fn curl_url(url: &str, extra: &[&str]) -> Finished {
    let curl = require_program("curl", "curl");
    program(curl, ["-sS", "--max-time", "20", "-u", "morty:secret"])
        .args(extra)
        .arg(url)
        .run()
        .assert_success("curl")
}

#[test]
#[ignore = "interop: needs curl"]
fn curl_lists_fetches_by_uid_searches_stars_and_deletes() {
    let server = Server::start();
    let first = server.deliver(&tricky("curl one"));
    let second = server.send("curl two");

    let list = curl(&server, "", &[]).stdout_text();
    for folder in ["INBOX", "Trash", "Sent"] {
        assert!(
            list.lines()
                .any(|l| l.starts_with("* LIST") && l.trim_end_matches('"').ends_with(folder)),
            "LIST shows {folder}:\n{list}"
        );
    }
    let unseen = curl(&server, "INBOX?UNSEEN", &[]).stdout_text();
    assert_eq!(unseen.trim_end(), "* SEARCH 1 2", "both unseen");

    // UIDs in the INBOX are the store's IDs.
    let body = curl(&server, &format!("INBOX;UID={first}"), &[]).stdout;
    assert_eq!(
        show(&body),
        show(&server.raw(first)),
        "UID FETCH BODY[] gives the stored bytes"
    );
    server.wait_for(first, "read after curl fetched it", is_read);
    let unseen = curl(&server, "INBOX?UNSEEN", &[]).stdout_text();
    assert_eq!(unseen.trim_end(), "* SEARCH 2", "only the second is unseen");

    curl(
        &server,
        "INBOX",
        &["-X", &format!("UID STORE {second} +FLAGS (\\Flagged)")],
    );
    server.wait_for(second, "starred", is_starred);
    assert!(!is_read(server.summary(second).as_ref()), "still unread");

    curl(
        &server,
        "INBOX",
        &["-X", &format!("UID STORE {first} +FLAGS (\\Deleted)")],
    );
    assert!(
        server.summary(first).is_some(),
        "\\Deleted alone deletes nothing"
    );
    curl(&server, "INBOX", &["-X", "EXPUNGE"]);
    server.wait_for(first, "deleted after EXPUNGE", is_gone);
}

#[test]
#[ignore = "interop: needs curl"]
fn curl_reads_over_starttls_and_imaps() {
    let server = Server::start_with(&["--tls-self-signed", "--imaps", "127.0.0.1:0"]);
    let id = server.send("curl over tls");
    // -k: the certificate is self-signed; --ssl-reqd: STARTTLS or fail.
    let body = curl(&server, &format!("INBOX;UID={id}"), &["-k", "--ssl-reqd"]).stdout;
    assert_eq!(show(&body), show(&server.raw(id)), "over STARTTLS");
    let imaps = server.catcher.imaps[0];
    let list = curl_url(&format!("imaps://127.0.0.1:{}/", imaps.port()), &["-k"]);
    assert!(
        list.stdout_text().contains("INBOX"),
        "LIST over IMAPS: {}",
        list.describe()
    );
    server.wait_for(id, "read after the fetch over TLS", is_read);
}

// ---------------------------------------------------------------------------------------
// The Python and Node clients: scripts that print `ok`

fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/imap_clients")
}

/// Panics with what to install unless Python can import `module` (PyPI `package`).
#[track_caller]
fn require_python_module(module: &str, package: &str) {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|out| out.status.success());
    assert!(
        ok,
        "interop peer missing: Python cannot import {module}. Install it with \
         `python3 -m pip install {package}` (.ci/run installs it)."
    );
}

/// Runs `tests/imap_clients/SCRIPT` against a fresh server; it must print `ok`.
#[track_caller]
fn run_script(interpreter: PathBuf, script: &Path) {
    let server = Server::start();
    let done = program(interpreter, [script])
        .args(server.ports())
        .current_dir(script.parent().expect("a script's directory"))
        .timeout(CLIENT_LIMIT)
        .run();
    assert!(
        done.status.success() && done.stdout_text().trim_end().ends_with("ok"),
        "{}\nserver stderr:\n{}",
        done.describe(),
        server.catcher.stderr.text()
    );
}

fn python_script(module: &str, package: &str, script: &str) {
    require_python_module(module, package);
    run_script(PathBuf::from("python3"), &scripts().join(script));
}

#[test]
#[ignore = "interop: needs python3"]
fn imaplib_searches_fetches_flags_tags_expunges_and_idles() {
    python_script("imaplib", "(the standard library)", "imaplib_flow.py");
}

#[test]
#[ignore = "interop: needs python3"]
fn web_api_changes_reach_an_imap_session() {
    python_script("imaplib", "(the standard library)", "api_to_imap.py");
}

#[test]
#[ignore = "interop: needs the PyPI package imapclient"]
fn imapclient_fetches_flags_manages_folders_moves_and_idles() {
    python_script("imapclient", "imapclient", "imapclient_flow.py");
}

#[test]
#[ignore = "interop: needs the PyPI package imap-tools"]
fn imap_tools_fetches_flags_moves_to_trash_and_appends() {
    python_script("imap_tools", "imap-tools", "imap_tools_flow.py");
}

#[test]
#[ignore = "interop: needs the PyPI package aioimaplib"]
fn aioimaplib_searches_stores_and_gets_a_push_while_idling() {
    python_script("aioimaplib", "aioimaplib", "aioimaplib_flow.py");
}

#[test]
#[ignore = "interop: needs node and `npm ci` in tests/imap_clients/imapflow"]
fn imapflow_fetches_flags_moves_and_idles() {
    let node = require_program("node", "nodejs");
    let folder = scripts().join("imapflow");
    assert!(
        folder.join("node_modules/imapflow").is_dir(),
        "interop peer missing: npm package `imapflow`. Run `npm ci` in {} (.ci/run does it)",
        folder.display()
    );
    run_script(node, &folder.join("imapflow.mjs"));
}

// ---------------------------------------------------------------------------------------
// mbsync and offlineimap: pulling into a maildir

/// mbsync's configuration: the INBOX and the tag folder `work` both ways into
/// `near/` (flags too), clear text on loopback.
fn mbsync_rc(server: &Server, near: &Path) -> PathBuf {
    server.write_private(
        "mbsyncrc",
        &format!(
            "IMAPAccount sokkel\nHost 127.0.0.1\nPort {port}\nUser {USER}\nPass {PASSWORD}\n\
             SSLType None\nAuthMechs LOGIN\n\n\
             IMAPStore far\nAccount sokkel\n\n\
             MaildirStore near\nPath {near}/\nInbox {near}/INBOX\nSubFolders Verbatim\n\n\
             Channel pull\nFar :far:\nNear :near:\nPatterns INBOX work\nCreate Near\n\
             Sync All\nExpunge Both\nSyncState *\n",
            port = server.imap_port(),
            near = near.display()
        ),
    )
}

fn mbsync(server: &Server, rc: &Path) -> Finished {
    let mbsync = require_program("mbsync", "isync");
    program(mbsync, ["-c".as_ref(), rc.as_os_str(), "-a".as_ref()])
        .env("HOME", server.dir.path())
        .timeout(CLIENT_LIMIT)
        .run()
        .assert_success("mbsync")
}

/// A message as mbsync stores it: LF line ends, and no `X-TUID` line (mbsync's own
/// header, which it adds to every message it copies).
fn without_x_tuid(stored: &[u8]) -> Vec<u8> {
    let text = show(stored);
    let kept: String = text
        .split_inclusive('\n')
        .filter(|line| !line.starts_with("X-TUID: "))
        .collect();
    kept.into_bytes()
}

#[test]
#[ignore = "interop: needs mbsync (isync)"]
fn mbsync_pulls_every_byte_then_only_new_mail_and_syncs_flags_and_deletes() {
    let server = Server::start();
    let read = server.deliver(&tricky("mbsync read"));
    let starred = server.send("mbsync starred");
    let tagged = server.send("mbsync tagged");
    let ids = |ids: &[u64]| ids.iter().map(|id| id.to_string()).collect::<Vec<_>>();
    server.api(
        "PUT",
        "/api/v1/messages",
        &json!({"IDs": ids(&[read]), "Read": true}),
    );
    server.api(
        "PUT",
        "/api/v1/messages",
        &json!({"IDs": ids(&[starred]), "Flagged": true, "Read": false}),
    );
    server.api(
        "PUT",
        "/api/v1/tags",
        &json!({"IDs": ids(&[tagged]), "Tags": ["work"]}),
    );
    let near = server.mkdir("near");
    let rc = mbsync_rc(&server, &near);
    mbsync(&server, &rc);

    let inbox = maildir(&near.join("INBOX"));
    assert_eq!(inbox.len(), 3, "three messages pulled: {inbox:?}");
    let flags = |id: u64| {
        let name = find_file(&inbox, &lf(&server.raw(id)), without_x_tuid);
        maildir_flags(name).to_owned()
    };
    assert_eq!(flags(read), "S", "read in the API is seen in the maildir");
    assert_eq!(
        flags(starred),
        "F",
        "starred in the API is flagged in the maildir"
    );
    assert_eq!(flags(tagged), "", "neither read nor starred");
    let work = maildir(&near.join("work"));
    assert_eq!(
        work.len(),
        1,
        "the tag folder holds the tagged message: {work:?}"
    );
    find_file(&work, &lf(&server.raw(tagged)), without_x_tuid);

    // Mark the starred one read on the near side, as a mail reader on the maildir would.
    let starred_name = find_file(&inbox, &lf(&server.raw(starred)), without_x_tuid).to_owned();
    let starred_path = ["new", "cur"]
        .iter()
        .map(|sub| near.join("INBOX").join(sub).join(&starred_name))
        .find(|p| p.is_file())
        .expect("the starred message's file");
    let base = starred_name.rsplit_once(":2,").expect("a maildir name").0;
    let renamed = near.join("INBOX/cur").join(format!("{base}:2,FS"));
    std::fs::rename(&starred_path, &renamed).expect("mark the maildir file seen");
    let before: BTreeSet<String> = maildir(&near.join("INBOX"))
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let new = server.send("mbsync new");
    mbsync(&server, &rc);

    let after = maildir(&near.join("INBOX"));
    let names: BTreeSet<String> = after.iter().map(|(name, _)| name.clone()).collect();
    assert!(
        names.is_superset(&before) && names.len() == before.len() + 1,
        "the second run pulled only the new message: before {before:?}, after {names:?}"
    );
    find_file(&after, &lf(&server.raw(new)), without_x_tuid);
    server.wait_for(
        starred,
        "read after mbsync pushed the maildir's S flag",
        |m| is_read(m) && is_starred(m),
    );

    // Delete on the near side, as a mail reader on the maildir would.
    let read_name = find_file(&after, &lf(&server.raw(read)), without_x_tuid);
    for sub in ["new", "cur"] {
        let _ = std::fs::remove_file(near.join("INBOX").join(sub).join(read_name));
    }
    mbsync(&server, &rc);
    server.wait_for(read, "deleted after mbsync expunged it", is_gone);
}

#[test]
#[ignore = "interop: needs offlineimap3"]
fn offlineimap_pulls_the_inbox_into_a_maildir() {
    let offlineimap = require_program("offlineimap", "offlineimap3");
    let server = Server::start();
    let read = server.deliver(&tricky("offlineimap read"));
    let unread = server.send("offlineimap unread");
    server.api(
        "PUT",
        "/api/v1/messages",
        &json!({"IDs": [read.to_string()], "Read": true}),
    );
    let near = server.mkdir("near");
    let rc = server.write_private(
        "offlineimaprc",
        &format!(
            "[general]\naccounts = sokkel\nmetadata = {meta}\n\n\
             [Account sokkel]\nlocalrepository = near\nremoterepository = far\n\n\
             [Repository near]\ntype = Maildir\nlocalfolders = {near}\n\n\
             [Repository far]\ntype = IMAP\nremotehost = 127.0.0.1\nremoteport = {port}\n\
             remoteuser = {USER}\nremotepass = {PASSWORD}\nssl = no\nstarttls = no\n\
             folderfilter = lambda folder: folder == 'INBOX'\n",
            meta = server.dir.path().join("meta").display(),
            near = near.display(),
            port = server.imap_port()
        ),
    );
    let done = program(
        offlineimap,
        [
            "-c".as_ref(),
            rc.as_os_str(),
            "-o".as_ref(),
            "-u".as_ref(),
            "basic".as_ref(),
        ],
    )
    .env("HOME", server.dir.path())
    .timeout(CLIENT_LIMIT)
    .run()
    .assert_success("offlineimap");
    // offlineimap exits 0 even when a folder failed; it says so instead.
    let said = format!("{}{}", done.stdout_text(), done.stderr);
    assert!(!said.contains("ERROR"), "{}", done.describe());

    let inbox = maildir(&near.join("INBOX"));
    assert_eq!(inbox.len(), 2, "{}", done.describe());
    let read_name = find_file(&inbox, &lf(&server.raw(read)), <[u8]>::to_vec);
    assert_eq!(maildir_flags(read_name), "S", "read in the API is seen");
    let unread_name = find_file(&inbox, &lf(&server.raw(unread)), <[u8]>::to_vec);
    assert_eq!(maildir_flags(unread_name), "", "unread stays unseen");
    assert!(
        !is_read(server.summary(unread).as_ref()),
        "pulling read nothing"
    );
}

// ---------------------------------------------------------------------------------------
// fetchmail

/// An MDA for fetchmail that writes each message to a new file in `into`.
fn write_mda(server: &Server, into: &Path) -> PathBuf {
    let script = server.dir.path().join("deliver.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nexec cat > \"$(mktemp '{}/msg.XXXXXX')\"\n",
            into.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).unwrap();
    script
}

/// A fetchmailrc polling the server over IMAP with every message delivered to the
/// MDA; `no rewrite no stripcr` keeps the bytes as the server sent them. `keep`
/// leaves the messages on the server; without it fetchmail deletes them.
fn fetchmail_rc(server: &Server, into: &Path, keep: bool) -> PathBuf {
    let mda = write_mda(server, into);
    server.write_private(
        "fetchmailrc",
        &format!(
            "set no bouncemail\n\
             poll 127.0.0.1 with protocol IMAP port {} no envelope\n\
             \x20 user \"{USER}\" there with password \"{PASSWORD}\"\n\
             \x20 options no rewrite no stripcr sslproto '' fetchall{}\n\
             \x20 mda \"{}\"\n",
            server.imap_port(),
            if keep { " keep" } else { "" },
            mda.display()
        ),
    )
}

fn fetchmail_command(server: &Server, rc: &Path) -> Command {
    let fetchmail = require_program("fetchmail", "fetchmail");
    let mut command = Command::new(fetchmail);
    command
        .env("HOME", server.dir.path())
        .env("FETCHMAILHOME", server.dir.path())
        .arg("-f")
        .arg(rc)
        .arg("--pidfile")
        .arg(server.dir.path().join("fetchmail.pid"))
        .args(["--nosyslog", "-v"]);
    command
}

/// The message fetchmail delivered, without the Received header it puts on top.
fn without_fetchmail_received(delivered: &[u8]) -> Vec<u8> {
    let text = show(delivered);
    let mut lines = text.split_inclusive('\n').peekable();
    if lines
        .peek()
        .is_some_and(|l| l.starts_with("Received: from "))
    {
        lines.next();
        while lines.peek().is_some_and(|l| l.starts_with([' ', '\t'])) {
            lines.next();
        }
    }
    lines.collect::<String>().into_bytes()
}

/// The messages an MDA has written into `inbox` so far.
fn delivered(inbox: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(inbox)
        .expect("the MDA's directory")
        .map(|entry| {
            let entry = entry.expect("an MDA file");
            let name = entry.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(entry.path()).expect("read an MDA file"))
        })
        .collect();
    files.sort();
    files
}

#[test]
#[ignore = "interop: needs fetchmail"]
fn fetchmail_fetches_every_message_byte_identical_and_deletes_it() {
    let server = Server::start();
    let sent = [
        server.deliver(&tricky("fetchmail tricky")),
        server.send("fetchmail plain"),
    ];
    let raws: Vec<Vec<u8>> = sent.iter().map(|id| server.raw(*id)).collect();
    let inbox = server.mkdir("inbox");
    let rc = fetchmail_rc(&server, &inbox, false);
    let done = kit::process::run(fetchmail_command(&server, &rc), b"", CLIENT_LIMIT);
    assert!(done.status.success(), "{}", done.describe());
    assert!(
        !done.stdout_text().contains(PASSWORD) && !done.stderr.contains(PASSWORD),
        "fetchmail -v masks the password"
    );
    let files = delivered(&inbox);
    assert_eq!(files.len(), raws.len(), "{}", done.describe());
    for raw in &raws {
        find_file(&files, raw, without_fetchmail_received);
    }
    for id in sent {
        server.wait_for(id, "deleted after fetchmail's EXPUNGE", is_gone);
    }
}

#[test]
#[ignore = "interop: needs fetchmail"]
fn fetchmail_idle_gets_mail_sent_over_smtp_at_once() {
    let server = Server::start();
    let inbox = server.mkdir("inbox");
    let rc = fetchmail_rc(&server, &inbox, true);
    let mut command = fetchmail_command(&server, &rc);
    // Poll once, then IDLE in the foreground until killed.
    command.args(["--idle", "--daemon", "60", "--nodetach"]);
    let (_fetchmail, stdout, stderr): (ChildGuard, Lines, Lines) =
        spawn_collected(&mut command, "fetchmail --idle");
    let idling = |lines: &[String]| lines.iter().any(|l| l.ends_with(" IDLE"));
    assert!(
        stderr.wait_until(PROMPT, idling).is_some() || stdout.wait_until(PROMPT, idling).is_some(),
        "fetchmail did not send IDLE within {PROMPT:?}:\n{}\n{}",
        stdout.text(),
        stderr.text()
    );

    let message = plain("fetchmail idle");
    let sent = Instant::now();
    let id = server.deliver(&message);
    let deadline = sent + Duration::from_secs(5);
    let took = loop {
        if !delivered(&inbox).is_empty() {
            break sent.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "fetchmail --idle did not deliver the message within 5 s:\n{}\n{}",
            stdout.text(),
            stderr.text()
        );
        thread::sleep(Duration::from_millis(2));
    };
    eprintln!("fetchmail --idle: from the SMTP 250 to the MDA's file in {took:?}");
    // The MDA's file appears when `cat` starts; wait until it holds the whole message.
    let raw = server.raw(id);
    let deadline = Instant::now() + PROMPT;
    while without_fetchmail_received(&delivered(&inbox)[0].1) != raw {
        assert!(
            Instant::now() < deadline,
            "the MDA got:\n{}\nnot:\n{}",
            show(&delivered(&inbox)[0].1),
            show(&raw)
        );
        thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------
// Mail readers: s-nail, mutt, neomutt

#[test]
#[ignore = "interop: needs s-nail"]
fn s_nail_reads_flags_and_deletes_over_imap() {
    let s_nail = require_program("s-nail", "s-nail");
    let server = Server::start();
    let first = server.send("s-nail first");
    let second = server.send("s-nail second");
    let port = server.imap_port();
    let mut command = Command::new(s_nail);
    command
        .env("HOME", server.dir.path())
        .env("LC_ALL", "C")
        // -:/ no configuration files; -# batch mode, commands from stdin.
        .args(["-:/", "-#", "-S", "v15-compat"])
        .arg("-S")
        .arg(format!("password-{USER}@127.0.0.1:{port}={PASSWORD}"))
        .arg("-f")
        .arg(format!("imap://{USER}@127.0.0.1:{port}"));
    let done = kit::process::run(
        command,
        b"headers\nprint 1\nflag 1\ndelete 2\nquit\n",
        CLIENT_LIMIT,
    );
    let out = format!("{}\n{}", done.stdout_text(), done.stderr);
    assert!(done.status.success(), "{}", done.describe());
    assert!(
        out.contains("s-nail first") && out.contains("s-nail second"),
        "headers lists both: {out}"
    );
    assert!(
        out.contains("body of s-nail first"),
        "print 1 shows the body: {out}"
    );
    server.wait_for(first, "read after s-nail printed it, and starred", |m| {
        is_read(m) && is_starred(m)
    });
    server.wait_for(second, "deleted after s-nail quit", is_gone);
}

/// mutt or neomutt in tmux on the INBOX: open the first message, go back, flag it,
/// delete the second, sync with `$`, quit.
fn mail_reader_reads_flags_and_deletes(reader: &str, package: &str) {
    let reader = require_program(reader, package);
    let server = Server::start();
    let first = server.send("reader first");
    let second = server.send("reader second");
    let muttrc = server.write_private(
        "muttrc",
        &format!(
            "set imap_user = {USER}\nset imap_pass = {PASSWORD}\n\
             set folder = \"imap://{USER}@127.0.0.1:{port}/\"\n\
             set spoolfile = \"+INBOX\"\nset ssl_starttls = no\nset ssl_force_tls = no\n\
             set header_cache = \"\"\nset message_cachedir = \"\"\n\
             set mail_check = 1\nset timeout = 1\nset delete = yes\nset move = no\n\
             set quit = yes\nset confirmappend = no\nset sort = date\nset wait_key = no\n\
             set beep = no\nset resolve = no\n",
            port = server.imap_port()
        ),
    );
    let tmux = Tmux::start(&format!(
        "HOME='{}' TERM=xterm '{}' -n -F '{}'",
        server.dir.path().display(),
        reader.display(),
        muttrc.display()
    ));
    tmux.wait_for("reader second");
    tmux.keys(&["Enter"]);
    tmux.wait_for("body of reader first");
    tmux.keys(&["q"]);
    tmux.wait_for("reader second");
    tmux.keys(&["F", "j", "d", "$"]);
    server.wait_for(second, "deleted after the sync", is_gone);
    server.wait_for(first, "read after it was opened, and starred", |m| {
        is_read(m) && is_starred(m)
    });
    tmux.keys(&["q"]);
}

#[test]
#[ignore = "interop: needs mutt and tmux"]
fn mutt_reads_flags_and_deletes() {
    mail_reader_reads_flags_and_deletes("mutt", "mutt");
}

#[test]
#[ignore = "interop: needs neomutt and tmux"]
fn neomutt_reads_flags_and_deletes() {
    mail_reader_reads_flags_and_deletes("neomutt", "neomutt");
}
