//! The machinery of typed trees: a [`TreeDef`] names a tree and fixes how
//! its keys ([`Key`]) and values ([`Value`]) are encoded; a [`Tree`] is that
//! tree opened; [`transaction`] writes two trees atomically. The
//! definitions themselves — every tree guard has — are in
//! [`super::Trees`]; nothing outside `store` sees raw key or value bytes
//! (the plugins' own `kv/<plugin>` trees aside, whose bytes are theirs).

use std::fmt;
use std::marker::PhantomData;

use sled::IVec;
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use super::StoreError;
use super::postgres::PgTx;
use super::raw::{RawIter, RawTree};

/// Why a stored key or value could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// A JSON value that does not parse as its type (or would not encode).
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// A fixed-width value of the wrong width.
    #[error("a value of {found} bytes where {expected} were expected")]
    Length {
        /// The width of the encoding.
        expected: usize,
        /// The width found.
        found: usize,
    },
    /// A key that does not have this tree's layout.
    #[error("a key of {len} bytes that does not have this tree's layout")]
    Key {
        /// Its length.
        len: usize,
    },
}

/// How a key is laid out in its tree. Layouts are chosen so that byte order
/// is the order guard iterates in (big-endian numbers).
pub trait Key {
    /// The key as read back from the tree.
    type Owned;
    /// The key's bytes.
    fn encode(&self) -> IVec;
    /// The key from its bytes; `None` when they do not have this layout.
    fn decode(bytes: &[u8]) -> Option<Self::Owned>;
}

/// How a value is stored.
pub trait Value: Sized {
    /// The value's bytes.
    fn encode(&self) -> Result<Vec<u8>, CodecError>;
    /// The value from its bytes.
    fn decode(bytes: &[u8]) -> Result<Self, CodecError>;
}

/// Text keys (names, ids, `\u{1f}`-joined parts): their UTF-8 bytes.
impl Key for str {
    type Owned = String;

    fn encode(&self) -> IVec {
        IVec::from(self.as_bytes())
    }

    /// Lossy, as guard always read them: every key it writes is UTF-8.
    fn decode(bytes: &[u8]) -> Option<String> {
        Some(String::from_utf8_lossy(bytes).into_owned())
    }
}

/// Ids (from [`sled::Db::generate_id`], so increasing): 8 bytes big-endian.
impl Key for u64 {
    type Owned = u64;

    fn encode(&self) -> IVec {
        IVec::from(&self.to_be_bytes()[..])
    }

    fn decode(bytes: &[u8]) -> Option<u64> {
        <[u8; 8]>::try_from(bytes).ok().map(u64::from_be_bytes)
    }
}

/// Times in milliseconds: 8 bytes big-endian.
impl Value for u64 {
    fn encode(&self) -> Result<Vec<u8>, CodecError> {
        Ok(self.to_be_bytes().to_vec())
    }

    /// A value of another width reads as 0 (the epoch) rather than failing:
    /// the only such values are receipt times, which are only compared with
    /// a pruning cutoff, and a damaged one is best pruned (as guard always
    /// did) rather than left to stop the pruning.
    fn decode(bytes: &[u8]) -> Result<u64, CodecError> {
        Ok(<[u8; 8]>::try_from(bytes)
            .map(u64::from_be_bytes)
            .unwrap_or(0))
    }
}

/// Small numbers (the schema version): 4 bytes big-endian.
impl Value for u32 {
    fn encode(&self) -> Result<Vec<u8>, CodecError> {
        Ok(self.to_be_bytes().to_vec())
    }

    fn decode(bytes: &[u8]) -> Result<u32, CodecError> {
        <[u8; 4]>::try_from(bytes)
            .map(u32::from_be_bytes)
            .map_err(|_| CodecError::Length {
                expected: 4,
                found: bytes.len(),
            })
    }
}

/// A tree's name and layout: which sled tree, how its keys and values are
/// encoded, and — for a tree holding two kinds of record — the key prefix
/// of one kind (its *keyspace*): keys are written with the prefix and
/// iteration sees only that kind.
pub struct TreeDef<K: ?Sized, V> {
    name: &'static str,
    prefix: &'static str,
    // `fn(&K) -> V`: the definition owns neither, and stays `Copy`, `Send`
    // and `Sync` whatever they are.
    types: PhantomData<fn(&K) -> V>,
}

impl<K: ?Sized, V> TreeDef<K, V> {
    /// A whole tree.
    pub const fn new(name: &'static str) -> Self {
        Self::keyspace(name, "")
    }

    /// The records of `name` whose keys start with `prefix`.
    pub const fn keyspace(name: &'static str, prefix: &'static str) -> Self {
        TreeDef {
            name,
            prefix,
            types: PhantomData,
        }
    }

    /// The sled tree's name.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// The key prefix of this keyspace (empty for a whole tree).
    pub const fn prefix(&self) -> &'static str {
        self.prefix
    }
}

// Written out rather than derived: a derive would ask `K: Clone` (never
// true of `str`) although only a name and a prefix are copied.
impl<K: ?Sized, V> Clone for TreeDef<K, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K: ?Sized, V> Copy for TreeDef<K, V> {}

impl<K: ?Sized, V> fmt::Debug for TreeDef<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TreeDef")
            .field("name", &self.name)
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl<K: Key + ?Sized, V: Value> TreeDef<K, V> {
    /// The bytes of `key`: the keyspace prefix, then the key's layout.
    pub(super) fn key_bytes(&self, key: &K) -> IVec {
        let k = key.encode();
        if self.prefix.is_empty() {
            return k;
        }
        let mut v = Vec::with_capacity(self.prefix.len() + k.len());
        v.extend_from_slice(self.prefix.as_bytes());
        v.extend_from_slice(&k);
        IVec::from(v)
    }

    fn corrupt(&self, source: CodecError) -> StoreError {
        StoreError::Corrupt {
            tree: self.name,
            source,
        }
    }

    fn decode_key(&self, raw: &[u8]) -> Result<K::Owned, StoreError> {
        raw.strip_prefix(self.prefix.as_bytes())
            .and_then(K::decode)
            .ok_or_else(|| self.corrupt(CodecError::Key { len: raw.len() }))
    }

    fn encode_value(&self, value: &V) -> Result<Vec<u8>, StoreError> {
        value.encode().map_err(|e| self.corrupt(e))
    }

    fn decode_value(&self, raw: &[u8]) -> Result<V, StoreError> {
        V::decode(raw).map_err(|e| self.corrupt(e))
    }
}

/// An open tree, typed by its [`TreeDef`]; cheap to clone.
pub struct Tree<K: ?Sized, V> {
    raw: RawTree,
    def: TreeDef<K, V>,
}

impl<K: ?Sized, V> Clone for Tree<K, V> {
    fn clone(&self) -> Self {
        Tree {
            raw: self.raw.clone(),
            def: self.def,
        }
    }
}

impl<K: ?Sized, V> fmt::Debug for Tree<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tree").field("def", &self.def).finish()
    }
}

impl<K: Key + ?Sized, V: Value> Tree<K, V> {
    /// `def` on a tree of one of the stores.
    pub(super) fn open(raw: RawTree, def: TreeDef<K, V>) -> Self {
        Tree { raw, def }
    }

    /// The record under `key`.
    pub fn get(&self, key: &K) -> Result<Option<V>, StoreError> {
        match self.raw.get(&self.def.key_bytes(key))? {
            Some(raw) => Ok(Some(self.def.decode_value(&raw)?)),
            None => Ok(None),
        }
    }

    /// Whether there is a record under `key`.
    pub fn contains_key(&self, key: &K) -> Result<bool, StoreError> {
        self.raw.contains(&self.def.key_bytes(key))
    }

    /// Writes (or replaces) the record under `key`.
    pub fn insert(&self, key: &K, value: &V) -> Result<(), StoreError> {
        let bytes = self.def.encode_value(value)?;
        self.raw.insert(&self.def.key_bytes(key), &bytes)
    }

    /// Writes the record under `key` unless there is one; returns whether
    /// it wrote. Of several processes trying at once, exactly one does.
    pub fn insert_new(&self, key: &K, value: &V) -> Result<bool, StoreError> {
        let bytes = self.def.encode_value(value)?;
        self.raw.insert_new(&self.def.key_bytes(key), &bytes)
    }

    /// Removes the record under `key`; returns whether there was one.
    pub fn remove(&self, key: &K) -> Result<bool, StoreError> {
        Ok(self.raw.take(&self.def.key_bytes(key))?.is_some())
    }

    /// Removes the record under `key` and returns it: of several processes
    /// taking it at once, one gets it.
    pub fn take(&self, key: &K) -> Result<Option<V>, StoreError> {
        match self.raw.take(&self.def.key_bytes(key))? {
            Some(raw) => Ok(Some(self.def.decode_value(&raw)?)),
            None => Ok(None),
        }
    }

    /// Replaces the record under `key` by `f(the record)` (`None` removes
    /// it) so that concurrent updates, from this process or another replica,
    /// all count. `f` may run more than once. Returns what was written.
    pub fn update(
        &self,
        key: &K,
        mut f: impl FnMut(Option<V>) -> Option<V> + Send,
    ) -> Result<Option<V>, StoreError> {
        let def = self.def;
        // Errors inside the closure are kept aside: the raw layer only
        // knows bytes.
        let mut failed: Option<StoreError> = None;
        let written = self.raw.update(&def.key_bytes(key), &mut |old| {
            let old = match old.map(|b| def.decode_value(b)).transpose() {
                Ok(v) => v,
                Err(e) => {
                    failed = Some(e);
                    return old.map(<[u8]>::to_vec);
                }
            };
            match f(old).map(|v| def.encode_value(&v)).transpose() {
                Ok(new) => {
                    failed = None;
                    new
                }
                Err(e) => {
                    failed = Some(e);
                    None
                }
            }
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
        written.map(|b| def.decode_value(&b)).transpose()
    }

    /// Takes up to `limit` records, in key order, that `f` claims (given
    /// the key, it changes the record in place and returns true); records whose bytes
    /// do not decode are left alone. A record is never claimed by two
    /// processes at once (see [`RawTree::claim`]).
    pub fn claim(
        &self,
        limit: usize,
        mut f: impl FnMut(&K::Owned, &mut V) -> bool + Send,
    ) -> Result<Vec<(K::Owned, V)>, StoreError> {
        let def = self.def;
        let claimed = self
            .raw
            .claim(def.prefix.as_bytes(), limit, &mut |key, bytes| {
                let key = def.decode_key(key).ok()?;
                let mut v = def.decode_value(bytes).ok()?;
                if !f(&key, &mut v) {
                    return None;
                }
                def.encode_value(&v).ok()
            })?;
        claimed
            .into_iter()
            .map(|(k, v)| Ok((def.decode_key(&k)?, def.decode_value(&v)?)))
            .collect()
    }

    /// The raw records of this keyspace, in key order.
    fn raw(&self) -> RawIter {
        self.raw.scan(self.def.prefix.as_bytes())
    }

    /// Every record with its key, in key order (`.rev()` for newest first
    /// in trees keyed by id).
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = Result<(K::Owned, V), StoreError>> {
        let def = self.def;
        self.raw()
            .map(move |item| -> Result<(K::Owned, V), StoreError> {
                let (k, v) = item?;
                Ok((def.decode_key(&k)?, def.decode_value(&v)?))
            })
    }

    /// Every record without its key, in key order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = Result<V, StoreError>> {
        let def = self.def;
        self.raw().map(move |item| -> Result<V, StoreError> {
            let (_, v) = item?;
            def.decode_value(&v)
        })
    }

    /// The last `limit` records (newest first in trees keyed by id),
    /// without reading the others.
    pub fn last(&self, limit: usize) -> Result<Vec<V>, StoreError> {
        self.raw
            .tail(self.def.prefix.as_bytes(), limit)?
            .iter()
            .map(|(_, v)| self.def.decode_value(v))
            .collect()
    }

    /// The first `limit` records with their keys, in key order (oldest
    /// first in trees keyed by id), without reading the others.
    pub fn head(&self, limit: usize) -> Result<Vec<(K::Owned, V)>, StoreError> {
        self.raw
            .head(self.def.prefix.as_bytes(), limit)?
            .iter()
            .map(|(k, v)| Ok((self.def.decode_key(k)?, self.def.decode_value(v)?)))
            .collect()
    }

    /// The record with the smallest key.
    pub fn first(&self) -> Result<Option<(K::Owned, V)>, StoreError> {
        Ok(self.head(1)?.into_iter().next())
    }

    /// Number of records (0 when the store cannot say: logged).
    pub fn len(&self) -> usize {
        match self.raw.count(self.def.prefix.as_bytes()) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!("counting `{}`: {e}", self.def.name);
                0
            }
        }
    }

    /// Whether there is no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes every record for which `doomed` says so; returns how many.
    /// Records are removed by their stored key bytes, never re-encoded ones.
    pub fn remove_where(&self, mut doomed: impl FnMut(&V) -> bool) -> Result<usize, StoreError> {
        let mut keys = Vec::new();
        for item in self.raw() {
            let (k, v) = item?;
            if doomed(&self.def.decode_value(&v)?) {
                keys.push(k.to_vec());
            }
        }
        self.raw.remove_keys(&keys)
    }

    /// Removes every record whose date (`date(record)`, ms) is before
    /// `cutoff_ms`; returns how many. Each removal is conditional on the
    /// record as read, so one a concurrent writer renewed meanwhile is
    /// judged again rather than lost. A record dated 0, written before its
    /// kind carried a date, is dated `now_ms` instead: it ages from here,
    /// neither kept for ever nor dropped at once. Records that do not
    /// decode are left alone.
    pub fn expire(
        &self,
        cutoff_ms: u64,
        now_ms: u64,
        date: impl Fn(&mut V) -> &mut u64 + Send + Sync,
    ) -> Result<usize, StoreError> {
        let def = self.def;
        let mut due = Vec::new();
        for item in self.raw() {
            let (k, v) = item?;
            if let Ok(mut v) = def.decode_value(&v) {
                let at = *date(&mut v);
                if at == 0 || at < cutoff_ms {
                    due.push(k.to_vec());
                }
            }
        }
        let mut removed = 0;
        for k in due {
            let mut gone = false;
            self.raw.update(&k, &mut |old| {
                gone = false;
                let bytes = old?;
                let Ok(mut v) = def.decode_value(bytes) else {
                    return Some(bytes.to_vec());
                };
                let at = date(&mut v);
                if *at == 0 {
                    *at = now_ms;
                    return Some(def.encode_value(&v).unwrap_or_else(|_| bytes.to_vec()));
                }
                if *at < cutoff_ms {
                    gone = true;
                    return None;
                }
                Some(bytes.to_vec())
            })?;
            removed += usize::from(gone);
        }
        Ok(removed)
    }

    /// Removes every record whose key (after the keyspace prefix) starts
    /// with `prefix`, a leading part of a key layout; returns how many.
    pub(super) fn remove_prefix(&self, prefix: &[u8]) -> Result<usize, StoreError> {
        let mut full = Vec::with_capacity(self.def.prefix.len() + prefix.len());
        full.extend_from_slice(self.def.prefix.as_bytes());
        full.extend_from_slice(prefix);
        self.raw.remove_prefix(&full)
    }
}

/// What a [`transaction`]'s closure returns: `?` works on a [`TxTree`]'s
/// results, and a conflict retries the closure.
pub type TxResult<T> = Result<T, TxError>;

/// Why a [`transaction`]'s closure stopped: `TxError::Abort(e)` ends the
/// transaction with `e`, writing nothing.
pub type TxError = ConflictableTransactionError<StoreError>;

/// Where a [`TxTree`]'s reads and writes go.
pub(super) enum TxHandle<'t> {
    Sled(&'t TransactionalTree),
    Pg(&'t PgTx<'t>, &'t str),
}

/// One tree inside a [`transaction`].
pub struct TxTree<'t, K: ?Sized, V> {
    pub(super) tx: TxHandle<'t>,
    pub(super) def: TreeDef<K, V>,
}

impl<K: ?Sized, V> fmt::Debug for TxTree<'_, K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TxTree").field("def", &self.def).finish()
    }
}

impl<K: Key + ?Sized, V: Value> TxTree<'_, K, V> {
    fn get_raw(&self, key: &K) -> TxResult<Option<IVec>> {
        let k = self.def.key_bytes(key);
        match &self.tx {
            TxHandle::Sled(tx) => Ok(tx.get(k)?),
            TxHandle::Pg(tx, name) => Ok(tx.get(name, &k)?.map(IVec::from)),
        }
    }

    /// The record under `key`, as this transaction sees it.
    pub fn get(&self, key: &K) -> TxResult<Option<V>> {
        match self.get_raw(key)? {
            Some(raw) => Ok(Some(
                self.def
                    .decode_value(&raw)
                    .map_err(ConflictableTransactionError::Abort)?,
            )),
            None => Ok(None),
        }
    }

    /// Whether there is a record under `key` (its value is not decoded).
    pub fn contains_key(&self, key: &K) -> TxResult<bool> {
        Ok(self.get_raw(key)?.is_some())
    }

    /// Writes (or replaces) the record under `key`.
    pub fn insert(&self, key: &K, value: &V) -> TxResult<()> {
        let bytes = self
            .def
            .encode_value(value)
            .map_err(ConflictableTransactionError::Abort)?;
        let k = self.def.key_bytes(key);
        match &self.tx {
            TxHandle::Sled(tx) => {
                tx.insert(k, bytes)?;
                Ok(())
            }
            TxHandle::Pg(tx, name) => tx.insert(name, &k, &bytes),
        }
    }

    /// Removes the record under `key`.
    pub fn remove(&self, key: &K) -> TxResult<()> {
        let k = self.def.key_bytes(key);
        match &self.tx {
            TxHandle::Sled(tx) => {
                tx.remove(k)?;
                Ok(())
            }
            TxHandle::Pg(tx, name) => tx.remove(name, &k),
        }
    }
}

/// Runs `f` on `a` and `b` atomically: every write of `f` or none. The
/// store may run `f` more than once (on a conflict with a concurrent
/// writer), so it must not have side effects outside the two trees.
pub fn transaction<K1, V1, K2, V2, R>(
    a: &Tree<K1, V1>,
    b: &Tree<K2, V2>,
    f: impl Fn(&TxTree<'_, K1, V1>, &TxTree<'_, K2, V2>) -> TxResult<R>,
) -> Result<R, StoreError>
where
    K1: Key + ?Sized,
    V1: Value,
    K2: Key + ?Sized,
    V2: Value,
{
    super::atomic::run(&[(a.def.name(), &a.raw), (b.def.name(), &b.raw)], |tx| {
        f(&tx.tree(a.def)?, &tx.tree(b.def)?)
    })
}
