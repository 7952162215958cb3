//! `guard patterns list [--regex] [--json]`: the active rules.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
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
    }
}
