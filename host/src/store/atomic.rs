//! Writes to several trees that land together or not at all
//! ([`Store::atomically`]), for what two trees ([`super::transaction`]) do
//! not cover: settling a heal takes its pending record and counts its
//! outcome in the breakers, the strategy statistics and the rule's
//! statistics, and a process killed half-way must leave either the
//! pending record or every count.

use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};

use std::sync::Arc;

use super::postgres::PgTx;
use super::raw::RawTree;
use super::typed::{Key, TreeDef, TxHandle, TxResult, TxTree, Value};
use super::{Store, StoreError};

/// The trees of one [`Store::atomically`] transaction.
pub struct Tx<'t> {
    /// The trees it was begun with, each once.
    names: &'t [&'static str],
    inner: Inner<'t>,
}

enum Inner<'t> {
    /// One overlay per name, in the order of `names`.
    Sled(&'t [TransactionalTree]),
    Pg(&'t PgTx<'t>),
}

impl std::fmt::Debug for Tx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tx")
    }
}

impl Tx<'_> {
    /// `def`'s records inside this transaction. `def`'s tree must be one of
    /// those the transaction was begun with; another aborts it.
    pub fn tree<K: Key + ?Sized, V: Value>(
        &self,
        def: TreeDef<K, V>,
    ) -> TxResult<TxTree<'_, K, V>> {
        // Refused on both backends alike, though PostgreSQL's transaction
        // would cover any table: what passes on one must pass on the other.
        let i = self.names.iter().position(|n| *n == def.name()).ok_or(
            ConflictableTransactionError::Abort(StoreError::NotInTransaction(def.name())),
        )?;
        let tx = match &self.inner {
            Inner::Sled(trees) => TxHandle::Sled(&trees[i]),
            Inner::Pg(tx) => TxHandle::Pg(tx, def.name()),
        };
        Ok(TxTree { tx, def })
    }
}

impl Store {
    /// Runs `f` on the trees named `names` (by [`TreeDef::name`]) atomically:
    /// every write of `f` or none. As with [`super::transaction`], `f` may
    /// run more than once (on a conflict), so it must not act outside the
    /// trees.
    pub fn atomically<R>(
        &self,
        names: &[&'static str],
        f: impl Fn(&Tx<'_>) -> TxResult<R>,
    ) -> Result<R, StoreError> {
        let trees = names
            .iter()
            .map(|n| Ok((*n, self.raw_tree(n)?)))
            .collect::<Result<Vec<(&'static str, RawTree)>, StoreError>>()?;
        let trees: Vec<(&'static str, &RawTree)> = trees.iter().map(|(n, t)| (*n, t)).collect();
        run(&trees, f)
    }
}

/// Runs `f` on `trees` (each with its name) in one transaction of their
/// store: [`Store::atomically`] and the two-tree [`super::transaction`]
/// both come here.
pub(super) fn run<R>(
    trees: &[(&'static str, &RawTree)],
    f: impl Fn(&Tx<'_>) -> TxResult<R>,
) -> Result<R, StoreError> {
    // A tree twice (two keyspaces of one tree) would be two overlays of it
    // in sled, each unaware of the other's writes.
    let mut names: Vec<&'static str> = Vec::with_capacity(trees.len());
    let mut unique: Vec<&RawTree> = Vec::with_capacity(trees.len());
    for (n, t) in trees {
        if !names.contains(n) {
            names.push(n);
            unique.push(t);
        }
    }
    let names = &names[..];
    let sled: Option<Vec<sled::Tree>> = unique
        .iter()
        .map(|t| match t {
            RawTree::Sled(t) => Some(t.clone()),
            RawTree::Pg { .. } => None,
        })
        .collect();
    if let Some(sled) = sled {
        return sled[..]
            .transaction(|views| {
                f(&Tx {
                    names,
                    inner: Inner::Sled(views),
                })
            })
            .map_err(|e| match e {
                TransactionError::Abort(e) => e,
                TransactionError::Storage(e) => StoreError::Db(e),
            });
    }
    match unique.first() {
        Some(RawTree::Pg { pg, .. })
            if unique
                .iter()
                .all(|t| matches!(t, RawTree::Pg { pg: p, .. } if Arc::ptr_eq(p, pg))) =>
        {
            pg.transaction(|tx| {
                f(&Tx {
                    names,
                    inner: Inner::Pg(tx),
                })
            })
        }
        _ => Err(StoreError::Pg(
            "a transaction across two different stores".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Trees;

    #[test]
    fn an_aborted_transaction_writes_to_none_of_its_trees() {
        let store = Store::temporary().unwrap();
        let names = [Trees::STATS.name(), Trees::BREAKERS.name()];
        let r: Result<(), StoreError> = store.atomically(&names, |tx| {
            tx.tree(Trees::STATS)?.insert("a", &Default::default())?;
            Err(ConflictableTransactionError::Abort(StoreError::Pg(
                "changed my mind".into(),
            )))
        });
        assert!(r.is_err());
        assert!(store.get(Trees::STATS, "a").unwrap().is_none());

        store
            .atomically(&names, |tx| {
                tx.tree(Trees::STATS)?.insert("a", &Default::default())?;
                tx.tree(Trees::BREAKERS)?.remove("b")?;
                Ok(())
            })
            .unwrap();
        assert!(store.get(Trees::STATS, "a").unwrap().is_some());

        let outside = store.atomically(&names, |tx| tx.tree(Trees::QUEUE).map(|_| ()));
        assert!(
            matches!(outside, Err(StoreError::NotInTransaction("queue"))),
            "a tree not named is refused"
        );
    }
}
