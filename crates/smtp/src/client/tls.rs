//! TLS settings for the client: which certificates to trust.

use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

/// Why TLS could not be set up before connecting.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// The CA file could not be read or holds no certificate.
    #[error("cannot use {path} as CA file: {reason}")]
    CaFile {
        /// The file given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No trusted root at all: the system store is empty and no CA file was given.
    #[error("no trusted certificates found on this system")]
    NoRoots,
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client configuration that trusts the certificates in `ca_file` (instead of the
/// system's roots), or the system's roots when no file is given, or, with `insecure`,
/// any certificate at all (for local catchers with self-signed ones).
///
/// A certificate listed in `ca_file` is also trusted when the server presents it
/// itself: that is how a self-signed certificate is pinned, and `openssl req -x509`
/// marks those as CAs, which plain WebPKI validation refuses as a server certificate.
pub fn client_config(
    ca_file: Option<&Path>,
    insecure: bool,
) -> Result<Arc<rustls::ClientConfig>, TlsSetupError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?;
    if insecure {
        let verifier = Arc::new(ServerVerifier {
            pinned: Vec::new(),
            webpki: None,
            provider: provider(),
        });
        let config = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        return Ok(Arc::new(config));
    }
    let mut roots = rustls::RootCertStore::empty();
    let mut pinned = Vec::new();
    if let Some(path) = ca_file {
        let ca_error = |reason: String| TlsSetupError::CaFile {
            path: path.display().to_string(),
            reason,
        };
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| ca_error(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ca_error(e.to_string()))?;
        if certs.is_empty() {
            return Err(ca_error("it holds no PEM certificate".into()));
        }
        for cert in certs {
            roots
                .add(cert.clone())
                .map_err(|e| ca_error(e.to_string()))?;
            pinned.push(cert);
        }
    } else {
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            let _ = roots.add(cert);
        }
        if roots.is_empty() {
            return Err(TlsSetupError::NoRoots);
        }
    }
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| TlsSetupError::Config(rustls::Error::General(e.to_string())))?;
    let verifier = Arc::new(ServerVerifier {
        pinned,
        webpki: Some(webpki),
        provider: provider(),
    });
    Ok(Arc::new(
        builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth(),
    ))
}

/// Why a TLS handshake failed, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeFailure {
    /// No TLS settings were given for a connection that needs them.
    #[error("no TLS settings were given")]
    NoSettings,
    /// The name to check the certificate against is not a DNS name or address.
    #[error("{0:?} is not a valid TLS server name")]
    InvalidName(String),
    /// The certificate chain does not end at a trusted root.
    #[error("the server's certificate is not signed by a CA we trust")]
    UnknownIssuer,
    /// The certificate is for another name.
    #[error(
        "the server's certificate is not valid for this server name \
         (connect by the name it was issued for)"
    )]
    WrongName,
    /// The certificate has expired.
    #[error("the server's certificate has expired")]
    Expired,
    /// The certificate is not valid yet.
    #[error("the server's certificate is not valid yet (check the clock)")]
    NotValidYet,
    /// The certificate's signature is wrong.
    #[error("the server's certificate has a bad signature")]
    BadSignature,
    /// The certificate has been revoked.
    #[error("the server's certificate has been revoked")]
    Revoked,
    /// The certificate was refused for another reason.
    #[error("the server's certificate was refused ({0})")]
    CertificateRefused(String),
    /// The server sent a TLS alert.
    #[error("the server refused the handshake ({0})")]
    AlertReceived(String),
    /// What came back is not TLS at all: a plain-text port, most likely.
    #[error("the server does not speak TLS there")]
    NotTls,
    /// Anything else (I/O, an internal rustls error).
    #[error("{0}")]
    Other(String),
}

/// Why a TLS handshake failed, from the error the handshake returned.
pub fn handshake_failure(err: &std::io::Error) -> HandshakeFailure {
    let Some(tls) = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    else {
        return HandshakeFailure::Other(err.to_string());
    };
    match tls {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer => HandshakeFailure::UnknownIssuer,
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                HandshakeFailure::WrongName
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                HandshakeFailure::Expired
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                HandshakeFailure::NotValidYet
            }
            CertificateError::BadSignature => HandshakeFailure::BadSignature,
            CertificateError::Revoked => HandshakeFailure::Revoked,
            other => HandshakeFailure::CertificateRefused(format!("{other:?}")),
        },
        rustls::Error::AlertReceived(alert) => {
            HandshakeFailure::AlertReceived(format!("{alert:?}"))
        }
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            HandshakeFailure::NotTls
        }
        other => HandshakeFailure::Other(other.to_string()),
    }
}

/// Decides whether to trust the server's certificate:
///
/// - `--insecure`: any certificate (no `webpki`);
/// - a certificate listed in `--ca`, presented by the server itself: pinned, trusted;
/// - anything else: WebPKI validation against the roots.
///
/// In every case the handshake signatures are checked, so the connection is
/// encrypted to whoever holds the certificate's key.
#[derive(Debug)]
struct ServerVerifier {
    pinned: Vec<CertificateDer<'static>>,
    webpki: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let pinned = self
            .pinned
            .iter()
            .any(|pin| pin.as_ref() == end_entity.as_ref());
        match &self.webpki {
            Some(webpki) if !pinned => webpki.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
