//! Live routing from history: the estimator over the store's attempt
//! statistics, per (complexity, error cost, language).
//!
//! The engine calls [`learned_start`] with `store.attempt_stats(..)`; it
//! returns `None` until the static start tier has `routing.adaptive_min_samples`
//! finished attempts in that class, and otherwise the start tier with the
//! least expected cost per solved task among the tiers that have that many
//! samples (the static tier included), with the estimates in its reason.
//! Whether to use it (`routing.adaptive`) is the caller's decision.

use cadre_config::Config;
use cadre_store::AttemptStatRow;
use cadre_types::{Complexity, ErrorCost};
use serde::Serialize;

use super::estimate::{CascadeModel, ClassEstimate, TierCosts, TierEvidence};
use super::paths::{PathChoice, path_from_estimate};

/// A start tier learned from history, and why.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LearnedRoute {
    /// The start tier history recommends (may equal the static one).
    pub tier: String,
    /// What the static rule says, for comparison.
    pub static_tier: String,
    /// "mechanical/low/python: haiku p=0.08 n=24 $0.0512/solve, sonnet
    /// p=0.92 n=24 $0.0330/solve, opus p=0.50 n=0 (< 20 samples) -> start
    /// sonnet (static: haiku)".
    pub reason: String,
}

/// Everything [`learned_start`] looked at, for `cadre routing explain`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LiveDecision {
    /// "complexity/error_cost/language".
    pub class: String,
    /// The static rule's start tier (complexity, raised by a high error cost).
    pub static_tier: String,
    /// Finished attempts at the static tier in this class.
    pub static_samples: u64,
    /// `routing.adaptive_min_samples`.
    pub min_samples: u32,
    /// The estimates per start tier.
    pub estimate: ClassEstimate,
    /// The learned route, when history is sufficient.
    pub learned: Option<LearnedRoute>,
    /// Why (also when `learned` is `None`).
    pub reason: String,
    /// The cheapest path over the tiers with enough history that solves
    /// `routing.min_solved_share` (explanation only: live routing still
    /// picks a start tier).
    pub path: Option<PathChoice>,
    /// The path and its comparison, or why there is none.
    pub path_reason: String,
}

/// The static rule without path patterns or context limits: the
/// complexity's start tier, raised by `routing.high_error_cost_raise` for a
/// high error cost (as [`crate::route::Router`] does).
pub fn static_start(config: &Config, complexity: Complexity, error_cost: ErrorCost) -> String {
    let order = config.ladder_names();
    let base = match complexity {
        Complexity::Mechanical => &config.routing.start_tier.mechanical,
        Complexity::Generative => &config.routing.start_tier.generative,
        Complexity::Reasoning => &config.routing.start_tier.reasoning,
    };
    let mut index = config
        .rung_index(base)
        .unwrap_or(order.len().saturating_sub(1));
    if error_cost == ErrorCost::High {
        index = (index + config.routing.high_error_cost_raise as usize)
            .min(order.len().saturating_sub(1));
    }
    order.get(index).cloned().unwrap_or_default()
}

/// The start tier history recommends for a subtask of this class, or `None`
/// while the static start tier has fewer than `routing.adaptive_min_samples`
/// finished attempts in it. Ignores `routing.adaptive` (the caller checks
/// it). The engine should still never start below the tier the context
/// rule requires.
pub fn learned_start(
    config: &Config,
    stats: &[AttemptStatRow],
    complexity: Complexity,
    error_cost: ErrorCost,
    language: &str,
) -> Option<LearnedRoute> {
    explain_start(config, stats, complexity, error_cost, language).learned
}

/// [`learned_start`] with everything it considered.
pub fn explain_start(
    config: &Config,
    stats: &[AttemptStatRow],
    complexity: Complexity,
    error_cost: ErrorCost,
    language: &str,
) -> LiveDecision {
    let model = CascadeModel::from_config(config);
    let tiers = &model.tiers;
    let class = format!("{complexity}/{error_cost}/{language}");
    let mut evidence = vec![TierEvidence::default(); tiers.len()];
    for row in stats.iter().filter(|r| {
        r.complexity == complexity && r.error_cost == error_cost && r.language == language
    }) {
        if let Some(t) = config.rung_index(&row.tier) {
            add_row(&mut evidence[t], row);
        }
    }
    let fallback = fallback_costs(config, &evidence, stats);
    let min_samples = config.routing.adaptive_min_samples;
    let estimate = model.estimate_from_evidence(&evidence, &fallback, f64::from(min_samples));
    let static_tier = static_start(config, complexity, error_cost);
    let static_index = config.rung_index(&static_tier);
    let static_samples = static_index.map_or(0, |i| evidence[i].trials.round() as u64);
    let described = estimate.describe(f64::from(min_samples));
    let eligible = static_index.is_some_and(|i| estimate.starts[i].eligible);
    let (learned, reason) = if eligible {
        let chosen = estimate
            .best(static_index)
            .or(static_index)
            .and_then(|i| tiers.get(i).cloned())
            .unwrap_or_else(|| static_tier.clone());
        let verdict = if chosen == static_tier {
            format!("-> start {chosen} (same as static)")
        } else {
            format!("-> start {chosen} (static: {static_tier})")
        };
        let reason = format!("{class}: {described} {verdict}");
        (
            Some(LearnedRoute {
                tier: chosen,
                static_tier: static_tier.clone(),
                reason: reason.clone(),
            }),
            reason,
        )
    } else {
        (
            None,
            format!(
                "{class}: {static_tier} has {static_samples} of {min_samples} samples needed -> static {static_tier}"
            ),
        )
    };
    let (path, path_reason) = match path_from_estimate(
        &estimate,
        &model.attempts,
        model.validator,
        config.routing.min_solved_share.parse().unwrap_or_default(),
    ) {
        Ok(choice) => {
            let text = format!("{class}: path {}", choice.describe());
            (Some(choice), text)
        }
        Err(why) => (None, format!("{class}: no path: {why}")),
    };
    LiveDecision {
        class,
        static_tier,
        static_samples,
        min_samples,
        estimate,
        learned,
        reason,
        path,
        path_reason,
    }
}

fn add_row(evidence: &mut TierEvidence, row: &AttemptStatRow) {
    let passed = row.passed.min(row.attempts);
    evidence.trials += row.attempts as f64;
    evidence.successes += passed as f64;
    evidence.success_cost_usd += row.passed_cost_usd.max(0.0);
    evidence.failure_cost_usd += (row.cost_usd - row.passed_cost_usd).max(0.0);
}

/// Prices for tiers this class has no attempts at: the nearest tier the
/// class has seen, scaled by the two models' list prices; else the tier's
/// costs over every class; else zero.
fn fallback_costs(
    config: &Config,
    evidence: &[TierEvidence],
    stats: &[AttemptStatRow],
) -> Vec<TierCosts> {
    let order = config.ladder_names();
    let price = |rung: &str| {
        config
            .models
            .get(config.tier_of_rung(rung))
            .map_or(0.0, |m| m.input_usd_per_mtok + m.output_usd_per_mtok)
    };
    (0..order.len())
        .map(|t| {
            if let Some(costs) = evidence[t].costs() {
                return costs;
            }
            let mut by_distance: Vec<usize> = (0..order.len()).filter(|&u| u != t).collect();
            by_distance.sort_by_key(|&u| (u.abs_diff(t), u));
            for u in by_distance {
                if let Some(costs) = evidence[u].costs() {
                    let (from, to) = (price(&order[u]), price(&order[t]));
                    let scale = if from > 0.0 { to / from } else { 1.0 };
                    return TierCosts {
                        success_usd: costs.success_usd * scale,
                        failure_usd: costs.failure_usd * scale,
                    };
                }
            }
            let mut all = TierEvidence::default();
            for row in stats.iter().filter(|r| r.tier == order[t]) {
                add_row(&mut all, row);
            }
            all.costs().unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::default_embedded().unwrap()
    }

    fn row(
        complexity: Complexity,
        language: &str,
        tier: &str,
        attempts: u64,
        passed: u64,
        each_usd: f64,
    ) -> AttemptStatRow {
        AttemptStatRow {
            complexity,
            error_cost: ErrorCost::Low,
            language: language.into(),
            tier: tier.into(),
            attempts,
            passed,
            cost_usd: attempts as f64 * each_usd,
            passed_cost_usd: passed as f64 * each_usd,
        }
    }

    /// Haiku always fails `n` mechanical python subtasks; sonnet then solves them.
    fn hopeless_haiku(n: u64) -> Vec<AttemptStatRow> {
        vec![
            row(Complexity::Mechanical, "python", "haiku", n, 0, 0.01),
            row(Complexity::Mechanical, "python", "sonnet", n, n, 0.03),
        ]
    }

    #[test]
    fn learn_live_waits_for_the_minimum_sample_count() {
        let c = config();
        assert_eq!(c.routing.adaptive_min_samples, 20);
        let below = hopeless_haiku(19);
        assert_eq!(
            learned_start(&c, &below, Complexity::Mechanical, ErrorCost::Low, "python"),
            None
        );
        let d = explain_start(&c, &below, Complexity::Mechanical, ErrorCost::Low, "python");
        assert_eq!(
            d.reason,
            "mechanical/low/python: haiku has 19 of 20 samples needed -> static haiku"
        );
        let at = hopeless_haiku(20);
        let route =
            learned_start(&c, &at, Complexity::Mechanical, ErrorCost::Low, "python").unwrap();
        assert_eq!(route.tier, "sonnet");
        assert_eq!(route.static_tier, "haiku");
        assert!(
            route
                .reason
                .starts_with("mechanical/low/python: haiku p=0.08 n=20 $"),
            "{}",
            route.reason
        );
        assert!(
            route.reason.ends_with("-> start sonnet (static: haiku)"),
            "{}",
            route.reason
        );
        assert!(route.reason.contains("opus p=0.50 n=0 (< 20 samples)"));
        // Other classes and languages are not affected.
        assert_eq!(
            learned_start(&c, &at, Complexity::Mechanical, ErrorCost::Low, "rust"),
            None
        );
        assert_eq!(
            learned_start(&c, &at, Complexity::Generative, ErrorCost::Low, "python"),
            None
        );
    }

    #[test]
    fn learn_live_respects_the_prior() {
        // A strong prior that haiku usually succeeds outweighs 20 failures.
        let mut c = config();
        c.routing.adaptive_prior_success = 0.95;
        c.routing.adaptive_prior_strength = 2000.0;
        let stats = hopeless_haiku(20);
        let route =
            learned_start(&c, &stats, Complexity::Mechanical, ErrorCost::Low, "python").unwrap();
        assert_eq!(route.tier, "haiku", "{}", route.reason);
        assert!(
            route.reason.ends_with("(same as static)"),
            "{}",
            route.reason
        );
        // With no prior, the failures speak for themselves.
        c.routing.adaptive_prior_strength = 0.0;
        let route =
            learned_start(&c, &stats, Complexity::Mechanical, ErrorCost::Low, "python").unwrap();
        assert_eq!(route.tier, "sonnet");
        assert!(
            route.reason.contains("haiku p=0.00 n=20"),
            "{}",
            route.reason
        );
    }

    #[test]
    fn learn_live_keeps_a_reliable_cheap_tier() {
        let c = config();
        let stats = vec![row(Complexity::Mechanical, "go", "haiku", 40, 38, 0.01)];
        let route =
            learned_start(&c, &stats, Complexity::Mechanical, ErrorCost::Low, "go").unwrap();
        assert_eq!(route.tier, "haiku", "{}", route.reason);
        // Sonnet and opus were never tried, so they cannot be chosen.
        assert!(route.reason.contains("sonnet p=0.50 n=0 (< 20 samples)"));
    }

    #[test]
    fn learn_live_high_error_cost_starts_from_the_raised_tier() {
        let c = config();
        assert_eq!(
            static_start(&c, Complexity::Mechanical, ErrorCost::High),
            "sonnet"
        );
        assert_eq!(
            static_start(&c, Complexity::Reasoning, ErrorCost::High),
            "opus"
        );
        // Plenty of sonnet history, failing; opus always passes.
        let stats = vec![
            AttemptStatRow {
                error_cost: ErrorCost::High,
                ..row(Complexity::Mechanical, "rust", "sonnet", 30, 0, 0.05)
            },
            AttemptStatRow {
                error_cost: ErrorCost::High,
                ..row(Complexity::Mechanical, "rust", "opus", 30, 30, 0.06)
            },
        ];
        let route =
            learned_start(&c, &stats, Complexity::Mechanical, ErrorCost::High, "rust").unwrap();
        assert_eq!(
            (route.tier.as_str(), route.static_tier.as_str()),
            ("opus", "sonnet")
        );
        assert_eq!(
            learned_start(&c, &stats, Complexity::Mechanical, ErrorCost::Low, "rust"),
            None
        );
    }

    #[test]
    fn learn_live_prices_unseen_tiers_from_seen_ones() {
        let c = config();
        let stats = hopeless_haiku(20);
        let d = explain_start(&c, &stats, Complexity::Mechanical, ErrorCost::Low, "python");
        // Opus unseen: sonnet's $0.03 scaled by (5+25)/(3+15).
        let opus = d.estimate.starts[2].first().unwrap();
        assert!((opus.success_cost_usd - 0.05).abs() < 1e-12, "{opus:?}");
    }

    #[test]
    fn learn_prior_keys_are_validated() {
        let mut c = config();
        c.routing.adaptive_prior_success = 1.5;
        c.routing.adaptive_prior_strength = -1.0;
        let keys: Vec<String> = c.problems().into_iter().map(|p| p.key).collect();
        assert!(keys.contains(&"routing.adaptive_prior_success".to_owned()));
        assert!(keys.contains(&"routing.adaptive_prior_strength".to_owned()));
    }
}
