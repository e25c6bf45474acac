//! `mail serve`'s web login and HTTPS (`--ui-auth-file`, `--ui-tls-cert`,
//! `--ui-tls-key`, `--ui-tls-self-signed`): read before any listener opens, so a
//! missing file is one line at start; announced with the other startup lines;
//! and the warnings for a web listener beyond loopback that anyone may use, or
//! whose passwords cross the network in clear text.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;

use sokkel_net::auth::Credentials;
use sokkel_net::tls::ServerTls;

use crate::cli::WebLoginArgs;
use crate::hints::announce;
use crate::mail::security::Security;

/// What the web listener needs for its login and HTTPS.
#[derive(Debug)]
pub struct WebLogin {
    /// Who may use the page, the API and the WebSocket; `None` lets anyone in.
    pub credentials: Option<Credentials>,
    /// The certificate to speak HTTPS with; `None` speaks plain HTTP.
    pub tls: Option<ServerTls>,
    /// The file the users came from, for the startup line.
    auth_file: Option<PathBuf>,
    self_signed: bool,
}

impl WebLogin {
    /// Reads the users and loads or makes the certificate. A self-signed
    /// certificate is the mail listeners' one when `--tls-self-signed` made one
    /// (one fingerprint to trust), else one for `hostname`, localhost and the
    /// web addresses.
    pub fn from_args(
        args: &WebLoginArgs,
        security: &Security,
        mail_self_signed: bool,
        hostname: &str,
        http_addrs: &[SocketAddr],
    ) -> anyhow::Result<WebLogin> {
        let credentials = match &args.ui_auth_file {
            Some(path) => Some(Credentials::from_file(path)?),
            None => None,
        };
        let tls = match (&args.ui_tls_cert, &args.ui_tls_key) {
            (Some(cert), Some(key)) => Some(ServerTls::from_pem_files(cert, key)?),
            _ if args.ui_tls_self_signed => match &security.tls {
                Some(tls) if mail_self_signed => Some(tls.clone()),
                _ => {
                    let mut names = vec![hostname.to_string(), "localhost".to_string()];
                    for ip in http_addrs.iter().map(SocketAddr::ip) {
                        if !ip.is_unspecified() && !names.contains(&ip.to_string()) {
                            names.push(ip.to_string());
                        }
                    }
                    Some(ServerTls::self_signed(&names)?)
                }
            },
            _ => None,
        };
        Ok(WebLogin {
            credentials,
            tls,
            auth_file: args.ui_auth_file.clone(),
            self_signed: args.ui_tls_self_signed,
        })
    }

    /// `https` or `http`, for the URLs the startup lines show.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// The certificate's fingerprint and who may log in, as startup lines.
    pub fn announce(&self) {
        if let Some(tls) = &self.tls {
            let kind = if self.self_signed {
                "self-signed certificate"
            } else {
                "certificate"
            };
            announce(format_args!(
                "HTTPS {kind}, SHA-256 fingerprint {}",
                tls.fingerprint()
            ));
        }
        if let Some(file) = &self.auth_file {
            announce(format_args!(
                "the web page and API ask for a login (users of {})",
                file.display()
            ));
        }
    }

    /// Warns about each web listener beyond loopback that anyone may use, or
    /// whose login crosses the network in clear text.
    pub fn warn_if_exposed(&self, listeners: &[TcpListener]) {
        for listener in listeners {
            let Ok(addr) = listener.local_addr() else {
                continue;
            };
            if addr.ip().is_loopback() {
                continue;
            }
            if self.credentials.is_none() {
                tracing::warn!(
                    "the web page on {addr} listens beyond loopback with no login, so anyone who can reach this machine can read and delete the mail it caught; add --ui-auth-file FILE, or give --http 127.0.0.1:PORT to keep it local"
                );
            } else if self.tls.is_none() {
                tracing::warn!(
                    "the web login on {addr} crosses the network in clear text, so anyone on the way can read its passwords; add --ui-tls-cert FILE --ui-tls-key FILE, or --ui-tls-self-signed"
                );
            }
        }
    }
}
