//! One heal of one failed job, the same for every driver: `guard exec`
//! (its loop re-runs the command) and the daemon's worker (the platform
//! re-runs the job) both hand a failed job's log to a [`Session`] and
//! render what comes back.
//!
//! A session diagnoses the log, remembers an unexplained failure as a
//! candidate, plans, walks the usable strategies until one heals, reads the
//! heal's effect into a typed [`Outcome`], records strategy statistics for
//! what a heal proves at once (a test passing alone), and for a re-run
//! spends the budget and keeps a *pending* record. The next completion of
//! the same job settles it ([`Session::settle`]): breakers, strategy and
//! rule statistics learn from the real result, not from the healer's
//! say-so. Both drivers therefore learn the same things under the same
//! names.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::planner::{self, Plan, StrategyCache, Target};
use super::{breaker, budget, stats};
use crate::caps::ci::{CiBackend, Rerun};
use crate::caps::exec::Wrapped;
use crate::detect::{Analyzer, DetectError, Known};
use crate::intake::platform_name;
use crate::metrics::{self, labels};
use crate::model::{Category, Evidence, Finding, Job};
use crate::runtime::Runtime;
use crate::runtime::healer::{Effect, HealOptions, HealOutcome};
use crate::store::{Store, StoreError, Trees, now_ms};

/// What came of a job, in one word — the same words in `guard exec`'s
/// report and the daemon's job records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The job passed and no heal of it was pending.
    #[default]
    Passed,
    /// The job passed after a heal's re-run.
    Healed,
    /// The job failed again after a heal's re-run.
    HealFailed,
    /// No known failure in the log: nothing to heal.
    Unexplained,
    /// Diagnosed; no strategy could act.
    Diagnosed,
    /// Dry run: the plan was shown, nothing done.
    DryRun,
    /// The failed tests passed alone: flaky, reported as such (never as fixed).
    Flaky,
    /// The failed tests failed again alone: a genuine failure.
    Genuine,
    /// A re-run is scheduled (after the backoff).
    RerunScheduled,
    /// The healer said it re-ran, but no re-run was taken.
    RerunFailed,
    /// The failure was reported (annotation, diagnosis); nothing re-run.
    Annotated,
}

impl Outcome {
    /// Every outcome.
    pub const ALL: [Outcome; 11] = [
        Outcome::Passed,
        Outcome::Healed,
        Outcome::HealFailed,
        Outcome::Unexplained,
        Outcome::Diagnosed,
        Outcome::DryRun,
        Outcome::Flaky,
        Outcome::Genuine,
        Outcome::RerunScheduled,
        Outcome::RerunFailed,
        Outcome::Annotated,
    ];

    /// The word.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Healed => "healed",
            Outcome::HealFailed => "heal-failed",
            Outcome::Unexplained => "unexplained",
            Outcome::Diagnosed => "diagnosed",
            Outcome::DryRun => "dry-run",
            Outcome::Flaky => "flaky",
            Outcome::Genuine => "genuine",
            Outcome::RerunScheduled => "rerun-scheduled",
            Outcome::RerunFailed => "rerun-failed",
            Outcome::Annotated => "annotated",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a session could not finish.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// guard's database failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The log could not be analysed.
    #[error("{0}")]
    Detect(#[from] DetectError),
    /// The log file could not be read.
    #[error("reading the log: {0}")]
    Io(#[from] std::io::Error),
}

/// Seconds before re-run number `attempt` (1-based: the re-run of the
/// first failure waits `base`): doubling per attempt, capped at 2¹⁰ × base,
/// and never less than a delay the healer asked for.
pub fn backoff(base_secs: u64, attempt: u32, asked_secs: u64) -> u64 {
    crate::backoff::exponential(base_secs, attempt.saturating_sub(1), 10).max(asked_secs)
}

/// A heal waiting for the re-run's verdict (tree [`Trees::PENDING`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Pending {
    job_id: String,
    attempt: u32,
    strategy: String,
    category: Category,
    rule: String,
    breaker_key: String,
    /// When the heal was started (ms): a verdict that never comes (the
    /// re-run cancelled, its webhook lost) leaves the record to expire.
    #[serde(default)]
    at_ms: u64,
}

impl Pending {
    /// A heal of job `job_id` started at `at_ms`, for tests elsewhere.
    #[cfg(test)]
    pub(crate) fn started(job_id: &str, at_ms: u64) -> Pending {
        Pending {
            job_id: job_id.into(),
            attempt: 1,
            strategy: "rerun".into(),
            category: Category::Network,
            rule: String::new(),
            breaker_key: String::new(),
            at_ms,
        }
    }

    /// Whether both are the heal of the same attempt of the same job.
    pub(crate) fn same_attempt(&self, other: &Pending) -> bool {
        self.job_id == other.job_id && self.attempt == other.attempt
    }
}

/// The key of a job's pending heal: the job as the next run of it will
/// name it (a new attempt or build keeps platform, repository, name, commit).
fn pending_key(job: &Job) -> String {
    format!(
        "{}\u{1f}{}\u{1f}{}\u{1f}{}",
        platform_name(job.platform),
        job.repository,
        job.job_name,
        job.commit.as_deref().unwrap_or("")
    )
}

/// Forgets heals started before `cutoff_ms` whose verdict never came;
/// returns how many.
pub fn expire_pending(db: &Store, cutoff_ms: u64, now_ms: u64) -> Result<usize, StoreError> {
    db.tree(Trees::PENDING)?
        .expire(cutoff_ms, now_ms, |p| &mut p.at_ms)
}

/// Whether a heal of `job` waits for its verdict (a success of a job with
/// none is of no interest to guard).
pub fn heal_pending(db: &crate::store::Store, job: &Job) -> bool {
    matches!(db.get(Trees::PENDING, &pending_key(job)), Ok(Some(_)))
}

/// A settled heal.
#[derive(Debug, Clone)]
pub struct Settled {
    /// `Healed` or `HealFailed`.
    pub outcome: Outcome,
    /// One line for the report.
    pub note: String,
}

/// A failed job to heal.
#[derive(Debug)]
pub struct Failure<'a> {
    /// The job.
    pub job: &'a Job,
    /// Its log, on disk.
    pub log: &'a Path,
    /// Templates of a passing run of the same job, when known.
    pub baseline: Option<std::collections::HashSet<u64>>,
    /// Working directory for programs healers run.
    pub workdir: Option<PathBuf>,
    /// The command `guard exec` wraps (re-runnable narrowed to tests).
    pub wrapped: Option<Arc<Wrapped>>,
    /// The driver's own reasons to refuse a re-run (`--max-attempts`).
    pub refusals: Vec<String>,
}

/// What a session did with a failed job.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Healing {
    /// In one word.
    pub outcome: Outcome,
    /// Category of the diagnosis.
    pub category: Option<Category>,
    /// Failure type.
    pub failure_type: Option<String>,
    /// Rule that named it.
    pub rule: Option<String>,
    /// Confidence 0–1.
    pub confidence: f32,
    /// Evidence lines.
    pub evidence: Vec<Evidence>,
    /// Strategy that acted.
    pub strategy: Option<String>,
    /// Healer that offered it.
    pub healer: Option<String>,
    /// The healer's summary.
    pub summary: Option<String>,
    /// Actions as the healer reported them.
    pub actions: Vec<String>,
    /// Declines, blocked strategies, annotations, journal answers.
    pub notes: Vec<String>,
    /// Tests that passed alone.
    pub flaky_tests: Vec<String>,
    /// The plan.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
    /// The re-run asked for (scheduled by the platform backend, or for
    /// `guard exec` to run), after budget and breakers allowed it.
    #[serde(skip)]
    pub rerun: Option<Rerun>,
}

/// Makes the backend for one strategy's heal: (healer id, first journal
/// sequence number, backoff seconds).
pub type BackendFor<'a> =
    &'a (dyn Fn(&str, u32, u64) -> Result<Arc<dyn CiBackend>, StoreError> + Send + Sync);

/// Heals failed jobs with one runtime's plugins.
#[derive(Debug)]
pub struct Session {
    runtime: Arc<Runtime>,
    analyzer: Arc<crate::detect::live::Live>,
    strategies: tokio::sync::Mutex<StrategyCache>,
    dry_run: bool,
}

impl Session {
    /// A session; `dry_run` plans and records, and acts on nothing.
    pub fn new(runtime: Arc<Runtime>, analyzer: Arc<Analyzer>, dry_run: bool) -> Session {
        Session::live(runtime, crate::detect::live::Live::new(analyzer), dry_run)
    }

    /// A session whose analyzer may be replaced while it runs (the daemon's).
    pub fn live(
        runtime: Arc<Runtime>,
        analyzer: Arc<crate::detect::live::Live>,
        dry_run: bool,
    ) -> Session {
        Session {
            runtime,
            analyzer,
            strategies: tokio::sync::Mutex::new(StrategyCache::default()),
            dry_run,
        }
    }

    /// Whether this session acts on nothing.
    pub fn dry_run(&self) -> bool {
        self.dry_run
    }

    /// Settles a pending heal of `job` with this completion: breakers,
    /// strategy and rule statistics learn whether the heal worked.
    pub fn settle(&self, job: &Job, passed: bool) -> Result<Option<Settled>, StoreError> {
        let db = self.runtime.db();
        let key = pending_key(job);
        // Nothing to settle: the common case is decided without a
        // transaction (a sled transaction costs two synced log writes).
        let Some(p) = db.get(Trees::PENDING, &key)? else {
            return Ok(None);
        };
        // The same attempt again (a duplicate) says nothing about the heal.
        let same_attempt = |p: &Pending| p.job_id == job.job_id && job.attempt <= p.attempt;
        if same_attempt(&p) {
            return Ok(None);
        }
        // The pending record is taken and the outcome counted together: a
        // process killed in between would otherwise leave the record gone
        // and the outcome uncounted, and of two replicas settling the same
        // completion exactly one counts it.
        let trees = [
            Trees::PENDING.name(),
            Trees::BREAKERS.name(),
            Trees::STATS.name(),
            Trees::RULE_STATS.name(),
        ];
        let settled = db.atomically(&trees, |tx| {
            let pending = tx.tree(Trees::PENDING)?;
            let Some(p) = pending.get(&key)? else {
                return Ok(None);
            };
            if same_attempt(&p) {
                return Ok(None);
            }
            pending.remove(&key)?;
            breaker::record_in(&tx.tree(Trees::BREAKERS)?, &p.breaker_key, passed)?;
            stats::record_in(&tx.tree(Trees::STATS)?, p.category, &p.strategy, passed)?;
            crate::learn::rule_stats::healed_in(
                &tx.tree(Trees::RULE_STATS)?,
                &p.rule,
                &p.strategy,
                passed,
            )?;
            Ok(Some(p))
        })?;
        let Some(p) = settled else {
            return Ok(None);
        };
        count_heal(&p.strategy, if passed { "worked" } else { "did-not-work" });
        Ok(Some(Settled {
            outcome: if passed {
                Outcome::Healed
            } else {
                Outcome::HealFailed
            },
            note: format!(
                "the earlier {} ({}) {}",
                p.strategy,
                p.category,
                if passed {
                    "worked: this attempt passed"
                } else {
                    "did not work: this attempt failed too"
                }
            ),
        }))
    }

    /// Diagnoses and heals a failed job.
    pub async fn heal(
        &self,
        failure: Failure<'_>,
        backend_for: BackendFor<'_>,
    ) -> Result<Healing, SessionError> {
        let job = failure.job;
        let db = self.runtime.db();
        let file = std::fs::File::open(failure.log)?;
        let report = self
            .analyzer
            .get()
            .analyze_with(
                std::io::BufReader::new(file),
                job,
                // The job failed: the verdict is never "no failure".
                Known {
                    baseline: failure.baseline,
                    failed: true,
                },
                &mut |_| {},
            )
            .await?;
        let d = report.diagnosis;
        let mut h = Healing {
            confidence: d.confidence,
            evidence: d.evidence.clone(),
            failure_type: d.failure_type.clone(),
            rule: d.rule.clone(),
            category: d.category,
            notes: report
                .plugin_errors
                .iter()
                .map(|e| format!("detector failed: {e}"))
                .collect(),
            ..Healing::default()
        };
        let detected = d.category.map_or("none", Category::as_str);
        metrics::get()
            .detections
            .get_or_create(&labels(&[("category", detected)]))
            .inc();
        let Some(category) = d.category else {
            h.outcome = Outcome::Unexplained;
            h.notes
                .push("no known failure in the log: nothing to heal".into());
            // Remember its failure line as a candidate template (`guard
            // patterns candidates`).
            if let Ok(bytes) = std::fs::read(failure.log)
                && let Ok(Some(c)) = crate::learn::candidates::mine_log(db, &job.job_name, &bytes)
            {
                h.notes.push(format!(
                    "unexplained failure recorded as candidate {}",
                    c.id
                ));
            }
            return Ok(h);
        };
        if let Some(rule) = &d.rule {
            crate::learn::rule_stats::fired(db, rule)?;
        }
        h.outcome = Outcome::Diagnosed;
        let Some(first) = d.findings.first() else {
            return Ok(h);
        };
        let mut finding: Finding = first.finding.clone();
        // Facts of agreeing findings (the failed tests' names from the
        // detector) travel with the primary finding.
        finding.facts = d.facts.clone();
        let target = Target {
            repository: job.repository.clone(),
            job: job.job_name.clone(),
            commit: job.commit.clone().unwrap_or_else(|| "unknown".into()),
            attempt: job.attempt,
        };
        let mut plan = {
            let mut cache = self.strategies.lock().await;
            planner::plan(&self.runtime, &mut cache, &finding, &target).await
        };
        if !failure.refusals.is_empty() {
            let why = failure.refusals.join("; ");
            for s in plan
                .steps
                .iter_mut()
                .filter(|s| s.retries && s.blocked.is_none())
            {
                s.blocked = Some(why.clone());
            }
        }
        for s in plan.steps.iter().filter(|s| s.blocked.is_some()) {
            h.notes.push(format!(
                "{} not used: {}",
                s.strategy,
                s.blocked.as_deref().unwrap_or("")
            ));
        }
        let backoff_secs = backoff(self.runtime.config().heal.backoff_base_secs, job.attempt, 0);
        for (i, step) in plan.usable().enumerate() {
            let Some(plugin) = self
                .runtime
                .plugins()
                .iter()
                .find(|p| p.id() == step.healer)
                .cloned()
            else {
                continue;
            };
            let backend = backend_for(plugin.id(), (i as u32).saturating_mul(1000), backoff_secs)?;
            // The host enforces the re-run rules on what the healer does,
            // not on what its strategy declared.
            let mut refused =
                planner::rerun_blocked(&self.runtime, category, &target, &step.strategy);
            refused.extend(failure.refusals.iter().cloned());
            let options = HealOptions {
                dry_run: self.dry_run,
                workdir: failure.workdir.clone(),
                backend: Some(backend.clone()),
                wrapped: failure.wrapped.clone(),
                rerun_refused: (!refused.is_empty()).then(|| refused.join("; ")),
            };
            let result = self
                .runtime
                .heal(&plugin, &step.strategy, job, &finding, &options)
                .await;
            h.notes.extend(backend.take_notes());
            let (summary, actions, effect, facts, passed_alone) = match result {
                Err(e) => {
                    h.notes.push(format!("{}: {e}", step.strategy));
                    count_heal(&step.strategy, "error");
                    continue;
                }
                Ok(HealOutcome::Declined(why)) => {
                    h.notes.push(format!("{} declined: {why}", step.strategy));
                    count_heal(&step.strategy, "declined");
                    continue;
                }
                Ok(HealOutcome::Done {
                    summary,
                    actions,
                    effect,
                    facts,
                    passed_alone,
                }) => (summary, actions, effect, facts, passed_alone),
            };
            h.strategy = Some(step.strategy.clone());
            h.healer = Some(step.healer.clone());
            h.summary = Some(summary);
            h.actions = actions;
            let rerun = backend.rerun().filter(|_| !self.dry_run);
            // Under `guard exec` a flaky verdict turns a failed step green,
            // so it rests on what the host saw pass alone, not on the
            // healer's word (elsewhere it only names what was found).
            let verified = failure.wrapped.is_none() || !passed_alone.is_empty();
            h.outcome = match effect {
                _ if self.dry_run => Outcome::DryRun,
                Effect::PassedInIsolation if !verified => {
                    h.notes.push(format!(
                        "{} said the failed tests passed alone, but guard saw no narrowed run of them pass: not called flaky",
                        step.strategy
                    ));
                    Outcome::Annotated
                }
                Effect::PassedInIsolation => Outcome::Flaky,
                Effect::FailedInIsolation => Outcome::Genuine,
                _ if rerun.is_some() => Outcome::RerunScheduled,
                Effect::Rerun => Outcome::RerunFailed,
                Effect::Reported => Outcome::Annotated,
            };
            let named = |key: &str| {
                facts
                    .iter()
                    .filter(|(k, _)| k == key)
                    .map(|(_, v)| v.clone())
                    .collect::<Vec<_>>()
            };
            match h.outcome {
                // A test run alone proves at once whether the strategy
                // worked: no re-run to wait for.
                Outcome::Flaky | Outcome::Genuine if !self.dry_run => {
                    let worked = h.outcome == Outcome::Flaky;
                    stats::record(db, category, &step.strategy, worked)?;
                    crate::learn::rule_stats::healed(
                        db,
                        d.rule.as_deref().unwrap_or_default(),
                        &step.strategy,
                        worked,
                    )?;
                    if worked {
                        h.flaky_tests = if passed_alone.is_empty() {
                            named("flaky-test")
                        } else {
                            passed_alone.clone()
                        };
                    }
                }
                Outcome::RerunScheduled => {
                    let pending = Pending {
                        job_id: job.job_id.clone(),
                        attempt: job.attempt,
                        strategy: step.strategy.clone(),
                        category,
                        rule: d.rule.clone().unwrap_or_default(),
                        breaker_key: breaker::key(&target.repository, &target.job, &step.strategy),
                        at_ms: now_ms(),
                    };
                    budget::spend_once(
                        db,
                        &pending_key(job),
                        &pending,
                        (&target.repository, &target.job, &target.commit),
                    )?;
                    h.rerun = rerun;
                }
                _ => {}
            }
            count_heal(&step.strategy, h.outcome.as_str());
            break;
        }
        h.plan = Some(plan);
        Ok(h)
    }
}

fn count_heal(strategy: &str, outcome: &str) {
    metrics::get()
        .heals
        .get_or_create(&labels(&[("strategy", strategy), ("outcome", outcome)]))
        .inc();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_per_attempt_caps_and_honours_a_longer_ask() {
        assert_eq!(backoff(5, 1, 0), 5);
        assert_eq!(backoff(5, 2, 0), 10);
        assert_eq!(backoff(5, 3, 0), 20);
        assert_eq!(backoff(5, 50, 0), 5 * 1024);
        assert_eq!(backoff(5, 1, 60), 60);
        assert_eq!(backoff(u64::MAX, 9, 0), u64::MAX);
    }

    #[test]
    fn outcome_words_are_the_serialised_names() {
        for o in Outcome::ALL {
            assert_eq!(
                serde_json::to_value(o).unwrap(),
                serde_json::Value::String(o.as_str().into())
            );
        }
    }
}
