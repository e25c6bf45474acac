//! Running the router on sockets: one accept loop per listener, a cap on
//! connections, and a graceful stop that does not wait for open WebSockets.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::serve::Listener;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use crate::{AppState, WebError, app};

/// Serves [`app`] on `listeners` (already bound, so the caller reports bind
/// errors in its own words) until `shutdown` completes. Then it stops accepting,
/// closes WebSockets, and gives requests in flight up to `grace` to finish.
pub async fn serve(
    listeners: Vec<std::net::TcpListener>,
    state: AppState,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> Result<(), WebError> {
    let slots = Arc::new(Semaphore::new(state.config().max_connections.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut servers = Vec::new();
    for listener in listeners {
        listener.set_nonblocking(true).map_err(WebError::Listener)?;
        let listener = CappedListener {
            inner: TcpListener::from_std(listener).map_err(WebError::Listener)?,
            slots: slots.clone(),
            idle_timeout: state.config().idle_timeout,
        };
        let mut stop = stop_rx.clone();
        let server = axum::serve(listener, app(state.clone())).with_graceful_shutdown(async move {
            let _ = stop.wait_for(|stop| *stop).await;
        });
        servers.push(tokio::spawn(async move { server.await }));
    }
    shutdown.await;
    state.stop();
    let _ = stop_tx.send(true);
    let drain = async {
        for server in &mut servers {
            if let Ok(Err(error)) = server.await {
                tracing::warn!(%error, "the HTTP server stopped with an error");
            }
        }
    };
    if tokio::time::timeout(grace, drain).await.is_err() {
        tracing::warn!("HTTP requests still open after the grace period; closing them");
        for server in servers {
            server.abort();
        }
    }
    Ok(())
}

/// A TCP listener that accepts a connection only while one of `slots` is free;
/// the connection holds its slot until it closes.
struct CappedListener {
    inner: TcpListener,
    slots: Arc<Semaphore>,
    idle_timeout: Duration,
}

impl Listener for CappedListener {
    type Io = CappedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // Waiting here leaves further clients in the kernel's backlog, which is
        // the gentlest way to say "busy" to a browser.
        // The semaphore is never closed, so this always gets a slot.
        let slot = self.slots.clone().acquire_owned().await.ok();
        let (stream, addr) = Listener::accept(&mut self.inner).await;
        let _ = stream.set_nodelay(true);
        (
            CappedStream {
                stream,
                _slot: slot,
                idle_timeout: self.idle_timeout,
                idle: Box::pin(tokio::time::sleep(self.idle_timeout)),
            },
            addr,
        )
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A connection, its place under the cap, and how long it may stay silent.
struct CappedStream {
    stream: TcpStream,
    _slot: Option<OwnedSemaphorePermit>,
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
