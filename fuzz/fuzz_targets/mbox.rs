//! Arbitrary bytes as an mbox file: splitting never panics and keeps at most
//! its limit of a message, and every message it keeps, written back with
//! mboxrd quoting in chunks of any size and split again, is the same (with a
//! line break at its end).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sokkel_message::mailbox::{FromQuoter, MaildirFlags, MboxReader, file_kind};

const MAX: u64 = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, input)) = data.split_first() else {
        return;
    };
    let _ = file_kind(input);
    let _ = MaildirFlags::of(&String::from_utf8_lossy(input));
    let mut kept = Vec::new();
    let mut mbox = Vec::new();
    for entry in MboxReader::new(input, MAX) {
        let entry = entry.expect("reading a slice cannot fail");
        if entry.too_big(MAX) {
            assert!(entry.raw.is_empty());
            continue;
        }
        assert_eq!(entry.raw.len() as u64, entry.size);
        mbox.extend_from_slice(b"From x Tue Dec  1 07:29:09 2026\n");
        let mut quoter = FromQuoter::default();
        for piece in entry.raw.chunks(usize::from(chunk).max(1)) {
            quoter.push(piece, &mut mbox);
        }
        quoter.finish(&mut mbox);
        let mut raw = entry.raw;
        if raw.last().is_some_and(|&b| b != b'\n') {
            raw.push(b'\n');
        }
        kept.push(raw);
    }
    let again: Vec<Vec<u8>> = MboxReader::new(&mbox[..], u64::MAX)
        .map(|entry| entry.expect("reading a slice cannot fail").raw)
        .collect();
    assert_eq!(kept, again);
});
