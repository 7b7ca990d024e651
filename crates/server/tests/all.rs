//! Integration tests of the daemon: the API over real sockets, and the
//! dispatcher running real jobs against the in-process simulator.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers outside #[test] fns fail loudly on unexpected shapes"
)]

mod suite;
