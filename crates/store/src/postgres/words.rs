//! Words as SQLite's FTS5 index splits them (`tokenize = 'unicode61
//! remove_diacritics 2'`, sqlite/schema.rs), so that the PostgreSQL index
//! (index.rs) and its queries (search.rs) see the same words in the same text.
//!
//! The rules of FTS5's `unicode61` tokenizer:
//!
//! - A word is a run of token characters: Unicode letters (L*), numbers (N*)
//!   and private-use characters (Co); every other character separates words.
//!   Once a word has begun, a combining diacritic (the marks of U+0300 to
//!   U+0331 that compose Latin letters) continues it.
//! - Each character is case folded (simple case folding, in the Basic
//!   Multilingual Plane and Deseret only).
//! - Diacritics are removed from Latin letters: a letter of U+00C0 to U+1EFF
//!   whose canonical decomposition is an ASCII letter and such diacritics
//!   becomes that ASCII letter (`remove_diacritics 2` also takes letters with
//!   several diacritics, as `ǖ`), and the diacritics themselves are dropped.
//!   Other letters keep their marks (`ø`, Greek `ά`, Cyrillic `й`).
//!
//! SQLite answers from tables of Unicode 6.1, in which a code point not yet
//! assigned is part of a word; this module from the newer tables of the
//! `unicode-properties` crate, with the unassigned ones as SQLite has them.
//! They differ on what Unicode added or changed since 6.1 (in the BMP: 684
//! code points, as newer symbols and marks, which FTS5 takes for parts of
//! words, Cherokee and Georgian capitals, which it does not fold); the tests
//! check the scripts mail is mostly written in, code point by code point,
//! against SQLite's own tokenizer.

use unicode_normalization::char::decompose_canonical;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Call `word` with each word of `text`, folded, in order.
pub(crate) fn for_each_word(text: &str, mut word: impl FnMut(&str)) {
    let mut folded = String::new();
    let mut in_word = false;
    for c in text.chars() {
        if in_word {
            if is_token_char(c) || is_diacritic(c) {
                push_folded(&mut folded, c);
                continue;
            }
            word(&folded);
            folded.clear();
            in_word = false;
        } else if is_token_char(c) {
            in_word = true;
            push_folded(&mut folded, c);
        }
    }
    if in_word {
        word(&folded);
    }
}

/// The words of `text`, folded, in order.
pub(crate) fn words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    for_each_word(text, |word| words.push(word.to_string()));
    words
}

/// Whether `c` is part of a word: a letter, a number or a private-use
/// character.
fn is_token_char(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric();
    }
    use GeneralCategory::*;
    match c.general_category() {
        UppercaseLetter | LowercaseLetter | TitlecaseLetter | ModifierLetter | OtherLetter
        | DecimalNumber | LetterNumber | OtherNumber | PrivateUse => true,
        // Unassigned in SQLite's tables too (their category 0 is always part
        // of a word), but for the noncharacters.
        Unassigned => (c as u32) & 0xFFFE != 0xFFFE,
        _ => false,
    }
}

/// The combining diacritics FTS5 removes from Latin letters, and lets
/// continue a word (U+0300 to U+0331, but for the marks that compose no
/// Latin letter).
fn is_diacritic(c: char) -> bool {
    const FIRST: u32 = 0x300;
    const MASK: u64 = 0x0003_61F8_0802_9FDF;
    let code = c as u32;
    (FIRST..FIRST + 50).contains(&code) && MASK & (1 << (code - FIRST)) != 0
}

/// Append `c` folded: lower case, Latin letters without diacritics, the
/// diacritics themselves dropped.
fn push_folded(out: &mut String, c: char) {
    if c.is_ascii() {
        out.push(c.to_ascii_lowercase());
        return;
    }
    let code = c as u32;
    if code > 0xFFFF {
        // Deseret is the one script beyond the BMP that FTS5 folds.
        let lower = match code {
            0x10400..=0x10427 => char::from_u32(code + 40).unwrap_or(c),
            _ => c,
        };
        out.push(lower);
        return;
    }
    let lower = simple_lowercase(c);
    if is_diacritic(lower) {
        return;
    }
    out.push(without_diacritics(lower).unwrap_or(lower));
}

/// `c` case folded: in lower case when that is one character, else `c`;
/// and the letters whose folding is not their lower case.
fn simple_lowercase(c: char) -> char {
    match c {
        '\u{B5}' => return 'μ',
        '\u{17F}' => return 's',
        '\u{345}' | '\u{1FBE}' => return 'ι',
        'ς' => return 'σ',
        'ϐ' => return 'β',
        'ϑ' => return 'θ',
        'ϕ' => return 'φ',
        'ϖ' => return 'π',
        'ϰ' => return 'κ',
        'ϱ' => return 'ρ',
        'ϵ' => return 'ε',
        '\u{1E9B}' => return '\u{1E61}',
        _ => {}
    }
    let mut lower = c.to_lowercase();
    match (lower.next(), lower.next()) {
        (Some(one), None) => one,
        _ => c,
    }
}

/// The ASCII letter a Latin letter with diacritics is made of.
fn without_diacritics(c: char) -> Option<char> {
    // `ǡ` (a with dot above and macron) is the one such letter FTS5 keeps.
    if !('\u{C0}'..='\u{1EFF}').contains(&c) || c == '\u{1E1}' {
        return None;
    }
    let mut base = None;
    let mut only_diacritics = true;
    decompose_canonical(c, |part| match base {
        None => base = Some(part),
        Some(_) => only_diacritics &= is_diacritic(part),
    });
    let base = base.filter(|base| base.is_ascii_alphabetic() && only_diacritics)?;
    (base != c).then(|| base.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_and_fold_as_fts5_documents() {
        let cases: &[(&str, &[&str])] = &[
            ("", &[]),
            ("  --  ", &[]),
            ("Hello, World!", &["hello", "world"]),
            ("alice@example.com", &["alice", "example", "com"]),
            ("snake_case x-y", &["snake", "case", "x", "y"]),
            (
                "Résumé naïve Ærøskøbing",
                &["resume", "naive", "ærøskøbing"],
            ),
            ("ǖ Ǘ", &["u", "u"]),
            ("e\u{301}te\u{301}", &["ete"]),
            ("\u{301}abc", &["abc"]),
            ("ΆΛΦΑ Йогурт", &["άλφα", "йогурт"]),
            ("ﬁ 42nd ½", &["ﬁ", "42nd", "½"]),
            ("日本語のテキスト", &["日本語のテキスト"]),
            ("\u{E000}x\0y", &["\u{e000}x", "y"]),
            ("ẞtraße ſ µ ς", &["ßtraße", "s", "μ", "σ"]),
        ];
        for (text, expected) in cases {
            assert_eq!(words(text), *expected, "{text:?}");
        }
    }

    /// The words of `text` as SQLite's FTS5 splits them (`t`, an FTS5 table
    /// with the store's tokenizer, and `v`, its fts5vocab instance table).
    fn fts5_words(conn: &rusqlite::Connection, text: &str) -> Vec<String> {
        conn.execute("DELETE FROM t", []).unwrap();
        conn.execute("INSERT INTO t (rowid, x) VALUES (1, ?1)", [text])
            .unwrap();
        let mut statement = conn
            .prepare("SELECT term FROM v WHERE doc = 1 ORDER BY offset")
            .unwrap();
        let words = statement.query_map([], |row| row.get(0)).unwrap();
        words.map(Result::unwrap).collect()
    }

    #[test]
    fn every_code_point_of_the_common_scripts_splits_as_in_sqlite() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE VIRTUAL TABLE t USING fts5(x, tokenize = 'unicode61 remove_diacritics 2');
             CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance');",
        )
        .unwrap();
        // Latin, Greek, Cyrillic, Armenian, Hebrew, Arabic, Devanagari, Thai,
        // Latin and Greek extended, punctuation and symbols, CJK, kana,
        // Hangul, fullwidth forms: where Unicode has not changed since 6.1.
        let ranges = [
            0x1..0x37F,
            0x380..0x528,
            0x530..0x58D,
            0x590..0x5C8,
            0x5D0..0x5F5,
            0x606..0x61C,
            0x61E..0x6FF,
            0x900..0x978,
            0xE00..0xE7F,
            0x1E00..0x2000,
            0x2000..0x2066,
            0x206A..0x20BA,
            0x3000..0x3100,
            0x4E00..0x9FCC,
            0xAC00..0xD7A4,
            0xFF00..0xFFEF,
        ];
        let mut differences = Vec::new();
        for range in ranges {
            let chars: Vec<char> = range.filter_map(char::from_u32).collect();
            for chunk in chars.chunks(512) {
                let text: String = chunk.iter().map(|c| format!("q{c}q ")).collect();
                if fts5_words(&conn, &text) == words(&text) {
                    continue;
                }
                for c in chunk {
                    let text = format!("q{c}q");
                    let (fts5, ours) = (fts5_words(&conn, &text), words(&text));
                    if fts5 != ours {
                        differences.push(format!("U+{:04X}: {fts5:?} {ours:?}", *c as u32));
                    }
                }
            }
        }
        assert!(differences.is_empty(), "{}", differences.join("\n"));
    }
}
