//! Where a server listens: the addresses the user named, and what to do when
//! binding one fails.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use sokkel_net::{HostPort, NetError};

/// Every address the `flag` values resolve to, without repeats. `example` is a value
/// to show in the error when there is none.
pub async fn listen_addresses(
    inputs: &[String],
    flag: &str,
    example: &str,
) -> anyhow::Result<Vec<SocketAddr>> {
    let mut addrs = Vec::new();
    for input in inputs {
        let host_port = HostPort::parse(input, None)
            .with_context(|| format!("{flag} takes host:port, e.g. {example} or [::1]:PORT"))?;
        for addr in host_port.resolve(&[]).await? {
            if !addrs.contains(&addr) {
                addrs.push(addr);
            }
        }
    }
    if addrs.is_empty() {
        bail!("no address to listen on; give one with {flag} {example}");
    }
    Ok(addrs)
}

/// Binds every address for `flag`, in order; the first failure is explained as
/// [`explain_bind`] does and nothing stays bound.
pub fn bind_all(
    addrs: Vec<SocketAddr>,
    flag: &str,
    usual_port: u16,
) -> anyhow::Result<Vec<std::net::TcpListener>> {
    addrs
        .into_iter()
        .map(|addr| {
            sokkel_net::bind_tcp(addr, sokkel_net::DEFAULT_BACKLOG)
                .map_err(|err| explain_bind(err, flag, usual_port))
        })
        .collect()
}

/// Adds what to do next to the two bind failures users meet most; `flag` is the
/// option that names the address and `usual_port` its unprivileged default.
pub fn explain_bind(err: NetError, flag: &str, usual_port: u16) -> anyhow::Error {
    let hint = match &err {
        NetError::Bind { addr, source } => match source.kind() {
            std::io::ErrorKind::AddrInUse => Some(format!(
                "; pick another port, e.g. {flag} {}",
                SocketAddr::new(addr.ip(), addr.port().wrapping_add(1).max(1024))
            )),
            std::io::ErrorKind::PermissionDenied if addr.port() < 1024 => Some(format!(
                "; use a port of 1024 or above, e.g. {flag} {}",
                SocketAddr::new(addr.ip(), usual_port)
            )),
            _ => None,
        },
        _ => None,
    };
    match hint {
        Some(hint) => anyhow::anyhow!("{err}{hint}"),
        None => err.into(),
    }
}
