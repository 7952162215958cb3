//! Catch-up for Jenkins: a job's builds, newest first, 50 at a time
//! (`api/json?tree=fullName,allBuilds[…]{0,50}`), each failed one built as
//! the intake builds it from a notification: the job's path as Jenkins
//! spells it in `api_id`, the build number as run and job id, attempt 1 —
//! one fact either way. The path is made from the `fullName` Jenkins
//! answers, not from `[jenkins] jobs`: Jenkins finds an item whatever the
//! letter case (`Asgard-Web` reaches `asgard-web`), and its notifications
//! name the job as Jenkins does. A listing cut short says when the build
//! it stopped at started; the rest is the builds started up to then.

use reqwest::Method;
use serde::Deserialize;

use super::{JobPath, display_name};
use crate::intake::clip;
use crate::model::{Job, Platform};
use crate::platform::client::Client;
use crate::platform::{Failures, PlatformError};

/// What catch-up reads of a build: what tells a failed one, when it ended
/// (`timestamp` is the start, in ms) and the commit the git plugin built
/// (what a notification's `scm` says; the heal budget is per commit).
const BUILD_FIELDS: &str =
    "number,result,timestamp,duration,url,actions[lastBuiltRevision[SHA1,branch[name]]]";

/// Builds read per request.
const BUILDS_PER_PAGE: usize = 50;

/// Requests per job and pass at most: its last 500 builds. `allBuilds`
/// rather than `builds`, which Jenkins stops at the last 100.
const MAX_BUILD_PAGES: usize = 10;

/// A job as catch-up reads it: its full name and a page of its builds.
#[derive(Deserialize)]
struct Builds {
    /// Item names from the top folder down, `/` between them, in the
    /// letter case Jenkins keeps.
    #[serde(default, rename = "fullName")]
    full_name: Option<String>,
    #[serde(default, rename = "allBuilds")]
    builds: Vec<ApiBuild>,
}

/// A build as [`BUILD_FIELDS`] reads it.
#[derive(Deserialize)]
struct ApiBuild {
    number: u64,
    #[serde(default)]
    result: Option<String>,
    #[serde(default)]
    timestamp: u64,
    #[serde(default)]
    duration: u64,
    #[serde(default)]
    url: Option<String>,
    /// Most actions are `{}` under the tree filter; Jenkins may list
    /// `null`s too.
    #[serde(default)]
    actions: Vec<Option<BuildAction>>,
}

/// The git plugin's `BuildData` action, when the build has one.
#[derive(Deserialize)]
struct BuildAction {
    #[serde(default, rename = "lastBuiltRevision")]
    last_built_revision: Option<Revision>,
}

#[derive(Deserialize)]
struct Revision {
    #[serde(default, rename = "SHA1")]
    sha1: Option<String>,
    #[serde(default)]
    branch: Vec<RevisionBranch>,
}

#[derive(Deserialize)]
struct RevisionBranch {
    #[serde(default)]
    name: Option<String>,
}

/// The job as Jenkins names it, from the `fullName` it answers. A name
/// Jenkins gave cannot fail the checks; if it did (or said none), the
/// configured path still reaches the job.
fn named_path(full_name: Option<&str>, configured: &JobPath) -> JobPath {
    full_name
        .and_then(|name| JobPath::from_full_name(name).ok())
        .unwrap_or_else(|| configured.clone())
}

/// A failed build of `path` as the intake builds it from a notification;
/// the commit and branch are the git plugin's last built revision (the
/// first one, when a build checked out several repositories).
fn listed_build(path: &JobPath, b: ApiBuild) -> Job {
    let revision = b
        .actions
        .iter()
        .flatten()
        .filter_map(|a| a.last_built_revision.as_ref())
        .find(|r| r.sha1.is_some());
    let commit = revision
        .and_then(|r| r.sha1.as_deref())
        .map(|s| clip(s, 64));
    let branch = revision
        .and_then(|r| r.branch.first())
        .and_then(|br| br.name.as_deref())
        .map(|s| clip(s, 256));
    Job {
        platform: Platform::Jenkins,
        repository: clip(&path.display(), 512),
        run_id: b.number.to_string(),
        job_id: b.number.to_string(),
        job_name: clip(&display_name(path.name()), 256),
        attempt: 1,
        commit,
        branch,
        url: b.url.map(|s| clip(&s, 1024)),
        api_id: Some(path.url_path()),
    }
}

/// [`Adapter::recent_failures`](crate::platform::Adapter::recent_failures)
/// for Jenkins: the job's builds, newest first.
pub(super) async fn recent_failures(
    client: &Client,
    watched: &str,
    since_ms: u64,
    until_ms: Option<u64>,
    limit: usize,
) -> Result<Failures, PlatformError> {
    let configured = JobPath::from_config(watched).map_err(|e| PlatformError::Protocol {
        platform: "jenkins",
        message: e.to_string(),
    })?;
    let api = format!("/{}/api/json", configured.url_path());
    let mut found = Failures::default();
    if limit == 0 {
        return Ok(found);
    }
    // The job as Jenkins names it, once the first page says.
    let mut named: Option<JobPath> = None;
    // When the last build read started: where the listing stands.
    let mut last: Option<u64> = None;
    for page in 0..MAX_BUILD_PAGES {
        let from = page * BUILDS_PER_PAGE;
        let tree = format!(
            "fullName,allBuilds[{BUILD_FIELDS}]{{{from},{}}}",
            from + BUILDS_PER_PAGE
        );
        let got: Builds = client
            .json(Method::GET, &api, &|rb| {
                rb.query(&[("tree", tree.as_str())])
            })
            .await?;
        let path = named.get_or_insert_with(|| named_path(got.full_name.as_deref(), &configured));
        let count = got.builds.len();
        let mut recent = false;
        // Newest first, as Jenkins lists them.
        for b in got.builds {
            last = Some(b.timestamp);
            let ended = b.timestamp.saturating_add(b.duration);
            if ended < since_ms {
                continue;
            }
            recent = true;
            // UNSTABLE is how Jenkins marks a build whose tests failed;
            // a build still running has no result yet.
            let failed = matches!(b.result.as_deref(), Some("FAILURE" | "UNSTABLE"));
            if !failed || until_ms.is_some_and(|until| b.timestamp > until) {
                continue;
            }
            if found.jobs.len() >= limit {
                found.rest_until = Some(b.timestamp);
                return Ok(found);
            }
            found.jobs.push(listed_build(path, b));
        }
        // Builds are listed by number, so by start: a page of which
        // nothing ended since means the pages after it are older still.
        if count < BUILDS_PER_PAGE || !recent {
            return Ok(found);
        }
    }
    // Every page was full and recent: older builds are past the cap,
    // and the rest starts with the last build read.
    found.rest_until = last;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderMap;

    use super::*;
    use crate::intake::{EventKind, JobStatus, jenkins};

    #[test]
    fn listed_builds_are_the_facts_their_notifications_are() {
        let path = JobPath::from_config("p/feature%2Fx").unwrap();
        let build: ApiBuild = serde_json::from_value(serde_json::json!({
            "number": 7, "result": "FAILURE", "timestamp": 1, "duration": 2,
            "url": "http://j/job/p/job/feature%252Fx/7/",
            "actions": [
                null,
                { "_class": "hudson.model.CauseAction" },
                { "_class": "hudson.plugins.git.util.BuildData",
                  "lastBuiltRevision": { "SHA1": "c47a4f3f", "branch": [{ "SHA1": "c47a4f3f", "name": "feature/x" }] } }
            ]
        }))
        .unwrap();
        let job = listed_build(&path, build);
        assert_eq!(
            (job.repository.as_str(), job.job_name.as_str()),
            ("p/feature/x", "feature/x")
        );
        assert_eq!(
            (job.commit.as_deref(), job.branch.as_deref()),
            (Some("c47a4f3f"), Some("feature/x"))
        );
        let event = crate::intake::EventKind::JobCompleted {
            job,
            status: crate::intake::JobStatus::Failed,
        };
        assert_eq!(
            event.fact_key(),
            "fact:jenkins:job/p/job/feature%252Fx:7:1:Failed"
        );
    }

    #[test]
    fn a_job_configured_in_other_letters_is_named_as_jenkins_names_it() {
        let configured = JobPath::from_config("Asgard-Web").unwrap();
        let named = named_path(Some("asgard-web"), &configured);
        assert_eq!(named.url_path(), "job/asgard-web");
        assert_eq!(named_path(None, &configured), configured);
        assert_eq!(named_path(Some("a/../b"), &configured), configured);
        let build = |path: &JobPath| {
            let b: ApiBuild = serde_json::from_value(serde_json::json!({
                "number": 18, "result": "FAILURE", "timestamp": 1, "duration": 2
            }))
            .unwrap();
            EventKind::JobCompleted {
                job: listed_build(path, b),
                status: JobStatus::Failed,
            }
        };
        // The notification of the same build, as the plugin sends it.
        let body = serde_json::json!({
            "name": "asgard-web",
            "url": "job/asgard-web/",
            "build": { "number": 18, "phase": "FINALIZED", "status": "FAILURE" }
        });
        let notified = jenkins::parse(
            &HeaderMap::new(),
            Some("t"),
            &serde_json::to_vec(&body).unwrap(),
            Some("t"),
        )
        .unwrap();
        assert_eq!(build(&named).fact_key(), notified.events[0].fact_key());
        assert_ne!(build(&configured).fact_key(), notified.events[0].fact_key());
    }
}
