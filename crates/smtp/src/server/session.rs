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

use std::sync::Arc;

use sokkel_net::lines::{Line, LineSplitter};
use sokkel_net::server::output_backed_up;

use crate::reply::Reply;

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
        refusal: Option<Reply>,
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
        }
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
            Reply::new(235, "2.7.0", "Authentication successful").write_to(out);
            return;
        }
        self.auth_failures += 1;
        Reply::new(535, "5.7.8", "Authentication credentials invalid").write_to(out);
        if self.auth_failures >= self.config.max_auth_failures {
            let host = &self.config.hostname;
            Reply::new(
                421,
                "4.7.0",
                format!("{host} Too many failed authentication attempts, closing connection"),
            )
            .write_to(out);
            self.state = State::Closed;
        }
    }

    /// Whether AUTH may be used on this connection now.
    fn auth_offered(&self) -> bool {
        self.config.auth && (self.tls || self.config.allow_insecure_auth)
    }

    /// Appends the 220 greeting.
    pub fn greeting(&self, out: &mut Vec<u8>) {
        Reply::new(
            220,
            "",
            format!("{} ESMTP sokkel mail catcher", self.config.hostname),
        )
        .write_to(out);
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
        let host = &self.config.hostname;
        Reply::new(
            421,
            "4.4.2",
            format!("{host} Error: timeout exceeded, closing connection"),
        )
        .write_to(out);
        self.state = State::Closed;
    }

    /// Appends the 421 for a server that is shutting down, and ends the session.
    pub fn shutting_down(&mut self, out: &mut Vec<u8>) {
        let host = &self.config.hostname;
        Reply::new(
            421,
            "4.3.2",
            format!("{host} Service shutting down, closing connection"),
        )
        .write_to(out);
        self.state = State::Closed;
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
                            let reply = Reply::new(500, "5.5.6", "Authentication line too long");
                            self.reply(reply, out);
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
                            let max = self.config.max_line_length;
                            let reply = Reply::new(
                                500,
                                "5.5.6",
                                format!("Line too long (max {max} bytes)"),
                            );
                            self.reply(reply, out);
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
                        let step = if crlf {
                            self.command(text, out)
                        } else {
                            let reply = Reply::new(
                                500,
                                "5.5.2",
                                "Command lines must end with CRLF, not a bare LF",
                            );
                            self.reply(reply, out);
                            None
                        };
                        if let Some(step) = step {
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
                    if let Some(reply) = refusal {
                        if reply.code == 552 {
                            self.tx = None;
                        }
                        self.reply(reply, out);
                    } else if self.tx.as_ref().is_some_and(|tx| tx.over_budget) {
                        if last {
                            self.tx = None;
                        }
                        self.reply(insufficient_storage(), out);
                    } else if last {
                        if let Some(step) = self.finish_message(out) {
                            return (pos, step);
                        }
                    } else {
                        let total = self.tx.as_ref().map_or(0, |tx| tx.data.len());
                        let reply = Reply::new(
                            250,
                            "2.0.0",
                            format!("{size} octets received, {total} in all"),
                        );
                        self.reply(reply, out);
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
        let reply = match outcome {
            Delivery::Stored(id) => Reply::new(250, "2.0.0", format!("Ok: queued as {id}")),
            Delivery::Failed => Reply::new(
                451,
                "4.3.0",
                "Temporary failure storing the message; try again later",
            ),
        };
        self.tx = None;
        self.state = State::Command;
        self.reply(reply, out);
    }

    /// The client's answer to a 334 challenge.
    fn auth_response(&mut self, line: &str, out: &mut Vec<u8>) -> Option<Step> {
        let State::AuthResponse(stage) = std::mem::replace(&mut self.state, State::Command) else {
            return None;
        };
        if line == "*" {
            self.reply(Reply::new(501, "5.7.0", "Authentication cancelled"), out);
            return None;
        }
        let step = match stage {
            AuthStage::Plain => sokkel_net::auth::decode_sasl_plain(line)
                .map(|(user, password)| self.check(user, password)),
            AuthStage::LoginUser => sokkel_net::auth::decode_sasl_text(line).map(|user| {
                self.state = State::AuthResponse(AuthStage::LoginPassword(user));
                // "Password:"
                Reply::new(334, "", "UGFzc3dvcmQ6").write_to(out);
                None
            }),
            AuthStage::LoginPassword(user) => {
                sokkel_net::auth::decode_sasl_text(line).map(|password| self.check(user, password))
            }
        };
        match step {
            Ok(step) => step,
            Err(error) => {
                self.reply(
                    Reply::new(501, "5.5.2", format!("Cannot decode: {error}")),
                    out,
                );
                None
            }
        }
    }

    /// Hands credentials to the shell.
    fn check(&mut self, user: String, password: String) -> Option<Step> {
        self.state = State::Authenticating(user.clone());
        Some(Step::Authenticate(Credentials { user, password }))
    }

    /// AUTH mechanism [initial-response] (RFC 4954).
    fn auth(&mut self, arg: &str, out: &mut Vec<u8>) -> Option<Step> {
        let refuse = |code, enhanced, text: &str| Some(Reply::new(code, enhanced, text));
        let refusal = if !self.config.auth {
            refuse(502, "5.5.1", "AUTH is not enabled on this server")
        } else if !self.auth_offered() {
            refuse(
                538,
                "5.7.11",
                "Encryption required for requested authentication mechanism; use STARTTLS first",
            )
        } else if !matches!(self.helo, Some((_, true))) {
            refuse(503, "5.5.1", "Send EHLO first")
        } else if self.auth_user.is_some() {
            refuse(503, "5.5.1", "Already authenticated")
        } else if self.tx.is_some() {
            refuse(
                503,
                "5.5.1",
                "AUTH is not allowed during a mail transaction",
            )
        } else {
            None
        };
        if let Some(reply) = refusal {
            self.reply(reply, out);
            return None;
        }
        let (mechanism, initial) = match arg.split_once(' ') {
            Some((mechanism, initial)) => (mechanism, Some(initial.trim())),
            None => (arg, None),
        };
        match (mechanism.to_ascii_uppercase().as_str(), initial) {
            ("PLAIN", None) => {
                self.state = State::AuthResponse(AuthStage::Plain);
                Reply::new(334, "", "").write_to(out);
                None
            }
            ("LOGIN", None) => {
                self.state = State::AuthResponse(AuthStage::LoginUser);
                // "Username:"
                Reply::new(334, "", "VXNlcm5hbWU6").write_to(out);
                None
            }
            // "=" is an empty initial response (RFC 4954 section 4).
            ("PLAIN" | "LOGIN", Some("=")) | ("PLAIN" | "LOGIN", Some("*")) => {
                self.reply(Reply::new(501, "5.7.0", "Authentication cancelled"), out);
                None
            }
            ("PLAIN" | "LOGIN", Some(initial)) => {
                let stage = if mechanism.eq_ignore_ascii_case("PLAIN") {
                    AuthStage::Plain
                } else {
                    AuthStage::LoginUser
                };
                self.state = State::AuthResponse(stage);
                self.auth_response(initial, out)
            }
            ("", _) => {
                self.reply(
                    Reply::new(501, "5.5.4", "Syntax: AUTH mechanism [initial-response]"),
                    out,
                );
                None
            }
            _ => {
                self.reply(
                    Reply::new(
                        504,
                        "5.5.4",
                        "Unrecognized authentication type; use PLAIN or LOGIN",
                    ),
                    out,
                );
                None
            }
        }
    }

    /// STARTTLS (RFC 3207).
    fn starttls(&mut self, arg: &str, out: &mut Vec<u8>) -> Option<Step> {
        let reply = if !self.config.starttls {
            Reply::new(
                502,
                "5.5.1",
                "STARTTLS is not enabled on this server (see --tls-cert or --tls-self-signed)",
            )
        } else if self.tls {
            Reply::new(503, "5.5.1", "TLS is already active")
        } else if !arg.is_empty() {
            Reply::new(501, "5.5.4", "Syntax: STARTTLS (no arguments)")
        } else {
            Reply::new(220, "2.0.0", "Ready to start TLS").write_to(out);
            self.state = State::TlsPending;
            return Some(Step::StartTls);
        };
        self.reply(reply, out);
        None
    }

    /// Appends `reply`, counting protocol errors; past the limit, adds a 421 and closes.
    fn reply(&mut self, reply: Reply, out: &mut Vec<u8>) {
        let protocol_error = matches!(reply.code, 500..=504 | 555);
        reply.write_to(out);
        if protocol_error {
            self.errors += 1;
            if self.errors >= self.config.max_errors {
                let host = &self.config.hostname;
                Reply::new(
                    421,
                    "4.7.0",
                    format!("{host} Too many errors, closing connection"),
                )
                .write_to(out);
                self.state = State::Closed;
            }
        }
    }

    /// Handles one complete command line. Returns a step when the shell must act.
    fn command(&mut self, line: &[u8], out: &mut Vec<u8>) -> Option<Step> {
        let Ok(line) = std::str::from_utf8(line) else {
            self.reply(
                Reply::new(500, "5.5.2", "Syntax error: command is not valid UTF-8"),
                out,
            );
            return None;
        };
        let (verb, arg) = match line.split_once(' ') {
            Some((verb, arg)) => (verb, arg.trim()),
            None => (line, ""),
        };
        let reply = match verb.to_ascii_uppercase().as_str() {
            "EHLO" => self.hello(arg, true),
            "HELO" => self.hello(arg, false),
            "MAIL" => self.mail(arg),
            "RCPT" => self.rcpt(arg),
            "DATA" => self.data(arg),
            "BDAT" => match self.bdat(arg) {
                Some(reply) => reply,
                // The reply comes once the chunk is read. BDAT 0 has nothing to read.
                None => {
                    if let State::Bdat { remaining: 0, .. } = self.state {
                        let (_, step) = self.advance(&[], out);
                        if step != Step::NeedMore {
                            return Some(step);
                        }
                    }
                    return None;
                }
            },
            "STARTTLS" => return self.starttls(arg, out),
            "AUTH" => return self.auth(arg, out),
            "RSET" if arg.is_empty() => {
                self.tx = None;
                Reply::new(250, "2.0.0", "Ok")
            }
            "RSET" => Reply::new(501, "5.5.4", "Syntax: RSET (no arguments)"),
            "NOOP" => Reply::new(250, "2.0.0", "Ok"),
            "QUIT" => {
                let host = &self.config.hostname;
                Reply::new(221, "2.0.0", format!("{host} Bye")).write_to(out);
                self.state = State::Closed;
                return Some(Step::Close);
            }
            "VRFY" if arg.is_empty() => Reply::new(501, "5.5.4", "Syntax: VRFY address"),
            "VRFY" => Reply::new(
                252,
                "2.5.0",
                "Cannot VRFY user, but will accept message and attempt delivery",
            ),
            "HELP" => Reply::new(
                214,
                "2.0.0",
                "Commands: EHLO HELO STARTTLS AUTH MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP; this server catches every message and relays none",
            ),
            "EXPN" | "TURN" | "ETRN" | "SEND" | "SOML" | "SAML" => Reply::new(
                502,
                "5.5.1",
                format!("{} is not implemented here", verb.to_ascii_uppercase()),
            ),
            "" => Reply::new(500, "5.5.2", "Syntax error: empty command"),
            _ => Reply::new(500, "5.5.2", "Syntax error: command unrecognized"),
        };
        self.reply(reply, out);
        None
    }

    fn hello(&mut self, arg: &str, extended: bool) -> Reply {
        let verb = if extended { "EHLO" } else { "HELO" };
        if arg.is_empty() || arg.contains(char::is_whitespace) {
            return Reply::new(501, "5.5.4", format!("Syntax: {verb} hostname"));
        }
        // EHLO in the middle of a transaction starts over (RFC 5321 section 4.1.4).
        self.tx = None;
        self.helo = Some((arg.to_owned(), extended));
        let host = &self.config.hostname;
        let greeting = format!("{host} greets {arg}");
        if !extended {
            return Reply::new(250, "", greeting);
        }
        let mut lines = vec![
            greeting,
            "PIPELINING".into(),
            format!("SIZE {}", self.config.max_message_size),
            "8BITMIME".into(),
            "SMTPUTF8".into(),
            "ENHANCEDSTATUSCODES".into(),
            "CHUNKING".into(),
        ];
        if self.config.starttls && !self.tls {
            lines.push("STARTTLS".into());
        }
        if self.auth_offered() && self.auth_user.is_none() {
            lines.push("AUTH PLAIN LOGIN".into());
        }
        Reply {
            code: 250,
            enhanced: "",
            lines,
        }
    }

    fn mail(&mut self, arg: &str) -> Reply {
        let Some((_, extended)) = self.helo else {
            return Reply::new(503, "5.5.1", "Send EHLO or HELO first");
        };
        if self.tx.is_some() {
            return Reply::new(503, "5.5.1", "Nested MAIL command");
        }
        if self.config.require_tls && !self.tls {
            return Reply::new(530, "5.7.0", "Must issue a STARTTLS command first");
        }
        let (path, params) = match parse_path(arg, "FROM:") {
            Ok(parts) => parts,
            Err(()) => return Reply::new(501, "5.5.4", "Syntax: MAIL FROM:<address> [parameters]"),
        };
        let mut smtputf8 = false;
        for param in params.split_ascii_whitespace() {
            if !extended {
                return Reply::new(555, "5.5.4", "Parameters need EHLO, not HELO");
            }
            let (name, value) = match param.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (param, None),
            };
            match (name.to_ascii_uppercase().as_str(), value) {
                ("SIZE", Some(size)) => {
                    // All digits but beyond u64 is certainly over the limit too.
                    let over = match size.parse::<u64>() {
                        Ok(size) => size > self.config.max_message_size as u64,
                        Err(_) if !size.is_empty() && size.bytes().all(|b| b.is_ascii_digit()) => {
                            true
                        }
                        Err(_) => {
                            return Reply::new(501, "5.5.4", "Syntax: SIZE=<number of bytes>");
                        }
                    };
                    if over {
                        let max = self.config.max_message_size;
                        let text = format!(
                            "Message size exceeds fixed maximum message size ({max} bytes)"
                        );
                        return Reply::new(552, "5.3.4", text);
                    }
                }
                ("BODY", Some(body))
                    if body.eq_ignore_ascii_case("7BIT")
                        || body.eq_ignore_ascii_case("8BITMIME") => {}
                ("BODY", _) => {
                    return Reply::new(501, "5.5.4", "Syntax: BODY=7BIT or BODY=8BITMIME");
                }
                ("SMTPUTF8", None) => smtputf8 = true,
                _ => return Reply::new(555, "5.5.4", format!("Unsupported parameter {name}")),
            }
        }
        match check_address(path, smtputf8, AddressKind::Sender) {
            Ok(address) => {
                self.tx = Some(Transaction {
                    mail_from: address,
                    smtputf8,
                    ..Transaction::default()
                });
                Reply::new(250, "2.1.0", "Ok")
            }
            Err(reply) => reply,
        }
    }

    fn rcpt(&mut self, arg: &str) -> Reply {
        let max = self.config.max_recipients;
        let Some(tx) = self.tx.as_mut() else {
            return Reply::new(503, "5.5.1", "Need MAIL before RCPT");
        };
        let (path, params) = match parse_path(arg, "TO:") {
            Ok(parts) => parts,
            Err(()) => return Reply::new(501, "5.5.4", "Syntax: RCPT TO:<address>"),
        };
        if let Some(param) = params.split_ascii_whitespace().next() {
            let name = param.split('=').next().unwrap_or(param);
            return Reply::new(555, "5.5.4", format!("Unsupported parameter {name}"));
        }
        if tx.rcpt_to.len() >= max {
            return Reply::new(
                452,
                "4.5.3",
                format!("Too many recipients (max {max} per message)"),
            );
        }
        match check_address(path, tx.smtputf8, AddressKind::Recipient) {
            Ok(address) => {
                tx.rcpt_to.push(address);
                Reply::new(250, "2.1.5", "Ok")
            }
            Err(reply) => reply,
        }
    }

    fn data(&mut self, arg: &str) -> Reply {
        if !arg.is_empty() {
            return Reply::new(501, "5.5.4", "Syntax: DATA (no arguments)");
        }
        match &self.tx {
            None => Reply::new(503, "5.5.1", "Need MAIL command"),
            Some(tx) if tx.rcpt_to.is_empty() => Reply::new(503, "5.5.1", "Need RCPT command"),
            Some(tx) if tx.chunking => Reply::new(503, "5.5.1", "DATA is not allowed after BDAT"),
            Some(_) if self.memory_low => insufficient_storage(),
            Some(_) => {
                self.transfers += 1;
                self.state = State::Data(DataScan { line_start: true });
                Reply::new(354, "", "End data with <CR><LF>.<CR><LF>")
            }
        }
    }

    /// Starts reading a chunk; `None` means the reply comes once it has been read.
    fn bdat(&mut self, arg: &str) -> Option<Reply> {
        let mut words = arg.split_ascii_whitespace();
        let size = words.next().and_then(|s| s.parse::<usize>().ok());
        let last = match words.next() {
            None => false,
            Some(word) if word.eq_ignore_ascii_case("LAST") => true,
            Some(_) => return Some(Reply::new(501, "5.5.4", "Syntax: BDAT size [LAST]")),
        };
        let Some(size) = size.filter(|_| words.next().is_none()) else {
            return Some(Reply::new(501, "5.5.4", "Syntax: BDAT size [LAST]"));
        };
        // The chunk's bytes follow whatever we answer: read them all before replying.
        let max = self.config.max_message_size;
        let refusal = match &mut self.tx {
            _ if self.helo.is_none() => Some(Reply::new(503, "5.5.1", "Send EHLO first")),
            None => Some(Reply::new(503, "5.5.1", "Need MAIL command")),
            Some(tx) if tx.rcpt_to.is_empty() => {
                Some(Reply::new(503, "5.5.1", "Need RCPT command"))
            }
            Some(tx) if tx.data.len().saturating_add(size) > max => Some(Reply::new(
                552,
                "5.3.4",
                format!("Message too big for this server (max {max} bytes)"),
            )),
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
        None
    }

    /// Ends a message (the final dot, or the last BDAT chunk).
    fn finish_message(&mut self, out: &mut Vec<u8>) -> Option<Step> {
        let tx = self.tx.take()?;
        self.state = State::Command;
        if tx.over_budget {
            self.reply(insufficient_storage(), out);
            return None;
        }
        if tx.too_big {
            let max = self.config.max_message_size;
            self.reply(
                Reply::new(
                    552,
                    "5.3.4",
                    format!("Message too big for this server (max {max} bytes)"),
                ),
                out,
            );
            return None;
        }
        if tx.bare_lf && self.config.bare_lf == BareLf::Reject {
            self.reply(
                Reply::new(550, "5.5.2", "Message refused: bare LF line endings; lines must end with CRLF. Closing connection"),
                out,
            );
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

/// The reply to a message the server has no memory for now (RFC 3463: 4.3.1
/// "mail system full"); the client should try again later.
fn insufficient_storage() -> Reply {
    Reply::new(
        452,
        "4.3.1",
        "Insufficient system storage: too many messages in flight; try again later",
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AddressKind {
    Sender,
    Recipient,
}

/// Splits `FROM:<path> params` (or `TO:`), tolerating spaces after the colon as
/// common clients send them. The path must be in angle brackets.
fn parse_path<'a>(arg: &'a str, keyword: &str) -> Result<(&'a str, &'a str), ()> {
    let head = arg.get(..keyword.len()).ok_or(())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return Err(());
    }
    let rest = arg[keyword.len()..].trim_start();
    let inner = rest.strip_prefix('<').ok_or(())?;
    // Find the closing bracket outside any quoted local part.
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in inner.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '>' if !quoted => {
                let params = &inner[i + 1..];
                if !params.is_empty() && !params.starts_with(' ') {
                    return Err(());
                }
                return Ok((&inner[..i], params.trim()));
            }
            _ => {}
        }
    }
    Err(())
}

/// Checks a path's syntax (RFC 5321 section 4.1.2, loosely where clients are known to
/// stray, strictly where it matters) and returns the mailbox to record.
fn check_address(path: &str, smtputf8: bool, kind: AddressKind) -> Result<String, Reply> {
    let (bad_code, what) = match kind {
        AddressKind::Sender => ("5.1.7", "sender"),
        AddressKind::Recipient => ("5.1.3", "recipient"),
    };
    let bad = |why: &str| Reply::new(501, bad_code, format!("Bad {what} address syntax: {why}"));
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
        return Err(Reply::new(
            553,
            "5.6.7",
            format!("Non-ASCII {what} address needs MAIL FROM with SMTPUTF8"),
        ));
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
