//! The trained classifier beside the rules: a naive Bayes model over the
//! words (and word pairs) of the located error region, deciding the category
//! when no rule matched or rules disagree. It is small and interpretable —
//! every verdict names the tokens that weighed most — and it is data: trained
//! by `guard train`, stored in the database or shipped inside a pattern pack
//! (a `guard-model` custom section of the `.wasm`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::model::Category;

/// The model format this host reads.
pub const FORMAT: &str = "guard-naive-bayes-1";
/// Tokens kept in a trained model (most informative first).
const MAX_VOCAB: usize = 6000;
/// Tokens taken from one document.
const MAX_DOC_TOKENS: usize = 600;
/// Additive smoothing.
const ALPHA: f64 = 0.5;
/// Temperature per square root of the known tokens of a document (chosen
/// by 3-fold cross-validation over the projects of the tuning split).
const TEMPERATURE: f64 = 1.0;

/// Errors loading a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Not JSON of the expected shape.
    #[error("the model is not valid: {0}")]
    Parse(String),
    /// Internally inconsistent (a hostile or corrupt model).
    #[error("the model is inconsistent: {0}")]
    Invalid(String),
}

/// A trained model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// [`FORMAT`].
    pub format: String,
    /// The categories it knows, in the order of the count vectors.
    pub classes: Vec<Category>,
    /// Training documents per class.
    pub docs: Vec<u32>,
    /// Token occurrences per class (over the kept vocabulary).
    pub totals: Vec<u64>,
    /// Token → occurrences per class.
    pub vocab: BTreeMap<String, Vec<u32>>,
    /// Trained on corpora (stands alone); otherwise a set of corrections
    /// that adds to the packs' model.
    #[serde(default)]
    pub standalone: bool,
}

/// A prediction with its reasons.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    /// Every class with its posterior probability, best first.
    pub ranked: Vec<(Category, f32)>,
    /// The tokens that weighed most for the best class.
    pub reasons: Vec<String>,
}

impl Prediction {
    /// The best class and its probability.
    pub fn best(&self) -> Option<(Category, f32)> {
        self.ranked.first().copied()
    }

    /// The probability of `c`.
    pub fn probability(&self, c: Category) -> f32 {
        self.ranked
            .iter()
            .find(|(k, _)| *k == c)
            .map_or(0.0, |(_, p)| *p)
    }
}

impl Model {
    /// Trains on `(category, tokens)` examples.
    pub fn train(examples: &[(Category, Vec<String>)]) -> Model {
        let classes: Vec<Category> = Category::ALL
            .into_iter()
            .filter(|c| examples.iter().any(|(k, _)| k == c))
            .collect();
        let index = |c: Category| classes.iter().position(|k| *k == c);
        let mut docs = vec![0u32; classes.len()];
        let mut counts: HashMap<&str, Vec<u32>> = HashMap::new();
        for (c, tokens) in examples {
            let Some(i) = index(*c) else { continue };
            docs[i] += 1;
            for t in tokens {
                counts
                    .entry(t.as_str())
                    .or_insert_with(|| vec![0; classes.len()])[i] += 1;
            }
        }
        // Keep tokens seen in at least two documents (once there are enough
        // documents for that to mean something), the most class-specific
        // first: a token spread evenly over the classes tells nothing.
        let min_docs = if examples.len() >= 50 { 2 } else { 1 };
        let mut scored: Vec<(&str, f64)> = counts
            .iter()
            .filter(|(_, v)| v.iter().sum::<u32>() >= min_docs)
            .map(|(t, v)| {
                let total: f64 = v.iter().map(|&n| n as f64).sum();
                let max = v.iter().copied().max().unwrap_or(0) as f64;
                (*t, (max / total) * total.ln_1p())
            })
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
        scored.truncate(MAX_VOCAB);
        let vocab: BTreeMap<String, Vec<u32>> = scored
            .iter()
            .map(|(t, _)| ((*t).to_string(), counts[t].clone()))
            .collect();
        Model::from_counts(classes, docs, vocab, false)
    }

    /// A model of these counts; the per-class totals follow from the vocabulary.
    fn from_counts(
        classes: Vec<Category>,
        docs: Vec<u32>,
        vocab: BTreeMap<String, Vec<u32>>,
        standalone: bool,
    ) -> Model {
        let mut totals = vec![0u64; classes.len()];
        for v in vocab.values() {
            for (i, c) in v.iter().enumerate() {
                totals[i] += u64::from(*c);
            }
        }
        Model {
            format: FORMAT.into(),
            classes,
            docs,
            totals,
            vocab,
            standalone,
        }
    }

    /// This model with `other`'s counts added (corrections on top of a
    /// shipped model): classes, documents and token counts are summed.
    pub fn merged(&self, other: &Model) -> Model {
        let classes: Vec<Category> = Category::ALL
            .into_iter()
            .filter(|c| self.classes.contains(c) || other.classes.contains(c))
            .collect();
        let n = classes.len();
        let mut docs = vec![0u32; n];
        let mut vocab: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for m in [self, other] {
            let map: Vec<usize> = m
                .classes
                .iter()
                .filter_map(|c| classes.iter().position(|k| k == c))
                .collect();
            for (i, d) in map.iter().zip(&m.docs) {
                docs[*i] = docs[*i].saturating_add(*d);
            }
            for (t, counts) in &m.vocab {
                let v = vocab.entry(t.clone()).or_insert_with(|| vec![0; n]);
                for (i, c) in map.iter().zip(counts) {
                    v[*i] = v[*i].saturating_add(*c);
                }
            }
        }
        Model::from_counts(classes, docs, vocab, self.standalone || other.standalone)
    }

    /// Parses and checks a model.
    pub fn from_json(bytes: &[u8]) -> Result<Model, ModelError> {
        let m: Model =
            serde_json::from_slice(bytes).map_err(|e| ModelError::Parse(e.to_string()))?;
        m.check()?;
        Ok(m)
    }

    fn check(&self) -> Result<(), ModelError> {
        let n = self.classes.len();
        if self.format != FORMAT {
            return Err(ModelError::Invalid(format!(
                "format {:?} (this guard reads {FORMAT:?})",
                self.format
            )));
        }
        if n == 0 || self.docs.len() != n || self.totals.len() != n {
            return Err(ModelError::Invalid("class vectors differ in length".into()));
        }
        if let Some((t, _)) = self.vocab.iter().find(|(_, v)| v.len() != n) {
            return Err(ModelError::Invalid(format!(
                "token {t:?} has a wrong count vector"
            )));
        }
        Ok(())
    }

    /// Training documents in all.
    pub fn documents(&self) -> u32 {
        self.docs.iter().sum()
    }

    /// Classifies a document's tokens. `None` when no token is known.
    pub fn predict(&self, tokens: &[String]) -> Option<Prediction> {
        let n = self.classes.len();
        let v = self.vocab.len().max(1) as f64;
        let docs: f64 = self.docs.iter().map(|&d| d as f64).sum::<f64>().max(1.0);
        let mut logp: Vec<f64> = self
            .docs
            .iter()
            .map(|&d| ((d as f64 + 1.0) / (docs + n as f64)).ln())
            .collect();
        let mut known: Vec<(&str, &Vec<u32>)> = Vec::new();
        let unique: BTreeSet<&str> = tokens.iter().map(String::as_str).collect();
        for t in unique {
            if let Some(counts) = self.vocab.get(t) {
                known.push((t, counts));
                for (i, l) in logp.iter_mut().enumerate() {
                    *l += self.token_logp(counts, i, v);
                }
            }
        }
        if known.is_empty() {
            return None;
        }
        // Naive Bayes multiplies evidence as if every token were independent,
        // which makes its probabilities far too sure; tempering by the
        // square root of the tokens it read keeps the ranking and gives
        // probabilities the thresholds can mean something against.
        let temperature = ((known.len() as f64).sqrt() * TEMPERATURE).max(1.0);
        for l in logp.iter_mut() {
            *l /= temperature;
        }
        let max = logp.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = logp.iter().map(|l| (l - max).exp()).sum();
        let mut ranked: Vec<(Category, f32)> = self
            .classes
            .iter()
            .zip(&logp)
            .map(|(c, l)| (*c, ((l - max).exp() / sum) as f32))
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        let best = self.classes.iter().position(|c| *c == ranked[0].0)?;
        // Reasons: tokens whose likelihood under the best class most exceeds
        // their mean likelihood under the others.
        let mut reasons: Vec<(f64, &str)> = known
            .iter()
            .map(|(t, counts)| {
                let own = self.token_logp(counts, best, v);
                let others = (0..n)
                    .filter(|&i| i != best)
                    .map(|i| self.token_logp(counts, i, v))
                    .sum::<f64>()
                    / (n.max(2) - 1) as f64;
                (own - others, *t)
            })
            .filter(|(w, _)| *w > 0.0)
            .collect();
        reasons.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
        Some(Prediction {
            ranked,
            reasons: reasons
                .into_iter()
                .take(6)
                .map(|(_, t)| t.to_string())
                .collect(),
        })
    }

    fn token_logp(&self, counts: &[u32], class: usize, v: f64) -> f64 {
        ((counts[class] as f64 + ALPHA) / (self.totals[class] as f64 + ALPHA * v)).ln()
    }
}

/// The tokens of a document: lower-case words of 2–24 letters (words with
/// digits or path separators are variable, not vocabulary), and adjacent word
/// pairs, once each.
pub fn tokens<'a>(lines: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::new();
    for line in lines {
        let mut prev: Option<String> = None;
        for raw in line.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
            let word_ok = (2..=24).contains(&raw.len())
                && raw.chars().all(|c| c.is_alphabetic() || c == '_')
                && raw.is_ascii();
            if !word_ok {
                if !raw.is_empty() {
                    prev = None;
                }
                continue;
            }
            let w = raw.to_ascii_lowercase();
            if let Some(p) = &prev {
                let pair = format!("{p} {w}");
                if seen.insert(pair.clone()) {
                    out.push(pair);
                }
            }
            if seen.insert(w.clone()) {
                out.push(w.clone());
            }
            prev = Some(w);
            if out.len() >= MAX_DOC_TOKENS {
                return out;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(s: &str) -> Vec<String> {
        tokens(s.lines())
    }

    fn model() -> Model {
        let ex = vec![
            (
                Category::Test,
                doc("assertion failed expected 3 got 4\ntests failed"),
            ),
            (
                Category::Test,
                doc("test failed: expected true\n1 failing test"),
            ),
            (
                Category::Build,
                doc("compile error: cannot find symbol\nbuild failed"),
            ),
            (
                Category::Build,
                doc("syntax error near token\ncompilation failed"),
            ),
            (
                Category::Network,
                doc("connection refused while downloading\nconnection reset"),
            ),
        ];
        Model::train(&ex)
    }

    #[test]
    fn predicts_from_the_words_that_matter_and_says_which() {
        let m = model();
        let p = m
            .predict(&doc("3 tests failed: expected 5"))
            .expect("known words");
        assert_eq!(p.best().map(|b| b.0), Some(Category::Test));
        assert!(
            p.reasons
                .iter()
                .any(|r| r.contains("expected") || r.contains("tests")),
            "{p:?}"
        );
        let p = m
            .predict(&doc("error: cannot find symbol Foo"))
            .expect("known words");
        assert_eq!(p.best().map(|b| b.0), Some(Category::Build));
        assert!(m.predict(&doc("zzz qqq")).is_none());
    }

    #[test]
    fn round_trips_and_rejects_broken_models() {
        let m = model();
        let json = serde_json::to_vec(&m).expect("serialises");
        assert_eq!(Model::from_json(&json).expect("loads"), m);
        assert!(Model::from_json(b"{}").is_err());
        let mut bad = m.clone();
        bad.docs.pop();
        assert!(Model::from_json(&serde_json::to_vec(&bad).expect("json")).is_err());
    }

    #[test]
    fn corrections_add_to_a_model() {
        let base = model();
        let fix = Model::train(&[(Category::Network, doc("quasar beacon rejected"))]);
        let m = base.merged(&fix);
        assert_eq!(m.documents(), base.documents() + 1);
        let p = m
            .predict(&doc("quasar beacon rejected again"))
            .expect("known words");
        assert_eq!(p.best().map(|b| b.0), Some(Category::Network));
        assert!(m.predict(&doc("assertion failed expected")).is_some());
    }

    #[test]
    fn tokens_skip_numbers_and_paths() {
        let t = doc("Error at /home/x/a.c:12 code 0x1f Failed");
        assert!(t.contains(&"error".to_string()));
        assert!(t.contains(&"failed".to_string()));
        assert!(!t.iter().any(|w| w.contains("12") || w.contains("home x")));
    }
}
