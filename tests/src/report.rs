//! Reading `cadre ... --json` reports and the assertions tests make on them.

use cadre_types::{JobReport, SubtaskReport, SubtaskStatus};

use crate::process::CmdOutput;

/// Parses `cadre run|resume ... --json` stdout as the job report.
pub fn parse_report(out: &CmdOutput) -> JobReport {
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not a job report ({e})\n{}", out.dump()))
}

/// The report row for `path`.
pub fn subtask<'a>(report: &'a JobReport, path: &str) -> &'a SubtaskReport {
    report
        .subtasks
        .iter()
        .find(|s| s.path == path)
        .unwrap_or_else(|| {
            panic!(
                "no subtask for {path} in the report: {:#?}",
                report.subtasks
            )
        })
}

/// Every subtask of a finished job is in a terminal state.
pub fn assert_all_terminal(report: &JobReport) {
    for s in &report.subtasks {
        assert!(
            s.status.is_terminal(),
            "{} ended {} (not terminal): {s:#?}",
            s.path,
            s.status
        );
    }
    assert!(
        report.status.is_terminal(),
        "job ended {} (not terminal)",
        report.status
    );
}

/// The subtask was accepted at `tier` on its first attempt.
pub fn assert_accepted_first_try(report: &JobReport, path: &str, tier: &str) {
    let s = subtask(report, path);
    assert_eq!(s.status, SubtaskStatus::Accepted, "{path}: {s:#?}");
    assert_eq!(
        (s.start_tier.as_str(), s.final_tier.as_str(), s.attempts),
        (tier, tier, 1),
        "{path}: {s:#?}"
    );
}

/// Panics when a command's stderr shows a Rust panic.
pub fn assert_no_panic(out: &CmdOutput) {
    assert!(
        !out.stderr.contains("panicked"),
        "the command panicked\n{}",
        out.dump()
    );
}
