//! Diagnosis: from all findings (rules and detector plugins) to one primary
//! category with confidence and evidence. A finding weighs more when its
//! evidence sits near the end of the log (where jobs die), when the CI
//! marked its line as an error, and when other findings agree on its
//! category.

use serde::Serialize;

use crate::model::{Category, Evidence, Finding};

/// Statistics of a finding within its log, used for ranking.
#[derive(Debug, Clone, Copy, Default)]
pub struct Position {
    /// Last line the finding's evidence is on.
    pub last_line: u32,
    /// Whether any evidence line carried a CI error marker.
    pub marked: bool,
    /// Number of matching lines.
    pub count: u32,
}

/// A ranked finding.
#[derive(Debug, Clone, Serialize)]
pub struct Ranked {
    /// The finding.
    #[serde(flatten)]
    pub finding: Finding,
    /// Its ranking score.
    pub score: f32,
}

/// The verdict on one log.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnosis {
    /// Primary category; `None` when the log shows no failure.
    pub category: Option<Category>,
    /// Failure type of the primary finding.
    pub failure_type: Option<String>,
    /// Confidence in the primary category, 0.0–1.0.
    pub confidence: f32,
    /// Rule or check id of the primary finding.
    pub rule: Option<String>,
    /// Pack or plugin that produced it.
    pub source: Option<String>,
    /// Evidence lines of the primary finding.
    pub evidence: Vec<Evidence>,
    /// Suggested strategies.
    pub remedies: Vec<String>,
    /// Facts of the primary finding plus those of agreeing findings.
    pub facts: Vec<(String, String)>,
    /// Every finding, best first.
    pub findings: Vec<Ranked>,
}

impl Diagnosis {
    /// The verdict for a log with no findings.
    pub fn clean() -> Diagnosis {
        Diagnosis {
            category: None,
            failure_type: None,
            confidence: 0.0,
            rule: None,
            source: None,
            evidence: Vec::new(),
            remedies: Vec::new(),
            facts: Vec::new(),
            findings: Vec::new(),
        }
    }
}

/// Combines findings into a diagnosis. `total_lines` is the log's length.
pub fn diagnose(findings: Vec<(Finding, Position)>, total_lines: u32) -> Diagnosis {
    if findings.is_empty() {
        return Diagnosis::clean();
    }
    let total = total_lines.max(1) as f32;
    let mut ranked: Vec<Ranked> = findings
        .into_iter()
        .map(|(finding, pos)| {
            // 0.6 at the first line, 1.0 at the last.
            let position = 0.6 + 0.4 * (pos.last_line as f32 / total).clamp(0.0, 1.0);
            let marker = if pos.marked { 1.15 } else { 1.0 };
            let repeats = 1.0 + 0.03 * (pos.count.max(1) as f32).ln();
            let score = finding.confidence * position * marker * repeats;
            Ranked { finding, score }
        })
        .collect();
    // The category: its best finding's score, plus a little for agreement
    // from the other findings of the same category.
    let mut best_in = [0f32; Category::ALL.len()];
    let mut sum_in = [0f32; Category::ALL.len()];
    for r in &ranked {
        let c = r.finding.category as usize;
        best_in[c] = best_in[c].max(r.score);
        sum_in[c] += r.score;
    }
    let category_score = |c: usize| best_in[c] + 0.1 * (sum_in[c] - best_in[c]).min(1.0);
    let category = Category::ALL
        .into_iter()
        .filter(|c| sum_in[*c as usize] > 0.0)
        .max_by(|a, b| category_score(*a as usize).total_cmp(&category_score(*b as usize)))
        .unwrap_or(Category::Other);
    // Within the category, the most specific finding (highest rule
    // confidence) names the failure, the earliest evidence breaking ties:
    // "error[E0425]" beats the "could not compile" summary printed after it.
    ranked.sort_by(|a, b| {
        (b.finding.category == category)
            .cmp(&(a.finding.category == category))
            .then_with(|| {
                if a.finding.category == category {
                    b.finding
                        .confidence
                        .total_cmp(&a.finding.confidence)
                        .then_with(|| first_line(&a.finding).cmp(&first_line(&b.finding)))
                } else {
                    b.score.total_cmp(&a.score)
                }
            })
            .then_with(|| a.finding.rule.cmp(&b.finding.rule))
    });
    let best = &ranked[0].finding;
    let mut facts = best.facts.clone();
    for r in ranked
        .iter()
        .skip(1)
        .filter(|r| r.finding.category == best.category)
    {
        for f in &r.finding.facts {
            if !facts.contains(f) && facts.len() < 100 {
                facts.push(f.clone());
            }
        }
    }
    Diagnosis {
        category: Some(best.category),
        failure_type: Some(best.failure_type.clone()),
        confidence: best.confidence,
        rule: Some(best.rule.clone()),
        source: Some(best.source.clone()),
        evidence: best.evidence.clone(),
        remedies: best.remedies.clone(),
        facts,
        findings: ranked,
    }
}

fn first_line(f: &Finding) -> u32 {
    f.evidence.iter().map(|e| e.line).min().unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(rule: &str, category: Category, confidence: f32) -> Finding {
        Finding {
            rule: rule.into(),
            source: "t".into(),
            category,
            failure_type: "x".into(),
            confidence,
            evidence: vec![],
            remedies: vec![],
            facts: vec![],
        }
    }

    #[test]
    fn later_and_marked_evidence_wins_ties() {
        let early = (
            f("a", Category::Network, 0.8),
            Position {
                last_line: 10,
                marked: false,
                count: 1,
            },
        );
        let late = (
            f("b", Category::Build, 0.8),
            Position {
                last_line: 990,
                marked: true,
                count: 1,
            },
        );
        let d = diagnose(vec![early, late], 1000);
        assert_eq!(d.category, Some(Category::Build));
        assert_eq!(d.rule.as_deref(), Some("b"));
    }

    #[test]
    fn nothing_found_is_clean() {
        let d = diagnose(vec![], 10);
        assert_eq!(d.category, None);
        assert!(d.evidence.is_empty());
    }
}
