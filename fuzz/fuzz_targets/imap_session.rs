//! Feeds arbitrary bytes, cut at arbitrary points, into the IMAP session core, and
//! answers every request as a small store would: three messages in the INBOX, a
//! `Work` tag folder, flags and expunges that change what later polls see.
//!
//! Checks, beyond "does not panic": the session never claims to consume more than
//! it was given; the output it holds back between two points where the shell
//! writes stays bounded (a client that never reads cannot grow it); cutting the
//! same input differently never changes the responses, the logins or the store
//! calls; and store changes announced at any moment (IDLE wake-ups) break nothing.
#![no_main]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use sokkel_imap::session::{
    Answer, FolderState, Peer, Request, Session, SessionConfig, Step, StoreCall, StoreReply,
};
use sokkel_message::{FlagEdit, Flags, Folder, FolderMessage, MailboxError, MessageId};
use sokkel_net::server::PENDING_OUTPUT_LIMIT;

const MESSAGES: [&[u8]; 3] = [
    b"From: Rick <rick@example.com>\r\nTo: morty@example.com\r\nSubject: =?utf-8?q?h=C3=A9?=\r\n\r\nhello\r\n",
    b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\none\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ntwo\r\n--b--\r\n",
    b"Subject: bare\n\nno CRLF",
];

/// How much output one stretch between writes may hold beyond the backpressure
/// limit: the rest of the one response in progress when it was reached.
const ONE_RESPONSE: usize = 256 << 10;

/// A folder as a store would keep it, changed by what the session asks.
struct FakeStore {
    messages: Vec<FolderMessage>,
    uid_next: u32,
    modseq: u64,
}

impl FakeStore {
    fn new() -> FakeStore {
        let messages = (0..MESSAGES.len())
            .map(|i| FolderMessage {
                uid: i as u32 + 1,
                id: MessageId(i as i64 + 1),
                size: MESSAGES[i].len() as u64,
                received_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
                flags: Flags {
                    seen: i == 0,
                    flagged: false,
                    other: if i == 1 { vec!["$Forwarded".into()] } else { Vec::new() },
                },
                modseq: 1,
            })
            .collect();
        FakeStore {
            messages,
            uid_next: MESSAGES.len() as u32 + 1,
            modseq: 1,
        }
    }

    fn state(&self, folder: &Folder) -> Option<FolderState> {
        let messages = match folder {
            Folder::Inbox { .. } => self.messages.clone(),
            Folder::Tag(name) if name.eq_ignore_ascii_case("work") => {
                self.messages.iter().take(1).cloned().collect()
            }
            Folder::Sent => Vec::new(),
            Folder::Tag(_) => return None,
        };
        Some(FolderState {
            uid_validity: 7,
            uid_next: self.uid_next,
            highest_modseq: self.modseq,
            messages,
        })
    }

    fn changed(&mut self) {
        self.modseq += 1;
    }

    fn reply(&mut self, call: StoreCall) -> Result<StoreReply, MailboxError> {
        Ok(match call {
            StoreCall::FolderNames => StoreReply::FolderNames(vec!["Work".into()]),
            StoreCall::Open { folder } => StoreReply::Opened(self.state(&folder)),
            StoreCall::Poll { folder, seen_modseq } if seen_modseq == self.modseq => {
                let _ = folder;
                StoreReply::Unchanged
            }
            StoreCall::Poll { folder, .. } => StoreReply::Opened(self.state(&folder)),
            StoreCall::Raw { ids, .. } => StoreReply::Raw(
                ids.iter()
                    .map(|id| {
                        let known = self.messages.iter().any(|m| m.id == *id);
                        let index = usize::try_from(id.0 - 1).ok();
                        index
                            .and_then(|i| MESSAGES.get(i))
                            .filter(|_| known)
                            .map(|raw| raw.to_vec())
                    })
                    .collect(),
            ),
            StoreCall::SetFlags { ids, edit, .. } => {
                for message in self.messages.iter_mut().filter(|m| ids.contains(&m.id)) {
                    let flags = &mut message.flags;
                    match &edit {
                        FlagEdit::Set(new) => *flags = new.clone(),
                        FlagEdit::Add(add) => {
                            flags.seen |= add.seen;
                            flags.flagged |= add.flagged;
                            flags.other.extend(add.other.iter().cloned());
                        }
                        FlagEdit::Remove(remove) => {
                            flags.seen &= !remove.seen;
                            flags.flagged &= !remove.flagged;
                            flags.other.retain(|f| !remove.other.contains(f));
                        }
                    }
                }
                self.changed();
                StoreReply::Done
            }
            StoreCall::Append { raw, .. } if raw.starts_with(b"FAIL") => {
                return Err(MailboxError::Refused("no room".into()));
            }
            StoreCall::Append { .. } => {
                self.uid_next += 1;
                self.changed();
                StoreReply::Appended { uid_validity: 7, uid: self.uid_next - 1 }
            }
            StoreCall::Copy { ids, .. } => {
                let uids = ids.iter().map(|id| 100 + id.0 as u32).collect();
                self.changed();
                StoreReply::Copied { uid_validity: 7, uids }
            }
            StoreCall::Expunge { ids, .. } => {
                self.messages.retain(|m| !ids.contains(&m.id));
                self.changed();
                StoreReply::Done
            }
            StoreCall::Create(name) if name.eq_ignore_ascii_case("fail") => {
                return Err(MailboxError::Unavailable("disk full".into()));
            }
            StoreCall::Create(name) | StoreCall::Delete(name) => {
                StoreReply::Changed(!name.eq_ignore_ascii_case("work"))
            }
            StoreCall::Rename { from, .. } => StoreReply::Changed(from.eq_ignore_ascii_case("work")),
        })
    }
}

#[derive(Debug, PartialEq, Eq, Default)]
struct Played {
    out: Vec<u8>,
    users: Vec<String>,
    calls: Vec<String>,
}

/// Plays `chunks` into a session; with `wake`, the store announces a change
/// after every chunk, as IDLE's wake-ups do.
fn play(config: &Arc<SessionConfig>, peer: Peer, chunks: &[&[u8]], wake: bool) -> Played {
    let mut session = Session::new(config.clone(), peer);
    let mut store = FakeStore::new();
    let mut played = Played::default();
    let mut out = Vec::new();
    session.greeting(&mut out);
    let mut buffer: Vec<u8> = Vec::new();
    'chunks: for chunk in chunks {
        buffer.extend_from_slice(chunk);
        loop {
            let (consumed, step) = session.advance(&buffer, &mut out);
            assert!(consumed <= buffer.len());
            buffer.drain(..consumed);
            let request = match step {
                Step::NeedMore => break,
                Step::Flush => None,
                Step::Request(request) => Some(request),
                Step::Close => break 'chunks,
                // What follows depends on how the input was cut (bytes pipelined
                // behind STARTTLS are discarded by design): stop comparing here.
                Step::StartTls => break 'chunks,
            };
            written(&mut played, &mut out);
            if let Some(request) = request {
                answer(&mut session, request, &mut store, &mut played, &mut out);
            }
        }
        written(&mut played, &mut out);
        if wake {
            store.changed();
            if let Some(request) = session.store_changed() {
                answer(&mut session, request, &mut store, &mut played, &mut out);
            }
        }
    }
    written(&mut played, &mut out);
    played
}

/// The shell wrote `out`: it must not have grown past the backpressure bound.
fn written(played: &mut Played, out: &mut Vec<u8>) {
    assert!(
        out.len() <= PENDING_OUTPUT_LIMIT + ONE_RESPONSE,
        "{} bytes of output held back",
        out.len()
    );
    played.out.append(out);
}

fn answer(
    session: &mut Session,
    request: Request,
    store: &mut FakeStore,
    played: &mut Played,
    out: &mut Vec<u8>,
) {
    match request {
        Request::Login(login) => {
            played.users.push(login.user.clone());
            session.answer(Answer::Login(login.password == "secret"), out);
        }
        Request::Store(call) => {
            played.calls.push(format!("{call:?}"));
            let reply = store.reply(call);
            session.answer(Answer::Store(reply), out);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, input)) = data.split_first() else { return };
    let config = Arc::new(SessionConfig {
        hostname: "fuzz.test".into(),
        max_line_length: 512,
        max_literal: 4096,
        max_commands: 500,
        max_errors: 50,
        max_auth_failures: 3,
        tls_available: seed & 1 == 0,
        allow_insecure_auth: seed & 2 == 0,
        per_recipient: seed & 4 == 0,
    });
    let peer = Peer { tls: seed & 8 == 0, loopback: seed & 16 == 0 };
    let whole = play(&config, peer, &[input], false);
    let step = usize::from(seed >> 5) * 3 + 1;
    let chunks: Vec<&[u8]> = input.chunks(step).collect();
    let split = play(&config, peer, &chunks, false);
    assert_eq!(whole, split, "the session depends on how the input was cut");
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    play(&config, peer, &bytes, true);
});
