//! cadre-bench: measures the cadre orchestrator itself against the
//! in-process simulated provider (`just bench`).
//!
//! Every benchmark starts a [`cadre_sim::SimServer`] on `127.0.0.1:0` with a
//! generated scenario (every model at skill 1.0, constant latency) and drives
//! a [`cadre_core::Engine`] directly against a temporary SQLite store. The
//! simulator and the engine run on separate tokio runtimes with named
//! threads, so CPU time can be attributed from `/proc` (see [`measure`]);
//! the scale benchmark runs the engine in a child process so its peak RSS is
//! the engine's alone.
//!
//! Key decision: figures come from what the engine already exposes (its live
//! event stream, the store, the request log of the simulator, the
//! `create_message` span of the model client and sqlx's statement events),
//! never from hooks inside the code under test, so the benchmark measures the
//! shipped code path.

/// mimalloc returns freed memory to the OS far better than glibc's malloc,
/// whose per-thread arenas kept a 10,000-file job's peak RSS ~2.6x its heap.
/// It is built without transparent huge pages (`no_thp`): with them every
/// fresh or purged 2 MiB region was zeroed whole at its first touch, ~13% of
/// the process's CPU in a fan-out at 512 calls in flight.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod benches;
mod measure;
mod rig;

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Parser;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::benches::{BenchResult, Sizes, trim_number};

/// The benchmark names, in run order.
const NAMES: [&str; 9] = [
    "fanout",
    "overhead",
    "scale",
    "cache",
    "pressure",
    "migration",
    "backends",
    "cluster",
    "peer",
];

/// Benchmarks of the cadre orchestrator against the simulated provider.
#[derive(Debug, Parser)]
#[command(name = "cadre-bench", about)]
struct Args {
    /// Print the figures as JSON instead of a markdown table.
    #[arg(long)]
    json: bool,
    /// Run only these benchmarks (fanout, overhead, scale, cache, pressure, migration, backends, cluster, peer; repeatable).
    #[arg(long, value_name = "NAME")]
    only: Vec<String>,
    /// Small sizes: exercises every benchmark in seconds (figures are not meaningful).
    #[arg(long)]
    quick: bool,
    /// Workspace sizes of the scale benchmark (repeatable; default 2500, 5000, 10000).
    #[arg(long, value_name = "FILES")]
    scale_files: Vec<usize>,
    /// Fan-out cases as SUBTASKSxCONCURRENCY, e.g. `5000x512` (repeatable;
    /// default 1000x8, 1000x32, 1000x128, 5000x512).
    #[arg(long, value_name = "NxC", value_parser = parse_fanout_case)]
    fanout_case: Vec<(usize, u32)>,
    /// Profiling aid: serve the scale workload of FILES files from a kept temp
    /// dir, print the JSON to pass to `--scale-child`, and serve until stdin closes.
    #[arg(long, hide = true, value_name = "FILES")]
    serve_scale: Option<usize>,
    /// Internal: run one scale job (JSON arguments) and report peak memory.
    #[arg(long, hide = true, value_name = "JSON")]
    scale_child: Option<String>,
}

/// Parses a fan-out case `NxC` (subtasks x concurrency).
fn parse_fanout_case(text: &str) -> Result<(usize, u32), String> {
    let (n, c) = text
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("{text:?} is not SUBTASKSxCONCURRENCY (e.g. 5000x512)"))?;
    let n: usize = n
        .trim()
        .parse()
        .map_err(|e| format!("subtasks {n:?}: {e}"))?;
    let c: u32 = c
        .trim()
        .parse()
        .map_err(|e| format!("concurrency {c:?}: {e}"))?;
    if n == 0 || c == 0 {
        return Err(format!(
            "{text:?}: subtasks and concurrency must be at least 1"
        ));
    }
    Ok((n, c))
}

fn init_tracing() {
    let timing = measure::TimingLayer.with_filter(measure::timing_filter());
    let registry = tracing_subscriber::registry().with(timing);
    let _ = match std::env::var("CADRE_LOG") {
        Ok(filter) => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_filter(tracing_subscriber::EnvFilter::new(filter)),
            )
            .try_init(),
        // No other layer: an absent one (`None`) would count as a layer
        // without a filter that wants every span, and the registry would
        // build every span and event the engine names.
        Err(_) => registry.try_init(),
    };
}

/// Renders results as one markdown table.
fn render_table(results: &[BenchResult], command: &str) -> String {
    let mut out = String::new();
    out.push_str(&format!("Command: `{command}`\n\n"));
    out.push_str("| Benchmark | Setting | Metric | Value | Target |\n");
    out.push_str("|---|---|---|---:|---|\n");
    for r in results {
        for f in &r.figures {
            let target = match (&f.target, f.met) {
                (Some(t), Some(true)) => format!("{t} (met)"),
                (Some(t), Some(false)) => format!("{t} (**missed**)"),
                (Some(t), None) => t.clone(),
                (None, _) => String::new(),
            };
            out.push_str(&format!(
                "| {} | {} | {} | {} {} | {} |\n",
                r.name,
                f.setting,
                f.metric,
                trim_number(f.value),
                f.unit,
                target
            ));
        }
    }
    for r in results {
        for note in &r.notes {
            out.push_str(&format!("\n- {}: {note}", r.name));
        }
    }
    out.push('\n');
    out
}

fn run(args: &Args) -> Result<Vec<BenchResult>> {
    for name in &args.only {
        if !NAMES.contains(&name.as_str()) {
            bail!("unknown benchmark {name:?}; one of {}", NAMES.join(", "));
        }
    }
    let selected: Vec<&str> = NAMES
        .iter()
        .copied()
        .filter(|n| args.only.is_empty() || args.only.iter().any(|o| o == n))
        .collect();
    let sizes = if args.quick {
        Sizes::quick()
    } else {
        Sizes::full()
    };
    let sizes = if args.scale_files.is_empty() {
        sizes
    } else {
        Sizes {
            scale_files: args.scale_files.clone(),
            ..sizes
        }
    };
    let sizes = if args.fanout_case.is_empty() {
        sizes
    } else {
        Sizes {
            fanout_cases: args.fanout_case.clone(),
            ..sizes
        }
    };
    let rt = rig::engine_runtime()?;
    let mut results = Vec::new();
    for name in selected {
        let result = match name {
            "fanout" => benches::fanout(&rt, &sizes),
            "overhead" => benches::overhead(&rt, &sizes),
            "scale" => benches::scale(&sizes),
            "cache" => benches::cache(&rt, &sizes),
            "migration" => benches::migration(&rt, &sizes),
            "backends" => benches::backends(&rt, &sizes),
            "cluster" => benches::cluster(&rt, &sizes),
            "peer" => benches::peer(&rt, &sizes),
            _ => benches::pressure(&rt, &sizes),
        }
        .with_context(|| format!("benchmark {name}"))?;
        results.push(result);
    }
    Ok(results)
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_tracing();
    if let Some(child) = &args.scale_child {
        let outcome = serde_json::from_str(child)
            .context("parsing --scale-child")
            .and_then(|a| benches::scale_child(&a))
            .and_then(|r| Ok(serde_json::to_string(&r)?));
        return match outcome {
            Ok(json) => {
                println!("{json}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("scale child: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(files) = args.serve_scale {
        return match benches::serve_scale(files) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("serve-scale: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    match run(&args) {
        Ok(results) => {
            if args.json {
                match serde_json::to_string_pretty(&results) {
                    Ok(text) => println!("{text}"),
                    Err(e) => {
                        eprintln!("cadre-bench: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                let command: Vec<String> = std::env::args().skip(1).collect();
                let command = format!(
                    "cargo run --release -p cadre-bench -- {}",
                    command.join(" ")
                );
                print!(
                    "{}",
                    render_table(&results, command.trim_end_matches(" -- ").trim_end())
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cadre-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::benches::Figure;

    #[test]
    fn the_table_lists_every_figure_with_its_target() {
        let results = vec![BenchResult {
            name: "fanout".to_owned(),
            title: "t".to_owned(),
            figures: vec![
                Figure {
                    setting: "C=32".to_owned(),
                    metric: "efficiency".to_owned(),
                    value: 0.9712,
                    unit: "ratio".to_owned(),
                    target: Some(">= 0.95".to_owned()),
                    met: Some(true),
                },
                Figure {
                    setting: "C=8".to_owned(),
                    metric: "makespan".to_owned(),
                    value: 25_210.4,
                    unit: "ms".to_owned(),
                    target: None,
                    met: None,
                },
            ],
            notes: vec!["a note".to_owned()],
        }];
        let table = render_table(&results, "cargo run --release -p cadre-bench");
        assert!(
            table.contains("| fanout | C=32 | efficiency | 0.971 ratio | >= 0.95 (met) |"),
            "{table}"
        );
        assert!(
            table.contains("| fanout | C=8 | makespan | 25210 ms |  |"),
            "{table}"
        );
        assert!(table.contains("- fanout: a note"), "{table}");
    }

    #[test]
    fn fanout_cases_parse_as_subtasks_x_concurrency() {
        assert_eq!(parse_fanout_case("5000x512"), Ok((5000, 512)));
        assert_eq!(parse_fanout_case("40X4"), Ok((40, 4)));
        assert!(parse_fanout_case("5000").is_err());
        assert!(parse_fanout_case("0x8").is_err());
        assert!(parse_fanout_case("ax8").is_err());
        let args = Args::parse_from([
            "cadre-bench",
            "--fanout-case",
            "100x16",
            "--fanout-case",
            "200x32",
        ]);
        assert_eq!(args.fanout_case, vec![(100, 16), (200, 32)]);
    }

    #[test]
    fn unknown_benchmarks_are_refused() {
        let args = Args::parse_from(["cadre-bench", "--only", "nope"]);
        assert!(run(&args).is_err());
    }
}
