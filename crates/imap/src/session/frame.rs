//! Cutting the input into commands: lines, and the literals inside them.
//!
//! ```text
//! A1 APPEND Sent (\Seen) {11}\r\n      <- a line ending in a literal's announcement
//! Hello world                          <- 11 literal bytes
//! \r\n                                 <- the rest of the command's line
//! ```
//!
//! The framer keeps the command it is assembling (so the shell never holds more
//! than what arrived since the last call) and tells the session each time a
//! line ends; the session asks the codec whether that is a whole command or
//! stops at a literal, and says whether to take the literal, skip it, or give up.

use memchr::memchr;

/// What the framer found in the input.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Event {
    /// All input was taken; the command is not complete yet.
    NeedMore,
    /// A line ended: the command so far is in [`Framer::take`].
    Line,
    /// A line was longer than the limit; it was dropped up to its end.
    LineTooLong,
    /// The bytes of a literal the session chose to skip have all arrived
    /// (and been dropped), with the rest of that command's line.
    Skipped,
}

/// The command being assembled.
pub(super) struct Framer {
    /// The command so far, literals included.
    buf: Vec<u8>,
    /// Where the current line starts in `buf`.
    line_start: usize,
    /// Literal bytes still to come.
    literal_left: u64,
    /// The literal is dropped rather than kept (too big, or its command failed).
    skipping: bool,
    /// The current line went over the limit; drop it up to its end.
    overlong: bool,
    max_line_length: usize,
}

/// Only sizes: the command being assembled may hold a password.
impl std::fmt::Debug for Framer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Framer")
            .field("buffered", &self.buf.len())
            .field("literal_left", &self.literal_left)
            .finish_non_exhaustive()
    }
}

impl Framer {
    pub(super) fn new(max_line_length: usize) -> Framer {
        Framer {
            buf: Vec::new(),
            line_start: 0,
            literal_left: 0,
            skipping: false,
            overlong: false,
            max_line_length,
        }
    }

    /// Takes bytes from `input` until a line ends; returns how many it took.
    pub(super) fn feed(&mut self, input: &[u8]) -> (usize, Event) {
        let mut pos = 0;
        loop {
            if self.literal_left > 0 {
                let n = (input.len() - pos)
                    .min(usize::try_from(self.literal_left).unwrap_or(usize::MAX));
                if !self.skipping {
                    self.buf.extend_from_slice(&input[pos..pos + n]);
                }
                pos += n;
                self.literal_left -= n as u64;
                if self.literal_left > 0 {
                    return (pos, Event::NeedMore);
                }
                self.line_start = self.buf.len();
            }
            let rest = &input[pos..];
            let Some(lf) = memchr(b'\n', rest) else {
                self.append_partial(rest);
                return (input.len(), Event::NeedMore);
            };
            self.append_partial(&rest[..=lf]);
            pos += lf + 1;
            if self.overlong {
                self.overlong = false;
                self.clear();
                return (pos, Event::LineTooLong);
            }
            if self.skipping {
                // The rest of a skipped command's line may announce another
                // literal the client sends without waiting (LITERAL+).
                let line = &self.buf[self.line_start..];
                if let Some((length, true)) = literal_suffix(line) {
                    self.buf.truncate(self.line_start);
                    self.literal_left = length;
                    continue;
                }
                self.clear();
                return (pos, Event::Skipped);
            }
            return (pos, Event::Line);
        }
    }

    fn append_partial(&mut self, bytes: &[u8]) {
        if self.overlong {
            return;
        }
        if self.buf.len() - self.line_start + bytes.len() > self.max_line_length + 2 {
            self.overlong = true;
            self.buf.truncate(self.line_start);
            return;
        }
        if self.skipping {
            // Only the line's end matters (for a further literal): keep it short.
            let keep = self.buf.len().saturating_sub(self.line_start).min(32);
            let start = self.buf.len() - keep;
            self.buf.drain(self.line_start..start);
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The command so far (lines and literals); the framer starts afresh.
    pub(super) fn take(&mut self) -> Vec<u8> {
        self.line_start = 0;
        std::mem::take(&mut self.buf)
    }

    /// Hands back what [`Framer::take`] gave and expects `length` literal
    /// bytes, which belong to the command.
    pub(super) fn accept_literal(&mut self, command: Vec<u8>, length: u32) {
        self.buf = command;
        self.line_start = self.buf.len();
        self.literal_left = u64::from(length);
        self.skipping = false;
    }

    /// Drops the command: its `length` literal bytes, when the client sends
    /// them without waiting, and the rest of its line, are skipped.
    pub(super) fn skip_literal(&mut self, length: u64) {
        self.clear();
        self.literal_left = length;
        self.skipping = true;
    }

    fn clear(&mut self) {
        self.buf.clear();
        self.line_start = 0;
        self.skipping = false;
    }
}

/// The literal a line announces at its end: `{n}` or `{n+}` before the CRLF,
/// as its length and whether it is non-synchronising.
pub(super) fn literal_suffix(line: &[u8]) -> Option<(u64, bool)> {
    let line = line.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = line.strip_suffix(b"}")?;
    let (line, non_sync) = match line.strip_suffix(b"+") {
        Some(line) => (line, true),
        None => (line, false),
    };
    let open = line.iter().rposition(|&b| b == b'{')?;
    let digits = &line[open + 1..];
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let length = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some((length, non_sync))
}
