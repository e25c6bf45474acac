//! A part of a test run in a second process: the test binary itself, started
//! again with only one test selected and the part's arguments in an
//! environment variable. A SQLite store's log is owned per process, so what
//! another process sees (a CLI command while `mail serve` runs) can only be
//! tested from another process.
//!
//! ```text
//! test ──spawn(current_exe --exact NAME, SOKKEL_TEST_OTHER_PROCESS=args)──▶ NAME: other_process_args() = Some(args)
//! ```
//!
//! The selected test is an ordinary `#[test]` that returns at once when
//! [`other_process_args`] is `None` (every normal run).

#![allow(dead_code)] // each test file uses what it needs

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const VARIABLE: &str = "SOKKEL_TEST_OTHER_PROCESS";

/// Run the test `name` of this binary in a second process with `args`, and
/// return what it printed on stdout; panics, with its output, if it fails or
/// takes more than a minute.
pub fn run(name: &str, args: &[&str]) -> String {
    run_with(name, args, &[])
}

/// [`run`] with environment variables of its own.
pub fn run_with(name: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(VARIABLE, args.join("\n"))
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read while it runs: a child that fills a pipe would wait for us.
    let stdout = read_all(child.stdout.take().unwrap());
    let stderr = read_all(child.stderr.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stdout = stdout.join().unwrap();
    let stderr = stderr.join().unwrap();
    assert!(
        status.is_some_and(|status| status.success()),
        "the other process ({name} {args:?}) failed ({status:?}):\n{stdout}\n{stderr}"
    );
    stdout
}

/// Everything `pipe` gives until it closes, read on a thread of its own.
fn read_all(mut pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Start the test `name` of this binary in a second process with `args` (and
/// the environment `env` besides), its stdout piped: for a part that runs
/// alongside the test, which reads its lines as they come. The caller waits
/// for it (or kills it).
pub fn spawn(name: &str, args: &[&str]) -> Child {
    spawn_with(name, args, &[])
}

/// [`spawn`] with environment variables of its own.
pub fn spawn_with(name: &str, args: &[&str], env: &[(&str, &str)]) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(VARIABLE, args.join("\n"))
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

/// In the second process: the arguments it was given. `None` in a normal
/// run of the test.
pub fn other_process_args() -> Option<Vec<String>> {
    let args = std::env::var(VARIABLE).ok()?;
    Some(args.split('\n').map(str::to_owned).collect())
}

/// What the second process prints for the first to read back: one line
/// `ANSWER value` (the test harness prints its own lines around it).
pub fn answer(value: impl std::fmt::Display) {
    println!("ANSWER {value}");
}

/// The value of the `ANSWER` line in `stdout`.
pub fn answer_in(stdout: &str) -> &str {
    stdout
        .lines()
        .find_map(|line| after_marker(line, "ANSWER "))
        .unwrap_or_else(|| panic!("no answer in:\n{stdout}"))
}

/// What follows `marker` in `line`: the harness may have begun the line
/// (`test NAME ... `) before the test printed its own.
pub fn after_marker<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    line.find(marker).map(|at| &line[at + marker.len()..])
}
