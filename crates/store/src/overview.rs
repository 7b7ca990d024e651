//! Read-only views across jobs for the dashboard: a job listing filtered by
//! status, the progress and cost of a page of jobs in one query, and a job's
//! model-call cost over time from the ledger.

use std::collections::HashMap;

use cadre_types::{JobId, JobStatus, Role, SubtaskStatus};
use sqlx::Row;

use crate::convert::{collect_rows, parse_col, placeholders, to_u32};
use crate::jobs::{JOB_COLUMNS, job_from_row};
use crate::{JobRecord, Result, Store};

/// A job's files by state and what it has cost so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobProgressRow {
    /// Its subtasks (files in the plan).
    pub files: u32,
    /// Of which accepted.
    pub accepted: u32,
    /// Of which needing a human.
    pub needs_human: u32,
    /// Of which being worked on now (`running`).
    pub in_flight: u32,
    /// Every recorded model call's cost (planner, workers, reviewer), as the
    /// job's report sums it.
    pub cost_usd: f64,
}

/// Model-call cost of one job in one second, for one role and tier.
#[derive(Debug, Clone, PartialEq)]
pub struct CallCostRow {
    /// When the calls were recorded (unix seconds).
    pub at: i64,
    /// Who called.
    pub role: Role,
    /// The tier.
    pub tier: String,
    /// How many calls.
    pub calls: u32,
    /// Their total cost.
    pub cost_usd: f64,
}

impl Store {
    /// [`Store::list_jobs`] keeping only jobs whose status is one of
    /// `statuses` (every job when it is empty), filtered in SQL so a page is
    /// full whenever enough jobs match. The cursor is the last job id of the
    /// previous page, as for [`Store::list_jobs`].
    pub async fn list_jobs_by_status(
        &self,
        statuses: &[JobStatus],
        before: Option<JobId>,
        limit: u32,
    ) -> Result<Vec<JobRecord>> {
        if statuses.is_empty() {
            return self.list_jobs(before, limit).await;
        }
        let columns = JOB_COLUMNS
            .replace("plan_json", "NULL AS plan_json")
            .replace("patch", "NULL AS patch");
        let after_cursor = if before.is_some() {
            "AND (created_at, id) < (SELECT created_at, id FROM jobs WHERE id = ?)"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {columns} FROM jobs WHERE status IN ({}) {after_cursor} \
             ORDER BY created_at DESC, id DESC LIMIT ?",
            placeholders(statuses.len())
        );
        let sql = self.sql(&sql);
        let mut query = sqlx::query(&sql);
        for status in statuses {
            query = query.bind(status.as_str());
        }
        if let Some(cursor) = before {
            query = query.bind(cursor.to_string());
        }
        collect_rows(query.bind(i64::from(limit)), &self.pool, job_from_row).await
    }

    /// The progress of each of `jobs` that exists, in one query: its files
    /// by state and its model calls' total cost.
    pub async fn job_progress(&self, jobs: &[JobId]) -> Result<HashMap<JobId, JobProgressRow>> {
        if jobs.is_empty() {
            return Ok(HashMap::new());
        }
        let ids = placeholders(jobs.len());
        let sql = format!(
            "SELECT j.id AS id, \
                    COALESCE(s.files, 0) AS files, COALESCE(s.accepted, 0) AS accepted, \
                    COALESCE(s.needs_human, 0) AS needs_human, \
                    COALESCE(s.in_flight, 0) AS in_flight, \
                    COALESCE(c.cost_usd, 0.0) AS cost_usd \
             FROM jobs j \
             LEFT JOIN ( \
                 SELECT job_id, COUNT(*) AS files, \
                        SUM(CASE WHEN status = ? THEN 1 ELSE 0 END) AS accepted, \
                        SUM(CASE WHEN status = ? THEN 1 ELSE 0 END) AS needs_human, \
                        SUM(CASE WHEN status = ? THEN 1 ELSE 0 END) AS in_flight \
                 FROM subtasks WHERE job_id IN ({ids}) GROUP BY job_id \
             ) s ON s.job_id = j.id \
             LEFT JOIN ( \
                 SELECT job_id, COALESCE(SUM(cost_usd), 0.0) AS cost_usd \
                 FROM model_calls WHERE job_id IN ({ids}) GROUP BY job_id \
             ) c ON c.job_id = j.id \
             WHERE j.id IN ({ids})"
        );
        let sql = self.sql(&sql);
        let mut query = sqlx::query(&sql)
            .bind(SubtaskStatus::Accepted.as_str())
            .bind(SubtaskStatus::NeedsHuman.as_str())
            .bind(SubtaskStatus::Running.as_str());
        for _ in 0..3 {
            for job in jobs {
                query = query.bind(job.to_string());
            }
        }
        let rows = collect_rows(query, &self.pool, |row| {
            Ok((
                parse_col::<JobId>(row, "id")?,
                JobProgressRow {
                    files: to_u32("files", row.try_get("files")?)?,
                    accepted: to_u32("accepted", row.try_get("accepted")?)?,
                    needs_human: to_u32("needs_human", row.try_get("needs_human")?)?,
                    in_flight: to_u32("in_flight", row.try_get("in_flight")?)?,
                    cost_usd: row.try_get("cost_usd")?,
                },
            ))
        })
        .await?;
        Ok(rows.into_iter().collect())
    }

    /// The job's recorded model calls (every role) summed per second, role
    /// and tier, in time order: its cost over time.
    pub async fn call_cost_timeline(&self, job: JobId) -> Result<Vec<CallCostRow>> {
        collect_rows(
            sqlx::query(&self.sql(
                "SELECT created_at AS at, role, tier, COUNT(*) AS calls, COALESCE(SUM(cost_usd), 0.0) AS cost_usd \
                 FROM model_calls WHERE job_id = ? \
                 GROUP BY created_at, role, tier ORDER BY created_at, role, tier",
            ))
            .bind(job.to_string()),
            &self.pool,
            |row| {
                Ok(CallCostRow {
                    at: row.try_get("at")?,
                    role: parse_col(row, "role")?,
                    tier: row.try_get("tier")?,
                    calls: to_u32("calls", row.try_get("calls")?)?,
                    cost_usd: row.try_get("cost_usd")?,
                })
            },
        )
        .await
    }
}
