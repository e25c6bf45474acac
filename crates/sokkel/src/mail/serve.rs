//! `sokkel mail serve`: the catcher.

use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sokkel_net::chaos::{Chaos, Triggers};
use sokkel_net::repeated::{REPEAT_INTERVAL, RepeatedLog};
use sokkel_net::server::address_share;
use sokkel_net::stats::SmtpCounters;
use sokkel_smtp::server::session::{BareLf, SessionConfig};
use sokkel_smtp::server::shell::{Listeners, ServerConfig, serve};
use sokkel_store::tags::Tagging;
use sokkel_store::{
    Location, Ownership, Pruner, Retention, Store, StoreError, StoreEvent, StoreOptions,
};
use sokkel_web::webhook::{Webhook, WebhookConfig};
use sokkel_web::{
    AppState, HostPolicy, MetricSources, SendLimits, ServeLimits, WebConfig, WebRoot,
};

use crate::cli::{ChaosArgs, MailServeArgs, TagSource};
use crate::hints::announce;
use crate::listen::{Binding, command_line, listen_addresses, warn_if_exposed};
use crate::mail::imap::ImapListeners;
use crate::mail::pop3::Pop3Listeners;
use crate::mail::relay::ServeRelay;
use crate::mail::security::Security;
use crate::mail::web_login::WebLogin;

/// The chaos `--enable-chaos` and `--chaos` ask for (a `--chaos` setting implies
/// `--enable-chaos`), with one log line saying so: it changes what clients see,
/// and where under the web root `root` to change it.
fn chaos(args: &ChaosArgs, root: &WebRoot) -> anyhow::Result<Option<Arc<Chaos>>> {
    if !args.enable_chaos && sokkel_net::chaos::settings(&args.chaos).next().is_none() {
        return Ok(None);
    }
    let triggers =
        Triggers::parse(&args.chaos).map_err(|error| anyhow::anyhow!("--chaos: {error}"))?;
    let seed = args
        .chaos_seed
        .unwrap_or_else(sokkel_net::chaos::random_seed);
    tracing::warn!(
        "chaos is enabled: SMTP clients get faults on purpose ({triggers}; seed {seed}); change them with PUT {root}api/v1/chaos"
    );
    Ok(Some(Arc::new(Chaos::new(triggers, seed))))
}

pub fn run(args: MailServeArgs) -> anyhow::Result<ExitCode> {
    let runtime = crate::runtime::runtime(usize::from(args.threads))?;
    runtime.block_on(serve_until_stopped(args))
}

async fn serve_until_stopped(args: MailServeArgs) -> anyhow::Result<ExitCode> {
    let mut stop = Box::pin(sokkel_net::shutdown_signal());
    sokkel_net::raise_open_file_limit();
    let chaos = chaos(&args.chaos, &args.webroot)?;
    // Bind first: a port in use is the most likely mistake, and it should not leave
    // a new store behind.
    let hostname = args.hostname.clone().unwrap_or_else(super::send::host_name);
    let relay = ServeRelay::from_args(&args.relay)?;
    let smtp_addrs = listen_addresses(&args.smtp).await?;
    let smtps_addrs = listen_addresses(&args.security.smtps).await?;
    let http_addrs = if args.no_http {
        Vec::new()
    } else {
        listen_addresses(&args.http).await?
    };
    let pop3_addrs = Pop3Listeners::addresses(&args.pop3).await?;
    let imap_addrs = ImapListeners::addresses(&args.imap).await?;
    let all_addrs: Vec<_> = smtp_addrs
        .iter()
        .chain(&smtps_addrs)
        .chain(&pop3_addrs.plain)
        .chain(&pop3_addrs.tls)
        .chain(&imap_addrs.plain)
        .chain(&imap_addrs.tls)
        .copied()
        .collect();
    let security = Security::from_args(&args.security, &hostname, &all_addrs)?;
    let web_login = WebLogin::from_args(
        &args.web_login,
        &security,
        args.security.tls_self_signed,
        &hostname,
        &http_addrs,
    )?;
    // Every listener is tried before any failure is reported: a second
    // catcher started beside a first one hears of every port it holds at once.
    let mut binding = Binding::default();
    let smtp_slot = binding.add("--smtp", 1025, smtp_addrs);
    let smtps_slot = binding.add("--smtps", 1465, smtps_addrs);
    let http_slot = binding.add("--http", 8025, http_addrs);
    let pop3_slots = Pop3Listeners::add(&mut binding, pop3_addrs, &security)?;
    let imap_slots = ImapListeners::add(&mut binding, imap_addrs, &security)?;
    let mut bound = match binding.bind() {
        Ok(bound) => bound,
        Err(failures) => {
            let remedy = match binding.remedy(&failures) {
                Some(set) => Some(remedy_command(&args, &set).await),
                None => None,
            };
            return Err(failures.explain(remedy));
        }
    };
    let listeners = Listeners {
        smtp: bound.take(smtp_slot),
        smtps: bound.take(smtps_slot),
    };
    let http_listeners = bound.take(http_slot);
    let pop3 = Pop3Listeners::take(&mut bound, pop3_slots);
    let imap = ImapListeners::take(&mut bound, imap_slots);

    let ephemeral = if args.ephemeral {
        Some(
            tempfile::Builder::new()
                .prefix("sokkel-")
                .tempdir()
                .context("cannot create a temporary store")?,
        )
    } else {
        None
    };
    let location = match &ephemeral {
        Some(dir) => Location::File(dir.path().join("mail.db")),
        None => super::serve_location(&args.store)?,
    };
    let options = StoreOptions {
        max_size: args.max_store_size.map(|s| s as u64),
        tagging: Tagging {
            x_tags: !args.tags.tags_disable.contains(&TagSource::XTags),
            plus_addresses: !args.tags.tags_disable.contains(&TagSource::PlusAddresses),
            rules: args.tags.rules.clone(),
        },
        // Only one process takes in a SQLite store's mail; a server started
        // just as another stops gets the store once that one lets go.
        ownership: Ownership::Required(OWNER_WAIT),
        ..StoreOptions::default()
    };
    let Some(store) = open_store(location, options, &mut stop).await? else {
        return Ok(ExitCode::SUCCESS);
    };

    let mut smtp_addrs = Vec::new();
    for listener in &listeners.smtp {
        smtp_addrs.push(listener.local_addr()?);
        announce(format_args!("listening on smtp {}", listener.local_addr()?));
    }
    // For `mail import` in another process, which hands messages over here
    // once this server's EHLO names the token.
    let store_token = store_token();
    if let Err(error) = store.record_smtp(&smtp_addrs, &store_token) {
        tracing::warn!("`mail import` will need --smtp: {error}");
    }
    for listener in &listeners.smtps {
        announce(format_args!(
            "listening on smtps {}",
            listener.local_addr()?
        ));
    }
    let scheme = web_login.scheme();
    for listener in &http_listeners {
        announce(format_args!(
            "listening on {scheme} {scheme}://{}{}",
            listener.local_addr()?,
            args.webroot
        ));
    }
    pop3.announce()?;
    imap.announce()?;
    warn_if_exposed(&listeners.smtp, "SMTP", "--smtp", "send mail to it");
    warn_if_exposed(&listeners.smtps, "SMTPS", "--smtps", "send mail to it");
    web_login.warn_if_exposed(&http_listeners);
    security.announce(&args.security);
    if !http_listeners.is_empty() {
        web_login.announce();
    }
    let kept = if ephemeral.is_some() {
        " (temporary, removed at exit)"
    } else {
        ""
    };
    announce(format_args!("mail is kept in {}{kept}", store.location()));
    let retention = Retention::new(args.max, args.max_age);
    announce(format_args!("retention: {retention}"));
    let relay = match relay {
        Some(relay) => Some(relay.start(&store, hostname.clone()).await?),
        None => None,
    };
    if let Some(relay) = &relay {
        announce(format_args!("relays to {}", relay.describe()));
    }
    tokio::spawn(log_new_messages(store.clone()));
    let webhook = start_webhook(&args, &store)?;
    let pruner = Pruner::spawn(store.clone(), retention);

    // What the servers count, shown by the web API and /metrics.
    let smtp_counters = Arc::new(SmtpCounters::default());
    let metrics = MetricSources {
        relay: relay
            .as_ref()
            .map(|relay| Arc::clone(relay.counters()))
            .unwrap_or_default(),
        webhook: webhook.clone(),
        ..MetricSources::default()
    };
    let (pop3_sessions, imap_sessions) = (
        Arc::clone(&metrics.pop3_sessions),
        Arc::clone(&metrics.imap_sessions),
    );
    let session = SessionConfig {
        hostname: hostname.clone(),
        max_message_size: args.max_message_size,
        max_recipients: args.max_recipients as usize,
        max_line_length: args.max_line as usize,
        max_errors: args.max_errors,
        bare_lf: if args.bare_lf == "reject" {
            BareLf::Reject
        } else {
            BareLf::Accept
        },
        starttls: security.tls.is_some(),
        require_tls: args.security.require_tls,
        auth: security.credentials.is_some(),
        allow_insecure_auth: args.security.allow_insecure_auth,
        max_auth_failures: args.security.max_auth_failures,
        chaos: chaos.clone(),
        store_token: Some(store_token),
    };
    let config = ServerConfig {
        session: Arc::new(session),
        max_conns: args.max_conns,
        max_conns_per_address: address_share(args.max_conns, args.per_address_share),
        command_timeout: args.command_timeout,
        data_timeout: args.data_timeout,
        data_total_timeout: args.data_total_timeout,
        max_inflight_memory: args.max_inflight_memory,
        shutdown_grace: args.shutdown_timeout,
        tls: security.tls.clone(),
        credentials: security.credentials.clone(),
        auth_failure_delay: args.security.auth_failure_delay,
        counters: Arc::clone(&smtp_counters),
        proxy_protocol: args.proxy_protocol,
    };
    // One stop signal for both servers.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut stop_rx = stop_rx.clone();
        async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        }
    };
    let web = if http_listeners.is_empty() {
        None
    } else {
        let loopback_only = http_listeners
            .iter()
            .all(|l| l.local_addr().is_ok_and(|a| a.ip().is_loopback()));
        if !loopback_only && !args.http_allow_host.is_empty() {
            // The names are for the DNS-rebinding guard, which only a loopback
            // listener needs: beyond loopback every Host is answered.
            tracing::warn!(
                "--http-allow-host has no effect: the HTTP listener listens beyond loopback, so it answers every host name; give --http 127.0.0.1:PORT to answer only loopback names and these"
            );
        }
        let web_config = WebConfig {
            chaos,
            host_policy: if loopback_only {
                HostPolicy::Loopback
            } else {
                HostPolicy::Any
            },
            allowed_hosts: args.http_allow_host.clone(),
            web_root: args.webroot.clone(),
            release: relay
                .clone()
                .map(|relay| Arc::new(relay) as Arc<dyn sokkel_web::release::Release>),
            smtp_counters,
            send: SendLimits {
                max_message_size: args.max_message_size,
                max_recipients: args.max_recipients as usize,
            },
            smtp_addresses: listeners
                .smtp
                .iter()
                .filter_map(|listener| listener.local_addr().ok())
                .map(|addr| addr.to_string())
                .collect(),
            link_check_timeout: Duration::from_secs(args.link_check.link_check_timeout),
            link_check_block_private: args.link_check.link_check_block_private,
            login: web_login.credentials.clone(),
            login_failure_delay: args.security.auth_failure_delay,
            metrics,
            ..WebConfig::default()
        };
        let max_connections = u32::try_from(web_config.max_connections).unwrap_or(u32::MAX);
        let limits = ServeLimits {
            max_connections_per_address: address_share(max_connections, args.per_address_share)
                as usize,
            header_timeout: args.http_header_timeout,
            body_timeout: args.http_body_timeout,
            tls: web_login.tls.clone(),
        };
        let state = AppState::new(store.clone(), web_config);
        Some(tokio::spawn(sokkel_web::serve_with(
            http_listeners,
            state,
            limits,
            stopped(),
            args.shutdown_timeout,
        )))
    };
    tokio::spawn(async move {
        stop.await;
        let _ = stop_tx.send(true);
    });
    match &relay {
        Some(relay) => tracing::info!(
            "mail catcher ready; it relays to {} when told to. Ctrl-C stops it",
            relay.describe()
        ),
        None => tracing::info!("mail catcher ready; it relays nothing. Ctrl-C stops it"),
    }
    let smtp = async {
        serve(config, listeners, Arc::new(store.clone()), stopped())
            .await
            .context("the SMTP server failed")
    };
    let pop3 = pop3.serve(
        &args,
        hostname.clone(),
        &security,
        store.clone(),
        pop3_sessions,
        stopped(),
    );
    let imap = imap.serve(
        &args,
        hostname,
        &security,
        store.clone(),
        imap_sessions,
        stopped(),
    );
    let served = tokio::try_join!(smtp, pop3, imap);
    // Before the store closes: a run in progress ends with the batch it is on.
    pruner.stop().await;
    if let Err(error) = store.forget_smtp() {
        tracing::warn!("{error}");
    }
    let (summary, pop3_summary, imap_summary) = served?;
    if let Some(web) = web {
        match web.await {
            Ok(result) => result.context("the web server failed")?,
            Err(error) => tracing::warn!(%error, "the web server task failed"),
        }
    }
    if let Some(pop3) = pop3_summary.filter(|pop3| pop3.cut_off > 0) {
        tracing::warn!(
            open = pop3.cut_off,
            "stopped with POP3 sessions still open after the grace period"
        );
    }
    if let Some(imap) = imap_summary.filter(|imap| imap.cut_off > 0) {
        tracing::warn!(
            open = imap.cut_off,
            "stopped with IMAP sessions still open after the grace period"
        );
    }
    if summary.cut_off > 0 {
        tracing::warn!(
            open = summary.cut_off,
            "stopped with sessions still open after the grace period"
        );
    }
    if let Some(webhook) = webhook {
        let counts = webhook.counts();
        tracing::info!(
            "webhook: {} posted, {} failed, {} over the limit, {} dropped",
            counts.sent,
            counts.failed,
            counts.skipped,
            counts.dropped
        );
    }
    tracing::info!(sessions = summary.sessions, "stopped");
    drop(ephemeral);
    Ok(ExitCode::SUCCESS)
}

/// What to run instead of this command when some ports could not be bound:
/// the same command line, with `set` replacing those flags' values. When the store is one another
/// sokkel serves, free ports alone would not do: the command then keeps its
/// mail in a temporary store (`--ephemeral`) instead.
async fn remedy_command(args: &MailServeArgs, set: &[(String, String)]) -> String {
    let served = !args.ephemeral && store_is_served(&args.store).await;
    if served {
        let mut command = command_line(set, &[("--db", true)], &["--ephemeral"]);
        // --ephemeral cannot go with a store named by the environment either.
        if std::env::var_os("SOKKEL_DB").is_some() {
            command.insert_str(0, "env -u SOKKEL_DB ");
        }
        format!(
            "another sokkel serves the same store; to run a second one beside it, on free ports with a temporary store: {command}"
        )
    } else {
        let command = command_line(set, &[], &[]);
        format!("to run on free ports instead: {command}")
    }
}

/// A token no other run of `mail serve` has: 128 bits from the standard
/// library's per-process random hash keys (which the operating system seeds).
fn store_token() -> String {
    use std::hash::{BuildHasher, RandomState};
    let seed = (std::process::id(), std::time::SystemTime::now());
    let halves = [RandomState::new(), RandomState::new()].map(|keys| keys.hash_one(seed));
    format!("{:016x}{:016x}", halves[0], halves[1])
}

/// Whether another process serves the SQLite store `args` names; a store
/// that does not exist yet is not created.
async fn store_is_served(args: &crate::cli::StoreArgs) -> bool {
    let Ok(location) = super::store_location(args) else {
        return false;
    };
    if !matches!(&location, Location::File(path) if path.exists()) {
        return false;
    }
    let options = StoreOptions {
        ownership: Ownership::Required(Duration::ZERO),
        ..StoreOptions::default()
    };
    let opened = tokio::task::spawn_blocking(move || Store::open_at(&location, options)).await;
    matches!(opened, Ok(Err(StoreError::Served { .. })))
}

/// How often `serve` tries again to reach a database that is down at start.
const OPEN_RETRY: Duration = Duration::from_secs(2);

/// How long `serve` waits for another process that serves the same SQLite
/// store to let go of it before it gives up.
const OWNER_WAIT: Duration = Duration::from_secs(10);

/// Opens the store at `location`. A database that cannot be reached (a
/// PostgreSQL server down or still starting) is tried again every
/// [`OPEN_RETRY`], with one log line per interval, until it answers or `stop`
/// fires (then `None`): nodes and their database often start together, and a
/// node that waits is ready as soon as the database is. Any other failure (a
/// wrong password, a schema from a newer sokkel) ends `serve` with one line.
async fn open_store(
    location: Location,
    options: StoreOptions,
    stop: &mut (impl Future<Output = ()> + Unpin),
) -> anyhow::Result<Option<Store>> {
    static UNREACHABLE: RepeatedLog = RepeatedLog::new(REPEAT_INTERVAL);
    loop {
        let (at, with) = (location.clone(), options.clone());
        let opened = tokio::task::spawn_blocking(move || Store::open_at(&at, with))
            .await
            .context("opening the mail store panicked")?;
        match opened {
            Ok(store) => return Ok(Some(store)),
            Err(error) if error.is_unavailable() => {
                let repeat = UNREACHABLE.occurrence(&error.to_string());
                if repeat.should_log() {
                    tracing::warn!(
                        "cannot reach the mail store {location} ({error}); sokkel waits for it, trying every {} s{repeat}",
                        OPEN_RETRY.as_secs()
                    );
                }
            }
            Err(StoreError::Served { pid }) => {
                let who = pid.map_or_else(String::new, |pid| format!(" (pid {pid})"));
                anyhow::bail!(
                    "another sokkel{who} serves the mail store {location}; stop it first, or pass another --db"
                );
            }
            Err(error) => {
                return Err(error)
                    .with_context(|| format!("cannot open the mail store {location}"));
            }
        }
        tokio::select! {
            () = tokio::time::sleep(OPEN_RETRY) => {}
            () = &mut *stop => return Ok(None),
        }
    }
}

/// Starts the webhook if `--webhook-url` names one.
fn start_webhook(args: &MailServeArgs, store: &Store) -> anyhow::Result<Option<Webhook>> {
    let Some(url) = args.webhook.webhook_url.clone() else {
        return Ok(None);
    };
    let per_second = args.webhook.webhook_limit;
    let limit = match per_second {
        0 => "no limit".to_string(),
        n => format!("at most {n} a second"),
    };
    announce(format_args!(
        "webhook: posting new messages to {url} ({limit})"
    ));
    let config = WebhookConfig {
        url,
        per_second,
        version: env!("CARGO_PKG_VERSION").to_string(),
    };
    Ok(Some(Webhook::spawn(store, config)?))
}

/// One log line per stored message: who, to whom, what, how big, and its id.
async fn log_new_messages(store: Store) {
    let mut events = store.subscribe();
    loop {
        match events.recv().await {
            Ok(StoreEvent::New(m)) => {
                let to = m.rcpt_to.join(", ");
                tracing::info!(
                    "message {} from <{}> to {to}: {:?}, {} bytes{}",
                    m.id,
                    m.mail_from,
                    m.subject,
                    m.size,
                    if m.bare_lf {
                        " (bare LF line endings)"
                    } else {
                        ""
                    }
                );
            }
            Ok(_) => {}
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                tracing::debug!(skipped = n, "message log fell behind");
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}
