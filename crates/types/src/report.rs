//! The job report: what `cadre run --json`, `cadre show --json` and `GET /v1/jobs/{id}` return.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Complexity, ErrorCost, JobId, JobStatus, SubtaskId, SubtaskStatus};

/// Everything a user needs to judge a job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobReport {
    /// The job.
    pub job_id: JobId,
    /// Its state.
    pub status: JobStatus,
    /// The instruction it carried out.
    pub instruction: String,
    /// The workspace root it read.
    pub workspace: String,
    /// Why it is in this state (for `needs_human`, `failed`, `cancelled`).
    pub reason: String,
    /// Wall-clock time spent running, milliseconds.
    pub wall_ms: u64,
    /// Number of tier escalations across all subtasks.
    pub escalations: u32,
    /// Per-file outcome.
    pub subtasks: Vec<SubtaskReport>,
    /// Money.
    pub cost: CostSummary,
    /// Tokens.
    pub tokens: TokenTotals,
    /// Prompt tokens read from cache over all prompt tokens, in [0, 1].
    pub cache_read_share: f64,
    /// Model calls that wrote, read or missed the prompt cache.
    pub cache_calls: CacheCalls,
    /// Files the patch changes.
    pub files_changed: u32,
    /// Lines added and removed by the patch.
    pub lines_added: u32,
    /// Lines removed by the patch.
    pub lines_removed: u32,
}

/// One subtask's line in the report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SubtaskReport {
    /// The subtask.
    pub subtask_id: SubtaskId,
    /// Its file.
    pub path: String,
    /// As routed.
    pub complexity: Complexity,
    /// As routed.
    pub error_cost: ErrorCost,
    /// The tier it started at.
    pub start_tier: String,
    /// The tier of its last attempt.
    pub final_tier: String,
    /// Its state.
    pub status: SubtaskStatus,
    /// Model calls made for it (failed ones included).
    pub attempts: u32,
    /// Why it ended where it did (routing reason, last failure, skip reason).
    pub reason: String,
    /// Cost of all its attempts, failed ones included.
    pub cost_usd: f64,
}

/// Cost broken down for the report.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CostSummary {
    /// Everything the job spent.
    pub total_usd: f64,
    /// By tier name.
    pub by_tier: BTreeMap<String, f64>,
    /// By role (planner, worker, reviewer).
    pub by_role: BTreeMap<String, f64>,
    /// By model id.
    pub by_model: BTreeMap<String, f64>,
    /// Spent through Message Batches (already discounted).
    pub batch_usd: f64,
    /// What the batch discount saved.
    pub batch_savings_usd: f64,
    /// The same token counts priced at the top tier.
    pub all_top_tier_usd: f64,
    /// What caching saved against paying full input price for cached tokens.
    pub cache_savings_usd: f64,
    /// The budget the job ran under, if any.
    pub budget_usd: Option<f64>,
    /// What the codemod tier did and saved.
    #[serde(default)]
    pub codemod: CodemodSummary,
}

/// The codemod tier's work: ast-grep rules run locally, priced 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CodemodSummary {
    /// Finished attempts at the codemod tier (a rule run on a file).
    pub attempts: u64,
    /// Files accepted at the codemod tier.
    pub accepted: u64,
    /// `accepted / attempts`, in [0, 1] (0 without attempts).
    pub acceptance_rate: f64,
    /// What the accepted files would have cost starting at their first
    /// model tier: one worker attempt there each, priced as the plan
    /// estimate prices it (the job's shared prefix left out).
    pub saved_usd: f64,
}

impl CodemodSummary {
    /// Counts `accepted` files of `attempts` and sets the rate.
    pub fn new(attempts: u64, accepted: u64, saved_usd: f64) -> Self {
        let acceptance_rate = if attempts == 0 {
            0.0
        } else {
            accepted as f64 / attempts as f64
        };
        Self {
            attempts,
            accepted,
            acceptance_rate,
            saved_usd,
        }
    }
}

/// Token totals across all calls of a job.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenTotals {
    /// Uncached input tokens.
    pub input: u64,
    /// Output tokens (thinking included).
    pub output: u64,
    /// Input tokens read from cache.
    pub cache_read: u64,
    /// Input tokens written to cache.
    pub cache_write: u64,
}

/// How the job's model calls met the prompt cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheCalls {
    /// Calls that wrote a cache entry (and read none).
    pub wrote: u64,
    /// Calls that read a cached prefix.
    pub read: u64,
    /// Calls that neither read nor wrote (no breakpoint, or below the minimum).
    pub missed: u64,
}
