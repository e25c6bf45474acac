//! Search on PostgreSQL: a parsed [`crate::SearchQuery`] as SQL over
//! `messages` and its `search` tsvector.
//! STUB: the pg-search helper builds this.

use super::PgStore;
use crate::{ListQuery, MessageId, SearchPage, SearchQuery, StoreError};

fn todo_pg<T>() -> Result<T, StoreError> {
    Err(StoreError::unavailable("not built yet"))
}

impl PgStore {
    pub(crate) fn search(
        &self,
        _query: &SearchQuery,
        _page: &ListQuery,
    ) -> Result<SearchPage, StoreError> {
        todo_pg()
    }

    pub(crate) fn delete_matching(&self, _query: &SearchQuery) -> Result<u64, StoreError> {
        todo_pg()
    }

    pub(crate) fn matches(
        &self,
        _id: MessageId,
        _query: &SearchQuery,
    ) -> Result<Option<bool>, StoreError> {
        todo_pg()
    }
}
