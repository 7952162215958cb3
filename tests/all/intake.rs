//! Webhooks as the platforms really send them, end to end: GitHub's
//! form-encoded payloads, Jenkins' percent-encoded job paths, and GitLab's
//! Job and Pipeline Hooks about one retried job. Each is diagnosed once and
//! acted on once.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use guard::intake::github::sign;
use serde_json::Value;

use crate::daemon::{NET_LOG, SECRET, failed_job, fixture, harness, queued_id};

/// `payload=<JSON>` as GitHub sends a webhook whose content type is
/// `application/x-www-form-urlencoded` (the default in a repository's settings).
fn form_payload(json: &[u8]) -> Vec<u8> {
    let mut out = b"payload=".to_vec();
    for &b in json {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => out.push(b),
            b' ' => out.push(b'+'),
            _ => out.extend_from_slice(format!("%{b:02X}").as_bytes()),
        }
    }
    out
}

#[tokio::test]
async fn a_form_encoded_github_webhook_is_acted_on_once() {
    let h = harness().await;
    h.fake.set_log("5101", NET_LOG);
    let json = failed_job(5101, "failure");
    let body = form_payload(&json);
    let req = Request::post("/webhooks/github")
        .header("x-github-event", "workflow_job")
        .header("x-github-delivery", "d-form-1")
        .header("x-hub-signature-256", sign(&body, SECRET))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .unwrap();
    let (status, v) = h.send(req).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    let r = h.record(queued_id(&v)).await;
    assert_eq!(
        (r.category.as_deref(), r.outcome.as_str()),
        (Some("network"), "rerun-scheduled"),
        "{r:?}"
    );
    h.fake
        .wait_for("the re-run", |s| {
            s.iter().any(|s| {
                s.method == "POST"
                    && s.path == "/repos/Codertocat/Hello-World/actions/jobs/5101/rerun"
            })
        })
        .await;
    // The same job as JSON under another delivery id: the same fact.
    let (s2, v2) = h.github("workflow_job", "d-form-2", &json, SECRET).await;
    assert_eq!(s2, StatusCode::OK, "{v2}");
    // A form with no `payload` field, correctly signed: 400 saying so.
    let junk = b"hook_id=1".to_vec();
    let req = Request::post("/webhooks/github")
        .header("x-github-event", "workflow_job")
        .header("x-github-delivery", "d-form-3")
        .header("x-hub-signature-256", sign(&junk, SECRET))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(junk))
        .unwrap();
    let (s3, v3) = h.send(req).await;
    assert_eq!(s3, StatusCode::BAD_REQUEST, "{v3}");
    assert!(v3["error"].as_str().unwrap().contains("payload"), "{v3}");
    assert_eq!(h.fake.count("GET", "/storage/logs/5101"), 1);
    assert_eq!(h.fake.count("POST", "/actions/jobs/5101/rerun"), 1);
}

#[tokio::test]
async fn a_retried_gitlab_job_is_one_event_from_its_job_and_pipeline_hooks() {
    let h = harness().await;
    h.fake.set_log("1977", NET_LOG);
    let post = |uuid: &str, event: &str, body: Vec<u8>| {
        Request::post("/webhooks/gitlab")
            .header("x-gitlab-token", "gl-secret")
            .header("x-gitlab-event", event)
            .header("x-gitlab-event-uuid", uuid)
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap()
    };
    // The Job Hook of a retried job: a new job id, `retries_count: 1`.
    let mut job: Value = serde_json::from_slice(&fixture("gitlab/build.json")).unwrap();
    job["build_status"] = "failed".into();
    job["retries_count"] = 1.into();
    let (s1, v1) = h
        .send(post(
            "u-retry-1",
            "Job Hook",
            serde_json::to_vec(&job).unwrap(),
        ))
        .await;
    assert_eq!(s1, StatusCode::ACCEPTED, "{v1}");
    let r = h.record(queued_id(&v1)).await;
    assert_eq!(
        (r.category.as_deref(), r.outcome.as_str()),
        (Some("network"), "rerun-scheduled"),
        "{r:?}"
    );
    assert_eq!(r.job.attempt, 2);
    h.fake
        .wait_for("the GitLab retry", |s| {
            s.iter()
                .any(|s| s.method == "POST" && s.path == "/api/v4/projects/380/jobs/1977/retry")
        })
        .await;
    // The Pipeline Hook listing the same job (its `builds[]` carry no
    // retries_count): the same fact.
    let mut p: Value = serde_json::from_slice(&fixture("gitlab/pipeline.json")).unwrap();
    p["object_attributes"]["status"] = "failed".into();
    p["object_attributes"]["id"] = 2366.into();
    p["project"]["id"] = 380.into();
    p["builds"][0]["id"] = 1977.into();
    p["builds"][0]["status"] = "failed".into();
    let (s2, v2) = h
        .send(post(
            "u-retry-2",
            "Pipeline Hook",
            serde_json::to_vec(&p).unwrap(),
        ))
        .await;
    assert_eq!(s2, StatusCode::OK, "{v2}");
    assert_eq!(v2["duplicate"], true);
    assert_eq!(h.fake.count("GET", "/jobs/1977/trace"), 1);
    assert_eq!(h.fake.count("POST", "/jobs/1977/retry"), 1);
}

#[tokio::test]
async fn jenkins_jobs_with_encoded_names_are_reached_by_their_encoded_paths() {
    let h = harness().await;
    // (build, name, url as the plugin sends it, name shown, path Jenkins wants)
    let cases = [
        (
            "21",
            "asgard web",
            "job/asgard%20web/",
            "asgard web",
            "/job/asgard%20web",
        ),
        (
            "22",
            "feature%2Fx",
            "job/p/job/feature%252Fx/",
            "p/feature/x",
            "/job/p/job/feature%252Fx",
        ),
        (
            "23",
            "déploiement",
            "job/d%C3%A9ploiement/",
            "déploiement",
            "/job/d%C3%A9ploiement",
        ),
    ];
    for (number, name, url, shown, path) in cases {
        h.fake.set_log(number, NET_LOG);
        let body = |phase: &str| {
            serde_json::to_vec(&serde_json::json!({
                "name": name,
                "url": url,
                "build": {
                    "full_url": format!("http://jenkins/{url}{number}/"),
                    "number": number.parse::<u64>().unwrap(),
                    "phase": phase,
                    "status": "FAILURE",
                    "url": format!("{url}{number}/"),
                    "scm": { "commit": "c47a4f3f2d2a1c0f0f0d9b8a7f6e5d4c3b2a1f0e", "branch": "main" }
                }
            }))
            .unwrap()
        };
        let req = |phase: &str| {
            Request::post("/webhooks/jenkins?token=jk-secret")
                .header("content-type", "application/json;charset=UTF-8")
                .body(Body::from(body(phase)))
                .unwrap()
        };
        let (s1, v1) = h.send(req("COMPLETED")).await;
        assert_eq!(s1, StatusCode::ACCEPTED, "{url}: {v1}");
        let r = h.record(queued_id(&v1)).await;
        assert_eq!(r.outcome, "rerun-scheduled", "{url}: {r:?}");
        assert_eq!(r.job.repository, shown);
        let build = format!("{path}/build");
        h.fake
            .wait_for("the rebuild", |s| {
                s.iter().any(|s| {
                    s.method == "POST" && s.path == build && s.headers.contains_key("jenkins-crumb")
                })
            })
            .await;
        // FINALIZED after COMPLETED: the same fact.
        let (s2, v2) = h.send(req("FINALIZED")).await;
        assert_eq!(s2, StatusCode::OK, "{url}: {v2}");
        let seen = h.fake.seen();
        let console = format!("{path}/{number}/consoleText");
        assert_eq!(
            seen.iter()
                .filter(|s| s.method == "GET" && s.path == console)
                .count(),
            1,
            "{url}: {seen:?}"
        );
        assert_eq!(
            seen.iter()
                .filter(|s| s.method == "POST"
                    && s.path == build
                    && s.headers.contains_key("jenkins-crumb"))
                .count(),
            1,
            "{url}: {seen:?}"
        );
    }
}
