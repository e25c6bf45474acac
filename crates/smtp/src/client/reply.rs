//! Reading server replies, without I/O: bytes in, complete replies out.
//!
//! ```text
//! 250-first line\r\n       a multi-line reply: '-' after the code on every line
//! 250 last line\r\n        but the last, which has a space (or nothing) there
//! ```

use std::fmt;

/// The longest reply line accepted; a server sending more is broken or hostile.
pub const MAX_REPLY_LINE: usize = 4096;
/// The most lines one reply may have.
pub const MAX_REPLY_LINES: usize = 256;

/// One complete server reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerReply {
    /// The three-digit code.
    pub code: u16,
    /// The text of each line, after the code and separator.
    pub lines: Vec<String>,
}

impl ServerReply {
    /// 2xx.
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// 3xx: the server waits for more (354 after DATA, 334 during AUTH).
    pub fn is_intermediate(&self) -> bool {
        (300..400).contains(&self.code)
    }

    /// 4xx: try again later.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// All lines joined with spaces, for messages to the user.
    pub fn text(&self) -> String {
        self.lines.join(" ")
    }
}

impl fmt::Display for ServerReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.text())
    }
}

/// A reply that breaks the rules of RFC 5321 section 4.2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// A line that does not start with three digits and a separator.
    #[error("malformed reply line {0:?}")]
    Malformed(String),
    /// The lines of one reply carry different codes.
    #[error("reply lines disagree on the code ({0} then {1})")]
    MixedCodes(u16, u16),
    /// A line or reply that is far too long.
    #[error("reply too long")]
    TooLong,
}

/// Finds the first complete reply in `buf`. Returns the reply and the bytes it took,
/// or `None` when more bytes are needed. Lines may end in CRLF or, from sloppy
/// servers, a bare LF.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(ServerReply, usize)>, ReplyError> {
    let mut pos = 0;
    let mut code = None;
    let mut lines = Vec::new();
    loop {
        let rest = &buf[pos..];
        let Some(end) = memchr::memchr(b'\n', rest) else {
            if rest.len() > MAX_REPLY_LINE {
                return Err(ReplyError::TooLong);
            }
            return Ok(None);
        };
        if end > MAX_REPLY_LINE || lines.len() >= MAX_REPLY_LINES {
            return Err(ReplyError::TooLong);
        }
        let line = &rest[..end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let text = String::from_utf8_lossy(line);
        let malformed = || ReplyError::Malformed(text.chars().take(80).collect());
        if line.len() < 3
            || !line[..3].iter().all(u8::is_ascii_digit)
            || !(b'2'..=b'5').contains(&line[0])
        {
            return Err(malformed());
        }
        let this_code = u16::from(line[0] - b'0') * 100
            + u16::from(line[1] - b'0') * 10
            + u16::from(line[2] - b'0');
        if let Some(first) = code
            && first != this_code
        {
            return Err(ReplyError::MixedCodes(first, this_code));
        }
        code = Some(this_code);
        let (more, body) = match line.get(3) {
            None => (false, ""),
            Some(b' ') => (false, &text[4..]),
            Some(b'-') => (true, &text[4..]),
            Some(_) => return Err(malformed()),
        };
        lines.push(body.to_owned());
        pos += end + 1;
        if !more {
            return Ok(Some((
                ServerReply {
                    code: this_code,
                    lines,
                },
                pos,
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_replies() {
        let (reply, used) = parse_reply(b"250 2.1.0 Ok\r\nextra").unwrap().unwrap();
        assert_eq!(
            (reply.code, reply.lines.as_slice(), used),
            (250, &["2.1.0 Ok".to_owned()][..], 14)
        );
        let (reply, used) = parse_reply(b"250-a\r\n250-B\n250 c\r\n").unwrap().unwrap();
        assert_eq!(reply.lines, ["a", "B", "c"]);
        assert_eq!(used, 20);
        let (reply, _) = parse_reply(b"354\r\n").unwrap().unwrap();
        assert_eq!((reply.code, reply.lines.len()), (354, 1));
        assert_eq!(parse_reply(b"250-a\r\n250 "), Ok(None));
        assert_eq!(parse_reply(b""), Ok(None));
    }

    #[test]
    fn refuses_broken_replies() {
        assert!(matches!(
            parse_reply(b"hello\r\n"),
            Err(ReplyError::Malformed(_))
        ));
        assert!(matches!(
            parse_reply(b"2500 x\r\n"),
            Err(ReplyError::Malformed(_))
        ));
        assert!(matches!(
            parse_reply(b"099 x\r\n"),
            Err(ReplyError::Malformed(_))
        ));
        assert_eq!(
            parse_reply(b"250-a\r\n251 b\r\n"),
            Err(ReplyError::MixedCodes(250, 251))
        );
        assert_eq!(
            parse_reply(&[b'2'; MAX_REPLY_LINE + 2]),
            Err(ReplyError::TooLong)
        );
    }
}
