//! Connecting to a target that may have several addresses.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

use crate::NetError;

/// One failed connection attempt: which address, and why.
#[derive(Debug)]
pub struct ConnectAttempt {
    /// The address tried.
    pub addr: SocketAddr,
    /// Why it failed; `None` when the attempt timed out.
    pub error: Option<io::Error>,
}

impl ConnectAttempt {
    /// Says why this attempt failed, in words.
    pub fn describe(&self) -> String {
        match &self.error {
            None => "timed out".to_owned(),
            Some(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                "refused the connection (is a server listening there?)".to_owned()
            }
            Some(e) => e.to_string(),
        }
    }
}

/// Connects to the first address in `addrs` that accepts, trying them in order, each
/// with `timeout`. `target` names the target in the error, which lists every attempt.
pub async fn connect_any(
    target: &str,
    addrs: &[SocketAddr],
    timeout: Duration,
) -> Result<(TcpStream, SocketAddr), NetError> {
    let mut attempts = Vec::new();
    for &addr in addrs {
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                if !attempts.is_empty() {
                    tracing::debug!(%addr, failed = attempts.len(), "connected after earlier addresses failed");
                }
                return Ok((stream, addr));
            }
            Ok(Err(error)) => attempts.push(ConnectAttempt {
                addr,
                error: Some(error),
            }),
            Err(_) => attempts.push(ConnectAttempt { addr, error: None }),
        }
    }
    Err(NetError::Connect {
        target: target.to_owned(),
        attempts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn falls_through_a_refusing_address_and_reports_every_failure() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let good = listener.local_addr().unwrap();
        // Nothing listens on 127.0.0.2 at that port: the kernel refuses at once.
        let refusing = SocketAddr::new("127.0.0.2".parse().unwrap(), good.port());
        let (_, used) = connect_any("t", &[refusing, good], Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(used, good);

        drop(listener);
        let err = connect_any("t", &[refusing, good], Duration::from_secs(2))
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&refusing.to_string()) && text.contains(&good.to_string()),
            "{text}"
        );
        assert!(text.contains("refused"), "{text}");
    }
}
