//! One chunk's review: its request built from the job's shared prefix and
//! the chunk's diffs and rule blocks, sent as a reviewer attempt, and sent
//! again (a few times, each a new attempt) while the provider keeps failing.
//! When the budget is spent the chunk's files go to a human unreviewed.

use cadre_config::ModelConfig;
use cadre_llm::types::MessageRequest;
use cadre_store::SubtaskRecord;
use cadre_types::{AttemptOutcome, EventKind, FailureKind, Role};
use serde_json::json;

use super::chunks::Chunk;
use crate::attempt::{AttemptEnd, AttemptStart};
use crate::budget::min_output_tokens;
use crate::call::{CallCost, CallFailure, ModelCall};
use crate::prompts::{ReviewAnswer, RuleBlock, parse_review, reviewer_request};
use crate::route::{CallSettings, call_settings};
use crate::run::{JobRun, PlannedContext};
use crate::{Error, Result};

/// Most review calls in flight at once (the reviewer tier's limit bounds
/// them too). Each holds its chunk's request, up to ~200 KB of diff.
const REVIEW_CALLS_IN_FLIGHT: usize = 8;

/// How many times one chunk's review call is sent before the review fails
/// (each send has the client's own retries of 429/529 and 5xx inside it).
const REVIEW_CALL_TRIES: u32 = 3;

/// What every review call of a round shares.
pub(super) struct Reviewer<'r> {
    run: &'r JobRun,
    prefix: &'r str,
    tier: &'r str,
    model: &'r ModelConfig,
    settings: CallSettings,
    /// Review calls the round keeps in flight after the first.
    pub width: usize,
}

/// How a chunk's review ended, when it did not fail the review.
pub(super) enum ChunkEnd {
    /// The reviewer's usable answer.
    Answer(ReviewAnswer),
    /// The run is stopping; the attempt is interrupted.
    Stopped,
    /// The budget is spent: the chunk's files went to a human unreviewed.
    Withdrawn,
}

impl<'r> Reviewer<'r> {
    pub fn new(run: &'r JobRun, planned: &'r PlannedContext) -> Result<Self> {
        let config = run.config();
        let tier = config.roles.reviewer.tier.as_str();
        let model = config
            .models
            .get(tier)
            .ok_or_else(|| Error::Config(format!("reviewer tier {tier:?} has no model")))?;
        let settings = call_settings(config, Role::Reviewer, tier, None, Some("submit_review"))?;
        Ok(Self {
            run,
            prefix: &planned.prefix,
            tier,
            model,
            settings,
            width: (config.limits.tier_concurrency(tier) as usize).clamp(1, REVIEW_CALLS_IN_FLIGHT),
        })
    }

    /// Reviews one chunk; hands the chunk back with how it ended, so the
    /// round can apply the verdicts to its files.
    pub async fn review<'s>(&self, chunk: Chunk<'s>) -> (Chunk<'s>, Result<ChunkEnd>) {
        let end = self.review_chunk(&chunk).await;
        (chunk, end)
    }

    async fn review_chunk(&self, chunk: &Chunk<'_>) -> Result<ChunkEnd> {
        let run = self.run;
        let request = self.request(chunk);
        // The money held back for these files' review goes to this call.
        run.release_reviews(chunk.subtasks().map(|s| s.id));
        let mut ordinal = 0;
        loop {
            ordinal += 1;
            match self.send(&request, chunk.items(), ordinal).await? {
                ChunkAnswer::Answer(answer) => return Ok(ChunkEnd::Answer(answer)),
                ChunkAnswer::Stopped => return Ok(ChunkEnd::Stopped),
                ChunkAnswer::Failed(m) if run.budget.is_exhausted() => {
                    // Collected first: the iterator's closures are not
                    // `Send` across the awaits below.
                    let unreviewed: Vec<&SubtaskRecord> = chunk.subtasks().collect();
                    for sub in unreviewed {
                        run.engine
                            .withdraw_to_human(run.job_id, sub, format!("not reviewed: {m}"))
                            .await?;
                    }
                    return Ok(ChunkEnd::Withdrawn);
                }
                // A provider that keeps failing past the client's own
                // retries (a 429/529 storm, 5xx) gets the chunk again after
                // the tier's pause, a few times, before the job fails: by
                // now every file of the job is paid for.
                ChunkAnswer::Failed(m) if ordinal < REVIEW_CALL_TRIES => {
                    tracing::warn!(ordinal, error = %m, "the review call failed; sending it again");
                    run.engine
                        .note(
                            run.job_id,
                            EventKind::Backoff,
                            format!(
                                "{}: the review call failed ({m}); sending it again",
                                self.tier
                            ),
                            json!({"tier": self.tier, "review_call": ordinal}),
                        )
                        .await;
                }
                ChunkAnswer::Failed(m) => {
                    return Err(Error::Review(format!(
                        "review failed after {ordinal} calls: {m}"
                    )));
                }
            }
        }
    }

    /// The chunk's request: the shared prefix, its rule blocks and diffs.
    fn request(&self, chunk: &Chunk<'_>) -> MessageRequest {
        let diffs: Vec<(String, String)> = chunk
            .files
            .iter()
            .map(|(s, d)| (s.path.clone(), d.clone()))
            .collect();
        let blocks: Vec<RuleBlock> = chunk.rules.iter().map(|g| g.block.clone()).collect();
        tracing::debug!(
            items = chunk.items(),
            rules = blocks.len(),
            prefix_chars = self.prefix.len(),
            diff_chars = diffs.iter().map(|(_, d)| d.len()).sum::<usize>(),
            "review call"
        );
        reviewer_request(
            &self.model.model,
            &self.settings,
            self.prefix,
            &blocks,
            &diffs,
        )
    }
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

impl Reviewer<'_> {
    /// Sends a chunk's `request` (`items` files and rules, which size the
    /// smallest useful answer) as a new reviewer attempt, the chunk's
    /// `ordinal`-th, and records how it ended. An answer the parser refuses
    /// fails the review at once: the same request would get the same answer.
    async fn send(
        &self,
        request: &MessageRequest,
        items: usize,
        ordinal: u32,
    ) -> Result<ChunkAnswer> {
        let run = self.run;
        let engine = &run.engine;
        let attempt = engine
            .start_attempt(
                AttemptStart {
                    job: run.job_id,
                    subtask: None,
                    role: Role::Reviewer,
                    tier: self.tier,
                    model: &self.model.model,
                    effort: self.settings.effort.clone(),
                    ordinal,
                },
                request,
            )
            .await?;
        let call = ModelCall {
            attempt,
            turn: 0,
            role: Role::Reviewer,
            tier: self.tier,
            request,
            warm: false,
            min_output_tokens: min_output_tokens(Role::Reviewer, items, 0, request.max_tokens),
        };
        match call.send(run).await {
            Ok(done) => match parse_review(&done.response) {
                Ok(answer) => {
                    let end = AttemptEnd::paid(done.cost);
                    engine
                        .finish_attempt(attempt, AttemptOutcome::Passed, end)
                        .await?;
                    Ok(ChunkAnswer::Answer(answer))
                }
                Err(p) => {
                    let end = AttemptEnd::failed(p.kind, p.message.clone(), done.cost);
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
                let end =
                    AttemptEnd::failed(FailureKind::ProviderError, m.clone(), CallCost::default());
                engine
                    .finish_attempt(attempt, AttemptOutcome::Failed, end)
                    .await?;
                Ok(ChunkAnswer::Failed(m))
            }
        }
    }
}
