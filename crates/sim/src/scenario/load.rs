//! Reading a scenario (a file or TOML text), preloading the originals from
//! its `workspace`, checking it for consistency, and writing it back as TOML.

use std::collections::BTreeSet;
use std::path::{Component, Path};

use super::Scenario;
use crate::{Error, Result};

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
        let scenario: Scenario = toml::from_str(text).map_err(|source| Error::ScenarioParse {
            origin: origin.to_string(),
            source: Box::new(source),
        })?;
        scenario.resolve(base_dir)
    }

    /// The scenario as a TOML file that [`Scenario::from_toml_str`] reads back
    /// equal. Originals given in code ([`Scenario::with_original`]) are not
    /// part of the file; a file names a `workspace` to preload them.
    pub fn to_toml_string(&self) -> Result<String> {
        toml::to_string(self).map_err(Error::ScenarioSerialize)
    }

    /// Preloads the originals from `workspace` (relative to `base_dir`) and
    /// checks the scenario: the last step of every way to make one.
    pub(super) fn resolve(mut self, base_dir: &Path) -> Result<Scenario> {
        if let Some(ws) = self.workspace.clone() {
            let dir = base_dir.join(ws);
            self.load_originals(&dir)?;
        }
        self.validate()?;
        Ok(self)
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
            for (level, spec) in &m.effort {
                if !crate::models::ALL_EFFORTS.contains(&level.as_str()) {
                    return Err(Error::InvalidScenario(format!(
                        "models.{id}.effort: unknown level {level:?}"
                    )));
                }
                if let Some(skill) = &spec.skill
                    && let Some(v) = [skill.mechanical, skill.generative, skill.reasoning]
                        .into_iter()
                        .flatten()
                        .find(|v| !(0.0..=1.0).contains(v))
                {
                    return Err(Error::InvalidScenario(format!(
                        "models.{id}.effort.{level}.skill: {v} is outside 0..=1"
                    )));
                }
                if let Some(v) = spec.output_tokens_scale
                    && !(v.is_finite() && v > 0.0)
                {
                    return Err(Error::InvalidScenario(format!(
                        "models.{id}.effort.{level}.output_tokens_scale: {v} must be a finite number > 0"
                    )));
                }
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
    use crate::scenario::OutcomeKind;
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
