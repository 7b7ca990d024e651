//! The worker's tool calls: the correct one for a file, the realistic wrong
//! ones (a syntax error, a partial change, an `old` text that does not
//! match, a revert, a repeat of an earlier wrong answer), and the seeded
//! skill roll that picks which.

use serde_json::{Value, json};

use super::ToolCall;
use crate::diff::expected_changes;
use crate::edits::{
    apply_edits, break_syntax, drop_last_change, mismatching_old, syntax_breaking_edits,
};
use crate::ids::{SplitMix, hash64};
use crate::models::ModelSpec;
use crate::request::ParsedRequest;
use crate::scenario::{EditSpec, FileSpec, OutcomeKind};

const WRONG_KINDS: [(OutcomeKind, u64); 5] = [
    (OutcomeKind::Syntax, 3),
    (OutcomeKind::Partial, 3),
    (OutcomeKind::Mismatch, 2),
    (OutcomeKind::Noop, 1),
    (OutcomeKind::Repeat, 1),
];

/// The seeded skill roll for (model, path, attempt): independent of arrival order.
pub(crate) fn roll(
    seed: u64,
    model: &ModelSpec,
    path: &str,
    attempt: u32,
    complexity: &str,
) -> OutcomeKind {
    let h = hash64(&[
        &seed.to_le_bytes(),
        b"skill",
        model.id.as_bytes(),
        path.as_bytes(),
        &attempt.to_le_bytes(),
    ]);
    let mut rng = SplitMix::new(h);
    if rng.next_f64() < model.skill_for(complexity) {
        return OutcomeKind::Ok;
    }
    let total: u64 = WRONG_KINDS.iter().map(|(_, w)| w).sum();
    let mut pick = rng.below(total);
    for (kind, weight) in WRONG_KINDS {
        if pick < weight {
            return kind;
        }
        pick -= weight;
    }
    OutcomeKind::Syntax
}

/// The whole new content, as `write_file` (or one whole-file `edit_file`
/// when only that tool is offered).
pub(super) fn write_call(req: &ParsedRequest, file: &str, content: &str) -> ToolCall {
    if !req.has_tool("write_file") && req.has_tool("edit_file") && !file.is_empty() {
        return ToolCall::new(
            "edit_file",
            json!({"edits": [{"old": file, "new": content}]}),
        );
    }
    ToolCall::new("write_file", json!({"content": content}))
}

fn edits_json(edits: &[EditSpec]) -> Value {
    json!({"edits": edits.iter().map(|e| json!({"old": e.old, "new": e.new})).collect::<Vec<_>>()})
}

fn edit_call(req: &ParsedRequest, file: &str, edits: &[EditSpec]) -> ToolCall {
    if !req.has_tool("edit_file")
        && let Ok(content) = apply_edits(file, edits)
    {
        return write_call(req, file, &content);
    }
    ToolCall::new("edit_file", edits_json(edits))
}

/// The correct call: the scenario's edits when they apply, else the
/// expected content written whole.
pub(super) fn good_call(
    req: &ParsedRequest,
    spec: &FileSpec,
    file: &str,
    expected: Option<&str>,
) -> ToolCall {
    if let Some(edits) = &spec.edits {
        let applies = apply_edits(file, edits).ok();
        if applies.is_some() && (expected.is_none() || applies.as_deref() == expected) {
            return edit_call(req, file, edits);
        }
    }
    match expected {
        Some(e) => write_call(req, file, e),
        // The scenario's edits apply nowhere: send them anyway (a scenario bug shows up).
        None => ToolCall::new(
            "edit_file",
            edits_json(spec.edits.as_deref().unwrap_or_default()),
        ),
    }
}

/// The call for `outcome`; `None` for outcomes that are not a tool call
/// (no_tool, empty, truncated, schema, wrong_tool derive from the good call).
#[expect(
    clippy::too_many_arguments,
    reason = "every input of the answer is distinct; a struct would only rename them"
)]
pub(super) fn wrong_or_good_call(
    outcome: OutcomeKind,
    req: &ParsedRequest,
    spec: &FileSpec,
    file: &str,
    original: &str,
    expected: Option<&str>,
    good: ToolCall,
    previous_wrong: Option<ToolCall>,
) -> Option<ToolCall> {
    let expected_text = expected.unwrap_or(file);
    let edits_apply = spec
        .edits
        .as_ref()
        .is_some_and(|edits| apply_edits(file, edits).ok().as_deref() == Some(expected_text));
    match outcome {
        OutcomeKind::Ok => Some(good),
        OutcomeKind::Syntax => {
            let broken = spec
                .edits
                .as_ref()
                .filter(|_| edits_apply && req.has_tool("edit_file"))
                .and_then(|edits| syntax_breaking_edits(file, edits));
            Some(match broken {
                Some(edits) => ToolCall::new("edit_file", edits_json(&edits)),
                None => write_call(req, file, &break_syntax(expected_text)),
            })
        }
        OutcomeKind::Partial => match &spec.edits {
            Some(edits) if edits.len() >= 2 && apply_edits(file, &edits[..1]).is_ok() => {
                Some(edit_call(req, file, &edits[..1]))
            }
            _ => Some(write_call(
                req,
                file,
                &drop_last_change(file, expected_text),
            )),
        },
        OutcomeKind::Mismatch => {
            let (old, new) = match spec.edits.as_ref().and_then(|e| e.first()) {
                Some(first) => (first.old.clone(), first.new.clone()),
                None => {
                    let (removed, added) = expected_changes(file, expected_text);
                    (
                        removed
                            .first()
                            .cloned()
                            .unwrap_or_else(|| file.lines().next().unwrap_or("").to_string()),
                        added.first().cloned().unwrap_or_default(),
                    )
                }
            };
            let edits = [EditSpec {
                old: mismatching_old(file, &old),
                new,
            }];
            Some(ToolCall::new("edit_file", edits_json(&edits)))
        }
        OutcomeKind::Noop => Some(write_call(req, file, original)),
        OutcomeKind::Repeat => {
            Some(previous_wrong.unwrap_or_else(|| write_call(req, file, original)))
        }
        OutcomeKind::NoTool
        | OutcomeKind::Schema
        | OutcomeKind::WrongTool
        | OutcomeKind::Truncated
        | OutcomeKind::Empty => None,
    }
}
