//! The PostgreSQL store: the same trees as sled, one table, so several
//! guard replicas can share one database.
//!
//! Every tree is a keyspace of table `guard_kv (tree, key, value)`; `bytea`
//! compares byte by byte as sled does, so key order — and with it "oldest
//! first" in the queue and "soonest first" in the schedule — is the same
//! on both stores. Ids come from sequence `guard_ids`. What replicas must
//! not do twice is done in one statement or one transaction here:
//! [`Pg::claim`] (`FOR UPDATE SKIP LOCKED`: two replicas never take the
//! same record), [`Pg::update`] (read-modify-write of one record under its
//! row lock: budgets and breakers add up across replicas), [`Pg::insert_new`]
//! (insert-if-absent), [`Pg::take`] (remove and return: one replica
//! settles a pending heal) and serializable two-tree transactions.
//!
//! guard's store interface is synchronous (sled answers from memory). Here
//! each call is a round trip, run on a small runtime of its own; a caller
//! on tokio's multi-threaded runtime waits in `block_in_place`, so the
//! worker hands its other tasks on rather than stalling them.
//!
//! Durability follows sled's: a write is committed at once but without
//! waiting for the server's disk (`synchronous_commit = off`, so a guard
//! replica killed mid-way loses nothing committed — only a crash of the
//! database server itself could), and [`Pg::flush`] — called where sled
//! flushes: before a webhook is acknowledged, around journaled actions,
//! after a job record — commits one transaction that waits for the disk,
//! which covers every earlier commit (the WAL is flushed in order). A
//! commit per write that waits for the disk cost guard four fifths of its
//! throughput.
//!
//! Migrations are versioned (`guard_migrations`) and applied at start-up
//! under an advisory lock, so replicas starting together apply each once.

use std::future::Future;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

mod atomic;
mod listen;
mod tls;

pub(super) use atomic::PgTx;

use super::StoreError;
use super::raw::Rows;

/// The schema, one migration per entry: (version, what it does, SQL).
/// Append only: a database remembers which versions it has.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "trees as keyspaces of one table; ids from a sequence",
        "CREATE TABLE guard_kv (
             tree  text  NOT NULL,
             key   bytea NOT NULL,
             value bytea NOT NULL,
             PRIMARY KEY (tree, key)
         );
         CREATE SEQUENCE guard_ids;",
    ),
    (
        2,
        "ids handed out in blocks of 64, one block per process at a time",
        // Consecutive nextvals are 64 apart, so blocks never overlap, and
        // every block lies past the ids handed out one by one before.
        "ALTER SEQUENCE guard_ids INCREMENT BY 64",
    ),
];

/// The ids one `nextval` reserves (migration 2).
const ID_BLOCK: u64 = 64;

/// Any number: the advisory lock that serialises migrations across replicas.
const MIGRATION_LOCK: i64 = 0x6775_6172_645f_6d67;

/// The channel replicas hear each other's changes on (see [`Pg::notify`]).
pub(super) const CHANNEL: &str = "guard_changes";

/// A connection pool to guard's database.
pub struct Pg {
    pool: Pool,
    /// Set when connections use TLS (the listener's too).
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    /// The block of ids this process holds: the next one, and the end.
    ids: std::sync::Mutex<(u64, u64)>,
    config: tokio_postgres::Config,
    runtime: Runtime,
    /// The URL without its password, for messages.
    shown: String,
}

impl std::fmt::Debug for Pg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pg").field("url", &self.shown).finish()
    }
}

/// The store's own runtime: it drives the connections whatever the caller
/// runs on. Shut down in the background on drop, because a runtime may not
/// be dropped where blocking is not allowed (inside another runtime).
struct Runtime(Option<tokio::runtime::Runtime>);

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl Runtime {
    fn handle(&self) -> Option<&tokio::runtime::Handle> {
        self.0.as_ref().map(|r| r.handle())
    }
}

/// The error with its causes: a TLS handshake that failed says why (an
/// unknown issuer, a name mismatch) only in its source.
fn pg_err(e: impl std::error::Error) -> StoreError {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let cause = s.to_string();
        if !message.contains(&cause) {
            message.push_str(": ");
            message.push_str(&cause);
        }
        source = s.source();
    }
    StoreError::Pg(message)
}

/// A serialization failure or deadlock: the transaction is to be retried.
fn is_conflict(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    )
}

/// The first key after every key starting with `prefix` (`None`: no bound).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Hides the password of a `postgres://` URL or a `key=value` string.
fn shown(url: &str) -> String {
    if !url.contains("://") {
        return url
            .split_whitespace()
            .map(|kv| match kv.split_once('=') {
                Some(("password", _)) => "password=***".to_string(),
                _ => kv.to_string(),
            })
            .collect::<Vec<_>>()
            .join(" ");
    }
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// The statements both plain calls and transactions make.
const GET: &str = "SELECT value FROM guard_kv WHERE tree = $1 AND key = $2";
const UPSERT: &str = "INSERT INTO guard_kv (tree, key, value) VALUES ($1, $2, $3) \
     ON CONFLICT (tree, key) DO UPDATE SET value = EXCLUDED.value";
const DELETE: &str = "DELETE FROM guard_kv WHERE tree = $1 AND key = $2";

/// Rows of one keyspace read (and locked) at once by [`Pg::claim`], at
/// least: the ones at the head another replica holds are read too.
const CLAIM_PAGE: i64 = 16;

impl Pg {
    /// Connects to `url` (a `postgres://` URL or `key=value` string) —
    /// over TLS with `sslmode=require` or a `ca_file` (see `tls.rs`) — and
    /// applies the migrations this database lacks.
    pub fn connect(url: &str, ca_file: Option<&std::path::Path>) -> Result<Pg, StoreError> {
        let shown = shown(url);
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Pg(format!("{shown} is not a PostgreSQL URL: {e}")))?;
        // See the module docs: flushes are explicit, as with sled.
        let options = [config.get_options(), Some("-c synchronous_commit=off")]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        config.options(options);
        if config.get_application_name().is_none() {
            config.application_name("guard");
        }
        let tls = tls::connector(&config, ca_file)?;
        // Wrapped at once: dropped on an error path inside an async caller,
        // a bare runtime would panic.
        let runtime = Runtime(Some(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("guard-pg")
                .enable_all()
                .build()
                .map_err(|e| StoreError::Pg(format!("starting the database runtime: {e}")))?,
        ));
        let manager_config = || ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match &tls {
            Some(t) => Manager::from_config(config.clone(), t.clone(), manager_config()),
            None => Manager::from_config(config.clone(), NoTls, manager_config()),
        };
        let pool = Pool::builder(manager)
            .max_size(16)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .create_timeout(Some(Duration::from_secs(10)))
            .wait_timeout(Some(Duration::from_secs(30)))
            .build()
            .map_err(pg_err)?;
        let pg = Pg {
            pool,
            tls,
            ids: std::sync::Mutex::new((0, 0)),
            config,
            runtime,
            shown,
        };
        pg.migrate().map_err(|e| match e {
            StoreError::Pg(m) => StoreError::Pg(format!("{}: {m}", pg.shown)),
            other => other,
        })?;
        Ok(pg)
    }

    /// The URL without its password.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Runs `fut` on the store's runtime and waits for it (see the module
    /// docs for why waiting is done this way).
    fn block<F>(&self, fut: F) -> Result<F::Output, StoreError>
    where
        F: Future + Send,
        F::Output: Send,
    {
        let handle = self
            .runtime
            .handle()
            .ok_or_else(|| StoreError::Pg("the database runtime is gone".into()))?;
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                Ok(tokio::task::block_in_place(|| handle.block_on(fut)))
            }
            // A single-threaded runtime cannot lend its thread: wait on
            // another one (it stalls that runtime for the round trip).
            Ok(_) => std::thread::scope(|s| {
                s.spawn(|| handle.block_on(fut))
                    .join()
                    .map_err(|_| StoreError::Pg("a database call panicked".into()))
            }),
            Err(_) => Ok(handle.block_on(fut)),
        }
    }

    /// Runs `f` with a pooled connection.
    fn with<T, F>(
        &self,
        f: impl FnOnce(deadpool_postgres::Object) -> F + Send,
    ) -> Result<T, StoreError>
    where
        F: Future<Output = Result<T, tokio_postgres::Error>> + Send,
        T: Send,
    {
        self.block(async {
            let client = self.pool.get().await.map_err(pg_err)?;
            f(client).await.map_err(pg_err)
        })?
    }

    fn migrate(&self) -> Result<(), StoreError> {
        self.block(async {
            let mut client = self.pool.get().await.map_err(pg_err)?;
            let tx = client.transaction().await.map_err(pg_err)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                .await
                .map_err(pg_err)?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS guard_migrations (
                     version    integer PRIMARY KEY,
                     name       text NOT NULL,
                     applied_at timestamptz NOT NULL DEFAULT now()
                 )",
            )
            .await
            .map_err(pg_err)?;
            let row = tx
                .query_one("SELECT coalesce(max(version), 0) FROM guard_migrations", &[])
                .await
                .map_err(pg_err)?;
            let have: i32 = row.get(0);
            let newest = MIGRATIONS.last().map_or(0, |m| m.0);
            if have > newest {
                return Err(StoreError::Pg(format!(
                    "the database's schema is version {have}, newer than this guard's ({newest}): upgrade guard"
                )));
            }
            for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > have) {
                tx.batch_execute(sql)
                    .await
                    .map_err(|e| StoreError::Pg(format!("migration {version} ({name}): {e}")))?;
                tx.execute(
                    "INSERT INTO guard_migrations (version, name) VALUES ($1, $2)",
                    &[version, name],
                )
                .await
                .map_err(pg_err)?;
            }
            tx.commit().await.map_err(pg_err)
        })?
    }

    /// The schema versions applied, oldest first.
    pub fn migrations(&self) -> Result<Vec<i32>, StoreError> {
        self.with(|c| async move {
            let rows = c
                .query("SELECT version FROM guard_migrations ORDER BY version", &[])
                .await?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    /// Waits until every commit made before it is on the server's disk: a
    /// transaction that waits for its own commit record, after all theirs.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.with(|c| async move {
            c.batch_execute(
                "BEGIN; SET LOCAL synchronous_commit = on; SELECT pg_current_xact_id(); COMMIT;",
            )
            .await
        })
    }

    /// One round trip.
    pub fn ping(&self) -> Result<(), StoreError> {
        self.with(|c| async move { c.execute("SELECT 1", &[]).await.map(|_| ()) })
    }

    /// A new id, unique across every replica and increasing within this
    /// one: a round trip reserves a block of [`ID_BLOCK`] (one per id cost
    /// a tenth of the daemon's throughput). Across replicas ids interleave
    /// by block, so "oldest first" is by block between replicas.
    pub fn next_id(&self) -> Result<u64, StoreError> {
        let mut ids = match self.ids.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if ids.0 >= ids.1 {
            let start = self.reserve_ids()?;
            *ids = (start, start + ID_BLOCK);
        }
        let id = ids.0;
        ids.0 += 1;
        Ok(id)
    }

    fn reserve_ids(&self) -> Result<u64, StoreError> {
        self.with(|c| async move {
            let row = c
                .query_one(&c.prepare_cached("SELECT nextval('guard_ids')").await?, &[])
                .await?;
            Ok(row.get::<_, i64>(0) as u64)
        })
    }

    pub(super) fn get(&self, tree: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.with(|c| async move {
            let row = c
                .query_opt(&c.prepare_cached(GET).await?, &[&tree, &key])
                .await?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    pub(super) fn insert(&self, tree: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.with(|c| async move {
            c.execute(&c.prepare_cached(UPSERT).await?, &[&tree, &key, &value])
                .await
                .map(|_| ())
        })
    }

    /// Inserts unless the key exists; returns whether it inserted.
    pub(super) fn insert_new(
        &self,
        tree: &str,
        key: &[u8],
        value: &[u8],
    ) -> Result<bool, StoreError> {
        self.with(|c| async move {
            let n = c
                .execute(
                    &c.prepare_cached(
                        "INSERT INTO guard_kv (tree, key, value) VALUES ($1, $2, $3)
                     ON CONFLICT (tree, key) DO NOTHING",
                    )
                    .await?,
                    &[&tree, &key, &value],
                )
                .await?;
            Ok(n == 1)
        })
    }

    /// Removes a record and returns its value.
    pub(super) fn take(&self, tree: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.with(|c| async move {
            let row = c
                .query_opt(
                    &c.prepare_cached(
                        "DELETE FROM guard_kv WHERE tree = $1 AND key = $2 RETURNING value",
                    )
                    .await?,
                    &[&tree, &key],
                )
                .await?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    /// The records whose keys start with `prefix`, in key order (or the
    /// reverse), at most `limit`.
    pub(super) fn scan(
        &self,
        tree: &str,
        prefix: &[u8],
        reverse: bool,
        limit: Option<usize>,
    ) -> Result<Rows, StoreError> {
        let end = prefix_end(prefix);
        let order = if reverse { "DESC" } else { "ASC" };
        let limit = limit.map_or(i64::MAX, |l| l.min(i64::MAX as usize) as i64);
        let sql = format!(
            "SELECT key, value FROM guard_kv
             WHERE tree = $1 AND key >= $2 AND ($3::bytea IS NULL OR key < $3)
             ORDER BY key {order} LIMIT $4"
        );
        self.with(|c| async move {
            let rows = c
                .query(
                    &c.prepare_cached(&sql).await?,
                    &[&tree, &prefix, &end, &limit],
                )
                .await?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    }

    /// How many records have keys starting with `prefix`.
    pub(super) fn count(&self, tree: &str, prefix: &[u8]) -> Result<usize, StoreError> {
        let end = prefix_end(prefix);
        self.with(|c| async move {
            let row = c
                .query_one(
                    &c.prepare_cached(
                        "SELECT count(*) FROM guard_kv
                     WHERE tree = $1 AND key >= $2 AND ($3::bytea IS NULL OR key < $3)",
                    )
                    .await?,
                    &[&tree, &prefix, &end],
                )
                .await?;
            Ok(row.get::<_, i64>(0) as usize)
        })
    }

    /// Removes the records whose keys start with `prefix`; returns how many.
    pub(super) fn remove_prefix(&self, tree: &str, prefix: &[u8]) -> Result<usize, StoreError> {
        let end = prefix_end(prefix);
        self.with(|c| async move {
            let n = c
                .execute(
                    &c.prepare_cached(
                        "DELETE FROM guard_kv
                     WHERE tree = $1 AND key >= $2 AND ($3::bytea IS NULL OR key < $3)",
                    )
                    .await?,
                    &[&tree, &prefix, &end],
                )
                .await?;
            Ok(n as usize)
        })
    }

    /// Removes these keys; returns how many existed.
    pub(super) fn remove_keys(&self, tree: &str, keys: &[Vec<u8>]) -> Result<usize, StoreError> {
        if keys.is_empty() {
            return Ok(0);
        }
        self.with(|c| async move {
            let n = c
                .execute(
                    &c.prepare_cached("DELETE FROM guard_kv WHERE tree = $1 AND key = ANY($2)")
                        .await?,
                    &[&tree, &keys],
                )
                .await?;
            Ok(n as usize)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends_bound_exactly_the_keys_with_the_prefix() {
        assert_eq!(prefix_end(b"job\x1f"), Some(b"job\x20".to_vec()));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
        assert_eq!(prefix_end(b""), None);
    }

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            shown("postgres://guard:s3cret@db:5432/guard"),
            "postgres://guard:***@db:5432/guard"
        );
        assert_eq!(
            shown("postgres://guard@db/guard"),
            "postgres://guard@db/guard"
        );
        assert_eq!(
            shown("host=db user=guard password=x"),
            "host=db user=guard password=***"
        );
    }
}
