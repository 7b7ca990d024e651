//! The OpenAI-compatible side of the sim: `POST /v1/chat/completions` as
//! local servers (llama.cpp's `llama-server`, llama-cpp-python, Ollama,
//! vLLM) speak it, with their quirks switchable ([`ChatQuirk`]).
//!
//! Key design decision: a Chat Completions body is translated into the
//! Messages body it means ([`to_messages_body`]) and answered by the same
//! validation and the same simulated agents as `POST /v1/messages`, so both
//! wire formats exercise one behaviour; [`reply`] puts the answer back on the
//! Chat wire, bent by the quirks that change what a server *says* (tool
//! calls written as text, arguments with raw newlines or as an object). The
//! quirks that change what a server *accepts* (`tool_choice: "required"`
//! refused with a 500, `content: null` refused, a small context window) are
//! checked in [`check_quirks`] before translation.
//!
//! Quirks come from the scenario's `[chat]` table and, per request, from
//! the `x-sim-quirks: a,b` header.

mod generation;
mod reply;

use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

pub(crate) use generation::{GenerationSlot, chunk_frames, generate_whole, stream_body};
pub(crate) use reply::completion_json;

/// One behaviour of a real OpenAI-compatible server the sim can imitate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatQuirk {
    /// `tool_choice: "required"` answered with HTTP 500 and an empty
    /// message (llama-cpp-python's `chatml-function-calling`).
    RefuseRequired,
    /// A message with `content: null` refused by the server's schema as a
    /// 500 whose body is a validation error (llama-cpp-python).
    RefuseNullContent,
    /// Tool calls written into `content` as `<tool_call>{...}</tool_call>`
    /// with no `tool_calls` (a template without tool parsing).
    ToolCallsAsText,
    /// Tool-call `arguments` with raw newlines inside JSON strings (small
    /// models writing code).
    RawNewlinesInArguments,
    /// Tool-call `arguments` as a JSON object rather than a string.
    ArgumentsAsObject,
    /// Unless `tool_choice` names a function, the model answers in prose
    /// that mentions the tool but calls none (a small model on
    /// llama-cpp-python's `auto` mode).
    ProseUnlessNamed,
    /// One generation slot; a whole (non-streamed) answer is generated to
    /// its end even after the client timed out, holding the slot, so the
    /// next request waits (llama-cpp-python). A streamed one stops when its
    /// client disconnects. A request that found the slot busy with an
    /// abandoned generation is logged with the fault
    /// `busy_with_abandoned_generation`.
    KeepsGenerating,
    /// A streamed request whose `tool_choice` does not name a function, and
    /// whose answer is a tool call (or whose `tool_choice` is `required`),
    /// fails inside the server after its 200 went out: the event stream
    /// closes with no data and no `[DONE]` (llama-cpp-python's
    /// `chatml-function-calling` raises "Automatic streaming tool choice is
    /// not supported"). Named and text answers stream.
    StreamsOnlyNamedToolCalls,
    /// Every streamed tool-call chunk repeats the call's `id` and its whole
    /// `function.name` beside the next piece of `arguments`
    /// (llama-cpp-python), where OpenAI sends them once.
    RepeatsToolCallHeader,
}

impl ChatQuirk {
    /// The snake_case name used in scenarios and the `x-sim-quirks` header.
    pub fn as_str(self) -> &'static str {
        match self {
            ChatQuirk::RefuseRequired => "refuse_required",
            ChatQuirk::RefuseNullContent => "refuse_null_content",
            ChatQuirk::ToolCallsAsText => "tool_calls_as_text",
            ChatQuirk::RawNewlinesInArguments => "raw_newlines_in_arguments",
            ChatQuirk::ArgumentsAsObject => "arguments_as_object",
            ChatQuirk::ProseUnlessNamed => "prose_unless_named",
            ChatQuirk::KeepsGenerating => "keeps_generating",
            ChatQuirk::StreamsOnlyNamedToolCalls => "streams_only_named_tool_calls",
            ChatQuirk::RepeatsToolCallHeader => "repeats_tool_call_header",
        }
    }

    const ALL: [ChatQuirk; 9] = [
        ChatQuirk::RefuseRequired,
        ChatQuirk::RefuseNullContent,
        ChatQuirk::ToolCallsAsText,
        ChatQuirk::RawNewlinesInArguments,
        ChatQuirk::ArgumentsAsObject,
        ChatQuirk::ProseUnlessNamed,
        ChatQuirk::KeepsGenerating,
        ChatQuirk::StreamsOnlyNamedToolCalls,
        ChatQuirk::RepeatsToolCallHeader,
    ];
}

impl FromStr for ChatQuirk {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|q| q.as_str() == s)
            .ok_or_else(|| format!("unknown chat quirk {s:?}"))
    }
}

/// `[chat]`: how the OpenAI-compatible endpoint behaves.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatSpec {
    /// Quirks applied to every chat request.
    #[serde(default)]
    pub quirks: Vec<ChatQuirk>,
    /// The server's context size (`n_ctx`); 0 = the model's window. A prompt
    /// above it is refused with 400; a prompt that fits has its `max_tokens`
    /// cut to what is left, as llama.cpp does.
    #[serde(default)]
    pub context_window: u64,
}

/// An error on the Chat wire: `{"error":{"message","type","code"}}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ChatError {
    pub(crate) status: u16,
    pub(crate) kind: &'static str,
    pub(crate) message: String,
}

impl ChatError {
    pub(crate) fn new(status: u16, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(400, "invalid_request_error", message)
    }

    pub(crate) fn body(&self) -> Value {
        json!({"error": {"message": self.message, "type": self.kind, "code": self.status}})
    }
}

/// Refuses what the active quirks refuse, as those servers do.
pub(crate) fn check_quirks(body: &Value, quirks: &[ChatQuirk]) -> Result<(), ChatError> {
    let streamed = body.get("stream").and_then(Value::as_bool) == Some(true);
    if quirks.contains(&ChatQuirk::RefuseRequired)
        && !(streamed && quirks.contains(&ChatQuirk::StreamsOnlyNamedToolCalls))
        && body.get("tool_choice").and_then(Value::as_str) == Some("required")
        && body
            .get("tools")
            .and_then(Value::as_array)
            .is_some_and(|t| !t.is_empty())
    {
        // llama-cpp-python's handler fails inside and answers an empty 500.
        return Err(ChatError::new(500, "internal_server_error", ""));
    }
    if quirks.contains(&ChatQuirk::RefuseNullContent)
        && let Some(messages) = body.get("messages").and_then(Value::as_array)
    {
        for (i, m) in messages.iter().enumerate() {
            if m.get("content").is_some_and(Value::is_null) {
                return Err(ChatError::new(
                    500,
                    "internal_server_error",
                    format!(
                        "[{{'type': 'string_type', 'loc': ('body', 'messages', {i}, 'content'), \
                         'msg': 'Input should be a valid string', 'input': None}}]"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// What the translation keeps besides the Messages body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ChatMeta {
    /// `max_tokens` (or `max_completion_tokens`) as sent; `None` = unset.
    pub(crate) max_tokens: Option<u64>,
    /// `"stream": true`: the answer goes out as `chat.completion.chunk` frames.
    pub(crate) stream: bool,
}

/// Chat Completions body -> the Messages body it means.
pub(crate) fn to_messages_body(body: &Value) -> Result<(Value, ChatMeta), ChatError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ChatError::invalid("The request body must be a JSON object"))?;
    let stream = obj.get("stream").and_then(Value::as_bool) == Some(true);
    let model = obj
        .get("model")
        .and_then(Value::as_str)
        .ok_or_else(|| ChatError::invalid("model: Field required"))?;
    let max_tokens = match obj
        .get("max_completion_tokens")
        .or_else(|| obj.get("max_tokens"))
    {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .ok_or_else(|| ChatError::invalid("max_tokens: Input should be a valid integer"))?,
        ),
    };
    let raw = obj
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| ChatError::invalid("messages: Input should be a valid list"))?;
    let mut system = Vec::new();
    let mut messages: Vec<Value> = Vec::new();
    for (i, m) in raw.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
        let text = content_text(m.get("content"), i)?;
        match role {
            "system" | "developer" => system.extend(text),
            "user" => push_blocks(
                &mut messages,
                "user",
                text.map(text_block).into_iter().collect(),
            ),
            "assistant" => {
                let mut blocks: Vec<Value> = text.map(text_block).into_iter().collect();
                for call in m
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    blocks.push(tool_use_block(call, i)?);
                }
                push_blocks(&mut messages, "assistant", blocks);
            }
            "tool" => {
                let id = m
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        ChatError::invalid(format!("messages.{i}.tool_call_id: Field required"))
                    })?;
                let result = json!({"type": "tool_result", "tool_use_id": id,
                                    "content": text.unwrap_or_default()});
                push_blocks(&mut messages, "user", vec![result]);
            }
            other => {
                return Err(ChatError::invalid(format!(
                    "messages.{i}.role: unknown role {other:?}"
                )));
            }
        }
    }
    let tools: Vec<Value> = obj
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|t| {
            let f = t.get("function").cloned().unwrap_or(Value::Null);
            let mut tool = Map::new();
            tool.insert("name".into(), f.get("name").cloned().unwrap_or(Value::Null));
            if let Some(d) = f.get("description") {
                tool.insert("description".into(), d.clone());
            }
            let schema = f
                .get("parameters")
                .cloned()
                .unwrap_or_else(|| json!({"type": "object"}));
            tool.insert("input_schema".into(), schema);
            Value::Object(tool)
        })
        .collect();
    let mut out = Map::new();
    out.insert("model".into(), Value::from(model));
    out.insert("max_tokens".into(), Value::from(max_tokens.unwrap_or(1024)));
    if !system.is_empty() {
        out.insert("system".into(), Value::from(system.join("\n\n")));
    }
    out.insert("messages".into(), Value::Array(messages));
    if !tools.is_empty() {
        let choice = match obj.get("tool_choice") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => match s.as_str() {
                "auto" => Some(json!({"type": "auto"})),
                "required" => Some(json!({"type": "any"})),
                "none" => Some(json!({"type": "none"})),
                other => {
                    return Err(ChatError::invalid(format!(
                        "tool_choice: unknown value {other:?}"
                    )));
                }
            },
            Some(v) => {
                let name = v.pointer("/function/name").and_then(Value::as_str).ok_or_else(
                    || ChatError::invalid("tool_choice: expected {\"type\":\"function\",\"function\":{\"name\":...}}"),
                )?;
                Some(json!({"type": "tool", "name": name}))
            }
        };
        out.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = choice {
            out.insert("tool_choice".into(), choice);
        }
    }
    Ok((Value::Object(out), ChatMeta { max_tokens, stream }))
}

/// A message's `content`: a string, parts with text, or nothing.
fn content_text(content: Option<&Value>, i: usize) -> Result<Option<String>, ChatError> {
    match content {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Array(parts)) => {
            let texts: Vec<&str> = parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect();
            Ok((!texts.is_empty()).then(|| texts.join("\n")))
        }
        Some(_) => Err(ChatError::invalid(format!(
            "messages.{i}.content: Input should be a valid string"
        ))),
    }
}

fn text_block(text: String) -> Value {
    json!({"type": "text", "text": text})
}

/// A `tool_calls` entry -> a `tool_use` block (arguments as a string or an object).
fn tool_use_block(call: &Value, i: usize) -> Result<Value, ChatError> {
    let at = format!("messages.{i}.tool_calls");
    let id = call.get("id").and_then(Value::as_str).unwrap_or("call_0");
    let name = call
        .pointer("/function/name")
        .and_then(Value::as_str)
        .ok_or_else(|| ChatError::invalid(format!("{at}.function.name: Field required")))?;
    let input = match call.pointer("/function/arguments") {
        Some(Value::String(s)) if s.trim().is_empty() => json!({}),
        Some(Value::String(s)) => serde_json::from_str(s).map_err(|e| {
            ChatError::invalid(format!("{at}.function.arguments: invalid JSON ({e})"))
        })?,
        Some(v @ Value::Object(_)) => v.clone(),
        _ => {
            return Err(ChatError::invalid(format!(
                "{at}.function.arguments: Field required"
            )));
        }
    };
    Ok(json!({"type": "tool_use", "id": id, "name": name, "input": input}))
}

/// Appends `blocks` as a `role` message, merging with a previous message of
/// the same role (consecutive `tool` messages become one user turn).
fn push_blocks(messages: &mut Vec<Value>, role: &str, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    if let Some(last) = messages.last_mut()
        && last.get("role").and_then(Value::as_str) == Some(role)
        && let Some(content) = last.get_mut("content").and_then(Value::as_array_mut)
    {
        content.extend(blocks);
        return;
    }
    messages.push(json!({"role": role, "content": blocks}));
}

/// Quirk names from the `x-sim-quirks` header.
pub(crate) fn parse_quirk_list(header: &str) -> Result<Vec<ChatQuirk>, String> {
    header
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect()
}
