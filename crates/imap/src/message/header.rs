//! Header fields as they are in the message, and the MIME fields
//! (`Content-Type`, `Content-Disposition`, ...) parsed the way Dovecot reports
//! them in BODYSTRUCTURE: values as written, case kept, RFC 2231 continuations
//! joined but not decoded.

use std::ops::Range;

/// One header field of a header block.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field<'r> {
    /// The name, as written.
    pub name: &'r [u8],
    /// Everything after the colon, folding line breaks included, without the
    /// line break that ends the field.
    pub value: &'r [u8],
    /// The whole field with its folded lines and final line break.
    pub lines: &'r [u8],
}

impl Field<'_> {
    /// Whether the field is called `name` (case-insensitive).
    pub(crate) fn is(&self, name: &[u8]) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    /// The value unfolded as Dovecot shows it in ENVELOPE and BODYSTRUCTURE:
    /// blanks after the colon dropped, line breaks removed, everything else
    /// (the blank that starts a folded line too) kept.
    pub(crate) fn unfolded(&self) -> Vec<u8> {
        let start = self
            .value
            .iter()
            .position(|b| !matches!(b, b' ' | b'\t'))
            .unwrap_or(self.value.len());
        self.value[start..]
            .iter()
            .copied()
            .filter(|b| !matches!(b, b'\r' | b'\n'))
            .collect()
    }
}

/// The fields of a header block (the empty line that ends it may be included).
/// A line that is neither a field nor a folded continuation is skipped.
pub(crate) fn fields(block: &[u8]) -> Vec<Field<'_>> {
    let mut fields = Vec::new();
    let mut at = 0;
    while at < block.len() {
        let mut end = line_end(block, at);
        if block[at..end].iter().all(|b| matches!(b, b'\r' | b'\n')) {
            break;
        }
        while end < block.len() && matches!(block[end], b' ' | b'\t') {
            end = line_end(block, end);
        }
        let lines = &block[at..end];
        if let Some(colon) = memchr::memchr(b':', lines) {
            let name = trim_end(&lines[..colon]);
            if !name.is_empty() && !name.contains(&b'\n') {
                fields.push(Field {
                    name,
                    value: strip_line_break(&lines[colon + 1..]),
                    lines,
                });
            }
        }
        at = end;
    }
    fields
}

/// The first field called `name` in `fields`.
pub(crate) fn first<'f, 'r>(fields: &'f [Field<'r>], name: &[u8]) -> Option<&'f Field<'r>> {
    fields.iter().find(|field| field.is(name))
}

fn line_end(bytes: &[u8], at: usize) -> usize {
    memchr::memchr(b'\n', &bytes[at..]).map_or(bytes.len(), |i| at + i + 1)
}

fn strip_line_break(bytes: &[u8]) -> &[u8] {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    bytes.strip_suffix(b"\r").unwrap_or(bytes)
}

fn trim_end(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(0, |i| i + 1);
    &bytes[..end]
}

/// A parameter list: names and values as Dovecot reports them.
pub(crate) type Params = Vec<(Vec<u8>, Vec<u8>)>;

/// A part's `Content-Type`.
#[derive(Debug, Clone)]
pub(crate) struct ContentType {
    pub r#type: Vec<u8>,
    pub subtype: Vec<u8>,
    pub params: Params,
}

impl ContentType {
    /// `text/plain; charset=us-ascii`, RFC 2045's default.
    pub(crate) fn default_text() -> ContentType {
        ContentType {
            r#type: b"text".to_vec(),
            subtype: b"plain".to_vec(),
            params: Vec::new(),
        }
    }

    /// The content type of the part whose header block is `raw[header]`;
    /// without a valid one, RFC 2046's default for where the part is.
    pub(crate) fn of(raw: &[u8], header: Range<usize>, in_digest: bool) -> ContentType {
        let fields = fields(&raw[header]);
        let parsed = first(&fields, b"content-type").and_then(|field| {
            let mut value = Tokens::new(field.value);
            let r#type = value.token()?;
            value.expect(b'/')?;
            let subtype = value.token()?;
            Some(ContentType {
                r#type,
                subtype,
                params: value.params(),
            })
        });
        parsed.unwrap_or_else(|| {
            if in_digest {
                ContentType {
                    r#type: b"message".to_vec(),
                    subtype: b"rfc822".to_vec(),
                    params: Vec::new(),
                }
            } else {
                ContentType::default_text()
            }
        })
    }

    /// Whether this is `r#type/subtype` (any subtype for `None`).
    pub(crate) fn is(&self, r#type: &str, subtype: Option<&str>) -> bool {
        self.r#type.eq_ignore_ascii_case(r#type.as_bytes())
            && subtype.is_none_or(|s| self.subtype.eq_ignore_ascii_case(s.as_bytes()))
    }

    /// The value of parameter `name` (case-insensitive).
    pub(crate) fn param(&self, name: &[u8]) -> Option<&[u8]> {
        self.params
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_slice())
    }
}

/// A `Content-Disposition` value: the disposition and its parameters.
pub(crate) fn disposition(field: &Field<'_>) -> Option<(Vec<u8>, Params)> {
    let mut value = Tokens::new(field.value);
    let disposition = value.token()?;
    Some((disposition, value.params()))
}

/// A `Content-Language` value: its language tags.
pub(crate) fn languages(field: &Field<'_>) -> Vec<Vec<u8>> {
    let mut value = Tokens::new(field.value);
    let mut languages = Vec::new();
    loop {
        if let Some(language) = value.token() {
            languages.push(language);
        }
        if value.expect(b',').is_none() {
            return languages;
        }
    }
}

/// RFC 2045 tokens, quoted strings and comments of a structured field value.
struct Tokens<'r> {
    bytes: &'r [u8],
    at: usize,
}

impl<'r> Tokens<'r> {
    fn new(bytes: &'r [u8]) -> Tokens<'r> {
        Tokens { bytes, at: 0 }
    }

    /// Skips blanks, line breaks and (nested) comments.
    fn skip_cfws(&mut self) {
        while let Some(&byte) = self.bytes.get(self.at) {
            match byte {
                b' ' | b'\t' | b'\r' | b'\n' => self.at += 1,
                b'(' => {
                    let mut depth = 0usize;
                    while let Some(&byte) = self.bytes.get(self.at) {
                        self.at += 1;
                        match byte {
                            b'\\' => self.at += 1,
                            b'(' => depth += 1,
                            b')' => {
                                depth -= 1;
                                if depth == 0 {
                                    break;
                                }
                            }
                            _ => {}
                        }
                    }
                }
                _ => return,
            }
        }
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        self.skip_cfws();
        (self.bytes.get(self.at) == Some(&byte)).then(|| self.at += 1)
    }

    /// An RFC 2045 token (any printable but tspecials and space).
    fn token(&mut self) -> Option<Vec<u8>> {
        self.skip_cfws();
        let start = self.at;
        while let Some(&byte) = self.bytes.get(self.at) {
            if byte <= b' ' || byte == 0x7f || b"()<>@,;:\\\"/[]?=".contains(&byte) {
                break;
            }
            self.at += 1;
        }
        (self.at > start).then(|| self.bytes[start..self.at].to_vec())
    }

    /// A token or a quoted string (unquoted).
    fn value(&mut self) -> Option<Vec<u8>> {
        self.skip_cfws();
        if self.bytes.get(self.at) != Some(&b'"') {
            return self.token();
        }
        self.at += 1;
        let mut value = Vec::new();
        while let Some(&byte) = self.bytes.get(self.at) {
            self.at += 1;
            match byte {
                b'"' => return Some(value),
                b'\\' => {
                    if let Some(&escaped) = self.bytes.get(self.at) {
                        value.push(escaped);
                        self.at += 1;
                    }
                }
                b'\r' | b'\n' => {}
                _ => value.push(byte),
            }
        }
        Some(value)
    }

    /// `*(";" attribute "=" value)`, with RFC 2231 continuations joined as
    /// Dovecot does: plain parameters first in their order, then each
    /// continued or extended one once, named `name*` when any piece is
    /// charset-encoded (the pieces are then kept encoded).
    fn params(&mut self) -> Params {
        let mut plain = Vec::new();
        let mut extended: Vec<Extended> = Vec::new();
        while self.expect(b';').is_some() {
            let Some(name) = self.token() else { continue };
            if self.expect(b'=').is_none() {
                continue;
            }
            let value = self.value().unwrap_or_default();
            match split_extended(&name) {
                None => plain.push((name, value)),
                Some((base, section, encoded)) => {
                    let index = match extended
                        .iter()
                        .position(|e| e.name.eq_ignore_ascii_case(base))
                    {
                        Some(index) => index,
                        None => {
                            extended.push(Extended {
                                name: base.to_vec(),
                                pieces: Vec::new(),
                            });
                            extended.len() - 1
                        }
                    };
                    extended[index].pieces.push((section, encoded, value));
                }
            }
        }
        extended.sort_by_key(|e| e.name.to_ascii_lowercase());
        plain.extend(extended.into_iter().map(Extended::joined));
        plain
    }
}

/// An RFC 2231 parameter being put together from its pieces.
struct Extended {
    name: Vec<u8>,
    pieces: Vec<(u32, bool, Vec<u8>)>,
}

impl Extended {
    fn joined(mut self) -> (Vec<u8>, Vec<u8>) {
        self.pieces.sort_by_key(|(section, _, _)| *section);
        let encoded = self.pieces.iter().any(|(_, encoded, _)| *encoded);
        let mut name = self.name;
        if encoded {
            name.push(b'*');
        }
        let value = self
            .pieces
            .into_iter()
            .flat_map(|(_, _, value)| value)
            .collect();
        (name, value)
    }
}

/// `name*`, `name*N` or `name*N*` → (name, N, whether charset-encoded).
fn split_extended(name: &[u8]) -> Option<(&[u8], u32, bool)> {
    let star = memchr::memchr(b'*', name)?;
    let (base, rest) = (&name[..star], &name[star + 1..]);
    if rest.is_empty() {
        return Some((base, 0, true));
    }
    let (digits, encoded) = match rest.strip_suffix(b"*") {
        Some(digits) => (digits, true),
        None => (rest, false),
    };
    let section = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some((base, section, encoded))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content_type(header: &str) -> ContentType {
        ContentType::of(header.as_bytes(), 0..header.len(), false)
    }

    #[test]
    fn fields_keep_folding_and_skip_garbage() {
        let block = b"Subject: a\r\n b\r\nnot a field\r\nX-Y:z\r\n\r\nBody: no\r\n";
        let fields = fields(block);
        assert_eq!(fields.len(), 2);
        assert_eq!(fields[0].value, b" a\r\n b");
        assert_eq!(fields[0].unfolded(), b"a b");
        assert_eq!(fields[0].lines, b"Subject: a\r\n b\r\n");
        assert_eq!(fields[1].name, b"X-Y");
    }

    #[test]
    fn rfc2231_pieces_are_joined_as_dovecot_reports_them() {
        let ct = content_type(
            "Content-Type: application/pdf; name*1*=%20b.pdf; x=\"q\\\"\"; name*0*=utf-8''a; title*0=\"long \"; title*1=name\r\n\r\n",
        );
        assert_eq!(ct.r#type, b"application");
        assert_eq!(
            ct.params,
            vec![
                (b"x".to_vec(), b"q\"".to_vec()),
                (b"name*".to_vec(), b"utf-8''a%20b.pdf".to_vec()),
                (b"title".to_vec(), b"long name".to_vec()),
            ]
        );
    }

    #[test]
    fn a_missing_or_broken_content_type_is_text_plain() {
        for header in [
            "From: a@b\r\n\r\n",
            "Content-Type: text\r\n\r\n",
            "Content-Type: ;\r\n\r\n",
        ] {
            let ct = content_type(header);
            assert!(ct.is("text", Some("plain")), "{header}");
        }
        let digest = ContentType::of(b"\r\n", 0..2, true);
        assert!(digest.is("message", Some("rfc822")));
    }
}
