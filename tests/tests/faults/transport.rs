//! Transport faults: 429 with `retry-after`, a 529 burst, 500s beyond the
//! retry budget, a connection dropped mid-body, an answer slower than the
//! timeout, a malformed JSON body.

use cadre_e2e::{
    FaultKind, FaultSpec, Fixture, ScenarioSpec, SimRole, assert_all_terminal, assert_no_panic,
    snapshot, subtask,
};
use cadre_types::{JobStatus, SubtaskStatus};
use pretty_assertions::assert_eq;

use crate::invariants::{
    Before, TARGET, apply_and_check, cases, fault, outside_snapshot, run_checked, worker_log,
};

#[test]
fn rate_limit_429_with_retry_after_is_waited_out() {
    let spec =
        ScenarioSpec::new(&cases()).fault(fault(FaultKind::RateLimit).times(2).retry_after_secs(1));
    let f = Fixture::new(&spec);
    let report = run_checked(&f, &[]);
    assert_eq!(report.status, JobStatus::Completed);
    let s = subtask(&report, TARGET);
    assert_eq!(
        (s.status, s.attempts),
        (SubtaskStatus::Accepted, 1),
        "{s:#?}"
    );
    let statuses: Vec<u16> = worker_log(&f, TARGET).iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![429, 429, 200]);
    let backoff = f
        .events(&report.job_id)
        .into_iter()
        .any(|(kind, _)| kind == "backoff");
    assert!(backoff, "the pushback is recorded as an event");
    apply_and_check(&f, &report);
}

#[test]
fn overloaded_529_burst_on_every_worker_is_ridden_out() {
    let spec = ScenarioSpec::new(&cases()).fault(
        FaultSpec::new(FaultKind::Overloaded)
            .role(SimRole::Worker)
            .times(5)
            .retry_after_secs(1),
    );
    let f = Fixture::new(&spec);
    let report = run_checked(&f, &[]);
    assert_eq!(report.status, JobStatus::Completed);
    for s in &report.subtasks {
        assert_eq!(s.status, SubtaskStatus::Accepted, "{s:#?}");
    }
    let burst = f.sim.requests().iter().filter(|r| r.status == 529).count();
    assert_eq!(burst, 5);
}

#[test]
fn server_error_500_beyond_the_retry_budget_fails_one_attempt_then_escalates() {
    // max_retries = 2: three 500s exhaust the haiku attempt; sonnet then succeeds.
    let spec = ScenarioSpec::new(&cases()).fault(fault(FaultKind::ServerError).times(3));
    let f = Fixture::new(&spec);
    let report = run_checked(&f, &[]);
    assert_eq!(report.status, JobStatus::Completed);
    let s = subtask(&report, TARGET);
    assert_eq!(s.status, SubtaskStatus::Accepted, "{s:#?}");
    let attempts: Vec<(String, String, Option<String>)> = f
        .attempt_costs(&report.job_id)
        .into_iter()
        .filter(|a| a.path.as_deref() == Some(TARGET))
        .map(|a| (a.tier, a.outcome, a.failure))
        .collect();
    assert_eq!(
        attempts,
        vec![
            (
                "haiku".into(),
                "failed".into(),
                Some("provider_error".into())
            ),
            ("sonnet".into(), "passed".into(), None),
        ]
    );
    let statuses: Vec<u16> = worker_log(&f, TARGET).iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![500, 500, 500, 200]);
    apply_and_check(&f, &report);
}

#[test]
fn connection_dropped_mid_body_is_retried() {
    let spec = ScenarioSpec::new(&cases()).fault(fault(FaultKind::DropConnection).times(1));
    let f = Fixture::new(&spec);
    let report = run_checked(&f, &[]);
    assert_eq!(report.status, JobStatus::Completed);
    let s = subtask(&report, TARGET);
    assert_eq!(
        (s.status, s.attempts),
        (SubtaskStatus::Accepted, 1),
        "{s:#?}"
    );
    let log = worker_log(&f, TARGET);
    assert_eq!(log.len(), 2, "{log:#?}");
    assert_eq!(log[0].fault.as_deref(), Some("drop_connection"));
    assert!(!log[0].complete);
    apply_and_check(&f, &report);
}

#[test]
fn a_response_slower_than_the_timeout_is_abandoned_and_retried() {
    let spec = ScenarioSpec::new(&cases()).fault(fault(FaultKind::Slow).times(1).delay_ms(2500));
    let f = Fixture::new(&spec);
    let before = Before::take(&f);
    let (out, report) = f.run_json(&["-c", "providers.anthropic.timeout_secs=1"], &[]);
    // The slow answer was cut off by the client: the fault fired once, and
    // (the connection being gone) the sim never logged the request; the
    // retry is the only logged worker request for the file.
    let faults: serde_json::Value = serde_json::from_str(&f.sim.get("/sim/faults")).unwrap();
    assert_eq!(faults["faults"][0]["applied"], 1, "{faults}");
    let log = worker_log(&f, TARGET);
    assert_eq!(
        log.iter()
            .map(|r| (r.status, r.complete))
            .collect::<Vec<_>>(),
        vec![(200, true)],
        "{log:#?}"
    );
    let attempts = f.attempt_costs(&report.job_id);
    let recorded: usize = attempts.iter().map(|a| a.calls).sum();
    let answered = f
        .sim
        .requests()
        .iter()
        .filter(|r| r.path == "/v1/messages" && r.status == 200 && r.complete)
        .count();
    assert_eq!(recorded, answered);
    assert!(matches!(out.code, Some(0) | Some(2)), "{}", out.dump());
    assert_no_panic(&out);
    assert_all_terminal(&report);
    assert_eq!(report.status, JobStatus::Completed, "{}", out.dump());
    let s = subtask(&report, TARGET);
    assert_eq!(
        (s.status, s.attempts),
        (SubtaskStatus::Accepted, 1),
        "{s:#?}"
    );
    assert_eq!(snapshot(&f.ws), before.ws);
    assert_eq!(outside_snapshot(&f), before.outside);
    apply_and_check(&f, &report);
}

#[test]
fn malformed_json_body_fails_the_attempt_with_a_reason_and_escalates() {
    let spec = ScenarioSpec::new(&cases()).fault(fault(FaultKind::MalformedJson).times(1));
    let f = Fixture::new(&spec);
    let report = run_checked(&f, &[]);
    assert_eq!(report.status, JobStatus::Completed);
    let s = subtask(&report, TARGET);
    assert_eq!(s.status, SubtaskStatus::Accepted, "{s:#?}");
    let log = worker_log(&f, TARGET);
    assert_eq!(log[0].fault.as_deref(), Some("malformed_json"));
    let first = f
        .attempt_costs(&report.job_id)
        .into_iter()
        .find(|a| a.path.as_deref() == Some(TARGET))
        .unwrap();
    // Either the client retried the request (one attempt, two requests) or
    // the attempt failed with the transport's reason and the cascade moved on.
    if s.attempts == 1 {
        assert_eq!(log.len(), 2, "{log:#?}");
    } else {
        assert_eq!(
            (first.outcome.as_str(), first.failure.as_deref()),
            ("failed", Some("provider_error")),
            "{first:#?}"
        );
        assert_eq!(
            first.calls, 0,
            "a broken body is not a recorded answer: {first:#?}"
        );
    }
    apply_and_check(&f, &report);
}

#[test]
fn a_review_call_failing_past_the_client_retries_is_sent_again_and_the_job_completes() {
    // max_retries = 2: three 500s exhaust the first review call's send; the
    // review sends the chunk again as a second reviewer attempt.
    let spec = ScenarioSpec::new(&cases()).fault(
        FaultSpec::new(FaultKind::ServerError)
            .role(SimRole::Reviewer)
            .times(3),
    );
    let f = Fixture::new(&spec);
    let report = run_checked(&f, &[]);
    assert_eq!(report.status, JobStatus::Completed, "{report:#?}");
    for s in &report.subtasks {
        assert_eq!(s.status, SubtaskStatus::Accepted, "{s:#?}");
    }
    let reviewer_statuses: Vec<u16> = f
        .sim
        .requests()
        .iter()
        .filter(|r| r.role == Some(SimRole::Reviewer))
        .map(|r| r.status)
        .collect();
    assert_eq!(reviewer_statuses, vec![500, 500, 500, 200]);
    let reviews: Vec<(String, Option<String>)> = f
        .attempt_costs(&report.job_id)
        .into_iter()
        .filter(|a| a.role == "reviewer")
        .map(|a| (a.outcome, a.failure))
        .collect();
    assert_eq!(
        reviews,
        vec![
            ("failed".into(), Some("provider_error".into())),
            ("passed".into(), None),
        ]
    );
    apply_and_check(&f, &report);
}

#[test]
fn a_review_call_that_keeps_failing_fails_the_job_after_three_sends() {
    // Three sends of three requests each (max_retries = 2), all 500.
    let spec = ScenarioSpec::new(&cases()).fault(
        FaultSpec::new(FaultKind::ServerError)
            .role(SimRole::Reviewer)
            .times(9),
    );
    let f = Fixture::new(&spec);
    let (out, report) = f.run_json(&[], &[]);
    assert_no_panic(&out);
    assert_eq!(report.status, JobStatus::Failed, "{}", out.dump());
    assert!(
        report
            .reason
            .contains("review failed after 3 calls: gave up after 3 attempts: HTTP 500"),
        "{}",
        report.reason
    );
    let reviews: Vec<String> = f
        .attempt_costs(&report.job_id)
        .into_iter()
        .filter(|a| a.role == "reviewer")
        .map(|a| a.outcome)
        .collect();
    assert_eq!(reviews, vec!["failed", "failed", "failed"]);
    let reviewer_requests = f
        .sim
        .requests()
        .iter()
        .filter(|r| r.role == Some(SimRole::Reviewer))
        .count();
    assert_eq!(reviewer_requests, 9);
}
