//! The IMAP server shell: sockets, TLS, timeouts, limits and the store's folders
//! around the core.
//!
//! It runs on the session driver every sokkel server shares
//! ([`sokkel_net::driver`]): the driver owns the socket, the buffers, the timers,
//! STARTTLS and shutdown; this shell does what only it can for the [`Session`]:
//! check a login (off the async workers, since password hashes are slow on
//! purpose) and carry out the core's store requests against [`Folders`] on
//! tokio's blocking pool. When the store's change counter moves, an idling
//! session polls at once, so IDLE pushes `* n EXISTS` within milliseconds of
//! the commit.
//!
//! ```text
//! driver ──bytes──▶ Session::advance ──Request::Login──▶ Credentials::verify
//!    ▲                                └─Request::Store──▶ Folders (blocking pool)
//!    └── changes watch moved ─▶ Session::store_changed ─▶ Poll ─▶ * n EXISTS
//! ```

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sokkel_message::{Folders, MailboxError};
use sokkel_net::auth::Credentials;
use sokkel_net::driver::{self, Link, Protocol, Security, Service, Settings};
use sokkel_net::server::{ConnectionLimit, UnitDeadline, output_backed_up};
use sokkel_net::stats::{OpenSessions, SessionGuard};
use sokkel_net::tls::ServerTls;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use crate::ImapError;
use crate::session::{
    Answer, Login, Peer, Request, Session, SessionConfig, Step, StoreCall, StoreReply,
};

mod folders;

/// What a client over the session cap reads before the connection closes
/// (RFC 5530's response code; on an implicit-TLS port it just closes).
const BUSY_REPLY: &[u8] = b"* BYE [UNAVAILABLE] too many sessions; try again later\r\n";

/// How the IMAP server behaves.
#[derive(Debug, Clone)]
pub struct ImapConfig {
    /// The name the server gives in its greeting.
    pub hostname: String,
    /// Sessions at once; more are told `* BYE` and closed.
    pub max_sessions: u32,
    /// Sessions one client address may hold at once.
    pub max_sessions_per_address: u32,
    /// How long a session may be silent: between commands (counted from the end
    /// of the last, however the next one trickles in), and in IDLE (counted from
    /// its start; RFC 2177 clients renew it every 29 minutes). RFC 3501 section
    /// 5.4 asks for at least 30 minutes.
    pub idle_timeout: Duration,
    /// How long a wrong password waits before its `NO`.
    pub failed_auth_delay: Duration,
    /// Wrong logins before the session is closed.
    pub max_auth_failures: u32,
    /// Malformed or unknown commands before the session is closed.
    pub max_errors: u32,
    /// The longest command line, literals not counted.
    pub max_line_length: usize,
    /// The largest literal (APPEND's message among them).
    pub max_literal: u64,
    /// Commands one session may send before it is closed.
    pub max_commands: u64,
    /// Show a login only its own mail in the INBOX, as POP3's option does.
    pub per_recipient: bool,
    /// Allow plain-text logins from peers not on loopback without TLS.
    pub allow_insecure_auth: bool,
    /// After a shutdown signal, how long a busy session may take to finish.
    pub shutdown_grace: Duration,
    /// Whether every connection starts with a PROXY protocol header from a load
    /// balancer, whose source address is then the client's
    /// ([`sokkel_net::proxy`]); a connection without one is closed.
    pub proxy_protocol: bool,
    /// The sessions open now, for `sokkel_sessions{protocol="imap"}`
    /// (the binary hands the same gauge to the web side).
    pub sessions: Arc<OpenSessions>,
}

impl Default for ImapConfig {
    fn default() -> Self {
        ImapConfig {
            hostname: "localhost".into(),
            max_sessions: 100,
            max_sessions_per_address: 25,
            idle_timeout: Duration::from_secs(30 * 60),
            failed_auth_delay: Duration::from_secs(1),
            max_auth_failures: 3,
            max_errors: 20,
            max_line_length: 64 << 10,
            max_literal: 32 << 20,
            max_commands: 1_000_000,
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
pub struct ImapSummary {
    /// Sessions accepted over the run.
    pub sessions: u64,
    /// Sessions still open when the shutdown grace ran out.
    pub cut_off: u32,
}

/// What every session of a server shares.
struct Shared {
    config: ImapConfig,
    session: Arc<SessionConfig>,
    settings: Settings,
    tls: Option<TlsAcceptor>,
    credentials: Credentials,
    store: folders::StoreCalls,
    changes: watch::Receiver<u64>,
}

/// Serves IMAP on already-bound, non-blocking listeners until `shutdown`
/// completes: `plain` listeners speak clear text (with STARTTLS when `tls` is
/// given), `implicit_tls` listeners start with the TLS handshake (IMAPS). Logins
/// are checked against `credentials`; mail is read and changed through
/// `folders`; `changes` carries the store's change counter
/// ([`Folders::highest_modseq`]) whenever anything changes, so that selected
/// and idling sessions learn of it.
///
/// On shutdown it stops accepting, tells every client `* BYE` between its
/// commands (a command in progress finishes first, within the grace period),
/// and returns.
#[allow(clippy::too_many_arguments)]
pub async fn serve(
    config: ImapConfig,
    plain: Vec<std::net::TcpListener>,
    implicit_tls: Vec<std::net::TcpListener>,
    tls: Option<ServerTls>,
    credentials: Credentials,
    folders: Arc<dyn Folders>,
    changes: watch::Receiver<u64>,
    shutdown: impl Future<Output = ()>,
) -> Result<ImapSummary, ImapError> {
    if !implicit_tls.is_empty() && tls.is_none() {
        return Err(ImapError::NoCertificate);
    }
    let limit = ConnectionLimit::with_share(config.max_sessions, config.max_sessions_per_address);
    let shared = Arc::new(Shared {
        session: Arc::new(session_config(&config, tls.is_some())),
        settings: settings(&config),
        config,
        tls: tls.as_ref().map(ServerTls::acceptor),
        credentials,
        store: folders::StoreCalls::new(folders),
        changes,
    });
    let listeners = (plain.into_iter().map(|l| (l, Security::Plain)))
        .chain(implicit_tls.into_iter().map(|l| (l, Security::ImplicitTls)))
        .collect();
    let served = driver::serve(shared, listeners, limit, shutdown)
        .await
        .map_err(ImapError::Listener)?;
    Ok(ImapSummary {
        sessions: served.admitted,
        cut_off: served.cut_off,
    })
}

/// The core's share of the configuration.
fn session_config(config: &ImapConfig, tls_available: bool) -> SessionConfig {
    SessionConfig {
        hostname: config.hostname.clone(),
        max_line_length: config.max_line_length,
        max_literal: config.max_literal,
        max_commands: config.max_commands,
        max_errors: config.max_errors,
        max_auth_failures: config.max_auth_failures,
        tls_available,
        allow_insecure_auth: config.allow_insecure_auth,
        per_recipient: config.per_recipient,
    }
}

/// The driver's timeouts. One idle timeout covers everything a client may keep
/// the server waiting for: its next command (a whole one, however it trickles
/// in), the end of an IDLE (RFC 2177 clients renew it every 29 minutes), reading
/// what it asked for, and the TLS handshake.
fn settings(config: &ImapConfig) -> Settings {
    Settings {
        command_timeout: config.idle_timeout,
        shortest_wait: config.idle_timeout,
        write_timeout: config.idle_timeout,
        handshake_timeout: config.idle_timeout.min(driver::HANDSHAKE_TIMEOUT),
        shutdown_grace: config.shutdown_grace,
        busy_reply: BUSY_REPLY.to_vec(),
        proxy_protocol: config.proxy_protocol,
    }
}

impl Service for Shared {
    type Session = ImapSession;

    fn settings(&self) -> &Settings {
        &self.settings
    }

    fn tls(&self) -> Option<&TlsAcceptor> {
        self.tls.as_ref()
    }

    fn open(self: &Arc<Self>, peer: SocketAddr, tls: bool) -> ImapSession {
        let loopback = peer.ip().to_canonical().is_loopback();
        ImapSession {
            core: Session::new(self.session.clone(), Peer { tls, loopback }),
            shared: self.clone(),
            peer,
            _open: self.config.sessions.open(),
            idle_since: None,
            continued_at: None,
        }
    }

    fn wake_source(&self) -> Option<watch::Receiver<u64>> {
        Some(self.changes.clone())
    }
}

/// One IMAP session: the core, and what the shell keeps for it.
struct ImapSession {
    core: Session,
    shared: Arc<Shared>,
    peer: SocketAddr,
    /// Counts the session in `sokkel_sessions` while it lives.
    _open: SessionGuard,
    /// When the IDLE in progress began.
    idle_since: Option<Instant>,
    /// The core's count of ended commands when it last asked the client to go
    /// on with a command (a synchronising literal, an AUTHENTICATE response):
    /// while the count is still this, the command is incomplete.
    continued_at: Option<u64>,
}

impl Protocol for ImapSession {
    type Action = Request;

    fn greeting(&mut self, out: &mut Vec<u8>) {
        self.core.greeting(out);
    }

    fn advance(&mut self, input: &[u8], out: &mut Vec<u8>) -> (usize, driver::Step<Request>) {
        let (consumed, step) = self.core.advance(input, out);
        let step = match step {
            Step::NeedMore => driver::Step::NeedMore,
            // A continuation request or IDLE's `+ idling`, which the client
            // waits for, or output backed up behind pipelined commands.
            Step::Flush => driver::Step::Flush,
            Step::StartTls => driver::Step::StartTls,
            Step::Close => driver::Step::Close,
            Step::Request(request) => driver::Step::Act(request),
        };
        if matches!(step, driver::Step::Flush) && asks_to_go_on(out) && !self.core.idling() {
            self.continued_at = Some(self.core.commands_ended());
        }
        (consumed, step)
    }

    /// While a command waits for the rest of itself after a continuation
    /// request: a client with Nagle's algorithm on sends a literal's closing
    /// CRLF only once the literal is acknowledged, so a delayed ACK would
    /// hold every APPEND about 40 ms.
    fn quick_ack(&self) -> bool {
        self.continued_at == Some(self.core.commands_ended())
    }

    fn units_ended(&self) -> u64 {
        self.core.commands_ended()
    }

    async fn act(&mut self, request: Request, link: &mut Link<'_>) -> io::Result<()> {
        match request {
            Request::Login(login) => self.log_in(login, link.out()).await,
            Request::Store(call) => {
                // A FETCH of many messages asks for them in batches: what the
                // batches before made goes out now instead of piling up.
                if output_backed_up(link.out()) {
                    link.flush().await?;
                }
                let reply = self.call_store(call).await;
                self.core.answer(Answer::Store(reply), link.out());
            }
        }
        Ok(())
    }

    fn tls_started(&mut self) {
        self.core.tls_started();
    }

    fn timed_out(&mut self, out: &mut Vec<u8>) {
        tracing::debug!(peer = %self.peer, "imap client timed out");
        self.core.timed_out(out);
    }

    fn shutting_down(&mut self, out: &mut Vec<u8>) {
        self.core.shutting_down(out);
    }

    /// Between commands, a whole command within the idle timeout of the end of
    /// the last; in IDLE, `DONE` within the idle timeout of the IDLE, however
    /// many updates were pushed meanwhile.
    fn read_deadline(&mut self, line: &mut UnitDeadline, settings: &Settings) -> Instant {
        if !self.core.idling() {
            self.idle_since = None;
            return line.deadline(settings.command_timeout);
        }
        *self.idle_since.get_or_insert_with(Instant::now) + settings.command_timeout
    }

    fn woken(&mut self) -> Option<Request> {
        self.core.store_changed()
    }
}

/// Whether the last line of `out` is a continuation request (`+ ...`).
fn asks_to_go_on(out: &[u8]) -> bool {
    let Some(lines) = out.strip_suffix(b"\r\n") else {
        return false;
    };
    let last = lines
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(lines, |end| &lines[end + 1..]);
    last.starts_with(b"+")
}

impl ImapSession {
    /// Checks a login off the async workers; a wrong one waits the failed-login
    /// delay before its `NO`, to slow down guessing.
    async fn log_in(&mut self, login: Login, out: &mut Vec<u8>) {
        let Login { user, password } = login;
        let right = (self.shared.credentials)
            .verify_off_thread(user.clone(), password)
            .await;
        let peer = self.peer;
        if right {
            tracing::info!(%peer, user, "imap login");
        } else {
            tracing::warn!(%peer, user, "imap login failed");
            tokio::time::sleep(self.shared.config.failed_auth_delay).await;
        }
        self.core.answer(Answer::Login(right), out);
    }

    /// Runs a store request; a failure is logged here and answered by the core.
    async fn call_store(&self, call: StoreCall) -> Result<StoreReply, MailboxError> {
        let reply = self.shared.store.run(call).await;
        if let Err(err) = &reply {
            let (peer, user) = (self.peer, self.core.user().unwrap_or_default());
            match err {
                MailboxError::Refused(_) => {
                    tracing::debug!(%peer, user, %err, "imap store refused")
                }
                _ => tracing::error!(%peer, user, %err, "imap store call failed"),
            }
        }
        reply
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(config: ImapConfig) -> Arc<Shared> {
        Arc::new(Shared {
            session: Arc::new(session_config(&config, false)),
            settings: settings(&config),
            config,
            tls: None,
            credentials: Credentials::accept_any(),
            store: folders::StoreCalls::new(Arc::new(folders::tests::Recorder::default())),
            changes: watch::channel(0).1,
        })
    }

    /// Feeds `input` to a session as the driver does, answering store requests
    /// from the recording store; returns what the session wrote.
    fn feed(session: &mut ImapSession, input: &[u8]) -> String {
        let mut out = Vec::new();
        let mut input = input.to_vec();
        loop {
            let (consumed, step) = Protocol::advance(session, &input, &mut out);
            input.drain(..consumed);
            match step {
                driver::Step::Act(Request::Store(call)) => {
                    let store = &session.shared.store;
                    let reply = folders::execute(store.folders(), store.polls(), call);
                    session.core.answer(Answer::Store(reply), &mut out);
                }
                driver::Step::Act(Request::Login(_)) => {
                    session.core.answer(Answer::Login(true), &mut out);
                }
                driver::Step::NeedMore | driver::Step::Flush => break,
                driver::Step::StartTls | driver::Step::Close => unreachable!(),
            }
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn acks_come_at_once_while_a_literal_is_awaited_and_only_then() {
        let shared = shared(ImapConfig::default());
        let mut session = shared.open("127.0.0.1:1143".parse().unwrap(), false);
        feed(&mut session, b"a LOGIN morty secret\r\n");
        assert!(!session.quick_ack());
        let asked = feed(&mut session, b"b APPEND INBOX {5}\r\n");
        assert!(asked.starts_with("+ "), "{asked}");
        assert!(session.quick_ack(), "the literal is awaited");
        feed(&mut session, b"hello");
        assert!(session.quick_ack(), "its CRLF is awaited");
        let done = feed(&mut session, b"\r\n");
        assert!(done.starts_with("b OK"), "{done}");
        assert!(!session.quick_ack());
        feed(&mut session, b"c APPEND INBOX {5+}\r\nhel");
        assert!(
            !session.quick_ack(),
            "no continuation request, nothing awaited"
        );
        feed(&mut session, b"lo\r\nd SELECT INBOX\r\ne IDLE\r\n");
        assert!(session.core.idling());
        assert!(
            !session.quick_ack(),
            "IDLE waits for DONE, not for a literal"
        );
    }

    /// Tests over sockets only reach the server from loopback, which may always
    /// log in: this is the path a remote client takes.
    #[test]
    fn plain_text_logins_from_a_remote_peer_are_disabled_unless_allowed() {
        let cases = [
            (false, "192.0.2.7:1143", true),
            (true, "192.0.2.7:1143", false),
            (false, "127.0.0.1:1143", false),
            (false, "[::ffff:127.0.0.1]:1143", false),
        ];
        for (allow_insecure_auth, peer, disabled) in cases {
            let shared = shared(ImapConfig {
                allow_insecure_auth,
                ..ImapConfig::default()
            });
            let mut session = shared.open(peer.parse().unwrap(), false);
            let mut out = Vec::new();
            Protocol::greeting(&mut session, &mut out);
            let greeting = String::from_utf8(out).unwrap();
            assert_eq!(
                greeting.contains("LOGINDISABLED"),
                disabled,
                "{peer}, allowed {allow_insecure_auth}: {greeting}"
            );
        }
    }
}
