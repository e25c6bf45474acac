//! Arbitrary bytes through every echo framing: no panic, spans stay inside the
//! buffer, and encode-then-parse gives the payload back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sokkel_echo::Framing;

fuzz_target!(|data: &[u8]| {
    for framing in [Framing::Raw, Framing::Line, Framing::Length, Framing::AsciiLength, Framing::Fixed(7)] {
        let mut rest = data;
        while let Ok(Some(span)) = framing.next_frame(rest, 1 << 16) {
            assert!(span.payload_start <= span.payload_end && span.payload_end <= span.len);
            assert!(span.len <= rest.len() && span.len > 0);
            rest = &rest[span.len..];
        }
        let mut encoded = Vec::new();
        if framing.encode(data, &mut encoded).is_ok() {
            let span = framing.next_frame(&encoded, usize::MAX).ok().flatten();
            let span = span.expect("an encoded frame parses");
            if framing != Framing::Raw {
                assert_eq!(span.payload(&encoded), data);
            }
        }
    }
});
