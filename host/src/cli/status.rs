//! `guard status [--json] [--server URL]`: circuit breakers, retry
//! budgets, strategy statistics, and the daemon's queue, dead letters and
//! scheduled re-runs — from the database, or from a running daemon's
//! `/api/status` (sled allows one process per database, so while `guard
//! run` holds it, `--server` is how to look).

use std::io::Write;

use anyhow::{Context, Result};

use super::Global;
use crate::status::{Status, collect};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Ask a running daemon (e.g. http://127.0.0.1:8700) instead of opening the database.
    #[arg(long)]
    server: Option<String>,
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
