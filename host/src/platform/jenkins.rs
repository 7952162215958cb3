//! Jenkins through its remote access API at `[jenkins] url`: `consoleText`,
//! `build`/`buildWithParameters` and `stop`, with API-token basic auth.
//! Jenkins wants a CSRF crumb on POSTs unless the request uses an API
//! token; when it answers 403 asking for one, guard fetches a crumb from
//! `/crumbIssuer/api/json` and tries once more.

use std::path::Path;

use async_trait::async_trait;
use reqwest::Method;
use serde::Deserialize;

use super::client::{Auth, Client};
use super::{Adapter, Download, PlatformError};
use crate::config::Jenkins as Settings;
use crate::model::{Job, Platform};

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

/// The job's path (`job/a/job/b`), checked to stay a job path.
fn job_path(job: &Job) -> Result<String, PlatformError> {
    let p = job.repository.trim_matches('/');
    let ok = !p.is_empty()
        && p.split('/')
            .all(|s| !s.is_empty() && s != "." && s != ".." && !s.contains(['?', '#', '\\', '%']));
    if !ok {
        return Err(PlatformError::Protocol {
            platform: "jenkins",
            message: format!("{p:?} is not a Jenkins job path"),
        });
    }
    Ok(format!("/{p}"))
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
