//! cadre-llm: the model-provider boundary.
//!
//! This crate owns everything between cadre and a model server: the
//! [`ModelProvider`] trait the engine calls, the Anthropic Messages client
//! ([`AnthropicClient`]: messages over JSON or SSE, token counting, models,
//! Message Batches), an OpenAI-compatible Chat Completions client
//! ([`OpenAiClient`]), the wire types ([`types`]), API-key handling
//! ([`ApiKey`]), one classified [`Error`], and the workspace's one
//! server-sent-events parser ([`SseFrameParser`]), which `cadre watch` uses
//! too.
//!
//! Key design decision: the wire layer is hand-written serde over reqwest,
//! and every transport concern (retries with the official SDKs' policy plus a
//! separate overload budget, streaming for large `max_tokens`, SSE assembly,
//! rate-limit headers) is resolved *inside* [`ModelProvider::send`]. The
//! engine sees one complete [`ModelReply`] or one classified [`Error`] —
//! never a partial stream — so a re-sent request (after a cut stream, an
//! `overloaded_error` event or a dropped connection) is always safe.
//!
//! Decisions worth knowing:
//! - Streams are assembled fully before returning; transient stream failures
//!   (body cut, `overloaded_error`/`api_error` events) are retried like
//!   connection errors, which the SDKs do not do for streams.
//! - A `tool_use` whose streamed `input_json` does not parse (a call cut by
//!   `max_tokens`) becomes `ToolUse { input: Value::Null }`, not an error;
//!   the engine treats non-object input as malformed output.
//! - Unknown content blocks become [`types::ContentBlock::Unknown`]; drop
//!   them before echoing a turn back.
//! - The API key lives in [`ApiKey`] (redacted `Debug`, sensitive header) and
//!   is never logged. Redirects are not followed.
#![warn(missing_docs)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod anthropic;
pub mod batch;
mod encoded;
mod error;
mod http;
mod key;
mod message_stream;
pub mod openai;
mod retry;
mod sse;
pub mod types;

use async_trait::async_trait;

pub use anthropic::{
    ANTHROPIC_VERSION, AnthropicClient, AnthropicSettings, ModelInfo, NON_STREAMING_MAX_TOKENS,
};
pub use batch::{
    BatchError, BatchList, BatchRequest, BatchRequestCounts, BatchResult, BatchResultLine,
    BatchStatus, MessageBatch, parse_batch_results,
};
pub use encoded::EncodedRequest;
pub use error::{ApiError, ApiErrorKind, Error, Result, StreamError, offending_field};
pub use key::{ApiKey, resolve_base_url};
pub use openai::{
    ForcedToolMode, OpenAiClient, OpenAiSettings, ProbeOutcome, ServedModel, ToolChoiceProbe,
};
pub use retry::{OverloadObserver, RetryPolicy, observing_overload};
pub use sse::{SseFrame, SseFrameParser};
pub use types::*;

/// A model server. Implementations resolve retries and streaming
/// internally and return a complete reply; the engine holds them as
/// `Arc<dyn ModelProvider>`.
#[async_trait]
pub trait ModelProvider: Send + Sync + std::fmt::Debug {
    /// Sends one Messages request and returns the complete response.
    ///
    /// # Errors
    /// A classified [`Error`]; transient failures only once the retry
    /// policy is exhausted ([`Error::RetriesExhausted`]).
    async fn send(&self, request: &MessageRequest) -> Result<ModelReply>;

    /// [`ModelProvider::send`], telling `first_event` as soon as the
    /// provider has started to answer: the moment its prompt cache holds
    /// the request's prefix, so calls that share it can go. A provider that
    /// can stream streams this call and tells it at the first event; the
    /// default tells it when the whole reply is in (or the call failed).
    ///
    /// # Errors
    /// As [`ModelProvider::send`].
    async fn send_telling_first_event(
        &self,
        request: &MessageRequest,
        first_event: FirstEvent<'_>,
    ) -> Result<ModelReply> {
        let reply = self.send(request).await;
        first_event();
        reply
    }

    /// [`ModelProvider::send`] (with `first_event`,
    /// [`ModelProvider::send_telling_first_event`]) of a request the caller
    /// has already serialised: `encoded` is [`EncodedRequest::new`] of this
    /// very `request`. A provider that sends the request's own JSON sends
    /// those bytes instead of serialising it again; the default ignores them.
    ///
    /// # Errors
    /// As [`ModelProvider::send`].
    async fn send_encoded(
        &self,
        request: &MessageRequest,
        encoded: &EncodedRequest,
        first_event: Option<FirstEvent<'_>>,
    ) -> Result<ModelReply> {
        let _ = encoded;
        match first_event {
            Some(first_event) => self.send_telling_first_event(request, first_event).await,
            None => self.send(request).await,
        }
    }

    /// The provider's name for logs and the store (`anthropic`, `openai`).
    fn name(&self) -> &str;

    /// The server's own token count of `request`'s prompt, where it has a
    /// cheap tokenizer endpoint (local servers); `None` means "estimate".
    async fn count_prompt_tokens(&self, _request: &MessageRequest) -> Option<u64> {
        None
    }

    /// Whether [`ModelProvider::create_batch`] and friends work.
    fn supports_batches(&self) -> bool {
        false
    }

    /// Sends requests as one Message Batch.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when the provider has no batch API.
    async fn create_batch(&self, _requests: Vec<BatchRequest>) -> Result<MessageBatch> {
        Err(no_batches(self.name()))
    }

    /// Polls a batch.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when the provider has no batch API.
    async fn get_batch(&self, _id: &str) -> Result<MessageBatch> {
        Err(no_batches(self.name()))
    }

    /// Reads an ended batch's results (in any order; match by `custom_id`).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when the provider has no batch API.
    async fn batch_results(&self, _batch: &MessageBatch) -> Result<Vec<BatchResultLine>> {
        Err(no_batches(self.name()))
    }
}

/// Told once when a provider starts to answer a call (see
/// [`ModelProvider::send_telling_first_event`]); may be told again by a
/// retried call, so it must be idempotent.
pub type FirstEvent<'a> = &'a (dyn Fn() + Send + Sync);

fn no_batches(provider: &str) -> Error {
    Error::InvalidConfig {
        message: format!("provider {provider} has no Message Batches API"),
    }
}
