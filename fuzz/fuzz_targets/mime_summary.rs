//! Feeds arbitrary bytes to what runs on every delivered message and every message
//! view: the list summary, the parsed view, and the download of every listed part.
//!
//! Runs each input on a thread with a 256 KiB stack, so a recursion that follows
//! the input's nesting (issue #11) crashes here long before it could in the
//! catcher. Checks, beyond "does not panic, does not overflow": the summary's
//! attachment count is the view's count of parts that are not inline; the snippet
//! and the indexed text stay within their caps; no more parts are listed than
//! the part limit allows; file names stay within their cap; every listed part (the
//! first and last 16 of a long list) downloads, with the same description and as
//! many bytes as listed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sokkel_store::mime::{self, MAX_FILE_NAME_BYTES, MAX_PARTS};

const STACK: usize = 256 * 1024;
const SAMPLED_PARTS: usize = 16;

fn check(raw: &[u8]) {
    let summary = mime::fuzz_summary(raw);
    let parsed = mime::parse(raw);
    assert!(parsed.attachments.len() <= MAX_PARTS + 1);
    for info in &parsed.attachments {
        assert!(info.file_name.len() <= MAX_FILE_NAME_BYTES, "{info:?}");
    }
    if let Some((attachments, snippet_chars, indexed_bytes)) = summary {
        let listed = parsed
            .attachments
            .iter()
            .filter(|info| !info.inline)
            .count();
        assert_eq!(attachments as usize, listed);
        assert!(snippet_chars <= 200);
        assert!(indexed_bytes <= 64 << 10);
    }
    // Each download takes the message apart anew: all of a long list would make
    // this target quadratic in the part count, so the first and last parts.
    let listed = &parsed.attachments;
    let sampled = listed
        .iter()
        .take(SAMPLED_PARTS)
        .chain(listed.iter().skip(SAMPLED_PARTS).rev().take(SAMPLED_PARTS));
    for info in sampled {
        let (again, bytes) = mime::part(raw, &info.part_id).expect("a listed part downloads");
        assert_eq!(&again, info);
        assert_eq!(bytes.len(), info.size, "{info:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let raw = data.to_vec();
    let outcome = std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(move || check(&raw))
        .expect("spawn a checker thread")
        .join();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
});
