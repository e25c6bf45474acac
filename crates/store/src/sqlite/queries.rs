//! Rows in and out: inserting a delivered message, and reading rows back as
//! the store's types.

use rusqlite::types::Type;
use rusqlite::{Connection, Row, params};

use super::index::index_message;
use super::to_i64;
use crate::index_text::IndexText;
use crate::mime::Digest;
pub(super) use crate::summary::summary_of;
pub(super) use crate::time::{from_millis, to_millis};
use crate::{
    Address, Envelope, MessageId, NewMessage, SUMMARY_TEXT_BYTES, StoredMessage, Summary, TlsInfo,
    summary,
};

/// The columns [`summary_from_row`] reads, in its order, from `messages AS m`.
pub(super) const SUMMARY_COLUMNS: &str = "m.id, m.received_at, m.mail_from, m.rcpt_to, m.from_name, \
    m.from_addr, m.to_list, m.cc_list, m.reply_to_list, m.subject, m.date, m.message_id, \
    m.size, m.attachments, m.snippet, m.read, m.bare_lf, m.parsed, m.to_count, m.cc_count, \
    m.reply_to_count, m.bcc_list, m.bcc_count, m.flagged, \
    (SELECT json_group_array(t.name) FROM message_tags AS mt \
        JOIN tags AS t ON t.id = mt.tag_id WHERE mt.message_id = m.id)";
pub(super) const SUMMARY_COLUMN_COUNT: usize = 25;

pub(super) const INSERT_MESSAGE: &str = "INSERT INTO messages (
        received_at, mail_from, rcpt_to, helo, client_addr, bare_lf, smtputf8,
        tls_version, tls_cipher, auth_user, size, parsed, subject, from_name, from_addr,
        to_list, cc_list, reply_to_list, date, message_id, attachments, snippet,
        to_count, cc_count, reply_to_count, bcc_list, bcc_count, inline, id, modseq
    ) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
        ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29,
        (SELECT change_seq + 1 FROM store_state))";

/// When a new message goes into the search index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Indexing {
    /// In the same transaction (bulk imports).
    Now,
    /// Later, by the materialiser in a batch of its own
    /// ([`super::index::index_queued`]); until then the message's id waits in
    /// the `unindexed` table, so a crash in between only delays its indexing.
    Deferred,
}

/// Insert one message as `id`, its bytes and its mailboxes; the caller owns
/// the transaction and commits it with `commit_change(tx, true)`, whose number
/// becomes the message's modseq. The id is the one the log gave it (or one
/// taken from the log's [`super::log::IdHold`]), never SQLite's own choice, so
/// that the `250 ... queued as ID` and the row agree; `sqlite_sequence`
/// follows the highest.
pub(super) fn insert_message(
    conn: &Connection,
    id: MessageId,
    message: &NewMessage,
    digest: &Digest,
    indexing: Indexing,
) -> rusqlite::Result<MessageId> {
    let envelope = &message.envelope;
    let from = digest.from.as_ref();
    // At most SUMMARY_ADDRESSES per list, and the count only when it says more
    // (schema migration 5).
    let (to, to_count) = summary::stored_list(&digest.to);
    let (cc, cc_count) = summary::stored_list(&digest.cc);
    let (reply_to, reply_to_count) = summary::stored_list(&digest.reply_to);
    let (bcc, bcc_count) = summary::stored_list(&digest.bcc);
    let count_if_cut =
        |list: &[Address], count: u64| (count > list.len() as u64).then_some(to_i64(count));
    conn.prepare_cached(INSERT_MESSAGE)?.execute(params![
        to_millis(message.received_at),
        envelope.mail_from,
        to_json(&envelope.rcpt_to)?,
        envelope.helo,
        envelope.client_addr.to_string(),
        envelope.bare_lf,
        envelope.smtputf8,
        envelope.tls.as_ref().map(|tls| &tls.version),
        envelope.tls.as_ref().map(|tls| &tls.cipher),
        envelope.auth_user,
        to_i64(message.raw.len()),
        digest.parsed,
        digest.subject,
        from.map(|from| &from.name),
        from.map(|from| &from.address),
        to_json(&to)?,
        to_json(&cc)?,
        to_json(&reply_to)?,
        digest.date,
        digest.message_id,
        digest.attachments,
        digest.snippet,
        count_if_cut(&to, to_count),
        count_if_cut(&cc, cc_count),
        count_if_cut(&reply_to, reply_to_count),
        to_json(&bcc)?,
        count_if_cut(&bcc, bcc_count),
        digest.inline,
        id.0,
    ])?;
    let id = id.0;
    conn.prepare_cached("INSERT INTO raw (id, data) VALUES (?1, ?2)")?
        .execute(params![id, message.raw])?;
    // The To and Cc lists as stored (at most SUMMARY_ADDRESSES each), as
    // schema migration 6 fills the table for older messages: a hostile header
    // of 20,000 addresses does not become 20,000 rows.
    let addresses = (envelope.rcpt_to.iter().map(String::as_str))
        .chain(to.iter().chain(&cc).map(|address| address.address.as_str()));
    let mut mailbox = conn
        .prepare_cached("INSERT OR IGNORE INTO mailboxes (address, message_id) VALUES (?1, ?2)")?;
    for address in addresses.filter(|address| !address.is_empty()) {
        mailbox.execute(params![super::mailbox_address(address), id])?;
    }
    match indexing {
        Indexing::Now => {
            let text = IndexText::new(&envelope.mail_from, &envelope.rcpt_to, digest);
            index_message(conn, id, &text)?;
        }
        Indexing::Deferred => {
            conn.prepare_cached("INSERT INTO unindexed (id) VALUES (?1)")?
                .execute([id])?;
        }
    }
    Ok(MessageId(id))
}

/// The number [`super::changes::commit_change`] will give the open write
/// transaction on `conn`: the modseq of what it changes. The transaction holds
/// the write lock, so no other commit can take the number first.
pub(super) fn pending_seq(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT change_seq + 1 FROM store_state")?
        .query_row([], |row| row.get(0))
}

/// Record that the open write transaction on `conn` changed the messages `ids`
/// (their tags, say) by setting their modseq to `seq`, its
/// [`pending_seq`]; the caller then commits with `commit_change(tx, true)`.
pub(super) fn touch(conn: &Connection, ids: &[MessageId], seq: i64) -> rusqlite::Result<()> {
    let mut statement = conn.prepare_cached("UPDATE messages SET modseq = ?2 WHERE id = ?1")?;
    for id in ids {
        statement.execute(params![id.0, seq])?;
    }
    Ok(())
}

/// How much of a row [`summary_from_row`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Read {
    /// A summary for a list: every field bounded (summary.rs).
    Listed,
    /// The summary of one message on its own: every string whole, every
    /// envelope recipient, the address lists as stored.
    Whole,
}

/// A text column, cut in place for a listed summary so that a huge value is not
/// copied first.
pub(super) fn text_column(
    row: &Row<'_>,
    index: usize,
    read: Read,
) -> rusqlite::Result<Option<String>> {
    let value = row.get_ref(index)?;
    if value == rusqlite::types::ValueRef::Null {
        return Ok(None);
    }
    let text = value.as_str()?;
    Ok(Some(match read {
        Read::Listed => summary::cut(text, SUMMARY_TEXT_BYTES).to_string(),
        Read::Whole => text.to_string(),
    }))
}

pub(super) fn summary_from_row(row: &Row<'_>, read: Read) -> rusqlite::Result<Summary> {
    let from_name = text_column(row, 4, read)?;
    let from_addr = text_column(row, 5, read)?;
    let from = match (from_name, from_addr) {
        (None, None) => None,
        (name, address) => Some(Address {
            name: name.unwrap_or_default(),
            address: address.unwrap_or_default(),
        }),
    };
    let rcpt_to: Vec<String> = from_json(row, 3)?;
    // The stored lists hold at most SUMMARY_ADDRESSES; a NULL count means that
    // the list is the whole header.
    let list = |index: usize| -> rusqlite::Result<(Vec<Address>, u64)> {
        let list: Vec<Address> = from_json(row, index)?;
        let count = row
            .get::<_, Option<i64>>(index + 12)?
            .map_or(list.len() as u64, |count| count.max(0) as u64);
        Ok(match read {
            Read::Listed => (summary::listed(list), count),
            Read::Whole => (list, count),
        })
    };
    let (to, to_count) = list(6)?;
    let (cc, cc_count) = list(7)?;
    let (reply_to, reply_to_count) = list(8)?;
    // A row stored before schema migration 6 has no Bcc list until the index
    // backfill parses it again.
    let (bcc, bcc_count) = match row.get_ref(21)? {
        rusqlite::types::ValueRef::Null => (Vec::new(), 0),
        _ => {
            let bcc: Vec<Address> = from_json(row, 21)?;
            let count = row
                .get::<_, Option<i64>>(22)?
                .map_or(bcc.len() as u64, |count| count.max(0) as u64);
            match read {
                Read::Listed => (summary::listed(bcc), count),
                Read::Whole => (bcc, count),
            }
        }
    };
    Ok(Summary {
        id: MessageId(row.get(0)?),
        received_at: from_millis(row.get(1)?),
        mail_from: row.get(2)?,
        rcpt_to: match read {
            Read::Listed => summary::listed_recipients(rcpt_to),
            Read::Whole => rcpt_to,
        },
        from,
        to,
        to_count,
        cc,
        cc_count,
        reply_to,
        reply_to_count,
        bcc,
        bcc_count,
        subject: text_column(row, 9, read)?.unwrap_or_default(),
        date: row.get(10)?,
        message_id: text_column(row, 11, read)?,
        size: row.get::<_, i64>(12)? as u64,
        attachments: row.get(13)?,
        // At most 200 characters since the first release; cut all the same.
        snippet: text_column(row, 14, read)?.unwrap_or_default(),
        read: row.get(15)?,
        flagged: row.get(23)?,
        tags: {
            let mut tags: Vec<String> = from_json(row, 24)?;
            tags.sort_unstable_by_key(|tag| tag.to_lowercase());
            tags
        },
        bare_lf: row.get(16)?,
        parsed: row.get(17)?,
    })
}

pub(super) fn listed_summary_from_row(row: &Row<'_>) -> rusqlite::Result<Summary> {
    summary_from_row(row, Read::Listed)
}

pub(super) fn stored_message_from_row(row: &Row<'_>) -> rusqlite::Result<StoredMessage> {
    let summary = summary_from_row(row, Read::Whole)?;
    let n = SUMMARY_COLUMN_COUNT;
    let client_addr: String = row.get(n + 1)?;
    let client_addr = client_addr.parse().map_err(|error| {
        rusqlite::Error::FromSqlConversionFailure(n + 1, Type::Text, Box::new(error))
    })?;
    let tls = match (row.get(n + 3)?, row.get(n + 4)?) {
        (Some(version), Some(cipher)) => Some(TlsInfo { version, cipher }),
        _ => None,
    };
    let envelope = Envelope {
        mail_from: summary.mail_from.clone(),
        rcpt_to: summary.rcpt_to.clone(),
        helo: row.get(n)?,
        client_addr,
        bare_lf: summary.bare_lf,
        smtputf8: row.get(n + 2)?,
        tls,
        auth_user: row.get(n + 5)?,
    };
    Ok(StoredMessage {
        summary,
        envelope,
        raw: row.get(n + 6)?,
    })
}

pub(super) fn to_json<T: serde::Serialize>(value: &T) -> rusqlite::Result<String> {
    serde_json::to_string(value)
        .map_err(|error| rusqlite::Error::ToSqlConversionFailure(Box::new(error)))
}

pub(super) fn from_json<T: serde::de::DeserializeOwned>(
    row: &Row<'_>,
    index: usize,
) -> rusqlite::Result<T> {
    let json = row.get_ref(index)?.as_str()?;
    serde_json::from_str(json).map_err(|error| {
        rusqlite::Error::FromSqlConversionFailure(index, Type::Text, Box::new(error))
    })
}
