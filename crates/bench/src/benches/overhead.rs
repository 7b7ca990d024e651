//! Orchestration overhead with a zero-latency model: wall and CPU time per
//! subtask, split by thread group and by what the engine spends it on.

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use cadre_store::Store;
use cadre_types::{Role, WorkerChange};

use super::{BenchResult, Figure, Sizes, ms};
use crate::measure::TimingSwitch;
use crate::rig::{Finished, Workload, run_in_process};

/// Orchestration overhead with a zero-latency model.
pub fn overhead(rt: &tokio::runtime::Runtime, sizes: &Sizes) -> Result<BenchResult> {
    let n = sizes.overhead_files;
    eprintln!("overhead: {n} subtasks, zero latency, default concurrency");
    let w = Workload::new(n);
    // The breakdown needs the timing layer; its own cost is in this run's
    // CPU figures (the fan-out benchmark measures without it).
    let timing = TimingSwitch::on();
    let done = run_in_process(rt, &w, &[])?;
    drop(timing);
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
            "cadre CPU ms per subtask (engine + SQLite threads, timing layer on)",
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
