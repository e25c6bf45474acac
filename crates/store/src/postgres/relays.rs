//! Relay attempts on PostgreSQL.
//! STUB: the pg-folders helper builds this.

use super::PgStore;
use crate::relay::RelayAttempt;
use crate::{MessageId, StoreError};

fn todo_pg<T>() -> Result<T, StoreError> {
    Err(StoreError::unavailable("not built yet"))
}

impl PgStore {
    pub(crate) fn record_relay(
        &self,
        _id: MessageId,
        _attempt: &RelayAttempt,
    ) -> Result<bool, StoreError> {
        todo_pg()
    }

    pub(crate) fn relay_attempts(&self, _id: MessageId) -> Result<Vec<RelayAttempt>, StoreError> {
        todo_pg()
    }
}
