//! The Messages stream assembler: turns the data of a streamed Messages
//! response's server-sent events into one [`MessageResponse`].
//!
//! Events are dispatched on the JSON `type` field, not the `event:` name
//! (reference section 6). `input_json_delta` fragments are concatenated per
//! block index and parsed at `content_block_stop`; `message_delta.usage` is
//! cumulative, so present fields overwrite, never add.
//!
//! Truncated tool calls: when the accumulated `input_json` of a `tool_use`
//! block does not parse (typically `stop_reason: max_tokens` cut the call
//! short), the block is kept as `ToolUse { input: Value::Null }` rather than
//! failing the call. `Null` is never a valid tool input (inputs are objects),
//! so the caller sees a malformed tool call together with the stop reason.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::FirstEvent;
use crate::error::{ApiErrorKind, Error, ErrorDetail, Result, StreamError};
use crate::sse::SseFrameParser;
use crate::types::{ContentBlock, MessageResponse, StopReason, Usage};

/// One stream event, by JSON `type`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StreamEvent {
    MessageStart {
        message: StartMessage,
    },
    ContentBlockStart {
        index: usize,
        content_block: Value,
    },
    ContentBlockDelta {
        index: usize,
        delta: Delta,
    },
    ContentBlockStop {
        index: usize,
    },
    MessageDelta {
        #[serde(default)]
        delta: MessageDeltaBody,
        #[serde(default)]
        usage: Option<DeltaUsage>,
    },
    MessageStop,
    Ping,
    Error {
        error: ErrorDetail,
        #[serde(default)]
        request_id: Option<String>,
    },
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Deserialize)]
struct StartMessage {
    id: String,
    model: String,
    #[serde(default)]
    usage: Usage,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Delta {
    #[serde(rename = "text_delta")]
    Text { text: String },
    #[serde(rename = "input_json_delta")]
    InputJson { partial_json: String },
    #[serde(rename = "thinking_delta")]
    Thinking { thinking: String },
    #[serde(rename = "signature_delta")]
    Signature { signature: String },
    #[serde(other)]
    Other,
}

#[derive(Debug, Default, Deserialize)]
struct MessageDeltaBody {
    #[serde(default)]
    stop_reason: Option<StopReason>,
}

/// `message_delta.usage`: cumulative; absent fields keep their value.
#[derive(Debug, Default, Deserialize)]
struct DeltaUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
}

/// A block being assembled.
#[derive(Debug)]
enum Builder {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        initial: Value,
        json: String,
    },
    Thinking {
        thinking: String,
        signature: String,
    },
    Redacted {
        data: String,
    },
    Unknown,
    /// Already stopped.
    Done(ContentBlock),
}

impl Builder {
    fn start(block: Value) -> Self {
        let text = |key: &str| {
            block
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        match block.get("type").and_then(Value::as_str) {
            Some("text") => Builder::Text { text: text("text") },
            Some("tool_use") => Builder::ToolUse {
                id: text("id"),
                name: text("name"),
                initial: block
                    .get("input")
                    .cloned()
                    .unwrap_or_else(|| Value::Object(Default::default())),
                json: String::new(),
            },
            Some("thinking") => Builder::Thinking {
                thinking: text("thinking"),
                signature: text("signature"),
            },
            Some("redacted_thinking") => Builder::Redacted { data: text("data") },
            _ => Builder::Unknown,
        }
    }

    fn finish(self) -> ContentBlock {
        match self {
            Builder::Text { text } => ContentBlock::Text {
                text,
                cache_control: None,
            },
            Builder::ToolUse {
                id,
                name,
                initial,
                json,
            } => {
                let input = if json.trim().is_empty() {
                    initial
                } else {
                    match serde_json::from_str(&json) {
                        Ok(v) => v,
                        Err(e) => {
                            tracing::warn!(tool = %name, error = %e, bytes = json.len(), "tool input JSON does not parse; keeping input = null");
                            Value::Null
                        }
                    }
                };
                ContentBlock::ToolUse { id, name, input }
            }
            Builder::Thinking {
                thinking,
                signature,
            } => ContentBlock::Thinking {
                thinking,
                signature,
            },
            Builder::Redacted { data } => ContentBlock::RedactedThinking { data },
            Builder::Unknown => ContentBlock::Unknown,
            Builder::Done(block) => block,
        }
    }
}

/// Builds a [`MessageResponse`] from stream events.
#[derive(Debug, Default)]
pub(crate) struct Assembler {
    start: Option<(String, String)>,
    usage: Usage,
    stop_reason: Option<StopReason>,
    blocks: BTreeMap<usize, Builder>,
    request_id: Option<String>,
}

impl Assembler {
    pub(crate) fn new(request_id: Option<String>) -> Self {
        Self {
            request_id,
            ..Self::default()
        }
    }

    fn protocol(&self, message: impl Into<String>) -> Error {
        Error::Stream(StreamError {
            kind: None,
            message: message.into(),
            request_id: self.request_id.clone(),
        })
    }

    /// Applies one event's data; returns the message at `message_stop`.
    pub(crate) fn on_data(&mut self, data: &str) -> Result<Option<MessageResponse>> {
        let event: StreamEvent =
            serde_json::from_str(data).map_err(|e| Error::decode(e, data.as_bytes()))?;
        match event {
            StreamEvent::Ping | StreamEvent::Unknown => {}
            StreamEvent::Error { error, request_id } => {
                let kind = error.kind.unwrap_or_default();
                return Err(Error::Stream(StreamError {
                    kind: Some(ApiErrorKind::from_type(&kind).unwrap_or(ApiErrorKind::Other(kind))),
                    message: error
                        .message
                        .unwrap_or_else(|| "error event without message".into()),
                    request_id: request_id.or_else(|| self.request_id.clone()),
                }));
            }
            StreamEvent::MessageStart { message } => {
                if self.start.is_some() {
                    return Err(self.protocol("second message_start"));
                }
                self.start = Some((message.id, message.model));
                self.usage = message.usage;
            }
            _ if self.start.is_none() => {
                return Err(self.protocol("event before message_start"));
            }
            StreamEvent::ContentBlockStart {
                index,
                content_block,
            } => {
                if self
                    .blocks
                    .insert(index, Builder::start(content_block))
                    .is_some()
                {
                    return Err(self.protocol(format!("content block {index} started twice")));
                }
            }
            StreamEvent::ContentBlockDelta { index, delta } => {
                let Some(block) = self.blocks.get_mut(&index) else {
                    return Err(self.protocol(format!("delta for unknown content block {index}")));
                };
                match (block, delta) {
                    (Builder::Text { text }, Delta::Text { text: t }) => text.push_str(&t),
                    (Builder::ToolUse { json, .. }, Delta::InputJson { partial_json }) => {
                        json.push_str(&partial_json);
                    }
                    (Builder::Thinking { thinking, .. }, Delta::Thinking { thinking: t }) => {
                        thinking.push_str(&t);
                    }
                    (Builder::Thinking { signature, .. }, Delta::Signature { signature: s }) => {
                        signature.push_str(&s);
                    }
                    (Builder::Done(_), _) => {
                        return Err(self.protocol(format!(
                            "delta after content_block_stop for block {index}"
                        )));
                    }
                    (_, delta) => {
                        tracing::debug!(
                            index,
                            ?delta,
                            "ignoring delta that does not fit its block"
                        );
                    }
                }
            }
            StreamEvent::ContentBlockStop { index } => {
                let Some(block) = self.blocks.remove(&index) else {
                    return Err(self.protocol(format!("stop for unknown content block {index}")));
                };
                let done = Builder::Done(block.finish());
                self.blocks.insert(index, done);
            }
            StreamEvent::MessageDelta { delta, usage } => {
                if delta.stop_reason.is_some() {
                    self.stop_reason = delta.stop_reason;
                }
                if let Some(u) = usage {
                    let target = &mut self.usage;
                    for (field, value) in [
                        (&mut target.input_tokens, u.input_tokens),
                        (&mut target.output_tokens, u.output_tokens),
                        (
                            &mut target.cache_creation_input_tokens,
                            u.cache_creation_input_tokens,
                        ),
                        (
                            &mut target.cache_read_input_tokens,
                            u.cache_read_input_tokens,
                        ),
                    ] {
                        if let Some(v) = value {
                            *field = v;
                        }
                    }
                }
            }
            StreamEvent::MessageStop => {
                let Some((id, model)) = self.start.take() else {
                    return Err(self.protocol("message_stop before message_start"));
                };
                let content = std::mem::take(&mut self.blocks)
                    .into_values()
                    .map(Builder::finish)
                    .collect();
                return Ok(Some(MessageResponse {
                    id,
                    model,
                    content,
                    stop_reason: self.stop_reason.take(),
                    usage: self.usage,
                }));
            }
        }
        Ok(None)
    }
}

/// Reads an SSE Messages response to the end and assembles it, telling
/// `first_event` (when given) once the first event was accepted.
pub(crate) async fn read_message(
    mut response: reqwest::Response,
    request_id: Option<String>,
    mut first_event: Option<FirstEvent<'_>>,
) -> Result<MessageResponse> {
    let mut parser = SseFrameParser::new();
    let mut assembler = Assembler::new(request_id.clone());
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => {
                return Err(Error::Stream(StreamError {
                    kind: None,
                    message: "stream ended before message_stop".into(),
                    request_id,
                }));
            }
            Err(e) if e.is_timeout() => return Err(Error::from_reqwest(e, true)),
            Err(e) => {
                return Err(Error::Stream(StreamError {
                    kind: None,
                    message: format!("stream interrupted: {}", Error::from_reqwest(e, true)),
                    request_id,
                }));
            }
        };
        for frame in parser.push(&chunk)? {
            let message = assembler.on_data(&frame.data)?;
            if let Some(tell) = first_event.take() {
                tell();
            }
            if let Some(message) = message {
                return Ok(message);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;
    use serde_json::json;

    #[test]
    fn assembler_merges_cumulative_usage_and_tool_fragments() {
        let mut a = Assembler::new(None);
        let events = [
            json!({"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"m","stop_reason":null,"usage":{"input_tokens":25,"cache_read_input_tokens":7,"output_tokens":1}}}),
            json!({"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_1","name":"edit_file","input":{}}}),
            json!({"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"edits\": [{\"old\""}}),
            json!({"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":": \"a\", \"new\": \"b\"}]}"}}),
            json!({"type":"content_block_stop","index":0}),
            json!({"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":5}}),
            json!({"type":"message_delta","delta":{},"usage":{"output_tokens":9}}),
        ];
        for e in events {
            assert_eq!(a.on_data(&e.to_string()).unwrap(), None);
        }
        let msg = a.on_data(r#"{"type":"message_stop"}"#).unwrap().unwrap();
        assert_eq!(
            msg.content,
            vec![ContentBlock::ToolUse {
                id: "toolu_1".into(),
                name: "edit_file".into(),
                input: json!({"edits":[{"old":"a","new":"b"}]})
            }]
        );
        assert_eq!(msg.usage.output_tokens, 9);
        assert_eq!(msg.usage.input_tokens, 25);
        assert_eq!(msg.usage.cache_read_input_tokens, 7);
        assert_eq!(msg.stop_reason, Some(StopReason::ToolUse));
    }

    #[test]
    fn events_before_start_are_a_protocol_error() {
        let mut a = Assembler::new(Some("req_x".into()));
        let err = a
            .on_data(r#"{"type":"content_block_stop","index":0}"#)
            .unwrap_err();
        assert!(
            matches!(&err, Error::Stream(StreamError { kind: None, request_id: Some(r), .. }) if r == "req_x")
        );
        assert!(err.is_retryable());
    }
}
