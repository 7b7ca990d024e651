//! Tests of the estimator.
use super::*;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

fn model(attempts: Vec<u32>, prior: Prior) -> CascadeModel {
    CascadeModel {
        tiers: vec!["haiku".into(), "sonnet".into(), "opus".into()],
        attempts,
        prior,
        validator: Validator::PERFECT,
    }
}

const NO_PRIOR: Prior = Prior {
    mean: 0.5,
    strength: 0.0,
};

#[test]
fn learn_prior_shrinks_toward_its_mean() {
    let prior = Prior {
        mean: 0.5,
        strength: 4.0,
    };
    assert!(close(prior.posterior_mean(0.0, 0.0), 0.5));
    assert!(close(prior.posterior_mean(0.0, 4.0), 0.25));
    assert!(close(prior.posterior_mean(36.0, 36.0), 38.0 / 40.0));
    assert!(close(NO_PRIOR.posterior_mean(3.0, 4.0), 0.75));
    assert!(close(NO_PRIOR.posterior_mean(0.0, 0.0), 0.5));
}

#[test]
fn learn_cascade_arithmetic_matches_hand_computation() {
    let t = |p: f64, s: f64, f: f64| TierEstimate {
        tier: String::new(),
        trials: 1.0,
        successes: p,
        p_success: p,
        success_cost_usd: s,
        failure_cost_usd: f,
    };
    let chain = [t(0.5, 1.0, 2.0), t(0.8, 3.0, 4.0)];
    let out = expected_cascade(&chain, &[1, 1], Validator::PERFECT);
    // 0.5*1 + 0.5*2 = 1.5, then 0.5 * (0.8*3 + 0.2*4) = 1.6.
    assert!(close(out.expected_cost_usd, 3.1));
    assert!(close(out.solve_probability, 0.5 + 0.5 * 0.8));
    // Two attempts at the first tier.
    let out = expected_cascade(&chain, &[2, 1], Validator::PERFECT);
    assert!(close(out.solve_probability, 0.5 + 0.25 + 0.25 * 0.8));
    assert!(close(out.expected_cost_usd, 1.5 + 0.75 + 0.25 * 3.2));
    // A validator that accepts every failure stops after one attempt.
    let v = Validator::new(1.0, 0.0).unwrap();
    let out = expected_cascade(&chain, &[1, 1], v);
    assert!(close(out.solve_probability, 0.5));
    assert!(close(out.expected_cost_usd, 1.5));
    // False rejects waste successes.
    let v = Validator::new(0.0, 0.5).unwrap();
    let out = expected_cascade(&chain[1..], &[1], v);
    assert!(close(out.solve_probability, 0.4));
    assert!(Validator::new(1.5, 0.0).is_err());
    assert!(Validator::new(0.0, f64::NAN).is_err());
}

#[test]
fn learn_rows_condition_each_start_on_its_own_failures() {
    // Haiku solves rows 0-1, sonnet solves rows 2-3, opus solves all.
    let row = |h: f64, s: f64| {
        [
            OutcomeCell {
                p: h,
                cost_usd: 1.0,
            },
            OutcomeCell {
                p: s,
                cost_usd: 3.0,
            },
            OutcomeCell {
                p: 1.0,
                cost_usd: 5.0,
            },
        ]
    };
    let rows = [row(1.0, 0.0), row(1.0, 0.0), row(0.0, 1.0), row(0.0, 1.0)];
    let refs: Vec<&[OutcomeCell]> = rows.iter().map(|r| r.as_slice()).collect();
    let m = model(vec![1, 1, 1], NO_PRIOR);
    let est = m.estimate_from_rows(&refs);
    // From haiku: p(haiku)=0.5; p(sonnet | haiku failed)=1.
    let from_haiku = &est.starts[0];
    assert!(close(from_haiku.chain[0].p_success, 0.5));
    assert!(close(from_haiku.chain[1].p_success, 1.0));
    assert!(close(from_haiku.chain[1].trials, 2.0));
    assert!(close(from_haiku.expected_cost_usd, 1.0 + 0.5 * 3.0));
    // From sonnet: p(sonnet)=0.5 unconditionally, opus picks up the rest.
    let from_sonnet = &est.starts[1];
    assert!(close(from_sonnet.chain[0].p_success, 0.5));
    assert!(close(from_sonnet.expected_cost_usd, 3.0 + 0.5 * 5.0));
    assert!(close(from_sonnet.solve_probability, 1.0));
    assert_eq!(est.best(None), Some(0));
    let text = est.describe(20.0);
    assert!(text.starts_with("haiku p=0.50 n=4 $2.50/solve"), "{text}");
}

#[test]
fn learn_evidence_gates_starts_on_their_own_sample_count() {
    let m = model(vec![1, 2, 1], NO_PRIOR);
    let mut haiku = TierEvidence::default();
    for _ in 0..30 {
        haiku.observe(0.0, 0.02, 1.0);
    }
    let mut sonnet = TierEvidence::default();
    for _ in 0..30 {
        sonnet.observe(1.0, 0.03, 1.0);
    }
    let est = m.estimate_from_evidence(
        &[haiku, sonnet, TierEvidence::default()],
        &[TierCosts::default(); 3],
        20.0,
    );
    assert!(est.starts[0].eligible && est.starts[1].eligible && !est.starts[2].eligible);
    assert_eq!(est.best(Some(0)), Some(1));
    // Opus has no evidence: the prior mean and the fallback cost.
    assert!(close(est.starts[2].chain[0].p_success, 0.5));
    // Haiku costs 0.02 and always fails, so starting there costs 0.05/solve.
    assert!(close(est.starts[0].cost_per_solve_usd.unwrap(), 0.05));
}

#[test]
fn learn_ties_prefer_the_preferred_then_the_cheaper_tier() {
    let m = model(vec![1, 1, 1], NO_PRIOR);
    let mut e = TierEvidence::default();
    e.observe(1.0, 1.0, 25.0);
    let est = m.estimate_from_evidence(&[e, e, e], &[TierCosts::default(); 3], 1.0);
    assert_eq!(est.best(None), Some(0));
    assert_eq!(est.best(Some(2)), Some(2));
}
