//! `cadre routing replay` and `cadre routing explain`: the command-line side
//! of routing that learns (the estimator lives in `cadre_core::learn`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use cadre_config::Config;
use cadre_core::learn::{
    ColumnMap, LiveDecision, Metric, Policy, ReplayOptions, ReplayReport, Validator, explain_start,
    parse_outcomes, replay,
};
use cadre_core::{Engine, JobOptions};
use cadre_types::{Complexity, ErrorCost, JobId, SubtaskStatus};
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::cli::Session;

/// `cadre routing ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum RoutingCommand {
    /// Replay routing policies over a CSV of real per-task outcomes.
    Replay(ReplayArgs),
    /// Plan a job and show each subtask's static and learned start tier, and why.
    Explain(ExplainArgs),
}

/// `cadre routing replay`.
#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    /// The outcome table: task_id, optional class, per model `<model>` (solved
    /// 0/1 or a probability) and `<model>__cost_usd` (or `__cost_usd_list`, or
    /// `__input_tokens` + `__output_tokens`).
    #[arg(long, value_name = "FILE.csv")]
    outcomes: PathBuf,
    /// A policy: always:<tier>, static, cascade, learned, oracle (repeatable;
    /// default: all).
    #[arg(long = "policy", value_name = "NAME")]
    policies: Vec<String>,
    /// Map a model column to a tier (or to `none`); default: the tier whose
    /// name the column contains (repeatable).
    #[arg(long = "map", value_name = "COLUMN=TIER")]
    maps: Vec<String>,
    /// Attempts at a tier before escalating (repeatable; default 1 each).
    #[arg(long = "attempts", value_name = "TIER=N")]
    attempts: Vec<String>,
    /// The static policy's start tier for a class (repeatable; default: a
    /// complexity name uses routing.start_tier, other classes the middle tier).
    #[arg(long = "class-tier", value_name = "CLASS=TIER")]
    class_tiers: Vec<String>,
    /// Chance the validator accepts a failed attempt.
    #[arg(long, default_value_t = 0.0)]
    false_accept: f64,
    /// Chance the validator rejects a successful attempt.
    #[arg(long, default_value_t = 0.0)]
    false_reject: f64,
    /// Cross-validation folds for `learned`.
    #[arg(long, default_value_t = 5)]
    folds: usize,
    /// Seed for folds and the bootstrap.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Bootstrap resamples for the 95% intervals (0 = none).
    #[arg(long, default_value_t = 1000)]
    bootstrap: usize,
    /// Use the task id's first word (up to `_`) as the class, for tables
    /// without a class column whose ids start with a category.
    #[arg(long)]
    class_from_id: bool,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

/// `cadre routing explain`.
#[derive(Debug, Args)]
pub(crate) struct ExplainArgs {
    /// What to do, in one sentence.
    instruction: String,
    /// The workspace root.
    #[arg(long)]
    workspace: PathBuf,
    /// Only files matching these globs (repeatable).
    #[arg(long = "files", value_name = "GLOB")]
    files: Vec<String>,
    /// JSON output.
    #[arg(long)]
    json: bool,
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
    let mut table = parse_outcomes(&text, config, &maps)
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

/// Writes to stdout; a closed pipe (`| head`) is not an error.
fn emit(text: &str) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// `cadre routing replay`.
pub(crate) fn run_replay(config: &Config, args: &ReplayArgs) -> Result<ExitCode> {
    let report = replay_report(config, args)?;
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

fn metric_text(metric: Option<&Metric>, value: impl Fn(f64) -> String) -> String {
    match metric {
        None => "n/a".to_owned(),
        Some(m) => match m.ci95 {
            Some([low, high]) => format!("{} [{}, {}]", value(m.value), value(low), value(high)),
            None => value(m.value),
        },
    }
}

/// Pads each column to its widest cell; the first row is the header.
fn render_table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            if c + 1 < row.len() {
                line.push_str(&" ".repeat(widths[c] - cell.chars().count()));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
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
    out.push_str("\n\n");

    let mut rows = vec![
        [
            "policy",
            "solved",
            "cost",
            "$/solve",
            "vs top",
            "vs oracle",
            "APGR",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for p in &report.policies {
        rows.push(vec![
            p.policy.clone(),
            metric_text(Some(&p.solved_share), |v| format!("{:.1}%", v * 100.0)),
            metric_text(Some(&p.total_cost_usd), |v| format!("${v:.3}")),
            p.cost_per_solve_usd
                .map_or("n/a".to_owned(), |v| format!("${v:.4}")),
            metric_text(p.cost_vs_top.as_ref(), |v| format!("{v:.2}x")),
            metric_text(p.cost_vs_oracle.as_ref(), |v| format!("{v:.2}x")),
            metric_text(p.apgr.as_ref(), |v| format!("{v:.2}")),
        ]);
    }
    out.push_str(&render_table(&rows));

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
    }
    if !report.notes.is_empty() {
        out.push_str("notes:\n");
        for note in &report.notes {
            out.push_str(&format!("  - {note}\n"));
        }
    }
    out
}

/// One subtask under `cadre routing explain`.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct ExplainedRoute {
    path: String,
    complexity: Complexity,
    error_cost: ErrorCost,
    language: String,
    /// What the engine's router chose (path rules and context included).
    planned_tier: String,
    planned_reason: String,
    /// The static rule for the class (complexity and error cost only).
    static_tier: String,
    /// What history recommends, when there is enough of it.
    learned_tier: Option<String>,
    learned_reason: String,
}

/// The output of `cadre routing explain`.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Explanation {
    job_id: JobId,
    adaptive: bool,
    min_samples: u32,
    history_attempts: u64,
    routes: Vec<ExplainedRoute>,
}

/// Plans the instruction with `engine` and explains each subtask's start.
pub(crate) async fn explain_plan(engine: &Engine, args: &ExplainArgs) -> Result<Explanation> {
    let options = JobOptions {
        files: args.files.clone(),
        ..JobOptions::default()
    };
    let job = engine
        .create_job(&args.instruction, &args.workspace, &options, None, 0)
        .await?;
    let preview = engine
        .plan_job(job, tokio_util::sync::CancellationToken::new())
        .await?;
    let store = engine.store();
    let subtasks = store.list_subtasks(job).await?;
    let languages: BTreeMap<&str, &str> = subtasks
        .iter()
        .map(|s| (s.path.as_str(), s.language.as_str()))
        .collect();
    let stats = store.attempt_stats(None).await?;
    let config = engine.config();
    let mut routes = Vec::new();
    for route in preview
        .routes
        .iter()
        .filter(|r| r.status != SubtaskStatus::Skipped)
    {
        let language = languages
            .get(route.path.as_str())
            .copied()
            .unwrap_or("other");
        let decision: LiveDecision =
            explain_start(config, &stats, route.complexity, route.error_cost, language);
        routes.push(ExplainedRoute {
            path: route.path.clone(),
            complexity: route.complexity,
            error_cost: route.error_cost,
            language: language.to_owned(),
            planned_tier: route.start_tier.clone(),
            planned_reason: route.reason.clone(),
            static_tier: decision.static_tier.clone(),
            learned_tier: decision.learned.as_ref().map(|l| l.tier.clone()),
            learned_reason: decision.reason,
        });
    }
    Ok(Explanation {
        job_id: job,
        adaptive: config.routing.adaptive,
        min_samples: config.routing.adaptive_min_samples,
        history_attempts: stats.iter().map(|s| s.attempts).sum(),
        routes,
    })
}

/// The explanation as text for people.
pub(crate) fn render_explain(explanation: &Explanation) -> String {
    let mut out = format!(
        "history: {} finished worker attempts; learned routing needs {} at a class's static tier; routing.adaptive = {}\n\n",
        explanation.history_attempts, explanation.min_samples, explanation.adaptive
    );
    let mut rows = vec![
        ["path", "class", "planned", "static", "learned"]
            .map(str::to_owned)
            .to_vec(),
    ];
    for r in &explanation.routes {
        rows.push(vec![
            r.path.clone(),
            format!("{}/{}/{}", r.complexity, r.error_cost, r.language),
            r.planned_tier.clone(),
            r.static_tier.clone(),
            r.learned_tier.clone().unwrap_or_else(|| "-".to_owned()),
        ]);
    }
    out.push_str(&render_table(&rows));
    out.push_str("\nwhy:\n");
    for r in &explanation.routes {
        out.push_str(&format!(
            "  {}\n    planned: {}\n    learned: {}\n",
            r.path, r.planned_reason, r.learned_reason
        ));
    }
    out.push_str(&format!(
        "\nthe plan is saved as job {id}; run it with: cadre resume {id}\n",
        id = explanation.job_id
    ));
    out
}

/// `cadre routing explain`.
pub(crate) async fn run_explain(ctx: &Session, args: &ExplainArgs) -> Result<ExitCode> {
    if !args.workspace.is_dir() {
        bail!("workspace {} is not a directory", args.workspace.display());
    }
    let engine = crate::cli::engine_with(ctx, None)?;
    let explanation = explain_plan(&engine, args).await?;
    if args.json {
        emit(&format!(
            "{}\n",
            serde_json::to_string_pretty(&explanation)?
        ))?;
    } else {
        emit(&render_explain(&explanation))?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use cadre_core::Providers;
    use cadre_store::Store;
    use clap::Parser;
    use tokio_util::sync::CancellationToken;

    use super::*;

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
            assert_eq!(json["policies"].as_array().unwrap().len(), 7);
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
            "x=opus",
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
        assert_eq!(options.class_tiers["x"], "opus");
        assert_eq!((options.folds, options.seed, options.bootstrap), (3, 4, 0));
        let report = replay_report(&config(), &args).unwrap();
        let text = render_replay(&report, "f");
        assert!(
            text.contains("attempts: haiku 1, sonnet 2, opus 1"),
            "{text}"
        );
        assert!(!text.lines().any(|l| l.starts_with("static ")), "{text}");

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

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy_dir(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn routing_explain_shows_static_then_learned_starts() {
        let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/demo");
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&demo, dir.path());
        let scenario_text = std::fs::read_to_string(dir.path().join("scenario.toml")).unwrap();
        let scenario = cadre_sim::Scenario::from_toml_str(&scenario_text, dir.path()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sim = cadre_sim::SimServer::start(scenario, listener)
            .await
            .unwrap();
        let base = sim.base_url();
        let mut config = config();
        config.routing.adaptive_min_samples = 1;
        let config = Arc::new(config);
        let store = Store::open(&dir.path().join("cadre.db")).await.unwrap();
        let providers =
            Providers::from_config(&config, &|_: &str| None, Some((&base, "sim-key"))).unwrap();
        let engine = Engine::new(config, store, providers);
        let instruction = std::fs::read_to_string(dir.path().join("instruction.txt")).unwrap();
        let args = ExplainArgs {
            instruction: instruction.trim().to_owned(),
            workspace: dir.path().join("workspace"),
            files: Vec::new(),
            json: false,
        };

        // No history: every learned start is "-", with the sample count.
        let before = explain_plan(&engine, &args).await.unwrap();
        assert!(!before.routes.is_empty());
        assert_eq!(before.history_attempts, 0);
        for r in &before.routes {
            assert_eq!(r.learned_tier, None, "{r:?}");
            assert!(
                r.learned_reason.contains("has 0 of 1 samples needed"),
                "{r:?}"
            );
        }
        let text = render_explain(&before);
        assert!(text.contains("path"), "{text}");
        assert!(text.contains(&format!("cadre resume {}", before.job_id)));

        // Run the planned job: its attempts become history.
        engine
            .run_job(before.job_id, CancellationToken::new())
            .await
            .unwrap();
        let after = explain_plan(&engine, &args).await.unwrap();
        assert!(after.history_attempts > 0);
        let learned: Vec<&ExplainedRoute> = after
            .routes
            .iter()
            .filter(|r| r.learned_tier.is_some())
            .collect();
        assert!(!learned.is_empty(), "{after:?}");
        for r in learned {
            assert!(r.learned_reason.contains("-> start"), "{r:?}");
            assert!(r.learned_reason.contains(" p="), "{r:?}");
        }
        let json = serde_json::to_value(&after).unwrap();
        assert!(json["routes"][0]["static_tier"].is_string());
        sim.shutdown().await;
    }
}
