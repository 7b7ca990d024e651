//! `cadre routing replay`: routing policies replayed over a table of real
//! per-task outcomes.
//!
//! Every policy is scored by exact expectation over each task's cells (a
//! cell's solved value is the chance an attempt at that tier solves the
//! task; each attempt costs the cell's cost), so 0/1 tables replay exactly
//! and probability tables need no sampling. Policies:
//!
//! - `always:<tier>`: that tier only, its attempts, then a human;
//! - `static`: the cascade from the class's static start tier (explicit
//!   class map, else a class named like a complexity uses
//!   `routing.start_tier`, else the middle tier);
//! - `cascade`: the cascade from the cheapest tier;
//! - `learned`: the cascade from the start tier the estimator picks for the
//!   class, trained by k-fold cross-validation on the other folds only (a
//!   class with fewer than the minimum training rows keeps its static tier);
//! - `path`: the path ([`super::paths`]) learned for the class under the
//!   solved-share constraint, trained on the other folds only (a thin class
//!   borrows from its parents); `--frontier` scores it under a range of
//!   constraints;
//! - `oracle`: the cheapest tier that solves the task (by that task's
//!   costs), else the cheapest tier; no validator, one attempt.
//!
//! Confidence intervals come from a seeded percentile bootstrap over tasks
//! (the learned policy's cross-validated per-task results are resampled,
//! not retrained).

mod apgr;
mod cv;
mod types;

use std::collections::BTreeMap;

use cadre_config::Config;
use cadre_types::Complexity;

use self::cv::{CvSetup, cross_validate, fit_all};
use self::types::class_label;
pub use self::types::{
    ALL_CLASS, ClassReport, FrontierPoint, Metric, PathFit, Policy, PolicyReport, ReplayOptions,
    ReplayReport,
};
use super::estimate::{CascadeModel, CascadeOutcome, OutcomeCell, TierCosts, run_cascade};
use super::outcomes::OutcomeTable;
use super::paths::MinSolved;
use super::rng::SplitMix64;
use crate::{Error, Result};

/// The constraints `--frontier` scores `path` under, after the chosen one.
const FRONTIER: [f64; 9] = [0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.975, 1.0];

/// Replays the policies over the table.
pub fn replay(
    config: &Config,
    table: &OutcomeTable,
    options: &ReplayOptions,
) -> Result<ReplayReport> {
    let tiers = &table.tiers;
    let n_tiers = tiers.len();
    if n_tiers == 0 || table.rows.is_empty() {
        return Err(Error::InvalidInput(
            "replay: the outcome table has no tiers or no tasks".into(),
        ));
    }
    if table.rows.iter().any(|r| r.cells.len() != n_tiers) {
        return Err(Error::InvalidInput(
            "replay: a row's cells do not match the table's tiers".into(),
        ));
    }
    if options.folds < 2 {
        return Err(Error::InvalidInput(format!(
            "--folds must be >= 2, got {}",
            options.folds
        )));
    }
    for (tier, &n) in &options.attempts {
        if !tiers.contains(tier) {
            return Err(Error::InvalidInput(format!(
                "--attempts {tier}={n}: tier {tier} has no column in the outcomes (tiers: {})",
                tiers.join(", ")
            )));
        }
        if n == 0 {
            return Err(Error::InvalidInput(format!(
                "--attempts {tier}=0: attempts must be >= 1"
            )));
        }
    }
    for (class, tier) in &options.class_tiers {
        if config.tier_index(tier).is_none() {
            return Err(Error::InvalidInput(format!(
                "--class-tier {class}={tier}: {tier:?} is not a tier (tiers.order: {})",
                config.tiers.order.join(", ")
            )));
        }
    }
    let mut wanted = if options.policies.is_empty() {
        let mut all: Vec<Policy> = tiers.iter().cloned().map(Policy::Always).collect();
        all.extend([
            Policy::Static,
            Policy::Cascade,
            Policy::Learned,
            Policy::Path,
            Policy::Oracle,
        ]);
        all
    } else {
        options.policies.clone()
    };
    let mut seen = Vec::new();
    wanted.retain(|p| {
        let fresh = !seen.contains(p);
        seen.push(p.clone());
        fresh
    });
    for policy in &wanted {
        if let Policy::Always(tier) = policy
            && !tiers.contains(tier)
        {
            return Err(Error::InvalidInput(format!(
                "policy {policy}: tier {tier} has no column in the outcomes (tiers: {})",
                tiers.join(", ")
            )));
        }
    }

    let attempts: Vec<u32> = tiers
        .iter()
        .map(|t| options.attempts.get(t).copied().unwrap_or(1))
        .collect();
    let model = CascadeModel {
        tiers: tiers.clone(),
        attempts: attempts.clone(),
        prior: options.prior,
        validator: options.validator,
    };
    let rows = &table.rows;
    let n = rows.len();
    let cascade = |row: &[OutcomeCell], start: usize, last: usize| {
        let cells: Vec<(f64, TierCosts)> = row[start..=last]
            .iter()
            .map(|c| {
                (
                    c.p,
                    TierCosts {
                        success_usd: c.cost_usd,
                        failure_usd: c.cost_usd,
                    },
                )
            })
            .collect();
        run_cascade(&cells, &attempts[start..=last], options.validator)
    };

    // Classes and their static tiers.
    let mut class_rows: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, row) in rows.iter().enumerate() {
        class_rows.entry(row.class.as_str()).or_default().push(i);
    }
    for class in options.class_tiers.keys() {
        let label = if class == ALL_CLASS {
            ""
        } else {
            class.as_str()
        };
        if !class_rows.contains_key(label) {
            return Err(Error::InvalidInput(format!(
                "--class-tier {class}: no such class in the outcomes (classes: {})",
                class_rows
                    .keys()
                    .map(|c| class_label(c))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    let baseline = match &options.baseline {
        None => n_tiers - 1,
        Some(name) => table
            .columns
            .iter()
            .position(|c| c.tier == *name || c.column == *name)
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "--baseline {name}: no such tier or column (tiers: {})",
                    table
                        .columns
                        .iter()
                        .map(|c| format!("{} ({})", c.tier, c.column))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?,
    };
    let static_of: BTreeMap<&str, usize> = class_rows
        .keys()
        .map(|&c| (c, static_index(config, tiers, &options.class_tiers, c)))
        .collect();

    // Cross-validated learned starts.
    let mut rng = SplitMix64::new(options.seed);
    let folds = options.folds.min(n).max(1);
    let mut fold_of = vec![0usize; n];
    let mut next = 0usize;
    for members in class_rows.values() {
        let mut shuffled = members.clone();
        rng.shuffle(&mut shuffled);
        for i in shuffled {
            fold_of[i] = next % folds;
            next += 1;
        }
    }
    let min_samples = options.min_samples.max(1) as usize;
    let mut learned_start = vec![0usize; n];
    let mut learned_counts: BTreeMap<&str, BTreeMap<String, usize>> = BTreeMap::new();
    for fold in 0..folds {
        for (&class, members) in &class_rows {
            let test: Vec<usize> = members
                .iter()
                .copied()
                .filter(|&i| fold_of[i] == fold)
                .collect();
            if test.is_empty() {
                continue;
            }
            let train: Vec<&[OutcomeCell]> = members
                .iter()
                .filter(|&&i| fold_of[i] != fold)
                .map(|&i| rows[i].cells.as_slice())
                .collect();
            let fallback = static_of[class];
            let start = if train.len() >= min_samples {
                model
                    .estimate_from_rows(&train)
                    .best(Some(fallback))
                    .unwrap_or(fallback)
            } else {
                fallback
            };
            *learned_counts
                .entry(class)
                .or_default()
                .entry(tiers[start].clone())
                .or_default() += 1;
            for i in test {
                learned_start[i] = start;
            }
        }
    }

    // Cross-validated paths, under the chosen constraint and the frontier's.
    let mut constraints = vec![options.min_solved];
    if options.frontier {
        constraints.push(MinSolved::Top);
        constraints.extend(FRONTIER.map(MinSolved::Share));
        let mut seen = Vec::new();
        constraints.retain(|c| {
            let fresh = !seen.contains(c);
            seen.push(*c);
            fresh
        });
    }
    let setup = CvSetup {
        tiers,
        attempts: &attempts,
        validator: options.validator,
        fold_of: &fold_of,
        folds,
        min_tasks: min_samples,
    };
    let mut path_cv = cross_validate(rows, &setup, &constraints)?;
    let mut path_fits = fit_all(rows, &path_cv, tiers, min_samples, options.min_solved);
    let path_runs = |k: usize| -> Vec<CascadeOutcome> {
        (0..n)
            .map(|i| path_cv.outcomes[i][path_cv.chosen[k][i]])
            .collect()
    };

    // Per-task outcomes of every policy.
    let top = n_tiers - 1;
    let per_task = |policy: &Policy| -> Vec<CascadeOutcome> {
        rows.iter()
            .enumerate()
            .map(|(i, row)| match policy {
                Policy::Always(tier) => {
                    let t = tiers.iter().position(|x| x == tier).unwrap_or(top);
                    cascade(&row.cells, t, t)
                }
                Policy::Static => cascade(&row.cells, static_of[row.class.as_str()], top),
                Policy::Cascade => cascade(&row.cells, 0, top),
                Policy::Learned => cascade(&row.cells, learned_start[i], top),
                Policy::Path => path_cv.outcomes[i][path_cv.chosen[0][i]],
                Policy::Oracle => oracle(&row.cells),
            })
            .collect()
    };
    let cheapest_runs = per_task(&Policy::Always(tiers[0].clone()));
    let top_runs = per_task(&Policy::Always(tiers[top].clone()));
    let baseline_runs = per_task(&Policy::Always(tiers[baseline].clone()));
    let oracle_runs = per_task(&Policy::Oracle);
    let runs: Vec<(String, Vec<CascadeOutcome>)> = wanted
        .iter()
        .map(|p| (p.to_string(), per_task(p)))
        .collect();

    // Point estimates and bootstrap.
    let all: Vec<usize> = (0..n).collect();
    let totals = |outcomes: &[CascadeOutcome], sample: &[usize]| {
        sample.iter().fold((0.0, 0.0), |(s, c), &i| {
            (
                s + outcomes[i].solve_probability,
                c + outcomes[i].expected_cost_usd,
            )
        })
    };
    let metrics = |outcomes: &[CascadeOutcome], sample: &[usize]| -> [Option<f64>; 5] {
        let count = sample.len() as f64;
        let (solved, cost) = totals(outcomes, sample);
        let (cheap_solved, _) = totals(&cheapest_runs, sample);
        let (top_solved, _) = totals(&top_runs, sample);
        let (_, baseline_cost) = totals(&baseline_runs, sample);
        let (_, oracle_cost) = totals(&oracle_runs, sample);
        let gap = (top_solved - cheap_solved) / count;
        [
            Some(solved / count),
            Some(cost),
            (baseline_cost > 0.0).then(|| cost / baseline_cost),
            (oracle_cost > 0.0).then(|| cost / oracle_cost),
            (gap > 1e-9).then(|| ((solved - cheap_solved) / count) / gap),
        ]
    };
    let mut samples: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); 5]; runs.len()];
    let mut sample = vec![0usize; n];
    for _ in 0..options.bootstrap {
        for slot in sample.iter_mut() {
            *slot = rng.below(n);
        }
        for (k, (_, outcomes)) in runs.iter().enumerate() {
            for (m, value) in metrics(outcomes, &sample).into_iter().enumerate() {
                if let Some(v) = value {
                    samples[k][m].push(v);
                }
            }
        }
    }
    let mut notes = Vec::new();
    let (cheap_share, top_share) = (
        totals(&cheapest_runs, &all).0 / n as f64,
        totals(&top_runs, &all).0 / n as f64,
    );
    if top_share - cheap_share <= 1e-9 {
        notes.push(format!(
            "PGR is undefined: always:{} solves {:.1}%, no more than always:{} ({:.1}%)",
            tiers[top],
            top_share * 100.0,
            tiers[0],
            cheap_share * 100.0
        ));
    }
    let mut pgr_note = false;
    let policies = runs
        .iter()
        .zip(&samples)
        .map(|((name, outcomes), boot)| {
            let point = metrics(outcomes, &all);
            let mut metric = |m: usize| -> Option<Metric> {
                let value = point[m]?;
                let ci95 = interval(&boot[m], options.bootstrap);
                if m == 4 && ci95.is_none() && options.bootstrap > 0 {
                    pgr_note = true;
                }
                Some(Metric { value, ci95 })
            };
            let (solved, cost) = totals(outcomes, &all);
            PolicyReport {
                policy: name.clone(),
                solved,
                solved_share: metric(0).unwrap_or(Metric {
                    value: 0.0,
                    ci95: None,
                }),
                total_cost_usd: metric(1).unwrap_or(Metric {
                    value: cost,
                    ci95: None,
                }),
                cost_per_solve_usd: (solved > 1e-9).then(|| cost / solved),
                cost_vs_baseline: metric(2),
                cost_vs_oracle: metric(3),
                pgr: metric(4),
                per_task: outcomes.clone(),
            }
        })
        .collect();
    if pgr_note {
        notes.push(
            "PGR intervals are omitted where the top tier beats the cheapest in fewer than half of the resamples".into(),
        );
    }
    if options.bootstrap > 0 {
        notes.push(
            "intervals resample tasks; learned's and path's cross-validated choices are not retrained per resample".into(),
        );
    }
    if table
        .rows
        .iter()
        .any(|r| r.cells.iter().any(|c| c.p > 0.0 && c.p < 1.0))
    {
        notes.push(
            "solved cells between 0 and 1 are replayed as expectations (the chance an attempt solves the task); --threshold X turns them into 0/1".into(),
        );
    }
    notes.extend(table.warnings.iter().cloned());
    let (_, baseline_cost) = totals(&baseline_runs, &all);
    let frontier = if options.frontier {
        constraints
            .iter()
            .enumerate()
            .map(|(k, c)| {
                let (solved, cost) = totals(&path_runs(k), &all);
                FrontierPoint {
                    min_solved: c.to_string(),
                    solved_share: solved / n as f64,
                    total_cost_usd: cost,
                    cost_per_solve_usd: (solved > 1e-9).then(|| cost / solved),
                    cost_vs_baseline: (baseline_cost > 0.0).then(|| cost / baseline_cost),
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    let cost_share = |runs: &[CascadeOutcome]| {
        let (solved, cost) = totals(runs, &all);
        apgr::CostShare {
            cost,
            share: solved / n as f64,
        }
    };
    let apgr = (!frontier.is_empty())
        .then(|| {
            let points: Vec<apgr::CostShare> = frontier
                .iter()
                .map(|f| apgr::CostShare {
                    cost: f.total_cost_usd,
                    share: f.solved_share,
                })
                .collect();
            apgr::average_pgr(&points, cost_share(&cheapest_runs), cost_share(&top_runs))
        })
        .flatten();

    let classes = class_rows
        .iter()
        .map(|(&class, members)| {
            let static_tier = tiers[static_of[class]].clone();
            let fit = if members.len() >= min_samples {
                let cells: Vec<&[OutcomeCell]> =
                    members.iter().map(|&i| rows[i].cells.as_slice()).collect();
                let estimate = model.estimate_from_rows(&cells);
                let best = estimate
                    .best(Some(static_of[class]))
                    .unwrap_or(static_of[class]);
                format!(
                    "{} -> start {}",
                    estimate.describe(min_samples as f64),
                    tiers[best]
                )
            } else {
                format!(
                    "{} task{} < {min_samples} samples -> static {static_tier}",
                    members.len(),
                    if members.len() == 1 { "" } else { "s" }
                )
            };
            ClassReport {
                class: class_label(class).to_owned(),
                tasks: members.len(),
                static_tier,
                learned_starts: learned_counts.remove(class).unwrap_or_default(),
                learned_paths: path_cv
                    .counts
                    .remove(class_label(class))
                    .unwrap_or_default(),
                path_fit: path_fits.remove(class_label(class)),
                fit,
            }
        })
        .collect();

    Ok(ReplayReport {
        tasks: n,
        tiers: tiers.clone(),
        columns: table.columns.clone(),
        ignored_columns: table.ignored_columns.clone(),
        attempts,
        validator: options.validator,
        folds,
        seed: options.seed,
        bootstrap: options.bootstrap,
        min_samples: options.min_samples,
        prior: options.prior,
        baseline: tiers[baseline].clone(),
        min_solved: options.min_solved.to_string(),
        frontier,
        apgr,
        classes,
        policies,
        notes,
    })
}

/// The oracle on one task: tiers tried in the order of this task's costs,
/// stopping at the first that solves it (for probabilities: the expectation
/// of that); a task nothing solves costs the cheapest cell.
fn oracle(cells: &[OutcomeCell]) -> CascadeOutcome {
    let mut order: Vec<&OutcomeCell> = cells.iter().collect();
    order.sort_by(|a, b| a.cost_usd.total_cmp(&b.cost_usd));
    let mut none_yet = 1.0;
    let mut out = CascadeOutcome::default();
    for cell in &order {
        out.expected_cost_usd += none_yet * cell.p * cell.cost_usd;
        out.solve_probability += none_yet * cell.p;
        none_yet *= 1.0 - cell.p;
    }
    if let Some(cheapest) = order.first() {
        out.expected_cost_usd += none_yet * cheapest.cost_usd;
    }
    out
}

/// The static start tier of a class, as an index into the table's tiers.
fn static_index(
    config: &Config,
    tiers: &[String],
    class_tiers: &BTreeMap<String, String>,
    class: &str,
) -> usize {
    let order = config.model_tiers();
    let wanted = if let Some(tier) = class_tiers.get(class) {
        tier.clone()
    } else if let Ok(complexity) = class.parse::<Complexity>() {
        match complexity {
            Complexity::Mechanical => config.routing.start_tier.mechanical.clone(),
            Complexity::Generative => config.routing.start_tier.generative.clone(),
            Complexity::Reasoning => config.routing.start_tier.reasoning.clone(),
        }
    } else {
        order.get(order.len() / 2).cloned().unwrap_or_default()
    };
    if let Some(i) = tiers.iter().position(|t| *t == wanted) {
        return i;
    }
    // The tier has no column: the first tier above it that has one.
    let rank = config.tier_index(&wanted).unwrap_or(0);
    tiers
        .iter()
        .position(|t| config.tier_index(t).is_some_and(|r| r > rank))
        .unwrap_or(tiers.len() - 1)
}

/// The 2.5th and 97.5th percentiles, when at least half the resamples
/// produced a value.
fn interval(values: &[f64], resamples: usize) -> Option<[f64; 2]> {
    if resamples == 0 || values.is_empty() || values.len() * 2 < resamples {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let pos = q * (sorted.len() - 1) as f64;
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
    };
    Some([at(0.025), at(0.975)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learn_policies_parse_and_print() {
        for name in ["always:opus", "static", "cascade", "learned", "oracle"] {
            assert_eq!(Policy::parse(name).unwrap().to_string(), name);
        }
        assert!(Policy::parse("always:").is_err());
        assert!(Policy::parse("cheapest").is_err());
    }

    #[test]
    fn learn_oracle_takes_the_cheapest_solver() {
        let c = |p: f64, cost_usd: f64| OutcomeCell { p, cost_usd };
        let out = oracle(&[c(0.0, 1.0), c(1.0, 5.0), c(1.0, 3.0)]);
        assert_eq!((out.solve_probability, out.expected_cost_usd), (1.0, 3.0));
        let out = oracle(&[c(0.0, 2.0), c(0.0, 1.0)]);
        assert_eq!((out.solve_probability, out.expected_cost_usd), (0.0, 1.0));
        let out = oracle(&[c(0.5, 1.0), c(1.0, 3.0)]);
        assert_eq!((out.solve_probability, out.expected_cost_usd), (1.0, 2.0));
    }

    #[test]
    fn learn_percentiles_interpolate() {
        let values: Vec<f64> = (0..=100).map(f64::from).collect();
        assert_eq!(interval(&values, 101), Some([2.5, 97.5]));
        assert_eq!(interval(&values[..10], 101), None);
        assert_eq!(interval(&values, 0), None);
    }
}
