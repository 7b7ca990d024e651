//! The fan-out: every pending subtask driven through the cascade on a
//! bounded pool (twice as many subtasks in flight as call slots, so a slot
//! never idles while its subtask validates or writes to the store). Only ids
//! wait in the queue; a subtask's contents and history are loaded when its
//! task starts, so memory follows the subtasks in flight, not the job.

use std::sync::Arc;

use cadre_store::{SubtaskRecord, SubtaskUpdate};
use cadre_types::{EventKind, Role, SubtaskId, SubtaskStatus};
use serde_json::json;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::attempt::{AttemptInput, AttemptRun, run_attempt};
use crate::cascade::{AttemptSummary, Step, feedback, next_step};
use crate::edit::apply_change;
use crate::run::{JobRun, PlannedContext};
use crate::{Error, Result};

/// Runs every pending subtask to a terminal state (or until the run stops).
/// The first error stops the other subtasks and is returned.
pub(crate) async fn fan_out(run: &Arc<JobRun>, planned: &Arc<PlannedContext>) -> Result<()> {
    let store = run.store();
    let pending: Vec<SubtaskId> = store
        .list_subtasks_brief(run.job_id)
        .await?
        .iter()
        .filter(|s| s.status == SubtaskStatus::Pending)
        .map(|s| s.id)
        .collect();
    if pending.is_empty() {
        return Ok(());
    }
    tracing::debug!(job = %run.job_id, pending = pending.len(), "fan-out");
    // Histories (with their changes, for circular-fix detection) are loaded
    // per subtask as its task starts, and only where one exists.
    let with_history = store.subtasks_with_attempts(run.job_id).await?;
    let limit = run.config().limits.max_concurrency.max(1) as usize * 2;
    let mut queue = pending.into_iter();
    let mut set: JoinSet<Result<()>> = JoinSet::new();
    let mut first_error = None;
    loop {
        while set.len() < limit && !run.stop.is_cancelled() {
            let Some(id) = queue.next() else { break };
            let has_history = with_history.contains(&id);
            let (run, planned) = (run.clone(), planned.clone());
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
                match store.get_subtask(id).await? {
                    Some(full) => drive_subtask(&run, &planned, full, history).await,
                    None => Err(Error::NotFound(format!("subtask {id}"))),
                }
            });
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

/// Drives one subtask through the cascade until it is accepted, needs a
/// human, or the run stops.
async fn drive_subtask(
    run: &JobRun,
    planned: &PlannedContext,
    sub: SubtaskRecord,
    history: Vec<AttemptSummary>,
) -> Result<()> {
    let span =
        tracing::debug_span!("subtask", job = %run.job_id, subtask = %sub.id, path = %sub.path);
    drive(run, planned, sub, history).instrument(span).await
}

async fn drive(
    run: &JobRun,
    planned: &PlannedContext,
    sub: SubtaskRecord,
    mut history: Vec<AttemptSummary>,
) -> Result<()> {
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
        return Ok(());
    }
    let original = sub.original_content.clone().unwrap_or_default();
    let mut last_tier: Option<String> = history.last().map(|a| a.tier.clone());
    loop {
        if run.stop.is_cancelled() {
            run.store()
                .transition_subtask(
                    sub.id,
                    &[SubtaskStatus::Running],
                    SubtaskStatus::Pending,
                    &SubtaskUpdate::default(),
                )
                .await?;
            return Ok(());
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
            return Ok(());
        }
        match next_step(run.config(), &sub.start_tier, &history)? {
            Step::Accept(i) => {
                let attempt = &history[i];
                let content = match &attempt.change {
                    Some(change) => apply_change(&original, change).map_err(|e| {
                        Error::Conflict(format!(
                            "{}: the accepted change no longer applies: {e}",
                            sub.path
                        ))
                    })?,
                    None => original.clone(),
                };
                let update = SubtaskUpdate {
                    current_tier: Some(attempt.tier.clone()),
                    attempts: Some(history.len() as u32),
                    reason: Some(format!("accepted at {}", attempt.tier)),
                    accepted_content: Some(Some(content)),
                };
                engine
                    .set_subtask_status(
                        job,
                        &sub,
                        &[SubtaskStatus::Running],
                        SubtaskStatus::Accepted,
                        update,
                    )
                    .await?;
                return Ok(());
            }
            Step::NeedsHuman(reason) => {
                return engine.hand_to_human(job, &sub, history.len(), reason).await;
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
                    AttemptRun::Done(summary) => history.push(summary),
                    AttemptRun::Stopped => continue,
                    AttemptRun::OverBudget(reason) => {
                        return engine.hand_to_human(job, &sub, history.len(), reason).await;
                    }
                }
            }
        }
    }
}
