//! The simulated models: what a planner, worker, reviewer or generic model answers.
//!
//! Answers are pure functions of the scenario, the seed and the request, plus
//! a little remembered state that real models would also "have": the original
//! content of each file (first worker prompt wins, or the scenario workspace),
//! which attempts each model already made at each file (so scripts advance and
//! `repeat` can repeat), and how many reviews each path and each codemod rule
//! had (`force_revise`, `force_revise_rules`).
//!
//! One module per role: [`planner`], [`worker`] (with the correct and the
//! wrong answers it can give in [`wrong`]), [`reviewer`] and [`generic`]
//! (plain chat and SDK tests). [`prompt`] reads the cadre prompts the roles
//! receive; [`draft`] turns a role's draft into the final [`Answer`]
//! (thinking block, ids, token accounting, stop sequences, truncation).

mod draft;
mod generic;
mod planner;
mod prompt;
mod reviewer;
mod worker;
mod wrong;

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use crate::Role;
use crate::models::ModelSpec;
use crate::request::{Msg, MsgRole, ParsedRequest};
use crate::scenario::{FileSpec, OutcomeKind, Scenario, SubtaskSpec};
use draft::finish;
use generic::generic;
use planner::planner;
use prompt::{parse_diffs, parse_worker_prompt};
use reviewer::reviewer;
use worker::worker;

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

impl Answer {
    /// Whether the answer holds a tool call.
    pub(crate) fn calls_a_tool(&self) -> bool {
        self.blocks
            .iter()
            .any(|b| matches!(b, AnswerBlock::ToolUse { .. }))
    }
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
    /// Worker requests: the `<feedback>` messages the prompt carried.
    pub(crate) feedback: Vec<String>,
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
    /// Reviews per codemod rule id (`force_revise_rules`).
    rule_reviews: HashMap<String, u32>,
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
    /// The scenario's paths, indexed once.
    pub(crate) paths: &'a PathIndex,
    pub(crate) secret: &'a str,
    pub(crate) body_sha: &'a str,
}

impl<'a> Ctx<'a> {
    /// The scenario's `[[files]]` entry for `path`.
    pub(crate) fn file(&self, path: &str) -> Option<&'a FileSpec> {
        let i = *self.paths.files.get(path)?;
        self.scenario.files.get(i)
    }

    /// The plan's subtask for `path`.
    pub(crate) fn planned(&self, path: &str) -> Option<&'a SubtaskSpec> {
        let i = *self.paths.planned.get(path)?;
        self.scenario.plan.as_ref()?.subtasks.get(i)
    }

    /// The content `path` should end with, given its original (see
    /// [`Scenario::expected_content`]).
    pub(crate) fn expected_content(&self, path: &str, original: &str) -> Result<String, String> {
        match self.file(path) {
            None => Ok(original.to_string()),
            Some(spec) => spec.expected_from(original),
        }
    }
}

/// A served scenario's files and planned subtasks by path (the first entry
/// of a path, as a scan would find), built once when the server starts: its
/// scenario never changes after that, and an answer looks a path up without
/// scanning every file (O(files) per request, O(files^2) per job at 10,000
/// files).
#[derive(Debug, Default)]
pub(crate) struct PathIndex {
    files: HashMap<String, usize>,
    planned: HashMap<String, usize>,
}

impl PathIndex {
    pub(crate) fn new(scenario: &Scenario) -> Self {
        fn first_of<'s>(paths: impl Iterator<Item = &'s String>) -> HashMap<String, usize> {
            let mut index = HashMap::new();
            for (i, path) in paths.enumerate() {
                index.entry(path.clone()).or_insert(i);
            }
            index
        }
        let planned = scenario.plan.iter().flat_map(|p| p.subtasks.iter());
        Self {
            files: first_of(scenario.files.iter().map(|f| &f.path)),
            planned: first_of(planned.map(|s| &s.path)),
        }
    }
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
    // A model behaves as its effort level says (skill, output length).
    let model = &*model.at_effort(req.effort.as_deref());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_is_found_in_the_index_as_a_scan_would_find_it() {
        let mut scenario = Scenario::default();
        scenario.files = vec![
            FileSpec::with_content("a.py", "first"),
            FileSpec::with_content("b.py", "b"),
            FileSpec::with_content("a.py", "second"),
        ];
        let paths = PathIndex::new(&scenario);
        let ctx = Ctx {
            scenario: &scenario,
            paths: &paths,
            secret: "s",
            body_sha: "",
        };
        for path in ["a.py", "b.py", "c.py"] {
            assert_eq!(ctx.file(path), scenario.file(path), "{path}");
        }
        assert_eq!(ctx.expected_content("a.py", "x").unwrap(), "first");
        assert_eq!(ctx.expected_content("c.py", "x").unwrap(), "x");
        assert!(ctx.planned("a.py").is_none());
    }
}
