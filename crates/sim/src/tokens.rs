//! The sim's token-counting convention, defined once.
//!
//! `tokens(text) = ceil(chars / 4)` where `chars` counts Unicode scalar
//! values. A request's input tokens are the sum, block by block, of:
//! - each tool definition: its compact JSON serialisation without `cache_control`;
//! - each system text block (or the system string): its text;
//! - each message content block: `text` -> its text; `tool_use` -> its name plus
//!   the JSON of its input; `tool_result` -> its text content (string or text
//!   blocks); `thinking` -> the thinking text; `redacted_thinking` -> its data;
//!   any other block -> its JSON serialisation without `cache_control`.
//!
//! Output tokens are `ceil(answer chars * output_tokens_per_char)` per model.

use serde_json::Value;

/// `ceil(chars / 4)`.
pub fn text_tokens(text: &str) -> u64 {
    let chars = text.chars().count() as u64;
    chars.div_ceil(4)
}

/// Tokens of a JSON value's compact serialisation (with `cache_control` keys
/// removed at the top level).
pub fn json_tokens(value: &Value) -> u64 {
    text_tokens(&without_cache_control(value).to_string())
}

/// Tokens of one tool definition.
pub fn tool_tokens(tool: &Value) -> u64 {
    json_tokens(tool)
}

/// Tokens of one message content block (see the module docs).
pub fn block_tokens(block: &Value) -> u64 {
    let kind = block.get("type").and_then(Value::as_str).unwrap_or("");
    match kind {
        "text" => text_tokens(str_field(block, "text")),
        "tool_use" => {
            let input = block.get("input").cloned().unwrap_or(Value::Null);
            text_tokens(str_field(block, "name")) + text_tokens(&input.to_string())
        }
        "tool_result" => match block.get("content") {
            Some(Value::String(s)) => text_tokens(s),
            Some(Value::Array(items)) => items.iter().map(block_tokens).sum(),
            _ => 0,
        },
        "thinking" => text_tokens(str_field(block, "thinking")),
        "redacted_thinking" => text_tokens(str_field(block, "data")),
        _ => json_tokens(block),
    }
}

/// A copy of `value` without its top-level `cache_control` key.
pub(crate) fn without_cache_control(value: &Value) -> Value {
    match value {
        Value::Object(map) if map.contains_key("cache_control") => {
            let mut map = map.clone();
            map.remove("cache_control");
            Value::Object(map)
        }
        other => other.clone(),
    }
}

fn str_field<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ceil_of_chars_over_four() {
        assert_eq!(text_tokens(""), 0);
        assert_eq!(text_tokens("a"), 1);
        assert_eq!(text_tokens("abcd"), 1);
        assert_eq!(text_tokens("abcde"), 2);
        // Unicode scalar values, not bytes.
        assert_eq!(text_tokens("éééé"), 1);
    }

    #[test]
    fn blocks_count_their_text() {
        assert_eq!(block_tokens(&json!({"type":"text","text":"abcdefgh"})), 2);
        assert_eq!(
            block_tokens(&json!({"type":"tool_result","tool_use_id":"x","content":"abcde"})),
            2
        );
        assert_eq!(
            block_tokens(&json!({"type":"tool_use","id":"t","name":"ab","input":{}})),
            2
        );
    }
}
