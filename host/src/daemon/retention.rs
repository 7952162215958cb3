//! What the daemon forgets, and when. Every kind of record that grows
//! with the events guard sees has a horizon (`[server] dedupe_days`,
//! `retention_days`, `audit_days`), so a long-running daemon's database —
//! and the memory sled spends on its pages — stops growing with its age
//! and follows the traffic of the last weeks instead. Records that stay
//! are bounded by what is configured or named: repositories' hourly
//! budgets, breakers, statistics, learned rules.

use crate::config::Server;
use crate::heal::{budget, session};
use crate::store::{StoreError, now_ms};

use super::queue::Queue;

const DAY_MS: u64 = 86_400_000;

/// How many records of each kind one pass forgot.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Forgotten {
    /// Webhook delivery ids and facts past `dedupe_days`.
    pub deliveries: usize,
    /// Job records past `retention_days`.
    pub jobs: usize,
    /// Heals whose re-run's verdict never came, past `retention_days`.
    pub pending: usize,
    /// Retry budgets of jobs on commits last re-run past `retention_days`.
    pub budgets: usize,
    /// Audit records and security events past `audit_days`.
    pub audit: usize,
}

impl Forgotten {
    /// Records forgotten in all.
    pub fn total(&self) -> usize {
        self.deliveries + self.jobs + self.pending + self.budgets + self.audit
    }
}

/// Forgets what is past its horizon. A pass reads each tree whole: the
/// daemon runs one at start-up and one an hour.
pub fn forget(queue: &Queue, server: &Server) -> Result<Forgotten, StoreError> {
    let now = now_ms();
    let before = |days: u64| now.saturating_sub(days.saturating_mul(DAY_MS));
    let store = queue.store();
    Ok(Forgotten {
        deliveries: queue.prune_deliveries(before(server.dedupe_days))?,
        jobs: queue.prune_jobs(before(server.retention_days))?,
        pending: session::expire_pending(store, before(server.retention_days), now)?,
        budgets: budget::expire(store, before(server.retention_days), now)?,
        audit: store.expire_logs(before(server.audit_days), now)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heal::budget::JobBudget;
    use crate::heal::session::Pending;
    use crate::store::{AuditRecord, SecurityEvent, Store, Trees};

    fn audit(at_ms: u64) -> AuditRecord {
        AuditRecord {
            at_ms,
            plugin: "p".into(),
            action: "ci.rerun-job".into(),
            detail: String::new(),
            outcome: "done".into(),
        }
    }

    #[test]
    fn what_is_past_its_horizon_is_forgotten_and_the_rest_kept() {
        let store = Store::temporary().unwrap();
        let queue = Queue::open(&store).unwrap();
        let server = Server::default(); // 30 days; audit 365
        let now = now_ms();
        let days_ago = |d: u64| now - d * DAY_MS;
        let pending = store.tree(Trees::PENDING).unwrap();
        pending
            .insert("old", &Pending::started("1", days_ago(31)))
            .unwrap();
        pending
            .insert("recent", &Pending::started("2", days_ago(29)))
            .unwrap();
        // Written before heals carried a date.
        pending
            .insert("undated", &Pending::started("3", 0))
            .unwrap();
        let budgets = store.tree(Trees::JOB_BUDGETS).unwrap();
        let spent = |at_ms| JobBudget { used: 2, at_ms };
        budgets
            .insert("r\u{1f}j\u{1f}old", &spent(days_ago(40)))
            .unwrap();
        budgets
            .insert("r\u{1f}j\u{1f}new", &spent(days_ago(1)))
            .unwrap();
        store.record_audit(&audit(days_ago(400))).unwrap();
        store.record_audit(&audit(days_ago(300))).unwrap();
        let mut stale = SecurityEvent::new("p", "denied", "fs.read", "no grant");
        stale.at_ms = days_ago(366);
        store.record_security(&stale).unwrap();
        store.security("p", "denied", "fs.read", "no grant");

        let f = forget(&queue, &server).unwrap();
        assert_eq!((f.pending, f.budgets, f.audit), (1, 1, 2), "{f:?}");
        assert!(pending.get("old").unwrap().is_none());
        assert!(pending.get("recent").unwrap().is_some());
        // The undated heal is kept, and ages from now on.
        let undated = pending.get("undated").unwrap().unwrap();
        assert!(undated.same_attempt(&Pending::started("3", 0)));
        assert!(budgets.get("r\u{1f}j\u{1f}old").unwrap().is_none());
        assert_eq!(budgets.get("r\u{1f}j\u{1f}new").unwrap().unwrap().used, 2);
        assert_eq!(store.audit_records(10).unwrap().len(), 1);
        assert_eq!(store.security_events(10).unwrap().len(), 1);
        // A second pass finds nothing more; the undated heal now carries
        // today's date, so a horizon after today takes it with the other.
        assert_eq!(forget(&queue, &server).unwrap().total(), 0);
        assert_eq!(
            session::expire_pending(&store, now + DAY_MS, now + DAY_MS).unwrap(),
            2
        );
    }
}
