//! Request options: `thinking`, `output_config` (effort), the sampling
//! parameters, `stop_sequences` and `metadata`, each checked against the
//! model's capabilities.

use serde_json::{Map, Value};

use super::{Purpose, ThinkingReq};
use crate::api_error::ApiError;
use crate::models::{ALL_EFFORTS, ModelSpec};

/// `thinking`, checked against the model's thinking mode and `max_tokens`.
pub(super) fn parse_thinking(
    value: Option<&Value>,
    model: &ModelSpec,
    model_id: &str,
    max_tokens: u64,
    purpose: Purpose,
) -> Result<ThinkingReq, ApiError> {
    let Some(value) = value else {
        return Ok(ThinkingReq::Off);
    };
    if value.is_null() {
        return Ok(ThinkingReq::Off);
    }
    let obj = value
        .as_object()
        .ok_or_else(|| ApiError::invalid("thinking: Input should be a valid dictionary"))?;
    let display_omitted = match obj.get("display") {
        None | Some(Value::Null) => model.default_display_omitted(),
        Some(Value::String(s)) if s == "omitted" => true,
        Some(Value::String(s)) if s == "summarized" => false,
        Some(_) => {
            return Err(ApiError::invalid(
                "thinking.display: Input should be 'summarized' or 'omitted'",
            ));
        }
    };
    match obj.get("type").and_then(Value::as_str) {
        Some("disabled") => Ok(ThinkingReq::Off),
        Some("enabled") => {
            let budget = match obj.get("budget_tokens") {
                None | Some(Value::Null) => {
                    return Err(ApiError::invalid(
                        "thinking.enabled.budget_tokens: Field required",
                    ));
                }
                Some(v) => v.as_u64().ok_or_else(|| {
                    ApiError::invalid(
                        "thinking.enabled.budget_tokens: Input should be a valid integer",
                    )
                })?,
            };
            if !model.thinking.accepts_budget() {
                return Err(if model.thinking.accepts_adaptive() {
                    ApiError::invalid(format!(
                        "thinking.type.enabled is not supported for {model_id}. Use \
                         thinking.type.adaptive and output_config.effort to control thinking \
                         behavior."
                    ))
                } else {
                    ApiError::invalid(format!(
                        "thinking: {model_id} does not support extended thinking"
                    ))
                });
            }
            if budget < 1024 {
                return Err(ApiError::invalid(
                    "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024",
                ));
            }
            if purpose != Purpose::CountTokens && budget >= max_tokens {
                return Err(ApiError::invalid(format!(
                    "`max_tokens` must be greater than `thinking.budget_tokens` (got max_tokens \
                     {max_tokens}, budget_tokens {budget}). Please consult our documentation at \
                     https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size"
                )));
            }
            Ok(ThinkingReq::Enabled { display_omitted })
        }
        Some("adaptive") => {
            if !model.thinking.accepts_adaptive() {
                return Err(ApiError::invalid(format!(
                    "thinking.type.adaptive is not supported for {model_id}; use \
                     thinking.type.enabled with budget_tokens"
                )));
            }
            Ok(ThinkingReq::Adaptive { display_omitted })
        }
        _ => Err(ApiError::invalid(
            "thinking.type: Input tag found using 'type' does not match any of the expected tags: \
             'enabled', 'adaptive', 'disabled'",
        )),
    }
}

/// `output_config`, when given.
pub(super) fn check_output_config(
    value: Option<&Value>,
    model: &ModelSpec,
    model_id: &str,
) -> Result<(), ApiError> {
    match value {
        None | Some(Value::Null) => {}
        Some(Value::Object(oc)) => validate_output_config(oc, model, model_id)?,
        Some(_) => {
            return Err(ApiError::invalid(
                "output_config: Input should be a valid dictionary",
            ));
        }
    }
    Ok(())
}

fn validate_output_config(
    oc: &Map<String, Value>,
    model: &ModelSpec,
    model_id: &str,
) -> Result<(), ApiError> {
    for key in oc.keys() {
        if !matches!(key.as_str(), "effort" | "format" | "task_budget") {
            return Err(ApiError::invalid(format!(
                "output_config.{key}: Extra inputs are not permitted"
            )));
        }
    }
    match oc.get("effort") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(e)) => {
            if !ALL_EFFORTS.contains(&e.as_str()) {
                return Err(ApiError::invalid(
                    "output_config.effort: Input should be 'low', 'medium', 'high', 'xhigh' or 'max'",
                ));
            }
            if !model.supports_effort() {
                return Err(ApiError::invalid(format!(
                    "output_config.effort: This model ({model_id}) does not support the effort \
                     parameter."
                )));
            }
            if !model.effort_levels.iter().any(|l| l == e) {
                return Err(ApiError::invalid(format!(
                    "output_config.effort: '{e}' is not supported by {model_id} (supported: {})",
                    model.effort_levels.join(", ")
                )));
            }
            Ok(())
        }
        Some(_) => Err(ApiError::invalid(
            "output_config.effort: Input should be a valid string",
        )),
    }
}

/// `temperature`, `top_p` and `top_k`: accepted by the model, in range, and
/// compatible with thinking.
pub(super) fn check_sampling(
    obj: &Map<String, Value>,
    model: &ModelSpec,
    model_id: &str,
    thinking: ThinkingReq,
) -> Result<(), ApiError> {
    for key in ["temperature", "top_p", "top_k"] {
        let Some(v) = obj.get(key) else { continue };
        if v.is_null() {
            continue;
        }
        if !model.sampling_params {
            return Err(ApiError::invalid(format!(
                "{key}: `{key}` is not supported on {model_id}; remove temperature, top_p and top_k"
            )));
        }
        let n = v
            .as_f64()
            .ok_or_else(|| ApiError::invalid(format!("{key}: Input should be a valid number")))?;
        match key {
            "top_k" => {
                if v.as_u64().is_none() {
                    return Err(ApiError::invalid(
                        "top_k: Input should be a valid non-negative integer",
                    ));
                }
                if thinking.is_on() {
                    return Err(ApiError::invalid(
                        "top_k: cannot be set when thinking is enabled",
                    ));
                }
            }
            _ => {
                if !(0.0..=1.0).contains(&n) {
                    return Err(ApiError::invalid(format!(
                        "{key}: Input should be between 0 and 1"
                    )));
                }
                if key == "temperature" && thinking.is_on() && (n - 1.0).abs() > f64::EPSILON {
                    return Err(ApiError::invalid(
                        "temperature may only be set to 1 when thinking is enabled.",
                    ));
                }
                if key == "top_p" && thinking.is_on() && n < 0.95 {
                    return Err(ApiError::invalid(
                        "top_p must be between 0.95 and 1 when thinking is enabled.",
                    ));
                }
            }
        }
    }
    Ok(())
}

/// `stop_sequences`: strings with some non-whitespace.
pub(super) fn parse_stop_sequences(value: Option<&Value>) -> Result<Vec<String>, ApiError> {
    let stop_sequences = match value {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            let mut out = Vec::new();
            for (i, s) in items.iter().enumerate() {
                let s = s.as_str().ok_or_else(|| {
                    ApiError::invalid(format!(
                        "stop_sequences.{i}: Input should be a valid string"
                    ))
                })?;
                if s.trim().is_empty() {
                    return Err(ApiError::invalid(
                        "stop_sequences: each stop sequence must contain non-whitespace",
                    ));
                }
                out.push(s.to_string());
            }
            out
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "stop_sequences: Input should be a valid list",
            ));
        }
    };
    Ok(stop_sequences)
}

/// `metadata`: only `user_id`, a string.
pub(super) fn check_metadata(value: Option<&Value>) -> Result<(), ApiError> {
    match value {
        None | Some(Value::Null) => {}
        Some(Value::Object(md)) => {
            for (k, v) in md {
                if k != "user_id" {
                    return Err(ApiError::invalid(format!(
                        "metadata.{k}: Extra inputs are not permitted"
                    )));
                }
                if !(v.is_string() || v.is_null()) {
                    return Err(ApiError::invalid(
                        "metadata.user_id: Input should be a valid string",
                    ));
                }
            }
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "metadata: Input should be a valid dictionary",
            ));
        }
    }
    Ok(())
}
