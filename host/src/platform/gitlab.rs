//! GitLab CI through the REST API v4 (gitlab.com or a self-hosted instance
//! at `[gitlab] url`), authenticated with `PRIVATE-TOKEN`.
//!
//! Catch-up lists a project's failed jobs (`scope[]=failed`, newest first)
//! and builds each as the intake builds a failed job of a Pipeline Hook:
//! the numeric project id in `api_id` and attempt 1 (a retry is a new job
//! id), so the job is one fact with its Job Hook and Pipeline Hook.

use std::path::Path;

use async_trait::async_trait;
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::client::{Auth, Client};
use super::timestamp::parse_rfc3339;
use super::{Adapter, Download, PlatformError};
use crate::config::GitLab as Settings;
use crate::intake::clip;
use crate::model::{Job, Platform};

/// Pages of 100 failed jobs read per project and pass at most.
const MAX_JOB_PAGES: u32 = 10;

/// The GitLab adapter.
#[derive(Debug)]
pub struct GitLab {
    client: Client,
}

/// A job as `GET /projects/:id/jobs` lists it.
#[derive(Deserialize)]
struct ApiJob {
    id: u64,
    #[serde(default)]
    name: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(rename = "ref", default)]
    git_ref: Option<String>,
    #[serde(default)]
    finished_at: Option<String>,
    #[serde(default)]
    web_url: Option<String>,
    #[serde(default)]
    pipeline: Option<ApiPipeline>,
    #[serde(default)]
    commit: Option<ApiCommit>,
}

#[derive(Deserialize)]
struct ApiPipeline {
    #[serde(default)]
    id: Option<u64>,
    #[serde(default)]
    project_id: Option<u64>,
    #[serde(default)]
    sha: Option<String>,
}

#[derive(Deserialize)]
struct ApiCommit {
    #[serde(default)]
    id: Option<String>,
}

#[derive(Deserialize)]
struct ApiProject {
    id: u64,
}

fn num(s: &str, what: &str) -> Result<u64, PlatformError> {
    s.parse().map_err(|_| PlatformError::Protocol {
        platform: "gitlab",
        message: format!("{what} {s:?} is not a number"),
    })
}

/// `/projects/:id` by numeric id (webhooks carry it), else by URL-encoded path.
fn project(job: &Job) -> Result<String, PlatformError> {
    if let Some(id) = &job.api_id {
        return Ok(format!("/projects/{}", num(id, "project id")?));
    }
    encoded_project(&job.repository)
}

/// `/projects/:id` for a project as `[gitlab] projects` names it: a
/// numeric id, or a path (`group/sub/app`) URL-encoded (also how the
/// list is checked when the config is loaded).
pub(crate) fn project_ref(watched: &str) -> Result<String, PlatformError> {
    if !watched.is_empty() && watched.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(format!("/projects/{}", num(watched, "project id")?));
    }
    encoded_project(watched)
}

/// `/projects/<path URL-encoded>`, refusing empty, `.` and `..` segments.
fn encoded_project(path: &str) -> Result<String, PlatformError> {
    if path.is_empty()
        || path
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(PlatformError::Protocol {
            platform: "gitlab",
            message: format!("{path:?} is not a project path"),
        });
    }
    let encoded: String = path
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    Ok(format!("/projects/{encoded}"))
}

/// `group/project` from a job's web URL (`https://HOST/group/project/-/jobs/7`).
fn path_from_job_url(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let path = rest.split_once('/')?.1;
    let project = path.split_once("/-/")?.0;
    (!project.is_empty()).then(|| project.to_string())
}

/// A listed failed job as the intake builds a Pipeline Hook's: `api_id`
/// is the numeric project id (the fact key's project), the attempt 1.
/// People read the project's path: as configured, else from the job's URL.
fn listed_job(j: ApiJob, project_id: u64, watched: &str, by_path: bool) -> Job {
    let repository = by_path
        .then(|| watched.to_string())
        .or_else(|| j.web_url.as_deref().and_then(path_from_job_url))
        .unwrap_or_else(|| watched.to_string());
    let pipeline = j.pipeline;
    let run_id = pipeline.as_ref().and_then(|p| p.id);
    let sha = pipeline
        .and_then(|p| p.sha)
        .or_else(|| j.commit.and_then(|c| c.id));
    Job {
        platform: Platform::Gitlab,
        repository: clip(&repository, 256),
        run_id: run_id.map(|id| id.to_string()).unwrap_or_default(),
        job_id: j.id.to_string(),
        job_name: clip(&j.name, 256),
        attempt: 1,
        commit: sha.map(|s| clip(&s, 64)),
        branch: j.git_ref.map(|s| clip(&s, 256)),
        url: j.web_url.map(|s| clip(&s, 1024)),
        api_id: Some(project_id.to_string()),
    }
}

impl GitLab {
    /// An adapter for `[gitlab]`.
    pub fn new(settings: &Settings) -> Result<GitLab, PlatformError> {
        let auth = match &settings.token {
            Some(t) if !t.is_empty() => Auth::Header("private-token", t.clone()),
            _ => Auth::None,
        };
        let base = format!("{}/api/v4", settings.url.trim_end_matches('/'));
        Ok(GitLab {
            client: Client::new("gitlab", &base, auth)?,
        })
    }
}

#[async_trait]
impl Adapter for GitLab {
    fn share_quota(&self, store: &crate::store::Store) {
        self.client.share_quota(store);
    }

    fn platform(&self) -> Platform {
        Platform::Gitlab
    }

    async fn fetch_log(
        &self,
        job: &Job,
        dest: &Path,
        max_bytes: u64,
    ) -> Result<Download, PlatformError> {
        let path = format!(
            "{}/jobs/{}/trace",
            project(job)?,
            num(&job.job_id, "job id")?
        );
        self.client.download(&path, dest, max_bytes).await
    }

    async fn failed_jobs(&self, _run: &Job) -> Result<Vec<Job>, PlatformError> {
        // Pipeline Hooks list their jobs; there is nothing to look up.
        Ok(Vec::new())
    }

    async fn recent_failures(
        &self,
        watched: &str,
        since_ms: u64,
        limit: usize,
    ) -> Result<Vec<Job>, PlatformError> {
        let project = project_ref(watched)?;
        let list = format!("{project}/jobs");
        // The numeric id names the project in fact keys (webhooks carry
        // it): configured, else said by each job's pipeline, else looked
        // up once.
        let mut project_id: Option<u64> = watched.parse().ok();
        let by_path = project_id.is_none();
        let mut jobs = Vec::new();
        if limit == 0 {
            return Ok(jobs);
        }
        for page in 1..=MAX_JOB_PAGES {
            let number = page.to_string();
            let listed: Vec<ApiJob> = self
                .client
                .json(Method::GET, &list, &|rb| {
                    rb.query(&[
                        ("scope[]", "failed"),
                        ("per_page", "100"),
                        ("page", number.as_str()),
                    ])
                })
                .await?;
            let count = listed.len();
            let mut recent = false;
            for j in listed {
                let finished = j.finished_at.as_deref().and_then(parse_rfc3339);
                if finished.is_none_or(|at| at < since_ms) {
                    continue;
                }
                recent = true;
                if j.status.as_deref().is_some_and(|s| s != "failed") {
                    continue;
                }
                let id = match j
                    .pipeline
                    .as_ref()
                    .and_then(|p| p.project_id)
                    .or(project_id)
                {
                    Some(id) => id,
                    None => {
                        let p: ApiProject =
                            self.client.json(Method::GET, &project, &|rb| rb).await?;
                        project_id = Some(p.id);
                        p.id
                    }
                };
                jobs.push(listed_job(j, id, watched, by_path));
                if jobs.len() >= limit {
                    return Ok(jobs);
                }
            }
            // Listed newest first: a full page of which nothing finished
            // since means the pages after it are older still.
            if count < 100 || !recent {
                break;
            }
        }
        Ok(jobs)
    }

    async fn rerun_job(&self, job: &Job, _debug_logging: bool) -> Result<(), PlatformError> {
        let path = format!(
            "{}/jobs/{}/retry",
            project(job)?,
            num(&job.job_id, "job id")?
        );
        self.client.send(Method::POST, &path, &|rb| rb).await?;
        Ok(())
    }

    async fn rerun_failed_jobs(
        &self,
        job: &Job,
        _debug_logging: bool,
    ) -> Result<(), PlatformError> {
        let path = format!(
            "{}/pipelines/{}/retry",
            project(job)?,
            num(&job.run_id, "pipeline id")?
        );
        self.client.send(Method::POST, &path, &|rb| rb).await?;
        Ok(())
    }

    async fn clear_caches(&self, _job: &Job, _prefix: &str) -> Result<u32, PlatformError> {
        Err(PlatformError::Unsupported(
            "GitLab has no API to clear runner caches (use a new cache key)".into(),
        ))
    }

    async fn cancel(&self, job: &Job) -> Result<(), PlatformError> {
        let path = format!(
            "{}/jobs/{}/cancel",
            project(job)?,
            num(&job.job_id, "job id")?
        );
        self.client.send(Method::POST, &path, &|rb| rb).await?;
        Ok(())
    }

    async fn annotate(&self, job: &Job, title: &str, body: &str) -> Result<(), PlatformError> {
        let sha = job
            .commit
            .as_deref()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| PlatformError::Protocol {
                platform: "gitlab",
                message: "the job has no commit sha to comment on".into(),
            })?;
        let path = format!("{}/repository/commits/{sha}/comments", project(job)?);
        let note =
            json!({ "note": format!("**guard: {title}** (job {})\n\n{body}", job.job_name) });
        self.client
            .send(Method::POST, &path, &|rb| rb.json(&note))
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projects_by_id_or_encoded_path() {
        let mut j = Job {
            repository: "group/sub/app".into(),
            ..Job::default()
        };
        assert_eq!(project(&j).unwrap(), "/projects/group%2Fsub%2Fapp");
        j.api_id = Some("380".into());
        assert_eq!(project(&j).unwrap(), "/projects/380");
        j.api_id = None;
        j.repository = "a/../b".into();
        assert!(project(&j).is_err());
    }

    #[test]
    fn watched_projects_by_id_or_path() {
        assert_eq!(project_ref("380").unwrap(), "/projects/380");
        assert_eq!(project_ref("group/app").unwrap(), "/projects/group%2Fapp");
        for bad in ["", "a//b", "../b", "a/.", "/a"] {
            assert!(project_ref(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn listed_jobs_are_the_facts_their_webhooks_are() {
        let listed: ApiJob = serde_json::from_value(json!({
            "id": 1977,
            "name": "test",
            "status": "failed",
            "ref": "main",
            "finished_at": "2024-05-01T12:00:00.000Z",
            "web_url": "https://gitlab.example.com/group/sub/app/-/jobs/1977",
            "pipeline": { "id": 2366, "project_id": 380, "sha": "2293ada6", "ref": "main" },
            "commit": { "id": "2293ada6" }
        }))
        .unwrap();
        let job = listed_job(listed, 380, "380", false);
        assert_eq!(job.repository, "group/sub/app");
        assert_eq!(
            (job.run_id.as_str(), job.job_id.as_str(), job.attempt),
            ("2366", "1977", 1)
        );
        assert_eq!(job.api_id.as_deref(), Some("380"));
        assert_eq!(job.commit.as_deref(), Some("2293ada6"));
        let event = crate::intake::EventKind::JobCompleted {
            job,
            status: crate::intake::JobStatus::Failed,
        };
        assert_eq!(event.fact_key(), "fact:gitlab:380:1977:1:Failed");
        assert_eq!(path_from_job_url("https://h/-/jobs/1"), None);
    }
}
