//! Tags in SQL: `tags(id, name)` and the `message_tags` links (schema 6).
//!
//! Names are matched without regard to case: `COLLATE NOCASE` folds ASCII, and a
//! name with other letters is compared in Rust against every stored name (tags
//! are few). A tag no message uses any more is deleted by the change that left
//! it unused; one left by deleted messages is never listed ([`SqliteStore::tags`]
//! counts links) and goes with the next tag change. A tag that is an IMAP
//! folder (made by CREATE, or emptied by EXPUNGE in its folder; see
//! `folders.rs`) stays while unused, until it is deleted.

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params, params_from_iter};

use super::changes::commit_change;
use super::queries::to_json;
use super::queries::{SUMMARY_COLUMNS, listed_summary_from_row};
use super::queries::{pending_seq, touch};
use super::search_sql::{matching_clauses, matching_from, to_sql};
use super::{SqliteStore, to_i64, unique};
use crate::store::{StoreEvent, TagChange};
use crate::tags::{TagName, TagRule};
use crate::{ListQuery, MessageCounts, MessageId, StoreError, Summary, TagCount};

/// The id of the tag called `name` (ignoring case), creating it if `create`.
pub(super) fn tag_id(
    conn: &Connection,
    name: &TagName,
    create: bool,
) -> rusqlite::Result<Option<i64>> {
    let found = if name.as_str().is_ascii() {
        conn.prepare_cached("SELECT id FROM tags WHERE name = ?1")?
            .query_row([name.as_str()], |row| row.get(0))
            .optional()?
    } else {
        let key = name.key();
        let mut statement = conn.prepare_cached("SELECT id, name FROM tags")?;
        let mut rows = statement.query([])?;
        let mut found = None;
        while let Some(row) = rows.next()? {
            if row.get_ref(1)?.as_str()?.to_lowercase() == key {
                found = Some(row.get(0)?);
                break;
            }
        }
        found
    };
    match found {
        None if create => conn
            .prepare_cached("INSERT INTO tags (name) VALUES (?1) RETURNING id")?
            .query_row([name.as_str()], |row| row.get(0))
            .map(Some),
        found => Ok(found),
    }
}

/// Give message `id` the tags `names` (in the caller's transaction); returns
/// whether it got any it did not have.
pub(super) fn tag_message(
    conn: &Connection,
    id: MessageId,
    names: &[TagName],
) -> rusqlite::Result<bool> {
    let mut added = false;
    for name in names {
        if let Some(tag) = tag_id(conn, name, true)? {
            added |= conn
                .prepare_cached(
                    "INSERT OR IGNORE INTO message_tags (tag_id, message_id) VALUES (?1, ?2)",
                )?
                .execute(params![tag, id.0])?
                > 0;
        }
    }
    Ok(added)
}

/// Tag the messages among `ids` that match a rule with its tag; returns the
/// messages that got a new tag.
pub(super) fn apply_rules(
    conn: &Connection,
    rules: &[TagRule],
    ids: &[MessageId],
) -> rusqlite::Result<Vec<MessageId>> {
    let mut tagged = Vec::new();
    if rules.is_empty() || ids.is_empty() {
        return Ok(tagged);
    }
    let id_list = to_json(&ids.iter().map(|id| id.0).collect::<Vec<_>>())?;
    for rule in rules {
        let parts = to_sql(&rule.query);
        let (mut clauses, mut values) = matching_clauses(&parts, None);
        clauses.push("m.id IN (SELECT value FROM json_each(?))".into());
        values.push(Value::Text(id_list.clone()));
        let sql = format!(
            "SELECT m.id FROM {} WHERE {}",
            matching_from(&parts),
            clauses.join(" AND ")
        );
        let matching = conn
            .prepare_cached(&sql)?
            .query_map(params_from_iter(values), |row| row.get(0).map(MessageId))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        for id in matching {
            if tag_message(conn, id, std::slice::from_ref(&rule.tag))? {
                tagged.push(id);
            }
        }
    }
    Ok(unique(&tagged))
}

/// More messages than this changed by one tag change are announced as
/// [`StoreEvent::Changed`] (reload) rather than one by one, so that renaming a
/// tag on 100,000 messages does not read them all back in its transaction.
const MAX_ANNOUNCED_TAG_CHANGES: usize = 1000;

/// The event for a tag change of the messages `ids`, read inside its
/// transaction; nothing is read when nobody `listening`.
pub(super) fn tag_event(
    conn: &Connection,
    ids: &[MessageId],
    listening: bool,
) -> rusqlite::Result<StoreEvent> {
    Ok(if !listening {
        StoreEvent::TagsChanged(Vec::new())
    } else if ids.len() > MAX_ANNOUNCED_TAG_CHANGES {
        StoreEvent::Changed
    } else {
        StoreEvent::TagsChanged(tags_of(conn, ids)?)
    })
}

/// Each of `ids` with its tags as they are now, sorted as a summary has them.
fn tags_of(conn: &Connection, ids: &[MessageId]) -> rusqlite::Result<Vec<TagChange>> {
    let mut statement = conn.prepare_cached(
        "SELECT t.name FROM message_tags AS mt JOIN tags AS t ON t.id = mt.tag_id
         WHERE mt.message_id = ?1",
    )?;
    ids.iter()
        .map(|id| {
            let mut tags = statement
                .query_map([id.0], |row| row.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            tags.sort_unstable_by_key(|tag| tag.to_lowercase());
            Ok(TagChange { id: *id, tags })
        })
        .collect()
}

/// Delete the tags no message has, but for IMAP folders.
pub(super) fn prune_unused(conn: &Connection) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "DELETE FROM tags WHERE folder = 0 AND NOT EXISTS
            (SELECT 1 FROM message_tags AS mt WHERE mt.tag_id = tags.id)",
    )?
    .execute([])?;
    Ok(())
}

pub(super) fn ids_tagged(conn: &Connection, tag: i64) -> rusqlite::Result<Vec<MessageId>> {
    conn.prepare_cached(
        "SELECT message_id FROM message_tags WHERE tag_id = ?1 ORDER BY message_id",
    )?
    .query_map([tag], |row| row.get(0).map(MessageId))?
    .collect()
}

/// How [`SqliteStore::change_tags`] changes each message's tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Edit {
    /// Replace them.
    Set,
    /// Add these.
    Add,
    /// Take these away.
    Remove,
}

impl SqliteStore {
    pub(crate) fn tags(&self) -> Result<Vec<TagCount>, StoreError> {
        // A --tag rule tags a message when it is indexed.
        self.after(self.tags_need(), |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT t.name, count(*), sum(m.read = 0) FROM tags AS t
                 JOIN message_tags AS mt ON mt.tag_id = t.id
                 JOIN messages AS m ON m.id = mt.message_id
                 GROUP BY t.id",
            )?;
            let mut tags = statement
                .query_map([], |row| {
                    Ok(TagCount {
                        name: row.get(0)?,
                        counts: MessageCounts {
                            total: row.get::<_, i64>(1)?.max(0) as u64,
                            unread: row.get::<_, i64>(2)?.max(0) as u64,
                        },
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            tags.sort_unstable_by_key(|tag| tag.name.to_lowercase());
            Ok(tags)
        })
    }

    pub(crate) fn tag_names(&self) -> Result<Vec<String>, StoreError> {
        // A --tag rule tags a message when it is indexed.
        self.after(self.tags_need(), |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT t.name FROM tags AS t WHERE EXISTS
                    (SELECT 1 FROM message_tags AS mt WHERE mt.tag_id = t.id)",
            )?;
            let mut names = statement
                .query_map([], |row| row.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            names.sort_unstable_by_key(|name| name.to_lowercase());
            Ok(names)
        })
    }

    pub(crate) fn list_tagged(
        &self,
        name: &TagName,
        page: &ListQuery,
    ) -> Result<Vec<Summary>, StoreError> {
        self.after(self.tags_need(), |conn| {
            let tx = conn.transaction()?;
            let Some(tag) = tag_id(&tx, name, false)? else {
                return Ok(Vec::new());
            };
            // `message_tags`' key starts with the tag, so this walks that tag's
            // message ids newest first and stops at the page's end: no scan of
            // every message or of every tagged one, no sort.
            let mut statement = tx.prepare_cached(&format!(
                "SELECT {SUMMARY_COLUMNS} FROM message_tags AS mt
                 CROSS JOIN messages AS m ON m.id = mt.message_id
                 WHERE mt.tag_id = ?1 AND mt.message_id < ?2
                 ORDER BY mt.message_id DESC LIMIT ?3 OFFSET ?4"
            ))?;
            let before = page.before.map_or(i64::MAX, |id| id.0);
            let page = statement
                .query_map(
                    params![tag, before, to_i64(page.limit), to_i64(page.offset)],
                    listed_summary_from_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            drop(statement);
            tx.commit()?;
            Ok(page)
        })
    }

    /// Edit the tags of the messages `ids`; returns how many of them exist.
    pub(crate) fn change_tags(
        &self,
        ids: &[MessageId],
        names: &[TagName],
        edit: Edit,
    ) -> Result<u64, StoreError> {
        let listening = self.inner.announcer.listening();
        let (existing, event, seq) = self.with_connection(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let tag_ids = names
                .iter()
                .map(|name| tag_id(&tx, name, edit != Edit::Remove))
                .collect::<rusqlite::Result<Vec<_>>>()?
                .into_iter()
                .flatten()
                .collect::<Vec<i64>>();
            let wanted = to_json(&tag_ids)?;
            let mut existing = 0;
            let mut changed = Vec::new();
            for id in unique(ids) {
                let exists = tx
                    .prepare_cached("SELECT 1 FROM messages WHERE id = ?1")?
                    .query_row([id.0], |_| Ok(()))
                    .optional()?
                    .is_some();
                if !exists {
                    continue;
                }
                existing += 1;
                let mut rows = 0;
                if matches!(edit, Edit::Set | Edit::Remove) {
                    let sql = if edit == Edit::Set {
                        "DELETE FROM message_tags WHERE message_id = ?1
                         AND tag_id NOT IN (SELECT value FROM json_each(?2))"
                    } else {
                        "DELETE FROM message_tags WHERE message_id = ?1
                         AND tag_id IN (SELECT value FROM json_each(?2))"
                    };
                    rows += tx.prepare_cached(sql)?.execute(params![id.0, wanted])?;
                }
                if matches!(edit, Edit::Set | Edit::Add) {
                    rows += tx
                        .prepare_cached(
                            "INSERT OR IGNORE INTO message_tags (tag_id, message_id)
                             SELECT value, ?1 FROM json_each(?2)",
                        )?
                        .execute(params![id.0, wanted])?;
                }
                if rows > 0 {
                    changed.push(id);
                }
            }
            prune_unused(&tx)?;
            let event = tag_event(&tx, &changed, listening)?;
            touch(&tx, &changed, pending_seq(&tx)?)?;
            let seq = commit_change(tx, !changed.is_empty())?;
            Ok((existing, event, seq))
        })?;
        self.inner.announcer.announce(seq, [event]);
        Ok(existing)
    }

    /// Rename tag `from` to `to` everywhere, merging into a tag already called
    /// `to`; `None` if there is no tag `from`, else how many messages have it.
    pub(crate) fn rename_tag(
        &self,
        from: &TagName,
        to: &TagName,
    ) -> Result<Option<u64>, StoreError> {
        self.retag(from, |tx, old| {
            match tag_id(tx, to, false)? {
                Some(other) if other != old => {
                    tx.prepare_cached(
                        "INSERT OR IGNORE INTO message_tags (tag_id, message_id)
                         SELECT ?1, message_id FROM message_tags WHERE tag_id = ?2",
                    )?
                    .execute(params![other, old])?;
                    tx.prepare_cached("DELETE FROM tags WHERE id = ?1")?
                        .execute([old])?;
                }
                _ => {
                    tx.prepare_cached("UPDATE tags SET name = ?2 WHERE id = ?1")?
                        .execute(params![old, to.as_str()])?;
                }
            }
            Ok(())
        })
    }

    /// Take tag `name` off every message; `None` if there is no such tag, else
    /// how many messages had it.
    pub(crate) fn delete_tag(&self, name: &TagName) -> Result<Option<u64>, StoreError> {
        self.retag(name, |tx, old| {
            tx.prepare_cached("DELETE FROM tags WHERE id = ?1")?
                .execute([old])?;
            Ok(())
        })
    }

    /// Change tag `name` with `work` (given its id) in one transaction and
    /// announce the messages that had it.
    fn retag(
        &self,
        name: &TagName,
        work: impl FnOnce(&Connection, i64) -> rusqlite::Result<()>,
    ) -> Result<Option<u64>, StoreError> {
        let listening = self.inner.announcer.listening();
        let done = self.with_connection(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let Some(old) = tag_id(&tx, name, false)? else {
                return Ok(None);
            };
            let ids = ids_tagged(&tx, old)?;
            work(&tx, old)?;
            prune_unused(&tx)?;
            let event = tag_event(&tx, &ids, listening)?;
            touch(&tx, &ids, pending_seq(&tx)?)?;
            // Renaming or deleting an unused tag changes no message.
            let seq = commit_change(tx, !ids.is_empty())?;
            Ok(Some((ids.len() as u64, event, seq)))
        })?;
        Ok(done.map(|(count, event, seq)| {
            self.inner.announcer.announce(seq, [event]);
            count
        }))
    }
}
