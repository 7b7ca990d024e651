//! What a planned job is expected to cost before any worker runs: per file
//! the worker calls of its cascade (a free attempt at the codemod tier for a
//! file with a rule, then each model tier's attempt priced from the file's
//! size, weighted by the chance the cascade gets there) and its share
//! of the review, and for the job a mean and a 90% interval from a seeded
//! simulation of every file's cascade. The fan-out admits files by these
//! figures; `cadre plan` and the `budget_estimate` event show them.

use cadre_config::Config;
use cadre_llm::types::Usage;

use crate::pricing::{price_usage, tokens_for_chars, worst_case_usd};

/// Tokens of the reviewer's fixed prompt (system, tools, plan) besides the
/// job's shared prefix.
const REVIEW_BASE_TOKENS: u64 = 1_500;

/// What one file is expected to cost.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct FileEstimate {
    /// Expected worker spend over its cascade.
    pub work_usd: f64,
    /// Worst case of its share of a review call (what is held back for it).
    pub review_usd: f64,
    /// One attempt per tier of the ladder from its start: (P(success), cost).
    ladder: [Option<(f64, f64)>; 8],
}

/// The job's expected cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct JobEstimate {
    /// Mean of the simulated totals (workers and review).
    pub expected_usd: f64,
    /// 5th percentile of the simulated totals.
    pub low_usd: f64,
    /// 95th percentile of the simulated totals.
    pub high_usd: f64,
    /// Files whose expected cost fits the budget, in plan order.
    pub files_covered: usize,
    /// Files estimated.
    pub files: usize,
}

/// The usage one worker attempt on a file of `chars` characters is priced
/// at: the file and the instruction in, about a third of the file out, the
/// job's shared prefix read from the cache.
fn attempt_usage(chars: u64, prefix_tokens: u64) -> Usage {
    let file_tokens = tokens_for_chars(chars);
    Usage {
        input_tokens: file_tokens + 300,
        cache_read_input_tokens: prefix_tokens,
        output_tokens: file_tokens / 3 + 200,
        ..Usage::default()
    }
}

/// The estimated price of one worker attempt at `rung` on a file of
/// `chars` characters (`None` for a rung no model plays, the codemod tier).
pub(crate) fn attempt_usd(
    config: &Config,
    rung: &str,
    chars: u64,
    prefix_tokens: u64,
) -> Option<f64> {
    let model = config.models.get(config.tier_of_rung(rung))?;
    Some(price_usage(
        model,
        &attempt_usage(chars, prefix_tokens),
        false,
    ))
}

/// Estimates one file: `chars` of content starting at `start_tier` (its
/// first model rung), after one attempt at the codemod tier when `codemod`
/// (the file has a rule): free, succeeding with the same prior chance as a
/// model attempt.
pub(crate) fn file_estimate(
    config: &Config,
    start_tier: &str,
    codemod: bool,
    chars: u64,
    prefix_tokens: u64,
) -> FileEstimate {
    let file_tokens = tokens_for_chars(chars);
    let prior = config.routing.adaptive_prior_success.clamp(0.01, 1.0);
    let rungs = config.ladder_names();
    let start = config.rung_index(start_tier).unwrap_or(0);
    let mut ladder = [None; 8];
    let mut slot = 0;
    if codemod {
        ladder[0] = Some((prior, 0.0));
        slot = 1;
    }
    for rung in rungs.iter().skip(start) {
        let Some(cost) = attempt_usd(config, rung, chars, prefix_tokens) else {
            continue;
        };
        for _ in 0..config.attempts_for_rung(rung) {
            if let Some(entry) = ladder.get_mut(slot) {
                *entry = Some((prior, cost));
                slot += 1;
            }
        }
    }
    let mut work = 0.0;
    let mut reach = 1.0;
    for (p, cost) in ladder.iter().flatten() {
        work += reach * cost;
        reach *= 1.0 - p;
    }
    FileEstimate {
        work_usd: work,
        review_usd: review_share(config, file_tokens),
        ladder,
    }
}

/// The worst case of one file's part of a review call: its diff (up to the
/// old and the new text, escaped in JSON) and its verdict.
fn review_share(config: &Config, file_tokens: u64) -> f64 {
    let Some(model) = config.models.get(&config.roles.reviewer.tier) else {
        return 0.0;
    };
    worst_case_usd(model, file_tokens * 12 / 5 + 60, 100, false)
}

/// The review call's fixed part (its instructions, the plan, the verdicts'
/// frame), held back once per job.
pub(crate) fn review_base(config: &Config, prefix_tokens: u64) -> f64 {
    let Some(model) = config.models.get(&config.roles.reviewer.tier) else {
        return 0.0;
    };
    worst_case_usd(model, prefix_tokens + REVIEW_BASE_TOKENS, 200, false)
}

/// The job's estimate over `files` (in plan order) against `budget`: a
/// seeded simulation of each file's cascade, 2,000 runs (fewer for plans of
/// thousands of files, so the simulation stays well under a second).
pub(crate) fn job_estimate(
    files: &[FileEstimate],
    base_usd: f64,
    budget: Option<f64>,
) -> JobEstimate {
    let runs = (400_000 / files.len().max(1)).clamp(100, 2_000);
    let mut rng = SplitMix(0x5EED_CAD2E);
    let mut totals: Vec<f64> = (0..runs)
        .map(|_| {
            let mut total = base_usd;
            for file in files {
                total += file.review_usd;
                for (p, cost) in file.ladder.iter().flatten() {
                    total += cost;
                    if rng.unit() < *p {
                        break;
                    }
                }
            }
            total
        })
        .collect();
    totals.sort_by(f64::total_cmp);
    let at = |q: f64| totals[((runs - 1) as f64 * q).round() as usize];
    let expected_usd = totals.iter().sum::<f64>() / runs as f64;
    let files_covered = match budget {
        None => files.len(),
        Some(cap) => {
            let mut left = cap - base_usd;
            files
                .iter()
                .take_while(|f| {
                    left -= f.work_usd + f.review_usd;
                    left >= 0.0
                })
                .count()
        }
    };
    JobEstimate {
        expected_usd,
        low_usd: at(0.05),
        high_usd: at(0.95),
        files_covered,
        files: files.len(),
    }
}

/// A small seeded generator (SplitMix64): the estimate is the same on every
/// machine and every run.
struct SplitMix(u64);

impl SplitMix {
    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cheaper_start_costs_less_and_the_interval_brackets_the_mean() {
        let config = Config::default_embedded().unwrap();
        let haiku = file_estimate(&config, "haiku", false, 4_000, 1_000);
        let opus = file_estimate(&config, "opus", false, 4_000, 1_000);
        assert!(haiku.work_usd < opus.work_usd, "{haiku:?} {opus:?}");
        assert!(haiku.review_usd > 0.0);
        let files = vec![haiku; 10];
        let job = job_estimate(&files, 0.01, Some(haiku.work_usd * 3.0));
        assert!(job.low_usd <= job.expected_usd && job.expected_usd <= job.high_usd);
        assert!(job.files_covered < 10);
        assert_eq!(job_estimate(&files, 0.01, None).files_covered, 10);
        assert_eq!(job, job_estimate(&files, 0.01, Some(haiku.work_usd * 3.0)));
    }

    #[test]
    fn a_rule_puts_a_free_codemod_attempt_before_the_model_tiers() {
        let config = Config::default_embedded().unwrap();
        let models = file_estimate(&config, "haiku", false, 4_000, 1_000);
        let with_rule = file_estimate(&config, "haiku", true, 4_000, 1_000);
        let prior = config.routing.adaptive_prior_success;
        // The model cascade is reached only when the rule fails.
        assert!((with_rule.work_usd - models.work_usd * (1.0 - prior)).abs() < 1e-12);
        assert_eq!(with_rule.ladder[0], Some((prior, 0.0)));
        assert_eq!(with_rule.ladder[1..5], models.ladder[..4]);
        // The codemod tier has no model to price.
        assert_eq!(attempt_usd(&config, "codemod", 4_000, 0), None);
        let haiku = attempt_usd(&config, "haiku", 4_000, 1_000);
        assert_eq!(models.ladder[0].map(|(_, cost)| cost), haiku);
    }
}
