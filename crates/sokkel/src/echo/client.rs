//! `sokkel echo client`: interactive on a terminal, line by line when piped.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use rustyline::error::ReadlineError;
use sokkel_echo::client::{EchoClient, Link};
use sokkel_echo::display::render;

use crate::cli::{ClientArgs, Target};

pub fn run(args: ClientArgs) -> anyhow::Result<ExitCode> {
    let runtime = crate::runtime::single_thread_runtime()?;
    let (client, server) = runtime.block_on(connect(&args))?;
    if std::io::stdin().is_terminal() {
        interactive(&runtime, client, &server, &args)
    } else {
        piped(&runtime, client)
    }
}

async fn connect(args: &ClientArgs) -> anyhow::Result<(EchoClient, String)> {
    let Target {
        addr,
        udp,
        timeout,
        resolve,
    } = &args.target;
    let addrs = addr.resolve(resolve).await?;
    let (link, used) = if *udp {
        (Link::udp(addrs[0]).await?, addrs[0])
    } else {
        let (stream, used) = sokkel_net::connect_any(&addr.to_string(), &addrs, *timeout).await?;
        (Link::Tcp(stream), used)
    };
    let client = EchoClient::new(link, args.framing.framing, args.framing.max_frame, *timeout);
    Ok((client, used.to_string()))
}

/// Scripts get each reply on its own line and nothing else on stdout.
fn piped(runtime: &tokio::runtime::Runtime, mut client: EchoClient) -> anyhow::Result<ExitCode> {
    let stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    for line in stdin.split(b'\n') {
        let line = line.context("cannot read stdin")?;
        let reply = runtime.block_on(client.round_trip(&line))?;
        stdout.write_all(&reply.payload)?;
        stdout.write_all(b"\n")?;
        stdout.flush()?;
    }
    let rest = runtime.block_on(client.finish())?;
    if !rest.is_empty() {
        stdout.write_all(&rest)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn interactive(
    runtime: &tokio::runtime::Runtime,
    mut client: EchoClient,
    server: &str,
    args: &ClientArgs,
) -> anyhow::Result<ExitCode> {
    let transport = if args.target.udp { "udp" } else { "tcp" };
    eprintln!(
        "connected to {server} over {transport} ({} framing); type a line, Ctrl-D to finish",
        args.framing.framing
    );
    let mut editor = rustyline::DefaultEditor::new().context("cannot open the terminal")?;
    loop {
        match editor.readline("> ") {
            Ok(line) => {
                let _ = editor.add_history_entry(line.as_str());
                let reply = runtime.block_on(client.round_trip(line.as_bytes()))?;
                println!(
                    "{}  \x1b[2m({})\x1b[0m",
                    render(&reply.payload, usize::MAX),
                    rtt(reply.rtt)
                );
            }
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(err) => return Err(err).context("cannot read from the terminal"),
        }
    }
    let rest = runtime.block_on(client.finish())?;
    if !rest.is_empty() {
        println!("{}", render(&rest, usize::MAX));
    }
    eprintln!("closed");
    Ok(ExitCode::SUCCESS)
}

fn rtt(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else {
        format!("{:.2} ms", us / 1000.0)
    }
}
