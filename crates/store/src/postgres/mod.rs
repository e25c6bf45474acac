//! The PostgreSQL backend: several `sokkel mail serve` nodes on one database.
//!
//! ```text
//! deliver ──▶ writer.rs: batch → one transaction (synchronous_commit on) ──▶ id
//!                 └── NOTIFY sokkel ──▶ every node's events.rs ──▶ StoreEvent
//! list / search / get ──▶ a pool of connections (deadpool-postgres)
//! ```
//!
//! The store's API is synchronous (async callers use `spawn_blocking`, the
//! CLI calls it directly), and tokio-postgres is async: the backend owns a
//! small tokio runtime of its own ([`PgStore::run`]) on which its
//! connections, its writer and its listener live, whatever runtime (or none)
//! the caller has.
//!
//! - [`config`]: the connection string, the password file, TLS.
//! - [`schema`]: tables and migrations, under an advisory lock.
//! - [`queries`]: rows in and out.
//! - [`writer`]: group commit of deliveries.
//! - [`messages`]: list, get, raw bytes, delete, flags, counts.
//! - [`events`]: LISTEN/NOTIFY, so every node announces every node's changes.
//! - [`search`], [`index`], [`tags`]: the tsvector index and tags.
//! - [`folders`], [`relays`], [`retention`]: IMAP's view, relay attempts,
//!   pruning (once per cluster, under an advisory lock).
//!
//! Every write transaction starts with [`next_seq`]: it takes the change
//! number (the modseq of what the transaction changes) and with it the lock
//! that orders commits across the cluster.

mod config;
mod events;
mod folders;
mod index;
mod messages;
mod queries;
mod relays;
mod retention;
mod schema;
mod search;
mod tags;
mod words;
mod writer;

use std::fmt;
use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use sokkel_net::stats::StoreCounters;
use tokio::runtime::{Handle, Runtime};
use tokio::sync::broadcast;

pub use config::{PgConfig, PgConfigError, is_postgres};

use crate::store::{StoreEvent, StoreOptions};
use crate::{MessageId, StoreError};

/// Keys of the advisory locks the nodes of one cluster share.
pub(crate) mod locks {
    /// Held (per transaction) while the schema is checked and migrated.
    pub(crate) const MIGRATE: i64 = 0x736f_6b6b_656c_0001;
    /// Held (per session) by the node that runs the retention policy.
    pub(crate) const RETENTION: i64 = 0x736f_6b6b_656c_0002;
    /// Held (per session) by the node that indexes what dead nodes left.
    pub(crate) const INDEXER: i64 = 0x736f_6b6b_656c_0003;
}

/// How the server finds out that the node holding a session lock is gone
/// when nothing closed its connection (the machine lost power, the network
/// broke): TCP keepalives on the server's side of that connection, first
/// after this many idle seconds, then every [`LOCK_KEEPALIVE_INTERVAL`]
/// seconds, [`LOCK_KEEPALIVE_COUNT`] times. The server's default is the
/// system's (two hours on Linux), which would hold the cluster's retention
/// and indexing as long; with these the lock is free about a minute after.
const LOCK_KEEPALIVE_IDLE: u32 = 30;
const LOCK_KEEPALIVE_INTERVAL: u32 = 10;
const LOCK_KEEPALIVE_COUNT: u32 = 3;

/// A connection of its own that holds the session-level advisory lock
/// `key` (one of [`locks`]) until it closes, or `None` if another node's
/// connection holds it. Asked on a pooled connection, which goes back to the
/// pool when the lock is taken already, so that the nodes waiting for it do
/// not open a connection each time they ask.
pub(crate) async fn take_session_lock(
    shared: &Shared,
    key: i64,
) -> Result<Option<deadpool_postgres::ClientWrapper>, StoreError> {
    let client = shared.client().await?;
    let statement = client
        .prepare_cached("SELECT pg_try_advisory_lock($1)")
        .await?;
    let locked: bool = client.query_one(&statement, &[&key]).await?.try_get(0)?;
    if !locked {
        return Ok(None);
    }
    let client = deadpool_postgres::Object::take(client);
    // Settings of this session alone, which no pooled connection shares.
    client
        .batch_execute(&format!(
            "SET tcp_keepalives_idle = {LOCK_KEEPALIVE_IDLE};
             SET tcp_keepalives_interval = {LOCK_KEEPALIVE_INTERVAL};
             SET tcp_keepalives_count = {LOCK_KEEPALIVE_COUNT};"
        ))
        .await?;
    Ok(Some(client))
}

/// The channel every node's changes are announced on (`LISTEN sokkel`).
pub(crate) const CHANNEL: &str = "sokkel";

/// How many connections one node opens at most.
const MAX_CONNECTIONS: usize = 16;

/// How long a query waits for a connection, and a connection for the server,
/// before the caller is told the database is unavailable (SMTP 451, HTTP 503).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long unacknowledged data may wait on a connection before it is
/// given up as dead.
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a session may sit idle inside a transaction before the server
/// ends it (and with it the locks it holds).
const IDLE_IN_TRANSACTION: Duration = Duration::from_secs(60);

const EVENT_CAPACITY: usize = 1024;

/// A handle on a PostgreSQL store: cheap to clone.
#[derive(Clone)]
pub(crate) struct PgStore {
    inner: Arc<Inner>,
}

/// What every part of the backend shares; the writer and the listener hold
/// it too.
pub(crate) struct Shared {
    pub(crate) config: PgConfig,
    pub(crate) options: StoreOptions,
    pub(crate) pool: Pool,
    pub(crate) events: broadcast::Sender<StoreEvent>,
    /// This handle's name in notifications, so that it skips its own.
    pub(crate) node: String,
    /// Messages deleted through this handle.
    pub(crate) deleted: AtomicU64,
    /// The retention lock, once this node holds it (`retention.rs`).
    pub(crate) retention: retention::RetentionLock,
    /// Commit times and pruned messages, for `/metrics`.
    pub(crate) counters: Arc<StoreCounters>,
    pub(crate) handle: Handle,
}

struct Inner {
    shared: Arc<Shared>,
    writer: writer::Writer,
    listener: Mutex<Option<events::Listener>>,
    /// Owned here and shut down without waiting when the last handle goes
    /// (the drop may happen inside another runtime, where a blocking
    /// shutdown would panic).
    runtime: Mutex<Option<Runtime>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let runtime = self
            .runtime
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(runtime) = runtime {
            runtime.shutdown_background();
        }
    }
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("config", &self.inner.shared.config)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connect, create or migrate the schema, and start the writer.
    pub(crate) fn open(mut config: PgConfig, options: StoreOptions) -> Result<PgStore, StoreError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("sokkel-pg")
            .enable_all()
            .build()
            .map_err(|error| StoreError::io("starting the runtime for", "postgres", error))?;
        let handle = runtime.handle().clone();
        // Every connection (the pool's, the listener's, the session locks')
        // gets these settings.
        let pg = &mut config.config;
        pg.connect_timeout(CONNECT_TIMEOUT);
        // A server that stops answering without closing (a network that drops
        // packets) fails the request within TCP_USER_TIMEOUT instead of the
        // system's minutes, so a delivery gets its 451 and a query its 503.
        pg.keepalives_idle(Duration::from_secs(30));
        pg.keepalives_interval(Duration::from_secs(10));
        pg.keepalives_retries(3);
        pg.tcp_user_timeout(TCP_USER_TIMEOUT);
        // A node that vanishes in the middle of a transaction would hold the
        // cluster's write lock (store_state) until its session ends: the
        // server ends such a session after a minute.
        // And the 250 after DATA means committed whatever the server's
        // default: synchronous_commit is set on for sokkel's sessions.
        let server_options = format!(
            "{} -c idle_in_transaction_session_timeout={} -c synchronous_commit=on",
            pg.get_options().unwrap_or(""),
            IDLE_IN_TRANSACTION.as_millis()
        );
        pg.options(server_options.trim());
        let pg = config.config.clone();
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = if config.tls {
            Manager::from_config(pg, config.tls_connector()?, manager_config)
        } else {
            Manager::from_config(pg, tokio_postgres::NoTls, manager_config)
        };
        let pool = Pool::builder(manager)
            .max_size(MAX_CONNECTIONS)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|error| StoreError::unavailable(error.to_string()))?;
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let shared = Arc::new(Shared {
            config,
            options,
            pool,
            events,
            node: node_name(),
            deleted: AtomicU64::new(0),
            retention: retention::RetentionLock::default(),
            counters: Arc::default(),
            handle: handle.clone(),
        });
        let writer = handle.block_on(async {
            let mut client = shared.client().await?;
            schema::migrate(&mut client).await?;
            index::spawn_indexer(Arc::clone(&shared));
            let writer = writer::Writer::spawn(Arc::clone(&shared));
            Ok::<_, StoreError>(writer)
        })?;
        Ok(PgStore {
            inner: Arc::new(Inner {
                shared,
                writer,
                listener: Mutex::new(None),
                runtime: Mutex::new(Some(runtime)),
            }),
        })
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }

    pub(crate) fn counters(&self) -> &Arc<StoreCounters> {
        &self.inner.shared.counters
    }

    /// Where the store lives, without secrets.
    pub(crate) fn location(&self) -> String {
        self.inner.shared.config.to_string()
    }

    /// Whether the database answers: one round trip on a pooled connection.
    pub(crate) fn ping(&self) -> Result<(), StoreError> {
        self.run(async {
            let client = self.inner.shared.client().await?;
            client.simple_query("SELECT 1").await?;
            Ok(())
        })
    }

    /// Run `work` on the backend's runtime and wait for it. Blocks: call it
    /// from a thread that may block (`spawn_blocking`, the CLI), never from
    /// async code.
    pub(crate) fn run<T>(
        &self,
        work: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.inner.shared.handle.block_on(work)
    }
}

impl Shared {
    /// A pooled connection; [`StoreError::Unavailable`] when the database
    /// cannot be reached within [`CONNECT_TIMEOUT`].
    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(StoreError::from)
    }

    /// Tell this node's subscribers about a committed change.
    pub(crate) fn announce(&self, event: StoreEvent) {
        let _ = self.events.send(event);
    }
}

/// Take the next change number and with it the cluster's write lock, held
/// until the transaction ends: the first statement of every write
/// transaction. What the transaction changes gets this number as its modseq.
pub(crate) async fn next_seq(
    tx: &impl deadpool_postgres::GenericClient,
) -> Result<i64, StoreError> {
    let statement = tx
        .prepare_cached("UPDATE store_state SET change_seq = change_seq + 1 RETURNING change_seq")
        .await?;
    Ok(tx.query_one(&statement, &[]).await?.get(0))
}

/// [`StoreError::Full`] if storing `arriving` more raw bytes would pass
/// [`StoreOptions::max_size`]; call it after [`next_seq`], whose lock keeps
/// the count still until the transaction ends.
pub(crate) async fn room_for(
    tx: &impl deadpool_postgres::GenericClient,
    shared: &Shared,
    arriving: usize,
) -> Result<(), StoreError> {
    let Some(max) = shared.options.max_size else {
        return Ok(());
    };
    let statement = tx.prepare_cached("SELECT bytes FROM store_state").await?;
    let stored: i64 = tx.query_one(&statement, &[]).await?.get(0);
    if (stored.max(0) as u64).saturating_add(arriving as u64) > max {
        return Err(StoreError::Full);
    }
    Ok(())
}

/// A change other nodes are told of, in the transaction that makes it
/// ([`publish`]); PostgreSQL delivers it when (and only if) that commits.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Notice {
    /// Messages stored; the listener reads their summaries.
    New { ids: Vec<i64> },
    /// Messages deleted.
    Deleted { ids: Vec<i64> },
    /// Messages deleted by the retention policy.
    Pruned { ids: Vec<i64> },
    /// Every message deleted.
    DeletedAll,
    /// Messages marked read or unread.
    Read { ids: Vec<i64>, value: bool },
    /// Messages starred or unstarred.
    Flagged { ids: Vec<i64>, value: bool },
    /// Messages whose tags changed; the listener reads their tags.
    Tags { ids: Vec<i64> },
    /// Anything else, or too many ids to name: reload.
    Changed,
}

/// The most ids one notification names; more become [`Notice::Changed`]
/// (a notification's payload is at most 8,000 bytes).
pub(crate) const NOTICE_IDS: usize = 400;

/// Tell the other nodes about `notice` when `tx` commits.
pub(crate) async fn publish(
    tx: &impl deadpool_postgres::GenericClient,
    shared: &Shared,
    notice: Notice,
) -> Result<(), StoreError> {
    let notice = match notice {
        Notice::New { ids }
        | Notice::Deleted { ids }
        | Notice::Pruned { ids }
        | Notice::Tags { ids }
        | Notice::Read { ids, .. }
        | Notice::Flagged { ids, .. }
            if ids.len() > NOTICE_IDS =>
        {
            Notice::Changed
        }
        notice => notice,
    };
    let payload = serde_json::json!({ "node": shared.node, "notice": notice }).to_string();
    let statement = tx.prepare_cached("SELECT pg_notify($1, $2)").await?;
    tx.execute(&statement, &[&CHANNEL, &payload]).await?;
    Ok(())
}

/// Ids as PostgreSQL's `bigint[]`.
pub(crate) fn ids_of(ids: &[MessageId]) -> Vec<i64> {
    queries::id_array(ids)
}

/// A name for this handle that no other node has.
fn node_name() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    format!("{}-{nanos:x}", std::process::id())
}
