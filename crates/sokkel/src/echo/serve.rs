//! `sokkel echo serve`.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use sokkel_echo::report::StdoutReport;
use sokkel_echo::server::{ServerConfig, serve};
use sokkel_net::DEFAULT_BACKLOG;

use crate::cli::ServeArgs;
use crate::hints::announce;
use crate::listen::{explain_bind, listen_addresses};

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let threads = args
        .threads
        .map(usize::from)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let runtime = crate::runtime::runtime(threads)?;
    runtime.block_on(serve_until_stopped(args))
}

async fn serve_until_stopped(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let stop = sokkel_net::shutdown_signal();
    let fd_limit = sokkel_net::raise_open_file_limit();
    if u64::from(args.max_conns) + 64 > fd_limit {
        tracing::warn!(
            "--max-conns {} is above the open-file limit of {fd_limit}; raise it with ulimit -n",
            args.max_conns
        );
    }
    let addrs = listen_addresses(&args.listen).await?;
    let (mut tcp, mut udp) = (Vec::new(), Vec::new());
    for addr in &addrs {
        if !args.udp_only {
            let listener = sokkel_net::bind_tcp(*addr, DEFAULT_BACKLOG)
                .map_err(|err| explain_bind(err, "--listen", 10000))?;
            announce(format_args!("listening on tcp {}", listener.local_addr()?));
            tcp.push(listener);
        }
        if args.udp || args.udp_only {
            // With port 0, UDP takes the port TCP was given, so both share one address.
            let addr = match tcp.last() {
                Some(listener) if addr.port() == 0 => listener.local_addr()?,
                _ => *addr,
            };
            let socket =
                sokkel_net::bind_udp(addr).map_err(|err| explain_bind(err, "--listen", 10000))?;
            announce(format_args!("listening on udp {}", socket.local_addr()?));
            udp.push(socket);
        }
    }
    tracing::info!(
        framing = %args.framing.framing,
        max_conns = args.max_conns,
        "echo server ready; Ctrl-C stops it"
    );
    let config = ServerConfig {
        framing: args.framing.framing,
        max_frame: args.framing.max_frame,
        max_conns: args.max_conns,
        idle_timeout: args.idle_timeout,
        shutdown_grace: args.shutdown_timeout,
    };
    let report = Arc::new(StdoutReport {
        messages: !args.quiet,
    });
    let summary = serve(config, tcp, udp, report, stop)
        .await
        .context("the echo server failed")?;
    if summary.cut_off > 0 {
        tracing::warn!(
            open = summary.cut_off,
            "stopped with connections still open after the grace period"
        );
    }
    tracing::info!(connections = summary.connections, "stopped");
    Ok(ExitCode::SUCCESS)
}
