//! The one error type of this crate.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::connect::ConnectAttempt;

/// What can go wrong while parsing, resolving, binding or connecting.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The text is not a `host:port` address.
    #[error("invalid address {input:?}: {reason}")]
    InvalidAddress {
        /// What the user typed.
        input: String,
        /// Why it was refused, phrased as advice.
        reason: String,
    },
    /// The resolver failed for this host name.
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        /// The host name that was looked up.
        host: String,
        /// The resolver's error.
        #[source]
        source: io::Error,
    },
    /// The resolver answered, but with no address.
    #[error("{host} resolves to no address")]
    NoAddress {
        /// The host name that was looked up.
        host: String,
    },
    /// Binding a listening socket failed.
    #[error("cannot listen on {addr}: {}", describe_bind_error(.source))]
    Bind {
        /// The address we tried to bind.
        addr: SocketAddr,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// No address of the target accepted a connection; each attempt is listed.
    #[error("cannot connect to {target}: {}", describe_attempts(.attempts))]
    Connect {
        /// The target as the user gave it.
        target: String,
        /// Every address tried, in order, with why it failed.
        attempts: Vec<ConnectAttempt>,
    },
    /// A certificate or key could not be loaded or made.
    #[error("cannot use {what}: {reason}")]
    Tls {
        /// Which file (or pair of files) it was about.
        what: String,
        /// What is wrong, phrased for the user.
        reason: String,
    },
    /// The file of users and passwords could not be read or is malformed.
    #[error("cannot use {} as auth file: {reason}", .path.display())]
    AuthFile {
        /// The file given.
        path: PathBuf,
        /// What is wrong; names the line where that helps.
        reason: String,
    },
}

fn describe_bind_error(err: &io::Error) -> String {
    match err.kind() {
        io::ErrorKind::AddrInUse => "the address is already in use by another socket".into(),
        io::ErrorKind::PermissionDenied => {
            "permission denied (ports below 1024 need privileges)".into()
        }
        io::ErrorKind::AddrNotAvailable => "no interface of this machine has that address".into(),
        _ => err.to_string(),
    }
}

fn describe_attempts(attempts: &[ConnectAttempt]) -> String {
    attempts
        .iter()
        .map(|a| format!("{} {}", a.addr, a.describe()))
        .collect::<Vec<_>>()
        .join("; ")
}
