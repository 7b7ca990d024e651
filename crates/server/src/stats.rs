//! `GET /v1/stats`: what `cadre stats` prints, as JSON for the dashboard's
//! `/stats` page: success rate per (complexity, error cost, tier), cost per
//! accepted file, escalation rate, the start tier history recommends for
//! each (complexity, error cost, language) with its estimates, and the
//! codemod tier's attempts, acceptance rate and savings.

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::extract::State;
use cadre_core::codemod::{CODEMOD_TIER, stats_summary};
use cadre_core::learn::explain_start;
use cadre_store::{AttemptStatRow, SubtaskOutcomeStats};
use cadre_types::api::{ClassStats, LearnedStart, StartTierEstimate, StatsQuery, StatsReport};
use cadre_types::{Complexity, ErrorCost};

use crate::api::AppQuery;
use crate::error::ApiError;
use crate::state::AppState;

/// `part / whole`, 0 when `whole` is 0.
fn ratio(part: f64, whole: f64) -> f64 {
    if whole > 0.0 { part / whole } else { 0.0 }
}

/// Sums the rows over languages, per (complexity, error cost, tier), as
/// `cadre stats` groups them.
fn classes(rows: &[AttemptStatRow]) -> Vec<ClassStats> {
    let mut grouped: BTreeMap<(Complexity, ErrorCost, String), (u64, u64, f64)> = BTreeMap::new();
    for row in rows {
        let e = grouped
            .entry((row.complexity, row.error_cost, row.tier.clone()))
            .or_default();
        e.0 += row.attempts;
        e.1 += row.passed;
        e.2 += row.cost_usd;
    }
    grouped
        .into_iter()
        .map(
            |((complexity, error_cost, tier), (attempts, passed, cost_usd))| ClassStats {
                complexity,
                error_cost,
                tier,
                attempts,
                passed,
                success_rate: ratio(passed as f64, attempts as f64),
                cost_usd,
            },
        )
        .collect()
}

/// The learned start of every (complexity, error cost, language) the rows have.
fn learned(state: &AppState, rows: &[AttemptStatRow]) -> Vec<LearnedStart> {
    let config = state.engine().config();
    let seen: BTreeSet<(Complexity, ErrorCost, &str)> = rows
        .iter()
        .map(|r| (r.complexity, r.error_cost, r.language.as_str()))
        .collect();
    seen.into_iter()
        .map(|(complexity, error_cost, language)| {
            let d = explain_start(config, rows, complexity, error_cost, language);
            LearnedStart {
                class: d.class,
                static_tier: d.static_tier,
                static_samples: d.static_samples,
                min_samples: d.min_samples,
                learned_tier: d.learned.map(|l| l.tier),
                adaptive: config.routing.adaptive,
                reason: d.reason,
                starts: d
                    .estimate
                    .starts
                    .iter()
                    .map(|s| StartTierEstimate {
                        tier: s.tier.clone(),
                        trials: s.first().map_or(0.0, |f| f.trials),
                        p_success: s.first().map_or(0.0, |f| f.p_success),
                        solve_probability: s.solve_probability,
                        expected_cost_usd: s.expected_cost_usd,
                        cost_per_solve_usd: s.cost_per_solve_usd,
                        eligible: s.eligible,
                    })
                    .collect(),
            }
        })
        .collect()
}

pub(crate) async fn stats(
    State(state): State<AppState>,
    AppQuery(query): AppQuery<StatsQuery>,
) -> Result<Json<StatsReport>, ApiError> {
    let rows = state.store().attempt_stats(query.since).await?;
    let SubtaskOutcomeStats {
        subtasks,
        accepted,
        needs_human,
        escalated,
        accepted_cost_usd,
    } = state.store().subtask_outcome_stats(query.since).await?;
    let accepted_at_codemod = state
        .store()
        .accepted_at_tier(CODEMOD_TIER, query.since)
        .await?;
    let codemod = stats_summary(state.engine().config(), &rows, &accepted_at_codemod);
    Ok(Json(StatsReport {
        since: query.since,
        classes: classes(&rows),
        subtasks,
        accepted,
        needs_human,
        escalated,
        escalation_rate: ratio(escalated as f64, subtasks as f64),
        mean_cost_per_accepted_usd: ratio(accepted_cost_usd, accepted as f64),
        learned: learned(&state, &rows),
        codemod,
    }))
}
