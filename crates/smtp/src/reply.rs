//! SMTP replies: a code, an enhanced status code (RFC 3463) and text.
//!
//! ```text
//! 250-first line          multi-line replies use '-' after the code on every line
//! 250 last line           but the last
//! ```

/// One reply, possibly several lines long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit code.
    pub code: u16,
    /// The enhanced status code, e.g. "2.1.0"; empty where none applies (220, 221 ...).
    pub enhanced: &'static str,
    /// The text, one entry per line.
    pub lines: Vec<String>,
}

impl Reply {
    /// A one-line reply.
    pub fn new(code: u16, enhanced: &'static str, text: impl Into<String>) -> Self {
        Reply {
            code,
            enhanced,
            lines: vec![text.into()],
        }
    }

    /// Whether the reply reports a failure the client caused (5xx, except at close).
    pub fn is_permanent_error(&self) -> bool {
        self.code >= 500
    }

    /// Appends the reply in wire format to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let last = self.lines.len().saturating_sub(1);
        for (i, line) in self.lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            let code = self.code;
            // The enhanced code goes on every line (RFC 2034 section 4), but not on the
            // EHLO keyword lines, where it would be read as part of the keyword.
            let text = if self.enhanced.is_empty() {
                format!("{code}{sep}{line}\r\n")
            } else {
                format!("{code}{sep}{} {line}\r\n", self.enhanced)
            };
            out.extend_from_slice(text.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_single_and_multi_line() {
        let mut out = Vec::new();
        Reply::new(250, "2.1.0", "Ok").write_to(&mut out);
        assert_eq!(out, b"250 2.1.0 Ok\r\n");
        out.clear();
        Reply {
            code: 250,
            enhanced: "",
            lines: vec!["a".into(), "B".into()],
        }
        .write_to(&mut out);
        assert_eq!(out, b"250-a\r\n250 B\r\n");
    }
}
