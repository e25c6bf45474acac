//! The skeleton every sokkel TCP server shares: accept, cap, stop, drain.
//!
//! ```text
//! Stopper::stop() ──▶ every accept_loop returns; every StopSignal fires
//! accept_loop: accept ─▶ admitted (a slot is free) ─▶ the server's handler
//!                     └▶ refused  (all slots taken) ─▶ the server's refusal
//! ConnectionLimit::drain(grace): waits until every admitted connection is done
//! ```
//!
//! A connection holds its [`Slot`] for as long as it lives, so "all slots free again"
//! means "every connection finished": that is how shutdown knows when to exit.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

/// The cap on connections served at once.
#[derive(Debug)]
pub struct ConnectionLimit {
    slots: Arc<Semaphore>,
    max: u32,
    admitted: AtomicU64,
}

/// One admitted connection's place under the cap; dropping it frees the place.
#[derive(Debug)]
pub struct Slot(#[allow(dead_code)] OwnedSemaphorePermit);

impl ConnectionLimit {
    /// A cap of `max` connections at once.
    pub fn new(max: u32) -> Arc<Self> {
        Arc::new(ConnectionLimit {
            slots: Arc::new(Semaphore::new(max as usize)),
            max,
            admitted: AtomicU64::new(0),
        })
    }

    /// The cap.
    pub fn max(&self) -> u32 {
        self.max
    }

    /// Connections admitted so far.
    pub fn admitted(&self) -> u64 {
        self.admitted.load(Ordering::Relaxed)
    }

    fn try_admit(&self) -> Option<Slot> {
        let permit = self.slots.clone().try_acquire_owned().ok()?;
        self.admitted.fetch_add(1, Ordering::Relaxed);
        Some(Slot(permit))
    }

    /// Waits up to `grace` for every admitted connection to finish; returns how
    /// many were still open when it gave up.
    pub async fn drain(&self, grace: Duration) -> u32 {
        match tokio::time::timeout(grace, self.slots.acquire_many(self.max)).await {
            Ok(_) => 0,
            Err(_) => self.max - self.slots.available_permits() as u32,
        }
    }
}

/// Tells every accept loop and connection that the server is stopping.
#[derive(Debug)]
pub struct Stopper(watch::Sender<bool>);

/// Fires once the server is stopping. Cheap to clone, one per connection.
#[derive(Debug, Clone)]
pub struct StopSignal(watch::Receiver<bool>);

/// A new stop switch and the signal it drives.
pub fn stop_switch() -> (Stopper, StopSignal) {
    let (tx, rx) = watch::channel(false);
    (Stopper(tx), StopSignal(rx))
}

impl Stopper {
    /// Stops the server: accept loops return, connections see their signal.
    pub fn stop(&self) {
        let _ = self.0.send(true);
    }
}

impl StopSignal {
    /// Completes when the server is stopping (at once if it already is).
    pub async fn stopped(&mut self) {
        // An error means the Stopper is gone, which also means stop.
        let _ = self.0.wait_for(|stopping| *stopping).await;
    }
}

/// What the accept loop hands the server for each connection.
#[derive(Debug)]
pub enum Accepted {
    /// Under the cap: serve it, holding the slot until it is done.
    Admitted(TcpStream, SocketAddr, Slot),
    /// Over the cap: tell the peer, or just close it.
    Refused(TcpStream, SocketAddr),
}

/// Accepts connections on `listener` until `stop` fires, handing each to `handle`.
/// Errors that concern one connection only are skipped; running out of file
/// descriptors or memory makes it back off for 100 ms instead of spinning.
pub async fn accept_loop<H, F>(
    listener: TcpListener,
    limit: Arc<ConnectionLimit>,
    mut stop: StopSignal,
    mut handle: H,
) where
    H: FnMut(Accepted) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    loop {
        let accepted = tokio::select! {
            biased;
            () = stop.stopped() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(err) if is_per_connection(&err) => continue,
            Err(err) => {
                tracing::warn!(%err, "accept failed; retrying in 100 ms");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let accepted = match limit.try_admit() {
            Some(slot) => Accepted::Admitted(stream, peer, slot),
            None => Accepted::Refused(stream, peer),
        };
        tokio::spawn(handle(accepted));
    }
}

/// What [`serve_tcp`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Served {
    /// Connections admitted over the run.
    pub admitted: u64,
    /// Connections still open when the grace period ran out.
    pub cut_off: u32,
}

/// A whole TCP server's life: an accept loop on every listener (each tagged with a
/// value its handler gets back, such as "this port is implicit TLS") under one cap
/// of `max_conns`, until `shutdown` completes; then no more accepts, every
/// connection's [`StopSignal`] fires, and admitted connections get `grace` to
/// finish.
pub async fn serve_tcp<T, H, F>(
    listeners: Vec<(std::net::TcpListener, T)>,
    max_conns: u32,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
    handle: H,
) -> io::Result<Served>
where
    T: Copy + Send + 'static,
    H: Fn(Accepted, T, StopSignal) -> F + Clone + Send + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let limit = ConnectionLimit::new(max_conns);
    let (stopper, stop) = stop_switch();
    let mut loops = Vec::new();
    for (listener, tag) in listeners {
        let listener = TcpListener::from_std(listener)?;
        let (handle, conn_stop) = (handle.clone(), stop.clone());
        let per_connection = move |accepted| handle(accepted, tag, conn_stop.clone());
        loops.push(tokio::spawn(accept_loop(
            listener,
            limit.clone(),
            stop.clone(),
            per_connection,
        )));
    }
    shutdown.await;
    stopper.stop();
    for task in loops {
        let _ = task.await;
    }
    let cut_off = limit.drain(grace).await;
    Ok(Served {
        admitted: limit.admitted(),
        cut_off,
    })
}

fn is_per_connection(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// "The client must say something by then", for a session that waits for input
/// over and over: one tokio timer for the whole session, moved only when a nearer
/// deadline comes up or when it fires before the deadline set since. Arming a fresh
/// timer for every wait would register it in tokio's timer wheel each time, which
/// often wakes the runtime's driver (an eventfd write and an extra epoll round)
/// several times per message.
#[derive(Debug)]
pub struct IdleTimer {
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
    deadline: tokio::time::Instant,
    horizon: Duration,
}

impl IdleTimer {
    /// A timer for waits of at least `horizon` (the shortest timeout the session
    /// uses), first set to `horizon` from now.
    pub fn new(horizon: Duration) -> IdleTimer {
        let deadline = tokio::time::Instant::now() + horizon;
        IdleTimer {
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
            deadline,
            horizon,
        }
    }

    /// The next wait ends at `deadline`.
    pub fn set(&mut self, deadline: tokio::time::Instant) {
        self.deadline = deadline;
        if deadline < self.sleep.deadline() {
            self.sleep.as_mut().reset(deadline);
        }
    }

    /// Completes once the deadline last [`set`](IdleTimer::set) has passed.
    /// Cancel-safe: dropping it (because input came first) loses nothing.
    pub async fn expired(&mut self) {
        loop {
            self.sleep.as_mut().await;
            let now = tokio::time::Instant::now();
            if now >= self.deadline {
                self.sleep.as_mut().reset(now + self.horizon);
                return;
            }
            // Armed for an earlier wait that has since ended.
            self.sleep.as_mut().reset(self.deadline);
        }
    }
}

/// Writes all of `out` to a client and empties it, or fails with `TimedOut` if the
/// client does not read it within `timeout` (a peer that never reads must not hold
/// a session forever). Nothing to write is no write at all.
pub async fn flush_within<S: tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    out: &mut Vec<u8>,
    timeout: std::time::Duration,
) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    if out.is_empty() {
        return Ok(());
    }
    tokio::time::timeout(timeout, stream.write_all(out))
        .await
        .map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client did not read what was sent to it",
            )
        })??;
    out.clear();
    Ok(())
}
