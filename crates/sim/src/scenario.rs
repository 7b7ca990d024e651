//! The scenario file (TOML): what the simulated models answer.
//!
//! The format is documented in the project's scenario contract; every table
//! and field below maps 1:1 to it. Unknown fields are errors, so a typo in a
//! scenario fails loudly instead of silently changing a test.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::edits::apply_edits;
use crate::faults::FaultSpec;
use crate::models::ThinkingMode;
use crate::{Error, Result};

/// A whole scenario. Build one with [`Scenario::load`], [`Scenario::from_toml_str`]
/// or `Scenario::default()` (no plan, no files, built-in models).
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
    /// Original file contents preloaded from `workspace` (path -> content).
    #[serde(skip)]
    originals: BTreeMap<String, String>,
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

impl Scenario {
    /// Reads and parses a scenario file; `workspace` is resolved relative to
    /// the file's directory.
    pub fn load(path: impl AsRef<Path>) -> Result<Scenario> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        Self::parse(&text, base, &path.display().to_string())
    }

    /// Parses a scenario from TOML text; `base_dir` is where a relative
    /// `workspace` is resolved.
    pub fn from_toml_str(text: &str, base_dir: &Path) -> Result<Scenario> {
        Self::parse(text, base_dir, "<string>")
    }

    fn parse(text: &str, base_dir: &Path, origin: &str) -> Result<Scenario> {
        let mut scenario: Scenario =
            toml::from_str(text).map_err(|source| Error::ScenarioParse {
                origin: origin.to_string(),
                source: Box::new(source),
            })?;
        if let Some(ws) = scenario.workspace.clone() {
            let dir = base_dir.join(ws);
            scenario.load_originals(&dir)?;
        }
        scenario.validate()?;
        Ok(scenario)
    }

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

    fn load_originals(&mut self, dir: &Path) -> Result<()> {
        if !dir.is_dir() {
            return Err(Error::Io {
                path: dir.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "scenario workspace is not a directory",
                ),
            });
        }
        let mut paths: BTreeSet<String> = self.files.iter().map(|f| f.path.clone()).collect();
        if let Some(plan) = &self.plan {
            paths.extend(plan.subtasks.iter().map(|s| s.path.clone()));
        }
        for path in paths {
            // Hostile plan paths ("../x", "/etc/passwd") are never read.
            if !is_plain_relative(&path) {
                continue;
            }
            let full = dir.join(&path);
            if !full.is_file() {
                continue;
            }
            let bytes = std::fs::read(&full).map_err(|source| Error::Io {
                path: full.clone(),
                source,
            })?;
            if let Ok(text) = String::from_utf8(bytes) {
                self.originals.insert(path, text);
            }
        }
        Ok(())
    }

    fn validate(&self) -> Result<()> {
        let mut seen = BTreeSet::new();
        for (i, file) in self.files.iter().enumerate() {
            let at = format!("files[{i}] ({})", file.path);
            if !seen.insert(file.path.as_str()) {
                return Err(Error::InvalidScenario(format!("{at}: duplicate path")));
            }
            match (&file.edits, &file.content) {
                (Some(_), Some(_)) => {
                    return Err(Error::InvalidScenario(format!(
                        "{at}: give either `edits` or `content`, not both"
                    )));
                }
                (None, None) => {
                    return Err(Error::InvalidScenario(format!(
                        "{at}: needs `edits` or `content`"
                    )));
                }
                (Some(edits), None) if edits.is_empty() => {
                    return Err(Error::InvalidScenario(format!("{at}: `edits` is empty")));
                }
                _ => {}
            }
            if let Some(original) = self.originals.get(&file.path) {
                file.expected_from(original)
                    .map_err(|e| Error::InvalidScenario(format!("{at}: {e} in the original")))?;
            }
        }
        if let Some(plan) = &self.plan {
            for (i, st) in plan.subtasks.iter().enumerate() {
                if !matches!(
                    st.complexity.as_str(),
                    "mechanical" | "generative" | "reasoning"
                ) {
                    return Err(Error::InvalidScenario(format!(
                        "plan.subtasks[{i}]: complexity {:?} is not mechanical|generative|reasoning",
                        st.complexity
                    )));
                }
                if !matches!(st.error_cost.as_str(), "low" | "high") {
                    return Err(Error::InvalidScenario(format!(
                        "plan.subtasks[{i}]: error_cost {:?} is not low|high",
                        st.error_cost
                    )));
                }
            }
        }
        for (id, m) in &self.models {
            if let Some(skill) = &m.skill {
                for v in [skill.mechanical, skill.generative, skill.reasoning]
                    .into_iter()
                    .flatten()
                {
                    if !(0.0..=1.0).contains(&v) {
                        return Err(Error::InvalidScenario(format!(
                            "models.{id}.skill: {v} is outside 0..=1"
                        )));
                    }
                }
            }
            if let Some(v) = m.output_tokens_per_char
                && !(v.is_finite() && v >= 0.0)
            {
                return Err(Error::InvalidScenario(format!(
                    "models.{id}.output_tokens_per_char: {v} must be a finite number >= 0"
                )));
            }
            if let Some(levels) = &m.effort_levels {
                for l in levels {
                    if !crate::models::ALL_EFFORTS.contains(&l.as_str()) {
                        return Err(Error::InvalidScenario(format!(
                            "models.{id}.effort_levels: unknown level {l:?}"
                        )));
                    }
                }
            }
        }
        Ok(())
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

/// Relative, no `..`, no root: safe to join under the workspace.
fn is_plain_relative(path: &str) -> bool {
    let p = Path::new(path);
    !path.is_empty()
        && p.components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    const EXAMPLE: &str = r#"
seed = 7
workspace = "workspace"

[plan]
notes = "Rename UserId to AccountId."
[[plan.subtasks]]
path = "app/models.py"
instruction = "Rename the UserId class to AccountId."
complexity = "mechanical"
error_cost = "low"
[[plan.subtasks]]
path = "../escape.py"
instruction = "hostile"

[[files]]
path = "app/models.py"
edits = [ { old = "class UserId", new = "class AccountId" } ]
reads = ["app/types.py"]
script = { "claude-haiku-4-5" = ["syntax"], "claude-sonnet-4-6" = ["partial", "ok"] }

[reviewer]
force_revise = { "app/legacy.py" = 1 }

[models."claude-haiku-4-5"]
skill = { mechanical = 0.95, generative = 0.6, reasoning = 0.2 }
latency_ms = { base = 40, jitter = 20 }
output_tokens_per_char = 0.25
min_cacheable_tokens = 4096
thinking = "budget"
supports_effort = false

[[faults]]
kind = "rate_limit"
match = { role = "worker", model = "claude-haiku-4-5", path = "app/models.py" }
times = 2
after = 0
retry_after_secs = 1
delay_ms = 0

[limits]
requests_per_minute = 0

[batch]
processing_delay_ms = 200
"#;

    #[test]
    fn the_documented_example_parses_and_preloads_originals() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("workspace/app")).unwrap();
        std::fs::write(
            dir.path().join("workspace/app/models.py"),
            "class UserId:\n    pass\n",
        )
        .unwrap();
        let s = Scenario::from_toml_str(EXAMPLE, dir.path()).unwrap();
        assert_eq!(s.seed, 7);
        assert_eq!(
            s.originals().get("app/models.py").unwrap(),
            "class UserId:\n    pass\n"
        );
        assert!(!s.originals().contains_key("../escape.py"));
        assert_eq!(
            s.file("app/models.py").unwrap().script["claude-sonnet-4-6"],
            vec![OutcomeKind::Partial, OutcomeKind::Ok]
        );
        assert_eq!(
            s.expected_content("app/models.py", "class UserId:\n    pass\n")
                .unwrap(),
            "class AccountId:\n    pass\n"
        );
        assert_eq!(s.faults[0].times, 2);
        assert_eq!(s.batch.processing_delay_ms, 200);
    }

    #[test]
    fn edits_that_do_not_apply_to_the_workspace_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("ws")).unwrap();
        std::fs::write(dir.path().join("ws/a.py"), "x = 1\nx = 1\n").unwrap();
        let toml = "workspace = \"ws\"\n[[files]]\npath = \"a.py\"\nedits = [{ old = \"x = 1\", new = \"y\" }]\n";
        let err = Scenario::from_toml_str(toml, dir.path()).unwrap_err();
        assert!(err.to_string().contains("occurs 2 times"), "{err}");
    }

    #[test]
    fn unknown_fields_and_bad_values_are_errors() {
        assert!(Scenario::from_toml_str("sede = 1", Path::new(".")).is_err());
        let bad_skill = "[models.\"m\"]\nskill = { mechanical = 1.5 }\n";
        assert!(Scenario::from_toml_str(bad_skill, Path::new(".")).is_err());
        let both = "[[files]]\npath = \"a\"\ncontent = \"x\"\nedits = [{old=\"a\",new=\"b\"}]\n";
        assert!(Scenario::from_toml_str(both, Path::new(".")).is_err());
    }
}
