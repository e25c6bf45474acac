//! The command line's side of relaying: `sokkel mail release` and the relay
//! flags of `sokkel mail serve`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, bail};
use sokkel_store::time::utc;
use sokkel_store::{RelayAttempt, SearchQuery, Store};
use sokkel_web::release::Release;

use super::auto::Trigger;
use super::{Relay, RelayConfig};
use crate::cli::{RelayArgs, ReleaseArgs};
use crate::mail::read::printable;

/// `sokkel mail release ID --to ADDR...`: one attempt, recorded with the
/// message like a release from the web API.
pub fn release(args: ReleaseArgs) -> anyhow::Result<ExitCode> {
    let Some(file) = &args.relay_config else {
        bail!("mail release needs a relay: pass --relay-config FILE or set SOKKEL_RELAY_CONFIG");
    };
    let config = RelayConfig::load(file)?;
    let store = crate::mail::open_existing(&args.store)?;
    let id = crate::mail::read::resolve_id(&store, &args.id)?;
    let relay = Relay::new(config, store, crate::mail::send::host_name());
    let to = relay
        .recipients(&args.to)
        .map_err(|error| anyhow::anyhow!("--to: {error} ({})", file.display()))?;
    let runtime = crate::runtime::runtime(1)?;
    let attempt = runtime
        .block_on(relay.relay(id, to))?
        .with_context(|| format!("no message {id}; `sokkel mail list` shows the ids"))?;
    if !attempt.ok {
        bail!(
            "relaying message {id} via {} failed: {}",
            relay.describe(),
            attempt.reply
        );
    }
    writeln!(
        std::io::stdout(),
        "released message {id} to {} via {}: {}",
        attempt.recipients.join(", "),
        relay.describe(),
        attempt.reply
    )?;
    Ok(ExitCode::SUCCESS)
}

/// What `mail serve` relays: nothing, releases only, or arrivals too.
#[derive(Debug)]
pub struct ServeRelay {
    pub config: RelayConfig,
    pub trigger: Option<Trigger>,
}

impl ServeRelay {
    /// Checks the relay flags and reads the configuration, before anything
    /// is bound or opened: a mistake there is one line at start.
    pub fn from_args(args: &RelayArgs) -> anyhow::Result<Option<ServeRelay>> {
        let trigger = match (&args.relay_matching, args.relay_all) {
            (Some(query), _) => {
                if query.trim().is_empty() {
                    bail!(
                        "--relay-matching '' would match every message; use --relay-all for that"
                    );
                }
                let query = SearchQuery::parse(query)
                    .map_err(|error| anyhow::anyhow!("--relay-matching {query:?}: {error}"))?;
                Some(Trigger::Matching(query))
            }
            (None, true) => Some(Trigger::All),
            (None, false) => None,
        };
        let Some(file) = &args.relay_config else {
            if trigger.is_some() {
                let flag = if args.relay_all {
                    "--relay-all"
                } else {
                    "--relay-matching"
                };
                bail!("{flag} needs --relay-config FILE, which says where to relay to");
            }
            return Ok(None);
        };
        let config = RelayConfig::load(file)?;
        Ok(Some(ServeRelay { config, trigger }))
    }

    /// Starts auto-relay if asked for; returns the relay for the web API.
    pub async fn start(self, store: &Store, hostname: String) -> anyhow::Result<Relay> {
        let relay = Relay::new(self.config, store.clone(), hostname);
        if let Some(trigger) = self.trigger {
            let what = match &trigger {
                Trigger::All => "every arriving message".to_string(),
                Trigger::Matching(_) => "arriving messages that match --relay-matching".to_string(),
            };
            super::auto::spawn(relay.clone(), trigger).await?;
            tracing::info!("auto-relay: {what}");
        }
        Ok(relay)
    }
}

/// The attempts of a message for `sokkel mail show`, one line each (and one
/// more for recipients the policy left out):
///
/// ```text
/// Relayed:  2026-11-30 20:30:01 UTC to a@example.com: ok, 250 2.0.0 Ok
/// Relayed:  2026-11-30 20:31:00 UTC to a@example.com: FAILED, connect failed: ...
///           not allowed: b@example.org
/// ```
///
/// The reply came from another server: control characters are replaced, so
/// it cannot move the terminal's cursor.
pub fn write_attempts(out: &mut impl Write, attempts: &[RelayAttempt]) -> anyhow::Result<()> {
    for attempt in attempts {
        let to = if attempt.recipients.is_empty() {
            "nobody".to_string()
        } else {
            attempt.recipients.join(", ")
        };
        writeln!(
            out,
            "Relayed:  {} UTC to {to}: {}, {}",
            utc(attempt.at, false),
            if attempt.ok { "ok" } else { "FAILED" },
            printable(&attempt.reply, false)
        )?;
        if !attempt.skipped.is_empty() {
            writeln!(out, "          not allowed: {}", attempt.skipped.join(", "))?;
        }
    }
    Ok(())
}
