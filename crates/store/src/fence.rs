//! Lease fences: writes made on behalf of a leased job land only while the
//! writer still holds that lease.
//!
//! A daemon that runs a job holds its lease (`jobs.lease_owner`,
//! `lease_expires_at`, renewed by heartbeats). A daemon frozen past its lease
//! (SIGSTOP, a long GC-like stall, a suspended VM) wakes up with tasks that
//! believe they still own the job while another daemon has claimed it and
//! resumed it. A [`LeaseFence`] names the lease a write was made under:
//! the job, the owner and the claim (`claim_count` at the claim, so a lease
//! the same owner claims again later is a different fence). Fenced writes
//! check it in the same transaction as the write:
//!
//! * the attempt bookkeeping ([`Store::write_fenced_attempt_groups`]) checks
//!   each distinct fence of the batch as its last statement before the
//!   commit. On SQLite the transaction already holds the write lock (its
//!   writes came first), so no claim can commit in between; on PostgreSQL
//!   the job row is locked `FOR SHARE` until the commit, so a concurrent
//!   claim (`FOR UPDATE SKIP LOCKED`) skips the job, and a claim that
//!   committed first makes the check fail;
//! * job status changes ([`Store::transition_job_fenced`]) and the job's
//!   result ([`Store::begin_fenced_result`]) carry the fence in their
//!   `WHERE` clause.
//!
//! A fence that does not hold fails the whole write with
//! [`Error::LeaseLost`]: nothing of it is stored.
//!
//! The fence is the claim (owner and `claim_count`), not the expiry time:
//! a lease that ran out but that nobody claimed is still the owner's (its
//! next heartbeat renews it), and writes made then are ordered before any
//! later claim by the transaction's lock. Expiry times are whole seconds, so
//! a short lease is claimable 1-2 s after its last heartbeat; refusing
//! writes on expiry alone would stop runs that nobody took over. The engine
//! adds a local deadline guard on top (`cadre_core`'s `lease` module).

use cadre_types::{JobId, JobStatus};
use sqlx::AnyConnection;

use crate::convert::{now_secs, placeholders};
use crate::{Backend, Error, Result, Store};

/// The lease a write is made under.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeaseFence {
    /// The leased job.
    pub job: JobId,
    /// The lease owner's name (as given to [`Store::claim_job`]).
    pub owner: String,
    /// The job's `claim_count` as the claim returned it.
    pub claim: u32,
}

/// The fence's condition on a `jobs` row, with its placeholders: the owner,
/// then the claim.
const FENCE_CONDITION: &str = "lease_owner = ? AND claim_count = ?";

/// Whether `fence` still holds, checked on `conn`. PostgreSQL: the job row
/// stays locked `FOR SHARE` until the transaction ends, so no claim commits
/// before it.
async fn fence_holds(
    conn: &mut AnyConnection,
    backend: Backend,
    fence: &LeaseFence,
) -> Result<bool> {
    let lock = match backend {
        Backend::Sqlite => "",
        Backend::Postgres => " FOR SHARE",
    };
    let sql =
        format!("SELECT CAST(1 AS BIGINT) FROM jobs WHERE {FENCE_CONDITION} AND id = ?{lock}");
    let row = sqlx::query(&backend.sql(&sql))
        .bind(&fence.owner)
        .bind(i64::from(fence.claim))
        .bind(fence.job.to_string())
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.is_some())
}

/// Checks every distinct fence of `fences` on the transaction `conn`, in
/// job order (so two transactions lock job rows in one order); the first
/// that does not hold is the error.
async fn check_fences<'a>(
    conn: &mut AnyConnection,
    backend: Backend,
    fences: impl IntoIterator<Item = &'a LeaseFence>,
) -> Result<()> {
    let mut fences: Vec<&LeaseFence> = fences.into_iter().collect();
    fences.sort_unstable();
    fences.dedup();
    for fence in fences {
        if !fence_holds(conn, backend, fence).await? {
            return Err(lease_lost(fence));
        }
    }
    Ok(())
}

/// Commits `tx` if every one of `fences` holds, checked as the
/// transaction's last statement ([`check_fences`]); else rolls it back at
/// once (its row locks are not left to wait for the connection's next use)
/// and fails with [`Error::LeaseLost`].
pub(crate) async fn commit_fenced<'a>(
    mut tx: sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    fences: impl IntoIterator<Item = &'a LeaseFence>,
) -> Result<()> {
    match check_fences(&mut tx, backend, fences).await {
        Ok(()) => Ok(tx.commit().await?),
        Err(e) => {
            tx.rollback().await?;
            Err(e)
        }
    }
}

/// The error for a fence that does not hold.
pub(crate) fn lease_lost(fence: &LeaseFence) -> Error {
    Error::LeaseLost {
        job: fence.job.to_string(),
        owner: fence.owner.clone(),
    }
}

impl Store {
    /// Whether `fence` holds now: its owner still holds the job's lease
    /// from that claim (nobody claimed the job since).
    pub async fn holds_lease(&self, fence: &LeaseFence) -> Result<bool> {
        let mut conn = self.pool.acquire().await?;
        fence_holds(&mut conn, self.backend(), fence).await
    }

    /// [`Store::transition_job`] under a lease: the row changes only if the
    /// job is in one of `from` and `fence` holds, in one statement. Returns
    /// whether it changed; [`Error::LeaseLost`] when it did not because the
    /// fence does not hold.
    pub async fn transition_job_fenced(
        &self,
        id: JobId,
        from: &[JobStatus],
        to: JobStatus,
        reason: &str,
        fence: &LeaseFence,
    ) -> Result<bool> {
        if from.is_empty() {
            return Ok(false);
        }
        let now = now_secs();
        let sql = format!(
            "UPDATE jobs SET status = ?, reason = ?, updated_at = ?, finished_at = ? \
             WHERE status IN ({}) AND {FENCE_CONDITION} AND id = ?",
            placeholders(from.len())
        );
        let sql = self.sql(&sql);
        let mut query = sqlx::query(&sql)
            .bind(to.as_str())
            .bind(reason)
            .bind(now)
            .bind(to.is_terminal().then_some(now));
        for status in from {
            query = query.bind(status.as_str());
        }
        let done = query
            .bind(&fence.owner)
            .bind(i64::from(fence.claim))
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() > 0 {
            return Ok(true);
        }
        if self.holds_lease(fence).await? {
            Ok(false)
        } else {
            Err(lease_lost(fence))
        }
    }
}
