//! What cadre says to models and how it reads their answers.
//!
//! Agents speak only through tools (docs/architecture.md section 6). The request layout is
//! cache-friendly: tools, then the role's system text, then the job's shared
//! prefix (instruction, plan notes, subtask list) carrying the one
//! `cache_control` breakpoint, then the per-file user message. The exact tag
//! format of the user messages is documented in the simulator brief and
//! parsed by `cadre-sim`.

use std::sync::{Arc, LazyLock};

use cadre_llm::types::{
    CacheControl, ContentBlock, Message, MessageRequest, MessageResponse, MessageRole, StopReason,
    SystemBlock, ToolDefinition,
};
use cadre_types::{Complexity, EditOp, ErrorCost, FailureKind, Plan, PlannedSubtask, WorkerChange};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::route::CallSettings;

mod review;
pub use review::{
    ReviewAnswer, RuleBlock, RuleVerdict, parse_review, reviewer_request, reviewer_tools,
};

const PLANNER_SYSTEM: &str = "You are the planner of a code-change orchestrator. Split the user's \
instruction into independent per-file subtasks. You see an overview of the workspace (counts \
per language and directory, how many files mention the instruction's terms, a sample of \
files), not every file: when the search tool is offered, use it to count and sample the files \
a pattern matches before you plan. Name files two ways: a selector (globs plus a literal, \
regex or ast-grep pattern; cadre expands it over the workspace itself) for any set of files \
that get the same change, optionally with an ast-grep YAML rule (id, language, rule, fix) \
that makes a mechanical change without a model; or an explicit subtask for one file \
(an existing workspace-relative path, or a create, delete or move). Explicit subtasks win \
over a selector for the same file. Say precisely what to change, and classify: complexity \
mechanical (renames, imports, formatting), generative (new code, conversions that need \
understanding of the file) or reasoning (subtle logic, security, cross-file invariants); \
error_cost high when a mistake would be costly (auth, crypto, data migrations, public APIs). \
Put conventions every worker must follow in notes. Only plan files that need a change. \
Answer by calling submit_plan; when explicit subtasks do not fit one answer, set more=true \
and continue in the next call.";

const WORKER_SYSTEM: &str = "You are a careful software engineer editing exactly one file as \
part of a larger change. Make only the change your subtask asks for, consistent with the \
shared notes. Use edit_file with exact search/replace edits: each `old` must be copied \
verbatim from the file and match exactly once; include enough context to be unique. Use \
write_file only for small files. You may call read_file or grep first to look at other files \
(read-only), but you must finish by calling edit_file or write_file. If earlier attempts \
failed, their feedback follows the file: fix what it says.";

fn tool(name: &str, description: &str, schema: Value) -> ToolDefinition {
    ToolDefinition {
        name: name.to_owned(),
        description: Some(description.to_owned()),
        input_schema: Arc::new(schema),
        cache_control: None,
    }
}

/// The `match` of a selector and of the planner's `search` (the same
/// matcher serves both): a literal, a regex or an ast-grep pattern.
fn selector_match_schema() -> Value {
    json!({"type": "object", "properties": {
        "literal": {"type": "string"},
        "regex": {"type": "string"},
        "pattern": {"type": "string", "description": "ast-grep pattern"},
        "language": {"type": "string"}
    }})
}

/// The planner's tools: `submit_plan`, and the read-only `search` when
/// `search` is true.
pub fn planner_tools(search: bool) -> Vec<ToolDefinition> {
    let mut tools = vec![tool(
        "submit_plan",
        "Submit the plan: shared notes and one subtask per file to change.",
        json!({
            "type": "object",
            "properties": {
                "notes": {"type": "string"},
                "subtasks": {"type": "array", "items": {
                    "type": "object",
                    "properties": {
                        "path": {"type": "string"},
                        "instruction": {"type": "string"},
                        "complexity": {"type": "string", "enum": ["mechanical", "generative", "reasoning"]},
                        "error_cost": {"type": "string", "enum": ["low", "high"]},
                        "action": {"type": "string", "enum": ["edit", "create", "delete", "move"],
                                   "description": "default edit; create writes a new file, move renames path to `to`"},
                        "to": {"type": "string", "description": "the new path of a move"},
                        "rule": {"type": "string", "description": "optional ast-grep YAML rule (id, language, rule, fix) that makes a mechanical change without a model"}
                    },
                    "required": ["path", "instruction", "complexity", "error_cost"]
                }},
                "selectors": {"type": "array", "description": "sets of files cadre expands itself: globs plus a literal, regex or AST pattern; use these instead of listing many files with the same change", "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "paths": {"type": "array", "items": {"type": "string"}, "description": "workspace-relative globs"},
                        "match": selector_match_schema(),
                        "complexity": {"type": "string", "enum": ["mechanical", "generative", "reasoning"]},
                        "error_cost": {"type": "string", "enum": ["low", "high"]},
                        "instruction": {"type": "string"},
                        "rule": {"type": "string", "description": "optional ast-grep YAML rule run before any model"}
                    },
                    "required": ["id", "match", "complexity", "error_cost", "instruction"]
                }},
                "more": {"type": "boolean", "description": "true when more explicit subtasks follow in another submit_plan call"}
            },
            "required": ["notes", "subtasks"]
        }),
    )];
    if search {
        tools.push(tool(
            "search",
            "Search the workspace (read-only) before planning: how many files a pattern matches, \
             with the first matching line of a few. The same globs and match as a selector.",
            json!({
                "type": "object",
                "properties": {
                    "paths": {"type": "array", "items": {"type": "string"}, "description": "workspace-relative globs; none means every file"},
                    "match": selector_match_schema()
                },
                "required": ["match"]
            }),
        ));
    }
    tools
}

/// The worker's tools: two that edit, two that look around. Built once:
/// every worker request shares their schemas.
pub fn worker_tools() -> Vec<ToolDefinition> {
    static TOOLS: LazyLock<Vec<ToolDefinition>> = LazyLock::new(build_worker_tools);
    TOOLS.clone()
}

fn build_worker_tools() -> Vec<ToolDefinition> {
    vec![
        tool(
            "edit_file",
            "Apply exact search/replace edits to your file, in order. Each `old` must match exactly once.",
            json!({
                "type": "object",
                "properties": {"edits": {"type": "array", "minItems": 1, "items": {
                    "type": "object",
                    "properties": {"old": {"type": "string"}, "new": {"type": "string"}},
                    "required": ["old", "new"]
                }}},
                "required": ["edits"]
            }),
        ),
        tool(
            "write_file",
            "Replace your file's whole content (small files only).",
            json!({"type": "object", "properties": {"content": {"type": "string"}}, "required": ["content"]}),
        ),
        tool(
            "read_file",
            "Read another file of the workspace (read-only).",
            json!({"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}),
        ),
        tool(
            "grep",
            "Search the workspace for a literal string; returns matching lines as path:line: text.",
            json!({"type": "object", "properties": {"pattern": {"type": "string"}}, "required": ["pattern"]}),
        ),
    ]
}

fn base_request(
    model: &str,
    settings: &CallSettings,
    tools: Vec<ToolDefinition>,
    system: Vec<SystemBlock>,
    user: String,
) -> MessageRequest {
    MessageRequest {
        model: model.to_owned(),
        max_tokens: settings.max_tokens,
        system,
        tools,
        tool_choice: Some(settings.tool_choice.clone()),
        messages: vec![Message {
            role: MessageRole::User,
            content: vec![ContentBlock::text(user)],
        }],
        thinking: settings.thinking.clone(),
        output_config: settings.output_config.clone(),
        stream: None,
    }
}

/// The planner's request: the instruction and the workspace overview;
/// the `search` tool offered when `search` is true.
pub fn planner_request(
    model: &str,
    settings: &CallSettings,
    instruction: &str,
    overview: &str,
    search: bool,
) -> MessageRequest {
    let user = format!(
        "<instruction>\n{instruction}\n</instruction>\n<workspace_overview>\n{overview}</workspace_overview>\n\
         Call submit_plan: selectors for sets of files with the same change, explicit subtasks \
         for the rest."
    );
    base_request(
        model,
        settings,
        planner_tools(search),
        vec![SystemBlock::text(PLANNER_SYSTEM)],
        user,
    )
}

/// The job's shared prefix: identical for every worker call of the job.
pub fn shared_prefix(instruction: &str, notes: &str, subtasks: &[(String, Complexity)]) -> String {
    // The list gives workers the shape of the change; past a few hundred
    // entries it only makes every prompt (and the cache) bigger.
    const LISTED: usize = 200;
    let mut list = String::new();
    for (path, complexity) in subtasks.iter().take(LISTED) {
        list.push_str(&format!("- {path} ({complexity})\n"));
    }
    if subtasks.len() > LISTED {
        list.push_str(&format!(
            "- ... and {} more files\n",
            subtasks.len() - LISTED
        ));
    }
    format!(
        "<job>\n<instruction>\n{instruction}\n</instruction>\n<notes>\n{notes}\n</notes>\n\
         <subtasks>\n{list}</subtasks>\n</job>"
    )
}

/// One earlier failure, fed back to the next attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Feedback {
    /// The earlier attempt's number within the subtask.
    pub attempt: u32,
    /// Its failure kind.
    pub kind: FailureKind,
    /// What went wrong (validator output, check output, review comment).
    pub message: String,
}

/// The per-file user message of a worker's first turn.
pub fn worker_user_message(
    path: &str,
    complexity: Complexity,
    error_cost: ErrorCost,
    instruction: &str,
    content: &str,
    feedback: &[Feedback],
) -> String {
    let mut text = format!(
        "<subtask path=\"{path}\" complexity=\"{complexity}\" error_cost=\"{error_cost}\">\n{instruction}\n</subtask>\n\
         <file path=\"{path}\">\n{content}\n</file>"
    );
    for f in feedback {
        let message: String = f.message.chars().take(4000).collect();
        text.push_str(&format!(
            "\n<feedback attempt=\"{}\" kind=\"{}\">{}</feedback>",
            f.attempt, f.kind, message
        ));
    }
    text
}

/// The worker's first request. The breakpoint goes on the shared prefix only
/// when `cache_prefix` (the prefix reaches the model's minimum).
pub fn worker_request(
    model: &str,
    settings: &CallSettings,
    prefix: &str,
    cache_prefix: bool,
    user: String,
) -> MessageRequest {
    let mut shared = SystemBlock::text(prefix);
    if cache_prefix {
        shared.cache_control = Some(CacheControl::ephemeral());
    }
    base_request(
        model,
        settings,
        worker_tools(),
        vec![SystemBlock::text(WORKER_SYSTEM), shared],
        user,
    )
}

/// Tokens of the cacheable part of a worker request (tools + system + prefix).
pub fn worker_prefix_text(prefix: &str) -> String {
    let tools = serde_json::to_string(&worker_tools()).unwrap_or_default();
    format!("{tools}{WORKER_SYSTEM}{prefix}")
}

/// A request's prompt, in tokens, as cadre estimates it: its JSON (tools,
/// system, messages) at four characters a token, plus a tenth and a little
/// for the chat template a server wraps it in.
pub fn prompt_tokens(request: &MessageRequest) -> u64 {
    // Characters counted as the JSON is written, never held.
    let mut chars = crate::call::CharCounter::default();
    let parts = (&request.tools, &request.system, &request.messages);
    match serde_json::to_writer(&mut chars, &parts) {
        Ok(()) => prompt_tokens_for_chars(chars.0),
        Err(_) => 64,
    }
}

/// [`prompt_tokens`] of a request whose tools, system and messages are
/// `parts` characters of JSON together (counted as one array of the three).
pub fn prompt_tokens_for_chars(parts: u64) -> u64 {
    let tokens = crate::pricing::tokens_for_chars(parts);
    tokens + tokens / 10 + 64
}

/// Lowers `request.max_tokens` to what `window` leaves after the prompt.
/// `Err` with "prompt N + output M > window W" when not even `min_output`
/// tokens are left.
pub fn fit_to_window(
    request: &mut MessageRequest,
    window: u64,
    min_output: u32,
) -> Result<(), String> {
    fit_prompt(request, window, min_output, prompt_tokens(request))
}

/// [`fit_to_window`] for a prompt of `prompt` tokens (counted by the server).
pub fn fit_prompt(
    request: &mut MessageRequest,
    window: u64,
    min_output: u32,
    prompt: u64,
) -> Result<(), String> {
    let left = window.saturating_sub(prompt);
    if left < u64::from(min_output) || left == 0 {
        return Err(format!(
            "prompt {prompt} + output {min_output} > window {window} (tokens)"
        ));
    }
    request.max_tokens = request
        .max_tokens
        .min(u32::try_from(left).unwrap_or(u32::MAX));
    Ok(())
}

/// A problem with a model's answer: recorded as the attempt's failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputProblem {
    /// Malformed output or no usable edit.
    pub kind: FailureKind,
    /// What was wrong.
    pub message: String,
}

fn malformed(message: impl Into<String>) -> OutputProblem {
    OutputProblem {
        kind: FailureKind::MalformedOutput,
        message: message.into(),
    }
}

fn no_edit(message: impl Into<String>) -> OutputProblem {
    OutputProblem {
        kind: FailureKind::NoUsableEdit,
        message: message.into(),
    }
}

fn tool_calls(response: &MessageResponse) -> Vec<(&str, &str, &Value)> {
    response
        .content
        .iter()
        .filter_map(|b| match b {
            ContentBlock::ToolUse { id, name, input } => Some((id.as_str(), name.as_str(), input)),
            _ => None,
        })
        .collect()
}

fn truncation_check(response: &MessageResponse) -> Result<(), OutputProblem> {
    if response.stop_reason == Some(StopReason::MaxTokens) {
        return Err(malformed(
            "the response hit max_tokens; its tool call is truncated",
        ));
    }
    Ok(())
}

fn single_call<'a>(
    response: &'a MessageResponse,
    expected: &str,
) -> Result<&'a Value, OutputProblem> {
    truncation_check(response)?;
    let calls = tool_calls(response);
    match calls.iter().find(|(_, name, _)| *name == expected) {
        Some((_, _, input)) => Ok(input),
        None if calls.is_empty() => Err(no_edit(format!(
            "the response has no tool call; expected {expected}"
        ))),
        None => Err(no_edit(format!(
            "the response called {} instead of {expected}",
            calls
                .iter()
                .map(|(_, n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Reads `submit_plan` (paths are validated later, by the engine).
pub fn parse_plan(response: &MessageResponse) -> Result<Plan, OutputProblem> {
    let input = single_call(response, "submit_plan")?;
    Plan::deserialize(input)
        .map_err(|e| malformed(format!("submit_plan input does not match its schema: {e}")))
}

/// What a worker turn asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum WorkerTurn {
    /// A final change to the subtask's file.
    Change(WorkerChange),
    /// Read-only tool calls to answer: (tool_use id, tool name, input).
    Look(Vec<(String, String, Value)>),
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EditInput {
    edits: Vec<EditOp>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteInput {
    content: String,
}

/// Reads a worker turn.
pub fn parse_worker_turn(response: &MessageResponse) -> Result<WorkerTurn, OutputProblem> {
    truncation_check(response)?;
    let calls = tool_calls(response);
    if calls.is_empty() {
        return Err(no_edit(
            "the response has no tool call; call edit_file or write_file",
        ));
    }
    if let Some((_, name, input)) = calls
        .iter()
        .find(|(_, n, _)| *n == "edit_file" || *n == "write_file")
    {
        return match *name {
            "edit_file" => EditInput::deserialize(*input)
                .map(|i| WorkerTurn::Change(WorkerChange::Edits { edits: i.edits }))
                .map_err(|e| malformed(format!("edit_file input does not match its schema: {e}"))),
            _ => WriteInput::deserialize(*input)
                .map(|i| WorkerTurn::Change(WorkerChange::Write { content: i.content }))
                .map_err(|e| malformed(format!("write_file input does not match its schema: {e}"))),
        };
    }
    let looks: Vec<(String, String, Value)> = calls
        .iter()
        .filter(|(_, n, _)| *n == "read_file" || *n == "grep")
        .map(|(id, n, i)| ((*id).to_owned(), (*n).to_owned(), (*i).clone()))
        .collect();
    if looks.len() != calls.len() {
        let names: Vec<&str> = calls.iter().map(|(_, n, _)| *n).collect();
        return Err(no_edit(format!(
            "the response called an unknown tool: {}",
            names.join(", ")
        )));
    }
    Ok(WorkerTurn::Look(looks))
}

/// A planned subtask's list entry for the shared prefix.
pub fn prefix_entry(s: &PlannedSubtask) -> (String, Complexity) {
    (s.path.clone(), s.complexity)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cadre_llm::types::Usage;
    use cadre_types::Verdict;

    fn response(content: Vec<ContentBlock>, stop: StopReason) -> MessageResponse {
        MessageResponse {
            id: "msg_1".into(),
            model: "m".into(),
            content,
            stop_reason: Some(stop),
            usage: Usage::default(),
        }
    }

    fn call(name: &str, input: Value) -> ContentBlock {
        ContentBlock::ToolUse {
            id: "toolu_1".into(),
            name: name.into(),
            input,
        }
    }

    #[test]
    fn worker_answers_are_classified() {
        let ok = response(
            vec![call(
                "edit_file",
                json!({"edits": [{"old": "a", "new": "b"}]}),
            )],
            StopReason::ToolUse,
        );
        assert!(matches!(
            parse_worker_turn(&ok),
            Ok(WorkerTurn::Change(WorkerChange::Edits { .. }))
        ));
        let schema = response(
            vec![call("edit_file", json!({"edit": []}))],
            StopReason::ToolUse,
        );
        assert_eq!(
            parse_worker_turn(&schema).unwrap_err().kind,
            FailureKind::MalformedOutput
        );
        let truncated = response(vec![call("edit_file", json!({}))], StopReason::MaxTokens);
        assert!(
            parse_worker_turn(&truncated)
                .unwrap_err()
                .message
                .contains("max_tokens")
        );
        let wrong = response(vec![call("submit_plan", json!({}))], StopReason::ToolUse);
        assert_eq!(
            parse_worker_turn(&wrong).unwrap_err().kind,
            FailureKind::NoUsableEdit
        );
        let empty = response(vec![], StopReason::EndTurn);
        assert_eq!(
            parse_worker_turn(&empty).unwrap_err().kind,
            FailureKind::NoUsableEdit
        );
        let text = response(
            vec![ContentBlock::text("I would change it")],
            StopReason::EndTurn,
        );
        assert_eq!(
            parse_worker_turn(&text).unwrap_err().kind,
            FailureKind::NoUsableEdit
        );
        let look = response(
            vec![call("read_file", json!({"path": "a.py"}))],
            StopReason::ToolUse,
        );
        assert!(matches!(parse_worker_turn(&look), Ok(WorkerTurn::Look(v)) if v.len() == 1));
    }

    #[test]
    fn plan_and_review_parse() {
        let plan = response(
            vec![call(
                "submit_plan",
                json!({"notes": "n", "subtasks": [{"path": "a.py", "instruction": "i", "complexity": "mechanical", "error_cost": "low"}]}),
            )],
            StopReason::ToolUse,
        );
        assert_eq!(parse_plan(&plan).unwrap().subtasks.len(), 1);
        let bad = response(
            vec![call(
                "submit_plan",
                json!({"notes": "n", "subtasks": [{"path": "a"}]}),
            )],
            StopReason::ToolUse,
        );
        assert_eq!(
            parse_plan(&bad).unwrap_err().kind,
            FailureKind::MalformedOutput
        );
        let review = response(
            vec![call(
                "submit_review",
                json!({"verdicts": [{"path": "a.py", "verdict": "revise", "comment": "c"}]}),
            )],
            StopReason::ToolUse,
        );
        let answer = parse_review(&review).unwrap();
        assert_eq!(answer.files[0].comment, "c");
        assert!(answer.rules.is_empty());
        let rules = response(
            vec![call(
                "submit_review",
                json!({"verdicts": [], "rules": [{"rule": "r1", "verdict": "revise", "comment": "too wide"}]}),
            )],
            StopReason::ToolUse,
        );
        assert_eq!(
            parse_review(&rules).unwrap().rules,
            vec![RuleVerdict {
                rule: "r1".into(),
                verdict: Verdict::Revise,
                comment: "too wide".into()
            }]
        );
        let bad_rule = response(
            vec![call(
                "submit_review",
                json!({"verdicts": [], "rules": [{"rule": "r1", "verdict": "maybe"}]}),
            )],
            StopReason::ToolUse,
        );
        assert_eq!(
            parse_review(&bad_rule).unwrap_err().kind,
            FailureKind::MalformedOutput
        );
    }

    #[test]
    fn max_tokens_is_lowered_to_fit_the_window_or_the_call_is_refused() {
        let settings = CallSettings {
            max_tokens: 8192,
            thinking: None,
            output_config: None,
            tool_choice: cadre_llm::types::ToolChoice::Any,
            effort: None,
        };
        let mut request = worker_request("m", &settings, "prefix", false, "x = 1".repeat(200));
        let prompt = prompt_tokens(&request);
        assert!(prompt > 300, "{prompt}");
        fit_to_window(&mut request, 4096, 512).unwrap();
        assert_eq!(u64::from(request.max_tokens), 4096 - prompt);
        fit_to_window(&mut request, 200_000, 512).unwrap();
        assert_eq!(u64::from(request.max_tokens), 4096 - prompt, "never raised");
        let message = fit_to_window(&mut request, prompt + 100, 512).unwrap_err();
        assert_eq!(
            message,
            format!(
                "prompt {prompt} + output 512 > window {} (tokens)",
                prompt + 100
            )
        );
    }

    #[test]
    fn a_review_shows_each_rule_once_with_its_count_and_samples() {
        let settings = CallSettings {
            max_tokens: 8192,
            thinking: None,
            output_config: None,
            tool_choice: cadre_llm::types::ToolChoice::Any,
            effort: None,
        };
        let user = |r: &MessageRequest| match &r.messages[0].content[0] {
            ContentBlock::Text { text, .. } => text.clone(),
            other => panic!("{other:?}"),
        };
        let diffs = vec![("b.py".to_owned(), "@@ -1 +1 @@\n-p\n+q\n".to_owned())];
        let plain = user(&reviewer_request("m", &settings, "prefix", &[], &diffs));
        assert!(!plain.contains("<rule"), "{plain}");
        assert!(plain.ends_with("Call submit_review with a verdict for every file above."));
        let rule = RuleBlock {
            id: "rename".into(),
            yaml: "id: rename\nlanguage: python\n".into(),
            files: 1200,
            samples: vec![("a.py".into(), "@@ -1 +1 @@\n-x\n+y\n".into())],
        };
        let text = user(&reviewer_request("m", &settings, "prefix", &[rule], &diffs));
        assert!(text.starts_with(review::REVIEWER_RULES_NOTE), "{text}");
        assert!(
            text.contains(
                "<rule id=\"rename\" files=\"1200\" shown=\"1\">\n<yaml>\nid: rename\nlanguage: python\n</yaml>\n\
                 <sample path=\"a.py\">\n@@ -1 +1 @@\n-x\n+y\n</sample>\n</rule>\n<diff path=\"b.py\">"
            ),
            "{text}"
        );
        assert!(
            text.contains("(in `verdicts`) and for every rule (in `rules`)"),
            "{text}"
        );
    }

    #[test]
    fn worker_message_has_the_protocol_tags() {
        let m = worker_user_message(
            "a.py",
            Complexity::Mechanical,
            ErrorCost::Low,
            "do it",
            "x = 1",
            &[Feedback {
                attempt: 1,
                kind: FailureKind::SyntaxError,
                message: "bad".into(),
            }],
        );
        assert!(m.starts_with("<subtask path=\"a.py\" complexity=\"mechanical\" error_cost=\"low\">\ndo it\n</subtask>"));
        assert!(m.contains("<file path=\"a.py\">\nx = 1\n</file>"));
        assert!(m.ends_with("<feedback attempt=\"1\" kind=\"syntax_error\">bad</feedback>"));
    }
}
