//! The tokio runtimes the commands run on.

use anyhow::Context;

/// A runtime on the current thread for work that is one conversation at a time.
pub fn single_thread_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// A runtime with `threads` workers; one means everything runs on this thread.
pub fn runtime(threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    if threads <= 1 {
        return single_thread_runtime();
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}
