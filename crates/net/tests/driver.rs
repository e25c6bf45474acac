//! The session driver on real sockets, with a tiny line protocol defined here:
//!
//! ```text
//! S: HELLO
//! C: PING        S: PONG <n>          (n counts this session's PINGs)
//! C: COUNT       S: COUNT <n>
//! C: TLS         S: OK go ahead       (then the TLS handshake)
//! C: NODELAY     S: NODELAY <bool>    (the server socket's TCP_NODELAY)
//! C: BUSY/DONE   S: OK busy/OK done   (busy: a shutdown waits for DONE)
//! C: WATCH       S: OK watching       (then CHANGED <value> on each wake-up)
//! C: LIT         S: + go              (the next line is a literal: while it is
//! C: <literal>   S: QUICKACK <bool>    incomplete the session asks for quick ACKs)
//! C: QUIT        S: BYE
//! ```

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sokkel_net::driver::{self, Link, Protocol, Security, Service, Settings, Step};
use sokkel_net::server::{ConnectionLimit, Served};
use sokkel_net::tls::ServerTls;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// How long any one step of a test may take before it fails: generous, so a
/// loaded machine does not fail it, and still bounded.
const WITHIN: Duration = Duration::from_secs(10);

const BUSY_REPLY: &[u8] = b"ERR too busy\r\n";

struct LineService {
    settings: Settings,
    tls: Option<TlsAcceptor>,
    wake: Option<watch::Receiver<u64>>,
}

impl Service for LineService {
    type Session = LineSession;

    fn settings(&self) -> &Settings {
        &self.settings
    }

    fn tls(&self) -> Option<&TlsAcceptor> {
        self.tls.as_ref()
    }

    fn open(self: &Arc<Self>, _peer: SocketAddr, _tls: bool) -> LineSession {
        LineSession {
            pongs: 0,
            lines: 0,
            busy: false,
            watching: false,
            awaiting_literal: false,
            closing: false,
            wake: self.wake.clone(),
        }
    }

    fn wake_source(&self) -> Option<watch::Receiver<u64>> {
        self.wake.clone()
    }
}

struct LineSession {
    pongs: u64,
    lines: u64,
    busy: bool,
    watching: bool,
    awaiting_literal: bool,
    closing: bool,
    wake: Option<watch::Receiver<u64>>,
}

enum Report {
    Nodelay,
    QuickAck,
    Change,
}

impl Protocol for LineSession {
    type Action = Report;

    fn greeting(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"HELLO\r\n");
    }

    fn advance(&mut self, input: &[u8], out: &mut Vec<u8>) -> (usize, Step<Report>) {
        let mut consumed = 0;
        loop {
            if self.closing {
                return (consumed, Step::Close);
            }
            let rest = &input[consumed..];
            let Some(end) = rest.windows(2).position(|w| w == b"\r\n") else {
                return (consumed, Step::NeedMore);
            };
            consumed += end + 2;
            self.lines += 1;
            if std::mem::take(&mut self.awaiting_literal) {
                return (consumed, Step::Act(Report::QuickAck));
            }
            match &rest[..end] {
                b"PING" => {
                    self.pongs += 1;
                    out.extend_from_slice(format!("PONG {}\r\n", self.pongs).as_bytes());
                }
                b"COUNT" => out.extend_from_slice(format!("COUNT {}\r\n", self.pongs).as_bytes()),
                b"TLS" => {
                    out.extend_from_slice(b"OK go ahead\r\n");
                    return (consumed, Step::StartTls);
                }
                b"NODELAY" => return (consumed, Step::Act(Report::Nodelay)),
                b"BUSY" => {
                    self.busy = true;
                    out.extend_from_slice(b"OK busy\r\n");
                }
                b"DONE" => {
                    self.busy = false;
                    out.extend_from_slice(b"OK done\r\n");
                }
                b"LIT" => {
                    self.awaiting_literal = true;
                    out.extend_from_slice(b"+ go\r\n");
                }
                b"WATCH" => {
                    self.watching = true;
                    out.extend_from_slice(b"OK watching\r\n");
                }
                b"QUIT" => {
                    out.extend_from_slice(b"BYE\r\n");
                    self.closing = true;
                }
                _ => out.extend_from_slice(b"ERR\r\n"),
            }
        }
    }

    fn units_ended(&self) -> u64 {
        self.lines
    }

    async fn act(&mut self, action: Report, link: &mut Link<'_>) -> io::Result<()> {
        let line = match action {
            Report::Nodelay => format!("NODELAY {}\r\n", link.tcp().nodelay()?),
            Report::QuickAck => {
                let quick = socket2::SockRef::from(link.tcp()).tcp_quickack()?;
                format!("QUICKACK {quick}\r\n")
            }
            Report::Change => {
                let value = self.wake.as_ref().map_or(0, |wake| *wake.borrow());
                format!("CHANGED {value}\r\n")
            }
        };
        link.out().extend_from_slice(line.as_bytes());
        Ok(())
    }

    fn tls_started(&mut self) {}

    fn timed_out(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"BYE timed out\r\n");
        self.closing = true;
    }

    fn shutting_down(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"BYE stopping\r\n");
        self.closing = true;
    }

    fn busy(&self) -> bool {
        self.busy
    }

    fn quick_ack(&self) -> bool {
        self.awaiting_literal
    }

    fn woken(&mut self) -> Option<Report> {
        self.watching.then_some(Report::Change)
    }
}

fn settings(command_timeout: Duration, shutdown_grace: Duration) -> Settings {
    Settings {
        command_timeout,
        shortest_wait: command_timeout,
        write_timeout: WITHIN,
        handshake_timeout: WITHIN,
        shutdown_grace,
        busy_reply: BUSY_REPLY.to_vec(),
        proxy_protocol: false,
    }
}

/// A running line server: its addresses (plain first, then implicit TLS), the
/// switch that stops it, and its run.
struct Server {
    plain: SocketAddr,
    implicit_tls: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    run: JoinHandle<io::Result<Served>>,
}

impl Server {
    fn start(service: LineService, limit: Arc<ConnectionLimit>) -> Server {
        let bind = || {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.set_nonblocking(true).unwrap();
            let addr = listener.local_addr().unwrap();
            (listener, addr)
        };
        let (plain, plain_addr) = bind();
        let mut listeners = vec![(plain, Security::Plain)];
        let mut implicit_tls = None;
        if service.tls.is_some() {
            let (tls, tls_addr) = bind();
            listeners.push((tls, Security::ImplicitTls));
            implicit_tls = Some(tls_addr);
        }
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let run = tokio::spawn(driver::serve(Arc::new(service), listeners, limit, shutdown));
        Server {
            plain: plain_addr,
            implicit_tls,
            stop: Some(stop),
            run,
        }
    }

    fn plain_service(command_timeout: Duration) -> Server {
        let service = LineService {
            settings: settings(command_timeout, Duration::from_secs(1)),
            tls: None,
            wake: None,
        };
        Server::start(service, ConnectionLimit::new(16))
    }

    /// Signals the stop, without waiting for it.
    fn signal_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Stops the server and waits for its run to end.
    async fn stop(&mut self) -> Served {
        self.signal_stop();
        tokio::time::timeout(WITHIN, &mut self.run)
            .await
            .expect("the server stops")
            .unwrap()
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.run.abort();
    }
}

/// Connects and reads the greeting.
async fn connect(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    expect(&mut stream, b"HELLO\r\n").await;
    stream
}

/// Reads exactly `expected.len()` bytes and checks they are `expected`.
async fn expect<S: AsyncReadExt + Unpin>(stream: &mut S, expected: &[u8]) {
    let mut got = vec![0; expected.len()];
    tokio::time::timeout(WITHIN, stream.read_exact(&mut got))
        .await
        .unwrap_or_else(|_| panic!("no {:?} within {WITHIN:?}", ascii(expected)))
        .unwrap();
    assert_eq!(ascii(&got), ascii(expected));
}

/// Reads until the server closes the connection.
async fn read_to_end<S: AsyncReadExt + Unpin>(stream: &mut S) -> String {
    let mut got = Vec::new();
    tokio::time::timeout(WITHIN, stream.read_to_end(&mut got))
        .await
        .expect("the server closes the connection")
        .unwrap();
    ascii(&got)
}

fn ascii(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn pipelined_commands_are_answered_in_order_in_one_write() {
    let server = Server::plain_service(WITHIN);
    let mut client = connect(server.plain).await;
    client
        .write_all(b"PING\r\nPING\r\nCOUNT\r\nPING\r\n")
        .await
        .unwrap();
    // Written one by one, the first read would usually see only the first answer.
    let mut buf = [0; 256];
    let n = tokio::time::timeout(WITHIN, client.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        ascii(&buf[..n]),
        "PONG 1\r\nPONG 2\r\nCOUNT 2\r\nPONG 3\r\n"
    );
    client.write_all(b"QUIT\r\n").await.unwrap();
    assert_eq!(read_to_end(&mut client).await, "BYE\r\n");
}

#[tokio::test]
async fn a_line_trickled_a_byte_at_a_time_gets_one_line_deadline_not_one_per_byte() {
    let timeout = Duration::from_millis(600);
    let server = Server::plain_service(timeout);

    // Whole lines, each within the deadline, keep the session going well past it.
    let mut client = connect(server.plain).await;
    for n in 1..=4 {
        tokio::time::sleep(timeout / 2).await;
        client.write_all(b"PING\r\n").await.unwrap();
        expect(&mut client, format!("PONG {n}\r\n").as_bytes()).await;
    }

    // One line, a byte every 100 ms: never silent for long, still cut off.
    let (mut reader, mut writer) = TcpStream::connect(server.plain).await.unwrap().into_split();
    expect(&mut reader, b"HELLO\r\n").await;
    const TRICKLE: usize = 40;
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    let trickle = tokio::spawn(async move {
        for _ in 0..TRICKLE {
            if writer.write_all(b"P").await.is_err() {
                return;
            }
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    assert_eq!(read_to_end(&mut reader).await, "BYE timed out\r\n");
    let sent_by_then = sent.load(Ordering::SeqCst);
    trickle.abort();
    assert!(
        sent_by_then < TRICKLE,
        "the session lasted the whole trickle ({sent_by_then} bytes, one every 100 ms)"
    );
}

/// A certificate for 127.0.0.1, as the server's and as the client's only root.
struct TestCertificate {
    _dir: TempDir,
    server: ServerTls,
    connector: TlsConnector,
}

fn test_certificate() -> TestCertificate {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
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

fn tls_service(certificate: &TestCertificate) -> LineService {
    LineService {
        settings: settings(WITHIN, Duration::from_secs(1)),
        tls: Some(certificate.server.acceptor()),
        wake: None,
    }
}

fn server_name() -> rustls::pki_types::ServerName<'static> {
    rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap()
}

#[tokio::test]
async fn starttls_discards_the_clear_text_pipelined_behind_it() {
    let certificate = test_certificate();
    let server = Server::start(tls_service(&certificate), ConnectionLimit::new(16));
    let mut client = connect(server.plain).await;
    // An attacker in the middle could have added the PING: it must not count.
    client.write_all(b"TLS\r\nPING\r\n").await.unwrap();
    expect(&mut client, b"OK go ahead\r\n").await;
    let mut tls =
        tokio::time::timeout(WITHIN, certificate.connector.connect(server_name(), client))
            .await
            .unwrap()
            .unwrap();
    tls.write_all(b"COUNT\r\nNODELAY\r\nQUIT\r\n")
        .await
        .unwrap();
    assert_eq!(
        read_to_end(&mut tls).await,
        "COUNT 0\r\nNODELAY true\r\nBYE\r\n"
    );
}

/// Issue #13: answers to pipelined POP3 RETRs waited about 40 ms per batch for
/// the client's delayed ACK, because no accepted socket had TCP_NODELAY.
#[tokio::test]
async fn accepted_sockets_have_tcp_nodelay_plain_and_implicit_tls() {
    let certificate = test_certificate();
    let server = Server::start(tls_service(&certificate), ConnectionLimit::new(16));
    let mut client = connect(server.plain).await;
    client.write_all(b"NODELAY\r\nQUIT\r\n").await.unwrap();
    assert_eq!(read_to_end(&mut client).await, "NODELAY true\r\nBYE\r\n");

    let tcp = TcpStream::connect(server.implicit_tls.unwrap())
        .await
        .unwrap();
    let mut tls = tokio::time::timeout(WITHIN, certificate.connector.connect(server_name(), tcp))
        .await
        .unwrap()
        .unwrap();
    expect(&mut tls, b"HELLO\r\n").await;
    tls.write_all(b"NODELAY\r\nQUIT\r\n").await.unwrap();
    assert_eq!(read_to_end(&mut tls).await, "NODELAY true\r\nBYE\r\n");
}

#[tokio::test]
async fn over_the_cap_a_plain_client_is_told_busy_and_a_tls_client_just_sees_the_close() {
    let certificate = test_certificate();
    let server = Server::start(tls_service(&certificate), ConnectionLimit::new(1));
    let mut admitted = connect(server.plain).await;

    let mut refused = TcpStream::connect(server.plain).await.unwrap();
    assert_eq!(read_to_end(&mut refused).await, ascii(BUSY_REPLY));
    let mut refused_tls = TcpStream::connect(server.implicit_tls.unwrap())
        .await
        .unwrap();
    assert_eq!(read_to_end(&mut refused_tls).await, "");

    admitted.write_all(b"PING\r\n").await.unwrap();
    expect(&mut admitted, b"PONG 1\r\n").await;
}

#[tokio::test]
async fn on_stop_an_idle_session_says_goodbye_and_a_busy_one_gets_the_grace_period() {
    let grace = Duration::from_millis(800);
    let service = LineService {
        settings: settings(WITHIN, grace),
        tls: None,
        wake: None,
    };
    let mut server = Server::start(service, ConnectionLimit::new(16));
    let mut idle = connect(server.plain).await;
    let mut finishing = connect(server.plain).await;
    let mut lingering = connect(server.plain).await;
    for busy in [&mut finishing, &mut lingering] {
        busy.write_all(b"BUSY\r\n").await.unwrap();
        expect(busy, b"OK busy\r\n").await;
    }
    server.signal_stop();

    assert_eq!(read_to_end(&mut idle).await, "BYE stopping\r\n");
    // Still served while busy; the goodbye comes as soon as it is done.
    finishing.write_all(b"PING\r\n").await.unwrap();
    expect(&mut finishing, b"PONG 1\r\n").await;
    finishing.write_all(b"DONE\r\n").await.unwrap();
    assert_eq!(
        read_to_end(&mut finishing).await,
        "OK done\r\nBYE stopping\r\n"
    );
    // Busy past the grace period: told goodbye all the same.
    assert_eq!(read_to_end(&mut lingering).await, "BYE stopping\r\n");

    let served = server.stop().await;
    assert_eq!(served.admitted, 3);
    assert_eq!(served.cut_off, 0);
    assert!(
        TcpStream::connect(server.plain).await.is_err(),
        "the listener is closed"
    );
}

#[tokio::test]
async fn a_wake_source_reaches_a_session_waiting_for_input() {
    let (changes, wake) = watch::channel(0u64);
    let service = LineService {
        settings: settings(WITHIN, Duration::from_secs(1)),
        tls: None,
        wake: Some(wake),
    };
    let mut server = Server::start(service, ConnectionLimit::new(16));
    let mut client = connect(server.plain).await;
    client.write_all(b"WATCH\r\n").await.unwrap();
    expect(&mut client, b"OK watching\r\n").await;
    for value in [7, 8] {
        changes.send(value).unwrap();
        // Nothing sent: the change alone makes the session write.
        expect(&mut client, format!("CHANGED {value}\r\n").as_bytes()).await;
    }
    // A gone source stops waking the session, which goes on serving input.
    drop(changes);
    client.write_all(b"PING\r\n").await.unwrap();
    expect(&mut client, b"PONG 1\r\n").await;
    let served = server.stop().await;
    assert_eq!(served.admitted, 1);
}

/// Issue #13: Python's imaplib writes a literal and its closing CRLF separately;
/// with Nagle's algorithm on its side, the CRLF waited about 40 ms for the
/// server's delayed ACK of the literal.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn while_a_literal_is_incomplete_the_kernel_is_asked_to_ack_at_once() {
    let server = Server::plain_service(WITHIN);
    let mut client = connect(server.plain).await;
    client.write_all(b"LIT\r\n").await.unwrap();
    expect(&mut client, b"+ go\r\n").await;
    client.write_all(b"some literal\r\n").await.unwrap();
    expect(&mut client, b"QUICKACK true\r\n").await;
}
