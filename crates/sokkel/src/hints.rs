//! What servers tell the user at start, and advice added to errors users meet often.

use std::net::SocketAddr;

use sokkel_net::NetError;

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

/// Prints a line a server announces at start (where it listens, where it keeps
/// data). A reader that went away must not stop the server, so errors are ignored.
pub fn announce(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out
        .write_fmt(line)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
}
