//! The fan-out: every pending subtask driven through the cascade
//! ([`crate::drive`]) on a bounded pool (twice as many subtasks in flight as
//! call slots, so a slot never idles while its subtask validates or writes
//! to the store; the spares start once the first calls are out, so they do
//! not delay them). Only ids wait in the queue; subtasks' contents are read
//! in chunks as they start (with at most [`READ_AHEAD`] more read ahead) and
//! a history when its task starts, so memory follows the subtasks in
//! flight, not the job.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use cadre_store::{SubtaskDirective, SubtaskRecord, SubtaskUpdate};
use cadre_types::{EventKind, Role, SubtaskId, SubtaskStatus};
use serde_json::json;
use tokio::task::JoinSet;

use crate::cascade::AttemptSummary;
use crate::claims::Elsewhere;
use crate::estimate::{FileEstimate, JobEstimate, file_estimate, job_estimate, review_base};
use crate::pricing::estimate_tokens;
use crate::prompts::worker_prefix_text;
use crate::run::{JobRun, PlannedContext};
use crate::{Error, Result};

/// Runs every pending subtask to a terminal state (or until the run stops).
/// With a budget, a file starts only when its expected cost (its cascade
/// and its review) fits beside what the files before it were promised;
/// files that never fit stay `pending` with "not started: budget". The
/// first error stops the other subtasks and is returned.
pub(crate) async fn fan_out(run: &Arc<JobRun>, planned: &Arc<PlannedContext>) -> Result<()> {
    let store = run.store();
    let pending: Vec<SubtaskRecord> = store
        .list_subtasks_brief(run.job_id)
        .await?
        .into_iter()
        .filter(|s| s.status == SubtaskStatus::Pending)
        .collect();
    // In a cluster (crate::claims) each file is claimed as it starts; files
    // other daemons took are skipped, and the fan-out ends once they are
    // settled too (even when none is pending here).
    let identity = run.engine.claim_identity().cloned();
    if pending.is_empty() && identity.is_none() {
        return Ok(());
    }
    tracing::debug!(job = %run.job_id, pending = pending.len(), "fan-out");
    let admission = Admission::prepare(run, planned, &pending).await?;
    if !pending.is_empty() && !admission.report(run).await? {
        for sub in &pending {
            admission.not_started(run, sub).await?;
        }
        return Ok(());
    }
    // Histories (with their changes, for circular-fix detection) are loaded
    // per subtask as its task starts, and only where one exists.
    let with_history = store.subtasks_with_attempts(run.job_id).await?;
    // Twice as many subtasks in flight as call slots, but not from the
    // start: the first `calls` start alone, so their requests go out before
    // the spares (the subtasks that take a slot as a call ends) compete
    // with them for the cores; the spares start once this job's calls fill
    // what the first ones could take, or a subtask ends.
    let calls = run.config().limits.max_concurrency.max(1) as usize;
    let mut limit = calls;
    let mut synced = None;
    // A refill that started nothing (its files were taken again at once)
    // waits before the next, so the owner never spins.
    let mut idle_refill = false;
    let mut queue = pending.into_iter();
    let mut read_ahead = ReadAhead::default();
    let mut deferred: Vec<SubtaskRecord> = Vec::new();
    // Whether a retry of the deferred files is under way, and whether it
    // admitted any.
    let (mut retrying, mut admitted) = (false, false);
    let mut set: JoinSet<Result<()>> = JoinSet::new();
    let mut first_error = None;
    loop {
        while set.len() < limit && !run.stop.is_cancelled() {
            if identity.is_some() {
                crate::claims::sync_spent(run, &mut synced).await?;
            }
            let mut starting = Vec::new();
            while starting.len() < limit - set.len() {
                let Some(sub) = queue.next() else { break };
                let estimate = admission.estimate(sub.id);
                if run.admit(sub.id, &estimate, admission.review_base) {
                    starting.push((sub.id, estimate));
                } else {
                    read_ahead.forget(sub.id);
                    deferred.push(sub);
                }
            }
            if starting.is_empty() {
                break;
            }
            admitted = true;
            let claimed: Option<HashSet<SubtaskId>> = match &identity {
                Some(identity) => {
                    let ids: Vec<SubtaskId> = starting.iter().map(|(id, _)| *id).collect();
                    let claimed = store
                        .claim_subtasks(&identity.owner, &ids, identity.lease_secs)
                        .await?;
                    Some(claimed.into_iter().collect())
                }
                None => None,
            };
            let mut starting_here = Vec::with_capacity(starting.len());
            for (id, estimate) in starting {
                if claimed.as_ref().is_some_and(|c| !c.contains(&id)) {
                    // Another daemon runs it.
                    run.budget.fulfil(estimate.work_usd);
                    run.release_reviews([id]);
                } else {
                    starting_here.push((id, estimate));
                }
            }
            // Files are read in chunks, not one by one: claimed files as
            // they were claimed together (read after the claim, so they are
            // seen `running`), else with the queue's next files.
            let ahead = match claimed {
                Some(_) => &[][..],
                None => queue.as_slice(),
            };
            let mut loaded = read_ahead.take(run, &starting_here, ahead).await?;
            for (id, estimate) in starting_here {
                // In a cluster another daemon may have run part of its
                // cascade since the fan-out began: its history is looked up.
                let task = SubtaskTask {
                    id,
                    estimate,
                    has_history: claimed.is_none().then(|| with_history.contains(&id)),
                    claimed: claimed.is_some(),
                    loaded: loaded.remove(&id),
                };
                set.spawn(task.run(run.clone(), planned.clone()));
                idle_refill = false;
            }
        }
        if set.is_empty() && queue.len() == 0 && !deferred.is_empty() && !run.stop.is_cancelled() {
            // Everything admitted has finished and what it cost is known:
            // the files that did not fit are tried again while that admits
            // any; the rest stay pending, not started.
            if retrying && !admitted {
                for sub in std::mem::take(&mut deferred) {
                    admission.not_started(run, &sub).await?;
                }
                if identity.is_none() {
                    break;
                }
            } else {
                (retrying, admitted) = (true, false);
                queue = std::mem::take(&mut deferred).into_iter();
                continue;
            }
        }
        if set.is_empty()
            && queue.len() == 0
            && first_error.is_none()
            && !run.stop.is_cancelled()
            && identity.is_some()
        {
            match crate::claims::claims_elsewhere(run).await? {
                Elsewhere::Pending(again) => {
                    if idle_refill {
                        crate::claims::pause(run).await;
                    }
                    idle_refill = true;
                    queue = again.into_iter();
                    continue;
                }
                Elsewhere::Wait => {
                    crate::claims::pause(run).await;
                    continue;
                }
                Elsewhere::Done => break,
            }
        }
        if limit == calls && !set.is_empty() {
            let started = set.len();
            tokio::select! {
                joined = set.join_next() => {
                    if let Some(joined) = joined {
                        note_subtask_end(run, joined, &mut first_error);
                    }
                }
                () = run.gates.in_flight.reached(started) => {}
            }
            limit = calls * 2;
            continue;
        }
        let Some(joined) = set.join_next().await else {
            break;
        };
        note_subtask_end(run, joined, &mut first_error);
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Files the fan-out read before they start: a refill that starts one file
/// (as each ending file frees a place) reads the next [`READ_AHEAD`] in
/// the queue with it, so a file costs a fraction of a read, not one.
#[derive(Default)]
pub(crate) struct ReadAhead {
    read: HashMap<SubtaskId, (SubtaskRecord, SubtaskDirective)>,
}

/// Files one read of [`ReadAhead`] covers (their contents are held until they start).
const READ_AHEAD: usize = 64;

impl ReadAhead {
    /// The records of `starting`, read with the next files of `queue`
    /// (none: only `starting`) when they were not read yet.
    pub(crate) async fn take(
        &mut self,
        run: &JobRun,
        starting: &[(SubtaskId, FileEstimate)],
        queue: &[SubtaskRecord],
    ) -> Result<HashMap<SubtaskId, (SubtaskRecord, SubtaskDirective)>> {
        let mut ids: Vec<SubtaskId> = starting
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| !self.read.contains_key(id))
            .collect();
        if !ids.is_empty() {
            let room = READ_AHEAD.saturating_sub(ids.len());
            ids.extend(
                queue
                    .iter()
                    .map(|s| s.id)
                    .filter(|id| !self.read.contains_key(id))
                    .take(room),
            );
            for (sub, directive) in run.store().get_subtasks_with_directives(&ids).await? {
                self.read.insert(sub.id, (sub, directive));
            }
        }
        Ok(starting
            .iter()
            .filter_map(|(id, _)| self.read.remove_entry(id))
            .collect())
    }

    /// Drops a file that will not start now (the budget deferred it).
    fn forget(&mut self, id: SubtaskId) {
        self.read.remove(&id);
    }
}

/// Keeps the first error of a subtask's task (a failure, or the task
/// itself panicking) and stops the run's other subtasks when it comes.
pub(crate) fn note_subtask_end(
    run: &JobRun,
    joined: std::result::Result<Result<()>, tokio::task::JoinError>,
    first_error: &mut Option<Error>,
) {
    let outcome = joined
        .map_err(|source| Error::Task {
            task: "subtask",
            source,
        })
        .and_then(|r| r);
    if let Err(e) = outcome
        && first_error.is_none()
    {
        tracing::warn!(job = %run.job_id, error = %e, "a subtask failed; stopping the others");
        *first_error = Some(e);
        run.stop.cancel();
    }
}

/// One subtask's task in a fan-out: loads what the subtask needs, drives it
/// through the cascade and settles its budget figures.
pub(crate) struct SubtaskTask {
    pub id: SubtaskId,
    /// Its expected cost, as admitted.
    pub estimate: FileEstimate,
    /// Whether it has attempts already; `None`: look.
    pub has_history: Option<bool>,
    /// It is already `running` under this engine's claim (crate::claims).
    pub claimed: bool,
    /// Its record and directive, read with the files that started beside
    /// it ([`ReadAhead`]); `None`: the store has no such subtask.
    pub loaded: Option<(SubtaskRecord, SubtaskDirective)>,
}

impl SubtaskTask {
    pub async fn run(self, run: Arc<JobRun>, planned: Arc<PlannedContext>) -> Result<()> {
        let (id, work_usd) = (self.id, self.estimate.work_usd);
        let driven = self.drive(&run, &planned).await;
        run.budget.fulfil(work_usd);
        if !matches!(driven, Ok(true)) {
            run.release_reviews([id]);
        }
        match driven {
            // Its claim was given back (this daemon stalled past it): the
            // daemon that has it now runs it.
            Err(Error::Store(cadre_store::Error::ClaimLost { .. })) => {
                tracing::warn!(job = %run.job_id, subtask = %id, "the claim on the subtask is lost; leaving it to the daemon that has it");
                Ok(())
            }
            other => other.map(drop),
        }
    }

    async fn drive(self, run: &Arc<JobRun>, planned: &PlannedContext) -> Result<bool> {
        let store = run.store();
        let id = self.id;
        let _held = self.claimed.then(|| run.engine.writer().claims().hold(id));
        let history: Vec<AttemptSummary> = if self.has_history != Some(false) {
            store
                .list_subtask_attempts(id)
                .await?
                .iter()
                .filter(|a| a.role == Role::Worker)
                .map(AttemptSummary::from_record)
                .collect()
        } else {
            Vec::new()
        };
        if self.claimed && !history.is_empty() {
            // Another daemon may have run it before: its answers are replayed.
            for sha in store.subtask_call_hashes(id).await? {
                run.ledger.insert(&sha);
            }
        }
        match self.loaded {
            Some((full, directive)) => {
                crate::drive::drive_subtask(run, planned, full, directive, history, self.claimed)
                    .await
            }
            None => Err(Error::NotFound(format!("subtask {id}"))),
        }
    }
}

/// The fan-out's budget figures: each pending file's estimate, the review's
/// fixed part, and the job's expected cost.
pub(crate) struct Admission {
    estimates: HashMap<SubtaskId, FileEstimate>,
    pub review_base: f64,
    job: JobEstimate,
}

impl Admission {
    pub async fn prepare(
        run: &JobRun,
        planned: &PlannedContext,
        pending: &[SubtaskRecord],
    ) -> Result<Self> {
        let config = run.config();
        let chars = run.store().subtask_content_chars(run.job_id).await?;
        let rules = run.store().subtasks_with_rules(run.job_id).await?;
        let prefix_tokens = estimate_tokens(&worker_prefix_text(&planned.prefix));
        let estimates: HashMap<SubtaskId, FileEstimate> = pending
            .iter()
            .map(|s| {
                let size = chars.get(&s.id).copied().unwrap_or(0);
                let codemod = config.has_codemod_tier() && rules.contains(&s.id);
                (
                    s.id,
                    file_estimate(config, &s.start_tier, codemod, size, prefix_tokens),
                )
            })
            .collect();
        let review_base = review_base(config, prefix_tokens);
        let in_order: Vec<FileEstimate> = pending
            .iter()
            .filter_map(|s| estimates.get(&s.id).copied())
            .collect();
        let job = job_estimate(&in_order, review_base, run.budget.available());
        Ok(Self {
            estimates,
            review_base,
            job,
        })
    }

    pub fn estimate(&self, id: SubtaskId) -> FileEstimate {
        self.estimates.get(&id).copied().unwrap_or_default()
    }

    /// Says once per run what the job is expected to cost against its
    /// budget. False when the job asked to stop here because the budget
    /// does not cover the expectation (`--require-budget-fit`).
    async fn report(&self, run: &JobRun) -> Result<bool> {
        if run.estimate_reported.swap(true, Ordering::SeqCst) {
            return Ok(true);
        }
        let job = &self.job;
        let available = run.budget.available();
        let message = match available {
            None => format!(
                "expected ${:.2} (90% interval ${:.2}-${:.2}) for {} file(s); no budget",
                job.expected_usd, job.low_usd, job.high_usd, job.files
            ),
            Some(left) => format!(
                "expected ${:.2} (90% interval ${:.2}-${:.2}); budget ${left:.2} left covers about {} of {} files",
                job.expected_usd, job.low_usd, job.high_usd, job.files_covered, job.files
            ),
        };
        let fits = available.is_none_or(|left| job.expected_usd <= left);
        run.engine
            .emit(
                run.job_id,
                None,
                EventKind::BudgetEstimate,
                message,
                json!({"expected_usd": job.expected_usd, "low_usd": job.low_usd,
                       "high_usd": job.high_usd, "files_covered": job.files_covered,
                       "files": job.files, "budget_left_usd": available}),
            )
            .await?;
        Ok(fits || !run.options.require_budget_fit)
    }

    /// Leaves a file `pending` with why it was not started.
    async fn not_started(&self, run: &JobRun, sub: &SubtaskRecord) -> Result<()> {
        let e = self.estimate(sub.id);
        let left = run.budget.available().unwrap_or(0.0);
        let update = SubtaskUpdate {
            reason: Some(format!(
                "{NOT_STARTED_BUDGET}: expected ${:.4} with its review, ${left:.4} of the budget left",
                e.work_usd + e.review_usd
            )),
            ..SubtaskUpdate::default()
        };
        run.engine
            .set_subtask_status(
                run.job_id,
                sub,
                &[SubtaskStatus::Pending],
                SubtaskStatus::Pending,
                update,
            )
            .await?;
        Ok(())
    }
}

/// The reason a file the budget could not cover was left `pending`.
pub(crate) const NOT_STARTED_BUDGET: &str = "not started: budget";
