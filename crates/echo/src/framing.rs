//! How a byte stream is cut into messages: the framing core, without I/O.
//!
//! The server, the client and the load generator all use these rules; none of them
//! reads a socket here. Each mode echoes a frame exactly as it arrived, header and
//! terminator included.
//!
//! ```text
//! raw            whatever bytes arrive, as they arrive
//! line           payload '\n'
//! length         u32 big-endian payload length, payload
//! ascii-length   4 ASCII digits (the course's int(sock.recv(4).decode())), payload
//! fixed:N        exactly N bytes
//! ```

use std::fmt;
use std::str::FromStr;

/// A framing mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Bytes as they arrive: every read is a message.
    Raw,
    /// Lines ending in `\n`.
    Line,
    /// A 4-byte big-endian length, then that many bytes.
    Length,
    /// Four ASCII digits giving the length (space padding allowed), then that many bytes.
    AsciiLength,
    /// Messages of exactly this many bytes.
    Fixed(usize),
}

/// Where one complete frame lies at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameSpan {
    /// Bytes the whole frame takes, header and terminator included.
    pub len: usize,
    /// Where the payload starts.
    pub payload_start: usize,
    /// Where the payload ends.
    pub payload_end: usize,
}

impl FrameSpan {
    /// The payload of this frame inside `buf`.
    pub fn payload<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.payload_start..self.payload_end]
    }
}

/// A frame that breaks the rules of its mode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The frame is longer than the configured maximum.
    #[error("frame of {len} bytes is over the limit of {max} bytes")]
    TooLong {
        /// The length the header announced, or what arrived without a terminator.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// An ASCII length header that is not four digits.
    #[error("length header {} is not 4 ASCII digits", crate::display::render(.0, 16))]
    BadHeader(Vec<u8>),
    /// A payload that this mode cannot carry (for the sending side).
    #[error("{0}")]
    Unencodable(String),
}

impl Framing {
    /// The length of a frame's header, or of its terminator for `line`.
    pub fn overhead(&self) -> usize {
        match self {
            Framing::Raw | Framing::Fixed(_) => 0,
            Framing::Line => 1,
            Framing::Length | Framing::AsciiLength => 4,
        }
    }

    /// Finds the first complete frame at the start of `buf`. `Ok(None)` means more
    /// bytes are needed. A frame whose total size would exceed `max_frame` is an error
    /// as soon as that is known, so a peer cannot make us buffer without limit.
    pub fn next_frame(
        &self,
        buf: &[u8],
        max_frame: usize,
    ) -> Result<Option<FrameSpan>, FrameError> {
        let whole = |len: usize, start: usize| FrameSpan {
            len,
            payload_start: start,
            payload_end: len,
        };
        match *self {
            Framing::Raw => Ok((!buf.is_empty()).then(|| whole(buf.len(), 0))),
            Framing::Fixed(n) => Ok((buf.len() >= n).then(|| whole(n, 0))),
            Framing::Line => {
                let window = &buf[..buf.len().min(max_frame)];
                match window.iter().position(|&b| b == b'\n') {
                    Some(pos) => Ok(Some(FrameSpan {
                        len: pos + 1,
                        payload_start: 0,
                        payload_end: pos,
                    })),
                    None if buf.len() >= max_frame => Err(FrameError::TooLong {
                        len: buf.len(),
                        max: max_frame,
                    }),
                    None => Ok(None),
                }
            }
            Framing::Length | Framing::AsciiLength => {
                let Some(header) = buf.get(..4) else {
                    return Ok(None);
                };
                let payload_len = if *self == Framing::Length {
                    u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize
                } else {
                    parse_ascii_length(header)?
                };
                let len = 4 + payload_len;
                if len > max_frame {
                    return Err(FrameError::TooLong {
                        len,
                        max: max_frame,
                    });
                }
                Ok((buf.len() >= len).then(|| whole(len, 4)))
            }
        }
    }

    /// Appends `payload` to `out` framed in this mode.
    pub fn encode(&self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
        match *self {
            Framing::Raw => {}
            Framing::Line => {
                if payload.contains(&b'\n') {
                    return Err(FrameError::Unencodable(
                        "a line cannot contain a line feed".into(),
                    ));
                }
            }
            Framing::Length => {
                let len = u32::try_from(payload.len()).map_err(|_| {
                    FrameError::Unencodable("a length frame holds at most 4 GiB".into())
                })?;
                out.extend_from_slice(&len.to_be_bytes());
            }
            Framing::AsciiLength => {
                if payload.len() > 9999 {
                    return Err(FrameError::Unencodable(format!(
                        "an ascii-length frame holds at most 9999 bytes, not {}",
                        payload.len()
                    )));
                }
                out.extend_from_slice(format!("{:04}", payload.len()).as_bytes());
            }
            Framing::Fixed(n) => {
                if payload.len() != n {
                    return Err(FrameError::Unencodable(format!(
                        "fixed:{n} frames are exactly {n} bytes, not {}",
                        payload.len()
                    )));
                }
            }
        }
        out.extend_from_slice(payload);
        if *self == Framing::Line {
            out.push(b'\n');
        }
        Ok(())
    }
}

/// The course reads its header with `int(sock.recv(4).decode())`; Python's `int` takes
/// surrounding spaces, so we do too, but nothing else that is not a digit.
fn parse_ascii_length(header: &[u8]) -> Result<usize, FrameError> {
    let text = std::str::from_utf8(header).map_err(|_| FrameError::BadHeader(header.to_vec()))?;
    let digits = text.trim_matches(' ');
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FrameError::BadHeader(header.to_vec()));
    }
    digits
        .parse()
        .map_err(|_| FrameError::BadHeader(header.to_vec()))
}

impl FromStr for Framing {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "raw" => Ok(Framing::Raw),
            "line" => Ok(Framing::Line),
            "length" => Ok(Framing::Length),
            "ascii-length" => Ok(Framing::AsciiLength),
            other => match other.strip_prefix("fixed:").map(str::parse::<usize>) {
                Some(Ok(n)) if n > 0 => Ok(Framing::Fixed(n)),
                Some(_) => Err(format!("{other:?}: fixed:N needs a size N of 1 or more")),
                None => Err(format!(
                    "{other:?} is not a framing; use raw, line, length, ascii-length or fixed:N"
                )),
            },
        }
    }
}

impl fmt::Display for Framing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Framing::Raw => f.write_str("raw"),
            Framing::Line => f.write_str("line"),
            Framing::Length => f.write_str("length"),
            Framing::AsciiLength => f.write_str("ascii-length"),
            Framing::Fixed(n) => write!(f, "fixed:{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 64;

    fn frames(framing: Framing, mut buf: &[u8]) -> Result<(Vec<Vec<u8>>, usize), FrameError> {
        let mut out = Vec::new();
        while let Some(span) = framing.next_frame(buf, MAX)? {
            out.push(span.payload(buf).to_vec());
            buf = &buf[span.len..];
            if framing == Framing::Raw {
                break;
            }
        }
        Ok((out, buf.len()))
    }

    #[test]
    fn splits_frames_in_every_mode() {
        type Case<'a> = (Framing, &'a [u8], &'a [&'a [u8]], usize);
        let cases: &[Case] = &[
            (Framing::Raw, b"", &[], 0),
            (Framing::Raw, b"ab\0\xff", &[b"ab\0\xff"], 0),
            (Framing::Line, b"one\ntwo\nthr", &[b"one", b"two"], 3),
            (Framing::Line, b"\n\r\n", &[b"", b"\r"], 0),
            (
                Framing::Length,
                b"\0\0\0\x03abc\0\0\0\0\0\0",
                &[b"abc", b""],
                2,
            ),
            (Framing::Length, b"\0\0\0\x05ab", &[], 6),
            (Framing::AsciiLength, b"0003abc0000", &[b"abc", b""], 0),
            (
                Framing::AsciiLength,
                b"  12hello world!0",
                &[b"hello world!"],
                1,
            ),
            (
                Framing::AsciiLength,
                b"12  hello world!",
                &[b"hello world!"],
                0,
            ),
            (Framing::Fixed(3), b"abcdefg", &[b"abc", b"def"], 1),
        ];
        for (framing, input, want, rest) in cases {
            let (got, left) = frames(*framing, input).unwrap();
            let want: Vec<Vec<u8>> = want.iter().map(|w| w.to_vec()).collect();
            assert_eq!((got, left), (want, *rest), "{framing} on {input:?}");
        }
    }

    #[test]
    fn refuses_bad_and_oversized_frames() {
        let too_long = Err(FrameError::TooLong {
            len: 4 + 65,
            max: MAX,
        });
        assert_eq!(Framing::Length.next_frame(b"\0\0\0\x41", MAX), too_long);
        assert!(
            Framing::Length
                .next_frame(b"\xff\xff\xff\xff", MAX)
                .is_err()
        );
        assert!(matches!(
            Framing::AsciiLength.next_frame(b"12ab", MAX),
            Err(FrameError::BadHeader(_))
        ));
        assert!(Framing::AsciiLength.next_frame(b"-001", MAX).is_err());
        assert!(Framing::AsciiLength.next_frame(b"    ", MAX).is_err());
        assert!(Framing::AsciiLength.next_frame(b"1 2 ", MAX).is_err());
        assert!(Framing::AsciiLength.next_frame(b"0099", MAX).is_err());
        // A line without its terminator is refused once it cannot fit any more.
        assert_eq!(Framing::Line.next_frame(&[b'a'; 63], MAX), Ok(None));
        assert!(Framing::Line.next_frame(&[b'a'; 64], MAX).is_err());
        let mut line = vec![b'a'; 63];
        line.push(b'\n');
        assert_eq!(
            Framing::Line.next_frame(&line, MAX).unwrap().map(|s| s.len),
            Some(64)
        );
    }

    #[test]
    fn every_frame_can_be_cut_anywhere() {
        for framing in [
            Framing::Line,
            Framing::Length,
            Framing::AsciiLength,
            Framing::Fixed(5),
        ] {
            let mut stream = Vec::new();
            for payload in [&b"hello"[..], b"\0\xfe\xff\x00!", b"world"] {
                framing.encode(payload, &mut stream).unwrap();
            }
            let whole = frames(framing, &stream).unwrap();
            for cut in 0..stream.len() {
                let (first, left) = frames(framing, &stream[..cut]).unwrap();
                let consumed = cut - left;
                let (second, rest) = frames(framing, &stream[consumed..]).unwrap();
                assert_eq!(rest, 0);
                assert_eq!([first, second].concat(), whole.0, "{framing} cut at {cut}");
            }
        }
    }

    #[test]
    fn encode_checks_what_a_mode_can_carry() {
        let mut out = Vec::new();
        assert!(Framing::Line.encode(b"a\nb", &mut out).is_err());
        assert!(Framing::AsciiLength.encode(&[0; 10_000], &mut out).is_err());
        assert!(Framing::Fixed(4).encode(b"abc", &mut out).is_err());
        Framing::AsciiLength.encode(b"hi", &mut out).unwrap();
        assert_eq!(out, b"0002hi");
    }

    #[test]
    fn parses_mode_names() {
        assert_eq!("fixed:16".parse(), Ok(Framing::Fixed(16)));
        assert_eq!("ascii-length".parse(), Ok(Framing::AsciiLength));
        assert!("fixed:0".parse::<Framing>().is_err());
        assert!("lines".parse::<Framing>().is_err());
        for f in [
            Framing::Raw,
            Framing::Line,
            Framing::Length,
            Framing::AsciiLength,
            Framing::Fixed(9),
        ] {
            assert_eq!(f.to_string().parse(), Ok(f));
        }
    }
}
