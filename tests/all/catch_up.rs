//! Catch-up after downtime: jobs that failed while the daemon was down
//! (their webhooks went to nobody) are found through the platforms'
//! listings when it starts, diagnosed once, and the webhooks that do come
//! late are duplicates. A platform failing its listing stops neither the
//! others nor the daemon.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use guard::config::{CatchUp, Config};
use guard::daemon::Daemon;
use guard::daemon::queue::JobRecord;
use guard::model::Platform;
use guard::platform::Platforms;
use guard::platform::timestamp::rfc3339;
use guard::store::now_ms;
use serde_json::{Value, json};

use crate::daemon::{
    BUILD_LOG, Harness, NET_LOG, SECRET, config_for, failed_job, fixture, queued_id,
};
use crate::fake::Fake;

/// A daemon over `fake` with the config `watch` adjusts, started: its
/// first catch-up pass runs at once (unless `interval_secs` is 0).
pub(crate) async fn started(fake: Fake, watch: impl FnOnce(&mut Config)) -> Harness {
    let mut config = config_for(&fake);
    watch(&mut config);
    let runtime = crate::util::runtime_with(config.clone(), &[]).await;
    let daemon = Daemon::new(runtime, Platforms::from_config(&config).unwrap(), false).unwrap();
    daemon.start();
    let app = guard::server::router(daemon.clone());
    Harness { daemon, app, fake }
}

/// The records of these jobs (by job id, in that order), once all exist.
pub(crate) async fn records(h: &Harness, job_ids: &[&str]) -> Vec<JobRecord> {
    for _ in 0..400 {
        let all = h.daemon.queue.jobs(1000).unwrap();
        let found: Vec<JobRecord> = job_ids
            .iter()
            .filter_map(|id| all.iter().find(|r| r.job.job_id == *id).cloned())
            .collect();
        if found.len() == job_ids.len() {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "jobs {job_ids:?} were not all processed; records: {:?}; waiting: {:?}; dead letters: {:?}",
        h.daemon.queue.jobs(100),
        h.daemon.queue.waiting(100),
        h.daemon.queue.dead_letters(10)
    );
}

/// How many records the job has.
pub(crate) fn records_of(h: &Harness, job_id: &str) -> usize {
    h.daemon
        .queue
        .jobs(1000)
        .unwrap()
        .iter()
        .filter(|r| r.job.job_id == job_id)
        .count()
}

/// A failed run of the webhook fixture's repository, as GitHub lists it.
fn failed_run(id: u64, now: u64) -> Value {
    json!({
        "total_count": 1,
        "workflow_runs": [{
            "id": id,
            "name": "CI",
            "run_attempt": 1,
            "status": "completed",
            "conclusion": "failure",
            "head_sha": "3484a3fb816e0859fd6e1cea078d76385ff50625",
            "head_branch": "main",
            "html_url": format!("https://github.com/Codertocat/Hello-World/actions/runs/{id}"),
            "created_at": rfc3339(now - 20 * 60_000),
            "updated_at": rfc3339(now - 5 * 60_000),
            "repository": { "full_name": "Codertocat/Hello-World" }
        }]
    })
}

/// A Jenkins Notification plugin message: build `number` of job `name`
/// finished and failed.
pub(crate) fn jenkins_failure(name: &str, number: u32) -> Request<Body> {
    let body = json!({
        "name": name,
        "url": format!("job/{name}/"),
        "build": {
            "full_url": format!("http://jenkins/job/{name}/{number}/"),
            "number": number,
            "phase": "FINALIZED",
            "status": "FAILURE",
            "url": format!("job/{name}/{number}/"),
            "scm": { "commit": "c47a4f3f2d2a1c0f0f0d9b8a7f6e5d4c3b2a1f0e", "branch": "main" }
        }
    });
    Request::post("/webhooks/jenkins?token=jk-secret")
        .body(Body::from(body.to_string()))
        .unwrap()
}

pub(crate) fn gitlab_hook(uuid: &str, body: Vec<u8>) -> Request<Body> {
    Request::post("/webhooks/gitlab")
        .header("x-gitlab-token", "gl-secret")
        .header("x-gitlab-event", "Job Hook")
        .header("x-gitlab-event-uuid", uuid)
        .body(Body::from(body))
        .unwrap()
}

#[tokio::test]
async fn github_failures_missed_while_down_are_diagnosed_once_at_start_up() {
    let fake = Fake::start(false).await;
    let now = now_ms();
    // While guard was down, a run of the fixture's repository failed in
    // two jobs: a network error and a compile error.
    fake.set_runs(failed_run(2202229078, now));
    fake.set_run_jobs(json!({
        "total_count": 3,
        "jobs": [
            { "id": 289782451u64, "name": "linters", "conclusion": "failure", "run_attempt": 1 },
            { "id": 289782452u64, "name": "build", "conclusion": "failure", "run_attempt": 1 },
            { "id": 289782453u64, "name": "docs", "conclusion": "success", "run_attempt": 1 }
        ]
    }));
    fake.set_log("289782451", NET_LOG);
    fake.set_log("289782452", BUILD_LOG);
    // Configured in other letters than GitHub spells it: the listing's
    // spelling is what the webhooks say, so it is what the facts use.
    let h = started(fake, |c| {
        c.github.as_mut().unwrap().repositories = vec!["codertocat/hello-world".into()];
    })
    .await;
    let r = records(&h, &["289782451", "289782452"]).await;
    assert_eq!(
        (r[0].category.as_deref(), r[0].outcome.as_str()),
        (Some("network"), "rerun-scheduled"),
        "{:?}",
        r[0]
    );
    assert_eq!(r[0].job.repository, "Codertocat/Hello-World");
    assert_eq!(r[1].category.as_deref(), Some("build"), "{:?}", r[1]);
    h.fake
        .wait_for("the re-run", |s| {
            s.iter().any(|s| {
                s.method == "POST"
                    && s.path == "/repos/Codertocat/Hello-World/actions/jobs/289782451/rerun"
            })
        })
        .await;
    let listing = h
        .fake
        .seen()
        .into_iter()
        .find(|s| s.path == "/repos/codertocat/hello-world/actions/runs")
        .expect("the runs were listed");
    assert!(
        listing.query.contains("status=failure") && listing.query.contains("created="),
        "{}",
        listing.query
    );
    let mark = h
        .daemon
        .catch_up_watermark(Platform::Github, "codertocat/hello-world")
        .unwrap();
    assert!(mark.is_some_and(|at| at >= now), "{mark:?}");

    // The webhooks arrive after all: the same facts, duplicates.
    for (id, delivery) in [(289782451, "late-1"), (289782452, "late-2")] {
        let (status, v) = h
            .github("workflow_job", delivery, &failed_job(id, "failure"), SECRET)
            .await;
        assert_eq!(
            (status, v["duplicate"].clone()),
            (StatusCode::OK, Value::Bool(true)),
            "{v}"
        );
    }
    // The next pass looks again from before its watermark: the same two
    // failures, already known.
    let again = h.daemon.catch_up().await;
    assert_eq!(
        (again.listed, again.found, again.queued, again.errors),
        (1, 2, 0, 0)
    );
    assert_eq!(h.daemon.queue.depth(), 0);
    for id in ["289782451", "289782452", "289782453"] {
        let want = usize::from(id != "289782453");
        assert_eq!(records_of(&h, id), want, "records of job {id}");
    }
    assert_eq!(h.fake.count("POST", "/actions/jobs/289782451/rerun"), 1);
    assert_eq!(h.fake.count("POST", "/actions/jobs/289782452/rerun"), 0);
}

#[tokio::test]
async fn gitlab_and_jenkins_failures_are_caught_up_too() {
    let fake = Fake::start(false).await;
    let now = now_ms();
    fake.set_gitlab_jobs(json!([
        {
            "id": 1977,
            "name": "test",
            "status": "failed",
            "ref": "gitlab-script-trigger",
            "finished_at": rfc3339(now - 60_000),
            "web_url": "http://192.168.64.1:3005/gitlab-org/gitlab-test/-/jobs/1977",
            "pipeline": {
                "id": 2366,
                "project_id": 380,
                "sha": "2293ada6b400935a1378653304eaf6221e0fdb8f",
                "ref": "gitlab-script-trigger",
                "status": "failed"
            }
        },
        // Failed before the look-back: not guard's to catch up.
        {
            "id": 1000,
            "name": "old",
            "status": "failed",
            "finished_at": rfc3339(now - 48 * 3_600_000),
            "pipeline": { "id": 1, "project_id": 380 }
        }
    ]));
    fake.set_log("1977", NET_LOG);
    fake.set_jenkins_builds(json!({ "builds": [
        { "number": 19, "result": null, "timestamp": now, "duration": 0, "url": "http://jenkins/job/asgard/19/" },
        { "number": 18, "result": "FAILURE", "timestamp": now - 120_000, "duration": 60_000, "url": "http://jenkins/job/asgard/18/",
          "actions": [{}, { "lastBuiltRevision": { "SHA1": "c47a4f3f2d2a1c0f0f0d9b8a7f6e5d4c3b2a1f0e", "branch": [{ "name": "main" }] } }] },
        { "number": 17, "result": "SUCCESS", "timestamp": now - 600_000, "duration": 60_000, "url": "http://jenkins/job/asgard/17/" },
        { "number": 3, "result": "FAILURE", "timestamp": now - 72 * 3_600_000, "duration": 1_000, "url": "http://jenkins/job/asgard/3/" }
    ]}));
    fake.set_log("18", NET_LOG);
    let h = started(fake, |c| {
        c.gitlab.as_mut().unwrap().projects = vec!["gitlab-org/gitlab-test".into()];
        c.jenkins.as_mut().unwrap().jobs = vec!["asgard".into()];
    })
    .await;
    let r = records(&h, &["1977", "18"]).await;
    for record in &r {
        assert_eq!(record.outcome, "rerun-scheduled", "{record:?}");
    }
    assert_eq!(r[0].job.repository, "gitlab-org/gitlab-test");
    assert_eq!(r[0].job.api_id.as_deref(), Some("380"));
    assert_eq!(r[1].job.api_id.as_deref(), Some("job/asgard"));
    assert_eq!(
        r[1].job.commit.as_deref(),
        Some("c47a4f3f2d2a1c0f0f0d9b8a7f6e5d4c3b2a1f0e")
    );
    h.fake
        .wait_for("the GitLab retry and the Jenkins rebuild", |s| {
            s.iter()
                .any(|s| s.method == "POST" && s.path == "/api/v4/projects/380/jobs/1977/retry")
                && s.iter().any(|s| {
                    s.method == "POST"
                        && s.path == "/job/asgard/build"
                        && s.headers.contains_key("jenkins-crumb")
                })
        })
        .await;
    let seen = h.fake.seen();
    assert!(
        seen.iter().any(
            |s| s.path == "/api/v4/projects/gitlab-org%2Fgitlab-test/pipelines"
                && s.query.contains("status=failed")
                && s.query.contains("updated_after=")
                && s.query.contains("order_by=updated_at")
        ),
        "the GitLab listing"
    );
    assert!(
        seen.iter()
            .any(|s| s.path == "/api/v4/projects/gitlab-org%2Fgitlab-test/pipelines/2366/jobs"),
        "the failed pipeline's jobs"
    );
    assert!(
        seen.iter()
            .any(|s| s.path == "/job/asgard/api/json" && s.query.starts_with("tree=")),
        "the Jenkins listing"
    );

    // The late webhooks are the same facts.
    let mut hook: Value = serde_json::from_slice(&fixture("gitlab/build.json")).unwrap();
    hook["build_status"] = "failed".into();
    let (s1, v1) = h
        .send(gitlab_hook("u-late", serde_json::to_vec(&hook).unwrap()))
        .await;
    assert_eq!(
        (s1, v1["duplicate"].clone()),
        (StatusCode::OK, Value::Bool(true)),
        "{v1}"
    );
    let (s2, v2) = h.send(jenkins_failure("asgard", 18)).await;
    assert_eq!(
        (s2, v2["duplicate"].clone()),
        (StatusCode::OK, Value::Bool(true)),
        "{v2}"
    );

    for (id, want) in [
        ("1977", 1),
        ("18", 1),
        ("1000", 0),
        ("19", 0),
        ("17", 0),
        ("3", 0),
    ] {
        assert_eq!(records_of(&h, id), want, "records of job {id}");
    }
    assert_eq!(h.fake.count("POST", "/jobs/1977/retry"), 1);
    let rebuilds = h
        .fake
        .seen()
        .iter()
        .filter(|s| s.path == "/job/asgard/build" && s.headers.contains_key("jenkins-crumb"))
        .count();
    assert_eq!(rebuilds, 1);
}

#[tokio::test]
async fn a_failing_listing_stops_neither_the_others_nor_the_daemon() {
    let fake = Fake::start(false).await;
    let now = now_ms();
    fake.set_runs(failed_run(5100, now));
    fake.set_run_jobs(json!({
        "total_count": 1,
        "jobs": [{ "id": 5101, "name": "test", "conclusion": "failure", "run_attempt": 1 }]
    }));
    fake.set_log("5101", NET_LOG);
    fake.set_gitlab_jobs(json!([{
        "id": 1977,
        "name": "test",
        "status": "failed",
        "finished_at": rfc3339(now - 60_000),
        "pipeline": { "id": 2366, "project_id": 380, "sha": "2293ada6b400935a1378653304eaf6221e0fdb8f" }
    }]));
    fake.set_log("1977", BUILD_LOG);
    fake.fail_gets_containing("/api/v4/projects/");
    // The test drives the passes itself.
    let h = started(fake, |c| {
        c.github.as_mut().unwrap().repositories = vec!["Codertocat/Hello-World".into()];
        c.gitlab.as_mut().unwrap().projects = vec!["gitlab-org/gitlab-test".into()];
        c.catch_up = CatchUp {
            interval_secs: 0,
            ..CatchUp::default()
        };
    })
    .await;
    let first = h.daemon.catch_up().await;
    assert_eq!(
        (first.listed, first.errors, first.found, first.queued),
        (1, 1, 1, 1),
        "{first:?}"
    );
    assert!(
        h.daemon
            .catch_up_watermark(Platform::Gitlab, "gitlab-org/gitlab-test")
            .unwrap()
            .is_none(),
        "a failed listing does not move the watermark"
    );
    let metrics = guard::metrics::get().render();
    assert!(
        metrics.contains("guard_catch_up_errors_total{platform=\"gitlab\"}"),
        "{metrics}"
    );
    assert_eq!(records(&h, &["5101"]).await[0].outcome, "rerun-scheduled");

    // GitLab answers again: the next pass looks back as far as the first.
    h.fake.clear_failures();
    let second = h.daemon.catch_up().await;
    assert_eq!(
        (second.listed, second.errors, second.queued),
        (2, 0, 1),
        "{second:?}"
    );
    assert_eq!(
        records(&h, &["1977"]).await[0].category.as_deref(),
        Some("build")
    );
    // And webhooks are served as ever.
    h.fake.set_log("5102", BUILD_LOG);
    let (status, v) = h
        .github(
            "workflow_job",
            "after",
            &failed_job(5102, "failure"),
            SECRET,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    assert_eq!(
        h.record(queued_id(&v)).await.category.as_deref(),
        Some("build")
    );
}

#[tokio::test]
async fn a_pass_queues_at_most_max_jobs_and_the_rest_waits() {
    let fake = Fake::start(false).await;
    let now = now_ms();
    let jobs: Vec<Value> = (0..3u64)
        .map(|i| {
            json!({
                "id": 3003 - i,
                "name": format!("job-{i}"),
                "status": "failed",
                "finished_at": rfc3339(now - (i + 1) * 60_000),
                "pipeline": { "id": 1, "project_id": 380, "sha": "2293ada6b400935a1378653304eaf6221e0fdb8f" }
            })
        })
        .collect();
    fake.set_gitlab_jobs(Value::Array(jobs));
    for id in ["3003", "3002", "3001"] {
        fake.set_log(id, BUILD_LOG);
    }
    let h = started(fake, |c| {
        c.gitlab.as_mut().unwrap().projects = vec!["380".into()];
        c.jenkins.as_mut().unwrap().jobs = vec!["asgard".into()];
        c.catch_up = CatchUp {
            interval_secs: 0,
            max_jobs: 2,
            ..CatchUp::default()
        };
    })
    .await;
    let pass = h.daemon.catch_up().await;
    assert_eq!(
        (pass.listed, pass.found, pass.queued, pass.deferred),
        (1, 2, 2, 1),
        "{pass:?}"
    );
    // The newest two; Jenkins was not asked and keeps no watermark.
    let r = records(&h, &["3003", "3002"]).await;
    assert_eq!(r[0].job.api_id.as_deref(), Some("380"));
    assert_eq!(records_of(&h, "3001"), 0);
    assert!(!h.fake.seen().iter().any(|s| s.path.ends_with("/api/json")));
    assert!(
        h.daemon
            .catch_up_watermark(Platform::Jenkins, "asgard")
            .unwrap()
            .is_none()
    );
    // The three are one pipeline's, more than max_jobs: the next pass,
    // with all of max_jobs, lists it again and cannot get past it. It gives
    // up on what is older, rather than list the same pipeline forever.
    assert_eq!(pass.unfinished, 1, "{pass:?}");
    assert!(
        h.daemon
            .catch_up_watermark(Platform::Gitlab, "380")
            .unwrap()
            .is_none(),
        "a listing cut short does not move the watermark"
    );
    let next = h.daemon.catch_up().await;
    assert_eq!(
        (next.listed, next.found, next.queued, next.unfinished),
        (1, 2, 0, 0),
        "{next:?}"
    );
    assert!(
        h.daemon
            .catch_up_watermark(Platform::Gitlab, "380")
            .unwrap()
            .is_some()
    );
    assert_eq!(records_of(&h, "3001"), 0);
}
