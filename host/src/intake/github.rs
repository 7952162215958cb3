//! GitHub Actions webhooks: `workflow_job` and `workflow_run`, signed with
//! `X-Hub-Signature-256` (HMAC-SHA256 of the raw body with the webhook
//! secret), identified by `X-GitHub-Delivery`.
//!
//! A webhook's content type is the repository's choice: `application/json`
//! sends the JSON as the body, `application/x-www-form-urlencoded` (the
//! default when a webhook is created in a repository's settings) sends it
//! as the `payload` field of a form. Both are accepted; the signature is
//! always over the raw body as sent.

use std::borrow::Cow;

use axum::http::HeaderMap;
use hmac::{Mac, SimpleHmac};
use serde::Deserialize;
use sha2::Sha256;

use super::{EventKind, JobStatus, Parsed, WebhookError, clip, digest, header, json};
use crate::model::{Job, Platform};

/// Checks the signature of `body`. The comparison is constant-time
/// (`verify_slice`), so a forger learns nothing from response times.
pub fn verify(headers: &HeaderMap, body: &[u8], secret: &str) -> Result<(), WebhookError> {
    let sig = header(headers, "x-hub-signature-256")
        .ok_or_else(|| WebhookError::Unauthorized("missing X-Hub-Signature-256 header".into()))?;
    let hex_sig = sig.strip_prefix("sha256=").ok_or_else(|| {
        WebhookError::Unauthorized("X-Hub-Signature-256 must start with sha256=".into())
    })?;
    let expected = hex::decode(hex_sig)
        .map_err(|_| WebhookError::Unauthorized("X-Hub-Signature-256 is not hexadecimal".into()))?;
    let mut mac = SimpleHmac::<Sha256>::new_from_slice(secret.as_bytes())
        .map_err(|_| WebhookError::NotConfigured("the webhook secret is unusable".into()))?;
    mac.update(body);
    mac.verify_slice(&expected).map_err(|_| {
        WebhookError::Unauthorized("X-Hub-Signature-256 does not match the body".into())
    })
}

#[derive(Deserialize)]
pub(crate) struct Repository {
    pub(crate) full_name: String,
}

#[derive(Deserialize)]
struct WorkflowJob {
    id: u64,
    run_id: u64,
    name: String,
    #[serde(default)]
    run_attempt: Option<u32>,
    #[serde(default)]
    conclusion: Option<String>,
    #[serde(default)]
    head_sha: Option<String>,
    #[serde(default)]
    head_branch: Option<String>,
    #[serde(default)]
    html_url: Option<String>,
}

#[derive(Deserialize)]
struct JobPayload {
    action: String,
    workflow_job: WorkflowJob,
    repository: Repository,
}

/// A workflow run as a `workflow_run` webhook and the runs listing
/// (`GET /repos/{owner}/{repo}/actions/runs`, used by catch-up) both carry
/// it: read one way, so both name the run alike.
#[derive(Deserialize)]
pub(crate) struct WorkflowRun {
    pub(crate) id: u64,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    run_attempt: Option<u32>,
    #[serde(default)]
    pub(crate) conclusion: Option<String>,
    #[serde(default)]
    head_sha: Option<String>,
    #[serde(default)]
    head_branch: Option<String>,
    #[serde(default)]
    html_url: Option<String>,
    /// Listings only: when the run was created (their order).
    #[serde(default)]
    pub(crate) created_at: Option<String>,
    /// Listings only: when the run last changed.
    #[serde(default)]
    pub(crate) updated_at: Option<String>,
    /// Listings only: the repository as GitHub spells it.
    #[serde(default)]
    pub(crate) repository: Option<Repository>,
}

impl WorkflowRun {
    /// The run as guard's [`Job`] (no job id: it stands for the run),
    /// in `repository` (`owner/name` as GitHub spells it).
    pub(crate) fn into_job(self, repository: &str) -> Job {
        Job {
            platform: Platform::Github,
            repository: clip(repository, 256),
            run_id: self.id.to_string(),
            job_id: String::new(),
            job_name: clip(self.name.as_deref().unwrap_or("workflow"), 256),
            attempt: self.run_attempt.unwrap_or(1).max(1),
            commit: self.head_sha.map(|s| clip(&s, 64)),
            branch: self.head_branch.map(|s| clip(&s, 256)),
            url: self.html_url.map(|s| clip(&s, 1024)),
            api_id: None,
        }
    }
}

#[derive(Deserialize)]
struct RunPayload {
    action: String,
    workflow_run: WorkflowRun,
    repository: Repository,
}

/// Whether the body is a form (`payload=<url-encoded JSON>`) rather than
/// the JSON itself: the content type says so, or the body does (a JSON
/// body cannot start with `payload=`).
fn is_form(headers: &HeaderMap, body: &[u8]) -> bool {
    let form_type = header(headers, "content-type").is_some_and(|ct| {
        ct.split(';').next().is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
    });
    form_type || body.starts_with(b"payload=")
}

/// The JSON document of a webhook: the body, or its `payload` form field.
fn payload<'a>(headers: &HeaderMap, body: &'a [u8]) -> Result<Cow<'a, [u8]>, WebhookError> {
    if !is_form(headers, body) {
        return Ok(Cow::Borrowed(body));
    }
    form_urlencoded::parse(body)
        .find(|(name, _)| name == "payload")
        .map(|(_, value)| Cow::Owned(value.into_owned().into_bytes()))
        .ok_or_else(|| {
            WebhookError::Malformed(
                "the body is form-encoded (application/x-www-form-urlencoded) but has no \
                 `payload` field"
                    .into(),
            )
        })
}

/// Conclusions that mean "failed" to guard.
fn status_of(conclusion: Option<&str>) -> Option<JobStatus> {
    match conclusion? {
        "failure" | "timed_out" => Some(JobStatus::Failed),
        "success" => Some(JobStatus::Succeeded),
        _ => None,
    }
}

/// Authenticates and parses a GitHub webhook. `secret` is `[github]
/// webhook_secret`; without one every webhook is refused.
pub fn parse(
    headers: &HeaderMap,
    body: &[u8],
    secret: Option<&str>,
) -> Result<Parsed, WebhookError> {
    let secret = secret.filter(|s| !s.is_empty()).ok_or_else(|| {
        WebhookError::NotConfigured(
            "[github] webhook_secret is not set: guard refuses unsigned GitHub webhooks".into(),
        )
    })?;
    verify(headers, body, secret)?;
    let delivery = match header(headers, "x-github-delivery") {
        Some(d) if !d.is_empty() => delivery_key(d),
        _ => format!("github:sha256:{}", digest(body)),
    };
    let event = header(headers, "x-github-event")
        .ok_or_else(|| WebhookError::Malformed("missing X-GitHub-Event header".into()))?;
    match event {
        "workflow_job" => {
            let p: JobPayload = json(&payload(headers, body)?)?;
            if p.action != "completed" {
                return Ok(Parsed::ignored(
                    delivery,
                    format!("workflow_job {}", clip(&p.action, 32)),
                ));
            }
            let j = p.workflow_job;
            let Some(status) = status_of(j.conclusion.as_deref()) else {
                return Ok(Parsed::ignored(
                    delivery,
                    format!(
                        "job concluded {}",
                        j.conclusion.as_deref().unwrap_or("without a conclusion")
                    ),
                ));
            };
            // The repository object is the signed source of truth for where
            // the job lives; its URLs are only shown to people.
            let job = Job {
                platform: Platform::Github,
                repository: clip(&p.repository.full_name, 256),
                run_id: j.run_id.to_string(),
                job_id: j.id.to_string(),
                job_name: clip(&j.name, 256),
                attempt: j.run_attempt.unwrap_or(1).max(1),
                commit: j.head_sha.map(|s| clip(&s, 64)),
                branch: j.head_branch.map(|s| clip(&s, 256)),
                url: j.html_url.map(|s| clip(&s, 1024)),
                api_id: None,
            };
            Ok(Parsed {
                delivery,
                events: vec![EventKind::JobCompleted { job, status }],
                ignored: None,
            })
        }
        "workflow_run" => {
            let p: RunPayload = json(&payload(headers, body)?)?;
            let r = p.workflow_run;
            if p.action != "completed"
                || status_of(r.conclusion.as_deref()) != Some(JobStatus::Failed)
            {
                return Ok(Parsed::ignored(
                    delivery,
                    format!(
                        "workflow_run {} ({})",
                        clip(&p.action, 32),
                        r.conclusion.as_deref().unwrap_or("no conclusion")
                    ),
                ));
            }
            let run = r.into_job(&p.repository.full_name);
            Ok(Parsed {
                delivery,
                events: vec![EventKind::RunFailed { run }],
                ignored: None,
            })
        }
        "ping" => Ok(Parsed::ignored(delivery, "ping")),
        other => Ok(Parsed::ignored(
            delivery,
            format!("{} events are not used", clip(other, 64)),
        )),
    }
}

/// How a GitHub delivery id (`X-GitHub-Delivery`, the `guid` of a
/// delivery GitHub lists) is remembered for de-duplication.
pub fn delivery_key(guid: &str) -> String {
    format!("github:{}", clip(guid, 128))
}

/// The `X-Hub-Signature-256` value for `body` (for tests and load tools).
pub fn sign(body: &[u8], secret: &str) -> String {
    let mut mac = match SimpleHmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        // HMAC takes keys of any length; this cannot happen.
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn githubs_documented_signature_vector_verifies() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-hub-signature-256",
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
                .parse()
                .unwrap(),
        );
        verify(&h, b"Hello, World!", "It's a Secret to Everybody").unwrap();
        assert!(matches!(
            verify(&h, b"Hello, World?", "It's a Secret to Everybody"),
            Err(WebhookError::Unauthorized(_))
        ));
        assert_eq!(
            sign(b"Hello, World!", "It's a Secret to Everybody"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    #[test]
    fn no_secret_configured_refuses_everything() {
        let h = HeaderMap::new();
        assert!(matches!(
            parse(&h, b"{}", None),
            Err(WebhookError::NotConfigured(_))
        ));
    }

    #[test]
    fn signed_garbage_is_malformed_with_a_reason() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-hub-signature-256",
            sign(b"{\"action\":1}", "k").parse().unwrap(),
        );
        h.insert("x-github-event", "workflow_job".parse().unwrap());
        let e = parse(&h, b"{\"action\":1}", Some("k")).unwrap_err();
        assert!(
            matches!(e, WebhookError::Malformed(ref m) if m.contains("expected JSON")),
            "{e:?}"
        );
    }

    const COMPLETED: &str =
        include_str!("../../../tests/data/fixtures/github/workflow_job.1.completed.json");

    /// Headers GitHub sends with `body`, signed with `k`.
    fn signed(body: &[u8], content_type: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-hub-signature-256", sign(body, "k").parse().unwrap());
        h.insert("x-github-event", "workflow_job".parse().unwrap());
        h.insert("x-github-delivery", "d-1".parse().unwrap());
        if let Some(ct) = content_type {
            h.insert("content-type", ct.parse().unwrap());
        }
        h
    }

    /// `payload=<JSON>` as GitHub form-encodes it.
    fn form(json: &str) -> Vec<u8> {
        let encoded: String = form_urlencoded::byte_serialize(json.as_bytes()).collect();
        format!("payload={encoded}").into_bytes()
    }

    #[test]
    fn a_form_encoded_webhook_is_the_same_event_as_its_json() {
        let json = COMPLETED.as_bytes();
        let a = parse(&signed(json, Some("application/json")), json, Some("k")).unwrap();
        let body = form(COMPLETED);
        let b = parse(
            &signed(&body, Some("application/x-www-form-urlencoded")),
            &body,
            Some("k"),
        )
        .unwrap();
        assert_eq!(a.events, b.events);
        assert_eq!(a.events.len(), 1);
        assert_eq!(a.events[0].fact_key(), b.events[0].fact_key());
        let job = b.events[0].job();
        assert_eq!(
            (job.repository.as_str(), job.job_id.as_str()),
            ("Codertocat/Hello-World", "289782451")
        );
        // Without a content type (or with a charset), the body tells.
        let c = parse(&signed(&body, None), &body, Some("k")).unwrap();
        assert_eq!(a.events, c.events);
        let d = parse(
            &signed(
                &body,
                Some("Application/X-WWW-Form-Urlencoded; charset=utf-8"),
            ),
            &body,
            Some("k"),
        )
        .unwrap();
        assert_eq!(a.events, d.events);
    }

    #[test]
    fn a_form_is_authenticated_over_its_raw_body() {
        let body = form(COMPLETED);
        // Signed over the JSON inside rather than the body as sent: refused.
        let h = signed(
            COMPLETED.as_bytes(),
            Some("application/x-www-form-urlencoded"),
        );
        assert!(matches!(
            parse(&h, &body, Some("k")),
            Err(WebhookError::Unauthorized(_))
        ));
    }

    #[test]
    fn a_form_without_a_payload_field_is_malformed() {
        let body = b"other=1&payloads=%7B%7D".to_vec();
        let e = parse(
            &signed(&body, Some("application/x-www-form-urlencoded")),
            &body,
            Some("k"),
        )
        .unwrap_err();
        assert!(
            matches!(e, WebhookError::Malformed(ref m) if m.contains("`payload`")),
            "{e:?}"
        );
        // A payload that is not the expected JSON says so.
        let body = form("{\"action\":1}");
        let e = parse(
            &signed(&body, Some("application/x-www-form-urlencoded")),
            &body,
            Some("k"),
        )
        .unwrap_err();
        assert!(
            matches!(e, WebhookError::Malformed(ref m) if m.contains("expected JSON")),
            "{e:?}"
        );
    }
}
