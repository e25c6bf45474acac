//! The one error type of this crate.

use std::io;

/// Why [`crate::serve`] could not run. Once it runs, a failing session only ends
/// that session: it is logged, never returned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImapError {
    /// A listener could not be handed to the runtime (it must be a non-blocking,
    /// bound, listening socket, as [`sokkel_net::bind_tcp`] makes them).
    #[error("cannot use the IMAP listener: {0}")]
    Listener(#[source] io::Error),
    /// Implicit-TLS listeners were given without a certificate to present.
    #[error(
        "IMAP over implicit TLS (--imaps) needs a certificate: give --tls-cert and --tls-key, or --tls-self-signed"
    )]
    NoCertificate,
}
