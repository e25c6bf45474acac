//! Rows in and out on PostgreSQL: inserting a delivered message, and reading
//! rows back as the store's types. The columns and their meaning are the
//! SQLite backend's (`sqlite/queries.rs`); the backend-neutral parts
//! (`summary_of`, the bounds of a listed summary) live in `crate::summary`.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::index::IndexEntry;
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

/// Insert `rows` (messages with their search index entries, their bytes and
/// their mailboxes) in ONE statement, with modseq `seq` (from [`super::next_seq`], taken first in
/// the same transaction); the ids follow the order of the rows. One
/// statement, not one per message: the count triggers update the
/// `store_state` row once for the lot, where one statement per message left
/// a dead version of that row per message for every later update in the
/// transaction to step over (quadratic: a batch of 10,000 took 35 times as
/// long per message at its end as at its start). The caller owns the
/// transaction.
pub(super) async fn insert_messages(
    tx: &impl GenericClient,
    rows: &Rows<'_>,
    seq: i64,
) -> Result<Vec<MessageId>, StoreError> {
    let statement = tx.prepare_cached(INSERT_MESSAGES).await?;
    let Rows {
        received_at,
        mail_from,
        rcpt_to,
        helo,
        client_addr,
        bare_lf,
        smtputf8,
        tls_version,
        tls_cipher,
        auth_user,
        size,
        parsed,
        subject,
        from_name,
        from_addr,
        to_list,
        cc_list,
        reply_to_list,
        date,
        message_id,
        attachments,
        snippet,
        to_count,
        cc_count,
        reply_to_count,
        bcc_list,
        bcc_count,
        inline,
        search,
        data,
        addresses,
        address_of,
    } = rows;
    let found = tx
        .query(
            &statement,
            &[
                received_at,
                mail_from,
                rcpt_to,
                helo,
                client_addr,
                bare_lf,
                smtputf8,
                tls_version,
                tls_cipher,
                auth_user,
                size,
                parsed,
                subject,
                from_name,
                from_addr,
                to_list,
                cc_list,
                reply_to_list,
                date,
                message_id,
                attachments,
                snippet,
                to_count,
                cc_count,
                reply_to_count,
                bcc_list,
                bcc_count,
                inline,
                search,
                data,
                &seq,
                addresses,
                address_of,
            ],
        )
        .await?;
    let ids: Vec<MessageId> = found
        .iter()
        .map(|row| row.try_get(0).map(MessageId))
        .collect::<Result<_, _>>()?;
    // By construction (INSERT_MESSAGES); checked, as a batch whose ids did
    // not follow its order would number a folder's UIDs out of order.
    if ids.len() != size.len() || !ids.windows(2).all(|pair| pair[0].0 < pair[1].0) {
        return Err(StoreError::corrupt(format!(
            "inserting {} messages gave the ids {ids:?}",
            size.len()
        )));
    }
    Ok(ids)
}

/// [`insert_messages`]'s statement. `v` numbers the rows (`n`, the order of
/// the batch) and takes an id for each from the identity's sequence after
/// sorting (PostgreSQL evaluates a volatile function of the select list
/// after ORDER BY), so the ids grow with `n`; every table gets the same id
/// for a row, and the result is the ids in the batch's order.
const INSERT_MESSAGES: &str = "WITH v AS (
        SELECT nextval(pg_get_serial_sequence('messages', 'id')) AS id, v.*
        FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[],
            $6::boolean[], $7::boolean[], $8::text[], $9::text[], $10::text[], $11::bigint[],
            $12::boolean[], $13::text[], $14::text[], $15::text[], $16::text[], $17::text[],
            $18::text[], $19::text[], $20::text[], $21::bigint[], $22::text[], $23::bigint[],
            $24::bigint[], $25::bigint[], $26::text[], $27::bigint[], $28::bigint[],
            $29::text[], $30::bytea[])
            WITH ORDINALITY AS v (received_at, mail_from, rcpt_to, helo, client_addr, bare_lf,
                smtputf8, tls_version, tls_cipher, auth_user, size, parsed, subject, from_name,
                from_addr, to_list, cc_list, reply_to_list, date, message_id, attachments,
                snippet, to_count, cc_count, reply_to_count, bcc_list, bcc_count, inline,
                search, data, n)
        ORDER BY v.n
    ), messages AS (
        INSERT INTO messages (id, received_at, mail_from, rcpt_to, helo, client_addr, bare_lf,
            smtputf8, tls_version, tls_cipher, auth_user, size, parsed, subject, from_name,
            from_addr, to_list, cc_list, reply_to_list, date, message_id, attachments, snippet,
            to_count, cc_count, reply_to_count, bcc_list, bcc_count, inline, modseq, search)
        OVERRIDING SYSTEM VALUE
        SELECT id, received_at, mail_from, rcpt_to, helo, client_addr, bare_lf, smtputf8,
            tls_version, tls_cipher, auth_user, size, parsed, subject, from_name, from_addr,
            to_list, cc_list, reply_to_list, date, message_id, attachments, snippet, to_count,
            cc_count, reply_to_count, bcc_list, bcc_count, inline, $31::bigint,
            search::tsvector
        FROM v
    ), raw AS (
        INSERT INTO raw (id, data) SELECT id, data FROM v
    ), mailboxes AS (
        INSERT INTO mailboxes (address, message_id)
        SELECT a.address, v.id FROM unnest($32::text[], $33::bigint[]) AS a (address, n)
        JOIN v ON v.n = a.n
        ON CONFLICT DO NOTHING
    )
    SELECT id FROM v ORDER BY n";

/// Messages as [`insert_messages`] writes them: the columns of
/// [`INSERT_MESSAGES`], one array each, made before the transaction (the
/// tsvectors too), so that no parsing or splitting of words happens while
/// the cluster's write lock is held.
#[derive(Default)]
pub(super) struct Rows<'a> {
    received_at: Vec<i64>,
    mail_from: Vec<&'a str>,
    rcpt_to: Vec<String>,
    helo: Vec<&'a str>,
    client_addr: Vec<String>,
    bare_lf: Vec<bool>,
    smtputf8: Vec<bool>,
    tls_version: Vec<Option<&'a str>>,
    tls_cipher: Vec<Option<&'a str>>,
    auth_user: Vec<Option<&'a str>>,
    size: Vec<i64>,
    parsed: Vec<bool>,
    subject: Vec<&'a str>,
    from_name: Vec<Option<&'a str>>,
    from_addr: Vec<Option<&'a str>>,
    to_list: Vec<String>,
    cc_list: Vec<String>,
    reply_to_list: Vec<String>,
    date: Vec<Option<&'a str>>,
    message_id: Vec<Option<&'a str>>,
    attachments: Vec<i64>,
    snippet: Vec<&'a str>,
    to_count: Vec<Option<i64>>,
    cc_count: Vec<Option<i64>>,
    reply_to_count: Vec<Option<i64>>,
    bcc_list: Vec<String>,
    bcc_count: Vec<Option<i64>>,
    inline: Vec<i64>,
    search: Vec<String>,
    data: Vec<&'a [u8]>,
    /// Every message's mailboxes, and the number (`n`) of the message each
    /// belongs to.
    addresses: Vec<String>,
    address_of: Vec<i64>,
}

impl<'a> Rows<'a> {
    pub(super) fn new(
        messages: impl IntoIterator<Item = (&'a NewMessage, &'a Digest)>,
    ) -> Result<Rows<'a>, StoreError> {
        let mut rows = Rows::default();
        for (n, (message, digest)) in (1..).zip(messages) {
            rows.push(n, message, digest)?;
        }
        Ok(rows)
    }

    fn push(
        &mut self,
        n: i64,
        message: &'a NewMessage,
        digest: &'a Digest,
    ) -> Result<(), StoreError> {
        let envelope = &message.envelope;
        let from = digest.from.as_ref();
        let (to, to_count) = summary::stored_list(&digest.to);
        let (cc, cc_count) = summary::stored_list(&digest.cc);
        let (reply_to, reply_to_count) = summary::stored_list(&digest.reply_to);
        let (bcc, bcc_count) = summary::stored_list(&digest.bcc);
        let count_if_cut =
            |list: &[Address], count: u64| (count > list.len() as u64).then_some(to_i64(count));
        self.received_at.push(to_millis(message.received_at));
        self.mail_from.push(&envelope.mail_from);
        self.rcpt_to.push(to_json(&envelope.rcpt_to)?);
        self.helo.push(&envelope.helo);
        self.client_addr.push(envelope.client_addr.to_string());
        self.bare_lf.push(envelope.bare_lf);
        self.smtputf8.push(envelope.smtputf8);
        let tls = envelope.tls.as_ref();
        self.tls_version.push(tls.map(|tls| tls.version.as_str()));
        self.tls_cipher.push(tls.map(|tls| tls.cipher.as_str()));
        self.auth_user.push(envelope.auth_user.as_deref());
        self.size.push(to_i64(message.raw.len()));
        self.parsed.push(digest.parsed);
        self.subject.push(&digest.subject);
        self.from_name.push(from.map(|from| from.name.as_str()));
        self.from_addr.push(from.map(|from| from.address.as_str()));
        self.to_list.push(to_json(&to)?);
        self.cc_list.push(to_json(&cc)?);
        self.reply_to_list.push(to_json(&reply_to)?);
        self.date.push(digest.date.as_deref());
        self.message_id.push(digest.message_id.as_deref());
        self.attachments.push(i64::from(digest.attachments));
        self.snippet.push(&digest.snippet);
        self.to_count.push(count_if_cut(&to, to_count));
        self.cc_count.push(count_if_cut(&cc, cc_count));
        self.reply_to_count
            .push(count_if_cut(&reply_to, reply_to_count));
        self.bcc_list.push(to_json(&bcc)?);
        self.bcc_count.push(count_if_cut(&bcc, bcc_count));
        self.inline.push(i64::from(digest.inline));
        self.search.push(IndexEntry::new(message, digest).vector());
        self.data.push(&message.raw);
        // The To and Cc lists as stored (at most SUMMARY_ADDRESSES each): a
        // hostile header of 20,000 addresses does not become 20,000 rows.
        let mut addresses: Vec<String> = (envelope.rcpt_to.iter().map(String::as_str))
            .chain(to.iter().chain(&cc).map(|address| address.address.as_str()))
            .filter(|address| !address.is_empty())
            .map(crate::sqlite::mailbox_address)
            .collect();
        addresses.sort_unstable();
        addresses.dedup();
        self.address_of
            .extend(std::iter::repeat_n(n, addresses.len()));
        self.addresses.extend(addresses);
        Ok(())
    }
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
