//! GitHub Actions through the REST API (github.com or GitHub Enterprise
//! Server at `[github] api_url`). Every request here is checked against
//! GitHub's OpenAPI description in the integration tests.
//!
//! Catch-up lists a repository's failed workflow runs and expands each
//! into its failed jobs the way a `workflow_run` webhook is expanded, so a
//! job found either way is the same fact as its `workflow_job` webhook.
//! Runs are listed newest created first; a listing cut short says the
//! creation time of the run it stopped at, and the rest is the runs
//! created up to then (`created=FROM..UNTIL`).

use std::path::Path;

use async_trait::async_trait;
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::client::{Auth, Client};
use super::timestamp::{parse_rfc3339, rfc3339};
use super::{Adapter, Download, Failures, PlatformError};
use crate::config::{GitHub as Settings, GitHubAnnotate};
use crate::intake::clip;
use crate::intake::github::WorkflowRun;
use crate::model::{Job, Platform};

pub mod app;

/// How long before `since` a run may have been created and still have
/// failed after it: GitHub's runs are listed by creation time, and a run
/// may last far beyond one job's 6 hours — sequential jobs, self-hosted
/// runners (5 days per job), deployments waiting for approval, re-runs of
/// an older run (which keep its `created_at`). Three days covers all but
/// the longest approvals. Runs that ended before `since` are dropped by
/// their `updated_at`, and the listing stays bounded by its page cap.
const RUN_SPAN_MS: u64 = 72 * 3_600_000;

/// Pages of 100 failed runs read per repository and pass at most (GitHub
/// answers at most 1,000 results to a filtered listing anyway).
const MAX_RUN_PAGES: u32 = 10;

/// Pages of 100 jobs read per run attempt at most. A matrix makes at most
/// 256 jobs, so 1,000 jobs is every job of any real run; the jobs of a run
/// past that would not be looked at.
const MAX_JOB_PAGES: u32 = 10;

/// The GitHub adapter.
#[derive(Debug)]
pub struct GitHub {
    client: Client,
    annotate: GitHubAnnotate,
    /// Set when guard is a GitHub App (`[github.app]`).
    app: Option<app::App>,
}

#[derive(Deserialize)]
struct JobsPage {
    /// Every job of the attempt, over all pages.
    #[serde(default)]
    total_count: Option<usize>,
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
struct RunsPage {
    #[serde(default)]
    workflow_runs: Vec<WorkflowRun>,
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
/// webhook's repository name can never steer a request elsewhere (also
/// how `[github] repositories` are checked when the config is loaded).
pub(crate) fn repo_path(repository: &str) -> Result<String, PlatformError> {
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
            app: match &settings.app {
                Some(a) => Some(app::App::new(&settings.api_url, a)?),
                None => None,
            },
        })
    }

    fn api(rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        rb.header("accept", "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28")
    }
}

#[async_trait]
impl Adapter for GitHub {
    async fn redeliver_missed(
        &self,
        since_ms: u64,
        seen: &(dyn for<'a> Fn(&'a str) -> bool + Send + Sync),
        limit: usize,
    ) -> Result<super::Redelivered, PlatformError> {
        let Some(app) = &self.app else {
            return Ok(super::Redelivered::default());
        };
        let failed = app.failed_deliveries(since_ms, limit).await?;
        let mut done = super::Redelivered {
            listed: failed.len(),
            ..Default::default()
        };
        let mut asked = std::collections::HashSet::new();
        for d in failed {
            // Attempts of one delivery share its guid: ask once, and not
            // for what guard received after all (a later attempt).
            if !d.missed() || seen(&d.guid) || !asked.insert(d.guid.clone()) {
                continue;
            }
            app.redeliver(d.id).await?;
            done.requested.push(d.guid);
        }
        Ok(done)
    }

    fn share_quota(&self, store: &crate::store::Store) {
        self.client.share_quota(store);
    }

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
        let mut listed: Vec<ApiJob> = Vec::new();
        for page in 1..=MAX_JOB_PAGES {
            let number = page.to_string();
            let got: JobsPage = self
                .client
                .json(Method::GET, &path, &|rb| {
                    Self::api(rb).query(&[("per_page", "100"), ("page", number.as_str())])
                })
                .await?;
            let count = got.jobs.len();
            listed.extend(got.jobs);
            // A short page is the last; so is one that brings the jobs
            // read to what GitHub counts (a full last page).
            if count < 100 || got.total_count.is_some_and(|total| listed.len() >= total) {
                break;
            }
        }
        Ok(listed
            .into_iter()
            .filter(|j| matches!(j.conclusion.as_deref(), Some("failure" | "timed_out")))
            // As the intake reads a `workflow_job` webhook: the job's own
            // attempt (part of the fact key), at least 1.
            .map(|j| Job {
                platform: Platform::Github,
                repository: run.repository.clone(),
                run_id: run.run_id.clone(),
                job_id: j.id.to_string(),
                job_name: clip(&j.name, 256),
                attempt: j.run_attempt.unwrap_or(run.attempt).max(1),
                commit: run.commit.clone(),
                branch: run.branch.clone(),
                url: j.html_url.map(|u| clip(&u, 1024)),
                api_id: None,
            })
            .collect())
    }

    async fn recent_failures(
        &self,
        watched: &str,
        since_ms: u64,
        until_ms: Option<u64>,
        limit: usize,
    ) -> Result<Failures, PlatformError> {
        let list = format!("{}/actions/runs", repo_path(watched)?);
        let mut found = Failures::default();
        if limit == 0 {
            return Ok(found);
        }
        // Whole seconds, as GitHub writes `created_at`: the bounds are exact
        // for the creation times the rest of a listing is cut at.
        let from = rfc3339(since_ms.saturating_sub(RUN_SPAN_MS));
        let range = match until_ms {
            Some(until) => format!("{from}..{}", rfc3339(until)),
            None => format!(">={from}"),
        };
        // When the last run read was created: where the listing stands.
        let mut last: Option<u64> = None;
        for page in 1..=MAX_RUN_PAGES {
            let number = page.to_string();
            let runs: RunsPage = self
                .client
                .json(Method::GET, &list, &|rb| {
                    Self::api(rb).query(&[
                        ("status", "failure"),
                        ("created", range.as_str()),
                        ("per_page", "100"),
                        ("page", number.as_str()),
                    ])
                })
                .await?;
            let listed = runs.workflow_runs.len();
            // Newest first, as GitHub lists them.
            for r in runs.workflow_runs {
                let created = r.created_at.as_deref().and_then(parse_rfc3339);
                let ended = r.updated_at.as_deref().and_then(parse_rfc3339);
                // GitHub always says when a run was created; failing that,
                // when it last changed is no earlier, so nothing is skipped.
                let at = created.or(ended).unwrap_or(since_ms);
                last = Some(at);
                let failed = matches!(r.conclusion.as_deref(), Some("failure" | "timed_out"));
                if !failed
                    || ended.is_some_and(|t| t < since_ms)
                    || until_ms.is_some_and(|until| created.is_some_and(|c| c > until))
                {
                    continue;
                }
                if found.jobs.len() >= limit {
                    found.rest_until = Some(at);
                    return Ok(found);
                }
                // The run as the intake reads a failed `workflow_run`; the
                // listing names the repository as GitHub spells it, which
                // is what a webhook's `repository.full_name` says too.
                let repository = r
                    .repository
                    .as_ref()
                    .map_or(watched, |repo| repo.full_name.as_str())
                    .to_string();
                let run = r.into_job(&repository);
                let mut failed_jobs = self.failed_jobs(&run).await?;
                let room = limit - found.jobs.len();
                if failed_jobs.len() > room {
                    // Whole runs, so the rest starts with this one; only a
                    // first run larger than the bound is cut.
                    found.rest_until = Some(at);
                    if found.jobs.is_empty() {
                        failed_jobs.truncate(room);
                        found.jobs.extend(failed_jobs);
                    }
                    return Ok(found);
                }
                found.jobs.extend(failed_jobs);
            }
            if listed < 100 {
                return Ok(found);
            }
        }
        // Every page was full: older runs are past the cap, and the rest
        // starts with the last run read.
        found.rest_until = last;
        Ok(found)
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
