//! The SMTP server shell: sockets, timeouts, limits and delivery around the core.
//!
//! One task per connection. The task reads whatever arrived into its input buffer,
//! lets the [`Session`] consume it, writes the replies when it has to wait for more
//! input (so pipelined replies go out together, RFC 2920), and hands finished messages
//! to the [`Deliver`] sink. The 250 after DATA is written only after `deliver`
//! returned, which for the SQLite store means the message is committed and synced.
//!
//! It also carries out what the core decides about TLS and AUTH: the STARTTLS
//! handshake (throwing away anything the client pipelined behind the command),
//! implicit TLS on SMTPS listeners, and checking credentials on tokio's blocking
//! pool, with a delay after each failure.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sokkel_message::{Deliver, Envelope, NewMessage, TlsInfo};
use sokkel_net::auth::Credentials;
use sokkel_net::repeated::{REPEAT_INTERVAL, RepeatedLog};
use sokkel_net::server::{
    Accepted, ConnectionLimit, IdleTimer, MemoryBudget, Reservation, StopSignal, UnitDeadline,
    flush_within, serve_tcp,
};
use sokkel_net::tls::{ServerStream, ServerTls};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::session::{Delivery, Session, SessionConfig, Step};

/// The longest a TLS handshake may take, however long the command timeout is: a
/// client that connects to the SMTPS port and says nothing should not hold a session
/// slot for minutes.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Below this much free budget for messages in flight, new DATA and BDAT get
/// 452 4.3.1: a message needs at least a read buffer's worth to get anywhere.
const MEMORY_LOW_WATER: usize = 64 << 10;

/// How the server behaves beyond one session's rules.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The rules every session follows.
    pub session: Arc<SessionConfig>,
    /// Sessions at once; more are told 421 and closed.
    pub max_conns: u32,
    /// Sessions one client address may hold at once (see [`ConnectionLimit`] for
    /// how addresses are grouped and which are exempt); more are told 421.
    pub max_conns_per_address: u32,
    /// How long a client may take to send a whole command line, counted from the
    /// end of the previous one however the bytes trickle in (RFC 5321 section
    /// 4.5.3.2.7 suggests 5 minutes).
    pub command_timeout: Duration,
    /// How long a client may pause inside message content (RFC 5321 suggests 3
    /// minutes per data block).
    pub data_timeout: Duration,
    /// How long a whole message may take to arrive: DATA from its 354 to the final
    /// dot, BDAT from the first chunk to the last. RFC 5321 section 4.5.3.2 only
    /// bounds each pause ([`data_timeout`](Self::data_timeout)); without this, a
    /// client sending a byte every few minutes would hold its session for ever.
    pub data_total_timeout: Duration,
    /// Bytes all sessions together may hold for messages in flight; a new message
    /// over it gets 452 4.3.1, one that outgrows it is dropped and gets 452 4.3.1
    /// at its end.
    pub max_inflight_memory: usize,
    /// After a shutdown signal, how long a client in the middle of a message may take
    /// to finish it.
    pub shutdown_grace: Duration,
    /// The certificate for STARTTLS and SMTPS; `None` offers neither. Set
    /// `session.starttls` to match.
    pub tls: Option<ServerTls>,
    /// Who may log in; `None` offers no AUTH. Set `session.auth` to match.
    pub credentials: Option<Credentials>,
    /// How long a client waits after wrong credentials before it may try again.
    pub auth_failure_delay: Duration,
}

/// The listening sockets, already bound.
#[derive(Debug, Default)]
pub struct Listeners {
    /// Plain SMTP, with STARTTLS when TLS is configured.
    pub smtp: Vec<std::net::TcpListener>,
    /// SMTPS: TLS from the first byte (RFC 8314). Needs [`ServerConfig::tls`].
    pub smtps: Vec<std::net::TcpListener>,
}

/// What a server run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeSummary {
    /// Sessions accepted over the run.
    pub sessions: u64,
    /// Sessions still open when the shutdown grace ran out.
    pub cut_off: u32,
}

struct Shared<D> {
    config: ServerConfig,
    sink: Arc<D>,
    budget: Arc<MemoryBudget>,
}

/// Serves SMTP on already-bound, non-blocking listeners until `shutdown` completes;
/// then stops accepting, tells idle clients 421, lets clients in the middle of a
/// message finish it within the grace period, and returns.
pub async fn serve<D: Deliver>(
    config: ServerConfig,
    listeners: Listeners,
    sink: Arc<D>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<ServeSummary> {
    if !listeners.smtps.is_empty() && config.tls.is_none() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "an SMTPS listener needs a TLS certificate",
        ));
    }
    let grace = config.shutdown_grace + Duration::from_secs(1);
    let limit = ConnectionLimit::with_share(config.max_conns, config.max_conns_per_address);
    let budget = MemoryBudget::new(config.max_inflight_memory);
    let shared = Arc::new(Shared {
        config,
        sink,
        budget,
    });
    let tagged = (listeners.smtp.into_iter().map(|l| (l, false)))
        .chain(listeners.smtps.into_iter().map(|l| (l, true)))
        .collect();
    let handle = move |accepted, implicit_tls, stop| {
        serve_connection(accepted, implicit_tls, shared.clone(), stop)
    };
    let served = serve_tcp(tagged, limit, shutdown, grace, handle).await?;
    Ok(ServeSummary {
        sessions: served.admitted,
        cut_off: served.cut_off,
    })
}

async fn serve_connection<D: Deliver>(
    accepted: Accepted,
    implicit_tls: bool,
    shared: Arc<Shared<D>>,
    stop: StopSignal,
) {
    match accepted {
        Accepted::Admitted(stream, peer, slot) => {
            let session = if implicit_tls {
                handshake(ServerStream::Plain(stream), &shared.config)
                    .await
                    .map(|stream| (stream, Session::new_tls(shared.config.session.clone())))
            } else {
                Ok((
                    ServerStream::Plain(stream),
                    Session::new(shared.config.session.clone()),
                ))
            };
            let result = match session {
                Ok((stream, session)) => run_session(stream, session, peer, &shared, stop).await,
                Err(err) => Err(err),
            };
            if let Err(err) = result {
                tracing::debug!(%peer, %err, "session ended with an error");
            }
            drop(slot);
        }
        Accepted::Refused(stream, _peer) => {
            // Counted and logged by the connection limit.
            let host = &shared.config.session.hostname;
            let busy = format!("421 4.7.0 {host} Too many connections; try again later\r\n");
            // A client of the SMTPS port cannot read a clear-text reply, and a TLS
            // handshake for every connection over the cap would hand a flood the
            // CPU the cap is there to protect: it just sees the connection close.
            if !implicit_tls {
                let mut stream = stream;
                let _ =
                    tokio::time::timeout(Duration::from_secs(5), stream.write_all(busy.as_bytes()))
                        .await;
            }
        }
    }
}

/// The server side of the TLS handshake, bounded in time.
async fn handshake(stream: ServerStream, config: &ServerConfig) -> io::Result<ServerStream> {
    let Some(tls) = &config.tls else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "TLS is not configured",
        ));
    };
    let timeout = config.command_timeout.min(HANDSHAKE_TIMEOUT);
    tokio::time::timeout(timeout, stream.accept_tls(&tls.acceptor()))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))?
}

async fn run_session<D: Deliver>(
    mut stream: ServerStream,
    mut session: Session,
    peer: SocketAddr,
    shared: &Shared<D>,
    mut stop: StopSignal,
) -> io::Result<()> {
    let config = &shared.config;
    let mut input: Vec<u8> = Vec::with_capacity(4096);
    let mut out: Vec<u8> = Vec::with_capacity(512);
    session.greeting(&mut out);
    let mut stopping_at: Option<Instant> = None;
    let stopped = stop.stopped();
    tokio::pin!(stopped);
    let mut timer = IdleTimer::new(config.command_timeout.min(config.data_timeout));
    // The command timeout runs for a whole line, not from the last byte; the whole
    // message has its own deadline on top of the per-pause data timeout.
    let mut line = UnitDeadline::new(session.lines_ended());
    let mut transfer_started: Option<(u64, Instant)> = None;
    let mut reserved = Reservation::new(shared.budget.clone());
    loop {
        session.set_memory_low(shared.budget.available() < MEMORY_LOW_WATER);
        let (consumed, step) = session.advance(&input, &mut out);
        input.drain(..consumed);
        line.update(session.lines_ended());
        if let Step::Deliver(received) = &step {
            // Handed over whole, it holds its bytes until `deliver` returns; if the
            // last bytes do not fit, it keeps what was reserved for the rest.
            let _ = reserved.resize(received.data.len());
        } else if !reserved.resize(session.content_held()) {
            tracing::debug!(%peer, "dropping a message: the budget for messages in flight is spent");
            session.out_of_memory();
            reserved.resize(session.content_held());
        }
        match step {
            Step::Deliver(received) => {
                let message = NewMessage {
                    envelope: Envelope {
                        mail_from: received.mail_from,
                        rcpt_to: received.rcpt_to,
                        helo: received.helo,
                        client_addr: peer,
                        bare_lf: received.bare_lf,
                        smtputf8: received.smtputf8,
                        tls: stream
                            .tls_params()
                            .map(|(version, cipher)| TlsInfo { version, cipher }),
                        auth_user: received.auth_user,
                    },
                    received_at: SystemTime::now(),
                    raw: received.data,
                };
                let outcome = match shared.sink.deliver(message).await {
                    Ok(id) => Delivery::Stored(id.to_string()),
                    Err(err) => {
                        // A client retrying against a full store fails the same way
                        // thousands of times: one line per interval, with the count.
                        static STORE_FAILED: RepeatedLog = RepeatedLog::new(REPEAT_INTERVAL);
                        let repeat = STORE_FAILED.occurrence(&err.to_string());
                        if repeat.should_log() {
                            tracing::error!(%peer, %err, "storing a message failed; the client was told 451{repeat}");
                        }
                        Delivery::Failed
                    }
                };
                session.delivered(outcome, &mut out);
                reserved.resize(session.content_held());
                line.restart();
                continue;
            }
            Step::Flush => {
                // The client reads the replies to what it pipelined before more.
                flush_within(&mut stream, &mut out, config.command_timeout).await?;
                line.restart();
                continue;
            }
            Step::Close => {
                // Dropping the socket closes it; the client has usually hung up
                // after 221 already, so a shutdown() first would only fail.
                return flush_within(&mut stream, &mut out, config.command_timeout).await;
            }
            Step::StartTls => {
                flush_within(&mut stream, &mut out, config.command_timeout).await?;
                // Sent in clear text before the handshake: never commands.
                input.clear();
                stream = handshake(stream, config).await?;
                session.tls_started();
                line.restart();
                continue;
            }
            Step::Authenticate(given) => {
                let ok = check_credentials(config, given).await;
                if !ok {
                    tracing::info!(%peer, "authentication failed");
                    // Flush what came before, then make a password guesser wait.
                    flush_within(&mut stream, &mut out, config.command_timeout).await?;
                    tokio::time::sleep(config.auth_failure_delay).await;
                }
                session.authenticated(ok, &mut out);
                line.restart();
                continue;
            }
            Step::NeedMore => {}
        }
        if stopping_at.is_some() && !session.receiving_content() {
            session.shutting_down(&mut out);
            continue;
        }
        flush_within(&mut stream, &mut out, config.command_timeout).await?;

        let now = Instant::now();
        let mut deadline = if session.receiving_content() {
            // The next command line starts once the content is over.
            line.restart();
            now + config.data_timeout
        } else {
            line.deadline(config.command_timeout)
        };
        if session.transferring() {
            // Keyed by the transfer, not by a pause between transfers: a client
            // that pipelines the next message behind the final dot never pauses.
            let transfer = session.transfers_started();
            let started = match transfer_started {
                Some((of, at)) if of == transfer => at,
                _ => transfer_started.insert((transfer, now)).1,
            };
            deadline = deadline.min(started + config.data_total_timeout);
        } else {
            transfer_started = None;
        }
        if let Some(at) = stopping_at {
            deadline = deadline.min(at);
        }
        timer.set(deadline);
        input.reserve(8192);
        tokio::select! {
            biased;
            read = stream.read_buf(&mut input) => match read {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(err) => return Err(err),
            },
            () = timer.expired() => {
                if stopping_at.is_some_and(|at| Instant::now() >= at) {
                    session.shutting_down(&mut out);
                } else {
                    tracing::debug!(%peer, "client timed out");
                    session.timed_out(&mut out);
                }
            }
            () = &mut stopped, if stopping_at.is_none() => {
                stopping_at = Some(Instant::now() + config.shutdown_grace);
            }
        }
    }
}

/// Checks credentials on the blocking pool (bcrypt and Argon2 are slow on purpose).
async fn check_credentials(config: &ServerConfig, given: super::session::Credentials) -> bool {
    let Some(credentials) = config.credentials.clone() else {
        return false;
    };
    tokio::task::spawn_blocking(move || credentials.verify(&given.user, &given.password))
        .await
        .unwrap_or(false)
}
