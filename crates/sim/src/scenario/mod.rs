//! The scenario (TOML): what the simulated models answer.
//!
//! The format is documented in the project's scenario contract; every table
//! and field below maps 1:1 to it. Unknown fields are errors, so a typo in a
//! scenario fails loudly instead of silently changing a test. This module
//! holds the types; [`load`] reads, checks and writes scenario files, and
//! [`builder`] builds scenarios in code ([`ScenarioBuilder`]).

mod builder;
mod load;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::chat::ChatSpec;
use crate::edits::apply_edits;
use crate::faults::FaultSpec;
use crate::models::ThinkingMode;
pub use builder::ScenarioBuilder;

/// A whole scenario. Build one with [`Scenario::load`], [`Scenario::from_toml_str`],
/// [`Scenario::builder`] or `Scenario::default()` (no plan, no files, built-in
/// models); write one with [`Scenario::to_toml_string`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Seed of every random draw (skill rolls, wrong-answer kinds, latency, ids).
    #[serde(default)]
    pub seed: u64,
    /// Directory (relative to the scenario file) holding the original files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<PathBuf>,
    /// The planner's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<PlanSpec>,
    /// The correct change per file.
    #[serde(default)]
    pub files: Vec<FileSpec>,
    /// Reviewer behaviour.
    #[serde(default)]
    pub reviewer: ReviewerSpec,
    /// Per-model overrides and extra models.
    #[serde(default)]
    pub models: BTreeMap<String, ModelOverride>,
    /// Faults injected into matching requests.
    #[serde(default)]
    pub faults: Vec<FaultSpec>,
    /// Provider-wide limits.
    #[serde(default)]
    pub limits: LimitsSpec,
    /// Message Batches behaviour.
    #[serde(default)]
    pub batch: BatchSpec,
    /// The OpenAI-compatible endpoint's quirks and context size.
    #[serde(default, skip_serializing_if = "is_default_chat")]
    pub chat: ChatSpec,
    /// Original file contents preloaded from `workspace` (path -> content).
    #[serde(skip)]
    originals: BTreeMap<String, String>,
}

fn is_default_chat(chat: &ChatSpec) -> bool {
    *chat == ChatSpec::default()
}

/// `[plan]`: what the planner submits through `submit_plan`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanSpec {
    /// Notes shared with every worker.
    #[serde(default)]
    pub notes: String,
    /// The subtasks, in order; paths are sent verbatim (hostile paths included).
    #[serde(default)]
    pub subtasks: Vec<SubtaskSpec>,
    /// Selectors, sent on the first page (fields sent verbatim).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub selectors: Vec<SelectorSpec>,
    /// Pages the explicit subtasks are split into (0 or 1: one answer); every
    /// page but the last says `more: true`. More pages than subtasks make
    /// empty pages: a planner that never finishes.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pages: u32,
    /// Searches the planner runs first, one per turn, when cadre offers its
    /// `search` tool (and does not force `submit_plan`); each answer's first
    /// line is added to the plan's notes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub searches: Vec<SearchSpec>,
}

/// `[[plan.searches]]`: a search of the index as the planner states it
/// (fields sent verbatim, hostile ones included).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchSpec {
    /// Globs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// `match.literal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub literal: Option<String>,
    /// `match.regex`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// `match.pattern` (an ast-grep pattern).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// `match.language`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// `[[plan.selectors]]`: a selector as the planner states it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectorSpec {
    /// Its id.
    pub id: String,
    /// Globs.
    #[serde(default)]
    pub paths: Vec<String>,
    /// `match.literal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub literal: Option<String>,
    /// `match.regex`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// `match.pattern` (an ast-grep pattern).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// `match.language`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// `mechanical | generative | reasoning`.
    #[serde(default = "default_complexity")]
    pub complexity: String,
    /// `low | high`.
    #[serde(default = "default_error_cost")]
    pub error_cost: String,
    /// What to do to each file.
    #[serde(default)]
    pub instruction: String,
    /// An ast-grep YAML rule attached to the selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

/// `[[plan.subtasks]]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubtaskSpec {
    /// Path as the planner states it.
    pub path: String,
    /// What to do.
    #[serde(default)]
    pub instruction: String,
    /// `mechanical | generative | reasoning`.
    #[serde(default = "default_complexity")]
    pub complexity: String,
    /// `low | high`.
    #[serde(default = "default_error_cost")]
    pub error_cost: String,
    /// `edit | create | delete | move` (omitted from the answer when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// A move's new path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// An ast-grep YAML rule attached to the entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

fn default_complexity() -> String {
    "mechanical".into()
}

fn default_error_cost() -> String {
    "low".into()
}

/// `[[files]]`: the correct change to one file and how models fare on it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// Workspace-relative path.
    pub path: String,
    /// Exact search/replace edits (each `old` unique in the original).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edits: Option<Vec<EditSpec>>,
    /// The whole new content (alternative to `edits`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Read-only tool calls made before editing, one per turn: a path means
    /// `read_file {path}`, `grep:PATTERN` means `grep {pattern}`.
    #[serde(default)]
    pub reads: Vec<String>,
    /// Scripted outcomes per model id for that model's successive attempts.
    #[serde(default)]
    pub script: BTreeMap<String, Vec<OutcomeKind>>,
}

/// One exact search/replace.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditSpec {
    /// Text to find (must occur once).
    pub old: String,
    /// Replacement.
    pub new: String,
}

/// What a worker attempt produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    /// The correct change.
    Ok,
    /// The change plus a stray `)`: the file no longer parses.
    Syntax,
    /// Misses a change: only the first edit, or the last changed line dropped.
    Partial,
    /// An `edit_file` whose `old` text does not occur in the file.
    Mismatch,
    /// Returns the original text (a revert).
    Noop,
    /// Repeats this model's previous wrong answer verbatim (circular fixing).
    Repeat,
    /// A text answer without any tool call.
    NoTool,
    /// An `edit_file` input that violates the schema (`edits` missing).
    Schema,
    /// Calls `submit_plan` instead of an edit tool.
    WrongTool,
    /// `stop_reason: max_tokens` with a cut-off tool input.
    Truncated,
    /// `content: []`.
    Empty,
}

impl OutcomeKind {
    /// The snake_case name used in scenarios and the request log.
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeKind::Ok => "ok",
            OutcomeKind::Syntax => "syntax",
            OutcomeKind::Partial => "partial",
            OutcomeKind::Mismatch => "mismatch",
            OutcomeKind::Noop => "noop",
            OutcomeKind::Repeat => "repeat",
            OutcomeKind::NoTool => "no_tool",
            OutcomeKind::Schema => "schema",
            OutcomeKind::WrongTool => "wrong_tool",
            OutcomeKind::Truncated => "truncated",
            OutcomeKind::Empty => "empty",
        }
    }
}

/// `[reviewer]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewerSpec {
    /// The first N reviews of a path say "revise" even if the change is correct.
    #[serde(default)]
    pub force_revise: BTreeMap<String, u32>,
    /// The first N reviews of a codemod rule (by id, as its `<rule>` block
    /// names it) say "revise" even if its samples are correct.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub force_revise_rules: BTreeMap<String, u32>,
}

/// `[models."id"]`: overrides of a built-in model, or a new model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelOverride {
    /// P(correct) per complexity class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skill: Option<SkillSpec>,
    /// Seeded uniform latency `base..=base+jitter` milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<LatencySpec>,
    /// Output tokens per answer character.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens_per_char: Option<f64>,
    /// Prefixes shorter than this are never cached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_cacheable_tokens: Option<u64>,
    /// `none | budget | adaptive | adaptive_or_budget` (adaptive = adaptive-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<ThinkingMode>,
    /// Whether `output_config.effort` is accepted (all five levels when turned on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supports_effort: Option<bool>,
    /// Exactly which effort levels are accepted (overrides `supports_effort`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effort_levels: Option<Vec<String>>,
    /// Context window in tokens (longer prompts get 400 "prompt is too long").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u64>,
    /// Largest accepted `max_tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u64>,
    /// Whether `temperature` / `top_p` / `top_k` are accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampling_params: Option<bool>,
    /// `display_name` in `GET /v1/models`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// How the model fares per `output_config.effort` level
    /// (`[models."id".effort.medium]`): its skill and output length at that
    /// effort. A request without effort, or at a level not listed, gets the
    /// model's own.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub effort: BTreeMap<String, EffortSpec>,
}

/// `[models."id".effort.LEVEL]`: the model at one effort level.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EffortSpec {
    /// P(correct) per complexity class at this effort (missing classes keep
    /// the model's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skill: Option<SkillSpec>,
    /// Multiplies the model's output tokens per character (and so its
    /// output tokens) at this effort.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens_scale: Option<f64>,
}

/// Skill per complexity class; missing classes keep the base model's value.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkillSpec {
    /// P(correct) on mechanical subtasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mechanical: Option<f64>,
    /// P(correct) on generative subtasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generative: Option<f64>,
    /// P(correct) on reasoning subtasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<f64>,
}

/// `latency_ms = { base, jitter }`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencySpec {
    /// Minimum latency in milliseconds.
    #[serde(default)]
    pub base: u64,
    /// Extra uniform jitter in milliseconds.
    #[serde(default)]
    pub jitter: u64,
}

/// `[limits]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    /// Token bucket size and refill per minute for `POST /v1/messages`; 0 = unlimited.
    #[serde(default)]
    pub requests_per_minute: u32,
}

/// `[batch]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchSpec {
    /// A batch ends this long after creation.
    #[serde(default = "default_processing_delay_ms")]
    pub processing_delay_ms: u64,
}

fn default_processing_delay_ms() -> u64 {
    200
}

impl Default for BatchSpec {
    fn default() -> Self {
        Self {
            processing_delay_ms: default_processing_delay_ms(),
        }
    }
}

impl FromStr for OutcomeKind {
    type Err = String;

    /// Parses the snake_case name (`"syntax"`, `"no_tool"`, ...).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        serde_json::from_value(serde_json::Value::String(s.trim().to_string())).map_err(|_| {
            format!(
                "unknown outcome {s:?}: expected ok, syntax, partial, mismatch, noop, repeat, \
                 no_tool, schema, wrong_tool, truncated or empty"
            )
        })
    }
}

impl Scenario {
    /// Sets (or replaces) the known original content of `path`, as if it had
    /// been read from the workspace. Useful for scenarios built in code.
    pub fn with_original(mut self, path: impl Into<String>, content: impl Into<String>) -> Self {
        self.originals.insert(path.into(), content.into());
        self
    }

    /// The originals preloaded from the workspace (path -> content).
    pub fn originals(&self) -> &BTreeMap<String, String> {
        &self.originals
    }

    /// The `[[files]]` entry for `path`.
    pub fn file(&self, path: &str) -> Option<&FileSpec> {
        self.files.iter().find(|f| f.path == path)
    }

    /// The content the file at `path` should end with, given its original:
    /// the scenario's `content`, or its `edits` applied to `original`; the
    /// original itself for files the scenario does not change.
    pub fn expected_content(&self, path: &str, original: &str) -> Result<String, String> {
        match self.file(path) {
            None => Ok(original.to_string()),
            Some(spec) => spec.expected_from(original),
        }
    }
}

impl FileSpec {
    /// The expected content given the original.
    pub fn expected_from(&self, original: &str) -> Result<String, String> {
        if let Some(content) = &self.content {
            return Ok(content.clone());
        }
        apply_edits(original, self.edits.as_deref().unwrap_or_default())
    }
}
