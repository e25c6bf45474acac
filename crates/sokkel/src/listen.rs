//! Where a server listens: the addresses the user named, binding them all at
//! once, and what to do when some cannot be bound.
//!
//! ```text
//! 127.0.0.1:1025    this address only (the defaults are all on loopback)
//! [::1]:1025        an IPv6 address, in brackets
//! localhost:1025    every address the name resolves to
//! :1025             every address of this machine, IPv4 and IPv6 (Mailpit's form)
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};

use sokkel_net::{HostPort, NetError};

/// A listen address as the user typed it, checked but not resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// `host:port` or `[v6]:port`.
    Host(HostPort),
    /// `:port`: every address of this machine.
    Every(u16),
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Host(host_port) => host_port.fmt(f),
            ListenAddr::Every(port) => write!(f, ":{port}"),
        }
    }
}

/// Parses a listen flag's value; `port` is the flag's usual port, for the
/// examples in what is wrong (clap names the flag and the value around it).
pub fn parse_listen(input: &str, port: u16) -> Result<ListenAddr, String> {
    let text = input.trim();
    let either =
        format!("write 127.0.0.1:{port} for this machine only, or :{port} for every address");
    let port_number = |p: &str| {
        p.parse::<u16>()
            .map_err(|_| format!("the port must be a number from 0 to 65535, e.g. {port}"))
    };
    if text.is_empty() {
        return Err(format!("it is empty; {either}"));
    }
    if let Some(p) = text.strip_prefix(':')
        && !p.contains(':')
    {
        return port_number(p).map(ListenAddr::Every);
    }
    if text.parse::<u16>().is_ok() {
        return Err(format!("a port alone is not an address; {either}"));
    }
    let (host, p) = if let Some(rest) = text.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return Err(format!("a '[' without its ']'; write e.g. [::1]:{port}"));
        };
        if inside.parse::<Ipv6Addr>().is_err() {
            return Err(format!("brackets hold an IPv6 address, e.g. [::1]:{port}"));
        }
        match after.strip_prefix(':') {
            Some(p) => (inside, Some(p)),
            None if after.is_empty() => (inside, None),
            None => {
                return Err(format!(
                    "write ':PORT' after the ']', e.g. [{inside}]:{port}"
                ));
            }
        }
    } else {
        match text.rsplit_once(':') {
            Some((h, _)) if h.contains(':') => {
                let example = match ipv6_and_port(text) {
                    Some((ip, p)) => format!("[{ip}]:{p}"),
                    None => format!("[::1]:{port}"),
                };
                return Err(format!(
                    "an IPv6 address needs brackets before the port, e.g. {example}"
                ));
            }
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err(format!("the host is missing; {either}"));
    }
    let Some(p) = p else {
        let shown = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        return Err(format!("the port is missing; write {shown}:{port}"));
    };
    Ok(ListenAddr::Host(HostPort {
        host: host.to_owned(),
        port: port_number(p)?,
    }))
}

/// `::1:1025` read as the IPv6 address and port the user most likely meant.
fn ipv6_and_port(text: &str) -> Option<(Ipv6Addr, u16)> {
    let (ip, port) = text.rsplit_once(':')?;
    Some((ip.parse().ok()?, port.parse().ok()?))
}

/// Every address `inputs` resolve to, without repeats; `:PORT` is `[::]:PORT`
/// (IPv4 too), or `0.0.0.0:PORT` where this machine has no IPv6.
pub async fn listen_addresses(inputs: &[ListenAddr]) -> anyhow::Result<Vec<SocketAddr>> {
    let mut addrs = Vec::new();
    for input in inputs {
        let resolved = match input {
            ListenAddr::Host(host_port) => host_port.resolve(&[]).await?,
            ListenAddr::Every(port) => vec![SocketAddr::new(every_address(), *port)],
        };
        for addr in resolved {
            if !addrs.contains(&addr) {
                addrs.push(addr);
            }
        }
    }
    Ok(addrs)
}

/// `::` where IPv6 sockets can be made (dual stack, so IPv4 too), else `0.0.0.0`.
fn every_address() -> IpAddr {
    if TcpListener::bind((Ipv6Addr::UNSPECIFIED, 0)).is_ok() {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    }
}

/// The listeners a server wants, bound together: [`Binding::bind`] tries every
/// address before it reports, so one start names every port that is taken.
#[derive(Debug, Default)]
pub struct Binding {
    wanted: Vec<Wanted>,
}

#[derive(Debug)]
struct Wanted {
    flag: String,
    usual_port: u16,
    addrs: Vec<SocketAddr>,
}

/// Which [`Binding::add`] call a set of listeners answers.
#[derive(Debug, Clone, Copy)]
pub struct Slot(usize);

/// What [`Binding::bind`] bound, taken out with [`Bound::take`].
#[derive(Debug)]
pub struct Bound(Vec<Vec<TcpListener>>);

impl Bound {
    /// The listeners of `slot`, in the order of its addresses.
    pub fn take(&mut self, slot: Slot) -> Vec<TcpListener> {
        std::mem::take(&mut self.0[slot.0])
    }
}

/// One address that could not be bound.
#[derive(Debug)]
pub struct Failure {
    /// The flag that named it, e.g. `--smtp`.
    pub flag: String,
    /// Its usual port, e.g. 1025.
    pub usual_port: u16,
    /// Why, with the address.
    pub error: NetError,
}

impl Failure {
    fn addr(&self) -> Option<SocketAddr> {
        match &self.error {
            NetError::Bind { addr, .. } => Some(*addr),
            _ => None,
        }
    }

    fn in_use(&self) -> bool {
        matches!(&self.error, NetError::Bind { source, .. } if source.kind() == std::io::ErrorKind::AddrInUse)
    }
}

/// Every address that could not be bound; nothing stays bound.
#[derive(Debug)]
pub struct Failures(pub Vec<Failure>);

impl Binding {
    /// Adds the addresses of `flag` (its usual port for hints).
    pub fn add(&mut self, flag: &str, usual_port: u16, addrs: Vec<SocketAddr>) -> Slot {
        self.wanted.push(Wanted {
            flag: flag.to_owned(),
            usual_port,
            addrs,
        });
        Slot(self.wanted.len() - 1)
    }

    /// Binds every address; if any fails, every failure is returned and what
    /// was bound is closed.
    pub fn bind(&self) -> Result<Bound, Failures> {
        let mut bound = Vec::new();
        let mut failures = Vec::new();
        for wanted in &self.wanted {
            let mut listeners = Vec::new();
            for addr in &wanted.addrs {
                match sokkel_net::bind_tcp(*addr, sokkel_net::DEFAULT_BACKLOG) {
                    Ok(listener) => listeners.push(listener),
                    Err(error) => failures.push(Failure {
                        flag: wanted.flag.clone(),
                        usual_port: wanted.usual_port,
                        error,
                    }),
                }
            }
            bound.push(listeners);
        }
        if failures.is_empty() {
            Ok(Bound(bound))
        } else {
            Err(Failures(failures))
        }
    }

    /// The flags' values with every failed address replaced by one on a port
    /// free now, as `--flag VALUE` pairs for the flags that change; `None`
    /// when some failure has no such remedy (no interface has that address).
    pub fn remedy(&self, failures: &Failures) -> Option<Vec<(String, String)>> {
        // Held until every replacement is chosen, so no two get the same port.
        let mut held = Vec::new();
        let mut changed = Vec::new();
        for wanted in &self.wanted {
            let failed: Vec<&Failure> = failures
                .0
                .iter()
                .filter(|failure| failure.flag == wanted.flag)
                .collect();
            if failed.is_empty() {
                continue;
            }
            let mut values = Vec::new();
            for addr in &wanted.addrs {
                let Some(failure) = failed.iter().find(|f| f.addr() == Some(*addr)) else {
                    values.push(addr.to_string());
                    continue;
                };
                let (listener, free) = free_near(*addr, failure)?;
                held.push(listener);
                values.push(free.to_string());
            }
            changed.push((wanted.flag.clone(), values.join(",")));
        }
        Some(changed)
    }
}

/// A port free now on `addr`'s address for what `failure` refused: upward
/// from the next port (or from the usual port, for a port that needs
/// privileges), else any the system gives. Kept bound by the caller.
fn free_near(addr: SocketAddr, failure: &Failure) -> Option<(TcpListener, SocketAddr)> {
    let start = if failure.in_use() && addr.port() != 0 {
        addr.port().checked_add(1)?.max(1024)
    } else if matches!(&failure.error, NetError::Bind { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied)
    {
        failure.usual_port
    } else {
        return None;
    };
    let candidates = (start..=start.saturating_add(100)).chain(std::iter::once(0));
    for port in candidates {
        let at = SocketAddr::new(addr.ip(), port);
        if let Ok(listener) = sokkel_net::bind_tcp(at, 1) {
            let free = listener.local_addr().ok()?;
            return Some((listener, free));
        }
    }
    None
}

impl Failures {
    /// One line: every address that could not be bound, why, and `remedy`
    /// (what to run instead), if there is one.
    pub fn explain(&self, remedy: Option<String>) -> anyhow::Error {
        let in_use: Vec<&Failure> = self.0.iter().filter(|f| f.in_use()).collect();
        let mut parts = Vec::new();
        if !in_use.is_empty() {
            let named: Vec<String> = in_use
                .iter()
                .filter_map(|f| Some(format!("{} {}", f.flag, f.addr()?)))
                .collect();
            let (ports, is) = if named.len() == 1 {
                ("port", "is")
            } else {
                ("ports", "are")
            };
            parts.push(format!(
                "cannot listen: the {ports} of {} {is} already in use (another sokkel mail serve?)",
                named.join(", ")
            ));
        }
        for failure in self.0.iter().filter(|f| !f.in_use()) {
            parts.push(format!("{} {}", failure.flag, failure.error));
        }
        let mut line = parts.join("; ");
        if let Some(remedy) = remedy {
            line.push_str("; ");
            line.push_str(&remedy);
        }
        anyhow::anyhow!(line)
    }
}

/// The command line this process was started with, with each `(flag, value)`
/// of `set` replacing that flag's values, `drop` flags left out (with their
/// values when `takes_value`), and `add` appended; quoted for a POSIX shell.
pub fn command_line(set: &[(String, String)], drop: &[(&str, bool)], add: &[&str]) -> String {
    let args: Vec<String> = std::env::args_os()
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect();
    let mut out: Vec<String> = Vec::new();
    let mut skip_next = false;
    for (i, arg) in args.iter().enumerate() {
        if skip_next {
            skip_next = false;
            continue;
        }
        let flag = arg.split_once('=').map_or(arg.as_str(), |(flag, _)| flag);
        let replaced = set.iter().any(|(f, _)| f == flag);
        let dropped = drop.iter().find(|(f, _)| *f == flag);
        if i > 0 && (replaced || dropped.is_some()) {
            let takes_value = replaced || dropped.is_some_and(|(_, takes)| *takes);
            skip_next = takes_value && !arg.contains('=');
            continue;
        }
        out.push(arg.clone());
    }
    for (flag, value) in set {
        out.push(flag.clone());
        out.push(value.clone());
    }
    out.extend(add.iter().map(|a| a.to_string()));
    out.iter()
        .map(|arg| shell_quote(arg))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `arg` as a POSIX shell reads it back: unchanged when that is safe, else
/// in single quotes (brackets too, which shells take for a pattern).
fn shell_quote(arg: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_-./:@%+=,".contains(c);
    if !arg.is_empty() && arg.chars().all(safe) {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// Adds what to do next to the two bind failures users meet most; `flag` is the
/// option that names the address and `usual_port` its unprivileged default.
pub fn explain_bind(err: NetError, flag: &str, usual_port: u16) -> anyhow::Error {
    let failure = Failure {
        flag: flag.to_owned(),
        usual_port,
        error: err,
    };
    let hint = match (&failure.error, failure.addr()) {
        (NetError::Bind { .. }, Some(addr)) => {
            free_near(addr, &failure).map(|(_, free)| format!("; e.g. {flag} {free} is free"))
        }
        _ => None,
    };
    match hint {
        Some(hint) => anyhow::anyhow!("{}{hint}", failure.error),
        None => failure.error.into(),
    }
}

/// The loopback warning's one line for a listener beyond loopback: `what` on
/// `addr` can be reached by anyone who can reach this machine.
pub fn warn_if_exposed(listeners: &[TcpListener], what: &str, flag: &str, reach: &str) {
    for listener in listeners {
        if let Ok(addr) = listener.local_addr()
            && !addr.ip().is_loopback()
        {
            tracing::warn!(
                "{what} on {addr} listens beyond loopback, so anyone who can reach this machine can {reach}; give {flag} 127.0.0.1:PORT to keep it local"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_read_as_typed() {
        for (input, shown) in [
            ("127.0.0.1:1025", "127.0.0.1:1025"),
            (" [::1]:2525 ", "[::1]:2525"),
            ("localhost:0", "localhost:0"),
            (":1025", ":1025"),
            (":0", ":0"),
        ] {
            let parsed = parse_listen(input, 1025).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(parsed.to_string(), shown);
        }
        assert_eq!(parse_listen(":1025", 1).unwrap(), ListenAddr::Every(1025));
    }

    #[test]
    fn words_a_shell_would_change_are_quoted() {
        assert_eq!(shell_quote("127.0.0.1:1026"), "127.0.0.1:1026");
        assert_eq!(shell_quote("[::1]:1026"), "'[::1]:1026'");
        assert_eq!(shell_quote("my mail.db"), "'my mail.db'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
