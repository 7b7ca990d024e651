//! Live routing along learned paths: per class of subtask, the ordered
//! subsequence of the ladder's rungs (skipping rungs, maybe stopping below
//! the top) with the least expected cost whose expected solved share meets
//! `routing.min_solved_share`, from the store's rung statistics
//! ([`cadre_store::RungStatRow`]).
//!
//! - **Conditioned on how a rung was reached.** A rung's success chance is
//!   estimated separately for subtasks that started there and for subtasks
//!   that escalated into it (the latter are the ones cheaper rungs failed,
//!   so usually harder). A path's first rung uses the started estimate, the
//!   others the escalated one. Each is shrunk towards the rung's pooled
//!   rate with `routing.adaptive_prior_strength` pseudo-attempts.
//! - **Thin classes borrow.** The class `complexity/error_cost/language`
//!   has parents `complexity/error_cost`, `complexity` and the root (every
//!   subtask); a class with fewer than `routing.adaptive_min_samples`
//!   attempts at a rung (per way of reaching it) is filled up to that count
//!   with its parent's rate and costs, recursively.
//! - **Eligibility.** Only rungs with at least `adaptive_min_samples`
//!   attempts (own and borrowed) take part, and the top rung must be one of
//!   them (the constraint is measured against it); otherwise there is no
//!   path and the caller keeps the start-tier router.
//! - **Exploration.** A `routing.explore_share` of subtasks draws every
//!   rung's chances from their Beta posteriors (Thompson sampling) and takes
//!   the path that is best under the draw, over every rung, eligible or not,
//!   so a rung that stopped getting traffic is tried again.
//!
//! Costs come from the attempts recorded at each rung (so effort's effect
//! on output tokens is measured, not assumed); a rung with no attempts is
//! priced from the nearest rung that has some, scaled by list prices.

use std::collections::BTreeMap;

use cadre_config::Config;
use cadre_store::RungStatRow;
use cadre_types::{Complexity, ErrorCost};
use serde::Serialize;

use super::estimate::{Prior, TierCosts, TierEvidence, Validator, run_cascade, usd};
use super::paths::{MinSolved, PathEstimate, all_paths, parent_class};
use super::rng::SplitMix64;

/// What is known about one rung in one class, by how it was reached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct RungEvidence {
    /// Attempts of subtasks that started at the rung.
    pub started: TierEvidence,
    /// Attempts of subtasks that escalated into it.
    pub escalated: TierEvidence,
}

impl RungEvidence {
    /// Both ways of reaching the rung together.
    pub fn pooled(&self) -> TierEvidence {
        TierEvidence {
            trials: self.started.trials + self.escalated.trials,
            successes: self.started.successes + self.escalated.successes,
            success_cost_usd: self.started.success_cost_usd + self.escalated.success_cost_usd,
            failure_cost_usd: self.started.failure_cost_usd + self.escalated.failure_cost_usd,
        }
    }
}

/// One rung's estimate in one class.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RungEstimate {
    /// The rung.
    pub rung: String,
    /// Attempts the estimate rests on, own and borrowed.
    pub trials: f64,
    /// Whether it has enough of them to take part in a learned path.
    pub eligible: bool,
    /// Chance an attempt succeeds when the subtask starts at the rung.
    pub p_started: f64,
    /// Chance an attempt succeeds when the subtask escalated into it.
    pub p_escalated: f64,
    /// Cost of an attempt by outcome.
    pub costs: TierCosts,
}

/// The path adaptive routing chose for one subtask, with its estimate.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RoutedPath {
    /// "complexity/error_cost/language".
    pub class: String,
    /// Rung names, cheapest first.
    pub path: Vec<String>,
    /// Expected solved share of the path.
    pub solved_share: f64,
    /// Expected cost per subtask of the path.
    pub cost_usd: f64,
    /// Every rung from the lowest allowed up: solved share and cost.
    pub cascade: [f64; 2],
    /// The top rung alone: solved share and cost.
    pub top: [f64; 2],
    /// Whether the path was sampled to explore.
    pub explored: bool,
    /// Why, with the rung estimates.
    pub reason: String,
}

impl RoutedPath {
    /// "haiku -> sonnet: 97% at $0.0210 (cascade 99% at $0.0300, top alone
    /// 97% at $0.0500)".
    pub fn describe(&self) -> String {
        format!(
            "{}: {:.0}% at {} (cascade {:.0}% at {}, top alone {:.0}% at {})",
            self.path.join(" -> "),
            self.solved_share * 100.0,
            usd(self.cost_usd),
            self.cascade[0] * 100.0,
            usd(self.cascade[1]),
            self.top[0] * 100.0,
            usd(self.top[1])
        )
    }
}

/// The class label live routing learns by.
pub fn class_label(complexity: Complexity, error_cost: ErrorCost, language: &str) -> String {
    format!("{complexity}/{error_cost}/{language}")
}

/// Every rung's estimate for a class (with its parents' borrowed evidence).
pub fn rung_estimates(config: &Config, stats: &[RungStatRow], class: &str) -> Vec<RungEstimate> {
    let ladder = config.ladder_names();
    let sums = node_sums(config, stats);
    let min = f64::from(config.routing.adaptive_min_samples);
    let evidence = effective(class, &sums, min, ladder.len());
    let prior = Prior::from_config(config);
    let shrink = prior.strength.max(1.0);
    let costs = rung_costs(config, &evidence);
    evidence
        .iter()
        .zip(costs)
        .enumerate()
        .map(|(t, (e, costs))| {
            let pooled = e.pooled();
            let rate = prior.posterior_mean(pooled.successes, pooled.trials);
            let conditioned =
                |k: &TierEvidence| (k.successes + shrink * rate) / (k.trials + shrink);
            RungEstimate {
                rung: ladder[t].clone(),
                trials: pooled.trials,
                eligible: pooled.trials + 1e-9 >= min,
                p_started: conditioned(&e.started),
                p_escalated: conditioned(&e.escalated),
                costs,
            }
        })
        .collect()
}

/// The learned path for a subtask of this class whose prompt needs at least
/// rung `floor`, or why there is none. `seed` decides (with
/// `routing.explore_share`) whether this subtask explores, and its draw;
/// `None` never explores (explanations).
pub fn learned_path(
    config: &Config,
    stats: &[RungStatRow],
    complexity: Complexity,
    error_cost: ErrorCost,
    language: &str,
    floor: usize,
    seed: Option<u64>,
) -> std::result::Result<RoutedPath, String> {
    let class = class_label(complexity, error_cost, language);
    let estimates = rung_estimates(config, stats, &class);
    let n = estimates.len();
    let top = n.saturating_sub(1);
    let min = config.routing.adaptive_min_samples;
    let Some(top_estimate) = estimates.get(top) else {
        return Err(format!("{class}: the ladder has no rungs"));
    };
    if !top_estimate.eligible {
        return Err(format!(
            "{class}: no learned path: the top rung {} has {:.0} of {min} attempts needed to compare paths against",
            top_estimate.rung, top_estimate.trials
        ));
    }
    let min_solved: MinSolved = config.routing.min_solved_share.parse().unwrap_or_default();
    let attempts: Vec<u32> = estimates
        .iter()
        .map(|e| config.attempts_for_rung(&e.rung))
        .collect();
    let mut rng = SplitMix64::new(seed.unwrap_or(0));
    let explored = seed.is_some() && rng.next_f64() < config.routing.explore_share;
    let paths: Vec<Vec<usize>> = all_paths(n)
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|p| p.iter().all(|&t| t >= floor))
        .filter(|p| explored || p.iter().all(|&t| estimates[t].eligible))
        .collect();
    let Some(top_index) = paths.iter().position(|p| p.as_slice() == [top]) else {
        return Err(format!("{class}: no path reaches the top rung"));
    };
    let mean: Vec<(f64, f64)> = estimates
        .iter()
        .map(|e| (e.p_started, e.p_escalated))
        .collect();
    let chances = if explored {
        sampled_chances(config, stats, &class, &mut rng)
    } else {
        mean.clone()
    };
    let score = |chances: &[(f64, f64)], path: &[usize]| {
        let rungs: Vec<(f64, TierCosts)> = path
            .iter()
            .enumerate()
            .map(|(i, &t)| {
                let p = if i == 0 { chances[t].0 } else { chances[t].1 };
                (p, estimates[t].costs)
            })
            .collect();
        let tries: Vec<u32> = path.iter().map(|&t| attempts[t]).collect();
        run_cascade(&rungs, &tries, Validator::PERFECT)
    };
    let outcomes: Vec<_> = paths.iter().map(|p| score(&chances, p)).collect();
    let choice = PathEstimate {
        share: outcomes.iter().map(|o| o.solve_probability).collect(),
        cost: outcomes.iter().map(|o| o.expected_cost_usd).collect(),
        own_tasks: 0,
        borrowed: None,
    }
    .choose(top_index, min_solved);
    let chosen = &paths[choice];
    let expected = score(&mean, chosen);
    let full: Vec<usize> = (floor.min(top)..n).collect();
    let cascade = score(&mean, &full);
    let top_alone = score(&mean, &[top]);
    let names: Vec<String> = chosen.iter().map(|&t| estimates[t].rung.clone()).collect();
    let described: Vec<String> = estimates
        .iter()
        .map(|e| {
            format!(
                "{} p={:.2}/{:.2} n={:.0}{}",
                e.rung,
                e.p_started,
                e.p_escalated,
                e.trials,
                if e.eligible { "" } else { " (too few)" }
            )
        })
        .collect();
    let mut routed = RoutedPath {
        class: class.clone(),
        path: names,
        solved_share: expected.solve_probability,
        cost_usd: expected.expected_cost_usd,
        cascade: [cascade.solve_probability, cascade.expected_cost_usd],
        top: [top_alone.solve_probability, top_alone.expected_cost_usd],
        explored,
        reason: String::new(),
    };
    routed.reason = format!(
        "{class}: {} (started/escalated) -> {}path {} [min solved {min_solved}]",
        described.join(", "),
        if explored { "exploring: " } else { "" },
        routed.describe()
    );
    Ok(routed)
}

/// Per rung, (started, escalated) chances drawn from their Beta posteriors
/// around the class's pooled rate.
fn sampled_chances(
    config: &Config,
    stats: &[RungStatRow],
    class: &str,
    rng: &mut SplitMix64,
) -> Vec<(f64, f64)> {
    let sums = node_sums(config, stats);
    let min = f64::from(config.routing.adaptive_min_samples);
    let evidence = effective(class, &sums, min, config.ladder_names().len());
    let prior = Prior::from_config(config);
    let shrink = prior.strength.max(1.0);
    evidence
        .iter()
        .map(|e| {
            let pooled = e.pooled();
            let rate = prior.posterior_mean(pooled.successes, pooled.trials);
            let mut draw = |k: &TierEvidence| {
                let a = k.successes + shrink * rate;
                let b = k.failures() + shrink * (1.0 - rate);
                rng.beta(a.max(1e-3), b.max(1e-3))
            };
            (draw(&e.started), draw(&e.escalated))
        })
        .collect()
}

/// Evidence per class node (`a/b/c`, `a/b`, `a`, root `""`) and rung.
fn node_sums(config: &Config, stats: &[RungStatRow]) -> BTreeMap<String, Vec<RungEvidence>> {
    let n = config.ladder_names().len();
    let mut sums: BTreeMap<String, Vec<RungEvidence>> = BTreeMap::new();
    for row in stats {
        let Some(t) = config.rung_index(&row.rung) else {
            continue;
        };
        let label = class_label(row.complexity, row.error_cost, &row.language);
        let mut node = Some(label.as_str());
        while let Some(at) = node {
            let rungs = sums
                .entry(at.to_owned())
                .or_insert_with(|| vec![RungEvidence::default(); n]);
            let kind = if row.started {
                &mut rungs[t].started
            } else {
                &mut rungs[t].escalated
            };
            let passed = row.passed.min(row.attempts) as f64;
            kind.trials += row.attempts as f64;
            kind.successes += passed;
            kind.success_cost_usd += row.passed_cost_usd.max(0.0);
            kind.failure_cost_usd += (row.cost_usd - row.passed_cost_usd).max(0.0);
            node = parent_class(at);
        }
    }
    sums
}

/// A class's evidence, each (rung, way reached) under `min` attempts filled
/// up to `min` with its parent's, recursively; the root stands alone.
fn effective(
    label: &str,
    sums: &BTreeMap<String, Vec<RungEvidence>>,
    min: f64,
    n: usize,
) -> Vec<RungEvidence> {
    let own = sums
        .get(label)
        .cloned()
        .unwrap_or_else(|| vec![RungEvidence::default(); n]);
    let Some(parent_label) = parent_class(label) else {
        return own;
    };
    let parent = effective(parent_label, sums, min, n);
    let fill = |mine: TierEvidence, theirs: TierEvidence| {
        let wanted = min - mine.trials;
        if wanted <= 0.0 || theirs.trials <= 0.0 {
            return mine;
        }
        let scale = wanted.min(theirs.trials) / theirs.trials;
        TierEvidence {
            trials: mine.trials + theirs.trials * scale,
            successes: mine.successes + theirs.successes * scale,
            success_cost_usd: mine.success_cost_usd + theirs.success_cost_usd * scale,
            failure_cost_usd: mine.failure_cost_usd + theirs.failure_cost_usd * scale,
        }
    };
    own.iter()
        .zip(parent)
        .map(|(mine, theirs)| RungEvidence {
            started: fill(mine.started, theirs.started),
            escalated: fill(mine.escalated, theirs.escalated),
        })
        .collect()
}

/// Each rung's attempt costs: its own; else the nearest rung's with some,
/// scaled by the two tiers' list prices; else zero.
fn rung_costs(config: &Config, evidence: &[RungEvidence]) -> Vec<TierCosts> {
    let ladder = config.ladder_names();
    let price = |rung: &str| {
        config
            .models
            .get(config.tier_of_rung(rung))
            .map_or(0.0, |m| m.input_usd_per_mtok + m.output_usd_per_mtok)
    };
    (0..evidence.len())
        .map(|t| {
            if let Some(costs) = evidence[t].pooled().costs() {
                return costs;
            }
            let mut by_distance: Vec<usize> = (0..evidence.len()).filter(|&u| u != t).collect();
            by_distance.sort_by_key(|&u| (u.abs_diff(t), u));
            by_distance
                .into_iter()
                .find_map(|u| {
                    let costs = evidence[u].pooled().costs()?;
                    let (from, to) = (price(&ladder[u]), price(&ladder[t]));
                    let scale = if from > 0.0 { to / from } else { 1.0 };
                    Some(TierCosts {
                        success_usd: costs.success_usd * scale,
                        failure_usd: costs.failure_usd * scale,
                    })
                })
                .unwrap_or_default()
        })
        .collect()
}

/// Sums rung statistics over the way each rung was reached: the per-tier
/// rows the start-tier router ([`super::learned_start`]) reads.
pub fn attempt_rows(stats: &[RungStatRow]) -> Vec<cadre_store::AttemptStatRow> {
    let mut rows: BTreeMap<(String, String, String, String), cadre_store::AttemptStatRow> =
        BTreeMap::new();
    for r in stats {
        let key = (
            r.complexity.to_string(),
            r.error_cost.to_string(),
            r.language.clone(),
            r.rung.clone(),
        );
        let row = rows
            .entry(key)
            .or_insert_with(|| cadre_store::AttemptStatRow {
                complexity: r.complexity,
                error_cost: r.error_cost,
                language: r.language.clone(),
                tier: r.rung.clone(),
                attempts: 0,
                passed: 0,
                cost_usd: 0.0,
                passed_cost_usd: 0.0,
            });
        row.attempts += r.attempts;
        row.passed += r.passed;
        row.cost_usd += r.cost_usd;
        row.passed_cost_usd += r.passed_cost_usd;
    }
    rows.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        let mut c = Config::default_embedded().unwrap();
        c.routing.explore_share = 0.0;
        c
    }

    /// `attempts` attempts at `rung` for mechanical/low/`language`, `passed`
    /// of them passing, each costing `each_usd`.
    fn row(
        language: &str,
        rung: &str,
        started: bool,
        attempts: u64,
        passed: u64,
        each_usd: f64,
    ) -> RungStatRow {
        RungStatRow {
            complexity: Complexity::Mechanical,
            error_cost: ErrorCost::Low,
            language: language.into(),
            rung: rung.into(),
            started,
            attempts,
            passed,
            cost_usd: attempts as f64 * each_usd,
            passed_cost_usd: passed as f64 * each_usd,
            output_tokens: attempts * 100,
        }
    }

    fn path(c: &Config, stats: &[RungStatRow], language: &str) -> Result<RoutedPath, String> {
        learned_path(
            c,
            stats,
            Complexity::Mechanical,
            ErrorCost::Low,
            language,
            0,
            Some(7),
        )
    }

    #[test]
    fn live_path_conditions_on_how_a_rung_was_reached() {
        let c = config();
        // Sonnet solves 90% of what starts there but 10% of what haiku
        // failed first; haiku never solves anything.
        let stats = vec![
            row("py", "haiku", true, 30, 0, 0.01),
            row("py", "sonnet", true, 30, 27, 0.03),
            row("py", "sonnet", false, 30, 3, 0.03),
            row("py", "opus", true, 30, 27, 0.05),
        ];
        let e = rung_estimates(&c, &stats, "mechanical/low/py");
        assert!(e[1].p_started > 0.8 && e[1].p_escalated < 0.2, "{e:?}");
        let routed = path(&c, &stats, "py").unwrap();
        // Starting at sonnet (its started rate) matches opus for less; a
        // pooled estimate (50%) would not.
        assert_eq!(routed.path, ["sonnet"], "{}", routed.reason);
        assert!(routed.reason.contains("sonnet p=0."), "{}", routed.reason);
        assert!(routed.reason.contains("top alone"), "{}", routed.reason);
        assert!(!routed.explored);
    }

    #[test]
    fn live_path_stops_below_the_top_when_the_top_adds_nothing() {
        let c = config();
        let stats = vec![
            row("go", "haiku", true, 30, 27, 0.01),
            row("go", "sonnet", false, 30, 30, 0.03),
            row("go", "opus", true, 20, 20, 0.05),
        ];
        let routed = path(&c, &stats, "go").unwrap();
        assert_eq!(routed.path, ["haiku", "sonnet"], "{}", routed.reason);
        assert!(routed.solved_share >= routed.top[0] - 1e-9);
        assert!(routed.cost_usd < routed.top[1]);
    }

    #[test]
    fn live_path_needs_top_rung_history_and_thin_classes_borrow() {
        let mut c = config();
        let thin = vec![row("rs", "haiku", true, 30, 0, 0.01)];
        let why = path(&c, &thin, "rs").unwrap_err();
        assert!(why.contains("top rung opus has 0 of 20 attempts"), "{why}");
        // Rust has 2 attempts of its own, at haiku; everything else comes
        // from its parents (without them opus would have no history here
        // and there would be no path).
        c.routing.adaptive_min_samples = 10;
        let stats = vec![
            row("py", "haiku", true, 30, 0, 0.01),
            row("py", "sonnet", false, 30, 29, 0.03),
            row("py", "sonnet", true, 30, 29, 0.03),
            row("py", "opus", true, 30, 29, 0.05),
            row("rs", "haiku", true, 2, 0, 0.01),
        ];
        let e = rung_estimates(&c, &stats, "mechanical/low/rs");
        assert!((e[0].trials - 10.0).abs() < 1e-9, "{e:?}");
        assert!(e[0].p_started < 0.4, "{e:?}");
        let routed = path(&c, &stats, "rs").unwrap();
        assert_eq!(routed.path[0], "sonnet", "{}", routed.reason);
    }

    #[test]
    fn live_path_exploration_retries_an_unused_rung() {
        let mut c = config();
        // Haiku has no history at all: never on a learned path.
        let stats = vec![
            row("js", "sonnet", true, 30, 27, 0.03),
            row("js", "opus", false, 30, 27, 0.05),
            row("js", "opus", true, 30, 27, 0.05),
        ];
        let paths = |c: &Config| -> Vec<RoutedPath> {
            (0..200)
                .map(|seed| {
                    learned_path(
                        c,
                        &stats,
                        Complexity::Mechanical,
                        ErrorCost::Low,
                        "js",
                        0,
                        Some(seed),
                    )
                    .unwrap()
                })
                .collect()
        };
        assert!(
            paths(&c)
                .iter()
                .all(|p| !p.explored && p.path[0] != "haiku")
        );
        c.routing.explore_share = 0.25;
        let routed = paths(&c);
        let explored = routed.iter().filter(|p| p.explored).count();
        assert!((25..=75).contains(&explored), "{explored} of 200 explored");
        assert!(
            routed.iter().any(|p| p.explored && p.path[0] == "haiku"),
            "exploration should try haiku sometimes"
        );
        // Never explore where the caller says not to.
        assert!(
            !learned_path(
                &c,
                &stats,
                Complexity::Mechanical,
                ErrorCost::Low,
                "js",
                0,
                None
            )
            .unwrap()
            .explored
        );
        // Nor below the rung the prompt needs.
        assert!((0..50).all(|seed| {
            learned_path(
                &c,
                &stats,
                Complexity::Mechanical,
                ErrorCost::Low,
                "js",
                1,
                Some(seed),
            )
            .unwrap()
            .path
            .iter()
            .all(|r| r != "haiku")
        }));
    }
}
