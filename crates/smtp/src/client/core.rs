//! The client's conversation without I/O: commands out, replies in.
//!
//! A [`Conversation`] knows SMTP from the client's side (greeting, EHLO or HELO,
//! STARTTLS, AUTH, MAIL/RCPT/DATA with or without pipelining, QUIT) and nothing of
//! sockets or time. The shell ([`super::session`]) is a loop around it:
//!
//! ```text
//! loop {
//!     match conversation.next_output() {
//!         Send / Content   -> write the bytes (the transcript shows them)
//!         Received / Note  -> show them in the transcript
//!         Read             -> read what arrived, conversation.received(bytes)
//!         StartTls         -> TLS handshake, conversation.tls_established()
//!         Ready / Sent / Failed / Closed -> return to the caller
//!     }
//! }
//! ```
//!
//! A read or write that fails, times out or finds the connection closed goes to
//! [`Conversation::connection_lost`], which names the stage, and prefers a refusal
//! the server gave earlier (a 421 followed by a hang-up is news about the 421).

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::capabilities::Capabilities;
use super::data::{encode_data, normalise_line_endings};
use super::error::{ClientError, FailureKind, Stage};
use super::reply::{ServerReply, parse_reply};

/// When and how to use TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Never.
    None,
    /// STARTTLS, and fail if the server does not offer it.
    StartTls,
    /// STARTTLS if the server offers it, plain text otherwise.
    StartTlsIfOffered,
    /// TLS from the first byte (SMTPS, port 465).
    Implicit,
}

/// Which AUTH mechanism to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMechanism {
    /// AUTH PLAIN (RFC 4616).
    Plain,
    /// AUTH LOGIN.
    Login,
    /// PLAIN if offered, else LOGIN.
    Auto,
}

/// A login. The password is never shown: not in `Debug`, not in the transcript.
#[derive(Clone)]
pub struct Credentials {
    /// The user name.
    pub user: String,
    /// The password.
    pub password: String,
    /// The mechanism to use.
    pub mechanism: AuthMechanism,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"[redacted]")
            .field("mechanism", &self.mechanism)
            .finish()
    }
}

/// One message to send.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// MAIL FROM; empty for the null sender.
    pub from: String,
    /// RCPT TO, in order.
    pub to: Vec<String>,
}

/// How sending one message went, when at least one recipient got it.
#[derive(Debug, Clone)]
pub struct SendReport {
    /// Recipients the server accepted.
    pub accepted: Vec<String>,
    /// Recipients the server refused, with its reply.
    pub refused: Vec<(String, ServerReply)>,
    /// The server's reply after the content (the "queued as" line).
    pub reply: ServerReply,
}

/// What the conversation needs to know before the first byte.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The name to give in EHLO.
    pub ehlo_name: String,
    /// When to use TLS.
    pub tls: TlsMode,
    /// The login, if any.
    pub credentials: Option<Credentials>,
    /// The server's address: a password goes to it unencrypted only when it is on
    /// this machine (loopback).
    pub peer: SocketAddr,
}

/// What the shell is to do next.
#[derive(Debug)]
pub enum Output {
    /// Write `wire`; the transcript shows `shown`, one entry per command line, with
    /// secrets already redacted (empty: nothing to show).
    Send {
        /// The bytes for the wire.
        wire: Vec<u8>,
        /// The lines for the transcript.
        shown: Vec<String>,
    },
    /// Write the message content: DATA's wire form, final dot included.
    Content(Vec<u8>),
    /// A reply the conversation read, for the transcript.
    Received(ServerReply),
    /// Something for the transcript that is not a protocol line.
    Note(String),
    /// More bytes from the server are needed: read, then [`Conversation::received`].
    Read,
    /// Do the TLS handshake now, then [`Conversation::tls_established`].
    StartTls,
    /// Connected, greeted, upgraded and logged in as configured, and idle: ready for
    /// [`Conversation::send`] or [`Conversation::quit`].
    Ready,
    /// The message given to [`Conversation::send`] was sent.
    Sent(SendReport),
    /// The step failed. The conversation is [`Output::Ready`] again when the
    /// connection is still good (a refused message), else [`Output::Closed`].
    Failed(ClientError),
    /// The conversation is over.
    Closed,
}

/// Which step of AUTH waits for a reply.
#[derive(Debug)]
enum AuthStep {
    /// `AUTH LOGIN` sent; the server is to ask for the user name (334).
    LoginUser(Credentials),
    /// The user name sent; the server is to ask for the password (334).
    LoginPassword(Credentials),
    /// The credentials sent; the server is to say 235.
    Outcome,
}

/// Which reply a transaction waits for.
#[derive(Debug)]
enum Step {
    Mail,
    Rcpt(usize),
    Data,
    /// After the content's final dot.
    Content,
    /// The server said 354 to a message it will not get (no recipient accepted):
    /// the content was ended at once; this failure follows.
    EndUnwanted(ClientError),
    /// RSET after a refusal; this failure follows.
    Reset(ClientError),
}

/// One message on its way.
#[derive(Debug)]
struct Transaction {
    recipients: Vec<String>,
    /// The content with CRLF line ends, not yet dot-stuffed.
    content: Vec<u8>,
    pipelined: bool,
    mail_refusal: Option<ServerReply>,
    accepted: Vec<String>,
    refused: Vec<(String, ServerReply)>,
    step: Step,
}

impl Transaction {
    /// The refusal that stops the transaction, judged from the replies so far:
    /// MAIL refused, or every recipient so far refused (the first refusal counts).
    fn earlier_failure(&self) -> Option<ClientError> {
        if let Some(reply) = &self.mail_refusal {
            return Some(ClientError::new(
                Stage::Mail,
                FailureKind::Refused(reply.clone()),
            ));
        }
        match self.refused.first() {
            Some((_, reply)) if self.accepted.is_empty() => Some(ClientError::new(
                Stage::Rcpt,
                FailureKind::Refused(reply.clone()),
            )),
            _ => None,
        }
    }

    fn stage(&self) -> Stage {
        match self.step {
            Step::Mail | Step::Reset(_) => Stage::Mail,
            Step::Rcpt(_) => Stage::Rcpt,
            Step::Data | Step::EndUnwanted(_) => Stage::Data,
            Step::Content => Stage::AfterData,
        }
    }
}

#[derive(Debug)]
enum State {
    /// The shell is to do a TLS handshake: before the greeting (`implicit`) or
    /// after the server's 220 to STARTTLS.
    Handshake {
        implicit: bool,
    },
    Greeting,
    Ehlo,
    /// HELO, after the server refused EHLO.
    Helo,
    StartTls,
    Auth(AuthStep),
    Ready,
    Transaction(Box<Transaction>),
    Quit,
    Closed,
}

impl State {
    /// The stage a failure now belongs to.
    fn stage(&self) -> Stage {
        match self {
            State::Handshake { .. } | State::StartTls => Stage::Tls,
            State::Greeting => Stage::Banner,
            State::Ehlo | State::Helo => Stage::Ehlo,
            State::Auth(_) => Stage::Auth,
            State::Ready => Stage::Mail,
            State::Transaction(transaction) => transaction.stage(),
            State::Quit | State::Closed => Stage::AfterData,
        }
    }
}

/// The client side of one SMTP connection, as a state machine. See the module
/// documentation for how a shell drives it.
#[derive(Debug)]
pub struct Conversation {
    settings: Settings,
    state: State,
    /// Bytes received but not yet read as replies.
    inbox: Vec<u8>,
    /// What to hand out before looking at the state again.
    queue: VecDeque<Output>,
    caps: Capabilities,
    tls: bool,
}

impl Conversation {
    /// A conversation that starts with the greeting, or with the TLS handshake when
    /// the mode is [`TlsMode::Implicit`].
    pub fn new(settings: Settings) -> Self {
        let state = if settings.tls == TlsMode::Implicit {
            State::Handshake { implicit: true }
        } else {
            State::Greeting
        };
        Conversation {
            settings,
            state,
            inbox: Vec::new(),
            queue: VecDeque::new(),
            caps: Capabilities::default(),
            tls: false,
        }
    }

    /// What the server offered in its (last) EHLO reply; nothing after HELO, and
    /// nothing learnt before TLS once TLS is up (RFC 3207 section 4.2).
    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    /// Whether the conversation runs under TLS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// What to do next. Call it again after doing it.
    pub fn next_output(&mut self) -> Output {
        loop {
            if let Some(output) = self.queue.pop_front() {
                return output;
            }
            match &self.state {
                State::Handshake { .. } => return Output::StartTls,
                State::Ready => return Output::Ready,
                State::Closed => return Output::Closed,
                _ => {}
            }
            match parse_reply(&self.inbox) {
                Ok(Some((reply, used))) => {
                    self.inbox.drain(..used);
                    self.queue.push_back(Output::Received(reply.clone()));
                    self.on_reply(reply);
                }
                Ok(None) => return Output::Read,
                Err(err) => {
                    let why = format!("the server's reply makes no sense: {err}");
                    return Output::Failed(self.connection_lost(FailureKind::Protocol(why)));
                }
            }
        }
    }

    /// Bytes that arrived from the server.
    pub fn received(&mut self, bytes: &[u8]) {
        // Bytes that come while idle are kept: they answer the next command.
        if !matches!(self.state, State::Closed) {
            self.inbox.extend_from_slice(bytes);
        }
    }

    /// The TLS handshake the conversation asked for succeeded.
    pub fn tls_established(&mut self) {
        let State::Handshake { implicit } = self.state else {
            return;
        };
        self.tls = true;
        // Everything learnt before TLS is forgotten (RFC 3207 section 4.2).
        self.caps = Capabilities::default();
        self.inbox.clear();
        if implicit {
            self.state = State::Greeting;
        } else {
            self.hello();
        }
    }

    /// The connection failed (a read or write error, a timeout, the server hung
    /// up, a failed TLS handshake). Returns the error to report: the stage that was
    /// under way, or a refusal the server gave earlier in this transaction. The
    /// conversation is over.
    pub fn connection_lost(&mut self, kind: FailureKind) -> ClientError {
        let state = std::mem::replace(&mut self.state, State::Closed);
        self.queue.clear();
        let stage = state.stage();
        if let State::Transaction(transaction) = state {
            match transaction.step {
                Step::EndUnwanted(failure) | Step::Reset(failure) => return failure,
                _ => {
                    if let Some(failure) = transaction.earlier_failure() {
                        return failure;
                    }
                }
            }
        }
        ClientError::new(stage, kind)
    }

    /// Starts sending `message` to the recipients of `envelope`. The outcome comes
    /// from [`Conversation::next_output`] as [`Output::Sent`] or [`Output::Failed`].
    pub fn send(&mut self, envelope: &Envelope, message: &[u8]) {
        match self.state {
            State::Ready => {}
            State::Closed => return self.refuse(Stage::Mail, FailureKind::Closed),
            _ => return self.refuse(Stage::Mail, FailureKind::NotReady),
        }
        if envelope.to.is_empty() {
            return self.refuse(Stage::Rcpt, FailureKind::NoRecipient);
        }
        // An address is written inside a command line: a line break in it would
        // be a second command, a '>' would add parameters. Such an address may come
        // from a web request (release), so it is refused before anything is sent.
        if breaks_the_command(&envelope.from) {
            let from = envelope.from.clone();
            return self.refuse(Stage::Mail, FailureKind::UnsafeAddress(from));
        }
        if let Some(to) = envelope.to.iter().find(|to| breaks_the_command(to)) {
            return self.refuse(Stage::Rcpt, FailureKind::UnsafeAddress(to.clone()));
        }
        // What goes on the wire after 354, less dot-stuffing and the final dot: the
        // number SIZE= declares (RFC 1870), so the last line gets its CRLF here.
        let mut content = normalise_line_endings(message);
        if !content.is_empty() && !content.ends_with(b"\r\n") {
            content.extend_from_slice(b"\r\n");
        }
        let size = content.len() as u64;
        if let Some(limit) = self.caps.size.filter(|&n| n > 0)
            && size > limit
        {
            return self.refuse(Stage::Mail, FailureKind::TooBig { size, limit });
        }
        let needs_utf8 = !envelope.from.is_ascii() || envelope.to.iter().any(|a| !a.is_ascii());
        if needs_utf8 && !self.caps.smtputf8 {
            return self.refuse(Stage::Mail, FailureKind::Utf8NotOffered);
        }
        let mut mail = format!("MAIL FROM:<{}>", envelope.from);
        if self.caps.size.is_some() {
            mail.push_str(&format!(" SIZE={size}"));
        }
        if self.caps.eight_bit_mime && !content.is_ascii() {
            mail.push_str(" BODY=8BITMIME");
        }
        if needs_utf8 {
            mail.push_str(" SMTPUTF8");
        }
        let pipelined = self.caps.pipelining;
        if pipelined {
            // MAIL, every RCPT and DATA in one write (RFC 2920); the replies are
            // then read in the same order.
            let lines: Vec<String> = std::iter::once(mail)
                .chain(envelope.to.iter().map(|to| rcpt_line(to)))
                .chain(std::iter::once("DATA".to_owned()))
                .collect();
            let mut wire = Vec::new();
            for line in &lines {
                wire.extend_from_slice(line.as_bytes());
                wire.extend_from_slice(b"\r\n");
            }
            self.queue.push_back(Output::Send { wire, shown: lines });
        } else {
            self.command(&mail);
        }
        self.state = State::Transaction(Box::new(Transaction {
            recipients: envelope.to.clone(),
            content,
            pipelined,
            mail_refusal: None,
            accepted: Vec::new(),
            refused: Vec::new(),
            step: Step::Mail,
        }));
    }

    /// Says goodbye: QUIT, then [`Output::Closed`] once the server answered (or at
    /// once, when the conversation cannot take a command now).
    pub fn quit(&mut self) {
        if matches!(self.state, State::Ready) {
            self.command("QUIT");
            self.state = State::Quit;
        } else {
            self.state = State::Closed;
        }
    }

    /// Fails the message at once, without a word to the server; the conversation
    /// stays as it was.
    fn refuse(&mut self, stage: Stage, kind: FailureKind) {
        self.queue
            .push_back(Output::Failed(ClientError::new(stage, kind)));
    }

    /// Fails the connection: the failure, then the end.
    fn fail(&mut self, stage: Stage, kind: FailureKind) {
        self.queue
            .push_back(Output::Failed(ClientError::new(stage, kind)));
        self.state = State::Closed;
    }

    fn command(&mut self, line: &str) {
        self.send_line(line, line);
    }

    fn send_line(&mut self, line: &str, shown: &str) {
        let mut wire = Vec::with_capacity(line.len() + 2);
        wire.extend_from_slice(line.as_bytes());
        wire.extend_from_slice(b"\r\n");
        self.queue.push_back(Output::Send {
            wire,
            shown: vec![shown.to_owned()],
        });
    }

    fn on_reply(&mut self, reply: ServerReply) {
        match std::mem::replace(&mut self.state, State::Closed) {
            State::Greeting if reply.code == 220 => self.hello(),
            State::Greeting => self.fail(Stage::Banner, FailureKind::Refused(reply)),
            State::Ehlo if reply.is_positive() => {
                self.caps = Capabilities::from_ehlo(&reply);
                self.after_hello();
            }
            // A server that does not know EHLO refuses it permanently; one that
            // says "not now" would say the same to HELO.
            State::Ehlo if !reply.is_transient() => {
                self.command(&format!("HELO {}", self.settings.ehlo_name));
                self.state = State::Helo;
            }
            State::Helo if reply.is_positive() => {
                self.caps = Capabilities::default();
                self.after_hello();
            }
            State::Ehlo | State::Helo => self.fail(Stage::Ehlo, FailureKind::Refused(reply)),
            State::StartTls if reply.code == 220 => {
                // Anything the server sent after its 220 came before the handshake:
                // it was never protected, so it must not be read as a reply.
                if !self.inbox.is_empty() {
                    self.queue.push_back(Output::Note(format!(
                        "discarded {} bytes the server sent before TLS",
                        self.inbox.len()
                    )));
                    self.inbox.clear();
                }
                self.state = State::Handshake { implicit: false };
            }
            State::StartTls => self.fail(Stage::Tls, FailureKind::Refused(reply)),
            State::Auth(step) => self.on_auth_reply(step, reply),
            State::Transaction(transaction) => self.on_transaction_reply(*transaction, reply),
            State::Quit => self.state = State::Closed,
            // next_output() reads no reply in these states.
            idle @ (State::Handshake { .. } | State::Ready | State::Closed) => self.state = idle,
        }
    }

    fn hello(&mut self) {
        self.command(&format!("EHLO {}", self.settings.ehlo_name));
        self.state = State::Ehlo;
    }

    /// After EHLO or HELO: STARTTLS if wanted and not done yet, else AUTH.
    fn after_hello(&mut self) {
        let want_tls = match self.settings.tls {
            _ if self.tls => false,
            TlsMode::StartTls if !self.caps.starttls => {
                return self.fail(Stage::Tls, FailureKind::StartTlsNotOffered);
            }
            TlsMode::StartTls => true,
            TlsMode::StartTlsIfOffered => self.caps.starttls,
            TlsMode::None | TlsMode::Implicit => false,
        };
        if want_tls {
            self.command("STARTTLS");
            self.state = State::StartTls;
        } else {
            self.authenticate();
        }
    }

    fn authenticate(&mut self) {
        let Some(credentials) = self.settings.credentials.clone() else {
            self.state = State::Ready;
            return;
        };
        let peer = self.settings.peer;
        if !self.tls && !peer.ip().is_loopback() {
            return self.fail(Stage::Auth, FailureKind::CleartextPassword(peer));
        }
        let mechanism = match credentials.mechanism {
            AuthMechanism::Auto if self.caps.offers_auth("PLAIN") => AuthMechanism::Plain,
            AuthMechanism::Auto if self.caps.offers_auth("LOGIN") => AuthMechanism::Login,
            AuthMechanism::Auto if self.caps.auth.is_empty() => {
                return self.fail(Stage::Auth, FailureKind::NoAuthMechanism);
            }
            AuthMechanism::Auto => {
                let offered = self.caps.auth.clone();
                return self.fail(Stage::Auth, FailureKind::NoUsableAuthMechanism(offered));
            }
            chosen => chosen,
        };
        if mechanism == AuthMechanism::Plain {
            let token = BASE64.encode(format!("\0{}\0{}", credentials.user, credentials.password));
            self.send_line(&format!("AUTH PLAIN {token}"), "AUTH PLAIN [redacted]");
            self.state = State::Auth(AuthStep::Outcome);
        } else {
            self.command("AUTH LOGIN");
            self.state = State::Auth(AuthStep::LoginUser(credentials));
        }
    }

    fn on_auth_reply(&mut self, step: AuthStep, reply: ServerReply) {
        let wanted = if matches!(step, AuthStep::Outcome) {
            235
        } else {
            334
        };
        if reply.code != wanted {
            return self.fail(Stage::Auth, FailureKind::Refused(reply));
        }
        match step {
            AuthStep::LoginUser(credentials) => {
                let user = BASE64.encode(&credentials.user);
                self.send_line(&user, "[user name redacted]");
                self.state = State::Auth(AuthStep::LoginPassword(credentials));
            }
            AuthStep::LoginPassword(credentials) => {
                let password = BASE64.encode(&credentials.password);
                self.send_line(&password, "[password redacted]");
                self.state = State::Auth(AuthStep::Outcome);
            }
            AuthStep::Outcome => self.state = State::Ready,
        }
    }

    fn on_transaction_reply(&mut self, mut transaction: Transaction, reply: ServerReply) {
        match std::mem::replace(&mut transaction.step, Step::Mail) {
            Step::Mail => {
                if !reply.is_positive() {
                    transaction.mail_refusal = Some(reply);
                }
                if transaction.pipelined {
                    transaction.step = Step::Rcpt(0);
                } else if let Some(failure) = transaction.earlier_failure() {
                    return self.reset(transaction, failure);
                } else {
                    self.command(&rcpt_line(&transaction.recipients[0]));
                    transaction.step = Step::Rcpt(0);
                }
            }
            Step::Rcpt(index) => {
                let recipient = transaction.recipients[index].clone();
                if reply.is_positive() {
                    transaction.accepted.push(recipient);
                } else {
                    transaction.refused.push((recipient, reply));
                }
                let next = index + 1;
                if transaction.pipelined {
                    transaction.step = if next < transaction.recipients.len() {
                        Step::Rcpt(next)
                    } else {
                        Step::Data
                    };
                } else if next < transaction.recipients.len() {
                    self.command(&rcpt_line(&transaction.recipients[next]));
                    transaction.step = Step::Rcpt(next);
                } else if let Some(failure) = transaction.earlier_failure() {
                    return self.reset(transaction, failure);
                } else {
                    self.command("DATA");
                    transaction.step = Step::Data;
                }
            }
            Step::Data => match (transaction.earlier_failure(), reply.code == 354) {
                (Some(failure), true) => {
                    // The server wants content it will throw away (RFC 2920 section
                    // 3.1): end it at once, then say why the message was not sent.
                    self.queue.push_back(Output::Send {
                        wire: b".\r\n".to_vec(),
                        shown: Vec::new(),
                    });
                    transaction.step = Step::EndUnwanted(failure);
                }
                (Some(failure), false) => return self.reset(transaction, failure),
                (None, true) => {
                    let wire = encode_data(&transaction.content);
                    self.queue.push_back(Output::Content(wire));
                    transaction.step = Step::Content;
                }
                (None, false) => {
                    self.refuse(Stage::Data, FailureKind::Refused(reply));
                    self.state = State::Ready;
                    return;
                }
            },
            Step::Content => {
                let outcome = if reply.is_positive() {
                    Output::Sent(SendReport {
                        accepted: transaction.accepted,
                        refused: transaction.refused,
                        reply,
                    })
                } else {
                    Output::Failed(ClientError::new(
                        Stage::AfterData,
                        FailureKind::Refused(reply),
                    ))
                };
                self.queue.push_back(outcome);
                self.state = State::Ready;
                return;
            }
            // Whatever the server says to these, the failure before them is the news.
            Step::EndUnwanted(failure) | Step::Reset(failure) => {
                self.queue.push_back(Output::Failed(failure));
                self.state = State::Ready;
                return;
            }
        }
        self.state = State::Transaction(Box::new(transaction));
    }

    /// RSET after a refusal, so the connection can take the next message.
    fn reset(&mut self, mut transaction: Transaction, failure: ClientError) {
        self.command("RSET");
        transaction.step = Step::Reset(failure);
        self.state = State::Transaction(Box::new(transaction));
    }
}

/// Whether `address` would change the command it is written into.
fn breaks_the_command(address: &str) -> bool {
    address
        .chars()
        .any(|c| c.is_control() || c == '<' || c == '>')
}

fn rcpt_line(to: &str) -> String {
    format!("RCPT TO:<{to}>")
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    /// What a scripted run did, as a server would see it and a user would read it.
    #[derive(Debug, Default)]
    struct Trace {
        /// Every write, as text (one entry per write).
        writes: Vec<String>,
        /// What the transcript showed of the sent lines.
        shown: Vec<String>,
        /// Replies the conversation read, as "code text".
        replies: Vec<String>,
        notes: Vec<String>,
        handshakes: usize,
    }

    #[derive(Debug)]
    enum Stop {
        Ready,
        Sent(SendReport),
        Closed,
    }

    /// A conversation and a server script: each chunk is what one read returns; a
    /// script that runs out is the server hanging up.
    struct Run {
        conversation: Conversation,
        script: VecDeque<Vec<u8>>,
        trace: Trace,
    }

    fn loopback() -> SocketAddr {
        "127.0.0.1:25".parse().unwrap()
    }

    fn settings(tls: TlsMode, credentials: Option<Credentials>) -> Settings {
        Settings {
            ehlo_name: "client.test".into(),
            tls,
            credentials,
            peer: loopback(),
        }
    }

    fn alice(mechanism: AuthMechanism) -> Option<Credentials> {
        Some(Credentials {
            user: "alice".into(),
            password: "s3cret".into(),
            mechanism,
        })
    }

    impl Run {
        fn new(settings: Settings, script: &[&str]) -> Self {
            Run {
                conversation: Conversation::new(settings),
                script: script.iter().map(|s| s.as_bytes().to_vec()).collect(),
                trace: Trace::default(),
            }
        }

        fn plain(script: &[&str]) -> Self {
            Run::new(settings(TlsMode::None, None), script)
        }

        /// More chunks for the server to send.
        fn then(&mut self, script: &[&str]) -> &mut Self {
            self.script
                .extend(script.iter().map(|s| s.as_bytes().to_vec()));
            self
        }

        /// Does what the conversation says until it stops, as the shell would.
        fn drive(&mut self) -> Result<Stop, ClientError> {
            for _ in 0..1000 {
                match self.conversation.next_output() {
                    Output::Send { wire, shown } => {
                        self.trace.writes.push(String::from_utf8(wire).unwrap());
                        self.trace.shown.extend(shown);
                    }
                    Output::Content(wire) => {
                        self.trace.writes.push(String::from_utf8(wire).unwrap());
                        self.trace.shown.push("[content]".into());
                    }
                    Output::Received(reply) => self.trace.replies.push(reply.to_string()),
                    Output::Note(text) => self.trace.notes.push(text),
                    Output::Read => match self.script.pop_front() {
                        Some(chunk) => self.conversation.received(&chunk),
                        None => return Err(self.conversation.connection_lost(FailureKind::Closed)),
                    },
                    Output::StartTls => {
                        self.trace.handshakes += 1;
                        self.conversation.tls_established();
                    }
                    Output::Ready => return Ok(Stop::Ready),
                    Output::Sent(report) => return Ok(Stop::Sent(report)),
                    Output::Closed => return Ok(Stop::Closed),
                    Output::Failed(err) => return Err(err),
                }
            }
            panic!("the conversation never stopped: {:?}", self.trace);
        }

        fn connect(&mut self) -> &mut Self {
            let stop = self.drive();
            assert!(matches!(stop, Ok(Stop::Ready)), "{stop:?} {:?}", self.trace);
            self
        }

        fn send(&mut self, to: &[&str], message: &str) -> Result<Stop, ClientError> {
            let envelope = Envelope {
                from: "me@x.test".into(),
                to: to.iter().map(|s| s.to_string()).collect(),
            };
            self.conversation.send(&envelope, message.as_bytes());
            self.drive()
        }

        /// The writes since the first `skip`.
        fn writes_after(&self, skip: usize) -> Vec<&str> {
            self.trace.writes[skip..]
                .iter()
                .map(String::as_str)
                .collect()
        }
    }

    const GREETING: &str = "220 mx.test ESMTP\r\n";

    /// An EHLO reply offering `extensions`.
    fn ehlo(extensions: &[&str]) -> String {
        let mut lines = vec!["mx.test greets you".to_owned()];
        lines.extend(extensions.iter().map(|e| e.to_string()));
        let last = lines.len() - 1;
        lines
            .iter()
            .enumerate()
            .map(|(i, l)| format!("250{}{l}\r\n", if i == last { ' ' } else { '-' }))
            .collect()
    }

    #[track_caller]
    fn refused(result: Result<Stop, ClientError>, stage: Stage, code: u16) -> ClientError {
        match result {
            Err(err) if err.stage == stage => {
                assert!(
                    matches!(&err.kind, FailureKind::Refused(reply) if reply.code == code),
                    "{err}"
                );
                err
            }
            other => panic!("wanted a {code} refusal at {stage:?}, got {other:?}"),
        }
    }

    #[track_caller]
    fn sent(result: Result<Stop, ClientError>) -> SendReport {
        match result {
            Ok(Stop::Sent(report)) => report,
            other => panic!("not sent: {other:?}"),
        }
    }

    #[test]
    fn greets_and_reads_the_capabilities() {
        let mut run = Run::plain(&[GREETING, &ehlo(&["PIPELINING", "SIZE 1000", "AUTH PLAIN"])]);
        run.connect();
        assert_eq!(run.trace.writes, ["EHLO client.test\r\n"]);
        let caps = run.conversation.capabilities();
        assert!(caps.pipelining && caps.offers_auth("PLAIN"));
        assert_eq!(caps.size, Some(1000));
        assert!(!run.conversation.is_tls());
    }

    #[test]
    fn ehlo_refused_for_good_falls_back_to_helo_and_forgets_extensions() {
        let cases: &[(&str, Option<u16>)] = &[
            ("500 5.5.1 what is EHLO\r\n", None),
            ("502 5.5.2 not implemented\r\n", None),
            ("421 4.7.0 slow down\r\n", Some(421)),
            ("451 4.3.0 later\r\n", Some(451)),
        ];
        for &(reply, transient) in cases {
            let mut run = Run::plain(&[GREETING, reply, "250 mx.test\r\n"]);
            match transient {
                None => {
                    run.connect();
                    assert_eq!(
                        run.trace.writes,
                        ["EHLO client.test\r\n", "HELO client.test\r\n"]
                    );
                    assert_eq!(*run.conversation.capabilities(), Capabilities::default());
                }
                Some(code) => {
                    refused(run.drive(), Stage::Ehlo, code);
                    assert_eq!(run.trace.writes, ["EHLO client.test\r\n"], "no HELO");
                }
            }
        }
        let mut run = Run::plain(&[GREETING, "500 no\r\n", "550 no HELO either\r\n"]);
        refused(run.drive(), Stage::Ehlo, 550);
    }

    #[test]
    fn pipelining_puts_mail_rcpts_and_data_in_one_write_and_reads_replies_in_order() {
        let mut run = Run::plain(&[GREETING, &ehlo(&["PIPELINING"])]);
        run.connect();
        run.then(&[
            // All replies in one read, then the last one split over two reads.
            "250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 unknown\r\n250 2.1.5 ok\r\n354 go",
            " ahead\r\n",
            "250 2.0.0 queued\r\n",
        ]);
        let report = sent(run.send(&["a@x.test", "b@x.test", "c@x.test"], "hi"));
        assert_eq!(
            run.writes_after(1),
            [
                "MAIL FROM:<me@x.test>\r\nRCPT TO:<a@x.test>\r\nRCPT TO:<b@x.test>\r\n\
                 RCPT TO:<c@x.test>\r\nDATA\r\n",
                "hi\r\n.\r\n"
            ]
        );
        assert_eq!(report.accepted, ["a@x.test", "c@x.test"]);
        assert_eq!(report.refused.len(), 1);
        assert_eq!(report.refused[0].0, "b@x.test");
        assert_eq!(report.refused[0].1.code, 550);
        assert_eq!(report.reply.to_string(), "250 2.0.0 queued");
        assert_eq!(
            run.trace.replies[2..],
            [
                "250 2.1.0 ok",
                "250 2.1.5 ok",
                "550 5.1.1 unknown",
                "250 2.1.5 ok",
                "354 go ahead",
                "250 2.0.0 queued"
            ]
        );
        assert!(matches!(run.drive(), Ok(Stop::Ready)), "ready for another");
    }

    #[test]
    fn without_pipelining_each_command_waits_for_its_reply() {
        let mut run = Run::plain(&[GREETING, &ehlo(&[])]);
        run.connect();
        run.then(&[
            "250 ok\r\n",
            "550 no\r\n",
            "550 no\r\n",
            "250 ok\r\n",
            "354 go\r\n",
            "250 queued\r\n",
        ]);
        let report = sent(run.send(&["a@x.test", "b@x.test", "c@x.test"], "hi\r\n"));
        assert_eq!(
            run.writes_after(1),
            [
                "MAIL FROM:<me@x.test>\r\n",
                "RCPT TO:<a@x.test>\r\n",
                "RCPT TO:<b@x.test>\r\n",
                "RCPT TO:<c@x.test>\r\n",
                "DATA\r\n",
                "hi\r\n.\r\n"
            ]
        );
        assert_eq!(report.accepted, ["c@x.test"]);
        let refused: Vec<&str> = report.refused.iter().map(|(r, _)| r.as_str()).collect();
        assert_eq!(refused, ["a@x.test", "b@x.test"]);
    }

    #[test]
    fn every_recipient_refused_fails_with_the_first_refusal() {
        // (pipelining, the reply to DATA, what the client sends after the replies)
        let cases: &[(bool, &str, &[&str])] = &[
            // RFC 2920: a 354 for content that will not be sent gets the dot at once.
            (true, "354 go ahead\r\n", &[".\r\n"]),
            (true, "554 5.5.1 no valid recipients\r\n", &["RSET\r\n"]),
            (false, "", &["RSET\r\n"]),
        ];
        for &(pipelining, data_reply, after) in cases {
            let extensions: &[&str] = if pipelining { &["PIPELINING"] } else { &[] };
            let mut run = Run::plain(&[GREETING, &ehlo(extensions)]);
            run.connect();
            let mut replies = vec!["250 ok\r\n", "550 5.1.1 first\r\n", "551 5.1.6 second\r\n"];
            if pipelining {
                replies.push(data_reply);
            }
            replies.push("250 ok\r\n");
            run.then(&replies);
            let writes_before = run.trace.writes.len();
            let err = refused(
                run.send(&["a@x.test", "b@x.test"], "secret body"),
                Stage::Rcpt,
                550,
            );
            assert_eq!(
                err.to_string(),
                "RCPT TO failed: the server said 550 5.1.1 first"
            );
            let writes = run.writes_after(writes_before);
            assert_eq!(writes[writes.len() - after.len()..], *after, "{writes:?}");
            assert!(!writes.iter().any(|w| w.contains("secret")), "{writes:?}");
            assert!(!writes.contains(&"DATA\r\n"), "{writes:?}");
            assert!(matches!(run.drive(), Ok(Stop::Ready)), "usable again");
        }
    }

    #[test]
    fn mail_refused_is_reported_even_when_the_server_hangs_up() {
        // Pipelined: the server answers MAIL with 421 and closes.
        let mut run = Run::plain(&[GREETING, &ehlo(&["PIPELINING"])]);
        run.connect();
        run.then(&["421 4.3.2 shutting down\r\n"]);
        refused(run.send(&["a@x.test"], "hi"), Stage::Mail, 421);
        assert!(matches!(run.drive(), Ok(Stop::Closed)));
        // Pipelined: RCPT refused with 421, then the hang-up before DATA's reply.
        let mut run = Run::plain(&[GREETING, &ehlo(&["PIPELINING"])]);
        run.connect();
        run.then(&["250 ok\r\n421 4.3.2 shutting down\r\n"]);
        refused(run.send(&["a@x.test"], "hi"), Stage::Rcpt, 421);
        // Step by step: MAIL refused, the RSET finds the connection closed.
        let mut run = Run::plain(&[GREETING, &ehlo(&[])]);
        run.connect();
        run.then(&["421 4.3.2 shutting down\r\n"]);
        refused(run.send(&["a@x.test"], "hi"), Stage::Mail, 421);
        assert_eq!(
            run.writes_after(1),
            ["MAIL FROM:<me@x.test>\r\n", "RSET\r\n"]
        );
    }

    #[test]
    fn a_421_at_any_stage_names_that_stage() {
        const BYE: &str = "421 4.3.2 closing\r\n";
        let ehlo_reply = ehlo(&["STARTTLS", "AUTH PLAIN"]);
        let cases: Vec<(Settings, Vec<&str>, Stage)> = vec![
            (settings(TlsMode::None, None), vec![BYE], Stage::Banner),
            (
                settings(TlsMode::None, None),
                vec![GREETING, BYE],
                Stage::Ehlo,
            ),
            (
                settings(TlsMode::StartTls, None),
                vec![GREETING, &ehlo_reply, BYE],
                Stage::Tls,
            ),
            (
                settings(TlsMode::None, alice(AuthMechanism::Auto)),
                vec![GREETING, &ehlo_reply, BYE],
                Stage::Auth,
            ),
            (
                settings(TlsMode::None, None),
                vec![GREETING, &ehlo_reply, BYE],
                Stage::Mail,
            ),
            (
                settings(TlsMode::None, None),
                vec![GREETING, &ehlo_reply, "250 ok\r\n", BYE],
                Stage::Rcpt,
            ),
            (
                settings(TlsMode::None, None),
                vec![GREETING, &ehlo_reply, "250 ok\r\n", "250 ok\r\n", BYE],
                Stage::Data,
            ),
            (
                settings(TlsMode::None, None),
                vec![
                    GREETING,
                    &ehlo_reply,
                    "250 ok\r\n",
                    "250 ok\r\n",
                    "354 go\r\n",
                    BYE,
                ],
                Stage::AfterData,
            ),
        ];
        for (settings, script, stage) in cases {
            let mut run = Run::new(settings, &script);
            let result = match run.drive() {
                Ok(Stop::Ready) => run.send(&["a@x.test"], "hi"),
                other => other,
            };
            refused(result, stage, 421);
        }
    }

    #[test]
    fn auth_plain_sends_one_line_and_shows_it_redacted() {
        let mut run = Run::new(
            settings(TlsMode::None, alice(AuthMechanism::Auto)),
            &[GREETING, &ehlo(&["AUTH LOGIN PLAIN"]), "235 2.7.0 ok\r\n"],
        );
        run.connect();
        // base64("\0alice\0s3cret")
        assert_eq!(run.trace.writes[1], "AUTH PLAIN AGFsaWNlAHMzY3JldA==\r\n");
        assert_eq!(run.trace.shown[1], "AUTH PLAIN [redacted]");
    }

    #[test]
    fn auth_login_answers_both_continuations() {
        let script = [
            GREETING,
            &ehlo(&["AUTH LOGIN"]),
            "334 VXNlcm5hbWU6\r\n",
            "334 UGFzc3dvcmQ6\r\n",
        ];
        let mut run = Run::new(settings(TlsMode::None, alice(AuthMechanism::Auto)), &script);
        run.then(&["235 2.7.0 ok\r\n"]).connect();
        assert_eq!(
            run.writes_after(1),
            ["AUTH LOGIN\r\n", "YWxpY2U=\r\n", "czNjcmV0\r\n"]
        );
        assert_eq!(
            run.trace.shown[1..],
            ["AUTH LOGIN", "[user name redacted]", "[password redacted]"]
        );
        // A wrong password: 535 after the second continuation.
        let mut run = Run::new(
            settings(TlsMode::None, alice(AuthMechanism::Login)),
            &script,
        );
        run.then(&["535 5.7.8 credentials invalid\r\n"]);
        let err = refused(run.drive(), Stage::Auth, 535);
        assert_eq!(
            err.to_string(),
            "AUTH failed: the server said 535 5.7.8 credentials invalid"
        );
        // No 334 where one is due.
        let mut run = Run::new(
            settings(TlsMode::None, alice(AuthMechanism::Login)),
            &[GREETING, &ehlo(&[]), "504 5.5.4 unknown mechanism\r\n"],
        );
        refused(run.drive(), Stage::Auth, 504);
    }

    #[test]
    fn the_transcript_never_shows_a_secret() {
        for mechanism in [AuthMechanism::Plain, AuthMechanism::Login] {
            let mut run = Run::new(
                settings(TlsMode::None, alice(mechanism)),
                &[GREETING, &ehlo(&[]), "334 \r\n", "334 \r\n", "235 ok\r\n"],
            );
            let _ = run.drive();
            let shown = run.trace.shown.join("\n");
            for secret in ["s3cret", "czNjcmV0", "AHMzY3JldA", "YWxpY2U"] {
                assert!(!shown.contains(secret), "{secret} in {shown}");
            }
            assert!(format!("{:?}", run.conversation).contains("[redacted]"));
            assert!(!format!("{:?}", run.conversation).contains("s3cret"));
        }
    }

    #[test]
    fn auth_mechanism_choice() {
        let cases: &[(&[&str], FailureKind)] = &[
            (&[], FailureKind::NoAuthMechanism),
            (
                &["AUTH CRAM-MD5 XOAUTH2"],
                FailureKind::NoUsableAuthMechanism(vec!["CRAM-MD5".into(), "XOAUTH2".into()]),
            ),
        ];
        for (extensions, want) in cases {
            let mut run = Run::new(
                settings(TlsMode::None, alice(AuthMechanism::Auto)),
                &[GREETING, &ehlo(extensions)],
            );
            let err = run.drive().unwrap_err();
            assert_eq!(err.stage, Stage::Auth);
            assert_eq!(err.kind.to_string(), want.to_string());
            assert_eq!(run.trace.writes.len(), 1, "nothing after EHLO");
        }
    }

    #[test]
    fn no_password_in_clear_text_to_another_machine() {
        let remote: SocketAddr = "192.0.2.7:587".parse().unwrap();
        let mut run = Run::new(
            Settings {
                peer: remote,
                ..settings(TlsMode::None, alice(AuthMechanism::Auto))
            },
            &[GREETING, &ehlo(&["AUTH PLAIN"])],
        );
        let err = run.drive().unwrap_err();
        assert_eq!(err.stage, Stage::Auth);
        assert!(matches!(err.kind, FailureKind::CleartextPassword(peer) if peer == remote));
        assert_eq!(run.trace.writes, ["EHLO client.test\r\n"]);
        // Under TLS it goes.
        let mut run = Run::new(
            Settings {
                peer: remote,
                ..settings(TlsMode::Implicit, alice(AuthMechanism::Auto))
            },
            &[GREETING, &ehlo(&["AUTH PLAIN"]), "235 ok\r\n"],
        );
        run.connect();
        assert!(run.trace.writes[1].starts_with("AUTH PLAIN "));
    }

    #[test]
    fn starttls_required_but_not_offered_sends_nothing_more() {
        let mut run = Run::new(
            settings(TlsMode::StartTls, alice(AuthMechanism::Auto)),
            &[GREETING, &ehlo(&["AUTH PLAIN"])],
        );
        let err = run.drive().unwrap_err();
        assert_eq!(err.stage, Stage::Tls);
        assert!(matches!(err.kind, FailureKind::StartTlsNotOffered));
        assert_eq!(
            err.to_string(),
            "TLS failed: the server does not offer STARTTLS"
        );
        assert_eq!(run.trace.writes, ["EHLO client.test\r\n"]);
        assert!(matches!(run.drive(), Ok(Stop::Closed)));
    }

    #[test]
    fn starttls_if_offered() {
        // Not offered: clear text.
        let mut run = Run::new(
            settings(TlsMode::StartTlsIfOffered, None),
            &[GREETING, &ehlo(&[])],
        );
        run.connect();
        assert_eq!(
            (run.trace.handshakes, run.conversation.is_tls()),
            (0, false)
        );
        // Offered: STARTTLS, the handshake, a new EHLO.
        let mut run = Run::new(
            settings(TlsMode::StartTlsIfOffered, None),
            &[
                GREETING,
                &ehlo(&["STARTTLS"]),
                "220 go ahead\r\n",
                &ehlo(&[]),
            ],
        );
        run.connect();
        assert_eq!(
            run.trace.writes,
            [
                "EHLO client.test\r\n",
                "STARTTLS\r\n",
                "EHLO client.test\r\n"
            ]
        );
        assert_eq!((run.trace.handshakes, run.conversation.is_tls()), (1, true));
    }

    #[test]
    fn after_tls_capabilities_are_forgotten_and_early_bytes_dropped() {
        let mut run = Run::new(
            settings(TlsMode::StartTls, None),
            &[
                GREETING,
                &ehlo(&["STARTTLS", "PIPELINING", "AUTH PLAIN", "SIZE 10"]),
                // A reply smuggled in before the handshake must not be read.
                "220 go ahead\r\n250-injected\r\n250 PIPELINING\r\n",
                &ehlo(&["8BITMIME"]),
            ],
        );
        run.connect();
        assert_eq!(
            run.trace.notes,
            ["discarded 30 bytes the server sent before TLS"]
        );
        let caps = run.conversation.capabilities();
        assert!(caps.eight_bit_mime);
        assert!(!caps.pipelining && !caps.starttls && caps.auth.is_empty());
        assert_eq!(caps.size, None);
        assert!(!run.trace.replies.iter().any(|r| r.contains("injected")));
    }

    #[test]
    fn starttls_refused_fails_at_tls() {
        let mut run = Run::new(
            settings(TlsMode::StartTls, None),
            &[GREETING, &ehlo(&["STARTTLS"]), "454 4.7.0 not now\r\n"],
        );
        refused(run.drive(), Stage::Tls, 454);
        assert_eq!(run.trace.handshakes, 0);
    }

    #[test]
    fn implicit_tls_starts_with_the_handshake() {
        let mut conversation = Conversation::new(settings(TlsMode::Implicit, None));
        assert!(matches!(conversation.next_output(), Output::StartTls));
        let err = conversation.connection_lost(FailureKind::Closed);
        assert_eq!(err.stage, Stage::Tls);
        let mut run = Run::new(settings(TlsMode::Implicit, None), &[GREETING, &ehlo(&[])]);
        run.connect();
        assert_eq!((run.trace.handshakes, run.conversation.is_tls()), (1, true));
    }

    #[test]
    fn size_and_smtputf8_are_checked_before_mail() {
        let mut run = Run::plain(&[GREETING, &ehlo(&["SIZE 10"])]);
        run.connect();
        let err = run.send(&["a@x.test"], "twelve bytes").unwrap_err();
        assert_eq!(err.stage, Stage::Mail);
        assert!(matches!(
            err.kind,
            FailureKind::TooBig {
                size: 14,
                limit: 10
            }
        ));
        assert_eq!(run.trace.writes.len(), 1, "nothing sent");
        // The connection is still good: a small message goes, with SIZE= declared.
        run.then(&["250 ok\r\n", "250 ok\r\n", "354 go\r\n", "250 ok\r\n"]);
        sent(run.send(&["a@x.test"], "tiny"));
        assert_eq!(run.trace.writes[1], "MAIL FROM:<me@x.test> SIZE=6\r\n");

        let mut run = Run::plain(&[GREETING, &ehlo(&[])]);
        run.connect();
        let err = run.send(&["åse@x.test"], "hi").unwrap_err();
        assert_eq!(err.stage, Stage::Mail);
        assert!(matches!(err.kind, FailureKind::Utf8NotOffered));
        assert_eq!(run.trace.writes.len(), 1, "nothing sent");

        let mut run = Run::plain(&[GREETING, &ehlo(&["SMTPUTF8", "8BITMIME"])]);
        run.connect();
        run.then(&["250 ok\r\n", "250 ok\r\n", "354 go\r\n", "250 ok\r\n"]);
        sent(run.send(&["åse@x.test"], "blåbær"));
        assert_eq!(
            run.trace.writes[1],
            "MAIL FROM:<me@x.test> BODY=8BITMIME SMTPUTF8\r\n"
        );
    }

    #[test]
    fn content_is_dot_stuffed_and_refusals_after_it_are_reported() {
        let mut run = Run::plain(&[GREETING, &ehlo(&[])]);
        run.connect();
        run.then(&[
            "250 ok\r\n",
            "250 ok\r\n",
            "354 go\r\n",
            "554 5.7.1 spam\r\n",
        ]);
        refused(run.send(&["a@x.test"], ".line\nend"), Stage::AfterData, 554);
        assert_eq!(run.trace.writes[4], "..line\r\nend\r\n.\r\n");
        let mut run = Run::plain(&[GREETING, &ehlo(&[])]);
        run.connect();
        run.then(&["250 ok\r\n", "250 ok\r\n", "451 4.3.0 not now\r\n"]);
        refused(run.send(&["a@x.test"], "hi"), Stage::Data, 451);
    }

    #[test]
    fn several_messages_on_one_connection_then_quit() {
        let mut run = Run::plain(&[GREETING, &ehlo(&["PIPELINING"])]);
        run.connect();
        for n in 1..=3 {
            run.then(&[
                "250 ok\r\n250 ok\r\n354 go\r\n",
                &format!("250 queued as {n}\r\n"),
            ]);
            let report = sent(run.send(&["a@x.test"], "hi"));
            assert_eq!(report.reply.text(), format!("queued as {n}"));
        }
        run.then(&["221 bye\r\n"]);
        run.conversation.quit();
        assert!(matches!(run.drive(), Ok(Stop::Closed)));
        assert_eq!(run.trace.writes.last().unwrap(), "QUIT\r\n");
        assert_eq!(run.trace.writes.len(), 1 + 3 * 2 + 1);
        // Nothing more goes out once the conversation is over.
        let err = run.send(&["a@x.test"], "hi").unwrap_err();
        assert!(matches!(err.kind, FailureKind::Closed));
    }

    #[test]
    fn how_the_replies_are_cut_into_reads_changes_nothing() {
        // (settings, the server's whole side of the conversation)
        let pipelined = [
            GREETING,
            &ehlo(&["PIPELINING", "AUTH LOGIN", "SIZE 100"]),
            "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n235 ok\r\n",
            "250 ok\r\n550 no\r\n250 ok\r\n354 go\r\n250-queued\r\n250 as 1\r\n221 bye\r\n",
        ]
        .concat();
        let step_by_step = [
            GREETING,
            "500 no EHLO\r\n250 hi\r\n",
            "250 ok\r\n550 no\r\n551 no\r\n250 reset\r\n221 bye\r\n",
        ]
        .concat();
        let unwanted_354 = [
            GREETING,
            &ehlo(&["PIPELINING"]),
            "250 ok\r\n550 no\r\n551 no\r\n354 go\r\n554 no\r\n221 bye\r\n",
        ]
        .concat();
        let cases = [
            (
                settings(TlsMode::None, alice(AuthMechanism::Auto)),
                pipelined,
            ),
            (settings(TlsMode::None, None), step_by_step),
            (settings(TlsMode::StartTlsIfOffered, None), unwanted_354),
        ];
        for (settings, server) in cases {
            let play = |cut: usize| {
                let mut run = Run::new(settings.clone(), &[]);
                run.script = server.as_bytes().chunks(cut).map(<[u8]>::to_vec).collect();
                let connected = run.drive();
                let sent = run.send(&["a@x.test", "b@x.test"], "hi");
                run.conversation.quit();
                let closed = run.drive();
                (format!("{connected:?} {sent:?} {closed:?}"), run.trace)
            };
            let (whole, whole_trace) = play(server.len());
            assert!(whole.ends_with("Ok(Closed)"), "{whole}");
            for cut in 1..=9 {
                let (outcome, trace) = play(cut);
                assert_eq!(outcome, whole, "cut every {cut} bytes");
                assert_eq!(trace.writes, whole_trace.writes, "cut every {cut} bytes");
                assert_eq!(trace.replies, whole_trace.replies, "cut every {cut} bytes");
            }
        }
    }

    #[test]
    fn addresses_cannot_smuggle_commands_or_parameters() {
        let cases: &[(&str, &str, Stage)] = &[
            (
                "me@x.test",
                "a@x.test\r\nRCPT TO:<evil@y.test>",
                Stage::Rcpt,
            ),
            ("me@x.test", "a@x.test\n", Stage::Rcpt),
            ("me@x.test", "a@x.test> NOTIFY=NEVER", Stage::Rcpt),
            ("me@x.test\r\nRSET", "a@x.test", Stage::Mail),
            ("me@x.test> SMTPUTF8 <", "a@x.test", Stage::Mail),
            ("me@x.test\0", "a@x.test", Stage::Mail),
        ];
        for &(from, to, stage) in cases {
            for extensions in [&["PIPELINING"][..], &[]] {
                let mut run = Run::plain(&[GREETING, &ehlo(extensions)]);
                run.connect();
                let envelope = Envelope {
                    from: from.into(),
                    to: vec!["ok@x.test".into(), to.into()],
                };
                run.conversation.send(&envelope, b"hi");
                let err = run.drive().unwrap_err();
                assert_eq!(err.stage, stage, "{from:?} {to:?}");
                assert!(matches!(err.kind, FailureKind::UnsafeAddress(_)));
                assert_eq!(run.trace.writes.len(), 1, "nothing sent");
                assert!(matches!(run.drive(), Ok(Stop::Ready)));
            }
        }
        // The null sender and UTF-8 addresses are fine.
        let mut run = Run::plain(&[GREETING, &ehlo(&["SMTPUTF8"])]);
        run.connect();
        run.then(&["250 ok\r\n", "250 ok\r\n", "354 go\r\n", "250 ok\r\n"]);
        let envelope = Envelope {
            from: String::new(),
            to: vec!["åse@x.test".into()],
        };
        run.conversation.send(&envelope, b"hi");
        sent(run.drive());
        assert_eq!(run.trace.writes[1], "MAIL FROM:<> SMTPUTF8\r\n");
    }

    #[test]
    fn broken_replies_and_misuse() {
        let mut run = Run::plain(&["hello there\r\n"]);
        let err = run.drive().unwrap_err();
        assert_eq!(err.stage, Stage::Banner);
        assert!(
            err.to_string()
                .starts_with("greeting failed: the server's reply makes no sense")
        );
        // A message before the conversation is ready, and one without recipients.
        let mut run = Run::plain(&[GREETING, &ehlo(&[])]);
        let err = run.send(&["a@x.test"], "hi").unwrap_err();
        assert!(matches!(err.kind, FailureKind::NotReady));
        run.connect();
        let err = run.send(&[], "hi").unwrap_err();
        assert!(matches!(err.kind, FailureKind::NoRecipient));
        assert_eq!(run.trace.writes.len(), 1);
    }
}
