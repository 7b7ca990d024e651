//! cadre-store: everything cadre remembers, in one SQLite file.
//!
//! This crate owns all of cadre's SQL: the schema (the top-level `migrations/`, embedded as
//! [`MIGRATOR`] and applied by [`Store::open`]) and the [`Store`] handle with its records:
//! jobs ([`NewJob`], [`JobRecord`]) with their queue lease, per-file subtasks ([`NewSubtask`],
//! [`SubtaskRecord`]), model-call attempts ([`NewAttempt`], [`AttemptFinish`],
//! [`AttemptRecord`], [`AttemptStatRow`]) and the append-only event log ([`NewEvent`],
//! `cadre_types::JobEvent`).
//!
//! # Design decisions
//!
//! * **Compare-and-set, not read-modify-write.** Every state change is one
//!   `UPDATE ... WHERE id = ? AND status IN (...)` that reports whether it changed a row, so
//!   two writers racing on one row cannot both win and nobody has to hold a transaction open
//!   across a read. SQLite fails a deferred transaction's read-to-write lock upgrade with
//!   `SQLITE_BUSY` regardless of `busy_timeout`; single-statement writes never upgrade.
//! * **Leases instead of locks.** A daemon claims a job by writing its name and an expiry
//!   into the job row (one `UPDATE ... WHERE id = (SELECT ... LIMIT 1) RETURNING`) and keeps
//!   it by heartbeating. Nothing is held open while the job runs, so a runner that crashes,
//!   hangs or loses its disk simply stops renewing, and once the lease expires another runner
//!   claims the job and resumes it (its attempts left "running" are marked "interrupted").
//!   The old owner learns it lost the job from [`Store::heartbeat_job`] returning false. The
//!   same scheme carries over to PostgreSQL (`FOR UPDATE SKIP LOCKED`) for several machines.
//! * **Runtime-checked queries** (`sqlx::query(..).bind(..)`), so building needs no database
//!   and no offline query data. Ids are TEXT, timestamps INTEGER unix seconds, enums their
//!   `as_str()` strings, JSON TEXT.
//! * **Connection settings on [`SqliteConnectOptions`]** (WAL, `synchronous = NORMAL`,
//!   `busy_timeout`, `foreign_keys`), so every pooled connection gets them; a small pool,
//!   because SQLite serialises writers anyway.
#![warn(missing_docs)]

mod attempt_batch;
mod attempts;
mod calls;
mod convert;
mod error;
mod events;
mod jobs;
mod overview;
mod subtasks;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

pub use attempt_batch::{AttemptWrite, AttemptWritten};
pub use attempts::{AttemptFinish, AttemptRecord, AttemptStatRow, NewAttempt, SubtaskOutcomeStats};
pub use calls::{CallRecord, NewCall};
pub use error::{Error, Result};
pub use events::NewEvent;
pub use jobs::{JobRecord, NewJob, ResultWriter};
pub use overview::{CallCostRow, JobProgressRow};
pub use subtasks::{NewSubtask, SubtaskRecord, SubtaskUpdate, SubtaskWriter};

/// The schema, embedded from the workspace's top-level `migrations/` directory.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// How long a connection waits for another writer before failing with `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections in a file-backed pool. SQLite has one writer at a time; a few connections
/// let readers (status pages, event streams) proceed beside it.
const MAX_CONNECTIONS: u32 = 5;

/// How many times [`Store::open`] tries to connect and migrate. Several processes opening a
/// fresh file at once race to switch it to WAL (which SQLite may refuse with `SQLITE_BUSY`
/// without waiting) and to apply the migrations (the loser's `CREATE TABLE` fails); a retry
/// finds the work done.
const OPEN_TRIES: u32 = 10;

/// A handle on the store. Cheap to clone: clones share one connection pool.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
}

impl Store {
    /// Opens the database at `path`, creating the file and its parent directories if
    /// needed, with WAL, `synchronous = NORMAL`, a 10 s busy timeout and foreign keys on
    /// every connection, and applies pending migrations.
    ///
    /// Several stores (in one process or several) may open the same file at once.
    pub async fn open(path: &Path) -> Result<Store> {
        Self::open_with_busy_timeout(path, BUSY_TIMEOUT).await
    }

    /// [`Store::open`] with another wait for a busy database before a
    /// statement fails with `SQLITE_BUSY` (tests use a short one to make a
    /// busy store fail fast).
    #[tracing::instrument(skip_all, fields(path = %path.display()), err)]
    pub async fn open_with_busy_timeout(path: &Path, busy_timeout: Duration) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|source| Error::CreateDir {
                    path: dir.to_path_buf(),
                    source,
                })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(busy_timeout)
            .foreign_keys(true);
        let mut tries = 0;
        loop {
            tries += 1;
            match Self::connect_and_migrate(options.clone()).await {
                Ok(store) => return Ok(store),
                Err(err) if tries < OPEN_TRIES && is_open_race(&err) => {
                    tracing::debug!(error = %err, tries, "opening the store raced another opener; retrying");
                    tokio::time::sleep(Duration::from_millis(20 * u64::from(tries))).await;
                }
                Err(err) => return Err(err),
            }
        }
    }

    async fn connect_and_migrate(options: SqliteConnectOptions) -> Result<Store> {
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await?;
        let store = Store { pool };
        if let Err(err) = MIGRATOR.run(&store.pool).await {
            store.pool.close().await;
            return Err(err.into());
        }
        Ok(store)
    }

    /// Opens a fresh, private in-memory database (one connection, kept for the pool's
    /// lifetime) with the schema applied. For unit tests only: nothing survives the store.
    pub async fn open_in_memory() -> Result<Store> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")?
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Store { pool })
    }

    /// Closes the pool, waiting for checked-out connections to come back. Clones of this
    /// store fail afterwards.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Whether an error from opening is the transient result of another opener working on the
/// same fresh file: a busy/locked database, or a migration statement that failed because the
/// other opener applied it first.
fn is_open_race(err: &Error) -> bool {
    match err {
        Error::Database(sqlx::Error::Database(db)) => is_busy(db.as_ref()),
        Error::Migrate(
            sqlx::migrate::MigrateError::Execute(_)
            | sqlx::migrate::MigrateError::ExecuteMigration(..),
        ) => true,
        _ => false,
    }
}

/// `SQLITE_BUSY` or `SQLITE_LOCKED`, extended codes included.
pub(crate) fn is_busy(db: &dyn sqlx::error::DatabaseError) -> bool {
    const SQLITE_BUSY: i32 = 5;
    const SQLITE_LOCKED: i32 = 6;
    db.code()
        .and_then(|code| code.parse::<i32>().ok())
        .is_some_and(|code| matches!(code & 0xff, SQLITE_BUSY | SQLITE_LOCKED))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn in_memory_store_has_the_schema() {
        let store = Store::open_in_memory().await.unwrap();
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
             AND name NOT LIKE '_sqlx%' ORDER BY name",
        )
        .fetch_all(&store.pool)
        .await
        .unwrap();
        assert_eq!(
            tables,
            ["attempts", "events", "jobs", "model_calls", "subtasks"]
        );
    }

    #[tokio::test]
    async fn file_store_uses_wal_and_foreign_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("nested/dir/cadre.db"))
            .await
            .unwrap();
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(fk, 1);
        let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(sync, 1, "NORMAL");
        let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(busy, 10_000);
    }
}
