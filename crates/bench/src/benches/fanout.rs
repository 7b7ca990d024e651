//! Fan-out efficiency: the makespan of the fan-out phase against the ideal
//! `ceil(N/C) x latency`, per concurrency level; plus what the simulator's
//! request log says about the cache warm-up and the prompt sizes.

use anyhow::{Result, anyhow};

use super::{BenchResult, Figure, Sizes, ms};
use crate::rig::{Finished, Workload, concurrency_overrides, run_in_process};

/// Fan-out efficiency: makespan of the fan-out phase against
/// `ceil(N/C) x latency`, per (N, C) case, with cadre's CPU per subtask.
pub fn fanout(rt: &tokio::runtime::Runtime, sizes: &Sizes) -> Result<BenchResult> {
    let latency = sizes.fanout_latency_ms;
    let mut figures = Vec::new();
    let mut notes = Vec::new();
    for &(n, c) in &sizes.fanout_cases {
        eprintln!("fanout: {n} subtasks, {latency} ms, concurrency {c}");
        let done = run_fanout(rt, n, c, latency)?;
        let setting = format!("N={n}, {latency} ms, C={c}");
        let mut eff = Figure::new(
            &setting,
            "efficiency (ideal/actual)",
            done.efficiency,
            "ratio",
        );
        eff = match c {
            32 | 128 => eff.at_least(0.95),
            512 => eff.at_least(0.9),
            _ => eff,
        };
        figures.push(Figure::new(
            &setting,
            "ideal ceil(N/C) x latency",
            done.ideal_ms,
            "ms",
        ));
        figures.push(Figure::new(
            &setting,
            "fan-out makespan (events)",
            done.makespan_ms,
            "ms",
        ));
        figures.push(eff);
        if let Some(warm) = warm_up_ms(&done.finished.log) {
            figures.push(Figure::new(
                &setting,
                "cache warm-up (first worker call alone)",
                warm,
                "ms",
            ));
        }
        if let Some(spread) = first_wave_ms(&done.finished.log, c as usize) {
            figures.push(Figure::new(
                &setting,
                "first wave out (first to C-th worker request)",
                spread,
                "ms",
            ));
        }
        if let Some(cpu) = done.cpu {
            figures.push(Figure::new(
                &setting,
                "cadre CPU ms per subtask (engine + SQLite threads)",
                cpu.engine_ms + cpu.sqlite_ms,
                "ms",
            ));
            figures.push(Figure::new(
                &setting,
                "- engine threads",
                cpu.engine_ms,
                "ms",
            ));
            figures.push(Figure::new(
                &setting,
                "- SQLite threads",
                cpu.sqlite_ms,
                "ms",
            ));
            figures.push(Figure::new(
                &setting,
                "simulator CPU ms per subtask (not cadre)",
                cpu.sim_ms,
                "ms",
            ));
        }
        figures.push(Figure::new(
            &setting,
            "job wall time (plan+fan-out+review)",
            ms(done.finished.run.wall),
            "ms",
        ));
        let workers = worker_calls(&done.finished);
        if workers != n || done.finished.run.times.lagged > 0 {
            notes.push(format!(
                "N={n}, C={c}: {workers} worker calls for {n} subtasks, {} events missed",
                done.finished.run.times.lagged
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

/// CPU per subtask over the fan-out phase, by thread group, in ms.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CpuPerSubtask {
    /// The engine's runtime threads.
    pub engine_ms: f64,
    /// sqlx's SQLite threads.
    pub sqlite_ms: f64,
    /// The simulator's runtime threads.
    pub sim_ms: f64,
}

/// One fan-out run and its figures.
#[derive(Debug)]
pub struct FanoutRun {
    /// The finished job.
    pub finished: Finished,
    /// `ceil(N/C) x latency`.
    pub ideal_ms: f64,
    /// First `attempt_started` to last `attempt_finished`.
    pub makespan_ms: f64,
    /// ideal / makespan.
    pub efficiency: f64,
    /// CPU per subtask over the fan-out phase (when it was sampled).
    pub cpu: Option<CpuPerSubtask>,
}

/// Runs one job of `n` subtasks at concurrency `c` with `latency_ms`.
pub fn run_fanout(
    rt: &tokio::runtime::Runtime,
    n: usize,
    c: u32,
    latency_ms: u64,
) -> Result<FanoutRun> {
    let mut w = Workload::new(n);
    w.latency_ms = latency_ms;
    let finished = run_in_process(rt, &w, &concurrency_overrides(c))?;
    let ideal_ms = ideal_makespan_ms(n, c, latency_ms);
    let makespan_ms = ms(finished
        .run
        .times
        .fan_out()
        .ok_or_else(|| anyhow!("no attempt events were recorded"))?);
    let cpu = finished.run.times.phase.as_ref().map(|phase| {
        let per = |group: &str| phase.cpu_end.since(&phase.cpu_start, group) * 1000.0 / n as f64;
        CpuPerSubtask {
            engine_ms: per("engine"),
            sqlite_ms: per("sqlite"),
            sim_ms: per("sim"),
        }
    });
    Ok(FanoutRun {
        finished,
        ideal_ms,
        makespan_ms,
        efficiency: ideal_ms / makespan_ms,
        cpu,
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

/// Milliseconds from the first to the `c`-th worker request the simulator
/// received: how long the first wave of `c` calls took to go out. Every
/// call takes the same latency, so each later wave keeps this spread and
/// the makespan is about the ideal plus it (docs/benchmarks.md). `None`
/// with fewer than `c` worker requests.
pub fn first_wave_ms(log: &[cadre_sim::LoggedRequest], c: usize) -> Option<f64> {
    let mut at: Vec<u64> = log
        .iter()
        .filter(|r| r.role == Some(cadre_sim::Role::Worker))
        .map(|r| r.at_ms)
        .collect();
    at.sort_unstable();
    let last = at.get(c.checked_sub(1)?)?;
    Some(last.saturating_sub(at[0]) as f64)
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
        assert_eq!(first_wave_ms(&log, 2), Some(200.0));
        assert_eq!(first_wave_ms(&log, 3), Some(201.0));
        assert_eq!(first_wave_ms(&log, 4), None);
        assert_eq!(first_wave_ms(&log, 0), None);
        let reordered = vec![log[2].clone(), log[0].clone(), log[1].clone()];
        assert_eq!(first_wave_ms(&reordered, 3), Some(201.0));
    }
}
