//! `guard:plugin/ci`: actions on the CI platform, each behind its own grant
//! and always scoped to the job of the current call. In dry-run mode the
//! action is audited as `dry-run` and reported as planned, not performed.
//!
//! Backends: the local one (`guard exec`) turns actions into requests that
//! the exec loop carries out — a re-run runs the command again, an
//! annotation is printed. When no backend is attached to a call, a granted
//! action answers `unavailable`: guard never reports an action it did not take.

use crate::caps::grants::{CiAction, Grant};
use crate::runtime::bindings::ci::Host;
use crate::runtime::bindings::types::Error;
use crate::runtime::state::{LocalRequest, PluginState};

/// Environment variables a healer may set for a re-run: tuning knobs of
/// common tools, nothing that changes what is built or where it comes from.
pub const TUNING_ENV: &[&str] = &[
    "NODE_OPTIONS",
    "MAVEN_OPTS",
    "GRADLE_OPTS",
    "JAVA_TOOL_OPTIONS",
    "CARGO_BUILD_JOBS",
    "MAKEFLAGS",
    "CMAKE_BUILD_PARALLEL_LEVEL",
    "GOMAXPROCS",
    "GOFLAGS",
    "PYTEST_XDIST_AUTO_NUM_WORKERS",
    "JEST_WORKERS",
    "RUST_TEST_THREADS",
    "RUST_MIN_STACK",
];

impl PluginState {
    /// Grant check, job scope, dry-run and audit for a ci action; returns
    /// the request for the local backend when one is attached.
    fn ci_action(
        &mut self,
        action: CiAction,
        detail: String,
        request: Option<LocalRequest>,
    ) -> Result<(), Error> {
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
        let name = format!("ci.{}", action.name());
        if self.ctx.dry_run {
            self.audit(&name, &target, "dry-run");
            return Ok(());
        }
        if let Some(local) = self.ctx.local.clone() {
            if let Some(r) = request {
                local.push(r);
            }
            self.audit(&name, &target, "done");
            return Ok(());
        }
        let message = format!(
            "no CI platform backend is attached for {:?} jobs in this command",
            job.platform
        );
        self.audit(&name, &target, &format!("failed: {message}"));
        Err(Error::Unavailable(message))
    }
}

impl Host for PluginState {
    async fn rerun_job(&mut self, debug_logging: bool) -> wasmtime::Result<Result<(), Error>> {
        Ok(self.ci_action(
            CiAction::RerunJob,
            format!("debug-logging={debug_logging}"),
            Some(LocalRequest::Rerun {
                delay_secs: 0,
                env: Vec::new(),
            }),
        ))
    }

    async fn rerun_job_with_env(
        &mut self,
        env: Vec<(String, String)>,
    ) -> wasmtime::Result<Result<(), Error>> {
        if let Some((k, _)) = env.iter().find(|(k, _)| !TUNING_ENV.contains(&k.as_str())) {
            return Ok(Err(Error::Invalid(format!(
                "{k} is not a tuning variable guard lets healers set (allowed: {})",
                TUNING_ENV.join(", ")
            ))));
        }
        if env.len() > 32
            || env
                .iter()
                .any(|(k, v)| k.len() + v.len() > 4096 || v.contains('\0'))
        {
            return Ok(Err(Error::Invalid(
                "at most 32 variables of at most 4 KiB, without NUL".into(),
            )));
        }
        if self.ctx.local.is_none() && !self.ctx.dry_run {
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
        Ok(self.ci_action(
            CiAction::RerunJob,
            shown,
            Some(LocalRequest::Rerun { delay_secs: 0, env }),
        ))
    }

    async fn rerun_failed_jobs(&mut self) -> wasmtime::Result<Result<(), Error>> {
        // Locally the "run" is the one command: re-running failed jobs is re-running it.
        Ok(self.ci_action(
            CiAction::RerunFailedJobs,
            String::new(),
            Some(LocalRequest::Rerun {
                delay_secs: 0,
                env: Vec::new(),
            }),
        ))
    }

    async fn clear_caches(&mut self, key_prefix: String) -> wasmtime::Result<Result<u32, Error>> {
        if key_prefix.len() > 512 {
            return Ok(Err(Error::Invalid(
                "key prefix longer than 512 bytes".into(),
            )));
        }
        // A local command has no CI cache store: nothing to delete, and
        // saying 0 is the truth. Package-manager caches are cleared through
        // `exec` with their own grants.
        Ok(self
            .ci_action(
                CiAction::ClearCaches,
                format!("prefix={key_prefix:?}"),
                None,
            )
            .map(|()| 0))
    }

    async fn cancel(&mut self) -> wasmtime::Result<Result<(), Error>> {
        Ok(self.ci_action(CiAction::Cancel, String::new(), Some(LocalRequest::Cancel)))
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
        Ok(self.ci_action(
            CiAction::Annotate,
            detail,
            Some(LocalRequest::Annotate { title, body }),
        ))
    }

    async fn schedule_rerun(
        &mut self,
        delay_secs: u32,
        debug_logging: bool,
    ) -> wasmtime::Result<Result<(), Error>> {
        Ok(self.ci_action(
            CiAction::RerunJob,
            format!("after {delay_secs}s, debug-logging={debug_logging}"),
            Some(LocalRequest::Rerun {
                delay_secs,
                env: Vec::new(),
            }),
        ))
    }
}
