//! Processing one queued event: expand a failed run into its failed jobs,
//! settle the pending heal of a completed job, and hand a failed job's log
//! to the [`Session`](crate::heal::Session) that diagnoses and heals it —
//! the same session `guard exec` drives. What is daemon-specific lives
//! here: fetching the log from the platform, and a backend per heal that
//! journals each CI action of the event.

use std::sync::Arc;

use super::Daemon;
use super::backend::DaemonBackend;
use super::queue::{JobRecord, QueuedEvent};
use crate::caps::ci::CiBackend;
use crate::heal::session::{Failure, Healing, SessionError};
use crate::intake::{EventKind, JobStatus};
use crate::model::Job;
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
    /// Diagnosis or healing failed.
    #[error("{0}")]
    Session(#[from] SessionError),
    /// Local I/O (temporary log file).
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl Daemon {
    /// Processes one event into its record.
    pub(crate) async fn process(&self, ev: &QueuedEvent) -> Result<JobRecord, ProcessError> {
        if let Some(record) = self.queue.done(ev)? {
            // Processed before a crash; only its leaving the queue was lost.
            return Ok(record);
        }
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
                            record.outcome = crate::heal::Outcome::Passed.as_str().into();
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
        if let Some(settled) = self.session.settle(job, status == JobStatus::Succeeded)? {
            record.outcome = settled.outcome.as_str().into();
            record.notes.push(settled.note);
        }
        Ok(())
    }

    async fn diagnose_and_heal(
        &self,
        event_id: u64,
        job: &Job,
        record: &mut JobRecord,
    ) -> Result<(), ProcessError> {
        let adapter = self.platforms.get(job.platform)?;
        // One file per event in the daemon's own scratch directory (made
        // once: a directory per event cost 5% of the daemon's time).
        let scratch = Scratch(self.scratch.path().join(format!("{event_id}.log")));
        let path = scratch.0.clone();
        let download = adapter
            .fetch_log(job, &path, self.runtime.config().server.max_log_bytes)
            .await?;
        record.log_bytes = download.bytes;
        if download.truncated {
            record
                .notes
                .push("the log was cut at [server] max_log_bytes".into());
        }
        let backend_for = |plugin: &str, first_seq: u32, backoff: u64| {
            DaemonBackend::new(
                self.platforms.clone(),
                self.runtime.db(),
                self.schedule.clone(),
                event_id,
                plugin,
                first_seq,
                backoff,
            )
            .map(|b| Arc::new(b) as Arc<dyn CiBackend>)
        };
        let healing = self
            .session
            .heal(
                Failure {
                    job,
                    log: &path,
                    baseline: None,
                    workdir: None,
                    wrapped: None,
                    refusals: Vec::new(),
                },
                &backend_for,
            )
            .await?;
        fill(record, healing);
        Ok(())
    }
}

/// A job record from what the session did.
fn fill(record: &mut JobRecord, h: Healing) {
    record.outcome = h.outcome.as_str().into();
    record.category = h.category.map(|c| c.to_string());
    record.confidence = h.confidence;
    record.evidence = h.evidence;
    record.failure_type = h.failure_type;
    record.rule = h.rule;
    record.strategy = h.strategy;
    record.healer = h.healer;
    record.summary = h.summary;
    record.actions = h.actions;
    record.flaky_tests = h.flaky_tests;
    record.notes.extend(h.notes);
    if let Some(r) = h.rerun {
        record
            .notes
            .push(format!("re-run scheduled in {} s", r.delay_secs));
    }
}

/// A downloaded log, removed when the event is done with it.
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
