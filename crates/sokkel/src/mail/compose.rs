//! `sokkel mail compose`: the course's bonus exercise, an interactive mail client.
//!
//! On a terminal it uses line editing and history; with piped input it reads the same
//! answers line by line, so it can be scripted and tested. Prompts go to stderr, the
//! outcome to stdout.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;
use sokkel_smtp::client::session::{ClientError, Envelope, FailureKind, SmtpClient, Stage};

use super::send::{
    Mailbox, MessageParts, StderrTranscript, client_config, compose_message, default_from,
};
use crate::cli::ComposeArgs;

/// Where answers come from.
enum Input {
    Terminal(Box<DefaultEditor>),
    Piped(std::io::StdinLock<'static>),
}

impl Input {
    /// One line; `None` at end of input (Ctrl-D). On a terminal `initial` is put in
    /// the line for the user to edit; piped, an empty answer keeps it.
    fn ask(&mut self, prompt: &str, initial: &str) -> anyhow::Result<Option<String>> {
        match self {
            Input::Terminal(editor) => loop {
                match editor.readline_with_initial(prompt, (initial, "")) {
                    Ok(line) => {
                        let _ = editor.add_history_entry(line.as_str());
                        return Ok(Some(line));
                    }
                    Err(ReadlineError::Interrupted) => continue,
                    Err(ReadlineError::Eof) => return Ok(None),
                    Err(err) => return Err(err).context("cannot read from the terminal"),
                }
            },
            Input::Piped(stdin) => {
                if initial.is_empty() {
                    eprint!("{prompt}");
                } else {
                    eprint!("{prompt}[{initial}] ");
                }
                let mut line = String::new();
                if stdin.read_line(&mut line).context("cannot read stdin")? == 0 {
                    eprintln!();
                    return Ok(None);
                }
                let line = line.trim_end_matches(['\n', '\r']).to_owned();
                Ok(Some(if line.is_empty() {
                    initial.to_owned()
                } else {
                    line
                }))
            }
        }
    }
}

/// What the user has written so far.
#[derive(Debug, Default, Clone)]
struct Draft {
    from: String,
    to: String,
    cc: String,
    subject: String,
    body: String,
    attachments: Vec<PathBuf>,
}

pub fn run(args: ComposeArgs) -> anyhow::Result<ExitCode> {
    let mut input = if std::io::stdin().is_terminal() {
        Input::Terminal(Box::new(
            DefaultEditor::new().context("cannot open the terminal")?,
        ))
    } else {
        Input::Piped(std::io::stdin().lock())
    };
    let remembered = last_from_file();
    let mut draft = Draft {
        from: remembered
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .map_or_else(default_from, |s| s.trim().to_owned()),
        ..Draft::default()
    };
    loop {
        if !ask_fields(&mut input, &mut draft)? {
            eprintln!("cancelled; nothing was sent");
            return Ok(ExitCode::FAILURE);
        }
        print_summary(&draft);
        match input
            .ask("Send, edit or cancel? [s/e/c] ", "")?
            .map(|a| a.trim().to_ascii_lowercase())
        {
            Some(answer) if answer == "s" || answer == "send" => break,
            Some(answer) if answer == "e" || answer == "edit" => continue,
            _ => {
                eprintln!("cancelled; nothing was sent");
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    if let Some(path) = &remembered {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = std::fs::write(path, &draft.from);
    }
    let runtime = crate::runtime::single_thread_runtime()?;
    runtime.block_on(send(&args, &draft))
}

/// Asks every field, offering what is already there. `false` when input ended
/// before the draft was complete.
fn ask_fields(input: &mut Input, draft: &mut Draft) -> anyhow::Result<bool> {
    let Some(from) = ask_mailboxes(input, "From: ", &draft.from, false, true)? else {
        return Ok(false);
    };
    draft.from = from;
    let Some(to) = ask_mailboxes(input, "To: ", &draft.to, false, false)? else {
        return Ok(false);
    };
    draft.to = to;
    let Some(cc) = ask_mailboxes(input, "Cc: ", &draft.cc, true, false)? else {
        return Ok(false);
    };
    draft.cc = cc;
    let Some(subject) = input.ask("Subject: ", &draft.subject)? else {
        return Ok(false);
    };
    draft.subject = subject;
    if !draft.body.is_empty() {
        let keep = input.ask("Keep the body? [y/n] ", "y")?.unwrap_or_default();
        if keep.trim().eq_ignore_ascii_case("y") {
            return ask_attachments(input, draft);
        }
    }
    eprintln!("Body (end with a line holding a single '.', or Ctrl-D):");
    let mut body = String::new();
    while let Some(line) = input.ask("", "")? {
        if line == "." {
            break;
        }
        body.push_str(&line);
        body.push('\n');
    }
    draft.body = body;
    ask_attachments(input, draft)
}

fn ask_attachments(input: &mut Input, draft: &mut Draft) -> anyhow::Result<bool> {
    draft.attachments.clear();
    eprintln!("Attach files (one path per line; an empty line when done):");
    while let Some(line) = input.ask("attach> ", "")? {
        let path = line.trim();
        if path.is_empty() {
            break;
        }
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_file() => draft.attachments.push(PathBuf::from(path)),
            Ok(_) => eprintln!("{path} is not a file"),
            Err(err) => eprintln!("cannot attach {path}: {err}"),
        }
    }
    Ok(true)
}

/// Asks for a comma-separated list of mailboxes until it parses.
fn ask_mailboxes(
    input: &mut Input,
    prompt: &str,
    initial: &str,
    optional: bool,
    single: bool,
) -> anyhow::Result<Option<String>> {
    loop {
        let Some(answer) = input.ask(prompt, initial)? else {
            return Ok(None);
        };
        let answer = answer.trim().to_owned();
        if answer.is_empty() && optional {
            return Ok(Some(answer));
        }
        match Mailbox::parse_list(&answer) {
            Ok(list) if list.is_empty() => eprintln!("an address is needed here"),
            Ok(list) if single && list.len() > 1 => eprintln!("one address here, please"),
            Ok(_) => return Ok(Some(answer)),
            Err(err) => eprintln!("{err}"),
        }
        if matches!(input, Input::Piped(_)) && answer == initial {
            // Piped input cannot fix an answer by retyping the same thing forever.
            anyhow::bail!("{prompt}{answer:?} is not usable");
        }
    }
}

fn print_summary(draft: &Draft) {
    let lines = draft.body.lines().count();
    eprintln!();
    eprintln!("From:     {}", draft.from);
    eprintln!("To:       {}", draft.to);
    if !draft.cc.is_empty() {
        eprintln!("Cc:       {}", draft.cc);
    }
    eprintln!("Subject:  {}", draft.subject);
    eprintln!(
        "Body:     {lines} line{}, {} bytes",
        if lines == 1 { "" } else { "s" },
        draft.body.len()
    );
    for path in &draft.attachments {
        eprintln!("Attached: {}", path.display());
    }
    eprintln!();
}

async fn send(args: &ComposeArgs, draft: &Draft) -> anyhow::Result<ExitCode> {
    let from = Mailbox::parse(&draft.from)?;
    let to = Mailbox::parse_list(&draft.to)?;
    let cc = Mailbox::parse_list(&draft.cc)?;
    let mut attachments = Vec::new();
    for path in &draft.attachments {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        attachments.push((path.clone(), bytes));
    }
    let message = compose_message(&MessageParts {
        from: &from,
        to: &to,
        cc: &cc,
        subject: &draft.subject,
        text: &draft.body,
        html: None,
        attachments: &attachments,
        headers: &[],
    })?;
    let config = client_config(&args.connection).await?;
    let server = config.server.clone();
    let envelope = Envelope {
        from: from.address,
        to: to.iter().chain(&cc).map(|m| m.address.clone()).collect(),
    };
    let transcript = StderrTranscript {
        verbosity: args.connection.verbose,
    };
    let result = async {
        let mut client = SmtpClient::connect(config, transcript).await?;
        let report = client.send(&envelope, &message).await?;
        client.quit().await;
        Ok::<_, ClientError>(report)
    }
    .await;
    let mut out = std::io::stdout().lock();
    match result {
        Ok(report) => {
            writeln!(
                out,
                "Sent. {server} accepted the message for {} ({}).",
                report.accepted.join(", "),
                report.reply
            )?;
            for (rcpt, reply) in &report.refused {
                writeln!(out, "But it refused {rcpt}: {reply}")?;
            }
            Ok(if report.refused.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(super::send::PARTIAL)
            })
        }
        Err(err) => {
            writeln!(out, "Not sent. {}", plain_words(&err, &server))?;
            Ok(ExitCode::from(super::send::exit_code(err.stage)))
        }
    }
}

/// What a failure means, for someone who does not speak SMTP.
fn plain_words(err: &ClientError, server: &str) -> String {
    let reply = match &err.kind {
        FailureKind::Refused(reply) => format!(" (it said: {reply})"),
        other => format!(" ({other}{})", super::send::flag_hint(other)),
    };
    let what = match err.stage {
        Stage::Connect => format!("Could not reach {server}; is the server running?"),
        Stage::Banner => format!("{server} did not accept the connection"),
        Stage::Ehlo => format!("{server} did not accept our greeting"),
        Stage::Tls => format!("Could not set up encryption with {server}"),
        Stage::Auth => format!("{server} did not accept the login"),
        Stage::Mail => format!("{server} would not take mail from this sender"),
        Stage::Rcpt => format!("{server} accepted none of the recipients"),
        Stage::Data | Stage::AfterData => format!("{server} refused the message itself"),
    };
    format!("{what}{reply}.")
}

/// Where the last From is remembered: next to the mail store.
fn last_from_file() -> Option<PathBuf> {
    sokkel_store::Store::default_path()
        .and_then(|db| db.parent().map(|dir| dir.join("compose-last-from")))
}
