//! Fitting a worker request into its tier's context window.
//!
//! The prompt is estimated from its characters ([`prompt_tokens`]); when
//! that estimate says the window is tight (prompt plus the requested output
//! do not fit), the tier's server is asked for its own count, where it has a
//! tokenizer (llama.cpp and llama-cpp-python do), and `max_tokens` is fitted
//! to that. A window that leaves less than the minimum output is the
//! subtask's failure: "prompt N + output M > window W".

use cadre_llm::types::MessageRequest;

use crate::prompts::fit_prompt;
#[cfg(doc)]
use crate::prompts::prompt_tokens;
use crate::run::JobRun;

/// Lowers `request.max_tokens` to what tier `tier`'s `window` leaves;
/// `estimate` is the request's [`prompt_tokens`] (from its JSON, already
/// written: [`crate::call::Encoded::window_tokens`]).
pub(crate) async fn fit_request(
    run: &JobRun,
    tier: &str,
    request: &mut MessageRequest,
    window: u64,
    min_output: u32,
    estimate: u64,
) -> Result<(), String> {
    let tight = estimate + u64::from(request.max_tokens) > window;
    let counted = match run.engine.providers().for_tier(tier) {
        Ok(provider) if tight => provider.count_prompt_tokens(request).await,
        _ => None,
    };
    if let Some(counted) = counted {
        tracing::debug!(estimate, counted, window, "the server counted the prompt");
    }
    fit_prompt(request, window, min_output, counted.unwrap_or(estimate))
}
