//! `guard learn`: turn the failure line of a log into a rule, validate it,
//! and store it; it takes part in detection at once. Without `--type`, the
//! log becomes a labelled example for the classifier instead (`guard train`
//! folds it in).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use super::Global;
use crate::learn::generalize::{best_line, generalize};
use crate::learn::rules;
use crate::model::{Category, Rule};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The log of the failure.
    #[arg(long = "log", conflicts_with = "file")]
    log: Option<PathBuf>,
    /// The log of the failure (as `--log`).
    file: Option<PathBuf>,
    /// The 1-based line to learn from (default: the best candidate failure line).
    #[arg(long)]
    line: Option<u32>,
    /// Failure type, e.g. `acme-registry-rejected`: learn a rule. Without it,
    /// the log is stored as a labelled example for the classifier.
    #[arg(long = "type")]
    failure_type: Option<String>,
    /// Category.
    #[arg(long)]
    category: String,
    /// Remedy strategy, e.g. `retry-with-backoff` (repeatable).
    #[arg(long = "remedy")]
    remedies: Vec<String>,
    /// Rule id (default: `learned.<type>`).
    #[arg(long)]
    id: Option<String>,
    /// Confidence of a match.
    #[arg(long, default_value_t = 0.8)]
    confidence: f32,
    /// Passing logs (files or directories of *.log) the rule must not match.
    #[arg(long)]
    negatives: Vec<PathBuf>,
    /// Print the rule as JSON.
    #[arg(long)]
    json: bool,
    /// Show the rule without storing it.
    #[arg(long)]
    dry_run: bool,
}

pub async fn run(global: &Global, mut args: Args, out: &mut dyn Write) -> Result<u8> {
    let Some(category) = Category::parse(&args.category) else {
        bail!(
            "unknown category {:?} (one of: {})",
            args.category,
            Category::ALL.map(|c| c.as_str()).join(", ")
        );
    };
    let Some(log) = args.log.take().or(args.file.take()) else {
        bail!("name the log: guard learn --category C [--type T] LOG");
    };
    let Some(failure_type) = args.failure_type.clone() else {
        return learn_example(global, category, &log, args.dry_run, out).await;
    };

    let bytes = std::fs::read(&log).with_context(|| format!("reading {}", log.display()))?;
    let lines = crate::detect::normalize::normalized_lines(&bytes, 8192);
    let (number, example) = match args.line {
        Some(n) => {
            let t = lines
                .get(n.saturating_sub(1) as usize)
                .filter(|t| !t.trim().is_empty() && n > 0);
            let t = t.with_context(|| format!("{} has no non-empty line {n}", log.display()))?;
            (n, t.trim().to_string())
        }
        None => {
            let (n, t) = best_line(
                lines
                    .iter()
                    .enumerate()
                    .map(|(i, t)| (i as u32 + 1, t.as_str())),
            )
            .with_context(|| {
                format!("no failure line found in {}; pass --line N", log.display())
            })?;
            (n, t.to_string())
        }
    };
    let id = args
        .id
        .clone()
        .unwrap_or_else(|| format!("learned.{}", failure_type));
    let rule = Rule {
        id: id.clone(),
        category,
        failure_type: failure_type.clone(),
        pattern: generalize(&example),
        unless: None,
        confidence: args.confidence,
        remedies: if args.remedies.is_empty() {
            vec!["diagnose".into()]
        } else {
            args.remedies.clone()
        },
        description: format!("learned from {}:{number}", log.display()),
    };
    let negatives: Vec<&std::path::Path> = args.negatives.iter().map(|p| p.as_path()).collect();
    if let Err(why) = rules::validate(&rule, Some(&example), &negatives) {
        bail!(
            "rule refused: {why}\n  line {number}: {example}\n  pattern: {}",
            rule.pattern
        );
    }
    if args.json {
        let v = serde_json::json!({
            "rule": &rule,
            "line": number,
            "example": &example,
            "stored": !args.dry_run,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        writeln!(
            out,
            "rule {id} ({category}, {}) from line {number}:\n  {example}\n  pattern: {}",
            rule.failure_type, rule.pattern
        )?;
    }
    if args.dry_run {
        if !args.json {
            writeln!(out, "dry run: not stored")?;
        }
        return Ok(0);
    }
    let db = super::open_store(global)?;
    rules::put(
        &db,
        rule,
        "learn",
        &log.display().to_string(),
        Some(number),
        Some(example),
    )?;
    if !args.json {
        writeln!(
            out,
            "stored; it takes part in detection now (guard patterns list)"
        )?;
    }
    Ok(0)
}

/// Stores the tokens of the log's located error region as a labelled example.
async fn learn_example(
    global: &Global,
    category: Category,
    log: &std::path::Path,
    dry_run: bool,
    out: &mut dyn Write,
) -> Result<u8> {
    let (runtime, _) = super::runtime(global, None).await?;
    let (analyzer, _) = crate::detect::Analyzer::new(runtime.clone());
    let f = std::fs::File::open(log).with_context(|| format!("opening {}", log.display()))?;
    let Some(tokens) = analyzer
        .region_tokens(std::io::BufReader::new(f))
        .await
        .with_context(|| format!("reading {}", log.display()))?
    else {
        bail!(
            "{} has no failure marker, so there is no error region to learn from; learn a rule instead (--type T)",
            log.display()
        );
    };
    let n = tokens.len();
    if dry_run {
        writeln!(
            out,
            "example ({category}, {n} tokens) from {}: dry run, not stored",
            log.display()
        )?;
        return Ok(0);
    }
    crate::learn::examples::add(runtime.db(), category, tokens, &log.display().to_string())?;
    writeln!(
        out,
        "example ({category}, {n} tokens) from {} stored; `guard train` folds it into the classifier",
        log.display()
    )?;
    Ok(0)
}
