//! `sokkel sendmail`: the sendmail command line that PHP's mail(), cron and
//! git send-email call. The server and login come from `SOKKEL_SMTP_*` variables,
//! because callers of sendmail never pass them.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Parser;
use mail_parser::{HeaderName, MessageParser};
use sokkel_smtp::client::session::Envelope;

use super::send::{Mailbox, client_config, default_from, deliver, unique_message_id};
use crate::cli::{ConnectionArgs, SendmailArgs};

/// The connection settings, from `SOKKEL_SMTP_*` variables and defaults only.
#[derive(Debug, Parser)]
struct FromEnvironment {
    #[command(flatten)]
    connection: ConnectionArgs,
}

pub fn run(args: SendmailArgs) -> anyhow::Result<ExitCode> {
    let mut connection = FromEnvironment::try_parse_from(["sokkel sendmail"])
        .context("a SOKKEL_SMTP_* variable has a value sokkel cannot use")?
        .connection;
    connection.verbose = connection.verbose.max(args.verbose);
    let ignore_dots = args.ignore_dots || args.options.iter().any(|o| o == "i");

    let mut input = Vec::new();
    std::io::stdin()
        .read_to_end(&mut input)
        .context("cannot read the message from stdin")?;
    if !ignore_dots {
        input = cut_at_lone_dot(input);
    }
    let sender = Mailbox::parse(&args.from.clone().unwrap_or_else(default_from))?;
    let mut recipients = Vec::new();
    for r in &args.recipients {
        // sendmail takes "a@x, b@y" as well as separate arguments.
        for mailbox in Mailbox::parse_list(r)? {
            recipients.push(mailbox.address);
        }
    }
    let mut message = input;
    if args.from_headers {
        for r in header_recipients(&message) {
            if !recipients.contains(&r) {
                recipients.push(r);
            }
        }
        message = strip_header(&message, "bcc");
    }
    if recipients.is_empty() {
        bail!(
            "no recipients: name them after the options, or use -t to take them from the headers"
        );
    }
    let message = add_missing_headers(message, &sender);

    let runtime = crate::runtime::single_thread_runtime()?;
    runtime.block_on(async {
        let config = client_config(&connection).await?;
        let envelope = Envelope {
            from: sender.address.clone(),
            to: recipients,
        };
        deliver(config, &envelope, &message, 1, connection.verbose).await
    })
}

/// Traditional sendmail ends the input at a line holding a single dot.
fn cut_at_lone_dot(mut input: Vec<u8>) -> Vec<u8> {
    let mut start = 0;
    for line in input.split_inclusive(|&b| b == b'\n') {
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text == b"." {
            input.truncate(start);
            return input;
        }
        start += line.len();
    }
    input
}

/// Every address in the To, Cc and Bcc headers.
pub fn header_recipients(message: &[u8]) -> Vec<String> {
    let Some(parsed) = MessageParser::default().parse_headers(message) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for header in parsed.headers() {
        if !matches!(
            header.name,
            HeaderName::To | HeaderName::Cc | HeaderName::Bcc
        ) {
            continue;
        }
        if let Some(address) = header.value.as_address() {
            for addr in address.iter() {
                if let Some(a) = addr.address.as_deref().filter(|a| !a.is_empty())
                    && !out.iter().any(|o: &String| o == a)
                {
                    out.push(a.to_owned());
                }
            }
        }
    }
    out
}

/// The message without header `name` (case-insensitive), continuation lines
/// included. The body is left alone.
fn strip_header(message: &[u8], name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len());
    let mut in_headers = true;
    let mut dropping = false;
    for line in message.split_inclusive(|&b| b == b'\n') {
        if in_headers {
            if line == b"\n" || line == b"\r\n" {
                in_headers = false;
            } else if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
                if dropping {
                    continue;
                }
            } else {
                dropping = line.iter().position(|&b| b == b':').is_some_and(|colon| {
                    line[..colon]
                        .trim_ascii()
                        .eq_ignore_ascii_case(name.as_bytes())
                });
                if dropping {
                    continue;
                }
            }
        }
        out.extend_from_slice(line);
    }
    out
}

/// Adds From, Date and Message-ID when the caller left them out, as a mail system's
/// submission service does (cron's messages, for one, have no Date).
fn add_missing_headers(message: Vec<u8>, sender: &Mailbox) -> Vec<u8> {
    let present = |name: HeaderName| {
        MessageParser::default()
            .parse_headers(&message)
            .is_some_and(|m| m.headers().iter().any(|h| h.name == name))
    };
    let mut added = String::new();
    if !present(HeaderName::From) {
        added.push_str(&format!("From: {}\r\n", sender.address));
    }
    if !present(HeaderName::Date) {
        added.push_str(&format!(
            "Date: {}\r\n",
            mail_builder::headers::date::Date::now().to_rfc822()
        ));
    }
    if !present(HeaderName::MessageId) {
        added.push_str(&format!(
            "Message-ID: <{}>\r\n",
            unique_message_id(&sender.address)
        ));
    }
    if added.is_empty() {
        return message;
    }
    let mut out = added.into_bytes();
    out.extend_from_slice(&message);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lone_dot_ends_traditional_input() {
        assert_eq!(cut_at_lone_dot(b"a\n.\nb\n".to_vec()), b"a\n");
        assert_eq!(cut_at_lone_dot(b"a\r\n.\r\nb".to_vec()), b"a\r\n");
        assert_eq!(cut_at_lone_dot(b"a\n..\n.b\n".to_vec()), b"a\n..\n.b\n");
    }

    #[test]
    fn strips_bcc_with_its_continuation_lines() {
        let message =
            b"To: a@x.test\r\nBcc: b@x.test,\r\n c@x.test\r\nSubject: s\r\n\r\nBcc: body stays\r\n";
        assert_eq!(
            strip_header(message, "bcc"),
            b"To: a@x.test\r\nSubject: s\r\n\r\nBcc: body stays\r\n"
        );
    }

    #[test]
    fn finds_header_recipients() {
        let message = b"To: A <a@x.test>, b@x.test\r\nCc: c@x.test\r\nBcc: d@x.test\r\nSubject: s\r\n\r\nbody\r\n";
        assert_eq!(
            header_recipients(message),
            ["a@x.test", "b@x.test", "c@x.test", "d@x.test"]
        );
    }
}
