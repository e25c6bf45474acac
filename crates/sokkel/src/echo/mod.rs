//! `sokkel echo serve | client | bench`: wiring the command line to `sokkel-echo`.

mod bench;
mod client;
mod serve;

use std::process::ExitCode;

use anyhow::Context;

use crate::cli::EchoCommand;

pub fn run(command: EchoCommand) -> anyhow::Result<ExitCode> {
    match command {
        EchoCommand::Serve(args) => serve::run(args),
        EchoCommand::Client(args) => client::run(args),
        EchoCommand::Bench(args) => bench::run(args),
    }
}

/// A runtime on the current thread for work that is one conversation at a time.
fn single_thread_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// A runtime with `threads` workers; one means everything runs on this thread.
fn runtime(threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    if threads <= 1 {
        return single_thread_runtime();
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}
