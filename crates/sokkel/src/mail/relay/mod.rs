//! Relaying caught messages to a real SMTP server: release (the web API's
//! `POST /api/v1/message/{ID}/release`, `sokkel mail release`) and auto-relay
//! (`--relay-all`, `--relay-matching`).
//!
//! ```text
//! release / auto-relay ──▶ Relay::relay_message: stored bytes, unchanged
//!        ──SmtpClient──▶ relay server (none | STARTTLS | implicit TLS, AUTH)
//!        ──▶ Store::record_relay (ok or failed, the reply or the error) + one log line
//! ```
//!
//! The bytes go out exactly as they were caught: no header is added, removed or
//! rewritten (Mailpit rewrites Date and Message-ID on release; sokkel does not).
//! The envelope sender is the caught one, or `override-from`.

pub mod auto;
mod cli;
pub mod config;

use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context;
use sokkel_net::stats::{RelayCounters, RelayOutcome};
use sokkel_smtp::client::session::{
    AuthMechanism, ClientConfig, Credentials, Envelope, Silent, SmtpClient, TlsMode,
};
use sokkel_store::{MessageId, RelayAttempt, Store, StoredMessage};
use sokkel_web::release::{RecipientError, RelaySettings, Release, ReleaseError, ReleaseFuture};

pub use cli::{ServeRelay, release, write_attempts};
pub use config::RelayConfig;
use config::{RelayTls, address_of};

/// Relays messages of one store through one configured server. A cheap
/// `Clone` handle.
#[derive(Debug, Clone)]
pub struct Relay {
    inner: Arc<Inner>,
}

/// How many releases (API or CLI) may run at once: each holds the message's
/// bytes, a few copies of them on their way out, and a connection to the relay.
/// More are refused as busy. Auto-relay is one more, one message at a time.
pub const MAX_RELEASES: usize = 4;

#[derive(Debug)]
struct Inner {
    config: RelayConfig,
    store: Store,
    /// The name given in EHLO.
    ehlo_name: String,
    releases: Arc<tokio::sync::Semaphore>,
    /// Attempts by outcome, for `/metrics`.
    counters: Arc<RelayCounters>,
}

impl Relay {
    pub fn new(config: RelayConfig, store: Store, ehlo_name: String) -> Relay {
        Relay {
            inner: Arc::new(Inner {
                config,
                store,
                ehlo_name,
                releases: Arc::new(tokio::sync::Semaphore::new(MAX_RELEASES)),
                counters: Arc::default(),
            }),
        }
    }

    pub fn config(&self) -> &RelayConfig {
        &self.inner.config
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Relay attempts by outcome so far.
    pub fn counters(&self) -> &Arc<RelayCounters> {
        &self.inner.counters
    }

    /// "host:port (STARTTLS)", for the start-up line and the log.
    pub fn describe(&self) -> String {
        let config = self.config();
        format!("{} ({})", config.server, config.tls)
    }

    /// Splits `recipients` into those the policy allows and those it does not.
    pub fn split_allowed(&self, recipients: &[String]) -> (Vec<String>, Vec<String>) {
        recipients
            .iter()
            .cloned()
            .partition(|address| self.config().allows(address))
    }

    /// Relays message `id` to `to` (addresses the policy allows) and records
    /// the attempt; `None` if there is no such message.
    pub async fn relay(
        &self,
        id: MessageId,
        to: Vec<String>,
    ) -> anyhow::Result<Option<RelayAttempt>> {
        let store = self.store().clone();
        let message = tokio::task::spawn_blocking(move || store.get(id))
            .await
            .context("the store task failed")??;
        match message {
            None => Ok(None),
            Some(message) => self.relay_message(message, to, Vec::new()).await.map(Some),
        }
    }

    /// Sends `message` to `to`, records the attempt (with `skipped`, the
    /// recipients the policy left out) and logs one line. A relay that is
    /// down or refuses is a failed attempt, not an error: only the store
    /// failing to record it is.
    pub async fn relay_message(
        &self,
        message: StoredMessage,
        to: Vec<String>,
        skipped: Vec<String>,
    ) -> anyhow::Result<RelayAttempt> {
        let id = message.summary.id;
        let from = self
            .config()
            .override_from
            .clone()
            .unwrap_or_else(|| message.envelope.mail_from.clone());
        let (ok, reply) = match self.send(&from, &to, &message.raw).await {
            Ok(reply) => (true, reply),
            Err(error) => (false, error),
        };
        let attempt = RelayAttempt {
            at: SystemTime::now(),
            recipients: to,
            skipped,
            ok,
            reply,
        };
        self.record(id, &attempt).await?;
        Ok(attempt)
    }

    /// Records `attempt` of message `id` and logs it.
    pub async fn record(&self, id: MessageId, attempt: &RelayAttempt) -> anyhow::Result<()> {
        let store = self.store().clone();
        let stored = attempt.clone();
        tokio::task::spawn_blocking(move || store.record_relay(id, &stored))
            .await
            .context("the store task failed")?
            .context("cannot record the relay attempt")?;
        self.inner.counters.add(if attempt.ok {
            RelayOutcome::Sent
        } else if attempt.recipients.is_empty() {
            RelayOutcome::Blocked
        } else {
            RelayOutcome::Failed
        });
        let to = attempt.recipients.join(", ");
        let skipped = if attempt.skipped.is_empty() {
            String::new()
        } else {
            format!(" (not allowed: {})", attempt.skipped.join(", "))
        };
        if attempt.ok {
            tracing::info!(
                "relayed message {id} to {to} via {}{skipped}: {}",
                self.describe(),
                attempt.reply
            );
        } else {
            tracing::warn!(
                "relaying message {id} to {to} via {} failed{skipped}: {}",
                self.describe(),
                attempt.reply
            );
        }
        Ok(())
    }

    /// One SMTP conversation: the server's reply after the content, with the
    /// recipients it refused, or what went wrong.
    async fn send(&self, from: &str, to: &[String], raw: &[u8]) -> Result<String, String> {
        let client_config = self.client_config().await?;
        let mut client = SmtpClient::connect(client_config, Silent)
            .await
            .map_err(|error| error.to_string())?;
        let envelope = Envelope {
            from: from.to_owned(),
            to: to.to_vec(),
        };
        let sent = client.send(&envelope, raw).await;
        client.quit().await;
        let report = sent.map_err(|error| error.to_string())?;
        let mut reply = report.reply.to_string();
        for (address, refused) in &report.refused {
            reply.push_str(&format!("; {address} refused: {refused}"));
        }
        Ok(reply)
    }

    async fn client_config(&self) -> Result<ClientConfig, String> {
        let config = self.config();
        // Resolved on every attempt: a relay's address may change while
        // sokkel runs, and one down at start may come up later.
        let addrs = config
            .server
            .resolve(&[])
            .await
            .map_err(|error| error.to_string())?;
        Ok(ClientConfig {
            server: config.server.to_string(),
            addrs,
            tls_name: config.server.host.clone(),
            tls: match config.tls {
                RelayTls::None => TlsMode::None,
                RelayTls::Starttls => TlsMode::StartTls,
                RelayTls::Implicit => TlsMode::Implicit,
            },
            tls_config: config.tls_config.clone(),
            ehlo_name: self.inner.ehlo_name.clone(),
            timeout: config.timeout,
            credentials: config.login.as_ref().map(|login| Credentials {
                user: login.username.clone(),
                password: login.password.clone(),
                mechanism: AuthMechanism::Auto,
            }),
        })
    }
}

impl Release for Relay {
    fn settings(&self) -> RelaySettings {
        let config = self.config();
        let (allowed, blocked) = config.patterns();
        RelaySettings {
            server: self.describe(),
            allowed: allowed.map(str::to_owned),
            blocked: blocked.map(str::to_owned),
            override_from: config.override_from.clone(),
        }
    }

    fn recipients(&self, to: &[String]) -> Result<Vec<String>, RecipientError> {
        let addresses = to
            .iter()
            .map(|entry| address_of(entry).ok_or_else(|| RecipientError::Invalid(entry.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        let (allowed, refused) = self.split_allowed(&addresses);
        if refused.is_empty() {
            Ok(allowed)
        } else {
            Err(RecipientError::NotAllowed(refused))
        }
    }

    fn release(&self, id: MessageId, to: Vec<String>) -> ReleaseFuture {
        let relay = self.clone();
        Box::pin(async move {
            let Ok(permit) = Arc::clone(&relay.inner.releases).try_acquire_owned() else {
                return Err(ReleaseError::Busy(MAX_RELEASES));
            };
            // A task of its own: a client that gives up on its request must not
            // cut the conversation short, or a message the relay took would
            // have no record.
            let attempt = tokio::spawn(async move {
                let attempt = relay.relay(id, to).await;
                drop(permit);
                attempt
            });
            let attempt = attempt.await.map_err(|error| {
                ReleaseError::Relay(format!("the release task failed: {error}"))
            })?;
            match attempt {
                Ok(None) => Err(ReleaseError::NotFound(id)),
                Ok(Some(attempt)) if attempt.ok => Ok(()),
                Ok(Some(attempt)) => Err(ReleaseError::Relay(attempt.reply)),
                Err(error) => Err(match error.downcast::<sokkel_store::StoreError>() {
                    Ok(store) => ReleaseError::Store(store),
                    Err(other) => ReleaseError::Relay(format!("{other:#}")),
                }),
            }
        })
    }
}
