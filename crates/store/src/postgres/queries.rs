//! Rows in and out on PostgreSQL: inserting a delivered message, and reading
//! rows back as the store's types. The columns and their meaning are the
//! SQLite backend's (`sqlite/queries.rs`); the backend-neutral parts
//! (`summary_of`, the bounds of a listed summary) live in `crate::summary`.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::next_seq;
use crate::mime::Digest;
use crate::summary;
use crate::time::{from_millis, to_millis};
use crate::{
    Address, Envelope, MessageId, NewMessage, SUMMARY_TEXT_BYTES, StoreError, StoredMessage,
    Summary, TlsInfo,
};

/// The columns [`summary_from_row`] reads, in its order, from `messages AS m`.
pub(super) const SUMMARY_COLUMNS: &str = "m.id, m.received_at, m.mail_from, m.rcpt_to, m.from_name, \
    m.from_addr, m.to_list, m.cc_list, m.reply_to_list, m.subject, m.date, m.message_id, \
    m.size, m.attachments, m.snippet, m.read, m.bare_lf, m.parsed, m.to_count, m.cc_count, \
    m.reply_to_count, m.bcc_list, m.bcc_count, m.flagged, \
    ARRAY(SELECT t.name FROM message_tags AS mt \
        JOIN tags AS t ON t.id = mt.tag_id WHERE mt.message_id = m.id)";
const SUMMARY_COLUMN_COUNT: usize = 25;

/// [`SUMMARY_COLUMNS`] and then what [`stored_message_from_row`] reads
/// besides: the envelope and the raw bytes (`raw AS r`).
pub(super) const STORED_COLUMNS: &str = "m.helo, m.client_addr, m.smtputf8, m.tls_version, \
    m.tls_cipher, m.auth_user, r.data";

const INSERT_MESSAGE: &str = "INSERT INTO messages (
        received_at, mail_from, rcpt_to, helo, client_addr, bare_lf, smtputf8,
        tls_version, tls_cipher, auth_user, size, parsed, subject, from_name, from_addr,
        to_list, cc_list, reply_to_list, date, message_id, attachments, snippet,
        to_count, cc_count, reply_to_count, bcc_list, bcc_count, inline, modseq
    ) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
        $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29)
    RETURNING id";

/// Insert one message, its bytes and its mailboxes, queued for indexing
/// (`unindexed`), with modseq `seq` (from [`next_seq`], taken first in the
/// same transaction). The caller owns the transaction.
pub(super) async fn insert_message(
    tx: &impl GenericClient,
    message: &NewMessage,
    digest: &Digest,
    seq: i64,
) -> Result<MessageId, StoreError> {
    let envelope = &message.envelope;
    let from = digest.from.as_ref();
    let (to, to_count) = summary::stored_list(&digest.to);
    let (cc, cc_count) = summary::stored_list(&digest.cc);
    let (reply_to, reply_to_count) = summary::stored_list(&digest.reply_to);
    let (bcc, bcc_count) = summary::stored_list(&digest.bcc);
    let count_if_cut =
        |list: &[Address], count: u64| (count > list.len() as u64).then_some(to_i64(count));
    let statement = tx.prepare_cached(INSERT_MESSAGE).await?;
    let row = tx
        .query_one(
            &statement,
            &[
                &to_millis(message.received_at),
                &envelope.mail_from,
                &to_json(&envelope.rcpt_to)?,
                &envelope.helo,
                &envelope.client_addr.to_string(),
                &envelope.bare_lf,
                &envelope.smtputf8,
                &envelope.tls.as_ref().map(|tls| &tls.version),
                &envelope.tls.as_ref().map(|tls| &tls.cipher),
                &envelope.auth_user,
                &to_i64(message.raw.len()),
                &digest.parsed,
                &digest.subject,
                &from.map(|from| &from.name),
                &from.map(|from| &from.address),
                &to_json(&to)?,
                &to_json(&cc)?,
                &to_json(&reply_to)?,
                &digest.date,
                &digest.message_id,
                &i64::from(digest.attachments),
                &digest.snippet,
                &count_if_cut(&to, to_count),
                &count_if_cut(&cc, cc_count),
                &count_if_cut(&reply_to, reply_to_count),
                &to_json(&bcc)?,
                &count_if_cut(&bcc, bcc_count),
                &i64::from(digest.inline),
                &seq,
            ],
        )
        .await?;
    let id: i64 = row.get(0);
    let statement = tx
        .prepare_cached("INSERT INTO raw (id, data) VALUES ($1, $2)")
        .await?;
    tx.execute(&statement, &[&id, &message.raw]).await?;
    // The To and Cc lists as stored (at most SUMMARY_ADDRESSES each): a
    // hostile header of 20,000 addresses does not become 20,000 rows.
    let mut addresses: Vec<String> = (envelope.rcpt_to.iter().map(String::as_str))
        .chain(to.iter().chain(&cc).map(|address| address.address.as_str()))
        .filter(|address| !address.is_empty())
        .map(crate::sqlite::mailbox_address)
        .collect();
    addresses.sort_unstable();
    addresses.dedup();
    let statement = tx
        .prepare_cached(
            "INSERT INTO mailboxes (address, message_id)
             SELECT unnest($1::text[]), $2 ON CONFLICT DO NOTHING",
        )
        .await?;
    tx.execute(&statement, &[&addresses, &id]).await?;
    let statement = tx
        .prepare_cached("INSERT INTO unindexed (id) VALUES ($1)")
        .await?;
    tx.execute(&statement, &[&id]).await?;
    Ok(MessageId(id))
}

/// Insert `message` in a transaction of its own (an import, an IMAP APPEND):
/// takes the change number, inserts, commits.
#[allow(dead_code)]
pub(super) async fn insert_alone(
    client: &mut deadpool_postgres::Object,
    message: &NewMessage,
    digest: &Digest,
) -> Result<MessageId, StoreError> {
    let tx = client.transaction().await?;
    let seq = next_seq(&tx).await?;
    let id = insert_message(&tx, message, digest, seq).await?;
    tx.commit().await?;
    Ok(id)
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

fn text(row: &Row, index: usize, read: Read) -> Result<Option<String>, StoreError> {
    let value: Option<&str> = row.try_get(index)?;
    Ok(value.map(|text| match read {
        Read::Listed => summary::cut(text, SUMMARY_TEXT_BYTES).to_string(),
        Read::Whole => text.to_string(),
    }))
}

/// A summary from a row of [`SUMMARY_COLUMNS`].
pub(super) fn summary_from_row(row: &Row, read: Read) -> Result<Summary, StoreError> {
    let from = match (text(row, 4, read)?, text(row, 5, read)?) {
        (None, None) => None,
        (name, address) => Some(Address {
            name: name.unwrap_or_default(),
            address: address.unwrap_or_default(),
        }),
    };
    let rcpt_to: Vec<String> = from_json(row.try_get(3)?)?;
    // The stored lists hold at most SUMMARY_ADDRESSES; a NULL count means that
    // the list is the whole header.
    let list = |index: usize, count_index: usize| -> Result<(Vec<Address>, u64), StoreError> {
        let json: Option<&str> = row.try_get(index)?;
        let list: Vec<Address> = match json {
            Some(json) => from_json(json)?,
            None => Vec::new(),
        };
        let count = row
            .try_get::<_, Option<i64>>(count_index)?
            .map_or(list.len() as u64, |count| count.max(0) as u64);
        Ok(match read {
            Read::Listed => (summary::listed(list), count),
            Read::Whole => (list, count),
        })
    };
    let (to, to_count) = list(6, 18)?;
    let (cc, cc_count) = list(7, 19)?;
    let (reply_to, reply_to_count) = list(8, 20)?;
    let (bcc, bcc_count) = list(21, 22)?;
    let mut tags: Vec<String> = row.try_get(24)?;
    tags.sort_unstable_by_key(|tag| tag.to_lowercase());
    Ok(Summary {
        id: MessageId(row.try_get(0)?),
        received_at: from_millis(row.try_get(1)?),
        mail_from: row.try_get(2)?,
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
        subject: text(row, 9, read)?.unwrap_or_default(),
        date: row.try_get(10)?,
        message_id: text(row, 11, read)?,
        size: row.try_get::<_, i64>(12)?.max(0) as u64,
        attachments: u32::try_from(row.try_get::<_, i64>(13)?).unwrap_or(u32::MAX),
        snippet: text(row, 14, read)?.unwrap_or_default(),
        read: row.try_get(15)?,
        flagged: row.try_get(23)?,
        tags,
        bare_lf: row.try_get(16)?,
        parsed: row.try_get(17)?,
    })
}

/// A summary for a list from a row of [`SUMMARY_COLUMNS`].
pub(super) fn listed_summary_from_row(row: &Row) -> Result<Summary, StoreError> {
    summary_from_row(row, Read::Listed)
}

/// A whole message from a row of [`SUMMARY_COLUMNS`] then [`STORED_COLUMNS`].
pub(super) fn stored_message_from_row(row: &Row) -> Result<StoredMessage, StoreError> {
    let summary = summary_from_row(row, Read::Whole)?;
    let n = SUMMARY_COLUMN_COUNT;
    let client_addr: &str = row.try_get(n + 1)?;
    let client_addr = client_addr
        .parse()
        .map_err(|error| StoreError::corrupt(format!("client address {client_addr:?}: {error}")))?;
    let tls = match (row.try_get(n + 3)?, row.try_get(n + 4)?) {
        (Some(version), Some(cipher)) => Some(TlsInfo { version, cipher }),
        _ => None,
    };
    let envelope = Envelope {
        mail_from: summary.mail_from.clone(),
        rcpt_to: summary.rcpt_to.clone(),
        helo: row.try_get(n)?,
        client_addr,
        bare_lf: summary.bare_lf,
        smtputf8: row.try_get(n + 2)?,
        tls,
        auth_user: row.try_get(n + 5)?,
    };
    Ok(StoredMessage {
        summary,
        envelope,
        raw: row.try_get(n + 6)?,
    })
}

pub(super) fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|error| StoreError::corrupt(error.to_string()))
}

pub(super) fn from_json<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, StoreError> {
    serde_json::from_str(json).map_err(|error| StoreError::corrupt(error.to_string()))
}

/// PostgreSQL integers are i64; counts and sizes beyond that cannot happen.
pub(super) fn to_i64(value: impl TryInto<i64>) -> i64 {
    value.try_into().unwrap_or(i64::MAX)
}

/// Ids as PostgreSQL takes them in `= ANY($1)`.
pub(super) fn id_array(ids: &[MessageId]) -> Vec<i64> {
    ids.iter().map(|id| id.0).collect()
}
