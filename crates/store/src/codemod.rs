//! What the codemod tier did, for reports and `cadre stats`: which subtasks
//! of a job carry an ast-grep rule, and across jobs the files a rule's
//! rewrite got accepted for (what starting at their first model tier would
//! have cost is priced by the engine from these rows); and, for the review,
//! a job's files accepted at the codemod tier with the rule that rewrote them.

use std::collections::{HashMap, HashSet};

use cadre_types::{AttemptOutcome, JobId, Role, SubtaskId, SubtaskStatus};
use sqlx::Row;

use crate::convert::{collect_rows, parse_col, to_u64};
use crate::{Result, Store};

/// A file accepted at the codemod tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodemodAcceptedRow {
    /// The model tier it was routed to start at (where it goes when the rule fails).
    pub start_tier: String,
    /// Characters of its original content.
    pub chars: u64,
}

impl Store {
    /// The subtasks of the job that carry an ast-grep rule.
    pub async fn subtasks_with_rules(&self, job: JobId) -> Result<HashSet<SubtaskId>> {
        let ids = collect_rows(
            sqlx::query(&self.sql("SELECT id FROM subtasks WHERE job_id = ? AND rule IS NOT NULL"))
                .bind(job.to_string()),
            &self.pool,
            |row| parse_col(row, "id"),
        )
        .await?;
        Ok(ids.into_iter().collect())
    }

    /// The job's subtasks accepted at the codemod tier `tier` (their
    /// `current_tier`: the accepted attempt's tier), with the rule text
    /// that rewrote each: what the review groups by rule.
    pub async fn accepted_rule_rewrites(
        &self,
        job: JobId,
        tier: &str,
    ) -> Result<HashMap<SubtaskId, String>> {
        let rows = collect_rows(
            sqlx::query(&self.sql(
                "SELECT id, rule FROM subtasks \
                 WHERE job_id = ? AND status = ? AND current_tier = ? AND rule IS NOT NULL",
            ))
            .bind(job.to_string())
            .bind(SubtaskStatus::Accepted.as_str())
            .bind(tier),
            &self.pool,
            |row| Ok((parse_col(row, "id")?, row.try_get::<String, _>("rule")?)),
        )
        .await?;
        Ok(rows.into_iter().collect())
    }

    /// Across jobs, the accepted subtasks whose accepted attempt is a passed
    /// worker attempt at `tier` (the codemod tier) started at or after `since`.
    pub async fn accepted_at_tier(
        &self,
        tier: &str,
        since: Option<i64>,
    ) -> Result<Vec<CodemodAcceptedRow>> {
        collect_rows(
            sqlx::query(&self.sql(
                "SELECT s.start_tier AS start_tier, \
                        CAST(COALESCE(length(s.original_content), 0) AS BIGINT) AS chars \
                 FROM attempts a JOIN subtasks s ON s.id = a.subtask_id \
                 WHERE a.role = ? AND a.tier = ? AND a.outcome = ? AND s.status = ? \
                   AND (? IS NULL OR a.started_at >= ?) \
                 ORDER BY a.started_at, s.id",
            ))
            .bind(Role::Worker.as_str())
            .bind(tier)
            .bind(AttemptOutcome::Passed.as_str())
            .bind(SubtaskStatus::Accepted.as_str())
            .bind(since)
            .bind(since),
            &self.pool,
            |row| {
                Ok(CodemodAcceptedRow {
                    start_tier: row.try_get("start_tier")?,
                    chars: to_u64("chars", row.try_get("chars")?)?,
                })
            },
        )
        .await
    }
}
