//! The single integration test binary of cadre-store: every test runs against a real
//! SQLite file in a temporary directory.

mod suite;
