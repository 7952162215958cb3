//! What replicas must not interleave, each in one transaction: a
//! read-modify-write under the row's lock ([`Pg::update`]), claims that skip
//! what another replica holds ([`Pg::claim`]) and serializable two-tree
//! transactions ([`Pg::transaction`], [`PgTx`]).

use std::future::Future;
use std::time::Duration;

use sled::transaction::ConflictableTransactionError;
use tokio_postgres::IsolationLevel;

use super::super::StoreError;
use super::super::raw::{ClaimFn, Rows, UpdateFn};
use super::super::typed::TxResult;
use super::{CLAIM_PAGE, DELETE, GET, Pg, UPSERT, is_conflict, pg_err, prefix_end};

impl Pg {
    /// Replaces the record under `key` by `f(its value)` (`None` removes
    /// it) while holding its row lock, so concurrent updates from several
    /// replicas all count. `f` may run more than once.
    pub(in crate::store) fn update(
        &self,
        tree: &str,
        key: &[u8],
        f: &mut UpdateFn<'_>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.block(async {
            loop {
                let mut client = self.pool.get().await.map_err(pg_err)?;
                let tx = client.transaction().await.map_err(pg_err)?;
                let old: Option<Vec<u8>> = tx
                    .query_opt(
                        &tx.prepare_cached(
                            "SELECT value FROM guard_kv WHERE tree = $1 AND key = $2 FOR UPDATE",
                        )
                        .await
                        .map_err(pg_err)?,
                        &[&tree, &key],
                    )
                    .await
                    .map_err(pg_err)?
                    .map(|r| r.get(0));
                let new = f(old.as_deref());
                let written = match (&old, &new) {
                    (Some(_), Some(v)) => tx
                        .execute(
                            &tx.prepare_cached(
                                "UPDATE guard_kv SET value = $3 WHERE tree = $1 AND key = $2",
                            )
                            .await
                            .map_err(pg_err)?,
                            &[&tree, &key, v],
                        )
                        .await
                        .map_err(pg_err)?,
                    (Some(_), None) => tx
                        .execute(
                            &tx.prepare_cached(DELETE).await.map_err(pg_err)?,
                            &[&tree, &key],
                        )
                        .await
                        .map_err(pg_err)?,
                    // Absent rows cannot be locked: a concurrent first
                    // insert shows as nothing inserted, and the loop reads
                    // the winner's record.
                    (None, Some(v)) => tx
                        .execute(
                            &tx.prepare_cached(
                                "INSERT INTO guard_kv (tree, key, value) VALUES ($1, $2, $3)
                             ON CONFLICT (tree, key) DO NOTHING",
                            )
                            .await
                            .map_err(pg_err)?,
                            &[&tree, &key, v],
                        )
                        .await
                        .map_err(pg_err)?,
                    (None, None) => return Ok(None),
                };
                if written == 0 {
                    continue;
                }
                tx.commit().await.map_err(pg_err)?;
                return Ok(new);
            }
        })?
    }

    /// Takes up to `limit` records of the keyspace `prefix`, oldest key
    /// first, that `f` claims (it returns the record's new value), skipping
    /// records another replica holds locked right now; `f` runs once per
    /// record looked at. Returns the claimed keys and their new values.
    pub(in crate::store) fn claim(
        &self,
        tree: &str,
        prefix: &[u8],
        limit: usize,
        f: &mut ClaimFn<'_>,
    ) -> Result<Rows, StoreError> {
        let end = prefix_end(prefix);
        let page_size = CLAIM_PAGE.max(limit.saturating_mul(2).min(1024) as i64);
        self.block(async {
            let mut client = self.pool.get().await.map_err(pg_err)?;
            let tx = client.transaction().await.map_err(pg_err)?;
            let mut claimed = Vec::new();
            let mut after: Option<Vec<u8>> = None;
            while claimed.len() < limit {
                let rows = tx
                    .query(
                        &tx.prepare_cached(
                            "SELECT key, value FROM guard_kv
                         WHERE tree = $1 AND key >= $2 AND ($3::bytea IS NULL OR key < $3)
                           AND ($4::bytea IS NULL OR key > $4)
                         ORDER BY key LIMIT $5
                         FOR UPDATE SKIP LOCKED",
                        )
                        .await
                        .map_err(pg_err)?,
                        &[&tree, &prefix, &end, &after, &page_size],
                    )
                    .await
                    .map_err(pg_err)?;
                let page = rows.len();
                for row in rows {
                    let key: Vec<u8> = row.get(0);
                    let value: Vec<u8> = row.get(1);
                    if claimed.len() < limit
                        && let Some(new) = f(&key, &value)
                    {
                        tx.execute(
                            &tx.prepare_cached(
                                "UPDATE guard_kv SET value = $3 WHERE tree = $1 AND key = $2",
                            )
                            .await
                            .map_err(pg_err)?,
                            &[&tree, &key, &new],
                        )
                        .await
                        .map_err(pg_err)?;
                        claimed.push((key.clone(), new));
                    }
                    after = Some(key);
                }
                if (page as i64) < page_size {
                    break;
                }
            }
            tx.commit().await.map_err(pg_err)?;
            Ok(claimed)
        })?
    }

    /// Runs `f` in one serializable transaction, again from the start when
    /// PostgreSQL reports a conflict with a concurrent one.
    pub(in crate::store) fn transaction<R>(
        &self,
        f: impl Fn(&PgTx<'_>) -> TxResult<R>,
    ) -> Result<R, StoreError> {
        let mut conflicts = 0u32;
        loop {
            let mut client = self.block(self.pool.get())?.map_err(pg_err)?;
            let tx = self
                .block(
                    client
                        .build_transaction()
                        .isolation_level(IsolationLevel::Serializable)
                        .start(),
                )?
                .map_err(pg_err)?;
            let ptx = PgTx { pg: self, tx };
            let conflict = match f(&ptx) {
                Ok(r) => match self.block(ptx.tx.commit())? {
                    Ok(()) => return Ok(r),
                    Err(e) if is_conflict(&e) => true,
                    Err(e) => return Err(pg_err(e)),
                },
                Err(ConflictableTransactionError::Abort(e)) => {
                    self.block(ptx.tx.rollback())?.map_err(pg_err)?;
                    return Err(e);
                }
                Err(ConflictableTransactionError::Conflict) => {
                    // Rolled back when the transaction is dropped.
                    drop(ptx);
                    true
                }
                Err(ConflictableTransactionError::Storage(e)) => return Err(StoreError::Db(e)),
            };
            if conflict {
                conflicts += 1;
                if conflicts > 50 {
                    return Err(StoreError::Pg(
                        "a transaction kept conflicting with concurrent ones".into(),
                    ));
                }
                std::thread::sleep(Duration::from_millis(u64::from(conflicts.min(20))));
            }
        }
    }
}

/// One transaction of [`Pg::transaction`].
pub(in crate::store) struct PgTx<'c> {
    pg: &'c Pg,
    tx: deadpool_postgres::Transaction<'c>,
}

impl PgTx<'_> {
    fn run<T: Send>(
        &self,
        fut: impl Future<Output = Result<T, tokio_postgres::Error>> + Send,
    ) -> TxResult<T> {
        match self.pg.block(fut) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) if is_conflict(&e) => Err(ConflictableTransactionError::Conflict),
            Ok(Err(e)) => Err(ConflictableTransactionError::Abort(pg_err(e))),
            Err(e) => Err(ConflictableTransactionError::Abort(e)),
        }
    }

    pub(in crate::store) fn get(&self, tree: &str, key: &[u8]) -> TxResult<Option<Vec<u8>>> {
        self.run(async {
            let row = self
                .tx
                .query_opt(&self.tx.prepare_cached(GET).await?, &[&tree, &key])
                .await?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    pub(in crate::store) fn insert(&self, tree: &str, key: &[u8], value: &[u8]) -> TxResult<()> {
        self.run(async {
            self.tx
                .execute(
                    &self.tx.prepare_cached(UPSERT).await?,
                    &[&tree, &key, &value],
                )
                .await
                .map(|_| ())
        })
    }

    pub(in crate::store) fn remove(&self, tree: &str, key: &[u8]) -> TxResult<()> {
        self.run(async {
            self.tx
                .execute(&self.tx.prepare_cached(DELETE).await?, &[&tree, &key])
                .await
                .map(|_| ())
        })
    }
}
