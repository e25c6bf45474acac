//! The listeners of a mail reading protocol (POP3, IMAP): a plain and an
//! implicit-TLS set, bound before the store opens so a port in use is reported
//! first, and announced with the other startup lines.

use std::net::{SocketAddr, TcpListener};

use anyhow::bail;
use sokkel_net::auth::Credentials;

use crate::hints::announce;
use crate::listen::{bind_all, listen_addresses};
use crate::mail::security::Security;

/// How a protocol's flags and startup lines name it.
#[derive(Debug, Clone, Copy)]
pub struct Protocol {
    /// The scheme of its startup line and the flag: `pop3`, `imap`.
    pub plain: &'static str,
    /// The same for implicit TLS: `pop3s`, `imaps`.
    pub tls: &'static str,
    /// The default port, given in the flag's examples.
    pub port: u16,
    /// The same for implicit TLS.
    pub tls_port: u16,
}

impl Protocol {
    /// The addresses `plain` and `tls` (the flags' values) name; none when
    /// the protocol is `off`.
    pub async fn addresses(
        &self,
        plain: &[String],
        tls: &[String],
        off: bool,
    ) -> anyhow::Result<Addresses> {
        if off {
            return Ok(Addresses::default());
        }
        let flag = format!("--{}", self.plain);
        let plain = listen_addresses(plain, &flag, &format!("127.0.0.1:{}", self.port)).await?;
        let tls = if tls.is_empty() {
            Vec::new()
        } else {
            let flag = format!("--{}", self.tls);
            listen_addresses(tls, &flag, &format!("127.0.0.1:{}", self.tls_port)).await?
        };
        Ok(Addresses { plain, tls })
    }
}

/// The addresses a protocol listens on, resolved but not bound yet.
#[derive(Debug, Default)]
pub struct Addresses {
    pub plain: Vec<SocketAddr>,
    pub tls: Vec<SocketAddr>,
}

/// A protocol's bound listeners.
#[derive(Debug)]
pub struct ProtocolListeners {
    protocol: Protocol,
    pub plain: Vec<TcpListener>,
    pub implicit_tls: Vec<TcpListener>,
}

impl ProtocolListeners {
    /// Binds `addrs`; implicit TLS needs a certificate.
    pub fn bind(
        protocol: Protocol,
        addrs: Addresses,
        security: &Security,
    ) -> anyhow::Result<ProtocolListeners> {
        if !addrs.tls.is_empty() && security.tls.is_none() {
            bail!(
                "--{} needs a certificate: add --tls-cert FILE --tls-key FILE, or --tls-self-signed",
                protocol.tls
            );
        }
        Ok(ProtocolListeners {
            protocol,
            plain: bind_all(addrs.plain, &format!("--{}", protocol.plain), protocol.port)?,
            implicit_tls: bind_all(addrs.tls, &format!("--{}", protocol.tls), protocol.tls_port)?,
        })
    }

    /// Whether the protocol is off (nothing to serve).
    pub fn is_empty(&self) -> bool {
        self.plain.is_empty() && self.implicit_tls.is_empty()
    }

    /// Prints `listening on pop3 ADDR` (and pop3s) like the SMTP lines.
    pub fn announce(&self) -> anyhow::Result<()> {
        for listener in &self.plain {
            let addr = listener.local_addr()?;
            announce(format_args!("listening on {} {addr}", self.protocol.plain));
        }
        for listener in &self.implicit_tls {
            let addr = listener.local_addr()?;
            announce(format_args!("listening on {} {addr}", self.protocol.tls));
        }
        Ok(())
    }

    /// Who may log in: the users of `--auth-file`, or else anyone. A catcher
    /// on loopback holds test mail: any login may `reach` it (read it, ...),
    /// as any client may send to it. Elsewhere, a warning says what that means.
    pub fn credentials(
        &self,
        security: &Security,
        name: &str,
        reach: &str,
    ) -> anyhow::Result<Credentials> {
        if let Some(credentials) = &security.credentials {
            return Ok(credentials.clone());
        }
        if let Some(addr) = self.exposed()? {
            tracing::warn!(
                "{name} on {addr} accepts any login, so anyone who can reach it can {reach}; add --auth-file FILE"
            );
        }
        Ok(Credentials::accept_any())
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
