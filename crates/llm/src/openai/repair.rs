//! What local models get almost right: tool-call arguments that are not
//! quite JSON, and tool calls written as text.
//!
//! Repairs are only the unambiguous ones: a code fence around the JSON, raw
//! control characters inside strings (escaped), trailing commas before `}`
//! or `]`, and a JSON document double-encoded as a string. Anything else is
//! an error carrying the parser's message; the caller feeds it back with
//! the model's own text.
//!
//! Text tool calls are recovered from `<tool_call>{"name","arguments"}</tool_call>`
//! blocks (Hermes/Qwen templates) and `functions.NAME:{...}` (Llama-style
//! and llama-cpp-python's `chatml-function-calling`), only when every block
//! parses and names a tool the request offered.

use serde_json::Value;

/// Parses tool-call arguments, repairing them when that is unambiguous.
///
/// # Errors
/// The strict parser's message when no repair makes them a JSON object.
pub(crate) fn parse_arguments(raw: &str) -> Result<Value, String> {
    let strict = match serde_json::from_str::<Value>(raw) {
        Ok(Value::String(inner)) => return parse_arguments(&inner),
        Ok(v @ Value::Object(_)) => return Ok(v),
        Ok(other) => return Err(format!("expected a JSON object, got {other}")),
        Err(e) => e.to_string(),
    };
    let repaired = drop_trailing_commas(&escape_controls(strip_fence(raw)));
    match serde_json::from_str::<Value>(&repaired) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(strict),
    }
}

/// The JSON inside a ```` ```json ... ``` ```` fence, else `raw` trimmed.
fn strip_fence(raw: &str) -> &str {
    let t = raw.trim();
    let Some(rest) = t.strip_prefix("```") else {
        return t;
    };
    let body = rest.split_once('\n').map_or("", |(_, b)| b);
    body.trim_end().strip_suffix("```").unwrap_or(body).trim()
}

/// Raw control characters inside strings, escaped.
fn escape_controls(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    let (mut in_string, mut escaped) = (false, false);
    for c in s.chars() {
        if in_string && !escaped && (c as u32) < 0x20 {
            match c {
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                _ => out.push_str(&format!("\\u{:04x}", c as u32)),
            }
            continue;
        }
        if in_string && escaped {
            escaped = false;
        } else if in_string && c == '\\' {
            escaped = true;
        } else if c == '"' {
            in_string = !in_string;
        }
        out.push(c);
    }
    out
}

/// Commas directly before `}` or `]` (outside strings), removed.
fn drop_trailing_commas(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let (mut in_string, mut escaped) = (false, false);
    for (i, &c) in chars.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
        } else if c == ','
            && chars[i + 1..]
                .iter()
                .find(|n| !n.is_whitespace())
                .is_some_and(|n| *n == '}' || *n == ']')
        {
            continue;
        }
        out.push(c);
    }
    out
}

/// Tool calls written as text: `(name, input)` for each, or `None` when
/// there are none or any of them is ambiguous (unknown tool, bad JSON).
pub(crate) fn calls_in_text(text: &str, tools: &[&str]) -> Option<Vec<(String, Value)>> {
    let known = |name: &str| tools.contains(&name);
    let mut calls = Vec::new();
    if text.contains("<tool_call>") {
        for chunk in text.split("<tool_call>").skip(1) {
            let body = chunk.split("</tool_call>").next().unwrap_or(chunk);
            let call = parse_arguments(body).ok()?;
            let name = call.get("name").and_then(Value::as_str)?.to_owned();
            let input = match call.get("arguments").or_else(|| call.get("parameters")) {
                Some(Value::String(s)) => parse_arguments(s).ok()?,
                Some(v @ Value::Object(_)) => v.clone(),
                None => Value::Object(serde_json::Map::new()),
                Some(_) => return None,
            };
            if !known(&name) {
                return None;
            }
            calls.push((name, input));
        }
        return (!calls.is_empty()).then_some(calls);
    }
    let mut parts = text.split("functions.");
    let _before = parts.next();
    let found: Vec<&str> = parts.collect();
    if found.len() != 1 {
        return None;
    }
    let (name, rest) = found[0].split_once(':')?;
    let name = name.trim();
    if !known(name) {
        return None;
    }
    let start = rest.find('{')?;
    let end = rest.rfind('}')?;
    let input = parse_arguments(rest.get(start..=end)?).ok()?;
    Some(vec![(name.to_owned(), input)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn repairs_only_what_is_unambiguous() {
        let raw = "{\"content\": \"a\nb\tc\"}";
        assert_eq!(parse_arguments(raw), Ok(json!({"content": "a\nb\tc"})));
        assert_eq!(
            parse_arguments("```json\n{\"edits\": [{\"old\": \"x\", \"new\": \"y\",},],}\n```"),
            Ok(json!({"edits": [{"old": "x", "new": "y"}]}))
        );
        assert_eq!(
            parse_arguments("\"{\\\"path\\\": \\\"a, }\\\"}\""),
            Ok(json!({"path": "a, }"}))
        );
        let err = parse_arguments("{\"content\": \"cut off").unwrap_err();
        assert!(err.contains("EOF"), "{err}");
        assert!(parse_arguments("[1, 2]").is_err());
    }

    #[test]
    fn text_tool_calls_are_recovered_when_unambiguous() {
        let tools = ["edit_file", "write_file"];
        let text = "I will edit.\n<tool_call>\n{\"name\": \"write_file\", \"arguments\": {\"content\": \"x\"}}\n</tool_call>";
        assert_eq!(
            calls_in_text(text, &tools),
            Some(vec![("write_file".into(), json!({"content": "x"}))])
        );
        let text = "functions.edit_file:\n{\"edits\": [{\"old\": \"a\", \"new\": \"b\"}]}";
        assert_eq!(
            calls_in_text(text, &tools),
            Some(vec![(
                "edit_file".into(),
                json!({"edits": [{"old": "a", "new": "b"}]})
            )])
        );
        assert_eq!(calls_in_text("functions.delete_all:{}", &tools), None);
        assert_eq!(
            calls_in_text("functions.write_file:{} or functions.edit_file:{}", &tools),
            None
        );
        assert_eq!(calls_in_text("<tool_call>{oops</tool_call>", &tools), None);
        assert_eq!(calls_in_text("just prose", &tools), None);
    }
}
