//! Routed paths: the rungs adaptive routing chose per subtask
//! (`subtask_paths`), and the rung statistics the router learns them from,
//! split by how a rung was reached (the subtask started there or escalated
//! into it).

use std::collections::HashMap;

use cadre_types::{AttemptOutcome, Complexity, ErrorCost, JobId, Role, SubtaskId};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::convert::{now_secs, parse_col, to_u64};
use crate::{Result, Store};

/// The path chosen for one subtask.
#[derive(Debug, Clone, PartialEq)]
pub struct SubtaskPath {
    /// The subtask (must exist).
    pub subtask_id: SubtaskId,
    /// Rung names, cheapest first.
    pub path: Vec<String>,
    /// Expected solved share, when estimated.
    pub solved_share: Option<f64>,
    /// Expected cost per subtask, when estimated.
    pub cost_usd: Option<f64>,
    /// Whether the path was sampled to explore.
    pub explored: bool,
    /// Why this path.
    pub reason: String,
}

/// Finished worker attempts for one (complexity, error cost, language,
/// rung, how reached) class.
#[derive(Debug, Clone, PartialEq)]
pub struct RungStatRow {
    /// The subtask's complexity.
    pub complexity: Complexity,
    /// The subtask's error cost.
    pub error_cost: ErrorCost,
    /// The subtask's language.
    pub language: String,
    /// The attempt's rung (the `tier` it was recorded at).
    pub rung: String,
    /// True when the subtask's first worker attempt was at this rung
    /// (started there); false when it escalated into it.
    pub started: bool,
    /// Finished attempts (passed + failed).
    pub attempts: u64,
    /// Of which passed.
    pub passed: u64,
    /// Their total cost.
    pub cost_usd: f64,
    /// The cost of the passed ones.
    pub passed_cost_usd: f64,
    /// Their total output tokens.
    pub output_tokens: u64,
}

fn path_from_row(row: &AnyRow) -> Result<SubtaskPath> {
    let text: String = row.try_get("path")?;
    let explored: i64 = row.try_get("explored")?;
    Ok(SubtaskPath {
        subtask_id: parse_col(row, "subtask_id")?,
        path: serde_json::from_str(&text)?,
        solved_share: row.try_get("solved_share")?,
        cost_usd: row.try_get("cost_usd")?,
        explored: explored != 0,
        reason: row.try_get("reason")?,
    })
}

impl Store {
    /// Stores the paths chosen for subtasks, in one transaction; a subtask
    /// that already has one keeps it (a resumed job never re-routes).
    pub async fn insert_subtask_paths(&self, paths: &[SubtaskPath]) -> Result<()> {
        let now = now_secs();
        let mut tx = self.pool.begin().await?;
        for p in paths {
            let path = serde_json::to_string(&p.path)?;
            sqlx::query(&self.sql(
                "INSERT INTO subtask_paths \
                 (subtask_id, path, solved_share, cost_usd, explored, reason, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (subtask_id) DO NOTHING",
            ))
            .bind(p.subtask_id.to_string())
            .bind(path)
            .bind(p.solved_share)
            .bind(p.cost_usd)
            .bind(i64::from(p.explored))
            .bind(&p.reason)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The stored path of one subtask, if routing chose one.
    pub async fn subtask_path(&self, subtask: SubtaskId) -> Result<Option<SubtaskPath>> {
        let row = sqlx::query(&self.sql(
            "SELECT subtask_id, path, solved_share, cost_usd, explored, reason \
             FROM subtask_paths WHERE subtask_id = ?",
        ))
        .bind(subtask.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(path_from_row).transpose()
    }

    /// The stored paths of a job's subtasks, by subtask.
    pub async fn subtask_paths(&self, job: JobId) -> Result<HashMap<SubtaskId, SubtaskPath>> {
        let rows = sqlx::query(&self.sql(
            "SELECT p.subtask_id AS subtask_id, p.path AS path, p.solved_share AS solved_share, \
                    p.cost_usd AS cost_usd, p.explored AS explored, p.reason AS reason \
             FROM subtask_paths p JOIN subtasks s ON s.id = p.subtask_id \
             WHERE s.job_id = ?",
        ))
        .bind(job.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let record = path_from_row(row)?;
                Ok((record.subtask_id, record))
            })
            .collect()
    }

    /// Finished worker attempts per (complexity, error cost, language, rung,
    /// started there or escalated into it), with pass counts, cost and
    /// output-token sums. `since` keeps attempts started at or after that
    /// unix time. Attempts at `rule_tier` (the codemod tier: a rule's
    /// rewrite, not a model) are left out, so a subtask's first model
    /// attempt counts as where it started.
    pub async fn rung_stats(
        &self,
        since: Option<i64>,
        rule_tier: &str,
    ) -> Result<Vec<RungStatRow>> {
        let rows = sqlx::query(&self.sql("WITH firsts AS ( \
                 SELECT subtask_id, tier FROM ( \
                     SELECT subtask_id, tier, ROW_NUMBER() OVER \
                         (PARTITION BY subtask_id ORDER BY ordinal, started_at) AS n \
                     FROM attempts WHERE role = ? AND tier <> ? AND subtask_id IS NOT NULL \
                 ) ranked WHERE n = 1 \
             ) \
             SELECT s.complexity AS complexity, s.error_cost AS error_cost, \
                    s.language AS language, a.tier AS rung, \
                    CAST(CASE WHEN f.tier = a.tier THEN 1 ELSE 0 END AS BIGINT) AS started, \
                    COUNT(*) AS attempts, \
                    SUM(CASE WHEN a.outcome = ? THEN 1 ELSE 0 END) AS passed, \
                    COALESCE(SUM(a.cost_usd), 0.0) AS cost_usd, \
                    COALESCE(SUM(CASE WHEN a.outcome = ? THEN a.cost_usd ELSE 0.0 END), 0.0) AS passed_cost_usd, \
                    CAST(COALESCE(SUM(a.output_tokens), 0) AS BIGINT) AS output_tokens \
             FROM attempts a JOIN subtasks s ON s.id = a.subtask_id \
                  JOIN firsts f ON f.subtask_id = a.subtask_id \
             WHERE a.role = ? AND a.tier <> ? AND a.outcome IN (?, ?) \
                   AND (? IS NULL OR a.started_at >= ?) \
             GROUP BY 1, 2, 3, 4, 5 \
             ORDER BY 1, 2, 3, 4, 5"))
        .bind(Role::Worker.as_str())
        .bind(rule_tier)
        .bind(AttemptOutcome::Passed.as_str())
        .bind(AttemptOutcome::Passed.as_str())
        .bind(Role::Worker.as_str())
        .bind(rule_tier)
        .bind(AttemptOutcome::Passed.as_str())
        .bind(AttemptOutcome::Failed.as_str())
        .bind(since)
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let started: i64 = row.try_get("started")?;
                Ok(RungStatRow {
                    complexity: parse_col(row, "complexity")?,
                    error_cost: parse_col(row, "error_cost")?,
                    language: row.try_get("language")?,
                    rung: row.try_get("rung")?,
                    started: started != 0,
                    attempts: to_u64("attempts", row.try_get("attempts")?)?,
                    passed: to_u64("passed", row.try_get("passed")?)?,
                    cost_usd: row.try_get("cost_usd")?,
                    passed_cost_usd: row.try_get("passed_cost_usd")?,
                    output_tokens: to_u64("output_tokens", row.try_get("output_tokens")?)?,
                })
            })
            .collect()
    }
}
