//! State machines, routing classes and event kinds, each with a stable string form.

use serde::{Deserialize, Serialize};

use crate::{JobId, SubtaskId};

/// Declares a fieldless enum with `as_str`, `Display`, `FromStr` and snake_case serde.
/// Paths are qualified, so any module of the crate can use it.
macro_rules! string_enum {
    (
        $(#[$doc:meta])* $name:ident, $what:literal {
            $( $(#[$vdoc:meta])* $variant:ident => $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
            ::serde::Serialize, ::serde::Deserialize,
        )]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $( $(#[$vdoc])* #[serde(rename = $text)] $variant ),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stable string form used in the store, the API and reports.
            pub fn as_str(&self) -> &'static str {
                match self { $( $name::$variant => $text ),+ }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::Error;
            fn from_str(s: &str) -> ::std::result::Result<Self, $crate::Error> {
                match s {
                    $( $text => Ok($name::$variant), )+
                    _ => Err($crate::Error::InvalidValue {
                        what: $what,
                        value: s.to_owned(),
                        expected: concat!($($text, " "),+),
                    }),
                }
            }
        }
    };
}
pub(crate) use string_enum;

string_enum!(
    /// How much thinking a subtask needs; picks the default start tier.
    Complexity, "complexity" {
        /// Renames, imports, formatting, config: the cheapest tier.
        Mechanical => "mechanical",
        /// New functions, tests, docs, standard features: the middle tier.
        Generative => "generative",
        /// Architecture, subtle bugs, security: the top tier.
        Reasoning => "reasoning",
    }
);

string_enum!(
    /// What a wrong answer costs; `high` raises the start tier.
    ErrorCost, "error cost" {
        /// Cheap to iterate on.
        Low => "low",
        /// Production-critical or security-sensitive.
        High => "high",
    }
);

string_enum!(
    /// The part a model plays in a job.
    Role, "role" {
        /// Splits the instruction into per-file subtasks.
        Planner => "planner",
        /// Edits one file.
        Worker => "worker",
        /// Reads the combined change and approves or asks for revisions.
        Reviewer => "reviewer",
    }
);

string_enum!(
    /// A job's lifecycle: `queued → planning → running → integrating → reviewing → completed`.
    JobStatus, "job status" {
        /// Waiting for a runner.
        Queued => "queued",
        /// The planner is splitting the instruction.
        Planning => "planning",
        /// Workers are editing files.
        Running => "running",
        /// The combined change is being checked.
        Integrating => "integrating",
        /// The reviewer is reading the combined change.
        Reviewing => "reviewing",
        /// Every subtask is accepted or skipped and the patch is ready.
        Completed => "completed",
        /// Some subtask could not be finished by any tier, or the budget ran out.
        NeedsHuman => "needs_human",
        /// The job could not run (bad plan, provider refused, internal error).
        Failed => "failed",
        /// Cancelled by a user.
        Cancelled => "cancelled",
    }
);

impl JobStatus {
    /// True for states a job never leaves.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::NeedsHuman | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

string_enum!(
    /// A subtask's lifecycle: `pending → running → accepted`, or a terminal failure state.
    SubtaskStatus, "subtask status" {
        /// Not yet started (or sent back by integration/review).
        Pending => "pending",
        /// An attempt is in flight.
        Running => "running",
        /// The latest attempt passed every check.
        Accepted => "accepted",
        /// Every tier failed, or the budget ran out.
        NeedsHuman => "needs_human",
        /// Never sent to a model (binary, oversize, rejected path...).
        Skipped => "skipped",
        /// The job was cancelled first.
        Cancelled => "cancelled",
    }
);

impl SubtaskStatus {
    /// True for states that need no further work in this job run.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            SubtaskStatus::Accepted
                | SubtaskStatus::NeedsHuman
                | SubtaskStatus::Skipped
                | SubtaskStatus::Cancelled
        )
    }
}

string_enum!(
    /// How one attempt (one model call and its validation) ended.
    AttemptOutcome, "attempt outcome" {
        /// The call is in flight (or was when the process died).
        Running => "running",
        /// The edit applied and passed every per-file check.
        Passed => "passed",
        /// The call or its validation failed; see the attempt's failure kind.
        Failed => "failed",
        /// The process stopped while the call was in flight; its result is unknown.
        Interrupted => "interrupted",
    }
);

string_enum!(
    /// Why an attempt failed. Each is fed back to the next attempt.
    FailureKind, "failure kind" {
        /// The response had no usable edit (no tool call, wrong tool, empty).
        NoUsableEdit => "no_usable_edit",
        /// The response could not be parsed (bad JSON, schema violation, truncation).
        MalformedOutput => "malformed_output",
        /// An edit's `old` text was missing or matched more than once.
        EditMismatch => "edit_mismatch",
        /// The edited file has syntax errors the original did not.
        SyntaxError => "syntax_error",
        /// The per-file check command failed.
        FileCheckFailed => "file_check_failed",
        /// The edit reproduced an earlier attempt or reverted to the original.
        CircularFix => "circular_fix",
        /// The integration check blamed this file.
        IntegrationBlamed => "integration_blamed",
        /// The reviewer asked for a revision.
        ReviewRejected => "review_rejected",
        /// The model provider failed after retries.
        ProviderError => "provider_error",
        /// The edit touched a path outside the subtask.
        PathRejected => "path_rejected",
    }
);

string_enum!(
    /// What happened, as recorded in the event log.
    EventKind, "event kind" {
        /// A job changed state.
        JobStatus => "job_status",
        /// A subtask changed state.
        SubtaskStatus => "subtask_status",
        /// A file was left out of the job (binary, oversize, non-UTF-8).
        FileSkipped => "file_skipped",
        /// A path from a model or client was refused.
        PathRejected => "path_rejected",
        /// The router chose a start tier.
        Routed => "routed",
        /// A model call started.
        AttemptStarted => "attempt_started",
        /// A model call and its validation finished.
        AttemptFinished => "attempt_finished",
        /// A subtask moved up a tier.
        Escalated => "escalated",
        /// The provider pushed back (429/529) and dispatch slowed down.
        Backoff => "backoff",
        /// The integration check ran.
        IntegrationCheck => "integration_check",
        /// The reviewer gave a verdict on a file.
        ReviewVerdict => "review_verdict",
        /// The budget stopped a call from being sent.
        BudgetExhausted => "budget_exhausted",
        /// The job's expected cost against its budget, before the fan-out.
        BudgetEstimate => "budget_estimate",
        /// The job's patch was written to the workspace.
        Applied => "applied",
        /// A note that fits no other kind.
        Note => "note",
        /// A plan selector expanded over the index (its match count and samples).
        SelectorExpanded => "selector_expanded",
        /// A plan selector was refused (a hostile glob, a bad pattern), with why.
        SelectorRejected => "selector_rejected",
        /// The planner searched the index (its pattern, match count and sample), or was refused.
        PlannerSearch => "planner_search",
    }
);

/// One entry of a job's event log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobEvent {
    /// Monotonic sequence number, unique across the store (the SSE event id).
    pub seq: i64,
    /// The job it belongs to.
    pub job_id: JobId,
    /// The subtask it concerns, if any.
    pub subtask_id: Option<SubtaskId>,
    /// What happened.
    pub kind: EventKind,
    /// A one-line human explanation ("src/db.rs: reasoning/high -> opus").
    pub message: String,
    /// Structured detail for scripts.
    pub data: serde_json::Value,
    /// Unix seconds.
    pub at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_forms_round_trip() {
        for s in JobStatus::ALL {
            assert_eq!(s.as_str().parse::<JobStatus>().unwrap(), *s);
        }
        for s in FailureKind::ALL {
            assert_eq!(s.as_str().parse::<FailureKind>().unwrap(), *s);
        }
        assert_eq!(
            serde_json::to_string(&SubtaskStatus::NeedsHuman).unwrap(),
            "\"needs_human\""
        );
        let err = "bogus".parse::<Complexity>().unwrap_err();
        assert!(err.to_string().contains("mechanical generative reasoning"));
    }

    #[test]
    fn terminal_states() {
        assert!(JobStatus::Completed.is_terminal());
        assert!(!JobStatus::Running.is_terminal());
        assert!(SubtaskStatus::Skipped.is_terminal());
        assert!(!SubtaskStatus::Pending.is_terminal());
    }
}
