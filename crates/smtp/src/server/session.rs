//! The SMTP server session core: bytes in, replies and finished messages out.
//!
//! It does no I/O and knows no clock. The shell feeds it whatever bytes arrived with
//! [`Session::advance`]; the session consumes as many as make complete commands (or
//! message content), appends every reply to the output buffer, and says what the shell
//! must do next ([`Step`]). Pipelined commands (RFC 2920) are simply several commands
//! in one input: their replies come out in order, and the shell flushes them whenever
//! it has to wait for more input.
//!
//! The end of DATA is `<CR><LF>.<CR><LF>` and nothing else. A line starts only after
//! `<CR><LF>`, so `<LF>.<LF>`, `<LF>.<CR><LF>`, `<CR><LF>.<LF>`, `<CR>.<CR>`,
//! `<CR>.<CR><LF>` and `<CR><LF>.<CR>` followed by anything but `<LF>` are content:
//! no smuggled second transaction can start inside a message.
//!
//! ```text
//! S: 220 host ESMTP sokkel               (greeting)
//! C: EHLO client.example
//! S: 250-host greets client.example ... 250 CHUNKING
//! C: MAIL FROM:<a@x> / RCPT TO:<b@y> / DATA
//! S: 250 2.1.0 / 250 2.1.5 / 354
//! C: ...content... <CR><LF>.<CR><LF>     -> Step::Deliver; the shell stores the message
//! S: 250 2.0.0 Ok: queued as 42           <- Session::delivered
//! ```
//!
//! STARTTLS (RFC 3207) and AUTH (RFC 4954) are decided here too, but carried out
//! by the shell: [`Step::StartTls`] asks it to discard whatever the client pipelined
//! behind the command and perform the handshake, after which the session starts
//! over ([`Session::tls_started`]); [`Step::Authenticate`] hands it a user name and
//! password to check, and [`Session::authenticated`] takes the verdict.
//!
//! Chaos ([`SessionConfig::chaos`], off by default) is decided here as well: the
//! session asks the shared [`Chaos`] for a draw where a trigger applies (MAIL,
//! RCPT and AUTH that would otherwise succeed get the configured refusal; the
//! greeting, MAIL, RCPT, DATA/BDAT and the end of content may hang up without a
//! reply, which is [`Step::Close`] with nothing written). A draw is no I/O and
//! no clock; the slow link is the shell's.

use std::sync::Arc;

use sokkel_net::chaos::{Chaos, Point, Stage};
use sokkel_net::lines::{Line, LineSplitter};
use sokkel_net::server::output_backed_up;
use sokkel_net::stats::RejectReason;

use super::replies::{AddressKind, Answer, Refusal};
use super::request::{
    self, Command, InitialResponse, MailParam, Mechanism, ParamError, ParseError, Request, Syntax,
};

/// What to do with messages that contain bare line feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BareLf {
    /// Store them, and record that the client sent bare LFs.
    Accept,
    /// Refuse them with 550 5.5.2 and close the connection, so nothing the client
    /// pipelined behind the message is read as a command.
    Reject,
}

/// The session's limits and identity.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The name the server gives in its greeting and EHLO reply.
    pub hostname: String,
    /// The largest message accepted, in bytes (after dot-unstuffing).
    pub max_message_size: usize,
    /// Recipients per message (RFC 5321 requires at least 100).
    pub max_recipients: usize,
    /// The longest command line accepted, CRLF included.
    pub max_line_length: usize,
    /// Protocol errors tolerated before the session is closed with 421.
    pub max_errors: u32,
    /// What to do with bare line feeds in message content.
    pub bare_lf: BareLf,
    /// The shell can perform a TLS handshake: offer STARTTLS.
    pub starttls: bool,
    /// Refuse MAIL with 530 until the session uses TLS.
    pub require_tls: bool,
    /// The shell can check credentials: offer AUTH PLAIN and LOGIN (under TLS only,
    /// unless `allow_insecure_auth`).
    pub auth: bool,
    /// Offer AUTH on connections without TLS as well.
    pub allow_insecure_auth: bool,
    /// Failed AUTH attempts before the session is closed with 421.
    pub max_auth_failures: u32,
    /// Faults to inject on purpose (`--chaos`): refusals at MAIL, RCPT and AUTH,
    /// hanging up at a stage. `None`, the default: none ever.
    pub chaos: Option<Arc<Chaos>>,
    /// The token of the store this server fills, advertised in the EHLO reply
    /// as `XSOKKEL-STORE <token>`: `sokkel mail import` in another process
    /// hands messages over only to a server that names its store's token.
    pub store_token: Option<String>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            hostname: "localhost".into(),
            max_message_size: 32 << 20,
            max_recipients: 1000,
            max_line_length: 2048,
            max_errors: 20,
            bare_lf: BareLf::Accept,
            starttls: false,
            require_tls: false,
            auth: false,
            allow_insecure_auth: false,
            max_auth_failures: 3,
            chaos: None,
            store_token: None,
        }
    }
}

/// A message the client finished sending, ready to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The HELO/EHLO name the client gave.
    pub helo: String,
    /// The reverse-path, without brackets; empty for the null sender `<>`.
    pub mail_from: String,
    /// Every accepted forward-path, in order.
    pub rcpt_to: Vec<String>,
    /// Whether the client asked for SMTPUTF8.
    pub smtputf8: bool,
    /// Whether the content held line feeds not preceded by a carriage return.
    pub bare_lf: bool,
    /// The user the client authenticated as, if it did.
    pub auth_user: Option<String>,
    /// The content, dot-unstuffed (DATA) or with the chunks joined (BDAT).
    pub data: Vec<u8>,
}

/// What the shell must do after [`Session::advance`].
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Flush the replies, then read more input.
    NeedMore,
    /// Store this message, then call [`Session::delivered`]. Input after it stays
    /// unconsumed until then, so replies keep their order.
    Deliver(Received),
    /// Flush the replies, then close the connection; unconsumed input is discarded.
    Close,
    /// Flush the replies (the 220 to STARTTLS), discard every byte of unconsumed
    /// input (a client must not pipeline behind STARTTLS, and what it did pipeline
    /// was sent in clear text: CVE-2011-0411), perform the TLS handshake, then call
    /// [`Session::tls_started`]. If the handshake fails, close the connection.
    StartTls,
    /// Check these credentials (off the async threads: hashes are slow), then call
    /// [`Session::authenticated`]. The password must not be logged.
    Authenticate(Credentials),
    /// Flush the replies (the client must read them), then call
    /// [`Session::advance`] again with the input kept, before reading more: the
    /// unsent replies reached [`sokkel_net::server::PENDING_OUTPUT_LIMIT`], and
    /// pipelined commands (RFC 2920) wait until the client has read what came before.
    Flush,
}

/// A user name and password from AUTH, for the shell to check. Its `Debug` does not
/// show the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name (RFC 4616's authentication identity).
    pub user: String,
    /// The password.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// How storing a message turned out, for [`Session::delivered`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Durably stored under this id.
    Stored(String),
    /// Not stored (disk full, I/O error): the client should try again later.
    Failed,
}

#[derive(Debug)]
enum State {
    /// Reading command lines.
    Command,
    /// Reading DATA content.
    Data(DataScan),
    /// Reading a BDAT chunk of `remaining` more bytes. `refusal` is the reply the
    /// chunk gets when it is read to be thrown away.
    Bdat {
        size: usize,
        remaining: usize,
        last: bool,
        refusal: Option<Refusal>,
    },
    /// A message was handed to the shell; waiting for [`Session::delivered`].
    Delivering,
    /// STARTTLS was accepted; waiting for [`Session::tls_started`]. Input is
    /// discarded meanwhile.
    TlsPending,
    /// AUTH sent a 334 challenge and waits for the client's line.
    AuthResponse(AuthStage),
    /// Credentials were handed to the shell; waiting for [`Session::authenticated`].
    Authenticating(String),
    /// The session is over.
    Closed,
}

/// Which line an AUTH exchange waits for.
#[derive(Debug)]
enum AuthStage {
    /// PLAIN without an initial response: the whole base64 message.
    Plain,
    /// LOGIN: the user name.
    LoginUser,
    /// LOGIN: the password for this user.
    LoginPassword(String),
}

/// Where the DATA scanner stands between two inputs.
#[derive(Debug, Clone, Copy)]
struct DataScan {
    /// The previous content ended with CRLF (or DATA was just accepted).
    line_start: bool,
}

/// Content beyond this size goes into one buffer of [`LARGE_BUFFER`] bytes instead
/// of one that doubles as it grows (past it, it grows by remapping, still a
/// mapping of its own).
const LARGE_CONTENT: usize = 1 << 20;

/// Why large content gets a buffer this big at once: glibc serves an allocation
/// above its largest mmap threshold (32 MiB on 64-bit) from a mapping of its own,
/// which goes back to the system the moment it is freed, and whose untouched pages
/// cost nothing. A buffer doubling through 2, 4, 8, 16 MiB would instead come from
/// the heap (glibc raises its threshold each time such a buffer is freed), where
/// freed holes stay resident: 100 clients holding large messages left the process
/// at their high-water mark long after they left.
const LARGE_BUFFER: usize = 33 << 20;

#[derive(Debug, Default)]
struct Transaction {
    mail_from: String,
    rcpt_to: Vec<String>,
    smtputf8: bool,
    data: Vec<u8>,
    bare_lf: bool,
    /// The last content byte was a CR (a CRLF may straddle two inputs).
    last_cr: bool,
    too_big: bool,
    /// The server's budget for messages in flight could not hold this one: its
    /// content is dropped as it comes and it gets 452 4.3.1 at its end.
    over_budget: bool,
    /// BDAT chunks were sent: DATA is no longer allowed in this transaction.
    chunking: bool,
}

/// One SMTP server session.
#[derive(Debug)]
pub struct Session {
    config: Arc<SessionConfig>,
    state: State,
    /// The HELO/EHLO name, and whether it was EHLO.
    helo: Option<(String, bool)>,
    tx: Option<Transaction>,
    errors: u32,
    /// Splits command lines, skipping overlong ones.
    lines: LineSplitter,
    /// How many message transfers (DATA, or a first BDAT) have begun.
    transfers: u64,
    /// The connection uses TLS (after STARTTLS, or implicitly).
    tls: bool,
    /// The user the client authenticated as.
    auth_user: Option<String>,
    /// Failed AUTH attempts so far.
    auth_failures: u32,
    /// The server's budget for messages in flight is spent: new DATA and BDAT get
    /// 452 4.3.1 (set by the shell with [`Session::set_memory_low`]).
    memory_low: bool,
    /// MAIL, RCPT, DATA and BDAT refused, and messages refused at their end,
    /// by reason ([`RejectReason::ALL`]'s order).
    refusals: [u64; RejectReason::ALL.len()],
}

impl Session {
    /// A new session; send [`Session::greeting`] first.
    pub fn new(config: Arc<SessionConfig>) -> Self {
        Session {
            lines: LineSplitter::new(config.max_line_length),
            transfers: 0,
            config,
            state: State::Command,
            helo: None,
            tx: None,
            errors: 0,
            tls: false,
            auth_user: None,
            auth_failures: 0,
            memory_low: false,
            refusals: [0; RejectReason::ALL.len()],
        }
    }

    /// How many MAIL, RCPT, DATA and BDAT commands this session refused with a
    /// 4xx or 5xx reply, counting messages refused at their end (too big, no
    /// memory, bare LF, not stored): the server's `SMTPRejected` statistic.
    pub fn refusals(&self) -> u64 {
        self.refusals.iter().sum()
    }

    /// [`Session::refusals`] by reason, in [`RejectReason::ALL`]'s order.
    pub fn refusals_by_reason(&self) -> &[u64; RejectReason::ALL.len()] {
        &self.refusals
    }

    /// A session on a connection that is TLS from the start (SMTPS, RFC 8314):
    /// STARTTLS is not offered and AUTH is.
    pub fn new_tls(config: Arc<SessionConfig>) -> Self {
        Session {
            tls: true,
            ..Session::new(config)
        }
    }

    /// The TLS handshake after [`Step::StartTls`] succeeded. The session starts over
    /// as RFC 3207 requires: the client must send EHLO again, and everything it said
    /// before (the EHLO name, a half-built transaction) is forgotten.
    pub fn tls_started(&mut self) {
        self.tls = true;
        self.helo = None;
        self.tx = None;
        self.auth_user = None;
        self.lines.reset();
        self.state = State::Command;
    }

    /// Says whether the credentials from [`Step::Authenticate`] were right, and
    /// appends the reply. Too many failures end the session with 421.
    pub fn authenticated(&mut self, ok: bool, out: &mut Vec<u8>) {
        let user = match std::mem::replace(&mut self.state, State::Command) {
            State::Authenticating(user) => user,
            other => {
                // Not waiting for a verdict: nothing to do.
                self.state = other;
                return;
            }
        };
        if ok {
            self.auth_user = Some(user);
            self.answer(Answer::AuthSucceeded, out);
            return;
        }
        self.auth_failures += 1;
        self.refuse(Refusal::AuthFailed, out);
        if self.auth_failures >= self.config.max_auth_failures {
            self.refuse(Refusal::TooManyAuthFailures, out);
        }
    }

    /// Whether AUTH may be used on this connection now.
    fn auth_offered(&self) -> bool {
        self.config.auth && (self.tls || self.config.allow_insecure_auth)
    }

    /// Appends the 220 greeting; or, when a chaos trigger hangs up on connect,
    /// nothing, and the session is over.
    pub fn greeting(&mut self, out: &mut Vec<u8>) {
        if self.chaos_hangs_up(Stage::Connect) {
            self.state = State::Closed;
            return;
        }
        self.answer(Answer::Greeting, out);
    }

    /// Whether the session is in the middle of message content (the shell applies the
    /// data timeout then, the command timeout otherwise).
    pub fn receiving_content(&self) -> bool {
        matches!(self.state, State::Data(_) | State::Bdat { .. })
    }

    /// Whether a message is on its way: DATA content, or BDAT chunks until LAST
    /// (the shell's deadline for a whole transfer runs meanwhile).
    pub fn transferring(&self) -> bool {
        self.receiving_content() || self.tx.as_ref().is_some_and(|tx| tx.chunking)
    }

    /// How many message transfers have begun (DATA accepted, or the first BDAT
    /// of a message): the shell's deadline for a whole transfer starts over
    /// when this changes, also when the next message follows in the same read.
    pub fn transfers_started(&self) -> u64 {
        self.transfers
    }

    /// How many command lines have ended so far, for the shell's whole-line
    /// deadline ([`sokkel_net::server::UnitDeadline`]).
    pub fn lines_ended(&self) -> u64 {
        self.lines.ended()
    }

    /// Bytes held for the message in progress (what the shell reserves from the
    /// server's budget for messages in flight).
    pub fn content_held(&self) -> usize {
        self.tx.as_ref().map_or(0, Transaction::held)
    }

    /// Tells the session whether the server's budget for messages in flight is
    /// spent: while it is, DATA and BDAT get `452 4.3.1 Insufficient system
    /// storage` (RFC 3463) and the session stays usable.
    pub fn set_memory_low(&mut self, low: bool) {
        self.memory_low = low;
    }

    /// The budget could not cover the message in progress: its content is dropped
    /// (now and as it keeps coming) and it gets 452 4.3.1 at its end.
    pub fn out_of_memory(&mut self) {
        if let Some(tx) = self.tx.as_mut() {
            tx.over_budget = true;
            tx.data = Vec::new();
        }
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Appends the 421 for a client that stayed silent too long, and ends the session.
    pub fn timed_out(&mut self, out: &mut Vec<u8>) {
        self.refuse(Refusal::TimedOut, out);
    }

    /// Appends the 421 for a server that is shutting down, and ends the session.
    pub fn shutting_down(&mut self, out: &mut Vec<u8>) {
        self.refuse(Refusal::ShuttingDown, out);
    }

    /// Consumes as much of `input` as it can, appending replies to `out`. Returns how
    /// many bytes were consumed (the shell keeps the rest for the next call) and what
    /// to do next.
    pub fn advance(&mut self, input: &[u8], out: &mut Vec<u8>) -> (usize, Step) {
        let mut pos = 0;
        loop {
            let rest = &input[pos..];
            match &mut self.state {
                State::Closed => return (input.len(), Step::Close),
                State::Delivering | State::Authenticating(_) => return (pos, Step::NeedMore),
                // Bytes sent between STARTTLS and the handshake are never commands.
                State::TlsPending => return (input.len(), Step::NeedMore),
                State::AuthResponse(_) | State::Command if output_backed_up(out) => {
                    return (pos, Step::Flush);
                }
                State::AuthResponse(_) => match self.lines.next(rest) {
                    Line::Incomplete => return (pos, Step::NeedMore),
                    Line::Overlong { consumed, ended } => {
                        pos += consumed;
                        if ended {
                            self.state = State::Command;
                            self.refuse(Refusal::AuthLineTooLong, out);
                        } else {
                            return (pos, Step::NeedMore);
                        }
                    }
                    Line::Complete { consumed, text, .. } => {
                        pos += consumed;
                        let text = String::from_utf8_lossy(text).into_owned();
                        if let Some(step) = self.auth_response(&text, out) {
                            return (pos, step);
                        }
                    }
                },
                State::Command => match self.lines.next(rest) {
                    Line::Incomplete => return (pos, Step::NeedMore),
                    Line::Overlong { consumed, ended } => {
                        pos += consumed;
                        if ended {
                            self.refuse(Refusal::LineTooLong, out);
                        } else {
                            return (pos, Step::NeedMore);
                        }
                    }
                    Line::Complete {
                        consumed,
                        text,
                        crlf,
                    } => {
                        pos += consumed;
                        if let Some(step) = self.command(text, crlf, out) {
                            return (pos, step);
                        }
                    }
                },
                State::Data(scan) => {
                    let mut scan = *scan;
                    let Some(tx) = self.tx.as_mut() else {
                        self.state = State::Command;
                        continue;
                    };
                    let (consumed, done) = scan.feed(rest, tx, self.config.max_message_size);
                    pos += consumed;
                    if !done {
                        self.state = State::Data(scan);
                        return (pos, Step::NeedMore);
                    }
                    if let Some(step) = self.finish_message(out) {
                        return (pos, step);
                    }
                }
                State::Bdat {
                    size,
                    remaining,
                    last,
                    refusal,
                } => {
                    let take = (*remaining).min(rest.len());
                    *remaining -= take;
                    pos += take;
                    if refusal.is_none()
                        && let Some(tx) = self.tx.as_mut()
                    {
                        tx.push_chunk(&rest[..take], self.config.max_message_size);
                    }
                    if *remaining > 0 {
                        return (pos, Step::NeedMore);
                    }
                    let (size, last, refusal) = (*size, *last, refusal.take());
                    self.state = State::Command;
                    if let Some(refusal) = refusal {
                        if refusal.ends_transaction() {
                            self.tx = None;
                        }
                        self.count_refusal(&refusal);
                        self.refuse(refusal, out);
                    } else if self.tx.as_ref().is_some_and(|tx| tx.over_budget) {
                        if last {
                            self.tx = None;
                        }
                        self.count_refusal(&Refusal::InsufficientStorage);
                        self.refuse(Refusal::InsufficientStorage, out);
                    } else if last {
                        if let Some(step) = self.finish_message(out) {
                            return (pos, step);
                        }
                    } else {
                        let total = self.tx.as_ref().map_or(0, |tx| tx.data.len());
                        self.answer(Answer::ChunkReceived { size, total }, out);
                    }
                }
            }
            if matches!(self.state, State::Closed) {
                return (input.len(), Step::Close);
            }
        }
    }

    /// Says how storing the message from [`Step::Deliver`] went, and appends the
    /// reply the client waits for.
    pub fn delivered(&mut self, outcome: Delivery, out: &mut Vec<u8>) {
        self.tx = None;
        self.state = State::Command;
        match outcome {
            Delivery::Stored(id) => self.answer(Answer::Queued { id }, out),
            Delivery::Failed => {
                self.count_refusal(&Refusal::StoreFailed);
                self.refuse(Refusal::StoreFailed, out);
            }
        }
    }

    /// The client's answer to a 334 challenge.
    fn auth_response(&mut self, line: &str, out: &mut Vec<u8>) -> Option<Step> {
        let State::AuthResponse(stage) = std::mem::replace(&mut self.state, State::Command) else {
            return None;
        };
        if line == "*" {
            self.refuse(Refusal::AuthCancelled, out);
            return None;
        }
        let step = match stage {
            AuthStage::Plain => sokkel_net::auth::decode_sasl_plain(line)
                .map(|(user, password)| self.check(user, password)),
            AuthStage::LoginUser => sokkel_net::auth::decode_sasl_text(line).map(|user| {
                self.state = State::AuthResponse(AuthStage::LoginPassword(user));
                self.answer(Answer::AuthPasswordChallenge, out);
                None
            }),
            AuthStage::LoginPassword(user) => {
                sokkel_net::auth::decode_sasl_text(line).map(|password| self.check(user, password))
            }
        };
        match step {
            Ok(step) => step,
            Err(error) => {
                self.refuse(Refusal::CannotDecode(error.to_string()), out);
                None
            }
        }
    }

    /// Hands credentials to the shell.
    fn check(&mut self, user: String, password: String) -> Option<Step> {
        self.state = State::Authenticating(user.clone());
        Some(Step::Authenticate(Credentials { user, password }))
    }

    /// Appends an answer.
    fn answer(&self, answer: Answer, out: &mut Vec<u8>) {
        answer.reply(&self.config).write_to(out);
    }

    /// Counts a refused transaction command or message under its reason.
    fn count_refusal(&mut self, refusal: &Refusal) {
        if let Some(reason) = refusal.reason() {
            self.refusals[reason.index()] += 1;
        }
    }

    /// Appends a refusal, closing the session after a 421 and counting protocol
    /// errors; past their limit, adds a 421 and closes.
    fn refuse(&mut self, refusal: Refusal, out: &mut Vec<u8>) {
        refusal.reply(&self.config).write_to(out);
        if refusal.closes_session() {
            self.state = State::Closed;
        } else if refusal.is_protocol_error() {
            self.errors += 1;
            if self.errors >= self.config.max_errors {
                Refusal::TooManyErrors.reply(&self.config).write_to(out);
                self.state = State::Closed;
            }
        }
    }

    /// Handles one complete command line. Returns a step when the shell must act.
    fn command(&mut self, line: &[u8], crlf: bool, out: &mut Vec<u8>) -> Option<Step> {
        let request = match request::parse(line, crlf) {
            Ok(request) => request,
            Err(error) => {
                let refusal = self.syntax_refusal(error);
                if error.command.is_some_and(Command::is_transaction) {
                    self.count_refusal(&refusal);
                }
                self.refuse(refusal, out);
                return None;
            }
        };
        if let Some(stage) = hang_up_stage(&request)
            && self.chaos_hangs_up(stage)
        {
            self.state = State::Closed;
            return Some(Step::Close);
        }
        let transaction = request.command().is_some_and(Command::is_transaction);
        let result = match request {
            Request::Helo { name, extended } => Ok(self.hello(name, extended)),
            Request::Mail { path, params } => self.mail(path, &params),
            Request::Rcpt { path, params } => self.rcpt(path, &params),
            Request::Data => self.data(),
            Request::Bdat { size, last } => {
                self.bdat(size, last);
                // The reply comes once the chunk is read. BDAT 0 has nothing to read.
                if let State::Bdat { remaining: 0, .. } = self.state {
                    let (_, step) = self.advance(&[], out);
                    if step != Step::NeedMore {
                        return Some(step);
                    }
                }
                return None;
            }
            Request::StartTls => return self.starttls(out),
            Request::Auth { mechanism, initial } => return self.auth(mechanism, initial, out),
            Request::Rset => {
                self.tx = None;
                Ok(Answer::Ok)
            }
            Request::Noop => Ok(Answer::Ok),
            Request::Quit => {
                self.answer(Answer::Bye, out);
                self.state = State::Closed;
                return Some(Step::Close);
            }
            Request::Vrfy => Ok(Answer::CannotVerify),
            Request::Help => Ok(Answer::Help),
            Request::Unsupported(verb) => Err(Refusal::NotImplemented(verb)),
        };
        match result {
            Ok(answer) => self.answer(answer, out),
            Err(refusal) => {
                if transaction {
                    self.count_refusal(&refusal);
                }
                self.refuse(refusal, out);
            }
        }
        None
    }

    /// Draws for the chaos trigger at `point`: its refusal, if it fires.
    fn chaos_refusal(&self, point: Point) -> Result<(), Refusal> {
        match self
            .config
            .chaos
            .as_ref()
            .and_then(|chaos| chaos.refusal(point))
        {
            Some(code) => Err(Refusal::Chaos { point, code }),
            None => Ok(()),
        }
    }

    /// Draws for the chaos trigger that hangs up at `stage`.
    fn chaos_hangs_up(&self, stage: Stage) -> bool {
        self.config
            .chaos
            .as_ref()
            .is_some_and(|chaos| chaos.disconnect(stage))
    }

    /// The refusal for a line that did not parse. For some commands "not now"
    /// comes before "bad syntax": a client that may not send MAIL yet hears that,
    /// whatever it wrote after MAIL.
    fn syntax_refusal(&self, error: ParseError) -> Refusal {
        if let Some(not_now) = error.command.and_then(|command| self.not_now(command)) {
            return not_now;
        }
        match error.syntax {
            Syntax::BareLf => Refusal::BareLfCommand,
            Syntax::NotUtf8 => Refusal::NotUtf8,
            Syntax::Empty => Refusal::EmptyCommand,
            Syntax::Unrecognized => Refusal::Unrecognized,
            Syntax::Helo => Refusal::HeloSyntax {
                extended: error.command == Some(Command::Ehlo),
            },
            Syntax::Mail => Refusal::MailSyntax,
            Syntax::Rcpt => Refusal::RcptSyntax,
            Syntax::Data => Refusal::DataSyntax,
            Syntax::Bdat => Refusal::BdatSyntax,
            Syntax::Rset => Refusal::RsetSyntax,
            Syntax::Vrfy => Refusal::VrfySyntax,
            Syntax::StartTls => Refusal::StartTlsSyntax,
            Syntax::Auth => Refusal::AuthSyntax,
        }
    }

    /// Why `command` may not be used in this state, for the commands whose
    /// state is checked before their arguments.
    fn not_now(&self, command: Command) -> Option<Refusal> {
        match command {
            Command::Mail => {
                if self.helo.is_none() {
                    Some(Refusal::NeedHelo)
                } else if self.tx.is_some() {
                    Some(Refusal::NestedMail)
                } else if self.config.require_tls && !self.tls {
                    Some(Refusal::MustStartTls)
                } else {
                    None
                }
            }
            Command::Rcpt if self.tx.is_none() => Some(Refusal::NeedMailBeforeRcpt),
            Command::StartTls if !self.config.starttls => Some(Refusal::StartTlsNotEnabled),
            Command::StartTls if self.tls => Some(Refusal::TlsActive),
            Command::Auth => {
                if !self.config.auth {
                    Some(Refusal::AuthNotEnabled)
                } else if !self.auth_offered() {
                    Some(Refusal::EncryptionRequired)
                } else if !matches!(self.helo, Some((_, true))) {
                    Some(Refusal::NeedEhlo)
                } else if self.auth_user.is_some() {
                    Some(Refusal::AlreadyAuthenticated)
                } else if self.tx.is_some() {
                    Some(Refusal::AuthInTransaction)
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    /// AUTH mechanism [initial-response] (RFC 4954).
    fn auth(
        &mut self,
        mechanism: Mechanism<'_>,
        initial: Option<InitialResponse<'_>>,
        out: &mut Vec<u8>,
    ) -> Option<Step> {
        if let Some(refusal) = self.not_now(Command::Auth) {
            self.refuse(refusal, out);
            return None;
        }
        let (stage, challenge) = match mechanism {
            Mechanism::Plain => (AuthStage::Plain, Answer::AuthPlainChallenge),
            Mechanism::Login => (AuthStage::LoginUser, Answer::AuthUserChallenge),
            Mechanism::Other(_) => {
                self.refuse(Refusal::UnknownMechanism, out);
                return None;
            }
        };
        if let Err(refusal) = self.chaos_refusal(Point::Authentication) {
            self.refuse(refusal, out);
            return None;
        }
        match initial {
            None => {
                self.state = State::AuthResponse(stage);
                self.answer(challenge, out);
                None
            }
            Some(InitialResponse::Cancel) => {
                self.refuse(Refusal::AuthCancelled, out);
                None
            }
            Some(InitialResponse::Text(text)) => {
                self.state = State::AuthResponse(stage);
                self.auth_response(text, out)
            }
        }
    }

    /// STARTTLS (RFC 3207).
    fn starttls(&mut self, out: &mut Vec<u8>) -> Option<Step> {
        if let Some(refusal) = self.not_now(Command::StartTls) {
            self.refuse(refusal, out);
            return None;
        }
        self.answer(Answer::ReadyForTls, out);
        self.state = State::TlsPending;
        Some(Step::StartTls)
    }

    fn hello(&mut self, name: &str, extended: bool) -> Answer {
        // EHLO in the middle of a transaction starts over (RFC 5321 section 4.1.4).
        self.tx = None;
        self.helo = Some((name.to_owned(), extended));
        let client = name.to_owned();
        if !extended {
            return Answer::Helo { client };
        }
        Answer::Ehlo {
            client,
            starttls: self.config.starttls && !self.tls,
            auth: self.auth_offered() && self.auth_user.is_none(),
        }
    }

    fn mail(
        &mut self,
        path: &str,
        params: &[Result<MailParam, ParamError<'_>>],
    ) -> Result<Answer, Refusal> {
        if let Some(refusal) = self.not_now(Command::Mail) {
            return Err(refusal);
        }
        let extended = matches!(self.helo, Some((_, true)));
        let mut smtputf8 = false;
        for param in params {
            if !extended {
                return Err(Refusal::ParametersNeedEhlo);
            }
            match param {
                Ok(MailParam::Size(size)) if *size > self.config.max_message_size as u64 => {
                    return Err(Refusal::SizeExceeded);
                }
                Ok(MailParam::Size(_) | MailParam::Body) => {}
                Ok(MailParam::SmtpUtf8) => smtputf8 = true,
                Err(ParamError::Size) => return Err(Refusal::SizeSyntax),
                Err(ParamError::Body) => return Err(Refusal::BodySyntax),
                Err(ParamError::Unknown(name)) => {
                    return Err(Refusal::UnsupportedParameter((*name).to_owned()));
                }
            }
        }
        let address = check_address(path, smtputf8, AddressKind::Sender)?;
        self.chaos_refusal(Point::Sender)?;
        self.tx = Some(Transaction {
            mail_from: address,
            smtputf8,
            ..Transaction::default()
        });
        Ok(Answer::SenderOk)
    }

    fn rcpt(&mut self, path: &str, params: &[&str]) -> Result<Answer, Refusal> {
        let max = self.config.max_recipients;
        let tx = self.tx.as_ref().ok_or(Refusal::NeedMailBeforeRcpt)?;
        if let Some(name) = params.first() {
            return Err(Refusal::UnsupportedParameter((*name).to_owned()));
        }
        if tx.rcpt_to.len() >= max {
            return Err(Refusal::TooManyRecipients);
        }
        let address = check_address(path, tx.smtputf8, AddressKind::Recipient)?;
        self.chaos_refusal(Point::Recipient)?;
        if let Some(tx) = self.tx.as_mut() {
            tx.rcpt_to.push(address);
        }
        Ok(Answer::RecipientOk)
    }

    fn data(&mut self) -> Result<Answer, Refusal> {
        match &self.tx {
            None => Err(Refusal::NeedMail),
            Some(tx) if tx.rcpt_to.is_empty() => Err(Refusal::NeedRcpt),
            Some(tx) if tx.chunking => Err(Refusal::DataAfterBdat),
            Some(_) if self.memory_low => Err(Refusal::InsufficientStorage),
            Some(_) => {
                self.transfers += 1;
                self.state = State::Data(DataScan { line_start: true });
                Ok(Answer::StartData)
            }
        }
    }

    /// Starts reading a chunk; its reply comes once it has been read.
    fn bdat(&mut self, size: usize, last: bool) {
        // The chunk's bytes follow whatever we answer: read them all before replying.
        let max = self.config.max_message_size;
        let refusal = match &mut self.tx {
            _ if self.helo.is_none() => Some(Refusal::NeedEhlo),
            None => Some(Refusal::NeedMail),
            Some(tx) if tx.rcpt_to.is_empty() => Some(Refusal::NeedRcpt),
            Some(tx) if tx.data.len().saturating_add(size) > max => Some(Refusal::MessageTooBig),
            // A chunk of a message dropped for want of memory is read, dropped and
            // refused with 452 4.3.1. RFC 3030: after a 4xx to a chunk the client
            // sends no more of them; if it does, they are dropped the same way, so
            // no message is stored with a hole.
            Some(tx) if tx.over_budget => None,
            Some(tx) if self.memory_low && !tx.chunking => {
                self.transfers += 1;
                tx.chunking = true;
                tx.over_budget = true;
                tx.data = Vec::new();
                None
            }
            Some(tx) => {
                if !tx.chunking {
                    self.transfers += 1;
                }
                tx.chunking = true;
                None
            }
        };
        self.state = State::Bdat {
            size,
            remaining: size,
            last,
            refusal,
        };
    }

    /// Ends a message (the final dot, or the last BDAT chunk).
    fn finish_message(&mut self, out: &mut Vec<u8>) -> Option<Step> {
        let tx = self.tx.take()?;
        self.state = State::Command;
        if tx.over_budget {
            self.count_refusal(&Refusal::InsufficientStorage);
            self.refuse(Refusal::InsufficientStorage, out);
            return None;
        }
        if tx.too_big {
            self.count_refusal(&Refusal::MessageTooBig);
            self.refuse(Refusal::MessageTooBig, out);
            return None;
        }
        if tx.bare_lf && self.config.bare_lf == BareLf::Reject {
            self.count_refusal(&Refusal::BareLfContent);
            self.refuse(Refusal::BareLfContent, out);
            self.state = State::Closed;
            return Some(Step::Close);
        }
        if self.chaos_hangs_up(Stage::Content) {
            // The message is dropped unanswered, as when a link fails after the dot.
            self.state = State::Closed;
            return Some(Step::Close);
        }
        self.state = State::Delivering;
        let helo = self
            .helo
            .as_ref()
            .map(|(name, _)| name.clone())
            .unwrap_or_default();
        Some(Step::Deliver(Received {
            helo,
            mail_from: tx.mail_from,
            rcpt_to: tx.rcpt_to,
            smtputf8: tx.smtputf8,
            bare_lf: tx.bare_lf,
            auth_user: self.auth_user.clone(),
            data: tx.data,
        }))
    }
}

impl Transaction {
    /// Adds content, minding the size limit and noting bare line feeds.
    fn push(&mut self, bytes: &[u8], max: usize) {
        if bytes.is_empty() {
            return;
        }
        let mut prev_cr = self.last_cr;
        for at in memchr::memchr_iter(b'\n', bytes) {
            let cr = if at == 0 {
                prev_cr
            } else {
                bytes[at - 1] == b'\r'
            };
            if !cr {
                self.bare_lf = true;
                break;
            }
        }
        prev_cr = bytes[bytes.len() - 1] == b'\r';
        self.last_cr = prev_cr;
        if self.over_budget {
            return;
        }
        let len = self.data.len() + bytes.len();
        if self.too_big || len > max {
            self.too_big = true;
            self.data = Vec::new();
            return;
        }
        if len > LARGE_CONTENT && self.data.capacity() < LARGE_BUFFER {
            self.data.reserve_exact(LARGE_BUFFER - self.data.len());
        }
        self.data.extend_from_slice(bytes);
    }

    /// A BDAT chunk: its size was checked before it was read.
    fn push_chunk(&mut self, bytes: &[u8], max: usize) {
        self.push(bytes, max);
    }

    /// The bytes this transaction's content holds in memory: its buffer, or for a
    /// large one (see [`LARGE_BUFFER`]) the pages written so far.
    fn held(&self) -> usize {
        if self.data.capacity() >= LARGE_BUFFER {
            self.data.len()
        } else {
            self.data.capacity()
        }
    }
}

impl DataScan {
    /// Reads DATA content from `input` into `tx`. Returns the bytes consumed and
    /// whether the end-of-data line was reached. Bytes that cannot be judged yet (a
    /// `.` or `.<CR>` at the start of a line, at the end of the input) stay unconsumed.
    fn feed(&mut self, input: &[u8], tx: &mut Transaction, max: usize) -> (usize, bool) {
        let mut pos = 0;
        while pos < input.len() {
            if self.line_start {
                if input[pos] == b'.' {
                    match (input.get(pos + 1), input.get(pos + 2)) {
                        (None, _) | (Some(b'\r'), None) => return (pos, false),
                        (Some(b'\r'), Some(b'\n')) => return (pos + 3, true),
                        // Dot-stuffing (RFC 5321 section 4.5.2): drop the first dot.
                        _ => pos += 1,
                    }
                }
                self.line_start = false;
                continue;
            }
            let rest = &input[pos..];
            match memchr::memchr(b'\n', rest) {
                Some(at) => {
                    let crlf = if at == 0 {
                        tx.last_cr
                    } else {
                        rest[at - 1] == b'\r'
                    };
                    tx.push(&rest[..=at], max);
                    self.line_start = crlf;
                    pos += at + 1;
                }
                None => {
                    tx.push(rest, max);
                    pos = input.len();
                }
            }
        }
        (pos, false)
    }
}

/// Where a chaos trigger may hang up instead of answering this request: DATA
/// and every BDAT count as the DATA stage.
fn hang_up_stage(request: &Request<'_>) -> Option<Stage> {
    match request {
        Request::Mail { .. } => Some(Stage::Mail),
        Request::Rcpt { .. } => Some(Stage::Rcpt),
        Request::Data | Request::Bdat { .. } => Some(Stage::Data),
        _ => None,
    }
}

/// Checks a path's syntax (RFC 5321 section 4.1.2, loosely where clients are known to
/// stray, strictly where it matters) and returns the mailbox to record.
fn check_address(path: &str, smtputf8: bool, kind: AddressKind) -> Result<String, Refusal> {
    let bad = |why: &'static str| Refusal::BadAddress { kind, why };
    // A source route (@a,@b:user@c) must be accepted and ignored (RFC 5321 C.).
    let mailbox = match path.strip_prefix('@') {
        Some(route) => route
            .split_once(':')
            .map(|(_, mailbox)| mailbox)
            .ok_or_else(|| bad("broken source route"))?,
        None => path,
    };
    if mailbox.is_empty() {
        return match kind {
            AddressKind::Sender => Ok(String::new()),
            AddressKind::Recipient => Err(bad("empty address")),
        };
    }
    if kind == AddressKind::Recipient && mailbox.eq_ignore_ascii_case("postmaster") {
        return Ok(mailbox.to_owned());
    }
    if !mailbox.is_ascii() && !smtputf8 {
        return Err(Refusal::NonAsciiAddress(kind));
    }
    let Some((local, domain)) = mailbox.rsplit_once('@') else {
        return Err(bad("missing @domain"));
    };
    if local.is_empty() || domain.is_empty() {
        return Err(bad("empty local part or domain"));
    }
    let local_ok = if local.starts_with('"') {
        local.len() >= 2 && local.ends_with('"') && !local.chars().any(|c| c.is_control())
    } else {
        !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| !c.is_control() && !c.is_whitespace() && !"()<>[]\\,;:@\"".contains(c))
    };
    if !local_ok {
        return Err(bad("invalid local part"));
    }
    let domain_ok = if let Some(literal) = domain.strip_prefix('[') {
        literal.ends_with(']') && !literal.contains(char::is_whitespace)
    } else {
        domain.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
    };
    if !domain_ok {
        return Err(bad("invalid domain"));
    }
    Ok(mailbox.to_owned())
}

#[cfg(test)]
mod tests;
