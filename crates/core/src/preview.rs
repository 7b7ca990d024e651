//! `cadre plan`: a job planned without running workers (one planner call,
//! path validation, routing) and the cost estimate of running it.

use cadre_llm::types::Usage;
use cadre_types::{Complexity, ErrorCost, JobId, JobStatus, Role, SubtaskStatus};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::Result;
use crate::engine::Engine;
use crate::estimate::{FileEstimate, JobEstimate, file_estimate, job_estimate, review_base};
use crate::plan::plan;
use crate::pricing::{estimate_tokens, price_usage, tokens_for_chars};
use crate::prompts::worker_prefix_text;
use crate::run::{JobRun, job_prefix};

/// A subtask's route as `cadre plan` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlannedRoute {
    /// The file.
    pub path: String,
    /// As planned.
    pub complexity: Complexity,
    /// After path rules.
    pub error_cost: ErrorCost,
    /// Where it starts (empty when skipped).
    pub start_tier: String,
    /// `pending` or `skipped`.
    pub status: SubtaskStatus,
    /// The routing reason or the skip reason.
    pub reason: String,
    /// Estimated cost of one attempt at the start tier.
    pub estimated_usd: f64,
}

/// The output of `cadre plan`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanPreview {
    /// The job holding the plan (run it with `cadre resume`).
    pub job_id: JobId,
    /// The planner's notes.
    pub notes: String,
    /// One entry per planned subtask.
    pub routes: Vec<PlannedRoute>,
    /// What the planner call cost.
    pub planner_usd: f64,
    /// Planner + one attempt per subtask at its start tier + review.
    pub estimated_total_usd: f64,
    /// The job's budget, if any.
    pub budget_usd: Option<f64>,
    /// True when the estimate exceeds the budget.
    pub over_budget: bool,
    /// What running the plan is expected to cost (the cascade's expected
    /// escalations and the review, with a 90% interval) and how many files
    /// the budget left after planning covers.
    pub expected: JobEstimate,
}

impl Engine {
    /// Plans a job without running workers: one planner call, path
    /// validation, routing, and a cost estimate. The job stays queued with
    /// its plan, so `run_job` continues from it.
    pub async fn plan_job(&self, job_id: JobId, stop: CancellationToken) -> Result<PlanPreview> {
        let job = self.load_job(job_id).await?;
        if job.plan.is_none() {
            let run = JobRun::start(self, &job, stop).await?;
            let _running = self.slots().job_running();
            if let Err(e) = plan(&run, &job).await {
                // A stopped or failed plan leaves the job queued: `cadre
                // resume` (or `cadre plan` again) plans it from the start.
                self.set_job_status(
                    job_id,
                    &[JobStatus::Planning],
                    JobStatus::Queued,
                    &format!("planning did not finish: {}", e.chain()),
                )
                .await?;
                return Err(e);
            }
            self.set_job_status(
                job_id,
                &[JobStatus::Planning],
                JobStatus::Queued,
                "planned; run it with `cadre resume`",
            )
            .await?;
        }
        let job = self.load_job(job_id).await?;
        let config = self.config();
        let subtasks = self.store().list_subtasks_brief(job_id).await?;
        let content_chars = self.store().subtask_content_chars(job_id).await?;
        let prefix = job_prefix(self.store(), &job).await?;
        let prefix_tokens = estimate_tokens(&worker_prefix_text(&prefix));
        let mut routes = Vec::new();
        let mut estimate = 0.0;
        let mut review_tokens = 0;
        for s in &subtasks {
            let mut usd = 0.0;
            if s.status != SubtaskStatus::Skipped
                && let Some(model) = config.models.get(config.tier_of_rung(&s.start_tier))
            {
                let file_tokens = tokens_for_chars(content_chars.get(&s.id).copied().unwrap_or(0));
                let usage = Usage {
                    input_tokens: file_tokens + estimate_tokens(&s.instruction) + 50,
                    cache_read_input_tokens: prefix_tokens,
                    output_tokens: file_tokens / 3 + 200,
                    ..Usage::default()
                };
                usd = price_usage(model, &usage, false);
                review_tokens += file_tokens / 2;
            }
            estimate += usd;
            routes.push(PlannedRoute {
                path: s.path.clone(),
                complexity: s.complexity,
                error_cost: s.error_cost,
                start_tier: s.start_tier.clone(),
                status: s.status,
                reason: s.route_reason.clone(),
                estimated_usd: usd,
            });
        }
        if let Some(model) = config.models.get(&config.roles.reviewer.tier) {
            estimate += price_usage(
                model,
                &Usage {
                    input_tokens: review_tokens + prefix_tokens,
                    output_tokens: 500,
                    ..Usage::default()
                },
                false,
            );
        }
        let planner_usd: f64 = self
            .store()
            .list_calls(job_id)
            .await?
            .iter()
            .filter(|c| c.role == Role::Planner)
            .map(|c| c.cost_usd)
            .sum();
        let total = planner_usd + estimate;
        let files: Vec<FileEstimate> = subtasks
            .iter()
            .filter(|s| s.status == SubtaskStatus::Pending)
            .map(|s| {
                let chars = content_chars.get(&s.id).copied().unwrap_or(0);
                file_estimate(config, &s.start_tier, chars, prefix_tokens)
            })
            .collect();
        let left = job.budget_usd.map(|b| (b - planner_usd).max(0.0));
        let expected = job_estimate(&files, review_base(config, prefix_tokens), left);
        let notes = job
            .plan
            .as_ref()
            .and_then(|p| p.get("notes"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        Ok(PlanPreview {
            job_id,
            notes,
            routes,
            planner_usd,
            estimated_total_usd: total,
            budget_usd: job.budget_usd,
            over_budget: job.budget_usd.is_some_and(|b| total > b),
            expected,
        })
    }
}
