//! `guard status [--json]`: circuit breakers, retry budgets and strategy
//! statistics from the database.

use std::io::Write;

use anyhow::Result;
use serde::Serialize;

use super::Global;
use crate::heal::{breaker, budget, stats};
use crate::store::now_ms;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct BreakerView {
    repository: String,
    job: String,
    strategy: String,
    state: breaker::State,
    consecutive_failures: u32,
    successes: u32,
}

#[derive(Serialize)]
struct BudgetView {
    repository: String,
    job: String,
    commit: String,
    used: u32,
    max: u32,
}

#[derive(Serialize)]
struct StatView {
    category: String,
    strategy: String,
    successes: u32,
    failures: u32,
}

#[derive(Serialize)]
struct Status {
    breakers: Vec<BreakerView>,
    budgets: Vec<BudgetView>,
    stats: Vec<StatView>,
    security_events: usize,
}

pub async fn run(global: &Global, args: Args, out: &mut dyn Write) -> Result<u8> {
    let config = super::load_config(global)?;
    let db = super::open_store(global)?;
    let now = now_ms();
    let breakers = breaker::all(&db)?
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
    let budgets = budget::all_jobs(&db)?
        .into_iter()
        .map(|(repository, job, commit, used)| BudgetView {
            repository,
            job,
            commit,
            used,
            max,
        })
        .collect();
    let stats = stats::all(&db)?
        .into_iter()
        .map(|(category, strategy, o)| StatView {
            category,
            strategy,
            successes: o.successes,
            failures: o.failures,
        })
        .collect();
    let status = Status {
        breakers,
        budgets,
        stats,
        security_events: db.security_events(10_000)?.len(),
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
    Ok(0)
}
