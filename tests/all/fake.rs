//! A loopback fake of the GitHub, GitLab and Jenkins APIs: records every
//! request, serves job logs and the listings catch-up reads (GitHub's
//! workflow runs, GitLab's project jobs, Jenkins' builds) as the test sets
//! them, can answer 500 to chosen GETs, and can hold log downloads until
//! the test opens a gate (to catch the daemon mid-processing).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub host: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Seen {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

#[derive(Clone)]
struct Shared {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    logs: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    run_jobs: Arc<Mutex<serde_json::Value>>,
    runs: Arc<Mutex<serde_json::Value>>,
    gitlab_jobs: Arc<Mutex<serde_json::Value>>,
    jenkins_builds: Arc<Mutex<serde_json::Value>>,
    app_deliveries: Arc<Mutex<serde_json::Value>>,
    failing: Arc<Mutex<Vec<String>>>,
    caches_left: Arc<Mutex<Vec<u64>>>,
    gate: tokio::sync::watch::Receiver<bool>,
}

/// The fake server.
pub struct Fake {
    pub addr: SocketAddr,
    shared: Shared,
    gate: tokio::sync::watch::Sender<bool>,
}

impl Fake {
    /// Starts the fake on a free loopback port; log downloads flow unless
    /// `hold_logs`.
    pub async fn start(hold_logs: bool) -> Fake {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::watch::channel(!hold_logs);
        let shared = Shared {
            port: addr.port(),
            seen: Arc::default(),
            logs: Arc::default(),
            run_jobs: Arc::new(Mutex::new(
                serde_json::json!({ "total_count": 0, "jobs": [] }),
            )),
            runs: Arc::new(Mutex::new(
                serde_json::json!({ "total_count": 0, "workflow_runs": [] }),
            )),
            gitlab_jobs: Arc::new(Mutex::new(serde_json::json!([]))),
            jenkins_builds: Arc::new(Mutex::new(serde_json::json!({ "builds": [] }))),
            app_deliveries: Arc::new(Mutex::new(serde_json::json!([]))),
            failing: Arc::default(),
            caches_left: Arc::new(Mutex::new(vec![11, 12])),
            gate: rx,
        };
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Fake {
            addr,
            shared,
            gate: tx,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sets the log served for a job id (GitHub, GitLab) or build number (Jenkins).
    pub fn set_log(&self, id: &str, log: &str) {
        self.set_log_bytes(id, log.as_bytes().to_vec());
    }

    /// Sets a log that need not be UTF-8.
    pub fn set_log_bytes(&self, id: &str, log: Vec<u8>) {
        self.shared.logs.lock().unwrap().insert(id.into(), log);
    }

    /// The jobs answered for a GitHub run's attempt.
    pub fn set_run_jobs(&self, v: serde_json::Value) {
        *self.shared.run_jobs.lock().unwrap() = v;
    }

    /// The first page of a GitHub repository's workflow runs
    /// (`{"total_count": …, "workflow_runs": […]}`); later pages are empty.
    pub fn set_runs(&self, v: serde_json::Value) {
        *self.shared.runs.lock().unwrap() = v;
    }

    /// The first page of a GitLab project's jobs (a JSON array); later
    /// pages are empty.
    pub fn set_gitlab_jobs(&self, v: serde_json::Value) {
        *self.shared.gitlab_jobs.lock().unwrap() = v;
    }

    /// A Jenkins job's `api/json` (`{"builds": […]}`), whatever the job.
    pub fn set_jenkins_builds(&self, v: serde_json::Value) {
        *self.shared.jenkins_builds.lock().unwrap() = v;
    }

    /// Answers 500 to every GET whose path contains `fragment`.
    /// What `GET /app/hook/deliveries` lists (a GitHub App's deliveries).
    pub fn set_app_deliveries(&self, v: serde_json::Value) {
        *self.shared.app_deliveries.lock().unwrap() = v;
    }

    pub fn fail_gets_containing(&self, fragment: &str) {
        self.shared.failing.lock().unwrap().push(fragment.into());
    }

    /// Answers every GET normally again.
    pub fn clear_failures(&self) {
        self.shared.failing.lock().unwrap().clear();
    }

    /// Lets held log downloads through.
    pub fn open_gate(&self) {
        self.gate.send_replace(true);
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// Requests with this method whose path ends with `suffix`.
    pub fn count(&self, method: &str, suffix: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.method == method && s.path.ends_with(suffix))
            .count()
    }

    /// Waits (up to 20 s) until `pred` holds over the requests seen.
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&[Seen]) -> bool) {
        for _ in 0..400 {
            if pred(&self.seen()) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!(
            "timed out waiting for {what}; seen: {:#?}",
            self.seen()
                .iter()
                .map(|s| format!("{} {}", s.method, s.path))
                .collect::<Vec<_>>()
        );
    }
}

fn json(status: StatusCode, v: serde_json::Value) -> Response {
    (status, axum::Json(v)).into_response()
}

async fn handle(State(s): State<Shared>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 64 << 20)
        .await
        .unwrap_or_default();
    let path = parts.uri.path().to_string();
    let method = parts.method.clone();
    s.seen.lock().unwrap().push(Seen {
        method: method.to_string(),
        path: path.clone(),
        query: parts.uri.query().unwrap_or("").to_string(),
        host: parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
            .to_string(),
        headers: parts.headers.clone(),
        body,
    });
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let log_for = |id: &str| s.logs.lock().unwrap().get(id).cloned().unwrap_or_default();
    if method == Method::GET
        && s.failing
            .lock()
            .unwrap()
            .iter()
            .any(|f| path.contains(f.as_str()))
    {
        return json(
            StatusCode::INTERNAL_SERVER_ERROR,
            serde_json::json!({ "message": "Server Error" }),
        );
    }
    // The listings catch-up reads: the data set by the test on page 1.
    let first_page = !parts
        .uri
        .query()
        .unwrap_or("")
        .split('&')
        .any(|p| p.starts_with("page=") && p != "page=1");
    if method == Method::GET && segs.len() == 5 && segs[0] == "repos" && segs[4] == "runs" {
        let runs = if first_page {
            s.runs.lock().unwrap().clone()
        } else {
            serde_json::json!({ "total_count": 0, "workflow_runs": [] })
        };
        return json(StatusCode::OK, runs);
    }
    if method == Method::GET && segs.len() == 5 && segs[2] == "projects" && segs[4] == "jobs" {
        let jobs = if first_page {
            s.gitlab_jobs.lock().unwrap().clone()
        } else {
            serde_json::json!([])
        };
        return json(StatusCode::OK, jobs);
    }
    if method == Method::GET && path == "/app/hook/deliveries" {
        let all = s.app_deliveries.lock().unwrap().clone();
        // As GitHub filters by `status=failure`: no 2xx answers.
        let failed: Vec<_> = all
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| {
                !(parts.uri.query().unwrap_or("").contains("status=failure")
                    && (200..300).contains(&d["status_code"].as_u64().unwrap_or(0)))
            })
            .cloned()
            .collect();
        return json(StatusCode::OK, serde_json::Value::Array(failed));
    }
    if method == Method::POST && path.starts_with("/app/hook/deliveries/") {
        return json(StatusCode::ACCEPTED, serde_json::json!({}));
    }
    if method == Method::GET && segs.first() == Some(&"job") && path.ends_with("/api/json") {
        return json(StatusCode::OK, s.jenkins_builds.lock().unwrap().clone());
    }
    // GitHub: the log URL redirects to storage on another host name.
    if method == Method::GET && path.ends_with("/logs") && segs.len() == 7 && segs[4] == "jobs" {
        let to = format!("http://localhost:{}/storage/logs/{}", s.port, segs[5]);
        return (StatusCode::FOUND, [(header::LOCATION, to)]).into_response();
    }
    if method == Method::GET && path.starts_with("/storage/logs/") {
        let mut gate = s.gate.clone();
        let _ = gate.wait_for(|open| *open).await;
        return log_for(segs[2]).into_response();
    }
    if method == Method::GET && path.ends_with("/trace") {
        let mut gate = s.gate.clone();
        let _ = gate.wait_for(|open| *open).await;
        return log_for(segs[segs.len() - 2]).into_response();
    }
    if method == Method::GET && path.ends_with("/consoleText") {
        return log_for(segs[segs.len() - 2]).into_response();
    }
    if method == Method::GET && path.contains("/attempts/") && path.ends_with("/jobs") {
        return json(StatusCode::OK, s.run_jobs.lock().unwrap().clone());
    }
    if method == Method::GET && path.ends_with("/actions/caches") {
        let left = s.caches_left.lock().unwrap().clone();
        let caches: Vec<_> = left
            .iter()
            .map(|id| serde_json::json!({ "id": id, "key": format!("npm-{id}") }))
            .collect();
        return json(
            StatusCode::OK,
            serde_json::json!({ "total_count": caches.len(), "actions_caches": caches }),
        );
    }
    if method == Method::DELETE && segs.len() == 6 && segs[4] == "caches" {
        let id: u64 = segs[5].parse().unwrap_or(0);
        s.caches_left.lock().unwrap().retain(|c| *c != id);
        return StatusCode::NO_CONTENT.into_response();
    }
    if path == "/crumbIssuer/api/json" {
        return json(
            StatusCode::OK,
            serde_json::json!({ "crumb": "c-1", "crumbRequestField": "Jenkins-Crumb" }),
        );
    }
    if method == Method::POST
        && segs.first() == Some(&"job")
        && !parts.headers.contains_key("jenkins-crumb")
    {
        return (
            StatusCode::FORBIDDEN,
            "No valid crumb was included in the request",
        )
            .into_response();
    }
    if method == Method::POST && path.ends_with("/cancel") {
        return json(StatusCode::ACCEPTED, serde_json::json!({}));
    }
    if method == Method::POST {
        return json(StatusCode::CREATED, serde_json::json!({}));
    }
    json(
        StatusCode::NOT_FOUND,
        serde_json::json!({ "message": "Not Found" }),
    )
}
