//! Fan-out efficiency: the makespan of the fan-out phase against the ideal
//! `ceil(N/C) x latency`, per concurrency level; plus what the simulator's
//! request log says about the cache warm-up and the prompt sizes.

use anyhow::{Result, anyhow};

use super::{BenchResult, Figure, Sizes, ms};
use crate::rig::{Finished, Workload, concurrency_overrides, run_in_process};

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
    }
}
