//! The SMTP server shell over real sockets on 127.0.0.1, with a sink in memory:
//! the deadlines for a whole command line and a whole message, the budget for
//! messages in flight, and the per-address share of the session cap (issue #11).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sokkel_message::{Deliver, DeliverError, MessageId, NewMessage};
use sokkel_smtp::server::session::SessionConfig;
use sokkel_smtp::server::shell::{Listeners, ServeSummary, ServerConfig, serve};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long anything that should happen at once on loopback may take.
const PROMPT: Duration = Duration::from_secs(10);

/// Keeps every message in memory.
#[derive(Debug, Default)]
struct Sink {
    messages: Mutex<Vec<NewMessage>>,
}

impl Deliver for Sink {
    async fn deliver(&self, message: NewMessage) -> Result<MessageId, DeliverError> {
        let mut messages = self.messages.lock().unwrap();
        messages.push(message);
        Ok(MessageId(messages.len() as i64))
    }
}

fn config() -> ServerConfig {
    ServerConfig {
        session: Arc::new(SessionConfig {
            hostname: "test.local".into(),
            ..SessionConfig::default()
        }),
        max_conns: 100,
        max_conns_per_address: 100,
        command_timeout: Duration::from_secs(30),
        data_timeout: Duration::from_secs(30),
        data_total_timeout: Duration::from_secs(60),
        max_inflight_memory: 512 << 20,
        shutdown_grace: Duration::from_secs(1),
        tls: None,
        credentials: None,
        auth_failure_delay: Duration::from_millis(10),
        counters: Arc::default(),
        proxy_protocol: false,
    }
}

struct Server {
    addr: SocketAddr,
    sink: Arc<Sink>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<ServeSummary>,
}

impl Server {
    fn start(config: ServerConfig) -> Server {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let sink = Arc::new(Sink::default());
        let (stop, stopped) = oneshot::channel::<()>();
        let listeners = Listeners {
            smtp: vec![listener],
            smtps: Vec::new(),
        };
        let task = tokio::spawn(serve(config, listeners, sink.clone(), async {
            let _ = stopped.await;
        }));
        let task = tokio::spawn(async move { task.await.unwrap().expect("the server runs") });
        Server {
            addr,
            sink,
            stop: Some(stop),
            task,
        }
    }

    /// A client from 127.0.0.1, greeting read.
    async fn client(&self) -> Client {
        Client::connect(TcpStream::connect(self.addr).await.unwrap()).await
    }

    /// A raw connection from another loopback address (127.0.0.x), greeting unread.
    async fn connect_from(&self, source: [u8; 4]) -> TcpStream {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::from((source, 0))).unwrap();
        socket.connect(self.addr).await.unwrap()
    }

    async fn stop(mut self) -> ServeSummary {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(PROMPT, self.task)
            .await
            .expect("the server stops")
            .unwrap()
    }
}

struct Client {
    stream: BufReader<TcpStream>,
}

impl Client {
    async fn connect(stream: TcpStream) -> Client {
        let mut client = Client {
            stream: BufReader::new(stream),
        };
        let greeting = client.line().await;
        assert!(greeting.starts_with("220 "), "{greeting}");
        client
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.get_mut().write_all(bytes).await.unwrap();
    }

    /// One line, or "" at EOF.
    async fn line(&mut self) -> String {
        let mut line = String::new();
        tokio::time::timeout(PROMPT, self.stream.read_line(&mut line))
            .await
            .expect("a line within the deadline")
            .unwrap();
        line.trim_end().to_owned()
    }

    /// The last line of the next reply.
    async fn reply(&mut self) -> String {
        loop {
            let line = self.line().await;
            if line.len() < 4 || line.as_bytes()[3] == b' ' {
                return line;
            }
        }
    }

    async fn command(&mut self, command: &str) -> String {
        self.send(format!("{command}\r\n").as_bytes()).await;
        self.reply().await
    }

    /// EHLO, MAIL and RCPT, each answered 250.
    async fn envelope(&mut self) {
        assert!(self.command("EHLO client.test").await.starts_with("250 "));
        assert!(
            self.command("MAIL FROM:<a@x.test>")
                .await
                .starts_with("250 ")
        );
        assert!(self.command("RCPT TO:<b@y.test>").await.starts_with("250 "));
    }

    /// A small message: envelope, DATA, content, and the reply to the final dot.
    async fn small_message(&mut self) -> String {
        self.envelope().await;
        assert!(self.command("DATA").await.starts_with("354 "));
        self.send(b"Subject: hi\r\n\r\nhello\r\n.\r\n").await;
        self.reply().await
    }
}

#[tokio::test]
async fn a_command_line_trickled_a_byte_at_a_time_is_cut_off_at_the_whole_line_deadline() {
    // Issue #11: the command timeout used to restart on every byte, so a byte now
    // and then kept a session open for ever.
    let server = Server::start(ServerConfig {
        command_timeout: Duration::from_millis(600),
        ..config()
    });
    let mut slow = server.client().await;
    let started = tokio::time::Instant::now();
    // 21 bytes at 100 ms each: the line would take 2.1 s.
    for &byte in b"NOOP NOOP NOOP NOOP\r\n" {
        if slow.stream.get_mut().write_all(&[byte]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if started.elapsed() > Duration::from_millis(1500) {
            break;
        }
    }
    let reply = slow.line().await;
    assert!(reply.starts_with("421 4.4.2 "), "{reply}");
    assert_eq!(slow.line().await, "", "and the connection is closed");
    // A client that sends whole lines is not affected by the same timeout.
    let mut quick = server.client().await;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(quick.command("NOOP").await.starts_with("250 "));
    }
    server.stop().await;
}

#[tokio::test]
async fn a_message_trickled_slowly_is_cut_off_at_the_whole_transfer_deadline() {
    // Issue #11: the data timeout bounds each pause, the total timeout the whole.
    let server = Server::start(ServerConfig {
        data_timeout: Duration::from_millis(500),
        data_total_timeout: Duration::from_millis(1500),
        ..config()
    });
    let mut slow = server.client().await;
    slow.envelope().await;
    assert!(slow.command("DATA").await.starts_with("354 "));
    let started = tokio::time::Instant::now();
    // A line every 200 ms: never a pause of 500 ms, but never done either.
    let mut cut = false;
    while started.elapsed() < Duration::from_secs(5) {
        if slow
            .stream
            .get_mut()
            .write_all(b"a line\r\n")
            .await
            .is_err()
        {
            cut = true;
            break;
        }
        let mut probe = String::new();
        let read = tokio::time::timeout(
            Duration::from_millis(200),
            slow.stream.read_line(&mut probe),
        )
        .await;
        if let Ok(read) = read {
            assert!(probe.starts_with("421 4.4.2 "), "{probe:?}");
            assert!(read.is_ok());
            cut = true;
            break;
        }
    }
    assert!(cut, "the transfer was cut off");
    assert!(started.elapsed() >= Duration::from_millis(1400));
    assert!(started.elapsed() < Duration::from_secs(4));
    assert!(server.sink.messages.lock().unwrap().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn pipelined_messages_each_get_their_own_transfer_deadline() {
    // Found by bench/store.py (issue #12): a client that sent the next message's
    // MAIL, RCPT and DATA in the same write as the previous final dot never
    // paused between transfers, so the whole-transfer deadline ran from its
    // first DATA and cut a busy connection off after --data-total-timeout.
    let server = Server::start(ServerConfig {
        data_total_timeout: Duration::from_millis(1000),
        ..config()
    });
    let mut client = server.client().await;
    client.envelope().await;
    assert!(client.command("DATA").await.starts_with("354 "));
    let started = tokio::time::Instant::now();
    let mut sent = 0;
    // Three times the deadline, one message every 200 ms, each well inside it.
    while started.elapsed() < Duration::from_millis(3000) {
        client
            .send(b"Subject: pipelined\r\n\r\nbody\r\n.\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n")
            .await;
        sent += 1;
        for want in ["250 ", "250 ", "250 ", "354 "] {
            let reply = client.reply().await;
            assert!(reply.starts_with(want), "message {sent}: {reply:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    client.send(b"last\r\n.\r\n").await;
    assert!(client.reply().await.starts_with("250 "));
    assert_eq!(server.sink.messages.lock().unwrap().len(), sent + 1);
    server.stop().await;
}

#[tokio::test]
async fn data_beyond_the_budget_for_messages_in_flight_gets_452_and_the_catcher_goes_on() {
    // Issue #11: 100 clients holding an unfinished 31 MiB DATA took 3.4 GB.
    let server = Server::start(ServerConfig {
        max_inflight_memory: 4 << 20,
        ..config()
    });
    let line = [b'x'; 1022];
    // Four clients hold 700 KiB of unfinished content each: their buffers (1 MiB
    // each) take the whole budget...
    let mut holders = Vec::new();
    for _ in 0..4 {
        let mut holder = server.client().await;
        holder.envelope().await;
        assert!(holder.command("DATA").await.starts_with("354 "));
        for _ in 0..700 {
            holder.send(&line).await;
            holder.send(b"\r\n").await;
        }
        holders.push(holder);
    }
    // ...so another client's new DATA gets 452 4.3.1 (once the server has read
    // what they sent), and its session goes on.
    let mut other = server.client().await;
    let mut refused = None;
    for _ in 0..100 {
        other.envelope().await;
        let answer = other.command("DATA").await;
        if answer.starts_with("452 4.3.1 ") {
            refused = Some(answer);
            break;
        }
        assert!(answer.starts_with("354 "), "{answer}");
        other.send(b"early\r\n.\r\n").await;
        assert!(other.reply().await.starts_with("250 "));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        refused.is_some(),
        "DATA was refused while the budget was spent"
    );
    assert!(other.command("RSET").await.starts_with("250 "));
    // The held messages complete and give their bytes back.
    for holder in &mut holders {
        holder.send(b".\r\n").await;
        let reply = holder.reply().await;
        assert!(reply.starts_with("250 "), "{reply}");
    }
    // A message that outgrows the whole budget is dropped and refused at its end...
    other.envelope().await;
    assert!(other.command("DATA").await.starts_with("354 "));
    for _ in 0..5 * 1024 {
        other.send(&line).await;
        other.send(b"\r\n").await;
    }
    other.send(b".\r\n").await;
    let reply = other.reply().await;
    assert!(reply.starts_with("452 4.3.1 "), "{reply}");
    // ...and the same session then sends a small one.
    let reply = other.small_message().await;
    assert!(reply.starts_with("250 "), "{reply}");
    let sizes: Vec<usize> = (server.sink.messages.lock().unwrap().iter())
        .map(|m| m.raw.len())
        .collect();
    assert_eq!(
        sizes.iter().filter(|&&size| size == 700 * 1024).count(),
        4,
        "the held messages were kept whole"
    );
    assert!(sizes.iter().all(|&size| size <= 4 << 20), "{sizes:?}");
    server.stop().await;
}

#[tokio::test]
async fn one_address_cannot_take_every_session_slot() {
    // Issue #11: 1,000 sessions from one place filled the cap and every real
    // client got 421. 127.0.0.2 stands for a remote host here (127.0.0.1 and ::1
    // are exempt from the share).
    let server = Server::start(ServerConfig {
        max_conns: 8,
        max_conns_per_address: 2,
        ..config()
    });
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(Client::connect(server.connect_from([127, 0, 0, 2]).await).await);
    }
    let mut third = Client {
        stream: BufReader::new(server.connect_from([127, 0, 0, 2]).await),
    };
    let busy = third.line().await;
    assert_eq!(
        busy,
        "421 4.7.0 test.local Too many connections; try again later"
    );
    // Another address, and the exempt 127.0.0.1, are still served.
    let mut other = Client::connect(server.connect_from([127, 0, 0, 3]).await).await;
    assert!(other.small_message().await.starts_with("250 "));
    let mut local = server.client().await;
    assert!(local.small_message().await.starts_with("250 "));
    // A slot given back is free for its address again.
    drop(held.pop());
    let mut again = None;
    for _ in 0..50 {
        let mut client = Client {
            stream: BufReader::new(server.connect_from([127, 0, 0, 2]).await),
        };
        if client.line().await.starts_with("220 ") {
            again = Some(client);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(again.is_some(), "the freed slot is reused");
    server.stop().await;
}

/// What a server refuses reaches the counters the web API reports as
/// `SMTPRejected` (issue #12): a RCPT out of order and a message over the size
/// limit count, an accepted message and a wrong command do not.
#[tokio::test]
async fn refusals_are_counted_for_the_whole_server() {
    let config = ServerConfig {
        session: Arc::new(SessionConfig {
            hostname: "test.local".into(),
            max_message_size: 64,
            ..SessionConfig::default()
        }),
        ..config()
    };
    let counters = Arc::clone(&config.counters);
    let server = Server::start(config);
    let mut client = server.client().await;
    assert!(client.command("EHLO client.test").await.starts_with("250 "));
    assert!(
        client
            .command("RCPT TO:<b@y.test>")
            .await
            .starts_with("503 ")
    );
    assert!(client.command("WHAT").await.starts_with("500 "));
    assert!(client.small_message().await.starts_with("250 "));
    client.envelope().await;
    assert!(client.command("DATA").await.starts_with("354 "));
    client.send(&[b'x'; 200]).await;
    client.send(b"\r\n.\r\n").await;
    assert!(client.reply().await.starts_with("552 "));
    assert_eq!(counters.rejected(), 2);
    let mut other = server.client().await;
    assert!(other.command("DATA").await.starts_with("503 "));
    assert_eq!(counters.rejected(), 3, "one count for every session");
    server.stop().await;
}
