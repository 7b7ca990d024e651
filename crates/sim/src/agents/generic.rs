//! Any other request (plain chat, SDK tests, generic tool use): a greeting,
//! an echo of a tool result, or a call of the offered tool with an input
//! synthesised from its schema.

use serde_json::{Value, json};

use super::draft::Draft;
use super::{AnswerMeta, ToolCall};
use crate::edits::preview;
use crate::request::{Msg, MsgRole, ParsedRequest, ToolChoice};
use crate::scenario::OutcomeKind;

/// A plausible input for a JSON schema.
fn synth(schema: &Value) -> Value {
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => {
            let mut map = serde_json::Map::new();
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, v) in props {
                    map.insert(k.clone(), synth(v));
                }
            }
            Value::Object(map)
        }
        Some("string") => json!("sim"),
        Some("integer") | Some("number") => json!(1),
        Some("boolean") => json!(true),
        Some("array") => json!([]),
        _ => Value::Null,
    }
}

/// The answer to a request of no cadre role.
pub(super) fn generic(req: &ParsedRequest, forced: Option<OutcomeKind>) -> (Draft, AnswerMeta) {
    let last_user = req.messages.iter().rev().find(|m| m.role == MsgRole::User);
    let answering_tool = last_user.is_some_and(Msg::is_tool_result_turn);
    let choice_none = matches!(req.tool_choice, Some(ToolChoice::None));
    let wants_tool = !req.tools.is_empty()
        && !choice_none
        && (!answering_tool
            || matches!(req.tool_choice, Some(ToolChoice::Any | ToolChoice::Tool(_))));
    let mut meta = AnswerMeta::default();
    let good = if wants_tool {
        let tool = match &req.tool_choice {
            Some(ToolChoice::Tool(name)) => req
                .tools
                .iter()
                .find(|t| t.get("name").and_then(Value::as_str) == Some(name)),
            _ => req.tools.first(),
        };
        tool.map(|t| {
            let name = t.get("name").and_then(Value::as_str).unwrap_or("tool");
            ToolCall::new(
                name,
                t.get("input_schema")
                    .map(synth)
                    .unwrap_or_else(|| json!({})),
            )
        })
    } else {
        None
    };
    let text = if answering_tool {
        let result = last_user
            .and_then(|m| {
                m.blocks
                    .iter()
                    .find(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
            })
            .and_then(|b| b.get("content"))
            .map(|c| match c {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .unwrap_or_default();
        format!("The tool returned: {}", preview(&result))
    } else {
        let said = last_user.map(Msg::text).unwrap_or_default();
        format!(
            "Hello! This is cadre-sim answering as {}. You said: {}",
            req.model,
            preview(&said)
        )
    };
    meta.outcome = Some(
        forced
            .map_or(
                if good.is_some() { "tool_use" } else { "text" },
                OutcomeKind::as_str,
            )
            .to_string(),
    );
    let draft = match (forced, good) {
        (Some(kind), Some(call)) => Draft::forced(kind, call, "submit_plan"),
        (Some(kind), None) => Draft::forced(kind, ToolCall::new("tool", json!({})), "submit_plan"),
        (None, Some(call)) => Draft::call(call),
        (None, None) => Draft::text(text),
    };
    (draft, meta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn schemas_synthesise_inputs() {
        let schema = json!({"type":"object","properties":{"city":{"type":"string"},"unit":{"type":"string","enum":["c","f"]},"days":{"type":"integer"}}});
        assert_eq!(synth(&schema), json!({"city":"sim","unit":"c","days":1}));
    }
}
