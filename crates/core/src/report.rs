//! The job report, recomputed from the store's ledger of model calls.

use std::collections::{BTreeMap, HashMap};

use cadre_config::Config;
use cadre_llm::types::Usage;
use cadre_store::{AttemptRecord, CallRecord, JobRecord, SubtaskRecord};
use cadre_types::{
    AttemptId, CacheCalls, CostSummary, JobReport, Role, SubtaskReport, TokenTotals,
};

use crate::pricing::{cache_savings, price_usage};

/// Builds the report of a job from its records. Costs come from the calls
/// ledger, so a call is counted once even when a resumed attempt replayed it.
pub fn build_report(
    config: &Config,
    job: &JobRecord,
    subtasks: &[SubtaskRecord],
    attempts: &[AttemptRecord],
    calls: &[CallRecord],
) -> JobReport {
    let top = config.tiers.order.last().and_then(|t| config.models.get(t));
    let mut cost = CostSummary {
        budget_usd: job.budget_usd,
        ..CostSummary::default()
    };
    let mut tokens = TokenTotals::default();
    let mut by_attempt: HashMap<AttemptId, f64> = HashMap::new();
    let mut cache_calls = CacheCalls::default();
    for call in calls {
        if call.cache_read_tokens > 0 {
            cache_calls.read += 1;
        } else if call.cache_write_tokens > 0 {
            cache_calls.wrote += 1;
        } else {
            cache_calls.missed += 1;
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
        if let Some(top) = top {
            cost.all_top_tier_usd += price_usage(top, &usage, call.batch);
        }
        if let Some(model) = config.models.get(&call.tier) {
            cost.cache_savings_usd += cache_savings(model, &usage, call.batch);
        }
        tokens.input += call.input_tokens;
        tokens.output += call.output_tokens;
        tokens.cache_read += call.cache_read_tokens;
        tokens.cache_write += call.cache_write_tokens;
        *by_attempt.entry(call.attempt_id).or_default() += call.cost_usd;
    }
    let prompt = tokens.input + tokens.cache_read + tokens.cache_write;
    let cache_read_share = if prompt == 0 {
        0.0
    } else {
        tokens.cache_read as f64 / prompt as f64
    };
    let mut per_subtask: BTreeMap<String, (u32, f64, Vec<String>)> = BTreeMap::new();
    for a in attempts.iter().filter(|a| a.role == Role::Worker) {
        let Some(sub) = a.subtask_id else { continue };
        let entry = per_subtask.entry(sub.to_string()).or_default();
        entry.0 += 1;
        entry.1 += by_attempt.get(&a.id).copied().unwrap_or(0.0);
        if entry.2.last() != Some(&a.tier) {
            entry.2.push(a.tier.clone());
        }
    }
    let mut escalations = 0;
    let mut rows = Vec::new();
    for s in subtasks {
        let (attempt_count, sub_cost, tiers) =
            per_subtask.remove(&s.id.to_string()).unwrap_or_default();
        escalations += tiers.len().saturating_sub(1) as u32;
        let reason = if s.reason.is_empty() {
            s.route_reason.clone()
        } else {
            s.reason.clone()
        };
        rows.push(SubtaskReport {
            subtask_id: s.id,
            path: s.path.clone(),
            complexity: s.complexity,
            error_cost: s.error_cost,
            start_tier: s.start_tier.clone(),
            final_tier: tiers
                .last()
                .cloned()
                .unwrap_or_else(|| s.start_tier.clone()),
            status: s.status,
            attempts: attempt_count,
            reason,
            cost_usd: sub_cost,
        });
    }
    JobReport {
        job_id: job.id,
        status: job.status,
        instruction: job.instruction.clone(),
        workspace: job.workspace.clone(),
        reason: job.reason.clone(),
        wall_ms: job.wall_ms,
        escalations,
        subtasks: rows,
        cost,
        tokens,
        cache_read_share,
        cache_calls,
        files_changed: job.files_changed,
        lines_added: job.lines_added,
        lines_removed: job.lines_removed,
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
