//! `cadre routing replay` on the real bashkit outcomes and on synthetic
//! tables whose right answers are known by construction.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test: a failed setup or lookup should panic"
)]

use std::collections::BTreeMap;
use std::fmt::Write as _;

use cadre_config::Config;
use cadre_core::learn::{
    ColumnMap, OutcomeTable, Policy, ReplayOptions, ReplayReport, Validator, parse_outcomes, replay,
};

fn config() -> Config {
    Config::default_embedded().unwrap()
}

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/../../tests/data/bashkit-eval/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn table(text: &str) -> OutcomeTable {
    parse_outcomes(text, &config(), &[]).unwrap()
}

fn run(table: &OutcomeTable, options: &ReplayOptions) -> ReplayReport {
    replay(&config(), table, options).unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// Column mean of a 0/1 model column, straight from the CSV text.
fn column_sum(text: &str, column: &str) -> f64 {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let at = header.iter().position(|h| *h == column).unwrap();
    lines
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').nth(at).unwrap().parse::<f64>().unwrap())
        .sum()
}

const ALL_POLICIES: [&str; 8] = [
    "always:haiku",
    "always:sonnet",
    "always:opus",
    "static",
    "cascade",
    "learned",
    "path",
    "oracle",
];

fn check_sane(text: &str, top_column: &str) -> ReplayReport {
    let t = table(text);
    assert_eq!(t.tiers, ["haiku", "sonnet", "opus"]);
    assert_eq!(t.rows.len(), 58);
    assert_eq!(t.ignored_columns.len(), 2, "{:?}", t.ignored_columns);
    assert!(t.ignored_columns.iter().all(|c| c.starts_with("gpt_")));
    let report = run(&t, &ReplayOptions::from_config(&config()));
    let names: Vec<&str> = report.policies.iter().map(|p| p.policy.as_str()).collect();
    assert_eq!(names, ALL_POLICIES);
    let oracle = report.policy("oracle").unwrap();
    for p in &report.policies {
        let share = p.solved_share;
        assert!((0.0..=1.0).contains(&share.value), "{}", p.policy);
        assert!(p.total_cost_usd.value > 0.0, "{}", p.policy);
        for metric in [
            Some(share),
            Some(p.total_cost_usd),
            p.cost_vs_baseline,
            p.cost_vs_oracle,
        ]
        .into_iter()
        .flatten()
        {
            let [low, high] = metric.ci95.unwrap();
            assert!(
                low <= metric.value + 1e-12 && metric.value <= high + 1e-12,
                "{}: {metric:?}",
                p.policy
            );
        }
        // No policy solves more than the oracle.
        assert!(share.value <= oracle.solved_share.value + 1e-12);
        // At the policy's solved share, the oracle pays no more: on the tasks
        // the policy solves, the oracle's cost is at most the policy's.
        let oracle_on_solved: f64 = p
            .per_task
            .iter()
            .zip(&oracle.per_task)
            .map(|(mine, o)| mine.solve_probability * o.expected_cost_usd)
            .sum();
        assert!(
            oracle_on_solved <= p.total_cost_usd.value + 1e-12,
            "{}: oracle {oracle_on_solved} > {}",
            p.policy,
            p.total_cost_usd.value
        );
        let per_solve = p.cost_per_solve_usd.unwrap();
        assert!(close(per_solve * p.solved, p.total_cost_usd.value));
    }
    // always:top solves exactly the top column's mean, and costs its sum.
    let top = report.policy("always:opus").unwrap();
    assert!(close(
        top.solved_share.value,
        column_sum(text, top_column) / 58.0
    ));
    assert!(close(
        top.total_cost_usd.value,
        column_sum(text, &format!("{top_column}__cost_usd_list"))
    ));
    assert_eq!(top.cost_vs_baseline.unwrap().value, 1.0);
    let haiku = report.policy("always:haiku").unwrap();
    assert!(close(
        haiku.solved_share.value,
        column_sum(text, "claude_haiku_4_5") / 58.0
    ));
    assert_eq!(oracle.cost_vs_oracle.unwrap().value, 1.0);
    // The cascade from the cheapest tier solves whatever any tier solves.
    assert!(close(
        report.policy("cascade").unwrap().solved_share.value,
        oracle.solved_share.value
    ));
    assert_eq!(report.classes.len(), 1);
    assert_eq!(report.classes[0].learned_starts.values().sum::<usize>(), 5);
    report
}

#[test]
fn bashkit_2026_05_26_replays_every_policy_sanely() {
    let text = fixture("bashkit_eval_2026-05-26.csv");
    let report = check_sane(&text, "claude_opus_4_7");
    // Opus 4.7 solves 56 of 58, Haiku 54: the gap is defined.
    let pgr = |name: &str| report.policy(name).unwrap().pgr.unwrap().value;
    assert!(close(pgr("always:opus"), 1.0));
    assert!(close(pgr("always:haiku"), 0.0));
    assert!(close(pgr("oracle"), 2.0), "{}", pgr("oracle"));
    // Haiku is reliable on these tasks: learned starts there in every fold.
    assert_eq!(
        report.classes[0].learned_starts,
        BTreeMap::from([("haiku".to_owned(), 5)])
    );
    assert!(
        report.classes[0].fit.ends_with("-> start haiku"),
        "{}",
        report.classes[0].fit
    );
}

#[test]
fn bashkit_2026_02_28_replays_and_says_pgr_is_undefined() {
    let text = fixture("bashkit_eval_2026-02-28.csv");
    let report = check_sane(&text, "claude_opus_4_6");
    // Opus 4.6 solves 50, Haiku 54: no gap to recover.
    assert!(report.policies.iter().all(|p| p.pgr.is_none()));
    assert!(
        report.notes.iter().any(|n| n.contains("PGR is undefined")),
        "{:?}",
        report.notes
    );
}

#[test]
fn replay_is_deterministic_for_a_seed() {
    let t = table(&fixture("bashkit_eval_2026-05-26.csv"));
    let mut options = ReplayOptions::from_config(&config());
    options.bootstrap = 200;
    let a = run(&t, &options);
    let b = run(&t, &options);
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap()
    );
    options.seed = 99;
    let c = run(&t, &options);
    assert_ne!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&c).unwrap(),
        "another seed draws other resamples"
    );
}

/// `hard` tasks: haiku never solves them; `easy` tasks: haiku always does.
/// Sonnet and opus solve everything. Failures cost more than successes.
fn two_class_table(per_class: usize) -> String {
    let mut text = String::from(
        "task_id,class,haiku,sonnet,opus,haiku__cost_usd,sonnet__cost_usd,opus__cost_usd\n",
    );
    for i in 0..per_class {
        writeln!(text, "hard-{i},hard,0,1,1,0.020,0.030,0.050").unwrap();
        writeln!(text, "easy-{i},easy,1,1,1,0.010,0.030,0.050").unwrap();
    }
    text
}

#[test]
fn learned_starts_the_hopeless_class_high_and_the_reliable_class_low() {
    let t = table(&two_class_table(40));
    let report = run(&t, &ReplayOptions::from_config(&config()));
    let starts = |class: &str| {
        report
            .classes
            .iter()
            .find(|c| c.class == class)
            .unwrap()
            .learned_starts
            .clone()
    };
    assert_eq!(starts("hard"), BTreeMap::from([("sonnet".to_owned(), 5)]));
    assert_eq!(starts("easy"), BTreeMap::from([("haiku".to_owned(), 5)]));
    let get = |name: &str| report.policy(name).unwrap();
    let (learned, cascade, top) = (get("learned"), get("cascade"), get("always:opus"));
    // Equal solved share...
    for p in [learned, cascade, top] {
        assert!(close(p.solved_share.value, 1.0), "{}", p.policy);
    }
    // ...at a lower cost than both.
    assert!(learned.total_cost_usd.value < cascade.total_cost_usd.value);
    assert!(learned.total_cost_usd.value < top.total_cost_usd.value);
    // Exactly: hard at sonnet (0.03), easy at haiku (0.01), which is the oracle.
    assert!(close(learned.total_cost_usd.value, 40.0 * (0.03 + 0.01)));
    assert!(close(
        cascade.total_cost_usd.value,
        40.0 * (0.02 + 0.03 + 0.01)
    ));
    assert!(close(top.total_cost_usd.value, 80.0 * 0.05));
    assert!(close(learned.cost_vs_oracle.unwrap().value, 1.0));
    // Classes that are not complexities start at the middle tier.
    assert!(report.classes.iter().all(|c| c.static_tier == "sonnet"));
    assert!(close(get("static").total_cost_usd.value, 80.0 * 0.03));
    let hard = report.classes.iter().find(|c| c.class == "hard").unwrap();
    assert!(hard.fit.starts_with("haiku p=0.05 n=40"), "{}", hard.fit);
    assert!(hard.fit.ends_with("-> start sonnet"), "{}", hard.fit);
}

#[test]
fn learned_keeps_the_static_tier_below_the_minimum_samples() {
    // 10 tasks per class: 8 training rows per fold, fewer than 20.
    let t = table(&two_class_table(10));
    let report = run(&t, &ReplayOptions::from_config(&config()));
    let learned = report.policy("learned").unwrap();
    let fixed = report.policy("static").unwrap();
    assert_eq!(learned.per_task, fixed.per_task);
    assert!(
        report
            .classes
            .iter()
            .all(|c| c.learned_starts == BTreeMap::from([("sonnet".to_owned(), 5)]))
    );
    assert!(
        report.classes[0]
            .fit
            .contains("10 tasks < 20 samples -> static sonnet")
    );
    // Lower the bar and it learns.
    let mut options = ReplayOptions::from_config(&config());
    options.min_samples = 5;
    let report = run(&t, &options);
    let easy = report.classes.iter().find(|c| c.class == "easy").unwrap();
    assert_eq!(
        easy.learned_starts,
        BTreeMap::from([("haiku".to_owned(), 5)])
    );
}

#[test]
fn learned_never_sees_the_rows_it_is_scored_on() {
    // Two tasks, two folds: each is scored by a model trained on the other.
    // Trained on `a`, haiku looks perfect, so `b` starts at haiku (1 + 3);
    // trained on `b`, haiku looks hopeless, so `a` starts at sonnet (3).
    // Had it seen both rows, it would start both at haiku (1 and 1 + 3).
    let text = "task_id,class,haiku,sonnet,opus,haiku__cost_usd,sonnet__cost_usd,opus__cost_usd\n\
                a,x,1,1,1,1,3,5\n\
                b,x,0,1,1,1,3,5\n";
    let mut options = ReplayOptions::from_config(&config());
    options.folds = 2;
    options.min_samples = 1;
    options.prior.strength = 0.0;
    options.class_tiers = BTreeMap::from([("x".to_owned(), "opus".to_owned())]);
    let report = run(&table(text), &options);
    let learned = report.policy("learned").unwrap();
    assert!(close(learned.total_cost_usd.value, 7.0));
    assert_eq!(
        report.classes[0].learned_starts,
        BTreeMap::from([("haiku".to_owned(), 1), ("sonnet".to_owned(), 1)])
    );
    assert!(report.classes[0].fit.ends_with("-> start haiku"));
    // The class map sets the static tier.
    assert!(close(
        report.policy("static").unwrap().total_cost_usd.value,
        10.0
    ));
}

#[test]
fn complexity_classes_use_the_configured_start_tiers() {
    let text = "task_id,class,haiku,sonnet,opus,haiku__cost_usd,sonnet__cost_usd,opus__cost_usd\n\
                m,mechanical,1,1,1,1,3,5\n\
                g,generative,1,1,1,1,3,5\n\
                r,reasoning,1,1,1,1,3,5\n";
    let report = run(&table(text), &ReplayOptions::from_config(&config()));
    let statics: Vec<(&str, &str)> = report
        .classes
        .iter()
        .map(|c| (c.class.as_str(), c.static_tier.as_str()))
        .collect();
    assert_eq!(
        statics,
        [
            ("generative", "sonnet"),
            ("mechanical", "haiku"),
            ("reasoning", "opus")
        ]
    );
    assert!(close(
        report.policy("static").unwrap().total_cost_usd.value,
        9.0
    ));
}

#[test]
fn probabilities_attempts_and_validator_errors_are_modelled() {
    let text = "task_id,haiku,opus,haiku__cost_usd,opus__cost_usd\n\
                a,0.5,0.9,1,5\n\
                b,0.25,0.7,1,5\n";
    let t = table(text);
    assert_eq!(t.tiers, ["haiku", "opus"], "a missing tier is skipped");
    let mut options = ReplayOptions::from_config(&config());
    options.bootstrap = 0;
    let report = run(&t, &options);
    let top = report.policy("always:opus").unwrap();
    assert!(close(top.solved_share.value, 0.8));
    assert_eq!(top.solved_share.ci95, None);
    let cascade = report.policy("cascade").unwrap();
    // a: 0.5 + 0.5*0.9; b: 0.25 + 0.75*0.7.
    assert!(close(cascade.solved, 0.95 + 0.775));
    assert!(close(
        cascade.total_cost_usd.value,
        (1.0 + 2.5) + (1.0 + 3.75)
    ));
    // Two haiku attempts (independent): a: 1 - 0.25 = 0.75 before opus.
    options.attempts = BTreeMap::from([("haiku".to_owned(), 2)]);
    options.policies = vec![Policy::Always("haiku".into())];
    let report = run(&t, &options);
    assert!(close(report.policies[0].solved, 0.75 + (1.0 - 0.75 * 0.75)));
    // A validator that accepts every failure ends the cascade after haiku.
    options.attempts.clear();
    options.policies = vec![Policy::Cascade];
    options.validator = Validator::new(1.0, 0.0).unwrap();
    let report = run(&t, &options);
    assert_eq!(report.policies.len(), 1);
    assert!(close(report.policies[0].solved, 0.75));
    assert!(close(report.policies[0].total_cost_usd.value, 2.0));
    // False rejects throw away successes.
    options.validator = Validator::new(0.0, 1.0).unwrap();
    let report = run(&t, &options);
    assert!(close(report.policies[0].solved, 0.0));
    assert!(close(report.policies[0].total_cost_usd.value, 12.0));
}

#[test]
fn bad_options_and_malformed_files_are_errors_naming_the_place() {
    let text = fixture("bashkit_eval_2026-05-26.csv");
    // Corrupt one cell: line 11 is the tenth task.
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut fields: Vec<String> = lines[10].split(',').map(str::to_owned).collect();
    let task = fields[0].clone();
    fields[2] = "yes".into();
    lines[10] = fields.join(",");
    let err = parse_outcomes(&lines.join("\n"), &config(), &[])
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "outcomes line 11 (task {task:?}), column claude_sonnet_4_6: solved must be 0, 1 or a probability in [0, 1], got \"yes\""
        )
    );
    let mut short = text.lines().map(str::to_owned).collect::<Vec<_>>();
    short[5].push_str(",extra");
    let err = parse_outcomes(&short.join("\n"), &config(), &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("line 6 (task \"complex_debug_script\"): expected 19 fields"),
        "{err}"
    );

    let t = table(&text);
    let mut options = ReplayOptions::from_config(&config());
    options.policies = vec![Policy::parse("always:gpt").unwrap()];
    let err = replay(&config(), &t, &options).unwrap_err().to_string();
    assert!(
        err.contains("policy always:gpt: tier gpt has no column"),
        "{err}"
    );
    options.policies.clear();
    options.folds = 1;
    assert!(replay(&config(), &t, &options).is_err());
    // Remapping a GPT column onto a tier replaces the default column; its
    // tokens are priced from the tier's model.
    let maps: Vec<ColumnMap> = vec!["gpt_5_5=opus".parse().unwrap()];
    let t = parse_outcomes(&text, &config(), &maps).unwrap();
    // GPT 5.5 at opus prices is cheaper per task than sonnet, so the ladder
    // follows the cost and says that it disagrees with tiers.order.
    assert_eq!(t.tiers, ["haiku", "opus", "sonnet"]);
    assert!(
        t.warnings
            .iter()
            .any(|w| w.contains("disagrees with tiers.order")),
        "{:?}",
        t.warnings
    );
    assert_eq!(t.columns[1].column, "gpt_5_5");
    assert_eq!(
        t.columns[1].cost_source,
        cadre_core::learn::CostSource::Tokens
    );
    assert!(t.ignored_columns.contains(&"claude_opus_4_7".to_owned()));
    // archive_create_extract: 888 input and 289 output tokens at $5/$25.
    assert!(close(
        t.rows[0].cells[1].cost_usd,
        (888.0 * 5.0 + 289.0 * 25.0) / 1e6
    ));
}
