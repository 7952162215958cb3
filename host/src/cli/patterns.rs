//! `guard patterns list [--regex] [--json]`: the active rules.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::Serialize;

use super::Global;
use crate::detect::Analyzer;
use crate::model::Rule;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// The active rules of every loaded pack.
    List {
        /// Print one regex per line (for grep/rg and benchmarks).
        #[arg(long, conflicts_with = "json")]
        regex: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Directory of extra plugins.
        #[arg(long)]
        plugins: Option<PathBuf>,
    },
    /// Print the learned rules as a rules file (input of `guard pack build`).
    Export {
        /// Output format.
        #[arg(long, default_value = "toml", value_parser = ["toml", "json"])]
        format: String,
        /// Pack id written into the file.
        #[arg(long, default_value = "learned")]
        id: String,
    },
    /// Import rules from a TOML or JSON rules file, validating each one.
    Import {
        /// The file.
        file: PathBuf,
    },
    /// Remove a learned rule.
    Remove {
        /// Rule id.
        id: String,
    },
}

/// A rules file: the format of `plugins/pack-std/rules/*.toml`.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct RulesFile {
    /// Pack metadata.
    pub pack: PackMeta,
    /// The rules.
    #[serde(default)]
    pub rule: Vec<Rule>,
}

/// The `[pack]` table.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct PackMeta {
    /// Pack id.
    pub id: String,
    /// Version.
    #[serde(default = "default_version")]
    pub version: String,
    /// One sentence.
    #[serde(default)]
    pub description: String,
}

fn default_version() -> String {
    "0.1.0".into()
}

/// Parses a rules file, TOML or JSON (by content).
pub fn parse_rules_file(text: &str) -> Result<RulesFile> {
    if text.trim_start().starts_with('{') {
        return serde_json::from_str(text).context("parsing JSON rules file");
    }
    toml::from_str(text).context("parsing TOML rules file")
}

#[derive(Serialize)]
struct RuleView<'a> {
    source: &'a str,
    #[serde(flatten)]
    rule: &'a Rule,
}

pub async fn run(
    global: &Global,
    cmd: Command,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8> {
    match cmd {
        Command::List {
            regex,
            json,
            plugins,
        } => {
            let (runtime, _) = super::runtime(global, plugins.as_deref()).await?;
            let (analyzer, errors) = Analyzer::new(runtime);
            for e in &errors {
                writeln!(err, "warning: rule rejected: {e}")?;
            }
            if regex {
                for (_, r) in analyzer.rules().rules() {
                    writeln!(out, "{}", r.pattern)?;
                }
            } else if json {
                let views: Vec<_> = analyzer
                    .rules()
                    .rules()
                    .map(|(source, rule)| RuleView { source, rule })
                    .collect();
                writeln!(out, "{}", serde_json::to_string_pretty(&views)?)?;
            } else {
                for (source, r) in analyzer.rules().rules() {
                    writeln!(
                        out,
                        "{:<34} {:<11} {:<26} {:.2}  {}  [{source}]",
                        r.id,
                        r.category.as_str(),
                        r.failure_type,
                        r.confidence,
                        r.description
                    )?;
                }
                writeln!(out, "{} rules", analyzer.rules().len())?;
            }
            Ok(0)
        }
        Command::Export { format, id } => {
            let db = super::open_store(global)?;
            let learned = crate::learn::rules::all(&db)?;
            let file = RulesFile {
                pack: PackMeta {
                    id,
                    version: default_version(),
                    description: format!("{} rules learned by guard", learned.len()),
                },
                rule: learned.into_iter().map(|l| l.rule).collect(),
            };
            if format == "json" {
                writeln!(out, "{}", serde_json::to_string_pretty(&file)?)?;
            } else {
                write!(out, "{}", toml::to_string(&file).context("writing TOML")?)?;
            }
            Ok(0)
        }
        Command::Import { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let parsed = parse_rules_file(&text).with_context(|| file.display().to_string())?;
            let db = super::open_store(global)?;
            let (mut kept, mut refused) = (0, 0);
            for rule in parsed.rule {
                match crate::learn::rules::validate(&rule, None, &[]) {
                    Ok(()) => {
                        writeln!(out, "imported {}", rule.id)?;
                        crate::learn::rules::put(
                            &db,
                            rule,
                            "import",
                            &file.display().to_string(),
                            None,
                            None,
                        )?;
                        kept += 1;
                    }
                    Err(why) => {
                        writeln!(err, "refused {}: {why}", rule.id)?;
                        refused += 1;
                    }
                }
            }
            writeln!(out, "{kept} imported, {refused} refused")?;
            Ok(if refused > 0 { 1 } else { 0 })
        }
        Command::Remove { id } => {
            let db = super::open_store(global)?;
            if crate::learn::rules::remove(&db, &id)? {
                writeln!(out, "removed {id}")?;
                Ok(0)
            } else {
                writeln!(err, "no learned rule {id}")?;
                Ok(1)
            }
        }
    }
}
