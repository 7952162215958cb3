//! Every tree of guard's database, declared once: its name, its key layout
//! and its value encoding ([`Trees`]), plus the two composite key layouts
//! (the journal's and the schedule's) and the journal's entries.
//!
//! The on-disk format is a contract with existing databases: a name, a key
//! layout or a value's JSON shape changes only with a migration (and a
//! bump of the schema version in `meta`).

use serde::{Deserialize, Serialize};
use sled::IVec;

use super::typed::{CodecError, Key, Tree, TreeDef, Value};
use super::{AuditRecord, SecurityEvent, StoreError};
use crate::daemon::catch_up::Rest;
use crate::daemon::queue::{JobRecord, QueuedEvent};
use crate::daemon::schedule::Scheduled;
use crate::detect::classifier::Model;
use crate::heal::breaker::Breaker;
use crate::heal::budget::{JobBudget, RepoBudget};
use crate::heal::session::Pending;
use crate::heal::stats::Outcomes;
use crate::learn::candidates::Candidate;
use crate::learn::examples::Example;
use crate::learn::rule_stats::RuleStats;
use crate::learn::rules::Learned;

/// The trees, one line each. Text keys are UTF-8, their parts joined by
/// U+001F (shown `␟`); numbers are big-endian (so byte order is numeric
/// order); records are JSON unless said otherwise. The plugins' own trees
/// are named by [`plugin_kv_name`].
#[derive(Debug)]
pub struct Trees;

impl Trees {
    /// `meta`: `schema` → the schema version (u32, 4 bytes BE, not JSON).
    pub const META: TreeDef<str, u32> = TreeDef::new("meta");
    /// `security`: id (u64 BE, increasing) → [`SecurityEvent`].
    pub const SECURITY: TreeDef<u64, SecurityEvent> = TreeDef::new("security");
    /// `audit`: id (u64 BE, increasing) → [`AuditRecord`].
    pub const AUDIT: TreeDef<u64, AuditRecord> = TreeDef::new("audit");
    /// `breakers`: `repository␟job␟strategy` → [`Breaker`].
    pub const BREAKERS: TreeDef<str, Breaker> = TreeDef::new("breakers");
    /// `budgets`, keys `job␟repository␟job␟commit` → [`JobBudget`] (keys
    /// given without the `job␟`).
    pub const JOB_BUDGETS: TreeDef<str, JobBudget> = TreeDef::keyspace("budgets", "job\u{1f}");
    /// `budgets`, keys `repo␟repository` → [`RepoBudget`] (keys given
    /// without the `repo␟`).
    pub const REPO_BUDGETS: TreeDef<str, RepoBudget> = TreeDef::keyspace("budgets", "repo\u{1f}");
    /// `stats`: `category␟strategy` → [`Outcomes`].
    pub const STATS: TreeDef<str, Outcomes> = TreeDef::new("stats");
    /// `pending`: `platform␟repository␟job name␟commit` → a heal waiting
    /// for its re-run's verdict.
    pub(crate) const PENDING: TreeDef<str, Pending> = TreeDef::new("pending");
    /// `rules`: rule id → [`Learned`] rule.
    pub const RULES: TreeDef<str, Learned> = TreeDef::new("rules");
    /// `rule_stats`: rule id → [`RuleStats`].
    pub const RULE_STATS: TreeDef<str, RuleStats> = TreeDef::new("rule_stats");
    /// `candidates`: candidate id → [`Candidate`].
    pub const CANDIDATES: TreeDef<str, Candidate> = TreeDef::new("candidates");
    /// `examples`: id as 20 decimal digits (so text order is age) →
    /// labelled [`Example`].
    pub const EXAMPLES: TreeDef<str, Example> = TreeDef::new("examples");
    /// `classifier`: `model` → the trained [`Model`].
    pub const CLASSIFIER: TreeDef<str, Model> = TreeDef::new("classifier");
    /// `baselines`: baseline key → sorted template hashes (JSON array).
    pub const BASELINES: TreeDef<str, Vec<u64>> = TreeDef::new("baselines");
    /// `queue`: event id (u64 BE, increasing) → [`QueuedEvent`] waiting.
    pub const QUEUE: TreeDef<u64, QueuedEvent> = TreeDef::new("queue");
    /// `deliveries`: delivery id or fact key → receipt time (ms, u64 BE,
    /// not JSON).
    pub const DELIVERIES: TreeDef<str, u64> = TreeDef::new("deliveries");
    /// `jobs`: event id (u64 BE) → [`JobRecord`] of a processed event.
    pub const JOBS: TreeDef<u64, JobRecord> = TreeDef::new("jobs");
    /// `dead`: event id (u64 BE) → [`QueuedEvent`] that kept failing.
    pub const DEAD: TreeDef<u64, QueuedEvent> = TreeDef::new("dead");
    /// `journal`: [`JournalKey`] (event id u64 BE ++ sequence u32 BE) →
    /// [`JournalEntry`].
    pub const JOURNAL: TreeDef<JournalKey, JournalEntry> = TreeDef::new("journal");
    /// `schedule`: [`ScheduleKey`] (fire time ms u64 BE ++ id u64 BE) →
    /// [`Scheduled`] re-run.
    pub const SCHEDULE: TreeDef<ScheduleKey, Scheduled> = TreeDef::new("schedule");
    /// `catch_up`: `platform␟watched` (a repository, project or job as
    /// configured) → when the last catch-up pass that listed it without
    /// error started (ms, u64 BE, not JSON): its watermark.
    pub const CATCH_UP: TreeDef<str, u64> = TreeDef::new("catch_up");
    /// `catch_up_rest`: `platform␟watched` → [`Rest`]: where the last
    /// catch-up listing of it was cut short, while the rest is owed.
    pub const CATCH_UP_REST: TreeDef<str, Rest> = TreeDef::new("catch_up_rest");
    /// `rate_limits`: `platform␟API base URL` → until when (ms, u64 BE,
    /// not JSON) its quota is used up: every replica waits it out.
    pub const RATE_LIMITS: TreeDef<str, u64> = TreeDef::new("rate_limits");
}

/// `kv/<plugin-id>`: the name of a plugin's private tree. Its keys and
/// values are the plugin's own bytes, so it is opened raw.
pub fn plugin_kv_name(plugin: &str) -> String {
    format!("kv/{plugin}")
}

/// Declares values stored as their serde JSON.
macro_rules! json_values {
    ($($t:ty),* $(,)?) => {$(
        impl Value for $t {
            fn encode(&self) -> Result<Vec<u8>, CodecError> {
                Ok(serde_json::to_vec(self)?)
            }

            fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
                Ok(serde_json::from_slice(bytes)?)
            }
        }
    )*};
}

json_values!(
    SecurityEvent,
    AuditRecord,
    Breaker,
    JobBudget,
    RepoBudget,
    Outcomes,
    Pending,
    Learned,
    RuleStats,
    Candidate,
    Example,
    Model,
    Vec<u64>,
    QueuedEvent,
    JobRecord,
    JournalEntry,
    Scheduled,
    Rest,
);

/// Key of [`Trees::JOURNAL`]: one action of the heal of one event. Laid
/// out as the event id (u64 BE) then the sequence number (u32 BE), so an
/// event's actions are adjacent and in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalKey {
    /// The event healed.
    pub event_id: u64,
    /// The action's place in the heal.
    pub seq: u32,
}

impl Key for JournalKey {
    type Owned = JournalKey;

    fn encode(&self) -> IVec {
        let mut k = [0u8; 12];
        k[..8].copy_from_slice(&self.event_id.to_be_bytes());
        k[8..].copy_from_slice(&self.seq.to_be_bytes());
        IVec::from(&k[..])
    }

    fn decode(bytes: &[u8]) -> Option<JournalKey> {
        if bytes.len() != 12 {
            return None;
        }
        let (event, seq) = bytes.split_at(8);
        Some(JournalKey {
            event_id: u64::from_be_bytes(event.try_into().ok()?),
            seq: u32::from_be_bytes(seq.try_into().ok()?),
        })
    }
}

/// What the journal knows of one action of a heal. The variant names are
/// the stored JSON (`"Started"`, `{"Done":1}`, …): never rename them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum JournalEntry {
    /// The call was made; its answer was not recorded (guard stopped).
    Started,
    /// The call answered this number.
    Done(u32),
    /// A re-run went into the schedule, due at this time (ms).
    Scheduled {
        /// When it fires.
        at_ms: u64,
    },
    /// The call failed with this message.
    Failed(String),
}

impl Tree<JournalKey, JournalEntry> {
    /// Removes every entry of `event_id` (once its job record is written);
    /// returns how many there were.
    pub fn forget_event(&self, event_id: u64) -> Result<usize, StoreError> {
        self.remove_prefix(&event_id.to_be_bytes())
    }
}

/// Key of [`Trees::SCHEDULE`]: fire time (ms, u64 BE) then a unique id
/// (u64 BE), so the soonest re-run comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduleKey {
    /// When the re-run is due (ms since the epoch).
    pub at_ms: u64,
    /// Tells apart re-runs due at the same millisecond.
    pub id: u64,
}

impl Key for ScheduleKey {
    type Owned = ScheduleKey;

    fn encode(&self) -> IVec {
        let mut k = [0u8; 16];
        k[..8].copy_from_slice(&self.at_ms.to_be_bytes());
        k[8..].copy_from_slice(&self.id.to_be_bytes());
        IVec::from(&k[..])
    }

    fn decode(bytes: &[u8]) -> Option<ScheduleKey> {
        if bytes.len() != 16 {
            return None;
        }
        let (at, id) = bytes.split_at(8);
        Some(ScheduleKey {
            at_ms: u64::from_be_bytes(at.try_into().ok()?),
            id: u64::from_be_bytes(id.try_into().ok()?),
        })
    }
}
