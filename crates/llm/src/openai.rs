//! OpenAI-compatible Chat Completions (llama.cpp, vLLM, Ollama, gateways),
//! behind the same [`ModelProvider`] trait.
//!
//! The Chat format is its own wire adapter (reference section 8): system
//! blocks become one `system` message, `tool_result` blocks become `role:
//! "tool"` messages placed before the user's text, tool-call `arguments` is
//! a JSON *string*, and `prompt_tokens` includes the cached tokens. Thinking
//! blocks are not sent (the format has no place for them); `thinking` config
//! is dropped and `output_config.effort` maps to `reasoning_effort`.
//!
//! Local servers each accept a different subset of the format; the
//! settings say which ([`ForcedToolMode`], per-role sampling and extra body
//! fields), `wire` keeps to shapes every common server accepts, and
//! `repair` reads what small models get almost right.

mod probe;
mod repair;
mod stream;
mod tokenize;
mod wire;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;

use async_trait::async_trait;
use reqwest::Method;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use std::collections::BTreeMap;
use std::str::FromStr;

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::key::ApiKey;
use crate::retry::{self, RetryPolicy};
use crate::types::{MessageRequest, ModelReply};
use crate::{ModelProvider, http};
pub use probe::{ProbeOutcome, ServedModel, ToolChoiceProbe};
use wire::{ChatResponse, from_chat_response, to_chat_request};

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
    /// Retry budgets (same policy as the Anthropic client); local servers
    /// usually set `retry_timeouts = false`.
    pub retry: RetryPolicy,
    /// How the server can be made to call a tool.
    pub forced_tool: ForcedToolMode,
    /// Stream answers (SSE): no whole-request timeout, only
    /// [`Self::idle_timeout`] between chunks; dropping the call closes the
    /// connection, which stops generation on servers that watch for it.
    pub stream: bool,
    /// With [`Self::stream`], the longest wait for the next chunk.
    pub idle_timeout: Duration,
    /// Extra body fields per role (`planner`, `worker`, `reviewer`; the role
    /// is read from the tools a request offers), over [`Self::extra_body`].
    pub sampling: BTreeMap<String, Map<String, Value>>,
    /// Extra body fields on every request (`repeat_penalty`, `top_k`, ...).
    pub extra_body: Map<String, Value>,
}

/// How a server accepts a forced tool choice.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ForcedToolMode {
    /// `tool_choice: "required"` (OpenAI, llama.cpp `llama-server`, vLLM >= 0.8.3).
    Required,
    /// Only `{"type":"function","function":{"name"}}` (llama-cpp-python;
    /// `llama-server` reads it as `auto`): a request that may call any of
    /// several tools is sent as `auto`.
    #[default]
    Named,
    /// No forcing: always `auto` (Ollama, vLLM without a tool parser).
    Auto,
}

impl FromStr for ForcedToolMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "required" => Ok(Self::Required),
            "named" => Ok(Self::Named),
            "auto" => Ok(Self::Auto),
            other => Err(Error::InvalidConfig {
                message: format!("tool_choice {other:?}: expected required, named or auto"),
            }),
        }
    }
}

impl OpenAiSettings {
    /// 600 s timeout, 5 s connect, [`RetryPolicy::default`] without
    /// retrying timeouts, [`ForcedToolMode::Named`], not streamed (120 s
    /// idle timeout when streamed), no extra fields.
    pub fn new(base_url: impl Into<String>, api_key: Option<ApiKey>) -> Self {
        Self {
            base_url: base_url.into(),
            api_key,
            timeout: Duration::from_secs(600),
            connect_timeout: Duration::from_secs(5),
            retry: RetryPolicy {
                retry_timeouts: false,
                ..RetryPolicy::default()
            },
            forced_tool: ForcedToolMode::default(),
            stream: false,
            idle_timeout: Duration::from_secs(120),
            sampling: BTreeMap::new(),
            extra_body: Map::new(),
        }
    }

    /// The extra body fields for `role`: [`Self::extra_body`], then the
    /// role's [`Self::sampling`]; planner and reviewer get `temperature: 0`
    /// unless a setting names one.
    pub fn sampling_for(&self, role: &str) -> Map<String, Value> {
        let mut out = self.extra_body.clone();
        if let Some(role_fields) = self.sampling.get(role) {
            out.extend(role_fields.clone());
        }
        if matches!(role, "planner" | "reviewer") && !out.contains_key("temperature") {
            out.insert("temperature".into(), Value::from(0.0));
        }
        out
    }
}

/// Client for `POST {base}/chat/completions` (non-streaming).
#[derive(Clone, Debug)]
pub struct OpenAiClient {
    http: reqwest::Client,
    /// The base URL, `/v1` included.
    base: String,
    url: String,
    /// `Bearer ...`, marked sensitive.
    auth_header: Option<HeaderValue>,
    settings: OpenAiSettings,
    /// For unstreamed requests: the whole-request timeout as read timeout.
    http_whole: reqwest::Client,
    /// Set once the server closed a stream with no data: stream no more.
    streams_refused: Arc<AtomicBool>,
    /// The server's tokenizer endpoint: `None` until learned, then
    /// `Some(None)` for a server without one.
    tokenizer: Arc<std::sync::Mutex<Option<Option<tokenize::TokenizerEndpoint>>>>,
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
        // A streamed call's read timeout is its idle timeout.
        let read_timeout = if settings.stream {
            settings.idle_timeout
        } else {
            settings.timeout
        };
        let http = http::build_client(read_timeout, settings.connect_timeout)?;
        let http_whole = if settings.stream {
            http::build_client(settings.timeout, settings.connect_timeout)?
        } else {
            http.clone()
        };
        Ok(Self {
            http,
            http_whole,
            streams_refused: Arc::new(AtomicBool::new(false)),
            tokenizer: Arc::new(std::sync::Mutex::new(None)),
            url: format!("{base}/chat/completions"),
            base,
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
    /// Streamed when the settings say so, until the server closes a stream
    /// without sending any data after its 200 (llama-cpp-python does this
    /// when a streamed answer would be a tool call it cannot stream): that
    /// request is sent again unstreamed, and so is every later one.
    ///
    /// # Errors
    /// Any [`Error`]; [`Error::Decode`] for a response without choices.
    #[tracing::instrument(skip_all, fields(model = %request.model))]
    pub async fn chat(&self, request: &MessageRequest) -> Result<ModelReply> {
        let mut wire = to_chat_request(request, &self.settings);
        wire.stream = wire.stream && !self.streams_refused.load(Ordering::Relaxed);
        let body = http::to_body(&wire)?;
        let wire = &wire;
        let ((response, headers), stats) =
            retry::run(&self.settings.retry, "chat_completions", |n| {
                let body = body.clone();
                async move {
                    let body = if wire.stream && !self.streams_refused.load(Ordering::Relaxed) {
                        let response = self.post(body, true, n).await?;
                        let headers = response.headers().clone();
                        if let Some(value) = read_stream(response).await? {
                            let text = value.to_string().into_bytes();
                            let parsed: ChatResponse = serde_json::from_value(value)
                                .map_err(|e| Error::decode(e, &text))?;
                            return with_choices(parsed, &text).map(|p| (p, headers));
                        }
                        self.refuse_streams();
                        unstreamed_body(wire)?
                    } else {
                        body
                    };
                    let response = self.post(body, false, n).await?;
                    let headers = response.headers().clone();
                    let body = http::read_body(response).await?;
                    let parsed =
                        serde_json::from_slice(&body).map_err(|e| Error::decode(e, &body))?;
                    with_choices(parsed, &body).map(|p| (p, headers))
                }
            })
            .await?;
        Ok(ModelReply {
            message: from_chat_response(response, request),
            request_id: http::request_id(&headers, REQUEST_ID),
            rate_limits: http::openai_rate_limits(&headers),
            retries: stats.retries,
            overload_retries: stats.overload_retries,
        })
    }

    /// POSTs one serialised request; a streamed one has no whole-request
    /// timeout (its client's read timeout is the idle timeout).
    async fn post(&self, body: Bytes, stream: bool, retry_count: u32) -> Result<reqwest::Response> {
        let (http, accept) = if stream {
            (&self.http, "text/event-stream")
        } else {
            (&self.http_whole, "application/json")
        };
        let mut rb = http
            .request(Method::POST, &self.url)
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, accept)
            .header("x-stainless-retry-count", retry_count)
            .body(body);
        if !stream {
            rb = rb.timeout(self.settings.timeout);
        }
        if let Some(auth) = &self.auth_header {
            rb = rb.header(AUTHORIZATION, auth.clone());
        }
        http::execute(rb, REQUEST_ID).await
    }

    /// Stops streaming for the rest of this client's life, saying so once.
    fn refuse_streams(&self) {
        if !self.streams_refused.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                url = %self.url,
                "the server closed a stream without sending any data (after HTTP 200); \
                 sending unstreamed from now on: set `stream = false` for this provider"
            );
        }
    }
}

/// `wire` serialised with `"stream": false` (the rare path after an empty stream).
fn unstreamed_body(wire: &wire::ChatRequest) -> Result<Bytes> {
    let mut value = serde_json::to_value(wire).map_err(|e| Error::InvalidConfig {
        message: format!("request cannot be serialised: {e}"),
    })?;
    value["stream"] = Value::Bool(false);
    http::to_body(&value)
}

/// `parsed` if it has a choice to read.
fn with_choices(parsed: ChatResponse, body: &[u8]) -> Result<ChatResponse> {
    if parsed.has_choices() {
        Ok(parsed)
    } else {
        Err(Error::decode("response has no choices", body))
    }
}

/// Reads a streamed answer to its end and assembles it; `None` when the
/// server closed the stream without sending any data. A stream cut after
/// some data but before its finish is a connection error; a gap longer than
/// the idle timeout is the client's read timeout. Dropping this future
/// closes the connection.
pub(super) async fn read_stream(mut response: reqwest::Response) -> Result<Option<Value>> {
    let mut assembler = stream::ChunkAssembler::default();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| Error::from_reqwest(e, true))?
    {
        if assembler.push(&chunk)? {
            break;
        }
    }
    if assembler.is_empty() {
        return Ok(None);
    }
    if !assembler.finished() {
        return Err(Error::Connection {
            message: "the stream ended before its finish_reason".into(),
        });
    }
    Ok(Some(assembler.completion()))
}

#[async_trait]
impl ModelProvider for OpenAiClient {
    async fn send(&self, request: &MessageRequest) -> Result<ModelReply> {
        self.chat(request).await
    }

    fn name(&self) -> &str {
        "openai"
    }

    async fn count_prompt_tokens(&self, request: &MessageRequest) -> Option<u64> {
        OpenAiClient::count_prompt_tokens(self, request).await
    }
}
