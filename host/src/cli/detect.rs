//! `guard detect [--json] [--plugins DIR] FILE...`: one verdict per log.

use std::fs::File;
use std::io::{BufReader, IsTerminal, Write};
use std::path::PathBuf;

use anstyle::{AnsiColor, Style};
use anyhow::Result;
use serde::Serialize;

use super::Global;
use crate::detect::{Analyzer, Report};
use crate::model::{Evidence, Job};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print one JSON object per file, one per line.
    #[arg(long)]
    json: bool,
    /// Directory of extra plugins (*.wasm); they add to or replace the embedded ones by id.
    #[arg(long)]
    plugins: Option<PathBuf>,
    /// Evidence lines shown per verdict (human output).
    #[arg(long, default_value_t = 3)]
    evidence: usize,
    /// A passing log of the same job: error lines it printed too are
    /// discounted as evidence (the failure is in what differs).
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// The jobs are known to have failed (as a CI's "on failure" step
    /// knows): a log with no failure marker still gets a verdict.
    #[arg(long)]
    failed: bool,
    /// Log files; `-` reads standard input.
    #[arg(required = true)]
    files: Vec<String>,
}

/// The JSON line printed per file.
#[derive(Debug, Serialize)]
struct JsonVerdict<'a> {
    file: &'a str,
    category: Option<&'static str>,
    failure_type: Option<&'a str>,
    confidence: f32,
    rule: Option<&'a str>,
    source: Option<&'a str>,
    evidence: &'a [Evidence],
    remedies: &'a [String],
    facts: &'a [(String, String)],
    lines: u32,
    bytes: u64,
    plugin_errors: &'a [String],
}

pub async fn run(
    global: &Global,
    args: Args,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8> {
    let (runtime, _load_failures) = super::runtime(global, args.plugins.as_deref()).await?;
    let (analyzer, _rule_errors) = Analyzer::new(runtime);
    let baseline = match &args.baseline {
        Some(path) => {
            let bytes = std::fs::read(path)
                .map_err(|e| anyhow::anyhow!("cannot read the baseline {}: {e}", path.display()))?;
            let lines = crate::detect::normalize::normalized_lines(&bytes, 8192);
            Some(crate::detect::locator::templates(
                lines.iter().map(String::as_str),
            ))
        }
        None => None,
    };
    let mut failed = false;
    for file in &args.files {
        let known = crate::detect::Known {
            baseline: baseline.clone(),
            failed: args.failed,
        };
        match analyze_one(&analyzer, file, known).await {
            Ok(report) => {
                if args.json {
                    let d = &report.diagnosis;
                    let line = JsonVerdict {
                        file,
                        category: d.category.map(|c| c.as_str()),
                        failure_type: d.failure_type.as_deref(),
                        confidence: d.confidence,
                        rule: d.rule.as_deref(),
                        source: d.source.as_deref(),
                        evidence: &d.evidence,
                        remedies: &d.remedies,
                        facts: &d.facts,
                        lines: report.lines,
                        bytes: report.bytes,
                        plugin_errors: &report.plugin_errors,
                    };
                    writeln!(out, "{}", serde_json::to_string(&line)?)?;
                } else {
                    print_human(out, file, &report, args.evidence)?;
                }
            }
            Err(e) => {
                failed = true;
                writeln!(err, "error: {file}: {e:#}")?;
            }
        }
    }
    analyzer.runtime().db().flush_async().await?;
    super::let_go(analyzer);
    Ok(if failed { 2 } else { 0 })
}

async fn analyze_one(
    analyzer: &Analyzer,
    file: &str,
    known: crate::detect::Known,
) -> Result<Report> {
    let job = Job::local(file);
    if file == "-" {
        let stdin = std::io::stdin();
        return Ok(analyzer
            .analyze_with(stdin.lock(), &job, known, &mut |_| {})
            .await?);
    }
    let f = File::open(file).map_err(|e| anyhow::anyhow!("cannot open: {e}"))?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if f.metadata().is_ok_and(|m| m.is_dir()) {
        anyhow::bail!("is a directory");
    }
    // A progress bar only where someone watches, and only when it helps.
    let bar = (std::io::stderr().is_terminal() && len > 32 << 20).then(|| {
        let bar = indicatif::ProgressBar::new(len);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_message(file.to_string());
        bar
    });
    let reader = BufReader::with_capacity(256 * 1024, f);
    let report = analyzer
        .analyze_with(reader, &job, known, &mut |n| {
            if let Some(b) = &bar {
                b.set_position(n);
            }
        })
        .await;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(report?)
}

fn print_human(
    out: &mut dyn Write,
    file: &str,
    report: &Report,
    max_evidence: usize,
) -> std::io::Result<()> {
    let d = &report.diagnosis;
    let bold = Style::new().bold();
    let dim = Style::new().dimmed();
    match d.category {
        None => {
            let ok = Style::new().fg_color(Some(AnsiColor::Green.into())).bold();
            writeln!(
                out,
                "{ok}ok{ok:#}   {file}: no failure found ({} lines)",
                report.lines
            )?;
        }
        Some(category) => {
            let color = if category.is_transient() {
                AnsiColor::Yellow
            } else {
                AnsiColor::Red
            };
            let tag = Style::new().fg_color(Some(color.into())).bold();
            writeln!(
                out,
                "{tag}{category}{tag:#} {file}: {bold}{}{bold:#} ({}, confidence {:.2}) {dim}[{}]{dim:#}",
                d.failure_type.as_deref().unwrap_or("?"),
                d.rule.as_deref().unwrap_or("?"),
                d.confidence,
                d.source.as_deref().unwrap_or("?"),
            )?;
            for e in d.evidence.iter().take(max_evidence) {
                writeln!(out, "  {dim}{file}:{}{dim:#}  {}", e.line, e.text)?;
            }
            if !d.remedies.is_empty() {
                writeln!(out, "  {dim}remedies:{dim:#} {}", d.remedies.join(", "))?;
            }
        }
    }
    for e in &report.plugin_errors {
        let warn = Style::new().fg_color(Some(AnsiColor::Magenta.into()));
        writeln!(out, "  {warn}plugin error:{warn:#} {e}")?;
    }
    Ok(())
}
