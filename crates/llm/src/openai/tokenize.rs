//! The server's own token count of a request's prompt, for fitting
//! `max_tokens` into a small context window where a 4-characters-a-token
//! estimate is too rough.
//!
//! Two endpoints exist at the server's root (beside `/v1`):
//! llama-cpp-python's `POST /extras/tokenize/count` (`{"input"}` ->
//! `{"count"}`) and llama.cpp `llama-server`'s `POST /tokenize`
//! (`{"content"}` -> `{"tokens": [...]}`). Which one answers is learned on the
//! first count and kept; a server with neither (OpenAI, Ollama) is asked
//! once and never again.
//!
//! What is counted is the prompt as a chat template lays it out: the system
//! text, each message's text, tool calls as name and arguments, tool results,
//! and the tool definitions as JSON, plus [`PER_MESSAGE`] tokens of template
//! markup per message.

use reqwest::Method;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use serde_json::{Value, json};

use super::OpenAiClient;
use crate::http;
use crate::types::{ContentBlock, MessageRequest};

/// Template markup per message (`<|im_start|>role\n` ... `<|im_end|>\n`).
const PER_MESSAGE: u64 = 6;

/// A tokenizer endpoint a server answered on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenizerEndpoint {
    /// llama-cpp-python: `POST /extras/tokenize/count`.
    ExtrasCount,
    /// llama.cpp `llama-server`: `POST /tokenize`.
    LlamaServer,
}

impl TokenizerEndpoint {
    fn path(self) -> &'static str {
        match self {
            TokenizerEndpoint::ExtrasCount => "/extras/tokenize/count",
            TokenizerEndpoint::LlamaServer => "/tokenize",
        }
    }

    fn body(self, model: &str, text: &str) -> Value {
        match self {
            TokenizerEndpoint::ExtrasCount => json!({"model": model, "input": text}),
            TokenizerEndpoint::LlamaServer => json!({"content": text}),
        }
    }

    fn count(self, answer: &Value) -> Option<u64> {
        match self {
            TokenizerEndpoint::ExtrasCount => answer.get("count").and_then(Value::as_u64),
            TokenizerEndpoint::LlamaServer => answer
                .get("tokens")
                .and_then(Value::as_array)
                .map(|t| t.len() as u64),
        }
    }
}

/// The prompt of `request` as one text, laid out as a chat template would,
/// and the number of messages in it (the system text counts as one).
pub(crate) fn prompt_text(request: &MessageRequest) -> (String, u64) {
    let mut text = String::new();
    let mut messages = 0u64;
    if !request.system.is_empty() || !request.tools.is_empty() {
        messages += 1;
        for block in &request.system {
            text.push_str(&block.text);
            text.push('\n');
        }
        for tool in &request.tools {
            let definition = json!({"name": tool.name, "description": tool.description,
                                    "parameters": tool.input_schema});
            text.push_str(&definition.to_string());
            text.push('\n');
        }
    }
    for message in &request.messages {
        messages += 1;
        for block in &message.content {
            match block {
                ContentBlock::Text { text: t, .. } => text.push_str(t),
                ContentBlock::ToolUse { name, input, .. } => {
                    text.push_str(name);
                    text.push_str(&input.to_string());
                }
                ContentBlock::ToolResult { content, .. } => text.push_str(content),
                _ => {}
            }
            text.push('\n');
        }
        text.push('\n');
    }
    (text, messages)
}

impl OpenAiClient {
    /// The server's root: the base URL without its trailing `/v1`.
    fn root(&self) -> &str {
        self.base.strip_suffix("/v1").unwrap_or(&self.base)
    }

    /// The server's token count of `request`'s prompt (with template
    /// markup), or `None` when it has no tokenizer endpoint or the count
    /// failed (then the caller estimates).
    pub async fn count_prompt_tokens(&self, request: &MessageRequest) -> Option<u64> {
        let (text, messages) = prompt_text(request);
        let known = *self.tokenizer.lock().unwrap_or_else(|p| p.into_inner());
        let candidates: &[TokenizerEndpoint] = match known {
            Some(Some(endpoint)) => &[endpoint][..],
            Some(None) => return None,
            None => &[
                TokenizerEndpoint::ExtrasCount,
                TokenizerEndpoint::LlamaServer,
            ],
        };
        let candidates = candidates.to_vec();
        for endpoint in candidates {
            match self.ask_tokenizer(endpoint, &request.model, &text).await {
                Some(count) => {
                    *self.tokenizer.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(Some(endpoint));
                    return Some(count + PER_MESSAGE * messages);
                }
                None if known.is_some() => return None,
                None => {}
            }
        }
        tracing::debug!(url = %self.root(), "the server has no tokenizer endpoint; estimating");
        *self.tokenizer.lock().unwrap_or_else(|p| p.into_inner()) = Some(None);
        None
    }

    async fn ask_tokenizer(
        &self,
        endpoint: TokenizerEndpoint,
        model: &str,
        text: &str,
    ) -> Option<u64> {
        let url = format!("{}{}", self.root(), endpoint.path());
        let body = http::to_body(&endpoint.body(model, text)).ok()?;
        let mut rb = self
            .http_whole
            .request(Method::POST, &url)
            .timeout(
                self.settings
                    .connect_timeout
                    .max(std::time::Duration::from_secs(10)),
            )
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json")
            .body(body);
        if let Some(auth) = &self.auth_header {
            rb = rb.header(AUTHORIZATION, auth.clone());
        }
        let response = rb.send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        let answer: Value = response.json().await.ok()?;
        endpoint.count(&answer)
    }
}
