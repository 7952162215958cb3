//! `guard status [--json] [--server URL]`: circuit breakers, retry
//! budgets, strategy statistics, and the daemon's queue, dead letters and
//! scheduled re-runs — from the database, or from a running daemon's
//! `/api/status` (sled allows one process per database, so while `guard
//! run` holds it, `--server` is how to look).

use std::io::Write;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::Global;
use crate::config::Config;
use crate::daemon::queue::{Queue, QueuedEvent};
use crate::heal::{breaker, budget, stats};
use crate::store::now_ms;
use crate::store::{Store, StoreError};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Ask a running daemon (e.g. http://127.0.0.1:8700) instead of opening the database.
    #[arg(long)]
    server: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct BreakerView {
    repository: String,
    job: String,
    strategy: String,
    state: breaker::State,
    consecutive_failures: u32,
    successes: u32,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct BudgetView {
    repository: String,
    job: String,
    commit: String,
    used: u32,
    max: u32,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct StatView {
    category: String,
    strategy: String,
    successes: u32,
    failures: u32,
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

pub async fn run(global: &Global, args: Args, out: &mut dyn Write) -> Result<u8> {
    let status = match &args.server {
        Some(url) => {
            let url = format!("{}/api/status", url.trim_end_matches('/'));
            let mut req = reqwest::Client::new().get(&url);
            if let Ok(t) = std::env::var("GUARD_API_TOKEN") {
                req = req.bearer_auth(t);
            }
            let resp = req.send().await.with_context(|| format!("asking {url}"))?;
            if !resp.status().is_success() {
                anyhow::bail!("{url} answered {}", resp.status());
            }
            resp.json::<Status>()
                .await
                .with_context(|| format!("reading {url}"))?
        }
        None => {
            let config = super::load_config(global)?;
            let db = super::open_store(global)?;
            if db.is_temporary() {
                anyhow::bail!(
                    "the database in {} is held by a running guard daemon; use `guard status --server http://ADDR`",
                    global.data.display()
                );
            }
            collect(&config, &db)?
        }
    };
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&status)?)?;
        return Ok(0);
    }
    writeln!(out, "circuit breakers:")?;
    for b in &status.breakers {
        writeln!(
            out,
            "  {:?}  {} · {} · {}  ({} failures in a row, {} successes)",
            b.state, b.repository, b.job, b.strategy, b.consecutive_failures, b.successes
        )?;
    }
    writeln!(out, "retry budgets (per job per commit):")?;
    for b in &status.budgets {
        writeln!(
            out,
            "  {}/{}  {} · {} @ {}",
            b.used,
            b.max,
            b.repository,
            b.job,
            &b.commit[..b.commit.len().min(12)]
        )?;
    }
    writeln!(out, "strategy outcomes:")?;
    for s in &status.stats {
        writeln!(
            out,
            "  {:<12} {:<24} {} worked, {} did not",
            s.category, s.strategy, s.successes, s.failures
        )?;
    }
    writeln!(out, "security events recorded: {}", status.security_events)?;
    writeln!(
        out,
        "daemon queue: {} waiting, {} processed, {} dead letters",
        status.queue_depth,
        status.jobs_processed,
        status.dead_letters.len()
    )?;
    for d in &status.dead_letters {
        let job = d.event.job();
        writeln!(
            out,
            "  dead #{}: {} {} · {} after {} attempts: {}",
            d.id,
            crate::intake::platform_name(job.platform),
            job.repository,
            job.job_name,
            d.attempts,
            d.last_error.as_deref().unwrap_or("?")
        )?;
    }
    Ok(0)
}
