//! guard as a GitHub App: its own webhook deliveries. GitHub does not send
//! a failed delivery again on its own; when guard was down (or answered
//! with a server error), catch-up lists the App's failed deliveries since
//! its last look and asks GitHub to redeliver each one guard never
//! received. The redelivery arrives through the intake like any webhook —
//! signature, de-duplication by delivery id — so a job is still handled
//! once.
//!
//! The App authenticates as itself with a JSON Web Token (RS256, signed
//! with the App's private key, valid ten minutes), made per request.

use reqwest::Method;
use serde::Deserialize;

use super::super::PlatformError;
use super::super::client::{Auth, Client};
use super::super::timestamp::parse_rfc3339;
use crate::config::GitHubApp as Settings;

/// Pages of deliveries read per pass at most (100 each).
const MAX_PAGES: usize = 20;

/// A GitHub App's view of its own webhooks.
pub struct App {
    client: Client,
    id: u64,
    key: jsonwebtoken::EncodingKey,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("App").field("id", &self.id).finish()
    }
}

/// One delivery attempt of a webhook, as GitHub lists it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Delivery {
    /// The attempt's id (what a redelivery is asked by).
    pub id: u64,
    /// The delivery's id, the same for every attempt: `X-GitHub-Delivery`.
    pub guid: String,
    /// When GitHub sent it.
    pub delivered_at: String,
    /// Whether this attempt was itself a redelivery.
    #[serde(default)]
    pub redelivery: bool,
    /// The HTTP status guard answered (0: no answer).
    #[serde(default)]
    pub status_code: u16,
    /// The event (`workflow_job`, `workflow_run`, …).
    #[serde(default)]
    pub event: String,
}

impl Delivery {
    /// Whether guard missed it (no answer, a timeout, a server error or a
    /// rate limit), as opposed to refusing it on purpose (a bad signature,
    /// an unexpected payload): only a missed delivery is worth sending again.
    pub fn missed(&self) -> bool {
        matches!(self.status_code, 0 | 408 | 429) || self.status_code >= 500
    }
}

impl App {
    /// The App `settings` on the API at `api_url`.
    pub fn new(api_url: &str, settings: &Settings) -> Result<App, PlatformError> {
        let pem = settings
            .private_key_pem()
            .map_err(PlatformError::NotConfigured)?;
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| {
            PlatformError::NotConfigured(format!(
                "[github.app] private key is not an RSA key in PEM: {e}"
            ))
        })?;
        Ok(App {
            client: Client::new("github", api_url, Auth::None)?,
            id: settings.id,
            key,
        })
    }

    /// A token for the App itself: issued a minute ago (clocks differ),
    /// valid nine minutes more (GitHub takes ten at most).
    fn jwt(&self) -> Result<String, PlatformError> {
        #[derive(serde::Serialize)]
        struct Claims {
            iat: u64,
            exp: u64,
            iss: String,
        }
        let now = crate::store::now_ms() / 1000;
        let claims = Claims {
            iat: now.saturating_sub(60),
            exp: now + 540,
            iss: self.id.to_string(),
        };
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            &claims,
            &self.key,
        )
        .map_err(|e| PlatformError::Protocol {
            platform: "github",
            message: format!("signing the App's token: {e}"),
        })
    }

    /// The App's failed delivery attempts since `since_ms`, newest first,
    /// at most `limit`.
    pub async fn failed_deliveries(
        &self,
        since_ms: u64,
        limit: usize,
    ) -> Result<Vec<Delivery>, PlatformError> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let jwt = self.jwt()?;
            let page_cursor = cursor.clone();
            let resp = self
                .client
                .send(Method::GET, "/app/hook/deliveries", &move |rb| {
                    let rb = super::GitHub::api(rb)
                        .bearer_auth(&jwt)
                        .query(&[("per_page", "100"), ("status", "failure")]);
                    match &page_cursor {
                        Some(c) => rb.query(&[("cursor", c.as_str())]),
                        None => rb,
                    }
                })
                .await?;
            let next = next_cursor(resp.headers());
            let page: Vec<Delivery> = resp.json().await.map_err(|e| PlatformError::Protocol {
                platform: "github",
                message: format!("the App's deliveries: {e}"),
            })?;
            for d in page {
                let at = parse_rfc3339(&d.delivered_at).unwrap_or(0);
                if at < since_ms {
                    return Ok(out);
                }
                out.push(d);
                if out.len() >= limit {
                    return Ok(out);
                }
            }
            match next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        Ok(out)
    }

    /// Asks GitHub to send delivery attempt `id` again.
    pub async fn redeliver(&self, id: u64) -> Result<(), PlatformError> {
        let jwt = self.jwt()?;
        let path = format!("/app/hook/deliveries/{id}/attempts");
        self.client
            .send(Method::POST, &path, &move |rb| {
                super::GitHub::api(rb).bearer_auth(&jwt)
            })
            .await
            .map(|_| ())
    }
}

/// The `cursor` of the `rel="next"` page in a `Link` header.
fn next_cursor(headers: &reqwest::header::HeaderMap) -> Option<String> {
    let link = headers.get(reqwest::header::LINK)?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (url, rel) = part.split_once(';')?;
        if !rel.contains("rel=\"next\"") {
            return None;
        }
        let url = url.trim().trim_start_matches('<').trim_end_matches('>');
        let query = url.split_once('?')?.1;
        query.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == "cursor").then(|| v.to_string())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_page_cursor_comes_from_the_link_header() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(
            reqwest::header::LINK,
            "<https://api.github.com/app/hook/deliveries?per_page=2&cursor=v1_12077215967>; rel=\"next\""
                .parse()
                .unwrap(),
        );
        assert_eq!(next_cursor(&h).as_deref(), Some("v1_12077215967"));
        h.insert(
            reqwest::header::LINK,
            "<https://api.github.com/app/hook/deliveries?cursor=a>; rel=\"prev\""
                .parse()
                .unwrap(),
        );
        assert_eq!(next_cursor(&h), None);
    }

    #[test]
    fn only_deliveries_guard_missed_are_sent_again() {
        let d = |status_code| Delivery {
            id: 1,
            guid: "g".into(),
            delivered_at: "2026-12-03T05:00:00Z".into(),
            redelivery: false,
            status_code,
            event: "workflow_job".into(),
        };
        assert!(d(0).missed() && d(502).missed() && d(429).missed() && d(408).missed());
        assert!(!d(401).missed() && !d(400).missed() && !d(404).missed());
    }
}
