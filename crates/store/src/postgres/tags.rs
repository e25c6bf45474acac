//! Tags on PostgreSQL: `tags` (looked up by [`TagName::key`], so names match
//! without regard to case as on SQLite) and the `message_tags` links, each
//! with its UID in the tag's folder (numbered by `folders::add_to_tag`).
//!
//! Results, events and limits are the SQLite backend's (`sqlite/tags.rs`): a
//! tag no message uses any more is deleted by the change that left it
//! unused, but for IMAP folders; a change that changes no message is no
//! change (no modseq, no event); a change of more than
//! [`MAX_ANNOUNCED_TAG_CHANGES`] messages is announced as
//! [`StoreEvent::Changed`]. Every change is published as [`Notice::Tags`],
//! so other nodes announce it too.

use std::collections::{BTreeMap, BTreeSet};

use deadpool_postgres::GenericClient;

use super::folders::{add_to_tag, ids_tagged, tag_id, touch};
use super::queries::{SUMMARY_COLUMNS, listed_summary_from_row, to_i64};
use super::search::{Param, to_sql};
use super::{Notice, PgStore, ids_of, next_seq, publish};
use crate::sqlite::TagEdit;
use crate::store::{StoreEvent, TagChange};
use crate::tags::{TagName, TagRule};
use crate::{ListQuery, MessageCounts, MessageId, StoreError, Summary, TagCount};

/// More messages than this changed by one tag change are announced as
/// [`StoreEvent::Changed`] (reload) rather than one by one, as on SQLite.
const MAX_ANNOUNCED_TAG_CHANGES: usize = 1000;

/// Give message `id` the tags `names` (in the caller's write transaction,
/// after `next_seq`); returns whether it got any it did not have.
pub(super) async fn tag_message(
    tx: &impl GenericClient,
    id: MessageId,
    names: &[TagName],
) -> Result<bool, StoreError> {
    let mut added = false;
    for name in names {
        if let Some(tag) = tag_id(tx, name, true).await? {
            added |= !add_to_tag(tx, tag, &[id]).await?.is_empty();
        }
    }
    Ok(added)
}

/// Tag the messages among `ids` that match a rule with its tag (in the
/// caller's write transaction, after the messages were indexed); returns the
/// messages that got a new tag, in id order.
pub(super) async fn apply_rules(
    tx: &impl GenericClient,
    rules: &[TagRule],
    ids: &[MessageId],
) -> Result<Vec<MessageId>, StoreError> {
    let mut tagged = BTreeSet::new();
    if rules.is_empty() || ids.is_empty() {
        return Ok(Vec::new());
    }
    for rule in rules {
        let mut parts = to_sql(&rule.query);
        let among = parts.param(Param::Integers(ids_of(ids)));
        parts.conditions.push(format!("m.id = ANY({among})"));
        let sql = format!(
            "SELECT m.id FROM messages AS m WHERE {} ORDER BY m.id",
            parts.clause()
        );
        let statement = tx.prepare_cached(&sql).await?;
        let matching: Vec<MessageId> = tx
            .query(&statement, &parts.values())
            .await?
            .iter()
            .map(|row| row.try_get(0).map(MessageId))
            .collect::<Result<_, _>>()?;
        if matching.is_empty() {
            continue;
        }
        if let Some(tag) = tag_id(tx, &rule.tag, true).await? {
            tagged.extend(add_to_tag(tx, tag, &matching).await?);
        }
    }
    Ok(tagged.into_iter().collect())
}

/// The event for a tag change of the messages `ids`, read inside its
/// transaction; nothing is read when nobody is `listening`.
pub(super) async fn tag_event(
    tx: &impl GenericClient,
    ids: &[MessageId],
    listening: bool,
) -> Result<StoreEvent, StoreError> {
    Ok(if !listening {
        StoreEvent::TagsChanged(Vec::new())
    } else if ids.len() > MAX_ANNOUNCED_TAG_CHANGES {
        StoreEvent::Changed
    } else {
        StoreEvent::TagsChanged(tags_of(tx, ids).await?)
    })
}

/// Each of `ids` with its tags as they are now, sorted as a summary has them.
pub(super) async fn tags_of(
    client: &impl GenericClient,
    ids: &[MessageId],
) -> Result<Vec<TagChange>, StoreError> {
    let statement = client
        .prepare_cached(
            "SELECT mt.message_id, t.name FROM message_tags AS mt
             JOIN tags AS t ON t.id = mt.tag_id WHERE mt.message_id = ANY($1)",
        )
        .await?;
    let mut tags: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for row in client.query(&statement, &[&ids_of(ids)]).await? {
        tags.entry(row.try_get(0)?)
            .or_default()
            .push(row.try_get(1)?);
    }
    Ok(ids
        .iter()
        .map(|id| {
            let mut tags = tags.remove(&id.0).unwrap_or_default();
            tags.sort_unstable_by_key(|tag| tag.to_lowercase());
            TagChange { id: *id, tags }
        })
        .collect())
}

/// Delete the tags no message has, but for IMAP folders.
pub(super) async fn prune_unused(tx: &impl GenericClient) -> Result<(), StoreError> {
    let statement = tx
        .prepare_cached(
            "DELETE FROM tags WHERE NOT folder AND NOT EXISTS
                (SELECT 1 FROM message_tags AS mt WHERE mt.tag_id = tags.id)",
        )
        .await?;
    tx.execute(&statement, &[]).await?;
    Ok(())
}

/// What [`PgStore::retag`] does to a tag.
enum Retag<'a> {
    RenameTo(&'a TagName),
    Delete,
}

impl PgStore {
    pub(crate) fn tags(&self) -> Result<Vec<TagCount>, StoreError> {
        self.run(async {
            let client = self.shared().client().await?;
            let statement = client
                .prepare_cached(
                    "SELECT t.name, count(*), count(*) FILTER (WHERE NOT m.read) FROM tags AS t
                     JOIN message_tags AS mt ON mt.tag_id = t.id
                     JOIN messages AS m ON m.id = mt.message_id
                     GROUP BY t.id",
                )
                .await?;
            let mut tags = client
                .query(&statement, &[])
                .await?
                .iter()
                .map(|row| {
                    Ok(TagCount {
                        name: row.try_get(0)?,
                        counts: MessageCounts {
                            total: row.try_get::<_, i64>(1)?.max(0) as u64,
                            unread: row.try_get::<_, i64>(2)?.max(0) as u64,
                        },
                    })
                })
                .collect::<Result<Vec<TagCount>, StoreError>>()?;
            tags.sort_unstable_by_key(|tag| tag.name.to_lowercase());
            Ok(tags)
        })
    }

    pub(crate) fn tag_names(&self) -> Result<Vec<String>, StoreError> {
        self.run(async {
            let client = self.shared().client().await?;
            let statement = client
                .prepare_cached(
                    "SELECT t.name FROM tags AS t WHERE EXISTS
                        (SELECT 1 FROM message_tags AS mt WHERE mt.tag_id = t.id)",
                )
                .await?;
            let mut names = client
                .query(&statement, &[])
                .await?
                .iter()
                .map(|row| row.try_get(0))
                .collect::<Result<Vec<String>, _>>()?;
            names.sort_unstable_by_key(|name| name.to_lowercase());
            Ok(names)
        })
    }

    pub(crate) fn list_tagged(
        &self,
        name: &TagName,
        page: &ListQuery,
    ) -> Result<Vec<Summary>, StoreError> {
        self.run(async {
            let client = self.shared().client().await?;
            // `message_tags`' key starts with the tag: this walks that tag's
            // message ids newest first and stops at the page's end.
            let statement = client
                .prepare_cached(&format!(
                    "SELECT {SUMMARY_COLUMNS} FROM message_tags AS mt
                     JOIN messages AS m ON m.id = mt.message_id
                     WHERE mt.tag_id = (SELECT id FROM tags WHERE key = $1)
                       AND mt.message_id < $2
                     ORDER BY mt.message_id DESC LIMIT $3 OFFSET $4"
                ))
                .await?;
            let before = page.before.map_or(i64::MAX, |id| id.0);
            let rows = client
                .query(
                    &statement,
                    &[
                        &name.key(),
                        &before,
                        &to_i64(page.limit),
                        &to_i64(page.offset),
                    ],
                )
                .await?;
            rows.iter().map(listed_summary_from_row).collect()
        })
    }

    /// Edit the tags of the messages `ids`; returns how many of them exist.
    pub(crate) fn change_tags(
        &self,
        ids: &[MessageId],
        names: &[TagName],
        edit: TagEdit,
    ) -> Result<u64, StoreError> {
        let shared = self.shared();
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let (existing, event) = self.run(async {
            let mut client = shared.client().await?;
            let tx = client.transaction().await?;
            let seq = next_seq(&tx).await?;
            let mut tags = Vec::with_capacity(names.len());
            for name in names {
                tags.extend(tag_id(&tx, name, edit != TagEdit::Remove).await?);
            }
            let statement = tx
                .prepare_cached("SELECT id FROM messages WHERE id = ANY($1) ORDER BY id")
                .await?;
            let existing: Vec<MessageId> = tx
                .query(&statement, &[&ids_of(&ids)])
                .await?
                .iter()
                .map(|row| row.try_get(0).map(MessageId))
                .collect::<Result<_, _>>()?;
            let mut changed = BTreeSet::new();
            if matches!(edit, TagEdit::Set | TagEdit::Remove) {
                let sql = if edit == TagEdit::Set {
                    "DELETE FROM message_tags WHERE message_id = ANY($1)
                     AND NOT (tag_id = ANY($2)) RETURNING message_id"
                } else {
                    "DELETE FROM message_tags WHERE message_id = ANY($1)
                     AND tag_id = ANY($2) RETURNING message_id"
                };
                let statement = tx.prepare_cached(sql).await?;
                for row in tx.query(&statement, &[&ids_of(&existing), &tags]).await? {
                    changed.insert(MessageId(row.try_get(0)?));
                }
            }
            if matches!(edit, TagEdit::Set | TagEdit::Add) {
                for tag in &tags {
                    changed.extend(add_to_tag(&tx, *tag, &existing).await?);
                }
            }
            let count = existing.len() as u64;
            if changed.is_empty() {
                // No change: no change number, no event (the rollback also
                // takes back a tag made for nothing).
                tx.rollback().await?;
                return Ok((count, None));
            }
            let changed: Vec<MessageId> = changed.into_iter().collect();
            prune_unused(&tx).await?;
            let listening = shared.events.receiver_count() > 0;
            let event = tag_event(&tx, &changed, listening).await?;
            touch(&tx, &changed, seq).await?;
            publish(
                &tx,
                shared,
                Notice::Tags {
                    ids: ids_of(&changed),
                },
            )
            .await?;
            tx.commit().await?;
            Ok((count, Some(event)))
        })?;
        if let Some(event) = event {
            shared.announce(event);
        }
        Ok(existing)
    }

    /// Rename tag `from` to `to` everywhere, merging into a tag already called
    /// `to`; `None` if there is no tag `from`, else how many messages have it.
    pub(crate) fn rename_tag(
        &self,
        from: &TagName,
        to: &TagName,
    ) -> Result<Option<u64>, StoreError> {
        self.retag(from, Retag::RenameTo(to))
    }

    /// Take tag `name` off every message; `None` if there is no such tag, else
    /// how many messages had it.
    pub(crate) fn delete_tag(&self, name: &TagName) -> Result<Option<u64>, StoreError> {
        self.retag(name, Retag::Delete)
    }

    /// Rename or delete tag `name` in one transaction and announce the
    /// messages that had it.
    fn retag(&self, name: &TagName, retag: Retag<'_>) -> Result<Option<u64>, StoreError> {
        let shared = self.shared();
        let done = self.run(async {
            let mut client = shared.client().await?;
            let tx = client.transaction().await?;
            let seq = next_seq(&tx).await?;
            let Some(old) = tag_id(&tx, name, false).await? else {
                tx.rollback().await?;
                return Ok(None);
            };
            let ids = ids_tagged(&tx, old).await?;
            match retag {
                Retag::Delete => delete_tag_row(&tx, old).await?,
                Retag::RenameTo(to) => match tag_id(&tx, to, false).await? {
                    Some(other) if other != old => {
                        add_to_tag(&tx, other, &ids).await?;
                        delete_tag_row(&tx, old).await?;
                    }
                    _ => {
                        let statement = tx
                            .prepare_cached("UPDATE tags SET name = $2, key = $3 WHERE id = $1")
                            .await?;
                        tx.execute(&statement, &[&old, &to.as_str(), &to.key()])
                            .await?;
                    }
                },
            }
            prune_unused(&tx).await?;
            let listening = shared.events.receiver_count() > 0;
            let event = tag_event(&tx, &ids, listening).await?;
            // Renaming or deleting an unused tag (a folder) changes no message.
            if !ids.is_empty() {
                touch(&tx, &ids, seq).await?;
                publish(&tx, shared, Notice::Tags { ids: ids_of(&ids) }).await?;
            }
            tx.commit().await?;
            Ok(Some((ids.len() as u64, (!ids.is_empty()).then_some(event))))
        })?;
        Ok(done.map(|(count, event)| {
            if let Some(event) = event {
                shared.announce(event);
            }
            count
        }))
    }
}

async fn delete_tag_row(tx: &impl GenericClient, tag: i64) -> Result<(), StoreError> {
    let statement = tx.prepare_cached("DELETE FROM tags WHERE id = $1").await?;
    tx.execute(&statement, &[&tag]).await?;
    Ok(())
}
