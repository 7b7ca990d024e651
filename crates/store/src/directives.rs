//! Subtask directives: what a subtask does to its file (`edit`, `create`,
//! `delete`, `move` to a new path), which plan selector made it, and the
//! ast-grep rule the codemod tier runs on it. They live in their own columns
//! (migration `20261130000100_subtask_actions_selectors.sql`), written in the
//! same transaction as the subtask rows and read apart from them, so the
//! common case (a plain edit from an explicit entry) costs nothing.

use std::collections::HashMap;

use cadre_types::{JobId, SubtaskAction, SubtaskId};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::convert::{collect_rows, parse_col};
use crate::subtasks::SubtaskWriter;
use crate::{Result, Store};

/// What a subtask does beyond a plain edit of an explicit entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubtaskDirective {
    /// `edit`, `create`, `delete` or `move`.
    pub action: SubtaskAction,
    /// A move's new workspace-relative path.
    pub move_to: Option<String>,
    /// The plan selector that expanded to this subtask (`None`: an explicit entry).
    pub selector_id: Option<String>,
    /// The ast-grep YAML rule the codemod tier runs first (`None`: no rule).
    pub rule: Option<String>,
}

impl SubtaskDirective {
    /// True when there is nothing to store: a plain edit of an explicit entry.
    pub fn is_plain(&self) -> bool {
        *self == SubtaskDirective::default()
    }
}

pub(crate) fn directive_from_row(row: &AnyRow) -> Result<SubtaskDirective> {
    Ok(SubtaskDirective {
        action: parse_col(row, "action")?,
        move_to: row.try_get("move_to")?,
        selector_id: row.try_get("selector_id")?,
        rule: row.try_get("rule")?,
    })
}

impl SubtaskWriter {
    /// Stores `directive` for the subtask `id` inserted earlier in this transaction.
    pub async fn set_directive(
        &mut self,
        id: SubtaskId,
        directive: &SubtaskDirective,
    ) -> Result<()> {
        sqlx::query(&self.backend.sql(
            "UPDATE subtasks SET action = ?, move_to = ?, selector_id = ?, rule = ? WHERE id = ?",
        ))
        .bind(directive.action.as_str())
        .bind(&directive.move_to)
        .bind(&directive.selector_id)
        .bind(&directive.rule)
        .bind(id.to_string())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }
}

impl Store {
    /// The subtask's directive (the default for a plain edit or an unknown id).
    pub async fn subtask_directive(&self, id: SubtaskId) -> Result<SubtaskDirective> {
        let row = sqlx::query(
            &self.sql("SELECT action, move_to, selector_id, rule FROM subtasks WHERE id = ?"),
        )
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row
            .as_ref()
            .map(directive_from_row)
            .transpose()?
            .unwrap_or_default())
    }

    /// The directives of the job's subtasks that are not plain edits, rules
    /// left out (`rule` is `None`): what bookkeeping over a large job needs.
    pub async fn job_directives_brief(
        &self,
        job: JobId,
    ) -> Result<HashMap<SubtaskId, SubtaskDirective>> {
        let rows = collect_rows(
            sqlx::query(&self.sql(
                "SELECT id, action, move_to, selector_id, CAST(NULL AS TEXT) AS rule FROM subtasks \
                 WHERE job_id = ? AND (action <> 'edit' OR selector_id IS NOT NULL)",
            ))
            .bind(job.to_string()),
            &self.pool,
            |row| Ok((parse_col(row, "id")?, directive_from_row(row)?)),
        )
        .await?;
        Ok(rows.into_iter().collect())
    }
}
