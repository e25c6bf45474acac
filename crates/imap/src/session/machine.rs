//! The session: its state, the commands it accepts in each state, and the
//! store calls each command needs, one [`Job`] at a time.

use std::collections::BTreeSet;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use imap_codec::decode::{CommandDecodeError, Decoder, IdleDoneDecodeError};
use imap_codec::{CommandCodec, IdleDoneCodec};
use imap_types::IntoStatic;
use imap_types::auth::AuthMechanism;
use imap_types::command::{Command, CommandBody};
use imap_types::core::{IString, LiteralMode, NString, QuotedChar, Tag, Vec1};
use imap_types::extensions::enable::CapabilityEnable;
use imap_types::extensions::namespace::Namespace;
use imap_types::extensions::utf8::Utf8Kind;
use imap_types::fetch::MacroOrMessageDataItemNames;
use imap_types::flag::{Flag, StoreResponse};
use imap_types::response::{Code, Data, Greeting, GreetingKind, StatusKind};
use imap_types::status::StatusDataItemName;
use sokkel_message::{FlagEdit, Flags, Folder, MailboxError, MessageId};
use sokkel_net::server::output_backed_up;

mod auth;
mod mailboxes;
mod selected;

use super::fetch::FetchJob;
use super::frame::{Event, Framer, literal_suffix};
use super::names::{DELIMITER, Name};
use super::reply::{self, Offer};
use super::search::SearchJob;
use super::view::{self, Changes, View};
use super::{Answer, FolderState, Peer, Request, SessionConfig, Step, StoreCall, StoreReply};

/// What the next input line is.
#[derive(Debug)]
enum Input {
    /// A command.
    Command,
    /// The client's answer to AUTHENTICATE PLAIN's empty challenge.
    AuthData(Tag<'static>),
    /// `DONE`, ending IDLE.
    Idle(Tag<'static>),
}

/// The tagged response a command ends with, written once the selected folder
/// was polled and its updates were sent.
#[derive(Debug)]
pub(super) struct Finish {
    pub(super) tag: Tag<'static>,
    pub(super) kind: StatusKind,
    pub(super) code: Option<Code<'static>>,
    pub(super) text: String,
    /// EXPUNGE responses may be sent (not during FETCH, STORE, SEARCH).
    pub(super) expunge: bool,
    /// UIDs whose flags are reported whether or not they changed (STORE).
    pub(super) flags_for: Vec<u32>,
}

impl Finish {
    pub(super) fn ok(tag: Tag<'static>, text: impl Into<String>) -> Finish {
        Finish {
            tag,
            kind: StatusKind::Ok,
            code: None,
            text: text.into(),
            expunge: true,
            flags_for: Vec::new(),
        }
    }

    pub(super) fn no(
        tag: Tag<'static>,
        code: Option<Code<'static>>,
        text: impl Into<String>,
    ) -> Finish {
        Finish {
            kind: StatusKind::No,
            code,
            ..Finish::ok(tag, text)
        }
    }

    fn with_code(mut self, code: Code<'static>) -> Finish {
        self.code = Some(code);
        self
    }
}

/// A command waiting for the shell's answer.
#[derive(Debug)]
enum Job {
    Login {
        tag: Tag<'static>,
        user: String,
    },
    Open {
        tag: Tag<'static>,
        name: Name,
        read_only: bool,
    },
    Status {
        tag: Tag<'static>,
        name: Name,
        items: Vec<StatusDataItemName>,
    },
    List {
        tag: Tag<'static>,
        pattern: String,
        lsub: bool,
    },
    Fetch(FetchJob),
    Search(SearchJob),
    Store {
        tag: Tag<'static>,
        uids: Vec<u32>,
        silent: bool,
        edit: FlagEdit,
    },
    Copy(CopyJob),
    MoveExpunge {
        tag: Tag<'static>,
        copied: Option<Code<'static>>,
    },
    Expunge {
        tag: Tag<'static>,
        close: bool,
    },
    Append {
        tag: Tag<'static>,
    },
    /// The target of a COPY, MOVE or APPEND must exist first.
    TargetExists {
        tag: Tag<'static>,
        name: String,
        then: Box<(Job, StoreCall)>,
    },
    FolderChange {
        tag: Tag<'static>,
        missing: Code<'static>,
    },
    Poll(Finish),
    IdleStart(Tag<'static>),
    IdleUpdate,
}

/// A COPY or MOVE waiting for the store's copy.
#[derive(Debug)]
struct CopyJob {
    tag: Tag<'static>,
    /// The source UIDs, for COPYUID.
    uids: Vec<u32>,
    ids: Vec<MessageId>,
    to: Name,
    moving: bool,
}

/// One IMAP session, from greeting to LOGOUT.
#[derive(Debug)]
pub struct Session {
    config: Arc<SessionConfig>,
    peer: Peer,
    tls: bool,
    framer: Framer,
    input: Input,
    user: Option<String>,
    view: Option<View>,
    /// The client enabled UTF8=ACCEPT: names are UTF-8, not modified UTF-7.
    utf8: bool,
    job: Option<Job>,
    request: Option<Request>,
    commands: u64,
    ended: u64,
    errors: u32,
    auth_failures: u32,
    closed: bool,
}

impl Session {
    /// A session for a connection from `peer`.
    pub fn new(config: Arc<SessionConfig>, peer: Peer) -> Session {
        Session {
            framer: Framer::new(config.max_line_length),
            config,
            peer,
            tls: peer.tls,
            input: Input::Command,
            user: None,
            view: None,
            utf8: false,
            job: None,
            request: None,
            commands: 0,
            ended: 0,
            errors: 0,
            auth_failures: 0,
            closed: false,
        }
    }

    /// Writes the greeting (`* OK [CAPABILITY ...] ...`).
    pub fn greeting(&mut self, out: &mut Vec<u8>) {
        let text = format!("{} IMAP4rev1 ready", self.config.hostname);
        let greeting = Greeting {
            kind: GreetingKind::Ok,
            code: Some(Code::Capability(self.capabilities())),
            text: reply::text(&text),
        };
        reply::greeting(out, &greeting);
    }

    /// Consumes complete commands from `input` and writes their responses to
    /// `out`; returns how many bytes it consumed and what the shell must do.
    pub fn advance(&mut self, input: &[u8], out: &mut Vec<u8>) -> (usize, Step) {
        let mut pos = 0;
        loop {
            if self.closed {
                return (input.len(), Step::Close);
            }
            if let Some(request) = self.request.take() {
                return (pos, Step::Request(request));
            }
            if self.job.is_some() {
                // The shell still owes the answer to the last request.
                return (pos, Step::NeedMore);
            }
            // A client that pipelines without reading cannot grow the output
            // without bound: it is flushed before the next command is read.
            if output_backed_up(out) {
                return (pos, Step::Flush);
            }
            let (consumed, event) = self.framer.feed(&input[pos..]);
            pos += consumed;
            match event {
                Event::NeedMore => return (pos, Step::NeedMore),
                Event::LineTooLong => {
                    let max = self.config.max_line_length;
                    self.error(out, None, &format!("line too long (max {max} octets)"));
                }
                Event::Skipped => {}
                Event::Line => {
                    if let Some(step) = self.line(out) {
                        return match step {
                            // Whatever was pipelined after STARTTLS is dropped,
                            // so nothing sent in clear text runs under TLS.
                            Step::StartTls => (input.len(), Step::StartTls),
                            step => (pos, step),
                        };
                    }
                }
            }
        }
    }

    /// The result of the last [`Step::Request`]; writes what follows from it.
    pub fn answer(&mut self, answer: Answer, out: &mut Vec<u8>) {
        let Some(job) = self.job.take() else {
            return;
        };
        match answer {
            Answer::Login(ok) => self.login_answer(job, ok, out),
            Answer::Store(Ok(reply)) => self.store_answer(job, reply, out),
            Answer::Store(Err(error)) => self.store_failed(job, &error, out),
        }
    }

    /// The store changed (its change counter moved). While the session IDLEs
    /// this returns the [`StoreCall::Poll`] whose answer becomes untagged
    /// updates at once; otherwise it returns `None` and the session polls
    /// before its next command's response.
    pub fn store_changed(&mut self) -> Option<Request> {
        if !self.idling() || self.job.is_some() || self.request.is_some() {
            return None;
        }
        let poll = self.poll_call()?;
        self.job = Some(Job::IdleUpdate);
        Some(poll)
    }

    /// The session is in IDLE: the shell waits for input and store changes
    /// alike, and the idle timeout is the long one.
    pub fn idling(&self) -> bool {
        matches!(self.input, Input::Idle(_))
    }

    /// How many commands ended so far, for a per-command deadline
    /// ([`sokkel_net::server::UnitDeadline`]).
    pub fn commands_ended(&self) -> u64 {
        self.ended
    }

    /// The TLS handshake after STARTTLS succeeded.
    pub fn tls_started(&mut self) {
        self.tls = true;
        self.framer = Framer::new(self.config.max_line_length);
    }

    /// The client was silent too long: writes `* BYE` (then close).
    pub fn timed_out(&mut self, out: &mut Vec<u8>) {
        reply::bye(out, "Autologout; idle for too long");
        self.closed = true;
    }

    /// The server is stopping: writes `* BYE` (then close).
    pub fn shutting_down(&mut self, out: &mut Vec<u8>) {
        reply::bye(out, "Server shutting down");
        self.closed = true;
    }

    /// The login of the session, once logged in.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    fn auth_allowed(&self) -> bool {
        self.tls || self.peer.loopback || self.config.allow_insecure_auth
    }

    fn capabilities(&self) -> Vec1<imap_types::response::Capability<'static>> {
        reply::capabilities(Offer {
            logged_in: self.user.is_some(),
            starttls: self.config.tls_available && !self.tls,
            auth_allowed: self.auth_allowed(),
        })
    }

    /// A line ended: a whole command, a literal's announcement, AUTHENTICATE's
    /// data or IDLE's DONE.
    fn line(&mut self, out: &mut Vec<u8>) -> Option<Step> {
        let bytes = self.framer.take();
        match std::mem::replace(&mut self.input, Input::Command) {
            Input::Command => self.command_bytes(bytes, out),
            Input::AuthData(tag) => {
                self.auth_data(tag, &bytes, out);
                None
            }
            Input::Idle(tag) => {
                self.idle_line(tag, &bytes, out);
                None
            }
        }
    }

    fn command_bytes(&mut self, bytes: Vec<u8>, out: &mut Vec<u8>) -> Option<Step> {
        match CommandCodec::default().decode(&bytes) {
            Ok((_, command)) => {
                let command = command.into_static();
                drop(bytes);
                self.commands += 1;
                if self.commands > self.config.max_commands {
                    reply::bye(out, "Too many commands in one session");
                    self.closed = true;
                    return Some(Step::Close);
                }
                self.command(command, out)
            }
            Err(CommandDecodeError::LiteralFound { tag, length, mode }) => {
                let tag = tag.into_static();
                let total = bytes.len() as u64 + u64::from(length);
                let limit = self.config.max_literal + self.config.max_line_length as u64 * 4;
                if u64::from(length) > self.config.max_literal || total > limit {
                    // The client sends a non-synchronising literal anyway;
                    // a synchronising one it sends only after a `+`.
                    if mode == LiteralMode::NonSync {
                        self.framer.skip_literal(u64::from(length));
                    }
                    let max = self.config.max_literal;
                    self.finish_now(
                        out,
                        Finish::no(
                            tag,
                            Some(Code::TooBig),
                            format!("literal too big (max {max} octets)"),
                        ),
                    );
                    return None;
                }
                self.framer.accept_literal(bytes, length);
                if mode == LiteralMode::Sync {
                    reply::continuation(out, "Ready for literal data");
                    return Some(Step::Flush);
                }
                None
            }
            Err(CommandDecodeError::Incomplete | CommandDecodeError::Failed) => {
                if let Some((length, true)) = literal_suffix(&bytes) {
                    self.framer.skip_literal(length);
                }
                let tag = leading_tag(&bytes);
                self.error(out, tag.as_ref(), "Syntax error in command");
                None
            }
        }
    }

    /// A tagged (or untagged) BAD; too many of them end the session.
    fn error(&mut self, out: &mut Vec<u8>, tag: Option<&Tag<'_>>, text: &str) {
        reply::status(out, tag, StatusKind::Bad, None, text);
        if tag.is_some() {
            self.ended += 1;
        }
        self.errors += 1;
        if self.errors >= self.config.max_errors {
            reply::bye(out, "Too many errors");
            self.closed = true;
        }
    }

    /// Runs a command, if the session's state allows it.
    fn command(&mut self, command: Command<'static>, out: &mut Vec<u8>) -> Option<Step> {
        let Command { tag, body } = command;
        let step = match body {
            CommandBody::Capability
            | CommandBody::Noop
            | CommandBody::Logout
            | CommandBody::Id { .. } => self.any_state(tag, body, out),
            CommandBody::StartTLS
            | CommandBody::Login { .. }
            | CommandBody::Authenticate { .. } => {
                if self.user.is_some() {
                    self.error(out, Some(&tag), "Already logged in");
                    None
                } else {
                    self.not_authenticated(tag, body, out)
                }
            }
            _ if self.user.is_none() => {
                self.error(out, Some(&tag), "Log in first");
                None
            }
            CommandBody::Check
            | CommandBody::Close
            | CommandBody::Unselect
            | CommandBody::Expunge
            | CommandBody::ExpungeUid { .. }
            | CommandBody::Search { .. }
            | CommandBody::Fetch { .. }
            | CommandBody::Store { .. }
            | CommandBody::Copy { .. }
            | CommandBody::Move { .. } => {
                if self.view.is_some() {
                    self.selected(tag, body, out)
                } else {
                    self.error(out, Some(&tag), "No mailbox selected");
                    None
                }
            }
            body => self.authenticated(tag, body, out),
        };
        step.or_else(|| self.request.take().map(Step::Request))
    }

    /// CAPABILITY, NOOP, LOGOUT and ID.
    fn any_state(
        &mut self,
        tag: Tag<'static>,
        body: CommandBody<'static>,
        out: &mut Vec<u8>,
    ) -> Option<Step> {
        match body {
            CommandBody::Capability => {
                reply::data(out, Data::Capability(self.capabilities()));
                self.finish(out, Finish::ok(tag, "CAPABILITY completed"));
            }
            CommandBody::Noop => self.finish(out, Finish::ok(tag, "NOOP completed")),
            CommandBody::Logout => {
                reply::bye(out, "Logging out");
                reply::status(out, Some(&tag), StatusKind::Ok, None, "LOGOUT completed");
                self.ended += 1;
                self.closed = true;
                return Some(Step::Close);
            }
            CommandBody::Id { .. } => {
                let parameters = vec![
                    (istring("name"), NString(Some(istring("sokkel")))),
                    (
                        istring("version"),
                        NString(Some(istring(env!("CARGO_PKG_VERSION")))),
                    ),
                ];
                reply::data(
                    out,
                    Data::Id {
                        parameters: Some(parameters),
                    },
                );
                self.finish(out, Finish::ok(tag, "ID completed"));
            }
            _ => self.error(out, Some(&tag), "Command not supported"),
        }
        None
    }

    /// STARTTLS, LOGIN and AUTHENTICATE.
    fn not_authenticated(
        &mut self,
        tag: Tag<'static>,
        body: CommandBody<'static>,
        out: &mut Vec<u8>,
    ) -> Option<Step> {
        match body {
            CommandBody::StartTLS => {
                if !self.config.tls_available || self.tls {
                    self.finish_now(out, Finish::no(tag, None, "STARTTLS is not available here"));
                } else {
                    reply::status(
                        out,
                        Some(&tag),
                        StatusKind::Ok,
                        None,
                        "Begin TLS negotiation now",
                    );
                    self.ended += 1;
                    return Some(Step::StartTls);
                }
            }
            CommandBody::Login { username, password } => {
                let user = String::from_utf8_lossy(username.as_ref()).into_owned();
                let password = String::from_utf8_lossy(password.declassify().as_ref()).into_owned();
                return self.check_login(tag, user, password, out);
            }
            CommandBody::Authenticate {
                mechanism,
                initial_response,
            } => {
                if mechanism != AuthMechanism::Plain {
                    self.finish_now(
                        out,
                        Finish::no(tag, None, "Only AUTHENTICATE PLAIN is supported"),
                    );
                } else if !self.auth_allowed() {
                    self.privacy_required(tag, out);
                } else if let Some(data) = initial_response {
                    return self.auth_plain(tag, data.declassify(), out);
                } else {
                    reply::empty_challenge(out);
                    self.input = Input::AuthData(tag);
                    return Some(Step::Flush);
                }
            }
            _ => self.error(out, Some(&tag), "Command not supported"),
        }
        None
    }

    /// The commands of the authenticated state (also allowed once selected).
    fn authenticated(
        &mut self,
        tag: Tag<'static>,
        body: CommandBody<'static>,
        out: &mut Vec<u8>,
    ) -> Option<Step> {
        match body {
            CommandBody::Select { mailbox, .. } => return self.open(tag, &mailbox, false, out),
            CommandBody::Examine { mailbox, .. } => return self.open(tag, &mailbox, true, out),
            CommandBody::Create { mailbox } => return self.create(tag, &mailbox, out),
            CommandBody::Delete { mailbox } => return self.delete(tag, &mailbox, out),
            CommandBody::Rename { from, to } => return self.rename(tag, &from, &to, out),
            CommandBody::Subscribe { .. } => {
                self.finish(out, Finish::ok(tag, "SUBSCRIBE completed"))
            }
            CommandBody::Unsubscribe { .. } => {
                self.finish(out, Finish::ok(tag, "UNSUBSCRIBE completed"))
            }
            CommandBody::List {
                reference,
                mailbox_wildcard,
            } => return self.list(tag, &reference, &mailbox_wildcard, false, out),
            CommandBody::Lsub {
                reference,
                mailbox_wildcard,
            } => return self.list(tag, &reference, &mailbox_wildcard, true, out),
            CommandBody::Status {
                mailbox,
                item_names,
            } => {
                return self.status(tag, &mailbox, item_names.into_owned(), out);
            }
            CommandBody::Append {
                mailbox,
                flags,
                date,
                message,
            } => {
                let raw = match message {
                    imap_types::extensions::binary::LiteralOrLiteral8::Literal(l) => l.into_inner(),
                    imap_types::extensions::binary::LiteralOrLiteral8::Literal8(l) => l.data,
                };
                let received_at = date.map(|d| system_time(d.as_ref().timestamp()));
                return self.append(
                    tag,
                    &mailbox,
                    to_flags_checked(&flags),
                    raw.into_owned(),
                    received_at,
                    out,
                );
            }
            CommandBody::Enable { capabilities } => {
                let mut enabled = Vec::new();
                for capability in capabilities.into_inner() {
                    if let CapabilityEnable::Utf8(Utf8Kind::Accept) = capability {
                        self.utf8 = true;
                        enabled.push(capability);
                    }
                }
                reply::data(
                    out,
                    Data::Enabled {
                        capabilities: enabled,
                    },
                );
                self.finish(out, Finish::ok(tag, "ENABLE completed"));
            }
            CommandBody::Namespace => {
                let personal = vec![Namespace::new(
                    istring(""),
                    Some(QuotedChar::unvalidated(DELIMITER)),
                )];
                reply::data(
                    out,
                    Data::Namespace {
                        personal,
                        other: Vec::new(),
                        shared: Vec::new(),
                    },
                );
                self.finish(out, Finish::ok(tag, "NAMESPACE completed"));
            }
            CommandBody::Idle => return self.idle(tag, out),
            _ => self.error(out, Some(&tag), "Command not supported"),
        }
        None
    }

    /// The commands on the selected folder's messages.
    fn selected(
        &mut self,
        tag: Tag<'static>,
        body: CommandBody<'static>,
        out: &mut Vec<u8>,
    ) -> Option<Step> {
        match body {
            CommandBody::Check => self.finish(out, Finish::ok(tag, "CHECK completed")),
            CommandBody::Close => return self.close(tag, out),
            CommandBody::Unselect => {
                self.view = None;
                self.finish_now(out, Finish::ok(tag, "UNSELECT completed"));
            }
            CommandBody::Expunge => return self.expunge(tag, None, out),
            CommandBody::ExpungeUid { sequence_set } => {
                return self.expunge(tag, Some(sequence_set), out);
            }
            CommandBody::Search {
                charset,
                criteria,
                uid,
            } => match SearchJob::start(tag, charset.as_ref(), criteria, uid, self.view()) {
                Ok(job) => return self.search_step(job, out),
                Err(finish) => self.finish(out, *finish),
            },
            CommandBody::Fetch {
                sequence_set,
                macro_or_item_names,
                uid,
                ..
            } => {
                let items = match macro_or_item_names {
                    MacroOrMessageDataItemNames::Macro(m) => m
                        .expand()
                        .into_iter()
                        .map(IntoStatic::into_static)
                        .collect(),
                    MacroOrMessageDataItemNames::MessageDataItemNames(items) => items,
                };
                match FetchJob::start(tag, &sequence_set, items, uid, self.view()) {
                    Ok(job) => return self.fetch_step(job, out),
                    Err((tag, text)) => self.error(out, Some(&tag), text),
                }
            }
            CommandBody::Store {
                sequence_set,
                kind,
                response,
                flags,
                uid,
                ..
            } => {
                let silent = response == StoreResponse::Silent;
                let edit = view::edit(&kind, to_flags_checked(&flags));
                return self.store(tag, &sequence_set, uid, edit, silent, out);
            }
            CommandBody::Copy {
                sequence_set,
                mailbox,
                uid,
            } => return self.copy(tag, &sequence_set, &mailbox, uid, false, out),
            CommandBody::Move {
                sequence_set,
                mailbox,
                uid,
            } => return self.copy(tag, &sequence_set, &mailbox, uid, true, out),
            _ => self.error(out, Some(&tag), "Command not supported"),
        }
        None
    }

    fn view(&self) -> &View {
        self.view.as_ref().expect("checked: a mailbox is selected")
    }

    /// The shell answered a request with the wrong kind of answer.
    fn misplaced(&mut self, job: Job, out: &mut Vec<u8>) {
        tracing::error!(
            ?job,
            "IMAP session got an answer that does not fit its request"
        );
        reply::bye(out, "Internal server error");
        self.closed = true;
    }

    fn store_call(&mut self, job: Job, call: StoreCall) -> Option<Step> {
        self.job = Some(job);
        Some(Step::Request(Request::Store(call)))
    }

    /// Makes the store call into `target` once the target exists: a COPY,
    /// MOVE or APPEND into a tag's folder that does not exist gets
    /// `NO [TRYCREATE]` (RFC 3501 section 6.4.7), so a client can CREATE it and
    /// try again rather than make a tag by a typo.
    fn store_call_into(
        &mut self,
        target: &Folder,
        tag: Tag<'static>,
        job: Job,
        call: StoreCall,
    ) -> Option<Step> {
        match target {
            Folder::Tag(name) => {
                let then = Box::new((job, call));
                let check = Job::TargetExists {
                    tag,
                    name: name.clone(),
                    then,
                };
                self.store_call(check, StoreCall::FolderNames)
            }
            _ => self.store_call(job, call),
        }
    }

    fn idle(&mut self, tag: Tag<'static>, out: &mut Vec<u8>) -> Option<Step> {
        if let Some(poll) = self.poll_call() {
            self.job = Some(Job::IdleStart(tag));
            return Some(Step::Request(poll));
        }
        self.enter_idle(tag, out);
        Some(Step::Flush)
    }

    fn enter_idle(&mut self, tag: Tag<'static>, out: &mut Vec<u8>) {
        reply::continuation(out, "idling");
        self.input = Input::Idle(tag);
    }

    fn idle_line(&mut self, tag: Tag<'static>, line: &[u8], out: &mut Vec<u8>) {
        match IdleDoneCodec::default().decode(line) {
            Ok(_) => self.finish(out, Finish::ok(tag, "IDLE terminated")),
            Err(IdleDoneDecodeError::Incomplete | IdleDoneDecodeError::Failed) => {
                self.error(out, Some(&tag), "Expected DONE");
            }
        }
    }

    /// Writes the tagged response now, without polling.
    pub(super) fn finish_now(&mut self, out: &mut Vec<u8>, finish: Finish) {
        reply::status(
            out,
            Some(&finish.tag),
            finish.kind,
            finish.code,
            &finish.text,
        );
        self.ended += 1;
    }

    /// Ends a command: in the selected state, polls the folder first and
    /// reports what changed, then writes the tagged response.
    pub(super) fn finish(&mut self, out: &mut Vec<u8>, finish: Finish) {
        match self.poll_call() {
            Some(poll) => {
                self.job = Some(Job::Poll(finish));
                self.request = Some(poll);
            }
            None => {
                self.report(None, &finish, out);
                self.finish_now(out, finish);
            }
        }
    }

    fn poll_call(&self) -> Option<Request> {
        let view = self.view.as_ref()?;
        let folder = view.folder.clone()?;
        Some(Request::Store(StoreCall::Poll {
            folder,
            seen_modseq: view.modseq,
        }))
    }

    /// Writes the untagged updates of the selected folder.
    fn report(&mut self, changes: Option<Changes>, finish: &Finish, out: &mut Vec<u8>) {
        let Some(view) = self.view.as_mut() else {
            return;
        };
        if finish.expunge {
            for number in view.expunge_gone() {
                if let Ok(data) = Data::expunge(number) {
                    reply::data(out, data);
                }
            }
        }
        if view.len() != view.announced {
            view.announced = view.len();
            reply::data(out, Data::Exists(view.announced as u32));
        }
        let mut uids: BTreeSet<u32> = changes.map(|c| c.flags).unwrap_or_default();
        uids.extend(finish.flags_for.iter().copied());
        let mut numbered: Vec<(usize, u32)> = uids
            .into_iter()
            .filter_map(|uid| Some((view.number_of(uid)?, uid)))
            .collect();
        numbered.sort_unstable();
        for (number, _) in numbered {
            if view.gone(number - 1) {
                continue;
            }
            let data =
                super::fetch::flags_update(number, view.uid(number - 1), &view.flags(number - 1));
            reply::data(out, data);
        }
    }

    fn store_answer(&mut self, job: Job, reply: StoreReply, out: &mut Vec<u8>) {
        let step = match (job, reply) {
            (Job::Poll(finish), reply) => {
                let changes = self.refresh(reply);
                self.report(changes, &finish, out);
                self.finish_now(out, finish);
                None
            }
            (Job::IdleStart(tag), reply) => {
                let changes = self.refresh(reply);
                self.report(changes, &Finish::ok(tag.clone(), ""), out);
                self.enter_idle(tag, out);
                None
            }
            (Job::IdleUpdate, reply) => {
                let changes = self.refresh(reply);
                if let Input::Idle(tag) = &self.input {
                    let finish = Finish::ok(tag.clone(), "");
                    self.report(changes, &finish, out);
                }
                None
            }
            (
                Job::Open {
                    tag,
                    name,
                    read_only,
                },
                StoreReply::Opened(state),
            ) => {
                self.opened(tag, name, read_only, state, out);
                None
            }
            (Job::Status { tag, name, items }, StoreReply::Opened(state)) => {
                self.status_answer(tag, &name, &items, state, out);
                None
            }
            (Job::List { tag, pattern, lsub }, StoreReply::FolderNames(tags)) => {
                self.list_answer(tag, &pattern, lsub, tags, out);
                None
            }
            (Job::Fetch(job), reply) => {
                let view = self
                    .view
                    .as_mut()
                    .expect("FETCH runs in the selected state");
                match job.answer(reply, view, out) {
                    Ok(job) => self.fetch_step(job, out),
                    Err(finish) => {
                        self.finish(out, *finish);
                        None
                    }
                }
            }
            (Job::Search(job), reply) => match job.answer(reply, self.view(), out) {
                Ok(job) => self.search_step(job, out),
                Err(finish) => {
                    self.finish(out, *finish);
                    None
                }
            },
            (
                Job::Store {
                    tag,
                    uids,
                    silent,
                    edit,
                },
                StoreReply::Done,
            ) => {
                self.stored(tag, uids, silent, &edit, out);
                None
            }
            (
                Job::Copy(job),
                StoreReply::Copied {
                    uid_validity,
                    uids: target,
                },
            ) => self.copied(job, uid_validity, &target, out),
            (Job::MoveExpunge { tag, copied }, StoreReply::Done) => {
                let mut finish = Finish::ok(tag, "MOVE completed");
                finish.code = copied;
                self.finish(out, finish);
                None
            }
            (Job::Expunge { tag, close: true }, StoreReply::Done) => {
                self.view = None;
                self.finish_now(out, Finish::ok(tag, "CLOSE completed"));
                None
            }
            (Job::Expunge { tag, close: false }, StoreReply::Done) => {
                self.finish(out, Finish::ok(tag, "EXPUNGE completed"));
                None
            }
            (Job::TargetExists { tag, name, then }, StoreReply::FolderNames(names)) => {
                if names.iter().any(|n| n.eq_ignore_ascii_case(&name)) {
                    let (job, call) = *then;
                    self.store_call(job, call)
                } else {
                    let code = Code::TryCreate;
                    self.finish(out, Finish::no(tag, Some(code), "No such mailbox"));
                    None
                }
            }
            (Job::Append { tag }, StoreReply::Appended { uid_validity, uid }) => {
                let mut finish = Finish::ok(tag, "APPEND completed");
                if let (Some(validity), Some(uid)) =
                    (NonZeroU32::new(uid_validity), NonZeroU32::new(uid))
                {
                    finish.code = Some(Code::AppendUid {
                        uid_validity: validity,
                        uid,
                    });
                }
                self.finish(out, finish);
                None
            }
            (Job::FolderChange { tag, missing }, StoreReply::Changed(changed)) => {
                let finish = if changed {
                    Finish::ok(tag, "Done")
                } else {
                    let text = if matches!(&missing, Code::Other(o) if o.inner() == b"ALREADYEXISTS")
                    {
                        "Mailbox exists already"
                    } else {
                        "No such mailbox"
                    };
                    Finish::no(tag, Some(missing), text)
                };
                self.finish(out, finish);
                None
            }
            (job, _) => {
                self.misplaced(job, out);
                None
            }
        };
        if let Some(Step::Request(request)) = step {
            self.request = Some(request);
        }
    }

    fn store_failed(&mut self, job: Job, error: &MailboxError, out: &mut Vec<u8>) {
        let (code, text) = match error {
            MailboxError::Refused(text) => (reply::code("CANNOT"), text.clone()),
            other => (
                reply::code("UNAVAILABLE"),
                format!("The mail store failed: {other}"),
            ),
        };
        let tag = match job {
            Job::Poll(finish) => {
                // The command did its work; only the updates could not be read.
                self.finish_now(out, finish);
                return;
            }
            Job::IdleUpdate => return,
            Job::IdleStart(tag) => {
                self.enter_idle(tag, out);
                return;
            }
            Job::Login { tag, .. }
            | Job::Open { tag, .. }
            | Job::Status { tag, .. }
            | Job::List { tag, .. }
            | Job::Store { tag, .. }
            | Job::Copy(CopyJob { tag, .. })
            | Job::MoveExpunge { tag, .. }
            | Job::Expunge { tag, .. }
            | Job::Append { tag }
            | Job::TargetExists { tag, .. }
            | Job::FolderChange { tag, .. } => tag,
            Job::Fetch(job) => job.tag,
            Job::Search(job) => job.tag,
        };
        self.finish_now(out, Finish::no(tag, Some(code), text));
    }

    fn refresh(&mut self, reply: StoreReply) -> Option<Changes> {
        let view = self.view.as_mut()?;
        match reply {
            StoreReply::Opened(Some(state)) => Some(view.refresh(state)),
            StoreReply::Opened(None) => {
                // The tag's folder was deleted: every message left it.
                let state = FolderState {
                    uid_validity: view.uid_validity,
                    uid_next: view.uid_next,
                    highest_modseq: view.modseq,
                    messages: Vec::new(),
                };
                Some(view.refresh(state))
            }
            _ => None,
        }
    }

    fn fetch_step(&mut self, job: FetchJob, out: &mut Vec<u8>) -> Option<Step> {
        let view = self
            .view
            .as_mut()
            .expect("FETCH runs in the selected state");
        match job.next(view, out) {
            Ok((job, call)) => self.store_call(Job::Fetch(job), call),
            Err(finish) => {
                self.finish(out, *finish);
                self.request.take().map(Step::Request)
            }
        }
    }

    fn search_step(&mut self, job: SearchJob, out: &mut Vec<u8>) -> Option<Step> {
        match job.next(self.view(), out) {
            Ok((job, call)) => self.store_call(Job::Search(job), call),
            Err(finish) => {
                self.finish(out, *finish);
                self.request.take().map(Step::Request)
            }
        }
    }
}

impl Finish {
    /// No EXPUNGE responses: the command is a FETCH, STORE or SEARCH.
    pub(super) fn held(mut self) -> Finish {
        self.expunge = false;
        self
    }
}

fn istring(text: &'static str) -> IString<'static> {
    IString::try_from(text).expect("a valid string")
}

/// The flags an APPEND or STORE gives, without `\Recent`, which only the
/// server sets.
fn to_flags_checked(flags: &[Flag<'_>]) -> Flags {
    view::to_flags(flags)
}

fn system_time(unix: i64) -> SystemTime {
    match u64::try_from(unix) {
        Ok(secs) => UNIX_EPOCH + Duration::from_secs(secs),
        Err(_) => UNIX_EPOCH - Duration::from_secs(unix.unsigned_abs()),
    }
}

/// The tag of a command that did not parse, so its BAD can carry it.
fn leading_tag(bytes: &[u8]) -> Option<Tag<'static>> {
    let end = bytes
        .iter()
        .position(|&b| b == b' ' || b == b'\r' || b == b'\n')?;
    let tag = std::str::from_utf8(&bytes[..end]).ok()?;
    Tag::try_from(tag).ok().map(IntoStatic::into_static)
}
