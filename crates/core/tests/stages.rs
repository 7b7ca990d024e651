//! Bugs the old one-file engine hid, each pinned by a test against a real
//! simulator on loopback and a real SQLite file: planning that could not be
//! stopped, a busy store counted as a model failure, and a resumed job whose
//! workspace could not be indexed running on with an empty file list.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed setup should panic the test"
)]

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use cadre_core::Engine;
use cadre_sim::{LatencySpec, SimServer};
use cadre_store::Store;
use cadre_types::{AttemptOutcome, EventKind, FailureKind, JobId, JobStatus, Role};
use sqlx::Connection;
use tokio_util::sync::CancellationToken;

use support::{GenFile, engine_for, rename_job, scenario, small_config};

/// A one-file scenario; `planner_ms` / `worker_ms` set the top and the
/// cheapest tier's latency.
async fn start_sim(dir: &Path, files: usize, planner_ms: u64, worker_ms: u64) -> SimServer {
    let gen_files: Vec<GenFile> = (0..files)
        .map(|i| GenFile {
            path: format!("m{i}.py"),
            complexity: "mechanical",
            script: &[],
        })
        .collect();
    let mut sc = scenario(dir, &gen_files, 7, [1.0, 1.0, 1.0]);
    for (model, ms) in [
        ("claude-opus-4-7", planner_ms),
        ("claude-haiku-4-5", worker_ms),
    ] {
        sc.models.get_mut(model).unwrap().latency_ms = Some(LatencySpec {
            base: ms,
            jitter: 0,
        });
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    SimServer::start(sc, listener).await.unwrap()
}

/// A job over `files` generated files against a fresh simulator and store
/// (the store waits `busy_timeout` for another writer).
struct Rig {
    dir: tempfile::TempDir,
    sim: SimServer,
    store: Store,
    engine: Engine,
    job: JobId,
}

impl Rig {
    async fn new(files: usize, planner_ms: u64, worker_ms: u64, busy_timeout: Duration) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let sim = start_sim(dir.path(), files, planner_ms, worker_ms).await;
        let store = Store::open_with_busy_timeout(&dir.path().join("cadre.db"), busy_timeout)
            .await
            .unwrap();
        let engine = engine_for(&sim, small_config(), store.clone());
        let job = rename_job(&engine, dir.path(), None).await;
        Rig {
            dir,
            sim,
            store,
            engine,
            job,
        }
    }
}

/// The store's usual wait for another writer.
const BUSY: Duration = Duration::from_secs(10);

/// Waits until the job's planner attempt is in flight.
async fn wait_for_planner_call(store: &Store, job: JobId) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let attempts = store.list_attempts_brief(job).await.unwrap();
        if attempts.iter().any(|a| a.role == Role::Planner) {
            // The call is sent right after its attempt row.
            tokio::time::sleep(Duration::from_millis(200)).await;
            return;
        }
        assert!(Instant::now() < deadline, "the planner was never called");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_during_planning_returns_at_once_and_leaves_the_job_resumable() {
    let Rig {
        dir: _dir,
        sim,
        store,
        engine,
        job,
    } = Rig::new(1, 30_000, 0, BUSY).await;
    let stop = CancellationToken::new();
    let run = tokio::spawn({
        let (engine, stop) = (engine.clone(), stop.clone());
        async move { engine.run_job(job, stop).await }
    });
    wait_for_planner_call(&store, job).await;
    let stopped_at = Instant::now();
    stop.cancel();
    let report = tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("the run waited for the planner's 30 s answer after a stop")
        .unwrap()
        .unwrap();
    assert!(stopped_at.elapsed() < Duration::from_secs(5));
    assert!(!report.status.is_terminal(), "{:?}", report.status);
    let planner = store.list_attempts_brief(job).await.unwrap();
    assert_eq!(planner.len(), 1);
    assert_eq!(planner[0].outcome, AttemptOutcome::Interrupted);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_during_planning_ends_the_job_cancelled_without_waiting_for_the_planner() {
    let Rig {
        dir: _dir,
        sim,
        store,
        engine,
        job,
    } = Rig::new(1, 30_000, 0, BUSY).await;
    let run = tokio::spawn({
        let engine = engine.clone();
        async move { engine.run_job(job, CancellationToken::new()).await }
    });
    wait_for_planner_call(&store, job).await;
    assert!(engine.cancel(job).await.unwrap());
    let report = tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("the run waited for the planner's 30 s answer after a cancel")
        .unwrap()
        .unwrap();
    assert_eq!(report.status, JobStatus::Cancelled);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cadre_plan_stops_on_its_token_and_leaves_the_job_queued() {
    let Rig {
        dir: _dir,
        sim,
        store,
        engine,
        job,
    } = Rig::new(1, 30_000, 0, BUSY).await;
    let stop = CancellationToken::new();
    let plan = tokio::spawn({
        let (engine, stop) = (engine.clone(), stop.clone());
        async move { engine.plan_job(job, stop).await }
    });
    wait_for_planner_call(&store, job).await;
    stop.cancel();
    let result = tokio::time::timeout(Duration::from_secs(5), plan)
        .await
        .expect("cadre plan waited for the planner after a stop")
        .unwrap();
    assert!(
        matches!(result, Err(cadre_core::Error::Stopped)),
        "{result:?}"
    );
    let status = store.get_job_brief(job).await.unwrap().unwrap().status;
    assert_eq!(
        status,
        JobStatus::Queued,
        "an interrupted plan stays resumable"
    );
    sim.shutdown().await;
}

/// A store that is busy (another writer holds its lock) when a paid answer
/// comes back is asked again; the answer is neither thrown away nor counted
/// as the model's failure, so the subtask does not escalate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_store_while_recording_an_answer_is_not_a_model_failure() {
    let Rig {
        dir,
        sim,
        store,
        engine,
        job,
    } = Rig::new(1, 0, 800, Duration::from_millis(200)).await;
    let db = dir.path().join("cadre.db");
    let run = tokio::spawn({
        let engine = engine.clone();
        async move { engine.run_job(job, CancellationToken::new()).await }
    });
    // Once the worker's call is out (its attempt_started event is written),
    // another writer takes the database's write lock for 1.5 s.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let events = store.list_events(job, 0, 1000).await.unwrap();
        if events.iter().any(|e| e.kind == EventKind::AttemptStarted) {
            break;
        }
        assert!(Instant::now() < deadline, "no worker attempt started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let url = format!("sqlite://{}", db.display());
    let mut other = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    sqlx::query("COMMIT").execute(&mut other).await.unwrap();
    drop(other);
    let report = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(report.status, JobStatus::Completed);
    let attempts = store.list_attempts_brief(job).await.unwrap();
    let workers: Vec<_> = attempts.iter().filter(|a| a.role == Role::Worker).collect();
    assert_eq!(workers.len(), 1, "the subtask escalated: {workers:?}");
    assert_eq!(workers[0].tier, "haiku");
    assert!(
        attempts
            .iter()
            .all(|a| a.failure != Some(FailureKind::ProviderError)),
        "a store failure was recorded as a provider error"
    );
    let worker_requests = sim
        .request_log()
        .iter()
        .filter(|r| r.role == Some(cadre_sim::Role::Worker))
        .count();
    assert_eq!(
        worker_requests, 1,
        "the paid answer was thrown away and asked again"
    );
    sim.shutdown().await;
}

/// A resumed job whose workspace cannot be indexed fails with a reason that
/// names the indexing, instead of running on with tools that see no file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_a_job_whose_workspace_cannot_be_indexed_is_an_error_not_an_empty_index() {
    let Rig {
        dir,
        sim,
        store,
        engine,
        job,
    } = Rig::new(2, 0, 0, BUSY).await;
    engine
        .plan_job(job, CancellationToken::new())
        .await
        .unwrap();
    std::fs::rename(dir.path().join("ws"), dir.path().join("moved")).unwrap();
    let result = engine.run_job(job, CancellationToken::new()).await;
    let error = result.expect_err("the run went on without its workspace");
    assert!(
        error.chain().contains("indexing the workspace"),
        "{}",
        error.chain()
    );
    let record = store.get_job_brief(job).await.unwrap().unwrap();
    assert_eq!(record.status, JobStatus::Failed);
    assert!(record.reason.contains("indexing"), "{}", record.reason);
    assert_eq!(
        sim.request_log()
            .iter()
            .filter(|r| r.role == Some(cadre_sim::Role::Worker))
            .count(),
        0,
        "no worker may run without its workspace"
    );
    sim.shutdown().await;
}
