//! The durable intake queue and what it remembers.
//!
//! An accepted webhook is in the store — flushed, or committed in
//! PostgreSQL — before guard answers 2xx, so an event the platform saw
//! accepted survives a crash. Trees (their layouts are declared in
//! [`crate::store::Trees`]):
//!
//! - [`Trees::QUEUE`]: events waiting; an event leaves it only after its
//!   job record is written. A worker takes an event by
//!   *claiming* it ([`Queue::claim`]): its lease names the worker's
//!   process and lasts `[server] lease_secs` unless renewed. Replicas
//!   sharing a PostgreSQL store never hold the same event at once, and an
//!   event whose replica died is taken by another when the lease runs out.
//! - [`Trees::DELIVERIES`]: delivery ids and fact keys with their receipt
//!   time, for de-duplication; pruned after `[server] dedupe_days`.
//! - [`Trees::JOBS`]: [`JobRecord`]s, what guard concluded and did.
//! - [`Trees::DEAD`]: events that kept failing (`guard status`).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::intake::{EventKind, Parsed};
use crate::model::{Evidence, Job};
use crate::store::{Store, StoreError, Tree, Trees, now_ms, transaction};

/// An event waiting to be processed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct QueuedEvent {
    /// Queue id.
    pub id: u64,
    /// Delivery it came from (`internal` for events guard derived itself).
    pub delivery: String,
    /// When it was accepted (ms).
    pub received_ms: u64,
    /// Failed processing attempts so far.
    pub attempts: u32,
    /// Not before this time (ms); set after a failed attempt.
    pub next_try_ms: u64,
    /// Error of the last failed attempt.
    pub last_error: Option<String>,
    /// The event.
    pub event: EventKind,
    /// The process working on it (see [`Queue::claim`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_owner: Option<String>,
    /// Until when (ms) that claim holds unless renewed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub lease_until_ms: u64,
    /// Times a worker claimed it, this one included. Past the first, an
    /// earlier claim may have processed it and died before it left the
    /// queue (see [`Queue::done`]). An event queued before guard counted
    /// claims counts as claimed once.
    #[serde(default = "one")]
    pub claims: u32,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn one() -> u32 {
    1
}

/// What guard concluded about an event and did about it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct JobRecord {
    /// Queue id of the event.
    pub id: u64,
    /// The job (or run).
    pub job: Job,
    /// `failed`, `succeeded` or `run-failed`.
    pub status: String,
    /// When the event was accepted (ms).
    pub received_ms: u64,
    /// When processing finished (ms).
    pub processed_ms: u64,
    /// Category of the diagnosis.
    pub category: Option<String>,
    /// Failure type.
    pub failure_type: Option<String>,
    /// Rule that named it.
    pub rule: Option<String>,
    /// Confidence 0–1.
    pub confidence: f32,
    /// Evidence lines.
    pub evidence: Vec<Evidence>,
    /// Strategy applied.
    pub strategy: Option<String>,
    /// Healer that applied it.
    pub healer: Option<String>,
    /// The healer's summary.
    pub summary: Option<String>,
    /// Actions as reported by the healer.
    pub actions: Vec<String>,
    /// One word: a [`crate::heal::Outcome`] (the words `guard exec`
    /// reports too), or `expanded` for a failed run split into its jobs.
    pub outcome: String,
    /// Everything else worth knowing (declines, blocked strategies, budget).
    pub notes: Vec<String>,
    /// Flaky tests named by the healer.
    pub flaky_tests: Vec<String>,
    /// Log size in bytes.
    pub log_bytes: u64,
}

/// The result of accepting a webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// Queued under these ids (facts already known are skipped).
    Queued(Vec<u64>),
    /// This delivery, or every fact in it, was seen before.
    Duplicate,
}

/// The queue and its companion trees.
#[derive(Debug, Clone)]
pub struct Queue {
    store: Store,
    queue: Tree<u64, QueuedEvent>,
    deliveries: Tree<str, u64>,
    jobs: Tree<u64, JobRecord>,
    dead: Tree<u64, QueuedEvent>,
}

impl Queue {
    /// Opens the trees in `store`.
    pub fn open(store: &Store) -> Result<Queue, StoreError> {
        Ok(Queue {
            store: store.clone(),
            queue: store.tree(Trees::QUEUE)?,
            deliveries: store.tree(Trees::DELIVERIES)?,
            jobs: store.tree(Trees::JOBS)?,
            dead: store.tree(Trees::DEAD)?,
        })
    }

    /// The database.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Whether this delivery id was accepted before.
    pub fn seen(&self, delivery: &str) -> Result<bool, StoreError> {
        self.deliveries.contains_key(delivery)
    }

    /// Queues the events of a webhook durably (flushed before returning)
    /// unless the delivery or each fact was seen before.
    pub async fn accept(&self, parsed: &Parsed) -> Result<Accepted, StoreError> {
        if self.seen(&parsed.delivery)? {
            return Ok(Accepted::Duplicate);
        }
        let ids = self.insert_events(&parsed.events, &parsed.delivery)?;
        self.deliveries.insert(&parsed.delivery, &now_ms())?;
        self.store.flush_async().await?;
        if ids.is_empty() {
            Ok(Accepted::Duplicate)
        } else {
            Ok(Accepted::Queued(ids))
        }
    }

    /// Queues events guard derived itself (a failed run's jobs); returns
    /// the new ids. Not flushed: the caller's completion flushes.
    pub fn insert_events(
        &self,
        events: &[EventKind],
        delivery: &str,
    ) -> Result<Vec<u64>, StoreError> {
        let mut ids = Vec::new();
        for event in events {
            let fact = event.fact_key();
            let id = self.store.generate_id()?;
            let now = now_ms();
            let queued = QueuedEvent {
                id,
                delivery: delivery.to_string(),
                received_ms: now,
                attempts: 0,
                next_try_ms: 0,
                last_error: None,
                event: event.clone(),
                lease_owner: None,
                lease_until_ms: 0,
                claims: 0,
            };
            // Fact and event together or neither: a crash in between must
            // not leave a fact marked seen with no event queued.
            let inserted = transaction(&self.deliveries, &self.queue, |d, q| {
                if d.contains_key(&fact)? {
                    return Ok(false);
                }
                d.insert(&fact, &now)?;
                q.insert(&id, &queued)?;
                Ok(true)
            })?;
            if inserted {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    /// Events due now, oldest first, skipping `busy` ones.
    pub fn due(&self, busy: &HashSet<u64>, limit: usize) -> Result<Vec<QueuedEvent>, StoreError> {
        let now = now_ms();
        let mut out = Vec::new();
        for ev in self.queue.values() {
            let ev = ev?;
            if busy.contains(&ev.id) || ev.next_try_ms > now {
                continue;
            }
            out.push(ev);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Claims up to `limit` due events for `owner` for `lease_ms`, oldest
    /// first: those nobody holds, or whose holder's lease ran out (it
    /// died), skipping `busy` ones (this process's own). Two processes
    /// never get the same event.
    pub fn claim(
        &self,
        owner: &str,
        lease_ms: u64,
        busy: &HashSet<u64>,
        limit: usize,
    ) -> Result<Vec<QueuedEvent>, StoreError> {
        let now = now_ms();
        let claimed = self.queue.claim(limit, |_, ev| {
            let held = ev.lease_owner.is_some() && ev.lease_until_ms > now;
            if busy.contains(&ev.id) || ev.next_try_ms > now || held {
                return false;
            }
            ev.lease_owner = Some(owner.to_string());
            ev.lease_until_ms = now + lease_ms;
            ev.claims = ev.claims.saturating_add(1);
            true
        })?;
        Ok(claimed.into_iter().map(|(_, ev)| ev).collect())
    }

    /// Extends `owner`'s claim on event `id`; false when it no longer
    /// holds it (the event is done, or another process took it).
    pub fn renew(&self, id: u64, owner: &str, lease_ms: u64) -> Result<bool, StoreError> {
        let mut mine = false;
        self.queue.update(&id, |ev| {
            let mut ev = ev?;
            mine = ev.lease_owner.as_deref() == Some(owner);
            if mine {
                ev.lease_until_ms = now_ms() + lease_ms;
            }
            Some(ev)
        })?;
        Ok(mine)
    }

    /// Lets go of every claim: when this process alone uses the store
    /// (sled), claims left by its previous life are void at start-up.
    pub fn release_all(&self) -> Result<usize, StoreError> {
        let released = self.queue.claim(usize::MAX, |_, ev| {
            let held = ev.lease_owner.is_some();
            ev.lease_owner = None;
            ev.lease_until_ms = 0;
            held
        })?;
        Ok(released.len())
    }

    /// Every waiting event, oldest first (due or not).
    pub fn waiting(&self, limit: usize) -> Result<Vec<QueuedEvent>, StoreError> {
        Ok(self
            .queue
            .head(limit)?
            .into_iter()
            .map(|(_, v)| v)
            .collect())
    }

    /// The earliest retry time among waiting events, if any is delayed.
    pub fn next_retry_ms(&self) -> Result<Option<u64>, StoreError> {
        let mut min: Option<u64> = None;
        for ev in self.queue.values() {
            let ev = ev?;
            if ev.next_try_ms > 0 {
                min = Some(min.map_or(ev.next_try_ms, |m| m.min(ev.next_try_ms)));
            }
        }
        Ok(min)
    }

    /// Marks an event processed: writes its record, then removes it from
    /// the queue, then flushes.
    ///
    /// Two writes in that order rather than one transaction: sled commits
    /// a transaction with two log writes of its own (each synced), and at
    /// 1,000 events/s those were a fifth of the daemon's disk writes.
    /// sled recovers a prefix of its log, so a crash leaves the record
    /// without the removal at worst: the event is claimed again, and
    /// [`Queue::done`] tells the worker it was already processed.
    pub async fn complete(&self, record: &JobRecord) -> Result<(), StoreError> {
        self.jobs.insert(&record.id, record)?;
        self.queue.remove(&record.id)?;
        self.store.flush_async().await
    }

    /// The record of a queued event processed before a crash cut its
    /// completion short (see [`Queue::complete`]); `None` for the others.
    /// Only an event claimed before can have one: the first claim costs
    /// no read (on PostgreSQL, a round trip per event).
    pub fn done(&self, ev: &QueuedEvent) -> Result<Option<JobRecord>, StoreError> {
        if ev.claims <= 1 {
            return Ok(None);
        }
        self.jobs.get(&ev.id)
    }

    /// Records a failed attempt; after `max_attempts` the event moves to
    /// the dead letters. Returns true when it was buried.
    pub async fn failed(
        &self,
        ev: &QueuedEvent,
        error: &str,
        max_attempts: u32,
    ) -> Result<bool, StoreError> {
        let mut ev = ev.clone();
        ev.attempts += 1;
        ev.lease_owner = None;
        ev.lease_until_ms = 0;
        ev.last_error = Some(crate::intake::clip(error, 2000));
        let buried = ev.attempts >= max_attempts;
        if buried {
            transaction(&self.queue, &self.dead, |q, d| {
                q.remove(&ev.id)?;
                d.insert(&ev.id, &ev)?;
                Ok(())
            })?;
        } else {
            // 5 s, 10 s, 20 s, … capped at 10 minutes.
            let delay =
                crate::backoff::exponential(5_000, ev.attempts.saturating_sub(1), 7).min(600_000);
            ev.next_try_ms = now_ms() + delay;
            self.queue.insert(&ev.id, &ev)?;
        }
        self.store.flush_async().await?;
        Ok(buried)
    }

    /// Events waiting.
    pub fn depth(&self) -> usize {
        self.queue.len()
    }

    /// Dead letters, newest first.
    pub fn dead_letters(&self, limit: usize) -> Result<Vec<QueuedEvent>, StoreError> {
        self.dead.last(limit)
    }

    /// Number of dead letters.
    pub fn dead_count(&self) -> usize {
        self.dead.len()
    }

    /// Puts a dead letter back in the queue (after fixing its cause).
    pub fn requeue_dead(&self, id: u64) -> Result<bool, StoreError> {
        let Some(mut ev) = self.dead.get(&id)? else {
            return Ok(false);
        };
        ev.attempts = 0;
        ev.next_try_ms = 0;
        ev.lease_owner = None;
        ev.lease_until_ms = 0;
        transaction(&self.queue, &self.dead, |q, d| {
            d.remove(&id)?;
            q.insert(&id, &ev)?;
            Ok(())
        })?;
        Ok(true)
    }

    /// Processed events, newest first.
    pub fn jobs(&self, limit: usize) -> Result<Vec<JobRecord>, StoreError> {
        self.jobs.last(limit)
    }

    /// Number of processed events.
    pub fn jobs_count(&self) -> usize {
        self.jobs.len()
    }

    /// One processed event.
    pub fn job(&self, id: u64) -> Result<Option<JobRecord>, StoreError> {
        self.jobs.get(&id)
    }

    /// Removes job records processed before `cutoff_ms`.
    pub fn prune_jobs(&self, cutoff_ms: u64) -> Result<usize, StoreError> {
        // Ids follow receipt, not completion (retries finish late): look at all.
        self.jobs.remove_where(|r| r.processed_ms < cutoff_ms)
    }

    /// Forgets delivery ids and facts seen before `cutoff_ms`.
    pub fn prune_deliveries(&self, cutoff_ms: u64) -> Result<usize, StoreError> {
        self.deliveries.remove_where(|at| *at < cutoff_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intake::JobStatus;
    use crate::model::Platform;

    fn failed(job_id: &str) -> EventKind {
        EventKind::JobCompleted {
            job: Job {
                platform: Platform::Github,
                repository: "o/r".into(),
                job_id: job_id.into(),
                attempt: 1,
                ..Job::default()
            },
            status: JobStatus::Failed,
        }
    }

    fn parsed(delivery: &str, events: Vec<EventKind>) -> Parsed {
        Parsed {
            delivery: delivery.into(),
            events,
            ignored: None,
        }
    }

    #[tokio::test]
    async fn replays_and_repeated_facts_are_not_queued_twice() {
        let q = Queue::open(&Store::temporary().unwrap()).unwrap();
        let a = q.accept(&parsed("d1", vec![failed("1")])).await.unwrap();
        assert!(matches!(a, Accepted::Queued(ref ids) if ids.len() == 1));
        assert_eq!(
            q.accept(&parsed("d1", vec![failed("1")])).await.unwrap(),
            Accepted::Duplicate
        );
        // Same fact under another delivery id (a Job Hook and a Pipeline Hook).
        assert_eq!(
            q.accept(&parsed("d2", vec![failed("1")])).await.unwrap(),
            Accepted::Duplicate
        );
        assert_eq!(q.depth(), 1);
    }

    #[tokio::test]
    async fn completion_moves_the_event_and_failures_end_in_dead_letters() {
        let q = Queue::open(&Store::temporary().unwrap()).unwrap();
        q.accept(&parsed("d1", vec![failed("1"), failed("2")]))
            .await
            .unwrap();
        let due = q.due(&HashSet::new(), 10).unwrap();
        assert_eq!(due.len(), 2);
        q.complete(&JobRecord {
            id: due[0].id,
            outcome: "passed".into(),
            processed_ms: now_ms(),
            ..JobRecord::default()
        })
        .await
        .unwrap();
        assert_eq!(q.depth(), 1);
        assert_eq!(q.job(due[0].id).unwrap().unwrap().outcome, "passed");
        assert!(!q.failed(&due[1], "boom", 2).await.unwrap());
        // Delayed: not due right away.
        assert!(q.due(&HashSet::new(), 10).unwrap().is_empty());
        let again = QueuedEvent {
            attempts: 1,
            ..due[1].clone()
        };
        assert!(q.failed(&again, "boom", 2).await.unwrap());
        assert_eq!(q.depth(), 0);
        assert_eq!(
            q.dead_letters(10).unwrap()[0].last_error.as_deref(),
            Some("boom")
        );
        assert!(q.requeue_dead(due[1].id).unwrap());
        assert_eq!(q.depth(), 1);
        // Retention: records older than the window go, newer ones stay.
        let old = JobRecord {
            id: 100,
            processed_ms: 1,
            ..JobRecord::default()
        };
        q.complete(&old).await.unwrap();
        assert_eq!(q.jobs_count(), 2);
        assert_eq!(
            q.prune_jobs(now_ms() - 30 * 86_400_000).unwrap(),
            1,
            "the record from 1970 is pruned"
        );
        assert!(q.job(100).unwrap().is_none());
    }
}
