//! The search index on PostgreSQL: `messages.search`, a tsvector of the words
//! SQLite's FTS5 index would hold (split in Rust by [`super::words`]), each
//! prefixed with its column's letter and numbered within its column, so that
//! a query (search.rs) can ask for a word in some columns, a phrase, or a
//! prefix, as an FTS5 query does.
//!
//! ```text
//! subject "Invoice 42", body "Pay the invoice"  ──▶  's:invoice':1 's:42':2
//!                                                    'b:pay':1 'b:the':2 'b:invoice':3
//! ```
//!
//! Who indexes what:
//!
//! ```text
//! delivery (writer.rs), import, APPEND: the tsvector written with the row
//!     (queries::insert_messages), the --tag rules in the same transaction
//! the node holding locks::INDEXER, every few seconds: rows left in
//!     `unindexed` for more than ORPHAN_AGE (written by an older sokkel,
//!     which queued its deliveries there and indexed them after the commit,
//!     and died before it did), parsed again from their raw bytes
//! ```
//!
//! A tsvector has limits FTS5 has not, so the index is exact up to them:
//! positions go to 16,383 per column (a phrase further into a long body may
//! be missed), a word keeps its first 256 positions, a word is cut to
//! [`MAX_WORD_BYTES`] (on both sides, so such words still match each other),
//! and a message's distinct words stop at [`MAX_VECTOR_BYTES`].

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{ClientWrapper, GenericClient};

use super::queries::from_json;
use super::tags::{apply_rules, tag_event};
use super::words::for_each_word;
use super::{Notice, Shared, folders, ids_of, locks, next_seq, publish, take_session_lock};
use crate::index_text::IndexText;
use crate::mime::{self, Digest};
use crate::repeated::{REPEAT_INTERVAL, RepeatedLog};
use crate::{MessageId, NewMessage, StoreError};

/// The most messages indexed in one transaction.
const INDEX_BATCH: usize = 256;

/// The most raw bytes one batch of [`index_left`] reads and parses at once.
const ORPHAN_BATCH_BYTES: usize = 16 << 20;

/// A message still in `unindexed` after this long was left by a node that
/// stopped before indexing it; the cluster's indexer takes it over.
const ORPHAN_AGE: Duration = Duration::from_secs(5);

/// How often a node asks for [`locks::INDEXER`] and, holding it, looks for
/// such messages.
const ORPHAN_SCAN: Duration = Duration::from_secs(2);

/// The longest word indexed, in bytes (PostgreSQL's lexemes end at 2,046
/// bytes, with the column's prefix).
pub(super) const MAX_WORD_BYTES: usize = 2000;

/// The most bytes of distinct words one message's tsvector holds
/// (PostgreSQL's limit is 1 MiB).
const MAX_VECTOR_BYTES: usize = 512 << 10;

/// Positions beyond this count as this (PostgreSQL's limit).
const MAX_POSITION: u16 = 16_383;

/// The most positions one word keeps (PostgreSQL's limit).
const MAX_POSITIONS: usize = 256;

/// A column of the index and the letter its words are prefixed with, in the
/// order of [`IndexText::columns`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Column {
    Subject,
    Sender,
    Recipients,
    Body,
    Cc,
    Bcc,
    ReplyTo,
    MessageId,
}

const COLUMNS: [Column; 8] = [
    Column::Subject,
    Column::Sender,
    Column::Recipients,
    Column::Body,
    Column::Cc,
    Column::Bcc,
    Column::ReplyTo,
    Column::MessageId,
];

impl Column {
    fn letter(self) -> char {
        match self {
            Column::Subject => 's',
            Column::Sender => 'f',
            Column::Recipients => 't',
            Column::Body => 'b',
            Column::Cc => 'c',
            Column::Bcc => 'k',
            Column::ReplyTo => 'r',
            Column::MessageId => 'm',
        }
    }
}

/// `word` of `column` as a quoted lexeme of a tsvector or tsquery:
/// `'s:word'`, with quotes and backslashes escaped.
pub(super) fn push_lexeme(out: &mut String, column: Column, word: &str) {
    out.push('\'');
    out.push(column.letter());
    out.push(':');
    for c in cut_word(word).chars() {
        if matches!(c, '\'' | '\\') {
            out.push(c);
        }
        out.push(c);
    }
    out.push('\'');
}

/// `word` cut to [`MAX_WORD_BYTES`] on a character boundary.
fn cut_word(word: &str) -> &str {
    if word.len() <= MAX_WORD_BYTES {
        return word;
    }
    let mut end = MAX_WORD_BYTES;
    while !word.is_char_boundary(end) {
        end -= 1;
    }
    &word[..end]
}

/// The tsvector (as text) of a message's index text.
fn tsvector(text: &IndexText) -> String {
    let mut positions: HashMap<(Column, String), Vec<u16>> = HashMap::new();
    let mut bytes = 0;
    for (column, text) in COLUMNS.into_iter().zip(text.columns()) {
        let mut position: u16 = 0;
        for_each_word(text, |word| {
            position = position.saturating_add(1).min(MAX_POSITION);
            let word = cut_word(word);
            match positions.get_mut(&(column, word.to_string())) {
                Some(list) if list.len() < MAX_POSITIONS && list.last() != Some(&position) => {
                    list.push(position);
                }
                Some(_) => {}
                None if bytes < MAX_VECTOR_BYTES => {
                    bytes += word.len() + 2;
                    positions.insert((column, word.to_string()), vec![position]);
                }
                None => {}
            }
        });
    }
    let mut vector = String::with_capacity(bytes * 2);
    for ((column, word), list) in positions {
        if !vector.is_empty() {
            vector.push(' ');
        }
        push_lexeme(&mut vector, column, &word);
        for (n, position) in list.iter().enumerate() {
            vector.push(if n == 0 { ':' } else { ',' });
            let _ = write!(vector, "{position}");
        }
    }
    vector
}

/// What the index gets of one message, made by the node that parsed it.
#[derive(Debug, Clone, Default)]
pub(crate) struct IndexEntry {
    text: IndexText,
}

impl IndexEntry {
    pub(crate) fn new(message: &NewMessage, digest: &Digest) -> IndexEntry {
        let envelope = &message.envelope;
        IndexEntry {
            text: IndexText::new(&envelope.mail_from, &envelope.rcpt_to, digest),
        }
    }

    /// The message's tsvector, as text.
    pub(super) fn vector(&self) -> String {
        tsvector(&self.text)
    }
}

/// Start the cluster's indexer on the backend's runtime (`shared.handle`):
/// while this node holds [`locks::INDEXER`], it indexes what was left in
/// `unindexed`.
pub(crate) fn spawn_indexer(shared: Arc<Shared>) {
    shared.handle.spawn(index_orphans(Arc::clone(&shared)));
}

/// Put `vectors` (id, tsvector) into the index for the messages among them
/// still in `unindexed` (not deleted, not indexed by another node meanwhile),
/// and run the `--tag` rules on those, in one transaction: no reader sees a
/// message indexed but not yet tagged by the rules.
async fn index_batch(
    client: &mut ClientWrapper,
    shared: &Shared,
    vectors: &[(i64, String)],
) -> Result<(), StoreError> {
    let ids: Vec<i64> = vectors.iter().map(|(id, _)| *id).collect();
    let texts: Vec<&str> = vectors.iter().map(|(_, text)| text.as_str()).collect();
    let tx = client.transaction().await?;
    // The cluster's write lock, as next_seq takes it, but no change number
    // until a rule tags something: indexing changes no message as IMAP or a
    // reader sees it. Taken first, before the UPDATE's count trigger takes it
    // after the rows, which could deadlock with a writer that holds the lock
    // and wants one of the rows.
    let statement = tx
        .prepare_cached("SELECT 1 FROM store_state FOR NO KEY UPDATE")
        .await?;
    tx.execute(&statement, &[]).await?;
    let statement = tx
        .prepare_cached(
            "WITH queued AS (DELETE FROM unindexed WHERE id = ANY($1) RETURNING id)
             UPDATE messages AS m SET search = v.search::tsvector
             FROM unnest($1::bigint[], $2::text[]) AS v (id, search)
             WHERE m.id = v.id AND v.id IN (SELECT id FROM queued)
             RETURNING m.id",
        )
        .await?;
    let mut indexed: Vec<MessageId> = tx
        .query(&statement, &[&ids, &texts])
        .await?
        .iter()
        .map(|row| row.try_get(0).map(MessageId))
        .collect::<Result<_, _>>()?;
    indexed.sort_unstable();
    let rules = &shared.options.tagging.rules;
    let tagged = apply_rules(&tx, rules, &indexed).await?;
    let mut event = None;
    if !tagged.is_empty() {
        let seq = next_seq(&tx).await?;
        folders::touch(&tx, &tagged, seq).await?;
        publish(
            &tx,
            shared,
            Notice::Tags {
                ids: ids_of(&tagged),
            },
        )
        .await?;
        let listening = shared.events.receiver_count() > 0;
        event = Some(tag_event(&tx, &tagged, listening).await?);
    }
    tx.commit().await?;
    if let Some(event) = event {
        shared.announce(event);
    }
    Ok(())
}

/// Every [`ORPHAN_SCAN`]: take [`locks::INDEXER`] if no node holds it, and
/// while this node does, index what stayed in `unindexed` too long.
async fn index_orphans(shared: Arc<Shared>) {
    let failures = RepeatedLog::new(REPEAT_INTERVAL);
    let mut held: Option<ClientWrapper> = None;
    let mut every = tokio::time::interval(ORPHAN_SCAN);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if held.as_ref().is_some_and(|client| client.is_closed()) {
            // The lock went with the connection; another node may take it.
            held = None;
        }
        let scanned = async {
            if held.is_none() {
                held = take_session_lock(&shared, locks::INDEXER).await?;
                if held.is_some() {
                    tracing::debug!("this node indexes what other nodes leave unindexed");
                }
            }
            match held.as_mut() {
                Some(client) => index_left(client, &shared).await,
                None => Ok(()),
            }
        };
        if let Err(error) = scanned.await {
            let repeat = failures.occurrence(&error.to_string());
            if repeat.should_log() {
                tracing::warn!(%error, "indexing messages other nodes left failed{repeat}");
            }
        }
    }
}

/// Index the messages left in `unindexed` for more than [`ORPHAN_AGE`], a
/// batch at a time (at most [`INDEX_BATCH`] messages and
/// [`ORPHAN_BATCH_BYTES`] of them, or one larger message), parsed again from
/// their bytes on the blocking pool, off the threads that carry the
/// backend's database traffic.
async fn index_left(client: &mut ClientWrapper, shared: &Shared) -> Result<(), StoreError> {
    loop {
        let statement = client
            .prepare_cached(
                "SELECT u.id, m.size FROM unindexed AS u JOIN messages AS m ON m.id = u.id
                 WHERE u.queued_at < now() - make_interval(secs => $1)
                 ORDER BY u.id LIMIT $2",
            )
            .await?;
        let waiting = client
            .query(
                &statement,
                &[&(ORPHAN_AGE.as_secs_f64()), &(INDEX_BATCH as i64)],
            )
            .await?;
        let mut ids = Vec::new();
        let mut bytes = 0;
        for row in &waiting {
            let size = row.try_get::<_, i64>(1)?.max(0) as usize;
            if !ids.is_empty() && bytes + size > ORPHAN_BATCH_BYTES {
                break;
            }
            bytes += size;
            ids.push(row.try_get::<_, i64>(0)?);
        }
        if ids.is_empty() {
            return Ok(());
        }
        let statement = client
            .prepare_cached(
                "SELECT m.id, m.mail_from, m.rcpt_to, r.data
                 FROM messages AS m JOIN raw AS r ON r.id = m.id
                 WHERE m.id = ANY($1) ORDER BY m.id",
            )
            .await?;
        let mut messages = Vec::with_capacity(ids.len());
        for row in client.query(&statement, &[&ids]).await? {
            let rcpt_to: Vec<String> = from_json(row.try_get(2)?)?;
            let message: (i64, String, Vec<String>, Vec<u8>) =
                (row.try_get(0)?, row.try_get(1)?, rcpt_to, row.try_get(3)?);
            messages.push(message);
        }
        let vectors = tokio::task::spawn_blocking(move || {
            messages
                .into_iter()
                .map(|(id, mail_from, rcpt_to, raw)| {
                    let text = IndexText::new(&mail_from, &rcpt_to, &mime::digest(&raw));
                    (id, tsvector(&text))
                })
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|_| StoreError::Closed)?;
        tracing::debug!(
            messages = vectors.len(),
            "indexing messages another node left"
        );
        index_batch(client, shared, &vectors).await?;
        if waiting.len() < INDEX_BATCH && ids.len() == waiting.len() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector(text: IndexText) -> Vec<String> {
        let mut lexemes: Vec<String> = tsvector(&text).split(' ').map(str::to_string).collect();
        lexemes.sort();
        lexemes
    }

    #[test]
    fn words_are_lexemes_of_their_column_with_positions() {
        let text = IndexText {
            subject: "Invoice 42 invoice".into(),
            body: "It's a C:\\path".into(),
            message_id: "x@y".into(),
            ..IndexText::default()
        };
        assert_eq!(
            vector(text),
            [
                "'b:a':3",
                "'b:c':4",
                "'b:it':1",
                "'b:path':5",
                "'b:s':2",
                "'m:x':1",
                "'m:y':2",
                "'s:42':2",
                "'s:invoice':1,3",
            ]
        );
    }

    #[test]
    fn quotes_and_backslashes_cannot_leave_a_lexeme() {
        let mut out = String::new();
        push_lexeme(&mut out, Column::Body, "a'b\\c");
        assert_eq!(out, "'b:a''b\\\\c'");
    }

    #[test]
    fn limits_of_a_tsvector_are_kept() {
        let many = "w ".repeat(20_000);
        let text = IndexText {
            subject: format!("x{}", "ж".repeat(1500)),
            body: many,
            ..IndexText::default()
        };
        let vector = tsvector(&text);
        let subject = vector.split(' ').find(|l| l.starts_with("'s:")).unwrap();
        assert_eq!(
            subject.len(),
            "'s:'".len() + MAX_WORD_BYTES - 1 + ":1".len(),
            "cut on a character boundary"
        );
        let body = vector.split(' ').find(|l| l.starts_with("'b:")).unwrap();
        assert_eq!(body.split(',').count(), MAX_POSITIONS);
        let huge = IndexText {
            body: (0..200_000).map(|n| format!("w{n} ")).collect(),
            ..IndexText::default()
        };
        // PostgreSQL's limit is on the lexemes' bytes, positions aside.
        let lexeme_bytes: usize = tsvector(&huge)
            .split(' ')
            .map(|entry| entry.rsplit_once(':').unwrap().0.len() - 2)
            .sum();
        assert!(lexeme_bytes <= MAX_VECTOR_BYTES + 16, "{lexeme_bytes}");
    }
}
