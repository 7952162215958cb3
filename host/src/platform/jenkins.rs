//! Jenkins through its remote access API at `[jenkins] url`: `consoleText`,
//! `build`/`buildWithParameters` and `stop`, with API-token basic auth.
//! Jenkins wants a CSRF crumb on POSTs unless the request uses an API
//! token; when it answers 403 asking for one, guard fetches a crumb from
//! `/crumbIssuer/api/json` and tries once more.
//!
//! A job's URL path is `job/NAME` per folder level, each item name
//! percent-encoded once as Jenkins' `Util.rawEncode` does (`asgard web` is
//! `job/asgard%20web`). A multibranch branch `feature/x` is the item
//! `feature%2Fx` (branch-api's name encoding), hence `job/feature%252Fx`.
//! [`JobPath`] decodes such a path once into item names, checks them and
//! encodes them again, so what guard sends is exactly what Jenkins' own
//! links say, whatever a webhook sent.
//!
//! Catch-up (`jenkins/catch_up.rs`) reads a job's builds and builds each
//! failed one as the intake builds it from a notification.

mod catch_up;

use std::path::Path;

use async_trait::async_trait;
use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};
use reqwest::Method;
use serde::Deserialize;

use super::client::{Auth, Client};
use super::{Adapter, Download, Failures, PlatformError};
use crate::config::Jenkins as Settings;
use crate::intake::clip;
use crate::model::{Job, Platform};

/// What Jenkins' `Util.rawEncode` escapes in a path segment: controls,
/// space, the double quote and backtick, `#%<>[]^{|}~`, the backslash and
/// `/:;?` (non-ASCII is always escaped, as UTF-8).
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b':')
    .add(b';')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}')
    .add(b'~');

/// The longest job path accepted, in bytes as sent.
const MAX_PATH: usize = 2048;

/// Why a text is not a Jenkins job path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path:?} is not a Jenkins job path: {why}")]
pub struct BadJobPath {
    path: String,
    why: &'static str,
}

impl BadJobPath {
    fn new(path: &str, why: &'static str) -> BadJobPath {
        BadJobPath {
            path: clip(path, 200),
            why,
        }
    }
}

/// A Jenkins job's place: its item names from the top folder down, each
/// as Jenkins names the item (a multibranch branch `feature/x` is the item
/// `feature%2Fx`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobPath(Vec<String>);

impl JobPath {
    /// Parses a job's URL path as `Item.getUrl()` spells it
    /// (`job/folder/job/asgard%20web/`; surrounding slashes optional),
    /// decoding each name once. Every name must be UTF-8 once decoded,
    /// not empty, `.` or `..`, and free of control characters, `/`, `\`,
    /// `?` and `#` (none of which Jenkins allows in an item name).
    pub fn parse(url: &str) -> Result<JobPath, BadJobPath> {
        if url.len() > MAX_PATH {
            return Err(BadJobPath::new(url, "it is over 2048 bytes long"));
        }
        let path = url.trim_matches('/');
        if path.is_empty() {
            return Err(BadJobPath::new(url, "it is empty"));
        }
        let mut names = Vec::new();
        let mut segments = path.split('/');
        while let Some(kind) = segments.next() {
            if kind != "job" {
                return Err(BadJobPath::new(url, "every level must be job/NAME"));
            }
            let Some(raw) = segments.next() else {
                return Err(BadJobPath::new(url, "it ends without a job name"));
            };
            let name = percent_decode_str(raw)
                .decode_utf8()
                .map_err(|_| BadJobPath::new(url, "a name is not UTF-8 once decoded"))?;
            if name.is_empty() || name == "." || name == ".." {
                return Err(BadJobPath::new(url, "a name is empty, `.` or `..`"));
            }
            if name
                .chars()
                .any(|c| c.is_control() || matches!(c, '/' | '\\' | '?' | '#'))
            {
                return Err(BadJobPath::new(
                    url,
                    "a name holds a control character, `/`, `\\`, `?` or `#`",
                ));
            }
            names.push(name.into_owned());
        }
        Ok(JobPath(names))
    }

    /// A job as `[jenkins] jobs` names it: its URL path when it starts
    /// with `job/` (parsed as [`JobPath::parse`] does), else its full name
    /// (read as [`JobPath::from_full_name`] does).
    pub fn from_config(name: &str) -> Result<JobPath, BadJobPath> {
        let trimmed = name.trim_matches('/');
        if trimmed == "job" || trimmed.starts_with("job/") {
            return JobPath::parse(name);
        }
        JobPath::from_full_name(name)
    }

    /// A job by its full name, as Jenkins' `fullName` says it: `/` between
    /// levels, each level an item name as Jenkins names it (`folder/asgard
    /// web`; a multibranch branch `feature/x` is the item `feature%2Fx`:
    /// `p/feature%2Fx`). Item names are checked as [`JobPath::parse`]
    /// checks them.
    pub fn from_full_name(name: &str) -> Result<JobPath, BadJobPath> {
        let trimmed = name.trim_matches('/');
        if trimmed.is_empty() {
            return Err(BadJobPath::new(name, "it is empty"));
        }
        // Encoded once, then parsed: one place checks item names.
        let url = trimmed
            .split('/')
            .map(|item| format!("job/{}", utf8_percent_encode(item, SEGMENT)))
            .collect::<Vec<_>>()
            .join("/");
        JobPath::parse(&url).map_err(|e| BadJobPath::new(name, e.why))
    }

    /// The job's own item name (the last level).
    pub fn name(&self) -> &str {
        self.0.last().map_or("", String::as_str)
    }

    /// The path as Jenkins' URLs spell it, without surrounding slashes:
    /// `job/folder/job/asgard%20web`, `job/p/job/feature%252Fx`.
    pub fn url_path(&self) -> String {
        self.0
            .iter()
            .map(|name| format!("job/{}", utf8_percent_encode(name, SEGMENT)))
            .collect::<Vec<_>>()
            .join("/")
    }

    /// The job's full name for people: `folder/asgard web`, `p/feature/x`.
    /// Each item name is decoded once more, as branch-api encodes branch
    /// names; Jenkins forbids `%` in the names people give, so only such
    /// encoded names change.
    pub fn display(&self) -> String {
        self.0
            .iter()
            .map(String::as_str)
            .map(display_name)
            .collect::<Vec<_>>()
            .join("/")
    }
}

/// An item name for people (`feature%2Fx` is the branch `feature/x`).
pub fn display_name(name: &str) -> String {
    percent_decode_str(name).decode_utf8_lossy().into_owned()
}

/// The Jenkins adapter.
#[derive(Debug)]
pub struct Jenkins {
    client: Client,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Crumb {
    crumb: String,
    crumb_request_field: String,
}

/// The job's URL path (`/job/a/job/b%20c`), checked to stay a job path
/// and encoded once from its item names. The intake keeps the path in
/// `api_id`; events queued before it did have it in `repository`.
fn job_path(job: &Job) -> Result<String, PlatformError> {
    let raw = job.api_id.as_deref().unwrap_or(&job.repository);
    let path = JobPath::parse(raw).map_err(|e| PlatformError::Protocol {
        platform: "jenkins",
        message: e.to_string(),
    })?;
    Ok(format!("/{}", path.url_path()))
}

fn number(job: &Job) -> Result<u64, PlatformError> {
    job.run_id.parse().map_err(|_| PlatformError::Protocol {
        platform: "jenkins",
        message: format!("build number {:?} is not a number", job.run_id),
    })
}

impl Jenkins {
    /// An adapter for `[jenkins]`.
    pub fn new(settings: &Settings) -> Result<Jenkins, PlatformError> {
        let auth = match (&settings.user, &settings.token) {
            (Some(u), Some(t)) if !t.is_empty() => Auth::Basic(u.clone(), t.clone()),
            _ => Auth::None,
        };
        Ok(Jenkins {
            client: Client::new("jenkins", &settings.url, auth)?,
        })
    }

    /// POSTs `path` (with `form`, if any), adding a crumb when Jenkins asks for one.
    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Result<(), PlatformError> {
        let with_form = |rb: reqwest::RequestBuilder| {
            if form.is_empty() { rb } else { rb.form(form) }
        };
        match self.client.send(Method::POST, path, &with_form).await {
            Err(PlatformError::Status {
                status: 403,
                message,
                ..
            }) if message.to_ascii_lowercase().contains("crumb") => {
                let c: Crumb = self
                    .client
                    .json(Method::GET, "/crumbIssuer/api/json", &|rb| rb)
                    .await?;
                self.client
                    .send(Method::POST, path, &|rb| {
                        with_form(rb).header(c.crumb_request_field.as_str(), c.crumb.as_str())
                    })
                    .await?;
                Ok(())
            }
            Err(e) => Err(e),
            Ok(_) => Ok(()),
        }
    }
}

#[async_trait]
impl Adapter for Jenkins {
    fn share_quota(&self, store: &crate::store::Store) {
        self.client.share_quota(store);
    }

    fn platform(&self) -> Platform {
        Platform::Jenkins
    }

    async fn fetch_log(
        &self,
        job: &Job,
        dest: &Path,
        max_bytes: u64,
    ) -> Result<Download, PlatformError> {
        let path = format!("{}/{}/consoleText", job_path(job)?, number(job)?);
        self.client.download(&path, dest, max_bytes).await
    }

    async fn failed_jobs(&self, _run: &Job) -> Result<Vec<Job>, PlatformError> {
        Ok(Vec::new())
    }

    async fn recent_failures(
        &self,
        watched: &str,
        since_ms: u64,
        until_ms: Option<u64>,
        limit: usize,
    ) -> Result<Failures, PlatformError> {
        catch_up::recent_failures(&self.client, watched, since_ms, until_ms, limit).await
    }

    async fn rerun_job(&self, job: &Job, _debug_logging: bool) -> Result<(), PlatformError> {
        // A parameterised job refuses `build` (and the reverse); try the
        // plain one first, the parameterised one (with its defaults) next.
        let base = job_path(job)?;
        match self.post(&format!("{base}/build"), &[]).await {
            Err(PlatformError::Status {
                status: 400 | 405 | 500,
                ..
            }) => self.post(&format!("{base}/buildWithParameters"), &[]).await,
            other => other,
        }
    }

    async fn rerun_failed_jobs(&self, job: &Job, debug_logging: bool) -> Result<(), PlatformError> {
        self.rerun_job(job, debug_logging).await
    }

    async fn clear_caches(&self, _job: &Job, _prefix: &str) -> Result<u32, PlatformError> {
        Err(PlatformError::Unsupported(
            "Jenkins has no CI cache store guard can clear".into(),
        ))
    }

    async fn cancel(&self, job: &Job) -> Result<(), PlatformError> {
        self.post(&format!("{}/{}/stop", job_path(job)?, number(job)?), &[])
            .await
    }

    async fn annotate(&self, job: &Job, title: &str, body: &str) -> Result<(), PlatformError> {
        let path = format!("{}/{}/submitDescription", job_path(job)?, number(job)?);
        let text = format!("guard: {title}\n\n{body}");
        self.post(&path, &[("description", text.as_str())]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(api_id: Option<&str>, repository: &str) -> Job {
        Job {
            platform: Platform::Jenkins,
            repository: repository.into(),
            run_id: "18".into(),
            job_id: "18".into(),
            job_name: "x".into(),
            attempt: 1,
            api_id: api_id.map(Into::into),
            ..Job::default()
        }
    }

    fn path(api_id: &str) -> Result<String, PlatformError> {
        job_path(&job(Some(api_id), "shown name"))
    }

    #[test]
    fn job_paths_are_encoded_once_from_their_item_names() {
        for (sent, url) in [
            ("job/asgard/", "/job/asgard"),
            ("job/asgard%20web/", "/job/asgard%20web"),
            // Unencoded or lower-case hex from a webhook: the same URL.
            ("job/asgard web", "/job/asgard%20web"),
            ("job/d%c3%a9ploiement", "/job/d%C3%A9ploiement"),
            ("job/d%C3%A9ploiement/", "/job/d%C3%A9ploiement"),
            ("job/déploiement", "/job/d%C3%A9ploiement"),
            // A multibranch branch `feature/x` is the item `feature%2Fx`.
            ("job/p/job/feature%252Fx/", "/job/p/job/feature%252Fx"),
            ("job/f/job/a(b)+c,d=e@f", "/job/f/job/a(b)+c,d=e@f"),
            ("job/a%3Ab%3Bc", "/job/a%3Ab%3Bc"),
        ] {
            assert_eq!(path(sent).unwrap(), url, "{sent}");
        }
    }

    #[test]
    fn events_queued_before_api_id_use_the_repository() {
        assert_eq!(job_path(&job(None, "job/app")).unwrap(), "/job/app");
        assert!(job_path(&job(None, "app")).is_err());
    }

    #[test]
    fn names_that_are_not_job_names_are_refused() {
        for bad in [
            "",
            "/",
            "job",
            "job/",
            "job//x",
            "job/..",
            "job/%2E%2E",
            "job/.",
            "job/a/job/..%2F..",
            "job/a%2Fb",
            "job/a%5Cb",
            "job/a%3Fb",
            "job/a%23b",
            "job/a%0Ab",
            "job/a%00",
            "job/%FF",
            "view/all/job/a",
            "job/a/b",
            "job/a/ws",
            "http://evil/job/a",
            "../job/a",
        ] {
            assert!(
                matches!(path(bad), Err(PlatformError::Protocol { .. })),
                "{bad:?} was accepted"
            );
        }
        assert!(path(&format!("job/{}", "a".repeat(3000))).is_err());
    }

    #[test]
    fn configured_jobs_by_full_name_or_url_path() {
        for (configured, url) in [
            ("asgard", "job/asgard"),
            ("/folder/asgard web/", "job/folder/job/asgard%20web"),
            ("p/feature%2Fx", "job/p/job/feature%252Fx"),
            ("ops/déploiement", "job/ops/job/d%C3%A9ploiement"),
            ("job/p/job/feature%252Fx/", "job/p/job/feature%252Fx"),
        ] {
            assert_eq!(
                JobPath::from_config(configured).unwrap().url_path(),
                url,
                "{configured}"
            );
        }
        assert_eq!(JobPath::from_config("f/app").unwrap().name(), "app");
        for bad in [
            "", "/", "a//b", "a/..", ".", "a/b?c", "a/b#c", "job", "job/a/b",
        ] {
            assert!(JobPath::from_config(bad).is_err(), "{bad:?} was accepted");
        }
        // Jenkins' `fullName` is always a full name: a folder may be `job`.
        assert_eq!(
            JobPath::from_full_name("job/x").unwrap().url_path(),
            "job/job/job/x"
        );
        assert_eq!(
            JobPath::from_full_name("p/feature%2Fx").unwrap().url_path(),
            "job/p/job/feature%252Fx"
        );
        assert!(JobPath::from_full_name("a/../b").is_err());
    }

    #[test]
    fn display_names_decode_branch_names() {
        let p = JobPath::parse("job/p/job/feature%252Fx/").unwrap();
        assert_eq!(p.display(), "p/feature/x");
        let p = JobPath::parse("job/folder/job/d%C3%A9ploiement%20web").unwrap();
        assert_eq!(p.display(), "folder/déploiement web");
        assert_eq!(display_name("feature%2Fx"), "feature/x");
    }
}
