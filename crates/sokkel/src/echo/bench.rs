//! `sokkel echo bench`: the load generator's command line and report.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use sokkel_echo::bench::{BenchConfig, BenchProgress, BenchReport, BenchStop};

use crate::cli::BenchArgs;

pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let runtime = crate::runtime::runtime(usize::from(args.threads))?;
    let report = runtime.block_on(async {
        sokkel_net::raise_open_file_limit();
        let addrs = args.target.addr.resolve(&args.target.resolve).await?;
        let stop = match args.requests {
            Some(n) => BenchStop::Requests(n),
            None => BenchStop::Duration(args.duration),
        };
        let config = BenchConfig {
            target: args.target.addr.to_string(),
            addrs,
            udp: args.target.udp,
            conns: args.conns,
            size: args.size,
            framing: args.framing.framing,
            stop,
            timeout: args.target.timeout,
        };
        let progress = Arc::new(BenchProgress::default());
        let bar = progress_bar(stop, progress.clone());
        let report = sokkel_echo::bench::run(config, progress).await;
        if let Some(bar) = bar {
            bar.abort();
        }
        anyhow::Ok(report?)
    })?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        print_report(&mut out, &report)?;
    }
    Ok(if report.errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A live bar on a terminal; nothing when stderr is piped.
fn progress_bar(
    stop: BenchStop,
    progress: Arc<BenchProgress>,
) -> Option<tokio::task::JoinHandle<()>> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let (len, template) = match stop {
        BenchStop::Duration(d) => (d.as_millis() as u64, "{bar:40} {elapsed}/{duration} {msg}"),
        BenchStop::Requests(n) => (n, "{bar:40} {pos}/{len} {msg}"),
    };
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    Some(tokio::spawn(async move {
        let started = tokio::time::Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tick.tick().await;
            let done = progress.round_trips.load(Ordering::Relaxed);
            let errors = progress.errors.load(Ordering::Relaxed);
            let secs = started.elapsed().as_secs_f64().max(1e-3);
            bar.set_position(match stop {
                BenchStop::Duration(_) => started.elapsed().as_millis() as u64,
                BenchStop::Requests(_) => done,
            });
            bar.set_message(format!(
                "{:.0} round trips/s, {errors} errors",
                done as f64 / secs
            ));
        }
    }))
}

fn print_report(out: &mut impl Write, r: &BenchReport) -> std::io::Result<()> {
    let conns = if r.connections == 1 {
        "connection"
    } else {
        "connections"
    };
    writeln!(
        out,
        "{} {}: {} {conns}, {}-byte messages, {} framing, {:.2} s",
        r.transport, r.target, r.connections, r.message_size, r.framing, r.elapsed_secs
    )?;
    writeln!(
        out,
        "  round trips  {} verified, {:.0}/s",
        r.round_trips, r.round_trips_per_sec
    )?;
    writeln!(out, "  throughput   {:.2} MB/s each way", r.mb_per_sec)?;
    let l = &r.latency_us;
    if r.round_trips == 0 {
        writeln!(out, "  latency      none measured")?;
    } else {
        writeln!(
            out,
            "  latency      p50 {}  p90 {}  p99 {}  max {}",
            micros(l.p50),
            micros(l.p90),
            micros(l.p99),
            micros(l.max)
        )?;
    }
    writeln!(out, "  errors       {}", r.errors)?;
    for sample in &r.error_samples {
        writeln!(out, "    {sample}")?;
    }
    Ok(())
}

fn micros(us: f64) -> String {
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else {
        format!("{:.2} ms", us / 1000.0)
    }
}
