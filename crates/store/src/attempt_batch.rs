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

use std::collections::HashSet;

use cadre_types::{AttemptId, SubtaskId, SubtaskStatus};
use sqlx::AnyConnection;

use crate::attempts::{insert_attempts, update_finished_attempts};
use crate::calls::insert_calls;
use crate::claims::{ClaimFence, claim_holds};
use crate::convert::{now_secs, placeholders};
use crate::events::{insert_events, lock_event_stream};
use crate::fence::{LeaseFence, commit_fenced};
use crate::subtasks::{StatusChange, update_subtask_statuses};
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
    /// statement (see [`LeaseFence`]); else nothing is stored and the
    /// error is [`crate::Error::LeaseLost`].
    pub async fn write_fenced_attempt_groups(
        &self,
        fences: &[&LeaseFence],
        groups: &[&[AttemptWrite]],
    ) -> Result<Vec<Vec<AttemptWritten>>> {
        self.write_claimed_attempt_groups(fences, &[], groups).await
    }

    /// [`Store::write_fenced_attempt_groups`] under subtask claims too: the
    /// transaction commits only if each of `claims` still holds (its
    /// subtasks are still claimed by its owner, see [`ClaimFence`]); else
    /// nothing is stored and the error is [`crate::Error::ClaimLost`].
    pub async fn write_claimed_attempt_groups(
        &self,
        fences: &[&LeaseFence],
        claims: &[&ClaimFence],
        groups: &[&[AttemptWrite]],
    ) -> Result<Vec<Vec<AttemptWritten>>> {
        // Every group starts with a write, so the transaction takes the
        // write lock with its first statement and never upgrades. On its own
        // connection (Store::group_commit), whose page cache stays valid
        // from one commit to the next.
        let mut tx = self.group_commit.begin().await?;
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
        let mut out: Vec<Vec<AttemptWritten>> = groups
            .iter()
            .map(|g| {
                g.iter()
                    .map(|w| match w {
                        AttemptWrite::Event(_) => AttemptWritten::Event(0),
                        AttemptWrite::Transition { .. } => AttemptWritten::Transition {
                            changed: false,
                            event: None,
                        },
                        AttemptWrite::StartAttempt(_) => AttemptWritten::AttemptStarted,
                        AttemptWrite::FinishAttempt { .. } => {
                            AttemptWritten::AttemptFinished(false)
                        }
                        AttemptWrite::Call(_) => AttemptWritten::Call(0),
                    })
                    .collect()
            })
            .collect();
        // The compare-and-sets, in rounds: a round holds each row at most
        // once, so its rows are independent and go in a few multi-row
        // statements; a row met again starts the next round, so one row's
        // writes keep their order.
        let mut round = Round::default();
        for (g, group) in groups.iter().enumerate() {
            for (w, write) in group.iter().enumerate() {
                if !round.admits(write) {
                    round.apply(&mut tx, backend, groups, &mut out, now).await?;
                }
                round.push(write, (g, w));
            }
        }
        round.apply(&mut tx, backend, groups, &mut out, now).await?;
        let mut events: Vec<(&NewEvent, (usize, usize))> = Vec::new();
        let mut calls: Vec<(&NewCall, (usize, usize))> = Vec::new();
        for (g, group) in groups.iter().enumerate() {
            for (w, write) in group.iter().enumerate() {
                match (write, out[g][w]) {
                    (AttemptWrite::Event(e), _) => events.push((e, (g, w))),
                    (
                        AttemptWrite::Transition { event: Some(e), .. },
                        AttemptWritten::Transition { changed: true, .. },
                    ) => events.push((e, (g, w))),
                    (AttemptWrite::Call(c), _) => calls.push((c, (g, w))),
                    _ => {}
                }
            }
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
        // The claims and the lease fence (crate::fence): last, so on SQLite
        // the write lock is already held; on PostgreSQL the rows stay locked
        // to the commit.
        for claim in claims {
            if let Err(e) = claim_holds(&mut tx, backend, claim).await {
                tx.rollback().await?;
                return Err(e);
            }
        }
        commit_fenced(tx, backend, fences.iter().copied()).await?;
        Ok(out)
    }
}

/// Compare-and-sets of a group commit that touch each row at most once
/// (by their place in the groups), written together by [`Round::apply`].
#[derive(Default)]
struct Round {
    subtasks: HashSet<SubtaskId>,
    attempts: HashSet<AttemptId>,
    writes: Vec<(usize, usize)>,
}

impl Round {
    /// False when `write` changes a row this round already changes.
    fn admits(&self, write: &AttemptWrite) -> bool {
        match write {
            AttemptWrite::Transition { id, .. } => !self.subtasks.contains(id),
            AttemptWrite::FinishAttempt { id, .. } => !self.attempts.contains(id),
            _ => true,
        }
    }

    /// Adds `write` (at `at` in the groups) when it is a compare-and-set.
    fn push(&mut self, write: &AttemptWrite, at: (usize, usize)) {
        match write {
            AttemptWrite::Transition { id, .. } => {
                self.subtasks.insert(*id);
            }
            AttemptWrite::FinishAttempt { id, .. } => {
                self.attempts.insert(*id);
            }
            _ => return,
        }
        self.writes.push(at);
    }

    /// Writes the round's compare-and-sets (one statement per `from` set of
    /// the status changes, one for the attempts' ends, each cut in chunks),
    /// records what each did in `out`, and empties the round.
    async fn apply(
        &mut self,
        conn: &mut AnyConnection,
        backend: Backend,
        groups: &[&[AttemptWrite]],
        out: &mut [Vec<AttemptWritten>],
        now: i64,
    ) -> Result<()> {
        let writes = std::mem::take(&mut self.writes);
        self.subtasks.clear();
        self.attempts.clear();
        let mut by_from: Vec<(&[SubtaskStatus], Vec<StatusChange<'_>>)> = Vec::new();
        let mut finishes = Vec::new();
        for &(g, w) in &writes {
            match &groups[g][w] {
                AttemptWrite::Transition {
                    id,
                    from,
                    to,
                    update,
                    ..
                } => {
                    let change = StatusChange {
                        id: *id,
                        to: *to,
                        update,
                    };
                    match by_from.iter_mut().find(|(f, _)| *f == from.as_slice()) {
                        Some((_, changes)) => changes.push(change),
                        None => by_from.push((from.as_slice(), vec![change])),
                    }
                }
                AttemptWrite::FinishAttempt { id, finish } => finishes.push((*id, finish)),
                _ => {}
            }
        }
        let mut changed: HashSet<String> = HashSet::new();
        for (from, changes) in &by_from {
            changed.extend(update_subtask_statuses(conn, backend, from, changes, now).await?);
        }
        let mut finished: HashSet<String> = HashSet::new();
        if !finishes.is_empty() {
            finished.extend(update_finished_attempts(conn, backend, &finishes, now).await?);
        }
        for (g, w) in writes {
            out[g][w] = match &groups[g][w] {
                AttemptWrite::Transition { id, .. } => AttemptWritten::Transition {
                    changed: changed.contains(&id.to_string()),
                    event: None,
                },
                AttemptWrite::FinishAttempt { id, .. } => {
                    AttemptWritten::AttemptFinished(finished.contains(&id.to_string()))
                }
                _ => continue,
            };
        }
        Ok(())
    }
}

/// `WITH r({columns}) AS (VALUES ({row}), ...) UPDATE {table} SET {set}
/// FROM r WHERE {table}.id = r.id AND {condition} RETURNING {table}.id`
/// with `rows` rows: a multi-row `UPDATE` that joins `table` on its rows by
/// id, bound row by row (each row's `columns` in order, `id` among them),
/// then `set`'s and `condition`'s own parameters. `set` and `condition`
/// read a row's values as `r.{column}` and the table's as `{table}.{column}`.
pub(crate) fn rows_update(
    table: &str,
    columns: &[&str],
    rows: usize,
    set: &str,
    condition: &str,
) -> String {
    let row = format!("({})", placeholders(columns.len()));
    format!(
        "WITH r({}) AS (VALUES {}) UPDATE {table} SET {set} FROM r \
         WHERE {table}.id = r.id AND {condition} RETURNING {table}.id",
        columns.join(", "),
        row_list(&row, rows),
    )
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
/// prepare and keep, whatever the batch's size. Powers of two: a batch
/// goes in as at most one statement per bit of its size (a statement is a
/// round trip to SQLite's thread), where sizes in fours took half as many
/// again on average.
const CHUNK_ROWS: [usize; 7] = [64, 32, 16, 8, 4, 2, 1];

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
    format!("{head} VALUES {}{tail}", row_list(row, rows))
}

/// `{row}, {row}, ...` with `rows` rows.
fn row_list(row: &str, rows: usize) -> String {
    let mut list = String::with_capacity(rows * (row.len() + 2));
    for i in 0..rows {
        if i > 0 {
            list.push_str(", ");
        }
        list.push_str(row);
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_go_in_chunks_of_few_sizes_in_order() {
        let items: Vec<usize> = (0..87).collect();
        let sizes: Vec<usize> = row_chunks(&items).map(<[usize]>::len).collect();
        assert_eq!(sizes, [64, 16, 4, 2, 1]);
        let back: Vec<usize> = row_chunks(&items).flatten().copied().collect();
        assert_eq!(back, items);
        assert_eq!(row_chunks::<usize>(&[]).count(), 0);
    }

    #[test]
    fn a_multi_row_update_joins_its_rows_by_id() {
        assert_eq!(
            rows_update("t", &["id", "a"], 2, "a = r.a, at = ?", "t.a IS NOT ?"),
            "WITH r(id, a) AS (VALUES (?, ?), (?, ?)) UPDATE t SET a = r.a, at = ? FROM r \
             WHERE t.id = r.id AND t.a IS NOT ? RETURNING t.id"
        );
    }

    #[test]
    fn a_multi_row_insert_lists_every_row() {
        assert_eq!(
            multi_row_insert("INSERT INTO t (a, b)", "(?, ?)", 3, " RETURNING a"),
            "INSERT INTO t (a, b) VALUES (?, ?), (?, ?), (?, ?) RETURNING a"
        );
    }
}
