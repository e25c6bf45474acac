//! `sokkel mail serve` as every test starts it: on 127.0.0.1 port 0 for each
//! protocol, with a store in a temporary directory of its own, its addresses learnt
//! from the lines it prints, killed and reaped when dropped. Through a [`Catcher`] a
//! test sends mail (raw SMTP), reads the store back with `sokkel mail list | show`,
//! and calls the web API.
//!
//! ```text
//! let catcher = Catcher::builder().http().arg("--max-recipients").arg("100").start();
//! let id = catcher.send(&message("hello", "body"));
//! let list = catcher.get_json("/api/v1/messages");
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use super::http::{self, Response};
use super::process::{
    ChildGuard, Finished, Lines, PROMPT, sokkel, sokkel_command, spawn_collected, tempdir,
};
use super::smtp::{HOST, Smtp};

/// What [`CatcherBuilder::start`] starts: `sokkel mail serve` with the flags a test names,
/// plus what keeps parallel tests apart and replies exact unless the test names the
/// flag itself: `--smtp 127.0.0.1:0`, `--pop3 127.0.0.1:0`, `--imap 127.0.0.1:0`,
/// `--no-http` (unless
/// `--http` or [`CatcherBuilder::http`]), `--hostname` [`HOST`], and `--db` in a new
/// temporary directory (unless [`CatcherBuilder::db`], `--db` or `--ephemeral`).
#[derive(Debug, Default)]
#[must_use = "a builder does nothing until .start()"]
pub struct CatcherBuilder {
    args: Vec<String>,
    db: Option<PathBuf>,
    users: Option<String>,
    env: Vec<(String, String)>,
    from_config: bool,
}

impl CatcherBuilder {
    /// Adds one argument to `sokkel mail serve`.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Adds arguments to `sokkel mail serve`.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// The web server and API on a free loopback port (`--http 127.0.0.1:0`).
    pub fn http(self) -> Self {
        self.arg("--http").arg("127.0.0.1:0")
    }

    /// The store at `db` (existing or new); the caller keeps its directory.
    pub fn db(mut self, db: &Path) -> Self {
        self.db = Some(db.to_owned());
        self
    }

    /// An environment variable for the server (every other `SOKKEL_*` variable of
    /// the test's own environment is removed), such as the debug builds' test hooks
    /// `SOKKEL_TEST_FAIL_SYNC` and `SOKKEL_TEST_SEGMENT_SIZE`.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// `--config FILE`, with the listeners and the store left to the file: the
    /// builder adds no `--smtp`, `--http`, `--no-http`, `--pop3`, `--imap` or
    /// `--db` (the file must name the store, or say `ephemeral = true`). POP3 and
    /// IMAP stay off their default ports through the kit's SOKKEL_* variables,
    /// which win over a file.
    pub fn config(mut self, file: &Path) -> Self {
        self.from_config = true;
        self.arg("--config").arg(file.display().to_string())
    }

    /// An auth file (`--auth-file`) with these lines (`user:password`), written
    /// next to the store.
    pub fn users(mut self, lines: &str) -> Self {
        self.users = Some(lines.to_owned());
        self
    }

    /// Starts the catcher and waits until it says where it keeps mail, the last line
    /// it prints when ready; panics, showing its output, if that does not come.
    pub fn start(self) -> Catcher {
        let given = |flag: &str| self.args.iter().any(|a| a == flag);
        // With `config`, the file names the listeners and the store.
        let named = |flag: &str| self.from_config || given(flag);
        let mut args: Vec<String> = vec!["mail".into(), "serve".into()];
        if !named("--smtp") {
            args.extend(["--smtp".into(), "127.0.0.1:0".into()]);
        }
        if !named("--http") && !named("--no-http") {
            args.push("--no-http".into());
        }
        // Never the default POP3 port: tests run in parallel.
        if !named("--pop3") && !named("--no-pop3") {
            args.extend(["--pop3".into(), "127.0.0.1:0".into()]);
        }
        // Nor the default IMAP port.
        if !named("--imap") && !named("--no-imap") {
            args.extend(["--imap".into(), "127.0.0.1:0".into()]);
        }
        if !given("--hostname") {
            args.extend(["--hostname".into(), HOST.into()]);
        }
        let dir = tempdir();
        let db = if named("--ephemeral") {
            None
        } else if let Some(at) = self.args.iter().position(|a| a == "--db") {
            // A store the test names itself, such as a postgres:// URL.
            self.args.get(at + 1).map(PathBuf::from)
        } else {
            let db = self.db.unwrap_or_else(|| dir.path().join("mail.db"));
            args.extend(["--db".into(), db.display().to_string()]);
            Some(db)
        };
        if let Some(users) = &self.users {
            let file = dir.path().join("users");
            std::fs::write(&file, users).expect("write the auth file");
            args.extend(["--auth-file".into(), file.display().to_string()]);
        }
        args.extend(self.args);

        let mut command = sokkel_command();
        command
            .args(&args)
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        let (process, stdout, stderr) =
            spawn_collected(&mut command, format!("sokkel {}", args.join(" ")));
        let Some(lines) = stdout.wait_until(PROMPT, |lines| {
            lines.iter().any(|l| l.starts_with("mail is kept in "))
        }) else {
            panic!(
                "sokkel {} did not get ready within {PROMPT:?}\nstdout:\n{}\nstderr:\n{}",
                args.join(" "),
                stdout.text(),
                stderr.text()
            );
        };
        let db = db.unwrap_or_else(|| {
            let kept = lines
                .iter()
                .find_map(|l| l.strip_prefix("mail is kept in "))
                .expect("the line waited for");
            PathBuf::from(kept.split(" (").next().unwrap_or(kept))
        });
        Catcher {
            smtp: announced(&lines, "listening on smtp ", ""),
            smtps: announced(&lines, "listening on smtps ", ""),
            pop3: announced(&lines, "listening on pop3 ", ""),
            imap: announced(&lines, "listening on imap ", ""),
            imaps: announced(&lines, "listening on imaps ", ""),
            // http://ADDR/ or, under a web root, http://ADDR/ROOT/
            http: lines
                .iter()
                .filter_map(|l| l.strip_prefix("listening on http http://"))
                .find_map(|url| url.split('/').next()?.parse().ok()),
            process,
            stdout,
            stderr,
            db,
            _dir: dir,
        }
    }
}

/// The addresses in the lines `PREFIX ADDR SUFFIX`.
fn announced(lines: &[String], prefix: &str, suffix: &str) -> Vec<SocketAddr> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix(prefix)?.strip_suffix(suffix))
        .map(|a| {
            a.parse()
                .unwrap_or_else(|e| panic!("bad address in {prefix}{a}{suffix}: {e}"))
        })
        .collect()
}

/// A running `sokkel mail serve`.
#[derive(Debug)]
pub struct Catcher {
    process: ChildGuard,
    pub stdout: Lines,
    pub stderr: Lines,
    /// The SMTP addresses it announced, in the order of the `--smtp` flags.
    pub smtp: Vec<SocketAddr>,
    /// The SMTPS addresses it announced (none unless the test names `--smtps`).
    pub smtps: Vec<SocketAddr>,
    /// The POP3 addresses it announced (port 0 unless the test names `--pop3`).
    pub pop3: Vec<SocketAddr>,
    /// The IMAP addresses it announced (port 0 unless the test names `--imap`).
    pub imap: Vec<SocketAddr>,
    /// The IMAPS addresses it announced (none unless the test names `--imaps`).
    pub imaps: Vec<SocketAddr>,
    /// The web address it announced, if it serves the web.
    pub http: Option<SocketAddr>,
    /// The store (for `--ephemeral`, the one it announced; for `--db URL`, the URL).
    pub db: PathBuf,
    // Dropped after `process` (fields drop in order), so the store outlives the server.
    _dir: TempDir,
}

impl Catcher {
    /// A catcher to start with flags of the test's choosing; see [`CatcherBuilder`].
    pub fn builder() -> CatcherBuilder {
        CatcherBuilder::default()
    }

    /// A catcher with nothing but the defaults of [`CatcherBuilder`].
    pub fn start() -> Catcher {
        Catcher::builder().start()
    }

    /// `Catcher::builder().args(args).start()`.
    pub fn with(args: &[&str]) -> Catcher {
        Catcher::builder().args(args).start()
    }

    /// The first SMTP address.
    pub fn addr(&self) -> SocketAddr {
        self.smtp[0]
    }

    /// The first SMTP address as `--server` takes it.
    pub fn server(&self) -> String {
        self.addr().to_string()
    }

    /// The first IMAP address; panics if the catcher serves no IMAP.
    #[track_caller]
    pub fn imap_addr(&self) -> SocketAddr {
        *self.imap.first().unwrap_or_else(|| {
            panic!(
                "the catcher announced no IMAP listener:\n{}",
                self.stdout.text()
            )
        })
    }

    /// The web address; panics if the catcher serves no web.
    #[track_caller]
    pub fn http(&self) -> SocketAddr {
        self.http.unwrap_or_else(|| {
            panic!(
                "the catcher announced no web listener (start it with .http()):\n{}",
                self.stdout.text()
            )
        })
    }

    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.process.running()
    }

    /// SIGKILL, and wait until the process is gone.
    pub fn kill_hard(&mut self) {
        self.process.kill_hard();
    }

    /// Waits for the process to exit; panics with its stderr if it does not.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        match self.process.wait_timeout(timeout) {
            Some(status) => status,
            None => panic!(
                "sokkel mail serve still running after {timeout:?}; stderr:\n{}",
                self.stderr.text()
            ),
        }
    }

    // -----------------------------------------------------------------------------------
    // SMTP

    /// Opens a session and checks the greeting.
    pub fn session(&self) -> Smtp {
        Smtp::open(self.addr())
    }

    /// Delivers `content` from `from` to `to` over a session of its own; the store id.
    pub fn deliver(&self, from: &str, to: &[&str], content: &[u8]) -> u64 {
        let mut smtp = Smtp::ehlo(self.addr());
        let id = smtp.deliver(from, to, content);
        smtp.quit();
        id
    }

    /// Delivers `content` (see [`super::smtp::message`]) from sender@example.test to
    /// rcpt@example.test, the addresses in its headers; the store id.
    pub fn send(&self, content: &[u8]) -> u64 {
        self.deliver("sender@example.test", &["rcpt@example.test"], content)
    }

    /// Delivers `count` messages over `sessions` SMTP sessions at once; message `n`
    /// is `content(n)`.
    pub fn deliver_many(
        &self,
        count: usize,
        sessions: usize,
        content: impl Fn(usize) -> Vec<u8> + Sync,
    ) {
        let content = &content;
        thread::scope(|scope| {
            for session in 0..sessions {
                scope.spawn(move || {
                    let mut smtp = Smtp::ehlo(self.addr());
                    for n in (session..count).step_by(sessions) {
                        smtp.deliver("sender@example.test", &["rcpt@example.test"], &content(n));
                    }
                });
            }
        });
    }

    // -----------------------------------------------------------------------------------
    // The store, through the CLI

    /// `sokkel mail ARGS --db <this store>`.
    pub fn cli(&self, args: &[&str]) -> Finished {
        mail_cli(&self.db, args)
    }

    /// Every stored message as `mail list --json` gives it, newest first.
    pub fn list(&self) -> Vec<Value> {
        list_json(&self.db, 1_000_000)
    }

    /// Polls `mail list --json` until `done` holds for it (every message, newest
    /// first) and returns that list; panics, showing the last list and the server's
    /// stderr, if it does not within `timeout`. For what the server does in the
    /// background after the 250 (indexing, pruning).
    #[track_caller]
    pub fn list_until(
        &self,
        timeout: Duration,
        what: &str,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let list = self.list();
            if done(&list) {
                return list;
            }
            assert!(
                Instant::now() < deadline,
                "not {what} within {timeout:?}: {list:#?}\nstderr:\n{}",
                self.stderr.text()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// The exact stored bytes of message `id`.
    pub fn raw(&self, id: u64) -> Vec<u8> {
        raw(&self.db, id)
    }

    /// The one message in the store; panics if there is not exactly one.
    #[track_caller]
    pub fn only_message(&self) -> Value {
        let mut all = self.list();
        assert_eq!(
            all.len(),
            1,
            "expected exactly one stored message, got {all:#?}"
        );
        all.remove(0)
    }

    /// The exact stored bytes of the one message in the store.
    #[track_caller]
    pub fn only_raw(&self) -> Vec<u8> {
        let id = self.only_message()["id"].as_u64().expect("a message id");
        self.raw(id)
    }

    /// What `mail show ID --envelope` prints (`ID` may be `latest`).
    pub fn envelope_text(&self, id: &str) -> String {
        self.cli(&["show", id, "--envelope"])
            .assert_success("mail show --envelope")
            .stdout_text()
    }

    /// MAIL FROM and the RCPT TOs of message `id`, from `mail show --envelope`.
    #[track_caller]
    pub fn envelope(&self, id: &str) -> (String, Vec<String>) {
        let text = self.envelope_text(id);
        let unbracket = |s: &str| {
            s.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned()
        };
        let mut from = None;
        let mut to = Vec::new();
        for line in text.lines() {
            if let Some(v) = line.strip_prefix("MAIL FROM:") {
                from = Some(unbracket(v));
            } else if let Some(v) = line.strip_prefix("RCPT TO:") {
                to.push(unbracket(v));
            }
        }
        let from = from.unwrap_or_else(|| panic!("no MAIL FROM in:\n{text}"));
        (from, to)
    }

    // -----------------------------------------------------------------------------------
    // The web API (start with `.http()`)

    /// `GET path`.
    pub fn get(&self, path: &str) -> Response {
        http::get(self.http(), path)
    }

    /// `GET path`, which must answer 200 with JSON.
    pub fn get_json(&self, path: &str) -> Value {
        http::get_json(self.http(), path)
    }

    /// `PUT path` with a JSON body.
    pub fn put_json(&self, path: &str, body: &Value) -> Response {
        http::request(self.http(), "PUT", path, Some(body))
    }

    /// `DELETE path`, with a JSON body if given.
    pub fn delete(&self, path: &str, body: Option<&Value>) -> Response {
        http::request(self.http(), "DELETE", path, body)
    }
}

/// `sokkel mail ARGS --db DB`; panics if it panicked, whatever its exit code.
#[track_caller]
pub fn mail_cli(db: &Path, args: &[&str]) -> Finished {
    let finished = sokkel(["mail"].iter().chain(args))
        .arg("--db")
        .arg(db)
        .run();
    assert!(
        !finished.stderr.contains("panicked"),
        "{}",
        finished.describe()
    );
    finished
}

/// `mail list --json --limit LIMIT`, parsed.
pub fn list_json(db: &Path, limit: usize) -> Vec<Value> {
    let out = mail_cli(db, &["list", "--json", "--limit", &limit.to_string()])
        .assert_success("sokkel mail list --json");
    match serde_json::from_slice(&out.stdout) {
        Ok(Value::Array(items)) => items,
        other => panic!(
            "mail list --json did not print an array: {other:?}\n{}",
            out.describe()
        ),
    }
}

/// `mail show ID --raw`.
pub fn raw(db: &Path, id: u64) -> Vec<u8> {
    mail_cli(db, &["show", &id.to_string(), "--raw"])
        .assert_success("sokkel mail show --raw")
        .stdout
}

/// The ids in `mail list --json` output, in its order.
pub fn ids(list: &[Value]) -> Vec<u64> {
    list.iter()
        .map(|m| {
            m["id"]
                .as_u64()
                .unwrap_or_else(|| panic!("no numeric id in {m}"))
        })
        .collect()
}
