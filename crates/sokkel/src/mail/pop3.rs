//! `mail serve`'s POP3 listeners: flags in, a running `sokkel_pop3::serve` out.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use sokkel_net::server::address_share;
use sokkel_net::stats::OpenSessions;
use sokkel_pop3::{Pop3Config, Pop3Summary};
use sokkel_store::Store;

use crate::cli::{MailServeArgs, Pop3Args};
use crate::listen::{Binding, Bound};
use crate::mail::listeners::{Addresses, Protocol, ProtocolListeners, Slots};
use crate::mail::security::Security;

/// The POP3 and POP3S listeners, bound before the store opens so a port in use is
/// reported first.
#[derive(Debug)]
pub struct Pop3Listeners(pub ProtocolListeners);

/// POP3's names and ports.
pub const POP3: Protocol = Protocol {
    plain: "pop3",
    tls: "pop3s",
    port: 1110,
    tls_port: 1995,
};

impl Pop3Listeners {
    /// The addresses the flags name: none with `--no-pop3`.
    pub async fn addresses(args: &Pop3Args) -> anyhow::Result<Addresses> {
        POP3.addresses(&args.pop3, &args.pop3s, args.no_pop3).await
    }

    /// Adds `addrs` (from [`Pop3Listeners::addresses`]) to `binding`; the TLS ones
    /// need a certificate.
    pub fn add(
        binding: &mut Binding,
        addrs: Addresses,
        security: &Security,
    ) -> anyhow::Result<Slots> {
        POP3.add(binding, addrs, security)
    }

    /// The listeners `slots` got.
    pub fn take(bound: &mut Bound, slots: Slots) -> Pop3Listeners {
        Pop3Listeners(ProtocolListeners::take(bound, slots))
    }

    /// Prints `listening on pop3 ADDR` (and pop3s) like the SMTP lines.
    pub fn announce(&self) -> anyhow::Result<()> {
        self.0.announce()
    }

    /// Serves POP3 until `stop` completes; at once returns if there is no listener.
    pub async fn serve(
        self,
        args: &MailServeArgs,
        hostname: String,
        security: &Security,
        store: Store,
        sessions: Arc<OpenSessions>,
        stop: impl Future<Output = ()>,
    ) -> anyhow::Result<Option<Pop3Summary>> {
        if self.0.is_empty() {
            return Ok(None);
        }
        let credentials =
            self.0
                .credentials(security, "POP3", "read and delete the caught mail")?;
        let config = Pop3Config {
            hostname,
            max_sessions: args.pop3.pop3_max_sessions,
            max_sessions_per_address: address_share(
                args.pop3.pop3_max_sessions,
                args.per_address_share,
            ),
            command_timeout: args.pop3.pop3_timeout,
            failed_auth_delay: args.security.auth_failure_delay,
            max_auth_failures: args.security.max_auth_failures,
            max_errors: args.max_errors,
            per_recipient: args.pop3.per_recipient(),
            allow_insecure_auth: args.security.allow_insecure_auth,
            shutdown_grace: args.shutdown_timeout,
            proxy_protocol: args.proxy_protocol,
            sessions,
            ..Pop3Config::default()
        };
        let summary = sokkel_pop3::serve(
            config,
            self.0.plain,
            self.0.implicit_tls,
            security.tls.clone(),
            credentials,
            Arc::new(store),
            stop,
        )
        .await
        .context("the POP3 server failed")?;
        Ok(Some(summary))
    }
}
