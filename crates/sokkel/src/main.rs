//! `sokkel`: the command line. Parses arguments, sets up logging and the runtime, and
//! hands typed configuration to the library crates. Errors reach the user as one line.

mod cli;
mod config;
mod echo;
mod hints;
mod install;
mod listen;
mod mail;
mod runtime;
mod units;

use std::io::IsTerminal;
use std::process::ExitCode;

use cli::Command;

fn main() -> ExitCode {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // Linked or copied as `sendmail`, sokkel is the sendmail command.
    let called_as = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name().map(|n| n.to_owned()));
    if called_as.is_some_and(|name| name == "sendmail") {
        args.insert(1, "sendmail".into());
    }
    init_logging();
    let cli = match config::parse(args) {
        Ok(config::Request::Run(cli)) => cli,
        Ok(config::Request::Printed) => return ExitCode::SUCCESS,
        Err(config::Refusal::Clap(error)) => error.exit(),
        Err(config::Refusal::File(mistake)) => {
            eprintln!("sokkel: {mistake}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Echo(echo) => echo::run(echo),
        Command::Mail(mail) => mail::run(mail),
        Command::Sendmail(args) => mail::sendmail::run(args),
        Command::Completions(args) => install::completions(args),
        Command::Man(args) => install::man(args),
    };
    match result {
        Ok(code) => code,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("sokkel: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Diagnostics go to stderr; `RUST_LOG` overrides the default of `info` for sokkel.
fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(
            "warn,sokkel=info,sokkel_echo=info,sokkel_net=info,sokkel_smtp=info,sokkel_store=info",
        )
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

/// A reader that went away (`sokkel ... | head`) is a normal end, as in ripgrep.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
