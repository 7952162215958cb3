//! The state a person asks about: circuit breakers, retry budgets,
//! strategy statistics, security events and the daemon's queue, dead
//! letters and scheduled re-runs, gathered from the database in one view.
//! `guard status` prints it; the daemon serves it at `/api/status` and in
//! the dashboard.

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::daemon::queue::{Queue, QueuedEvent};
use crate::heal::{breaker, budget, stats};
use crate::store::now_ms;
use crate::store::{Store, StoreError};

/// A circuit breaker as shown.
#[derive(Debug, Serialize, Deserialize)]
pub struct BreakerView {
    /// Repository.
    pub repository: String,
    /// Job.
    pub job: String,
    /// Strategy.
    pub strategy: String,
    /// Closed, open or half-open, now.
    pub state: breaker::State,
    /// Failed heals in a row.
    pub consecutive_failures: u32,
    /// Heals that worked.
    pub successes: u32,
}

/// A retry budget as shown.
#[derive(Debug, Serialize, Deserialize)]
pub struct BudgetView {
    /// Repository.
    pub repository: String,
    /// Job.
    pub job: String,
    /// Commit.
    pub commit: String,
    /// Re-runs used.
    pub used: u32,
    /// Re-runs allowed.
    pub max: u32,
}

/// A strategy's outcomes in a category.
#[derive(Debug, Serialize, Deserialize)]
pub struct StatView {
    /// Category.
    pub category: String,
    /// Strategy.
    pub strategy: String,
    /// Heals that worked.
    pub successes: u32,
    /// Heals that did not.
    pub failures: u32,
}

/// What `guard status` shows.
#[derive(Debug, Serialize, Deserialize)]
pub struct Status {
    /// Circuit breakers.
    pub breakers: Vec<BreakerView>,
    /// Budgets per job per commit.
    pub budgets: Vec<BudgetView>,
    /// Strategy outcomes.
    pub stats: Vec<StatView>,
    /// Security events recorded.
    pub security_events: usize,
    /// Events waiting in the daemon's queue.
    #[serde(default)]
    pub queue_depth: usize,
    /// Events processed by the daemon.
    #[serde(default)]
    pub jobs_processed: usize,
    /// Events given up after repeated failures.
    #[serde(default)]
    pub dead_letters: Vec<QueuedEvent>,
}

/// Reads the status from `db`.
pub fn collect(config: &Config, db: &Store) -> Result<Status, StoreError> {
    let now = now_ms();
    let breakers = breaker::all(db)?
        .into_iter()
        .map(|(k, b)| BreakerView {
            repository: k.first().cloned().unwrap_or_default(),
            job: k.get(1).cloned().unwrap_or_default(),
            strategy: k.get(2).cloned().unwrap_or_default(),
            state: b.state(now),
            consecutive_failures: b.failures,
            successes: b.successes,
        })
        .collect();
    let max = config
        .heal
        .max_retries_per_job
        .min(crate::config::HARD_MAX_RETRIES_PER_JOB);
    let budgets = budget::all_jobs(db)?
        .into_iter()
        .map(|(repository, job, commit, used)| BudgetView {
            repository,
            job,
            commit,
            used,
            max,
        })
        .collect();
    let stats = stats::all(db)?
        .into_iter()
        .map(|(category, strategy, o)| StatView {
            category,
            strategy,
            successes: o.successes,
            failures: o.failures,
        })
        .collect();
    let queue = Queue::open(db)?;
    Ok(Status {
        breakers,
        budgets,
        stats,
        security_events: db.security_events(10_000)?.len(),
        queue_depth: queue.depth(),
        jobs_processed: queue.jobs_count(),
        dead_letters: queue.dead_letters(50)?,
    })
}
