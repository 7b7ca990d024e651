//! Model-call slots shared by every daemon of a store: `limits.max_concurrency`
//! and the per-tier limits counted across the cluster (the `call_slots` table).
//!
//! A scope (`"all"`, or `"tier:NAME"`) has one row per slot. A daemon claims a
//! free or expired row with compare-and-set, holds it while one model call is
//! in flight, renews every row it holds in one statement, and releases the row
//! when the call ends. A daemon that dies stops renewing; its rows expire.
//! Times are unix milliseconds.
//!
//! These rows are leases, not records: on PostgreSQL their writes commit
//! without waiting for the WAL to reach the disk ([`relaxed_commit`]). A commit
//! waits for its WAL flush (an fsync, ~2-4 ms on the test machine's disk,
//! most of a call slot's claim and release); a crash of the database server
//! (not of a daemon) may lose the last fraction of a second of slot changes,
//! which costs at most a limit briefly exceeded or a slot held until its
//! holder's engine stops. Jobs, attempts and the call ledger keep durable
//! commits.

use sqlx::Row;

use crate::backend::Backend;
use crate::{Result, Store};

/// PostgreSQL: a one-row `FROM` item that turns off `synchronous_commit` for
/// the statement's own transaction (`set_config(.., true)` lasts to the end
/// of the transaction, and an autocommitted statement is one), so a lease
/// write is one round trip without a WAL flush. Empty on SQLite, whose WAL
/// mode already commits without a sync (`synchronous = NORMAL`).
pub(crate) fn relaxed_commit(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "",
        Backend::Postgres => {
            " FROM (SELECT set_config('synchronous_commit', 'off', true)) AS relaxed_commit"
        }
    }
}

impl Store {
    /// Makes sure the scope has slot rows `0..count` (existing rows, and
    /// their holders, are left alone).
    pub async fn ensure_call_slots(&self, scope: &str, count: u32) -> Result<()> {
        let sql = self.sql(
            "INSERT INTO call_slots (scope, slot, holder, expires_at_ms) VALUES (?, ?, NULL, NULL) \
             ON CONFLICT (scope, slot) DO NOTHING",
        );
        let mut tx = self.pool.begin().await?;
        for slot in 0..i64::from(count) {
            sqlx::query(&sql)
                .bind(scope)
                .bind(slot)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Claims a slot of `scope` below `limit` that is free or whose holder's
    /// lease ended before `now_ms`, for `holder` until `now_ms + lease_ms`.
    /// Returns the slot number, or `None` when every slot is held.
    pub async fn claim_call_slot(
        &self,
        scope: &str,
        limit: u32,
        holder: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<i64>> {
        // PostgreSQL: concurrent claimers skip each other's candidate row
        // (SQLite has one writer at a time anyway). The outer condition
        // repeats the inner one, so the update is a compare-and-set.
        let skip_locked = match self.backend() {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        };
        let relaxed = relaxed_commit(self.backend());
        let sql = format!(
            "UPDATE call_slots SET holder = ?, expires_at_ms = ?{relaxed} \
             WHERE scope = ? AND (holder IS NULL OR expires_at_ms < ?) AND slot = ( \
                 SELECT slot FROM call_slots \
                 WHERE scope = ? AND slot < ? AND (holder IS NULL OR expires_at_ms < ?) \
                 ORDER BY slot LIMIT 1{skip_locked}) \
             RETURNING slot"
        );
        let row = sqlx::query(&self.sql(&sql))
            .bind(holder)
            .bind(now_ms.saturating_add(lease_ms))
            .bind(scope)
            .bind(now_ms)
            .bind(scope)
            .bind(i64::from(limit))
            .bind(now_ms)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get::<i64, _>(0)).transpose()?)
    }

    /// Frees the slot iff `holder` still holds it; false when it did not
    /// (its lease had expired and another daemon took it).
    pub async fn release_call_slot(&self, scope: &str, slot: i64, holder: &str) -> Result<bool> {
        let sql = format!(
            "UPDATE call_slots SET holder = NULL, expires_at_ms = NULL{} \
             WHERE scope = ? AND slot = ? AND holder = ?",
            relaxed_commit(self.backend())
        );
        let done = sqlx::query(&self.sql(&sql))
            .bind(scope)
            .bind(slot)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Extends every slot `holder` holds to `now_ms + lease_ms`; returns how
    /// many it holds.
    pub async fn renew_call_slots(&self, holder: &str, now_ms: i64, lease_ms: i64) -> Result<u64> {
        let sql = format!(
            "UPDATE call_slots SET expires_at_ms = ?{} WHERE holder = ?",
            relaxed_commit(self.backend())
        );
        let done = sqlx::query(&self.sql(&sql))
            .bind(now_ms.saturating_add(lease_ms))
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// How many slots of `scope` are held at `now_ms` (by any daemon).
    pub async fn held_call_slots(&self, scope: &str, now_ms: i64) -> Result<i64> {
        let row = sqlx::query(&self.sql(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM call_slots \
             WHERE scope = ? AND holder IS NOT NULL AND expires_at_ms >= ?",
        ))
        .bind(scope)
        .bind(now_ms)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<i64, _>(0)?)
    }
}
