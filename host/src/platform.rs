//! CI platform adapters: what the daemon does through GitHub's, GitLab's
//! and Jenkins' APIs — fetch a job's log, re-run, cancel, clear caches,
//! annotate, and list recent failures for catch-up after downtime. One
//! file per platform over a shared HTTP client ([`client`]) that honours
//! rate limits and never logs credentials.

pub mod client;
pub mod github;
pub mod gitlab;
pub mod jenkins;
pub mod timestamp;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;

use crate::config::Config;
use crate::model::{Job, Platform};

/// A failed platform request.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// The platform is not configured (no `[github]` etc. section or token).
    #[error("{0}")]
    NotConfigured(String),
    /// The platform cannot do this at all.
    #[error("{0}")]
    Unsupported(String),
    /// The API answered with an error status.
    #[error("{method} {path} answered {status}: {message}")]
    Status {
        /// HTTP method.
        method: String,
        /// Path (no host, no query: nothing secret).
        path: String,
        /// Status code.
        status: u16,
        /// The platform's message, cut short.
        message: String,
    },
    /// The platform's rate limit: try again after this many seconds.
    #[error("rate limited by {platform} for {retry_after_secs} s more")]
    RateLimited {
        /// Which platform.
        platform: &'static str,
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// Connection, TLS or protocol failure.
    #[error("cannot reach {platform}: {message}")]
    Transport {
        /// Which platform.
        platform: &'static str,
        /// Why.
        message: String,
    },
    /// A response that is not what the API documents.
    #[error("unexpected response from {platform}: {message}")]
    Protocol {
        /// Which platform.
        platform: &'static str,
        /// What was wrong.
        message: String,
    },
    /// Writing the downloaded log failed.
    #[error("cannot store the downloaded log: {0}")]
    Io(#[from] std::io::Error),
}

impl PlatformError {
    /// Whether trying again later may succeed (the event is retried rather
    /// than dead-lettered at once).
    pub fn is_transient(&self) -> bool {
        match self {
            PlatformError::RateLimited { .. }
            | PlatformError::Transport { .. }
            | PlatformError::Io(_) => true,
            PlatformError::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

/// A downloaded log.
#[derive(Debug)]
pub struct Download {
    /// Bytes written.
    pub bytes: u64,
    /// Whether the log was cut at the size limit.
    pub truncated: bool,
}

/// What [`Adapter::recent_failures`] listed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Failures {
    /// The failed jobs, newest first.
    pub jobs: Vec<Job>,
    /// `None` when the listing reached back to `since_ms`. `Some(at)` when
    /// it stopped before (at `limit`, or at one of the adapter's caps on
    /// pages read): `at` is where, in ms on the listing's own order (when
    /// a Jenkins build started, a GitHub run was created, a GitLab
    /// pipeline was updated), and listing again with `until_ms = Some(at)`
    /// lists the rest. What lies at `at` itself may be listed again (a
    /// duplicate, as facts go), so nothing there is skipped.
    pub rest_until: Option<u64>,
}

/// What guard needs from a CI platform.
#[async_trait]
pub trait Adapter: Send + Sync + std::fmt::Debug {
    /// Asks the platform to send again the webhook deliveries to guard it
    /// recorded as failed since `since_ms` (at most `limit` listed) that
    /// guard has not `seen` (by delivery id). Only a GitHub App can.
    async fn redeliver_missed(
        &self,
        since_ms: u64,
        seen: &(dyn for<'a> Fn(&'a str) -> bool + Send + Sync),
        limit: usize,
    ) -> Result<Redelivered, PlatformError> {
        let _ = (since_ms, seen, limit);
        Ok(Redelivered::default())
    }
    /// Shares used-up quotas through `store` with other replicas (see
    /// [`client`]'s module docs).
    fn share_quota(&self, store: &crate::store::Store) {
        let _ = store;
    }
    /// Which platform this is.
    fn platform(&self) -> Platform;
    /// Downloads `job`'s log into `dest`, at most `max_bytes` (the end is cut).
    async fn fetch_log(
        &self,
        job: &Job,
        dest: &Path,
        max_bytes: u64,
    ) -> Result<Download, PlatformError>;
    /// The failed jobs of a failed run (GitHub `workflow_run`).
    async fn failed_jobs(&self, run: &Job) -> Result<Vec<Job>, PlatformError>;
    /// The failed jobs of `watched` (a repository, project or job as
    /// `[github] repositories`, `[gitlab] projects` or `[jenkins] jobs`
    /// name it) that finished at or after `since_ms`, newest first, at most
    /// `limit`: what catch-up queues after downtime. With `until_ms`, only
    /// those at or before it on the listing's order: the rest of a listing
    /// that stopped there ([`Failures::rest_until`]). Each job is built as
    /// the intake builds the same job from its webhook, so both have one
    /// [`fact_key`](crate::intake::EventKind::fact_key) and whichever
    /// comes second is a duplicate.
    async fn recent_failures(
        &self,
        watched: &str,
        since_ms: u64,
        until_ms: Option<u64>,
        limit: usize,
    ) -> Result<Failures, PlatformError>;
    /// Re-runs `job`.
    async fn rerun_job(&self, job: &Job, debug_logging: bool) -> Result<(), PlatformError>;
    /// Re-runs every failed job of `job`'s run.
    async fn rerun_failed_jobs(&self, job: &Job, debug_logging: bool) -> Result<(), PlatformError>;
    /// Deletes CI caches whose key starts with `prefix`; returns how many.
    async fn clear_caches(&self, job: &Job, prefix: &str) -> Result<u32, PlatformError>;
    /// Cancels `job`'s run.
    async fn cancel(&self, job: &Job) -> Result<(), PlatformError>;
    /// Shows a note about `job` to people (comment, check run, description).
    async fn annotate(&self, job: &Job, title: &str, body: &str) -> Result<(), PlatformError>;
}

/// What [`Adapter::redeliver_missed`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Redelivered {
    /// Failed deliveries listed.
    pub listed: usize,
    /// Delivery ids sent again.
    pub requested: Vec<String>,
}

/// The adapters configured in guard.toml.
#[derive(Debug, Clone, Default)]
pub struct Platforms {
    github: Option<Arc<dyn Adapter>>,
    gitlab: Option<Arc<dyn Adapter>>,
    jenkins: Option<Arc<dyn Adapter>>,
}

impl Platforms {
    /// Builds the adapters of every configured platform.
    pub fn from_config(config: &Config) -> Result<Platforms, PlatformError> {
        Ok(Platforms {
            github: match &config.github {
                Some(g) => Some(Arc::new(github::GitHub::new(g)?)),
                None => None,
            },
            gitlab: match &config.gitlab {
                Some(g) => Some(Arc::new(gitlab::GitLab::new(g)?)),
                None => None,
            },
            jenkins: match &config.jenkins {
                Some(j) => Some(Arc::new(jenkins::Jenkins::new(j)?)),
                None => None,
            },
        })
    }

    /// Shares every adapter's used-up quotas through `store`.
    pub fn share_quota(&self, store: &crate::store::Store) {
        for a in [&self.github, &self.gitlab, &self.jenkins]
            .into_iter()
            .flatten()
        {
            a.share_quota(store);
        }
    }

    /// The adapter for `platform`.
    pub fn get(&self, platform: Platform) -> Result<Arc<dyn Adapter>, PlatformError> {
        let (slot, section) = match platform {
            Platform::Github => (&self.github, "github"),
            Platform::Gitlab => (&self.gitlab, "gitlab"),
            Platform::Jenkins => (&self.jenkins, "jenkins"),
            Platform::Local => (&None, "local"),
        };
        slot.clone().ok_or_else(|| {
            PlatformError::NotConfigured(format!(
                "guard.toml has no [{section}] section: guard cannot reach that platform"
            ))
        })
    }
}
