//! The HTTP client every adapter uses: base URL, credentials, retries and
//! rate limits in one place.
//!
//! Rate limits: a `429`, or a `403` with `x-ratelimit-remaining: 0`, makes
//! the client wait for `retry-after` / `x-ratelimit-reset` /
//! `ratelimit-reset` when that is at most [`MAX_WAIT`], and fail with
//! [`PlatformError::RateLimited`] otherwise (the event is then retried
//! later by the queue). A response saying the quota is used up blocks the
//! next requests until the reset, so guard does not spend its last calls
//! on errors. With a store to share it ([`Client::share_quota`]: the
//! daemon's), that block is recorded there too, so replicas on one
//! PostgreSQL database wait it out together rather than each spending the
//! token's last calls. Server errors are retried for GET and DELETE only: a POST
//! that failed with a 502 may still have re-run the job.
//!
//! Credentials are only ever put in request headers; errors and logs name
//! the method and path, never the query, host credentials or tokens.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use tokio::io::AsyncWriteExt;

use super::{Download, PlatformError};

/// The longest guard waits in-line for a rate limit to reset.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// Attempts per request (the first included).
const ATTEMPTS: u32 = 4;
/// Bytes of a downloaded log gathered before a write to its file.
const DOWNLOAD_BUFFER: usize = 256 << 10;

/// How requests are authenticated.
#[derive(Clone)]
pub enum Auth {
    /// `Authorization: Bearer …` (GitHub).
    Bearer(String),
    /// A named header (GitLab's `PRIVATE-TOKEN`).
    Header(&'static str, String),
    /// HTTP basic (Jenkins user + API token).
    Basic(String, String),
    /// Nothing.
    None,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a credential, not even in debug output.
        f.write_str(match self {
            Auth::Bearer(_) => "Bearer(…)",
            Auth::Header(..) => "Header(…)",
            Auth::Basic(..) => "Basic(…)",
            Auth::None => "None",
        })
    }
}

/// A platform's HTTP client.
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    auth: Auth,
    platform: &'static str,
    blocked_until: Mutex<Option<Instant>>,
    /// Where every replica records a used-up quota.
    shared: OnceLock<crate::store::Store>,
    /// The shared block as last read (ms since the epoch), and when it was
    /// read: the store is asked at most once a second.
    shared_until_ms: AtomicU64,
    shared_read_ms: AtomicU64,
}

/// How often the shared quota block is read again.
const SHARED_READ_EVERY_MS: u64 = 1_000;

impl Client {
    /// A client for `base` (no trailing slash needed).
    pub fn new(platform: &'static str, base: &str, auth: Auth) -> Result<Client, PlatformError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("guard/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(300))
            // Log downloads redirect to storage on another host; reqwest
            // drops the Authorization header when a redirect changes host.
            .redirect(reqwest::redirect::Policy::limited(5))
            .build()
            .map_err(|e| PlatformError::Transport {
                platform,
                message: e.to_string(),
            })?;
        Ok(Client {
            http,
            base: base.trim_end_matches('/').to_string(),
            auth,
            platform,
            blocked_until: Mutex::new(None),
            shared: OnceLock::new(),
            shared_until_ms: AtomicU64::new(0),
            shared_read_ms: AtomicU64::new(0),
        })
    }

    /// Records used-up quotas in `store`, and waits for those other
    /// processes recorded there (the first store given is kept).
    pub fn share_quota(&self, store: &crate::store::Store) {
        let _ = self.shared.set(store.clone());
    }

    fn quota_key(&self) -> String {
        format!("{}\u{1f}{}", self.platform, self.base)
    }

    /// Until when (ms since the epoch) another process found the quota
    /// used up, if later than now.
    fn shared_block(&self) -> Option<u64> {
        let store = self.shared.get()?;
        let now = epoch_ms();
        if now.saturating_sub(self.shared_read_ms.load(Ordering::Relaxed)) >= SHARED_READ_EVERY_MS {
            self.shared_read_ms.store(now, Ordering::Relaxed);
            match store.get(crate::store::Trees::RATE_LIMITS, &self.quota_key()) {
                Ok(until) => self
                    .shared_until_ms
                    .store(until.unwrap_or(0), Ordering::Relaxed),
                Err(e) => tracing::debug!("reading the shared rate limit: {e}"),
            }
        }
        let until = self.shared_until_ms.load(Ordering::Relaxed);
        (until > now).then_some(until)
    }

    /// Blocks requests for `wait`, here and (when shared) in every replica.
    fn block_for(&self, wait: Duration) {
        let until = Instant::now() + wait;
        match self.blocked_until.lock() {
            Ok(mut g) => *g = Some(until),
            Err(p) => *p.into_inner() = Some(until),
        }
        let Some(store) = self.shared.get() else {
            return;
        };
        let until_ms = epoch_ms() + wait.as_millis() as u64;
        self.shared_until_ms.fetch_max(until_ms, Ordering::Relaxed);
        let written = store.tree(crate::store::Trees::RATE_LIMITS).and_then(|t| {
            t.update(&self.quota_key(), |old| {
                Some(old.unwrap_or(0).max(until_ms))
            })
        });
        if let Err(e) = written {
            tracing::warn!(
                "sharing the {} rate limit with other replicas: {e}",
                self.platform
            );
        }
    }

    /// The absolute URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request for `path` with credentials attached.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let rb = self.http.request(method, self.url(path));
        match &self.auth {
            Auth::Bearer(t) => rb.bearer_auth(t),
            Auth::Header(name, v) => rb.header(*name, v),
            Auth::Basic(u, p) => rb.basic_auth(u, Some(p)),
            Auth::None => rb,
        }
    }

    /// Sends a request built by `build` (called once per attempt), with
    /// rate-limit waits and retries; returns a successful response.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        build: &(dyn Fn(RequestBuilder) -> RequestBuilder + Send + Sync),
    ) -> Result<Response, PlatformError> {
        let shown_path = path.split('?').next().unwrap_or(path).to_string();
        let idempotent = matches!(method, Method::GET | Method::DELETE | Method::HEAD);
        let mut last: Option<PlatformError> = None;
        for attempt in 0..ATTEMPTS {
            self.wait_for_quota().await?;
            let started = Instant::now();
            let result = build(self.request(method.clone(), path)).send().await;
            let resp = match result {
                Ok(r) => r,
                Err(e) => {
                    let err = PlatformError::Transport {
                        platform: self.platform,
                        message: without_url(&e),
                    };
                    if !idempotent {
                        return Err(err);
                    }
                    last = Some(err);
                    tokio::time::sleep(backoff(attempt)).await;
                    continue;
                }
            };
            tracing::debug!(
                platform = self.platform,
                method = %method,
                path = %shown_path,
                status = resp.status().as_u16(),
                ms = started.elapsed().as_millis() as u64,
                "platform request"
            );
            self.note_quota(&resp);
            let status = resp.status();
            if status.is_success() {
                return Ok(resp);
            }
            if let Some(wait) = rate_limit_wait(&resp) {
                self.block_for(wait);
                if wait > MAX_WAIT || attempt + 1 == ATTEMPTS {
                    return Err(PlatformError::RateLimited {
                        platform: self.platform,
                        retry_after_secs: wait.as_secs().max(1),
                    });
                }
                tokio::time::sleep(wait).await;
                continue;
            }
            let message = error_message(resp).await;
            let err = PlatformError::Status {
                method: method.to_string(),
                path: shown_path.clone(),
                status: status.as_u16(),
                message,
            };
            if status.is_server_error() && idempotent && attempt + 1 < ATTEMPTS {
                last = Some(err);
                tokio::time::sleep(backoff(attempt)).await;
                continue;
            }
            return Err(err);
        }
        Err(last.unwrap_or(PlatformError::Protocol {
            platform: self.platform,
            message: "no attempt was made".into(),
        }))
    }

    /// Sends and decodes a JSON response.
    pub async fn json<T: for<'de> serde::Deserialize<'de>>(
        &self,
        method: Method,
        path: &str,
        build: &(dyn Fn(RequestBuilder) -> RequestBuilder + Send + Sync),
    ) -> Result<T, PlatformError> {
        let resp = self.send(method, path, build).await?;
        resp.json::<T>().await.map_err(|e| PlatformError::Protocol {
            platform: self.platform,
            message: format!(
                "{}: {}",
                path.split('?').next().unwrap_or(path),
                without_url(&e)
            ),
        })
    }

    /// Streams a GET response body into `dest`, keeping at most `max` bytes
    /// (the end of a CI log holds the failure, so the *start* is dropped
    /// when a log is too long: guard keeps the first quarter and the last
    /// three quarters of the budget).
    pub async fn download(
        &self,
        path: &str,
        dest: &Path,
        max: u64,
    ) -> Result<Download, PlatformError> {
        let mut resp = self.send(Method::GET, path, &|rb| rb).await?;
        // Each write to a tokio file is a hop to the blocking pool: most
        // logs fit in one buffer and take one.
        let mut file = tokio::io::BufWriter::with_capacity(
            DOWNLOAD_BUFFER,
            tokio::fs::File::create(dest).await?,
        );
        let head_budget = max / 4;
        let tail_budget = max - head_budget;
        let mut written: u64 = 0;
        let mut tail: std::collections::VecDeque<u8> = std::collections::VecDeque::new();
        let mut total: u64 = 0;
        loop {
            let chunk = resp.chunk().await.map_err(|e| PlatformError::Transport {
                platform: self.platform,
                message: without_url(&e),
            })?;
            let Some(chunk) = chunk else { break };
            total += chunk.len() as u64;
            let mut rest: &[u8] = &chunk;
            if written < head_budget {
                let n = ((head_budget - written) as usize).min(rest.len());
                file.write_all(&rest[..n]).await?;
                written += n as u64;
                rest = &rest[n..];
            }
            tail.extend(rest);
            while tail.len() as u64 > tail_budget {
                let excess = tail.len() as u64 - tail_budget;
                tail.drain(..excess as usize);
            }
        }
        let truncated = total > written + tail.len() as u64;
        if truncated {
            file.write_all(b"\n[guard: log cut here: it exceeded [server] max_log_bytes]\n")
                .await?;
        }
        let (a, b) = tail.as_slices();
        file.write_all(a).await?;
        file.write_all(b).await?;
        file.flush().await?;
        Ok(Download {
            bytes: written + tail.len() as u64,
            truncated,
        })
    }

    async fn wait_for_quota(&self) -> Result<(), PlatformError> {
        let mut until = match self.blocked_until.lock() {
            Ok(g) => *g,
            Err(p) => *p.into_inner(),
        };
        if let Some(shared) = self.shared_block() {
            let wait = Duration::from_millis(shared.saturating_sub(epoch_ms()));
            let shared = Instant::now() + wait;
            until = Some(until.map_or(shared, |u| u.max(shared)));
        }
        if let Some(until) = until {
            let now = Instant::now();
            if until > now {
                let wait = until - now;
                if wait > MAX_WAIT {
                    return Err(PlatformError::RateLimited {
                        platform: self.platform,
                        retry_after_secs: wait.as_secs().max(1),
                    });
                }
                tokio::time::sleep(wait).await;
            }
        }
        Ok(())
    }

    /// Remembers an exhausted quota announced on any response.
    fn note_quota(&self, resp: &Response) {
        let h = resp.headers();
        let remaining = h
            .get("x-ratelimit-remaining")
            .or_else(|| h.get("ratelimit-remaining"))
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if remaining == Some(0)
            && let Some(wait) = reset_wait(resp)
        {
            self.block_for(wait);
        }
    }
}

fn epoch_ms() -> u64 {
    crate::store::now_ms()
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(crate::backoff::exponential(200, attempt, 6))
}

/// reqwest errors print the URL; a URL can carry a token in its query
/// (Jenkins notification URLs do), so it is removed.
fn without_url(e: &reqwest::Error) -> String {
    let mut e2 = format!("{e}");
    if let Some(u) = e.url() {
        e2 = e2.replace(u.as_str(), u.path());
    }
    e2
}

/// How long a rate-limited response asks to wait, if it is one.
fn rate_limit_wait(resp: &Response) -> Option<Duration> {
    let h = resp.headers();
    let exhausted = h
        .get("x-ratelimit-remaining")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() == "0");
    let limited = resp.status() == StatusCode::TOO_MANY_REQUESTS
        || (resp.status() == StatusCode::FORBIDDEN && (exhausted || h.contains_key("retry-after")));
    if !limited {
        return None;
    }
    Some(reset_wait(resp).unwrap_or(Duration::from_secs(60)))
}

/// The wait announced by `retry-after` (seconds), `x-ratelimit-reset`
/// (epoch seconds, GitHub) or `ratelimit-reset` (epoch seconds, GitLab).
fn reset_wait(resp: &Response) -> Option<Duration> {
    let h = resp.headers();
    let num = |name: &str| {
        h.get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    if let Some(s) = num("retry-after") {
        return Some(Duration::from_secs(s));
    }
    let reset = num("x-ratelimit-reset").or_else(|| num("ratelimit-reset"))?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(reset.saturating_sub(now)))
}

/// The error text of a failed response, cut to something loggable.
async fn error_message(resp: Response) -> String {
    let text = resp.text().await.unwrap_or_default();
    let msg = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| {
            v.get("message").or_else(|| v.get("error")).map(|m| {
                m.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| m.to_string())
            })
        })
        .unwrap_or(text);
    crate::intake::clip(msg.trim(), 300)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    /// A platform answering every request "rate limited for an hour",
    /// counting the requests.
    async fn limited() -> (String, Arc<AtomicUsize>) {
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let app = axum::Router::new().fallback(move || {
            let h = h.clone();
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [("retry-after", "3600")],
                    "slow down",
                )
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (url, hits)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_quota_one_replica_used_up_is_waited_out_by_the_others() {
        let (url, hits) = limited().await;
        let store = crate::store::Store::temporary().unwrap();
        let a = Client::new("github", &url, Auth::None).unwrap();
        let b = Client::new("github", &url, Auth::None).unwrap();
        a.share_quota(&store);
        b.share_quota(&store);
        async fn get(c: &Client) -> Result<Response, PlatformError> {
            c.send(Method::GET, "/repos/o/r", &|r| r).await
        }
        assert!(matches!(
            get(&a).await,
            Err(PlatformError::RateLimited { .. })
        ));
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        // The other replica does not spend a call to learn the same.
        match get(&b).await {
            Err(PlatformError::RateLimited {
                retry_after_secs, ..
            }) => assert!(retry_after_secs > 3000, "{retry_after_secs}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(hits.load(Ordering::SeqCst), 1, "b asked the platform");
        // A client that shares nothing asks (and learns it the hard way).
        let lone = Client::new("github", &url, Auth::None).unwrap();
        assert!(get(&lone).await.is_err());
        assert_eq!(hits.load(Ordering::SeqCst), 2);
    }
}
