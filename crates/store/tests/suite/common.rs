//! Shared fixtures.

use cadre_store::{AttemptFinish, NewAttempt, NewJob, NewSubtask, Store};
use cadre_types::{
    AttemptId, AttemptOutcome, Complexity, ErrorCost, FailureKind, JobId, JobStatus, Role,
    SubtaskId, SubtaskStatus,
};
use serde_json::json;
use tempfile::TempDir;

/// A store on a fresh file; keep the `TempDir` alive as long as the store.
pub async fn temp_store() -> (TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("cadre.db")).await.unwrap();
    (dir, store)
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
