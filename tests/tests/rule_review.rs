//! The review of codemod rules (issue 11): the reviewer reviews a rule once,
//! not its files one by one. Its verdict holds for every file the rule
//! rewrote; a rejected rule sends them all to a model with the reviewer's
//! comment. Files a model wrote are still reviewed one by one. The real
//! `cadre` binary against `cadre sim serve`.

use cadre_e2e::{FileCase, Fixture, ScenarioSpec, SimRole, read_file, rename_module, subtask};
use cadre_types::{JobId, JobStatus, SubtaskStatus};
use pretty_assertions::assert_eq;

const RULE_ID: &str = "user-id-to-account-id";

const RENAME_RULE: &str =
    "id: user-id-to-account-id\nlanguage: python\nrule:\n  pattern: UserId\nfix: AccountId\n";

fn rule_file(f: &Fixture) -> String {
    let path = f.ws.parent().unwrap_or(&f.ws).join("rule.yml");
    std::fs::write(&path, RENAME_RULE).unwrap_or_else(|e| panic!("{e}"));
    path.to_string_lossy().into_owned()
}

/// `count` modules the rule renames cleanly.
fn modules(count: usize) -> Vec<FileCase> {
    (0..count)
        .map(|i| rename_module(&format!("app/mod_{i:02}.py"), &format!("f{i}")))
        .collect()
}

/// A module naming the identifier only in a string: the rule matches
/// nothing there, so a model renames it.
fn string_only() -> FileCase {
    FileCase::new(
        "app/names.py",
        "MODEL_NAME = \"UserId\"\n",
        &[("\"UserId\"", "\"AccountId\"")],
    )
}

/// What each reviewer call answered (`approved F/N, rules R/M`), in order.
fn reviewer_outcomes(f: &Fixture) -> Vec<String> {
    f.sim
        .requests()
        .iter()
        .filter(|r| r.role == Some(SimRole::Reviewer) && r.status == 200)
        .map(|r| r.outcome.clone().unwrap_or_default())
        .collect()
}

fn verdict_events(f: &Fixture, job: &JobId) -> Vec<String> {
    f.events(job)
        .into_iter()
        .filter(|(kind, _)| kind == "review_verdict")
        .map(|(_, message)| message)
        .collect()
}

#[test]
fn a_rule_over_many_files_is_reviewed_once_and_every_file_is_approved_with_it() {
    let mut cases = modules(40);
    cases.push(string_only());
    let f = Fixture::new(&ScenarioSpec::new(&cases).sim_reads_workspace());
    let rule = rule_file(&f);
    let (out, report) = f.run_json(&[], &["--rule", &rule]);
    out.expect_code(0);
    assert_eq!(report.status, JobStatus::Completed, "{}", out.dump());
    for case in &cases[..40] {
        let s = subtask(&report, &case.path);
        assert_eq!(
            (s.status, s.final_tier.as_str()),
            (SubtaskStatus::Accepted, "codemod"),
            "{}: {}",
            case.path,
            s.reason
        );
    }
    let names = subtask(&report, "app/names.py");
    assert_eq!(
        (names.status, names.final_tier.as_str()),
        (SubtaskStatus::Accepted, "haiku")
    );
    // One review call: one block for the rule's 40 files, and the one file
    // a model wrote with its own diff.
    assert_eq!(reviewer_outcomes(&f), vec!["approved 1/1, rules 1/1"]);
    // Every file still ends with its own approval, the rule's files naming it.
    let verdicts = verdict_events(&f, &report.job_id);
    assert_eq!(verdicts.len(), 41, "{verdicts:#?}");
    for case in &cases[..40] {
        let expected = format!(
            "{}: approve (rule {RULE_ID}) Rule {RULE_ID} looks correct on its samples.",
            case.path
        );
        assert!(verdicts.contains(&expected), "{expected}\n{verdicts:#?}");
    }
    assert!(
        verdicts.contains(&"app/names.py: approve Looks correct.".to_owned()),
        "{verdicts:#?}"
    );
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
}

#[test]
fn a_rule_the_reviewer_rejects_sends_its_files_to_a_model_with_the_comment() {
    let cases = modules(6);
    let spec = ScenarioSpec::new(&cases)
        .sim_reads_workspace()
        .force_revise_rule(RULE_ID, 1);
    let f = Fixture::new(&spec);
    let rule = rule_file(&f);
    let (out, report) = f.run_json(&[], &["--rule", &rule]);
    out.expect_code(0);
    assert_eq!(report.status, JobStatus::Completed, "{}", out.dump());
    assert_eq!(report.subtasks.len(), cases.len());
    let comment = format!("Rule {RULE_ID} is too broad to trust on all 6 files");
    for case in &cases {
        let s = subtask(&report, &case.path);
        assert_eq!(
            (s.status, s.final_tier.as_str()),
            (SubtaskStatus::Accepted, "haiku"),
            "{}: {}",
            case.path,
            s.reason
        );
        // The rule's accepted rewrite was turned down by the review, then
        // haiku made the change.
        let attempts = f.attempts_for(&report.job_id, &case.path);
        let seen: Vec<(&str, &str, Option<&str>)> = attempts
            .iter()
            .map(|a| (a.tier.as_str(), a.outcome.as_str(), a.failure.as_deref()))
            .collect();
        assert_eq!(
            seen,
            vec![
                ("codemod", "failed", Some("review_rejected")),
                ("haiku", "passed", None)
            ],
            "{attempts:?}"
        );
        // The worker's prompt carried the reviewer's comment on the rule.
        let requests = f.sim.worker_requests_for(&case.path);
        assert_eq!(requests.len(), 1, "{requests:?}");
        assert_eq!(requests[0].attempt, Some(2), "{requests:?}");
        assert_eq!(requests[0].feedback.len(), 1, "{requests:?}");
        assert!(
            requests[0].feedback[0]
                .starts_with(&format!("reviewer, on codemod rule {RULE_ID}: {comment}")),
            "{:?}",
            requests[0].feedback
        );
    }
    // Round 1: the rule, rejected. Round 2: the six model-written files, one by one.
    assert_eq!(
        reviewer_outcomes(&f),
        vec!["approved 0/0, rules 0/1", "approved 6/6"]
    );
    let verdicts = verdict_events(&f, &report.job_id);
    // Each file: the rule's revise, then its own approval.
    assert_eq!(verdicts.len(), 12, "{verdicts:#?}");
    for case in &cases {
        let mine: Vec<&String> = verdicts
            .iter()
            .filter(|v| v.starts_with(&format!("{}: ", case.path)))
            .collect();
        assert_eq!(mine.len(), 2, "{verdicts:#?}");
        assert!(
            mine[0].starts_with(&format!("{}: revise (rule {RULE_ID}) {comment}", case.path)),
            "{mine:?}"
        );
        assert_eq!(mine[1], &format!("{}: approve Looks correct.", case.path));
    }
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
}
