//! The planner: submits the scenario's plan (or one mechanical subtask per
//! scenario file) through `submit_plan`.

use serde_json::{Value, json};

use super::draft::Draft;
use super::{AnswerMeta, Ctx, ToolCall};
use crate::request::{MsgRole, ParsedRequest};
use crate::scenario::OutcomeKind;
use crate::scenario::{PlanSpec, SelectorSpec, SubtaskSpec};

/// The planner's answer: the plan as a `submit_plan` call.
pub(super) fn planner(
    ctx: &Ctx<'_>,
    req: &ParsedRequest,
    forced: Option<OutcomeKind>,
) -> (Draft, AnswerMeta) {
    let scenario = ctx.scenario;
    let input = match &scenario.plan {
        Some(plan) => {
            // Each page cadre accepted is answered by a tool result that is
            // not an error; a refused answer is asked again as the same page.
            let page = req
                .messages
                .iter()
                .filter(|m| m.role == MsgRole::User)
                .filter(|m| {
                    m.blocks.iter().any(|b| {
                        b.get("type").and_then(Value::as_str) == Some("tool_result")
                            && b.get("is_error").and_then(Value::as_bool) != Some(true)
                    })
                })
                .count();
            plan_page(plan, page)
        }
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

/// Page `page` (0-based) of the plan: its share of the explicit subtasks,
/// the selectors on the first page, `more` on every page but the last.
fn plan_page(plan: &PlanSpec, page: usize) -> Value {
    let pages = plan.pages.max(1) as usize;
    let per_page = plan.subtasks.len().div_ceil(pages).max(1);
    let subtasks: Vec<Value> = plan
        .subtasks
        .iter()
        .skip(page * per_page)
        .take(per_page)
        .map(subtask_json)
        .collect();
    let mut input = json!({
        "notes": if page == 0 { plan.notes.as_str() } else { "" },
        "subtasks": subtasks,
    });
    if page == 0 && !plan.selectors.is_empty() {
        input["selectors"] = plan.selectors.iter().map(selector_json).collect();
    }
    if page + 1 < pages {
        input["more"] = json!(true);
    }
    input
}

fn subtask_json(s: &SubtaskSpec) -> Value {
    let mut entry = json!({
        "path": s.path,
        "instruction": s.instruction,
        "complexity": s.complexity,
        "error_cost": s.error_cost,
    });
    for (key, value) in [("action", &s.action), ("to", &s.to), ("rule", &s.rule)] {
        if let Some(v) = value {
            entry[key] = json!(v);
        }
    }
    entry
}

fn selector_json(s: &SelectorSpec) -> Value {
    let mut matcher = json!({});
    for (key, value) in [
        ("literal", &s.literal),
        ("regex", &s.regex),
        ("pattern", &s.pattern),
        ("language", &s.language),
    ] {
        if let Some(v) = value {
            matcher[key] = json!(v);
        }
    }
    let mut selector = json!({
        "id": s.id,
        "paths": s.paths,
        "match": matcher,
        "complexity": s.complexity,
        "error_cost": s.error_cost,
        "instruction": s.instruction,
    });
    if let Some(rule) = &s.rule {
        selector["rule"] = json!(rule);
    }
    selector
}
