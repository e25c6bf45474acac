//! Turning a message into DATA content that cannot be misread.
//!
//! Every line ends in CRLF (a bare LF or bare CR becomes CRLF, so no smuggling-shaped
//! sequence ever leaves this client), lines starting with a dot get a second one
//! (RFC 5321 section 4.5.2), and the content ends with `CRLF . CRLF`.

/// The wire form of `message` for DATA, terminator included.
pub fn encode_data(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 32 + 8);
    let mut line_start = true;
    let mut bytes = message.iter().copied().peekable();
    while let Some(b) = bytes.next() {
        if line_start && b == b'.' {
            out.push(b'.');
        }
        match b {
            b'\r' => {
                // CR LF stays; a CR alone becomes CR LF.
                if bytes.peek() == Some(&b'\n') {
                    bytes.next();
                }
                out.extend_from_slice(b"\r\n");
                line_start = true;
            }
            b'\n' => {
                out.extend_from_slice(b"\r\n");
                line_start = true;
            }
            _ => {
                out.push(b);
                line_start = false;
            }
        }
    }
    if !line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// The message with every line ending normalised to CRLF and nothing else changed:
/// what the server will store, and what the SIZE parameter declares.
pub fn normalise_line_endings(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 32);
    let mut bytes = message.iter().copied().peekable();
    while let Some(b) = bytes.next() {
        match b {
            b'\r' | b'\n' => {
                if b == b'\r' && bytes.peek() == Some(&b'\n') {
                    bytes.next();
                }
                out.extend_from_slice(b"\r\n");
            }
            _ => out.push(b),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stuffs_dots_and_fixes_line_endings() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"", b".\r\n"),
            (b"hi", b"hi\r\n.\r\n"),
            (b"hi\r\n", b"hi\r\n.\r\n"),
            (b".\r\n..x\r\n", b"..\r\n...x\r\n.\r\n"),
            (b"a\nb\rc\r\n", b"a\r\nb\r\nc\r\n.\r\n"),
            (b"a\n.\nb", b"a\r\n..\r\nb\r\n.\r\n"),
            (b"x\r.\r", b"x\r\n..\r\n.\r\n"),
            (b"mid.dot\r\n", b"mid.dot\r\n.\r\n"),
        ];
        for (input, want) in cases {
            assert_eq!(encode_data(input), *want, "{input:?}");
        }
    }

    #[test]
    fn no_bare_line_ends_survive() {
        for input in [
            &b"\n.\n"[..],
            b"\r.\r",
            b"\r\n.\r",
            b"\n\r\n\r\r\n",
            b"a\r\rb\n\n",
        ] {
            let out = encode_data(input);
            for (i, &b) in out.iter().enumerate() {
                if b == b'\n' {
                    assert_eq!(out[i - 1], b'\r', "{input:?} -> {out:?}");
                }
                if b == b'\r' {
                    assert_eq!(out.get(i + 1), Some(&b'\n'), "{input:?} -> {out:?}");
                }
            }
        }
    }

    #[test]
    fn normalises() {
        assert_eq!(normalise_line_endings(b"a\nb\rc\r\n"), b"a\r\nb\r\nc\r\n");
    }
}
