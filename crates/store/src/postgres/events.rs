//! LISTEN/NOTIFY: every node announces every node's changes to its
//! subscribers as if they had happened locally.
//! STUB: the pg-messages helper builds this.

/// The task that listens on [`super::CHANNEL`] for this handle's subscribers.
pub(crate) struct Listener;
