//! `guard:plugin/ci`: actions on the CI platform, each behind its own grant
//! and always scoped to the job of the current call. In dry-run mode the
//! action is audited as `dry-run` and reported as planned, not performed.
//!
//! Platform backends (GitHub, GitLab, Jenkins, local) attach here; until one
//! is attached to a call, a granted action answers `unavailable` — guard
//! never reports an action it did not take.

use crate::caps::grants::{CiAction, Grant};
use crate::runtime::bindings::ci::Host;
use crate::runtime::bindings::types::Error;
use crate::runtime::state::PluginState;

impl PluginState {
    fn ci_action(&mut self, action: CiAction, detail: String) -> Result<(), Error> {
        self.require(&Grant::Ci(action))?;
        let Some(job) = self.ctx.job.as_ref() else {
            return Err(Error::Invalid(format!(
                "ci.{} needs a job being healed; this call has none",
                action.name()
            )));
        };
        let target = format!(
            "{:?} {} run {} job {} ({detail})",
            job.platform, job.repository, job.run_id, job.job_id
        );
        if self.ctx.dry_run {
            self.audit(&format!("ci.{}", action.name()), &target, "dry-run");
            return Ok(());
        }
        let message = format!(
            "no CI platform backend is attached for {:?} jobs in this command",
            job.platform
        );
        self.audit(
            &format!("ci.{}", action.name()),
            &target,
            &format!("failed: {message}"),
        );
        Err(Error::Unavailable(message))
    }
}

impl Host for PluginState {
    async fn rerun_job(&mut self, debug_logging: bool) -> wasmtime::Result<Result<(), Error>> {
        Ok(self.ci_action(CiAction::RerunJob, format!("debug-logging={debug_logging}")))
    }

    async fn rerun_failed_jobs(&mut self) -> wasmtime::Result<Result<(), Error>> {
        Ok(self.ci_action(CiAction::RerunFailedJobs, String::new()))
    }

    async fn clear_caches(&mut self, key_prefix: String) -> wasmtime::Result<Result<u32, Error>> {
        if key_prefix.len() > 512 {
            return Ok(Err(Error::Invalid(
                "key prefix longer than 512 bytes".into(),
            )));
        }
        Ok(self
            .ci_action(CiAction::ClearCaches, format!("prefix={key_prefix:?}"))
            .map(|()| 0))
    }

    async fn cancel(&mut self) -> wasmtime::Result<Result<(), Error>> {
        Ok(self.ci_action(CiAction::Cancel, String::new()))
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
        Ok(self.ci_action(CiAction::Annotate, format!("title={title:?}")))
    }

    async fn schedule_rerun(
        &mut self,
        delay_secs: u32,
        debug_logging: bool,
    ) -> wasmtime::Result<Result<(), Error>> {
        Ok(self.ci_action(
            CiAction::RerunJob,
            format!("after {delay_secs}s, debug-logging={debug_logging}"),
        ))
    }
}
