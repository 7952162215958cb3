//! `guard eval --corpus DIR`: accuracy on a labelled corpus, per-category
//! precision and recall, the confusion matrix, false alarms on passing logs
//! and every misclassified file with its evidence.

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};

use super::Global;
use crate::detect::Analyzer;
use crate::detect::diagnosis::Mode;
use crate::detect::eval::{Evaluation, Split, Verdict, load_labels, passing_logs};
use crate::model::{Category, Job};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Corpus directory: labels.jsonl, the logs it names, and passing/*.log.
    #[arg(long)]
    corpus: PathBuf,
    /// Directory of extra plugins.
    #[arg(long)]
    plugins: Option<PathBuf>,
    /// Print the evaluation as JSON.
    #[arg(long)]
    json: bool,
    /// Exit with status 1 when accuracy is below this (0.0–1.0), any passing log raises an alarm, or a failing log gets no verdict.
    #[arg(long)]
    min_accuracy: Option<f64>,
    /// Part of the corpus: `tune` or `holdout` split by project (the held-out
    /// part: the first byte of sha256(project) divisible by 3), or `all`.
    #[arg(long, value_enum, default_value_t = Split::All)]
    split: Split,
    /// Decide by `combined` rules and classifier, `rules` alone, or `model` alone.
    #[arg(long, value_enum, default_value_t = Mode::Combined)]
    mode: Mode,
}

/// `failed`: the log is labelled as a failed job's, which the analysis is
/// told (as the daemon and `guard exec` know it); passing logs are analysed
/// knowing nothing, as `guard detect` would.
async fn verdict(
    analyzer: &Analyzer,
    path: &std::path::Path,
    name: &str,
    failed: bool,
) -> Result<Verdict> {
    let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let known = crate::detect::Known {
        baseline: None,
        failed,
    };
    let report = analyzer
        .analyze_with(BufReader::new(f), &Job::local(name), known, &mut |_| {})
        .await
        .with_context(|| format!("analysing {}", path.display()))?;
    let d = report.diagnosis;
    Ok(Verdict {
        file: name.to_string(),
        category: d.category,
        rule: d.rule,
        evidence: d.evidence,
    })
}

pub async fn run(global: &Global, args: Args, out: &mut dyn Write) -> Result<u8> {
    let labels = load_labels(&args.corpus)?;
    let (runtime, _) = super::runtime(global, args.plugins.as_deref()).await?;
    let (analyzer, _) = Analyzer::new(runtime);
    let analyzer = analyzer.with_mode(args.mode);
    let mut eval = Evaluation::default();
    for label in labels.iter().filter(|l| args.split.contains(l)) {
        let v = verdict(&analyzer, &args.corpus.join(&label.file), &label.file, true).await?;
        eval.add_failing(label, v);
    }
    for path in passing_logs(&args.corpus) {
        let name = path
            .strip_prefix(&args.corpus)
            .unwrap_or(&path)
            .display()
            .to_string();
        let v = verdict(&analyzer, &path, &name, false).await?;
        eval.add_passing(v);
    }
    if args.json {
        let mut v = serde_json::to_value(&eval)?;
        if let Some(o) = v.as_object_mut() {
            o.insert("accuracy".into(), eval.accuracy().into());
            o.insert("macro_f1".into(), eval.macro_f1().into());
            o.insert(
                "split".into(),
                format!("{:?}", args.split).to_lowercase().into(),
            );
            o.insert(
                "mode".into(),
                format!("{:?}", args.mode).to_lowercase().into(),
            );
        }
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        print_report(out, &eval)?;
    }
    let below = args.min_accuracy.is_some_and(|m| {
        eval.accuracy() < m || !eval.false_alarms.is_empty() || !eval.silent.is_empty()
    });
    Ok(if below { 1 } else { 0 })
}

fn print_report(out: &mut dyn Write, e: &Evaluation) -> std::io::Result<()> {
    writeln!(
        out,
        "accuracy: {}/{} = {:.1}% (label or an accepted alternative)",
        e.correct,
        e.failing,
        100.0 * e.accuracy()
    )?;
    writeln!(
        out,
        "false alarms on passing logs: {}/{}",
        e.false_alarms.len(),
        e.passing
    )?;
    writeln!(out, "macro-F1: {:.3}", e.macro_f1())?;
    writeln!(
        out,
        "silent on failure (no verdict): {}/{}",
        e.silent.len(),
        e.failing
    )?;
    writeln!(
        out,
        "evidence hit rate (labelled line or chunk among guard's evidence): {}/{}",
        e.evidence_hits, e.evidence_labelled
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "{:<12} {:>7} {:>9} {:>7}",
        "category", "support", "precision", "recall"
    )?;
    for (c, s) in &e.categories {
        writeln!(
            out,
            "{:<12} {:>7} {:>8.1}% {:>6.1}%",
            c.as_str(),
            s.support,
            100.0 * s.precision(),
            100.0 * s.recall()
        )?;
    }
    writeln!(out)?;
    let columns: Vec<String> = Category::ALL
        .iter()
        .map(|c| c.as_str().to_string())
        .chain(["none".to_string()])
        .collect();
    write!(out, "{:<12}", "label \\ got")?;
    for c in &columns {
        write!(out, " {:>5}", &c[..c.len().min(5)])?;
    }
    writeln!(out)?;
    for (label, row) in &e.confusion {
        write!(out, "{label:<12}")?;
        for c in &columns {
            match row.get(c) {
                Some(n) => write!(out, " {n:>5}")?,
                None => write!(out, " {:>5}", ".")?,
            }
        }
        writeln!(out)?;
    }
    if !e.misses.is_empty() {
        writeln!(out, "\nmisclassified:")?;
        for m in &e.misses {
            let got = m.verdict.category.map_or("none", |c| c.as_str());
            writeln!(
                out,
                "  {}: expected {} got {} ({})",
                m.verdict.file,
                m.expected,
                got,
                m.verdict.rule.as_deref().unwrap_or("no rule")
            )?;
            for ev in m.verdict.evidence.iter().take(2) {
                writeln!(out, "    {}: {}", ev.line, truncate(&ev.text, 160))?;
            }
        }
    }
    if !e.false_alarms.is_empty() {
        writeln!(out, "\nfalse alarms:")?;
        for v in &e.false_alarms {
            writeln!(
                out,
                "  {}: {} ({})",
                v.file,
                v.category.map_or("none", |c| c.as_str()),
                v.rule.as_deref().unwrap_or("?")
            )?;
            for ev in v.evidence.iter().take(1) {
                writeln!(out, "    {}: {}", ev.line, truncate(&ev.text, 160))?;
            }
        }
    }
    Ok(())
}

fn truncate(s: &str, max: usize) -> &str {
    let mut cut = s.len().min(max);
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    &s[..cut]
}
