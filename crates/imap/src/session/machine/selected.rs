//! The commands that change messages of the selected folder: STORE, COPY,
//! MOVE, EXPUNGE and CLOSE.

use std::num::NonZeroU32;

use imap_types::core::{Tag, Vec1};
use imap_types::extensions::uidplus::{UidElement, UidSet};
use imap_types::mailbox::Mailbox;
use imap_types::response::{Code, StatusKind};
use imap_types::sequence::SequenceSet;
use sokkel_message::{FlagEdit, Folder, MessageId};

use super::super::names::Name;
use super::super::reply;
use super::super::view;
use super::super::{Step, StoreCall};
use super::{CopyJob, Finish, Job, Session};

impl Session {
    pub(super) fn close(&mut self, tag: Tag<'static>, out: &mut Vec<u8>) -> Option<Step> {
        let view = self.view();
        let ids: Vec<MessageId> = view
            .live()
            .filter(|&i| view.has(i, "\\Deleted"))
            .map(|i| view.id(i))
            .collect();
        match (&view.folder, view.read_only || ids.is_empty()) {
            (Some(folder), false) => {
                let call = StoreCall::Expunge {
                    folder: folder.clone(),
                    ids,
                };
                self.store_call(Job::Expunge { tag, close: true }, call)
            }
            _ => {
                self.view = None;
                self.finish_now(out, Finish::ok(tag, "CLOSE completed"));
                None
            }
        }
    }

    pub(super) fn expunge(
        &mut self,
        tag: Tag<'static>,
        set: Option<SequenceSet>,
        out: &mut Vec<u8>,
    ) -> Option<Step> {
        let view = self.view();
        if view.read_only {
            self.finish(
                out,
                Finish::no(tag, Some(Code::ReadOnly), "Mailbox is read-only"),
            );
            return self.request.take().map(Step::Request);
        }
        let chosen = set.map(|set| view.resolve(&set, true));
        let ids: Vec<MessageId> = view
            .live()
            .filter(|i| chosen.as_ref().is_none_or(|c| c.binary_search(i).is_ok()))
            .filter(|&i| view.has(i, "\\Deleted"))
            .map(|i| view.id(i))
            .collect();
        match (&view.folder, ids.is_empty()) {
            (Some(folder), false) => {
                let call = StoreCall::Expunge {
                    folder: folder.clone(),
                    ids,
                };
                self.store_call(Job::Expunge { tag, close: false }, call)
            }
            _ => {
                self.finish(out, Finish::ok(tag, "EXPUNGE completed"));
                self.request.take().map(Step::Request)
            }
        }
    }

    pub(super) fn store(
        &mut self,
        tag: Tag<'static>,
        set: &SequenceSet,
        uid: bool,
        edit: FlagEdit,
        silent: bool,
        out: &mut Vec<u8>,
    ) -> Option<Step> {
        let view = self.view();
        if view.read_only {
            self.finish(
                out,
                Finish::no(tag, Some(Code::ReadOnly), "Mailbox is read-only").held(),
            );
            return self.request.take().map(Step::Request);
        }
        let chosen: Vec<usize> = view
            .resolve(set, uid)
            .into_iter()
            .filter(|&i| !view.gone(i))
            .collect();
        let uids: Vec<u32> = chosen.iter().map(|&i| view.uid(i)).collect();
        let ids: Vec<MessageId> = chosen.iter().map(|&i| view.id(i)).collect();
        match (&view.folder, ids.is_empty()) {
            (Some(folder), false) => {
                let call = StoreCall::SetFlags {
                    folder: folder.clone(),
                    ids,
                    edit: edit.clone(),
                };
                self.store_call(
                    Job::Store {
                        tag,
                        uids,
                        silent,
                        edit,
                    },
                    call,
                )
            }
            _ => {
                self.finish(out, Finish::ok(tag, "STORE completed").held());
                self.request.take().map(Step::Request)
            }
        }
    }

    pub(super) fn stored(
        &mut self,
        tag: Tag<'static>,
        uids: Vec<u32>,
        silent: bool,
        edit: &FlagEdit,
        out: &mut Vec<u8>,
    ) {
        if let Some(view) = self.view.as_mut() {
            for uid in &uids {
                if let Some(n) = view.number_of(*uid) {
                    let flags = view::apply(&view.flags(n - 1), edit);
                    view.set_flags(n - 1, flags);
                }
            }
        }
        let mut finish = Finish::ok(tag, "STORE completed").held();
        if !silent {
            finish.flags_for = uids;
        }
        self.finish(out, finish);
    }

    pub(super) fn copy(
        &mut self,
        tag: Tag<'static>,
        set: &SequenceSet,
        mailbox: &Mailbox<'_>,
        uid: bool,
        moving: bool,
        out: &mut Vec<u8>,
    ) -> Option<Step> {
        let to = self.parse_name(&tag, mailbox, out)?;
        let view = self.view();
        if moving && view.read_only {
            self.finish(
                out,
                Finish::no(tag, Some(Code::ReadOnly), "Mailbox is read-only"),
            );
            return self.request.take().map(Step::Request);
        }
        let chosen: Vec<usize> = view
            .resolve(set, uid)
            .into_iter()
            .filter(|&i| !view.gone(i))
            .collect();
        let uids: Vec<u32> = chosen.iter().map(|&i| view.uid(i)).collect();
        let ids: Vec<MessageId> = chosen.iter().map(|&i| view.id(i)).collect();
        let text = if moving {
            "MOVE completed"
        } else {
            "COPY completed"
        };
        let Some(from) = view.folder.clone() else {
            self.finish(out, Finish::ok(tag, text));
            return self.request.take().map(Step::Request);
        };
        if ids.is_empty() {
            self.finish(out, Finish::ok(tag, text));
            return self.request.take().map(Step::Request);
        }
        let target = self.folder(&to);
        if moving && target.as_ref() == Some(&from) {
            // Copying into the folder itself changes nothing, so the expunge
            // that follows would only lose the messages.
            let finish = Finish::no(
                tag,
                Some(reply::code("CANNOT")),
                "Cannot move into the same mailbox",
            );
            self.finish(out, finish);
            return self.request.take().map(Step::Request);
        }
        match target {
            // Into the Trash is a delete (Thunderbird's delete is a MOVE there);
            // a sent copy is deleted from Sent, anything else from the store.
            None => {
                let folder = match from {
                    Folder::Sent => Folder::Sent,
                    _ => self.inbox(),
                };
                let job = Job::MoveExpunge { tag, copied: None };
                self.store_call(job, StoreCall::Expunge { folder, ids })
            }
            Some(target) => {
                let job = Job::Copy(CopyJob {
                    tag: tag.clone(),
                    uids,
                    ids: ids.clone(),
                    to,
                    moving,
                });
                let call = StoreCall::Copy {
                    from,
                    ids,
                    to: target.clone(),
                };
                self.store_call_into(&target, tag, job, call)
            }
        }
    }

    pub(super) fn copied(
        &mut self,
        job: CopyJob,
        uid_validity: u32,
        target_uids: &[u32],
        out: &mut Vec<u8>,
    ) -> Option<Step> {
        let CopyJob {
            tag,
            uids,
            ids,
            to,
            moving,
        } = job;
        let to = &to;
        let code = copy_uid(uid_validity, &uids, target_uids);
        let from = self.view.as_ref().and_then(|v| v.folder.clone());
        // The INBOX holds all caught mail, as Gmail's "All Mail" does: moving a
        // message from it into a tag's folder tags it and leaves it there,
        // since taking it out of the INBOX would delete it from the store.
        let keep = matches!((&from, to), (Some(Folder::Inbox { .. }), Name::Tag(_)));
        match from {
            Some(folder) if moving && !keep => {
                if let Some(code) = code.clone() {
                    reply::status(out, None, StatusKind::Ok, Some(code), "Copied");
                }
                let job = Job::MoveExpunge { tag, copied: None };
                self.store_call(job, StoreCall::Expunge { folder, ids })
            }
            _ => {
                let text = if moving {
                    "MOVE completed"
                } else {
                    "COPY completed"
                };
                let mut finish = Finish::ok(tag, text);
                finish.code = code;
                self.finish(out, finish);
                self.request.take().map(Step::Request)
            }
        }
    }
}

/// COPYUID: the source UIDs and the UIDs the copies got, in the same order.
fn copy_uid(uid_validity: u32, source: &[u32], target: &[u32]) -> Option<Code<'static>> {
    let set = |uids: &[u32]| -> Option<UidSet> {
        // Runs of consecutive UIDs as ranges: 1:3,7 rather than 1,2,3,7.
        let mut elements: Vec<UidElement> = Vec::new();
        for &uid in uids {
            let uid = NonZeroU32::new(uid)?;
            match elements.last_mut() {
                Some(UidElement::Single(a)) if a.get().checked_add(1) == Some(uid.get()) => {
                    *elements.last_mut().expect("there") = UidElement::Range(*a, uid);
                }
                Some(UidElement::Range(_, b)) if b.get().checked_add(1) == Some(uid.get()) => {
                    *b = uid
                }
                _ => elements.push(UidElement::Single(uid)),
            }
        }
        Vec1::try_from(elements).ok().map(UidSet)
    };
    if source.len() != target.len() {
        return None;
    }
    Some(Code::CopyUid {
        uid_validity: NonZeroU32::new(uid_validity)?,
        source: set(source)?,
        destination: set(target)?,
    })
}
