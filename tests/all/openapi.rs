//! Every request the GitHub adapter can make, checked against GitHub's
//! OpenAPI description (tests/data/specs/github-actions.openapi.json):
//! path template, method, query parameters and JSON body fields.

use guard::config::{GitHub, GitHubAnnotate};
use guard::model::{Job, Platform};
use guard::platform::Adapter;
use guard::platform::github::GitHub as Adapter_;
use serde_json::Value;

use crate::fake::{Fake, Seen};

pub(crate) fn spec() -> Value {
    let path = format!(
        "{}/data/specs/github-actions.openapi.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The spec path template matching `path`, if any.
fn template<'a>(spec: &'a Value, path: &str) -> Option<(&'a str, &'a Value)> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    spec["paths"].as_object()?.iter().find_map(|(t, item)| {
        let ts: Vec<&str> = t.trim_matches('/').split('/').collect();
        let matches = ts.len() == segs.len()
            && ts
                .iter()
                .zip(&segs)
                .all(|(t, s)| (t.starts_with('{') && t.ends_with('}') && !s.is_empty()) || t == s);
        matches.then_some((t.as_str(), item))
    })
}

/// Checks that `body`'s fields are declared by `schema` (recursively) and
/// that the required ones are present.
fn check_body(schema: &Value, body: &Value, at: &str, problems: &mut Vec<String>) {
    let Some(obj) = body.as_object() else { return };
    let props = schema["properties"].as_object();
    for (k, v) in obj {
        match props.and_then(|p| p.get(k)) {
            None => problems.push(format!("{at}: field `{k}` is not in the spec")),
            Some(sub) if v.is_object() => check_body(sub, v, &format!("{at}.{k}"), problems),
            Some(_) => {}
        }
    }
    for r in schema["required"].as_array().into_iter().flatten() {
        let r = r.as_str().unwrap_or("");
        if !obj.contains_key(r) {
            problems.push(format!("{at}: required field `{r}` missing"));
        }
    }
}

pub(crate) fn check(spec: &Value, s: &Seen, problems: &mut Vec<String>) {
    let what = format!("{} {}", s.method, s.path);
    let Some((t, item)) = template(spec, &s.path) else {
        problems.push(format!("{what}: no such path in the spec"));
        return;
    };
    let Some(op) = item.get(s.method.to_lowercase()) else {
        problems.push(format!("{what}: {t} has no {} operation", s.method));
        return;
    };
    let declared: Vec<&str> = op["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["in"] == "query")
        .filter_map(|p| p["name"].as_str())
        .collect();
    for pair in s.query.split('&').filter(|p| !p.is_empty()) {
        let name = pair.split('=').next().unwrap_or("");
        if !declared.contains(&name) {
            problems.push(format!(
                "{what}: query parameter `{name}` not declared for {t}"
            ));
        }
    }
    let body = s.json();
    if !s.body.is_empty() {
        let schema = &op["requestBody"]["content"]["application/json"]["schema"];
        if schema.is_null() {
            problems.push(format!("{what}: sends a body, the spec takes none"));
        } else {
            check_body(schema, &body, &what, problems);
        }
    } else if op["requestBody"]["required"] == true {
        problems.push(format!("{what}: the spec requires a body"));
    }
}

#[tokio::test]
async fn every_github_request_matches_the_openapi_description() {
    let fake = Fake::start(false).await;
    fake.set_log("42", "log line\n");
    fake.set_run_jobs(serde_json::json!({ "total_count": 1, "jobs": [{ "id": 42, "name": "t", "conclusion": "failure" }] }));
    let job = Job {
        platform: Platform::Github,
        repository: "octo-org/octo-repo".into(),
        run_id: "7".into(),
        job_id: "42".into(),
        job_name: "test".into(),
        attempt: 2,
        commit: Some("3484a3fb816e0859fd6e1cea078d76385ff50625".into()),
        branch: Some("main".into()),
        url: Some("https://github.com/octo-org/octo-repo/runs/42".into()),
        api_id: None,
    };
    let dir = tempfile::tempdir().unwrap();
    for mode in [GitHubAnnotate::CommitComment, GitHubAnnotate::CheckRun] {
        let gh = Adapter_::new(&GitHub {
            api_url: fake.url(),
            token: Some("t".into()),
            webhook_secret: None,
            annotate: mode,
            repositories: Vec::new(),
            app: None,
        })
        .unwrap();
        let got = gh
            .fetch_log(&job, &dir.path().join("log"), 1 << 20)
            .await
            .unwrap();
        assert_eq!(got.bytes, 9);
        assert_eq!(gh.failed_jobs(&job).await.unwrap()[0].job_id, "42");
        gh.rerun_job(&job, true).await.unwrap();
        gh.rerun_failed_jobs(&job, false).await.unwrap();
        gh.cancel(&job).await.unwrap();
        gh.annotate(&job, "network failure", "evidence")
            .await
            .unwrap();
    }
    let gh = Adapter_::new(&GitHub {
        api_url: fake.url(),
        token: None,
        webhook_secret: None,
        annotate: GitHubAnnotate::CommitComment,
        app: None,
        repositories: Vec::new(),
    })
    .unwrap();
    assert_eq!(
        gh.clear_caches(&job, "npm-").await.unwrap(),
        2,
        "both caches of the fake are deleted"
    );
    // Catch-up: a repository's failed runs, each expanded into its jobs.
    fake.set_runs(serde_json::json!({
        "total_count": 1,
        "workflow_runs": [{
            "id": 7, "run_attempt": 2, "conclusion": "failure",
            "repository": { "full_name": "octo-org/octo-repo" }
        }]
    }));
    let recent = gh
        .recent_failures("octo-org/octo-repo", 1_700_000_000_000, None, 10)
        .await
        .unwrap();
    assert_eq!(
        recent
            .jobs
            .iter()
            .map(|j| (j.job_id.as_str(), j.attempt))
            .collect::<Vec<_>>(),
        [("42", 2)]
    );
    assert_eq!(recent.rest_until, None);
    // The rest of a listing cut short: runs created up to where it stopped.
    let rest = gh
        .recent_failures(
            "octo-org/octo-repo",
            1_700_000_000_000,
            Some(1_700_000_600_000),
            10,
        )
        .await
        .unwrap();
    assert_eq!(rest.jobs.len(), 1);
    assert!(
        fake.seen().iter().any(|s| s.path.ends_with("/actions/runs")
            && s.query
                .contains("created=2023-11-11T22%3A13%3A20Z..2023-11-14T22%3A23%3A20Z")),
        "{:?}",
        fake.seen().into_iter().map(|s| s.query).collect::<Vec<_>>()
    );
    let spec = spec();
    let mut problems = Vec::new();
    let seen: Vec<Seen> = fake
        .seen()
        .into_iter()
        .filter(|s| !s.path.starts_with("/storage/"))
        .collect();
    // Each kind of request was made, so the check covers them all.
    for (method, suffix) in [
        ("GET", "/actions/jobs/42/logs"),
        ("GET", "/actions/runs/7/attempts/2/jobs"),
        ("POST", "/actions/jobs/42/rerun"),
        ("POST", "/actions/runs/7/rerun-failed-jobs"),
        ("POST", "/actions/runs/7/cancel"),
        (
            "POST",
            "/commits/3484a3fb816e0859fd6e1cea078d76385ff50625/comments",
        ),
        ("POST", "/check-runs"),
        ("GET", "/actions/caches"),
        ("DELETE", "/actions/caches/11"),
        ("GET", "/actions/runs"),
    ] {
        assert!(
            seen.iter()
                .any(|s| s.method == method && s.path.ends_with(suffix)),
            "{method} {suffix} never made"
        );
    }
    for s in &seen {
        check(&spec, s, &mut problems);
    }
    assert!(
        problems.is_empty(),
        "requests that do not match GitHub's API:\n{}",
        problems.join("\n")
    );
    // And the checker itself catches a wrong request.
    let mut bad = seen[0].clone();
    bad.path = "/repos/o/r/actions/jobs/1/retry".into();
    let mut p = Vec::new();
    check(&spec, &bad, &mut p);
    assert_eq!(p.len(), 1, "{p:?}");
}

#[tokio::test]
async fn the_failed_jobs_of_a_run_are_read_from_every_page() {
    let fake = Fake::start(false).await;
    // 200 jobs (a matrix of 200), every other one failed: 100 failures
    // over two full pages, and GitHub's count says there is no third.
    let jobs: Vec<Value> = (0..200u64)
        .map(|i| {
            let conclusion = if i % 2 == 0 { "failure" } else { "success" };
            serde_json::json!({
                "id": 5000 + i,
                "name": format!("test ({i})"),
                "conclusion": conclusion,
                "run_attempt": 1
            })
        })
        .collect();
    fake.set_run_jobs(serde_json::json!({ "total_count": 200, "jobs": jobs }));
    let gh = Adapter_::new(&GitHub {
        api_url: fake.url(),
        token: Some("t".into()),
        webhook_secret: None,
        annotate: GitHubAnnotate::CommitComment,
        repositories: Vec::new(),
        app: None,
    })
    .unwrap();
    let run = Job {
        platform: Platform::Github,
        repository: "octo-org/octo-repo".into(),
        run_id: "7".into(),
        attempt: 1,
        ..Job::default()
    };
    let failed = gh.failed_jobs(&run).await.unwrap();
    assert_eq!(failed.len(), 100);
    assert_eq!(
        (failed[0].job_id.as_str(), failed[99].job_id.as_str()),
        ("5000", "5198")
    );
    let pages: Vec<String> = fake
        .seen()
        .iter()
        .filter(|s| s.path == "/repos/octo-org/octo-repo/actions/runs/7/attempts/1/jobs")
        .map(|s| s.query.clone())
        .collect();
    assert_eq!(pages, ["per_page=100&page=1", "per_page=100&page=2"]);
    let spec = spec();
    let mut problems = Vec::new();
    let seen = fake.seen();
    for s in &seen {
        check(&spec, s, &mut problems);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
