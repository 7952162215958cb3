//! The daemon end to end: real webhook payloads from tests/data/fixtures in,
//! a loopback fake of each platform's API out.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use guard::config::{Config, GitHub, GitHubAnnotate, GitLab, Heal, Jenkins};
use guard::daemon::Daemon;
use guard::daemon::queue::JobRecord;
use guard::intake::github::sign;
use guard::platform::Platforms;
use serde_json::Value;
use tower::ServiceExt;

use crate::fake::Fake;

pub const SECRET: &str = "It's a Secret to Everybody";
pub const NET_LOG: &str = "Run npm ci\nnpm ERR! code ECONNRESET\nnpm ERR! network read ECONNRESET\nError: Process completed with exit code 1.\n";
pub const BUILD_LOG: &str = "Run cargo build\n   Compiling app v0.1.0\nerror[E0308]: mismatched types\n --> src/main.rs:4:18\nerror: could not compile `app` (bin \"app\") due to 1 previous error\nError: Process completed with exit code 101.\n";

pub fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/data/fixtures/{rel}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

pub fn config_for(fake: &Fake) -> Config {
    Config {
        github: Some(GitHub {
            api_url: fake.url(),
            token: Some("ghp_test_token".into()),
            webhook_secret: Some(SECRET.into()),
            annotate: GitHubAnnotate::CommitComment,
            repositories: Vec::new(),
            app: None,
        }),
        gitlab: Some(GitLab {
            url: fake.url(),
            token: Some("glpat-test".into()),
            webhook_secret: Some("gl-secret".into()),
            projects: Vec::new(),
        }),
        jenkins: Some(Jenkins {
            url: fake.url(),
            user: Some("guard".into()),
            token: Some("jenkins-token".into()),
            webhook_secret: Some("jk-secret".into()),
            jobs: Vec::new(),
        }),
        heal: Heal {
            backoff_base_secs: 0,
            ..Heal::default()
        },
        ..Config::default()
    }
}

pub(crate) struct Harness {
    pub(crate) daemon: Arc<Daemon>,
    pub(crate) app: axum::Router,
    pub(crate) fake: Fake,
}

pub(crate) async fn harness() -> Harness {
    let fake = Fake::start(false).await;
    let config = config_for(&fake);
    let runtime = crate::util::runtime_with(config.clone(), &[]).await;
    let daemon = Daemon::new(runtime, Platforms::from_config(&config).unwrap(), false).unwrap();
    daemon.start();
    let app = guard::server::router(daemon.clone());
    Harness { daemon, app, fake }
}

impl Harness {
    pub(crate) async fn send(&self, req: Request<Body>) -> (StatusCode, Value) {
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 16 << 20)
            .await
            .unwrap();
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, v)
    }

    pub(crate) async fn github(
        &self,
        event: &str,
        delivery: &str,
        body: &[u8],
        secret: &str,
    ) -> (StatusCode, Value) {
        let req = Request::post("/webhooks/github")
            .header("x-github-event", event)
            .header("x-github-delivery", delivery)
            .header("x-hub-signature-256", sign(body, secret))
            .header("content-type", "application/json")
            .body(Body::from(body.to_vec()))
            .unwrap();
        self.send(req).await
    }

    pub(crate) async fn record(&self, id: u64) -> JobRecord {
        for _ in 0..400 {
            if let Some(r) = self.daemon.queue.job(id).unwrap() {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let waiting = self.daemon.queue.waiting(100).unwrap_or_default();
        let later = self.daemon.queue.next_retry_ms();
        panic!(
            "event {id} was not processed; waiting: {waiting:?} (next retry {later:?}); dead letters: {:?}",
            self.daemon.queue.dead_letters(10)
        );
    }
}

pub(crate) fn queued_id(v: &Value) -> u64 {
    v["queued"][0]
        .as_u64()
        .unwrap_or_else(|| panic!("not queued: {v}"))
}

/// workflow_job.1.completed.json with the conclusion and job id set.
pub(crate) fn failed_job(job_id: u64, conclusion: &str) -> Vec<u8> {
    let mut v: Value =
        serde_json::from_slice(&fixture("github/workflow_job.1.completed.json")).unwrap();
    v["workflow_job"]["id"] = job_id.into();
    v["workflow_job"]["conclusion"] = conclusion.into();
    serde_json::to_vec(&v).unwrap()
}

#[tokio::test]
async fn a_network_failure_is_rerun_through_the_github_api() {
    let h = harness().await;
    h.fake.set_log("289782451", NET_LOG);
    let body = fixture("github/workflow_job.1.completed.json");
    let (status, v) = h.github("workflow_job", "d-net-1", &body, SECRET).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    let r = h.record(queued_id(&v)).await;
    assert_eq!(r.category.as_deref(), Some("network"), "{r:?}");
    assert_eq!(r.outcome, "rerun-scheduled", "{r:?}");
    assert!(
        r.evidence.iter().any(|e| e.text.contains("ECONNRESET")),
        "{r:?}"
    );
    // The fixture's repository is Codertocat/Hello-World while its job URLs
    // name octo-org/octo-repo: the signed repository object is what counts.
    h.fake
        .wait_for("the re-run", |s| {
            s.iter().any(|s| {
                s.method == "POST"
                    && s.path == "/repos/Codertocat/Hello-World/actions/jobs/289782451/rerun"
            })
        })
        .await;
    let seen = h.fake.seen();
    let rerun = seen.iter().find(|s| s.path.ends_with("/rerun")).unwrap();
    assert_eq!(rerun.json()["enable_debug_logging"], false);
    assert_eq!(rerun.headers["authorization"], "Bearer ghp_test_token");
    // The log came through GitHub's redirect; the token stayed behind.
    let storage = seen
        .iter()
        .find(|s| s.path.starts_with("/storage/logs/"))
        .unwrap();
    assert!(storage.host.starts_with("localhost"), "{storage:?}");
    assert!(
        !storage.headers.contains_key("authorization"),
        "token leaked to the log storage host"
    );
    // Audited as done by the healer that asked.
    let audit = h.daemon.runtime.db().audit_records(50).unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.action == "ci.rerun-job" && a.outcome == "done"),
        "{audit:?}"
    );
}

/// `Queue::complete` writes an event's record, then takes the event off the
/// queue: a crash in between leaves both. The restarted daemon finishes such
/// an event from its record; it neither fetches the log nor re-runs the job
/// a second time.
#[tokio::test]
async fn an_event_recorded_before_a_crash_is_finished_not_processed_again() {
    let fake = Fake::start(false).await;
    fake.set_log("4242", NET_LOG);
    let config = config_for(&fake);
    let runtime = crate::util::runtime_with(config.clone(), &[]).await;
    let daemon = Daemon::new(runtime, Platforms::from_config(&config).unwrap(), false).unwrap();
    let job = guard::model::Job {
        platform: guard::model::Platform::Github,
        repository: "Codertocat/Hello-World".into(),
        run_id: "77".into(),
        job_id: "4242".into(),
        job_name: "build".into(),
        attempt: 1,
        ..Default::default()
    };
    let ids = daemon
        .queue
        .insert_events(
            &[guard::intake::EventKind::JobCompleted {
                job: job.clone(),
                status: guard::intake::JobStatus::Failed,
            }],
            "d-crashed",
        )
        .unwrap();
    // The life before the crash claimed it (a lease that has run out),
    // processed it and wrote its record, then died before it left the queue.
    let claimed = daemon
        .queue
        .claim("previous-life", 0, &std::collections::HashSet::new(), 1)
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let before = JobRecord {
        id: ids[0],
        job,
        outcome: "rerun-scheduled".into(),
        notes: vec!["written before the crash".into()],
        processed_ms: guard::store::now_ms(),
        ..JobRecord::default()
    };
    daemon
        .runtime
        .db()
        .tree(guard::store::Trees::JOBS)
        .unwrap()
        .insert(&ids[0], &before)
        .unwrap();
    daemon.start();
    for _ in 0..400 {
        if daemon.queue.depth() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        daemon.queue.depth(),
        0,
        "the recorded event is still queued"
    );
    assert_eq!(daemon.queue.job(ids[0]).unwrap(), Some(before));
    // Time for a second processing to show, were there one.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.seen().len(), 0, "processed again: {:?}", fake.seen());
}

#[tokio::test]
async fn a_compile_failure_is_annotated_and_not_rerun() {
    let h = harness().await;
    h.fake.set_log("5001", BUILD_LOG);
    let (status, v) = h
        .github(
            "workflow_job",
            "d-build-1",
            &failed_job(5001, "failure"),
            SECRET,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let r = h.record(queued_id(&v)).await;
    assert_eq!(r.category.as_deref(), Some("build"), "{r:?}");
    assert_eq!(r.outcome, "annotated", "{r:?}");
    let seen = h.fake.seen();
    let comment = seen
        .iter()
        .find(|s| s.method == "POST" && s.path == "/repos/Codertocat/Hello-World/commits/3484a3fb816e0859fd6e1cea078d76385ff50625/comments")
        .unwrap_or_else(|| panic!("no commit comment: {seen:?}"));
    let text = comment.json()["body"].as_str().unwrap().to_string();
    assert!(
        text.contains("E0308") || text.contains("mismatched types"),
        "{text}"
    );
    assert!(
        !seen.iter().any(|s| s.path.contains("rerun")),
        "a compile error must not be re-run"
    );
    assert_eq!(r.strategy.as_deref(), Some("diagnose"));
}

#[tokio::test]
async fn replays_forgeries_and_junk_change_nothing() {
    let h = harness().await;
    h.fake.set_log("5002", NET_LOG);
    let body = failed_job(5002, "failure");
    let (s1, v1) = h.github("workflow_job", "d-replay", &body, SECRET).await;
    assert_eq!(s1, StatusCode::ACCEPTED);
    h.record(queued_id(&v1)).await;
    // The same delivery again: ignored.
    let (s2, v2) = h.github("workflow_job", "d-replay", &body, SECRET).await;
    assert_eq!(s2, StatusCode::OK, "{v2}");
    assert_eq!(v2["duplicate"], true);
    // The same fact under a new delivery id (a manual redelivery): ignored too.
    let (s3, v3) = h.github("workflow_job", "d-replay-2", &body, SECRET).await;
    assert_eq!(
        (s3, v3["duplicate"].clone()),
        (StatusCode::OK, Value::Bool(true))
    );
    // A forged signature: 401, nothing queued, a security event.
    let before = h.daemon.queue.jobs_count();
    let (s4, v4) = h
        .github(
            "workflow_job",
            "d-forged",
            &failed_job(5003, "failure"),
            "not the secret",
        )
        .await;
    assert_eq!(s4, StatusCode::UNAUTHORIZED, "{v4}");
    assert_eq!(h.daemon.queue.depth(), 0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(h.daemon.queue.jobs_count(), before);
    assert!(
        h.daemon
            .runtime
            .db()
            .security_events(10)
            .unwrap()
            .iter()
            .any(|e| e.kind == "webhook-refused")
    );
    // Malformed JSON, correctly signed: 400 with the parser's reason.
    let (s5, v5) = h
        .github(
            "workflow_job",
            "d-junk",
            b"{\"action\": \"completed\", \"workflow_job\": 7",
            SECRET,
        )
        .await;
    assert_eq!(s5, StatusCode::BAD_REQUEST);
    assert!(v5["error"].as_str().unwrap().contains("JSON"), "{v5}");
    // An event of no interest: 202 and ignored.
    let (s6, v6) = h
        .github(
            "workflow_job",
            "d-progress",
            &fixture("github/workflow_job.0.in_progress.json"),
            SECRET,
        )
        .await;
    assert_eq!(s6, StatusCode::ACCEPTED);
    assert!(v6["ignored"].is_string(), "{v6}");
    let (s7, _) = h
        .github(
            "workflow_run",
            "d-run-ok",
            &fixture("github/workflow_run.0.completed.json"),
            SECRET,
        )
        .await;
    assert_eq!(s7, StatusCode::ACCEPTED);
    // A success with no heal pending is of no interest either.
    let mut success: Value =
        serde_json::from_slice(&fixture("github/workflow_job.2.completed.json")).unwrap();
    success["workflow_job"]["name"] = "never-healed".into();
    let (s9, v9) = h
        .github(
            "workflow_job",
            "d-success",
            &serde_json::to_vec(&success).unwrap(),
            SECRET,
        )
        .await;
    assert_eq!(s9, StatusCode::ACCEPTED);
    assert!(v9["ignored"].as_str().unwrap().contains("no heal"), "{v9}");
    assert_eq!(h.daemon.queue.depth(), 0);
    // Only the one re-run ever reached the API.
    assert_eq!(h.fake.count("POST", "/actions/jobs/5002/rerun"), 1);
    // A body over the cap: 413.
    let big = vec![b' '; 11 * 1024 * 1024];
    let (s8, _) = h.github("workflow_job", "d-big", &big, SECRET).await;
    assert_eq!(s8, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn a_failed_workflow_run_is_expanded_into_its_failed_jobs() {
    let h = harness().await;
    h.fake.set_run_jobs(serde_json::json!({
        "total_count": 2,
        "jobs": [
            { "id": 7001, "name": "test", "conclusion": "failure", "run_attempt": 1, "html_url": "https://github.com/o/r/runs/7001" },
            { "id": 7002, "name": "lint", "conclusion": "success", "run_attempt": 1 }
        ]
    }));
    h.fake.set_log("7001", NET_LOG);
    let mut v: Value =
        serde_json::from_slice(&fixture("github/workflow_run.1.completed.json")).unwrap();
    v["workflow_run"]["conclusion"] = "failure".into();
    let body = serde_json::to_vec(&v).unwrap();
    let (status, resp) = h
        .github("workflow_run", "d-run-failed", &body, SECRET)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{resp}");
    let run = h.record(queued_id(&resp)).await;
    assert_eq!(run.outcome, "expanded", "{run:?}");
    // Its one failed job is processed as a job of its own.
    h.fake
        .wait_for("the job's re-run", |s| {
            s.iter()
                .any(|s| s.path.ends_with("/actions/jobs/7001/rerun"))
        })
        .await;
    assert_eq!(h.fake.count("POST", "/actions/jobs/7002/rerun"), 0);
    // A workflow_job webhook for the same job (same repository, id and
    // attempt) later is the same fact.
    let mut job: Value = serde_json::from_slice(&failed_job(7001, "failure")).unwrap();
    job["repository"]["full_name"] = "octo-org/octo-repo".into();
    let (s2, v2) = h
        .github(
            "workflow_job",
            "d-job-7001",
            &serde_json::to_vec(&job).unwrap(),
            SECRET,
        )
        .await;
    assert_eq!(s2, StatusCode::OK, "{v2}");
}

#[tokio::test]
async fn gitlab_job_hooks_retry_through_the_gitlab_api() {
    let h = harness().await;
    let mut v: Value = serde_json::from_slice(&fixture("gitlab/build.json")).unwrap();
    v["build_status"] = "failed".into();
    let body = serde_json::to_vec(&v).unwrap();
    h.fake.set_log("1977", NET_LOG);
    let post = |token: &str, uuid: &str, event: &str, body: Vec<u8>| {
        Request::post("/webhooks/gitlab")
            .header("x-gitlab-token", token)
            .header("x-gitlab-event", event)
            .header("x-gitlab-event-uuid", uuid)
            .body(Body::from(body))
            .unwrap()
    };
    let (s0, _) = h.send(post("wrong", "u-0", "Job Hook", body.clone())).await;
    assert_eq!(s0, StatusCode::UNAUTHORIZED);
    let (s1, v1) = h
        .send(post("gl-secret", "u-1", "Job Hook", body.clone()))
        .await;
    assert_eq!(s1, StatusCode::ACCEPTED, "{v1}");
    let r = h.record(queued_id(&v1)).await;
    assert_eq!(
        (r.category.as_deref(), r.outcome.as_str()),
        (Some("network"), "rerun-scheduled"),
        "{r:?}"
    );
    assert_eq!(r.job.repository, "gitlab-org/gitlab-test");
    h.fake
        .wait_for("the GitLab retry", |s| {
            s.iter()
                .any(|s| s.method == "POST" && s.path == "/api/v4/projects/380/jobs/1977/retry")
        })
        .await;
    let trace = h
        .fake
        .seen()
        .into_iter()
        .find(|s| s.path.ends_with("/trace"))
        .unwrap();
    assert_eq!(trace.path, "/api/v4/projects/380/jobs/1977/trace");
    assert_eq!(trace.headers["private-token"], "glpat-test");
    // The Pipeline Hook fixture is a passed pipeline: of no interest.
    let (s2, v2) = h
        .send(post(
            "gl-secret",
            "u-2",
            "Pipeline Hook",
            fixture("gitlab/pipeline.json"),
        ))
        .await;
    assert_eq!(s2, StatusCode::ACCEPTED);
    assert!(v2["ignored"].as_str().unwrap().contains("success"), "{v2}");
    // The same pipeline failed, listing a failed job: one event per failed job.
    let mut p: Value = serde_json::from_slice(&fixture("gitlab/pipeline.json")).unwrap();
    p["object_attributes"]["status"] = "failed".into();
    p["builds"][1]["status"] = "failed".into();
    h.fake.set_log("377", BUILD_LOG);
    let (s3, v3) = h
        .send(post(
            "gl-secret",
            "u-3",
            "Pipeline Hook",
            serde_json::to_vec(&p).unwrap(),
        ))
        .await;
    assert_eq!(s3, StatusCode::ACCEPTED, "{v3}");
    let r3 = h.record(queued_id(&v3)).await;
    assert_eq!(
        (r3.category.as_deref(), r3.outcome.as_str()),
        (Some("build"), "annotated"),
        "{r3:?}"
    );
    h.fake.wait_for("the GitLab commit note", |s| {
        s.iter().any(|s| s.method == "POST" && s.path == "/api/v4/projects/1/repository/commits/bcbb5ec396a2c0f828686f14fac9b80b780504f2/comments")
    }).await;
    assert_eq!(h.fake.count("POST", "/jobs/377/retry"), 0);
}

#[tokio::test]
async fn jenkins_notifications_rebuild_with_a_crumb_when_asked() {
    let h = harness().await;
    h.fake.set_log("18", NET_LOG);
    let body = br#"{"name":"asgard","url":"job/asgard/","build":{"full_url":"http://jenkins/job/asgard/18/","number":18,"phase":"FINALIZED","status":"FAILURE","url":"job/asgard/18/","scm":{"commit":"c47a4f3f2d2a1c0f0f0d9b8a7f6e5d4c3b2a1f0e","branch":"main"}}}"#;
    let req = |token: &str| {
        Request::post(format!("/webhooks/jenkins?token={token}"))
            .body(Body::from(body.to_vec()))
            .unwrap()
    };
    let (s0, _) = h.send(req("nope")).await;
    assert_eq!(s0, StatusCode::UNAUTHORIZED);
    let (s1, v1) = h.send(req("jk-secret")).await;
    assert_eq!(s1, StatusCode::ACCEPTED, "{v1}");
    let r = h.record(queued_id(&v1)).await;
    assert_eq!(r.outcome, "rerun-scheduled", "{r:?}");
    h.fake
        .wait_for("the rebuild", |s| {
            s.iter().any(|s| {
                s.method == "POST"
                    && s.path == "/job/asgard/build"
                    && s.headers.contains_key("jenkins-crumb")
            })
        })
        .await;
    let console = h
        .fake
        .seen()
        .into_iter()
        .find(|s| s.path.ends_with("/consoleText"))
        .unwrap();
    assert_eq!(console.path, "/job/asgard/18/consoleText");
    assert!(
        console.headers["authorization"]
            .to_str()
            .unwrap()
            .starts_with("Basic ")
    );
}

#[tokio::test]
async fn heal_outcomes_feed_back_into_breakers_and_statistics() {
    let h = harness().await;
    h.fake.set_log("8001", NET_LOG);
    let (_, v) = h
        .github("workflow_job", "fb-1", &failed_job(8001, "failure"), SECRET)
        .await;
    assert_eq!(h.record(queued_id(&v)).await.outcome, "rerun-scheduled");
    // The re-run (GitHub keeps the job name and commit, new attempt and id) passes.
    let mut ok: Value = serde_json::from_slice(&failed_job(8002, "success")).unwrap();
    ok["workflow_job"]["run_attempt"] = 2.into();
    let (_, v2) = h
        .github(
            "workflow_job",
            "fb-2",
            &serde_json::to_vec(&ok).unwrap(),
            SECRET,
        )
        .await;
    let r2 = h.record(queued_id(&v2)).await;
    assert_eq!(r2.outcome, "healed", "{r2:?}");
    let stats = guard::heal::stats::all(h.daemon.runtime.db()).unwrap();
    assert!(
        stats
            .iter()
            .any(|(c, s, o)| c == "network" && s == "retry-with-backoff" && o.successes == 1),
        "{stats:?}"
    );
}

#[tokio::test]
async fn the_json_api_health_and_metrics() {
    let h = harness().await;
    h.fake.set_log("9001", BUILD_LOG);
    let (_, v) = h
        .github(
            "workflow_job",
            "api-1",
            &failed_job(9001, "failure"),
            SECRET,
        )
        .await;
    let id = queued_id(&v);
    h.record(id).await;
    let get = |p: &str| Request::get(p).body(Body::empty()).unwrap();
    let (s, jobs) = h.send(get("/api/jobs")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(jobs[0]["id"], id);
    let (s, one) = h.send(get(&format!("/api/jobs/{id}"))).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(one["category"], "build");
    assert!(
        one["evidence"][0]["text"]
            .as_str()
            .unwrap()
            .contains("mismatched types"),
        "{one}"
    );
    let (s, _) = h.send(get("/api/jobs/424242")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = h.send(get("/api/jobs/not-a-number")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, status) = h.send(get("/api/status")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(status["queue_depth"], 0);
    assert!(status["plugins"].as_array().unwrap().len() >= 3, "{status}");
    let (s, d) = h
        .send(
            Request::post("/api/detect")
                .body(Body::from(NET_LOG))
                .unwrap(),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(d["report"]["category"], "network", "{d}");
    assert!(
        d["summary"]
            .as_str()
            .unwrap()
            .starts_with("network failure"),
        "{d}"
    );
    let (s, body) = h.send(get("/healthz")).await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, Some("ok\n")));
    let (s, body) = h.send(get("/readyz")).await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, Some("ready\n")));
    let (s, m) = h.send(get("/metrics")).await;
    assert_eq!(s, StatusCode::OK);
    let text = m.as_str().unwrap();
    for name in [
        "guard_webhooks_total",
        "guard_detections_total",
        "guard_queue_depth",
        "guard_decision_seconds_bucket",
        "guard_plugin_call_seconds",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics:\n{text}");
    }
}

#[tokio::test]
async fn the_dashboard_is_self_contained() {
    let h = harness().await;
    let resp = h
        .app
        .clone()
        .oneshot(Request::get("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'self'")
    );
    let html = String::from_utf8(
        axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    for asset in ["/assets/app.js", "/assets/style.css"] {
        assert!(html.contains(asset));
        let (s, body) = h
            .send(Request::get(asset).body(Body::empty()).unwrap())
            .await;
        assert_eq!(s, StatusCode::OK);
        // The SVG namespace is a name, not a download.
        let text = body
            .as_str()
            .unwrap()
            .replace("http://www.w3.org/2000/svg", "");
        // No CDN, no remote font, no remote script: everything is embedded.
        assert!(
            !text.contains("https://") && !text.contains("http://"),
            "{asset} references a remote URL"
        );
    }
    assert!(!html.contains("https://") && !html.contains("http://"));
    let (s, d) = h
        .send(Request::get("/api/dashboard").body(Body::empty()).unwrap())
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(d["by_hour"].as_array().unwrap().len(), 24);
    assert!(
        d["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == "heal-std")
    );
}
