//! Jenkins webhooks from the Notification plugin (JSON format): a build's
//! phase (QUEUED, STARTED, COMPLETED, FINALIZED) and status. The plugin
//! cannot sign requests, so a shared token is required, sent as the
//! `X-Guard-Token` header or a `token` query parameter of the endpoint URL.
//!
//! The job's `url` is `job.getUrl()`, percent-encoded (`job/asgard%20web/`,
//! a multibranch branch `feature/x` as `job/p/job/feature%252Fx/`). The job
//! is shown by its decoded full name (`asgard web`, `p/feature/x`) and
//! reached through its path as Jenkins spells it, kept in `api_id`.

use axum::http::HeaderMap;
use serde::Deserialize;

use super::{EventKind, JobStatus, Parsed, WebhookError, clip, digest, header, json, secret_eq};
use crate::model::{Job, Platform};
use crate::platform::jenkins::{JobPath, display_name};

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
    /// The item name (`feature%2Fx` for a multibranch branch).
    name: String,
    /// The job's path relative to Jenkins' root, percent-encoded, e.g.
    /// `job/folder/job/app/`.
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
    let path = JobPath::parse(&n.url).map_err(|e| {
        WebhookError::Malformed(format!(
            "`url` must be the job's path relative to Jenkins (job/NAME/…): {e}"
        ))
    })?;
    // COMPLETED and FINALIZED of one build are one fact: the key has no
    // phase. The key names the job by its path as Jenkins spells it
    // (`api_id`), as it did before jobs were shown by their names.
    let job = Job {
        platform: Platform::Jenkins,
        repository: clip(&path.display(), 512),
        run_id: n.build.number.to_string(),
        job_id: n.build.number.to_string(),
        job_name: clip(&display_name(&n.name), 256),
        attempt: 1,
        commit: n.build.scm.commit.map(|s| clip(&s, 64)),
        branch: n.build.scm.branch.map(|s| clip(&s, 256)),
        url: n.build.full_url.map(|s| clip(&s, 1024)),
        api_id: Some(path.url_path()),
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
        job_body("app", "job/app/", phase, status)
    }

    /// A notification as the plugin sends it for the job `name` at `url`.
    fn job_body(name: &str, url: &str, phase: &str, status: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "name": name,
            "url": url,
            "build": {
                "full_url": format!("http://j/{url}7/"),
                "number": 7,
                "phase": phase,
                "status": status,
                "url": format!("{url}7/"),
                "scm": { "commit": "abc" }
            }
        }))
        .unwrap()
    }

    fn failed(name: &str, url: &str) -> Result<Job, WebhookError> {
        let p = parse(
            &HeaderMap::new(),
            Some("t"),
            &job_body(name, url, "COMPLETED", "FAILURE"),
            Some("t"),
        )?;
        Ok(p.events[0].job().clone())
    }

    #[test]
    fn completed_and_finalized_are_one_fact() {
        let h = HeaderMap::new();
        let a = parse(&h, Some("t"), &body("COMPLETED", "FAILURE"), Some("t")).unwrap();
        let b = parse(&h, Some("t"), &body("FINALIZED", "FAILURE"), Some("t")).unwrap();
        assert_ne!(a.delivery, b.delivery);
        assert_eq!(a.events[0].fact_key(), b.events[0].fact_key());
        let job = a.events[0].job();
        assert_eq!(job.repository, "app");
        assert_eq!(job.api_id.as_deref(), Some("job/app"));
        // The key of a plain job is what it was when `repository` held the path.
        assert_eq!(a.events[0].fact_key(), "fact:jenkins:job/app:7:1:Failed");
    }

    #[test]
    fn encoded_job_urls_are_shown_decoded_and_kept_as_jenkins_spells_them() {
        for (name, url, shown, job_name, api) in [
            (
                "asgard web",
                "job/asgard%20web/",
                "asgard web",
                "asgard web",
                "job/asgard%20web",
            ),
            (
                "feature%2Fx",
                "job/p/job/feature%252Fx/",
                "p/feature/x",
                "feature/x",
                "job/p/job/feature%252Fx",
            ),
            (
                "déploiement",
                "job/ops/job/d%C3%A9ploiement/",
                "ops/déploiement",
                "déploiement",
                "job/ops/job/d%C3%A9ploiement",
            ),
        ] {
            let job = failed(name, url).unwrap();
            assert_eq!(job.repository, shown, "{url}");
            assert_eq!(job.job_name, job_name, "{url}");
            assert_eq!(job.api_id.as_deref(), Some(api), "{url}");
        }
        // However a notification spells the path, the fact is the same.
        let key = |url: &str| {
            let p = parse(
                &HeaderMap::new(),
                Some("t"),
                &job_body("déploiement", url, "FINALIZED", "FAILURE"),
                Some("t"),
            )
            .unwrap();
            p.events[0].fact_key()
        };
        assert_eq!(key("job/d%C3%A9ploiement/"), key("/job/d%c3%a9ploiement"));
    }

    #[test]
    fn urls_that_are_not_job_paths_are_malformed() {
        for url in [
            "",
            "job/../",
            "job/a/job/%2E%2E/",
            "job/a%2F..%2Fb/",
            "job/a%00/",
            "job/%FF/",
            "http://jenkins/job/a/",
            "view/all/job/a/",
            "job/a/b/",
        ] {
            assert!(
                matches!(failed("a", url), Err(WebhookError::Malformed(_))),
                "{url:?} was accepted"
            );
        }
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
