//! GitLab CI through the REST API v4 (gitlab.com or a self-hosted instance
//! at `[gitlab] url`), authenticated with `PRIVATE-TOKEN`.
//!
//! Catch-up (`gitlab/catch_up.rs`) lists a project's failed pipelines by
//! when they were updated, and the failed jobs of each as their Job Hooks
//! say them.

mod catch_up;

use std::path::Path;

use async_trait::async_trait;
use reqwest::Method;
use serde_json::json;

use super::client::{Auth, Client};
use super::{Adapter, Download, Failures, PlatformError};
use crate::config::GitLab as Settings;
use crate::model::{Job, Platform};

/// The GitLab adapter.
#[derive(Debug)]
pub struct GitLab {
    client: Client,
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
        until_ms: Option<u64>,
        limit: usize,
    ) -> Result<Failures, PlatformError> {
        catch_up::recent_failures(&self.client, watched, since_ms, until_ms, limit).await
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
}
