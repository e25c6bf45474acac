//! The POP3 server shell: logins, timeouts, limits and the mailbox around the
//! core.
//!
//! One task per connection, run by the session driver ([`sokkel_net::driver`]):
//! it reads into the input buffer, lets the [`Session`] consume it, writes
//! responses when the session has to wait for more input (so pipelined commands
//! get theirs together and in order, RFC 2449), upgrades to TLS and refuses
//! clients over the cap. This shell does what the session asks beyond that: check
//! a login (off the async workers, since password hashes are slow on purpose) and
//! open the maildrop, stream a message from the [`Mailbox`], or delete at QUIT.
//! Every mailbox call blocks, so it runs on tokio's blocking pool.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sokkel_message::{Mailbox, MessageId};
use sokkel_net::auth::Credentials;
use sokkel_net::driver::{self, Link, Protocol, Security, Service, Settings};
use sokkel_net::server::ConnectionLimit;
use sokkel_net::stats::{OpenSessions, SessionGuard};
use sokkel_net::tls::ServerTls;
use tokio_rustls::TlsAcceptor;

use crate::Pop3Error;
use crate::session::{Login, Peer, Retrieve, Session, SessionConfig, Step};

/// How much of a message goes into one write: large enough to keep the socket
/// busy, small enough that a slow reader holds back only this much at a time.
const CHUNK: usize = 64 << 10;

/// How the POP3 server behaves.
#[derive(Debug, Clone)]
pub struct Pop3Config {
    /// The name the server gives in its greeting.
    pub hostname: String,
    /// Sessions at once; more are told `-ERR [SYS/TEMP]` and closed.
    pub max_sessions: u32,
    /// Sessions one client address may hold at once (see
    /// [`ConnectionLimit`] for how addresses are grouped and which are exempt);
    /// more are told `-ERR [SYS/TEMP]` and closed.
    pub max_sessions_per_address: u32,
    /// How long a client may take to send a whole command line (counted from the
    /// end of the previous one, however the bytes trickle in), and how long it may
    /// take to read a response or finish a TLS handshake. RFC 1939 section 3 asks
    /// for an autologout timer of at least 10 minutes.
    pub command_timeout: Duration,
    /// How long a wrong password waits before its `-ERR`, to slow down guessing.
    pub failed_auth_delay: Duration,
    /// Wrong logins before the session is closed.
    pub max_auth_failures: u32,
    /// Unknown or malformed commands before the session is closed.
    pub max_errors: u32,
    /// The longest command line, CRLF included.
    pub max_line_length: usize,
    /// Show a login only the mail whose envelope recipients include it (see
    /// [`Mailbox::maildrop`] for what a login without `@` sees); otherwise every
    /// login sees every message.
    pub per_recipient: bool,
    /// Allow plain-text logins from peers that are not on loopback without TLS.
    pub allow_insecure_auth: bool,
    /// After a shutdown signal, how long a session in the middle of sending a
    /// message or deleting may take to finish.
    pub shutdown_grace: Duration,
    /// Whether every connection starts with a PROXY protocol header from a load
    /// balancer, whose source address is then the client's
    /// ([`sokkel_net::proxy`]); a connection without one is closed.
    pub proxy_protocol: bool,
    /// The sessions open now, for `sokkel_sessions{protocol="pop3"}`
    /// (the binary hands the same gauge to the web side).
    pub sessions: Arc<OpenSessions>,
}

impl Default for Pop3Config {
    fn default() -> Self {
        Pop3Config {
            hostname: "localhost".into(),
            max_sessions: 100,
            max_sessions_per_address: 25,
            command_timeout: Duration::from_secs(600),
            failed_auth_delay: Duration::from_secs(1),
            max_auth_failures: 3,
            max_errors: 20,
            max_line_length: 1024,
            per_recipient: false,
            allow_insecure_auth: false,
            shutdown_grace: Duration::from_secs(5),
            proxy_protocol: false,
            sessions: Arc::default(),
        }
    }
}

/// What a server run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pop3Summary {
    /// Sessions accepted over the run.
    pub sessions: u64,
    /// Sessions still open when the shutdown grace ran out.
    pub cut_off: u32,
}

/// What every session of a server shares.
struct Shared {
    config: Pop3Config,
    session: Arc<SessionConfig>,
    settings: Settings,
    tls: Option<TlsAcceptor>,
    credentials: Credentials,
    mailbox: Arc<dyn Mailbox>,
}

/// Serves POP3 on already-bound, non-blocking listeners until `shutdown`
/// completes: `plain` listeners speak clear text (with STLS when `tls` is given),
/// `implicit_tls` listeners start with the TLS handshake (POP3S, RFC 8314). Logins
/// are checked against `credentials`; mail comes from, and is deleted in, `mailbox`
/// (the mail store in the catcher).
/// On shutdown it stops accepting, tells idle clients `-ERR [SYS/TEMP]`, lets
/// sessions busy sending a message finish within the grace period, and returns.
pub async fn serve(
    config: Pop3Config,
    plain: Vec<std::net::TcpListener>,
    implicit_tls: Vec<std::net::TcpListener>,
    tls: Option<ServerTls>,
    credentials: Credentials,
    mailbox: Arc<dyn Mailbox>,
    shutdown: impl Future<Output = ()>,
) -> Result<Pop3Summary, Pop3Error> {
    if !implicit_tls.is_empty() && tls.is_none() {
        return Err(Pop3Error::NoCertificate);
    }
    let session = Arc::new(SessionConfig {
        hostname: config.hostname.clone(),
        max_line_length: config.max_line_length,
        max_auth_failures: config.max_auth_failures,
        max_errors: config.max_errors,
        tls_available: tls.is_some(),
        allow_insecure_auth: config.allow_insecure_auth,
    });
    let limit = ConnectionLimit::with_share(config.max_sessions, config.max_sessions_per_address);
    let settings = Settings {
        command_timeout: config.command_timeout,
        shortest_wait: config.command_timeout,
        write_timeout: config.command_timeout,
        handshake_timeout: config.command_timeout.min(driver::HANDSHAKE_TIMEOUT),
        shutdown_grace: config.shutdown_grace,
        busy_reply: b"-ERR [SYS/TEMP] too many sessions; try again later\r\n".to_vec(),
        proxy_protocol: config.proxy_protocol,
    };
    let shared = Arc::new(Shared {
        config,
        session,
        settings,
        tls: tls.as_ref().map(ServerTls::acceptor),
        credentials,
        mailbox,
    });
    let listeners = (plain.into_iter().map(|l| (l, Security::Plain)))
        .chain(implicit_tls.into_iter().map(|l| (l, Security::ImplicitTls)))
        .collect();
    let served = driver::serve(shared, listeners, limit, shutdown)
        .await
        .map_err(Pop3Error::Listener)?;
    Ok(Pop3Summary {
        sessions: served.admitted,
        cut_off: served.cut_off,
    })
}

impl Service for Shared {
    type Session = Pop3Session;

    fn settings(&self) -> &Settings {
        &self.settings
    }

    fn tls(&self) -> Option<&TlsAcceptor> {
        self.tls.as_ref()
    }

    fn open(self: &Arc<Self>, peer: SocketAddr, tls: bool) -> Pop3Session {
        let loopback = peer.ip().to_canonical().is_loopback();
        Pop3Session {
            core: Session::new(self.session.clone(), Peer { tls, loopback }),
            shared: self.clone(),
            peer,
            _open: self.config.sessions.open(),
            read: ReadMarks::default(),
        }
    }
}

/// One POP3 session: the core, and what the shell keeps for it.
struct Pop3Session {
    core: Session,
    shared: Arc<Shared>,
    peer: SocketAddr,
    /// Counts the session in `sokkel_sessions` while it lives.
    _open: SessionGuard,
    read: ReadMarks,
}

/// What the POP3 core asks of the shell.
enum Action {
    Login(Login),
    Retrieve(Retrieve),
    Update(Vec<MessageId>),
}

impl Protocol for Pop3Session {
    type Action = Action;

    fn greeting(&mut self, out: &mut Vec<u8>) {
        self.core.greeting(out);
    }

    fn advance(&mut self, input: &[u8], out: &mut Vec<u8>) -> (usize, driver::Step<Action>) {
        let (consumed, step) = self.core.advance(input, out);
        let step = match step {
            Step::NeedMore => driver::Step::NeedMore,
            // The client reads what it asked for before it may ask for more.
            Step::Flush => driver::Step::Flush,
            // The session consumed everything buffered: nothing the client sent in
            // clear text after STLS is read as a command.
            Step::StartTls => driver::Step::StartTls,
            Step::Close => driver::Step::Close,
            Step::Login(login) => driver::Step::Act(Action::Login(login)),
            Step::Retrieve(retrieve) => driver::Step::Act(Action::Retrieve(retrieve)),
            Step::Update(ids) => driver::Step::Act(Action::Update(ids)),
        };
        (consumed, step)
    }

    fn units_ended(&self) -> u64 {
        self.core.lines_ended()
    }

    async fn act(&mut self, action: Action, link: &mut Link<'_>) -> io::Result<()> {
        match action {
            Action::Login(login) => {
                log_in(&mut self.core, login, self.peer, &self.shared, link.out()).await;
            }
            Action::Retrieve(retrieve) => {
                link.flush().await?;
                send_message(&mut self.core, retrieve, link, &self.shared).await?;
                if retrieve.top_lines.is_none() {
                    self.read.retrieved.push(retrieve.id);
                }
            }
            Action::Update(ids) => {
                update(
                    &mut self.core,
                    ids,
                    &mut self.read,
                    self.peer,
                    &self.shared,
                    link.out(),
                )
                .await;
            }
        }
        Ok(())
    }

    fn tls_started(&mut self) {
        self.core.tls_started();
    }

    fn timed_out(&mut self, out: &mut Vec<u8>) {
        self.core.timed_out(out);
    }

    fn shutting_down(&mut self, out: &mut Vec<u8>) {
        self.core.shutting_down(out);
    }

    async fn finish(self) {
        self.read.mark(&self.shared.mailbox).await;
    }
}

/// Checks a login off the async workers; on success opens the maildrop, on failure
/// waits the failed-login delay first.
async fn log_in(
    session: &mut Session,
    login: Login,
    peer: SocketAddr,
    shared: &Shared,
    out: &mut Vec<u8>,
) {
    let Login { user, password } = login;
    let right = shared
        .credentials
        .verify_off_thread(user.clone(), password)
        .await;
    if !right {
        tracing::warn!(%peer, user, "pop3 login failed");
        tokio::time::sleep(shared.config.failed_auth_delay).await;
        session.login_failed(out);
        return;
    }
    let mailbox = shared.mailbox.clone();
    let recipient = shared.config.per_recipient.then(|| user.clone());
    let maildrop =
        tokio::task::spawn_blocking(move || mailbox.maildrop(recipient.as_deref())).await;
    match maildrop {
        Ok(Ok(maildrop)) => {
            tracing::info!(%peer, user, messages = maildrop.len(), "pop3 login");
            session.logged_in(maildrop, out);
        }
        Ok(Err(err)) => {
            tracing::error!(%peer, user, %err, "cannot open the pop3 maildrop");
            session.maildrop_unavailable(out);
        }
        Err(err) => {
            tracing::error!(%peer, user, %err, "opening the pop3 maildrop panicked");
            session.maildrop_unavailable(out);
        }
    }
}

/// Reads the message and writes the RETR or TOP response a chunk at a time, each
/// chunk written before the next is made, so a slow reader holds back the work.
async fn send_message(
    session: &mut Session,
    retrieve: Retrieve,
    link: &mut Link<'_>,
    shared: &Shared,
) -> io::Result<()> {
    let mailbox = shared.mailbox.clone();
    let id = retrieve.id;
    let raw = match tokio::task::spawn_blocking(move || mailbox.raw(id)).await {
        Ok(Ok(raw)) => raw,
        Ok(Err(err)) => {
            tracing::error!(%id, %err, "cannot read a message for pop3");
            session.transfer_failed(link.out());
            return Ok(());
        }
        Err(err) => {
            tracing::error!(%id, %err, "reading a message for pop3 panicked");
            session.transfer_failed(link.out());
            return Ok(());
        }
    };
    if let Some(mut body) = session.transfer(raw.as_deref(), link.out()) {
        loop {
            let done = body.write_next(link.out(), CHUNK);
            link.flush().await?;
            if done {
                break;
            }
        }
    }
    Ok(())
}

/// The UPDATE state: deletes what the client marked, then says goodbye.
async fn update(
    session: &mut Session,
    ids: Vec<MessageId>,
    read: &mut ReadMarks,
    peer: SocketAddr,
    shared: &Shared,
    out: &mut Vec<u8>,
) {
    read.retrieved.retain(|id| !ids.contains(id));
    let mailbox = shared.mailbox.clone();
    let marked = ids.len();
    let deleted = tokio::task::spawn_blocking(move || mailbox.delete(&ids)).await;
    let user = session.user().unwrap_or_default().to_owned();
    match deleted {
        Ok(Ok(count)) => {
            tracing::info!(%peer, user, marked, deleted = count, "pop3 deleted messages at QUIT");
            session.updated(Ok(count), out);
        }
        Ok(Err(err)) => {
            tracing::error!(%peer, user, %err, "pop3 could not delete messages at QUIT");
            session.updated(Err(()), out);
        }
        Err(err) => {
            tracing::error!(%peer, user, %err, "pop3 deleting at QUIT panicked");
            session.updated(Err(()), out);
        }
    }
}

/// The messages a session retrieved whole, to be marked read in the mailbox when
/// it ends, in one call (one transaction in the store) rather than one per RETR.
#[derive(Debug, Default)]
struct ReadMarks {
    retrieved: Vec<MessageId>,
}

impl ReadMarks {
    async fn mark(self, mailbox: &Arc<dyn Mailbox>) {
        if self.retrieved.is_empty() {
            return;
        }
        let mailbox = mailbox.clone();
        let ids = self.retrieved;
        match tokio::task::spawn_blocking(move || mailbox.set_read(&ids, true)).await {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => tracing::warn!(%err, "cannot mark messages read after pop3 RETR"),
            Err(err) => tracing::warn!(%err, "marking messages read after pop3 RETR panicked"),
        }
    }
}
