//! `sokkel mail import PATH...`: mbox files, Maildir folders and `.eml` files
//! into the store.
//!
//! ```text
//! paths ─▶ sources (files, Maildirs) ─▶ messages ─▶ batch ─┬─▶ Store::import (owner, PostgreSQL)
//!                                                          └─▶ BDAT to `mail serve` (it serves the file)
//! ```
//!
//! Messages go to the store in batches of at most [`BATCH_MESSAGES`] messages
//! and [`BATCH_BYTES`] bytes, so memory stays bounded whatever the input.
//! When another process serves the SQLite store, only it may add messages
//! ([`StoreError::Served`]): the batch then goes to that server's SMTP
//! listener (at `--smtp`, else where it recorded it in the store's log
//! directory, [`Store::served_smtp`]), one message per BDAT (byte for byte:
//! no dot-stuffing, no line ending rewritten). Only a server whose EHLO reply
//! names the token the store's owner recorded (`XSOKKEL-STORE`) gets any
//! message, so mail never goes to a stale address or another server.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{BufReader, IsTerminal, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{Context, anyhow, bail};
use indicatif::{ProgressBar, ProgressStyle};
use sokkel_smtp::client::reply::{ServerReply, parse_reply};
use sokkel_store::{Envelope, FlagChange, MessageId, NewMessage, Store, StoreError, StoreOptions};

use sokkel_message::mailbox::{FileKind, MaildirFlags, MboxReader, file_kind};

use super::mailbox::{header_envelope, parse_from_line};
use crate::cli::ImportArgs;

/// The most messages one batch holds.
const BATCH_MESSAGES: usize = 2000;
/// The most bytes of messages one batch holds.
const BATCH_BYTES: usize = 64 << 20;
/// How much of a file tells what it is.
const HEAD_BYTES: usize = 8192;
/// The HELO an imported message is stored with (no SMTP client sent it).
const IMPORT_HELO: &str = "import";
/// The longest wait for the server's reply to an SMTP command.
const SMTP_TIMEOUT: Duration = Duration::from_secs(60);

pub fn run(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let location = super::serve_location(&args.store)?;
    let store = Store::open_at(&location, StoreOptions::default())
        .with_context(|| format!("cannot open the mail store {location}"))?;
    let mut sources = Vec::new();
    let mut skipped = Skipped::default();
    let mut visited = HashSet::new();
    for path in &args.paths {
        find_sources(path, &mut sources, &mut skipped, &mut visited, 0);
    }
    let total_bytes: u64 = sources.iter().map(|s| s.bytes).sum();
    let bar = progress_bar(total_bytes);
    for note in &skipped.notes {
        bar.suspend(|| eprintln!("sokkel: {note}"));
    }
    let mut import = Importer {
        store,
        smtp_flag: args.smtp.clone(),
        direct: None,
        smtp: None,
        batch: Vec::new(),
        batch_bytes: 0,
        imported: 0,
        skipped,
        max: args.max_message_size as u64,
        bar,
    };
    let files = sources.len();
    for source in sources {
        import.source(source)?;
    }
    import.flush()?;
    import.bar.finish_and_clear();
    if let Some(smtp) = import.smtp.take() {
        smtp.quit();
    }
    let Importer {
        imported, skipped, ..
    } = import;
    let mut summary = format!(
        "imported {imported} message{} from {files} file{}",
        plural(imported),
        plural(files as u64)
    );
    if !skipped.reasons.is_empty() {
        let reasons: Vec<String> = skipped
            .reasons
            .iter()
            .map(|(reason, count)| format!("{count} {reason}"))
            .collect();
        summary.push_str(&format!("; skipped {}", reasons.join(", ")));
    }
    writeln!(std::io::stdout(), "{summary}")?;
    Ok(if skipped.reasons.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// A progress bar over the input's bytes on a terminal; hidden elsewhere.
fn progress_bar(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{bar:30} {binary_bytes}/{binary_total_bytes} {msg} ({eta} left)",
    ) {
        bar.set_style(style);
    }
    bar
}

/// One thing to read: a file (mbox or message) or a Maildir's file.
struct Source {
    path: PathBuf,
    kind: SourceKind,
    bytes: u64,
    /// A pipe or device (`<(zcat x.mbox.gz)`, `/dev/stdin`), open, with the
    /// bytes already read from it to tell what it is: it cannot be opened
    /// again from the start.
    stream: Option<(Vec<u8>, File)>,
}

impl Source {
    /// The source's bytes from the start.
    fn open(&mut self) -> std::io::Result<Box<dyn Read>> {
        Ok(match self.stream.take() {
            Some((head, file)) => Box::new(std::io::Cursor::new(head).chain(file)),
            None => Box::new(File::open(&self.path)?),
        })
    }
}

enum SourceKind {
    Mbox,
    /// One message; with its flags when it is in a Maildir.
    Message(Option<MaildirFlags>),
}

/// What was left out, and why.
#[derive(Default)]
struct Skipped {
    /// Reason → how many.
    reasons: BTreeMap<&'static str, u64>,
    /// Lines for the user, printed before the import starts.
    notes: Vec<String>,
}

impl Skipped {
    fn add(&mut self, reason: &'static str, note: String) {
        *self.reasons.entry(reason).or_default() += 1;
        self.notes.push(note);
    }
}

/// How deep directories are followed.
const MAX_DEPTH: usize = 16;

/// A directory's identity whatever the path to it, so a symlinked directory
/// (`self -> .`, a link to a parent) is read once and a link loop ends.
type DirKey = (u64, u64);

#[cfg(unix)]
fn dir_key(metadata: &std::fs::Metadata) -> Option<DirKey> {
    use std::os::unix::fs::MetadataExt;
    Some((metadata.dev(), metadata.ino()))
}

/// No stable identity here: [`MAX_DEPTH`] alone ends a link loop.
#[cfg(not(unix))]
fn dir_key(_: &std::fs::Metadata) -> Option<DirKey> {
    None
}

/// Adds what `path` holds to `sources`: a Maildir's messages (and those of
/// its Maildir++ folders), every file of another directory, or the file.
/// A directory in `visited` was read already (through another path): it adds
/// nothing again.
fn find_sources(
    path: &Path,
    sources: &mut Vec<Source>,
    skipped: &mut Skipped,
    visited: &mut HashSet<DirKey>,
    depth: usize,
) {
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(error) => {
            let note = format!("{}: {}", path.display(), io_text(&error));
            skipped.add("unreadable", note);
            return;
        }
    };
    if metadata.is_dir() {
        if dir_key(&metadata).is_some_and(|key| !visited.insert(key)) {
            return;
        }
        if depth >= MAX_DEPTH {
            let note = format!("{}: more than {MAX_DEPTH} directories deep", path.display());
            skipped.add("too deep", note);
            return;
        }
        if is_maildir(path) {
            for sub in ["new", "cur"] {
                for (file, bytes) in files_in(&path.join(sub), skipped) {
                    let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
                    let flags = MaildirFlags::of(name.as_deref().unwrap_or(""));
                    sources.push(Source {
                        path: file,
                        kind: SourceKind::Message(Some(flags)),
                        bytes,
                        stream: None,
                    });
                }
            }
            // Maildir++: each folder is a Maildir named .Folder inside it.
            for folder in dirs_in(path, skipped) {
                let dotted = folder
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'));
                if dotted && is_maildir(&folder) {
                    find_sources(&folder, sources, skipped, visited, depth + 1);
                }
            }
            return;
        }
        let mut entries = match read_dir_sorted(path) {
            Ok(entries) => entries,
            Err(error) => {
                skipped.add(
                    "unreadable",
                    format!("{}: {}", path.display(), io_text(&error)),
                );
                return;
            }
        };
        // Hidden files (.DS_Store, editor swap files) are not mail.
        entries.retain(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        });
        for entry in entries {
            find_sources(&entry, sources, skipped, visited, depth + 1);
        }
        return;
    }
    let (head, file) = match read_head(path) {
        Ok(read) => read,
        Err(error) => {
            skipped.add(
                "unreadable",
                format!("{}: {}", path.display(), io_text(&error)),
            );
            return;
        }
    };
    // An `.eml` file holds one message, whatever it starts with: an exported
    // message may begin with "From ", or be empty.
    let eml = path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("eml"));
    let kind = match file_kind(&head) {
        _ if eml => SourceKind::Message(None),
        FileKind::Mbox => SourceKind::Mbox,
        FileKind::Message => SourceKind::Message(None),
        FileKind::Empty => {
            skipped.add("empty", format!("{}: empty file, skipped", path.display()));
            return;
        }
        FileKind::Other => {
            let note = format!(
                "{}: not an mbox file (no From_ line first), a Maildir or a message (no header first); skipped",
                path.display()
            );
            skipped.add("not mail", note);
            return;
        }
    };
    sources.push(Source {
        path: path.to_path_buf(),
        kind,
        bytes: metadata.len(),
        stream: (!metadata.is_file()).then_some((head, file)),
    });
}

fn is_maildir(path: &Path) -> bool {
    path.join("cur").is_dir() && path.join("new").is_dir()
}

fn read_dir_sorted(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut entries = std::fs::read_dir(path)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<std::io::Result<Vec<_>>>()?;
    entries.sort();
    Ok(entries)
}

/// The regular files in a Maildir's `new/` or `cur/`, with their sizes.
fn files_in(dir: &Path, skipped: &mut Skipped) -> Vec<(PathBuf, u64)> {
    let entries = match read_dir_sorted(dir) {
        Ok(entries) => entries,
        Err(error) => {
            skipped.add(
                "unreadable",
                format!("{}: {}", dir.display(), io_text(&error)),
            );
            return Vec::new();
        }
    };
    entries
        .into_iter()
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .filter_map(|p| {
            let metadata = std::fs::metadata(&p).ok()?;
            metadata.is_file().then_some((p, metadata.len()))
        })
        .collect()
}

fn dirs_in(dir: &Path, skipped: &mut Skipped) -> Vec<PathBuf> {
    match read_dir_sorted(dir) {
        Ok(entries) => entries.into_iter().filter(|p| p.is_dir()).collect(),
        Err(error) => {
            skipped.add(
                "unreadable",
                format!("{}: {}", dir.display(), io_text(&error)),
            );
            Vec::new()
        }
    }
}

/// The first bytes of the file at `path`, and the file, open after them.
fn read_head(path: &Path) -> std::io::Result<(Vec<u8>, File)> {
    let mut head = Vec::with_capacity(HEAD_BYTES);
    let mut file = File::open(path)?;
    (&mut file).take(HEAD_BYTES as u64).read_to_end(&mut head)?;
    Ok((head, file))
}

/// Reads one message from `input`, at most `max` bytes of it: `Ok(Err(size))`
/// when it is bigger (the rest is counted, not kept).
fn read_message(input: &mut dyn Read, max: u64) -> std::io::Result<Result<Vec<u8>, u64>> {
    let mut raw = Vec::new();
    input.take(max.saturating_add(1)).read_to_end(&mut raw)?;
    if raw.len() as u64 <= max {
        return Ok(Ok(raw));
    }
    let rest = std::io::copy(input, &mut std::io::sink())?;
    Ok(Err(raw.len() as u64 + rest))
}

/// The operating system's words, without Rust's "(os error 2)".
fn io_text(error: &std::io::Error) -> String {
    let text = error.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// A message read from a source, ready for the store.
struct Pending {
    message: NewMessage,
    flags: MaildirFlags,
    /// Where it came from, for notes.
    origin: String,
}

struct Importer {
    store: Store,
    /// --smtp, if given.
    smtp_flag: Option<String>,
    /// Whether this process may add messages itself; `None` until asked.
    direct: Option<bool>,
    /// Connected once the store turned out to be served by another process.
    smtp: Option<Smtp>,
    batch: Vec<Pending>,
    batch_bytes: usize,
    imported: u64,
    skipped: Skipped,
    max: u64,
    bar: ProgressBar,
}

impl Importer {
    /// Connects to the server that serves the store, held by process `pid`:
    /// at --smtp, else at the addresses it recorded (its wildcard addresses
    /// as loopback). Only a server whose EHLO names the token the owner
    /// recorded gets messages: one at a stale address, or another program
    /// listening there, gets none.
    fn connect(&mut self, pid: Option<u32>) -> anyhow::Result<Smtp> {
        let holder = holder_text(pid);
        let Some(record) = self.store.served_smtp() else {
            bail!(
                "{holder} holds {} and takes no mail for it over SMTP; try again when it ends",
                self.store.location()
            );
        };
        let targets: Vec<String> = match &self.smtp_flag {
            Some(addr) => vec![addr.clone()],
            None => record
                .addrs
                .iter()
                .map(|&addr| {
                    let mut addr = addr;
                    if addr.ip().is_unspecified() {
                        addr.set_ip(match addr {
                            SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
                            SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
                        });
                    }
                    addr.to_string()
                })
                .collect(),
        };
        if targets.is_empty() {
            bail!(
                "{holder} serves {} but listens on no SMTP address; pass --smtp with one",
                self.store.location()
            );
        }
        let mut failures = Vec::new();
        for target in targets {
            match Smtp::connect(&target, &record.token) {
                Ok(smtp) => return Ok(smtp),
                Err(error) => failures.push(format!("{error:#}")),
            }
        }
        bail!(
            "{holder} serves {}, so import hands the messages to its SMTP listener, but {}; \
             pass --smtp with the address that `sokkel mail serve` listens on",
            self.store.location(),
            failures.join("; ")
        )
    }

    fn note(&self, text: &str) {
        self.bar.suspend(|| eprintln!("sokkel: {text}"));
    }

    fn skip(&mut self, reason: &'static str, note: String) {
        self.note(&note);
        *self.skipped.reasons.entry(reason).or_default() += 1;
    }

    fn source(&mut self, mut source: Source) -> anyhow::Result<()> {
        let shown = source.path.display().to_string();
        match source.kind {
            SourceKind::Mbox => self.mbox(&mut source, &shown),
            SourceKind::Message(flags) => {
                let read = source
                    .open()
                    .and_then(|mut input| read_message(&mut input, self.max));
                self.bar.inc(source.bytes);
                let raw = match read {
                    Ok(Ok(raw)) => raw,
                    Ok(Err(size)) => {
                        let note = format!("{shown}: {}", too_big_text(size, self.max));
                        self.skip("too big", note);
                        return Ok(());
                    }
                    Err(error) => {
                        self.skip("unreadable", format!("{shown}: {}", io_text(&error)));
                        return Ok(());
                    }
                };
                let headers = header_envelope(&raw);
                let modified = std::fs::metadata(&source.path)
                    .ok()
                    .filter(|m| m.is_file())
                    .and_then(|m| m.modified().ok());
                // Maildir: the file's time is its delivery; a saved .eml: its Date.
                let received = match flags {
                    Some(_) => modified.or(headers.date),
                    None => headers.date.or(modified),
                };
                self.add(Pending {
                    message: new_message(headers.mail_from, headers.rcpt_to, received, raw),
                    flags: flags.unwrap_or_default(),
                    origin: shown,
                })
            }
        }
    }

    fn mbox(&mut self, source: &mut Source, shown: &str) -> anyhow::Result<()> {
        let file = match source.open() {
            Ok(file) => file,
            Err(error) => {
                self.skip("unreadable", format!("{shown}: {}", io_text(&error)));
                return Ok(());
            }
        };
        let reader = MboxReader::new(BufReader::with_capacity(1 << 16, file), self.max);
        for (n, entry) in reader.enumerate() {
            let entry = match entry {
                Ok(entry) => entry,
                Err(error) => {
                    let note = format!(
                        "{shown}: reading stopped at message {}: {}",
                        n + 1,
                        io_text(&error)
                    );
                    self.skip("unreadable", note);
                    return Ok(());
                }
            };
            self.bar.inc(entry.size + entry.from_line.len() as u64 + 7);
            if entry.too_big(self.max) {
                let note = format!(
                    "{shown}: message {}: {}",
                    n + 1,
                    too_big_text(entry.size, self.max)
                );
                self.skip("too big", note);
                continue;
            }
            let (sender, time) = parse_from_line(&entry.from_line);
            let headers = header_envelope(&entry.raw);
            let mail_from = sender.unwrap_or(headers.mail_from);
            let received = time.or(headers.date);
            self.add(Pending {
                message: new_message(mail_from, headers.rcpt_to, received, entry.raw),
                flags: MaildirFlags::default(),
                origin: format!("{shown}: message {}", n + 1),
            })?;
        }
        Ok(())
    }

    fn add(&mut self, pending: Pending) -> anyhow::Result<()> {
        self.batch_bytes += pending.message.raw.len();
        self.batch.push(pending);
        let read = self.imported + self.batch.len() as u64;
        self.bar
            .set_message(format!("{read} message{}", plural(read)));
        if self.batch.len() >= BATCH_MESSAGES || self.batch_bytes >= BATCH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Stores the batch: directly, or over SMTP when another process serves
    /// the store (asked once, with an empty import, before the first batch).
    fn flush(&mut self) -> anyhow::Result<()> {
        let batch = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        if batch.is_empty() {
            return Ok(());
        }
        if self.direct.is_none() {
            self.direct = Some(match self.store.import(Vec::new()) {
                Ok(_) => true,
                Err(StoreError::Served { pid }) => {
                    self.smtp = Some(self.connect(pid)?);
                    false
                }
                Err(error) => {
                    return Err(anyhow::Error::new(error).context("cannot import the messages"));
                }
            });
        }
        let (messages, flags): (Vec<NewMessage>, Vec<(MaildirFlags, String)>) = batch
            .into_iter()
            .map(|p| (p.message, (p.flags, p.origin)))
            .unzip();
        let Some(smtp) = self.smtp.as_mut() else {
            let ids = self
                .store
                .import(messages)
                .context("cannot import the messages")?;
            self.imported += ids.len() as u64;
            let flags: Vec<(MessageId, MaildirFlags)> = ids
                .into_iter()
                .zip(flags.into_iter().map(|(f, _)| f))
                .collect();
            return self.set_flags(&flags);
        };
        let mut delivered = Vec::new();
        let mut refused = Vec::new();
        for (message, (flags, origin)) in messages.iter().zip(flags) {
            match smtp.deliver(message)? {
                Ok(id) => delivered.push((id, flags)),
                Err(reason) => refused.push(format!("{origin}: the server refused it: {reason}")),
            }
        }
        self.imported += delivered.len() as u64;
        for note in refused {
            self.skip("refused by the server", note);
        }
        self.set_flags(&delivered)
    }

    /// Marks read and starred what the Maildir said.
    fn set_flags(&self, flags: &[(MessageId, MaildirFlags)]) -> anyhow::Result<()> {
        let seen: Vec<MessageId> = flags
            .iter()
            .filter(|(_, f)| f.seen)
            .map(|(id, _)| *id)
            .collect();
        let flagged: Vec<MessageId> = flags
            .iter()
            .filter(|(_, f)| f.flagged)
            .map(|(id, _)| *id)
            .collect();
        for (ids, change) in [
            (
                seen,
                FlagChange {
                    read: Some(true),
                    flagged: None,
                },
            ),
            (
                flagged,
                FlagChange {
                    read: None,
                    flagged: Some(true),
                },
            ),
        ] {
            if !ids.is_empty() {
                self.store
                    .set_flags(&ids, change)
                    .context("the messages were imported, but their Maildir flags were not set")?;
            }
        }
        Ok(())
    }
}

/// Names the process that holds a store, with its command line when the
/// system shows it: "process 4242 (sokkel mail list)".
fn holder_text(pid: Option<u32>) -> String {
    let Some(pid) = pid else {
        return "another sokkel process".to_owned();
    };
    let command = std::fs::read(format!("/proc/{pid}/cmdline"))
        .ok()
        .map(|line| {
            let words: Vec<String> = line
                .split(|&b| b == 0)
                .filter(|word| !word.is_empty())
                .map(|word| String::from_utf8_lossy(word).into_owned())
                .collect();
            let mut words = words.into_iter();
            let program = words.next().map(|p| {
                Path::new(&p)
                    .file_name()
                    .map_or(p.clone(), |n| n.to_string_lossy().into_owned())
            });
            program
                .into_iter()
                .chain(words.take(3))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|command| !command.is_empty());
    match command {
        Some(command) => format!("process {pid} ({command} …)"),
        None => format!("process {pid}"),
    }
}

fn too_big_text(size: u64, max: u64) -> String {
    format!(
        "{} bytes, over --max-message-size ({max} bytes); skipped",
        size
    )
}

fn new_message(
    mail_from: String,
    rcpt_to: Vec<String>,
    received: Option<SystemTime>,
    raw: Vec<u8>,
) -> NewMessage {
    NewMessage {
        envelope: Envelope {
            mail_from,
            rcpt_to,
            helo: IMPORT_HELO.into(),
            client_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            bare_lf: false,
            smtputf8: false,
            tls: None,
            auth_user: None,
        },
        received_at: received.unwrap_or_else(SystemTime::now),
        raw,
    }
}

/// A small SMTP client for one purpose: hand messages byte for byte to a
/// sokkel server with BDAT (RFC 3030), one at a time, and learn their ids
/// from its `250 ... queued as ID`.
struct Smtp {
    stream: TcpStream,
    input: Vec<u8>,
    addr: String,
}

impl Smtp {
    /// Connects to `addr` (each address it resolves to in turn) and greets
    /// it; fails unless its EHLO reply names `token` (`XSOKKEL-STORE`).
    fn connect(addr: &str, token: &str) -> anyhow::Result<Smtp> {
        let targets: Vec<SocketAddr> = addr
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve {addr}"))?
            .collect();
        let mut failures = Vec::new();
        for target in &targets {
            match TcpStream::connect_timeout(target, SMTP_TIMEOUT) {
                Ok(stream) => return Smtp::greet(stream, addr, token),
                Err(error) => failures.push(format!("at {target}: {}", io_text(&error))),
            }
        }
        if failures.is_empty() {
            bail!("{addr} has no address");
        }
        bail!("{}", failures.join("; "))
    }

    fn greet(stream: TcpStream, addr: &str, token: &str) -> anyhow::Result<Smtp> {
        stream.set_read_timeout(Some(SMTP_TIMEOUT))?;
        stream.set_write_timeout(Some(SMTP_TIMEOUT))?;
        let mut smtp = Smtp {
            stream,
            input: Vec::new(),
            addr: addr.to_owned(),
        };
        smtp.expect(220, "the greeting")?;
        smtp.send(b"EHLO sokkel-import\r\n")?;
        let ehlo = smtp.expect(250, "EHLO")?;
        let keywords: Vec<Vec<&str>> = ehlo
            .lines
            .iter()
            .skip(1)
            .map(|line| line.split_whitespace().collect())
            .collect();
        let offers = |keyword: &str| keywords.iter().any(|words| words.first() == Some(&keyword));
        let serves_store = keywords
            .iter()
            .any(|words| words[..] == ["XSOKKEL-STORE", token]);
        if !serves_store {
            smtp.quit();
            bail!(
                "the SMTP server at {addr} is not the `sokkel mail serve` that serves this store \
                 (its EHLO reply does not name the store's token); nothing was sent to it"
            );
        }
        if !offers("CHUNKING") {
            bail!(
                "the SMTP server at {addr} does not offer CHUNKING (BDAT), which import needs to send messages byte for byte"
            );
        }
        Ok(smtp)
    }

    fn send(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.stream
            .write_all(bytes)
            .with_context(|| format!("the SMTP server at {} went away", self.addr))
    }

    fn reply(&mut self) -> anyhow::Result<ServerReply> {
        loop {
            match parse_reply(&self.input) {
                Ok(Some((reply, used))) => {
                    self.input.drain(..used);
                    return Ok(reply);
                }
                Ok(None) => {}
                Err(error) => bail!("the SMTP server at {} answered {error}", self.addr),
            }
            let mut buf = [0u8; 4096];
            let read = self
                .stream
                .read(&mut buf)
                .with_context(|| format!("no answer from the SMTP server at {}", self.addr))?;
            if read == 0 {
                bail!("the SMTP server at {} closed the connection", self.addr);
            }
            self.input.extend_from_slice(&buf[..read]);
        }
    }

    fn expect(&mut self, code: u16, what: &str) -> anyhow::Result<ServerReply> {
        let reply = self.reply()?;
        if reply.code != code {
            bail!("the SMTP server at {} refused {what}: {reply}", self.addr);
        }
        Ok(reply)
    }

    /// Delivers one message: `Ok(Ok(id))` once stored, `Ok(Err(reply))` when
    /// the server refused it (the session goes on), `Err` when the session
    /// broke.
    fn deliver(&mut self, message: &NewMessage) -> anyhow::Result<Result<MessageId, String>> {
        let envelope = &message.envelope;
        let utf8 = !envelope.mail_from.is_ascii() || envelope.rcpt_to.iter().any(|r| !r.is_ascii());
        let mail = format!(
            "MAIL FROM:<{}>{}\r\n",
            envelope.mail_from,
            if utf8 { " SMTPUTF8" } else { "" }
        );
        self.send(mail.as_bytes())?;
        let reply = self.reply()?;
        if !reply.is_positive() {
            return Ok(Err(reply.to_string()));
        }
        let mut accepted = 0;
        let mut refused = String::new();
        for rcpt in &envelope.rcpt_to {
            self.send(format!("RCPT TO:<{rcpt}>\r\n").as_bytes())?;
            let reply = self.reply()?;
            if reply.is_positive() {
                accepted += 1;
            } else {
                refused = reply.to_string();
            }
        }
        if accepted == 0 {
            self.send(b"RSET\r\n")?;
            self.reply()?;
            let why = if envelope.rcpt_to.is_empty() {
                "it names no recipient (no Delivered-To, X-Original-To, To, Cc or Bcc)".to_owned()
            } else {
                refused
            };
            return Ok(Err(why));
        }
        self.send(format!("BDAT {} LAST\r\n", message.raw.len()).as_bytes())?;
        self.send(&message.raw)?;
        let reply = self.reply()?;
        if !reply.is_positive() {
            return Ok(Err(reply.to_string()));
        }
        let text = reply.text();
        let id = text
            .rsplit_once("queued as ")
            .and_then(|(_, id)| id.trim().parse::<MessageId>().ok())
            .ok_or_else(|| {
                anyhow!(
                    "the SMTP server at {} is not a sokkel server (it said {reply}); import sends only to `sokkel mail serve`",
                    self.addr
                )
            })?;
        Ok(Ok(id))
    }

    fn quit(mut self) {
        if self.send(b"QUIT\r\n").is_ok() {
            let _ = self.reply();
        }
    }
}
