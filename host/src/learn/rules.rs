//! Learned rules in sled tree `rules` ([`Trees::RULES`]), each with its
//! provenance, and their validation: a rule must compile, match the line it
//! was learned from, and match no line of any known-good (passing) log.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::detect::scanner::RuleSet;
use crate::model::Rule;
use crate::store::{Store, StoreError, Trees, now_ms};

/// The source name learned rules carry in findings and listings.
pub const SOURCE: &str = "learned";

/// Where a learned rule came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// When it was stored.
    pub at_ms: u64,
    /// How: `learn`, `import`, `promote`.
    pub how: String,
    /// The log or file it came from.
    pub from: String,
    /// The line it was learned from, when it was.
    pub line: Option<u32>,
    /// The example text.
    pub example: Option<String>,
}

/// A stored learned rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Learned {
    /// The rule.
    pub rule: Rule,
    /// Its provenance.
    pub provenance: Provenance,
}

/// Stores (or replaces) a learned rule.
pub fn put(
    store: &Store,
    rule: Rule,
    how: &str,
    from: &str,
    line: Option<u32>,
    example: Option<String>,
) -> Result<(), StoreError> {
    let id = rule.id.clone();
    let learned = Learned {
        rule,
        provenance: Provenance {
            at_ms: now_ms(),
            how: how.into(),
            from: from.into(),
            line,
            example,
        },
    };
    store.put(Trees::RULES, &id, &learned)?;
    store.flush()?;
    store.changed(Trees::RULES);
    Ok(())
}

/// Every learned rule.
pub fn all(store: &Store) -> Result<Vec<Learned>, StoreError> {
    store.values(Trees::RULES)
}

/// Removes a learned rule; returns whether it existed.
pub fn remove(store: &Store, id: &str) -> Result<bool, StoreError> {
    let existed = store.remove(Trees::RULES, id)?;
    store.flush()?;
    if existed {
        store.changed(Trees::RULES);
    }
    Ok(existed)
}

/// Validates a rule: compiles, matches `example` when given, and matches no
/// line of the logs in `negatives` (files, or `*.log` in directories).
/// Returns a reason when it must be refused.
pub fn validate(rule: &Rule, example: Option<&str>, negatives: &[&Path]) -> Result<(), String> {
    let (set, errors) = RuleSet::compile([(SOURCE, rule)]);
    if let Some(e) = errors.first() {
        return Err(e.message.clone());
    }
    if let Some(text) = example {
        let mut scan = set.scan();
        scan.line(1, text, false);
        if scan.finish().is_empty() {
            return Err(format!(
                "the rule does not match the line it was learned from: {text}"
            ));
        }
    }
    for path in negatives {
        let files: Vec<std::path::PathBuf> = if path.is_dir() {
            let mut v: Vec<_> = std::fs::read_dir(path)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "log"))
                .collect();
            v.sort();
            v
        } else {
            vec![path.to_path_buf()]
        };
        for file in files {
            let bytes = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let mut scan = set.scan();
            for (i, text) in crate::detect::normalize::normalized_lines(&bytes, 8192)
                .iter()
                .enumerate()
            {
                scan.line(i as u32 + 1, text, false);
            }
            if let Some((f, _)) = scan.finish().into_iter().next() {
                let at = f
                    .evidence
                    .first()
                    .map(|e| format!("line {}: {}", e.line, e.text))
                    .unwrap_or_default();
                return Err(format!(
                    "the rule also matches the passing log {} ({at})",
                    file.display()
                ));
            }
        }
    }
    Ok(())
}
