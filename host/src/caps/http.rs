//! `guard:plugin/http`: requests to allow-listed hosts (`http:<host>`).
//!
//! The grant check and URL validation are complete; the transport arrives
//! with the daemon's HTTP client. Until then a granted request answers
//! `unavailable` instead of pretending.

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
        self.audit(
            "http.send",
            &detail,
            "failed: no HTTP transport in this build",
        );
        Ok(Err(Error::Unavailable(format!(
            "guard cannot send HTTP requests to {host} yet: no HTTP transport in this build"
        ))))
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
