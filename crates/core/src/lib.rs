//! cadre-core: the job pipeline.
//!
//! Owns everything between "an instruction and a workspace" and "a patch and a
//! report": indexing the workspace ([`index`]), planning through the planner
//! role, static routing ([`routing`]), the bounded worker pool with per-tier
//! limits, rate-limit backoff and the cache-warming first call, validation of
//! every attempt ([`edit`], [`syntax`], [`checks`]), the escalation cascade,
//! the integration check in a staging tree ([`stage`]), the reviewer's rounds,
//! pricing ([`pricing`]) and the report.
//!
//! Key decision: every model call is recorded in the store, keyed by the
//! SHA-256 of its request, before anything acts on it. A resumed job consults
//! that ledger before sending, so a restart never repeats a finished call and
//! never loses one; an attempt's result is committed before its subtask moves
//! on. The cascade state of a subtask is a pure function of its recorded
//! attempts, which is what makes resume exact.
#![warn(missing_docs)]

mod batcher;
pub mod checks;
pub mod diff;
pub mod edit;
mod engine;
pub mod index;
pub mod learn;
pub mod paths;
pub mod pricing;
pub mod prompts;
mod report;
pub mod routing;
pub mod stage;
pub mod syntax;

pub use engine::{Engine, JobOptions, PlanPreview, PlannedRoute, Providers};
pub use report::ReportBuilder;
pub use stage::ApplyOutcome;

/// Errors of the pipeline.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A path from a model or client broke the workspace rules; nothing was written.
    #[error("path {path:?} rejected: {reason}")]
    PathRejected {
        /// The offending path (shortened).
        path: String,
        /// Which rule it broke.
        reason: String,
    },
    /// Bad input from the user (flags, globs, workspace).
    #[error("{0}")]
    InvalidInput(String),
    /// A filesystem or process problem.
    #[error("{0}")]
    Io(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] cadre_store::Error),
    /// A job or subtask that should exist does not.
    #[error("{0} not found")]
    NotFound(String),
    /// The configuration does not allow what was asked.
    #[error("configuration: {0}")]
    Config(String),
    /// A model provider could not be built (e.g. missing API key).
    #[error(transparent)]
    Provider(#[from] cadre_llm::Error),
    /// The budget cannot cover the next call the job needs; the job ends `needs_human`.
    #[error("{0}")]
    BudgetExhausted(String),
    /// The reviewer could not be asked or its answer was unusable.
    #[error("{0}")]
    Review(String),
    /// The planner failed, so the job cannot run.
    #[error("planning failed: {0}")]
    Planning(String),
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
