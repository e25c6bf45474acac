//! How much of a message a [`Summary`](crate::Summary) may carry (issue #11).
//!
//! A list page holds up to a thousand summaries, and a message may have 20,000
//! To addresses or a megabyte of Subject, so every field of a summary read for a
//! list is bounded:
//!
//! - To, Cc and Reply-To: at most [`SUMMARY_ADDRESSES`] addresses each, and only
//!   as many of those as fit in [`SUMMARY_FIELD_BYTES`]; the summary's `*_count`
//!   fields say how many the header has in all;
//! - each name and address in those lists: [`SUMMARY_ADDRESS_BYTES`];
//! - Subject, Message-ID, the From name and address: [`SUMMARY_TEXT_BYTES`];
//! - envelope recipients: those that fit in [`SUMMARY_RECIPIENT_BYTES`], each
//!   cut to [`SUMMARY_ADDRESS_BYTES`] (with the defaults of `--max-recipients`
//!   and `--max-line` that is all of them unless they are very long).
//!
//! Lengths are counted as serde_json writes the text into a JSON string (a
//! control character takes six bytes), so the bound holds for the answer as well
//! as for memory, and cuts fall on character boundaries.
//!
//! The store keeps at most [`SUMMARY_ADDRESSES`] addresses per field (cut to
//! [`SUMMARY_ADDRESS_BYTES`]) and the header's count, so listing never decodes
//! more; the complete lists are in the raw message.

use crate::mime::Digest;
use crate::tags::TagName;
use crate::time::{from_millis, to_millis};
use crate::{Address, MessageId, NewMessage, Summary};

/// The most addresses a listed summary carries in each of To, Cc and Reply-To.
pub const SUMMARY_ADDRESSES: usize = 50;

/// The most bytes of names and addresses (as JSON text) a listed summary carries
/// in each of To, Cc and Reply-To; the addresses that do not fit are left out.
pub const SUMMARY_FIELD_BYTES: usize = 4096;

/// A name or an address in a summary's lists is cut to this many bytes.
pub const SUMMARY_ADDRESS_BYTES: usize = 256;

/// The most bytes of envelope recipients (as JSON text) a listed summary
/// carries; the recipients that do not fit are left out.
pub const SUMMARY_RECIPIENT_BYTES: usize = 16 << 10;

/// A listed summary's Subject, Message-ID, and From name and address are cut to
/// this many bytes.
pub const SUMMARY_TEXT_BYTES: usize = 1024;

/// The bytes `ch` takes inside a JSON string as serde_json writes it.
fn json_len(ch: char) -> usize {
    match ch {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
        ch if u32::from(ch) < 0x20 => 6,
        ch => ch.len_utf8(),
    }
}

/// The bytes `text` takes inside a JSON string.
pub(crate) fn json_text_len(text: &str) -> usize {
    text.chars().map(json_len).sum()
}

/// The longest start of `text` that takes at most `max` bytes as JSON text.
pub fn cut(text: &str, max: usize) -> &str {
    // Plain text is the common case: no scan beyond the limit.
    if text.len() <= max && text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        return text;
    }
    let mut used = 0;
    for (index, ch) in text.char_indices() {
        used += json_len(ch);
        if used > max {
            return &text[..index];
        }
    }
    text
}

/// `text` cut as [`cut`] does, reusing its allocation.
pub(crate) fn cut_string(mut text: String, max: usize) -> String {
    let end = cut(&text, max).len();
    text.truncate(end);
    text
}

fn cut_address(address: &Address) -> Address {
    Address {
        name: cut(&address.name, SUMMARY_ADDRESS_BYTES).to_string(),
        address: cut(&address.address, SUMMARY_ADDRESS_BYTES).to_string(),
    }
}

/// What the store keeps of a header's addresses: the first
/// [`SUMMARY_ADDRESSES`], cut, and how many there are in all.
pub(crate) fn stored_list(list: &[Address]) -> (Vec<Address>, u64) {
    let kept = list
        .iter()
        .take(SUMMARY_ADDRESSES)
        .map(cut_address)
        .collect();
    (kept, list.len() as u64)
}

/// What a listed summary carries of `list`: the addresses in front that fit the
/// bounds above.
pub(crate) fn listed(list: Vec<Address>) -> Vec<Address> {
    let mut used = 0;
    list.into_iter()
        .take(SUMMARY_ADDRESSES)
        .map(|address| {
            if address.name.len() > SUMMARY_ADDRESS_BYTES
                || address.address.len() > SUMMARY_ADDRESS_BYTES
            {
                cut_address(&address)
            } else {
                address
            }
        })
        .take_while(|address| {
            used += json_text_len(&address.name) + json_text_len(&address.address);
            used <= SUMMARY_FIELD_BYTES
        })
        .collect()
}

/// The envelope recipients a listed summary carries.
pub(crate) fn listed_recipients(rcpt_to: Vec<String>) -> Vec<String> {
    let mut used = 0;
    rcpt_to
        .into_iter()
        .map(|recipient| cut_string(recipient, SUMMARY_ADDRESS_BYTES))
        .take_while(|recipient| {
            used += json_text_len(recipient);
            used <= SUMMARY_RECIPIENT_BYTES
        })
        .collect()
}

/// The summary a list would show for `message` once stored as `id` with
/// `tags`, bounded as a listed summary is.
pub(crate) fn summary_of(
    id: MessageId,
    message: &NewMessage,
    digest: Digest,
    tags: &[TagName],
) -> Summary {
    let listed = |list: &[Address]| {
        let (stored, count) = stored_list(list);
        (listed(stored), count)
    };
    let (to, to_count) = listed(&digest.to);
    let (cc, cc_count) = listed(&digest.cc);
    let (reply_to, reply_to_count) = listed(&digest.reply_to);
    let (bcc, bcc_count) = listed(&digest.bcc);
    Summary {
        id,
        // Stored with millisecond precision; announce what a reader will read.
        received_at: from_millis(to_millis(message.received_at)),
        mail_from: message.envelope.mail_from.clone(),
        rcpt_to: listed_recipients(message.envelope.rcpt_to.clone()),
        from: digest.from.map(listed_from),
        to,
        to_count,
        cc,
        cc_count,
        reply_to,
        reply_to_count,
        bcc,
        bcc_count,
        subject: cut_string(digest.subject, SUMMARY_TEXT_BYTES),
        date: digest.date,
        message_id: digest
            .message_id
            .map(|id| cut_string(id, SUMMARY_TEXT_BYTES)),
        size: message.raw.len() as u64,
        attachments: digest.attachments,
        snippet: digest.snippet,
        read: false,
        flagged: false,
        tags: {
            let mut tags: Vec<String> = tags.iter().map(ToString::to_string).collect();
            tags.sort_unstable_by_key(|tag| tag.to_lowercase());
            tags
        },
        bare_lf: message.envelope.bare_lf,
        parsed: digest.parsed,
    }
}

pub(crate) fn listed_from(from: Address) -> Address {
    Address {
        name: cut_string(from.name, SUMMARY_TEXT_BYTES),
        address: cut_string(from.address, SUMMARY_TEXT_BYTES),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(name: &str, address: &str) -> Address {
        Address {
            name: name.to_string(),
            address: address.to_string(),
        }
    }

    #[test]
    fn cuts_count_json_bytes_and_keep_characters_whole() {
        assert_eq!(cut("hello", 5), "hello");
        assert_eq!(cut("hello", 3), "hel");
        assert_eq!(cut("ééé", 5), "éé");
        assert_eq!(cut("a\"b", 2), "a");
        assert_eq!(cut("\u{1}\u{1}", 11), "\u{1}");
        assert_eq!(cut("", 0), "");
        let long = "x".repeat(10_000);
        assert_eq!(cut(&long, SUMMARY_TEXT_BYTES).len(), SUMMARY_TEXT_BYTES);
        assert_eq!(cut_string("ø".repeat(10), 5), "øø");
    }

    #[test]
    fn lists_are_capped_in_count_and_bytes() {
        let many: Vec<Address> = (0..20_000)
            .map(|n| address("", &format!("user{n}@example.com")))
            .collect();
        let (stored, count) = stored_list(&many);
        assert_eq!((stored.len(), count), (SUMMARY_ADDRESSES, 20_000));
        assert_eq!(stored[0], many[0]);
        assert_eq!(listed(stored).len(), SUMMARY_ADDRESSES);

        let huge = vec![address(&"n".repeat(1 << 20), &"a".repeat(1 << 20)); 60];
        let cut = listed(huge);
        assert_eq!(cut[0].name.len(), SUMMARY_ADDRESS_BYTES);
        let bytes: usize = cut
            .iter()
            .map(|a| json_text_len(&a.name) + json_text_len(&a.address))
            .sum();
        assert!(bytes <= SUMMARY_FIELD_BYTES, "{bytes}");
        assert_eq!(cut.len(), SUMMARY_FIELD_BYTES / (2 * SUMMARY_ADDRESS_BYTES));

        let recipients = listed_recipients(vec!["r".repeat(1000); 1000]);
        assert_eq!(
            recipients.len(),
            SUMMARY_RECIPIENT_BYTES / SUMMARY_ADDRESS_BYTES
        );
        assert_eq!(recipients[0].len(), SUMMARY_ADDRESS_BYTES);
        let usual: Vec<String> = (0..150).map(|n| format!("r{n}@y.test")).collect();
        assert_eq!(listed_recipients(usual.clone()), usual);
    }
}
