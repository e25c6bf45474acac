//! `sokkel mail serve` for the differential test: SMTP and IMAP on free
//! loopback ports, a store in a temporary directory, one login; killed when
//! dropped. The binary is the one cargo built beside this test (`cargo test
//! --workspace` builds it; alone, `cargo build -p sokkel` first).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;

use super::DEADLINE;

/// The one login of the catcher.
pub const USER: &str = "tester";
/// Its password.
pub const PASSWORD: &str = "secret";

/// A running `sokkel mail serve`.
pub struct Sokkel {
    process: Child,
    pub smtp: SocketAddr,
    pub imap: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Sokkel {
    /// Starts the catcher and waits for the lines that say where it listens.
    pub fn start() -> Sokkel {
        let binary = binary();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let users = dir.path().join("users");
        std::fs::write(&users, format!("{USER}:{PASSWORD}\n")).expect("write the auth file");
        let mut process = Command::new(&binary)
            .args([
                "mail",
                "serve",
                "--smtp",
                "127.0.0.1:0",
                "--imap",
                "127.0.0.1:0",
            ])
            .args([
                "--pop3",
                "127.0.0.1:0",
                "--no-http",
                "--hostname",
                "sokkel.test",
            ])
            .arg("--db")
            .arg(dir.path().join("mail.db"))
            .arg("--auth-file")
            .arg(&users)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let lines = announced(&mut process);
        let address = |prefix: &str| {
            lines
                .iter()
                .find_map(|line| line.strip_prefix(prefix)?.parse().ok())
                .unwrap_or_else(|| {
                    panic!(
                        "sokkel did not say `{prefix}ADDR`; it said:\n{}",
                        lines.join("\n")
                    )
                })
        };
        Sokkel {
            smtp: address("listening on smtp "),
            imap: address("listening on imap "),
            process,
            _dir: dir,
        }
    }

    /// Delivers `message` over SMTP (with a final line break added if it
    /// has none, as SMTP needs).
    pub fn deliver(&self, message: &[u8]) {
        let stream = TcpStream::connect(self.smtp).expect("connect to sokkel's SMTP");
        stream
            .set_read_timeout(Some(DEADLINE))
            .expect("set a read timeout");
        let mut reader = BufReader::new(stream.try_clone().expect("clone the stream"));
        let mut writer = stream;
        let mut expect = |code: &str| loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("read an SMTP reply");
            assert!(
                line.starts_with(code),
                "SMTP: expected {code}, got {line:?}"
            );
            if line.as_bytes().get(3) != Some(&b'-') {
                break;
            }
        };
        expect("220");
        for (command, code) in [
            ("EHLO differential.test\r\n", "250"),
            ("MAIL FROM:<corpus@differential.test>\r\n", "250"),
            (&format!("RCPT TO:<{USER}@differential.test>\r\n"), "250"),
            ("DATA\r\n", "354"),
        ] {
            writer
                .write_all(command.as_bytes())
                .expect("send an SMTP command");
            expect(code);
        }
        let mut data = Vec::with_capacity(message.len() + 5);
        for line in message.split_inclusive(|&b| b == b'\n') {
            if line.starts_with(b".") {
                data.push(b'.');
            }
            data.extend_from_slice(line);
        }
        if !data.ends_with(b"\r\n") {
            data.extend_from_slice(b"\r\n");
        }
        data.extend_from_slice(b".\r\nQUIT\r\n");
        writer.write_all(&data).expect("send the message");
        expect("250");
        expect("221");
    }
}

impl Drop for Sokkel {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// `target/<profile>/sokkel`, beside the directory this test runs from.
fn binary() -> PathBuf {
    let test = std::env::current_exe().expect("the test's own path");
    let profile = test
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let binary = profile.join(format!("sokkel{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.exists(),
        "{} is missing: run `cargo build -p sokkel` (or the whole `cargo test --workspace`) first",
        binary.display()
    );
    binary
}

/// sokkel's stdout up to the lines that say it is ready and where IMAP
/// listens; the rest is read and dropped so that sokkel never blocks on a
/// full pipe.
fn announced(process: &mut Child) -> Vec<String> {
    let stdout = process.stdout.take().expect("piped stdout");
    let (lines_tx, lines_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });
    let started = Instant::now();
    let mut lines: Vec<String> = Vec::new();
    let ready = |lines: &[String]| {
        lines.iter().any(|l| l.starts_with("mail is kept in "))
            && lines.iter().any(|l| l.starts_with("listening on imap "))
    };
    while let Some(left) = DEADLINE.checked_sub(started.elapsed()) {
        let Ok(line) = lines_rx.recv_timeout(left) else {
            break;
        };
        lines.push(line);
        if ready(&lines) {
            std::thread::spawn(move || lines_rx.iter().for_each(drop));
            return lines;
        }
    }
    let _ = process.kill();
    panic!(
        "sokkel did not get ready within {DEADLINE:?}; it said:\n{}",
        lines.join("\n")
    );
}
