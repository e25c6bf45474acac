//! `sokkel mail tag ID... --add T --remove T`: change messages' tags, also while
//! a server runs (its web page hears of it within a second), and print them.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::TagArgs;

pub fn run(args: TagArgs) -> anyhow::Result<ExitCode> {
    let store = super::open_existing(&args.store)?;
    let ids = args
        .ids
        .iter()
        .map(|id| super::read::resolve_id(&store, id))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if !args.add.is_empty() {
        store
            .add_tags(&ids, &args.add)
            .context("cannot add the tags")?;
    }
    if !args.remove.is_empty() {
        store
            .remove_tags(&ids, &args.remove)
            .context("cannot remove the tags")?;
    }
    let mut out = std::io::stdout().lock();
    let mut missing = 0;
    for id in ids {
        match store.get(id)? {
            Some(message) if message.summary.tags.is_empty() => writeln!(out, "{id}: (no tags)")?,
            Some(message) => writeln!(out, "{id}: {}", message.summary.tags.join(", "))?,
            None => {
                missing += 1;
                eprintln!("sokkel: no message {id}; `sokkel mail list` shows the ids");
            }
        }
    }
    Ok(if missing > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
