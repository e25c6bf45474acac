//! The commands on mailboxes as a whole: SELECT, EXAMINE, STATUS, LIST, LSUB,
//! CREATE, DELETE, RENAME and APPEND.

use std::collections::{BTreeSet, HashMap};
use std::num::NonZeroU32;
use std::time::SystemTime;

use imap_types::IntoStatic;
use imap_types::core::{Atom, QuotedChar, Tag};
use imap_types::flag::{Flag, FlagNameAttribute, FlagPerm};
use imap_types::mailbox::{ListMailbox, Mailbox};
use imap_types::response::{Code, Data, StatusKind};
use imap_types::status::{StatusDataItem, StatusDataItemName};
use sokkel_message::{Flags, Folder};

use super::super::names::{self, DELIMITER, Name};
use super::super::reply;
use super::super::view::{self, View};
use super::super::{FolderState, Step, StoreCall};
use super::{Finish, Job, Session};

impl Session {
    /// The login's INBOX: all mail, or with per-recipient INBOXes its own.
    pub(super) fn inbox(&self) -> Folder {
        let recipient = self.config.per_recipient.then(|| self.user.clone());
        Folder::Inbox {
            recipient: recipient.flatten(),
        }
    }

    /// The folder a name means for this login; `None` for the Trash.
    pub(super) fn folder(&self, name: &Name) -> Option<Folder> {
        match name {
            Name::Inbox => Some(self.inbox()),
            Name::Sent => Some(Folder::Sent),
            Name::Trash => None,
            Name::Tag(tag) => Some(Folder::Tag(tag.clone())),
        }
    }

    pub(super) fn parse_name(
        &mut self,
        tag: &Tag<'static>,
        mailbox: &Mailbox<'_>,
        out: &mut Vec<u8>,
    ) -> Option<Name> {
        let name = Name::parse(mailbox, self.utf8);
        if name.is_none() {
            self.finish_now(
                out,
                Finish::no(
                    tag.clone(),
                    Some(reply::code("CANNOT")),
                    "Mailbox name is not valid modified UTF-7",
                ),
            );
        }
        name
    }

    pub(super) fn open(
        &mut self,
        tag: Tag<'static>,
        mailbox: &Mailbox<'_>,
        read_only: bool,
        out: &mut Vec<u8>,
    ) -> Option<Step> {
        // A SELECT, even one that fails, leaves the selected state.
        self.view = None;
        let name = self.parse_name(&tag, mailbox, out)?;
        match self.folder(&name) {
            Some(folder) => self.store_call(
                Job::Open {
                    tag,
                    name,
                    read_only,
                },
                StoreCall::Open { folder },
            ),
            None => {
                self.opened(tag, name, read_only, Some(trash_state()), out);
                None
            }
        }
    }

    pub(super) fn opened(
        &mut self,
        tag: Tag<'static>,
        name: Name,
        read_only: bool,
        state: Option<FolderState>,
        out: &mut Vec<u8>,
    ) {
        let Some(state) = state else {
            self.finish_now(
                out,
                Finish::no(tag, Some(reply::code("NONEXISTENT")), "No such mailbox"),
            );
            return;
        };
        let view = View::new(self.folder(&name), read_only, state);
        let keywords = view.keywords();
        let mut flags = vec![
            Flag::Answered,
            Flag::Flagged,
            Flag::Deleted,
            Flag::Seen,
            Flag::Draft,
        ];
        flags.extend(
            keywords
                .iter()
                .filter_map(|k| Flag::try_from(*k).ok())
                .map(IntoStatic::into_static),
        );
        reply::data(out, Data::Flags(flags.clone()));
        let mut permanent: Vec<FlagPerm<'static>> = flags.into_iter().map(FlagPerm::Flag).collect();
        permanent.push(FlagPerm::Asterisk);
        if read_only {
            permanent.clear();
        }
        reply::status(
            out,
            None,
            StatusKind::Ok,
            Some(Code::PermanentFlags(permanent)),
            "Flags permitted",
        );
        reply::data(out, Data::Exists(view.len() as u32));
        // RFC 3501 allows a server to never flag a message \Recent: sokkel has no
        // notion of a first session to see a message, so RECENT is always 0.
        reply::data(out, Data::Recent(0));
        if let Some(first) = (0..view.len()).position(|i| !view.seen(i)) {
            if let Ok(code) = Code::unseen(first as u32 + 1) {
                reply::status(out, None, StatusKind::Ok, Some(code), "First unseen");
            }
        }
        if let Ok(code) = Code::uidvalidity(view.uid_validity) {
            reply::status(out, None, StatusKind::Ok, Some(code), "UIDs valid");
        }
        if let Ok(code) = Code::uidnext(view.uid_next) {
            reply::status(out, None, StatusKind::Ok, Some(code), "Predicted next UID");
        }
        let (code, text) = if read_only {
            (Code::ReadOnly, "EXAMINE completed")
        } else {
            (Code::ReadWrite, "SELECT completed")
        };
        self.view = Some(view);
        self.finish_now(out, Finish::ok(tag, text).with_code(code));
    }

    pub(super) fn status(
        &mut self,
        tag: Tag<'static>,
        mailbox: &Mailbox<'_>,
        items: Vec<StatusDataItemName>,
        out: &mut Vec<u8>,
    ) -> Option<Step> {
        let name = self.parse_name(&tag, mailbox, out)?;
        match self.folder(&name) {
            Some(folder) => {
                self.store_call(Job::Status { tag, name, items }, StoreCall::Open { folder })
            }
            None => {
                self.status_answer(tag, &name, &items, Some(trash_state()), out);
                None
            }
        }
    }

    pub(super) fn status_answer(
        &mut self,
        tag: Tag<'static>,
        name: &Name,
        items: &[StatusDataItemName],
        state: Option<FolderState>,
        out: &mut Vec<u8>,
    ) {
        let Some(state) = state else {
            self.finish_now(
                out,
                Finish::no(tag, Some(reply::code("NONEXISTENT")), "No such mailbox"),
            );
            return;
        };
        let count = |f: &dyn Fn(&Flags) -> bool| {
            state.messages.iter().filter(|m| f(&m.flags)).count() as u32
        };
        let one = NonZeroU32::MIN;
        let values: Vec<StatusDataItem> = items
            .iter()
            .map(|item| match item {
                StatusDataItemName::Messages => {
                    StatusDataItem::Messages(state.messages.len() as u32)
                }
                StatusDataItemName::Recent => StatusDataItem::Recent(0),
                StatusDataItemName::UidNext => {
                    StatusDataItem::UidNext(NonZeroU32::new(state.uid_next).unwrap_or(one))
                }
                StatusDataItemName::UidValidity => {
                    StatusDataItem::UidValidity(NonZeroU32::new(state.uid_validity).unwrap_or(one))
                }
                StatusDataItemName::Unseen => StatusDataItem::Unseen(count(&|f| !f.seen)),
                StatusDataItemName::Deleted => {
                    StatusDataItem::Deleted(count(&|f| view::has(f, "\\Deleted")))
                }
                StatusDataItemName::DeletedStorage => StatusDataItem::DeletedStorage(
                    state
                        .messages
                        .iter()
                        .filter(|m| view::has(&m.flags, "\\Deleted"))
                        .map(|m| m.size)
                        .sum(),
                ),
                StatusDataItemName::HighestModSeq => {
                    StatusDataItem::HighestModSeq(state.highest_modseq)
                }
            })
            .collect();
        reply::data(
            out,
            Data::Status {
                mailbox: name.to_mailbox(self.utf8),
                items: values.into(),
            },
        );
        self.finish(out, Finish::ok(tag, "STATUS completed"));
    }

    pub(super) fn list(
        &mut self,
        tag: Tag<'static>,
        reference: &Mailbox<'_>,
        wildcard: &ListMailbox<'_>,
        lsub: bool,
        out: &mut Vec<u8>,
    ) -> Option<Step> {
        let reference = match reference {
            Mailbox::Inbox => Some("INBOX".to_owned()),
            Mailbox::Other(other) => names::decode(other.as_ref(), self.utf8),
        };
        let pattern = match wildcard {
            ListMailbox::Token(token) => names::decode(token.as_ref(), self.utf8),
            ListMailbox::String(string) => names::decode(string.as_ref(), self.utf8),
        };
        let (Some(reference), Some(pattern)) = (reference, pattern) else {
            self.finish_now(
                out,
                Finish::no(tag, None, "Mailbox name is not valid modified UTF-7"),
            );
            return None;
        };
        if pattern.is_empty() && !lsub {
            // RFC 3501 section 6.3.8: the hierarchy delimiter and root.
            reply::data(
                out,
                Data::List {
                    items: vec![FlagNameAttribute::Noselect],
                    delimiter: Some(QuotedChar::unvalidated(DELIMITER)),
                    mailbox: Mailbox::try_from("").unwrap_or(Mailbox::Inbox),
                },
            );
            self.finish(out, Finish::ok(tag, "LIST completed"));
            return None;
        }
        let pattern = if pattern.starts_with(DELIMITER) || reference.is_empty() {
            pattern
        } else if reference.ends_with(DELIMITER) {
            format!("{reference}{pattern}")
        } else {
            format!("{reference}{DELIMITER}{pattern}")
        };
        self.store_call(Job::List { tag, pattern, lsub }, StoreCall::FolderNames)
    }

    pub(super) fn list_answer(
        &mut self,
        tag: Tag<'static>,
        pattern: &str,
        lsub: bool,
        tags: Vec<String>,
        out: &mut Vec<u8>,
    ) {
        let mut all: Vec<(String, Option<&'static str>)> = vec![
            ("INBOX".to_owned(), None),
            ("Sent".to_owned(), Some("Sent")),
            ("Trash".to_owned(), Some("Trash")),
        ];
        for tag in tags {
            if !matches!(Name::from_decoded(tag.clone()), Name::Tag(_)) {
                continue;
            }
            all.push((tag, None));
        }
        let existing: BTreeSet<String> = all.iter().map(|(n, _)| n.clone()).collect();
        let mut candidates: BTreeSet<String> = existing.clone();
        for name in &existing {
            let mut prefix = name.as_str();
            while let Some(cut) = prefix.rfind(DELIMITER) {
                prefix = &prefix[..cut];
                if !prefix.is_empty() {
                    candidates.insert(prefix.to_owned());
                }
            }
        }
        let special: HashMap<String, &str> = all
            .iter()
            .filter_map(|(n, s)| s.map(|s| (n.clone(), s)))
            .collect();
        let ordered = std::iter::once("INBOX".to_owned())
            .chain(candidates.into_iter().filter(|n| n != "INBOX"));
        for name in ordered {
            if !names::matches(pattern, &name) {
                continue;
            }
            let child_prefix = format!("{name}{DELIMITER}");
            let has_children = existing.iter().any(|n| n.starts_with(&child_prefix));
            let mut items = Vec::new();
            if !existing.contains(&name) {
                if lsub {
                    continue;
                }
                items.push(FlagNameAttribute::Noselect);
            }
            items.push(attribute(if has_children {
                "HasChildren"
            } else {
                "HasNoChildren"
            }));
            if let Some(special) = special.get(&name) {
                items.push(attribute(special));
            }
            let mailbox = names::wire_mailbox(&name, self.utf8);
            let delimiter = Some(QuotedChar::unvalidated(DELIMITER));
            let data = if lsub {
                Data::Lsub {
                    items,
                    delimiter,
                    mailbox,
                }
            } else {
                Data::List {
                    items,
                    delimiter,
                    mailbox,
                }
            };
            reply::data(out, data);
        }
        let text = if lsub {
            "LSUB completed"
        } else {
            "LIST completed"
        };
        self.finish(out, Finish::ok(tag, text));
    }

    pub(super) fn create(
        &mut self,
        tag: Tag<'static>,
        mailbox: &Mailbox<'_>,
        out: &mut Vec<u8>,
    ) -> Option<Step> {
        match self.parse_name(&tag, mailbox, out)? {
            Name::Tag(name) if !name.is_empty() => {
                let job = Job::FolderChange {
                    tag,
                    missing: reply::code("ALREADYEXISTS"),
                };
                self.store_call(job, StoreCall::Create(name))
            }
            Name::Tag(_) => {
                self.finish_now(
                    out,
                    Finish::no(tag, Some(reply::code("CANNOT")), "Empty mailbox name"),
                );
                None
            }
            _ => {
                self.finish_now(
                    out,
                    Finish::no(
                        tag,
                        Some(reply::code("ALREADYEXISTS")),
                        "Mailbox exists already",
                    ),
                );
                None
            }
        }
    }

    pub(super) fn delete(
        &mut self,
        tag: Tag<'static>,
        mailbox: &Mailbox<'_>,
        out: &mut Vec<u8>,
    ) -> Option<Step> {
        match self.parse_name(&tag, mailbox, out)? {
            Name::Tag(name) => {
                let job = Job::FolderChange {
                    tag,
                    missing: reply::code("NONEXISTENT"),
                };
                self.store_call(job, StoreCall::Delete(name))
            }
            _ => {
                self.finish_now(
                    out,
                    Finish::no(
                        tag,
                        Some(reply::code("CANNOT")),
                        "INBOX, Sent and Trash cannot be deleted",
                    ),
                );
                None
            }
        }
    }

    pub(super) fn rename(
        &mut self,
        tag: Tag<'static>,
        from: &Mailbox<'_>,
        to: &Mailbox<'_>,
        out: &mut Vec<u8>,
    ) -> Option<Step> {
        let from = self.parse_name(&tag, from, out)?;
        let to = self.parse_name(&tag, to, out)?;
        match (from, to) {
            (Name::Tag(from), Name::Tag(to)) if !to.is_empty() => {
                let job = Job::FolderChange {
                    tag,
                    missing: reply::code("NONEXISTENT"),
                };
                self.store_call(job, StoreCall::Rename { from, to })
            }
            (Name::Tag(_), _) => {
                self.finish_now(
                    out,
                    Finish::no(
                        tag,
                        Some(reply::code("ALREADYEXISTS")),
                        "Mailbox exists already",
                    ),
                );
                None
            }
            _ => {
                self.finish_now(
                    out,
                    Finish::no(
                        tag,
                        Some(reply::code("CANNOT")),
                        "INBOX, Sent and Trash cannot be renamed",
                    ),
                );
                None
            }
        }
    }

    pub(super) fn append(
        &mut self,
        tag: Tag<'static>,
        mailbox: &Mailbox<'_>,
        flags: Flags,
        raw: Vec<u8>,
        received_at: Option<SystemTime>,
        out: &mut Vec<u8>,
    ) -> Option<Step> {
        let name = self.parse_name(&tag, mailbox, out)?;
        let Some(folder) = self.folder(&name) else {
            self.finish_now(
                out,
                Finish::no(tag, Some(reply::code("CANNOT")), "Trash is always empty"),
            );
            return None;
        };
        let job = Job::Append { tag: tag.clone() };
        let call = StoreCall::Append {
            folder: folder.clone(),
            raw,
            flags,
            received_at,
        };
        self.store_call_into(&folder, tag, job, call)
    }
}

pub(super) fn attribute(name: &'static str) -> FlagNameAttribute<'static> {
    FlagNameAttribute::from(Atom::unvalidated(name))
}

/// The Trash as SELECT and STATUS see it: always empty.
pub(super) fn trash_state() -> FolderState {
    FolderState {
        uid_validity: 1,
        uid_next: 1,
        highest_modseq: 0,
        messages: Vec::new(),
    }
}
