//! Migration: a workspace-wide rename over a generated workspace of Python,
//! TypeScript and Rust files (10,000 in the full run), planned by selectors
//! with ast-grep rules at the simulator's built-in output-token rate (no
//! terse planner). 30% of the files use the renamed identifier; about one in
//! twelve of those uses it only inside a string, which no rule on
//! identifiers can rewrite, so those files escalate to a model. The same job
//! runs again with the rules left out, every file going to a model, for the
//! cost comparison.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use cadre_sim::{FileSpec, ModelOverride, Scenario, SearchSpec, SelectorSpec, SkillSpec};
use cadre_types::JobReport;

use super::{BenchResult, Figure, Sizes, ms};
use crate::measure::peak_rss_kib;
use crate::rig::{self, MODELS, SimHost, check_complete};

/// The three languages of the generated workspace, with the rule each gets.
const LANGUAGES: [(&str, &str, &str); 3] = [
    ("python", "py", "svc"),
    ("typescript", "ts", "web"),
    ("rust", "rs", "core"),
];

/// An ast-grep rule renaming the identifier (as a value or a type) in one
/// language. Python's grammar has no `type_identifier` kind (a rule naming
/// it does not load), so its rule matches identifiers only.
fn rule(language: &str) -> String {
    let kinds = if language == "python" {
        "  kind: identifier\n"
    } else {
        "  any:\n    - kind: identifier\n    - kind: type_identifier\n"
    };
    format!(
        "id: user-id-to-account-id-{language}\nlanguage: {language}\nrule:\n  regex: ^UserId$\n{kinds}fix: AccountId\n"
    )
}

/// How file `i` uses the identifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Use {
    None,
    /// As an identifier: a rule rewrites it.
    Code,
    /// Only inside a string: no rule on identifiers can.
    StringOnly,
}

fn use_of(i: usize) -> Use {
    if (i / 10) % 10 >= 3 {
        Use::None
    } else if (i / 100).is_multiple_of(12) {
        Use::StringOnly
    } else {
        Use::Code
    }
}

/// Language index of file `i`: 40% Python, 30% TypeScript, 30% Rust.
fn language_of(i: usize) -> usize {
    match i % 10 {
        0..=3 => 0,
        4..=6 => 1,
        _ => 2,
    }
}

fn path_of(i: usize) -> String {
    let (_, ext, dir) = LANGUAGES[language_of(i)];
    format!("{dir}{:03}/mod_{i:05}.{ext}", i / 100)
}

fn content_of(i: usize) -> String {
    match (language_of(i), use_of(i)) {
        (0, Use::Code) => format!(
            "from app.models import UserId\n\n\ndef handler_{i}(uid: UserId) -> int:\n    return uid.value + {i}\n"
        ),
        (0, Use::StringOnly) => format!(
            "import app.models as models\n\n\ndef handler_{i}(name: str = \"UserId\") -> object:\n    return getattr(models, name)\n"
        ),
        (0, Use::None) => format!("def handler_{i}(x: int) -> int:\n    return x + {i}\n"),
        (1, Use::Code) => format!(
            "import {{ UserId }} from \"./models\";\n\nexport function handler_{i}(uid: UserId): number {{\n  return uid.value + {i};\n}}\n"
        ),
        (1, Use::StringOnly) => format!(
            "import * as models from \"./models\";\n\nexport function handler_{i}(): unknown {{\n  return (models as Record<string, unknown>)[\"UserId\"];\n}}\n"
        ),
        (1, Use::None) => {
            format!("export function handler_{i}(x: number): number {{\n  return x + {i};\n}}\n")
        }
        (_, Use::Code) => format!(
            "use crate::models::UserId;\n\npub fn handler_{i}(uid: UserId) -> u64 {{\n    uid.value + {i}\n}}\n"
        ),
        (_, Use::StringOnly) => {
            format!("pub fn handler_{i}() -> &'static str {{\n    \"UserId\"\n}}\n")
        }
        (_, Use::None) => format!("pub fn handler_{i}(x: u64) -> u64 {{\n    x + {i}\n}}\n"),
    }
}

fn write_workspace(root: &Path, files: usize) -> Result<()> {
    for i in 0..files {
        let path = root.join(path_of(i));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&path, content_of(i))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The scenario: one selector per language (with its rule when `rules`),
/// each file's correct content, every model at skill 1.0 and the built-in
/// output-token rate.
fn scenario(files: usize, rules: bool) -> Result<Scenario> {
    // The planner counts the files before it writes its selectors.
    let mut builder = Scenario::builder()
        .seed(11)
        .notes("Rename the type UserId to AccountId everywhere, strings that name it included.")
        .search(SearchSpec {
            literal: Some("UserId".to_owned()),
            ..SearchSpec::default()
        });
    for (language, ext, _) in LANGUAGES {
        builder = builder.selector(SelectorSpec {
            id: format!("rename-{ext}"),
            paths: vec![format!("**/*.{ext}")],
            literal: Some("UserId".to_owned()),
            instruction: "Rename UserId to AccountId.".to_owned(),
            complexity: "mechanical".to_owned(),
            error_cost: "low".to_owned(),
            rule: rules.then(|| rule(language)),
            ..SelectorSpec::default()
        });
    }
    builder =
        builder.files((0..files).filter(|i| use_of(*i) != Use::None).map(|i| {
            FileSpec::with_content(path_of(i), content_of(i).replace("UserId", "AccountId"))
        }));
    // The reviewer judges rewrites no worker prompt showed it: it knows the originals.
    for i in (0..files).filter(|i| use_of(*i) != Use::None) {
        builder = builder.original(path_of(i), content_of(i));
    }
    for model in MODELS {
        builder = builder.model(
            model,
            ModelOverride::default()
                .skill(SkillSpec::uniform(1.0))
                .latency(0, 0),
        );
    }
    builder
        .build()
        .map_err(|e| anyhow!("the migration scenario: {e}"))
}

/// One run's numbers.
#[derive(Debug)]
struct MigrationRun {
    report: JobReport,
    wall: Duration,
    planner_output_tokens: u64,
    /// Reviewer calls, their input tokens (cached or not) and output tokens.
    reviewer: (u64, u64, u64),
    peak_rss_kib: u64,
}

fn run_once(rt: &tokio::runtime::Runtime, files: usize, rules: bool) -> Result<MigrationRun> {
    let dir = tempfile::Builder::new()
        .prefix("cadre-bench-migration-")
        .tempdir()
        .context("creating a temp dir")?;
    write_workspace(&dir.path().join("ws"), files)?;
    let sim = SimHost::start(scenario(files, rules)?)?;
    let users = (0..files).filter(|i| use_of(*i) != Use::None).count();
    let run = rig::run_on_workers(
        rt,
        dir.path().to_path_buf(),
        rig::config(&[])?,
        sim.base_url().to_owned(),
        users,
    );
    let log = sim.requests();
    sim.stop();
    let run = run?;
    check_complete(&run.report, users)?;
    let planner_output_tokens = log
        .iter()
        .filter(|r| r.role == Some(cadre_sim::Role::Planner) && r.status == 200)
        .map(|r| r.output_tokens)
        .sum();
    let reviewer = log
        .iter()
        .filter(|r| r.role == Some(cadre_sim::Role::Reviewer) && r.status == 200)
        .fold((0, 0, 0), |(calls, input, output), r| {
            (
                calls + 1,
                input + r.input_tokens + r.cache_read_input_tokens + r.cache_creation_input_tokens,
                output + r.output_tokens,
            )
        });
    Ok(MigrationRun {
        peak_rss_kib: peak_rss_kib().unwrap_or(0),
        report: run.report,
        wall: run.wall,
        planner_output_tokens,
        reviewer,
    })
}

/// The migration benchmark (`--only migration`).
pub fn migration(rt: &tokio::runtime::Runtime, sizes: &Sizes) -> Result<BenchResult> {
    let files = sizes.scale_files.iter().copied().max().unwrap_or(100);
    eprintln!("migration: {files} files, selectors with rules");
    let with = run_once(rt, files, true)?;
    eprintln!("migration: {files} files, selectors without rules");
    let without = run_once(rt, files, false)?;
    let setting = format!("{files} files");
    let subtasks = with.report.subtasks.len();
    let at_codemod = with
        .report
        .subtasks
        .iter()
        .filter(|s| s.final_tier == "codemod")
        .count();
    let share = if subtasks == 0 {
        0.0
    } else {
        at_codemod as f64 / subtasks as f64 * 100.0
    };
    let worker = |r: &JobReport| r.cost.by_role.get("worker").copied().unwrap_or(0.0);
    let reviewer = |r: &JobReport| r.cost.by_role.get("reviewer").copied().unwrap_or(0.0);
    let ratio = if without.report.cost.total_usd > 0.0 {
        with.report.cost.total_usd / without.report.cost.total_usd
    } else {
        0.0
    };
    let worker_ratio = if worker(&without.report) > 0.0 {
        worker(&with.report) / worker(&without.report)
    } else {
        0.0
    };
    let figures = vec![
        Figure::new(
            &setting,
            "planner output tokens",
            with.planner_output_tokens as f64,
            "tokens",
        )
        .below(2000.0),
        Figure::new(&setting, "subtasks", subtasks as f64, "count"),
        Figure::new(&setting, "accepted at codemod", share, "%").at_least(90.0),
        Figure::new(
            &setting,
            "model cost with rules",
            with.report.cost.total_usd,
            "USD",
        ),
        Figure::new(
            &setting,
            "model cost without rules",
            without.report.cost.total_usd,
            "USD",
        ),
        Figure::new(&setting, "model cost ratio (rules / none)", ratio, "ratio").below(0.1),
        Figure::new(
            &setting,
            "worker cost ratio (rules / none)",
            worker_ratio,
            "ratio",
        ),
        Figure::new(
            &setting,
            "reviewer cost with rules",
            reviewer(&with.report),
            "USD",
        ),
        Figure::new(
            &setting,
            "reviewer cost without rules",
            reviewer(&without.report),
            "USD",
        ),
        Figure::new(
            &setting,
            "reviewer calls with rules",
            with.reviewer.0 as f64,
            "calls",
        ),
        Figure::new(
            &setting,
            "reviewer calls without rules",
            without.reviewer.0 as f64,
            "calls",
        ),
        Figure::new(
            &setting,
            "reviewer input tokens with rules",
            with.reviewer.1 as f64,
            "tokens",
        ),
        Figure::new(
            &setting,
            "reviewer input tokens without rules",
            without.reviewer.1 as f64,
            "tokens",
        ),
        Figure::new(
            &setting,
            "reviewer output tokens with rules",
            with.reviewer.2 as f64,
            "tokens",
        ),
        Figure::new(
            &setting,
            "reviewer output tokens without rules",
            without.reviewer.2 as f64,
            "tokens",
        ),
        Figure::new(&setting, "job wall time with rules", ms(with.wall), "ms"),
        Figure::new(
            &setting,
            "job wall time without rules",
            ms(without.wall),
            "ms",
        ),
        Figure::new(
            &setting,
            "peak RSS after the rules run (engine + in-process simulator)",
            with.peak_rss_kib as f64 / 1024.0,
            "MiB",
        )
        .below(300.0),
    ];
    let mut notes = Vec::new();
    for f in figures.iter().filter(|f| f.met == Some(false)) {
        notes.push(format!(
            "{} = {} {} misses its target {}",
            f.metric,
            super::trim_number(f.value),
            f.unit,
            f.target.as_deref().unwrap_or("")
        ));
    }
    Ok(BenchResult {
        name: "migration".to_owned(),
        title: "Workspace-wide rename by selectors: codemod tier first, models for the rest"
            .to_owned(),
        figures,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workspace_mixes_languages_and_uses() {
        let uses: Vec<Use> = (0..10_000).map(use_of).collect();
        let code = uses.iter().filter(|u| **u == Use::Code).count();
        let strings = uses.iter().filter(|u| **u == Use::StringOnly).count();
        assert_eq!(code + strings, 3_000);
        assert!((200..=400).contains(&strings), "{strings}");
        assert_eq!(path_of(4), "web000/mod_00004.ts");
        assert!(content_of(0).contains("UserId"));
        assert!(!content_of(30).contains("UserId"));
    }
}
