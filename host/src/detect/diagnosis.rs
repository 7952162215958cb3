//! Diagnosis: from all findings (rules and detector plugins) to one primary
//! category with confidence and evidence. A finding weighs more when its
//! evidence sits near the end of the log (where jobs die), when the CI
//! marked its line as an error, and when other findings agree on its
//! category.

use serde::Serialize;

use super::classifier::Prediction;
use super::locator::Located;
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
    /// Every evidence line also occurs in a passing run of the same job:
    /// it did not make this run fail.
    pub in_baseline: bool,
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

/// How the verdict is reached (`guard eval` measures each alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Mode {
    /// Rules first; the classifier decides when no rule matched or rules
    /// disagree.
    #[default]
    Combined,
    /// Rules and the failure locator only.
    Rules,
    /// The classifier over the located error region only.
    Model,
}

/// What the analysis knows besides the findings.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context<'a> {
    /// Where the job died, if a failure marker says so.
    pub located: Option<&'a Located>,
    /// The classifier's reading of the error region.
    pub prediction: Option<&'a Prediction>,
    /// Rules, model or both.
    pub mode: Mode,
}

/// Below this, the classifier's best class is not trusted on its own.
const MODEL_MIN: f32 = 0.4;
/// The classifier overrides a generic `other` verdict from this on.
const MODEL_OVERRIDE: f32 = 0.6;
/// Rules below this confidence only say that something failed…
const WEAK_RULE: f32 = 0.6;
/// …and the classifier overrides them from this probability on.
const MODEL_STRONG: f32 = 0.75;
/// Two categories whose scores are this close are in conflict.
const CONFLICT: f32 = 0.8;

/// Combines findings into a diagnosis. `total_lines` is the log's length.
pub fn diagnose(
    mut findings: Vec<(Finding, Position)>,
    total_lines: u32,
    cx: Context<'_>,
) -> Diagnosis {
    let prediction = match cx.mode {
        Mode::Rules => None,
        _ => cx.prediction,
    };
    if cx.mode == Mode::Model {
        findings.clear();
    }
    let located = cx.located;
    // An exit code with a meaning (137 killed, 124 timed out, …) is a
    // finding of its own, on the marker line.
    if cx.mode != Mode::Model
        && let Some(loc) = located
        && let Some(m) = loc.meaning
    {
        findings.push((
            locator_finding(
                loc,
                m.category,
                m.failure_type,
                "locator.exit-code",
                m.confidence,
                None,
            ),
            Position {
                last_line: loc.marker.line,
                marked: true,
                count: 1,
                in_baseline: false,
            },
        ));
    }
    if findings.is_empty() {
        // Nothing specific matched: the locator still knows the job failed.
        let Some(loc) = located else {
            return Diagnosis::clean();
        };
        let f = from_model(loc, prediction);
        return Diagnosis {
            category: Some(f.category),
            failure_type: Some(f.failure_type.clone()),
            confidence: f.confidence,
            rule: Some(f.rule.clone()),
            source: Some(f.source.clone()),
            evidence: f.evidence.clone(),
            remedies: f.remedies.clone(),
            facts: f.facts.clone(),
            findings: vec![Ranked {
                score: f.confidence,
                finding: f,
            }],
        };
    }
    let total = total_lines.max(1) as f32;
    // Findings inside the located error region are where the job died.
    let region = located.map(|l| {
        let (first, last) = l.span();
        (first.saturating_sub(5), last.saturating_add(2))
    });
    let mut ranked: Vec<Ranked> = findings
        .into_iter()
        .map(|(finding, pos)| {
            // 0.6 at the first line, 1.0 at the last.
            let position = 0.6 + 0.4 * (pos.last_line as f32 / total).clamp(0.0, 1.0);
            let marker = if pos.marked { 1.15 } else { 1.0 };
            let repeats = 1.0 + 0.03 * (pos.count.max(1) as f32).ln();
            let near = match region {
                Some((a, b)) if finding.evidence.iter().any(|e| e.line >= a && e.line <= b) => 1.25,
                _ => 1.0,
            };
            let baseline = if pos.in_baseline { 0.3 } else { 1.0 };
            let score = finding.confidence * position * marker * repeats * near * baseline;
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
    let mut by_score: Vec<Category> = Category::ALL
        .into_iter()
        .filter(|c| sum_in[*c as usize] > 0.0)
        .collect();
    by_score.sort_by(|a, b| category_score(*b as usize).total_cmp(&category_score(*a as usize)));
    let mut category = by_score.first().copied().unwrap_or(Category::Other);
    let mut decided_by_model = false;
    if let Some(p) = prediction {
        let top_conf = ranked
            .iter()
            .filter(|r| r.finding.category == category)
            .map(|r| r.finding.confidence)
            .fold(0.0, f32::max);
        match (p.best(), by_score.get(1)) {
            // A generic "it failed" rule says little; a confident model more.
            (Some((c, prob)), _)
                if c != category
                    && ((category == Category::Other
                        && c != Category::Other
                        && prob >= MODEL_OVERRIDE
                        && top_conf < 0.7)
                        || (top_conf < WEAK_RULE && prob >= MODEL_STRONG)) =>
            {
                category = c;
                decided_by_model = true;
            }
            // Rules disagree: the model picks between the close ones.
            (_, Some(&second))
                if category_score(second as usize)
                    >= CONFLICT * category_score(category as usize) =>
            {
                let weigh = |c: Category| category_score(c as usize) * (0.3 + p.probability(c));
                if weigh(second) > weigh(category) {
                    category = second;
                    decided_by_model = true;
                }
            }
            _ => {}
        }
    }
    if decided_by_model
        && !ranked.iter().any(|r| r.finding.category == category)
        && let Some(loc) = located
    {
        // The model named a category no rule has: the locator's finding
        // carries it, with the model's reasons.
        let f = locator_finding(
            loc,
            category,
            "classified",
            "locator.classifier",
            0.5,
            prediction,
        );
        ranked.push(Ranked {
            score: f.confidence,
            finding: f,
        });
    }
    if !ranked.iter().any(|r| r.finding.category == category) {
        category = by_score.first().copied().unwrap_or(Category::Other);
    }
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
    if decided_by_model
        && let Some(p) = prediction
        && !facts.iter().any(|(k, _)| k == "classifier.tokens")
    {
        facts.push(("classifier.tokens".into(), p.reasons.join(", ")));
    }
    // The rule's lines come first; the best lines of the error region
    // follow (a rule often matches a summary — "COMPILATION ERROR", "Tests
    // run: 3, Failures: 1" — and the region holds the line it summarises).
    let mut evidence = best.evidence.clone();
    if let Some(loc) = located {
        let far = region.is_some_and(|(a, b)| !evidence.iter().any(|e| e.line >= a && e.line <= b));
        let extra: Vec<Evidence> = if far {
            loc.evidence(3)
        } else {
            loc.best_lines(3)
                .into_iter()
                .map(|l| Evidence {
                    line: l.line,
                    text: l.text.clone(),
                })
                .collect()
        };
        for e in extra {
            if !evidence.iter().any(|x| x.line == e.line) {
                evidence.push(e);
            }
        }
    }
    Diagnosis {
        category: Some(best.category),
        failure_type: Some(best.failure_type.clone()),
        confidence: best.confidence,
        rule: Some(best.rule.clone()),
        source: Some(best.source.clone()),
        evidence,
        remedies: best.remedies.clone(),
        facts,
        findings: ranked,
    }
}

/// The locator's finding when no rule matched: the model's category when it
/// is sure enough, `other` otherwise.
fn from_model(loc: &Located, prediction: Option<&Prediction>) -> Finding {
    match prediction.and_then(Prediction::best) {
        Some((c, p)) if p >= MODEL_MIN => locator_finding(
            loc,
            c,
            "classified",
            "locator.classifier",
            0.25 + 0.5 * p,
            prediction,
        ),
        _ => locator_finding(
            loc,
            Category::Other,
            "unexplained-failure",
            "locator.failure",
            0.3,
            None,
        ),
    }
}

fn locator_finding(
    loc: &Located,
    category: Category,
    failure_type: &str,
    rule: &str,
    confidence: f32,
    prediction: Option<&Prediction>,
) -> Finding {
    let mut facts = Vec::new();
    if let Some(code) = loc.marker.exit_code {
        facts.push(("exit_code".to_string(), code.to_string()));
    }
    if let Some(p) = prediction {
        facts.push(("classifier.tokens".to_string(), p.reasons.join(", ")));
        facts.push((
            "classifier.probability".to_string(),
            format!("{:.2}", p.probability(category)),
        ));
    }
    Finding {
        rule: rule.into(),
        source: "guard".into(),
        category,
        failure_type: failure_type.into(),
        confidence,
        evidence: loc.evidence(5),
        remedies: remedies_for(category),
        facts,
    }
}

/// Default remedies when only the locator knows the category.
fn remedies_for(c: Category) -> Vec<String> {
    let r: &[&str] = match c {
        Category::Network | Category::Timeout => &["retry-with-backoff"],
        Category::Resource => &["reduce-pressure"],
        Category::Test => &["rerun-failed-tests", "diagnose"],
        _ => &["diagnose"],
    };
    r.iter().map(|s| s.to_string()).collect()
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
                in_baseline: false,
            },
        );
        let late = (
            f("b", Category::Build, 0.8),
            Position {
                last_line: 990,
                marked: true,
                count: 1,
                in_baseline: false,
            },
        );
        let d = diagnose(vec![early, late], 1000, Context::default());
        assert_eq!(d.category, Some(Category::Build));
        assert_eq!(d.rule.as_deref(), Some("b"));
    }

    #[test]
    fn nothing_found_is_clean() {
        let d = diagnose(vec![], 10, Context::default());
        assert_eq!(d.category, None);
        assert!(d.evidence.is_empty());
    }
}
