//! The pipeline end to end: plan, route, fan out, validate, escalate,
//! integrate, review, finish; the real `cadre` binary against `cadre sim serve`.

use cadre_e2e::{
    FileCase, Fixture, HAIKU, OPUS, SONNET, ScenarioSpec, SimRole, assert_accepted_first_try,
    assert_all_terminal, models_file, read_file, rename_module, snapshot, subtask,
};
use cadre_types::{JobStatus, SubtaskStatus};
use pretty_assertions::assert_eq;

/// The `-`/`+` lines a correct change of `case` must put in the patch.
fn expected_patch_lines(case: &FileCase) -> Vec<String> {
    let mut lines = Vec::new();
    let mut text = case.original.clone();
    for (old, new) in &case.edits {
        let line = text
            .lines()
            .find(|l| l.contains(old.as_str()))
            .unwrap_or_else(|| panic!("{old:?} not in {}", case.path));
        lines.push(format!("-{line}"));
        lines.push(format!("+{}", line.replacen(old.as_str(), new, 1)));
        text = text.replacen(old.as_str(), new, 1);
    }
    lines
}

fn tiers(attempts: &[cadre_e2e::AttemptView]) -> Vec<(String, String, Option<String>)> {
    attempts
        .iter()
        .map(|a| (a.tier.clone(), a.outcome.clone(), a.failure.clone()))
        .collect()
}

fn models_of(requests: &[cadre_e2e::SimRequest]) -> Vec<String> {
    requests
        .iter()
        .filter(|r| r.status == 200)
        .filter_map(|r| r.model.clone())
        .collect()
}

#[test]
fn happy_path_accepts_every_file_at_its_start_tier_and_applies_only_when_asked() {
    let cases = vec![
        models_file(),
        rename_module("app/views.py", "show"),
        rename_module("app/service.py", "lookup").complexity("generative"),
        rename_module("app/policy.py", "allowed").complexity("reasoning"),
        // Matches **/auth/**: forced to high error cost, raised from haiku to sonnet.
        rename_module("app/auth/tokens.py", "issue"),
    ];
    // Notes long enough (> 4096 tokens at 4 chars per token) for the shared prefix to be cacheable on every tier.
    let notes = "Rename the class UserId to AccountId; keep every other name, string and behaviour unchanged. ".repeat(200);
    let f = Fixture::new(&ScenarioSpec::new(&cases).notes(&notes));
    let before = snapshot(&f.ws);

    let (out, report) = f.run_json(&[], &[]);
    out.expect_code(0);
    assert_eq!(report.status, JobStatus::Completed, "{}", out.dump());
    assert_all_terminal(&report);
    assert_eq!(report.subtasks.len(), 5);
    assert_accepted_first_try(&report, "app/models.py", "haiku");
    assert_accepted_first_try(&report, "app/views.py", "haiku");
    assert_accepted_first_try(&report, "app/service.py", "sonnet");
    assert_accepted_first_try(&report, "app/policy.py", "opus");
    assert_accepted_first_try(&report, "app/auth/tokens.py", "sonnet");
    assert_eq!(
        subtask(&report, "app/auth/tokens.py").error_cost.as_str(),
        "high"
    );
    assert_eq!(report.escalations, 0);
    assert_eq!(report.files_changed, 5);

    // Money and tokens.
    let cost = &report.cost;
    assert!(cost.total_usd > 0.0, "{cost:?}");
    assert!(cost.all_top_tier_usd >= cost.total_usd, "{cost:?}");
    for role in ["planner", "worker", "reviewer"] {
        assert!(
            cost.by_role.get(role).copied().unwrap_or(0.0) > 0.0,
            "no {role} cost: {cost:?}"
        );
    }
    for tier in ["haiku", "sonnet", "opus"] {
        assert!(
            cost.by_tier.get(tier).copied().unwrap_or(0.0) > 0.0,
            "no {tier} cost: {cost:?}"
        );
    }
    let per_subtask: f64 = report.subtasks.iter().map(|s| s.cost_usd).sum();
    assert!(
        per_subtask > 0.0 && per_subtask <= cost.total_usd + 1e-9,
        "{per_subtask} vs {cost:?}"
    );
    assert!(
        report.tokens.input > 0 && report.tokens.output > 0,
        "{:?}",
        report.tokens
    );
    // Two haiku files share the job prefix: the first writes the cache, the second reads it.
    assert!(report.tokens.cache_write > 0, "{:?}", report.tokens);
    assert!(report.tokens.cache_read > 0, "{:?}", report.tokens);
    let sim_reads: u64 = f
        .sim
        .requests()
        .iter()
        .map(|r| r.cache_read_input_tokens)
        .sum();
    assert_eq!(
        sim_reads, report.tokens.cache_read,
        "the report's cache reads match what the provider reported"
    );

    // One worker call per file, one planner call, one review.
    let requests = f.sim.requests();
    let roles = |role: SimRole| {
        requests
            .iter()
            .filter(|r| r.role == Some(role) && r.status == 200)
            .count()
    };
    assert_eq!(
        (
            roles(SimRole::Planner),
            roles(SimRole::Worker),
            roles(SimRole::Reviewer)
        ),
        (1, 5, 1),
        "{requests:#?}"
    );

    // Nothing is written before apply.
    assert_eq!(
        snapshot(&f.ws),
        before,
        "the workspace changed before `cadre apply`"
    );
    let job = report.job_id.to_string();
    let diff = f.diff(&report.job_id);
    for case in &cases {
        assert!(
            diff.contains(&format!("diff --git a/{0} b/{0}\n", case.path)),
            "{diff}"
        );
        for line in expected_patch_lines(case) {
            assert!(
                diff.lines().any(|l| l == line),
                "patch lacks {line:?}:\n{diff}"
            );
        }
    }
    let show = f.cadre(&["show", &job, "--json"]);
    show.expect_code(0);
    let shown = cadre_e2e::parse_report(&show);
    assert_eq!(
        (shown.status, shown.subtasks.len()),
        (JobStatus::Completed, 5)
    );

    let applied = f.cadre(&["apply", &job]);
    applied.expect_code(0);
    for case in &cases {
        assert_eq!(
            read_file(&f.ws, &case.path),
            case.expected(),
            "{} after apply",
            case.path
        );
    }
}

#[test]
fn haiku_syntax_error_escalates_to_sonnet() {
    let cases = vec![
        models_file().script(HAIKU, &["syntax"]),
        rename_module("app/views.py", "show"),
    ];
    let f = Fixture::new(&ScenarioSpec::new(&cases));
    let (out, report) = f.run_json(&[], &[]);
    out.expect_code(0);
    assert_all_terminal(&report);
    let s = subtask(&report, "app/models.py");
    assert_eq!(s.status, SubtaskStatus::Accepted, "{s:#?}");
    assert_eq!(
        (s.start_tier.as_str(), s.final_tier.as_str(), s.attempts),
        ("haiku", "sonnet", 2),
        "{s:#?}"
    );
    assert!(report.escalations >= 1, "{report:#?}");
    assert_accepted_first_try(&report, "app/views.py", "haiku");

    let attempts = f.attempts_for(&report.job_id, "app/models.py");
    assert_eq!(
        tiers(&attempts),
        vec![
            ("haiku".into(), "failed".into(), Some("syntax_error".into())),
            ("sonnet".into(), "passed".into(), None)
        ]
    );
    let requests = f.sim.worker_requests_for("app/models.py");
    assert_eq!(
        models_of(&requests),
        vec![HAIKU.to_owned(), SONNET.to_owned()]
    );
    assert_eq!(
        requests[1].attempt,
        Some(2),
        "the retry carries the failure as feedback"
    );
    assert!(
        f.events(&report.job_id)
            .iter()
            .any(|(k, m)| k == "escalated" && m.contains("haiku -> sonnet"))
    );

    f.cadre(&["apply", &report.job_id.to_string()])
        .expect_code(0);
    assert_eq!(
        read_file(&f.ws, "app/models.py"),
        f.case("app/models.py").expected()
    );
}

#[test]
fn sonnet_fails_twice_then_opus_succeeds() {
    let cases = vec![
        rename_module("app/service.py", "lookup")
            .complexity("generative")
            .script(SONNET, &["mismatch", "syntax"]),
    ];
    let f = Fixture::new(&ScenarioSpec::new(&cases));
    let (out, report) = f.run_json(&[], &[]);
    out.expect_code(0);
    assert_all_terminal(&report);
    let s = subtask(&report, "app/service.py");
    assert_eq!(s.status, SubtaskStatus::Accepted, "{s:#?}");
    assert_eq!(
        (s.start_tier.as_str(), s.final_tier.as_str(), s.attempts),
        ("sonnet", "opus", 3),
        "{s:#?}"
    );
    assert_eq!(report.escalations, 1);
    assert_eq!(
        tiers(&f.attempts_for(&report.job_id, "app/service.py")),
        vec![
            (
                "sonnet".into(),
                "failed".into(),
                Some("edit_mismatch".into())
            ),
            (
                "sonnet".into(),
                "failed".into(),
                Some("syntax_error".into())
            ),
            ("opus".into(), "passed".into(), None)
        ]
    );
    let requests = f.sim.worker_requests_for("app/service.py");
    assert_eq!(
        models_of(&requests),
        vec![SONNET.to_owned(), SONNET.to_owned(), OPUS.to_owned()]
    );
    let feedback: Vec<Option<u32>> = requests.iter().map(|r| r.attempt).collect();
    assert_eq!(
        feedback,
        vec![Some(1), Some(2), Some(3)],
        "each retry carries every earlier failure"
    );
    let diff = f.diff(&report.job_id);
    assert!(
        diff.contains("+def lookup(uid: AccountId) -> int:"),
        "{diff}"
    );
}

#[test]
fn opus_failure_ends_in_needs_human_and_the_rest_is_kept() {
    let cases = vec![
        models_file(),
        rename_module("app/views.py", "show"),
        rename_module("app/policy.py", "allowed")
            .complexity("reasoning")
            .script(OPUS, &["syntax"]),
    ];
    let f = Fixture::new(&ScenarioSpec::new(&cases));
    let (out, report) = f.run_json(&[], &[]);
    out.expect_code(2);
    assert_eq!(report.status, JobStatus::NeedsHuman);
    assert_all_terminal(&report);
    let s = subtask(&report, "app/policy.py");
    assert_eq!(s.status, SubtaskStatus::NeedsHuman, "{s:#?}");
    assert_eq!(
        (s.start_tier.as_str(), s.final_tier.as_str(), s.attempts),
        ("opus", "opus", 1),
        "{s:#?}"
    );
    assert!(
        s.reason.contains("syntax"),
        "the reason says what failed: {s:#?}"
    );
    assert!(
        report.reason.contains("app/policy.py"),
        "{:?}",
        report.reason
    );
    assert_accepted_first_try(&report, "app/models.py", "haiku");
    assert_accepted_first_try(&report, "app/views.py", "haiku");
    assert_eq!(
        models_of(&f.sim.worker_requests_for("app/policy.py")),
        vec![OPUS.to_owned()],
        "opus is the last tier"
    );

    let diff = f.diff(&report.job_id);
    assert!(!diff.contains("app/policy.py"), "{diff}");
    assert!(diff.contains("+class AccountId:"), "{diff}");
    // A needs_human job can still be applied: the accepted files are written, the other is not.
    f.cadre(&["apply", &report.job_id.to_string()])
        .expect_code(0);
    assert_eq!(
        read_file(&f.ws, "app/models.py"),
        f.case("app/models.py").expected()
    );
    assert_eq!(
        read_file(&f.ws, "app/policy.py"),
        f.case("app/policy.py").original
    );
}

#[test]
fn circular_fix_escalates_at_once() {
    let cases = vec![
        rename_module("app/service.py", "lookup")
            .complexity("generative")
            .script(SONNET, &["noop"]),
    ];
    let f = Fixture::new(&ScenarioSpec::new(&cases));
    let (out, report) = f.run_json(&[], &[]);
    out.expect_code(0);
    assert_all_terminal(&report);
    let s = subtask(&report, "app/service.py");
    assert_eq!(s.status, SubtaskStatus::Accepted, "{s:#?}");
    assert_eq!(
        (s.start_tier.as_str(), s.final_tier.as_str(), s.attempts),
        ("sonnet", "opus", 2),
        "{s:#?}"
    );
    assert_eq!(
        tiers(&f.attempts_for(&report.job_id, "app/service.py")),
        vec![
            (
                "sonnet".into(),
                "failed".into(),
                Some("circular_fix".into())
            ),
            ("opus".into(), "passed".into(), None)
        ]
    );
    // No second sonnet attempt although sonnet is allowed two.
    assert_eq!(
        models_of(&f.sim.worker_requests_for("app/service.py")),
        vec![SONNET.to_owned(), OPUS.to_owned()]
    );
}

#[test]
fn integration_check_failure_sends_the_blamed_file_back() {
    let cases = vec![
        models_file(),
        rename_module("app/views.py", "show").script(HAIKU, &["partial"]),
    ];
    let f = Fixture::new(&ScenarioSpec::new(&cases));
    // Fails, naming the file, while any UserId is left in the staged tree.
    let (out, report) = f.run_json(&[], &["--check", "! grep -rn UserId app/"]);
    out.expect_code(0);
    assert_eq!(report.status, JobStatus::Completed);
    assert_all_terminal(&report);
    let s = subtask(&report, "app/views.py");
    assert_eq!(s.status, SubtaskStatus::Accepted, "{s:#?}");
    assert_eq!(
        (s.start_tier.as_str(), s.final_tier.as_str(), s.attempts),
        ("haiku", "sonnet", 2),
        "{s:#?}"
    );
    assert_accepted_first_try(&report, "app/models.py", "haiku");

    let attempts = f.attempts_for(&report.job_id, "app/views.py");
    assert_eq!(
        tiers(&attempts),
        vec![
            (
                "haiku".into(),
                "failed".into(),
                Some("integration_blamed".into())
            ),
            ("sonnet".into(), "passed".into(), None)
        ]
    );
    assert!(
        attempts[0]
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("app/views.py"),
        "{attempts:#?}"
    );
    let checks: Vec<String> = f
        .events(&report.job_id)
        .into_iter()
        .filter(|(k, _)| k == "integration_check")
        .map(|(_, m)| m)
        .collect();
    assert_eq!(
        checks,
        vec![
            "integration check failed".to_owned(),
            "integration check passed".to_owned()
        ]
    );
    assert_eq!(
        models_of(&f.sim.worker_requests_for("app/views.py")),
        vec![HAIKU.to_owned(), SONNET.to_owned()]
    );
    assert_eq!(
        models_of(&f.sim.worker_requests_for("app/models.py")),
        vec![HAIKU.to_owned()],
        "the unblamed file is not redone"
    );

    f.cadre(&["apply", &report.job_id.to_string()])
        .expect_code(0);
    for case in &cases {
        assert_eq!(read_file(&f.ws, &case.path), case.expected());
    }
}

#[test]
fn reviewer_rejects_a_partial_change_and_the_next_tier_fixes_it() {
    let cases = vec![
        models_file(),
        rename_module("app/views.py", "show").script(HAIKU, &["partial"]),
    ];
    let f = Fixture::new(&ScenarioSpec::new(&cases));
    let (out, report) = f.run_json(&[], &[]);
    out.expect_code(0);
    assert_eq!(report.status, JobStatus::Completed);
    assert_all_terminal(&report);
    let s = subtask(&report, "app/views.py");
    assert_eq!(s.status, SubtaskStatus::Accepted, "{s:#?}");
    assert_eq!(
        (s.start_tier.as_str(), s.final_tier.as_str(), s.attempts),
        ("haiku", "sonnet", 2),
        "{s:#?}"
    );
    assert!(report.escalations >= 1);

    let attempts = f.attempts_for(&report.job_id, "app/views.py");
    assert_eq!(
        tiers(&attempts),
        vec![
            (
                "haiku".into(),
                "failed".into(),
                Some("review_rejected".into())
            ),
            ("sonnet".into(), "passed".into(), None)
        ]
    );
    assert!(
        attempts[0]
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("reviewer"),
        "{attempts:#?}"
    );
    let verdicts: Vec<String> = f
        .events(&report.job_id)
        .into_iter()
        .filter(|(k, _)| k == "review_verdict")
        .map(|(_, m)| m)
        .collect();
    assert!(
        verdicts
            .iter()
            .any(|m| m.starts_with("app/views.py: revise")),
        "{verdicts:#?}"
    );
    assert!(
        verdicts
            .iter()
            .any(|m| m.starts_with("app/views.py: approve")),
        "{verdicts:#?}"
    );
    let reviews = f
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.role == Some(SimRole::Reviewer) && r.status == 200)
        .count();
    assert_eq!(
        reviews, 2,
        "one review of both files, one of the redone file"
    );
    assert!(
        f.diff(&report.job_id)
            .contains("+def show(uid: AccountId) -> int:")
    );
}

#[test]
fn reviewer_forced_revision_is_sent_back_once_then_accepted() {
    let cases = vec![models_file(), rename_module("app/views.py", "show")];
    let f = Fixture::new(&ScenarioSpec::new(&cases).force_revise("app/views.py", 1));
    let (out, report) = f.run_json(&[], &[]);
    let attempts = f.attempts_for(&report.job_id, "app/views.py");
    let events = f.events(&report.job_id);
    let context = format!(
        "{}\nattempts: {attempts:#?}\nevents: {events:#?}",
        out.dump()
    );
    let verdicts: Vec<&String> = events
        .iter()
        .filter(|(k, _)| k == "review_verdict")
        .map(|(_, m)| m)
        .collect();
    assert!(
        verdicts
            .iter()
            .any(|m| m.starts_with("app/views.py: revise")),
        "{context}"
    );
    assert_eq!(
        attempts.first().and_then(|a| a.failure.as_deref()),
        Some("review_rejected"),
        "{context}"
    );
    assert_all_terminal(&report);
    assert_eq!(out.code, Some(0), "{context}");
    assert_eq!(report.status, JobStatus::Completed, "{context}");
    let s = subtask(&report, "app/views.py");
    assert_eq!(s.status, SubtaskStatus::Accepted, "{context}");
    assert!(s.attempts >= 2, "{context}");
    assert!(
        f.diff(&report.job_id)
            .contains("+def show(uid: AccountId) -> int:")
    );
}
