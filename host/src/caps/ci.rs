//! `guard:plugin/ci`: actions on the CI platform, each behind its own grant
//! and always scoped to the job of the current call. In dry-run mode the
//! action is audited as `dry-run` and reported as planned, not performed.
//!
//! One backend trait, [`CiBackend`], two implementations: the local one
//! (`guard exec`, [`crate::heal::local`]) turns actions into requests its
//! loop carries out — a re-run runs the command again, an annotation is
//! printed; the daemon's performs them through the platform's API (re-runs
//! are scheduled with backoff and journaled so a restart never repeats
//! one). When no backend is attached to a call, a granted action answers
//! `unavailable`: guard never reports an action it did not take.

use crate::caps::grants::{CiAction, Grant};
use crate::model::Job;
use crate::runtime::bindings::ci::Host;
use crate::runtime::bindings::types::Error;
use crate::runtime::state::PluginState;

/// A CI action as a platform backend carries it out.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum CiRequest {
    /// Re-run the job, not before `delay_secs`.
    Rerun {
        /// Minimum delay asked by the healer.
        delay_secs: u32,
        /// Ask the platform for debug logs.
        debug_logging: bool,
        /// Extra environment for the re-run (only where
        /// [`CiBackend::rerun_env`] says the backend can set it).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        env: Vec<(String, String)>,
    },
    /// Re-run every failed job of the run.
    RerunFailed {
        /// Ask the platform for debug logs.
        debug_logging: bool,
    },
    /// Delete CI caches whose key starts with `prefix`.
    ClearCaches {
        /// Key prefix.
        prefix: String,
    },
    /// Cancel the run.
    Cancel,
    /// Show a note to people.
    Annotate {
        /// Title.
        title: String,
        /// Markdown body.
        body: String,
    },
}

/// A re-run a heal asked for: scheduled on the platform, or to be run by
/// `guard exec`'s loop.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rerun {
    /// Seconds before it runs (the backoff, or the healer's longer delay).
    pub delay_secs: u64,
    /// Extra environment (local re-runs only).
    pub env: Vec<(String, String)>,
}

/// Carries out granted CI actions for one heal: the daemon's backend on a
/// real platform, the local one for `guard exec`. `perform` returns the
/// count for `clear-caches`, 0 otherwise.
#[async_trait::async_trait]
pub trait CiBackend: Send + Sync + std::fmt::Debug {
    /// Performs `request` for `job`; the error is what the plugin sees.
    async fn perform(&self, job: &Job, request: CiRequest) -> Result<u32, Error>;
    /// Whether a re-run can carry extra environment (platforms re-run a
    /// job with its own).
    fn rerun_env(&self) -> bool {
        false
    }
    /// The re-run this heal asked for, when it did (and did not cancel).
    fn rerun(&self) -> Option<Rerun>;
    /// Notes for the report (annotations shown locally, actions answered
    /// from the journal after a restart).
    fn take_notes(&self) -> Vec<String> {
        Vec::new()
    }
}

impl PluginState {
    /// Grant check, job scope, dry-run and audit for a ci action, then the
    /// action through whichever backend the call has.
    async fn ci_action(
        &mut self,
        action: CiAction,
        detail: String,
        request: CiRequest,
    ) -> Result<u32, Error> {
        self.require(&Grant::Ci(action))?;
        if matches!(action, CiAction::RerunJob | CiAction::RerunFailedJobs) {
            self.gate_rerun(action)?;
        }
        let Some(job) = self.ctx.job.clone() else {
            return Err(Error::Invalid(format!(
                "ci.{} needs a job being healed; this call has none",
                action.name()
            )));
        };
        let target = format!(
            "{:?} {} run {} job {} ({detail})",
            job.platform, job.repository, job.run_id, job.job_id
        );
        let name = format!("ci.{}", action.name());
        if self.ctx.dry_run {
            self.audit(&name, &target, "dry-run");
            return Ok(0);
        }
        if let Some(backend) = self.ctx.backend.clone() {
            let result = backend.perform(&job, request).await;
            match &result {
                Ok(_) => self.audit(&name, &target, "done"),
                Err(e) => self.audit(&name, &target, &format!("failed: {e:?}")),
            }
            return result;
        }
        let message = format!(
            "no CI platform backend is attached for {:?} jobs in this command",
            job.platform
        );
        self.audit(&name, &target, &format!("failed: {message}"));
        Err(Error::Unavailable(message))
    }
}

impl PluginState {
    /// The host's own re-run rules, applied to what a healer *does*: a
    /// strategy that declared no re-runs and asks for one anyway meets the
    /// same category rule, attempt cap, budget and breaker as one that
    /// declared them, and one heal gets one re-run.
    fn gate_rerun(&mut self, action: CiAction) -> Result<(), Error> {
        let refused = match self.ctx.rerun_refused.clone() {
            Some(why) => Some(format!("ci.{} refused for this job: {why}", action.name())),
            None => self
                .ctx
                .reruns_left
                .fetch_update(
                    std::sync::atomic::Ordering::SeqCst,
                    std::sync::atomic::Ordering::SeqCst,
                    |n| n.checked_sub(1),
                )
                .is_err()
                .then(|| "one heal may ask for one re-run; this one already did".to_string()),
        };
        match refused {
            Some(message) => {
                let subject = format!("ci.{}", action.name());
                Err(self.refuse(
                    "rerun-refused",
                    &subject,
                    (&subject, "call refused"),
                    message,
                ))
            }
            None => Ok(()),
        }
    }
}

impl Host for PluginState {
    async fn rerun_job(&mut self, debug_logging: bool) -> wasmtime::Result<Result<(), Error>> {
        Ok(self
            .ci_action(
                CiAction::RerunJob,
                format!("debug-logging={debug_logging}"),
                CiRequest::Rerun {
                    delay_secs: 0,
                    debug_logging,
                    env: Vec::new(),
                },
            )
            .await
            .map(drop))
    }

    async fn rerun_job_with_env(
        &mut self,
        env: Vec<(String, String)>,
    ) -> wasmtime::Result<Result<(), Error>> {
        if env.len() > 32
            || env
                .iter()
                .any(|(k, v)| k.len() + v.len() > 4096 || v.contains('\0'))
        {
            return Ok(Err(Error::Invalid(
                "at most 32 variables of at most 4 KiB, without NUL".into(),
            )));
        }
        // Each value is checked against what its variable is for: a re-run
        // grant must never become code execution through the environment.
        for (k, v) in &env {
            if let Err(why) = crate::caps::tuning::check(k, v) {
                let detail = format!("{k}={v}");
                return Ok(Err(self.refuse(
                    "env-refused",
                    k,
                    ("ci.rerun-job-with-env", &detail),
                    why,
                )));
            }
        }
        if !self.ctx.dry_run && self.ctx.backend.as_ref().is_some_and(|b| !b.rerun_env()) {
            // CI platforms re-run a job with its own environment.
            let _ = self.require(&Grant::Ci(CiAction::RerunJob));
            return Ok(Err(Error::Unavailable(
                "this platform cannot change a re-run's environment".into(),
            )));
        }
        let shown = env
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        Ok(self
            .ci_action(
                CiAction::RerunJob,
                shown,
                CiRequest::Rerun {
                    delay_secs: 0,
                    debug_logging: false,
                    env,
                },
            )
            .await
            .map(drop))
    }

    async fn rerun_failed_jobs(&mut self) -> wasmtime::Result<Result<(), Error>> {
        Ok(self
            .ci_action(
                CiAction::RerunFailedJobs,
                String::new(),
                CiRequest::RerunFailed {
                    debug_logging: false,
                },
            )
            .await
            .map(drop))
    }

    async fn clear_caches(&mut self, key_prefix: String) -> wasmtime::Result<Result<u32, Error>> {
        if key_prefix.len() > 512 {
            return Ok(Err(Error::Invalid(
                "key prefix longer than 512 bytes".into(),
            )));
        }
        Ok(self
            .ci_action(
                CiAction::ClearCaches,
                format!("prefix={key_prefix:?}"),
                CiRequest::ClearCaches { prefix: key_prefix },
            )
            .await)
    }

    async fn cancel(&mut self) -> wasmtime::Result<Result<(), Error>> {
        Ok(self
            .ci_action(CiAction::Cancel, String::new(), CiRequest::Cancel)
            .await
            .map(drop))
    }

    async fn annotate(
        &mut self,
        title: String,
        body: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        if title.len() > 1024 || body.len() > 64 * 1024 {
            return Ok(Err(Error::Limited(
                "annotation title ≤ 1 KiB and body ≤ 64 KiB".into(),
            )));
        }
        let detail = format!("title={title:?}");
        Ok(self
            .ci_action(
                CiAction::Annotate,
                detail,
                CiRequest::Annotate { title, body },
            )
            .await
            .map(drop))
    }

    async fn schedule_rerun(
        &mut self,
        delay_secs: u32,
        debug_logging: bool,
    ) -> wasmtime::Result<Result<(), Error>> {
        Ok(self
            .ci_action(
                CiAction::RerunJob,
                format!("after {delay_secs}s, debug-logging={debug_logging}"),
                CiRequest::Rerun {
                    delay_secs,
                    debug_logging,
                    env: Vec::new(),
                },
            )
            .await
            .map(drop))
    }
}
