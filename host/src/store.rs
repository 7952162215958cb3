//! guard's embedded database (sled): one place that knows the trees, their
//! key layouts and value encodings, so no other module touches raw bytes.
//!
//! Trees: `kv/<plugin-id>` (plugins' private namespaces), `security`
//! (denials and other security events), `audit` (every host action), `meta`
//! (schema version); the typed trees of `heal` and `learn` (`breakers`,
//! `budgets`, `stats`, `rules`, `candidates`, `rule_stats`); and the
//! daemon's own (`queue`, `deliveries`, `jobs`, `dead`, `journal`,
//! `schedule`, `pending`), whose layouts live in `daemon::queue`.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

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
    /// A stored value could not be decoded.
    #[error("corrupt record in tree `{tree}`: {source}")]
    Corrupt {
        /// The tree holding it.
        tree: &'static str,
        /// The decoding error.
        source: serde_json::Error,
    },
}

/// The schema version written into `meta`; bump with a migration.
const SCHEMA_VERSION: u32 = 1;

/// A handle on the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    db: sled::Db,
    /// True when this is a throw-away database (see [`Store::open_or_temporary`]).
    temporary: bool,
}

/// A security event: a denial or a contained plugin failure.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SecurityEvent {
    /// Unix time in milliseconds.
    pub at_ms: u64,
    /// The plugin concerned.
    pub plugin: String,
    /// What happened, e.g. `denied`, `trap`, `timeout`.
    pub kind: String,
    /// The host function or limit involved, e.g. `ci.rerun-job`.
    pub subject: String,
    /// A sentence for people.
    pub message: String,
}

/// An audit record: one action a plugin asked the host to take.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuditRecord {
    /// Unix time in milliseconds.
    pub at_ms: u64,
    /// The plugin that asked.
    pub plugin: String,
    /// The host function, e.g. `ci.rerun-job`.
    pub action: String,
    /// Its target and arguments, for people.
    pub detail: String,
    /// `done`, `dry-run`, `denied` or `failed: …`.
    pub outcome: String,
}

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
            .open()
            .map_err(|source| StoreError::Open {
                path: dir.to_path_buf(),
                source,
            })?;
        let store = Store {
            db,
            temporary: false,
        };
        store.init()?;
        Ok(store)
    }

    /// An in-memory database that vanishes on drop (tests, and one-shot
    /// commands when the real one is locked by a running daemon).
    pub fn temporary() -> Result<Store, StoreError> {
        let db = sled::Config::new().temporary(true).open()?;
        let store = Store {
            db,
            temporary: true,
        };
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

    /// Whether this is a throw-away database.
    pub fn is_temporary(&self) -> bool {
        self.temporary
    }

    fn init(&self) -> Result<(), StoreError> {
        let meta = self.db.open_tree("meta")?;
        if meta.get("schema")?.is_none() {
            meta.insert("schema", &SCHEMA_VERSION.to_be_bytes())?;
        }
        Ok(())
    }

    /// The private key-value tree of `plugin`.
    pub fn plugin_kv(&self, plugin: &str) -> Result<sled::Tree, StoreError> {
        Ok(self.db.open_tree(format!("kv/{plugin}"))?)
    }

    /// Appends a security event.
    pub fn record_security(&self, event: &SecurityEvent) -> Result<(), StoreError> {
        self.append("security", event)
    }

    /// The most recent security events, newest last.
    pub fn security_events(&self, limit: usize) -> Result<Vec<SecurityEvent>, StoreError> {
        self.tail("security", limit)
    }

    /// Appends an audit record.
    pub fn record_audit(&self, record: &AuditRecord) -> Result<(), StoreError> {
        self.append("audit", record)
    }

    /// The most recent audit records, newest last.
    pub fn audit_records(&self, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        self.tail("audit", limit)
    }

    /// Appends to a log-like tree keyed by a monotonically increasing id.
    fn append<T: Serialize>(&self, tree: &'static str, value: &T) -> Result<(), StoreError> {
        let id = self.db.generate_id()?;
        let bytes =
            serde_json::to_vec(value).map_err(|source| StoreError::Corrupt { tree, source })?;
        self.db.open_tree(tree)?.insert(id.to_be_bytes(), bytes)?;
        Ok(())
    }

    fn tail<T: for<'de> Deserialize<'de>>(
        &self,
        tree: &'static str,
        limit: usize,
    ) -> Result<Vec<T>, StoreError> {
        let t = self.db.open_tree(tree)?;
        let mut out = Vec::new();
        for item in t.iter().rev().take(limit) {
            let (_, v) = item?;
            out.push(
                serde_json::from_slice(&v)
                    .map_err(|source| StoreError::Corrupt { tree, source })?,
            );
        }
        out.reverse();
        Ok(out)
    }

    /// Reads a JSON record from `tree` (one of the typed trees: `breakers`,
    /// `budgets`, `stats`).
    pub fn get_json<T: for<'de> Deserialize<'de>>(
        &self,
        tree: &'static str,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        match self.db.open_tree(tree)?.get(key.as_bytes())? {
            Some(v) => Ok(Some(
                serde_json::from_slice(&v)
                    .map_err(|source| StoreError::Corrupt { tree, source })?,
            )),
            None => Ok(None),
        }
    }

    /// Writes a JSON record to `tree`.
    pub fn put_json<T: Serialize>(
        &self,
        tree: &'static str,
        key: &str,
        value: &T,
    ) -> Result<(), StoreError> {
        let bytes =
            serde_json::to_vec(value).map_err(|source| StoreError::Corrupt { tree, source })?;
        self.db.open_tree(tree)?.insert(key.as_bytes(), bytes)?;
        Ok(())
    }

    /// A new unique, increasing id.
    pub fn generate_id(&self) -> Result<u64, StoreError> {
        Ok(self.db.generate_id()?)
    }

    /// Removes a record from `tree`; returns whether it existed.
    pub fn remove_json(&self, tree: &'static str, key: &str) -> Result<bool, StoreError> {
        Ok(self.db.open_tree(tree)?.remove(key.as_bytes())?.is_some())
    }

    /// Every record of `tree`, in key order.
    pub fn all_json<T: for<'de> Deserialize<'de>>(
        &self,
        tree: &'static str,
    ) -> Result<Vec<(String, T)>, StoreError> {
        let mut out = Vec::new();
        for item in self.db.open_tree(tree)?.iter() {
            let (k, v) = item?;
            let value = serde_json::from_slice(&v)
                .map_err(|source| StoreError::Corrupt { tree, source })?;
            out.push((String::from_utf8_lossy(&k).into_owned(), value));
        }
        Ok(out)
    }

    /// A raw tree, for modules that own a key layout of their own (the
    /// daemon's queue, journal and schedule) and need multi-tree
    /// transactions.
    pub fn tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        Ok(self.db.open_tree(name)?)
    }

    /// Writes everything to disk without blocking the async runtime.
    ///
    /// sled 0.34's own `flush_async` deadlocks when several are awaited at
    /// once (spacejam/sled#1308, fixed only on its unreleased main); guard's
    /// load test hit it at 1,000 webhooks/s. A blocking flush on tokio's
    /// blocking pool does the same work without that bug.
    pub async fn flush_async(&self) -> Result<(), StoreError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.flush())
            .await
            .map_err(|e| StoreError::Flush(e.to_string()))??;
        Ok(())
    }

    /// Writes everything to disk now (before acknowledging work elsewhere).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_events_round_trip_in_order() {
        let s = Store::temporary().unwrap();
        for i in 0..3 {
            s.record_security(&SecurityEvent {
                at_ms: i,
                plugin: "p".into(),
                kind: "denied".into(),
                subject: "ci.cancel".into(),
                message: format!("m{i}"),
            })
            .unwrap();
        }
        let ev = s.security_events(2).unwrap();
        assert_eq!(
            ev.iter().map(|e| e.message.as_str()).collect::<Vec<_>>(),
            ["m1", "m2"]
        );
    }

    #[test]
    fn reopening_keeps_data_and_a_second_opener_falls_back() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            s.plugin_kv("a").unwrap().insert("k", "v").unwrap();
            s.flush().unwrap();
            let (other, why) = Store::open_or_temporary(dir.path()).unwrap();
            assert!(other.is_temporary(), "a locked database must not be shared");
            assert!(why.unwrap().contains("in use"));
        }
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.plugin_kv("a").unwrap().get("k").unwrap().unwrap(), "v");
    }
}
