//! Attempts: one model call (and its validation) each, for any role.

use std::collections::HashSet;

use cadre_types::{
    AttemptId, AttemptOutcome, Complexity, ErrorCost, FailureKind, JobId, Role, SubtaskId,
};
use sqlx::Row;
use sqlx::any::AnyArguments;
use sqlx::any::AnyRow;
use sqlx::query::QueryScalar;
use sqlx::{Any, AnyConnection};

use crate::attempt_batch::{multi_row_insert, row_chunks, rows_update};
use crate::convert::{
    collect_rows, for_each_row, json_opt_col, json_text, now_secs, parse_col, parse_opt_col,
    to_i64, to_u32, to_u64,
};
use crate::{Backend, Result, Store};

/// A model call about to be sent.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAttempt {
    /// Its id (also the batch `custom_id`).
    pub id: AttemptId,
    /// The job it belongs to (must exist).
    pub job_id: JobId,
    /// The subtask it works on (workers; must exist), `None` for planner and reviewer.
    pub subtask_id: Option<SubtaskId>,
    /// Who is calling.
    pub role: Role,
    /// The tier name.
    pub tier: String,
    /// The provider's model id.
    pub model: String,
    /// The effort level sent, if any.
    pub effort: Option<String>,
    /// Attempt number within its subtask (or role).
    pub ordinal: u32,
    /// SHA-256 of the request body (detects repeated identical calls).
    pub request_sha256: String,
    /// The Message Batch it was sent in, if any.
    pub batch_id: Option<String>,
}

/// How a model call ended.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptFinish {
    /// Passed or failed (or interrupted).
    pub outcome: AttemptOutcome,
    /// Why it failed.
    pub failure: Option<FailureKind>,
    /// The failure's detail (validator output, provider message, ...).
    pub error: Option<String>,
    /// The model's response (JSON).
    pub response: Option<serde_json::Value>,
    /// The change it proposed (JSON).
    pub change: Option<serde_json::Value>,
    /// Uncached input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Input tokens read from cache.
    pub cache_read_tokens: u64,
    /// Input tokens written to cache.
    pub cache_write_tokens: u64,
    /// What the call cost.
    pub cost_usd: f64,
    /// How long the call took, milliseconds.
    pub latency_ms: u64,
}

/// A stored attempt: its request and, once finished, its result.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRecord {
    /// Its id.
    pub id: AttemptId,
    /// The job.
    pub job_id: JobId,
    /// The subtask, for workers.
    pub subtask_id: Option<SubtaskId>,
    /// Who called.
    pub role: Role,
    /// The tier name.
    pub tier: String,
    /// The model id.
    pub model: String,
    /// The effort level sent.
    pub effort: Option<String>,
    /// Attempt number within its subtask (or role).
    pub ordinal: u32,
    /// SHA-256 of the request body.
    pub request_sha256: String,
    /// The Message Batch, if any.
    pub batch_id: Option<String>,
    /// `running` until finished or interrupted.
    pub outcome: AttemptOutcome,
    /// Why it failed.
    pub failure: Option<FailureKind>,
    /// The failure's detail (or the interruption reason).
    pub error: Option<String>,
    /// The model's response.
    pub response: Option<serde_json::Value>,
    /// The change it proposed.
    pub change: Option<serde_json::Value>,
    /// Uncached input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Input tokens read from cache.
    pub cache_read_tokens: u64,
    /// Input tokens written to cache.
    pub cache_write_tokens: u64,
    /// What the call cost.
    pub cost_usd: f64,
    /// How long the call took, milliseconds.
    pub latency_ms: u64,
    /// When it started (unix seconds).
    pub started_at: i64,
    /// When it finished or was interrupted.
    pub finished_at: Option<i64>,
}

/// Worker attempts for one (complexity, error cost, language, tier) class.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptStatRow {
    /// The subtask's complexity.
    pub complexity: Complexity,
    /// The subtask's error cost.
    pub error_cost: ErrorCost,
    /// The subtask's language.
    pub language: String,
    /// The attempt's tier.
    pub tier: String,
    /// Finished attempts (passed + failed).
    pub attempts: u64,
    /// Of which passed.
    pub passed: u64,
    /// Their total cost.
    pub cost_usd: f64,
    /// The cost of the passed ones.
    pub passed_cost_usd: f64,
}

const ATTEMPT_COLUMNS: &str = "id, job_id, subtask_id, role, tier, model, effort, ordinal, \
    request_sha256, batch_id, outcome, failure, error, response_json, change_json, input_tokens, \
    output_tokens, cache_read_tokens, cache_write_tokens, cost_usd, latency_ms, started_at, \
    finished_at";

fn attempt_from_row(row: &AnyRow) -> Result<AttemptRecord> {
    Ok(AttemptRecord {
        id: parse_col(row, "id")?,
        job_id: parse_col(row, "job_id")?,
        subtask_id: parse_opt_col(row, "subtask_id")?,
        role: parse_col(row, "role")?,
        tier: row.try_get("tier")?,
        model: row.try_get("model")?,
        effort: row.try_get("effort")?,
        ordinal: to_u32("ordinal", row.try_get("ordinal")?)?,
        request_sha256: row.try_get("request_sha256")?,
        batch_id: row.try_get("batch_id")?,
        outcome: parse_col(row, "outcome")?,
        failure: parse_opt_col(row, "failure")?,
        error: row.try_get("error")?,
        response: json_opt_col(row, "response_json")?,
        change: json_opt_col(row, "change_json")?,
        input_tokens: to_u64("input_tokens", row.try_get("input_tokens")?)?,
        output_tokens: to_u64("output_tokens", row.try_get("output_tokens")?)?,
        cache_read_tokens: to_u64("cache_read_tokens", row.try_get("cache_read_tokens")?)?,
        cache_write_tokens: to_u64("cache_write_tokens", row.try_get("cache_write_tokens")?)?,
        cost_usd: row.try_get("cost_usd")?,
        latency_ms: to_u64("latency_ms", row.try_get("latency_ms")?)?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

fn opt_json(value: Option<&serde_json::Value>) -> Result<Option<String>> {
    value.map(json_text).transpose()
}

/// The one `INSERT` of started attempts ([`Store::start_attempt`] and the
/// group commit), a few multi-row statements (see [`row_chunks`]), started
/// `now`.
pub(crate) async fn insert_attempts(
    conn: &mut AnyConnection,
    backend: Backend,
    attempts: &[&NewAttempt],
    now: i64,
) -> Result<()> {
    for chunk in row_chunks(attempts) {
        let sql = multi_row_insert(
            "INSERT INTO attempts (id, job_id, subtask_id, role, tier, model, effort, ordinal, \
             request_sha256, batch_id, outcome, started_at)",
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            chunk.len(),
            "",
        );
        let sql = backend.sql(&sql);
        let mut query = sqlx::query(&sql);
        for a in chunk {
            query = query
                .bind(a.id.to_string())
                .bind(a.job_id.to_string())
                .bind(a.subtask_id.map(|s| s.to_string()))
                .bind(a.role.as_str())
                .bind(&a.tier)
                .bind(&a.model)
                .bind(&a.effort)
                .bind(i64::from(a.ordinal))
                .bind(&a.request_sha256)
                .bind(&a.batch_id)
                .bind(AttemptOutcome::Running.as_str())
                .bind(now);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// The one compare-and-set `UPDATE` that finishes a running attempt
/// ([`Store::finish_attempt`] and the group commit), finished `now`: true
/// iff the attempt was still running.
pub(crate) async fn update_finished_attempt(
    conn: &mut AnyConnection,
    backend: Backend,
    id: AttemptId,
    f: &AttemptFinish,
    now: i64,
) -> Result<bool> {
    let sql = backend.sql(
        "UPDATE attempts SET outcome = ?, failure = ?, error = ?, response_json = ?, \
         change_json = ?, input_tokens = ?, output_tokens = ?, cache_read_tokens = ?, \
         cache_write_tokens = ?, cost_usd = ?, latency_ms = ?, finished_at = ? \
         WHERE id = ? AND outcome = ? RETURNING id",
    );
    let finished = bind_finish(sqlx::query_scalar::<_, String>(&sql), f)?
        .bind(now)
        .bind(id.to_string())
        .bind(AttemptOutcome::Running.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    Ok(finished.is_some())
}

/// Binds an attempt's end, in the order of [`FINISH_COLUMNS`] after `id`.
fn bind_finish<'q>(
    query: QueryScalar<'q, Any, String, AnyArguments<'q>>,
    f: &'q AttemptFinish,
) -> Result<QueryScalar<'q, Any, String, AnyArguments<'q>>> {
    Ok(query
        .bind(f.outcome.as_str())
        .bind(f.failure.map(|k| k.as_str()))
        .bind(f.error.as_deref())
        .bind(opt_json(f.response.as_ref())?)
        .bind(opt_json(f.change.as_ref())?)
        .bind(to_i64("input_tokens", f.input_tokens)?)
        .bind(to_i64("output_tokens", f.output_tokens)?)
        .bind(to_i64("cache_read_tokens", f.cache_read_tokens)?)
        .bind(to_i64("cache_write_tokens", f.cache_write_tokens)?)
        .bind(f.cost_usd)
        .bind(to_i64("latency_ms", f.latency_ms)?))
}

/// An attempt's end as [`update_finished_attempts`] binds it: `id`, then
/// the columns [`bind_finish`] binds, in its order.
const FINISH_COLUMNS: [&str; 12] = [
    "id",
    "outcome",
    "failure",
    "error",
    "response_json",
    "change_json",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_usd",
    "latency_ms",
];

/// [`update_finished_attempt`] for several attempts (each at most once), a
/// few statements whatever their number (see [`row_chunks`]), finished
/// `now`: the ids of those that were still running. Each statement joins
/// the attempts on its rows ([`rows_update`]): each value is bound once.
pub(crate) async fn update_finished_attempts(
    conn: &mut AnyConnection,
    backend: Backend,
    finishes: &[(AttemptId, &AttemptFinish)],
    now: i64,
) -> Result<Vec<String>> {
    let set: Vec<String> = FINISH_COLUMNS[1..]
        .iter()
        .map(|col| format!("{col} = r.{col}"))
        .chain(["finished_at = ?".to_owned()])
        .collect();
    let set = set.join(", ");
    let mut changed = Vec::new();
    for chunk in row_chunks(finishes) {
        let sql = rows_update(
            "attempts",
            &FINISH_COLUMNS,
            chunk.len(),
            &set,
            "attempts.outcome = ?",
        );
        let sql = backend.sql(&sql);
        let mut query = sqlx::query_scalar::<_, String>(&sql);
        for (id, f) in chunk {
            query = bind_finish(query.bind(id.to_string()), f)?;
        }
        query = query.bind(now).bind(AttemptOutcome::Running.as_str());
        changed.extend(query.fetch_all(&mut *conn).await?);
    }
    Ok(changed)
}

impl Store {
    /// Records a model call about to be sent: outcome `running`, `started_at` = now, zero
    /// tokens and cost.
    pub async fn start_attempt(&self, a: &NewAttempt) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        insert_attempts(&mut conn, self.backend, &[a], now_secs()).await
    }

    /// Records how the call ended (outcome, failure, error, response and change JSON,
    /// tokens, cost, latency, `finished_at` = now). Compare-and-set: only while the attempt
    /// is still `running`, so a result is written once and an interrupted attempt stays
    /// interrupted. Returns true iff the row changed.
    pub async fn finish_attempt(&self, id: AttemptId, f: &AttemptFinish) -> Result<bool> {
        let mut conn = self.pool.acquire().await?;
        update_finished_attempt(&mut conn, self.backend, id, f, now_secs()).await
    }

    /// The attempt, if it exists.
    pub async fn get_attempt(&self, id: AttemptId) -> Result<Option<AttemptRecord>> {
        let sql = format!("SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE id = ?");
        let row = sqlx::query(&self.sql(&sql))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(attempt_from_row).transpose()
    }

    /// Every attempt of the job (all roles), in start order.
    pub async fn list_attempts(&self, job: JobId) -> Result<Vec<AttemptRecord>> {
        let sql = format!(
            "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE job_id = ? ORDER BY started_at, rowid"
        );
        collect_rows(
            sqlx::query(&self.sql(&sql)).bind(job.to_string()),
            &self.pool,
            attempt_from_row,
        )
        .await
    }

    /// Every attempt of the job without the model's response and the
    /// proposed change (`response` and `change` are `None`): what reports
    /// and bookkeeping need, at a fraction of the memory.
    pub async fn list_attempts_brief(&self, job: JobId) -> Result<Vec<AttemptRecord>> {
        let mut out = Vec::new();
        self.for_each_attempt_brief(job, |a| out.push(a)).await?;
        Ok(out)
    }

    /// [`Store::list_attempts_brief`], handed to `visit` one at a time as
    /// SQLite yields them.
    pub async fn for_each_attempt_brief(
        &self,
        job: JobId,
        visit: impl FnMut(AttemptRecord),
    ) -> Result<()> {
        let sql = format!(
            "SELECT {} FROM attempts WHERE job_id = ? ORDER BY started_at, rowid",
            ATTEMPT_COLUMNS
                .replace("response_json", "NULL AS response_json")
                .replace("change_json", "NULL AS change_json")
        );
        for_each_row(
            sqlx::query(&self.sql(&sql)).bind(job.to_string()),
            &self.pool,
            attempt_from_row,
            visit,
        )
        .await
    }

    /// Every attempt on one subtask, in start order, responses and changes
    /// included.
    pub async fn list_subtask_attempts(&self, subtask: SubtaskId) -> Result<Vec<AttemptRecord>> {
        let sql = format!(
            "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE subtask_id = ? ORDER BY started_at, rowid"
        );
        collect_rows(
            sqlx::query(&self.sql(&sql)).bind(subtask.to_string()),
            &self.pool,
            attempt_from_row,
        )
        .await
    }

    /// The subtasks of the job that have at least one attempt.
    pub async fn subtasks_with_attempts(&self, job: JobId) -> Result<HashSet<SubtaskId>> {
        let ids = collect_rows(
            sqlx::query(&self.sql(
                "SELECT DISTINCT subtask_id FROM attempts \
                 WHERE job_id = ? AND subtask_id IS NOT NULL",
            ))
            .bind(job.to_string()),
            &self.pool,
            |row| parse_col(row, "subtask_id"),
        )
        .await?;
        Ok(ids.into_iter().collect())
    }

    /// Finished (passed or failed) worker attempts grouped by the subtask's
    /// (complexity, error cost, language) and the attempt's tier, with pass counts and cost
    /// sums, ordered by those keys. `since` keeps attempts started at or after that unix
    /// time. Running and interrupted attempts are left out: their outcome is unknown.
    pub async fn attempt_stats(&self, since: Option<i64>) -> Result<Vec<AttemptStatRow>> {
        let rows = sqlx::query(&self.sql(
            "SELECT s.complexity AS complexity, s.error_cost AS error_cost, \
                    s.language AS language, a.tier AS tier, \
                    COUNT(*) AS attempts, \
                    SUM(CASE WHEN a.outcome = ? THEN 1 ELSE 0 END) AS passed, \
                    COALESCE(SUM(a.cost_usd), 0.0) AS cost_usd, \
                    COALESCE(SUM(CASE WHEN a.outcome = ? THEN a.cost_usd ELSE 0.0 END), 0.0) AS passed_cost_usd \
             FROM attempts a JOIN subtasks s ON s.id = a.subtask_id \
             WHERE a.role = ? AND a.outcome IN (?, ?) AND (? IS NULL OR a.started_at >= ?) \
             GROUP BY s.complexity, s.error_cost, s.language, a.tier \
             ORDER BY s.complexity, s.error_cost, s.language, a.tier",
        ))
        .bind(AttemptOutcome::Passed.as_str())
        .bind(AttemptOutcome::Passed.as_str())
        .bind(Role::Worker.as_str())
        .bind(AttemptOutcome::Passed.as_str())
        .bind(AttemptOutcome::Failed.as_str())
        .bind(since)
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AttemptStatRow {
                    complexity: parse_col(row, "complexity")?,
                    error_cost: parse_col(row, "error_cost")?,
                    language: row.try_get("language")?,
                    tier: row.try_get("tier")?,
                    attempts: to_u64("attempts", row.try_get("attempts")?)?,
                    passed: to_u64("passed", row.try_get("passed")?)?,
                    cost_usd: row.try_get("cost_usd")?,
                    passed_cost_usd: row.try_get("passed_cost_usd")?,
                })
            })
            .collect()
    }

    /// Across jobs: how subtasks that had worker attempts ended, how many
    /// needed more than one tier, and what accepted ones cost (failed
    /// attempts included). `since` filters on the subtask's first attempt.
    pub async fn subtask_outcome_stats(&self, since: Option<i64>) -> Result<SubtaskOutcomeStats> {
        let row = sqlx::query(&self.sql(
            "SELECT COUNT(*) AS subtasks, \
                    COALESCE(SUM(CASE WHEN s.status = 'accepted' THEN 1 ELSE 0 END), 0) AS accepted, \
                    COALESCE(SUM(CASE WHEN s.status = 'needs_human' THEN 1 ELSE 0 END), 0) AS needs_human, \
                    COALESCE(SUM(CASE WHEN x.tiers > 1 THEN 1 ELSE 0 END), 0) AS escalated, \
                    COALESCE(SUM(CASE WHEN s.status = 'accepted' THEN x.cost ELSE 0.0 END), 0.0) AS accepted_cost_usd \
             FROM subtasks s JOIN ( \
                 SELECT subtask_id, COUNT(DISTINCT tier) AS tiers, COALESCE(SUM(cost_usd), 0.0) AS cost, \
                        MIN(started_at) AS first_at \
                 FROM attempts WHERE role = ? AND subtask_id IS NOT NULL GROUP BY subtask_id \
             ) x ON x.subtask_id = s.id \
             WHERE (? IS NULL OR x.first_at >= ?)",
        ))
        .bind(Role::Worker.as_str())
        .bind(since)
        .bind(since)
        .fetch_one(&self.pool)
        .await?;
        let count = |name: &'static str| -> Result<u64> { to_u64(name, row.try_get(name)?) };
        Ok(SubtaskOutcomeStats {
            subtasks: to_u64("subtasks", row.try_get("subtasks")?)?,
            accepted: count("accepted")?,
            needs_human: count("needs_human")?,
            escalated: count("escalated")?,
            accepted_cost_usd: row.try_get("accepted_cost_usd")?,
        })
    }
}

/// Outcome totals over subtasks that had worker attempts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubtaskOutcomeStats {
    /// Subtasks with at least one worker attempt.
    pub subtasks: u64,
    /// Of those, accepted.
    pub accepted: u64,
    /// Of those, needing a human.
    pub needs_human: u64,
    /// Of those, tried at more than one tier.
    pub escalated: u64,
    /// Worker cost of the accepted ones, failed attempts included.
    pub accepted_cost_usd: f64,
}
