//! Read-only views of the store a test's jobs wrote: worker attempts
//! ([`AttemptView`]), every attempt with its cost and ledger calls
//! ([`AttemptCost`]), and the job's events.

use cadre_store::Store;
use cadre_types::JobId;

use crate::fixture::Fixture;

/// A recorded worker attempt, as the store holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct AttemptView {
    /// Subtask path.
    pub path: String,
    /// Tier name.
    pub tier: String,
    /// Model id.
    pub model: String,
    /// passed | failed | interrupted | ...
    pub outcome: String,
    /// The failure kind, if failed.
    pub failure: Option<String>,
    /// The failure message.
    pub error: Option<String>,
}

/// One recorded attempt of any role, with its cost and the model calls the
/// store's ledger holds for it.
#[derive(Clone, Debug, PartialEq)]
pub struct AttemptCost {
    /// planner | worker | reviewer.
    pub role: String,
    /// The subtask's path (workers only).
    pub path: Option<String>,
    /// Tier name.
    pub tier: String,
    /// passed | failed | interrupted | running | ...
    pub outcome: String,
    /// The failure kind, if failed.
    pub failure: Option<String>,
    /// The failure message.
    pub error: Option<String>,
    /// The attempt's recorded cost.
    pub cost_usd: f64,
    /// Its recorded input + output + cache tokens.
    pub tokens: u64,
    /// Model calls recorded for it.
    pub calls: usize,
    /// The sum of those calls' costs.
    pub calls_cost_usd: f64,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("tokio runtime: {e}"))
}

impl Fixture {
    /// Worker attempts of `job` in the store, in start order.
    pub fn attempts(&self, job: &JobId) -> Vec<AttemptView> {
        let db = self.db.clone();
        let job = *job;
        runtime().block_on(async move {
            let store = Store::open(&db)
                .await
                .unwrap_or_else(|e| panic!("opening {}: {e}", db.display()));
            let subtasks = store
                .list_subtasks(job)
                .await
                .unwrap_or_else(|e| panic!("list_subtasks: {e}"));
            let attempts = store
                .list_attempts(job)
                .await
                .unwrap_or_else(|e| panic!("list_attempts: {e}"));
            store.close().await;
            attempts
                .into_iter()
                .filter(|a| a.role == cadre_types::Role::Worker)
                .map(|a| AttemptView {
                    path: subtasks
                        .iter()
                        .find(|s| Some(s.id) == a.subtask_id)
                        .map(|s| s.path.clone())
                        .unwrap_or_default(),
                    tier: a.tier,
                    model: a.model,
                    outcome: a.outcome.as_str().to_owned(),
                    failure: a.failure.map(|f| f.as_str().to_owned()),
                    error: a.error,
                })
                .collect()
        })
    }

    /// Worker attempts at `path`.
    pub fn attempts_for(&self, job: &JobId, path: &str) -> Vec<AttemptView> {
        self.attempts(job)
            .into_iter()
            .filter(|a| a.path == path)
            .collect()
    }

    /// The job's events as (kind, message), oldest first.
    pub fn events(&self, job: &JobId) -> Vec<(String, String)> {
        let db = self.db.clone();
        let job = *job;
        runtime().block_on(async move {
            let store = Store::open(&db)
                .await
                .unwrap_or_else(|e| panic!("opening {}: {e}", db.display()));
            let events = store
                .list_events(job, 0, 100_000)
                .await
                .unwrap_or_else(|e| panic!("list_events: {e}"));
            store.close().await;
            events
                .into_iter()
                .map(|e| (e.kind.as_str().to_owned(), e.message))
                .collect()
        })
    }

    /// Every attempt of `job` (all roles) with its cost and its recorded calls.
    pub fn attempt_costs(&self, job: &JobId) -> Vec<AttemptCost> {
        let db = self.db.clone();
        let job = *job;
        runtime().block_on(async move {
            let store = Store::open(&db)
                .await
                .unwrap_or_else(|e| panic!("opening {}: {e}", db.display()));
            let subtasks = store
                .list_subtasks(job)
                .await
                .unwrap_or_else(|e| panic!("list_subtasks: {e}"));
            let attempts = store
                .list_attempts(job)
                .await
                .unwrap_or_else(|e| panic!("list_attempts: {e}"));
            let calls = store
                .list_calls(job)
                .await
                .unwrap_or_else(|e| panic!("list_calls: {e}"));
            store.close().await;
            let orphans: Vec<_> = calls
                .iter()
                .filter(|c| !attempts.iter().any(|a| a.id == c.attempt_id))
                .collect();
            assert!(
                orphans.is_empty(),
                "model calls recorded for no attempt: {orphans:#?}"
            );
            attempts
                .iter()
                .map(|a| {
                    let mine: Vec<_> = calls.iter().filter(|c| c.attempt_id == a.id).collect();
                    AttemptCost {
                        role: a.role.as_str().to_owned(),
                        path: a.subtask_id.and_then(|id| {
                            subtasks.iter().find(|s| s.id == id).map(|s| s.path.clone())
                        }),
                        tier: a.tier.clone(),
                        outcome: a.outcome.as_str().to_owned(),
                        failure: a.failure.map(|f| f.as_str().to_owned()),
                        error: a.error.clone(),
                        cost_usd: a.cost_usd,
                        tokens: a.input_tokens
                            + a.output_tokens
                            + a.cache_read_tokens
                            + a.cache_write_tokens,
                        calls: mine.len(),
                        calls_cost_usd: mine.iter().map(|c| c.cost_usd).sum(),
                    }
                })
                .collect()
        })
    }
}
