//! The planner: runs the scenario's searches first (one per turn, when cadre
//! offers its `search` tool and does not force `submit_plan`), then submits
//! the scenario's plan page by page (or one mechanical subtask per scenario
//! file) through `submit_plan`.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::draft::Draft;
use super::{AnswerMeta, Ctx, ToolCall};
use crate::request::{MsgRole, ParsedRequest, ToolChoice};
use crate::scenario::OutcomeKind;
use crate::scenario::{PlanSpec, SearchSpec, SelectorSpec, SubtaskSpec};

/// The planner's answer: the plan as a `submit_plan` call.
pub(super) fn planner(
    ctx: &Ctx<'_>,
    req: &ParsedRequest,
    forced: Option<OutcomeKind>,
) -> (Draft, AnswerMeta) {
    let scenario = ctx.scenario;
    let turns = Turns::read(req);
    if let Some(plan) = &scenario.plan
        && forced.is_none()
        && may_search(req)
        && let Some(search) = plan.searches.get(turns.searches)
    {
        let meta = AnswerMeta {
            outcome: Some("search".to_string()),
            ..AnswerMeta::default()
        };
        return (
            Draft::call(ToolCall::new("search", search_json(search))),
            meta,
        );
    }
    let input = match &scenario.plan {
        Some(plan) => {
            // Each page cadre accepted is answered by a tool result that is
            // not an error; a refused answer is asked again as the same page.
            let mut input = plan_page(plan, turns.pages);
            if turns.pages == 0 && !turns.found.is_empty() {
                let mut notes = input["notes"].as_str().unwrap_or_default().to_string();
                for line in &turns.found {
                    notes.push_str(&format!("\nSearch: {line}"));
                }
                input["notes"] = json!(notes.trim_start());
            }
            input
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

/// What the conversation so far holds: accepted `submit_plan` pages,
/// searches answered, and the first line of each search answer.
#[derive(Debug, Default)]
struct Turns {
    pages: usize,
    searches: usize,
    found: Vec<String>,
}

impl Turns {
    fn read(req: &ParsedRequest) -> Self {
        let mut turns = Turns::default();
        let mut calls: HashMap<&str, &str> = HashMap::new();
        for msg in &req.messages {
            for block in &msg.blocks {
                match (msg.role, block.get("type").and_then(Value::as_str)) {
                    (MsgRole::Assistant, Some("tool_use")) => {
                        if let (Some(id), Some(name)) = (
                            block.get("id").and_then(Value::as_str),
                            block.get("name").and_then(Value::as_str),
                        ) {
                            calls.insert(id, name);
                        }
                    }
                    (MsgRole::User, Some("tool_result")) => {
                        let name = block
                            .get("tool_use_id")
                            .and_then(Value::as_str)
                            .and_then(|id| calls.get(id).copied());
                        let error = block.get("is_error").and_then(Value::as_bool) == Some(true);
                        match name {
                            Some("submit_plan") if !error => turns.pages += 1,
                            Some("search") => {
                                turns.searches += 1;
                                let first = result_text(block);
                                let first = first.lines().next().unwrap_or_default();
                                turns.found.push(first.to_string());
                            }
                            _ => {}
                        }
                    }
                    _ => {}
                }
            }
        }
        turns
    }
}

/// A tool result's text (a string, or text blocks).
fn result_text(block: &Value) -> String {
    match block.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// True when cadre offers `search` and leaves the planner free to call it.
fn may_search(req: &ParsedRequest) -> bool {
    req.has_tool("search")
        && !matches!(&req.tool_choice, Some(ToolChoice::Tool(name)) if name != "search")
        && !matches!(&req.tool_choice, Some(ToolChoice::None))
}

fn search_json(s: &SearchSpec) -> Value {
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
    let mut input = json!({"match": matcher});
    if !s.paths.is_empty() {
        input["paths"] = json!(s.paths);
    }
    input
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
