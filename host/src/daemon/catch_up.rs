//! Catch-up after downtime. GitHub and GitLab do not deliver again a
//! webhook nobody received, and Jenkins' notifications are fire-and-forget,
//! so a job that failed while `guard run` was down would never be
//! diagnosed. At start-up and then every `[catch_up] interval_secs`, each
//! watched repository, project or job (`[github] repositories`, `[gitlab]
//! projects`, `[jenkins] jobs`) is asked for its failed jobs since its
//! watermark ([`Adapter::recent_failures`]), and they are queued as their
//! webhooks would have been: the same events through the same
//! de-duplication by fact key, so a job already handled, or whose webhook
//! arrives after all, is one event.
//!
//! An item's watermark ([`Trees::CATCH_UP`]) is when the last pass that
//! listed it without error started. A pass looks back to it less
//! [`OVERLAP_MS`] (clocks disagree; a job's end is recorded late), or
//! `[catch_up] lookback_hours` the first time. A failed listing leaves the
//! watermark where it was, so the next pass asks for the same span again;
//! it is logged and counted, and never stops the other items or the
//! daemon. A pass queues at most `[catch_up] max_jobs` failed jobs: items
//! past the bound wait for the next pass, and an item with more failures
//! than the bound gets its newest ones (a backlog that large is better
//! looked at by people than re-run wholesale).
//!
//! [`Adapter::recent_failures`]: crate::platform::Adapter::recent_failures

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::Daemon;
use crate::config::Config;
use crate::intake::{EventKind, JobStatus, platform_name};
use crate::metrics::{self, labels};
use crate::model::Platform;
use crate::platform::PlatformError;
use crate::store::{StoreError, Trees, now_ms};

/// How far before an item's watermark a pass looks again, in ms.
pub const OVERLAP_MS: u64 = 10 * 60 * 1000;

/// The `delivery` of the events catch-up queues.
pub const DELIVERY: &str = "catch-up";

/// Why one watched item could not be caught up.
#[derive(Debug, thiserror::Error)]
pub enum CatchUpError {
    /// The platform is not configured, cannot be reached, or refused.
    #[error(transparent)]
    Platform(#[from] PlatformError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Watched items listed without error (their watermarks moved).
    pub listed: usize,
    /// Failed jobs the platforms listed.
    pub found: usize,
    /// Events queued: those found less the facts already known.
    pub queued: usize,
    /// Items whose listing failed (their watermarks stay).
    pub errors: usize,
    /// Items not looked at because the pass reached `max_jobs`.
    pub deferred: usize,
}

/// Everything catch-up watches, as (platform, item), in config order.
pub fn watched(config: &Config) -> Vec<(Platform, String)> {
    let mut out = Vec::new();
    if let Some(g) = &config.github {
        out.extend(g.repositories.iter().map(|r| (Platform::Github, r.clone())));
    }
    if let Some(g) = &config.gitlab {
        out.extend(g.projects.iter().map(|p| (Platform::Gitlab, p.clone())));
    }
    if let Some(j) = &config.jenkins {
        out.extend(j.jobs.iter().map(|name| (Platform::Jenkins, name.clone())));
    }
    out
}

/// `platform␟item`, the key of an item's watermark.
fn watermark_key(platform: Platform, item: &str) -> String {
    format!("{}\u{1f}{item}", platform_name(platform))
}

impl Daemon {
    /// When the last pass that listed `item` on `platform` without error
    /// started (ms), if one did.
    pub fn catch_up_watermark(
        &self,
        platform: Platform,
        item: &str,
    ) -> Result<Option<u64>, StoreError> {
        self.runtime
            .db()
            .get(Trees::CATCH_UP, watermark_key(platform, item).as_str())
    }

    /// One pass over everything watched; wakes the workers when it queued
    /// something. Errors are per item: logged, counted and reported.
    pub async fn catch_up(&self) -> PassReport {
        let config = self.runtime.config().clone();
        let started = now_ms();
        let mut budget = config.catch_up.max_jobs;
        let mut report = PassReport::default();
        for (platform, item) in watched(&config) {
            if budget == 0 {
                report.deferred += 1;
                continue;
            }
            let name = platform_name(platform);
            match self.catch_up_item(platform, &item, started, budget).await {
                Ok((found, queued)) => {
                    report.listed += 1;
                    report.found += found;
                    report.queued += queued;
                    if found >= budget {
                        tracing::warn!(
                            platform = name,
                            watched = %item,
                            "catch-up took the newest {found} failed job(s), all [catch_up] \
                             max_jobs left to this pass; any older ones are not queued"
                        );
                    }
                    // Found rather than queued: the bound is on the work
                    // of a pass as well as on what it adds to the queue.
                    budget = budget.saturating_sub(found);
                    if queued > 0 {
                        metrics::get()
                            .catch_up_queued
                            .get_or_create(&labels(&[("platform", name)]))
                            .inc_by(queued as u64);
                        tracing::info!(
                            platform = name,
                            watched = %item,
                            found,
                            queued,
                            "catch-up queued failed jobs no webhook brought"
                        );
                    }
                }
                Err(e) => {
                    report.errors += 1;
                    metrics::get()
                        .catch_up_errors
                        .get_or_create(&labels(&[("platform", name)]))
                        .inc();
                    tracing::warn!(platform = name, watched = %item, "catch-up: {e}");
                }
            }
        }
        if report.deferred > 0 {
            tracing::warn!(
                deferred = report.deferred,
                "catch-up reached [catch_up] max_jobs; the other items wait for the next pass"
            );
        }
        if report.queued > 0 {
            self.wake.notify_one();
        }
        report
    }

    /// Lists and queues the failures of one item; returns (found, queued).
    async fn catch_up_item(
        &self,
        platform: Platform,
        item: &str,
        started: u64,
        limit: usize,
    ) -> Result<(usize, usize), CatchUpError> {
        let adapter = self.platforms.get(platform)?;
        let store = self.runtime.db();
        let key = watermark_key(platform, item);
        // Never further back than the lookback, however old the mark (a
        // long outage, an item failing for days): older facts may have been
        // pruned, and their jobs would be diagnosed and re-run again.
        let floor = started.saturating_sub(
            self.runtime
                .config()
                .catch_up
                .lookback_hours
                .saturating_mul(3_600_000),
        );
        let since = match store.get(Trees::CATCH_UP, key.as_str())? {
            Some(mark) => {
                let since = mark.saturating_sub(OVERLAP_MS);
                if since < floor {
                    tracing::warn!(
                        watched = %item,
                        "catch-up looks back [catch_up] lookback_hours only; failures before that are not queued"
                    );
                }
                since.max(floor)
            }
            None => floor,
        };
        let jobs = adapter.recent_failures(item, since, limit).await?;
        let events: Vec<EventKind> = jobs
            .into_iter()
            .take(limit)
            .map(|job| EventKind::JobCompleted {
                job,
                status: JobStatus::Failed,
            })
            .collect();
        let ids = self.queue.insert_events(&events, DELIVERY)?;
        if !ids.is_empty() {
            // On disk before the watermark moves past them.
            store.flush_async().await?;
        }
        // Never backwards: a pass that started earlier may end later.
        let mark = store
            .get(Trees::CATCH_UP, key.as_str())?
            .map_or(started, |m| m.max(started));
        store.put(Trees::CATCH_UP, key.as_str(), &mark)?;
        Ok((events.len(), ids.len()))
    }

    /// Runs a pass at once, then one every `[catch_up] interval_secs`,
    /// until `stop` turns true; returns at once when catch-up is disabled
    /// or nothing is watched. A pass in progress at shutdown is dropped:
    /// what it queued stays queued, and the item it was listing keeps its
    /// watermark.
    pub(crate) async fn run_catch_up(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let config = self.runtime.config().clone();
        let interval = config.catch_up.interval_secs;
        if interval == 0 || watched(&config).is_empty() {
            return;
        }
        loop {
            if *stop.borrow() {
                return;
            }
            tokio::select! {
                report = self.catch_up() => tracing::debug!(?report, "catch-up pass"),
                _ = stop.changed() => return,
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(interval)) => {}
                _ = stop.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{GitHub, GitHubAnnotate, Jenkins};

    #[test]
    fn watched_items_in_config_order_with_their_keys() {
        let config = Config {
            github: Some(GitHub {
                api_url: "https://api.github.com".into(),
                token: None,
                webhook_secret: None,
                annotate: GitHubAnnotate::CommitComment,
                repositories: vec!["o/a".into(), "o/b".into()],
                app: None,
            }),
            jenkins: Some(Jenkins {
                url: "https://j".into(),
                user: None,
                token: None,
                webhook_secret: None,
                jobs: vec!["f/app".into()],
            }),
            ..Config::default()
        };
        assert_eq!(
            watched(&config),
            [
                (Platform::Github, "o/a".to_string()),
                (Platform::Github, "o/b".to_string()),
                (Platform::Jenkins, "f/app".to_string()),
            ]
        );
        assert_eq!(
            watermark_key(Platform::Jenkins, "f/app"),
            "jenkins\u{1f}f/app"
        );
        assert!(watched(&Config::default()).is_empty());
    }
}
