//! Scheduled re-runs: a re-run waits out its backoff in sled, so a restart
//! neither loses nor repeats it.
//!
//! Tree `schedule`: key = fire time (u64 BE ms) ++ id (u64 BE) →
//! [`Scheduled`]. The scheduler marks an entry `firing` (flushed) before
//! calling the API and removes it after; an entry found `firing` at
//! start-up was interrupted mid-call, and is dropped with an audit record
//! rather than fired again — a duplicate re-run costs CI minutes, a missed
//! one only a retry the next failure will ask for again.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::model::Job;
use crate::platform::Platforms;
use crate::store::{AuditRecord, Store, StoreError, now_ms};

/// A re-run waiting for its time.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Scheduled {
    /// The job.
    pub job: Job,
    /// Re-run every failed job of the run rather than this job.
    pub all_failed: bool,
    /// Ask for debug logs.
    pub debug_logging: bool,
    /// Event that asked for it.
    pub event_id: u64,
    /// Healer plugin that asked.
    pub plugin: String,
    /// Attempts at calling the API that failed transiently.
    pub tries: u32,
    /// Set just before the API call.
    pub firing: bool,
}

fn key(at_ms: u64, id: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&at_ms.to_be_bytes());
    k[8..].copy_from_slice(&id.to_be_bytes());
    k
}

fn decode(v: &[u8]) -> Result<Scheduled, StoreError> {
    serde_json::from_slice(v).map_err(|source| StoreError::Corrupt {
        tree: "schedule",
        source,
    })
}

/// The schedule tree.
#[derive(Debug, Clone)]
pub struct Schedule {
    store: Store,
    tree: sled::Tree,
    notify: Arc<Notify>,
}

impl Schedule {
    /// Opens the tree.
    pub fn open(store: &Store) -> Result<Schedule, StoreError> {
        Ok(Schedule {
            store: store.clone(),
            tree: store.tree("schedule")?,
            notify: Arc::new(Notify::new()),
        })
    }

    /// The raw tree (for transactions with the journal).
    pub fn tree(&self) -> &sled::Tree {
        &self.tree
    }

    /// The key and value for a re-run at `at_ms`.
    pub fn entry(&self, at_ms: u64, s: &Scheduled) -> Result<([u8; 16], Vec<u8>), StoreError> {
        let id = self.store.generate_id()?;
        let v = serde_json::to_vec(s).map_err(|source| StoreError::Corrupt {
            tree: "schedule",
            source,
        })?;
        Ok((key(at_ms, id), v))
    }

    /// Wakes the scheduler (a new entry may be due sooner).
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    /// Pending re-runs: (fire time ms, entry), soonest first.
    pub fn pending(&self, limit: usize) -> Result<Vec<(u64, Scheduled)>, StoreError> {
        let mut out = Vec::new();
        for item in self.tree.iter().take(limit) {
            let (k, v) = item?;
            let at = k
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            out.push((at, decode(&v)?));
        }
        Ok(out)
    }

    /// Drops entries left `firing` by a crash (see the module docs).
    pub fn recover(&self) -> Result<usize, StoreError> {
        let mut n = 0;
        for item in self.tree.iter() {
            let (k, v) = item?;
            let s = decode(&v)?;
            if s.firing {
                self.tree.remove(k)?;
                audit(
                    &self.store,
                    &s,
                    "not repeated: guard stopped during the API call, it may have been done",
                );
                n += 1;
            }
        }
        Ok(n)
    }

    /// Fires due re-runs until `stop` turns true.
    pub async fn run(self, platforms: Platforms, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            let next = match self.fire_due(&platforms).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!("scheduler: {e}");
                    Some(now_ms() + 5_000)
                }
            };
            let wait = next
                .map(|at| at.saturating_sub(now_ms()).clamp(10, 60_000))
                .unwrap_or(60_000);
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
                _ = self.notify.notified() => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// Fires every due entry; returns the fire time of the next one.
    async fn fire_due(&self, platforms: &Platforms) -> Result<Option<u64>, StoreError> {
        loop {
            let Some(item) = self.tree.first()? else {
                return Ok(None);
            };
            let (k, v) = item;
            let at = k
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            if at > now_ms() {
                return Ok(Some(at));
            }
            let mut s = decode(&v)?;
            s.firing = true;
            self.tree.insert(
                &k,
                serde_json::to_vec(&s).map_err(|source| StoreError::Corrupt {
                    tree: "schedule",
                    source,
                })?,
            )?;
            self.store.flush_async().await?;
            let result = match platforms.get(s.job.platform) {
                Ok(adapter) if s.all_failed => {
                    adapter.rerun_failed_jobs(&s.job, s.debug_logging).await
                }
                Ok(adapter) => adapter.rerun_job(&s.job, s.debug_logging).await,
                Err(e) => Err(e),
            };
            self.tree.remove(&k)?;
            match result {
                Ok(()) => {
                    crate::metrics::get()
                        .reruns
                        .get_or_create(&crate::metrics::labels(&[("result", "done")]))
                        .inc();
                    audit(&self.store, &s, "done");
                }
                Err(e) if e.is_transient() && s.tries < 5 => {
                    s.tries += 1;
                    s.firing = false;
                    let delay = 30_000u64 << s.tries.min(5);
                    let (nk, nv) = self.entry(now_ms() + delay, &s)?;
                    self.tree.insert(nk, nv)?;
                    audit(
                        &self.store,
                        &s,
                        &format!("retrying in {} s: {e}", delay / 1000),
                    );
                }
                Err(e) => {
                    crate::metrics::get()
                        .reruns
                        .get_or_create(&crate::metrics::labels(&[("result", "failed")]))
                        .inc();
                    audit(&self.store, &s, &format!("failed: {e}"));
                }
            }
            self.store.flush_async().await?;
        }
    }
}

fn audit(store: &Store, s: &Scheduled, outcome: &str) {
    let action = if s.all_failed {
        "ci.rerun-failed-jobs"
    } else {
        "ci.rerun-job"
    };
    tracing::info!(action, repository = %s.job.repository, job = %s.job.job_id, outcome, "scheduled re-run");
    let r = AuditRecord {
        at_ms: now_ms(),
        plugin: s.plugin.clone(),
        action: action.into(),
        detail: format!(
            "{:?} {} run {} job {} (scheduled, debug-logging={})",
            s.job.platform, s.job.repository, s.job.run_id, s.job.job_id, s.debug_logging
        ),
        outcome: outcome.into(),
    };
    if let Err(e) = store.record_audit(&r) {
        tracing::error!("cannot record audit: {e}");
    }
}
