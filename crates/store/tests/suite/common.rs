//! Shared fixtures.

use cadre_store::scratch::ScratchPostgres;
use cadre_store::{AttemptFinish, Backend, NewAttempt, NewJob, NewSubtask, Store, StoreLocation};
use cadre_types::{
    AttemptId, AttemptOutcome, Complexity, ErrorCost, FailureKind, JobId, JobStatus, Role,
    SubtaskId, SubtaskStatus,
};
use serde_json::json;
use tempfile::TempDir;

/// What keeps a test's store alive: its temporary directory (SQLite) or its
/// scratch schema (PostgreSQL), removed when dropped.
#[derive(Debug)]
pub enum Scratch {
    /// The directory holding the SQLite file.
    Dir(#[expect(dead_code, reason = "held for its Drop")] TempDir),
    /// The PostgreSQL schema.
    Postgres(#[expect(dead_code, reason = "held for its Drop")] ScratchPostgres),
}

/// A fresh store on `backend`: a new file, or a new schema on the test
/// server. `None` when PostgreSQL is unreachable outside CI (the reason is
/// printed; the test returns early, skipped). Keep the [`Scratch`] alive as long as the store.
pub async fn temp_store(backend: Backend) -> Option<(Scratch, Store)> {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(&dir.path().join("cadre.db")).await.unwrap();
            Some((Scratch::Dir(dir), store))
        }
        Backend::Postgres => {
            let scratch = ScratchPostgres::create_or_skip("this store test")
                .await
                .unwrap()?;
            let store = Store::connect(&StoreLocation::parse(scratch.url()))
                .await
                .unwrap();
            assert_eq!(store.backend(), Backend::Postgres);
            Some((Scratch::Postgres(scratch), store))
        }
    }
}

/// Runs each test once per backend: `store_test! { #[tokio::test] async fn
/// name(backend) { ... } }` becomes `name::sqlite` and `name::postgres`, each
/// calling the body with its [`Backend`].
macro_rules! store_test {
    ($(#[$attr:meta])* async fn $name:ident($backend:ident) $body:block) => {
        // `cfg(test)` marks the shared body as test code for clippy, as the
        // `#[test]` functions are.
        #[cfg(test)]
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            // Explicit, so it wins over both the glob and the prelude.
            #[allow(unused_imports)]
            use pretty_assertions::assert_eq;

            async fn body($backend: cadre_store::Backend) $body

            $(#[$attr])*
            async fn sqlite() {
                body(cadre_store::Backend::Sqlite).await
            }

            $(#[$attr])*
            async fn postgres() {
                body(cadre_store::Backend::Postgres).await
            }
        }
    };
}

pub fn new_job(status: JobStatus, priority: i64) -> NewJob {
    NewJob {
        id: JobId::new(),
        instruction: "rename UserId to AccountId".into(),
        workspace: "/tmp/ws".into(),
        options: json!({"check": "cargo check", "batch": false}),
        priority,
        budget_usd: Some(2.5),
        status,
    }
}

/// Stores a new job and returns its id.
pub async fn add_job(store: &Store, status: JobStatus, priority: i64) -> JobId {
    let job = new_job(status, priority);
    store.create_job(&job).await.unwrap();
    job.id
}

/// Stores `count` mechanical Rust subtasks of `job` and returns them.
pub async fn add_subtasks(store: &Store, job: JobId, count: i64) -> Vec<NewSubtask> {
    let subs: Vec<NewSubtask> = (0..count)
        .map(|i| new_subtask(job, i, Complexity::Mechanical, "rust"))
        .collect();
    store.insert_subtasks(&subs).await.unwrap();
    subs
}

pub fn new_subtask(job: JobId, ordinal: i64, complexity: Complexity, language: &str) -> NewSubtask {
    NewSubtask {
        id: SubtaskId::new(),
        job_id: job,
        ordinal,
        path: format!("src/file{ordinal}.rs"),
        instruction: format!("edit file {ordinal}"),
        complexity,
        error_cost: ErrorCost::Low,
        language: language.into(),
        status: SubtaskStatus::Pending,
        start_tier: "haiku".into(),
        route_reason: format!("{complexity}/low -> haiku"),
        original_sha256: "ab".repeat(32),
        original_content: Some(format!("fn f{ordinal}() {{}}\n")),
    }
}

pub fn new_attempt(job: JobId, subtask: Option<SubtaskId>, role: Role, tier: &str) -> NewAttempt {
    NewAttempt {
        id: AttemptId::new(),
        job_id: job,
        subtask_id: subtask,
        role,
        tier: tier.into(),
        model: format!("claude-{tier}"),
        effort: Some("medium".into()),
        ordinal: 1,
        request_sha256: "cd".repeat(32),
        batch_id: None,
    }
}

pub fn finish(outcome: AttemptOutcome, cost_usd: f64) -> AttemptFinish {
    let failed = outcome == AttemptOutcome::Failed;
    AttemptFinish {
        outcome,
        failure: failed.then_some(FailureKind::SyntaxError),
        error: failed.then(|| "line 3: unexpected token".to_owned()),
        response: Some(json!({"content": [{"type": "tool_use", "name": "edit_file"}]})),
        change: Some(json!({"type": "edits", "edits": [{"old": "a", "new": "b"}]})),
        input_tokens: 1200,
        output_tokens: 300,
        cache_read_tokens: 5000,
        cache_write_tokens: 40,
        cost_usd,
        latency_ms: 850,
    }
}
