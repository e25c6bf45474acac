//! `sokkel mail serve | list | show | delete | flag | read | unread | tag | send | release | compose
//! | import | export`.

mod compose;
mod export;
mod imap;
mod import;
mod listeners;
mod mailbox;
mod pop3;
mod read;
mod relay;
mod security;
mod send;
pub mod sendmail;
mod serve;
mod tag;
mod web_login;

use std::process::ExitCode;

use anyhow::{Context, bail};
use sokkel_store::{Location, Store, StoreOptions};

use crate::cli::{MailCommand, StoreArgs};

pub fn run(command: MailCommand) -> anyhow::Result<ExitCode> {
    match command {
        MailCommand::Serve(args) => serve::run(args),
        MailCommand::List(args) => read::list(args),
        MailCommand::Show(args) => read::show(args),
        MailCommand::Delete(args) => read::delete(args),
        MailCommand::Flag(args) => read::flag(args),
        MailCommand::Read(args) => read::mark(args, true),
        MailCommand::Unread(args) => read::mark(args, false),
        MailCommand::Tag(args) => tag::run(args),
        MailCommand::Send(args) => send::run(args),
        MailCommand::Release(args) => relay::release(args),
        MailCommand::Compose(args) => compose::run(args),
        MailCommand::Import(args) => import::run(args),
        MailCommand::Export(args) => export::run(args),
    }
}

/// Where the store is: `--db`, `SOKKEL_DB` (a path, or a `postgres://` URL),
/// or the platform default. A URL that cannot be used is refused in one line
/// that never repeats it (it may hold a password).
fn store_location(args: &StoreArgs) -> anyhow::Result<Location> {
    match &args.db {
        Some(db) => match db.to_str() {
            Some(text) => text
                .parse()
                .map_err(|error| anyhow::anyhow!("--db: {error}")),
            None => Ok(Location::File(db.into())),
        },
        None => Store::default_path()
            .map(Location::File)
            .context("cannot tell where the platform keeps application data; pass --db PATH"),
    }
}

/// Where `mail serve` keeps mail. The store creates the default location's
/// directories; a path the user gave (`--db`, `SOKKEL_DB`) must be in a directory
/// that exists, so that a typo does not quietly start an empty store elsewhere.
fn serve_location(args: &StoreArgs) -> anyhow::Result<Location> {
    let location = store_location(args)?;
    if let (Some(_), Location::File(path)) = (&args.db, &location)
        && let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty())
        && !dir.is_dir()
    {
        bail!(
            "--db {}: the directory {} does not exist; create it first (`mkdir -p {}`)",
            path.display(),
            dir.display(),
            dir.display()
        );
    }
    Ok(location)
}

/// Opens an existing store for the reading commands; never creates a file.
fn open_existing(args: &StoreArgs) -> anyhow::Result<Store> {
    let location = store_location(args)?;
    if let Location::File(path) = &location
        && !path.exists()
    {
        // With --db (or SOKKEL_DB) given, the path is the user's: say so
        // rather than suggest the flag they used.
        match &args.db {
            Some(_) => bail!(
                "no mail store at {}; check the path, or start `sokkel mail serve --db {}` first",
                path.display(),
                path.display()
            ),
            None => bail!(
                "no mail store at {}; start `sokkel mail serve` first, or pass --db PATH",
                path.display()
            ),
        }
    }
    Store::open_at(&location, StoreOptions::default())
        .with_context(|| format!("cannot open the mail store {location}"))
}
