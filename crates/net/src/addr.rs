//! Addresses as users type them, and how they resolve.
//!
//! ```text
//! 127.0.0.1:10000     IPv4 literal and port
//! [::1]:10000         IPv6 literal in brackets (RFC 3986 style) and port
//! localhost:10000     host name, resolved to every address it has
//! localhost           host name alone, where the caller has a default port
//! ```

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use crate::NetError;

/// A host (name or literal address) and a port, as parsed from user input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// A host name or an IP literal, without brackets.
    pub host: String,
    /// The port.
    pub port: u16,
}

impl HostPort {
    /// Parses `host:port` or `[v6]:port`; when `default_port` is given, the port may be
    /// left out.
    pub fn parse(input: &str, default_port: Option<u16>) -> Result<Self, NetError> {
        let invalid = |reason: &str| NetError::InvalidAddress {
            input: input.to_owned(),
            reason: reason.to_owned(),
        };
        let input_trimmed = input.trim();
        if input_trimmed.is_empty() {
            return Err(invalid(
                "it is empty; write host:port, e.g. 127.0.0.1:10000",
            ));
        }
        let (host, port) = if let Some(rest) = input_trimmed.strip_prefix('[') {
            let (inside, after) = rest
                .split_once(']')
                .ok_or_else(|| invalid("a '[' without its ']'; write [::1]:10000"))?;
            if inside.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(invalid("brackets hold an IPv6 address, e.g. [::1]:10000"));
            }
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err(invalid("expected ':port' after the ']'")),
            };
            (inside, port)
        } else {
            match input_trimmed.rsplit_once(':') {
                Some((h, _)) if h.contains(':') => {
                    return Err(invalid(
                        "an IPv6 address needs brackets before the port, e.g. [::1]:10000",
                    ));
                }
                Some((h, p)) => (h, Some(p)),
                None => (input_trimmed, None),
            }
        };
        if host.is_empty() {
            return Err(invalid(
                "the host is missing; write host:port, e.g. 127.0.0.1:10000",
            ));
        }
        let port = match (port, default_port) {
            (Some(p), _) => p
                .parse::<u16>()
                .map_err(|_| invalid("the port must be a number from 0 to 65535"))?,
            (None, Some(d)) => d,
            (None, None) => return Err(invalid("the port is missing; write host:port")),
        };
        Ok(HostPort {
            host: host.to_owned(),
            port,
        })
    }

    /// The address as a literal, when the host is an IP address.
    pub fn literal(&self) -> Option<SocketAddr> {
        self.host
            .parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, self.port))
    }

    /// Resolves to every address, in the resolver's order, honouring `overrides` first.
    pub async fn resolve(
        &self,
        overrides: &[ResolveOverride],
    ) -> Result<Vec<SocketAddr>, NetError> {
        if let Some(addr) = self.literal() {
            return Ok(vec![addr]);
        }
        if let Some(o) = overrides
            .iter()
            .find(|o| o.host.eq_ignore_ascii_case(&self.host) && o.port == self.port)
        {
            return Ok(o
                .addrs
                .iter()
                .map(|ip| SocketAddr::new(*ip, self.port))
                .collect());
        }
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|source| NetError::Resolve {
                host: self.host.clone(),
                source,
            })?
            .collect();
        if addrs.is_empty() {
            return Err(NetError::NoAddress {
                host: self.host.clone(),
            });
        }
        Ok(addrs)
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for HostPort {
    type Err = NetError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HostPort::parse(s, None)
    }
}

/// A fixed answer for one host and port, in curl's `--resolve HOST:PORT:ADDR[,ADDR]...`
/// syntax: useful to reach a server under a name DNS does not know, or to pin the order
/// in which addresses are tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveOverride {
    /// The host name this answer is for.
    pub host: String,
    /// The port this answer is for.
    pub port: u16,
    /// The addresses, in the order they are tried.
    pub addrs: Vec<IpAddr>,
}

impl FromStr for ResolveOverride {
    type Err = NetError;
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let invalid = || NetError::InvalidAddress {
            input: input.to_owned(),
            reason: "write HOST:PORT:ADDR[,ADDR...], e.g. echo.test:10000:[::1],127.0.0.1".into(),
        };
        let (host, rest) = input.split_once(':').ok_or_else(invalid)?;
        let (port, addrs) = rest.split_once(':').ok_or_else(invalid)?;
        let port = port.parse::<u16>().map_err(|_| invalid())?;
        let addrs = addrs
            .split(',')
            .map(|a| {
                a.trim()
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<IpAddr>()
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| invalid())?;
        if host.is_empty() || addrs.is_empty() {
            return Err(invalid());
        }
        Ok(ResolveOverride {
            host: host.to_owned(),
            port,
            addrs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_users_type() {
        type Case<'a> = (&'a str, Option<u16>, Option<(&'a str, u16)>);
        let cases: &[Case] = &[
            ("127.0.0.1:10000", None, Some(("127.0.0.1", 10000))),
            ("0.0.0.0:0", None, Some(("0.0.0.0", 0))),
            ("[::1]:25", None, Some(("::1", 25))),
            ("[::]:10000", None, Some(("::", 10000))),
            ("localhost:1025", None, Some(("localhost", 1025))),
            ("localhost", Some(1025), Some(("localhost", 1025))),
            ("[::1]", Some(7), Some(("::1", 7))),
            ("localhost", None, None),
            ("::1:25", None, None),
            ("[::1:25", None, None),
            ("[nothost]:25", None, None),
            ("host:99999", None, None),
            ("host:port", None, None),
            (":25", None, None),
            ("", Some(1), None),
        ];
        for (input, default, want) in cases {
            let got = HostPort::parse(input, *default).ok();
            let got = got.as_ref().map(|h| (h.host.as_str(), h.port));
            assert_eq!(got, *want, "input {input:?}");
        }
    }

    #[test]
    fn displays_ipv6_in_brackets() {
        assert_eq!(
            HostPort::parse("[::1]:9", None).unwrap().to_string(),
            "[::1]:9"
        );
        assert_eq!(HostPort::parse("a.b:9", None).unwrap().to_string(), "a.b:9");
    }

    #[test]
    fn parses_curl_style_overrides() {
        let o: ResolveOverride = "echo.test:10000:[::1],127.0.0.1".parse().unwrap();
        assert_eq!(o.host, "echo.test");
        assert_eq!(o.port, 10000);
        assert_eq!(
            o.addrs,
            vec![
                "::1".parse::<IpAddr>().unwrap(),
                "127.0.0.1".parse().unwrap()
            ]
        );
        assert!("echo.test:10000".parse::<ResolveOverride>().is_err());
        assert!("echo.test:x:127.0.0.1".parse::<ResolveOverride>().is_err());
    }

    #[tokio::test]
    async fn override_pins_the_order() {
        let o: ResolveOverride = "echo.test:5:127.0.0.2,127.0.0.1".parse().unwrap();
        let hp = HostPort::parse("echo.test:5", None).unwrap();
        let addrs = hp.resolve(&[o]).await.unwrap();
        assert_eq!(
            addrs,
            vec![
                "127.0.0.2:5".parse().unwrap(),
                "127.0.0.1:5".parse().unwrap()
            ]
        );
    }
}
