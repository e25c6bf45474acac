//! Every reply the SMTP server sends, in one catalogue.
//!
//! The session picks an [`Answer`] (2xx and 3xx: the command went through, or the
//! server waits for more) or a [`Refusal`] (4xx and 5xx); only this module turns
//! them into a code, an enhanced status code (RFC 3463, with the additions of RFC
//! 4954 and 6531) and a text. Behaviour that depends on what was answered
//! asks the value ([`Refusal::is_protocol_error`], [`Refusal::ends_transaction`]),
//! never the number. The tests at the bottom check every entry's enhanced code
//! against the registry and its class against the reply code.

use sokkel_net::chaos::Point;
use sokkel_net::stats::RejectReason;

use crate::reply::Reply;

use super::request::Unsupported;
use super::session::SessionConfig;

/// The replies that say yes, or "go on".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 220: the greeting.
    Greeting,
    /// 250: HELO accepted.
    Helo {
        /// The client's name.
        client: String,
    },
    /// 250: EHLO accepted, with the extensions on offer now.
    Ehlo {
        /// The client's name.
        client: String,
        /// Offer STARTTLS.
        starttls: bool,
        /// Offer AUTH PLAIN LOGIN.
        auth: bool,
    },
    /// 250 2.1.0: sender accepted.
    SenderOk,
    /// 250 2.1.5: recipient accepted.
    RecipientOk,
    /// 354: send the content.
    StartData,
    /// 250 2.0.0: a BDAT chunk that is not the last was read.
    ChunkReceived {
        /// The chunk's size.
        size: usize,
        /// The message's size so far.
        total: usize,
    },
    /// 250 2.0.0: the message is stored.
    Queued {
        /// Its id in the store.
        id: String,
    },
    /// 250 2.0.0: RSET and NOOP.
    Ok,
    /// 221 2.0.0: QUIT.
    Bye,
    /// 252 2.5.0: VRFY (RFC 5321 section 3.5.3: cannot verify, will accept).
    CannotVerify,
    /// 214 2.0.0: HELP.
    Help,
    /// 220 2.0.0: STARTTLS accepted; the handshake follows.
    ReadyForTls,
    /// 334 with an empty challenge: AUTH PLAIN waits for the credentials.
    AuthPlainChallenge,
    /// 334 "Username:" in base64: AUTH LOGIN waits for the user name.
    AuthUserChallenge,
    /// 334 "Password:" in base64: AUTH LOGIN waits for the password.
    AuthPasswordChallenge,
    /// 235 2.7.0: logged in.
    AuthSucceeded,
}

/// Which address a refused path was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressKind {
    /// MAIL FROM.
    Sender,
    /// RCPT TO.
    Recipient,
}

/// The replies that say no: to a command, a message, or the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    // Lines the server could not read.
    /// 500 5.5.6: a command line over the limit.
    LineTooLong,
    /// 500 5.5.6: an AUTH response line over the limit (RFC 4954 section 4).
    AuthLineTooLong,
    /// 500 5.5.2: a command line ended with a bare LF.
    BareLfCommand,
    /// 500 5.5.2: a command line that is not UTF-8.
    NotUtf8,
    /// 500 5.5.2: no verb.
    EmptyCommand,
    /// 500 5.5.2: an unknown verb.
    Unrecognized,
    /// 502 5.5.1: a verb this server does not implement.
    NotImplemented(Unsupported),

    // Syntax of a known command.
    /// 501 5.5.4: HELO or EHLO without one name.
    HeloSyntax {
        /// EHLO rather than HELO.
        extended: bool,
    },
    /// 501 5.5.4: MAIL not in the form `FROM:<address>`.
    MailSyntax,
    /// 501 5.5.4: RCPT not in the form `TO:<address>`.
    RcptSyntax,
    /// 501 5.5.4: DATA with arguments.
    DataSyntax,
    /// 501 5.5.4: BDAT not in the form `size [LAST]`.
    BdatSyntax,
    /// 501 5.5.4: RSET with arguments.
    RsetSyntax,
    /// 501 5.5.4: VRFY without an address.
    VrfySyntax,
    /// 501 5.5.4: STARTTLS with arguments.
    StartTlsSyntax,
    /// 501 5.5.4: AUTH without a mechanism.
    AuthSyntax,
    /// 501 5.5.4: SIZE without a number.
    SizeSyntax,
    /// 501 5.5.4: BODY other than 7BIT or 8BITMIME.
    BodySyntax,
    /// 555 5.5.4: MAIL parameters after HELO (they need EHLO).
    ParametersNeedEhlo,
    /// 555 5.5.4: a MAIL or RCPT parameter this server does not know.
    UnsupportedParameter(String),
    /// 501 5.1.7 (sender) or 5.1.3 (recipient): a path that is not an address.
    BadAddress {
        /// Whose address.
        kind: AddressKind,
        /// What is wrong with it.
        why: &'static str,
    },
    /// 553 5.6.7 (RFC 6531): a non-ASCII address without SMTPUTF8.
    NonAsciiAddress(AddressKind),

    // Commands out of order.
    /// 503 5.5.1: MAIL before HELO or EHLO.
    NeedHelo,
    /// 503 5.5.1: BDAT or AUTH before EHLO.
    NeedEhlo,
    /// 503 5.5.1: MAIL inside a transaction.
    NestedMail,
    /// 503 5.5.1: RCPT before MAIL.
    NeedMailBeforeRcpt,
    /// 503 5.5.1: DATA or BDAT before MAIL.
    NeedMail,
    /// 503 5.5.1: DATA or BDAT before RCPT.
    NeedRcpt,
    /// 503 5.5.1: DATA after BDAT chunks (RFC 3030).
    DataAfterBdat,

    // Policy and limits.
    /// 530 5.7.0 (RFC 3207): MAIL before STARTTLS where TLS is required.
    MustStartTls,
    /// 552 5.3.4: SIZE declared over the limit.
    SizeExceeded,
    /// 552 5.3.4: content over the limit; the transaction is over.
    MessageTooBig,
    /// 452 4.5.3: one recipient too many.
    TooManyRecipients,
    /// 452 4.3.1: the budget for messages in flight is spent.
    InsufficientStorage,
    /// 550 5.5.2: content with bare LFs where they are refused; the session closes.
    BareLfContent,
    /// 451 4.3.0: the store failed.
    StoreFailed,

    // STARTTLS and AUTH.
    /// 502 5.5.1: STARTTLS without a certificate.
    StartTlsNotEnabled,
    /// 503 5.5.1: STARTTLS under TLS.
    TlsActive,
    /// 502 5.5.1: AUTH without credentials configured.
    AuthNotEnabled,
    /// 538 5.7.11 (RFC 4954): AUTH in clear text.
    EncryptionRequired,
    /// 503 5.5.1: AUTH after a successful AUTH.
    AlreadyAuthenticated,
    /// 503 5.5.1: AUTH inside a transaction.
    AuthInTransaction,
    /// 504 5.5.4: a mechanism other than PLAIN and LOGIN.
    UnknownMechanism,
    /// 501 5.7.0: the client cancelled the exchange with `*` (or gave `=`).
    AuthCancelled,
    /// 501 5.5.2: a response that is not base64 of the expected form.
    CannotDecode(String),
    /// 535 5.7.8 (RFC 4954): wrong user name or password.
    AuthFailed,

    /// A chaos trigger fired (`--chaos`, `/api/v1/chaos`): the configured code,
    /// with the enhanced code that fits it at that point ([`chaos_enhanced`]).
    Chaos {
        /// Where it fired.
        point: Point,
        /// The code configured, 400 to 599.
        code: u16,
    },

    // The session ends (421, RFC 5321 section 3.8).
    /// 421 4.7.0: the server holds as many sessions as it may (the shell's
    /// answer to a connection over the cap, before any session starts).
    TooManyConnections,
    /// 421 4.7.0: too many failed logins.
    TooManyAuthFailures,
    /// 421 4.7.0: too many protocol errors.
    TooManyErrors,
    /// 421 4.4.2: the client was silent too long.
    TimedOut,
    /// 421 4.3.2: the server is stopping.
    ShuttingDown,
}

impl Answer {
    /// The reply on the wire.
    pub fn reply(&self, config: &SessionConfig) -> Reply {
        let host = &config.hostname;
        let (code, enhanced, text) = match self {
            Answer::Greeting => (220, "", format!("{host} ESMTP sokkel mail catcher")),
            Answer::Helo { client } => (250, "", format!("{host} greets {client}")),
            Answer::Ehlo {
                client,
                starttls,
                auth,
            } => return ehlo(config, client, *starttls, *auth),
            Answer::SenderOk => (250, "2.1.0", "Ok".into()),
            Answer::RecipientOk => (250, "2.1.5", "Ok".into()),
            Answer::StartData => (354, "", "End data with <CR><LF>.<CR><LF>".into()),
            Answer::ChunkReceived { size, total } => (
                250,
                "2.0.0",
                format!("{size} octets received, {total} in all"),
            ),
            Answer::Queued { id } => (250, "2.0.0", format!("Ok: queued as {id}")),
            Answer::Ok => (250, "2.0.0", "Ok".into()),
            Answer::Bye => (221, "2.0.0", format!("{host} Bye")),
            Answer::CannotVerify => (
                252,
                "2.5.0",
                "Cannot VRFY user, but will accept message and attempt delivery".into(),
            ),
            Answer::Help => (
                214,
                "2.0.0",
                "Commands: EHLO HELO STARTTLS AUTH MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP; this server catches every message and relays none".into(),
            ),
            Answer::ReadyForTls => (220, "2.0.0", "Ready to start TLS".into()),
            Answer::AuthPlainChallenge => (334, "", String::new()),
            // "Username:" and "Password:" in base64, as every LOGIN client expects.
            Answer::AuthUserChallenge => (334, "", "VXNlcm5hbWU6".into()),
            Answer::AuthPasswordChallenge => (334, "", "UGFzc3dvcmQ6".into()),
            Answer::AuthSucceeded => (235, "2.7.0", "Authentication successful".into()),
        };
        Reply::new(code, enhanced, text)
    }
}

/// The multi-line EHLO reply: the greeting line, then one extension per line.
fn ehlo(config: &SessionConfig, client: &str, starttls: bool, auth: bool) -> Reply {
    let mut lines = vec![
        format!("{} greets {client}", config.hostname),
        "PIPELINING".into(),
        format!("SIZE {}", config.max_message_size),
        "8BITMIME".into(),
        "SMTPUTF8".into(),
        "ENHANCEDSTATUSCODES".into(),
        "CHUNKING".into(),
    ];
    if starttls {
        lines.push("STARTTLS".into());
    }
    if auth {
        lines.push("AUTH PLAIN LOGIN".into());
    }
    if let Some(token) = &config.store_token {
        lines.push(format!("XSOKKEL-STORE {token}"));
    }
    Reply {
        code: 250,
        enhanced: "",
        lines,
    }
}

impl Refusal {
    /// Whether the client broke the protocol (an unknown or malformed command, one
    /// out of order, an unknown parameter): these count towards the session's
    /// error limit. Refusals of policy, limits and storage do not.
    pub fn is_protocol_error(&self) -> bool {
        use Refusal::*;
        match self {
            LineTooLong
            | AuthLineTooLong
            | BareLfCommand
            | NotUtf8
            | EmptyCommand
            | Unrecognized
            | NotImplemented(_)
            | HeloSyntax { .. }
            | MailSyntax
            | RcptSyntax
            | DataSyntax
            | BdatSyntax
            | RsetSyntax
            | VrfySyntax
            | StartTlsSyntax
            | AuthSyntax
            | SizeSyntax
            | BodySyntax
            | ParametersNeedEhlo
            | UnsupportedParameter(_)
            | BadAddress { .. }
            | NeedHelo
            | NeedEhlo
            | NestedMail
            | NeedMailBeforeRcpt
            | NeedMail
            | NeedRcpt
            | DataAfterBdat
            | StartTlsNotEnabled
            | TlsActive
            | AuthNotEnabled
            | AlreadyAuthenticated
            | AuthInTransaction
            | UnknownMechanism
            | AuthCancelled
            | CannotDecode(_) => true,
            NonAsciiAddress(_)
            | MustStartTls
            | SizeExceeded
            | MessageTooBig
            | TooManyRecipients
            | InsufficientStorage
            | BareLfContent
            | StoreFailed
            | EncryptionRequired
            | AuthFailed
            | TooManyConnections
            | TooManyAuthFailures
            | TooManyErrors
            | TimedOut
            | ShuttingDown
            | Chaos { .. } => false,
        }
    }

    /// Why a transaction command or a message was refused, for
    /// `sokkel_smtp_messages_rejected_total{reason}`; `None` for the refusals
    /// that never answer MAIL, RCPT, DATA, BDAT or a message's end (STARTTLS,
    /// AUTH and the 421s that end a session).
    pub fn reason(&self) -> Option<RejectReason> {
        use Refusal::*;
        Some(match self {
            SizeExceeded | MessageTooBig => RejectReason::Size,
            TooManyRecipients => RejectReason::Recipients,
            InsufficientStorage => RejectReason::Memory,
            BareLfContent => RejectReason::BareLf,
            StoreFailed => RejectReason::Store,
            Chaos { .. } => RejectReason::Chaos,
            MustStartTls => RejectReason::TlsRequired,
            LineTooLong
            | BareLfCommand
            | NotUtf8
            | EmptyCommand
            | Unrecognized
            | NotImplemented(_)
            | HeloSyntax { .. }
            | MailSyntax
            | RcptSyntax
            | DataSyntax
            | BdatSyntax
            | RsetSyntax
            | VrfySyntax
            | StartTlsSyntax
            | AuthSyntax
            | SizeSyntax
            | BodySyntax
            | ParametersNeedEhlo
            | UnsupportedParameter(_)
            | BadAddress { .. }
            | NonAsciiAddress(_) => RejectReason::Syntax,
            NeedHelo | NeedEhlo | NestedMail | NeedMailBeforeRcpt | NeedMail | NeedRcpt
            | DataAfterBdat => RejectReason::Sequence,
            AuthLineTooLong | StartTlsNotEnabled | TlsActive | AuthNotEnabled
            | EncryptionRequired | AlreadyAuthenticated | AuthInTransaction | UnknownMechanism
            | AuthCancelled | CannotDecode(_) | AuthFailed | TooManyConnections
            | TooManyAuthFailures | TooManyErrors | TimedOut | ShuttingDown => return None,
        })
    }

    /// Whether a BDAT chunk refused with this ends the whole transaction (RFC 3030:
    /// a message over the size limit is refused for good; other refusals leave the
    /// client free to send the next chunk or RSET).
    pub fn ends_transaction(&self) -> bool {
        matches!(self, Refusal::MessageTooBig)
    }

    /// Whether the server closes the connection after this reply: the 421s
    /// (RFC 5321 section 3.8), a chaos 421 included.
    pub fn closes_session(&self) -> bool {
        use Refusal::*;
        matches!(
            self,
            TooManyConnections
                | TooManyAuthFailures
                | TooManyErrors
                | TimedOut
                | ShuttingDown
                | Chaos { code: 421, .. }
        )
    }

    /// The code and enhanced status code.
    fn status(&self) -> (u16, &'static str) {
        use Refusal::*;
        match self {
            LineTooLong | AuthLineTooLong => (500, "5.5.6"),
            BareLfCommand | NotUtf8 | EmptyCommand | Unrecognized => (500, "5.5.2"),
            NotImplemented(_) => (502, "5.5.1"),
            HeloSyntax { .. }
            | MailSyntax
            | RcptSyntax
            | DataSyntax
            | BdatSyntax
            | RsetSyntax
            | VrfySyntax
            | StartTlsSyntax
            | AuthSyntax
            | SizeSyntax
            | BodySyntax => (501, "5.5.4"),
            ParametersNeedEhlo | UnsupportedParameter(_) => (555, "5.5.4"),
            BadAddress {
                kind: AddressKind::Sender,
                ..
            } => (501, "5.1.7"),
            BadAddress {
                kind: AddressKind::Recipient,
                ..
            } => (501, "5.1.3"),
            NonAsciiAddress(_) => (553, "5.6.7"),
            NeedHelo | NeedEhlo | NestedMail | NeedMailBeforeRcpt | NeedMail | NeedRcpt
            | DataAfterBdat | TlsActive | AlreadyAuthenticated | AuthInTransaction => {
                (503, "5.5.1")
            }
            MustStartTls => (530, "5.7.0"),
            SizeExceeded | MessageTooBig => (552, "5.3.4"),
            TooManyRecipients => (452, "4.5.3"),
            InsufficientStorage => (452, "4.3.1"),
            BareLfContent => (550, "5.5.2"),
            StoreFailed => (451, "4.3.0"),
            StartTlsNotEnabled | AuthNotEnabled => (502, "5.5.1"),
            EncryptionRequired => (538, "5.7.11"),
            UnknownMechanism => (504, "5.5.4"),
            AuthCancelled => (501, "5.7.0"),
            CannotDecode(_) => (501, "5.5.2"),
            AuthFailed => (535, "5.7.8"),
            TooManyConnections | TooManyAuthFailures | TooManyErrors => (421, "4.7.0"),
            TimedOut => (421, "4.4.2"),
            ShuttingDown => (421, "4.3.2"),
            Chaos { point, code } => (*code, chaos_enhanced(*point, *code)),
        }
    }

    /// The reply on the wire.
    pub fn reply(&self, config: &SessionConfig) -> Reply {
        let (code, enhanced) = self.status();
        Reply::new(code, enhanced, self.text(config))
    }

    fn text(&self, config: &SessionConfig) -> String {
        use Refusal::*;
        let host = &config.hostname;
        let max_size = config.max_message_size;
        let fixed = match self {
            LineTooLong => return format!("Line too long (max {} bytes)", config.max_line_length),
            NotImplemented(verb) => return format!("{} is not implemented here", verb.verb()),
            HeloSyntax { extended } => {
                return format!(
                    "Syntax: {} hostname",
                    if *extended { "EHLO" } else { "HELO" }
                );
            }
            UnsupportedParameter(name) => return format!("Unsupported parameter {name}"),
            BadAddress { kind, why } => {
                return format!("Bad {} address syntax: {why}", address_word(*kind));
            }
            NonAsciiAddress(kind) => {
                return format!(
                    "Non-ASCII {} address needs MAIL FROM with SMTPUTF8",
                    address_word(*kind)
                );
            }
            SizeExceeded => {
                return format!(
                    "Message size exceeds fixed maximum message size ({max_size} bytes)"
                );
            }
            MessageTooBig => {
                return format!("Message too big for this server (max {max_size} bytes)");
            }
            TooManyRecipients => {
                return format!(
                    "Too many recipients (max {} per message)",
                    config.max_recipients
                );
            }
            CannotDecode(error) => return format!("Cannot decode: {error}"),
            TooManyAuthFailures => {
                return format!(
                    "{host} Too many failed authentication attempts, closing connection"
                );
            }
            TooManyErrors => return format!("{host} Too many errors, closing connection"),
            TooManyConnections => return format!("{host} Too many connections; try again later"),
            TimedOut => return format!("{host} Error: timeout exceeded, closing connection"),
            ShuttingDown => return format!("{host} Service shutting down, closing connection"),
            Chaos { point, .. } => {
                let command = match point {
                    Point::Sender => "MAIL FROM",
                    Point::Recipient => "RCPT TO",
                    Point::Authentication => "AUTH",
                };
                return format!("{command} refused by a chaos trigger (a simulated failure)");
            }
            AuthLineTooLong => "Authentication line too long",
            BareLfCommand => "Command lines must end with CRLF, not a bare LF",
            NotUtf8 => "Syntax error: command is not valid UTF-8",
            EmptyCommand => "Syntax error: empty command",
            Unrecognized => "Syntax error: command unrecognized",
            MailSyntax => "Syntax: MAIL FROM:<address> [parameters]",
            RcptSyntax => "Syntax: RCPT TO:<address>",
            DataSyntax => "Syntax: DATA (no arguments)",
            BdatSyntax => "Syntax: BDAT size [LAST]",
            RsetSyntax => "Syntax: RSET (no arguments)",
            VrfySyntax => "Syntax: VRFY address",
            StartTlsSyntax => "Syntax: STARTTLS (no arguments)",
            AuthSyntax => "Syntax: AUTH mechanism [initial-response]",
            SizeSyntax => "Syntax: SIZE=<number of bytes>",
            BodySyntax => "Syntax: BODY=7BIT or BODY=8BITMIME",
            ParametersNeedEhlo => "Parameters need EHLO, not HELO",
            NeedHelo => "Send EHLO or HELO first",
            NeedEhlo => "Send EHLO first",
            NestedMail => "Nested MAIL command",
            NeedMailBeforeRcpt => "Need MAIL before RCPT",
            NeedMail => "Need MAIL command",
            NeedRcpt => "Need RCPT command",
            DataAfterBdat => "DATA is not allowed after BDAT",
            MustStartTls => "Must issue a STARTTLS command first",
            InsufficientStorage => {
                "Insufficient system storage: too many messages in flight; try again later"
            }
            BareLfContent => {
                "Message refused: bare LF line endings; lines must end with CRLF. Closing connection"
            }
            StoreFailed => "Temporary failure storing the message; try again later",
            StartTlsNotEnabled => {
                "STARTTLS is not enabled on this server (see --tls-cert or --tls-self-signed)"
            }
            TlsActive => "TLS is already active",
            AuthNotEnabled => "AUTH is not enabled on this server",
            EncryptionRequired => {
                "Encryption required for requested authentication mechanism; use STARTTLS first"
            }
            AlreadyAuthenticated => "Already authenticated",
            AuthInTransaction => "AUTH is not allowed during a mail transaction",
            UnknownMechanism => "Unrecognized authentication type; use PLAIN or LOGIN",
            AuthCancelled => "Authentication cancelled",
            AuthFailed => "Authentication credentials invalid",
        };
        fixed.to_owned()
    }
}

/// The enhanced status code for a chaos refusal of `code` at `point`: what a
/// real server would send with that code there (RFC 3463), so a client that reads
/// enhanced codes sees a believable failure.
///
/// - AUTH: RFC 4954 section 6 gives 454 4.7.0 for a temporary failure, 534
///   5.7.9 (mechanism too weak), 538 5.7.11 (encryption required) and 535 5.7.8
///   (credentials invalid) for the rest.
/// - 421 and 452 mean the same at every point (RFC 5321 section 4.2.2): the
///   service is going away (4.3.2), storage is short (4.3.1); 451 "local error in
///   processing" is 4.3.0, and 554 "transaction failed" a policy refusal (5.7.1).
/// - A mailbox code is about the address at hand: 450 at MAIL is a sender
///   system that cannot be checked now (4.1.8), at RCPT a mailbox unavailable
///   now (4.2.1); 550 at MAIL is a sender refused by policy (5.7.1), at RCPT an
///   unknown mailbox (5.1.1); 551 "user not local" a moved mailbox (5.1.6); 552
///   at RCPT a full mailbox (5.2.2), at MAIL a message too big (5.3.4); 553
///   "mailbox name not allowed" a bad sender (5.1.7) or recipient (5.1.3) address.
/// - The syntax and sequence codes keep their usual 5.5.x; anything else is
///   X.0.0, "other or undefined", of its class.
pub fn chaos_enhanced(point: Point, code: u16) -> &'static str {
    use Point::*;
    match (point, code) {
        (Authentication, 400..=499) => "4.7.0",
        (Authentication, 534) => "5.7.9",
        (Authentication, 538) => "5.7.11",
        (Authentication, _) => "5.7.8",
        (_, 421) => "4.3.2",
        (_, 452) => "4.3.1",
        (_, 451) => "4.3.0",
        (Sender, 450) => "4.1.8",
        (Recipient, 450) => "4.2.1",
        (_, 400..=499) => "4.0.0",
        (Sender, 550) => "5.7.1",
        (Recipient, 550) => "5.1.1",
        (_, 551) => "5.1.6",
        (Sender, 552) => "5.3.4",
        (Recipient, 552) => "5.2.2",
        (Sender, 553) => "5.1.7",
        (Recipient, 553) => "5.1.3",
        (_, 554) => "5.7.1",
        (_, 530) => "5.7.0",
        (_, 500) => "5.5.2",
        (_, 501 | 504 | 555) => "5.5.4",
        (_, 502 | 503) => "5.5.1",
        _ => "5.0.0",
    }
}

fn address_word(kind: AddressKind) -> &'static str {
    match kind {
        AddressKind::Sender => "sender",
        AddressKind::Recipient => "recipient",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The enhanced status codes of the IANA registry this server may use
    /// (RFC 3463 sections 3.1-3.8, RFC 4954 for X.5.6, X.7.8, X.7.11, RFC 6531 for
    /// X.6.7), without their class digit.
    const REGISTERED: &[&str] = &[
        "0.0", "1.0", "1.1", "1.3", "1.5", "1.6", "1.7", "1.8", "2.0", "2.1", "2.2", "3.0", "3.1",
        "3.2", "3.4", "4.2", "5.0", "5.1", "5.2", "5.3", "5.4", "5.5", "5.6", "6.7", "7.0", "7.1",
        "7.8", "7.9", "7.11",
    ];

    fn every_refusal() -> Vec<Refusal> {
        use Refusal::*;
        let mut all = vec![
            LineTooLong,
            AuthLineTooLong,
            BareLfCommand,
            NotUtf8,
            EmptyCommand,
            Unrecognized,
            NotImplemented(Unsupported::Expn),
            HeloSyntax { extended: true },
            MailSyntax,
            RcptSyntax,
            DataSyntax,
            BdatSyntax,
            RsetSyntax,
            VrfySyntax,
            StartTlsSyntax,
            AuthSyntax,
            SizeSyntax,
            BodySyntax,
            ParametersNeedEhlo,
            UnsupportedParameter("X".into()),
            NeedHelo,
            NeedEhlo,
            NestedMail,
            NeedMailBeforeRcpt,
            NeedMail,
            NeedRcpt,
            DataAfterBdat,
            MustStartTls,
            SizeExceeded,
            MessageTooBig,
            TooManyRecipients,
            InsufficientStorage,
            BareLfContent,
            StoreFailed,
            StartTlsNotEnabled,
            TlsActive,
            AuthNotEnabled,
            EncryptionRequired,
            AlreadyAuthenticated,
            AuthInTransaction,
            UnknownMechanism,
            AuthCancelled,
            CannotDecode("x".into()),
            AuthFailed,
            TooManyConnections,
            TooManyAuthFailures,
            TooManyErrors,
            TimedOut,
            ShuttingDown,
        ];
        for point in [Point::Sender, Point::Recipient, Point::Authentication] {
            all.extend((400..600).map(|code| Chaos { point, code }));
        }
        for kind in [AddressKind::Sender, AddressKind::Recipient] {
            all.push(BadAddress { kind, why: "x" });
            all.push(NonAsciiAddress(kind));
        }
        all
    }

    fn every_answer() -> Vec<Answer> {
        vec![
            Answer::Greeting,
            Answer::Helo { client: "c".into() },
            Answer::Ehlo {
                client: "c".into(),
                starttls: true,
                auth: true,
            },
            Answer::SenderOk,
            Answer::RecipientOk,
            Answer::StartData,
            Answer::ChunkReceived { size: 1, total: 1 },
            Answer::Queued { id: "1".into() },
            Answer::Ok,
            Answer::Bye,
            Answer::CannotVerify,
            Answer::Help,
            Answer::ReadyForTls,
            Answer::AuthPlainChallenge,
            Answer::AuthUserChallenge,
            Answer::AuthPasswordChallenge,
            Answer::AuthSucceeded,
        ]
    }

    /// Checks one reply: an enhanced code, where there is one, is registered and
    /// of the reply's class (RFC 3463 section 3.1: 2 success, 4 persistent
    /// transient failure, 5 permanent failure).
    pub(crate) fn check_status(reply: &Reply) {
        if reply.enhanced.is_empty() {
            return;
        }
        let (class, rest) = reply
            .enhanced
            .split_once('.')
            .expect("class.subject.detail");
        assert_eq!(
            class.parse::<u16>().ok(),
            Some(reply.code / 100),
            "{reply:?}: class does not match the code"
        );
        assert!(REGISTERED.contains(&rest), "{reply:?}: not in the registry");
    }

    #[test]
    fn every_enhanced_code_is_registered_and_of_the_right_class() {
        let config = SessionConfig::default();
        for refusal in every_refusal() {
            let reply = refusal.reply(&config);
            assert!((400..600).contains(&reply.code), "{refusal:?}");
            assert!(
                !reply.enhanced.is_empty(),
                "{refusal:?} has no enhanced code"
            );
            check_status(&reply);
        }
        for answer in every_answer() {
            let reply = answer.reply(&config);
            assert!((200..400).contains(&reply.code), "{answer:?}");
            check_status(&reply);
        }
    }

    /// RFC 5321 section 4.2.4 and 4.2.5: 500-504 and 555 are the codes of
    /// commands the client got wrong; the error limit counts exactly those (a
    /// chaos refusal is never the client's fault, whatever its code).
    #[test]
    fn protocol_errors_are_the_syntax_and_sequence_codes() {
        let config = SessionConfig::default();
        for refusal in every_refusal() {
            if matches!(refusal, Refusal::Chaos { .. }) {
                assert!(!refusal.is_protocol_error());
                continue;
            }
            let code = refusal.reply(&config).code;
            assert_eq!(
                refusal.is_protocol_error(),
                matches!(code, 500..=504 | 555),
                "{refusal:?}"
            );
        }
    }
}
