//! The POP3 server over real sockets on 127.0.0.1, with a real store in a temporary
//! directory: raw bytes in, exact responses out, and what the store holds after.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sokkel_net::auth::Credentials;
use sokkel_net::tls::ServerTls;
use sokkel_pop3::{Pop3Config, Pop3Summary, serve};
use sokkel_store::{Deliver, Envelope, MessageId, NewMessage, Store, StoreEvent, StoreOptions};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls;

/// How long anything that should happen at once on loopback may take.
const PROMPT: Duration = Duration::from_secs(10);

fn test_config() -> Pop3Config {
    Pop3Config {
        hostname: "test.local".into(),
        failed_auth_delay: Duration::from_millis(10),
        ..Pop3Config::default()
    }
}

fn message_to(rcpt_to: &str, raw: &[u8]) -> NewMessage {
    NewMessage {
        envelope: Envelope {
            mail_from: "rick@example.com".into(),
            rcpt_to: vec![rcpt_to.into()],
            helo: "client.test".into(),
            client_addr: "127.0.0.1:40000".parse().unwrap(),
            bare_lf: false,
            smtputf8: false,
            tls: None,
            auth_user: None,
        },
        received_at: SystemTime::now(),
        raw: raw.to_vec(),
    }
}

/// A store in a temporary directory.
struct TestStore {
    dir: TempDir,
    store: Store,
}

impl TestStore {
    fn new() -> Self {
        let dir = TempDir::new().unwrap();
        let store = open_store(dir.path());
        TestStore { dir, store }
    }

    async fn add(&self, rcpt_to: &str, raw: &[u8]) -> MessageId {
        self.store.deliver(message_to(rcpt_to, raw)).await.unwrap()
    }

    fn ids(&self) -> Vec<MessageId> {
        let drop = self.store.maildrop(None).unwrap();
        drop.into_iter().map(|(id, _)| id).collect()
    }
}

fn open_store(dir: &Path) -> Store {
    Store::open(&dir.join("mail.db"), StoreOptions::default()).unwrap()
}

/// A running POP3 server; `stop` shuts it down and returns its summary.
struct Server {
    plain: SocketAddr,
    implicit: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Pop3Summary>,
}

impl Server {
    fn start(config: Pop3Config, store: &Store) -> Server {
        Server::start_with(config, store, None, Credentials::accept_any())
    }

    fn start_with(
        config: Pop3Config,
        store: &Store,
        tls: Option<ServerTls>,
        credentials: Credentials,
    ) -> Server {
        let bind = || {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.set_nonblocking(true).unwrap();
            listener
        };
        let plain = bind();
        let plain_addr = plain.local_addr().unwrap();
        let implicit = tls.as_ref().map(|_| bind());
        let implicit_addr = implicit.as_ref().map(|l| l.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let mailbox = Arc::new(store.clone());
        let task = tokio::spawn(async move {
            serve(
                config,
                vec![plain],
                implicit.into_iter().collect(),
                tls,
                credentials,
                mailbox,
                async {
                    let _ = stopped.await;
                },
            )
            .await
            .expect("the server runs")
        });
        Server {
            plain: plain_addr,
            implicit: implicit_addr,
            stop: Some(stop),
            task,
        }
    }

    async fn client(&self) -> Client<TcpStream> {
        let tcp = TcpStream::connect(self.plain).await.unwrap();
        let mut client = Client::new(tcp);
        let greeting = client.line().await;
        assert_eq!(
            greeting, "+OK sokkel POP3 ready on test.local",
            "no APOP timestamp"
        );
        client
    }

    /// Shuts the server down and waits until every session is over.
    async fn stop(mut self) -> Pop3Summary {
        let _ = self.stop.take().expect("running").send(());
        tokio::time::timeout(PROMPT, self.task)
            .await
            .expect("the server stops")
            .unwrap()
    }
}

/// A POP3 client speaking raw lines, with a deadline on every read.
struct Client<S> {
    stream: BufReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    fn new(stream: S) -> Self {
        Client {
            stream: BufReader::new(stream),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.get_mut().write_all(bytes).await.unwrap();
    }

    /// One line without its CRLF; panics at EOF or after the deadline.
    async fn line(&mut self) -> String {
        let line = self.raw_line().await;
        assert!(!line.is_empty(), "the server closed the connection");
        let text = String::from_utf8(line).unwrap();
        text.strip_suffix("\r\n")
            .unwrap_or_else(|| panic!("line without CRLF: {text:?}"))
            .to_owned()
    }

    async fn raw_line(&mut self) -> Vec<u8> {
        let mut line = Vec::new();
        tokio::time::timeout(PROMPT, self.stream.read_until(b'\n', &mut line))
            .await
            .expect("a line within the deadline")
            .unwrap();
        line
    }

    /// Sends one command and returns the status line.
    async fn command(&mut self, command: &str) -> String {
        self.send(format!("{command}\r\n").as_bytes()).await;
        self.line().await
    }

    /// The body of a multi-line response, dot-unstuffed, exactly as the bytes came.
    async fn body(&mut self) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let line = self.raw_line().await;
            assert!(!line.is_empty(), "the server closed inside a response");
            if line == b".\r\n" {
                return body;
            }
            body.extend_from_slice(line.strip_prefix(b".").unwrap_or(&line));
        }
    }

    async fn login(&mut self, user: &str, password: &str) -> String {
        assert_eq!(self.command(&format!("USER {user}")).await, "+OK send PASS");
        self.command(&format!("PASS {password}")).await
    }

    /// Waits for the server to close the connection.
    async fn expect_closed(&mut self) {
        let mut rest = Vec::new();
        tokio::time::timeout(PROMPT, self.stream.read_to_end(&mut rest))
            .await
            .expect("the server closes the connection")
            .unwrap();
        assert!(
            rest.is_empty(),
            "unexpected: {:?}",
            String::from_utf8_lossy(&rest)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retr_is_byte_identical_and_quit_deletes_what_dele_marked() {
    let store = TestStore::new();
    let first =
        b"From: a@x.test\r\nSubject: one\r\n\r\n.starts with a dot\r\n..two\r\n.\r\nend\r\n";
    let second = b"Subject: no final line break\r\n\r\nlast line";
    let id1 = store.add("morty@example.com", first).await;
    let id2 = store.add("morty@example.com", second).await;
    // A SQLite delivery is announced once its rows are written, after the
    // 250; a read waits for that, so these two are not heard of below.
    store.store.count().unwrap();
    let mut events = store.store.subscribe();
    let server = Server::start(test_config(), &store.store);

    let mut client = server.client().await;
    assert_eq!(
        client.login("morty", "anything").await,
        format!(
            "+OK morty has 2 messages ({} octets)",
            first.len() + second.len()
        )
    );
    assert_eq!(
        client.command("UIDL").await,
        "+OK unique-id listing follows"
    );
    assert_eq!(
        client.body().await,
        format!("1 {id1}\r\n2 {id2}\r\n").into_bytes()
    );
    assert_eq!(
        client.command("RETR 1").await,
        format!("+OK {} octets", first.len())
    );
    assert_eq!(client.body().await, first);
    assert_eq!(
        client.command("RETR 2").await,
        format!("+OK {} octets", second.len())
    );
    assert_eq!(
        client.body().await,
        b"Subject: no final line break\r\n\r\nlast line\r\n",
        "a CRLF is added only where the message lacks one"
    );
    assert_eq!(
        client.command("TOP 1 1").await,
        "+OK top of message follows"
    );
    assert_eq!(
        client.body().await,
        b"From: a@x.test\r\nSubject: one\r\n\r\n.starts with a dot\r\n"
    );
    assert_eq!(client.command("DELE 1").await, "+OK message 1 deleted");
    assert_eq!(store.ids(), vec![id1, id2], "DELE only marks");
    assert_eq!(
        client.command("QUIT").await,
        "+OK sokkel POP3 signing off (1 message deleted)"
    );
    client.expect_closed().await;

    assert_eq!(store.ids(), vec![id2], "QUIT deleted message 1");
    assert_eq!(
        tokio::time::timeout(PROMPT, events.recv())
            .await
            .unwrap()
            .unwrap(),
        StoreEvent::Deleted(vec![id1]),
        "the deletion is announced to the web page"
    );
    let summary = server.stop().await;
    assert_eq!(summary.sessions, 1);
    let unread: Vec<bool> = store
        .store
        .list(&Default::default())
        .unwrap()
        .iter()
        .map(|m| m.read)
        .collect();
    assert_eq!(
        unread,
        vec![true],
        "a message fetched with RETR is marked read"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rset_and_a_dropped_connection_delete_nothing() {
    let store = TestStore::new();
    let ids = vec![
        store.add("a@x.test", b"Subject: 1\r\n\r\n1\r\n").await,
        store.add("a@x.test", b"Subject: 2\r\n\r\n2\r\n").await,
    ];
    let server = Server::start(test_config(), &store.store);

    let mut client = server.client().await;
    client.login("a", "b").await;
    client.command("DELE 1").await;
    assert_eq!(
        client.command("RSET").await,
        "+OK maildrop has 2 messages (34 octets)"
    );
    assert_eq!(
        client.command("QUIT").await,
        "+OK sokkel POP3 signing off (0 messages deleted)"
    );

    let mut client = server.client().await;
    client.login("a", "b").await;
    client.command("DELE 1").await;
    client.command("DELE 2").await;
    drop(client);

    server.stop().await;
    assert_eq!(store.ids(), ids, "only QUIT deletes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_commands_in_one_write_gets_every_response_in_order() {
    let store = TestStore::new();
    let id = store.add("a@x.test", b"Subject: 1\r\n\r\nbody\r\n").await;
    let server = Server::start(test_config(), &store.store);
    let mut client = server.client().await;
    client
        .send(b"CAPA\r\nUSER a\r\nPASS b\r\nSTAT\r\nLIST\r\nUIDL 1\r\nRETR 1\r\nDELE 1\r\nRETR 1\r\nQUIT\r\n")
        .await;
    let mut all = Vec::new();
    tokio::time::timeout(PROMPT, client.stream.read_to_end(&mut all))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        String::from_utf8(all).unwrap(),
        format!(
            "+OK capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\n\
             AUTH-RESP-CODE\r\nUSER\r\nSASL PLAIN\r\nIMPLEMENTATION sokkel\r\n.\r\n\
             +OK send PASS\r\n+OK a has 1 message (20 octets)\r\n+OK 1 20\r\n\
             +OK 1 message (20 octets)\r\n1 20\r\n.\r\n+OK 1 {id}\r\n\
             +OK 20 octets\r\nSubject: 1\r\n\r\nbody\r\n.\r\n+OK message 1 deleted\r\n\
             -ERR message 1 already deleted\r\n\
             +OK sokkel POP3 signing off (1 message deleted)\r\n"
        )
    );
    server.stop().await;
    assert!(store.ids().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_message_streams_through_byte_identical() {
    let store = TestStore::new();
    let mut raw = b"Subject: big\r\n\r\n".to_vec();
    let mut n = 0u64;
    while raw.len() < 6 << 20 {
        raw.extend_from_slice(
            format!(".line {n} of a big message, with a dot first\r\n").as_bytes(),
        );
        n += 1;
    }
    store.add("a@x.test", &raw).await;
    let server = Server::start(test_config(), &store.store);
    let mut client = server.client().await;
    client.login("a", "b").await;
    assert_eq!(
        client.command("RETR 1").await,
        format!("+OK {} octets", raw.len())
    );
    let body = client.body().await;
    assert_eq!(body.len(), raw.len());
    assert!(body == raw, "the body differs from the stored message");
    assert_eq!(client.command("NOOP").await, "+OK");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_deleted_by_another_reader_is_an_error_not_a_crash() {
    let store = TestStore::new();
    let gone = store.add("a@x.test", b"Subject: 1\r\n\r\n1\r\n").await;
    store.add("a@x.test", b"Subject: 2\r\n\r\n2\r\n").await;
    let server = Server::start(test_config(), &store.store);
    let mut client = server.client().await;
    client.login("a", "b").await;
    store.store.delete(&[gone]).unwrap();
    assert_eq!(
        client.command("RETR 1").await,
        "-ERR message 1 is gone: another reader deleted it"
    );
    assert_eq!(client.command("RETR 2").await, "+OK 17 octets");
    assert_eq!(client.body().await, b"Subject: 2\r\n\r\n2\r\n");
    client.command("DELE 1").await;
    assert_eq!(
        client.command("QUIT").await,
        "+OK sokkel POP3 signing off (0 messages deleted)"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_are_refused_and_too_many_close_the_session() {
    let store = TestStore::new();
    let credentials = Credentials::parse("morty:right\n").unwrap();
    let server = Server::start_with(test_config(), &store.store, None, credentials);
    let mut client = server.client().await;
    assert_eq!(
        client.login("morty", "wrong").await,
        "-ERR [AUTH] invalid user name or password"
    );
    assert_eq!(
        client.login("nobody", "right").await,
        "-ERR [AUTH] invalid user name or password"
    );
    assert_eq!(
        client.login("morty", "right").await,
        "+OK morty has 0 messages (0 octets)"
    );

    let mut client = server.client().await;
    for _ in 0..2 {
        assert_eq!(
            client.login("morty", "wrong").await,
            "-ERR [AUTH] invalid user name or password"
        );
    }
    assert_eq!(
        client.command("AUTH PLAIN AG1vcnR5AHdyb25n").await,
        "-ERR [AUTH] invalid user name or password; too many failures, closing"
    );
    client.expect_closed().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_recipient_logins_see_only_their_mail() {
    let store = TestStore::new();
    let for_morty = store.add("morty@example.com", b"Subject: m\r\n\r\n").await;
    let for_rick = store.add("rick@example.com", b"Subject: r\r\n\r\n").await;
    let config = Pop3Config {
        per_recipient: true,
        ..test_config()
    };
    let server = Server::start(config, &store.store);
    for (user, id) in [("morty@example.com", for_morty), ("RICK", for_rick)] {
        let mut client = server.client().await;
        assert!(client.login(user, "x").await.contains("has 1 message"));
        assert_eq!(client.command("UIDL 1").await, format!("+OK 1 {id}"));
        assert!(client.command("UIDL 2").await.starts_with("-ERR"));
    }
    let mut client = server.client().await;
    assert_eq!(
        client.login("summer@example.com", "x").await,
        "+OK summer@example.com has 0 messages (0 octets)"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uids_survive_a_restart_and_other_deletions() {
    let store = TestStore::new();
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(
            store
                .add("a@x.test", format!("Subject: {n}\r\n\r\n").as_bytes())
                .await,
        );
    }
    let uidl = |ids: &[MessageId]| -> Vec<u8> {
        ids.iter()
            .enumerate()
            .map(|(i, id)| format!("{} {id}\r\n", i + 1))
            .collect::<String>()
            .into_bytes()
    };
    let server = Server::start(test_config(), &store.store);
    let mut client = server.client().await;
    client.login("a", "b").await;
    client.command("UIDL").await;
    assert_eq!(client.body().await, uidl(&ids));
    drop(client);
    server.stop().await;

    // A new process: the same file opened again.
    let path = store.dir.path().to_owned();
    drop(store.store);
    let reopened = open_store(&path);
    reopened.delete(&[ids[0]]).unwrap();
    let server = Server::start(test_config(), &reopened);
    let mut client = server.client().await;
    client.login("a", "b").await;
    client.command("UIDL").await;
    assert_eq!(
        client.body().await,
        uidl(&ids[1..]),
        "same UIDs, renumbered"
    );
    drop(client);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extra_sessions_are_told_to_come_back_later() {
    let store = TestStore::new();
    let config = Pop3Config {
        max_sessions: 1,
        ..test_config()
    };
    let server = Server::start(config, &store.store);
    let mut first = server.client().await;
    let tcp = TcpStream::connect(server.plain).await.unwrap();
    let mut second = Client::new(tcp);
    assert_eq!(
        second.line().await,
        "-ERR [SYS/TEMP] too many sessions; try again later"
    );
    second.expect_closed().await;
    assert_eq!(first.command("CAPA").await, "+OK capability list follows");
    drop(first);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_logged_out_and_nothing_is_deleted() {
    let store = TestStore::new();
    let id = store.add("a@x.test", b"Subject: 1\r\n\r\n").await;
    let config = Pop3Config {
        command_timeout: Duration::from_millis(300),
        ..test_config()
    };
    let server = Server::start(config, &store.store);
    let mut client = server.client().await;
    client.login("a", "b").await;
    client.command("DELE 1").await;
    assert_eq!(
        client.line().await,
        "-ERR autologout: idle for too long, nothing deleted"
    );
    client.expect_closed().await;
    server.stop().await;
    assert_eq!(store.ids(), vec![id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_tells_idle_clients_and_returns() {
    let store = TestStore::new();
    let server = Server::start(test_config(), &store.store);
    let mut client = server.client().await;
    client.login("a", "b").await;
    let stopping = tokio::spawn(server.stop());
    assert_eq!(
        client.line().await,
        "-ERR [SYS/TEMP] server shutting down, nothing deleted"
    );
    client.expect_closed().await;
    let summary = stopping.await.unwrap();
    assert_eq!(summary.cut_off, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_too_long_is_refused_and_the_session_goes_on() {
    let store = TestStore::new();
    let server = Server::start(test_config(), &store.store);
    let mut client = server.client().await;
    let mut long = vec![b'A'; 100_000];
    long.extend_from_slice(b"\r\n");
    client.send(&long).await;
    assert_eq!(client.line().await, "-ERR line too long (max 1024 octets)");
    assert_eq!(client.command("CAPA").await, "+OK capability list follows");
    drop(client);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// TLS

/// A certificate for 127.0.0.1 and localhost, as the server's PEM files and as
/// the client's only trusted root.
struct TestCertificate {
    _dir: TempDir,
    server: ServerTls,
    connector: TlsConnector,
}

fn test_certificate() -> TestCertificate {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let dir = TempDir::new().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let server = ServerTls::from_pem_files(&cert, &key).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certified.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TestCertificate {
        _dir: dir,
        server,
        connector: TlsConnector::from(Arc::new(config)),
    }
}

fn server_name() -> rustls::pki_types::ServerName<'static> {
    rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stls_upgrades_and_discards_what_was_pipelined_behind_it() {
    let store = TestStore::new();
    let id = store.add("a@x.test", b"Subject: 1\r\n\r\n").await;
    let cert = test_certificate();
    let server = Server::start_with(
        test_config(),
        &store.store,
        Some(cert.server.clone()),
        Credentials::accept_any(),
    );
    let mut client = server.client().await;
    assert_eq!(client.command("CAPA").await, "+OK capability list follows");
    assert!(
        client
            .body()
            .await
            .ends_with(b"STLS\r\nIMPLEMENTATION sokkel\r\n")
    );
    // One write: STLS and a whole session behind it, which must never run.
    client
        .send(b"STLS\r\nUSER a\r\nPASS b\r\nDELE 1\r\nQUIT\r\n")
        .await;
    assert_eq!(client.line().await, "+OK begin TLS negotiation");
    let tcp = client.stream.into_inner();
    let tls = tokio::time::timeout(PROMPT, cert.connector.connect(server_name(), tcp))
        .await
        .unwrap()
        .expect("the TLS handshake after STLS");
    let mut client = Client::new(tls);
    assert_eq!(client.command("PASS b").await, "-ERR send USER first");
    assert_eq!(client.command("CAPA").await, "+OK capability list follows");
    let capa = String::from_utf8(client.body().await).unwrap();
    assert!(!capa.contains("STLS"), "{capa}");
    assert_eq!(client.command("STLS").await, "-ERR TLS is already in use");
    assert_eq!(
        client.login("a", "b").await,
        "+OK a has 1 message (14 octets)"
    );
    assert_eq!(
        client.command("QUIT").await,
        "+OK sokkel POP3 signing off (0 messages deleted)"
    );
    server.stop().await;
    assert_eq!(
        store.ids(),
        vec![id],
        "the pipelined DELE and QUIT never ran"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_tls_serves_pop3_inside_tls_from_the_first_byte() {
    let store = TestStore::new();
    store.add("a@x.test", b"Subject: 1\r\n\r\nhi\r\n").await;
    let cert = test_certificate();
    let server = Server::start_with(
        test_config(),
        &store.store,
        Some(cert.server.clone()),
        Credentials::accept_any(),
    );
    let tcp = TcpStream::connect(server.implicit.unwrap()).await.unwrap();
    let tls = tokio::time::timeout(PROMPT, cert.connector.connect(server_name(), tcp))
        .await
        .unwrap()
        .expect("the TLS handshake");
    let mut client = Client::new(tls);
    assert_eq!(client.line().await, "+OK sokkel POP3 ready on test.local");
    assert_eq!(client.command("CAPA").await, "+OK capability list follows");
    let capa = String::from_utf8(client.body().await).unwrap();
    assert!(
        !capa.contains("STLS") && capa.contains("SASL PLAIN"),
        "{capa}"
    );
    assert_eq!(
        client.command("AUTH PLAIN AGEAYg==").await,
        "+OK a has 1 message (18 octets)"
    );
    assert_eq!(client.command("RETR 1").await, "+OK 18 octets");
    assert_eq!(client.body().await, b"Subject: 1\r\n\r\nhi\r\n");
    server.stop().await;
}

#[tokio::test]
async fn implicit_tls_without_a_certificate_is_a_clear_error() {
    let store = TestStore::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let err = serve(
        test_config(),
        Vec::new(),
        vec![listener],
        None,
        Credentials::accept_any(),
        Arc::new(store.store.clone()),
        async {},
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("needs a certificate"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_trickled_a_byte_at_a_time_is_logged_out_at_the_whole_line_deadline() {
    // Issue #11: the timeout used to restart on every byte, so a byte now and then
    // kept a session open for ever.
    let store = TestStore::new();
    let config = Pop3Config {
        command_timeout: Duration::from_millis(600),
        ..test_config()
    };
    let server = Server::start(config, &store.store);
    let mut client = server.client().await;
    let started = tokio::time::Instant::now();
    // 20 bytes at 100 ms each: the line would take 2 s.
    for &byte in b"NOOP NOOP NOOP NOOP\n" {
        if client.stream.get_mut().write_all(&[byte]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if started.elapsed() > Duration::from_millis(1500) {
            break;
        }
    }
    assert_eq!(
        client.line().await,
        "-ERR autologout: idle for too long, nothing deleted"
    );
    client.expect_closed().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_take_every_session() {
    // Issue #11: a per-address share of the cap. 127.0.0.2 stands for a remote
    // host (127.0.0.1 and ::1 are exempt).
    let store = TestStore::new();
    let config = Pop3Config {
        max_sessions: 8,
        max_sessions_per_address: 2,
        ..test_config()
    };
    let server = Server::start(config, &store.store);
    let connect_from = |source: [u8; 4]| async move {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::from((source, 0))).unwrap();
        Client::new(socket.connect(server.plain).await.unwrap())
    };
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut client = connect_from([127, 0, 0, 2]).await;
        assert!(client.line().await.starts_with("+OK "));
        held.push(client);
    }
    let mut third = connect_from([127, 0, 0, 2]).await;
    assert_eq!(
        third.line().await,
        "-ERR [SYS/TEMP] too many sessions; try again later"
    );
    third.expect_closed().await;
    let mut elsewhere = connect_from([127, 0, 0, 3]).await;
    assert!(elsewhere.line().await.starts_with("+OK "));
    assert_eq!(
        elsewhere.command("CAPA").await,
        "+OK capability list follows"
    );
    drop((held, elsewhere));
    server.stop().await;
}
