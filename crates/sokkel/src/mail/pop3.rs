//! `mail serve`'s POP3 listeners: flags in, a running `sokkel_pop3::serve` out.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use anyhow::{Context, bail};
use sokkel_net::auth::Credentials;
use sokkel_net::server::address_share;
use sokkel_pop3::{Pop3Config, Pop3Summary};
use sokkel_store::Store;

use crate::cli::{MailServeArgs, Pop3Args};
use crate::hints::announce;
use crate::listen::{bind_all, listen_addresses};
use crate::mail::security::Security;

/// The POP3 and POP3S listeners, bound before the store opens so a port in use is
/// reported first.
#[derive(Debug, Default)]
pub struct Pop3Listeners {
    plain: Vec<TcpListener>,
    implicit_tls: Vec<TcpListener>,
}

impl Pop3Listeners {
    /// The addresses the flags name: none with `--no-pop3`.
    pub async fn addresses(args: &Pop3Args) -> anyhow::Result<(Vec<SocketAddr>, Vec<SocketAddr>)> {
        if args.no_pop3 {
            return Ok((Vec::new(), Vec::new()));
        }
        let plain = listen_addresses(&args.pop3, "--pop3", "127.0.0.1:1110").await?;
        let implicit = if args.pop3s.is_empty() {
            Vec::new()
        } else {
            listen_addresses(&args.pop3s, "--pop3s", "127.0.0.1:1995").await?
        };
        Ok((plain, implicit))
    }

    /// Binds `addrs` (from [`Pop3Listeners::addresses`]); POP3S needs a certificate.
    pub fn bind(
        (plain, implicit): (Vec<SocketAddr>, Vec<SocketAddr>),
        security: &Security,
    ) -> anyhow::Result<Pop3Listeners> {
        if !implicit.is_empty() && security.tls.is_none() {
            bail!(
                "--pop3s needs a certificate: add --tls-cert FILE --tls-key FILE, or --tls-self-signed"
            );
        }
        Ok(Pop3Listeners {
            plain: bind_all(plain, "--pop3", 1110)?,
            implicit_tls: bind_all(implicit, "--pop3s", 1995)?,
        })
    }

    /// Prints `listening on pop3 ADDR` (and pop3s) like the SMTP lines.
    pub fn announce(&self) -> anyhow::Result<()> {
        for listener in &self.plain {
            announce(format_args!("listening on pop3 {}", listener.local_addr()?));
        }
        for listener in &self.implicit_tls {
            announce(format_args!(
                "listening on pop3s {}",
                listener.local_addr()?
            ));
        }
        Ok(())
    }

    /// Serves POP3 until `stop` completes; at once returns if there is no listener.
    pub async fn serve(
        self,
        args: &MailServeArgs,
        hostname: String,
        security: &Security,
        store: Store,
        stop: impl Future<Output = ()>,
    ) -> anyhow::Result<Option<Pop3Summary>> {
        if self.plain.is_empty() && self.implicit_tls.is_empty() {
            return Ok(None);
        }
        let credentials = match &security.credentials {
            Some(credentials) => credentials.clone(),
            None => {
                // A catcher on loopback holds test mail: any login may read it, as
                // any client may send to it. Elsewhere, say what that means.
                if let Some(addr) = self.exposed()? {
                    tracing::warn!(
                        "POP3 on {addr} accepts any login, so anyone who can reach it can read and delete the caught mail; add --auth-file FILE"
                    );
                }
                Credentials::accept_any()
            }
        };
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
            per_recipient: args.pop3.pop3_per_recipient,
            allow_insecure_auth: args.security.allow_insecure_auth,
            shutdown_grace: args.shutdown_timeout,
            ..Pop3Config::default()
        };
        let summary = sokkel_pop3::serve(
            config,
            self.plain,
            self.implicit_tls,
            security.tls.clone(),
            credentials,
            Arc::new(store),
            stop,
        )
        .await
        .context("the POP3 server failed")?;
        Ok(Some(summary))
    }

    /// The first listener that is not on loopback, if any.
    fn exposed(&self) -> anyhow::Result<Option<SocketAddr>> {
        for listener in self.plain.iter().chain(&self.implicit_tls) {
            let addr = listener.local_addr()?;
            if !addr.ip().is_loopback() {
                return Ok(Some(addr));
            }
        }
        Ok(None)
    }
}
