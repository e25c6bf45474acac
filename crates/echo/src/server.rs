//! The echo server shell: listeners, one task per TCP connection, one per UDP socket.
//!
//! The hot path is built to cost two system calls per message, like a hand-written
//! epoll loop: one `read` and one `write`. A read that returns less than the buffer
//! holds has drained the socket; tokio's `poll_read` then clears readiness there and
//! then instead of asking the kernel again and getting `EAGAIN` (`try_read` would not).
//! The read buffer is per thread, not per connection, and is never held across an
//! `.await`, so ten thousand idle connections cost only their task and socket.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use sokkel_net::server::{Accepted, ConnectionLimit, Slot, StopSignal, accept_loop, stop_switch};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::framing::{FrameError, Framing};
use crate::report::{Report, Transport};

/// Large enough that a 64 KiB message usually arrives in one read.
const READ_BUF: usize = 64 * 1024;
/// Output buffers larger than this are given back once they are flushed.
const KEEP_OUTBOX: usize = 64 * 1024;

thread_local! {
    static READ_BUFFER: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_BUF]);
}

/// How the server behaves; the binary fills it from the command line.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// How a byte stream is cut into messages.
    pub framing: Framing,
    /// The largest frame accepted, header included.
    pub max_frame: usize,
    /// Connections served at once; more are closed as soon as they are accepted.
    pub max_conns: u32,
    /// A connection with no traffic for this long is closed.
    pub idle_timeout: Duration,
    /// After a shutdown signal, how long open connections may take to finish the
    /// message in flight.
    pub shutdown_grace: Duration,
}

/// What a server run did, returned when it has stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeSummary {
    /// TCP connections accepted over the run (refused ones not counted).
    pub connections: u64,
    /// Connections still open when the shutdown grace ran out.
    pub cut_off: u32,
}

struct Shared {
    config: ServerConfig,
    report: Arc<dyn Report>,
}

/// Serves echo on already-bound listeners until `shutdown` completes, then stops
/// accepting, lets open connections finish the message in flight (within
/// [`ServerConfig::shutdown_grace`]) and returns.
///
/// Must be called inside a tokio runtime; the listeners must be non-blocking.
pub async fn serve(
    config: ServerConfig,
    tcp: Vec<std::net::TcpListener>,
    udp: Vec<std::net::UdpSocket>,
    report: Arc<dyn Report>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<ServeSummary> {
    let limit = ConnectionLimit::new(config.max_conns);
    let shared = Arc::new(Shared { config, report });
    let (stopper, stop) = stop_switch();
    let mut loops = Vec::new();
    for listener in tcp {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let (shared, conn_stop) = (shared.clone(), stop.clone());
        let handle = move |accepted| serve_tcp(accepted, shared.clone(), conn_stop.clone());
        loops.push(tokio::spawn(accept_loop(
            listener,
            limit.clone(),
            stop.clone(),
            handle,
        )));
    }
    for socket in udp {
        let socket = tokio::net::UdpSocket::from_std(socket)?;
        loops.push(tokio::spawn(udp_loop(socket, shared.clone(), stop.clone())));
    }
    shutdown.await;
    tracing::info!("shutting down: no new connections; open ones finish their message");
    stopper.stop();
    for task in loops {
        let _ = task.await;
    }
    let cut_off = limit
        .drain(shared.config.shutdown_grace + Duration::from_millis(500))
        .await;
    Ok(ServeSummary {
        connections: limit.admitted(),
        cut_off,
    })
}

async fn serve_tcp(accepted: Accepted, shared: Arc<Shared>, stop: StopSignal) {
    let (stream, peer, slot) = match accepted {
        Accepted::Admitted(stream, peer, slot) => (stream, peer, slot),
        Accepted::Refused(stream, peer) => {
            shared
                .report
                .refused(peer, shared.config.max_conns as usize);
            drop(stream);
            return;
        }
    };
    let local = stream.local_addr().unwrap_or(peer);
    let _ = stream.set_nodelay(true);
    shared.report.connected(peer, local);
    Connection::new(stream, peer).run(&shared, stop, slot).await;
}

fn is_retry(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

async fn udp_loop(socket: tokio::net::UdpSocket, shared: Arc<Shared>, mut stop: StopSignal) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let received = tokio::select! {
            biased;
            () = stop.stopped() => return,
            received = socket.recv_from(&mut buf) => received,
        };
        let (n, peer) = match received {
            Ok(pair) => pair,
            Err(err) => {
                // An ICMP error for an earlier reply surfaces here; it concerns that
                // peer only.
                tracing::debug!(%err, "udp receive error");
                continue;
            }
        };
        shared.report.message(Transport::Udp, peer, &buf[..n]);
        if let Err(err) = socket.send_to(&buf[..n], peer).await {
            tracing::debug!(%peer, %err, "udp reply failed");
        }
    }
}

/// Why a connection ended, as printed after the peer's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Left,
    Idle,
    BadFrame,
    Stopping,
    Failed,
}

impl Ending {
    fn words(self) -> &'static str {
        match self {
            Ending::Left => "left",
            Ending::Idle => "was closed (idle timeout)",
            Ending::BadFrame => "was closed (malformed frame)",
            Ending::Stopping => "was closed (server stopping)",
            Ending::Failed => "was disconnected (connection error)",
        }
    }
}

/// The per-connection echo state, apart from the socket so both can be borrowed.
struct Echoing {
    peer: SocketAddr,
    /// The start of a frame whose rest has not arrived yet.
    inbox: Vec<u8>,
    /// Echo bytes the socket would not take yet, from `sent` on.
    outbox: Vec<u8>,
    sent: usize,
    bytes: u64,
    messages: u64,
    /// Set once no more input will be read: the peer's EOF or a malformed frame.
    input_done: Option<Ending>,
}

struct Connection {
    stream: TcpStream,
    state: Echoing,
}

/// Reads what is there without waiting. Unlike `try_read`, this goes through
/// `poll_read`, which clears readiness after a short read, so the next wait does not
/// cost a read that returns `EAGAIN`. `Pending` means the socket had nothing after all.
fn read_now(stream: &mut TcpStream, buf: &mut [u8]) -> Poll<io::Result<usize>> {
    let mut cx = Context::from_waker(Waker::noop());
    let mut read_buf = ReadBuf::new(buf);
    Pin::new(stream)
        .poll_read(&mut cx, &mut read_buf)
        .map_ok(|()| read_buf.filled().len())
}

impl Connection {
    fn new(stream: TcpStream, peer: SocketAddr) -> Self {
        let state = Echoing {
            peer,
            inbox: Vec::new(),
            outbox: Vec::new(),
            sent: 0,
            bytes: 0,
            messages: 0,
            input_done: None,
        };
        Connection { stream, state }
    }

    /// Serves the connection until it ends; its `slot` under the cap is freed before
    /// the end is reported, so whoever reads that line can count on the free slot.
    async fn run(mut self, shared: &Shared, mut stop: StopSignal, slot: Slot) {
        let started = Instant::now();
        let idle = shared.config.idle_timeout;
        let mut last_activity = started;
        let mut stopping_at: Option<Instant> = None;
        let sleep = tokio::time::sleep(idle);
        tokio::pin!(sleep);
        // Made once, not per message: waiting on the stop signal registers a waiter,
        // which is not free on the hot path.
        let stopped = stop.stopped();
        tokio::pin!(stopped);
        let ending = loop {
            let state = &mut self.state;
            let flushing = state.sent < state.outbox.len();
            if !flushing {
                if let Some(ending) = state.input_done {
                    break ending;
                }
                if stopping_at.is_some() && state.inbox.is_empty() {
                    break Ending::Stopping;
                }
            }
            tokio::select! {
                biased;
                ready = self.stream.writable(), if flushing => {
                    if ready.is_err() {
                        break Ending::Failed;
                    }
                    match self.stream.try_write(&state.outbox[state.sent..]) {
                        Ok(n) => {
                            state.sent += n;
                            last_activity = Instant::now();
                            if state.sent == state.outbox.len() {
                                state.clear_outbox();
                            }
                        }
                        Err(err) if is_retry(&err) => {}
                        Err(_) => break Ending::Failed,
                    }
                }
                ready = self.stream.readable(), if !flushing => {
                    if ready.is_err() {
                        break Ending::Failed;
                    }
                    let stream = &mut self.stream;
                    let step = READ_BUFFER.with_borrow_mut(|buf| match read_now(stream, buf) {
                        Poll::Pending => Ok(()),
                        Poll::Ready(Ok(0)) => {
                            state.input_done = Some(Ending::Left);
                            Ok(())
                        }
                        Poll::Ready(Ok(n)) => state.absorb(stream, &buf[..n], shared),
                        Poll::Ready(Err(err)) if is_retry(&err) => Ok(()),
                        Poll::Ready(Err(err)) => Err(err),
                    });
                    if step.is_err() {
                        break Ending::Failed;
                    }
                    last_activity = Instant::now();
                }
                () = &mut sleep => {
                    let now = Instant::now();
                    if stopping_at.is_some_and(|at| now >= at) {
                        break Ending::Stopping;
                    }
                    if now >= last_activity + idle {
                        break Ending::Idle;
                    }
                    let next = last_activity + idle;
                    sleep.as_mut().reset(stopping_at.map_or(next, |at| at.min(next)));
                }
                () = &mut stopped, if stopping_at.is_none() => {
                    let at = Instant::now() + shared.config.shutdown_grace;
                    stopping_at = Some(at);
                    if at < sleep.deadline() {
                        sleep.as_mut().reset(at);
                    }
                }
            }
        };
        if ending != Ending::Failed {
            // Say we are done (FIN) rather than just dropping the socket.
            let _ = socket2::SockRef::from(&self.stream).shutdown(Shutdown::Write);
        }
        if ending == Ending::Left && !self.state.inbox.is_empty() {
            tracing::debug!(peer = %self.state.peer, bytes = self.state.inbox.len(), "peer left mid-frame");
        }
        drop(slot);
        let s = &self.state;
        shared.report.left(
            s.peer,
            started.elapsed(),
            s.bytes,
            s.messages,
            ending.words(),
        );
    }
}

impl Echoing {
    /// Takes in `data` just read: reports and echoes every complete message, keeps an
    /// incomplete frame for later, and stops input at a malformed frame.
    fn absorb(&mut self, socket: &TcpStream, data: &[u8], shared: &Shared) -> io::Result<()> {
        self.bytes += data.len() as u64;
        let framing = shared.config.framing;
        if framing == Framing::Raw {
            self.messages += 1;
            shared.report.message(Transport::Tcp, self.peer, data);
            return self.echo(socket, data);
        }
        if self.inbox.is_empty() {
            // The common case: frames straight from the read buffer, no copy.
            let (consumed, bad) = self.frames(data, shared);
            self.inbox.extend_from_slice(&data[consumed..]);
            self.echo(socket, &data[..consumed])?;
            return self.stop_on(bad);
        }
        self.inbox.extend_from_slice(data);
        let inbox = std::mem::take(&mut self.inbox);
        let (consumed, bad) = self.frames(&inbox, shared);
        let result = self.echo(socket, &inbox[..consumed]);
        self.inbox = inbox;
        self.inbox.drain(..consumed);
        if self.inbox.is_empty() && self.inbox.capacity() > KEEP_OUTBOX {
            self.inbox = Vec::new();
        }
        result?;
        self.stop_on(bad)
    }

    /// Reports each complete frame at the start of `buf`; returns how many bytes they
    /// take and the error that stopped parsing, if any.
    fn frames(&mut self, buf: &[u8], shared: &Shared) -> (usize, Option<FrameError>) {
        let mut consumed = 0;
        loop {
            match shared
                .config
                .framing
                .next_frame(&buf[consumed..], shared.config.max_frame)
            {
                Ok(Some(span)) => {
                    let frame = &buf[consumed..consumed + span.len];
                    shared
                        .report
                        .message(Transport::Tcp, self.peer, span.payload(frame));
                    self.messages += 1;
                    consumed += span.len;
                }
                Ok(None) => return (consumed, None),
                Err(err) => return (consumed, Some(err)),
            }
        }
    }

    fn stop_on(&mut self, bad: Option<FrameError>) -> io::Result<()> {
        if let Some(err) = bad {
            tracing::warn!(peer = %self.peer, "malformed frame: {err}; closing the connection");
            self.inbox = Vec::new();
            self.input_done = Some(Ending::BadFrame);
        }
        Ok(())
    }

    /// Writes `data` now if the socket takes it; keeps what it does not take.
    fn echo(&mut self, socket: &TcpStream, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            match socket.try_write(data) {
                Ok(0) => break,
                Ok(n) => data = &data[n..],
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        self.outbox.extend_from_slice(data);
        Ok(())
    }

    fn clear_outbox(&mut self) {
        self.sent = 0;
        if self.outbox.capacity() > KEEP_OUTBOX {
            self.outbox = Vec::new();
        } else {
            self.outbox.clear();
        }
    }
}
