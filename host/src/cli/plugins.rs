//! `guard plugins list|check`: what is loaded, and what a component is.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use serde::Serialize;

use super::Global;
use crate::caps::grants::Grants;
use crate::runtime::{Plugin, PluginSource, Runtime};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List the loaded plugins (embedded plus --plugins DIR).
    List {
        /// Directory of extra plugins.
        #[arg(long)]
        plugins: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Create a plugin folder whose build.sh builds NAME.wasm with no edits.
    New {
        /// Plugin name (its id).
        name: String,
        /// Language.
        #[arg(long, value_enum)]
        lang: super::new_plugin::Lang,
        /// Kind of plugin.
        #[arg(long, value_enum, default_value = "detector")]
        kind: super::new_plugin::Kind,
        /// Where to create it.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Tell what a component is: world, WIT version, requested capabilities
    /// against the config's grants, size and compile time.
    Check {
        /// The component.
        file: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Serialize)]
struct PluginView<'a> {
    id: &'a str,
    version: &'a str,
    description: &'a str,
    world: &'static str,
    wit_version: &'a str,
    source: &'a PluginSource,
    sha256: &'a str,
    size: usize,
    exports: &'a [String],
    requested: &'a [String],
    granted: Vec<String>,
    not_granted: Vec<String>,
    rules: usize,
    compile_ms: f64,
    from_cache: bool,
    quarantined: bool,
}

fn view(p: &Plugin) -> PluginView<'_> {
    PluginView {
        id: &p.info.id,
        version: &p.info.version,
        description: &p.info.description,
        world: p.kind.world(),
        wit_version: &p.inspection.wit_version,
        source: &p.source,
        sha256: &p.sha256,
        size: p.size,
        exports: &p.inspection.exports,
        requested: &p.inspection.capabilities,
        granted: p.grants.list(),
        not_granted: ungranted(&p.inspection.capabilities, &p.grants),
        rules: p.rules.len(),
        compile_ms: p.load_time.as_secs_f64() * 1000.0,
        from_cache: p.cache == crate::runtime::cache::CacheOutcome::Hit,
        quarantined: p.is_quarantined(),
    }
}

/// Requested capability interfaces no grant serves (log and kv are free).
fn ungranted(requested: &[String], grants: &Grants) -> Vec<String> {
    requested
        .iter()
        .filter(|i| !grants.covers_interface(i))
        .cloned()
        .collect()
}

pub async fn run(
    global: &Global,
    cmd: Command,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8> {
    match cmd {
        Command::List { plugins, json } => {
            let (runtime, failures) = super::runtime(global, plugins.as_deref()).await?;
            if json {
                let views: Vec<_> = runtime.plugins().iter().map(|p| view(p)).collect();
                writeln!(out, "{}", serde_json::to_string_pretty(&views)?)?;
            } else {
                for p in runtime.plugins() {
                    let v = view(p);
                    let source = match v.source {
                        PluginSource::Embedded => "embedded".to_string(),
                        PluginSource::File(f) => f.display().to_string(),
                    };
                    let extra = if v.rules > 0 {
                        format!(", {} rules", v.rules)
                    } else {
                        String::new()
                    };
                    writeln!(
                        out,
                        "{:<16} {:<8} {:<16} {}{extra}  ({source})",
                        v.id, v.version, v.world, v.description
                    )?;
                    if !v.not_granted.is_empty() {
                        writeln!(
                            out,
                            "{:<16} requests {} without a grant: calls will be denied",
                            "",
                            v.not_granted.join(", ")
                        )?;
                    }
                }
            }
            for f in &failures {
                writeln!(err, "warning: not loaded: {}", f.error)?;
            }
            Ok(0)
        }
        Command::Check { file, json } => check(global, &file, json, out).await,
        Command::New {
            name,
            lang,
            kind,
            dir,
        } => {
            let root = super::new_plugin::create(&dir, &name, lang, kind)?;
            writeln!(
                out,
                "created {}
build it with: {}/build.sh
then: guard plugins check {}/{name}.wasm",
                root.display(),
                root.display(),
                root.display()
            )?;
            Ok(0)
        }
    }
}

async fn check(global: &Global, file: &PathBuf, json: bool, out: &mut dyn Write) -> Result<u8> {
    let config = Arc::new(super::load_config(global)?);
    // A throw-away database and no compile cache: checking must not leave
    // anything behind, and the compile time shown must be real.
    let store = crate::store::Store::temporary().context("creating a temporary database")?;
    let runtime = Runtime::new(config, store, None)?;
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let plugin = runtime
        .prepare(&bytes, PluginSource::File(file.clone()), &name)
        .await?;
    let v = view(&plugin);
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        writeln!(
            out,
            "{}: {} {} — {}",
            file.display(),
            v.id,
            v.version,
            v.description
        )?;
        writeln!(
            out,
            "  world:        {} (guard:plugin@{})",
            v.world, v.wit_version
        )?;
        writeln!(out, "  exports:      {}", v.exports.join(", "))?;
        writeln!(
            out,
            "  requests:     {}",
            if v.requested.is_empty() {
                "nothing".to_string()
            } else {
                v.requested.join(", ")
            }
        )?;
        writeln!(
            out,
            "  granted:      {}",
            if v.granted.is_empty() {
                "nothing beyond log and kv".to_string()
            } else {
                v.granted.join(", ")
            }
        )?;
        if !v.not_granted.is_empty() {
            writeln!(
                out,
                "  not granted:  {} — calls will be denied; grant in [plugins.{}] grants",
                v.not_granted.join(", "),
                v.id
            )?;
        }
        if v.rules > 0 {
            writeln!(out, "  rules:        {}", v.rules)?;
        }
        writeln!(out, "  size:         {} bytes, sha256 {}", v.size, v.sha256)?;
        writeln!(out, "  compile:      {:.1} ms", v.compile_ms)?;
    }
    Ok(0)
}
