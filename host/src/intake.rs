//! Webhook intake: turns a platform's webhook (headers + body) into the
//! events guard acts on, after checking that the platform sent it.
//!
//! One file per platform; each exposes `parse(headers, body, secret)`. They
//! are pure functions (no I/O) so the HTTP layer, the tests and the fuzz
//! targets all drive the same code. Authentication happens before any JSON
//! is parsed: an unauthenticated body is never looked at.

pub mod github;
pub mod gitlab;
pub mod jenkins;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::{Job, Platform};

/// Why a webhook was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookError {
    /// The platform has no webhook secret configured: guard refuses
    /// unauthenticated webhooks rather than trusting them.
    #[error("{0}")]
    NotConfigured(String),
    /// Missing or wrong signature or token (HTTP 401).
    #[error("{0}")]
    Unauthorized(String),
    /// The body or a header is not what the platform sends (HTTP 400).
    #[error("{0}")]
    Malformed(String),
}

/// How a completed job ended, as far as guard cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Failed (or timed out): diagnose and maybe heal.
    Failed,
    /// Succeeded: tells whether an earlier heal worked.
    Succeeded,
}

/// An event guard acts on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum EventKind {
    /// A job finished.
    JobCompleted {
        /// The job.
        job: Job,
        /// How it ended.
        status: JobStatus,
    },
    /// A whole run failed; its failed jobs are looked up through the API
    /// (GitHub's `workflow_run` carries no jobs).
    RunFailed {
        /// The run, as a job with an empty `job_id`.
        run: Job,
    },
}

impl EventKind {
    /// A key that is the same for every delivery of the same fact (a job's
    /// attempt ending in a status), whatever delivery id the platform used:
    /// a Job Hook and a Pipeline Hook about one GitLab job, or Jenkins'
    /// COMPLETED and FINALIZED notifications, are one event.
    pub fn fact_key(&self) -> String {
        match self {
            EventKind::JobCompleted { job, status } => format!(
                "fact:{}:{}:{}:{}:{status:?}",
                platform_name(job.platform),
                job.api_id.as_deref().unwrap_or(&job.repository),
                job.job_id,
                run_attempt(job)
            ),
            EventKind::RunFailed { run } => format!(
                "fact:{}:{}:run:{}:{}",
                platform_name(run.platform),
                run.repository,
                run.run_id,
                run.attempt
            ),
        }
    }

    /// The job (or run) concerned.
    pub fn job(&self) -> &Job {
        match self {
            EventKind::JobCompleted { job, .. } => job,
            EventKind::RunFailed { run } => run,
        }
    }
}

/// The attempt as part of a job run's identity in [`EventKind::fact_key`].
/// GitLab gives every retry a new job id, so there the job id alone names
/// the run; and only the Job Hook says how many retries came before
/// (`retries_count`), the Pipeline Hook's `builds[]` do not, yet both must
/// name the run alike. So GitLab's key always says 1 (the key of a first
/// attempt is unchanged) while the job keeps its `attempt` for the heal
/// budget. Elsewhere the attempt stays in the key as it always was.
fn run_attempt(job: &Job) -> u32 {
    match job.platform {
        Platform::Gitlab => 1,
        Platform::Github | Platform::Jenkins | Platform::Local => job.attempt,
    }
}

/// The lowercase name of a platform.
pub fn platform_name(p: Platform) -> &'static str {
    match p {
        Platform::Github => "github",
        Platform::Gitlab => "gitlab",
        Platform::Jenkins => "jenkins",
        Platform::Local => "local",
    }
}

/// What a webhook amounts to.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// The delivery's identity for de-duplication (the platform's delivery
    /// id, or a digest of the body when it sends none).
    pub delivery: String,
    /// Events to act on; empty when the webhook is of no interest.
    pub events: Vec<EventKind>,
    /// Why nothing is to be done, when `events` is empty.
    pub ignored: Option<String>,
}

impl Parsed {
    fn ignored(delivery: String, why: impl Into<String>) -> Parsed {
        Parsed {
            delivery,
            events: Vec::new(),
            ignored: Some(why.into()),
        }
    }
}

/// Hex sha256 of `bytes`.
pub(crate) fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Compares two secrets in constant time. Both sides are hashed first so
/// neither the content nor the length of the expected secret leaks through
/// timing.
pub(crate) fn secret_eq(given: &[u8], expected: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    Sha256::digest(given)
        .ct_eq(&Sha256::digest(expected))
        .into()
}

/// A header as UTF-8 text, if present.
pub(crate) fn header<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Parses a JSON body, naming the field path of the first problem.
pub(crate) fn json<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, WebhookError> {
    serde_json::from_slice(body)
        .map_err(|e| WebhookError::Malformed(format!("body is not the expected JSON: {e}")))
}

/// Keeps platform-supplied text to a sane size (names end up in keys, logs and the UI).
pub(crate) fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_by_content_not_prefix() {
        assert!(secret_eq(b"s3cret", b"s3cret"));
        assert!(!secret_eq(b"s3cre", b"s3cret"));
        assert!(!secret_eq(b"", b"s3cret"));
    }

    /// A failed GitLab Job Hook from the fixture, as GitLab sends it for
    /// a retried job (`retries_count: 1`, a new job id).
    fn job_hook() -> Vec<u8> {
        let mut v: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/data/fixtures/gitlab/build.json"))
                .unwrap();
        v["build_status"] = "failed".into();
        v["retries_count"] = 1.into();
        serde_json::to_vec(&v).unwrap()
    }

    /// The fixture's Pipeline Hook, failed, listing the Job Hook's job
    /// (same project, same job id) as failed: `builds[]` have no retries.
    fn pipeline_hook() -> Vec<u8> {
        let mut v: serde_json::Value = serde_json::from_str(include_str!(
            "../../tests/data/fixtures/gitlab/pipeline.json"
        ))
        .unwrap();
        v["object_attributes"]["status"] = "failed".into();
        v["object_attributes"]["id"] = 2366.into();
        v["project"]["id"] = 380.into();
        v["builds"][0]["id"] = 1977.into();
        v["builds"][0]["status"] = "failed".into();
        serde_json::to_vec(&v).unwrap()
    }

    fn parse_gitlab(uuid: &str, body: &[u8]) -> Parsed {
        let mut h = axum::http::HeaderMap::new();
        h.insert("x-gitlab-token", "t".parse().unwrap());
        h.insert("x-gitlab-event-uuid", uuid.parse().unwrap());
        gitlab::parse(&h, body, Some("t")).unwrap()
    }

    #[test]
    fn a_retried_gitlab_job_is_one_fact_from_its_job_and_pipeline_hooks() {
        let job = parse_gitlab("u-job", &job_hook());
        let pipeline = parse_gitlab("u-pipeline", &pipeline_hook());
        assert_ne!(job.delivery, pipeline.delivery);
        assert_eq!(job.events.len(), 1);
        let same: Vec<&EventKind> = pipeline
            .events
            .iter()
            .filter(|e| e.job().job_id == "1977")
            .collect();
        assert_eq!(same.len(), 1, "{:?}", pipeline.events);
        assert_eq!(job.events[0].fact_key(), same[0].fact_key());
        // The Job Hook's attempt is kept for the heal budget.
        assert_eq!(job.events[0].job().attempt, 2);
        assert_eq!(same[0].job().attempt, 1);
        // The retry before it (another job id) is another fact.
        let mut first: serde_json::Value = serde_json::from_slice(&job_hook()).unwrap();
        first["build_id"] = 1976.into();
        first["retries_count"] = 0.into();
        let first = parse_gitlab("u-first", &serde_json::to_vec(&first).unwrap());
        assert_ne!(first.events[0].fact_key(), job.events[0].fact_key());
    }

    #[test]
    fn the_attempt_still_tells_github_runs_apart() {
        let job = |attempt: u32| EventKind::JobCompleted {
            job: Job {
                platform: Platform::Github,
                repository: "o/r".into(),
                run_id: "1".into(),
                job_id: "2".into(),
                attempt,
                ..Job::default()
            },
            status: JobStatus::Failed,
        };
        assert_eq!(job(1).fact_key(), "fact:github:o/r:2:1:Failed");
        assert_ne!(job(1).fact_key(), job(2).fact_key());
    }

    #[test]
    fn clip_respects_char_boundaries() {
        assert_eq!(clip("ééé", 3), "é");
        assert_eq!(clip("abc", 10), "abc");
    }
}
