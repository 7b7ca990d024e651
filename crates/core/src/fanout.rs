//! The fan-out: every pending subtask driven through the cascade on a
//! bounded pool (twice as many subtasks in flight as call slots, so a slot
//! never idles while its subtask validates or writes to the store). Only ids
//! wait in the queue; a subtask's contents and history are loaded when its
//! task starts, so memory follows the subtasks in flight, not the job.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use cadre_store::{AttemptWrite, SubtaskDirective, SubtaskRecord, SubtaskUpdate};
use cadre_types::{EventKind, Role, SubtaskId, SubtaskStatus};
use serde_json::json;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::actions::settle_without_model;
use crate::attempt::{AttemptInput, AttemptRun, run_attempt};
use crate::cascade::{AttemptSummary, Step, feedback, next_step, subtask_path};
use crate::codemod::{CODEMOD_TIER, try_codemod};
use crate::edit::apply_change;
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
    if pending.is_empty() {
        return Ok(());
    }
    tracing::debug!(job = %run.job_id, pending = pending.len(), "fan-out");
    let admission = Admission::prepare(run, planned, &pending).await?;
    if !admission.report(run).await? {
        for sub in &pending {
            admission.not_started(run, sub).await?;
        }
        return Ok(());
    }
    // Histories (with their changes, for circular-fix detection) are loaded
    // per subtask as its task starts, and only where one exists.
    let with_history = store.subtasks_with_attempts(run.job_id).await?;
    let limit = run.config().limits.max_concurrency.max(1) as usize * 2;
    let mut queue = pending.into_iter();
    let mut deferred: Vec<SubtaskRecord> = Vec::new();
    // Whether a retry of the deferred files is under way, and whether it
    // admitted any.
    let (mut retrying, mut admitted) = (false, false);
    let mut set: JoinSet<Result<()>> = JoinSet::new();
    let mut first_error = None;
    loop {
        while set.len() < limit && !run.stop.is_cancelled() {
            let Some(sub) = queue.next() else { break };
            let estimate = admission.estimate(sub.id);
            if !run.admit(sub.id, &estimate, admission.review_base) {
                deferred.push(sub);
                continue;
            }
            admitted = true;
            let has_history = with_history.contains(&sub.id);
            let (run, planned) = (run.clone(), planned.clone());
            let id = sub.id;
            set.spawn(async move {
                let store = run.store();
                let history = if has_history {
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
                // The subtask and its directive in one read.
                let driven = match store.get_subtask_with_directive(id).await? {
                    Some((full, directive)) => {
                        drive_subtask(&run, &planned, full, directive, history).await
                    }
                    None => Err(Error::NotFound(format!("subtask {id}"))),
                };
                run.budget.fulfil(estimate.work_usd);
                if !matches!(driven, Ok(true)) {
                    run.release_reviews([id]);
                }
                driven.map(|_| ())
            });
        }
        if set.is_empty() && queue.len() == 0 && !deferred.is_empty() && !run.stop.is_cancelled() {
            // Everything admitted has finished and what it cost is known:
            // the files that did not fit are tried again while that admits
            // any; the rest stay pending, not started.
            if retrying && !admitted {
                for sub in std::mem::take(&mut deferred) {
                    admission.not_started(run, &sub).await?;
                }
                break;
            }
            (retrying, admitted) = (true, false);
            queue = std::mem::take(&mut deferred).into_iter();
            continue;
        }
        let Some(joined) = set.join_next().await else {
            break;
        };
        let outcome = joined
            .map_err(|source| Error::Task {
                task: "subtask",
                source,
            })
            .and_then(|r| r);
        if let Err(e) = outcome
            && first_error.is_none()
        {
            tracing::warn!(job = %run.job_id, error = %e, "a subtask failed; stopping the fan-out");
            first_error = Some(e);
            run.stop.cancel();
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The fan-out's budget figures: each pending file's estimate, the review's
/// fixed part, and the job's expected cost.
struct Admission {
    estimates: HashMap<SubtaskId, FileEstimate>,
    review_base: f64,
    job: JobEstimate,
}

impl Admission {
    async fn prepare(
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

    fn estimate(&self, id: SubtaskId) -> FileEstimate {
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

/// Drives one subtask through the cascade until it is accepted, needs a
/// human, or the run stops.
/// True when it ended accepted.
async fn drive_subtask(
    run: &JobRun,
    planned: &PlannedContext,
    sub: SubtaskRecord,
    directive: SubtaskDirective,
    history: Vec<AttemptSummary>,
) -> Result<bool> {
    let span =
        tracing::debug_span!("subtask", job = %run.job_id, subtask = %sub.id, path = %sub.path);
    drive(run, planned, sub, directive, history)
        .instrument(span)
        .await
}

async fn drive(
    run: &JobRun,
    planned: &PlannedContext,
    sub: SubtaskRecord,
    directive: SubtaskDirective,
    mut history: Vec<AttemptSummary>,
) -> Result<bool> {
    let engine = &run.engine;
    let job = run.job_id;
    if !engine
        .set_subtask_status(
            job,
            &sub,
            &[SubtaskStatus::Pending],
            SubtaskStatus::Running,
            SubtaskUpdate::default(),
        )
        .await?
    {
        return Ok(false);
    }
    if let Some(accepted) = settle_without_model(run, &sub, &directive).await? {
        return Ok(accepted);
    }
    let original = sub.original_content.clone().unwrap_or_default();
    let mut last_tier: Option<String> = history.last().map(|a| a.tier.clone());
    // The path adaptive routing stored, else every rung from the start.
    let routed = if run.config().routing.adaptive {
        run.store().subtask_path(sub.id).await?
    } else {
        None
    };
    let path = subtask_path(
        run.config(),
        &sub.start_tier,
        routed.as_ref().map(|r| r.path.as_slice()),
    )?;
    let codemod = run.config().has_codemod_tier() && directive.rule.is_some();
    loop {
        if run.stop.is_cancelled() {
            // Through the writer, fenced on the job's lease (crate::lease):
            // a run stopped because its lease was lost must not touch a
            // subtask the new owner runs.
            let back = AttemptWrite::Transition {
                id: sub.id,
                from: vec![SubtaskStatus::Running],
                to: SubtaskStatus::Pending,
                update: SubtaskUpdate::default(),
                event: None,
            };
            engine.writer().write_for(job, vec![back]).await?;
            return Ok(false);
        }
        if run.cancelled_by_user() {
            let update = SubtaskUpdate {
                reason: Some("job cancelled".to_owned()),
                ..SubtaskUpdate::default()
            };
            engine
                .set_subtask_status(
                    job,
                    &sub,
                    &[SubtaskStatus::Running],
                    SubtaskStatus::Cancelled,
                    update,
                )
                .await?;
            return Ok(false);
        }
        match next_step(run.config(), codemod, &path, &history)? {
            Step::Accept(i) => {
                return accept(run, &sub, &original, &history, i, Vec::new()).await;
            }
            Step::NeedsHuman(reason) => {
                engine
                    .hand_to_human(job, &sub, history.len(), reason)
                    .await?;
                return Ok(false);
            }
            Step::Attempt { tier } if tier == CODEMOD_TIER => {
                let rule = directive.rule.as_deref().unwrap_or_default();
                let summary = try_codemod(run, &sub, rule, &original, &history).await?;
                last_tier = Some(summary.tier.clone());
                history.push(summary);
            }
            Step::Attempt { tier } => {
                if let Some(prev) = &last_tier
                    && *prev != tier
                {
                    tracing::debug!(from = %prev, to = %tier, "escalated");
                    engine
                        .emit(
                            job,
                            Some(sub.id),
                            EventKind::Escalated,
                            format!("{}: {prev} -> {tier}", sub.path),
                            json!({"path": sub.path, "from": prev, "to": tier}),
                        )
                        .await?;
                }
                last_tier = Some(tier.clone());
                let feedback = feedback(&history);
                let input = AttemptInput {
                    sub: &sub,
                    original: &original,
                    tier: &tier,
                    ordinal: history.len() as u32 + 1,
                    feedback: &feedback,
                    history: &history,
                };
                match run_attempt(run, planned, input).await? {
                    AttemptRun::Done(summary, end) => {
                        history.push(summary);
                        // An attempt that settles the subtask is written with
                        // the acceptance: one group, its end first.
                        if !run.stop.is_cancelled()
                            && !run.cancelled_by_user()
                            && let Step::Accept(i) =
                                next_step(run.config(), codemod, &path, &history)?
                        {
                            return accept(run, &sub, &original, &history, i, end).await;
                        }
                        engine.write_all_then_emit(end).await?;
                    }
                    AttemptRun::Stopped => continue,
                    AttemptRun::OverBudget(reason) => {
                        engine
                            .hand_to_human(job, &sub, history.len(), reason)
                            .await?;
                        return Ok(false);
                    }
                }
            }
        }
    }
}

/// Accepts the subtask with the change of `history[i]`, written in one group
/// after `before` (the end of the attempt that settled it, if not yet
/// written). True when it ended accepted.
async fn accept(
    run: &JobRun,
    sub: &SubtaskRecord,
    original: &str,
    history: &[AttemptSummary],
    i: usize,
    before: Vec<AttemptWrite>,
) -> Result<bool> {
    let attempt = &history[i];
    let content = match &attempt.change {
        Some(change) => match apply_change(original, change) {
            Ok(content) => content,
            Err(e) => {
                // The attempt's end is still recorded before the error.
                if !before.is_empty() {
                    run.engine.write_all_then_emit(before).await?;
                }
                return Err(Error::Conflict(format!(
                    "{}: the accepted change no longer applies: {e}",
                    sub.path
                )));
            }
        },
        None => original.to_owned(),
    };
    let update = SubtaskUpdate {
        current_tier: Some(attempt.tier.clone()),
        attempts: Some(history.len() as u32),
        reason: Some(format!("accepted at {}", attempt.tier)),
        accepted_content: Some(Some(content)),
    };
    run.engine
        .set_subtask_status_after(
            before,
            run.job_id,
            sub,
            &[SubtaskStatus::Running],
            SubtaskStatus::Accepted,
            update,
        )
        .await?;
    Ok(true)
}
