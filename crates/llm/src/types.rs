//! Anthropic Messages wire types, hand-written serde.
//!
//! These are the request and response shapes of `POST /v1/messages` (see
//! `shared/reference/anthropic-and-openai-wire-formats.md`). The provider trait
//! speaks them; the OpenAI-compatible client converts to and from them.
//! Unknown content-block types deserialize into [`ContentBlock::Unknown`] so a
//! new block type never breaks parsing.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `cache_control: {"type":"ephemeral","ttl":...}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheControl {
    /// Always `"ephemeral"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `"5m"` (default when absent) or `"1h"`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ttl: Option<String>,
}

impl CacheControl {
    /// A 5-minute breakpoint.
    pub fn ephemeral() -> Self {
        Self {
            kind: "ephemeral".into(),
            ttl: None,
        }
    }
}

/// One block of the `system` array.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SystemBlock {
    /// Always `"text"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The text.
    pub text: String,
    /// Optional cache breakpoint at the end of this block.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cache_control: Option<CacheControl>,
}

impl SystemBlock {
    /// A plain text block.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            kind: "text".into(),
            text: text.into(),
            cache_control: None,
        }
    }
}

/// A client tool definition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolDefinition {
    /// Tool name.
    pub name: String,
    /// What it does.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub description: Option<String>,
    /// JSON Schema of the input object. Shared: a tool set built once is
    /// sent with every request without copying its schemas.
    pub input_schema: Arc<Value>,
    /// Optional cache breakpoint.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cache_control: Option<CacheControl>,
}

/// `tool_choice`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToolChoice {
    /// The model decides.
    Auto,
    /// The model must call some tool.
    Any,
    /// The model must call this tool.
    Tool {
        /// Tool name.
        name: String,
    },
    /// No tools.
    None,
}

/// `thinking`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ThinkingConfig {
    /// Extended thinking with a budget (1024 <= budget < max_tokens).
    Enabled {
        /// Thinking budget.
        budget_tokens: u32,
    },
    /// Adaptive thinking.
    Adaptive,
    /// Explicitly off.
    Disabled,
}

/// `output_config`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputConfig {
    /// `low | medium | high | xhigh | max`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub effort: Option<String>,
}

/// Message role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageRole {
    /// The caller.
    User,
    /// The model.
    Assistant,
}

/// A content block, in requests and responses.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    /// Text.
    Text {
        /// The text.
        text: String,
        /// Optional cache breakpoint.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        cache_control: Option<CacheControl>,
    },
    /// The model calls a tool.
    ToolUse {
        /// `toolu_...`.
        id: String,
        /// Tool name.
        name: String,
        /// Tool input (an object when well-formed).
        input: Value,
    },
    /// The caller answers a tool call.
    ToolResult {
        /// The `tool_use` id answered.
        tool_use_id: String,
        /// Result text.
        content: String,
        /// Whether the tool failed.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        is_error: bool,
    },
    /// Extended thinking (echo back unchanged).
    Thinking {
        /// The thinking text.
        thinking: String,
        /// Signature.
        signature: String,
    },
    /// Redacted thinking (echo back unchanged).
    RedactedThinking {
        /// Opaque data.
        data: String,
    },
    /// Any block type this client does not know.
    #[serde(other)]
    Unknown,
}

impl ContentBlock {
    /// A text block without cache control.
    pub fn text(text: impl Into<String>) -> Self {
        ContentBlock::Text {
            text: text.into(),
            cache_control: None,
        }
    }
}

/// One turn.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who speaks.
    pub role: MessageRole,
    /// What they say.
    pub content: Vec<ContentBlock>,
}

/// `POST /v1/messages` body (non-streaming; the client sets `stream`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessageRequest {
    /// Model id.
    pub model: String,
    /// Output cap.
    pub max_tokens: u32,
    /// System blocks (role instructions, then the shared prefix).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub system: Vec<SystemBlock>,
    /// Tools.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub tools: Vec<ToolDefinition>,
    /// Tool choice.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tool_choice: Option<ToolChoice>,
    /// The conversation.
    pub messages: Vec<Message>,
    /// Thinking, only for models that support it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub thinking: Option<ThinkingConfig>,
    /// Effort, only for models that support it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub output_config: Option<OutputConfig>,
    /// Streaming flag (set by the client, not the caller).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub stream: Option<bool>,
}

/// Why the model stopped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// Natural end.
    EndTurn,
    /// Hit `max_tokens` (a tool call may be truncated).
    MaxTokens,
    /// A stop sequence matched.
    StopSequence,
    /// The model called a tool.
    ToolUse,
    /// A server tool turn paused.
    PauseTurn,
    /// The model refused.
    Refusal,
    /// Context window exceeded.
    ModelContextWindowExceeded,
    /// A value this client does not know.
    #[serde(other)]
    Other,
}

/// Cache writes split by TTL.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheCreation {
    /// Tokens written with 5-minute TTL.
    #[serde(default)]
    pub ephemeral_5m_input_tokens: u64,
    /// Tokens written with 1-hour TTL.
    #[serde(default)]
    pub ephemeral_1h_input_tokens: u64,
}

/// Token usage. Total prompt = input + cache_creation + cache_read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Uncached input tokens.
    #[serde(default)]
    pub input_tokens: u64,
    /// Output tokens, thinking included.
    #[serde(default)]
    pub output_tokens: u64,
    /// Tokens written to cache.
    #[serde(default)]
    pub cache_creation_input_tokens: u64,
    /// Tokens read from cache.
    #[serde(default)]
    pub cache_read_input_tokens: u64,
    /// Split of cache writes by TTL, when the server reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation: Option<CacheCreation>,
}

/// A complete model response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessageResponse {
    /// `msg_...`.
    pub id: String,
    /// Model that answered.
    pub model: String,
    /// Content blocks.
    pub content: Vec<ContentBlock>,
    /// Why it stopped.
    pub stop_reason: Option<StopReason>,
    /// Usage.
    pub usage: Usage,
}

/// Snapshot of `anthropic-ratelimit-*` headers, for the scheduler.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimitSnapshot {
    /// `anthropic-ratelimit-requests-limit`.
    pub requests_limit: Option<u64>,
    /// `anthropic-ratelimit-requests-remaining`.
    pub requests_remaining: Option<u64>,
    /// `anthropic-ratelimit-requests-reset` (RFC 3339).
    pub requests_reset: Option<String>,
    /// `anthropic-ratelimit-tokens-limit`.
    pub tokens_limit: Option<u64>,
    /// `anthropic-ratelimit-tokens-remaining`.
    pub tokens_remaining: Option<u64>,
    /// `anthropic-ratelimit-tokens-reset` (RFC 3339).
    pub tokens_reset: Option<String>,
    /// `anthropic-ratelimit-input-tokens-limit`.
    #[serde(default)]
    pub input_tokens_limit: Option<u64>,
    /// `anthropic-ratelimit-input-tokens-remaining`.
    #[serde(default)]
    pub input_tokens_remaining: Option<u64>,
    /// `anthropic-ratelimit-input-tokens-reset` (RFC 3339).
    #[serde(default)]
    pub input_tokens_reset: Option<String>,
    /// `anthropic-ratelimit-output-tokens-limit`.
    #[serde(default)]
    pub output_tokens_limit: Option<u64>,
    /// `anthropic-ratelimit-output-tokens-remaining`.
    #[serde(default)]
    pub output_tokens_remaining: Option<u64>,
    /// `anthropic-ratelimit-output-tokens-reset` (RFC 3339).
    #[serde(default)]
    pub output_tokens_reset: Option<String>,
}

/// A response plus transport metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelReply {
    /// The message.
    pub message: MessageResponse,
    /// `request-id` header.
    pub request_id: Option<String>,
    /// Rate-limit headers from the final (successful) response.
    pub rate_limits: RateLimitSnapshot,
    /// How many retries the client made before this reply.
    pub retries: u32,
    /// How many of those retries were for 429/529.
    pub overload_retries: u32,
}
