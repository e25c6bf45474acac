//! IMAP's flags as the store keeps them, whichever the backend.
//!
//! `\Seen` and `\Flagged` are the read state and the star every reader shares;
//! every other flag (`\Answered`, `\Draft`, `\Deleted`, keywords) is kept as
//! the client spelled it, once each (without regard to case), in the order it
//! was set. The backend stores them as one space-separated text: an IMAP flag
//! is an atom, which has no spaces. Also what both backends share of IMAP's
//! folders: where a folder's messages live, what a listing reads, what an
//! APPENDed message's envelope is, what one folder change did.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::SystemTime;

use sokkel_message::{Envelope, FlagEdit, Flags, Folder};

use crate::mime::Digest;
use crate::store::StoreEvent;
use crate::summary::summary_of;
use crate::tags::{TagName, Tagging};
use crate::{MessageId, NewMessage, StoreError};

/// The most other flags one message keeps, so that a client cannot grow a
/// row without bound; Thunderbird sets a handful.
pub const MAX_OTHER_FLAGS: usize = 64;

/// The longest flag, in bytes.
pub const MAX_FLAG_BYTES: usize = 100;

/// The HELO of the envelope the store makes up for a message an IMAP client
/// put into a folder (APPEND, or a copy out of Sent), so the web page tells it
/// from mail that came over SMTP.
pub(crate) const FOLDER_COPY_HELO: &str = "imap";

/// Whether `envelope` is one the store made up for a message an IMAP client
/// put into a folder, rather than the envelope of mail that arrived (SMTP or
/// the send API). Its recipients are read from the headers of what may be a
/// draft, so auto-relay must never send it. No arrival has client port 0.
pub fn is_folder_copy(envelope: &Envelope) -> bool {
    envelope.helo == FOLDER_COPY_HELO && envelope.client_addr.port() == 0
}

/// IMAP's session flag: never stored.
const RECENT: &str = "\\Recent";

/// `flags` made ready to store: `\Seen` and `\Flagged` among the others become
/// the booleans, `\Recent` is dropped, repeats go; refused if a flag is not an
/// atom or there are too many.
pub(crate) fn normalized(flags: &Flags) -> Result<Flags, StoreError> {
    let mut out = Flags {
        seen: flags.seen,
        flagged: flags.flagged,
        other: Vec::new(),
    };
    for flag in &flags.other {
        if flag.is_empty()
            || flag.len() > MAX_FLAG_BYTES
            || flag.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(StoreError::Folder(format!(
                "{flag:?} is not a flag: flags are 1 to {MAX_FLAG_BYTES} bytes without spaces"
            )));
        }
        if flag.eq_ignore_ascii_case("\\Seen") {
            out.seen = true;
        } else if flag.eq_ignore_ascii_case("\\Flagged") {
            out.flagged = true;
        } else if !flag.eq_ignore_ascii_case(RECENT) && !has(&out.other, flag) {
            out.other.push(flag.clone());
        }
    }
    at_most_max(out)
}

/// `edit` (normalized) applied to a message's flags `old`.
pub(crate) fn edited(old: &Flags, edit: &FlagEdit) -> Result<Flags, StoreError> {
    let new = match edit {
        FlagEdit::Set(flags) => normalized(flags)?,
        FlagEdit::Add(flags) => {
            let flags = normalized(flags)?;
            let mut new = old.clone();
            new.seen |= flags.seen;
            new.flagged |= flags.flagged;
            for flag in flags.other {
                if !has(&new.other, &flag) {
                    new.other.push(flag);
                }
            }
            new
        }
        FlagEdit::Remove(flags) => {
            let flags = normalized(flags)?;
            let mut new = old.clone();
            new.seen &= !flags.seen;
            new.flagged &= !flags.flagged;
            new.other.retain(|flag| !has(&flags.other, flag));
            new
        }
    };
    at_most_max(new)
}

fn at_most_max(flags: Flags) -> Result<Flags, StoreError> {
    if flags.other.len() > MAX_OTHER_FLAGS {
        return Err(StoreError::Folder(format!(
            "a message keeps at most {MAX_OTHER_FLAGS} flags besides \\Seen and \\Flagged"
        )));
    }
    Ok(flags)
}

/// `flags` without `\Deleted`: what a message keeps when EXPUNGE takes it out
/// of a tag's folder but not out of the store.
pub(crate) fn undeleted(other: &[String]) -> Vec<String> {
    other
        .iter()
        .filter(|flag| !flag.eq_ignore_ascii_case("\\Deleted"))
        .cloned()
        .collect()
}

/// The other flags as the backend stores them.
pub(crate) fn to_text(other: &[String]) -> String {
    other.join(" ")
}

/// The other flags from what the backend stored.
pub(crate) fn from_text(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

fn has(flags: &[String], flag: &str) -> bool {
    flags.iter().any(|have| have.eq_ignore_ascii_case(flag))
}

/// The envelope an APPENDed message is stored with, as if delivered over
/// SMTP: the From header's address as the sender; To, Cc and Bcc as the
/// recipients; HELO `imap` from 127.0.0.1 port 0 (no SMTP client sent it).
fn append_envelope(digest: &Digest) -> Envelope {
    Envelope {
        mail_from: digest
            .from
            .as_ref()
            .map(|from| from.address.clone())
            .unwrap_or_default(),
        rcpt_to: (digest.to.iter().chain(&digest.cc).chain(&digest.bcc))
            .map(|to| to.address.clone())
            .filter(|address| !address.is_empty())
            .collect(),
        helo: FOLDER_COPY_HELO.into(),
        client_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        bare_lf: false,
        smtputf8: false,
        tls: None,
        auth_user: None,
    }
}

/// The tag whose folder `folder` is, its name checked; `None` for the INBOX
/// and Sent.
pub(crate) fn tag_of(folder: &Folder) -> Result<Option<TagName>, StoreError> {
    match folder {
        Folder::Tag(name) => Ok(Some(TagName::parse(name)?)),
        Folder::Inbox { .. } | Folder::Sent => Ok(None),
    }
}

/// What a folder's listing reads of each message (from `messages AS m` or
/// `sent AS m`, the same columns in both backends), after the UID.
pub(crate) const COLUMNS: &str =
    "m.id, m.size, m.received_at, m.read, m.flagged, m.keywords, m.modseq";

/// Ids are positive and far below 2^32 in any store a catcher keeps; IMAP's
/// UIDs are 32 bits.
pub(crate) fn to_uid(value: i64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

pub(crate) fn no_folder(name: &TagName) -> StoreError {
    StoreError::Folder(format!("there is no folder {name}"))
}

/// Where a folder's messages live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Table {
    /// The caught mail: the INBOX and the tags' folders.
    Messages,
    /// The sent copies.
    Sent,
}

impl Table {
    pub(crate) fn of(folder: &Folder) -> Table {
        match folder {
            Folder::Sent => Table::Sent,
            Folder::Inbox { .. } | Folder::Tag(_) => Table::Messages,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Table::Messages => "messages",
            Table::Sent => "sent",
        }
    }

    pub(crate) fn raw_table(self) -> &'static str {
        match self {
            Table::Messages => "raw",
            Table::Sent => "sent_raw",
        }
    }
}

/// A message read back for a copy: its bytes, flags and INTERNALDATE.
pub(crate) struct Copied {
    pub(crate) raw: Vec<u8>,
    pub(crate) flags: Flags,
    pub(crate) received_at: SystemTime,
}

/// A [`Copied`] message as the store keeps it in the INBOX or a tag's
/// folder: delivered, with the envelope [`append_envelope`] makes.
pub(crate) struct Delivered {
    pub(crate) message: NewMessage,
    pub(crate) digest: Digest,
    /// The tags delivery gives it (`--tag` rules aside), and the folder's.
    pub(crate) tags: Vec<TagName>,
}

impl Copied {
    /// This message delivered by `tagging` into the folder of `tag` (the
    /// INBOX if `None`).
    pub(crate) fn delivered(&self, tagging: &Tagging, tag: Option<&TagName>) -> Delivered {
        let digest = crate::mime::digest(&self.raw);
        let message = NewMessage {
            envelope: append_envelope(&digest),
            received_at: self.received_at,
            raw: self.raw.clone(),
        };
        let mut tags = tagging.at_delivery(&message, &digest);
        if let Some(tag) = tag.filter(|tag| !tags.iter().any(|have| have.same_as(tag))) {
            tags.push(tag.clone());
        }
        Delivered {
            message,
            digest,
            tags,
        }
    }
}

impl Delivered {
    /// Its announcement, once stored as `id` with `flags`.
    pub(crate) fn event(self, id: MessageId, flags: &Flags) -> StoreEvent {
        let mut summary = summary_of(id, &self.message, self.digest, &self.tags);
        summary.read = flags.seen;
        summary.flagged = flags.flagged;
        StoreEvent::New(Arc::new(summary))
    }
}

/// What one folder change did, to be announced once it commits.
#[derive(Default)]
pub(crate) struct Outcome {
    /// Delivered messages (appends into the INBOX or a tag, sent copies
    /// delivered), announced as new.
    pub(crate) new: Vec<StoreEvent>,
    /// Messages whose tags changed.
    pub(crate) tagged: Vec<MessageId>,
    /// Something else changed that the web page does not show.
    pub(crate) other: bool,
}

/// What a change of IMAP flags did, message by message, for the events that
/// announce it.
#[derive(Debug, Default)]
pub(crate) struct FlagChanges {
    /// Marked unread (`[0]`) and read (`[1]`).
    read: [Vec<MessageId>; 2],
    /// Unstarred (`[0]`) and starred (`[1]`).
    starred: [Vec<MessageId>; 2],
    /// Other flags changed.
    other: bool,
}

impl FlagChanges {
    /// Message `id`'s flags went from `old` to `new`.
    pub(crate) fn record(&mut self, id: MessageId, old: &Flags, new: &Flags) {
        if new.seen != old.seen {
            self.read[usize::from(new.seen)].push(id);
        }
        if new.flagged != old.flagged {
            self.starred[usize::from(new.flagged)].push(id);
        }
        self.other |= new.other != old.other;
    }

    /// Whether any flag changed.
    pub(crate) fn changed(&self) -> bool {
        self.other
            || self
                .read
                .iter()
                .chain(&self.starred)
                .any(|ids| !ids.is_empty())
    }

    /// The events for these changes in `table`: what the web page shows of
    /// the caught mail (read, starred), [`StoreEvent::Changed`] for the rest
    /// and for sent copies.
    pub(crate) fn events(self, table: Table) -> Vec<StoreEvent> {
        let mut events = Vec::new();
        if table == Table::Sent {
            if self.changed() {
                events.push(StoreEvent::Changed);
            }
            return events;
        }
        for (state, ids) in [false, true].into_iter().zip(self.read) {
            if !ids.is_empty() {
                events.push(StoreEvent::ReadChanged(ids, state));
            }
        }
        for (state, ids) in [false, true].into_iter().zip(self.starred) {
            if !ids.is_empty() {
                events.push(StoreEvent::FlaggedChanged(ids, state));
            }
        }
        if self.other {
            events.push(StoreEvent::Changed);
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(seen: bool, other: &[&str]) -> Flags {
        Flags {
            seen,
            flagged: false,
            other: other.iter().map(|flag| flag.to_string()).collect(),
        }
    }

    #[test]
    fn edits_keep_spelling_and_order_and_ignore_case() {
        let old = flags(false, &["$Forwarded", "\\Answered"]);
        let added = edited(
            &old,
            &FlagEdit::Add(flags(true, &["$forwarded", "NonJunk"])),
        )
        .unwrap();
        assert_eq!(added, flags(true, &["$Forwarded", "\\Answered", "NonJunk"]));
        let removed = edited(&added, &FlagEdit::Remove(flags(false, &["\\answered"]))).unwrap();
        assert_eq!(removed, flags(true, &["$Forwarded", "NonJunk"]));
        let set = edited(
            &removed,
            &FlagEdit::Set(flags(false, &["\\Seen", "\\Recent", "a"])),
        )
        .unwrap();
        assert_eq!(set, flags(true, &["a"]));
        assert_eq!(from_text(&to_text(&set.other)), set.other);
    }

    #[test]
    fn flags_that_are_not_atoms_or_too_many_are_refused() {
        for bad in ["", "two words", "line\r\nbreak"] {
            assert!(normalized(&flags(false, &[bad])).is_err(), "{bad:?}");
        }
        let many: Vec<String> = (0..=MAX_OTHER_FLAGS).map(|n| format!("k{n}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(normalized(&flags(false, &many)).is_err());
    }
}
