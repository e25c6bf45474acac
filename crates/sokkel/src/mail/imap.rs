//! `mail serve`'s IMAP listeners: flags in, a running `sokkel_imap::serve` out,
//! fed with the store's changes.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use sokkel_imap::{ImapConfig, ImapSummary};
use sokkel_net::server::address_share;
use sokkel_net::stats::OpenSessions;
use sokkel_store::Store;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;

use crate::cli::{ImapArgs, MailServeArgs};
use crate::listen::{Binding, Bound};
use crate::mail::listeners::{Addresses, Protocol, ProtocolListeners, Slots};
use crate::mail::security::Security;

/// IMAP's names and ports.
pub const IMAP: Protocol = Protocol {
    plain: "imap",
    tls: "imaps",
    port: 1143,
    tls_port: 1993,
};

/// The IMAP and IMAPS listeners, bound before the store opens so a port in use
/// is reported first.
#[derive(Debug)]
pub struct ImapListeners(ProtocolListeners);

impl ImapListeners {
    /// The addresses the flags name: none with `--no-imap`.
    pub async fn addresses(args: &ImapArgs) -> anyhow::Result<Addresses> {
        IMAP.addresses(&args.imap, &args.imaps, args.no_imap).await
    }

    /// Adds `addrs` (from [`ImapListeners::addresses`]) to `binding`; the TLS ones
    /// need a certificate.
    pub fn add(
        binding: &mut Binding,
        addrs: Addresses,
        security: &Security,
    ) -> anyhow::Result<Slots> {
        IMAP.add(binding, addrs, security)
    }

    /// The listeners `slots` got.
    pub fn take(bound: &mut Bound, slots: Slots) -> ImapListeners {
        ImapListeners(ProtocolListeners::take(bound, slots))
    }

    /// Prints `listening on imap ADDR` (and imaps) like the SMTP lines.
    pub fn announce(&self) -> anyhow::Result<()> {
        self.0.announce()
    }

    /// Serves IMAP until `stop` completes; at once returns if there is no listener.
    pub async fn serve(
        self,
        args: &MailServeArgs,
        hostname: String,
        security: &Security,
        store: Store,
        sessions: Arc<OpenSessions>,
        stop: impl Future<Output = ()>,
    ) -> anyhow::Result<Option<ImapSummary>> {
        if self.0.is_empty() {
            return Ok(None);
        }
        let credentials =
            self.0
                .credentials(security, "IMAP", "read, change and delete the caught mail")?;
        let config = ImapConfig {
            hostname,
            max_sessions: args.imap.imap_max_sessions,
            max_sessions_per_address: address_share(
                args.imap.imap_max_sessions,
                args.per_address_share,
            ),
            idle_timeout: args.imap.imap_timeout,
            failed_auth_delay: args.security.auth_failure_delay,
            max_auth_failures: args.security.max_auth_failures,
            max_errors: args.max_errors,
            per_recipient: args.pop3.per_recipient(),
            allow_insecure_auth: args.security.allow_insecure_auth,
            shutdown_grace: args.shutdown_timeout,
            proxy_protocol: args.proxy_protocol,
            sessions,
            ..ImapConfig::default()
        };
        let changes = follow_changes(store.clone()).await?;
        let summary = sokkel_imap::serve(
            config,
            self.0.plain,
            self.0.implicit_tls,
            security.tls.clone(),
            credentials,
            Arc::new(store),
            changes,
            stop,
        )
        .await
        .context("the IMAP server failed")?;
        Ok(Some(summary))
    }
}

/// A channel that holds the store's change counter (IMAP's HIGHESTMODSEQ) and
/// is updated whenever the store announces a change: this process's own
/// changes, and other processes' (`sokkel mail delete` in a terminal) as
/// `StoreEvent::Changed`. A task keeps it up to date until every receiver is
/// gone.
async fn follow_changes(store: Store) -> anyhow::Result<watch::Receiver<u64>> {
    // Subscribed before the first read, so no change falls in between.
    let mut events = store.subscribe();
    let first = read_counter(&store)
        .await
        .context("cannot read the mail store's change counter")?;
    let (sender, receiver) = watch::channel(first);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return,
                },
                () = sender.closed() => return,
            }
            // A burst of deliveries is one read of the counter.
            while events.try_recv().is_ok() {}
            match read_counter(&store).await {
                Ok(counter) => {
                    sender.send_if_modified(|seen| {
                        let newer = counter > *seen;
                        *seen = (*seen).max(counter);
                        newer
                    });
                }
                Err(error) => tracing::warn!(%error, "cannot read the mail store's change counter"),
            }
        }
    });
    Ok(receiver)
}

async fn read_counter(store: &Store) -> anyhow::Result<u64> {
    let store = store.clone();
    Ok(tokio::task::spawn_blocking(move || store.highest_modseq()).await??)
}
