//! Subtasks: one file's share of a job.

use cadre_types::{Complexity, ErrorCost, JobId, SubtaskId, SubtaskStatus};
use sqlx::AnyConnection;
use sqlx::Row;
use sqlx::any::AnyRow;

use std::collections::HashMap;

use crate::attempt_batch::{row_chunks, rows_update};
use crate::convert::{
    IDS_PER_STATEMENT, collect_rows, for_each_row, now_secs, parse_col, placeholders, to_u32,
    to_u64,
};
use crate::directives::{SubtaskDirective, directive_from_row};
use crate::{Backend, Result, Store};

/// Subtasks being stored in one transaction ([`Store::begin_subtasks`]):
/// nothing is visible until [`SubtaskWriter::commit`]; dropped uncommitted,
/// nothing is stored.
#[derive(Debug)]
pub struct SubtaskWriter {
    pub(crate) tx: sqlx::Transaction<'static, sqlx::Any>,
    pub(crate) backend: Backend,
    now: i64,
}

impl SubtaskWriter {
    /// Adds one subtask: `current_tier = start_tier`, `attempts = 0`,
    /// `reason = route_reason`.
    pub async fn insert(&mut self, s: &NewSubtask) -> Result<()> {
        // The first statement is a write, so the transaction takes the write
        // lock up front (waiting under busy_timeout) and never needs a
        // read-to-write upgrade.
        sqlx::query(&self.backend.sql(
            "INSERT INTO subtasks (id, job_id, ordinal, path, instruction, complexity, \
             error_cost, language, status, start_tier, route_reason, original_sha256, \
             original_content, current_tier, attempts, reason, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)",
        ))
        .bind(s.id.to_string())
        .bind(s.job_id.to_string())
        .bind(s.ordinal)
        .bind(&s.path)
        .bind(&s.instruction)
        .bind(s.complexity.as_str())
        .bind(s.error_cost.as_str())
        .bind(&s.language)
        .bind(s.status.as_str())
        .bind(&s.start_tier)
        .bind(&s.route_reason)
        .bind(&s.original_sha256)
        .bind(&s.original_content)
        .bind(&s.start_tier)
        .bind(&s.route_reason)
        .bind(self.now)
        .bind(self.now)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Stores every subtask inserted so far, at once.
    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }
}

/// A subtask as planned and routed.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSubtask {
    /// Its id.
    pub id: SubtaskId,
    /// The job it belongs to (must exist).
    pub job_id: JobId,
    /// Position in the job's plan; [`Store::list_subtasks`] orders by it.
    pub ordinal: i64,
    /// Workspace-relative path of its file.
    pub path: String,
    /// What to do to the file.
    pub instruction: String,
    /// As routed.
    pub complexity: Complexity,
    /// As routed.
    pub error_cost: ErrorCost,
    /// The file's language ("rust", "python", ..., or "unknown").
    pub language: String,
    /// Initial state (`pending`, or `skipped` for files never sent to a model).
    pub status: SubtaskStatus,
    /// The tier the router chose.
    pub start_tier: String,
    /// Why the router chose it.
    pub route_reason: String,
    /// SHA-256 of the file when the job read it (apply checks it is unchanged).
    pub original_sha256: String,
    /// The file's content when the job read it.
    pub original_content: Option<String>,
}

/// A stored subtask: its plan plus its progress.
#[derive(Debug, Clone, PartialEq)]
pub struct SubtaskRecord {
    /// Its id.
    pub id: SubtaskId,
    /// The job it belongs to.
    pub job_id: JobId,
    /// Position in the job's plan.
    pub ordinal: i64,
    /// Workspace-relative path of its file.
    pub path: String,
    /// What to do to the file.
    pub instruction: String,
    /// As routed.
    pub complexity: Complexity,
    /// As routed.
    pub error_cost: ErrorCost,
    /// The file's language.
    pub language: String,
    /// Current state.
    pub status: SubtaskStatus,
    /// The tier the router chose.
    pub start_tier: String,
    /// Why the router chose it.
    pub route_reason: String,
    /// SHA-256 of the original file.
    pub original_sha256: String,
    /// The original file content.
    pub original_content: Option<String>,
    /// The tier of the current (or last) attempt; starts as `start_tier`.
    pub current_tier: String,
    /// Model calls made so far; starts at 0.
    pub attempts: u32,
    /// Why it is where it is; starts as `route_reason`.
    pub reason: String,
    /// The accepted file content, once accepted.
    pub accepted_content: Option<String>,
    /// Last change (unix seconds).
    pub updated_at: i64,
}

/// Progress fields written together with a subtask transition; `None` = leave unchanged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubtaskUpdate {
    /// New current tier.
    pub current_tier: Option<String>,
    /// New attempt count.
    pub attempts: Option<u32>,
    /// New reason.
    pub reason: Option<String>,
    /// New accepted content: `Some(None)` clears it (e.g. review sent the file back).
    pub accepted_content: Option<Option<String>>,
}

const SUBTASK_COLUMNS: &str = "id, job_id, ordinal, path, instruction, complexity, error_cost, \
    language, status, start_tier, route_reason, original_sha256, original_content, current_tier, \
    attempts, reason, accepted_content, updated_at";

fn subtask_from_row(row: &AnyRow) -> Result<SubtaskRecord> {
    Ok(SubtaskRecord {
        id: parse_col(row, "id")?,
        job_id: parse_col(row, "job_id")?,
        ordinal: row.try_get("ordinal")?,
        path: row.try_get("path")?,
        instruction: row.try_get("instruction")?,
        complexity: parse_col(row, "complexity")?,
        error_cost: parse_col(row, "error_cost")?,
        language: row.try_get("language")?,
        status: parse_col(row, "status")?,
        start_tier: row.try_get("start_tier")?,
        route_reason: row.try_get("route_reason")?,
        original_sha256: row.try_get("original_sha256")?,
        original_content: row.try_get("original_content")?,
        current_tier: row.try_get("current_tier")?,
        attempts: to_u32("attempts", row.try_get("attempts")?)?,
        reason: row.try_get("reason")?,
        accepted_content: row.try_get("accepted_content")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Store {
    /// Stores subtasks in one transaction: all or none. Each starts with
    /// `current_tier = start_tier`, `attempts = 0`, `reason = route_reason`.
    pub async fn insert_subtasks(&self, subtasks: &[NewSubtask]) -> Result<()> {
        if subtasks.is_empty() {
            return Ok(());
        }
        let mut writer = self.begin_subtasks().await?;
        for s in subtasks {
            writer.insert(s).await?;
        }
        writer.commit().await
    }

    /// Opens one transaction for a job's subtasks, so a planner can read each
    /// file just before its row and drop the contents after: memory holds one
    /// file, yet the rows are stored all or none.
    pub async fn begin_subtasks(&self) -> Result<SubtaskWriter> {
        Ok(SubtaskWriter {
            tx: self.pool.begin().await?,
            backend: self.backend,
            now: now_secs(),
        })
    }

    /// Every subtask of the job without their file contents
    /// (`original_content` and `accepted_content` are `None`): what a large
    /// job's bookkeeping needs, at a fraction of the memory.
    pub async fn list_subtasks_brief(&self, job: JobId) -> Result<Vec<SubtaskRecord>> {
        let mut out = Vec::new();
        self.for_each_subtask_brief(job, |s| out.push(s)).await?;
        Ok(out)
    }

    /// [`Store::list_subtasks_brief`], handed to `visit` one at a time in
    /// plan order as SQLite yields them.
    pub async fn for_each_subtask_brief(
        &self,
        job: JobId,
        visit: impl FnMut(SubtaskRecord),
    ) -> Result<()> {
        let sql = format!(
            "SELECT {} FROM subtasks WHERE job_id = ? ORDER BY ordinal, rowid",
            SUBTASK_COLUMNS
                .replace("original_content", "NULL AS original_content")
                .replace("accepted_content", "NULL AS accepted_content")
        );
        for_each_row(
            sqlx::query(&self.sql(&sql)).bind(job.to_string()),
            &self.pool,
            subtask_from_row,
            visit,
        )
        .await
    }

    /// The length in characters of each of the job's subtasks' original
    /// contents (subtasks without contents are left out): what estimates
    /// need, without loading the files.
    pub async fn subtask_content_chars(&self, job: JobId) -> Result<HashMap<SubtaskId, u64>> {
        let rows = collect_rows(
            sqlx::query(&self.sql(
                "SELECT id, CAST(length(original_content) AS BIGINT) AS chars FROM subtasks \
                 WHERE job_id = ? AND original_content IS NOT NULL",
            ))
            .bind(job.to_string()),
            &self.pool,
            |row| {
                let chars: i64 = row.try_get("chars")?;
                Ok((parse_col(row, "id")?, to_u64("chars", chars)?))
            },
        )
        .await?;
        Ok(rows.into_iter().collect())
    }

    /// Every subtask of the job, contents included, by ordinal.
    pub async fn list_subtasks(&self, job: JobId) -> Result<Vec<SubtaskRecord>> {
        let sql = format!(
            "SELECT {SUBTASK_COLUMNS} FROM subtasks WHERE job_id = ? ORDER BY ordinal, rowid"
        );
        collect_rows(
            sqlx::query(&self.sql(&sql)).bind(job.to_string()),
            &self.pool,
            subtask_from_row,
        )
        .await
    }

    /// The subtask, if it exists.
    pub async fn get_subtask(&self, id: SubtaskId) -> Result<Option<SubtaskRecord>> {
        let sql = format!("SELECT {SUBTASK_COLUMNS} FROM subtasks WHERE id = ?");
        let row = sqlx::query(&self.sql(&sql))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(subtask_from_row).transpose()
    }

    /// The subtask with its directive, in one read: what a subtask's run
    /// starts from ([`Store::get_subtask`] and [`Store::subtask_directive`]).
    pub async fn get_subtask_with_directive(
        &self,
        id: SubtaskId,
    ) -> Result<Option<(SubtaskRecord, SubtaskDirective)>> {
        let sql = format!(
            "SELECT {SUBTASK_COLUMNS}, action, move_to, selector_id, rule FROM subtasks WHERE id = ?"
        );
        let row = sqlx::query(&self.sql(&sql))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref()
            .map(|row| Ok((subtask_from_row(row)?, directive_from_row(row)?)))
            .transpose()
    }

    /// [`Store::get_subtask_with_directive`] for several subtasks in a few
    /// reads (ids in chunks): what the fan-out reads for the files it
    /// starts together. Ids not found are left out; the order is the store's.
    pub async fn get_subtasks_with_directives(
        &self,
        ids: &[SubtaskId],
    ) -> Result<Vec<(SubtaskRecord, SubtaskDirective)>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(IDS_PER_STATEMENT) {
            let sql = format!(
                "SELECT {SUBTASK_COLUMNS}, action, move_to, selector_id, rule FROM subtasks \
                 WHERE id IN ({})",
                placeholders(chunk.len())
            );
            let sql = self.sql(&sql);
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(id.to_string());
            }
            for row in query.fetch_all(&self.pool).await? {
                out.push((subtask_from_row(&row)?, directive_from_row(&row)?));
            }
        }
        Ok(out)
    }

    /// Compare-and-set: moves the subtask to `to` only if its status is one of `from`, and in
    /// the same statement writes the `Some` fields of `update`. `from` may contain `to` (a
    /// progress update without a state change). Returns true iff the row changed.
    pub async fn transition_subtask(
        &self,
        id: SubtaskId,
        from: &[SubtaskStatus],
        to: SubtaskStatus,
        update: &SubtaskUpdate,
    ) -> Result<bool> {
        let mut conn = self.pool.acquire().await?;
        update_subtask_status(&mut conn, self.backend, id, from, to, update, now_secs()).await
    }
}

/// The one compare-and-set `UPDATE` of a subtask's status
/// ([`Store::transition_subtask`] and the group commit), stamped `now`: true
/// iff the subtask was in one of `from` and changed.
pub(crate) async fn update_subtask_status(
    conn: &mut AnyConnection,
    backend: Backend,
    id: SubtaskId,
    from: &[SubtaskStatus],
    to: SubtaskStatus,
    update: &SubtaskUpdate,
    now: i64,
) -> Result<bool> {
    if from.is_empty() {
        return Ok(false);
    }
    let sql = format!(
        "UPDATE subtasks SET status = ?, updated_at = ?, \
             current_tier = COALESCE(?, current_tier), \
             attempts = COALESCE(?, attempts), \
             reason = COALESCE(?, reason), \
             accepted_content = CASE WHEN ? THEN ? ELSE accepted_content END \
         WHERE id = ? AND status IN ({})",
        placeholders(from.len())
    );
    let sql = backend.sql(&sql);
    let mut query = sqlx::query(&sql)
        .bind(to.as_str())
        .bind(now)
        .bind(update.current_tier.as_deref())
        .bind(update.attempts.map(i64::from))
        .bind(update.reason.as_deref())
        .bind(update.accepted_content.is_some())
        .bind(update.accepted_content.as_ref().and_then(|c| c.as_deref()))
        .bind(id.to_string());
    for status in from {
        query = query.bind(status.as_str());
    }
    Ok(query.execute(&mut *conn).await?.rows_affected() > 0)
}

/// One subtask's compare-and-set of a batch ([`update_subtask_statuses`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct StatusChange<'a> {
    pub id: SubtaskId,
    pub to: SubtaskStatus,
    pub update: &'a SubtaskUpdate,
}

/// [`update_subtask_status`] for several subtasks that may all be in one of
/// `from` (each subtask at most once), a few statements whatever their
/// number (see [`row_chunks`]), stamped `now`: the ids of those that
/// changed. Each statement joins the subtasks on its rows
/// ([`rows_update`]): each value is bound once.
pub(crate) async fn update_subtask_statuses(
    conn: &mut AnyConnection,
    backend: Backend,
    from: &[SubtaskStatus],
    changes: &[StatusChange<'_>],
    now: i64,
) -> Result<Vec<String>> {
    let mut changed = Vec::new();
    if from.is_empty() {
        return Ok(changed);
    }
    let set = "status = r.status, updated_at = ?, \
               current_tier = COALESCE(r.current_tier, subtasks.current_tier), \
               attempts = COALESCE(r.attempts, subtasks.attempts), \
               reason = COALESCE(r.reason, subtasks.reason), \
               accepted_content = CASE WHEN r.set_accepted = 1 THEN r.accepted_content \
               ELSE subtasks.accepted_content END";
    let condition = format!("subtasks.status IN ({})", placeholders(from.len()));
    for chunk in row_chunks(changes) {
        let sql = rows_update(
            "subtasks",
            &[
                "id",
                "status",
                "current_tier",
                "attempts",
                "reason",
                "set_accepted",
                "accepted_content",
            ],
            chunk.len(),
            set,
            &condition,
        );
        let sql = backend.sql(&sql);
        let mut query = sqlx::query_scalar::<_, String>(&sql);
        for c in chunk {
            let accepted = &c.update.accepted_content;
            query = query
                .bind(c.id.to_string())
                .bind(c.to.as_str())
                .bind(c.update.current_tier.as_deref())
                .bind(c.update.attempts.map(i64::from))
                .bind(c.update.reason.as_deref())
                .bind(i64::from(accepted.is_some()))
                .bind(accepted.as_ref().and_then(|a| a.as_deref()));
        }
        query = query.bind(now);
        for status in from {
            query = query.bind(status.as_str());
        }
        changed.extend(query.fetch_all(&mut *conn).await?);
    }
    Ok(changed)
}
