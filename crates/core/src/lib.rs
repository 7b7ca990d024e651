//! cadre-core: the job pipeline.
//!
//! Owns everything between "an instruction and a workspace" and "a patch and a
//! report". One module per stage, named as the README's "How a job runs"
//! table names them: [`index`], `plan`, [`route`], `fanout`, `attempt` (with
//! the worker's read-only `tools`), `validate`, `cascade`, `integrate`,
//! `review`, `finish`, `apply`. The stages are functions over one run of one
//! job (`run::JobRun`) and hand typed values to each other (a candidate
//! change or a validation failure, an attempt summary, the cascade's next
//! step, an integration or review outcome). Every model call goes through
//! one type (`call::ModelCall`: ledger lookup, budget reservation, fair slot,
//! warm gate, send, record) with its own failure enum.
//!
//! Key decision: every model call is recorded in the store, keyed by the
//! SHA-256 of its request, before anything acts on it. A resumed job consults
//! that ledger before sending, so a restart never repeats a finished call and
//! never loses one; an attempt's result is committed before its subtask moves
//! on. The cascade state of a subtask is a pure function of its recorded
//! attempts, which is what makes resume exact. See `docs/architecture.md`.
#![warn(missing_docs)]

mod actions;
mod apply;
mod assist;
mod attempt;
mod batcher;
mod budget;
mod call;
mod cascade;
pub mod checkout;
pub mod checks;
mod claims;
pub mod codemod;
pub mod diff;
mod drive;
pub mod edit;
mod engine;
mod error;
mod estimate;
mod events;
mod fanout;
mod finish;
pub mod index;
mod integrate;
pub mod learn;
mod lease;
pub mod paths;
mod plan;
mod plan_call;
pub mod plan_search;
mod preview;
pub mod pricing;
pub mod prompts;
mod providers;
mod report;
mod resume;
mod review;
pub mod route;
mod run;
pub mod selectors;
mod slots;
pub mod staging;
mod store_writer;
pub mod syntax;
mod tools;
mod validate;
mod window;

pub use actions::FileAction;
pub use engine::{Engine, JobOptions};
pub use error::{Error, Result};
pub use estimate::JobEstimate;
pub use lease::JobLease;
pub use preview::{PlanPreview, PlannedRoute, SelectorPreview};
pub use providers::{ProviderClient, Providers};
pub use report::ReportBuilder;
pub use staging::ApplyOutcome;
