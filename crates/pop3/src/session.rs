//! The POP3 session core: bytes in, responses and requests for the shell out.
//!
//! It does no I/O and knows no clock, no store and no password file. The shell feeds
//! it whatever bytes arrived with [`Session::advance`]; the session consumes every
//! complete command line, appends each response to the output buffer, and stops when
//! the shell has to act ([`Step`]): check a login, fetch a message, start TLS, apply
//! deletions. The shell then reports back ([`Session::logged_in`],
//! [`Session::transfer`], ...) and calls `advance` again with the input it kept, so
//! pipelined commands (RFC 2449) get their responses in order.
//!
//! ```text
//! S: +OK sokkel POP3 ready on host              AUTHORIZATION
//! C: USER morty / PASS secret                    -> Step::Login; the shell checks it
//! S: +OK morty has 2 messages (320 octets)       <- Session::logged_in  TRANSACTION
//! C: RETR 1                                      -> Step::Retrieve; the shell reads it
//! S: +OK 120 octets / ...dot-stuffed... / .       <- Session::transfer
//! C: DELE 1 / QUIT                               -> Step::Update; the shell deletes
//! S: +OK sokkel POP3 signing off (1 deleted)     <- Session::updated        UPDATE
//! ```
//!
//! Deletions happen only in the UPDATE state after QUIT: a dropped connection, a
//! timeout or a shutdown deletes nothing (RFC 1939 section 6).

use std::fmt;
use std::sync::Arc;

use sokkel_message::MessageId;
use sokkel_net::auth::decode_sasl_plain;
use sokkel_net::lines::{Line, LineSplitter};
use sokkel_net::server::output_backed_up;

use crate::body::{DotStuffed, top_length};

/// The session's limits and what the server offers.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The name the server gives in its greeting.
    pub hostname: String,
    /// The longest command line accepted, CRLF included. RFC 2449 allows 255 octets;
    /// more leaves room for AUTH PLAIN with long names and passwords.
    pub max_line_length: usize,
    /// Failed logins before the session is closed.
    pub max_auth_failures: u32,
    /// Unknown or malformed commands before the session is closed.
    pub max_errors: u32,
    /// The server has a certificate, so STLS is offered before TLS.
    pub tls_available: bool,
    /// Allow USER/PASS and AUTH PLAIN in plain text from peers that are not on
    /// loopback. Loopback and TLS sessions may always log in.
    pub allow_insecure_auth: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            hostname: "localhost".into(),
            max_line_length: 1024,
            max_auth_failures: 3,
            max_errors: 20,
            tls_available: false,
            allow_insecure_auth: false,
        }
    }
}

/// What the shell knows about the connection when the session starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// The connection is already under TLS (the implicit-TLS port).
    pub tls: bool,
    /// The client connects from a loopback address.
    pub loopback: bool,
}

/// A login to check: the user name and the password, from USER/PASS or AUTH PLAIN.
#[derive(Clone, PartialEq, Eq)]
pub struct Login {
    /// The user name as the client sent it.
    pub user: String,
    /// The password. Never logged: `Debug` leaves it out.
    pub password: String,
}

impl fmt::Debug for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Login")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A message the client asked for with RETR or TOP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retrieve {
    /// The message's number in this session.
    pub number: usize,
    /// The store's id of the message.
    pub id: MessageId,
    /// `Some(n)` for TOP: the headers and `n` body lines. `None` for RETR.
    pub top_lines: Option<u64>,
}

/// What the shell must do after [`Session::advance`].
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Flush the responses, then read more input.
    NeedMore,
    /// Check this login and open the maildrop, then call [`Session::logged_in`],
    /// [`Session::login_failed`] or [`Session::maildrop_unavailable`].
    Login(Login),
    /// Read this message from the store, then call [`Session::transfer`].
    Retrieve(Retrieve),
    /// Flush the responses, then start TLS and call [`Session::tls_started`]. Input
    /// the client pipelined after STLS was consumed and must not be used.
    StartTls,
    /// Delete these messages (the client said QUIT), then call [`Session::updated`].
    Update(Vec<MessageId>),
    /// Flush the responses, then close the connection.
    Close,
    /// Flush the responses (the client must read them), then call
    /// [`Session::advance`] again with the input kept, before reading more: the
    /// unsent output reached [`sokkel_net::server::PENDING_OUTPUT_LIMIT`], and
    /// pipelined commands wait until the client has read what came before.
    Flush,
}

#[derive(Debug)]
enum State {
    /// Not logged in; `user` is the name from USER, waiting for PASS.
    Authorization { user: Option<String> },
    /// AUTH PLAIN sent `+ `; the next line is the client's response.
    AuthPlainResponse,
    /// [`Step::Login`] is with the shell.
    Authenticating,
    /// Logged in. `pending` is the RETR or TOP that is with the shell.
    Transaction {
        maildrop: Maildrop,
        pending: Option<Retrieve>,
    },
    /// [`Step::Update`] is with the shell.
    Updating,
    /// The session is over.
    Closed,
}

#[derive(Debug)]
struct Entry {
    id: MessageId,
    size: u64,
    deleted: bool,
}

/// The messages of one login, numbered from 1 in the order the store gave them.
#[derive(Debug)]
struct Maildrop {
    messages: Vec<Entry>,
}

impl Maildrop {
    /// The messages not marked deleted, with their numbers.
    fn live(&self) -> impl Iterator<Item = (usize, &Entry)> {
        (1..)
            .zip(&self.messages)
            .filter(|(_, entry)| !entry.deleted)
    }

    /// How many messages are not marked deleted, and their size in all.
    fn stat(&self) -> (usize, u64) {
        self.live().fold((0, 0), |(count, octets), (_, entry)| {
            (count + 1, octets + entry.size)
        })
    }

    /// The message a command argument names, or the error response text.
    fn get_mut(&mut self, arg: &str) -> Result<(usize, &mut Entry), String> {
        let number = parse_number(arg).ok_or_else(|| format!("invalid message number {arg:?}"))?;
        match number.checked_sub(1).and_then(|i| self.messages.get_mut(i)) {
            Some(entry) if entry.deleted => Err(format!("message {number} already deleted")),
            Some(entry) => Ok((number, entry)),
            None => Err(format!("no such message {number}")),
        }
    }
}

/// One POP3 server session.
#[derive(Debug)]
pub struct Session {
    config: Arc<SessionConfig>,
    state: State,
    tls: bool,
    loopback: bool,
    /// The user of the login the shell is checking, or who logged in.
    user: Option<String>,
    auth_failures: u32,
    errors: u32,
    /// Splits command lines, skipping overlong ones.
    lines: LineSplitter,
}

/// What one command line asks of the shell, if anything.
type Outcome = Option<Step>;

const CAPABILITIES_BEFORE_LOGIN_ONLY: [&str; 2] = ["USER", "SASL PLAIN"];

impl Session {
    /// A new session; send [`Session::greeting`] first.
    pub fn new(config: Arc<SessionConfig>, peer: Peer) -> Self {
        Session {
            lines: LineSplitter::new(config.max_line_length),
            config,
            state: State::Authorization { user: None },
            tls: peer.tls,
            loopback: peer.loopback,
            user: None,
            auth_failures: 0,
            errors: 0,
        }
    }

    /// Appends the greeting. It carries no `<...>` timestamp: RFC 1939 section 7
    /// makes that the sign of APOP support, and clients such as s-nail then insist
    /// on APOP, which sokkel does not offer.
    pub fn greeting(&self, out: &mut Vec<u8>) {
        ok(
            out,
            &format!("sokkel POP3 ready on {}", self.config.hostname),
        );
    }

    /// The user who logged in (or whose login the shell is checking).
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// How many command lines have ended so far, for the shell's whole-line
    /// deadline ([`sokkel_net::server::UnitDeadline`]).
    pub fn lines_ended(&self) -> u64 {
        self.lines.ended()
    }

    /// Appends the response for a client that stayed silent too long, and ends the
    /// session without deleting anything (RFC 1939 section 3, autologout timer).
    pub fn timed_out(&mut self, out: &mut Vec<u8>) {
        err(out, "autologout: idle for too long, nothing deleted");
        self.state = State::Closed;
    }

    /// Appends the response for a server that is shutting down, and ends the session
    /// without deleting anything.
    pub fn shutting_down(&mut self, out: &mut Vec<u8>) {
        err(out, "[SYS/TEMP] server shutting down, nothing deleted");
        self.state = State::Closed;
    }

    /// Consumes as much of `input` as it can, appending responses to `out`. Returns
    /// how many bytes were consumed (the shell keeps the rest for the next call) and
    /// what to do next.
    pub fn advance(&mut self, input: &[u8], out: &mut Vec<u8>) -> (usize, Step) {
        let mut pos = 0;
        loop {
            match self.state {
                State::Closed => return (input.len(), Step::Close),
                State::Authenticating
                | State::Updating
                | State::Transaction {
                    pending: Some(_), ..
                } => return (pos, Step::NeedMore),
                _ => {}
            }
            if output_backed_up(out) {
                return (pos, Step::Flush);
            }
            match self.lines.next(&input[pos..]) {
                Line::Incomplete => return (pos, Step::NeedMore),
                Line::Overlong { consumed, ended } => {
                    pos += consumed;
                    if !ended {
                        return (pos, Step::NeedMore);
                    }
                    let max = self.config.max_line_length;
                    self.error(out, &format!("line too long (max {max} octets)"));
                }
                Line::Complete { consumed, text, .. } => {
                    pos += consumed;
                    match self.line(text, out) {
                        // Whatever the client pipelined after STLS is discarded, so
                        // nothing sent in clear text runs inside the TLS session.
                        Some(Step::StartTls) => return (input.len(), Step::StartTls),
                        Some(step) => return (pos, step),
                        None => {}
                    }
                }
            }
        }
    }

    /// The login from [`Step::Login`] was right, and this is its maildrop: the
    /// messages it sees, oldest first, with their sizes. Enters TRANSACTION.
    pub fn logged_in(&mut self, maildrop: Vec<(MessageId, u64)>, out: &mut Vec<u8>) {
        let maildrop = Maildrop {
            messages: maildrop
                .into_iter()
                .map(|(id, size)| Entry {
                    id,
                    size,
                    deleted: false,
                })
                .collect(),
        };
        let (count, octets) = maildrop.stat();
        let user = self.user.as_deref().unwrap_or_default();
        ok(
            out,
            &format!("{user} has {count} {} ({octets} octets)", plural(count)),
        );
        self.state = State::Transaction {
            maildrop,
            pending: None,
        };
    }

    /// The login from [`Step::Login`] was wrong. The shell calls this after its
    /// failed-login delay. Too many failures end the session.
    pub fn login_failed(&mut self, out: &mut Vec<u8>) {
        self.user = None;
        self.auth_failures += 1;
        if self.auth_failures >= self.config.max_auth_failures {
            err(
                out,
                "[AUTH] invalid user name or password; too many failures, closing",
            );
            self.state = State::Closed;
        } else {
            err(out, "[AUTH] invalid user name or password");
            self.state = State::Authorization { user: None };
        }
    }

    /// The login was right but its maildrop could not be read (the store failed).
    /// The client may try again.
    pub fn maildrop_unavailable(&mut self, out: &mut Vec<u8>) {
        self.user = None;
        err(out, "[SYS/TEMP] cannot open the maildrop; try again later");
        self.state = State::Authorization { user: None };
    }

    /// The message from [`Step::Retrieve`], or `None` if another reader deleted it
    /// since the maildrop was opened. Appends the status line; for a message that is
    /// there, returns the body, which the shell writes with
    /// [`DotStuffed::write_next`] after flushing `out`.
    pub fn transfer<'a>(
        &mut self,
        message: Option<&'a [u8]>,
        out: &mut Vec<u8>,
    ) -> Option<DotStuffed<'a>> {
        let State::Transaction { pending, .. } = &mut self.state else {
            return None;
        };
        let retrieve = pending.take()?;
        let Some(message) = message else {
            err(
                out,
                &format!(
                    "message {} is gone: another reader deleted it",
                    retrieve.number
                ),
            );
            return None;
        };
        match retrieve.top_lines {
            None => {
                ok(out, &format!("{} octets", message.len()));
                Some(DotStuffed::new(message))
            }
            Some(lines) => {
                ok(out, "top of message follows");
                Some(DotStuffed::new(&message[..top_length(message, lines)]))
            }
        }
    }

    /// The store failed to read the message from [`Step::Retrieve`]. The client may
    /// try again.
    pub fn transfer_failed(&mut self, out: &mut Vec<u8>) {
        if let State::Transaction { pending, .. } = &mut self.state
            && let Some(retrieve) = pending.take()
        {
            err(
                out,
                &format!(
                    "[SYS/TEMP] cannot read message {}; try again later",
                    retrieve.number
                ),
            );
        }
    }

    /// How the deletions from [`Step::Update`] went: `Ok` with how many messages
    /// were deleted, or `Err` if the store failed. Appends the goodbye and ends the
    /// session.
    pub fn updated(&mut self, deleted: Result<u64, ()>, out: &mut Vec<u8>) {
        match deleted {
            Ok(count) => ok(
                out,
                &format!(
                    "sokkel POP3 signing off ({count} {} deleted)",
                    plural(count)
                ),
            ),
            Err(()) => err(
                out,
                "[SYS/TEMP] some deleted messages were not removed; try again",
            ),
        }
        self.state = State::Closed;
    }

    /// TLS is up after [`Step::StartTls`]. The session is back at the start of
    /// AUTHORIZATION (RFC 2595 section 4): the client should ask CAPA again.
    pub fn tls_started(&mut self) {
        self.tls = true;
        self.user = None;
        self.state = State::Authorization { user: None };
    }

    /// Handles one complete line.
    fn line(&mut self, line: &[u8], out: &mut Vec<u8>) -> Outcome {
        let Ok(line) = std::str::from_utf8(line) else {
            self.error(out, "commands must be UTF-8");
            return None;
        };
        if matches!(self.state, State::AuthPlainResponse) {
            self.state = State::Authorization { user: None };
            return self.sasl_plain_response(line, out);
        }
        let (keyword, arg) = match line.split_once(' ') {
            Some((keyword, arg)) => (keyword.to_ascii_uppercase(), arg),
            None => (line.to_ascii_uppercase(), ""),
        };
        match keyword.as_str() {
            "CAPA" => self.capa(out),
            "QUIT" => return self.quit(out),
            "" => self.error(out, "empty command"),
            _ => match self.state {
                State::Authorization { .. } => return self.authorization(&keyword, arg, out),
                State::Transaction { .. } => return self.transaction(&keyword, arg, out),
                _ => self.error(out, "command not valid now"),
            },
        }
        None
    }

    fn capa(&mut self, out: &mut Vec<u8>) {
        let before_login = matches!(self.state, State::Authorization { .. });
        ok(out, "capability list follows");
        let mut lines = vec!["TOP", "UIDL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE"];
        if before_login && self.login_allowed() {
            lines.extend(CAPABILITIES_BEFORE_LOGIN_ONLY);
        }
        if before_login && self.config.tls_available && !self.tls {
            lines.push("STLS");
        }
        lines.push("IMPLEMENTATION sokkel");
        for line in lines {
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
    }

    fn quit(&mut self, out: &mut Vec<u8>) -> Outcome {
        match std::mem::replace(&mut self.state, State::Closed) {
            State::Transaction { maildrop, .. } => {
                let doomed: Vec<MessageId> = maildrop
                    .messages
                    .iter()
                    .filter(|entry| entry.deleted)
                    .map(|entry| entry.id)
                    .collect();
                if doomed.is_empty() {
                    self.updated(Ok(0), out);
                    Some(Step::Close)
                } else {
                    self.state = State::Updating;
                    Some(Step::Update(doomed))
                }
            }
            _ => {
                ok(out, "sokkel POP3 signing off");
                Some(Step::Close)
            }
        }
    }

    fn authorization(&mut self, keyword: &str, arg: &str, out: &mut Vec<u8>) -> Outcome {
        match keyword {
            "USER" | "PASS" | "AUTH" if !self.login_allowed() => {
                let how = if self.config.tls_available {
                    "use STLS first"
                } else {
                    "this server has no TLS and does not allow that"
                };
                err(
                    out,
                    &format!("[AUTH] no plain-text login without TLS; {how}"),
                );
            }
            "USER" => {
                let user = arg.trim();
                if user.is_empty() || user.contains(' ') {
                    self.error(out, "usage: USER name");
                } else {
                    // Every name is welcome here, so USER tells nobody which exist.
                    ok(out, "send PASS");
                    self.state = State::Authorization {
                        user: Some(user.to_owned()),
                    };
                }
            }
            // RFC 1939 section 7: the password is everything after "PASS ", spaces
            // included.
            "PASS" => match std::mem::replace(&mut self.state, State::Authorization { user: None })
            {
                State::Authorization { user: Some(user) } => {
                    return Some(self.login(user, arg.to_owned()));
                }
                _ => self.error(out, "send USER first"),
            },
            "AUTH" => return self.auth(arg, out),
            "STLS" => return self.stls(arg, out),
            "APOP" => self.error(
                out,
                "APOP is not supported; use USER and PASS or AUTH PLAIN",
            ),
            "STAT" | "LIST" | "UIDL" | "TOP" | "RETR" | "DELE" | "NOOP" | "RSET" => {
                self.error(out, "log in first (USER and PASS, or AUTH PLAIN)");
            }
            _ => self.error(out, &format!("unknown command {keyword}")),
        }
        None
    }

    fn login_allowed(&self) -> bool {
        self.tls || self.loopback || self.config.allow_insecure_auth
    }

    fn login(&mut self, user: String, password: String) -> Step {
        self.user = Some(user.clone());
        self.state = State::Authenticating;
        Step::Login(Login { user, password })
    }

    fn auth(&mut self, arg: &str, out: &mut Vec<u8>) -> Outcome {
        let mut words = arg.split_ascii_whitespace();
        let (mechanism, initial) = (words.next(), words.next());
        if words.next().is_some() {
            self.error(out, "usage: AUTH PLAIN [initial-response]");
            return None;
        }
        match mechanism {
            // The mechanism list of RFC 1734, which some clients still ask for.
            None => {
                ok(out, "SASL mechanisms follow");
                out.extend_from_slice(b"PLAIN\r\n.\r\n");
                None
            }
            Some(m) if m.eq_ignore_ascii_case("PLAIN") => match initial {
                Some(response) => self.sasl_plain_response(response, out),
                None => {
                    out.extend_from_slice(b"+ \r\n");
                    self.state = State::AuthPlainResponse;
                    None
                }
            },
            Some(m) => {
                self.error(out, &format!("unsupported SASL mechanism {m}; use PLAIN"));
                None
            }
        }
    }

    /// The client's PLAIN response, from the AUTH line or the line after `+ `.
    fn sasl_plain_response(&mut self, response: &str, out: &mut Vec<u8>) -> Outcome {
        if response == "*" {
            err(out, "authentication cancelled");
            return None;
        }
        // The authorization identity is ignored, as SMTP AUTH does: a catcher has no
        // one to act on behalf of.
        match decode_sasl_plain(response) {
            Ok((user, password)) => Some(self.login(user, password)),
            Err(_) => {
                self.error(
                    out,
                    "[AUTH] invalid PLAIN response: base64 of authzid NUL user NUL password",
                );
                None
            }
        }
    }

    fn stls(&mut self, arg: &str, out: &mut Vec<u8>) -> Outcome {
        if !arg.is_empty() {
            self.error(out, "usage: STLS");
        } else if self.tls {
            err(out, "TLS is already in use");
        } else if !self.config.tls_available {
            err(out, "STLS is not available: the server has no certificate");
        } else {
            ok(out, "begin TLS negotiation");
            return Some(Step::StartTls);
        }
        None
    }

    fn transaction(&mut self, keyword: &str, arg: &str, out: &mut Vec<u8>) -> Outcome {
        let State::Transaction { maildrop, pending } = &mut self.state else {
            return None;
        };
        let args: Vec<&str> = arg.split_ascii_whitespace().collect();
        let result: Result<Outcome, String> = match (keyword, args.as_slice()) {
            ("STAT", []) => {
                let (count, octets) = maildrop.stat();
                ok(out, &format!("{count} {octets}"));
                Ok(None)
            }
            ("LIST", []) => {
                let (count, octets) = maildrop.stat();
                ok(out, &format!("{count} {} ({octets} octets)", plural(count)));
                for (number, entry) in maildrop.live() {
                    out.extend_from_slice(format!("{number} {}\r\n", entry.size).as_bytes());
                }
                out.extend_from_slice(b".\r\n");
                Ok(None)
            }
            ("LIST", [n]) => maildrop.get_mut(n).map(|(number, entry)| {
                ok(out, &format!("{number} {}", entry.size));
                None
            }),
            ("UIDL", []) => {
                ok(out, "unique-id listing follows");
                for (number, entry) in maildrop.live() {
                    out.extend_from_slice(format!("{number} {}\r\n", entry.id).as_bytes());
                }
                out.extend_from_slice(b".\r\n");
                Ok(None)
            }
            ("UIDL", [n]) => maildrop.get_mut(n).map(|(number, entry)| {
                ok(out, &format!("{number} {}", entry.id));
                None
            }),
            ("RETR", [n]) => maildrop.get_mut(n).map(|(number, entry)| {
                let retrieve = Retrieve {
                    number,
                    id: entry.id,
                    top_lines: None,
                };
                *pending = Some(retrieve);
                Some(Step::Retrieve(retrieve))
            }),
            ("TOP", [n, lines]) => match parse_number(lines) {
                None => Err(format!("invalid line count {lines:?}")),
                Some(lines) => maildrop.get_mut(n).map(|(number, entry)| {
                    let retrieve = Retrieve {
                        number,
                        id: entry.id,
                        top_lines: Some(lines as u64),
                    };
                    *pending = Some(retrieve);
                    Some(Step::Retrieve(retrieve))
                }),
            },
            ("DELE", [n]) => maildrop.get_mut(n).map(|(number, entry)| {
                entry.deleted = true;
                ok(out, &format!("message {number} deleted"));
                None
            }),
            ("RSET", []) => {
                for entry in &mut maildrop.messages {
                    entry.deleted = false;
                }
                let (count, octets) = maildrop.stat();
                ok(
                    out,
                    &format!("maildrop has {count} {} ({octets} octets)", plural(count)),
                );
                Ok(None)
            }
            ("NOOP", []) => {
                ok(out, "");
                Ok(None)
            }
            ("STAT" | "RSET" | "NOOP", _) => Err(format!("usage: {keyword} (no arguments)")),
            ("LIST" | "UIDL", _) => Err(format!("usage: {keyword} [msg]")),
            ("RETR" | "DELE", _) => Err(format!("usage: {keyword} msg")),
            ("TOP", _) => Err("usage: TOP msg lines".into()),
            ("USER" | "PASS" | "AUTH" | "APOP" | "STLS", _) => Err("already logged in".into()),
            _ => Err(format!("unknown command {keyword}")),
        };
        match result {
            Ok(outcome) => outcome,
            Err(message) => {
                self.error(out, &message);
                None
            }
        }
    }

    /// Appends `-ERR message`, counting it; past the limit, ends the session.
    fn error(&mut self, out: &mut Vec<u8>, message: &str) {
        self.errors += 1;
        if self.errors >= self.config.max_errors {
            err(out, &format!("{message}; too many errors, closing"));
            self.state = State::Closed;
        } else {
            err(out, message);
        }
    }
}

/// A message number or line count: decimal digits only (no sign, no spaces), and
/// small enough to mean something.
fn parse_number(text: &str) -> Option<usize> {
    if text.is_empty() || text.len() > 19 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn plural<T: PartialEq + From<u8>>(count: T) -> &'static str {
    if count == T::from(1) {
        "message"
    } else {
        "messages"
    }
}

fn ok(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(b"+OK");
    if !text.is_empty() {
        out.push(b' ');
        out.extend_from_slice(text.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

fn err(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(b"-ERR ");
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests;
