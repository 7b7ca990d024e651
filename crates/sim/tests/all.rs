//! Integration tests for cadre-sim: one binary, real sockets, real HTTP.

#![expect(
    clippy::unwrap_used,
    reason = "helpers outside #[test] fns fail loudly on unexpected shapes"
)]

mod suite;
