//! Opening a store on either backend: the connection settings, the pool and
//! the migrations of each.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sqlx::Executor;
use sqlx::any::{AnyPoolOptions, install_default_drivers};

use crate::backend::{Backend, StoreLocation};
use crate::{Error, Result, Store};

/// The SQLite schema, embedded from the workspace's top-level `migrations/`
/// directory (its files only; subdirectories are other backends').
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// The PostgreSQL schema, embedded from `migrations/postgres/`: the same
/// versions and names as the SQLite files, in PostgreSQL's dialect.
pub static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// WAL pages written before a commit checkpoints them (32 MiB of 4 KiB pages).
const WAL_CHECKPOINT_PAGES: u32 = 8_000;

/// How long a connection waits for another writer before failing with `SQLITE_BUSY`.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections in a file-backed pool. SQLite has one writer at a time; a few connections
/// let readers (status pages, event streams) proceed beside it.
const SQLITE_MAX_CONNECTIONS: u32 = 5;

/// Connections per process on PostgreSQL, where writers do run side by side.
const POSTGRES_MAX_CONNECTIONS: u32 = 10;

/// How long a PostgreSQL pool waits for a connection before failing.
const POSTGRES_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// How many times opening a SQLite file tries to connect and migrate. Several processes
/// opening a fresh file at once race to switch it to WAL (which SQLite may refuse with
/// `SQLITE_BUSY` without waiting) and to apply the migrations (the loser's `CREATE TABLE`
/// fails); a retry finds the work done.
const OPEN_TRIES: u32 = 10;

impl Store {
    /// Opens the SQLite database at `path`, creating the file and its parent directories if
    /// needed, with WAL, `synchronous = NORMAL`, a 10 s busy timeout and foreign keys on
    /// every connection, and applies pending migrations.
    ///
    /// Several stores (in one process or several) may open the same file at once.
    pub async fn open(path: &Path) -> Result<Store> {
        Self::open_with_busy_timeout(path, BUSY_TIMEOUT).await
    }

    /// Opens the store at `location` (a SQLite file or a PostgreSQL URL; see
    /// [`StoreLocation::parse`]) and applies pending migrations.
    pub async fn connect(location: &StoreLocation) -> Result<Store> {
        match location {
            StoreLocation::Sqlite(path) => Self::open(path).await,
            StoreLocation::Postgres(url) => Self::open_postgres(url).await,
        }
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
        let url = format!("sqlite://{}?mode=rwc", encode_path(path));
        let location = Arc::new(StoreLocation::sqlite(path));
        let mut tries = 0;
        loop {
            tries += 1;
            let pool = sqlite_pool_options(busy_timeout, SQLITE_MAX_CONNECTIONS);
            // The group commit's own connection (see `Store::group_commit`).
            let group_commit = sqlite_pool_options(busy_timeout, 1);
            match Self::connect_and_migrate(
                pool,
                Some(group_commit),
                &url,
                Backend::Sqlite,
                &location,
            )
            .await
            {
                Ok(store) => return Ok(store),
                Err(err) if tries < OPEN_TRIES && is_open_race(&err) => {
                    tracing::debug!(error = %err, tries, "opening the store raced another opener; retrying");
                    tokio::time::sleep(Duration::from_millis(20 * u64::from(tries))).await;
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Opens the PostgreSQL database at `url` and applies pending migrations
    /// (under PostgreSQL's advisory lock, so daemons starting together apply
    /// them once).
    #[tracing::instrument(skip_all, err)]
    pub async fn open_postgres(url: &str) -> Result<Store> {
        install_default_drivers();
        let location = Arc::new(StoreLocation::Postgres(url.to_owned()));
        let pool = AnyPoolOptions::new()
            .max_connections(POSTGRES_MAX_CONNECTIONS)
            .acquire_timeout(POSTGRES_ACQUIRE_TIMEOUT)
            // A daemon frozen mid-transaction (SIGSTOP, a suspended VM) holds
            // its locks (a job's event-stream lock, its rows) until the server
            // ends the transaction: the daemon that takes its job over waits
            // at most this long, not until TCP gives up. No transaction of the
            // store waits between its statements (crate::fence).
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute("SET idle_in_transaction_session_timeout = '10s'")
                        .await?;
                    Ok(())
                })
            });
        Self::connect_and_migrate(pool, None, url, Backend::Postgres, &location).await
    }

    /// Connects `options` to `url` and applies the migrations; the group
    /// commit gets a pool of its own from `group_commit`, else shares it.
    async fn connect_and_migrate(
        options: AnyPoolOptions,
        group_commit: Option<AnyPoolOptions>,
        url: &str,
        backend: Backend,
        location: &Arc<StoreLocation>,
    ) -> Result<Store> {
        install_default_drivers();
        let pool = options.connect(url).await?;
        // Connected on first use, after the migrations.
        let group_commit = match group_commit {
            Some(options) => options.connect_lazy(url)?,
            None => pool.clone(),
        };
        let store = Store::from_pool(pool, group_commit, backend, location.clone());
        let migrator = match backend {
            Backend::Sqlite => &MIGRATOR,
            Backend::Postgres => &POSTGRES_MIGRATOR,
        };
        if let Err(err) = migrator.run(&store.pool).await {
            store.close().await;
            return Err(err.into());
        }
        Ok(store)
    }

    /// Opens a fresh, private in-memory SQLite database (one connection, kept for the
    /// pool's lifetime) with the schema applied. For unit tests only: nothing survives the
    /// store.
    pub async fn open_in_memory() -> Result<Store> {
        install_default_drivers();
        let pool = sqlite_pool_options(BUSY_TIMEOUT, 1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect("sqlite::memory:")
            .await?;
        MIGRATOR.run(&pool).await?;
        // A second pool would open another, empty database: one pool serves both.
        Ok(Store::from_pool(
            pool.clone(),
            pool,
            Backend::Sqlite,
            Arc::new(StoreLocation::sqlite(Path::new(":memory:"))),
        ))
    }

    /// Closes the pools, waiting for checked-out connections to come back. Clones of this
    /// store fail afterwards.
    pub async fn close(&self) {
        self.group_commit.close().await;
        self.pool.close().await;
    }
}

/// A SQLite pool whose every connection gets the busy timeout, WAL, `synchronous = NORMAL`
/// and foreign keys (the `Any` driver opens from a URL, so they are set as pragmas).
///
/// The WAL is checkpointed every [`WAL_CHECKPOINT_PAGES`] pages, not
/// SQLite's default 1,000: a fan-out's commits rewrite the same few pages
/// (the subtasks, the events' tail), and each checkpoint copied them back
/// into the database again, ~10% of the SQLite thread's time at 512 calls
/// in flight.
///
/// Temporary files live in memory (`temp_store = MEMORY`): a multi-row
/// statement inside a transaction keeps a statement journal of the pages it
/// changes, and past 64 KiB SQLite spilled that journal to a temporary file,
/// ~8% of the SQLite thread's time in the group commits of a fan-out at 512
/// calls in flight. The journal lives for one statement.
fn sqlite_pool_options(busy_timeout: Duration, max_connections: u32) -> AnyPoolOptions {
    let busy_ms = busy_timeout.as_millis();
    AnyPoolOptions::new()
        .max_connections(max_connections)
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                let pragmas = format!(
                    "PRAGMA busy_timeout = {busy_ms}; PRAGMA foreign_keys = ON; \
                     PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                     PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}; \
                     PRAGMA temp_store = MEMORY;"
                );
                conn.execute(pragmas.as_str()).await?;
                Ok(())
            })
        })
}

/// The path as the file part of a `sqlite://` URL: `%`, `?` and `#` escaped.
fn encode_path(path: &Path) -> String {
    let text = path.to_string_lossy();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '%' => out.push_str("%25"),
            '?' => out.push_str("%3F"),
            '#' => out.push_str("%23"),
            c => out.push(c),
        }
    }
    out
}

/// Whether an error from opening is the transient result of another opener working on the
/// same fresh file: a busy/locked database, or a migration statement that failed because the
/// other opener applied it first.
fn is_open_race(err: &Error) -> bool {
    match err {
        Error::Database(sqlx::Error::Database(db)) => crate::is_busy(db.as_ref()),
        Error::Migrate(
            sqlx::migrate::MigrateError::Execute(_)
            | sqlx::migrate::MigrateError::ExecuteMigration(..),
        ) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use cadre_types::{EventKind, JobId, JobStatus};
    use serde_json::json;

    use super::*;
    use crate::{AttemptWrite, AttemptWritten, NewEvent, NewJob};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_group_commit_has_a_connection_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("cadre.db")).await.unwrap();
        let job = JobId::new();
        store
            .create_job(&NewJob {
                id: job,
                instruction: "rename UserId to AccountId".into(),
                workspace: "/tmp/ws".into(),
                options: json!({}),
                priority: 0,
                budget_usd: None,
                status: JobStatus::Running,
            })
            .await
            .unwrap();
        // Every connection of the pool is taken (readers, say)...
        let mut held = Vec::new();
        for _ in 0..SQLITE_MAX_CONNECTIONS {
            held.push(store.pool.acquire().await.unwrap());
        }
        // ...and a group commit still goes through, on its own connection.
        let group = [AttemptWrite::Event(NewEvent {
            job_id: job,
            subtask_id: None,
            kind: EventKind::Note,
            message: "committed beside a full pool".into(),
            data: json!({}),
        })];
        let done = tokio::time::timeout(
            Duration::from_secs(5),
            store.write_attempt_groups(&[&group]),
        )
        .await
        .expect("the group commit waited for the pool's connections")
        .unwrap();
        assert!(
            matches!(done[..], [ref g] if matches!(g[..], [AttemptWritten::Event(seq)] if seq > 0))
        );
        drop(held);
        let events = store.list_events(job, 0, 10).await.unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].message, "committed beside a full pool");
    }

    #[test]
    fn paths_are_escaped_for_the_url() {
        assert_eq!(
            encode_path(Path::new("/tmp/a?b#c%d.db")),
            "/tmp/a%3Fb%23c%25d.db"
        );
    }
}
