//! Circuit breakers per (repository, job, strategy), persisted in sled tree
//! `breakers` ([`Trees::BREAKERS`]): after `threshold` consecutive failed
//! heals the breaker opens and that strategy is not used for `cooldown`;
//! then one trial is allowed (half-open), and its result closes or re-opens
//! it.

use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError, Trees, TxResult, TxTree, now_ms};

/// Consecutive failures that open a breaker.
pub const THRESHOLD: u32 = 3;
/// How long an open breaker stays open.
pub const COOLDOWN_MS: u64 = 60 * 60 * 1000;

/// A breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Heals allowed.
    Closed,
    /// Heals refused until the cooldown ends.
    Open,
    /// One trial heal allowed.
    HalfOpen,
}

/// A persisted breaker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breaker {
    /// Consecutive failed heals.
    pub failures: u32,
    /// When it last opened (ms since epoch), if it did.
    pub opened_at_ms: Option<u64>,
    /// Total heals that worked.
    pub successes: u32,
}

impl Breaker {
    /// The state now.
    pub fn state(&self, now: u64) -> State {
        match self.opened_at_ms {
            Some(at) if self.failures >= THRESHOLD => {
                if now.saturating_sub(at) >= COOLDOWN_MS {
                    State::HalfOpen
                } else {
                    State::Open
                }
            }
            _ => State::Closed,
        }
    }
}

/// The key of a breaker.
pub fn key(repository: &str, job: &str, strategy: &str) -> String {
    format!("{repository}\u{1f}{job}\u{1f}{strategy}")
}

/// Reads a breaker (closed and empty when unknown).
pub fn get(store: &Store, key: &str) -> Result<Breaker, StoreError> {
    Ok(store.get(Trees::BREAKERS, key)?.unwrap_or(Breaker {
        failures: 0,
        opened_at_ms: None,
        successes: 0,
    }))
}

/// Records the outcome of a heal through this breaker.
pub fn record(store: &Store, key: &str, worked: bool) -> Result<Breaker, StoreError> {
    // One update: outcomes recorded by several replicas at once all count.
    let b = store
        .tree(Trees::BREAKERS)?
        .update(key, |b| Some(counted(b, worked)))?;
    // Not flushed here: the caller's completion flushes (the daemon's job
    // record, `guard exec`'s end), and an outcome lost with an unflushed
    // completion is recorded again when the completion is processed again.
    b.ok_or_else(|| StoreError::Pg("a breaker update wrote nothing".into()))
}

/// [`record`] inside a transaction (settling a heal: see
/// `Session::settle`).
pub(crate) fn record_in(tree: &TxTree<'_, str, Breaker>, key: &str, worked: bool) -> TxResult<()> {
    tree.insert(key, &counted(tree.get(key)?, worked))
}

/// `b` (closed and empty when unknown) after one more outcome.
fn counted(b: Option<Breaker>, worked: bool) -> Breaker {
    let mut b = b.unwrap_or(Breaker {
        failures: 0,
        opened_at_ms: None,
        successes: 0,
    });
    if worked {
        b.failures = 0;
        b.opened_at_ms = None;
        b.successes += 1;
    } else {
        b.failures += 1;
        if b.failures >= THRESHOLD {
            b.opened_at_ms = Some(now_ms());
        }
    }
    b
}

/// Every breaker with its key parts.
pub fn all(store: &Store) -> Result<Vec<(Vec<String>, Breaker)>, StoreError> {
    Ok(store
        .entries(Trees::BREAKERS)?
        .into_iter()
        .map(|(k, b)| (k.split('\u{1f}').map(str::to_string).collect(), b))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_closes_on_success() {
        let s = Store::temporary().unwrap();
        let k = key("r", "j", "retry");
        for _ in 0..THRESHOLD - 1 {
            record(&s, &k, false).unwrap();
        }
        assert_eq!(get(&s, &k).unwrap().state(now_ms()), State::Closed);
        let b = record(&s, &k, false).unwrap();
        assert_eq!(b.state(now_ms()), State::Open);
        assert_eq!(b.state(now_ms() + COOLDOWN_MS), State::HalfOpen);
        assert_eq!(record(&s, &k, true).unwrap().state(now_ms()), State::Closed);
    }
}
