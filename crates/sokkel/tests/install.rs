//! sokkel installed like a tool: the shell completions and man pages generated from
//! the command line's definition (`sokkel completions SHELL`, `sokkel man`), and the
//! systemd unit in packaging/sokkel.service.
//!
//! The tests without `#[ignore]` need only bash. The interop tests need groff, zsh,
//! fish and systemd-analyze; `.ci/run` installs them and runs `cargo test -- --ignored`.

mod kit;

use std::path::{Path, PathBuf};

use kit::process::require_program;
use kit::{Catcher, Finished, program, sokkel, tempdir};

/// `sokkel completions SHELL`, which must succeed and print a script.
#[track_caller]
fn completions(shell: &str) -> String {
    let done = sokkel(["completions", shell]).run();
    let done = done.assert_success("sokkel completions");
    assert!(done.stderr.is_empty(), "{}", done.describe());
    let script = done.stdout_text();
    assert!(!script.is_empty(), "{}", done.describe());
    script
}

/// What bash offers after `line` (the last word is the one being completed), with the
/// script of `sokkel completions bash` sourced, as bash-completion would load it.
fn bash_offers(script: &Path, line: &str) -> Vec<String> {
    // COMP_WORDS, COMP_CWORD and the function's arguments as bash sets them on Tab.
    let driver = r#"
source "$1"
read -r -a COMP_WORDS <<< "$2"
case "$2" in *" ") COMP_WORDS+=("") ;; esac
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
COMP_LINE="$2"
COMP_POINT=${#COMP_LINE}
prev=""
(( COMP_CWORD > 0 )) && prev="${COMP_WORDS[COMP_CWORD-1]}"
_sokkel sokkel "${COMP_WORDS[COMP_CWORD]}" "$prev"
printf '%s\n' "${COMPREPLY[@]}"
"#;
    let done = program("bash", ["-c", driver, "bash"])
        .arg(script)
        .arg(line)
        .run()
        .assert_success("bash completing");
    done.stdout_text()
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn bash_completion_is_valid_bash_and_completes_commands_and_flags() {
    let dir = tempdir();
    let script = dir.path().join("sokkel.bash");
    std::fs::write(&script, completions("bash")).unwrap();
    program("bash", ["-n"])
        .arg(&script)
        .run()
        .assert_success("bash -n on the completion script");

    let offers = |line: &str| bash_offers(&script, line);
    assert_eq!(offers("sokkel ma"), ["mail", "man"]);
    assert!(
        offers("sokkel mail se").iter().any(|w| w == "serve"),
        "{:?}",
        offers("sokkel mail se")
    );
    assert_eq!(offers("sokkel mail serve --sm"), ["--smtp", "--smtps"]);
    let shells = offers("sokkel completions ");
    for shell in ["bash", "zsh", "fish"] {
        assert!(shells.iter().any(|w| w == shell), "{shells:?}");
    }
    // A flag's fixed values are offered after it.
    let policies = offers("sokkel mail serve --bare-lf ");
    assert!(
        policies.iter().any(|w| w == "reject") && policies.iter().any(|w| w == "accept"),
        "{policies:?}"
    );
}

#[test]
fn zsh_and_fish_completions_describe_the_commands_and_flags() {
    let zsh = completions("zsh");
    assert!(zsh.starts_with("#compdef sokkel\n"), "{zsh:.200}");
    for want in [
        "_sokkel()",
        "--smtp=[Address for SMTP",
        "'--db=[",
        ":: :_sokkel_commands",
    ] {
        assert!(zsh.contains(want), "no {want:?} in the zsh script");
    }
    let fish = completions("fish");
    for want in [
        "complete -c sokkel -n \"__fish_sokkel_needs_command\" -f -a \"mail\"",
        "-l smtp ",
        "-l db ",
    ] {
        assert!(fish.contains(want), "no {want:?} in the fish script");
    }
}

#[test]
fn an_unknown_shell_is_a_usage_error_naming_the_shells() {
    let done = sokkel(["completions", "tcsh"]).run();
    done.expect_code(2);
    assert!(done.stdout.is_empty(), "{}", done.describe());
    assert!(!done.stderr.contains("panicked"), "{}", done.describe());
    let first = done.stderr.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("error: invalid value 'tcsh'"),
        "{}",
        done.describe()
    );
    assert!(
        done.stderr.contains("[possible values: bash, zsh, fish]"),
        "{}",
        done.describe()
    );
}

/// `sokkel man ARGS`, which must succeed; the page's roff source.
#[track_caller]
fn man(args: &[&str]) -> String {
    let done = sokkel(["man"])
        .args(args)
        .run()
        .assert_success("sokkel man");
    assert!(done.stderr.is_empty(), "{}", done.describe());
    done.stdout_text()
}

/// The `.TH` line and the sections of a page, in order.
fn sections(page: &str) -> (String, Vec<String>) {
    let title = page
        .lines()
        .find(|l| l.starts_with(".TH "))
        .unwrap_or_else(|| panic!("no .TH line in:\n{page}"))
        .to_owned();
    let sections = page
        .lines()
        .filter_map(|l| l.strip_prefix(".SH "))
        .map(str::to_owned)
        .collect();
    (title, sections)
}

#[test]
fn man_pages_are_roff_pages_of_each_command() {
    let page = man(&[]);
    let (title, heads) = sections(&page);
    assert!(title.starts_with(".TH sokkel 1 "), "{title}");
    for want in ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "SUBCOMMANDS"] {
        assert!(heads.iter().any(|h| h == want), "no {want} in {heads:?}");
    }
    // The subcommands point at their own pages.
    assert!(page.contains("sokkel\\-mail(1)"), "{page}");

    // `sokkel man mail serve` is the catcher's page, with every flag, its default and
    // its SOKKEL_* variable.
    let serve = man(&["mail", "serve"]);
    let (title, heads) = sections(&serve);
    assert_eq!(title, ".TH sokkel-mail-serve 1  \"sokkel 0.1.0\" ");
    for want in [
        "NAME",
        "SYNOPSIS",
        "OPTIONS",
        "\"TLS AND AUTH\"",
        "POP3",
        "IMAP",
    ] {
        assert!(heads.iter().any(|h| h == want), "no {want} in {heads:?}");
    }
    for want in [
        "\\fB\\-\\-smtp\\fR",
        "[default: 127.0.0.1:1025]",
        "SOKKEL_SMTP_LISTEN",
        "\\fB\\-\\-max\\-age\\fR",
    ] {
        assert!(serve.contains(want), "no {want:?} in the serve page");
    }

    // --dir writes them all, named as `man` looks them up.
    let dir = tempdir();
    let done = sokkel(["man", "--dir"]).arg(dir.path()).run();
    let done = done.assert_success("sokkel man --dir");
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for want in [
        "sokkel.1",
        "sokkel-mail.1",
        "sokkel-mail-serve.1",
        "sokkel-mail-send.1",
        "sokkel-echo-bench.1",
        "sokkel-sendmail.1",
        "sokkel-completions.1",
        "sokkel-man.1",
    ] {
        assert!(names.iter().any(|n| n == want), "no {want} in {names:?}");
    }
    assert_eq!(
        done.stdout_text().trim(),
        format!(
            "wrote {} man pages into {}",
            names.len(),
            dir.path().display()
        )
    );
    let written = std::fs::read_to_string(dir.path().join("sokkel-mail-serve.1")).unwrap();
    assert_eq!(written, serve, "the page written is the page printed");
}

#[test]
fn man_for_a_command_that_does_not_exist_is_one_line() {
    for (args, says) in [
        (
            &["nosuch"][..],
            "`sokkel` has no command `nosuch`; it has: echo, mail,",
        ),
        (
            &["mail", "serv"],
            "`sokkel mail` has no command `serv`; it has: serve,",
        ),
        (
            &["mail", "serve", "now"],
            "`sokkel mail serve` has no commands under it; its page is `sokkel man mail serve`",
        ),
    ] {
        let done = sokkel(["man"]).args(args).run();
        done.expect_code(2);
        assert!(done.stdout.is_empty(), "{}", done.describe());
        let line = done.one_error_line();
        assert!(line.contains(says), "{args:?}: {line}");
    }
    let dir = tempdir();
    let missing = dir.path().join("man1");
    let done = sokkel(["man", "--dir"]).arg(&missing).run();
    done.expect_code(2);
    let line = done.one_error_line();
    assert!(line.contains("is not a directory"), "{line}");
    assert!(!missing.exists(), "nothing is created");
}

// ---------------------------------------------------------------------------------------
// The systemd unit

fn unit_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/sokkel.service")
}

/// The unit's `ExecStart=` words.
fn exec_start(unit: &str) -> Vec<String> {
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("the unit has an ExecStart= line");
    line.split_whitespace().map(str::to_owned).collect()
}

/// The unit, with this build's binary in ExecStart instead of the installed one.
fn unit_for_this_build(unit: &str) -> String {
    let words = exec_start(unit);
    unit.replace(
        &format!("ExecStart={}", words[0]),
        &format!("ExecStart={}", env!("CARGO_BIN_EXE_sokkel")),
    )
}

#[test]
fn the_units_command_line_starts_a_catcher_that_keeps_mail_in_the_state_directory() {
    let unit = std::fs::read_to_string(unit_file()).unwrap();
    for want in [
        "StateDirectory=sokkel\n",
        "DynamicUser=yes\n",
        "ProtectSystem=strict\n",
    ] {
        assert!(unit.contains(want), "no {want:?} in the unit");
    }
    let words = exec_start(&unit);
    // A bare name, which systemd looks up in /usr/local/bin, then /usr/bin.
    assert_eq!(words[0], "sokkel", "{words:?}");
    assert_eq!(words[1..3], ["mail", "serve"], "{words:?}");
    // %S is systemd's state directory root (/var/lib); StateDirectory= makes
    // %S/sokkel, the only place the service may write.
    let state = tempdir();
    let args: Vec<String> = words[3..]
        .iter()
        .map(|w| w.replace("%S/sokkel", &state.path().display().to_string()))
        .collect();
    assert!(
        args.iter().all(|a| !a.contains('%') && !a.contains('$')),
        "a specifier this test does not know: {args:?}"
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let catcher = Catcher::with(&args);
    let id = catcher.send(b"Subject: from the unit\r\n\r\nhello\r\n");
    assert_eq!(catcher.db, state.path().join("mail.db"));
    assert!(catcher.db.is_file(), "{}", catcher.db.display());
    let listed = catcher.list();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], id, "{listed:?}");
}

/// `systemd-analyze ARGS`.
fn systemd_analyze(args: &[&str], unit: &Path, man: &Path) -> Finished {
    program(require_program("systemd-analyze", "systemd"), args)
        .arg(unit)
        .env("MANPATH", man)
        .run()
}

#[test]
#[ignore = "interop: needs systemd-analyze (systemd) and man (man-db)"]
fn systemd_analyze_verifies_the_unit_and_rates_its_sandbox_safe() {
    let unit = std::fs::read_to_string(unit_file()).unwrap();
    let dir = tempdir();
    // The unit's Documentation= pages, as `sokkel man --dir` installs them.
    let man = dir.path().join("man");
    std::fs::create_dir_all(man.join("man1")).unwrap();
    sokkel(["man", "--dir"])
        .arg(man.join("man1"))
        .run()
        .assert_success("sokkel man --dir");
    let units = dir.path().join("units");
    std::fs::create_dir(&units).unwrap();
    let file = units.join("sokkel.service");
    std::fs::write(&file, unit_for_this_build(&unit)).unwrap();

    let done = systemd_analyze(&["verify"], &file, &man);
    done.expect_code(0);
    assert_eq!(done.stderr, "", "{}", done.describe());

    // The unit as shipped names a binary that is not installed here: verify says so,
    // and only that.
    let shipped = units.join("shipped").join("sokkel.service");
    std::fs::create_dir(shipped.parent().unwrap()).unwrap();
    std::fs::write(&shipped, &unit).unwrap();
    let done = systemd_analyze(&["verify"], &shipped, &man);
    let complaints: Vec<&str> = done.stderr.lines().collect();
    if Path::new(&exec_start(&unit)[0]).exists() {
        assert_eq!(complaints, Vec::<&str>::new(), "{}", done.describe());
    } else {
        assert_eq!(complaints.len(), 1, "{}", done.describe());
        assert!(
            complaints[0].contains("is not executable"),
            "{}",
            done.describe()
        );
    }

    // systemd's own rating of the sandbox: "OK" (below 2.0) or better.
    let done = systemd_analyze(&["security", "--offline=yes", "--no-pager"], &file, &man);
    let rating = done
        .stdout_text()
        .lines()
        .find_map(|l| {
            l.strip_prefix("→ Overall exposure level for sokkel.service: ")
                .map(str::to_owned)
        })
        .unwrap_or_else(|| panic!("no overall exposure level: {}", done.describe()));
    let score: f64 = rating
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{rating}"));
    assert!(score < 2.0, "exposure {rating}: {}", done.stdout_text());
}

#[test]
#[ignore = "interop: needs groff (groff-base)"]
fn every_man_page_renders_with_groff_without_a_warning() {
    let groff = require_program("groff", "groff-base");
    let dir = tempdir();
    sokkel(["man", "--dir"])
        .arg(dir.path())
        .run()
        .assert_success("sokkel man --dir");
    let mut pages = 0;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let page = entry.unwrap().path();
        // -ww: every warning groff has.
        let done = program(&groff, ["-man", "-Tutf8", "-ww"])
            .arg(&page)
            .env("MANWIDTH", "80")
            .run()
            .assert_success("groff");
        assert_eq!(done.stderr, "", "{}: {}", page.display(), done.stderr);
        // The header line names the page as `man` shows it: sokkel-mail-serve(1).
        let stem = page.file_stem().unwrap().to_string_lossy().into_owned();
        let text = done.stdout_text();
        assert!(
            text.starts_with(&format!("{stem}(1)")),
            "{}: {text}",
            page.display()
        );
        pages += 1;
    }
    assert!(pages >= 20, "{pages} pages");
    // The catcher's page as a user reads it: `sokkel man mail serve | man -l -`.
    let page = sokkel(["man", "mail", "serve"])
        .run()
        .assert_success("sokkel man mail serve");
    let done = program(require_program("man", "man-db"), ["-l", "-"])
        .stdin(page.stdout)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "80")
        .env("MAN_KEEP_FORMATTING", "")
        .run()
        .assert_success("man -l -");
    let text = done.stdout_text();
    assert!(text.contains("sokkel-mail-serve(1)"), "{text}");
    assert!(text.contains("--smtp <ADDR>"), "{text}");
}

#[test]
#[ignore = "interop: needs zsh and fish"]
fn zsh_and_fish_accept_their_scripts_and_fish_completes() {
    let dir = tempdir();
    let zsh_script = dir.path().join("_sokkel");
    std::fs::write(&zsh_script, completions("zsh")).unwrap();
    program(require_program("zsh", "zsh"), ["-n"])
        .arg(&zsh_script)
        .run()
        .assert_success("zsh -n on the completion script");

    let fish = require_program("fish", "fish");
    let fish_script = dir.path().join("sokkel.fish");
    std::fs::write(&fish_script, completions("fish")).unwrap();
    program(&fish, ["--no-execute"])
        .arg(&fish_script)
        .run()
        .assert_success("fish --no-execute on the completion script");
    // fish's own completion engine, with the script loaded.
    let offers = |line: &str| -> Vec<String> {
        let done = program(
            &fish,
            ["--no-config", "-c", "source $argv[1]; complete -C $argv[2]"],
        )
        .arg(&fish_script)
        .arg(line)
        .env("HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path())
        .env("XDG_DATA_HOME", dir.path())
        .run()
        .assert_success("fish complete -C");
        done.stdout_text()
            .lines()
            .map(|l| l.split('\t').next().unwrap_or_default().to_owned())
            .collect()
    };
    let commands = offers("sokkel ma");
    assert!(commands.iter().any(|w| w == "mail"), "{commands:?}");
    assert!(commands.iter().any(|w| w == "man"), "{commands:?}");
    let flags = offers("sokkel mail serve --sm");
    assert!(flags.iter().any(|w| w == "--smtp"), "{flags:?}");
}
