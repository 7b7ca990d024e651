mod attempts;
#[expect(
    clippy::unwrap_used,
    reason = "fixtures panic when the test database cannot be set up"
)]
mod common;
mod events;
mod jobs;
mod open;
mod overview;
mod queue;
mod subtasks;
