//! The session driver: the one loop that runs a protocol core on a connection, for
//! every line-oriented server (SMTP, POP3, IMAP).
//!
//! ```text
//! serve ─▶ serve_tcp (─▶ PROXY protocol header: the client's address, with --proxy-protocol)
//!                    ─▶ Accepted::Refused  ─▶ busy reply (plain) / silent close (TLS)
//!                    └▶ Accepted::Admitted ─▶ TLS handshake (implicit TLS, bounded)
//!                                             └▶ Service::open ─▶ drive:
//!
//!   ┌─▶ Protocol::advance(input) ─▶ Step::NeedMore ─▶ stopping and not busy? ─▶ shutting_down
//!   │        │                          │ flush output (pipelined replies in one write);
//!   │        │                          │ quick_ack? ─▶ TCP_QUICKACK
//!   │        │                          ▼
//!   │        │                  select { read (deadline per command line, or the
//!   │        │                           protocol's own), timer ─▶ timed_out,
//!   │        │                           stop signal ─▶ stopping, wake ─▶ Protocol::woken }
//!   │        ├─ Step::Flush    ─▶ flush, then advance again before reading more
//!   │        ├─ Step::StartTls ─▶ flush, discard buffered clear text, handshake, tls_started
//!   │        ├─ Step::Act(a)   ─▶ Protocol::act(a, link): deliver, log in, stream a message...
//!   │        └─ Step::Close    ─▶ flush, close_notify / FIN, Protocol::finish
//!   └────────────┘
//! ```
//!
//! A shell implements [`Service`] (what all its sessions share: the certificate,
//! the timeouts, the busy reply, how to open a session) and [`Protocol`] (one
//! session: its core, plus the async work only the shell can do, in
//! [`Protocol::act`]). The driver owns the socket, the buffers, the timers and the
//! stop signal, so every server gets pipelining, backpressure, STARTTLS hygiene,
//! bounded waits and graceful shutdown the same way.
//!
//! Output is written only when the core has to wait (for input, a flush it asked
//! for, a TLS handshake, a close), so answers to pipelined commands leave in one
//! write; together with TCP_NODELAY on every accepted socket (set in
//! [`accept_loop`](crate::server::accept_loop)) they leave at once, instead of
//! waiting for the client's delayed ACK (Nagle's algorithm, issue #13).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use crate::server::{
    Accepted, ConnectionLimit, IdleTimer, Served, StopSignal, UnitDeadline, flush_within, serve_tcp,
};
use crate::tls::ServerStream;

/// The longest a TLS handshake should take, however long a protocol's command
/// timeout is: a client that connects to an implicit-TLS port (or says
/// STARTTLS) and then sends nothing should not hold a session slot for minutes.
/// Shells set [`Settings::handshake_timeout`] to at most this.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a busy reply to a refused connection may take to be written.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the close at the end of a session (a TLS close_notify, a FIN) may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Input is read in pieces of at least this much.
const READ_RESERVE: usize = 8192;

/// What the core wants done before it can go on; a shell maps its core's own step
/// onto this, its protocol-specific work going into [`Step::Act`].
#[derive(Debug)]
pub enum Step<A> {
    /// Every complete command was handled: write the output, then read more input.
    NeedMore,
    /// Write the output and wait until the client has read it, then advance
    /// again with the input kept, before reading more (a continuation request,
    /// or output backed up to [`PENDING_OUTPUT_LIMIT`](crate::server::PENDING_OUTPUT_LIMIT)).
    Flush,
    /// Write the output, discard every byte of unconsumed input (sent in clear
    /// text: never commands, CVE-2011-0411), do the TLS handshake, then call
    /// [`Protocol::tls_started`]. A failed handshake ends the session.
    StartTls,
    /// Write the output and close the connection.
    Close,
    /// Do this protocol-specific work with [`Protocol::act`], then advance again.
    Act(A),
}

/// The timeouts and limits the driver applies to every session of a server.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long a client may take to send a whole command line, counted from the
    /// end of the previous one ([`UnitDeadline`]), unless
    /// [`Protocol::read_deadline`] says otherwise.
    pub command_timeout: Duration,
    /// The shortest wait [`Protocol::read_deadline`] ever asks for (the timer
    /// is armed for at least this long; see [`IdleTimer`]).
    pub shortest_wait: Duration,
    /// How long a client may take to read what is written to it.
    pub write_timeout: Duration,
    /// How long a TLS handshake (implicit or after STARTTLS) may take.
    pub handshake_timeout: Duration,
    /// After the stop signal, how long a busy session ([`Protocol::busy`]) may
    /// take to finish what it is doing before it is told goodbye.
    pub shutdown_grace: Duration,
    /// What a client over the connection cap is told on a plain listener (on an
    /// implicit-TLS one the connection just closes: a clear-text line is
    /// unreadable there, and a handshake per refused connection would hand a
    /// flood the CPU the cap protects).
    pub busy_reply: Vec<u8>,
    /// Whether every connection starts with a PROXY protocol header from a
    /// load balancer, naming the client ([`crate::proxy`]).
    pub proxy_protocol: bool,
}

/// What every session of one server shares: its settings, its certificate, and
/// how to start a session.
pub trait Service: Send + Sync + 'static {
    /// One session.
    type Session: Protocol;

    /// The timeouts and the busy reply.
    fn settings(&self) -> &Settings;

    /// The certificate for implicit TLS and STARTTLS, if there is one.
    fn tls(&self) -> Option<&TlsAcceptor>;

    /// A new session for a client at `peer`; `tls` says whether the connection
    /// is under TLS already (an implicit-TLS listener). The session may keep a
    /// clone of the service.
    fn open(self: &Arc<Self>, peer: SocketAddr, tls: bool) -> Self::Session;

    /// A wake source each session also waits on beside its socket, such as the
    /// store's change counter: when its value changes, the driver calls
    /// [`Protocol::woken`]. `None` (the default): nothing but input wakes a session.
    fn wake_source(&self) -> Option<watch::Receiver<u64>> {
        None
    }
}

/// One session of a protocol: its core, and what only the shell can do.
pub trait Protocol: Send + Sized {
    /// The protocol-specific work a core asks for ([`Step::Act`]).
    type Action: Send;

    /// Writes the greeting.
    fn greeting(&mut self, out: &mut Vec<u8>);

    /// Lets the core consume `input`; returns how many bytes it consumed and what
    /// to do next.
    fn advance(&mut self, input: &[u8], out: &mut Vec<u8>) -> (usize, Step<Self::Action>);

    /// How many command lines (units) the core has finished, for the per-command
    /// deadline ([`UnitDeadline`]).
    fn units_ended(&self) -> u64;

    /// Does `action`, writing what follows from it through `link` (and flushing
    /// there when the client must read something first). An error ends the session.
    fn act(
        &mut self,
        action: Self::Action,
        link: &mut Link<'_>,
    ) -> impl Future<Output = io::Result<()>> + Send;

    /// The TLS handshake after [`Step::StartTls`] succeeded.
    fn tls_started(&mut self);

    /// The client was silent past the read deadline: write the goodbye (the
    /// next advance should close).
    fn timed_out(&mut self, out: &mut Vec<u8>);

    /// The server is stopping: write the goodbye (the next advance should close).
    fn shutting_down(&mut self, out: &mut Vec<u8>);

    /// Whether the session is in the middle of something it should finish before
    /// a shutdown says goodbye (SMTP: receiving a message); it gets
    /// [`Settings::shutdown_grace`] for it.
    fn busy(&self) -> bool {
        false
    }

    /// When the input the session waits for must have arrived. `line` is the
    /// per-command deadline, already updated with [`units_ended`](Self::units_ended).
    /// The default: a whole command line within [`Settings::command_timeout`].
    fn read_deadline(&mut self, line: &mut UnitDeadline, settings: &Settings) -> Instant {
        line.deadline(settings.command_timeout)
    }

    /// Whether the client may be holding back the rest of what the session waits
    /// for until the server acknowledges what it sent: a client with Nagle's
    /// algorithm on that writes an IMAP literal and its closing CRLF separately
    /// sends the CRLF only once the literal is ACKed, and a delayed ACK makes
    /// that about 40 ms. While this is true, the driver asks the kernel to
    /// acknowledge at once (TCP_QUICKACK, on Linux) each time it waits for
    /// input. The default: never.
    fn quick_ack(&self) -> bool {
        false
    }

    /// The most bytes per second to exchange with this client, when its link is
    /// slowed on purpose (SMTP's chaos "slow link"): every write of the session
    /// is then paced to it, and so is reading (a tenth of a second's worth at a
    /// time, then a pause), which through TCP's flow control slows the client's
    /// sending too. The default: full speed.
    fn slow_link(&self) -> Option<NonZeroU32> {
        None
    }

    /// The [wake source](Service::wake_source) changed while the session waited
    /// for input: returns the work to do now, if any (its output is flushed at
    /// once). The default does nothing.
    fn woken(&mut self) -> Option<Self::Action> {
        None
    }

    /// The session is over, however it ended (work to do once, such as marking
    /// what was read).
    fn finish(self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// The connection as [`Protocol::act`] sees it: the output buffer, and a way to
/// send it now.
#[derive(Debug)]
pub struct Link<'a> {
    stream: &'a mut ServerStream,
    out: &'a mut Vec<u8>,
    write_timeout: Duration,
    peer: SocketAddr,
    slow_link: Option<NonZeroU32>,
}

impl Link<'_> {
    /// The output not yet written.
    pub fn out(&mut self) -> &mut Vec<u8> {
        self.out
    }

    /// Writes the output now, waiting (within the write timeout) until the
    /// client has taken it.
    pub async fn flush(&mut self) -> io::Result<()> {
        flush_paced(self.stream, self.out, self.write_timeout, self.slow_link).await
    }

    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The TCP socket underneath, for its options and addresses.
    pub fn tcp(&self) -> &tokio::net::TcpStream {
        self.stream.tcp()
    }

    /// Whether the connection is under TLS.
    pub fn is_tls(&self) -> bool {
        self.stream.is_tls()
    }

    /// The TLS version and cipher suite, once TLS is up (see
    /// [`ServerStream::tls_params`]).
    pub fn tls_params(&self) -> Option<(String, String)> {
        self.stream.tls_params()
    }
}

/// Which kind of listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Clear text, upgraded with STARTTLS if the protocol offers it.
    Plain,
    /// TLS from the first byte (RFC 8314).
    ImplicitTls,
}

/// Serves `service` on already-bound, non-blocking listeners until `shutdown`
/// completes, under `limit`; then every session gets the stop signal, and the
/// run waits up to [`Settings::shutdown_grace`] plus a second for them to end.
/// An implicit-TLS listener without a certificate is refused up front.
pub async fn serve<S: Service>(
    service: Arc<S>,
    listeners: Vec<(std::net::TcpListener, Security)>,
    limit: Arc<ConnectionLimit>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<Served> {
    if service.tls().is_none() && listeners.iter().any(|(_, s)| *s == Security::ImplicitTls) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "an implicit-TLS listener needs a TLS certificate",
        ));
    }
    let grace = service.settings().shutdown_grace + Duration::from_secs(1);
    let proxy_protocol = service.settings().proxy_protocol;
    let handle =
        move |accepted, security, stop| connection(accepted, security, service.clone(), stop);
    serve_tcp(listeners, limit, proxy_protocol, shutdown, grace, handle).await
}

/// One accepted connection, from the handshake or the busy reply to the close.
async fn connection<S: Service>(
    accepted: Accepted,
    security: Security,
    service: Arc<S>,
    stop: StopSignal,
) {
    match accepted {
        Accepted::Admitted(tcp, peer, slot) => {
            let stream = match security {
                Security::Plain => Ok(ServerStream::Plain(tcp)),
                Security::ImplicitTls => handshake(ServerStream::Plain(tcp), &*service).await,
            };
            let result = match stream {
                Ok(stream) => {
                    let session = service.open(peer, stream.is_tls());
                    drive(stream, session, peer, &*service, stop).await
                }
                Err(err) => Err(err),
            };
            if let Err(err) = result {
                tracing::debug!(%peer, %err, "session ended with an error");
            }
            drop(slot);
        }
        // Counted and logged by the connection limit.
        Accepted::Refused(mut tcp, _peer) => {
            if security == Security::Plain {
                let busy = &service.settings().busy_reply;
                let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, tcp.write_all(busy)).await;
            }
        }
    }
}

/// The server side of the TLS handshake, bounded in time.
async fn handshake<S: Service>(stream: ServerStream, service: &S) -> io::Result<ServerStream> {
    let Some(acceptor) = service.tls() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "TLS is not configured",
        ));
    };
    tokio::time::timeout(
        service.settings().handshake_timeout,
        stream.accept_tls(acceptor),
    )
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))?
}

/// Runs one session on `stream` until it closes, fails or times out; then
/// [`Protocol::finish`].
async fn drive<S: Service>(
    stream: ServerStream,
    mut session: S::Session,
    peer: SocketAddr,
    service: &S,
    stop: StopSignal,
) -> io::Result<()> {
    let result = run(stream, &mut session, peer, service, stop).await;
    session.finish().await;
    result
}

async fn run<S: Service>(
    mut stream: ServerStream,
    session: &mut S::Session,
    peer: SocketAddr,
    service: &S,
    mut stop: StopSignal,
) -> io::Result<()> {
    let settings = service.settings();
    let write_timeout = settings.write_timeout;
    let mut wake = service.wake_source();
    if let Some(wake) = &mut wake {
        // Only changes made from now on concern this session.
        wake.borrow_and_update();
    }
    let mut input: Vec<u8> = Vec::with_capacity(4096);
    let mut out: Vec<u8> = Vec::with_capacity(1024);
    session.greeting(&mut out);
    let stopped = stop.stopped();
    tokio::pin!(stopped);
    let mut stopping_at: Option<Instant> = None;
    let mut timer = IdleTimer::new(settings.shortest_wait);
    let mut line = UnitDeadline::new(session.units_ended());
    loop {
        let (consumed, step) = session.advance(&input, &mut out);
        input.drain(..consumed);
        line.update(session.units_ended());
        match step {
            Step::NeedMore => {}
            Step::Flush => {
                flush_paced(&mut stream, &mut out, write_timeout, session.slow_link()).await?;
                line.restart();
                continue;
            }
            Step::StartTls => {
                flush_paced(&mut stream, &mut out, write_timeout, session.slow_link()).await?;
                input.clear();
                stream = handshake(stream, service).await?;
                session.tls_started();
                line.restart();
                continue;
            }
            Step::Close => {
                let written =
                    flush_paced(&mut stream, &mut out, write_timeout, session.slow_link()).await;
                // Best effort: a TLS close_notify, or a FIN for clear text (the
                // client has often hung up after its goodbye already).
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, stream.shutdown()).await;
                return written;
            }
            Step::Act(action) => {
                act(session, action, &mut stream, &mut out, peer, settings).await?;
                line.restart();
                continue;
            }
        }
        if stopping_at.is_some() && !session.busy() {
            session.shutting_down(&mut out);
            continue;
        }
        flush_paced(&mut stream, &mut out, write_timeout, session.slow_link()).await?;
        if session.quick_ack() {
            acknowledge_now(stream.tcp());
        }

        let mut deadline = session.read_deadline(&mut line, settings);
        if let Some(at) = stopping_at {
            deadline = deadline.min(at);
        }
        timer.set(deadline);
        input.reserve(READ_RESERVE);
        let slow_link = session.slow_link();
        tokio::select! {
            biased;
            read = read_paced(&mut stream, &mut input, slow_link) => {
                if read? == 0 {
                    return Ok(());
                }
            }
            () = timer.expired() => {
                if stopping_at.is_some_and(|at| Instant::now() >= at) {
                    session.shutting_down(&mut out);
                } else {
                    tracing::debug!(%peer, "client timed out");
                    session.timed_out(&mut out);
                }
            }
            () = &mut stopped, if stopping_at.is_none() => {
                stopping_at = Some(Instant::now() + settings.shutdown_grace);
            }
            changed = woken(&mut wake) => match changed {
                Ok(()) => {
                    if let Some(action) = session.woken() {
                        act(session, action, &mut stream, &mut out, peer, settings).await?;
                    }
                }
                // The source is gone: nothing will change any more.
                Err(_) => wake = None,
            },
        }
    }
}

/// Hands `action` to the protocol with the connection as a [`Link`].
async fn act<P: Protocol>(
    session: &mut P,
    action: P::Action,
    stream: &mut ServerStream,
    out: &mut Vec<u8>,
    peer: SocketAddr,
    settings: &Settings,
) -> io::Result<()> {
    let mut link = Link {
        slow_link: session.slow_link(),
        stream,
        out,
        write_timeout: settings.write_timeout,
        peer,
    };
    session.act(action, &mut link).await
}

/// Writes `out` as [`flush_within`] does; with a `slow_link` rate, a tenth of a
/// second's worth (at least one byte) at a time with a pause after each, so the
/// client receives about `rate` bytes per second. Each piece has the write
/// timeout; the pauses are the point, so they have none.
async fn flush_paced(
    stream: &mut ServerStream,
    out: &mut Vec<u8>,
    timeout: Duration,
    slow_link: Option<NonZeroU32>,
) -> io::Result<()> {
    let Some(rate) = slow_link else {
        return flush_within(stream, out, timeout).await;
    };
    let piece = (rate.get() / 10).max(1) as usize;
    let pause = Duration::from_secs_f64(piece as f64 / f64::from(rate.get()));
    let mut pending = std::mem::take(out);
    let mut buffer = Vec::with_capacity(piece);
    for chunk in pending.chunks(piece) {
        buffer.extend_from_slice(chunk);
        flush_within(stream, &mut buffer, timeout).await?;
        tokio::time::sleep(pause).await;
    }
    // Hand the buffer back empty, keeping its capacity.
    pending.clear();
    *out = pending;
    Ok(())
}

/// Reads what has arrived; with a `slow_link` rate, at most a tenth of a
/// second's worth, followed by the pause that many bytes take at that rate.
async fn read_paced(
    stream: &mut ServerStream,
    input: &mut Vec<u8>,
    slow_link: Option<NonZeroU32>,
) -> io::Result<usize> {
    let Some(rate) = slow_link else {
        return stream.read_buf(input).await;
    };
    let piece = u64::from((rate.get() / 10).max(1));
    let read = stream.take(piece).read_buf(input).await?;
    tokio::time::sleep(Duration::from_secs_f64(read as f64 / f64::from(rate.get()))).await;
    Ok(read)
}

/// Completes when the wake source changes; never, without one.
async fn woken(wake: &mut Option<watch::Receiver<u64>>) -> Result<(), watch::error::RecvError> {
    match wake {
        Some(wake) => wake.changed().await,
        None => std::future::pending().await,
    }
}

/// Makes the kernel send the ACK it is holding back for what has arrived, and
/// acknowledge the next segments at once (TCP_QUICKACK is not sticky: the kernel
/// goes back to delaying ACKs on its own, so this is asked before every wait).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn acknowledge_now(tcp: &tokio::net::TcpStream) {
    if let Err(err) = socket2::SockRef::from(tcp).set_tcp_quickack(true) {
        tracing::debug!(%err, "cannot set TCP_QUICKACK");
    }
}

/// Elsewhere there is no portable way to ask for it: ACKs stay delayed.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn acknowledge_now(_tcp: &tokio::net::TcpStream) {}
