//! `sokkel mail export --format mbox|maildir|eml [--query Q] DEST`: the
//! messages a search selects, oldest first, out of the store.
//!
//! ```text
//! Store::search (pages of ids) ─▶ oldest first ─▶ Store::raw_chunk ─┬─▶ mbox: From_ line, mboxrd quoting
//!                                                                   ├─▶ maildir: tmp/ ─rename─▶ new/ or cur/
//!                                                                   └─▶ eml: ID.eml
//! ```
//!
//! Memory holds the selected ids and one chunk of one message
//! ([`sokkel_store::RAW_CHUNK_BYTES`]) for a Maildir or `.eml` files, one
//! whole message for mbox (so a message deleted while it is read is never
//! written in part), never a whole store. A store served by another process
//! reads fine: export only reads.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use sokkel_store::{ListQuery, MessageId, RAW_CHUNK_BYTES, SearchQuery, Store};

use sokkel_message::mailbox::{FromQuoter, MaildirFlags, maildir_unique};

use super::mailbox::asctime;
use crate::cli::{ExportArgs, ExportFormat};

/// How many summaries one search page reads.
const PAGE: usize = 500;

/// What export needs to know of a selected message besides its bytes.
struct Selected {
    id: MessageId,
    received_at: SystemTime,
    mail_from: String,
    flags: MaildirFlags,
}

pub fn run(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let store = super::open_existing(&args.store)?;
    let query = args.query.unwrap_or_default();
    let selected = select(&store, &query)?;
    let bar = progress_bar(selected.len() as u64);
    let to_stdout = args.format == ExportFormat::Mbox && args.dest == Path::new("-");
    let written = match args.format {
        ExportFormat::Mbox if to_stdout => {
            write_mbox(&store, &selected, &mut std::io::stdout().lock(), &bar)?
        }
        ExportFormat::Mbox => write_mbox_file(&store, &selected, &args.dest, args.force, &bar)?,
        ExportFormat::Maildir => write_maildir(&store, &selected, &args.dest, args.force, &bar)?,
        ExportFormat::Eml => write_eml(&store, &selected, &args.dest, args.force, &bar)?,
    };
    bar.finish_and_clear();
    let gone = selected.len() as u64 - written;
    let mut summary = format!(
        "exported {written} message{} to {}",
        if written == 1 { "" } else { "s" },
        if to_stdout {
            "stdout".to_owned()
        } else {
            args.dest.display().to_string()
        }
    );
    if gone > 0 {
        summary.push_str(&format!("; {gone} were deleted while it ran"));
    }
    // The summary must not end up inside an mbox written to stdout.
    if to_stdout {
        eprintln!("{summary}");
    } else {
        writeln!(std::io::stdout(), "{summary}")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The messages `query` finds, oldest first (by received time, then id).
fn select(store: &Store, query: &SearchQuery) -> anyhow::Result<Vec<Selected>> {
    let mut selected = Vec::new();
    let mut before = None;
    loop {
        let page = ListQuery {
            limit: PAGE,
            offset: 0,
            before,
        };
        let found = store
            .search(query, &page)
            .context("cannot search the mail store")?;
        let last = found.messages.len() < PAGE;
        before = found.messages.last().map(|m| m.id);
        selected.extend(found.messages.into_iter().map(|m| Selected {
            id: m.id,
            received_at: m.received_at,
            mail_from: m.mail_from,
            flags: MaildirFlags {
                seen: m.read,
                flagged: m.flagged,
            },
        }));
        if last || before.is_none() {
            break;
        }
    }
    selected.sort_by_key(|m| (m.received_at, m.id));
    Ok(selected)
}

fn progress_bar(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} messages ({eta} left)") {
        bar.set_style(style);
    }
    bar
}

/// Where export reads messages' bytes: the store, or a unit test's stand-in
/// that deletes a message while it is read.
trait RawChunks {
    /// [`RAW_CHUNK_BYTES`] of message `id` from `offset`, as
    /// [`Store::raw_chunk`] reads them: `None` once it is deleted.
    fn raw_chunk(&self, id: MessageId, offset: u64) -> anyhow::Result<Option<Vec<u8>>>;
}

impl RawChunks for Store {
    fn raw_chunk(&self, id: MessageId, offset: u64) -> anyhow::Result<Option<Vec<u8>>> {
        Store::raw_chunk(self, id, offset, RAW_CHUNK_BYTES)
            .with_context(|| format!("cannot read message {id}"))
    }
}

/// Hands message `id`'s bytes to `each`, a chunk at a time; `false` if it was
/// deleted before its last chunk (each chunk is read on its own), so the
/// caller drops what `each` got.
fn each_chunk(
    store: &impl RawChunks,
    id: MessageId,
    mut each: impl FnMut(&[u8]) -> anyhow::Result<()>,
) -> anyhow::Result<bool> {
    let mut offset = 0u64;
    loop {
        let Some(chunk) = store.raw_chunk(id, offset)? else {
            return Ok(false);
        };
        if chunk.is_empty() {
            return Ok(true);
        }
        each(&chunk)?;
        offset += chunk.len() as u64;
        if chunk.len() < RAW_CHUNK_BYTES {
            return Ok(true);
        }
    }
}

fn write_mbox(
    store: &impl RawChunks,
    selected: &[Selected],
    out: &mut impl Write,
    bar: &ProgressBar,
) -> anyhow::Result<u64> {
    let mut written = 0;
    let mut buf = Vec::new();
    for message in selected {
        let sender = match message.mail_from.as_str() {
            "" => "MAILER-DAEMON",
            sender => sender,
        };
        buf.clear();
        buf.extend_from_slice(
            format!("From {sender} {}\n", asctime(message.received_at)).as_bytes(),
        );
        let mut quoter = FromQuoter::default();
        // Written whole or not at all: the message may be deleted meanwhile.
        let found = each_chunk(store, message.id, |chunk| {
            quoter.push(chunk, &mut buf);
            Ok(())
        })?;
        if found {
            quoter.finish(&mut buf);
            out.write_all(&buf)?;
            written += 1;
        }
        bar.inc(1);
    }
    Ok(written)
}

/// An mbox file at `dest`, written to `DEST.PID.tmp` beside it and renamed
/// over it once complete, so a failed export leaves an old file as it was.
/// Without `force`, `dest` is made first, only if it does not exist
/// (`create_new`): a file that exists, or appears meanwhile, is never replaced.
fn write_mbox_file(
    store: &Store,
    selected: &[Selected],
    dest: &Path,
    force: bool,
    bar: &ProgressBar,
) -> anyhow::Result<u64> {
    if !force {
        match File::options().write(true).create_new(true).open(dest) {
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => bail!(
                "{} exists; pass --force to overwrite it, or name another file",
                dest.display()
            ),
            Err(error) => {
                return Err(error).with_context(|| format!("cannot create {}", dest.display()));
            }
        }
    }
    let mut tmp = dest.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let written = (|| {
        let file =
            File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        let mut out = BufWriter::with_capacity(1 << 16, file);
        let written = write_mbox(store, selected, &mut out, bar)?;
        out.flush()
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, dest)
            .with_context(|| format!("cannot move {} to {}", tmp.display(), dest.display()))?;
        Ok(written)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
        if !force {
            let _ = std::fs::remove_file(dest);
        }
    }
    written
}

/// `path` made, with its parents, if missing.
fn make_dir(path: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(path).with_context(|| format!("cannot create {}", path.display()))
}

/// Writes message `id` to `tmp`, dates it `received` (a Maildir reader's
/// delivery time), then moves it to `path`. `false` if it was deleted.
fn write_file(store: &Store, message: &Selected, tmp: &Path, path: &Path) -> anyhow::Result<bool> {
    let mut file = File::create(tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let found = each_chunk(store, message.id, |chunk| {
        file.write_all(chunk)
            .with_context(|| format!("cannot write {}", tmp.display()))
    })?;
    if !found {
        drop(file);
        let _ = std::fs::remove_file(tmp);
        return Ok(false);
    }
    file.set_modified(message.received_at)
        .with_context(|| format!("cannot date {}", tmp.display()))?;
    drop(file);
    std::fs::rename(tmp, path)
        .with_context(|| format!("cannot move {} to {}", tmp.display(), path.display()))?;
    Ok(true)
}

/// A Maildir: each message in `new/` (unread, unstarred) or `cur/` with its
/// flags, named `SECONDS.MMICROSECONDSQID.HOST` after its received time and id,
/// so that exporting again finds the same names.
fn write_maildir(
    store: &Store,
    selected: &[Selected],
    dest: &Path,
    force: bool,
    bar: &ProgressBar,
) -> anyhow::Result<u64> {
    for sub in ["tmp", "new", "cur"] {
        make_dir(&dest.join(sub))?;
    }
    let mut existing: HashMap<String, PathBuf> = HashMap::new();
    for sub in ["new", "cur"] {
        let dir = dest.join(sub);
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            existing.insert(maildir_unique(&name).to_owned(), entry.path());
        }
    }
    let host = super::send::host_name()
        .replace('/', "\\057")
        .replace(':', "\\072");
    let unique = |m: &Selected| {
        let since = m.received_at.duration_since(UNIX_EPOCH).unwrap_or_default();
        format!(
            "{}.M{}Q{}.{host}",
            since.as_secs(),
            since.subsec_micros(),
            m.id
        )
    };
    let clashes: Vec<&PathBuf> = selected
        .iter()
        .filter_map(|m| existing.get(&unique(m)))
        .collect();
    if let (false, Some(first)) = (force, clashes.first()) {
        bail!(
            "{} of these messages are in {} already (such as {}); pass --force to write them again",
            clashes.len(),
            dest.display(),
            first.display()
        );
    }
    let mut written = 0;
    for message in selected {
        let unique = unique(message);
        if let Some(old) = existing.get(&unique) {
            std::fs::remove_file(old)
                .with_context(|| format!("cannot replace {}", old.display()))?;
        }
        let (sub, suffix) = message.flags.place();
        let tmp = dest.join("tmp").join(&unique);
        let path = dest.join(sub).join(format!("{unique}{suffix}"));
        if write_file(store, message, &tmp, &path)? {
            written += 1;
        }
        bar.inc(1);
    }
    Ok(written)
}

/// One `ID.eml` file per message.
fn write_eml(
    store: &Store,
    selected: &[Selected],
    dest: &Path,
    force: bool,
    bar: &ProgressBar,
) -> anyhow::Result<u64> {
    make_dir(dest)?;
    let path = |m: &Selected| dest.join(format!("{}.eml", m.id));
    let clashes: Vec<PathBuf> = selected.iter().map(path).filter(|p| p.exists()).collect();
    if let (false, Some(first)) = (force, clashes.first()) {
        bail!(
            "{} of the files to write exist in {} (such as {}); pass --force to overwrite them",
            clashes.len(),
            dest.display(),
            first.display()
        );
    }
    let mut written = 0;
    for message in selected {
        let tmp = dest.join(format!(".{}.eml.tmp", message.id));
        if write_file(store, message, &tmp, &path(message))? {
            written += 1;
        }
        bar.inc(1);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Messages by id; `vanishing` is deleted once its first chunk is read.
    struct Messages {
        raw: HashMap<MessageId, Vec<u8>>,
        vanishing: MessageId,
    }

    impl RawChunks for Messages {
        fn raw_chunk(&self, id: MessageId, offset: u64) -> anyhow::Result<Option<Vec<u8>>> {
            if id == self.vanishing && offset > 0 {
                return Ok(None);
            }
            Ok(self.raw.get(&id).map(|raw| {
                let start = (offset as usize).min(raw.len());
                let end = (start + RAW_CHUNK_BYTES).min(raw.len());
                raw[start..end].to_vec()
            }))
        }
    }

    fn selected(id: i64) -> Selected {
        Selected {
            id: MessageId(id),
            received_at: UNIX_EPOCH,
            mail_from: format!("{id}@x.test"),
            flags: MaildirFlags::default(),
        }
    }

    /// Issue #18: a message deleted between two chunks was written cut off,
    /// and counted as exported.
    #[test]
    fn an_mbox_leaves_out_a_message_deleted_while_it_is_read() {
        let big = format!("Subject: big\n\n{}\n", "x".repeat(2 * RAW_CHUNK_BYTES));
        let messages = Messages {
            raw: HashMap::from([
                (MessageId(1), b"Subject: one\n\n1\n".to_vec()),
                (MessageId(2), big.into_bytes()),
                (MessageId(3), b"Subject: three\n\n3\n".to_vec()),
            ]),
            vanishing: MessageId(2),
        };
        let mut out = Vec::new();
        let written = write_mbox(
            &messages,
            &[selected(1), selected(2), selected(3)],
            &mut out,
            &ProgressBar::hidden(),
        )
        .expect("an mbox in memory");
        assert_eq!(written, 2);
        assert_eq!(
            String::from_utf8(out).expect("ASCII"),
            "From 1@x.test Thu Jan  1 00:00:00 1970\nSubject: one\n\n1\n\n\
             From 3@x.test Thu Jan  1 00:00:00 1970\nSubject: three\n\n3\n\n"
        );
    }

    #[test]
    fn a_message_deleted_after_its_first_chunk_counts_as_deleted() {
        let messages = Messages {
            raw: HashMap::from([(MessageId(2), vec![b'x'; RAW_CHUNK_BYTES + 1])]),
            vanishing: MessageId(2),
        };
        let mut read = 0;
        let found = each_chunk(&messages, MessageId(2), |chunk| {
            read += chunk.len();
            Ok(())
        })
        .expect("no error");
        assert!(!found);
        assert_eq!(read, RAW_CHUNK_BYTES);
    }
}
