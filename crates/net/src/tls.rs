//! TLS for sokkel's servers: the certificate they present, and a connection that can
//! switch to TLS in the middle of a session.
//!
//! SMTP (STARTTLS, and SMTPS on its own port) and POP3 (STLS, and POP3S) share this:
//! [`ServerTls`] loads a PEM certificate and key, or makes a self-signed certificate
//! for local development, and [`ServerStream`] is the socket a session shell reads
//! and writes, before and after the upgrade.

use std::fmt;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::NetError;

/// The certificate a server presents, ready to accept TLS connections. Cheap to
/// clone.
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<rustls::ServerConfig>,
    fingerprint: String,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Load a certificate chain (leaf first) and its private key from PEM files, as
    /// `--tls-cert` and `--tls-key` name them. Every way this can fail (a missing
    /// file, no certificate in it, a key that does not belong to the certificate)
    /// is one [`NetError::Tls`] line that names the file.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<ServerTls, NetError> {
        let certs = read_certificates(cert)?;
        let private_key = read_private_key(key)?;
        ServerTls::from_parts(certs, private_key).map_err(|reason| NetError::Tls {
            what: format!(
                "the key {} with the certificate {}",
                key.display(),
                cert.display()
            ),
            reason,
        })
    }

    /// Make a self-signed certificate for these host names (and IP addresses) and
    /// use it. Clients must be told to trust it (its fingerprint is in
    /// [`ServerTls::fingerprint`]) or to skip verification.
    pub fn self_signed(names: &[String]) -> Result<ServerTls, NetError> {
        let failed = |reason: String| NetError::Tls {
            what: "a self-signed certificate".into(),
            reason,
        };
        let certified = rcgen::generate_simple_self_signed(names.to_vec())
            .map_err(|e| failed(e.to_string()))?;
        let cert = certified.cert.der().clone();
        let key = PrivateKeyDer::try_from(certified.signing_key.serialize_der())
            .map_err(|e| failed(e.to_string()))?;
        ServerTls::from_parts(vec![cert], key).map_err(failed)
    }

    fn from_parts(
        certs: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<ServerTls, String> {
        let fingerprint = fingerprint(&certs[0]);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| match e {
                rustls::Error::InconsistentKeys(_) => {
                    "the private key does not belong to the certificate".to_string()
                }
                other => other.to_string(),
            })?;
        Ok(ServerTls {
            config: Arc::new(config),
            fingerprint,
        })
    }

    /// An acceptor that performs the server side of the handshake.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config.clone())
    }

    /// The SHA-256 fingerprint of the certificate presented, as `AB:CD:...` hex, the
    /// form `openssl x509 -fingerprint -sha256` prints.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, NetError> {
    let failed = |reason: String| NetError::Tls {
        what: format!("the certificate file {}", path.display()),
        reason,
    };
    let contents = std::fs::read(path).map_err(|e| failed(describe_io(&e)))?;
    let certs = CertificateDer::pem_slice_iter(&contents)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| failed(format!("it is not valid PEM ({e})")))?;
    if certs.is_empty() {
        return Err(failed(
            "it holds no certificate (expected a PEM block \"BEGIN CERTIFICATE\")".into(),
        ));
    }
    Ok(certs)
}

fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, NetError> {
    let failed = |reason: String| NetError::Tls {
        what: format!("the key file {}", path.display()),
        reason,
    };
    let contents = std::fs::read(path).map_err(|e| failed(describe_io(&e)))?;
    PrivateKeyDer::from_pem_slice(&contents).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => failed(
            "it holds no private key (expected a PEM block such as \"BEGIN PRIVATE KEY\")".into(),
        ),
        other => failed(format!("it is not a valid PEM private key ({other})")),
    })
}

fn describe_io(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::NotFound => "no such file".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => error.to_string(),
    }
}

fn fingerprint(cert: &CertificateDer<'_>) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
    digest
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A server's side of a connection, in clear text or TLS. Sessions that support an
/// upgrade (STARTTLS, STLS) start [`Plain`](ServerStream::Plain) and call
/// [`ServerStream::accept_tls`]; implicit-TLS listeners call it at once.
#[derive(Debug)]
pub enum ServerStream {
    /// Clear text.
    Plain(TcpStream),
    /// After a completed TLS handshake.
    Tls(Box<TlsStream<TcpStream>>),
}

impl ServerStream {
    /// Perform the TLS handshake on a clear-text stream. Whatever the client sent
    /// before the handshake and was already read is the caller's to discard: this
    /// only reads from the socket from here on. Calling it on a TLS stream fails.
    pub async fn accept_tls(self, acceptor: &TlsAcceptor) -> io::Result<ServerStream> {
        match self {
            ServerStream::Plain(tcp) => {
                let tls = acceptor.accept(tcp).await?;
                Ok(ServerStream::Tls(Box::new(tls)))
            }
            ServerStream::Tls(_) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the connection already uses TLS",
            )),
        }
    }

    /// The TCP socket underneath, for its options and addresses.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            ServerStream::Plain(tcp) => tcp,
            ServerStream::Tls(tls) => tls.get_ref().0,
        }
    }

    /// Whether the handshake has been done.
    pub fn is_tls(&self) -> bool {
        matches!(self, ServerStream::Tls(_))
    }

    /// The negotiated protocol version (`TLSv1.3`) and cipher suite by its IANA
    /// name (`TLS_AES_256_GCM_SHA384`), once TLS is up.
    pub fn tls_params(&self) -> Option<(String, String)> {
        let ServerStream::Tls(tls) = self else {
            return None;
        };
        let (_, conn) = tls.get_ref();
        let version = match conn.protocol_version()? {
            rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_string(),
            rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_string(),
            other => format!("{other:?}"),
        };
        let cipher = conn.negotiated_cipher_suite()?.suite();
        // rustls says TLS13_AES_256_GCM_SHA384 where the IANA registry (and OpenSSL,
        // and so most clients' logs) says TLS_AES_256_GCM_SHA384.
        let cipher = match cipher.as_str() {
            Some(name) => match name.strip_prefix("TLS13_") {
                Some(rest) => format!("TLS_{rest}"),
                None => name.to_string(),
            },
            None => format!("{cipher:?}"),
        };
        Some((version, cipher))
    }
}

impl AsyncRead for ServerStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ServerStream::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ServerStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ServerStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ServerStream::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerStream::Plain(s) => Pin::new(s).poll_flush(cx),
            ServerStream::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ServerStream::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_has_an_openssl_style_fingerprint() {
        let tls = ServerTls::self_signed(&["localhost".into()]).unwrap();
        let fp = tls.fingerprint();
        assert_eq!(fp.len(), 32 * 3 - 1, "{fp}");
        assert!(fp.split(':').all(|b| {
            b.len() == 2
                && b.chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
        }));
    }

    #[test]
    fn missing_files_and_mismatched_keys_are_one_clear_line() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let err = ServerTls::from_pem_files(&missing, &missing).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot use the certificate file {}: no such file",
                missing.display()
            )
        );

        let a = rcgen::generate_simple_self_signed(vec!["a.test".into()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["b.test".into()]).unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, a.cert.pem()).unwrap();
        std::fs::write(&key, b.signing_key.serialize_pem()).unwrap();
        let err = ServerTls::from_pem_files(&cert, &key)
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not belong to the certificate"), "{err}");
        assert!(!err.contains('\n'), "{err}");

        std::fs::write(&key, a.signing_key.serialize_pem()).unwrap();
        ServerTls::from_pem_files(&cert, &key).expect("matching pair loads");

        std::fs::write(&key, a.cert.pem()).unwrap();
        let err = ServerTls::from_pem_files(&cert, &key)
            .unwrap_err()
            .to_string();
        assert!(err.contains("holds no private key"), "{err}");
    }
}
