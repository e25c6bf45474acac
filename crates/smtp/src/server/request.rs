//! SMTP command lines parsed into typed requests, before the session acts on them.
//!
//! ```text
//! "MAIL FROM:<a@x> SIZE=10"  ─parse─▶ Request::Mail { path: "a@x", params: [Ok(Size(10))] }
//! "RCPT TO:a@x"              ─parse─▶ Err(ParseError { command: Some(Rcpt), syntax: RcptSyntax })
//! ```
//!
//! Parsing looks only at the line: whether a command is allowed now (HELO first, a
//! transaction open...) is the session's to decide. A syntax error names the
//! command it belongs to, because for some commands (MAIL, RCPT, STARTTLS, AUTH)
//! the session answers "not now" before "bad syntax", as it always has.
//! Parameters of MAIL are parsed one by one into their own results, so the session
//! refuses the first bad one in the order the client gave them.

/// A command verb the server knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// HELO (RFC 5321).
    Helo,
    /// EHLO (RFC 5321).
    Ehlo,
    /// MAIL FROM.
    Mail,
    /// RCPT TO.
    Rcpt,
    /// DATA.
    Data,
    /// BDAT (RFC 3030).
    Bdat,
    /// RSET.
    Rset,
    /// NOOP.
    Noop,
    /// QUIT.
    Quit,
    /// VRFY.
    Vrfy,
    /// HELP.
    Help,
    /// STARTTLS (RFC 3207).
    StartTls,
    /// AUTH (RFC 4954).
    Auth,
}

impl Command {
    /// Whether refusing this command counts in the server's `SMTPRejected`
    /// statistic: the commands of a mail transaction.
    pub fn is_transaction(self) -> bool {
        matches!(
            self,
            Command::Mail | Command::Rcpt | Command::Data | Command::Bdat
        )
    }
}

/// Verbs of RFC 821/5321 this server recognises and does not implement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsupported {
    /// EXPN.
    Expn,
    /// TURN.
    Turn,
    /// ETRN (RFC 1985).
    Etrn,
    /// SEND.
    Send,
    /// SOML.
    Soml,
    /// SAML.
    Saml,
}

impl Unsupported {
    /// The verb as it is written on the wire.
    pub fn verb(self) -> &'static str {
        match self {
            Unsupported::Expn => "EXPN",
            Unsupported::Turn => "TURN",
            Unsupported::Etrn => "ETRN",
            Unsupported::Send => "SEND",
            Unsupported::Soml => "SOML",
            Unsupported::Saml => "SAML",
        }
    }
}

/// One command line, understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request<'a> {
    /// HELO or EHLO with the client's name.
    Helo {
        /// The name the client gave (one word).
        name: &'a str,
        /// EHLO rather than HELO.
        extended: bool,
    },
    /// `MAIL FROM:<path>` with its parameters in the order given.
    Mail {
        /// The reverse-path without brackets; empty for `<>`.
        path: &'a str,
        /// Each parameter, parsed or refused.
        params: Vec<Result<MailParam, ParamError<'a>>>,
    },
    /// `RCPT TO:<path>`; `params` holds the names of its parameters (none is supported).
    Rcpt {
        /// The forward-path without brackets.
        path: &'a str,
        /// The names of the parameters the client gave.
        params: Vec<&'a str>,
    },
    /// DATA.
    Data,
    /// `BDAT size [LAST]`.
    Bdat {
        /// The chunk's size in bytes.
        size: usize,
        /// The last chunk of the message.
        last: bool,
    },
    /// RSET.
    Rset,
    /// NOOP (arguments ignored).
    Noop,
    /// QUIT (arguments ignored).
    Quit,
    /// VRFY with an argument (which the server does not look at: RFC 5321
    /// section 3.5.3 lets it answer 252 to any).
    Vrfy,
    /// HELP (arguments ignored).
    Help,
    /// STARTTLS.
    StartTls,
    /// AUTH mechanism [initial-response].
    Auth {
        /// The mechanism asked for.
        mechanism: Mechanism<'a>,
        /// The initial response (RFC 4954 section 4), if one was given.
        initial: Option<InitialResponse<'a>>,
    },
    /// A verb recognised but not implemented.
    Unsupported(Unsupported),
}

impl Request<'_> {
    /// The command this is, `None` for an unsupported verb.
    pub fn command(&self) -> Option<Command> {
        Some(match self {
            Request::Helo { extended: true, .. } => Command::Ehlo,
            Request::Helo { .. } => Command::Helo,
            Request::Mail { .. } => Command::Mail,
            Request::Rcpt { .. } => Command::Rcpt,
            Request::Data => Command::Data,
            Request::Bdat { .. } => Command::Bdat,
            Request::Rset => Command::Rset,
            Request::Noop => Command::Noop,
            Request::Quit => Command::Quit,
            Request::Vrfy => Command::Vrfy,
            Request::Help => Command::Help,
            Request::StartTls => Command::StartTls,
            Request::Auth { .. } => Command::Auth,
            Request::Unsupported(_) => return None,
        })
    }
}

/// A parameter of MAIL FROM (RFC 1870, 6152, 6531).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailParam {
    /// SIZE=n; a number beyond `u64` is `u64::MAX` (certainly over any limit).
    Size(u64),
    /// BODY=7BIT or BODY=8BITMIME.
    Body,
    /// SMTPUTF8.
    SmtpUtf8,
}

/// A MAIL FROM parameter the server refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamError<'a> {
    /// SIZE without a number.
    Size,
    /// BODY other than 7BIT or 8BITMIME.
    Body,
    /// A parameter this server does not know (its name).
    Unknown(&'a str),
}

/// A SASL mechanism named in AUTH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism<'a> {
    /// PLAIN (RFC 4616).
    Plain,
    /// LOGIN (draft-murchison-sasl-login).
    Login,
    /// Anything else.
    Other(&'a str),
}

/// The initial response of AUTH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitialResponse<'a> {
    /// `=`: an empty response, or `*`: the client cancels.
    Cancel,
    /// Base64 text.
    Text(&'a str),
}

/// Why a command line could not be understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseError {
    /// The command the line was for, when its verb was recognised.
    pub command: Option<Command>,
    /// What is wrong with it.
    pub syntax: Syntax,
}

/// What is wrong with a command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// The line ended with a bare LF.
    BareLf,
    /// The line is not UTF-8.
    NotUtf8,
    /// The line is empty or starts with a space: no verb.
    Empty,
    /// The verb is unknown.
    Unrecognized,
    /// HELO or EHLO without one name.
    Helo,
    /// MAIL not in the form `FROM:<path> [params]`.
    Mail,
    /// RCPT not in the form `TO:<path> [params]`.
    Rcpt,
    /// DATA with arguments.
    Data,
    /// BDAT not in the form `size [LAST]`.
    Bdat,
    /// RSET with arguments.
    Rset,
    /// VRFY without an argument.
    Vrfy,
    /// STARTTLS with arguments.
    StartTls,
    /// AUTH without a mechanism.
    Auth,
}

impl ParseError {
    fn of(command: Command, syntax: Syntax) -> Self {
        ParseError {
            command: Some(command),
            syntax,
        }
    }

    fn line(syntax: Syntax) -> Self {
        ParseError {
            command: None,
            syntax,
        }
    }
}

/// Parses one command line (without its CRLF). `crlf` says whether it ended with
/// CRLF: a command line ending in a bare LF is refused whatever it says.
pub fn parse(line: &[u8], crlf: bool) -> Result<Request<'_>, ParseError> {
    if !crlf {
        return Err(ParseError::line(Syntax::BareLf));
    }
    let line = std::str::from_utf8(line).map_err(|_| ParseError::line(Syntax::NotUtf8))?;
    let (verb, arg) = match line.split_once(' ') {
        Some((verb, arg)) => (verb, arg.trim()),
        None => (line, ""),
    };
    if verb.is_empty() {
        return Err(ParseError::line(Syntax::Empty));
    }
    let command = match verb.to_ascii_uppercase().as_str() {
        "EHLO" => Command::Ehlo,
        "HELO" => Command::Helo,
        "MAIL" => Command::Mail,
        "RCPT" => Command::Rcpt,
        "DATA" => Command::Data,
        "BDAT" => Command::Bdat,
        "RSET" => Command::Rset,
        "NOOP" => Command::Noop,
        "QUIT" => Command::Quit,
        "VRFY" => Command::Vrfy,
        "HELP" => Command::Help,
        "STARTTLS" => Command::StartTls,
        "AUTH" => Command::Auth,
        "EXPN" => return Ok(Request::Unsupported(Unsupported::Expn)),
        "TURN" => return Ok(Request::Unsupported(Unsupported::Turn)),
        "ETRN" => return Ok(Request::Unsupported(Unsupported::Etrn)),
        "SEND" => return Ok(Request::Unsupported(Unsupported::Send)),
        "SOML" => return Ok(Request::Unsupported(Unsupported::Soml)),
        "SAML" => return Ok(Request::Unsupported(Unsupported::Saml)),
        _ => return Err(ParseError::line(Syntax::Unrecognized)),
    };
    parse_arguments(command, arg).map_err(|syntax| ParseError::of(command, syntax))
}

/// The arguments of a recognised command.
fn parse_arguments(command: Command, arg: &str) -> Result<Request<'_>, Syntax> {
    let no_arguments = |request: Request<'static>, syntax| {
        if arg.is_empty() {
            Ok(request)
        } else {
            Err(syntax)
        }
    };
    match command {
        Command::Helo | Command::Ehlo => {
            if arg.is_empty() || arg.contains(char::is_whitespace) {
                return Err(Syntax::Helo);
            }
            Ok(Request::Helo {
                name: arg,
                extended: command == Command::Ehlo,
            })
        }
        Command::Mail => {
            let (path, params) = parse_path(arg, "FROM:").map_err(|()| Syntax::Mail)?;
            let params = params.split_ascii_whitespace().map(mail_param).collect();
            Ok(Request::Mail { path, params })
        }
        Command::Rcpt => {
            let (path, params) = parse_path(arg, "TO:").map_err(|()| Syntax::Rcpt)?;
            let params = params
                .split_ascii_whitespace()
                .map(|param| param.split('=').next().unwrap_or(param))
                .collect();
            Ok(Request::Rcpt { path, params })
        }
        Command::Data => no_arguments(Request::Data, Syntax::Data),
        Command::Bdat => parse_bdat(arg),
        Command::Rset => no_arguments(Request::Rset, Syntax::Rset),
        Command::Noop => Ok(Request::Noop),
        Command::Quit => Ok(Request::Quit),
        Command::Vrfy if arg.is_empty() => Err(Syntax::Vrfy),
        Command::Vrfy => Ok(Request::Vrfy),
        Command::Help => Ok(Request::Help),
        Command::StartTls => no_arguments(Request::StartTls, Syntax::StartTls),
        Command::Auth => parse_auth(arg),
    }
}

/// `size [LAST]` of BDAT.
fn parse_bdat(arg: &str) -> Result<Request<'_>, Syntax> {
    let mut words = arg.split_ascii_whitespace();
    let size = words.next().and_then(|s| s.parse::<usize>().ok());
    let last = match words.next() {
        None => false,
        Some(word) if word.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return Err(Syntax::Bdat),
    };
    match size {
        Some(size) if words.next().is_none() => Ok(Request::Bdat { size, last }),
        _ => Err(Syntax::Bdat),
    }
}

/// `mechanism [initial-response]` of AUTH.
fn parse_auth(arg: &str) -> Result<Request<'_>, Syntax> {
    let (mechanism, initial) = match arg.split_once(' ') {
        Some((mechanism, initial)) => (mechanism, Some(initial.trim())),
        None => (arg, None),
    };
    let mechanism = if mechanism.is_empty() {
        return Err(Syntax::Auth);
    } else if mechanism.eq_ignore_ascii_case("PLAIN") {
        Mechanism::Plain
    } else if mechanism.eq_ignore_ascii_case("LOGIN") {
        Mechanism::Login
    } else {
        Mechanism::Other(mechanism)
    };
    let initial = initial.map(|text| match text {
        // "=" is an empty initial response (RFC 4954 section 4); "*" cancels.
        "=" | "*" => InitialResponse::Cancel,
        text => InitialResponse::Text(text),
    });
    Ok(Request::Auth { mechanism, initial })
}

/// One `NAME[=VALUE]` parameter of MAIL FROM.
fn mail_param(param: &str) -> Result<MailParam, ParamError<'_>> {
    let (name, value) = match param.split_once('=') {
        Some((name, value)) => (name, Some(value)),
        None => (param, None),
    };
    match (name.to_ascii_uppercase().as_str(), value) {
        ("SIZE", Some(size)) => match size.parse::<u64>() {
            Ok(size) => Ok(MailParam::Size(size)),
            // All digits but beyond u64 is certainly over the limit too.
            Err(_) if !size.is_empty() && size.bytes().all(|b| b.is_ascii_digit()) => {
                Ok(MailParam::Size(u64::MAX))
            }
            Err(_) => Err(ParamError::Size),
        },
        ("BODY", Some(body))
            if body.eq_ignore_ascii_case("7BIT") || body.eq_ignore_ascii_case("8BITMIME") =>
        {
            Ok(MailParam::Body)
        }
        ("BODY", _) => Err(ParamError::Body),
        ("SMTPUTF8", None) => Ok(MailParam::SmtpUtf8),
        _ => Err(ParamError::Unknown(name)),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_into_typed_requests() {
        let ok: &[(&[u8], Request<'_>)] = &[
            (
                b"ehlo client.test",
                Request::Helo {
                    name: "client.test",
                    extended: true,
                },
            ),
            (
                b"MAIL FROM: <a@x.test> size=10 BODY=8bitmime SMTPUTF8 X=1 SIZE=9",
                Request::Mail {
                    path: "a@x.test",
                    params: vec![
                        Ok(MailParam::Size(10)),
                        Ok(MailParam::Body),
                        Ok(MailParam::SmtpUtf8),
                        Err(ParamError::Unknown("X")),
                        Ok(MailParam::Size(9)),
                    ],
                },
            ),
            (
                b"MAIL FROM:<> SIZE=99999999999999999999999",
                Request::Mail {
                    path: "",
                    params: vec![Ok(MailParam::Size(u64::MAX))],
                },
            ),
            (
                b"RCPT TO:<\"a >b\"@y.test> NOTIFY=NEVER",
                Request::Rcpt {
                    path: "\"a >b\"@y.test",
                    params: vec!["NOTIFY"],
                },
            ),
            (
                b"BDAT 10 last",
                Request::Bdat {
                    size: 10,
                    last: true,
                },
            ),
            (b"NOOP anything", Request::Noop),
            (
                b"AUTH plain =",
                Request::Auth {
                    mechanism: Mechanism::Plain,
                    initial: Some(InitialResponse::Cancel),
                },
            ),
            (
                b"AUTH CRAM-MD5",
                Request::Auth {
                    mechanism: Mechanism::Other("CRAM-MD5"),
                    initial: None,
                },
            ),
            (b"etrn x", Request::Unsupported(Unsupported::Etrn)),
        ];
        for (line, want) in ok {
            assert_eq!(parse(line, true).as_ref(), Ok(want), "{line:?}");
        }
    }

    #[test]
    fn syntax_errors_name_the_command() {
        let bad: &[(&[u8], bool, Option<Command>, Syntax)] = &[
            (b"NOOP", false, None, Syntax::BareLf),
            (b"NOOP \xff", true, None, Syntax::NotUtf8),
            (b"", true, None, Syntax::Empty),
            (b" NOOP", true, None, Syntax::Empty),
            (b"FOO", true, None, Syntax::Unrecognized),
            (b"HELO a b", true, Some(Command::Helo), Syntax::Helo),
            (
                b"MAIL FROM:a@x.test",
                true,
                Some(Command::Mail),
                Syntax::Mail,
            ),
            (
                b"MAIL FROM:<a@x.test>XYZ",
                true,
                Some(Command::Mail),
                Syntax::Mail,
            ),
            (
                b"RCPT TO:<a@x.test",
                true,
                Some(Command::Rcpt),
                Syntax::Rcpt,
            ),
            (b"DATA x", true, Some(Command::Data), Syntax::Data),
            (b"BDAT x", true, Some(Command::Bdat), Syntax::Bdat),
            (b"BDAT 1 LAST x", true, Some(Command::Bdat), Syntax::Bdat),
            (b"RSET x", true, Some(Command::Rset), Syntax::Rset),
            (b"VRFY", true, Some(Command::Vrfy), Syntax::Vrfy),
            (
                b"STARTTLS x",
                true,
                Some(Command::StartTls),
                Syntax::StartTls,
            ),
            (b"AUTH", true, Some(Command::Auth), Syntax::Auth),
        ];
        for (line, crlf, command, syntax) in bad {
            let want = ParseError {
                command: *command,
                syntax: *syntax,
            };
            assert_eq!(parse(line, *crlf), Err(want), "{line:?}");
        }
    }
}
