//! Evaluation against a labelled corpus (the format of `shared/corpus`):
//! `labels.jsonl` naming failing logs with their root-cause category (and
//! acceptable alternatives), and `passing/*.log` that must yield no verdict.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::{Category, Evidence};

/// One line of `labels.jsonl`.
#[derive(Debug, Clone, Deserialize)]
pub struct Label {
    /// Path relative to the corpus directory.
    pub file: String,
    /// The primary root cause.
    pub category: Category,
    /// Other acceptable answers.
    #[serde(default)]
    pub also: Vec<Category>,
    /// The most telling line's number, when labelled.
    #[serde(default)]
    pub evidence_line: Option<u32>,
    /// First line of the labelled failure chunk, when there is one.
    #[serde(default)]
    pub chunk_first_line: Option<u32>,
    /// The labelled failure chunk (its line count gives its extent).
    #[serde(default)]
    pub chunk: Option<String>,
}

impl Label {
    /// Whether `line` is the labelled evidence line or inside the labelled chunk.
    pub fn is_evidence(&self, line: u32) -> bool {
        if self.evidence_line == Some(line) {
            return true;
        }
        match (self.chunk_first_line, &self.chunk) {
            (Some(first), Some(chunk)) => {
                let n = chunk.lines().count().max(1) as u32;
                line >= first && line < first.saturating_add(n)
            }
            _ => false,
        }
    }

    /// Whether the label says where the evidence is.
    pub fn has_evidence(&self) -> bool {
        self.evidence_line.is_some() || self.chunk_first_line.is_some()
    }

    /// The project a log belongs to, for splitting: the path before
    /// `/failed/` or `/passed/` (`Language/owner@name`), else the file.
    pub fn project(&self) -> &str {
        for sep in ["/failed/", "/passed/"] {
            if let Some(i) = self.file.find(sep) {
                return &self.file[..i];
            }
        }
        &self.file
    }
}

/// Which part of a corpus to evaluate. Logs are split by project, so that
/// no project of the held-out part is seen while tuning: a log is held out
/// when the first byte of sha256(project) is divisible by 3 (about a third).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Split {
    /// Every log.
    #[default]
    All,
    /// The part for tuning rules and training (about two thirds).
    Tune,
    /// The held-out part, for reporting only.
    Holdout,
}

impl Split {
    /// Whether `label` belongs to this part.
    pub fn contains(self, label: &Label) -> bool {
        use sha2::Digest;
        let held_out = sha2::Sha256::digest(label.project().as_bytes())[0] % 3 == 0;
        match self {
            Split::All => true,
            Split::Tune => !held_out,
            Split::Holdout => held_out,
        }
    }
}

/// Errors reading a corpus.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A label line is malformed.
    #[error("{path}:{line}: {message}")]
    Label {
        /// labels.jsonl.
        path: PathBuf,
        /// Line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// Reads `DIR/labels.jsonl`.
pub fn load_labels(dir: &Path) -> Result<Vec<Label>, EvalError> {
    let path = dir.join("labels.jsonl");
    let text = std::fs::read_to_string(&path).map_err(|source| EvalError::Read {
        path: path.clone(),
        source,
    })?;
    let mut labels = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let label: Label = serde_json::from_str(line).map_err(|e| EvalError::Label {
            path: path.clone(),
            line: i + 1,
            message: e.to_string(),
        })?;
        if label.file.contains("..") || Path::new(&label.file).is_absolute() {
            return Err(EvalError::Label {
                path: path.clone(),
                line: i + 1,
                message: format!("file {:?} must be relative to the corpus", label.file),
            });
        }
        labels.push(label);
    }
    Ok(labels)
}

/// The passing logs of a corpus (`DIR/passing/*.log`), sorted.
pub fn passing_logs(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("passing"))
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "log"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// A verdict as the evaluation sees it.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// The file.
    pub file: String,
    /// Predicted category.
    pub category: Option<Category>,
    /// Rule of the primary finding.
    pub rule: Option<String>,
    /// Its evidence.
    pub evidence: Vec<Evidence>,
}

/// A misclassified failing log.
#[derive(Debug, Clone, Serialize)]
pub struct Miss {
    /// What guard said.
    #[serde(flatten)]
    pub verdict: Verdict,
    /// The label.
    pub expected: Category,
    /// Acceptable alternatives.
    pub also: Vec<Category>,
}

/// Precision and recall of one category.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CategoryScore {
    /// Logs labelled with it.
    pub support: u32,
    /// Correct verdicts on those.
    pub true_positives: u32,
    /// Verdicts of it that were wrong (including on passing logs).
    pub false_positives: u32,
    /// Labelled logs it missed.
    pub false_negatives: u32,
}

impl CategoryScore {
    /// TP / (TP + FP), or 1 when it was never predicted.
    pub fn precision(&self) -> f64 {
        let d = self.true_positives + self.false_positives;
        if d == 0 {
            1.0
        } else {
            self.true_positives as f64 / d as f64
        }
    }
    /// The harmonic mean of precision and recall.
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }

    /// TP / (TP + FN), or 1 when it never occurs.
    pub fn recall(&self) -> f64 {
        let d = self.true_positives + self.false_negatives;
        if d == 0 {
            1.0
        } else {
            self.true_positives as f64 / d as f64
        }
    }
}

/// The evaluation of a corpus.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Evaluation {
    /// Failing logs evaluated.
    pub failing: u32,
    /// Verdicts matching the label or one of its alternatives.
    pub correct: u32,
    /// Failing logs whose labelled evidence line (or a line of the labelled
    /// chunk) is among guard's evidence lines.
    pub evidence_hits: u32,
    /// Failing logs that say where the evidence is.
    pub evidence_labelled: u32,
    /// Failing logs that got no verdict at all.
    pub silent: Vec<String>,
    /// Passing logs evaluated.
    pub passing: u32,
    /// Verdicts on passing logs (each is a false alarm).
    pub false_alarms: Vec<Verdict>,
    /// Per category.
    pub categories: BTreeMap<Category, CategoryScore>,
    /// (label, prediction or "none") → count.
    pub confusion: BTreeMap<String, BTreeMap<String, u32>>,
    /// Wrong verdicts on failing logs.
    pub misses: Vec<Miss>,
}

impl Evaluation {
    /// Share of failing logs classified correctly.
    pub fn accuracy(&self) -> f64 {
        if self.failing == 0 {
            0.0
        } else {
            self.correct as f64 / self.failing as f64
        }
    }

    /// Macro-averaged F1 over the categories that occur or were predicted.
    pub fn macro_f1(&self) -> f64 {
        let scores: Vec<f64> = self
            .categories
            .values()
            .filter(|s| s.support > 0 || s.false_positives > 0)
            .map(CategoryScore::f1)
            .collect();
        if scores.is_empty() {
            0.0
        } else {
            scores.iter().sum::<f64>() / scores.len() as f64
        }
    }

    /// Adds the verdict on a labelled failing log.
    pub fn add_failing(&mut self, label: &Label, verdict: Verdict) {
        self.failing += 1;
        let ok = verdict
            .category
            .is_some_and(|c| c == label.category || label.also.contains(&c));
        if label.has_evidence() {
            self.evidence_labelled += 1;
        }
        if verdict.evidence.iter().any(|e| label.is_evidence(e.line)) {
            self.evidence_hits += 1;
        }
        if verdict.category.is_none() {
            self.silent.push(verdict.file.clone());
        }
        let predicted = verdict.category.map_or("none", |c| c.as_str()).to_string();
        *self
            .confusion
            .entry(label.category.as_str().to_string())
            .or_default()
            .entry(predicted)
            .or_default() += 1;
        self.categories.entry(label.category).or_default().support += 1;
        if ok {
            self.correct += 1;
            self.categories
                .entry(label.category)
                .or_default()
                .true_positives += 1;
        } else {
            self.categories
                .entry(label.category)
                .or_default()
                .false_negatives += 1;
            if let Some(c) = verdict.category {
                self.categories.entry(c).or_default().false_positives += 1;
            }
            self.misses.push(Miss {
                verdict,
                expected: label.category,
                also: label.also.clone(),
            });
        }
    }

    /// Adds the verdict on a passing log.
    pub fn add_passing(&mut self, verdict: Verdict) {
        self.passing += 1;
        if let Some(c) = verdict.category {
            self.categories.entry(c).or_default().false_positives += 1;
            self.false_alarms.push(verdict);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(c: Option<Category>) -> Verdict {
        let evidence = if c.is_some() {
            vec![Evidence {
                line: 3,
                text: String::new(),
            }]
        } else {
            Vec::new()
        };
        Verdict {
            file: "f".into(),
            category: c,
            rule: None,
            evidence,
        }
    }

    #[test]
    fn scoring() {
        let mut e = Evaluation::default();
        let label = Label {
            file: "f".into(),
            category: Category::Build,
            also: vec![Category::Dependency],
            evidence_line: Some(3),
            chunk_first_line: None,
            chunk: None,
        };
        e.add_failing(&label, v(Some(Category::Build)));
        e.add_failing(&label, v(Some(Category::Dependency)));
        e.add_failing(&label, v(Some(Category::Test)));
        e.add_failing(&label, v(None));
        e.add_passing(v(None));
        e.add_passing(v(Some(Category::Test)));
        assert_eq!(e.correct, 2);
        assert_eq!(e.accuracy(), 0.5);
        assert_eq!(e.evidence_hits, 3);
        assert_eq!(e.false_alarms.len(), 1);
        let build = &e.categories[&Category::Build];
        assert_eq!(
            (build.support, build.true_positives, build.false_negatives),
            (4, 2, 2)
        );
        assert_eq!(e.categories[&Category::Test].false_positives, 2);
        assert_eq!(e.confusion["build"]["none"], 1);
        assert_eq!(e.silent, vec!["f".to_string()]);
        assert!(e.macro_f1() > 0.0 && e.macro_f1() < 1.0);
    }

    #[test]
    fn chunks_count_as_evidence_and_splits_are_by_project() {
        let label = |file: &str| Label {
            file: file.into(),
            category: Category::Test,
            also: vec![],
            evidence_line: Some(50),
            chunk_first_line: Some(10),
            chunk: Some("a\nb\nc".into()),
        };
        let l = label("Go/a@b/failed/1.log");
        assert!(l.is_evidence(50) && l.is_evidence(10) && l.is_evidence(12));
        assert!(!l.is_evidence(13) && !l.is_evidence(9));
        assert_eq!(l.project(), "Go/a@b");
        // Two logs of one project are always in the same part.
        let other = label("Go/a@b/failed/2.log");
        for split in [Split::Tune, Split::Holdout] {
            assert_eq!(split.contains(&l), split.contains(&other));
            assert_ne!(Split::Tune.contains(&l), Split::Holdout.contains(&l));
        }
    }
}
