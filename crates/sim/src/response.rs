//! Putting answers on the wire: the Message JSON and the SSE event sequence.

use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};

use crate::agents::{Answer, AnswerBlock};
use crate::cache::CachePlan;

/// Token usage of one response.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct UsageNums {
    pub(crate) input: u64,
    pub(crate) cache_read: u64,
    pub(crate) write_5m: u64,
    pub(crate) write_1h: u64,
    pub(crate) output: u64,
    pub(crate) thinking: u64,
}

impl UsageNums {
    pub(crate) fn new(plan: &CachePlan, answer: &Answer) -> Self {
        Self {
            input: plan.input,
            cache_read: plan.read,
            write_5m: plan.write_5m,
            write_1h: plan.write_1h,
            output: answer.output_tokens,
            thinking: answer.thinking_tokens,
        }
    }

    fn creation(&self) -> u64 {
        self.write_5m + self.write_1h
    }

    pub(crate) fn json(&self, service_tier: &str, output: u64) -> Value {
        json!({
            "input_tokens": self.input,
            "cache_creation_input_tokens": self.creation(),
            "cache_read_input_tokens": self.cache_read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.write_5m,
                "ephemeral_1h_input_tokens": self.write_1h,
            },
            "output_tokens": output,
            "output_tokens_details": {"thinking_tokens": self.thinking.min(output)},
            "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
            "service_tier": service_tier,
        })
    }
}

fn block_json(block: &AnswerBlock) -> Value {
    match block {
        AnswerBlock::Thinking {
            thinking,
            signature,
        } => {
            json!({"type": "thinking", "thinking": thinking, "signature": signature})
        }
        AnswerBlock::Text(text) => json!({"type": "text", "text": text, "citations": null}),
        AnswerBlock::ToolUse {
            id, name, input, ..
        } => {
            json!({"type": "tool_use", "id": id, "name": name, "input": input})
        }
    }
}

/// The full non-streaming `Message`.
pub(crate) fn message_json(
    id: &str,
    model: &str,
    answer: &Answer,
    usage: &UsageNums,
    tier: &str,
) -> Value {
    json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": answer.blocks.iter().map(block_json).collect::<Vec<_>>(),
        "stop_reason": answer.stop_reason,
        "stop_sequence": answer.stop_sequence,
        "stop_details": null,
        "usage": usage.json(tier, usage.output),
    })
}

/// Splits `s` into at least three fragments (when long enough) of at most 64 chars.
pub(crate) fn fragments(s: &str) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    if chars.is_empty() {
        return Vec::new();
    }
    let size = chars.len().div_ceil(3).clamp(1, 64);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

/// One SSE event, ready to send.
pub(crate) fn sse(event: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

/// The complete event sequence of a streamed answer.
pub(crate) fn sse_events(id: &str, model: &str, answer: &Answer, usage: &UsageNums) -> Vec<Bytes> {
    let mut out = Vec::new();
    out.push(sse(
        "message_start",
        &json!({
            "type": "message_start",
            "message": {
                "id": id,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": usage.json("standard", 1),
            }
        }),
    ));
    if answer.blocks.is_empty() {
        out.push(sse("ping", &json!({"type": "ping"})));
    }
    for (index, block) in answer.blocks.iter().enumerate() {
        let start = match block {
            AnswerBlock::Thinking { .. } => {
                json!({"type": "thinking", "thinking": "", "signature": ""})
            }
            AnswerBlock::Text(_) => json!({"type": "text", "text": ""}),
            AnswerBlock::ToolUse { id, name, .. } => {
                json!({"type": "tool_use", "id": id, "name": name, "input": {}})
            }
        };
        out.push(sse(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": start}),
        ));
        if index == 0 {
            out.push(sse("ping", &json!({"type": "ping"})));
        }
        let delta = |d: Value| {
            sse(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index, "delta": d}),
            )
        };
        match block {
            AnswerBlock::Thinking {
                thinking,
                signature,
            } => {
                for piece in fragments(thinking) {
                    out.push(delta(json!({"type": "thinking_delta", "thinking": piece})));
                }
                out.push(delta(
                    json!({"type": "signature_delta", "signature": signature}),
                ));
            }
            AnswerBlock::Text(text) => {
                for piece in fragments(text) {
                    out.push(delta(json!({"type": "text_delta", "text": piece})));
                }
            }
            AnswerBlock::ToolUse {
                input,
                partial_json,
                ..
            } => {
                let json_text = partial_json.clone().unwrap_or_else(|| input.to_string());
                out.push(delta(
                    json!({"type": "input_json_delta", "partial_json": ""}),
                ));
                for piece in fragments(&json_text) {
                    out.push(delta(
                        json!({"type": "input_json_delta", "partial_json": piece}),
                    ));
                }
            }
        }
        out.push(sse(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        ));
    }
    out.push(sse(
        "message_delta",
        &json!({
            "type": "message_delta",
            "delta": {"stop_reason": answer.stop_reason, "stop_sequence": answer.stop_sequence},
            "usage": {
                "input_tokens": usage.input,
                "cache_creation_input_tokens": usage.creation(),
                "cache_read_input_tokens": usage.cache_read,
                "output_tokens": usage.output,
            },
        }),
    ));
    out.push(sse("message_stop", &json!({"type": "message_stop"})));
    out
}

/// Spreads `total` evenly over `n` gaps.
pub(crate) fn per_event_delay(total: Duration, n: usize) -> Duration {
    if n == 0 {
        Duration::ZERO
    } else {
        total / u32::try_from(n).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_cover_the_text() {
        let s = "{\"edits\":[{\"old\":\"a\",\"new\":\"b\"}]}";
        let parts = fragments(s);
        assert!(parts.len() >= 3);
        assert_eq!(parts.concat(), s);
        assert!(fragments("").is_empty());
        assert_eq!(fragments("ab").concat(), "ab");
    }
}
