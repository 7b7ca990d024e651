//! How the chat endpoint spends its latency: all at once before a whole
//! answer, or spread over the chunks of a streamed one (`"stream": true`,
//! `chat.completion.chunk` frames then `data: [DONE]`), and, with
//! [`ChatQuirk::KeepsGenerating`](super::ChatQuirk::KeepsGenerating), on a
//! server with one generation slot that finishes a whole answer even after
//! its client left (llama-cpp-python), while a streamed one stops when its
//! client disconnects.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The one generation slot of a single-slot server.
#[derive(Debug)]
pub(crate) struct GenerationSlot {
    permits: Arc<Semaphore>,
    /// The generation holding the slot lost its client.
    holder_abandoned: Arc<AtomicBool>,
}

impl Default for GenerationSlot {
    fn default() -> Self {
        Self {
            permits: Arc::new(Semaphore::new(1)),
            holder_abandoned: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// A held slot; marks whether its client is gone.
#[derive(Debug)]
pub(crate) struct HeldSlot {
    _permit: OwnedSemaphorePermit,
    holder_abandoned: Arc<AtomicBool>,
}

impl Drop for HeldSlot {
    fn drop(&mut self) {
        self.holder_abandoned.store(false, Ordering::SeqCst);
    }
}

impl GenerationSlot {
    /// Waits for the slot (`None` only if the semaphore were closed, which
    /// it never is). `true` beside it when the request found the slot busy
    /// with a generation whose client had already gone.
    pub(crate) async fn acquire(&self) -> (Option<HeldSlot>, bool) {
        let busy_with_abandoned =
            self.permits.available_permits() == 0 && self.holder_abandoned.load(Ordering::SeqCst);
        let held = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .ok()
            .map(|permit| HeldSlot {
                _permit: permit,
                holder_abandoned: self.holder_abandoned.clone(),
            });
        (held, busy_with_abandoned)
    }
}

/// Generates a whole answer for `latency` while holding `slot`; the
/// generation runs on even when the awaiting handler is dropped (its client
/// timed out), holding the slot to the end, as a server that does not watch
/// its connections does. The task is bounded by `latency`.
pub(crate) async fn generate_whole(slot: Option<HeldSlot>, latency: Duration) {
    let Some(slot) = slot else {
        tokio::time::sleep(latency).await;
        return;
    };
    let abandoned = slot.holder_abandoned.clone();
    let mut marker = AbandonMarker {
        flag: abandoned,
        armed: true,
    };
    let generation = tokio::spawn(async move {
        tokio::time::sleep(latency).await;
        drop(slot);
    });
    let _ = generation.await;
    marker.armed = false;
}

/// Sets the slot's "abandoned" flag when the handler awaiting a generation is
/// dropped before it finished.
struct AbandonMarker {
    flag: Arc<AtomicBool>,
    armed: bool,
}

impl Drop for AbandonMarker {
    fn drop(&mut self) {
        if self.armed {
            self.flag.store(true, Ordering::SeqCst);
        }
    }
}

/// The `chat.completion.chunk` frames of a whole `chat.completion` object:
/// the content in a few pieces, each tool call's arguments in a few pieces,
/// then the finish reason with the usage, then `[DONE]`. With
/// `repeat_header`, every tool-call chunk repeats the call's id and name.
pub(crate) fn chunk_frames(completion: &Value, repeat_header: bool) -> Vec<String> {
    let id = completion.get("id").cloned().unwrap_or(Value::Null);
    let model = completion.get("model").cloned().unwrap_or(Value::Null);
    let chunk = |delta: Value, finish: Value| {
        json!({"id": id, "object": "chat.completion.chunk", "model": model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let message = completion
        .pointer("/choices/0/message")
        .cloned()
        .unwrap_or(Value::Null);
    let mut frames = vec![chunk(json!({"role": "assistant"}), Value::Null)];
    if let Some(text) = message.get("content").and_then(Value::as_str) {
        for piece in pieces(text) {
            frames.push(chunk(json!({"content": piece}), Value::Null));
        }
    }
    for (i, call) in message
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let name = call.pointer("/function/name").cloned().unwrap_or_default();
        frames.push(chunk(
            json!({"tool_calls": [{"index": i, "id": call.get("id"), "type": "function",
                                   "function": {"name": name, "arguments": ""}}]}),
            Value::Null,
        ));
        let arguments = match call.pointer("/function/arguments") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        };
        for piece in pieces(&arguments) {
            let call = if repeat_header {
                json!({"index": i, "id": call.get("id"), "type": "function",
                       "function": {"name": name, "arguments": piece}})
            } else {
                json!({"index": i, "function": {"arguments": piece}})
            };
            frames.push(chunk(json!({"tool_calls": [call]}), Value::Null));
        }
    }
    let finish = completion
        .pointer("/choices/0/finish_reason")
        .cloned()
        .unwrap_or(Value::Null);
    let mut last = chunk(json!({}), finish);
    if let Some(usage) = completion.get("usage") {
        last["usage"] = usage.clone();
    }
    frames.push(last);
    let mut out: Vec<String> = frames.iter().map(|f| format!("data: {f}\n\n")).collect();
    out.push("data: [DONE]\n\n".to_owned());
    out
}

/// `text` in up to four pieces, split on character boundaries.
fn pieces(text: &str) -> Vec<String> {
    if text.is_empty() {
        return Vec::new();
    }
    let chars: Vec<char> = text.chars().collect();
    let size = chars.len().div_ceil(4).max(1);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

/// The SSE body: `frames` with `latency` spread between them, holding `slot`
/// (if any) until the last frame is sent or the client disconnects (the body
/// is dropped, and with it the slot: generation stops).
pub(crate) fn stream_body(
    frames: Vec<String>,
    latency: Duration,
    slot: Option<HeldSlot>,
) -> axum::body::Body {
    let gap = latency / u32::try_from(frames.len().max(1)).unwrap_or(u32::MAX);
    let stream = futures::stream::unfold(
        (frames.into_iter(), slot),
        move |(mut frames, slot)| async move {
            let frame = frames.next()?;
            tokio::time::sleep(gap).await;
            Some((Ok::<Bytes, Infallible>(Bytes::from(frame)), (frames, slot)))
        },
    );
    axum::body::Body::from_stream(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_completion_becomes_chunks_that_carry_all_of_it() {
        let completion = json!({"id": "c", "model": "m", "choices": [{"index": 0,
            "finish_reason": "tool_calls", "message": {"role": "assistant", "content": "Hello there",
            "tool_calls": [{"id": "call_1", "type": "function",
                            "function": {"name": "edit_file", "arguments": "{\"edits\":[]}"}}]}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2}});
        let frames = chunk_frames(&completion, false);
        assert_eq!(frames.last().map(String::as_str), Some("data: [DONE]\n\n"));
        let chunks: Vec<Value> = frames[..frames.len() - 1]
            .iter()
            .map(|f| serde_json::from_str(f.trim_start_matches("data: ").trim()).unwrap())
            .collect();
        let text: String = chunks
            .iter()
            .filter_map(|c| {
                c.pointer("/choices/0/delta/content")
                    .and_then(Value::as_str)
            })
            .collect();
        assert_eq!(text, "Hello there");
        let args: String = chunks
            .iter()
            .filter_map(|c| {
                c.pointer("/choices/0/delta/tool_calls/0/function/arguments")
                    .and_then(Value::as_str)
            })
            .collect();
        assert_eq!(args, "{\"edits\":[]}");
        let last = chunks.last().unwrap();
        assert_eq!(last["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(last["usage"]["completion_tokens"], 2);
    }
}
