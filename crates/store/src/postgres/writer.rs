//! Group commit on PostgreSQL: the deliveries that arrive while a commit is
//! under way go into the next one, one transaction and one round trip of
//! commits for the batch (`synchronous_commit` on: the 250 means committed).
//! STUB: the pg-messages helper builds this.

use std::sync::Arc;

use super::Shared;
use super::index::Indexer;
use crate::mime::Digest;
use crate::store::WriterStats;
use crate::tags::TagName;
use crate::{MessageId, NewMessage, StoreError};

pub(crate) struct Writer {
    _shared: Arc<Shared>,
    _indexer: Indexer,
}

impl Writer {
    pub(super) fn spawn(shared: Arc<Shared>, indexer: Indexer) -> Writer {
        Writer {
            _shared: shared,
            _indexer: indexer,
        }
    }

    pub(super) async fn submit(
        &self,
        _message: NewMessage,
        _digest: Digest,
        _tags: Vec<TagName>,
    ) -> Result<MessageId, StoreError> {
        Err(StoreError::unavailable("not built yet"))
    }

    pub(super) fn stats(&self) -> WriterStats {
        WriterStats::default()
    }
}
