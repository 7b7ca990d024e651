//! Model-output faults on the first haiku answer: a truncated tool call, a
//! schema-violating input, the wrong tool, an empty answer. Each fails that
//! attempt with its reason (the call recorded and paid) and sonnet fixes it.

use cadre_e2e::{FaultKind, Fixture, HAIKU, ScenarioSpec, subtask};
use cadre_types::{JobStatus, SubtaskStatus};
use pretty_assertions::assert_eq;

use crate::invariants::{TARGET, apply_and_check, cases, fault, run_checked, worker_log};

/// A model-output fault on the first haiku answer for TARGET: that attempt
/// fails with `failure` (its call recorded and paid), sonnet fixes it.
fn model_output_fault(kind: FaultKind, failure: &str, reason_mentions: &str) {
    let spec = ScenarioSpec::new(&cases()).fault(fault(kind).model(HAIKU).times(1));
    let f = Fixture::new(&spec);
    let report = run_checked(&f, &[]);
    assert_eq!(report.status, JobStatus::Completed);
    let s = subtask(&report, TARGET);
    assert_eq!(
        (
            s.status,
            s.start_tier.as_str(),
            s.final_tier.as_str(),
            s.attempts
        ),
        (SubtaskStatus::Accepted, "haiku", "sonnet", 2),
        "{s:#?}"
    );
    let first = f
        .attempt_costs(&report.job_id)
        .into_iter()
        .find(|a| a.path.as_deref() == Some(TARGET))
        .unwrap_or_else(|| panic!("no attempt at {TARGET}"));
    assert_eq!(
        (
            first.tier.as_str(),
            first.outcome.as_str(),
            first.failure.as_deref()
        ),
        ("haiku", "failed", Some(failure)),
        "{first:#?}"
    );
    assert_eq!(
        first.calls, 1,
        "the malformed answer was paid for: {first:#?}"
    );
    assert!(first.cost_usd > 0.0, "{first:#?}");
    let error = first.error.clone().unwrap_or_default().to_lowercase();
    assert!(
        error.contains(reason_mentions),
        "the reason should mention {reason_mentions:?}: {first:#?}"
    );
    // Sonnet was told what went wrong.
    let log = worker_log(&f, TARGET);
    assert_eq!(log.last().and_then(|r| r.attempt), Some(2), "{log:#?}");
    apply_and_check(&f, &report);
}

#[test]
fn max_tokens_with_a_truncated_tool_call_is_an_attempt_failure() {
    model_output_fault(FaultKind::Truncated, "malformed_output", "max_tokens");
}

#[test]
fn tool_input_violating_the_schema_is_an_attempt_failure() {
    model_output_fault(FaultKind::Schema, "malformed_output", "edit");
}

#[test]
fn the_wrong_tool_is_an_attempt_failure() {
    model_output_fault(FaultKind::WrongTool, "no_usable_edit", "submit_plan");
}

#[test]
fn an_empty_response_is_an_attempt_failure() {
    model_output_fault(FaultKind::Empty, "no_usable_edit", "no");
}
