//! `sokkel mail serve` as users meet it: the real binary on 127.0.0.1 port 0 with a store
//! in a temporary directory, spoken to in raw SMTP bytes over std sockets, its store read
//! back through `sokkel mail list | show | delete`. Also the course's own smtplib code,
//! and a crash test (SIGKILL mid-load) that checks every acknowledged message survives.
//!
//! Needs only Rust and python3. Interop with swaks and Postfix's smtp-source lives in
//! `mail_interop.rs`.

mod kit;

use std::net::TcpListener;
use std::thread;
use std::time::{Duration, Instant};

use kit::catcher::{ids, list_json, mail_cli};
use kit::crash::{SenderEnd, Senders, assert_all_kept, integrity_check};
use kit::process::{sigint, sigterm, sokkel_command, spawn_collected};
use kit::smtp::{
    Ended, HOST, Smtp, contains, dot_stuff, ehlo_reply, greeting, message, queued_id, show,
};
use kit::{Catcher, Finished, PROMPT, python3, sokkel};

const DEFAULT_SIZE: usize = 32 << 20;

/// Sends each command of a session and checks its one reply; returns the replies.
fn run_table(smtp: &mut Smtp, table: &[(&str, &[&str])]) -> Vec<Vec<String>> {
    table
        .iter()
        .map(|(send, want)| smtp.cmd(send, want))
        .collect()
}

/// The store ids in the `250 2.0.0 Ok: queued as ID` replies among `replies`.
fn queued_ids(replies: &[Vec<String>]) -> Vec<u64> {
    replies
        .iter()
        .filter(|r| r[0].starts_with("250 2.0.0 Ok: queued as "))
        .map(|r| queued_id(&r[0]))
        .collect()
}

/// `mail show ID --envelope`, as lines.
fn envelope(catcher: &Catcher, id: u64) -> Vec<String> {
    let text = catcher.envelope_text(&id.to_string());
    text.lines().map(str::to_owned).collect()
}

fn has_line(lines: &[String], want: &str) -> bool {
    lines.iter().any(|l| l == want)
}

// ---------------------------------------------------------------------------------------
// Every command in every state

#[test]
fn every_command_in_every_state_gets_its_exact_reply() {
    let catcher = Catcher::start();
    let ehlo = ehlo_reply("client.test", DEFAULT_SIZE);
    let ehlo: Vec<&str> = ehlo.iter().map(String::as_str).collect();
    let ehlo_again = ehlo_reply("again.test", DEFAULT_SIZE);
    let ehlo_again: Vec<&str> = ehlo_again.iter().map(String::as_str).collect();
    let bye = format!("221 2.0.0 {HOST} Bye");

    // Before any HELO/EHLO: no transaction can start, everything else answers.
    let before_hello: &[(&str, &[&str])] = &[
        ("MAIL FROM:<a@x.test>\r\n", &["503 5.5.1 *"]),
        ("RCPT TO:<b@y.test>\r\n", &["503 5.5.1 *"]),
        ("DATA\r\n", &["503 5.5.1 *"]),
        ("BDAT 4 LAST\r\nabcd", &["503 5.5.1 *"]),
        ("RSET\r\n", &["250 2.0.0 Ok"]),
        ("NOOP\r\n", &["250 2.0.0 Ok"]),
        ("NOOP with an argument\r\n", &["250 2.0.0 Ok"]),
        ("VRFY someone@x.test\r\n", &["252 2.5.0 *"]),
        ("VRFY\r\n", &["501 5.5.4 *"]),
        ("HELP\r\n", &["214 2.0.0 *"]),
        ("EXPN staff\r\n", &["502 5.5.1 *"]),
        ("STARTTLS\r\n", &["502 5.5.1 *"]),
        ("AUTH PLAIN\r\n", &["502 5.5.1 *"]),
        ("TURN\r\n", &["502 5.5.1 *"]),
        ("XYZZY\r\n", &["500 5.5.2 *"]),
        ("\r\n", &["500 5.5.2 *"]),
        ("NOOP\n", &["500 5.5.2 *"]),
        ("EHLO\r\n", &["501 5.5.4 *"]),
        ("HELO\r\n", &["501 5.5.4 *"]),
        ("QUIT\r\n", &[&bye]),
    ];
    let mut smtp = catcher.session();
    run_table(&mut smtp, before_hello);
    assert_eq!(
        smtp.ends_silently(PROMPT),
        Ended::Closed,
        "no close after QUIT"
    );

    // After EHLO: the transaction's order, bad arguments, RSET and EHLO mid-transaction,
    // the null sender, postmaster, SMTPUTF8 addresses.
    let after_ehlo: &[(&str, &[&str])] = &[
        ("EHLO client.test\r\n", &ehlo[..]),
        ("MAIL FROM:<a@x.test>\r\n", &["250 2.1.0 Ok"]),
        ("MAIL FROM:<a@x.test>\r\n", &["503 5.5.1 *"]),
        ("RCPT TO:<b@y.test>\r\n", &["250 2.1.5 Ok"]),
        ("RCPT TO:b@y.test\r\n", &["501 5.5.4 *"]),
        ("RCPT TO:<no-domain>\r\n", &["501 5.1.3 *"]),
        ("RCPT TO:<b@y.test> NOTIFY=NEVER\r\n", &["555 5.5.4 *"]),
        ("RCPT TO:<ø@y.test>\r\n", &["553 5.6.7 *"]),
        ("DATA now\r\n", &["501 5.5.4 *"]),
        ("RSET\r\n", &["250 2.0.0 Ok"]),
        ("RCPT TO:<b@y.test>\r\n", &["503 5.5.1 *"]),
        ("DATA\r\n", &["503 5.5.1 *"]),
        ("MAIL FROM:<a@x.test>\r\n", &["250 2.1.0 Ok"]),
        ("DATA\r\n", &["503 5.5.1 *"]),
        ("EHLO again.test\r\n", &ehlo_again[..]),
        ("RCPT TO:<b@y.test>\r\n", &["503 5.5.1 *"]),
        ("MAIL FROM:<not-an-address>\r\n", &["501 5.1.7 *"]),
        ("MAIL FROM:<a@x.test> FOO=BAR\r\n", &["555 5.5.4 *"]),
        ("MAIL FROM:<ø@x.test>\r\n", &["553 5.6.7 *"]),
        ("MAIL FROM:<a@x.test> SIZE=many\r\n", &["501 5.5.4 *"]),
        ("MAIL FROM:<>\r\n", &["250 2.1.0 Ok"]),
        ("RCPT TO:<postmaster>\r\n", &["250 2.1.5 Ok"]),
        ("RCPT TO:<b@y.test>\r\n", &["250 2.1.5 Ok"]),
        ("DATA\r\n", &["354 End data with <CR><LF>.<CR><LF>"]),
        (
            "Subject: null sender\r\n\r\nbounce\r\n.\r\n",
            &["250 2.0.0 Ok: queued as *"],
        ),
        (
            "MAIL FROM:<ø@x.test> SMTPUTF8 BODY=8BITMIME SIZE=100\r\n",
            &["250 2.1.0 Ok"],
        ),
        ("RCPT TO:<ü@y.test>\r\n", &["250 2.1.5 Ok"]),
        ("RSET\r\n", &["250 2.0.0 Ok"]),
        ("RSET now\r\n", &["501 5.5.4 *"]),
        ("NOOP\r\n", &["250 2.0.0 Ok"]),
        ("QUIT\r\n", &[&bye]),
    ];
    let mut smtp = catcher.session();
    let replies = run_table(&mut smtp, after_ehlo);
    assert_eq!(
        smtp.ends_silently(PROMPT),
        Ended::Closed,
        "no close after QUIT"
    );
    let null_sender = queued_ids(&replies);

    // HELO only, in lower case, with a space after the colon as some clients send it.
    let helo: &[(&str, &[&str])] = &[
        (
            "HELO client.test\r\n",
            &[&format!("250 {HOST} greets client.test")],
        ),
        ("MAIL FROM:<a@x.test> SIZE=10\r\n", &["555 5.5.4 *"]),
        ("mail from: <helo@x.test>\r\n", &["250 2.1.0 Ok"]),
        ("rcpt to: <b@y.test>\r\n", &["250 2.1.5 Ok"]),
        ("data\r\n", &["354 End data with <CR><LF>.<CR><LF>"]),
        (
            "Subject: helo only\r\n\r\nhi\r\n.\r\n",
            &["250 2.0.0 Ok: queued as *"],
        ),
        ("quit\r\n", &[&bye]),
    ];
    let mut smtp = catcher.session();
    let replies = run_table(&mut smtp, helo);
    assert_eq!(
        smtp.ends_silently(PROMPT),
        Ended::Closed,
        "no close after QUIT"
    );
    let helo_only = queued_ids(&replies);

    assert_eq!(null_sender.len(), 1);
    assert_eq!(helo_only.len(), 1);
    assert_eq!(
        catcher.list().len(),
        2,
        "only the two finished messages are stored"
    );

    let env = envelope(&catcher, null_sender[0]);
    for want in [
        "MAIL FROM: <>",
        "RCPT TO:   <postmaster>",
        "RCPT TO:   <b@y.test>",
    ] {
        assert!(has_line(&env, want), "no {want:?} in {env:#?}");
    }
    assert!(
        env.iter()
            .any(|l| l.starts_with("Client:") && l.ends_with("(HELO again.test)")),
        "the second EHLO's name is recorded: {env:#?}"
    );
    assert_eq!(
        catcher.raw(null_sender[0]),
        b"Subject: null sender\r\n\r\nbounce\r\n"
    );

    let env = envelope(&catcher, helo_only[0]);
    assert!(has_line(&env, "MAIL FROM: <helo@x.test>"), "{env:#?}");
    assert!(has_line(&env, "RCPT TO:   <b@y.test>"), "{env:#?}");
    assert!(
        env.iter().any(|l| l.ends_with("(HELO client.test)")),
        "{env:#?}"
    );
}

// ---------------------------------------------------------------------------------------
// Pipelining (RFC 2920)

#[test]
fn a_pipelined_transaction_and_two_pipelined_messages_are_answered_in_order() {
    let catcher = Catcher::start();
    let mut smtp = catcher.session();
    smtp.send(
        b"EHLO pipe.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<r1@y.test>\r\n\
          RCPT TO:<r2@y.test>\r\nRCPT TO:<r3@y.test>\r\nDATA\r\n",
    );
    let mut want = ehlo_reply("pipe.test", DEFAULT_SIZE);
    want.extend(
        [
            "250 2.1.0 Ok",
            "250 2.1.5 Ok",
            "250 2.1.5 Ok",
            "250 2.1.5 Ok",
            "354 End data with <CR><LF>.<CR><LF>",
        ]
        .map(String::from),
    );
    let want: Vec<&str> = want.iter().map(String::as_str).collect();
    smtp.expect_lines(&want);

    let first = message("pipelined one", "first body");
    let second = message("pipelined two", "second body");
    let mut wire = dot_stuff(&first);
    wire.extend_from_slice(b".\r\nMAIL FROM:<b@x.test>\r\nRCPT TO:<r4@y.test>\r\nDATA\r\n");
    wire.extend_from_slice(&dot_stuff(&second));
    wire.extend_from_slice(b".\r\nQUIT\r\n");
    smtp.send(&wire);
    let got = smtp.lines_until_closed(PROMPT);
    let bye = format!("221 2.0.0 {HOST} Bye");
    kit::smtp::assert_lines(
        &got,
        &[
            "250 2.0.0 Ok: queued as *",
            "250 2.1.0 Ok",
            "250 2.1.5 Ok",
            "354 End data with <CR><LF>.<CR><LF>",
            "250 2.0.0 Ok: queued as *",
            &bye,
        ],
        "the pipelined messages",
    );
    let (one, two) = (queued_id(&got[0]), queued_id(&got[4]));
    assert!(two > one, "ids grow: {one} then {two}");
    assert_eq!(catcher.raw(one), first);
    assert_eq!(catcher.raw(two), second);
    let listed = catcher.list();
    assert_eq!(ids(&listed), vec![two, one]);
    assert_eq!(
        listed[1]["rcpt_to"],
        serde_json::json!(["r1@y.test", "r2@y.test", "r3@y.test"])
    );
    assert_eq!(listed[0]["rcpt_to"], serde_json::json!(["r4@y.test"]));
    assert_eq!(listed[0]["mail_from"], "b@x.test");
}

// ---------------------------------------------------------------------------------------
// Dot-unstuffing

#[test]
fn dot_stuffed_lines_are_stored_unstuffed_whole_or_byte_by_byte() {
    let catcher = Catcher::start();
    let content = b"Subject: dots\r\n\r\n.hidden\r\n..two\r\n.\r\n. space\r\n\
                    middle . dot\r\n...\r\n.\r\nend\r\n"
        .to_vec();
    let wire = dot_stuff(&content);
    assert!(contains(&wire, b"\r\n..hidden\r\n...two\r\n..\r\n"));

    for bytewise in [false, true] {
        let mut smtp = Smtp::ehlo(catcher.addr());
        smtp.cmd("MAIL FROM:<a@x.test>\r\n", &["250 2.1.0 Ok"]);
        smtp.cmd("RCPT TO:<b@y.test>\r\n", &["250 2.1.5 Ok"]);
        smtp.cmd("DATA\r\n", &["354 *"]);
        let mut all = wire.clone();
        all.extend_from_slice(b".\r\n");
        if bytewise {
            smtp.send_bytewise(&all);
        } else {
            smtp.send(&all);
        }
        let id = queued_id(&smtp.reply()[0]);
        assert_eq!(
            show(&catcher.raw(id)),
            show(&content),
            "bytewise: {bytewise}"
        );
        smtp.quit();
    }

    // A client that forgets to stuff loses its leading dot, as RFC 5321 4.5.2 says.
    let mut smtp = Smtp::ehlo(catcher.addr());
    smtp.cmd("MAIL FROM:<a@x.test>\r\n", &["250 2.1.0 Ok"]);
    smtp.cmd("RCPT TO:<b@y.test>\r\n", &["250 2.1.5 Ok"]);
    smtp.cmd("DATA\r\n", &["354 *"]);
    smtp.send(b"Subject: unstuffed\r\n\r\n.not stuffed\r\n.\r\n");
    let id = queued_id(&smtp.reply()[0]);
    assert_eq!(
        show(&catcher.raw(id)),
        "Subject: unstuffed\r\n\r\nnot stuffed\r\n"
    );
    smtp.quit();
}

// ---------------------------------------------------------------------------------------
// BDAT (RFC 3030)

#[test]
fn bdat_chunks_are_joined_verbatim_and_bdat_without_mail_swallows_its_bytes() {
    let catcher = Catcher::start();
    let mut smtp = Smtp::ehlo(catcher.addr());

    let head = b"Subject: bdat test\r\n".to_vec();
    let mut body = b"\n".to_vec(); // completes the CRLF split across chunks 2 and 3
    body.extend_from_slice(b".\r\n..two dots stay\r\n\r\n.\r\nQUIT\r\nMAIL FROM:<x@y>\r\n");
    while body.len() < 5000 {
        body.extend_from_slice(format!("line {} of the body\r\n", body.len()).as_bytes());
    }
    body.truncate(4998);
    body.extend_from_slice(b"\r\n");

    smtp.cmd("MAIL FROM:<a@x.test>\r\n", &["250 2.1.0 Ok"]);
    smtp.cmd("RCPT TO:<b@y.test>\r\n", &["250 2.1.5 Ok"]);
    let mut chunk = format!("BDAT {}\r\n", head.len()).into_bytes();
    chunk.extend_from_slice(&head);
    smtp.send(&chunk);
    smtp.expect_reply(&["250 2.0.0 20 octets received, 20 in all"]);
    smtp.send(b"BDAT 1\r\n\r");
    smtp.expect_reply(&["250 2.0.0 1 octets received, 21 in all"]);
    // The big chunk arrives in uneven pieces, the first glued to its command.
    let mut chunk = b"BDAT 5000\r\n".to_vec();
    chunk.extend_from_slice(&body[..7]);
    smtp.send(&chunk);
    smtp.send(&body[7..2500]);
    thread::sleep(Duration::from_millis(20));
    smtp.send(&body[2500..]);
    smtp.expect_reply(&["250 2.0.0 5000 octets received, 5021 in all"]);
    smtp.send(b"BDAT 0 LAST\r\n");
    let id = queued_id(&smtp.reply()[0]);
    let mut want = head.clone();
    want.push(b'\r');
    want.extend_from_slice(&body);
    assert_eq!(show(&catcher.raw(id)), show(&want));

    // A whole transaction in one write, with DATA refused once BDAT has begun.
    let last = b"Subject: one chunk\r\n\r\n.\r\n";
    let mut wire = format!(
        "MAIL FROM:<c@x.test>\r\nRCPT TO:<d@y.test>\r\nBDAT {} LAST\r\n",
        last.len()
    )
    .into_bytes();
    wire.extend_from_slice(last);
    wire.extend_from_slice(
        b"MAIL FROM:<e@x.test>\r\nRCPT TO:<f@y.test>\r\nBDAT 5\r\n12345DATA\r\nRSET\r\n",
    );
    smtp.send(&wire);
    let got = smtp.expect_lines(&[
        "250 2.1.0 Ok",
        "250 2.1.5 Ok",
        "250 2.0.0 Ok: queued as *",
        "250 2.1.0 Ok",
        "250 2.1.5 Ok",
        "250 2.0.0 5 octets received, 5 in all",
        "503 5.5.1 *",
        "250 2.0.0 Ok",
    ]);
    assert_eq!(catcher.raw(queued_id(&got[2])), last);

    // Without MAIL the chunk is refused, but its bytes are read and thrown away: the
    // QUIT inside it is not run, the session goes on.
    smtp.send(b"BDAT 12\r\nNOOP\r\nQUIT\r\n");
    smtp.expect_reply(&["503 5.5.1 *"]);
    smtp.send(b"BDAT 6 LAST\r\nQUIT\r\n");
    smtp.expect_reply(&["503 5.5.1 *"]);
    smtp.cmd("BDAT many\r\n", &["501 5.5.4 *"]);
    smtp.cmd("NOOP\r\n", &["250 2.0.0 Ok"]);
    smtp.quit();
    assert_eq!(catcher.list().len(), 2);
}

// ---------------------------------------------------------------------------------------
// Message size limit

/// Content of exactly `size` bytes; `dots` makes every body line start with a dot, so
/// the wire form is larger than what is stored.
fn sized_message(size: usize, dots: bool) -> Vec<u8> {
    let mut content = b"Subject: sized\r\n\r\n".to_vec();
    let line: &[u8] = if dots {
        b".dotted line of text\r\n"
    } else {
        b"plain line of text\r\n"
    };
    while content.len() + line.len() + 2 <= size {
        content.extend_from_slice(line);
    }
    while content.len() < size - 2 {
        content.push(b'x');
    }
    content.extend_from_slice(b"\r\n");
    assert_eq!(content.len(), size);
    content
}

#[test]
fn max_message_size_is_exact_for_data_bdat_and_mail_size() {
    let catcher = Catcher::with(&["--max-message-size", "1000"]);
    let mut smtp = catcher.session();
    let ehlo = ehlo_reply("client.test", 1000);
    let ehlo: Vec<&str> = ehlo.iter().map(String::as_str).collect();
    smtp.cmd("EHLO client.test\r\n", &ehlo);

    let exact = sized_message(1000, false);
    let id = smtp.deliver("a@x.test", &["b@y.test"], &exact);
    assert_eq!(catcher.raw(id), exact);

    // 1000 bytes stored, more on the wire because of dot-stuffing: still fits.
    let dotted = sized_message(1000, true);
    assert!(dot_stuff(&dotted).len() > 1000);
    let id = smtp.deliver("a@x.test", &["b@y.test"], &dotted);
    assert_eq!(catcher.raw(id), dotted);

    let over = sized_message(1001, false);
    smtp.cmd("MAIL FROM:<a@x.test>\r\n", &["250 2.1.0 Ok"]);
    smtp.cmd("RCPT TO:<b@y.test>\r\n", &["250 2.1.5 Ok"]);
    smtp.cmd("DATA\r\n", &["354 *"]);
    smtp.send(&over);
    smtp.cmd(".\r\n", &["552 5.3.4 *"]);
    smtp.cmd("NOOP\r\n", &["250 2.0.0 Ok"]);

    // BDAT: exactly the limit in one chunk, then one byte over, in one and two chunks.
    smtp.cmd("MAIL FROM:<a@x.test>\r\n", &["250 2.1.0 Ok"]);
    smtp.cmd("RCPT TO:<b@y.test>\r\n", &["250 2.1.5 Ok"]);
    let mut wire = b"BDAT 1000 LAST\r\n".to_vec();
    wire.extend_from_slice(&exact);
    smtp.send(&wire);
    let id = queued_id(&smtp.reply()[0]);
    assert_eq!(catcher.raw(id), exact);

    smtp.cmd("MAIL FROM:<a@x.test>\r\n", &["250 2.1.0 Ok"]);
    smtp.cmd("RCPT TO:<b@y.test>\r\n", &["250 2.1.5 Ok"]);
    let mut wire = b"BDAT 1001 LAST\r\n".to_vec();
    wire.extend_from_slice(&over);
    smtp.send(&wire);
    smtp.expect_reply(&["552 5.3.4 *"]);
    smtp.cmd("NOOP\r\n", &["250 2.0.0 Ok"]);

    smtp.cmd("MAIL FROM:<a@x.test>\r\n", &["250 2.1.0 Ok"]);
    smtp.cmd("RCPT TO:<b@y.test>\r\n", &["250 2.1.5 Ok"]);
    let mut wire = b"BDAT 600\r\n".to_vec();
    wire.extend_from_slice(&over[..600]);
    smtp.send(&wire);
    smtp.expect_reply(&["250 2.0.0 600 octets received, 600 in all"]);
    let mut wire = b"BDAT 401 LAST\r\n".to_vec();
    wire.extend_from_slice(&over[600..]);
    smtp.send(&wire);
    smtp.expect_reply(&["552 5.3.4 *"]);
    smtp.cmd("NOOP\r\n", &["250 2.0.0 Ok"]);

    // SIZE= at MAIL: over the limit refused at once, at the limit accepted.
    smtp.cmd("MAIL FROM:<a@x.test> SIZE=1001\r\n", &["552 5.3.4 *"]);
    smtp.cmd("MAIL FROM:<a@x.test> SIZE=1000\r\n", &["250 2.1.0 Ok"]);
    smtp.cmd("RSET\r\n", &["250 2.0.0 Ok"]);

    // The session goes on after all of that.
    let small = message("after refusals", "still here");
    let id = smtp.deliver("a@x.test", &["b@y.test"], &small);
    assert_eq!(catcher.raw(id), small);
    smtp.quit();
    let sizes: Vec<u64> = catcher
        .list()
        .iter()
        .map(|m| m["size"].as_u64().unwrap())
        .collect();
    assert_eq!(sizes, vec![small.len() as u64, 1000, 1000, 1000]);
}

// ---------------------------------------------------------------------------------------
// Many recipients

fn rcpts(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("r{i}@y.test")).collect()
}

#[test]
fn one_hundred_fifty_recipients_pass_by_default() {
    let catcher = Catcher::start();
    let mut smtp = Smtp::ehlo(catcher.addr());
    let all = rcpts(150);
    let mut wire = String::from("MAIL FROM:<a@x.test>\r\n");
    for r in &all {
        wire.push_str(&format!("RCPT TO:<{r}>\r\n"));
    }
    wire.push_str("DATA\r\n");
    smtp.send(wire.as_bytes());
    let mut want = vec!["250 2.1.0 Ok"];
    want.extend(std::iter::repeat_n("250 2.1.5 Ok", 150));
    want.push("354 End data with <CR><LF>.<CR><LF>");
    smtp.expect_lines(&want);
    smtp.send(b"Subject: many\r\n\r\nhi\r\n.\r\n");
    queued_id(&smtp.reply()[0]);
    smtp.quit();
    let stored = catcher.only_message();
    assert_eq!(stored["rcpt_to"], serde_json::json!(all));
}

#[test]
fn recipient_one_hundred_one_gets_452_under_max_recipients_100() {
    let catcher = Catcher::with(&["--max-recipients", "100"]);
    let mut smtp = Smtp::ehlo(catcher.addr());
    let all = rcpts(102);
    smtp.cmd("MAIL FROM:<a@x.test>\r\n", &["250 2.1.0 Ok"]);
    for r in &all[..100] {
        smtp.cmd(&format!("RCPT TO:<{r}>\r\n"), &["250 2.1.5 Ok"]);
    }
    for r in &all[100..] {
        smtp.cmd(&format!("RCPT TO:<{r}>\r\n"), &["452 4.5.3 *"]);
    }
    smtp.cmd("DATA\r\n", &["354 *"]);
    smtp.send(b"Subject: capped\r\n\r\nhi\r\n.\r\n");
    queued_id(&smtp.reply()[0]);
    smtp.quit();
    let stored = catcher.only_message();
    assert_eq!(stored["rcpt_to"], serde_json::json!(all[..100]));
}

// ---------------------------------------------------------------------------------------
// SMTP smuggling: only <CR><LF>.<CR><LF> ends a message

const SMUGGLING: &[(&str, &[u8])] = &[
    ("LF.LF", b"\n.\n"),
    ("LF.CRLF", b"\n.\r\n"),
    ("CRLF.LF", b"\r\n.\n"),
    ("CR.CR", b"\r.\r"),
    ("CR.CRLF", b"\r.\r\n"),
    ("CRLF.CR", b"\r\n.\r"),
];

/// The content of a smuggling attempt: a fake end of data, then a second transaction.
fn smuggling_content(name: &str, sequence: &[u8]) -> Vec<u8> {
    let mut content = format!("Subject: smuggle {name}\r\n\r\nbefore").into_bytes();
    content.extend_from_slice(sequence);
    content.extend_from_slice(
        format!(
            "MAIL FROM:<evil@x.test>\r\nRCPT TO:<victim@y.test>\r\nDATA\r\nsmuggled {name}\r\n"
        )
        .as_bytes(),
    );
    content
}

fn has_bare_lf(content: &[u8]) -> bool {
    content.starts_with(b"\n") || content.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r')
}

/// Sends one smuggling attempt (content, the real end, QUIT, in one write) and returns
/// every reply line until the server closed.
fn attempt_smuggling(catcher: &Catcher, content: &[u8]) -> Vec<String> {
    let mut smtp = Smtp::ehlo(catcher.addr());
    smtp.cmd("MAIL FROM:<real@x.test>\r\n", &["250 2.1.0 Ok"]);
    smtp.cmd("RCPT TO:<rcpt@y.test>\r\n", &["250 2.1.5 Ok"]);
    smtp.cmd("DATA\r\n", &["354 *"]);
    let mut wire = content.to_vec();
    wire.extend_from_slice(b"\r\n.\r\nQUIT\r\n");
    smtp.send(&wire);
    smtp.lines_until_closed(PROMPT)
}

#[test]
fn smuggling_sequences_are_content_and_start_no_second_transaction() {
    let catcher = Catcher::start();
    let bye = format!("221 2.0.0 {HOST} Bye");
    for (n, (name, sequence)) in SMUGGLING.iter().enumerate() {
        let content = smuggling_content(name, sequence);
        let got = attempt_smuggling(&catcher, &content);
        kit::smtp::assert_lines(&got, &["250 2.0.0 Ok: queued as *", &bye], name);
        let id = queued_id(&got[0]);
        let listed = catcher.list();
        assert_eq!(
            listed.len(),
            n + 1,
            "{name}: one message per attempt: {listed:#?}"
        );
        assert_eq!(listed[0]["id"], id);
        assert_eq!(listed[0]["mail_from"], "real@x.test", "{name}");
        assert_eq!(
            listed[0]["rcpt_to"],
            serde_json::json!(["rcpt@y.test"]),
            "{name}"
        );

        // Stored as sent, except where the dot follows a CRLF: a line only ends at CRLF,
        // so "<CR><LF>.<LF>MAIL..." and "<CR><LF>.<CR>MAIL..." are lines that start with
        // a dot, and lose it like any other stuffed line (RFC 5321 section 4.5.2).
        let mut want = show(&content).replace("\r\n.", "\r\n").into_bytes();
        want.extend_from_slice(b"\r\n");
        let raw = catcher.raw(id);
        assert_eq!(show(&raw), show(&want), "{name}");
        assert!(contains(&raw, format!("smuggled {name}").as_bytes()));

        let bare_lf = has_bare_lf(&content);
        let env = envelope(&catcher, id);
        let flag = if bare_lf {
            "Bare LF:   yes*"
        } else {
            "Bare LF:   no"
        };
        assert!(
            env.iter().any(|l| kit::smtp::matches(l, flag)),
            "{name}: want {flag:?} in {env:#?}"
        );
        assert_eq!(listed[0]["bare_lf"], bare_lf, "{name}");
    }
    assert!(
        catcher
            .list()
            .iter()
            .all(|m| m["mail_from"] != "evil@x.test"),
        "a smuggled transaction was stored"
    );
}

#[test]
fn bare_lf_reject_refuses_the_message_and_closes_before_pipelined_commands() {
    let catcher = Catcher::with(&["--bare-lf", "reject"]);
    let mut smtp = Smtp::ehlo(catcher.addr());
    smtp.cmd("MAIL FROM:<a@x.test>\r\n", &["250 2.1.0 Ok"]);
    smtp.cmd("RCPT TO:<b@y.test>\r\n", &["250 2.1.5 Ok"]);
    smtp.cmd("DATA\r\n", &["354 *"]);
    smtp.send(
        b"Subject: bare\r\n\r\nline one\nline two\r\n.\r\n\
          MAIL FROM:<pipelined@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n\
          Subject: pipelined\r\n\r\nafter\r\n.\r\nQUIT\r\n",
    );
    let got = smtp.lines_until_closed(PROMPT);
    kit::smtp::assert_lines(&got, &["550 5.5.2 *"], "a message with a bare LF");
    assert!(
        catcher.list().is_empty(),
        "nothing is stored: {:#?}",
        catcher.list()
    );

    // Each smuggling sequence: with a bare LF refused and closed, without stored.
    let bye = format!("221 2.0.0 {HOST} Bye");
    let mut stored = 0;
    for (name, sequence) in SMUGGLING {
        let content = smuggling_content(name, sequence);
        let got = attempt_smuggling(&catcher, &content);
        if has_bare_lf(&content) {
            kit::smtp::assert_lines(&got, &["550 5.5.2 *"], name);
        } else {
            kit::smtp::assert_lines(&got, &["250 2.0.0 Ok: queued as *", &bye], name);
            stored += 1;
        }
    }
    let listed = catcher.list();
    assert_eq!(listed.len(), stored);
    assert!(
        listed
            .iter()
            .all(|m| m["bare_lf"] == false && m["mail_from"] == "real@x.test")
    );

    // Clean messages still get through.
    let mut smtp = Smtp::ehlo(catcher.addr());
    let clean = message("clean", "crlf only");
    let id = smtp.deliver("a@x.test", &["b@y.test"], &clean);
    assert_eq!(catcher.raw(id), clean);
    smtp.quit();
}

#[test]
fn bare_lf_accept_stores_the_message_and_flags_it() {
    let catcher = Catcher::with(&["--bare-lf", "accept"]);
    let mut smtp = Smtp::ehlo(catcher.addr());
    smtp.cmd("MAIL FROM:<a@x.test>\r\n", &["250 2.1.0 Ok"]);
    smtp.cmd("RCPT TO:<b@y.test>\r\n", &["250 2.1.5 Ok"]);
    smtp.cmd("DATA\r\n", &["354 *"]);
    smtp.send(b"Subject: bare\r\n\r\nline one\nline two\r\n.\r\n");
    let id = queued_id(&smtp.reply()[0]);
    smtp.quit();
    assert_eq!(
        catcher.raw(id),
        b"Subject: bare\r\n\r\nline one\nline two\r\n"
    );
    let env = envelope(&catcher, id);
    assert!(
        env.iter().any(|l| l.starts_with("Bare LF:   yes")),
        "{env:#?}"
    );
    assert_eq!(catcher.only_message()["bare_lf"], true);
    assert!(
        catcher
            .stderr
            .wait_until(PROMPT, |lines| lines
                .iter()
                .any(|l| l.contains(&format!("message {id} "))))
            .is_some(),
        "no log line for message {id}:\n{}",
        catcher.stderr.text()
    );
}

// ---------------------------------------------------------------------------------------
// Line length

#[test]
fn overlong_command_lines_get_500_5_5_6_and_the_session_continues() {
    for (flags, max) in [(&[][..], 2048), (&["--max-line", "512"][..], 512)] {
        let catcher = Catcher::with(flags);
        let mut smtp = Smtp::ehlo(catcher.addr());
        let line = |len: usize| format!("NOOP {}\r\n", "x".repeat(len - 7));

        smtp.cmd(&line(max), &["250 2.0.0 Ok"]);
        smtp.cmd(&line(max + 1), &["500 5.5.6 *"]);
        smtp.cmd("NOOP\r\n", &["250 2.0.0 Ok"]);

        // A long line that arrives in pieces is one error, and pipelined neighbours run.
        let long = line(10 * max);
        smtp.send_bytewise(&long.as_bytes()[..max + 10]);
        smtp.send(&long.as_bytes()[max + 10..]);
        smtp.expect_reply(&["500 5.5.6 *"]);
        smtp.send(format!("NOOP\r\n{}NOOP\r\n", line(3 * max)).as_bytes());
        smtp.expect_lines(&["250 2.0.0 Ok", "500 5.5.6 *", "250 2.0.0 Ok"]);

        // An overlong MAIL starts no transaction.
        smtp.cmd(
            &format!("MAIL FROM:<{}@x.test>\r\n", "a".repeat(max)),
            &["500 5.5.6 *"],
        );
        smtp.cmd("RCPT TO:<b@y.test>\r\n", &["503 5.5.1 *"]);

        // Content lines are not command lines: a long one is stored whole.
        let mut content = b"Subject: long line\r\n\r\n".to_vec();
        content.extend_from_slice(&vec![b'y'; 3 * max]);
        content.extend_from_slice(b"\r\n");
        let id = smtp.deliver("a@x.test", &["b@y.test"], &content);
        assert_eq!(catcher.raw(id), content);
        smtp.quit();
    }
}

// ---------------------------------------------------------------------------------------
// Timeouts

#[test]
fn an_idle_client_gets_421_4_4_2_after_the_command_timeout() {
    let catcher = Catcher::with(&["--command-timeout", "1s"]);
    let mut smtp = Smtp::ehlo(catcher.addr());
    let started = Instant::now();
    let got = smtp.lines_until_closed(Duration::from_secs(10));
    let waited = started.elapsed();
    kit::smtp::assert_lines(
        &got,
        &[&format!(
            "421 4.4.2 {HOST} Error: timeout exceeded, closing connection"
        )],
        "an idle second",
    );
    assert!(
        waited >= Duration::from_millis(900),
        "closed after {waited:?}, before the 1 s timeout"
    );
}

#[test]
fn a_client_silent_mid_data_gets_421_4_4_2_and_nothing_is_stored() {
    let catcher = Catcher::with(&["--data-timeout", "1s"]);
    let mut smtp = Smtp::ehlo(catcher.addr());
    smtp.cmd("MAIL FROM:<a@x.test>\r\n", &["250 2.1.0 Ok"]);
    smtp.cmd("RCPT TO:<b@y.test>\r\n", &["250 2.1.5 Ok"]);
    smtp.cmd("DATA\r\n", &["354 *"]);
    smtp.send(b"Subject: unfinished\r\n\r\nhalf a message\r\n");
    let started = Instant::now();
    let got = smtp.lines_until_closed(Duration::from_secs(10));
    let waited = started.elapsed();
    kit::smtp::assert_lines(
        &got,
        &[&format!(
            "421 4.4.2 {HOST} Error: timeout exceeded, closing connection"
        )],
        "a silent second inside DATA",
    );
    assert!(
        waited >= Duration::from_millis(900),
        "closed after {waited:?}"
    );
    assert!(catcher.list().is_empty());
}

#[test]
fn the_command_timeout_does_not_cut_a_slow_message_nor_the_data_timeout_an_idle_client() {
    let slow_data = Catcher::with(&["--command-timeout", "1s", "--data-timeout", "1m"]);
    let slow_command = Catcher::with(&["--command-timeout", "1m", "--data-timeout", "1s"]);

    let mut in_data = Smtp::ehlo(slow_data.addr());
    in_data.cmd("MAIL FROM:<a@x.test>\r\n", &["250 2.1.0 Ok"]);
    in_data.cmd("RCPT TO:<b@y.test>\r\n", &["250 2.1.5 Ok"]);
    in_data.cmd("DATA\r\n", &["354 *"]);
    in_data.send(b"Subject: slow\r\n\r\n");
    let mut idle = Smtp::ehlo(slow_command.addr());

    thread::sleep(Duration::from_millis(1600));
    in_data.send(b"in time\r\n.\r\n");
    let id = queued_id(&in_data.reply()[0]);
    assert_eq!(slow_data.raw(id), b"Subject: slow\r\n\r\nin time\r\n");
    idle.cmd("NOOP\r\n", &["250 2.0.0 Ok"]);
    idle.quit();
}

#[test]
fn a_client_that_hangs_up_mid_message_leaves_nothing_stored() {
    let catcher = Catcher::start();
    let halves: [&[u8]; 3] = [
        b"DATA\r\nSubject: half\r\n\r\nno end of data\r\n",
        b"BDAT 100 LAST\r\nSubject: half a chunk\r\n",
        b"BDAT 12\r\nSubject: x\r\nBDAT 100 LAST\r\nhalf",
    ];
    for half in halves {
        let mut smtp = Smtp::ehlo(catcher.addr());
        smtp.cmd("MAIL FROM:<a@x.test>\r\n", &["250 2.1.0 Ok"]);
        smtp.cmd("RCPT TO:<b@y.test>\r\n", &["250 2.1.5 Ok"]);
        smtp.send(half);
        drop(smtp);
    }
    // Give the server a moment to see the hang-ups before looking.
    thread::sleep(Duration::from_millis(300));
    let mut smtp = Smtp::ehlo(catcher.addr());
    let whole = message("whole", "complete");
    let id = smtp.deliver("a@x.test", &["b@y.test"], &whole);
    smtp.quit();
    let listed = catcher.list();
    assert_eq!(
        ids(&listed),
        vec![id],
        "only the finished message: {listed:#?}"
    );
}

// ---------------------------------------------------------------------------------------
// Shutdown

#[test]
fn sigterm_tells_idle_sessions_421_lets_a_message_finish_and_exits_0() {
    let mut catcher = Catcher::start();
    let mut idle = Smtp::ehlo(catcher.addr());
    let mut busy = Smtp::ehlo(catcher.addr());
    busy.cmd("MAIL FROM:<a@x.test>\r\n", &["250 2.1.0 Ok"]);
    busy.cmd("RCPT TO:<b@y.test>\r\n", &["250 2.1.5 Ok"]);
    busy.cmd("DATA\r\n", &["354 *"]);
    busy.send(b"Subject: finished in the grace period\r\n\r\nfirst half\r\n");

    sigterm(catcher.pid());
    let shutting = format!("421 4.3.2 {HOST} Service shutting down, closing connection");
    let got = idle.lines_until_closed(PROMPT);
    kit::smtp::assert_lines(&got, &[&shutting], "SIGTERM, idle session");

    busy.send(b"second half\r\n.\r\n");
    let id = queued_id(&busy.reply()[0]);
    let got = busy.lines_until_closed(PROMPT);
    kit::smtp::assert_lines(&got, &[&shutting], "SIGTERM, after the message");

    let status = catcher.wait_exit(Duration::from_secs(15));
    assert_eq!(status.code(), Some(0), "stderr:\n{}", catcher.stderr.text());
    assert_eq!(
        catcher.raw(id),
        b"Subject: finished in the grace period\r\n\r\nfirst half\r\nsecond half\r\n"
    );
}

#[test]
fn sigterm_right_after_the_announcement_is_a_clean_exit() {
    // A service manager or a test may stop the catcher the moment it says it listens.
    let mut catcher = Catcher::start();
    sigterm(catcher.pid());
    let status = catcher.wait_exit(Duration::from_secs(15));
    assert_eq!(status.code(), Some(0), "stderr:\n{}", catcher.stderr.text());
}

#[test]
fn a_message_unfinished_after_the_shutdown_timeout_is_cut_off_and_not_stored() {
    let mut catcher = Catcher::with(&["--shutdown-timeout", "1s"]);
    let mut busy = Smtp::ehlo(catcher.addr());
    busy.cmd("MAIL FROM:<a@x.test>\r\n", &["250 2.1.0 Ok"]);
    busy.cmd("RCPT TO:<b@y.test>\r\n", &["250 2.1.5 Ok"]);
    busy.cmd("DATA\r\n", &["354 *"]);
    busy.send(b"Subject: never finished\r\n\r\n");
    let started = Instant::now();
    sigterm(catcher.pid());
    let got = busy.lines_until_closed(Duration::from_secs(10));
    let shutting = format!("421 4.3.2 {HOST} Service shutting down, closing connection");
    kit::smtp::assert_lines(&got, &[&shutting], "the grace period running out");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "cut after {:?}",
        started.elapsed()
    );
    let status = catcher.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "stderr:\n{}", catcher.stderr.text());
    assert!(catcher.list().is_empty());
}

#[test]
fn sigint_stops_an_ephemeral_catcher_and_removes_its_store() {
    let (mut process, stdout, stderr) = spawn_collected(
        // Boolean flags from the environment take 1 and yes, as shells and
        // container files write them, not only true.
        sokkel_command()
            .args(["mail", "serve", "--smtp", "127.0.0.1:0", "--hostname", HOST])
            .env("SOKKEL_EPHEMERAL", "1")
            .env("SOKKEL_NO_HTTP", "yes"),
        "SOKKEL_EPHEMERAL=1 SOKKEL_NO_HTTP=yes sokkel mail serve",
    );
    let announced = |lines: &[String]| lines.iter().any(|l| l.starts_with("mail is kept in "));
    assert!(
        stdout.wait_until(PROMPT, announced).is_some(),
        "stdout:\n{}\nstderr:\n{}",
        stdout.text(),
        stderr.text()
    );
    let lines = stdout.snapshot();
    assert!(!lines.iter().any(|l| l.contains("http")), "{lines:?}");
    let addr: std::net::SocketAddr = lines
        .iter()
        .find_map(|l| l.strip_prefix("listening on smtp "))
        .expect("a listening line")
        .parse()
        .unwrap();
    let db = lines
        .iter()
        .find_map(|l| l.strip_prefix("mail is kept in "))
        .and_then(|rest| rest.strip_suffix(" (temporary, removed at exit)"))
        .unwrap_or_else(|| panic!("the store line does not say it is temporary: {lines:?}"));
    let db = std::path::PathBuf::from(db);

    let mut smtp = Smtp::ehlo(addr);
    let content = message("ephemeral", "gone soon");
    let id = smtp.deliver("a@x.test", &["b@y.test"], &content);
    assert_eq!(kit::catcher::raw(&db, id), content);

    sigint(process.id());
    let got = smtp.lines_until_closed(PROMPT);
    let shutting = format!("421 4.3.2 {HOST} Service shutting down, closing connection");
    kit::smtp::assert_lines(&got, &[&shutting], "SIGINT");
    let status = process
        .wait_timeout(Duration::from_secs(15))
        .expect("no exit after SIGINT");
    assert_eq!(status.code(), Some(0), "stderr:\n{}", stderr.text());
    assert!(
        !db.exists(),
        "the temporary store {} is still there",
        db.display()
    );
    let dir = db.parent().unwrap();
    assert!(
        !dir.exists(),
        "the temporary directory {} is still there",
        dir.display()
    );
}

// ---------------------------------------------------------------------------------------
// Too many errors

#[test]
fn twenty_errors_end_the_session_with_421_4_7_0() {
    let catcher = Catcher::start();
    let mut smtp = Smtp::ehlo(catcher.addr());
    // Replies that are not errors do not count.
    for _ in 0..30 {
        smtp.cmd("NOOP\r\n", &["250 2.0.0 Ok"]);
    }
    // Exactly as many as end the session: bytes left unread at the close would make
    // the kernel answer with a reset that can swallow the replies.
    smtp.send("XYZZY\r\n".repeat(20).as_bytes());
    let got = smtp.lines_until_closed(PROMPT);
    let mut want = vec!["500 5.5.2 *"; 20];
    let closing = format!("421 4.7.0 {HOST} Too many errors, closing connection");
    want.push(&closing);
    kit::smtp::assert_lines(&got, &want, "20 unknown commands");
}

#[test]
fn max_errors_3_counts_every_kind_of_protocol_error() {
    let catcher = Catcher::with(&["--max-errors", "3"]);
    let mut smtp = Smtp::open(catcher.addr());
    smtp.cmd("EHLO\r\n", &["501 5.5.4 *"]);
    smtp.cmd("DATA\r\n", &["503 5.5.1 *"]);
    smtp.cmd("VRFY x@y.test\r\n", &["252 2.5.0 *"]);
    smtp.send(b"EXPN staff\r\n");
    let got = smtp.lines_until_closed(PROMPT);
    let closing = format!("421 4.7.0 {HOST} Too many errors, closing connection");
    kit::smtp::assert_lines(&got, &["502 5.5.1 *", &closing], "the third error");
}

// ---------------------------------------------------------------------------------------
// A full store

#[test]
fn a_full_store_answers_451_keeps_serving_and_recovers_after_delete_all() {
    let catcher = Catcher::with(&["--max-store-size", "256KiB"]);
    let mut smtp = Smtp::ehlo(catcher.addr());
    let mut kept = Vec::new();
    let mut refused = false;
    for n in 0..100 {
        let content = message(
            &format!("filler {n}"),
            &format!("{n:03} {}\r\n", "z".repeat(70)).repeat(200),
        );
        let reply = smtp.send_message("a@x.test", &["b@y.test"], &content);
        if reply[0].starts_with("451 ") {
            kit::smtp::assert_lines(&reply, &["451 4.3.0 *"], "a full store");
            refused = true;
            break;
        }
        kept.push((queued_id(&reply[0]), content));
    }
    assert!(refused, "256 KiB store took 100 messages of 15 KiB");
    assert!(!kept.is_empty(), "the first message already failed");

    // Still serving: this session, a new one, the reading commands.
    smtp.cmd("NOOP\r\n", &["250 2.0.0 Ok"]);
    let other = Smtp::ehlo(catcher.addr());
    other.quit();
    let listed = catcher.list();
    assert_eq!(listed.len(), kept.len());
    for (id, content) in &kept {
        assert_eq!(show(&catcher.raw(*id)), show(content), "message {id}");
    }

    let out = catcher
        .cli(&["delete", "--all"])
        .assert_success("mail delete --all");
    assert_eq!(
        out.stdout_text().trim(),
        format!("deleted {} messages", kept.len())
    );
    let again = message("after delete", "room again");
    let id = smtp.deliver("a@x.test", &["b@y.test"], &again);
    assert_eq!(catcher.raw(id), again);
    smtp.quit();
}

#[test]
fn a_store_filling_up_under_concurrent_senders_keeps_every_acknowledged_message() {
    let catcher = Catcher::with(&["--max-store-size", "512KiB"]);
    let senders = Senders::start(catcher.addr(), 4, 2000, Duration::from_secs(20));
    let (ends, acked) = senders.join();
    assert!(!acked.is_empty(), "nothing was stored");
    for end in &ends {
        match end {
            SenderEnd::Refused(reply) => assert!(reply.starts_with("451 4.3.0 "), "{reply}"),
            other => panic!("a sender ended without a 451: {other:?}"),
        }
    }
    // Group commit fails whole batches: no message that got 451 may be half there,
    // and none that got 250 may be missing.
    assert_all_kept(&catcher.db, &acked);
    assert_eq!(
        catcher.list().len(),
        acked.len(),
        "a refused message was stored"
    );
    let mut smtp = Smtp::ehlo(catcher.addr());
    smtp.cmd("NOOP\r\n", &["250 2.0.0 Ok"]);
    smtp.quit();
}

// ---------------------------------------------------------------------------------------
// The course's own smtplib code

/// The course's code (chapter 11.3) as written there, only pointed at the catcher's
/// port instead of 25.
const COURSE_SMTPLIB: &str = r#"
import smtplib, sys

fromaddr = "Rick@example.com"
toaddr = "Morty@example.com"
subject = "Hei!"
body = "Hello world!"
msg = f"From: {fromaddr}\r\nTo: {toaddr}\r\nSubject: {subject}\r\n\r\n{body}"

server = smtplib.SMTP('127.0.0.1', int(sys.argv[1]))
server.set_debuglevel(1)
server.sendmail("Rick@example.com", "Morty@example.com", msg)
server.quit()
"#;

#[test]
fn the_course_smtplib_code_delivers_and_mail_show_latest_shows_it() {
    let catcher = Catcher::start();
    let out = python3(COURSE_SMTPLIB, &[&catcher.addr().port().to_string()])
        .run()
        .assert_success("the course's smtplib code");
    assert!(
        out.stderr.contains("reply: b'250 2.0.0 Ok: queued as "),
        "smtplib's debug output shows no queued reply:\n{}",
        out.stderr
    );

    let shown = catcher
        .cli(&["show", "latest"])
        .assert_success("mail show latest")
        .stdout_text();
    let lines: Vec<&str> = shown.lines().collect();
    let header = |name: &str, value: &str| {
        lines.iter().any(|l| {
            l.starts_with(&format!("{name}:")) && l.split_once(':').unwrap().1.trim() == value
        })
    };
    assert!(header("From", "Rick@example.com"), "{shown}");
    assert!(header("To", "Morty@example.com"), "{shown}");
    assert!(header("Subject", "Hei!"), "{shown}");
    let blank = lines
        .iter()
        .position(|l| l.is_empty())
        .expect("a blank line before the body");
    assert_eq!(lines[blank + 1..], ["Hello world!"], "{shown}");

    let stored = catcher.only_message();
    assert_eq!(stored["subject"], "Hei!");
    assert_eq!(stored["from"]["address"], "Rick@example.com");
    assert_eq!(stored["to"][0]["address"], "Morty@example.com");
    assert_eq!(stored["mail_from"], "Rick@example.com");
    assert_eq!(stored["rcpt_to"], serde_json::json!(["Morty@example.com"]));
    assert_eq!(stored["snippet"], "Hello world!");
    let raw =
        b"From: Rick@example.com\r\nTo: Morty@example.com\r\nSubject: Hei!\r\n\r\nHello world!\r\n";
    assert_eq!(stored["size"], raw.len());
    let id = stored["id"].as_u64().unwrap();
    assert_eq!(catcher.raw(id), raw);

    let log = format!(
        "message {id} from <Rick@example.com> to Morty@example.com: \"Hei!\", {} bytes",
        raw.len()
    );
    assert!(
        catcher
            .stderr
            .wait_until(PROMPT, |lines| lines.iter().any(|l| l.ends_with(&log)))
            .is_some(),
        "no log line ending {log:?}:\n{}",
        catcher.stderr.text()
    );
}

// ---------------------------------------------------------------------------------------
// Reading the store

const ALTERNATIVE: &str = "From: Web <web@example.test>\r\n\
To: you@example.test\r\n\
Subject: alternative\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/alternative; boundary=\"sep\"\r\n\
\r\n\
--sep\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Hello plain\r\n\
--sep\r\n\
Content-Type: text/html; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
<p class=3D\"greet\">Hello <b>HTML</b> caf=C3=A9</p>\r\n\
--sep--\r\n";

#[test]
fn list_show_and_delete_work_while_the_server_runs() {
    let catcher = Catcher::start();
    let mut smtp = Smtp::ehlo(catcher.addr());
    let first = smtp.deliver("a@x.test", &["b@y.test"], &message("first", "one"));
    let second = smtp.deliver("a@x.test", &["b@y.test"], &message("second", "two"));
    let third = smtp.deliver("a@x.test", &["b@y.test"], &message("third", "three"));

    // Newest first, cut at --limit.
    let listed = list_json(&catcher.db, 2);
    assert_eq!(ids(&listed), vec![third, second]);
    assert_eq!(listed[0]["subject"], "third");
    let table = catcher
        .cli(&["list"])
        .assert_success("mail list")
        .stdout_text();
    let at = |s: &str| {
        table
            .find(s)
            .unwrap_or_else(|| panic!("no {s:?} in\n{table}"))
    };
    assert!(
        at("third") < at("second") && at("second") < at("first"),
        "{table}"
    );
    let limited = catcher
        .cli(&["list", "--limit", "1"])
        .assert_success("mail list --limit 1")
        .stdout_text();
    assert!(
        limited.contains("third") && !limited.contains("second"),
        "{limited}"
    );

    // --raw gives back every byte of an 8-bit message (DATA) and of arbitrary bytes,
    // bare CR and LF included (BDAT).
    let mut eight_bit =
        b"Subject: 8bit\r\nContent-Type: text/plain; charset=latin1\r\n\r\n".to_vec();
    let all: Vec<u8> = (0u8..=255).filter(|b| *b != b'\r' && *b != b'\n').collect();
    for chunk in all.chunks(60) {
        eight_bit.extend_from_slice(chunk);
        eight_bit.extend_from_slice(b"\r\n");
    }
    smtp.cmd("MAIL FROM:<a@x.test> BODY=8BITMIME\r\n", &["250 2.1.0 Ok"]);
    smtp.cmd("RCPT TO:<b@y.test>\r\n", &["250 2.1.5 Ok"]);
    smtp.cmd("DATA\r\n", &["354 *"]);
    smtp.send(&dot_stuff(&eight_bit));
    let eight_bit_id = queued_id(&smtp.cmd(".\r\n", &["250 *"])[0]);
    assert_eq!(catcher.raw(eight_bit_id), eight_bit);

    let mut binary = b"Subject: binary\r\n\r\n".to_vec();
    binary.extend((0u8..=255).rev());
    binary.extend(0u8..=255);
    smtp.cmd("MAIL FROM:<a@x.test>\r\n", &["250 2.1.0 Ok"]);
    smtp.cmd("RCPT TO:<b@y.test>\r\n", &["250 2.1.5 Ok"]);
    let mut wire = format!("BDAT {} LAST\r\n", binary.len()).into_bytes();
    wire.extend_from_slice(&binary);
    smtp.send(&wire);
    let binary_id = queued_id(&smtp.reply()[0]);
    assert_eq!(catcher.raw(binary_id), binary);

    // --html decodes the HTML part; the default view shows the text part.
    let alt = smtp.deliver(
        "web@example.test",
        &["you@example.test"],
        ALTERNATIVE.as_bytes(),
    );
    smtp.quit();
    let html = catcher
        .cli(&["show", &alt.to_string(), "--html"])
        .assert_success("mail show --html")
        .stdout_text();
    assert_eq!(
        html.trim_end(),
        "<p class=\"greet\">Hello <b>HTML</b> café</p>"
    );
    let text = catcher
        .cli(&["show", &alt.to_string()])
        .assert_success("mail show")
        .stdout_text();
    assert!(text.trim_end().ends_with("\n\nHello plain"), "{text}");
    assert!(!text.contains("<b>"), "{text}");
    let no_html = catcher.cli(&["show", &first.to_string(), "--html"]);
    assert_one_error_line(&no_html, "show --html of a plain message");

    // Deleting one, a missing one, then all.
    let out = catcher
        .cli(&["delete", &second.to_string()])
        .assert_success("mail delete ID");
    assert_eq!(out.stdout_text().trim(), "deleted 1 message");
    assert!(!ids(&catcher.list()).contains(&second));
    assert_one_error_line(
        &catcher.cli(&["show", &second.to_string()]),
        "show a deleted id",
    );
    let missing = catcher.cli(&["delete", "999"]);
    assert!(!missing.status.success(), "{}", missing.describe());
    let out = catcher
        .cli(&["delete", "--all"])
        .assert_success("mail delete --all");
    assert_eq!(out.stdout_text().trim(), "deleted 5 messages");
    assert!(catcher.list().is_empty());
    assert_one_error_line(
        &catcher.cli(&["show", "latest"]),
        "show latest of an empty store",
    );
}

/// A failing reading command: non-zero, one line on stderr that names the problem,
/// nothing on stdout, no panic.
fn assert_one_error_line(out: &Finished, what: &str) {
    out.one_error_line();
    assert!(out.stdout.is_empty(), "{what}: {}", out.describe());
}

#[test]
fn show_999_and_a_missing_store_give_one_clear_line() {
    let catcher = Catcher::start();
    let out = catcher.cli(&["show", "999"]);
    assert_one_error_line(&out, "show 999");
    assert!(out.stderr.contains("999"), "{}", out.describe());

    let dir = tempfile::tempdir().unwrap();
    let nowhere = dir.path().join("no-such.db");
    for args in [&["list"][..], &["show", "latest"], &["delete", "--all"]] {
        let out = mail_cli(&nowhere, args);
        assert_one_error_line(&out, &format!("{args:?} on a missing store"));
        assert!(out.stderr.contains("no-such.db"), "{}", out.describe());
        assert!(!nowhere.exists(), "{args:?} created the store");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "{args:?} left files"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Listening

#[test]
fn a_port_in_use_is_one_line_naming_smtp_and_leaves_no_store() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mail.db");
    let out = sokkel(["mail", "serve", "--no-http", "--smtp", &addr, "--db"])
        .arg(&db)
        .run();
    let line = out.one_error_line();
    assert!(
        line.contains("already in use") && line.contains("--smtp"),
        "{}",
        out.describe()
    );
    assert!(!db.exists(), "a failed start left a store behind");
}

#[test]
fn listens_on_ipv4_and_ipv6_at_once() {
    let catcher = Catcher::with(&["--smtp", "127.0.0.1:0", "--smtp", "[::1]:0"]);
    assert_eq!(catcher.smtp.len(), 2);
    assert!(catcher.smtp[0].is_ipv4() && catcher.smtp[1].is_ipv6());
    assert!(
        catcher
            .stdout
            .snapshot()
            .contains(&format!("mail is kept in {}", catcher.db.display()))
    );
    for (n, addr) in catcher.smtp.iter().enumerate() {
        let mut smtp = Smtp::ehlo(*addr);
        smtp.deliver(
            "a@x.test",
            &["b@y.test"],
            &message(&format!("family {n}"), "hi"),
        );
        smtp.quit();
    }
    let listed = catcher.list();
    assert_eq!(listed.len(), 2);
    let env = envelope(&catcher, listed[0]["id"].as_u64().unwrap());
    assert!(
        env.iter().any(|l| l.starts_with("Client:    [::1]:")),
        "{env:#?}"
    );
}

#[test]
fn connections_over_max_conns_get_421_4_7_0_and_a_freed_slot_is_reused() {
    let catcher = Catcher::with(&["--max-conns", "2"]);
    let first = Smtp::ehlo(catcher.addr());
    let _second = Smtp::ehlo(catcher.addr());
    let mut third = Smtp::connect(catcher.addr());
    let got = third.lines_until_closed(PROMPT);
    let busy = format!("421 4.7.0 {HOST} Too many connections; try again later");
    kit::smtp::assert_lines(&got, &[&busy], "a third connection");

    first.quit();
    // The slot is freed when the server has finished the first session; try a while.
    let deadline = Instant::now() + PROMPT;
    loop {
        let mut next = Smtp::connect(catcher.addr());
        let line = next.line();
        if line.as_deref() == Some(greeting().as_str()) {
            break;
        }
        assert_eq!(line.as_deref(), Some(busy.as_str()));
        assert!(Instant::now() < deadline, "the freed slot never came back");
        thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------
// Crash: SIGKILL under load loses no acknowledged message

#[test]
fn sigkill_under_load_loses_no_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mail.db");
    let mut catcher = Catcher::builder().db(&db).start();

    let senders = Senders::start(catcher.addr(), 6, 5000, Duration::from_secs(20));
    // Kill once a good number of messages are in, while the senders are still going.
    senders.wait_for(300, Duration::from_secs(10));
    catcher.kill_hard();
    let (ends, acked) = senders.join();
    assert!(
        !acked.is_empty(),
        "no message was acknowledged before the kill:\n{}",
        catcher.stderr.text()
    );
    assert!(
        ends.iter().all(|end| matches!(end, SenderEnd::Broken(_))),
        "every sender should have been cut off mid-run by the kill: {ends:?}"
    );
    eprintln!("{} messages acknowledged before SIGKILL", acked.len());

    assert_eq!(integrity_check(&db), "ok");
    let mut restarted = Catcher::builder().db(&db).start();
    assert_all_kept(&db, &acked);

    // The restarted server takes mail, under a new id.
    let mut smtp = Smtp::ehlo(restarted.addr());
    let after = message("after the crash", "alive");
    let id = smtp.deliver("a@x.test", &["b@y.test"], &after);
    assert!(acked.iter().all(|a| a.id != id), "id {id} given out twice");
    assert_eq!(restarted.raw(id), after);
    smtp.quit();
    sigterm(restarted.pid());
    assert_eq!(restarted.wait_exit(Duration::from_secs(15)).code(), Some(0));
    assert_eq!(integrity_check(&db), "ok");
}
