//! One future for "the user asked us to stop".

use std::future::Future;

/// Watches for Ctrl-C (SIGINT) and, on Unix, SIGTERM, and returns a future that
/// completes when either arrives.
///
/// The handlers are installed when this is called, not when the future is first
/// polled: call it before announcing that the server is up, so a supervisor that
/// stops the server right after the announcement gets a clean shutdown, not the
/// default action of the signal. Must be called inside a tokio runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let interrupt = signal(SignalKind::interrupt());
        async move {
            match (term, interrupt) {
                (Ok(mut term), Ok(mut interrupt)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = interrupt.recv() => {}
                    }
                }
                (term, interrupt) => {
                    let err = term.err().or(interrupt.err());
                    tracing::warn!(
                        ?err,
                        "cannot watch SIGTERM or SIGINT; falling back to Ctrl-C only"
                    );
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
