//! Table tests of the session core: exact responses, every command in every state,
//! pipelining, dot-stuffing, AUTH PLAIN, the STLS discard rule and hostile input.

use super::*;

const GREETING: &str = "+OK sokkel POP3 ready on localhost\r\n";
const LOGIN: &[u8] = b"USER morty\r\nPASS secret\r\n";

/// What the played shell saw and did.
#[derive(Debug, Default)]
struct Run {
    out: String,
    logins: Vec<Login>,
    retrieved: Vec<Retrieve>,
    tls_starts: usize,
    deleted: Vec<MessageId>,
    closed: bool,
}

/// Plays a shell around a session: the password is "secret" for every user, the
/// store holds `messages` (ids 10, 20, 30, ...), and ids in `gone` were deleted by
/// another reader after login. Feeds `writes` one at a time, as a client's writes
/// arrive, and returns everything the server wrote.
struct Shell {
    config: SessionConfig,
    peer: Peer,
    messages: Vec<Vec<u8>>,
    gone: Vec<MessageId>,
}

impl Shell {
    fn new() -> Self {
        Shell {
            config: SessionConfig::default(),
            peer: Peer {
                tls: false,
                loopback: true,
            },
            messages: vec![
                b"Subject: one\r\n\r\nfirst\r\n".to_vec(),
                b"Subject: two\r\n\r\n.dot\r\nline 2\r\n".to_vec(),
            ],
            gone: Vec::new(),
        }
    }

    fn id(index: usize) -> MessageId {
        MessageId(10 * (index as i64 + 1))
    }

    fn run(&self, writes: &[&[u8]]) -> Run {
        let mut session = Session::new(Arc::new(self.config.clone()), self.peer);
        let mut run = Run::default();
        let mut out = Vec::new();
        session.greeting(&mut out);
        let mut buffer = Vec::new();
        'writes: for write in writes {
            buffer.extend_from_slice(write);
            loop {
                let (consumed, step) = session.advance(&buffer, &mut out);
                buffer.drain(..consumed);
                match step {
                    Step::NeedMore => break,
                    Step::Login(login) => {
                        if login.password == "secret" {
                            let drop = (0..self.messages.len())
                                .map(|i| (Shell::id(i), self.messages[i].len() as u64))
                                .collect();
                            session.logged_in(drop, &mut out);
                        } else {
                            session.login_failed(&mut out);
                        }
                        run.logins.push(login);
                    }
                    Step::Retrieve(retrieve) => {
                        run.retrieved.push(retrieve);
                        let index = (retrieve.id.0 / 10 - 1) as usize;
                        let message = (!self.gone.contains(&retrieve.id))
                            .then(|| self.messages[index].as_slice());
                        if let Some(mut body) = session.transfer(message, &mut out) {
                            while !body.write_next(&mut out, 7) {}
                        }
                    }
                    Step::StartTls => {
                        assert!(buffer.is_empty(), "STLS consumed what was pipelined");
                        run.tls_starts += 1;
                        session.tls_started();
                    }
                    Step::Update(ids) => {
                        let count = ids.len() as u64;
                        run.deleted.extend(ids);
                        session.updated(Ok(count), &mut out);
                    }
                    Step::Close => {
                        run.closed = true;
                        break 'writes;
                    }
                    // The output stays in `out`: the played client reads it at the end.
                    Step::Flush => panic!("a test's responses never reach the output bound"),
                }
            }
        }
        run.out = String::from_utf8(out).expect("responses are UTF-8");
        run
    }
}

fn run(writes: &[&[u8]]) -> Run {
    Shell::new().run(writes)
}

/// The server's output after the greeting.
fn after_greeting(run: &Run) -> &str {
    run.out.strip_prefix(GREETING).expect("the greeting first")
}

/// The first word of every status line ("+OK", "-ERR" or "+" for a continuation);
/// the test messages have no body line that starts like one.
fn statuses(out: &str) -> Vec<&str> {
    out.split("\r\n")
        .filter(|line| line.starts_with("+OK") || line.starts_with("-ERR") || *line == "+ ")
        .map(|line| line.split(' ').next().unwrap_or(line))
        .collect()
}

#[test]
fn greeting_and_capa_before_login() {
    let r = run(&[b"CAPA\r\n"]);
    assert_eq!(
        r.out,
        format!(
            "{GREETING}+OK capability list follows\r\n\
             TOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\n\
             USER\r\nSASL PLAIN\r\nIMPLEMENTATION sokkel\r\n.\r\n"
        )
    );
}

#[test]
fn capa_offers_stls_only_with_a_certificate_and_only_before_tls() {
    let mut shell = Shell::new();
    shell.config.tls_available = true;
    let r = shell.run(&[b"CAPA\r\n", b"STLS\r\n", b"CAPA\r\n", b"STLS\r\n"]);
    let out = after_greeting(&r);
    let (before, after) = out.split_once("+OK begin TLS negotiation\r\n").unwrap();
    assert!(before.contains("\r\nSTLS\r\n"), "{before}");
    assert!(!after.contains("\r\nSTLS\r\n"), "{after}");
    assert!(after.ends_with("-ERR TLS is already in use\r\n"), "{after}");
    assert_eq!(r.tls_starts, 1);

    let r = run(&[b"STLS\r\n"]);
    assert_eq!(
        after_greeting(&r),
        "-ERR STLS is not available: the server has no certificate\r\n"
    );
    assert_eq!(r.tls_starts, 0);
}

#[test]
fn capa_after_login_leaves_out_what_only_works_before() {
    let mut shell = Shell::new();
    shell.config.tls_available = true;
    let r = shell.run(&[LOGIN, b"CAPA\r\n"]);
    assert!(r.out.ends_with(
        "+OK capability list follows\r\n\
         TOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\n\
         IMPLEMENTATION sokkel\r\n.\r\n"
    ));
}

#[test]
fn a_whole_session_with_exact_responses() {
    let r = run(&[
        b"USER morty\r\n",
        b"PASS secret\r\n",
        b"STAT\r\n",
        b"LIST\r\n",
        b"LIST 2\r\n",
        b"UIDL\r\n",
        b"UIDL 1\r\n",
        b"TOP 2 0\r\n",
        b"RETR 2\r\n",
        b"DELE 1\r\n",
        b"STAT\r\n",
        b"LIST\r\n",
        b"RETR 1\r\n",
        b"NOOP\r\n",
        b"QUIT\r\n",
    ]);
    assert_eq!(
        after_greeting(&r),
        "+OK send PASS\r\n\
         +OK morty has 2 messages (53 octets)\r\n\
         +OK 2 53\r\n\
         +OK 2 messages (53 octets)\r\n1 23\r\n2 30\r\n.\r\n\
         +OK 2 30\r\n\
         +OK unique-id listing follows\r\n1 10\r\n2 20\r\n.\r\n\
         +OK 1 10\r\n\
         +OK top of message follows\r\nSubject: two\r\n\r\n.\r\n\
         +OK 30 octets\r\nSubject: two\r\n\r\n..dot\r\nline 2\r\n.\r\n\
         +OK message 1 deleted\r\n\
         +OK 1 30\r\n\
         +OK 1 message (30 octets)\r\n2 30\r\n.\r\n\
         -ERR message 1 already deleted\r\n\
         +OK\r\n\
         +OK sokkel POP3 signing off (1 message deleted)\r\n"
    );
    assert_eq!(r.deleted, vec![MessageId(10)], "deleted at QUIT");
    assert!(r.closed);
    assert_eq!(r.logins[0].user, "morty");
}

#[test]
fn quit_reports_what_it_deleted() {
    let r = run(&[LOGIN, b"DELE 1\r\nDELE 2\r\nQUIT\r\n"]);
    assert!(
        r.out
            .ends_with("+OK sokkel POP3 signing off (2 messages deleted)\r\n")
    );
    assert_eq!(r.deleted, vec![MessageId(10), MessageId(20)]);
    assert!(r.closed);
}

#[test]
fn rset_undeletes_and_quit_then_deletes_nothing() {
    let r = run(&[LOGIN, b"DELE 1\r\nDELE 2\r\nRSET\r\nSTAT\r\nQUIT\r\n"]);
    assert!(r.out.ends_with(
        "+OK maildrop has 2 messages (53 octets)\r\n+OK 2 53\r\n\
         +OK sokkel POP3 signing off (0 messages deleted)\r\n"
    ));
    assert!(r.deleted.is_empty());
    assert!(r.closed);
}

#[test]
fn a_session_that_ends_without_quit_deletes_nothing() {
    let r = run(&[LOGIN, b"DELE 1\r\nDELE 2\r\n"]);
    assert!(!r.closed);
    assert!(r.deleted.is_empty(), "only QUIT deletes");
}

#[test]
fn quit_before_login() {
    let r = run(&[b"QUIT\r\n", b"CAPA\r\n"]);
    assert_eq!(after_greeting(&r), "+OK sokkel POP3 signing off\r\n");
    assert!(r.closed, "and nothing after QUIT is read");
}

#[test]
fn every_command_in_every_state() {
    // (writes, statuses after the greeting)
    let cases: &[(&[&[u8]], &[&str])] = &[
        // AUTHORIZATION: only login commands, CAPA and QUIT work.
        (&[b"STAT\r\n"], &["-ERR"]),
        (&[b"LIST\r\n"], &["-ERR"]),
        (&[b"LIST 1\r\n"], &["-ERR"]),
        (&[b"UIDL\r\n"], &["-ERR"]),
        (&[b"TOP 1 1\r\n"], &["-ERR"]),
        (&[b"RETR 1\r\n"], &["-ERR"]),
        (&[b"DELE 1\r\n"], &["-ERR"]),
        (&[b"NOOP\r\n"], &["-ERR"]),
        (&[b"RSET\r\n"], &["-ERR"]),
        (&[b"PASS secret\r\n"], &["-ERR"]),
        (&[b"USER\r\n"], &["-ERR"]),
        (&[b"USER a b\r\n"], &["-ERR"]),
        (&[b"APOP morty 0123456789abcdef\r\n"], &["-ERR"]),
        (&[b"HELO\r\n"], &["-ERR"]),
        (&[b"\r\n"], &["-ERR"]),
        (
            &[b"user morty\r\npass secret\r\nstat\r\n"],
            &["+OK", "+OK", "+OK"],
        ),
        (
            &[b"USER morty\r\nPASS wrong\r\nPASS secret\r\n"],
            &["+OK", "-ERR", "-ERR"],
        ),
        (
            &[b"USER morty\r\nUSER rick\r\nPASS secret\r\nSTAT\r\n"],
            &["+OK", "+OK", "+OK", "+OK"],
        ),
        // TRANSACTION: no login commands; numbers must name a live message.
        (&[LOGIN, b"USER morty\r\n"], &["+OK", "+OK", "-ERR"]),
        (&[LOGIN, b"PASS secret\r\n"], &["+OK", "+OK", "-ERR"]),
        (&[LOGIN, b"AUTH PLAIN\r\n"], &["+OK", "+OK", "-ERR"]),
        (&[LOGIN, b"STLS\r\n"], &["+OK", "+OK", "-ERR"]),
        (&[LOGIN, b"STAT 1\r\n"], &["+OK", "+OK", "-ERR"]),
        (&[LOGIN, b"LIST 0\r\n"], &["+OK", "+OK", "-ERR"]),
        (&[LOGIN, b"LIST 3\r\n"], &["+OK", "+OK", "-ERR"]),
        (&[LOGIN, b"LIST -1\r\n"], &["+OK", "+OK", "-ERR"]),
        (&[LOGIN, b"LIST +1\r\n"], &["+OK", "+OK", "-ERR"]),
        (&[LOGIN, b"LIST one\r\n"], &["+OK", "+OK", "-ERR"]),
        (&[LOGIN, b"LIST 1 2\r\n"], &["+OK", "+OK", "-ERR"]),
        (
            &[LOGIN, b"LIST 99999999999999999999999\r\n"],
            &["+OK", "+OK", "-ERR"],
        ),
        (&[LOGIN, b"UIDL 3\r\n"], &["+OK", "+OK", "-ERR"]),
        (&[LOGIN, b"RETR\r\n"], &["+OK", "+OK", "-ERR"]),
        (&[LOGIN, b"RETR 3\r\n"], &["+OK", "+OK", "-ERR"]),
        (&[LOGIN, b"TOP 1\r\n"], &["+OK", "+OK", "-ERR"]),
        (&[LOGIN, b"TOP 1 x\r\n"], &["+OK", "+OK", "-ERR"]),
        (&[LOGIN, b"TOP 3 0\r\n"], &["+OK", "+OK", "-ERR"]),
        (&[LOGIN, b"DELE\r\n"], &["+OK", "+OK", "-ERR"]),
        (&[LOGIN, b"DELE 3\r\n"], &["+OK", "+OK", "-ERR"]),
        (
            &[LOGIN, b"DELE 1\r\nDELE 1\r\n"],
            &["+OK", "+OK", "+OK", "-ERR"],
        ),
        (
            &[LOGIN, b"DELE 1\r\nUIDL 1\r\nTOP 1 0\r\n"],
            &["+OK", "+OK", "+OK", "-ERR", "-ERR"],
        ),
        (&[LOGIN, b"RSET x\r\n"], &["+OK", "+OK", "-ERR"]),
        (&[LOGIN, b"NOOP x\r\n"], &["+OK", "+OK", "-ERR"]),
        (&[LOGIN, b"XTND XMIT\r\n"], &["+OK", "+OK", "-ERR"]),
        (
            &[LOGIN, b"list\r\nuidl 2\r\nretr 1\r\ntop 1 5\r\n"],
            &["+OK", "+OK", "+OK", "+OK", "+OK", "+OK"],
        ),
        // Commands may end with a bare LF (people type into netcat).
        (
            &[b"USER morty\nPASS secret\nSTAT\n"],
            &["+OK", "+OK", "+OK"],
        ),
    ];
    for (writes, expected) in cases {
        let r = run(writes);
        assert_eq!(
            statuses(after_greeting(&r)),
            *expected,
            "for {:?}:\n{}",
            writes
                .iter()
                .map(|w| String::from_utf8_lossy(w))
                .collect::<String>(),
            r.out
        );
    }
}

#[test]
fn pipelined_commands_get_the_same_responses_in_order_however_they_arrive() {
    let script: &[u8] = b"CAPA\r\nUSER morty\r\nPASS secret\r\nSTAT\r\nLIST\r\nUIDL\r\n\
        RETR 1\r\nTOP 2 1\r\nDELE 2\r\nLIST 2\r\nRETR 2\r\nRSET\r\nDELE 1\r\nQUIT\r\n";
    let one_by_one: Vec<&[u8]> = script.split_inclusive(|&b| b == b'\n').collect();
    let reference = run(&one_by_one);
    assert!(reference.closed);
    assert_eq!(reference.deleted, vec![MessageId(10)]);
    assert_eq!(
        statuses(after_greeting(&reference)),
        [
            "+OK", "+OK", "+OK", "+OK", "+OK", "+OK", "+OK", "+OK", "+OK", "-ERR", "-ERR", "+OK",
            "+OK", "+OK"
        ]
    );

    let in_one_write = run(&[script]);
    assert_eq!(in_one_write.out, reference.out);
    assert_eq!(in_one_write.deleted, reference.deleted);

    let bytes: Vec<&[u8]> = script.chunks(1).collect();
    let byte_by_byte = run(&bytes);
    assert_eq!(byte_by_byte.out, reference.out);

    let mixed: Vec<&[u8]> = script.chunks(5).collect();
    assert_eq!(run(&mixed).out, reference.out);
}

#[test]
fn retr_dot_stuffs_and_terminates_what_the_store_holds() {
    let mut shell = Shell::new();
    shell.messages = vec![
        b"Subject: dots\r\n\r\n.\r\n..\r\n.x\r\nend".to_vec(),
        b"".to_vec(),
    ];
    let r = shell.run(&[LOGIN, b"RETR 1\r\nRETR 2\r\nTOP 1 2\r\n"]);
    assert!(
        r.out.ends_with(
            "+OK 31 octets\r\nSubject: dots\r\n\r\n..\r\n...\r\n..x\r\nend\r\n.\r\n\
             +OK 0 octets\r\n.\r\n\
             +OK top of message follows\r\nSubject: dots\r\n\r\n..\r\n...\r\n.\r\n"
        ),
        "{}",
        r.out
    );
    assert_eq!(
        r.retrieved,
        vec![
            Retrieve {
                number: 1,
                id: MessageId(10),
                top_lines: None
            },
            Retrieve {
                number: 2,
                id: MessageId(20),
                top_lines: None
            },
            Retrieve {
                number: 1,
                id: MessageId(10),
                top_lines: Some(2)
            },
        ]
    );
}

#[test]
fn a_message_another_reader_deleted_is_an_error_for_that_message_only() {
    let mut shell = Shell::new();
    shell.gone = vec![MessageId(10)];
    let r = shell.run(&[LOGIN, b"RETR 1\r\nTOP 1 0\r\nRETR 2\r\nSTAT\r\n"]);
    let out = after_greeting(&r);
    assert!(
        out.contains(
            "-ERR message 1 is gone: another reader deleted it\r\n\
             -ERR message 1 is gone: another reader deleted it\r\n\
             +OK 30 octets\r\n"
        ),
        "{out}"
    );
    assert!(out.ends_with("+OK 2 53\r\n"), "{out}");
}

#[test]
fn auth_plain_with_initial_response_continuation_and_cancel() {
    // base64("\0morty\0secret"), base64("morty\0morty\0secret"),
    // base64("rick\0morty\0secret"), base64("\0morty\0wrong")
    let r = run(&[b"AUTH PLAIN AG1vcnR5AHNlY3JldA==\r\nSTAT\r\n"]);
    assert_eq!(
        after_greeting(&r),
        "+OK morty has 2 messages (53 octets)\r\n+OK 2 53\r\n"
    );
    assert_eq!(r.logins[0].user, "morty");
    assert_eq!(r.logins[0].password, "secret");

    let r = run(&[
        b"AUTH PLAIN\r\n",
        b"bW9ydHkAbW9ydHkAc2VjcmV0\r\n",
        b"STAT\r\n",
    ]);
    assert_eq!(
        after_greeting(&r),
        "+ \r\n+OK morty has 2 messages (53 octets)\r\n+OK 2 53\r\n"
    );

    let r = run(&[b"AUTH PLAIN cmljawBtb3J0eQBzZWNyZXQ=\r\n"]);
    assert_eq!(
        r.logins[0].user, "morty",
        "the authorization identity is ignored"
    );

    let r = run(&[b"auth plain\r\n*\r\nSTAT\r\n"]);
    assert_eq!(
        after_greeting(&r),
        "+ \r\n-ERR authentication cancelled\r\n\
         -ERR log in first (USER and PASS, or AUTH PLAIN)\r\n"
    );
    assert!(r.logins.is_empty());

    let r = run(&[b"AUTH PLAIN\r\nCAPA\r\n"]);
    assert_eq!(
        statuses(after_greeting(&r)),
        ["+", "-ERR"],
        "the line after + is the response, whatever it says"
    );

    for bad in [
        &b"AUTH PLAIN not-base64!\r\n"[..],
        b"AUTH PLAIN =\r\n",
        b"AUTH PLAIN bW9ydHk=\r\n",
        b"AUTH PLAIN AG1vcnR5AHNlY3JldA== extra\r\n",
    ] {
        let r = run(&[bad]);
        assert!(
            after_greeting(&r).starts_with("-ERR "),
            "{:?}: {}",
            String::from_utf8_lossy(bad),
            r.out
        );
        assert!(r.logins.is_empty());
    }

    let r = run(&[b"AUTH PLAIN AG1vcnR5AHdyb25n\r\n"]);
    assert_eq!(
        after_greeting(&r),
        "-ERR [AUTH] invalid user name or password\r\n"
    );

    let r = run(&[b"AUTH\r\n", b"AUTH CRAM-MD5\r\n"]);
    assert_eq!(
        after_greeting(&r),
        "+OK SASL mechanisms follow\r\nPLAIN\r\n.\r\n\
         -ERR unsupported SASL mechanism CRAM-MD5; use PLAIN\r\n"
    );
}

#[test]
fn stls_discards_everything_pipelined_after_it() {
    let mut shell = Shell::new();
    shell.config.tls_available = true;
    let r = shell.run(&[
        b"CAPA\r\nSTLS\r\nUSER morty\r\nPASS secret\r\nDELE 1\r\nQUIT\r\n",
        b"STAT\r\n",
    ]);
    let out = after_greeting(&r);
    assert!(
        out.ends_with(
            "+OK begin TLS negotiation\r\n\
             -ERR log in first (USER and PASS, or AUTH PLAIN)\r\n"
        ),
        "nothing pipelined behind STLS ran: {out}"
    );
    assert!(r.logins.is_empty());
    assert!(r.deleted.is_empty());
    assert!(!r.closed);
}

#[test]
fn stls_forgets_a_user_name_sent_in_clear_text() {
    let mut shell = Shell::new();
    shell.config.tls_available = true;
    let r = shell.run(&[b"USER morty\r\n", b"STLS\r\n", b"PASS secret\r\n"]);
    assert!(r.out.ends_with("-ERR send USER first\r\n"), "{}", r.out);
    assert!(r.logins.is_empty());
}

#[test]
fn plain_text_login_from_afar_needs_tls_or_the_insecure_flag() {
    let mut shell = Shell::new();
    shell.peer.loopback = false;
    shell.config.tls_available = true;
    let r = shell.run(&[
        b"CAPA\r\n",
        b"USER morty\r\nPASS secret\r\nAUTH PLAIN AG1vcnR5AHNlY3JldA==\r\n",
    ]);
    let out = after_greeting(&r);
    assert!(!out.contains("USER\r\n") && !out.contains("SASL"), "{out}");
    assert!(out.contains("\r\nSTLS\r\n"), "{out}");
    assert!(
        out.ends_with(&"-ERR [AUTH] no plain-text login without TLS; use STLS first\r\n".repeat(3)),
        "{out}"
    );
    assert!(r.logins.is_empty());

    let r = shell.run(&[b"STLS\r\n", b"CAPA\r\n", LOGIN]);
    assert!(r.out.contains("USER\r\nSASL PLAIN\r\n"), "{}", r.out);
    assert_eq!(r.logins.len(), 1, "under TLS: {}", r.out);

    shell.config.tls_available = false;
    let r = shell.run(&[LOGIN]);
    assert!(
        after_greeting(&r).starts_with(
            "-ERR [AUTH] no plain-text login without TLS; this server has no TLS and does not allow that\r\n"
        ),
        "{}",
        r.out
    );

    shell.config.allow_insecure_auth = true;
    let r = shell.run(&[b"CAPA\r\n", LOGIN]);
    assert!(r.out.contains("USER\r\nSASL PLAIN\r\n"), "{}", r.out);
    assert_eq!(r.logins.len(), 1);

    let mut shell = Shell::new();
    shell.peer = Peer {
        tls: true,
        loopback: false,
    };
    assert_eq!(shell.run(&[LOGIN]).logins.len(), 1, "implicit TLS");
}

#[test]
fn too_many_failed_logins_close_the_session() {
    let r = run(&[
        b"USER morty\r\nPASS a\r\n",
        b"AUTH PLAIN AG1vcnR5AHdyb25n\r\n",
        b"USER morty\r\nPASS secret?\r\nSTAT\r\n",
    ]);
    assert_eq!(
        after_greeting(&r),
        "+OK send PASS\r\n-ERR [AUTH] invalid user name or password\r\n\
         -ERR [AUTH] invalid user name or password\r\n\
         +OK send PASS\r\n-ERR [AUTH] invalid user name or password; too many failures, closing\r\n"
    );
    assert!(r.closed);
    assert_eq!(r.logins.len(), 3);
}

#[test]
fn an_overlong_line_is_refused_and_the_next_one_works() {
    let mut long = vec![b'X'; 5000];
    long.extend_from_slice(b"\r\n");
    let r = run(&[
        &long[..100],
        &long[100..2500],
        &long[2500..],
        LOGIN,
        b"STAT\r\n",
    ]);
    assert_eq!(
        after_greeting(&r),
        "-ERR line too long (max 1024 octets)\r\n+OK send PASS\r\n\
         +OK morty has 2 messages (53 octets)\r\n+OK 2 53\r\n"
    );

    let mut long = b"USER ".to_vec();
    long.extend(vec![b'a'; 1020]);
    long.extend_from_slice(b"\r\nPASS secret\r\n");
    let r = run(&[&long]);
    assert_eq!(
        after_greeting(&r),
        "-ERR line too long (max 1024 octets)\r\n-ERR send USER first\r\n"
    );
}

#[test]
fn too_many_errors_close_the_session() {
    let mut shell = Shell::new();
    shell.config.max_errors = 3;
    let r = shell.run(&[b"X\r\nY\r\nZ\r\nCAPA\r\n"]);
    assert_eq!(
        after_greeting(&r),
        "-ERR unknown command X\r\n-ERR unknown command Y\r\n\
         -ERR unknown command Z; too many errors, closing\r\n"
    );
    assert!(r.closed);
}

#[test]
fn bytes_that_are_not_utf8_are_an_error_not_a_panic() {
    let r = run(&[b"\xff\xfe\r\nUSER \xc3\r\n", LOGIN]);
    assert_eq!(statuses(after_greeting(&r)), ["-ERR", "-ERR", "+OK", "+OK"]);
}

#[test]
fn timeout_and_shutdown_say_so_and_delete_nothing() {
    let config = Arc::new(SessionConfig::default());
    let peer = Peer {
        tls: false,
        loopback: true,
    };
    let mut session = Session::new(config.clone(), peer);
    let mut out = Vec::new();
    session.timed_out(&mut out);
    assert_eq!(
        out,
        b"-ERR autologout: idle for too long, nothing deleted\r\n"
    );
    assert!(session.is_closed());
    assert_eq!(session.advance(b"QUIT\r\n", &mut out), (6, Step::Close));

    let mut session = Session::new(config, peer);
    let mut out = Vec::new();
    session.shutting_down(&mut out);
    assert_eq!(
        out,
        b"-ERR [SYS/TEMP] server shutting down, nothing deleted\r\n"
    );
    assert!(session.is_closed());
}

#[test]
fn a_maildrop_the_store_cannot_open_lets_the_client_try_again() {
    let mut session = Session::new(
        Arc::new(SessionConfig::default()),
        Peer {
            tls: false,
            loopback: true,
        },
    );
    let mut out = Vec::new();
    let (_, step) = session.advance(LOGIN, &mut out);
    assert!(matches!(step, Step::Login(_)));
    session.maildrop_unavailable(&mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "+OK send PASS\r\n-ERR [SYS/TEMP] cannot open the maildrop; try again later\r\n"
    );
    let mut out = Vec::new();
    let (_, step) = session.advance(LOGIN, &mut out);
    assert!(matches!(step, Step::Login(_)), "a new try");
}

#[test]
fn a_failed_update_says_so() {
    let mut session = Session::new(
        Arc::new(SessionConfig::default()),
        Peer {
            tls: false,
            loopback: true,
        },
    );
    let mut out = Vec::new();
    let (consumed, _) = session.advance(LOGIN, &mut out);
    assert_eq!(
        consumed,
        LOGIN.len(),
        "stops after PASS until the shell answers"
    );
    session.logged_in(vec![(MessageId(5), 10)], &mut out);
    out.clear();
    let (_, step) = session.advance(b"DELE 1\r\nQUIT\r\n", &mut out);
    assert_eq!(step, Step::Update(vec![MessageId(5)]));
    session.updated(Err(()), &mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "+OK message 1 deleted\r\n\
         -ERR [SYS/TEMP] some deleted messages were not removed; try again\r\n"
    );
    assert!(session.is_closed());
}

#[test]
fn a_login_never_shows_its_password_in_debug_output() {
    let login = Login {
        user: "morty".into(),
        password: "hunter2".into(),
    };
    let shown = format!("{login:?} {:?}", Step::Login(login.clone()));
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("morty"));
}

#[test]
fn a_message_the_store_cannot_read_is_an_error_and_the_session_goes_on() {
    let mut session = Session::new(
        Arc::new(SessionConfig::default()),
        Peer {
            tls: false,
            loopback: true,
        },
    );
    let mut out = Vec::new();
    session.advance(LOGIN, &mut out);
    session.logged_in(vec![(MessageId(5), 10)], &mut out);
    out.clear();
    let (consumed, step) = session.advance(b"RETR 1\r\nSTAT\r\n", &mut out);
    assert_eq!(consumed, 8);
    assert!(matches!(step, Step::Retrieve(_)));
    assert_eq!(session.advance(b"STAT\r\n", &mut out), (0, Step::NeedMore));
    session.transfer_failed(&mut out);
    assert_eq!(session.advance(b"STAT\r\n", &mut out), (6, Step::NeedMore));
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "-ERR [SYS/TEMP] cannot read message 1; try again later\r\n+OK 1 10\r\n"
    );
}

#[test]
fn pipelined_commands_wait_while_the_responses_are_backed_up() {
    // Issue #11: one 4 KiB write of pipelined LISTs over a big maildrop, never
    // read, made the server buffer tens of megabytes. The session stops consuming
    // commands once the unsent output passes the bound, and answers the rest only
    // after the shell has flushed it.
    let mut session = Session::new(Arc::new(SessionConfig::default()), Shell::new().peer);
    let mut out = Vec::new();
    let (_, step) = session.advance(LOGIN, &mut out);
    assert!(matches!(step, Step::Login(_)));
    let maildrop = (0..5000).map(|i| (MessageId(i + 1), 1000)).collect();
    session.logged_in(maildrop, &mut out);
    out.clear();
    let input = b"LIST\r\n".repeat(700);
    let (consumed, step) = session.advance(&input, &mut out);
    assert_eq!(step, Step::Flush);
    let one_list = 5000 * b"5000 1000\r\n".len() + 64;
    let limit = sokkel_net::server::PENDING_OUTPUT_LIMIT;
    assert!(out.len() < limit + one_list, "{} bytes", out.len());
    assert!(consumed < 100, "consumed {consumed} bytes of commands");
    // Flushed: it goes on where it stopped; every LIST is answered exactly once.
    let mut answered = out.windows(3).filter(|w| w == b"+OK").count();
    let mut pos = consumed;
    loop {
        out.clear();
        let (consumed, step) = session.advance(&input[pos..], &mut out);
        pos += consumed;
        answered += out.windows(3).filter(|w| w == b"+OK").count();
        assert!(out.len() < limit + one_list);
        match step {
            Step::Flush => {}
            Step::NeedMore => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(pos, input.len());
    assert_eq!(answered, 700);
}

#[test]
fn lines_ended_moves_only_when_a_whole_line_has_come() {
    // Issue #11: the shell's autologout deadline restarts when this count moves,
    // so a command trickled a byte at a time gets no more time than a whole one.
    let mut session = Session::new(Arc::new(SessionConfig::default()), Shell::new().peer);
    let mut out = Vec::new();
    let mut buffer = Vec::new();
    for &byte in b"CAPA\r" {
        buffer.push(byte);
        let (consumed, _) = session.advance(&buffer, &mut out);
        buffer.drain(..consumed);
        assert_eq!(session.lines_ended(), 0);
    }
    buffer.push(b'\n');
    session.advance(&buffer, &mut out);
    assert_eq!(session.lines_ended(), 1);
}
