//! `guard config …`: the commented template, and a check of a config file.

use std::process::ExitCode;

use anyhow::Result;

use super::Global;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print a commented guard.toml with every key at its default.
    Template,
    /// Load the configuration given with --config and report problems.
    Check,
}

pub fn run(global: &Global, cmd: Command) -> Result<ExitCode> {
    match cmd {
        Command::Template => {
            print!("{}", crate::config::TEMPLATE);
            Ok(ExitCode::SUCCESS)
        }
        Command::Check => {
            let Some(path) = &global.config else {
                anyhow::bail!("no configuration given: pass --config FILE or set GUARD_CONFIG");
            };
            super::load_config(global)?;
            println!("{}: ok", path.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}
