//! Jenkins webhooks from the Notification plugin (JSON format): a build's
//! phase (QUEUED, STARTED, COMPLETED, FINALIZED) and status. The plugin
//! cannot sign requests, so a shared token is required, sent as the
//! `X-Guard-Token` header or a `token` query parameter of the endpoint URL.

use axum::http::HeaderMap;
use serde::Deserialize;

use super::{EventKind, JobStatus, Parsed, WebhookError, clip, digest, header, json, secret_eq};
use crate::model::{Job, Platform};

#[derive(Deserialize, Default)]
struct Scm {
    #[serde(default)]
    commit: Option<String>,
    #[serde(default)]
    branch: Option<String>,
}

#[derive(Deserialize)]
struct Build {
    number: u64,
    #[serde(default)]
    phase: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    full_url: Option<String>,
    #[serde(default)]
    scm: Scm,
}

#[derive(Deserialize)]
struct Notification {
    name: String,
    /// The job's path relative to Jenkins' root, e.g. `job/folder/job/app/`.
    url: String,
    build: Build,
}

/// Authenticates and parses a Jenkins notification. `query_token` is the
/// `token` query parameter, if any.
pub fn parse(
    headers: &HeaderMap,
    query_token: Option<&str>,
    body: &[u8],
    secret: Option<&str>,
) -> Result<Parsed, WebhookError> {
    let secret = secret.filter(|s| !s.is_empty()).ok_or_else(|| {
        WebhookError::NotConfigured(
            "[jenkins] webhook_secret is not set: guard refuses unauthenticated Jenkins webhooks"
                .into(),
        )
    })?;
    let token = header(headers, "x-guard-token")
        .or(query_token)
        .ok_or_else(|| {
            WebhookError::Unauthorized("missing X-Guard-Token header or token parameter".into())
        })?;
    if !secret_eq(token.as_bytes(), secret.as_bytes()) {
        return Err(WebhookError::Unauthorized(
            "the Jenkins token does not match".into(),
        ));
    }
    let delivery = format!("jenkins:sha256:{}", digest(body));
    let n: Notification = json(body)?;
    let phase = n.build.phase.as_deref().unwrap_or("");
    if !matches!(phase, "COMPLETED" | "FINALIZED") {
        return Ok(Parsed::ignored(
            delivery,
            format!("build phase {}", clip(phase, 32)),
        ));
    }
    let status = match n.build.status.as_deref() {
        // UNSTABLE is how Jenkins marks a build whose tests failed.
        Some("FAILURE" | "UNSTABLE") => JobStatus::Failed,
        Some("SUCCESS") => JobStatus::Succeeded,
        other => {
            return Ok(Parsed::ignored(
                delivery,
                format!("build status {}", clip(other.unwrap_or("missing"), 32)),
            ));
        }
    };
    let path = n.url.trim_matches('/');
    if path.is_empty() || path.contains("..") || path.contains("://") {
        return Err(WebhookError::Malformed(format!(
            "`url` must be the job's path relative to Jenkins, got {:?}",
            clip(&n.url, 100)
        )));
    }
    // COMPLETED and FINALIZED of one build are one fact: the key has no phase.
    let job = Job {
        platform: Platform::Jenkins,
        repository: clip(path, 512),
        run_id: n.build.number.to_string(),
        job_id: n.build.number.to_string(),
        job_name: clip(&n.name, 256),
        attempt: 1,
        commit: n.build.scm.commit.map(|s| clip(&s, 64)),
        branch: n.build.scm.branch.map(|s| clip(&s, 256)),
        url: n.build.full_url.map(|s| clip(&s, 1024)),
        api_id: None,
    };
    Ok(Parsed {
        delivery,
        events: vec![EventKind::JobCompleted { job, status }],
        ignored: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(phase: &str, status: &str) -> Vec<u8> {
        format!(
            r#"{{"name":"app","url":"job/app/","build":{{"full_url":"http://j/job/app/7/","number":7,"phase":"{phase}","status":"{status}","scm":{{"commit":"abc"}}}}}}"#
        )
        .into_bytes()
    }

    #[test]
    fn completed_and_finalized_are_one_fact() {
        let h = HeaderMap::new();
        let a = parse(&h, Some("t"), &body("COMPLETED", "FAILURE"), Some("t")).unwrap();
        let b = parse(&h, Some("t"), &body("FINALIZED", "FAILURE"), Some("t")).unwrap();
        assert_ne!(a.delivery, b.delivery);
        assert_eq!(a.events[0].fact_key(), b.events[0].fact_key());
        assert_eq!(a.events[0].job().repository, "job/app");
    }

    #[test]
    fn started_builds_and_bad_tokens() {
        let h = HeaderMap::new();
        let p = parse(&h, Some("t"), &body("STARTED", ""), Some("t")).unwrap();
        assert!(p.events.is_empty());
        assert!(matches!(
            parse(&h, Some("x"), &body("COMPLETED", "FAILURE"), Some("t")),
            Err(WebhookError::Unauthorized(_))
        ));
    }
}
