//! The heal plan: candidate strategies for a diagnosis, ranked by learned
//! success rates and filtered by the safety rules. The same plan drives a
//! real heal and `--dry-run` (which prints it and does nothing).

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use super::{breaker, budget, stats};
use crate::model::{Category, Finding};
use crate::runtime::healer::StrategyInfo;
use crate::runtime::{Plugin, PluginKind, Runtime};
use crate::store::now_ms;

/// Where a heal happens, for budgets and breakers.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// Repository (or, locally, the working directory).
    pub repository: String,
    /// Job name (or, locally, the command).
    pub job: String,
    /// Commit (or `unknown`).
    pub commit: String,
    /// Attempt number of the failed run (1-based).
    pub attempt: u32,
}

/// One candidate of a plan.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// The healer plugin offering it.
    pub healer: String,
    /// The strategy.
    pub strategy: String,
    /// Whether it re-runs the job.
    pub retries: bool,
    /// Ranking score (posterior mean success rate).
    pub score: f64,
    /// Why it may not be used now, when it may not.
    pub blocked: Option<String>,
}

/// A ranked plan.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Candidates, usable ones first in the order they will be tried.
    pub steps: Vec<Step>,
}

impl Plan {
    /// The usable steps, in order.
    pub fn usable(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().filter(|s| s.blocked.is_none())
    }
}

/// Strategies per healer, asked once per process.
#[derive(Debug, Default)]
pub struct StrategyCache {
    by_plugin: HashMap<String, Vec<StrategyInfo>>,
}

impl StrategyCache {
    /// Every (healer, strategy) pair offered by the loaded healers.
    pub async fn offers(&mut self, runtime: &Runtime) -> Vec<(Arc<Plugin>, StrategyInfo)> {
        let mut out = Vec::new();
        // Plugins loaded later (from --plugins) come first, so a team's
        // healer offering a standard strategy name takes it over.
        let healers: Vec<_> = runtime.plugins_of(PluginKind::Healer).collect();
        for p in healers.into_iter().rev() {
            if !self.by_plugin.contains_key(p.id()) {
                match runtime.healer_strategies(p).await {
                    Ok(list) => {
                        self.by_plugin.insert(p.id().to_string(), list);
                    }
                    Err(e) => {
                        tracing::warn!("healer {} offers no strategies: {e}", p.id());
                        continue;
                    }
                }
            }
            for s in self.by_plugin.get(p.id()).into_iter().flatten() {
                out.push((p.clone(), s.clone()));
            }
        }
        out
    }
}

/// The remedies to consider for `finding`: its own, then the fallback
/// `diagnose` (always last: reporting is never harmful).
fn remedies(finding: &Finding) -> Vec<String> {
    let mut r: Vec<String> = finding.remedies.clone();
    if r.is_empty() {
        r.push(
            match finding.category {
                Category::Test => "rerun-failed-tests",
                c if c.is_transient() => "retry-with-backoff",
                _ => "diagnose",
            }
            .to_string(),
        );
    }
    r.retain(|s| s != "diagnose");
    r.push("diagnose".into());
    r
}

/// Every reason the host refuses a re-run of `target` for a `category`
/// failure through `strategy` (its breaker): deterministic categories, the
/// attempt cap, the budget, an open breaker. Empty when a re-run may go.
/// The planner uses it for strategies that declare re-runs; the host checks
/// it again on every `ci.rerun*` call, so a strategy that misreports itself
/// gains nothing.
pub fn rerun_blocked(
    runtime: &Runtime,
    category: Category,
    target: &Target,
    strategy: &str,
) -> Vec<String> {
    let heal = &runtime.config().heal;
    let db = runtime.db();
    // Every reason is kept, so the plan says all of them (a spent budget
    // and an open breaker are both worth knowing).
    let mut reasons: Vec<String> = Vec::new();
    if matches!(category, Category::Build | Category::Permission) {
        reasons.push(format!(
            "{category} failures are deterministic: a re-run cannot fix them"
        ));
    }
    if target.attempt >= heal.max_attempt {
        reasons.push(format!(
            "attempt {} reached [heal] max_attempt = {}",
            target.attempt, heal.max_attempt
        ));
    }
    match budget::check(db, heal, &target.repository, &target.job, &target.commit) {
        Ok(Some(why)) => reasons.push(why),
        Ok(None) => {}
        Err(e) => reasons.push(format!("budget unreadable: {e}")),
    }
    if let Ok(b) = breaker::get(db, &breaker::key(&target.repository, &target.job, strategy))
        && b.state(now_ms()) == breaker::State::Open
    {
        reasons.push(format!(
            "circuit breaker open after {} failed heals (cooldown {} min)",
            b.failures,
            breaker::COOLDOWN_MS / 60_000
        ));
    }
    reasons
}

/// Builds the plan for `finding` at `target`.
pub async fn plan(
    runtime: &Runtime,
    cache: &mut StrategyCache,
    finding: &Finding,
    target: &Target,
) -> Plan {
    let db = runtime.db();
    let offers = cache.offers(runtime).await;
    let mut steps = Vec::new();
    for (rank, name) in remedies(finding).iter().enumerate() {
        let Some((plugin, strategy)) = offers
            .iter()
            .find(|(p, s)| s.name == *name && !p.is_quarantined())
        else {
            steps.push(Step {
                healer: "-".into(),
                strategy: name.clone(),
                retries: false,
                score: 0.0,
                blocked: Some("no loaded healer offers it".into()),
            });
            continue;
        };
        let outcomes = stats::get(db, finding.category, name).unwrap_or_default();
        let score = stats::score(&outcomes, rank);
        // Every reason that blocks a re-run is kept, so the plan says all of
        // them (a spent budget and an open breaker are both worth knowing).
        let reasons = if strategy.retries {
            rerun_blocked(runtime, finding.category, target, name)
        } else {
            Vec::new()
        };
        let blocked = (!reasons.is_empty()).then(|| reasons.join("; "));
        steps.push(Step {
            healer: plugin.id().to_string(),
            strategy: name.clone(),
            retries: strategy.retries,
            score,
            blocked,
        });
    }
    // Usable steps by score, diagnose last; blocked ones after, for the record.
    steps.sort_by(|a, b| {
        let key = |s: &Step| (s.blocked.is_some(), s.strategy == "diagnose");
        key(a)
            .cmp(&key(b))
            .then_with(|| b.score.total_cmp(&a.score))
    });
    Plan { steps }
}
