//! Parsing and validating Messages requests the way the API does.
//!
//! The request is inspected as `serde_json::Value` so that anything a client
//! sends, well-formed or not, reaches these checks and gets the API's answer.

use std::collections::HashSet;

use serde_json::{Map, Value, json};

use crate::api_error::ApiError;
use crate::ids::sha256_hex;
use crate::models::{ALL_EFFORTS, ModelSpec, ModelTable};
use crate::tokens;

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
    pub(crate) thinking: ThinkingReq,
    pub(crate) stop_sequences: Vec<String>,
    /// Top-level (automatic) cache_control.
    pub(crate) top_cache_control: Option<Ttl>,
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
        let tools: u64 = self.tools.iter().map(tokens::tool_tokens).sum();
        let system: u64 = self.system.iter().map(tokens::block_tokens).sum();
        let messages: u64 = self
            .messages
            .iter()
            .flat_map(|m| m.blocks.iter())
            .map(tokens::block_tokens)
            .sum();
        tools + system + messages
    }
}

/// The signature the sim attaches to (and expects back on) thinking blocks.
pub(crate) fn thinking_signature(secret: &str, thinking: &str) -> String {
    let digest = sha256_hex(format!("{secret}\u{0}{thinking}").as_bytes());
    format!("Es{}", &digest[..48])
}

const MESSAGE_FIELDS: &[&str] = &[
    "model",
    "max_tokens",
    "messages",
    "system",
    "tools",
    "tool_choice",
    "temperature",
    "top_p",
    "top_k",
    "stop_sequences",
    "stream",
    "metadata",
    "thinking",
    "output_config",
    "cache_control",
    "service_tier",
    "inference_geo",
    "container",
    "context_management",
    "mcp_servers",
];

const COUNT_FIELDS: &[&str] = &[
    "model",
    "messages",
    "system",
    "tools",
    "tool_choice",
    "thinking",
    "output_config",
    "cache_control",
    "context_management",
    "mcp_servers",
];

const TOOL_FIELDS: &[&str] = &[
    "name",
    "description",
    "input_schema",
    "cache_control",
    "type",
    "strict",
    "input_examples",
    "defer_loading",
    "eager_input_streaming",
    "allowed_callers",
];

const BLOCK_TYPES: &[&str] = &[
    "text",
    "image",
    "document",
    "search_result",
    "tool_result",
    "tool_use",
    "thinking",
    "redacted_thinking",
    "server_tool_use",
    "web_search_tool_result",
    "web_fetch_tool_result",
    "code_execution_tool_result",
    "container_upload",
];

/// Running state of the cache_control checks (count and TTL order).
#[derive(Default)]
struct Breakpoints {
    count: usize,
    seen_5m: bool,
}

impl Breakpoints {
    fn check(&mut self, at: &str, cc: Option<&Value>) -> Result<Option<Ttl>, ApiError> {
        let Some(cc) = cc else { return Ok(None) };
        if cc.is_null() {
            return Ok(None);
        }
        let obj = cc.as_object().ok_or_else(|| {
            ApiError::invalid(format!("{at}.cache_control: Input should be an object"))
        })?;
        if obj.get("type").and_then(Value::as_str) != Some("ephemeral") {
            return Err(ApiError::invalid(format!(
                "{at}.cache_control.type: Input should be 'ephemeral'"
            )));
        }
        for key in obj.keys() {
            if key != "type" && key != "ttl" {
                return Err(ApiError::invalid(format!(
                    "{at}.cache_control.{key}: Extra inputs are not permitted"
                )));
            }
        }
        let ttl = match obj.get("ttl") {
            None | Some(Value::Null) => Ttl::FiveMinutes,
            Some(Value::String(s)) if s == "5m" => Ttl::FiveMinutes,
            Some(Value::String(s)) if s == "1h" => Ttl::OneHour,
            Some(_) => {
                return Err(ApiError::invalid(format!(
                    "{at}.cache_control.ttl: Input should be '5m' or '1h'"
                )));
            }
        };
        match ttl {
            Ttl::FiveMinutes => self.seen_5m = true,
            Ttl::OneHour if self.seen_5m => {
                return Err(ApiError::invalid(
                    "a ttl='1h' cache_control block must not come after a ttl='5m' cache_control \
                     block. Note that blocks are processed in the following order: `tools`, \
                     `system`, `messages`.",
                ));
            }
            Ttl::OneHour => {}
        }
        self.count += 1;
        Ok(Some(ttl))
    }
}

/// Validates `body` for `purpose` and returns the parsed request and its model.
pub(crate) fn parse_request<'m>(
    body: &Value,
    models: &'m ModelTable,
    purpose: Purpose,
    secret: &str,
) -> Result<(ParsedRequest, &'m ModelSpec), ApiError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ApiError::invalid("The request body must be a JSON object"))?;
    let allowed = if purpose == Purpose::CountTokens {
        COUNT_FIELDS
    } else {
        MESSAGE_FIELDS
    };
    for key in obj.keys() {
        if !allowed.contains(&key.as_str()) {
            return Err(ApiError::invalid(format!(
                "{key}: Extra inputs are not permitted"
            )));
        }
    }

    let model_id = match obj.get("model") {
        None | Some(Value::Null) => return Err(ApiError::invalid("model: Field required")),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(ApiError::invalid("model: Input should be a valid string")),
    };
    let model = models
        .get(&model_id)
        .ok_or_else(|| ApiError::not_found(format!("model: {model_id}")))?;

    let max_tokens = if purpose == Purpose::CountTokens {
        0
    } else {
        match obj.get("max_tokens") {
            None | Some(Value::Null) => {
                return Err(ApiError::invalid("max_tokens: Field required"));
            }
            Some(v) => {
                if v.as_i64().is_some_and(|n| n < 0) {
                    return Err(ApiError::invalid(
                        "max_tokens: Input should be greater than or equal to 0",
                    ));
                }
                v.as_u64().ok_or_else(|| {
                    ApiError::invalid("max_tokens: Input should be a valid integer")
                })?
            }
        }
    };
    if max_tokens > model.max_output_tokens {
        return Err(ApiError::invalid(format!(
            "max_tokens: {max_tokens} > {}, which is the maximum allowed number of output tokens \
             for {model_id}",
            model.max_output_tokens
        )));
    }

    let stream = match obj.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ApiError::invalid("stream: Input should be a valid boolean")),
    };
    if purpose == Purpose::Batch && stream {
        return Err(ApiError::invalid(
            "stream: streaming is not supported in Message Batches",
        ));
    }
    if purpose == Purpose::Batch && max_tokens == 0 {
        return Err(ApiError::invalid(
            "max_tokens: must be greater than 0 in Message Batches",
        ));
    }
    if stream && max_tokens == 0 {
        return Err(ApiError::invalid(
            "max_tokens: must be greater than 0 when `stream` is true",
        ));
    }

    let mut bps = Breakpoints::default();

    // tools
    let tools = match obj.get("tools") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.clone(),
        Some(_) => return Err(ApiError::invalid("tools: Input should be a valid list")),
    };
    let mut names = HashSet::new();
    for (i, tool) in tools.iter().enumerate() {
        validate_tool(i, tool, &mut bps)?;
        let name = tool.get("name").and_then(Value::as_str).unwrap_or_default();
        if !names.insert(name.to_string()) {
            return Err(ApiError::invalid("tools: Tool names must be unique."));
        }
    }

    // system
    let system = match obj.get("system") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) if s.is_empty() => Vec::new(),
        Some(Value::String(s)) => vec![json!({"type": "text", "text": s})],
        Some(Value::Array(items)) => {
            for (i, block) in items.iter().enumerate() {
                let at = format!("system.{i}");
                let b = block.as_object().ok_or_else(|| {
                    ApiError::invalid(format!("{at}: Input should be a valid dictionary"))
                })?;
                if b.get("type").and_then(Value::as_str) != Some("text") {
                    return Err(ApiError::invalid(format!(
                        "{at}.type: Input should be 'text'"
                    )));
                }
                match b.get("text") {
                    Some(Value::String(t)) if !t.is_empty() => {}
                    Some(Value::String(_)) => {
                        return Err(ApiError::invalid(format!(
                            "{at}: text content blocks must be non-empty"
                        )));
                    }
                    _ => return Err(ApiError::invalid(format!("{at}.text: Field required"))),
                }
                bps.check(&at, b.get("cache_control"))?;
            }
            items.clone()
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "system: Input should be a valid string or list of text blocks",
            ));
        }
    };

    // messages
    let raw_messages = match obj.get("messages") {
        None | Some(Value::Null) => return Err(ApiError::invalid("messages: Field required")),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(ApiError::invalid("messages: Input should be a valid list")),
    };
    if raw_messages.is_empty() {
        return Err(ApiError::invalid(
            "messages: at least one message is required",
        ));
    }
    let mut messages = Vec::with_capacity(raw_messages.len());
    let last = raw_messages.len() - 1;
    for (i, m) in raw_messages.iter().enumerate() {
        messages.push(parse_message(i, i == last, m, &model_id, secret, &mut bps)?);
    }
    check_tool_pairing(&messages)?;

    // top-level cache_control (automatic caching)
    let top_cache_control = bps.check("cache_control", obj.get("cache_control"))?;
    if bps.count > 4 {
        return Err(ApiError::invalid(format!(
            "A maximum of 4 blocks with cache_control may be provided. Found {}.",
            bps.count
        )));
    }

    // tool_choice
    let tool_choice = match obj.get("tool_choice") {
        None | Some(Value::Null) => None,
        Some(Value::Object(tc)) => Some(parse_tool_choice(tc, &names)?),
        Some(_) => {
            return Err(ApiError::invalid(
                "tool_choice: Input should be a valid dictionary",
            ));
        }
    };
    if tools.is_empty()
        && matches!(
            tool_choice,
            Some(ToolChoice::Any | ToolChoice::Tool(_) | ToolChoice::Auto)
        )
    {
        return Err(ApiError::invalid(
            "tool_choice may only be specified while providing tools.",
        ));
    }
    let forced = matches!(tool_choice, Some(ToolChoice::Any | ToolChoice::Tool(_)));
    if forced && max_tokens == 0 && purpose != Purpose::CountTokens {
        return Err(ApiError::invalid(
            "max_tokens: must be greater than 0 when tool_choice forces tool use",
        ));
    }

    // thinking
    let thinking = parse_thinking(obj.get("thinking"), model, &model_id, max_tokens, purpose)?;
    if thinking.is_on() && forced {
        return Err(ApiError::invalid(
            "Thinking may not be enabled when tool_choice forces tool use.",
        ));
    }
    if matches!(thinking, ThinkingReq::Enabled { .. }) {
        check_thinking_continuation(&messages)?;
    }

    // output_config
    match obj.get("output_config") {
        None | Some(Value::Null) => {}
        Some(Value::Object(oc)) => validate_output_config(oc, model, &model_id)?,
        Some(_) => {
            return Err(ApiError::invalid(
                "output_config: Input should be a valid dictionary",
            ));
        }
    }

    // sampling parameters
    for key in ["temperature", "top_p", "top_k"] {
        let Some(v) = obj.get(key) else { continue };
        if v.is_null() {
            continue;
        }
        if !model.sampling_params {
            return Err(ApiError::invalid(format!(
                "{key}: `{key}` is not supported on {model_id}; remove temperature, top_p and top_k"
            )));
        }
        let n = v
            .as_f64()
            .ok_or_else(|| ApiError::invalid(format!("{key}: Input should be a valid number")))?;
        match key {
            "top_k" => {
                if v.as_u64().is_none() {
                    return Err(ApiError::invalid(
                        "top_k: Input should be a valid non-negative integer",
                    ));
                }
                if thinking.is_on() {
                    return Err(ApiError::invalid(
                        "top_k: cannot be set when thinking is enabled",
                    ));
                }
            }
            _ => {
                if !(0.0..=1.0).contains(&n) {
                    return Err(ApiError::invalid(format!(
                        "{key}: Input should be between 0 and 1"
                    )));
                }
                if key == "temperature" && thinking.is_on() && (n - 1.0).abs() > f64::EPSILON {
                    return Err(ApiError::invalid(
                        "temperature may only be set to 1 when thinking is enabled.",
                    ));
                }
                if key == "top_p" && thinking.is_on() && n < 0.95 {
                    return Err(ApiError::invalid(
                        "top_p must be between 0.95 and 1 when thinking is enabled.",
                    ));
                }
            }
        }
    }

    // stop_sequences
    let stop_sequences = match obj.get("stop_sequences") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            let mut out = Vec::new();
            for (i, s) in items.iter().enumerate() {
                let s = s.as_str().ok_or_else(|| {
                    ApiError::invalid(format!(
                        "stop_sequences.{i}: Input should be a valid string"
                    ))
                })?;
                if s.trim().is_empty() {
                    return Err(ApiError::invalid(
                        "stop_sequences: each stop sequence must contain non-whitespace",
                    ));
                }
                out.push(s.to_string());
            }
            out
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "stop_sequences: Input should be a valid list",
            ));
        }
    };

    // metadata
    match obj.get("metadata") {
        None | Some(Value::Null) => {}
        Some(Value::Object(md)) => {
            for (k, v) in md {
                if k != "user_id" {
                    return Err(ApiError::invalid(format!(
                        "metadata.{k}: Extra inputs are not permitted"
                    )));
                }
                if !(v.is_string() || v.is_null()) {
                    return Err(ApiError::invalid(
                        "metadata.user_id: Input should be a valid string",
                    ));
                }
            }
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "metadata: Input should be a valid dictionary",
            ));
        }
    }

    let parsed = ParsedRequest {
        model: model_id,
        max_tokens,
        stream,
        system,
        tools,
        tool_choice,
        messages,
        thinking,
        stop_sequences,
        top_cache_control,
    };
    let total = parsed.input_tokens();
    if total > model.context_window {
        return Err(ApiError::invalid(format!(
            "prompt is too long: {total} tokens > {} maximum",
            model.context_window
        )));
    }
    Ok((parsed, model))
}

fn validate_tool(i: usize, tool: &Value, bps: &mut Breakpoints) -> Result<(), ApiError> {
    let obj = tool.as_object().ok_or_else(|| {
        ApiError::invalid(format!("tools.{i}: Input should be a valid dictionary"))
    })?;
    let kind = obj.get("type").and_then(Value::as_str).unwrap_or("custom");
    let name = match obj.get("name") {
        Some(Value::String(s)) => s.as_str(),
        _ => return Err(ApiError::invalid(format!("tools.{i}.name: Field required"))),
    };
    if kind != "custom" {
        // A server tool (web_search_20250305, ...): shape is its own.
        return bps
            .check(&format!("tools.{i}"), obj.get("cache_control"))
            .map(|_| ());
    }
    let at = format!("tools.{i}.custom");
    for key in obj.keys() {
        if !TOOL_FIELDS.contains(&key.as_str()) {
            return Err(ApiError::invalid(format!(
                "{at}.{key}: Extra inputs are not permitted"
            )));
        }
    }
    let valid_name = !name.is_empty()
        && name.chars().count() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid_name {
        return Err(ApiError::invalid(format!(
            "{at}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'"
        )));
    }
    match obj.get("input_schema") {
        Some(Value::Object(schema)) => {
            if schema.get("type").and_then(Value::as_str) != Some("object") {
                return Err(ApiError::invalid(format!(
                    "{at}.input_schema.type: Input should be 'object'"
                )));
            }
        }
        _ => {
            return Err(ApiError::invalid(format!(
                "{at}.input_schema: Field required"
            )));
        }
    }
    bps.check(&format!("tools.{i}"), obj.get("cache_control"))?;
    Ok(())
}

fn parse_message(
    i: usize,
    is_last: bool,
    m: &Value,
    model_id: &str,
    secret: &str,
    bps: &mut Breakpoints,
) -> Result<Msg, ApiError> {
    let at = format!("messages.{i}");
    let obj = m
        .as_object()
        .ok_or_else(|| ApiError::invalid(format!("{at}: Input should be a valid dictionary")))?;
    for key in obj.keys() {
        if key != "role" && key != "content" {
            return Err(ApiError::invalid(format!(
                "{at}.{key}: Extra inputs are not permitted"
            )));
        }
    }
    let role = match obj.get("role").and_then(Value::as_str) {
        Some("user") => MsgRole::User,
        Some("assistant") => MsgRole::Assistant,
        Some("system") => {
            return Err(ApiError::invalid(format!(
                "{at}.role: the `system` role is not supported by {model_id}; use the top-level \
                 `system` parameter"
            )));
        }
        _ => {
            return Err(ApiError::invalid(format!(
                "{at}.role: Input should be 'user' or 'assistant'"
            )));
        }
    };
    let empty_err = || {
        ApiError::invalid(format!(
            "{at}: all messages must have non-empty content except for the optional final \
             assistant message"
        ))
    };
    let blocks = match obj.get("content") {
        None => return Err(ApiError::invalid(format!("{at}.content: Field required"))),
        Some(Value::String(s)) => {
            if s.is_empty() {
                if !(is_last && role == MsgRole::Assistant) {
                    return Err(empty_err());
                }
                Vec::new()
            } else {
                vec![json!({"type": "text", "text": s})]
            }
        }
        Some(Value::Array(items)) => {
            if items.is_empty() && !(is_last && role == MsgRole::Assistant) {
                return Err(empty_err());
            }
            for (j, block) in items.iter().enumerate() {
                validate_block(&format!("{at}.content.{j}"), role, block, secret, bps)?;
            }
            items.clone()
        }
        Some(_) => {
            return Err(ApiError::invalid(format!(
                "{at}.content: Input should be a valid string or list"
            )));
        }
    };
    Ok(Msg { role, blocks })
}

fn validate_block(
    at: &str,
    role: MsgRole,
    block: &Value,
    secret: &str,
    bps: &mut Breakpoints,
) -> Result<(), ApiError> {
    let obj = block
        .as_object()
        .ok_or_else(|| ApiError::invalid(format!("{at}: Input should be a valid dictionary")))?;
    let kind = obj
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::invalid(format!("{at}.type: Field required")))?;
    if !BLOCK_TYPES.contains(&kind) {
        return Err(ApiError::invalid(format!(
            "{at}.type: Input tag '{kind}' found using 'type' does not match any of the expected tags"
        )));
    }
    let needs_assistant = matches!(
        kind,
        "tool_use" | "thinking" | "redacted_thinking" | "server_tool_use"
    );
    if needs_assistant && role != MsgRole::Assistant {
        return Err(ApiError::invalid(format!(
            "{at}: `{kind}` blocks can only be in `assistant` messages"
        )));
    }
    if kind == "tool_result" && role != MsgRole::User {
        return Err(ApiError::invalid(format!(
            "{at}: `tool_result` blocks can only be in `user` messages"
        )));
    }
    let str_field = |key: &str| -> Result<&str, ApiError> {
        obj.get(key)
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::invalid(format!("{at}.{key}: Field required")))
    };
    match kind {
        "text" if str_field("text")?.is_empty() => {
            return Err(ApiError::invalid(format!(
                "{at}: text content blocks must be non-empty"
            )));
        }
        "tool_use" => {
            str_field("id")?;
            str_field("name")?;
            if !obj.get("input").is_some_and(Value::is_object) {
                return Err(ApiError::invalid(format!(
                    "{at}.input: Input should be a valid dictionary"
                )));
            }
        }
        "tool_result" => {
            str_field("tool_use_id")?;
            match obj.get("content") {
                None | Some(Value::Null) | Some(Value::String(_)) => {}
                Some(Value::Array(items)) => {
                    for (k, item) in items.iter().enumerate() {
                        let t = item.get("type").and_then(Value::as_str).unwrap_or("");
                        if !matches!(
                            t,
                            "text" | "image" | "document" | "search_result" | "tool_reference"
                        ) {
                            return Err(ApiError::invalid(format!(
                                "{at}.content.{k}.type: Input tag '{t}' found using 'type' does not match any of the expected tags"
                            )));
                        }
                    }
                }
                Some(_) => {
                    return Err(ApiError::invalid(format!(
                        "{at}.content: Input should be a valid string or list"
                    )));
                }
            }
            if let Some(e) = obj.get("is_error")
                && !(e.is_boolean() || e.is_null())
            {
                return Err(ApiError::invalid(format!(
                    "{at}.is_error: Input should be a valid boolean"
                )));
            }
        }
        "thinking" => {
            let thinking = str_field("thinking")?;
            let signature = str_field("signature")?;
            if signature != thinking_signature(secret, thinking) {
                return Err(ApiError::invalid(format!(
                    "{at}: Invalid `signature` in `thinking` block"
                )));
            }
            if obj.contains_key("cache_control") {
                return Err(ApiError::invalid(format!(
                    "{at}.thinking.cache_control: Extra inputs are not permitted"
                )));
            }
        }
        "redacted_thinking" => {
            str_field("data")?;
        }
        _ => {}
    }
    if kind != "thinking" {
        bps.check(at, obj.get("cache_control"))?;
    }
    Ok(())
}

fn block_ids<'a>(msg: &'a Msg, kind: &str, key: &str) -> Vec<&'a str> {
    msg.blocks
        .iter()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some(kind))
        .filter_map(|b| b.get(key).and_then(Value::as_str))
        .collect()
}

fn check_tool_pairing(messages: &[Msg]) -> Result<(), ApiError> {
    // Every tool_result must answer a tool_use of the previous (assistant) message.
    for (j, msg) in messages.iter().enumerate() {
        if msg.role != MsgRole::User {
            continue;
        }
        let prev_ids: Vec<&str> = match j.checked_sub(1).map(|p| &messages[p]) {
            Some(prev) if prev.role == MsgRole::Assistant => block_ids(prev, "tool_use", "id"),
            _ => Vec::new(),
        };
        let stray = msg.blocks.iter().enumerate().find_map(|(k, b)| {
            if b.get("type").and_then(Value::as_str) != Some("tool_result") {
                return None;
            }
            let id = b.get("tool_use_id").and_then(Value::as_str).unwrap_or("");
            (!prev_ids.contains(&id)).then_some((k, id))
        });
        if let Some((k, id)) = stray {
            return Err(ApiError::invalid(format!(
                "messages.{j}.content.{k}: unexpected `tool_use_id` found in `tool_result` \
                 blocks: {id}. Each `tool_result` block must have a corresponding `tool_use` \
                 block in the previous message."
            )));
        }
    }
    // Every tool_use (except in a final prefill) must be answered in the next message.
    for (j, msg) in messages.iter().enumerate() {
        if msg.role != MsgRole::Assistant || j + 1 == messages.len() {
            continue;
        }
        let uses = block_ids(msg, "tool_use", "id");
        if uses.is_empty() {
            continue;
        }
        let next = &messages[j + 1];
        let answered = if next.role == MsgRole::User {
            block_ids(next, "tool_result", "tool_use_id")
        } else {
            Vec::new()
        };
        let missing: Vec<&str> = uses
            .into_iter()
            .filter(|id| !answered.contains(id))
            .collect();
        if !missing.is_empty() {
            return Err(ApiError::invalid(format!(
                "messages.{j}: `tool_use` ids were found without `tool_result` blocks \
                 immediately after: {}. Each `tool_use` block must have a corresponding \
                 `tool_result` block in the next message.",
                missing.join(", ")
            )));
        }
    }
    Ok(())
}

fn parse_tool_choice(
    tc: &Map<String, Value>,
    names: &HashSet<String>,
) -> Result<ToolChoice, ApiError> {
    if let Some(v) = tc.get("disable_parallel_tool_use")
        && !v.is_boolean()
    {
        return Err(ApiError::invalid(
            "tool_choice.disable_parallel_tool_use: Input should be a valid boolean",
        ));
    }
    match tc.get("type").and_then(Value::as_str) {
        Some("auto") => Ok(ToolChoice::Auto),
        Some("any") => Ok(ToolChoice::Any),
        Some("none") => Ok(ToolChoice::None),
        Some("tool") => {
            let name = tc
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::invalid("tool_choice.tool.name: Field required"))?;
            if !names.contains(name) {
                return Err(ApiError::invalid(format!(
                    "tool_choice.tool.name: tool {name:?} is not in `tools`"
                )));
            }
            Ok(ToolChoice::Tool(name.to_string()))
        }
        _ => Err(ApiError::invalid(
            "tool_choice.type: Input tag found using 'type' does not match any of the expected \
             tags: 'auto', 'any', 'tool', 'none'",
        )),
    }
}

fn parse_thinking(
    value: Option<&Value>,
    model: &ModelSpec,
    model_id: &str,
    max_tokens: u64,
    purpose: Purpose,
) -> Result<ThinkingReq, ApiError> {
    let Some(value) = value else {
        return Ok(ThinkingReq::Off);
    };
    if value.is_null() {
        return Ok(ThinkingReq::Off);
    }
    let obj = value
        .as_object()
        .ok_or_else(|| ApiError::invalid("thinking: Input should be a valid dictionary"))?;
    let display_omitted = match obj.get("display") {
        None | Some(Value::Null) => model.default_display_omitted(),
        Some(Value::String(s)) if s == "omitted" => true,
        Some(Value::String(s)) if s == "summarized" => false,
        Some(_) => {
            return Err(ApiError::invalid(
                "thinking.display: Input should be 'summarized' or 'omitted'",
            ));
        }
    };
    match obj.get("type").and_then(Value::as_str) {
        Some("disabled") => Ok(ThinkingReq::Off),
        Some("enabled") => {
            let budget = match obj.get("budget_tokens") {
                None | Some(Value::Null) => {
                    return Err(ApiError::invalid(
                        "thinking.enabled.budget_tokens: Field required",
                    ));
                }
                Some(v) => v.as_u64().ok_or_else(|| {
                    ApiError::invalid(
                        "thinking.enabled.budget_tokens: Input should be a valid integer",
                    )
                })?,
            };
            if !model.thinking.accepts_budget() {
                return Err(if model.thinking.accepts_adaptive() {
                    ApiError::invalid(format!(
                        "thinking.type.enabled is not supported for {model_id}. Use \
                         thinking.type.adaptive and output_config.effort to control thinking \
                         behavior."
                    ))
                } else {
                    ApiError::invalid(format!(
                        "thinking: {model_id} does not support extended thinking"
                    ))
                });
            }
            if budget < 1024 {
                return Err(ApiError::invalid(
                    "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024",
                ));
            }
            if purpose != Purpose::CountTokens && budget >= max_tokens {
                return Err(ApiError::invalid(format!(
                    "`max_tokens` must be greater than `thinking.budget_tokens` (got max_tokens \
                     {max_tokens}, budget_tokens {budget}). Please consult our documentation at \
                     https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size"
                )));
            }
            Ok(ThinkingReq::Enabled { display_omitted })
        }
        Some("adaptive") => {
            if !model.thinking.accepts_adaptive() {
                return Err(ApiError::invalid(format!(
                    "thinking.type.adaptive is not supported for {model_id}; use \
                     thinking.type.enabled with budget_tokens"
                )));
            }
            Ok(ThinkingReq::Adaptive { display_omitted })
        }
        _ => Err(ApiError::invalid(
            "thinking.type: Input tag found using 'type' does not match any of the expected tags: \
             'enabled', 'adaptive', 'disabled'",
        )),
    }
}

/// With `thinking.type: enabled`, a tool-use continuation must pass back the
/// assistant turn's thinking block first.
fn check_thinking_continuation(messages: &[Msg]) -> Result<(), ApiError> {
    let Some(last) = messages.last() else {
        return Ok(());
    };
    if !last.is_tool_result_turn() || messages.len() < 2 {
        return Ok(());
    }
    let j = messages.len() - 2;
    let prev = &messages[j];
    if prev.role != MsgRole::Assistant {
        return Ok(());
    }
    let first = prev
        .blocks
        .first()
        .and_then(|b| b.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if first == "thinking" || first == "redacted_thinking" {
        return Ok(());
    }
    Err(ApiError::invalid(format!(
        "messages.{j}.content.0.type: Expected `thinking` or `redacted_thinking`, but found \
         `{first}`. When `thinking` is enabled, a final `assistant` message must start with a \
         thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). We \
         recommend you include thinking blocks from previous turns. To avoid this requirement, \
         disable `thinking`."
    )))
}

fn validate_output_config(
    oc: &Map<String, Value>,
    model: &ModelSpec,
    model_id: &str,
) -> Result<(), ApiError> {
    for key in oc.keys() {
        if !matches!(key.as_str(), "effort" | "format" | "task_budget") {
            return Err(ApiError::invalid(format!(
                "output_config.{key}: Extra inputs are not permitted"
            )));
        }
    }
    match oc.get("effort") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(e)) => {
            if !ALL_EFFORTS.contains(&e.as_str()) {
                return Err(ApiError::invalid(
                    "output_config.effort: Input should be 'low', 'medium', 'high', 'xhigh' or 'max'",
                ));
            }
            if !model.supports_effort() {
                return Err(ApiError::invalid(format!(
                    "output_config.effort: This model ({model_id}) does not support the effort \
                     parameter."
                )));
            }
            if !model.effort_levels.iter().any(|l| l == e) {
                return Err(ApiError::invalid(format!(
                    "output_config.effort: '{e}' is not supported by {model_id} (supported: {})",
                    model.effort_levels.join(", ")
                )));
            }
            Ok(())
        }
        Some(_) => Err(ApiError::invalid(
            "output_config.effort: Input should be a valid string",
        )),
    }
}
