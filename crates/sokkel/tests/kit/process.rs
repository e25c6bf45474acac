//! Processes: the binary under test, children that are killed and reaped when
//! dropped, signals, the lines a child prints, and the one command runner ([`Run`],
//! over [`run`]) that runs a command to completion with a deadline.
//!
//! Every wait here has a deadline, so a broken binary fails a test instead of hanging it.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The binary under test, built by cargo for this test run.
pub const SOKKEL: &str = env!("CARGO_BIN_EXE_sokkel");

/// How long a test waits for anything that should happen at once on loopback.
pub const PROMPT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------
// Children

/// A child process that is killed and reaped when dropped, so that no test leaves a
/// server behind, whether it passes or panics.
#[derive(Debug)]
pub struct ChildGuard {
    child: Child,
    what: String,
}

impl ChildGuard {
    pub fn new(child: Child, what: impl Into<String>) -> Self {
        ChildGuard {
            child,
            what: what.into(),
        }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if the process has exited by `timeout`, else `None` (the
    /// process is left running for `Drop` to kill).
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
                Ok(None) => return None,
                Err(err) => panic!("cannot wait for {}: {err}", self.what),
            }
        }
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL, as a crash or the OOM killer would; waits until the process is gone.
    pub fn kill_hard(&mut self) -> ExitStatus {
        let _ = self.child.kill();
        self.child
            .wait()
            .unwrap_or_else(|err| panic!("cannot reap {}: {err}", self.what))
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Starts `command` with stdin from /dev/null and stdout and stderr each collected by a
/// [`Lines`]; the child is killed and reaped when the returned guard is dropped.
pub fn spawn_collected(
    command: &mut Command,
    what: impl Into<String>,
) -> (ChildGuard, Lines, Lines) {
    let what = what.into();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let stdout = Lines::collect(child.stdout.take().expect("stdout is piped"));
    let stderr = Lines::collect(child.stderr.take().expect("stderr is piped"));
    (ChildGuard::new(child, what), stdout, stderr)
}

/// (VmRSS, VmHWM) of process `pid` in bytes, from /proc: what it holds now and the
/// most it ever held.
pub fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
            * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Whole MiB in `bytes`, for messages about memory.
pub fn mib(bytes: u64) -> u64 {
    bytes >> 20
}

/// Sends SIGTERM, as `kill -TERM` or a service manager would.
pub fn sigterm(pid: u32) {
    signal(pid, "TERM");
}

/// Sends SIGINT, as Ctrl-C in a terminal would.
pub fn sigint(pid: u32) {
    signal(pid, "INT");
}

/// Sends signal `name` (`TERM`, `INT` ...) to `pid`; panics if `kill` fails.
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("sh")
        .args(["-c", "kill -\"$1\" \"$2\"", "sh", name, &pid.to_string()])
        .status()
        .unwrap_or_else(|e| panic!("cannot run sh to send SIG{name}: {e}"));
    assert!(status.success(), "kill -{name} {pid} failed: {status}");
}

/// Removes every `SOKKEL_*`, `RUST_LOG` and `COLUMNS` setting inherited from the
/// environment of whoever runs the tests, so flags and defaults are what the test
/// says (`COLUMNS` sets the width of `mail list` and of help texts).
pub fn without_sokkel_env(command: &mut Command) -> &mut Command {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SOKKEL_") {
            command.env_remove(name);
        }
    }
    command.env_remove("RUST_LOG").env_remove("COLUMNS")
}

/// A `sokkel` command with a clean environment (see [`without_sokkel_env`]) and stdin
/// from /dev/null unless the caller says otherwise. `mail serve` listens for POP3
/// and IMAP on ports of its own choosing (not the defaults 1110 and 1143, which
/// parallel tests would fight over) unless the test names `--pop3` or
/// `--no-pop3`, `--imap` or `--no-imap`.
pub fn sokkel_command() -> Command {
    let mut command = Command::new(SOKKEL);
    without_sokkel_env(&mut command)
        .env("SOKKEL_POP3_LISTEN", "127.0.0.1:0")
        .env("SOKKEL_IMAP_LISTEN", "127.0.0.1:0")
        .stdin(Stdio::null());
    command
}

// ---------------------------------------------------------------------------------------
// What a child prints

/// The lines a child writes to one of its pipes, collected by a thread as they come so
/// a test can wait for a particular one. Only the `\n` is removed from each line.
#[derive(Debug, Clone, Default)]
pub struct Lines {
    shared: Arc<(Mutex<LinesState>, Condvar)>,
}

#[derive(Debug, Default)]
struct LinesState {
    lines: Vec<String>,
    closed: bool,
}

impl Lines {
    /// Starts a thread that reads `pipe` line by line until it closes.
    pub fn collect(pipe: impl Read + Send + 'static) -> Lines {
        let lines = Lines::default();
        let sink = lines.clone();
        thread::spawn(move || {
            let mut reader = BufReader::new(pipe);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                let n = reader.read_until(b'\n', &mut buf).unwrap_or(0);
                let (lock, changed) = &*sink.shared;
                let mut state = lock.lock().unwrap_or_else(|e| e.into_inner());
                if n == 0 {
                    state.closed = true;
                    changed.notify_all();
                    return;
                }
                if buf.last() == Some(&b'\n') {
                    buf.pop();
                }
                state.lines.push(String::from_utf8_lossy(&buf).into_owned());
                changed.notify_all();
            }
        });
        lines
    }

    /// Every line so far.
    pub fn snapshot(&self) -> Vec<String> {
        let (lock, _) = &*self.shared;
        lock.lock().unwrap_or_else(|e| e.into_inner()).lines.clone()
    }

    /// Everything so far, one line each, for failure messages.
    pub fn text(&self) -> String {
        self.snapshot().join("\n")
    }

    /// Waits until `done` holds for the lines so far; returns them. `None` if the pipe
    /// closed or `timeout` passed first.
    pub fn wait_until(
        &self,
        timeout: Duration,
        done: impl Fn(&[String]) -> bool,
    ) -> Option<Vec<String>> {
        let deadline = Instant::now() + timeout;
        let (lock, changed) = &*self.shared;
        let mut state = lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if done(&state.lines) {
                return Some(state.lines.clone());
            }
            let now = Instant::now();
            if state.closed || now >= deadline {
                return None;
            }
            state = changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Waits for the first line `pick` accepts within `timeout` and returns what it
    /// made of it; panics, showing every line, if none comes.
    pub fn expect_map<T>(
        &self,
        timeout: Duration,
        what: &str,
        pick: impl Fn(&str) -> Option<T>,
    ) -> T {
        match self.wait_until(timeout, |lines| lines.iter().any(|l| pick(l).is_some())) {
            Some(lines) => lines
                .iter()
                .find_map(|l| pick(l))
                .expect("a line was accepted"),
            None => panic!("no line {what} within {timeout:?}; got:\n{}", self.text()),
        }
    }

    /// Waits for a line equal to `want`; panics, showing every line, if none comes.
    pub fn expect_line(&self, want: &str) {
        if self
            .wait_until(PROMPT, |lines| lines.iter().any(|l| l == want))
            .is_none()
        {
            panic!("no line {want:?} within {PROMPT:?}; got:\n{}", self.text());
        }
    }

    /// Waits for a line for which `matches` holds and returns it; panics if none comes.
    pub fn expect_line_where(&self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        self.expect_map(PROMPT, what, |l| matches(l).then(|| l.to_owned()))
    }
}

// ---------------------------------------------------------------------------------------
// Running a command to completion

/// How long a command that should finish on its own (`sokkel mail list`, a python3
/// one-liner, `sokkel mail send`, swaks) may take before the test calls it stuck.
pub const COMMAND_LIMIT: Duration = Duration::from_secs(60);

/// What a finished command did.
#[derive(Debug)]
pub struct Finished {
    /// The command line, for failure messages.
    pub command: String,
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Finished {
    /// Stdout as text (lossy).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// The exit code; `None` if a signal ended the command.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// The command, exit status, stdout and stderr, for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "`{}`: exit: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command,
            self.status,
            self.stdout_text(),
            self.stderr
        )
    }

    /// Panics, showing the output, unless the command exited 0.
    #[track_caller]
    pub fn assert_success(self, what: &str) -> Finished {
        assert!(self.status.success(), "{what} failed: {}", self.describe());
        self
    }

    /// Panics, showing everything, unless the exit code is `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code(),
            Some(code),
            "expected exit code {code}: {}",
            self.describe()
        );
        self
    }

    /// The one non-empty line on stderr of a command that failed as a user mistake
    /// should: a non-zero exit, exactly one line, no panic. Panics otherwise.
    #[track_caller]
    pub fn one_error_line(&self) -> String {
        assert!(!self.status.success(), "it succeeded: {}", self.describe());
        assert!(!self.stderr.contains("panicked"), "{}", self.describe());
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert_eq!(lines.len(), 1, "want one line: {}", self.describe());
        lines[0].to_owned()
    }

    /// The lines of stderr that are not the transcript or log output: the one-line
    /// failure message `sokkel: ...`.
    pub fn failure_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("sokkel: "))
            .collect()
    }

    /// The single `sokkel: ...` failure line; panics if there is not exactly one.
    #[track_caller]
    pub fn failure(&self) -> &str {
        let lines = self.failure_lines();
        assert_eq!(
            lines.len(),
            1,
            "expected one `sokkel: ...` line on stderr: {}",
            self.describe()
        );
        lines[0]
    }

    /// The transcript lines of `-v` output (` -> `, ` <- `, ` ~> `, ` <~ `, `=== `).
    pub fn transcript(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| {
                l.starts_with(" -> ")
                    || l.starts_with(" <- ")
                    || l.starts_with(" ~> ")
                    || l.starts_with(" <~ ")
                    || l.starts_with("=== ")
            })
            .collect()
    }
}

/// A command to run to completion: `sokkel ARGS` ([`sokkel`]) or any program
/// ([`program`]), with every `SOKKEL_*` variable of the test's own environment
/// removed so the developer's settings cannot leak into a test, stdin empty and a
/// deadline of [`COMMAND_LIMIT`] unless the test says otherwise.
#[derive(Debug)]
pub struct Run {
    command: Command,
    stdin: Vec<u8>,
    timeout: Duration,
    shown: String,
}

/// `sokkel ARGS`, to be run with [`Run::run`]. `mail serve` listens for POP3 and
/// IMAP on ports of its own choosing unless the arguments name them.
pub fn sokkel<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> Run {
    let mut run = program(SOKKEL, args);
    run.command
        .env("SOKKEL_POP3_LISTEN", "127.0.0.1:0")
        .env("SOKKEL_IMAP_LISTEN", "127.0.0.1:0");
    run
}

/// `PROGRAM ARGS`, to be run with [`Run::run`]; a program that is not installed
/// fails the test saying so.
pub fn program<S: AsRef<OsStr>>(
    program: impl AsRef<OsStr>,
    args: impl IntoIterator<Item = S>,
) -> Run {
    let mut command = Command::new(program.as_ref());
    let mut shown = Path::new(program.as_ref())
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    for arg in args {
        shown.push(' ');
        shown.push_str(&arg.as_ref().to_string_lossy());
        command.arg(arg);
    }
    without_sokkel_env(&mut command);
    Run {
        command,
        stdin: Vec::new(),
        timeout: COMMAND_LIMIT,
        shown,
    }
}

/// `python3 -c PROGRAM ARGS`. Every machine these tests run on has python3: a
/// missing one fails the test rather than skipping it.
pub fn python3(source: &str, args: &[&str]) -> Run {
    let mut run = program("python3", ["-c", source]);
    run.command.args(args);
    run.shown = format!("python3 -c <program> {}", args.join(" "));
    run
}

impl Run {
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.shown.push(' ');
        self.shown.push_str(&arg.as_ref().to_string_lossy());
        self.command.arg(arg);
        self
    }

    pub fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        for arg in args {
            self = self.arg(arg);
        }
        self
    }

    pub fn env(mut self, name: &str, value: impl AsRef<OsStr>) -> Self {
        self.command.env(name, value);
        self
    }

    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = bytes.into();
        self
    }

    pub fn current_dir(mut self, dir: &Path) -> Self {
        self.command.current_dir(dir);
        self
    }

    /// The deadline instead of [`COMMAND_LIMIT`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Runs to the end and collects the output; see [`run`].
    pub fn run(self) -> Finished {
        run_shown(self.command, &self.stdin, self.timeout, self.shown)
    }
}

/// Runs `command` with `stdin` piped in and waits for it to exit; kills it and panics,
/// showing what it printed, if it takes longer than `timeout`. The engine under
/// [`Run`], for a `Command` the test has built itself.
pub fn run(command: Command, stdin: &[u8], timeout: Duration) -> Finished {
    let shown = format!("{command:?}");
    run_shown(command, stdin, timeout, shown)
}

fn run_shown(mut command: Command, stdin: &[u8], timeout: Duration, what: String) -> Finished {
    let started = Instant::now();
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) if err.kind() == ErrorKind::NotFound => {
            panic!("{what}: program not found ({err}); install it (see .ci/run)")
        }
        Err(err) => panic!("cannot start {what}: {err}"),
    };
    let mut input = child.stdin.take().expect("stdin is piped");
    let stdin = stdin.to_vec();
    // A writer thread: the child may exit before reading it all (a broken pipe here is
    // fine), and a big stdin must not deadlock against a full stdout.
    let writer = thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let stdout = read_all_in_background(child.stdout.take().expect("stdout is piped"));
    let stderr = read_all_in_background(child.stderr.take().expect("stderr is piped"));
    let mut guard = ChildGuard::new(child, what.clone());
    let status = guard.wait_timeout(timeout);
    let elapsed = started.elapsed();
    drop(guard);
    let _ = writer.join();
    let stdout = stdout.join().unwrap_or_default();
    let stderr = String::from_utf8_lossy(&stderr.join().unwrap_or_default()).into_owned();
    match status {
        Some(status) => Finished {
            command: what,
            status,
            stdout,
            stderr,
            elapsed,
        },
        None => panic!(
            "{what} did not finish within {timeout:?}\nstdout:\n{}\nstderr:\n{stderr}",
            String::from_utf8_lossy(&stdout)
        ),
    }
}

/// Reads `pipe` to its end on a thread; joining it gives everything read.
pub fn read_all_in_background(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut out = Vec::new();
        let _ = pipe.read_to_end(&mut out);
        out
    })
}

// ---------------------------------------------------------------------------------------
// Programs nobody here wrote, and scratch space

/// Where `program` is installed, looking in PATH and the sbin directories Postfix
/// uses; fails the test, with what to install, when it is missing.
#[track_caller]
pub fn require_program(program: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from));
    for dir in dirs {
        let candidate = dir.join(program);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "interop peer missing: `{program}` is not installed. Install it with \
         `apt-get install -y {package}` (.ci/run installs it)."
    );
}

/// A fresh temporary directory, removed when dropped.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("sokkel-test-")
        .tempdir()
        .expect("cannot create a temporary directory")
}

/// A file in this kit's directory (the Python helpers in `py/`).
pub fn kit_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/kit")
        .join(name)
}
