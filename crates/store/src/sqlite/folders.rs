//! IMAP's folders in SQL (schema 7): what [`crate::Store`]'s folder methods
//! do on SQLite.
//!
//! ```text
//! INBOX      messages (or mailboxes ⋈ messages for one login)   UID = message id
//! tag        message_tags ⋈ messages, by message_tags.uid      UID from tags.next_uid
//! Sent       sent (+ sent_raw for the bytes)                    UID = sent id
//! ```
//!
//! Every change is one transaction that ends in [`commit_change`] with
//! "changed" set, so `store_state.change_seq` (IMAP's HIGHESTMODSEQ) moves on
//! each of them, folder changes and Sent included, and is announced: as the
//! events the web page knows for the caught mail (new, deleted, read, starred,
//! tags), as [`StoreEvent::Changed`] for what it does not show (keywords, Sent,
//! empty folders).

use std::time::SystemTime;

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use sokkel_message::{FlagEdit, Flags, Folder, FolderMessage};

use super::changes::commit_change;
use super::queries::{Indexing, from_millis, insert_message, pending_seq, to_millis, touch};
use super::tags::{apply_rules, ids_tagged, prune_unused, tag_event, tag_id, tag_message};
use super::writer::{Need, NewIds};
use super::{SqliteStore, local_part_range, mailbox_address, to_i64, unique};
use crate::folders::{
    COLUMNS, Copied, FlagChanges, Outcome, Table, edited, from_text, no_folder, tag_of, to_text,
    to_uid, undeleted,
};
use crate::store::StoreEvent;
use crate::tags::{TagName, Tagging};
use crate::{MessageId, StoreError};

/// The INBOX of every message, by UID: a walk of the table in id order.
fn inbox_sql() -> String {
    format!("SELECT m.id, {COLUMNS} FROM messages AS m ORDER BY m.id")
}

/// The folder of the tag `?1`, by UID: the `(tag_id, uid)` index walks it in
/// order, one lookup per message.
fn tag_sql() -> String {
    format!(
        "SELECT mt.uid, {COLUMNS} FROM message_tags AS mt
         CROSS JOIN messages AS m ON m.id = mt.message_id
         WHERE mt.tag_id = ?1 ORDER BY mt.uid"
    )
}

/// One row of a folder's listing: UID, then [`COLUMNS`].
fn folder_message(row: &rusqlite::Row<'_>) -> rusqlite::Result<FolderMessage> {
    Ok(FolderMessage {
        uid: to_uid(row.get(0)?),
        id: MessageId(row.get(1)?),
        size: row.get::<_, i64>(2)?.max(0) as u64,
        received_at: from_millis(row.get(3)?),
        flags: Flags {
            seen: row.get(4)?,
            flagged: row.get(5)?,
            other: from_text(row.get_ref(6)?.as_str()?),
        },
        modseq: row.get::<_, i64>(7)?.max(0) as u64,
    })
}

/// The id of the tag `name`, which must exist.
fn existing_tag(conn: &Connection, name: &TagName) -> Result<i64, StoreError> {
    tag_id(conn, name, false)?.ok_or_else(|| no_folder(name))
}

/// The next id `table`'s AUTOINCREMENT hands out: UIDNEXT of the INBOX and Sent.
fn next_id(conn: &Connection, table: &str) -> rusqlite::Result<u32> {
    let last: Option<i64> = conn
        .prepare_cached("SELECT seq FROM sqlite_sequence WHERE name = ?1")?
        .query_row([table], |row| row.get(0))
        .optional()?;
    Ok(to_uid(last.unwrap_or(0) + 1))
}

/// The flags of message `id` in `table` (`messages` or `sent`).
fn flags_of(conn: &Connection, table: Table, id: MessageId) -> rusqlite::Result<Option<Flags>> {
    let sql = format!(
        "SELECT read, flagged, keywords FROM {} WHERE id = ?1",
        table.name()
    );
    conn.prepare_cached(&sql)?
        .query_row([id.0], |row| {
            Ok(Flags {
                seen: row.get(0)?,
                flagged: row.get(1)?,
                other: from_text(row.get_ref(2)?.as_str()?),
            })
        })
        .optional()
}

fn write_flags(
    conn: &Connection,
    table: Table,
    id: MessageId,
    flags: &Flags,
) -> rusqlite::Result<()> {
    let sql = format!(
        "UPDATE {} SET read = ?2, flagged = ?3, keywords = ?4, modseq = ?5 WHERE id = ?1",
        table.name()
    );
    conn.prepare_cached(&sql)?.execute(params![
        id.0,
        flags.seen,
        flags.flagged,
        to_text(&flags.other),
        pending_seq(conn)?
    ])?;
    Ok(())
}

fn read_for_copy(
    conn: &Connection,
    table: Table,
    id: MessageId,
) -> rusqlite::Result<Option<Copied>> {
    let sql = format!(
        "SELECT r.data, m.read, m.flagged, m.keywords, m.received_at
         FROM {} AS m JOIN {} AS r ON r.id = m.id WHERE m.id = ?1",
        table.name(),
        table.raw_table()
    );
    conn.prepare_cached(&sql)?
        .query_row([id.0], |row| {
            Ok(Copied {
                raw: row.get(0)?,
                flags: Flags {
                    seen: row.get(1)?,
                    flagged: row.get(2)?,
                    other: from_text(row.get_ref(3)?.as_str()?),
                },
                received_at: from_millis(row.get(4)?),
            })
        })
        .optional()
}

/// Store a sent copy (in the caller's transaction); returns its id.
fn insert_sent(conn: &Connection, copy: &Copied) -> rusqlite::Result<MessageId> {
    let id: i64 = conn
        .prepare_cached(
            "INSERT INTO sent (received_at, size, read, flagged, keywords, modseq)
             VALUES (?1, ?2, ?3, ?4, ?5, (SELECT change_seq + 1 FROM store_state))
             RETURNING id",
        )?
        .query_row(
            params![
                to_millis(copy.received_at),
                to_i64(copy.raw.len()),
                copy.flags.seen,
                copy.flags.flagged,
                to_text(&copy.flags.other),
            ],
            |row| row.get(0),
        )?;
    conn.prepare_cached("INSERT INTO sent_raw (id, data) VALUES (?1, ?2)")?
        .execute(params![id, copy.raw])?;
    Ok(MessageId(id))
}

impl SqliteStore {
    pub(crate) fn folder_validity(&self, folder: &Folder) -> Result<u32, StoreError> {
        let Some(tag) = tag_of(folder)? else {
            return self.uid_validity();
        };
        self.with_connection(|conn| {
            let id = existing_tag(conn, &tag)?;
            let value: i64 = conn
                .prepare_cached("SELECT uid_validity FROM tags WHERE id = ?1")?
                .query_row([id], |row| row.get(0))?;
            Ok(to_uid(value).max(1))
        })
    }

    pub(crate) fn folder_names(&self) -> Result<Vec<String>, StoreError> {
        self.after(self.tags_need(), |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT t.name FROM tags AS t WHERE t.folder = 1 OR EXISTS
                    (SELECT 1 FROM message_tags AS mt WHERE mt.tag_id = t.id)",
            )?;
            let mut names = statement
                .query_map([], |row| row.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            names.sort_unstable_by_key(|name| name.to_lowercase());
            Ok(names)
        })
    }

    pub(crate) fn folder_messages(
        &self,
        folder: &Folder,
    ) -> Result<Option<(Vec<FolderMessage>, u32)>, StoreError> {
        // A tag's folder gets a message a --tag rule tags when it is indexed.
        let need = match folder {
            Folder::Tag(_) => self.tags_need(),
            _ => Need::Rows,
        };
        self.after(need, |conn| {
            // One read transaction, so the list and UIDNEXT agree.
            let tx = conn.transaction()?;
            let listed = match folder {
                Folder::Inbox { recipient: None } => {
                    let messages = collect(&tx, &inbox_sql(), [])?;
                    Some((messages, next_id(&tx, "messages")?))
                }
                Folder::Inbox {
                    recipient: Some(recipient),
                } => {
                    let wanted = mailbox_address(recipient);
                    let messages = if wanted.contains('@') {
                        let sql = format!(
                            "SELECT m.id, {COLUMNS} FROM mailboxes AS b
                             JOIN messages AS m ON m.id = b.message_id
                             WHERE b.address = ?1 ORDER BY b.message_id"
                        );
                        collect(&tx, &sql, [wanted])?
                    } else {
                        let (from, to, after) = local_part_range(&wanted);
                        let sql = format!(
                            "SELECT DISTINCT m.id, {COLUMNS} FROM mailboxes AS b
                             JOIN messages AS m ON m.id = b.message_id
                             WHERE b.address >= ?1 AND b.address < ?2
                               AND instr(substr(b.address, ?3), '@') = 0
                             ORDER BY m.id"
                        );
                        collect(&tx, &sql, params![from, to, after])?
                    };
                    Some((messages, next_id(&tx, "messages")?))
                }
                Folder::Sent => {
                    let sql = format!("SELECT m.id, {COLUMNS} FROM sent AS m ORDER BY m.id");
                    let messages = collect(&tx, &sql, [])?;
                    Some((messages, next_id(&tx, "sent")?))
                }
                // A name no tag can have is no folder.
                Folder::Tag(name) => match TagName::parse(name).ok() {
                    Some(name) => tag_id(&tx, &name, false)?,
                    None => None,
                }
                .map(|tag| {
                    let messages = collect(&tx, &tag_sql(), [tag])?;
                    let next: i64 = tx
                        .prepare_cached("SELECT next_uid FROM tags WHERE id = ?1")?
                        .query_row([tag], |row| row.get(0))?;
                    Ok::<_, StoreError>((messages, to_uid(next)))
                })
                .transpose()?,
            };
            tx.commit()?;
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
        let since = i64::try_from(since).unwrap_or(i64::MAX);
        self.with_connection(|conn| {
            // One read transaction, so count, rows and UIDNEXT agree.
            let tx = conn.transaction()?;
            let count = |sql: &str, p: &[&dyn rusqlite::ToSql]| -> rusqlite::Result<usize> {
                tx.prepare_cached(sql)?
                    .query_row(p, |row| row.get::<_, i64>(0))
                    .map(|n| n.max(0) as usize)
            };
            let changes = match folder {
                Folder::Inbox { recipient: Some(_) } => return Ok(None),
                Folder::Inbox { recipient: None } | Folder::Sent => {
                    let table = if matches!(folder, Folder::Sent) {
                        "sent"
                    } else {
                        "messages"
                    };
                    let n = count(&format!("SELECT count(*) FROM {table}"), &[])?;
                    let sql = format!(
                        "SELECT m.id, {COLUMNS} FROM {table} AS m WHERE m.modseq > ?1 ORDER BY m.id"
                    );
                    let changed = collect(&tx, &sql, [since])?;
                    Some((n, next_id(&tx, table)?, changed))
                }
                Folder::Tag(name) => match tag_id(&tx, &TagName::parse(name)?, false)? {
                    None => None,
                    Some(tag) => {
                        let n = count(
                            "SELECT count(*) FROM message_tags WHERE tag_id = ?1",
                            &[&tag],
                        )?;
                        let sql = format!(
                            "SELECT mt.uid, {COLUMNS} FROM message_tags AS mt
                             CROSS JOIN messages AS m ON m.id = mt.message_id
                             WHERE mt.tag_id = ?1 AND m.modseq > ?2 ORDER BY mt.uid"
                        );
                        let changed = collect(&tx, &sql, params![tag, since])?;
                        let next: i64 = tx
                            .prepare_cached("SELECT next_uid FROM tags WHERE id = ?1")?
                            .query_row([tag], |row| row.get(0))?;
                        Some((n, to_uid(next), changed))
                    }
                },
            };
            tx.commit()?;
            Ok(Some(changes))
        })
    }

    pub(crate) fn folder_raw(
        &self,
        folder: &Folder,
        id: MessageId,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let table = Table::of(folder);
        self.with_connection(|conn| {
            let sql = format!("SELECT data FROM {} WHERE id = ?1", table.raw_table());
            Ok(conn
                .prepare_cached(&sql)?
                .query_row([id.0], |row| row.get(0))
                .optional()?)
        })
    }

    pub(crate) fn set_folder_flags(
        &self,
        folder: &Folder,
        ids: &[MessageId],
        edit: &FlagEdit,
    ) -> Result<(), StoreError> {
        let table = Table::of(folder);
        let (events, seq) = self.with_connection(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut changes = FlagChanges::default();
            for id in unique(ids) {
                let Some(old) = flags_of(&tx, table, id)? else {
                    continue;
                };
                let new = edited(&old, edit)?;
                if new == old {
                    continue;
                }
                write_flags(&tx, table, id, &new)?;
                changes.record(id, &old, &new);
            }
            let seq = commit_change(tx, changes.changed())?;
            let events = changes.events(table);
            Ok((events, seq))
        })?;
        self.inner.announcer.announce(seq, events);
        Ok(())
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
        let to_sent = *folder == Folder::Sent;
        let tagging = self.inner.options.tagging.clone();
        self.add_to_folders(move |tx, outcome, ids| {
            if to_sent {
                outcome.other = true;
                return Ok(to_uid(insert_sent(tx, &copy)?.0));
            }
            let target = tag.as_ref().map(|tag| existing_tag(tx, tag)).transpose()?;
            let id = deliver_copy(tx, &tagging, ids.take(), &copy, tag.as_ref(), outcome)?;
            Ok(match target {
                Some(target) => uid_in_tag(tx, target, id)?,
                None => to_uid(id.0),
            })
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
        let (ids, to) = (ids.to_vec(), to.clone());
        let tagging = self.inner.options.tagging.clone();
        // A copy from Sent adds a message; so all copies go where additions
        // do, which keeps them in order with them.
        self.add_to_folders(move |tx, outcome, new_ids| {
            let target = tag.as_ref().map(|tag| existing_tag(tx, tag)).transpose()?;
            let mut uids = Vec::with_capacity(ids.len());
            for id in &ids {
                let gone = || StoreError::Folder(format!("message {id} no longer exists"));
                let uid = match (source, &to, target) {
                    (Table::Messages, Folder::Inbox { .. }, _) => {
                        flags_of(tx, source, *id)?.ok_or_else(gone)?;
                        to_uid(id.0)
                    }
                    (Table::Messages, Folder::Tag(_), Some(tag)) => {
                        flags_of(tx, source, *id)?.ok_or_else(gone)?;
                        let added = tx
                            .prepare_cached(
                                "INSERT OR IGNORE INTO message_tags (tag_id, message_id)
                                 VALUES (?1, ?2)",
                            )?
                            .execute(params![tag, id.0])?;
                        if added > 0 {
                            outcome.tagged.push(*id);
                        }
                        uid_in_tag(tx, tag, *id)?
                    }
                    (_, Folder::Sent, _) => {
                        let copy = read_for_copy(tx, source, *id)?.ok_or_else(gone)?;
                        outcome.other = true;
                        to_uid(insert_sent(tx, &copy)?.0)
                    }
                    // A sent copy into the INBOX or a tag; or (never: a tag
                    // folder's name is a tag) a tag folder without a tag.
                    (Table::Sent, _, _) | (Table::Messages, Folder::Tag(_), None) => {
                        let copy = read_for_copy(tx, source, *id)?.ok_or_else(gone)?;
                        let new_id = new_ids.take();
                        let delivered =
                            deliver_copy(tx, &tagging, new_id, &copy, tag.as_ref(), outcome)?;
                        match target {
                            Some(tag) => uid_in_tag(tx, tag, delivered)?,
                            None => to_uid(delivered.0),
                        }
                    }
                };
                uids.push(uid);
            }
            Ok(uids)
        })
    }

    pub(crate) fn expunge_from_folder(
        &self,
        folder: &Folder,
        ids: &[MessageId],
    ) -> Result<(), StoreError> {
        let ids = unique(ids);
        match folder {
            Folder::Inbox { .. } => {
                self.delete(&ids)?;
            }
            Folder::Sent => self.change_folders(|tx, outcome| {
                let mut statement = tx.prepare_cached("DELETE FROM sent WHERE id = ?1")?;
                for id in &ids {
                    outcome.other |= statement.execute([id.0])? > 0;
                }
                Ok(())
            })?,
            Folder::Tag(name) => {
                let tag = TagName::parse(name)?;
                self.change_folders(|tx, outcome| {
                    let tag = existing_tag(tx, &tag)?;
                    // Emptied from IMAP, the folder stays: a client that just
                    // moved every message out of it still has it open.
                    tx.prepare_cached("UPDATE tags SET folder = 1 WHERE id = ?1")?
                        .execute([tag])?;
                    for id in &ids {
                        let removed = tx
                            .prepare_cached(
                                "DELETE FROM message_tags WHERE tag_id = ?1 AND message_id = ?2",
                            )?
                            .execute(params![tag, id.0])?;
                        if removed == 0 {
                            continue;
                        }
                        if let Some(mut flags) = flags_of(tx, Table::Messages, *id)? {
                            flags.other = undeleted(&flags.other);
                            write_flags(tx, Table::Messages, *id, &flags)?;
                        }
                        outcome.tagged.push(*id);
                    }
                    Ok(())
                })?;
            }
        }
        Ok(())
    }

    pub(crate) fn create_folder(&self, name: &TagName) -> Result<bool, StoreError> {
        self.change_folders(|tx, outcome| {
            if tag_id(tx, name, false)?.is_some() {
                return Ok(false);
            }
            tx.prepare_cached("INSERT INTO tags (name, folder) VALUES (?1, 1)")?
                .execute([name.as_str()])?;
            outcome.other = true;
            Ok(true)
        })
    }

    pub(crate) fn delete_folder(&self, name: &TagName) -> Result<bool, StoreError> {
        self.change_folders(|tx, outcome| {
            let Some(tag) = tag_id(tx, name, false)? else {
                return Ok(false);
            };
            outcome.tagged = ids_tagged(tx, tag)?;
            tx.prepare_cached("DELETE FROM tags WHERE id = ?1")?
                .execute([tag])?;
            outcome.other = true;
            Ok(true)
        })
    }

    pub(crate) fn rename_folder(&self, from: &TagName, to: &TagName) -> Result<bool, StoreError> {
        self.change_folders(|tx, outcome| {
            let Some(tag) = tag_id(tx, from, false)? else {
                return Ok(false);
            };
            if tag_id(tx, to, false)?.is_some_and(|other| other != tag) {
                return Err(StoreError::Folder(format!("folder {to} exists already")));
            }
            tx.prepare_cached("UPDATE tags SET name = ?2, folder = 1 WHERE id = ?1")?
                .execute(params![tag, to.as_str()])?;
            outcome.tagged = ids_tagged(tx, tag)?;
            outcome.other = true;
            Ok(true)
        })
    }

    /// Run the folder change `work` in one write transaction, commit it as
    /// a change if it did anything, and announce what it did.
    fn change_folders<T>(
        &self,
        work: impl FnOnce(&Transaction<'_>, &mut Outcome) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let listening = self.inner.announcer.listening();
        let (events, seq, value) =
            self.with_connection(|conn| folder_transaction(conn, listening, work))?;
        self.inner.announcer.announce(seq, events);
        Ok(value)
    }

    /// [`SqliteStore::change_folders`] for a change that may add messages
    /// (APPEND, COPY): it runs where every message is added
    /// ([`SqliteStore::insert_directly`]), held to the size limit, and takes
    /// the ids of new messages from `ids`.
    fn add_to_folders<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Transaction<'_>, &mut Outcome, &mut NewIds) -> Result<T, StoreError>
        + Send
        + 'static,
    ) -> Result<T, StoreError> {
        let listening = self.inner.announcer.listening();
        let (events, seq, value) = self.insert_directly(move |conn, ids| {
            folder_transaction(conn, listening, |tx, outcome| work(tx, outcome, ids))
        })?;
        self.inner.announcer.announce(seq, events);
        Ok(value)
    }
}

/// `work` in one write transaction on `conn`, committed as a change if it did
/// anything; the events to announce (built in full only if somebody is
/// `listening`), the change's number and what `work` returned.
fn folder_transaction<T>(
    conn: &mut Connection,
    listening: bool,
    work: impl FnOnce(&Transaction<'_>, &mut Outcome) -> Result<T, StoreError>,
) -> Result<(Vec<StoreEvent>, Option<i64>, T), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut outcome = Outcome::default();
    let value = work(&tx, &mut outcome)?;
    let mut events = std::mem::take(&mut outcome.new);
    let changed = !events.is_empty() || !outcome.tagged.is_empty() || outcome.other;
    if !outcome.tagged.is_empty() {
        events.push(tag_event(&tx, &outcome.tagged, listening)?);
        touch(&tx, &outcome.tagged, pending_seq(&tx)?)?;
    }
    if outcome.other {
        events.push(StoreEvent::Changed);
    }
    prune_unused(&tx)?;
    let seq = commit_change(tx, changed)?;
    Ok((events, seq, value))
}

/// Store `copy` as a delivered message `id` (in the caller's transaction),
/// with its flags, the tags delivery gives it, the rules' tags, and `tag`;
/// its announcement goes into `outcome`.
fn deliver_copy(
    tx: &Transaction<'_>,
    tagging: &Tagging,
    id: MessageId,
    copy: &Copied,
    tag: Option<&TagName>,
    outcome: &mut Outcome,
) -> Result<MessageId, StoreError> {
    let delivered = copy.delivered(tagging, tag);
    insert_message(tx, id, &delivered.message, &delivered.digest, Indexing::Now)?;
    tag_message(tx, id, &delivered.tags)?;
    write_flags(tx, Table::Messages, id, &copy.flags)?;
    let ruled = apply_rules(tx, &tagging.rules, &[id])?;
    if !ruled.is_empty() {
        outcome.tagged.push(id);
    }
    outcome.new.push(delivered.event(id, &copy.flags));
    Ok(id)
}

/// The UID message `id` has in the folder of tag `tag`.
fn uid_in_tag(conn: &Connection, tag: i64, id: MessageId) -> rusqlite::Result<u32> {
    conn.prepare_cached("SELECT uid FROM message_tags WHERE tag_id = ?1 AND message_id = ?2")?
        .query_row(params![tag, id.0], |row| row.get(0))
        .map(to_uid)
}

fn collect<P: rusqlite::Params>(
    conn: &Connection,
    sql: &str,
    params: P,
) -> rusqlite::Result<Vec<FolderMessage>> {
    conn.prepare_cached(sql)?
        .query_map(params, folder_message)?
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreOptions;

    /// `messages(folder)` runs after every change a session sees: the INBOX
    /// and a tag's folder must come out of an index in order, never sorted.
    #[test]
    fn folder_listings_walk_an_index_in_uid_order() {
        let dir = tempfile::TempDir::new().unwrap();
        let store =
            SqliteStore::open(&dir.path().join("mail.db"), StoreOptions::default()).unwrap();
        for (sql, params) in [(inbox_sql(), vec![]), (tag_sql(), vec![1])] {
            let plan = store
                .with_connection(|conn| {
                    let mut statement = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                    let rows = statement
                        .query_map(rusqlite::params_from_iter(params), |row| row.get(3))?;
                    Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
                })
                .unwrap()
                .join("\n");
            assert!(!plan.contains("TEMP B-TREE"), "{sql}:\n{plan}");
        }
    }
}
