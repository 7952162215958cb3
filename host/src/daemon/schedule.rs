//! Scheduled re-runs: a re-run waits out its backoff in sled, so a restart
//! neither loses nor repeats it.
//!
//! Tree `schedule` ([`Trees::SCHEDULE`]): [`ScheduleKey`] (fire time, then
//! an id) → [`Scheduled`]. The scheduler claims a due entry by marking it
//! `firing` (flushed) before calling the API, and removes it after; the
//! claim is atomic, so of several replicas sharing a PostgreSQL store one
//! fires each entry. An entry left `firing` was interrupted mid-call (at
//! start-up with sled; once its claim ran out with replicas), and is
//! dropped with an audit record rather than fired again — a duplicate
//! re-run costs CI minutes, a missed one only a retry the next failure will
//! ask for again.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::model::Job;
use crate::platform::Platforms;
use crate::store::{AuditRecord, ScheduleKey, Store, StoreError, Tree, Trees, now_ms};

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
    /// Until when (ms) the process firing it may still be calling the API.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub firing_until_ms: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// How long an API call of a re-run (with its own retries) may take before
/// an entry still `firing` counts as interrupted.
const FIRING_MS: u64 = 10 * 60 * 1000;

/// The schedule tree.
#[derive(Debug, Clone)]
pub struct Schedule {
    store: Store,
    tree: Tree<ScheduleKey, Scheduled>,
    notify: Arc<Notify>,
}

impl Schedule {
    /// Opens the tree.
    pub fn open(store: &Store) -> Result<Schedule, StoreError> {
        Ok(Schedule {
            store: store.clone(),
            tree: store.tree(Trees::SCHEDULE)?,
            notify: Arc::new(Notify::new()),
        })
    }

    /// The tree (for transactions with the journal).
    pub fn tree(&self) -> &Tree<ScheduleKey, Scheduled> {
        &self.tree
    }

    /// A new key for a re-run due at `at_ms` (unique, so two re-runs due
    /// at the same millisecond are both kept).
    pub fn key(&self, at_ms: u64) -> Result<ScheduleKey, StoreError> {
        Ok(ScheduleKey {
            at_ms,
            id: self.store.generate_id()?,
        })
    }

    /// Wakes the scheduler (a new entry may be due sooner).
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    /// Pending re-runs: (fire time ms, entry), soonest first.
    pub fn pending(&self, limit: usize) -> Result<Vec<(u64, Scheduled)>, StoreError> {
        Ok(self
            .tree
            .head(limit)?
            .into_iter()
            .map(|(k, s)| (k.at_ms, s))
            .collect())
    }

    /// Drops entries left `firing` by a crash (see the module docs): all
    /// of them when this process alone uses the store, else those whose
    /// firing replica's time ran out.
    pub fn recover(&self, shared: bool) -> Result<usize, StoreError> {
        let now = now_ms();
        let mut n = 0;
        for item in self.tree.iter() {
            let (k, s) = item?;
            if s.firing && (!shared || s.firing_until_ms <= now) && self.tree.take(&k)?.is_some() {
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
        // What a firing wrote after its API call (the entry's removal, a
        // retry, the audit) reaches the disk with the next firing's flush
        // or once the due ones are done: one flush per re-run, not two.
        // A crash in between finds the entry still `firing`, which is
        // dropped, not repeated (see the module docs).
        let mut unflushed = false;
        loop {
            let now = now_ms();
            // Due and not being fired, or left firing by a process that
            // died mid-call: claimed atomically, so one process has it.
            let claimed = self.tree.claim(1, |k, s| {
                if k.at_ms > now || (s.firing && s.firing_until_ms > now) {
                    return false;
                }
                if !s.firing {
                    s.firing_until_ms = now + FIRING_MS;
                }
                s.firing = true;
                true
            })?;
            let Some((k, mut s)) = claimed.into_iter().next() else {
                if unflushed {
                    self.store.flush_async().await?;
                }
                return self.next_due();
            };
            if s.firing_until_ms <= now {
                // Its firing process died during the API call.
                if self.tree.take(&k)?.is_some() {
                    audit(
                        &self.store,
                        &s,
                        "not repeated: guard stopped during the API call, it may have been done",
                    );
                }
                continue;
            }
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
                    s.firing_until_ms = 0;
                    let delay = crate::backoff::exponential(30_000, s.tries, 5);
                    self.tree.insert(&self.key(now_ms() + delay)?, &s)?;
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
            unflushed = true;
        }
    }
}

impl Schedule {
    /// When the scheduler should look again: the soonest entry nobody is
    /// firing, or in a second when another process is firing the soonest.
    fn next_due(&self) -> Result<Option<u64>, StoreError> {
        // The soonest entries only: a schedule of thousands is not read
        // after every firing.
        let now = now_ms();
        let head = self.tree.head(64)?;
        for (k, s) in &head {
            if !s.firing {
                return Ok(Some(k.at_ms.max(now)));
            }
            if s.firing_until_ms > now {
                return Ok(Some(now + 1_000));
            }
        }
        Ok((!head.is_empty()).then_some(now + 1_000))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn scheduled(job_id: &str, firing: bool) -> Scheduled {
        Scheduled {
            job: Job {
                job_id: job_id.into(),
                ..Job::default()
            },
            all_failed: false,
            debug_logging: false,
            event_id: 1,
            plugin: "p".into(),
            tries: 0,
            firing,
            firing_until_ms: 0,
        }
    }

    #[test]
    fn pending_is_soonest_first_and_recovery_drops_interrupted_calls() {
        let store = Store::temporary().unwrap();
        let schedule = Schedule::open(&store).unwrap();
        let later = schedule.key(2_000).unwrap();
        let sooner = schedule.key(1_000).unwrap();
        assert!(later.id < sooner.id, "ids are unique and increasing");
        schedule
            .tree()
            .insert(&later, &scheduled("later", false))
            .unwrap();
        schedule
            .tree()
            .insert(&sooner, &scheduled("sooner", true))
            .unwrap();
        let due: Vec<(u64, String)> = schedule
            .pending(10)
            .unwrap()
            .into_iter()
            .map(|(at, s)| (at, s.job.job_id))
            .collect();
        assert_eq!(
            due,
            [(1_000, "sooner".to_string()), (2_000, "later".to_string())]
        );
        // The sooner one was mid-call when guard stopped: dropped, audited.
        assert_eq!(schedule.recover(false).unwrap(), 1);
        assert_eq!(
            schedule.pending(10).unwrap(),
            [(2_000, scheduled("later", false))]
        );
        let audit = store.audit_records(10).unwrap();
        assert!(audit[0].outcome.starts_with("not repeated"), "{audit:?}");
    }
}
