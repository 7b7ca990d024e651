//! Learned paths: per class, an ordered subsequence of the ladder (a path may
//! skip rungs and may stop below the top, handing what is left to a human)
//! with the least expected cost per task among the paths whose expected
//! solved share meets a constraint.
//!
//! A path's expected solved share and cost in a class are the means, over
//! the class's training tasks, of the exact expectation of running that path
//! on each task's cells (so the estimate keeps whatever correlation the
//! table has between rungs). A class with fewer training tasks than the
//! minimum borrows the rest from its parent: a label `a/b/c` has parents
//! `a/b`, `a` and the root (every task), so `generative/high/python` leans
//! on `generative/high`, then `generative`, then everything; a class with
//! no tasks at all takes its parent's estimate whole.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use super::estimate::{
    CascadeOutcome, ClassEstimate, OutcomeCell, TierCosts, Validator, run_cascade, usd,
};
use crate::{Error, Result};

/// Ladders longer than this are refused (2^n - 1 paths).
pub const MAX_RUNGS: usize = 12;

/// Every non-empty ordered subsequence of `0..n`, shortest first, then in
/// lexicographic order of the rung indices (so on a tie the shorter, then
/// the cheaper path wins).
pub fn all_paths(n: usize) -> Result<Vec<Vec<usize>>> {
    if n == 0 || n > MAX_RUNGS {
        return Err(Error::InvalidInput(format!(
            "a ladder needs 1 to {MAX_RUNGS} rungs, got {n}"
        )));
    }
    let mut paths: Vec<Vec<usize>> = (1u32..(1 << n))
        .map(|mask| (0..n).filter(|&t| mask & (1 << t) != 0).collect())
        .collect();
    paths.sort_by(|a: &Vec<usize>, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
    Ok(paths)
}

/// "haiku -> opus".
pub fn path_name(path: &[usize], tiers: &[String]) -> String {
    path.iter()
        .map(|&t| tiers.get(t).map_or("?", String::as_str))
        .collect::<Vec<_>>()
        .join(" -> ")
}

/// The exact expectation of running `path` on one task's cells, with
/// `attempts[t]` attempts at rung `t`.
pub fn path_outcome(
    cells: &[OutcomeCell],
    path: &[usize],
    attempts: &[u32],
    validator: Validator,
) -> CascadeOutcome {
    let rungs: Vec<(f64, TierCosts)> = path
        .iter()
        .filter_map(|&t| cells.get(t))
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
    let tries: Vec<u32> = path
        .iter()
        .map(|&t| attempts.get(t).copied().unwrap_or(1))
        .collect();
    run_cascade(&rungs, &tries, validator)
}

/// The solved-share constraint a class's path must meet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MinSolved {
    /// At least what the top rung alone solves in the class's training tasks.
    #[default]
    Top,
    /// At least this share; a class where no path reaches it takes the path
    /// that solves the most.
    Share(f64),
}

impl FromStr for MinSolved {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        if s == "top" {
            return Ok(Self::Top);
        }
        let share = match s.strip_suffix('%') {
            Some(pct) => pct.trim().parse::<f64>().map(|v| v / 100.0),
            None => s.parse::<f64>(),
        };
        match share {
            Ok(v) if v.is_finite() && (0.0..=1.0).contains(&v) => Ok(Self::Share(v)),
            _ => Err(Error::InvalidInput(format!(
                "--min-solved {s:?}: expected `top`, a share in [0, 1] or a percentage"
            ))),
        }
    }
}

impl fmt::Display for MinSolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Top => f.write_str("top"),
            Self::Share(v) => write!(f, "{:.1}%", v * 100.0),
        }
    }
}

/// A class's expected solved share and cost per task for every path.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PathEstimate {
    /// Per path (in [`all_paths`] order): expected solved share.
    pub share: Vec<f64>,
    /// Per path: expected cost per task.
    pub cost: Vec<f64>,
    /// Training tasks of the class itself.
    pub own_tasks: usize,
    /// Pseudo-tasks borrowed from the parent, and which parent.
    pub borrowed: Option<(String, f64)>,
}

impl PathEstimate {
    /// Index of the cheapest path meeting `min_solved` (`top` is the index
    /// of the top-rung-only path). Ties on cost go to the higher share,
    /// then the earlier path.
    pub fn choose(&self, top: usize, min_solved: MinSolved) -> usize {
        let target = match min_solved {
            MinSolved::Top => self.share.get(top).copied().unwrap_or(1.0),
            MinSolved::Share(x) => x,
        };
        let tolerance = 1e-9;
        let feasible: Vec<usize> = (0..self.share.len())
            .filter(|&p| self.share[p] >= target - tolerance)
            .collect();
        let better = |a: usize, b: usize| {
            // Is `a` strictly better than `b`?
            let (ca, cb) = (self.cost[a], self.cost[b]);
            let eps = 1e-12 * ca.abs().max(cb.abs()).max(1e-12);
            ca < cb - eps || ((ca - cb).abs() <= eps && self.share[a] > self.share[b] + tolerance)
        };
        if feasible.is_empty() {
            // Nothing reaches the target: the path that solves the most.
            let mut best = 0;
            for p in 1..self.share.len() {
                let (sp, sb) = (self.share[p], self.share[best]);
                if sp > sb + tolerance || ((sp - sb).abs() <= tolerance && better(p, best)) {
                    best = p;
                }
            }
            return best;
        }
        let mut best = feasible[0];
        for &p in &feasible[1..] {
            if better(p, best) {
                best = p;
            }
        }
        best
    }
}

/// The parent of a class label: `a/b` for `a/b/c`, the root `""` for `a`,
/// none for the root.
pub fn parent_class(label: &str) -> Option<&str> {
    if label.is_empty() {
        return None;
    }
    Some(label.rsplit_once('/').map_or("", |(parent, _)| parent))
}

/// Sums of per-path outcomes over training tasks, per class node.
#[derive(Default)]
struct Sums {
    tasks: usize,
    share: Vec<f64>,
    cost: Vec<f64>,
}

/// Estimates every path for every class in `classes` from training tasks
/// `(class, per-path outcomes)`. A class with fewer than `min_tasks`
/// training tasks is filled up to `min_tasks` with its parent's estimate
/// (recursively); the root stands on its own. A class with nothing to
/// stand on (no training tasks anywhere) gets no estimate.
pub fn estimate_paths<'a>(
    classes: &[&str],
    train: impl IntoIterator<Item = (&'a str, &'a [CascadeOutcome])>,
    n_paths: usize,
    min_tasks: usize,
) -> BTreeMap<String, PathEstimate> {
    let mut sums: BTreeMap<String, Sums> = BTreeMap::new();
    for (class, outcomes) in train {
        let mut node = Some(class);
        while let Some(label) = node {
            let s = sums.entry(label.to_owned()).or_default();
            if s.share.is_empty() {
                s.share = vec![0.0; n_paths];
                s.cost = vec![0.0; n_paths];
            }
            s.tasks += 1;
            for (p, o) in outcomes.iter().enumerate().take(n_paths) {
                s.share[p] += o.solve_probability;
                s.cost[p] += o.expected_cost_usd;
            }
            node = parent_class(label);
        }
    }
    let mut memo: BTreeMap<String, Option<PathEstimate>> = BTreeMap::new();
    classes
        .iter()
        .filter_map(|&c| node_estimate(c, &sums, min_tasks, &mut memo).map(|e| (c.to_owned(), e)))
        .collect()
}

fn node_estimate(
    label: &str,
    sums: &BTreeMap<String, Sums>,
    min_tasks: usize,
    memo: &mut BTreeMap<String, Option<PathEstimate>>,
) -> Option<PathEstimate> {
    if let Some(done) = memo.get(label) {
        return done.clone();
    }
    let own = sums.get(label);
    let tasks = own.map_or(0, |s| s.tasks);
    let parent = match parent_class(label) {
        Some(p) if tasks < min_tasks => node_estimate(p, sums, min_tasks, memo).map(|e| (p, e)),
        _ => None,
    };
    let estimate = match (own, parent) {
        (Some(s), None) if tasks > 0 => Some(PathEstimate {
            share: s.share.iter().map(|v| v / tasks as f64).collect(),
            cost: s.cost.iter().map(|v| v / tasks as f64).collect(),
            own_tasks: tasks,
            borrowed: None,
        }),
        (_, Some((parent_label, parent))) => {
            let weight = (min_tasks - tasks) as f64;
            let total = min_tasks as f64;
            let mix = |own: Option<&Vec<f64>>, theirs: &[f64]| -> Vec<f64> {
                theirs
                    .iter()
                    .enumerate()
                    .map(|(p, t)| (own.map_or(0.0, |o| o[p]) + weight * t) / total)
                    .collect()
            };
            Some(PathEstimate {
                share: mix(own.map(|s| &s.share), &parent.share),
                cost: mix(own.map(|s| &s.cost), &parent.cost),
                own_tasks: tasks,
                borrowed: Some((
                    if parent_label.is_empty() {
                        "(all)".to_owned()
                    } else {
                        parent_label.to_owned()
                    },
                    weight,
                )),
            })
        }
        _ => None,
    };
    memo.insert(label.to_owned(), estimate.clone());
    estimate
}

/// A path chosen from per-rung history (no per-task rows), for
/// `cadre routing explain`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PathChoice {
    /// The rungs, cheapest first.
    pub path: Vec<String>,
    /// Expected solved share.
    pub solved_share: f64,
    /// Expected cost per subtask.
    pub cost_usd: f64,
    /// The full cascade: solved share and cost.
    pub cascade: [f64; 2],
    /// The top rung alone: solved share and cost.
    pub top: [f64; 2],
}

impl PathChoice {
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

/// The cheapest path over the rungs with enough history (the top rung must
/// have it) meeting `min_solved`, from per-rung estimates that treat the
/// rungs' outcomes as independent (aggregate history cannot do better; the
/// replay, which has per-task rows, does). `None` with the reason when the
/// top rung has too little history.
pub fn path_from_estimate(
    estimate: &ClassEstimate,
    attempts: &[u32],
    validator: Validator,
    min_solved: MinSolved,
) -> std::result::Result<PathChoice, String> {
    let Some(chain) = estimate.starts.first().map(|s| &s.chain) else {
        return Err("no tiers".into());
    };
    let n = chain.len();
    let top = n.saturating_sub(1);
    if !estimate.starts.get(top).is_some_and(|s| s.eligible) {
        return Err(format!(
            "{} has too little history to compare paths against",
            chain.get(top).map_or("the top tier", |t| t.tier.as_str())
        ));
    }
    let paths: Vec<Vec<usize>> = all_paths(n)
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|p| p.iter().all(|&t| estimate.starts[t].eligible))
        .collect();
    let run = |path: &[usize]| {
        let rungs: Vec<(f64, TierCosts)> = path
            .iter()
            .map(|&t| {
                (
                    chain[t].p_success,
                    TierCosts {
                        success_usd: chain[t].success_cost_usd,
                        failure_usd: chain[t].failure_cost_usd,
                    },
                )
            })
            .collect();
        let tries: Vec<u32> = path
            .iter()
            .map(|&t| attempts.get(t).copied().unwrap_or(1))
            .collect();
        run_cascade(&rungs, &tries, validator)
    };
    let outcomes: Vec<CascadeOutcome> = paths.iter().map(|p| run(p)).collect();
    let top_index = paths
        .iter()
        .position(|p| p.as_slice() == [top])
        .unwrap_or(0);
    let choice = PathEstimate {
        share: outcomes.iter().map(|o| o.solve_probability).collect(),
        cost: outcomes.iter().map(|o| o.expected_cost_usd).collect(),
        own_tasks: 0,
        borrowed: None,
    }
    .choose(top_index, min_solved);
    let full: Vec<usize> = (0..n).collect();
    let cascade = run(&full);
    let top_alone = &outcomes[top_index];
    Ok(PathChoice {
        path: paths[choice]
            .iter()
            .map(|&t| chain[t].tier.clone())
            .collect(),
        solved_share: outcomes[choice].solve_probability,
        cost_usd: outcomes[choice].expected_cost_usd,
        cascade: [cascade.solve_probability, cascade.expected_cost_usd],
        top: [top_alone.solve_probability, top_alone.expected_cost_usd],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(solve_probability: f64, expected_cost_usd: f64) -> CascadeOutcome {
        CascadeOutcome {
            solve_probability,
            expected_cost_usd,
        }
    }

    #[test]
    fn learn_path_from_history_skips_a_hopeless_tier() {
        use crate::learn::estimate::{CascadeModel, Prior, TierEvidence};
        let model = CascadeModel {
            tiers: ["haiku", "sonnet", "opus"].map(String::from).to_vec(),
            attempts: vec![1, 1, 1],
            prior: Prior {
                mean: 0.5,
                strength: 0.0,
            },
            validator: Validator::PERFECT,
        };
        let evidence = |n: f64, solved: f64, cost: f64| {
            let mut e = TierEvidence::default();
            e.observe(solved / n, cost, n);
            e
        };
        let est = model.estimate_from_evidence(
            &[
                evidence(30.0, 0.0, 0.01),
                evidence(30.0, 27.0, 0.03),
                evidence(30.0, 27.0, 0.05),
            ],
            &[TierCosts::default(); 3],
            20.0,
        );
        let choice =
            path_from_estimate(&est, &[1, 1, 1], Validator::PERFECT, MinSolved::Top).unwrap();
        // Sonnet alone solves 90% like opus alone, for less.
        assert_eq!(choice.path, ["sonnet"]);
        assert!((choice.solved_share - 0.9).abs() < 1e-12);
        assert!((choice.top[1] - 0.05).abs() < 1e-12);
        assert!(
            choice.describe().starts_with("sonnet: 90% at $0.0300"),
            "{}",
            choice.describe()
        );
        let thin = model.estimate_from_evidence(
            &[
                evidence(30.0, 0.0, 0.01),
                evidence(30.0, 27.0, 0.03),
                TierEvidence::default(),
            ],
            &[TierCosts::default(); 3],
            20.0,
        );
        let err =
            path_from_estimate(&thin, &[1, 1, 1], Validator::PERFECT, MinSolved::Top).unwrap_err();
        assert!(err.contains("opus has too little history"), "{err}");
    }

    #[test]
    fn learn_paths_enumerate_every_subsequence_shortest_first() {
        let paths = all_paths(3).unwrap();
        assert_eq!(paths.len(), 7);
        assert_eq!(paths[0], [0]);
        assert_eq!(paths[3], [0, 1]);
        assert_eq!(paths[6], [0, 1, 2]);
        assert!(all_paths(0).is_err() && all_paths(MAX_RUNGS + 1).is_err());
        let tiers: Vec<String> = ["haiku", "sonnet", "opus"].map(String::from).to_vec();
        assert_eq!(path_name(&[0, 2], &tiers), "haiku -> opus");
    }

    #[test]
    fn learn_path_outcome_runs_only_its_rungs() {
        let c = |p: f64, cost_usd: f64| OutcomeCell { p, cost_usd };
        let cells = [c(0.0, 1.0), c(0.5, 3.0), c(1.0, 5.0)];
        let out = path_outcome(&cells, &[0, 2], &[1, 1, 1], Validator::PERFECT);
        assert_eq!((out.solve_probability, out.expected_cost_usd), (1.0, 6.0));
        let out = path_outcome(&cells, &[1], &[1, 2, 1], Validator::PERFECT);
        assert_eq!((out.solve_probability, out.expected_cost_usd), (0.75, 4.5));
    }

    #[test]
    fn learn_min_solved_parses_top_shares_and_percentages() {
        assert_eq!("top".parse::<MinSolved>().unwrap(), MinSolved::Top);
        assert_eq!("0.9".parse::<MinSolved>().unwrap(), MinSolved::Share(0.9));
        assert_eq!("95%".parse::<MinSolved>().unwrap(), MinSolved::Share(0.95));
        assert!("1.5".parse::<MinSolved>().is_err());
        assert!("most".parse::<MinSolved>().is_err());
        assert_eq!(MinSolved::Share(0.95).to_string(), "95.0%");
    }

    #[test]
    fn learn_choose_takes_the_cheapest_path_meeting_the_share() {
        let est = PathEstimate {
            share: vec![0.5, 1.0, 1.0, 0.9],
            cost: vec![1.0, 5.0, 4.0, 2.0],
            own_tasks: 10,
            borrowed: None,
        };
        assert_eq!(est.choose(1, MinSolved::Top), 2);
        assert_eq!(est.choose(1, MinSolved::Share(0.85)), 3);
        assert_eq!(est.choose(1, MinSolved::Share(0.0)), 0);
        // Unreachable: the most solving, cheapest among them.
        let est = PathEstimate {
            share: vec![0.5, 0.8, 0.8],
            cost: vec![1.0, 5.0, 4.0],
            own_tasks: 10,
            borrowed: None,
        };
        assert_eq!(est.choose(1, MinSolved::Share(0.99)), 2);
    }

    #[test]
    fn learn_thin_classes_borrow_from_their_parents() {
        assert_eq!(
            parent_class("generative/high/python"),
            Some("generative/high")
        );
        assert_eq!(parent_class("generative"), Some(""));
        assert_eq!(parent_class(""), None);
        let a = [outcome(1.0, 1.0)];
        let b = [outcome(0.0, 3.0)];
        let mut train: Vec<(&str, &[CascadeOutcome])> = Vec::new();
        for _ in 0..10 {
            train.push(("x/rust", &a));
            train.push(("y", &b));
        }
        train.push(("x/go", &b));
        let est = estimate_paths(&["x/rust", "x/go", "y", "z"], train, 1, 4);
        // Enough tasks: its own mean.
        assert_eq!(est["x/rust"].share, [1.0]);
        assert_eq!(est["x/rust"].borrowed, None);
        // One task of its own, three borrowed from x (10 of 11 solved).
        let x_share = 10.0 / 11.0;
        assert!((est["x/go"].share[0] - 3.0 * x_share / 4.0).abs() < 1e-12);
        assert_eq!(est["x/go"].borrowed, Some(("x".to_owned(), 3.0)));
        // No tasks: the root's mean (10 of 21 solved).
        assert!((est["z"].share[0] - 10.0 / 21.0).abs() < 1e-12);
        assert_eq!(est["z"].own_tasks, 0);
    }
}
