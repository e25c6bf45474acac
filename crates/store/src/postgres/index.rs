//! The search index on PostgreSQL: words split in Rust, as the SQLite index
//! splits them, stored as a tsvector.
//! STUB: the pg-search helper builds this.

use std::sync::Arc;

use super::Shared;
use crate::mime::Digest;
use crate::{MessageId, NewMessage, StoreError};

/// What the index gets of one message, made by the node that parsed it.
#[derive(Debug, Clone, Default)]
pub(crate) struct IndexEntry;

impl IndexEntry {
    pub(crate) fn new(_message: &NewMessage, _digest: &Digest) -> IndexEntry {
        IndexEntry
    }
}

/// This node's indexing task: indexes what this node's writer committed
/// (right after each commit, from memory) and, while it holds
/// [`super::locks::INDEXER`], what other nodes left unindexed.
#[derive(Clone)]
pub(crate) struct Indexer {
    _shared: Arc<Shared>,
}

impl Indexer {
    pub(crate) fn spawn(shared: Arc<Shared>) -> Indexer {
        Indexer { _shared: shared }
    }

    /// Queue committed messages for indexing; never waits (what does not fit
    /// is left in `unindexed` for the cluster's indexer).
    pub(crate) fn queue(&self, _entries: Vec<(MessageId, IndexEntry)>) {}
}

/// Index message `id` inside the caller's transaction (imports, APPEND).
pub(crate) async fn index_now(
    _tx: &impl deadpool_postgres::GenericClient,
    _id: MessageId,
    _entry: &IndexEntry,
) -> Result<(), StoreError> {
    Ok(())
}
