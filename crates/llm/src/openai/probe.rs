//! What `cadre doctor` asks an OpenAI-compatible server: its model list
//! (`GET /models`, with a context length when the server reports one) and
//! small probes of tool calling: whether `tool_choice` `"required"`, a named
//! function and `"auto"` are accepted and answered with a tool call, and
//! whether a streamed answer arrives as `chat.completion.chunk` frames.
//! Every probe is one request, never retried, with a short answer.

use reqwest::Method;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use serde_json::{Value, json};

use super::OpenAiClient;
use crate::error::{Error, Result};
use crate::http;

/// A model the server lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServedModel {
    /// The model id.
    pub id: String,
    /// Its context length, when the server says (`max_model_len` from vLLM,
    /// `context_length`, `meta.n_ctx`, `max_input_tokens`).
    pub context_length: Option<u64>,
}

/// A `tool_choice` form to probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToolChoiceProbe {
    /// `"required"`.
    Required,
    /// `{"type":"function","function":{"name":...}}`.
    Named,
    /// `"auto"`.
    Auto,
}

impl ToolChoiceProbe {
    /// `required`, `named` or `auto`.
    pub fn as_str(self) -> &'static str {
        match self {
            ToolChoiceProbe::Required => "required",
            ToolChoiceProbe::Named => "named",
            ToolChoiceProbe::Auto => "auto",
        }
    }
}

/// How a probe went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// Accepted and answered with a tool call (or, for streaming, chunks).
    Works,
    /// Accepted, but the answer had no tool call.
    NoToolCall,
    /// Refused or failed: the error.
    Refused(String),
}

/// The probe tool: one required string argument.
fn probe_tools() -> Value {
    json!([{"type": "function", "function": {
        "name": "report_status",
        "description": "Report the status word.",
        "parameters": {"type": "object", "properties": {"status": {"type": "string"}},
                       "required": ["status"]}
    }}])
}

fn probe_body(model: &str, choice: ToolChoiceProbe, stream: bool) -> Value {
    let tool_choice = match choice {
        ToolChoiceProbe::Required => json!("required"),
        ToolChoiceProbe::Named => {
            json!({"type": "function", "function": {"name": "report_status"}})
        }
        ToolChoiceProbe::Auto => json!("auto"),
    };
    json!({
        "model": model,
        "messages": [{"role": "user", "content":
            "Call report_status with status \"ok\". Answer only with the tool call."}],
        "tools": probe_tools(),
        "tool_choice": tool_choice,
        "max_tokens": 64,
        "temperature": 0.0,
        "stream": stream,
    })
}

impl OpenAiClient {
    fn probe_request(&self, method: Method, url: &str) -> reqwest::RequestBuilder {
        let mut rb = self
            .http
            .request(method, url)
            .timeout(self.settings.timeout);
        if let Some(auth) = &self.auth_header {
            rb = rb.header(AUTHORIZATION, auth.clone());
        }
        rb
    }

    /// `GET {base}/models`: the ids the server serves and any context
    /// lengths it reports. Not retried.
    ///
    /// # Errors
    /// Any [`Error`]; [`Error::Decode`] for a body without a `data` list.
    pub async fn list_models(&self) -> Result<Vec<ServedModel>> {
        let url = format!("{}/models", self.base);
        let rb = self
            .probe_request(Method::GET, &url)
            .header(ACCEPT, "application/json");
        let response = http::execute(rb, super::REQUEST_ID).await?;
        let body = http::read_body(response).await?;
        let value: Value = serde_json::from_slice(&body).map_err(|e| Error::decode(e, &body))?;
        let data = value
            .get("data")
            .and_then(Value::as_array)
            .ok_or_else(|| Error::decode("the model list has no `data` array", &body))?;
        Ok(data
            .iter()
            .filter_map(|m| {
                let id = m.get("id").and_then(Value::as_str)?;
                let context_length = [
                    "/max_model_len",
                    "/context_length",
                    "/meta/n_ctx",
                    "/meta/n_ctx_train",
                    "/max_input_tokens",
                ]
                .iter()
                .find_map(|p| m.pointer(p).and_then(Value::as_u64));
                Some(ServedModel {
                    id: id.to_owned(),
                    context_length,
                })
            })
            .collect())
    }

    /// Sends one small request forcing the probe tool with `choice`
    /// (streamed when `stream`) and says how it went.
    pub async fn probe_tool_choice(
        &self,
        model: &str,
        choice: ToolChoiceProbe,
        stream: bool,
    ) -> ProbeOutcome {
        match self.probe(model, choice, stream).await {
            Ok(completion) => {
                let calls = completion
                    .pointer("/choices/0/message/tool_calls")
                    .and_then(Value::as_array)
                    .is_some_and(|c| !c.is_empty());
                if calls {
                    ProbeOutcome::Works
                } else {
                    ProbeOutcome::NoToolCall
                }
            }
            Err(e) => ProbeOutcome::Refused(e.to_string()),
        }
    }

    async fn probe(&self, model: &str, choice: ToolChoiceProbe, stream: bool) -> Result<Value> {
        let body = http::to_body(&probe_body(model, choice, stream))?;
        let rb = self
            .probe_request(Method::POST, &self.url)
            .header(CONTENT_TYPE, "application/json")
            .header(
                ACCEPT,
                if stream {
                    "text/event-stream"
                } else {
                    "application/json"
                },
            )
            .body(body);
        let response = http::execute(rb, super::REQUEST_ID).await?;
        if !stream {
            let body = http::read_body(response).await?;
            return serde_json::from_slice(&body).map_err(|e| Error::decode(e, &body));
        }
        let is_sse = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !is_sse {
            return Err(Error::decode(
                "asked to stream, the server answered without text/event-stream",
                b"",
            ));
        }
        super::read_stream(response)
            .await?
            .ok_or_else(|| Error::Connection {
                message: "the server closed the stream without sending any data".into(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_bodies_force_the_tool_as_asked() {
        assert_eq!(
            probe_body("m", ToolChoiceProbe::Required, false)["tool_choice"],
            "required"
        );
        assert_eq!(
            probe_body("m", ToolChoiceProbe::Named, true)["tool_choice"]["function"]["name"],
            "report_status"
        );
        assert_eq!(
            probe_body("m", ToolChoiceProbe::Auto, false)["stream"],
            false
        );
    }
}
