//! IMAP's view on PostgreSQL: the INBOX, Sent and a folder per tag, each with
//! its own UIDs; maildrops for POP3; modseqs for CONDSTORE.
//! STUB but for the tag helpers, which `tags.rs` shares: the pg-folders
//! helper builds the rest.

use std::time::SystemTime;

use deadpool_postgres::GenericClient;

use super::queries::to_i64;
use super::{PgStore, ids_of};
use crate::tags::TagName;
use crate::{FlagEdit, Flags, Folder, FolderMessage, MessageId, StoreError};

/// The id of the tag called `name` (ignoring case: tags are looked up by
/// [`TagName::key`]), made (by [`new_tag`]) if `create` and missing.
pub(super) async fn tag_id(
    tx: &impl GenericClient,
    name: &TagName,
    create: bool,
) -> Result<Option<i64>, StoreError> {
    let statement = tx
        .prepare_cached("SELECT id FROM tags WHERE key = $1")
        .await?;
    match tx.query_opt(&statement, &[&name.key()]).await? {
        Some(row) => Ok(Some(row.try_get(0)?)),
        None if create => new_tag(tx, name, false).await.map(Some),
        None => Ok(None),
    }
}

/// Make the tag `name` (an IMAP folder that stays while empty if `folder`),
/// which must not exist, in the caller's write transaction; returns its id.
/// Its UIDVALIDITY is the time in seconds, and always above every one handed
/// out before (`store_state.last_uid_validity`), so a tag deleted and made
/// again in the same second still gets a new one.
pub(super) async fn new_tag(
    tx: &impl GenericClient,
    name: &TagName,
    folder: bool,
) -> Result<i64, StoreError> {
    let statement = tx
        .prepare_cached(
            "WITH validity AS (
                 UPDATE store_state SET last_uid_validity =
                     greatest(extract(epoch FROM now())::bigint, last_uid_validity + 1)
                 RETURNING last_uid_validity)
             INSERT INTO tags (name, key, folder, uid_validity)
             SELECT $1, $2, $3, last_uid_validity FROM validity
             RETURNING id",
        )
        .await?;
    let row = tx
        .query_one(&statement, &[&name.as_str(), &name.key(), &folder])
        .await?;
    Ok(row.try_get(0)?)
}

/// Put the messages `ids` into the folder of tag `tag` (in the caller's write
/// transaction, after [`next_seq`]): each that exists and is not there yet
/// gets the tag's next UID, in the order given. Returns those it put there.
pub(super) async fn add_to_tag(
    tx: &impl GenericClient,
    tag: i64,
    ids: &[MessageId],
) -> Result<Vec<MessageId>, StoreError> {
    let mut wanted = Vec::with_capacity(ids.len());
    for id in ids {
        if !wanted.contains(&id.0) {
            wanted.push(id.0);
        }
    }
    let statement = tx
        .prepare_cached(
            "SELECT w.id FROM unnest($2::bigint[]) WITH ORDINALITY AS w (id, n)
             WHERE EXISTS (SELECT 1 FROM messages AS m WHERE m.id = w.id)
               AND NOT EXISTS (SELECT 1 FROM message_tags AS mt
                               WHERE mt.tag_id = $1 AND mt.message_id = w.id)
             ORDER BY w.n",
        )
        .await?;
    let new: Vec<i64> = tx
        .query(&statement, &[&tag, &wanted])
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    if new.is_empty() {
        return Ok(Vec::new());
    }
    let count = to_i64(new.len());
    let statement = tx
        .prepare_cached(
            "UPDATE tags SET next_uid = next_uid + $2 WHERE id = $1 RETURNING next_uid - $2",
        )
        .await?;
    let first: i64 = tx
        .query_one(&statement, &[&tag, &count])
        .await?
        .try_get(0)?;
    let uids: Vec<i64> = (first..first + count).collect();
    let statement = tx
        .prepare_cached(
            "INSERT INTO message_tags (tag_id, message_id, uid)
             SELECT $1, m, u FROM unnest($2::bigint[], $3::bigint[]) AS x (m, u)",
        )
        .await?;
    tx.execute(&statement, &[&tag, &new, &uids]).await?;
    Ok(new.into_iter().map(MessageId).collect())
}

/// The messages `ids` changed (their tags, say) in the open write
/// transaction, whose change number is `seq`.
pub(super) async fn touch(
    tx: &impl GenericClient,
    ids: &[MessageId],
    seq: i64,
) -> Result<(), StoreError> {
    let statement = tx
        .prepare_cached("UPDATE messages SET modseq = $2 WHERE id = ANY($1)")
        .await?;
    tx.execute(&statement, &[&ids_of(ids), &seq]).await?;
    Ok(())
}

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
