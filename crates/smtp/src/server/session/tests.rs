//! Table tests of the session core: exact replies, pipelining, DATA and BDAT edge
//! cases, limits, and SMTP smuggling attempts.

use super::*;

/// Plays a client's writes into a session the way the shell does and returns what the
/// server wrote (greeting included), the messages it delivered, and whether it closed.
struct Run {
    out: String,
    messages: Vec<Received>,
    closed: bool,
    refusals: u64,
}

fn run_with(config: SessionConfig, writes: &[&[u8]]) -> Run {
    let mut session = Session::new(Arc::new(config));
    let mut out = Vec::new();
    session.greeting(&mut out);
    let mut buffer = Vec::new();
    let mut messages = Vec::new();
    let mut closed = false;
    'writes: for write in writes {
        buffer.extend_from_slice(write);
        loop {
            let (consumed, step) = session.advance(&buffer, &mut out);
            buffer.drain(..consumed);
            match step {
                Step::NeedMore => break,
                Step::Deliver(message) => {
                    messages.push(message);
                    session.delivered(Delivery::Stored(messages.len().to_string()), &mut out);
                }
                Step::Close => {
                    closed = true;
                    break 'writes;
                }
                Step::StartTls => {
                    // As the shell does: drop what was pipelined, then "handshake".
                    out.extend_from_slice(b"<TLS>\r\n");
                    buffer.clear();
                    session.tls_started();
                    break;
                }
                Step::Authenticate(given) => {
                    let ok = given.user == "user" && given.password == "secret";
                    session.authenticated(ok, &mut out);
                }
                // The output stays in `out`: the played client reads it all at the end.
                Step::Flush => panic!("a test's replies never reach the output bound"),
            }
        }
    }
    Run {
        out: String::from_utf8_lossy(&out).into_owned(),
        messages,
        closed,
        refusals: session.refusals(),
    }
}

fn run(writes: &[&[u8]]) -> Run {
    run_with(SessionConfig::default(), writes)
}

/// The reply codes in order, greeting included; multi-line replies count once.
fn codes(out: &str) -> Vec<u16> {
    out.lines()
        .filter(|line| line.as_bytes().get(3) == Some(&b' '))
        .map(|line| line[..3].parse().expect("a reply code"))
        .collect()
}

const EHLO: &[u8] = b"EHLO client.test\r\n";
const ENVELOPE: &[u8] = b"EHLO client.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n";

/// `SMTPRejected` of `/api/v1/info`: refused MAIL, RCPT and DATA and refused
/// messages count; other errors and accepted messages do not.
#[test]
fn refusals_count_transaction_commands_and_messages() {
    let config = SessionConfig {
        max_message_size: 10,
        ..SessionConfig::default()
    };
    let r = run_with(
        config,
        &[
            b"MAIL FROM:<a@x.test>\r\n",
            EHLO,
            b"FOO\r\nRCPT TO:<b@y.test>\r\nDATA\r\n",
            ENVELOPE,
            b"DATA\r\n0123456789abcdef\r\n.\r\n",
            b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\nok\r\n.\r\n",
        ],
    );
    assert_eq!(
        codes(&r.out),
        [
            220, 503, 250, 500, 503, 503, 250, 250, 250, 354, 552, 250, 250, 354, 250
        ]
    );
    assert_eq!(r.messages.len(), 1);
    assert_eq!(r.refusals, 4, "{}", r.out);
}

#[test]
fn greeting_and_ehlo_advertise_the_extensions() {
    let r = run(&[EHLO]);
    assert_eq!(
        r.out,
        "220 localhost ESMTP sokkel mail catcher\r\n\
         250-localhost greets client.test\r\n\
         250-PIPELINING\r\n\
         250-SIZE 33554432\r\n\
         250-8BITMIME\r\n\
         250-SMTPUTF8\r\n\
         250-ENHANCEDSTATUSCODES\r\n\
         250 CHUNKING\r\n"
    );
}

/// `mail import` in another process proves with it that it reached the server
/// of its store (issue #18).
#[test]
fn ehlo_names_the_store_token_when_given_one() {
    let config = SessionConfig {
        store_token: Some("0123abcd".into()),
        ..SessionConfig::default()
    };
    let r = run_with(config, &[EHLO]);
    assert!(
        r.out
            .ends_with("250-CHUNKING\r\n250 XSOKKEL-STORE 0123abcd\r\n"),
        "{}",
        r.out
    );
}

#[test]
fn every_command_in_every_state() {
    // (writes, expected reply codes after the greeting)
    let cases: &[(&[u8], &[u16])] = &[
        // Before HELO/EHLO
        (b"MAIL FROM:<a@x.test>\r\n", &[503]),
        (b"RCPT TO:<a@x.test>\r\n", &[503]),
        (b"DATA\r\n", &[503]),
        (b"BDAT 0 LAST\r\n", &[503]),
        (
            b"RSET\r\nNOOP\r\nVRFY bob\r\nHELP\r\n",
            &[250, 250, 252, 214],
        ),
        (b"QUIT\r\n", &[221]),
        // HELO / EHLO arguments
        (b"HELO\r\n", &[501]),
        (b"EHLO\r\n", &[501]),
        (b"HELO old.client\r\n", &[250]),
        (b"ehlo lower.case\r\n", &[250]),
        // Transaction order
        (b"EHLO c\r\nRCPT TO:<b@y.test>\r\n", &[250, 503]),
        (
            b"EHLO c\r\nMAIL FROM:<a@x.test>\r\nDATA\r\n",
            &[250, 250, 503],
        ),
        (
            b"EHLO c\r\nMAIL FROM:<a@x.test>\r\nMAIL FROM:<a@x.test>\r\n",
            &[250, 250, 503],
        ),
        (
            b"EHLO c\r\nMAIL FROM:<a@x.test>\r\nRSET\r\nRCPT TO:<b@y.test>\r\n",
            &[250, 250, 250, 503],
        ),
        (
            b"EHLO c\r\nMAIL FROM:<a@x.test>\r\nEHLO c\r\nRCPT TO:<b@y.test>\r\n",
            &[250, 250, 250, 503],
        ),
        // Arguments
        (b"EHLO c\r\nMAIL FROM:a@x.test\r\n", &[250, 501]),
        (b"EHLO c\r\nMAIL TO:<a@x.test>\r\n", &[250, 501]),
        (b"EHLO c\r\nMAIL FROM:<a@x.test>XYZ\r\n", &[250, 501]),
        (b"EHLO c\r\nMAIL FROM: <a@x.test>\r\n", &[250, 250]),
        (b"EHLO c\r\nMAIL FROM:<>\r\n", &[250, 250]),
        (
            b"EHLO c\r\nMAIL FROM:<a@x.test> SIZE=100 BODY=8BITMIME\r\n",
            &[250, 250],
        ),
        (b"EHLO c\r\nMAIL FROM:<a@x.test> SIZE=abc\r\n", &[250, 501]),
        (
            b"EHLO c\r\nMAIL FROM:<a@x.test> BODY=BINARYMIME\r\n",
            &[250, 501],
        ),
        (b"EHLO c\r\nMAIL FROM:<a@x.test> FOO=BAR\r\n", &[250, 555]),
        (b"HELO c\r\nMAIL FROM:<a@x.test> SIZE=10\r\n", &[250, 555]),
        (b"EHLO c\r\nMAIL FROM:<no-at-sign>\r\n", &[250, 501]),
        (
            b"EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<>\r\n",
            &[250, 250, 501],
        ),
        (
            b"EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<Postmaster>\r\n",
            &[250, 250, 250],
        ),
        (
            b"EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<@relay.test:b@y.test>\r\n",
            &[250, 250, 250],
        ),
        (
            b"EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test> NOTIFY=NEVER\r\n",
            &[250, 250, 555],
        ),
        (
            b"EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<\"john doe\"@y.test>\r\n",
            &[250, 250, 250],
        ),
        (
            b"EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b..c@y.test>\r\n",
            &[250, 250, 501],
        ),
        (
            b"EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@-y.test>\r\n",
            &[250, 250, 501],
        ),
        (
            b"EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@[127.0.0.1]>\r\n",
            &[250, 250, 250],
        ),
        (
            b"EHLO c\r\nDATA x\r\nRSET x\r\nVRFY\r\n",
            &[250, 501, 501, 501],
        ),
        // SMTPUTF8
        ("EHLO c\r\nMAIL FROM:<å@x.test>\r\n".as_bytes(), &[250, 553]),
        (
            "EHLO c\r\nMAIL FROM:<å@x.test> SMTPUTF8\r\nRCPT TO:<ø@y.test>\r\n".as_bytes(),
            &[250, 250, 250],
        ),
        // Unknown and unimplemented
        (b"FOO\r\n", &[500]),
        (b"\r\n", &[500]),
        (b"EXPN list\r\nSTARTTLS\r\n", &[502, 502]),
        (b"NOOP\n", &[500]),
        (b"NOOP \xff\r\n", &[500]),
    ];
    for (writes, want) in cases {
        let r = run(&[writes]);
        let got = codes(&r.out);
        assert_eq!(
            &got[1..],
            *want,
            "for {:?}:\n{}",
            String::from_utf8_lossy(writes),
            r.out
        );
    }
}

#[test]
fn size_declared_over_the_limit_is_refused_at_mail() {
    let config = SessionConfig {
        max_message_size: 1000,
        ..SessionConfig::default()
    };
    let r = run_with(
        config,
        &[b"EHLO c\r\nMAIL FROM:<a@x.test> SIZE=1001\r\nMAIL FROM:<a@x.test> SIZE=1000\r\n"],
    );
    assert_eq!(&codes(&r.out)[1..], &[250, 552, 250]);
    assert!(r.out.contains("552 5.3.4"), "{}", r.out);
}

#[test]
fn a_pipelined_transaction_gets_every_reply_in_order() {
    let r = run(&[
        b"EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\nDATA\r\n",
        b"Subject: hi\r\n\r\nbody\r\n.\r\nMAIL FROM:<>\r\nRCPT TO:<d@y.test>\r\nDATA\r\n",
        b"second\r\n.\r\nQUIT\r\n",
    ]);
    assert_eq!(
        codes(&r.out),
        [220, 250, 250, 250, 250, 354, 250, 250, 250, 354, 250, 221]
    );
    assert!(r.out.contains("250 2.0.0 Ok: queued as 1\r\n"));
    assert!(r.out.contains("250 2.0.0 Ok: queued as 2\r\n"));
    assert!(r.closed);
    assert_eq!(r.messages.len(), 2);
    let first = &r.messages[0];
    assert_eq!(first.mail_from, "a@x.test");
    assert_eq!(first.rcpt_to, ["b@y.test", "c@y.test"]);
    assert_eq!(first.helo, "c");
    assert_eq!(first.data, b"Subject: hi\r\n\r\nbody\r\n");
    assert_eq!(r.messages[1].mail_from, "");
    assert_eq!(r.messages[1].data, b"second\r\n");
}

#[test]
fn dot_unstuffing_and_the_end_of_data_across_every_split() {
    let stream: &[u8] = b"EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n\
        ..leading dot\r\n.\r\n\
        ...two\r\nmiddle . dot\r\n.x\r\n\r\n.\r\nNOOP\r\n";
    let want_data: &[u8] = b".leading dot\r\n";
    for cut in 0..stream.len() {
        let r = run(&[&stream[..cut], &stream[cut..]]);
        assert_eq!(r.messages.len(), 1, "cut at {cut}");
        assert_eq!(r.messages[0].data, want_data, "cut at {cut}");
    }
    // A message that ends with a line holding a lone dot after unstuffing.
    let r = run(&[ENVELOPE, b"DATA\r\n..\r\n...\r\n.\r\n"]);
    assert_eq!(r.messages[0].data, b".\r\n..\r\n");
    // An empty message.
    let r = run(&[ENVELOPE, b"DATA\r\n.\r\n"]);
    assert_eq!(r.messages[0].data, b"");
}

#[test]
fn byte_by_byte_input_gives_the_same_result() {
    let stream: &[u8] = b"EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\nline\r\n..dot\r\n.\r\nQUIT\r\n";
    let whole = run(&[stream]);
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    let split = run(&bytes);
    assert_eq!(whole.out, split.out);
    assert_eq!(whole.messages, split.messages);
    assert_eq!(split.messages[0].data, b"line\r\n.dot\r\n");
}

/// Every smuggling sequence: none ends DATA, none starts a second transaction, and a
/// command smuggled after it is never executed.
#[test]
fn smuggling_sequences_are_content() {
    let sequences: &[&[u8]] = &[
        b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r", b"\r.\r\n", b"\r\n.\r",
    ];
    for seq in sequences {
        let mut content = b"Subject: smuggle\r\n\r\nbody".to_vec();
        content.extend_from_slice(seq);
        content.extend_from_slice(
            b"MAIL FROM:<evil@x.test>\r\nRCPT TO:<victim@y.test>\r\nDATA\r\nsmuggled\r\n",
        );
        let mut stream = ENVELOPE.to_vec();
        stream.extend_from_slice(b"DATA\r\n");
        stream.extend_from_slice(&content);
        stream.extend_from_slice(b".\r\nQUIT\r\n");
        let r = run(&[&stream]);
        let shown = String::from_utf8_lossy(seq);
        assert_eq!(
            r.messages.len(),
            1,
            "{shown:?} ended DATA early:\n{}",
            r.out
        );
        assert_eq!(
            codes(&r.out),
            [220, 250, 250, 250, 354, 250, 221],
            "{shown:?}:\n{}",
            r.out
        );
        let data = &r.messages[0].data;
        assert!(
            data.windows(b"MAIL FROM:<evil".len())
                .any(|w| w == b"MAIL FROM:<evil"),
            "{shown:?}: the smuggled command must stay content"
        );
        let bare_lf = seq.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r') || seq[0] == b'\n';
        assert_eq!(r.messages[0].bare_lf, bare_lf, "{shown:?}");
    }
}

#[test]
fn bare_lf_reject_refuses_and_runs_nothing_pipelined_after() {
    let config = SessionConfig {
        bare_lf: BareLf::Reject,
        ..SessionConfig::default()
    };
    let mut stream = ENVELOPE.to_vec();
    stream.extend_from_slice(b"DATA\r\nSubject: x\n\nbody\r\n.\r\nMAIL FROM:<next@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\nsecond\r\n.\r\n");
    let r = run_with(config.clone(), &[&stream]);
    assert!(r.messages.is_empty());
    assert!(r.closed);
    assert_eq!(codes(&r.out), [220, 250, 250, 250, 354, 550]);
    assert!(r.out.contains("550 5.5.2"), "{}", r.out);
    // A clean message passes in reject mode.
    let r = run_with(config, &[ENVELOPE, b"DATA\r\nok\r\n.\r\n"]);
    assert_eq!(r.messages.len(), 1);
    assert!(!r.messages[0].bare_lf);
}

#[test]
fn bare_lf_accept_stores_and_records_it() {
    let r = run(&[ENVELOPE, b"DATA\r\nSubject: x\n\nbody\r\n.\r\n"]);
    assert_eq!(r.messages.len(), 1);
    assert!(r.messages[0].bare_lf);
    assert_eq!(r.messages[0].data, b"Subject: x\n\nbody\r\n");
    // A CRLF split over two writes is not a bare LF.
    let r = run(&[ENVELOPE, b"DATA\r\nline\r", b"\nnext\r\n.\r\n"]);
    assert!(!r.messages[0].bare_lf);
}

#[test]
fn message_size_limit_exact_and_one_over() {
    let config = SessionConfig {
        max_message_size: 10,
        ..SessionConfig::default()
    };
    let exact = run_with(config.clone(), &[ENVELOPE, b"DATA\r\n12345678\r\n.\r\n"]);
    assert_eq!(exact.messages.len(), 1);
    assert_eq!(exact.messages[0].data.len(), 10);
    let over = run_with(
        config.clone(),
        &[ENVELOPE, b"DATA\r\n123456789\r\n.\r\nNOOP\r\n"],
    );
    assert!(over.messages.is_empty());
    assert_eq!(&codes(&over.out)[4..], [354, 552, 250]);
    // BDAT: the same limit, refused before the chunk is kept.
    let bdat = run_with(config.clone(), &[ENVELOPE, b"BDAT 10 LAST\r\n0123456789"]);
    assert_eq!(bdat.messages.len(), 1);
    let bdat = run_with(
        config,
        &[
            ENVELOPE,
            b"BDAT 11 LAST\r\n0123456789ANOOP\r\nBDAT 1 LAST\r\nx",
        ],
    );
    assert!(bdat.messages.is_empty());
    assert_eq!(&codes(&bdat.out)[4..], [552, 250, 503]);
}

#[test]
fn recipients_limit() {
    let config = SessionConfig {
        max_recipients: 100,
        ..SessionConfig::default()
    };
    let mut stream = b"EHLO c\r\nMAIL FROM:<a@x.test>\r\n".to_vec();
    for i in 0..102 {
        stream.extend_from_slice(format!("RCPT TO:<r{i}@y.test>\r\n").as_bytes());
    }
    stream.extend_from_slice(b"DATA\r\nx\r\n.\r\n");
    let r = run_with(config, &[&stream]);
    let codes = codes(&r.out);
    assert_eq!(codes.iter().filter(|&&c| c == 452).count(), 2);
    assert!(r.out.contains("452 4.5.3"));
    assert_eq!(r.messages[0].rcpt_to.len(), 100);
}

#[test]
fn bdat_chunks_are_joined_and_replied_per_chunk() {
    let r = run(&[
        ENVELOPE,
        b"BDAT 5\r\nhel",
        b"lo",
        b"BDAT 7\r\n, world",
        b"BDAT 0 LAST\r\nQUIT\r\n",
    ]);
    assert_eq!(codes(&r.out), [220, 250, 250, 250, 250, 250, 250, 221]);
    assert!(r.out.contains("250 2.0.0 5 octets received"), "{}", r.out);
    assert_eq!(r.messages[0].data, b"hello, world");
    // BDAT content is raw: no dot-unstuffing, and CRLF.CRLF does not end it.
    let r = run(&[ENVELOPE, b"BDAT 9 LAST\r\n..\r\n.\r\n..QUIT\r\n"]);
    assert_eq!(r.messages[0].data, b"..\r\n.\r\n..");
    assert!(r.closed);
    // DATA after BDAT in one transaction is out of sequence; BDAT without MAIL is
    // refused after its bytes are read, so they are not taken for commands.
    let r = run(&[ENVELOPE, b"BDAT 2\r\nabDATA\r\n"]);
    assert_eq!(&codes(&r.out)[4..], [250, 503]);
    let r = run(&[b"EHLO c\r\nBDAT 6\r\nQUIT\r\nNOOP\r\n"]);
    assert_eq!(&codes(&r.out)[1..], [250, 503, 250]);
    assert!(!r.closed);
    let r = run(&[b"EHLO c\r\nBDAT x\r\nBDAT 1 FIRST\r\n"]);
    assert_eq!(&codes(&r.out)[1..], [250, 501, 501]);
}

#[test]
fn overlong_command_lines_are_refused_and_skipped() {
    let config = SessionConfig {
        max_line_length: 64,
        ..SessionConfig::default()
    };
    let long = [b"NOOP ".as_slice(), &[b'a'; 200], b"\r\nNOOP\r\n"].concat();
    let r = run_with(config.clone(), &[&long]);
    assert_eq!(&codes(&r.out)[1..], [500, 250]);
    assert!(r.out.contains("500 5.5.6"), "{}", r.out);
    // The same, arriving in small pieces.
    let pieces: Vec<&[u8]> = long.chunks(7).collect();
    let r = run_with(config.clone(), &pieces);
    assert_eq!(&codes(&r.out)[1..], [500, 250]);
    // Exactly at the limit is fine.
    let exact = [b"NOOP ".as_slice(), &[b'a'; 57], b"\r\n"].concat();
    assert_eq!(exact.len(), 64);
    let r = run_with(config, &[&exact]);
    assert_eq!(&codes(&r.out)[1..], [250]);
}

#[test]
fn too_many_errors_close_with_421() {
    let config = SessionConfig {
        max_errors: 3,
        ..SessionConfig::default()
    };
    let r = run_with(config, &[b"FOO\r\nBAR\r\nBAZ\r\nNOOP\r\n"]);
    assert_eq!(&codes(&r.out)[1..], [500, 500, 500, 421]);
    assert!(r.closed);
    assert!(
        r.out
            .ends_with("421 4.7.0 localhost Too many errors, closing connection\r\n")
    );
}

#[test]
fn failed_storage_answers_451_and_the_session_goes_on() {
    let mut session = Session::new(Arc::new(SessionConfig::default()));
    let mut out = Vec::new();
    let input = [ENVELOPE, b"DATA\r\nx\r\n.\r\nNOOP\r\n"].concat();
    let (consumed, step) = session.advance(&input, &mut out);
    assert!(matches!(step, Step::Deliver(_)));
    session.delivered(Delivery::Failed, &mut out);
    let (_, step) = session.advance(&input[consumed..], &mut out);
    assert_eq!(step, Step::NeedMore);
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("451 4.3.0"), "{out}");
    assert!(out.ends_with("250 2.0.0 Ok\r\n"), "{out}");
}

#[test]
fn timeout_and_shutdown_replies() {
    let mut session = Session::new(Arc::new(SessionConfig::default()));
    let mut out = Vec::new();
    session.timed_out(&mut out);
    assert!(session.is_closed());
    assert_eq!(
        out,
        b"421 4.4.2 localhost Error: timeout exceeded, closing connection\r\n"
    );
    let mut session = Session::new(Arc::new(SessionConfig::default()));
    let mut out = Vec::new();
    session.shutting_down(&mut out);
    assert_eq!(
        out,
        b"421 4.3.2 localhost Service shutting down, closing connection\r\n"
    );
    assert_eq!(session.advance(b"NOOP\r\n", &mut out), (6, Step::Close));
}

#[test]
fn receiving_content_is_reported_for_the_data_timeout() {
    let mut session = Session::new(Arc::new(SessionConfig::default()));
    let mut out = Vec::new();
    let (_, step) = session.advance(&[ENVELOPE, b"DATA\r\npartial"].concat(), &mut out);
    assert_eq!(step, Step::NeedMore);
    assert!(session.receiving_content());
}

fn tls_config() -> SessionConfig {
    SessionConfig {
        starttls: true,
        auth: true,
        ..SessionConfig::default()
    }
}

/// base64 of a PLAIN message for `user` and `password`.
fn plain(user: &str, password: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"))
}

fn b64(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[test]
fn starttls_and_auth_are_advertised_only_when_they_can_be_used() {
    let r = run_with(tls_config(), &[EHLO, b"STARTTLS\r\n", EHLO]);
    let (before, after) = r.out.split_once("<TLS>").unwrap();
    assert!(before.contains("250 STARTTLS\r\n"), "{before}");
    assert!(
        !before.contains("AUTH"),
        "AUTH offered before TLS: {before}"
    );
    assert!(
        before.contains("220 2.0.0 Ready to start TLS\r\n"),
        "{before}"
    );
    assert!(!after.contains("STARTTLS"), "{after}");
    assert!(after.contains("250 AUTH PLAIN LOGIN\r\n"), "{after}");

    let insecure = SessionConfig {
        allow_insecure_auth: true,
        ..tls_config()
    };
    assert!(run_with(insecure, &[EHLO]).out.contains("AUTH PLAIN LOGIN"));
    let plain_server = run(&[EHLO]).out;
    assert!(!plain_server.contains("STARTTLS") && !plain_server.contains("AUTH"));
}

#[test]
fn commands_pipelined_behind_starttls_are_never_executed() {
    // One write: STARTTLS and a MAIL the attacker hopes runs inside the TLS session.
    let r = run_with(
        tls_config(),
        &[
            EHLO,
            b"STARTTLS\r\nMAIL FROM:<evil@x.test>\r\n",
            b"RCPT TO:<b@y.test>\r\n",
        ],
    );
    let after = r.out.split_once("<TLS>").unwrap().1;
    // The RCPT finds no transaction (the MAIL was discarded) and no EHLO yet.
    assert_eq!(codes(after), vec![503], "{after}");

    // Defence in depth: a shell that forgot to discard still gets nothing executed.
    let mut session = Session::new(Arc::new(tls_config()));
    let mut out = Vec::new();
    let input = b"EHLO c\r\nSTARTTLS\r\nMAIL FROM:<evil@x.test>\r\n";
    let (consumed, step) = session.advance(input, &mut out);
    assert_eq!(step, Step::StartTls);
    let rest = &input[consumed..];
    assert_eq!(rest, b"MAIL FROM:<evil@x.test>\r\n");
    out.clear();
    assert_eq!(
        session.advance(rest, &mut out),
        (rest.len(), Step::NeedMore)
    );
    assert!(out.is_empty());
    session.tls_started();
    session.advance(b"EHLO c\r\nRCPT TO:<b@y.test>\r\n", &mut out);
    assert!(String::from_utf8_lossy(&out).ends_with("503 5.5.1 Need MAIL before RCPT\r\n"));
}

#[test]
fn starttls_refusals() {
    let cases: &[(SessionConfig, &[u8], &str)] = &[
        (SessionConfig::default(), b"STARTTLS\r\n", "502 5.5.1"),
        (tls_config(), b"STARTTLS now\r\n", "501 5.5.4"),
    ];
    for (config, command, want) in cases {
        let r = run_with(config.clone(), &[EHLO, command]);
        assert!(r.out.lines().last().unwrap().starts_with(want), "{}", r.out);
    }
    let r = run_with(tls_config(), &[EHLO, b"STARTTLS\r\n", b"STARTTLS\r\n"]);
    assert!(
        r.out.ends_with("503 5.5.1 TLS is already active\r\n"),
        "{}",
        r.out
    );
}

#[test]
fn require_tls_refuses_mail_until_starttls() {
    let config = SessionConfig {
        require_tls: true,
        ..tls_config()
    };
    let r = run_with(config, &[ENVELOPE, b"STARTTLS\r\n", ENVELOPE]);
    let (before, after) = r.out.split_once("<TLS>").unwrap();
    assert!(
        before.contains("530 5.7.0 Must issue a STARTTLS command first"),
        "{before}"
    );
    assert_eq!(codes(after), vec![250, 250, 250], "{after}");
}

fn after_tls(writes: &[&[u8]]) -> Run {
    let mut all: Vec<&[u8]> = vec![b"STARTTLS\r\n", EHLO];
    all.extend_from_slice(writes);
    let mut r = run_with(tls_config(), &all);
    r.out = r.out.split_once("<TLS>").unwrap().1.to_string();
    r
}

#[test]
fn auth_plain_and_login_in_every_form() {
    let ok_plain = format!("AUTH PLAIN {}\r\n", plain("user", "secret"));
    let r = after_tls(&[
        ok_plain.as_bytes(),
        b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\nhi\r\n.\r\n",
    ]);
    assert!(
        r.out.contains("235 2.7.0 Authentication successful\r\n"),
        "{}",
        r.out
    );
    assert_eq!(r.messages[0].auth_user.as_deref(), Some("user"));

    // PLAIN with the credentials after a 334 continuation.
    let cont = format!("{}\r\n", plain("user", "secret"));
    let r = after_tls(&[b"AUTH PLAIN\r\n", cont.as_bytes()]);
    assert!(
        r.out
            .ends_with("334 \r\n235 2.7.0 Authentication successful\r\n"),
        "{}",
        r.out
    );

    // LOGIN: user name, then password, each after its own 334.
    let (user, password) = (
        format!("{}\r\n", b64("user")),
        format!("{}\r\n", b64("secret")),
    );
    let r = after_tls(&[b"auth login\r\n", user.as_bytes(), password.as_bytes()]);
    assert!(
        r.out.ends_with(
            "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n235 2.7.0 Authentication successful\r\n"
        ),
        "{}",
        r.out
    );
    // LOGIN with the user name as initial response.
    let first = format!("AUTH LOGIN {}\r\n", b64("user"));
    let r = after_tls(&[first.as_bytes(), password.as_bytes()]);
    assert!(
        r.out
            .ends_with("334 UGFzc3dvcmQ6\r\n235 2.7.0 Authentication successful\r\n"),
        "{}",
        r.out
    );

    // No envelope user without AUTH.
    let r = after_tls(&[b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\nhi\r\n.\r\n"]);
    assert_eq!(r.messages[0].auth_user, None);
}

#[test]
fn auth_refusals_and_mistakes() {
    let cancel: &[&[u8]] = &[b"AUTH PLAIN\r\n", b"*\r\n"];
    let r = after_tls(cancel);
    assert!(
        r.out.ends_with("501 5.7.0 Authentication cancelled\r\n"),
        "{}",
        r.out
    );
    let r = after_tls(&[b"AUTH PLAIN !!notbase64\r\n"]);
    assert!(
        r.out
            .ends_with("501 5.5.2 Cannot decode: the credentials are not valid base64\r\n"),
        "{}",
        r.out
    );
    let r = after_tls(&[b"AUTH CRAM-MD5\r\n"]);
    assert!(
        r.out
            .ends_with("504 5.5.4 Unrecognized authentication type; use PLAIN or LOGIN\r\n"),
        "{}",
        r.out
    );
    let ok = format!("AUTH PLAIN {}\r\n", plain("user", "secret"));
    let r = after_tls(&[ok.as_bytes(), ok.as_bytes()]);
    assert!(
        r.out.ends_with("503 5.5.1 Already authenticated\r\n"),
        "{}",
        r.out
    );
    let r = after_tls(&[b"MAIL FROM:<a@x.test>\r\n", ok.as_bytes()]);
    assert!(
        r.out
            .ends_with("503 5.5.1 AUTH is not allowed during a mail transaction\r\n"),
        "{}",
        r.out
    );

    // Before TLS: refused as RFC 4954 says, without reading a password.
    let r = run_with(tls_config(), &[EHLO, ok.as_bytes()]);
    assert!(r.out.ends_with("538 5.7.11 Encryption required for requested authentication mechanism; use STARTTLS first\r\n"), "{}", r.out);
    // No credentials configured at all.
    let r = run(&[EHLO, ok.as_bytes()]);
    assert!(
        r.out
            .ends_with("502 5.5.1 AUTH is not enabled on this server\r\n"),
        "{}",
        r.out
    );
}

#[test]
fn wrong_passwords_get_535_and_too_many_close_the_session() {
    let wrong = format!("AUTH PLAIN {}\r\n", plain("user", "guess"));
    let r = after_tls(&[wrong.as_bytes(), wrong.as_bytes()]);
    assert_eq!(codes(&r.out), vec![250, 535, 535], "{}", r.out);
    assert!(!r.closed);
    let r = after_tls(&[
        wrong.as_bytes(),
        wrong.as_bytes(),
        wrong.as_bytes(),
        b"NOOP\r\n",
    ]);
    assert_eq!(codes(&r.out), vec![250, 535, 535, 535, 421], "{}", r.out);
    assert!(r.closed);
    // A right password after a wrong one still works.
    let right = format!("AUTH PLAIN {}\r\n", plain("user", "secret"));
    let r = after_tls(&[wrong.as_bytes(), right.as_bytes()]);
    assert_eq!(codes(&r.out), vec![250, 535, 235], "{}", r.out);
}

#[test]
fn implicit_tls_sessions_offer_auth_and_not_starttls() {
    let mut session = Session::new_tls(Arc::new(tls_config()));
    let mut out = Vec::new();
    session.advance(EHLO, &mut out);
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains("AUTH PLAIN LOGIN") && !out.contains("STARTTLS"),
        "{out}"
    );
}

// ---------------------------------------------------------------------------------------
// Issue #11: backpressure, whole-line deadlines, the budget for messages in flight

/// Feeds `input` until the session wants more, "flushing" (discarding) the output
/// whenever it asks; returns the reply codes written and how many flushes it asked.
fn advance_all(session: &mut Session, input: &[u8]) -> (Vec<u16>, usize) {
    let mut out = Vec::new();
    let mut written = Vec::new();
    let mut pos = 0;
    let mut flushes = 0;
    loop {
        let (consumed, step) = session.advance(&input[pos..], &mut out);
        pos += consumed;
        match step {
            Step::Flush => {
                assert!(
                    out.len() < sokkel_net::server::PENDING_OUTPUT_LIMIT + 1024,
                    "at most one reply past the bound: {}",
                    out.len()
                );
                flushes += 1;
                written.append(&mut out);
            }
            Step::NeedMore => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    written.append(&mut out);
    (codes(&String::from_utf8_lossy(&written)), flushes)
}

#[test]
fn pipelined_commands_wait_while_the_replies_are_backed_up() {
    // Issue #11: a client that pipelines commands and never reads the replies must
    // not make the session buffer a reply for every command it sent.
    let mut session = Session::new(Arc::new(SessionConfig::default()));
    let input = b"HELP\r\n".repeat(5000);
    let mut out = Vec::new();
    let (consumed, step) = session.advance(&input, &mut out);
    assert_eq!(step, Step::Flush);
    assert!(consumed < input.len(), "it stopped consuming commands");
    assert!(out.len() >= sokkel_net::server::PENDING_OUTPUT_LIMIT);
    // Once the client has read them, the rest is answered: every command once.
    let (codes, flushes) = advance_all(&mut session, &input[consumed..]);
    assert!(flushes >= 5, "{flushes} flushes");
    let answered = codes.len() + out.iter().filter(|&&b| b == b'\n').count();
    assert_eq!(answered, 5000);
}

#[test]
fn lines_ended_moves_only_when_a_whole_line_has_come() {
    // Issue #11: the shell's command deadline restarts when this count moves, so a
    // line trickled a byte at a time gets no more time than a whole one.
    let mut session = Session::new(Arc::new(SessionConfig {
        max_line_length: 512,
        ..SessionConfig::default()
    }));
    let mut out = Vec::new();
    let mut buffer = Vec::new();
    for &byte in b"NOOP\r" {
        buffer.push(byte);
        let (consumed, _) = session.advance(&buffer, &mut out);
        buffer.drain(..consumed);
        assert_eq!(session.lines_ended(), 0);
    }
    buffer.push(b'\n');
    session.advance(&buffer, &mut out);
    assert_eq!(session.lines_ended(), 1);
    // An overlong line is consumed as it comes but has not ended until its LF.
    for _ in 0..10 {
        session.advance(&[b'x'; 100], &mut out);
    }
    assert_eq!(session.lines_ended(), 1);
    session.advance(b"\r\n", &mut out);
    assert_eq!(session.lines_ended(), 2);
}

#[test]
fn transferring_covers_data_and_every_bdat_chunk_up_to_last() {
    // Issue #11: the shell's deadline for a whole message runs while this is true.
    let mut session = Session::new(Arc::new(SessionConfig::default()));
    let mut out = Vec::new();
    session.advance(ENVELOPE, &mut out);
    assert!(!session.transferring());
    session.advance(b"BDAT 3\r\nabc", &mut out);
    assert!(session.transferring(), "between two chunks");
    let (_, step) = session.advance(b"BDAT 1 LAST\r\nd", &mut out);
    assert!(matches!(step, Step::Deliver(_)));
    session.delivered(Delivery::Stored("1".into()), &mut out);
    assert!(!session.transferring());
    session.advance(
        b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\nx",
        &mut out,
    );
    assert!(session.transferring());
}

#[test]
fn data_and_bdat_get_452_4_3_1_while_memory_is_low_and_the_session_goes_on() {
    // Issue #11: a new message when the budget for messages in flight is spent.
    let mut session = Session::new(Arc::new(SessionConfig::default()));
    let mut out = Vec::new();
    session.advance(ENVELOPE, &mut out);
    session.set_memory_low(true);
    out.clear();
    session.advance(b"DATA\r\n", &mut out);
    assert_eq!(
        String::from_utf8_lossy(&out),
        "452 4.3.1 Insufficient system storage: too many messages in flight; try again later\r\n"
    );
    // BDAT: the chunk is read and dropped, then refused; the LAST chunk too.
    out.clear();
    session.advance(b"BDAT 5\r\nhello", &mut out);
    session.set_memory_low(false);
    let (_, step) = session.advance(b"BDAT 5 LAST\r\nworld", &mut out);
    assert_eq!(step, Step::NeedMore, "nothing with a hole is delivered");
    assert_eq!(codes(&String::from_utf8_lossy(&out)), [452, 452]);
    // Memory is back: the same session delivers the next message.
    out.clear();
    let (_, step) = session.advance(
        b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\nhi\r\n.\r\n",
        &mut out,
    );
    assert!(matches!(step, Step::Deliver(m) if m.data == b"hi\r\n"));
}

#[test]
fn a_message_that_outgrows_the_budget_is_dropped_and_refused_at_its_end() {
    // Issue #11: the shell could not reserve what the message holds.
    let mut session = Session::new(Arc::new(SessionConfig::default()));
    let mut out = Vec::new();
    session.advance(ENVELOPE, &mut out);
    session.advance(b"DATA\r\n", &mut out);
    session.advance(&b"0123456789abcde\r\n".repeat(1000), &mut out);
    assert!(session.content_held() >= 17_000);
    session.out_of_memory();
    assert_eq!(
        session.content_held(),
        0,
        "the content is given back at once"
    );
    session.advance(&b"more\r\n".repeat(100), &mut out);
    assert_eq!(session.content_held(), 0, "and what follows is not kept");
    out.clear();
    let (_, step) = session.advance(b".\r\nNOOP\r\n", &mut out);
    assert_eq!(step, Step::NeedMore);
    assert_eq!(codes(&String::from_utf8_lossy(&out)), [452, 250]);
}

#[test]
fn a_large_message_is_counted_by_the_bytes_it_holds() {
    // Issue #11: past 1 MiB the content gets one buffer of its own mapping (freed
    // straight back to the system); the budget counts the bytes written into it,
    // not the room reserved.
    let mut session = Session::new(Arc::new(SessionConfig::default()));
    let mut out = Vec::new();
    session.advance(ENVELOPE, &mut out);
    session.advance(b"DATA\r\n", &mut out);
    let line = [b"x".repeat(1022), b"\r\n".to_vec()].concat();
    for _ in 0..2048 {
        session.advance(&line, &mut out);
    }
    assert_eq!(session.content_held(), 2 << 20);
    let (_, step) = session.advance(b".\r\n", &mut out);
    assert!(matches!(step, Step::Deliver(m) if m.data.len() == 2 << 20));
    assert_eq!(session.content_held(), 0);
}

// Chaos (issue #14): faults on purpose, drawn from a seeded generator.

fn chaos_config(specs: &[&str], seed: u64) -> SessionConfig {
    let triggers = sokkel_net::chaos::Triggers::parse(specs).expect("valid chaos settings");
    SessionConfig {
        chaos: Some(Arc::new(Chaos::new(triggers, seed))),
        ..SessionConfig::default()
    }
}

const MESSAGE: &[u8] = b"DATA\r\nSubject: x\r\n\r\nhello\r\n.\r\n";

#[test]
fn each_chaos_trigger_at_100_refuses_its_command_with_the_right_enhanced_code() {
    let sender = run_with(chaos_config(&["sender:451:100"], 1), &[ENVELOPE]);
    let lines: Vec<&str> = sender.out.lines().collect();
    assert!(
        lines.contains(&"451 4.3.0 MAIL FROM refused by a chaos trigger (a simulated failure)"),
        "{}",
        sender.out
    );
    // No transaction was opened: the RCPT behind it is out of order.
    assert_eq!(codes(&sender.out), [220, 250, 451, 503]);
    assert_eq!(sender.refusals, 2);

    let recipient = run_with(chaos_config(&["recipient:550:100"], 1), &[ENVELOPE]);
    assert_eq!(codes(&recipient.out), [220, 250, 250, 550]);
    assert!(
        recipient
            .out
            .ends_with("550 5.1.1 RCPT TO refused by a chaos trigger (a simulated failure)\r\n")
    );

    let config = SessionConfig {
        allow_insecure_auth: true,
        ..tls_config()
    };
    let config = SessionConfig {
        chaos: chaos_config(&["auth:454:100"], 1).chaos,
        ..config
    };
    let login = format!("AUTH PLAIN {}\r\n", plain("user", "secret"));
    let auth = run_with(
        config,
        &[
            EHLO,
            login.as_bytes(),
            login.as_bytes(),
            login.as_bytes(),
            login.as_bytes(),
        ],
    );
    // Not the client's failure: no 535, and no 421 after three attempts.
    assert_eq!(
        codes(&auth.out),
        [220, 250, 454, 454, 454, 454],
        "{}",
        auth.out
    );
    assert!(
        auth.out
            .contains("454 4.7.0 AUTH refused by a chaos trigger")
    );
    assert!(!auth.closed);
}

#[test]
fn chaos_triggers_at_0_change_nothing() {
    let specs = [
        "sender:451:0",
        "recipient:550:0",
        "auth:535:0",
        "disconnect:connect:0",
        "disconnect:content:0",
    ];
    let with = run_with(chaos_config(&specs, 1), &[ENVELOPE, MESSAGE, b"QUIT\r\n"]);
    let without = run(&[ENVELOPE, MESSAGE, b"QUIT\r\n"]);
    assert_eq!(with.out, without.out);
    assert_eq!(with.messages.len(), 1);
}

#[test]
fn a_chaos_421_closes_the_session() {
    let r = run_with(
        chaos_config(&["recipient:421:100"], 1),
        &[ENVELOPE, MESSAGE],
    );
    assert_eq!(codes(&r.out), [220, 250, 250, 421]);
    assert!(
        r.out
            .ends_with("421 4.3.2 RCPT TO refused by a chaos trigger (a simulated failure)\r\n")
    );
    assert!(r.closed);
}

#[test]
fn chaos_refusals_are_not_protocol_errors() {
    let config = SessionConfig {
        max_errors: 2,
        ..chaos_config(&["sender:550:100"], 1)
    };
    let mail = b"MAIL FROM:<a@x.test>\r\n".repeat(5);
    let r = run_with(config, &[EHLO, &mail]);
    assert_eq!(codes(&r.out), [220, 250, 550, 550, 550, 550, 550]);
    assert!(r.out.contains("550 5.7.1 MAIL FROM refused"));
    assert!(!r.closed);
}

/// Hanging up at each stage: the session ends without the reply the client
/// waits for, and a message whose content was dropped is not delivered.
#[test]
fn chaos_disconnect_hangs_up_at_its_stage_without_a_reply() {
    let writes: &[&[u8]] = &[ENVELOPE, MESSAGE, b"QUIT\r\n"];
    let cases: &[(&str, &[u16])] = &[
        ("disconnect:connect:100", &[]),
        ("disconnect:mail:100", &[220, 250]),
        ("disconnect:rcpt:100", &[220, 250, 250]),
        ("disconnect:data:100", &[220, 250, 250, 250]),
        ("disconnect:content:100", &[220, 250, 250, 250, 354]),
    ];
    for (spec, want) in cases {
        let r = run_with(chaos_config(&[spec], 1), writes);
        assert_eq!(codes(&r.out), *want, "{spec}:\n{}", r.out);
        assert!(r.closed, "{spec}");
        assert!(r.messages.is_empty(), "{spec}");
    }
    let bdat = run_with(
        chaos_config(&["disconnect:data:100"], 1),
        &[ENVELOPE, b"BDAT 5 LAST\r\nhello"],
    );
    assert_eq!(codes(&bdat.out), [220, 250, 250, 250]);
    assert!(bdat.closed && bdat.messages.is_empty());
}

/// `--chaos-seed`: the same seed gives the same faults to the same client.
#[test]
fn a_seeded_chaos_sequence_is_reproducible() {
    let rcpts = b"RCPT TO:<b@y.test>\r\n".repeat(40);
    let play = |seed| {
        let r = run_with(
            chaos_config(&["recipient:452:50"], seed),
            &[ENVELOPE, &rcpts],
        );
        codes(&r.out)
    };
    let first = play(42);
    assert_eq!(first, play(42));
    assert_ne!(first, play(43));
    let refused = first.iter().filter(|&&code| code == 452).count();
    assert!((5..37).contains(&refused), "{first:?}");
}
