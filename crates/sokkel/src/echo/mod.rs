//! `sokkel echo serve | client | bench`: wiring the command line to `sokkel-echo`.

mod bench;
mod client;
mod serve;

use std::process::ExitCode;

use crate::cli::EchoCommand;

pub fn run(command: EchoCommand) -> anyhow::Result<ExitCode> {
    match command {
        EchoCommand::Serve(args) => serve::run(args),
        EchoCommand::Client(args) => client::run(args),
        EchoCommand::Bench(args) => bench::run(args),
    }
}
