//! The SMTP server shell: limits, timeouts and delivery around the core.
//!
//! One task per connection, run by the session driver ([`sokkel_net::driver`]):
//! it reads into the input buffer, lets the [`Session`] consume it, writes the
//! replies when it has to wait for more input (so pipelined replies go out
//! together, RFC 2920), does the STARTTLS handshake (throwing away anything the
//! client pipelined behind the command) and implicit TLS on SMTPS listeners, and
//! says 421 to clients over the cap. This shell adds what is SMTP's own: finished
//! messages go to the [`Deliver`] sink, and the 250 after DATA is written only
//! after `deliver` returned, which for the SQLite store means the message is
//! committed and synced; credentials are checked on tokio's blocking pool, with a
//! delay after each failure; message content has its own timeouts, and a budget
//! for the bytes all sessions hold in flight. A chaos slow link
//! ([`sokkel_net::chaos`]) paces its writes and reads.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sokkel_message::{Deliver, Envelope, NewMessage, TlsInfo};
use sokkel_net::auth::Credentials;
use sokkel_net::driver::{self, Link, Protocol, Security, Service, Settings};
use sokkel_net::repeated::{REPEAT_INTERVAL, RepeatedLog};
use sokkel_net::server::{ConnectionLimit, MemoryBudget, Reservation, UnitDeadline};
use sokkel_net::stats::{RejectReason, SessionGuard, SmtpCounters};
use sokkel_net::tls::ServerTls;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use super::replies::Refusal;
use super::session::{Delivery, Received, Session, SessionConfig, Step};

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
    /// Where the server counts what it accepts and refuses
    /// ([`Session::refusals_by_reason`]) and its open sessions, for the web
    /// API's statistics and `/metrics`.
    pub counters: Arc<SmtpCounters>,
    /// Whether every connection starts with a PROXY protocol header from a load
    /// balancer, whose source address is then the client's
    /// ([`sokkel_net::proxy`]); a connection without one is closed.
    pub proxy_protocol: bool,
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

/// What every session of a server shares.
struct Shared<D> {
    config: ServerConfig,
    settings: Settings,
    tls: Option<TlsAcceptor>,
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
    let limit = ConnectionLimit::with_share(config.max_conns, config.max_conns_per_address);
    let settings = Settings {
        command_timeout: config.command_timeout,
        shortest_wait: config.command_timeout.min(config.data_timeout),
        write_timeout: config.command_timeout,
        handshake_timeout: config.command_timeout.min(driver::HANDSHAKE_TIMEOUT),
        shutdown_grace: config.shutdown_grace,
        busy_reply: {
            let mut reply = Vec::new();
            Refusal::TooManyConnections
                .reply(&config.session)
                .write_to(&mut reply);
            reply
        },
        proxy_protocol: config.proxy_protocol,
    };
    let shared = Arc::new(Shared {
        tls: config.tls.as_ref().map(ServerTls::acceptor),
        budget: MemoryBudget::new(config.max_inflight_memory),
        config,
        settings,
        sink,
    });
    let tagged = (listeners.smtp.into_iter().map(|l| (l, Security::Plain)))
        .chain(
            listeners
                .smtps
                .into_iter()
                .map(|l| (l, Security::ImplicitTls)),
        )
        .collect();
    let served = driver::serve(shared, tagged, limit, shutdown).await?;
    Ok(ServeSummary {
        sessions: served.admitted,
        cut_off: served.cut_off,
    })
}

impl<D: Deliver> Service for Shared<D> {
    type Session = SmtpSession<D>;

    fn settings(&self) -> &Settings {
        &self.settings
    }

    fn tls(&self) -> Option<&TlsAcceptor> {
        self.tls.as_ref()
    }

    fn open(self: &Arc<Self>, peer: SocketAddr, tls: bool) -> SmtpSession<D> {
        let config = self.config.session.clone();
        SmtpSession {
            core: if tls {
                Session::new_tls(config)
            } else {
                Session::new(config)
            },
            shared: self.clone(),
            peer,
            reserved: Reservation::new(self.budget.clone()),
            refusals: Refusals::default(),
            transfer_started: None,
            _open: self.config.counters.sessions().open(),
        }
    }
}

/// One SMTP session: the core, and what the shell keeps for it.
struct SmtpSession<D> {
    core: Session,
    shared: Arc<Shared<D>>,
    peer: SocketAddr,
    /// The session's share of the budget for messages in flight.
    reserved: Reservation,
    refusals: Refusals,
    /// The transfer (by [`Session::transfers_started`]) whose whole-message
    /// deadline runs, and when it started.
    transfer_started: Option<(u64, Instant)>,
    /// Counts the session in `sokkel_sessions{protocol="smtp"}` while it lives.
    _open: SessionGuard,
}

/// What the SMTP core asks of the shell.
enum Action {
    Deliver(Received),
    Authenticate(super::session::Credentials),
}

impl<D: Deliver> Protocol for SmtpSession<D> {
    type Action = Action;

    fn greeting(&mut self, out: &mut Vec<u8>) {
        self.core.greeting(out);
    }

    fn advance(&mut self, input: &[u8], out: &mut Vec<u8>) -> (usize, driver::Step<Action>) {
        let shared = &self.shared;
        self.core
            .set_memory_low(shared.budget.available() < MEMORY_LOW_WATER);
        let (consumed, step) = self.core.advance(input, out);
        self.refusals.count(&self.core, &shared.config.counters);
        if let Step::Deliver(received) = &step {
            // Handed over whole, it holds its bytes until `deliver` returns; if the
            // last bytes do not fit, it keeps what was reserved for the rest.
            let _ = self.reserved.resize(received.data.len());
        } else if !self.reserved.resize(self.core.content_held()) {
            tracing::debug!(peer = %self.peer, "dropping a message: the budget for messages in flight is spent");
            self.core.out_of_memory();
            self.reserved.resize(self.core.content_held());
        }
        let step = match step {
            Step::NeedMore => driver::Step::NeedMore,
            // The client reads the replies to what it pipelined before more.
            Step::Flush => driver::Step::Flush,
            Step::Close => driver::Step::Close,
            Step::StartTls => driver::Step::StartTls,
            Step::Deliver(received) => driver::Step::Act(Action::Deliver(received)),
            Step::Authenticate(given) => driver::Step::Act(Action::Authenticate(given)),
        };
        (consumed, step)
    }

    fn units_ended(&self) -> u64 {
        self.core.lines_ended()
    }

    async fn act(&mut self, action: Action, link: &mut Link<'_>) -> io::Result<()> {
        match action {
            Action::Deliver(received) => {
                // The message ended when the core handed it over.
                let ended = std::time::Instant::now();
                let bytes = received.data.len();
                let outcome = self.deliver(received, link).await;
                let stored = matches!(outcome, Delivery::Stored(_));
                self.core.delivered(outcome, link.out());
                let counters = &self.shared.config.counters;
                self.refusals.count(&self.core, counters);
                self.reserved.resize(self.core.content_held());
                if stored {
                    counters.add_accepted(bytes);
                    // The 250 goes out now rather than with the replies to
                    // whatever the client pipelined behind the message: it
                    // waits for nothing else, and its time is what
                    // sokkel_smtp_ack_seconds measures.
                    link.flush().await?;
                    counters.add_ack(ended.elapsed());
                }
            }
            Action::Authenticate(given) => {
                let config = &self.shared.config;
                let ok = check_credentials(config, given).await;
                if !ok {
                    tracing::info!(peer = %self.peer, "authentication failed");
                    // Flush what came before, then make a password guesser wait.
                    link.flush().await?;
                    tokio::time::sleep(config.auth_failure_delay).await;
                }
                self.core.authenticated(ok, link.out());
            }
        }
        Ok(())
    }

    fn tls_started(&mut self) {
        self.core.tls_started();
    }

    /// A chaos "slow link" paces every write and read of the session.
    fn slow_link(&self) -> Option<std::num::NonZeroU32> {
        let chaos = self.shared.config.session.chaos.as_ref()?;
        chaos.slow_link()
    }

    fn timed_out(&mut self, out: &mut Vec<u8>) {
        self.core.timed_out(out);
    }

    fn shutting_down(&mut self, out: &mut Vec<u8>) {
        self.core.shutting_down(out);
    }

    /// A client in the middle of a message may finish it after a shutdown signal.
    fn busy(&self) -> bool {
        self.core.receiving_content()
    }

    /// The command timeout runs for a whole line, not from the last byte; message
    /// content has the per-pause data timeout, and the whole message its own
    /// deadline on top.
    fn read_deadline(&mut self, line: &mut UnitDeadline, settings: &Settings) -> Instant {
        let config = &self.shared.config;
        let now = Instant::now();
        let mut deadline = if self.core.receiving_content() {
            // The next command line starts once the content is over.
            line.restart();
            now + config.data_timeout
        } else {
            line.deadline(settings.command_timeout)
        };
        if self.core.transferring() {
            // Keyed by the transfer, not by a pause between transfers: a client
            // that pipelines the next message behind the final dot never pauses.
            let transfer = self.core.transfers_started();
            let started = match self.transfer_started {
                Some((of, at)) if of == transfer => at,
                _ => self.transfer_started.insert((transfer, now)).1,
            };
            deadline = deadline.min(started + config.data_total_timeout);
        } else {
            self.transfer_started = None;
        }
        deadline
    }
}

impl<D: Deliver> SmtpSession<D> {
    /// Hands a finished message to the sink; the 250 waits for its answer.
    async fn deliver(&self, received: Received, link: &Link<'_>) -> Delivery {
        let peer = self.peer;
        let message = NewMessage {
            envelope: Envelope {
                mail_from: received.mail_from,
                rcpt_to: received.rcpt_to,
                helo: received.helo,
                client_addr: peer,
                bare_lf: received.bare_lf,
                smtputf8: received.smtputf8,
                tls: link
                    .tls_params()
                    .map(|(version, cipher)| TlsInfo { version, cipher }),
                auth_user: received.auth_user,
            },
            received_at: SystemTime::now(),
            raw: received.data,
        };
        match self.shared.sink.deliver(message).await {
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
        }
    }
}

/// How many of a session's refusals, by reason, are in the server's
/// counters already.
#[derive(Default)]
struct Refusals([u64; RejectReason::ALL.len()]);

impl Refusals {
    fn count(&mut self, session: &Session, counters: &SmtpCounters) {
        let now = session.refusals_by_reason();
        for reason in RejectReason::ALL {
            let (counted, seen) = (&mut self.0[reason.index()], now[reason.index()]);
            if seen > *counted {
                counters.add_rejected(reason, seen - *counted);
                *counted = seen;
            }
        }
    }
}

/// Checks credentials on the blocking pool (bcrypt and Argon2 are slow on purpose).
async fn check_credentials(config: &ServerConfig, given: super::session::Credentials) -> bool {
    let Some(credentials) = config.credentials.clone() else {
        return false;
    };
    credentials
        .verify_off_thread(given.user, given.password)
        .await
}
