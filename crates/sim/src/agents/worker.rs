//! The worker: read-only steps first (one per turn), then one edit per
//! attempt whose outcome is scripted by the scenario or decided by the
//! seeded skill roll, remembered per (model, path, attempt) so a repeated
//! request gets the same answer.

use serde_json::json;

use super::draft::Draft;
use super::wrong::{good_call, roll, write_call, wrong_or_good_call};
use super::{
    AnswerMeta, AttemptRecord, Ctx, ToolCall, World, first_user_text, parse_worker_prompt,
};
use crate::models::ModelSpec;
use crate::request::{MsgRole, ParsedRequest};
use crate::scenario::{FileSpec, OutcomeKind};

/// How a read-only step is expressed.
fn read_call(read: &str) -> ToolCall {
    match read.strip_prefix("grep:") {
        Some(pattern) => ToolCall::new("grep", json!({"pattern": pattern})),
        None => ToolCall::new("read_file", json!({"path": read})),
    }
}

/// The worker's answer for this turn of this attempt.
pub(super) fn worker(
    ctx: &Ctx<'_>,
    world: &mut World,
    req: &ParsedRequest,
    model: &ModelSpec,
    forced: Option<OutcomeKind>,
) -> (Draft, AnswerMeta) {
    let Some(prompt) = parse_worker_prompt(&first_user_text(req)) else {
        let meta = AnswerMeta {
            outcome: Some("no_tool".into()),
            ..AnswerMeta::default()
        };
        return (
            Draft::text(
                "I could not find a <subtask> block in the first user message, so I cannot tell which file to change.",
            ),
            meta,
        );
    };
    let path = prompt.path.clone();
    let file = prompt
        .file
        .clone()
        .or_else(|| world.originals.get(&path).cloned())
        .unwrap_or_default();
    let original = world
        .originals
        .entry(path.clone())
        .or_insert_with(|| file.clone())
        .clone();
    let turn = u32::try_from(
        req.messages
            .iter()
            .filter(|m| m.role == MsgRole::Assistant)
            .count(),
    )
    .unwrap_or(u32::MAX);
    let mut meta = AnswerMeta {
        subtask_path: Some(path.clone()),
        attempt: Some(prompt.attempt),
        turn: Some(turn),
        feedback: prompt.feedback.clone(),
        ..AnswerMeta::default()
    };

    let Some(spec) = ctx.file(&path) else {
        // Not a file the scenario changes: the model leaves it as it is.
        meta.outcome = Some("noop".into());
        return (Draft::call(write_call(req, &file, &file)), meta);
    };

    // Read-only steps first, one per turn.
    let reads: Vec<&String> = spec
        .reads
        .iter()
        .filter(|r| {
            req.has_tool(if r.starts_with("grep:") {
                "grep"
            } else {
                "read_file"
            })
        })
        .collect();
    if let Some(read) = reads.get(turn as usize) {
        meta.outcome = Some("read".into());
        let mut draft = Draft::call(read_call(read));
        draft.text = Some(format!(
            "Let me look at {} before editing {path}.",
            read.trim_start_matches("grep:")
        ));
        return (draft, meta);
    }

    let key = (model.id.clone(), path.clone());
    let records = world.attempts.entry(key.clone()).or_default();
    records.entry(prompt.attempt).or_insert(None);
    let model_attempt = records
        .keys()
        .position(|k| *k == prompt.attempt)
        .map_or(1, |i| i + 1);
    meta.model_attempt = u32::try_from(model_attempt).ok();
    let existing = records.get(&prompt.attempt).cloned().flatten();

    let expected = spec
        .expected_from(&original)
        .or_else(|_| spec.expected_from(&file))
        .ok();
    let good = good_call(req, spec, &file, expected.as_deref());

    if let Some(kind) = forced {
        meta.outcome = Some(kind.as_str().to_string());
        return (Draft::forced(kind, good, "submit_plan"), meta);
    }

    let record = match existing {
        Some(r) => r,
        None => {
            let outcome = script_outcome(spec, req, model, model_attempt).unwrap_or_else(|| {
                let complexity = if prompt.complexity.is_empty() {
                    "mechanical"
                } else {
                    &prompt.complexity
                };
                roll(ctx.scenario.seed, model, &path, prompt.attempt, complexity)
            });
            let previous_wrong = world
                .attempts
                .get(&key)
                .into_iter()
                .flat_map(|r| r.range(..prompt.attempt))
                .filter_map(|(_, rec)| rec.as_ref())
                .filter(|rec| {
                    matches!(
                        rec.outcome,
                        OutcomeKind::Syntax
                            | OutcomeKind::Partial
                            | OutcomeKind::Mismatch
                            | OutcomeKind::Noop
                            | OutcomeKind::Repeat
                    )
                })
                .filter_map(|rec| rec.call.clone())
                .next_back();
            let call = wrong_or_good_call(
                outcome,
                req,
                spec,
                &file,
                &original,
                expected.as_deref(),
                good.clone(),
                previous_wrong,
            );
            let record = AttemptRecord { outcome, call };
            if let Some(records) = world.attempts.get_mut(&key) {
                records.insert(prompt.attempt, Some(record.clone()));
            }
            record
        }
    };
    meta.outcome = Some(record.outcome.as_str().to_string());
    let draft = match (&record.call, record.outcome) {
        (Some(call), _) => {
            let mut d = Draft::call(call.clone());
            d.text = Some(format!("I'll update {path} now."));
            d
        }
        (None, kind) => Draft::forced(kind, good, "submit_plan"),
    };
    (draft, meta)
}

fn script_outcome(
    spec: &FileSpec,
    req: &ParsedRequest,
    model: &ModelSpec,
    model_attempt: usize,
) -> Option<OutcomeKind> {
    let list = spec
        .script
        .get(&req.model)
        .or_else(|| spec.script.get(&model.id))
        .or_else(|| model.aliases.iter().find_map(|a| spec.script.get(a)))?;
    Some(
        list.get(model_attempt.saturating_sub(1))
            .copied()
            .unwrap_or(OutcomeKind::Ok),
    )
}
