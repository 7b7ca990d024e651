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
//! [`Store::finish_attempt`] and [`Store::record_call`]: the same helpers,
//! run on the group's transaction.

use cadre_types::{AttemptId, SubtaskId, SubtaskStatus};
use sqlx::AnyConnection;

use crate::attempts::{insert_attempt, update_finished_attempt};
use crate::calls::insert_call;
use crate::convert::now_secs;
use crate::events::{insert_event, lock_event_stream};
use crate::subtasks::update_subtask_status;
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
async fn lock_event_streams(conn: &mut AnyConnection, groups: &[&[AttemptWrite]]) -> Result<()> {
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
        lock_event_stream(conn, &job).await?;
    }
    Ok(())
}

async fn write_one(
    conn: &mut AnyConnection,
    backend: Backend,
    write: &AttemptWrite,
    now: i64,
) -> Result<AttemptWritten> {
    Ok(match write {
        AttemptWrite::Event(e) => AttemptWritten::Event(insert_event(conn, backend, e, now).await?),
        AttemptWrite::Transition {
            id,
            from,
            to,
            update,
            event: then,
        } => {
            let changed = update_subtask_status(conn, backend, *id, from, *to, update, now).await?;
            let event = match then {
                Some(e) if changed => Some(insert_event(conn, backend, e, now).await?),
                _ => None,
            };
            AttemptWritten::Transition { changed, event }
        }
        AttemptWrite::StartAttempt(a) => {
            insert_attempt(conn, backend, a, now).await?;
            AttemptWritten::AttemptStarted
        }
        AttemptWrite::FinishAttempt { id, finish } => AttemptWritten::AttemptFinished(
            update_finished_attempt(conn, backend, *id, finish, now).await?,
        ),
        AttemptWrite::Call(c) => AttemptWritten::Call(insert_call(conn, backend, c, now).await?),
    })
}
