//! The review: the reviewer model reads the combined diff of the accepted
//! files (in chunks of at most [`REVIEW_CHUNK_FILES`] files and ~200 KB of
//! diff) with the plan; `approve` keeps a file, `revise` sends it back to
//! the cascade with the comment. Files the budget could not cover are never
//! applied unreviewed: they go to a human.

use std::collections::HashMap;

use cadre_store::SubtaskRecord;
use cadre_types::{AttemptOutcome, EventKind, FailureKind, Role, SubtaskId, Verdict};
use serde_json::json;
use tracing::Instrument;

use crate::actions::{FileAction, action_patch};
use crate::attempt::{AttemptEnd, AttemptStart};
use crate::budget::min_output_tokens;
use crate::call::{CallFailure, ModelCall};
use crate::diff::unified_diff;
use crate::prompts::{parse_review, reviewer_request};
use crate::route::call_settings;
use crate::run::{JobRun, PlannedContext};
use crate::{Error, Result};

/// Most files one reviewer call covers.
const REVIEW_CHUNK_FILES: usize = 100;

/// Most bytes of diff one reviewer call covers.
const REVIEW_CHUNK_BYTES: usize = 200_000;

/// Accepted subtasks the reviewer approved, with the attempt count their
/// approved content came from (a later attempt needs a new review).
pub(crate) type Approvals = HashMap<SubtaskId, u32>;

/// What one review round did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ReviewOutcome {
    /// Files sent back for revision.
    pub sent_back: usize,
    /// The round stopped early because the run is stopping.
    pub stopped: bool,
}

/// One review round over `subtasks`; approvals are added to `approved`.
pub(crate) async fn review(
    run: &JobRun,
    planned: &PlannedContext,
    subtasks: &[SubtaskRecord],
    approved: &mut Approvals,
) -> Result<ReviewOutcome> {
    let span = tracing::debug_span!("review", job = %run.job_id, files = subtasks.len());
    review_inner(run, planned, subtasks, approved)
        .instrument(span)
        .await
}

async fn review_inner(
    run: &JobRun,
    planned: &PlannedContext,
    subtasks: &[SubtaskRecord],
    approved: &mut Approvals,
) -> Result<ReviewOutcome> {
    let engine = &run.engine;
    let config = run.config();
    let tier = config.roles.reviewer.tier.clone();
    let model = config
        .models
        .get(&tier)
        .ok_or_else(|| Error::Config(format!("reviewer tier {tier:?} has no model")))?;
    let settings = call_settings(config, Role::Reviewer, &tier, None, Some("submit_review"))?;
    let mut outcome = ReviewOutcome::default();
    for chunk in chunks(run, subtasks).await? {
        let diffs: Vec<(String, String)> = chunk
            .iter()
            .map(|(s, d)| (s.path.clone(), d.clone()))
            .collect();
        let chunk: Vec<&SubtaskRecord> = chunk.into_iter().map(|(s, _)| s).collect();
        let request = reviewer_request(&model.model, &settings, &planned.prefix, &diffs);
        // The money held back for these files' review goes to this call.
        run.release_reviews(chunk.iter().map(|s| s.id));
        let attempt = engine
            .start_attempt(
                AttemptStart {
                    job: run.job_id,
                    subtask: None,
                    role: Role::Reviewer,
                    tier: &tier,
                    model: &model.model,
                    effort: settings.effort.clone(),
                    ordinal: 1,
                },
                &request,
            )
            .await?;
        let call = ModelCall {
            attempt,
            turn: 0,
            role: Role::Reviewer,
            tier: &tier,
            request: &request,
            warm: false,
            min_output_tokens: min_output_tokens(
                Role::Reviewer,
                chunk.len(),
                0,
                request.max_tokens,
            ),
        };
        let verdicts = match call.send(run).await {
            Ok(done) => match parse_review(&done.response) {
                Ok(v) => {
                    let end = AttemptEnd {
                        cost: done.cost,
                        ..AttemptEnd::default()
                    };
                    engine
                        .finish_attempt(attempt, AttemptOutcome::Passed, end)
                        .await?;
                    v
                }
                Err(p) => {
                    let end = AttemptEnd {
                        problem: Some((p.kind, p.message.clone())),
                        change: None,
                        cost: done.cost,
                    };
                    engine
                        .finish_attempt(attempt, AttemptOutcome::Failed, end)
                        .await?;
                    return Err(Error::Review(format!(
                        "the reviewer's answer was unusable: {}",
                        p.message
                    )));
                }
            },
            Err(CallFailure::Stopped) => {
                engine
                    .finish_attempt(attempt, AttemptOutcome::Interrupted, AttemptEnd::default())
                    .await?;
                outcome.stopped = true;
                return Ok(outcome);
            }
            Err(CallFailure::Store(e)) => return Err(Error::Store(e)),
            Err(CallFailure::Budget(m) | CallFailure::Provider(m)) => {
                let end = AttemptEnd {
                    problem: Some((FailureKind::ProviderError, m.clone())),
                    ..AttemptEnd::default()
                };
                engine
                    .finish_attempt(attempt, AttemptOutcome::Failed, end)
                    .await?;
                if run.budget.is_exhausted() {
                    for sub in &chunk {
                        engine
                            .withdraw_to_human(run.job_id, sub, format!("not reviewed: {m}"))
                            .await?;
                    }
                    continue;
                }
                return Err(Error::Review(format!("review failed: {m}")));
            }
        };
        for sub in chunk {
            let verdict = verdicts.iter().find(|v| v.path == sub.path);
            let (decision, comment) = match verdict {
                Some(v) => (v.verdict, v.comment.clone()),
                None => (
                    Verdict::Approve,
                    "no verdict given; treated as approved".to_owned(),
                ),
            };
            let word = match decision {
                Verdict::Approve => "approve",
                Verdict::Revise => "revise",
            };
            engine
                .emit(
                    run.job_id,
                    Some(sub.id),
                    EventKind::ReviewVerdict,
                    format!("{}: {word} {comment}", sub.path)
                        .trim_end()
                        .to_owned(),
                    json!({"path": sub.path, "verdict": decision, "comment": comment}),
                )
                .await?;
            match decision {
                Verdict::Approve => {
                    approved.insert(sub.id, sub.attempts);
                }
                Verdict::Revise => {
                    engine
                        .send_back(
                            run.job_id,
                            sub,
                            FailureKind::ReviewRejected,
                            &format!("reviewer: {comment}"),
                        )
                        .await?;
                    outcome.sent_back += 1;
                }
            }
        }
    }
    Ok(outcome)
}

/// The files and their diffs, cut into reviewer-sized chunks. Diffs are
/// computed one file at a time (contents are loaded per file, not for the
/// whole job).
async fn chunks<'s>(
    run: &JobRun,
    subtasks: &'s [SubtaskRecord],
) -> Result<Vec<Vec<(&'s SubtaskRecord, String)>>> {
    let mut chunks: Vec<Vec<(&SubtaskRecord, String)>> = vec![vec![]];
    let mut size = 0;
    let directives = run.store().job_directives_brief(run.job_id).await?;
    for sub in subtasks {
        let Some(full) = run.store().get_subtask(sub.id).await? else {
            continue;
        };
        let old = full.original_content.as_deref().unwrap_or_default();
        let new = full.accepted_content.as_deref().unwrap_or_default();
        let diff = match directives.get(&sub.id) {
            None => unified_diff(&full.path, old, new),
            Some(d) => action_patch(&full.path, &FileAction::from_directive(Some(d)), old, new),
        };
        let at_limit = chunks.last().is_some_and(|c| c.len() >= REVIEW_CHUNK_FILES);
        if (size + diff.len() > REVIEW_CHUNK_BYTES || at_limit)
            && !chunks.last().is_none_or(Vec::is_empty)
        {
            chunks.push(vec![]);
            size = 0;
        }
        size += diff.len();
        if let Some(chunk) = chunks.last_mut() {
            chunk.push((sub, diff));
        }
    }
    chunks.retain(|c| !c.is_empty());
    Ok(chunks)
}
