//! Messages: deliver, list, get, raw bytes, delete, flags, counts, import.
//! STUB: the pg-messages helper builds this.

use tokio::sync::broadcast;

use super::PgStore;
use crate::store::{FlagChange, MessageCounts, RuntimeStats, StoreEvent, WriterStats};
use crate::{ListQuery, MessageId, NewMessage, StoreError, StoredMessage, Summary};

fn todo_pg<T>() -> Result<T, StoreError> {
    Err(StoreError::unavailable("not built yet"))
}

impl PgStore {
    pub(crate) fn size_on_disk(&self) -> u64 {
        0
    }

    pub(crate) async fn deliver(&self, _message: NewMessage) -> Result<MessageId, StoreError> {
        todo_pg()
    }

    pub(crate) fn list(&self, _query: &ListQuery) -> Result<Vec<Summary>, StoreError> {
        todo_pg()
    }

    pub(crate) fn count(&self) -> Result<MessageCounts, StoreError> {
        todo_pg()
    }

    pub(crate) fn get(&self, _id: MessageId) -> Result<Option<StoredMessage>, StoreError> {
        todo_pg()
    }

    pub(crate) fn latest(&self) -> Result<Option<MessageId>, StoreError> {
        todo_pg()
    }

    pub(crate) fn raw(&self, _id: MessageId) -> Result<Option<Vec<u8>>, StoreError> {
        todo_pg()
    }

    pub(crate) fn raw_len(&self, _id: MessageId) -> Result<Option<u64>, StoreError> {
        todo_pg()
    }

    pub(crate) fn raw_chunk(
        &self,
        _id: MessageId,
        _offset: u64,
        _max: usize,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        todo_pg()
    }

    pub(crate) fn delete(&self, _ids: &[MessageId]) -> Result<u64, StoreError> {
        todo_pg()
    }

    pub(crate) fn delete_all(&self) -> Result<u64, StoreError> {
        todo_pg()
    }

    pub(crate) fn set_flags(
        &self,
        _ids: &[MessageId],
        _change: FlagChange,
    ) -> Result<u64, StoreError> {
        todo_pg()
    }

    pub(crate) fn runtime_stats(&self) -> RuntimeStats {
        RuntimeStats::default()
    }

    pub(crate) fn writer_stats(&self) -> WriterStats {
        self.inner.writer.stats()
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        let _ = &self.inner.listener;
        self.inner.shared.events.subscribe()
    }

    pub(crate) fn import(&self, _messages: Vec<NewMessage>) -> Result<Vec<MessageId>, StoreError> {
        todo_pg()
    }
}
