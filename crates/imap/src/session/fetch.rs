//! FETCH: which messages, whether their raw bytes are needed (in batches, so a
//! FETCH of the whole folder never holds every message), \Seen for a non-PEEK
//! body fetch, and the FETCH responses.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::num::NonZeroU32;
use std::time::{SystemTime, UNIX_EPOCH};

use imap_types::core::{IString, Literal, NString, Tag, Vec1};
use imap_types::datetime::DateTime;
use imap_types::fetch::{MessageDataItem, MessageDataItemName, Section};
use imap_types::response::Data;
use imap_types::sequence::SequenceSet;
use sokkel_message::{FlagEdit, Flags, FolderMessage};

use super::machine::Finish;
use super::view::{self, Details, View};
use super::{StoreCall, StoreReply};
use crate::message::Parsed;

/// Messages whose raw bytes one store call fetches.
pub(super) const BATCH: usize = 64;

#[derive(Debug, PartialEq, Eq)]
enum Stage {
    /// The \Seen flags a body fetch sets are still to be set.
    MarkSeen,
    /// Waiting for the store to set them.
    SettingSeen(Vec<u32>),
    /// Waiting for the sizes, dates and modseqs the items ask for.
    Details,
    /// Rendering, batch by batch.
    Render,
    /// Waiting for the raw messages of these UIDs.
    Raw(Vec<u32>),
}

/// A FETCH in progress.
#[derive(Debug)]
pub(super) struct FetchJob {
    pub(super) tag: Tag<'static>,
    uid: bool,
    items: Vec<MessageDataItemName<'static>>,
    /// The messages, by UID, ascending.
    uids: Vec<u32>,
    /// How many of them were answered.
    done: usize,
    raw: bool,
    stage: Stage,
    /// UIDs whose \Seen this FETCH set: their response includes FLAGS.
    marked: BTreeSet<u32>,
    /// INTERNALDATE, RFC822.SIZE or MODSEQ is asked for: read from the store
    /// once the rest is set.
    details: Option<Details>,
    wants_details: bool,
}

/// What one FETCH response shows of a message.
struct Shown<'a> {
    uid: u32,
    flags: Flags,
    details: Option<&'a FolderMessage>,
}

impl FetchJob {
    /// A FETCH of `set`; `Err` with the tag and text of a BAD.
    pub(super) fn start(
        tag: Tag<'static>,
        set: &SequenceSet,
        items: Vec<MessageDataItemName<'static>>,
        uid: bool,
        view: &View,
    ) -> Result<FetchJob, (Tag<'static>, &'static str)> {
        if items.iter().any(|item| {
            matches!(
                item,
                MessageDataItemName::Binary { .. } | MessageDataItemName::BinarySize { .. }
            )
        }) {
            return Err((tag, "BINARY is not supported"));
        }
        let raw = items.iter().any(needs_raw);
        let sets_seen = !view.read_only && items.iter().any(sets_seen);
        let uids = view
            .resolve(set, uid)
            .into_iter()
            .map(|i| view.uid(i))
            .collect();
        let wants_details = items.iter().any(needs_details);
        Ok(FetchJob {
            tag,
            uid,
            items,
            uids,
            done: 0,
            raw,
            stage: if sets_seen {
                Stage::MarkSeen
            } else {
                Stage::Render
            },
            marked: BTreeSet::new(),
            details: None,
            wants_details,
        })
    }

    /// Writes what it can; returns the next store call, or the end.
    pub(super) fn next(
        mut self,
        view: &mut View,
        out: &mut Vec<u8>,
    ) -> Result<(FetchJob, StoreCall), Box<Finish>> {
        let Some(folder) = view.folder.clone() else {
            return Err(Box::new(self.finish()));
        };
        if self.stage == Stage::MarkSeen {
            let unseen: Vec<u32> = self
                .uids
                .iter()
                .copied()
                .filter(|&uid| {
                    view.number_of(uid)
                        .is_some_and(|n| !view.gone(n - 1) && !view.seen(n - 1))
                })
                .collect();
            if !unseen.is_empty() {
                let ids = unseen
                    .iter()
                    .filter_map(|&uid| view.number_of(uid))
                    .map(|n| view.id(n - 1))
                    .collect();
                let edit = FlagEdit::Add(Flags {
                    seen: true,
                    ..Flags::default()
                });
                self.stage = Stage::SettingSeen(unseen);
                return Ok((self, StoreCall::SetFlags { folder, ids, edit }));
            }
            self.stage = Stage::Render;
        }
        if self.wants_details && self.details.is_none() {
            self.stage = Stage::Details;
            return Ok((self, StoreCall::Open { folder }));
        }
        if !self.raw {
            for &uid in &self.uids {
                if let Some(n) = view.number_of(uid) {
                    write(out, n, view, &self, None);
                }
            }
            return Err(Box::new(self.finish()));
        }
        let batch: Vec<u32> = self
            .uids
            .iter()
            .skip(self.done)
            .take(BATCH)
            .copied()
            .collect();
        if batch.is_empty() {
            return Err(Box::new(self.finish()));
        }
        let ids = batch
            .iter()
            .map(|&uid| {
                let n = view.number_of(uid).expect("held messages stay in the view");
                view.id(n - 1)
            })
            .collect();
        self.stage = Stage::Raw(batch);
        Ok((self, StoreCall::Raw { folder, ids }))
    }

    /// Takes the store's answer.
    pub(super) fn answer(
        mut self,
        reply: StoreReply,
        view: &mut View,
        out: &mut Vec<u8>,
    ) -> Result<FetchJob, Box<Finish>> {
        match (std::mem::replace(&mut self.stage, Stage::Render), reply) {
            (Stage::SettingSeen(uids), StoreReply::Done) => {
                for uid in uids {
                    if let Some(n) = view.number_of(uid) {
                        let mut flags = view.flags(n - 1);
                        flags.seen = true;
                        view.set_flags(n - 1, flags);
                    }
                    self.marked.insert(uid);
                }
                Ok(self)
            }
            (Stage::Details, StoreReply::Opened(state)) => {
                self.details = Some(Details::new(state));
                Ok(self)
            }
            (Stage::Raw(batch), StoreReply::Raw(raws)) => {
                // The store may answer only the first of the batch (its byte
                // budget); the rest is asked for next.
                self.done += raws.len().min(batch.len());
                for (uid, raw) in batch.into_iter().zip(raws) {
                    // A message deleted meanwhile is left out (RFC 2180 section 4.1.3).
                    let (Some(raw), Some(n)) = (raw, view.number_of(uid)) else {
                        continue;
                    };
                    let parsed = Parsed::new(raw);
                    write(out, n, view, &self, Some(&parsed));
                }
                Ok(self)
            }
            _ => Err(Box::new(
                Finish::no(self.tag, None, "Unexpected answer from the store").held(),
            )),
        }
    }

    fn finish(self) -> Finish {
        let text = if self.uid {
            "UID FETCH completed"
        } else {
            "FETCH completed"
        };
        Finish::ok(self.tag, text).held()
    }
}

fn needs_details(item: &MessageDataItemName<'_>) -> bool {
    matches!(
        item,
        MessageDataItemName::InternalDate
            | MessageDataItemName::Rfc822Size
            | MessageDataItemName::ModSeq
    )
}

fn needs_raw(item: &MessageDataItemName<'_>) -> bool {
    !matches!(
        item,
        MessageDataItemName::Uid
            | MessageDataItemName::Flags
            | MessageDataItemName::InternalDate
            | MessageDataItemName::Rfc822Size
            | MessageDataItemName::ModSeq
    )
}

fn sets_seen(item: &MessageDataItemName<'_>) -> bool {
    matches!(
        item,
        MessageDataItemName::BodyExt { peek: false, .. }
            | MessageDataItemName::Rfc822
            | MessageDataItemName::Rfc822Text
    )
}

/// Writes one `* n FETCH (...)`.
fn write(out: &mut Vec<u8>, number: usize, view: &View, job: &FetchJob, parsed: Option<&Parsed>) {
    let uid = view.uid(number - 1);
    let details = job.details.as_ref().and_then(|d| d.get(uid));
    if job.wants_details && details.is_none() {
        // Deleted meanwhile: no size or date to show (RFC 2180 section 4.1.3).
        return;
    }
    let message = Shown {
        uid,
        flags: view.flags(number - 1),
        details,
    };
    let mut items: Vec<MessageDataItem<'_>> = Vec::with_capacity(job.items.len() + 2);
    let uid_requested = job.items.contains(&MessageDataItemName::Uid);
    if job.uid && !uid_requested {
        items.extend(uid_item(message.uid));
    }
    for name in &job.items {
        if let Some(item) = item(name, &message, parsed) {
            items.push(item);
        }
    }
    if job.marked.contains(&message.uid) && !job.items.contains(&MessageDataItemName::Flags) {
        items.push(MessageDataItem::Flags(view::fetch_flags(&message.flags)));
    }
    let (Some(seq), Ok(items)) = (NonZeroU32::new(number as u32), Vec1::try_from(items)) else {
        return;
    };
    super::reply::data(out, Data::Fetch { seq, items });
}

fn uid_item(uid: u32) -> Option<MessageDataItem<'static>> {
    NonZeroU32::new(uid).map(MessageDataItem::Uid)
}

fn item<'a>(
    name: &MessageDataItemName<'static>,
    message: &Shown<'_>,
    parsed: Option<&'a Parsed>,
) -> Option<MessageDataItem<'a>> {
    Some(match name {
        MessageDataItemName::Uid => return uid_item(message.uid),
        MessageDataItemName::Flags => MessageDataItem::Flags(view::fetch_flags(&message.flags)),
        MessageDataItemName::InternalDate => {
            MessageDataItem::InternalDate(internal_date(message.details?.received_at))
        }
        MessageDataItemName::Rfc822Size => {
            MessageDataItem::Rfc822Size(u32::try_from(message.details?.size).unwrap_or(u32::MAX))
        }
        MessageDataItemName::ModSeq => {
            MessageDataItem::ModSeq(std::num::NonZeroU64::new(message.details?.modseq)?)
        }
        MessageDataItemName::Envelope => MessageDataItem::Envelope(parsed?.envelope()),
        MessageDataItemName::Body => MessageDataItem::Body(parsed?.body_structure(false)),
        MessageDataItemName::BodyStructure => {
            MessageDataItem::BodyStructure(parsed?.body_structure(true))
        }
        MessageDataItemName::BodyExt {
            section, partial, ..
        } => {
            let bytes = parsed?.section_bytes(section.as_ref());
            let (bytes, origin) = match partial {
                Some((origin, length)) => (cut(bytes, *origin, length.get()), Some(*origin)),
                None => (bytes, None),
            };
            MessageDataItem::BodyExt {
                section: section.clone(),
                origin,
                data: nstring(bytes),
            }
        }
        MessageDataItemName::Rfc822 => {
            MessageDataItem::Rfc822(nstring(parsed?.section_bytes(None)))
        }
        MessageDataItemName::Rfc822Header => MessageDataItem::Rfc822Header(nstring(
            parsed?.section_bytes(Some(&Section::Header(None))),
        )),
        MessageDataItemName::Rfc822Text => {
            MessageDataItem::Rfc822Text(nstring(parsed?.section_bytes(Some(&Section::Text(None)))))
        }
        MessageDataItemName::Binary { .. } | MessageDataItemName::BinarySize { .. } => return None,
    })
}

/// `BODY[...]<origin.length>`: the bytes from `origin`, at most `length`.
fn cut(bytes: Cow<'_, [u8]>, origin: u32, length: u32) -> Cow<'_, [u8]> {
    let start = (origin as usize).min(bytes.len());
    let end = start.saturating_add(length as usize).min(bytes.len());
    match bytes {
        Cow::Borrowed(all) => Cow::Borrowed(&all[start..end]),
        Cow::Owned(mut all) => {
            all.truncate(end);
            all.drain(..start);
            Cow::Owned(all)
        }
    }
}

/// A literal of `bytes`. IMAP literals cannot carry NUL: like Dovecot, a NUL
/// byte of a stored message is sent as 0x80.
fn nstring(bytes: Cow<'_, [u8]>) -> NString<'_> {
    let bytes = if memchr::memchr(0, &bytes).is_some() {
        Cow::Owned(
            bytes
                .iter()
                .map(|&b| if b == 0 { 0x80 } else { b })
                .collect(),
        )
    } else {
        bytes
    };
    NString(Some(IString::Literal(Literal::unvalidated(bytes))))
}

/// INTERNALDATE, in UTC.
pub(super) fn internal_date(at: SystemTime) -> DateTime {
    let seconds = match at.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    };
    let utc = chrono::DateTime::from_timestamp(seconds, 0).unwrap_or_default();
    let fixed = utc.fixed_offset();
    DateTime::try_from(fixed).unwrap_or_else(|_| {
        DateTime::try_from(chrono::DateTime::UNIX_EPOCH.fixed_offset())
            .expect("1970 is a valid date")
    })
}

/// An unsolicited `* n FETCH (FLAGS (...) UID u)` for a change made elsewhere.
pub(super) fn flags_update(number: usize, uid: u32, flags: &Flags) -> Data<'static> {
    let mut items = vec![MessageDataItem::Flags(view::fetch_flags(flags))];
    items.extend(uid_item(uid));
    Data::Fetch {
        seq: NonZeroU32::new(number as u32).unwrap_or(NonZeroU32::MIN),
        items: Vec1::try_from(items).expect("FLAGS is there"),
    }
}
