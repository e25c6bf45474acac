//! Feeds arbitrary bytes, cut at arbitrary points, into the SMTP session core.
//!
//! Checks, beyond "does not panic": every reply is a well-formed reply line; the
//! session never claims to consume more than it was given; and cutting the same
//! input differently never changes the replies or the messages (so partial reads
//! cannot be used to smuggle).
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use sokkel_smtp::server::session::{BareLf, Delivery, Received, Session, SessionConfig, Step};

fn play(config: &Arc<SessionConfig>, chunks: &[&[u8]]) -> (Vec<u8>, Vec<Received>) {
    let mut session = Session::new(config.clone());
    let mut out = Vec::new();
    session.greeting(&mut out);
    let mut buffer: Vec<u8> = Vec::new();
    let mut messages = Vec::new();
    'chunks: for chunk in chunks {
        buffer.extend_from_slice(chunk);
        loop {
            let (consumed, step) = session.advance(&buffer, &mut out);
            assert!(consumed <= buffer.len());
            buffer.drain(..consumed);
            match step {
                Step::NeedMore => break,
                // `out` keeps every reply, as if the client read them at once.
                Step::Flush => {}
                Step::Deliver(message) => {
                    // Fail every third delivery, as a full disk would.
                    let outcome = if messages.len() % 3 == 2 {
                        Delivery::Failed
                    } else {
                        Delivery::Stored(messages.len().to_string())
                    };
                    messages.push(message);
                    session.delivered(outcome, &mut out);
                }
                Step::Close => break 'chunks,
                // What follows depends on how the input was cut (bytes pipelined
                // behind STARTTLS are discarded by design): stop comparing here.
                Step::StartTls => break 'chunks,
                Step::Authenticate(given) => {
                    session.authenticated(given.password == "secret", &mut out);
                }
            }
        }
    }
    (out, messages)
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut_seed, input)) = data.split_first() else { return };
    let config = Arc::new(SessionConfig {
        max_message_size: 4096,
        max_recipients: 100,
        max_line_length: 512,
        max_errors: 50,
        bare_lf: if cut_seed & 1 == 0 { BareLf::Accept } else { BareLf::Reject },
        starttls: cut_seed & 2 == 0,
        auth: true,
        allow_insecure_auth: cut_seed & 4 == 0,
        require_tls: cut_seed & 8 == 0,
        ..SessionConfig::default()
    });
    let (whole_out, whole_messages) = play(&config, &[input]);
    for line in whole_out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        assert!(line.ends_with(b"\r"), "reply line without CRLF");
        assert!(line.len() >= 5 && line[..3].iter().all(u8::is_ascii_digit), "malformed reply");
        assert!(line[3] == b' ' || line[3] == b'-', "malformed reply separator");
    }
    let step = usize::from(cut_seed >> 4) % 13 + 1;
    let chunks: Vec<&[u8]> = input.chunks(step).collect();
    let (split_out, split_messages) = play(&config, &chunks);
    assert_eq!(whole_out, split_out, "replies depend on how the input was cut");
    assert_eq!(whole_messages, split_messages, "messages depend on how the input was cut");
});
