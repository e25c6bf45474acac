//! Table tests of the session core: bytes a client sends, the exact bytes it
//! gets back. The core's store calls are answered by a small in-memory folder
//! model written here (the core does no I/O; this is the store's contract, not
//! a mock of a program).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sokkel_message::{
    FlagEdit, Flags, Folder, FolderChanges, FolderMessage, MailboxError, MessageId,
};

use super::view::apply;
use super::*;

/// A message of the model.
#[derive(Debug, Clone)]
struct Stored {
    raw: Vec<u8>,
    flags: Flags,
    received_at: SystemTime,
    modseq: u64,
    /// Tag name → the message's UID in that tag's folder.
    tags: BTreeMap<String, u32>,
}

/// The store as the core sees it through [`StoreCall`]s.
#[derive(Debug)]
struct Model {
    modseq: u64,
    next_id: i64,
    inbox: BTreeMap<i64, Stored>,
    sent: BTreeMap<i64, Stored>,
    /// Tag folders that exist, with their next UID.
    tag_next: BTreeMap<String, u32>,
    calls: Vec<String>,
}

const VALIDITY: u32 = 7;

impl Model {
    fn new() -> Model {
        Model {
            modseq: 1,
            next_id: 1,
            inbox: BTreeMap::new(),
            sent: BTreeMap::new(),
            tag_next: BTreeMap::new(),
            calls: Vec::new(),
        }
    }

    /// Delivers a message; returns its id (its INBOX UID).
    fn deliver(&mut self, raw: &str) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        self.modseq += 1;
        self.inbox.insert(
            id,
            Stored {
                raw: raw.as_bytes().to_vec(),
                flags: Flags::default(),
                received_at: UNIX_EPOCH + Duration::from_secs(1_700_000_000 + id as u64 * 86_400),
                modseq: self.modseq,
                tags: BTreeMap::new(),
            },
        );
        id
    }

    fn delete(&mut self, id: i64) {
        self.modseq += 1;
        self.inbox.remove(&id);
    }

    fn set_flags(&mut self, id: i64, edit: &FlagEdit) {
        self.modseq += 1;
        let modseq = self.modseq;
        if let Some(m) = self.inbox.get_mut(&id).or_else(|| self.sent.get_mut(&id)) {
            m.flags = apply(&m.flags, edit);
            m.modseq = modseq;
        }
    }

    fn messages(&self, folder: &Folder) -> Option<(Vec<FolderMessage>, u32)> {
        let entry = |uid: u32, id: i64, m: &Stored| FolderMessage {
            uid,
            id: MessageId(id),
            size: m.raw.len() as u64,
            received_at: m.received_at,
            flags: m.flags.clone(),
            modseq: m.modseq,
        };
        match folder {
            Folder::Inbox { .. } => Some((
                self.inbox
                    .iter()
                    .map(|(&id, m)| entry(id as u32, id, m))
                    .collect(),
                self.next_id as u32,
            )),
            Folder::Sent => Some((
                self.sent
                    .iter()
                    .map(|(&id, m)| entry(id as u32, id, m))
                    .collect(),
                self.next_id as u32,
            )),
            Folder::Tag(name) => {
                let next = *self.tag_next.get(name)?;
                let mut list: Vec<FolderMessage> = self
                    .inbox
                    .iter()
                    .filter_map(|(&id, m)| Some(entry(*m.tags.get(name)?, id, m)))
                    .collect();
                list.sort_by_key(|m| m.uid);
                Some((list, next))
            }
        }
    }

    fn state(&self, folder: &Folder) -> Option<FolderState> {
        let (messages, uid_next) = self.messages(folder)?;
        Some(FolderState {
            uid_validity: VALIDITY,
            uid_next,
            highest_modseq: self.modseq,
            messages,
        })
    }

    fn stored(&mut self, folder: &Folder, id: MessageId) -> Option<&mut Stored> {
        match folder {
            Folder::Sent => self.sent.get_mut(&id.0),
            _ => self.inbox.get_mut(&id.0),
        }
    }

    fn call(&mut self, call: StoreCall) -> StoreReply {
        self.calls
            .push(format!("{call:?}").chars().take(60).collect());
        match call {
            StoreCall::FolderNames => {
                StoreReply::FolderNames(self.tag_next.keys().cloned().collect())
            }
            StoreCall::Open { folder } => StoreReply::Opened(self.state(&folder)),
            StoreCall::Poll {
                folder,
                seen_modseq,
            } => {
                if seen_modseq == self.modseq {
                    StoreReply::Unchanged
                } else {
                    // As the store answers: only what changed, with the count.
                    StoreReply::Changes(self.state(&folder).map(|state| {
                        FolderChanges {
                            count: state.messages.len(),
                            uid_next: state.uid_next,
                            highest_modseq: state.highest_modseq,
                            changed: state
                                .messages
                                .into_iter()
                                .filter(|m| m.modseq > seen_modseq)
                                .collect(),
                        }
                    }))
                }
            }
            StoreCall::Raw { folder, ids } => StoreReply::Raw(
                ids.iter()
                    .map(|&id| self.stored(&folder, id).map(|m| m.raw.clone()))
                    .collect(),
            ),
            StoreCall::SetFlags { ids, edit, .. } => {
                for id in ids {
                    self.set_flags(id.0, &edit);
                }
                StoreReply::Done
            }
            StoreCall::Append {
                folder,
                raw,
                flags,
                received_at,
            } => {
                let id = self.next_id;
                self.next_id += 1;
                self.modseq += 1;
                let stored = Stored {
                    raw,
                    flags,
                    received_at: received_at.unwrap_or(UNIX_EPOCH),
                    modseq: self.modseq,
                    tags: BTreeMap::new(),
                };
                match folder {
                    Folder::Sent => {
                        self.sent.insert(id, stored);
                    }
                    _ => {
                        self.inbox.insert(id, stored);
                    }
                }
                StoreReply::Appended {
                    uid_validity: VALIDITY,
                    uid: id as u32,
                }
            }
            StoreCall::Copy { from, ids, to } => {
                self.modseq += 1;
                let mut uids = Vec::new();
                for id in ids {
                    match &to {
                        Folder::Tag(name) => {
                            let next = self.tag_next.entry(name.clone()).or_insert(1);
                            let uid = *next;
                            let Some(m) = self.inbox.get_mut(&id.0) else {
                                continue;
                            };
                            let uid = *m.tags.entry(name.clone()).or_insert(uid);
                            if uid == *next {
                                *next += 1;
                            }
                            uids.push(uid);
                        }
                        Folder::Inbox { .. } => uids.push(id.0 as u32),
                        Folder::Sent => {
                            let copy = self.stored(&from, id).cloned();
                            if let Some(copy) = copy {
                                let new = self.next_id;
                                self.next_id += 1;
                                self.sent.insert(new, copy);
                                uids.push(new as u32);
                            }
                        }
                    }
                }
                StoreReply::Copied {
                    uid_validity: VALIDITY,
                    uids,
                }
            }
            StoreCall::Expunge { folder, ids } => {
                self.modseq += 1;
                for id in ids {
                    match &folder {
                        Folder::Inbox { .. } => {
                            self.inbox.remove(&id.0);
                        }
                        Folder::Sent => {
                            self.sent.remove(&id.0);
                        }
                        Folder::Tag(name) => {
                            if let Some(m) = self.inbox.get_mut(&id.0) {
                                m.tags.remove(name);
                                m.flags
                                    .other
                                    .retain(|f| !f.eq_ignore_ascii_case("\\Deleted"));
                            }
                        }
                    }
                }
                StoreReply::Done
            }
            StoreCall::Create(name) => {
                self.modseq += 1;
                let new = !self.tag_next.contains_key(&name);
                self.tag_next.entry(name).or_insert(1);
                StoreReply::Changed(new)
            }
            StoreCall::Delete(name) => {
                self.modseq += 1;
                for m in self.inbox.values_mut() {
                    m.tags.remove(&name);
                }
                StoreReply::Changed(self.tag_next.remove(&name).is_some())
            }
            StoreCall::Rename { from, to } => {
                self.modseq += 1;
                let Some(next) = self.tag_next.remove(&from) else {
                    return StoreReply::Changed(false);
                };
                self.tag_next.insert(to.clone(), next);
                for m in self.inbox.values_mut() {
                    if let Some(uid) = m.tags.remove(&from) {
                        m.tags.insert(to.clone(), uid);
                    }
                }
                StoreReply::Changed(true)
            }
        }
    }
}

fn config() -> SessionConfig {
    SessionConfig {
        hostname: "catcher.test".into(),
        max_line_length: 1000,
        max_literal: 10_000,
        max_commands: 1000,
        max_errors: 5,
        max_auth_failures: 2,
        tls_available: true,
        allow_insecure_auth: false,
        per_recipient: false,
    }
}

const LOOPBACK: Peer = Peer {
    tls: false,
    loopback: true,
};

/// A client talking to one session.
struct Client {
    session: Session,
    model: Model,
    /// Input the session has not consumed yet.
    pending: Vec<u8>,
    closed: bool,
    tls_started: bool,
}

impl Client {
    fn new(config: SessionConfig, peer: Peer) -> Client {
        Client {
            session: Session::new(Arc::new(config), peer),
            model: Model::new(),
            pending: Vec::new(),
            closed: false,
            tls_started: false,
        }
    }

    fn loopback() -> Client {
        Client::new(config(), LOOPBACK)
    }

    fn greeting(&mut self) -> String {
        let mut out = Vec::new();
        self.session.greeting(&mut out);
        String::from_utf8(out).unwrap()
    }

    /// Sends `input` and returns everything the server wrote until it wants
    /// more input.
    fn send(&mut self, input: &[u8]) -> String {
        self.pending.extend_from_slice(input);
        let mut out = Vec::new();
        for _ in 0..100_000 {
            let (n, step) = self.session.advance(&self.pending, &mut out);
            assert!(n <= self.pending.len());
            self.pending.drain(..n);
            match step {
                Step::NeedMore => break,
                Step::Flush => {}
                Step::StartTls => {
                    self.pending.clear();
                    self.session.tls_started();
                    self.tls_started = true;
                }
                Step::Close => {
                    self.closed = true;
                    break;
                }
                Step::Request(Request::Login(login)) => {
                    let ok = login.user == "morty" && login.password == "s3cret pass";
                    self.session.answer(Answer::Login(ok), &mut out);
                }
                Step::Request(Request::Store(call)) => {
                    let reply = self.model.call(call);
                    self.session.answer(Answer::Store(Ok(reply)), &mut out);
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes())
    }

    /// A client logged in with INBOX selected holding `messages`.
    fn selected(messages: &[&str]) -> Client {
        let mut client = Client::loopback();
        for raw in messages {
            client.model.deliver(raw);
        }
        client.cmd("a LOGIN morty \"s3cret pass\"");
        client.cmd("b SELECT INBOX");
        client
    }
}

fn msg(subject: &str) -> String {
    format!(
        "From: rick@example.com\r\nTo: morty@example.com\r\nSubject: {subject}\r\n\r\nBody of {subject}\r\n"
    )
}

/// Runs a table of `(command, exact response)` on `client`.
fn table(client: &mut Client, rows: &[(&str, &str)]) {
    for (command, expected) in rows {
        let got = client.cmd(command);
        assert_eq!(got, expected.replace('\n', "\r\n"), "after {command:?}");
    }
}

const CAPS_PLAIN: &str = "IMAP4REV1 STARTTLS AUTH=PLAIN SASL-IR LITERAL+ ID ENABLE IDLE NAMESPACE UIDPLUS MOVE UNSELECT CHILDREN UTF8=ACCEPT";
const CAPS_IN: &str = "IMAP4REV1 SASL-IR LITERAL+ ID ENABLE IDLE NAMESPACE UIDPLUS MOVE UNSELECT CHILDREN UTF8=ACCEPT";

#[test]
fn greeting_and_capability_show_what_a_client_may_use() {
    let mut client = Client::loopback();
    assert_eq!(
        client.greeting(),
        format!("* OK [CAPABILITY {CAPS_PLAIN}] catcher.test IMAP4rev1 ready\r\n")
    );
    table(
        &mut client,
        &[
            (
                "c1 CAPABILITY",
                &format!("* CAPABILITY {CAPS_PLAIN}\nc1 OK CAPABILITY completed\n"),
            ),
            ("c2 NOOP", "c2 OK NOOP completed\n"),
            (
                "c3 LOGIN morty \"s3cret pass\"",
                &format!("c3 OK [CAPABILITY {CAPS_IN}] Logged in\n"),
            ),
            (
                "c4 CAPABILITY",
                &format!("* CAPABILITY {CAPS_IN}\nc4 OK CAPABILITY completed\n"),
            ),
            ("c5 LOGOUT", "* BYE Logging out\nc5 OK LOGOUT completed\n"),
        ],
    );
    assert!(client.closed);
}

#[test]
fn plain_text_login_is_refused_off_loopback_without_tls() {
    let remote = Peer {
        tls: false,
        loopback: false,
    };
    let mut client = Client::new(config(), remote);
    let greeting = client.greeting();
    assert!(greeting.contains("STARTTLS LOGINDISABLED "), "{greeting}");
    assert!(!greeting.contains("AUTH=PLAIN"), "{greeting}");
    table(
        &mut client,
        &[
            (
                "a LOGIN morty \"s3cret pass\"",
                "a NO [PRIVACYREQUIRED] Plain-text login refused on this connection; use STARTTLS first\n",
            ),
            (
                "b AUTHENTICATE PLAIN AG1vcnR5AHMzY3JldCBwYXNz",
                "b NO [PRIVACYREQUIRED] Plain-text login refused on this connection; use STARTTLS first\n",
            ),
        ],
    );
    // After STARTTLS the same login works, and what was pipelined behind
    // STARTTLS in clear text is dropped.
    let got = client.send(b"c STARTTLS\r\nd LOGOUT\r\n");
    assert_eq!(got, "c OK Begin TLS negotiation now\r\n");
    assert!(client.tls_started && !client.closed);
    let got = client.cmd("e CAPABILITY");
    assert!(
        got.contains("AUTH=PLAIN") && !got.contains("STARTTLS"),
        "{got}"
    );
    let got = client.cmd("f LOGIN morty \"s3cret pass\"");
    assert!(got.starts_with("f OK [CAPABILITY"), "{got}");

    let mut allowed = config();
    allowed.allow_insecure_auth = true;
    let mut client = Client::new(allowed, remote);
    assert!(
        client
            .cmd("a LOGIN morty \"s3cret pass\"")
            .starts_with("a OK")
    );
}

#[test]
fn authenticate_plain_with_initial_response_and_with_continuation() {
    let mut client = Client::loopback();
    // "\0morty\0s3cret pass"
    let got = client.cmd("a AUTHENTICATE PLAIN AG1vcnR5AHMzY3JldCBwYXNz");
    assert!(
        got.starts_with("a OK [CAPABILITY IMAP4REV1 SASL-IR"),
        "{got}"
    );
    assert_eq!(client.session.user(), Some("morty"));

    let mut client = Client::loopback();
    assert_eq!(client.cmd("a AUTHENTICATE PLAIN"), "+ \r\n");
    let got = client.cmd("AG1vcnR5AHMzY3JldCBwYXNz");
    assert!(got.starts_with("a OK [CAPABILITY"), "{got}");

    let mut client = Client::loopback();
    assert_eq!(client.cmd("a AUTHENTICATE PLAIN"), "+ \r\n");
    assert_eq!(client.cmd("*"), "a BAD AUTHENTICATE cancelled\r\n");
    assert_eq!(
        client.cmd("b AUTHENTICATE CRAM-MD5"),
        "b NO Only AUTHENTICATE PLAIN is supported\r\n"
    );
    assert_eq!(client.session.user(), None);
}

#[test]
fn wrong_logins_are_refused_and_too_many_close_the_session() {
    let mut client = Client::loopback();
    table(
        &mut client,
        &[
            (
                "a LOGIN morty wrong",
                "a NO [AUTHENTICATIONFAILED] Wrong user name or password\n",
            ),
            ("b LOGIN morty {5}", "+ Ready for literal data\n"),
            (
                "wrong",
                "b NO [AUTHENTICATIONFAILED] Wrong user name or password\n* BYE Too many failed logins\n",
            ),
        ],
    );
    assert!(client.closed);
}

#[test]
fn login_password_never_shows_in_debug() {
    let login = Login {
        user: "morty".into(),
        password: "s3cret pass".into(),
    };
    let shown = format!("{login:?}");
    assert!(
        shown.contains("morty") && !shown.contains("s3cret"),
        "{shown}"
    );
}

#[test]
fn commands_refused_in_the_wrong_state() {
    let mut lenient = config();
    lenient.max_errors = 100;
    let mut client = Client::new(lenient, LOOPBACK);
    table(
        &mut client,
        &[
            ("a SELECT INBOX", "a BAD Log in first\n"),
            ("b LIST \"\" *", "b BAD Log in first\n"),
            ("c FETCH 1 FLAGS", "c BAD Log in first\n"),
            (
                "d LOGIN morty \"s3cret pass\"",
                &format!("d OK [CAPABILITY {CAPS_IN}] Logged in\n"),
            ),
            ("e LOGIN morty \"s3cret pass\"", "e BAD Already logged in\n"),
            ("f STARTTLS", "f BAD Already logged in\n"),
            ("g FETCH 1 FLAGS", "g BAD No mailbox selected\n"),
            ("h STORE 1 +FLAGS (\\Seen)", "h BAD No mailbox selected\n"),
            ("i EXPUNGE", "i BAD No mailbox selected\n"),
            ("j CLOSE", "j BAD No mailbox selected\n"),
            ("k SEARCH ALL", "k BAD No mailbox selected\n"),
            ("l COPY 1 Trash", "l BAD No mailbox selected\n"),
        ],
    );
}

#[test]
fn bad_commands_get_bad_and_too_many_close() {
    let mut client = Client::loopback();
    table(
        &mut client,
        &[
            ("a FROB", "a BAD Syntax error in command\n"),
            ("", "* BAD Syntax error in command\n"),
            ("b LOGIN", "b BAD Syntax error in command\n"),
            ("c NOOP", "c OK NOOP completed\n"),
            ("d SORT (DATE) UTF-8 ALL", "d BAD Log in first\n"),
            (
                "e FROB",
                "e BAD Syntax error in command\n* BYE Too many errors\n",
            ),
        ],
    );
    assert!(client.closed);
}

#[test]
fn select_and_examine_report_the_folder() {
    let mut client = Client::loopback();
    let a = client.model.deliver(&msg("one"));
    client.model.deliver(&msg("two"));
    client.model.set_flags(
        a,
        &FlagEdit::Add(Flags {
            seen: true,
            other: vec!["$Label1".into()],
            ..Flags::default()
        }),
    );
    client.cmd("a LOGIN morty \"s3cret pass\"");
    table(
        &mut client,
        &[
            (
                "b SELECT inbox",
                "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1)\n\
                 * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1 \\*)] Flags permitted\n\
                 * 2 EXISTS\n\
                 * 0 RECENT\n\
                 * OK [UNSEEN 2] First unseen\n\
                 * OK [UIDVALIDITY 7] UIDs valid\n\
                 * OK [UIDNEXT 3] Predicted next UID\n\
                 b OK [READ-WRITE] SELECT completed\n",
            ),
            (
                "c EXAMINE Trash",
                "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\n\
                 * OK [PERMANENTFLAGS ()] Flags permitted\n\
                 * 0 EXISTS\n\
                 * 0 RECENT\n\
                 * OK [UIDVALIDITY 1] UIDs valid\n\
                 * OK [UIDNEXT 1] Predicted next UID\n\
                 c OK [READ-ONLY] EXAMINE completed\n",
            ),
            ("d SELECT nope", "d NO [NONEXISTENT] No such mailbox\n"),
            // A failed SELECT leaves the selected state.
            ("e FETCH 1 FLAGS", "e BAD No mailbox selected\n"),
        ],
    );
}

#[test]
fn fetch_state_items_and_macros() {
    let mut client = Client::selected(&[&msg("one"), &msg("two"), &msg("six")]);
    let size = msg("one").len();
    table(
        &mut client,
        &[
            (
                "c FETCH 1 (FLAGS UID)",
                "* 1 FETCH (FLAGS () UID 1)\nc OK FETCH completed\n",
            ),
            (
                "d FETCH 2:* FAST",
                &format!(
                    "* 2 FETCH (FLAGS () INTERNALDATE \"16-Nov-2023 22:13:20 +0000\" RFC822.SIZE {size})\n\
                     * 3 FETCH (FLAGS () INTERNALDATE \"17-Nov-2023 22:13:20 +0000\" RFC822.SIZE {size})\n\
                     d OK FETCH completed\n"
                ),
            ),
            (
                "e UID FETCH 3:2 (RFC822.SIZE)",
                &format!(
                    "* 2 FETCH (UID 2 RFC822.SIZE {size})\n* 3 FETCH (UID 3 RFC822.SIZE {size})\ne OK UID FETCH completed\n"
                ),
            ),
            // Reversed ranges, `*`, a UID range past the end (it still names the last).
            (
                "f FETCH 3:2,1 UID",
                "* 1 FETCH (UID 1)\n* 2 FETCH (UID 2)\n* 3 FETCH (UID 3)\nf OK FETCH completed\n",
            ),
            (
                "g UID FETCH 10:* UID",
                "* 3 FETCH (UID 3)\ng OK UID FETCH completed\n",
            ),
            ("h FETCH 7 UID", "h OK FETCH completed\n"),
            ("i FETCH 1 BINARY[1]", "i BAD BINARY is not supported\n"),
        ],
    );
}

#[test]
fn fetch_on_an_empty_folder_with_star_finds_nothing() {
    let mut client = Client::selected(&[]);
    table(
        &mut client,
        &[
            ("c FETCH 1:* FLAGS", "c OK FETCH completed\n"),
            ("d UID FETCH 1:* FLAGS", "d OK UID FETCH completed\n"),
            ("e SEARCH ALL", "* SEARCH\ne OK SEARCH completed\n"),
        ],
    );
}

#[test]
fn store_sets_flags_and_reports_them() {
    let mut client = Client::selected(&[&msg("one"), &msg("two")]);
    table(
        &mut client,
        &[
            (
                "c STORE 1:2 +FLAGS (\\Seen \\Deleted)",
                "* 1 FETCH (FLAGS (\\Seen \\Deleted) UID 1)\n* 2 FETCH (FLAGS (\\Seen \\Deleted) UID 2)\nc OK STORE completed\n",
            ),
            (
                "d UID STORE 2 -FLAGS.SILENT (\\Deleted)",
                "d OK STORE completed\n",
            ),
            (
                "e STORE 2 FLAGS (\\Flagged $Forwarded)",
                "* 2 FETCH (FLAGS (\\Flagged $Forwarded) UID 2)\ne OK STORE completed\n",
            ),
            (
                "f FETCH 1:* FLAGS",
                "* 1 FETCH (FLAGS (\\Seen \\Deleted))\n* 2 FETCH (FLAGS (\\Flagged $Forwarded))\nf OK FETCH completed\n",
            ),
            ("g SEARCH DELETED", "* SEARCH 1\ng OK SEARCH completed\n"),
        ],
    );
    // \Deleted alone deletes nothing.
    assert_eq!(client.model.inbox.len(), 2);
    // The flags reached the store.
    assert!(client.model.inbox[&2].flags.flagged);
}

#[test]
fn examine_is_read_only() {
    let mut client = Client::loopback();
    client.model.deliver(&msg("one"));
    client.cmd("a LOGIN morty \"s3cret pass\"");
    client.cmd("b EXAMINE INBOX");
    table(
        &mut client,
        &[
            (
                "c STORE 1 +FLAGS (\\Seen)",
                "c NO [READ-ONLY] Mailbox is read-only\n",
            ),
            ("d EXPUNGE", "d NO [READ-ONLY] Mailbox is read-only\n"),
        ],
    );
    assert!(!client.model.inbox[&1].flags.seen);
}

#[test]
fn search_on_state_keys() {
    let mut client = Client::selected(&[&msg("one"), &msg("two"), &msg("three"), &msg("four")]);
    client.cmd("c STORE 1 +FLAGS (\\Seen)");
    client.cmd("c STORE 2 +FLAGS (\\Flagged \\Answered)");
    client.cmd("c STORE 3 +FLAGS (\\Draft $Work)");
    let big = msg("one").len();
    table(
        &mut client,
        &[
            ("d SEARCH ALL", "* SEARCH 1 2 3 4\nd OK SEARCH completed\n"),
            ("d SEARCH SEEN", "* SEARCH 1\nd OK SEARCH completed\n"),
            ("d SEARCH UNSEEN", "* SEARCH 2 3 4\nd OK SEARCH completed\n"),
            (
                "d SEARCH FLAGGED ANSWERED",
                "* SEARCH 2\nd OK SEARCH completed\n",
            ),
            (
                "d SEARCH UNFLAGGED UNANSWERED UNDRAFT",
                "* SEARCH 1 4\nd OK SEARCH completed\n",
            ),
            ("d SEARCH DRAFT", "* SEARCH 3\nd OK SEARCH completed\n"),
            (
                "d SEARCH KEYWORD $work",
                "* SEARCH 3\nd OK SEARCH completed\n",
            ),
            (
                "d SEARCH UNKEYWORD $Work",
                "* SEARCH 1 2 4\nd OK SEARCH completed\n",
            ),
            (
                "d SEARCH OR SEEN FLAGGED",
                "* SEARCH 1 2\nd OK SEARCH completed\n",
            ),
            (
                "d SEARCH NOT (OR SEEN OR FLAGGED DRAFT)",
                "* SEARCH 4\nd OK SEARCH completed\n",
            ),
            (
                "d SEARCH 2:* UNDELETED",
                "* SEARCH 2 3 4\nd OK SEARCH completed\n",
            ),
            ("d SEARCH UID 3:4", "* SEARCH 3 4\nd OK SEARCH completed\n"),
            (
                "d UID SEARCH UID 2,4",
                "* SEARCH 2 4\nd OK UID SEARCH completed\n",
            ),
            (
                &format!("d SEARCH LARGER {}", big - 1),
                "* SEARCH 1 2 3 4\nd OK SEARCH completed\n",
            ),
            (
                &format!("d SEARCH SMALLER {big}"),
                "* SEARCH\nd OK SEARCH completed\n",
            ),
            ("d SEARCH NEW", "* SEARCH\nd OK SEARCH completed\n"),
            ("d SEARCH OLD RECENT", "* SEARCH\nd OK SEARCH completed\n"),
            ("d SEARCH OLD", "* SEARCH 1 2 3 4\nd OK SEARCH completed\n"),
            // Delivered 15, 16, 17 and 18 Nov 2023 (UTC).
            (
                "d SEARCH SINCE 16-Nov-2023",
                "* SEARCH 2 3 4\nd OK SEARCH completed\n",
            ),
            (
                "d SEARCH BEFORE 16-Nov-2023",
                "* SEARCH 1\nd OK SEARCH completed\n",
            ),
            (
                "d SEARCH ON 17-Nov-2023",
                "* SEARCH 3\nd OK SEARCH completed\n",
            ),
            (
                "d SEARCH CHARSET UTF-8 SEEN",
                "* SEARCH 1\nd OK SEARCH completed\n",
            ),
            (
                "d SEARCH CHARSET \"us-ascii\" SEEN",
                "* SEARCH 1\nd OK SEARCH completed\n",
            ),
            (
                "d SEARCH CHARSET KOI8-R SEEN",
                "d NO [BADCHARSET (US-ASCII UTF-8)] Unknown charset\n",
            ),
        ],
    );
}

#[test]
fn list_lsub_and_folder_commands() {
    let mut client = Client::loopback();
    client.cmd("a LOGIN morty \"s3cret pass\"");
    table(
        &mut client,
        &[
            (
                "b LIST \"\" \"\"",
                "* LIST (\\Noselect) \"/\" \"\"\nb OK LIST completed\n",
            ),
            (
                "c LIST \"\" *",
                "* LIST (\\HasNoChildren) \"/\" INBOX\n\
                 * LIST (\\HasNoChildren \\Sent) \"/\" Sent\n\
                 * LIST (\\HasNoChildren \\Trash) \"/\" Trash\n\
                 c OK LIST completed\n",
            ),
            ("d CREATE Work/Urgent", "d OK Done\n"),
            ("e CREATE Entw&APw-rfe", "e OK Done\n"),
            (
                "f CREATE inbox",
                "f NO [ALREADYEXISTS] Mailbox exists already\n",
            ),
            (
                "f CREATE Trash",
                "f NO [ALREADYEXISTS] Mailbox exists already\n",
            ),
            (
                "g CREATE Work/Urgent",
                "g NO [ALREADYEXISTS] Mailbox exists already\n",
            ),
            (
                "h LIST \"\" %",
                "* LIST (\\HasNoChildren) \"/\" INBOX\n\
                 * LIST (\\HasNoChildren) \"/\" Entw&APw-rfe\n\
                 * LIST (\\HasNoChildren \\Sent) \"/\" Sent\n\
                 * LIST (\\HasNoChildren \\Trash) \"/\" Trash\n\
                 * LIST (\\Noselect \\HasChildren) \"/\" Work\n\
                 h OK LIST completed\n",
            ),
            (
                "i LIST Work/ %",
                "* LIST (\\HasNoChildren) \"/\" Work/Urgent\ni OK LIST completed\n",
            ),
            (
                "j LSUB \"\" *",
                "* LSUB (\\HasNoChildren) \"/\" INBOX\n\
                 * LSUB (\\HasNoChildren) \"/\" Entw&APw-rfe\n\
                 * LSUB (\\HasNoChildren \\Sent) \"/\" Sent\n\
                 * LSUB (\\HasNoChildren \\Trash) \"/\" Trash\n\
                 * LSUB (\\HasNoChildren) \"/\" Work/Urgent\n\
                 j OK LSUB completed\n",
            ),
            ("k RENAME Work/Urgent Later", "k OK Done\n"),
            (
                "l RENAME INBOX Old",
                "l NO [CANNOT] INBOX, Sent and Trash cannot be renamed\n",
            ),
            (
                "l RENAME Later Sent",
                "l NO [ALREADYEXISTS] Mailbox exists already\n",
            ),
            (
                "m RENAME Nope Other",
                "m NO [NONEXISTENT] No such mailbox\n",
            ),
            ("n DELETE Later", "n OK Done\n"),
            ("o DELETE Later", "o NO [NONEXISTENT] No such mailbox\n"),
            (
                "p DELETE Trash",
                "p NO [CANNOT] INBOX, Sent and Trash cannot be deleted\n",
            ),
            ("q SUBSCRIBE Entw&APw-rfe", "q OK SUBSCRIBE completed\n"),
            ("r UNSUBSCRIBE Entw&APw-rfe", "r OK UNSUBSCRIBE completed\n"),
            (
                "s NAMESPACE",
                "* NAMESPACE ((\"\" \"/\")) NIL NIL\ns OK NAMESPACE completed\n",
            ),
        ],
    );
    assert!(client.model.tag_next.contains_key("Entwürfe"));
}

#[test]
fn enable_utf8_shows_names_in_utf8() {
    let mut client = Client::loopback();
    client.cmd("a LOGIN morty \"s3cret pass\"");
    client.cmd("b CREATE Entw&APw-rfe");
    table(
        &mut client,
        &[
            (
                "c ENABLE UTF8=ACCEPT",
                "* ENABLED UTF8=ACCEPT\nc OK ENABLE completed\n",
            ),
            (
                "d LIST \"\" Entw*",
                "* LIST (\\HasNoChildren) \"/\" \"Entwürfe\"\nd OK LIST completed\n",
            ),
        ],
    );
}

#[test]
fn status_reports_counts() {
    let mut client = Client::loopback();
    client.model.deliver(&msg("one"));
    let b = client.model.deliver(&msg("two"));
    client.model.set_flags(
        b,
        &FlagEdit::Add(Flags {
            seen: true,
            ..Flags::default()
        }),
    );
    client.cmd("a LOGIN morty \"s3cret pass\"");
    table(
        &mut client,
        &[
            (
                "b STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)",
                "* STATUS INBOX (MESSAGES 2 RECENT 0 UIDNEXT 3 UIDVALIDITY 7 UNSEEN 1)\nb OK STATUS completed\n",
            ),
            (
                "c STATUS Trash (MESSAGES)",
                "* STATUS Trash (MESSAGES 0)\nc OK STATUS completed\n",
            ),
            (
                "d STATUS Nope (MESSAGES)",
                "d NO [NONEXISTENT] No such mailbox\n",
            ),
        ],
    );
}

#[test]
fn append_with_a_literal_answers_appenduid() {
    let mut client = Client::loopback();
    client.cmd("a LOGIN morty \"s3cret pass\"");
    let message = msg("sent copy");
    let got = client.cmd(&format!(
        "b APPEND Sent (\\Seen) \"14-Jul-2024 02:44:25 +0200\" {{{}}}",
        message.len()
    ));
    assert_eq!(got, "+ Ready for literal data\r\n");
    let got = client.send(format!("{message}\r\n").as_bytes());
    assert_eq!(got, "b OK [APPENDUID 7 1] APPEND completed\r\n");
    let sent = &client.model.sent[&1];
    assert_eq!(sent.raw, message.as_bytes());
    assert!(sent.flags.seen);
    assert_eq!(
        sent.received_at,
        UNIX_EPOCH + Duration::from_secs(1_720_917_865)
    );
    // LITERAL+: no continuation request.
    let got =
        client.send(format!("c APPEND INBOX {{{}+}}\r\n{message}\r\n", message.len()).as_bytes());
    assert_eq!(got, "c OK [APPENDUID 7 2] APPEND completed\r\n");
    assert_eq!(
        client.cmd("d APPEND Trash {1+}\r\nx"),
        "d NO [CANNOT] Trash is always empty\r\n"
    );
}

#[test]
fn oversized_literals_are_refused_without_losing_the_session() {
    let mut client = Client::loopback();
    client.cmd("a LOGIN morty \"s3cret pass\"");
    // Synchronising: refused before the client sends it.
    assert_eq!(
        client.cmd("b APPEND INBOX {20000}"),
        "b NO [TOOBIG] literal too big (max 10000 octets)\r\n"
    );
    // Non-synchronising: the client sends it anyway; exactly that many bytes
    // are skipped, and the next command works.
    let mut input = b"c APPEND INBOX {20000+}\r\n".to_vec();
    input.extend(std::iter::repeat_n(b'x', 20_000));
    input.extend_from_slice(b"\r\nd NOOP\r\n");
    assert_eq!(
        client.send(&input),
        "c NO [TOOBIG] literal too big (max 10000 octets)\r\nd OK NOOP completed\r\n"
    );
    assert!(client.model.inbox.is_empty());
}

#[test]
fn overlong_lines_get_bad_and_the_session_goes_on() {
    let mut client = Client::loopback();
    let mut input = b"a NOOP ".to_vec();
    input.extend(std::iter::repeat_n(b'x', 5000));
    input.extend_from_slice(b"\r\nb NOOP\r\n");
    assert_eq!(
        client.send(&input),
        "* BAD line too long (max 1000 octets)\r\nb OK NOOP completed\r\n"
    );
}

#[test]
fn too_many_commands_close_the_session() {
    let mut limited = config();
    limited.max_commands = 2;
    let mut client = Client::new(limited, LOOPBACK);
    let got = client.send(b"a NOOP\r\nb NOOP\r\nc NOOP\r\nd NOOP\r\n");
    assert_eq!(
        got,
        "a OK NOOP completed\r\nb OK NOOP completed\r\n* BYE Too many commands in one session\r\n"
    );
    assert!(client.closed);
}

/// A conversation with literals, pipelining and every kind of step.
const SCRIPT: &[u8] = b"a LOGIN {5}\r\nmorty {11}\r\ns3cret pass\r\n\
b SELECT INBOX\r\nc FETCH 1:* (UID FLAGS)\r\nd STORE 2 +FLAGS (\\Seen)\r\n\
e APPEND INBOX {3+}\r\nabc\r\nf NOOP\r\ng UID SEARCH UNSEEN\r\nh IDLE\r\nDONE\r\ni LOGOUT\r\n";

#[test]
fn literals_split_at_every_byte_give_the_same_answers() {
    let run = |chunks: &[&[u8]]| {
        let mut client = Client::loopback();
        client.model.deliver(&msg("one"));
        client.model.deliver(&msg("two"));
        let mut out = String::new();
        for chunk in chunks {
            out.push_str(&client.send(chunk));
        }
        assert!(client.closed);
        out
    };
    let whole = run(&[SCRIPT]);
    assert!(
        whole.contains("+ Ready for literal data\r\n+ Ready for literal data\r\na OK"),
        "{whole}"
    );
    assert!(
        whole.contains("* 3 EXISTS\r\ne OK [APPENDUID 7 3] APPEND completed\r\nf OK NOOP"),
        "{whole}"
    );
    assert!(
        whole.contains("+ idling\r\nh OK IDLE terminated\r\n* BYE"),
        "{whole}"
    );
    let bytes: Vec<&[u8]> = SCRIPT.chunks(1).collect();
    assert_eq!(run(&bytes), whole);
    for cut in 1..SCRIPT.len() {
        let (a, b) = SCRIPT.split_at(cut);
        assert_eq!(run(&[a, b]), whole, "split at {cut}");
    }
}

#[test]
fn pipelined_commands_are_answered_in_order() {
    let mut client = Client::selected(&[&msg("one"), &msg("two")]);
    let got = client.send(b"1 NOOP\r\n2 FETCH 1 UID\r\n3 STORE 1 +FLAGS.SILENT (\\Flagged)\r\n4 UID FETCH 1:* FLAGS\r\n5 CHECK\r\n");
    assert_eq!(
        got,
        "1 OK NOOP completed\r\n* 1 FETCH (UID 1)\r\n2 OK FETCH completed\r\n3 OK STORE completed\r\n\
         * 1 FETCH (UID 1 FLAGS (\\Flagged))\r\n* 2 FETCH (UID 2 FLAGS ())\r\n4 OK UID FETCH completed\r\n5 OK CHECK completed\r\n"
    );
}

#[test]
fn changes_made_elsewhere_are_reported_before_the_tagged_response() {
    let mut client = Client::selected(&[&msg("one"), &msg("two"), &msg("three")]);
    // Elsewhere: message 2 deleted, 3 starred, a new one arrives.
    client.model.delete(2);
    client.model.set_flags(
        3,
        &FlagEdit::Add(Flags {
            flagged: true,
            ..Flags::default()
        }),
    );
    client.model.deliver(&msg("four"));
    // FETCH may not announce the EXPUNGE: numbers stay as the client knows them.
    assert_eq!(
        client.cmd("c FETCH 1:* UID"),
        "* 1 FETCH (UID 1)\r\n* 2 FETCH (UID 2)\r\n* 3 FETCH (UID 3)\r\n\
         * 4 EXISTS\r\n* 3 FETCH (FLAGS (\\Flagged) UID 3)\r\nc OK FETCH completed\r\n"
    );
    assert_eq!(
        client.cmd("d STORE 1 +FLAGS.SILENT (\\Seen)"),
        "d OK STORE completed\r\n"
    );
    assert_eq!(
        client.cmd("e SEARCH ALL"),
        "* SEARCH 1 3 4\r\ne OK SEARCH completed\r\n"
    );
    // NOOP may: message 2 goes, 3 and 4 move up.
    assert_eq!(
        client.cmd("f NOOP"),
        "* 2 EXPUNGE\r\nf OK NOOP completed\r\n"
    );
    assert_eq!(
        client.cmd("g FETCH 1:* UID"),
        "* 1 FETCH (UID 1)\r\n* 2 FETCH (UID 3)\r\n* 3 FETCH (UID 4)\r\ng OK FETCH completed\r\n"
    );
}

#[test]
fn expunges_are_numbered_from_the_top() {
    let mut client = Client::selected(&[&msg("1"), &msg("2"), &msg("3"), &msg("4"), &msg("5")]);
    client.model.delete(2);
    client.model.delete(3);
    client.model.delete(5);
    assert_eq!(
        client.cmd("c NOOP"),
        "* 5 EXPUNGE\r\n* 3 EXPUNGE\r\n* 2 EXPUNGE\r\nc OK NOOP completed\r\n"
    );
}

#[test]
fn idle_reports_changes_at_once_and_ends_with_done() {
    let mut client = Client::selected(&[&msg("one"), &msg("two")]);
    assert_eq!(client.cmd("c IDLE"), "+ idling\r\n");
    assert!(client.session.idling());
    client.model.deliver(&msg("three"));
    client.model.delete(1);
    let request = client.session.store_changed().expect("a poll while idling");
    let Request::Store(call) = request else {
        panic!("{request:?}")
    };
    let reply = client.model.call(call);
    let mut out = Vec::new();
    client.session.answer(Answer::Store(Ok(reply)), &mut out);
    // A message left: the delta is not enough, and the session reads the
    // whole folder (the shell calls advance again after every answer).
    assert!(out.is_empty());
    assert_eq!(client.send(b""), "* 1 EXPUNGE\r\n* 2 EXISTS\r\n");
    assert_eq!(client.cmd("DONE"), "c OK IDLE terminated\r\n");
    assert!(!client.session.idling());
    assert!(client.model.calls.iter().any(|c| c.starts_with("Open")));
    assert!(client.session.store_changed().is_none());
}

#[test]
fn expunge_uid_expunge_and_close_delete_only_deleted_messages() {
    let mut client = Client::selected(&[&msg("1"), &msg("2"), &msg("3"), &msg("4")]);
    client.cmd("c STORE 1:3 +FLAGS.SILENT (\\Deleted)");
    table(
        &mut client,
        &[
            ("d UID EXPUNGE 3:4", "* 3 EXPUNGE\nd OK EXPUNGE completed\n"),
            (
                "e EXPUNGE",
                "* 2 EXPUNGE\n* 1 EXPUNGE\ne OK EXPUNGE completed\n",
            ),
        ],
    );
    assert_eq!(client.model.inbox.keys().copied().collect::<Vec<_>>(), [4]);
    client.model.deliver(&msg("5"));
    client.cmd("f NOOP");
    client.cmd("g STORE 2 +FLAGS.SILENT (\\Deleted)");
    assert_eq!(client.cmd("h CLOSE"), "h OK CLOSE completed\r\n");
    assert_eq!(client.model.inbox.keys().copied().collect::<Vec<_>>(), [4]);
    assert_eq!(client.cmd("i FETCH 1 UID"), "i BAD No mailbox selected\r\n");
    // UNSELECT leaves \Deleted messages alone.
    client.cmd("j SELECT INBOX");
    client.cmd("k STORE 1 +FLAGS.SILENT (\\Deleted)");
    assert_eq!(client.cmd("l UNSELECT"), "l OK UNSELECT completed\r\n");
    assert_eq!(client.model.inbox.len(), 1);
}

#[test]
fn copy_and_move_into_tags_and_trash() {
    let mut client = Client::selected(&[&msg("1"), &msg("2"), &msg("3")]);
    client.cmd("c CREATE Work");
    table(
        &mut client,
        &[
            (
                "d COPY 1:2 Work",
                "d OK [COPYUID 7 1:2 1:2] COPY completed\n",
            ),
            // Out of the INBOX into a tag: tagged, and still in the INBOX.
            ("e UID MOVE 3 Work", "e OK [COPYUID 7 3 3] MOVE completed\n"),
            (
                "f SELECT Work",
                "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\n\
                 * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted\n\
                 * 3 EXISTS\n* 0 RECENT\n* OK [UNSEEN 1] First unseen\n* OK [UIDVALIDITY 7] UIDs valid\n\
                 * OK [UIDNEXT 4] Predicted next UID\nf OK [READ-WRITE] SELECT completed\n",
            ),
            // Out of a tag back to the INBOX: the tag comes off.
            (
                "g MOVE 1 INBOX",
                "* OK [COPYUID 7 1 1] Copied\n* 1 EXPUNGE\ng OK MOVE completed\n",
            ),
            // Into the Trash: deleted from the store.
            ("h MOVE 1 Trash", "* 1 EXPUNGE\nh OK MOVE completed\n"),
            // Into the folder itself: refused, nothing lost.
            (
                "i MOVE 1 Work",
                "i NO [CANNOT] Cannot move into the same mailbox\n",
            ),
        ],
    );
    assert_eq!(
        client.model.inbox.keys().copied().collect::<Vec<_>>(),
        [1, 3]
    );
    assert!(client.model.inbox[&1].tags.is_empty());
    assert_eq!(client.model.inbox[&3].tags.get("Work"), Some(&3));
}

#[test]
fn body_fetches_return_sections_and_set_seen_unless_peek() {
    let one = msg("one");
    let mut client = Client::selected(&[&one, &msg("two")]);
    let len = one.len();
    let header_len = one.find("\r\n\r\n").unwrap() + 4;
    let header = &one[..header_len];
    table(
        &mut client,
        &[
            (
                "c FETCH 1 BODY.PEEK[HEADER.FIELDS (SUBJECT)]",
                "* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {16}\nSubject: one\n\n)\nc OK FETCH completed\n",
            ),
            (
                "d FETCH 1 FLAGS",
                "* 1 FETCH (FLAGS ())\nd OK FETCH completed\n",
            ),
            (
                "e FETCH 1 BODY[TEXT]<0.4>",
                "* 1 FETCH (BODY[TEXT]<0> {4}\nBody FLAGS (\\Seen))\ne OK FETCH completed\n",
            ),
        ],
    );
    assert_eq!(
        client.cmd("f UID FETCH 1 (RFC822.HEADER)"),
        format!(
            "* 1 FETCH (UID 1 RFC822.HEADER {{{header_len}}}\r\n{header})\r\nf OK UID FETCH completed\r\n"
        )
    );
    assert_eq!(
        client.cmd("g FETCH 2 RFC822"),
        format!(
            "* 2 FETCH (RFC822 {{{len}}}\r\n{} FLAGS (\\Seen))\r\ng OK FETCH completed\r\n",
            msg("two")
        )
    );
    assert!(client.model.inbox[&1].flags.seen && client.model.inbox[&2].flags.seen);
    let got = client.cmd("h FETCH 1 (ENVELOPE BODYSTRUCTURE)");
    assert!(
        got.starts_with("* 1 FETCH (ENVELOPE (NIL \"one\" ((NIL NIL \"rick\" \"example.com\"))"),
        "{got}"
    );
    assert!(got.contains("BODYSTRUCTURE (\"TEXT\" \"plain\""), "{got}");
    let got = client.cmd("i FETCH 2 BODY[]");
    assert_eq!(
        got,
        format!(
            "* 2 FETCH (BODY[] {{{len}}}\r\n{})\r\ni OK FETCH completed\r\n",
            msg("two")
        )
    );
}

#[test]
fn examine_never_sets_seen() {
    let mut client = Client::loopback();
    client.model.deliver(&msg("one"));
    client.cmd("a LOGIN morty \"s3cret pass\"");
    client.cmd("b EXAMINE INBOX");
    let got = client.cmd("c FETCH 1 BODY[TEXT]");
    assert_eq!(
        got,
        "* 1 FETCH (BODY[TEXT] {13}\r\nBody of one\r\n)\r\nc OK FETCH completed\r\n"
    );
    assert!(!client.model.inbox[&1].flags.seen);
}

#[test]
fn search_on_content_keys() {
    let mut client = Client::selected(&[
        &msg("Hello there"),
        "From: Summer <summer@example.com>\r\nTo: morty@example.com\r\nCc: beth@example.com\r\nSubject: plans\r\nX-Tag: garage\r\n\r\nMeet in the garage\r\n",
        &msg("bye"),
    ]);
    table(
        &mut client,
        &[
            (
                "d SEARCH SUBJECT hello",
                "* SEARCH 1\nd OK SEARCH completed\n",
            ),
            (
                "d SEARCH FROM summer",
                "* SEARCH 2\nd OK SEARCH completed\n",
            ),
            (
                "d SEARCH TO morty",
                "* SEARCH 1 2 3\nd OK SEARCH completed\n",
            ),
            ("d SEARCH CC beth", "* SEARCH 2\nd OK SEARCH completed\n"),
            ("d SEARCH BCC beth", "* SEARCH\nd OK SEARCH completed\n"),
            (
                "d SEARCH BODY GARAGE",
                "* SEARCH 2\nd OK SEARCH completed\n",
            ),
            (
                "d SEARCH TEXT \"body of\"",
                "* SEARCH 1 3\nd OK SEARCH completed\n",
            ),
            (
                "d SEARCH HEADER X-Tag garage",
                "* SEARCH 2\nd OK SEARCH completed\n",
            ),
            (
                "d UID SEARCH NOT SUBJECT bye SEEN",
                "* SEARCH\nd OK UID SEARCH completed\n",
            ),
            (
                "d SEARCH CHARSET UTF-8 SUBJECT {5}",
                "+ Ready for literal data\n",
            ),
            ("plans", "* SEARCH 2\nd OK SEARCH completed\n"),
        ],
    );
}

#[test]
fn large_fetches_read_raw_messages_in_batches() {
    let messages: Vec<String> = (0..150).map(|i| msg(&format!("m{i}"))).collect();
    let refs: Vec<&str> = messages.iter().map(String::as_str).collect();
    let mut client = Client::selected(&refs);
    client.model.calls.clear();
    let got = client.cmd("c FETCH 1:* BODY.PEEK[HEADER.FIELDS (SUBJECT)]");
    assert_eq!(
        got.matches(" FETCH (BODY[HEADER.FIELDS (SUBJECT)]").count(),
        150
    );
    let raws: Vec<&String> = client
        .model
        .calls
        .iter()
        .filter(|c| c.starts_with("Raw"))
        .collect();
    assert_eq!(raws.len(), 3, "{raws:?}");
    // State-only items read no message at all.
    client.model.calls.clear();
    client.cmd("d FETCH 1:* (UID FLAGS RFC822.SIZE)");
    assert!(
        client.model.calls.iter().all(|c| !c.starts_with("Raw")),
        "{:?}",
        client.model.calls
    );
}

#[test]
fn a_message_deleted_while_its_expunge_is_held_is_left_out_of_fetch() {
    let mut client = Client::selected(&[&msg("one"), &msg("two")]);
    client.model.delete(1);
    assert_eq!(
        client.cmd("c FETCH 1:2 BODY.PEEK[HEADER.FIELDS (SUBJECT)]"),
        "* 2 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {16}\r\nSubject: two\r\n\r\n)\r\nc OK FETCH completed\r\n"
    );
    assert_eq!(
        client.cmd("d NOOP"),
        "* 1 EXPUNGE\r\nd OK NOOP completed\r\n"
    );
}

#[test]
fn per_recipient_inbox_asks_for_the_logins_own_mail() {
    let mut own = config();
    own.per_recipient = true;
    let mut client = Client::new(own, LOOPBACK);
    client.cmd("a LOGIN morty \"s3cret pass\"");
    let mut out = Vec::new();
    let (_, step) = client.session.advance(b"b SELECT INBOX\r\n", &mut out);
    let Step::Request(Request::Store(StoreCall::Open { folder })) = step else {
        panic!("{step:?}")
    };
    assert_eq!(
        folder,
        Folder::Inbox {
            recipient: Some("morty".into())
        }
    );
}

#[test]
fn timeout_and_shutdown_say_bye_and_close() {
    let mut client = Client::loopback();
    let mut out = Vec::new();
    client.session.timed_out(&mut out);
    assert_eq!(out, b"* BYE Autologout; idle for too long\r\n");
    assert_eq!(client.cmd("a NOOP"), "");
    assert!(client.closed);

    let mut client = Client::loopback();
    let mut out = Vec::new();
    client.session.shutting_down(&mut out);
    assert_eq!(out, b"* BYE Server shutting down\r\n");
    assert_eq!(client.cmd("a NOOP"), "");
    assert!(client.closed);
}

#[test]
fn commands_ended_counts_tagged_responses() {
    let mut client = Client::selected(&[&msg("one")]);
    assert_eq!(client.session.commands_ended(), 2);
    // A command waiting for its literal has not ended.
    client.cmd("c APPEND INBOX {5}");
    assert_eq!(client.session.commands_ended(), 2);
    client.send(b"hello\r\n");
    client.cmd("d FETCH 1:* UID");
    client.cmd("e FROB");
    assert_eq!(client.session.commands_ended(), 5);
}

#[test]
fn id_names_the_server() {
    let mut client = Client::loopback();
    assert_eq!(
        client.cmd("a ID (\"name\" \"Thunderbird\")"),
        format!(
            "* ID (\"name\" \"sokkel\" \"version\" \"{}\")\r\na OK ID completed\r\n",
            env!("CARGO_PKG_VERSION")
        )
    );
    assert_eq!(
        client.cmd("b ID NIL").lines().last(),
        Some("b OK ID completed")
    );
}

#[test]
fn idle_outside_a_folder_and_changes_outside_idle() {
    let mut client = Client::selected(&[&msg("one")]);
    // Not idling: changes wait for the next command.
    client.model.deliver(&msg("two"));
    assert!(client.session.store_changed().is_none());
    assert_eq!(
        client.cmd("c NOOP"),
        "* 2 EXISTS\r\nc OK NOOP completed\r\n"
    );
    // IDLE right after a change reports it before the continuation.
    client.model.deliver(&msg("three"));
    assert_eq!(client.cmd("d IDLE"), "* 3 EXISTS\r\n+ idling\r\n");
    assert_eq!(client.cmd("done"), "d OK IDLE terminated\r\n");
    // Anything but DONE ends IDLE with BAD.
    client.cmd("e IDLE");
    assert_eq!(client.cmd("f NOOP"), "e BAD Expected DONE\r\n");

    let mut client = Client::loopback();
    client.cmd("a LOGIN morty \"s3cret pass\"");
    assert_eq!(client.cmd("b IDLE"), "+ idling\r\n");
    assert!(client.session.store_changed().is_none());
    assert_eq!(client.cmd("DONE"), "b OK IDLE terminated\r\n");
}

#[test]
fn flag_changes_made_elsewhere_reach_an_idling_client() {
    let mut client = Client::selected(&[&msg("one"), &msg("two")]);
    client.cmd("c IDLE");
    client.model.set_flags(
        2,
        &FlagEdit::Add(Flags {
            seen: true,
            ..Flags::default()
        }),
    );
    let Some(Request::Store(call)) = client.session.store_changed() else {
        panic!("a poll while idling")
    };
    let reply = client.model.call(call);
    let mut out = Vec::new();
    client.session.answer(Answer::Store(Ok(reply)), &mut out);
    assert_eq!(out, b"* 2 FETCH (FLAGS (\\Seen) UID 2)\r\n");
}

#[test]
fn a_failing_store_answers_no_and_the_session_goes_on() {
    let mut client = Client::loopback();
    client.cmd("a LOGIN morty \"s3cret pass\"");
    let mut out = Vec::new();
    let (_, step) = client.session.advance(b"b SELECT INBOX\r\n", &mut out);
    assert!(matches!(step, Step::Request(_)));
    client.session.answer(
        Answer::Store(Err(MailboxError::Unavailable("database is locked".into()))),
        &mut out,
    );
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "b NO [UNAVAILABLE] The mail store failed: database is locked\r\n"
    );
    assert_eq!(client.cmd("c NOOP"), "c OK NOOP completed\r\n");
}

#[test]
fn tagged_mailboxes_by_utf7_name() {
    let mut client = Client::selected(&[&msg("one")]);
    client.cmd("c CREATE Entw&APw-rfe");
    assert_eq!(
        client.cmd("d COPY 1 Entw&APw-rfe"),
        "d OK [COPYUID 7 1 1] COPY completed\r\n"
    );
    assert_eq!(
        client.cmd("e STATUS Entw&APw-rfe (MESSAGES UIDNEXT)"),
        "* STATUS Entw&APw-rfe (MESSAGES 1 UIDNEXT 2)\r\ne OK STATUS completed\r\n"
    );
    assert_eq!(client.model.inbox[&1].tags.get("Entwürfe"), Some(&1));
    assert_eq!(
        client.cmd("f SELECT Bad&-Name&AB"),
        "f NO [CANNOT] Mailbox name is not valid modified UTF-7\r\n"
    );
}

/// A small deterministic generator, so the hostile-input test needs no crate.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

#[test]
fn hostile_input_never_panics_and_the_session_ends_or_goes_on() {
    let pieces: &[&[u8]] = &[
        b"a LOGIN morty \"s3cret pass\"\r\n",
        b"b SELECT INBOX\r\n",
        b"c FETCH 1:* (FLAGS BODY.PEEK[HEADER] BODY[1.MIME]<0.10>)\r\n",
        b"d UID STORE *:1 +FLAGS (\\Deleted)\r\n",
        b"e APPEND INBOX {3+}\r\nabc\r\n",
        b"{99999999999}\r\n",
        b"{4}\r\n",
        b"f SEARCH OR (UNSEEN) NOT TEXT x\r\n",
        b"g IDLE\r\n",
        b"DONE\r\n",
        b"*\r\n",
        b"h MOVE 1 Trash\r\n",
        b"i EXPUNGE\r\n",
        b"\x00\xff\r\n",
        b"j LIST \"\" \"*%*%\"\r\n",
        b")(\"\\\r\n",
        b"k AUTHENTICATE PLAIN\r\n",
    ];
    let mut rng = Lcg(13);
    for _ in 0..200 {
        let mut client = Client::loopback();
        for i in 1..4 {
            client.model.deliver(&msg(&i.to_string()));
        }
        let mut input = Vec::new();
        for _ in 0..12 {
            let piece = pieces[rng.next() as usize % pieces.len()];
            let cut = rng.next() as usize % (piece.len() + 1);
            input.extend_from_slice(&piece[..cut.max(piece.len() / 2)]);
        }
        for chunk in input.chunks(1 + rng.next() as usize % 7) {
            client.send(chunk);
            if client.closed {
                break;
            }
        }
    }
}

#[test]
fn a_big_fetch_hands_each_batch_out_before_reading_the_next() {
    let body = "x".repeat(2000);
    let messages: Vec<String> = (0..300)
        .map(|i| format!("Subject: {i}\r\n\r\n{body}\r\n"))
        .collect();
    let refs: Vec<&str> = messages.iter().map(String::as_str).collect();
    let mut client = Client::selected(&refs);
    let mut out = Vec::new();
    let mut input: &[u8] = b"c FETCH 1:* BODY.PEEK[]\r\n";
    let mut largest = 0;
    let mut batches = 0;
    loop {
        let (n, step) = client.session.advance(input, &mut out);
        input = &input[n..];
        match step {
            Step::Request(Request::Store(call)) => {
                if matches!(call, StoreCall::Raw { .. }) {
                    batches += 1;
                }
                // The shell writes what is there before it runs the call.
                largest = largest.max(out.len());
                out.clear();
                let reply = client.model.call(call);
                client.session.answer(Answer::Store(Ok(reply)), &mut out);
            }
            Step::NeedMore => break,
            step => panic!("{step:?}"),
        }
    }
    assert_eq!(batches, 300usize.div_ceil(super::fetch::BATCH));
    assert!(largest < 70 * 2100, "{largest} bytes held at once");
    assert!(String::from_utf8_lossy(&out).ends_with("c OK FETCH completed\r\n"));
}

/// The shell answers a raw batch only up to its byte budget: a FETCH and a
/// SEARCH must ask again for the rest and still see every message once.
#[test]
fn short_raw_replies_are_asked_again_for_the_rest() {
    let messages: Vec<String> = (0..10)
        .map(|i| format!("Subject: m{i}\r\n\r\nbody {i} quokka\r\n"))
        .collect();
    let refs: Vec<&str> = messages.iter().map(String::as_str).collect();
    let mut client = Client::selected(&refs);
    for (command, expect) in [
        (
            "f FETCH 1:* BODY.PEEK[HEADER.FIELDS (SUBJECT)]",
            "f OK FETCH completed\r\n",
        ),
        ("s SEARCH BODY quokka", "s OK SEARCH completed\r\n"),
    ] {
        let mut out = Vec::new();
        let line = format!("{command}\r\n");
        let mut input = line.as_bytes();
        let mut raw_calls = 0;
        loop {
            let (n, step) = client.session.advance(input, &mut out);
            input = &input[n..];
            match step {
                Step::Request(Request::Store(call)) => {
                    let is_raw = matches!(call, StoreCall::Raw { .. });
                    let reply = match client.model.call(call) {
                        // Two messages a reply, as a store over budget answers.
                        StoreReply::Raw(mut raws) if is_raw => {
                            raw_calls += 1;
                            raws.truncate(2);
                            StoreReply::Raw(raws)
                        }
                        reply => reply,
                    };
                    client.session.answer(Answer::Store(Ok(reply)), &mut out);
                }
                Step::NeedMore => break,
                step => panic!("{step:?}"),
            }
        }
        let out = String::from_utf8_lossy(&out);
        assert!(out.ends_with(expect), "{out}");
        assert_eq!(raw_calls, 5, "{command}");
        if command.starts_with('f') {
            for i in 0..10 {
                assert_eq!(
                    out.matches(&format!("Subject: m{i}\r\n")).count(),
                    1,
                    "{out}"
                );
            }
        } else {
            assert!(out.contains("* SEARCH 1 2 3 4 5 6 7 8 9 10\r\n"), "{out}");
        }
    }
}

#[test]
fn utf8_names_are_taken_as_they_are_once_enabled() {
    let mut client = Client::loopback();
    client.cmd("a LOGIN morty \"s3cret pass\"");
    client.cmd("b ENABLE UTF8=ACCEPT");
    table(
        &mut client,
        &[
            // `&` is itself in UTF-8 names, not the start of modified UTF-7.
            ("c CREATE \"Tom & Jerry\"", "c OK Done\n"),
            (
                "d LIST \"\" \"Tom*\"",
                "* LIST (\\HasNoChildren) \"/\" \"Tom & Jerry\"\nd OK LIST completed\n",
            ),
            ("e CREATE \"Entwürfe\"", "e OK Done\n"),
            (
                "f STATUS \"Entwürfe\" (MESSAGES)",
                "* STATUS \"Entwürfe\" (MESSAGES 0)\nf OK STATUS completed\n",
            ),
        ],
    );
    assert!(client.model.tag_next.contains_key("Tom & Jerry"));
}

#[test]
fn copy_and_append_into_a_missing_folder_ask_the_client_to_create_it() {
    let mut client = Client::selected(&[&msg("one")]);
    table(
        &mut client,
        &[
            ("c COPY 1 Wrok", "c NO [TRYCREATE] No such mailbox\n"),
            ("d UID MOVE 1 Wrok", "d NO [TRYCREATE] No such mailbox\n"),
            (
                "e APPEND Drafts {1+}\r\nx",
                "e NO [TRYCREATE] No such mailbox\n",
            ),
            ("f CREATE Drafts", "f OK Done\n"),
            (
                "g APPEND drafts {1+}\r\nx",
                "* 2 EXISTS\ng OK [APPENDUID 7 2] APPEND completed\n",
            ),
        ],
    );
    assert!(!client.model.tag_next.contains_key("Wrok"));
    assert!(client.model.inbox[&1].tags.is_empty());
}

#[test]
fn a_nul_byte_in_a_stored_message_is_sent_as_0x80() {
    let mut client = Client::selected(&["Subject: nul\r\n\r\na\0b\r\n"]);
    let mut out = Vec::new();
    let mut input: &[u8] = b"c FETCH 1 BODY.PEEK[TEXT]\r\n";
    loop {
        let (n, step) = client.session.advance(input, &mut out);
        input = &input[n..];
        match step {
            Step::Request(Request::Store(call)) => {
                let reply = client.model.call(call);
                client.session.answer(Answer::Store(Ok(reply)), &mut out);
            }
            _ => break,
        }
    }
    assert_eq!(
        out,
        b"* 1 FETCH (BODY[TEXT] {5}\r\na\x80b\r\n)\r\nc OK FETCH completed\r\n"
    );
}

#[test]
fn sizes_and_dates_are_read_from_the_store_for_the_command_that_asks() {
    let mut client = Client::selected(&[&msg("one"), &msg("two")]);
    client.model.calls.clear();
    client.cmd("c FETCH 1:* (UID FLAGS)");
    assert!(
        !client.model.calls.iter().any(|c| c.starts_with("Open")),
        "{:?}",
        client.model.calls
    );
    // A message deleted elsewhere (its EXPUNGE held) has no size to show.
    client.model.delete(1);
    assert_eq!(
        client.cmd("d FETCH 1:* RFC822.SIZE"),
        format!(
            "* 2 FETCH (RFC822.SIZE {})\r\nd OK FETCH completed\r\n",
            msg("two").len()
        )
    );
    assert_eq!(
        client.cmd("e SEARCH SINCE 1-Jan-2020"),
        "* SEARCH 2\r\ne OK SEARCH completed\r\n"
    );
}

#[test]
fn new_mail_and_flag_changes_reach_a_poll_without_reading_the_whole_folder() {
    let mut client = Client::selected(&[&msg("one"), &msg("two")]);
    client.cmd("c IDLE");
    client.model.calls.clear();
    client.model.deliver(&msg("three"));
    client.model.set_flags(
        1,
        &FlagEdit::Add(Flags {
            flagged: true,
            ..Flags::default()
        }),
    );
    let Some(Request::Store(call)) = client.session.store_changed() else {
        panic!("a poll while idling")
    };
    let reply = client.model.call(call);
    let mut out = Vec::new();
    client.session.answer(Answer::Store(Ok(reply)), &mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "* 3 EXISTS\r\n* 1 FETCH (FLAGS (\\Flagged) UID 1)\r\n"
    );
    assert_eq!(client.send(b""), "");
    assert!(
        !client.model.calls.iter().any(|c| c.starts_with("Open")),
        "{:?}",
        client.model.calls
    );
    assert_eq!(client.cmd("DONE"), "c OK IDLE terminated\r\n");
    assert_eq!(
        client.cmd("d FETCH 3 UID"),
        "* 3 FETCH (UID 3)\r\nd OK FETCH completed\r\n"
    );
}
