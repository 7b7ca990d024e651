//! Subtask claims: the subtask as the cluster's unit of distribution.
//!
//! A daemon that runs a job holds the job's lease (the `jobs` module); any
//! daemon of the cluster may run that job's pending subtasks. Moving a
//! subtask to `running` claims it: `claimed_by` names the daemon,
//! `claim_expires_at` (unix seconds) says until when the claim holds, and
//! the claimer renews every claim it holds in one statement
//! ([`Store::renew_subtask_claims`]). Claims are taken with `FOR UPDATE SKIP
//! LOCKED` on PostgreSQL, so daemons claiming at once never wait on each
//! other nor take the same row; on SQLite the write lock orders them.
//!
//! A claim that expires (its daemon died or froze) is given back: the job's
//! owner moves the subtask to `pending` and marks its running attempts
//! interrupted ([`Store::reset_expired_claims`]). Every write for a claimed
//! subtask is fenced on `claimed_by` ([`ClaimFence`], checked in the group
//! commit's transaction), so a daemon thawed after its claim was given back
//! writes nothing more for that subtask. `claimed_by` stays on a finished
//! subtask: it records which daemon ran it.

use std::collections::BTreeMap;

use cadre_types::{AttemptOutcome, JobId, JobStatus, SubtaskId, SubtaskStatus};
use sqlx::{AnyConnection, Row};

use crate::convert::{
    IDS_PER_STATEMENT, add_secs, collect_rows, now_secs, parse_col, placeholders, to_u64,
};
use crate::{Backend, Error, Result, Store};

/// The claim a write for a subtask is made under: the claimer's name and
/// the subtasks the write touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimFence {
    /// The daemon that claimed them.
    pub owner: String,
    /// The claimed subtasks.
    pub subtasks: Vec<SubtaskId>,
}

/// `FOR UPDATE SKIP LOCKED` where the backend has row locks.
fn skip_locked(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "",
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
    }
}

/// Subtask ids as the store returned them.
fn parse_ids(ids: &[String]) -> Result<Vec<SubtaskId>> {
    ids.iter().map(|id| Ok(id.parse()?)).collect()
}

/// A subtask under a live claim (placeholder: now).
const LIVE_CLAIM: &str = "claimed_by IS NOT NULL AND COALESCE(claim_expires_at, 0) >= ?";

/// Binds [`LIVE_CLAIM`]'s placeholder when it is used.
fn bind_live_claim<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    used: bool,
    now: i64,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    if used { query.bind(now) } else { query }
}

/// Checks that every subtask of `fence` is still claimed by its owner, on
/// the transaction `conn` (PostgreSQL: the rows stay locked `FOR SHARE` to
/// the commit, so no reset commits in between).
pub(crate) async fn claim_holds(
    conn: &mut AnyConnection,
    backend: Backend,
    fence: &ClaimFence,
) -> Result<()> {
    let mut ids: Vec<String> = fence.subtasks.iter().map(ToString::to_string).collect();
    ids.sort_unstable();
    ids.dedup();
    for chunk in ids.chunks(IDS_PER_STATEMENT) {
        let lock = match backend {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR SHARE",
        };
        let sql = format!(
            "SELECT id FROM subtasks WHERE claimed_by = ? AND id IN ({}){lock}",
            placeholders(chunk.len())
        );
        let sql = backend.sql(&sql);
        let mut query = sqlx::query(&sql).bind(&fence.owner);
        for id in chunk {
            query = query.bind(id);
        }
        let held = query.fetch_all(&mut *conn).await?.len();
        if held != chunk.len() {
            let missing = chunk
                .iter()
                .find(|id| fence.subtasks.iter().all(|s| s.to_string() != **id))
                .or(chunk.first())
                .cloned()
                .unwrap_or_default();
            return Err(Error::ClaimLost {
                subtask: missing,
                owner: fence.owner.clone(),
            });
        }
    }
    Ok(())
}

impl Store {
    /// Claims those of `ids` (subtasks of one job) that are still `pending`
    /// for `owner`, for `lease_secs`: they move to `running`. Returns the
    /// ids claimed; the others were taken by someone else.
    pub async fn claim_subtasks(
        &self,
        owner: &str,
        ids: &[SubtaskId],
        lease_secs: u64,
    ) -> Result<Vec<SubtaskId>> {
        let mut claimed = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(IDS_PER_STATEMENT) {
            let now = now_secs();
            let sql = format!(
                "UPDATE subtasks SET status = ?, claimed_by = ?, claim_expires_at = ?, updated_at = ? \
                 WHERE id IN (SELECT id FROM subtasks WHERE id IN ({}) AND status = ?{}) \
                 AND status = ? RETURNING id",
                placeholders(chunk.len()),
                skip_locked(self.backend())
            );
            let sql = self.sql(&sql);
            let mut query = sqlx::query_scalar::<_, String>(&sql)
                .bind(SubtaskStatus::Running.as_str())
                .bind(owner)
                .bind(add_secs(now, lease_secs))
                .bind(now);
            for id in chunk {
                query = query.bind(id.to_string());
            }
            query = query
                .bind(SubtaskStatus::Pending.as_str())
                .bind(SubtaskStatus::Pending.as_str());
            claimed.extend(parse_ids(&query.fetch_all(&self.pool).await?)?);
        }
        Ok(claimed)
    }

    /// Claims up to `limit` pending subtasks of `job` for `owner`, for
    /// `lease_secs`, last in plan order first (the job's owner runs them
    /// first to last, so the two meet in the middle), leaving out those
    /// whose reason starts with `unless_reason` (files left for a reason,
    /// such as the budget). Returns the ids claimed.
    pub async fn claim_pending_subtasks(
        &self,
        job: JobId,
        owner: &str,
        limit: usize,
        lease_secs: u64,
        unless_reason: &str,
    ) -> Result<Vec<SubtaskId>> {
        let now = now_secs();
        let sql = format!(
            "UPDATE subtasks SET status = ?, claimed_by = ?, claim_expires_at = ?, updated_at = ? \
             WHERE id IN (SELECT id FROM subtasks WHERE job_id = ? AND status = ? \
             AND reason NOT LIKE ? ORDER BY ordinal DESC LIMIT ?{}) AND status = ? RETURNING id",
            skip_locked(self.backend())
        );
        let ids = sqlx::query_scalar::<_, String>(&self.sql(&sql))
            .bind(SubtaskStatus::Running.as_str())
            .bind(owner)
            .bind(add_secs(now, lease_secs))
            .bind(now)
            .bind(job.to_string())
            .bind(SubtaskStatus::Pending.as_str())
            .bind(format!("{unless_reason}%"))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .bind(SubtaskStatus::Pending.as_str())
            .fetch_all(&self.pool)
            .await?;
        parse_ids(&ids)
    }

    /// Extends `owner`'s claims on `ids` (those still running under its
    /// claim) by `lease_secs` from now; returns how many. Rows another
    /// transaction holds locked are skipped (renewed next time), so
    /// renewing never waits on a group commit.
    pub async fn renew_subtask_claims(
        &self,
        owner: &str,
        ids: &[SubtaskId],
        lease_secs: u64,
    ) -> Result<u64> {
        let mut renewed = 0;
        for chunk in ids.chunks(IDS_PER_STATEMENT) {
            let sql = format!(
                "UPDATE subtasks SET claim_expires_at = ? WHERE id IN \
                 (SELECT id FROM subtasks WHERE id IN ({}) AND claimed_by = ? AND status = ?{})",
                placeholders(chunk.len()),
                skip_locked(self.backend())
            );
            let sql = self.sql(&sql);
            let mut query = sqlx::query(&sql).bind(add_secs(now_secs(), lease_secs));
            for id in chunk {
                query = query.bind(id.to_string());
            }
            let done = query
                .bind(owner)
                .bind(SubtaskStatus::Running.as_str())
                .execute(&self.pool)
                .await?;
            renewed += done.rows_affected();
        }
        Ok(renewed)
    }

    /// Gives back `ids` that `owner` claimed but will not run: those still
    /// running under its claim go back to `pending`, unclaimed.
    pub async fn release_subtask_claims(&self, owner: &str, ids: &[SubtaskId]) -> Result<u64> {
        let mut released = 0;
        for chunk in ids.chunks(IDS_PER_STATEMENT) {
            let sql = format!(
                "UPDATE subtasks SET status = ?, claimed_by = NULL, claim_expires_at = NULL, \
                 updated_at = ? WHERE id IN ({}) AND claimed_by = ? AND status = ?",
                placeholders(chunk.len())
            );
            let sql = self.sql(&sql);
            let mut query = sqlx::query(&sql)
                .bind(SubtaskStatus::Pending.as_str())
                .bind(now_secs());
            for id in chunk {
                query = query.bind(id.to_string());
            }
            let done = query
                .bind(owner)
                .bind(SubtaskStatus::Running.as_str())
                .execute(&self.pool)
                .await?;
            released += done.rows_affected();
        }
        Ok(released)
    }

    /// Gives back every running subtask of `job` whose claim expired: it
    /// goes back to `pending`, unclaimed, and its running attempts are
    /// marked interrupted, in one transaction. Returns the subtasks.
    pub async fn reset_expired_claims(&self, job: JobId) -> Result<Vec<SubtaskId>> {
        let now = now_secs();
        let mut tx = self.pool.begin().await?;
        let sql = format!(
            "UPDATE subtasks SET status = ?, claimed_by = NULL, claim_expires_at = NULL, \
             updated_at = ? WHERE id IN (SELECT id FROM subtasks WHERE job_id = ? AND status = ? \
             AND claimed_by IS NOT NULL AND COALESCE(claim_expires_at, 0) < ?{}) \
             AND status = ? RETURNING id",
            skip_locked(self.backend())
        );
        let ids: Vec<String> = sqlx::query_scalar(&self.sql(&sql))
            .bind(SubtaskStatus::Pending.as_str())
            .bind(now)
            .bind(job.to_string())
            .bind(SubtaskStatus::Running.as_str())
            .bind(now)
            .bind(SubtaskStatus::Running.as_str())
            .fetch_all(&mut *tx)
            .await?;
        for chunk in ids.chunks(IDS_PER_STATEMENT) {
            let sql = format!(
                "UPDATE attempts SET outcome = ?, error = ?, finished_at = ? \
                 WHERE outcome = ? AND subtask_id IN ({})",
                placeholders(chunk.len())
            );
            let sql = self.sql(&sql);
            let mut query = sqlx::query(&sql)
                .bind(AttemptOutcome::Interrupted.as_str())
                .bind("the daemon running it stopped renewing its claim")
                .bind(now)
                .bind(AttemptOutcome::Running.as_str());
            for id in chunk {
                query = query.bind(id);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        parse_ids(&ids)
    }

    /// What a job's owner waits for before its fan-out ends: how many of
    /// `job`'s subtasks are pending (leaving out those whose reason starts
    /// with `unless_reason`), and how many run under a claim (live or
    /// expired; the owner asks once its own files are done, so these are
    /// other daemons' or other sessions').
    pub async fn claim_counts(&self, job: JobId, unless_reason: &str) -> Result<(u64, u64)> {
        let row = sqlx::query(&self.sql(
            "SELECT CAST(COALESCE(SUM(CASE WHEN status = ? AND reason NOT LIKE ? THEN 1 ELSE 0 END), 0) AS BIGINT) AS pending, \
             CAST(COALESCE(SUM(CASE WHEN status = ? AND claimed_by IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT) AS elsewhere \
             FROM subtasks WHERE job_id = ?",
        ))
        .bind(SubtaskStatus::Pending.as_str())
        .bind(format!("{unless_reason}%"))
        .bind(SubtaskStatus::Running.as_str())
        .bind(job.to_string())
        .fetch_one(&self.pool)
        .await?;
        Ok((
            to_u64("pending", row.try_get("pending")?)?,
            to_u64("elsewhere", row.try_get("elsewhere")?)?,
        ))
    }

    /// Readies a job a previous run left mid-way, keeping what runs
    /// elsewhere: attempts left `running` are marked interrupted and
    /// subtasks left `running` go back to `pending`, unclaimed, except
    /// (with `keep_claimed`) those under a live claim, whose daemon (or
    /// another session of this one) still runs them. Returns how many
    /// attempts were interrupted.
    pub async fn release_running(
        &self,
        job: JobId,
        keep_claimed: bool,
        reason: &str,
    ) -> Result<u64> {
        let now = now_secs();
        let keep = if keep_claimed { LIVE_CLAIM } else { "1 = 0" };
        let bind_keep = |query| bind_live_claim(query, keep_claimed, now);
        let mut tx = self.pool.begin().await?;
        let sql = format!(
            "UPDATE attempts SET outcome = ?, error = ?, finished_at = ? \
             WHERE job_id = ? AND outcome = ? AND (subtask_id IS NULL OR subtask_id NOT IN \
             (SELECT id FROM subtasks WHERE job_id = ? AND status = ? AND {keep}))"
        );
        let sql = self.sql(&sql);
        let query = sqlx::query(&sql)
            .bind(AttemptOutcome::Interrupted.as_str())
            .bind(reason)
            .bind(now)
            .bind(job.to_string())
            .bind(AttemptOutcome::Running.as_str())
            .bind(job.to_string())
            .bind(SubtaskStatus::Running.as_str());
        let interrupted = bind_keep(query).execute(&mut *tx).await?.rows_affected();
        let sql = format!(
            "UPDATE subtasks SET status = ?, claimed_by = NULL, claim_expires_at = NULL, \
             updated_at = ? WHERE job_id = ? AND status = ? AND NOT ({keep})"
        );
        let sql = self.sql(&sql);
        let query = sqlx::query(&sql)
            .bind(SubtaskStatus::Pending.as_str())
            .bind(now)
            .bind(job.to_string())
            .bind(SubtaskStatus::Running.as_str());
        bind_keep(query).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(interrupted)
    }

    /// Running jobs whose lease another daemon than `owner` holds and that
    /// have pending subtasks to claim (leaving out those whose reason
    /// starts with `unless_reason`), by priority then age, at most `limit`.
    pub async fn jobs_to_assist(
        &self,
        owner: &str,
        unless_reason: &str,
        limit: usize,
    ) -> Result<Vec<JobId>> {
        collect_rows(
            sqlx::query(&self.sql(
                "SELECT j.id FROM jobs j WHERE j.status = ? AND j.lease_owner IS NOT NULL \
                 AND j.lease_owner <> ? AND COALESCE(j.lease_expires_at, 0) >= ? \
                 AND EXISTS (SELECT 1 FROM subtasks s WHERE s.job_id = j.id AND s.status = ? \
                 AND s.reason NOT LIKE ?) ORDER BY j.priority DESC, j.created_at LIMIT ?",
            ))
            .bind(JobStatus::Running.as_str())
            .bind(owner)
            .bind(now_secs())
            .bind(SubtaskStatus::Pending.as_str())
            .bind(format!("{unless_reason}%"))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX)),
            &self.pool,
            |row| parse_col(row, "id"),
        )
        .await
    }

    /// The request hashes of the ledger's calls made for `subtask`.
    pub async fn subtask_call_hashes(&self, subtask: SubtaskId) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(&self.sql(
            "SELECT c.request_sha256 FROM model_calls c JOIN attempts a ON a.id = c.attempt_id \
             WHERE a.subtask_id = ?",
        ))
        .bind(subtask.to_string())
        .fetch_all(&self.pool)
        .await?)
    }

    /// How many of `job`'s subtasks each daemon claimed last (who ran them).
    pub async fn subtasks_by_claimer(&self, job: JobId) -> Result<BTreeMap<String, u64>> {
        let rows = collect_rows(
            sqlx::query(&self.sql(
                "SELECT claimed_by, CAST(COUNT(*) AS BIGINT) AS n FROM subtasks \
                 WHERE job_id = ? AND claimed_by IS NOT NULL GROUP BY claimed_by",
            ))
            .bind(job.to_string()),
            &self.pool,
            |row| {
                let owner: String = row.try_get("claimed_by")?;
                Ok((owner, to_u64("count", row.try_get("n")?)?))
            },
        )
        .await?;
        Ok(rows.into_iter().collect())
    }
}
