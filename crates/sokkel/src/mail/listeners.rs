//! The listeners of a mail reading protocol (POP3, IMAP): a plain and an
//! implicit-TLS set, bound with every other listener before the store opens so
//! every port in use is reported first, and announced with the other startup lines.

use std::net::{SocketAddr, TcpListener};

use anyhow::bail;
use sokkel_net::auth::Credentials;

use crate::hints::announce;
use crate::listen::{Binding, Bound, ListenAddr, Slot, listen_addresses};
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
        plain: &[ListenAddr],
        tls: &[ListenAddr],
        off: bool,
    ) -> anyhow::Result<Addresses> {
        if off {
            return Ok(Addresses::default());
        }
        Ok(Addresses {
            plain: listen_addresses(plain).await?,
            tls: listen_addresses(tls).await?,
        })
    }

    /// Adds the addresses to `binding`, to be bound with every other
    /// listener; implicit TLS needs a certificate.
    pub fn add(
        self,
        binding: &mut Binding,
        addrs: Addresses,
        security: &Security,
    ) -> anyhow::Result<Slots> {
        if !addrs.tls.is_empty() && security.tls.is_none() {
            bail!(
                "--{} needs a certificate: add --tls-cert FILE --tls-key FILE, or --tls-self-signed",
                self.tls
            );
        }
        Ok(Slots {
            protocol: self,
            plain: binding.add(&format!("--{}", self.plain), self.port, addrs.plain),
            tls: binding.add(&format!("--{}", self.tls), self.tls_port, addrs.tls),
        })
    }
}

/// Where a protocol's listeners are in a [`Binding`].
#[derive(Debug, Clone, Copy)]
pub struct Slots {
    protocol: Protocol,
    plain: Slot,
    tls: Slot,
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
    /// The listeners `slots` got when everything was bound.
    pub fn take(bound: &mut Bound, slots: Slots) -> ProtocolListeners {
        ProtocolListeners {
            protocol: slots.protocol,
            plain: bound.take(slots.plain),
            implicit_tls: bound.take(slots.tls),
        }
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
