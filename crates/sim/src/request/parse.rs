//! The top-level walk over a Messages body: which fields are allowed, then
//! each field in the order the API checks them, handing each part to its
//! rules ([`super::tools`], [`super::content`], [`super::options`],
//! [`super::cache_control`]), and finally the context-window check.

use std::collections::HashSet;

use serde_json::{Map, Value, json};

use super::cache_control::Breakpoints;
use super::content::{check_thinking_continuation, check_tool_pairing, parse_message};
use super::options::{
    check_metadata, check_output_config, check_sampling, parse_stop_sequences, parse_thinking,
};
use super::tools::{parse_tool_choice, validate_tool};
use super::{Msg, ParsedRequest, Purpose, ThinkingReq, ToolChoice};
use crate::api_error::ApiError;
use crate::models::{ModelSpec, ModelTable};

const MESSAGE_FIELDS: &[&str] = &[
    "model",
    "max_tokens",
    "messages",
    "system",
    "tools",
    "tool_choice",
    "temperature",
    "top_p",
    "top_k",
    "stop_sequences",
    "stream",
    "metadata",
    "thinking",
    "output_config",
    "cache_control",
    "service_tier",
    "inference_geo",
    "container",
    "context_management",
    "mcp_servers",
];

const COUNT_FIELDS: &[&str] = &[
    "model",
    "messages",
    "system",
    "tools",
    "tool_choice",
    "thinking",
    "output_config",
    "cache_control",
    "context_management",
    "mcp_servers",
];

/// Validates `body` for `purpose` and returns the parsed request and its
/// model. The request keeps `body`'s tools, system and messages (moved, not
/// copied).
pub(crate) fn parse_request<'m>(
    body: Value,
    models: &'m ModelTable,
    purpose: Purpose,
    secret: &str,
) -> Result<(ParsedRequest, &'m ModelSpec), ApiError> {
    let Value::Object(mut obj) = body else {
        return Err(ApiError::invalid("The request body must be a JSON object"));
    };
    let allowed = if purpose == Purpose::CountTokens {
        COUNT_FIELDS
    } else {
        MESSAGE_FIELDS
    };
    for key in obj.keys() {
        if !allowed.contains(&key.as_str()) {
            return Err(ApiError::invalid(format!(
                "{key}: Extra inputs are not permitted"
            )));
        }
    }

    let model_id = match obj.get("model") {
        None | Some(Value::Null) => return Err(ApiError::invalid("model: Field required")),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(ApiError::invalid("model: Input should be a valid string")),
    };
    let model = models
        .get(&model_id)
        .ok_or_else(|| ApiError::not_found(format!("model: {model_id}")))?;

    let max_tokens = parse_max_tokens(&obj, model, &model_id, purpose)?;
    let stream = match obj.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ApiError::invalid("stream: Input should be a valid boolean")),
    };
    if purpose == Purpose::Batch && stream {
        return Err(ApiError::invalid(
            "stream: streaming is not supported in Message Batches",
        ));
    }
    if purpose == Purpose::Batch && max_tokens == 0 {
        return Err(ApiError::invalid(
            "max_tokens: must be greater than 0 in Message Batches",
        ));
    }
    if stream && max_tokens == 0 {
        return Err(ApiError::invalid(
            "max_tokens: must be greater than 0 when `stream` is true",
        ));
    }

    // tools, system and messages, in this order for the breakpoint rules
    let mut bps = Breakpoints::default();
    let (tools, names) = parse_tools(obj.remove("tools"), &mut bps)?;
    let system = parse_system(obj.remove("system"), &mut bps)?;
    let messages = parse_messages(obj.remove("messages"), &model_id, secret, &mut bps)?;

    // top-level cache_control (automatic caching)
    let top_cache_control = bps.check("cache_control", obj.get("cache_control"))?;
    if bps.count > 4 {
        return Err(ApiError::invalid(format!(
            "A maximum of 4 blocks with cache_control may be provided. Found {}.",
            bps.count
        )));
    }

    // tool_choice
    let tool_choice = match obj.get("tool_choice") {
        None | Some(Value::Null) => None,
        Some(Value::Object(tc)) => Some(parse_tool_choice(tc, &names)?),
        Some(_) => {
            return Err(ApiError::invalid(
                "tool_choice: Input should be a valid dictionary",
            ));
        }
    };
    if tools.is_empty()
        && matches!(
            tool_choice,
            Some(ToolChoice::Any | ToolChoice::Tool(_) | ToolChoice::Auto)
        )
    {
        return Err(ApiError::invalid(
            "tool_choice may only be specified while providing tools.",
        ));
    }
    let forced = matches!(tool_choice, Some(ToolChoice::Any | ToolChoice::Tool(_)));
    if forced && max_tokens == 0 && purpose != Purpose::CountTokens {
        return Err(ApiError::invalid(
            "max_tokens: must be greater than 0 when tool_choice forces tool use",
        ));
    }

    // thinking
    let thinking = parse_thinking(obj.get("thinking"), model, &model_id, max_tokens, purpose)?;
    if thinking.is_on() && forced {
        return Err(ApiError::invalid(
            "Thinking may not be enabled when tool_choice forces tool use.",
        ));
    }
    if matches!(thinking, ThinkingReq::Enabled { .. }) {
        check_thinking_continuation(&messages)?;
    }
    check_output_config(obj.get("output_config"), model, &model_id)?;
    check_sampling(&obj, model, &model_id, thinking)?;
    let stop_sequences = parse_stop_sequences(obj.get("stop_sequences"))?;
    check_metadata(obj.get("metadata"))?;

    let input_tokens = super::count_input_tokens(&tools, &system, &messages);
    let parsed = ParsedRequest {
        model: model_id,
        max_tokens,
        stream,
        system,
        tools,
        tool_choice,
        messages,
        thinking,
        effort: obj
            .get("output_config")
            .and_then(|oc| oc.get("effort"))
            .and_then(|e| e.as_str())
            .map(str::to_owned),
        stop_sequences,
        top_cache_control,
        input_tokens,
    };
    let total = parsed.input_tokens();
    if total > model.context_window {
        return Err(ApiError::invalid(format!(
            "prompt is too long: {total} tokens > {} maximum",
            model.context_window
        )));
    }
    Ok((parsed, model))
}

/// `max_tokens` (0 for count_tokens), at most the model's output limit.
fn parse_max_tokens(
    obj: &Map<String, Value>,
    model: &ModelSpec,
    model_id: &str,
    purpose: Purpose,
) -> Result<u64, ApiError> {
    let max_tokens = if purpose == Purpose::CountTokens {
        0
    } else {
        match obj.get("max_tokens") {
            None | Some(Value::Null) => {
                return Err(ApiError::invalid("max_tokens: Field required"));
            }
            Some(v) => {
                if v.as_i64().is_some_and(|n| n < 0) {
                    return Err(ApiError::invalid(
                        "max_tokens: Input should be greater than or equal to 0",
                    ));
                }
                v.as_u64().ok_or_else(|| {
                    ApiError::invalid("max_tokens: Input should be a valid integer")
                })?
            }
        }
    };
    if max_tokens > model.max_output_tokens {
        return Err(ApiError::invalid(format!(
            "max_tokens: {max_tokens} > {}, which is the maximum allowed number of output tokens \
             for {model_id}",
            model.max_output_tokens
        )));
    }
    Ok(max_tokens)
}

/// `tools`: a list of valid definitions with unique names (returned too).
fn parse_tools(
    value: Option<Value>,
    bps: &mut Breakpoints,
) -> Result<(Vec<Value>, HashSet<String>), ApiError> {
    let tools = match value {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(ApiError::invalid("tools: Input should be a valid list")),
    };
    let mut names = HashSet::new();
    for (i, tool) in tools.iter().enumerate() {
        validate_tool(i, tool, bps)?;
        let name = tool.get("name").and_then(Value::as_str).unwrap_or_default();
        if !names.insert(name.to_string()) {
            return Err(ApiError::invalid("tools: Tool names must be unique."));
        }
    }
    Ok((tools, names))
}

/// `system`: a string or a list of non-empty text blocks, normalised to blocks.
fn parse_system(value: Option<Value>, bps: &mut Breakpoints) -> Result<Vec<Value>, ApiError> {
    let system = match value {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) if s.is_empty() => Vec::new(),
        Some(Value::String(s)) => vec![json!({"type": "text", "text": s})],
        Some(Value::Array(items)) => {
            for (i, block) in items.iter().enumerate() {
                let at = format!("system.{i}");
                let b = block.as_object().ok_or_else(|| {
                    ApiError::invalid(format!("{at}: Input should be a valid dictionary"))
                })?;
                if b.get("type").and_then(Value::as_str) != Some("text") {
                    return Err(ApiError::invalid(format!(
                        "{at}.type: Input should be 'text'"
                    )));
                }
                match b.get("text") {
                    Some(Value::String(t)) if !t.is_empty() => {}
                    Some(Value::String(_)) => {
                        return Err(ApiError::invalid(format!(
                            "{at}: text content blocks must be non-empty"
                        )));
                    }
                    _ => return Err(ApiError::invalid(format!("{at}.text: Field required"))),
                }
                bps.check(&at, b.get("cache_control"))?;
            }
            items
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "system: Input should be a valid string or list of text blocks",
            ));
        }
    };
    Ok(system)
}

/// `messages`: a non-empty list, each message valid, tool calls paired.
fn parse_messages(
    value: Option<Value>,
    model_id: &str,
    secret: &str,
    bps: &mut Breakpoints,
) -> Result<Vec<Msg>, ApiError> {
    let raw_messages = match value {
        None | Some(Value::Null) => return Err(ApiError::invalid("messages: Field required")),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(ApiError::invalid("messages: Input should be a valid list")),
    };
    if raw_messages.is_empty() {
        return Err(ApiError::invalid(
            "messages: at least one message is required",
        ));
    }
    let mut messages = Vec::with_capacity(raw_messages.len());
    let last = raw_messages.len() - 1;
    for (i, m) in raw_messages.into_iter().enumerate() {
        messages.push(parse_message(i, i == last, m, model_id, secret, bps)?);
    }
    check_tool_pairing(&messages)?;
    Ok(messages)
}
