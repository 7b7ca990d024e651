//! `cadre daemon` end to end: the real daemon process (killed, stopped and
//! restarted on the same store) against a real `cadre sim serve`, driven by
//! the real clients (`cadre submit|status|watch|cancel|jobs|apply`) and by
//! raw HTTP.//!
//! One module per theme: [`restarts`] (a killed daemon, SIGTERM), [`cluster`]
//! (several daemons on one PostgreSQL store),
//! [`queue`] (a hundred submissions, fairness, cancel) and [`refusals`]
//! (tokens, allowed roots, bad bodies); [`harness`] runs the daemon process
//! and reads the store, [`http`] is a raw HTTP/1.1 client.

#![expect(
    clippy::unwrap_used,
    reason = "process and socket helpers outside #[test] fns fail loudly"
)]

mod cluster;
mod harness;
mod http;
mod queue;
mod refusals;
mod restarts;
