//! SEARCH: keys on the state the session has (flags, sizes, dates, numbers)
//! are evaluated here; keys on content go to [`Parsed::matches`], and only
//! then are raw messages fetched, in batches.
//!
//! BEFORE, ON and SINCE compare the date of INTERNALDATE in UTC (RFC 3501
//! leaves the time zone to the server).

use std::num::NonZeroU32;

use chrono::NaiveDate;
use imap_types::core::{Charset, Tag, Vec1};
use imap_types::response::{Code, Data, StatusKind};
use imap_types::search::SearchKey;

use super::fetch::{BATCH, internal_date};
use super::machine::Finish;
use super::view::{self, Details, View, has};
use super::{StoreCall, StoreReply};
use crate::message::Parsed;
use sokkel_message::{Flags, FolderMessage};

/// A SEARCH in progress.
#[derive(Debug)]
pub(super) struct SearchJob {
    pub(super) tag: Tag<'static>,
    uid: bool,
    key: SearchKey<'static>,
    /// The UIDs to look at, ascending.
    uids: Vec<u32>,
    done: usize,
    /// Waiting for the raw messages of these UIDs.
    pending: Vec<u32>,
    hits: Vec<u32>,
    /// Sizes and dates, for LARGER, SMALLER, BEFORE, ON, SINCE.
    details: Option<Details>,
}

impl SearchJob {
    /// A SEARCH; `Err` if its charset is not one sokkel knows.
    pub(super) fn start(
        tag: Tag<'static>,
        charset: Option<&Charset<'_>>,
        criteria: Vec1<SearchKey<'static>>,
        uid: bool,
        view: &View,
    ) -> Result<SearchJob, Box<Finish>> {
        if let Some(charset) = charset {
            let name = charset.as_ref();
            if !name.eq_ignore_ascii_case("US-ASCII") && !name.eq_ignore_ascii_case("UTF-8") {
                let allowed = vec![
                    Charset::try_from("US-ASCII").expect("an atom"),
                    Charset::try_from("UTF-8").expect("an atom"),
                ];
                let mut finish =
                    Finish::no(tag, Some(Code::badcharset(allowed)), "Unknown charset");
                finish.kind = StatusKind::No;
                return Err(Box::new(finish.held()));
            }
        }
        let mut keys = criteria.into_inner();
        let key = if keys.len() == 1 {
            keys.remove(0)
        } else {
            SearchKey::And(Vec1::try_from(keys).expect("criteria are never empty"))
        };
        let uids = view.live().map(|i| view.uid(i)).collect();
        Ok(SearchJob {
            tag,
            uid,
            key,
            uids,
            done: 0,
            pending: Vec::new(),
            hits: Vec::new(),
            details: None,
        })
    }

    /// Evaluates what it can; returns the next store call, or the end.
    pub(super) fn next(
        mut self,
        view: &View,
        out: &mut Vec<u8>,
    ) -> Result<(SearchJob, StoreCall), Box<Finish>> {
        let folder = view.folder.clone();
        if let Some(folder) = &folder
            && self.details.is_none()
            && reads_details(&self.key)
        {
            let call = StoreCall::Open {
                folder: folder.clone(),
            };
            return Ok((self, call));
        }
        match folder {
            Some(folder) if reads_content(&self.key) => {
                let batch: Vec<u32> = self
                    .uids
                    .iter()
                    .skip(self.done)
                    .take(BATCH)
                    .copied()
                    .collect();
                if batch.is_empty() {
                    return Err(Box::new(self.finish(view, out)));
                }
                let ids = batch
                    .iter()
                    .map(|&uid| {
                        let n = view.number_of(uid).expect("held messages stay in the view");
                        view.id(n - 1)
                    })
                    .collect();
                self.pending = batch;
                Ok((self, StoreCall::Raw { folder, ids }))
            }
            _ => {
                let uids = std::mem::take(&mut self.uids);
                for uid in uids {
                    if self.matches(view, uid, None) {
                        self.hits.push(uid);
                    }
                }
                Err(Box::new(self.finish(view, out)))
            }
        }
    }

    /// Takes the raw messages of a batch.
    pub(super) fn answer(
        mut self,
        reply: StoreReply,
        view: &View,
        _out: &mut Vec<u8>,
    ) -> Result<SearchJob, Box<Finish>> {
        let raws = match reply {
            StoreReply::Raw(raws) => raws,
            StoreReply::Opened(state) if self.details.is_none() => {
                self.details = Some(Details::new(state));
                return Ok(self);
            }
            _ => {
                return Err(Box::new(
                    Finish::no(self.tag, None, "Unexpected answer from the store").held(),
                ));
            }
        };
        let batch = std::mem::take(&mut self.pending);
        // The store may answer only the first of the batch (its byte budget);
        // the rest is asked for next.
        self.done += raws.len().min(batch.len());
        for (uid, raw) in batch.into_iter().zip(raws) {
            let Some(raw) = raw else { continue };
            let parsed = Parsed::new(raw);
            if self.matches(view, uid, Some(&parsed)) {
                self.hits.push(uid);
            }
        }
        Ok(self)
    }

    fn matches(&self, view: &View, uid: u32, parsed: Option<&Parsed>) -> bool {
        let Some(number) = view.number_of(uid) else {
            return false;
        };
        let context = Context {
            number: number as u32,
            uid,
            flags: view.flags(number - 1),
            details: self.details.as_ref().and_then(|d| d.get(uid)),
            last_number: view.len() as u32,
            last_uid: view.last_uid(),
            parsed,
        };
        context.eval(&self.key)
    }

    fn finish(self, view: &View, out: &mut Vec<u8>) -> Finish {
        let found: Vec<NonZeroU32> = self
            .hits
            .iter()
            .filter_map(|&uid| {
                let value = if self.uid {
                    uid
                } else {
                    view.number_of(uid)? as u32
                };
                NonZeroU32::new(value)
            })
            .collect();
        super::reply::data(out, Data::Search(found, None));
        let text = if self.uid {
            "UID SEARCH completed"
        } else {
            "SEARCH completed"
        };
        Finish::ok(self.tag, text).held()
    }
}

/// Whether the key (or one inside it) reads the message's content.
fn reads_content(key: &SearchKey<'_>) -> bool {
    match key {
        SearchKey::And(keys) => keys.as_ref().iter().any(reads_content),
        SearchKey::Not(key) => reads_content(key),
        SearchKey::Or(a, b) => reads_content(a) || reads_content(b),
        SearchKey::Bcc(_)
        | SearchKey::Body(_)
        | SearchKey::Cc(_)
        | SearchKey::From(_)
        | SearchKey::Header(..)
        | SearchKey::Subject(_)
        | SearchKey::Text(_)
        | SearchKey::To(_)
        | SearchKey::SentBefore(_)
        | SearchKey::SentOn(_)
        | SearchKey::SentSince(_) => true,
        _ => false,
    }
}

/// Whether the key (or one inside it) reads a size or a date, which the view
/// does not keep.
fn reads_details(key: &SearchKey<'_>) -> bool {
    match key {
        SearchKey::And(keys) => keys.as_ref().iter().any(reads_details),
        SearchKey::Not(key) => reads_details(key),
        SearchKey::Or(a, b) => reads_details(a) || reads_details(b),
        SearchKey::Larger(_)
        | SearchKey::Smaller(_)
        | SearchKey::Before(_)
        | SearchKey::On(_)
        | SearchKey::Since(_)
        | SearchKey::ModSequence { .. } => true,
        _ => false,
    }
}

/// One message as the keys see it.
struct Context<'a> {
    number: u32,
    uid: u32,
    flags: Flags,
    /// Its size and date (when a key asks for them and it is still there).
    details: Option<&'a FolderMessage>,
    last_number: u32,
    last_uid: u32,
    parsed: Option<&'a Parsed>,
}

impl Context<'_> {
    fn eval(&self, key: &SearchKey<'_>) -> bool {
        let flags = &self.flags;
        match key {
            SearchKey::And(keys) => keys.as_ref().iter().all(|k| self.eval(k)),
            SearchKey::Not(key) => !self.eval(key),
            SearchKey::Or(a, b) => self.eval(a) || self.eval(b),
            SearchKey::SequenceSet(set) => view::set_contains(set, self.number, self.last_number),
            SearchKey::Uid(set) => view::set_contains(set, self.uid, self.last_uid),
            SearchKey::All => true,
            SearchKey::Answered => has(flags, "\\Answered"),
            SearchKey::Unanswered => !has(flags, "\\Answered"),
            SearchKey::Deleted => has(flags, "\\Deleted"),
            SearchKey::Undeleted => !has(flags, "\\Deleted"),
            SearchKey::Draft => has(flags, "\\Draft"),
            SearchKey::Undraft => !has(flags, "\\Draft"),
            SearchKey::Flagged => flags.flagged,
            SearchKey::Unflagged => !flags.flagged,
            SearchKey::Seen => flags.seen,
            SearchKey::Unseen => !flags.seen,
            SearchKey::Keyword(atom) => has(flags, atom.as_ref()),
            SearchKey::Unkeyword(atom) => !has(flags, atom.as_ref()),
            // No message is ever \Recent (see SELECT): NEW and RECENT find
            // nothing, OLD finds everything.
            SearchKey::Recent | SearchKey::New => false,
            SearchKey::Old => true,
            SearchKey::Larger(n) => self.details.is_some_and(|m| m.size > u64::from(*n)),
            SearchKey::Smaller(n) => self.details.is_some_and(|m| m.size < u64::from(*n)),
            SearchKey::Before(date) => self.date().is_some_and(|d| d < *date.as_ref()),
            SearchKey::On(date) => self.date().is_some_and(|d| d == *date.as_ref()),
            SearchKey::Since(date) => self.date().is_some_and(|d| d >= *date.as_ref()),
            SearchKey::ModSequence { modseq, .. } => {
                self.details.is_some_and(|m| m.modseq >= *modseq)
            }
            content => self
                .parsed
                .and_then(|p| p.matches(content))
                .unwrap_or(false),
        }
    }

    fn date(&self) -> Option<NaiveDate> {
        let at = self.details?.received_at;
        Some(internal_date(at).as_ref().date_naive())
    }
}
