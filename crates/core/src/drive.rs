//! One subtask driven through the cascade: started, then attempt after
//! attempt at the rungs [`next_step`] names, until it is accepted, needs a
//! human, or the run stops. The fan-out ([`crate::fanout`]) runs one of
//! these per file.

use cadre_store::{AttemptWrite, SubtaskDirective, SubtaskRecord, SubtaskUpdate};
use cadre_types::{EventKind, SubtaskStatus};
use serde_json::json;
use tracing::Instrument;

use crate::actions::settle_without_model;
use crate::attempt::{AttemptInput, AttemptRun, run_attempt};
use crate::cascade::{AttemptSummary, Step, feedback, next_step, subtask_path};
use crate::codemod::{CODEMOD_TIER, try_codemod};
use crate::edit::apply_change;
use crate::run::{JobRun, PlannedContext};
use crate::{Error, Result};

/// Drives one subtask through the cascade until it is accepted, needs a
/// human, or the run stops.
/// True when it ended accepted.
/// A `claimed` subtask is already running under this engine's claim.
pub(crate) async fn drive_subtask(
    run: &JobRun,
    planned: &PlannedContext,
    sub: SubtaskRecord,
    directive: SubtaskDirective,
    history: Vec<AttemptSummary>,
    claimed: bool,
) -> Result<bool> {
    let span =
        tracing::debug_span!("subtask", job = %run.job_id, subtask = %sub.id, path = %sub.path);
    drive(run, planned, sub, directive, history, claimed)
        .instrument(span)
        .await
}

async fn drive(
    run: &JobRun,
    planned: &PlannedContext,
    sub: SubtaskRecord,
    directive: SubtaskDirective,
    mut history: Vec<AttemptSummary>,
    claimed: bool,
) -> Result<bool> {
    let engine = &run.engine;
    let job = run.job_id;
    if claimed {
        if sub.status != SubtaskStatus::Running {
            return Ok(false);
        }
        let event = engine.subtask_status_event(
            job,
            &sub,
            SubtaskStatus::Running,
            &SubtaskUpdate::default(),
        );
        engine
            .write_all_then_emit(vec![AttemptWrite::Event(event)])
            .await?;
    } else if !engine
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
