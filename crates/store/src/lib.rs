//! cadre-store: everything cadre remembers, in one SQLite file or one PostgreSQL database.
//!
//! This crate owns all of cadre's SQL: the schema (the top-level `migrations/` for SQLite,
//! `migrations/postgres/` for PostgreSQL, embedded as [`MIGRATOR`] and [`POSTGRES_MIGRATOR`]
//! and applied when a store is opened) and the [`Store`] handle with its records:
//! jobs ([`NewJob`], [`JobRecord`]) with their queue lease, per-file subtasks ([`NewSubtask`],
//! [`SubtaskRecord`]), model-call attempts ([`NewAttempt`], [`AttemptFinish`],
//! [`AttemptRecord`], [`AttemptStatRow`]), the append-only event log ([`NewEvent`],
//! `cadre_types::JobEvent`), the queue's wake-ups ([`QueueWakeups`]) and the limits every
//! daemon of a shared store counts together: model-call slots (`call_slots`) and provider
//! push-back pauses ([`TierPause`]).
//!
//! # Design decisions
//!
//! * **Two backends, one query text.** [`Store::connect`] opens a SQLite file (a path or
//!   `sqlite://`) or a PostgreSQL database (`postgres://`), both through sqlx's `Any` driver:
//!   one pool type ([`sqlx::AnyPool`]), one row type, and every query written once, in
//!   SQLite's `?` placeholder style. [`Backend::sql`] renumbers the placeholders to `$1, $2,
//!   ...` for PostgreSQL; that is the only rewrite. The schemas are kept compatible so the
//!   same text runs on both: integers are `BIGINT` on PostgreSQL (`Any` decodes `i64`), flags
//!   are integers (0/1) on both (`Any` cannot decode a SQLite integer as `bool`), aggregates
//!   avoid SQLite-only functions (`COALESCE(SUM(..), 0.0)`, not `TOTAL`), and the tables that
//!   list "in insertion order" have a `rowid` column on PostgreSQL (an identity) as SQLite
//!   has implicitly. Where the dialects really differ the query branches on
//!   [`Store::backend`]: the patch concatenation (`group_concat` / `string_agg`), the claim
//!   (`FOR UPDATE SKIP LOCKED` on PostgreSQL), the event append (serialised per job on
//!   PostgreSQL so sequence numbers commit in order). Connection settings are per backend
//!   (SQLite's pragmas on every connection; PostgreSQL's migrations under its advisory lock).
//! * **Compare-and-set, not read-modify-write.** Every state change is one
//!   `UPDATE ... WHERE id = ? AND status IN (...)` that reports whether it changed a row, so
//!   two writers racing on one row cannot both win and nobody has to hold a transaction open
//!   across a read. SQLite fails a deferred transaction's read-to-write lock upgrade with
//!   `SQLITE_BUSY` regardless of `busy_timeout`; single-statement writes never upgrade.
//! * **Leases instead of locks.** A daemon claims a job by writing its name and an expiry
//!   into the job row (one `UPDATE ... WHERE id = (SELECT ... LIMIT 1) RETURNING`; on
//!   PostgreSQL the inner select is `FOR UPDATE SKIP LOCKED`, so concurrent claimers on
//!   several machines skip each other's candidates instead of queueing on them) and keeps
//!   it by heartbeating. Nothing is held open while the job runs, so a runner that crashes,
//!   hangs or loses its disk simply stops renewing, and once the lease expires another runner
//!   claims the job and resumes it (its attempts left "running" are marked "interrupted").
//!   The old owner learns it lost the job from [`Store::heartbeat_job`] returning false.
//! * **Wake-ups are hints.** On PostgreSQL a trigger `NOTIFY`s `cadre_queue` when a job
//!   becomes claimable; [`Store::queue_wakeups`] listens. A missed notification costs one
//!   slow poll, never a job.
//! * **Runtime-checked queries** (`sqlx::query(..).bind(..)`), so building needs no database
//!   and no offline query data. Ids are TEXT, timestamps integer unix seconds, enums their
//!   `as_str()` strings, JSON TEXT.
//!
//! # Adding a store function
//!
//! Write the SQL once with `?` placeholders and run it through `Store::sql`:
//! `sqlx::query(&self.sql("UPDATE t SET a = ? WHERE id = ?")).bind(a).bind(id)
//! .execute(&self.pool)`. Bind and read only `i64`, `f64`, `String`/`&str`, `bool` (bind
//! only) and `Option`s of them; add the columns to both migration directories.
#![warn(missing_docs)]

mod attempt_batch;
mod attempts;
mod backend;
mod call_slots;
mod calls;
mod claims;
mod codemod;
mod convert;
mod directives;
mod error;
mod events;
mod fence;
mod jobs;
mod open;
mod overview;
mod paths;
pub mod scratch;
mod subtasks;
mod tier_pauses;
mod wakeups;

use std::borrow::Cow;
use std::sync::Arc;

use sqlx::AnyPool;

pub use attempt_batch::{AttemptWrite, AttemptWritten};
pub use attempts::{AttemptFinish, AttemptRecord, AttemptStatRow, NewAttempt, SubtaskOutcomeStats};
pub use backend::{Backend, StoreLocation};
pub use calls::{CallRecord, NewCall};
pub use claims::ClaimFence;
pub use codemod::CodemodAcceptedRow;
pub use directives::SubtaskDirective;
pub use error::{Error, Result};
pub use events::NewEvent;
pub use fence::LeaseFence;
pub use jobs::{JobRecord, NewJob, ResultWriter};
pub use open::{MIGRATOR, POSTGRES_MIGRATOR};
pub use overview::{CallCostRow, JobProgressRow};
pub use paths::{RungStatRow, SubtaskPath};
pub use subtasks::{NewSubtask, SubtaskRecord, SubtaskUpdate, SubtaskWriter};
pub use tier_pauses::TierPause;
pub use wakeups::QueueWakeups;

/// A handle on the store. Cheap to clone: clones share its connection pools.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    /// The group commit's connections ([`Store::write_claimed_attempt_groups`]).
    /// On a SQLite file, one connection of its own: SQLite drops a
    /// connection's page cache whenever another connection wrote since it
    /// last read, and the pool hands its connections out in turn, so the
    /// fan-out's commits, spread over the pool, each read back every page
    /// they touched (four times the reads at 128 calls in flight). Elsewhere
    /// the pool itself.
    group_commit: AnyPool,
    backend: Backend,
    /// Where it was opened (PostgreSQL's listener connects there too).
    location: Arc<StoreLocation>,
}

impl Store {
    fn from_pool(
        pool: AnyPool,
        group_commit: AnyPool,
        backend: Backend,
        location: Arc<StoreLocation>,
    ) -> Store {
        Store {
            pool,
            group_commit,
            backend,
            location,
        }
    }

    /// The database this store runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Where the store lives (a PostgreSQL URL displays without its password).
    pub fn location(&self) -> &StoreLocation {
        &self.location
    }

    /// A query's text for this store's backend ([`Backend::sql`]).
    pub(crate) fn sql<'a>(&self, text: &'a str) -> Cow<'a, str> {
        self.backend.sql(text)
    }
}

/// A write that may succeed if tried again: SQLite's `SQLITE_BUSY` or `SQLITE_LOCKED`
/// (extended codes included), PostgreSQL's serialization failure or deadlock.
pub(crate) fn is_busy(db: &dyn sqlx::error::DatabaseError) -> bool {
    const SQLITE_BUSY: i32 = 5;
    const SQLITE_LOCKED: i32 = 6;
    if db
        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        .is_some()
    {
        return matches!(db.code().as_deref(), Some("40001" | "40P01"));
    }
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
            [
                "attempts",
                "call_slots",
                "events",
                "jobs",
                "model_calls",
                "subtask_paths",
                "subtasks",
                "tier_pauses"
            ]
        );
    }

    #[tokio::test]
    async fn file_store_uses_wal_foreign_keys_and_memory_temp_files() {
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
        let checkpoint: i64 = sqlx::query_scalar("PRAGMA wal_autocheckpoint")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(checkpoint, 8_000);
        let temp: i64 = sqlx::query_scalar("PRAGMA temp_store")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(temp, 2, "MEMORY");
    }
}
