//! Where a PostgreSQL store lives and how to log in: the connection string a
//! user gives (`--db postgres://...`), completed the way libpq completes it
//! (`PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE`; the password from
//! `PGPASSWORD` or a password file), and the TLS it asks for.
//!
//! A password in the connection string itself is refused: the string is an
//! argument or an environment variable that other users of the machine can
//! read (`ps`, `/proc`), and it is shown in logs. The password file is read
//! as libpq reads it: `passfile=` in the string, else `PGPASSFILE`, else
//! `~/.pgpass`; lines `host:port:database:user:password` with `*` for any
//! and `\` escaping `:` and `\`; ignored (with a warning) when others may read it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use tokio_postgres::config::{Host, SslMode};

/// Why a connection string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PgConfigError {
    /// The string did not parse (the text says what was wrong with it).
    #[error("the PostgreSQL connection string is not valid: {0}")]
    Invalid(String),
    /// The string carries a password.
    #[error(
        "the PostgreSQL connection string holds a password; leave it out and put it in PGPASSWORD or ~/.pgpass (or a file named by passfile=)"
    )]
    PasswordInString,
    /// `sslmode` asked for something this build does not do.
    #[error(
        "sslmode={0} is not supported; use disable, prefer, require, verify-ca or verify-full (every TLS connection verifies the server's certificate)"
    )]
    SslMode(String),
}

/// A parsed `postgres://` (or `key=value`) connection string, completed from
/// the environment. `Display` shows it without secrets, for logs.
#[derive(Clone)]
pub struct PgConfig {
    pub(crate) config: tokio_postgres::Config,
    /// Extra roots for the server's certificate (`sslrootcert=FILE`).
    pub(crate) root_cert: Option<PathBuf>,
    /// Whether TLS is used at all (`sslmode` other than `disable`).
    pub(crate) tls: bool,
}

impl fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PgConfig").field(&self.to_string()).finish()
    }
}

impl fmt::Display for PgConfig {
    /// `postgres://user@host:port/database`: never the password, never the
    /// rest of the query.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let user = self.config.get_user().unwrap_or("");
        let host = match self.config.get_hosts().first() {
            Some(Host::Tcp(host)) => host.clone(),
            Some(Host::Unix(path)) => path.display().to_string(),
            None => String::new(),
        };
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        let db = self.config.get_dbname().unwrap_or(user);
        write!(f, "postgres://{user}@{host}:{port}/{db}")
    }
}

/// Whether `text` names a PostgreSQL store rather than a file.
pub fn is_postgres(text: &str) -> bool {
    text.starts_with("postgres://") || text.starts_with("postgresql://")
}

impl FromStr for PgConfig {
    type Err = PgConfigError;

    fn from_str(text: &str) -> Result<PgConfig, PgConfigError> {
        PgConfig::parse_with(text, &|name| std::env::var(name).ok())
    }
}

/// The query parameters sokkel reads itself; tokio-postgres does not know them.
const OWN_PARAMS: [&str; 3] = ["passfile", "sslrootcert", "sslmode"];

impl PgConfig {
    /// Parse `text`, reading `PG*` variables through `env`.
    pub(crate) fn parse_with(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<PgConfig, PgConfigError> {
        let (rest, own) = split_own_params(text);
        let mut config = tokio_postgres::Config::from_str(&rest)
            .map_err(|error| PgConfigError::Invalid(error.to_string()))?;
        if config.get_password().is_some() {
            return Err(PgConfigError::PasswordInString);
        }
        let own_param = |name: &str| {
            own.iter()
                .rev()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        };
        if config.get_hosts().is_empty() {
            match env("PGHOST") {
                Some(host) if host.starts_with('/') => config.host_path(host),
                Some(host) => config.host(&host),
                None if Path::new("/var/run/postgresql").is_dir() => {
                    config.host_path("/var/run/postgresql")
                }
                None => config.host("localhost"),
            };
        }
        if config.get_ports().is_empty()
            && let Some(port) = env("PGPORT").and_then(|port| port.parse().ok())
        {
            config.port(port);
        }
        if config.get_user().is_none() {
            let user = env("PGUSER")
                .or_else(|| env("USER"))
                .unwrap_or_else(|| "postgres".into());
            config.user(&user);
        }
        if config.get_dbname().is_none()
            && let Some(db) = env("PGDATABASE")
        {
            config.dbname(&db);
        }
        let local = config.get_hosts().iter().all(|host| match host {
            Host::Unix(_) => true,
            Host::Tcp(name) => {
                name == "localhost"
                    || name
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            }
        });
        // Without sslmode: in clear over a Unix socket or loopback, verified
        // TLS to anything else (libpq's "prefer" would fall back to clear text
        // on a network without saying so).
        let mode = own_param("sslmode")
            .or_else(|| env("PGSSLMODE"))
            .unwrap_or_else(|| if local { "disable" } else { "require" }.into());
        let tls = match mode.as_str() {
            "disable" => false,
            "prefer" | "allow" => {
                config.ssl_mode(SslMode::Prefer);
                true
            }
            "require" | "verify-ca" | "verify-full" => {
                config.ssl_mode(SslMode::Require);
                true
            }
            other => return Err(PgConfigError::SslMode(other.into())),
        };
        if !tls {
            config.ssl_mode(SslMode::Disable);
        }
        let root_cert = own_param("sslrootcert")
            .or_else(|| env("PGSSLROOTCERT"))
            .map(PathBuf::from);
        let password = env("PGPASSWORD").or_else(|| {
            let file = own_param("passfile")
                .or_else(|| env("PGPASSFILE"))
                .map(PathBuf::from)
                .or_else(|| env("HOME").map(|home| Path::new(&home).join(".pgpass")))?;
            password_from_file(&file, &config)
        });
        if let Some(password) = password {
            config.password(password);
        }
        config.application_name("sokkel");
        Ok(PgConfig {
            config,
            root_cert,
            tls,
        })
    }

    /// The TLS connector for this configuration: the system's roots plus
    /// `sslrootcert`, through rustls.
    pub(crate) fn tls_connector(
        &self,
    ) -> Result<tokio_postgres_rustls::MakeRustlsConnect, crate::StoreError> {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
        if let Some(path) = &self.root_cert {
            let pem = std::fs::read(path)
                .map_err(|error| crate::StoreError::io("reading sslrootcert", path, error))?;
            let mut added = 0;
            for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
                let cert: rustls::pki_types::CertificateDer<'static> = cert.map_err(|error| {
                    crate::StoreError::io(
                        "reading sslrootcert",
                        path,
                        std::io::Error::new(std::io::ErrorKind::InvalidData, error.to_string()),
                    )
                })?;
                if roots.add(cert).is_ok() {
                    added += 1;
                }
            }
            if added == 0 {
                return Err(crate::StoreError::io(
                    "reading sslrootcert",
                    path,
                    std::io::Error::new(std::io::ErrorKind::InvalidData, "no certificate in it"),
                ));
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| {
                crate::StoreError::io(
                    "setting up TLS for",
                    PathBuf::from(self.to_string()),
                    std::io::Error::other(error),
                )
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
    }
}

/// Take sokkel's own parameters out of a URL's query or a `key=value` string.
fn split_own_params(text: &str) -> (String, Vec<(String, String)>) {
    let mut own = Vec::new();
    if is_postgres(text) {
        let Some((base, query)) = text.split_once('?') else {
            return (text.to_string(), own);
        };
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if OWN_PARAMS.contains(&key) {
                own.push((key.to_string(), percent_decode(value)));
            } else {
                kept.push(pair);
            }
        }
        let rest = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        (rest, own)
    } else {
        let mut kept = Vec::new();
        for word in text.split_whitespace() {
            match word.split_once('=') {
                Some((key, value)) if OWN_PARAMS.contains(&key.trim()) => {
                    own.push((key.trim().to_string(), value.trim_matches('\'').to_string()));
                }
                _ => kept.push(word),
            }
        }
        (kept.join(" "), own)
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(byte) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The password for `config` from a libpq password file, if it has one.
fn password_from_file(path: &Path, config: &tokio_postgres::Config) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                file = %path.display(),
                "ignoring the password file: others may read it; chmod 0600 it"
            );
            return None;
        }
    }
    let text = std::fs::read_to_string(path).ok()?;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        // libpq matches a socket connection as "localhost".
        Some(Host::Unix(_)) | None => "localhost".to_string(),
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let user = config.get_user().unwrap_or("");
    let db = config.get_dbname().unwrap_or(user);
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let fields = pgpass_fields(line);
            let [h, p, d, u, password] = fields.as_slice() else {
                return None;
            };
            let matches = |field: &str, value: &str| field == "*" || field == value;
            (matches(h, &host) && matches(p, &port) && matches(d, db) && matches(u, user))
                .then(|| password.clone())
        })
}

/// A password file line's fields, with `\:` and `\\` unescaped.
fn pgpass_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    fields.last_mut().expect("one field").push(next);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut().expect("one field").push(c),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, vars: &[(&str, &str)]) -> Result<PgConfig, PgConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        PgConfig::parse_with(text, &|name| {
            vars.iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        })
    }

    #[test]
    fn a_password_in_the_string_is_refused() {
        for text in [
            "postgres://me:secret@db.example/mail",
            "host=db.example user=me password=secret",
        ] {
            assert_eq!(
                parse(text, &[]).unwrap_err(),
                PgConfigError::PasswordInString
            );
        }
    }

    #[test]
    fn shown_without_secrets_or_query() {
        let config = parse(
            "postgres://me@db.example:5433/mail?connect_timeout=5",
            &[("PGPASSWORD", "hunter2")],
        )
        .unwrap();
        assert_eq!(config.to_string(), "postgres://me@db.example:5433/mail");
        assert_eq!(config.config.get_password(), Some(&b"hunter2"[..]));
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn tls_is_on_for_remote_hosts_and_off_for_loopback_by_default() {
        assert!(parse("postgres://me@db.example/mail", &[]).unwrap().tls);
        assert!(!parse("postgres://me@127.0.0.1/mail", &[]).unwrap().tls);
        assert!(
            !parse("postgres://me@db.example/mail?sslmode=disable", &[])
                .unwrap()
                .tls
        );
        assert!(matches!(
            parse("postgres://me@db.example/mail?sslmode=bogus", &[]),
            Err(PgConfigError::SslMode(_))
        ));
    }

    #[test]
    fn the_password_file_is_read_like_libpq() {
        let dir = tempfile::TempDir::new().unwrap();
        let file = dir.path().join("pass");
        std::fs::write(
            &file,
            "# comment\nother:5432:*:*:no\ndb.example:*:mail:me:pa\\:ss\n",
        )
        .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let text = format!("postgres://me@db.example/mail?passfile={}", file.display());
        let config = parse(&text, &[]).unwrap();
        assert_eq!(config.config.get_password(), Some(&b"pa:ss"[..]));
        // PGPASSWORD wins, as in libpq.
        let config = parse(&text, &[("PGPASSWORD", "env")]).unwrap();
        assert_eq!(config.config.get_password(), Some(&b"env"[..]));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
            let config = parse(&text, &[]).unwrap();
            assert_eq!(config.config.get_password(), None);
        }
    }
}
