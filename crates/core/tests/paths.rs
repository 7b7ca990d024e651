//! The `path` policy of `cadre routing replay`: synthetic tables whose best
//! paths are known by construction (a hopeless rung is skipped, a top rung
//! that adds nothing is left out), cross-validation that never scores a
//! trained row, the figures on the bashkit outcomes and on a generator with
//! known optimal paths, and the table options (class column, threshold,
//! ad-hoc tiers, baseline, unknown classes).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test: a failed setup or lookup should panic"
)]

use std::collections::BTreeMap;
use std::fmt::Write as _;

use cadre_config::Config;
use cadre_core::learn::{
    ClassColumn, MinSolved, OutcomeTable, ParseOptions, Policy, ReplayOptions, ReplayReport,
    parse_outcomes, parse_outcomes_with, replay,
};

fn config() -> Config {
    Config::default_embedded().unwrap()
}

fn table(text: &str) -> OutcomeTable {
    parse_outcomes(text, &config(), &[]).unwrap()
}

fn options() -> ReplayOptions {
    let mut options = ReplayOptions::from_config(&config());
    options.bootstrap = 0;
    options
}

fn run(table: &OutcomeTable, options: &ReplayOptions) -> ReplayReport {
    replay(&config(), table, options).unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

const HEADER: &str =
    "task_id,class,haiku,sonnet,opus,haiku__cost_usd,sonnet__cost_usd,opus__cost_usd\n";

/// `hopeless`: haiku never solves, sonnet 4 in 5, opus everything.
/// `capped`: haiku 3 in 5, sonnet 9 in 10 (every task haiku solves), opus
/// the same tasks as sonnet (it adds nothing, yet the cascade pays for it).
fn skip_and_stop_table(per_class: usize) -> String {
    let mut text = String::from(HEADER);
    for i in 0..per_class {
        let sonnet = u8::from(i % 5 != 0);
        writeln!(text, "h{i},hopeless,0,{sonnet},1,0.02,0.03,0.05").unwrap();
        let haiku = u8::from(i % 5 < 3);
        let sonnet = u8::from(i % 10 != 9);
        writeln!(text, "c{i},capped,{haiku},{sonnet},{sonnet},0.01,0.03,0.05").unwrap();
    }
    text
}

#[test]
fn path_skips_a_hopeless_rung_and_stops_below_a_useless_top() {
    let t = table(&skip_and_stop_table(40));
    let report = run(&t, &options());
    let class = |name: &str| report.classes.iter().find(|c| c.class == name).unwrap();
    assert_eq!(
        class("hopeless").learned_paths,
        BTreeMap::from([("sonnet -> opus".to_owned(), 5)])
    );
    assert_eq!(
        class("capped").learned_paths,
        BTreeMap::from([("haiku -> sonnet".to_owned(), 5)])
    );
    let fit = class("capped").path_fit.clone().unwrap();
    assert_eq!(fit.path, ["haiku", "sonnet"]);
    assert!(close(fit.solved_share, 0.9) && close(fit.top[0], 0.9));
    assert!(fit.cost_usd < fit.cascade[1]);
    let get = |name: &str| report.policy(name).unwrap();
    let (path, cascade, learned, top) = (
        get("path"),
        get("cascade"),
        get("learned"),
        get("always:opus"),
    );
    for p in [path, cascade, learned, top] {
        assert!(close(p.solved_share.value, 0.95), "{}", p.policy);
    }
    // hopeless: 0.03 + 0.2 * 0.05; capped: 0.01 + 0.4 * 0.03.
    let expected = 40.0 * (0.03 + 0.2 * 0.05) + 40.0 * (0.01 + 0.4 * 0.03);
    assert!(close(path.total_cost_usd.value, expected));
    assert!(path.total_cost_usd.value < cascade.total_cost_usd.value);
    assert!(path.total_cost_usd.value < learned.total_cost_usd.value);
    // 0.62x always-top; the oracle (which knows each task) pays 0.50x.
    assert!(path.total_cost_usd.value < 0.63 * top.total_cost_usd.value);
    let oracle = get("oracle").total_cost_usd.value;
    assert!(path.total_cost_usd.value <= 1.25 * oracle);
}

#[test]
fn path_never_scores_a_row_it_trained_on() {
    // Two tasks, two folds, one class. Trained on `a` (haiku solves it),
    // haiku alone looks as good as opus, so `b` gets haiku alone: unsolved
    // at $1. Trained on `b`, haiku is hopeless and sonnet alone is the
    // cheapest sure path: `a` costs $3. Had it seen both rows, it would run
    // haiku -> sonnet on both (solved twice, $1 + $4).
    let text = format!("{HEADER}a,x,1,1,1,1,3,5\nb,x,0,1,1,1,3,5\n");
    let mut options = options();
    options.folds = 2;
    options.min_samples = 1;
    let report = run(&table(&text), &options);
    let path = report.policy("path").unwrap();
    assert!(close(path.total_cost_usd.value, 4.0));
    assert!(close(path.solved, 1.0));
    assert_eq!(
        report.classes[0].learned_paths,
        BTreeMap::from([("haiku".to_owned(), 1), ("sonnet".to_owned(), 1)])
    );
    assert_eq!(
        report.classes[0].path_fit.as_ref().unwrap().path,
        ["haiku", "sonnet"]
    );
}

#[test]
fn a_lower_min_solved_buys_a_cheaper_path_and_the_frontier_shows_it() {
    let t = table(&skip_and_stop_table(40));
    let mut options = options();
    options.min_solved = MinSolved::Share(0.5);
    options.frontier = true;
    let report = run(&t, &options);
    let path = report.policy("path").unwrap();
    // capped: haiku alone solves 60%; hopeless: sonnet alone 80%.
    assert!(
        close(path.solved_share.value, 0.7),
        "{}",
        path.solved_share.value
    );
    assert!(close(path.total_cost_usd.value, 40.0 * (0.01 + 0.03)));
    assert_eq!(report.frontier[0].min_solved, "50.0%");
    let top = report
        .frontier
        .iter()
        .find(|f| f.min_solved == "top")
        .unwrap();
    assert!(close(top.solved_share, 0.95));
    // Along the frontier, a higher constraint never solves less.
    let shares: Vec<f64> = report.frontier[1..]
        .iter()
        .filter(|f| f.min_solved != "top")
        .map(|f| f.solved_share)
        .collect();
    assert!(
        shares.windows(2).all(|w| w[0] <= w[1] + 1e-12),
        "{shares:?}"
    );
}

#[test]
fn thin_classes_borrow_from_their_parents_instead_of_the_static_tier() {
    // `gen/rust` has 3 tasks, `gen/go` 40: the thin one leans on `gen`,
    // where haiku is hopeless and sonnet always works.
    let mut text = String::from(HEADER);
    for i in 0..40 {
        writeln!(text, "g{i},gen/go,0,1,1,0.01,0.03,0.05").unwrap();
    }
    for i in 0..3 {
        writeln!(text, "r{i},gen/rust,0,1,1,0.01,0.03,0.05").unwrap();
    }
    let report = run(&table(&text), &options());
    let rust = report
        .classes
        .iter()
        .find(|c| c.class == "gen/rust")
        .unwrap();
    assert_eq!(rust.static_tier, "sonnet");
    let fit = rust.path_fit.as_ref().unwrap();
    assert_eq!(fit.path, ["sonnet"]);
    assert_eq!(fit.own_tasks, 3);
    assert_eq!(fit.borrowed, Some(("gen".to_owned(), 17.0)));
    assert!(rust.learned_paths.keys().all(|p| p == "sonnet"));
}

#[test]
fn table_options_class_column_threshold_ad_hoc_and_baseline() {
    let text = "task_id,kind,class,haiku,sonnet,llama,haiku__cost_usd,sonnet__cost_usd,llama__cost_usd\n\
                a,k1,c1,0.9,1,0.2,1,3,0.5\n\
                b,k2,c2,0.4,1,0.7,1,3,0.5\n";
    let named = ParseOptions {
        class_column: ClassColumn::Named("kind".into()),
        ..ParseOptions::default()
    };
    let t = parse_outcomes_with(text, &config(), &named).unwrap();
    assert_eq!(t.rows[0].class, "k1");
    assert!(t.has_class);
    let none = ParseOptions {
        class_column: ClassColumn::None,
        ..ParseOptions::default()
    };
    let t = parse_outcomes_with(text, &config(), &none).unwrap();
    assert!(t.rows.iter().all(|r| r.class.is_empty()));
    assert_eq!(t.tiers, ["haiku", "sonnet"]);
    assert!(t.ignored_columns.contains(&"llama".to_owned()));
    let missing = ParseOptions {
        class_column: ClassColumn::Named("nope".into()),
        ..ParseOptions::default()
    };
    let err = parse_outcomes_with(text, &config(), &missing).unwrap_err();
    assert!(err.to_string().contains("--class-column nope"), "{err}");

    // Thresholds turn probabilities into 0/1.
    let half = ParseOptions {
        threshold: Some(0.5),
        ..ParseOptions::default()
    };
    let t = parse_outcomes_with(text, &config(), &half).unwrap();
    let solved: Vec<f64> = t.rows.iter().map(|r| r.cells[0].p).collect();
    assert_eq!(solved, [1.0, 0.0]);
    let bad = ParseOptions {
        threshold: Some(2.0),
        ..ParseOptions::default()
    };
    assert!(parse_outcomes_with(text, &config(), &bad).is_err());

    // Ad-hoc tiers: llama becomes a rung, the cheapest by cost.
    let ad_hoc = ParseOptions {
        ad_hoc: true,
        ..ParseOptions::default()
    };
    let t = parse_outcomes_with(text, &config(), &ad_hoc).unwrap();
    assert_eq!(t.tiers, ["llama", "haiku", "sonnet"]);
    assert_eq!(t.warnings, ["column kind: no cost column; ignored"]);
    let report = run(&t, &options());
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("replayed as expectations"))
    );
    assert_eq!(report.baseline, "sonnet");
    let mut with_baseline = options();
    with_baseline.baseline = Some("haiku".into());
    let report = run(&t, &with_baseline);
    assert_eq!(report.baseline, "haiku");
    let haiku = report.policy("always:haiku").unwrap();
    assert!(close(haiku.cost_vs_baseline.unwrap().value, 1.0));
    with_baseline.baseline = Some("gpt".into());
    assert!(replay(&config(), &t, &with_baseline).is_err());
    let without_ad_hoc = ParseOptions {
        maps: vec!["llama=llama".parse().unwrap()],
        ..ParseOptions::default()
    };
    let err = parse_outcomes_with(text, &config(), &without_ad_hoc).unwrap_err();
    assert!(err.to_string().contains("--ad-hoc-tiers"), "{err}");

    // --class-tier names a class of the table.
    let t = table(text);
    let mut unknown = options();
    unknown.class_tiers = BTreeMap::from([("c9".to_owned(), "opus".to_owned())]);
    let err = replay(&config(), &t, &unknown).unwrap_err().to_string();
    assert!(err.contains("--class-tier c9: no such class"), "{err}");
    unknown.class_tiers = BTreeMap::from([("c1".to_owned(), "haiku".to_owned())]);
    assert!(replay(&config(), &t, &unknown).is_ok());
    assert_eq!(Policy::parse("path").unwrap(), Policy::Path);
}

#[test]
fn effort_rungs_replay_as_ad_hoc_tiers_and_the_path_ends_at_opus_medium() {
    // Generative tasks: haiku solves 1 in 8, sonnet 3 in 4, opus at medium
    // effort every one sonnet solves plus the rest, at fewer output tokens
    // than opus at high effort (which solves the same tasks).
    let mut text = String::from(
        "task_id,class,haiku,sonnet,opus_medium,opus_high,haiku__cost_usd,sonnet__cost_usd,opus_medium__cost_usd,opus_high__cost_usd\n",
    );
    for i in 0..40 {
        let haiku = u8::from(i % 8 == 0);
        let sonnet = u8::from(i % 4 != 3);
        writeln!(
            text,
            "g{i},generative,{haiku},{sonnet},1,1,0.010,0.030,0.035,0.060"
        )
        .unwrap();
    }
    let parse = ParseOptions {
        maps: vec!["opus_medium=opus@medium".parse().unwrap()],
        ad_hoc: true,
        ..ParseOptions::default()
    };
    let t = parse_outcomes_with(&text, &config(), &parse).unwrap();
    assert_eq!(t.tiers, ["haiku", "sonnet", "opus@medium", "opus"]);
    let report = run(&t, &options());
    let class = &report.classes[0];
    // opus@medium alone (0.035) solves everything; haiku first would cost
    // 0.010 + 0.875 * 0.035 = 0.0406, sonnet first 0.030 + 0.25 * 0.035.
    assert_eq!(
        class.learned_paths,
        BTreeMap::from([("opus@medium".to_owned(), 5)])
    );
    let path = report.policy("path").unwrap();
    let top = report.policy("always:opus").unwrap();
    assert!(close(path.solved_share.value, 1.0));
    assert!(close(path.total_cost_usd.value, 40.0 * 0.035));
    assert!(path.total_cost_usd.value < 0.6 * top.total_cost_usd.value);
    assert!(path.total_cost_usd.value < report.policy("cascade").unwrap().total_cost_usd.value);
}
