//! Mailbox formats, as bytes: telling an mbox file from a message, splitting
//! mbox files, quoting and unquoting `From ` lines, and Maildir file names with
//! their flags. `sokkel mail import` and `mail export` read and write files with
//! these; nothing here touches the file system (a reader is any [`BufRead`]).
//!
//! mbox is read and written as mboxrd:
//!
//! ```text
//! From sender@example.com Tue Dec  1 07:29:09 2026    the From_ line: sender, asctime (UTC)
//! Subject: hi                                         the message's bytes ...
//!
//! >From here on, ...                                  a body line "From here on, ..."
//! >>From the quoted                                   a body line ">From the quoted"
//!                                                     a blank line ends each message
//! From ...                                            the next message
//! ```
//!
//! A line that starts with `From ` starts a message, as Python's `mailbox.mbox`
//! reads it; a blank line just before one (or before the end of the file)
//! belongs to the separator, not to the message. Reading removes one `>` from
//! every line that starts with `>`s and `From `, so an mboxrd writer's quoting
//! is undone exactly; files written as mboxo (only `From ` quoted, as Python and
//! many others write them) round-trip too: what is exported reads back as what
//! was imported. A message is written with a line break at its end, since the
//! format needs one before the next From_ line.

use std::io::{self, BufRead};

/// What a file holds, judged from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// Starts with a From_ line.
    Mbox,
    /// Starts with a header block: one message (an `.eml` file, or a file of
    /// a Maildir).
    Message,
    /// Nothing in it.
    Empty,
    /// Neither.
    Other,
}

/// What the first bytes of a file (a few KiB are enough) say it is.
pub fn file_kind(head: &[u8]) -> FileKind {
    if head.is_empty() {
        FileKind::Empty
    } else if head.starts_with(b"From ") {
        FileKind::Mbox
    } else if starts_with_headers(head) {
        FileKind::Message
    } else {
        FileKind::Other
    }
}

/// Whether `head` starts with header fields (`Name: value`, continued lines
/// starting with a space or tab) up to a blank line or the end of `head`.
fn starts_with_headers(head: &[u8]) -> bool {
    let mut fields = 0;
    // The last piece may be a line cut by the end of `head`: judged the same.
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return fields > 0;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            if fields == 0 {
                return false;
            }
            continue;
        }
        let name = match line.iter().position(|&b| b == b':') {
            Some(colon) => &line[..colon],
            None => return false,
        };
        if name.is_empty() || !name.iter().all(|&b| (33..=126).contains(&b)) {
            return false;
        }
        fields += 1;
    }
    fields > 0
}

/// One message of an mbox file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MboxEntry {
    /// The From_ line after `From `, without its line break.
    pub from_line: Vec<u8>,
    /// The message's bytes, `From ` quoting undone; empty when it is over the
    /// reader's limit.
    pub raw: Vec<u8>,
    /// The message's size in bytes (what `raw` would hold).
    pub size: u64,
}

impl MboxEntry {
    /// Whether the message was over the reader's limit (and not kept).
    pub fn too_big(&self, max: u64) -> bool {
        self.size > max
    }
}

/// The messages of an mbox file, one at a time: memory holds one message (at
/// most `max` bytes of it) and one line of at most `max` bytes.
#[derive(Debug)]
pub struct MboxReader<R> {
    input: R,
    max: u64,
    /// The From_ line that ended the previous message.
    next_from: Option<Vec<u8>>,
    line: Vec<u8>,
}

impl<R: BufRead> MboxReader<R> {
    /// Reads `input`; messages over `max` bytes are measured but not kept.
    pub fn new(input: R, max: u64) -> Self {
        MboxReader {
            input,
            max,
            next_from: None,
            line: Vec::new(),
        }
    }

    /// The next line into `self.line`, keeping at most `max + 1` bytes of it;
    /// returns its whole length (0 at the end).
    fn read_line(&mut self) -> io::Result<u64> {
        self.line.clear();
        let keep = usize::try_from(self.max)
            .unwrap_or(usize::MAX)
            .saturating_add(1);
        let mut total = 0u64;
        loop {
            let buf = match self.input.fill_buf() {
                Ok(buf) => buf,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            };
            if buf.is_empty() {
                return Ok(total);
            }
            let (taken, done) = match memchr::memchr(b'\n', buf) {
                Some(at) => (at + 1, true),
                None => (buf.len(), false),
            };
            let room = keep.saturating_sub(self.line.len());
            self.line.extend_from_slice(&buf[..taken.min(room)]);
            self.input.consume(taken);
            total += taken as u64;
            if done {
                return Ok(total);
            }
        }
    }

    fn next_message(&mut self) -> io::Result<Option<MboxEntry>> {
        let from_line = match self.next_from.take() {
            Some(line) => line,
            None => loop {
                // Anything before the first From_ line is no message.
                if self.read_line()? == 0 {
                    return Ok(None);
                }
                if self.line.starts_with(b"From ") {
                    break from_line_text(&self.line);
                }
            },
        };
        let mut raw = Vec::new();
        let mut size = 0u64;
        // Over the limit at some point: `raw` is dropped for good.
        let mut discarded = false;
        let mut last_was_empty = false;
        loop {
            let length = self.read_line()?;
            if length == 0 {
                break;
            }
            if self.line.starts_with(b"From ") {
                self.next_from = Some(from_line_text(&self.line));
                break;
            }
            last_was_empty = self.line == b"\n";
            let (line, length) = if is_quoted_from(&self.line) {
                (&self.line[1..], length - 1)
            } else {
                (&self.line[..], length)
            };
            size += length;
            // One byte over is kept: it may be the separator's blank line.
            if !discarded {
                if size <= self.max.saturating_add(1) {
                    raw.extend_from_slice(line);
                } else {
                    raw = Vec::new();
                    discarded = true;
                }
            }
        }
        // The blank line before the next From_ line (or the end) separates.
        if last_was_empty {
            size -= 1;
            raw.pop();
        }
        if size > self.max {
            raw = Vec::new();
        }
        Ok(Some(MboxEntry {
            from_line,
            raw,
            size,
        }))
    }
}

impl<R: BufRead> Iterator for MboxReader<R> {
    type Item = io::Result<MboxEntry>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_message().transpose()
    }
}

/// A From_ line without `From ` and its line break.
fn from_line_text(line: &[u8]) -> Vec<u8> {
    let text = &line[b"From ".len()..];
    let text = text.strip_suffix(b"\n").unwrap_or(text);
    text.strip_suffix(b"\r").unwrap_or(text).to_vec()
}

/// `>From `, `>>From ` ...: a line mboxrd quoted.
fn is_quoted_from(line: &[u8]) -> bool {
    let quotes = line.iter().take_while(|&&b| b == b'>').count();
    quotes > 0 && line[quotes..].starts_with(b"From ")
}

/// Quotes a message for mboxrd as it is written in chunks: every line that
/// starts with `>`s and `From ` (or `From ` itself) gets one more `>`.
///
/// The `>`s at a line's start are written at once (the added one is a `>`
/// like them, so it may go after them): only the bytes of a possible `From `
/// wait, so the work is linear however long a run of `>`s is.
#[derive(Debug)]
pub struct FromQuoter {
    /// The start of a line, after its `>`s, that may still turn out to be `From `.
    held: Vec<u8>,
    line_start: bool,
    last: Option<u8>,
}

impl Default for FromQuoter {
    fn default() -> Self {
        FromQuoter {
            held: Vec::new(),
            line_start: true,
            last: None,
        }
    }
}

impl FromQuoter {
    /// Appends `chunk`, quoted, to `out`; the start of a line that cannot be
    /// judged yet waits for the next chunk.
    pub fn push(&mut self, mut chunk: &[u8], out: &mut Vec<u8>) {
        while let Some((&byte, rest)) = chunk.split_first() {
            if !self.line_start {
                let (line, more) = match memchr::memchr(b'\n', chunk) {
                    Some(at) => (&chunk[..=at], true),
                    None => (chunk, false),
                };
                out.extend_from_slice(line);
                self.last = line.last().copied();
                chunk = &chunk[line.len()..];
                self.line_start = more;
                continue;
            }
            chunk = rest;
            self.last = Some(byte);
            if self.held.is_empty() && byte == b'>' {
                out.push(byte);
                continue;
            }
            self.held.push(byte);
            if self.held == b"From " {
                out.push(b'>');
            } else if b"From ".starts_with(&self.held) {
                continue;
            }
            out.append(&mut self.held);
            self.line_start = byte == b'\n';
        }
    }

    /// Writes what is held and ends the message with a line break if it has
    /// none, then the blank line that separates it from the next.
    pub fn finish(mut self, out: &mut Vec<u8>) {
        out.append(&mut self.held);
        if self.last.is_some_and(|b| b != b'\n') {
            out.push(b'\n');
        }
        out.push(b'\n');
    }
}

/// The flags in a Maildir file's name (`...:2,FS`): seen (`S`) and flagged (`F`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MaildirFlags {
    /// `S`: read.
    pub seen: bool,
    /// `F`: starred.
    pub flagged: bool,
}

impl MaildirFlags {
    /// The flags of the file `name`; none without a `:2,` part.
    pub fn of(name: &str) -> MaildirFlags {
        let flags = name.rsplit_once(":2,").map_or("", |(_, flags)| flags);
        MaildirFlags {
            seen: flags.contains('S'),
            flagged: flags.contains('F'),
        }
    }

    /// Where a message with these flags goes and its name's ending: `new/`
    /// with none, else `cur/` with `:2,` and the letters in ASCII order.
    pub fn place(self) -> (&'static str, &'static str) {
        match (self.flagged, self.seen) {
            (false, false) => ("new", ""),
            (false, true) => ("cur", ":2,S"),
            (true, false) => ("cur", ":2,F"),
            (true, true) => ("cur", ":2,FS"),
        }
    }
}

/// The part of a Maildir file name before its flags.
pub fn maildir_unique(name: &str) -> &str {
    name.rsplit_once(":2,").map_or(name, |(unique, _)| unique)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(mbox: &[u8], max: u64) -> Vec<MboxEntry> {
        MboxReader::new(mbox, max)
            .collect::<io::Result<_>>()
            .unwrap()
    }

    fn write(messages: &[&[u8]], chunk: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for message in messages {
            out.extend_from_slice(b"From a@x.test Tue Dec  1 07:29:09 2026\n");
            let mut quoter = FromQuoter::default();
            for piece in message.chunks(chunk.max(1)) {
                quoter.push(piece, &mut out);
            }
            quoter.finish(&mut out);
        }
        out
    }

    #[test]
    fn file_kinds() {
        let cases: &[(&[u8], FileKind)] = &[
            (b"", FileKind::Empty),
            (
                b"From a@x Tue Dec  1 07:29:09 2026\nSubject: x\n\nhi\n",
                FileKind::Mbox,
            ),
            (b"Subject: hi\r\nTo: a@x\r\n\r\nbody", FileKind::Message),
            (
                b"Received: from x\n\tby y\nSubject: hi\n\nbody",
                FileKind::Message,
            ),
            (b"Subject: cut off at the end of the hea", FileKind::Message),
            (b"hello world\n", FileKind::Other),
            (b"\x89PNG\r\n\x1a\n", FileKind::Other),
            (b" Subject: continued first\n\n", FileKind::Other),
            (b"Subject: hi\nnot a header\n\nbody", FileKind::Other),
            (b"\nSubject: x\n", FileKind::Other),
        ];
        for (head, kind) in cases {
            assert_eq!(
                file_kind(head),
                *kind,
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
    }

    /// The splitting of Python's `mailbox.mbox`: any `From ` line starts a
    /// message, one blank line before it separates, mboxrd quoting is undone.
    #[test]
    fn reads_mbox_as_python_splits_it() {
        let mbox = b"junk before\nFrom a@x Tue Dec  1 07:29:09 2026\nSubject: one\n\n>From quoted\n>>From twice\n>not from\n\n\
From <> Mon Nov 30 23:00:00 2026\r\nSubject: two\r\n\r\nno blank after\r\n\
From MAILER-DAEMON Thu Jan  1 00:00:00 1970\nSubject: three\n\nends in a blank line\n\n\n";
        let entries = read(mbox, 1 << 20);
        let raws: Vec<&[u8]> = entries.iter().map(|e| &e.raw[..]).collect();
        assert_eq!(
            raws,
            [
                &b"Subject: one\n\nFrom quoted\n>From twice\n>not from\n"[..],
                b"Subject: two\r\n\r\nno blank after\r\n",
                b"Subject: three\n\nends in a blank line\n\n",
            ]
        );
        assert_eq!(entries[0].size, entries[0].raw.len() as u64);
    }

    #[test]
    fn an_mbox_message_over_the_limit_is_measured_not_kept() {
        let mbox = b"From a x\nSubject: big\n\n0123456789\nFrom b x\nSubject: s\n\n";
        let entries = read(mbox, 16);
        assert!(entries[0].too_big(16) && entries[0].raw.is_empty());
        assert_eq!(entries[0].size, 25);
        assert_eq!(entries[1].raw, b"Subject: s\n");
        assert!(!entries[1].too_big(16));
    }

    /// A message of exactly the limit is kept whole, the blank separator
    /// after it notwithstanding; one byte more is measured, not kept.
    #[test]
    fn an_mbox_message_at_the_limit_is_kept() {
        let message = b"Subject: s\n\n0123\n";
        let max = message.len() as u64;
        for (limit, kept) in [(max - 1, false), (max, true), (max + 1, true)] {
            for tail in [&b"\nFrom b x\nSubject: t\n\n"[..], b"\n", b""] {
                let mut mbox = b"From a x\n".to_vec();
                mbox.extend_from_slice(message);
                mbox.extend_from_slice(tail);
                let first = &read(&mbox, limit)[0];
                assert_eq!(first.size, max, "limit {limit}, tail {tail:?}");
                assert_eq!(first.too_big(limit), !kept, "limit {limit}, tail {tail:?}");
                let want: &[u8] = if kept { message } else { b"" };
                assert_eq!(first.raw, want, "limit {limit}, tail {tail:?}");
            }
        }
    }

    /// Hostile input: one endless line, or only `>`s, is measured, not held.
    #[test]
    fn a_huge_line_is_measured_not_held() {
        let mut mbox = b"From a x\nSubject: s\n\n".to_vec();
        mbox.extend(std::iter::repeat_n(b'>', 100_000));
        mbox.extend_from_slice(b"From \nFrom b x\nSubject: t\n\n>From\n");
        let mut reader = MboxReader::new(&mbox[..], 1000);
        let first = reader.next().unwrap().unwrap();
        assert!(first.too_big(1000) && first.raw.is_empty());
        // (A cut line is not unquoted: its size may be one byte over.)
        assert!((100_017..=100_018).contains(&first.size), "{}", first.size);
        assert!(
            reader.line.capacity() < 100_000,
            "{}",
            reader.line.capacity()
        );
        assert_eq!(
            reader.next().unwrap().unwrap().raw,
            b"Subject: t\n\n>From\n"
        );
        assert!(reader.next().is_none());
    }

    /// Whatever the message and however it is cut into chunks, writing and
    /// reading it back gives its bytes (with a line break at the end).
    #[test]
    fn mboxrd_round_trips_every_message() {
        let messages: &[&[u8]] = &[
            b"Subject: a\n\nFrom the start\n>From quoted\n>>>From deep\n>Fro\nFrom\n",
            b"From at the very start\n\nbody\n",
            b"Subject: crlf\r\n\r\nFrom x\r\n.\r\n\r\n",
            b"Subject: blank end\n\n\n\n",
            b"Subject: no end\n\nlast line>From",
            b">>>>",
            b"",
        ];
        for chunk in [1, 2, 3, 7, 4096] {
            let mbox = write(messages, chunk);
            let back = read(&mbox, 1 << 20);
            assert_eq!(back.len(), messages.len(), "chunk {chunk}");
            for (entry, message) in back.iter().zip(messages) {
                let mut want = message.to_vec();
                if want.last().is_some_and(|&b| b != b'\n') {
                    want.push(b'\n');
                }
                assert_eq!(
                    String::from_utf8_lossy(&entry.raw),
                    String::from_utf8_lossy(&want),
                    "chunk {chunk}"
                );
            }
        }
        // The empty message: a From_ line and its blank line, which hold nothing.
        assert_eq!(
            write(&[b""], 4),
            b"From a@x.test Tue Dec  1 07:29:09 2026\n\n"
        );
    }

    /// A run of `>`s costs linear work (a quadratic quoter took minutes on
    /// a few MiB of them, and export hung).
    #[test]
    fn a_long_run_of_quotes_is_written_at_once() {
        let mut message = vec![b'>'; 4 << 20];
        message.extend_from_slice(b"From x\n");
        let mbox = write(&[&message], 4096);
        let body = &mbox[b"From a@x.test Tue Dec  1 07:29:09 2026\n".len()..];
        assert_eq!(body.len(), message.len() + 2);
        assert_eq!(&body[..1], b">");
        assert_eq!(&body[1..=message.len()], &message[..]);
        assert_eq!(read(&mbox, 8 << 20)[0].raw, message);
    }

    #[test]
    fn maildir_names() {
        let seen = MaildirFlags::of("1733000000.M1P2.host:2,FS");
        assert!(seen.seen && seen.flagged);
        assert_eq!(
            MaildirFlags::of("1733000000.M1P2.host"),
            MaildirFlags::default()
        );
        assert_eq!(maildir_unique("1.M1P2.host:2,S"), "1.M1P2.host");
        assert_eq!(MaildirFlags::default().place(), ("new", ""));
        for flags in [(false, true), (true, false), (true, true)] {
            let flags = MaildirFlags {
                flagged: flags.0,
                seen: flags.1,
            };
            let (dir, suffix) = flags.place();
            assert_eq!(
                (dir, MaildirFlags::of(&format!("x{suffix}"))),
                ("cur", flags)
            );
        }
    }
}
