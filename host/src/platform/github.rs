//! GitHub Actions through the REST API (github.com or GitHub Enterprise
//! Server at `[github] api_url`). Every request here is checked against
//! GitHub's OpenAPI description in the integration tests.

use std::path::Path;

use async_trait::async_trait;
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::client::{Auth, Client};
use super::{Adapter, Download, PlatformError};
use crate::config::{GitHub as Settings, GitHubAnnotate};
use crate::model::{Job, Platform};

/// The GitHub adapter.
#[derive(Debug)]
pub struct GitHub {
    client: Client,
    annotate: GitHubAnnotate,
}

#[derive(Deserialize)]
struct JobsPage {
    jobs: Vec<ApiJob>,
}

#[derive(Deserialize)]
struct ApiJob {
    id: u64,
    name: String,
    #[serde(default)]
    conclusion: Option<String>,
    #[serde(default)]
    run_attempt: Option<u32>,
    #[serde(default)]
    html_url: Option<String>,
}

#[derive(Deserialize)]
struct CachesPage {
    #[serde(default)]
    actions_caches: Vec<Cache>,
}

#[derive(Deserialize)]
struct Cache {
    id: u64,
}

/// `owner/repo` checked to be exactly two safe path segments, so a
/// webhook's repository name can never steer a request elsewhere.
fn repo_path(repository: &str) -> Result<String, PlatformError> {
    let ok = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    match repository.split_once('/') {
        Some((o, r)) if ok(o) && ok(r) => Ok(format!("/repos/{o}/{r}")),
        _ => Err(PlatformError::Protocol {
            platform: "github",
            message: format!("{repository:?} is not an owner/repository name"),
        }),
    }
}

/// A numeric id (run, job, cache).
fn id(s: &str, what: &str) -> Result<u64, PlatformError> {
    s.parse().map_err(|_| PlatformError::Protocol {
        platform: "github",
        message: format!("{what} {s:?} is not a number"),
    })
}

impl GitHub {
    /// An adapter for `[github]`.
    pub fn new(settings: &Settings) -> Result<GitHub, PlatformError> {
        let auth = match &settings.token {
            Some(t) if !t.is_empty() => Auth::Bearer(t.clone()),
            _ => Auth::None,
        };
        Ok(GitHub {
            client: Client::new("github", &settings.api_url, auth)?,
            annotate: settings.annotate,
        })
    }

    fn api(rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        rb.header("accept", "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28")
    }
}

#[async_trait]
impl Adapter for GitHub {
    fn platform(&self) -> Platform {
        Platform::Github
    }

    async fn fetch_log(
        &self,
        job: &Job,
        dest: &Path,
        max_bytes: u64,
    ) -> Result<Download, PlatformError> {
        // Answers 302 to a short-lived storage URL; the client follows it.
        let path = format!(
            "{}/actions/jobs/{}/logs",
            repo_path(&job.repository)?,
            id(&job.job_id, "job id")?
        );
        self.client.download(&path, dest, max_bytes).await
    }

    async fn failed_jobs(&self, run: &Job) -> Result<Vec<Job>, PlatformError> {
        let path = format!(
            "{}/actions/runs/{}/attempts/{}/jobs",
            repo_path(&run.repository)?,
            id(&run.run_id, "run id")?,
            run.attempt.max(1)
        );
        let page: JobsPage = self
            .client
            .json(Method::GET, &path, &|rb| {
                Self::api(rb).query(&[("per_page", "100")])
            })
            .await?;
        Ok(page
            .jobs
            .into_iter()
            .filter(|j| matches!(j.conclusion.as_deref(), Some("failure" | "timed_out")))
            .map(|j| Job {
                platform: Platform::Github,
                repository: run.repository.clone(),
                run_id: run.run_id.clone(),
                job_id: j.id.to_string(),
                job_name: crate::intake::clip(&j.name, 256),
                attempt: j.run_attempt.unwrap_or(run.attempt),
                commit: run.commit.clone(),
                branch: run.branch.clone(),
                url: j.html_url,
                api_id: None,
            })
            .collect())
    }

    async fn rerun_job(&self, job: &Job, debug_logging: bool) -> Result<(), PlatformError> {
        let path = format!(
            "{}/actions/jobs/{}/rerun",
            repo_path(&job.repository)?,
            id(&job.job_id, "job id")?
        );
        let body = json!({ "enable_debug_logging": debug_logging });
        self.client
            .send(Method::POST, &path, &|rb| Self::api(rb).json(&body))
            .await?;
        Ok(())
    }

    async fn rerun_failed_jobs(&self, job: &Job, debug_logging: bool) -> Result<(), PlatformError> {
        let path = format!(
            "{}/actions/runs/{}/rerun-failed-jobs",
            repo_path(&job.repository)?,
            id(&job.run_id, "run id")?
        );
        let body = json!({ "enable_debug_logging": debug_logging });
        self.client
            .send(Method::POST, &path, &|rb| Self::api(rb).json(&body))
            .await?;
        Ok(())
    }

    async fn clear_caches(&self, job: &Job, prefix: &str) -> Result<u32, PlatformError> {
        let repo = repo_path(&job.repository)?;
        let list = format!("{repo}/actions/caches");
        // Only the job's own branch: caches of other branches (the default
        // branch above all) are shared and not this job's to throw away.
        let git_ref = job.branch.as_ref().map(|b| {
            if b.starts_with("refs/") {
                b.clone()
            } else {
                format!("refs/heads/{b}")
            }
        });
        let mut deleted = 0u32;
        // Each pass lists the first page of what is left; at most 10 pages.
        for _ in 0..10 {
            let page: CachesPage = self
                .client
                .json(Method::GET, &list, &|rb| {
                    let mut q: Vec<(&str, &str)> = vec![("key", prefix), ("per_page", "100")];
                    if let Some(r) = &git_ref {
                        q.push(("ref", r));
                    }
                    Self::api(rb).query(&q)
                })
                .await?;
            if page.actions_caches.is_empty() {
                break;
            }
            for c in &page.actions_caches {
                let path = format!("{repo}/actions/caches/{}", c.id);
                match self.client.send(Method::DELETE, &path, &Self::api).await {
                    Ok(_) => deleted += 1,
                    // Deleted meanwhile (another job, or expiry): fine.
                    Err(PlatformError::Status { status: 404, .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(deleted)
    }

    async fn cancel(&self, job: &Job) -> Result<(), PlatformError> {
        let path = format!(
            "{}/actions/runs/{}/cancel",
            repo_path(&job.repository)?,
            id(&job.run_id, "run id")?
        );
        self.client.send(Method::POST, &path, &Self::api).await?;
        Ok(())
    }

    async fn annotate(&self, job: &Job, title: &str, body: &str) -> Result<(), PlatformError> {
        let repo = repo_path(&job.repository)?;
        let sha = job
            .commit
            .as_deref()
            .filter(|s| s.bytes().all(|b| b.is_ascii_hexdigit()) && !s.is_empty())
            .ok_or_else(|| PlatformError::Protocol {
                platform: "github",
                message: "the job has no commit sha to annotate".into(),
            })?;
        match self.annotate {
            GitHubAnnotate::CommitComment => {
                let path = format!("{repo}/commits/{sha}/comments");
                let text = format!("**guard: {title}** ({})\n\n{body}", job.job_name);
                let payload = json!({ "body": text });
                self.client
                    .send(Method::POST, &path, &|rb| Self::api(rb).json(&payload))
                    .await?;
            }
            GitHubAnnotate::CheckRun => {
                let path = format!("{repo}/check-runs");
                let payload = json!({
                    "name": format!("guard: {}", job.job_name),
                    "head_sha": sha,
                    "status": "completed",
                    "conclusion": "neutral",
                    "details_url": job.url,
                    "output": { "title": title, "summary": body },
                });
                self.client
                    .send(Method::POST, &path, &|rb| Self::api(rb).json(&payload))
                    .await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names_cannot_escape_the_repos_path() {
        assert_eq!(
            repo_path("octo-org/octo.repo").unwrap(),
            "/repos/octo-org/octo.repo"
        );
        for bad in ["a/b/c", "../x", "a/..", "a", "a/b?x=1", "a/b#", "a /b"] {
            assert!(repo_path(bad).is_err(), "{bad}");
        }
    }
}
