//! A role's draft answer (text, a tool call, or a model-output fault applied
//! to the correct call) and [`finish`], which turns it into the final
//! [`Answer`]: the thinking block, the tool-use id, output tokens, stop
//! sequences and cutting at `max_tokens`.

use serde_json::{Value, json};

use super::{Answer, AnswerBlock, AnswerMeta, Ctx, ToolCall};
use crate::edits::preview;
use crate::ids::hash64;
use crate::models::ModelSpec;
use crate::request::{ParsedRequest, ThinkingReq, thinking_signature};
use crate::scenario::OutcomeKind;

/// An answer before ids, thinking and token accounting.
#[derive(Debug, Default)]
pub(super) struct Draft {
    pub(super) text: Option<String>,
    pub(super) call: Option<ToolCall>,
    pub(super) truncated: bool,
    pub(super) empty: bool,
}

impl Draft {
    pub(super) fn call(call: ToolCall) -> Self {
        Self {
            call: Some(call),
            ..Self::default()
        }
    }

    pub(super) fn text(text: impl Into<String>) -> Self {
        Self {
            text: Some(text.into()),
            ..Self::default()
        }
    }

    /// Applies a model-output fault kind to an otherwise correct call.
    pub(super) fn forced(kind: OutcomeKind, good: ToolCall, role_wrong_tool: &str) -> Self {
        match kind {
            OutcomeKind::NoTool => Self::text(format!(
                "I reviewed the request; the change is straightforward, so here it is in prose \
                 instead of a tool call: {}",
                preview(&good.input.to_string())
            )),
            OutcomeKind::Empty => Self {
                empty: true,
                ..Self::default()
            },
            OutcomeKind::WrongTool => Self::call(ToolCall::new(
                role_wrong_tool,
                json!({"notes": "", "subtasks": []}),
            )),
            OutcomeKind::Schema => {
                let mut input = good.input.clone();
                let broken = match input.as_object_mut() {
                    Some(map) => {
                        let first_key = map.keys().next().cloned();
                        if let Some(k) = first_key
                            && let Some(v) = map.remove(&k)
                        {
                            map.insert(format!("{k}_list"), v);
                        }
                        Value::Object(map.clone())
                    }
                    None => json!({}),
                };
                Self::call(ToolCall::new(&good.name, broken))
            }
            OutcomeKind::Truncated => Self {
                call: Some(good),
                truncated: true,
                ..Self::default()
            },
            _ => Self::call(good),
        }
    }
}

/// The final answer: thinking (when requested), the draft's text and tool
/// call with a seeded id, stop reason and output tokens.
pub(super) fn finish(
    ctx: &Ctx<'_>,
    req: &ParsedRequest,
    model: &ModelSpec,
    draft: Draft,
    thinking: String,
    meta: AnswerMeta,
) -> Answer {
    let rate = model.output_tokens_per_char;
    let cost = |chars: usize| -> u64 { (chars as f64 * rate).ceil() as u64 };
    let mut blocks = Vec::new();
    let mut thinking_tokens = 0;
    let display_omitted = match req.thinking {
        ThinkingReq::Off => None,
        ThinkingReq::Enabled { display_omitted } | ThinkingReq::Adaptive { display_omitted } => {
            Some(display_omitted)
        }
    };
    if let Some(omitted) = display_omitted
        && !draft.empty
    {
        thinking_tokens = cost(thinking.chars().count()).max(1);
        let shown = if omitted { String::new() } else { thinking };
        let signature = thinking_signature(ctx.secret, &shown);
        blocks.push(AnswerBlock::Thinking {
            thinking: shown,
            signature,
        });
    }
    let mut output_chars = 0usize;
    if let Some(text) = &draft.text {
        output_chars += text.chars().count();
        blocks.push(AnswerBlock::Text(text.clone()));
    }
    let mut truncated = draft.truncated;
    if let Some(call) = &draft.call {
        let json_text = call.input.to_string();
        output_chars += call.name.len() + json_text.chars().count();
        if !truncated && thinking_tokens + cost(output_chars) > req.max_tokens {
            truncated = true;
        }
        let id_seed = hash64(&[
            b"toolu",
            ctx.body_sha.as_bytes(),
            &ctx.scenario.seed.to_le_bytes(),
        ]);
        let id = crate::ids::make_id("toolu_", id_seed);
        if truncated {
            let cut: String = json_text
                .chars()
                .take(json_text.chars().count() / 2)
                .collect();
            blocks.push(AnswerBlock::ToolUse {
                id,
                name: call.name.clone(),
                input: partial_input(&call.input),
                partial_json: Some(cut),
            });
        } else {
            blocks.push(AnswerBlock::ToolUse {
                id,
                name: call.name.clone(),
                input: call.input.clone(),
                partial_json: None,
            });
        }
    }
    let mut stop_reason = if truncated {
        "max_tokens"
    } else if draft.call.is_some() {
        "tool_use"
    } else {
        "end_turn"
    };
    let mut stop_sequence = None;
    // Stop sequences cut text answers.
    if !req.stop_sequences.is_empty() {
        let mut cut_at = None;
        for (i, b) in blocks.iter_mut().enumerate() {
            if let AnswerBlock::Text(t) = b
                && let Some((pos, seq)) = req
                    .stop_sequences
                    .iter()
                    .filter_map(|s| t.find(s.as_str()).map(|p| (p, s.clone())))
                    .min_by_key(|(p, _)| *p)
            {
                t.truncate(pos);
                stop_sequence = Some(seq);
                cut_at = Some(i);
                break;
            }
        }
        if let Some(i) = cut_at {
            blocks.truncate(i + 1);
            stop_reason = "stop_sequence";
        }
    }
    let mut output_tokens = if draft.empty {
        1
    } else {
        thinking_tokens + cost(output_chars).max(1)
    };
    if truncated || output_tokens > req.max_tokens {
        output_tokens = req.max_tokens;
        if !truncated && draft.call.is_none() {
            // A text answer that does not fit is cut at max_tokens.
            stop_reason = "max_tokens";
            let keep = (req.max_tokens as f64 / rate.max(f64::EPSILON)) as usize;
            for b in &mut blocks {
                if let AnswerBlock::Text(t) = b {
                    *t = t.chars().take(keep).collect();
                }
            }
        }
    }
    Answer {
        blocks,
        stop_reason,
        stop_sequence,
        output_tokens,
        thinking_tokens,
        meta,
    }
}

/// A tool input with only some of its fields, as a cut-off call leaves it.
fn partial_input(input: &Value) -> Value {
    match input
        .get("edits")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        Some(first) => {
            let old = first.get("old").cloned().unwrap_or(Value::Null);
            json!({"edits": [{"old": old}]})
        }
        None => json!({}),
    }
}
