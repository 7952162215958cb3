//! `guard config …`: the commented template, and a check of a config file.

use std::io::Write;

use anyhow::Result;

use super::Global;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print a commented guard.toml with every key at its default.
    Template,
    /// Load the configuration given with --config and report problems.
    Check,
}

pub fn run(global: &Global, cmd: Command, out: &mut dyn Write) -> Result<u8> {
    match cmd {
        Command::Template => {
            write!(out, "{}", crate::config::TEMPLATE)?;
            Ok(0)
        }
        Command::Check => {
            let Some(path) = &global.config else {
                anyhow::bail!("no configuration given: pass --config FILE or set GUARD_CONFIG");
            };
            super::load_config(global)?;
            writeln!(out, "{}: ok", path.display())?;
            Ok(0)
        }
    }
}
