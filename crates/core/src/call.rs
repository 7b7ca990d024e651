//! One model call, the only way the pipeline talks to a model: ledger
//! lookup (a finished call is replayed, never sent again), budget
//! reservation of the worst case, a fair-share slot, the tier's limit (and,
//! with a shared store, the cluster-wide slots), the cache warm gate, the
//! 429/529 pause (shared by every daemon of a shared store), the send, and
//! the record in the ledger before anything acts on the answer.

use std::time::{Duration, Instant};

use cadre_llm::EncodedRequest;
use cadre_llm::types::{MessageRequest, MessageResponse, Usage};
use cadre_store::NewCall;
use cadre_types::{AttemptId, EventKind, Role};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;
use tracing::Instrument;

use crate::batcher::BatchItem;
use crate::pricing::{price_usage, tokens_for_chars, worst_case_usd};
use crate::run::JobRun;
use crate::slots::WarmGuard;
use crate::staging::hex;
#[cfg(test)]
use crate::staging::sha256_hex;
use crate::{Error, Result};

/// Why a model call produced no answer.
#[derive(Debug)]
pub(crate) enum CallFailure {
    /// The budget cannot cover the call's worst case; nothing was sent.
    Budget(String),
    /// The provider failed after its retries (or the tier has no model).
    Provider(String),
    /// The store failed: the ledger could not be read or the answer could
    /// not be recorded. Not the model's fault: the caller stops the run.
    Store(cadre_store::Error),
    /// The run is stopping; nothing more was sent.
    Stopped,
}

/// What calls cost: tokens, dollars and time. Zero for a call replayed
/// from the ledger (it was paid for before).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CallCost {
    pub usage: Usage,
    pub cost_usd: f64,
    pub latency_ms: u64,
}

impl CallCost {
    /// Adds another call's cost (an attempt's turns are summed).
    pub fn add(&mut self, other: &CallCost) {
        self.usage.input_tokens += other.usage.input_tokens;
        self.usage.output_tokens += other.usage.output_tokens;
        self.usage.cache_read_input_tokens += other.usage.cache_read_input_tokens;
        self.usage.cache_creation_input_tokens += other.usage.cache_creation_input_tokens;
        self.cost_usd += other.cost_usd;
        self.latency_ms += other.latency_ms;
    }
}

/// One finished (or replayed) model call.
#[derive(Debug)]
pub(crate) struct CallDone {
    pub response: MessageResponse,
    pub cost: CallCost,
}

/// The ledger key of a request: SHA-256 of its JSON body (hashed as it is
/// serialised, never held).
pub(crate) fn request_sha(request: &MessageRequest) -> Result<String> {
    let mut hasher = HashWriter(Sha256::new());
    serde_json::to_writer(&mut hasher, request)
        .map_err(|e| Error::InvalidInput(format!("a model request cannot be serialised: {e}")))?;
    Ok(hex(&hasher.0.finalize()))
}

/// A request serialised once: its JSON (sent as the body), its ledger key
/// (the SHA-256 of that JSON, as [`request_sha`]) and its prompt estimates
/// (from the characters of its parts), where each used to serialise it again.
#[derive(Debug)]
pub(crate) struct Encoded {
    pub body: EncodedRequest,
    pub sha: String,
}

impl Encoded {
    pub fn new(request: &MessageRequest) -> Result<Self> {
        let body = EncodedRequest::new(request).map_err(|e| {
            Error::InvalidInput(format!("a model request cannot be serialised: {e}"))
        })?;
        let sha = hex(&Sha256::digest(body.json()));
        Ok(Self { body, sha })
    }

    /// The call's prompt estimate: [`prompt_tokens`] of the request.
    pub fn prompt_tokens(&self) -> u64 {
        tokens_for_chars(self.body.system_chars())
            + tokens_for_chars(self.body.tools_chars())
            + tokens_for_chars(self.body.messages_chars())
    }

    /// The context-window estimate: [`crate::prompts::prompt_tokens`] of
    /// the request (its three parts as one JSON array: brackets and commas).
    pub fn window_tokens(&self) -> u64 {
        crate::prompts::prompt_tokens_for_chars(
            self.body.tools_chars() + self.body.system_chars() + self.body.messages_chars() + 4,
        )
    }
}

/// Feeds what is written to a SHA-256.
struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Counts the characters of UTF-8 text written to it.
#[derive(Default)]
pub(crate) struct CharCounter(pub u64);

impl std::io::Write for CharCounter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        // Every byte but a UTF-8 continuation byte starts a character.
        self.0 += bytes.iter().filter(|b| (**b & 0xC0) != 0x80).count() as u64;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The `max_tokens` a call is sent with, and whether its thinking budget
/// was dropped to afford it.
#[derive(Debug, Clone, Copy)]
struct Fit {
    max_tokens: u32,
    drop_thinking: bool,
}

/// How many times a busy store is asked again to record a paid answer.
const RECORD_TRIES: u32 = 6;

/// A model call about to be made for `attempt` (turn `turn` of its conversation).
#[derive(Debug)]
pub(crate) struct ModelCall<'a> {
    pub attempt: AttemptId,
    pub turn: u32,
    pub role: Role,
    pub tier: &'a str,
    pub request: &'a MessageRequest,
    /// Whether the call may warm the tier's cache (the first worker call per
    /// tier goes alone): a worker's first turn whose request marks the
    /// shared prefix for the cache.
    pub warm: bool,
    /// The smallest `max_tokens` that still makes the answer useful: when
    /// the budget cannot cover the request's worst case, the call is sent
    /// with `max_tokens` lowered to what the budget affords, down to this.
    pub min_output_tokens: u32,
}

impl ModelCall<'_> {
    /// Sends the call, unless the job's ledger already holds a finished call
    /// with the same request, which is then replayed instead.
    pub async fn send(self, run: &JobRun) -> Result<CallDone, CallFailure> {
        let encoded =
            Encoded::new(self.request).map_err(|e| CallFailure::Provider(e.to_string()))?;
        self.send_encoded(run, &encoded).await
    }

    /// [`ModelCall::send`] of a request the caller has already serialised
    /// (`encoded` is [`Encoded::new`] of this call's request).
    pub async fn send_encoded(
        self,
        run: &JobRun,
        encoded: &Encoded,
    ) -> Result<CallDone, CallFailure> {
        let span = tracing::debug_span!(
            "model_call",
            job = %run.job_id,
            attempt = %self.attempt,
            role = %self.role,
            tier = self.tier,
            turn = self.turn,
        );
        self.send_inner(run, encoded).instrument(span).await
    }

    async fn send_inner(self, run: &JobRun, encoded: &Encoded) -> Result<CallDone, CallFailure> {
        let sha = encoded.sha.clone();
        let store = run.store();
        if run.ledger.may_hold(&sha)
            && let Some(previous) = store
                .find_call(run.job_id, &sha)
                .await
                .map_err(CallFailure::Store)?
            && let Ok(response) =
                serde_json::from_value::<MessageResponse>(previous.response.unwrap_or_default())
        {
            tracing::debug!("replayed from the ledger");
            return Ok(CallDone {
                response,
                cost: CallCost::default(),
            });
        }
        if run.halt.is_cancelled() {
            return Err(CallFailure::Stopped);
        }
        let config = run.config();
        let model = config
            .models
            .get(self.tier)
            .ok_or_else(|| CallFailure::Provider(format!("no model for tier {}", self.tier)))?;
        let provider = run
            .engine
            .providers()
            .for_tier(self.tier)
            .map_err(|e| CallFailure::Provider(e.to_string()))?;
        let batcher = match &run.batcher {
            Some(b) if self.role == Role::Worker && provider.supports_batches() => Some(b),
            _ => None,
        };
        let prompt = encoded.prompt_tokens();
        let batch = batcher.is_some();
        let fit = self.reserve(run, model, prompt, batch).await?;
        let max_tokens = fit.max_tokens;
        let worst = worst_case_usd(model, prompt, u64::from(max_tokens), batch);
        // The ledger key stays the request as asked (`sha`), so a resumed
        // job finds the answer whatever the budget let this call send.
        let lowered;
        let (request, body) = if max_tokens < self.request.max_tokens || fit.drop_thinking {
            tracing::info!(
                asked = self.request.max_tokens,
                sent = max_tokens,
                "max_tokens lowered to what the budget affords"
            );
            let mut smaller = self.request.clone();
            smaller.max_tokens = max_tokens;
            if fit.drop_thinking {
                smaller.thinking = None;
            }
            lowered = smaller;
            // What is sent is not what was serialised: the client writes it.
            (&lowered, None)
        } else {
            (self.request, Some(&encoded.body))
        };
        // From here the reservation is returned on every path that sends nothing.
        let unsent = |failure: CallFailure| {
            run.budget.settle(worst, 0.0);
            Err(failure)
        };
        let started = Instant::now();
        if let Some(batcher) = batcher {
            let (reply, answer) = oneshot::channel();
            let item = BatchItem {
                attempt: self.attempt,
                provider: provider.clone(),
                provider_name: model.provider.clone(),
                request: request.clone(),
                reply,
            };
            if let Err(message) = batcher.submit(item).await {
                return unsent(CallFailure::Provider(message));
            }
            let answer = tokio::select! {
                a = answer => a.unwrap_or_else(|_| Err("the batching task stopped".to_owned())),
                _ = run.halt.cancelled() => return unsent(CallFailure::Stopped),
            };
            return match answer {
                Ok(message) => {
                    let latency_ms = started.elapsed().as_millis() as u64;
                    self.record(run, sha, message, latency_ms, true, worst)
                        .await
                }
                // The batching task shares the stop token: an answer lost because
                // the run is stopping is an interruption, not a provider failure.
                Err(_) if run.halt.is_cancelled() => unsent(CallFailure::Stopped),
                Err(message) => unsent(CallFailure::Provider(message)),
            };
        }
        let Some(slot) = run
            .engine
            .slots()
            .acquire(&run.gates.in_flight, &run.halt)
            .await
        else {
            return unsent(CallFailure::Stopped);
        };
        let tier_permit = run.gates.tier_permit(self.tier).await;
        // With a shared store, the cluster-wide slots too.
        let Some(shared_slots) = run
            .engine
            .slots()
            .acquire_shared(self.tier, &run.halt)
            .await
        else {
            return unsent(CallFailure::Stopped);
        };
        // The warming call opens its tier's gate at its first streamed
        // event (the provider's cache holds the prefix from then on), or
        // when it ends, whichever comes first.
        let warming = match run.gates.warm_gate(self.tier) {
            Some(gate) if self.warm => gate.enter().await,
            _ => WarmGuard::default(),
        };
        let pauses = run.engine.slots().pauses();
        if let Some(until) = pauses.until(self.tier).await {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => {}
                _ = run.halt.cancelled() => return unsent(CallFailure::Stopped),
            }
        }
        let started = Instant::now();
        let result = tokio::select! {
            r = pauses.sharing(self.tier, warming.send(provider.as_ref(), request, body)) => r,
            _ = run.halt.cancelled() => return unsent(CallFailure::Stopped),
        };
        drop(warming);
        // The call is over: its slots go to the next call now, not after
        // the answer is committed to the ledger (a group commit that can
        // take a while when many calls end together).
        drop((shared_slots, tier_permit, slot));
        let latency_ms = started.elapsed().as_millis() as u64;
        match result {
            Ok(reply) => {
                if reply.overload_retries > 0 {
                    run.engine
                        .note(
                            run.job_id,
                            EventKind::Backoff,
                            format!(
                                "{}: provider pushed back {} time(s) before answering",
                                self.tier, reply.overload_retries
                            ),
                            json!({"tier": self.tier, "overload_retries": reply.overload_retries}),
                        )
                        .await;
                }
                self.record(run, sha, reply.message, latency_ms, false, worst)
                    .await
            }
            Err(e) => {
                if e.is_overload() {
                    let wait = e.retry_after().unwrap_or(Duration::from_secs(2));
                    pauses.pause(self.tier, wait, &e.to_string()).await;
                    run.engine
                        .note(
                            run.job_id,
                            EventKind::Backoff,
                            format!(
                                "{}: provider overloaded; pausing dispatch {}ms",
                                self.tier,
                                wait.as_millis()
                            ),
                            json!({"tier": self.tier, "pause_ms": wait.as_millis() as u64}),
                        )
                        .await;
                }
                tracing::debug!(error = %e, "the provider failed");
                unsent(CallFailure::Provider(e.to_string()))
            }
        }
    }

    /// Reserves the worst case and returns the `max_tokens` to send: the
    /// request's own, or (when nothing else is in flight that could settle
    /// lower) the most the remaining budget affords, if that reaches
    /// `min_output_tokens`. Waits while other calls hold reservations.
    async fn reserve(
        &self,
        run: &JobRun,
        model: &cadre_config::ModelConfig,
        prompt: u64,
        batch: bool,
    ) -> Result<Fit, CallFailure> {
        let asked = self.request.max_tokens;
        loop {
            let worst = worst_case_usd(model, prompt, u64::from(asked), batch);
            match run.budget.reserve(worst) {
                Ok(()) => {
                    return Ok(Fit {
                        max_tokens: asked,
                        drop_thinking: false,
                    });
                }
                Err(refusal) if !refusal.others_in_flight => {
                    if let Some(fit) = self.affordable_max_tokens(run, model, prompt, batch)
                        && run
                            .budget
                            .reserve(worst_case_usd(
                                model,
                                prompt,
                                u64::from(fit.max_tokens),
                                batch,
                            ))
                            .is_ok()
                    {
                        return Ok(fit);
                    }
                    run.budget.mark_exhausted();
                    let floor =
                        worst_case_usd(model, prompt, u64::from(self.min_output_tokens), batch);
                    return Err(CallFailure::Budget(format!(
                        "{}; its smallest useful answer ({} output tokens) could cost ${floor:.4}",
                        refusal.message, self.min_output_tokens
                    )));
                }
                Err(_) => {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                        _ = run.halt.cancelled() => return Err(CallFailure::Stopped),
                    }
                }
            }
        }
    }

    /// The largest `max_tokens` the budget affords for this prompt, when it
    /// is at least the call's useful minimum, and whether the request's
    /// thinking budget must go to make room for it (thinking tokens count
    /// against `max_tokens`).
    fn affordable_max_tokens(
        &self,
        run: &JobRun,
        model: &cadre_config::ModelConfig,
        prompt: u64,
        batch: bool,
    ) -> Option<Fit> {
        let available = run.budget.available()?;
        let prompt_cost = worst_case_usd(model, prompt, 0, batch);
        let per_output_token = worst_case_usd(model, prompt, 1, batch) - prompt_cost;
        if per_output_token <= 0.0 || available <= prompt_cost {
            return None;
        }
        let affordable = ((available - prompt_cost) / per_output_token).floor();
        let max_tokens = affordable.min(f64::from(self.request.max_tokens)) as u32;
        if max_tokens < self.min_output_tokens.max(1) {
            return None;
        }
        let thinking = match self.request.thinking {
            Some(cadre_llm::types::ThinkingConfig::Enabled { budget_tokens }) => budget_tokens,
            _ => 0,
        };
        let keeps_thinking = max_tokens >= self.min_output_tokens.saturating_add(thinking);
        Some(Fit {
            max_tokens,
            drop_thinking: !keeps_thinking,
        })
    }

    /// Prices a finished call, settles its reservation and commits it to the
    /// ledger before anything acts on it. A busy store is asked again (the
    /// answer is paid for); a store that still fails stops the run.
    async fn record(
        &self,
        run: &JobRun,
        sha: String,
        message: MessageResponse,
        latency_ms: u64,
        batch: bool,
        reserved: f64,
    ) -> Result<CallDone, CallFailure> {
        let Some(model) = run.config().models.get(self.tier) else {
            run.budget.settle(reserved, 0.0);
            return Err(CallFailure::Provider(format!(
                "no model for tier {}",
                self.tier
            )));
        };
        let usage = message.usage;
        let cost = price_usage(model, &usage, batch);
        run.budget.settle(reserved, cost);
        let response_json = serde_json::to_string(&message)
            .map_err(|e| CallFailure::Store(cadre_store::Error::Json(e)))?;
        let record = NewCall {
            job_id: run.job_id,
            attempt_id: self.attempt,
            turn: self.turn,
            request_sha256: sha,
            role: self.role,
            tier: self.tier.to_owned(),
            model: model.model.clone(),
            response_json,
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cache_read_tokens: usage.cache_read_input_tokens,
            cache_write_tokens: usage.cache_creation_input_tokens,
            cost_usd: cost,
            latency_ms,
            batch,
        };
        let mut tries = 0;
        loop {
            tries += 1;
            match run.engine.writer().record_call(record.clone()).await {
                Ok(_) => {
                    run.ledger.insert(&record.request_sha256);
                    break;
                }
                Err(Error::Store(e)) if e.is_busy() && tries < RECORD_TRIES => {
                    tracing::warn!(error = %e, tries, "the store is busy; recording the answer again");
                    tokio::time::sleep(Duration::from_millis(50 << tries)).await;
                }
                Err(Error::Store(e)) => return Err(CallFailure::Store(e)),
                Err(Error::Stopped) => return Err(CallFailure::Stopped),
                Err(e) => return Err(CallFailure::Provider(e.to_string())),
            }
        }
        Ok(CallDone {
            response: message,
            cost: CallCost {
                usage,
                cost_usd: cost,
                latency_ms,
            },
        })
    }
}

/// The prompt's size in tokens, estimated from its JSON (each part's
/// characters counted as it is serialised, never held); a call takes it
/// from its [`Encoded`] request instead of serialising it again.
#[cfg(test)]
fn prompt_tokens(request: &MessageRequest) -> u64 {
    fn json_tokens<T: serde::Serialize>(part: &T) -> u64 {
        let mut chars = CharCounter::default();
        match serde_json::to_writer(&mut chars, part) {
            Ok(()) => tokens_for_chars(chars.0),
            Err(_) => 0,
        }
    }
    json_tokens(&request.system) + json_tokens(&request.tools) + json_tokens(&request.messages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cadre_llm::types::{ContentBlock, Message, MessageRole, SystemBlock};
    use pretty_assertions::assert_eq;

    fn request() -> MessageRequest {
        MessageRequest {
            model: "m".into(),
            max_tokens: 10,
            system: vec![SystemBlock::text("système ✓ prefix")],
            tools: Vec::new(),
            tool_choice: None,
            messages: vec![Message {
                role: MessageRole::User,
                content: vec![ContentBlock::text("naïve 🙂 text")],
            }],
            thinking: None,
            output_config: None,
            stream: None,
        }
    }

    #[test]
    fn the_ledger_key_is_the_sha256_of_the_json_body() {
        let r = request();
        assert_eq!(
            request_sha(&r).unwrap(),
            sha256_hex(&serde_json::to_vec(&r).unwrap())
        );
    }

    #[test]
    fn a_request_serialised_once_gives_the_same_key_and_estimates() {
        let mut bare = request();
        bare.system.clear();
        bare.messages.clear();
        for r in [request(), bare] {
            let e = Encoded::new(&r).unwrap();
            assert_eq!(e.sha, request_sha(&r).unwrap());
            assert_eq!(e.body.json().to_vec(), serde_json::to_vec(&r).unwrap());
            assert_eq!(e.prompt_tokens(), prompt_tokens(&r));
            assert_eq!(e.window_tokens(), crate::prompts::prompt_tokens(&r));
        }
    }

    #[test]
    fn prompt_tokens_count_characters_of_each_parts_json() {
        let r = request();
        let chars = |json: String| json.chars().count() as u64;
        let expected = tokens_for_chars(chars(serde_json::to_string(&r.system).unwrap()))
            + tokens_for_chars(chars(serde_json::to_string(&r.tools).unwrap()))
            + tokens_for_chars(chars(serde_json::to_string(&r.messages).unwrap()));
        assert_eq!(prompt_tokens(&r), expected);
    }
}
