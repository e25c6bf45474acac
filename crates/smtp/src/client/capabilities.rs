//! What a server said it can do in its EHLO reply.

use super::reply::ServerReply;

/// The extensions the client uses, from an EHLO reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// PIPELINING (RFC 2920).
    pub pipelining: bool,
    /// SIZE (RFC 1870), with the limit if the server gave one (0 means none).
    pub size: Option<u64>,
    /// STARTTLS (RFC 3207).
    pub starttls: bool,
    /// AUTH (RFC 4954) mechanisms, upper case.
    pub auth: Vec<String>,
    /// SMTPUTF8 (RFC 6531).
    pub smtputf8: bool,
    /// 8BITMIME (RFC 6152).
    pub eight_bit_mime: bool,
}

impl Capabilities {
    /// Reads the keywords from an EHLO reply; the first line is the greeting.
    pub fn from_ehlo(reply: &ServerReply) -> Self {
        let mut caps = Capabilities::default();
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_ascii_whitespace();
            let Some(keyword) = words.next() else {
                continue;
            };
            match keyword.to_ascii_uppercase().as_str() {
                "PIPELINING" => caps.pipelining = true,
                "SIZE" => caps.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0)),
                "STARTTLS" => caps.starttls = true,
                "SMTPUTF8" => caps.smtputf8 = true,
                "8BITMIME" => caps.eight_bit_mime = true,
                // "AUTH=PLAIN LOGIN" is the pre-standard form some servers still send.
                k if k == "AUTH" || k.starts_with("AUTH=") => {
                    let first = k.strip_prefix("AUTH=").filter(|m| !m.is_empty());
                    for mechanism in first
                        .into_iter()
                        .map(str::to_owned)
                        .chain(words.map(str::to_ascii_uppercase))
                    {
                        if !caps.auth.contains(&mechanism) {
                            caps.auth.push(mechanism);
                        }
                    }
                }
                _ => {}
            }
        }
        caps
    }

    /// Whether the server offers this AUTH mechanism.
    pub fn offers_auth(&self, mechanism: &str) -> bool {
        self.auth.iter().any(|m| m.eq_ignore_ascii_case(mechanism))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ehlo_keywords() {
        let reply = ServerReply {
            code: 250,
            lines: [
                "mx greets you",
                "PIPELINING",
                "SIZE 1000",
                "STARTTLS",
                "AUTH PLAIN login",
                "AUTH=CRAM-MD5",
                "8BITMIME",
            ]
            .map(String::from)
            .to_vec(),
        };
        let caps = Capabilities::from_ehlo(&reply);
        assert!(caps.pipelining && caps.starttls && caps.eight_bit_mime && !caps.smtputf8);
        assert_eq!(caps.size, Some(1000));
        assert_eq!(caps.auth, ["PLAIN", "LOGIN", "CRAM-MD5"]);
        assert!(caps.offers_auth("login"));
        let bare = Capabilities::from_ehlo(&ServerReply {
            code: 250,
            lines: vec!["hi".into(), "SIZE".into()],
        });
        assert_eq!(bare.size, Some(0));
    }
}
