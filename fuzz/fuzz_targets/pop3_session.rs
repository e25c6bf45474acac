//! Feeds arbitrary bytes, cut at arbitrary points, into the POP3 session core, with
//! a three-message maildrop, and writes every message it asks for.
//!
//! Checks, beyond "does not panic": the session never claims to consume more than it
//! was given; cutting the same input differently never changes the responses, the
//! logins or the deletions; and only QUIT deletes.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use sokkel_pop3::session::{Peer, Session, SessionConfig, Step};
use sokkel_message::MessageId;

const MESSAGES: [&[u8]; 3] = [
    b"Subject: a\r\n\r\n.\r\n..x\r\n",
    b"",
    b"Subject: c\n\n.bare\nend",
];

#[derive(Debug, PartialEq, Eq, Default)]
struct Played {
    out: Vec<u8>,
    users: Vec<String>,
    deleted: Vec<MessageId>,
}

fn play(config: &Arc<SessionConfig>, peer: Peer, chunks: &[&[u8]]) -> Played {
    let mut session = Session::new(config.clone(), peer);
    let mut played = Played::default();
    let out = &mut played.out;
    session.greeting(out);
    let mut buffer: Vec<u8> = Vec::new();
    'chunks: for chunk in chunks {
        buffer.extend_from_slice(chunk);
        loop {
            let (consumed, step) = session.advance(&buffer, out);
            assert!(consumed <= buffer.len());
            buffer.drain(..consumed);
            match step {
                Step::NeedMore => break,
                // `out` keeps every reply, as if the client read them at once.
                Step::Flush => {}
                Step::Login(login) => {
                    played.users.push(login.user.clone());
                    if login.password == "secret" {
                        let drop = (0..MESSAGES.len())
                            .map(|i| (MessageId(i as i64 + 1), MESSAGES[i].len() as u64))
                            .collect();
                        session.logged_in(drop, out);
                    } else {
                        session.login_failed(out);
                    }
                }
                Step::Retrieve(retrieve) => {
                    let message = MESSAGES[(retrieve.id.0 - 1) as usize];
                    // The second message was deleted by another reader.
                    let message = (retrieve.id.0 != 2).then_some(message);
                    if let Some(mut body) = session.transfer(message, out) {
                        while !body.write_next(out, 3) {}
                    }
                }
                Step::Update(ids) => {
                    played.deleted.extend(&ids);
                    session.updated(Ok(ids.len() as u64), out);
                }
                Step::Close => break 'chunks,
                // What follows depends on how the input was cut (bytes pipelined
                // behind STLS are discarded by design): stop comparing here.
                Step::StartTls => break 'chunks,
            }
        }
    }
    if !played.deleted.is_empty() {
        let quit = played.out.windows(6).any(|w| w.eq_ignore_ascii_case(b"+OK so"));
        assert!(quit, "deleted without a goodbye");
    }
    played
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut_seed, input)) = data.split_first() else { return };
    let config = Arc::new(SessionConfig {
        max_line_length: 256,
        max_errors: 50,
        tls_available: cut_seed & 1 == 0,
        allow_insecure_auth: cut_seed & 2 == 0,
        ..SessionConfig::default()
    });
    let peer = Peer { tls: cut_seed & 4 == 0, loopback: cut_seed & 8 == 0 };
    let whole = play(&config, peer, &[input]);
    let step = usize::from(cut_seed >> 4) % 13 + 1;
    let chunks: Vec<&[u8]> = input.chunks(step).collect();
    let split = play(&config, peer, &chunks);
    assert_eq!(whole, split, "the session depends on how the input was cut");
});
