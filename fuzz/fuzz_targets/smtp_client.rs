//! Feeds arbitrary server bytes, cut at arbitrary points, to the SMTP client's
//! conversation core: connect, send one message to two recipients, quit.
//!
//! Checks, beyond "does not panic" and "always stops": everything the client writes
//! is CRLF-terminated lines (content included, ending in the final dot), the
//! transcript never shows the password, and cutting the same server bytes
//! differently never changes what the client writes or how it ends (up to a
//! STARTTLS handshake, after which early bytes are discarded by design).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sokkel_smtp::client::core::{
    AuthMechanism, Conversation, Credentials, Envelope, Output, Settings, TlsMode,
};
use sokkel_smtp::client::error::FailureKind;

const PASSWORD: &str = "s3cret-pw";

/// Every output up to the end (or the first STARTTLS handshake), as text.
fn play(settings: &Settings, chunks: &[&[u8]]) -> Vec<String> {
    let mut conversation = Conversation::new(settings.clone());
    let mut chunks = chunks.iter();
    let mut trace = Vec::new();
    let mut phase = 0;
    for _ in 0..100_000 {
        match conversation.next_output() {
            Output::Send { wire, shown } => {
                assert!(wire.ends_with(b"\r\n"), "a command without CRLF");
                check_crlf(&wire);
                for line in &shown {
                    assert!(
                        !line.contains(PASSWORD),
                        "the transcript shows the password"
                    );
                }
                trace.push(format!("send {}", String::from_utf8_lossy(&wire)));
            }
            Output::Content(wire) => {
                assert!(wire.ends_with(b"\r\n.\r\n") || wire == b".\r\n");
                check_crlf(&wire);
                trace.push("content".into());
            }
            Output::Received(reply) => trace.push(format!("reply {reply}")),
            // Notes name how many bytes were discarded, which depends on the cut.
            Output::Note(_) => {}
            Output::Read => match chunks.next() {
                Some(chunk) => conversation.received(chunk),
                None => {
                    let err = conversation.connection_lost(FailureKind::Closed);
                    trace.push(format!("lost: {err}"));
                    return trace;
                }
            },
            Output::StartTls if settings.tls == TlsMode::Implicit => {
                conversation.tls_established();
            }
            Output::StartTls => return trace,
            Output::Ready if phase == 0 => {
                phase = 1;
                conversation.send(
                    &Envelope {
                        from: "me@x.test".into(),
                        to: vec!["a@x.test".into(), "b@x.test".into()],
                    },
                    b"Subject: hi\n\n.line\r\nend",
                );
            }
            Output::Ready => {
                phase = 2;
                conversation.quit();
            }
            Output::Sent(report) => trace.push(format!("sent {report:?}")),
            Output::Failed(err) => trace.push(format!("failed: {err}")),
            Output::Closed => return trace,
        }
    }
    panic!("the conversation never ended: {trace:?}");
}

fn check_crlf(wire: &[u8]) {
    for (i, &b) in wire.iter().enumerate() {
        if b == b'\n' {
            assert!(i > 0 && wire[i - 1] == b'\r', "bare LF");
        }
        if b == b'\r' {
            assert_eq!(wire.get(i + 1), Some(&b'\n'), "bare CR");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, input)) = data.split_first() else {
        return;
    };
    let tls = match seed & 3 {
        0 => TlsMode::None,
        1 => TlsMode::StartTls,
        2 => TlsMode::StartTlsIfOffered,
        _ => TlsMode::Implicit,
    };
    let mechanism = match (seed >> 2) & 3 {
        0 => None,
        1 => Some(AuthMechanism::Plain),
        2 => Some(AuthMechanism::Login),
        _ => Some(AuthMechanism::Auto),
    };
    let settings = Settings {
        ehlo_name: "client.test".into(),
        tls,
        credentials: mechanism.map(|mechanism| Credentials {
            user: "alice".into(),
            password: PASSWORD.into(),
            mechanism,
        }),
        peer: "127.0.0.1:25".parse().unwrap(),
    };
    let whole = play(&settings, &[input]);
    let step = usize::from(seed >> 4) % 13 + 1;
    let chunks: Vec<&[u8]> = input.chunks(step).collect();
    assert_eq!(
        whole,
        play(&settings, &chunks),
        "depends on how the bytes were cut"
    );
});
