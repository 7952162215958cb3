//! Processing one queued event: fetch the log, diagnose, plan, heal, and
//! learn from the outcome of earlier heals.
//!
//! Heal feedback: when a heal schedules a re-run, a `pending` record keyed
//! by (platform, repository, job name, commit) remembers the strategy.
//! The next completion of that job (a later attempt or a new build id)
//! tells whether it worked: breakers, strategy statistics and rule
//! statistics learn from real outcomes, not from the healer's say-so.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::Daemon;
use super::backend::DaemonBackend;
use super::queue::{JobRecord, QueuedEvent};
use crate::heal::planner::{self, Target};
use crate::heal::{breaker, budget, stats};
use crate::intake::{EventKind, JobStatus, platform_name};
use crate::metrics::{self, labels};
use crate::model::{Category, Finding, Job};
use crate::runtime::healer::{Effect, HealOptions, HealOutcome};
use crate::store::now_ms;

/// Why processing failed (the event is retried, then dead-lettered).
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The platform could not be reached or refused.
    #[error("{0}")]
    Platform(#[from] crate::platform::PlatformError),
    /// The database failed.
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
    /// The log could not be analysed.
    #[error("{0}")]
    Detect(#[from] crate::detect::DetectError),
    /// Local I/O (temporary log file).
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A heal waiting for the re-run's verdict.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending {
    job_id: String,
    attempt: u32,
    strategy: String,
    category: Category,
    rule: String,
    breaker_key: String,
}

/// Whether a heal of `job` waits for its verdict (a success of a job with
/// none is of no interest to guard).
pub fn heal_pending(db: &crate::store::Store, job: &Job) -> bool {
    matches!(
        db.get_json::<Pending>("pending", &pending_key(job)),
        Ok(Some(_))
    )
}

fn pending_key(job: &Job) -> String {
    format!(
        "{}\u{1f}{}\u{1f}{}\u{1f}{}",
        platform_name(job.platform),
        job.repository,
        job.job_name,
        job.commit.as_deref().unwrap_or("")
    )
}

impl Daemon {
    /// Processes one event into its record.
    pub(crate) async fn process(&self, ev: &QueuedEvent) -> Result<JobRecord, ProcessError> {
        let mut record = JobRecord {
            id: ev.id,
            job: ev.event.job().clone(),
            received_ms: ev.received_ms,
            ..JobRecord::default()
        };
        match &ev.event {
            EventKind::RunFailed { run } => {
                record.status = "run-failed".into();
                let adapter = self.platforms.get(run.platform)?;
                let jobs = adapter.failed_jobs(run).await?;
                let events: Vec<EventKind> = jobs
                    .into_iter()
                    .map(|job| EventKind::JobCompleted {
                        job,
                        status: JobStatus::Failed,
                    })
                    .collect();
                let ids = self
                    .queue
                    .insert_events(&events, &format!("run:{}", ev.id))?;
                record.outcome = "expanded".into();
                record.notes.push(format!(
                    "{} failed job(s) in the run; {} queued (the others were already known)",
                    events.len(),
                    ids.len()
                ));
                self.wake.notify_one();
            }
            EventKind::JobCompleted { job, status } => {
                self.feedback(job, *status, &mut record)?;
                match status {
                    JobStatus::Succeeded => {
                        record.status = "succeeded".into();
                        if record.outcome.is_empty() {
                            record.outcome = "passed".into();
                        }
                    }
                    JobStatus::Failed => {
                        record.status = "failed".into();
                        self.diagnose_and_heal(ev.id, job, &mut record).await?;
                    }
                }
            }
        }
        record.processed_ms = now_ms();
        Ok(record)
    }

    /// Settles a pending heal of this job with this completion's verdict.
    fn feedback(
        &self,
        job: &Job,
        status: JobStatus,
        record: &mut JobRecord,
    ) -> Result<(), ProcessError> {
        let db = self.runtime.db();
        let key = pending_key(job);
        let Some(p) = db.get_json::<Pending>("pending", &key)? else {
            return Ok(());
        };
        // The same attempt again (a duplicate) says nothing about the heal.
        if p.job_id == job.job_id && job.attempt <= p.attempt {
            return Ok(());
        }
        let worked = status == JobStatus::Succeeded;
        breaker::record(db, &p.breaker_key, worked)?;
        stats::record(db, p.category, &p.strategy, worked)?;
        crate::learn::rule_stats::healed(db, &p.rule, &p.strategy, worked)?;
        db.remove_json("pending", &key)?;
        record.outcome = if worked { "heal-worked" } else { "heal-failed" }.into();
        record.notes.push(format!(
            "the earlier {} ({}) {}",
            p.strategy,
            p.category,
            if worked {
                "worked: this attempt passed"
            } else {
                "did not work: this attempt failed too"
            }
        ));
        metrics::get()
            .heals
            .get_or_create(&labels(&[
                ("strategy", &p.strategy),
                ("outcome", if worked { "worked" } else { "did-not-work" }),
            ]))
            .inc();
        Ok(())
    }

    async fn diagnose_and_heal(
        &self,
        event_id: u64,
        job: &Job,
        record: &mut JobRecord,
    ) -> Result<(), ProcessError> {
        let adapter = self.platforms.get(job.platform)?;
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("job.log");
        let download = adapter
            .fetch_log(job, &path, self.runtime.config().server.max_log_bytes)
            .await?;
        record.log_bytes = download.bytes;
        if download.truncated {
            record
                .notes
                .push("the log was cut at [server] max_log_bytes".into());
        }
        let file = std::fs::File::open(&path)?;
        let report = self
            .analyzer
            .analyze_with(
                std::io::BufReader::new(file),
                job,
                // The run failed: the verdict is never "no failure".
                crate::detect::Known {
                    baseline: None,
                    failed: true,
                },
                &mut |_| {},
            )
            .await?;
        for e in &report.plugin_errors {
            record.notes.push(format!("detector failed: {e}"));
        }
        let d = report.diagnosis;
        record.confidence = d.confidence;
        record.evidence = d.evidence.clone();
        record.failure_type = d.failure_type.clone();
        record.rule = d.rule.clone();
        let Some(category) = d.category else {
            record.outcome = "unexplained".into();
            record
                .notes
                .push("no known failure in the log: nothing to heal".into());
            metrics::get()
                .detections
                .get_or_create(&labels(&[("category", "none")]))
                .inc();
            if let Ok(bytes) = std::fs::read(&path)
                && let Ok(Some(c)) =
                    crate::learn::candidates::mine_log(self.runtime.db(), &job.job_name, &bytes)
            {
                record.notes.push(format!(
                    "unexplained failure recorded as candidate {}",
                    c.id
                ));
            }
            return Ok(());
        };
        record.category = Some(category.to_string());
        metrics::get()
            .detections
            .get_or_create(&labels(&[("category", category.as_str())]))
            .inc();
        if let Some(rule) = &d.rule {
            crate::learn::rule_stats::fired(self.runtime.db(), rule)?;
        }
        let Some(first) = d.findings.first() else {
            record.outcome = "diagnosed".into();
            return Ok(());
        };
        let mut finding: Finding = first.finding.clone();
        finding.facts = d.facts.clone();
        let target = Target {
            repository: job.repository.clone(),
            job: job.job_name.clone(),
            commit: job.commit.clone().unwrap_or_else(|| "unknown".into()),
            attempt: job.attempt,
        };
        let plan = {
            let mut cache = self.strategies.lock().await;
            planner::plan(&self.runtime, &mut cache, &finding, &target).await
        };
        for s in plan.steps.iter().filter(|s| s.blocked.is_some()) {
            record.notes.push(format!(
                "{} not used: {}",
                s.strategy,
                s.blocked.as_deref().unwrap_or("")
            ));
        }
        let heal = &self.runtime.config().heal;
        let backoff = heal
            .backoff_base_secs
            .saturating_mul(1u64 << job.attempt.saturating_sub(1).min(10));
        record.outcome = "diagnosed".into();
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
            let backend = Arc::new(DaemonBackend::new(
                self.platforms.clone(),
                self.runtime.db(),
                self.schedule.clone(),
                event_id,
                plugin.id(),
                (i as u32) * 1000,
                backoff,
            )?);
            let refused =
                planner::rerun_blocked(&self.runtime, finding.category, &target, &step.strategy);
            let options = HealOptions {
                dry_run: self.dry_run,
                workdir: None,
                local: None,
                backend: Some(backend.clone()),
                rerun_refused: (!refused.is_empty()).then(|| refused.join("; ")),
            };
            let outcome = self
                .runtime
                .heal(&plugin, &step.strategy, job, &finding, &options)
                .await;
            record.notes.extend(backend.take_notes());
            match outcome {
                Err(e) => {
                    record.notes.push(format!("{}: {e}", step.strategy));
                    metrics::get()
                        .heals
                        .get_or_create(&labels(&[
                            ("strategy", &step.strategy),
                            ("outcome", "error"),
                        ]))
                        .inc();
                }
                Ok(HealOutcome::Declined(why)) => {
                    record
                        .notes
                        .push(format!("{} declined: {why}", step.strategy));
                    metrics::get()
                        .heals
                        .get_or_create(&labels(&[
                            ("strategy", &step.strategy),
                            ("outcome", "declined"),
                        ]))
                        .inc();
                }
                Ok(HealOutcome::Done {
                    summary,
                    actions,
                    effect,
                    facts,
                }) => {
                    record.strategy = Some(step.strategy.clone());
                    record.healer = Some(step.healer.clone());
                    record.summary = Some(summary);
                    record.actions = actions;
                    record.outcome = match effect {
                        _ if self.dry_run => "dry-run",
                        Effect::PassedInIsolation => "flaky",
                        _ if backend.rerun_scheduled() => "rerun-scheduled",
                        Effect::Rerun => "rerun-failed",
                        Effect::FailedInIsolation | Effect::Reported => "annotated",
                    }
                    .into();
                    if effect == Effect::PassedInIsolation {
                        record.flaky_tests = facts
                            .iter()
                            .filter(|(k, _)| k == "flaky-test")
                            .map(|(_, v)| v.clone())
                            .collect();
                    }
                    if backend.rerun_scheduled() && !self.dry_run {
                        let t = &target;
                        budget::spend(self.runtime.db(), &t.repository, &t.job, &t.commit)?;
                        self.runtime.db().put_json(
                            "pending",
                            &pending_key(job),
                            &Pending {
                                job_id: job.job_id.clone(),
                                attempt: job.attempt,
                                strategy: step.strategy.clone(),
                                category,
                                rule: d.rule.clone().unwrap_or_default(),
                                breaker_key: breaker::key(&t.repository, &t.job, &step.strategy),
                            },
                        )?;
                        record
                            .notes
                            .push(format!("re-run scheduled in {backoff} s"));
                    }
                    metrics::get()
                        .heals
                        .get_or_create(&labels(&[
                            ("strategy", &step.strategy),
                            ("outcome", record.outcome.as_str()),
                        ]))
                        .inc();
                    break;
                }
            }
        }
        Ok(())
    }
}
