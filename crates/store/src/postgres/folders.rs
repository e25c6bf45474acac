//! IMAP's view on PostgreSQL: the INBOX, Sent and a folder per tag, each with
//! its own UIDs; maildrops for POP3; modseqs for CONDSTORE. What the SQLite
//! backend does (`sqlite/folders.rs`), with the numbering its triggers do
//! written out here:
//!
//! ```text
//! INBOX      messages (or mailboxes ⋈ messages for one login)   UID = message id
//! tag        message_tags ⋈ messages, by message_tags.uid      UID from tags.next_uid
//! Sent       sent (+ sent_raw for the bytes)                    UID = sent id
//! ```
//!
//! A tag's UIDs come from [`add_to_tag`] and its UIDVALIDITY from
//! [`new_tag`], which every change that tags a message or makes a tag goes
//! through (`tags.rs` too). Both run after [`next_seq`], which serialises
//! the writers of every node: UIDs are handed out in commit order, so a
//! client that has seen UID 7 never later sees a new UID 6.
//!
//! The INBOX's and Sent's UIDNEXT come from their id sequences, which are
//! not transactional: [`last_ids`] reads them once no writer is half-way,
//! before the snapshot the folder is read in.

use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

use deadpool_postgres::{GenericClient, Transaction};
use sokkel_message::{FlagEdit, Flags, Folder, FolderMessage};
use tokio_postgres::{IsolationLevel, Row};

use super::queries::{Rows, insert_messages, to_i64};
use super::tags::{apply_rules, prune_unused, tag_event, tag_message};
use super::{Notice, PgStore, Shared, ids_of, next_seq, publish, room_for};
use crate::folders::{
    COLUMNS, Copied, FlagChanges, Outcome, Table, edited, from_text, no_folder, tag_of, to_text,
    to_uid, undeleted,
};
use crate::sqlite::{local_part_range, mailbox_address, unique};
use crate::store::StoreEvent;
use crate::tags::TagName;
use crate::time::{from_millis, to_millis};
use crate::{MessageId, StoreError};

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

/// One row of a folder's listing: UID, then [`COLUMNS`].
fn folder_message(row: &Row) -> Result<FolderMessage, StoreError> {
    Ok(FolderMessage {
        uid: to_uid(row.try_get(0)?),
        id: MessageId(row.try_get(1)?),
        size: row.try_get::<_, i64>(2)?.max(0) as u64,
        received_at: from_millis(row.try_get(3)?),
        flags: Flags {
            seen: row.try_get(4)?,
            flagged: row.try_get(5)?,
            other: from_text(row.try_get(6)?),
        },
        modseq: row.try_get::<_, i64>(7)?.max(0) as u64,
    })
}

/// The id of the tag `name`, which must exist.
async fn existing_tag(tx: &impl GenericClient, name: &TagName) -> Result<i64, StoreError> {
    tag_id(tx, name, false)
        .await?
        .ok_or_else(|| no_folder(name))
}

/// The last ids the INBOX (`messages`) and Sent have handed out, which
/// their UIDNEXTs follow. An id sequence counts ids that a transaction
/// still in flight holds, which a snapshot taken now would not show and a
/// client would then see appear below UIDNEXT; so this waits for the writer
/// in flight (every writer holds `store_state`'s row, [`next_seq`]) and holds
/// the next one off for the two reads. Called before the folder's snapshot:
/// every id up to these is then in it or gone for good.
async fn last_ids(client: &mut deadpool_postgres::Object) -> Result<(i64, i64), StoreError> {
    let tx = client.transaction().await?;
    let statement = tx
        .prepare_cached("SELECT 1 FROM store_state FOR SHARE")
        .await?;
    tx.execute(&statement, &[]).await?;
    let statement = tx
        .prepare_cached(
            "SELECT coalesce(pg_sequence_last_value(
                        pg_get_serial_sequence('messages', 'id')::regclass), 0),
                    coalesce(pg_sequence_last_value(
                        pg_get_serial_sequence('sent', 'id')::regclass), 0)",
        )
        .await?;
    let row = tx.query_one(&statement, &[]).await?;
    let last = (row.try_get(0)?, row.try_get(1)?);
    tx.commit().await?;
    Ok(last)
}

/// A read-only transaction whose queries all see one snapshot.
async fn snapshot(client: &mut deadpool_postgres::Object) -> Result<Transaction<'_>, StoreError> {
    Ok(client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?)
}

async fn collect(
    tx: &impl GenericClient,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<FolderMessage>, StoreError> {
    let statement = tx.prepare_cached(sql).await?;
    tx.query(&statement, params)
        .await?
        .iter()
        .map(folder_message)
        .collect()
}

/// UIDNEXT of a folder whose UIDs are ids: above the last id handed out
/// before the snapshot and every id in it.
async fn next_id(tx: &impl GenericClient, table: Table, last: i64) -> Result<u32, StoreError> {
    let sql = format!("SELECT coalesce(max(id), 0) FROM {}", table.name());
    let statement = tx.prepare_cached(&sql).await?;
    let highest: i64 = tx.query_one(&statement, &[]).await?.try_get(0)?;
    Ok(to_uid(highest.max(last) + 1))
}

async fn next_uid(tx: &impl GenericClient, tag: i64) -> Result<u32, StoreError> {
    let statement = tx
        .prepare_cached("SELECT next_uid FROM tags WHERE id = $1")
        .await?;
    Ok(to_uid(tx.query_one(&statement, &[&tag]).await?.try_get(0)?))
}

/// The flags of those of the messages `ids` that are in `table`, by id.
async fn flags_of(
    tx: &impl GenericClient,
    table: Table,
    ids: &[MessageId],
) -> Result<Vec<(MessageId, Flags)>, StoreError> {
    let sql = format!(
        "SELECT id, read, flagged, keywords FROM {} WHERE id = ANY($1) ORDER BY id",
        table.name()
    );
    let statement = tx.prepare_cached(&sql).await?;
    tx.query(&statement, &[&ids_of(ids)])
        .await?
        .iter()
        .map(|row| {
            let flags = Flags {
                seen: row.try_get(1)?,
                flagged: row.try_get(2)?,
                other: from_text(row.try_get(3)?),
            };
            Ok((MessageId(row.try_get(0)?), flags))
        })
        .collect()
}

/// Give messages of `table` new flags, and with them the modseq `seq`: one
/// statement however many, as the whole change holds the cluster's write
/// lock.
async fn write_flags(
    tx: &impl GenericClient,
    table: Table,
    flags: &[(MessageId, Flags)],
    seq: i64,
) -> Result<(), StoreError> {
    if flags.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "UPDATE {} AS m SET read = f.read, flagged = f.flagged, keywords = f.keywords,
             modseq = $5
         FROM unnest($1::bigint[], $2::boolean[], $3::boolean[], $4::text[])
             AS f (id, read, flagged, keywords)
         WHERE m.id = f.id",
        table.name()
    );
    let statement = tx.prepare_cached(&sql).await?;
    let ids: Vec<i64> = flags.iter().map(|(id, _)| id.0).collect();
    let seen: Vec<bool> = flags.iter().map(|(_, flags)| flags.seen).collect();
    let flagged: Vec<bool> = flags.iter().map(|(_, flags)| flags.flagged).collect();
    let other: Vec<String> = flags
        .iter()
        .map(|(_, flags)| to_text(&flags.other))
        .collect();
    tx.execute(&statement, &[&ids, &seen, &flagged, &other, &seq])
        .await?;
    Ok(())
}

/// Refused unless every one of `ids` is (still) a message.
async fn all_exist(tx: &impl GenericClient, ids: &[MessageId]) -> Result<(), StoreError> {
    let statement = tx
        .prepare_cached("SELECT id FROM messages WHERE id = ANY($1)")
        .await?;
    let found = tx
        .query(&statement, &[&ids_of(ids)])
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<HashSet<i64>, _>>()?;
    match ids.iter().find(|id| !found.contains(&id.0)) {
        Some(id) => Err(gone(*id)),
        None => Ok(()),
    }
}

fn gone(id: MessageId) -> StoreError {
    StoreError::Folder(format!("message {id} no longer exists"))
}

async fn read_for_copy(
    tx: &impl GenericClient,
    table: Table,
    id: MessageId,
) -> Result<Option<Copied>, StoreError> {
    let sql = format!(
        "SELECT r.data, m.read, m.flagged, m.keywords, m.received_at
         FROM {} AS m JOIN {} AS r ON r.id = m.id WHERE m.id = $1",
        table.name(),
        table.raw_table()
    );
    let statement = tx.prepare_cached(&sql).await?;
    tx.query_opt(&statement, &[&id.0])
        .await?
        .map(|row| {
            Ok(Copied {
                raw: row.try_get(0)?,
                flags: Flags {
                    seen: row.try_get(1)?,
                    flagged: row.try_get(2)?,
                    other: from_text(row.try_get(3)?),
                },
                received_at: from_millis(row.try_get(4)?),
            })
        })
        .transpose()
}

/// Store a sent copy (in the caller's transaction); returns its id.
async fn insert_sent(
    tx: &impl GenericClient,
    copy: &Copied,
    seq: i64,
) -> Result<MessageId, StoreError> {
    let statement = tx
        .prepare_cached(
            "INSERT INTO sent (received_at, size, read, flagged, keywords, modseq)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .await?;
    let id: i64 = tx
        .query_one(
            &statement,
            &[
                &to_millis(copy.received_at),
                &to_i64(copy.raw.len()),
                &copy.flags.seen,
                &copy.flags.flagged,
                &to_text(&copy.flags.other),
                &seq,
            ],
        )
        .await?
        .try_get(0)?;
    let statement = tx
        .prepare_cached("INSERT INTO sent_raw (id, data) VALUES ($1, $2)")
        .await?;
    tx.execute(&statement, &[&id, &copy.raw]).await?;
    Ok(MessageId(id))
}

/// The UIDs the messages `ids`, which are there, have in the folder of tag
/// `tag`, in the order of `ids`.
async fn uids_in_tag(
    tx: &impl GenericClient,
    tag: i64,
    ids: &[MessageId],
) -> Result<Vec<u32>, StoreError> {
    let statement = tx
        .prepare_cached(
            "SELECT message_id, uid FROM message_tags WHERE tag_id = $1 AND message_id = ANY($2)",
        )
        .await?;
    let uids = tx
        .query(&statement, &[&tag, &ids_of(ids)])
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, to_uid(row.try_get(1)?))))
        .collect::<Result<HashMap<i64, u32>, StoreError>>()?;
    ids.iter()
        .map(|id| {
            uids.get(&id.0).copied().ok_or_else(|| {
                StoreError::corrupt(format!("message {id} has no UID in its folder"))
            })
        })
        .collect()
}

/// The ids of the messages with tag `tag`, in id order.
pub(super) async fn ids_tagged(
    tx: &impl GenericClient,
    tag: i64,
) -> Result<Vec<MessageId>, StoreError> {
    let statement = tx
        .prepare_cached("SELECT message_id FROM message_tags WHERE tag_id = $1 ORDER BY message_id")
        .await?;
    tx.query(&statement, &[&tag])
        .await?
        .iter()
        .map(|row| Ok(MessageId(row.try_get(0)?)))
        .collect()
}

/// A write transaction on `client`, with its change number ([`next_seq`],
/// taken first).
async fn begin(
    client: &mut deadpool_postgres::Object,
) -> Result<(Transaction<'_>, i64), StoreError> {
    let tx = client.transaction().await?;
    let seq = next_seq(&tx).await?;
    Ok((tx, seq))
}

/// A message id and a count (a size, a modseq) from the first two columns.
fn id_and_count(row: &Row) -> Result<(MessageId, u64), StoreError> {
    Ok((
        MessageId(row.try_get(0)?),
        row.try_get::<_, i64>(1)?.max(0) as u64,
    ))
}

/// What other nodes are told of a flag change announced here as `event`.
fn notice_of(event: &StoreEvent) -> Notice {
    match event {
        StoreEvent::ReadChanged(ids, value) => Notice::Read {
            ids: ids_of(ids),
            value: *value,
        },
        StoreEvent::FlaggedChanged(ids, value) => Notice::Flagged {
            ids: ids_of(ids),
            value: *value,
        },
        _ => Notice::Changed,
    }
}

/// Commit the write transaction `tx` (change number `seq`) if it `changed`
/// anything, with `notices` for the other nodes, and announce `events` here;
/// roll it back if not, so that the change number stays where it was (no
/// change, no new HIGHESTMODSEQ).
async fn commit_change(
    tx: Transaction<'_>,
    shared: &Shared,
    changed: bool,
    notices: Vec<Notice>,
    events: Vec<StoreEvent>,
) -> Result<(), StoreError> {
    if !changed {
        tx.rollback().await?;
        return Ok(());
    }
    for notice in notices {
        publish(&tx, shared, notice).await?;
    }
    tx.commit().await?;
    for event in events {
        shared.announce(event);
    }
    Ok(())
}

impl PgStore {
    pub(crate) fn maildrop(
        &self,
        recipient: Option<&str>,
    ) -> Result<Vec<(MessageId, u64)>, StoreError> {
        self.run(async {
            let client = self.shared().client().await?;
            let rows = match recipient {
                None => {
                    let statement = client
                        .prepare_cached("SELECT id, size FROM messages ORDER BY id")
                        .await?;
                    client.query(&statement, &[]).await?
                }
                Some(recipient) => {
                    let wanted = mailbox_address(recipient);
                    if wanted.contains('@') {
                        let statement = client.prepare_cached(MAILDROP_OF_ADDRESS).await?;
                        client.query(&statement, &[&wanted]).await?
                    } else {
                        let (from, to, after) = local_part_range(&wanted);
                        let statement = client.prepare_cached(&maildrop_of_name()).await?;
                        client.query(&statement, &[&from, &to, &after]).await?
                    }
                }
            };
            rows.iter().map(id_and_count).collect()
        })
    }

    pub(crate) fn changed_since(&self, modseq: u64) -> Result<Vec<(MessageId, u64)>, StoreError> {
        self.run(async {
            let client = self.shared().client().await?;
            let statement = client
                .prepare_cached("SELECT id, modseq FROM messages WHERE modseq > $1 ORDER BY id")
                .await?;
            client
                .query(&statement, &[&to_i64(modseq)])
                .await?
                .iter()
                .map(id_and_count)
                .collect()
        })
    }

    pub(crate) fn highest_modseq(&self) -> Result<u64, StoreError> {
        self.run(async {
            let client = self.shared().client().await?;
            let statement = client
                .prepare_cached("SELECT change_seq FROM store_state")
                .await?;
            let seq: i64 = client.query_one(&statement, &[]).await?.try_get(0)?;
            Ok(seq.max(0) as u64)
        })
    }

    pub(crate) fn uid_validity(&self) -> Result<u32, StoreError> {
        self.run(async {
            let client = self.shared().client().await?;
            let statement = client
                .prepare_cached("SELECT uid_validity FROM store_state")
                .await?;
            let value: i64 = client.query_one(&statement, &[]).await?.try_get(0)?;
            // Seconds since 1970 when the schema was made: a u32 until 2106,
            // and never 0, which IMAP does not allow.
            Ok(to_uid(value).max(1))
        })
    }

    pub(crate) fn folder_validity(&self, folder: &Folder) -> Result<u32, StoreError> {
        let Some(tag) = tag_of(folder)? else {
            return self.uid_validity();
        };
        self.run(async {
            let client = self.shared().client().await?;
            let statement = client
                .prepare_cached("SELECT uid_validity FROM tags WHERE key = $1")
                .await?;
            match client.query_opt(&statement, &[&tag.key()]).await? {
                Some(row) => Ok(to_uid(row.try_get(0)?).max(1)),
                None => Err(no_folder(&tag)),
            }
        })
    }

    pub(crate) fn folder_names(&self) -> Result<Vec<String>, StoreError> {
        self.run(async {
            let client = self.shared().client().await?;
            let statement = client
                .prepare_cached(
                    "SELECT t.name FROM tags AS t WHERE t.folder OR EXISTS
                        (SELECT 1 FROM message_tags AS mt WHERE mt.tag_id = t.id)",
                )
                .await?;
            let mut names = client
                .query(&statement, &[])
                .await?
                .iter()
                .map(|row| row.try_get::<_, String>(0))
                .collect::<Result<Vec<_>, _>>()?;
            names.sort_unstable_by_key(|name| name.to_lowercase());
            Ok(names)
        })
    }

    pub(crate) fn folder_messages(
        &self,
        folder: &Folder,
    ) -> Result<Option<(Vec<FolderMessage>, u32)>, StoreError> {
        // A name no tag can have is no folder.
        let tag = match folder {
            Folder::Tag(name) => match TagName::parse(name) {
                Ok(name) => Some(name),
                Err(_) => return Ok(None),
            },
            Folder::Inbox { .. } | Folder::Sent => None,
        };
        self.run(async {
            let mut client = self.shared().client().await?;
            let (last_message, last_sent) = last_ids(&mut client).await?;
            // One snapshot, so the list and UIDNEXT agree.
            let tx = snapshot(&mut client).await?;
            let listed = match (folder, tag) {
                (Folder::Inbox { recipient: None }, _) => {
                    let sql = format!("SELECT m.id, {COLUMNS} FROM messages AS m ORDER BY m.id");
                    let messages = collect(&tx, &sql, &[]).await?;
                    Some((messages, next_id(&tx, Table::Messages, last_message).await?))
                }
                (
                    Folder::Inbox {
                        recipient: Some(recipient),
                    },
                    _,
                ) => {
                    let wanted = mailbox_address(recipient);
                    let messages = if wanted.contains('@') {
                        let sql = format!(
                            "SELECT m.id, {COLUMNS} FROM mailboxes AS b
                             JOIN messages AS m ON m.id = b.message_id
                             WHERE b.address = $1 ORDER BY b.message_id"
                        );
                        collect(&tx, &sql, &[&wanted]).await?
                    } else {
                        let (from, to, after) = local_part_range(&wanted);
                        let sql = format!(
                            "SELECT DISTINCT m.id, {COLUMNS} FROM mailboxes AS b
                             JOIN messages AS m ON m.id = b.message_id
                             WHERE {LOCAL_PART} ORDER BY m.id"
                        );
                        collect(&tx, &sql, &[&from, &to, &after]).await?
                    };
                    Some((messages, next_id(&tx, Table::Messages, last_message).await?))
                }
                (Folder::Sent, _) => {
                    let sql = format!("SELECT m.id, {COLUMNS} FROM sent AS m ORDER BY m.id");
                    let messages = collect(&tx, &sql, &[]).await?;
                    Some((messages, next_id(&tx, Table::Sent, last_sent).await?))
                }
                (Folder::Tag(_), tag) => match tag {
                    Some(name) => match tag_id(&tx, &name, false).await? {
                        Some(tag) => {
                            let sql = format!(
                                "SELECT mt.uid, {COLUMNS} FROM message_tags AS mt
                                 JOIN messages AS m ON m.id = mt.message_id
                                 WHERE mt.tag_id = $1 ORDER BY mt.uid"
                            );
                            let messages = collect(&tx, &sql, &[&tag]).await?;
                            Some((messages, next_uid(&tx, tag).await?))
                        }
                        None => None,
                    },
                    None => None,
                },
            };
            tx.commit().await?;
            Ok(listed)
        })
    }

    /// The changed rows of a folder since `since` (every folder but a
    /// per-recipient INBOX, which gives `Ok(None)` here and is listed whole by
    /// the caller), with its count and UIDNEXT: `Some(None)` for a tag that
    /// does not exist.
    #[allow(clippy::type_complexity)]
    pub(crate) fn folder_changes(
        &self,
        folder: &Folder,
        since: u64,
    ) -> Result<Option<Option<(usize, u32, Vec<FolderMessage>)>>, StoreError> {
        if matches!(folder, Folder::Inbox { recipient: Some(_) }) {
            return Ok(None);
        }
        let tag = tag_of(folder)?;
        let since = to_i64(since);
        self.run(async {
            let mut client = self.shared().client().await?;
            let (last_message, last_sent) = last_ids(&mut client).await?;
            // One snapshot, so count, rows and UIDNEXT agree.
            let tx = snapshot(&mut client).await?;
            let count = |row: Row| -> Result<usize, StoreError> {
                Ok(row.try_get::<_, i64>(0)?.max(0) as usize)
            };
            let changes = match tag {
                None => {
                    let (table, last, counted) = if *folder == Folder::Sent {
                        (Table::Sent, last_sent, "SELECT count(*) FROM sent")
                    } else {
                        // Kept by the triggers on `messages`.
                        (
                            Table::Messages,
                            last_message,
                            "SELECT total FROM store_state",
                        )
                    };
                    let statement = tx.prepare_cached(counted).await?;
                    let n = count(tx.query_one(&statement, &[]).await?)?;
                    let sql = format!(
                        "SELECT m.id, {COLUMNS} FROM {} AS m WHERE m.modseq > $1 ORDER BY m.id",
                        table.name()
                    );
                    let changed = collect(&tx, &sql, &[&since]).await?;
                    Some((n, next_id(&tx, table, last).await?, changed))
                }
                Some(name) => match tag_id(&tx, &name, false).await? {
                    None => None,
                    Some(tag) => {
                        let statement = tx
                            .prepare_cached("SELECT count(*) FROM message_tags WHERE tag_id = $1")
                            .await?;
                        let n = count(tx.query_one(&statement, &[&tag]).await?)?;
                        let sql = format!(
                            "SELECT mt.uid, {COLUMNS} FROM message_tags AS mt
                             JOIN messages AS m ON m.id = mt.message_id
                             WHERE mt.tag_id = $1 AND m.modseq > $2 ORDER BY mt.uid"
                        );
                        let changed = collect(&tx, &sql, &[&tag, &since]).await?;
                        Some((n, next_uid(&tx, tag).await?, changed))
                    }
                },
            };
            tx.commit().await?;
            Ok(Some(changes))
        })
    }

    pub(crate) fn folder_raw(
        &self,
        folder: &Folder,
        id: MessageId,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let table = Table::of(folder);
        self.run(async {
            let client = self.shared().client().await?;
            let sql = format!("SELECT data FROM {} WHERE id = $1", table.raw_table());
            let statement = client.prepare_cached(&sql).await?;
            client
                .query_opt(&statement, &[&id.0])
                .await?
                .map(|row| Ok(row.try_get(0)?))
                .transpose()
        })
    }

    pub(crate) fn set_folder_flags(
        &self,
        folder: &Folder,
        ids: &[MessageId],
        edit: &FlagEdit,
    ) -> Result<(), StoreError> {
        let table = Table::of(folder);
        let shared = self.shared();
        self.run(async {
            let mut client = shared.client().await?;
            let (tx, seq) = begin(&mut client).await?;
            let mut changes = FlagChanges::default();
            let mut writes = Vec::new();
            for (id, old) in flags_of(&tx, table, &unique(ids)).await? {
                let new = edited(&old, edit)?;
                if new != old {
                    changes.record(id, &old, &new);
                    writes.push((id, new));
                }
            }
            write_flags(&tx, table, &writes, seq).await?;
            let changed = changes.changed();
            let events = changes.events(table);
            let notices = events.iter().map(notice_of).collect();
            commit_change(tx, shared, changed, notices, events).await
        })
    }

    pub(crate) fn append_to_folder(
        &self,
        folder: &Folder,
        raw: Vec<u8>,
        flags: &Flags,
        received_at: SystemTime,
    ) -> Result<u32, StoreError> {
        let tag = tag_of(folder)?;
        let copy = Copied {
            raw,
            flags: crate::folders::normalized(flags)?,
            received_at,
        };
        self.run(async {
            let mut client = self.shared().client().await?;
            let (tx, seq) = begin(&mut client).await?;
            let mut outcome = Outcome::default();
            let uid = if *folder == Folder::Sent {
                outcome.other = true;
                to_uid(insert_sent(&tx, &copy, seq).await?.0)
            } else {
                let target = match &tag {
                    Some(tag) => Some(existing_tag(&tx, tag).await?),
                    None => None,
                };
                let id = self
                    .deliver_copy(&tx, seq, &copy, tag.as_ref(), &mut outcome)
                    .await?;
                match target {
                    Some(target) => uids_in_tag(&tx, target, &[id]).await?[0],
                    None => to_uid(id.0),
                }
            };
            self.finish(tx, seq, outcome).await?;
            Ok(uid)
        })
    }

    pub(crate) fn copy_to_folder(
        &self,
        from: &Folder,
        ids: &[MessageId],
        to: &Folder,
    ) -> Result<Vec<u32>, StoreError> {
        let source = Table::of(from);
        let tag = tag_of(to)?;
        self.run(async {
            let mut client = self.shared().client().await?;
            let (tx, seq) = begin(&mut client).await?;
            let mut outcome = Outcome::default();
            let target = match &tag {
                Some(tag) => Some(existing_tag(&tx, tag).await?),
                None => None,
            };
            let uids = match (source, to, target) {
                (Table::Messages, Folder::Inbox { .. }, _) => {
                    all_exist(&tx, ids).await?;
                    ids.iter().map(|id| to_uid(id.0)).collect()
                }
                (Table::Messages, Folder::Tag(_), Some(tag)) => {
                    all_exist(&tx, ids).await?;
                    outcome.tagged = add_to_tag(&tx, tag, ids).await?;
                    uids_in_tag(&tx, tag, ids).await?
                }
                // Copies: into Sent, out of Sent, or (never: a tag folder's
                // name is a tag) into a tag folder without a tag.
                _ => {
                    let mut uids = Vec::with_capacity(ids.len());
                    for id in ids {
                        let copy = read_for_copy(&tx, source, *id)
                            .await?
                            .ok_or_else(|| gone(*id))?;
                        let uid = if *to == Folder::Sent {
                            outcome.other = true;
                            to_uid(insert_sent(&tx, &copy, seq).await?.0)
                        } else {
                            let delivered = self
                                .deliver_copy(&tx, seq, &copy, tag.as_ref(), &mut outcome)
                                .await?;
                            match target {
                                Some(tag) => uids_in_tag(&tx, tag, &[delivered]).await?[0],
                                None => to_uid(delivered.0),
                            }
                        };
                        uids.push(uid);
                    }
                    uids
                }
            };
            self.finish(tx, seq, outcome).await?;
            Ok(uids)
        })
    }

    pub(crate) fn expunge_from_folder(
        &self,
        folder: &Folder,
        ids: &[MessageId],
    ) -> Result<(), StoreError> {
        let ids = unique(ids);
        if let Folder::Inbox { .. } = folder {
            self.delete(&ids)?;
            return Ok(());
        }
        let tag = tag_of(folder)?;
        self.run(async {
            let mut client = self.shared().client().await?;
            let (tx, seq) = begin(&mut client).await?;
            let mut outcome = Outcome::default();
            match tag {
                None => {
                    let statement = tx
                        .prepare_cached("DELETE FROM sent WHERE id = ANY($1)")
                        .await?;
                    outcome.other = tx.execute(&statement, &[&ids_of(&ids)]).await? > 0;
                }
                Some(tag) => {
                    let tag = existing_tag(&tx, &tag).await?;
                    // Emptied from IMAP, the folder stays: a client that just
                    // moved every message out of it still has it open.
                    let statement = tx
                        .prepare_cached("UPDATE tags SET folder = true WHERE id = $1")
                        .await?;
                    tx.execute(&statement, &[&tag]).await?;
                    let statement = tx
                        .prepare_cached(
                            "DELETE FROM message_tags WHERE tag_id = $1 AND message_id = ANY($2)
                             RETURNING message_id",
                        )
                        .await?;
                    let mut removed = tx
                        .query(&statement, &[&tag, &ids_of(&ids)])
                        .await?
                        .iter()
                        .map(|row| Ok(MessageId(row.try_get(0)?)))
                        .collect::<Result<Vec<_>, StoreError>>()?;
                    removed.sort_unstable();
                    let undeleted: Vec<(MessageId, Flags)> =
                        flags_of(&tx, Table::Messages, &removed)
                            .await?
                            .into_iter()
                            .map(|(id, mut flags)| {
                                flags.other = undeleted(&flags.other);
                                (id, flags)
                            })
                            .collect();
                    write_flags(&tx, Table::Messages, &undeleted, seq).await?;
                    outcome.tagged = removed;
                }
            }
            self.finish(tx, seq, outcome).await
        })
    }

    pub(crate) fn create_folder(&self, name: &TagName) -> Result<bool, StoreError> {
        self.run(async {
            let mut client = self.shared().client().await?;
            let (tx, seq) = begin(&mut client).await?;
            let mut outcome = Outcome::default();
            let created = tag_id(&tx, name, false).await?.is_none();
            if created {
                new_tag(&tx, name, true).await?;
                outcome.other = true;
            }
            self.finish(tx, seq, outcome).await?;
            Ok(created)
        })
    }

    pub(crate) fn delete_folder(&self, name: &TagName) -> Result<bool, StoreError> {
        self.run(async {
            let mut client = self.shared().client().await?;
            let (tx, seq) = begin(&mut client).await?;
            let mut outcome = Outcome::default();
            let found = tag_id(&tx, name, false).await?;
            if let Some(tag) = found {
                outcome.tagged = ids_tagged(&tx, tag).await?;
                let statement = tx.prepare_cached("DELETE FROM tags WHERE id = $1").await?;
                tx.execute(&statement, &[&tag]).await?;
                outcome.other = true;
            }
            self.finish(tx, seq, outcome).await?;
            Ok(found.is_some())
        })
    }

    pub(crate) fn rename_folder(&self, from: &TagName, to: &TagName) -> Result<bool, StoreError> {
        self.run(async {
            let mut client = self.shared().client().await?;
            let (tx, seq) = begin(&mut client).await?;
            let mut outcome = Outcome::default();
            let found = tag_id(&tx, from, false).await?;
            if let Some(tag) = found {
                if tag_id(&tx, to, false)
                    .await?
                    .is_some_and(|other| other != tag)
                {
                    return Err(StoreError::Folder(format!("folder {to} exists already")));
                }
                let statement = tx
                    .prepare_cached(
                        "UPDATE tags SET name = $2, key = $3, folder = true WHERE id = $1",
                    )
                    .await?;
                tx.execute(&statement, &[&tag, &to.as_str(), &to.key()])
                    .await?;
                outcome.tagged = ids_tagged(&tx, tag).await?;
                outcome.other = true;
            }
            self.finish(tx, seq, outcome).await?;
            Ok(found.is_some())
        })
    }

    /// End the folder change `tx` (change number `seq`): give the messages
    /// whose tags changed the new modseq, drop the tags no message has (but
    /// for folders), commit if it did anything, tell the other nodes and
    /// announce it here.
    async fn finish(
        &self,
        tx: Transaction<'_>,
        seq: i64,
        outcome: Outcome,
    ) -> Result<(), StoreError> {
        let shared = self.shared();
        let Outcome {
            new,
            mut tagged,
            other,
        } = outcome;
        let changed = !new.is_empty() || !tagged.is_empty() || other;
        let mut notices = Vec::new();
        let new_ids: Vec<i64> = new
            .iter()
            .filter_map(|event| match event {
                StoreEvent::New(summary) => Some(summary.id.0),
                _ => None,
            })
            .collect();
        if !new_ids.is_empty() {
            notices.push(Notice::New { ids: new_ids });
        }
        let mut events = new;
        if !tagged.is_empty() {
            tagged.sort_unstable();
            tagged.dedup();
            let listening = shared.events.receiver_count() > 0;
            events.push(tag_event(&tx, &tagged, listening).await?);
            touch(&tx, &tagged, seq).await?;
            notices.push(Notice::Tags {
                ids: ids_of(&tagged),
            });
        }
        if other {
            notices.push(Notice::Changed);
            events.push(StoreEvent::Changed);
        }
        if changed {
            prune_unused(&tx).await?;
        }
        commit_change(tx, shared, changed, notices, events).await
    }

    /// Store `copy` as a delivered message (in the caller's transaction,
    /// change number `seq`), indexed at once, with its flags, the tags
    /// delivery gives it, the rules' tags, and `tag`; its announcement goes
    /// into `outcome`.
    async fn deliver_copy(
        &self,
        tx: &Transaction<'_>,
        seq: i64,
        copy: &Copied,
        tag: Option<&TagName>,
        outcome: &mut Outcome,
    ) -> Result<MessageId, StoreError> {
        let options = &self.shared().options;
        let delivered = copy.delivered(&options.tagging, tag);
        room_for(tx, self.shared(), delivered.message.raw.len()).await?;
        let rows = Rows::new([(&delivered.message, &delivered.digest)])?;
        let id = insert_messages(tx, &rows, seq).await?[0];
        tag_message(tx, id, &delivered.tags).await?;
        write_flags(tx, Table::Messages, &[(id, copy.flags.clone())], seq).await?;
        let ruled = apply_rules(tx, &options.tagging.rules, &[id]).await?;
        if !ruled.is_empty() {
            outcome.tagged.push(id);
        }
        outcome.new.push(delivered.event(id, &copy.flags));
        Ok(id)
    }
}

/// The messages sent to the address `$1`, oldest first.
const MAILDROP_OF_ADDRESS: &str = "SELECT m.id, m.size FROM mailboxes AS b
    JOIN messages AS m ON m.id = b.message_id
    WHERE b.address = $1 ORDER BY b.message_id";

/// The addresses `b.address` with a local part given as a range by
/// [`local_part_range`] (`$1`, `$2`, `$3`): compared byte by byte, as SQLite
/// compares them, whatever the database's collation (in which `name@` need
/// not sort next to `name@x`).
const LOCAL_PART: &str = r#"b.address COLLATE "C" >= $1 AND b.address COLLATE "C" < $2
    AND strpos(substr(b.address, $3::bigint::integer), '@') = 0"#;

/// The messages sent to any address with a local part, oldest first.
fn maildrop_of_name() -> String {
    format!(
        "SELECT DISTINCT m.id, m.size FROM mailboxes AS b
         JOIN messages AS m ON m.id = b.message_id WHERE {LOCAL_PART} ORDER BY m.id"
    )
}
