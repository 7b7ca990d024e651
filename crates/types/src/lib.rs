//! cadre-types: the shared vocabulary of cadre.
//!
//! This crate owns the domain types every other crate speaks: identifiers
//! ([`JobId`], [`SubtaskId`], [`AttemptId`]), the job and subtask state
//! machines ([`JobStatus`], [`SubtaskStatus`]), the routing classes
//! ([`Complexity`], [`ErrorCost`]), the plan a planner submits ([`Plan`]), the
//! edits a worker returns ([`WorkerChange`]), the events a job emits
//! ([`EventKind`], [`JobEvent`]), the job report ([`JobReport`]) and the
//! daemon's HTTP API bodies ([`api`]), which the server and its clients share.
//!
//! It is a leaf crate: no I/O, no async runtime, no database or HTTP types, so
//! the store, the engine, the daemon and the CLI can all share it without
//! dragging each other in. Every enum that crosses a boundary has a stable
//! snake_case string form (`as_str` / `FromStr`) used by the store and the API.
#![warn(missing_docs)]

pub mod api;
mod ids;
mod plan;
mod report;
mod status;

pub use ids::{AttemptId, JobId, SubtaskId};
pub use plan::{
    EditOp, Plan, PlanSelector, PlannedSubtask, ReviewVerdict, SelectorMatch, SubtaskAction,
    Verdict, WorkerChange,
};
pub use report::{CacheCalls, CodemodSummary, CostSummary, JobReport, SubtaskReport, TokenTotals};
pub use status::{
    AttemptOutcome, Complexity, ErrorCost, EventKind, FailureKind, JobEvent, JobStatus, Role,
    SubtaskStatus,
};

/// Errors from parsing the string forms of cadre's types.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A string is not one of the allowed values of an enum. Returned by every
    /// `FromStr` impl in this crate; the caller should surface `value` and `expected`.
    #[error("invalid {what} {value:?}: expected one of {expected}")]
    InvalidValue {
        /// What was being parsed (e.g. "job status").
        what: &'static str,
        /// The offending input.
        value: String,
        /// The allowed values, comma-separated.
        expected: &'static str,
    },
    /// An identifier is not a valid UUID.
    #[error("invalid {what} id {value:?}: {source}")]
    InvalidId {
        /// What kind of id.
        what: &'static str,
        /// The offending input.
        value: String,
        /// The UUID parser's complaint.
        source: uuid::Error,
    },
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
