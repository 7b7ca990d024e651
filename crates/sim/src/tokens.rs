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
/// removed at the top level). The characters are counted as the JSON is
/// written; the value is neither copied nor held as text.
pub fn json_tokens(value: &Value) -> u64 {
    match value {
        Value::Object(map) if map.contains_key("cache_control") => {
            serialized_tokens(&WithoutKey(map, "cache_control"))
        }
        other => serialized_tokens(other),
    }
}

/// Tokens of `value`'s compact JSON, counted as it is written.
fn serialized_tokens(value: &impl serde::Serialize) -> u64 {
    let mut chars = CharCounter::default();
    // Writing to a counter cannot fail, and a `Value` always serialises.
    let _ = serde_json::to_writer(&mut chars, value);
    chars.0.div_ceil(4)
}

/// An object serialised without one of its keys.
struct WithoutKey<'a>(&'a serde_json::Map<String, Value>, &'static str);

impl serde::Serialize for WithoutKey<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().filter(|(k, _)| k.as_str() != self.1))
    }
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
            let input = block.get("input").unwrap_or(&Value::Null);
            text_tokens(str_field(block, "name")) + serialized_tokens(input)
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
#[cfg(test)]
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

/// Counts the Unicode scalar values of UTF-8 text written to it.
#[derive(Default)]
struct CharCounter(u64);

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

    #[test]
    fn json_is_counted_as_its_compact_text_without_the_top_level_cache_control() {
        let tool = json!({
            "name": "édit",
            "input_schema": {"type": "object", "cache_control": {"type": "ephemeral"}},
            "cache_control": {"type": "ephemeral", "ttl": "1h"}
        });
        let text = without_cache_control(&tool).to_string();
        assert!(!text.contains("\"ttl\""), "{text}");
        assert_eq!(json_tokens(&tool), text_tokens(&text));
        assert_ne!(json_tokens(&tool), text_tokens(&tool.to_string()));
        let plain = json!({"a": [1, "ü", null]});
        assert_eq!(json_tokens(&plain), text_tokens(&plain.to_string()));
    }
}
