//! The per-model prompt cache.
//!
//! The prompt is rendered in the API's order (tools -> system -> messages).
//! Every `cache_control` breakpoint closes a prefix whose key is the SHA-256
//! of the canonical JSON (sorted keys, `cache_control` removed) of every block
//! up to and including the breakpoint block. Between system and messages a
//! pseudo-block holding `tool_choice` and whether thinking is on is hashed, so
//! changing those invalidates only message-level entries, as documented.
//! Prefixes shorter than the model's `min_cacheable_tokens` are never cached.
//! A request reads the longest live prefix and writes every longer eligible
//! breakpoint; the writes become readable only when [`PromptCache::commit`]
//! runs, which the server does once the response has been produced (or its
//! stream has started). TTLs (5m / 1h) are refreshed on every hit. The
//! 20-block lookback limit of the real API is not modelled.

use std::collections::HashMap;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::request::{ParsedRequest, ToolChoice, Ttl};
use crate::tokens;

/// One breakpoint: the key of the prefix it closes and that prefix's tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Breakpoint {
    key: [u8; 32],
    pub(crate) tokens: u64,
    ttl: Ttl,
}

/// The rendered prompt: its breakpoints in order and its total tokens.
#[derive(Clone, Debug)]
pub(crate) struct Rendered {
    pub(crate) breakpoints: Vec<Breakpoint>,
    pub(crate) total_tokens: u64,
}

/// What a request reads and writes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct CachePlan {
    pub(crate) read: u64,
    pub(crate) write_5m: u64,
    pub(crate) write_1h: u64,
    /// Uncached remainder.
    pub(crate) input: u64,
    model: String,
    writes: Vec<([u8; 32], u64, Ttl)>,
}

impl CachePlan {
    pub(crate) fn creation(&self) -> u64 {
        self.write_5m + self.write_1h
    }
}

#[derive(Clone, Debug)]
struct Entry {
    ttl: Ttl,
    expires_at_ms: u64,
}

/// All cache entries, keyed by (canonical model id, prefix key).
#[derive(Debug, Default)]
pub(crate) struct PromptCache {
    entries: HashMap<(String, [u8; 32]), Entry>,
}

impl PromptCache {
    /// Looks the request up (refreshing the TTL of a hit) and decides what it
    /// writes. Nothing becomes readable until [`PromptCache::commit`].
    pub(crate) fn plan(
        &mut self,
        model: &str,
        rendered: &Rendered,
        min_tokens: u64,
        now_ms: u64,
    ) -> CachePlan {
        let eligible: Vec<&Breakpoint> = rendered
            .breakpoints
            .iter()
            .filter(|b| b.tokens > 0 && b.tokens >= min_tokens)
            .collect();
        let mut hit = None;
        for (i, bp) in eligible.iter().enumerate().rev() {
            let key = (model.to_string(), bp.key);
            match self.entries.get_mut(&key) {
                Some(entry) if entry.expires_at_ms > now_ms => {
                    entry.expires_at_ms = now_ms + entry.ttl.millis();
                    hit = Some(i);
                    break;
                }
                Some(_) => {
                    self.entries.remove(&key);
                }
                None => {}
            }
        }
        let read = hit.map_or(0, |i| eligible[i].tokens);
        let mut plan = CachePlan {
            read,
            model: model.to_string(),
            ..CachePlan::default()
        };
        let mut prev = read;
        let start = hit.map_or(0, |i| i + 1);
        for bp in &eligible[start..] {
            let segment = bp.tokens.saturating_sub(prev);
            prev = prev.max(bp.tokens);
            match bp.ttl {
                Ttl::FiveMinutes => plan.write_5m += segment,
                Ttl::OneHour => plan.write_1h += segment,
            }
            plan.writes.push((bp.key, bp.tokens, bp.ttl));
        }
        plan.input = rendered.total_tokens.saturating_sub(read + plan.creation());
        plan
    }

    /// Makes a plan's writes readable.
    pub(crate) fn commit(&mut self, plan: &CachePlan, now_ms: u64) {
        for (key, _tokens, ttl) in &plan.writes {
            self.entries.insert(
                (plan.model.clone(), *key),
                Entry {
                    ttl: *ttl,
                    expires_at_ms: now_ms + ttl.millis(),
                },
            );
        }
        if self.entries.len() > 50_000 {
            self.entries.retain(|_, e| e.expires_at_ms > now_ms);
        }
    }
}

fn ttl_of(block: &Value) -> Option<Ttl> {
    let cc = block.get("cache_control")?;
    if cc.is_null() {
        return None;
    }
    Some(if cc.get("ttl").and_then(Value::as_str) == Some("1h") {
        Ttl::OneHour
    } else {
        Ttl::FiveMinutes
    })
}

/// One block of the prompt in the API's order, as the cache sees it.
enum Part<'r> {
    Tool(&'r Value),
    Block(&'static str, &'r Value),
    /// The `tool_choice` and thinking pseudo-block between system and messages.
    Settings,
}

/// Renders a validated request into its breakpoints. Only the blocks up to
/// the last breakpoint are rendered and hashed: nothing after it is part of
/// any key, and the request's total tokens were counted when it was parsed.
pub(crate) fn render(req: &ParsedRequest) -> Rendered {
    // Automatic caching marks the last cacheable block of the conversation.
    let auto_bp = req.top_cache_control.and_then(|ttl| {
        req.messages.iter().enumerate().rev().find_map(|(i, m)| {
            m.blocks
                .iter()
                .rposition(|b| {
                    !matches!(
                        b.get("type").and_then(Value::as_str),
                        Some("thinking" | "redacted_thinking")
                    )
                })
                .map(|j| (i, j, ttl))
        })
    });
    let mut parts: Vec<(Part<'_>, Option<Ttl>)> = Vec::new();
    parts.extend(req.tools.iter().map(|t| (Part::Tool(t), ttl_of(t))));
    parts.extend(
        req.system
            .iter()
            .map(|b| (Part::Block("system", b), ttl_of(b))),
    );
    parts.push((Part::Settings, None));
    for (i, msg) in req.messages.iter().enumerate() {
        for (j, block) in msg.blocks.iter().enumerate() {
            let ttl = match (ttl_of(block), auto_bp) {
                (None, Some((ai, aj, attl))) if ai == i && aj == j => Some(attl),
                (ttl, _) => ttl,
            };
            parts.push((Part::Block(msg.role.as_str(), block), ttl));
        }
    }
    let rendered = parts
        .iter()
        .rposition(|(_, ttl)| ttl.is_some())
        .map_or(0, |last| last + 1);

    let mut hasher = Sha256::new();
    let mut total = 0u64;
    let mut breakpoints = Vec::new();
    for (part, ttl) in &parts[..rendered] {
        let (canonical, tokens) = match part {
            Part::Tool(tool) => {
                let canonical = tagged_canonical("tool", tool);
                // A tool's tokens count the characters of its compact JSON
                // without `cache_control` (tokens::tool_tokens): the
                // canonical form has the same keys and values in another
                // order, so the same characters.
                let tokens = tokens::text_tokens(&canonical["tool:".len()..]);
                (canonical, tokens)
            }
            Part::Block(tag, block) => (tagged_canonical(tag, block), tokens::block_tokens(block)),
            Part::Settings => {
                let choice = match &req.tool_choice {
                    None | Some(ToolChoice::Auto) => "auto".to_string(),
                    Some(ToolChoice::Any) => "any".to_string(),
                    Some(ToolChoice::None) => "none".to_string(),
                    Some(ToolChoice::Tool(name)) => format!("tool:{name}"),
                };
                (format!("settings:{choice}:{}", req.thinking.is_on()), 0)
            }
        };
        hasher.update((canonical.len() as u64).to_le_bytes());
        hasher.update(canonical.as_bytes());
        total += tokens;
        if let Some(ttl) = ttl {
            let key: [u8; 32] = hasher.clone().finalize().into();
            breakpoints.push(Breakpoint {
                key,
                tokens: total,
                ttl: *ttl,
            });
        }
    }
    Rendered {
        breakpoints,
        total_tokens: req.input_tokens(),
    }
}

/// Compact JSON with object keys sorted, independent of map ordering features.
#[cfg(test)]
pub(crate) fn canonical_json(value: &Value) -> String {
    let mut out = Vec::new();
    write_canonical(value, None, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// `tag:` then [`canonical_json`] of `value` without its top-level
/// `cache_control` key (as [`tokens::without_cache_control`] would leave
/// it, without copying the value).
fn tagged_canonical(tag: &str, value: &Value) -> String {
    let mut out = Vec::with_capacity(tag.len() + 64);
    out.extend_from_slice(tag.as_bytes());
    out.push(b':');
    write_canonical(value, Some("cache_control"), &mut out);
    // Only JSON text and `tag` were written: valid UTF-8.
    String::from_utf8(out).unwrap_or_default()
}

/// Writes `value` canonically, leaving out the key `skip` of a top-level object.
fn write_canonical(value: &Value, skip: Option<&str>, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().filter(|k| Some(k.as_str()) != skip).collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json(*k, out);
                out.push(b':');
                if let Some(v) = map.get(*k) {
                    write_canonical(v, None, out);
                }
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(v, None, out);
            }
            out.push(b']');
        }
        other => write_json(other, out),
    }
}

/// A string or scalar as compact JSON, appended to `out`.
fn write_json<T: serde::Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    // Writing a string or a JSON scalar into memory cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::ModelTable;
    use crate::request::{Purpose, parse_request};
    use serde_json::json;

    fn parsed(body: Value) -> ParsedRequest {
        let table = ModelTable::new(&Default::default());
        parse_request(body, &table, Purpose::Messages, "s")
            .unwrap()
            .0
    }

    fn body(system_chars: usize, user: &str) -> Value {
        json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 100,
            "system": [{"type": "text", "text": "x".repeat(system_chars), "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": user}],
        })
    }

    #[test]
    fn a_tagged_render_leaves_out_only_the_top_level_cache_control_and_counts_a_tool_as_before() {
        let tool = json!({
            "name": "submit_change",
            "description": "Écrit le changement ✓ \"quoted\"",
            "input_schema": {"type": "object", "properties": {"b": {"type": "string"}, "a": {"cache_control": 1}}},
            "cache_control": {"type": "ephemeral", "ttl": "1h"},
        });
        let rendered = tagged_canonical("tool", &tool);
        assert_eq!(
            rendered,
            format!(
                "tool:{}",
                canonical_json(&tokens::without_cache_control(&tool))
            )
        );
        assert!(rendered.contains("\"a\":{\"cache_control\":1}"));
        assert_eq!(
            tokens::text_tokens(&rendered["tool:".len()..]),
            tokens::tool_tokens(&tool)
        );
    }

    #[test]
    fn canonical_json_sorts_keys() {
        assert_eq!(
            canonical_json(&json!({"b": 1, "a": [ {"d": 2, "c": 3} ]})),
            r#"{"a":[{"c":3,"d":2}],"b":1}"#
        );
    }

    #[test]
    fn write_then_read_then_expire() {
        let mut cache = PromptCache::default();
        let r = render(&parsed(body(8000, "hi")));
        assert_eq!(r.breakpoints.len(), 1);
        let p1 = cache.plan("m", &r, 1024, 0);
        assert_eq!((p1.read, p1.write_5m, p1.input), (0, 2000, 1));
        // Not readable before commit.
        assert_eq!(cache.plan("m", &r, 1024, 0).read, 0);
        cache.commit(&p1, 0);
        let p2 = cache.plan(
            "m",
            &render(&parsed(body(8000, "other question"))),
            1024,
            1000,
        );
        assert_eq!((p2.read, p2.creation(), p2.input), (2000, 0, 4));
        // Refreshed at 1000 ms: alive at 1000 + 5 min - 1, gone after.
        assert_eq!(cache.plan("m", &r, 1024, 1000 + 300_000 - 1).read, 2000);
        assert_eq!(
            cache.plan("m", &r, 1024, 1000 + 300_000 - 1 + 300_000).read,
            0
        );
    }

    #[test]
    fn short_prefixes_are_never_cached() {
        let mut cache = PromptCache::default();
        let r = render(&parsed(body(400, "hi")));
        let p = cache.plan("m", &r, 1024, 0);
        assert_eq!(
            p,
            CachePlan {
                input: 101,
                model: "m".into(),
                ..CachePlan::default()
            }
        );
    }

    #[test]
    fn a_render_stops_at_the_last_breakpoint_and_totals_every_block() {
        let tool = json!({"name": "t", "description": "ü", "input_schema": {"type": "object"}});
        let mut request = body(8000, "a question after the breakpoint");
        request["tools"] = json!([tool]);
        let req = parsed(request);
        let r = render(&req);
        let every_block = tokens::tool_tokens(&tool)
            + 2000
            + tokens::text_tokens("a question after the breakpoint");
        assert_eq!(r.total_tokens, every_block);
        assert_eq!(r.breakpoints.len(), 1);
        assert_eq!(r.breakpoints[0].tokens, tokens::tool_tokens(&tool) + 2000);
        // The question after the breakpoint is not part of its key.
        let other = parsed({
            let mut b = body(8000, "another question");
            b["tools"] = json!([tool]);
            b
        });
        assert_eq!(render(&other).breakpoints, r.breakpoints);
        // Without any breakpoint nothing is rendered, and the total stands.
        let plain = parsed(json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 100,
            "messages": [{"role": "user", "content": "abcdefgh"}],
        }));
        let r = render(&plain);
        assert!(r.breakpoints.is_empty());
        assert_eq!(r.total_tokens, 2);
    }
}
