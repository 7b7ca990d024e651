//! cadre-sim: a simulated Anthropic API server for tests, the demo and benchmarks.
//!
//! This crate owns a loopback HTTP server (axum) that speaks the Anthropic
//! Messages API wire format faithfully: `POST /v1/messages` (JSON and SSE),
//! `POST /v1/messages/count_tokens`, `GET /v1/models`, the Message Batches
//! endpoints, the real response headers (`request-id`,
//! `anthropic-ratelimit-*`, `retry-after`) and the real error bodies. It
//! validates requests the way the API documents, keeps a per-model prompt cache
//! with TTLs and minimum prefix lengths, and answers from a [`Scenario`]: the
//! planner submits the scenario's plan, workers edit files correctly or make the
//! realistic mistakes the scenario scripts or a seeded skill roll decides, and the
//! reviewer approves exactly the correct diffs. Faults (429, 529, 500, slow,
//! dropped connections, malformed JSON, broken tool calls) are injected per
//! scenario, per request header or at runtime through `POST /sim/faults`, and
//! every request is recorded in a log served at `GET /sim/requests`.
//!
//! Key design decision: the sim parses requests as `serde_json::Value` and its
//! own small types and never depends on `cadre-llm`, so the client and the
//! server cannot drift together: a client bug shows up as a rejected request,
//! exactly as it would against the real API. Every random choice (skill rolls,
//! wrong-answer kinds, latency, ids) is a pure function of the scenario seed and
//! the request content, never of the arrival order, so runs are reproducible.
//!
//! A scenario is read from TOML ([`Scenario::load`], [`Scenario::from_toml_str`])
//! or built in code ([`Scenario::builder`], the way every test crate and the
//! benchmarks make theirs) and written back with [`Scenario::to_toml_string`].
//!
//! Token counting convention used everywhere in the sim (see [`tokens`]):
//! `tokens(text) = ceil(chars / 4)`, summed per block over the JSON-serialised
//! tools, the system texts and the message texts.
//!
//! Control surface (not part of the Anthropic API):
//! - `GET /sim/requests` -> `{"requests": [LoggedRequest...]}`; `GET /sim/stats` -> [`SimStats`].
//! - `POST /sim/faults` with one [`FaultSpec`] as JSON adds a fault; `GET` lists
//!   faults with their counters; `DELETE` removes them all.
//! - Request headers: `x-sim-fault: KIND` injects a fault into that request;
//!   it fires for the first `x-sim-fault-times` (default 1) requests with the
//!   same body, so a client retrying the identical request gets through.
//!   `x-sim-fault-retry-after` (seconds) and `x-sim-fault-delay-ms` tune it.
//!
//! Time (cache TTLs, batch processing, the rate-limit bucket) is read from an
//! injectable [`Clock`]; tests use [`ManualClock`] with
//! [`SimServer::start_with_clock`]. Latencies are real sleeps.
#![warn(missing_docs)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod agents;
mod api_error;
mod batch;
mod cache;
mod chat;
mod clock;
mod diff;
mod edits;
mod error;
mod faults;
mod ids;
mod limiter;
mod log;
mod models;
mod request;
mod response;
mod scenario;
mod server;
pub mod tokens;

pub use chat::{ChatQuirk, ChatSpec};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, Result};
pub use faults::{FaultKind, FaultMatch, FaultSpec};
pub use log::{LoggedRequest, SimStats};
pub use models::ThinkingMode;
pub use scenario::{
    BatchSpec, EditSpec, EffortSpec, FileSpec, LatencySpec, LimitsSpec, ModelOverride, OutcomeKind,
    PlanSpec, ReviewerSpec, Scenario, ScenarioBuilder, SearchSpec, SelectorSpec, SkillSpec,
    SubtaskSpec,
};
pub use server::{LISTEN_BACKLOG, SimServer, SimState, bind, router, serve_until};

/// Which agent role a request plays, inferred from the tools it offers.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Offers a `submit_plan` tool.
    Planner,
    /// Offers `edit_file` / `write_file`.
    Worker,
    /// Offers a `submit_review` tool.
    Reviewer,
    /// Anything else (plain chat, SDK tests, batches of generic requests).
    Other,
}

impl Role {
    /// The snake_case name used in the request log and fault matches.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Planner => "planner",
            Role::Worker => "worker",
            Role::Reviewer => "reviewer",
            Role::Other => "other",
        }
    }
}
