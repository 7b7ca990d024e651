// `common` first: its `store_test!` macro is in scope for the modules after it.
#[macro_use]
#[expect(
    clippy::unwrap_used,
    reason = "fixtures panic when the test database cannot be set up"
)]
mod common;
mod attempts;
mod claims;
mod cluster_limits;
mod codemod;
mod events;
mod fence;
mod jobs;
mod open;
mod overview;
mod queue;
mod subtasks;
