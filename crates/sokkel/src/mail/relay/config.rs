//! `--relay-config FILE`: where released and auto-relayed messages go, and to
//! whom they may go. A small TOML file, read once at start:
//!
//! ```text
//! host = "smtp.example.com"         # required
//! port = 587                        # default 25, or 465 with tls = "implicit"
//! tls = "starttls"                  # "none" (default) | "starttls" | "implicit"
//! username = "me"                   # with password or password-env
//! password-env = "RELAY_PASSWORD"   # the variable holding the password
//! allowed-recipients = "@example\\.com$"   # regex; only matching addresses
//! blocked-recipients = "^ceo@"             # regex; never these (wins)
//! override-from = "bounces@example.com"    # the envelope MAIL FROM only
//! timeout = 30                      # seconds per connect, reply or write
//! ca-file = "relay-ca.pem"          # trust this CA (relative to the file)
//! ```
//!
//! Unknown keys and bad values are refused with `FILE:LINE: reason`. The
//! password never appears in `Debug`, logs or errors.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;
use sokkel_net::HostPort;
use toml::Spanned;

/// The timeout when the file gives none: long enough for a slow server's
/// greeting, short enough that a dead one is noticed.
pub const DEFAULT_TIMEOUT_SECS: u64 = 30;

/// The longest `timeout` accepted.
pub const MAX_TIMEOUT_SECS: u64 = 3600;

/// The longest address accepted (RFC 5321's path limit, without brackets).
const MAX_ADDRESS_BYTES: usize = 254;

/// How to secure the connection to the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RelayTls {
    /// Plain text (a relay on the same machine or network).
    None,
    /// STARTTLS, required: a server that does not offer it is an error.
    Starttls,
    /// TLS from the first byte (SMTPS, port 465).
    Implicit,
}

impl fmt::Display for RelayTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RelayTls::None => "no TLS",
            RelayTls::Starttls => "STARTTLS",
            RelayTls::Implicit => "implicit TLS",
        })
    }
}

/// A login at the relay. The password is never shown.
#[derive(Clone)]
pub struct RelayLogin {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for RelayLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelayLogin")
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .finish()
    }
}

/// A relay configuration, checked.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub server: HostPort,
    pub tls: RelayTls,
    /// Which certificates to trust; `None` with [`RelayTls::None`].
    pub tls_config: Option<Arc<rustls::ClientConfig>>,
    pub login: Option<RelayLogin>,
    allowed: Option<Regex>,
    blocked: Option<Regex>,
    /// Replaces the envelope sender (MAIL FROM); the message bytes keep
    /// their From header.
    pub override_from: Option<String>,
    pub timeout: Duration,
}

/// The file as written, before checking.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawConfig {
    host: Spanned<String>,
    port: Option<Spanned<i64>>,
    tls: Option<RelayTls>,
    username: Option<Spanned<String>>,
    password: Option<Spanned<String>>,
    password_env: Option<Spanned<String>>,
    allowed_recipients: Option<Spanned<String>>,
    blocked_recipients: Option<Spanned<String>>,
    override_from: Option<Spanned<String>>,
    timeout: Option<Spanned<i64>>,
    ca_file: Option<Spanned<PathBuf>>,
}

/// A mistake in the file: where, and what.
struct Mistake {
    span: Option<Range<usize>>,
    reason: String,
}

fn at<T>(value: &Spanned<T>, reason: impl Into<String>) -> Mistake {
    Mistake {
        span: Some(value.span()),
        reason: reason.into(),
    }
}

impl RelayConfig {
    /// Reads and checks `file`; an error is one line, `FILE:LINE: reason`.
    pub fn load(file: &Path) -> anyhow::Result<RelayConfig> {
        let text = std::fs::read_to_string(file).map_err(|error| {
            anyhow::anyhow!(
                "cannot read the relay configuration {}: {error}",
                file.display()
            )
        })?;
        let raw: RawConfig = toml::from_str(&text).map_err(|error| {
            located(
                file,
                &text,
                Mistake {
                    span: error.span(),
                    reason: error.message().trim().to_string(),
                },
            )
        })?;
        if raw.password.is_some() {
            warn_if_readable(file);
        }
        RelayConfig::check(file, raw).map_err(|mistake| located(file, &text, mistake))
    }

    fn check(file: &Path, raw: RawConfig) -> Result<RelayConfig, Mistake> {
        let tls = raw.tls.unwrap_or(RelayTls::None);
        let host = raw.host.get_ref().trim();
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(at(&raw.host, "host must be a host name or an IP address"));
        }
        let port = match &raw.port {
            None if tls == RelayTls::Implicit => 465,
            None => 25,
            Some(port) => u16::try_from(*port.get_ref())
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| at(port, "port must be between 1 and 65535"))?,
        };
        let server = HostPort {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
        };
        let timeout = match &raw.timeout {
            None => DEFAULT_TIMEOUT_SECS,
            Some(timeout) => u64::try_from(*timeout.get_ref())
                .ok()
                .filter(|t| (1..=MAX_TIMEOUT_SECS).contains(t))
                .ok_or_else(|| {
                    at(
                        timeout,
                        format!("timeout is in seconds, from 1 to {MAX_TIMEOUT_SECS}"),
                    )
                })?,
        };
        let login = login(&raw)?;
        let allowed = pattern(raw.allowed_recipients.as_ref(), "allowed-recipients")?;
        let blocked = pattern(raw.blocked_recipients.as_ref(), "blocked-recipients")?;
        let override_from = match &raw.override_from {
            None => None,
            Some(from) => Some(address_of(from.get_ref()).ok_or_else(|| {
                at(
                    from,
                    format!("override-from {:?} is not an email address", from.get_ref()),
                )
            })?),
        };
        let tls_config = match (tls, &raw.ca_file) {
            (RelayTls::None, Some(ca)) => {
                return Err(at(ca, "ca-file needs tls = \"starttls\" or \"implicit\""));
            }
            (RelayTls::None, None) => None,
            (_, ca) => {
                let path = ca.as_ref().map(|ca| {
                    let dir = file.parent().unwrap_or(Path::new("."));
                    dir.join(ca.get_ref())
                });
                let config = sokkel_smtp::client::tls::client_config(path.as_deref(), false)
                    .map_err(|error| Mistake {
                        span: ca.as_ref().map(Spanned::span),
                        reason: error.to_string(),
                    })?;
                Some(config)
            }
        };
        Ok(RelayConfig {
            server,
            tls,
            tls_config,
            login,
            allowed,
            blocked,
            override_from,
            timeout: Duration::from_secs(timeout),
        })
    }

    /// The `allowed-recipients` and `blocked-recipients` patterns, as written.
    pub fn patterns(&self) -> (Option<&str>, Option<&str>) {
        (
            self.allowed.as_ref().map(Regex::as_str),
            self.blocked.as_ref().map(Regex::as_str),
        )
    }

    /// Whether the policy lets a message go to `address`: not matched by
    /// `blocked-recipients`, and matched by `allowed-recipients` if there is
    /// one. Blocked wins.
    pub fn allows(&self, address: &str) -> bool {
        if self.blocked.as_ref().is_some_and(|re| re.is_match(address)) {
            return false;
        }
        self.allowed.as_ref().is_none_or(|re| re.is_match(address))
    }
}

/// `username` with `password` or `password-env`, or none of them.
fn login(raw: &RawConfig) -> Result<Option<RelayLogin>, Mistake> {
    let password = match (&raw.password, &raw.password_env) {
        (Some(_), Some(env)) => {
            return Err(at(env, "give password or password-env, not both"));
        }
        (Some(password), None) => Some((password.get_ref().clone(), password.span())),
        (None, Some(env)) => {
            let name = env.get_ref();
            match std::env::var(name) {
                Ok(value) if !value.is_empty() => Some((value, env.span())),
                Ok(_) => {
                    return Err(at(
                        env,
                        format!("password-env names {name}, which is empty"),
                    ));
                }
                Err(_) => {
                    return Err(at(
                        env,
                        format!("password-env names {name}, which is not set"),
                    ));
                }
            }
        }
        (None, None) => None,
    };
    match (&raw.username, password) {
        (Some(user), Some((password, _))) => {
            if user.get_ref().is_empty() {
                return Err(at(user, "username is empty"));
            }
            Ok(Some(RelayLogin {
                username: user.get_ref().clone(),
                password,
            }))
        }
        (Some(user), None) => Err(at(user, "username needs password or password-env")),
        (None, Some((_, span))) => Err(Mistake {
            span: Some(span),
            reason: "a password needs a username".into(),
        }),
        (None, None) => Ok(None),
    }
}

fn pattern(value: Option<&Spanned<String>>, key: &str) -> Result<Option<Regex>, Mistake> {
    value
        .map(|value| {
            Regex::new(value.get_ref()).map_err(|error| {
                // The regex crate's message spans several lines (the pattern
                // with a caret under the mistake); the last says what is wrong.
                let why = error.to_string();
                let why = why.lines().last().unwrap_or_default().trim();
                at(
                    value,
                    format!("{key} is not a valid regular expression: {why}"),
                )
            })
        })
        .transpose()
}

/// `FILE:LINE: reason`, the line where `mistake` starts (1 when unknown).
fn located(file: &Path, text: &str, mistake: Mistake) -> anyhow::Error {
    let line = mistake.span.map_or(1, |span| {
        let start = span.start.min(text.len());
        text[..start].bytes().filter(|&b| b == b'\n').count() + 1
    });
    anyhow::anyhow!("{}:{line}: {}", file.display(), mistake.reason)
}

/// A password in a file others can read is a password others know.
fn warn_if_readable(file: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(file)
            && meta.permissions().mode() & 0o044 != 0
        {
            tracing::warn!(
                "{} holds a password and other users can read it; `chmod 600` it, or use password-env",
                file.display()
            );
        }
    }
    #[cfg(not(unix))]
    let _ = file;
}

/// The address in `input` (`a@example.com` or `Name <a@example.com>`), as it
/// goes into MAIL FROM or RCPT TO; `None` if it is not one.
pub fn address_of(input: &str) -> Option<String> {
    let input = input.trim();
    let address = match input.rfind('<') {
        Some(open) => input[open + 1..].strip_suffix('>')?,
        None => input,
    };
    let (local, domain) = address.rsplit_once('@')?;
    let plain = |c: char| !c.is_control() && !c.is_whitespace() && !"<>,;\"".contains(c);
    (!local.is_empty()
        && !domain.is_empty()
        && address.len() <= MAX_ADDRESS_BYTES
        && address.chars().all(plain))
    .then(|| address.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<RelayConfig, String> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("relay.toml");
        std::fs::write(&file, text).unwrap();
        RelayConfig::load(&file).map_err(|error| {
            let text = error.to_string();
            let prefix = format!("{}:", file.display());
            text.strip_prefix(&prefix).unwrap_or(&text).to_string()
        })
    }

    #[test]
    fn defaults_and_policy() {
        let config = load(
            "host = \"127.0.0.1\"\nallowed-recipients = \"@example\\\\.com$\"\n\
             blocked-recipients = \"^boss@\"\n",
        )
        .unwrap();
        assert_eq!(config.server.to_string(), "127.0.0.1:25");
        assert_eq!(config.tls, RelayTls::None);
        assert_eq!(config.timeout, Duration::from_secs(DEFAULT_TIMEOUT_SECS));
        assert!(config.allows("dev@example.com"));
        assert!(!config.allows("dev@example.org"));
        assert!(!config.allows("boss@example.com"), "blocked wins");
    }

    #[test]
    fn mistakes_name_the_line() {
        let cases = [
            (
                "host = \"h\"\ncolour = \"red\"\n",
                "2: unknown field `colour`",
            ),
            (
                "host = \"h\"\n\ntls = \"maybe\"\n",
                "3: unknown variant `maybe`",
            ),
            (
                "host = \"h\"\nallowed-recipients = \"(\"\n",
                "2: allowed-recipients is not a valid regular expression",
            ),
            (
                "host = \"h\"\nusername = \"u\"\npassword-env = \"SOKKEL_TEST_NO_SUCH_VAR\"\n",
                "3: password-env names SOKKEL_TEST_NO_SUCH_VAR, which is not set",
            ),
            (
                "host = \"h\"\nport = 70000\n",
                "2: port must be between 1 and 65535",
            ),
            ("host = \"h\"\ntimeout = 0\n", "2: timeout is in seconds"),
            (
                "host = \"h\"\nusername = \"u\"\n",
                "2: username needs password",
            ),
            ("port = 25\n", "1: missing field `host`"),
            (
                "host = \"h\"\noverride-from = \"not an address\"\n",
                "2: override-from",
            ),
        ];
        for (text, want) in cases {
            let error = load(text).expect_err(text);
            assert!(
                error.starts_with(want),
                "{text:?}: {error:?} should start with {want:?}"
            );
            assert!(!error.contains('\n'), "one line: {error:?}");
        }
    }

    #[test]
    fn the_password_is_never_shown() {
        let config = load("host = \"h\"\nusername = \"u\"\npassword = \"hunter2\"\n").unwrap();
        assert!(!format!("{config:?}").contains("hunter2"));
        assert_eq!(config.login.unwrap().password, "hunter2");
    }

    #[test]
    fn addresses() {
        assert_eq!(address_of("a@b.c").as_deref(), Some("a@b.c"));
        assert_eq!(address_of(" Ann <a@b.c> ").as_deref(), Some("a@b.c"));
        for bad in ["", "a", "@b", "a@", "a b@c", "<a@b", "a@b,c@d"] {
            assert_eq!(address_of(bad), None, "{bad:?}");
        }
    }
}
