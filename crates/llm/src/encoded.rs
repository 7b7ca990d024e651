//! A Messages request serialised once. The engine needs a request's JSON
//! three times (its ledger key is the SHA-256 of it, its prompt estimate
//! counts the characters of its system, tools and messages, and the client
//! sends it); [`EncodedRequest`] writes it once and keeps the bytes with
//! those counts, so a call serialises its request once instead of four times.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

use bytes::Bytes;
use serde::ser::{Serialize, SerializeSeq, SerializeStruct, Serializer};
use serde_json::value::RawValue;

use crate::error::{Error, Result};
use crate::types::{MessageRequest, SystemBlock};

/// A request's JSON body (exactly `serde_json::to_vec(request)`) and the
/// characters of the JSON of its prompt parts.
#[derive(Clone, Debug, PartialEq)]
pub struct EncodedRequest {
    json: Bytes,
    /// The request's own `stream` flag: the body is the one a client sends
    /// only when it decided the same.
    stream: Option<bool>,
    system_chars: u64,
    tools_chars: u64,
    messages_chars: u64,
}

impl EncodedRequest {
    /// Serialises `request` once.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when the request cannot be serialised.
    pub fn new(request: &MessageRequest) -> Result<Self> {
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut scratch) => {
                scratch.clear();
                let encoded = Self::write(request, &mut scratch);
                if scratch.capacity() > SCRATCH_KEPT {
                    *scratch = Vec::new();
                }
                encoded
            }
            // Not expected (serialising never re-enters): a buffer of its own.
            Err(_) => Self::write(request, &mut Vec::new()),
        })
    }

    /// Writes `request` into `out` (empty) and copies the body out once.
    fn write(request: &MessageRequest, out: &mut Vec<u8>) -> Result<Self> {
        let written = Cell::new(0);
        let spans = PartSpans::default();
        let mut tracked = Tracked {
            out,
            written: &written,
        };
        serde_json::to_writer(
            &mut tracked,
            &Parts {
                request,
                written: &written,
                spans: &spans,
            },
        )
        .map_err(|e| Error::InvalidConfig {
            message: format!("request cannot be serialised: {e}"),
        })?;
        let json = &tracked.out[..];
        // A part the request skips (empty) still counts as `[]`.
        let chars = |span: &Cell<Option<(usize, usize)>>| match span.get() {
            Some((start, end)) => json.get(start..end).map_or(0, count_chars),
            None => 2,
        };
        Ok(Self {
            system_chars: chars(&spans.system),
            tools_chars: chars(&spans.tools),
            messages_chars: chars(&spans.messages),
            stream: request.stream,
            json: Bytes::copy_from_slice(json),
        })
    }

    /// The JSON body, `serde_json::to_vec(request)`.
    pub fn json(&self) -> &Bytes {
        &self.json
    }

    /// The body to send when the client streams (`stream`) or not: these
    /// bytes when the request says the same, `None` when the body differs
    /// (the client serialises it with its own flag then).
    pub fn body_for(&self, stream: bool) -> Option<Bytes> {
        (self.stream == stream.then_some(true)).then(|| self.json.clone())
    }

    /// Characters of the JSON of `system` (`[]` when it has none).
    pub fn system_chars(&self) -> u64 {
        self.system_chars
    }

    /// Characters of the JSON of `tools` (`[]` when it has none).
    pub fn tools_chars(&self) -> u64 {
        self.tools_chars
    }

    /// Characters of the JSON of `messages`.
    pub fn messages_chars(&self) -> u64 {
        self.messages_chars
    }
}

/// Characters of UTF-8 text: every byte but a continuation byte starts one.
fn count_chars(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|b| (**b & 0xC0) != 0x80).count() as u64
}

/// Where each prompt part's JSON lies in the body (byte offsets).
#[derive(Default)]
struct PartSpans {
    system: Cell<Option<(usize, usize)>>,
    tools: Cell<Option<(usize, usize)>>,
    messages: Cell<Option<(usize, usize)>>,
}

/// Bytes of scratch buffer a thread keeps between requests; one grown past
/// this (by a request with a large file) is dropped after use.
const SCRATCH_KEPT: usize = 1 << 20;

thread_local! {
    /// This thread's scratch buffer: a request is written here and copied out
    /// once at its exact size. The buffer keeps its capacity from one request
    /// to the next, where a fresh vector grew (and copied) a ~10 KB worker
    /// request two or three times.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The body being written, with how much of it is written so far.
struct Tracked<'a> {
    out: &'a mut Vec<u8>,
    written: &'a Cell<usize>,
}

impl std::io::Write for Tracked<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.out.extend_from_slice(bytes);
        self.written.set(self.out.len());
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The request serialised field by field as its derived `Serialize` does
/// (the same names, order and skips), noting where the prompt parts lie.
struct Parts<'a> {
    request: &'a MessageRequest,
    written: &'a Cell<usize>,
    spans: &'a PartSpans,
}

/// A value whose span in the body is noted as it is written.
struct Marked<'a, T> {
    value: &'a T,
    written: &'a Cell<usize>,
    span: &'a Cell<Option<(usize, usize)>>,
}

impl<T: Serialize> Serialize for Marked<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let start = self.written.get();
        let done = self.value.serialize(serializer)?;
        self.span.set(Some((start, self.written.get())));
        Ok(done)
    }
}

impl<'a> Parts<'a> {
    fn marked<T>(&self, value: &'a T, span: &'a Cell<Option<(usize, usize)>>) -> Marked<'a, T> {
        Marked {
            value,
            written: self.written,
            span,
        }
    }
}

impl Serialize for Parts<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let r = self.request;
        let mut s = serializer.serialize_struct("MessageRequest", 9)?;
        s.serialize_field("model", &r.model)?;
        s.serialize_field("max_tokens", &r.max_tokens)?;
        if r.system.is_empty() {
            s.skip_field("system")?;
        } else {
            let system = SystemBlocks(&r.system);
            s.serialize_field("system", &self.marked(&system, &self.spans.system))?;
        }
        if r.tools.is_empty() {
            s.skip_field("tools")?;
        } else {
            s.serialize_field("tools", &self.marked(&r.tools, &self.spans.tools))?;
        }
        match &r.tool_choice {
            Some(choice) => s.serialize_field("tool_choice", choice)?,
            None => s.skip_field("tool_choice")?,
        }
        s.serialize_field("messages", &self.marked(&r.messages, &self.spans.messages))?;
        match &r.thinking {
            Some(thinking) => s.serialize_field("thinking", thinking)?,
            None => s.skip_field("thinking")?,
        }
        match &r.output_config {
            Some(config) => s.serialize_field("output_config", config)?,
            None => s.skip_field("output_config")?,
        }
        match &r.stream {
            Some(stream) => s.serialize_field("stream", stream)?,
            None => s.skip_field("stream")?,
        }
        s.end()
    }
}

/// System texts at least this long are escaped once per thread and reused.
const REUSED_TEXT_BYTES: usize = 1024;

/// Long system texts a thread remembers the JSON of.
const REUSED_TEXTS: usize = 4;

thread_local! {
    /// The JSON of the long system texts this thread wrote last. A job's
    /// shared prefix (~8 KB) is in every worker request: its JSON is written
    /// again as it was, where escaping it anew was ~4% of the engine's CPU at
    /// 512 calls in flight. A text is known by its content (compared, not
    /// hashed), so a changed text is never written from an old one.
    static ESCAPED: RefCell<VecDeque<(String, Box<RawValue>)>> =
        const { RefCell::new(VecDeque::new()) };
}

/// The `system` array as its derived `Serialize` writes it, long texts
/// through [`ESCAPED`].
struct SystemBlocks<'a>(&'a [SystemBlock]);

impl Serialize for SystemBlocks<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for block in self.0 {
            seq.serialize_element(&Block(block))?;
        }
        seq.end()
    }
}

/// One system block, field by field as [`SystemBlock`]'s derived `Serialize`.
struct Block<'a>(&'a SystemBlock);

impl Serialize for Block<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let b = self.0;
        let mut s = serializer.serialize_struct("SystemBlock", 3)?;
        s.serialize_field("type", &b.kind)?;
        if b.text.len() >= REUSED_TEXT_BYTES {
            s.serialize_field("text", &ReusedText(&b.text))?;
        } else {
            s.serialize_field("text", &b.text)?;
        }
        match &b.cache_control {
            Some(cache) => s.serialize_field("cache_control", cache)?,
            None => s.skip_field("cache_control")?,
        }
        s.end()
    }
}

/// A long text, written from [`ESCAPED`] when this thread wrote it lately.
struct ReusedText<'a>(&'a str);

impl Serialize for ReusedText<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        ESCAPED.with(|cell| {
            // Not expected (nothing here re-enters): written plainly.
            let Ok(mut escaped) = cell.try_borrow_mut() else {
                return serializer.serialize_str(self.0);
            };
            if let Some((_, json)) = escaped.iter().find(|(text, _)| text == self.0) {
                return json.serialize(serializer);
            }
            let Ok(Ok(json)) = serde_json::to_string(self.0).map(RawValue::from_string) else {
                return serializer.serialize_str(self.0);
            };
            if escaped.len() == REUSED_TEXTS {
                escaped.pop_front();
            }
            let done = json.serialize(serializer);
            escaped.push_back((self.0.to_owned(), json));
            done
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{
        CacheControl, ContentBlock, Message, MessageRole, OutputConfig, SystemBlock,
        ThinkingConfig, ToolChoice, ToolDefinition,
    };
    use pretty_assertions::assert_eq;

    fn chars(json: String) -> u64 {
        json.chars().count() as u64
    }

    fn full() -> MessageRequest {
        MessageRequest {
            model: "claude-haiku-4-5".into(),
            max_tokens: 300,
            system: vec![SystemBlock {
                cache_control: Some(CacheControl::ephemeral()),
                ..SystemBlock::text("système ✓ \"prefix\"")
            }],
            tools: vec![ToolDefinition {
                name: "edit_file".into(),
                description: Some("edits 🙂".into()),
                input_schema: serde_json::json!({"type": "object", "required": ["edits"]}).into(),
                cache_control: None,
            }],
            tool_choice: Some(ToolChoice::Any),
            messages: vec![Message {
                role: MessageRole::User,
                content: vec![ContentBlock::text("naïve\ntext")],
            }],
            thinking: Some(ThinkingConfig::Enabled {
                budget_tokens: 1024,
            }),
            output_config: Some(OutputConfig {
                effort: Some("low".into()),
            }),
            stream: Some(true),
        }
    }

    fn bare() -> MessageRequest {
        MessageRequest {
            model: "m".into(),
            max_tokens: 1,
            system: Vec::new(),
            tools: Vec::new(),
            tool_choice: None,
            messages: Vec::new(),
            thinking: None,
            output_config: None,
            stream: None,
        }
    }

    #[test]
    fn the_body_is_the_requests_json_and_the_parts_are_counted_in_characters() {
        for r in [full(), bare()] {
            let e = EncodedRequest::new(&r).unwrap();
            assert_eq!(e.json().to_vec(), serde_json::to_vec(&r).unwrap());
            assert_eq!(
                e.system_chars(),
                chars(serde_json::to_string(&r.system).unwrap())
            );
            assert_eq!(
                e.tools_chars(),
                chars(serde_json::to_string(&r.tools).unwrap())
            );
            assert_eq!(
                e.messages_chars(),
                chars(serde_json::to_string(&r.messages).unwrap())
            );
        }
    }

    #[test]
    fn a_long_system_text_is_written_again_as_its_json_and_never_from_another() {
        // Long enough to be reused, with what JSON escapes and multi-byte text.
        let prefix = "line \"one\"\n\ttab \\ naïve 🙂 \u{1}".repeat(REUSED_TEXT_BYTES / 8);
        let mut changed = prefix.clone();
        changed.replace_range(0..4, "LINE");
        let mut r = full();
        r.system.push(SystemBlock {
            cache_control: Some(CacheControl::ephemeral()),
            ..SystemBlock::text(prefix)
        });
        // Written fresh, then reused, then a text of the same length but
        // another content, then more long texts than are remembered.
        let mut texts = vec![r.system[1].text.clone(); 2];
        texts.push(changed);
        let first = texts[0].clone();
        texts.extend((0..REUSED_TEXTS + 1).map(|i| format!("{i}{first}")));
        texts.push(first);
        for text in texts {
            r.system[1].text = text;
            let e = EncodedRequest::new(&r).unwrap();
            assert_eq!(
                String::from_utf8(e.json().to_vec()).unwrap(),
                serde_json::to_string(&r).unwrap()
            );
            assert_eq!(
                e.system_chars(),
                chars(serde_json::to_string(&r.system).unwrap())
            );
        }
    }

    #[test]
    fn the_body_is_offered_only_for_the_stream_flag_it_was_written_with() {
        let mut r = bare();
        let plain = EncodedRequest::new(&r).unwrap();
        assert_eq!(plain.body_for(false), Some(plain.json().clone()));
        assert_eq!(plain.body_for(true), None);
        r.stream = Some(true);
        let streamed = EncodedRequest::new(&r).unwrap();
        assert_eq!(streamed.body_for(true), Some(streamed.json().clone()));
        assert_eq!(streamed.body_for(false), None);
        r.stream = Some(false);
        let refused = EncodedRequest::new(&r).unwrap();
        assert_eq!(
            (refused.body_for(false), refused.body_for(true)),
            (None, None)
        );
    }
}
