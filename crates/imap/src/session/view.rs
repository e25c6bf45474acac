//! The selected folder as the client knows it: message numbers, UIDs and flags,
//! and how a fresh reading of the folder turns into `EXPUNGE`, `EXISTS` and
//! `FETCH (FLAGS ...)` updates.
//!
//! A message removed elsewhere stays in the view, marked gone, until the
//! session may announce its EXPUNGE (never while answering FETCH, STORE or
//! SEARCH, RFC 3501 section 7.4.1), so message numbers stay what the client
//! thinks they are.

use std::collections::BTreeSet;

use imap_types::IntoStatic;
use imap_types::flag::{Flag, FlagFetch, StoreType};
use imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};
use sokkel_message::{FlagEdit, Flags, Folder, FolderMessage};

use super::FolderState;

/// One message of the view.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub(super) message: FolderMessage,
    /// Removed from the folder; its EXPUNGE is still to be announced.
    pub(super) gone: bool,
}

/// The selected folder.
#[derive(Debug)]
pub(super) struct View {
    /// The folder, `None` for the Trash (always empty, nothing to poll).
    pub(super) folder: Option<Folder>,
    pub(super) read_only: bool,
    pub(super) uid_validity: u32,
    pub(super) uid_next: u32,
    pub(super) modseq: u64,
    /// By message number (index + 1), ascending UIDs.
    pub(super) entries: Vec<Entry>,
    /// The EXISTS count the client last heard.
    pub(super) announced: usize,
}

/// What a fresh reading changed, for the client.
#[derive(Debug, Default)]
pub(super) struct Changes {
    /// UIDs whose flags changed.
    pub(super) flags: BTreeSet<u32>,
}

impl View {
    pub(super) fn new(folder: Option<Folder>, read_only: bool, state: FolderState) -> View {
        let entries: Vec<Entry> = state
            .messages
            .into_iter()
            .map(|message| Entry {
                message,
                gone: false,
            })
            .collect();
        View {
            folder,
            read_only,
            uid_validity: state.uid_validity.max(1),
            uid_next: state.uid_next.max(1),
            modseq: state.highest_modseq,
            announced: entries.len(),
            entries,
        }
    }

    /// Takes in the folder as the store now has it.
    pub(super) fn refresh(&mut self, state: FolderState) -> Changes {
        let mut changes = Changes::default();
        let mut fresh = state.messages.into_iter().peekable();
        for entry in &mut self.entries {
            while fresh.peek().is_some_and(|m| m.uid < entry.message.uid) {
                // A message the view never had below one it has: the store's
                // UIDs ascend, so this is one it showed and took back; skip it.
                fresh.next();
            }
            match fresh.peek() {
                Some(m) if m.uid == entry.message.uid => {
                    let m = fresh.next().expect("peeked");
                    if !entry.gone && m.flags != entry.message.flags {
                        changes.flags.insert(m.uid);
                    }
                    entry.message = m;
                }
                _ => entry.gone = true,
            }
        }
        let last = self.entries.last().map_or(0, |e| e.message.uid);
        self.entries
            .extend(fresh.filter(|m| m.uid > last).map(|message| Entry {
                message,
                gone: false,
            }));
        self.uid_next = state.uid_next.max(self.uid_next);
        self.modseq = state.highest_modseq;
        if state.uid_validity != 0 && state.uid_validity != self.uid_validity {
            // The store was made anew: every UID the client has is void.
            for entry in &mut self.entries {
                entry.gone = true;
            }
        }
        changes
    }

    /// Removes the gone messages; returns their message numbers in the order
    /// the EXPUNGE responses must name them.
    pub(super) fn expunge_gone(&mut self) -> Vec<u32> {
        let mut numbers = Vec::new();
        let mut index = self.entries.len();
        while index > 0 {
            index -= 1;
            if self.entries[index].gone {
                self.entries.remove(index);
                numbers.push(index as u32 + 1);
            }
        }
        self.announced -= numbers.len().min(self.announced);
        numbers
    }

    /// The message number of `uid`.
    pub(super) fn number_of(&self, uid: u32) -> Option<usize> {
        self.entries
            .binary_search_by_key(&uid, |e| e.message.uid)
            .ok()
            .map(|i| i + 1)
    }

    /// The indexes a sequence set names, ascending, each once. `*` is the last
    /// message (or the highest UID); numbers past the end name nothing.
    pub(super) fn resolve(&self, set: &SequenceSet, uid: bool) -> Vec<usize> {
        let mut out = Vec::new();
        if self.entries.is_empty() {
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
                let start = self.entries.partition_point(|e| e.message.uid < lo);
                let end = self.entries.partition_point(|e| e.message.uid <= hi);
                out.extend(start..end);
            } else {
                let hi = (hi as usize).min(self.entries.len());
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
            SeqOrUid::Asterisk if uid => self.entries.last().map_or(0, |e| e.message.uid),
            SeqOrUid::Asterisk => self.entries.len() as u32,
        }
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
