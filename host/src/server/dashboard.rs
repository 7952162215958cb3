//! The dashboard at `/`: one HTML page, a stylesheet and a script, embedded
//! in the binary (no CDN, no build step), polling `/api/dashboard`, which
//! gathers everything the page shows in one answer.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

use super::AppState;
use crate::status::collect;
use crate::store::now_ms;

const INDEX: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/app.js");
const STYLE: &str = include_str!("dashboard/style.css");

/// Only this origin's own files and API; nothing inline, nothing framed.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'";

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// `GET /`.
pub async fn index() -> Response {
    asset(INDEX, "text/html; charset=utf-8")
}

/// `GET /assets/app.js`.
pub async fn script() -> Response {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

/// `GET /assets/style.css`.
pub async fn style() -> Response {
    asset(STYLE, "text/css; charset=utf-8")
}

#[derive(Serialize)]
struct Hour {
    hour_ms: u64,
    counts: BTreeMap<String, u32>,
}

#[derive(Serialize)]
struct Flaky {
    test: String,
    count: u32,
    last_ms: u64,
}

/// `GET /api/dashboard`.
pub async fn data(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(r) = super::api::unauthorized(&state, &headers) {
        return r;
    }
    let d = &state.daemon;
    let db = d.runtime.db();
    let status = match collect(d.runtime.config(), db) {
        Ok(s) => s,
        Err(e) => {
            return super::error(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                &e.to_string(),
            );
        }
    };
    // The chart and the flaky list summarise the last thousand events.
    let recent = d.queue.jobs(1000).unwrap_or_default();
    let now = now_ms();
    let hour = 3_600_000u64;
    let first = (now / hour).saturating_sub(23) * hour;
    let mut by_hour: Vec<Hour> = (0..24)
        .map(|i| Hour {
            hour_ms: first + i * hour,
            counts: BTreeMap::new(),
        })
        .collect();
    let mut flaky: BTreeMap<String, Flaky> = BTreeMap::new();
    for r in &recent {
        if let Some(c) = &r.category
            && r.processed_ms >= first
            && let Some(slot) = by_hour.get_mut(((r.processed_ms - first) / hour) as usize)
        {
            *slot.counts.entry(c.clone()).or_default() += 1;
        }
        for t in &r.flaky_tests {
            let f = flaky.entry(t.clone()).or_insert(Flaky {
                test: t.clone(),
                count: 0,
                last_ms: 0,
            });
            f.count += 1;
            f.last_ms = f.last_ms.max(r.processed_ms);
        }
    }
    let mut flaky: Vec<Flaky> = flaky.into_values().collect();
    flaky.sort_by(|a, b| b.count.cmp(&a.count).then(b.last_ms.cmp(&a.last_ms)));
    let denials: BTreeMap<String, usize> = db
        .security_events(10_000)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.kind == "denied")
        .fold(BTreeMap::new(), |mut m, e| {
            *m.entry(e.plugin).or_default() += 1;
            m
        });
    let totals = crate::metrics::get().plugin_totals();
    let plugins: Vec<_> = d
        .runtime
        .plugins()
        .iter()
        .map(|p| {
            let t = totals.get(p.id()).cloned().unwrap_or_default();
            json!({
                "id": p.id(),
                "kind": p.kind,
                "calls": t.calls,
                "failures": t.failures,
                "avg_ms": if t.calls > 0 { t.total_secs * 1000.0 / t.calls as f64 } else { 0.0 },
                "max_ms": t.max_secs * 1000.0,
                "denials": denials.get(p.id()).copied().unwrap_or(0),
                "quarantined": p.is_quarantined(),
            })
        })
        .collect();
    let candidates: Vec<_> = crate::learn::candidates::all(db)
        .unwrap_or_default()
        .into_iter()
        .take(50)
        .map(|c| json!({ "id": c.id, "template": c.template(), "count": c.count, "last_seen_ms": c.last_seen_ms }))
        .collect();
    axum::Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "dry_run": d.dry_run,
        "queue_depth": d.queue.depth(),
        "jobs_processed": d.queue.jobs_count(),
        "dead_letters": d.queue.dead_count(),
        "scheduled_reruns": d.schedule.pending(100_000).map(|p| p.len()).unwrap_or(0),
        "jobs": recent.iter().take(50).collect::<Vec<_>>(),
        "by_hour": by_hour,
        "flaky": flaky,
        "breakers": status.breakers,
        "budgets": status.budgets,
        "plugins": plugins,
        "candidates": candidates,
    }))
    .into_response()
}
