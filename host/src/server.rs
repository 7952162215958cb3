//! The HTTP side of `guard run` (axum): webhooks in ([`webhooks`]), the
//! JSON API, health and metrics out ([`api`]), the dashboard ([`dashboard`]).
//!
//! Every route shares the same guards: a body size cap (413), a whole-
//! request timeout (408, so slow clients cannot hold connections), and a
//! rate limit per (route, client address) on the webhooks and
//! `/api/detect` (429 with `retry-after`).

pub mod api;
pub mod dashboard;
pub mod webhooks;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde_json::json;
use tower_http::timeout::TimeoutLayer;

use crate::daemon::Daemon;

/// What handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The daemon.
    pub daemon: Arc<Daemon>,
    limiter: Arc<DefaultKeyedRateLimiter<(&'static str, IpAddr)>>,
}

impl AppState {
    /// Checks the rate limit of `route` for the request's client; over it,
    /// the answer is a 429 with `retry-after`.
    pub fn rate_limit(&self, route: &'static str, req: &Request) -> Option<Response> {
        // Requests without a peer address (in-process tests) share one bucket.
        let ip = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        match self.limiter.check_key(&(route, ip)) {
            Ok(()) => None,
            Err(not_until) => {
                let wait = not_until.wait_time_from(governor::clock::Clock::now(
                    &governor::clock::DefaultClock::default(),
                ));
                let secs = wait.as_secs().max(1);
                let mut r = error(
                    StatusCode::TOO_MANY_REQUESTS,
                    &format!(
                        "rate limit of [server] rate_limit_per_minute reached; retry in {secs} s"
                    ),
                );
                if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                    r.headers_mut().insert(header::RETRY_AFTER, v);
                }
                Some(r)
            }
        }
    }
}

/// A JSON error body `{"error": message}` with `status`.
pub fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

/// The router of `guard run`.
pub fn router(daemon: Arc<Daemon>) -> Router {
    let server = daemon.runtime.config().server.clone();
    let per_minute = NonZeroU32::new(server.rate_limit_per_minute).unwrap_or(NonZeroU32::MIN);
    let burst =
        NonZeroU32::new((server.rate_limit_per_minute / 10).max(1)).unwrap_or(NonZeroU32::MIN);
    let state = AppState {
        daemon,
        limiter: Arc::new(RateLimiter::keyed(
            Quota::per_minute(per_minute).allow_burst(burst),
        )),
    };
    Router::new()
        .route("/", get(dashboard::index))
        .route("/assets/app.js", get(dashboard::script))
        .route("/assets/style.css", get(dashboard::style))
        .route("/api/dashboard", get(dashboard::data))
        .route("/webhooks/github", post(webhooks::github))
        .route("/webhooks/gitlab", post(webhooks::gitlab))
        .route("/webhooks/jenkins", post(webhooks::jenkins))
        .route("/api/status", get(api::status))
        .route("/api/jobs", get(api::jobs))
        .route("/api/jobs/{id}", get(api::job))
        .route("/api/detect", post(api::detect))
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .route("/metrics", get(api::metrics))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(DefaultBodyLimit::max(server.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(server.request_timeout_secs.max(1)),
        ))
        .with_state(state)
}
