//! The load generator: many connections ping-ponging messages, every echo verified.
//!
//! Each connection sends one framed message, waits for its complete echo, checks it
//! byte for byte and records the round trip in a latency histogram; then the next.
//! It works against any echo server, which is how sokkel is compared with its peers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Barrier;
use tokio::time::Instant;

use crate::EchoError;
use crate::client::Link;
use crate::framing::Framing;

/// When a load run stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchStop {
    /// After this long.
    Duration(Duration),
    /// After this many round trips in all.
    Requests(u64),
}

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// The target as the user named it, for the report.
    pub target: String,
    /// Its addresses, tried in order for each connection.
    pub addrs: Vec<SocketAddr>,
    /// Whether to use UDP datagrams instead of TCP connections.
    pub udp: bool,
    /// Connections (or UDP sockets) running at once.
    pub conns: u32,
    /// Payload bytes per message.
    pub size: usize,
    /// How messages are framed on TCP.
    pub framing: Framing,
    /// When to stop.
    pub stop: BenchStop,
    /// The longest a connect or a reply may take before it counts as an error.
    pub timeout: Duration,
}

/// Live counters, for a progress display while the run goes on.
#[derive(Debug, Default)]
pub struct BenchProgress {
    /// Verified round trips so far.
    pub round_trips: AtomicU64,
    /// Errors so far.
    pub errors: AtomicU64,
}

/// Latency percentiles, in microseconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// The slowest round trip.
    pub max: f64,
    /// The mean.
    pub mean: f64,
}

/// The result of a load run; `--json` prints it as it is.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// The target as named.
    pub target: String,
    /// "tcp" or "udp".
    pub transport: &'static str,
    /// Connections that ran.
    pub connections: u32,
    /// Payload bytes per message.
    pub message_size: usize,
    /// The framing used.
    pub framing: String,
    /// Seconds from the first message to the last reply.
    pub elapsed_secs: f64,
    /// Verified round trips.
    pub round_trips: u64,
    /// Verified round trips per second.
    pub round_trips_per_sec: f64,
    /// Megabytes (10^6 bytes) per second sent, framing included; as much came back.
    pub mb_per_sec: f64,
    /// Round-trip latency.
    pub latency_us: Latency,
    /// Failed connects, mismatched echoes, timeouts and closed connections.
    pub errors: u64,
    /// The first few errors, in words.
    pub error_samples: Vec<String>,
}

const ERROR_SAMPLES: usize = 5;

struct Run {
    config: BenchConfig,
    frame_len: usize,
    /// Set by the coordinator just before the start line is opened.
    deadline: std::sync::OnceLock<Instant>,
    remaining: AtomicU64,
    progress: Arc<BenchProgress>,
    start: Barrier,
}

impl Run {
    /// Claims the next round trip, or says the run is over.
    fn next(&self) -> bool {
        match self.config.stop {
            BenchStop::Duration(_) => self.deadline.get().is_none_or(|d| Instant::now() < *d),
            BenchStop::Requests(_) => self
                .remaining
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok(),
        }
    }
}

/// Runs the load and returns the report. Fails only when no connection could be made;
/// errors during the run are counted in the report.
pub async fn run(
    config: BenchConfig,
    progress: Arc<BenchProgress>,
) -> Result<BenchReport, EchoError> {
    let mut probe = Vec::new();
    config
        .framing
        .encode(&payload(config.size, 0), &mut probe)?;

    // Connect everything first, so the measured window holds only round trips.
    let mut links = Vec::with_capacity(config.conns as usize);
    let mut errors = Vec::new();
    let connects = (0..config.conns).map(|_| connect(&config));
    for result in futures_join_all(connects).await {
        match result {
            Ok(link) => links.push(link),
            Err(err) => errors.push(err.to_string()),
        }
    }
    if links.is_empty() {
        return Err(connect(&config).await.err().unwrap_or(EchoError::Closed {
            received: 0,
            expected: 0,
        }));
    }
    progress
        .errors
        .fetch_add(errors.len() as u64, Ordering::Relaxed);

    let run = Arc::new(Run {
        frame_len: probe.len(),
        deadline: std::sync::OnceLock::new(),
        remaining: AtomicU64::new(match config.stop {
            BenchStop::Requests(n) => n,
            BenchStop::Duration(_) => 0,
        }),
        start: Barrier::new(links.len() + 1),
        progress: progress.clone(),
        config,
    });
    let tasks: Vec<_> = links
        .into_iter()
        .enumerate()
        .map(|(i, link)| tokio::spawn(connection(run.clone(), link, i as u64)))
        .collect();
    let started = Instant::now();
    if let BenchStop::Duration(d) = run.config.stop {
        let _ = run.deadline.set(started + d);
    }
    run.start.wait().await;

    let mut histogram = new_histogram();
    let mut round_trips = 0;
    for task in tasks {
        let Ok(outcome) = task.await else { continue };
        round_trips += outcome.round_trips;
        let _ = histogram.add(&outcome.histogram);
        errors.extend(outcome.error_samples);
    }
    let elapsed = started.elapsed().as_secs_f64().max(1e-9);
    let us = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    let config = &run.config;
    let error_count = progress.errors.load(Ordering::Relaxed);
    errors.truncate(ERROR_SAMPLES);
    Ok(BenchReport {
        target: config.target.clone(),
        transport: if config.udp { "udp" } else { "tcp" },
        connections: config.conns,
        message_size: config.size,
        framing: if config.udp {
            "datagram".into()
        } else {
            config.framing.to_string()
        },
        elapsed_secs: elapsed,
        round_trips,
        round_trips_per_sec: round_trips as f64 / elapsed,
        mb_per_sec: (round_trips as f64 * run.frame_len as f64) / elapsed / 1e6,
        latency_us: Latency {
            p50: us(0.5),
            p90: us(0.9),
            p99: us(0.99),
            p999: us(0.999),
            max: histogram.max() as f64 / 1000.0,
            mean: histogram.mean() / 1000.0,
        },
        errors: error_count,
        error_samples: errors,
    })
}

/// Waits for every future, concurrently, keeping their order.
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        if let Ok(value) = handle.await {
            out.push(value);
        }
    }
    out
}

fn connect(
    config: &BenchConfig,
) -> impl std::future::Future<Output = Result<Link, EchoError>> + Send + 'static {
    let addrs = config.addrs.clone();
    let target = config.target.clone();
    let (udp, timeout) = (config.udp, config.timeout);
    async move {
        if udp {
            Link::udp(addrs[0]).await
        } else {
            let (stream, _) = sokkel_net::connect_any(&target, &addrs, timeout).await?;
            let _ = stream.set_nodelay(true);
            Ok(Link::Tcp(stream))
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    // Nanoseconds, up to an hour, three significant figures.
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3)
        .unwrap_or_else(|_| unreachable!("valid bounds"))
}

/// A payload that differs from message to message (so a server that replays an old
/// echo is caught) and never holds a line feed (so it fits every framing).
fn payload(size: usize, seq: u64) -> Vec<u8> {
    let mut p: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
    stamp(&mut p, seq);
    p
}

fn stamp(payload: &mut [u8], seq: u64) {
    let hex = format!("{seq:016x}");
    let n = payload.len().min(16);
    payload[..n].copy_from_slice(&hex.as_bytes()[16 - n..]);
}

struct Outcome {
    round_trips: u64,
    histogram: Histogram<u64>,
    /// The first few errors of this connection, in words.
    error_samples: Vec<String>,
}

impl Outcome {
    /// Counts an error and keeps its words if there is room.
    fn error(&mut self, run: &Run, err: EchoError) {
        run.progress.errors.fetch_add(1, Ordering::Relaxed);
        if self.error_samples.len() < ERROR_SAMPLES {
            self.error_samples.push(err.to_string());
        }
    }
}

async fn connection(run: Arc<Run>, link: Link, id: u64) -> Outcome {
    let mut outcome = Outcome {
        round_trips: 0,
        histogram: new_histogram(),
        error_samples: Vec::new(),
    };
    run.start.wait().await;
    let config = &run.config;
    let timeout = config.timeout;
    let mut payload = payload(config.size, 0);
    let mut frame = Vec::with_capacity(run.frame_len);
    let mut reply = vec![0u8; if config.udp { 65_536 } else { run.frame_len }];
    let mut seq = id << 40;
    let result: Result<(), EchoError> = async {
        match link {
            Link::Tcp(mut stream) => {
                while run.next() {
                    seq += 1;
                    stamp(&mut payload, seq);
                    frame.clear();
                    config.framing.encode(&payload, &mut frame)?;
                    let sent = Instant::now();
                    stream.write_all(&frame).await.map_err(EchoError::Send)?;
                    read_reply(&mut stream, &mut reply, timeout).await?;
                    check(&frame, &reply)?;
                    record(&run, &mut outcome, sent);
                }
                let _ = stream.shutdown().await;
            }
            Link::Udp(socket) => {
                while run.next() {
                    seq += 1;
                    stamp(&mut payload, seq);
                    let sent = Instant::now();
                    socket.send(&payload).await.map_err(EchoError::Send)?;
                    // A lost datagram is an error, but not the end of this socket.
                    match tokio::time::timeout(timeout, socket.recv(&mut reply)).await {
                        Ok(Ok(n)) => match check(&payload, &reply[..n]) {
                            Ok(()) => record(&run, &mut outcome, sent),
                            Err(err) => outcome.error(&run, err),
                        },
                        Ok(Err(err)) => return Err(EchoError::Receive(err)),
                        Err(_) => outcome.error(&run, EchoError::Timeout(timeout)),
                    }
                }
            }
        }
        Ok(())
    }
    .await;
    if let Err(err) = result {
        outcome.error(&run, err);
    }
    outcome
}

async fn read_reply(
    stream: &mut TcpStream,
    reply: &mut [u8],
    timeout: Duration,
) -> Result<(), EchoError> {
    let mut got = 0;
    let deadline = Instant::now() + timeout;
    while got < reply.len() {
        let n = tokio::time::timeout_at(deadline, stream.read(&mut reply[got..]))
            .await
            .map_err(|_| EchoError::Timeout(timeout))?
            .map_err(EchoError::Receive)?;
        if n == 0 {
            return Err(EchoError::Closed {
                received: got,
                expected: reply.len(),
            });
        }
        got += n;
    }
    Ok(())
}

fn check(sent: &[u8], echoed: &[u8]) -> Result<(), EchoError> {
    if sent == echoed {
        return Ok(());
    }
    let differ =
        sent.iter().zip(echoed).filter(|(a, b)| a != b).count() + sent.len().abs_diff(echoed.len());
    Err(EchoError::Mismatch {
        differ,
        len: sent.len(),
    })
}

fn record(run: &Run, outcome: &mut Outcome, sent: Instant) {
    let nanos = sent.elapsed().as_nanos().min(u64::MAX as u128) as u64;
    outcome.histogram.saturating_record(nanos.max(1));
    outcome.round_trips += 1;
    run.progress.round_trips.fetch_add(1, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_differ_and_fit_every_framing() {
        let a = payload(64, 1);
        let b = payload(64, 2);
        assert_ne!(a, b);
        assert!(!a.contains(&b'\n'));
        assert_eq!(payload(3, 0x1234).len(), 3);
    }

    #[test]
    fn mismatch_counts_differing_bytes() {
        assert!(check(b"abc", b"abc").is_ok());
        assert!(matches!(
            check(b"abc", b"abd"),
            Err(EchoError::Mismatch { differ: 1, len: 3 })
        ));
        assert!(matches!(
            check(b"abc", b"ab"),
            Err(EchoError::Mismatch { differ: 1, .. })
        ));
    }
}
