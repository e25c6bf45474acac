//! The session core's store requests ([`StoreCall`]) carried out against the
//! store's [`Folders`]. Every call blocks, so the shell runs them on tokio's
//! blocking pool ([`StoreCalls::run`]), a few at a time, and sessions that poll
//! the same folder from the same change share one read of it ([`SharedPolls`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::SystemTime;

use sokkel_message::{Folder, FolderChanges, Folders, MailboxError};
use tokio::sync::Semaphore;

use crate::session::{FolderState, RAW_REPLY_BYTES, StoreCall, StoreReply};

/// Store calls one server runs at once. A call is mostly CPU work in the
/// store (its pages are cached), so more at once only queue for the cores,
/// and each extra blocking thread that allocates a folder listing keeps an
/// allocator arena of its own: with 8, 100 sessions selecting a
/// 10,000-message INBOX held 43 MB above the catcher's baseline, with 2,
/// 28 MB (bench/fetch.py's rss section). Polls are shared ([`SharedPolls`]),
/// so IDLE push to many sessions needs no more.
const CONCURRENT_CALLS: usize = 2;

/// The store as every session of one server calls it.
pub(crate) struct StoreCalls {
    folders: Arc<dyn Folders>,
    polls: Arc<SharedPolls>,
    permits: Arc<Semaphore>,
}

impl StoreCalls {
    pub(crate) fn new(folders: Arc<dyn Folders>) -> StoreCalls {
        StoreCalls {
            folders,
            polls: Arc::default(),
            permits: Arc::new(Semaphore::new(CONCURRENT_CALLS)),
        }
    }

    /// Runs `call` on tokio's blocking pool, once one of the server's
    /// [`CONCURRENT_CALLS`] is free. A call that panicked is a store that could
    /// not answer, for this command only.
    pub(crate) async fn run(&self, call: StoreCall) -> Result<StoreReply, MailboxError> {
        let unavailable = || MailboxError::Unavailable("the store failed to answer".into());
        // The semaphore is never closed.
        let Ok(_permit) = self.permits.acquire().await else {
            return Err(unavailable());
        };
        let folders = self.folders.clone();
        let polls = self.polls.clone();
        tokio::task::spawn_blocking(move || execute(&*folders, &polls, call))
            .await
            .unwrap_or_else(|err| {
                tracing::error!(%err, "an imap store call panicked");
                Err(unavailable())
            })
    }

    /// The store, for calls made outside a session (tests).
    #[cfg(test)]
    pub(crate) fn folders(&self) -> &dyn Folders {
        &*self.folders
    }

    #[cfg(test)]
    pub(crate) fn polls(&self) -> &SharedPolls {
        &self.polls
    }
}

/// One read of a folder's changes shared by every session that polls it from
/// the same change counter while the store stands at the same one: a delivery
/// wakes 100 sessions idling on the INBOX, and they cost the store one read,
/// not 100.
#[derive(Debug, Default)]
pub(crate) struct SharedPolls {
    latest: Mutex<Generation>,
}

/// The reads made while the store's counter stood at `at`.
#[derive(Debug, Default)]
struct Generation {
    at: u64,
    reads: HashMap<(Folder, u64), Arc<ChangesRead>>,
}

type ChangesRead = OnceLock<Result<Option<FolderChanges>, MailboxError>>;

impl SharedPolls {
    /// [`Folders::changes`] of `folder` since `seen`, the store's counter
    /// standing at `now`: read by the first session to ask, the others waiting
    /// for that read rather than making their own.
    fn changes(
        &self,
        folders: &dyn Folders,
        folder: &Folder,
        seen: u64,
        now: u64,
    ) -> Result<Option<FolderChanges>, MailboxError> {
        let read = {
            let mut latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
            if now > latest.at {
                *latest = Generation {
                    at: now,
                    reads: HashMap::new(),
                };
            }
            if now < latest.at {
                // The store moved on while this poll was on its way: the
                // shared reads are newer than what it asked about.
                None
            } else {
                let read = latest.reads.entry((folder.clone(), seen)).or_default();
                Some(read.clone())
            }
        };
        match read {
            Some(read) => read.get_or_init(|| folders.changes(folder, seen)).clone(),
            None => folders.changes(folder, seen),
        }
    }
}

/// Carries out one store request as its [`StoreCall`] variant documents.
pub(crate) fn execute(
    folders: &dyn Folders,
    polls: &SharedPolls,
    call: StoreCall,
) -> Result<StoreReply, MailboxError> {
    Ok(match call {
        StoreCall::FolderNames => StoreReply::FolderNames(folders.folder_names()?),
        StoreCall::Open { folder } => StoreReply::Opened(open(folders, &folder)?),
        StoreCall::Poll {
            folder,
            seen_modseq,
        } => {
            // The cheap question first: an idle store answers every poll
            // without listing the folder.
            let now = folders.highest_modseq()?;
            if now == seen_modseq {
                StoreReply::Unchanged
            } else {
                StoreReply::Changes(polls.changes(folders, &folder, seen_modseq, now)?)
            }
        }
        StoreCall::Raw { folder, ids } => {
            let mut raws = Vec::with_capacity(ids.len());
            let mut bytes = 0;
            for id in ids {
                if bytes >= RAW_REPLY_BYTES {
                    break;
                }
                let raw = folders.raw(&folder, id)?;
                bytes += raw.as_ref().map_or(0, Vec::len);
                raws.push(raw);
            }
            StoreReply::Raw(raws)
        }
        StoreCall::SetFlags { folder, ids, edit } => {
            folders.set_flags(&folder, &ids, &edit)?;
            StoreReply::Done
        }
        StoreCall::Append {
            folder,
            raw,
            flags,
            received_at,
        } => {
            let received_at = received_at.unwrap_or_else(SystemTime::now);
            let uid = folders.append(&folder, raw, &flags, received_at)?;
            StoreReply::Appended {
                uid_validity: folders.uid_validity(&folder)?,
                uid,
            }
        }
        StoreCall::Copy { from, ids, to } => {
            let uids = folders.copy(&from, &ids, &to)?;
            StoreReply::Copied {
                uid_validity: folders.uid_validity(&to)?,
                uids,
            }
        }
        StoreCall::Expunge { folder, ids } => {
            folders.expunge(&folder, &ids)?;
            StoreReply::Done
        }
        StoreCall::Create(name) => StoreReply::Changed(folders.create_folder(&name)?),
        StoreCall::Delete(name) => StoreReply::Changed(folders.delete_folder(&name)?),
        StoreCall::Rename { from, to } => StoreReply::Changed(folders.rename_folder(&from, &to)?),
    })
}

/// The folder as SELECT and a poll see it, `None` if it does not exist.
fn open(folders: &dyn Folders, folder: &Folder) -> Result<Option<FolderState>, MailboxError> {
    // The counter is read before the messages: a change made in between is in
    // the list and makes the next poll list again, where the other order could
    // hide it until the change after.
    let highest_modseq = folders.highest_modseq()?;
    let Some((messages, uid_next)) = folders.messages(folder)? else {
        return Ok(None);
    };
    Ok(Some(FolderState {
        uid_validity: folders.uid_validity(folder)?,
        uid_next,
        highest_modseq,
        messages,
    }))
}

#[cfg(test)]
pub(super) mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use sokkel_message::{FlagEdit, Flags, FolderChanges, FolderMessage, MessageId};

    use super::*;

    /// A store of one INBOX message that logs the calls made to it.
    #[derive(Default)]
    pub(crate) struct Recorder {
        modseq: u64,
        calls: Mutex<Vec<String>>,
        broken: bool,
        panics: bool,
    }

    impl Recorder {
        fn log(&self, call: impl Into<String>) -> Result<(), MailboxError> {
            assert!(!self.panics, "a bug in the store");
            self.calls.lock().unwrap().push(call.into());
            if self.broken {
                return Err(MailboxError::Unavailable("disk on fire".into()));
            }
            Ok(())
        }

        fn calls(&self) -> Vec<String> {
            std::mem::take(&mut self.calls.lock().unwrap())
        }
    }

    fn message() -> FolderMessage {
        FolderMessage {
            uid: 7,
            id: MessageId(7),
            size: 12,
            received_at: SystemTime::UNIX_EPOCH,
            flags: Flags::default(),
            modseq: 3,
        }
    }

    fn inbox() -> Folder {
        Folder::Inbox { recipient: None }
    }

    impl Folders for Recorder {
        fn uid_validity(&self, folder: &Folder) -> Result<u32, MailboxError> {
            self.log("uid_validity")?;
            Ok(if *folder == Folder::Sent { 2 } else { 1 })
        }
        fn highest_modseq(&self) -> Result<u64, MailboxError> {
            self.log("highest_modseq")?;
            Ok(self.modseq)
        }
        fn folder_names(&self) -> Result<Vec<String>, MailboxError> {
            self.log("folder_names")?;
            Ok(vec!["Work".into()])
        }
        fn messages(
            &self,
            folder: &Folder,
        ) -> Result<Option<(Vec<FolderMessage>, u32)>, MailboxError> {
            self.log("messages")?;
            Ok(matches!(folder, Folder::Inbox { .. }).then(|| (vec![message()], 8)))
        }
        fn raw(&self, _: &Folder, id: MessageId) -> Result<Option<Vec<u8>>, MailboxError> {
            self.log(format!("raw {id}"))?;
            Ok((id == MessageId(7)).then(|| b"Subject: x\r\n".to_vec()))
        }
        fn set_flags(&self, _: &Folder, _: &[MessageId], _: &FlagEdit) -> Result<(), MailboxError> {
            self.log("set_flags")
        }
        fn append(
            &self,
            _: &Folder,
            _: Vec<u8>,
            _: &Flags,
            received_at: SystemTime,
        ) -> Result<u32, MailboxError> {
            let age = SystemTime::now()
                .duration_since(received_at)
                .unwrap_or_default();
            self.log(format!("append {}", age < Duration::from_secs(60)))?;
            Ok(9)
        }
        fn copy(
            &self,
            _: &Folder,
            ids: &[MessageId],
            _: &Folder,
        ) -> Result<Vec<u32>, MailboxError> {
            self.log("copy")?;
            Ok((0..ids.len() as u32).map(|n| 20 + n).collect())
        }
        fn expunge(&self, _: &Folder, _: &[MessageId]) -> Result<(), MailboxError> {
            self.log("expunge")
        }
        fn create_folder(&self, name: &str) -> Result<bool, MailboxError> {
            self.log("create_folder")?;
            Ok(name == "New")
        }
        fn delete_folder(&self, name: &str) -> Result<bool, MailboxError> {
            self.log("delete_folder")?;
            Ok(name == "Old")
        }
        fn rename_folder(&self, from: &str, _: &str) -> Result<bool, MailboxError> {
            self.log("rename_folder")?;
            Ok(from == "Old")
        }
    }

    #[test]
    fn a_poll_of_an_unchanged_store_does_not_list_the_folder() {
        let store = Recorder {
            modseq: 5,
            ..Recorder::default()
        };
        let poll = |seen_modseq| StoreCall::Poll {
            folder: inbox(),
            seen_modseq,
        };
        assert_eq!(
            execute(&store, &SharedPolls::default(), poll(5)),
            Ok(StoreReply::Unchanged)
        );
        assert_eq!(store.calls(), ["highest_modseq"]);
        let expected = FolderChanges {
            count: 1,
            uid_next: 8,
            highest_modseq: 5,
            changed: vec![message()]
                .into_iter()
                .filter(|m| m.modseq > 4)
                .collect(),
        };
        assert_eq!(
            execute(&store, &SharedPolls::default(), poll(4)),
            Ok(StoreReply::Changes(Some(expected)))
        );
        assert_eq!(
            store.calls(),
            ["highest_modseq", "highest_modseq", "messages"],
            "the counter is read before the list it vouches for"
        );
    }

    /// A delivery wakes every idling session at once: they must cost the
    /// store one read of the folder, not one each.
    #[test]
    fn sessions_polling_a_folder_from_the_same_change_share_one_read() {
        let store = Recorder {
            modseq: 5,
            ..Recorder::default()
        };
        let polls = SharedPolls::default();
        let poll = |seen_modseq| StoreCall::Poll {
            folder: inbox(),
            seen_modseq,
        };
        let listings = |store: &Recorder| {
            let calls = store.calls();
            calls.iter().filter(|call| *call == "messages").count()
        };
        let first = execute(&store, &polls, poll(4)).unwrap();
        assert!(matches!(&first, StoreReply::Changes(Some(_))), "{first:?}");
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..10 {
                        assert_eq!(execute(&store, &polls, poll(4)).unwrap(), first);
                    }
                });
            }
        });
        assert_eq!(listings(&store), 1, "81 polls, one read");
        // From another change, or once the store has moved on, it is read anew.
        execute(&store, &polls, poll(3)).unwrap();
        assert_eq!(listings(&store), 1);
        polls.changes(&store, &inbox(), 4, 6).unwrap();
        assert_eq!(listings(&store), 1);
        // A poll that set out before the store moved on reads on its own.
        polls.changes(&store, &inbox(), 4, 5).unwrap();
        polls.changes(&store, &inbox(), 4, 5).unwrap();
        assert_eq!(listings(&store), 2);
    }

    /// A batch of big messages is answered up to the byte budget, at least
    /// one message, so one FETCH never holds 64 large messages at once.
    #[test]
    fn a_raw_batch_stops_at_the_byte_budget() {
        struct Big;
        impl Folders for Big {
            fn raw(&self, _: &Folder, _: MessageId) -> Result<Option<Vec<u8>>, MailboxError> {
                Ok(Some(vec![b'x'; RAW_REPLY_BYTES / 3 + 1]))
            }
            fn uid_validity(&self, _: &Folder) -> Result<u32, MailboxError> {
                unreachable!()
            }
            fn highest_modseq(&self) -> Result<u64, MailboxError> {
                unreachable!()
            }
            fn folder_names(&self) -> Result<Vec<String>, MailboxError> {
                unreachable!()
            }
            fn messages(
                &self,
                _: &Folder,
            ) -> Result<Option<(Vec<FolderMessage>, u32)>, MailboxError> {
                unreachable!()
            }
            fn set_flags(
                &self,
                _: &Folder,
                _: &[MessageId],
                _: &FlagEdit,
            ) -> Result<(), MailboxError> {
                unreachable!()
            }
            fn append(
                &self,
                _: &Folder,
                _: Vec<u8>,
                _: &Flags,
                _: SystemTime,
            ) -> Result<u32, MailboxError> {
                unreachable!()
            }
            fn copy(
                &self,
                _: &Folder,
                _: &[MessageId],
                _: &Folder,
            ) -> Result<Vec<u32>, MailboxError> {
                unreachable!()
            }
            fn expunge(&self, _: &Folder, _: &[MessageId]) -> Result<(), MailboxError> {
                unreachable!()
            }
            fn create_folder(&self, _: &str) -> Result<bool, MailboxError> {
                unreachable!()
            }
            fn delete_folder(&self, _: &str) -> Result<bool, MailboxError> {
                unreachable!()
            }
            fn rename_folder(&self, _: &str, _: &str) -> Result<bool, MailboxError> {
                unreachable!()
            }
        }
        let call = StoreCall::Raw {
            folder: inbox(),
            ids: (1..=64).map(MessageId).collect(),
        };
        let Ok(StoreReply::Raw(raws)) = execute(&Big, &SharedPolls::default(), call) else {
            panic!("not a raw reply");
        };
        assert_eq!(raws.len(), 3, "three messages reach the budget");
    }

    #[test]
    fn opening_a_folder_that_does_not_exist_is_none_not_an_error() {
        let store = Recorder::default();
        let open = StoreCall::Open {
            folder: Folder::Tag("Nope".into()),
        };
        assert_eq!(
            execute(&store, &SharedPolls::default(), open),
            Ok(StoreReply::Opened(None))
        );
    }

    #[test]
    fn append_without_a_date_is_received_now_and_answers_with_its_folders_uidvalidity() {
        let store = Recorder::default();
        let append = StoreCall::Append {
            folder: Folder::Sent,
            raw: b"Subject: sent\r\n\r\n".to_vec(),
            flags: Flags::default(),
            received_at: None,
        };
        assert_eq!(
            execute(&store, &SharedPolls::default(), append),
            Ok(StoreReply::Appended {
                uid_validity: 2,
                uid: 9
            })
        );
        assert_eq!(store.calls(), ["append true", "uid_validity"]);
    }

    #[test]
    fn every_other_call_maps_to_its_reply() {
        let store = Recorder::default();
        let ids = vec![MessageId(7), MessageId(8)];
        let cases = [
            (
                StoreCall::FolderNames,
                StoreReply::FolderNames(vec!["Work".into()]),
            ),
            (
                StoreCall::Raw {
                    folder: inbox(),
                    ids: ids.clone(),
                },
                StoreReply::Raw(vec![Some(b"Subject: x\r\n".to_vec()), None]),
            ),
            (
                StoreCall::SetFlags {
                    folder: inbox(),
                    ids: ids.clone(),
                    edit: FlagEdit::Add(Flags::default()),
                },
                StoreReply::Done,
            ),
            (
                StoreCall::Copy {
                    from: inbox(),
                    ids: ids.clone(),
                    to: Folder::Sent,
                },
                StoreReply::Copied {
                    uid_validity: 2,
                    uids: vec![20, 21],
                },
            ),
            (
                StoreCall::Expunge {
                    folder: inbox(),
                    ids,
                },
                StoreReply::Done,
            ),
            (StoreCall::Create("New".into()), StoreReply::Changed(true)),
            (StoreCall::Delete("New".into()), StoreReply::Changed(false)),
            (
                StoreCall::Rename {
                    from: "Old".into(),
                    to: "New".into(),
                },
                StoreReply::Changed(true),
            ),
        ];
        for (call, reply) in cases {
            assert_eq!(
                execute(&store, &SharedPolls::default(), call.clone()),
                Ok(reply),
                "{call:?}"
            );
        }
    }

    #[test]
    fn a_store_error_is_handed_back_for_the_session_to_answer() {
        let store = Recorder {
            broken: true,
            ..Recorder::default()
        };
        assert_eq!(
            execute(&store, &SharedPolls::default(), StoreCall::FolderNames),
            Err(MailboxError::Unavailable("disk on fire".into()))
        );
    }

    #[tokio::test]
    async fn a_call_runs_on_the_blocking_pool_and_a_panic_is_an_error() {
        let store = StoreCalls::new(Arc::new(Recorder::default()));
        assert_eq!(
            store.run(StoreCall::Create("New".into())).await,
            Ok(StoreReply::Changed(true))
        );
        let store = StoreCalls::new(Arc::new(Recorder {
            panics: true,
            ..Recorder::default()
        }));
        assert!(matches!(
            store.run(StoreCall::FolderNames).await,
            Err(MailboxError::Unavailable(_))
        ));
    }
}
