//! Showing received bytes to a person without letting them mess up the terminal.

use std::fmt::Write;

/// Renders `data` for one line of output: printable text (UTF-8 included) as it is,
/// `\n`, `\r`, `\t`, `\0` and `\\` as escapes, any other control character or invalid
/// byte as `\xNN`. At most `limit` bytes of input are shown; the rest is replaced by a
/// marker saying how many bytes were cut.
pub fn render(data: &[u8], limit: usize) -> String {
    let shown = &data[..data.len().min(limit)];
    let mut out = String::with_capacity(shown.len() + 16);
    for chunk in shown.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\0' => out.push_str("\\0"),
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => {
                    let mut utf8 = [0; 4];
                    for b in c.encode_utf8(&mut utf8).bytes() {
                        let _ = write!(out, "\\x{b:02x}");
                    }
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    if data.len() > shown.len() {
        let _ = write!(out, "… (+{} bytes)", data.len() - shown.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn renders_safely() {
        let cases: &[(&[u8], usize, &str)] = &[
            (b"hello world", 100, "hello world"),
            ("hei på deg ✓".as_bytes(), 100, "hei på deg ✓"),
            (b"a\r\n\tb\0\\", 100, "a\\r\\n\\tb\\0\\\\"),
            (b"\x1b[2J\x7f", 100, "\\x1b[2J\\x7f"),
            (b"ok\xff\xfe", 100, "ok\\xff\\xfe"),
            (b"abcdef", 3, "abc… (+3 bytes)"),
            ("\u{85}".as_bytes(), 100, "\\xc2\\x85"),
        ];
        for (input, limit, want) in cases {
            assert_eq!(render(input, *limit), *want, "{input:?}");
        }
    }
}
