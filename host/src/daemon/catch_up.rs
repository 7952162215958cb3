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
//! listed it without error, and in full (see below), started. A pass
//! looks back to it less [`OVERLAP_MS`] (clocks disagree; a job's end is
//! recorded late), or `[catch_up] lookback_hours` the first time. A failed
//! listing leaves the watermark where it was, so the next pass asks for
//! the same span again; it is logged and counted, and never stops the
//! other items or the daemon.
//!
//! A pass queues at most `[catch_up] max_jobs` failed jobs: items past the
//! bound wait for the next pass. Listings are newest first, so one cut
//! short (at the bound, or at an adapter's cap on pages) has not seen the
//! older failures: the watermark stays, and where the listing stopped is
//! kept ([`Trees::CATCH_UP_REST`]) for the next pass, which lists from
//! there back to the watermark. Only once the rest is listed does the
//! watermark move, to when the pass that listed the newest ones started
//! (failures after it wait till then; while guard runs, their webhooks
//! bring them). A run or pipeline with more failed jobs than `max_jobs` gets its newest
//! `max_jobs`: a listing cannot get past it.
//!
//! [`Adapter::recent_failures`]: crate::platform::Adapter::recent_failures

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::Daemon;
use crate::config::Config;
use crate::intake::{EventKind, JobStatus, platform_name};
use crate::metrics::{self, labels};
use crate::model::Platform;
use crate::platform::{Failures, PlatformError};
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

/// Where the listing of an item was cut short, for the next pass
/// ([`Trees::CATCH_UP_REST`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rest {
    /// Where the listing stopped (ms, on the listing's order: see
    /// [`Failures::rest_until`]): the next pass lists from there back to
    /// the watermark.
    pub until: u64,
    /// When the pass that listed the newest failures started: the
    /// watermark once the rest is listed.
    pub head: u64,
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Watched items listed without error (their watermarks moved, but
    /// for those `unfinished`).
    pub listed: usize,
    /// Items whose listing was cut short: the next pass lists the rest.
    pub unfinished: usize,
    /// Failed jobs the platforms listed.
    pub found: usize,
    /// Events queued: those found less the facts already known.
    pub queued: usize,
    /// Items whose listing failed (their watermarks stay).
    pub errors: usize,
    /// Items not looked at because the pass reached `max_jobs`.
    pub deferred: usize,
}

/// What [`Daemon::catch_up_item`] did.
struct Caught {
    /// Failed jobs listed.
    found: usize,
    /// Events queued.
    queued: usize,
    /// Whether the listing was cut short (the next pass lists the rest).
    unfinished: bool,
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
                Ok(Caught {
                    found,
                    queued,
                    unfinished,
                }) => {
                    report.listed += 1;
                    report.found += found;
                    report.queued += queued;
                    if unfinished {
                        report.unfinished += 1;
                        tracing::info!(
                            platform = name,
                            watched = %item,
                            "catch-up listed {found} failed job(s), the newest, and stopped \
                             ([catch_up] max_jobs or a cap on pages); the next pass lists the rest"
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

    /// Lists and queues the failures of one item (the rest of its last
    /// listing first, if that was cut short).
    async fn catch_up_item(
        &self,
        platform: Platform,
        item: &str,
        started: u64,
        limit: usize,
    ) -> Result<Caught, CatchUpError> {
        let adapter = self.platforms.get(platform)?;
        let store = self.runtime.db();
        let key = watermark_key(platform, item);
        let rest = store.get(Trees::CATCH_UP_REST, key.as_str())?;
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
        let until = rest.map(|r| r.until);
        let Failures { jobs, rest_until } = if until.is_some_and(|u| u < since) {
            // The rest lies before the lookback: none of it would be queued.
            Failures::default()
        } else {
            adapter.recent_failures(item, since, until, limit).await?
        };
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
        // The pass that listed the newest failures: this one, or the one
        // whose rest this pass listed.
        let head = rest.map_or(started, |r| r.head);
        let unfinished = match rest_until {
            // Past what an earlier pass got to (or the first cut): the
            // rest is listed next time, the watermark stays.
            Some(until) if rest.is_none_or(|r| until < r.until) => {
                store.put(Trees::CATCH_UP_REST, key.as_str(), &Rest { until, head })?;
                true
            }
            // No further than before, with only part of `max_jobs` to
            // list with: a pass with more left gets further.
            Some(_) if limit < self.runtime.config().catch_up.max_jobs => true,
            Some(_) => {
                tracing::warn!(
                    watched = %item,
                    "catch-up cannot list past where it stopped last time (a run or \
                     pipeline with more failed jobs than [catch_up] max_jobs, or more \
                     builds than a listing reads); older failures are not queued"
                );
                self.catch_up_listed(&key, head)?;
                false
            }
            None => {
                self.catch_up_listed(&key, head)?;
                false
            }
        };
        Ok(Caught {
            found: events.len(),
            queued: ids.len(),
            unfinished,
        })
    }

    /// Everything failed until `head` (when the pass that listed the
    /// newest failures started) is listed: the watermark moves there, and
    /// no rest is owed.
    fn catch_up_listed(&self, key: &str, head: u64) -> Result<(), StoreError> {
        let store = self.runtime.db();
        // Never backwards: a pass that started earlier may end later.
        let mark = store
            .get(Trees::CATCH_UP, key)?
            .map_or(head, |m| m.max(head));
        store.put(Trees::CATCH_UP, key, &mark)?;
        store.remove(Trees::CATCH_UP_REST, key)?;
        Ok(())
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
