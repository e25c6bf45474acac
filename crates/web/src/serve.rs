//! Running the router on sockets: one accept loop per listener, a cap on
//! connections with a per-address share of it, deadlines for a request's header
//! block and body, and a graceful stop that does not wait for open WebSockets.
//!
//! ```text
//! accept ─▶ a slot under the cap (else wait: new clients stay in the backlog)
//!        ─▶ the address's share   (else 503 and close)
//!        ─▶ with a certificate: the TLS handshake within `header_timeout`
//!           (a request in plain HTTP gets a 400 saying to use https://)
//!        ─▶ hyper HTTP/1: the whole header block within `header_timeout`,
//!           the whole body within `body_timeout`, nothing at all for
//!           `idle_timeout` closes it; upgrades to WebSocket carry on
//! ```
//!
//! Connections are served with hyper directly rather than `axum::serve`, which
//! offers no header deadline: a client that trickles header bytes would otherwise
//! hold its connection for as long as each byte comes within the idle timeout.

use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::{Body as HttpBody, Bytes, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use sokkel_net::server::{ConnectionLimit, Slot, is_per_connection};
use sokkel_net::tls::ServerTls;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::{AppState, WebError, app};

/// The answer to a client whose address already holds its share of connections.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 52\r\nRetry-After: 5\r\nConnection: close\r\n\r\nToo many connections from your address; try again.\r\n";

/// The answer to a plain-HTTP request on a listener that speaks HTTPS.
const PLAIN_ON_TLS: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 61\r\nConnection: close\r\n\r\nThis port speaks HTTPS: open it with https://, not http://.\r\n";

/// The first byte of a TLS handshake record (RFC 8446, 5.1: ContentType handshake).
const TLS_HANDSHAKE: u8 = 0x16;

/// How [`serve`] treats each connection, beyond [`crate::WebConfig`].
#[derive(Debug, Clone)]
pub struct ServeLimits {
    /// Connections one client address may hold at once (see
    /// [`sokkel_net::server::ConnectionLimit`] for how addresses are grouped and
    /// which are exempt); more get 503 and are closed.
    pub max_connections_per_address: usize,
    /// How long a client may take to send a request's whole header block, however
    /// the bytes trickle in. It also ends a kept-alive connection that waits this
    /// long for its next request.
    pub header_timeout: Duration,
    /// How long a client may take to send a request's whole body, from the end of
    /// its header block.
    pub body_timeout: Duration,
    /// The certificate to speak HTTPS with; `None` (the default) speaks plain
    /// HTTP. The handshake must be done within `header_timeout`.
    pub tls: Option<ServerTls>,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            max_connections_per_address: 128,
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(60),
            tls: None,
        }
    }
}

/// Serves [`app`] on `listeners` (already bound, so the caller reports bind
/// errors in its own words) until `shutdown` completes. Then it stops accepting,
/// closes WebSockets, and gives requests in flight up to `grace` to finish.
/// Connections get the default [`ServeLimits`].
pub async fn serve(
    listeners: Vec<std::net::TcpListener>,
    state: AppState,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> Result<(), WebError> {
    serve_with(listeners, state, ServeLimits::default(), shutdown, grace).await
}

/// [`serve`] with these [`ServeLimits`].
pub async fn serve_with(
    listeners: Vec<std::net::TcpListener>,
    state: AppState,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> Result<(), WebError> {
    let max = u32::try_from(state.config().max_connections.max(1)).unwrap_or(u32::MAX);
    let per_address = u32::try_from(limits.max_connections_per_address).unwrap_or(u32::MAX);
    let limit = ConnectionLimit::with_share(max, per_address);
    let shared = Arc::new(Shared {
        router: app(state.clone()),
        limits,
        idle_timeout: state.config().idle_timeout,
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection holds a receiver: once all are dropped, all are done.
    let (open_tx, open_rx) = watch::channel(());
    let mut loops = Vec::new();
    for listener in listeners {
        listener.set_nonblocking(true).map_err(WebError::Listener)?;
        let listener = TcpListener::from_std(listener).map_err(WebError::Listener)?;
        loops.push(tokio::spawn(accept_loop(
            listener,
            limit.clone(),
            shared.clone(),
            stop_rx.clone(),
            open_rx.clone(),
        )));
    }
    drop(open_rx);
    shutdown.await;
    state.stop();
    let _ = stop_tx.send(true);
    for accept in loops {
        let _ = accept.await;
    }
    if tokio::time::timeout(grace, open_tx.closed()).await.is_err() {
        tracing::warn!("HTTP requests still open after the grace period; closing them");
    }
    Ok(())
}

struct Shared {
    router: Router,
    limits: ServeLimits,
    idle_timeout: Duration,
}

async fn accept_loop(
    listener: TcpListener,
    limit: Arc<ConnectionLimit>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    open: watch::Receiver<()>,
) {
    loop {
        // Waiting for a slot leaves further clients in the kernel's backlog, which
        // is the gentlest way to say "busy" to a browser.
        let room = tokio::select! {
            () = stopped(&mut stop) => return,
            room = limit.room() => room,
        };
        let (stream, peer) = tokio::select! {
            () = stopped(&mut stop) => return,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) if is_per_connection(&err) => continue,
                Err(err) => {
                    tracing::warn!(%err, "HTTP accept failed; retrying in 100 ms");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        match limit.admit_in(room, peer.ip()) {
            Ok(slot) => {
                let task = serve_connection(stream, peer, slot, shared.clone(), stop.clone());
                let open = open.clone();
                tokio::spawn(async move {
                    task.await;
                    drop(open);
                });
            }
            // Counted and logged by the limit.
            Err(_) => {
                tokio::spawn(refuse(stream));
            }
        }
    }
}

async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        stream.write_all(BUSY).await?;
        stream.shutdown().await
    })
    .await;
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    slot: Slot,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
) {
    let capped = CappedStream {
        stream,
        _slot: slot,
        idle_timeout: shared.idle_timeout,
        idle: Box::pin(tokio::time::sleep(shared.idle_timeout)),
    };
    let Some(tls) = &shared.limits.tls else {
        return serve_http(capped, peer, &shared, stop).await;
    };
    // A client that connects and sends nothing must not hold its slot for ever.
    let handshake = tokio::time::timeout(shared.limits.header_timeout, accept_tls(capped, tls));
    match handshake.await {
        Ok(Ok(Some(stream))) => serve_http(stream, peer, &shared, stop).await,
        Ok(Ok(None)) => {}
        Ok(Err(error)) => tracing::debug!(%error, %peer, "HTTPS handshake failed"),
        Err(_) => tracing::debug!(%peer, "no HTTPS handshake within the header timeout"),
    }
}

/// The TLS side of a connection to a listener that speaks HTTPS, or `None` when
/// the client closed at once or spoke plain HTTP (it was told to use https://).
async fn accept_tls(
    mut capped: CappedStream,
    tls: &ServerTls,
) -> io::Result<Option<tokio_rustls::server::TlsStream<CappedStream>>> {
    let mut first = [0u8; 1];
    if capped.stream.peek(&mut first).await? == 0 {
        return Ok(None);
    }
    if first[0] != TLS_HANDSHAKE {
        // Read what came, so that closing does not reset the connection before
        // the client reads the answer.
        let mut request = [0u8; 4096];
        let _ = capped.read(&mut request).await?;
        capped.write_all(PLAIN_ON_TLS).await?;
        capped.shutdown().await?;
        return Ok(None);
    }
    Ok(Some(tls.acceptor().accept(capped).await?))
}

/// Serves HTTP/1 on `io` (a connection, or the TLS stream over it) until the
/// client leaves or the server stops.
async fn serve_http<I>(io: I, peer: SocketAddr, shared: &Shared, mut stop: watch::Receiver<bool>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io);
    let router = TowerToHyperService::new(shared.router.clone());
    let body_timeout = shared.limits.body_timeout;
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let mut request = request.map(|body| TimedBody::new(body, body_timeout));
        // Handlers that record who asked (`/api/v1/send`) read it as axum's ConnectInfo.
        request.extensions_mut().insert(ConnectInfo(peer));
        hyper::service::Service::call(&router, request)
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(shared.limits.header_timeout)
        .serve_connection(io, service)
        .with_upgrades();
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = stopped(&mut stop) => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%error, "HTTP connection ended with an error");
    }
}

/// Completes once the server is stopping.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which also means stop.
    let _ = stop.wait_for(|stop| *stop).await;
}

/// A request body that must arrive whole within a deadline, counted from the end
/// of the header block: a client that sends a byte now and then cannot hold a
/// request open for ever.
struct TimedBody {
    inner: Incoming,
    timeout: Duration,
    started: tokio::time::Instant,
    /// Armed the first time the body has to be waited for.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl TimedBody {
    fn new(inner: Incoming, timeout: Duration) -> TimedBody {
        TimedBody {
            inner,
            timeout,
            started: tokio::time::Instant::now(),
            deadline: None,
        }
    }
}

impl HttpBody for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn StdError + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        let at = self.started + self.timeout;
        let deadline = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(io::Error::new(
                io::ErrorKind::TimedOut,
                "the HTTP client did not send the request body in time",
            ))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A connection, its place under the cap, and how long it may stay silent.
struct CappedStream {
    stream: TcpStream,
    _slot: Slot,
    idle_timeout: Duration,
    /// Fires when the client has sent nothing for `idle_timeout`; every read that
    /// brings bytes pushes it back.
    idle: Pin<Box<tokio::time::Sleep>>,
}

impl AsyncRead for CappedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    let deadline = tokio::time::Instant::now() + self.idle_timeout;
                    self.idle.as_mut().reset(deadline);
                }
                Poll::Ready(result)
            }
            Poll::Pending => match self.idle.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the HTTP client sent nothing for too long",
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for CappedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.stream).poll_write(cx, buf);
        if let Poll::Ready(Ok(written)) = result
            && written > 0
        {
            // A client reading a long download is not idle.
            let deadline = tokio::time::Instant::now() + self.idle_timeout;
            self.idle.as_mut().reset(deadline);
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
