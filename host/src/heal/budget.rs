//! Retry budgets, persisted in sled tree `budgets`: re-runs per job per
//! commit (default 2, never more than the hard cap; [`Trees::JOB_BUDGETS`])
//! and per repository per hour ([`Trees::REPO_BUDGETS`]). A budget is spent
//! when a re-run is actually started.

use serde::{Deserialize, Serialize};

use crate::config::{HARD_MAX_RETRIES_PER_JOB, Heal};
use crate::heal::session::Pending;
use crate::store::{Store, StoreError, Trees, now_ms, transaction};

const HOUR_MS: u64 = 60 * 60 * 1000;

/// Re-runs spent for one job on one commit.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JobBudget {
    /// Re-runs started.
    pub used: u32,
    /// When the last one was started (ms): budgets of old commits expire.
    #[serde(default)]
    pub at_ms: u64,
}

/// Re-runs started in a repository (timestamps within the last hour).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RepoBudget {
    /// Start times, ms since epoch.
    pub recent: Vec<u64>,
}

/// Why a re-run is not allowed, if it is not.
pub fn check(
    store: &Store,
    heal: &Heal,
    repository: &str,
    job: &str,
    commit: &str,
) -> Result<Option<String>, StoreError> {
    let max = heal.max_retries_per_job.min(HARD_MAX_RETRIES_PER_JOB);
    let jb = store
        .get(Trees::JOB_BUDGETS, &job_key(repository, job, commit))?
        .unwrap_or_default();
    if jb.used >= max {
        return Ok(Some(format!(
            "retry budget spent: {} of {max} re-runs for this job on commit {commit} ([heal] max_retries_per_job)",
            jb.used
        )));
    }
    let rb = store
        .get(Trees::REPO_BUDGETS, repository)?
        .unwrap_or_default();
    let now = now_ms();
    let in_hour = rb
        .recent
        .iter()
        .filter(|t| now.saturating_sub(**t) < HOUR_MS)
        .count() as u32;
    if in_hour >= heal.max_retries_per_repo_hour {
        return Ok(Some(format!(
            "repository budget spent: {in_hour} re-runs in the last hour ([heal] max_retries_per_repo_hour)"
        )));
    }
    Ok(None)
}

/// Spends one re-run.
pub fn spend(store: &Store, repository: &str, job: &str, commit: &str) -> Result<(), StoreError> {
    // Updates, not read-then-write: replicas spending at once all count.
    let jk = job_key(repository, job, commit);
    store.tree(Trees::JOB_BUDGETS)?.update(&jk, |jb| {
        let mut jb = jb.unwrap_or_default();
        jb.used += 1;
        jb.at_ms = now_ms();
        Some(jb)
    })?;
    spend_repo(store, repository)
}

/// Spends one re-run of `target` (repository, job, commit) for the heal
/// `pending` records under `pending_key`, once: the same attempt healed
/// again — after a crash, or by a second replica — finds its pending
/// record and spends nothing. The record and the job's budget are written
/// together; the repository's hourly count follows.
pub(crate) fn spend_once(
    store: &Store,
    pending_key: &str,
    pending: &Pending,
    (repository, job, commit): (&str, &str, &str),
) -> Result<(), StoreError> {
    let jk = job_key(repository, job, commit);
    let fresh = transaction(
        &store.tree(Trees::PENDING)?,
        &store.tree(Trees::JOB_BUDGETS)?,
        |p, b| {
            if let Some(old) = p.get(pending_key)?
                && old.same_attempt(pending)
            {
                return Ok(false);
            }
            p.insert(pending_key, pending)?;
            let mut jb = b.get(&jk)?.unwrap_or_default();
            jb.used += 1;
            jb.at_ms = now_ms();
            b.insert(&jk, &jb)?;
            Ok(true)
        },
    )?;
    if fresh {
        spend_repo(store, repository)
    } else {
        Ok(())
    }
}

fn spend_repo(store: &Store, repository: &str) -> Result<(), StoreError> {
    let now = now_ms();
    store.tree(Trees::REPO_BUDGETS)?.update(repository, |rb| {
        let mut rb = rb.unwrap_or_default();
        rb.recent.retain(|t| now.saturating_sub(*t) < HOUR_MS);
        rb.recent.push(now);
        Some(rb)
    })?;
    // Not flushed here, for the reason `breaker::record` gives.
    Ok(())
}

/// Forgets the budgets of jobs on commits last re-run before `cutoff_ms`
/// (one record per commit would otherwise accumulate for good); returns
/// how many. Repository budgets are one per repository and stay.
pub fn expire(store: &Store, cutoff_ms: u64, now_ms: u64) -> Result<usize, StoreError> {
    store
        .tree(Trees::JOB_BUDGETS)?
        .expire(cutoff_ms, now_ms, |b| &mut b.at_ms)
}

/// Every job budget: (repository, job, commit, used).
pub fn all_jobs(store: &Store) -> Result<Vec<(String, String, String, u32)>, StoreError> {
    let mut out = Vec::new();
    for (k, b) in store.entries(Trees::JOB_BUDGETS)? {
        let parts: Vec<&str> = k.split('\u{1f}').collect();
        if let [repo, job, commit] = parts.as_slice() {
            out.push((
                repo.to_string(),
                job.to_string(),
                commit.to_string(),
                b.used,
            ));
        }
    }
    Ok(out)
}

/// A job's key within [`Trees::JOB_BUDGETS`] (whose keyspace adds `job␟`;
/// a repository's key within [`Trees::REPO_BUDGETS`] is its name).
fn job_key(repository: &str, job: &str, commit: &str) -> String {
    format!("{repository}\u{1f}{job}\u{1f}{commit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_budget_is_capped_and_persisted() {
        let s = Store::temporary().unwrap();
        let heal = Heal {
            max_retries_per_job: 2,
            ..Heal::default()
        };
        assert!(check(&s, &heal, "r", "j", "c1").unwrap().is_none());
        spend(&s, "r", "j", "c1").unwrap();
        spend(&s, "r", "j", "c1").unwrap();
        assert!(
            check(&s, &heal, "r", "j", "c1")
                .unwrap()
                .unwrap()
                .contains("2 of 2")
        );
        assert!(
            check(&s, &heal, "r", "j", "c2").unwrap().is_none(),
            "a new commit has its own budget"
        );
        assert_eq!(
            all_jobs(&s).unwrap(),
            vec![("r".into(), "j".into(), "c1".into(), 2)]
        );
    }
}
