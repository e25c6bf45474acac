//! A message on the wire: dot-stuffed, terminated, written in bounded chunks.
//!
//! RETR and TOP send a stored message as a multi-line response (RFC 1939 section 3):
//!
//! ```text
//! +OK 1234 octets
//! Subject: hi            every line as stored, CRLF included
//! ..hidden               a line that starts with '.' gets one more '.'
//! .                      the end: CRLF '.' CRLF
//! ```
//!
//! A line starts after every LF, bare or not: a stored bare-LF line that began with a
//! '.' would otherwise end the response early for the many clients that split lines at
//! LF. A message that does not end with CRLF gets one before the terminator, so every
//! client sees the end; a message that ends with CRLF goes out exactly as stored.
//!
//! [`DotStuffed`] does the work a chunk at a time, so the shell can write a message
//! of many megabytes with backpressure and without a second copy of it in memory.

/// The dot-stuffed wire form of a message body, produced a chunk at a time.
#[derive(Debug)]
pub struct DotStuffed<'a> {
    rest: &'a [u8],
    /// The next byte starts a line.
    line_start: bool,
    /// The bytes sent so far end with CRLF (or nothing was sent).
    ends_with_crlf: bool,
    /// The last byte sent was a CR.
    last_cr: bool,
    done: bool,
}

impl<'a> DotStuffed<'a> {
    /// The wire form of `message`.
    pub fn new(message: &'a [u8]) -> Self {
        DotStuffed {
            rest: message,
            line_start: true,
            ends_with_crlf: true,
            last_cr: false,
            done: false,
        }
    }

    /// Appends the wire form of up to `max_input` more bytes of the message to `out`
    /// (a few more bytes go out than come in: the stuffed dots, and at the end the
    /// terminator). Returns `true` once the terminator is written.
    pub fn write_next(&mut self, out: &mut Vec<u8>, max_input: usize) -> bool {
        if self.done {
            return true;
        }
        let take = max_input.max(1).min(self.rest.len());
        let (chunk, rest) = self.rest.split_at(take);
        self.rest = rest;
        self.stuff(chunk, out);
        if self.rest.is_empty() {
            if !self.ends_with_crlf {
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b".\r\n");
            self.done = true;
        }
        self.done
    }

    fn stuff(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        let mut pos = 0;
        while pos < chunk.len() {
            if self.line_start && chunk[pos] == b'.' {
                out.push(b'.');
            }
            let line = match memchr::memchr(b'\n', &chunk[pos..]) {
                Some(at) => &chunk[pos..pos + at + 1],
                None => &chunk[pos..],
            };
            out.extend_from_slice(line);
            pos += line.len();
            let last = line[line.len() - 1];
            self.line_start = last == b'\n';
            self.ends_with_crlf = last == b'\n'
                && if line.len() >= 2 {
                    line[line.len() - 2] == b'\r'
                } else {
                    self.last_cr
                };
            self.last_cr = last == b'\r';
        }
    }
}

/// How many leading bytes of `message` TOP sends for `lines` body lines: the header
/// section, the empty line after it, and at most `lines` lines of the body. A message
/// without an empty line is all header, and is sent whole.
pub fn top_length(message: &[u8], lines: u64) -> usize {
    let mut pos = 0;
    let mut in_body = false;
    let mut body_lines = 0;
    while pos < message.len() {
        if in_body && body_lines == lines {
            return pos;
        }
        let end = match memchr::memchr(b'\n', &message[pos..]) {
            Some(at) => pos + at + 1,
            None => message.len(),
        };
        let line = &message[pos..end];
        if in_body {
            body_lines += 1;
        } else if line == b"\r\n" || line == b"\n" {
            in_body = true;
        }
        pos = end;
    }
    message.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole wire form, written `step` input bytes at a time.
    fn wire(message: &[u8], step: usize) -> Vec<u8> {
        let mut stuffed = DotStuffed::new(message);
        let mut out = Vec::new();
        let mut calls = 0;
        while !stuffed.write_next(&mut out, step) {
            calls += 1;
            assert!(calls <= message.len() + 1, "write_next makes progress");
        }
        out
    }

    #[test]
    fn stuffs_dots_and_terminates_at_every_chunk_size() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"", b".\r\n"),
            (b"a\r\n", b"a\r\n.\r\n"),
            (b"a", b"a\r\n.\r\n"),
            (b".\r\n", b"..\r\n.\r\n"),
            (b"a\r\n.\r\nb\r\n", b"a\r\n..\r\nb\r\n.\r\n"),
            (b"..x\r\n", b"...x\r\n.\r\n"),
            (b"a.b\r\n .c\r\n", b"a.b\r\n .c\r\n.\r\n"),
            // A line starts after a bare LF too, so LF-splitting clients never see
            // an early end.
            (b"a\n.\nb\r\n", b"a\n..\nb\r\n.\r\n"),
            // A bare LF or CR at the end still gets a CRLF before the terminator.
            (b"a\n", b"a\n\r\n.\r\n"),
            (b"a\r", b"a\r\r\n.\r\n"),
            (b"\r\n", b"\r\n.\r\n"),
            (b".", b"..\r\n.\r\n"),
        ];
        for (message, expected) in cases {
            for step in [1, 2, 3, 1000] {
                assert_eq!(
                    wire(message, step),
                    *expected,
                    "{:?} in {step}-byte chunks",
                    String::from_utf8_lossy(message)
                );
            }
        }
    }

    #[test]
    fn a_big_message_goes_out_in_bounded_chunks_and_unstuffs_to_itself() {
        let mut message = Vec::new();
        for i in 0..20_000 {
            message.extend_from_slice(if i % 3 == 0 {
                b".dot line\r\n"
            } else {
                b"plain\r\n"
            });
        }
        let mut stuffed = DotStuffed::new(&message);
        let mut wire = Vec::new();
        loop {
            let mut chunk = Vec::new();
            let done = stuffed.write_next(&mut chunk, 4096);
            assert!(chunk.len() <= 4096 * 2 + 5, "a chunk stays near its budget");
            wire.extend_from_slice(&chunk);
            if done {
                break;
            }
        }
        let body = wire.strip_suffix(b".\r\n").expect("terminated");
        let unstuffed: Vec<u8> = body
            .split_inclusive(|&b| b == b'\n')
            .flat_map(|line| line.strip_prefix(b".").unwrap_or(line).to_vec())
            .collect();
        assert_eq!(unstuffed, message);
    }

    #[test]
    fn top_sends_headers_the_empty_line_and_n_body_lines() {
        let message = b"A: 1\r\nB: 2\r\n\r\nline 1\r\nline 2\r\nline 3\r\n";
        let top = |lines| String::from_utf8_lossy(&message[..top_length(message, lines)]);
        assert_eq!(top(0), "A: 1\r\nB: 2\r\n\r\n");
        assert_eq!(top(1), "A: 1\r\nB: 2\r\n\r\nline 1\r\n");
        assert_eq!(top(3), String::from_utf8_lossy(message));
        assert_eq!(top(u64::MAX), String::from_utf8_lossy(message));

        assert_eq!(top_length(b"A: 1\r\nB: 2\r\n", 0), 12, "all header");
        assert_eq!(top_length(b"A: 1\n\nbody\nmore\n", 1), 11, "bare LF lines");
        assert_eq!(top_length(b"\r\nbody\r\n", 0), 2, "no header at all");
        assert_eq!(top_length(b"A: 1\r\n\r\nno end", 5), 14);
        assert_eq!(top_length(b"", 3), 0);
    }
}
