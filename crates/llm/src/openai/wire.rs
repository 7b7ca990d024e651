//! The Chat Completions wire types and the conversion to and from the
//! Anthropic-shaped [`MessageRequest`] / [`MessageResponse`].
//!
//! Shapes every common server accepts: assistant `content` is always a
//! string (`""` beside `tool_calls`, never `null`: llama-cpp-python's schema
//! refuses `null`), tool-call `arguments` are read as a JSON string or an
//! object, and a forced tool choice is sent in the form the server takes
//! ([`ForcedToolMode`]). Replies are read forgivingly: arguments repaired
//! when unambiguous ([`super::repair`]), an unrepairable call kept as a
//! string input naming the parse error and carrying the model's text (the
//! engine's schema check feeds both back), tool calls written as text
//! recovered, and `finish_reason: "tool_calls"` at `max_tokens` read as
//! truncation.

use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::repair::{calls_in_text, parse_arguments};
use super::{ForcedToolMode, OpenAiSettings};
use crate::types::{
    ContentBlock, MessageRequest, MessageResponse, MessageRole, StopReason, ToolChoice, Usage,
};

#[derive(Debug, Serialize)]
pub(crate) struct ChatRequest {
    model: String,
    messages: Vec<ChatMessage>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<ChatTool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<Value>,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_effort: Option<String>,
    pub(crate) stream: bool,
    /// Sampling settings and extra fields (`temperature`, `repeat_penalty`, ...).
    #[serde(flatten)]
    extra: Map<String, Value>,
}

#[derive(Debug, Serialize)]
struct ChatMessage {
    role: &'static str,
    /// Always a string: `""` for an assistant turn made only of tool calls.
    content: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ChatToolCall>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<String>,
}

impl ChatMessage {
    fn new(role: &'static str, content: String) -> Self {
        Self {
            role,
            content,
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }
}

#[derive(Debug, Serialize)]
struct ChatTool {
    #[serde(rename = "type")]
    kind: &'static str,
    function: ChatFunctionDef,
}

#[derive(Debug, Serialize)]
struct ChatFunctionDef {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    parameters: Arc<Value>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ChatToolCall {
    #[serde(default)]
    id: Option<String>,
    #[serde(rename = "type", default = "function_type")]
    kind: String,
    function: ChatFunctionCall,
}

fn function_type() -> String {
    "function".into()
}

#[derive(Debug, Serialize, Deserialize)]
struct ChatFunctionCall {
    name: String,
    /// A JSON document in a string (an object from some servers, kept as text).
    #[serde(default, deserialize_with = "string_or_json")]
    arguments: String,
}

/// A string as is; any other JSON value as its text.
fn string_or_json<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    })
}

#[derive(Debug, Deserialize)]
pub(crate) struct ChatResponse {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<ChatChoice>,
    #[serde(default)]
    usage: Option<ChatUsage>,
}

impl ChatResponse {
    /// Whether the server sent any choice.
    pub(crate) fn has_choices(&self) -> bool {
        !self.choices.is_empty()
    }
}

#[derive(Debug, Deserialize)]
struct ChatChoice {
    #[serde(default)]
    finish_reason: Option<String>,
    message: ChatResponseMessage,
}

#[derive(Debug, Deserialize)]
struct ChatResponseMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ChatToolCall>>,
    #[serde(default)]
    refusal: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ChatUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
}

#[derive(Debug, Default, Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
    #[serde(default)]
    cache_write_tokens: Option<u64>,
}

fn join_texts<'a>(texts: impl Iterator<Item = &'a str>) -> Option<String> {
    let parts: Vec<&str> = texts.collect();
    (!parts.is_empty()).then(|| parts.join("\n\n"))
}

/// Anthropic-shaped request -> Chat Completions request.
pub(crate) fn to_chat_request(request: &MessageRequest, settings: &OpenAiSettings) -> ChatRequest {
    let mut messages = Vec::new();
    if let Some(system) = join_texts(request.system.iter().map(|b| b.text.as_str())) {
        messages.push(ChatMessage::new("system", system));
    }
    for message in &request.messages {
        match message.role {
            MessageRole::User => {
                // Tool results must directly follow the assistant's tool calls.
                for block in &message.content {
                    if let ContentBlock::ToolResult {
                        tool_use_id,
                        content,
                        is_error,
                    } = block
                    {
                        let content = if *is_error {
                            format!("ERROR: {content}")
                        } else {
                            content.clone()
                        };
                        messages.push(ChatMessage {
                            tool_call_id: Some(tool_use_id.clone()),
                            ..ChatMessage::new("tool", content)
                        });
                    }
                }
                if let Some(text) = join_texts(message.content.iter().filter_map(|b| match b {
                    ContentBlock::Text { text, .. } => Some(text.as_str()),
                    _ => None,
                })) {
                    messages.push(ChatMessage::new("user", text));
                }
            }
            MessageRole::Assistant => {
                let text = join_texts(message.content.iter().filter_map(|b| match b {
                    ContentBlock::Text { text, .. } => Some(text.as_str()),
                    _ => None,
                }));
                let tool_calls: Vec<ChatToolCall> = message
                    .content
                    .iter()
                    .filter_map(|b| match b {
                        ContentBlock::ToolUse { id, name, input } => Some(ChatToolCall {
                            id: Some(id.clone()),
                            kind: function_type(),
                            function: ChatFunctionCall {
                                name: name.clone(),
                                arguments: input.to_string(),
                            },
                        }),
                        _ => None,
                    })
                    .collect();
                if text.is_some() || !tool_calls.is_empty() {
                    messages.push(ChatMessage {
                        tool_calls,
                        ..ChatMessage::new("assistant", text.unwrap_or_default())
                    });
                }
            }
        }
    }
    let tools = request
        .tools
        .iter()
        .map(|t| ChatTool {
            kind: "function",
            function: ChatFunctionDef {
                name: t.name.clone(),
                description: t.description.clone(),
                parameters: t.input_schema.clone(),
            },
        })
        .collect();
    let tool_names: Vec<&str> = request.tools.iter().map(|t| t.name.as_str()).collect();
    let tool_choice = request
        .tool_choice
        .as_ref()
        .filter(|_| !request.tools.is_empty())
        .map(|c| wire_tool_choice(c, settings.forced_tool, &tool_names));
    let reasoning_effort = request
        .output_config
        .as_ref()
        .and_then(|o| o.effort.as_deref())
        .map(|e| match e {
            "low" | "medium" | "high" => e.to_owned(),
            "minimal" => "low".to_owned(),
            _ => "high".to_owned(),
        });
    ChatRequest {
        model: request.model.clone(),
        messages,
        tools,
        tool_choice,
        max_tokens: request.max_tokens,
        reasoning_effort,
        stream: settings.stream,
        extra: settings.sampling_for(role_of(&tool_names)),
    }
}

/// How `choice` goes on the wire for a server that forces tools with `mode`.
/// `Any` under [`ForcedToolMode::Named`] names the only tool, and is `auto`
/// when there are several (the caller forces the tool a turn needs by name).
fn wire_tool_choice(choice: &ToolChoice, mode: ForcedToolMode, tools: &[&str]) -> Value {
    let named = |name: &str| serde_json::json!({"type": "function", "function": {"name": name}});
    match (choice, mode) {
        (ToolChoice::Auto, _) | (_, ForcedToolMode::Auto) => Value::from("auto"),
        (ToolChoice::None, _) => Value::from("none"),
        (ToolChoice::Any | ToolChoice::Tool { .. }, ForcedToolMode::Required) => {
            Value::from("required")
        }
        (ToolChoice::Tool { name }, ForcedToolMode::Named) => named(name),
        (ToolChoice::Any, ForcedToolMode::Named) => match tools {
            [only] => named(only),
            _ => Value::from("auto"),
        },
    }
}

/// The cadre role a request plays, from the tools it offers.
pub(crate) fn role_of(tools: &[&str]) -> &'static str {
    if tools.contains(&"submit_plan") {
        "planner"
    } else if tools.contains(&"submit_review") {
        "reviewer"
    } else {
        "worker"
    }
}

/// Chat Completions response -> Anthropic-shaped message. The caller
/// guarantees at least one choice.
pub(crate) fn from_chat_response(
    response: ChatResponse,
    request: &MessageRequest,
) -> MessageResponse {
    let requested_model = request.model.as_str();
    let tool_names: Vec<&str> = request.tools.iter().map(|t| t.name.as_str()).collect();
    let mut content = Vec::new();
    let mut finish_reason = None;
    let mut has_tool_calls = false;
    if let Some(choice) = response.choices.into_iter().next() {
        finish_reason = choice.finish_reason;
        let message = choice.message;
        let text = message
            .content
            .filter(|t| !t.is_empty())
            .or(message.refusal);
        let calls = message.tool_calls.unwrap_or_default();
        let recovered = match (&text, calls.is_empty()) {
            (Some(text), true) => calls_in_text(text, &tool_names),
            _ => None,
        };
        if let Some(text) = text {
            content.push(ContentBlock::text(text));
        }
        for (i, (name, input)) in recovered.into_iter().flatten().enumerate() {
            has_tool_calls = true;
            tracing::debug!(tool = %name, "recovered a tool call written as text");
            content.push(ContentBlock::ToolUse {
                id: format!("call_text_{i}"),
                name,
                input,
            });
        }
        for (i, call) in calls.into_iter().enumerate() {
            has_tool_calls = true;
            let raw = call.function.arguments;
            let input = if raw.trim().is_empty() {
                Value::Object(Map::new())
            } else {
                parse_arguments(&raw).unwrap_or_else(|e| {
                    tracing::warn!(tool = %call.function.name, error = %e, "tool arguments are not JSON");
                    Value::String(format!("arguments are not valid JSON ({e}): {raw}"))
                })
            };
            content.push(ContentBlock::ToolUse {
                id: call
                    .id
                    .filter(|id| !id.is_empty())
                    .unwrap_or_else(|| format!("call_{i}")),
                name: call.function.name,
                input,
            });
        }
    }
    let usage = response.usage.unwrap_or_default();
    let at_limit = usage.completion_tokens >= u64::from(request.max_tokens);
    let stop_reason = finish_reason.map(|r| match r.as_str() {
        // A call cut at max_tokens is reported as "tool_calls" by some servers.
        "tool_calls" | "function_call" if at_limit => StopReason::MaxTokens,
        "tool_calls" | "function_call" => StopReason::ToolUse,
        "length" => StopReason::MaxTokens,
        // Some servers say "stop" even when they called a tool.
        "stop" if has_tool_calls => StopReason::ToolUse,
        "stop" => StopReason::EndTurn,
        "content_filter" => StopReason::Refusal,
        _ => StopReason::Other,
    });
    let details = usage.prompt_tokens_details.unwrap_or_default();
    let cached = details.cached_tokens.unwrap_or(0);
    let written = details.cache_write_tokens.unwrap_or(0);
    MessageResponse {
        id: response.id.unwrap_or_else(|| "chatcmpl-unknown".into()),
        model: response.model.unwrap_or_else(|| requested_model.to_owned()),
        content,
        stop_reason,
        usage: Usage {
            input_tokens: usage
                .prompt_tokens
                .saturating_sub(cached)
                .saturating_sub(written),
            output_tokens: usage.completion_tokens,
            cache_creation_input_tokens: written,
            cache_read_input_tokens: cached,
            cache_creation: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Message, OutputConfig, SystemBlock, ToolDefinition};
    use pretty_assertions::assert_eq;
    use serde_json::json;

    #[test]
    fn request_conversion_shapes() {
        let request = MessageRequest {
            model: "qwen".into(),
            max_tokens: 100,
            system: vec![SystemBlock::text("role"), SystemBlock::text("prefix")],
            tools: vec![ToolDefinition {
                name: "read_file".into(),
                description: Some("read".into()),
                input_schema: json!({"type":"object"}).into(),
                cache_control: None,
            }],
            tool_choice: Some(ToolChoice::Tool {
                name: "read_file".into(),
            }),
            messages: vec![
                Message {
                    role: MessageRole::User,
                    content: vec![ContentBlock::text("go")],
                },
                Message {
                    role: MessageRole::Assistant,
                    content: vec![
                        ContentBlock::Thinking {
                            thinking: "hmm".into(),
                            signature: "sig".into(),
                        },
                        ContentBlock::ToolUse {
                            id: "t1".into(),
                            name: "read_file".into(),
                            input: json!({"path":"a"}),
                        },
                    ],
                },
                Message {
                    role: MessageRole::User,
                    content: vec![
                        ContentBlock::ToolResult {
                            tool_use_id: "t1".into(),
                            content: "nope".into(),
                            is_error: true,
                        },
                        ContentBlock::text("continue"),
                    ],
                },
            ],
            thinking: None,
            output_config: Some(OutputConfig {
                effort: Some("max".into()),
            }),
            stream: None,
        };
        let mut settings = OpenAiSettings::new("http://x/v1", None);
        settings
            .extra_body
            .insert("repeat_penalty".into(), json!(1.1));
        let wire = serde_json::to_value(to_chat_request(&request, &settings)).unwrap();
        assert_eq!(
            wire,
            json!({
                "model": "qwen",
                "messages": [
                    {"role": "system", "content": "role\n\nprefix"},
                    {"role": "user", "content": "go"},
                    {"role": "assistant", "content": "", "tool_calls": [
                        {"id": "t1", "type": "function", "function": {"name": "read_file", "arguments": "{\"path\":\"a\"}"}}
                    ]},
                    {"role": "tool", "content": "ERROR: nope", "tool_call_id": "t1"},
                    {"role": "user", "content": "continue"}
                ],
                "tools": [{"type": "function", "function": {"name": "read_file", "description": "read", "parameters": {"type": "object"}}}],
                "tool_choice": {"type": "function", "function": {"name": "read_file"}},
                "max_tokens": 100,
                "reasoning_effort": "high",
                "stream": false,
                "repeat_penalty": 1.1
            })
        );
    }

    fn request(max_tokens: u32, tools: &[&str]) -> MessageRequest {
        MessageRequest {
            model: "local".into(),
            max_tokens,
            system: Vec::new(),
            tools: tools
                .iter()
                .map(|n| ToolDefinition {
                    name: (*n).into(),
                    description: None,
                    input_schema: json!({"type": "object"}).into(),
                    cache_control: None,
                })
                .collect(),
            tool_choice: Some(ToolChoice::Any),
            messages: vec![Message {
                role: MessageRole::User,
                content: vec![ContentBlock::text("go")],
            }],
            thinking: None,
            output_config: None,
            stream: None,
        }
    }

    fn reply(value: Value, request: &MessageRequest) -> MessageResponse {
        from_chat_response(serde_json::from_value(value).unwrap(), request)
    }

    #[test]
    fn forced_tool_follows_the_server_mode_and_roles_get_sampling() {
        let mut settings = OpenAiSettings::new("http://x/v1", None);
        let wire = |r: &MessageRequest, s: &OpenAiSettings| {
            serde_json::to_value(to_chat_request(r, s)).unwrap()
        };
        let planner = request(100, &["submit_plan"]);
        let worker = request(100, &["read_file", "edit_file"]);
        let w = wire(&planner, &settings);
        assert_eq!(
            w["tool_choice"],
            json!({"type": "function", "function": {"name": "submit_plan"}})
        );
        assert_eq!(w["temperature"], json!(0.0));
        let w = wire(&worker, &settings);
        assert_eq!(w["tool_choice"], json!("auto"));
        assert!(w.get("temperature").is_none());
        settings.forced_tool = ForcedToolMode::Required;
        settings.sampling.insert(
            "planner".into(),
            json!({"temperature": 0.3, "top_k": 20})
                .as_object()
                .unwrap()
                .clone(),
        );
        assert_eq!(wire(&worker, &settings)["tool_choice"], json!("required"));
        let w = wire(&planner, &settings);
        assert_eq!(
            (w["temperature"].clone(), w["top_k"].clone()),
            (json!(0.3), json!(20))
        );
        settings.forced_tool = ForcedToolMode::Auto;
        assert_eq!(wire(&planner, &settings)["tool_choice"], json!("auto"));
    }

    #[test]
    fn bad_arguments_keep_the_error_and_the_text() {
        let req = request(100, &["grep"]);
        let message = reply(
            json!({
                "choices": [{"finish_reason": "stop", "message": {"content": "", "tool_calls": [
                    {"function": {"name": "grep", "arguments": "{\"pattern\": "}}
                ]}}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 3}
            }),
            &req,
        );
        assert_eq!(message.model, "local");
        assert_eq!(message.stop_reason, Some(StopReason::ToolUse));
        let ContentBlock::ToolUse { id, input, .. } = &message.content[0] else {
            panic!("{:?}", message.content);
        };
        assert_eq!(id, "call_0");
        let text = input.as_str().unwrap();
        assert!(
            text.starts_with("arguments are not valid JSON (EOF"),
            "{text}"
        );
        assert!(text.ends_with("{\"pattern\": "), "{text}");
        assert_eq!(message.usage.input_tokens, 10);
    }

    #[test]
    fn repaired_object_arguments_text_calls_and_truncation() {
        let req = request(50, &["write_file"]);
        let message = reply(
            json!({"choices": [{"finish_reason": "tool_calls", "message": {"content": null,
            "tool_calls": [{"id": "c", "function": {"name": "write_file", "arguments": {"content": "x"}}},
                           {"id": "d", "function": {"name": "write_file", "arguments": "{\"content\": \"a\nb\",}"}}]}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 12}}),
            &req,
        );
        assert_eq!(message.stop_reason, Some(StopReason::ToolUse));
        let inputs: Vec<&Value> = message
            .content
            .iter()
            .filter_map(|b| match b {
                ContentBlock::ToolUse { input, .. } => Some(input),
                _ => None,
            })
            .collect();
        assert_eq!(
            inputs,
            [&json!({"content": "x"}), &json!({"content": "a\nb"})]
        );

        let message = reply(
            json!({"choices": [{"finish_reason": "tool_calls", "message": {"content": null,
            "tool_calls": [{"id": "c", "function": {"name": "write_file", "arguments": "{\"content\": \"ab"}}]}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 50}}),
            &req,
        );
        assert_eq!(message.stop_reason, Some(StopReason::MaxTokens));

        let message = reply(
            json!({"choices": [{"finish_reason": "stop", "message": {
            "content": "<tool_call>{\"name\": \"write_file\", \"arguments\": {\"content\": \"y\"}}</tool_call>"}}]}),
            &req,
        );
        assert_eq!(message.stop_reason, Some(StopReason::ToolUse));
        assert!(
            matches!(&message.content[1], ContentBlock::ToolUse { name, input, .. }
            if name == "write_file" && *input == json!({"content": "y"}))
        );
    }
}
