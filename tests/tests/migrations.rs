//! Workspace-wide migrations end to end (issue 11): subtasks that create,
//! delete and move files through diff, apply and `--branch`; the codemod
//! tier's ast-grep rules rewriting files with no worker call, and escalating
//! a file whose rewrite breaks its syntax. The real `cadre` binary against
//! `cadre sim serve`.

use cadre_e2e::{
    FileCase, FileSpec, Fixture, ScenarioSpec, SimRole, SubtaskSpec, git, models_file, read_file,
    rename_module, snapshot, subtask,
};
use cadre_types::{JobStatus, SubtaskStatus};
use pretty_assertions::assert_eq;

const NEW_MODULE: &str = "from app.models import AccountId\n\n\ndef make(value: int) -> AccountId:\n    return AccountId(value)\n";
const OLD_SHIM: &str = "# Deprecated alias module.\nfrom app.models import UserId as Uid\n";
const HELPERS: &str = "def clamp(x: int) -> int:\n    return max(0, x)\n";

/// A plan that edits one file, creates one, deletes one and moves one.
fn four_actions() -> (ScenarioSpec, Vec<(&'static str, &'static [u8])>) {
    let spec = ScenarioSpec::new(&[models_file()])
        .entry(
            SubtaskSpec::new("app/factory.py", "Create a factory for AccountId.").action("create"),
            Some(FileSpec::with_content("app/factory.py", NEW_MODULE)),
        )
        .entry(
            SubtaskSpec::new("app/compat.py", "Remove the deprecated alias module.")
                .action("delete"),
            None,
        )
        .entry(
            SubtaskSpec::new("lib/helpers.py", "Move the helpers into the app package.")
                .action("move")
                .to("app/helpers.py"),
            None,
        );
    let extra: Vec<(&str, &[u8])> = vec![
        ("app/compat.py", OLD_SHIM.as_bytes()),
        ("lib/helpers.py", HELPERS.as_bytes()),
    ];
    (spec, extra)
}

fn commit_all(f: &Fixture) {
    git(&f.ws, &f.home, &["init", "--quiet"]);
    git(&f.ws, &f.home, &["add", "-A"]);
    git(&f.ws, &f.home, &["commit", "--quiet", "-m", "initial"]);
}

#[test]
fn create_delete_and_move_go_through_diff_apply_and_a_branch() {
    let (spec, extra) = four_actions();
    let f = Fixture::with_files(&spec, &extra);
    commit_all(&f);
    let before = snapshot(&f.ws);

    let (out, report) = f.run_json(&[], &[]);
    out.expect_code(0);
    assert_eq!(report.status, JobStatus::Completed, "{}", out.dump());
    for path in [
        "app/models.py",
        "app/factory.py",
        "app/compat.py",
        "lib/helpers.py",
    ] {
        assert_eq!(
            subtask(&report, path).status,
            SubtaskStatus::Accepted,
            "{path}: {}",
            out.dump()
        );
    }
    // The delete and the pure move need no model: workers saw only the edit and the create.
    let mut workers: Vec<String> = f
        .sim
        .requests()
        .iter()
        .filter(|r| r.role == Some(SimRole::Worker) && r.status == 200)
        .filter_map(|r| r.subtask_path.clone())
        .collect();
    workers.sort_unstable();
    assert_eq!(workers, vec!["app/factory.py", "app/models.py"]);
    assert_eq!(snapshot(&f.ws), before, "nothing written before apply");

    let diff = f.diff(&report.job_id);
    assert!(
        diff.contains("diff --git a/app/factory.py b/app/factory.py\nnew file mode 100644\n--- /dev/null\n+++ b/app/factory.py\n"),
        "{diff}"
    );
    assert!(
        diff.contains("diff --git a/app/compat.py b/app/compat.py\ndeleted file mode 100644\n--- a/app/compat.py\n+++ /dev/null\n"),
        "{diff}"
    );
    assert!(
        diff.contains("diff --git a/lib/helpers.py b/app/helpers.py\nsimilarity index 100%\nrename from lib/helpers.py\nrename to app/helpers.py\n"),
        "{diff}"
    );
    // The patch is one git can apply: it creates, removes and renames.
    let check = std::process::Command::new("git")
        .arg("-C")
        .arg(&f.ws)
        .args(["apply", "--check", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            if let Some(stdin) = child.stdin.as_mut() {
                stdin.write_all(diff.as_bytes())?;
            }
            child.wait()
        })
        .unwrap_or_else(|e| panic!("git apply: {e}"));
    assert!(
        check.success(),
        "git apply --check refused the patch\n{diff}"
    );

    // To a branch: one commit that git reads as an add, a delete and a rename.
    let job = report.job_id.to_string();
    let out = f.cadre(&["apply", &job, "--branch", "cadre/migrate"]);
    out.expect_code(0);
    let outside_git = |snap: std::collections::BTreeMap<String, Vec<u8>>| {
        snap.into_iter()
            .filter(|(path, _)| !path.starts_with(".git/"))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        outside_git(snapshot(&f.ws)),
        outside_git(before),
        "a branch apply leaves the working tree alone"
    );
    let status = git(
        &f.ws,
        &f.home,
        &["diff", "--name-status", "-M", "HEAD", "cadre/migrate"],
    );
    let mut lines: Vec<&str> = status.lines().collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        vec![
            "A\tapp/factory.py",
            "D\tapp/compat.py",
            "M\tapp/models.py",
            "R100\tlib/helpers.py\tapp/helpers.py",
        ],
        "{status}"
    );
    assert_eq!(
        git(&f.ws, &f.home, &["show", "cadre/migrate:app/factory.py"]),
        NEW_MODULE
    );

    // In place: the same four changes on disk.
    let out = f.cadre(&["apply", &job]);
    out.expect_code(0);
    assert_eq!(read_file(&f.ws, "app/factory.py"), NEW_MODULE);
    assert_eq!(read_file(&f.ws, "app/helpers.py"), HELPERS);
    assert!(!f.ws.join("lib/helpers.py").exists());
    assert!(!f.ws.join("app/compat.py").exists());
    assert_eq!(
        read_file(&f.ws, "app/models.py"),
        f.case("app/models.py").expected()
    );
}

#[test]
fn apply_never_clobbers_a_file_that_appeared_at_a_create_or_move_target() {
    let (spec, extra) = four_actions();
    let f = Fixture::with_files(&spec, &extra);
    let (out, report) = f.run_json(&[], &[]);
    out.expect_code(0);
    // After the job read the workspace, a user writes both targets.
    std::fs::write(f.ws.join("app/factory.py"), "# mine\n").unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(f.ws.join("app/helpers.py"), "# mine too\n").unwrap_or_else(|e| panic!("{e}"));
    let out = f.cadre(&["apply", &report.job_id.to_string()]);
    out.expect_code(3);
    assert_eq!(read_file(&f.ws, "app/factory.py"), "# mine\n");
    assert_eq!(read_file(&f.ws, "app/helpers.py"), "# mine too\n");
    assert_eq!(
        read_file(&f.ws, "lib/helpers.py"),
        HELPERS,
        "the move's source stays"
    );
    assert!(
        !f.ws.join("app/compat.py").exists(),
        "the delete went ahead"
    );
}

#[test]
fn a_create_of_an_existing_file_and_a_move_onto_a_taken_target_are_refused() {
    let spec = ScenarioSpec::new(&[models_file()])
        .entry(
            SubtaskSpec::new("lib/helpers.py", "Create it.").action("create"),
            Some(FileSpec::with_content("lib/helpers.py", NEW_MODULE)),
        )
        .entry(
            SubtaskSpec::new("lib/other.py", "Move it.")
                .action("move")
                .to("app/models.py"),
            None,
        )
        .entry(
            SubtaskSpec::new("lib/third.py", "Move it out.")
                .action("move")
                .to("../outside.py"),
            None,
        );
    let extra: Vec<(&str, &[u8])> = vec![
        ("lib/helpers.py", HELPERS.as_bytes()),
        ("lib/other.py", b"x = 1\n"),
        ("lib/third.py", b"y = 2\n"),
    ];
    let f = Fixture::with_files(&spec, &extra);
    let (out, report) = f.run_json(&[], &[]);
    out.expect_code(0);
    let create = subtask(&report, "lib/helpers.py");
    assert_eq!(create.status, SubtaskStatus::Skipped);
    assert!(
        create.reason.contains("already exists"),
        "{}",
        create.reason
    );
    let moved = subtask(&report, "lib/other.py");
    assert_eq!(moved.status, SubtaskStatus::Skipped);
    assert!(moved.reason.contains("already exists"), "{}", moved.reason);
    let escaping = subtask(&report, "lib/third.py");
    assert_eq!(escaping.status, SubtaskStatus::Skipped);
    assert!(escaping.reason.contains(".."), "{}", escaping.reason);
    assert!(f.sim.worker_requests_for("lib/helpers.py").is_empty());
    assert_eq!(read_file(&f.ws, "lib/helpers.py"), HELPERS);
}

// --- Codemod tier figures (issue 11, "Codemods first"): reports, `cadre
// cost` and `cadre stats` count codemod attempts, their acceptance rate and
// what they saved; a config without the codemod tier runs no rule. ---

/// A number from `cadre config show` (`KEY = VALUE  # SOURCE`).
fn config_number(f: &Fixture, key: &str) -> f64 {
    let out = f.cadre(&["config", "show"]);
    out.expect_code(0);
    let prefix = format!("{key} = ");
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in cadre config show\n{}", out.dump()))
}

fn json_doc(out: &cadre_e2e::CmdOutput) -> serde_json::Value {
    out.expect_code(0);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e})\n{}", out.dump()))
}

#[test]
fn codemod_attempts_acceptance_and_savings_reach_the_report_cost_and_stats() {
    // Four files the rule rewrites cleanly; in the fifth its print() rule
    // leaves a parenthesis open.
    let mut cases: Vec<FileCase> = (0..4)
        .map(|i| rename_module(&format!("app/mod_{i}.py"), &format!("f{i}")))
        .collect();
    cases.push(FileCase::new(
        "app/noisy.py",
        "from app.models import UserId\n\n\ndef noisy(uid: UserId) -> None:\n    print(uid)\n",
        &[
            (
                "from app.models import UserId",
                "from app.models import AccountId",
            ),
            ("def noisy(uid: UserId)", "def noisy(uid: AccountId)"),
        ],
    ));
    let f = Fixture::new(&ScenarioSpec::new(&cases).sim_reads_workspace());
    let rule = rule_file(
        &f,
        &format!(
            "{RENAME_RULE}---\nid: print-broken\nlanguage: python\nrule:\n  pattern: print($A)\nfix: print($A\n"
        ),
    );
    let (out, report) = f.run_json(&[], &["--rule", &rule]);
    out.expect_code(0);
    assert_eq!(report.status, JobStatus::Completed, "{}", out.dump());
    for case in &cases[..4] {
        let s = subtask(&report, &case.path);
        assert_eq!(
            (s.start_tier.as_str(), s.final_tier.as_str(), s.status),
            ("codemod", "codemod", SubtaskStatus::Accepted),
            "{}: {}",
            case.path,
            s.reason
        );
        assert!(f.sim.worker_requests_for(&case.path).is_empty());
    }
    let noisy = subtask(&report, "app/noisy.py");
    assert_eq!(
        (noisy.start_tier.as_str(), noisy.final_tier.as_str()),
        ("codemod", "haiku")
    );
    assert_eq!(report.escalations, 1, "codemod -> haiku for app/noisy.py");

    // 5 rules run, 4 accepted; each accepted file saved one worker attempt
    // at its first model tier (haiku), priced as the estimate prices an
    // attempt: the file plus 300 tokens in, a third of it plus 200 out.
    let codemod = report.cost.codemod;
    assert_eq!((codemod.attempts, codemod.accepted), (5, 4), "{codemod:?}");
    assert!((codemod.acceptance_rate - 0.8).abs() < 1e-12, "{codemod:?}");
    let input = config_number(&f, "models.haiku.input_usd_per_mtok");
    let output = config_number(&f, "models.haiku.output_usd_per_mtok");
    let expected: f64 = cases[..4]
        .iter()
        .map(|c| {
            let tokens = (c.original.chars().count() as u64).div_ceil(4);
            ((tokens + 300) as f64 * input + (tokens / 3 + 200) as f64 * output) / 1e6
        })
        .sum();
    assert!(expected > 0.0);
    assert!(
        (codemod.saved_usd - expected).abs() < 1e-12,
        "saved {} != {expected}",
        codemod.saved_usd
    );
    assert_eq!(report.cost.by_tier.get("codemod"), None, "no model call");

    // `cadre cost`: the same figures, as JSON and as a line.
    let job = report.job_id.to_string();
    let cost = json_doc(&f.cadre(&["cost", &job, "--json"]));
    assert_eq!(cost["cost"]["codemod"]["attempts"], 5);
    assert_eq!(cost["cost"]["codemod"]["accepted"], 4);
    assert_eq!(
        cost["cost"]["codemod"]["saved_usd"].as_f64(),
        Some(codemod.saved_usd)
    );
    let text = f.cadre(&["cost", &job]);
    text.expect_code(0);
    let line = format!(
        "codemod: 5 rule run(s), 4 accepted (80%), saved ${:.4} against their first model tier",
        codemod.saved_usd
    );
    assert!(text.stdout.contains(&line), "{line}\n{}", text.dump());

    // `cadre stats` across the store's jobs (this one): the same figures,
    // and the codemod tier's class rows.
    let stats = json_doc(&f.cadre(&["stats", "--json"]));
    assert_eq!(stats["codemod"]["attempts"], 5, "{stats:#}");
    assert_eq!(stats["codemod"]["accepted"], 4);
    assert_eq!(
        stats["codemod"]["saved_usd"].as_f64(),
        Some(codemod.saved_usd)
    );
    let at_codemod: Vec<(u64, u64)> = stats["classes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["tier"] == "codemod")
        .map(|c| {
            (
                c["attempts"].as_u64().unwrap_or(0),
                c["passed"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(at_codemod, vec![(5, 4)], "{stats:#}");
    let text = f.cadre(&["stats"]);
    text.expect_code(0);
    assert!(text.stdout.contains(&line), "{line}\n{}", text.dump());
}

#[test]
fn a_rule_that_matches_nothing_escalates_with_its_failure_as_feedback() {
    let cases = vec![rename_module("app/mod_0.py", "f0")];
    let f = Fixture::new(&ScenarioSpec::new(&cases).sim_reads_workspace());
    let rule = rule_file(
        &f,
        "id: no-such-name\nlanguage: python\nrule:\n  pattern: NoSuchName\nfix: Other\n",
    );
    let (out, report) = f.run_json(&[], &["--rule", &rule]);
    out.expect_code(0);
    let attempts = f.attempts_for(&report.job_id, "app/mod_0.py");
    let seen: Vec<(&str, &str, Option<&str>)> = attempts
        .iter()
        .map(|a| (a.tier.as_str(), a.outcome.as_str(), a.failure.as_deref()))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("codemod", "failed", Some("no_usable_edit")),
            ("haiku", "passed", None)
        ]
    );
    let error = attempts[0].error.clone().unwrap_or_default();
    assert!(error.contains("matched nothing"), "{error}");
    // The haiku call is the file's second attempt: it read the rule's failure.
    let requests = f.sim.worker_requests_for("app/mod_0.py");
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].attempt, Some(2), "{requests:?}");
    let codemod = report.cost.codemod;
    assert_eq!(
        (codemod.attempts, codemod.accepted, codemod.saved_usd),
        (1, 0, 0.0)
    );
    assert_eq!(subtask(&report, "app/mod_0.py").start_tier, "codemod");
}

#[test]
fn without_the_codemod_tier_a_rule_is_refused_and_nothing_starts_there() {
    let cases = vec![rename_module("app/mod_0.py", "f0")];
    let f = Fixture::new(&ScenarioSpec::new(&cases));
    let rule = rule_file(&f, RENAME_RULE);
    let order = r#"tiers.order=["haiku", "sonnet", "opus"]"#;
    let ws = f.ws_arg();
    let out = f.cadre(&[
        "-c",
        order,
        "run",
        cadre_e2e::RENAME,
        "--workspace",
        &ws,
        "--rule",
        &rule,
    ]);
    assert_ne!(out.code, Some(0), "{}", out.dump());
    assert!(
        out.stderr.contains("--rule needs the codemod tier") && out.stderr.contains("tiers.order"),
        "{}",
        out.dump()
    );
    assert!(f.sim.requests().is_empty(), "nothing was sent");
    // The same config runs without a rule, starting at its first model tier.
    let (out, report) = f.run_json(&["-c", order], &[]);
    out.expect_code(0);
    let s = subtask(&report, "app/mod_0.py");
    assert_eq!(
        (s.start_tier.as_str(), s.final_tier.as_str()),
        ("haiku", "haiku")
    );
    assert_eq!(report.cost.codemod.attempts, 0);
}

const RENAME_RULE: &str =
    "id: user-id-to-account-id\nlanguage: python\nrule:\n  pattern: UserId\nfix: AccountId\n";

fn rule_file(f: &Fixture, text: &str) -> String {
    let path = f.ws.parent().unwrap_or(&f.ws).join("rule.yml");
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
    path.to_string_lossy().into_owned()
}

#[test]
fn a_rule_rewrites_mechanical_files_with_no_worker_call() {
    let cases: Vec<FileCase> = (0..6)
        .map(|i| rename_module(&format!("app/mod_{i}.py"), &format!("f{i}")))
        .collect();
    let f = Fixture::new(&ScenarioSpec::new(&cases).sim_reads_workspace());
    let rule = rule_file(&f, RENAME_RULE);
    let (out, report) = f.run_json(&[], &["--rule", &rule]);
    out.expect_code(0);
    assert_eq!(report.status, JobStatus::Completed, "{}", out.dump());
    for case in &cases {
        let s = subtask(&report, &case.path);
        assert_eq!(s.status, SubtaskStatus::Accepted);
        assert_eq!(s.final_tier, "codemod", "{}: {}", case.path, s.reason);
        assert!(
            f.sim.worker_requests_for(&case.path).is_empty(),
            "{} went to a model",
            case.path
        );
        let attempts = f.attempts_for(&report.job_id, &case.path);
        assert_eq!(attempts.len(), 1, "{attempts:?}");
        assert_eq!(
            (
                attempts[0].tier.as_str(),
                attempts[0].model.as_str(),
                attempts[0].outcome.as_str()
            ),
            ("codemod", "ast-grep", "passed")
        );
    }
    assert_eq!(
        report.cost.by_tier.get("codemod").copied().unwrap_or(0.0),
        0.0
    );
    f.cadre(&["apply", &report.job_id.to_string()])
        .expect_code(0);
    for case in &cases {
        assert_eq!(read_file(&f.ws, &case.path), case.expected());
    }
}

#[test]
fn a_rule_that_breaks_one_file_escalates_that_file_with_feedback() {
    let cases = vec![
        rename_module("app/clean.py", "clean"),
        FileCase::new(
            "app/noisy.py",
            "from app.models import UserId\n\n\ndef noisy(uid: UserId) -> None:\n    print(uid)\n",
            &[
                (
                    "from app.models import UserId",
                    "from app.models import AccountId",
                ),
                ("def noisy(uid: UserId)", "def noisy(uid: AccountId)"),
            ],
        ),
    ];
    let f = Fixture::new(&ScenarioSpec::new(&cases).sim_reads_workspace());
    // The second rule leaves a parenthesis open wherever print() is called.
    let rule = rule_file(
        &f,
        &format!(
            "{RENAME_RULE}---\nid: print-broken\nlanguage: python\nrule:\n  pattern: print($A)\nfix: print($A\n"
        ),
    );
    let (out, report) = f.run_json(&[], &["--rule", &rule]);
    out.expect_code(0);
    assert_eq!(report.status, JobStatus::Completed, "{}", out.dump());
    assert_eq!(subtask(&report, "app/clean.py").final_tier, "codemod");
    assert!(f.sim.worker_requests_for("app/clean.py").is_empty());
    let noisy = f.attempts_for(&report.job_id, "app/noisy.py");
    let seen: Vec<(&str, &str, Option<&str>)> = noisy
        .iter()
        .map(|a| (a.tier.as_str(), a.outcome.as_str(), a.failure.as_deref()))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("codemod", "failed", Some("syntax_error")),
            ("haiku", "passed", None)
        ],
        "{noisy:?}"
    );
    let error = noisy[0].error.clone().unwrap_or_default();
    assert!(error.contains("print-broken"), "{error}");
    // The haiku call carried the codemod's failure as feedback.
    let requests = f.sim.worker_requests_for("app/noisy.py");
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(
        requests[0].attempt,
        Some(2),
        "one feedback block: {requests:?}"
    );
    assert_eq!(subtask(&report, "app/noisy.py").final_tier, "haiku");
}

// ---------------------------------------------------------------------------
// Plans at scale (issue 11): selectors expanded over hundreds of files, plans
// over several pages, hostile selectors and searches refused with a reason,
// and the planner's read-only `search` tool, all through the real binary.
// ---------------------------------------------------------------------------

mod planner_scale {
    use cadre_e2e::{
        FileCase, Fixture, OPUS, RENAME, ScenarioSpec, SearchSpec, SelectorSpec, SimRole,
        read_file, rename_module, subtask,
    };
    use cadre_types::{JobId, JobStatus, SubtaskStatus};
    use pretty_assertions::assert_eq;

    const INSTRUCTION: &str = "Rename UserId to AccountId.";

    fn selector(id: &str, paths: &[&str]) -> SelectorSpec {
        SelectorSpec {
            id: id.to_owned(),
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
            literal: Some("UserId".to_owned()),
            instruction: INSTRUCTION.to_owned(),
            complexity: "mechanical".to_owned(),
            error_cost: "low".to_owned(),
            ..SelectorSpec::default()
        }
    }

    fn literal_search(paths: &[&str]) -> SearchSpec {
        SearchSpec {
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
            literal: Some("UserId".to_owned()),
            ..SearchSpec::default()
        }
    }

    /// What the planner's answers were, in order, from the sim's log.
    fn planner_outcomes(f: &Fixture) -> Vec<String> {
        f.sim
            .requests()
            .iter()
            .filter(|r| r.role == Some(SimRole::Planner) && r.status == 200)
            .map(|r| r.outcome.clone().unwrap_or_default())
            .collect()
    }

    fn events_of(f: &Fixture, job: &JobId, kind: &str) -> Vec<String> {
        f.events(job)
            .into_iter()
            .filter(|(k, _)| k == kind)
            .map(|(_, m)| m)
            .collect()
    }

    #[test]
    fn a_selector_expands_to_hundreds_of_files_after_a_search() {
        let cases: Vec<FileCase> = (0..300)
            .map(|i| rename_module(&format!("app/gen/mod_{i:03}.py"), &format!("f{i}")))
            .collect();
        let quiet: Vec<(String, String)> = (0..20)
            .map(|i| {
                (
                    format!("app/gen/quiet_{i:02}.py"),
                    format!("def q{i}() -> int:\n    return {i}\n"),
                )
            })
            .collect();
        let extra: Vec<(&str, &[u8])> = quiet
            .iter()
            .map(|(p, c)| (p.as_str(), c.as_bytes()))
            .collect();
        let spec = ScenarioSpec::new(&cases)
            .search(literal_search(&[]))
            .selector(selector("rename-app", &["app/**/*.py"]));
        let f = Fixture::with_files(&spec, &extra);
        let (out, report) = f.run_json(&[], &[]);
        out.expect_code(0);
        assert_eq!(report.status, JobStatus::Completed, "{}", out.dump());
        assert_eq!(report.subtasks.len(), 300, "{}", out.dump());
        for case in &cases {
            assert_eq!(subtask(&report, &case.path).status, SubtaskStatus::Accepted);
        }
        assert!(
            report.subtasks.iter().all(|s| !s.path.contains("quiet_")),
            "a file without the identifier was planned"
        );
        // The planner searched once, then submitted one answer of one selector.
        assert_eq!(planner_outcomes(&f), vec!["search", "ok"]);
        let searches = events_of(&f, &report.job_id, "planner_search");
        assert_eq!(searches.len(), 1, "{searches:?}");
        assert!(
            searches[0].contains(": 300 of 320 file(s) match"),
            "{searches:?}"
        );
        let expanded = events_of(&f, &report.job_id, "selector_expanded");
        assert_eq!(expanded.len(), 1, "{expanded:?}");
        assert!(
            expanded[0].starts_with("selector \"rename-app\": 300 file(s) (app/gen/mod_000.py"),
            "{expanded:?}"
        );
        assert!(expanded[0].contains("20 left out"), "{expanded:?}");
        // Every selected file got exactly one worker call.
        let workers = f
            .sim
            .requests()
            .iter()
            .filter(|r| r.role == Some(SimRole::Worker) && r.status == 200)
            .count();
        assert_eq!(workers, 300);
        f.cadre(&["apply", &report.job_id.to_string()])
            .expect_code(0);
        for case in &cases {
            assert_eq!(
                read_file(&f.ws, &case.path),
                case.expected(),
                "{}",
                case.path
            );
        }
        for (path, content) in &quiet {
            assert_eq!(&read_file(&f.ws, path), content);
        }
    }

    #[test]
    fn searches_are_bounded_by_config() {
        let cases: Vec<FileCase> = (0..3)
            .map(|i| rename_module(&format!("app/m{i}.py"), &format!("f{i}")))
            .collect();
        let spec = ScenarioSpec::new(&cases)
            .search(literal_search(&["app/**"]))
            .search(literal_search(&["lib/**"]))
            .search(literal_search(&[]))
            .selector(selector("rename", &["app/*.py"]));
        let f = Fixture::new(&spec);
        // One search allowed: past it cadre forces submit_plan.
        let (out, report) = f.run_json(&["-c", "limits.planner_searches=1"], &[]);
        out.expect_code(0);
        assert_eq!(report.status, JobStatus::Completed, "{}", out.dump());
        assert_eq!(planner_outcomes(&f), vec!["search", "ok"]);
        let searches = events_of(&f, &report.job_id, "planner_search");
        assert_eq!(searches.len(), 1, "{searches:?}");
        assert!(
            searches[0].contains(": 3 of 3 file(s) match"),
            "{searches:?}"
        );

        // No searches: the tool is not offered, the planner submits at once.
        let f = Fixture::new(&spec);
        let (out, report) = f.run_json(&["-c", "limits.planner_searches=0"], &[]);
        out.expect_code(0);
        assert_eq!(report.status, JobStatus::Completed, "{}", out.dump());
        assert_eq!(planner_outcomes(&f), vec!["ok"]);
        assert!(events_of(&f, &report.job_id, "planner_search").is_empty());
    }

    #[test]
    fn a_plan_over_three_pages() {
        let cases: Vec<FileCase> = (0..9)
            .map(|i| rename_module(&format!("app/page_{i}.py"), &format!("p{i}")))
            .collect();
        let f = Fixture::new(&ScenarioSpec::new(&cases).plan_pages(3));
        let (out, report) = f.run_json(&[], &[]);
        out.expect_code(0);
        assert_eq!(report.status, JobStatus::Completed, "{}", out.dump());
        assert_eq!(report.subtasks.len(), 9);
        for case in &cases {
            assert_eq!(subtask(&report, &case.path).status, SubtaskStatus::Accepted);
        }
        // Three planner answers, each a page (the first two asking for more).
        let planner: Vec<_> = f
            .sim
            .requests()
            .into_iter()
            .filter(|r| r.role == Some(SimRole::Planner) && r.status == 200)
            .collect();
        assert_eq!(planner.len(), 3, "{planner:?}");
        assert!(planner.iter().all(|r| r.model.as_deref() == Some(OPUS)));
        assert!(planner.iter().all(|r| r.outcome.as_deref() == Some("ok")));
        // Each page is planned in order: the report lists them as the pages did.
        let paths: Vec<&str> = report.subtasks.iter().map(|s| s.path.as_str()).collect();
        let expected: Vec<&str> = cases.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, expected);
    }

    #[test]
    fn hostile_selectors_and_searches_are_refused_with_a_reason() {
        let cases = vec![rename_module("app/ok.py", "ok")];
        let regex = |id: &str, r: &str| SelectorSpec {
            literal: None,
            regex: Some(r.to_owned()),
            ..selector(id, &[])
        };
        let spec = ScenarioSpec::new(&cases)
            .search(literal_search(&["../**"]))
            .selector(selector("good", &["app/*.py"]))
            .selector(selector("up", &["../**/*.py"]))
            .selector(selector("abs", &["/etc/**"]))
            .selector(regex("blowup", "((((a{100}){100}){100}){100})"));
        let outside = "from app.models import UserId\n";
        let f = Fixture::new(&spec);
        std::fs::write(f.tmp.path().join("outside.py"), outside).unwrap_or_else(|e| panic!("{e}"));

        // `cadre plan` names each refused selector with its reason.
        let out = f.cadre(&["plan", RENAME, "--workspace", &f.ws_arg()]);
        out.expect_code(0);
        for expected in [
            "selector up: refused: glob \"../**/*.py\" climbs out with '..'",
            "selector abs: refused: glob \"/etc/**\" is absolute",
            "selector blowup: refused: the regex is refused (invalid, or too large to run within bounds)",
        ] {
            assert!(out.stdout.contains(expected), "{expected}\n{}", out.dump());
        }

        let f = Fixture::new(&spec);
        std::fs::write(f.tmp.path().join("outside.py"), outside).unwrap_or_else(|e| panic!("{e}"));
        let (out, report) = f.run_json(&[], &[]);
        out.expect_code(0);
        assert_eq!(report.status, JobStatus::Completed, "{}", out.dump());
        let paths: Vec<&str> = report.subtasks.iter().map(|s| s.path.as_str()).collect();
        assert_eq!(paths, vec!["app/ok.py"]);
        let refused = events_of(&f, &report.job_id, "selector_rejected");
        assert_eq!(refused.len(), 3, "{refused:?}");
        assert!(refused[0].contains("climbs out with '..'"), "{refused:?}");
        assert!(refused[1].contains("is absolute"), "{refused:?}");
        assert!(refused[2].contains("too large"), "{refused:?}");
        // The hostile search was answered with its reason, and planning went on.
        let searches = events_of(&f, &report.job_id, "planner_search");
        assert_eq!(
            searches,
            vec!["planner search refused: glob \"../**\" climbs out with '..'".to_owned()]
        );
        assert_eq!(planner_outcomes(&f), vec!["search", "ok"]);
        assert_eq!(
            std::fs::read_to_string(f.tmp.path().join("outside.py")).unwrap_or_default(),
            outside
        );
    }
}
