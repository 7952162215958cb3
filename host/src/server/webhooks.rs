//! `POST /webhooks/{github,gitlab,jenkins}`.
//!
//! Answers: 202 `{"queued": [ids]}` once the events are durably queued;
//! 200 `{"duplicate": true}` for a delivery (or fact) seen before; 202
//! `{"ignored": reason}` for an event of no interest; 401 for a missing or
//! wrong signature/token (nothing is parsed or queued); 400 with the
//! parser's reason for a malformed body; 413 for a body over the cap; 429
//! over the rate limit; 503 when the platform has no secret configured or
//! the database fails (the platform will redeliver).

use std::collections::HashMap;

use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{AppState, error};
use crate::daemon::queue::Accepted;
use crate::intake::{self, Parsed, WebhookError};
use crate::metrics::{self, labels};
use crate::model::Platform;

/// GitHub Actions webhooks.
pub async fn github(State(state): State<AppState>, req: Request) -> Response {
    receive(state, Platform::Github, req).await
}

/// GitLab webhooks.
pub async fn gitlab(State(state): State<AppState>, req: Request) -> Response {
    receive(state, Platform::Gitlab, req).await
}

/// Jenkins Notification plugin webhooks.
pub async fn jenkins(State(state): State<AppState>, req: Request) -> Response {
    receive(state, Platform::Jenkins, req).await
}

fn count(platform: &str, result: &str) {
    metrics::get()
        .webhooks
        .get_or_create(&labels(&[("platform", platform), ("result", result)]))
        .inc();
}

async fn receive(state: AppState, platform: Platform, req: Request) -> Response {
    let name = intake::platform_name(platform);
    let route: &'static str = match platform {
        Platform::Github => "webhooks/github",
        Platform::Gitlab => "webhooks/gitlab",
        _ => "webhooks/jenkins",
    };
    if let Some(r) = state.rate_limit(route, &req) {
        count(name, "rate-limited");
        return r;
    }
    let config = state.daemon.runtime.config().clone();
    let max = config.server.max_body_bytes;
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, max).await {
        Ok(b) => b,
        Err(e) => {
            count(name, "too-large");
            // to_bytes fails for an over-long body or a broken stream.
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.to_string().contains("length limit"))
                || e.to_string().contains("length limit");
            return if too_large {
                error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("body over [server] max_body_bytes = {max}"),
                )
            } else {
                error(
                    StatusCode::BAD_REQUEST,
                    &format!("cannot read the body: {e}"),
                )
            };
        }
    };
    let configured = match platform {
        Platform::Github => config.github.is_some(),
        Platform::Gitlab => config.gitlab.is_some(),
        _ => config.jenkins.is_some(),
    };
    if !configured {
        count(name, "not-configured");
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("guard.toml has no [{name}] section: guard does not take {name} webhooks"),
        );
    }
    let parsed: Result<Parsed, WebhookError> = match platform {
        Platform::Github => intake::github::parse(
            &parts.headers,
            &body,
            config
                .github
                .as_ref()
                .and_then(|g| g.webhook_secret.as_deref()),
        ),
        Platform::Gitlab => intake::gitlab::parse(
            &parts.headers,
            &body,
            config
                .gitlab
                .as_ref()
                .and_then(|g| g.webhook_secret.as_deref()),
        ),
        _ => {
            let query: HashMap<String, String> = Query::try_from_uri(&parts.uri)
                .map(|Query(q)| q)
                .unwrap_or_default();
            intake::jenkins::parse(
                &parts.headers,
                query.get("token").map(String::as_str),
                &body,
                config
                    .jenkins
                    .as_ref()
                    .and_then(|j| j.webhook_secret.as_deref()),
            )
        }
    };
    let mut parsed = match parsed {
        Ok(p) => p,
        Err(WebhookError::Unauthorized(m)) => {
            count(name, "unauthorized");
            // Logged (naming the route, hence the platform) and recorded.
            state
                .daemon
                .runtime
                .db()
                .security("guard", "webhook-refused", route, &m);
            return error(StatusCode::UNAUTHORIZED, &m);
        }
        Err(WebhookError::NotConfigured(m)) => {
            count(name, "not-configured");
            return error(StatusCode::SERVICE_UNAVAILABLE, &m);
        }
        Err(WebhookError::Malformed(m)) => {
            count(name, "malformed");
            return error(StatusCode::BAD_REQUEST, &m);
        }
    };
    // Most jobs succeed; a success only matters when it settles a heal.
    let db = state.daemon.runtime.db();
    parsed.events.retain(|e| match e {
        intake::EventKind::JobCompleted {
            job,
            status: intake::JobStatus::Succeeded,
        } => crate::heal::session::heal_pending(db, job),
        _ => true,
    });
    if parsed.events.is_empty() && parsed.ignored.is_none() {
        parsed.ignored = Some("the job succeeded and no heal of it is pending".into());
    }
    if parsed.events.is_empty() {
        count(name, "ignored");
        let why = parsed.ignored.unwrap_or_else(|| "nothing to do".into());
        return (StatusCode::ACCEPTED, axum::Json(json!({ "ignored": why }))).into_response();
    }
    match state.daemon.queue.accept(&parsed).await {
        Ok(Accepted::Queued(ids)) => {
            count(name, "accepted");
            state.daemon.wake.notify_one();
            (StatusCode::ACCEPTED, axum::Json(json!({ "queued": ids }))).into_response()
        }
        Ok(Accepted::Duplicate) => {
            count(name, "duplicate");
            (
                StatusCode::OK,
                axum::Json(json!({ "duplicate": true, "delivery": parsed.delivery })),
            )
                .into_response()
        }
        Err(e) => {
            count(name, "store-error");
            tracing::error!("cannot queue a webhook: {e}");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "guard cannot store the event now; redeliver later",
            )
        }
    }
}
