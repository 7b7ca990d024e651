//! Scale: one job touching every file of a generated workspace, run in a
//! child process (against the parent's simulator) so its peak RSS is the
//! engine's alone; the median of a few runs per size, and the growth per file.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::fanout::mean_worker_prompt_tokens;
use super::{BenchResult, Figure, Sizes, ms};
use crate::measure::peak_rss_kib;
use crate::rig::{self, SimHost, Workload, check_complete};

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

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn slope_fits_a_line() {
        let s = slope(&[(1.0, 3.0), (2.0, 5.0), (4.0, 9.0)]).unwrap();
        assert!((s - 2.0).abs() < 1e-9);
        assert_eq!(slope(&[(1.0, 1.0)]), None);
    }
}
