//! OpenAI-compatible Chat Completions (llama.cpp, vLLM, Ollama, gateways),
//! behind the same [`ModelProvider`] trait.
//!
//! The Chat format is its own wire adapter (reference section 8): system
//! blocks become one `system` message, `tool_result` blocks become `role:
//! "tool"` messages placed before the user's text, tool-call `arguments` is
//! a JSON *string*, and `prompt_tokens` includes the cached tokens. Thinking
//! blocks are not sent (the format has no place for them); `thinking` config
//! is dropped and `output_config.effort` maps to `reasoning_effort`.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::Method;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::key::ApiKey;
use crate::retry::{self, RetryPolicy};
use crate::types::{
    ContentBlock, MessageRequest, MessageResponse, MessageRole, ModelReply, StopReason, ToolChoice,
    Usage,
};
use crate::{ModelProvider, http};

/// Header carrying the request id.
const REQUEST_ID: &str = "x-request-id";

/// How to reach a Chat Completions server.
#[derive(Clone, Debug)]
pub struct OpenAiSettings {
    /// Base URL *including* `/v1`, e.g. `http://127.0.0.1:8080/v1`.
    pub base_url: String,
    /// Sent as `Authorization: Bearer`; local servers often need none.
    pub api_key: Option<ApiKey>,
    /// Whole-request timeout.
    pub timeout: Duration,
    /// TCP/TLS connect timeout.
    pub connect_timeout: Duration,
    /// Retry budgets (same policy as the Anthropic client).
    pub retry: RetryPolicy,
}

impl OpenAiSettings {
    /// 600 s timeout, 5 s connect, [`RetryPolicy::default`].
    pub fn new(base_url: impl Into<String>, api_key: Option<ApiKey>) -> Self {
        Self {
            base_url: base_url.into(),
            api_key,
            timeout: Duration::from_secs(600),
            connect_timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
        }
    }
}

/// Client for `POST {base}/chat/completions` (non-streaming).
#[derive(Clone, Debug)]
pub struct OpenAiClient {
    http: reqwest::Client,
    url: String,
    /// `Bearer ...`, marked sensitive.
    auth_header: Option<HeaderValue>,
    settings: OpenAiSettings,
}

impl OpenAiClient {
    /// Builds the client.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a bad base URL or key.
    pub fn new(settings: OpenAiSettings) -> Result<Self> {
        let base = http::parse_base_url(&settings.base_url)?;
        let auth_header = match &settings.api_key {
            Some(key) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {}", key.expose()))
                    .map_err(|_| Error::InvalidConfig {
                        message: "API key contains characters not allowed in an HTTP header".into(),
                    })?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        let http = http::build_client(settings.timeout, settings.connect_timeout)?;
        Ok(Self {
            http,
            url: format!("{base}/chat/completions"),
            auth_header,
            settings,
        })
    }

    /// The settings this client was built with.
    pub fn settings(&self) -> &OpenAiSettings {
        &self.settings
    }

    /// Sends `request` as a Chat Completion and converts the answer back.
    ///
    /// # Errors
    /// Any [`Error`]; [`Error::Decode`] for a response without choices.
    #[tracing::instrument(skip_all, fields(model = %request.model))]
    pub async fn chat(&self, request: &MessageRequest) -> Result<ModelReply> {
        let body = http::to_body(&to_chat_request(request))?;
        let ((response, headers), stats) =
            retry::run(&self.settings.retry, "chat_completions", |n| {
                let body = body.clone();
                async move {
                    let mut rb = self
                        .http
                        .request(Method::POST, &self.url)
                        .header(CONTENT_TYPE, "application/json")
                        .header(ACCEPT, "application/json")
                        .header("x-stainless-retry-count", n)
                        .timeout(self.settings.timeout)
                        .body(body);
                    if let Some(auth) = &self.auth_header {
                        rb = rb.header(AUTHORIZATION, auth.clone());
                    }
                    let response = http::execute(rb, REQUEST_ID).await?;
                    let headers = response.headers().clone();
                    let body = http::read_body(response).await?;
                    let parsed: ChatResponse =
                        serde_json::from_slice(&body).map_err(|e| Error::decode(e, &body))?;
                    if parsed.choices.is_empty() {
                        return Err(Error::decode("response has no choices", &body));
                    }
                    Ok((parsed, headers))
                }
            })
            .await?;
        Ok(ModelReply {
            message: from_chat_response(response, &request.model),
            request_id: http::request_id(&headers, REQUEST_ID),
            rate_limits: http::openai_rate_limits(&headers),
            retries: stats.retries,
            overload_retries: stats.overload_retries,
        })
    }
}

#[async_trait]
impl ModelProvider for OpenAiClient {
    async fn send(&self, request: &MessageRequest) -> Result<ModelReply> {
        self.chat(request).await
    }

    fn name(&self) -> &str {
        "openai"
    }
}

// ---- wire types ----

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
    stream: bool,
}

#[derive(Debug, Serialize)]
struct ChatMessage {
    role: &'static str,
    /// `null` for an assistant turn made only of tool calls.
    content: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ChatToolCall>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<String>,
}

impl ChatMessage {
    fn new(role: &'static str, content: Option<String>) -> Self {
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
    parameters: Value,
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
    /// A JSON document in a string.
    #[serde(default)]
    arguments: String,
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

// ---- conversion ----

fn join_texts<'a>(texts: impl Iterator<Item = &'a str>) -> Option<String> {
    let parts: Vec<&str> = texts.collect();
    (!parts.is_empty()).then(|| parts.join("\n\n"))
}

/// Anthropic-shaped request -> Chat Completions request.
pub(crate) fn to_chat_request(request: &MessageRequest) -> ChatRequest {
    let mut messages = Vec::new();
    if let Some(system) = join_texts(request.system.iter().map(|b| b.text.as_str())) {
        messages.push(ChatMessage::new("system", Some(system)));
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
                            ..ChatMessage::new("tool", Some(content))
                        });
                    }
                }
                if let Some(text) = join_texts(message.content.iter().filter_map(|b| match b {
                    ContentBlock::Text { text, .. } => Some(text.as_str()),
                    _ => None,
                })) {
                    messages.push(ChatMessage::new("user", Some(text)));
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
                        ..ChatMessage::new("assistant", text)
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
    let tool_choice = request.tool_choice.as_ref().map(|c| match c {
        ToolChoice::Auto => Value::from("auto"),
        ToolChoice::Any => Value::from("required"),
        ToolChoice::None => Value::from("none"),
        ToolChoice::Tool { name } => {
            serde_json::json!({"type": "function", "function": {"name": name}})
        }
    });
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
        stream: false,
    }
}

/// Chat Completions response -> Anthropic-shaped message. The caller
/// guarantees at least one choice.
pub(crate) fn from_chat_response(response: ChatResponse, requested_model: &str) -> MessageResponse {
    let mut content = Vec::new();
    let mut finish_reason = None;
    let mut has_tool_calls = false;
    if let Some(choice) = response.choices.into_iter().next() {
        finish_reason = choice.finish_reason;
        let message = choice.message;
        if let Some(text) = message
            .content
            .filter(|t| !t.is_empty())
            .or(message.refusal)
        {
            content.push(ContentBlock::text(text));
        }
        for (i, call) in message
            .tool_calls
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            has_tool_calls = true;
            let input = if call.function.arguments.trim().is_empty() {
                Value::Object(Default::default())
            } else {
                serde_json::from_str(&call.function.arguments).unwrap_or_else(|e| {
                    tracing::warn!(tool = %call.function.name, error = %e, "tool arguments are not JSON; keeping input = null");
                    Value::Null
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
    let stop_reason = finish_reason.map(|r| match r.as_str() {
        "tool_calls" | "function_call" => StopReason::ToolUse,
        "length" => StopReason::MaxTokens,
        // Some servers say "stop" even when they called a tool.
        "stop" if has_tool_calls => StopReason::ToolUse,
        "stop" => StopReason::EndTurn,
        "content_filter" => StopReason::Refusal,
        _ => StopReason::Other,
    });
    let usage = response.usage.unwrap_or_default();
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
                input_schema: json!({"type":"object"}),
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
        let wire = serde_json::to_value(to_chat_request(&request)).unwrap();
        assert_eq!(
            wire,
            json!({
                "model": "qwen",
                "messages": [
                    {"role": "system", "content": "role\n\nprefix"},
                    {"role": "user", "content": "go"},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "t1", "type": "function", "function": {"name": "read_file", "arguments": "{\"path\":\"a\"}"}}
                    ]},
                    {"role": "tool", "content": "ERROR: nope", "tool_call_id": "t1"},
                    {"role": "user", "content": "continue"}
                ],
                "tools": [{"type": "function", "function": {"name": "read_file", "description": "read", "parameters": {"type": "object"}}}],
                "tool_choice": {"type": "function", "function": {"name": "read_file"}},
                "max_tokens": 100,
                "reasoning_effort": "high",
                "stream": false
            })
        );
    }

    #[test]
    fn response_conversion_handles_stop_with_tools_and_bad_arguments() {
        let response: ChatResponse = serde_json::from_value(json!({
            "choices": [{"finish_reason": "stop", "message": {"content": "", "tool_calls": [
                {"function": {"name": "grep", "arguments": "{\"pattern\": "}}
            ]}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 3}
        }))
        .unwrap();
        let message = from_chat_response(response, "local");
        assert_eq!(message.model, "local");
        assert_eq!(message.stop_reason, Some(StopReason::ToolUse));
        assert_eq!(
            message.content,
            vec![ContentBlock::ToolUse {
                id: "call_0".into(),
                name: "grep".into(),
                input: Value::Null
            }]
        );
        assert_eq!(message.usage.input_tokens, 10);
    }
}
