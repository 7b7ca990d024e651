//! The append-only event log.

use cadre_types::{EventKind, JobEvent, JobId, SubtaskId};
use sqlx::AnyConnection;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::attempt_batch::{multi_row_insert, row_chunks};
use crate::convert::{json_col, json_text, now_secs, parse_col, parse_opt_col};
use crate::{Backend, Result, Store};

/// An event to append to a job's log.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// The job (must exist).
    pub job_id: JobId,
    /// The subtask it concerns, if any (not checked against the subtasks table).
    pub subtask_id: Option<SubtaskId>,
    /// What happened.
    pub kind: EventKind,
    /// One line for humans.
    pub message: String,
    /// Detail for scripts.
    pub data: serde_json::Value,
}

fn event_from_row(row: &AnyRow) -> Result<JobEvent> {
    Ok(JobEvent {
        seq: row.try_get("seq")?,
        job_id: parse_col(row, "job_id")?,
        subtask_id: parse_opt_col(row, "subtask_id")?,
        kind: parse_col(row, "kind")?,
        message: row.try_get("message")?,
        data: json_col(row, "data_json")?,
        at: row.try_get("at")?,
    })
}

/// The one `INSERT` of an event ([`Store::append_event`] and the group
/// commit), stamped `now`: its sequence number.
pub(crate) async fn insert_event(
    conn: &mut AnyConnection,
    backend: Backend,
    e: &NewEvent,
    now: i64,
) -> Result<i64> {
    let seqs = insert_events(conn, backend, &[e], now).await?;
    seqs.first()
        .copied()
        .ok_or_else(|| sqlx::Error::RowNotFound.into())
}

/// Appends `events` in order with a few multi-row `INSERT`s (see
/// [`row_chunks`]), stamped `now`: their sequence numbers, in the same order.
pub(crate) async fn insert_events(
    conn: &mut AnyConnection,
    backend: Backend,
    events: &[&NewEvent],
    now: i64,
) -> Result<Vec<i64>> {
    let mut seqs = Vec::with_capacity(events.len());
    for chunk in row_chunks(events) {
        let sql = multi_row_insert(
            "INSERT INTO events (job_id, subtask_id, kind, message, data_json, at)",
            "(?, ?, ?, ?, ?, ?)",
            chunk.len(),
            " RETURNING seq",
        );
        let sql = backend.sql(&sql);
        let mut query = sqlx::query_scalar::<_, i64>(&sql);
        for e in chunk {
            query = query
                .bind(e.job_id.to_string())
                .bind(e.subtask_id.map(|s| s.to_string()))
                .bind(e.kind.as_str())
                .bind(&e.message)
                .bind(json_text(&e.data)?)
                .bind(now);
        }
        let mut got = query.fetch_all(&mut *conn).await?;
        // One statement inserts its rows in order, numbering them upwards;
        // RETURNING's row order is not promised, the numbers are.
        got.sort_unstable();
        seqs.extend(got);
    }
    Ok(seqs)
}

/// PostgreSQL only: the per-job advisory lock an event append holds until
/// its transaction ends, so a job's events commit in sequence order.
pub(crate) async fn lock_event_stream(conn: &mut AnyConnection, job: &str) -> Result<()> {
    // A projection the `Any` driver can read (the lock function returns `void`).
    sqlx::query(
        "SELECT CAST(1 AS BIGINT) FROM (SELECT pg_advisory_xact_lock(hashtextextended($1, 0))) AS l",
    )
    .bind(job)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl Store {
    /// Appends an event stamped now and returns its sequence number: unique across the
    /// store and increasing in append order (`AUTOINCREMENT`, never reused).
    ///
    /// On PostgreSQL a sequence number is taken at insert but becomes visible at commit, so
    /// two writers could commit a job's events out of order and a reader resuming after the
    /// higher one would never see the lower. The append therefore takes a per-job advisory
    /// lock for its transaction: a job's events commit in sequence order.
    pub async fn append_event(&self, e: &NewEvent) -> Result<i64> {
        match self.backend() {
            Backend::Sqlite => {
                let mut conn = self.pool.acquire().await?;
                insert_event(&mut conn, Backend::Sqlite, e, now_secs()).await
            }
            Backend::Postgres => {
                let mut tx = self.pool.begin().await?;
                lock_event_stream(&mut tx, &e.job_id.to_string()).await?;
                let seq = insert_event(&mut tx, Backend::Postgres, e, now_secs()).await?;
                tx.commit().await?;
                Ok(seq)
            }
        }
    }

    /// The job's events with `seq > after`, ascending, at most `limit` (pass the last seq
    /// seen to page or to resume a stream; 0 for the start).
    pub async fn list_events(&self, job: JobId, after: i64, limit: u32) -> Result<Vec<JobEvent>> {
        let rows = sqlx::query(&self.sql(
            "SELECT seq, job_id, subtask_id, kind, message, data_json, at FROM events \
             WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?",
        ))
        .bind(job.to_string())
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(event_from_row).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NewJob;
    use cadre_types::JobStatus;

    #[tokio::test]
    async fn in_memory_events_round_trip() {
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
                status: JobStatus::Queued,
            })
            .await
            .unwrap();
        let seq = store
            .append_event(&NewEvent {
                job_id: job,
                subtask_id: None,
                kind: EventKind::Note,
                message: "hello".into(),
                data: serde_json::json!({"k": 1}),
            })
            .await
            .unwrap();
        let events = store.list_events(job, 0, 10).await.unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].seq, seq);
        assert_eq!(events[0].data, serde_json::json!({"k": 1}));
    }
}
