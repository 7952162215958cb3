//! Per-rule statistics in sled tree `rule_stats` ([`Trees::RULE_STATS`]):
//! how often a rule named the failure, and how the heals that followed
//! went, per strategy. This is the feedback that tells which rules are
//! right and which strategies work for them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError, Trees, TxResult, TxTree};

/// Statistics of one rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleStats {
    /// Logs in which it was the primary finding.
    pub fired: u32,
    /// Heals after it that worked.
    pub healed: u32,
    /// Heals after it that did not.
    pub not_healed: u32,
    /// Per strategy: (worked, did not).
    pub strategies: BTreeMap<String, (u32, u32)>,
}

/// Notes that `rule` named a failure.
pub fn fired(store: &Store, rule: &str) -> Result<(), StoreError> {
    store
        .tree(Trees::RULE_STATS)?
        .update(rule, |s| {
            let mut s = s.unwrap_or_default();
            s.fired += 1;
            Some(s)
        })
        .map(|_| ())
}

/// Notes the outcome of a heal of a failure named by `rule`.
pub fn healed(store: &Store, rule: &str, strategy: &str, worked: bool) -> Result<(), StoreError> {
    store
        .tree(Trees::RULE_STATS)?
        .update(rule, |s| Some(counted(s, strategy, worked)))
        .map(|_| ())
}

/// [`healed`] inside a transaction (settling a heal).
pub(crate) fn healed_in(
    tree: &TxTree<'_, str, RuleStats>,
    rule: &str,
    strategy: &str,
    worked: bool,
) -> TxResult<()> {
    tree.insert(rule, &counted(tree.get(rule)?, strategy, worked))
}

fn counted(s: Option<RuleStats>, strategy: &str, worked: bool) -> RuleStats {
    let mut s = s.unwrap_or_default();
    let e = s.strategies.entry(strategy.to_string()).or_default();
    if worked {
        s.healed += 1;
        e.0 += 1;
    } else {
        s.not_healed += 1;
        e.1 += 1;
    }
    s
}

/// Every rule's statistics, most fired first.
pub fn all(store: &Store) -> Result<Vec<(String, RuleStats)>, StoreError> {
    let mut v = store.entries(Trees::RULE_STATS)?;
    v.sort_by(|a, b| b.1.fired.cmp(&a.1.fired).then_with(|| a.0.cmp(&b.0)));
    Ok(v)
}
