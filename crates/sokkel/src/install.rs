//! `sokkel completions SHELL` and `sokkel man`: what a package or a user installs
//! beside the binary, generated from the clap definition so it cannot drift from it.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, CommandFactory, ValueEnum};

use crate::cli::Cli;

/// The shells `sokkel completions` writes for.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_name = "SHELL")]
    pub shell: Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// The command whose page to print, e.g. `mail serve` (default: sokkel's own page).
    #[arg(value_name = "COMMAND", conflicts_with = "dir")]
    pub command: Vec<String>,
    /// Write every page (sokkel.1, sokkel-mail-serve.1, ...) into this existing directory instead.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// The command line as clap sees it, with the name it is installed under.
fn definition() -> clap::Command {
    Cli::command().bin_name("sokkel")
}

pub fn completions(args: CompletionsArgs) -> anyhow::Result<ExitCode> {
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut definition(), "sokkel", &mut script);
    let mut out = std::io::stdout().lock();
    out.write_all(&script)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

pub fn man(args: ManArgs) -> anyhow::Result<ExitCode> {
    // Help as a subcommand (`sokkel help mail`) gets no page of its own.
    let mut root = definition().disable_help_subcommand(true);
    root.build();
    if let Some(dir) = args.dir {
        if !dir.is_dir() {
            eprintln!(
                "sokkel: {} is not a directory: create it first, e.g. `mkdir -p {}`",
                dir.display(),
                dir.display()
            );
            return Ok(ExitCode::from(2));
        }
        let mut written = 0;
        write_pages(&root, &dir, &mut written)
            .with_context(|| format!("cannot write man pages into {}", dir.display()))?;
        println!("wrote {written} man pages into {}", dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    let mut cmd = &root;
    for (depth, name) in args.command.iter().enumerate() {
        let Some(sub) = cmd.find_subcommand(name).filter(|s| !s.is_hide_set()) else {
            let path = std::iter::once("sokkel")
                .chain(args.command[..depth].iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join(" ");
            let names: Vec<&str> = cmd
                .get_subcommands()
                .filter(|s| !s.is_hide_set())
                .map(|s| s.get_name())
                .collect();
            if names.is_empty() {
                eprintln!(
                    "sokkel: `{path}` has no commands under it; its page is `sokkel man{}`",
                    &path["sokkel".len()..]
                );
            } else {
                eprintln!(
                    "sokkel: `{path}` has no command `{name}`; it has: {}",
                    names.join(", ")
                );
            }
            return Ok(ExitCode::from(2));
        };
        cmd = sub;
    }
    let mut page = Vec::new();
    page_of(cmd).render(&mut page)?;
    let mut out = std::io::stdout().lock();
    out.write_all(&page)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The page of `cmd`, from sokkel's version (not "serve 0.1.0" for `mail serve`).
fn page_of(cmd: &clap::Command) -> clap_mangen::Man {
    clap_mangen::Man::new(cmd.clone()).source(format!("sokkel {}", env!("CARGO_PKG_VERSION")))
}

/// Writes the page of `cmd` and of every command under it, as clap_mangen's
/// `generate_to` does, counting them.
fn write_pages(
    cmd: &clap::Command,
    dir: &std::path::Path,
    written: &mut usize,
) -> std::io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, dir, written)?;
    }
    page_of(cmd).generate_to(dir)?;
    *written += 1;
    Ok(())
}
