//! The planner: submits the scenario's plan (or one mechanical subtask per
//! scenario file) through `submit_plan`.

use serde_json::json;

use super::draft::Draft;
use super::{AnswerMeta, Ctx, ToolCall};
use crate::request::ParsedRequest;
use crate::scenario::OutcomeKind;

/// The planner's answer: the plan as a `submit_plan` call.
pub(super) fn planner(
    ctx: &Ctx<'_>,
    _req: &ParsedRequest,
    forced: Option<OutcomeKind>,
) -> (Draft, AnswerMeta) {
    let scenario = ctx.scenario;
    let input = match &scenario.plan {
        Some(plan) => json!({
            "notes": plan.notes,
            "subtasks": plan.subtasks.iter().map(|s| json!({
                "path": s.path,
                "instruction": s.instruction,
                "complexity": s.complexity,
                "error_cost": s.error_cost,
            })).collect::<Vec<_>>(),
        }),
        None => json!({
            "notes": "",
            "subtasks": scenario.files.iter().map(|f| json!({
                "path": f.path,
                "instruction": format!("Apply the required change to {}.", f.path),
                "complexity": "mechanical",
                "error_cost": "low",
            })).collect::<Vec<_>>(),
        }),
    };
    let good = ToolCall::new("submit_plan", input);
    let meta = AnswerMeta {
        outcome: Some(forced.map_or("ok", OutcomeKind::as_str).to_string()),
        ..AnswerMeta::default()
    };
    let draft = match forced {
        Some(kind) => Draft::forced(kind, good, "write_file"),
        None => Draft::call(good),
    };
    (draft, meta)
}
