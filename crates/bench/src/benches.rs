//! The five benchmarks. Each returns a [`BenchResult`]: the figures the
//! markdown table and the JSON output both print.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use cadre_store::Store;
use cadre_types::{Role, SubtaskStatus, WorkerChange};
use serde::{Deserialize, Serialize};

use crate::measure::peak_rss_kib;
use crate::rig::{
    self, Finished, SimHost, Workload, check_complete, concurrency_overrides, run_in_process,
};

/// One number with its meaning.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// The setting it was measured under ("C=32", "10000 files").
    pub setting: String,
    /// What it is ("efficiency (ideal/actual)").
    pub metric: String,
    /// The number.
    pub value: f64,
    /// Its unit ("ms", "MiB", "ratio", "%", "/min").
    pub unit: String,
    /// The target, when there is one ("≥ 0.95").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Whether the target is met.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub met: Option<bool>,
}

impl Figure {
    fn new(setting: &str, metric: &str, value: f64, unit: &str) -> Figure {
        Figure {
            setting: setting.to_owned(),
            metric: metric.to_owned(),
            value,
            unit: unit.to_owned(),
            target: None,
            met: None,
        }
    }

    fn at_least(mut self, bound: f64) -> Figure {
        self.target = Some(format!(">= {}", trim_number(bound)));
        self.met = Some(self.value >= bound);
        self
    }

    fn below(mut self, bound: f64) -> Figure {
        self.target = Some(format!("< {}", trim_number(bound)));
        self.met = Some(self.value < bound);
        self
    }

    fn within(mut self, reference: f64, tolerance: f64) -> Figure {
        self.target = Some(format!(
            "{} ± {}%",
            trim_number(reference),
            trim_number(tolerance * 100.0)
        ));
        self.met = Some((self.value - reference).abs() <= reference * tolerance);
        self
    }
}

/// Formats a number without useless decimals.
pub fn trim_number(v: f64) -> String {
    let text = if v.abs() >= 100.0 || (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    };
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// One benchmark's outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchResult {
    /// The `--only` name.
    pub name: String,
    /// What it measures and how.
    pub title: String,
    /// The figures.
    pub figures: Vec<Figure>,
    /// Observations (missed targets, caveats).
    pub notes: Vec<String>,
}

/// Sizes of every benchmark; `quick` shrinks them for smoke tests.
#[derive(Clone, Debug)]
pub struct Sizes {
    /// Fan-out subtasks.
    pub fanout_files: usize,
    /// Fan-out model latency, ms.
    pub fanout_latency_ms: u64,
    /// Fan-out concurrency levels.
    pub fanout_concurrency: Vec<u32>,
    /// Overhead subtasks.
    pub overhead_files: usize,
    /// Scale workspace sizes.
    pub scale_files: Vec<usize>,
    /// Cache subtasks.
    pub cache_files: usize,
    /// Pressure subtasks.
    pub pressure_files: usize,
    /// Pressure rate limit.
    pub pressure_rpm: u32,
}

impl Sizes {
    /// The sizes of issue 6.
    pub fn full() -> Sizes {
        Sizes {
            fanout_files: 1000,
            fanout_latency_ms: 200,
            fanout_concurrency: vec![8, 32, 128],
            overhead_files: 2000,
            scale_files: vec![2500, 5000, 10_000],
            cache_files: 200,
            pressure_files: 900,
            pressure_rpm: 600,
        }
    }

    /// Small sizes that exercise every code path in seconds.
    pub fn quick() -> Sizes {
        Sizes {
            fanout_files: 40,
            fanout_latency_ms: 20,
            fanout_concurrency: vec![4, 16],
            overhead_files: 60,
            scale_files: vec![50, 100],
            cache_files: 30,
            pressure_files: 130,
            pressure_rpm: 120,
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

// ------------------------------------------------------------------ fan-out

/// Fan-out efficiency: makespan of the fan-out phase against
/// `ceil(N/C) x latency`, per concurrency level.
pub fn fanout(rt: &tokio::runtime::Runtime, sizes: &Sizes) -> Result<BenchResult> {
    let n = sizes.fanout_files;
    let latency = sizes.fanout_latency_ms;
    let mut figures = Vec::new();
    let mut notes = Vec::new();
    for &c in &sizes.fanout_concurrency {
        let mut w = Workload::new(n);
        w.latency_ms = latency;
        eprintln!("fanout: {n} subtasks, {latency} ms, concurrency {c}");
        let done = run_in_process(rt, &w, &concurrency_overrides(c))?;
        let ideal = ideal_makespan_ms(n, c, latency);
        let makespan = done
            .run
            .times
            .fan_out()
            .ok_or_else(|| anyhow!("no attempt events were recorded"))?;
        let setting = format!("N={n}, {latency} ms, C={c}");
        let ratio = ideal / ms(makespan);
        let mut eff = Figure::new(&setting, "efficiency (ideal/actual)", ratio, "ratio");
        if c == 32 {
            eff = eff.at_least(0.95);
        }
        figures.push(Figure::new(
            &setting,
            "ideal ceil(N/C) x latency",
            ideal,
            "ms",
        ));
        figures.push(Figure::new(
            &setting,
            "fan-out makespan (events)",
            ms(makespan),
            "ms",
        ));
        figures.push(eff);
        if let Some(warm) = warm_up_ms(&done.log) {
            figures.push(Figure::new(
                &setting,
                "cache warm-up (first worker call alone)",
                warm,
                "ms",
            ));
        }
        figures.push(Figure::new(
            &setting,
            "job wall time (plan+fan-out+review)",
            ms(done.run.wall),
            "ms",
        ));
        let workers = worker_calls(&done);
        if workers != n || done.run.times.lagged > 0 {
            notes.push(format!(
                "C={c}: {workers} worker calls for {n} subtasks, {} events missed",
                done.run.times.lagged
            ));
        }
    }
    Ok(BenchResult {
        name: "fanout".to_owned(),
        title: "Fan-out efficiency: makespan from the first attempt_started to the last attempt_finished event vs ceil(N/C) x latency".to_owned(),
        figures,
        notes,
    })
}

/// Milliseconds between the first and the second worker request the
/// simulator received: how long the fan-out waited for the call that writes
/// the shared prefix to the cache before sending the rest.
pub fn warm_up_ms(log: &[cadre_sim::LoggedRequest]) -> Option<f64> {
    let mut at = log
        .iter()
        .filter(|r| r.role == Some(cadre_sim::Role::Worker))
        .map(|r| r.at_ms);
    let first = at.next()?;
    let second = at.next()?;
    Some(second.saturating_sub(first) as f64)
}

/// Mean prompt tokens (uncached + cache read + cache write) of the
/// successful worker requests.
pub fn mean_worker_prompt_tokens(log: &[cadre_sim::LoggedRequest]) -> Option<f64> {
    let sizes: Vec<u64> = log
        .iter()
        .filter(|r| r.role == Some(cadre_sim::Role::Worker) && r.status == 200)
        .map(|r| r.input_tokens + r.cache_read_input_tokens + r.cache_creation_input_tokens)
        .collect();
    (!sizes.is_empty()).then(|| sizes.iter().sum::<u64>() as f64 / sizes.len() as f64)
}

/// `ceil(n / c) * latency_ms`.
pub fn ideal_makespan_ms(n: usize, c: u32, latency_ms: u64) -> f64 {
    let c = c.max(1) as usize;
    (n.div_ceil(c) as u64 * latency_ms) as f64
}

fn worker_calls(done: &Finished) -> usize {
    done.log
        .iter()
        .filter(|r| r.role == Some(cadre_sim::Role::Worker) && r.status == 200)
        .count()
}

// ------------------------------------------------------------------ overhead

/// Orchestration overhead with a zero-latency model.
pub fn overhead(rt: &tokio::runtime::Runtime, sizes: &Sizes) -> Result<BenchResult> {
    let n = sizes.overhead_files;
    eprintln!("overhead: {n} subtasks, zero latency, default concurrency");
    let w = Workload::new(n);
    let done = run_in_process(rt, &w, &[])?;
    let makespan = done
        .run
        .times
        .fan_out()
        .ok_or_else(|| anyhow!("no attempt events were recorded"))?;
    let phase = done
        .run
        .times
        .phase
        .clone()
        .ok_or_else(|| anyhow!("the fan-out phase was not sampled"))?;
    let validation = rt.block_on(replay_validation(&done))?;
    let per = |d: f64| d / n as f64;
    let cpu = |group: &str| phase.cpu_end.since(&phase.cpu_start, group) * 1000.0;
    let engine_cpu = cpu("engine");
    let sqlite_cpu = cpu("sqlite");
    let sim_cpu = cpu("sim");
    let t = phase.timings_end.since(&phase.timings_start);
    let model_io = ms(t.model_busy);
    let setting = format!("N={n}, 0 ms");
    let other = (engine_cpu - model_io - ms(validation)).max(0.0);
    let figures = vec![
        Figure::new(
            &setting,
            "subtasks per second (fan-out)",
            n as f64 / makespan.as_secs_f64(),
            "/s",
        ),
        Figure::new(
            &setting,
            "wall ms per subtask (fan-out)",
            per(ms(makespan)),
            "ms",
        )
        .below(2.0),
        Figure::new(
            &setting,
            "wall ms per subtask (whole job)",
            per(ms(done.run.wall)),
            "ms",
        ),
        Figure::new(
            &setting,
            "cadre CPU ms per subtask (engine + SQLite threads)",
            per(engine_cpu + sqlite_cpu),
            "ms",
        ),
        Figure::new(
            &setting,
            "- model I/O, client (create_message busy)",
            per(model_io),
            "ms",
        ),
        Figure::new(
            &setting,
            "- validation (apply + tree-sitter, replayed)",
            per(ms(validation)),
            "ms",
        ),
        Figure::new(
            &setting,
            "- store writes: statement time incl. lock waits (summed)",
            per(ms(t.store_write)),
            "ms",
        ),
        Figure::new(
            &setting,
            "- store reads: statement time (summed)",
            per(ms(t.store_read)),
            "ms",
        ),
        Figure::new(
            &setting,
            "- SQLite threads CPU (all statements)",
            per(sqlite_cpu),
            "ms",
        ),
        Figure::new(
            &setting,
            "- other engine CPU (prompts, hashing, events, HTTP conn)",
            per(other),
            "ms",
        ),
        Figure::new(
            &setting,
            "store write statements per subtask",
            per(t.store_writes as f64),
            "writes",
        ),
        Figure::new(
            &setting,
            "store read statements per subtask",
            per(t.store_reads as f64),
            "reads",
        ),
        Figure::new(
            &setting,
            "simulator CPU ms per subtask (not cadre)",
            per(sim_cpu),
            "ms",
        ),
    ];
    Ok(BenchResult {
        name: "overhead".to_owned(),
        title: "Orchestration overhead with a zero-latency model; CPU per thread group from /proc over the fan-out phase".to_owned(),
        figures,
        notes: Vec::new(),
    })
}

/// Re-runs the validation of every worker attempt of the finished job
/// (apply the stored change to the original, tree-sitter before/after) and
/// returns the total time it takes.
async fn replay_validation(done: &Finished) -> Result<Duration> {
    let store = Store::open(&done.scratch.dir().join("cadre.db")).await?;
    let job = done.run.report.job_id;
    let subtasks = store.list_subtasks(job).await?;
    let attempts = store.list_attempts(job).await?;
    store.close().await;
    let mut cases = Vec::new();
    for a in attempts.iter().filter(|a| a.role == Role::Worker) {
        let Some(sub) = subtasks.iter().find(|s| Some(s.id) == a.subtask_id) else {
            continue;
        };
        let Some(change) = a
            .change
            .as_ref()
            .and_then(|c| c.get("change"))
            .and_then(|c| serde_json::from_value::<WorkerChange>(c.clone()).ok())
        else {
            continue;
        };
        let original = sub.original_content.clone().unwrap_or_default();
        cases.push((sub.path.clone(), original, change));
    }
    if cases.is_empty() {
        bail!("no stored worker changes to replay");
    }
    let started = Instant::now();
    for (path, original, change) in &cases {
        let content = cadre_core::edit::apply_change(original, change)
            .map_err(|e| anyhow!("{path}: stored change no longer applies: {e}"))?;
        cadre_core::syntax::check_no_new_errors(path, original, &content)
            .map_err(|e| anyhow!("{path}: {e}"))?;
    }
    Ok(started.elapsed())
}

// ------------------------------------------------------------------ scale

/// What a scale child reports on stdout.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScaleChildReport {
    /// Files in the workspace (= subtasks).
    pub files: usize,
    /// `run_job` wall time, ms.
    pub wall_ms: f64,
    /// Fan-out phase, ms.
    pub fan_out_ms: f64,
    /// `VmHWM` right before the job started, KiB.
    pub baseline_kib: u64,
    /// `VmHWM` after the job, KiB.
    pub peak_kib: u64,
    /// `VmHWM` when the first worker call started (indexing and planning), KiB.
    pub plan_peak_kib: u64,
    /// `VmHWM` when the last worker call finished (through the fan-out), KiB.
    pub fan_out_peak_kib: u64,
    /// Subtasks accepted.
    pub accepted: usize,
    /// What the job cost at the configured prices.
    pub cost_usd: f64,
    /// Of which prompt-cache reads.
    pub cache_read_tokens: u64,
}

/// What the parent tells a scale child.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScaleChildArgs {
    /// The simulator.
    pub base_url: String,
    /// Temp dir holding `ws/` and the store.
    pub dir: PathBuf,
    /// Files.
    pub files: usize,
}

/// The child side of the scale benchmark: runs the job against the parent's
/// simulator and reports its own peak memory.
pub fn scale_child(args: &ScaleChildArgs) -> Result<ScaleChildReport> {
    let rt = rig::engine_runtime()?;
    let config = rig::config(&[])?;
    let baseline_kib = peak_rss_kib().unwrap_or(0);
    let run = rig::run_on_workers(
        &rt,
        args.dir.clone(),
        config,
        args.base_url.clone(),
        args.files,
    )?;
    check_complete(&run.report, args.files)?;
    let phase = run.times.phase.as_ref();
    Ok(ScaleChildReport {
        plan_peak_kib: phase.and_then(|p| p.peak_rss_start_kib).unwrap_or(0),
        fan_out_peak_kib: phase.and_then(|p| p.peak_rss_end_kib).unwrap_or(0),
        files: args.files,
        wall_ms: ms(run.wall),
        fan_out_ms: run.times.fan_out().map(ms).unwrap_or(0.0),
        baseline_kib,
        peak_kib: peak_rss_kib().unwrap_or(0),
        accepted: args.files,
        cost_usd: run.report.cost.total_usd,
        cache_read_tokens: run.report.tokens.cache_read,
    })
}

/// Serves the scale workload of `files` files until stdin closes, so the
/// engine side can be run alone under a profiler:
/// `cadre-bench --scale-child "$(...)"`. The temp dir is kept.
pub fn serve_scale(files: usize) -> Result<()> {
    let scratch = rig::Scratch::new(files)?;
    let sim = SimHost::start(rig::scenario(&Workload::new(files))?)?;
    let args = ScaleChildArgs {
        base_url: sim.base_url().to_owned(),
        dir: scratch.keep(),
        files,
    };
    println!("{}", serde_json::to_string(&args)?);
    let mut sink = String::new();
    while std::io::stdin()
        .read_line(&mut sink)
        .map(|n| n > 0)
        .unwrap_or(false)
    {
        sink.clear();
    }
    sim.stop();
    Ok(())
}

/// Scale: one job touching every file of a generated workspace, run in a
/// child process so its peak RSS is the engine's alone.
pub fn scale(sizes: &Sizes) -> Result<BenchResult> {
    let exe = std::env::current_exe().context("locating cadre-bench")?;
    let mut figures = Vec::new();
    let mut points = Vec::new();
    let largest = sizes.scale_files.iter().copied().max().unwrap_or(0);
    for &files in &sizes.scale_files {
        // Peak RSS moves by several MiB between identical runs (allocator
        // timing), so each size runs SCALE_RUNS times and the median counts.
        let mut runs = Vec::new();
        let mut log = Vec::new();
        for run in 1..=SCALE_RUNS {
            eprintln!("scale: {files} files in a child process (run {run}/{SCALE_RUNS})");
            let (report, requests) = run_scale_child(&exe, files)?;
            runs.push(report);
            log = requests;
        }
        let report = median_report(runs);
        let setting = format!("{files} files (median of {SCALE_RUNS})");
        figures.push(Figure::new(&setting, "job wall time", report.wall_ms, "ms"));
        figures.push(Figure::new(
            &setting,
            "fan-out makespan",
            report.fan_out_ms,
            "ms",
        ));
        figures.push(Figure::new(
            &setting,
            "fan-out ms per subtask",
            report.fan_out_ms / files as f64,
            "ms",
        ));
        if let Some(tokens) = mean_worker_prompt_tokens(&log) {
            figures.push(Figure::new(
                &setting,
                "mean worker prompt size",
                tokens,
                "tokens",
            ));
        }
        figures.push(Figure::new(
            &setting,
            "job cost at list prices",
            report.cost_usd,
            "USD",
        ));
        figures.push(Figure::new(
            &setting,
            "cache-read tokens",
            report.cache_read_tokens as f64 / 1e6,
            "M tokens",
        ));
        let peak = Figure::new(
            &setting,
            "peak RSS (VmHWM, child)",
            report.peak_kib as f64 / 1024.0,
            "MiB",
        );
        figures.push(if files == largest {
            peak.below(300.0)
        } else {
            peak
        });
        figures.push(Figure::new(
            &setting,
            "peak RSS through planning",
            report.plan_peak_kib as f64 / 1024.0,
            "MiB",
        ));
        figures.push(Figure::new(
            &setting,
            "peak RSS through the fan-out",
            report.fan_out_peak_kib as f64 / 1024.0,
            "MiB",
        ));
        figures.push(Figure::new(
            &setting,
            "RSS before the job (baseline)",
            report.baseline_kib as f64 / 1024.0,
            "MiB",
        ));
        points.push((
            files as f64,
            [
                report.plan_peak_kib,
                report.fan_out_peak_kib,
                report.peak_kib,
            ],
        ));
    }
    for (i, label) in [
        "peak RSS growth per file through planning",
        "peak RSS growth per file through the fan-out",
        "peak RSS growth per file, whole job",
    ]
    .into_iter()
    .enumerate()
    {
        let series: Vec<(f64, f64)> = points.iter().map(|(x, y)| (*x, y[i] as f64)).collect();
        if let Some(slope) = slope(&series) {
            figures.push(Figure::new(
                "all sizes",
                &format!("{label} (least squares)"),
                slope,
                "KiB/file",
            ));
        }
    }
    Ok(BenchResult {
        name: "scale".to_owned(),
        title: "Scale: one job touching every file; peak RSS of the engine process (simulator in the parent)".to_owned(),
        figures,
        notes: Vec::new(),
    })
}

/// Runs of each scale size; the figures are their medians.
const SCALE_RUNS: usize = 3;

/// One scale job in a child process against a fresh simulator and store.
fn run_scale_child(
    exe: &Path,
    files: usize,
) -> Result<(ScaleChildReport, Vec<cadre_sim::LoggedRequest>)> {
    let scratch = rig::Scratch::new(files)?;
    let sim = SimHost::start(rig::scenario(&Workload::new(files))?)?;
    let args = ScaleChildArgs {
        base_url: sim.base_url().to_owned(),
        dir: scratch.dir().to_path_buf(),
        files,
    };
    let out = Command::new(exe)
        .arg("--scale-child")
        .arg(serde_json::to_string(&args)?)
        .output()
        .context("running the scale child")?;
    let log = sim.requests();
    sim.stop();
    if !out.status.success() {
        bail!(
            "the scale child for {files} files failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let report = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "the scale child printed {:?}",
            String::from_utf8_lossy(&out.stdout)
        )
    })?;
    Ok((report, log))
}

/// Each figure's median over `runs` (at least one).
fn median_report(runs: Vec<ScaleChildReport>) -> ScaleChildReport {
    fn median<T: Copy + PartialOrd>(
        runs: &[ScaleChildReport],
        f: impl Fn(&ScaleChildReport) -> T,
    ) -> T {
        let mut values: Vec<T> = runs.iter().map(f).collect();
        values.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        values[values.len() / 2]
    }
    ScaleChildReport {
        files: median(&runs, |r| r.files),
        wall_ms: median(&runs, |r| r.wall_ms),
        fan_out_ms: median(&runs, |r| r.fan_out_ms),
        baseline_kib: median(&runs, |r| r.baseline_kib),
        peak_kib: median(&runs, |r| r.peak_kib),
        plan_peak_kib: median(&runs, |r| r.plan_peak_kib),
        fan_out_peak_kib: median(&runs, |r| r.fan_out_peak_kib),
        accepted: median(&runs, |r| r.accepted),
        cost_usd: median(&runs, |r| r.cost_usd),
        cache_read_tokens: median(&runs, |r| r.cache_read_tokens),
    }
}

/// Least-squares slope of `y` over `x`.
pub fn slope(points: &[(f64, f64)]) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

// ------------------------------------------------------------------ cache

/// Plan notes long enough that the shared prefix passes every tier's cache minimum.
pub fn long_notes() -> String {
    let line = "Keep the public API unchanged: only the type name UserId becomes AccountId; \
                imports, annotations, docstrings and f-strings follow; nothing else moves.\n";
    line.repeat(120)
}

/// Cache: how many worker calls read the shared prefix from cache.
pub fn cache(rt: &tokio::runtime::Runtime, sizes: &Sizes) -> Result<BenchResult> {
    let n = sizes.cache_files;
    let mut w = Workload::new(n);
    w.notes = long_notes();
    w.latency_ms = 20;
    eprintln!("cache: {n} subtasks, long shared prefix");
    let done = run_in_process(rt, &w, &[])?;
    let workers: Vec<&cadre_sim::LoggedRequest> = done
        .log
        .iter()
        .filter(|r| r.role == Some(cadre_sim::Role::Worker) && r.status == 200)
        .collect();
    let total = workers.len().max(1) as f64;
    let read = workers
        .iter()
        .filter(|r| r.cache_read_input_tokens > 0)
        .count() as f64;
    let wrote = workers
        .iter()
        .filter(|r| r.cache_creation_input_tokens > 0)
        .count() as f64;
    let setting = format!("N={n}");
    let figures = vec![
        Figure::new(
            &setting,
            "prompt tokens read from cache (report.cache_read_share)",
            done.run.report.cache_read_share * 100.0,
            "%",
        ),
        Figure::new(
            &setting,
            "worker calls reading the prefix",
            read / total * 100.0,
            "%",
        )
        .at_least(95.0),
        Figure::new(
            &setting,
            "worker calls writing the prefix",
            wrote / total * 100.0,
            "%",
        ),
        Figure::new(&setting, "worker calls", workers.len() as f64, "calls"),
    ];
    Ok(BenchResult {
        name: "cache".to_owned(),
        title: "Cache: shared-prefix reads on a fan-out whose prefix is above every tier's minimum"
            .to_owned(),
        figures,
        notes: Vec::new(),
    })
}

// ------------------------------------------------------------------ pressure

/// Provider pressure: the simulator's `requests_per_minute` answers 429
/// with `retry-after`; completed subtasks per minute against the limit.
pub fn pressure(rt: &tokio::runtime::Runtime, sizes: &Sizes) -> Result<BenchResult> {
    let n = sizes.pressure_files;
    let rpm = sizes.pressure_rpm;
    let mut w = Workload::new(n);
    w.requests_per_minute = rpm;
    eprintln!("pressure: {n} subtasks against {rpm} requests/minute");
    let done = run_in_process(rt, &w, &[])?;
    let rate = steady_rate(&done.log).ok_or_else(|| {
        anyhow!("the limit was never reached (no 429 before the last worker call)")
    })?;
    let limited = done.log.iter().filter(|r| r.status == 429).count();
    let accepted = done
        .run
        .report
        .subtasks
        .iter()
        .filter(|s| s.status == SubtaskStatus::Accepted)
        .count();
    let extra_attempts: u32 = done
        .run
        .report
        .subtasks
        .iter()
        .map(|s| s.attempts.saturating_sub(1))
        .sum();
    let setting = format!("N={n}, limit {rpm}/min");
    let overall = done
        .run
        .times
        .fan_out()
        .map(|d| n as f64 / d.as_secs_f64() * 60.0)
        .unwrap_or(0.0);
    let figures = vec![
        Figure::new(
            &setting,
            "completed subtasks per minute once the bucket is empty",
            rate,
            "/min",
        )
        .within(f64::from(rpm), 0.10),
        Figure::new(
            &setting,
            "completed subtasks per minute, whole fan-out (incl. initial burst)",
            overall,
            "/min",
        ),
        Figure::new(&setting, "429 answers", limited as f64, "responses"),
        Figure::new(&setting, "subtasks accepted", accepted as f64, "subtasks").at_least(n as f64),
        Figure::new(
            &setting,
            "attempts beyond the first (lost to 429s)",
            f64::from(extra_attempts),
            "attempts",
        ),
    ];
    Ok(BenchResult {
        name: "pressure".to_owned(),
        title: "Provider pressure: token-bucket limit with 429 + retry-after; steady rate measured at the simulator".to_owned(),
        figures,
        notes: Vec::new(),
    })
}

/// Successful worker answers per minute between the first 429 and the last
/// successful worker answer (the sim's clock): the sustained rate once the
/// bucket's initial burst is spent.
pub fn steady_rate(log: &[cadre_sim::LoggedRequest]) -> Option<f64> {
    let first_429 = log
        .iter()
        .filter(|r| r.status == 429)
        .map(|r| r.at_ms)
        .min()?;
    let ok: Vec<u64> = log
        .iter()
        .filter(|r| {
            r.role == Some(cadre_sim::Role::Worker) && r.status == 200 && r.at_ms >= first_429
        })
        .map(|r| r.at_ms)
        .collect();
    let last = *ok.iter().max()?;
    let span = last.saturating_sub(first_429);
    (span > 0).then(|| ok.len() as f64 / (span as f64 / 60_000.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn ideal_makespan_rounds_batches_up() {
        assert_eq!(ideal_makespan_ms(1000, 32, 200), 6400.0);
        assert_eq!(ideal_makespan_ms(1000, 8, 200), 25_000.0);
        assert_eq!(ideal_makespan_ms(1000, 128, 200), 1600.0);
        assert_eq!(ideal_makespan_ms(1, 0, 200), 200.0);
    }

    #[test]
    fn slope_fits_a_line() {
        let s = slope(&[(1.0, 3.0), (2.0, 5.0), (4.0, 9.0)]).unwrap();
        assert!((s - 2.0).abs() < 1e-9);
        assert_eq!(slope(&[(1.0, 1.0)]), None);
    }

    #[test]
    fn targets_are_judged() {
        assert_eq!(
            Figure::new("s", "m", 0.97, "ratio").at_least(0.95).met,
            Some(true)
        );
        assert_eq!(Figure::new("s", "m", 2.5, "ms").below(2.0).met, Some(false));
        let f = Figure::new("s", "m", 560.0, "/min").within(600.0, 0.1);
        assert_eq!(
            (f.met, f.target.as_deref()),
            (Some(true), Some("600 ± 10%"))
        );
        assert_eq!(
            Figure::new("s", "m", 530.0, "/min").within(600.0, 0.1).met,
            Some(false)
        );
    }

    #[test]
    fn steady_rate_counts_worker_answers_after_the_first_429() {
        let req = |at_ms: u64, status: u16, role: cadre_sim::Role| cadre_sim::LoggedRequest {
            at_ms,
            status,
            role: Some(role),
            ..cadre_sim::LoggedRequest::default()
        };
        use cadre_sim::Role::{Planner, Worker};
        let log = vec![
            req(0, 200, Planner),
            req(10, 200, Worker),
            req(1000, 429, Worker),
            req(2000, 200, Worker),
            req(4000, 200, Worker),
            req(7000, 200, Worker),
        ];
        // 3 answers over 6 s after the first 429.
        assert_eq!(steady_rate(&log), Some(30.0));
        assert_eq!(steady_rate(&log[..2]), None);
    }

    #[test]
    fn warm_up_and_prompt_size_come_from_the_worker_log() {
        let req = |at_ms: u64, input: u64, read: u64| cadre_sim::LoggedRequest {
            at_ms,
            status: 200,
            role: Some(cadre_sim::Role::Worker),
            input_tokens: input,
            cache_read_input_tokens: read,
            ..cadre_sim::LoggedRequest::default()
        };
        let log = vec![req(100, 10, 0), req(300, 2, 8), req(301, 2, 8)];
        assert_eq!(warm_up_ms(&log), Some(200.0));
        assert_eq!(mean_worker_prompt_tokens(&log), Some(10.0));
        assert_eq!(warm_up_ms(&log[..1]), None);
        assert_eq!(mean_worker_prompt_tokens(&[]), None);
    }

    #[test]
    fn long_notes_pass_every_cache_minimum() {
        // tokens = ceil(chars / 4); the largest minimum of the default tiers is 4096.
        assert!(long_notes().len().div_ceil(4) > 4096);
    }
}
