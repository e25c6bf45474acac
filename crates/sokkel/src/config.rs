//! One configuration file for every command (`--config FILE` or `SOKKEL_CONFIG`,
//! TOML), and `--print-config`. Sits between the raw arguments and clap: nothing
//! here knows a flag by name; every key, its type and its check come from the clap
//! definition in `cli.rs`, so flags added there are settings here at once.
//!
//! ```text
//! [mail.serve]                    # a table per command: sokkel mail serve
//! smtp = ["127.0.0.1:2525"]       # keys: the long flag names
//! max-message-size = "10MiB"
//! no-http = true                  # a switch: true or false
//!
//! [mail]                          # keys in a parent table: every command below
//! db = "/var/lib/sokkel/mail.db"  #   that has the flag (serve, list, show ...)
//! ```
//!
//! Precedence: the command line, then the flag's `SOKKEL_*` variable, then the file,
//! then the default. How, in two parses:
//!
//! 1. A parse with clap's requirements and conflicts relaxed (a required `--to`
//!    may come from the file) says which command runs, which file, and which flags
//!    the command line or the environment set.
//! 2. Each file setting those did not set becomes `--flag=value` after the user's
//!    arguments, and clap parses everything again with all its checks, as if the
//!    user had typed them. A file setting that cannot go with a flag the user gave
//!    is left out, with a warning. A switch its variable turns off
//!    (`SOKKEL_NO_HTTP=false`) is not given: it wins over the file's value of the
//!    same switch, but excludes nothing.
//!
//! A mistake in the file is one line, `FILE:LINE: what`, exit 2 (a usage error),
//! also when clap only finds it in the second parse (`ui-tls-cert` without
//! `ui-tls-key`).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};

use clap::builder::Resettable;
use clap::error::{ContextKind, ContextValue};
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command, CommandFactory, FromArgMatches};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::cli::Cli;

/// The clap id of `--config` (the field `Cli::config`).
const CONFIG_ID: &str = "config";
/// The clap id of `--print-config` (the field `Cli::print_config`).
const PRINT_ID: &str = "print_config";

/// What a secret is replaced with in `--print-config`.
const MASK: &str = "********";

/// Why the command line could not become a [`Cli`].
#[derive(Debug)]
pub enum Refusal {
    /// clap's own error (usage, `--help`, `--version`): `exit()` shows it.
    Clap(clap::Error),
    /// A mistake in the configuration file: one line, a usage error.
    File(String),
}

/// What the command line asks for.
// Made once at start: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Request {
    /// Run this command.
    Run(Cli),
    /// `--print-config`: the settings were printed; exit 0.
    Printed,
}

/// Parses `args` (the program name first) with the configuration file applied, or
/// prints the settings for `--print-config`.
pub fn parse(args: Vec<OsString>) -> Result<Request, Refusal> {
    let strict = empty_config_unset(Cli::command());
    // Pass 1. A failure here is the user's own command line: clap's strict
    // parse reports it (the relaxed one would show a relaxed usage line).
    let first = match relaxed(strict.clone()).try_get_matches_from(&args) {
        Ok(first) => first,
        Err(relaxed_error) => {
            return Err(Refusal::Clap(
                strict
                    .try_get_matches_from(&args)
                    .err()
                    .unwrap_or(relaxed_error),
            ));
        }
    };
    let mut built = strict.clone();
    built.build();
    let (path, first_leaf) = leaf(&first);
    let command = path.iter().fold(&built, |cmd, name| {
        cmd.find_subcommand(name).expect("a parsed command exists")
    });

    let file = first_leaf.get_one::<PathBuf>(CONFIG_ID).cloned();
    let applied = match &file {
        Some(file) => {
            let text = std::fs::read_to_string(file).map_err(|error| {
                Refusal::File(format!(
                    "cannot read the configuration file {}: {error}",
                    file.display()
                ))
            })?;
            let settings = Settings::read(file, &text, &built)?;
            let applied = settings.arguments(&path, command, first_leaf)?;
            if settings.holds_secret.get() {
                warn_if_readable(file);
            }
            applied
        }
        None => Vec::new(),
    };

    // Pass 2. A switch its variable turns off (SOKKEL_NO_HTTP=false) is as good
    // as not given: clap would count it as given, and refuse what it excludes.
    let off: Vec<&str> = command
        .get_arguments()
        .filter(|arg| {
            !arg.is_global_set()
                && first_leaf.value_source(arg.get_id().as_str()) == Some(ValueSource::EnvVariable)
                && !given_on(first_leaf, arg)
        })
        .map(|arg| arg.get_id().as_str())
        .collect();
    let strict = without_env(strict, &path, &off);
    let at = after_command(&args, &built, &path);
    let with_file = |leave_out: Option<usize>| {
        let mut args = args.clone();
        let words = applied
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != leave_out)
            .flat_map(|(_, a)| a.words.iter().cloned());
        args.splice(at..at, words);
        args
    };
    let matches = strict
        .clone()
        .try_get_matches_from(with_file(None))
        .map_err(|error| {
            blame(error, &applied, file.as_deref(), |leave_out| {
                strict
                    .clone()
                    .try_get_matches_from(with_file(Some(leave_out)))
            })
        })?;
    let (_, leaf_matches) = leaf(&matches);
    if leaf_matches.get_flag(PRINT_ID) {
        let from_file = applied.iter().map(|a| (a.id.clone(), a.line)).collect();
        let text = print(
            &path,
            command,
            first_leaf,
            leaf_matches,
            file.as_deref(),
            &from_file,
        );
        let mut out = std::io::stdout().lock();
        // A reader that went away (`| head`) is a normal end.
        let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
        return Ok(Request::Printed);
    }
    Cli::from_arg_matches(&matches)
        .map(Request::Run)
        .map_err(Refusal::Clap)
}

/// An empty SOKKEL_CONFIG names no file: a blank `SOKKEL_CONFIG=` line in the
/// unit's EnvironmentFile must not stop every command.
fn empty_config_unset(cmd: Command) -> Command {
    let empty = cmd
        .get_arguments()
        .find(|a| a.get_id() == CONFIG_ID)
        .and_then(Arg::get_env)
        .and_then(std::env::var_os)
        .is_some_and(|value| value.is_empty());
    if empty {
        cmd.mut_arg(CONFIG_ID, |a| a.env(None::<&str>))
    } else {
        cmd
    }
}

/// `cmd` with the flags `ids` of the command at `path` reading no variable.
fn without_env(cmd: Command, path: &[String], ids: &[&str]) -> Command {
    match path.split_first() {
        Some((name, rest)) => cmd.mut_subcommand(name, |sub| without_env(sub, rest, ids)),
        None => ids
            .iter()
            .fold(cmd, |cmd, id| cmd.mut_arg(*id, |a| a.env(None::<&str>))),
    }
}

/// Whether the command line or the environment gave `arg`: a switch only when
/// it is on, since `SOKKEL_NO_HTTP=false` says no more than leaving it out.
fn given_on(given: &ArgMatches, arg: &Arg) -> bool {
    let id = arg.get_id().as_str();
    let explicit = matches!(
        given.value_source(id),
        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
    );
    explicit
        && match switch_on(arg) {
            Some(on) => given.try_get_one::<bool>(id).ok().flatten() == Some(&on),
            None => true,
        }
}

/// For a switch, the value that means it is given (`--no-http`: true).
fn switch_on(arg: &Arg) -> Option<bool> {
    match arg.get_action() {
        ArgAction::SetTrue => Some(true),
        ArgAction::SetFalse => Some(false),
        _ => None,
    }
}

/// The second parse's refusal, for settings from the file that only fail
/// together with others (`ui-tls-cert` without `ui-tls-key`): the file's line of
/// each setting whose removal ends the refusal, or some of it; clap's own error
/// when the file is not to blame. `without(i)` parses again leaving out setting
/// `i`.
fn blame(
    error: clap::Error,
    applied: &[Applied],
    file: Option<&Path>,
    without: impl Fn(usize) -> Result<ArgMatches, clap::Error>,
) -> Refusal {
    let Some(file) = file else {
        return Refusal::Clap(error);
    };
    let (kind, flags, said) = (error.kind(), refused_flags(&error), clap_reason(&error));
    let culprits: Vec<&Applied> = applied
        .iter()
        .enumerate()
        .filter(|(i, a)| {
            !a.words.is_empty()
                && match without(*i) {
                    Ok(_) => true,
                    Err(other) if other.kind() != kind => true,
                    // Leaving out `tls-key` of a good pair adds a missing flag,
                    // but takes none away: it is not to blame.
                    Err(other) if !flags.is_empty() => {
                        let left = refused_flags(&other);
                        flags.iter().any(|flag| !left.contains(flag))
                    }
                    Err(other) => clap_reason(&other) != said,
                }
        })
        .map(|(_, a)| a)
        .collect();
    let Some((first, others)) = culprits.split_first() else {
        return Refusal::Clap(error);
    };
    let mut keys = format!("`{}`", first.key);
    if !others.is_empty() {
        let others: Vec<String> = others
            .iter()
            .map(|o| format!("`{}` on line {}", o.key, o.line))
            .collect();
        keys.push_str(&format!(" (with {})", others.join(", ")));
    }
    Refusal::File(format!(
        "{}:{}: {keys}: {}",
        file.display(),
        first.line,
        clap_reason(&error)
    ))
}

/// The flags a clap error names as missing or in conflict.
fn refused_flags(error: &clap::Error) -> Vec<String> {
    [ContextKind::InvalidArg, ContextKind::PriorArg]
        .into_iter()
        .filter_map(|kind| error.get(kind))
        .flat_map(|value| match value {
            ContextValue::String(one) => vec![one.clone()],
            ContextValue::Strings(many) => many.clone(),
            _ => Vec::new(),
        })
        .collect()
}

/// The command as clap defines it, without the checks that the file may satisfy
/// (required flags, flags one needs or excludes): pass 1 only learns where each
/// value came from.
fn relaxed(cmd: Command) -> Command {
    let groups: Vec<String> = cmd.get_groups().map(|g| g.get_id().to_string()).collect();
    let mut cmd = cmd.mut_args(|arg| {
        arg.required(false)
            .required_unless_present(Resettable::Reset)
            .requires(Resettable::Reset)
            .conflicts_with(Resettable::Reset)
            .exclusive(false)
    });
    for group in groups {
        cmd = cmd.mut_group(group, |g| {
            g.required(false)
                .multiple(true)
                .requires(Resettable::Reset)
                .conflicts_with(Resettable::Reset)
        });
    }
    cmd.mut_subcommands(relaxed)
}

/// Where the file's words go: right after the name of the command that runs,
/// before anything of the user's that a list of values could take (`mail import
/// PATH...`). Only global flags and command names come before it; a flag's value
/// that is spelt as a command's name (`--config serve`) is not one.
fn after_command(args: &[OsString], root: &Command, path: &[String]) -> usize {
    let mut at = 1;
    let mut cmd = root;
    for name in path {
        let sub = cmd.find_subcommand(name).expect("a parsed command exists");
        loop {
            let Some(word) = args.get(at) else {
                return args.iter().position(|a| a == "--").unwrap_or(args.len());
            };
            at += 1;
            let Some(word) = word.to_str() else { continue };
            if word == "--" {
                return at - 1;
            }
            if word == sub.get_name() || sub.get_all_aliases().any(|alias| alias == word) {
                break;
            }
            if takes_next_word(cmd, word) {
                at += 1;
            }
        }
        cmd = sub;
    }
    at
}

/// Whether `word`, an argument of `cmd`, is a flag whose value is the next word
/// (`--config FILE`, `-c FILE`, `-qc FILE`, not `--config=FILE` or `-cFILE`).
fn takes_next_word(cmd: &Command, word: &str) -> bool {
    let takes_value = |arg: &Arg| matches!(arg.get_action(), ArgAction::Set | ArgAction::Append);
    if let Some(long) = word.strip_prefix("--") {
        return !long.contains('=')
            && cmd.get_arguments().any(|a| {
                takes_value(a)
                    && (a.get_long() == Some(long)
                        || a.get_all_aliases().is_some_and(|all| all.contains(&long)))
            });
    }
    let Some(shorts) = word.strip_prefix('-') else {
        return false;
    };
    for (i, c) in shorts.char_indices() {
        let Some(arg) = cmd.get_arguments().find(|a| a.get_short() == Some(c)) else {
            return false;
        };
        if takes_value(arg) {
            return i + c.len_utf8() == shorts.len();
        }
    }
    false
}

/// The names of the subcommands that run (`["mail", "serve"]`) and their matches.
fn leaf(matches: &ArgMatches) -> (Vec<String>, &ArgMatches) {
    let mut path = Vec::new();
    let mut at = matches;
    while let Some((name, sub)) = at.subcommand() {
        path.push(name.to_owned());
        at = sub;
    }
    (path, at)
}

/// Whether the file may set `arg`: a flag with a long name, not a positional
/// argument, not `--help`, `--version`, `--config` or `--print-config`.
fn settable(arg: &Arg) -> bool {
    arg.get_long().is_some()
        && !matches!(
            arg.get_action(),
            ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong | ArgAction::Version
        )
        && arg.get_id() != CONFIG_ID
        && arg.get_id() != PRINT_ID
}

/// The flag of `cmd` that `key` names (its long name or an alias).
fn find_flag<'c>(cmd: &'c Command, key: &str) -> Option<&'c Arg> {
    cmd.get_arguments().filter(|a| settable(a)).find(|a| {
        a.get_long() == Some(key) || a.get_all_aliases().is_some_and(|all| all.contains(&key))
    })
}

/// The commands that run something (no subcommands) at or below `cmd`.
fn leaves(cmd: &Command) -> Vec<&Command> {
    if cmd.get_subcommands().next().is_none() {
        return vec![cmd];
    }
    cmd.get_subcommands()
        .filter(|c| c.get_name() != "help")
        .flat_map(leaves)
        .collect()
}

/// One `key = value` of the file that applies to the command that runs.
struct Setting<'t> {
    key: &'t Spanned<std::borrow::Cow<'t, str>>,
    value: &'t Spanned<DeValue<'t>>,
}

/// A setting of the file that the command runs with.
#[derive(Debug)]
struct Applied {
    /// The flag's clap id.
    id: String,
    /// The key as the file spells it.
    key: String,
    /// Its line in the file.
    line: usize,
    /// The arguments that say it (none for a switch set to false).
    words: Vec<OsString>,
}

/// The file, parsed and checked against the whole command tree.
struct Settings<'t> {
    file: &'t Path,
    text: &'t str,
    root: Spanned<DeTable<'t>>,
    /// Whether a value applied holds something `--print-config` would mask.
    holds_secret: std::cell::Cell<bool>,
}

impl<'t> Settings<'t> {
    /// Parses `text` and checks every key in it names a command or a flag, so a
    /// typo is found whichever command reads the file first.
    fn read(file: &'t Path, text: &'t str, root: &Command) -> Result<Self, Refusal> {
        let settings = Settings {
            file,
            text,
            holds_secret: std::cell::Cell::new(false),
            root: DeTable::parse(text).map_err(|error| {
                Refusal::File(format!(
                    "{}:{}: {}",
                    file.display(),
                    line_of(text, error.span()),
                    error.message().trim()
                ))
            })?,
        };
        settings.check(settings.root.get_ref(), root, &[])?;
        Ok(settings)
    }

    /// `FILE:LINE: what`, as a usage error.
    fn refuse(&self, span: Range<usize>, what: String) -> Refusal {
        Refusal::File(format!(
            "{}:{}: {what}",
            self.file.display(),
            line_of(self.text, Some(span))
        ))
    }

    fn check(&self, table: &DeTable<'t>, cmd: &Command, path: &[&str]) -> Result<(), Refusal> {
        let mut entries: Vec<_> = table.iter().collect();
        entries.sort_by_key(|(key, _)| key.span().start);
        for (key, value) in entries {
            let name: &str = key.get_ref();
            if let DeValue::Table(inner) = value.get_ref() {
                let Some(sub) = cmd
                    .get_subcommands()
                    .find(|c| c.get_name() == name && c.get_name() != "help")
                else {
                    let names = cmd.get_subcommands().map(Command::get_name);
                    return Err(self.refuse(key.span(), unknown_table(path, name, cmd, names)));
                };
                let mut inner_path = path.to_vec();
                inner_path.push(name);
                self.check(inner, sub, &inner_path)?;
                continue;
            }
            if let DeValue::Array(items) = value.get_ref()
                && !items.is_empty()
                && items.iter().all(|item| item.get_ref().is_table())
            {
                let mut here = path.to_vec();
                here.push(name);
                let what = match cmd.get_subcommands().find(|c| c.get_name() == name) {
                    Some(sub) => format!(
                        "[[{}]]: arrays of tables are not supported; write the settings of `{}` in one [{}] table",
                        here.join("."),
                        command_name(sub),
                        here.join(".")
                    ),
                    None => format!(
                        "`{name}` in {}: arrays of tables are not supported; a setting is `key = value`",
                        table_name(path)
                    ),
                };
                return Err(self.refuse(key.span(), what));
            }
            let having: Vec<(&Command, &Arg)> = leaves(cmd)
                .into_iter()
                .filter_map(|c| find_flag(c, name).map(|a| (c, a)))
                .collect();
            let Some((first_cmd, first)) = having.first() else {
                return Err(self.refuse(key.span(), unknown_key(path, name, cmd)));
            };
            // In a parent table a key must be one setting everywhere below it
            // (`db` is SOKKEL_DB for every mail command; `timeout` is not one).
            if let Some((other, _)) = having.iter().skip(1).find(|(_, a)| !same_setting(first, a)) {
                return Err(self.refuse(
                    key.span(),
                    format!(
                        "`{name}` in {} means different things in `{}` and `{}`; set it in the command's own table, e.g. [{}]",
                        table_name(path),
                        command_name(first_cmd),
                        command_name(other),
                        command_name(first_cmd).split(' ').skip(1).collect::<Vec<_>>().join(".")
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The settings for the command at `path`: its parent tables' keys first, its
    /// own table's last, so that the nearest wins.
    fn applying(&'t self, path: &[String], command: &Command) -> BTreeMap<String, Setting<'t>> {
        let mut found = BTreeMap::new();
        let mut table = Some(self.root.get_ref());
        for depth in 0..=path.len() {
            let Some(at) = table else { break };
            for (key, value) in at.iter() {
                if value.get_ref().is_table() {
                    continue;
                }
                if let Some(arg) = find_flag(command, key.get_ref()) {
                    found.insert(arg.get_id().to_string(), Setting { key, value });
                }
            }
            table = path.get(depth).and_then(|name| {
                at.iter()
                    .find(|(key, _)| key.get_ref() == name)
                    .and_then(|(_, value)| value.get_ref().as_table())
            });
        }
        found
    }

    /// The settings the command line and the environment left to the file, as
    /// `--flag=value` arguments, in the file's order of keys.
    fn arguments(
        &self,
        path: &[String],
        command: &Command,
        given: &ArgMatches,
    ) -> Result<Vec<Applied>, Refusal> {
        let set_by_user: Vec<&Arg> = command
            .get_arguments()
            .filter(|a| given_on(given, a))
            .collect();
        let mut applied = Vec::new();
        // The file's flags that are given (a switch set to false is not), each
        // with its line, to find two that cannot go together.
        let mut present: Vec<(usize, &Arg)> = Vec::new();
        for (id, setting) in self.applying(path, command) {
            let arg = command
                .get_arguments()
                .find(|a| a.get_id() == id.as_str())
                .expect("applying() found it in this command");
            // A secret in the file is one, whether or not this run uses it.
            let value = setting.value.get_ref();
            let items = match value {
                DeValue::Array(items) => items.iter().map(Spanned::get_ref).collect(),
                _ => vec![value],
            };
            if items
                .into_iter()
                .filter_map(scalar)
                .any(|text| masked(arg, &text) != text)
            {
                self.holds_secret.set(true);
            }
            // The command line and the environment win over the flag itself,
            // even to turn a switch off.
            if matches!(
                given.value_source(&id),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            ) {
                continue;
            }
            let key: &str = setting.key.get_ref();
            let line = line_of(self.text, Some(setting.key.span()));
            let words = self.words(command, arg, &setting)?;
            if words.is_empty() && setting.value.get_ref().as_array().is_some() {
                // An empty list of a flag without a default: nothing is set.
                continue;
            }
            if !words.is_empty() {
                // ... and over a flag that cannot go with it, but not in silence:
                // a dropped `ui-auth-file` is a web page without a login.
                if let Some(user) = set_by_user.iter().find(|u| conflict(command, arg, u)) {
                    tracing::warn!(
                        "{}:{line}: `{key}` is not used: {} cannot go with it",
                        self.file.display(),
                        given_by(user, given)
                    );
                    continue;
                }
                if let Some((other_line, other)) = present
                    .iter()
                    .find(|(_, other)| conflict(command, arg, other))
                {
                    return Err(self.refuse(
                        setting.key.span(),
                        format!(
                            "`{key}` cannot be used with `{}` (line {other_line}); keep one",
                            other.get_long().unwrap_or_default(),
                        ),
                    ));
                }
                present.push((line, arg));
            }
            applied.push(Applied {
                id,
                key: key.to_owned(),
                line,
                words,
            });
        }
        applied.sort_by_key(|a| a.line);
        Ok(applied)
    }

    /// The arguments that say what `setting` says, each value checked by the
    /// flag's own parser so that a mistake names the file's line.
    fn words(
        &self,
        command: &Command,
        arg: &Arg,
        setting: &Setting<'_>,
    ) -> Result<Vec<OsString>, Refusal> {
        let key: &str = setting.key.get_ref();
        let long = arg.get_long().expect("settable flags have a long name");
        let value = setting.value.get_ref();
        let refuse = |what: String| self.refuse(setting.value.span(), format!("`{key}`: {what}"));
        let flag = OsString::from(format!("--{long}"));
        match arg.get_action() {
            ArgAction::SetTrue | ArgAction::SetFalse => {
                let Some(on) = value.as_bool() else {
                    return Err(refuse(format!(
                        "a switch: write {key} = true or {key} = false, not {} {}",
                        article(value),
                        value.type_str()
                    )));
                };
                let given = matches!(arg.get_action(), ArgAction::SetTrue) == on;
                Ok(if given { vec![flag] } else { Vec::new() })
            }
            ArgAction::Count => {
                let times = value
                    .as_integer()
                    .and_then(|n| n.as_str().parse::<u8>().ok().filter(|_| n.radix() == 10))
                    .ok_or_else(|| refuse("a count: write a number from 0 to 255".into()))?;
                Ok(vec![flag; usize::from(times)])
            }
            ArgAction::Set | ArgAction::Append => {
                let values: Vec<&Spanned<DeValue<'_>>> = match value {
                    DeValue::Array(items)
                        if items.is_empty() && !arg.get_default_values().is_empty() =>
                    {
                        return Err(refuse(empty_list(command, arg)));
                    }
                    DeValue::Array(items) if matches!(arg.get_action(), ArgAction::Append) => {
                        items.iter().collect()
                    }
                    DeValue::Array(_) => {
                        return Err(refuse("takes one value, not a list".into()));
                    }
                    _ => vec![setting.value],
                };
                let mut words = Vec::new();
                for item in values {
                    let text = scalar(item.get_ref()).ok_or_else(|| {
                        let what = if item.get_ref().is_integer() {
                            format!("{} is too large a number", &self.text[item.span()])
                        } else {
                            format!(
                                "{} {} is not a value for --{long}; write a string or a number",
                                article(item.get_ref()),
                                item.get_ref().type_str()
                            )
                        };
                        self.refuse(item.span(), format!("`{key}`: {what}"))
                    })?;
                    let word = OsString::from(format!("--{long}={text}"));
                    if let Err(error) = check_value(arg, &word) {
                        return Err(
                            self.refuse(item.span(), format!("`{key}`: {}", clap_reason(&error)))
                        );
                    }
                    words.push(word);
                }
                Ok(words)
            }
            _ => Err(refuse("cannot be set in a file".into())),
        }
    }
}

/// `--db on the command line`, or `SOKKEL_DB`: who gave `arg`.
fn given_by(arg: &Arg, given: &ArgMatches) -> String {
    let flag = format!("--{}", arg.get_long().unwrap_or(arg.get_id().as_str()));
    match (given.value_source(arg.get_id().as_str()), arg.get_env()) {
        (Some(ValueSource::EnvVariable), Some(name)) => {
            format!("{} (which sets {flag})", name.to_string_lossy())
        }
        _ => format!("{flag} on the command line"),
    }
}

/// Why `key = []` is refused for a flag with a default: it would not clear the
/// default, which a reader of the file would expect.
fn empty_list(command: &Command, arg: &Arg) -> String {
    let long = arg.get_long().unwrap_or_default();
    let defaults: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    let mut what = format!(
        "an empty list keeps the default ({}); leave the line out for that",
        defaults.join(", ")
    );
    let off = format!("no-{long}");
    if command
        .get_arguments()
        .any(|a| a.get_long() == Some(off.as_str()) && switch_on(a).is_some())
    {
        what.push_str(&format!(", or turn it off with {off} = true"));
    }
    what
}

/// A secret in a file others can read is a secret others know.
fn warn_if_readable(file: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(file)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                "{} holds a secret (a password in a URL, a token, a credential header) and other users can read it; `chmod 600` it",
                file.display()
            );
        }
    }
    #[cfg(not(unix))]
    let _ = file;
}

/// Parses `word` (`--flag=value`) as its command would, but alone: the flag's own
/// parser and delimiter, none of its links to other flags.
fn check_value(arg: &Arg, word: &OsStr) -> Result<(), clap::Error> {
    let alone = arg
        .clone()
        .required(false)
        .required_unless_present(Resettable::Reset)
        .requires(Resettable::Reset)
        .conflicts_with(Resettable::Reset)
        .env(None::<&str>)
        .global(false);
    Command::new("sokkel")
        .no_binary_name(true)
        .disable_help_flag(true)
        .disable_version_flag(true)
        .arg(alone)
        .try_get_matches_from([word])
        .map(drop)
}

/// Whether clap would refuse `a` and `b` together: either names the other (or a
/// group holding it) in its conflicts, or both are in a group of which only one
/// may be given.
fn conflict(command: &Command, a: &Arg, b: &Arg) -> bool {
    if a.get_id() == b.get_id() {
        return false;
    }
    let names = |x: &Arg, y: &Arg| {
        command
            .get_arg_conflicts_with(x)
            .iter()
            .any(|c| c.get_id() == y.get_id())
    };
    names(a, b)
        || names(b, a)
        || command.get_groups().any(|group| {
            let mut group = group.clone();
            !group.is_multiple()
                && group.get_args().any(|id| id == a.get_id())
                && group.get_args().any(|id| id == b.get_id())
        })
}

/// A string, number or date as the command line would take it; none for a
/// list, a table, or a number too large for any flag.
fn scalar(value: &DeValue<'_>) -> Option<String> {
    match value {
        DeValue::String(s) => Some(s.to_string()),
        DeValue::Integer(n) if n.radix() == 10 => Some(n.as_str().replace('_', "")),
        // In decimal, for the flag's own parser to judge its range.
        DeValue::Integer(n) => u128::from_str_radix(&n.as_str().replace('_', ""), n.radix())
            .ok()
            .map(|n| n.to_string()),
        DeValue::Float(f) => Some(f.as_str().replace('_', "")),
        DeValue::Boolean(b) => Some(b.to_string()),
        DeValue::Datetime(d) => Some(d.to_string()),
        DeValue::Array(_) | DeValue::Table(_) => None,
    }
}

fn article(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::Integer(_) | DeValue::Array(_) => "an",
        _ => "a",
    }
}

/// clap's reason for refusing a value, on one line, without its `error: `, its
/// usage line and its `--help` hint.
fn clap_reason(error: &clap::Error) -> String {
    let text = error.to_string();
    let mut lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with("For more information") && !l.starts_with("Usage:")
        })
        .collect();
    if let Some(first) = lines.first_mut() {
        *first = first.strip_prefix("error: ").unwrap_or(first);
    }
    lines.join(" ")
}

/// The 1-based line of a byte offset in `text`.
fn line_of(text: &str, span: Option<Range<usize>>) -> usize {
    span.map_or(1, |span| {
        let start = span.start.min(text.len());
        text.as_bytes()[..start]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    })
}

/// `[mail.serve]`, or `the top level`.
fn table_name(path: &[&str]) -> String {
    if path.is_empty() {
        "the top level".into()
    } else {
        format!("[{}]", path.join("."))
    }
}

/// `sokkel mail serve` (the command tree must be built).
fn command_name(cmd: &Command) -> &str {
    cmd.get_bin_name().unwrap_or(cmd.get_name())
}

/// Whether two commands' flags of one name are one setting: they read the same
/// SOKKEL_* variable, or, without one, say the same in `--help`.
fn same_setting(a: &Arg, b: &Arg) -> bool {
    match (a.get_env(), b.get_env()) {
        (Some(x), Some(y)) => x == y,
        (None, None) => {
            a.get_help().map(ToString::to_string) == b.get_help().map(ToString::to_string)
        }
        _ => false,
    }
}

fn unknown_key(path: &[&str], key: &str, cmd: &Command) -> String {
    let flags: BTreeSet<&str> = leaves(cmd)
        .into_iter()
        .flat_map(|c| c.get_arguments().filter(|a| settable(a)))
        .filter_map(Arg::get_long)
        .collect();
    let mut what = format!("unknown setting `{key}` in {}", table_name(path));
    match nearest(key, flags.iter().copied()) {
        Some(near) => what.push_str(&format!("; did you mean `{near}`?")),
        None if path.is_empty() => {
            what.push_str("; flags go in the table of their command, e.g. [mail.serve]")
        }
        None => what.push_str(&format!("; `{} --help` lists the flags", command_name(cmd))),
    }
    what
}

fn unknown_table<'a>(
    path: &[&str],
    name: &str,
    cmd: &Command,
    names: impl Iterator<Item = &'a str>,
) -> String {
    let here: Vec<&str> = path.iter().copied().chain([name]).collect();
    let names: Vec<&str> = names.filter(|n| *n != "help").collect();
    let mut what = if cmd.get_subcommands().next().is_none() {
        format!(
            "[{}]: `{}` has no commands under it",
            here.join("."),
            command_name(cmd)
        )
    } else {
        format!(
            "[{}]: `{}` has no command `{name}`",
            here.join("."),
            command_name(cmd)
        )
    };
    if let Some(near) = nearest(name, names.iter().copied()) {
        let mut near_path: Vec<&str> = path.to_vec();
        near_path.push(near);
        what.push_str(&format!("; did you mean [{}]?", near_path.join(".")));
    }
    what
}

/// The candidate closest to `word`, if it is close enough to be a typo.
fn nearest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance, in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

// ---------------------------------------------------------------------------------------
// --print-config

/// The settings of the command at `path` as a file `--config` takes: what the
/// command line, the environment or the file set, then the defaults commented out;
/// each with where it came from, secrets masked.
fn print(
    path: &[String],
    command: &Command,
    given: &ArgMatches,
    matches: &ArgMatches,
    file: Option<&Path>,
    from_file: &BTreeMap<String, usize>,
) -> String {
    let name = std::iter::once("sokkel")
        .chain(path.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    let mut out = format!(
        "# The settings of `{name}`: the command line wins over SOKKEL_* variables,\n# which win over {}, which wins over the defaults.\n# Defaults are commented out; secrets are masked ({MASK}).\n",
        file.map_or_else(|| "a file (--config)".into(), |f| f.display().to_string())
    );
    if !path.is_empty() {
        out.push_str(&format!("\n[{}]\n", path.join(".")));
    }
    let mut set = Vec::new();
    let mut defaults = Vec::new();
    for arg in command.get_arguments().filter(|a| settable(a)) {
        let id = arg.get_id().as_str();
        let key = arg.get_long().expect("settable flags have a long name");
        let source = match (from_file.get(id), given.value_source(id)) {
            (Some(line), _) => Some(format!(
                "{}:{line}",
                file.map(Path::display)
                    .map(|d| d.to_string())
                    .unwrap_or_default()
            )),
            (None, Some(ValueSource::CommandLine)) => Some("command line".into()),
            (None, Some(ValueSource::EnvVariable)) => Some(
                arg.get_env()
                    .map_or("environment".into(), |e| e.to_string_lossy().into_owned()),
            ),
            (None, Some(ValueSource::DefaultValue)) => None,
            (None, _) => {
                if !arg.is_hide_set() {
                    defaults.push(format!("# {key}: not set"));
                }
                continue;
            }
        };
        let value = value_of(arg, matches);
        match source {
            Some(source) => set.push((format!("{key} = {value}"), source)),
            None if !arg.is_hide_set() => defaults.push(format!("# {key} = {value}")),
            None => {}
        }
    }
    let width = set.iter().map(|(line, _)| line.len()).max().unwrap_or(0);
    for (line, source) in set {
        out.push_str(&format!("{line:width$}  # {source}\n"));
    }
    for line in defaults {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// The value of `arg` in TOML: a switch as a boolean, a count and a number as an
/// integer, anything else as a string, a repeatable flag as a list.
fn value_of(arg: &Arg, matches: &ArgMatches) -> String {
    let id = arg.get_id().as_str();
    match arg.get_action() {
        ArgAction::SetTrue | ArgAction::SetFalse => matches.get_flag(id).to_string(),
        ArgAction::Count => matches.get_count(id).to_string(),
        action => {
            let values: Vec<String> = matches
                .get_raw(id)
                .into_iter()
                .flatten()
                .map(|v| toml_value(&masked(arg, &v.to_string_lossy())))
                .collect();
            if matches!(action, ArgAction::Append) {
                format!("[{}]", values.join(", "))
            } else {
                values.into_iter().next().unwrap_or_else(|| "\"\"".into())
            }
        }
    }
}

/// A number stays a number; anything else becomes a TOML basic string.
fn toml_value(text: &str) -> String {
    let number = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'))
        && text.parse::<i64>().is_ok();
    if number {
        return text.to_owned();
    }
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `value` with its secrets masked: all of it for a flag named for a password,
/// secret or token; the value of a header (a flag whose values are `HEADER`s)
/// that carries credentials; in a URL, the password and the query; and the path
/// too of an http(s) URL whose flag hides its variable's value from `--help` (a
/// webhook's path is often its secret).
fn masked(arg: &Arg, value: &str) -> String {
    let long = arg.get_long().unwrap_or_default();
    if SECRET_WORDS.iter().any(|word| long.contains(word)) {
        return MASK.into();
    }
    let headers = arg
        .get_value_names()
        .is_some_and(|names| names.iter().any(|n| n.as_str() == "HEADER"));
    if headers
        && let Some((name, _)) = value.split_once(':')
        && secret_header(name.trim())
    {
        return format!("{name}: {MASK}");
    }
    let Some((scheme, rest)) = value.split_once("://") else {
        return value.into();
    };
    // Readers of URLs disagree on where a password that holds `/`, `?` or `#`
    // ends (at the last `@`, or at the first `/`): all up to the last `@` is
    // masked unless it is a plain user name.
    let (userinfo, rest) = match rest.rsplit_once('@') {
        Some((userinfo, rest)) => {
            let plain = |text: &str| !text.contains(['/', '?', '#']);
            let shown = match userinfo.split_once(':') {
                Some((user, _)) if plain(user) => format!("{user}:{MASK}@"),
                None if plain(userinfo) => format!("{userinfo}@"),
                _ => format!("{MASK}@"),
            };
            (shown, rest)
        }
        None => (String::new(), rest),
    };
    let (rest, fragment) = match rest.split_once('#') {
        Some((rest, _)) => (rest, format!("#{MASK}")),
        None => (rest, String::new()),
    };
    let (host, query) = match rest.split_once('?') {
        Some((rest, _)) => (rest, format!("?{MASK}")),
        None => (rest, String::new()),
    };
    let (host, path) = match host.find('/') {
        Some(at) => host.split_at(at),
        None => (host, ""),
    };
    let web = scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https");
    let path = if web && arg.is_hide_env_values_set() && path.len() > 1 {
        format!("/{MASK}")
    } else {
        path.into()
    };
    format!("{scheme}://{userinfo}{host}{path}{query}{fragment}")
}

/// Words that make a flag, or a header, a secret.
const SECRET_WORDS: [&str; 3] = ["password", "secret", "token"];

/// Whether a header of this name carries credentials: `X-Api-Key` does, but a
/// flag named for a key (`--tls-key`) names a file, which is no secret.
fn secret_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
    ]
    .contains(&name.as_str())
        || SECRET_WORDS
            .iter()
            .chain(&["key"])
            .any(|word| name.contains(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_required_in_the_first_pass() {
        // A file may give what a command requires (`mail send`'s --to): the first
        // pass must accept every command with no arguments at all. A requirement
        // `relaxed` cannot lift (required_if_eq, required_unless_present_all) fails here.
        let cmd = relaxed(Cli::command());
        let mut built = Cli::command();
        built.build();
        for leaf in leaves(&built) {
            let words: Vec<&str> = leaf.get_bin_name().unwrap().split(' ').collect();
            let parsed = cmd.clone().try_get_matches_from(&words);
            assert!(parsed.is_ok(), "{words:?}: {:?}", parsed.err());
        }
    }

    #[test]
    fn every_setting_takes_at_most_one_value_per_flag() {
        // `--flag=value` carries one value; a flag taking several per use would
        // need another way to be written.
        let mut built = Cli::command();
        built.build();
        for leaf in leaves(&built) {
            for arg in leaf.get_arguments().filter(|a| settable(a)) {
                let most = arg.get_num_args().map_or(1, |n| n.max_values());
                assert!(
                    most <= 1,
                    "{:?} --{:?}",
                    leaf.get_bin_name(),
                    arg.get_long()
                );
            }
        }
    }

    #[test]
    fn secrets_are_masked() {
        let url = Arg::new("url").long("webhook-url").hide_env_values(true);
        let db = Arg::new("db").long("db").hide_env_values(true);
        let token = Arg::new("t").long("api-token");
        let plain = Arg::new("p").long("server");
        for (arg, value, want) in [
            (
                &db,
                "postgres://u:hunter2@db:5432/mail?sslmode=require",
                "postgres://u:********@db:5432/mail?********",
            ),
            (&db, "postgres://u@db/mail", "postgres://u@db/mail"),
            (&db, "/var/lib/sokkel/mail.db", "/var/lib/sokkel/mail.db"),
            (
                &url,
                "https://a:b@hooks.example/services/T0/B0/XYZ?k=1",
                "https://a:********@hooks.example/********?********",
            ),
            (&url, "http://hooks.example/", "http://hooks.example/"),
            (&token, "abc", "********"),
            (
                &plain,
                "smtp://me:pw@host#frag",
                "smtp://me:********@host#********",
            ),
            (&plain, "localhost:25", "localhost:25"),
            // Where URL readers disagree on the password's end, all of it goes.
            (
                &db,
                "postgresql://u:hun/ter2@db/mail",
                "postgresql://u:********@db/mail",
            ),
            (
                &db,
                "postgres://u:pa#ss@db/mail",
                "postgres://u:********@db/mail",
            ),
            (
                &db,
                "postgres://u:pa?ss@db/mail",
                "postgres://u:********@db/mail",
            ),
            (
                &db,
                "postgres://u:p@ss@db/mail",
                "postgres://u:********@db/mail",
            ),
            (&db, "postgres://a/b@db/mail", "postgres://********@db/mail"),
            // An `@` in a query hides the host too: more than needed, never less.
            (
                &plain,
                "https://hooks.example/x?to=a@b.example",
                "https://********@b.example",
            ),
        ] {
            assert_eq!(masked(arg, value), want, "{value}");
        }
    }

    #[test]
    fn headers_that_carry_credentials_are_masked() {
        let header = Arg::new("header").long("header").value_name("HEADER");
        let other = Arg::new("subject").long("subject").value_name("TEXT");
        for (arg, value, want) in [
            (
                &header,
                "Authorization: Bearer abc",
                "Authorization: ********",
            ),
            (
                &header,
                "proxy-authorization:Basic eA==",
                "proxy-authorization: ********",
            ),
            (&header, "Cookie: session=abc", "Cookie: ********"),
            (&header, "X-Api-Key: abc", "X-Api-Key: ********"),
            (&header, "X-Auth-Token: abc", "X-Auth-Token: ********"),
            (&header, "X-Client-Secret: abc", "X-Client-Secret: ********"),
            (&header, "X-Mailer: sokkel", "X-Mailer: sokkel"),
            (&header, "no colon", "no colon"),
            (
                &other,
                "Authorization: Bearer abc",
                "Authorization: Bearer abc",
            ),
        ] {
            assert_eq!(masked(arg, value), want, "{value}");
        }
        let key_file = Arg::new("tls_key").long("tls-key").value_name("FILE");
        assert_eq!(masked(&key_file, "/etc/key.pem"), "/etc/key.pem");
    }

    #[test]
    fn the_files_flags_go_after_the_command_not_after_a_value_spelt_like_it() {
        let mut root = Cli::command();
        root.build();
        let path = ["mail".to_owned(), "serve".to_owned()];
        for (args, want) in [
            (&["sokkel", "mail", "serve"][..], 3),
            (
                &[
                    "sokkel", "mail", "--config", "serve", "serve", "--smtp", "x",
                ],
                5,
            ),
            (&["sokkel", "--config", "mail", "mail", "serve"], 5),
            (&["sokkel", "--config=mail", "mail", "serve"], 4),
            (&["sokkel", "mail", "--print-config", "serve"], 4),
        ] {
            let args: Vec<OsString> = args.iter().map(OsString::from).collect();
            assert_eq!(after_command(&args, &root, &path), want, "{args:?}");
        }
    }

    #[test]
    fn toml_values_are_numbers_or_escaped_strings() {
        for (text, want) in [
            ("1000", "1000"),
            ("0", "0"),
            ("007", "\"007\""),
            ("32MiB", "\"32MiB\""),
            ("a \"b\" \\ c\n", "\"a \\\"b\\\" \\\\ c\\n\""),
            ("\u{7}", "\"\\u0007\""),
        ] {
            assert_eq!(toml_value(text), want);
        }
    }

    #[test]
    fn typos_find_the_nearest_name() {
        let names = ["max-message-size", "max-recipients", "smtp", "smtps"];
        assert_eq!(
            nearest("max-mesage-size", names.into_iter()),
            Some("max-message-size")
        );
        assert_eq!(nearest("smpt", names.into_iter()), Some("smtp"));
        assert_eq!(nearest("colour", names.into_iter()), None);
    }
}
