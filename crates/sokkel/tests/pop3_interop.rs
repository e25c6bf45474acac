//! POP3 on `sokkel mail serve` against mail programs nobody here wrote (issue #6):
//! s-nail reading and deleting, and fetchmail downloading every message
//! byte-identical to what `sokkel mail show --raw` prints. `.ci/run` installs them.

mod kit;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use kit::catcher::ids;
use kit::process::{require_program, run};
use kit::smtp::{Smtp, message, show};
use kit::{COMMAND_LIMIT, Catcher, tempdir};

/// A catcher whose only user is `morty` / `secret`, holding `messages` sent over
/// SMTP to morty@example.test; their ids, and a scratch directory for the client.
fn catcher_with(messages: &[Vec<u8>]) -> (Catcher, Vec<u64>, tempfile::TempDir) {
    let dir = tempdir();
    let catcher = Catcher::builder().users("morty:secret\n").start();
    let mut smtp = Smtp::ehlo(catcher.addr());
    let sent = messages
        .iter()
        .map(|m| smtp.deliver("rick@example.test", &["morty@example.test"], m))
        .collect();
    smtp.quit();
    (catcher, sent, dir)
}

#[test]
#[ignore = "interop: needs s-nail; .ci/run installs it and runs cargo test -- --ignored"]
fn s_nail_reads_and_deletes_over_pop3() {
    let s_nail = require_program("s-nail", "s-nail");
    let (catcher, sent, dir) = catcher_with(&[
        message("first from rick", "Wubba lubba dub dub"),
        message("second from rick", "Get schwifty"),
    ]);
    let port = catcher.pop3[0].port();
    let mut command = Command::new(s_nail);
    command
        .env("HOME", dir.path())
        .env("LC_ALL", "C")
        // -:/ no configuration files; -# batch mode, commands from stdin.
        .args(["-:/", "-#", "-S", "v15-compat"])
        .arg("-S")
        .arg(format!("password-morty@127.0.0.1:{port}=secret"))
        .arg("-f")
        .arg(format!("pop3://morty@127.0.0.1:{port}"));
    let done = run(
        command,
        b"headers\nprint 1\ndelete 1\nquit\n",
        COMMAND_LIMIT,
    );
    let out = format!("{}\n{}", done.stdout_text(), done.stderr);
    assert!(done.status.success(), "{}", done.describe());
    assert!(
        out.contains("first from rick") && out.contains("second from rick"),
        "{out}"
    );
    assert!(
        out.contains("Wubba lubba dub dub"),
        "print 1 shows the body: {out}"
    );
    assert!(!out.contains("Get schwifty"), "{out}");
    assert_eq!(
        ids(&catcher.list()),
        vec![sent[1]],
        "s-nail's delete took effect when it quit: {out}"
    );
}

/// An MDA for fetchmail that writes each message to a new file in `into`.
fn write_mda(dir: &Path, into: &Path) -> std::path::PathBuf {
    let script = dir.join("deliver.sh");
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

/// The message fetchmail delivered, without the Received header it puts on top
/// (`Received: from 127.0.0.1 ...` and its continuation lines).
fn without_fetchmail_received(delivered: &[u8]) -> &[u8] {
    assert!(
        delivered.starts_with(b"Received: from 127.0.0.1"),
        "fetchmail's Received header first: {}",
        show(delivered)
    );
    let mut pos = 0;
    loop {
        let end = pos
            + delivered[pos..]
                .iter()
                .position(|&b| b == b'\n')
                .expect("a complete header line")
            + 1;
        pos = end;
        if !matches!(delivered.get(pos), Some(b' ' | b'\t')) {
            return &delivered[pos..];
        }
    }
}

#[test]
#[ignore = "interop: needs fetchmail; .ci/run installs it and runs cargo test -- --ignored"]
fn fetchmail_downloads_every_message_byte_identical() {
    let fetchmail = require_program("fetchmail", "fetchmail");
    let mut big = b"Subject: big one\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n".to_vec();
    for n in 0..5000 {
        big.extend_from_slice(
            format!(".{n} blåbærsyltetøy, a line that starts with a dot\r\n").as_bytes(),
        );
    }
    let (catcher, sent, dir) = catcher_with(&[
        message("plain", "hello"),
        b"Subject: dots\r\n\r\n.\r\n..\r\n. .\r\nend\r\n".to_vec(),
        big,
    ]);
    let raws: Vec<Vec<u8>> = sent.iter().map(|id| catcher.raw(*id)).collect();
    let home = dir.path().join("home");
    let inbox = dir.path().join("inbox");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&inbox).unwrap();
    let mda = write_mda(dir.path(), &inbox);
    // no rewrite, no stripcr: keep the bytes as the server sent them; sslproto '':
    // clear text on loopback, as the catcher offers no STLS without a certificate.
    let rc = home.join(".fetchmailrc");
    std::fs::write(
        &rc,
        format!(
            "set no bouncemail\n\
             poll 127.0.0.1 with protocol POP3 port {} no envelope\n\
             \x20 user \"morty\" there with password \"secret\"\n\
             \x20 options no rewrite no stripcr sslproto '' fetchall\n\
             \x20 mda \"{}\"\n",
            catcher.pop3[0].port(),
            mda.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&rc, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut command = Command::new(fetchmail);
    command
        .env("HOME", &home)
        .env("FETCHMAILHOME", &home)
        .arg("-f")
        .arg(&rc)
        .arg("--pidfile")
        .arg(home.join("fetchmail.pid"))
        .args(["--nosyslog", "-v"]);
    let done = run(command, b"", COMMAND_LIMIT);
    assert!(done.status.success(), "{}", done.describe());
    assert!(
        !done.stdout_text().contains("secret") && !done.stderr.contains("PASS secret"),
        "fetchmail -v masks the password, and so does the server"
    );

    let mut delivered: Vec<Vec<u8>> = std::fs::read_dir(&inbox)
        .unwrap()
        .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
        .collect();
    assert_eq!(delivered.len(), raws.len(), "{}", done.describe());
    for raw in &raws {
        let found = delivered
            .iter()
            .position(|d| without_fetchmail_received(d) == raw.as_slice());
        match found {
            Some(at) => {
                delivered.remove(at);
            }
            None => panic!(
                "no delivered message equals `mail show --raw`:\n{}\ndelivered:\n{}",
                show(raw),
                delivered
                    .iter()
                    .map(|d| show(d))
                    .collect::<Vec<_>>()
                    .join("\n----\n")
            ),
        }
    }
    assert!(
        catcher.list().is_empty(),
        "fetchmail deleted what it fetched, at QUIT"
    );
}
