//! Tool definitions (custom and server tools) and `tool_choice`.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::ToolChoice;
use super::cache_control::Breakpoints;
use crate::api_error::ApiError;

const TOOL_FIELDS: &[&str] = &[
    "name",
    "description",
    "input_schema",
    "cache_control",
    "type",
    "strict",
    "input_examples",
    "defer_loading",
    "eager_input_streaming",
    "allowed_callers",
];

/// One entry of `tools`.
pub(super) fn validate_tool(i: usize, tool: &Value, bps: &mut Breakpoints) -> Result<(), ApiError> {
    let obj = tool.as_object().ok_or_else(|| {
        ApiError::invalid(format!("tools.{i}: Input should be a valid dictionary"))
    })?;
    let kind = obj.get("type").and_then(Value::as_str).unwrap_or("custom");
    let name = match obj.get("name") {
        Some(Value::String(s)) => s.as_str(),
        _ => return Err(ApiError::invalid(format!("tools.{i}.name: Field required"))),
    };
    if kind != "custom" {
        // A server tool (web_search_20250305, ...): shape is its own.
        return bps
            .check(&format!("tools.{i}"), obj.get("cache_control"))
            .map(|_| ());
    }
    let at = format!("tools.{i}.custom");
    for key in obj.keys() {
        if !TOOL_FIELDS.contains(&key.as_str()) {
            return Err(ApiError::invalid(format!(
                "{at}.{key}: Extra inputs are not permitted"
            )));
        }
    }
    let valid_name = !name.is_empty()
        && name.chars().count() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid_name {
        return Err(ApiError::invalid(format!(
            "{at}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'"
        )));
    }
    match obj.get("input_schema") {
        Some(Value::Object(schema)) => {
            if schema.get("type").and_then(Value::as_str) != Some("object") {
                return Err(ApiError::invalid(format!(
                    "{at}.input_schema.type: Input should be 'object'"
                )));
            }
        }
        _ => {
            return Err(ApiError::invalid(format!(
                "{at}.input_schema: Field required"
            )));
        }
    }
    bps.check(&format!("tools.{i}"), obj.get("cache_control"))?;
    Ok(())
}

/// `tool_choice`, whose named tool must be one of `names`.
pub(super) fn parse_tool_choice(
    tc: &Map<String, Value>,
    names: &HashSet<String>,
) -> Result<ToolChoice, ApiError> {
    if let Some(v) = tc.get("disable_parallel_tool_use")
        && !v.is_boolean()
    {
        return Err(ApiError::invalid(
            "tool_choice.disable_parallel_tool_use: Input should be a valid boolean",
        ));
    }
    match tc.get("type").and_then(Value::as_str) {
        Some("auto") => Ok(ToolChoice::Auto),
        Some("any") => Ok(ToolChoice::Any),
        Some("none") => Ok(ToolChoice::None),
        Some("tool") => {
            let name = tc
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::invalid("tool_choice.tool.name: Field required"))?;
            if !names.contains(name) {
                return Err(ApiError::invalid(format!(
                    "tool_choice.tool.name: tool {name:?} is not in `tools`"
                )));
            }
            Ok(ToolChoice::Tool(name.to_string()))
        }
        _ => Err(ApiError::invalid(
            "tool_choice.type: Input tag found using 'type' does not match any of the expected \
             tags: 'auto', 'any', 'tool', 'none'",
        )),
    }
}
