//! One configuration file for every command (issue #18): `--config FILE` or
//! `SOKKEL_CONFIG`, TOML, a table per command, keys named as the long flags; the
//! command line wins over SOKKEL_* variables, which win over the file, which wins
//! over the defaults. `--print-config` shows the result, secrets masked.

mod kit;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use kit::http::exchange;
use kit::net::free_tcp_port;
use kit::smtp::{Smtp, message};
use kit::{Catcher, Finished, sokkel, tempdir};

/// Writes `text` as `name` in `dir`; its path.
fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let file = dir.join(name);
    std::fs::write(&file, text).unwrap();
    file
}

/// The SIZE an SMTP server announces in its EHLO reply.
fn announced_size(addr: SocketAddr) -> u64 {
    let mut smtp = Smtp::open(addr);
    smtp.send(b"EHLO client.test\r\n");
    let reply = smtp.reply();
    let size = reply
        .iter()
        .find_map(|l| l.strip_prefix("250-SIZE ")?.parse().ok())
        .unwrap_or_else(|| panic!("no SIZE in {reply:?}"));
    smtp.quit();
    size
}

#[test]
fn the_file_sets_addresses_and_the_size_limit_and_variables_and_flags_win_over_it() {
    let dir = tempdir();
    let (smtp, http) = (free_tcp_port(), free_tcp_port());
    let config = write(
        dir.path(),
        "sokkel.toml",
        &format!(
            "[mail.serve]\nsmtp = \"127.0.0.1:{smtp}\"\nhttp = \"127.0.0.1:{http}\"\nmax-message-size = \"2KiB\"\ndb = \"{}\"\n",
            dir.path().join("mail.db").display()
        ),
    );

    // The file alone: it listens where the file says, and refuses what is too big.
    let catcher = Catcher::builder().config(&config).start();
    assert_eq!(catcher.smtp, [SocketAddr::from(([127, 0, 0, 1], smtp))]);
    assert_eq!(catcher.http(), SocketAddr::from(([127, 0, 0, 1], http)));
    assert_eq!(catcher.db, dir.path().join("mail.db"));
    assert_eq!(announced_size(catcher.addr()), 2048);
    let mut session = Smtp::ehlo(catcher.addr());
    let reply = session.send_message(
        "a@example.test",
        &["b@example.test"],
        &message("too big", &"x".repeat(4000)),
    );
    assert!(reply[0].starts_with("552 "), "{reply:?}");
    let id = session.deliver(
        "a@example.test",
        &["b@example.test"],
        &message("small", "ok"),
    );
    session.quit();
    assert_eq!(catcher.get_json("/api/v1/messages")["total"], 1);
    assert_eq!(catcher.only_message()["id"], id);
    drop(catcher);

    // The variable wins over the file; the flag wins over both. (The flags
    // also move the listeners off the file's ports, which the first server's
    // connections may still hold.)
    let elsewhere = ["--smtp", "127.0.0.1:0", "--no-http"];
    let catcher = Catcher::builder()
        .config(&config)
        .env("SOKKEL_MAX_MESSAGE_SIZE", "4KiB")
        .args(&elsewhere)
        .start();
    assert_ne!(catcher.addr().port(), smtp, "--smtp wins over the file");
    assert_eq!(catcher.http, None, "--no-http wins over the file's http");
    assert_eq!(announced_size(catcher.addr()), 4096);
    drop(catcher);
    let catcher = Catcher::builder()
        .config(&config)
        .env("SOKKEL_MAX_MESSAGE_SIZE", "4KiB")
        .args(&elsewhere)
        .args(&["--max-message-size", "8KiB"])
        .start();
    assert_eq!(announced_size(catcher.addr()), 8192);
}

#[test]
fn a_repeatable_flag_takes_a_list_and_sokkel_config_names_the_file() {
    let dir = tempdir();
    let (one, two) = (free_tcp_port(), free_tcp_port());
    let config = write(
        dir.path(),
        "sokkel.toml",
        &format!(
            "[mail.serve]\nsmtp = [\"127.0.0.1:{one}\", \"127.0.0.1:{two}\"]\nno-http = true\nephemeral = true\n"
        ),
    );
    let catcher = Catcher::builder()
        .config(&config)
        .env("SOKKEL_CONFIG", "/nonexistent/overridden.toml")
        .start();
    assert_eq!(
        catcher.smtp,
        [
            SocketAddr::from(([127, 0, 0, 1], one)),
            SocketAddr::from(([127, 0, 0, 1], two))
        ]
    );
    for addr in &catcher.smtp {
        Smtp::ehlo(*addr).quit();
    }
    assert_eq!(catcher.http, None, "no-http = true");
    drop(catcher);

    // SOKKEL_CONFIG names the file when --config does not.
    let done = sokkel(["mail", "serve", "--print-config"])
        .env("SOKKEL_CONFIG", &config)
        .run()
        .assert_success("print-config");
    let text = done.stdout_text();
    assert!(
        text.contains(&format!(
            "smtp = [\"127.0.0.1:{one}\", \"127.0.0.1:{two}\"]"
        )),
        "{text}"
    );
}

#[test]
fn a_switch_from_the_file_is_turned_off_by_its_variable() {
    let dir = tempdir();
    let config = write(
        dir.path(),
        "sokkel.toml",
        "[mail.serve]\nsmtp = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\"\nno-http = true\nephemeral = true\n",
    );
    let catcher = Catcher::builder().config(&config).start();
    assert_eq!(catcher.http, None, "no-http = true in the file");
    drop(catcher);
    let catcher = Catcher::builder()
        .config(&config)
        .env("SOKKEL_NO_HTTP", "false")
        .start();
    assert_eq!(catcher.get_json("/api/v1/messages")["total"], 0);
}

/// `sokkel mail serve ARGS --print-config`, which must succeed; its output.
fn print_config(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut run = sokkel(["mail", "serve"]).args(args).arg("--print-config");
    for (name, value) in env {
        run = run.env(name, value);
    }
    let done = run.run().assert_success("--print-config");
    assert_eq!(done.stderr, "", "{}", done.describe());
    done.stdout_text()
}

/// The settings in a printed configuration: its lines that are not comments,
/// without their comments (which say where each value came from).
fn settings(printed: &str) -> Vec<String> {
    printed
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split("  #").next().unwrap().trim_end().to_owned())
        .collect()
}

#[test]
fn print_config_says_where_each_value_comes_from_masks_secrets_and_reads_back_the_same() {
    let dir = tempdir();
    let config = write(
        dir.path(),
        "sokkel.toml",
        "[mail]\ndb = \"postgres://sokkel:hunter2@db.example/mail\"\n\n[mail.serve]\n\
         max-message-size = \"1MiB\"\nmax-recipients = 200\nsmtp = [\"127.0.0.1:2525\", \"[::1]:2525\"]\n\
         tls-self-signed = true\nephemeral = false\n",
    );
    let file = config.display().to_string();
    // A password in a file others can read is warned about (below); this one is private.
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    let printed = print_config(
        &["--config", &file, "--max-errors", "7"],
        &[
            ("SOKKEL_MAX_RECIPIENTS", "300"),
            (
                "SOKKEL_WEBHOOK_URL",
                "https://hook:s3cret@hooks.example/services/T0/B0/XYZ?token=abc",
            ),
        ],
    );
    for want in [
        "[mail.serve]".to_owned(),
        format!("max-message-size = \"1MiB\"  # {file}:5"),
        format!("smtp = [\"127.0.0.1:2525\", \"[::1]:2525\"]  # {file}:7"),
        format!("tls-self-signed = true  # {file}:8"),
        format!("db = \"postgres://sokkel:********@db.example/mail\"  # {file}:2"),
        "max-recipients = 300  # SOKKEL_MAX_RECIPIENTS".to_owned(),
        "max-errors = 7  # command line".to_owned(),
        "webhook-url = \"https://hook:********@hooks.example/********?********\"  # SOKKEL_WEBHOOK_URL"
            .to_owned(),
        "# max-line = 2048".to_owned(),
        "# hostname: not set".to_owned(),
    ] {
        assert!(
            printed
                .lines()
                .any(|l| l.split_whitespace().eq(want.split_whitespace())),
            "no {want:?} in:\n{printed}"
        );
    }
    for secret in ["hunter2", "s3cret", "XYZ", "token=abc"] {
        assert!(!printed.contains(secret), "{secret} in:\n{printed}");
    }

    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let done = sokkel(["mail", "serve", "--print-config", "--config"])
        .arg(&config)
        .run()
        .assert_success("--print-config");
    assert!(
        done.stderr.contains(&format!(
            "{file} holds a secret (a password in a URL, a token, a credential header) and other users can read it; `chmod 600` it"
        )),
        "{}",
        done.describe()
    );

    // Fed back as the file, the same settings come out.
    let again = write(dir.path(), "printed.toml", &printed);
    let reprinted = print_config(
        &["--config", &again.display().to_string()],
        &[("SOKKEL_MAX_RECIPIENTS", "300")],
    );
    assert_eq!(settings(&reprinted), settings(&printed), "{reprinted}");
    // What the command line gave now comes from the file.
    let from = format!("# {}:11", again.display());
    assert!(
        reprinted
            .lines()
            .any(|l| l.starts_with("max-errors = 7 ") && l.ends_with(&from)),
        "{reprinted}"
    );
}

#[test]
fn the_command_line_wins_over_a_setting_it_cannot_go_with() {
    let dir = tempdir();
    let config = write(
        dir.path(),
        "sokkel.toml",
        "[mail.serve]\nephemeral = true\n",
    );
    let db = dir.path().join("mail.db");
    let catcher = Catcher::builder()
        .config(&config)
        .args(&["--smtp", "127.0.0.1:0", "--no-http", "--db"])
        .arg(db.display().to_string())
        .start();
    catcher.send(&message("kept", "in the file the command line named"));
    assert_eq!(catcher.db, db);
    assert!(db.is_file());
}

#[test]
fn mistakes_in_the_file_are_one_line_naming_the_file_and_line_exit_2() {
    let dir = tempdir();
    let check = |text: &str, says: &[&str]| {
        let config = write(dir.path(), "sokkel.toml", text);
        let done: Finished = sokkel(["mail", "serve", "--config"]).arg(&config).run();
        done.expect_code(2);
        assert!(done.stdout.is_empty(), "{}", done.describe());
        let line = done.one_error_line();
        assert!(
            line.starts_with(&format!("sokkel: {}:", config.display())),
            "{line}"
        );
        for want in says {
            assert!(line.contains(want), "no {want:?} in {line:?}");
        }
    };
    check(
        "[mail.serve]\nmax-mesage-size = \"1MiB\"\n",
        &[
            "sokkel.toml:2:",
            "unknown setting `max-mesage-size` in [mail.serve]",
            "did you mean `max-message-size`?",
        ],
    );
    check(
        "[mail.serv]\nsmtp = \"127.0.0.1:0\"\n",
        &[":1:", "[mail.serv]", "did you mean [mail.serve]?"],
    );
    check(
        "[mail.serve]\nno-http = \"yes\"\n",
        &[
            ":2:",
            "`no-http`",
            "write no-http = true or no-http = false",
        ],
    );
    check(
        "[mail.serve]\n\nmax-message-size = \"lots\"\n",
        &[
            ":3:",
            "`max-message-size`",
            "invalid value 'lots'",
            "is not a size",
        ],
    );
    check(
        "[mail.serve]\nmax-errors = [1, 2]\n",
        &[":2:", "`max-errors`: takes one value, not a list"],
    );
    check(
        "[mail.serve]\nephemeral = true\ndb = \"mail.db\"\n",
        &["cannot be used with"],
    );
    check(
        "timeout = \"5s\"\n",
        &[":1:", "`timeout`", "means different things", "own table"],
    );
    check("[mail.serve\n", &[":1:"]);
    check(
        "[mail.serve]\nhttp = []\n",
        &[
            ":2:",
            "`http`: an empty list keeps the default (127.0.0.1:8025)",
            "no-http = true",
        ],
    );
    check(
        "[[mail.serve]]\nsmtp = \"127.0.0.1:0\"\n",
        &[
            ":1:",
            "[[mail.serve]]: arrays of tables are not supported",
            "[mail.serve]",
        ],
    );
    check(
        "[mail.serve]\nmax = 0x1_0000_0000_0000_0000_0000_0000_0000_0000\n",
        &[":2:", "`max`: 0x1_0000", "is too large a number"],
    );
    // Flags that only fail together, found by clap after the file is applied.
    check(
        "[mail.serve]\nephemeral = true\nui-tls-cert = \"cert.pem\"\n",
        &[
            ":3:",
            "`ui-tls-cert`",
            "the following required arguments were not provided: --ui-tls-key",
        ],
    );

    let missing = dir.path().join("nothing-here.toml");
    let done = sokkel(["mail", "list", "--config"]).arg(&missing).run();
    done.expect_code(2);
    let line = done.one_error_line();
    assert!(
        line.contains(&format!(
            "cannot read the configuration file {}",
            missing.display()
        )),
        "{line}"
    );
}

#[test]
fn other_commands_read_their_tables_and_the_shared_store_from_a_parent_table() {
    let catcher = Catcher::start();
    let dir = tempdir();
    let config = write(
        dir.path(),
        "sokkel.toml",
        &format!(
            "[mail]\ndb = \"{}\"\n\n[mail.send]\nserver = \"{}\"\nto = [\"one@example.test\", \"two@example.test\"]\nsubject = \"from the file\"\n",
            catcher.db.display(),
            catcher.server()
        ),
    );
    // `mail send` takes its required --to, and its server, from the file.
    sokkel(["mail", "send", "--body", "hello", "--config"])
        .arg(&config)
        .run()
        .assert_success("mail send --config");
    // `mail list` finds the store through [mail].
    let done = sokkel(["mail", "list", "--json", "--config"])
        .arg(&config)
        .run()
        .assert_success("mail list --config");
    let list: serde_json::Value = serde_json::from_slice(&done.stdout).unwrap();
    assert_eq!(list[0]["subject"], "from the file", "{list:#}");
    let (_, to) = catcher.envelope("latest");
    assert_eq!(to, ["one@example.test", "two@example.test"]);
    // --config before the command, and a command with an argument of its own.
    let done = sokkel(["--config"])
        .arg(&config)
        .args(["mail", "show", "latest", "--keep-unread"])
        .run()
        .assert_success("mail show --config");
    assert!(
        done.stdout_text().contains("from the file"),
        "{}",
        done.describe()
    );
}

#[test]
fn the_example_file_in_packaging_is_one_every_command_it_names_accepts() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/sokkel.toml");
    let printed = print_config(&["--config", &example.display().to_string()], &[]);
    assert!(
        printed
            .lines()
            .any(|l| l.starts_with("db = \"/var/lib/sokkel/mail.db\" ")),
        "{printed}"
    );
    for command in [
        &["mail", "send", "--to", "a@example.test"][..],
        &["mail", "list"],
    ] {
        sokkel(command)
            .args(["--print-config", "--config"])
            .arg(&example)
            .run()
            .assert_success("--print-config with the example");
    }
}

/// `GET /api/v1/messages` on `http`, with `authorization` if given; its status.
fn messages_status(http: SocketAddr, authorization: Option<&str>) -> u16 {
    let mut request =
        format!("GET /api/v1/messages HTTP/1.1\r\nHost: {http}\r\nConnection: close\r\n");
    if let Some(value) = authorization {
        request.push_str(&format!("Authorization: {value}\r\n"));
    }
    request.push_str("\r\n");
    exchange(http, request.as_bytes()).status
}

#[test]
fn switches_their_variables_turn_off_leave_the_files_login_and_store_in_place() {
    // /etc/default/sokkel often says SOKKEL_NO_HTTP=false: that must not drop
    // the file's ui-auth-file (issue #18, review), which --no-http excludes, nor
    // its db, which --ephemeral excludes.
    let dir = tempdir();
    let users = write(dir.path(), "web-users", "alice:Open-Sesame-42\n");
    let db = dir.path().join("from-the-file.db");
    let config = write(
        dir.path(),
        "sokkel.toml",
        &format!(
            "[mail.serve]\nsmtp = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\"\nui-auth-file = \"{}\"\ndb = \"{}\"\n",
            users.display(),
            db.display()
        ),
    );
    let catcher = Catcher::builder()
        .config(&config)
        .env("SOKKEL_NO_HTTP", "false")
        .env("SOKKEL_EPHEMERAL", "false")
        .start();
    assert_eq!(messages_status(catcher.http(), None), 401);
    // alice:Open-Sesame-42
    let alice = "Basic YWxpY2U6T3Blbi1TZXNhbWUtNDI=";
    assert_eq!(messages_status(catcher.http(), Some(alice)), 200);
    assert_eq!(catcher.db, db);
    catcher.send(&message("kept", "where the file says"));
    assert!(db.is_file());
    drop(catcher);

    // And likewise for the SMTP login: SOKKEL_AUTH_ACCEPT_ANY=false keeps auth-file.
    let auth = write(
        dir.path(),
        "auth.toml",
        &format!("[mail.serve]\nauth-file = \"{}\"\n", users.display()),
    );
    let printed = print_config(
        &["--config", &auth.display().to_string()],
        &[("SOKKEL_AUTH_ACCEPT_ANY", "false")],
    );
    assert!(
        printed
            .lines()
            .any(|l| l.starts_with("auth-file = ")
                && l.ends_with(&format!("# {}:2", auth.display()))),
        "{printed}"
    );

    // On the command line too, a switch that is off excludes nothing.
    let done = sokkel(["mail", "serve", "--print-config", "--ui-auth-file"])
        .arg(&users)
        .env("SOKKEL_NO_HTTP", "false")
        .run()
        .assert_success("--ui-auth-file with SOKKEL_NO_HTTP=false");
    assert!(
        done.stdout_text().contains("no-http = false"),
        "{}",
        done.describe()
    );
}

#[test]
fn a_file_setting_the_command_line_overrules_is_named_on_stderr() {
    let dir = tempdir();
    let users = write(dir.path(), "web-users", "alice:Open-Sesame-42\n");
    let config = write(
        dir.path(),
        "sokkel.toml",
        &format!(
            "[mail.serve]\nephemeral = true\nui-auth-file = \"{}\"\n",
            users.display()
        ),
    );
    let done = sokkel(["mail", "serve", "--print-config", "--no-http", "--config"])
        .arg(&config)
        .run()
        .assert_success("--print-config");
    assert!(
        done.stderr.contains(&format!(
            "{}:3: `ui-auth-file` is not used: --no-http on the command line cannot go with it",
            config.display()
        )),
        "{}",
        done.describe()
    );
    let done = sokkel(["mail", "serve", "--print-config", "--config"])
        .arg(&config)
        .env("SOKKEL_DB", dir.path().join("mail.db"))
        .run()
        .assert_success("--print-config");
    assert!(
        done.stderr.contains(&format!(
            "{}:2: `ephemeral` is not used: SOKKEL_DB (which sets --db) cannot go with it",
            config.display()
        )),
        "{}",
        done.describe()
    );
}

#[test]
fn print_config_masks_credential_headers_and_passwords_url_readers_split_differently() {
    let dir = tempdir();
    let config = write(
        dir.path(),
        "sokkel.toml",
        "[mail.send]\nheader = [\"X-Api-Key: k-Quokka-77\", \"X-Mailer: sokkel\"]\n",
    );
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let done = sokkel(["mail", "send", "--to", "a@example.test", "--print-config"])
        .args([
            "--header",
            "Authorization: Bearer tok-Walrus-31",
            "--config",
        ])
        .arg(&config)
        .run()
        .assert_success("--print-config");
    let printed = done.stdout_text();
    assert!(
        printed.contains("header = [\"Authorization: ********\"]  # command line"),
        "{printed}"
    );
    assert!(!printed.contains("Walrus"), "{printed}");
    // The file's headers give way to the command line's; a secret in them is
    // still a secret in a file others can read.
    assert!(
        done.stderr
            .contains("other users can read it; `chmod 600` it"),
        "{}",
        done.describe()
    );
    let done = sokkel(["mail", "send", "--to", "a@example.test", "--print-config"])
        .arg("--config")
        .arg(&config)
        .run()
        .assert_success("--print-config");
    let printed = done.stdout_text();
    assert!(
        printed.contains("header = [\"X-Api-Key: ********\", \"X-Mailer: sokkel\"]"),
        "{printed}"
    );
    assert!(!printed.contains("Quokka"), "{printed}");

    for db in [
        "postgresql://u:hun/ter2@db.example/mail",
        "postgresql://u:hun#ter2@db.example/mail",
        "postgresql://u:hun?ter2@db.example/mail",
    ] {
        let printed = print_config(&["--db", db], &[]);
        assert!(
            printed.contains("db = \"postgresql://u:********@db.example/mail\""),
            "{printed}"
        );
        assert!(!printed.contains("hun"), "{printed}");
    }
}

#[test]
fn a_config_file_named_like_a_command_is_read() {
    let dir = tempdir();
    write(dir.path(), "serve", "[mail.serve]\nmax-recipients = 321\n");
    let done = sokkel(["mail", "--config", "serve", "serve", "--print-config"])
        .current_dir(dir.path())
        .run()
        .assert_success("--config serve");
    assert!(
        done.stdout_text()
            .lines()
            .any(|l| l.starts_with("max-recipients = 321 ") && l.ends_with("# serve:2")),
        "{}",
        done.describe()
    );
}

#[test]
fn an_empty_sokkel_config_names_no_file() {
    // A blank `SOKKEL_CONFIG=` in the unit's EnvironmentFile.
    sokkel(["completions", "bash"])
        .env("SOKKEL_CONFIG", "")
        .run()
        .assert_success("completions with SOKKEL_CONFIG empty");
    let done = sokkel(["mail", "list", "--print-config"])
        .env("SOKKEL_CONFIG", "")
        .run()
        .assert_success("mail list with SOKKEL_CONFIG empty");
    assert!(
        done.stdout_text()
            .contains("which win over a file (--config)"),
        "{}",
        done.describe()
    );
}

#[test]
fn an_empty_list_for_a_flag_without_a_default_sets_nothing() {
    let dir = tempdir();
    let config = write(
        dir.path(),
        "sokkel.toml",
        "[mail.serve]\ntag = []\nmax-recipients = 200\n",
    );
    let printed = print_config(&["--config", &config.display().to_string()], &[]);
    assert!(printed.contains("# tag: not set"), "{printed}");
    assert!(printed.contains("max-recipients = 200"), "{printed}");
}
