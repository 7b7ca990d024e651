//! Throw-away PostgreSQL schemas for tests and benchmarks: each gets its own
//! schema in the server named by `CADRE_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/test`), dropped afterwards.

use std::time::Duration;

use sqlx::{Connection, Executor, PgConnection};

use crate::{Error, Result};

/// The variable naming the PostgreSQL server tests use.
pub const TEST_POSTGRES_ENV: &str = "CADRE_TEST_POSTGRES";

/// The server tests use when [`TEST_POSTGRES_ENV`] is unset.
pub const DEFAULT_TEST_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

/// How long finding out that no server is there may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A fresh schema on the test server, dropped when this value is dropped (or
/// by [`ScratchPostgres::drop_now`]). [`ScratchPostgres::url`] connects with
/// the schema as the `search_path`, so a store opened there migrates and uses
/// only it, and its daemons and listeners see only its jobs.
#[derive(Debug)]
pub struct ScratchPostgres {
    admin_url: String,
    schema: String,
    url: String,
    dropped: bool,
}

impl ScratchPostgres {
    /// Creates a schema on the test server. `Ok(None)` (after printing why to
    /// stderr) when the server cannot be reached and `CI` is not `true`: the
    /// caller skips. With `CI=true` an unreachable server is an error.
    pub async fn create_or_skip(what: &str) -> Result<Option<ScratchPostgres>> {
        let admin_url =
            std::env::var(TEST_POSTGRES_ENV).unwrap_or_else(|_| DEFAULT_TEST_POSTGRES.to_owned());
        match Self::create(&admin_url).await {
            Ok(scratch) => Ok(Some(scratch)),
            Err(err) if std::env::var("CI").as_deref() != Ok("true") => {
                eprintln!(
                    "skipping {what} on PostgreSQL: cannot reach {} ({err}); set {TEST_POSTGRES_ENV} \
                     to a server where tests may create schemas (with CI=true this fails)",
                    crate::backend::redact_password(&admin_url)
                );
                Ok(None)
            }
            Err(err) => Err(err),
        }
    }

    /// Creates a schema on the server at `admin_url`.
    pub async fn create(admin_url: &str) -> Result<ScratchPostgres> {
        let schema = format!("cadre_test_{}", uuid::Uuid::now_v7().simple());
        let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect(admin_url))
            .await
            .map_err(|_| Error::Database(sqlx::Error::PoolTimedOut))??;
        conn.execute(format!("CREATE SCHEMA {schema}").as_str())
            .await?;
        conn.close().await?;
        let separator = if admin_url.contains('?') { '&' } else { '?' };
        let url = format!("{admin_url}{separator}options=-c%20search_path%3D{schema}");
        Ok(ScratchPostgres {
            admin_url: admin_url.to_owned(),
            schema,
            url,
            dropped: false,
        })
    }

    /// The URL of the scratch schema (a `--db` / [`Store::connect`](crate::Store::connect)
    /// value).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Drops the schema and everything in it now.
    pub async fn drop_now(mut self) -> Result<()> {
        self.dropped = true;
        drop_schema(&self.admin_url, &self.schema).await
    }
}

async fn drop_schema(admin_url: &str, schema: &str) -> Result<()> {
    let mut conn = PgConnection::connect(admin_url).await?;
    conn.execute(format!("DROP SCHEMA IF EXISTS {schema} CASCADE").as_str())
        .await?;
    conn.close().await?;
    Ok(())
}

impl Drop for ScratchPostgres {
    /// Drops the schema from a short-lived thread of its own (a destructor
    /// cannot await), waiting for it.
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let admin_url = self.admin_url.clone();
        let schema = self.schema.clone();
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match runtime {
                Ok(rt) => {
                    if let Err(e) = rt.block_on(drop_schema(&admin_url, &schema)) {
                        eprintln!("dropping the test schema {schema} failed: {e}");
                    }
                }
                Err(e) => eprintln!("dropping the test schema {schema} failed: {e}"),
            }
        });
        let _ = dropper.join();
    }
}
