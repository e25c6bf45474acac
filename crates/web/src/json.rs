//! The JSON shapes of Mailpit's `/api/v1`, field for field, built from the
//! store's types.
//!
//! Field names are Mailpit's (PascalCase for messages, snake_case for the list
//! envelope); IDs are the store's decimal ids as strings; times are RFC 3339 UTC.
//! sokkel has no tags, so every `Tags` is `[]`.

use std::collections::BTreeMap;

use serde::Serialize;
use sokkel_store::mime::{AttachmentInfo, ParsedMessage};
use sokkel_store::{Address, MessageCounts, StoredMessage, Summary};

use sokkel_store::time::rfc3339_millis;

/// A mailbox as Mailpit writes it: `{"Name": "...", "Address": "..."}`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct AddressJson {
    pub name: String,
    pub address: String,
}

impl From<&Address> for AddressJson {
    fn from(address: &Address) -> Self {
        AddressJson {
            name: address.name.clone(),
            address: address.address.clone(),
        }
    }
}

fn addresses(list: &[Address]) -> Vec<AddressJson> {
    list.iter().map(AddressJson::from).collect()
}

/// One row of a message list (Mailpit's `MessageSummary`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct MessageSummaryJson {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "MessageID")]
    pub message_id: String,
    pub read: bool,
    /// `null` when the message has no From header, as in Mailpit.
    pub from: Option<AddressJson>,
    pub to: Vec<AddressJson>,
    pub cc: Vec<AddressJson>,
    /// Always empty: a Bcc header rarely survives sending, and the list does not
    /// parse bodies to look for one. The full message has it.
    pub bcc: Vec<AddressJson>,
    pub reply_to: Vec<AddressJson>,
    pub subject: String,
    pub created: String,
    pub tags: Vec<String>,
    pub size: u64,
    pub attachments: u32,
    pub snippet: String,
}

impl From<&Summary> for MessageSummaryJson {
    fn from(summary: &Summary) -> Self {
        MessageSummaryJson {
            id: summary.id.to_string(),
            message_id: summary.message_id.clone().unwrap_or_default(),
            read: summary.read,
            from: summary.from.as_ref().map(AddressJson::from),
            to: addresses(&summary.to),
            cc: addresses(&summary.cc),
            bcc: Vec::new(),
            reply_to: addresses(&summary.reply_to),
            subject: summary.subject.clone(),
            created: rfc3339_millis(summary.received_at),
            tags: Vec::new(),
            size: summary.size,
            attachments: summary.attachments,
            snippet: summary.snippet.clone(),
        }
    }
}

/// A page of messages (Mailpit's `MessagesSummary`), for lists and searches.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct MessagesJson {
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
    pub tags: Vec<String>,
    pub messages: Vec<MessageSummaryJson>,
}

impl MessagesJson {
    pub(crate) fn new(
        counts: MessageCounts,
        matches: u64,
        matches_unread: Option<u64>,
        start: usize,
        page: &[Summary],
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

/// One message with its bodies (Mailpit's `Message`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct MessageJson {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "MessageID")]
    pub message_id: String,
    pub from: Option<AddressJson>,
    pub to: Vec<AddressJson>,
    pub cc: Vec<AddressJson>,
    pub bcc: Vec<AddressJson>,
    pub reply_to: Vec<AddressJson>,
    pub return_path: String,
    pub subject: String,
    pub list_unsubscribe: ListUnsubscribeJson,
    /// The Date header if it parsed, else when the message arrived.
    pub date: String,
    pub tags: Vec<String>,
    /// The user the client authenticated as; absent when it did not.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub username: String,
    pub text: String,
    #[serde(rename = "HTML")]
    pub html: String,
    pub size: u64,
    pub inline: Vec<AttachmentJson>,
    pub attachments: Vec<AttachmentJson>,
}

/// What the body of a message adds to its summary, read from the raw bytes.
pub(crate) struct BodyParts {
    pub parsed: ParsedMessage,
    pub bcc: Vec<Address>,
    pub return_path: String,
    pub text_from_html: Option<String>,
}

impl MessageJson {
    pub(crate) fn new(message: &StoredMessage, body: BodyParts) -> Self {
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
        MessageJson {
            id: summary.id.to_string(),
            message_id: summary.message_id.clone().unwrap_or_default(),
            from: summary.from.as_ref().map(AddressJson::from),
            to: addresses(&summary.to),
            cc: addresses(&summary.cc),
            bcc: addresses(&body.bcc),
            reply_to: addresses(&summary.reply_to),
            return_path: body.return_path,
            subject: summary.subject.clone(),
            list_unsubscribe,
            date: summary
                .date
                .clone()
                .unwrap_or_else(|| rfc3339_millis(summary.received_at)),
            tags: Vec::new(),
            username: message.envelope.auth_user.clone().unwrap_or_default(),
            text: body
                .parsed
                .text
                .clone()
                .or(body.text_from_html)
                .unwrap_or_default(),
            html: body.parsed.html.clone().unwrap_or_default(),
            size: summary.size,
            inline: inline.into_iter().map(AttachmentJson::from).collect(),
            attachments: attachments.into_iter().map(AttachmentJson::from).collect(),
        }
    }
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
