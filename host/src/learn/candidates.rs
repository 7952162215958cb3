//! Candidate mining: failed logs that no rule explains are reduced to
//! templates of their failure line (Drain-style: tokens, variable tokens
//! masked, similar templates of the same length merged), counted, and kept
//! in sled tree `candidates` ([`Trees::CANDIDATES`]) until a person
//! promotes one to a rule.

use serde::{Deserialize, Serialize};

use super::generalize::generalize;
use crate::store::{Store, StoreError, Trees, now_ms};

/// Wildcard token.
pub const WILDCARD: &str = "<*>";
/// Share of equal tokens for a line to join a template.
const SIMILARITY: f64 = 0.5;
/// Examples kept per candidate.
const MAX_EXAMPLES: usize = 5;

/// An example occurrence of a candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// The log or job it was seen in.
    pub source: String,
    /// Line number.
    pub line: u32,
    /// The line.
    pub text: String,
}

/// A template of an unexplained failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// Short id.
    pub id: String,
    /// Template tokens; `<*>` marks a variable one.
    pub tokens: Vec<String>,
    /// Logs it was seen in.
    pub count: u32,
    /// First and last time seen (ms since epoch).
    pub first_seen_ms: u64,
    /// Last time seen.
    pub last_seen_ms: u64,
    /// Some examples.
    pub examples: Vec<Example>,
}

impl Candidate {
    /// The template as text.
    pub fn template(&self) -> String {
        self.tokens.join(" ")
    }

    /// The rule pattern for this template: literal tokens, `\S+` for
    /// wildcards, any blanks between.
    pub fn pattern(&self) -> String {
        self.tokens
            .iter()
            .map(|t| {
                if t == WILDCARD {
                    r"\S+".to_string()
                } else {
                    regex::escape(t)
                }
            })
            .collect::<Vec<_>>()
            .join(r"\s+")
    }
}

/// Masks one token: anything the generaliser would not keep literally
/// becomes a wildcard.
fn mask(token: &str) -> String {
    if generalize(token) == regex::escape(token) {
        token.to_string()
    } else {
        WILDCARD.to_string()
    }
}

fn similarity(a: &[String], b: &[String]) -> f64 {
    if a.len() != b.len() || a.is_empty() {
        return 0.0;
    }
    let same = a
        .iter()
        .zip(b)
        .filter(|(x, y)| x == y && *x != WILDCARD)
        .count();
    let literal = a.iter().filter(|t| *t != WILDCARD).count().max(1);
    same as f64 / literal as f64
}

/// Adds one unexplained failure line; returns the candidate it joined or created.
pub fn add(store: &Store, source: &str, line: u32, text: &str) -> Result<Candidate, StoreError> {
    let tokens: Vec<String> = text.split_whitespace().map(mask).collect();
    let mut all = store.values(Trees::CANDIDATES)?;
    let now = now_ms();
    let best = all
        .iter_mut()
        .filter(|c| c.tokens.first() == tokens.first())
        .map(|c| (similarity(&c.tokens, &tokens), c))
        .filter(|(s, _)| *s >= SIMILARITY)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    let candidate = match best {
        Some((_, c)) => {
            for (t, n) in c.tokens.iter_mut().zip(&tokens) {
                if t != n {
                    *t = WILDCARD.to_string();
                }
            }
            c.count += 1;
            c.last_seen_ms = now;
            if c.examples.len() < MAX_EXAMPLES {
                c.examples.push(Example {
                    source: source.into(),
                    line,
                    text: text.into(),
                });
            }
            c.clone()
        }
        None => {
            let id = format!("c{}", store.generate_id()?);
            Candidate {
                id,
                tokens,
                count: 1,
                first_seen_ms: now,
                last_seen_ms: now,
                examples: vec![Example {
                    source: source.into(),
                    line,
                    text: text.into(),
                }],
            }
        }
    };
    store.put(Trees::CANDIDATES, &candidate.id, &candidate)?;
    Ok(candidate)
}

/// Every candidate, most frequent first.
pub fn all(store: &Store) -> Result<Vec<Candidate>, StoreError> {
    let mut v = store.values(Trees::CANDIDATES)?;
    v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.id.cmp(&b.id)));
    Ok(v)
}

/// One candidate.
pub fn get(store: &Store, id: &str) -> Result<Option<Candidate>, StoreError> {
    store.get(Trees::CANDIDATES, id)
}

/// Removes a candidate (after promotion).
pub fn remove(store: &Store, id: &str) -> Result<bool, StoreError> {
    store.remove(Trees::CANDIDATES, id)
}

/// Adds the best failure line of an unexplained failed log to the
/// candidates (`guard exec` and the daemon both mine what nothing explains).
pub fn mine_log(
    store: &Store,
    source: &str,
    bytes: &[u8],
) -> Result<Option<Candidate>, StoreError> {
    let lines = crate::detect::normalize::normalized_lines(bytes, 8192);
    let Some((n, line)) = super::generalize::best_line(
        lines
            .iter()
            .enumerate()
            .map(|(i, t)| (i as u32 + 1, t.as_str())),
    ) else {
        return Ok(None);
    };
    Ok(Some(add(store, source, n, line)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similar_lines_merge_into_one_template() {
        let s = Store::temporary().unwrap();
        add(
            &s,
            "a",
            1,
            "QUEUE timeout after 30s waiting for worker w-17 on /srv/q/1",
        )
        .unwrap();
        let c = add(
            &s,
            "b",
            9,
            "QUEUE timeout after 45s waiting for worker w-3 on /srv/q/22",
        )
        .unwrap();
        assert_eq!(c.count, 2);
        assert_eq!(
            c.template(),
            "QUEUE timeout after <*> waiting for worker <*> on <*>"
        );
        add(&s, "c", 2, "LICENSE server refused seat for user bob").unwrap();
        assert_eq!(all(&s).unwrap().len(), 2);
        let re = regex::Regex::new(&c.pattern()).unwrap();
        assert!(re.is_match("QUEUE timeout after 5s waiting for worker x on y"));
    }
}
