//! (being written)

use std::path::PathBuf;

/// What the appender thread and the handles share.
pub(super) struct Shared {
    pub(super) dir: PathBuf,
}

/// The handle to the appender thread.
pub(super) struct Appender {}
