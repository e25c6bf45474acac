//! Header fields as they are in the message, and the MIME fields
//! (`Content-Type`, `Content-Disposition`, ...) parsed the way Dovecot reports
//! them in BODYSTRUCTURE: values as written, case kept, RFC 2231 continuations
//! joined but not decoded.

use std::ops::Range;

use super::rfc822::{Param, Rfc822};

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
/// A line without a colon is a field that is all name and no value, as
/// Dovecot has it (so that `HEADER.FIELDS.NOT` keeps it).
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
        fields.push(match memchr::memchr(b':', lines) {
            Some(colon) => Field {
                name: trim_end(&lines[..colon]),
                value: strip_line_break(&lines[colon + 1..]),
                lines,
            },
            None => Field {
                name: strip_line_break(lines),
                value: b"",
                lines,
            },
        });
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

/// A part's `Content-Type`: type and subtype as written (empty when the
/// field is there but broken, as Dovecot shows it), and its parameters.
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
    /// without the field, RFC 2046's default for where the part is.
    pub(crate) fn of(raw: &[u8], header: Range<usize>, in_digest: bool) -> ContentType {
        let fields = fields(&raw[header]);
        match first(&fields, b"content-type") {
            Some(field) => ContentType::parse(field.value),
            None if in_digest => ContentType {
                r#type: b"message".to_vec(),
                subtype: b"rfc822".to_vec(),
                params: Vec::new(),
            },
            None => ContentType::default_text(),
        }
    }

    /// `type "/" subtype *(";" parameter)`. A value cut short after the type
    /// keeps the type; anything else broken leaves both empty and no
    /// parameters.
    pub(crate) fn parse(value: &[u8]) -> ContentType {
        let mut rfc = Rfc822::new(value);
        rfc.skip_lwsp();
        let broken = ContentType {
            r#type: Vec::new(),
            subtype: Vec::new(),
            params: Vec::new(),
        };
        let mut r#type = Vec::new();
        match rfc.mime_token(&mut r#type) {
            _ if r#type.is_empty() => return broken,
            0 => {
                return ContentType { r#type, ..broken };
            }
            _ => {}
        }
        if rfc.current() != b'/' {
            return broken;
        }
        rfc.at += 1;
        if rfc.skip_lwsp() <= 0 {
            return broken;
        }
        let mut subtype = Vec::new();
        if rfc.mime_token(&mut subtype) < 0 || subtype.is_empty() {
            return broken;
        }
        ContentType {
            r#type,
            subtype,
            params: params(&mut rfc),
        }
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

/// A `Content-Transfer-Encoding` value: one token and nothing else.
pub(crate) fn transfer_encoding(field: &Field<'_>) -> Option<Vec<u8>> {
    let mut rfc = Rfc822::new(field.value);
    rfc.skip_lwsp();
    let mut encoding = Vec::new();
    (rfc.mime_token(&mut encoding) >= 0 && rfc.skip_lwsp() == 0 && !encoding.is_empty())
        .then_some(encoding)
}

/// A `Content-Disposition` value: the disposition (possibly empty) and its
/// parameters.
pub(crate) fn disposition(field: &Field<'_>) -> Option<(Vec<u8>, Params)> {
    let mut rfc = Rfc822::new(field.value);
    rfc.skip_lwsp();
    let mut disposition = Vec::new();
    if rfc.mime_token(&mut disposition) < 0 {
        return None;
    }
    Some((disposition, params(&mut rfc)))
}

/// A `Content-Language` value: its language tags, up to the first that is
/// not one.
pub(crate) fn languages(field: &Field<'_>) -> Vec<Vec<u8>> {
    let mut rfc = Rfc822::new(field.value);
    rfc.skip_lwsp();
    let mut languages = Vec::new();
    loop {
        let mut language = Vec::new();
        if rfc.atom(&mut language) < 0 {
            return languages;
        }
        languages.push(language);
        if rfc.at_end() || rfc.current() != b',' {
            return languages;
        }
        rfc.at += 1;
        rfc.skip_lwsp();
    }
}

/// The parameters after a content type or disposition, with RFC 2231
/// continuations joined as Dovecot does: plain parameters first, in order,
/// then the continued ones sorted by name, each joined into one, named
/// `name*` and left encoded when any piece is charset-encoded; pieces with
/// a gap in their numbers are left as they are. A broken parameter is
/// skipped up to the next `;`.
fn params(rfc: &mut Rfc822<'_>) -> Params {
    let mut plain = Vec::new();
    let mut pieces: Vec<Piece> = Vec::new();
    // Dovecot numbers a `name*` parameter with the number last read from
    // any `name*N` one (0 at first), and so do we: that `p*` after `m*2` is
    // reported as `p*2*`.
    let mut index = 0;
    loop {
        match rfc.content_param() {
            Param::End => break,
            Param::Broken => {
                if rfc.at_end() {
                    break;
                }
                rfc.at += 1;
            }
            Param::Found(name, value) => match Piece::of(&name, &mut index) {
                Some((base, encoded)) => pieces.push(Piece {
                    name: base.to_vec(),
                    index,
                    encoded,
                    value,
                }),
                None => plain.push((name, value)),
            },
        }
    }
    pieces.sort_by(|a, b| a.name.cmp(&b.name).then(a.index.cmp(&b.index)));
    let mut rest = pieces.as_slice();
    while let Some(first) = rest.first() {
        let count = rest
            .iter()
            .take_while(|p| p.name.eq_ignore_ascii_case(&first.name))
            .count();
        let (group, tail) = rest.split_at(count);
        plain.extend(joined(group));
        rest = tail;
    }
    plain
}

/// One `name*N[*]` (or `name*`) parameter.
struct Piece {
    name: Vec<u8>,
    index: u32,
    encoded: bool,
    value: Vec<u8>,
}

impl Piece {
    /// `name*`, `name*N` or `name*N*` → (name, whether charset-encoded); the
    /// number, when there is one, goes to `index`.
    fn of<'n>(name: &'n [u8], index: &mut u32) -> Option<(&'n [u8], bool)> {
        let star = memchr::memchr(b'*', name)?;
        let rest = &name[star + 1..];
        if rest.is_empty() {
            return Some((&name[..star], true));
        }
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        *index = rest[..digits].iter().fold(0u32, |n, d| {
            n.wrapping_mul(10).wrapping_add(u32::from(d - b'0'))
        });
        match &rest[digits..] {
            b"" => Some((&name[..star], false)),
            b"*" => Some((&name[..star], true)),
            _ => None,
        }
    }
}

/// The pieces of one parameter joined, or each as it was when some are
/// missing.
fn joined(group: &[Piece]) -> Params {
    let complete = group
        .iter()
        .zip(0u32..)
        .all(|(piece, index)| piece.index == index);
    if !complete {
        return group
            .iter()
            .map(|piece| {
                let star = if piece.encoded { "*" } else { "" };
                let name = [
                    piece.name.as_slice(),
                    format!("*{}{star}", piece.index).as_bytes(),
                ]
                .concat();
                (name, piece.value.clone())
            })
            .collect();
    }
    let encoded = group.iter().any(|piece| piece.encoded);
    let mut value = Vec::new();
    if encoded && !group[0].encoded {
        value.extend_from_slice(b"''");
    }
    for piece in group {
        if encoded && !piece.encoded {
            for &byte in &piece.value {
                match byte {
                    b'%' => value.extend_from_slice(b"%25"),
                    _ => value.push(byte),
                }
            }
        } else {
            value.extend_from_slice(&piece.value);
        }
    }
    let mut name = group[0].name.clone();
    if encoded {
        name.push(b'*');
    }
    vec![(name, value)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content_type(header: &str) -> ContentType {
        ContentType::of(header.as_bytes(), 0..header.len(), false)
    }

    #[test]
    fn fields_keep_folding_and_lines_without_a_colon() {
        let block = b"Subject: a\r\n b\r\nnot a field\r\nX-Y:z\r\n\r\nBody: no\r\n";
        let fields = fields(block);
        assert_eq!(fields.len(), 3);
        assert_eq!(
            (fields[1].name, fields[1].value),
            (&b"not a field"[..], &b""[..])
        );
        assert_eq!(fields[0].value, b" a\r\n b");
        assert_eq!(fields[0].unfolded(), b"a b");
        assert_eq!(fields[0].lines, b"Subject: a\r\n b\r\n");
        assert_eq!(fields[2].name, b"X-Y");
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
    fn a_missing_content_type_is_the_default_and_a_broken_one_empty() {
        let ct = content_type("From: a@b\r\n\r\n");
        assert!(ct.is("text", Some("plain")));
        let digest = ContentType::of(b"\r\n", 0..2, true);
        assert!(digest.is("message", Some("rfc822")));
        for (header, r#type) in [
            ("Content-Type: text\r\n\r\n", "text"),
            ("Content-Type: text/\r\n\r\n", ""),
            ("Content-Type: ;\r\n\r\n", ""),
            ("Content-Type:\r\n\r\n", ""),
            ("Content-Type: text plain\r\n\r\n", ""),
        ] {
            let ct = content_type(header);
            assert_eq!(
                (ct.r#type.as_slice(), ct.subtype.as_slice()),
                (r#type.as_bytes(), &b""[..]),
                "{header}"
            );
        }
    }

    #[test]
    fn broken_parameters_are_skipped_to_the_next_semicolon() {
        let ct = content_type("Content-Type: text/plain; foo; a=b; =c; d=\"x\"; e=\"open\r\n\r\n");
        assert_eq!(
            ct.params,
            vec![
                (b"".to_vec(), b"c".to_vec()),
                (b"d".to_vec(), b"x".to_vec())
            ]
        );
        let gaps =
            content_type("Content-Type: application/x; n*1=b%; n*0*=a%; m*0=x; m*2=z\r\n\r\n");
        assert_eq!(
            gaps.params,
            vec![
                (b"m*0".to_vec(), b"x".to_vec()),
                (b"m*2".to_vec(), b"z".to_vec()),
                (b"n*".to_vec(), b"a%b%25".to_vec())
            ]
        );
    }
}
