//! One worker attempt: the conversation with the model (read-only tool
//! turns, then a change), validation of the change, and the attempt's row in
//! the store. Also the attempt bookkeeping the planner and reviewer share.

use cadre_config::ProviderKind;
use cadre_llm::types::{
    ContentBlock, Message, MessageRequest, MessageResponse, MessageRole, StopReason, ToolChoice,
};
use cadre_store::{AttemptFinish, AttemptWrite, NewAttempt, NewEvent, SubtaskRecord};
use cadre_types::{AttemptId, AttemptOutcome, EventKind, FailureKind, JobId, Role, SubtaskId};
use serde_json::json;
use tracing::Instrument;

use crate::budget::min_output_tokens;
use crate::call::{CallCost, CallFailure, Encoded, ModelCall, request_sha};
use crate::cascade::{AttemptSummary, StoredChange};
use crate::engine::Engine;
use crate::pricing::estimate_tokens;
use crate::prompts::{
    Feedback, WorkerTurn, parse_worker_turn, worker_request, worker_user_message,
};
use crate::route::call_settings;
use crate::run::{JobRun, PlannedContext};
use crate::tools::ToolWorkspace;
use crate::validate::{ValidationInput, validate};
use crate::window::fit_request;
use crate::{Error, Result};

/// How one attempt ended, as the subtask driver sees it.
#[derive(Debug)]
pub(crate) enum AttemptRun {
    /// A model answered and the answer was validated (passed or failed);
    /// the attempt's end and its event are still to be written (the caller
    /// writes them, alone or in one group with what follows from them).
    Done(AttemptSummary, Vec<AttemptWrite>),
    /// The run is stopping; the attempt is recorded as interrupted.
    Stopped,
    /// The budget cannot cover the next call; nothing was sent.
    OverBudget(String),
}

/// A new attempt's identity in the store.
#[derive(Debug)]
pub(crate) struct AttemptStart<'a> {
    pub job: JobId,
    pub subtask: Option<SubtaskId>,
    pub role: Role,
    pub tier: &'a str,
    pub model: &'a str,
    pub effort: Option<String>,
    pub ordinal: u32,
}

/// How an attempt ended, for its row.
#[derive(Debug, Default)]
pub(crate) struct AttemptEnd<'a> {
    pub problem: Option<(FailureKind, String)>,
    pub change: Option<&'a StoredChange>,
    /// What the attempt's calls cost.
    pub cost: CallCost,
}

impl AttemptEnd<'static> {
    /// An attempt whose answer was usable: what its calls cost.
    pub fn paid(cost: CallCost) -> Self {
        Self {
            cost,
            ..Self::default()
        }
    }

    /// An attempt that went wrong: why, and what its calls cost.
    pub fn failed(kind: FailureKind, message: String, cost: CallCost) -> Self {
        Self {
            problem: Some((kind, message)),
            change: None,
            cost,
        }
    }
}

impl Engine {
    /// Records a started attempt for `request`.
    pub(crate) async fn start_attempt(
        &self,
        start: AttemptStart<'_>,
        request: &MessageRequest,
    ) -> Result<AttemptId> {
        self.start_hashed_attempt(start, request_sha(request)?, None)
            .await
    }

    /// [`Engine::start_attempt`] for a request whose ledger key the caller
    /// already holds (it is hashed once, not again for its first call),
    /// with the event that says so written in the same group.
    pub(crate) async fn start_hashed_attempt(
        &self,
        start: AttemptStart<'_>,
        request_sha256: String,
        event: Option<NewEvent>,
    ) -> Result<AttemptId> {
        let id = AttemptId::new();
        let row = NewAttempt {
            id,
            job_id: start.job,
            subtask_id: start.subtask,
            role: start.role,
            tier: start.tier.to_owned(),
            model: start.model.to_owned(),
            effort: start.effort,
            ordinal: start.ordinal,
            request_sha256,
            batch_id: None,
        };
        match event {
            Some(event) => {
                self.write_then_emit(AttemptWrite::StartAttempt(row), event)
                    .await?;
            }
            None => self.writer().start_attempt(row).await?,
        }
        Ok(id)
    }

    /// Records how an attempt ended.
    pub(crate) async fn finish_attempt(
        &self,
        id: AttemptId,
        outcome: AttemptOutcome,
        end: AttemptEnd<'_>,
    ) -> Result<()> {
        self.finish_attempt_then(id, outcome, end, None).await
    }

    /// [`Engine::finish_attempt`], with the event that says so written in
    /// the same group.
    pub(crate) async fn finish_attempt_then(
        &self,
        id: AttemptId,
        outcome: AttemptOutcome,
        end: AttemptEnd<'_>,
        event: Option<NewEvent>,
    ) -> Result<()> {
        let write = finish_write(id, outcome, end)?;
        match event {
            Some(event) => {
                self.write_then_emit(write, event).await?;
            }
            None => {
                self.writer().write(vec![write]).await?;
            }
        }
        Ok(())
    }
}

/// The write that records how an attempt ended.
fn finish_write(
    id: AttemptId,
    outcome: AttemptOutcome,
    end: AttemptEnd<'_>,
) -> Result<AttemptWrite> {
    let usage = end.cost.usage;
    let change = match end.change {
        Some(c) => Some(serde_json::to_value(c).map_err(cadre_store::Error::Json)?),
        None => None,
    };
    let finish = AttemptFinish {
        outcome,
        failure: end.problem.as_ref().map(|p| p.0),
        error: end.problem.map(|p| p.1),
        response: None,
        change,
        input_tokens: usage.input_tokens,
        output_tokens: usage.output_tokens,
        cache_read_tokens: usage.cache_read_input_tokens,
        cache_write_tokens: usage.cache_creation_input_tokens,
        cost_usd: end.cost.cost_usd,
        latency_ms: end.cost.latency_ms,
    };
    Ok(AttemptWrite::FinishAttempt { id, finish })
}

/// The echo of a model's turn in the next request.
pub(crate) fn echo_content(content: &[ContentBlock]) -> Vec<ContentBlock> {
    content
        .iter()
        .filter(|b| !matches!(b, ContentBlock::Unknown))
        .cloned()
        .collect()
}

/// What one worker attempt works on.
#[derive(Debug)]
pub(crate) struct AttemptInput<'a> {
    pub sub: &'a SubtaskRecord,
    pub original: &'a str,
    pub tier: &'a str,
    pub ordinal: u32,
    pub feedback: &'a [Feedback],
    pub history: &'a [AttemptSummary],
}

/// Runs one worker attempt: the conversation, then validation.
pub(crate) async fn run_attempt(
    run: &JobRun,
    planned: &PlannedContext,
    input: AttemptInput<'_>,
) -> Result<AttemptRun> {
    let span = tracing::debug_span!(
        "attempt",
        job = %run.job_id,
        subtask = %input.sub.id,
        path = %input.sub.path,
        tier = input.tier,
        ordinal = input.ordinal,
    );
    attempt_inner(run, planned, input).instrument(span).await
}

async fn attempt_inner(
    run: &JobRun,
    planned: &PlannedContext,
    input: AttemptInput<'_>,
) -> Result<AttemptRun> {
    let engine = &run.engine;
    let config = run.config();
    // `tier` is the rung (recorded on the attempt); `model_tier` plays it.
    let (sub, tier, ordinal) = (input.sub, input.tier, input.ordinal);
    let model_tier = config.tier_of_rung(tier);
    let model = config
        .models
        .get(model_tier)
        .ok_or_else(|| Error::Config(format!("tier {tier:?} has no model")))?;
    let settings = call_settings(config, Role::Worker, tier, Some(sub.complexity), None)?;
    let user = worker_user_message(
        &sub.path,
        sub.complexity,
        sub.error_cost,
        &sub.instruction,
        input.original,
        input.feedback,
    );
    let cache = planned
        .cache_prefix
        .get(model_tier)
        .copied()
        .unwrap_or(false);
    let mut request = worker_request(&model.model, &settings, &planned.prefix, cache, user);
    // The request is serialised (and hashed) once for the attempt's row;
    // its first call reuses that while the request is still the one written.
    let first = Encoded::new(&request)?;
    let hashed = (request.max_tokens, request.tool_choice.clone());
    let attempt = engine
        .start_hashed_attempt(
            AttemptStart {
                job: run.job_id,
                subtask: Some(sub.id),
                role: Role::Worker,
                tier,
                model: &model.model,
                effort: settings.effort.clone(),
                ordinal,
            },
            first.sha.clone(),
            Some(NewEvent {
                job_id: run.job_id,
                subtask_id: Some(sub.id),
                kind: EventKind::AttemptStarted,
                message: format!("{}: attempt {ordinal} at {tier}", sub.path),
                data: json!({"path": sub.path, "tier": tier, "attempt": ordinal}),
            }),
        )
        .await?;
    let mut first = Some(first);
    let tools = ToolWorkspace {
        root: run.root.clone(),
        files: planned.files.clone(),
    };
    let mut totals = CallCost::default();
    let max_turns = config.limits.worker_tool_turns;
    let mut change = None;
    let mut problem: Option<(FailureKind, String)> = None;
    // Only an OpenAI-compatible server may leave a worker turn unforced
    // (several tools under `named` or `auto` go out as `auto`): there a
    // reply in text is fed back once; elsewhere it is the attempt's failure.
    let mut text_fed_back = !config
        .providers
        .get(&model.provider)
        .is_some_and(|p| p.kind == ProviderKind::Openai);
    let mut turn = 0u32;
    let min_output = min_output_tokens(
        Role::Worker,
        1,
        estimate_tokens(input.original),
        request.max_tokens,
    );
    loop {
        let last = turn >= max_turns;
        if last {
            // A worker that must finish gets the change tool forced by name:
            // the one forced choice every server accepts.
            force_change_tool(&mut request);
        }
        // Each turn's request is serialised once: its key, its estimates
        // and the body sent all come from that.
        let mut encoded = match first.take() {
            Some(e) if (request.max_tokens, &request.tool_choice) == (hashed.0, &hashed.1) => e,
            _ => Encoded::new(&request)?,
        };
        let asked = request.max_tokens;
        if let Err(message) = fit_request(
            run,
            model_tier,
            &mut request,
            model.context_window,
            min_output,
            encoded.window_tokens(),
        )
        .await
        {
            problem = Some((FailureKind::ProviderError, format!("{tier}: {message}")));
            break;
        }
        if request.max_tokens != asked {
            encoded = Encoded::new(&request)?;
        }
        let call = ModelCall {
            attempt,
            turn,
            role: Role::Worker,
            tier: model_tier,
            request: &request,
            // Only a request that marks the prefix for the cache has a cache
            // to warm: without a breakpoint the other calls gain nothing by
            // waiting for this one.
            warm: turn == 0 && cache,
            min_output_tokens: min_output.min(request.max_tokens),
        };
        let done = match call.send_encoded(run, &encoded).await {
            Ok(done) => done,
            Err(CallFailure::Stopped) => {
                let end = AttemptEnd::failed(
                    FailureKind::ProviderError,
                    "run stopped".to_owned(),
                    totals,
                );
                engine
                    .finish_attempt(attempt, AttemptOutcome::Interrupted, end)
                    .await?;
                return Ok(AttemptRun::Stopped);
            }
            Err(CallFailure::Store(e)) => {
                // The store failed, not the model: nothing is counted against
                // the subtask; the run stops and the attempt is interrupted.
                let end =
                    AttemptEnd::failed(FailureKind::ProviderError, format!("store: {e}"), totals);
                if let Err(also) = engine
                    .finish_attempt(attempt, AttemptOutcome::Interrupted, end)
                    .await
                {
                    tracing::warn!(error = %also, "the interrupted attempt was not recorded");
                }
                return Err(Error::Store(e));
            }
            Err(CallFailure::Budget(message)) => {
                engine
                    .emit(
                        run.job_id,
                        Some(sub.id),
                        EventKind::BudgetExhausted,
                        format!("{}: {message}", sub.path),
                        json!({"path": sub.path}),
                    )
                    .await?;
                let end = AttemptEnd::failed(FailureKind::ProviderError, message.clone(), totals);
                engine
                    .finish_attempt(attempt, AttemptOutcome::Interrupted, end)
                    .await?;
                return Ok(AttemptRun::OverBudget(message));
            }
            Err(CallFailure::Provider(message)) => {
                problem = Some((FailureKind::ProviderError, message));
                break;
            }
        };
        totals.add(&done.cost);
        match parse_worker_turn(&done.response) {
            Ok(WorkerTurn::Change(c)) => {
                change = Some(c);
                break;
            }
            Ok(WorkerTurn::Look(calls)) => {
                if last {
                    problem = Some((
                        FailureKind::NoUsableEdit,
                        format!("used all {max_turns} look-around turns without editing"),
                    ));
                    break;
                }
                let mut results = Vec::with_capacity(calls.len());
                for (id, name, input) in &calls {
                    results.push(tools.answer(id, name, input).await?);
                }
                request.messages.push(Message {
                    role: MessageRole::Assistant,
                    content: echo_content(&done.response.content),
                });
                request.messages.push(Message {
                    role: MessageRole::User,
                    content: results,
                });
            }
            Err(p) if !text_fed_back && answered_in_text(&done.response) => {
                // A reply in prose (or a tool call written as text that could
                // not be read unambiguously) is fed back once, and the
                // change tool is forced for the retry.
                text_fed_back = true;
                tracing::debug!(problem = %p.message, "a text reply; asking again with the tool forced");
                request.messages.push(Message {
                    role: MessageRole::Assistant,
                    content: text_echo(&done.response.content),
                });
                request.messages.push(Message {
                    role: MessageRole::User,
                    content: vec![ContentBlock::text(text_reply_feedback(
                        &done.response.content,
                    ))],
                });
                force_change_tool(&mut request);
            }
            Err(p) => {
                problem = Some((p.kind, p.message));
                break;
            }
        }
        turn += 1;
    }
    let mut stored = None;
    if let Some(change) = change {
        let checks = ValidationInput {
            path: &sub.path,
            original: input.original,
            history: input.history,
            file_check: run.options.file_check.as_deref(),
            workspace: &run.root,
            check_timeout: std::time::Duration::from_secs(config.limits.check_timeout_secs),
        };
        match validate(&checks, change).await? {
            Ok(candidate) => stored = Some(candidate.stored),
            Err(failure) => {
                problem = Some((failure.kind, failure.message));
                stored = Some(failure.stored);
            }
        }
    }
    let outcome = if problem.is_none() {
        AttemptOutcome::Passed
    } else {
        AttemptOutcome::Failed
    };
    let message = match &problem {
        None => format!("{}: attempt {ordinal} at {tier} passed", sub.path),
        Some((kind, m)) => format!(
            "{}: attempt {ordinal} at {tier} failed ({kind}): {}",
            sub.path,
            m.chars().take(200).collect::<String>()
        ),
    };
    tracing::debug!(outcome = %outcome, "attempt finished");
    let finished = NewEvent {
        job_id: run.job_id,
        subtask_id: Some(sub.id),
        kind: EventKind::AttemptFinished,
        message,
        data: json!({"path": sub.path, "tier": tier, "attempt": ordinal, "outcome": outcome.as_str(),
                     "failure": problem.as_ref().map(|p| p.0.as_str()), "cost_usd": totals.cost_usd}),
    };
    // Not written here: the caller writes the end with what follows it.
    let end = finish_write(
        attempt,
        outcome,
        AttemptEnd {
            problem: problem.clone(),
            change: stored.as_ref(),
            cost: totals,
        },
    )?;
    Ok(AttemptRun::Done(
        AttemptSummary {
            tier: tier.to_owned(),
            outcome,
            failure: problem.as_ref().map(|p| p.0),
            error: problem.map(|p| p.1),
            fingerprint: stored.as_ref().map(|s| s.fingerprint.clone()),
            change: stored.map(|s| s.change),
        },
        vec![end, AttemptWrite::Event(finished)],
    ))
}

/// The change tool a worker is forced to call when it must finish.
const FORCED_CHANGE_TOOL: &str = "edit_file";

/// Forces [`FORCED_CHANGE_TOOL`] by name; not with extended thinking, which
/// refuses a forced tool.
fn force_change_tool(request: &mut MessageRequest) {
    if request.thinking.is_none() {
        request.tool_choice = Some(ToolChoice::Tool {
            name: FORCED_CHANGE_TOOL.to_owned(),
        });
    }
}

/// The model answered with text and no tool call (and was not cut short).
fn answered_in_text(response: &MessageResponse) -> bool {
    response.stop_reason != Some(StopReason::MaxTokens)
        && !response
            .content
            .iter()
            .any(|b| matches!(b, ContentBlock::ToolUse { .. }))
}

/// The text reply echoed as the assistant's turn (never empty: an empty
/// assistant turn is refused by some servers).
fn text_echo(content: &[ContentBlock]) -> Vec<ContentBlock> {
    let text = reply_text(content);
    vec![ContentBlock::text(if text.trim().is_empty() {
        "(no answer)".to_owned()
    } else {
        text
    })]
}

fn reply_text(content: &[ContentBlock]) -> String {
    content
        .iter()
        .filter_map(|b| match b {
            ContentBlock::Text { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// What a worker that answered in text is told before the forced retry.
fn text_reply_feedback(content: &[ContentBlock]) -> String {
    let text = reply_text(content);
    let quoted: String = text.trim().chars().take(600).collect();
    let said = if quoted.is_empty() {
        "Your reply was empty and called no tool.".to_owned()
    } else {
        format!(
            "Your reply called no tool (a tool call written as text is not read): \"{quoted}\"."
        )
    };
    format!(
        "{said} Answer only by calling {FORCED_CHANGE_TOOL} with `edits`: each `old` copied \
         exactly from the file (enough lines to match once), each `new` its replacement."
    )
}
