//! Loader behaviour: layering, strictness, provenance, validation, the
//! shipped config files and `config show`.
#![expect(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] fns panic on setup failure"
)]

mod suite;
