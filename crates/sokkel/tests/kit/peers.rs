//! Programs nobody here wrote, run as peers: Python's aiosmtpd (and two scripts of
//! ours on Python's ssl module), Postfix's smtp-sink, swaks, tmux as a terminal,
//! openssl for certificates, and ncat/socat as echo servers. A missing peer fails
//! the test saying what to install. Every process started here is killed and
//! reaped when dropped.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::email::opt_string;
use super::net::free_tcp_port;
use super::process::{
    ChildGuard, Finished, Lines, kit_file, program, require_program, spawn_collected, tempdir,
};

/// How long a test waits for a peer to start (longer than `PROMPT`: the Python peers
/// are slow to start).
pub const PEER_PROMPT: Duration = Duration::from_secs(10);

/// swaks against `addr`, from app@x.test to dev@y.test, with a 20 s timeout, and
/// `extra` (`-tls`, `-tlsc`, `--auth` ...).
pub fn swaks(addr: SocketAddr, extra: &[&str]) -> Finished {
    let swaks = require_program("swaks", "swaks");
    program(
        swaks,
        [
            "--server",
            &addr.to_string(),
            "--to",
            "dev@y.test",
            "--from",
            "app@x.test",
            "--timeout",
            "20",
        ]
        .iter()
        .chain(extra),
    )
    .run()
}

/// Panics with what to install unless Python's aiosmtpd can be imported.
#[track_caller]
pub fn require_aiosmtpd() {
    let ok = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "interop peer missing: Python's aiosmtpd cannot be imported. Install it with \
         `python3 -m pip install aiosmtpd` (.ci/run installs it)."
    );
}

/// A self-signed certificate and its key, made by the `openssl` command.
#[derive(Debug)]
pub struct Cert {
    pub cert: PathBuf,
    pub key: PathBuf,
    _dir: tempfile::TempDir,
}

impl Cert {
    /// `openssl req -x509 -newkey rsa:2048 -nodes -days 1` with `extra` arguments
    /// (e.g. `-subj /CN=localhost`, `-addext ...`).
    pub fn generate(extra: &[&str]) -> Cert {
        require_program("openssl", "openssl");
        let dir = tempdir();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        program(
            "openssl",
            [
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ],
        )
        .args(extra)
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .run()
        .assert_success("openssl req");
        Cert {
            cert,
            key,
            _dir: dir,
        }
    }

    /// A server certificate for 127.0.0.1 and localhost, as a TLS client that checks
    /// names (rustls/webpki) wants it: subjectAltName entries and CA:FALSE.
    pub fn for_loopback() -> Cert {
        Cert::generate(&[
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ])
    }
}

/// What the aiosmtpd server saved for one message.
#[derive(Debug, Clone)]
pub struct Saved {
    pub raw: Vec<u8>,
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    pub tls: bool,
    pub auth_mechanism: Option<String>,
    pub auth_user: Option<String>,
}

/// Options for [`Aiosmtpd::start`].
#[derive(Debug, Default)]
pub struct AiosmtpdOptions<'a> {
    pub starttls: Option<&'a Cert>,
    pub implicit: Option<&'a Cert>,
    pub require_starttls: bool,
    /// Accept exactly this user and password for AUTH.
    pub login: Option<(&'a str, &'a str)>,
}

/// `aiosmtpd_server.py`: aiosmtpd's `SMTP` protocol with a handler that saves every
/// message, on a port the kernel picked.
#[derive(Debug)]
pub struct Aiosmtpd {
    child: ChildGuard,
    port: u16,
    dir: tempfile::TempDir,
}

impl Aiosmtpd {
    pub fn start(options: &AiosmtpdOptions<'_>) -> Aiosmtpd {
        require_aiosmtpd();
        let dir = tempdir();
        let mut command = Command::new("python3");
        command
            .arg(kit_file("py/aiosmtpd_server.py"))
            .arg("--dir")
            .arg(dir.path());
        if let Some(cert) = options.starttls {
            command.arg("--starttls").arg(&cert.cert).arg(&cert.key);
        }
        if let Some(cert) = options.implicit {
            command.arg("--implicit").arg(&cert.cert).arg(&cert.key);
        }
        if options.require_starttls {
            command.arg("--require-starttls");
        }
        if let Some((user, password)) = options.login {
            command.args(["--user", user, "--password", password]);
        }
        let (child, stdout, _stderr) = spawn_collected(&mut command, "python3 aiosmtpd_server.py");
        let port = stdout.expect_map(PEER_PROMPT, "where aiosmtpd_server.py listens", |line| {
            line.strip_prefix("listening on ")
                .and_then(|p| p.trim().parse().ok())
        });
        Aiosmtpd { child, port, dir }
    }

    pub fn server(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Every message saved so far, in arrival order.
    pub fn messages(&self) -> Vec<Saved> {
        let mut numbered = BTreeMap::new();
        for entry in std::fs::read_dir(self.dir.path()).expect("read the aiosmtpd directory") {
            let path = entry.expect("directory entry").path();
            if path.extension().is_some_and(|e| e == "json")
                && let Some(n) = path
                    .file_stem()
                    .and_then(|s| s.to_str()?.parse::<u32>().ok())
            {
                numbered.insert(n, path);
            }
        }
        numbered
            .into_values()
            .map(|json_path| {
                let json: Value =
                    serde_json::from_slice(&std::fs::read(&json_path).expect("read json"))
                        .expect("aiosmtpd_server.py wrote JSON");
                let raw = std::fs::read(json_path.with_extension("eml")).expect("read eml");
                Saved {
                    raw,
                    mail_from: json["mail_from"].as_str().unwrap_or_default().to_owned(),
                    rcpt_tos: json["rcpt_tos"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|r| r.as_str().map(str::to_owned))
                        .collect(),
                    tls: json["tls"].as_bool().unwrap_or(false),
                    auth_mechanism: opt_string(&json["auth_mechanism"]),
                    auth_user: opt_string(&json["auth_user"]),
                }
            })
            .collect()
    }

    /// The only message saved; panics if there is not exactly one.
    #[track_caller]
    pub fn only_message(&self) -> Saved {
        let mut all = self.messages();
        assert_eq!(
            all.len(),
            1,
            "expected one message saved by aiosmtpd, got {}",
            all.len()
        );
        all.remove(0)
    }
}

/// Starts a server that binds a port it was given; retries with another free port
/// when the process dies at once (the port was taken between the check and the bind).
fn start_on_free_port(what: &str, mut spawn: impl FnMut(u16) -> Child) -> (ChildGuard, u16) {
    for _ in 0..5 {
        let port = free_tcp_port();
        let mut child = ChildGuard::new(spawn(port), what);
        let deadline = Instant::now() + PEER_PROMPT;
        while Instant::now() < deadline && child.running() {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return (child, port);
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
    panic!("{what} did not start listening (five attempts)");
}

/// Postfix's `smtp-sink`: accepts everything, stores nothing.
#[derive(Debug)]
pub struct SmtpSink {
    child: ChildGuard,
    port: u16,
}

impl SmtpSink {
    /// `smtp-sink [-u nobody] OPTIONS 127.0.0.1:PORT 256` (`-u` only as root, where
    /// smtp-sink insists on dropping privileges).
    pub fn start(options: &[&str]) -> SmtpSink {
        let program = require_program("smtp-sink", "postfix");
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        let (child, port) = start_on_free_port("smtp-sink", |port| {
            let mut command = Command::new(&program);
            if root {
                command.args(["-u", "nobody"]);
            }
            command
                .args(options)
                .arg(format!("127.0.0.1:{port}"))
                .arg("256")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("cannot start smtp-sink")
        });
        SmtpSink { child, port }
    }

    pub fn server(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// Counts tmux sockets made by this test process, for unique names.
static TMUX_SESSIONS: AtomicUsize = AtomicUsize::new(0);

/// A detached tmux session on its own server socket (`tmux -L NAME`), so parallel
/// tests never share a tmux server. The server is killed when this is dropped.
#[derive(Debug)]
pub struct Tmux {
    socket: String,
}

impl Tmux {
    /// Runs `command` (a shell command line) in a new 120x40 session.
    pub fn start(command: &str) -> Tmux {
        require_program("tmux", "tmux");
        let socket = format!(
            "sokkel-send-{}-{}",
            std::process::id(),
            TMUX_SESSIONS.fetch_add(1, Ordering::SeqCst)
        );
        let tmux = Tmux { socket };
        tmux.run(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-x",
            "120",
            "-y",
            "40",
            "-s",
            "main",
            command,
        ]);
        tmux
    }

    fn run(&self, args: &[&str]) -> String {
        program("tmux", ["-L", &self.socket])
            .args(args)
            .run()
            .assert_success("tmux")
            .stdout_text()
    }

    /// Types `keys` (tmux key names such as `Enter`, `BSpace`, `C-d`, `Left`).
    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "main"];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    /// Types `text` literally.
    pub fn type_text(&self, text: &str) {
        self.run(&["send-keys", "-t", "main", "-l", text]);
    }

    /// Types `text`, waits until the terminal shows it, and presses Enter.
    #[track_caller]
    pub fn type_line(&self, text: &str) {
        self.type_text(text);
        self.enter_when_shown(text);
    }

    /// Waits until the terminal shows `text`, then presses Enter.
    #[track_caller]
    pub fn enter_when_shown(&self, text: &str) {
        self.wait_for(text);
        self.keys(&["Enter"]);
    }

    /// The cursor position: (column, row).
    pub fn cursor(&self) -> (u32, u32) {
        let out = self.run(&[
            "display-message",
            "-p",
            "-t",
            "main",
            "#{cursor_x} #{cursor_y}",
        ]);
        let mut numbers = out
            .split_whitespace()
            .map(|n| n.parse().expect("a cursor position"));
        (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0))
    }

    /// Waits until the cursor is at the start of a row below `row`: the program has
    /// taken the line just entered.
    #[track_caller]
    pub fn wait_for_new_line(&self, row: u32) {
        let deadline = Instant::now() + PEER_PROMPT;
        loop {
            let (x, y) = self.cursor();
            if x == 0 && y > row {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cursor did not move below row {row} within {PEER_PROMPT:?}; it shows:\n{}",
                self.screen()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the pane shows now, history included.
    pub fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "main", "-S", "-200"])
    }

    /// Waits until the screen holds `text`; panics with the screen otherwise.
    #[track_caller]
    pub fn wait_for(&self, text: &str) -> String {
        self.wait_for_count(text, 1)
    }

    /// Waits until `text` appears at least `count` times on the screen. Trailing
    /// spaces are not compared: capture-pane drops them.
    #[track_caller]
    pub fn wait_for_count(&self, text: &str, count: usize) -> String {
        let text = text.trim_end();
        let deadline = Instant::now() + PEER_PROMPT;
        loop {
            let screen = self.screen();
            if screen.matches(text).count() >= count {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "the terminal did not show {text:?} (x{count}) within {PEER_PROMPT:?}; it shows:\n{screen}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .arg("kill-server")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// `starttls_injector.py`: answers STARTTLS with `220` and an injected line in the
/// same write, then does a real TLS handshake and accepts one message.
#[derive(Debug)]
pub struct StarttlsInjector {
    child: ChildGuard,
    port: u16,
    /// Where the server writes the message it got, and its command log.
    pub out: PathBuf,
    _dir: tempfile::TempDir,
}

impl StarttlsInjector {
    pub fn start(cert: &Cert) -> StarttlsInjector {
        let dir = tempdir();
        let out = dir.path().join("log.json");
        let (child, stdout, _stderr) = spawn_collected(
            Command::new("python3")
                .arg(kit_file("py/starttls_injector.py"))
                .arg(&cert.cert)
                .arg(&cert.key)
                .arg(&out),
            "python3 starttls_injector.py",
        );
        let port = stdout.expect_map(PEER_PROMPT, "where starttls_injector.py listens", |line| {
            line.strip_prefix("listening on ")
                .and_then(|p| p.trim().parse().ok())
        });
        StarttlsInjector {
            child,
            port,
            out,
            _dir: dir,
        }
    }

    pub fn server(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The server's log once it has finished the session.
    pub fn log(&mut self) -> Value {
        let status = self.child.wait_timeout(PEER_PROMPT);
        assert!(
            status.is_some_and(|s| s.success()),
            "starttls_injector.py did not finish cleanly: {status:?}"
        );
        serde_json::from_slice(&std::fs::read(&self.out).expect("read the injector log"))
            .expect("starttls_injector.py wrote JSON")
    }
}

/// A program nobody here wrote (ncat, socat) running as an echo peer. Such servers
/// fork a child per connection (ncat's UDP children even outlive their parent), so the
/// peer runs in a process group of its own and the whole group is killed on drop.
#[derive(Debug)]
pub struct Peer {
    child: ChildGuard,
    pub stderr: Lines,
}

impl Peer {
    /// Starts `program ARGS` in a process group of its own, its output kept for
    /// failure messages.
    pub fn start(program: &str, args: &[&str]) -> Peer {
        use std::os::unix::process::CommandExt;
        let (child, _stdout, stderr) = spawn_collected(
            Command::new(program).args(args).process_group(0),
            format!("{program} {}", args.join(" ")),
        );
        Peer { child, stderr }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // The group's id is the leader's pid; the leader is not reaped yet (ChildGuard
        // does that after this), so the id cannot have been reused.
        let _ = Command::new("sh")
            .args([
                "-c",
                "kill -KILL -\"$1\"",
                "sh",
                &self.child.id().to_string(),
            ])
            .stderr(Stdio::null())
            .status();
    }
}
