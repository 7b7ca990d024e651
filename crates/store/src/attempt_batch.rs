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

use crate::attempts::{insert_attempts, update_finished_attempt};
use crate::calls::insert_calls;
use crate::convert::now_secs;
use crate::events::{insert_events, lock_event_stream};
use crate::fence::{LeaseFence, commit_fenced};
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
        self.write_fenced_attempt_groups(&[], groups).await
    }

    /// [`Store::write_attempt_groups`] under leases: the transaction commits
    /// only if every one of `fences` still holds, checked as its last
    /// statement (see [`crate::fence`]); else nothing is stored and the
    /// error is [`crate::Error::LeaseLost`].
    pub async fn write_fenced_attempt_groups(
        &self,
        fences: &[&LeaseFence],
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
        // Rows of one table go in together: the attempts first (calls and
        // updates refer to them), then each compare-and-set in order, then
        // the ledger and the events, each a few multi-row statements. A
        // group's writes keep their order where it matters: an event follows
        // the change it reports; event numbers follow the groups' order.
        let starts: Vec<&NewAttempt> = groups
            .iter()
            .flat_map(|g| g.iter())
            .filter_map(|w| match w {
                AttemptWrite::StartAttempt(a) => Some(a),
                _ => None,
            })
            .collect();
        insert_attempts(&mut tx, backend, &starts, now).await?;
        let mut out: Vec<Vec<AttemptWritten>> = Vec::with_capacity(groups.len());
        let mut events: Vec<(&NewEvent, (usize, usize))> = Vec::new();
        let mut calls: Vec<(&NewCall, (usize, usize))> = Vec::new();
        for (g, group) in groups.iter().enumerate() {
            let mut done = Vec::with_capacity(group.len());
            for (w, write) in group.iter().enumerate() {
                done.push(match write {
                    AttemptWrite::Event(e) => {
                        events.push((e, (g, w)));
                        AttemptWritten::Event(0)
                    }
                    AttemptWrite::Transition {
                        id,
                        from,
                        to,
                        update,
                        event,
                    } => {
                        let changed =
                            update_subtask_status(&mut tx, backend, *id, from, *to, update, now)
                                .await?;
                        if let Some(e) = event.as_ref().filter(|_| changed) {
                            events.push((e, (g, w)));
                        }
                        AttemptWritten::Transition {
                            changed,
                            event: None,
                        }
                    }
                    AttemptWrite::StartAttempt(_) => AttemptWritten::AttemptStarted,
                    AttemptWrite::FinishAttempt { id, finish } => AttemptWritten::AttemptFinished(
                        update_finished_attempt(&mut tx, backend, *id, finish, now).await?,
                    ),
                    AttemptWrite::Call(c) => {
                        calls.push((c, (g, w)));
                        AttemptWritten::Call(0)
                    }
                });
            }
            out.push(done);
        }
        let rows: Vec<&NewCall> = calls.iter().map(|(c, _)| *c).collect();
        let seqs = insert_calls(&mut tx, backend, &rows, now).await?;
        for ((_, (g, w)), seq) in calls.iter().zip(seqs) {
            out[*g][*w] = AttemptWritten::Call(seq);
        }
        let rows: Vec<&NewEvent> = events.iter().map(|(e, _)| *e).collect();
        let seqs = insert_events(&mut tx, backend, &rows, now).await?;
        for ((_, (g, w)), seq) in events.iter().zip(seqs) {
            let slot = &mut out[*g][*w];
            *slot = match *slot {
                AttemptWritten::Transition { changed, .. } => AttemptWritten::Transition {
                    changed,
                    event: Some(seq),
                },
                _ => AttemptWritten::Event(seq),
            };
        }
        // The lease fence (crate::fence): last, so on SQLite the write lock
        // is already held; on PostgreSQL the job rows stay locked to the commit.
        commit_fenced(tx, backend, fences.iter().copied()).await?;
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

/// Rows per multi-row `INSERT`: a batch goes in as chunks of these sizes
/// (largest first), so a table has only a few statement texts for sqlx to
/// prepare and keep, whatever the batch's size.
const CHUNK_ROWS: [usize; 4] = [64, 16, 4, 1];

/// `items` cut into chunks of the [`CHUNK_ROWS`] sizes, in order.
pub(crate) fn row_chunks<T>(items: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = items;
    std::iter::from_fn(move || {
        let size = CHUNK_ROWS.into_iter().find(|n| *n <= rest.len())?;
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        Some(chunk)
    })
}

/// `{head} VALUES {row}, {row}, ...{tail}` with `rows` rows.
pub(crate) fn multi_row_insert(head: &str, row: &str, rows: usize, tail: &str) -> String {
    let mut sql = String::with_capacity(head.len() + 8 + rows * (row.len() + 2) + tail.len());
    sql.push_str(head);
    sql.push_str(" VALUES ");
    for i in 0..rows {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(row);
    }
    sql.push_str(tail);
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_go_in_chunks_of_few_sizes_in_order() {
        let items: Vec<usize> = (0..87).collect();
        let sizes: Vec<usize> = row_chunks(&items).map(<[usize]>::len).collect();
        assert_eq!(sizes, [64, 16, 4, 1, 1, 1]);
        let back: Vec<usize> = row_chunks(&items).flatten().copied().collect();
        assert_eq!(back, items);
        assert_eq!(row_chunks::<usize>(&[]).count(), 0);
    }

    #[test]
    fn a_multi_row_insert_lists_every_row() {
        assert_eq!(
            multi_row_insert("INSERT INTO t (a, b)", "(?, ?)", 3, " RETURNING a"),
            "INSERT INTO t (a, b) VALUES (?, ?), (?, ?), (?, ?) RETURNING a"
        );
    }
}
