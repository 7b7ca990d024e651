//! The cache warm gate against a real simulator on loopback: the first
//! worker call of a tier goes alone, and the others go as soon as it has
//! started to answer (its first streamed event, when the provider's cache
//! holds the shared prefix), not when it has finished. A prefix too short
//! for the provider to cache has nothing to warm: no call waits.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed setup should panic the test"
)]

mod support;

use cadre_sim::{LatencySpec, SimServer};
use cadre_store::Store;
use cadre_types::JobStatus;
use tokio_util::sync::CancellationToken;

use support::{GenFile, engine_for, rename_job, scenario_builder, small_config};

/// The workers' latency: their first event comes at half of it.
const WORKER_MS: u64 = 3000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_other_calls_go_at_the_warming_calls_first_event_and_read_its_cache() {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<GenFile> = (0..3)
        .map(|i| GenFile {
            path: format!("m{i}.py"),
            complexity: "mechanical",
            script: &[],
        })
        .collect();
    // Notes long enough that the shared prefix reaches haiku's cacheable minimum.
    let notes = "Rename OldName to NewName; keep every call site working. ".repeat(400);
    let mut sc = scenario_builder(dir.path(), &files, 7, [1.0, 1.0, 1.0])
        .notes(notes)
        .build_in(dir.path())
        .unwrap();
    sc.models.get_mut("claude-haiku-4-5").unwrap().latency_ms = Some(LatencySpec {
        base: WORKER_MS,
        jitter: 0,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = SimServer::start(sc, listener).await.unwrap();
    let mut config = small_config();
    // Room for a plan that repeats the long notes.
    config.roles.planner.max_tokens = 16_000;
    let store = Store::open(&dir.path().join("cadre.db")).await.unwrap();
    let engine = engine_for(&sim, config, store);
    let job = rename_job(&engine, dir.path(), None).await;
    let report = engine.run_job(job, CancellationToken::new()).await.unwrap();
    assert_eq!(report.status, JobStatus::Completed);

    let log = sim.request_log();
    let workers: Vec<_> = log
        .iter()
        .filter(|r| r.role == Some(cadre_sim::Role::Worker))
        .collect();
    assert_eq!(workers.len(), 3, "{workers:#?}");
    let (first, rest) = (workers[0], &workers[1..]);
    assert!(
        first.stream,
        "the warming call streams, so its first event can be seen"
    );
    assert!(first.cache_creation_input_tokens > 0, "{first:?}");
    for other in rest {
        let gap = other.at_ms - first.at_ms;
        assert!(
            gap >= WORKER_MS / 2 - 100,
            "a call went {gap} ms after the warming call, before its first event"
        );
        assert!(
            gap < WORKER_MS - 100,
            "a call went {gap} ms after the warming call: it waited for the whole answer"
        );
        assert!(
            other.cache_read_input_tokens > 0,
            "a call sent after the first event did not read the cache: {other:?}"
        );
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefix_too_short_to_cache_is_not_warmed() {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<GenFile> = (0..3)
        .map(|i| GenFile {
            path: format!("m{i}.py"),
            complexity: "mechanical",
            script: &[],
        })
        .collect();
    // Short notes: the shared prefix stays below haiku's cacheable minimum,
    // so the workers' requests carry no cache breakpoint.
    let sc = scenario_builder(dir.path(), &files, 7, [1.0, 1.0, 1.0])
        .notes("Rename OldName to NewName.")
        .build_in(dir.path())
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = SimServer::start(sc, listener).await.unwrap();
    let store = Store::open(&dir.path().join("cadre.db")).await.unwrap();
    let engine = engine_for(&sim, small_config(), store);
    let job = rename_job(&engine, dir.path(), None).await;
    let report = engine.run_job(job, CancellationToken::new()).await.unwrap();
    assert_eq!(report.status, JobStatus::Completed);

    let log = sim.request_log();
    let workers: Vec<_> = log
        .iter()
        .filter(|r| r.role == Some(cadre_sim::Role::Worker))
        .collect();
    assert_eq!(workers.len(), 3, "{workers:#?}");
    for w in &workers {
        // A warming call streams so its first event opens the gate; here
        // none warms, so none streams, and nothing was written to the cache.
        assert!(
            !w.stream,
            "a worker call warmed an uncacheable prefix: {w:?}"
        );
        assert_eq!(w.cache_creation_input_tokens, 0, "{w:?}");
    }
    sim.shutdown().await;
}
