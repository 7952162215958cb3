//! The JSON API (`/api/status`, `/api/jobs`, `/api/jobs/{id}`,
//! `/api/detect`), `/healthz` and `/metrics`. When `[server] api_token` is
//! set, `/api/*` needs `Authorization: Bearer <token>`.

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{AppState, error};
use crate::heal::breaker;
use crate::model::Job;
use crate::status::collect;
use crate::store::now_ms;

/// The 401 response when the API token is required and missing or wrong.
pub(crate) fn unauthorized(state: &AppState, headers: &HeaderMap) -> Option<Response> {
    // No token configured: the API is open (it listens on loopback by default).
    let expected = state
        .daemon
        .runtime
        .config()
        .server
        .api_token
        .clone()
        .filter(|t| !t.is_empty())?;
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if crate::intake::secret_eq(given.as_bytes(), expected.as_bytes()) {
        None
    } else {
        Some(error(
            StatusCode::UNAUTHORIZED,
            "this API needs Authorization: Bearer <[server] api_token>",
        ))
    }
}

fn internal(e: impl std::fmt::Display) -> Response {
    error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())
}

/// `GET /healthz`.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: 200 when the database answers (a replica cut off from
/// PostgreSQL takes no webhooks it could not queue), else 503.
pub async fn readyz(State(state): State<AppState>) -> Response {
    match state.daemon.runtime.db().ping() {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => {
            tracing::warn!("not ready: {e}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the database does not answer\n",
            )
                .into_response()
        }
    }
}

/// `GET /api/status`: queue, dead letters, schedule, breakers, budgets,
/// strategy statistics and plugin health.
pub async fn status(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(r) = unauthorized(&state, &headers) {
        return r;
    }
    let d = &state.daemon;
    let base = match collect(d.runtime.config(), d.runtime.db()) {
        Ok(s) => s,
        Err(e) => return internal(e),
    };
    let dead = d.queue.dead_letters(50).unwrap_or_default();
    let scheduled = d.schedule.pending(100).unwrap_or_default();
    let plugins: Vec<_> = d
        .runtime
        .plugins()
        .iter()
        .map(|p| {
            json!({
                "id": p.id(),
                "kind": p.kind,
                "quarantined": p.is_quarantined(),
                "consecutive_failures": p.consecutive_failures(),
            })
        })
        .collect();
    axum::Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "dry_run": d.dry_run,
        "queue_depth": d.queue.depth(),
        "jobs_processed": d.queue.jobs_count(),
        "dead_letters": dead,
        "scheduled_reruns": scheduled.iter().map(|(at, s)| json!({
            "at_ms": at, "job": s.job, "all_failed": s.all_failed, "tries": s.tries,
        })).collect::<Vec<_>>(),
        "breakers": base.breakers,
        "budgets": base.budgets,
        "stats": base.stats,
        "security_events": base.security_events,
        "plugins": plugins,
    }))
    .into_response()
}

#[derive(Deserialize)]
pub struct JobsQuery {
    limit: Option<usize>,
}

/// `GET /api/jobs?limit=N`: processed events, newest first.
pub async fn jobs(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<JobsQuery>,
) -> Response {
    if let Some(r) = unauthorized(&state, &headers) {
        return r;
    }
    match state.daemon.queue.jobs(q.limit.unwrap_or(50).min(1000)) {
        Ok(j) => axum::Json(j).into_response(),
        Err(e) => internal(e),
    }
}

/// `GET /api/jobs/{id}`: one processed event.
pub async fn job(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(r) = unauthorized(&state, &headers) {
        return r;
    }
    let Ok(id) = id.parse::<u64>() else {
        return error(
            StatusCode::BAD_REQUEST,
            "job ids are numbers (see /api/jobs)",
        );
    };
    match state.daemon.queue.job(id) {
        Ok(Some(j)) => axum::Json(j).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, &format!("no processed event {id}")),
        Err(e) => internal(e),
    }
}

/// `POST /api/detect`: the body is a log; the answer is the diagnosis.
pub async fn detect(State(state): State<AppState>, req: Request) -> Response {
    if let Some(r) = unauthorized(&state, req.headers()) {
        return r;
    }
    if let Some(r) = state.rate_limit("api/detect", &req) {
        return r;
    }
    let max = state.daemon.runtime.config().server.max_body_bytes;
    let body = match axum::body::to_bytes(req.into_body(), max).await {
        Ok(b) => b,
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("log over [server] max_body_bytes = {max}"),
            );
        }
    };
    let job = Job::local("api");
    match state
        .daemon
        .analyzer
        .get()
        .analyze(std::io::Cursor::new(&body[..]), &job, &mut |_| {})
        .await
    {
        Ok(report) => {
            let d = &report.diagnosis;
            let line = match d.category {
                Some(c) => format!(
                    "{c} failure ({}) — {}",
                    d.failure_type.as_deref().unwrap_or("?"),
                    d.evidence.first().map(|e| e.text.as_str()).unwrap_or("")
                ),
                None => "no failure found".into(),
            };
            axum::Json(json!({ "summary": line, "report": report })).into_response()
        }
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string()),
    }
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let m = crate::metrics::get();
    let d = &state.daemon;
    m.queue_depth.set(d.queue.depth() as i64);
    m.dead_letters.set(d.queue.dead_count() as i64);
    m.scheduled
        .set(d.schedule.pending(100_000).map(|p| p.len()).unwrap_or(0) as i64);
    let now = now_ms();
    let (mut closed, mut open, mut half) = (0i64, 0i64, 0i64);
    for (_, b) in breaker::all(d.runtime.db()).unwrap_or_default() {
        match b.state(now) {
            breaker::State::Closed => closed += 1,
            breaker::State::Open => open += 1,
            breaker::State::HalfOpen => half += 1,
        }
    }
    for (state_name, n) in [("closed", closed), ("open", open), ("half-open", half)] {
        m.breakers
            .get_or_create(&crate::metrics::labels(&[("state", state_name)]))
            .set(n);
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.render(),
    )
        .into_response()
}
