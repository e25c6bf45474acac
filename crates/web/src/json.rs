//! The JSON shapes of Mailpit's `/api/v1`, field for field, built from the
//! store's types.
//!
//! Field names are Mailpit's (PascalCase for messages, snake_case for the list
//! envelope); IDs are the store's decimal ids as strings; times are RFC 3339 UTC.
//! `Tags` are the message's tags, sorted by name; `tags` in a list answer
//! names every tag in use.
//! `Flagged` (the star) is sokkel's own.

use std::collections::BTreeMap;

use serde::Serialize;
use sokkel_store::mime::{AttachmentInfo, ParsedMessage};
use sokkel_store::{Address, MessageCounts, StoredMessage, Summary};

use sokkel_store::time::rfc3339_millis;

/// A mailbox as Mailpit writes it: `{"Name": "...", "Address": "..."}`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct AddressJson<'a> {
    pub name: &'a str,
    pub address: &'a str,
}

impl<'a> From<&'a Address> for AddressJson<'a> {
    fn from(address: &'a Address) -> Self {
        AddressJson {
            name: &address.name,
            address: &address.address,
        }
    }
}

fn addresses(list: &[Address]) -> Vec<AddressJson<'_>> {
    list.iter().map(AddressJson::from).collect()
}

/// One row of a message list (Mailpit's `MessageSummary`), borrowed from the
/// store's summary, which bounds every field (sokkel_store's `SUMMARY_*`
/// limits): at most 50 addresses and 4 KiB of them per list, with the header's
/// total in `ToCount`, `CcCount` and `ReplyToCount`, which Mailpit lacks.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct MessageSummaryJson<'a> {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "MessageID")]
    pub message_id: &'a str,
    pub read: bool,
    /// Starred (IMAP's `\Flagged`); sokkel's own, Mailpit has no star.
    pub flagged: bool,
    /// `null` when the message has no From header, as in Mailpit.
    pub from: Option<AddressJson<'a>>,
    pub to: Vec<AddressJson<'a>>,
    pub to_count: u64,
    pub cc: Vec<AddressJson<'a>>,
    pub cc_count: u64,
    /// Always empty: a Bcc header rarely survives sending, and the list does not
    /// parse bodies to look for one. The full message has it.
    pub bcc: [AddressJson<'a>; 0],
    pub reply_to: Vec<AddressJson<'a>>,
    pub reply_to_count: u64,
    pub subject: &'a str,
    pub created: String,
    pub tags: &'a [String],
    pub size: u64,
    pub attachments: u32,
    pub snippet: &'a str,
}

impl<'a> From<&'a Summary> for MessageSummaryJson<'a> {
    fn from(summary: &'a Summary) -> Self {
        MessageSummaryJson {
            id: summary.id.to_string(),
            message_id: summary.message_id.as_deref().unwrap_or_default(),
            read: summary.read,
            flagged: summary.flagged,
            from: summary.from.as_ref().map(AddressJson::from),
            to: addresses(&summary.to),
            to_count: summary.to_count,
            cc: addresses(&summary.cc),
            cc_count: summary.cc_count,
            bcc: [],
            reply_to: addresses(&summary.reply_to),
            reply_to_count: summary.reply_to_count,
            subject: &summary.subject,
            created: rfc3339_millis(summary.received_at),
            tags: &summary.tags,
            size: summary.size,
            attachments: summary.attachments,
            snippet: &summary.snippet,
        }
    }
}

/// A page of messages (Mailpit's `MessagesSummary`), for lists and searches.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct MessagesJson<'a> {
    /// Every message in the mailbox.
    pub total: u64,
    /// Every unread message in the mailbox.
    pub unread: u64,
    /// How many messages this page holds (Mailpit keeps it for old clients).
    pub count: usize,
    /// How many messages match the query (for a list: `total`).
    pub messages_count: u64,
    /// How many unread messages match the query, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages_unread: Option<u64>,
    /// The offset this page starts at.
    pub start: usize,
    /// Every tag in use (Mailpit's list; not only this page's).
    pub tags: Vec<String>,
    pub messages: Vec<MessageSummaryJson<'a>>,
}

impl<'a> MessagesJson<'a> {
    pub(crate) fn new(
        counts: MessageCounts,
        matches: u64,
        matches_unread: Option<u64>,
        start: usize,
        page: &'a [Summary],
    ) -> Self {
        MessagesJson {
            total: counts.total,
            unread: counts.unread,
            count: page.len(),
            messages_count: matches,
            messages_unread: matches_unread,
            start,
            tags: Vec::new(),
            messages: page.iter().map(MessageSummaryJson::from).collect(),
        }
    }
}

impl MessagesJson<'_> {
    /// The answer with `tags`, every tag in use.
    pub(crate) fn with_tags(self, tags: Vec<String>) -> Self {
        MessagesJson { tags, ..self }
    }
}

/// The data of an `update` event about a message's tags.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TagsUpdateJson<'a> {
    #[serde(rename = "ID")]
    pub id: String,
    pub tags: &'a [String],
}

/// An attachment or inline part (Mailpit's `Attachment`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct AttachmentJson {
    #[serde(rename = "PartID")]
    pub part_id: String,
    pub file_name: String,
    pub content_type: String,
    #[serde(rename = "ContentID")]
    pub content_id: String,
    pub size: usize,
}

impl From<&AttachmentInfo> for AttachmentJson {
    fn from(info: &AttachmentInfo) -> Self {
        AttachmentJson {
            part_id: info.part_id.clone(),
            file_name: info.file_name.clone(),
            content_type: info.content_type.clone(),
            content_id: info.content_id.clone().unwrap_or_default(),
            size: info.size,
        }
    }
}

/// The List-Unsubscribe summary Mailpit includes with every message.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListUnsubscribeJson {
    pub header: String,
    pub links: Vec<String>,
    pub errors: String,
    pub header_post: String,
}

/// The most addresses the full message view (`/api/v1/message/{ID}`) carries in
/// each of To, Cc, Bcc and Reply-To; `ToCount` (and so on) says how many the
/// header has. `/raw` and `/headers` have every one.
pub const MESSAGE_ADDRESSES: usize = 1000;

/// The full message view's `Text` and `HTML` are cut to this many bytes each (on
/// a character boundary); `/raw`, the parts and `/view/{ID}.html` have them whole.
pub const MESSAGE_BODY_BYTES: usize = 2 << 20;

/// One message with its bodies (Mailpit's `Message`), bounded by
/// [`MESSAGE_ADDRESSES`] and [`MESSAGE_BODY_BYTES`].
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct MessageJson<'a> {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "MessageID")]
    pub message_id: &'a str,
    /// Starred (IMAP's `\Flagged`); sokkel's own.
    pub flagged: bool,
    pub from: Option<AddressJson<'a>>,
    pub to: Vec<AddressJson<'a>>,
    pub to_count: u64,
    pub cc: Vec<AddressJson<'a>>,
    pub cc_count: u64,
    pub bcc: Vec<AddressJson<'a>>,
    pub bcc_count: u64,
    pub reply_to: Vec<AddressJson<'a>>,
    pub reply_to_count: u64,
    pub return_path: &'a str,
    pub subject: &'a str,
    pub list_unsubscribe: ListUnsubscribeJson,
    /// The Date header if it parsed, else when the message arrived.
    pub date: String,
    pub tags: Vec<String>,
    /// The user the client authenticated as; absent when it did not.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub username: &'a str,
    pub text: &'a str,
    #[serde(rename = "HTML")]
    pub html: &'a str,
    pub size: u64,
    pub inline: Vec<AttachmentJson>,
    pub attachments: Vec<AttachmentJson>,
    /// Every attempt to relay the message (release, auto-relay), oldest
    /// first; sokkel's own.
    pub relays: Vec<crate::release::RelayJson>,
}

/// The addresses of one header field, read from the raw bytes: the first
/// [`MESSAGE_ADDRESSES`] and how many there are.
#[derive(Debug, Default)]
pub(crate) struct AddressList {
    pub first: Vec<Address>,
    pub count: u64,
}

impl AddressList {
    fn json(&self) -> Vec<AddressJson<'_>> {
        addresses(&self.first)
    }
}

/// What the body of a message adds to its summary, read from the raw bytes.
pub(crate) struct BodyParts {
    pub parsed: ParsedMessage,
    pub to: AddressList,
    pub cc: AddressList,
    pub bcc: AddressList,
    pub reply_to: AddressList,
    pub return_path: String,
    pub text_from_html: Option<String>,
}

impl<'a> MessageJson<'a> {
    pub(crate) fn new(message: &'a StoredMessage, body: &'a BodyParts) -> Self {
        let summary = &message.summary;
        let header = |name: &str| {
            body.parsed
                .headers
                .iter()
                .find(|(field, _)| field.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.trim().to_string())
        };
        let list_unsubscribe = match header("List-Unsubscribe") {
            Some(value) => ListUnsubscribeJson {
                links: angle_bracketed(&value),
                header: value,
                errors: String::new(),
                header_post: header("List-Unsubscribe-Post").unwrap_or_default(),
            },
            None => ListUnsubscribeJson::default(),
        };
        let (inline, attachments): (Vec<_>, Vec<_>) =
            body.parsed.attachments.iter().partition(|info| info.inline);
        let text = body
            .parsed
            .text
            .as_deref()
            .or(body.text_from_html.as_deref())
            .unwrap_or_default();
        MessageJson {
            id: summary.id.to_string(),
            message_id: summary.message_id.as_deref().unwrap_or_default(),
            flagged: summary.flagged,
            from: summary.from.as_ref().map(AddressJson::from),
            to: body.to.json(),
            to_count: body.to.count,
            cc: body.cc.json(),
            cc_count: body.cc.count,
            bcc: body.bcc.json(),
            bcc_count: body.bcc.count,
            reply_to: body.reply_to.json(),
            reply_to_count: body.reply_to.count,
            return_path: &body.return_path,
            subject: &summary.subject,
            list_unsubscribe,
            date: summary
                .date
                .clone()
                .unwrap_or_else(|| rfc3339_millis(summary.received_at)),
            tags: summary.tags.clone(),
            username: message.envelope.auth_user.as_deref().unwrap_or_default(),
            text: prefix(text, MESSAGE_BODY_BYTES),
            html: prefix(
                body.parsed.html.as_deref().unwrap_or_default(),
                MESSAGE_BODY_BYTES,
            ),
            size: summary.size,
            inline: inline.into_iter().map(AttachmentJson::from).collect(),
            attachments: attachments.into_iter().map(AttachmentJson::from).collect(),
            relays: Vec::new(),
        }
    }
}

/// The longest start of `text` of at most `max` bytes that ends on a character
/// boundary.
pub(crate) fn prefix(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The `<...>` items of a header such as List-Unsubscribe.
fn angle_bracketed(value: &str) -> Vec<String> {
    value
        .split('<')
        .skip(1)
        .filter_map(|rest| rest.split_once('>').map(|(inside, _)| inside.trim()))
        .filter(|inside| !inside.is_empty())
        .map(str::to_string)
        .collect()
}

/// The header fields of a message as Go's `mail.Header` encodes them (Mailpit's
/// `/headers`): canonical names (`Content-Type`, `Message-Id`) in sorted order,
/// each with every value in the order they appear.
pub(crate) fn headers(parsed: &ParsedMessage) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in &parsed.headers {
        map.entry(canonical_header_name(name))
            .or_default()
            .push(value.trim().to_string());
    }
    map
}

/// `content-TYPE` → `Content-Type`, as Go's `textproto.CanonicalMIMEHeaderKey`.
fn canonical_header_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for ch in name.chars() {
        out.push(if upper {
            ch.to_ascii_uppercase()
        } else {
            ch.to_ascii_lowercase()
        });
        upper = ch == '-';
    }
    out
}

/// The SMTP side of a message: sokkel's own endpoint, which Mailpit lacks.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct EnvelopeJson {
    #[serde(rename = "ID")]
    pub id: String,
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub helo: String,
    pub client_addr: String,
    pub received: String,
    #[serde(rename = "BareLF")]
    pub bare_lf: bool,
    #[serde(rename = "SMTPUTF8")]
    pub smtputf8: bool,
    #[serde(rename = "TLS")]
    pub tls: Option<TlsJson>,
    pub auth_user: Option<String>,
    pub size: u64,
}

/// The TLS parameters of the session a message came in on.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TlsJson {
    pub version: String,
    pub cipher: String,
}

impl From<&StoredMessage> for EnvelopeJson {
    fn from(message: &StoredMessage) -> Self {
        let envelope = &message.envelope;
        EnvelopeJson {
            id: message.summary.id.to_string(),
            mail_from: envelope.mail_from.clone(),
            rcpt_to: envelope.rcpt_to.clone(),
            helo: envelope.helo.clone(),
            client_addr: envelope.client_addr.to_string(),
            received: rfc3339_millis(message.summary.received_at),
            bare_lf: envelope.bare_lf,
            smtputf8: envelope.smtputf8,
            tls: envelope.tls.as_ref().map(|tls| TlsJson {
                version: tls.version.clone(),
                cipher: tls.cipher.clone(),
            }),
            auth_user: envelope.auth_user.clone(),
            size: message.summary.size,
        }
    }
}

/// `/api/v1/info` (Mailpit's `AppInformation`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct InfoJson {
    pub version: String,
    /// Empty: sokkel does not ask the internet for newer releases.
    pub latest_version: String,
    pub database: String,
    pub database_size: u64,
    pub messages: u64,
    pub unread: u64,
    pub tags: BTreeMap<String, u64>,
    pub runtime_stats: RuntimeStatsJson,
}

/// The runtime part of `/api/v1/info`, as far as sokkel knows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct RuntimeStatsJson {
    /// Seconds since the web server started.
    pub uptime: u64,
    /// Resident memory in bytes (0 where the platform does not say).
    pub memory: u64,
    /// Messages this process stored through SMTP.
    #[serde(rename = "SMTPAccepted")]
    pub smtp_accepted: u64,
    /// The bytes of those messages.
    #[serde(rename = "SMTPAcceptedSize")]
    pub smtp_accepted_size: u64,
    /// MAIL, RCPT, DATA and BDAT refused (and messages refused at their end).
    #[serde(rename = "SMTPRejected")]
    pub smtp_rejected: u64,
    /// Always 0: sokkel keeps every message it accepts, where Mailpit counts
    /// the duplicates `--ignore-duplicate-ids` drops.
    #[serde(rename = "SMTPIgnored")]
    pub smtp_ignored: u64,
    /// Messages deleted since the server started, by any means.
    pub messages_deleted: u64,
    /// WebSocket clients dropped for falling too far behind (sokkel's own).
    #[serde(rename = "WebSocketsDropped")]
    pub websockets_dropped: u64,
}

/// A WebSocket frame: `{"Type": "new", "Data": ...}`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct EventJson<T: Serialize> {
    #[serde(rename = "Type")]
    pub kind: &'static str,
    pub data: T,
}

/// The data of a `stats` event.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct StatsJson {
    pub total: u64,
    pub unread: u64,
    pub version: String,
}

/// The data of a `delete` event.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct IdJson {
    #[serde(rename = "ID")]
    pub id: String,
}

/// The data of an `update` event about the read flag.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ReadJson {
    #[serde(rename = "ID")]
    pub id: String,
    pub read: bool,
}

/// The data of an `update` event about the star (sokkel's own).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct FlaggedJson {
    #[serde(rename = "ID")]
    pub id: String,
    pub flagged: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_header_names_match_go() {
        let cases = [
            ("content-type", "Content-Type"),
            ("MESSAGE-ID", "Message-Id"),
            ("x-sokkel-test", "X-Sokkel-Test"),
            ("Subject", "Subject"),
        ];
        for (input, expected) in cases {
            assert_eq!(canonical_header_name(input), expected);
        }
    }

    #[test]
    fn list_unsubscribe_links() {
        assert_eq!(
            angle_bracketed("<mailto:u@example.com>, <https://example.com/u?x=1>"),
            ["mailto:u@example.com", "https://example.com/u?x=1"]
        );
        assert!(angle_bracketed("no links here").is_empty());
        assert!(angle_bracketed("<unterminated").is_empty());
    }
}
