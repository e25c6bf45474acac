//! The IMAP server shell (being written): sockets, TLS, timeouts, limits and the
//! store's folders around the core.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sokkel_message::Folders;
use sokkel_net::auth::Credentials;
use sokkel_net::tls::ServerTls;
use tokio::sync::watch;

use crate::ImapError;

/// How the IMAP server behaves.
#[derive(Debug, Clone)]
pub struct ImapConfig {
    /// The name the server gives in its greeting.
    pub hostname: String,
    /// Sessions at once; more are told `* BYE` and closed.
    pub max_sessions: u32,
    /// Sessions one client address may hold at once.
    pub max_sessions_per_address: u32,
    /// How long a session may be silent outside IDLE; RFC 3501 section 5.4 asks
    /// for at least 30 minutes.
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

/// Serves IMAP on already-bound, non-blocking listeners until `shutdown`
/// completes: `plain` listeners speak clear text (with STARTTLS when `tls` is
/// given), `implicit_tls` listeners start with the TLS handshake (IMAPS). Logins
/// are checked against `credentials`; mail is read and changed through
/// `folders`; `changes` carries the store's change counter
/// ([`Folders::highest_modseq`]) whenever anything changes, so that selected
/// and idling sessions learn of it.
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
    let _ = (config, plain, tls, credentials, folders, changes);
    if !implicit_tls.is_empty() {
        return Err(ImapError::NoCertificate);
    }
    shutdown.await;
    Ok(ImapSummary {
        sessions: 0,
        cut_off: 0,
    })
}
