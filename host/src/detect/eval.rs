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
    /// Failing logs whose labelled evidence line is among guard's evidence.
    pub evidence_hits: u32,
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

    /// Adds the verdict on a labelled failing log.
    pub fn add_failing(&mut self, label: &Label, verdict: Verdict) {
        self.failing += 1;
        let ok = verdict
            .category
            .is_some_and(|c| c == label.category || label.also.contains(&c));
        if label
            .evidence_line
            .is_some_and(|l| verdict.evidence.iter().any(|e| e.line == l))
        {
            self.evidence_hits += 1;
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
    }
}
