//! The selected folder as the client knows it: message numbers, UIDs and flags,
//! and how a fresh reading of the folder turns into `EXPUNGE`, `EXISTS` and
//! `FETCH (FLAGS ...)` updates.
//!
//! A message removed elsewhere stays in the view, marked gone, until the
//! session may announce its EXPUNGE (never while answering FETCH, STORE or
//! SEARCH, RFC 3501 section 7.4.1), so message numbers stay what the client
//! thinks they are.

use std::collections::{BTreeSet, HashMap};

use imap_types::IntoStatic;
use imap_types::flag::{Flag, FlagFetch, StoreType};
use imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};
use sokkel_message::{FlagEdit, Flags, Folder, FolderMessage, MessageId};

use super::FolderState;

/// One message of the view, kept small: a hundred sessions idling on a folder
/// of ten thousand messages hold a million of these. Sizes, dates and modseqs
/// are read from the store when a command asks for them
/// ([`View::details`]).
#[derive(Debug, Clone, Copy)]
struct Slot {
    uid: u32,
    /// [`SEEN`], [`FLAGGED`], [`GONE`].
    bits: u8,
}

const SEEN: u8 = 1;
const FLAGGED: u8 = 2;
/// Removed from the folder; its EXPUNGE is still to be announced.
const GONE: u8 = 4;

/// The selected folder.
#[derive(Debug)]
pub(super) struct View {
    /// The folder, `None` for the Trash (always empty, nothing to poll).
    pub(super) folder: Option<Folder>,
    pub(super) read_only: bool,
    pub(super) uid_validity: u32,
    pub(super) uid_next: u32,
    pub(super) modseq: u64,
    /// The EXISTS count the client last heard.
    pub(super) announced: usize,
    /// By message number (index + 1), ascending UIDs.
    slots: Vec<Slot>,
    /// The store ids by index, unless every id equals its UID (the INBOX).
    ids: Vec<MessageId>,
    /// Flags beyond \Seen and \Flagged (`\Answered`, `\Deleted`, keywords),
    /// by UID, for the messages that have any.
    other: HashMap<u32, Vec<String>>,
}

/// What a fresh reading changed, for the client.
#[derive(Debug, Default)]
pub(super) struct Changes {
    /// UIDs whose flags changed.
    pub(super) flags: BTreeSet<u32>,
}

impl View {
    pub(super) fn new(folder: Option<Folder>, read_only: bool, state: FolderState) -> View {
        let mut view = View {
            folder,
            read_only,
            uid_validity: state.uid_validity.max(1),
            uid_next: state.uid_next.max(1),
            modseq: state.highest_modseq,
            announced: state.messages.len(),
            slots: Vec::with_capacity(state.messages.len()),
            ids: Vec::new(),
            other: HashMap::new(),
        };
        for message in state.messages {
            view.push(message);
        }
        view
    }

    fn push(&mut self, message: FolderMessage) {
        let index = self.slots.len();
        if self.ids.is_empty() && i64::from(message.uid) != message.id.0 {
            self.ids = (0..index)
                .map(|i| MessageId(i64::from(self.slots[i].uid)))
                .collect();
        }
        if !self.ids.is_empty() || i64::from(message.uid) != message.id.0 {
            self.ids.push(message.id);
        }
        self.slots.push(Slot {
            uid: message.uid,
            bits: 0,
        });
        self.set_flags(index, message.flags);
    }

    /// How many messages the client knows of.
    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    pub(super) fn uid(&self, index: usize) -> u32 {
        self.slots[index].uid
    }

    pub(super) fn id(&self, index: usize) -> MessageId {
        match self.ids.get(index) {
            Some(id) => *id,
            None => MessageId(i64::from(self.slots[index].uid)),
        }
    }

    /// The message left the folder; its EXPUNGE is held back.
    pub(super) fn gone(&self, index: usize) -> bool {
        self.slots[index].bits & GONE != 0
    }

    pub(super) fn seen(&self, index: usize) -> bool {
        self.slots[index].bits & SEEN != 0
    }

    /// Whether the message has `name` among its other flags (`\Deleted`, a
    /// keyword), in any case.
    pub(super) fn has(&self, index: usize, name: &str) -> bool {
        self.other
            .get(&self.slots[index].uid)
            .is_some_and(|other| other.iter().any(|o| o.eq_ignore_ascii_case(name)))
    }

    pub(super) fn flags(&self, index: usize) -> Flags {
        let slot = self.slots[index];
        Flags {
            seen: slot.bits & SEEN != 0,
            flagged: slot.bits & FLAGGED != 0,
            other: self.other.get(&slot.uid).cloned().unwrap_or_default(),
        }
    }

    pub(super) fn set_flags(&mut self, index: usize, flags: Flags) {
        let slot = &mut self.slots[index];
        slot.bits &= GONE;
        if flags.seen {
            slot.bits |= SEEN;
        }
        if flags.flagged {
            slot.bits |= FLAGGED;
        }
        if flags.other.is_empty() {
            self.other.remove(&slot.uid);
        } else {
            self.other.insert(slot.uid, flags.other);
        }
    }

    /// The keywords in use, for SELECT's FLAGS.
    pub(super) fn keywords(&self) -> Vec<&str> {
        let mut keywords: Vec<&str> = Vec::new();
        for name in self.other.values().flatten() {
            if !name.starts_with('\\') && !keywords.iter().any(|k| k.eq_ignore_ascii_case(name)) {
                keywords.push(name);
            }
        }
        keywords.sort_unstable();
        keywords
    }

    /// The indexes of the messages still in the folder.
    pub(super) fn live(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.slots.len()).filter(|&i| !self.gone(i))
    }

    /// The highest UID the client knows (`*` in a UID set).
    pub(super) fn last_uid(&self) -> u32 {
        self.slots.last().map_or(0, |s| s.uid)
    }

    /// Takes in the folder as the store now has it.
    pub(super) fn refresh(&mut self, state: FolderState) -> Changes {
        let mut changes = Changes::default();
        let mut fresh = state.messages.into_iter().peekable();
        for index in 0..self.slots.len() {
            let uid = self.slots[index].uid;
            while fresh.peek().is_some_and(|m| m.uid < uid) {
                // A message the view never had below one it has: the store's
                // UIDs ascend, so this is one it showed and took back; skip it.
                fresh.next();
            }
            match fresh.peek() {
                Some(m) if m.uid == uid => {
                    let m = fresh.next().expect("peeked");
                    if !self.gone(index) && m.flags != self.flags(index) {
                        changes.flags.insert(uid);
                    }
                    self.set_flags(index, m.flags);
                }
                _ => self.slots[index].bits |= GONE,
            }
        }
        let last = self.last_uid();
        for message in fresh.filter(|m| m.uid > last) {
            self.push(message);
        }
        self.uid_next = state.uid_next.max(self.uid_next);
        self.modseq = state.highest_modseq;
        if state.uid_validity != 0 && state.uid_validity != self.uid_validity {
            // The store was made anew: every UID the client has is void.
            for slot in &mut self.slots {
                slot.bits |= GONE;
            }
        }
        changes
    }

    /// Removes the gone messages; returns their message numbers in the order
    /// the EXPUNGE responses must name them.
    pub(super) fn expunge_gone(&mut self) -> Vec<u32> {
        let mut numbers = Vec::new();
        let mut index = self.slots.len();
        while index > 0 {
            index -= 1;
            if self.gone(index) {
                let uid = self.slots.remove(index).uid;
                if !self.ids.is_empty() {
                    self.ids.remove(index);
                }
                self.other.remove(&uid);
                numbers.push(index as u32 + 1);
            }
        }
        self.announced -= numbers.len().min(self.announced);
        numbers
    }

    /// The message number of `uid`.
    pub(super) fn number_of(&self, uid: u32) -> Option<usize> {
        self.slots
            .binary_search_by_key(&uid, |s| s.uid)
            .ok()
            .map(|i| i + 1)
    }

    /// The indexes a sequence set names, ascending, each once. `*` is the last
    /// message (or the highest UID); numbers past the end name nothing.
    pub(super) fn resolve(&self, set: &SequenceSet, uid: bool) -> Vec<usize> {
        let mut out = Vec::new();
        if self.slots.is_empty() {
            return out;
        }
        for sequence in set.0.as_ref() {
            let (a, b) = match sequence {
                Sequence::Single(one) => (one, one),
                Sequence::Range(a, b) => (a, b),
            };
            let (lo, hi) = {
                let (a, b) = (self.value(a, uid), self.value(b, uid));
                (a.min(b), a.max(b))
            };
            if uid {
                let start = self.slots.partition_point(|s| s.uid < lo);
                let end = self.slots.partition_point(|s| s.uid <= hi);
                out.extend(start..end);
            } else {
                let hi = (hi as usize).min(self.slots.len());
                out.extend((lo as usize).saturating_sub(1)..hi);
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    fn value(&self, value: &SeqOrUid, uid: bool) -> u32 {
        match value {
            SeqOrUid::Value(n) => n.get(),
            SeqOrUid::Asterisk if uid => self.last_uid(),
            SeqOrUid::Asterisk => self.slots.len() as u32,
        }
    }
}

/// Sizes, dates and modseqs of a folder's messages, read from the store for
/// one command (the view does not keep them), by UID.
#[derive(Debug, Default)]
pub(super) struct Details(Vec<FolderMessage>);

impl Details {
    pub(super) fn new(state: Option<FolderState>) -> Details {
        Details(state.map(|s| s.messages).unwrap_or_default())
    }

    /// The message with `uid`, if it is still in the folder.
    pub(super) fn get(&self, uid: u32) -> Option<&FolderMessage> {
        let index = self.0.binary_search_by_key(&uid, |m| m.uid).ok()?;
        Some(&self.0[index])
    }
}

/// Whether `value` is in `set`, with `*` meaning `largest`.
pub(super) fn set_contains(set: &SequenceSet, value: u32, largest: u32) -> bool {
    let get = |v: &SeqOrUid| match v {
        SeqOrUid::Value(n) => n.get(),
        SeqOrUid::Asterisk => largest,
    };
    set.0.as_ref().iter().any(|sequence| match sequence {
        Sequence::Single(one) => get(one) == value,
        Sequence::Range(a, b) => {
            let (a, b) = (get(a), get(b));
            (a.min(b)..=a.max(b)).contains(&value)
        }
    })
}

/// The flags a FETCH shows.
pub(super) fn fetch_flags(flags: &Flags) -> Vec<FlagFetch<'static>> {
    let mut out = Vec::with_capacity(2 + flags.other.len());
    if flags.seen {
        out.push(FlagFetch::Flag(Flag::Seen));
    }
    if flags.flagged {
        out.push(FlagFetch::Flag(Flag::Flagged));
    }
    out.extend(
        flags
            .other
            .iter()
            .filter_map(|name| Flag::try_from(name.as_str()).ok())
            .map(|flag| FlagFetch::Flag(flag.into_static())),
    );
    out
}

/// The store's form of the flags a client sent.
pub(super) fn to_flags(flags: &[Flag<'_>]) -> Flags {
    let mut out = Flags::default();
    for flag in flags {
        match flag {
            Flag::Seen => out.seen = true,
            Flag::Flagged => out.flagged = true,
            other => {
                let name = other.to_string();
                if !out.other.iter().any(|o| o.eq_ignore_ascii_case(&name)) {
                    out.other.push(name);
                }
            }
        }
    }
    out
}

/// Whether the flags have `name` (`\Deleted`, a keyword, ...), in any case.
pub(super) fn has(flags: &Flags, name: &str) -> bool {
    flags.other.iter().any(|o| o.eq_ignore_ascii_case(name))
}

/// The edit a STORE asks for.
pub(super) fn edit(kind: &StoreType, flags: Flags) -> FlagEdit {
    match kind {
        StoreType::Replace => FlagEdit::Set(flags),
        StoreType::Add => FlagEdit::Add(flags),
        StoreType::Remove => FlagEdit::Remove(flags),
    }
}

/// `flags` after `edit`, as the store applies it.
pub(super) fn apply(flags: &Flags, edit: &FlagEdit) -> Flags {
    match edit {
        FlagEdit::Set(new) => new.clone(),
        FlagEdit::Add(add) => {
            let mut out = flags.clone();
            out.seen |= add.seen;
            out.flagged |= add.flagged;
            for name in &add.other {
                if !has(&out, name) {
                    out.other.push(name.clone());
                }
            }
            out
        }
        FlagEdit::Remove(remove) => {
            let mut out = flags.clone();
            out.seen &= !remove.seen;
            out.flagged &= !remove.flagged;
            out.other.retain(|o| !has(remove, o));
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hundred sessions idling on a folder of ten thousand messages hold a
    /// million of these: the server's memory per session is mostly this.
    #[test]
    fn a_message_of_the_view_takes_eight_bytes() {
        assert_eq!(std::mem::size_of::<Slot>(), 8);
    }
}
