//! Messages requests as the sim understands them: the parsed types every
//! other module reads ([`ParsedRequest`], [`Msg`], ...), and
//! [`parse_request`], which validates a body the way the API does.
//!
//! The request is inspected as `serde_json::Value` so that anything a client
//! sends, well-formed or not, reaches these checks and gets the API's answer.
//! [`parse`] walks the top-level fields in the API's order; the rules for each
//! part live beside it: [`cache_control`] (breakpoints and TTL order),
//! [`tools`] (tool definitions and `tool_choice`), [`content`] (messages,
//! blocks and tool-use pairing) and [`options`] (thinking, effort, sampling,
//! stop sequences, metadata).

mod cache_control;
mod content;
mod options;
mod parse;
mod tools;

use serde_json::Value;

use crate::ids::sha256_hex;
use crate::tokens;
pub(crate) use parse::parse_request;

/// Which endpoint the request body belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// `POST /v1/messages`.
    Messages,
    /// `POST /v1/messages/count_tokens`.
    CountTokens,
    /// One `params` of `POST /v1/messages/batches`.
    Batch,
}

/// A cache breakpoint's TTL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ttl {
    FiveMinutes,
    OneHour,
}

impl Ttl {
    pub(crate) fn millis(self) -> u64 {
        match self {
            Ttl::FiveMinutes => 5 * 60 * 1000,
            Ttl::OneHour => 60 * 60 * 1000,
        }
    }
}

/// Who speaks a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MsgRole {
    User,
    Assistant,
}

impl MsgRole {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            MsgRole::User => "user",
            MsgRole::Assistant => "assistant",
        }
    }
}

/// One message with its content normalised to blocks.
#[derive(Clone, Debug)]
pub(crate) struct Msg {
    pub(crate) role: MsgRole,
    pub(crate) blocks: Vec<Value>,
}

impl Msg {
    /// Concatenated text of the text blocks, joined by newlines.
    pub(crate) fn text(&self) -> String {
        let parts: Vec<&str> = self
            .blocks
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect();
        parts.join("\n")
    }

    pub(crate) fn is_tool_result_turn(&self) -> bool {
        self.role == MsgRole::User
            && self
                .blocks
                .iter()
                .any(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
    }
}

/// `thinking` as requested.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ThinkingReq {
    Off,
    Enabled { display_omitted: bool },
    Adaptive { display_omitted: bool },
}

impl ThinkingReq {
    pub(crate) fn is_on(self) -> bool {
        !matches!(self, ThinkingReq::Off)
    }
}

/// `tool_choice` as requested.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ToolChoice {
    Auto,
    Any,
    Tool(String),
    None,
}

/// A validated request.
#[derive(Clone, Debug)]
pub(crate) struct ParsedRequest {
    /// Model id as sent (may be an alias).
    pub(crate) model: String,
    /// 0 for count_tokens.
    pub(crate) max_tokens: u64,
    pub(crate) stream: bool,
    /// System text blocks (`{"type":"text","text":..,"cache_control"?}`).
    pub(crate) system: Vec<Value>,
    pub(crate) tools: Vec<Value>,
    pub(crate) tool_choice: Option<ToolChoice>,
    pub(crate) messages: Vec<Msg>,
    /// `output_config.effort`, when sent.
    pub(crate) effort: Option<String>,
    pub(crate) thinking: ThinkingReq,
    pub(crate) stop_sequences: Vec<String>,
    /// Top-level (automatic) cache_control.
    pub(crate) top_cache_control: Option<Ttl>,
    /// Total input tokens by the sim's convention, counted once at parse.
    input_tokens: u64,
}

impl ParsedRequest {
    pub(crate) fn tool_names(&self) -> Vec<&str> {
        self.tools
            .iter()
            .filter_map(|t| t.get("name").and_then(Value::as_str))
            .collect()
    }

    pub(crate) fn has_tool(&self, name: &str) -> bool {
        self.tool_names().contains(&name)
    }

    /// Total input tokens by the sim's convention.
    pub(crate) fn input_tokens(&self) -> u64 {
        self.input_tokens
    }
}

/// Input tokens of a request's tools, system and messages, by the sim's
/// convention ([`tokens`]); [`parse_request`] counts them once.
fn count_input_tokens(tools: &[Value], system: &[Value], messages: &[Msg]) -> u64 {
    let tools: u64 = tools.iter().map(tokens::tool_tokens).sum();
    let system: u64 = system.iter().map(tokens::block_tokens).sum();
    let messages: u64 = messages
        .iter()
        .flat_map(|m| m.blocks.iter())
        .map(tokens::block_tokens)
        .sum();
    tools + system + messages
}

/// The signature the sim attaches to (and expects back on) thinking blocks.
pub(crate) fn thinking_signature(secret: &str, thinking: &str) -> String {
    let digest = sha256_hex(format!("{secret}\u{0}{thinking}").as_bytes());
    format!("Es{}", &digest[..48])
}
