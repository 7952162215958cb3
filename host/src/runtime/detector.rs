//! Calling detectors: a [`ScanSession`] owns one store and one `scan`
//! resource for the length of one log; every export call on it gets its own
//! CPU budget and wall-clock timeout.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::Store;
use wasmtime::component::ResourceAny;

use super::bindings::detector::DetectorPlugin;
use super::call::guarded;
use super::convert;
use super::loader::{Plugin, Pre, Runtime};
use super::state::PluginState;
use super::{RuntimeError, limits::Failure};
use crate::model::{Finding, Job};

/// One detector scanning one log.
pub struct ScanSession {
    plugin: Arc<Plugin>,
    store: Store<PluginState>,
    bindings: DetectorPlugin,
    scan: ResourceAny,
    timeout: Duration,
    max_findings: usize,
    /// Time this detector may spend on the log in all (its own calls only:
    /// a slow neighbour does not use up its time) and what it has spent.
    deadline: Duration,
    spent: Duration,
    deadline_ms: u64,
}

impl std::fmt::Debug for ScanSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanSession")
            .field("plugin", &self.plugin.info.id)
            .finish()
    }
}

impl Runtime {
    /// Starts `plugin` scanning the log of `job`.
    pub async fn start_scan(
        &self,
        plugin: &Arc<Plugin>,
        job: &Job,
    ) -> Result<ScanSession, RuntimeError> {
        let Pre::Detector(pre) = &plugin.pre else {
            return Err(RuntimeError::Setup(format!(
                "plugin {} is not a detector",
                plugin.info.id
            )));
        };
        plugin.check_quarantine()?;
        let id = plugin.info.id.clone();
        let deadline_ms = self.config().limits.scan_deadline_ms;
        let deadline = Duration::from_millis(deadline_ms);
        let mut store = self.new_store(self.context(plugin, Some(job.clone()), false));
        let timeout = Duration::from_millis(self.config().limits.call_timeout_ms);
        let result = async {
            let bindings = guarded(&mut store, &id, "instantiate", timeout, async |s| {
                pre.instantiate_async(s).await
            })
            .await?;
            let wit_job = convert::job_to_wit(job);
            let scan = guarded(&mut store, &id, "scan.constructor", timeout, async |s| {
                bindings
                    .guard_plugin_detector()
                    .scan()
                    .call_constructor(s, &wit_job)
                    .await
            })
            .await?;
            Ok((bindings, scan))
        }
        .await;
        let (bindings, scan) = self.outcome(plugin, result, false)?;
        Ok(ScanSession {
            plugin: plugin.clone(),
            store,
            bindings,
            scan,
            timeout,
            max_findings: self.config().limits.max_findings,
            deadline,
            spent: Duration::ZERO,
            deadline_ms,
        })
    }
}

impl ScanSession {
    /// The plugin scanning.
    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    /// Time the next call may take: the call timeout, cut to what is left
    /// of the scan's deadline; an error once the deadline has passed.
    fn budget(&self, call: &str) -> Result<Duration, RuntimeError> {
        let left = self.deadline.saturating_sub(self.spent);
        if left.is_zero() {
            return Err(self.deadline_error(call));
        }
        Ok(left.min(self.timeout))
    }

    fn deadline_error(&self, call: &str) -> RuntimeError {
        RuntimeError::Call {
            plugin: self.plugin.info.id.clone(),
            call: call.into(),
            reason: Failure::Deadline {
                what: "scan",
                ms: self.deadline_ms,
            },
        }
    }

    /// A timeout that the deadline caused is reported as the deadline.
    fn blame_deadline<T>(&self, call: &str, r: Result<T, RuntimeError>) -> Result<T, RuntimeError> {
        match r {
            Err(RuntimeError::Call {
                reason: Failure::Timeout { .. },
                ..
            }) if self.spent >= self.deadline => Err(self.deadline_error(call)),
            other => other,
        }
    }

    /// Feeds the next chunk (whole lines joined by `\n`).
    pub async fn feed(
        &mut self,
        runtime: &Runtime,
        chunk: &str,
        first_line: u32,
    ) -> Result<(), RuntimeError> {
        let budget = match self.budget("scan.feed") {
            Ok(b) => b,
            Err(e) => return runtime.outcome(&self.plugin, Err(e), false),
        };
        let started = tokio::time::Instant::now();
        let (bindings, scan) = (&self.bindings, self.scan);
        let result = guarded(
            &mut self.store,
            &self.plugin.info.id,
            "scan.feed",
            budget,
            async |s| {
                bindings
                    .guard_plugin_detector()
                    .scan()
                    .call_feed(s, scan, chunk, first_line)
                    .await
            },
        )
        .await;
        self.spent += started.elapsed();
        let result = self.blame_deadline("scan.feed", result);
        runtime.outcome(&self.plugin, result, false)
    }

    /// Ends the log and collects the findings.
    pub async fn finish(mut self, runtime: &Runtime) -> Result<Vec<Finding>, RuntimeError> {
        let budget = match self.budget("scan.finish") {
            Ok(b) => b,
            Err(e) => return runtime.outcome(&self.plugin, Err(e), true),
        };
        let started = tokio::time::Instant::now();
        let id = self.plugin.info.id.clone();
        let (bindings, scan) = (&self.bindings, self.scan);
        let result = guarded(&mut self.store, &id, "scan.finish", budget, async |s| {
            bindings
                .guard_plugin_detector()
                .scan()
                .call_finish(s, scan)
                .await
        })
        .await;
        self.spent += started.elapsed();
        let result = result.and_then(|findings| {
            if findings.len() > self.max_findings {
                tracing::warn!(plugin = %id, "kept {} of {} findings ([limits] max_findings)", self.max_findings, findings.len());
            }
            if findings.is_empty() {
                return Ok(Vec::new());
            }
            let kept: Vec<Finding> = findings.into_iter().take(self.max_findings).map(|f| convert::finding_from_wit(f, &id)).collect();
            if kept.iter().any(|f| f.rule.is_empty()) {
                return Err(RuntimeError::Call { plugin: id.clone(), call: "scan.finish".into(), reason: Failure::BadOutput("a finding has an empty rule id".into()) });
            }
            Ok(kept)
        });
        let result = self.blame_deadline("scan.finish", result);
        // Dropping the store frees the instance; the resource needs no
        // explicit drop call after the last use.
        runtime.outcome(&self.plugin, result, true)
    }
}
