//! One tree of either store, as bytes: the operations typed trees
//! ([`super::typed`]) and plugins' own trees ([`super::PluginKv`]) are made
//! of, each done by sled or by PostgreSQL ([`super::postgres`]).
//!
//! The operations replicas must not interleave — insert-if-absent,
//! remove-and-return, read-modify-write, claim — are single operations
//! here (compare-and-swap in sled, one statement or row-locked transaction
//! in PostgreSQL), never a read followed by a write in the caller.

use std::sync::Arc;

use sled::IVec;

use super::StoreError;
use super::postgres::Pg;

/// A tree of one store.
#[derive(Clone)]
pub(crate) enum RawTree {
    /// A sled tree.
    Sled(sled::Tree),
    /// A keyspace of PostgreSQL's `guard_kv`.
    Pg {
        /// The database.
        pg: Arc<Pg>,
        /// The tree's name.
        name: Arc<str>,
    },
}

/// Raw records: (key, value) bytes.
pub(crate) type Rows = Vec<(Vec<u8>, Vec<u8>)>;

/// A read-modify-write of one value's bytes (`None`: absent / remove).
pub(crate) type UpdateFn<'a> = dyn FnMut(Option<&[u8]>) -> Option<Vec<u8>> + Send + 'a;

/// Whether to claim a record (given key and value): its new value if so.
pub(crate) type ClaimFn<'a> = dyn FnMut(&[u8], &[u8]) -> Option<Vec<u8>> + Send + 'a;

/// Records of a tree in key order, from either store.
pub(crate) enum RawIter {
    Sled(Box<sled::Iter>),
    Rows(std::vec::IntoIter<(Vec<u8>, Vec<u8>)>),
    Failed(Option<StoreError>),
}

type Item = Result<(IVec, IVec), StoreError>;

impl Iterator for RawIter {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        match self {
            RawIter::Sled(it) => it.next().map(|r| r.map_err(StoreError::from)),
            RawIter::Rows(it) => it.next().map(|(k, v)| Ok((IVec::from(k), IVec::from(v)))),
            RawIter::Failed(e) => e.take().map(Err),
        }
    }
}

impl DoubleEndedIterator for RawIter {
    fn next_back(&mut self) -> Option<Item> {
        match self {
            RawIter::Sled(it) => it.next_back().map(|r| r.map_err(StoreError::from)),
            RawIter::Rows(it) => it
                .next_back()
                .map(|(k, v)| Ok((IVec::from(k), IVec::from(v)))),
            RawIter::Failed(e) => e.take().map(Err),
        }
    }
}

impl RawTree {
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<IVec>, StoreError> {
        match self {
            RawTree::Sled(t) => Ok(t.get(key)?),
            RawTree::Pg { pg, name } => Ok(pg.get(name, key)?.map(IVec::from)),
        }
    }

    pub(crate) fn contains(&self, key: &[u8]) -> Result<bool, StoreError> {
        match self {
            RawTree::Sled(t) => Ok(t.contains_key(key)?),
            RawTree::Pg { .. } => Ok(self.get(key)?.is_some()),
        }
    }

    pub(crate) fn insert(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        match self {
            RawTree::Sled(t) => t.insert(key, value).map(|_| ()).map_err(Into::into),
            RawTree::Pg { pg, name } => pg.insert(name, key, value),
        }
    }

    /// Inserts unless `key` exists; returns whether it inserted.
    pub(crate) fn insert_new(&self, key: &[u8], value: &[u8]) -> Result<bool, StoreError> {
        match self {
            RawTree::Sled(t) => Ok(t
                .compare_and_swap(key, None as Option<&[u8]>, Some(value))?
                .is_ok()),
            RawTree::Pg { pg, name } => pg.insert_new(name, key, value),
        }
    }

    /// Removes `key`; returns its value.
    pub(crate) fn take(&self, key: &[u8]) -> Result<Option<IVec>, StoreError> {
        match self {
            RawTree::Sled(t) => Ok(t.remove(key)?),
            RawTree::Pg { pg, name } => Ok(pg.take(name, key)?.map(IVec::from)),
        }
    }

    /// The records whose keys start with `prefix`, in key order.
    pub(crate) fn scan(&self, prefix: &[u8]) -> RawIter {
        match self {
            RawTree::Sled(t) if prefix.is_empty() => RawIter::Sled(Box::new(t.iter())),
            RawTree::Sled(t) => RawIter::Sled(Box::new(t.scan_prefix(prefix))),
            RawTree::Pg { pg, name } => match pg.scan(name, prefix, false, None) {
                Ok(rows) => RawIter::Rows(rows.into_iter()),
                Err(e) => RawIter::Failed(Some(e)),
            },
        }
    }

    /// The first `limit` records whose keys start with `prefix`, in order
    /// (without reading the rest from PostgreSQL).
    pub(crate) fn head(
        &self,
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<(IVec, IVec)>, StoreError> {
        match self {
            RawTree::Sled(_) => self.scan(prefix).take(limit).collect(),
            RawTree::Pg { pg, name } => Ok(pg
                .scan(name, prefix, false, Some(limit))?
                .into_iter()
                .map(|(k, v)| (IVec::from(k), IVec::from(v)))
                .collect()),
        }
    }

    /// The last `limit` records whose keys start with `prefix`, last first.
    pub(crate) fn tail(
        &self,
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<(IVec, IVec)>, StoreError> {
        match self {
            RawTree::Sled(_) => self.scan(prefix).rev().take(limit).collect(),
            RawTree::Pg { pg, name } => Ok(pg
                .scan(name, prefix, true, Some(limit))?
                .into_iter()
                .map(|(k, v)| (IVec::from(k), IVec::from(v)))
                .collect()),
        }
    }

    /// How many keys start with `prefix`.
    pub(crate) fn count(&self, prefix: &[u8]) -> Result<usize, StoreError> {
        match self {
            RawTree::Sled(t) if prefix.is_empty() => Ok(t.len()),
            RawTree::Sled(t) => Ok(t.scan_prefix(prefix).count()),
            RawTree::Pg { pg, name } => pg.count(name, prefix),
        }
    }

    /// Removes every key starting with `prefix`; returns how many.
    pub(crate) fn remove_prefix(&self, prefix: &[u8]) -> Result<usize, StoreError> {
        match self {
            RawTree::Sled(t) => {
                let mut n = 0;
                for item in t.scan_prefix(prefix) {
                    let (k, _) = item?;
                    t.remove(k)?;
                    n += 1;
                }
                Ok(n)
            }
            RawTree::Pg { pg, name } => pg.remove_prefix(name, prefix),
        }
    }

    /// Removes these keys; returns how many there were.
    pub(crate) fn remove_keys(&self, keys: &[Vec<u8>]) -> Result<usize, StoreError> {
        match self {
            RawTree::Sled(t) => {
                let mut n = 0;
                for k in keys {
                    n += usize::from(t.remove(k)?.is_some());
                }
                Ok(n)
            }
            RawTree::Pg { pg, name } => pg.remove_keys(name, keys),
        }
    }

    /// Replaces the value under `key` by `f(it)` (`None`: removed) as one
    /// step no concurrent writer can split; `f` may run more than once.
    /// Returns the value written.
    pub(crate) fn update(
        &self,
        key: &[u8],
        f: &mut UpdateFn<'_>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            RawTree::Sled(t) => loop {
                let old = t.get(key)?;
                let new = f(old.as_deref());
                if t.compare_and_swap(key, old, new.as_deref())?.is_ok() {
                    return Ok(new);
                }
            },
            RawTree::Pg { pg, name } => pg.update(name, key, f),
        }
    }

    /// Takes up to `limit` records under `prefix`, in key order, that `f`
    /// (given key and value) claims by returning the new value; a record another process is
    /// claiming at the same moment is skipped, never taken twice.
    pub(crate) fn claim(
        &self,
        prefix: &[u8],
        limit: usize,
        f: &mut ClaimFn<'_>,
    ) -> Result<Vec<(IVec, IVec)>, StoreError> {
        match self {
            RawTree::Sled(t) => {
                let mut out = Vec::new();
                for item in self.scan(prefix) {
                    if out.len() >= limit {
                        break;
                    }
                    let (k, v) = item?;
                    if let Some(new) = f(&k, &v)
                        && t.compare_and_swap(&k, Some(&v), Some(new.as_slice()))?
                            .is_ok()
                    {
                        out.push((k, IVec::from(new)));
                    }
                }
                Ok(out)
            }
            RawTree::Pg { pg, name } => Ok(pg
                .claim(name, prefix, limit, f)?
                .into_iter()
                .map(|(k, v)| (IVec::from(k), IVec::from(v)))
                .collect()),
        }
    }
}

/// A plugin's private tree (`guard:plugin/kv`): its keys and values are the
/// plugin's own bytes.
#[derive(Clone)]
pub struct PluginKv(pub(super) RawTree);

impl std::fmt::Debug for PluginKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PluginKv")
    }
}

impl PluginKv {
    /// The value under `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.0.get(key)?.map(|v| v.to_vec()))
    }

    /// Writes `value` under `key`.
    pub fn set(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.0.insert(key, value)
    }

    /// Removes `key`.
    pub fn delete(&self, key: &[u8]) -> Result<(), StoreError> {
        self.0.take(key).map(|_| ())
    }

    /// Up to `limit` keys starting with `prefix`, in order.
    pub fn keys(&self, prefix: &[u8], limit: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        self.0
            .scan(prefix)
            .take(limit)
            .map(|r| r.map(|(k, _)| k.to_vec()))
            .collect()
    }
}
