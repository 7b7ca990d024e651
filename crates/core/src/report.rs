//! The job report, recomputed from the store's ledger of model calls and
//! its attempts (the codemod tier's attempts have no calls: they cost 0, and
//! the report counts them, their acceptance rate and what they saved).

use std::collections::HashMap;

use cadre_config::Config;
use cadre_llm::types::Usage;
use cadre_store::{AttemptRecord, CallRecord, JobRecord, SubtaskRecord};
use cadre_types::{
    AttemptId, AttemptOutcome, CacheCalls, CodemodSummary, CostSummary, JobReport, Role, SubtaskId,
    SubtaskReport, SubtaskStatus, TokenTotals,
};

use crate::codemod::{CODEMOD_TIER, saved_usd};
use crate::pricing::{cache_savings, price_usage};

/// Builds the report of a job from its records, fed one at a time as the
/// store yields them: every call, then every attempt, then every subtask in
/// plan order. Costs come from the calls ledger, so a call is counted once
/// even when a resumed attempt replayed it. What it keeps per subtask is its
/// report row and a few numbers, never the records themselves.
#[derive(Debug)]
pub struct ReportBuilder<'a> {
    config: &'a Config,
    top: Option<&'a cadre_config::ModelConfig>,
    cost: CostSummary,
    tokens: TokenTotals,
    cache_calls: CacheCalls,
    by_attempt: HashMap<AttemptId, f64>,
    /// Per subtask: attempts, cost, and the tiers it went through in order.
    per_subtask: HashMap<SubtaskId, (u32, f64, Vec<String>)>,
    escalations: u32,
    rows: Vec<SubtaskReport>,
    /// Characters of each subtask's original content (for codemod savings).
    sizes: HashMap<SubtaskId, u64>,
    /// Finished codemod attempts, files accepted there and what they saved.
    codemod: (u64, u64, f64),
}

impl<'a> ReportBuilder<'a> {
    /// An empty report of a job with `budget_usd`.
    pub fn new(config: &'a Config, budget_usd: Option<f64>) -> Self {
        ReportBuilder {
            config,
            top: config.tiers.order.last().and_then(|t| config.models.get(t)),
            cost: CostSummary {
                budget_usd,
                ..CostSummary::default()
            },
            tokens: TokenTotals::default(),
            cache_calls: CacheCalls::default(),
            by_attempt: HashMap::new(),
            per_subtask: HashMap::new(),
            escalations: 0,
            rows: Vec::new(),
            sizes: HashMap::new(),
            codemod: (0, 0, 0.0),
        }
    }

    /// The size in characters of each subtask's original content
    /// ([`cadre_store::Store::subtask_content_chars`]): what a file accepted
    /// at the codemod tier saved is priced from it.
    pub fn with_sizes(mut self, sizes: HashMap<SubtaskId, u64>) -> Self {
        self.sizes = sizes;
        self
    }

    /// Counts one finished call of the ledger.
    pub fn add_call(&mut self, call: &CallRecord) {
        let config = self.config;
        let cost = &mut self.cost;
        if call.cache_read_tokens > 0 {
            self.cache_calls.read += 1;
        } else if call.cache_write_tokens > 0 {
            self.cache_calls.wrote += 1;
        } else {
            self.cache_calls.missed += 1;
        }
        *cost.by_model.entry(call.model.clone()).or_default() += call.cost_usd;
        if call.batch {
            cost.batch_usd += call.cost_usd;
            if let Some(model) = config.models.get(&call.tier)
                && model.batch_discount > 0.0
            {
                cost.batch_savings_usd += call.cost_usd / model.batch_discount - call.cost_usd;
            }
        }
        let usage = Usage {
            input_tokens: call.input_tokens,
            output_tokens: call.output_tokens,
            cache_creation_input_tokens: call.cache_write_tokens,
            cache_read_input_tokens: call.cache_read_tokens,
            cache_creation: None,
        };
        cost.total_usd += call.cost_usd;
        *cost.by_tier.entry(call.tier.clone()).or_default() += call.cost_usd;
        *cost
            .by_role
            .entry(call.role.as_str().to_owned())
            .or_default() += call.cost_usd;
        if let Some(top) = self.top {
            cost.all_top_tier_usd += price_usage(top, &usage, call.batch);
        }
        if let Some(model) = config.models.get(&call.tier) {
            cost.cache_savings_usd += cache_savings(model, &usage, call.batch);
        }
        self.tokens.input += call.input_tokens;
        self.tokens.output += call.output_tokens;
        self.tokens.cache_read += call.cache_read_tokens;
        self.tokens.cache_write += call.cache_write_tokens;
        *self.by_attempt.entry(call.attempt_id).or_default() += call.cost_usd;
    }

    /// Counts one attempt (after every call), in start order.
    pub fn add_attempt(&mut self, attempt: &AttemptRecord) {
        let (Role::Worker, Some(sub)) = (attempt.role, attempt.subtask_id) else {
            return;
        };
        if attempt.tier == CODEMOD_TIER
            && matches!(
                attempt.outcome,
                AttemptOutcome::Passed | AttemptOutcome::Failed
            )
        {
            self.codemod.0 += 1;
        }
        let entry = self.per_subtask.entry(sub).or_default();
        entry.0 += 1;
        entry.1 += self.by_attempt.get(&attempt.id).copied().unwrap_or(0.0);
        if entry.2.last() != Some(&attempt.tier) {
            entry.2.push(attempt.tier.clone());
        }
    }

    /// Adds one subtask's row (after every attempt), in plan order.
    pub fn add_subtask(&mut self, s: &SubtaskRecord) {
        let (attempt_count, sub_cost, tiers) = self.per_subtask.remove(&s.id).unwrap_or_default();
        self.escalations += tiers.len().saturating_sub(1) as u32;
        let reason = if s.reason.is_empty() {
            s.route_reason.clone()
        } else {
            s.reason.clone()
        };
        let final_tier = tiers
            .last()
            .cloned()
            .unwrap_or_else(|| s.start_tier.clone());
        if s.status == SubtaskStatus::Accepted && final_tier == CODEMOD_TIER {
            let chars = self.sizes.get(&s.id).copied().unwrap_or(0);
            self.codemod.1 += 1;
            self.codemod.2 += saved_usd(self.config, &s.start_tier, chars);
        }
        // A file with a rule started at the codemod tier, before its routed
        // model tier.
        let start_tier = match tiers.first() {
            Some(first) if first == CODEMOD_TIER => first.clone(),
            _ => s.start_tier.clone(),
        };
        self.rows.push(SubtaskReport {
            subtask_id: s.id,
            path: s.path.clone(),
            complexity: s.complexity,
            error_cost: s.error_cost,
            start_tier,
            final_tier,
            status: s.status,
            attempts: attempt_count,
            reason,
            cost_usd: sub_cost,
        });
    }

    /// The report of `job`.
    pub fn finish(self, job: &JobRecord) -> JobReport {
        let prompt = self.tokens.input + self.tokens.cache_read + self.tokens.cache_write;
        let cache_read_share = if prompt == 0 {
            0.0
        } else {
            self.tokens.cache_read as f64 / prompt as f64
        };
        let (attempts, accepted, saved) = self.codemod;
        let mut cost = self.cost;
        cost.codemod = CodemodSummary::new(attempts, accepted, saved);
        JobReport {
            job_id: job.id,
            status: job.status,
            instruction: job.instruction.clone(),
            workspace: job.workspace.clone(),
            reason: job.reason.clone(),
            wall_ms: job.wall_ms,
            escalations: self.escalations,
            subtasks: self.rows,
            cost,
            tokens: self.tokens,
            cache_read_share,
            cache_calls: self.cache_calls,
            files_changed: job.files_changed,
            lines_added: job.lines_added,
            lines_removed: job.lines_removed,
        }
    }
}

/// Added and removed lines of a git-style diff.
pub(crate) fn changed_lines(diff: &str) -> (u32, u32) {
    let (mut added, mut removed) = (0, 0);
    // Between `diff --git` and the first hunk, `---`/`+++` lines are headers.
    let mut in_header = false;
    for line in diff.lines() {
        if line.starts_with("diff --git ") {
            in_header = true;
        } else if line.starts_with("@@") {
            in_header = false;
        } else if in_header {
        } else if line.starts_with('+') {
            added += 1;
        } else if line.starts_with('-') {
            removed += 1;
        }
    }
    (added, removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_lines_skip_headers() {
        let patch =
            crate::diff::patch(&[("a.sql".into(), "-- old\nx\n".into(), "--- new\nx\n".into())]);
        assert_eq!(changed_lines(&patch), (1, 1));
    }
}
