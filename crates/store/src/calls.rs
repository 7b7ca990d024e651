//! The model-call ledger: every finished provider call with its response,
//! tokens and cost, keyed by its request hash for replay on resume.

use cadre_types::{AttemptId, AttemptOutcome, FailureKind, JobId, Role};
use sqlx::AnyConnection;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::attempt_batch::{multi_row_insert, row_chunks};
use crate::convert::{for_each_row, now_secs, parse_col, to_i64, to_u32, to_u64};
use crate::{Backend, Result, Store};

/// A finished call to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCall {
    /// The job.
    pub job_id: JobId,
    /// The attempt it belongs to (must exist).
    pub attempt_id: AttemptId,
    /// Turn number within the attempt's conversation.
    pub turn: u32,
    /// SHA-256 of the request body.
    pub request_sha256: String,
    /// Who called.
    pub role: Role,
    /// Tier name.
    pub tier: String,
    /// Model id.
    pub model: String,
    /// The full response, as JSON text (serialized once, never as a tree:
    /// a planner's answer for a large job is megabytes).
    pub response_json: String,
    /// Uncached input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cache-read input tokens.
    pub cache_read_tokens: u64,
    /// Cache-write input tokens.
    pub cache_write_tokens: u64,
    /// What it cost.
    pub cost_usd: f64,
    /// How long it took.
    pub latency_ms: u64,
    /// Sent in a Message Batch.
    pub batch: bool,
}

/// A recorded call.
#[derive(Debug, Clone, PartialEq)]
pub struct CallRecord {
    /// Ledger order.
    pub seq: i64,
    /// The job.
    pub job_id: JobId,
    /// The attempt.
    pub attempt_id: AttemptId,
    /// Turn number.
    pub turn: u32,
    /// Request hash.
    pub request_sha256: String,
    /// Who called.
    pub role: Role,
    /// Tier name.
    pub tier: String,
    /// Model id.
    pub model: String,
    /// The response: loaded by [`Store::find_call`] (for replay), left out
    /// by [`Store::list_calls`] (a ledger listing needs tokens and costs, and
    /// a 10,000-call job's responses would dominate its memory).
    pub response: Option<serde_json::Value>,
    /// Uncached input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cache-read tokens.
    pub cache_read_tokens: u64,
    /// Cache-write tokens.
    pub cache_write_tokens: u64,
    /// Cost.
    pub cost_usd: f64,
    /// Latency.
    pub latency_ms: u64,
    /// Batch call.
    pub batch: bool,
    /// Unix seconds.
    pub created_at: i64,
}

const CALL_COLUMNS: &str = "seq, job_id, attempt_id, turn, request_sha256, role, tier, model, \
     input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_usd, latency_ms, batch, created_at";

fn call_from_row(row: &AnyRow, with_response: bool) -> Result<CallRecord> {
    let response = if with_response {
        let text: String = row.try_get("response_json")?;
        Some(serde_json::from_str(&text)?)
    } else {
        None
    };
    Ok(CallRecord {
        seq: row.try_get("seq")?,
        job_id: parse_col(row, "job_id")?,
        attempt_id: parse_col(row, "attempt_id")?,
        turn: to_u32("turn", row.try_get("turn")?)?,
        request_sha256: row.try_get("request_sha256")?,
        role: parse_col(row, "role")?,
        tier: row.try_get("tier")?,
        model: row.try_get("model")?,
        response,
        input_tokens: to_u64("input_tokens", row.try_get("input_tokens")?)?,
        output_tokens: to_u64("output_tokens", row.try_get("output_tokens")?)?,
        cache_read_tokens: to_u64("cache_read_tokens", row.try_get("cache_read_tokens")?)?,
        cache_write_tokens: to_u64("cache_write_tokens", row.try_get("cache_write_tokens")?)?,
        cost_usd: row.try_get("cost_usd")?,
        latency_ms: to_u64("latency_ms", row.try_get("latency_ms")?)?,
        batch: row.try_get::<i64, _>("batch")? != 0,
        created_at: row.try_get("created_at")?,
    })
}

/// The one `INSERT` of finished calls into the ledger
/// ([`Store::record_call`] and the group commit), a few multi-row
/// statements (see [`row_chunks`]), recorded `now`: their ledger sequence
/// numbers, in the same order.
pub(crate) async fn insert_calls(
    conn: &mut AnyConnection,
    backend: Backend,
    calls: &[&NewCall],
    now: i64,
) -> Result<Vec<i64>> {
    let mut seqs = Vec::with_capacity(calls.len());
    for chunk in row_chunks(calls) {
        let sql = multi_row_insert(
            "INSERT INTO model_calls (job_id, attempt_id, turn, request_sha256, role, tier, model, \
             response_json, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, \
             cost_usd, latency_ms, batch, created_at)",
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            chunk.len(),
            " RETURNING seq",
        );
        let sql = backend.sql(&sql);
        let mut query = sqlx::query_scalar::<_, i64>(&sql);
        for c in chunk {
            query = query
                .bind(c.job_id.to_string())
                .bind(c.attempt_id.to_string())
                .bind(i64::from(c.turn))
                .bind(&c.request_sha256)
                .bind(c.role.as_str())
                .bind(&c.tier)
                .bind(&c.model)
                .bind(&c.response_json)
                .bind(to_i64("input_tokens", c.input_tokens)?)
                .bind(to_i64("output_tokens", c.output_tokens)?)
                .bind(to_i64("cache_read_tokens", c.cache_read_tokens)?)
                .bind(to_i64("cache_write_tokens", c.cache_write_tokens)?)
                .bind(c.cost_usd)
                .bind(to_i64("latency_ms", c.latency_ms)?)
                .bind(i64::from(c.batch))
                .bind(now);
        }
        let mut got = query.fetch_all(&mut *conn).await?;
        // Rows are numbered upwards in insert order; RETURNING's order is not promised.
        got.sort_unstable();
        seqs.extend(got);
    }
    Ok(seqs)
}

impl Store {
    /// Records a finished call. Commit this before acting on the response.
    pub async fn record_call(&self, c: &NewCall) -> Result<i64> {
        let mut conn = self.pool.acquire().await?;
        let seqs = insert_calls(&mut conn, self.backend, &[c], now_secs()).await?;
        seqs.first()
            .copied()
            .ok_or_else(|| sqlx::Error::RowNotFound.into())
    }

    /// The earliest finished call of `job` with this request hash.
    pub async fn find_call(&self, job: JobId, request_sha256: &str) -> Result<Option<CallRecord>> {
        let sql = format!(
            "SELECT {CALL_COLUMNS}, response_json FROM model_calls WHERE job_id = ? AND request_sha256 = ? ORDER BY seq LIMIT 1"
        );
        let row = sqlx::query(&self.sql(&sql))
            .bind(job.to_string())
            .bind(request_sha256)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(|r| call_from_row(r, true)).transpose()
    }

    /// Every call of a job, in ledger order.
    pub async fn list_calls(&self, job: JobId) -> Result<Vec<CallRecord>> {
        let mut out = Vec::new();
        self.for_each_call(job, |c| out.push(c)).await?;
        Ok(out)
    }

    /// What the job's recorded calls cost, in USD (every runner's).
    pub async fn job_spent_usd(&self, job: JobId) -> Result<f64> {
        Ok(sqlx::query_scalar(
            &self.sql("SELECT COALESCE(SUM(cost_usd), 0.0) FROM model_calls WHERE job_id = ?"),
        )
        .bind(job.to_string())
        .fetch_one(&self.pool)
        .await?)
    }

    /// [`Store::list_calls`], handed to `visit` one at a time as SQLite
    /// yields them.
    pub async fn for_each_call(&self, job: JobId, visit: impl FnMut(CallRecord)) -> Result<()> {
        let sql = format!("SELECT {CALL_COLUMNS} FROM model_calls WHERE job_id = ? ORDER BY seq");
        for_each_row(
            sqlx::query(&self.sql(&sql)).bind(job.to_string()),
            &self.pool,
            |r| call_from_row(r, false),
            visit,
        )
        .await
    }

    /// Records that these attempts' requests went out in Message Batch
    /// `batch_id`, so a restart polls that batch instead of sending again.
    pub async fn set_attempts_batch(&self, attempts: &[AttemptId], batch_id: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for id in attempts {
            sqlx::query(&self.sql("UPDATE attempts SET batch_id = ? WHERE id = ?"))
                .bind(batch_id)
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Turns a passed attempt into a failed one after the fact (the
    /// integration check blamed it or the reviewer rejected it). CAS on
    /// `passed`; returns true iff it changed.
    pub async fn reject_attempt(
        &self,
        id: AttemptId,
        failure: FailureKind,
        error: &str,
    ) -> Result<bool> {
        let done = sqlx::query(&self.sql(
            "UPDATE attempts SET outcome = ?, failure = ?, error = ? WHERE id = ? AND outcome = ?",
        ))
        .bind(AttemptOutcome::Failed.as_str())
        .bind(failure.as_str())
        .bind(error)
        .bind(id.to_string())
        .bind(AttemptOutcome::Passed.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NewAttempt, NewJob};
    use cadre_types::JobStatus;

    #[tokio::test]
    async fn calls_are_recorded_found_and_listed() {
        let store = Store::open_in_memory().await.unwrap();
        let job = JobId::new();
        store
            .create_job(&NewJob {
                id: job,
                instruction: "i".into(),
                workspace: "/w".into(),
                options: serde_json::json!({}),
                priority: 0,
                budget_usd: None,
                status: JobStatus::Running,
            })
            .await
            .unwrap();
        let attempt = AttemptId::new();
        store
            .start_attempt(&NewAttempt {
                id: attempt,
                job_id: job,
                subtask_id: None,
                role: Role::Planner,
                tier: "opus".into(),
                model: "m".into(),
                effort: None,
                ordinal: 1,
                request_sha256: "abc".into(),
                batch_id: None,
            })
            .await
            .unwrap();
        let call = NewCall {
            job_id: job,
            attempt_id: attempt,
            turn: 0,
            request_sha256: "abc".into(),
            role: Role::Planner,
            tier: "opus".into(),
            model: "m".into(),
            response_json: r#"{"id":"msg_1"}"#.to_owned(),
            input_tokens: 10,
            output_tokens: 5,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            cost_usd: 0.25,
            latency_ms: 7,
            batch: false,
        };
        store.record_call(&call).await.unwrap();
        let found = store.find_call(job, "abc").await.unwrap().unwrap();
        assert_eq!(
            (
                found.attempt_id,
                found.cost_usd,
                found.response.as_ref().and_then(|r| r["id"].as_str())
            ),
            (attempt, 0.25, Some("msg_1"))
        );
        assert!(store.find_call(job, "other").await.unwrap().is_none());
        assert_eq!(store.list_calls(job).await.unwrap().len(), 1);
        assert!(
            !store
                .reject_attempt(attempt, FailureKind::ReviewRejected, "x")
                .await
                .unwrap(),
            "still running"
        );
    }
}
