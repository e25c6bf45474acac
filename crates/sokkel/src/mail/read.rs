//! `sokkel mail list | show | delete | flag | read | unread`: read and mark the
//! store, also while a server writes it.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use sokkel_store::{
    Address, FlagChange, ListQuery, Location, MessageId, RelayAttempt, Store, StoreError,
    StoredMessage, Summary, mime,
};

use crate::cli::{DeleteArgs, FlagArgs, ListArgs, MarkArgs, ShowArgs};
use sokkel_store::time::utc;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

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
    let rows: Vec<Row> = messages.iter().map(Row::new).collect();
    let id_width = rows.iter().map(|r| r.id.len()).max().unwrap_or(2).max(2);
    let columns = match terminal_width() {
        Some(width) => Columns::fit(width, id_width, &rows),
        None => Columns::TODAY,
    };
    columns.write_header(&mut out, id_width)?;
    for (row, m) in rows.iter().zip(&messages) {
        columns.write_row(&mut out, id_width, row, m)?;
    }
    // More than were shown: say how many, and how to see them.
    let total = match &args.tag {
        Some(tag) => {
            let tag = tag.to_lowercase();
            store
                .tags()?
                .into_iter()
                .find(|t| t.name.to_lowercase() == tag)
                .map_or(0, |t| t.counts.total)
        }
        None => store.count()?.total,
    };
    let more = total.saturating_sub(messages.len() as u64);
    if more > 0 && messages.len() as u64 >= u64::from(args.limit) {
        writeln!(
            out,
            "{more} more message{} not shown; --limit {total} lists them all",
            if more == 1 { "" } else { "s" }
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// One message's line of `mail list`, before it is fitted to the columns.
struct Row {
    id: String,
    received: String,
    from: String,
    to: String,
    subject: String,
    size: String,
    /// `  [a, b]`, or empty.
    tags: String,
}

impl Row {
    fn new(m: &Summary) -> Row {
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
        Row {
            id: m.id.to_string(),
            received: utc(m.received_at, false),
            from: clean(if from.is_empty() { "<>" } else { from }),
            to: clean(&to),
            subject: clean(&m.subject),
            size: size(m.size),
            tags: if m.tags.is_empty() {
                String::new()
            } else {
                clean(&format!("  [{}]", m.tags.join(", ")))
            },
        }
    }
}

/// The widths of `mail list`'s columns. Ids are never cut; on a terminal (or
/// with `COLUMNS`) the line fits its width: subjects give way first, then the
/// addresses, then the size column and the time's year and seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Columns {
    from: usize,
    to: usize,
    subject: usize,
    /// The SIZE column.
    size: bool,
    /// `YYYY-MM-DD HH:MM:SS`, or `MM-DD HH:MM`.
    full_time: bool,
    /// The most the tags after a row may take; `None`: no limit.
    tags: Option<usize>,
}

/// Never narrower than their headings.
const HEADINGS: [usize; 3] = ["FROM".len(), "TO".len(), "SUBJECT".len()];

impl Columns {
    /// Off a terminal and without `COLUMNS`: the widths `mail list` always had.
    const TODAY: Columns = Columns {
        from: 28,
        to: 28,
        subject: 30,
        size: true,
        full_time: true,
        tags: None,
    };

    /// The widest columns for `rows` that fit `width`.
    fn fit(width: usize, id_width: usize, rows: &[Row]) -> Columns {
        let widest = |field: fn(&Row) -> &str, heading: usize| {
            rows.iter()
                .map(|r| field(r).width())
                .max()
                .unwrap_or(0)
                .max(heading)
        };
        let natural = [
            widest(|r| &r.from, HEADINGS[0]),
            widest(|r| &r.to, HEADINGS[1]),
            widest(|r| &r.subject, HEADINGS[2]),
        ];
        let tags = rows
            .iter()
            .map(|r| r.tags.width())
            .max()
            .unwrap_or(0)
            .min(18);
        // (SIZE shown, full time, the subject's and the addresses' least width)
        const STAGES: [(bool, bool, usize, usize); 4] = [
            (true, true, 12, 10),
            (false, true, 12, 10),
            (false, false, 12, 10),
            (false, false, 7, 6),
        ];
        // Tags take up to 18 columns, and give way to 6 ("  [ab…") last.
        for tags in [tags, tags.min(6)] {
            for (size, full_time, subject_least, address_least) in STAGES {
                // The id and its marks, the time, the gaps between the columns.
                let fixed = id_width
                    + 3
                    + if full_time { 19 } else { 11 }
                    + 6
                    + if size { 11 } else { 0 }
                    + tags;
                let Some(room) = width.checked_sub(fixed) else {
                    continue;
                };
                if let Some([from, to, subject]) =
                    share(room, natural, subject_least, address_least)
                {
                    return Columns {
                        from,
                        to,
                        subject,
                        size,
                        full_time,
                        tags: Some(width - fixed - from - to - subject + tags),
                    };
                }
            }
        }
        // Narrower than any of that: the narrowest, wider than the terminal.
        Columns {
            from: natural[0].min(6),
            to: natural[1].min(6),
            subject: natural[2].min(7),
            size: false,
            full_time: false,
            tags: Some(tags),
        }
    }

    fn write_header(&self, out: &mut impl Write, id_width: usize) -> std::io::Result<()> {
        let mut line = format!("{:>id_width$}   ", "ID");
        line.push_str(if self.full_time {
            "RECEIVED (UTC)     "
        } else {
            "RECEIVED   "
        });
        for (heading, width) in [
            ("FROM", self.from),
            ("TO", self.to),
            ("SUBJECT", self.subject),
        ] {
            line.push_str("  ");
            line.push_str(&pad(heading, width));
        }
        if self.size {
            line.push_str(&format!("  {:>9}", "SIZE"));
        }
        writeln!(out, "{}", line.trim_end())
    }

    fn write_row(
        &self,
        out: &mut impl Write,
        id_width: usize,
        row: &Row,
        m: &Summary,
    ) -> std::io::Result<()> {
        let unread = if m.read { ' ' } else { '*' };
        let star = if m.flagged { '★' } else { ' ' };
        let received = if self.full_time {
            row.received.as_str()
        } else {
            // `YYYY-MM-DD HH:MM:SS` → `MM-DD HH:MM`
            row.received.get(5..16).unwrap_or(&row.received)
        };
        let mut line = format!("{:>id_width$}{unread}{star} {received}", row.id);
        for (text, width) in [
            (&row.from, self.from),
            (&row.to, self.to),
            (&row.subject, self.subject),
        ] {
            line.push_str("  ");
            line.push_str(&pad(text, width));
        }
        if self.size {
            line.push_str(&format!("  {:>9}", row.size));
        }
        match self.tags {
            _ if row.tags.is_empty() => writeln!(out, "{}", line.trim_end()),
            None => writeln!(out, "{line}{}", row.tags),
            Some(room) => writeln!(out, "{line}{}", cut(&row.tags, room)),
        }
    }
}

/// Widths for the from, to and subject columns in `room` columns: each as wide
/// as its widest value if they fit; else addresses longer than `mail list`'s
/// usual 28 columns give way, then the subject, down to `subject_least`, then
/// the addresses, down to `address_least` (the longer one first). `None` if
/// even that does not fit.
fn share(
    room: usize,
    [from, to, subject]: [usize; 3],
    subject_least: usize,
    address_least: usize,
) -> Option<[usize; 3]> {
    let usual = [from.min(28), to.min(28)];
    let subject_least = subject.min(subject_least);
    if usual[0] + usual[1] + subject_least <= room {
        // The addresses take what the whole subject leaves, down to 28.
        let addresses = room.saturating_sub(subject).max(usual[0] + usual[1]);
        let (from, to) = split(addresses, from, to);
        return Some([from, to, subject.min(room - from - to)]);
    }
    let least = [from.min(address_least), to.min(address_least)];
    if least[0] + least[1] + subject_least > room {
        return None;
    }
    let (from, to) = split(room - subject_least, from, to);
    Some([from, to, subject_least])
}

/// `from` and `to` cut to `room` together: the shorter whole if it takes no
/// more than half, else half each.
fn split(room: usize, from: usize, to: usize) -> (usize, usize) {
    if from + to <= room {
        return (from, to);
    }
    let half = room / 2;
    if from <= half {
        (from, room - from)
    } else if to <= room - half {
        (room - to, to)
    } else {
        (half, room - half)
    }
}

/// The terminal's width: `COLUMNS` if set, else the width of the terminal
/// stdout is (none when it is a pipe or a file).
fn terminal_width() -> Option<usize> {
    if let Some(columns) = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|&c| c > 0)
    {
        return Some(columns);
    }
    let stdout = std::io::stdout();
    if !stdout.is_terminal() {
        return None;
    }
    rustix::termios::tcgetwinsize(&stdout)
        .ok()
        .map(|size| usize::from(size.ws_col))
        .filter(|&c| c > 0)
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
    // Reading it is reading it, as on the page, through the API and POP3;
    // the bytes (--raw, like the API's .../raw) and the envelope are for scripts.
    let read = !(args.raw || args.envelope || args.keep_unread);
    if read && !message.summary.read {
        out.flush()?;
        let change = FlagChange {
            read: Some(true),
            flagged: None,
        };
        if let Err(error) = store.set_flags(&[id], change) {
            eprintln!("sokkel: message {id} was shown but not marked read: {error}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `mail delete ID...` deletes the ids that are in the store, says which are
/// not, and then exits 1; `--all` empties it.
pub fn delete(args: DeleteArgs) -> anyhow::Result<ExitCode> {
    let location = super::store_location(&args.store)?;
    let store = super::open_existing(&args.store)?;
    let (deleted, missing) = if args.all {
        let deleted = store
            .delete_all()
            .map_err(|error| cannot_delete(&location, error))?;
        (deleted, Vec::new())
    } else {
        let mut ids = args
            .ids
            .iter()
            .map(|id| resolve_id(&store, id))
            .collect::<anyhow::Result<Vec<_>>>()?;
        ids.sort_unstable();
        ids.dedup();
        let mut missing = Vec::new();
        for &id in &ids {
            if store.raw_len(id)?.is_none() {
                missing.push(id);
            }
        }
        ids.retain(|id| !missing.contains(id));
        let deleted = if ids.is_empty() {
            0
        } else {
            store
                .delete(&ids)
                .map_err(|error| cannot_delete(&location, error))?
        };
        (deleted, missing)
    };
    if deleted > 0 || missing.is_empty() {
        writeln!(
            std::io::stdout(),
            "deleted {deleted} message{}",
            if deleted == 1 { "" } else { "s" }
        )?;
    }
    if !missing.is_empty() {
        let ids: Vec<String> = missing.iter().map(|id| id.to_string()).collect();
        let (noun, verb) = if ids.len() == 1 {
            ("message", "is")
        } else {
            ("messages", "are")
        };
        eprintln!(
            "sokkel: {noun} {} {verb} not in the store; `sokkel mail list` shows the ids",
            ids.join(", ")
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

/// `text` with control characters as spaces, so a hostile subject cannot move
/// the cursor.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Cuts `text` to `width` terminal columns (wide characters count two),
/// marking the cut with `…`.
fn cut(text: &str, width: usize) -> String {
    if text.width() <= width {
        return text.to_owned();
    }
    let mut cut = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = c.width().unwrap_or(0);
        if used + w + 1 > width {
            break;
        }
        cut.push(c);
        used += w;
    }
    if width > 0 {
        cut.push('…');
    }
    cut
}

/// [`cut`], then padded with spaces to `width` columns.
fn pad(text: &str, width: usize) -> String {
    let mut padded = cut(text, width);
    let used = padded.width();
    padded.extend(std::iter::repeat_n(' ', width.saturating_sub(used)));
    padded
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

    /// `mail list` on any terminal from 50 columns up: the line fits, subjects
    /// give way before addresses cut below 28 columns, and what fits is whole.
    #[test]
    fn list_columns_fit_the_width() {
        let row = |from: &str, subject: &str| Row {
            id: "12345".into(),
            received: "2026-12-01 05:59:03".into(),
            from: from.into(),
            to: "b@x.test +1".into(),
            subject: subject.into(),
            size: "174 B".into(),
            tags: "  [alpha, beta]".into(),
        };
        let long = "someone.with.a.long.name@sender.example.test";
        let rows = [
            row(long, &"a long subject ".repeat(6)),
            row("a@x.test", "hi"),
        ];
        for width in 50..=250 {
            let c = Columns::fit(width, 5, &rows);
            let time = if c.full_time { 19 } else { 11 };
            let size = if c.size { 11 } else { 0 };
            let used = 5 + 3 + time + 6 + size + c.from + c.to + c.subject;
            assert!(used + c.tags.unwrap() <= width, "{width}: {c:?}");
            assert!(c.tags.unwrap() >= 6, "{width}: {c:?}");
            if c.subject < 90 && c.from < long.len() {
                assert!(c.from <= 28, "{width}: the subject gave way first: {c:?}");
            }
        }
        let wide = Columns::fit(204, 5, &rows);
        assert_eq!((wide.from, wide.to, wide.subject), (long.len(), 11, 90));
        assert!(wide.size && wide.full_time);
    }

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
