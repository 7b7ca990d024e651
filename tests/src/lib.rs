//! End-to-end test support for cadre: the tests in `tests/tests/*.rs` drive the
//! real `cadre` binary against a real `cadre sim serve` process over loopback,
//! with real temporary workspaces and a temporary SQLite store.
//!
//! This crate owns the harness every test file shares, so the fakes live in one
//! place, one module per concern: locating the binary ([`cadre_bin`]),
//! running commands with a clean environment and a watchdog
//! ([`run_with_timeout`], [`Fixture::cadre`], [`Running`]), the
//! simulator process ([`Sim`]), the workspace cases and their scenario
//! ([`FileCase`], [`ScenarioSpec`]), one test's world ([`Fixture`]), read-only
//! views of the store ([`Fixture::attempts`], [`Fixture::events`],
//! [`Fixture::attempt_costs`]), report assertions, file and git helpers.
//! Everything is re-exported here, so tests `use cadre_e2e::{...}`.
//!
//! Key design decision: everything is observed from the outside, the way a user
//! or operator would: exit codes, `--json` output, files on disk, the
//! simulator's request log (`GET /sim/requests`) and the SQLite file. Nothing
//! here links the pipeline, and the simulator runs as its own process: only
//! the simulator's data types are shared (the scenario builder writes the
//! scenario file, the request-log type reads its log), so the tests cannot
//! share a bug with the code under test. The environment of every child
//! process is built from scratch (`env_clear`), so no `CADRE_*` variable of the
//! developer's shell leaks in, and the tests never mutate their own process
//! environment.

mod binary;
mod cases;
mod files;
mod fixture;
mod git;
mod process;
mod report;
mod sim;
mod store;

use std::time::Duration;

pub use binary::cadre_bin;
pub use cadre_sim::{
    FaultKind, FaultSpec, FileSpec, OutcomeKind, SearchSpec, SelectorSpec, SubtaskSpec,
};
pub use cases::{FileCase, ScenarioSpec, models_file, rename_module};
pub use files::{read_file, snapshot, write_file};
pub use fixture::Fixture;
pub use git::{bare_remote, git};
pub use process::{CmdOutput, Running, clean_command, run_with_timeout};
pub use report::{
    assert_accepted_first_try, assert_all_terminal, assert_no_panic, parse_report, subtask,
};
pub use sim::{Sim, SimRequest, SimRequestExt, SimRole};
pub use store::{AttemptCost, AttemptView};

/// Model ids of the default tiers haiku / sonnet / opus.
pub const HAIKU: &str = "claude-haiku-4-5";
/// The default middle tier's model.
pub const SONNET: &str = "claude-sonnet-4-6";
/// The default top tier's model (also planner and reviewer).
pub const OPUS: &str = "claude-opus-4-7";

/// How long any single `cadre` command may take before the watchdog kills it.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);

/// The instruction every rename test uses.
pub const RENAME: &str = "Rename `UserId` to `AccountId` across the app package";
