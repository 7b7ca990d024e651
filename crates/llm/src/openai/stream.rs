//! Streamed Chat Completions (`"stream": true`): `chat.completion.chunk`
//! frames assembled into the one `chat.completion` object the
//! non-streaming path reads, so both go through the same repair.
//!
//! Each chunk carries a `choices[0].delta` with a piece of `content`
//! and/or `tool_calls[i]` pieces (the first with `id` and `function.name`,
//! the rest with more `function.arguments`), and the last a
//! `finish_reason`; `usage` comes in a final chunk when the server sends it
//! (llama-cpp-python does not: then each chunk counts as one output token,
//! which is how llama.cpp streams).

use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::sse::SseFrameParser;

/// Assembles the chunks of one streamed completion.
#[derive(Debug, Default)]
pub(crate) struct ChunkAssembler {
    parser: SseFrameParser,
    id: Option<String>,
    model: Option<String>,
    content: String,
    /// Per tool-call index: id, name, arguments so far.
    calls: Vec<(Option<String>, String, String)>,
    finish_reason: Option<String>,
    usage: Option<Value>,
    chunks: u64,
    done: bool,
}

impl ChunkAssembler {
    /// Feeds bytes of the body; `Ok(true)` once `data: [DONE]` arrived.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Result<bool> {
        for frame in self.parser.push(bytes)? {
            let data = frame.data.trim();
            if data.is_empty() {
                continue;
            }
            if data == "[DONE]" {
                self.done = true;
                continue;
            }
            let chunk: Value =
                serde_json::from_str(data).map_err(|e| Error::decode(e, data.as_bytes()))?;
            if let Some(error) = chunk.get("error") {
                return Err(Error::decode(
                    format!("the stream sent an error: {error}"),
                    data.as_bytes(),
                ));
            }
            self.chunk(&chunk);
        }
        Ok(self.done)
    }

    fn chunk(&mut self, chunk: &Value) {
        self.chunks += 1;
        if self.id.is_none() {
            self.id = chunk.get("id").and_then(Value::as_str).map(str::to_owned);
        }
        if self.model.is_none() {
            self.model = chunk
                .get("model")
                .and_then(Value::as_str)
                .map(str::to_owned);
        }
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(usage.clone());
        }
        let Some(choice) = chunk.pointer("/choices/0") else {
            return;
        };
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish_reason = Some(reason.to_owned());
        }
        let Some(delta) = choice.get("delta") else {
            return;
        };
        if let Some(text) = delta.get("content").and_then(Value::as_str) {
            self.content.push_str(text);
        }
        for (position, call) in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let index = call
                .get("index")
                .and_then(Value::as_u64)
                .map_or(position, |i| i as usize);
            while self.calls.len() <= index {
                self.calls.push((None, String::new(), String::new()));
            }
            let slot = &mut self.calls[index];
            if let Some(id) = call.get("id").and_then(Value::as_str) {
                slot.0 = Some(id.to_owned());
            }
            // llama-cpp-python repeats the whole name in every chunk.
            if let Some(name) = call.pointer("/function/name").and_then(Value::as_str)
                && slot.1 != name
            {
                slot.1.push_str(name);
            }
            match call.pointer("/function/arguments") {
                Some(Value::String(piece)) => slot.2.push_str(piece),
                Some(Value::Null) | None => {}
                Some(other) => slot.2.push_str(&other.to_string()),
            }
        }
    }

    /// Whether the server sent nothing at all: no chunk and no `[DONE]`.
    pub(crate) fn is_empty(&self) -> bool {
        self.chunks == 0 && !self.done
    }

    /// Whether the stream ended properly (`[DONE]` or a finish reason).
    pub(crate) fn finished(&self) -> bool {
        self.done || self.finish_reason.is_some()
    }

    /// The assembled `chat.completion` object.
    pub(crate) fn completion(self) -> Value {
        let mut message = Map::new();
        message.insert("role".into(), Value::from("assistant"));
        message.insert(
            "content".into(),
            if self.content.is_empty() {
                Value::Null
            } else {
                Value::from(self.content)
            },
        );
        if !self.calls.is_empty() {
            let calls: Vec<Value> = self
                .calls
                .into_iter()
                .enumerate()
                .map(|(i, (id, name, arguments))| {
                    json!({"id": id.unwrap_or_else(|| format!("call_{i}")), "type": "function",
                           "function": {"name": name, "arguments": arguments}})
                })
                .collect();
            message.insert("tool_calls".into(), Value::Array(calls));
        }
        let usage = self.usage.unwrap_or_else(|| {
            // Without a usage chunk, each content chunk was one token.
            json!({"prompt_tokens": 0, "completion_tokens": self.chunks.saturating_sub(1)})
        });
        json!({
            "id": self.id,
            "model": self.model,
            "choices": [{"index": 0, "finish_reason": self.finish_reason, "message": message}],
            "usage": usage,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(v: Value) -> String {
        format!("data: {v}\n\n")
    }

    #[test]
    fn chunks_assemble_into_one_completion() {
        let mut a = ChunkAssembler::default();
        let body = [
            frame(
                json!({"id": "c1", "model": "m", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}}]}),
            ),
            frame(json!({"id": "c1", "choices": [{"index": 0, "delta": {"content": "lo"}}]})),
            frame(
                json!({"id": "c1", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_a", "function": {"name": "edit_file", "arguments": "{\"ed"}}]}}]}),
            ),
            frame(
                json!({"id": "c1", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "its\": []}"}}]}}]}),
            ),
            frame(json!({"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})),
            "data: [DONE]\n\n".to_owned(),
        ]
        .concat();
        let (first, second) = body.as_bytes().split_at(37);
        assert!(!a.push(first).unwrap());
        assert!(a.push(second).unwrap());
        assert!(a.finished());
        let c = a.completion();
        assert_eq!(c["id"], "c1");
        assert_eq!(c["choices"][0]["finish_reason"], "tool_calls");
        let m = &c["choices"][0]["message"];
        assert_eq!(m["content"], "Hello");
        assert_eq!(m["tool_calls"][0]["id"], "call_a");
        assert_eq!(m["tool_calls"][0]["function"]["name"], "edit_file");
        assert_eq!(
            m["tool_calls"][0]["function"]["arguments"],
            "{\"edits\": []}"
        );
        assert_eq!(c["usage"]["completion_tokens"], 4);
    }

    #[test]
    fn a_usage_chunk_wins_and_an_error_chunk_fails() {
        let mut a = ChunkAssembler::default();
        let body = [
            frame(json!({"choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": "length"}]})),
            frame(json!({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 1}})),
        ]
        .concat();
        assert!(!a.push(body.as_bytes()).unwrap());
        assert!(a.finished());
        assert_eq!(a.completion()["usage"]["prompt_tokens"], 9);
        let mut b = ChunkAssembler::default();
        assert!(
            b.push(frame(json!({"error": {"message": "boom"}})).as_bytes())
                .is_err()
        );
        assert!(!b.finished());
    }
}
