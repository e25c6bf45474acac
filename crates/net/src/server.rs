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

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

/// How often, at most, refused connections are logged: a flood of them gives one
/// line with a count per period, not a line each.
const REFUSAL_LOG_PERIOD: Duration = Duration::from_secs(10);

/// The default share of a connection cap that one client address may hold, in
/// percent: a quarter, so that at least four busy addresses are needed to fill it.
pub const DEFAULT_ADDRESS_SHARE_PERCENT: u32 = 25;

/// The cap on connections served at once, and on how many of them one client
/// address may hold.
///
/// The per-address share groups IPv4 clients by their full address and IPv6
/// clients by their /64 prefix (one host usually has a whole /64 to pick addresses
/// from). The host's own loopback addresses, `127.0.0.1` and `::1`, are exempt:
/// on a developer's machine every client (the app under test, a benchmark, the
/// browser) comes from them, so a share would only shrink the cap without making
/// anything fairer. Other loopback addresses (`127.0.0.2`, ...) are treated like
/// any remote address.
#[derive(Debug)]
pub struct ConnectionLimit {
    slots: Arc<Semaphore>,
    max: u32,
    per_address: u32,
    held: Mutex<HashMap<IpAddr, u32>>,
    admitted: AtomicU64,
    refusals: RefusalLog,
}

/// One admitted connection's place under the cap; dropping it frees the place.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    /// The limit and address group this slot counts against, if it is counted.
    group: Option<(Arc<ConnectionLimit>, IpAddr)>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some((limit, group)) = self.group.take() {
            limit.release_group(group);
        }
    }
}

/// A free place under the cap, taken before a connection is accepted (see
/// [`ConnectionLimit::room`]).
#[derive(Debug)]
pub struct Room(OwnedSemaphorePermit);

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Every slot is taken.
    Full,
    /// The client's address already holds its share of the slots.
    AddressShare,
}

/// The share of `max` that `percent` makes: at least 1, at most `max`.
pub fn address_share(max: u32, percent: u32) -> u32 {
    let share = u64::from(max) * u64::from(percent.min(100)) / 100;
    (share as u32).clamp(1, max.max(1))
}

/// The group an address counts against for the per-address share, or `None` for
/// the exempt loopback addresses (see [`ConnectionLimit`]).
pub fn address_group(ip: IpAddr) -> Option<IpAddr> {
    match ip.to_canonical() {
        IpAddr::V4(v4) if v4 == std::net::Ipv4Addr::LOCALHOST => None,
        IpAddr::V4(v4) => Some(IpAddr::V4(v4)),
        IpAddr::V6(v6) if v6 == Ipv6Addr::LOCALHOST => None,
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            Some(IpAddr::V6(Ipv6Addr::from(prefix)))
        }
    }
}

impl ConnectionLimit {
    /// A cap of `max` connections at once, with no per-address share.
    pub fn new(max: u32) -> Arc<Self> {
        ConnectionLimit::with_share(max, max)
    }

    /// A cap of `max` connections at once, of which one client address may hold
    /// `per_address` (see [`address_share`]).
    pub fn with_share(max: u32, per_address: u32) -> Arc<Self> {
        Arc::new(ConnectionLimit {
            slots: Arc::new(Semaphore::new(max as usize)),
            max,
            per_address: per_address.clamp(1, max.max(1)),
            held: Mutex::new(HashMap::new()),
            admitted: AtomicU64::new(0),
            refusals: RefusalLog::default(),
        })
    }

    /// The cap.
    pub fn max(&self) -> u32 {
        self.max
    }

    /// How many connections one client address may hold.
    pub fn per_address(&self) -> u32 {
        self.per_address
    }

    /// Connections admitted so far.
    pub fn admitted(&self) -> u64 {
        self.admitted.load(Ordering::Relaxed)
    }

    /// Admits a connection from `peer` if a slot is free and its address is under
    /// its share; a refusal is counted and logged (once per period, with a count).
    pub fn try_admit(self: &Arc<Self>, peer: IpAddr) -> Result<Slot, Refusal> {
        self.try_room().and_then(|room| self.admit_in(room, peer))
    }

    /// A free place under the cap now, for a connection whose client address
    /// is not known yet (it comes in a PROXY protocol header); then
    /// [`admit_in`](Self::admit_in). A full cap is counted and logged.
    pub fn try_room(&self) -> Result<Room, Refusal> {
        match self.slots.clone().try_acquire_owned() {
            Ok(permit) => Ok(Room(permit)),
            Err(_) => {
                self.refusals.refused(Refusal::Full, self);
                Err(Refusal::Full)
            }
        }
    }

    /// Waits for a free slot, for a server that would rather leave new clients in
    /// the kernel's backlog than refuse them; then [`admit_in`](Self::admit_in).
    pub async fn room(&self) -> Room {
        // The semaphore is never closed.
        let permit = self.slots.clone().acquire_owned().await;
        Room(permit.expect("the connection semaphore is never closed"))
    }

    /// Admits a connection from `peer` into a slot taken with [`room`](Self::room),
    /// unless its address already holds its share.
    pub fn admit_in(self: &Arc<Self>, room: Room, peer: IpAddr) -> Result<Slot, Refusal> {
        let group = match address_group(peer) {
            Some(group) if self.per_address < self.max => {
                let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
                let count = held.entry(group).or_insert(0);
                if *count >= self.per_address {
                    drop(held);
                    self.refusals.refused(Refusal::AddressShare, self);
                    return Err(Refusal::AddressShare);
                }
                *count += 1;
                Some((self.clone(), group))
            }
            _ => None,
        };
        self.admitted.fetch_add(1, Ordering::Relaxed);
        Ok(Slot {
            _permit: room.0,
            group,
        })
    }

    fn release_group(&self, group: IpAddr) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = held.get_mut(&group) {
            *count -= 1;
            if *count == 0 {
                held.remove(&group);
            }
        }
    }

    /// Connections refused so far, for either reason.
    pub fn refused(&self) -> u64 {
        self.refusals.total.load(Ordering::Relaxed)
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

/// Counts refused connections and logs them at most once per
/// [`REFUSAL_LOG_PERIOD`]: the first refusal at once, then one line with the count
/// of those since.
#[derive(Debug, Default)]
struct RefusalLog {
    total: AtomicU64,
    pending: Mutex<(u64, u64, Option<std::time::Instant>)>,
}

impl RefusalLog {
    fn refused(&self, why: Refusal, limit: &ConnectionLimit) {
        self.total.fetch_add(1, Ordering::Relaxed);
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let (full, share, last) = &mut *pending;
        match why {
            Refusal::Full => *full += 1,
            Refusal::AddressShare => *share += 1,
        }
        let now = std::time::Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < REFUSAL_LOG_PERIOD) {
            return;
        }
        tracing::warn!(
            all_slots_taken = *full,
            address_over_its_share = *share,
            max = limit.max,
            per_address = limit.per_address,
            "refused connections since the last report (every {} s at most)",
            REFUSAL_LOG_PERIOD.as_secs()
        );
        *pending = (0, 0, Some(now));
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
    /// Over the cap, or over its address's share of it: tell the peer, or just
    /// close it. The refusal is already counted and logged.
    Refused(TcpStream, SocketAddr),
}

/// Accepts connections on `listener` until `stop` fires, handing each to `handle`
/// with TCP_NODELAY set.
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
    while let Some((stream, peer)) = next_connection(&listener, &mut stop).await {
        let accepted = match limit.try_admit(peer.ip()) {
            Ok(slot) => Accepted::Admitted(stream, peer, slot),
            Err(_) => Accepted::Refused(stream, peer),
        };
        tokio::spawn(handle(accepted));
    }
}

/// [`accept_loop`] behind a load balancer that speaks the PROXY protocol
/// ([`crate::proxy`]): each connection takes a place under the cap, then has
/// [`HEADER_TIMEOUT`](crate::proxy::HEADER_TIMEOUT) to send its header, and
/// is admitted (or refused) as coming from the client the header names, so
/// that the per-address share, the logs and the stored envelope see the
/// client, not the balancer. A connection without a valid header is closed
/// (logged once per [`REPEAT_INTERVAL`](crate::repeated::REPEAT_INTERVAL));
/// one that closes without a byte (a balancer's plain TCP check) quietly.
pub async fn accept_proxied_loop<H, F>(
    listener: TcpListener,
    limit: Arc<ConnectionLimit>,
    mut stop: StopSignal,
    handle: H,
) where
    H: Fn(Accepted) -> F + Clone + Send + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    while let Some((mut stream, balancer)) = next_connection(&listener, &mut stop).await {
        let room = match limit.try_room() {
            Ok(room) => room,
            Err(_) => {
                tokio::spawn(handle(Accepted::Refused(stream, balancer)));
                continue;
            }
        };
        let (limit, handle) = (limit.clone(), handle.clone());
        tokio::spawn(async move {
            let peer = match crate::proxy::read_header(&mut stream).await {
                Ok(crate::proxy::ProxyHeader::Proxied { source, .. }) => source,
                Ok(crate::proxy::ProxyHeader::Local) => balancer,
                Err(crate::proxy::ProxyError::Closed { partial: false }) => {
                    tracing::debug!(%balancer, "connection closed before its PROXY protocol header");
                    return;
                }
                Err(error) => {
                    let text = error.to_string();
                    let repeat = HEADER_LOG.occurrence(&text);
                    if repeat.should_log() {
                        tracing::warn!(%balancer, "closed a connection: {text}{repeat}");
                    }
                    return;
                }
            };
            let accepted = match limit.admit_in(room, peer.ip()) {
                Ok(slot) => Accepted::Admitted(stream, peer, slot),
                Err(_) => Accepted::Refused(stream, peer),
            };
            handle(accepted).await;
        });
    }
}

/// Connections refused for their PROXY protocol header: one line per kind of
/// fault per interval.
static HEADER_LOG: crate::repeated::RepeatedLog =
    crate::repeated::RepeatedLog::new(crate::repeated::REPEAT_INTERVAL);

/// The next connection on `listener`, with TCP_NODELAY set; `None` once `stop`
/// fires.
async fn next_connection(
    listener: &TcpListener,
    stop: &mut StopSignal,
) -> Option<(TcpStream, SocketAddr)> {
    loop {
        let accepted = tokio::select! {
            biased;
            () = stop.stopped() => return None,
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
        // Replies go out when the session has to wait, often several at once; with
        // Nagle's algorithm a reply written while an earlier one is unacknowledged
        // would wait for the client's delayed ACK (about 40 ms, issue #13).
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(%peer, %err, "cannot set TCP_NODELAY");
        }
        return Some((stream, peer));
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
/// value its handler gets back, such as "this port is implicit TLS") under one
/// `limit`, until `shutdown` completes; then no more accepts, every
/// connection's [`StopSignal`] fires, and admitted connections get `grace` to
/// finish. With `proxy_protocol`, every connection must start with a PROXY
/// protocol header ([`accept_proxied_loop`]).
pub async fn serve_tcp<T, H, F>(
    listeners: Vec<(std::net::TcpListener, T)>,
    limit: Arc<ConnectionLimit>,
    proxy_protocol: bool,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
    handle: H,
) -> io::Result<Served>
where
    T: Copy + Send + 'static,
    H: Fn(Accepted, T, StopSignal) -> F + Clone + Send + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let (stopper, stop) = stop_switch();
    let mut loops = Vec::new();
    for (listener, tag) in listeners {
        let listener = TcpListener::from_std(listener)?;
        let (handle, conn_stop) = (handle.clone(), stop.clone());
        let per_connection = move |accepted| handle(accepted, tag, conn_stop.clone());
        loops.push(if proxy_protocol {
            tokio::spawn(accept_proxied_loop(
                listener,
                limit.clone(),
                stop.clone(),
                per_connection,
            ))
        } else {
            tokio::spawn(accept_loop(
                listener,
                limit.clone(),
                stop.clone(),
                per_connection,
            ))
        });
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

/// Whether an `accept` error concerns that one connection only (the peer gave up
/// before it was accepted), so the accept loop just goes on.
pub fn is_per_connection(err: &io::Error) -> bool {
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

/// How much output a session core may leave unsent before it stops consuming the
/// client's commands. A core checks [`output_backed_up`] before each command and,
/// once it is true, hands back a "flush first" step; the shell writes the output
/// (waiting for the client to read it) and only then feeds the core again, without
/// reading more input meanwhile. So a client that pipelines commands and never reads
/// the answers holds at most this much plus one answer, not an answer per command
/// it sent.
pub const PENDING_OUTPUT_LIMIT: usize = 64 << 10;

/// Whether `out` holds enough unsent output that the core should stop consuming
/// commands until the shell has flushed it (see [`PENDING_OUTPUT_LIMIT`]).
pub fn output_backed_up(out: &[u8]) -> bool {
    out.len() >= PENDING_OUTPUT_LIMIT
}

/// A deadline for a whole unit of input (a command line, a header block, a
/// message), not for each byte: it starts when the previous unit ended and moves
/// only when the core reports that another unit ended. A client trickling one byte
/// at a time gets no more time than one sending the line at once.
///
/// The core counts the units it finished (for line protocols:
/// [`LineSplitter::ended`](crate::lines::LineSplitter::ended)); the shell passes
/// that count after every step and waits until [`deadline`](Self::deadline).
#[derive(Debug, Clone, Copy)]
pub struct UnitDeadline {
    started: tokio::time::Instant,
    ended: u64,
}

impl UnitDeadline {
    /// A unit that starts now, the core having finished `ended` units so far.
    pub fn new(ended: u64) -> UnitDeadline {
        UnitDeadline {
            started: tokio::time::Instant::now(),
            ended,
        }
    }

    /// Takes the core's count of finished units: if it moved, the next unit starts now.
    pub fn update(&mut self, ended: u64) {
        if ended != self.ended {
            self.ended = ended;
            self.started = tokio::time::Instant::now();
        }
    }

    /// Starts the next unit now, whatever the count says (after a reply the client
    /// had to wait for, say).
    pub fn restart(&mut self) {
        self.started = tokio::time::Instant::now();
    }

    /// When the unit must be complete, given how long a whole unit may take.
    pub fn deadline(&self, timeout: Duration) -> tokio::time::Instant {
        self.started + timeout
    }
}

/// A server-wide cap on bytes held for messages in flight (SMTP DATA and BDAT
/// content, later IMAP APPEND literals): each session reserves what its message
/// holds as it grows and gives it back when the message is stored or dropped. A
/// message that cannot get its bytes is refused, and the server keeps serving
/// everyone else, instead of growing until the system kills it.
///
/// An eighth of the budget is kept for messages of up to [`SMALL_MESSAGE`] bytes:
/// a few clients sending (or holding) huge messages can take the rest, but the
/// ordinary small mail of everyone else still gets through.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: usize,
    used: AtomicUsize,
}

impl MemoryBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Arc<MemoryBudget> {
        Arc::new(MemoryBudget {
            limit,
            used: AtomicUsize::new(0),
        })
    }

    /// The budget.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes not reserved by anyone now.
    pub fn available(&self) -> usize {
        self.limit.saturating_sub(self.used.load(Ordering::Relaxed))
    }

    /// Takes `bytes` if that leaves at least `keep` bytes free.
    fn try_take(&self, bytes: usize, keep: usize) -> bool {
        let ceiling = self.limit.saturating_sub(keep);
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |used| {
                used.checked_add(bytes).filter(|&total| total <= ceiling)
            })
            .is_ok()
    }

    fn give_back(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// Messages up to this size may use all of a [`MemoryBudget`]; larger ones leave
/// an eighth of it free.
pub const SMALL_MESSAGE: usize = 1 << 20;

/// One session's share of a [`MemoryBudget`]; dropping it gives the share back.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<MemoryBudget>,
    held: usize,
}

impl Reservation {
    /// Nothing reserved yet.
    pub fn new(budget: Arc<MemoryBudget>) -> Reservation {
        Reservation { budget, held: 0 }
    }

    /// Makes the reservation `bytes`: gives back what is no longer needed, or takes
    /// more. Returns false, changing nothing, if the budget cannot cover it.
    pub fn resize(&mut self, bytes: usize) -> bool {
        if bytes > self.held {
            // Beyond a small message, leave the share kept for small ones.
            let keep = if bytes > SMALL_MESSAGE {
                self.budget.limit / 8
            } else {
                0
            };
            if !self.budget.try_take(bytes - self.held, keep) {
                return false;
            }
        } else {
            self.budget.give_back(self.held - bytes);
        }
        self.held = bytes;
        true
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.give_back(self.held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_grouped_by_ipv4_address_and_ipv6_slash_64_with_loopback_exempt() {
        let group = |s: &str| address_group(s.parse().unwrap());
        assert_eq!(group("127.0.0.1"), None);
        assert_eq!(group("::1"), None);
        assert_eq!(group("::ffff:127.0.0.1"), None);
        assert_eq!(group("127.0.0.2"), Some("127.0.0.2".parse().unwrap()));
        assert_eq!(
            group("::ffff:192.0.2.7"),
            Some("192.0.2.7".parse().unwrap())
        );
        assert_eq!(
            group("2001:db8:1:2:aaaa::1"),
            group("2001:db8:1:2:bbbb::9"),
            "one /64"
        );
        assert_ne!(group("2001:db8:1:2::1"), group("2001:db8:1:3::1"));
    }

    #[test]
    fn shares_are_a_percentage_of_the_cap_at_least_one() {
        assert_eq!(address_share(1000, 25), 250);
        assert_eq!(address_share(8, 1), 1);
        assert_eq!(address_share(512, 100), 512);
        assert_eq!(address_share(3, 200), 3);
    }

    #[tokio::test]
    async fn an_address_over_its_share_is_refused_and_a_freed_slot_is_its_again() {
        let limit = ConnectionLimit::with_share(4, 2);
        let remote: IpAddr = "192.0.2.7".parse().unwrap();
        let first = limit.try_admit(remote).unwrap();
        let _second = limit.try_admit(remote).unwrap();
        assert_eq!(limit.try_admit(remote).unwrap_err(), Refusal::AddressShare);
        let _elsewhere = limit.try_admit("192.0.2.8".parse().unwrap()).unwrap();
        let _local = limit.try_admit(Ipv6Addr::LOCALHOST.into()).unwrap();
        assert_eq!(limit.try_admit(remote).unwrap_err(), Refusal::Full);
        drop(first);
        assert!(limit.try_admit(remote).is_ok());
        assert_eq!(limit.refused(), 2);
    }

    #[test]
    fn reservations_take_and_give_back_and_large_ones_leave_an_eighth() {
        let budget = MemoryBudget::new(8 << 20);
        let mut small = Reservation::new(budget.clone());
        assert!(small.resize(1 << 20));
        let mut large = Reservation::new(budget.clone());
        // 1 MiB + 6 MiB = 7 MiB, leaving exactly the eighth.
        assert!(large.resize(6 << 20));
        assert!(
            !large.resize((6 << 20) + 1),
            "into the eighth kept for small ones"
        );
        let mut another = Reservation::new(budget.clone());
        assert!(another.resize(1 << 20), "a small one may use it");
        assert_eq!(budget.available(), 0);
        drop(large);
        assert_eq!(budget.available(), 6 << 20);
        assert!(small.resize(0));
        drop(another);
        assert_eq!(budget.available(), 8 << 20);
    }
}
