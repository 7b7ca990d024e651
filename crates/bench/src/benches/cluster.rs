//! The cluster speed-up: one job whose files each take a per-file check
//! (`sleep`, so the check and not this machine's two cores sets the pace)
//! run by one engine, then by three engines on one PostgreSQL store, each
//! with its own connection pool and claiming under its own name, as three
//! daemons would: the first holds the job's lease and runs it, the others
//! assist it (`Engine::assist_job`). Prints both wall times, the speed-up
//! and the smallest share of the files one engine ran. Without a reachable
//! PostgreSQL (`CADRE_TEST_POSTGRES`) the figures are left out with a note.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use cadre_core::{Engine, JobLease, JobOptions, Providers};
use cadre_store::scratch::ScratchPostgres;
use cadre_store::{Store, StoreLocation};
use cadre_types::JobId;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{BenchResult, Figure, Sizes};
use crate::rig::{
    INSTRUCTION, SIM_KEY, Scratch, SimHost, Workload, check_complete, config, scenario,
};

/// Calls in flight per engine (two files each).
const CONCURRENCY: u32 = 2;

/// The engines of the shared run.
const ENGINES: usize = 3;

/// A claim or a lease outlives the benchmark: nothing renews them here.
const LEASE: Duration = Duration::from_secs(3600);

/// One engine, then [`ENGINES`], on the same job.
pub fn cluster(rt: &tokio::runtime::Runtime, sizes: &Sizes) -> Result<BenchResult> {
    let files = sizes.cluster_files;
    let check = format!("sleep {}", sizes.cluster_check_ms as f64 / 1000.0);
    let mut figures = Vec::new();
    let mut notes = Vec::new();
    let mut walls = Vec::new();
    for engines in [1, ENGINES] {
        eprintln!("cluster: {files} files with `{check}` on {engines} engine(s)");
        let check = check.clone();
        let measured = rt.block_on(async move {
            tokio::spawn(shared_run(engines, files, check))
                .await
                .map_err(|e| anyhow!("the cluster task failed: {e}"))?
        })?;
        let Some((wall, shares)) = measured else {
            notes.push(format!(
                "not run: PostgreSQL unreachable (set {})",
                cadre_store::scratch::TEST_POSTGRES_ENV
            ));
            return Ok(result(figures, notes));
        };
        let setting = format!(
            "{files} files, {} ms check, C={CONCURRENCY} each",
            sizes.cluster_check_ms
        );
        figures.push(Figure::new(
            &setting,
            &format!("wall s on {engines} engine(s)"),
            wall.as_secs_f64(),
            "s",
        ));
        if engines > 1 {
            let smallest = shares.iter().copied().min().unwrap_or(0);
            figures.push(
                Figure::new(
                    &setting,
                    &format!("smallest share of the files one of {engines} engines ran"),
                    smallest as f64 / files as f64,
                    "ratio",
                )
                .at_least(0.2),
            );
        }
        walls.push(wall);
    }
    if let [alone, shared] = walls[..] {
        figures.push(
            Figure::new(
                &format!("{files} files"),
                &format!("speed-up of {ENGINES} engines over one"),
                alone.as_secs_f64() / shared.as_secs_f64(),
                "ratio",
            )
            .at_least(1.5),
        );
    }
    Ok(result(figures, notes))
}

fn result(figures: Vec<Figure>, notes: Vec<String>) -> BenchResult {
    BenchResult {
        name: "cluster".to_owned(),
        title: "one job's files shared by engines on one PostgreSQL store".to_owned(),
        figures,
        notes,
    }
}

/// Runs one job of `files` files on `engines` engines sharing a fresh
/// PostgreSQL schema: its wall time and how many files each engine ran;
/// `None` without PostgreSQL.
async fn shared_run(
    engines: usize,
    files: usize,
    check: String,
) -> Result<Option<(Duration, Vec<u64>)>> {
    let Some(pg) = ScratchPostgres::create_or_skip("the cluster benchmark").await? else {
        return Ok(None);
    };
    let scratch = Scratch::new(files)?;
    let w = Workload {
        latency_ms: 20,
        ..Workload::new(files)
    };
    let sim = tokio::task::spawn_blocking(move || SimHost::start(scenario(&w)?))
        .await
        .map_err(|e| anyhow!("starting the simulator: {e}"))??;
    let overrides = [format!("limits.max_concurrency={CONCURRENCY}")];
    let config = Arc::new(config(&overrides)?);
    let mut cluster = Vec::new();
    for n in 0..engines {
        let store = Store::connect(&StoreLocation::parse(pg.url())).await?;
        let providers =
            Providers::from_config(&config, &|_| None, Some((sim.base_url(), SIM_KEY)))?;
        let engine = Engine::new(config.clone(), store, providers);
        engine.claim_subtasks_as(&format!("engine-{n}"), LEASE.as_secs());
        cluster.push(engine);
    }
    let options = JobOptions {
        file_check: Some(check),
        ..JobOptions::default()
    };
    let owner = &cluster[0];
    let job: JobId = owner
        .create_job(INSTRUCTION, &scratch.dir().join("ws"), &options, None, 0)
        .await?;
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    )?;
    let claimed = owner
        .store()
        .claim_job("engine-0", LEASE.as_secs(), now)
        .await?
        .context("the job was not claimable")?;
    let lease = JobLease::new(job, "engine-0", claimed.claim_count, LEASE, Instant::now());
    let started = Instant::now();
    let done = CancellationToken::new();
    let mut helpers = JoinSet::new();
    for engine in cluster.iter().skip(1).cloned() {
        helpers.spawn(assist_until(engine, done.clone()));
    }
    let report = owner.run_leased_job(lease, CancellationToken::new()).await;
    let wall = started.elapsed();
    done.cancel();
    while let Some(helped) = helpers.join_next().await {
        helped.map_err(|e| anyhow!("a helper failed: {e}"))??;
    }
    check_complete(&report?, files)?;
    let by_claimer = owner.store().subtasks_by_claimer(job).await?;
    let shares = (0..engines)
        .map(|n| by_claimer.get(&format!("engine-{n}")).copied().unwrap_or(0))
        .collect();
    for engine in &cluster {
        engine.store().close().await;
    }
    tokio::task::spawn_blocking(move || sim.stop())
        .await
        .map_err(|e| anyhow!("stopping the simulator: {e}"))?;
    pg.drop_now().await?;
    Ok(Some((wall, shares)))
}

/// Assists whatever job the others own until `done`, as a daemon's
/// dispatcher would (it looks again every 100 ms).
async fn assist_until(engine: Engine, done: CancellationToken) -> Result<()> {
    while !done.is_cancelled() {
        for job in engine.jobs_to_assist(1).await? {
            engine.assist_job(job, done.child_token()).await?;
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
            () = done.cancelled() => {}
        }
    }
    Ok(())
}
