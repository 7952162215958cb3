//! A loopback fake of the GitHub, GitLab and Jenkins APIs: records every
//! request, serves job logs and the listings catch-up reads (GitHub's
//! workflow runs and their jobs, GitLab's project jobs and the failed
//! pipelines they make, Jenkins' builds) as the test sets them, paged and
//! filtered as the platforms do, can answer 500 to chosen GETs, and can
//! hold log downloads until the test opens a gate (to catch the daemon
//! mid-processing).

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

    /// The jobs answered for a GitHub run's attempt
    /// (`{"total_count": …, "jobs": […]}`), served `per_page` a page.
    pub fn set_run_jobs(&self, v: serde_json::Value) {
        *self.shared.run_jobs.lock().unwrap() = v;
    }

    /// The first page of a GitHub repository's workflow runs
    /// (`{"total_count": …, "workflow_runs": […]}`); later pages are empty.
    pub fn set_runs(&self, v: serde_json::Value) {
        *self.shared.runs.lock().unwrap() = v;
    }

    /// A GitLab project's jobs (a JSON array), whatever the project: what
    /// `/projects/:id/jobs` answers, in this order, `per_page` a page, and
    /// what `/projects/:id/pipelines` and `/pipelines/:id/jobs` answer.
    /// The pipelines are those the jobs name (`pipeline`), failed unless
    /// said otherwise, updated when their last job finished unless they
    /// say `updated_at`. A job marked `"retried": true` is listed only
    /// with `include_retried=true`.
    pub fn set_gitlab_jobs(&self, v: serde_json::Value) {
        *self.shared.gitlab_jobs.lock().unwrap() = v;
    }

    /// A Jenkins job's builds (`{"builds": […]}`, newest first), whatever
    /// the job: `api/json` answers the `{M,N}` range of them its `tree`
    /// asks for, as `builds` and `allBuilds`, with the job's `fullName`:
    /// the one given here, else the requested path's names.
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

/// The query's parameters, decoded, in order.
fn query_pairs(uri: &axum::http::Uri) -> Vec<(String, String)> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|q| q.0)
        .unwrap_or_default()
}

/// The first value of a query parameter.
fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The `page` (from 1) of `per_page` items (default 30).
fn page_of(items: Vec<serde_json::Value>, q: &[(String, String)]) -> Vec<serde_json::Value> {
    let per_page: usize = param(q, "per_page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let page: usize = param(q, "page").and_then(|v| v.parse().ok()).unwrap_or(1);
    items
        .into_iter()
        .skip(page.saturating_sub(1) * per_page)
        .take(per_page)
        .collect()
}

/// A timestamp field in ms (0 when absent).
fn ms(v: &serde_json::Value, field: &str) -> u64 {
    v[field]
        .as_str()
        .and_then(guard::platform::timestamp::parse_rfc3339)
        .unwrap_or(0)
}

/// The failed pipelines `jobs` name, as `GET /projects/:id/pipelines`
/// lists them for the query `q`.
fn gitlab_pipelines(jobs: &serde_json::Value, q: &[(String, String)]) -> Vec<serde_json::Value> {
    let mut pipelines: Vec<serde_json::Value> = Vec::new();
    for job in jobs.as_array().into_iter().flatten() {
        let Some(id) = job["pipeline"]["id"].as_u64() else {
            continue;
        };
        let finished = job["finished_at"].clone();
        match pipelines.iter_mut().find(|p| p["id"] == id) {
            Some(p) => {
                if ms(job, "finished_at") > ms(p, "last_finished") {
                    p["last_finished"] = finished;
                }
            }
            None => {
                let mut p = job["pipeline"].clone();
                p["last_finished"] = finished;
                pipelines.push(p);
            }
        }
    }
    for p in &mut pipelines {
        if p["status"].is_null() {
            p["status"] = "failed".into();
        }
        if p["updated_at"].is_null() {
            p["updated_at"] = p["last_finished"].clone();
        }
    }
    let bound = |name: &str| param(q, name).and_then(guard::platform::timestamp::parse_rfc3339);
    let (after, before) = (bound("updated_after"), bound("updated_before"));
    pipelines.retain(|p| {
        param(q, "status").is_none_or(|s| p["status"] == s)
            && after.is_none_or(|a| ms(p, "updated_at") > a)
            && before.is_none_or(|b| ms(p, "updated_at") < b)
    });
    pipelines.sort_by_key(|p| std::cmp::Reverse((ms(p, "updated_at"), p["id"].as_u64())));
    page_of(pipelines, q)
}

/// The jobs of pipeline `id` among `jobs`, newest first, as
/// `GET /projects/:id/pipelines/:pipeline_id/jobs` lists them for `q`.
fn gitlab_pipeline_jobs(
    jobs: &serde_json::Value,
    id: u64,
    q: &[(String, String)],
) -> Vec<serde_json::Value> {
    let retried = param(q, "include_retried") == Some("true");
    let scopes: Vec<&str> = q
        .iter()
        .filter(|(k, _)| k == "scope[]")
        .map(|(_, v)| v.as_str())
        .collect();
    let mut listed: Vec<serde_json::Value> = jobs
        .as_array()
        .into_iter()
        .flatten()
        .filter(|j| j["pipeline"]["id"] == id)
        .filter(|j| retried || j["retried"] != true)
        .filter(|j| scopes.is_empty() || scopes.iter().any(|s| j["status"] == *s))
        .cloned()
        .collect();
    listed.sort_by_key(|j| std::cmp::Reverse(j["id"].as_u64()));
    page_of(listed, q)
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
    // GitHub's runs: the data set by the test on page 1.
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
    let q = query_pairs(&parts.uri);
    if method == Method::GET && segs.len() == 5 && segs[2] == "projects" && segs[4] == "jobs" {
        let set = s.gitlab_jobs.lock().unwrap().clone();
        let jobs: Vec<serde_json::Value> = set.as_array().cloned().unwrap_or_default();
        return json(StatusCode::OK, page_of(jobs, &q).into());
    }
    if method == Method::GET && segs.len() == 5 && segs[2] == "projects" && segs[4] == "pipelines" {
        let jobs = s.gitlab_jobs.lock().unwrap().clone();
        return json(StatusCode::OK, gitlab_pipelines(&jobs, &q).into());
    }
    if method == Method::GET
        && segs.len() == 7
        && segs[2] == "projects"
        && segs[4] == "pipelines"
        && segs[6] == "jobs"
    {
        let jobs = s.gitlab_jobs.lock().unwrap().clone();
        let id: u64 = segs[5].parse().unwrap_or(0);
        return json(StatusCode::OK, gitlab_pipeline_jobs(&jobs, id, &q).into());
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
        let set = s.jenkins_builds.lock().unwrap().clone();
        let builds: Vec<serde_json::Value> = set["builds"].as_array().cloned().unwrap_or_default();
        // `tree=…{M,N}`: builds M (included) to N (excluded).
        let range = param(&q, "tree")
            .and_then(|t| t.rsplit_once('{'))
            .and_then(|(_, r)| r.trim_end_matches('}').split_once(','))
            .and_then(|(m, n)| Some((m.parse::<usize>().ok()?, n.parse::<usize>().ok()?)));
        let builds: Vec<serde_json::Value> = match range {
            Some((m, n)) => builds
                .into_iter()
                .skip(m)
                .take(n.saturating_sub(m))
                .collect(),
            None => builds,
        };
        let full_name = match set["fullName"].as_str() {
            Some(name) => name.to_string(),
            None => segs[..segs.len() - 2]
                .iter()
                .skip(1)
                .step_by(2)
                .copied()
                .collect::<Vec<_>>()
                .join("/"),
        };
        return json(
            StatusCode::OK,
            serde_json::json!({ "fullName": full_name, "builds": builds, "allBuilds": builds }),
        );
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
        let set = s.run_jobs.lock().unwrap().clone();
        let all: Vec<serde_json::Value> = set["jobs"].as_array().cloned().unwrap_or_default();
        let total = set["total_count"].as_u64().unwrap_or(all.len() as u64);
        return json(
            StatusCode::OK,
            serde_json::json!({ "total_count": total, "jobs": page_of(all, &q) }),
        );
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
