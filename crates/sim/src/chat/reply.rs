//! An answer on the Chat Completions wire, bent by the quirks that change
//! what a server says.

use serde_json::{Value, json};

use super::ChatQuirk;
use crate::agents::{Answer, AnswerBlock};
use crate::response::UsageNums;

/// The `chat.completion` object for `answer`; `named_choice` says whether
/// the request's `tool_choice` named a function.
pub(crate) fn completion_json(
    id: &str,
    model: &str,
    answer: &Answer,
    usage: &UsageNums,
    quirks: &[ChatQuirk],
    named_choice: bool,
) -> Value {
    let mut texts = Vec::new();
    let mut calls = Vec::new();
    for block in &answer.blocks {
        match block {
            AnswerBlock::Thinking { .. } => {}
            AnswerBlock::Text(t) => texts.push(t.clone()),
            AnswerBlock::ToolUse {
                id,
                name,
                input,
                partial_json,
            } => calls.push((id, name, input, partial_json)),
        }
    }
    let mut finish = match answer.stop_reason {
        "tool_use" => "tool_calls",
        "max_tokens" => "length",
        _ => "stop",
    };
    let mut tool_calls = Vec::new();
    for (id, name, input, partial) in calls {
        if quirks.contains(&ChatQuirk::ProseUnlessNamed) && !named_choice {
            texts.push(format!(
                "I will use {name} to make the change the subtask asks for."
            ));
            finish = "stop";
            continue;
        }
        if quirks.contains(&ChatQuirk::ToolCallsAsText) {
            let call = json!({"name": name, "arguments": input});
            texts.push(format!("<tool_call>\n{call}\n</tool_call>"));
            if finish == "tool_calls" {
                finish = "stop";
            }
            continue;
        }
        let arguments = match partial {
            Some(cut) => Value::from(cut.clone()),
            None if quirks.contains(&ChatQuirk::ArgumentsAsObject) => input.clone(),
            None if quirks.contains(&ChatQuirk::RawNewlinesInArguments) => {
                Value::from(raw_newlines(&input.to_string()))
            }
            None => Value::from(input.to_string()),
        };
        tool_calls.push(json!({
            "id": id, "type": "function",
            "function": {"name": name, "arguments": arguments},
        }));
    }
    let content = if texts.is_empty() {
        Value::Null
    } else {
        Value::from(texts.join("\n"))
    };
    let mut message = json!({"role": "assistant", "content": content});
    if !tool_calls.is_empty() {
        message["tool_calls"] = Value::Array(tool_calls);
    }
    let prompt = usage.input + usage.cache_read + usage.write_5m + usage.write_1h;
    json!({
        "id": id,
        "object": "chat.completion",
        "created": 1_767_225_600,
        "model": model,
        "choices": [{"index": 0, "finish_reason": finish, "message": message}],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": usage.output,
            "total_tokens": prompt + usage.output,
            "prompt_tokens_details": {"cached_tokens": usage.cache_read},
        },
    })
}

/// JSON text with every `\n` escape inside strings written as a raw newline.
pub(crate) fn raw_newlines(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let mut chars = json.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_newlines_keeps_other_escapes() {
        let json = serde_json::json!({"s": "a\nb\\n\"c\""}).to_string();
        let raw = raw_newlines(&json);
        assert_eq!(raw, "{\"s\":\"a\nb\\\\n\\\"c\\\"\"}");
        assert!(serde_json::from_str::<Value>(&raw).is_err());
    }
}
