//! Command lines out of a byte stream, for the protocol cores (SMTP, POP3): no I/O,
//! a length limit, and the rest of an overlong line skipped without buffering it.

/// One step of [`LineSplitter::next`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line<'a> {
    /// No line feed yet: keep the bytes and call again with more.
    Incomplete,
    /// A whole line.
    Complete {
        /// Bytes to drop from the input, line ending included.
        consumed: usize,
        /// The line without its ending (`\r\n`, or a bare `\n`).
        text: &'a [u8],
        /// Whether it ended with `\r\n` rather than a bare `\n`.
        crlf: bool,
    },
    /// Bytes of a line over the limit, dropped unread; `ended` once its line feed
    /// has been seen (answer the error then, exactly once).
    Overlong {
        /// Bytes to drop from the input.
        consumed: usize,
        /// The overlong line is over.
        ended: bool,
    },
}

/// Splits lines of at most `max` bytes (line ending included) off the front of the
/// input, remembering across calls that it is skipping the rest of an overlong one.
#[derive(Debug, Clone)]
pub struct LineSplitter {
    max: usize,
    skipping: bool,
    ended: u64,
}

impl LineSplitter {
    /// A splitter for lines of at most `max` bytes, ending included.
    pub fn new(max: usize) -> Self {
        LineSplitter {
            max: max.max(2),
            skipping: false,
            ended: 0,
        }
    }

    /// Forgets a half-skipped overlong line (after a TLS upgrade, say).
    pub fn reset(&mut self) {
        self.skipping = false;
    }

    /// How many lines (whole or overlong) have ended so far: a shell's
    /// [`UnitDeadline`](crate::server::UnitDeadline) restarts when it moves, so a
    /// line trickled a byte at a time still has to end within one timeout.
    pub fn ended(&self) -> u64 {
        self.ended
    }

    /// The next line at the front of `rest`.
    pub fn next<'a>(&mut self, rest: &'a [u8]) -> Line<'a> {
        if self.skipping {
            return self.skip(rest, 0);
        }
        let window = &rest[..rest.len().min(self.max)];
        match memchr::memchr(b'\n', window) {
            Some(at) => {
                let crlf = at > 0 && rest[at - 1] == b'\r';
                self.ended += 1;
                Line::Complete {
                    consumed: at + 1,
                    text: &rest[..if crlf { at - 1 } else { at }],
                    crlf,
                }
            }
            None if rest.len() >= self.max => {
                self.skipping = true;
                self.skip(rest, self.max)
            }
            None => Line::Incomplete,
        }
    }

    /// Drops bytes of an overlong line from `rest[from..]` up to its line feed.
    fn skip<'a>(&mut self, rest: &'a [u8], from: usize) -> Line<'a> {
        match memchr::memchr(b'\n', &rest[from..]) {
            Some(at) => {
                self.skipping = false;
                self.ended += 1;
                Line::Overlong {
                    consumed: from + at + 1,
                    ended: true,
                }
            }
            None => Line::Overlong {
                consumed: rest.len(),
                ended: false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_endings_and_the_limit() {
        let mut s = LineSplitter::new(8);
        assert_eq!(
            s.next(b"NOOP\r\nQ"),
            Line::Complete {
                consumed: 6,
                text: b"NOOP",
                crlf: true
            }
        );
        assert_eq!(
            s.next(b"NOOP\nQ"),
            Line::Complete {
                consumed: 5,
                text: b"NOOP",
                crlf: false
            }
        );
        assert_eq!(s.next(b"NOO"), Line::Incomplete);
        // Exactly at the limit, ending included.
        assert_eq!(
            s.next(b"123456\r\n"),
            Line::Complete {
                consumed: 8,
                text: b"123456",
                crlf: true
            }
        );
        // One over: skipped across calls, reported ended once.
        assert_eq!(
            s.next(b"1234567\r"),
            Line::Overlong {
                consumed: 8,
                ended: false
            }
        );
        assert_eq!(
            s.next(b"89"),
            Line::Overlong {
                consumed: 2,
                ended: false
            }
        );
        assert_eq!(
            s.next(b"0\r\nNOOP\r\n"),
            Line::Overlong {
                consumed: 3,
                ended: true
            }
        );
        assert_eq!(
            s.next(b"NOOP\r\n"),
            Line::Complete {
                consumed: 6,
                text: b"NOOP",
                crlf: true
            }
        );
        // A long line ending within the same input.
        assert_eq!(
            s.next(b"0123456789\r\nX"),
            Line::Overlong {
                consumed: 12,
                ended: true
            }
        );
        s.next(b"0123456789");
        s.reset();
        assert_eq!(
            s.next(b"A\r\n"),
            Line::Complete {
                consumed: 3,
                text: b"A",
                crlf: true
            }
        );
    }
}
