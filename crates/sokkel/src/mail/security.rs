//! `mail serve`'s TLS certificate and logins, from its flags, checked before any
//! listener opens so a missing file or a key that does not match is one line at start.

use std::net::SocketAddr;

use anyhow::bail;
use sokkel_net::auth::Credentials;
use sokkel_net::tls::ServerTls;

use crate::cli::SecurityArgs;
use crate::hints::announce;

/// What the SMTP and POP3 shells need to offer TLS and AUTH.
#[derive(Debug, Clone)]
pub struct Security {
    /// The certificate, if TLS is configured.
    pub tls: Option<ServerTls>,
    /// Who may log in, if anyone may.
    pub credentials: Option<Credentials>,
}

impl Security {
    /// Loads or makes the certificate and reads the auth file. `hostname` and the
    /// listen addresses name a self-signed certificate.
    pub fn from_args(
        args: &SecurityArgs,
        hostname: &str,
        addrs: &[SocketAddr],
    ) -> anyhow::Result<Security> {
        let tls = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(ServerTls::from_pem_files(cert, key)?),
            _ if args.tls_self_signed => {
                let mut names = vec![hostname.to_string(), "localhost".to_string()];
                for ip in addrs.iter().map(SocketAddr::ip) {
                    if !ip.is_unspecified() && !names.contains(&ip.to_string()) {
                        names.push(ip.to_string());
                    }
                }
                Some(ServerTls::self_signed(&names)?)
            }
            _ => None,
        };
        if tls.is_none() {
            if !args.smtps.is_empty() {
                bail!(
                    "--smtps needs a certificate: add --tls-cert FILE --tls-key FILE, or --tls-self-signed"
                );
            }
            if args.require_tls {
                bail!(
                    "--require-tls needs a certificate: add --tls-cert FILE --tls-key FILE, or --tls-self-signed"
                );
            }
        }
        let credentials = match &args.auth_file {
            Some(path) => Some(Credentials::from_file(path)?),
            None if args.auth_accept_any => Some(Credentials::accept_any()),
            None => None,
        };
        Ok(Security { tls, credentials })
    }

    /// Tells the user what a client needs to know: the certificate's fingerprint,
    /// and whether logging in is possible at all.
    pub fn announce(&self, args: &SecurityArgs) {
        if let Some(tls) = &self.tls {
            let kind = if args.tls_self_signed {
                "self-signed certificate"
            } else {
                "certificate"
            };
            announce(format_args!(
                "TLS {kind}, SHA-256 fingerprint {}",
                tls.fingerprint()
            ));
        }
        if self.credentials.is_some() && self.tls.is_none() && !args.allow_insecure_auth {
            tracing::warn!(
                "AUTH is offered only over TLS and no certificate is configured, so no client can log in; add --tls-self-signed, or --allow-insecure-auth"
            );
        }
    }
}
