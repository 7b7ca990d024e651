//! The Anthropic Messages API client: messages (JSON and SSE), token
//! counting, models. Batches live in [`crate::batch`].

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use reqwest::Method;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::batch::{BatchRequest, BatchResultLine, MessageBatch};
use crate::error::{Error, Result};
use crate::key::ApiKey;
use crate::retry::{self, RetryPolicy, RetryStats};
use crate::types::{
    Message, MessageRequest, MessageResponse, ModelReply, OutputConfig, SystemBlock,
    ThinkingConfig, ToolChoice, ToolDefinition,
};
use crate::{EncodedRequest, FirstEvent, ModelProvider, http, message_stream};

/// The only API version.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Above this `max_tokens` a non-streaming call could exceed 10 minutes
/// (`3600 s * max_tokens / 128000 > 600 s`), so the client streams, as the
/// official SDKs require.
pub const NON_STREAMING_MAX_TOKENS: u32 = 21_333;

/// Header carrying the request id.
const REQUEST_ID: &str = "request-id";

/// How to reach the Anthropic API.
#[derive(Clone, Debug)]
pub struct AnthropicSettings {
    /// `https://api.anthropic.com` (no `/v1`); see [`crate::resolve_base_url`].
    pub base_url: String,
    /// Sent as `x-api-key`.
    pub api_key: ApiKey,
    /// Whole-request timeout for non-streaming calls; idle-read timeout for streams.
    pub timeout: Duration,
    /// TCP/TLS connect timeout.
    pub connect_timeout: Duration,
    /// Retry budgets.
    pub retry: RetryPolicy,
    /// Always stream `POST /v1/messages` (otherwise only above
    /// [`NON_STREAMING_MAX_TOKENS`]).
    pub stream: bool,
}

impl AnthropicSettings {
    /// SDK defaults: 600 s timeout, 5 s connect, [`RetryPolicy::default`], no forced streaming.
    pub fn new(base_url: impl Into<String>, api_key: ApiKey) -> Self {
        Self {
            base_url: base_url.into(),
            api_key,
            timeout: Duration::from_secs(600),
            connect_timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
            stream: false,
        }
    }
}

/// A model from `GET /v1/models`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Model id, e.g. `claude-opus-4-6`.
    pub id: String,
    /// Human-readable name.
    #[serde(default)]
    pub display_name: String,
    /// RFC 3339 release time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// Context window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_input_tokens: Option<u64>,
    /// Output cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// Nested `{..: {supported: bool}}` capability tree, verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Value>,
}

/// A page of a list endpoint.
#[derive(Debug, Deserialize)]
pub(crate) struct Page<T> {
    pub(crate) data: Vec<T>,
    #[serde(default)]
    pub(crate) has_more: bool,
    #[serde(default)]
    pub(crate) first_id: Option<String>,
    #[serde(default)]
    pub(crate) last_id: Option<String>,
}

/// `POST /v1/messages/count_tokens` body: the request minus `max_tokens`/`stream`.
#[derive(Serialize)]
struct CountTokensBody<'a> {
    model: &'a str,
    messages: &'a [Message],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    system: &'a [SystemBlock],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    tools: &'a [ToolDefinition],
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<&'a ToolChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking: Option<&'a ThinkingConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_config: Option<&'a OutputConfig>,
}

/// `POST /v1/messages` body: the request as it is, with `stream` as the
/// client decided; serialised from borrows, so a call never copies its
/// request (the same fields, in the same order, as [`MessageRequest`]).
#[derive(Serialize)]
struct MessagesBody<'a> {
    model: &'a str,
    max_tokens: u32,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    system: &'a [SystemBlock],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    tools: &'a [ToolDefinition],
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<&'a ToolChoice>,
    messages: &'a [Message],
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking: Option<&'a ThinkingConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_config: Option<&'a OutputConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<bool>,
}

impl<'a> MessagesBody<'a> {
    fn new(request: &'a MessageRequest, stream: bool) -> Self {
        Self {
            model: &request.model,
            max_tokens: request.max_tokens,
            system: &request.system,
            tools: &request.tools,
            tool_choice: request.tool_choice.as_ref(),
            messages: &request.messages,
            thinking: request.thinking.as_ref(),
            output_config: request.output_config.as_ref(),
            stream: stream.then_some(true),
        }
    }
}

#[derive(Deserialize)]
struct TokenCount {
    input_tokens: u64,
}

/// Client for the Anthropic API (and anything that speaks it, such as
/// `cadre sim serve`). Cheap to clone; clones share the connection pool.
#[derive(Clone, Debug)]
pub struct AnthropicClient {
    http: reqwest::Client,
    base_url: String,
    /// `{base_url}/v1/messages`, parsed once (every call would parse it again).
    messages_url: reqwest::Url,
    /// `x-api-key`, marked sensitive so it never shows up in reqwest's debug output.
    key_header: HeaderValue,
    settings: AnthropicSettings,
}

impl AnthropicClient {
    /// Builds the client.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for an unusable base URL or an API key that
    /// cannot be an HTTP header value.
    pub fn new(settings: AnthropicSettings) -> Result<Self> {
        let base_url = http::parse_base_url(&settings.base_url)?;
        let mut key_header =
            HeaderValue::from_str(settings.api_key.expose()).map_err(|_| Error::InvalidConfig {
                message: "API key contains characters not allowed in an HTTP header".into(),
            })?;
        key_header.set_sensitive(true);
        let http = http::build_client(settings.timeout, settings.connect_timeout)?;
        let messages_url = http::parse_url(&format!("{base_url}/v1/messages"))?;
        Ok(Self {
            http,
            messages_url,
            base_url,
            key_header,
            settings,
        })
    }

    /// The settings this client was built with.
    pub fn settings(&self) -> &AnthropicSettings {
        &self.settings
    }

    /// Whether `request` goes over SSE.
    pub fn will_stream(&self, request: &MessageRequest) -> bool {
        self.settings.stream
            || request.stream == Some(true)
            || request.max_tokens > NON_STREAMING_MAX_TOKENS
    }

    /// A request to `url` with the auth, version and retry-count headers.
    pub(crate) fn request(
        &self,
        method: Method,
        url: impl reqwest::IntoUrl,
        retry_count: u32,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(method, url)
            .header("x-api-key", self.key_header.clone())
            .header("anthropic-version", ANTHROPIC_VERSION)
            .header("x-stainless-retry-count", retry_count)
    }

    /// `{base}{path}`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub(crate) fn base_url(&self) -> &str {
        &self.base_url
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.settings.timeout
    }

    /// Runs a JSON request/response call under the retry policy.
    pub(crate) async fn call_json<T: serde::de::DeserializeOwned>(
        &self,
        operation: &str,
        method: Method,
        url: &str,
        body: Option<Bytes>,
    ) -> Result<(T, RetryStats)> {
        retry::run(&self.settings.retry, operation, |n| {
            let body = body.clone();
            let method = method.clone();
            async move {
                let mut rb = self
                    .request(method, url, n)
                    .header(ACCEPT, "application/json")
                    .timeout(self.settings.timeout);
                if let Some(body) = body {
                    rb = rb.header(CONTENT_TYPE, "application/json").body(body);
                }
                let response = http::execute(rb, REQUEST_ID).await?;
                http::read_json(response).await
            }
        })
        .await
    }

    /// `POST /v1/messages`, streaming when [`Self::will_stream`] says so.
    ///
    /// # Errors
    /// Any [`Error`]; transient ones only after the retry policy gave up.
    #[tracing::instrument(skip_all, fields(model = %request.model, max_tokens = request.max_tokens))]
    pub async fn create_message(&self, request: &MessageRequest) -> Result<ModelReply> {
        self.create_message_telling(request, None, None).await
    }

    /// [`Self::create_message`] (with `first_event`,
    /// [`Self::create_message_telling_first_event`]) sending the body of
    /// `encoded`, [`EncodedRequest::new`] of this `request`, when it is the
    /// body this client would send.
    ///
    /// # Errors
    /// As [`Self::create_message`].
    #[tracing::instrument(name = "create_message", skip_all, fields(model = %request.model, max_tokens = request.max_tokens))]
    pub async fn create_message_encoded(
        &self,
        request: &MessageRequest,
        encoded: &EncodedRequest,
        first_event: Option<FirstEvent<'_>>,
    ) -> Result<ModelReply> {
        self.create_message_telling(request, Some(encoded), first_event)
            .await
    }

    /// [`Self::create_message`], always streamed, telling `first_event`
    /// when the first event of the answer arrives (of each try, when the
    /// call is retried): the server has read the prompt by then, and its
    /// cache entry is readable by other calls.
    ///
    /// # Errors
    /// Any [`Error`]; transient ones only after the retry policy gave up.
    #[tracing::instrument(name = "create_message", skip_all, fields(model = %request.model, max_tokens = request.max_tokens))]
    pub async fn create_message_telling_first_event(
        &self,
        request: &MessageRequest,
        first_event: FirstEvent<'_>,
    ) -> Result<ModelReply> {
        self.create_message_telling(request, None, Some(first_event))
            .await
    }

    async fn create_message_telling(
        &self,
        request: &MessageRequest,
        encoded: Option<&EncodedRequest>,
        first_event: Option<FirstEvent<'_>>,
    ) -> Result<ModelReply> {
        let stream = first_event.is_some() || self.will_stream(request);
        let body = match encoded.and_then(|e| e.body_for(stream)) {
            Some(body) => body,
            None => http::to_body(&MessagesBody::new(request, stream))?,
        };
        let ((message, request_id, rate_limits), stats) =
            retry::run(&self.settings.retry, "messages", |n| {
                let body = body.clone();
                let url = &self.messages_url;
                async move {
                    let mut rb = self
                        .request(Method::POST, url.clone(), n)
                        .header(CONTENT_TYPE, "application/json")
                        .body(body);
                    rb = if stream {
                        rb.header(ACCEPT, "text/event-stream")
                    } else {
                        rb.header(ACCEPT, "application/json")
                            .timeout(self.settings.timeout)
                    };
                    let response = http::execute(rb, REQUEST_ID).await?;
                    // What the reply keeps of the headers, read before the body
                    // takes the response.
                    let request_id = http::request_id(response.headers(), REQUEST_ID);
                    let rate_limits = http::anthropic_rate_limits(response.headers());
                    let message: MessageResponse = if stream {
                        message_stream::read_message(response, request_id.clone(), first_event)
                            .await?
                    } else {
                        http::read_json(response).await?
                    };
                    Ok((message, request_id, rate_limits))
                }
            })
            .await?;
        tracing::debug!(
            request_id = request_id.as_deref(),
            retries = stats.retries,
            stop_reason = ?message.stop_reason,
            "message complete"
        );
        Ok(ModelReply {
            message,
            request_id,
            rate_limits,
            retries: stats.retries,
            overload_retries: stats.overload_retries,
        })
    }

    /// `POST /v1/messages/count_tokens`: input tokens of `request` (system,
    /// tools and messages) for its model.
    ///
    /// # Errors
    /// Any [`Error`].
    pub async fn count_tokens(&self, request: &MessageRequest) -> Result<u64> {
        let body = http::to_body(&CountTokensBody {
            model: &request.model,
            messages: &request.messages,
            system: &request.system,
            tools: &request.tools,
            tool_choice: request.tool_choice.as_ref(),
            thinking: request.thinking.as_ref(),
            output_config: request.output_config.as_ref(),
        })?;
        let url = self.url("/v1/messages/count_tokens");
        let (count, _): (TokenCount, _) = self
            .call_json("count_tokens", Method::POST, &url, Some(body))
            .await?;
        Ok(count.input_tokens)
    }

    /// `GET /v1/models`, following `has_more` / `last_id` to the end.
    ///
    /// # Errors
    /// Any [`Error`]; [`Error::Decode`] if the server claims more pages
    /// without a cursor that moves.
    pub async fn list_models(&self) -> Result<Vec<ModelInfo>> {
        let mut models = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut url =
                reqwest::Url::parse(&self.url("/v1/models")).map_err(|e| Error::InvalidConfig {
                    message: format!("models URL: {e}"),
                })?;
            url.query_pairs_mut().append_pair("limit", "1000");
            if let Some(after) = &after {
                url.query_pairs_mut().append_pair("after_id", after);
            }
            let (page, _): (Page<ModelInfo>, _) = self
                .call_json("list_models", Method::GET, url.as_str(), None)
                .await?;
            models.extend(page.data);
            if !page.has_more {
                return Ok(models);
            }
            match page.last_id {
                Some(last) if after.as_deref() != Some(last.as_str()) => after = Some(last),
                other => {
                    return Err(Error::Decode {
                        message: "model list says has_more but its last_id does not advance".into(),
                        body_snippet: format!("last_id: {other:?}"),
                    });
                }
            }
        }
    }
}

#[async_trait]
impl ModelProvider for AnthropicClient {
    async fn send(&self, request: &MessageRequest) -> Result<ModelReply> {
        self.create_message(request).await
    }

    async fn send_telling_first_event(
        &self,
        request: &MessageRequest,
        first_event: FirstEvent<'_>,
    ) -> Result<ModelReply> {
        self.create_message_telling_first_event(request, first_event)
            .await
    }

    async fn send_encoded(
        &self,
        request: &MessageRequest,
        encoded: &EncodedRequest,
        first_event: Option<FirstEvent<'_>>,
    ) -> Result<ModelReply> {
        self.create_message_encoded(request, encoded, first_event)
            .await
    }

    fn name(&self) -> &str {
        "anthropic"
    }

    fn supports_batches(&self) -> bool {
        true
    }

    async fn create_batch(&self, requests: Vec<BatchRequest>) -> Result<MessageBatch> {
        AnthropicClient::create_batch(self, requests).await
    }

    async fn get_batch(&self, id: &str) -> Result<MessageBatch> {
        AnthropicClient::get_batch(self, id).await
    }

    async fn batch_results(&self, batch: &MessageBatch) -> Result<Vec<BatchResultLine>> {
        AnthropicClient::batch_results(self, batch).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{CacheControl, ContentBlock, MessageRole};
    use pretty_assertions::assert_eq;

    #[test]
    fn the_messages_body_is_the_request_with_the_clients_stream_flag() {
        let mut request = MessageRequest {
            model: "claude-haiku-4-5".into(),
            max_tokens: 300,
            system: vec![SystemBlock {
                cache_control: Some(CacheControl::ephemeral()),
                ..SystemBlock::text("prefix")
            }],
            tools: vec![ToolDefinition {
                name: "edit_file".into(),
                description: Some("edits".into()),
                input_schema: serde_json::json!({"type": "object"}).into(),
                cache_control: None,
            }],
            tool_choice: Some(ToolChoice::Any),
            messages: vec![Message {
                role: MessageRole::User,
                content: vec![ContentBlock::text("hello")],
            }],
            thinking: Some(ThinkingConfig::Enabled {
                budget_tokens: 1024,
            }),
            output_config: None,
            stream: Some(true),
        };
        for stream in [true, false] {
            request.stream = stream.then_some(true);
            assert_eq!(
                http::to_body(&MessagesBody::new(&request, stream)).unwrap(),
                http::to_body(&request).unwrap()
            );
        }
    }
}
