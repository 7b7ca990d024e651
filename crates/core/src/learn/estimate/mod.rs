//! The estimator, pure arithmetic: per class, from evidence about each tier,
//! the chance that an attempt succeeds given that the tiers before it failed,
//! the cost of a success and of a failure, and for every start tier the
//! expected cost per solved task of the cascade that starts there.
//!
//! The cascade model: starting at tier `s`, each tier `t >= s` gets
//! `attempts[t]` attempts; an attempt succeeds with probability `p[t]`
//! (independent of the other attempts at that tier) and costs the success or
//! the failure cost. A validator stands between an attempt and acceptance:
//! it rejects a good result with probability `false_reject` (the cascade goes
//! on) and accepts a bad one with probability `false_accept` (the cascade
//! stops with the task unsolved). After the top tier the task goes to a
//! human, unsolved.

use cadre_config::Config;
use serde::Serialize;

use crate::{Error, Result};

/// One task's outcome at one tier: the chance it was solved and what the
/// attempt cost.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct OutcomeCell {
    /// Solved: 0 or 1, or a probability in [0, 1].
    pub p: f64,
    /// Cost of one attempt in USD.
    pub cost_usd: f64,
}

/// A Beta prior on a tier's per-attempt success chance: `strength`
/// pseudo-attempts with mean `mean`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Prior {
    /// Prior mean, in [0, 1].
    pub mean: f64,
    /// Weight in pseudo-attempts (0 = history alone).
    pub strength: f64,
}

impl Prior {
    /// `routing.adaptive_prior_success` and `routing.adaptive_prior_strength`.
    pub fn from_config(config: &Config) -> Self {
        Self {
            mean: config.routing.adaptive_prior_success,
            strength: config.routing.adaptive_prior_strength,
        }
    }

    /// The posterior mean after `successes` out of `trials` (both may be
    /// fractional weights).
    pub fn posterior_mean(&self, successes: f64, trials: f64) -> f64 {
        let denominator = trials + self.strength;
        if denominator <= 0.0 {
            return self.mean;
        }
        ((successes + self.mean * self.strength) / denominator).clamp(0.0, 1.0)
    }
}

/// How often the validator is wrong.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Validator {
    /// Chance a failed attempt is accepted (the task ends unsolved).
    pub false_accept: f64,
    /// Chance a successful attempt is rejected (the cascade goes on).
    pub false_reject: f64,
}

impl Validator {
    /// A validator that is never wrong.
    pub const PERFECT: Self = Self {
        false_accept: 0.0,
        false_reject: 0.0,
    };

    /// Checks both rates are probabilities.
    pub fn new(false_accept: f64, false_reject: f64) -> Result<Self> {
        for (name, rate) in [
            ("false-accept", false_accept),
            ("false-reject", false_reject),
        ] {
            if !(rate.is_finite() && (0.0..=1.0).contains(&rate)) {
                return Err(Error::InvalidInput(format!(
                    "validator {name} rate must be in [0, 1], got {rate}"
                )));
            }
        }
        Ok(Self {
            false_accept,
            false_reject,
        })
    }
}

/// What is known about one tier within one class: (weighted) attempts,
/// successes, and the summed cost of the successful and the failed ones.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct TierEvidence {
    /// Attempts (fractional when rows are weighted).
    pub trials: f64,
    /// Successful attempts.
    pub successes: f64,
    /// Summed cost of the successful attempts.
    pub success_cost_usd: f64,
    /// Summed cost of the failed attempts.
    pub failure_cost_usd: f64,
}

impl TierEvidence {
    /// Adds one attempt that succeeded with probability `p` and cost
    /// `cost_usd`, counted `weight` times.
    pub fn observe(&mut self, p: f64, cost_usd: f64, weight: f64) {
        self.trials += weight;
        self.successes += weight * p;
        self.success_cost_usd += weight * p * cost_usd;
        self.failure_cost_usd += weight * (1.0 - p) * cost_usd;
    }

    /// Failed attempts.
    pub fn failures(&self) -> f64 {
        (self.trials - self.successes).max(0.0)
    }

    /// Mean cost of a successful attempt, if there was one.
    pub fn mean_success_cost(&self) -> Option<f64> {
        (self.successes > WEIGHT_EPSILON).then(|| self.success_cost_usd / self.successes)
    }

    /// Mean cost of a failed attempt, if there was one.
    pub fn mean_failure_cost(&self) -> Option<f64> {
        let failures = self.failures();
        (failures > WEIGHT_EPSILON).then(|| self.failure_cost_usd / failures)
    }

    /// Mean cost of an attempt, whatever its outcome.
    pub fn mean_cost(&self) -> Option<f64> {
        (self.trials > WEIGHT_EPSILON)
            .then(|| (self.success_cost_usd + self.failure_cost_usd) / self.trials)
    }

    /// Success and failure costs, each falling back to the other outcome's
    /// mean when only one outcome was seen.
    pub fn costs(&self) -> Option<TierCosts> {
        match (self.mean_success_cost(), self.mean_failure_cost()) {
            (Some(s), Some(f)) => Some(TierCosts {
                success_usd: s,
                failure_usd: f,
            }),
            (Some(c), None) | (None, Some(c)) => Some(TierCosts {
                success_usd: c,
                failure_usd: c,
            }),
            (None, None) => None,
        }
    }
}

/// Weights below this count as "no evidence".
const WEIGHT_EPSILON: f64 = 1e-9;

/// The cost of one attempt at a tier, by outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct TierCosts {
    /// A successful attempt.
    pub success_usd: f64,
    /// A failed attempt.
    pub failure_usd: f64,
}

/// One tier's estimate inside one cascade.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TierEstimate {
    /// The tier.
    pub tier: String,
    /// Attempts the estimate rests on (fractional when rows are weighted).
    pub trials: f64,
    /// Successes among them.
    pub successes: f64,
    /// Posterior mean of the per-attempt success chance, given the cascade's
    /// earlier tiers failed.
    pub p_success: f64,
    /// Cost of a successful attempt.
    pub success_cost_usd: f64,
    /// Cost of a failed attempt.
    pub failure_cost_usd: f64,
}

impl TierEstimate {
    /// Combines evidence with the prior. An outcome the evidence never saw
    /// is priced at the other outcome's mean; a tier with no attempts at all
    /// at `fallback`.
    pub fn new(tier: &str, evidence: &TierEvidence, prior: Prior, fallback: TierCosts) -> Self {
        let own = evidence.costs();
        Self {
            tier: tier.to_owned(),
            trials: evidence.trials,
            successes: evidence.successes,
            p_success: prior.posterior_mean(evidence.successes, evidence.trials),
            success_cost_usd: own.map_or(fallback.success_usd, |c| c.success_usd),
            failure_cost_usd: own.map_or(fallback.failure_usd, |c| c.failure_usd),
        }
    }
}

/// What a cascade is expected to do for one task.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct CascadeOutcome {
    /// Chance the task ends solved.
    pub solve_probability: f64,
    /// Expected total cost of its attempts.
    pub expected_cost_usd: f64,
}

impl CascadeOutcome {
    /// Expected cost per solved task; `None` when nothing is ever solved.
    pub fn cost_per_solve(&self) -> Option<f64> {
        (self.solve_probability > WEIGHT_EPSILON)
            .then(|| self.expected_cost_usd / self.solve_probability)
    }
}

/// Runs the cascade model over `chain` (the tiers from the start tier up),
/// with `attempts[i]` attempts at `chain[i]`.
pub fn expected_cascade(
    chain: &[TierEstimate],
    attempts: &[u32],
    validator: Validator,
) -> CascadeOutcome {
    let cells: Vec<(f64, TierCosts)> = chain
        .iter()
        .map(|t| {
            (
                t.p_success,
                TierCosts {
                    success_usd: t.success_cost_usd,
                    failure_usd: t.failure_cost_usd,
                },
            )
        })
        .collect();
    run_cascade(&cells, attempts, validator)
}

/// The cascade recursion over (success chance, costs) per tier.
pub(crate) fn run_cascade(
    tiers: &[(f64, TierCosts)],
    attempts: &[u32],
    validator: Validator,
) -> CascadeOutcome {
    let mut reach = 1.0;
    let mut out = CascadeOutcome::default();
    for (i, &(p, costs)) in tiers.iter().enumerate() {
        let tries = attempts.get(i).copied().unwrap_or(1).max(1);
        for _ in 0..tries {
            if reach <= 0.0 {
                return out;
            }
            out.expected_cost_usd +=
                reach * (p * costs.success_usd + (1.0 - p) * costs.failure_usd);
            out.solve_probability += reach * p * (1.0 - validator.false_reject);
            reach *= p * validator.false_reject + (1.0 - p) * (1.0 - validator.false_accept);
        }
    }
    out
}

/// The cascade that starts at one tier.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StartEstimate {
    /// The start tier.
    pub tier: String,
    /// The estimate of each tier from the start up, each conditioned on the
    /// earlier ones in this cascade having failed.
    pub chain: Vec<TierEstimate>,
    /// Chance a task ends solved.
    pub solve_probability: f64,
    /// Expected cost per task.
    pub expected_cost_usd: f64,
    /// Expected cost per solved task (`None`: never solves).
    pub cost_per_solve_usd: Option<f64>,
    /// Whether there is enough evidence to choose this start.
    pub eligible: bool,
}

impl StartEstimate {
    fn new(tier: &str, chain: Vec<TierEstimate>, attempts: &[u32], validator: Validator) -> Self {
        let outcome = expected_cascade(&chain, attempts, validator);
        Self {
            tier: tier.to_owned(),
            chain,
            solve_probability: outcome.solve_probability,
            expected_cost_usd: outcome.expected_cost_usd,
            cost_per_solve_usd: outcome.cost_per_solve(),
            eligible: true,
        }
    }

    /// The start tier's own estimate.
    pub fn first(&self) -> Option<&TierEstimate> {
        self.chain.first()
    }
}

/// Every start tier's cascade for one class.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClassEstimate {
    /// One entry per tier, cheapest first.
    pub starts: Vec<StartEstimate>,
    /// Attempts the least-sampled eligible start needed (the gate).
    pub min_trials: f64,
}

impl ClassEstimate {
    /// Index of the eligible start with the least expected cost per solved
    /// task. Within a relative 1e-9, `preferred` wins, then the cheaper tier.
    pub fn best(&self, preferred: Option<usize>) -> Option<usize> {
        let mut best: Option<(usize, f64)> = None;
        for (i, start) in self.starts.iter().enumerate() {
            let (true, Some(cost)) = (start.eligible, start.cost_per_solve_usd) else {
                continue;
            };
            best = match best {
                None => Some((i, cost)),
                Some((j, current)) => {
                    let tolerance = 1e-9 * current.abs().max(cost.abs()).max(1e-12);
                    if cost < current - tolerance
                        || ((cost - current).abs() <= tolerance && preferred == Some(i))
                    {
                        Some((i, cost))
                    } else {
                        Some((j, current))
                    }
                }
            };
        }
        best.map(|(i, _)| i)
    }

    /// "haiku p=0.42 n=57 $0.0310/solve, sonnet p=0.93 n=40 $0.0270/solve,
    /// opus n=2 (< 20 samples)": each start tier's own success chance, its
    /// sample count and the expected cost per solve of starting there.
    pub fn describe(&self, min_trials: f64) -> String {
        self.starts
            .iter()
            .map(|s| {
                let (p, n) = s.first().map_or((0.0, 0.0), |f| (f.p_success, f.trials));
                let n_text = format_count(n);
                if !s.eligible {
                    return format!(
                        "{} p={p:.2} n={n_text} (< {} samples)",
                        s.tier,
                        format_count(min_trials)
                    );
                }
                match s.cost_per_solve_usd {
                    Some(c) => format!("{} p={p:.2} n={n_text} {}/solve", s.tier, usd(c)),
                    None => format!("{} p={p:.2} n={n_text} never solves", s.tier),
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// "$0.0312".
pub fn usd(value: f64) -> String {
    if value.abs() >= 100.0 {
        format!("${value:.0}")
    } else if value.abs() >= 1.0 {
        format!("${value:.2}")
    } else {
        format!("${value:.4}")
    }
}

fn format_count(n: f64) -> String {
    if (n - n.round()).abs() < 1e-6 {
        format!("{}", n.round() as i64)
    } else {
        format!("{n:.1}")
    }
}

/// The tiers, their attempt counts, the prior and the validator: everything
/// the estimator needs besides the evidence.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CascadeModel {
    /// Tiers, cheapest first.
    pub tiers: Vec<String>,
    /// Attempts per tier before escalating (same order).
    pub attempts: Vec<u32>,
    /// The prior on each tier's success chance.
    pub prior: Prior,
    /// The validator's error rates.
    pub validator: Validator,
}

impl CascadeModel {
    /// The live model: the ladder's rungs (`cascade.ladder`, else
    /// `tiers.order`), `cascade.attempts`, the configured prior and a
    /// perfect validator.
    pub fn from_config(config: &Config) -> Self {
        let ladder = config.ladder_names();
        Self {
            tiers: ladder.to_vec(),
            attempts: ladder.iter().map(|t| config.attempts_for_rung(t)).collect(),
            prior: Prior::from_config(config),
            validator: Validator::PERFECT,
        }
    }

    /// Estimates from per-task outcome rows (each `cells[t]` for tier `t`).
    /// For the cascade starting at `s`, tier `t`'s evidence is every row
    /// weighted by the chance that tiers `s..t` all failed on it, so each
    /// start is conditioned on its own history, not on the cheapest one's.
    /// Every start is eligible; gating on row counts is the caller's.
    pub fn estimate_from_rows(&self, rows: &[&[OutcomeCell]]) -> ClassEstimate {
        let n = self.tiers.len();
        let fallback: Vec<TierCosts> = (0..n)
            .map(|t| {
                let mut all = TierEvidence::default();
                for row in rows {
                    if let Some(cell) = row.get(t) {
                        all.observe(cell.p, cell.cost_usd, 1.0);
                    }
                }
                all.costs().unwrap_or_default()
            })
            .collect();
        let starts = (0..n)
            .map(|s| {
                let mut evidence = vec![TierEvidence::default(); n - s];
                for row in rows {
                    let mut weight = 1.0;
                    for (k, t) in (s..n).enumerate() {
                        let Some(cell) = row.get(t) else { break };
                        evidence[k].observe(cell.p, cell.cost_usd, weight);
                        let tries = self.attempts.get(t).copied().unwrap_or(1).max(1);
                        weight *= (1.0 - cell.p).powi(tries as i32);
                    }
                }
                let chain = (s..n)
                    .zip(&evidence)
                    .map(|(t, e)| TierEstimate::new(&self.tiers[t], e, self.prior, fallback[t]))
                    .collect();
                StartEstimate::new(
                    &self.tiers[s],
                    chain,
                    &self.attempts[s.min(self.attempts.len())..],
                    self.validator,
                )
            })
            .collect();
        ClassEstimate {
            starts,
            min_trials: rows.len() as f64,
        }
    }

    /// Estimates from per-tier aggregates (the store's history): the same
    /// evidence serves every start. A start is eligible when its own tier
    /// has at least `min_trials` attempts. `fallback[t]` prices tiers the
    /// evidence has not seen.
    pub fn estimate_from_evidence(
        &self,
        evidence: &[TierEvidence],
        fallback: &[TierCosts],
        min_trials: f64,
    ) -> ClassEstimate {
        let n = self.tiers.len();
        let estimates: Vec<TierEstimate> = (0..n)
            .map(|t| {
                TierEstimate::new(
                    &self.tiers[t],
                    &evidence.get(t).copied().unwrap_or_default(),
                    self.prior,
                    fallback.get(t).copied().unwrap_or_default(),
                )
            })
            .collect();
        let starts = (0..n)
            .map(|s| {
                let mut start = StartEstimate::new(
                    &self.tiers[s],
                    estimates[s..].to_vec(),
                    &self.attempts[s.min(self.attempts.len())..],
                    self.validator,
                );
                start.eligible = estimates[s].trials + WEIGHT_EPSILON >= min_trials;
                start
            })
            .collect();
        ClassEstimate { starts, min_trials }
    }
}

#[cfg(test)]
mod tests;
