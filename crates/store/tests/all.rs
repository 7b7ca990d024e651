//! The single integration test binary of cadre-store: every test runs against a real
//! SQLite file in a temporary directory and again against a scratch schema on a real
//! PostgreSQL server (`CADRE_TEST_POSTGRES`, default `postgres://postgres@127.0.0.1:5432/test`;
//! skipped with a printed reason when unreachable, unless `CI=true`).

mod suite;
