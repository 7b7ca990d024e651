//! The workspace cases a test runs on ([`FileCase`]: an original, its
//! correct edits, how the plan classifies it and what the models do on it)
//! and the scenario over them ([`ScenarioSpec`]), built with the simulator's
//! typed scenario builder and written as the file `cadre sim serve` reads.

use std::collections::BTreeMap;

use cadre_sim::{
    ChatQuirk, FaultSpec, FileSpec, ModelOverride, OutcomeKind, Scenario, SearchSpec, SelectorSpec,
    SkillSpec, SubtaskSpec,
};

use crate::{HAIKU, OPUS, SONNET};

/// One workspace file the plan changes: its original content, the correct
/// edits, how the planner classifies it and what the models do on it.
#[derive(Clone, Debug)]
pub struct FileCase {
    /// Workspace-relative path.
    pub path: String,
    /// Content before the job.
    pub original: String,
    /// The correct change: exact search/replace pairs, each `old` unique.
    pub edits: Vec<(String, String)>,
    /// mechanical | generative | reasoning.
    pub complexity: String,
    /// low | high.
    pub error_cost: String,
    /// The subtask instruction.
    pub instruction: String,
    /// Scripted outcomes per model id.
    pub script: BTreeMap<String, Vec<OutcomeKind>>,
}

impl FileCase {
    /// A mechanical, low-cost change.
    pub fn new(path: &str, original: &str, edits: &[(&str, &str)]) -> FileCase {
        let case = FileCase {
            path: path.to_owned(),
            original: original.to_owned(),
            edits: edits
                .iter()
                .map(|(o, n)| ((*o).to_owned(), (*n).to_owned()))
                .collect(),
            complexity: "mechanical".to_owned(),
            error_cost: "low".to_owned(),
            instruction: format!("Rename UserId to AccountId in {path}."),
            script: BTreeMap::new(),
        };
        // Fail early on a badly written case rather than deep inside a run.
        let _ = case.expected();
        case
    }

    /// Sets the complexity class.
    pub fn complexity(mut self, complexity: &str) -> FileCase {
        self.complexity = complexity.to_owned();
        self
    }

    /// Sets the error cost.
    pub fn error_cost(mut self, error_cost: &str) -> FileCase {
        self.error_cost = error_cost.to_owned();
        self
    }

    /// Scripts `model`'s successive attempts on this file (outcome names as
    /// in a scenario file: `"syntax"`, `"partial"`, `"no_tool"`, ...).
    pub fn script(mut self, model: &str, outcomes: &[&str]) -> FileCase {
        let outcomes = outcomes
            .iter()
            .map(|s| s.parse().unwrap_or_else(|e| panic!("{}: {e}", self.path)))
            .collect();
        self.script.insert(model.to_owned(), outcomes);
        self
    }

    /// The content after the correct change.
    pub fn expected(&self) -> String {
        let mut text = self.original.clone();
        for (old, new) in &self.edits {
            assert_eq!(
                text.matches(old.as_str()).count(),
                1,
                "{}: edit old text {old:?} must occur exactly once",
                self.path
            );
            text = text.replacen(old.as_str(), new, 1);
        }
        text
    }
}

/// A small Python module that mentions `UserId` twice, with the two edits
/// that rename it (so a `partial` answer leaves one `UserId` behind).
pub fn rename_module(path: &str, function: &str) -> FileCase {
    let original = format!(
        "from app.models import UserId\n\n\ndef {function}(uid: UserId) -> int:\n    \"\"\"Return the numeric id.\"\"\"\n    return uid.value\n"
    );
    FileCase::new(
        path,
        &original,
        &[
            (
                "from app.models import UserId",
                "from app.models import AccountId",
            ),
            (
                &format!("def {function}(uid: UserId)"),
                &format!("def {function}(uid: AccountId)"),
            ),
        ],
    )
}

/// `app/models.py`, which defines `UserId`.
pub fn models_file() -> FileCase {
    FileCase::new(
        "app/models.py",
        "class UserId:\n    def __init__(self, value: int) -> None:\n        self.value = value\n\n    def __repr__(self) -> str:\n        return f\"UserId({self.value})\"\n",
        &[
            ("class UserId:", "class AccountId:"),
            ("return f\"UserId(", "return f\"AccountId("),
        ],
    )
}

/// Builds a scenario: the plan lists every case, then every extra subtask,
/// in order; every model has skill 1.0 so only scripted outcomes and faults
/// make an attempt fail.
#[derive(Clone, Debug)]
pub struct ScenarioSpec {
    seed: u64,
    notes: String,
    cases: Vec<FileCase>,
    /// Planned subtasks beyond the cases, each with its `[[files]]` entry if any.
    extra: Vec<(SubtaskSpec, Option<FileSpec>)>,
    force_revise: BTreeMap<String, u32>,
    force_revise_rules: BTreeMap<String, u32>,
    latency_base: u64,
    latency_jitter: u64,
    faults: Vec<FaultSpec>,
    chat_quirks: Vec<ChatQuirk>,
    reads_workspace: bool,
    requests_per_minute: u32,
    /// Plan selectors, searches and pages; `by_selector` leaves the cases
    /// out of the explicit entries (a selector names them).
    selectors: Vec<SelectorSpec>,
    searches: Vec<SearchSpec>,
    pages: u32,
    by_selector: bool,
}

impl ScenarioSpec {
    /// A scenario over `cases` with near-instant models.
    pub fn new(cases: &[FileCase]) -> ScenarioSpec {
        ScenarioSpec {
            seed: 7,
            notes: "Rename the class UserId to AccountId; change nothing else.".to_owned(),
            cases: cases.to_vec(),
            extra: Vec::new(),
            force_revise: BTreeMap::new(),
            force_revise_rules: BTreeMap::new(),
            latency_base: 2,
            latency_jitter: 3,
            faults: Vec::new(),
            chat_quirks: Vec::new(),
            reads_workspace: false,
            requests_per_minute: 0,
            selectors: Vec::new(),
            searches: Vec::new(),
            pages: 0,
            by_selector: false,
        }
    }

    /// Adds a quirk of the simulator's OpenAI-compatible endpoint.
    pub fn chat_quirk(mut self, quirk: ChatQuirk) -> ScenarioSpec {
        self.chat_quirks.push(quirk);
        self
    }

    /// Replaces the plan notes (long notes make the shared prefix cacheable).
    pub fn notes(mut self, notes: &str) -> ScenarioSpec {
        self.notes = notes.to_owned();
        self
    }

    /// Adds a planned subtask for `path` (sent verbatim: hostile paths welcome)
    /// whose "correct" change is to write `content`.
    pub fn extra_subtask(mut self, path: &str, content: &str) -> ScenarioSpec {
        self.extra.push((
            SubtaskSpec::new(path, "Rename UserId to AccountId here too."),
            Some(FileSpec::with_content(path, content)),
        ));
        self
    }

    /// Adds a planned subtask for `path` with no change of its own (a
    /// duplicate of a planned path, say).
    pub fn planned(mut self, path: &str, instruction: &str) -> ScenarioSpec {
        self.extra.push((SubtaskSpec::new(path, instruction), None));
        self
    }

    /// Adds a planned entry exactly as given (any action, a rule), with the
    /// `[[files]]` entry that says what a model should answer for it, if any.
    pub fn entry(mut self, subtask: SubtaskSpec, file: Option<FileSpec>) -> ScenarioSpec {
        self.extra.push((subtask, file));
        self
    }

    /// The simulator reads the original files from the fixture's workspace
    /// (as a scenario with `workspace` does), so its reviewer can judge files
    /// no worker prompt showed it (a codemod's rewrite, say).
    pub fn sim_reads_workspace(mut self) -> ScenarioSpec {
        self.reads_workspace = true;
        self
    }

    /// Whether the simulator reads the fixture's workspace.
    pub fn reads_workspace(&self) -> bool {
        self.reads_workspace
    }

    /// The first `n` reviews of `path` say "revise".
    pub fn force_revise(mut self, path: &str, n: u32) -> ScenarioSpec {
        self.force_revise.insert(path.to_owned(), n);
        self
    }

    /// The first `n` reviews of the codemod rule `id` say "revise".
    pub fn force_revise_rule(mut self, id: &str, n: u32) -> ScenarioSpec {
        self.force_revise_rules.insert(id.to_owned(), n);
        self
    }

    /// Model latency: uniform `base..=base+jitter` milliseconds.
    pub fn latency(mut self, base: u64, jitter: u64) -> ScenarioSpec {
        self.latency_base = base;
        self.latency_jitter = jitter;
        self
    }

    /// The simulator's rate limit (a token bucket of this many requests,
    /// refilled at this many per minute); 0, the default, is none.
    pub fn requests_per_minute(mut self, requests_per_minute: u32) -> ScenarioSpec {
        self.requests_per_minute = requests_per_minute;
        self
    }

    /// Adds a fault.
    pub fn fault(mut self, fault: FaultSpec) -> ScenarioSpec {
        self.faults.push(fault);
        self
    }

    /// Adds a plan selector; the cases are no longer listed as explicit
    /// entries (the selectors name the files).
    pub fn selector(mut self, selector: SelectorSpec) -> ScenarioSpec {
        self.selectors.push(selector);
        self.by_selector = true;
        self
    }

    /// Adds a search the planner runs before it submits.
    pub fn search(mut self, search: SearchSpec) -> ScenarioSpec {
        self.searches.push(search);
        self
    }

    /// Splits the explicit entries into `pages` planner answers.
    pub fn plan_pages(mut self, pages: u32) -> ScenarioSpec {
        self.pages = pages;
        self
    }

    /// The cases the workspace is built from.
    pub fn cases(&self) -> &[FileCase] {
        &self.cases
    }

    /// The scenario (checked as the simulator checks a scenario file).
    pub fn build(&self) -> Scenario {
        let listed = if self.by_selector {
            &[][..]
        } else {
            &self.cases[..]
        };
        let case_subtasks = listed.iter().map(|case| {
            SubtaskSpec::new(&case.path, &case.instruction)
                .complexity(&case.complexity)
                .error_cost(&case.error_cost)
        });
        let case_files = self.cases.iter().map(|case| {
            let mut file = FileSpec::with_edits(&case.path, case.edits.iter().cloned());
            for (model, outcomes) in &case.script {
                file = file.script(model, outcomes.iter().copied());
            }
            file
        });
        let mut builder = Scenario::builder()
            .seed(self.seed)
            .notes(&self.notes)
            .subtasks(case_subtasks)
            .subtasks(self.extra.iter().map(|(subtask, _)| subtask.clone()))
            .files(case_files)
            .files(self.extra.iter().filter_map(|(_, file)| file.clone()));
        for (path, n) in &self.force_revise {
            builder = builder.force_revise(path, *n);
        }
        for (id, n) in &self.force_revise_rules {
            builder = builder.force_revise_rule(id, *n);
        }
        for selector in &self.selectors {
            builder = builder.selector(selector.clone());
        }
        for search in &self.searches {
            builder = builder.search(search.clone());
        }
        if self.pages > 0 {
            builder = builder.plan_pages(self.pages);
        }
        for model in [HAIKU, SONNET, OPUS] {
            builder = builder.model(
                model,
                ModelOverride::default()
                    .skill(SkillSpec::uniform(1.0))
                    .latency(self.latency_base, self.latency_jitter),
            );
        }
        for fault in &self.faults {
            builder = builder.fault(fault.clone());
        }
        for quirk in &self.chat_quirks {
            builder = builder.chat_quirk(*quirk);
        }
        builder
            .requests_per_minute(self.requests_per_minute)
            .build()
            .unwrap_or_else(|e| panic!("the test's scenario: {e}"))
    }

    /// The scenario file.
    pub fn to_toml(&self) -> String {
        self.build()
            .to_toml_string()
            .unwrap_or_else(|e| panic!("writing the test's scenario: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn cases_compute_their_expected_content_and_scenarios_quote_safely() {
        let case = rename_module("app/a.py", "f").script(HAIKU, &["syntax"]);
        assert_eq!(
            case.expected(),
            case.original.replace("UserId", "AccountId")
        );
        let spec = ScenarioSpec::new(&[case]).extra_subtask("../x \"quoted\"\n", "a\tb");
        let toml = spec.to_toml();
        let back = Scenario::from_toml_str(&toml, Path::new(".")).unwrap();
        assert_eq!(back, spec.build(), "{toml}");
        let plan = back.plan.unwrap_or_default();
        assert_eq!(plan.subtasks[1].path, "../x \"quoted\"\n", "{toml}");
        assert_eq!(back.files[0].script[HAIKU], [OutcomeKind::Syntax], "{toml}");
        assert_eq!(back.files[1].content.as_deref(), Some("a\tb"), "{toml}");
    }
}
