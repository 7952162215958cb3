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
                job.attempt
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

    #[test]
    fn clip_respects_char_boundaries() {
        assert_eq!(clip("ééé", 3), "é");
        assert_eq!(clip("abc", 10), "abc");
    }
}
