//! `sokkel mail list | show | delete | flag | read | unread`: read and mark the
//! store, also while a server writes it.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use sokkel_store::{
    Address, FlagChange, ListQuery, Location, MessageId, RelayAttempt, Store, StoreError,
    StoredMessage, Summary, mime,
};

use crate::cli::{DeleteArgs, FlagArgs, ListArgs, MarkArgs, ShowArgs};
use sokkel_store::time::utc;

pub fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let store = super::open_existing(&args.store)?;
    let page = ListQuery {
        limit: args.limit as usize,
        offset: 0,
        before: None,
    };
    let messages = match &args.tag {
        Some(tag) => store.list_tagged(tag, &page)?,
        None => store.list(&page)?,
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        let rows: Vec<_> = messages.iter().map(summary_json).collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    if let (true, Some(tag)) = (messages.is_empty(), &args.tag) {
        writeln!(out, "no messages tagged {tag:?} in {}", store.location())?;
        return Ok(ExitCode::SUCCESS);
    }
    if messages.is_empty() {
        writeln!(out, "no messages in {}", store.location())?;
        return Ok(ExitCode::SUCCESS);
    }
    let id_width = messages
        .iter()
        .map(|m| m.id.to_string().len())
        .max()
        .unwrap_or(2)
        .max(2);
    writeln!(
        out,
        "{:>id_width$}   {:19}  {:28}  {:28}  {:30}  {:>9}",
        "ID", "RECEIVED (UTC)", "FROM", "TO", "SUBJECT", "SIZE"
    )?;
    for m in &messages {
        let from = m
            .from
            .as_ref()
            .map_or(m.mail_from.as_str(), |a| a.address.as_str());
        let to = m.to.first().map_or_else(
            || m.rcpt_to.first().cloned().unwrap_or_default(),
            |a| a.address.clone(),
        );
        // A listed summary keeps the first To addresses and the header's count.
        let to_total = m.to_count.max(m.to.len() as u64);
        let more = to_total.max(m.rcpt_to.len() as u64).saturating_sub(1);
        let to = if more > 0 {
            format!("{to} +{more}")
        } else {
            to
        };
        let unread = if m.read { ' ' } else { '*' };
        let star = if m.flagged { '★' } else { ' ' };
        write!(
            out,
            "{:>id_width$}{unread}{star} {:19}  {:28}  {:28}  {:30}  {:>9}",
            m.id,
            utc(m.received_at, false),
            cut(if from.is_empty() { "<>" } else { from }, 28),
            cut(&to, 28),
            cut(&m.subject, 30),
            size(m.size),
        )?;
        if m.tags.is_empty() {
            writeln!(out)?;
        } else {
            writeln!(out, "  [{}]", m.tags.join(", "))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn show(args: ShowArgs) -> anyhow::Result<ExitCode> {
    let store = super::open_existing(&args.store)?;
    let id = resolve_id(&store, &args.id)?;
    let message = store
        .get(id)?
        .with_context(|| format!("no message {id}; `sokkel mail list` shows the ids"))?;
    let mut out = std::io::stdout().lock();
    if args.raw {
        out.write_all(&message.raw)?;
    } else if args.html {
        let html = mime::parse(&message.raw)
            .html
            .with_context(|| format!("message {id} has no HTML part"))?;
        writeln!(out, "{html}")?;
    } else if args.envelope {
        write_envelope(&mut out, &message)?;
    } else {
        let relays = store.relay_attempts(id)?;
        write_message(&mut out, &message, &relays)?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn delete(args: DeleteArgs) -> anyhow::Result<ExitCode> {
    let location = super::store_location(&args.store)?;
    let store = super::open_existing(&args.store)?;
    let ids = if args.all {
        None
    } else {
        let ids = args
            .ids
            .iter()
            .map(|id| resolve_id(&store, id))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Some(ids)
    };
    let deleted = match &ids {
        None => store.delete_all(),
        Some(ids) => store.delete(ids),
    }
    .map_err(|error| cannot_delete(&location, error))?;
    writeln!(
        std::io::stdout(),
        "deleted {deleted} message{}",
        if deleted == 1 { "" } else { "s" }
    )?;
    if let Some(ids) = ids
        && deleted < ids.len() as u64
    {
        eprintln!(
            "sokkel: {} of the ids given were not in the store",
            ids.len() as u64 - deleted
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn flag(args: FlagArgs) -> anyhow::Result<ExitCode> {
    let change = FlagChange {
        read: None,
        flagged: Some(!args.unflag),
    };
    let done = if args.unflag { "unstarred" } else { "starred" };
    set_flags(&args.store, &args.ids, change, done)
}

pub fn mark(args: MarkArgs, read: bool) -> anyhow::Result<ExitCode> {
    let change = FlagChange {
        read: Some(read),
        flagged: None,
    };
    let done = if read { "marked read" } else { "marked unread" };
    set_flags(&args.store, &args.ids, change, done)
}

/// `mail flag | read | unread`: one line saying how many messages were changed,
/// and a failure exit if some of the ids were not in the store.
fn set_flags(
    store: &crate::cli::StoreArgs,
    ids: &[String],
    change: FlagChange,
    done: &str,
) -> anyhow::Result<ExitCode> {
    let store = super::open_existing(store)?;
    let mut ids = ids
        .iter()
        .map(|id| resolve_id(&store, id))
        .collect::<anyhow::Result<Vec<_>>>()?;
    ids.sort_unstable();
    ids.dedup();
    let found = store
        .set_flags(&ids, change)
        .context("cannot change the messages' flags")?;
    writeln!(
        std::io::stdout(),
        "{done} {found} message{}",
        if found == 1 { "" } else { "s" }
    )?;
    if found < ids.len() as u64 {
        eprintln!(
            "sokkel: {} of the ids given were not in the store; `sokkel mail list` shows the ids",
            ids.len() as u64 - found
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// What a failed delete tells the user. A store at its size limit always deletes
/// (the limit holds new messages only), and on a full disk the store first gives
/// up its reserve; `Full` here means the disk is full beyond what that made up
/// for. (A PostgreSQL server's full disk is its operator's: the store's own
/// message says so.)
fn cannot_delete(location: &Location, error: StoreError) -> anyhow::Error {
    match (location, error) {
        (Location::File(db), StoreError::Full) => {
            let dir = db
                .parent()
                .filter(|dir| !dir.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            anyhow!(
                "cannot delete: the disk holding {} is full, and deleting needs a few MB \
                 for SQLite's journal; free some space on it (`df {}` shows how much) and \
                 run this again",
                db.display(),
                dir.display()
            )
        }
        (_, error) => anyhow::Error::new(error).context("cannot delete"),
    }
}

pub(super) fn resolve_id(store: &Store, id: &str) -> anyhow::Result<MessageId> {
    if id.eq_ignore_ascii_case("latest") {
        return store.latest()?.context("the store holds no messages yet");
    }
    match id.parse::<MessageId>() {
        Ok(id) if id.0 > 0 => Ok(id),
        _ => bail!("{id:?} is not a message id; use a number from `sokkel mail list`, or `latest`"),
    }
}

fn write_message(
    out: &mut impl Write,
    message: &StoredMessage,
    relays: &[RelayAttempt],
) -> anyhow::Result<()> {
    let s = &message.summary;
    let parsed = mime::parse(&message.raw);
    writeln!(out, "ID:       {}", s.id)?;
    writeln!(
        out,
        "Received: {} UTC from {} (HELO {})",
        utc(s.received_at, false),
        message.envelope.client_addr,
        message.envelope.helo
    )?;
    const SHOWN: &[&str] = &[
        "From",
        "To",
        "Cc",
        "Reply-To",
        "Subject",
        "Date",
        "Message-ID",
    ];
    for name in SHOWN {
        for (header, value) in parsed
            .headers
            .iter()
            .filter(|(h, _)| h.eq_ignore_ascii_case(name))
        {
            writeln!(
                out,
                "{:<9} {}",
                format!("{header}:"),
                printable(value, false)
            )?;
        }
    }
    if !s.tags.is_empty() {
        writeln!(out, "Tags:     {}", s.tags.join(", "))?;
    }
    for a in &parsed.attachments {
        writeln!(
            out,
            "Attached: {} ({}, {})",
            a.file_name,
            a.content_type,
            size(a.size as u64)
        )?;
    }
    super::relay::write_attempts(out, relays)?;
    if s.bare_lf {
        writeln!(
            out,
            "Note:     the client ended lines with bare LF, not CRLF (RFC 5321 asks for CRLF)"
        )?;
    }
    if !s.parsed {
        writeln!(
            out,
            "Note:     this message does not parse as RFC 5322; `--raw` shows its bytes"
        )?;
    }
    writeln!(out)?;
    match (&parsed.text, &parsed.html) {
        (Some(text), _) => writeln!(out, "{}", printable(text.trim_end(), true))?,
        (None, Some(_)) => writeln!(out, "(HTML only; see --html)")?,
        (None, None) => writeln!(out, "(no text body)")?,
    }
    Ok(())
}

fn write_envelope(out: &mut impl Write, message: &StoredMessage) -> anyhow::Result<()> {
    let e = &message.envelope;
    writeln!(out, "MAIL FROM: <{}>", e.mail_from)?;
    for rcpt in &e.rcpt_to {
        writeln!(out, "RCPT TO:   <{rcpt}>")?;
    }
    writeln!(out, "Client:    {} (HELO {})", e.client_addr, e.helo)?;
    writeln!(out, "Received:  {}", utc(message.summary.received_at, true))?;
    writeln!(out, "Size:      {} bytes", message.summary.size)?;
    match &e.tls {
        Some(tls) => writeln!(out, "TLS:       {} {}", tls.version, tls.cipher)?,
        None => writeln!(out, "TLS:       no")?,
    }
    if let Some(user) = &e.auth_user {
        writeln!(out, "AUTH:      {user}")?;
    }
    writeln!(out, "SMTPUTF8:  {}", if e.smtputf8 { "yes" } else { "no" })?;
    writeln!(
        out,
        "Bare LF:   {}",
        if e.bare_lf {
            "yes (the client sent bare line feeds)"
        } else {
            "no"
        }
    )?;
    Ok(())
}

fn summary_json(m: &Summary) -> serde_json::Value {
    let addr = |a: &Address| serde_json::json!({ "name": a.name, "address": a.address });
    serde_json::json!({
        "id": m.id,
        "received": utc(m.received_at, true),
        "mail_from": m.mail_from,
        "rcpt_to": m.rcpt_to,
        "from": m.from.as_ref().map(addr),
        "to": m.to.iter().map(addr).collect::<Vec<_>>(),
        "cc": m.cc.iter().map(addr).collect::<Vec<_>>(),
        "subject": m.subject,
        "date": m.date,
        "message_id": m.message_id,
        "size": m.size,
        "attachments": m.attachments,
        "snippet": m.snippet,
        "read": m.read,
        "flagged": m.flagged,
        "tags": m.tags,
        "bare_lf": m.bare_lf,
    })
}

/// Replaces control characters (terminal escapes above all) with U+FFFD, keeping
/// line breaks and tabs when `multiline`: what a sender wrote must not be able to
/// drive the reader's terminal.
pub(super) fn printable(text: &str, multiline: bool) -> std::borrow::Cow<'_, str> {
    let keep = |c: char| !c.is_control() || (multiline && (c == '\n' || c == '\t'));
    if text.chars().all(keep) {
        return std::borrow::Cow::Borrowed(text);
    }
    let cleaned = text.chars().filter_map(|c| match c {
        // CRLF line ends read as LF; a lone CR could overwrite what was printed.
        '\r' if multiline => None,
        c if keep(c) => Some(c),
        _ => Some('\u{fffd}'),
    });
    std::borrow::Cow::Owned(cleaned.collect())
}

/// Cuts `text` to `width` characters, marking the cut, and drops control characters
/// so a hostile subject cannot move the cursor.
fn cut(text: &str, width: usize) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if clean.chars().count() <= width {
        return clean;
    }
    let mut cut: String = clean.chars().take(width - 1).collect();
    cut.push('…');
    cut
}

fn size(bytes: u64) -> String {
    match bytes {
        b if b < 1024 => format!("{b} B"),
        b if b < 1024 * 1024 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue #11: a delete that fails on a full disk says so and what to do, in
    /// one line, instead of the store's "delete messages to make room".
    #[test]
    fn a_delete_on_a_full_disk_says_to_free_space() {
        let error = cannot_delete(
            &Location::File("/data/sokkel/mail.db".into()),
            StoreError::Full,
        );
        let line = format!("{error:#}");
        assert_eq!(
            line,
            "cannot delete: the disk holding /data/sokkel/mail.db is full, and deleting \
             needs a few MB for SQLite's journal; free some space on it (`df /data/sokkel` \
             shows how much) and run this again"
        );
        let error = cannot_delete(&Location::File("mail.db".into()), StoreError::Busy);
        assert_eq!(
            format!("{error:#}"),
            "cannot delete: the mail store is locked by another process; try again"
        );
    }
}
