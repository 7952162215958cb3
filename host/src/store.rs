//! guard's database: one place that knows the trees, their key layouts and
//! value encodings, so no other module touches raw bytes. The trees live in
//! embedded sled at `--data` (the default, nothing to set up) or in
//! PostgreSQL (`[store] url`), which several replicas share
//! (`store/postgres.rs`); callers cannot tell which.
//!
//! Every tree is declared once, in [`Trees`] (`store/trees.rs`), as a
//! [`TreeDef`]: its name, key layout and value type. Callers read and write
//! through typed accessors ([`Store::get`], [`Store::put`], an opened
//! [`Tree`], [`transaction`] across two trees), never by a tree's name; the
//! machinery is in `store/typed.rs`. The one exception is a plugin's own
//! `kv/<plugin>` tree ([`Store::plugin_kv`]), whose bytes are the plugin's.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

mod atomic;
mod postgres;
mod raw;
mod records;
mod trees;
mod typed;

pub use atomic::Tx;
pub use raw::PluginKv;
pub use records::{AuditRecord, SecurityEvent};
pub use trees::{JournalEntry, JournalKey, ScheduleKey, Trees, plugin_kv_name};
pub use typed::{CodecError, Key, Tree, TreeDef, TxError, TxResult, TxTree, Value, transaction};

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened.
    #[error("cannot open the guard database at {path}: {source}")]
    Open {
        /// Where it was looked for.
        path: PathBuf,
        /// Why it failed.
        source: sled::Error,
    },
    /// A read or write failed.
    #[error("database error: {0}")]
    Db(#[from] sled::Error),
    /// A flush could not run to completion.
    #[error("flushing the database failed: {0}")]
    Flush(String),
    /// PostgreSQL refused, or could not be reached.
    #[error("PostgreSQL: {0}")]
    Pg(String),
    /// A transaction used a tree it was not begun with (a bug in guard).
    #[error("tree `{0}` is not part of this transaction")]
    NotInTransaction(&'static str),
    /// A stored key or value could not be decoded (or a value encoded).
    #[error("corrupt record in tree `{tree}`: {source}")]
    Corrupt {
        /// The tree holding it.
        tree: &'static str,
        /// The decoding error.
        source: CodecError,
    },
}

/// The schema version written into `meta`; bump with a migration.
const SCHEMA_VERSION: u32 = 1;
/// Its key in [`Trees::META`].
const SCHEMA_KEY: &str = "schema";

/// A handle on the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
    /// True when this is a throw-away database (see [`Store::open_or_temporary`]).
    temporary: bool,
    /// Group commit: one flush covers every write requested before it.
    commits: Arc<GroupCommit>,
    /// Names of trees whose change other parts of guard act on (learned
    /// rules, the classifier); with PostgreSQL, also other replicas'
    /// changes. An empty name: re-read everything (changes may have been
    /// missed).
    changes: tokio::sync::broadcast::Sender<String>,
}

/// Where the trees are.
#[derive(Clone, Debug)]
enum Backend {
    Sled(sled::Db),
    Pg(Arc<postgres::Pg>),
}

/// Flush requests and the flushes that covered them. Under load many
/// workers ask for a flush at once (an accepted webhook, a journaled
/// action, a completed event); one `fsync` covers all of them, where one
/// each would cap the daemon at the disk's fsyncs per second.
#[derive(Debug, Default)]
struct GroupCommit {
    /// Tickets handed out (each after the caller's writes).
    requested: std::sync::atomic::AtomicU64,
    /// Every ticket up to this one is on disk.
    done: std::sync::atomic::AtomicU64,
    /// One flush at a time.
    flushing: tokio::sync::Mutex<()>,
}

/// sled's page cache; what does not fit is read back from disk. It is
/// most of what the daemon's memory grows by as records pile up (sled
/// counts a page at its size on disk; in memory it takes more): 64 MiB
/// left the daemon bench at 250–265 MB after a minute at 1,000 events/s,
/// 32 MiB at 205–225 MB with the same throughput; 16 MiB and less made
/// it slower.
const SLED_CACHE_BYTES: u64 = 32 << 20;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Store {
    /// Opens (creating if needed) the database in `dir`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .flush_every_ms(Some(200))
            // sled keeps pages in memory up to this (its default is 1 GiB):
            // a daemon's memory must not grow with the records it keeps.
            .cache_capacity(SLED_CACHE_BYTES)
            .open()
            .map_err(|source| StoreError::Open {
                path: dir.to_path_buf(),
                source,
            })?;
        let store = Store::with(Backend::Sled(db), false);
        store.init()?;
        Ok(store)
    }

    fn with(backend: Backend, temporary: bool) -> Store {
        Store {
            backend,
            temporary,
            commits: Arc::default(),
            changes: tokio::sync::broadcast::channel(64).0,
        }
    }

    /// Connects to PostgreSQL at `url` (several guard processes may share
    /// it), applying the schema migrations it lacks.
    pub fn connect(url: &str) -> Result<Store, StoreError> {
        Store::connect_with(url, None)
    }

    /// [`Store::connect`], trusting the certificate authority in `ca_file`
    /// (PEM) besides the public ones for the server's TLS certificate.
    pub fn connect_with(url: &str, ca_file: Option<&Path>) -> Result<Store, StoreError> {
        let pg = Arc::new(postgres::Pg::connect(url, ca_file)?);
        let store = Store::with(Backend::Pg(pg.clone()), false);
        pg.listen(store.changes.clone());
        store.init()?;
        Ok(store)
    }

    /// Whether other processes share this database (PostgreSQL): then
    /// nothing another process holds may be taken for abandoned at once.
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Pg(_))
    }

    /// Where the database is, for people (no password).
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Sled(_) if self.temporary => "a temporary database".into(),
            Backend::Sled(db) => format!("sled ({} bytes on disk)", db.size_on_disk().unwrap_or(0)),
            Backend::Pg(pg) => format!("PostgreSQL {}", pg.shown()),
        }
    }

    /// The schema migrations applied (PostgreSQL), oldest first.
    pub fn migrations(&self) -> Result<Vec<i32>, StoreError> {
        match &self.backend {
            Backend::Sled(_) => Ok(vec![SCHEMA_VERSION as i32]),
            Backend::Pg(pg) => pg.migrations(),
        }
    }

    /// Hears which trees changed (see the field's docs). With sled only
    /// this process changes them; with PostgreSQL every replica does.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.changes.subscribe()
    }

    /// Tells whoever listens — in every replica — that `def`'s tree changed.
    pub fn changed<K: ?Sized, V>(&self, def: TreeDef<K, V>) {
        match &self.backend {
            Backend::Sled(_) => {
                let _ = self.changes.send(def.name().to_string());
            }
            // Every replica hears it through LISTEN, this one included.
            Backend::Pg(pg) => {
                if let Err(e) = pg.notify(def.name()) {
                    tracing::warn!("telling other replicas `{}` changed: {e}", def.name());
                }
            }
        }
    }

    /// An in-memory database that vanishes on drop (tests, and one-shot
    /// commands when the real one is locked by a running daemon).
    pub fn temporary() -> Result<Store, StoreError> {
        let db = sled::Config::new().temporary(true).open()?;
        let store = Store::with(Backend::Sled(db), true);
        store.init()?;
        Ok(store)
    }

    /// Opens `dir`, or falls back to a temporary database when another guard
    /// process (a running daemon) holds it. Returns the store and, on
    /// fallback, the reason.
    pub fn open_or_temporary(dir: &Path) -> Result<(Store, Option<String>), StoreError> {
        match Store::open(dir) {
            Ok(s) => Ok((s, None)),
            Err(StoreError::Open {
                source: sled::Error::Io(e),
                path,
            }) if e.kind() == std::io::ErrorKind::WouldBlock || e.to_string().contains("lock") => {
                let reason = format!(
                    "{} is in use by another guard process ({e}); using a temporary database",
                    path.display()
                );
                Ok((Store::temporary()?, Some(reason)))
            }
            Err(e) => Err(e),
        }
    }

    /// Opens the database `config` names: PostgreSQL when a URL is in
    /// effect (`GUARD_STORE_URL` or `[store] url`), else sled in
    /// `data/db`. With `fallback`, a sled database another process holds
    /// gives way to a temporary one (returned with the reason); PostgreSQL
    /// is shared, so never.
    pub fn open_configured(
        config: &crate::config::StoreConfig,
        data: &Path,
        fallback: bool,
    ) -> Result<(Store, Option<String>), StoreError> {
        if let Some(url) = config.url(|v| std::env::var(v).ok()) {
            return Ok((Store::connect_with(&url, config.ca_file.as_deref())?, None));
        }
        let dir = data.join("db");
        if fallback {
            Store::open_or_temporary(&dir)
        } else {
            Ok((Store::open(&dir)?, None))
        }
    }

    /// Whether the database answers (PostgreSQL: a round trip).
    pub fn ping(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sled(_) => Ok(()),
            Backend::Pg(pg) => pg.ping(),
        }
    }

    /// Whether this is a throw-away database.
    pub fn is_temporary(&self) -> bool {
        self.temporary
    }

    fn init(&self) -> Result<(), StoreError> {
        let meta = self.tree(Trees::META)?;
        if !meta.contains_key(SCHEMA_KEY)? {
            meta.insert(SCHEMA_KEY, &SCHEMA_VERSION)?;
        }
        Ok(())
    }

    /// Opens the tree `def` (one of [`Trees`]).
    pub fn tree<K: Key + ?Sized, V: Value>(
        &self,
        def: TreeDef<K, V>,
    ) -> Result<Tree<K, V>, StoreError> {
        Ok(Tree::open(self.raw_tree(def.name())?, def))
    }

    fn raw_tree(&self, name: &str) -> Result<raw::RawTree, StoreError> {
        Ok(match &self.backend {
            Backend::Sled(db) => raw::RawTree::Sled(db.open_tree(name)?),
            Backend::Pg(pg) => raw::RawTree::Pg {
                pg: pg.clone(),
                name: Arc::from(name),
            },
        })
    }

    /// The record of `def` under `key`.
    pub fn get<K: Key + ?Sized, V: Value>(
        &self,
        def: TreeDef<K, V>,
        key: &K,
    ) -> Result<Option<V>, StoreError> {
        self.tree(def)?.get(key)
    }

    /// Writes (or replaces) the record of `def` under `key`.
    pub fn put<K: Key + ?Sized, V: Value>(
        &self,
        def: TreeDef<K, V>,
        key: &K,
        value: &V,
    ) -> Result<(), StoreError> {
        self.tree(def)?.insert(key, value)
    }

    /// Removes the record of `def` under `key`; returns whether it existed.
    pub fn remove<K: Key + ?Sized, V: Value>(
        &self,
        def: TreeDef<K, V>,
        key: &K,
    ) -> Result<bool, StoreError> {
        self.tree(def)?.remove(key)
    }

    /// Every record of `def` with its key, in key order.
    pub fn entries<K: Key + ?Sized, V: Value>(
        &self,
        def: TreeDef<K, V>,
    ) -> Result<Vec<(K::Owned, V)>, StoreError> {
        self.tree(def)?.iter().collect()
    }

    /// Every record of `def`, in key order.
    pub fn values<K: Key + ?Sized, V: Value>(
        &self,
        def: TreeDef<K, V>,
    ) -> Result<Vec<V>, StoreError> {
        self.tree(def)?.values().collect()
    }

    /// The private key-value tree of `plugin`, raw: its keys and values are
    /// the plugin's own bytes.
    pub fn plugin_kv(&self, plugin: &str) -> Result<PluginKv, StoreError> {
        Ok(PluginKv(self.raw_tree(&plugin_kv_name(plugin))?))
    }

    /// Logs a security event (a warning) and records it: the one way guard
    /// reports a denial, a refused webhook or a contained plugin failure.
    /// A failure to record is logged rather than returned, because the
    /// refusal itself must go ahead either way.
    pub fn security(&self, plugin: &str, kind: &str, subject: &str, message: &str) {
        tracing::warn!(plugin, kind, subject, "{message}");
        if let Err(e) = self.record_security(&SecurityEvent::new(plugin, kind, subject, message)) {
            tracing::error!("cannot record security event: {e}");
        }
    }

    /// Appends a security event (without logging it: see [`Store::security`]).
    pub fn record_security(&self, event: &SecurityEvent) -> Result<(), StoreError> {
        self.append(Trees::SECURITY, event)
    }

    /// The most recent security events, newest last.
    pub fn security_events(&self, limit: usize) -> Result<Vec<SecurityEvent>, StoreError> {
        self.tail(Trees::SECURITY, limit)
    }

    /// Appends an audit record.
    pub fn record_audit(&self, record: &AuditRecord) -> Result<(), StoreError> {
        self.append(Trees::AUDIT, record)
    }

    /// The most recent audit records, newest last.
    pub fn audit_records(&self, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        self.tail(Trees::AUDIT, limit)
    }

    /// Forgets audit records and security events dated before `cutoff_ms`;
    /// returns how many.
    pub fn expire_logs(&self, cutoff_ms: u64, now_ms: u64) -> Result<usize, StoreError> {
        Ok(self
            .tree(Trees::AUDIT)?
            .expire(cutoff_ms, now_ms, |r| &mut r.at_ms)?
            + self
                .tree(Trees::SECURITY)?
                .expire(cutoff_ms, now_ms, |r| &mut r.at_ms)?)
    }

    /// Appends to a log-like tree keyed by a monotonically increasing id.
    fn append<V: Value>(&self, def: TreeDef<u64, V>, value: &V) -> Result<(), StoreError> {
        let id = self.generate_id()?;
        self.tree(def)?.insert(&id, value)
    }

    /// The last `limit` records of a log-like tree, oldest first.
    fn tail<V: Value>(&self, def: TreeDef<u64, V>, limit: usize) -> Result<Vec<V>, StoreError> {
        let mut out = self.tree(def)?.last(limit)?;
        out.reverse();
        Ok(out)
    }

    /// A new unique, increasing id (across replicas with PostgreSQL).
    pub fn generate_id(&self) -> Result<u64, StoreError> {
        match &self.backend {
            Backend::Sled(db) => Ok(db.generate_id()?),
            Backend::Pg(pg) => pg.next_id(),
        }
    }

    /// Writes everything to disk without blocking the async runtime.
    ///
    /// sled 0.34's own `flush_async` deadlocks when several are awaited at
    /// once (spacejam/sled#1308, fixed only on its unreleased main); guard's
    /// load test hit it at 1,000 webhooks/s. A blocking flush on tokio's
    /// blocking pool does the same work without that bug.
    ///
    /// Flushes are grouped: a caller whose writes a flush that began after
    /// them already covered returns at once (see [`GroupCommit`]).
    pub async fn flush_async(&self) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering;
        // The ticket is taken after this caller's writes: a flush that
        // starts after reading a later ticket count covers them.
        let ticket = self.commits.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let _turn = self.commits.flushing.lock().await;
        if self.commits.done.load(Ordering::SeqCst) >= ticket {
            return Ok(());
        }
        let covers = self.commits.requested.load(Ordering::SeqCst);
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.flush())
            .await
            .map_err(|e| StoreError::Flush(e.to_string()))??;
        self.commits.done.fetch_max(covers, Ordering::SeqCst);
        Ok(())
    }

    /// Writes everything to disk now (before acknowledging work elsewhere).
    /// PostgreSQL commits writes without waiting for its disk (as sled
    /// writes to memory first); this waits until every write committed
    /// before it is on the server's disk (see `store/postgres.rs`).
    pub fn flush(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sled(db) => {
                db.flush()?;
            }
            Backend::Pg(pg) => pg.flush()?,
        }
        Ok(())
    }

    /// The sled database underneath (tests of the on-disk format).
    #[cfg(test)]
    fn sled(&self) -> &sled::Db {
        match &self.backend {
            Backend::Sled(db) => db,
            Backend::Pg(_) => panic!("not a sled store"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heal::budget::{JobBudget, RepoBudget};
    use sled::transaction::ConflictableTransactionError;

    #[test]
    fn security_events_round_trip_in_order() {
        let s = Store::temporary().unwrap();
        for i in 0..3 {
            s.security("p", "denied", "ci.cancel", &format!("m{i}"));
        }
        let ev = s.security_events(2).unwrap();
        assert_eq!(
            ev.iter().map(|e| e.message.as_str()).collect::<Vec<_>>(),
            ["m1", "m2"]
        );
        assert_eq!(
            (
                ev[0].plugin.as_str(),
                ev[0].kind.as_str(),
                ev[0].subject.as_str()
            ),
            ("p", "denied", "ci.cancel")
        );
        assert!(ev[0].at_ms > 0, "stamped with the time it was recorded");
    }

    #[test]
    fn a_typed_tree_round_trips_in_the_format_guard_always_wrote() {
        let s = Store::temporary().unwrap();
        let key = "exec\u{1f}/w\u{1f}make";
        assert!(s.get(Trees::BASELINES, key).unwrap().is_none());
        s.put(Trees::BASELINES, key, &vec![3, 5]).unwrap();
        assert_eq!(s.get(Trees::BASELINES, key).unwrap(), Some(vec![3, 5]));
        assert_eq!(
            s.entries(Trees::BASELINES).unwrap(),
            vec![(key.to_string(), vec![3, 5])]
        );
        // The same tree name, key bytes and JSON as before typed trees.
        let raw = s.sled().open_tree("baselines").unwrap();
        assert_eq!(raw.get(key).unwrap().unwrap(), b"[3,5]");
        assert!(s.remove(Trees::BASELINES, key).unwrap());
        assert!(!s.remove(Trees::BASELINES, key).unwrap());
        assert!(s.values(Trees::BASELINES).unwrap().is_empty());
    }

    #[test]
    fn keyspaces_share_a_tree_and_each_sees_only_its_records() {
        let s = Store::temporary().unwrap();
        s.put(
            Trees::JOB_BUDGETS,
            "r\u{1f}j\u{1f}c",
            &JobBudget { used: 2, at_ms: 9 },
        )
        .unwrap();
        s.put(Trees::REPO_BUDGETS, "r", &RepoBudget { recent: vec![7] })
            .unwrap();
        let raw = s.sled().open_tree("budgets").unwrap();
        assert_eq!(
            raw.get("job\u{1f}r\u{1f}j\u{1f}c").unwrap().unwrap(),
            br#"{"used":2,"at_ms":9}"#
        );
        assert_eq!(
            raw.get("repo\u{1f}r").unwrap().unwrap(),
            br#"{"recent":[7]}"#
        );
        let jobs = s.entries(Trees::JOB_BUDGETS).unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!((jobs[0].0.as_str(), jobs[0].1.used), ("r\u{1f}j\u{1f}c", 2));
        assert_eq!(s.tree(Trees::REPO_BUDGETS).unwrap().len(), 1);
        assert!(s.get(Trees::JOB_BUDGETS, "r").unwrap().is_none());
    }

    #[test]
    fn journal_keys_are_the_event_id_then_the_sequence_big_endian() {
        const BYTES: [u8; 12] = [1, 2, 3, 4, 5, 6, 7, 8, 0x0a, 0x0b, 0x0c, 0x0d];
        let k = JournalKey {
            event_id: 0x0102_0304_0506_0708,
            seq: 0x0a0b_0c0d,
        };
        assert_eq!(k.encode(), BYTES);
        assert_eq!(JournalKey::decode(&BYTES), Some(k));
        assert_eq!(JournalKey::decode(&BYTES[..8]), None);

        let s = Store::temporary().unwrap();
        let journal = s.tree(Trees::JOURNAL).unwrap();
        let first = JournalKey { seq: 0, ..k };
        let other = JournalKey {
            event_id: k.event_id + 1,
            seq: 0,
        };
        journal.insert(&k, &JournalEntry::Done(3)).unwrap();
        journal.insert(&first, &JournalEntry::Started).unwrap();
        journal
            .insert(&other, &JournalEntry::Scheduled { at_ms: 5 })
            .unwrap();
        assert_eq!(journal.get(&k).unwrap(), Some(JournalEntry::Done(3)));
        // The entries' JSON is the on-disk format of existing databases.
        let raw = s.sled().open_tree("journal").unwrap();
        assert_eq!(raw.get(BYTES).unwrap().unwrap(), br#"{"Done":3}"#);
        assert_eq!(raw.get(first.encode()).unwrap().unwrap(), br#""Started""#);
        assert_eq!(
            raw.get(other.encode()).unwrap().unwrap(),
            br#"{"Scheduled":{"at_ms":5}}"#
        );
        // An event's entries are adjacent and in order; forgetting it
        // leaves the next event's alone.
        let keys: Vec<JournalKey> = journal.iter().map(|r| r.unwrap().0).collect();
        assert_eq!(keys, [first, k, other]);
        assert_eq!(journal.forget_event(k.event_id).unwrap(), 2);
        let keys: Vec<JournalKey> = journal.iter().map(|r| r.unwrap().0).collect();
        assert_eq!(keys, [other]);
    }

    #[test]
    fn schedule_keys_are_the_fire_time_then_the_id_big_endian() {
        let k = ScheduleKey { at_ms: 1, id: 2 };
        assert_eq!(
            k.encode(),
            [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2u8]
        );
        assert_eq!(ScheduleKey::decode(&k.encode()), Some(k));
    }

    #[test]
    fn a_transaction_writes_both_trees_or_neither() {
        let s = Store::temporary().unwrap();
        let deliveries = s.tree(Trees::DELIVERIES).unwrap();
        let baselines = s.tree(Trees::BASELINES).unwrap();
        transaction(&deliveries, &baselines, |d, b| {
            d.insert("d1", &7)?;
            b.insert("k1", &vec![1])?;
            Ok(())
        })
        .unwrap();
        assert_eq!(deliveries.get("d1").unwrap(), Some(7));
        let raw = s.sled().open_tree("deliveries").unwrap();
        assert_eq!(raw.get("d1").unwrap().unwrap(), 7u64.to_be_bytes());

        let aborted = transaction(&deliveries, &baselines, |d, b| {
            assert!(d.contains_key("d1")?);
            d.remove("d1")?;
            b.insert("k2", &vec![2])?;
            Err::<(), _>(ConflictableTransactionError::Abort(StoreError::Flush(
                "stop".into(),
            )))
        });
        assert!(matches!(aborted, Err(StoreError::Flush(_))));
        assert_eq!(deliveries.get("d1").unwrap(), Some(7));
        assert!(baselines.get("k2").unwrap().is_none());
    }

    /// The promise of this module, checked: outside `store` only a plugin's
    /// own raw tree (`caps/kv.rs`) touches sled.
    #[test]
    fn only_the_store_touches_sled() {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    out.push(p);
                }
            }
        }
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        walk(&src, &mut files);
        assert!(
            files.len() > 30,
            "{} has {} files",
            src.display(),
            files.len()
        );
        let offenders: Vec<String> = files
            .iter()
            .filter(|p| {
                let rel = p.strip_prefix(&src).unwrap();
                !(rel == Path::new("store.rs")
                    || rel.starts_with("store")
                    || rel == Path::new("caps/kv.rs"))
            })
            .filter(|p| {
                let text = std::fs::read_to_string(p).unwrap();
                text.contains("sled::") || text.contains("open_tree(")
            })
            .map(|p| p.display().to_string())
            .collect();
        assert!(
            offenders.is_empty(),
            "sled used outside store: {offenders:?}"
        );
    }

    #[test]
    fn reopening_keeps_data_and_a_second_opener_falls_back() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            s.plugin_kv("a").unwrap().set(b"k", b"v").unwrap();
            s.flush().unwrap();
            let (other, why) = Store::open_or_temporary(dir.path()).unwrap();
            assert!(other.is_temporary(), "a locked database must not be shared");
            assert!(why.unwrap().contains("in use"));
        }
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.plugin_kv("a").unwrap().get(b"k").unwrap().unwrap(), b"v");
        let schema = s.sled().open_tree("meta").unwrap().get("schema").unwrap();
        assert_eq!(schema.unwrap(), SCHEMA_VERSION.to_be_bytes());
    }
}
