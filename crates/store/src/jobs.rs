//! Jobs and the queue lease on them.

use cadre_types::{JobId, JobStatus, SubtaskId};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::convert::{
    add_secs, collect_rows, flag_col, json_col, json_opt_col, json_text, now_secs, parse_col,
    placeholders, to_i64, to_u32, to_u64,
};
use crate::fence::{LeaseFence, commit_fenced};
use crate::{Backend, Error, Result, Store};

/// A job as submitted: what to do, where, and how urgently.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// Its id (the caller picks it, so it can be returned before the job is stored).
    pub id: JobId,
    /// The user's instruction.
    pub instruction: String,
    /// The workspace root.
    pub workspace: String,
    /// Run options (JSON; the engine's to define).
    pub options: serde_json::Value,
    /// Higher runs first in the queue.
    pub priority: i64,
    /// Cost cap in USD, if any.
    pub budget_usd: Option<f64>,
    /// Initial state: `queued` for the daemon's queue, anything else for a foreground run.
    pub status: JobStatus,
}

/// A stored job.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    /// Its id.
    pub id: JobId,
    /// The user's instruction.
    pub instruction: String,
    /// The workspace root.
    pub workspace: String,
    /// Run options (JSON).
    pub options: serde_json::Value,
    /// Queue priority; higher first.
    pub priority: i64,
    /// Cost cap in USD, if any.
    pub budget_usd: Option<f64>,
    /// Current state.
    pub status: JobStatus,
    /// Why it is in this state (the reason of the last transition).
    pub reason: String,
    /// The planner's plan, once planned.
    pub plan: Option<serde_json::Value>,
    /// The unified-diff patch, once finished.
    pub patch: Option<String>,
    /// Files the patch changes.
    pub files_changed: u32,
    /// Lines the patch adds.
    pub lines_added: u32,
    /// Lines the patch removes.
    pub lines_removed: u32,
    /// Wall-clock running time, milliseconds.
    pub wall_ms: u64,
    /// A user asked to cancel it.
    pub cancel_requested: bool,
    /// The runner holding the queue lease, if any.
    pub lease_owner: Option<String>,
    /// When that lease runs out (unix seconds) unless renewed by a heartbeat.
    pub lease_expires_at: Option<i64>,
    /// How many times a runner claimed it from the queue (0 for a foreground `cadre run`
    /// job, which the daemon therefore never takes over).
    pub claim_count: u32,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
    /// When it reached a terminal state.
    pub finished_at: Option<i64>,
    /// When its patch was applied to the workspace.
    pub applied_at: Option<i64>,
}

pub(crate) const JOB_COLUMNS: &str = "id, instruction, workspace, options_json, priority, budget_usd, \
    status, reason, plan_json, patch, files_changed, lines_added, lines_removed, wall_ms, cancel_requested, lease_owner, \
    lease_expires_at, claim_count, created_at, updated_at, finished_at, applied_at";

pub(crate) fn job_from_row(row: &AnyRow) -> Result<JobRecord> {
    Ok(JobRecord {
        id: parse_col(row, "id")?,
        instruction: row.try_get("instruction")?,
        workspace: row.try_get("workspace")?,
        options: json_col(row, "options_json")?,
        priority: row.try_get("priority")?,
        budget_usd: row.try_get("budget_usd")?,
        status: parse_col(row, "status")?,
        reason: row.try_get("reason")?,
        plan: json_opt_col(row, "plan_json")?,
        patch: row.try_get("patch")?,
        files_changed: to_u32("files_changed", row.try_get("files_changed")?)?,
        lines_added: to_u32("lines_added", row.try_get("lines_added")?)?,
        lines_removed: to_u32("lines_removed", row.try_get("lines_removed")?)?,
        wall_ms: to_u64("wall_ms", row.try_get("wall_ms")?)?,
        cancel_requested: flag_col(row, "cancel_requested")?,
        lease_owner: row.try_get("lease_owner")?,
        lease_expires_at: row.try_get("lease_expires_at")?,
        claim_count: to_u32("claim_count", row.try_get("claim_count")?)?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        finished_at: row.try_get("finished_at")?,
        applied_at: row.try_get("applied_at")?,
    })
}

/// The states a job never leaves, as their stored strings.
fn terminal_statuses() -> Vec<&'static str> {
    JobStatus::ALL
        .iter()
        .filter(|s| s.is_terminal())
        .map(JobStatus::as_str)
        .collect()
}

/// The states of a job that is being worked on (claimable after a crash).
fn active_statuses() -> Vec<&'static str> {
    JobStatus::ALL
        .iter()
        .filter(|s| !s.is_terminal() && **s != JobStatus::Queued)
        .map(JobStatus::as_str)
        .collect()
}

fn not_found(id: JobId) -> Error {
    Error::NotFound {
        what: "job",
        id: id.to_string(),
    }
}

/// Diffs a [`ResultWriter`] holds before writing them in one short
/// transaction: bounded memory, and the write lock is never held while
/// diffs are computed.
const RESULT_FLUSH_BYTES: usize = 256 * 1024;
/// At most this many diffs per flush.
const RESULT_FLUSH_DIFFS: usize = 128;

/// A job's result being written ([`Store::begin_result`]).
#[derive(Debug)]
pub struct ResultWriter<'a> {
    store: &'a Store,
    job: JobId,
    pending: Vec<(SubtaskId, String)>,
    pending_bytes: usize,
    files_changed: u32,
    lines_added: u32,
    lines_removed: u32,
    /// The lease the result is written under ([`Store::begin_fenced_result`]).
    fence: Option<LeaseFence>,
}

impl ResultWriter<'_> {
    /// Records one subtask's unified diff and what it changes. Diffs are
    /// written in small batches; a subtask that is not the job's fails the
    /// batch it is in with [`Error::NotFound`].
    pub async fn add_diff(
        &mut self,
        subtask: SubtaskId,
        diff: String,
        lines_added: u32,
        lines_removed: u32,
    ) -> Result<()> {
        self.pending_bytes += diff.len();
        self.pending.push((subtask, diff));
        self.files_changed += 1;
        self.lines_added += lines_added;
        self.lines_removed += lines_removed;
        if self.pending_bytes >= RESULT_FLUSH_BYTES || self.pending.len() >= RESULT_FLUSH_DIFFS {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut tx = self.store.pool.begin().await?;
        for (subtask, diff) in self.pending.drain(..) {
            let done = sqlx::query(
                &self
                    .store
                    .sql("UPDATE subtasks SET diff = ? WHERE id = ? AND job_id = ?"),
            )
            .bind(diff)
            .bind(subtask.to_string())
            .bind(self.job.to_string())
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Err(Error::NotFound {
                    what: "subtask",
                    id: subtask.to_string(),
                });
            }
        }
        commit_fenced(tx, self.store.backend(), &self.fence).await?;
        self.pending_bytes = 0;
        Ok(())
    }

    /// Stores the patch (the diffs in plan order), its counts and the
    /// job's total wall time, all at once. [`Error::NotFound`] if the job
    /// or one of the subtasks does not exist.
    pub async fn commit(mut self, wall_ms: u64) -> Result<()> {
        self.flush().await?;
        // The one aggregate the dialects spell differently.
        let concat = match self.store.backend() {
            Backend::Sqlite => "group_concat",
            Backend::Postgres => "string_agg",
        };
        let sql = format!(
            "UPDATE jobs SET patch = (SELECT coalesce({concat}(diff, '' ORDER BY ordinal, rowid), '') \
             FROM subtasks WHERE job_id = ?1 AND diff IS NOT NULL), \
             files_changed = ?2, lines_added = ?3, lines_removed = ?4, wall_ms = ?5, updated_at = ?6 \
             WHERE id = ?1"
        );
        let mut tx = self.store.pool.begin().await?;
        let done = sqlx::query(&self.store.sql(&sql))
            .bind(self.job.to_string())
            .bind(i64::from(self.files_changed))
            .bind(i64::from(self.lines_added))
            .bind(i64::from(self.lines_removed))
            .bind(to_i64("wall_ms", wall_ms)?)
            .bind(now_secs())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(not_found(self.job));
        }
        commit_fenced(tx, self.store.backend(), &self.fence).await?;
        Ok(())
    }
}

impl Store {
    /// Stores a new job (`created_at` = `updated_at` = now; finished if `status` is
    /// terminal). Fails with a database error if the id exists.
    pub async fn create_job(&self, job: &NewJob) -> Result<()> {
        let now = now_secs();
        sqlx::query(&self.sql(
            "INSERT INTO jobs (id, instruction, workspace, options_json, priority, budget_usd, \
             status, created_at, updated_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ))
        .bind(job.id.to_string())
        .bind(&job.instruction)
        .bind(&job.workspace)
        .bind(json_text(&job.options)?)
        .bind(job.priority)
        .bind(job.budget_usd)
        .bind(job.status.as_str())
        .bind(now)
        .bind(now)
        .bind(job.status.is_terminal().then_some(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The job, if it exists.
    pub async fn get_job(&self, id: JobId) -> Result<Option<JobRecord>> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?");
        let row = sqlx::query(&self.sql(&sql))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    /// The job without its plan and patch (both `None`): its state and
    /// metadata, without loading a large job's documents.
    pub async fn get_job_brief(&self, id: JobId) -> Result<Option<JobRecord>> {
        let sql = format!(
            "SELECT {} FROM jobs WHERE id = ?",
            JOB_COLUMNS
                .replace("plan_json", "NULL AS plan_json")
                .replace("patch", "NULL AS patch")
        );
        let row = sqlx::query(&self.sql(&sql))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    /// The job's patch: `None` if the job does not exist or has none yet.
    pub async fn job_patch(&self, id: JobId) -> Result<Option<String>> {
        let patch: Option<Option<String>> =
            sqlx::query_scalar(&self.sql("SELECT patch FROM jobs WHERE id = ?"))
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await?;
        Ok(patch.flatten())
    }

    /// At most `limit` jobs, newest first (by creation time, ties by id). `before` is a
    /// cursor: the last job id of the previous page; only jobs strictly after it in this
    /// order are returned. An unknown cursor id yields an empty page. A
    /// listing carries no plan or patch (both `None`): a page of large
    /// jobs costs what their metadata does.
    pub async fn list_jobs(&self, before: Option<JobId>, limit: u32) -> Result<Vec<JobRecord>> {
        let columns = JOB_COLUMNS
            .replace("plan_json", "NULL AS plan_json")
            .replace("patch", "NULL AS patch");
        match before {
            None => {
                let sql =
                    format!("SELECT {columns} FROM jobs ORDER BY created_at DESC, id DESC LIMIT ?");
                collect_rows(
                    sqlx::query(&self.sql(&sql)).bind(i64::from(limit)),
                    &self.pool,
                    job_from_row,
                )
                .await
            }
            Some(cursor) => {
                let sql = format!(
                    "SELECT {columns} FROM jobs \
                     WHERE (created_at, id) < (SELECT created_at, id FROM jobs WHERE id = ?) \
                     ORDER BY created_at DESC, id DESC LIMIT ?"
                );
                collect_rows(
                    sqlx::query(&self.sql(&sql))
                        .bind(cursor.to_string())
                        .bind(i64::from(limit)),
                    &self.pool,
                    job_from_row,
                )
                .await
            }
        }
    }

    /// Compare-and-set: moves the job to `to` only if its status is one of `from`. Sets
    /// `reason` and `updated_at`; sets `finished_at` to now when `to` is terminal and clears
    /// it otherwise (a resumed job is not finished). Returns true iff the row changed; an
    /// empty `from` or an unknown id changes nothing.
    pub async fn transition_job(
        &self,
        id: JobId,
        from: &[JobStatus],
        to: JobStatus,
        reason: &str,
    ) -> Result<bool> {
        if from.is_empty() {
            return Ok(false);
        }
        let now = now_secs();
        let sql = format!(
            "UPDATE jobs SET status = ?, reason = ?, updated_at = ?, finished_at = ? \
             WHERE id = ? AND status IN ({})",
            placeholders(from.len())
        );
        let sql = self.sql(&sql);
        let mut query = sqlx::query(&sql)
            .bind(to.as_str())
            .bind(reason)
            .bind(now)
            .bind(to.is_terminal().then_some(now))
            .bind(id.to_string());
        for status in from {
            query = query.bind(status.as_str());
        }
        let done = query.execute(&self.pool).await?;
        Ok(done.rows_affected() > 0)
    }

    /// Stores the planner's plan. [`Error::NotFound`] if the job does not exist.
    pub async fn set_job_plan(&self, id: JobId, plan: &impl serde::Serialize) -> Result<()> {
        let done =
            sqlx::query(&self.sql("UPDATE jobs SET plan_json = ?, updated_at = ? WHERE id = ?"))
                .bind(serde_json::to_string(plan)?)
                .bind(now_secs())
                .bind(id.to_string())
                .execute(&self.pool)
                .await?;
        if done.rows_affected() == 0 {
            return Err(not_found(id));
        }
        Ok(())
    }

    /// Starts replacing the job's result: its files' diffs are added one at
    /// a time ([`ResultWriter::add_diff`]) and [`ResultWriter::commit`] has
    /// SQLite concatenate them into the job's patch in one statement, so the
    /// caller never holds the whole patch and no transaction holds the write
    /// lock while diffs are computed. Until the commit, the job's stored
    /// patch and counts are the previous ones.
    pub async fn begin_result(&self, job: JobId) -> Result<ResultWriter<'_>> {
        self.begin_fenced_result(job, None).await
    }

    /// [`Store::begin_result`] under a lease: each of the result's writes
    /// checks `fence` in its transaction and fails with
    /// [`Error::LeaseLost`], storing nothing, when it does not hold.
    pub async fn begin_fenced_result(
        &self,
        job: JobId,
        fence: Option<LeaseFence>,
    ) -> Result<ResultWriter<'_>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            &self.sql("UPDATE subtasks SET diff = NULL WHERE job_id = ? AND diff IS NOT NULL"),
        )
        .bind(job.to_string())
        .execute(&mut *tx)
        .await?;
        commit_fenced(tx, self.backend(), &fence).await?;
        Ok(ResultWriter {
            store: self,
            job,
            pending: Vec::new(),
            pending_bytes: 0,
            files_changed: 0,
            lines_added: 0,
            lines_removed: 0,
            fence,
        })
    }

    /// Flags the job for cancellation unless it is already terminal. Returns true iff the
    /// flag is (now) set on a live job; false for a terminal or unknown job.
    pub async fn request_cancel(&self, id: JobId) -> Result<bool> {
        let terminal = terminal_statuses();
        let sql = format!(
            "UPDATE jobs SET cancel_requested = 1, updated_at = ? \
             WHERE id = ? AND status NOT IN ({})",
            placeholders(terminal.len())
        );
        let sql = self.sql(&sql);
        let mut query = sqlx::query(&sql).bind(now_secs()).bind(id.to_string());
        for status in terminal {
            query = query.bind(status);
        }
        Ok(query.execute(&self.pool).await?.rows_affected() > 0)
    }

    /// Sets the job's budget (USD). [`Error::NotFound`] if the job does not exist.
    pub async fn set_job_budget(&self, id: JobId, budget_usd: f64) -> Result<()> {
        let done =
            sqlx::query(&self.sql("UPDATE jobs SET budget_usd = ?, updated_at = ? WHERE id = ?"))
                .bind(budget_usd)
                .bind(now_secs())
                .bind(id.to_string())
                .execute(&self.pool)
                .await?;
        if done.rows_affected() == 0 {
            return Err(not_found(id));
        }
        Ok(())
    }

    /// Whether a user asked to cancel the job. [`Error::NotFound`] if it does not exist.
    pub async fn is_cancel_requested(&self, id: JobId) -> Result<bool> {
        let flag: Option<i64> =
            sqlx::query_scalar(&self.sql("SELECT cancel_requested FROM jobs WHERE id = ?"))
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await?;
        flag.map(|f| f != 0).ok_or_else(|| not_found(id))
    }

    /// Records that the job's patch was written to the workspace at `applied_at`.
    /// [`Error::NotFound`] if the job does not exist.
    pub async fn mark_job_applied(&self, id: JobId, applied_at: i64) -> Result<()> {
        let done =
            sqlx::query(&self.sql("UPDATE jobs SET applied_at = ?, updated_at = ? WHERE id = ?"))
                .bind(applied_at)
                .bind(now_secs())
                .bind(id.to_string())
                .execute(&self.pool)
                .await?;
        if done.rows_affected() == 0 {
            return Err(not_found(id));
        }
        Ok(())
    }

    /// Claims one job for `owner` until `now + lease_secs`, in a single
    /// `UPDATE ... WHERE id = (SELECT ... LIMIT 1) RETURNING`, so concurrent claimers never get
    /// the same job. Candidates, best first by priority (highest), then age (oldest):
    ///
    /// * a `queued` job whose lease is free or expired;
    /// * a job in a working state (`planning` .. `reviewing`) that a runner claimed before
    ///   and whose lease is expired or was released: the previous runner crashed or stopped,
    ///   and the new one resumes it.
    ///
    /// The status is left as it is (the caller transitions it); `claim_count` goes up by one.
    /// Jobs never claimed and not queued (foreground `cadre run` jobs) are never taken.
    #[tracing::instrument(skip(self), err)]
    pub async fn claim_job(
        &self,
        owner: &str,
        lease_secs: u64,
        now: i64,
    ) -> Result<Option<JobRecord>> {
        let active = active_statuses();
        // PostgreSQL: concurrent claimers skip each other's candidate row
        // instead of waiting for it (SQLite has one writer at a time anyway).
        // `NO KEY`: the claim changes no key, so it must not skip a job whose
        // row another transaction only references (an event or attempt
        // insert's foreign-key check locks it `FOR KEY SHARE`): a daemon
        // frozen mid-transaction would otherwise keep its job from ever being
        // claimed. A lease fence (`FOR SHARE`, crate::fence) still excludes it.
        let skip_locked = match self.backend() {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR NO KEY UPDATE SKIP LOCKED",
        };
        let sql = format!(
            "UPDATE jobs SET lease_owner = ?, lease_expires_at = ?, \
                 claim_count = claim_count + 1, updated_at = ? \
             WHERE id = ( \
                 SELECT id FROM jobs \
                 WHERE (lease_expires_at IS NULL OR lease_expires_at <= ?) \
                   AND (status = ? OR (claim_count > 0 AND status IN ({}))) \
                 ORDER BY priority DESC, created_at ASC, id ASC \
                 LIMIT 1{skip_locked}) \
             RETURNING {JOB_COLUMNS}",
            placeholders(active.len())
        );
        let sql = self.sql(&sql);
        let mut query = sqlx::query(&sql)
            .bind(owner)
            .bind(add_secs(now, lease_secs))
            .bind(now)
            .bind(now)
            .bind(JobStatus::Queued.as_str());
        for status in active {
            query = query.bind(status);
        }
        let row = query.fetch_optional(&self.pool).await?;
        let job = row.as_ref().map(job_from_row).transpose()?;
        if let Some(job) = &job {
            tracing::debug!(job.id = %job.id, status = %job.status, claims = job.claim_count, "claimed job");
        }
        Ok(job)
    }

    /// Extends the lease to `now + lease_secs` iff `owner` still holds it. Returns false if
    /// the lease was lost (taken by another runner after it expired, or released).
    pub async fn heartbeat_job(
        &self,
        id: JobId,
        owner: &str,
        lease_secs: u64,
        now: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            &self.sql("UPDATE jobs SET lease_expires_at = ? WHERE id = ? AND lease_owner = ?"),
        )
        .bind(add_secs(now, lease_secs))
        .bind(id.to_string())
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Gives up `owner`'s lease (no-op if it does not hold it). A released job that is not
    /// terminal becomes claimable at once (see [`Store::claim_job`]).
    pub async fn release_job(&self, id: JobId, owner: &str) -> Result<()> {
        sqlx::query(&self.sql(
            "UPDATE jobs SET lease_owner = NULL, lease_expires_at = NULL, updated_at = ? \
             WHERE id = ? AND lease_owner = ?",
        ))
        .bind(now_secs())
        .bind(id.to_string())
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
