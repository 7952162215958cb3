//! `guard:plugin/http`: requests to allow-listed hosts (`http:<host>`).
//!
//! The host of the URL must be granted; redirects are followed only while
//! they stay on that host (a redirect elsewhere is answered as it is, not
//! followed), request and response bodies are capped, and the request must
//! finish within the call's time. Proxies from the environment are not
//! used: a plugin reaches exactly the host it was granted.

use std::sync::OnceLock;
use std::time::Duration;

use crate::caps::grants::Grant;
use crate::runtime::bindings::http::{Host, Request, Response};
use crate::runtime::bindings::types::Error;
use crate::runtime::state::PluginState;

/// The host of an absolute http(s) URL, lowercased, without port or userinfo.
pub fn url_host(url: &str) -> Result<String, Error> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| {
            Error::Invalid(format!(
                "only absolute http:// or https:// URLs are allowed, not {url:?}"
            ))
        })?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(Error::Invalid(
            "URLs with credentials (user@host) are refused".into(),
        ));
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    if host.is_empty() {
        return Err(Error::Invalid(format!("URL {url:?} has no host")));
    }
    Ok(host.to_ascii_lowercase())
}

/// Largest request or response body.
const MAX_BODY: usize = 4 * 1024 * 1024;
/// Most headers in a request.
const MAX_HEADERS: usize = 64;
/// Longest a request may take, whatever the call's budget.
const MAX_TIME: Duration = Duration::from_secs(30);

/// Headers a plugin may not set: they would let it talk to another virtual
/// host than the one granted, or smuggle requests.
const FORBIDDEN_HEADERS: &[&str] = &[
    "host",
    "connection",
    "transfer-encoding",
    "content-length",
    "upgrade",
    "proxy-authorization",
    "te",
    "trailer",
];

fn client() -> Result<&'static reqwest::Client, Error> {
    static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .user_agent(concat!("guard-plugin/", env!("CARGO_PKG_VERSION")))
                .no_proxy()
                .connect_timeout(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::custom(|attempt| {
                    let same_host = attempt
                        .previous()
                        .first()
                        .and_then(|u| u.host_str())
                        .zip(attempt.url().host_str())
                        .is_some_and(|(a, b)| a.eq_ignore_ascii_case(b));
                    if same_host && attempt.previous().len() < 5 {
                        attempt.follow()
                    } else {
                        attempt.stop()
                    }
                }))
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| Error::Unavailable(format!("no HTTP client: {e}")))
}

async fn transport(req: Request, timeout: Duration) -> Result<Response, Error> {
    let method = match req.method.to_ascii_uppercase().as_str() {
        m @ ("GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE") => {
            reqwest::Method::from_bytes(m.as_bytes()).map_err(|e| Error::Invalid(e.to_string()))?
        }
        other => {
            return Err(Error::Invalid(format!(
                "method {other:?} is not allowed (GET, HEAD, POST, PUT, PATCH, DELETE)"
            )));
        }
    };
    if req.headers.len() > MAX_HEADERS {
        return Err(Error::Limited(format!("at most {MAX_HEADERS} headers")));
    }
    if req.body.as_ref().is_some_and(|b| b.len() > MAX_BODY) {
        return Err(Error::Limited(format!(
            "request body over {MAX_BODY} bytes"
        )));
    }
    let mut rb = client()?.request(method, &req.url).timeout(timeout);
    for (k, v) in &req.headers {
        if FORBIDDEN_HEADERS.contains(&k.to_ascii_lowercase().as_str()) {
            return Err(Error::Invalid(format!(
                "header {k:?} may not be set by a plugin"
            )));
        }
        rb = rb.header(k.as_str(), v.as_str());
    }
    if let Some(body) = req.body {
        rb = rb.body(body);
    }
    let mut resp = rb.send().await.map_err(|e| {
        if e.is_timeout() {
            Error::Limited("the request timed out".into())
        } else {
            Error::Unavailable(format!("request failed: {}", e.without_url()))
        }
    })?;
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .take(MAX_HEADERS)
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| Error::Unavailable(format!("reading the response: {}", e.without_url())))?
    {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(Error::Limited(format!(
                "response body over {MAX_BODY} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

impl Host for PluginState {
    async fn send(&mut self, req: Request) -> wasmtime::Result<Result<Response, Error>> {
        let host = match url_host(&req.url) {
            Ok(h) => h,
            Err(e) => return Ok(Err(e)),
        };
        if let Err(e) = self.require(&Grant::Http(host.clone())) {
            return Ok(Err(e));
        }
        let detail = format!("{} {}", req.method, req.url);
        if self.ctx.dry_run {
            self.audit("http.send", &detail, "dry-run");
            return Ok(Err(Error::Unavailable(
                "dry run: the request was not sent".into(),
            )));
        }
        let timeout = Duration::from_millis(self.ctx.limits.call_timeout_ms).min(MAX_TIME);
        let result = transport(req, timeout).await;
        let outcome = match &result {
            Ok(r) => format!("done: {} ({} bytes)", r.status, r.body.len()),
            Err(e) => format!("failed: {e:?}"),
        };
        self.audit("http.send", &detail, &outcome);
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(
            url_host("https://Status.npmjs.org:443/api?x").unwrap(),
            "status.npmjs.org"
        );
        assert_eq!(url_host("http://[::1]:8080/").unwrap(), "::1");
        assert!(url_host("file:///etc/passwd").is_err());
        assert!(url_host("https://user@evil.com/").is_err());
    }
}
