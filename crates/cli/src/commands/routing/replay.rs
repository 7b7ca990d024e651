//! `cadre routing replay`: replay routing policies over a CSV of real
//! per-task outcomes and compare what each would have solved and spent.

use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use cadre_config::Config;
use cadre_core::learn::{
    ClassColumn, ColumnMap, Metric, ParseOptions, Policy, ReplayOptions, ReplayReport, Validator,
    parse_outcomes_with, replay,
};

use super::{emit, render_table};
use crate::args::{Cli, ReplayArgs};
use crate::session::load_config;

/// `cadre routing replay`.
pub(crate) fn run(cli: &Cli, args: &ReplayArgs) -> Result<ExitCode> {
    let config = load_config(cli)?.config;
    let report = replay_report(&config, args)?;
    if args.json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
    } else {
        emit(&render_replay(
            &report,
            &args.outcomes.display().to_string(),
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn split_pair<'a>(flag: &str, text: &'a str, shape: &str) -> Result<(&'a str, &'a str)> {
    text.split_once('=')
        .map(|(a, b)| (a.trim(), b.trim()))
        .filter(|(a, b)| !a.is_empty() && !b.is_empty())
        .ok_or_else(|| anyhow!("{flag} {text:?}: expected {shape}"))
}

/// Builds the replay options from the flags and the configuration.
fn replay_options(config: &Config, args: &ReplayArgs) -> Result<ReplayOptions> {
    let mut options = ReplayOptions::from_config(config);
    options.policies = args
        .policies
        .iter()
        .map(|p| Policy::parse(p))
        .collect::<Result<_, _>>()?;
    for text in &args.attempts {
        let (tier, n) = split_pair("--attempts", text, "TIER=N")?;
        let n: u32 = n
            .parse()
            .map_err(|_| anyhow!("--attempts {text:?}: {n:?} is not a whole number"))?;
        options.attempts.insert(tier.to_owned(), n);
    }
    for text in &args.class_tiers {
        let (class, tier) = split_pair("--class-tier", text, "CLASS=TIER")?;
        options
            .class_tiers
            .insert(class.to_owned(), tier.to_owned());
    }
    options.validator = Validator::new(args.false_accept, args.false_reject)?;
    options.folds = args.folds;
    options.seed = args.seed;
    options.bootstrap = args.bootstrap;
    if let Some(text) = &args.min_solved {
        options.min_solved = text.parse()?;
    }
    options.frontier = args.frontier;
    options.baseline = args.baseline.clone();
    Ok(options)
}

/// Runs the replay described by `args`.
pub(crate) fn replay_report(config: &Config, args: &ReplayArgs) -> Result<ReplayReport> {
    let text = std::fs::read_to_string(&args.outcomes)
        .with_context(|| format!("reading {}", args.outcomes.display()))?;
    let maps: Vec<ColumnMap> = args
        .maps
        .iter()
        .map(|m| m.parse())
        .collect::<Result<_, _>>()?;
    let parse = ParseOptions {
        maps,
        class_column: match (&args.class_column, args.no_class) {
            (Some(name), _) => ClassColumn::Named(name.clone()),
            (None, true) => ClassColumn::None,
            (None, false) => ClassColumn::Default,
        },
        threshold: args.threshold,
        ad_hoc: args.ad_hoc_tiers,
    };
    let mut table = parse_outcomes_with(&text, config, &parse)
        .with_context(|| format!("in {}", args.outcomes.display()))?;
    if args.class_from_id {
        if table.has_class {
            bail!("--class-from-id: the outcomes already have a class column");
        }
        for row in &mut table.rows {
            row.class = row
                .task_id
                .split('_')
                .next()
                .unwrap_or(&row.task_id)
                .to_owned();
        }
    }
    let options = replay_options(config, args)?;
    Ok(replay(config, &table, &options)?)
}

fn metric_text(metric: Option<&Metric>, value: impl Fn(f64) -> String) -> String {
    match metric {
        None => "n/a".to_owned(),
        Some(m) => match m.ci95 {
            Some([low, high]) => format!("{} [{}, {}]", value(m.value), value(low), value(high)),
            None => value(m.value),
        },
    }
}

/// The replay as a table for people.
pub(crate) fn render_replay(report: &ReplayReport, source: &str) -> String {
    let mut out = String::new();
    let classes = report.classes.len();
    out.push_str(&format!(
        "outcomes: {source}: {} tasks, {classes} class{}\n",
        report.tasks,
        if classes == 1 { "" } else { "es" }
    ));
    let tiers: Vec<String> = report
        .columns
        .iter()
        .map(|c| format!("{} <- {} ({})", c.tier, c.column, c.cost_source))
        .collect();
    out.push_str(&format!("tiers: {}\n", tiers.join("; ")));
    if !report.ignored_columns.is_empty() {
        out.push_str(&format!(
            "ignored columns (no tier): {}\n",
            report.ignored_columns.join(", ")
        ));
    }
    let attempts: Vec<String> = report
        .tiers
        .iter()
        .zip(&report.attempts)
        .map(|(t, n)| format!("{t} {n}"))
        .collect();
    out.push_str(&format!(
        "attempts: {}; validator false-accept {}, false-reject {}\n",
        attempts.join(", "),
        report.validator.false_accept,
        report.validator.false_reject
    ));
    out.push_str(&format!(
        "learned: {}-fold cross-validation, >= {} training tasks per class, prior p={} x {}; seed {}",
        report.folds, report.min_samples, report.prior.mean, report.prior.strength, report.seed
    ));
    if report.bootstrap > 0 {
        out.push_str(&format!(
            "; [95% intervals, {} bootstrap resamples]",
            report.bootstrap
        ));
    }
    out.push_str(&format!(
        "\npath: per class the cheapest path solving at least {} (top = what always:{} solves in training); vs {} = cost / always:{}\n\n",
        report.min_solved,
        report.tiers.last().map_or("", String::as_str),
        report.baseline,
        report.baseline
    ));

    let mut rows = vec![
        [
            "policy",
            "solved",
            "cost",
            "$/solve",
            "vs baseline",
            "vs oracle",
            "PGR",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    rows[0][4] = format!("vs {}", report.baseline);
    for p in &report.policies {
        rows.push(vec![
            p.policy.clone(),
            metric_text(Some(&p.solved_share), |v| format!("{:.1}%", v * 100.0)),
            metric_text(Some(&p.total_cost_usd), |v| format!("${v:.3}")),
            p.cost_per_solve_usd
                .map_or("n/a".to_owned(), |v| format!("${v:.4}")),
            metric_text(p.cost_vs_baseline.as_ref(), |v| format!("{v:.2}x")),
            metric_text(p.cost_vs_oracle.as_ref(), |v| format!("{v:.2}x")),
            metric_text(p.pgr.as_ref(), |v| format!("{v:.2}")),
        ]);
    }
    out.push_str(&render_table(&rows));

    if !report.frontier.is_empty() {
        out.push_str("\nfrontier of path (cross-validated):\n");
        let mut rows = vec![
            ["min solved", "solved", "cost", "$/solve", "vs baseline"]
                .map(str::to_owned)
                .to_vec(),
        ];
        rows[0][4] = format!("vs {}", report.baseline);
        for f in &report.frontier {
            rows.push(vec![
                f.min_solved.clone(),
                format!("{:.1}%", f.solved_share * 100.0),
                format!("${:.3}", f.total_cost_usd),
                f.cost_per_solve_usd
                    .map_or("n/a".to_owned(), |v| format!("${v:.4}")),
                f.cost_vs_baseline
                    .map_or("n/a".to_owned(), |v| format!("{v:.2}x")),
            ]);
        }
        out.push_str(&render_table(&rows));
        out.push_str(&match report.apgr {
            Some(v) => format!(
                "APGR over the frontier: {v:.3} (PGR averaged over budgets from always:{}'s cost to always:{}'s)\n",
                report.tiers.first().map_or("?", String::as_str),
                report.tiers.last().map_or("?", String::as_str)
            ),
            None => "APGR over the frontier: n/a (the top tier solves no more than the cheapest)\n"
                .to_owned(),
        });
    }

    out.push_str("\nclasses:\n");
    for c in &report.classes {
        let starts: Vec<String> = c
            .learned_starts
            .iter()
            .map(|(tier, folds)| format!("{tier} in {folds}"))
            .collect();
        out.push_str(&format!(
            "  {}: {} task{}; static {}; learned start {} of {} folds\n    all rows: {}\n",
            c.class,
            c.tasks,
            if c.tasks == 1 { "" } else { "s" },
            c.static_tier,
            starts.join(", "),
            c.learned_starts.values().sum::<usize>(),
            c.fit
        ));
        let paths: Vec<String> = c
            .learned_paths
            .iter()
            .map(|(path, folds)| format!("{path} in {folds}"))
            .collect();
        out.push_str(&format!("    learned path: {}\n", paths.join(", ")));
        if let Some(fit) = &c.path_fit {
            let borrowed = fit
                .borrowed
                .as_ref()
                .map(|(parent, n)| format!(" + {n:.0} borrowed from {parent}"))
                .unwrap_or_default();
            out.push_str(&format!(
                "    path on all rows: {} solves {:.1}% at ${:.4}/task; cascade {:.1}% at ${:.4}; top alone {:.1}% at ${:.4} ({} task{}{borrowed})\n",
                fit.path.join(" -> "),
                fit.solved_share * 100.0,
                fit.cost_usd,
                fit.cascade[0] * 100.0,
                fit.cascade[1],
                fit.top[0] * 100.0,
                fit.top[1],
                fit.own_tasks,
                if fit.own_tasks == 1 { "" } else { "s" }
            ));
        }
    }
    if !report.notes.is_empty() {
        out.push_str("notes:\n");
        for note in &report.notes {
            out.push_str(&format!("  - {note}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use cadre_core::learn::MinSolved;

    use super::*;
    use crate::args::RoutingCommand;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(subcommand)]
        command: RoutingCommand,
    }

    fn fixture(name: &str) -> String {
        format!(
            "{}/../../tests/data/bashkit-eval/{name}",
            env!("CARGO_MANIFEST_DIR")
        )
    }

    fn replay_args(extra: &[&str]) -> ReplayArgs {
        let mut argv = vec!["x", "replay"];
        argv.extend_from_slice(extra);
        match Wrapper::try_parse_from(argv).unwrap().command {
            RoutingCommand::Replay(args) => args,
            RoutingCommand::Explain(_) => unreachable!(),
        }
    }

    fn config() -> Config {
        Config::default_embedded().unwrap()
    }

    #[test]
    fn routing_replay_prints_every_policy_on_both_bashkit_files() {
        for file in ["bashkit_eval_2026-02-28.csv", "bashkit_eval_2026-05-26.csv"] {
            let path = fixture(file);
            let args = replay_args(&["--outcomes", &path, "--bootstrap", "300"]);
            let report = replay_report(&config(), &args).unwrap();
            let text = render_replay(&report, file);
            for policy in [
                "always:haiku",
                "always:sonnet",
                "always:opus",
                "static",
                "cascade",
                "learned",
                "path",
                "oracle",
            ] {
                assert!(
                    text.lines().any(|l| l.starts_with(&format!("{policy} "))),
                    "{file}: no {policy} row in\n{text}"
                );
            }
            assert!(text.contains("58 tasks, 1 class"), "{text}");
            assert!(
                text.contains("haiku <- claude_haiku_4_5 (__cost_usd_list)"),
                "{text}"
            );
            let json: serde_json::Value = serde_json::to_value(&report).unwrap();
            assert_eq!(json["policies"].as_array().unwrap().len(), 8);
            assert!(text.contains("PGR"), "{text}");
            assert!(text.contains("vs opus"), "{text}");
            assert!(json["policies"][0]["solved_share"]["ci95"].is_array());
        }
    }

    #[test]
    fn routing_replay_flags_reach_the_options() {
        let path = fixture("bashkit_eval_2026-05-26.csv");
        let args = replay_args(&[
            "--outcomes",
            &path,
            "--policy",
            "cascade",
            "--policy",
            "always:opus",
            "--attempts",
            "sonnet=2",
            "--false-accept",
            "0.1",
            "--class-tier",
            "(all)=opus",
            "--min-solved",
            "95%",
            "--baseline",
            "claude_sonnet_4_6",
            "--frontier",
            "--folds",
            "3",
            "--seed",
            "4",
            "--bootstrap",
            "0",
        ]);
        let options = replay_options(&config(), &args).unwrap();
        assert_eq!(
            options.policies,
            [Policy::Cascade, Policy::Always("opus".into())]
        );
        assert_eq!(options.attempts["sonnet"], 2);
        assert_eq!(options.validator.false_accept, 0.1);
        assert_eq!(options.class_tiers["(all)"], "opus");
        assert_eq!(options.min_solved, MinSolved::Share(0.95));
        assert_eq!(options.baseline.as_deref(), Some("claude_sonnet_4_6"));
        assert_eq!((options.folds, options.seed, options.bootstrap), (3, 4, 0));
        let report = replay_report(&config(), &args).unwrap();
        let text = render_replay(&report, "f");
        assert!(
            text.contains("attempts: haiku 1, sonnet 2, opus 1"),
            "{text}"
        );
        assert!(!text.lines().any(|l| l.starts_with("static ")), "{text}");
        assert!(text.contains("vs sonnet"), "{text}");
        assert!(text.contains("frontier of path"), "{text}");
        assert!(text.contains("APGR over the frontier: "), "{text}");
        assert!(text.contains("solving at least 95.0%"), "{text}");
        let unknown = replay_args(&["--outcomes", &path, "--class-tier", "x=opus"]);
        let err = format!("{:#}", replay_report(&config(), &unknown).unwrap_err());
        assert!(err.contains("--class-tier x: no such class"), "{err}");
        let classes = replay_args(&["--outcomes", &path, "--class-from-id", "--bootstrap", "0"]);
        let report = replay_report(&config(), &classes).unwrap();
        assert!(report.classes.len() > 5);
        let text = render_replay(&report, "f");
        assert!(text.contains("learned path: "), "{text}");
        assert!(text.contains("borrowed from (all)"), "{text}");
        let bad = replay_args(&["--outcomes", &path, "--min-solved", "most"]);
        assert!(replay_options(&config(), &bad).is_err());

        let bad = replay_args(&["--outcomes", &path, "--attempts", "sonnet"]);
        assert!(replay_options(&config(), &bad).is_err());
        let bad = replay_args(&["--outcomes", &path, "--false-reject", "2"]);
        assert!(replay_options(&config(), &bad).is_err());
        let bad = replay_args(&["--outcomes", &path, "--map", "claude_opus_4_7"]);
        assert!(replay_report(&config(), &bad).is_err());
        let missing = replay_args(&["--outcomes", "/nonexistent/x.csv"]);
        let err = format!("{:#}", replay_report(&config(), &missing).unwrap_err());
        assert!(err.contains("reading /nonexistent/x.csv"), "{err}");
    }
}
