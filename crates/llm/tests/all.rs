//! Integration tests for cadre-llm: real clients against scripted axum
//! servers on 127.0.0.1:0.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] fns panic on setup failure"
)]

mod suite;
