//! What compiling a rule learns before any regex is built — its size
//! estimate and its required literals — kept per rule text beside the
//! compiled plugins (`--data/compiled/rule-plans-v1.json`), so a warm
//! start does not parse hundreds of patterns again: that was a tenth of a
//! small log's whole `guard detect`.
//!
//! An entry is keyed by the sha256 of the rule's pattern and `unless`, and
//! only a rule that passed every check gets one. A missing, unreadable or
//! foreign file is an empty memo (everything is parsed as before); the file
//! is rewritten only when it lacked a rule, and holds the rules of the last
//! compile.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::literals::Required;
use crate::model::Rule;

/// The file's name (a new layout gets a new name).
const FILE: &str = "rule-plans-v1.json";

/// At most this many entries are read (a larger file is ignored).
const MAX_ENTRIES: usize = 50_000;

/// One rule's plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Plan {
    cost: usize,
    literals: Option<Vec<String>>,
    folds: bool,
}

/// The memo of one compile.
#[derive(Debug, Default)]
pub struct Plans {
    path: Option<PathBuf>,
    known: HashMap<String, Plan>,
    /// The entries this compile used or made.
    used: HashMap<String, Plan>,
    /// Whether a good rule had no plan (the file is then rewritten; a bad
    /// rule, which never gets one, does not force a rewrite every run).
    missed: bool,
}

fn key(rule: &Rule) -> String {
    let mut h = Sha256::new();
    h.update(rule.pattern.as_bytes());
    h.update([0]);
    h.update(rule.unless.as_deref().unwrap_or("").as_bytes());
    hex::encode(&h.finalize()[..16])
}

impl Plans {
    /// The memo in `dir` (none: nothing is kept).
    pub fn load(dir: Option<&Path>) -> Plans {
        let Some(dir) = dir else {
            return Plans::default();
        };
        let path = dir.join(FILE);
        let known = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<HashMap<String, Plan>>(&bytes).ok())
            .filter(|m| m.len() <= MAX_ENTRIES)
            .unwrap_or_default();
        Plans {
            path: Some(path),
            known,
            ..Plans::default()
        }
    }

    /// The plan of `rule`, if a compile made one.
    pub(super) fn get(&mut self, rule: &Rule) -> Option<(usize, Option<Required>)> {
        let k = key(rule);
        // Taken, not copied: a plan serves one rule text, and a second
        // rule with the same texts finds it among the used ones.
        let plan = match self.known.remove(&k) {
            Some(plan) => plan,
            None => self.used.get(&k)?.clone(),
        };
        let out = (
            plan.cost,
            plan.literals.clone().map(|literals| Required {
                literals,
                folds: plan.folds,
            }),
        );
        self.used.insert(k, plan);
        Some(out)
    }

    /// Records the plan of a rule that passed every check.
    pub(super) fn put(&mut self, rule: &Rule, cost: usize, literals: &Option<Required>) {
        self.missed = true;
        self.used.insert(
            key(rule),
            Plan {
                cost,
                literals: literals.as_ref().map(|r| r.literals.clone()),
                folds: literals.as_ref().is_some_and(|r| r.folds),
            },
        );
    }

    /// Writes the memo when this compile had to make plans (atomically: a
    /// concurrent reader sees the old file or the new one).
    pub fn save(&self) {
        let Some(path) = &self.path else {
            return;
        };
        if !self.missed {
            return;
        }
        let write = || -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            std::fs::write(&tmp, serde_json::to_vec(&self.used)?)?;
            std::fs::rename(&tmp, path)
        };
        if let Err(e) = write() {
            tracing::debug!("keeping rule plans in {}: {e}", path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::RuleSet;
    use super::*;
    use crate::model::Category;

    fn rule(id: &str, pattern: &str) -> Rule {
        Rule {
            id: id.into(),
            category: Category::Network,
            failure_type: "t".into(),
            pattern: pattern.into(),
            unless: None,
            confidence: 0.9,
            remedies: vec![],
            description: String::new(),
        }
    }

    fn hits(set: &std::sync::Arc<RuleSet>, text: &str) -> Vec<String> {
        let mut scan = set.scan();
        for (i, line) in text.lines().enumerate() {
            scan.line(i as u32 + 1, line, false);
        }
        let mut ids: Vec<String> = scan.finish().into_iter().map(|(f, _)| f.rule).collect();
        ids.sort();
        ids
    }

    #[test]
    fn a_warm_compile_uses_the_plans_and_finds_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let rules = [
            rule("dns", r"ENOTFOUND (?P<host>\S+)"),
            rule("oom", r"(?i)out of memory"),
            rule("bad", "(unclosed"),
        ];
        let text = "getaddrinfo ENOTFOUND x\nOUT OF MEMORY\n";
        let mut cold = Plans::load(Some(dir.path()));
        let (a, errors) = RuleSet::compile_with(rules.iter().map(|r| ("p", r)), &mut cold);
        assert_eq!(errors.len(), 1);
        cold.save();
        let mut warm = Plans::load(Some(dir.path()));
        assert_eq!(warm.known.len(), 2, "only rules that passed are kept");
        let (b, errors) = RuleSet::compile_with(rules.iter().map(|r| ("p", r)), &mut warm);
        assert_eq!(errors.len(), 1, "a bad rule is checked again, and refused");
        assert!(!warm.missed, "every good rule came from the plans");
        assert_eq!(hits(&a, text), ["dns", "oom"]);
        assert_eq!(hits(&a, text), hits(&b, text));

        // A changed pattern is planned afresh; a damaged file is no memo.
        let changed = [rule("dns", r"EAI_AGAIN (?P<host>\S+)")];
        let mut p = Plans::load(Some(dir.path()));
        let (c, _) = RuleSet::compile_with(changed.iter().map(|r| ("p", r)), &mut p);
        assert!(p.missed);
        assert_eq!(hits(&c, "getaddrinfo EAI_AGAIN y\n"), ["dns"]);
        std::fs::write(dir.path().join(FILE), b"{not json").unwrap();
        let mut broken = Plans::load(Some(dir.path()));
        assert!(broken.known.is_empty());
        let (d, _) = RuleSet::compile_with(rules.iter().map(|r| ("p", r)), &mut broken);
        assert_eq!(hits(&d, text), ["dns", "oom"]);
    }
}
