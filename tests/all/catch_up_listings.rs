//! What catch-up lists, and how far: a listing cut short is taken up where
//! it stopped, GitLab's failures are found by the pipelines they updated,
//! and a job caught up is the fact its webhooks are — a GitLab job retried
//! at its Job Hook's attempt, a Jenkins job by the name Jenkins gives it,
//! whatever letter case guard.toml uses.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use guard::config::CatchUp;
use guard::model::Platform;
use guard::platform::timestamp::rfc3339;
use guard::store::now_ms;
use serde_json::{Value, json};

use crate::catch_up::{gitlab_hook, jenkins_failure, records, records_of, started};
use crate::daemon::{BUILD_LOG, NET_LOG, fixture};
use crate::fake::Fake;

/// The commit of the GitLab webhook fixtures.
const SHA: &str = "2293ada6b400935a1378653304eaf6221e0fdb8f";

/// The commit a Jenkins build built.
const JENKINS_SHA: &str = "c47a4f3f2d2a1c0f0f0d9b8a7f6e5d4c3b2a1f0e";

#[tokio::test]
async fn a_listing_cut_short_keeps_its_watermark_and_the_next_passes_list_the_rest() {
    let fake = Fake::start(false).await;
    let now = now_ms();
    // Five failed pipelines of one job each, a minute apart: 4005, the
    // newest, a minute ago.
    let jobs: Vec<Value> = (0..5u64)
        .map(|i| {
            json!({
                "id": 4005 - i,
                "name": "test",
                "status": "failed",
                "finished_at": rfc3339(now - (i + 1) * 60_000),
                "pipeline": { "id": 45 - i, "project_id": 380, "sha": SHA }
            })
        })
        .collect();
    fake.set_gitlab_jobs(Value::Array(jobs));
    let ids = ["4005", "4004", "4003", "4002", "4001"];
    for id in ids {
        fake.set_log(id, BUILD_LOG);
    }
    // The test drives the passes itself, two jobs each.
    let h = started(fake, |c| {
        c.gitlab.as_mut().unwrap().projects = vec!["380".into()];
        c.catch_up = CatchUp {
            interval_secs: 0,
            max_jobs: 2,
            ..CatchUp::default()
        };
    })
    .await;
    let mark = || {
        h.daemon
            .catch_up_watermark(Platform::Gitlab, "380")
            .unwrap()
    };
    let first = h.daemon.catch_up().await;
    assert_eq!(
        (first.found, first.queued, first.unfinished),
        (2, 2, 1),
        "{first:?}"
    );
    assert_eq!(mark(), None, "older failures are not listed yet");
    let before_second = now_ms();
    let second = h.daemon.catch_up().await;
    assert_eq!(
        (second.found, second.queued, second.unfinished),
        (2, 2, 1),
        "{second:?}"
    );
    assert_eq!(mark(), None);
    let third = h.daemon.catch_up().await;
    assert_eq!(
        (third.found, third.queued, third.unfinished),
        (1, 1, 0),
        "{third:?}"
    );
    // All listed: the watermark is when the first pass, which listed the
    // newest, started.
    let at = mark().expect("a watermark once the rest is listed");
    assert!(
        at >= now && at <= before_second,
        "{at} not in {now}..={before_second}"
    );
    for record in records(&h, &ids).await {
        assert_eq!(record.category.as_deref(), Some("build"), "{record:?}");
    }
    // The rest was asked for as the pipelines updated up to where the
    // listing stopped.
    assert!(
        h.fake
            .seen()
            .iter()
            .any(|s| s.path.ends_with("/pipelines") && s.query.contains("updated_before=")),
        "the rest of the listing"
    );
}

#[tokio::test]
async fn gitlab_failures_are_found_by_the_pipelines_they_updated_not_by_job_ids() {
    let fake = Fake::start(false).await;
    let now = now_ms();
    // A busy day long past: the project's 100 highest job ids, all done
    // 30 hours ago.
    let mut jobs: Vec<Value> = (0..100u64)
        .rev()
        .map(|i| {
            json!({
                "id": 6000 + i,
                "name": format!("old {i}"),
                "status": "failed",
                "finished_at": rfc3339(now - 30 * 3_600_000),
                "pipeline": { "id": 60, "project_id": 380, "sha": SHA }
            })
        })
        .collect();
    // And an older pipeline, created before them, whose manual deploy job
    // ran and failed a minute ago: a low job id.
    jobs.push(json!({
        "id": 5001,
        "name": "deploy",
        "status": "failed",
        "ref": "main",
        "finished_at": rfc3339(now - 60_000),
        "pipeline": { "id": 50, "project_id": 380, "sha": SHA, "ref": "main" }
    }));
    fake.set_gitlab_jobs(Value::Array(jobs));
    fake.set_log("5001", BUILD_LOG);
    let h = started(fake, |c| {
        c.gitlab.as_mut().unwrap().projects = vec!["380".into()];
    })
    .await;
    let r = records(&h, &["5001"]).await;
    assert_eq!(r[0].category.as_deref(), Some("build"), "{:?}", r[0]);
    assert_eq!(
        (r[0].job.run_id.as_str(), r[0].job.branch.as_deref()),
        ("50", Some("main"))
    );
    for id in ["6000", "6099"] {
        assert_eq!(records_of(&h, id), 0, "records of job {id}");
    }
    let seen = h.fake.seen();
    assert!(
        seen.iter()
            .any(|s| s.path == "/api/v4/projects/380/pipelines/50/jobs"),
        "the failed pipeline's jobs"
    );
    assert!(
        !seen.iter().any(|s| s.path.contains("/pipelines/60/")),
        "a pipeline not updated since is not read"
    );
}

#[tokio::test]
async fn a_retried_gitlab_job_caught_up_first_is_its_hooks_fact_at_their_attempt() {
    let fake = Fake::start(false).await;
    let now = now_ms();
    let run = |id: u64, finished: u64, retried: bool| {
        json!({
            "id": id,
            "name": "test",
            "status": "failed",
            "retried": retried,
            "ref": "gitlab-script-trigger",
            "finished_at": rfc3339(finished),
            "web_url": format!("http://192.168.64.1:3005/gitlab-org/gitlab-test/-/jobs/{id}"),
            "pipeline": {
                "id": 2366,
                "project_id": 380,
                "sha": SHA,
                "ref": "gitlab-script-trigger"
            }
        })
    };
    // `test` failed as 1976, was retried as 1977, which failed too.
    fake.set_gitlab_jobs(json!([
        run(1976, now - 5 * 60_000, true),
        run(1977, now - 60_000, false)
    ]));
    fake.set_log("1977", NET_LOG);
    let h = started(fake, |c| {
        c.gitlab.as_mut().unwrap().projects = vec!["gitlab-org/gitlab-test".into()];
    })
    .await;
    let r = records(&h, &["1977"]).await;
    assert_eq!(r[0].outcome, "rerun-scheduled", "{:?}", r[0]);
    // As the Job Hook says it: `retries_count` + 1.
    assert_eq!(r[0].job.attempt, 2);
    assert_eq!(records_of(&h, "1976"), 0, "a retried run was acted on");
    assert!(
        h.fake
            .seen()
            .iter()
            .any(|s| s.path.ends_with("/pipelines/2366/jobs")
                && s.query.contains("include_retried=true")),
        "the retried jobs are listed, to count them"
    );
    h.fake
        .wait_for("the GitLab retry", |s| {
            s.iter()
                .any(|s| s.method == "POST" && s.path == "/api/v4/projects/380/jobs/1977/retry")
        })
        .await;

    // The Job Hook, then the Pipeline Hook, arrive late: the same fact.
    let mut job: Value = serde_json::from_slice(&fixture("gitlab/build.json")).unwrap();
    job["build_status"] = "failed".into();
    job["retries_count"] = 1.into();
    let (s1, v1) = h
        .send(gitlab_hook("u-job", serde_json::to_vec(&job).unwrap()))
        .await;
    assert_eq!(
        (s1, v1["duplicate"].clone()),
        (StatusCode::OK, Value::Bool(true)),
        "{v1}"
    );
    let mut pipeline: Value = serde_json::from_slice(&fixture("gitlab/pipeline.json")).unwrap();
    pipeline["object_attributes"]["status"] = "failed".into();
    pipeline["object_attributes"]["id"] = 2366.into();
    pipeline["project"]["id"] = 380.into();
    pipeline["builds"][0]["id"] = 1977.into();
    pipeline["builds"][0]["status"] = "failed".into();
    let (s2, v2) = h
        .send(
            Request::post("/webhooks/gitlab")
                .header("x-gitlab-token", "gl-secret")
                .header("x-gitlab-event", "Pipeline Hook")
                .header("x-gitlab-event-uuid", "u-pipeline")
                .body(Body::from(serde_json::to_vec(&pipeline).unwrap()))
                .unwrap(),
        )
        .await;
    assert_eq!(
        (s2, v2["duplicate"].clone()),
        (StatusCode::OK, Value::Bool(true)),
        "{v2}"
    );
    assert_eq!(records_of(&h, "1977"), 1);
    assert_eq!(h.fake.count("POST", "/jobs/1977/retry"), 1);
}

#[tokio::test]
async fn a_jenkins_job_configured_in_other_letters_is_one_fact_with_its_notification() {
    let fake = Fake::start(false).await;
    let now = now_ms();
    // Jenkins finds `Asgard-Web` as `asgard-web`, and says so.
    fake.set_jenkins_builds(json!({
        "fullName": "asgard-web",
        "builds": [{
            "number": 18,
            "result": "FAILURE",
            "timestamp": now - 120_000,
            "duration": 60_000,
            "url": "http://jenkins/job/asgard-web/18/",
            "actions": [{
                "lastBuiltRevision": { "SHA1": JENKINS_SHA, "branch": [{ "name": "main" }] }
            }]
        }]
    }));
    fake.set_log("18", NET_LOG);
    let h = started(fake, |c| {
        c.jenkins.as_mut().unwrap().jobs = vec!["Asgard-Web".into()];
    })
    .await;
    let r = records(&h, &["18"]).await;
    assert_eq!(r[0].outcome, "rerun-scheduled", "{:?}", r[0]);
    assert_eq!(
        (r[0].job.repository.as_str(), r[0].job.api_id.as_deref()),
        ("asgard-web", Some("job/asgard-web"))
    );
    assert_eq!(r[0].job.commit.as_deref(), Some(JENKINS_SHA));
    assert!(
        h.fake
            .seen()
            .iter()
            .any(|s| s.path == "/job/Asgard-Web/api/json" && s.query.contains("fullName")),
        "the listing, by the configured name"
    );
    h.fake
        .wait_for("the rebuild", |s| {
            s.iter().any(|s| {
                s.method == "POST"
                    && s.path == "/job/asgard-web/build"
                    && s.headers.contains_key("jenkins-crumb")
            })
        })
        .await;
    // The notification names the job as Jenkins does: the same fact.
    let (status, v) = h.send(jenkins_failure("asgard-web", 18)).await;
    assert_eq!(
        (status, v["duplicate"].clone()),
        (StatusCode::OK, Value::Bool(true)),
        "{v}"
    );
    assert_eq!(records_of(&h, "18"), 1);
}
