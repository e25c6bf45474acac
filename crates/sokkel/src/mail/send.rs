//! `sokkel mail send`, and the sending machinery `sendmail` and `compose` share.

use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, bail};
use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address as MailAddress;
use sokkel_net::HostPort;
use sokkel_smtp::client::session::{
    AuthMechanism, ClientConfig, ClientError, Credentials, Direction, Envelope, FailureKind,
    SmtpClient, Stage, TlsMode, Transcript,
};
use sokkel_smtp::client::tls::{HandshakeFailure, TlsSetupError};

use crate::cli::{ConnectionArgs, SendArgs};

/// Exit code for "sent, but some recipients were refused".
pub const PARTIAL: u8 = 3;

/// A mailbox as typed: `addr@x` or `Name <addr@x>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub name: Option<String>,
    pub address: String,
}

impl Mailbox {
    pub fn parse(input: &str) -> anyhow::Result<Mailbox> {
        let input = input.trim();
        let (name, address) = match (input.rfind('<'), input.ends_with('>')) {
            (Some(open), true) => {
                let name = input[..open].trim().trim_matches('"').trim();
                (
                    Some(name).filter(|n| !n.is_empty()).map(str::to_owned),
                    &input[open + 1..input.len() - 1],
                )
            }
            _ => (None, input),
        };
        let address = address.trim();
        if address.is_empty() || !address.contains('@') || address.contains(char::is_whitespace) {
            bail!(
                "{input:?} is not a mail address; write user@example.com or 'Name <user@example.com>'"
            );
        }
        Ok(Mailbox {
            name,
            address: address.to_owned(),
        })
    }

    /// A comma-separated list; commas inside quotes or angle brackets do not split
    /// (`"O'Brien, Seán" <sean@x.test>, b@x.test` is two mailboxes).
    pub fn parse_list(input: &str) -> anyhow::Result<Vec<Mailbox>> {
        let mut parts = Vec::new();
        let (mut quoted, mut angle, mut start) = (false, false, 0);
        for (i, c) in input.char_indices() {
            match c {
                '"' => quoted = !quoted,
                '<' if !quoted => angle = true,
                '>' if !quoted => angle = false,
                ',' if !quoted && !angle => {
                    parts.push(&input[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        parts.push(&input[start..]);
        parts
            .into_iter()
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(Mailbox::parse)
            .collect()
    }

    fn to_header(&self) -> MailAddress<'static> {
        MailAddress::new_address(self.name.clone(), self.address.clone())
    }
}

/// `USER@hostname`: who the mail is from when nobody says.
pub fn default_from() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "sokkel".into());
    format!("{user}@{}", host_name())
}

pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty() && name.is_ascii() && !name.contains(char::is_whitespace))
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Turns the connection flags into a client configuration: resolves the server,
/// loads TLS roots, and asks for the password when a user is given.
pub async fn client_config(args: &ConnectionArgs) -> anyhow::Result<ClientConfig> {
    let tls = match args.tls.as_str() {
        "starttls" => TlsMode::StartTls,
        "starttls-if-offered" => TlsMode::StartTlsIfOffered,
        "implicit" => TlsMode::Implicit,
        _ => TlsMode::None,
    };
    let default_port = if tls == TlsMode::Implicit { 465 } else { 1025 };
    let server = HostPort::parse(&args.server, Some(default_port))
        .context("--server takes host[:port] or [v6]:port, e.g. localhost:1025")?;
    let addrs = server.resolve(&[]).await?;
    let tls_config = if tls == TlsMode::None {
        None
    } else {
        let config = sokkel_smtp::client::tls::client_config(args.ca.as_deref(), args.insecure)
            .map_err(|err| match err {
                TlsSetupError::NoRoots => anyhow::anyhow!("{err}; give one with --ca FILE"),
                other => other.into(),
            })?;
        Some(config)
    };
    let credentials = match &args.user {
        None => None,
        Some(user) => Some(Credentials {
            user: user.clone(),
            password: password(user, &server)?,
            mechanism: match args.auth.as_str() {
                "plain" => AuthMechanism::Plain,
                "login" => AuthMechanism::Login,
                _ => AuthMechanism::Auto,
            },
        }),
    };
    Ok(ClientConfig {
        server: server.to_string(),
        addrs,
        tls_name: server.host.clone(),
        tls,
        tls_config,
        ehlo_name: args.ehlo.clone().unwrap_or_else(host_name),
        timeout: args.timeout,
        credentials,
    })
}

/// The password from `SOKKEL_SMTP_PASSWORD`, or asked for without echo. Never from
/// the command line, where every user of the machine could read it.
fn password(user: &str, server: &HostPort) -> anyhow::Result<String> {
    if let Ok(password) = std::env::var("SOKKEL_SMTP_PASSWORD") {
        return Ok(password);
    }
    if !std::io::stdin().is_terminal() && !std::io::stderr().is_terminal() {
        bail!("--user {user} needs a password: set SOKKEL_SMTP_PASSWORD (no terminal to ask on)");
    }
    rpassword::prompt_password(format!("password for {user} at {server}: "))
        .context("cannot read the password")
}

/// `-v`: the conversation on stderr, swaks style: ` -> ` and ` <- ` in clear text,
/// ` ~> ` and ` <~ ` under TLS. Content is summarised unless `-vv`.
#[derive(Debug)]
pub struct StderrTranscript {
    pub verbosity: u8,
}

impl Transcript for StderrTranscript {
    fn line(&mut self, direction: Direction, tls: bool, text: &str) {
        if self.verbosity == 0 {
            return;
        }
        let arrow = match (direction, tls) {
            (Direction::Sent, false) => " -> ",
            (Direction::Received, false) => " <- ",
            (Direction::Sent, true) => " ~> ",
            (Direction::Received, true) => " <~ ",
        };
        eprintln!("{arrow}{text}");
    }

    fn content(&mut self, tls: bool, wire: &[u8]) {
        if self.verbosity == 0 {
            return;
        }
        let arrow = if tls { " ~> " } else { " -> " };
        if self.verbosity >= 2 {
            let text = String::from_utf8_lossy(wire);
            for line in text.split_terminator("\r\n") {
                eprintln!("{arrow}{line}");
            }
        } else {
            let lines = wire
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                .saturating_sub(1);
            eprintln!(
                "{arrow}[message content: {lines} lines, {} bytes; -vv shows it]",
                wire.len().saturating_sub(3)
            );
            eprintln!("{arrow}.");
        }
    }

    fn note(&mut self, text: &str) {
        if self.verbosity > 0 {
            eprintln!("=== {text}");
        }
    }
}

/// Sends `message` to `envelope` `repeat` times over one connection and reports the
/// outcome on stdout. The exit code says which stage failed, if one did.
pub async fn deliver(
    config: ClientConfig,
    envelope: &Envelope,
    message: &[u8],
    repeat: u32,
    verbosity: u8,
) -> anyhow::Result<ExitCode> {
    let transcript = StderrTranscript { verbosity };
    let mut client = match SmtpClient::connect(config, transcript).await {
        Ok(client) => client,
        Err(err) => return Ok(failed(&err)),
    };
    let started = std::time::Instant::now();
    let mut partial = false;
    let mut last = None;
    for _ in 0..repeat {
        match client.send(envelope, message).await {
            Ok(report) => {
                partial |= !report.refused.is_empty();
                last = Some(report);
            }
            Err(err) => return Ok(failed(&err)),
        }
    }
    client.quit().await;
    let Some(report) = last else {
        return Ok(ExitCode::SUCCESS);
    };
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "sent to {}: {}",
        report.accepted.join(", "),
        report.reply
    )?;
    for (rcpt, reply) in &report.refused {
        writeln!(out, "refused {rcpt}: {reply}")?;
    }
    if repeat > 1 {
        let secs = started.elapsed().as_secs_f64();
        writeln!(
            out,
            "sent {repeat} messages in {secs:.2} s ({:.0} messages/s)",
            f64::from(repeat) / secs
        )?;
    }
    Ok(if partial {
        ExitCode::from(PARTIAL)
    } else {
        ExitCode::SUCCESS
    })
}

fn failed(err: &ClientError) -> ExitCode {
    eprintln!("{}", failure_line(err));
    ExitCode::from(exit_code(err.stage))
}

/// The one line a failed send prints: the client's words, then the flag that helps.
fn failure_line(err: &ClientError) -> String {
    format!("sokkel: {err}{}", flag_hint(&err.kind))
}

/// The stable exit code `sokkel mail send`, `sendmail` and `compose` use for a
/// failure at this stage.
pub fn exit_code(stage: Stage) -> u8 {
    match stage {
        Stage::Connect => 20,
        Stage::Banner => 21,
        Stage::Ehlo => 22,
        Stage::Mail => 23,
        Stage::Rcpt => 24,
        Stage::Data => 25,
        Stage::AfterData => 26,
        Stage::Auth => 28,
        Stage::Tls => 29,
    }
}

/// What the user can do about a failure with this program's flags, to follow the
/// client's own words; empty when no flag helps.
pub fn flag_hint(kind: &FailureKind) -> &'static str {
    match kind {
        FailureKind::Timeout(_) => " (--timeout)",
        FailureKind::StartTlsNotOffered => " (use --tls starttls-if-offered or none)",
        FailureKind::CleartextPassword(_) => "; use --tls starttls or --tls implicit",
        FailureKind::Handshake {
            reason: HandshakeFailure::UnknownIssuer,
            ..
        } => " (give its CA with --ca FILE, or --insecure for a local catcher)",
        FailureKind::Handshake {
            reason: HandshakeFailure::NotTls,
            ..
        } => " (a plain-text port? try --tls starttls or none)",
        _ => "",
    }
}

pub fn run(args: SendArgs) -> anyhow::Result<ExitCode> {
    let runtime = crate::runtime::single_thread_runtime()?;
    runtime.block_on(send(args))
}

async fn send(args: SendArgs) -> anyhow::Result<ExitCode> {
    let from = Mailbox::parse(&args.from.clone().unwrap_or_else(default_from))?;
    let parse_all = |list: &[String]| -> anyhow::Result<Vec<Mailbox>> {
        let mut all = Vec::new();
        for arg in list {
            all.extend(Mailbox::parse_list(arg)?);
        }
        Ok(all)
    };
    let (to, cc, bcc) = (
        parse_all(&args.to)?,
        parse_all(&args.cc)?,
        parse_all(&args.bcc)?,
    );
    let message = match &args.data {
        Some(path) => {
            std::fs::read(path).with_context(|| format!("cannot read --data {}", path.display()))?
        }
        None => build_message(&args, &from, &to, &cc)?,
    };
    let mut recipients: Vec<String> = to
        .iter()
        .chain(&cc)
        .chain(&bcc)
        .map(|m| m.address.clone())
        .collect();
    if recipients.is_empty() {
        // --data without --to: the message's own headers name the recipients.
        recipients = super::sendmail::header_recipients(&message);
    }
    if recipients.is_empty() {
        bail!("no recipient: give --to ADDR (or --cc, --bcc)");
    }
    if args.dry_run {
        let mut out = std::io::stdout().lock();
        out.write_all(&sokkel_smtp::client::data::normalise_line_endings(&message))?;
        return Ok(ExitCode::SUCCESS);
    }
    let config = client_config(&args.connection).await?;
    let envelope = Envelope {
        from: from.address,
        to: recipients,
    };
    deliver(
        config,
        &envelope,
        &message,
        args.repeat,
        args.connection.verbose,
    )
    .await
}

fn build_message(
    args: &SendArgs,
    from: &Mailbox,
    to: &[Mailbox],
    cc: &[Mailbox],
) -> anyhow::Result<Vec<u8>> {
    let text = match (&args.body, &args.body_file) {
        (Some(body), _) => body.clone(),
        (None, Some(path)) => read_text(path, "--body-file")?,
        (None, None) if !std::io::stdin().is_terminal() => {
            let mut body = String::new();
            std::io::stdin()
                .read_to_string(&mut body)
                .context("cannot read the body from stdin (is it UTF-8?)")?;
            body
        }
        (None, None) => "This is a test message sent by sokkel.\n".to_owned(),
    };
    let html = args
        .html_file
        .as_deref()
        .map(|path| read_text(path, "--html-file"))
        .transpose()?;
    let mut attachments = Vec::new();
    for path in &args.attach {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read --attach {}", path.display()))?;
        attachments.push((path.clone(), bytes));
    }
    let headers = args
        .header
        .iter()
        .map(|h| {
            let (name, value) = h
                .split_once(':')
                .with_context(|| format!("--header {h:?} must be 'Name: value'"))?;
            let name = name.trim();
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
                bail!("--header {h:?}: {name:?} is not a header name");
            }
            Ok((name.to_owned(), value.trim().to_owned()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let subject = if args.subject.is_empty() {
        crate::cli::DEFAULT_SUBJECT.to_owned()
    } else {
        args.subject.clone()
    };
    compose_message(&MessageParts {
        from,
        to,
        cc,
        subject: &subject,
        text: &text,
        html: html.as_deref(),
        attachments: &attachments,
        headers: &headers,
    })
}

/// Everything a new message is made of.
pub struct MessageParts<'a> {
    pub from: &'a Mailbox,
    pub to: &'a [Mailbox],
    pub cc: &'a [Mailbox],
    pub subject: &'a str,
    pub text: &'a str,
    pub html: Option<&'a str>,
    pub attachments: &'a [(std::path::PathBuf, Vec<u8>)],
    pub headers: &'a [(String, String)],
}

/// Builds a MIME message: Date, Message-ID, RFC 2047 encoded words where needed, text
/// with an optional HTML alternative, attachments typed by their file names.
pub fn compose_message(parts: &MessageParts<'_>) -> anyhow::Result<Vec<u8>> {
    let mut builder = MessageBuilder::new()
        .from(parts.from.to_header())
        .subject(parts.subject.to_owned())
        .message_id(unique_message_id(&parts.from.address))
        .text_body(parts.text.to_owned());
    if !parts.to.is_empty() {
        builder = builder.to(MailAddress::new_list(
            parts.to.iter().map(Mailbox::to_header).collect(),
        ));
    }
    if !parts.cc.is_empty() {
        builder = builder.cc(MailAddress::new_list(
            parts.cc.iter().map(Mailbox::to_header).collect(),
        ));
    }
    if let Some(html) = parts.html {
        builder = builder.html_body(html.to_owned());
    }
    for (path, bytes) in parts.attachments {
        let name = path
            .file_name()
            .map_or_else(|| "attachment".into(), |n| n.to_string_lossy().into_owned());
        builder = builder.attachment(content_type(&name), name, bytes.clone());
    }
    for (name, value) in parts.headers {
        builder = builder.header(
            name.clone(),
            mail_builder::headers::raw::Raw::new(value.clone()),
        );
    }
    builder.write_to_vec().context("cannot build the message")
}

/// A Message-ID (without brackets) unique per process and message, in the sender's
/// domain.
pub fn unique_message_id(from_address: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let domain = from_address
        .rsplit_once('@')
        .map_or("localhost", |(_, d)| d);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{nanos:x}.{:x}.{n}.sokkel@{domain}", std::process::id())
}

fn read_text(path: &Path, flag: &str) -> anyhow::Result<String> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read {flag} {}", path.display()))?;
    String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("{flag} {} is not UTF-8 text", path.display()))
}

/// The MIME type for a file name, by its extension.
pub fn content_type(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "txt" | "log" | "md" => "text/plain",
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "csv" => "text/csv",
        "ics" => "text/calendar",
        "xml" => "application/xml",
        "json" => "application/json",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" | "tgz" => "application/gzip",
        "tar" => "application/x-tar",
        "doc" => "application/msword",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xls" => "application/vnd.ms-excel",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "pptx" => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "odt" => "application/vnd.oasis.opendocument.text",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "ico" => "image/vnd.microsoft.icon",
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        "mp4" => "video/mp4",
        "eml" => "message/rfc822",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn parses_mailboxes() {
        let m = Mailbox::parse("Ola Nordmann <ola@example.no>").unwrap();
        assert_eq!(
            (m.name.as_deref(), m.address.as_str()),
            (Some("Ola Nordmann"), "ola@example.no")
        );
        let m = Mailbox::parse("\"Rick\" <rick@x.test>").unwrap();
        assert_eq!(m.name.as_deref(), Some("Rick"));
        assert_eq!(Mailbox::parse(" a@b.c ").unwrap().address, "a@b.c");
        assert!(Mailbox::parse("not an address").is_err());
        assert!(Mailbox::parse("").is_err());
        let list = Mailbox::parse_list("\"O'Brien, Seán\" <sean@x.test>, b@x.test,").unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].name.as_deref(), Some("O'Brien, Seán"));
        assert_eq!(list[1].address, "b@x.test");
    }

    #[test]
    fn failures_get_the_flag_that_helps() {
        use sokkel_smtp::client::reply::ServerReply;
        let line = |stage, kind| failure_line(&ClientError::new(stage, kind));
        let cases = [
            (
                line(
                    Stage::Auth,
                    FailureKind::CleartextPassword("192.0.2.1:587".parse().unwrap()),
                ),
                "sokkel: AUTH failed: refusing to send a password unencrypted to \
                 192.0.2.1:587; use --tls starttls or --tls implicit",
            ),
            (
                line(Stage::Banner, FailureKind::Timeout(Duration::from_secs(2))),
                "sokkel: greeting failed: no answer within 2 s (--timeout)",
            ),
            (
                line(Stage::Tls, FailureKind::StartTlsNotOffered),
                "sokkel: TLS failed: the server does not offer STARTTLS \
                 (use --tls starttls-if-offered or none)",
            ),
            (
                line(
                    Stage::Tls,
                    FailureKind::Handshake {
                        server: "mx:465".into(),
                        reason: HandshakeFailure::NotTls,
                    },
                ),
                "sokkel: TLS failed: TLS handshake with mx:465 failed: the server does not \
                 speak TLS there (a plain-text port? try --tls starttls or none)",
            ),
            (
                line(
                    Stage::Rcpt,
                    FailureKind::Refused(ServerReply {
                        code: 550,
                        lines: vec!["5.1.1 unknown".into()],
                    }),
                ),
                "sokkel: RCPT TO failed: the server said 550 5.1.1 unknown",
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
        assert_eq!(exit_code(Stage::Tls), 29);
        assert_eq!(exit_code(Stage::Connect), 20);
    }

    #[test]
    fn types_attachments_by_name() {
        assert_eq!(content_type("Report.PDF"), "application/pdf");
        assert_eq!(content_type("photo.jpeg"), "image/jpeg");
        assert_eq!(content_type("noext"), "application/octet-stream");
    }
}
