//! Calling healers: `strategies()` and `heal(strategy, job, finding)`, each
//! in a fresh store whose call context carries the job (so `ci` calls are
//! scoped to it) and the dry-run flag.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::bindings::healer::exports::guard::plugin::healer::Effect as WitEffect;
use super::call::guarded;
use super::loader::{Plugin, Pre, Runtime};
use super::{RuntimeError, convert};
use crate::model::{Category, Finding, Job};

/// A strategy offered by a healer.
#[derive(Debug, Clone, Serialize)]
pub struct StrategyInfo {
    /// Name used in remedies.
    pub name: String,
    /// Categories it is meant for.
    pub categories: Vec<Category>,
    /// Whether it re-runs the job.
    pub retries: bool,
    /// One sentence.
    pub description: String,
}

/// What a heal achieved (the WIT `healer.effect`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Effect {
    /// The job was re-run or a re-run is scheduled.
    Rerun,
    /// The failed tests passed alone: flaky.
    PassedInIsolation,
    /// The failed tests failed again alone: genuine.
    FailedInIsolation,
    /// Reported only.
    Reported,
}

/// Where and how a heal runs.
#[derive(Debug, Clone, Default)]
pub struct HealOptions {
    /// Record actions without performing them.
    pub dry_run: bool,
    /// Working directory for `exec`.
    pub workdir: Option<std::path::PathBuf>,
    /// Where `ci` actions go (the platform, or `guard exec`'s loop).
    pub backend: Option<Arc<dyn crate::caps::ci::CiBackend>>,
    /// The command `guard exec` wraps, for `exec.rerun-tests`.
    pub wrapped: Option<Arc<crate::caps::exec::Wrapped>>,
    /// Why re-runs are refused for this job now (see
    /// [`crate::heal::planner::rerun_blocked`]); the host enforces it on every
    /// `ci.rerun*` call, whatever the strategy declared.
    pub rerun_refused: Option<String>,
}

/// The outcome of a heal call.
#[derive(Debug, Clone, Serialize)]
pub enum HealOutcome {
    /// The healer reported what it did.
    Done {
        /// One line.
        summary: String,
        /// Actions, as the healer reported them.
        actions: Vec<String>,
        /// What it achieved.
        effect: Effect,
        /// Facts (e.g. flaky test names).
        facts: Vec<(String, String)>,
        /// Tests the host itself saw pass when re-run alone
        /// (`exec.rerun-tests`), whatever the healer says.
        passed_alone: Vec<String>,
    },
    /// The healer declined with a WIT error (e.g. a denial it could not work around).
    Declined(String),
}

impl Runtime {
    /// The strategies of a healer.
    pub async fn healer_strategies(
        &self,
        plugin: &Arc<Plugin>,
    ) -> Result<Vec<StrategyInfo>, RuntimeError> {
        let Pre::Healer(pre) = &plugin.pre else {
            return Err(RuntimeError::Setup(format!(
                "plugin {} is not a healer",
                plugin.info.id
            )));
        };
        plugin.check_quarantine()?;
        let id = plugin.info.id.clone();
        let mut store = self.new_store(self.context(plugin, None, false));
        let timeout = Duration::from_millis(self.config().limits.call_timeout_ms);
        let result = async {
            let b = guarded(&mut store, &id, "instantiate", timeout, async |s| {
                pre.instantiate_async(s).await
            })
            .await?;
            let list = guarded(&mut store, &id, "strategies", timeout, async |s| {
                b.guard_plugin_healer().call_strategies(s).await
            })
            .await?;
            Ok(list
                .into_iter()
                .take(100)
                .map(|s| StrategyInfo {
                    name: convert::truncate(s.name, 128),
                    categories: s
                        .categories
                        .into_iter()
                        .map(convert::category_from_wit)
                        .collect(),
                    retries: s.retries,
                    description: convert::truncate(s.description, 1024),
                })
                .collect())
        }
        .await;
        self.outcome(plugin, result, true)
    }

    /// Applies `strategy` of `plugin` to `job`'s `finding`.
    pub async fn heal(
        &self,
        plugin: &Arc<Plugin>,
        strategy: &str,
        job: &Job,
        finding: &Finding,
        options: &HealOptions,
    ) -> Result<HealOutcome, RuntimeError> {
        let Pre::Healer(pre) = &plugin.pre else {
            return Err(RuntimeError::Setup(format!(
                "plugin {} is not a healer",
                plugin.info.id
            )));
        };
        plugin.check_quarantine()?;
        let id = plugin.info.id.clone();
        let mut ctx = (*self.context(plugin, Some(job.clone()), options.dry_run)).clone();
        ctx.workdir = options.workdir.clone();
        ctx.backend = options.backend.clone();
        ctx.wrapped = options.wrapped.clone();
        ctx.rerun_refused = options.rerun_refused.clone();
        ctx.reruns_left = Arc::new(std::sync::atomic::AtomicU32::new(1));
        let passed_alone = ctx.passed_alone.clone();
        let mut store = self.new_store(Arc::new(ctx));
        let limits = &self.config().limits;
        // Re-running the user's own tests takes as long as they take: the
        // heal's clocks grow by the cap on those re-runs.
        let extra_ms = if options.wrapped.is_some() {
            limits
                .test_rerun_ms
                .saturating_mul(u64::from(crate::caps::exec::TEST_RERUNS_PER_HEAL))
        } else {
            0
        };
        let timeout = Duration::from_millis(limits.call_timeout_ms.saturating_add(extra_ms));
        let deadline_ms = limits.heal_deadline_ms.saturating_add(extra_ms);
        let heal_call = async {
            let b = guarded(&mut store, &id, "instantiate", timeout, async |s| {
                pre.instantiate_async(s).await
            })
            .await?;
            let wit_job = convert::job_to_wit(job);
            let wit_finding = convert::finding_to_wit(finding);
            let report = guarded(&mut store, &id, "heal", timeout, async |s| {
                b.guard_plugin_healer()
                    .call_heal(s, strategy, &wit_job, &wit_finding)
                    .await
            })
            .await?;
            Ok(match report {
                Ok(r) => HealOutcome::Done {
                    summary: convert::truncate(r.summary, 1024),
                    actions: r
                        .actions
                        .into_iter()
                        .take(100)
                        .map(|a| convert::truncate(a, 1024))
                        .collect(),
                    effect: match r.effect {
                        WitEffect::Rerun => Effect::Rerun,
                        WitEffect::PassedInIsolation => Effect::PassedInIsolation,
                        WitEffect::FailedInIsolation => Effect::FailedInIsolation,
                        WitEffect::Reported => Effect::Reported,
                    },
                    facts: r
                        .facts
                        .into_iter()
                        .take(200)
                        .map(|(k, v)| (convert::truncate(k, 256), convert::truncate(v, 1024)))
                        .collect(),
                    passed_alone: match passed_alone.lock() {
                        Ok(mut v) => std::mem::take(&mut *v),
                        Err(p) => std::mem::take(&mut *p.into_inner()),
                    },
                },
                Err(e) => HealOutcome::Declined(format!("{e:?}")),
            })
        };
        // One total deadline for the heal, whatever each call took.
        let result = match tokio::time::timeout(Duration::from_millis(deadline_ms), heal_call).await
        {
            Ok(r) => r,
            Err(_) => Err(RuntimeError::Call {
                plugin: id.clone(),
                call: "heal".into(),
                reason: crate::runtime::limits::Failure::Deadline {
                    what: "heal",
                    ms: deadline_ms,
                },
            }),
        };
        self.outcome(plugin, result, true)
    }
}
