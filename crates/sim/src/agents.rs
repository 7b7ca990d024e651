//! The simulated models: what a planner, worker, reviewer or generic model answers.
//!
//! Answers are pure functions of the scenario, the seed and the request, plus
//! a little remembered state that real models would also "have": the original
//! content of each file (first worker prompt wins, or the scenario workspace),
//! which attempts each model already made at each file (so scripts advance and
//! `repeat` can repeat), and how many reviews each path had (`force_revise`).

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};

use crate::Role;
use crate::diff::{self, expected_changes, multiset_minus};
use crate::edits::{
    apply_edits, break_syntax, drop_last_change, mismatching_old, preview, syntax_breaking_edits,
};
use crate::ids::{SplitMix, hash64};
use crate::models::ModelSpec;
use crate::request::{Msg, MsgRole, ParsedRequest, ThinkingReq, ToolChoice, thinking_signature};
use crate::scenario::{EditSpec, FileSpec, OutcomeKind, Scenario};

/// A tool call the model makes.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ToolCall {
    pub(crate) name: String,
    pub(crate) input: Value,
}

impl ToolCall {
    fn new(name: &str, input: Value) -> Self {
        Self {
            name: name.to_string(),
            input,
        }
    }
}

/// One block of an answer.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum AnswerBlock {
    Thinking {
        thinking: String,
        signature: String,
    },
    Text(String),
    ToolUse {
        id: String,
        name: String,
        input: Value,
        /// For a truncated call: the cut-off JSON text a stream delivers.
        partial_json: Option<String>,
    },
}

/// What the model says, before it is put on the wire.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Answer {
    pub(crate) blocks: Vec<AnswerBlock>,
    pub(crate) stop_reason: &'static str,
    pub(crate) stop_sequence: Option<String>,
    pub(crate) output_tokens: u64,
    pub(crate) thinking_tokens: u64,
    pub(crate) meta: AnswerMeta,
}

/// What the request log records about an answer.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct AnswerMeta {
    pub(crate) role: Option<Role>,
    pub(crate) subtask_path: Option<String>,
    pub(crate) attempt: Option<u32>,
    pub(crate) model_attempt: Option<u32>,
    pub(crate) turn: Option<u32>,
    pub(crate) outcome: Option<String>,
}

#[derive(Clone, Debug)]
struct AttemptRecord {
    outcome: OutcomeKind,
    call: Option<ToolCall>,
}

/// State the simulated models remember between requests.
#[derive(Debug, Default)]
pub(crate) struct World {
    originals: HashMap<String, String>,
    /// (model id, path) -> attempt key -> what that attempt answered.
    attempts: HashMap<(String, String), BTreeMap<u32, Option<AttemptRecord>>>,
    reviews: HashMap<String, u32>,
}

impl World {
    pub(crate) fn new(scenario: &Scenario) -> Self {
        Self {
            originals: scenario.originals().clone().into_iter().collect(),
            ..Self::default()
        }
    }
}

/// The role a request plays, from the tools it offers.
pub(crate) fn classify(req: &ParsedRequest) -> Role {
    if req.has_tool("submit_plan") {
        Role::Planner
    } else if req.has_tool("submit_review") {
        Role::Reviewer
    } else if req.has_tool("edit_file") || req.has_tool("write_file") {
        Role::Worker
    } else {
        Role::Other
    }
}

/// Role plus the paths a fault can match on, without touching any state.
pub(crate) fn peek(req: &ParsedRequest) -> (Role, Vec<String>) {
    let role = classify(req);
    let first = first_user_text(req);
    let paths = match role {
        Role::Worker => parse_worker_prompt(&first)
            .map(|p| vec![p.path])
            .unwrap_or_default(),
        Role::Reviewer => parse_diffs(&first).into_iter().map(|(p, _)| p).collect(),
        Role::Planner | Role::Other => Vec::new(),
    };
    (role, paths)
}

fn first_user_text(req: &ParsedRequest) -> String {
    req.messages
        .iter()
        .find(|m| m.role == MsgRole::User)
        .map(Msg::text)
        .unwrap_or_default()
}

/// Everything [`answer`] needs besides the request.
#[derive(Debug)]
pub(crate) struct Ctx<'a> {
    pub(crate) scenario: &'a Scenario,
    pub(crate) secret: &'a str,
    pub(crate) body_sha: &'a str,
}

/// Produces the model's answer. `forced` is a model-output fault overriding
/// what the model would have said.
pub(crate) fn answer(
    ctx: &Ctx<'_>,
    world: &mut World,
    req: &ParsedRequest,
    model: &ModelSpec,
    forced: Option<OutcomeKind>,
) -> Answer {
    let role = classify(req);
    let (draft, mut meta) = match role {
        Role::Planner => planner(ctx, req, forced),
        Role::Worker => worker(ctx, world, req, model, forced),
        Role::Reviewer => reviewer(ctx, world, req, forced),
        Role::Other => generic(req, forced),
    };
    meta.role = Some(role);
    let thinking = thinking_text(role, &meta);
    finish(ctx, req, model, draft, thinking, meta)
}

/// An answer before ids, thinking and token accounting.
#[derive(Debug, Default)]
struct Draft {
    text: Option<String>,
    call: Option<ToolCall>,
    truncated: bool,
    empty: bool,
}

impl Draft {
    fn call(call: ToolCall) -> Self {
        Self {
            call: Some(call),
            ..Self::default()
        }
    }

    fn text(text: impl Into<String>) -> Self {
        Self {
            text: Some(text.into()),
            ..Self::default()
        }
    }

    /// Applies a model-output fault kind to an otherwise correct call.
    fn forced(kind: OutcomeKind, good: ToolCall, role_wrong_tool: &str) -> Self {
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

fn thinking_text(role: Role, meta: &AnswerMeta) -> String {
    match role {
        Role::Planner => {
            "The instruction touches several files; I will split it into one subtask per \
                          file and classify each by complexity and error cost."
                .to_string()
        }
        Role::Worker => format!(
            "I need to change {} as instructed. Let me check the exact text so each `old` \
             string matches exactly once.",
            meta.subtask_path.as_deref().unwrap_or("the file")
        ),
        Role::Reviewer => {
            "Checking each diff against the plan: every call site must be updated and \
                           nothing else may change."
                .to_string()
        }
        Role::Other => "Let me think about how to answer this.".to_string(),
    }
}

fn finish(
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

// ---------------------------------------------------------------- planner

fn planner(
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

// ---------------------------------------------------------------- worker

/// The parts of a worker's first user message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WorkerPrompt {
    pub(crate) path: String,
    pub(crate) complexity: String,
    pub(crate) instruction: String,
    pub(crate) file: Option<String>,
    /// 1 + the number of earlier failed attempts (from `<feedback>` blocks).
    pub(crate) attempt: u32,
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The value of `name="..."` inside an opening tag.
fn attr(tag: &str, name: &str) -> Option<String> {
    let needle = format!("{name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let end = tag[start..].find('"')? + start;
    Some(unescape(&tag[start..end]))
}

pub(crate) fn parse_worker_prompt(text: &str) -> Option<WorkerPrompt> {
    let open = text.find("<subtask ")?;
    let tag_end = text[open..].find('>')? + open;
    let tag = &text[open..=tag_end];
    let path = attr(tag, "path")?;
    let complexity = attr(tag, "complexity").unwrap_or_else(|| "mechanical".into());
    let body_start = tag_end + 1;
    let close = text[body_start..]
        .find("</subtask>")
        .map_or(text.len(), |i| i + body_start);
    let instruction = text[body_start..close].trim_matches('\n').to_string();

    let after = &text[close..];
    let file = after.find("<file ").and_then(|fo| {
        let fo_abs = close + fo;
        let ftag_end = text[fo_abs..].find('>')? + fo_abs;
        let mut content_start = ftag_end + 1;
        if text[content_start..].starts_with('\n') {
            content_start += 1;
        }
        // The last "\n</file>" followed only by feedback blocks (or nothing).
        let mut end = None;
        for (pos, _) in text.match_indices("\n</file>") {
            let rest = text[pos + "\n</file>".len()..].trim_start();
            if rest.is_empty() || rest.starts_with("<feedback") {
                end = Some(pos);
            }
        }
        let end = end.or_else(|| text.rfind("</file>"))?;
        if end < content_start {
            return Some(String::new());
        }
        Some(text[content_start..end].to_string())
    });
    let feedback_area = match text.rfind("</file>") {
        Some(p) => &text[p..],
        None => after,
    };
    let mut count = 0u32;
    let mut max_n = 0u32;
    for (pos, _) in feedback_area.match_indices("<feedback") {
        count += 1;
        let tag_end = feedback_area[pos..]
            .find('>')
            .map_or(feedback_area.len(), |e| e + pos);
        if let Some(n) =
            attr(&feedback_area[pos..tag_end], "attempt").and_then(|n| n.parse::<u32>().ok())
        {
            max_n = max_n.max(n);
        }
    }
    Some(WorkerPrompt {
        path,
        complexity,
        instruction,
        file,
        attempt: count.max(max_n) + 1,
    })
}

/// How a read-only step is expressed.
fn read_call(read: &str) -> ToolCall {
    match read.strip_prefix("grep:") {
        Some(pattern) => ToolCall::new("grep", json!({"pattern": pattern})),
        None => ToolCall::new("read_file", json!({"path": read})),
    }
}

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

fn worker(
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
        ..AnswerMeta::default()
    };

    let Some(spec) = ctx.scenario.file(&path) else {
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

fn write_call(req: &ParsedRequest, file: &str, content: &str) -> ToolCall {
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

fn good_call(req: &ParsedRequest, spec: &FileSpec, file: &str, expected: Option<&str>) -> ToolCall {
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
fn wrong_or_good_call(
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

// ---------------------------------------------------------------- reviewer

/// `(path, diff text)` for every `<diff path="P">` block.
pub(crate) fn parse_diffs(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("<diff ") {
        let Some(tag_end) = rest[open..].find('>').map(|e| e + open) else {
            break;
        };
        let tag = &rest[open..=tag_end];
        let mut body_start = tag_end + 1;
        if rest[body_start..].starts_with('\n') {
            body_start += 1;
        }
        let close = rest[body_start..]
            .find("</diff>")
            .map_or(rest.len(), |c| c + body_start);
        if let Some(path) = attr(tag, "path") {
            out.push((path, rest[body_start..close].to_string()));
        }
        rest = &rest[(close + "</diff>".len()).min(rest.len())..];
    }
    out
}

fn reviewer(
    ctx: &Ctx<'_>,
    world: &mut World,
    req: &ParsedRequest,
    forced: Option<OutcomeKind>,
) -> (Draft, AnswerMeta) {
    let diffs = parse_diffs(&first_user_text(req));
    let mut verdicts = Vec::new();
    let mut approved = 0usize;
    for (path, diff_text) in &diffs {
        let (verdict, comment) = if forced.is_some() {
            ("approve", String::new())
        } else {
            let n = world.reviews.entry(path.clone()).or_insert(0);
            *n += 1;
            let count = *n;
            let forced_n = ctx
                .scenario
                .reviewer
                .force_revise
                .get(path)
                .copied()
                .unwrap_or(0);
            if count <= forced_n {
                (
                    "revise",
                    format!(
                        "Please take another pass over {path}: double-check every changed line \
                         against the instruction (review {count} of {forced_n} requested by the \
                         scenario)."
                    ),
                )
            } else {
                judge(
                    ctx.scenario,
                    world.originals.get(path).map(String::as_str),
                    path,
                    diff_text,
                )
            }
        };
        if verdict == "approve" {
            approved += 1;
        }
        verdicts.push(json!({"path": path, "verdict": verdict, "comment": comment}));
    }
    let good = ToolCall::new("submit_review", json!({"verdicts": verdicts}));
    let outcome = match forced {
        Some(k) => k.as_str().to_string(),
        None => format!("approved {approved}/{}", diffs.len()),
    };
    let meta = AnswerMeta {
        outcome: Some(outcome),
        ..AnswerMeta::default()
    };
    let draft = match forced {
        Some(kind) => Draft::forced(kind, good, "submit_plan"),
        None => Draft::call(good),
    };
    (draft, meta)
}

/// Approve exactly when the diff turns the original into the expected content
/// (checked by applying it; when it does not apply, by comparing the removed
/// and added line multisets with those of original -> expected).
fn judge(
    scenario: &Scenario,
    original: Option<&str>,
    path: &str,
    diff_text: &str,
) -> (&'static str, String) {
    let Some(original) = original else {
        return (
            "revise",
            format!("I cannot verify {path}: its original content is unknown to me."),
        );
    };
    let expected = match scenario.expected_content(path, original) {
        Ok(e) => e,
        Err(e) => {
            return (
                "revise",
                format!("The intended change to {path} cannot be derived: {e}."),
            );
        }
    };
    let parsed = match diff::parse(diff_text) {
        Ok(d) => d,
        Err(e) => return ("revise", format!("The diff for {path} is unreadable: {e}.")),
    };
    let (removed, added) = parsed.changed_lines();
    let (want_removed, want_added) = expected_changes(original, &expected);
    let correct = match parsed.apply(original) {
        Ok(result) => result == expected,
        Err(_) => removed == want_removed && added == want_added,
    };
    if correct {
        return ("approve", "Looks correct.".to_string());
    }
    if scenario.file(path).is_none() {
        return (
            "revise",
            format!("{path} should not change for this instruction; revert it."),
        );
    }
    let mut problems = Vec::new();
    for line in multiset_minus(&want_added, &added).iter().take(3) {
        problems.push(format!("missing change: expected a line `{}`", line.trim()));
    }
    for line in multiset_minus(&added, &want_added).iter().take(3) {
        problems.push(format!("unexpected line `{}`", line.trim()));
    }
    for line in multiset_minus(&want_removed, &removed).iter().take(3) {
        problems.push(format!("line `{}` should have been changed", line.trim()));
    }
    for line in multiset_minus(&removed, &want_removed).iter().take(3) {
        problems.push(format!(
            "line `{}` should not have been removed",
            line.trim()
        ));
    }
    if problems.is_empty() {
        problems.push("the right lines change, but in the wrong places".to_string());
    }
    ("revise", format!("{path}: {}.", problems.join("; ")))
}

// ---------------------------------------------------------------- generic

/// A plausible input for a JSON schema.
fn synth(schema: &Value) -> Value {
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => {
            let mut map = serde_json::Map::new();
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, v) in props {
                    map.insert(k.clone(), synth(v));
                }
            }
            Value::Object(map)
        }
        Some("string") => json!("sim"),
        Some("integer") | Some("number") => json!(1),
        Some("boolean") => json!(true),
        Some("array") => json!([]),
        _ => Value::Null,
    }
}

fn generic(req: &ParsedRequest, forced: Option<OutcomeKind>) -> (Draft, AnswerMeta) {
    let last_user = req.messages.iter().rev().find(|m| m.role == MsgRole::User);
    let answering_tool = last_user.is_some_and(Msg::is_tool_result_turn);
    let choice_none = matches!(req.tool_choice, Some(ToolChoice::None));
    let wants_tool = !req.tools.is_empty()
        && !choice_none
        && (!answering_tool
            || matches!(req.tool_choice, Some(ToolChoice::Any | ToolChoice::Tool(_))));
    let mut meta = AnswerMeta::default();
    let good = if wants_tool {
        let tool = match &req.tool_choice {
            Some(ToolChoice::Tool(name)) => req
                .tools
                .iter()
                .find(|t| t.get("name").and_then(Value::as_str) == Some(name)),
            _ => req.tools.first(),
        };
        tool.map(|t| {
            let name = t.get("name").and_then(Value::as_str).unwrap_or("tool");
            ToolCall::new(
                name,
                t.get("input_schema")
                    .map(synth)
                    .unwrap_or_else(|| json!({})),
            )
        })
    } else {
        None
    };
    let text = if answering_tool {
        let result = last_user
            .and_then(|m| {
                m.blocks
                    .iter()
                    .find(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
            })
            .and_then(|b| b.get("content"))
            .map(|c| match c {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .unwrap_or_default();
        format!("The tool returned: {}", preview(&result))
    } else {
        let said = last_user.map(Msg::text).unwrap_or_default();
        format!(
            "Hello! This is cadre-sim answering as {}. You said: {}",
            req.model,
            preview(&said)
        )
    };
    meta.outcome = Some(
        forced
            .map_or(
                if good.is_some() { "tool_use" } else { "text" },
                OutcomeKind::as_str,
            )
            .to_string(),
    );
    let draft = match (forced, good) {
        (Some(kind), Some(call)) => Draft::forced(kind, call, "submit_plan"),
        (Some(kind), None) => Draft::forced(kind, ToolCall::new("tool", json!({})), "submit_plan"),
        (None, Some(call)) => Draft::call(call),
        (None, None) => Draft::text(text),
    };
    (draft, meta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn worker_prompt_parses_path_file_and_attempt() {
        let text = "<subtask path=\"app/a.py\" complexity=\"generative\" error_cost=\"low\">\nRename it.\n</subtask>\n<file path=\"app/a.py\">\nx = 1\n</file>\n</file>\n\n<feedback attempt=\"1\" kind=\"syntax_error\">bad</feedback>\n<feedback attempt=\"2\" kind=\"review\">no</feedback>";
        let p = parse_worker_prompt(text).unwrap();
        assert_eq!(p.path, "app/a.py");
        assert_eq!(p.complexity, "generative");
        assert_eq!(p.instruction, "Rename it.");
        assert_eq!(p.file.as_deref(), Some("x = 1\n</file>"));
        assert_eq!(p.attempt, 3);
    }

    #[test]
    fn empty_file_content_parses() {
        let text = "<subtask path=\"n.py\" complexity=\"mechanical\" error_cost=\"low\">\nCreate.\n</subtask>\n<file path=\"n.py\">\n\n</file>";
        assert_eq!(parse_worker_prompt(text).unwrap().file.as_deref(), Some(""));
    }

    #[test]
    fn diffs_are_split_per_path() {
        let text = "Review:\n<diff path=\"a.py\">\n--- a/a.py\n+++ b/a.py\n@@ -1 +1 @@\n-x\n+y\n</diff>\n<diff path=\"b.py\">\n@@ -1 +1 @@\n-p\n+q\n</diff>";
        let d = parse_diffs(text);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].0, "a.py");
        assert_eq!(d[0].1, "--- a/a.py\n+++ b/a.py\n@@ -1 +1 @@\n-x\n+y\n");
        assert_eq!(d[1].0, "b.py");
    }

    #[test]
    fn schemas_synthesise_inputs() {
        let schema = json!({"type":"object","properties":{"city":{"type":"string"},"unit":{"type":"string","enum":["c","f"]},"days":{"type":"integer"}}});
        assert_eq!(synth(&schema), json!({"city":"sim","unit":"c","days":1}));
    }
}
