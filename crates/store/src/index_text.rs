//! What of a message goes into the search index, column by column: the same
//! text for both backends (SQLite's FTS5 table, PostgreSQL's tsvector), so a
//! query finds the same messages on either.

use std::collections::HashSet;

use crate::Address;
use crate::mime::Digest;

/// What the search index gets of one message, column by column (the
/// columns of the SQLite index, schema migration 6, and of the PostgreSQL
/// tsvector; each backend's search SQL says which filter reads which).
#[derive(Debug, Clone, Default)]
pub(crate) struct IndexText {
    pub(crate) subject: String,
    /// The From header and the envelope sender.
    pub(crate) sender: String,
    /// The envelope recipients and the To and Cc headers.
    pub(crate) recipients: String,
    pub(crate) body: String,
    pub(crate) cc: String,
    /// The Bcc header and the blind recipients: envelope recipients that neither
    /// To nor Cc names.
    pub(crate) bcc: String,
    pub(crate) reply_to: String,
    pub(crate) message_id: String,
}

impl IndexText {
    /// The bytes of text it holds.
    pub(crate) fn len(&self) -> usize {
        self.columns().iter().map(|text| text.len()).sum()
    }

    pub(crate) fn new(mail_from: &str, rcpt_to: &[String], digest: &Digest) -> IndexText {
        let mut sender = String::new();
        push_addresses(&mut sender, digest.from.iter());
        sender.push_str(mail_from);
        let mut recipients = rcpt_to.join(" ");
        recipients.push(' ');
        push_addresses(&mut recipients, digest.to.iter().chain(&digest.cc));
        let mut cc = String::new();
        push_addresses(&mut cc, digest.cc.iter());
        let mut bcc = String::new();
        push_addresses(&mut bcc, digest.bcc.iter());
        let named: HashSet<String> = digest
            .to
            .iter()
            .chain(&digest.cc)
            .map(|address| address.address.to_lowercase())
            .collect();
        for recipient in rcpt_to {
            if !named.contains(&recipient.to_lowercase()) {
                bcc.push_str(recipient);
                bcc.push(' ');
            }
        }
        let mut reply_to = String::new();
        push_addresses(&mut reply_to, digest.reply_to.iter());
        IndexText {
            subject: digest.subject.clone(),
            sender,
            recipients,
            body: digest.body_text.clone(),
            cc,
            bcc,
            reply_to,
            message_id: digest.message_id.clone().unwrap_or_default(),
        }
    }

    /// Each column's text, in the order of the SQLite table's columns:
    /// subject, sender, recipients, body, cc, bcc, reply_to, message_id.
    pub(crate) fn columns(&self) -> [&str; 8] {
        [
            &self.subject,
            &self.sender,
            &self.recipients,
            &self.body,
            &self.cc,
            &self.bcc,
            &self.reply_to,
            &self.message_id,
        ]
    }
}

fn push_addresses<'a>(text: &mut String, addresses: impl Iterator<Item = &'a Address>) {
    for address in addresses {
        text.push_str(&address.name);
        text.push(' ');
        text.push_str(&address.address);
        text.push(' ');
    }
}
