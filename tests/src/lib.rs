//! End-to-end test support crate: the tests live in `tests/tests/*.rs` and drive the real `cadre` binary.
