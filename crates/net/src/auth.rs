//! Who may log in: the credentials SMTP AUTH and POP3 check, and the SASL PLAIN
//! encoding both protocols use.
//!
//! A catcher either accepts any login (`--auth-accept-any`: applications that insist
//! on logging in, tests that do not care) or checks a file of `user:password` lines
//! (`--auth-file`), where the password may be written in clear or as a bcrypt
//! (`$2b$...`) or Argon2 (`$argon2id$...`) hash.
//!
//! A user name that is not in the file costs a hash all the same (against a
//! dummy of the file's strongest kind), so the time a wrong login takes does not
//! tell which names exist.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::NetError;

/// The logins a server accepts. Cheap to clone.
#[derive(Clone)]
pub struct Credentials {
    inner: Arc<Accepted>,
}

enum Accepted {
    Any,
    Users {
        users: HashMap<String, Secret>,
        /// What an unknown user's password is checked against: a hash of a
        /// random password, made like the file's costliest one.
        dummy: Secret,
    },
}

/// One user's password as the file gives it.
enum Secret {
    Clear(String),
    Bcrypt(String),
    Argon2(String),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the passwords, not even hashed.
        match &*self.inner {
            Accepted::Any => f.write_str("Credentials(any)"),
            Accepted::Users { users, .. } => write!(f, "Credentials({} users)", users.len()),
        }
    }
}

impl Credentials {
    /// Accept every user name with every password.
    pub fn accept_any() -> Credentials {
        Credentials {
            inner: Arc::new(Accepted::Any),
        }
    }

    /// Read `user:password` lines (blank lines and lines starting with `#` are
    /// skipped; the password is everything after the first colon). A password
    /// starting with `$2a$`, `$2b$` or `$2y$` is a bcrypt hash, one starting with
    /// `$argon2` an Argon2 PHC string; anything else is the password itself.
    pub fn from_file(path: &Path) -> Result<Credentials, NetError> {
        let failed = |reason: String| NetError::AuthFile {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            failed(match e.kind() {
                std::io::ErrorKind::NotFound => "no such file".into(),
                std::io::ErrorKind::InvalidData => "it is not UTF-8 text".into(),
                _ => e.to_string(),
            })
        })?;
        Credentials::parse(&text).map_err(failed)
    }

    /// [`Credentials::from_file`] on text already read.
    pub fn parse(text: &str) -> Result<Credentials, String> {
        let mut users = HashMap::new();
        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let Some((user, password)) = line.split_once(':') else {
                return Err(format!("line {number} is not user:password"));
            };
            if user.is_empty() {
                return Err(format!("line {number} has an empty user name"));
            }
            if password.is_empty() {
                return Err(format!("line {number} (user {user}) has an empty password"));
            }
            let secret = if ["$2a$", "$2b$", "$2x$", "$2y$"]
                .iter()
                .any(|p| password.starts_with(p))
            {
                // A bcrypt hash is always 60 characters: prefix, cost, salt, hash.
                if password.len() != 60 || password.parse::<bcrypt::HashParts>().is_err() {
                    return Err(format!(
                        "line {number} (user {user}): bad bcrypt hash (expected 60 characters like $2b$12$...)"
                    ));
                }
                Secret::Bcrypt(password.to_string())
            } else if password.starts_with("$argon2") {
                let parsed = argon2::PasswordHash::new(password)
                    .map_err(|e| format!("line {number} (user {user}): bad Argon2 hash: {e}"))?;
                if parsed.salt.is_none() || parsed.hash.is_none() {
                    return Err(format!(
                        "line {number} (user {user}): bad Argon2 hash: it lacks the salt or the hash"
                    ));
                }
                Secret::Argon2(password.to_string())
            } else {
                Secret::Clear(password.to_string())
            };
            if users.insert(user.to_string(), secret).is_some() {
                return Err(format!("line {number} repeats user {user}"));
            }
        }
        if users.is_empty() {
            return Err("it lists no user (expected lines of user:password)".into());
        }
        let dummy = dummy_like(users.values());
        Ok(Credentials {
            inner: Arc::new(Accepted::Users { users, dummy }),
        })
    }

    /// Whether every login is accepted.
    pub fn accepts_any(&self) -> bool {
        matches!(*self.inner, Accepted::Any)
    }

    /// [`Credentials::verify`] on tokio's blocking pool, for the server shells:
    /// a slow hash must not hold up an async worker. A check that panicked is a
    /// wrong login.
    pub async fn verify_off_thread(&self, user: String, password: String) -> bool {
        let credentials = self.clone();
        tokio::task::spawn_blocking(move || credentials.verify(&user, &password))
            .await
            .unwrap_or(false)
    }

    /// Whether `password` is right for `user`. Blocking: bcrypt and Argon2 are slow
    /// on purpose, so async callers use [`Credentials::verify_off_thread`]. An
    /// unknown user costs as much as the costliest known one.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        let Some((secret, known)) = self.secret_for(user) else {
            return true;
        };
        // An unknown user's check is for the time it takes: its answer is no
        // whatever the dummy says.
        std::hint::black_box(secret.matches(password)) && known
    }

    /// What `user`'s password is checked against (the dummy for an unknown
    /// user), and whether the user exists; `None` when any login is accepted.
    fn secret_for(&self, user: &str) -> Option<(&Secret, bool)> {
        match &*self.inner {
            Accepted::Any => None,
            Accepted::Users { users, dummy } => Some(match users.get(user) {
                Some(secret) => (secret, true),
                None => (dummy, false),
            }),
        }
    }
}

impl Secret {
    /// Whether `password` is this one.
    fn matches(&self, password: &str) -> bool {
        match self {
            Secret::Clear(expected) => same_bytes(expected.as_bytes(), password.as_bytes()),
            Secret::Bcrypt(hash) => bcrypt::verify(password, hash).unwrap_or(false),
            Secret::Argon2(hash) => {
                use argon2::PasswordVerifier;
                argon2::PasswordHash::new(hash).is_ok_and(|parsed| {
                    argon2::Argon2::default()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok()
                })
            }
        }
    }

    /// How costly a check against it is, to pick the costliest kind: Argon2
    /// above bcrypt above clear text, and within a kind by its cost parameters.
    fn cost(&self) -> (u8, u64) {
        match self {
            Secret::Clear(_) => (0, 0),
            Secret::Bcrypt(hash) => (
                1,
                hash.parse::<bcrypt::HashParts>()
                    .map_or(0, |parts| u64::from(parts.get_cost())),
            ),
            Secret::Argon2(hash) => (
                2,
                argon2::PasswordHash::new(hash)
                    .ok()
                    .and_then(|parsed| argon2::Params::try_from(&parsed).ok())
                    .map_or(0, |params| {
                        u64::from(params.m_cost()) * u64::from(params.t_cost())
                    }),
            ),
        }
    }
}

/// A secret of the costliest kind among `secrets`, with its cost parameters, for
/// a random password nobody knows.
fn dummy_like<'a>(secrets: impl Iterator<Item = &'a Secret>) -> Secret {
    let mut random = [0u8; 32];
    // Failing randomness leaves zeros: the dummy is never a reason to let in.
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random);
    let password = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&random[..16]);
    let salt: [u8; 16] = random[16..].try_into().expect("16 bytes");
    let Some(template) = secrets.max_by_key(|secret| secret.cost()) else {
        return Secret::Clear(password);
    };
    match template {
        Secret::Clear(_) => Secret::Clear(password),
        Secret::Bcrypt(hash) => hash
            .parse::<bcrypt::HashParts>()
            .and_then(|parts| bcrypt::hash_with_salt(&password, parts.get_cost(), salt))
            .map(|parts| Secret::Bcrypt(parts.to_string()))
            // Checked at parse time, so this cannot fail; if it did, the user's
            // own hash costs the same (and an unknown user is refused anyway).
            .unwrap_or_else(|_| Secret::Bcrypt(hash.clone())),
        Secret::Argon2(hash) => argon2_like(hash, password.as_bytes(), &salt)
            .map_or_else(|| Secret::Argon2(hash.clone()), Secret::Argon2),
    }
}

/// An Argon2 hash of `password` with the algorithm, version and parameters of
/// `template`.
fn argon2_like(template: &str, password: &[u8], salt: &[u8]) -> Option<String> {
    use argon2::PasswordHasher;
    let parsed = argon2::PasswordHash::new(template).ok()?;
    let params = argon2::Params::try_from(&parsed).ok()?;
    let salt = argon2::password_hash::SaltString::encode_b64(salt).ok()?;
    argon2::Argon2::default()
        .hash_password_customized(
            password,
            Some(parsed.algorithm),
            parsed.version,
            params,
            &salt,
        )
        .ok()
        .map(|hash| hash.to_string())
}

/// Compare without stopping at the first difference, so the time taken does not
/// tell how much of a guess was right.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why a SASL exchange could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The text is not base64.
    #[error("the credentials are not valid base64")]
    Base64,
    /// The decoded text is not UTF-8.
    #[error("the credentials are not UTF-8")]
    Utf8,
    /// The decoded PLAIN message does not have its three NUL-separated fields.
    #[error("the PLAIN credentials need the form authzid NUL user NUL password")]
    PlainFields,
}

/// Decode one base64 SASL line (AUTH LOGIN's user name or password) to text.
pub fn decode_sasl_text(base64: &str) -> Result<String, AuthError> {
    let bytes = STANDARD
        .decode(base64.trim())
        .map_err(|_| AuthError::Base64)?;
    String::from_utf8(bytes).map_err(|_| AuthError::Utf8)
}

/// Decode an RFC 4616 PLAIN message (`authzid NUL authcid NUL passwd`, in base64)
/// to the user name and password. The authorization identity is ignored: a catcher
/// has no one to act on behalf of.
pub fn decode_sasl_plain(base64: &str) -> Result<(String, String), AuthError> {
    let text = decode_sasl_text(base64)?;
    let mut fields = text.split('\0');
    match (fields.next(), fields.next(), fields.next(), fields.next()) {
        (Some(_authzid), Some(user), Some(password), None) if !user.is_empty() => {
            Ok((user.to_string(), password.to_string()))
        }
        _ => Err(AuthError::PlainFields),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_with_clear_bcrypt_and_argon2_passwords() {
        use argon2::PasswordHasher;
        let bcrypt_hash = bcrypt::hash("b-secret", 4).unwrap();
        let salt = argon2::password_hash::SaltString::from_b64("c2FsdHNhbHRzYWx0").unwrap();
        let argon_hash = argon2::Argon2::default()
            .hash_password(b"a:secret", &salt)
            .unwrap()
            .to_string();
        let text =
            format!("# test users\n\nclear@x.test:pa:ss\nbee:{bcrypt_hash}\r\nargo:{argon_hash}\n");
        let creds = Credentials::parse(&text).unwrap();
        assert!(!creds.accepts_any());
        assert!(creds.verify("clear@x.test", "pa:ss"));
        assert!(!creds.verify("clear@x.test", "pa:s"));
        assert!(!creds.verify("clear@x.test", "pa:sss"));
        assert!(creds.verify("bee", "b-secret"));
        assert!(!creds.verify("bee", "b-secreT"));
        assert!(creds.verify("argo", "a:secret"));
        assert!(!creds.verify("argo", "a:secrets"));
        assert!(!creds.verify("nobody", "pa:ss"));
        assert_eq!(format!("{creds:?}"), "Credentials(3 users)");
    }

    /// An unknown user name is checked against a dummy of the costliest kind
    /// in the file (with its cost), so its answer takes as long as a known one's.
    #[test]
    fn unknown_users_cost_a_hash_of_the_strongest_kind() {
        use argon2::PasswordHasher;
        let bcrypt_4 = bcrypt::hash("four", 4).unwrap();
        let bcrypt_5 = bcrypt::hash("five", 5).unwrap();
        let cost = |secret: &Secret| match secret {
            Secret::Bcrypt(hash) => hash.parse::<bcrypt::HashParts>().unwrap().get_cost(),
            _ => panic!("not bcrypt"),
        };

        let creds = Credentials::parse(&format!("a:{bcrypt_4}\nb:{bcrypt_5}\nc:clear\n")).unwrap();
        let (dummy, known) = creds.secret_for("nobody").unwrap();
        assert!(!known);
        assert_eq!(cost(dummy), 5, "the costliest bcrypt hash's cost");
        assert!(!creds.verify("nobody", "five"));
        assert!(creds.verify("b", "five"));
        // Not even the dummy's own password would let an unknown user in: it
        // is random, and the answer is no anyway.
        assert!(!creds.verify("nobody", ""));

        let salt = argon2::password_hash::SaltString::from_b64("c2FsdHNhbHRzYWx0").unwrap();
        let params = argon2::Params::new(8 * 1024, 1, 1, None).unwrap();
        let argon_hash =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
                .hash_password(b"argo", &salt)
                .unwrap()
                .to_string();
        let creds = Credentials::parse(&format!("a:{bcrypt_4}\nz:{argon_hash}\n")).unwrap();
        let (dummy, known) = creds.secret_for("nobody").unwrap();
        assert!(!known);
        let Secret::Argon2(dummy) = dummy else {
            panic!("the dummy is not Argon2 when the file has an Argon2 hash");
        };
        assert_ne!(dummy, &argon_hash, "a hash of its own");
        let parsed = argon2::PasswordHash::new(dummy).unwrap();
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        assert_eq!(
            argon2::Params::try_from(&parsed).unwrap().m_cost(),
            8 * 1024
        );
        assert!(!creds.verify("nobody", "argo"));
        assert!(creds.verify("z", "argo"));

        let clear = Credentials::parse("a:1\n").unwrap();
        assert!(matches!(
            clear.secret_for("b"),
            Some((Secret::Clear(_), false))
        ));
        assert!(!clear.verify("b", "1"));
        assert!(Credentials::accept_any().secret_for("b").is_none());
    }

    #[test]
    fn bad_files_say_which_line() {
        let cases = [
            ("alice\n", "line 1 is not user:password"),
            ("a:1\n:2\n", "line 2 has an empty user name"),
            ("a:\n", "line 1 (user a) has an empty password"),
            ("a:1\na:2\n", "line 2 repeats user a"),
            (
                "# only a comment\n",
                "it lists no user (expected lines of user:password)",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(
                Credentials::parse(text).err().as_deref(),
                Some(want),
                "{text:?}"
            );
        }
        let err = Credentials::parse("a:$2b$10$tooshort\n").err().unwrap();
        assert!(err.starts_with("line 1 (user a): bad bcrypt hash"), "{err}");
        let err = Credentials::parse("a:$argon2id$nonsense\n").err().unwrap();
        assert!(err.starts_with("line 1 (user a): bad Argon2 hash"), "{err}");
    }

    #[test]
    fn missing_file_is_one_line() {
        let err = Credentials::from_file(Path::new("/nonexistent/users")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot use /nonexistent/users as auth file: no such file"
        );
    }

    #[test]
    fn accept_any_accepts_anything() {
        let any = Credentials::accept_any();
        assert!(any.accepts_any());
        assert!(any.verify("", ""));
    }

    #[test]
    fn sasl_plain() {
        let encode = |s: &str| STANDARD.encode(s);
        assert_eq!(
            decode_sasl_plain(&encode("\0user\0pass word")),
            Ok(("user".into(), "pass word".into()))
        );
        assert_eq!(
            decode_sasl_plain(&encode("admin\0user\0pw")),
            Ok(("user".into(), "pw".into()))
        );
        assert_eq!(
            decode_sasl_plain(&encode("user\0pw")),
            Err(AuthError::PlainFields)
        );
        assert_eq!(
            decode_sasl_plain(&encode("\0\0pw")),
            Err(AuthError::PlainFields)
        );
        assert_eq!(
            decode_sasl_plain(&encode("a\0b\0c\0d")),
            Err(AuthError::PlainFields)
        );
        assert_eq!(decode_sasl_plain("not base64!"), Err(AuthError::Base64));
        assert_eq!(
            decode_sasl_text(&STANDARD.encode([0xff, 0xfe])),
            Err(AuthError::Utf8)
        );
        assert_eq!(decode_sasl_text(" dXNlcg== "), Ok("user".into()));
    }
}
