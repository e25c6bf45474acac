//! Tags on PostgreSQL.
//! STUB: the pg-search helper builds this.

use super::PgStore;
use crate::sqlite::TagEdit;
use crate::tags::TagName;
use crate::{ListQuery, MessageId, StoreError, Summary};

fn todo_pg<T>() -> Result<T, StoreError> {
    Err(StoreError::unavailable("not built yet"))
}

impl PgStore {
    pub(crate) fn tags(&self) -> Result<Vec<(String, u64)>, StoreError> {
        todo_pg()
    }

    pub(crate) fn tag_names(&self) -> Result<Vec<String>, StoreError> {
        todo_pg()
    }

    pub(crate) fn list_tagged(
        &self,
        _tag: &TagName,
        _page: &ListQuery,
    ) -> Result<Vec<Summary>, StoreError> {
        todo_pg()
    }

    pub(crate) fn change_tags(
        &self,
        _ids: &[MessageId],
        _tags: &[TagName],
        _edit: TagEdit,
    ) -> Result<u64, StoreError> {
        todo_pg()
    }

    pub(crate) fn rename_tag(
        &self,
        _from: &TagName,
        _to: &TagName,
    ) -> Result<Option<u64>, StoreError> {
        todo_pg()
    }

    pub(crate) fn delete_tag(&self, _name: &TagName) -> Result<Option<u64>, StoreError> {
        todo_pg()
    }
}
