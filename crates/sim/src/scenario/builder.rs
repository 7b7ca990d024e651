//! Building a scenario in code: [`ScenarioBuilder`] for the whole, and
//! builder methods on its parts ([`SubtaskSpec`], [`FileSpec`],
//! [`EditSpec`], [`ModelOverride`], [`SkillSpec`], [`FaultSpec`]).
//!
//! Tests and benchmarks build scenarios here instead of formatting TOML, so
//! a path or an edit with quotes, backslashes or newlines cannot break the
//! file; [`ScenarioBuilder::build`] checks the result exactly as the loaders
//! check a file, and [`Scenario::to_toml_string`] writes it for a
//! `cadre sim serve` process.
//!
//! ```
//! use cadre_sim::{FaultKind, FaultSpec, FileSpec, ModelOverride, OutcomeKind, Role, Scenario, SkillSpec, SubtaskSpec};
//!
//! let scenario = Scenario::builder()
//!     .seed(7)
//!     .notes("Rename UserId to AccountId.")
//!     .subtask(SubtaskSpec::new("app/a.py", "Rename it here.").complexity("generative"))
//!     .file(
//!         FileSpec::with_edits("app/a.py", [("class UserId", "class AccountId")])
//!             .script("claude-haiku-4-5", [OutcomeKind::Syntax]),
//!     )
//!     .model(
//!         "claude-haiku-4-5",
//!         ModelOverride::default().skill(SkillSpec::uniform(1.0)).latency(0, 2),
//!     )
//!     .fault(FaultSpec::new(FaultKind::RateLimit).role(Role::Worker).times(2))
//!     .build()
//!     .unwrap();
//! let text = scenario.to_toml_string().unwrap();
//! assert_eq!(Scenario::from_toml_str(&text, std::path::Path::new(".")).unwrap(), scenario);
//! ```

use std::path::{Path, PathBuf};

use super::{
    EditSpec, EffortSpec, FileSpec, LatencySpec, ModelOverride, OutcomeKind, PlanSpec, Scenario,
    SearchSpec, SelectorSpec, SkillSpec, SubtaskSpec,
};
use crate::Result;
use crate::Role;
use crate::chat::ChatQuirk;
use crate::faults::{FaultKind, FaultMatch, FaultSpec};

/// Builds a [`Scenario`] step by step; start with [`Scenario::builder`].
///
/// The plan exists once [`ScenarioBuilder::notes`] or
/// [`ScenarioBuilder::subtask`] is called; without one the planner lists one
/// mechanical subtask per file, as with a file that has no `[plan]`.
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct ScenarioBuilder {
    scenario: Scenario,
}

impl Scenario {
    /// An empty scenario to build on (seed 0, no plan, no files, built-in models).
    pub fn builder() -> ScenarioBuilder {
        ScenarioBuilder::default()
    }
}

impl ScenarioBuilder {
    /// Adds a quirk of the OpenAI-compatible endpoint.
    pub fn chat_quirk(mut self, quirk: ChatQuirk) -> Self {
        self.scenario.chat.quirks.push(quirk);
        self
    }

    /// The OpenAI-compatible endpoint's context size (`n_ctx`).
    pub fn chat_context_window(mut self, tokens: u64) -> Self {
        self.scenario.chat.context_window = tokens;
        self
    }

    /// The seed of every random draw.
    pub fn seed(mut self, seed: u64) -> Self {
        self.scenario.seed = seed;
        self
    }

    /// The directory holding the original files; a relative one is resolved
    /// against the directory given to [`ScenarioBuilder::build_in`].
    pub fn workspace(mut self, dir: impl Into<PathBuf>) -> Self {
        self.scenario.workspace = Some(dir.into());
        self
    }

    /// The plan notes shared with every worker.
    pub fn notes(mut self, notes: impl Into<String>) -> Self {
        self.plan().notes = notes.into();
        self
    }

    /// Appends a subtask to the plan (paths are sent verbatim).
    pub fn subtask(mut self, subtask: SubtaskSpec) -> Self {
        self.plan().subtasks.push(subtask);
        self
    }

    /// Appends subtasks to the plan, in order.
    pub fn subtasks(mut self, subtasks: impl IntoIterator<Item = SubtaskSpec>) -> Self {
        self.plan().subtasks.extend(subtasks);
        self
    }

    /// Adds the correct change of one file.
    pub fn file(mut self, file: FileSpec) -> Self {
        self.scenario.files.push(file);
        self
    }

    /// Adds the correct changes of several files, in order.
    pub fn files(mut self, files: impl IntoIterator<Item = FileSpec>) -> Self {
        self.scenario.files.extend(files);
        self
    }

    /// The first `reviews` reviews of `path` say "revise".
    pub fn force_revise(mut self, path: impl Into<String>, reviews: u32) -> Self {
        self.scenario
            .reviewer
            .force_revise
            .insert(path.into(), reviews);
        self
    }

    /// The first `reviews` reviews of the codemod rule `id` say "revise".
    pub fn force_revise_rule(mut self, id: impl Into<String>, reviews: u32) -> Self {
        self.scenario
            .reviewer
            .force_revise_rules
            .insert(id.into(), reviews);
        self
    }

    /// Overrides a built-in model (or adds a model) by id.
    pub fn model(mut self, id: impl Into<String>, model: ModelOverride) -> Self {
        self.scenario.models.insert(id.into(), model);
        self
    }

    /// Adds a fault.
    pub fn fault(mut self, fault: FaultSpec) -> Self {
        self.scenario.faults.push(fault);
        self
    }

    /// The `POST /v1/messages` rate limit (0 = unlimited).
    pub fn requests_per_minute(mut self, requests_per_minute: u32) -> Self {
        self.scenario.limits.requests_per_minute = requests_per_minute;
        self
    }

    /// How long a Message Batch takes to end.
    pub fn batch_processing_delay_ms(mut self, ms: u64) -> Self {
        self.scenario.batch.processing_delay_ms = ms;
        self
    }

    /// The known original content of `path` (see [`Scenario::with_original`]).
    pub fn original(mut self, path: impl Into<String>, content: impl Into<String>) -> Self {
        self.scenario = self.scenario.with_original(path, content);
        self
    }

    /// The scenario, checked like a scenario file; a relative `workspace`
    /// resolves against the current directory (as
    /// `Scenario::from_toml_str(text, Path::new("."))` does).
    pub fn build(self) -> Result<Scenario> {
        self.build_in(Path::new("."))
    }

    /// The scenario, with a relative `workspace` resolved against `base_dir`
    /// (as [`Scenario::from_toml_str`] does); its originals are preloaded and
    /// the whole is checked like a scenario file.
    pub fn build_in(self, base_dir: &Path) -> Result<Scenario> {
        self.scenario.resolve(base_dir)
    }

    /// Adds a selector to the plan (sent on its first page).
    pub fn selector(mut self, selector: SelectorSpec) -> Self {
        self.plan().selectors.push(selector);
        self
    }

    /// Splits the plan's explicit subtasks into `pages` answers.
    pub fn plan_pages(mut self, pages: u32) -> Self {
        self.plan().pages = pages;
        self
    }

    /// Adds a search the planner runs before it submits the plan.
    pub fn search(mut self, search: SearchSpec) -> Self {
        self.plan().searches.push(search);
        self
    }

    fn plan(&mut self) -> &mut PlanSpec {
        self.scenario.plan.get_or_insert_with(PlanSpec::default)
    }
}

impl SubtaskSpec {
    /// A mechanical, low-cost subtask.
    pub fn new(path: impl Into<String>, instruction: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            instruction: instruction.into(),
            complexity: super::default_complexity(),
            error_cost: super::default_error_cost(),
            action: None,
            to: None,
            rule: None,
        }
    }

    /// `create | delete | move` (the default, `edit`, is not sent).
    pub fn action(mut self, action: impl Into<String>) -> Self {
        self.action = Some(action.into());
        self
    }

    /// A move's new path.
    pub fn to(mut self, to: impl Into<String>) -> Self {
        self.to = Some(to.into());
        self
    }

    /// An ast-grep YAML rule attached to the entry.
    pub fn rule(mut self, rule: impl Into<String>) -> Self {
        self.rule = Some(rule.into());
        self
    }

    /// `mechanical | generative | reasoning`.
    pub fn complexity(mut self, complexity: impl Into<String>) -> Self {
        self.complexity = complexity.into();
        self
    }

    /// `low | high`.
    pub fn error_cost(mut self, error_cost: impl Into<String>) -> Self {
        self.error_cost = error_cost.into();
        self
    }
}

impl FileSpec {
    /// A file whose correct change is `edits` (exact `(old, new)` pairs).
    pub fn with_edits<O, N>(
        path: impl Into<String>,
        edits: impl IntoIterator<Item = (O, N)>,
    ) -> Self
    where
        O: Into<String>,
        N: Into<String>,
    {
        Self {
            path: path.into(),
            edits: Some(
                edits
                    .into_iter()
                    .map(|(o, n)| EditSpec::new(o, n))
                    .collect(),
            ),
            ..Self::default()
        }
    }

    /// A file whose correct change is to write `content`.
    pub fn with_content(path: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            content: Some(content.into()),
            ..Self::default()
        }
    }

    /// Adds a read-only step before the edit: a path, or `grep:PATTERN`.
    pub fn read(mut self, read: impl Into<String>) -> Self {
        self.reads.push(read.into());
        self
    }

    /// Scripts `model`'s successive attempts on this file.
    pub fn script(
        mut self,
        model: impl Into<String>,
        outcomes: impl IntoIterator<Item = OutcomeKind>,
    ) -> Self {
        self.script
            .insert(model.into(), outcomes.into_iter().collect());
        self
    }
}

impl EditSpec {
    /// Replace `old` (which must occur once) by `new`.
    pub fn new(old: impl Into<String>, new: impl Into<String>) -> Self {
        Self {
            old: old.into(),
            new: new.into(),
        }
    }
}

impl SkillSpec {
    /// The same P(correct) for every complexity class.
    pub fn uniform(p: f64) -> Self {
        Self {
            mechanical: Some(p),
            generative: Some(p),
            reasoning: Some(p),
        }
    }
}

impl ModelOverride {
    /// P(correct) per complexity class.
    pub fn skill(mut self, skill: SkillSpec) -> Self {
        self.skill = Some(skill);
        self
    }

    /// Seeded uniform latency `base..=base+jitter` milliseconds.
    pub fn latency(mut self, base_ms: u64, jitter_ms: u64) -> Self {
        self.latency_ms = Some(LatencySpec {
            base: base_ms,
            jitter: jitter_ms,
        });
        self
    }

    /// Output tokens per answer character.
    pub fn output_tokens_per_char(mut self, tokens_per_char: f64) -> Self {
        self.output_tokens_per_char = Some(tokens_per_char);
        self
    }

    /// How the model fares at `output_config.effort = level`.
    pub fn effort(mut self, level: impl Into<String>, spec: EffortSpec) -> Self {
        self.effort.insert(level.into(), spec);
        self
    }
}

impl EffortSpec {
    /// P(correct) per complexity class at this effort.
    pub fn skill(mut self, skill: SkillSpec) -> Self {
        self.skill = Some(skill);
        self
    }

    /// Output tokens relative to the model's own (0.5 = half as many).
    pub fn output_tokens_scale(mut self, scale: f64) -> Self {
        self.output_tokens_scale = Some(scale);
        self
    }
}

impl FaultSpec {
    /// A fault of `kind` hitting the first matching request (every request
    /// matches until [`FaultSpec::role`], [`FaultSpec::model`] or
    /// [`FaultSpec::path`] narrow it).
    pub fn new(kind: FaultKind) -> Self {
        Self {
            kind,
            matches: FaultMatch::default(),
            times: 1,
            after: 0,
            retry_after_secs: None,
            delay_ms: 0,
        }
    }

    /// Only requests of this role.
    pub fn role(mut self, role: Role) -> Self {
        self.matches.role = Some(role);
        self
    }

    /// Only requests for this model id (as sent).
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.matches.model = Some(model.into());
        self
    }

    /// Only requests about this subtask path (or reviewing it).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.matches.path = Some(path.into());
        self
    }

    /// How many matching requests it hits.
    pub fn times(mut self, times: u32) -> Self {
        self.times = times;
        self
    }

    /// Lets this many matching requests through first.
    pub fn after(mut self, after: u32) -> Self {
        self.after = after;
        self
    }

    /// `retry-after` seconds for rate_limit / overloaded.
    pub fn retry_after_secs(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    /// The delay of a `slow` fault.
    pub fn delay_ms(mut self, delay_ms: u64) -> Self {
        self.delay_ms = delay_ms;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn hostile() -> Scenario {
        Scenario::builder()
            .seed(3)
            .notes("Notes with \"quotes\", a \\ backslash,\na newline and ''' triple quotes.")
            .subtask(SubtaskSpec::new("../x \"quoted\"\n", "Write it.\tTabbed."))
            .subtask(SubtaskSpec::new("app/a.py", "Rename.").error_cost("high"))
            .file(FileSpec::with_content(
                "../x \"quoted\"\n",
                "a\tb\n\"\"\"\n",
            ))
            .file(
                FileSpec::with_edits("app/a.py", [("x = \"1\"", "y = '1'"), ("\\n", "\\t")])
                    .read("grep:x = \"")
                    .script("claude-haiku-4-5", [OutcomeKind::Syntax, OutcomeKind::Ok]),
            )
            .force_revise("app/a.py", 1)
            .model(
                "claude-haiku-4-5",
                ModelOverride::default()
                    .skill(SkillSpec::uniform(0.5))
                    .latency(3, 4)
                    .output_tokens_per_char(0.005),
            )
            .fault(
                FaultSpec::new(FaultKind::Slow)
                    .role(Role::Worker)
                    .model("claude-haiku-4-5")
                    .path("app/a.py")
                    .times(2)
                    .after(1)
                    .delay_ms(2500),
            )
            .fault(FaultSpec::new(FaultKind::RateLimit).retry_after_secs(1))
            .requests_per_minute(600)
            .batch_processing_delay_ms(1500)
            .build()
            .unwrap()
    }

    #[test]
    fn hostile_text_survives_a_round_trip_through_toml() {
        let scenario = hostile();
        let text = scenario.to_toml_string().unwrap();
        let back = Scenario::from_toml_str(&text, Path::new(".")).unwrap();
        assert_eq!(back, scenario, "{text}");
        assert_eq!(back.plan.unwrap().subtasks[0].path, "../x \"quoted\"\n");
        assert_eq!(back.faults[0].matches.role, Some(Role::Worker));
    }

    #[test]
    fn built_parts_equal_their_toml_defaults() {
        let toml = "[plan]\n[[plan.subtasks]]\npath = \"a.py\"\ninstruction = \"Do.\"\n\
                    [[files]]\npath = \"a.py\"\nedits = [{ old = \"x\", new = \"y\" }]\n\
                    [[faults]]\nkind = \"overloaded\"\n";
        let parsed = Scenario::from_toml_str(toml, Path::new(".")).unwrap();
        let built = Scenario::builder()
            .subtask(SubtaskSpec::new("a.py", "Do."))
            .file(FileSpec::with_edits("a.py", [("x", "y")]))
            .fault(FaultSpec::new(FaultKind::Overloaded))
            .build()
            .unwrap();
        assert_eq!(built, parsed);
    }

    #[test]
    fn build_checks_like_the_loaders() {
        let both = FileSpec {
            content: Some("x".into()),
            ..FileSpec::with_edits("a.py", [("a", "b")])
        };
        assert!(Scenario::builder().file(both).build().is_err());
        let bad_complexity = SubtaskSpec::new("a.py", "Do.").complexity("hard");
        assert!(Scenario::builder().subtask(bad_complexity).build().is_err());
        let bad_skill = ModelOverride::default().skill(SkillSpec::uniform(1.5));
        assert!(Scenario::builder().model("m", bad_skill).build().is_err());
        let not_unique = Scenario::builder()
            .original("a.py", "x = 1\nx = 1\n")
            .file(FileSpec::with_edits("a.py", [("x = 1", "y")]))
            .build();
        assert!(not_unique.is_err());
    }

    #[test]
    fn build_in_preloads_the_workspace() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("ws")).unwrap();
        std::fs::write(dir.path().join("ws/a.py"), "class UserId:\n").unwrap();
        let scenario = Scenario::builder()
            .workspace("ws")
            .file(FileSpec::with_edits("a.py", [("UserId", "AccountId")]))
            .build_in(dir.path())
            .unwrap();
        assert_eq!(scenario.originals()["a.py"], "class UserId:\n");
    }

    #[test]
    fn outcome_names_parse() {
        assert_eq!("no_tool".parse::<OutcomeKind>(), Ok(OutcomeKind::NoTool));
        assert!("nope".parse::<OutcomeKind>().is_err());
    }
}
