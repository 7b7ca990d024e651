//! Budgets through the real binary: `cadre plan` states the expected cost
//! against the budget, a run whose budget covers part of the plan ends
//! `needs_human` with the rest not started, and `cadre resume --budget`
//! raises the cap and finishes the job without sending a finished call again.

use std::collections::BTreeSet;

use cadre_e2e::{
    Fixture, RENAME, ScenarioSpec, SimRequestExt, assert_all_terminal, models_file, parse_report,
    rename_module,
};
use cadre_types::{JobStatus, SubtaskStatus};

fn fixture() -> Fixture {
    let cases = vec![
        models_file(),
        rename_module("app/views.py", "show"),
        rename_module("app/service.py", "lookup"),
        rename_module("app/billing.py", "charge"),
        rename_module("app/audit.py", "record"),
        rename_module("app/search.py", "find"),
    ];
    Fixture::new(&ScenarioSpec::new(&cases))
}

#[test]
fn plan_states_the_expected_cost_against_the_budget() {
    let f = fixture();
    let out = f.cadre(&[
        "plan",
        RENAME,
        "--workspace",
        &f.ws_arg(),
        "--budget",
        "0.04",
    ]);
    out.expect_code(0);
    assert!(
        out.stdout.contains("expected $") && out.stdout.contains("90% interval"),
        "{}",
        out.dump()
    );
    assert!(out.stdout.contains("covers about"), "{}", out.dump());
}

#[test]
fn a_raised_budget_finishes_what_the_first_one_did_not_start() {
    let f = fixture();
    // The whole job costs about $0.019 and its estimate is higher: $0.04
    // pays for the plan and some of the files.
    let (out, report) = f.run_json(&[], &["--budget", "0.04"]);
    out.expect_code(2);
    assert_eq!(report.status, JobStatus::NeedsHuman, "{}", out.dump());
    assert!(report.cost.total_usd <= 0.04);
    let not_started: Vec<&str> = report
        .subtasks
        .iter()
        .filter(|s| s.status == SubtaskStatus::Pending)
        .map(|s| s.path.as_str())
        .collect();
    assert!(!not_started.is_empty(), "$0.04 covered the whole job");
    assert!(
        report
            .subtasks
            .iter()
            .any(|s| s.status == SubtaskStatus::Accepted),
        "$0.04 bought no finished file"
    );
    for s in &report.subtasks {
        assert!(
            s.status.is_terminal() || s.reason.starts_with("not started: budget"),
            "{}: {} ({})",
            s.path,
            s.status,
            s.reason
        );
    }
    let job = report.job_id.to_string();
    let resumed = f.cadre(&["resume", &job, "--budget", "5", "--json"]);
    resumed.expect_code(0);
    let report = parse_report(&resumed);
    assert_eq!(report.status, JobStatus::Completed, "{}", resumed.dump());
    assert_all_terminal(&report);
    assert!(report.cost.total_usd <= 5.0);
    // Files that were not started ran now; none that had finished ran again.
    let answered_after: Vec<String> = f
        .sim
        .requests()
        .iter()
        .filter(|r| r.is_finished_worker_call())
        .map(|r| r.body_sha256.clone())
        .collect();
    let mut seen = BTreeSet::new();
    for sha in &answered_after {
        assert!(seen.insert(sha), "a finished call was sent again");
    }
    for path in not_started {
        assert_eq!(
            report
                .subtasks
                .iter()
                .find(|s| s.path == path)
                .map(|s| s.status),
            Some(SubtaskStatus::Accepted),
            "{path}"
        );
    }
}
