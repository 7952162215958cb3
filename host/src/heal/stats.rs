//! Outcome statistics per (category, strategy), persisted in sled tree
//! `stats` ([`Trees::STATS`]), and the ranking they give: the mean of a
//! Beta posterior whose prior favours the rule's own order of remedies. A
//! strategy with few trials keeps an optimistic prior (exploration); one
//! that keeps failing sinks below the alternatives (exploitation).

use serde::{Deserialize, Serialize};

use crate::model::Category;
use crate::store::{Store, StoreError, Trees, TxResult, TxTree};

/// Outcomes of one strategy on one category.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcomes {
    /// Heals that worked (the re-run passed, the flaky test was confirmed).
    pub successes: u32,
    /// Heals that did not.
    pub failures: u32,
}

fn key(category: Category, strategy: &str) -> String {
    format!("{category}\u{1f}{strategy}")
}

/// Reads the outcomes of `strategy` on `category`.
pub fn get(store: &Store, category: Category, strategy: &str) -> Result<Outcomes, StoreError> {
    Ok(store
        .get(Trees::STATS, &key(category, strategy))?
        .unwrap_or_default())
}

/// Records one outcome.
pub fn record(
    store: &Store,
    category: Category,
    strategy: &str,
    worked: bool,
) -> Result<(), StoreError> {
    store
        .tree(Trees::STATS)?
        .update(&key(category, strategy), |o| Some(counted(o, worked)))
        .map(|_| ())
}

/// [`record`] inside a transaction (settling a heal).
pub(crate) fn record_in(
    tree: &TxTree<'_, str, Outcomes>,
    category: Category,
    strategy: &str,
    worked: bool,
) -> TxResult<()> {
    let k = key(category, strategy);
    tree.insert(&k, &counted(tree.get(&k)?, worked))
}

fn counted(o: Option<Outcomes>, worked: bool) -> Outcomes {
    let mut o = o.unwrap_or_default();
    if worked {
        o.successes += 1;
    } else {
        o.failures += 1;
    }
    o
}

/// Every (category, strategy, outcomes).
pub fn all(store: &Store) -> Result<Vec<(String, String, Outcomes)>, StoreError> {
    Ok(store
        .entries(Trees::STATS)?
        .into_iter()
        .map(|(k, o)| {
            let (c, s) = k.split_once('\u{1f}').unwrap_or((&k, ""));
            (c.to_string(), s.to_string(), o)
        })
        .collect())
}

/// The ranking score: posterior mean of Beta(α₀ + successes, β₀ + failures),
/// with α₀ larger for remedies the rule lists first (`rank` 0 is first).
pub fn score(o: &Outcomes, rank: usize) -> f64 {
    let alpha0 = match rank {
        0 => 3.0,
        1 => 2.0,
        _ => 1.0,
    };
    let beta0 = 1.0;
    (alpha0 + o.successes as f64) / (alpha0 + beta0 + o.successes as f64 + o.failures as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_demote_a_strategy_below_the_next_one() {
        let fresh = Outcomes::default();
        assert!(score(&fresh, 0) > score(&fresh, 1));
        let bad = Outcomes {
            successes: 0,
            failures: 6,
        };
        assert!(score(&bad, 0) < score(&fresh, 1));
        let s = Store::temporary().unwrap();
        record(&s, Category::Network, "retry", true).unwrap();
        assert_eq!(get(&s, Category::Network, "retry").unwrap().successes, 1);
    }
}
