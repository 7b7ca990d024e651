//! Attempt bookkeeping written in one transaction: the rows a running
//! subtask writes (its status changes with their events, its attempt rows,
//! the model-call ledger, events), for one caller or for several at once.
//!
//! The fan-out writes ~9 rows per subtask. Committed one statement at a time
//! that is ~9 SQLite transactions per subtask, each writing its changed pages
//! to the WAL again; [`Store::write_attempt_groups`] commits many callers'
//! groups together (group commit), so a page changed by all of them is
//! written once. The statements are those of [`Store::append_event`],
//! [`Store::transition_subtask`], [`Store::start_attempt`],
//! [`Store::finish_attempt`] and [`Store::record_call`], on a transaction.

use cadre_types::{AttemptId, AttemptOutcome, SubtaskId, SubtaskStatus};
use sqlx::{Any, Transaction};

use crate::convert::{json_text, now_secs, placeholders, to_i64};
use crate::{AttemptFinish, Backend, NewAttempt, NewCall, NewEvent, Result, Store, SubtaskUpdate};

/// One write of a group.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptWrite {
    /// [`Store::append_event`].
    Event(NewEvent),
    /// [`Store::transition_subtask`], then `event` only when the subtask changed.
    Transition {
        /// The subtask.
        id: SubtaskId,
        /// The states it may be in.
        from: Vec<SubtaskStatus>,
        /// The state it goes to.
        to: SubtaskStatus,
        /// Fields written with it.
        update: SubtaskUpdate,
        /// Appended when the subtask changed.
        event: Option<NewEvent>,
    },
    /// [`Store::start_attempt`].
    StartAttempt(NewAttempt),
    /// [`Store::finish_attempt`].
    FinishAttempt {
        /// The attempt.
        id: AttemptId,
        /// How it ended.
        finish: AttemptFinish,
    },
    /// [`Store::record_call`].
    Call(NewCall),
}

/// What one write did, in the order of the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptWritten {
    /// An event's sequence number.
    Event(i64),
    /// Whether the subtask changed, and its event's sequence number if one was appended.
    Transition {
        /// The compare-and-set matched.
        changed: bool,
        /// The event appended with it.
        event: Option<i64>,
    },
    /// The attempt row was inserted.
    AttemptStarted,
    /// Whether the attempt was still running and is now finished.
    AttemptFinished(bool),
    /// The ledger's sequence number of the call.
    Call(i64),
}

impl Store {
    /// Writes `groups` in one transaction, each group's writes in order, and
    /// returns what each write did, per group. Nothing is stored when any
    /// write fails (the caller may then write each group on its own to find
    /// the one that failed).
    pub async fn write_attempt_groups(
        &self,
        groups: &[&[AttemptWrite]],
    ) -> Result<Vec<Vec<AttemptWritten>>> {
        // Every group starts with a write, so the transaction takes the
        // write lock with its first statement and never upgrades.
        let mut tx = self.pool.begin().await?;
        let backend = self.backend();
        if backend == Backend::Postgres {
            lock_event_streams(&mut tx, groups).await?;
        }
        let now = now_secs();
        let mut out = Vec::with_capacity(groups.len());
        for group in groups {
            let mut done = Vec::with_capacity(group.len());
            for write in *group {
                done.push(write_one(&mut tx, backend, write, now).await?);
            }
            out.push(done);
        }
        tx.commit().await?;
        Ok(out)
    }
}

/// PostgreSQL: the per-job advisory locks [`Store::append_event`] takes, for
/// every job the groups append events to, in one order (so two batches never
/// wait on each other's locks in a cycle): a job's events commit in sequence
/// order.
async fn lock_event_streams(
    tx: &mut Transaction<'static, Any>,
    groups: &[&[AttemptWrite]],
) -> Result<()> {
    let mut jobs: Vec<String> = groups
        .iter()
        .flat_map(|g| g.iter())
        .filter_map(|w| match w {
            AttemptWrite::Event(e) => Some(e.job_id.to_string()),
            AttemptWrite::Transition { event: Some(e), .. } => Some(e.job_id.to_string()),
            _ => None,
        })
        .collect();
    jobs.sort_unstable();
    jobs.dedup();
    for job in jobs {
        // A projection the `Any` driver can read (the lock function returns `void`).
        sqlx::query(
            "SELECT CAST(1 AS BIGINT) FROM (SELECT pg_advisory_xact_lock(hashtextextended($1, 0))) AS l",
        )
        .bind(job)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

async fn write_one(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    write: &AttemptWrite,
    now: i64,
) -> Result<AttemptWritten> {
    Ok(match write {
        AttemptWrite::Event(e) => AttemptWritten::Event(event(tx, backend, e, now).await?),
        AttemptWrite::Transition {
            id,
            from,
            to,
            update,
            event: then,
        } => {
            let changed = transition(tx, backend, *id, from, *to, update, now).await?;
            let event = match then {
                Some(e) if changed => Some(event(tx, backend, e, now).await?),
                _ => None,
            };
            AttemptWritten::Transition { changed, event }
        }
        AttemptWrite::StartAttempt(a) => {
            sqlx::query(&backend.sql(
                "INSERT INTO attempts (id, job_id, subtask_id, role, tier, model, effort, ordinal, \
                 request_sha256, batch_id, outcome, started_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ))
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
            .bind(now)
            .execute(&mut **tx)
            .await?;
            AttemptWritten::AttemptStarted
        }
        AttemptWrite::FinishAttempt { id, finish: f } => {
            let done = sqlx::query(&backend.sql(
                "UPDATE attempts SET outcome = ?, failure = ?, error = ?, response_json = ?, \
                 change_json = ?, input_tokens = ?, output_tokens = ?, cache_read_tokens = ?, \
                 cache_write_tokens = ?, cost_usd = ?, latency_ms = ?, finished_at = ? \
                 WHERE id = ? AND outcome = ?",
            ))
            .bind(f.outcome.as_str())
            .bind(f.failure.map(|k| k.as_str()))
            .bind(&f.error)
            .bind(f.response.as_ref().map(json_text).transpose()?)
            .bind(f.change.as_ref().map(json_text).transpose()?)
            .bind(to_i64("input_tokens", f.input_tokens)?)
            .bind(to_i64("output_tokens", f.output_tokens)?)
            .bind(to_i64("cache_read_tokens", f.cache_read_tokens)?)
            .bind(to_i64("cache_write_tokens", f.cache_write_tokens)?)
            .bind(f.cost_usd)
            .bind(to_i64("latency_ms", f.latency_ms)?)
            .bind(now)
            .bind(id.to_string())
            .bind(AttemptOutcome::Running.as_str())
            .execute(&mut **tx)
            .await?;
            AttemptWritten::AttemptFinished(done.rows_affected() > 0)
        }
        AttemptWrite::Call(c) => {
            let seq: i64 = sqlx::query_scalar(&backend.sql(
                "INSERT INTO model_calls (job_id, attempt_id, turn, request_sha256, role, tier, model, response_json, \
                 input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_usd, latency_ms, batch, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq",
            ))
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
            .bind(now)
            .fetch_one(&mut **tx)
            .await?;
            AttemptWritten::Call(seq)
        }
    })
}

async fn event(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    e: &NewEvent,
    now: i64,
) -> Result<i64> {
    let seq: i64 = sqlx::query_scalar(&backend.sql(
        "INSERT INTO events (job_id, subtask_id, kind, message, data_json, at) \
         VALUES (?, ?, ?, ?, ?, ?) RETURNING seq",
    ))
    .bind(e.job_id.to_string())
    .bind(e.subtask_id.map(|s| s.to_string()))
    .bind(e.kind.as_str())
    .bind(&e.message)
    .bind(json_text(&e.data)?)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    Ok(seq)
}

async fn transition(
    tx: &mut Transaction<'static, Any>,
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
    Ok(query.execute(&mut **tx).await?.rows_affected() > 0)
}
