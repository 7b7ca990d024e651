//! `cadre plan`: a job planned without running workers (one planner call,
//! path validation, routing) and the cost estimate of running it.

use cadre_llm::types::Usage;
use std::collections::BTreeMap;

use cadre_types::{
    Complexity, ErrorCost, EventKind, JobId, JobStatus, Role, SubtaskAction, SubtaskStatus,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::Result;
use crate::codemod::CODEMOD_TIER;
use crate::engine::Engine;
use crate::estimate::{FileEstimate, JobEstimate, file_estimate, job_estimate, review_base};
use crate::plan::plan;
use crate::pricing::{estimate_tokens, price_usage, tokens_for_chars};
use crate::prompts::worker_prefix_text;
use crate::run::{JobRun, job_prefix};
use crate::selectors::SelectorOutcome;

/// A subtask's route as `cadre plan` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlannedRoute {
    /// The file.
    pub path: String,
    /// As planned.
    pub complexity: Complexity,
    /// After path rules.
    pub error_cost: ErrorCost,
    /// Where it starts (empty when skipped): `codemod` for a file with an
    /// ast-grep rule, else its routed model tier.
    pub start_tier: String,
    /// `pending` or `skipped`.
    pub status: SubtaskStatus,
    /// The routing reason or the skip reason.
    pub reason: String,
    /// Estimated cost of one attempt at the start tier (0 at codemod).
    pub estimated_usd: f64,
    /// `edit`, `create`, `delete` or `move`.
    #[serde(default, skip_serializing_if = "SubtaskAction::is_edit")]
    pub action: SubtaskAction,
    /// A move's new path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub move_to: Option<String>,
    /// The selector that expanded to this subtask (`None`: an explicit entry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
}

/// A plan selector as `cadre plan` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SelectorPreview {
    /// What it expanded to (or why it was refused).
    #[serde(flatten)]
    pub outcome: SelectorOutcome,
    /// Its files per start tier.
    pub tiers: BTreeMap<String, usize>,
    /// Estimated cost of one attempt per file at its start tier.
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
    /// The plan's selectors: what each matched, left out, where its files start.
    #[serde(default)]
    pub selectors: Vec<SelectorPreview>,
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
        let directives = self.store().job_directives_brief(job_id).await?;
        // Files with a rule start at the codemod tier, free.
        let rules = self.store().subtasks_with_rules(job_id).await?;
        let codemod_first = |id| config.has_codemod_tier() && rules.contains(&id);
        let mut routes = Vec::new();
        let mut estimate = 0.0;
        let mut review_tokens = 0;
        for s in &subtasks {
            let mut usd = 0.0;
            let codemod = s.status != SubtaskStatus::Skipped && codemod_first(s.id);
            if s.status != SubtaskStatus::Skipped
                && !codemod
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
                start_tier: if codemod {
                    CODEMOD_TIER.to_owned()
                } else {
                    s.start_tier.clone()
                },
                status: s.status,
                reason: s.route_reason.clone(),
                estimated_usd: usd,
                action: directives.get(&s.id).map(|d| d.action).unwrap_or_default(),
                move_to: directives.get(&s.id).and_then(|d| d.move_to.clone()),
                selector: directives.get(&s.id).and_then(|d| d.selector_id.clone()),
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
                file_estimate(
                    config,
                    &s.start_tier,
                    codemod_first(s.id),
                    chars,
                    prefix_tokens,
                )
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
        let selectors = self.selector_previews(job_id, &routes).await?;
        Ok(PlanPreview {
            job_id,
            notes,
            routes,
            selectors,
            planner_usd,
            estimated_total_usd: total,
            budget_usd: job.budget_usd,
            over_budget: job.budget_usd.is_some_and(|b| total > b),
            expected,
        })
    }
}

impl Engine {
    /// What each selector did, from the events planning emitted (they come
    /// before any subtask's), with its files' tiers and estimate.
    async fn selector_previews(
        &self,
        job_id: JobId,
        routes: &[PlannedRoute],
    ) -> Result<Vec<SelectorPreview>> {
        let mut outcomes = Vec::new();
        let mut after = 0;
        'pages: loop {
            let events = self.store().list_events(job_id, after, 500).await?;
            let Some(last) = events.last() else { break };
            after = last.seq;
            for e in &events {
                match e.kind {
                    EventKind::SelectorExpanded | EventKind::SelectorRejected => {
                        if let Ok(outcome) = SelectorOutcome::deserialize(&e.data) {
                            outcomes.push(outcome);
                        }
                    }
                    EventKind::Routed | EventKind::SubtaskStatus => break 'pages,
                    _ => {}
                }
            }
        }
        Ok(outcomes
            .into_iter()
            .map(|outcome| {
                let mut tiers = BTreeMap::new();
                let mut estimated_usd = 0.0;
                for r in routes
                    .iter()
                    .filter(|r| r.selector.as_deref() == Some(outcome.id.as_str()))
                {
                    let tier = if r.start_tier.is_empty() {
                        "skipped"
                    } else {
                        &r.start_tier
                    };
                    *tiers.entry(tier.to_owned()).or_insert(0) += 1;
                    estimated_usd += r.estimated_usd;
                }
                SelectorPreview {
                    outcome,
                    tiers,
                    estimated_usd,
                }
            })
            .collect())
    }
}
