//! Message content: roles, content blocks and their per-type fields, the
//! pairing of `tool_use` and `tool_result` blocks across turns, and the
//! thinking block a tool-use continuation must carry back.

use serde_json::{Value, json};

use super::cache_control::Breakpoints;
use super::{Msg, MsgRole, thinking_signature};
use crate::api_error::ApiError;

const BLOCK_TYPES: &[&str] = &[
    "text",
    "image",
    "document",
    "search_result",
    "tool_result",
    "tool_use",
    "thinking",
    "redacted_thinking",
    "server_tool_use",
    "web_search_tool_result",
    "web_fetch_tool_result",
    "code_execution_tool_result",
    "container_upload",
];

/// Message `i` of `messages` (`is_last`: a final assistant prefill may be empty).
pub(super) fn parse_message(
    i: usize,
    is_last: bool,
    m: Value,
    model_id: &str,
    secret: &str,
    bps: &mut Breakpoints,
) -> Result<Msg, ApiError> {
    let at = format!("messages.{i}");
    let Value::Object(mut obj) = m else {
        return Err(ApiError::invalid(format!(
            "{at}: Input should be a valid dictionary"
        )));
    };
    for key in obj.keys() {
        if key != "role" && key != "content" {
            return Err(ApiError::invalid(format!(
                "{at}.{key}: Extra inputs are not permitted"
            )));
        }
    }
    let role = match obj.get("role").and_then(Value::as_str) {
        Some("user") => MsgRole::User,
        Some("assistant") => MsgRole::Assistant,
        Some("system") => {
            return Err(ApiError::invalid(format!(
                "{at}.role: the `system` role is not supported by {model_id}; use the top-level \
                 `system` parameter"
            )));
        }
        _ => {
            return Err(ApiError::invalid(format!(
                "{at}.role: Input should be 'user' or 'assistant'"
            )));
        }
    };
    let empty_err = || {
        ApiError::invalid(format!(
            "{at}: all messages must have non-empty content except for the optional final \
             assistant message"
        ))
    };
    let blocks = match obj.remove("content") {
        None => return Err(ApiError::invalid(format!("{at}.content: Field required"))),
        Some(Value::String(s)) => {
            if s.is_empty() {
                if !(is_last && role == MsgRole::Assistant) {
                    return Err(empty_err());
                }
                Vec::new()
            } else {
                vec![json!({"type": "text", "text": s})]
            }
        }
        Some(Value::Array(items)) => {
            if items.is_empty() && !(is_last && role == MsgRole::Assistant) {
                return Err(empty_err());
            }
            for (j, block) in items.iter().enumerate() {
                validate_block(&format!("{at}.content.{j}"), role, block, secret, bps)?;
            }
            items
        }
        Some(_) => {
            return Err(ApiError::invalid(format!(
                "{at}.content: Input should be a valid string or list"
            )));
        }
    };
    Ok(Msg { role, blocks })
}

fn validate_block(
    at: &str,
    role: MsgRole,
    block: &Value,
    secret: &str,
    bps: &mut Breakpoints,
) -> Result<(), ApiError> {
    let obj = block
        .as_object()
        .ok_or_else(|| ApiError::invalid(format!("{at}: Input should be a valid dictionary")))?;
    let kind = obj
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::invalid(format!("{at}.type: Field required")))?;
    if !BLOCK_TYPES.contains(&kind) {
        return Err(ApiError::invalid(format!(
            "{at}.type: Input tag '{kind}' found using 'type' does not match any of the expected tags"
        )));
    }
    let needs_assistant = matches!(
        kind,
        "tool_use" | "thinking" | "redacted_thinking" | "server_tool_use"
    );
    if needs_assistant && role != MsgRole::Assistant {
        return Err(ApiError::invalid(format!(
            "{at}: `{kind}` blocks can only be in `assistant` messages"
        )));
    }
    if kind == "tool_result" && role != MsgRole::User {
        return Err(ApiError::invalid(format!(
            "{at}: `tool_result` blocks can only be in `user` messages"
        )));
    }
    let str_field = |key: &str| -> Result<&str, ApiError> {
        obj.get(key)
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::invalid(format!("{at}.{key}: Field required")))
    };
    match kind {
        "text" if str_field("text")?.is_empty() => {
            return Err(ApiError::invalid(format!(
                "{at}: text content blocks must be non-empty"
            )));
        }
        "tool_use" => {
            str_field("id")?;
            str_field("name")?;
            if !obj.get("input").is_some_and(Value::is_object) {
                return Err(ApiError::invalid(format!(
                    "{at}.input: Input should be a valid dictionary"
                )));
            }
        }
        "tool_result" => {
            str_field("tool_use_id")?;
            match obj.get("content") {
                None | Some(Value::Null) | Some(Value::String(_)) => {}
                Some(Value::Array(items)) => {
                    for (k, item) in items.iter().enumerate() {
                        let t = item.get("type").and_then(Value::as_str).unwrap_or("");
                        if !matches!(
                            t,
                            "text" | "image" | "document" | "search_result" | "tool_reference"
                        ) {
                            return Err(ApiError::invalid(format!(
                                "{at}.content.{k}.type: Input tag '{t}' found using 'type' does not match any of the expected tags"
                            )));
                        }
                    }
                }
                Some(_) => {
                    return Err(ApiError::invalid(format!(
                        "{at}.content: Input should be a valid string or list"
                    )));
                }
            }
            if let Some(e) = obj.get("is_error")
                && !(e.is_boolean() || e.is_null())
            {
                return Err(ApiError::invalid(format!(
                    "{at}.is_error: Input should be a valid boolean"
                )));
            }
        }
        "thinking" => {
            let thinking = str_field("thinking")?;
            let signature = str_field("signature")?;
            if signature != thinking_signature(secret, thinking) {
                return Err(ApiError::invalid(format!(
                    "{at}: Invalid `signature` in `thinking` block"
                )));
            }
            if obj.contains_key("cache_control") {
                return Err(ApiError::invalid(format!(
                    "{at}.thinking.cache_control: Extra inputs are not permitted"
                )));
            }
        }
        "redacted_thinking" => {
            str_field("data")?;
        }
        _ => {}
    }
    if kind != "thinking" {
        bps.check(at, obj.get("cache_control"))?;
    }
    Ok(())
}

fn block_ids<'a>(msg: &'a Msg, kind: &str, key: &str) -> Vec<&'a str> {
    msg.blocks
        .iter()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some(kind))
        .filter_map(|b| b.get(key).and_then(Value::as_str))
        .collect()
}

/// Every `tool_result` answers a `tool_use` of the previous message, and
/// every `tool_use` (except in a final prefill) is answered in the next.
pub(super) fn check_tool_pairing(messages: &[Msg]) -> Result<(), ApiError> {
    // Every tool_result must answer a tool_use of the previous (assistant) message.
    for (j, msg) in messages.iter().enumerate() {
        if msg.role != MsgRole::User {
            continue;
        }
        let prev_ids: Vec<&str> = match j.checked_sub(1).map(|p| &messages[p]) {
            Some(prev) if prev.role == MsgRole::Assistant => block_ids(prev, "tool_use", "id"),
            _ => Vec::new(),
        };
        let stray = msg.blocks.iter().enumerate().find_map(|(k, b)| {
            if b.get("type").and_then(Value::as_str) != Some("tool_result") {
                return None;
            }
            let id = b.get("tool_use_id").and_then(Value::as_str).unwrap_or("");
            (!prev_ids.contains(&id)).then_some((k, id))
        });
        if let Some((k, id)) = stray {
            return Err(ApiError::invalid(format!(
                "messages.{j}.content.{k}: unexpected `tool_use_id` found in `tool_result` \
                 blocks: {id}. Each `tool_result` block must have a corresponding `tool_use` \
                 block in the previous message."
            )));
        }
    }
    // Every tool_use (except in a final prefill) must be answered in the next message.
    for (j, msg) in messages.iter().enumerate() {
        if msg.role != MsgRole::Assistant || j + 1 == messages.len() {
            continue;
        }
        let uses = block_ids(msg, "tool_use", "id");
        if uses.is_empty() {
            continue;
        }
        let next = &messages[j + 1];
        let answered = if next.role == MsgRole::User {
            block_ids(next, "tool_result", "tool_use_id")
        } else {
            Vec::new()
        };
        let missing: Vec<&str> = uses
            .into_iter()
            .filter(|id| !answered.contains(id))
            .collect();
        if !missing.is_empty() {
            return Err(ApiError::invalid(format!(
                "messages.{j}: `tool_use` ids were found without `tool_result` blocks \
                 immediately after: {}. Each `tool_use` block must have a corresponding \
                 `tool_result` block in the next message.",
                missing.join(", ")
            )));
        }
    }
    Ok(())
}

/// With `thinking.type: enabled`, a tool-use continuation must pass back the
/// assistant turn's thinking block first.
pub(super) fn check_thinking_continuation(messages: &[Msg]) -> Result<(), ApiError> {
    let Some(last) = messages.last() else {
        return Ok(());
    };
    if !last.is_tool_result_turn() || messages.len() < 2 {
        return Ok(());
    }
    let j = messages.len() - 2;
    let prev = &messages[j];
    if prev.role != MsgRole::Assistant {
        return Ok(());
    }
    let first = prev
        .blocks
        .first()
        .and_then(|b| b.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if first == "thinking" || first == "redacted_thinking" {
        return Ok(());
    }
    Err(ApiError::invalid(format!(
        "messages.{j}.content.0.type: Expected `thinking` or `redacted_thinking`, but found \
         `{first}`. When `thinking` is enabled, a final `assistant` message must start with a \
         thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). We \
         recommend you include thinking blocks from previous turns. To avoid this requirement, \
         disable `thinking`."
    )))
}
