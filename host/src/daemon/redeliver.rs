//! Redelivery of missed webhooks, for guard as a GitHub App: at start-up
//! and every `[catch_up] interval_secs` (beside [`super::catch_up`], which
//! finds failed jobs by listing runs), the App's failed webhook deliveries
//! since the last look are listed and those guard never received are sent
//! again by GitHub ([`crate::platform::Adapter::redeliver_missed`]). They
//! arrive at `/webhooks/github` like any delivery, so de-duplication by
//! delivery id and fact key keeps every job one event.
//!
//! The last look's start is kept as a watermark in [`Trees::CATCH_UP`]
//! (key `github␟app-deliveries`), moved only after a pass without error;
//! a pass looks back [`super::catch_up::OVERLAP_MS`] before it, and
//! `[catch_up] lookback_hours` the first time. With several replicas each
//! may ask for the same delivery: GitHub then sends it twice, and the
//! second is a duplicate.

use std::time::Duration;

use tokio::sync::watch;

use super::Daemon;
use super::catch_up::OVERLAP_MS;
use crate::metrics::{self, labels};
use crate::model::Platform;
use crate::platform::{PlatformError, Redelivered};
use crate::store::{Trees, now_ms};

/// The watermark's key.
const WATERMARK: &str = "github\u{1f}app-deliveries";

impl Daemon {
    /// One pass; `Ok(None)` when guard is not a GitHub App.
    pub async fn redeliver_missed(&self) -> Result<Option<Redelivered>, PlatformError> {
        let config = self.runtime.config();
        if config
            .github
            .as_ref()
            .and_then(|g| g.app.as_ref())
            .is_none()
        {
            return Ok(None);
        }
        let adapter = self.platforms.get(Platform::Github)?;
        let db = self.runtime.db();
        let started = now_ms();
        let lookback = config.catch_up.lookback_hours.saturating_mul(3_600_000);
        let since = match db.get(Trees::CATCH_UP, WATERMARK) {
            Ok(Some(mark)) => mark
                .saturating_sub(OVERLAP_MS)
                .max(started.saturating_sub(lookback)),
            Ok(None) => started.saturating_sub(lookback),
            Err(e) => {
                return Err(PlatformError::NotConfigured(format!(
                    "guard's database: {e}"
                )));
            }
        };
        let queue = self.queue.clone();
        let seen = move |guid: &str| {
            queue
                .seen(&crate::intake::github::delivery_key(guid))
                .unwrap_or(false)
        };
        let done = adapter
            .redeliver_missed(since, &seen, config.catch_up.max_jobs)
            .await?;
        if let Err(e) = db.put(Trees::CATCH_UP, WATERMARK, &started) {
            tracing::warn!("recording the redelivery watermark: {e}");
        }
        if !done.requested.is_empty() {
            metrics::get()
                .catch_up_queued
                .get_or_create(&labels(&[("platform", "github-app")]))
                .inc_by(done.requested.len() as u64);
            tracing::info!(
                listed = done.listed,
                redelivered = done.requested.len(),
                "asked GitHub to redeliver webhooks guard missed"
            );
        }
        Ok(Some(done))
    }

    /// Passes until `stop`; errors are logged and the next pass tries again.
    pub(super) async fn run_redelivery(&self, mut stop: watch::Receiver<bool>) {
        let every = self.runtime.config().catch_up.interval_secs;
        if every == 0 {
            return;
        }
        loop {
            match self.redeliver_missed().await {
                Ok(None) => return,
                Ok(Some(_)) => {}
                Err(e) => tracing::warn!("redelivering missed GitHub App webhooks: {e}"),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(every)) => {}
                _ = stop.changed() => return,
            }
        }
    }
}
