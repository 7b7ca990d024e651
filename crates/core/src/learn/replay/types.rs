//! The replay's inputs and outputs: policies, options and the report.

use std::collections::BTreeMap;
use std::fmt;

use cadre_config::Config;
use serde::Serialize;

use super::super::estimate::{CascadeOutcome, Prior, Validator};
use super::super::outcomes::ModelColumn;
use super::super::paths::MinSolved;
use crate::{Error, Result};

/// A routing policy to replay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Only this tier.
    Always(String),
    /// The cascade from the class's static start tier.
    Static,
    /// The cascade from the cheapest tier.
    Cascade,
    /// The cascade from the learned start tier (cross-validated).
    Learned,
    /// The learned path per class (cross-validated): rungs may be skipped
    /// and the path may stop below the top.
    Path,
    /// The cheapest tier that solves each task.
    Oracle,
}

impl Policy {
    /// Parses `always:<tier>`, `static`, `cascade`, `learned`, `path` or
    /// `oracle`.
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim() {
            "path" => Ok(Self::Path),
            "static" => Ok(Self::Static),
            "cascade" => Ok(Self::Cascade),
            "learned" => Ok(Self::Learned),
            "oracle" => Ok(Self::Oracle),
            other => match other.strip_prefix("always:") {
                Some(tier) if !tier.is_empty() => Ok(Self::Always(tier.to_owned())),
                _ => Err(Error::InvalidInput(format!(
                    "unknown policy {s:?}: expected always:<tier>, static, cascade, learned, path or oracle"
                ))),
            },
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Always(tier) => write!(f, "always:{tier}"),
            Self::Static => f.write_str("static"),
            Self::Cascade => f.write_str("cascade"),
            Self::Learned => f.write_str("learned"),
            Self::Path => f.write_str("path"),
            Self::Oracle => f.write_str("oracle"),
        }
    }
}

/// How to replay.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplayOptions {
    /// Policies to report, in order; empty = all of them.
    pub policies: Vec<Policy>,
    /// Attempts per tier before escalating; tiers not listed get 1.
    pub attempts: BTreeMap<String, u32>,
    /// Validator error rates.
    pub validator: Validator,
    /// Cross-validation folds for `learned` (>= 2; fewer tasks than folds
    /// means leave-one-out).
    pub folds: usize,
    /// Seeds fold assignment and the bootstrap.
    pub seed: u64,
    /// Bootstrap resamples for the 95% intervals (0 = no intervals).
    pub bootstrap: usize,
    /// Training rows a class needs before `learned` overrides its static tier.
    pub min_samples: u32,
    /// Prior on each tier's success chance.
    pub prior: Prior,
    /// Class -> static start tier, overriding the default rule.
    pub class_tiers: BTreeMap<String, String>,
    /// The solved-share constraint of `path`.
    pub min_solved: MinSolved,
    /// Also score `path` over a range of constraints (the frontier).
    pub frontier: bool,
    /// The tier or column every "vs baseline" ratio divides by; `None`:
    /// the top rung.
    pub baseline: Option<String>,
}

impl ReplayOptions {
    /// Defaults: every policy, one attempt per tier, a perfect validator, 5
    /// folds, seed 0, 1000 resamples, and the configured minimum samples and
    /// prior.
    pub fn from_config(config: &Config) -> Self {
        Self {
            policies: Vec::new(),
            attempts: BTreeMap::new(),
            validator: Validator::PERFECT,
            folds: 5,
            seed: 0,
            bootstrap: 1000,
            min_samples: config.routing.adaptive_min_samples,
            prior: Prior::from_config(config),
            class_tiers: BTreeMap::new(),
            min_solved: config.routing.min_solved_share.parse().unwrap_or_default(),
            frontier: false,
            baseline: None,
        }
    }
}

/// A measured value and its bootstrap 95% interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Metric {
    /// On the whole table.
    pub value: f64,
    /// 2.5th and 97.5th bootstrap percentiles, when computed.
    pub ci95: Option<[f64; 2]>,
}

/// One policy's results.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PolicyReport {
    /// `always:opus`, `learned`, ...
    pub policy: String,
    /// Expected number of solved tasks.
    pub solved: f64,
    /// Solved tasks / tasks.
    pub solved_share: Metric,
    /// Total cost in USD.
    pub total_cost_usd: Metric,
    /// Total cost / solved tasks.
    pub cost_per_solve_usd: Option<f64>,
    /// Total cost / the baseline tier's total cost alone.
    pub cost_vs_baseline: Option<Metric>,
    /// Total cost / the oracle's total cost.
    pub cost_vs_oracle: Option<Metric>,
    /// Single-point performance gap recovered: the share of the gap in
    /// solved tasks between always-cheapest and always-top this policy
    /// recovers, at this policy's own cost (RouteLLM's PGR at one point,
    /// not its average APGR); `None` when the top rung solves no more than
    /// the cheapest.
    pub pgr: Option<Metric>,
    /// Per task (table order): expected solved and cost.
    #[serde(skip)]
    pub per_task: Vec<CascadeOutcome>,
}

/// One class of tasks.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClassReport {
    /// The label (`(all)` when the table has no class column).
    pub class: String,
    /// Tasks in it.
    pub tasks: usize,
    /// Its static start tier.
    pub static_tier: String,
    /// Start tier -> folds in which `learned` chose it for this class.
    pub learned_starts: BTreeMap<String, usize>,
    /// Path -> folds in which `path` chose it for this class.
    pub learned_paths: BTreeMap<String, usize>,
    /// The path fitted on every row of the class, for explanation.
    pub path_fit: Option<PathFit>,
    /// The estimator on every row of the class, for explanation (not used
    /// for scoring).
    pub fit: String,
}

/// A class's path fitted on all its rows, with the cascade and always-top
/// on the same estimate for comparison (expected values per task).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PathFit {
    /// The chosen path, cheapest rung first.
    pub path: Vec<String>,
    /// Its expected solved share.
    pub solved_share: f64,
    /// Its expected cost per task.
    pub cost_usd: f64,
    /// The full cascade from the cheapest rung: solved share and cost.
    pub cascade: [f64; 2],
    /// The top rung alone: solved share and cost.
    pub top: [f64; 2],
    /// The class's own training tasks.
    pub own_tasks: usize,
    /// The parent it borrowed from and how many pseudo-tasks.
    pub borrowed: Option<(String, f64)>,
}

/// One point of the cost-vs-solved-share frontier of `path`, scored by the
/// same cross-validation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FrontierPoint {
    /// The constraint (`top` or a share).
    pub min_solved: String,
    /// Solved share on held-out tasks.
    pub solved_share: f64,
    /// Total cost.
    pub total_cost_usd: f64,
    /// Total cost / solved.
    pub cost_per_solve_usd: Option<f64>,
    /// Total cost / the baseline's total cost.
    pub cost_vs_baseline: Option<f64>,
}

/// The replay's result.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReplayReport {
    /// Tasks replayed.
    pub tasks: usize,
    /// Tiers with a column, cheapest first.
    pub tiers: Vec<String>,
    /// The column playing each tier.
    pub columns: Vec<ModelColumn>,
    /// Model columns mapped to no tier.
    pub ignored_columns: Vec<String>,
    /// Attempts per tier (same order as `tiers`).
    pub attempts: Vec<u32>,
    /// Validator error rates.
    pub validator: Validator,
    /// Folds used.
    pub folds: usize,
    /// The seed.
    pub seed: u64,
    /// Bootstrap resamples.
    pub bootstrap: usize,
    /// Minimum training rows per class for `learned`.
    pub min_samples: u32,
    /// The prior.
    pub prior: Prior,
    /// The baseline tier of the "vs baseline" ratios.
    pub baseline: String,
    /// The constraint `path` was learned under.
    pub min_solved: String,
    /// `path` under a range of constraints (when asked).
    pub frontier: Vec<FrontierPoint>,
    /// The average PGR over budgets from always-cheapest's cost to
    /// always-top's, the best frontier point within each budget (RouteLLM's
    /// APGR; with `--frontier`, when PGR is defined).
    pub apgr: Option<f64>,
    /// Per class.
    pub classes: Vec<ClassReport>,
    /// Per policy, in the order asked.
    pub policies: Vec<PolicyReport>,
    /// Caveats (undefined PGR, omitted intervals, ladder order, ...).
    pub notes: Vec<String>,
}

impl ReplayReport {
    /// The report of one policy, by name.
    pub fn policy(&self, name: &str) -> Option<&PolicyReport> {
        self.policies.iter().find(|p| p.policy == name)
    }
}

/// Label used for tables without a class column.
pub const ALL_CLASS: &str = "(all)";

pub(super) fn class_label(class: &str) -> &str {
    if class.is_empty() { ALL_CLASS } else { class }
}
