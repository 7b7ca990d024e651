//! The store on its two backends, side by side: how many job claims per
//! second the queue serves to concurrent claimers, what one model call's
//! cluster-wide slot costs (a claim and a release of a `call_slots` row, one
//! after the other, as a call does; its claims per second), and the engine's
//! wall time per subtask at zero model latency, on SQLite and on PostgreSQL
//! (`CADRE_TEST_POSTGRES`, default `postgres://postgres@127.0.0.1:5432/test`,
//! a scratch schema dropped afterwards). Without a reachable PostgreSQL the
//! PostgreSQL figures are left out with a note.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use cadre_core::{Engine, Providers};
use cadre_store::scratch::ScratchPostgres;
use cadre_store::{NewJob, Store, StoreLocation};
use cadre_types::{JobId, JobStatus};
use tokio::task::JoinSet;

use super::{BenchResult, Figure, Sizes, ms};
use crate::rig::{SIM_KEY, Scratch, SimHost, Workload, check_complete, config, run_job, scenario};

/// Concurrent claimers in the claim benchmark (as several daemons' dispatchers).
const CLAIMERS: usize = 8;

/// Call-slot claim + release pairs timed, one after the other.
const SLOT_PAIRS: usize = 1000;

/// The store benchmarks on SQLite and, when reachable, PostgreSQL.
pub fn backends(rt: &tokio::runtime::Runtime, sizes: &Sizes) -> Result<BenchResult> {
    let jobs = sizes.overhead_files.max(100);
    let files = sizes.overhead_files;
    let mut figures = Vec::new();
    let mut notes = Vec::new();
    for backend in ["sqlite", "postgres"] {
        eprintln!("backends: {backend}: {jobs} claims by {CLAIMERS} claimers, {files} subtasks");
        let measured = rt.block_on(async {
            tokio::spawn(measure(backend, jobs, files))
                .await
                .map_err(|e| anyhow!("the {backend} task failed: {e}"))?
        })?;
        let Some(m) = measured else {
            notes.push(format!(
                "PostgreSQL unreachable (set {}): its figures are left out",
                cadre_store::scratch::TEST_POSTGRES_ENV
            ));
            continue;
        };
        let setting = format!("{backend}, {CLAIMERS} claimers");
        figures.push(Figure::new(
            &setting,
            "job claims per second (claim + finish)",
            jobs as f64 / m.claims.as_secs_f64(),
            "/s",
        ));
        let setting = format!("{backend}, {SLOT_PAIRS} in a row");
        let per_pair = ms(m.slot_pairs) / SLOT_PAIRS as f64;
        figures.push(Figure::new(
            &setting,
            "ms per call-slot claim + release",
            per_pair,
            "ms",
        ));
        figures.push(Figure::new(
            &setting,
            "call-slot claims per second (claim + release)",
            SLOT_PAIRS as f64 / m.slot_pairs.as_secs_f64(),
            "/s",
        ));
        let setting = format!("{backend}, N={files}, 0 ms");
        let per_subtask = ms(m.fan_out) / files as f64;
        let bound = if backend == "sqlite" { 1.0 } else { 2.0 };
        figures.push(
            Figure::new(&setting, "wall ms per subtask (fan-out)", per_subtask, "ms").below(bound),
        );
    }
    Ok(BenchResult {
        name: "backends".to_owned(),
        title: "the store on SQLite and PostgreSQL: queue claims, per-subtask overhead".to_owned(),
        figures,
        notes,
    })
}

/// One backend's figures.
struct Measured {
    /// Wall time for every job to be claimed and finished.
    claims: Duration,
    /// Wall time of [`SLOT_PAIRS`] call-slot claims and releases.
    slot_pairs: Duration,
    /// The fan-out makespan of one zero-latency job.
    fan_out: Duration,
}

/// A fresh store on `backend` (and what keeps it alive), `None` when
/// PostgreSQL is unreachable.
async fn fresh_store(backend: &str) -> Result<Option<(Store, Keep)>> {
    if backend == "sqlite" {
        let dir = tempfile::Builder::new()
            .prefix("cadre-bench-store-")
            .tempdir()
            .context("creating a temp dir")?;
        let store = Store::open(&dir.path().join("cadre.db")).await?;
        return Ok(Some((store, Keep::Dir(dir))));
    }
    let Some(pg) = ScratchPostgres::create_or_skip("the backends benchmark").await? else {
        return Ok(None);
    };
    let store = Store::connect(&StoreLocation::parse(pg.url())).await?;
    Ok(Some((store, Keep::Postgres(pg))))
}

/// Holds a benchmark store's file or schema until dropped.
enum Keep {
    Dir(#[expect(dead_code, reason = "held for its Drop")] tempfile::TempDir),
    Postgres(ScratchPostgres),
}

async fn measure(backend: &'static str, jobs: usize, files: usize) -> Result<Option<Measured>> {
    let Some((store, keep)) = fresh_store(backend).await? else {
        return Ok(None);
    };
    let claims = claim_throughput(&store, jobs).await?;
    let slot_pairs = slot_pairs(&store).await?;
    store.close().await;
    drop(keep);
    let Some((store, keep)) = fresh_store(backend).await? else {
        return Ok(None);
    };
    let fan_out = fan_out_overhead(store.clone(), files).await?;
    store.close().await;
    if let Keep::Postgres(pg) = keep {
        pg.drop_now().await?;
    }
    Ok(Some(Measured {
        claims,
        slot_pairs,
        fan_out,
    }))
}

/// [`SLOT_PAIRS`] claims of a cluster-wide call slot, each released before
/// the next claim, by one holder: a model call's own store cost on a shared
/// store (PostgreSQL), its claim on the call's path and its release after.
async fn slot_pairs(store: &Store) -> Result<Duration> {
    const LIMIT: u32 = 4;
    const LEASE_MS: i64 = 60_000;
    store.ensure_call_slots("all", LIMIT).await?;
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    };
    let started = Instant::now();
    for _ in 0..SLOT_PAIRS {
        let slot = store
            .claim_call_slot("all", LIMIT, "bench", now_ms(), LEASE_MS)
            .await?
            .ok_or_else(|| anyhow!("no free call slot"))?;
        if !store.release_call_slot("all", slot, "bench").await? {
            return Err(anyhow!("call slot {slot} was not held"));
        }
    }
    Ok(started.elapsed())
}

/// `jobs` queued jobs claimed by [`CLAIMERS`] concurrent claimers, each
/// claim followed by the job's move to `completed` and the lease's release
/// (what a dispatcher does around a job, without the job).
async fn claim_throughput(store: &Store, jobs: usize) -> Result<Duration> {
    for _ in 0..jobs {
        store
            .create_job(&NewJob {
                id: JobId::new(),
                instruction: "bench".to_owned(),
                workspace: "/tmp/bench".to_owned(),
                options: serde_json::json!({}),
                priority: 0,
                budget_usd: None,
                status: JobStatus::Queued,
            })
            .await?;
    }
    let started = Instant::now();
    let mut claimers = JoinSet::new();
    for n in 0..CLAIMERS {
        let store = store.clone();
        claimers.spawn(async move {
            let owner = format!("bench-{n}");
            let mut claimed = 0_usize;
            while let Some(job) = store.claim_job(&owner, 60, 0).await? {
                store
                    .transition_job(job.id, &[JobStatus::Queued], JobStatus::Completed, "bench")
                    .await?;
                store.release_job(job.id, &owner).await?;
                claimed += 1;
            }
            Ok::<usize, cadre_store::Error>(claimed)
        });
    }
    let mut total = 0;
    while let Some(done) = claimers.join_next().await {
        total += done.map_err(|e| anyhow!("a claimer failed: {e}"))??;
    }
    let took = started.elapsed();
    if total != jobs {
        return Err(anyhow!("{total} of {jobs} jobs were claimed"));
    }
    Ok(took)
}

/// The fan-out makespan of one job of `files` subtasks at zero model latency
/// on `store`.
async fn fan_out_overhead(store: Store, files: usize) -> Result<Duration> {
    let w = Workload::new(files);
    let scratch = Scratch::new(files)?;
    let sim = tokio::task::spawn_blocking(move || SimHost::start(scenario(&w)?))
        .await
        .map_err(|e| anyhow!("starting the simulator: {e}"))??;
    let config = Arc::new(config(&[])?);
    let providers = Providers::from_config(&config, &|_| None, Some((sim.base_url(), SIM_KEY)))?;
    let engine = Engine::new(config, store, providers);
    let run = run_job(&engine, &scratch.dir().join("ws"), files).await;
    tokio::task::spawn_blocking(move || sim.stop())
        .await
        .map_err(|e| anyhow!("stopping the simulator: {e}"))?;
    let run = run?;
    check_complete(&run.report, files)?;
    run.times
        .fan_out()
        .ok_or_else(|| anyhow!("no attempt events were recorded"))
}
