//! Routing that learns (docs/architecture.md sections 5 and 13): an estimator of where a
//! cascade should start, fed either by tables of real per-task outcomes
//! (`cadre routing replay`) or by the store's own attempt history (live
//! adaptive routing).
//!
//! Since the top tier costs only 1.67x the middle one, starting cheap does
//! not always pay: a failed cheap attempt is paid for and then the dear one
//! too. So, per class of work, [`estimate`] computes the chance of success
//! at each tier given that the tiers before it failed, the cost of a success
//! and of a failure, and for each start tier the expected cost per solved
//! task of the cascade starting there; a Beta prior keeps thin evidence
//! honest and a minimum sample count keeps the static rule until history is
//! long enough. Everything here is pure: no I/O, no clock, seeded randomness.
//!
//! - [`live`]: [`learned_start`] for the engine's router, over
//!   [`cadre_store::AttemptStatRow`]s;
//! - [`outcomes`]: parsing outcome CSVs;
//! - [`routed`]: live routing along learned paths over the store's rung
//!   statistics (conditioned on how a rung was reached, thin classes
//!   borrowing, a share of subtasks exploring);
//! - [`paths`]: learned paths, per class an ordered subsequence of the ladder
//!   (skipping rungs, stopping below the top) under a solved-share
//!   constraint, thin classes borrowing from their parents;
//! - [`mod@replay`]: replaying `always:<tier>`, `static`, `cascade`, `learned`
//!   and `path` (k-fold cross-validated) and `oracle` with bootstrap
//!   intervals (docs/routing.md).

pub mod estimate;
pub mod live;
pub mod outcomes;
pub mod paths;
pub mod replay;
mod rng;
pub mod routed;

pub use estimate::{
    CascadeModel, CascadeOutcome, ClassEstimate, OutcomeCell, Prior, StartEstimate, TierCosts,
    TierEstimate, TierEvidence, Validator,
};
pub use live::{LearnedRoute, LiveDecision, explain_start, learned_start, static_start};
pub use outcomes::{
    ClassColumn, ColumnMap, CostSource, ModelColumn, OutcomeRow, OutcomeTable, ParseOptions,
    parse_outcomes, parse_outcomes_with,
};
pub use paths::{MinSolved, PathEstimate};
pub use replay::{
    ClassReport, FrontierPoint, Metric, PathFit, Policy, PolicyReport, ReplayOptions, ReplayReport,
    replay,
};
pub use routed::{RoutedPath, RungEstimate, RungEvidence, learned_path, rung_estimates};
