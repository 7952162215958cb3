//! The daemon's [`CiBackend`]: granted `ci.*` calls reach the platform's
//! API, once.
//!
//! Every action of a heal is journaled under (event id, sequence number)
//! in the `journal` tree ([`Trees::JOURNAL`]). When an event is processed again after a crash,
//! the healer makes the same calls in the same order and the journal
//! answers the ones already done instead of the API. An action journaled
//! as `started` but never `done` was interrupted mid-call: it is not
//! repeated (see [`super::schedule`] for why at-most-once is the safe
//! side). Re-runs are not called at all here: they go into the schedule,
//! in the same transaction as their journal entry, with the backoff delay.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use async_trait::async_trait;

use super::schedule::{Schedule, Scheduled};
use crate::caps::ci::{CiBackend, CiRequest, Rerun};
use crate::model::Job;
use crate::platform::{PlatformError, Platforms};
use crate::runtime::bindings::types::Error;
use crate::store::{JournalEntry, JournalKey, Store, StoreError, Tree, Trees, now_ms, transaction};

/// The backend of one heal of one event.
#[derive(Debug)]
pub struct DaemonBackend {
    platforms: Platforms,
    store: Store,
    journal: Tree<JournalKey, JournalEntry>,
    schedule: Schedule,
    event_id: u64,
    plugin: String,
    seq: AtomicU32,
    /// Seconds a re-run waits (backoff for this attempt).
    backoff_secs: u64,
    rerun_scheduled: AtomicBool,
    notes: Mutex<Vec<String>>,
}

/// The WIT error a plugin sees for a platform failure.
pub fn to_wit(e: &PlatformError) -> Error {
    let m = e.to_string();
    match e {
        PlatformError::NotConfigured(_) | PlatformError::Unsupported(_) => Error::Unavailable(m),
        PlatformError::RateLimited { .. } => Error::Limited(m),
        PlatformError::Status { status, .. } => match status {
            401 | 403 => Error::Denied(m),
            404 => Error::NotFound(m),
            400 | 409 | 422 => Error::Invalid(m),
            429 => Error::Limited(m),
            _ => Error::Unavailable(m),
        },
        _ => Error::Unavailable(m),
    }
}

impl DaemonBackend {
    /// A backend for `plugin`'s heal of event `event_id`; the sequence
    /// starts at `first_seq` (one range per strategy tried).
    pub fn new(
        platforms: Platforms,
        store: &Store,
        schedule: Schedule,
        event_id: u64,
        plugin: &str,
        first_seq: u32,
        backoff_secs: u64,
    ) -> Result<DaemonBackend, StoreError> {
        Ok(DaemonBackend {
            platforms,
            store: store.clone(),
            journal: store.tree(Trees::JOURNAL)?,
            schedule,
            event_id,
            plugin: plugin.to_string(),
            seq: AtomicU32::new(first_seq),
            backoff_secs,
            rerun_scheduled: AtomicBool::new(false),
            notes: Mutex::new(Vec::new()),
        })
    }

    fn note(&self, s: String) {
        match self.notes.lock() {
            Ok(mut n) => n.push(s),
            Err(p) => p.into_inner().push(s),
        }
    }

    /// Removes the journal of an event (once its record is written).
    pub fn forget(store: &Store, event_id: u64) -> Result<(), StoreError> {
        store.tree(Trees::JOURNAL)?.forget_event(event_id)?;
        Ok(())
    }

    async fn perform_inner(
        &self,
        job: &Job,
        request: CiRequest,
    ) -> Result<Result<u32, Error>, StoreError> {
        let key = JournalKey {
            event_id: self.event_id,
            seq: self.seq.fetch_add(1, Ordering::SeqCst),
        };
        if let Some(entry) = self.journal.get(&key)? {
            return Ok(match entry {
                JournalEntry::Done(n) => {
                    self.note(format!("{request:?}: already done before a restart"));
                    Ok(n)
                }
                JournalEntry::Scheduled { .. } => {
                    self.rerun_scheduled.store(true, Ordering::SeqCst);
                    self.note("re-run already scheduled before a restart".into());
                    Ok(0)
                }
                JournalEntry::Started => {
                    self.note(format!(
                        "{request:?}: interrupted by a restart, not repeated"
                    ));
                    Ok(0)
                }
                JournalEntry::Failed(m) => Err(Error::Unavailable(m)),
            });
        }
        let (all_failed, debug_logging, delay) = match &request {
            CiRequest::Rerun {
                delay_secs,
                debug_logging,
                ..
            } => (false, *debug_logging, *delay_secs),
            CiRequest::RerunFailed { debug_logging } => (true, *debug_logging, 0),
            other => {
                let adapter = match self.platforms.get(job.platform) {
                    Ok(a) => a,
                    Err(e) => return Ok(Err(to_wit(&e))),
                };
                // Insert-if-absent: should another process be healing the
                // same event (its claim ran out under it), one of the two acts.
                if !self.journal.insert_new(&key, &JournalEntry::Started)? {
                    self.note(format!(
                        "{request:?}: being done by another guard process, not repeated"
                    ));
                    return Ok(Ok(0));
                }
                self.store.flush_async().await?;
                let result = match other {
                    CiRequest::ClearCaches { prefix } => adapter.clear_caches(job, prefix).await,
                    CiRequest::Cancel => adapter.cancel(job).await.map(|()| 0),
                    CiRequest::Annotate { title, body } => {
                        adapter.annotate(job, title, body).await.map(|()| 0)
                    }
                    CiRequest::Rerun { .. } | CiRequest::RerunFailed { .. } => Ok(0),
                };
                let entry = match &result {
                    Ok(n) => JournalEntry::Done(*n),
                    Err(e) => JournalEntry::Failed(e.to_string()),
                };
                self.journal.insert(&key, &entry)?;
                return Ok(result.map_err(|e| to_wit(&e)));
            }
        };
        if let Err(e) = self.platforms.get(job.platform) {
            return Ok(Err(to_wit(&e)));
        }
        let at_ms = now_ms() + self.backoff_secs.max(u64::from(delay)).saturating_mul(1000);
        let skey = self.schedule.key(at_ms)?;
        let scheduled = Scheduled {
            job: job.clone(),
            all_failed,
            debug_logging,
            event_id: self.event_id,
            plugin: self.plugin.clone(),
            tries: 0,
            firing: false,
            firing_until_ms: 0,
        };
        // The journal entry and the re-run together or neither: after a
        // crash the journal must not claim a re-run the schedule lacks.
        let fresh = transaction(&self.journal, self.schedule.tree(), |j, s| {
            if j.contains_key(&key)? {
                return Ok(false);
            }
            j.insert(&key, &JournalEntry::Scheduled { at_ms })?;
            s.insert(&skey, &scheduled)?;
            Ok(true)
        })?;
        if !fresh {
            self.note("re-run already scheduled by another guard process".into());
        }
        self.store.flush_async().await?;
        self.schedule.wake();
        self.rerun_scheduled.store(true, Ordering::SeqCst);
        Ok(Ok(0))
    }
}

#[async_trait]
impl CiBackend for DaemonBackend {
    async fn perform(&self, job: &Job, request: CiRequest) -> Result<u32, Error> {
        match self.perform_inner(job, request).await {
            Ok(r) => r,
            Err(e) => Err(Error::Unavailable(format!("guard's database: {e}"))),
        }
    }

    /// Scheduled now or in an earlier, interrupted try of the same event.
    fn rerun(&self) -> Option<Rerun> {
        self.rerun_scheduled.load(Ordering::SeqCst).then(|| Rerun {
            delay_secs: self.backoff_secs,
            env: Vec::new(),
        })
    }

    /// Actions answered from the journal.
    fn take_notes(&self) -> Vec<String> {
        match self.notes.lock() {
            Ok(mut n) => std::mem::take(&mut *n),
            Err(p) => std::mem::take(&mut *p.into_inner()),
        }
    }
}
