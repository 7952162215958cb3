//! The `guard` command line: global options, set-up shared by subcommands
//! (configuration, database, runtime with plugins), and one file per
//! subcommand.

mod config_cmd;
mod detect;
mod eval;
mod exec;
mod learn;
mod new_plugin;
mod pack;
pub mod patterns;
mod plugins;
mod run;
pub(crate) mod status;
mod train;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::runtime::Runtime;
use crate::runtime::loader::LoadFailure;
use crate::store::Store;

/// guard: reads a failed CI job's log, says why it failed with the evidence,
/// heals what a retry or a cache reset can heal, and refuses to burn CI
/// minutes on what no retry can fix.
#[derive(Debug, Parser)]
#[command(name = "guard", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Options every subcommand takes.
#[derive(Debug, clap::Args, Clone)]
pub struct Global {
    /// Data directory: the sled database (DIR/db) and the compile cache (DIR/compiled).
    #[arg(long, global = true, env = "GUARD_DATA", default_value = ".guard")]
    pub data: PathBuf,
    /// Configuration file (guard.toml); see `guard config template`.
    #[arg(long, global = true, env = "GUARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log verbosity for guard's own diagnostics (error, warn, info, debug, trace).
    #[arg(
        long = "log-level",
        global = true,
        env = "GUARD_LOG",
        default_value = "warn"
    )]
    pub log_level: String,
    /// Format of guard's own diagnostics on stderr: `text`, or `json` (one object per line, for log shippers).
    #[arg(
        long = "log-format",
        global = true,
        env = "GUARD_LOG_FORMAT",
        default_value = "text",
        value_parser = ["text", "json"]
    )]
    pub log_format: String,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Diagnose CI logs: one verdict per file, with evidence lines.
    Detect(detect::Args),
    /// Wrap a CI step: run it, and on failure diagnose and heal on the spot.
    Exec(exec::Args),
    /// Learn a rule from the failure line of a log.
    Learn(learn::Args),
    /// Build, inspect, sign and verify pattern-pack components.
    #[command(subcommand)]
    Pack(pack::Command),
    /// Circuit breakers, retry budgets and strategy statistics.
    Status(status::Args),
    /// Measure detection on a labelled corpus (labels.jsonl + passing/).
    Eval(eval::Args),
    /// Train the classifier on labelled corpora and stored examples.
    Train(train::Args),
    /// Inspect the active rules.
    #[command(subcommand)]
    Patterns(patterns::Command),
    /// List and check plugins.
    #[command(subcommand)]
    Plugins(plugins::Command),
    /// The daemon: webhooks in, diagnoses and heals through the platforms' APIs.
    Run(run::Args),
    /// Print a shell completion script: `guard completions bash > /etc/bash_completion.d/guard`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Configuration helpers.
    #[command(subcommand)]
    Config(config_cmd::Command),
}

/// Whether this process is the `guard` binary, which ends as soon as its
/// command returns (set by [`main`]; tests call [`execute`] in-process).
static ENDS_AFTER_COMMAND: AtomicBool = AtomicBool::new(false);

/// Lets go of what a command built — its runtime, plugins and rule set —
/// once the command is done with it; the store must have been flushed. In
/// the `guard` binary nothing is taken apart: the process ends next and the
/// OS takes the memory back whole, where freeing a rule set and its plugins
/// item by item took 0.6–0.8 ms of a small log's 13 ms `guard detect`
/// (the database, flushed, is as a crash would leave it, which sled
/// recovers). In-process it is dropped here, which closes the database.
pub(crate) fn let_go<T>(value: T) {
    if ENDS_AFTER_COMMAND.load(Ordering::Relaxed) {
        std::mem::forget(value);
    } else {
        drop(value);
    }
}

/// Entry point of the `guard` binary.
pub fn main() -> ExitCode {
    ENDS_AFTER_COMMAND.store(true, Ordering::Relaxed);
    let cli = Cli::parse();
    init_tracing(&cli.global.log_level, cli.global.log_format == "json");
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    // anstream strips colours when the stream is not a terminal or when
    // NO_COLOR is set.
    let mut out = anstream::stdout();
    let mut err = anstream::stderr();
    let code = rt.block_on(execute(cli, &mut out, &mut err));
    // Dropping the runtime ends what is still running on it, and with the
    // last holder the database closes (sled flushes and syncs on drop). What
    // is left after that is teardown the OS does anyway: the allocator
    // handing each of its segments back with an `madvise` of its own, about
    // a millisecond of a one-shot command. So the output is flushed and the
    // process leaves without it.
    drop(rt);
    let _ = out.flush();
    let _ = err.flush();
    leave(code)
}

/// Ends the process with `code`, skipping exit handlers and destructors.
#[cfg(unix)]
#[allow(unsafe_code)]
fn leave(code: u8) -> ExitCode {
    // SAFETY: `_exit` ends the process at once; nothing runs after it that
    // could observe a half-torn-down state. The runtime and the database
    // are closed and the output is flushed.
    unsafe { libc::_exit(i32::from(code)) }
}

#[cfg(not(unix))]
fn leave(code: u8) -> ExitCode {
    ExitCode::from(code)
}

/// Runs a parsed command line, writing to `out` and `err`; errors are
/// printed to `err` and give exit status 2. Tests call this in-process.
pub async fn execute(cli: Cli, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let result = match cli.command {
        Command::Detect(args) => detect::run(&cli.global, args, out, err).await,
        Command::Plugins(cmd) => plugins::run(&cli.global, cmd, out, err).await,
        Command::Eval(args) => eval::run(&cli.global, args, out).await,
        Command::Exec(args) => exec::run(&cli.global, args, out, err).await,
        Command::Status(args) => status::run(&cli.global, args, out).await,
        Command::Learn(args) => learn::run(&cli.global, args, out).await,
        Command::Train(args) => train::run(&cli.global, args, out).await,
        Command::Pack(cmd) => pack::run(&cli.global, cmd, out).await,
        Command::Patterns(cmd) => patterns::run(&cli.global, cmd, out, err).await,
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "guard", out);
            Ok(0)
        }
        Command::Run(args) => run::run(&cli.global, args, err).await,
        Command::Config(cmd) => config_cmd::run(&cli.global, cmd, out),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(err, "error: {e:#}");
            2
        }
    }
}

fn init_tracing(level: &str, json: bool) {
    let mut filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // wasmtime-wasi logs every plugin stdout write at debug level, past
    // guard's own cap on plugin output; guard logs what it keeps itself.
    if !level.contains("wasmtime_wasi")
        && let Ok(d) = "wasmtime_wasi=warn".parse()
    {
        filter = filter.add_directive(d);
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    // Structured fields (event, repository, outcome, …) become JSON keys.
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}

/// Loads the configuration named by `--config` (defaults when none).
pub fn load_config(global: &Global) -> Result<Config> {
    match &global.config {
        Some(path) => {
            Config::load(path).with_context(|| format!("loading configuration {}", path.display()))
        }
        None => Ok(Config::default()),
    }
}

/// Opens the database `--config` names (PostgreSQL under `[store] url` or
/// `GUARD_STORE_URL`), else the one under `--data`, falling back to a
/// temporary one (with a warning) when a running daemon holds it.
pub fn open_store(global: &Global) -> Result<Store> {
    open_store_with(global, &load_config(global)?)
}

fn open_store_with(global: &Global, config: &crate::config::Config) -> Result<Store> {
    std::fs::create_dir_all(&global.data)
        .with_context(|| format!("creating data directory {}", global.data.display()))?;
    let (store, fallback) = Store::open_configured(&config.store, &global.data, true)?;
    if let Some(why) = fallback {
        tracing::warn!("{why}");
    }
    Ok(store)
}

/// Builds a runtime with the embedded plugins plus those of `plugins_dir`.
/// Plugins that fail to load are returned (and logged), not fatal.
pub async fn runtime(
    global: &Global,
    plugins_dir: Option<&Path>,
) -> Result<(Arc<Runtime>, Vec<LoadFailure>)> {
    let config = Arc::new(load_config(global)?);
    let store = open_store_with(global, &config)?;
    let mut runtime = Runtime::one_shot(config, store, Some(global.data.join("compiled")))
        .context("starting the plugin runtime")?;
    let mut failures = runtime.load_embedded().await;
    if let Some(dir) = plugins_dir {
        failures.extend(
            runtime
                .load_dir(dir)
                .await
                .with_context(|| format!("reading plugin directory {}", dir.display()))?,
        );
    }
    for f in &failures {
        tracing::warn!("plugin not loaded: {}", f.error);
    }
    Ok((Arc::new(runtime), failures))
}

/// Parses a command line (the first item is the program name).
pub fn parse_args<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    Cli::try_parse_from(args)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
