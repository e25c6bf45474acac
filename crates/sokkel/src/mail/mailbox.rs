//! The mailbox formats of `mail import` and `mail export`: telling an mbox file
//! from a message, splitting mbox files, quoting and unquoting `From ` lines,
//! Maildir file names and their flags, and the envelope a message's headers
//! imply. No file system access here: the callers open the files and hand in
//! bytes or readers.
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
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mail_parser::MessageParser;
use sokkel_store::time::{civil_from_days, days_from_civil};

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
            if size <= self.max {
                raw.extend_from_slice(line);
            } else if !raw.is_empty() {
                raw = Vec::new();
            }
        }
        // The blank line before the next From_ line (or the end) separates.
        if last_was_empty {
            size -= 1;
            if size <= self.max {
                raw.pop();
            }
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

/// The envelope sender and the time a From_ line (after `From `) names. A
/// sender of `MAILER-DAEMON` (what writers put when they do not know) is none;
/// `<>` is the null sender.
pub fn parse_from_line(text: &[u8]) -> (Option<String>, Option<SystemTime>) {
    let text = String::from_utf8_lossy(text);
    let mut words = text.split_whitespace();
    let sender = words
        .next()
        .filter(|s| !s.eq_ignore_ascii_case("MAILER-DAEMON"))
        .map(|s| match s {
            "<>" => String::new(),
            s => s.trim_start_matches('<').trim_end_matches('>').to_owned(),
        });
    let rest: Vec<&str> = words.collect();
    (sender, parse_asctime(&rest))
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

/// `[Tue] Dec 1 07:29:09 [zone] 2026` (C's asctime, as From_ lines have it),
/// read as UTC.
fn parse_asctime(words: &[&str]) -> Option<SystemTime> {
    let month_at = words.iter().position(|w| {
        MONTHS
            .iter()
            .any(|m| w.len() >= 3 && w[..3].eq_ignore_ascii_case(m))
    })?;
    let month = MONTHS
        .iter()
        .position(|m| words[month_at][..3].eq_ignore_ascii_case(m))? as i64
        + 1;
    let day: i64 = words.get(month_at + 1)?.parse().ok()?;
    let mut clock = words.get(month_at + 2)?.split(':');
    let hour: i64 = clock.next()?.parse().ok()?;
    let minute: i64 = clock.next()?.parse().ok()?;
    let second: i64 = clock.next().map_or(Some(0), |s| s.parse().ok())?;
    let year: i64 = words[month_at + 3..]
        .iter()
        .find(|w| w.len() == 4 && w.bytes().all(|b| b.is_ascii_digit()))?
        .parse()
        .ok()?;
    if !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 || year < 1970 {
        return None;
    }
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

/// `Tue Dec  1 07:29:09 2026`: `time` in UTC as a From_ line gives it.
pub fn asctime(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday.
    let weekday = WEEKDAYS[(days + 4).rem_euclid(7) as usize];
    format!(
        "{weekday} {} {day:>2} {:02}:{:02}:{:02} {year}",
        MONTHS[month as usize - 1],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Quotes a message for mboxrd as it is written in chunks: every line that
/// starts with `>`s and `From ` (or `From ` itself) gets one more `>`.
#[derive(Debug)]
pub struct FromQuoter {
    /// The start of a line that may still turn out to be `>*From `.
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
        while !chunk.is_empty() {
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
            self.held.push(chunk[0]);
            chunk = &chunk[1..];
            let rest = &self.held[self.held.iter().take_while(|&&b| b == b'>').count()..];
            let quote = rest.starts_with(b"From ");
            if quote || !b"From ".starts_with(rest) {
                if quote {
                    out.push(b'>');
                }
                out.append(&mut self.held);
                self.last = out.last().copied();
                self.line_start = self.last == Some(b'\n');
            }
        }
    }

    /// Writes what is held and ends the message with a line break if it has
    /// none, then the blank line that separates it from the next.
    pub fn finish(mut self, out: &mut Vec<u8>) {
        if !self.held.is_empty() {
            self.last = self.held.last().copied();
            out.append(&mut self.held);
        }
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

/// What a message's headers say its envelope was, for a message that comes
/// without one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderEnvelope {
    /// Return-Path, else Sender, else From; empty if none (or `<>`).
    pub mail_from: String,
    /// Delivered-To and X-Original-To, else To, Cc and Bcc.
    pub rcpt_to: Vec<String>,
    /// The Date header.
    pub date: Option<SystemTime>,
}

/// The envelope `raw`'s headers imply.
pub fn header_envelope(raw: &[u8]) -> HeaderEnvelope {
    let return_path = header_values(raw, "Return-Path")
        .into_iter()
        .next()
        .map(|value| angle_address(&value));
    let mut rcpt_to: Vec<String> = Vec::new();
    for name in ["Delivered-To", "X-Original-To"] {
        for value in header_values(raw, name) {
            let address = angle_address(&value);
            if !address.is_empty() && !rcpt_to.iter().any(|a| a.eq_ignore_ascii_case(&address)) {
                rcpt_to.push(address);
            }
        }
    }
    let Some(parsed) = MessageParser::default().parse_headers(raw) else {
        return HeaderEnvelope {
            mail_from: return_path.unwrap_or_default(),
            rcpt_to,
            date: None,
        };
    };
    let first = |address: Option<&mail_parser::Address>| {
        address
            .and_then(|a| a.iter().find_map(|addr| addr.address()))
            .map(str::to_owned)
    };
    let mail_from = return_path
        .or_else(|| first(parsed.sender()))
        .or_else(|| first(parsed.from()))
        .unwrap_or_default();
    if rcpt_to.is_empty() {
        for list in [parsed.to(), parsed.cc(), parsed.bcc()]
            .into_iter()
            .flatten()
        {
            for address in list.iter().filter_map(|a| a.address()) {
                if !address.is_empty() && !rcpt_to.iter().any(|a| a.eq_ignore_ascii_case(address)) {
                    rcpt_to.push(address.to_owned());
                }
            }
        }
    }
    let date = parsed
        .date()
        .map(|date| date.to_timestamp())
        .and_then(|secs| u64::try_from(secs).ok())
        .map(|secs| UNIX_EPOCH + Duration::from_secs(secs));
    HeaderEnvelope {
        mail_from,
        rcpt_to,
        date,
    }
}

/// The address in `<a@b>` (or the bare value), without spaces.
fn angle_address(value: &str) -> String {
    let value = value.trim();
    let inner = match (value.find('<'), value.rfind('>')) {
        (Some(open), Some(close)) if open < close => &value[open + 1..close],
        _ => value,
    };
    inner.split_whitespace().collect()
}

/// The values of every header field called `name` (any case) in the header
/// block of `raw`, unfolded.
fn header_values(raw: &[u8], name: &str) -> Vec<String> {
    let mut values: Vec<String> = Vec::new();
    let mut in_field = false;
    for line in raw.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            if in_field && let Some(value) = values.last_mut() {
                value.push_str(&String::from_utf8_lossy(line));
            }
            continue;
        }
        in_field = line.len() > name.len()
            && line[name.len()] == b':'
            && line[..name.len()].eq_ignore_ascii_case(name.as_bytes());
        if in_field {
            values.push(String::from_utf8_lossy(&line[name.len() + 1..]).into_owned());
        }
    }
    values
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
        assert_eq!(
            parse_from_line(&entries[0].from_line),
            (
                Some("a@x".into()),
                Some(UNIX_EPOCH + Duration::from_secs(1_796_110_149))
            )
        );
        assert_eq!(
            parse_from_line(&entries[1].from_line).0,
            Some(String::new())
        );
        assert_eq!(
            parse_from_line(&entries[2].from_line),
            (None, Some(UNIX_EPOCH))
        );
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

    #[test]
    fn asctime_both_ways() {
        for secs in [0, 1_796_110_149, 951_782_400, 4_102_444_799] {
            let time = UNIX_EPOCH + Duration::from_secs(secs);
            let text = asctime(time);
            let words: Vec<&str> = text.split_whitespace().collect();
            assert_eq!(parse_asctime(&words), Some(time), "{text}");
        }
        assert_eq!(
            asctime(UNIX_EPOCH + Duration::from_secs(1_796_110_149)),
            "Tue Dec  1 07:29:09 2026"
        );
        for bad in [
            "",
            "Tue Foo 1 07:29:09 2026",
            "Dec 1 25:00:00 2026",
            "Dec 1 07:29",
        ] {
            let words: Vec<&str> = bad.split_whitespace().collect();
            assert_eq!(parse_asctime(&words), None, "{bad}");
        }
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

    #[test]
    fn envelopes_from_headers() {
        let raw = b"Return-Path: <bounce@x.test>\nDelivered-To: me@y.test\nFrom: A <a@x.test>\nTo: b@y.test, C <c@y.test>\n\nbody\nDelivered-To: not@header\n";
        let envelope = header_envelope(raw);
        assert_eq!(envelope.mail_from, "bounce@x.test");
        assert_eq!(envelope.rcpt_to, ["me@y.test"]);
        let raw = b"From: A <a@x.test>\r\nSender: s@x.test\r\nTo: b@y.test,\r\n C <c@y.test>\r\nCc: d@y.test\r\nBcc: B@y.test\r\nDate: Tue, 1 Dec 2026 07:29:09 +0000\r\n\r\n";
        let envelope = header_envelope(raw);
        assert_eq!(envelope.mail_from, "s@x.test");
        assert_eq!(envelope.rcpt_to, ["b@y.test", "c@y.test", "d@y.test"]);
        assert_eq!(
            envelope.date,
            Some(UNIX_EPOCH + Duration::from_secs(1_796_110_149))
        );
        assert_eq!(header_envelope(b"Return-Path: <>\n\n").mail_from, "");
        assert_eq!(header_envelope(b"not a message").mail_from, "");
    }
}
