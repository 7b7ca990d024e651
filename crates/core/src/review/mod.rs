//! The review: the reviewer model reads the accepted files' changes with
//! the plan (in chunks of at most 100 items and ~200 KB of diff, built as
//! the round needs them, see [`chunks`]); `approve` keeps a file, `revise`
//! sends it back to the cascade with the comment. Files the budget could
//! not cover are never applied unreviewed: they go to a human.
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
//!
//! The first chunk's call goes alone, so it writes the reviewer's cache of
//! the shared prefix; the later chunks then go several at once (see
//! [`call`]), their verdicts applied as their answers come in. A chunk that
//! fails the review stops new calls, and the round waits for the calls in
//! flight, so every reviewer attempt ends recorded.

mod call;
mod chunks;

use std::collections::HashMap;

use cadre_store::{NewEvent, SubtaskRecord};
use cadre_types::{EventKind, FailureKind, SubtaskId, Verdict};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde_json::json;
use tracing::Instrument;

use crate::Result;
use crate::prompts::ReviewAnswer;
use crate::run::{JobRun, PlannedContext};

use call::{ChunkEnd, Reviewer};
use chunks::{Chunk, Chunks};

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
    let reviewer = Reviewer::new(run, planned)?;
    let mut pending = Chunks::new(run, subtasks).await?;
    let mut outcome = ReviewOutcome::default();
    let mut in_flight = FuturesUnordered::new();
    let mut settled = 0;
    let mut failure = None;
    loop {
        // The first chunk goes alone: its call writes the reviewer's cache
        // of the shared prefix, which the later calls read. After it, a few
        // go at once. A failure or a stop sends no more calls but waits for
        // those in flight, so each ends as a recorded attempt.
        let width = if settled == 0 { 1 } else { reviewer.width };
        while failure.is_none() && !outcome.stopped && in_flight.len() < width {
            match pending.next(run).await {
                Ok(Some(chunk)) => in_flight.push(reviewer.review(chunk)),
                Ok(None) => break,
                Err(e) => failure = Some(e),
            }
        }
        let Some((chunk, end)) = in_flight.next().await else {
            break;
        };
        settled += 1;
        let applied = match end {
            Ok(ChunkEnd::Answer(answer)) => apply_verdicts(run, &chunk, &answer, approved).await,
            Ok(ChunkEnd::Stopped) => {
                outcome.stopped = true;
                Ok(0)
            }
            Ok(ChunkEnd::Withdrawn) => Ok(0),
            Err(e) => Err(e),
        };
        match applied {
            Ok(sent_back) => outcome.sent_back += sent_back,
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(outcome),
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
