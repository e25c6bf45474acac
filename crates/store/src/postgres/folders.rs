//! IMAP's view on PostgreSQL: the INBOX, Sent and a folder per tag, each with
//! its own UIDs; maildrops for POP3; modseqs for CONDSTORE.
//! STUB: the pg-folders helper builds this.

use std::time::SystemTime;

use super::PgStore;
use crate::tags::TagName;
use crate::{FlagEdit, Flags, Folder, FolderMessage, MessageId, StoreError};

fn todo_pg<T>() -> Result<T, StoreError> {
    Err(StoreError::unavailable("not built yet"))
}

impl PgStore {
    pub(crate) fn maildrop(
        &self,
        _recipient: Option<&str>,
    ) -> Result<Vec<(MessageId, u64)>, StoreError> {
        todo_pg()
    }

    pub(crate) fn changed_since(&self, _modseq: u64) -> Result<Vec<(MessageId, u64)>, StoreError> {
        todo_pg()
    }

    pub(crate) fn highest_modseq(&self) -> Result<u64, StoreError> {
        todo_pg()
    }

    pub(crate) fn uid_validity(&self) -> Result<u32, StoreError> {
        todo_pg()
    }

    pub(crate) fn folder_validity(&self, _folder: &Folder) -> Result<u32, StoreError> {
        todo_pg()
    }

    pub(crate) fn folder_names(&self) -> Result<Vec<String>, StoreError> {
        todo_pg()
    }

    pub(crate) fn folder_messages(
        &self,
        _folder: &Folder,
    ) -> Result<Option<(Vec<FolderMessage>, u32)>, StoreError> {
        todo_pg()
    }

    #[allow(clippy::type_complexity)]
    pub(crate) fn folder_changes(
        &self,
        _folder: &Folder,
        _since: u64,
    ) -> Result<Option<Option<(usize, u32, Vec<FolderMessage>)>>, StoreError> {
        todo_pg()
    }

    pub(crate) fn folder_raw(
        &self,
        _folder: &Folder,
        _id: MessageId,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        todo_pg()
    }

    pub(crate) fn set_folder_flags(
        &self,
        _folder: &Folder,
        _ids: &[MessageId],
        _edit: &FlagEdit,
    ) -> Result<(), StoreError> {
        todo_pg()
    }

    pub(crate) fn append_to_folder(
        &self,
        _folder: &Folder,
        _raw: Vec<u8>,
        _flags: &Flags,
        _received_at: SystemTime,
    ) -> Result<u32, StoreError> {
        todo_pg()
    }

    pub(crate) fn copy_to_folder(
        &self,
        _from: &Folder,
        _ids: &[MessageId],
        _to: &Folder,
    ) -> Result<Vec<u32>, StoreError> {
        todo_pg()
    }

    pub(crate) fn expunge_from_folder(
        &self,
        _folder: &Folder,
        _ids: &[MessageId],
    ) -> Result<(), StoreError> {
        todo_pg()
    }

    pub(crate) fn create_folder(&self, _name: &TagName) -> Result<bool, StoreError> {
        todo_pg()
    }

    pub(crate) fn delete_folder(&self, _name: &TagName) -> Result<bool, StoreError> {
        todo_pg()
    }

    pub(crate) fn rename_folder(&self, _from: &TagName, _to: &TagName) -> Result<bool, StoreError> {
        todo_pg()
    }
}
