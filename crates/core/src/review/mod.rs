//! The review: the reviewer model reads the accepted files' changes with
//! the plan (in chunks of at most 100 items and ~200 KB of diff, see
//! [`chunks`]); `approve` keeps a file, `revise` sends it back to the
//! cascade with the comment. Files the budget could not cover are never
//! applied unreviewed: they go to a human.
//!
//! A codemod rule is reviewed once, not file by file: the files accepted at
//! the codemod tier are grouped by the rule that rewrote them, and each rule
//! comes to the reviewer as one block (the rule's YAML, how many files it
//! rewrote, up to [`chunks::RULE_SAMPLES`] sample diffs: the largest, the
//! smallest and one from the middle by path). Its one verdict holds for
//! every file of the group: `approve` approves them all, `revise` sends them
//! all back with the comment, so each goes on to its model tier (the rule is
//! not run again) and is then reviewed on its own. Every file still gets its
//! own `review_verdict` event, naming the rule. Files a model wrote are
//! reviewed one by one, each with its diff.

mod chunks;

use std::collections::HashMap;

use cadre_llm::types::MessageRequest;
use cadre_store::{NewEvent, SubtaskRecord};
use cadre_types::{AttemptOutcome, EventKind, FailureKind, Role, SubtaskId, Verdict};
use serde_json::json;
use tracing::Instrument;

use crate::attempt::{AttemptEnd, AttemptStart};
use crate::budget::min_output_tokens;
use crate::call::{CallFailure, ModelCall};
use crate::prompts::{ReviewAnswer, RuleBlock, parse_review, reviewer_request};
use crate::route::call_settings;
use crate::run::{JobRun, PlannedContext};
use crate::{Error, Result};

use chunks::{Chunk, chunks};

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
            .files
            .iter()
            .map(|(s, d)| (s.path.clone(), d.clone()))
            .collect();
        let blocks: Vec<RuleBlock> = chunk.rules.iter().map(|g| g.block.clone()).collect();
        let request = reviewer_request(&model.model, &settings, &planned.prefix, &blocks, &diffs);
        tracing::debug!(
            items = chunk.items(),
            rules = blocks.len(),
            prefix_chars = planned.prefix.len(),
            diff_chars = diffs.iter().map(|(_, d)| d.len()).sum::<usize>(),
            "review call"
        );
        drop((diffs, blocks));
        // The money held back for these files' review goes to this call.
        run.release_reviews(chunk.subtasks().map(|s| s.id));
        let mut ordinal = 0;
        let answer = loop {
            ordinal += 1;
            let call = ReviewCall {
                tier: &tier,
                model: &model.model,
                effort: settings.effort.clone(),
                request: &request,
                items: chunk.items(),
                ordinal,
            };
            match call.send(run).await? {
                ChunkAnswer::Answer(answer) => break Some(answer),
                ChunkAnswer::Stopped => {
                    outcome.stopped = true;
                    return Ok(outcome);
                }
                ChunkAnswer::Failed(m) if run.budget.is_exhausted() => {
                    // Collected first: the iterator's closures are not
                    // `Send` across the awaits below.
                    let unreviewed: Vec<&SubtaskRecord> = chunk.subtasks().collect();
                    for sub in unreviewed {
                        engine
                            .withdraw_to_human(run.job_id, sub, format!("not reviewed: {m}"))
                            .await?;
                    }
                    break None;
                }
                // A provider that keeps failing past the client's own
                // retries (a 429/529 storm, 5xx) gets the chunk again after
                // the tier's pause, a few times, before the job fails: by
                // now every file of the job is paid for.
                ChunkAnswer::Failed(m) if ordinal < REVIEW_CALL_TRIES => {
                    tracing::warn!(ordinal, error = %m, "the review call failed; sending it again");
                    engine
                        .note(
                            run.job_id,
                            EventKind::Backoff,
                            format!("{tier}: the review call failed ({m}); sending it again"),
                            json!({"tier": tier, "review_call": ordinal}),
                        )
                        .await;
                }
                ChunkAnswer::Failed(m) => {
                    return Err(Error::Review(format!(
                        "review failed after {ordinal} calls: {m}"
                    )));
                }
            }
        };
        let Some(answer) = answer else { continue };
        outcome.sent_back += apply_verdicts(run, &chunk, &answer, approved).await?;
    }
    Ok(outcome)
}

/// How many times one chunk's review call is sent before the review fails
/// (each send has the client's own retries of 429/529 and 5xx inside it).
const REVIEW_CALL_TRIES: u32 = 3;

/// One send of a chunk's review request, as its own reviewer attempt.
struct ReviewCall<'a> {
    tier: &'a str,
    model: &'a str,
    effort: Option<String>,
    request: &'a MessageRequest,
    /// Files and rules the chunk holds (sizes the smallest useful answer).
    items: usize,
    /// The attempt's ordinal: 1 for the first send of the chunk.
    ordinal: u32,
}

/// How one send of a chunk's review ended.
enum ChunkAnswer {
    /// The reviewer's usable answer.
    Answer(ReviewAnswer),
    /// The run is stopping; the attempt is interrupted.
    Stopped,
    /// The provider failed or the budget refused the call (the attempt is
    /// recorded as failed with this message).
    Failed(String),
}

impl ReviewCall<'_> {
    /// Sends the request as a new reviewer attempt and records how it
    /// ended. An answer the parser refuses fails the review at once: the
    /// same request would get the same answer.
    async fn send(&self, run: &JobRun) -> Result<ChunkAnswer> {
        let engine = &run.engine;
        let attempt = engine
            .start_attempt(
                AttemptStart {
                    job: run.job_id,
                    subtask: None,
                    role: Role::Reviewer,
                    tier: self.tier,
                    model: self.model,
                    effort: self.effort.clone(),
                    ordinal: self.ordinal,
                },
                self.request,
            )
            .await?;
        let call = ModelCall {
            attempt,
            turn: 0,
            role: Role::Reviewer,
            tier: self.tier,
            request: self.request,
            warm: false,
            min_output_tokens: min_output_tokens(
                Role::Reviewer,
                self.items,
                0,
                self.request.max_tokens,
            ),
        };
        match call.send(run).await {
            Ok(done) => match parse_review(&done.response) {
                Ok(answer) => {
                    let end = AttemptEnd {
                        cost: done.cost,
                        ..AttemptEnd::default()
                    };
                    engine
                        .finish_attempt(attempt, AttemptOutcome::Passed, end)
                        .await?;
                    Ok(ChunkAnswer::Answer(answer))
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
                    Err(Error::Review(format!(
                        "the reviewer's answer was unusable: {}",
                        p.message
                    )))
                }
            },
            Err(CallFailure::Stopped) => {
                engine
                    .finish_attempt(attempt, AttemptOutcome::Interrupted, AttemptEnd::default())
                    .await?;
                Ok(ChunkAnswer::Stopped)
            }
            Err(CallFailure::Store(e)) => Err(Error::Store(e)),
            Err(CallFailure::Budget(m) | CallFailure::Provider(m)) => {
                let end = AttemptEnd {
                    problem: Some((FailureKind::ProviderError, m.clone())),
                    ..AttemptEnd::default()
                };
                engine
                    .finish_attempt(attempt, AttemptOutcome::Failed, end)
                    .await?;
                Ok(ChunkAnswer::Failed(m))
            }
        }
    }
}

/// A verdict as the review applies it to one file.
#[derive(Clone, Copy)]
struct FileVerdict<'a> {
    decision: Verdict,
    comment: &'a str,
    /// The rule whose verdict this is, for a file a rule rewrote.
    rule: Option<&'a str>,
}

/// Applies the answer to every file of the chunk (a rule's verdict to every
/// file of its group): the chunk's `review_verdict` events first, in one
/// trip to the store writer, then each file is approved or sent back in
/// order; returns how many files went back.
async fn apply_verdicts(
    run: &JobRun,
    chunk: &Chunk<'_>,
    answer: &ReviewAnswer,
    approved: &mut Approvals,
) -> Result<usize> {
    const NONE_GIVEN: &str = "no verdict given; treated as approved";
    let mut verdicts: Vec<(&SubtaskRecord, FileVerdict<'_>)> = Vec::new();
    for group in &chunk.rules {
        let id = group.block.id.as_str();
        let given = answer.rules.iter().find(|v| v.rule == id);
        // The rule's one verdict holds for every file of its group.
        let verdict = FileVerdict {
            decision: given.map_or(Verdict::Approve, |v| v.verdict),
            comment: given.map_or(NONE_GIVEN, |v| v.comment.as_str()),
            rule: Some(id),
        };
        verdicts.extend(group.subtasks.iter().map(|sub| (*sub, verdict)));
    }
    for (sub, _) in &chunk.files {
        let given = answer.files.iter().find(|v| v.path == sub.path);
        let verdict = FileVerdict {
            decision: given.map_or(Verdict::Approve, |v| v.verdict),
            comment: given.map_or(NONE_GIVEN, |v| v.comment.as_str()),
            rule: None,
        };
        verdicts.push((sub, verdict));
    }
    let events = verdicts
        .iter()
        .map(|(sub, verdict)| verdict_event(run, sub, verdict))
        .collect();
    run.engine.emit_all(events).await?;
    let mut sent_back = 0;
    for (sub, verdict) in &verdicts {
        match verdict.decision {
            Verdict::Approve => {
                approved.insert(sub.id, sub.attempts);
            }
            Verdict::Revise => {
                let message = match verdict.rule {
                    Some(rule) => format!("reviewer, on codemod rule {rule}: {}", verdict.comment),
                    None => format!("reviewer: {}", verdict.comment),
                };
                run.engine
                    .send_back(run.job_id, sub, FailureKind::ReviewRejected, &message)
                    .await?;
                sent_back += 1;
            }
        }
    }
    Ok(sent_back)
}

/// One file's `review_verdict` event.
fn verdict_event(run: &JobRun, sub: &SubtaskRecord, verdict: &FileVerdict<'_>) -> NewEvent {
    let word = match verdict.decision {
        Verdict::Approve => "approve",
        Verdict::Revise => "revise",
    };
    let by = verdict
        .rule
        .map(|r| format!(" (rule {r})"))
        .unwrap_or_default();
    let mut data =
        json!({"path": sub.path, "verdict": verdict.decision, "comment": verdict.comment});
    if let Some(rule) = verdict.rule {
        data["rule"] = json!(rule);
    }
    NewEvent {
        job_id: run.job_id,
        subtask_id: Some(sub.id),
        kind: EventKind::ReviewVerdict,
        message: format!("{}: {word}{by} {}", sub.path, verdict.comment)
            .trim_end()
            .to_owned(),
        data,
    }
}
