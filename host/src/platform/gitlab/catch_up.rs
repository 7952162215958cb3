//! Catch-up for GitLab: the project's failed pipelines updated since the
//! watermark, the most recently updated first (`GET /projects/:id/
//! pipelines?status=failed&updated_after=…&order_by=updated_at&sort=desc`),
//! then the jobs of each (`GET /projects/:id/pipelines/:pipeline_id/jobs?
//! include_retried=true`). By pipeline, because a job ending updates its
//! pipeline, while the project's own job listing is ordered by job id: a
//! retried job, or an old pipeline run again, would sit among old jobs and
//! be missed. A listing cut short says when the pipeline it stopped at was
//! updated; the rest is the pipelines updated up to then (`updated_before`).
//!
//! Each failed job not retried since is built as the intake builds it from
//! its Job Hook: the numeric project id in `api_id` (the fact key's
//! project; GitLab's key leaves the attempt out, so the job is one fact
//! with its Job Hook and its Pipeline Hook) and the Job Hook's attempt,
//! `retries_count` + 1. GitLab counts there the pipeline's retried jobs of
//! the same name, whatever their status: hence every job is listed, the
//! retried ones too.

use std::collections::{HashMap, HashSet};

use reqwest::Method;
use serde::Deserialize;

use super::project_ref;
use crate::intake::clip;
use crate::model::{Job, Platform};
use crate::platform::client::Client;
use crate::platform::timestamp::{parse_rfc3339, rfc3339};
use crate::platform::{Failures, PlatformError};

/// Pages of 100 failed pipelines read per project and pass at most.
const MAX_PIPELINE_PAGES: u32 = 10;

/// Pages of 100 jobs read per pipeline at most, retried ones included.
/// GitLab lists them newest first, so past the cap only the oldest runs
/// of a job are unread: its attempt would be counted short.
const MAX_JOB_PAGES: u32 = 10;

/// A pipeline as `GET /projects/:id/pipelines` lists it.
#[derive(Deserialize)]
struct ApiPipeline {
    id: u64,
    #[serde(default)]
    project_id: Option<u64>,
    #[serde(default)]
    status: Option<String>,
    #[serde(rename = "ref", default)]
    git_ref: Option<String>,
    #[serde(default)]
    sha: Option<String>,
    #[serde(default)]
    updated_at: Option<String>,
}

/// A job as `GET /projects/:id/pipelines/:pipeline_id/jobs` lists it.
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
    web_url: Option<String>,
    #[serde(default)]
    commit: Option<ApiCommit>,
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

/// `group/project` from a job's web URL (`https://HOST/group/project/-/jobs/7`).
fn path_from_job_url(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let path = rest.split_once('/')?.1;
    let project = path.split_once("/-/")?.0;
    (!project.is_empty()).then(|| project.to_string())
}

/// A failed job of pipeline `p` as the intake builds a Job Hook's, at
/// `attempt`: `api_id` is the numeric project id (the fact key's project).
/// People read the project's path: as configured, else from the job's URL.
fn listed_job(
    j: ApiJob,
    p: &ApiPipeline,
    attempt: u32,
    project_id: u64,
    watched: &str,
    by_path: bool,
) -> Job {
    let repository = by_path
        .then(|| watched.to_string())
        .or_else(|| j.web_url.as_deref().and_then(path_from_job_url))
        .unwrap_or_else(|| watched.to_string());
    let sha = p.sha.clone().or_else(|| j.commit.and_then(|c| c.id));
    Job {
        platform: Platform::Gitlab,
        repository: clip(&repository, 256),
        run_id: p.id.to_string(),
        job_id: j.id.to_string(),
        job_name: clip(&j.name, 256),
        attempt,
        commit: sha.map(|s| clip(&s, 64)),
        branch: j
            .git_ref
            .or_else(|| p.git_ref.clone())
            .map(|s| clip(&s, 256)),
        url: j.web_url.map(|s| clip(&s, 1024)),
        api_id: Some(project_id.to_string()),
    }
}

/// The failed jobs among all the `jobs` of pipeline `p` that were not
/// retried since, newest first, each at the attempt its Job Hook says. A
/// retry is a new job of the same name with a higher id, so the highest
/// id of a name is its latest run (the others were acted on: retried, by
/// someone or by guard), and GitLab's `retries_count` for it is how many
/// other jobs of that name the pipeline has.
fn latest_failures(
    mut jobs: Vec<ApiJob>,
    p: &ApiPipeline,
    project_id: u64,
    watched: &str,
    by_path: bool,
) -> Vec<Job> {
    jobs.sort_by_key(|j| std::cmp::Reverse(j.id));
    let mut runs: HashMap<String, u32> = HashMap::new();
    for j in &jobs {
        *runs.entry(j.name.clone()).or_default() += 1;
    }
    let mut latest: HashSet<String> = HashSet::new();
    jobs.into_iter()
        .filter(|j| latest.insert(j.name.clone()))
        .filter(|j| j.status.as_deref() == Some("failed"))
        .map(|j| {
            let attempt = runs.get(&j.name).copied().unwrap_or(1);
            listed_job(j, p, attempt, project_id, watched, by_path)
        })
        .collect()
}

/// Every job of pipeline `pipeline_id`, retried ones included.
async fn pipeline_jobs(
    client: &Client,
    project: &str,
    pipeline_id: u64,
) -> Result<Vec<ApiJob>, PlatformError> {
    let path = format!("{project}/pipelines/{pipeline_id}/jobs");
    let mut jobs = Vec::new();
    for page in 1..=MAX_JOB_PAGES {
        let number = page.to_string();
        let listed: Vec<ApiJob> = client
            .json(Method::GET, &path, &|rb| {
                rb.query(&[
                    ("include_retried", "true"),
                    ("per_page", "100"),
                    ("page", number.as_str()),
                ])
            })
            .await?;
        let count = listed.len();
        jobs.extend(listed);
        if count < 100 {
            break;
        }
    }
    Ok(jobs)
}

/// [`Adapter::recent_failures`](crate::platform::Adapter::recent_failures)
/// for GitLab: whole pipelines, the most recently updated first.
pub(super) async fn recent_failures(
    client: &Client,
    watched: &str,
    since_ms: u64,
    until_ms: Option<u64>,
    limit: usize,
) -> Result<Failures, PlatformError> {
    let project = project_ref(watched)?;
    let list = format!("{project}/pipelines");
    // The numeric id names the project in fact keys (webhooks carry
    // it): configured, else said by each pipeline, else looked up once.
    let mut project_id: Option<u64> = watched.parse().ok();
    let by_path = project_id.is_none();
    let mut found = Failures::default();
    if limit == 0 {
        return Ok(found);
    }
    // Whole seconds, where GitLab keeps ms: rounded outwards, so nothing
    // at either bound is left out (what lies just past them is skipped
    // below).
    let after = rfc3339(since_ms);
    let before = until_ms.map(|until| rfc3339(until.saturating_add(1000)));
    // When the last pipeline read was updated: where the listing stands.
    let mut last: Option<u64> = None;
    for page in 1..=MAX_PIPELINE_PAGES {
        let number = page.to_string();
        let pipelines: Vec<ApiPipeline> = client
            .json(Method::GET, &list, &|rb| {
                let mut q: Vec<(&str, &str)> = vec![
                    ("status", "failed"),
                    ("updated_after", after.as_str()),
                    ("order_by", "updated_at"),
                    ("sort", "desc"),
                    ("per_page", "100"),
                    ("page", number.as_str()),
                ];
                if let Some(b) = &before {
                    q.push(("updated_before", b.as_str()));
                }
                rb.query(&q)
            })
            .await?;
        let count = pipelines.len();
        for p in pipelines {
            let updated = p.updated_at.as_deref().and_then(parse_rfc3339);
            // GitLab always says when a pipeline was updated; failing
            // that, a cut there gives up the rest.
            let at = updated.unwrap_or(since_ms);
            last = Some(at);
            let outside =
                updated.is_some_and(|t| t < since_ms || until_ms.is_some_and(|until| t > until));
            if outside || p.status.as_deref().is_some_and(|s| s != "failed") {
                continue;
            }
            if found.jobs.len() >= limit {
                found.rest_until = Some(at);
                return Ok(found);
            }
            let id = match p.project_id.or(project_id) {
                Some(id) => id,
                None => {
                    let looked_up: ApiProject =
                        client.json(Method::GET, &project, &|rb| rb).await?;
                    looked_up.id
                }
            };
            project_id = Some(id);
            let jobs = pipeline_jobs(client, &project, p.id).await?;
            let mut failed = latest_failures(jobs, &p, id, watched, by_path);
            let room = limit - found.jobs.len();
            if failed.len() > room {
                // Whole pipelines, so the rest starts with this one; only
                // a first pipeline larger than the bound is cut.
                found.rest_until = Some(at);
                if found.jobs.is_empty() {
                    failed.truncate(room);
                    found.jobs.extend(failed);
                }
                return Ok(found);
            }
            found.jobs.extend(failed);
        }
        if count < 100 {
            return Ok(found);
        }
    }
    // Every page was full: older pipelines are past the cap, and the rest
    // starts with the last pipeline read.
    found.rest_until = last;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderMap;
    use serde_json::json;

    use super::*;
    use crate::intake::{EventKind, JobStatus, gitlab};

    fn pipeline() -> ApiPipeline {
        serde_json::from_value(json!({
            "id": 2366,
            "project_id": 380,
            "status": "failed",
            "ref": "gitlab-script-trigger",
            "sha": "2293ada6b400935a1378653304eaf6221e0fdb8f",
            "updated_at": "2024-05-01T12:00:00.000Z"
        }))
        .unwrap()
    }

    fn job(id: u64, name: &str, status: &str) -> ApiJob {
        serde_json::from_value(json!({
            "id": id,
            "name": name,
            "status": status,
            "ref": "gitlab-script-trigger",
            "web_url": format!("http://192.168.64.1:3005/gitlab-org/gitlab-test/-/jobs/{id}"),
            "pipeline": { "id": 2366, "project_id": 380 },
            "commit": { "id": "2293ada6b400935a1378653304eaf6221e0fdb8f" }
        }))
        .unwrap()
    }

    /// The events a GitLab webhook `body` brings.
    fn hook(body: &serde_json::Value) -> Vec<EventKind> {
        let mut h = HeaderMap::new();
        h.insert("x-gitlab-token", "t".parse().unwrap());
        let body = serde_json::to_vec(body).unwrap();
        gitlab::parse(&h, &body, Some("t")).unwrap().events
    }

    #[test]
    fn the_latest_run_of_each_failed_job_at_its_attempt() {
        let jobs = vec![
            job(1975, "lint", "success"),
            job(1976, "test", "failed"),
            job(1977, "test", "failed"),
            job(1978, "build", "failed"),
            job(1979, "deploy", "failed"),
            job(1980, "deploy", "success"),
        ];
        let listed = latest_failures(jobs, &pipeline(), 380, "380", false);
        let got: Vec<(&str, u32)> = listed
            .iter()
            .map(|j| (j.job_id.as_str(), j.attempt))
            .collect();
        // 1976 was retried as 1977; `deploy` passed when retried.
        assert_eq!(got, [("1978", 1), ("1977", 2)]);
        let job = &listed[1];
        assert_eq!(job.repository, "gitlab-org/gitlab-test");
        assert_eq!(
            (job.run_id.as_str(), job.api_id.as_deref()),
            ("2366", Some("380"))
        );
        assert_eq!(
            job.commit.as_deref(),
            Some("2293ada6b400935a1378653304eaf6221e0fdb8f")
        );
        assert_eq!(path_from_job_url("https://h/-/jobs/1"), None);
    }

    #[test]
    fn a_listed_retried_job_is_its_job_hook_and_pipeline_hook_fact() {
        // The Job Hook of 1977, the retry of 1976 (`retries_count: 1`).
        let mut body: serde_json::Value = serde_json::from_str(include_str!(
            "../../../../tests/data/fixtures/gitlab/build.json"
        ))
        .unwrap();
        body["build_status"] = "failed".into();
        body["retries_count"] = 1.into();
        let job_hook = hook(&body);
        // The failed Pipeline Hook listing it (`builds[]` say no attempt).
        let mut body: serde_json::Value = serde_json::from_str(include_str!(
            "../../../../tests/data/fixtures/gitlab/pipeline.json"
        ))
        .unwrap();
        body["object_attributes"]["status"] = "failed".into();
        body["object_attributes"]["id"] = 2366.into();
        body["project"]["id"] = 380.into();
        body["builds"][0]["id"] = 1977.into();
        body["builds"][0]["status"] = "failed".into();
        let pipeline_hook = hook(&body);
        let from_pipeline = pipeline_hook
            .iter()
            .find(|e| e.job().job_id == "1977")
            .unwrap();

        let listed = latest_failures(
            vec![job(1976, "test", "failed"), job(1977, "test", "failed")],
            &pipeline(),
            380,
            "gitlab-org/gitlab-test",
            true,
        );
        assert_eq!(listed.len(), 1);
        let caught = EventKind::JobCompleted {
            job: listed[0].clone(),
            status: JobStatus::Failed,
        };
        assert_eq!(caught.fact_key(), "fact:gitlab:380:1977:1:Failed");
        assert_eq!(caught.fact_key(), job_hook[0].fact_key());
        assert_eq!(caught.fact_key(), from_pipeline.fact_key());
        // The attempt, for the heal budget, is the Job Hook's.
        assert_eq!(caught.job().attempt, job_hook[0].job().attempt);
        assert_eq!(caught.job().attempt, 2);
        let hooked = job_hook[0].job();
        assert_eq!(
            (caught.job().run_id.as_str(), caught.job().job_name.as_str()),
            (hooked.run_id.as_str(), hooked.job_name.as_str())
        );
        assert_eq!(caught.job().commit, hooked.commit);
        assert_eq!(caught.job().branch, hooked.branch);
        assert_eq!(caught.job().url, hooked.url);
    }
}
