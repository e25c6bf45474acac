//! A tokenizer for structured header values (RFC 5322 section 3.2: comments,
//! atoms, quoted strings, domain literals; RFC 2045 tokens) that answers
//! each step the way Dovecot's does, so that broken values break the same
//! way: `1` when input remains after the token and its trailing blanks and
//! comments, `0` at the end, `-1` on a syntax error (an unclosed quote,
//! comment or literal, or no token where one must be).

/// RFC 5322 `atext`, with 8-bit bytes counted in (as Dovecot counts them).
pub(crate) fn is_atext(byte: u8) -> bool {
    byte >= 0x80 || byte.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&byte)
}

/// RFC 2045 `token` characters: `atext` but for the tspecials among them.
fn is_token(byte: u8) -> bool {
    is_atext(byte) && !b"/=?".contains(&byte)
}

/// A position in a structured header value.
pub(crate) struct Rfc822<'r> {
    bytes: &'r [u8],
    pub(crate) at: usize,
    /// The text of the last comment skipped.
    pub(crate) last_comment: Vec<u8>,
}

impl<'r> Rfc822<'r> {
    pub(crate) fn new(bytes: &'r [u8]) -> Rfc822<'r> {
        Rfc822 {
            bytes,
            at: 0,
            last_comment: Vec::new(),
        }
    }

    /// The byte at the position, or NUL at the end (where Dovecot's C
    /// strings end).
    pub(crate) fn current(&self) -> u8 {
        self.bytes.get(self.at).copied().unwrap_or(0)
    }

    pub(crate) fn at_end(&self) -> bool {
        self.at >= self.bytes.len()
    }

    fn more(&self) -> i32 {
        i32::from(!self.at_end())
    }

    fn skip_comment(&mut self) -> i32 {
        self.last_comment.clear();
        self.at += 1;
        let mut start = self.at;
        let mut level = 1;
        while self.at < self.bytes.len() {
            match self.bytes[self.at] {
                b'(' => level += 1,
                b')' => {
                    level -= 1;
                    if level == 0 {
                        self.last_comment
                            .extend_from_slice(&self.bytes[start..self.at]);
                        self.at += 1;
                        return self.more();
                    }
                }
                b'\\' => {
                    self.last_comment
                        .extend_from_slice(&self.bytes[start..self.at]);
                    start = self.at + 1;
                    self.at += 1;
                    if self.at_end() {
                        return -1;
                    }
                }
                _ => {}
            }
            self.at += 1;
        }
        -1
    }

    /// Skips blanks, line breaks and comments.
    pub(crate) fn skip_lwsp(&mut self) -> i32 {
        while let Some(&byte) = self.bytes.get(self.at) {
            match byte {
                b' ' | b'\t' | b'\r' | b'\n' => self.at += 1,
                b'(' => {
                    if self.skip_comment() < 0 {
                        return -1;
                    }
                }
                _ => break,
            }
        }
        self.more()
    }

    /// Takes the bytes from `start` while `wanted`, then the blanks after.
    fn run(&mut self, out: &mut Vec<u8>, wanted: impl Fn(u8) -> bool) -> i32 {
        let start = self.at;
        while self.at < self.bytes.len() && wanted(self.bytes[self.at]) {
            self.at += 1;
        }
        out.extend_from_slice(&self.bytes[start..self.at]);
        if self.at_end() { 0 } else { self.skip_lwsp() }
    }

    pub(crate) fn atom(&mut self, out: &mut Vec<u8>) -> i32 {
        if !is_atext(self.current()) || self.at_end() {
            return -1;
        }
        self.run(out, is_atext)
    }

    /// `dot-atom`, with blanks allowed around the dots (RFC 822).
    pub(crate) fn dot_atom(&mut self, out: &mut Vec<u8>) -> i32 {
        if self.at_end() || !is_atext(self.current()) {
            return -1;
        }
        loop {
            let ret = self.run(out, is_atext);
            if ret <= 0 {
                return ret;
            }
            if self.current() != b'.' {
                return 1;
            }
            self.at += 1;
            out.push(b'.');
            let ret = self.skip_lwsp();
            if ret <= 0 {
                return ret;
            }
        }
    }

    /// An RFC 2045 token (dots allowed).
    pub(crate) fn mime_token(&mut self, out: &mut Vec<u8>) -> i32 {
        self.run(out, |b| is_token(b) || b == b'.')
    }

    /// A quoted string, unquoted, its folding line breaks removed.
    pub(crate) fn quoted_string(&mut self, out: &mut Vec<u8>) -> i32 {
        self.at += 1;
        let mut start = self.at;
        while self.at < self.bytes.len() {
            match self.bytes[self.at] {
                b'"' => {
                    out.extend_from_slice(&self.bytes[start..self.at]);
                    self.at += 1;
                    return self.skip_lwsp();
                }
                b'\n' => {
                    let mut end = self.at;
                    if end > start && self.bytes[end - 1] == b'\r' {
                        end -= 1;
                    }
                    out.extend_from_slice(&self.bytes[start..end]);
                    start = self.at + 1;
                }
                b'\\' => {
                    self.at += 1;
                    if self.at_end() {
                        return -1;
                    }
                    out.extend_from_slice(&self.bytes[start..self.at - 1]);
                    start = self.at;
                }
                _ => {}
            }
            self.at += 1;
        }
        -1
    }

    /// A phrase: words (atoms, which may hold dots here, and quoted
    /// strings) joined by single spaces.
    pub(crate) fn phrase(&mut self, out: &mut Vec<u8>) -> i32 {
        if self.at_end() {
            return 0;
        }
        if self.current() == b'.' {
            return -1;
        }
        loop {
            let ret = if self.current() == b'"' {
                self.quoted_string(out)
            } else {
                self.run(out, |b| is_atext(b) || b == b'.')
            };
            if ret <= 0 {
                return ret;
            }
            let next = self.current();
            if !is_atext(next) && next != b'"' && next != b'.' {
                return self.skip_lwsp();
            }
            out.push(b' ');
        }
    }

    fn domain_literal(&mut self, out: &mut Vec<u8>) -> i32 {
        let start = self.at;
        while self.at < self.bytes.len() {
            match self.bytes[self.at] {
                b'\\' => {
                    self.at += 1;
                    if self.at_end() {
                        break;
                    }
                }
                b']' => {
                    self.at += 1;
                    out.extend_from_slice(&self.bytes[start..self.at]);
                    return self.skip_lwsp();
                }
                _ => {}
            }
            self.at += 1;
        }
        -1
    }

    /// `"@" domain`, the `@` at the position.
    pub(crate) fn domain(&mut self, out: &mut Vec<u8>) -> i32 {
        self.at += 1;
        if self.skip_lwsp() <= 0 {
            return -1;
        }
        if self.current() == b'[' {
            self.domain_literal(out)
        } else {
            self.dot_atom(out)
        }
    }

    /// `";" attribute "=" value`.
    pub(crate) fn content_param(&mut self) -> Param {
        if self.at_end() {
            return Param::End;
        }
        if self.current() != b';' {
            return Param::Broken;
        }
        self.at += 1;
        if self.skip_lwsp() <= 0 {
            return Param::Broken;
        }
        let mut name = Vec::new();
        if self.mime_token(&mut name) <= 0 || self.current() != b'=' {
            return Param::Broken;
        }
        self.at += 1;
        let mut value = Vec::new();
        let mut ret = self.skip_lwsp();
        if ret > 0 {
            if self.current() == b'"' {
                ret = self.quoted_string(&mut value);
            } else if self.current() == b'=' {
                // Broken but common: name==?utf-8?b?...?=
                while !self.at_end() && !b"; \t\r\n".contains(&self.current()) {
                    value.push(self.current());
                    self.at += 1;
                }
            } else {
                ret = self.mime_token(&mut value);
            }
        }
        if ret < 0 {
            Param::Broken
        } else {
            Param::Found(name, value)
        }
    }
}

/// What [`Rfc822::content_param`] read.
pub(crate) enum Param {
    /// A parameter's name and value (unquoted).
    Found(Vec<u8>, Vec<u8>),
    /// Something that is not a parameter.
    Broken,
    /// The end of the value.
    End,
}
