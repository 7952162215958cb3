//! GitLab CI webhooks: Job Hook (`object_kind: build`) and Pipeline Hook
//! (`object_kind: pipeline`), authenticated by the `X-Gitlab-Token` secret,
//! identified by `X-Gitlab-Event-UUID`.

use axum::http::HeaderMap;
use serde::Deserialize;

use super::{EventKind, JobStatus, Parsed, WebhookError, clip, digest, header, json, secret_eq};
use crate::model::{Job, Platform};

#[derive(Deserialize)]
struct Kind {
    object_kind: String,
}

#[derive(Deserialize, Default)]
struct Repository {
    #[serde(default)]
    homepage: Option<String>,
}

#[derive(Deserialize)]
struct JobHook {
    #[serde(rename = "ref", default)]
    git_ref: Option<String>,
    #[serde(default)]
    sha: Option<String>,
    build_id: u64,
    build_name: String,
    build_status: String,
    #[serde(default)]
    pipeline_id: Option<u64>,
    project_id: u64,
    #[serde(default)]
    project_name: Option<String>,
    #[serde(default)]
    retries_count: Option<u32>,
    #[serde(default)]
    repository: Repository,
}

#[derive(Deserialize)]
struct Project {
    id: u64,
    #[serde(default)]
    path_with_namespace: Option<String>,
    #[serde(default)]
    web_url: Option<String>,
}

#[derive(Deserialize)]
struct PipelineAttrs {
    id: u64,
    #[serde(rename = "ref", default)]
    git_ref: Option<String>,
    #[serde(default)]
    sha: Option<String>,
    status: String,
}

#[derive(Deserialize)]
struct PipelineBuild {
    id: u64,
    name: String,
    status: String,
}

#[derive(Deserialize)]
struct PipelineHook {
    object_attributes: PipelineAttrs,
    project: Project,
    #[serde(default)]
    builds: Vec<PipelineBuild>,
}

fn status_of(s: &str) -> Option<JobStatus> {
    match s {
        "failed" => Some(JobStatus::Failed),
        "success" => Some(JobStatus::Succeeded),
        _ => None,
    }
}

/// `group/project` from a project's web URL (Job Hooks carry no path).
fn path_from_url(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let path = rest.split_once('/')?.1.trim_end_matches('/');
    (!path.is_empty()).then(|| path.to_string())
}

/// Authenticates and parses a GitLab webhook. `secret` is `[gitlab]
/// webhook_secret`; without one every webhook is refused.
pub fn parse(
    headers: &HeaderMap,
    body: &[u8],
    secret: Option<&str>,
) -> Result<Parsed, WebhookError> {
    let secret = secret.filter(|s| !s.is_empty()).ok_or_else(|| {
        WebhookError::NotConfigured(
            "[gitlab] webhook_secret is not set: guard refuses unauthenticated GitLab webhooks"
                .into(),
        )
    })?;
    let token = header(headers, "x-gitlab-token")
        .ok_or_else(|| WebhookError::Unauthorized("missing X-Gitlab-Token header".into()))?;
    if !secret_eq(token.as_bytes(), secret.as_bytes()) {
        return Err(WebhookError::Unauthorized(
            "X-Gitlab-Token does not match".into(),
        ));
    }
    let delivery = match header(headers, "x-gitlab-event-uuid") {
        Some(d) if !d.is_empty() => format!("gitlab:{}", clip(d, 128)),
        _ => format!("gitlab:sha256:{}", digest(body)),
    };
    let kind: Kind = json(body)?;
    match kind.object_kind.as_str() {
        "build" => {
            let h: JobHook = json(body)?;
            let Some(status) = status_of(&h.build_status) else {
                return Ok(Parsed::ignored(
                    delivery,
                    format!("job {}", clip(&h.build_status, 32)),
                ));
            };
            let web = h.repository.homepage.clone();
            let repository = web
                .as_deref()
                .and_then(path_from_url)
                .or(h.project_name.clone())
                .unwrap_or_else(|| h.project_id.to_string());
            let job = Job {
                platform: Platform::Gitlab,
                repository: clip(&repository, 256),
                run_id: h.pipeline_id.map(|p| p.to_string()).unwrap_or_default(),
                job_id: h.build_id.to_string(),
                job_name: clip(&h.build_name, 256),
                // For the heal budget only: a retry has a new job id, so
                // the fact key leaves the attempt out (see `run_attempt`).
                attempt: h.retries_count.unwrap_or(0).saturating_add(1),
                commit: h.sha.map(|s| clip(&s, 64)),
                branch: h.git_ref.map(|s| clip(&s, 256)),
                url: web.map(|w| {
                    clip(
                        &format!("{}/-/jobs/{}", w.trim_end_matches('/'), h.build_id),
                        1024,
                    )
                }),
                api_id: Some(h.project_id.to_string()),
            };
            Ok(Parsed {
                delivery,
                events: vec![EventKind::JobCompleted { job, status }],
                ignored: None,
            })
        }
        "pipeline" => {
            let h: PipelineHook = json(body)?;
            if h.object_attributes.status != "failed" {
                return Ok(Parsed::ignored(
                    delivery,
                    format!("pipeline {}", clip(&h.object_attributes.status, 32)),
                ));
            }
            let repository = h
                .project
                .path_with_namespace
                .clone()
                .unwrap_or_else(|| h.project.id.to_string());
            // Every failed job becomes its own event; a Job Hook about the
            // same job is the same fact (see `EventKind::fact_key`). GitLab
            // gives a retried job a new id, so the key leaves the attempt
            // out, and `builds[]` do not say it anyway.
            let events: Vec<EventKind> = h
                .builds
                .iter()
                .filter(|b| b.status == "failed")
                .take(500)
                .map(|b| EventKind::JobCompleted {
                    job: Job {
                        platform: Platform::Gitlab,
                        repository: clip(&repository, 256),
                        run_id: h.object_attributes.id.to_string(),
                        job_id: b.id.to_string(),
                        job_name: clip(&b.name, 256),
                        attempt: 1,
                        commit: h.object_attributes.sha.as_deref().map(|s| clip(s, 64)),
                        branch: h.object_attributes.git_ref.as_deref().map(|s| clip(s, 256)),
                        url: h.project.web_url.as_deref().map(|w| {
                            clip(
                                &format!("{}/-/jobs/{}", w.trim_end_matches('/'), b.id),
                                1024,
                            )
                        }),
                        api_id: Some(h.project.id.to_string()),
                    },
                    status: JobStatus::Failed,
                })
                .collect();
            if events.is_empty() {
                return Ok(Parsed::ignored(
                    delivery,
                    "failed pipeline lists no failed job",
                ));
            }
            Ok(Parsed {
                delivery,
                events,
                ignored: None,
            })
        }
        other => Ok(Parsed::ignored(
            delivery,
            format!("{} hooks are not used", clip(other, 64)),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_path_comes_from_the_web_url() {
        assert_eq!(
            path_from_url("http://192.168.64.1:3005/gitlab-org/gitlab-test").as_deref(),
            Some("gitlab-org/gitlab-test")
        );
        assert_eq!(path_from_url("https://gitlab.com/"), None);
    }

    #[test]
    fn wrong_token_is_unauthorized() {
        let mut h = HeaderMap::new();
        h.insert("x-gitlab-token", "nope".parse().unwrap());
        assert!(matches!(
            parse(&h, b"{}", Some("yes")),
            Err(WebhookError::Unauthorized(_))
        ));
    }
}
