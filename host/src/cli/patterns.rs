//! `guard patterns`: the active rules (`list`), learned rules out of and
//! into rules files (`export`, `import`; the format is `guard_rules`'s, the
//! one `guard pack build` and pattern packs read), candidate mining and
//! promotion (`mine`, `candidates`, `promote`), and rule statistics.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use guard_rules::{PackMeta, RuleEntry, RulesFile};
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
    /// Mine failed logs: those no rule explains add to the candidate templates.
    Mine {
        /// Logs of failed jobs.
        #[arg(required = true)]
        logs: Vec<PathBuf>,
    },
    /// Templates of unexplained failures, waiting for promotion.
    Candidates {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Turn a candidate template into a learned rule.
    Promote {
        /// Candidate id.
        id: String,
        /// Failure type.
        #[arg(long = "type")]
        failure_type: String,
        /// Category.
        #[arg(long)]
        category: String,
        /// Remedy strategy (repeatable).
        #[arg(long = "remedy")]
        remedies: Vec<String>,
    },
    /// Which rules fire and how the heals after them went.
    Stats {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Parses a rules file, TOML or JSON (told apart by content: a JSON file is
/// an object, and no TOML document starts with `{`). Only the shape is
/// checked; the rules are checked one by one as they are converted
/// (`Rule::try_from`).
pub fn parse_rules_file(text: &str) -> Result<RulesFile> {
    if text.trim_start().starts_with('{') {
        return RulesFile::from_json(text).context("parsing JSON rules file");
    }
    RulesFile::from_toml(text).context("parsing TOML rules file")
}

/// An entry as a rule the scanner accepts, or why it is refused: the
/// format's checks, then the scanner's (the regexes compile).
fn checked_rule(entry: RuleEntry) -> Result<Rule, String> {
    let rule = Rule::try_from(entry)?;
    crate::learn::rules::validate(&rule, None, &[])?;
    Ok(rule)
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
                    version: guard_rules::DEFAULT_VERSION.into(),
                    description: format!("{} rules learned by guard", learned.len()),
                },
                rules: learned
                    .into_iter()
                    .map(|l| RuleEntry::from(l.rule))
                    .collect(),
            };
            if format == "json" {
                writeln!(out, "{}", file.to_json_pretty()?)?;
            } else {
                write!(out, "{}", file.to_toml().context("writing TOML")?)?;
            }
            Ok(0)
        }
        Command::Import { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let parsed = parse_rules_file(&text).with_context(|| file.display().to_string())?;
            let db = super::open_store(global)?;
            let (mut kept, mut refused) = (0, 0);
            for entry in parsed.rules {
                let id = entry.id.clone();
                match checked_rule(entry) {
                    Ok(rule) => {
                        writeln!(out, "imported {id}")?;
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
                        writeln!(err, "refused {id}: {why}")?;
                        refused += 1;
                    }
                }
            }
            writeln!(out, "{kept} imported, {refused} refused")?;
            Ok(if refused > 0 { 1 } else { 0 })
        }
        Command::Mine { logs } => {
            let (runtime, _) = super::runtime(global, None).await?;
            let (analyzer, _) = Analyzer::new(runtime.clone());
            let (mut explained, mut mined) = (0, 0);
            for log in &logs {
                let name = log.display().to_string();
                let bytes = std::fs::read(log).with_context(|| format!("reading {name}"))?;
                let report = analyzer
                    .analyze(
                        bytes.as_slice(),
                        &crate::model::Job::local(&name),
                        &mut |_| {},
                    )
                    .await?;
                if report.diagnosis.category.is_some() {
                    explained += 1;
                    continue;
                }
                if let Some(c) = crate::learn::candidates::mine_log(runtime.db(), &name, &bytes)? {
                    writeln!(
                        out,
                        "{name}: candidate {} ({}×): {}",
                        c.id,
                        c.count,
                        c.template()
                    )?;
                    mined += 1;
                } else {
                    writeln!(err, "{name}: no failure line found")?;
                }
            }
            writeln!(
                out,
                "{mined} mined, {explained} already explained by a rule"
            )?;
            Ok(0)
        }
        Command::Candidates { json } => {
            let db = super::open_store(global)?;
            let all = crate::learn::candidates::all(&db)?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&all)?)?;
                return Ok(0);
            }
            for c in &all {
                writeln!(out, "{}  {}×  {}", c.id, c.count, c.template())?;
                for e in c.examples.iter().take(2) {
                    writeln!(out, "      {}:{}", e.source, e.line)?;
                }
            }
            writeln!(out, "{} candidates", all.len())?;
            Ok(0)
        }
        Command::Promote {
            id,
            failure_type,
            category,
            remedies,
        } => {
            let db = super::open_store(global)?;
            let Some(c) = crate::learn::candidates::get(&db, &id)? else {
                anyhow::bail!("no candidate {id} (see guard patterns candidates)");
            };
            let Some(category) = crate::model::Category::parse(&category) else {
                anyhow::bail!("unknown category {category:?}");
            };
            let rule = Rule {
                id: format!("learned.{failure_type}"),
                category,
                failure_type,
                pattern: c.pattern(),
                unless: None,
                confidence: 0.8,
                remedies: if remedies.is_empty() {
                    vec!["diagnose".into()]
                } else {
                    remedies
                },
                description: format!("promoted from candidate {id} ({}×)", c.count),
            };
            for e in &c.examples {
                crate::learn::rules::validate(&rule, Some(&e.text), &[])
                    .map_err(|why| anyhow::anyhow!("rule refused: {why}"))?;
            }
            let example = c.examples.first().map(|e| e.text.clone());
            writeln!(out, "rule {}: {}", rule.id, rule.pattern)?;
            crate::learn::rules::put(&db, rule, "promote", &id, None, example)?;
            crate::learn::candidates::remove(&db, &id)?;
            Ok(0)
        }
        Command::Stats { json } => {
            let db = super::open_store(global)?;
            let all = crate::learn::rule_stats::all(&db)?;
            if json {
                let map: serde_json::Map<String, serde_json::Value> = all
                    .into_iter()
                    .map(|(k, v)| (k, serde_json::to_value(v).unwrap_or_default()))
                    .collect();
                writeln!(out, "{}", serde_json::Value::Object(map))?;
                return Ok(0);
            }
            writeln!(
                out,
                "{:<34} {:>6} {:>7} {:>10}  strategies (worked/not)",
                "rule", "fired", "healed", "not healed"
            )?;
            for (rule, s) in &all {
                let strategies = s
                    .strategies
                    .iter()
                    .map(|(k, (w, n))| format!("{k} {w}/{n}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                writeln!(
                    out,
                    "{rule:<34} {:>6} {:>7} {:>10}  {strategies}",
                    s.fired, s.healed, s.not_healed
                )?;
            }
            Ok(0)
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
