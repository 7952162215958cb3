//! The daemon behind `guard run`: a durable queue of webhook events
//! ([`queue`]), workers with bounded concurrency that diagnose and heal
//! ([`worker`]), a platform backend for the plugins' `ci.*` calls that
//! acts once ([`backend`]), the re-run schedule ([`schedule`]), and the
//! catch-up that finds failures whose webhooks nobody received while the
//! daemon was down ([`catch_up`]).
//!
//! The HTTP side lives in `server`; this module owns what happens after an
//! event is accepted.

pub mod backend;
pub mod catch_up;
pub mod queue;
pub mod redeliver;
pub mod retention;
pub mod schedule;
pub mod worker;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};

use crate::detect::Analyzer;
use crate::detect::live::Live;
use crate::heal::Session;
use crate::metrics::{self, labels};
use crate::platform::Platforms;
use crate::runtime::Runtime;
use crate::store::{StoreError, now_ms};
use queue::Queue;
use schedule::Schedule;

/// Why the daemon could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No directory for downloaded job logs could be made.
    #[error("creating a temporary directory for job logs: {0}")]
    Scratch(std::io::Error),
}

/// Everything the workers share.
#[derive(Debug)]
pub struct Daemon {
    /// Plugins, configuration and database.
    pub runtime: Arc<Runtime>,
    /// Compiled rules and detectors (rebuilt when learned rules change).
    pub analyzer: Arc<Live>,
    /// Platform adapters.
    pub platforms: Platforms,
    /// The intake queue.
    pub queue: Queue,
    /// The re-run schedule.
    pub schedule: Schedule,
    /// Record what would be done; do nothing.
    pub dry_run: bool,
    /// Diagnosis and healing, shared with `guard exec`.
    session: Session,
    /// Wakes the dispatcher (new events).
    pub wake: Arc<Notify>,
    /// Tells the dispatcher and scheduler to stop.
    stop: tokio::sync::watch::Sender<bool>,
    busy: Mutex<HashSet<u64>>,
    /// This process, as named in the claims it holds on queued events.
    owner: String,
    /// Where job logs are downloaded, one file per event being processed.
    scratch: tempfile::TempDir,
}

impl Daemon {
    /// Sets up the daemon on `runtime`'s database; recovers the schedule.
    pub fn new(
        runtime: Arc<Runtime>,
        platforms: Platforms,
        dry_run: bool,
    ) -> Result<Arc<Daemon>, DaemonError> {
        let (analyzer, _) = Analyzer::new(runtime.clone());
        platforms.share_quota(runtime.db());
        let queue = Queue::open(runtime.db())?;
        let schedule = Schedule::open(runtime.db())?;
        let shared = runtime.db().is_shared();
        if !shared {
            // This process alone uses the database: claims and calls in
            // flight were its previous life's, which is over.
            let released = queue.release_all()?;
            if released > 0 {
                tracing::info!("{released} event(s) claimed before the last stop are queued again");
            }
        }
        let dropped = schedule.recover(shared)?;
        if dropped > 0 {
            tracing::warn!(
                "{dropped} re-run(s) interrupted by the last stop were not repeated (see the audit)"
            );
        }
        forget(&queue, &runtime.config().server)?;
        let analyzer = Live::new(Arc::new(analyzer));
        Ok(Arc::new(Daemon {
            session: Session::live(runtime.clone(), analyzer.clone(), dry_run),
            runtime,
            analyzer,
            platforms,
            queue,
            schedule,
            dry_run,
            wake: Arc::new(Notify::new()),
            stop: tokio::sync::watch::channel(false).0,
            busy: Mutex::new(HashSet::new()),
            owner: owner_name(runtime_id()),
            scratch: tempfile::Builder::new()
                .prefix("guard-logs-")
                .tempdir()
                .map_err(DaemonError::Scratch)?,
        }))
    }

    fn busy(&self) -> std::sync::MutexGuard<'_, HashSet<u64>> {
        match self.busy.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Starts the dispatcher, the scheduler and catch-up (whose first
    /// pass runs at once); returns their handles.
    pub fn start(self: &Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        let d = self.clone();
        let dispatcher = tokio::spawn(async move { d.dispatch().await });
        let s = self.schedule.clone();
        let platforms = self.platforms.clone();
        let stop = self.stop.subscribe();
        let scheduler = tokio::spawn(async move { s.run(platforms, stop).await });
        let c = self.clone();
        let stop = self.stop.subscribe();
        let catch_up = tokio::spawn(async move { c.run_catch_up(stop).await });
        let live = self.analyzer.clone();
        let runtime = self.runtime.clone();
        let stop = self.stop.subscribe();
        let follow = tokio::spawn(async move { live.follow(runtime, stop).await });
        let r = self.clone();
        let stop = self.stop.subscribe();
        let redelivery = tokio::spawn(async move { r.run_redelivery(stop).await });
        vec![dispatcher, scheduler, catch_up, follow, redelivery]
    }

    /// Stops taking events and waits (up to `grace`) for those in progress.
    pub async fn shutdown(&self, grace: Duration) {
        self.stop.send_replace(true);
        let deadline = tokio::time::Instant::now() + grace;
        while !self.busy().is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if let Err(e) = self.runtime.db().flush_async().await {
            tracing::error!("flushing the database at shutdown: {e}");
        }
    }

    fn lease_ms(&self) -> u64 {
        self.runtime.config().server.lease_secs.saturating_mul(1000)
    }

    /// Processes a claimed event, renewing the claim while it lasts so no
    /// other replica takes the event from a live worker.
    async fn process_leased(
        self: &Arc<Self>,
        ev: &queue::QueuedEvent,
    ) -> Result<queue::JobRecord, worker::ProcessError> {
        let lease_ms = self.lease_ms();
        let mut renew = tokio::time::interval(Duration::from_millis((lease_ms / 3).max(500)));
        renew.tick().await;
        let work = self.process(ev);
        tokio::pin!(work);
        loop {
            tokio::select! {
                r = &mut work => return r,
                _ = renew.tick() => match self.queue.renew(ev.id, &self.owner, lease_ms) {
                    Ok(true) => {}
                    Ok(false) => tracing::warn!(
                        event = ev.id,
                        "another process took this event over (this one was too slow to renew its claim)"
                    ),
                    Err(e) => tracing::warn!(event = ev.id, "renewing the claim: {e}"),
                },
            }
        }
    }

    /// Hands due events to workers, at most `[server] workers` at once.
    async fn dispatch(self: Arc<Self>) {
        let workers = self.runtime.config().server.workers;
        let permits = Arc::new(Semaphore::new(workers));
        let max_attempts = self.runtime.config().server.max_event_attempts;
        let mut stop = self.stop.subscribe();
        let mut last_prune = std::time::Instant::now();
        let mut pruning: Option<tokio::task::JoinHandle<()>> = None;
        loop {
            if *stop.borrow() {
                return;
            }
            // A pass reads whole trees: on the blocking pool, not in the
            // way of claims, and never two at once.
            if last_prune.elapsed() > Duration::from_secs(3600)
                && pruning.as_ref().is_none_or(|p| p.is_finished())
            {
                last_prune = std::time::Instant::now();
                let d = self.clone();
                pruning = Some(tokio::task::spawn_blocking(move || {
                    if let Err(e) = forget(&d.queue, &d.runtime.config().server) {
                        tracing::warn!("forgetting old records: {e}");
                    }
                }));
            }
            let busy_now = self.busy().clone();
            let lease_ms = self.lease_ms();
            let free = workers.saturating_sub(busy_now.len()).max(1);
            let due = match self.queue.claim(&self.owner, lease_ms, &busy_now, free) {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!("reading the queue: {e}");
                    Vec::new()
                }
            };
            // A full claim may have left more: the next completion wakes
            // the loop. Only an idle queue is read for its next retry
            // time (reading it after every event made a backlog quadratic).
            let idle = due.len() < free;
            for ev in due {
                let permit = tokio::select! {
                    p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
                    _ = stop.changed() => return,
                };
                self.busy().insert(ev.id);
                let d = self.clone();
                tokio::spawn(async move {
                    let result = d.process_leased(&ev).await;
                    let outcome = match result {
                        Ok(record) => {
                            let decided = record.processed_ms.saturating_sub(record.received_ms);
                            metrics::get().decision.observe(decided as f64 / 1000.0);
                            match d.queue.complete(&record).await {
                                Ok(()) => {
                                    let _ = backend::DaemonBackend::forget(d.runtime.db(), ev.id);
                                    tracing::info!(
                                        event = ev.id,
                                        repository = %record.job.repository,
                                        job = %record.job.job_name,
                                        category = record.category.as_deref().unwrap_or("-"),
                                        outcome = %record.outcome,
                                        "event processed"
                                    );
                                    "done"
                                }
                                Err(e) => {
                                    tracing::error!(
                                        event = ev.id,
                                        "cannot record the outcome: {e}"
                                    );
                                    "retried"
                                }
                            }
                        }
                        Err(e) => {
                            tracing::warn!(
                                event = ev.id,
                                attempts = ev.attempts + 1,
                                "processing failed: {e}"
                            );
                            match d.queue.failed(&ev, &e.to_string(), max_attempts).await {
                                Ok(true) => "dead",
                                Ok(false) => "retried",
                                Err(e) => {
                                    tracing::error!(
                                        event = ev.id,
                                        "cannot record the failure: {e}"
                                    );
                                    "retried"
                                }
                            }
                        }
                    };
                    metrics::get()
                        .events
                        .get_or_create(&labels(&[("result", outcome)]))
                        .inc();
                    d.busy().remove(&ev.id);
                    drop(permit);
                    d.wake.notify_one();
                });
            }
            let mut wait = match idle.then(|| self.queue.next_retry_ms()) {
                Some(Ok(Some(at))) => at.saturating_sub(now_ms()).clamp(20, 5_000),
                _ => 5_000,
            };
            if self.runtime.db().is_shared() {
                // Other replicas queue events without waking this one, and
                // a dead replica's claims run out: look again each second.
                wait = wait.min(1_000);
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
                _ = stop.changed() => return,
            }
        }
    }
}

/// A name for this process in claims: host, process id and a store id, so
/// two replicas (or two lives of one) never share one.
fn owner_name(unique: u64) -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "guard".into());
    format!("{host}/{}/{unique:x}", std::process::id())
}

/// A number unlikely to repeat across process lives.
fn runtime_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(now_ms());
    h.finish()
}

/// One pass of [`retention::forget`], said in the log.
fn forget(queue: &Queue, server: &crate::config::Server) -> Result<(), StoreError> {
    let f = retention::forget(queue, server)?;
    if f.total() > 0 {
        tracing::info!(
            "forgot {} delivery ids, {} job records, {} heals with no verdict, {} job budgets, {} audit records and security events past their retention",
            f.deliveries,
            f.jobs,
            f.pending,
            f.budgets,
            f.audit
        );
    }
    Ok(())
}
