//! Batch mode: worker rounds go out as Message Batches at the batch price,
//! and a run stopped while a batch is processing resumes by polling that
//! batch instead of sending its requests again.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cadre_core::{Engine, JobOptions, Providers};
use cadre_store::Store;
use cadre_types::{AttemptOutcome, Role};
use support::{GenFile, scenario_builder, small_config};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_batch_is_polled_again_not_resent() {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<GenFile> = (0..4)
        .map(|i| GenFile {
            path: format!("m{i}.py"),
            complexity: "mechanical",
            script: &[],
        })
        .collect();
    let scenario = scenario_builder(dir.path(), &files, 3, [1.0, 1.0, 1.0])
        .batch_processing_delay_ms(1500)
        .build_in(dir.path())
        .unwrap();
    let sim = cadre_sim::SimServer::start(
        scenario,
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
    )
    .await
    .unwrap();
    let config = Arc::new(small_config());
    let store = Store::open(&dir.path().join("cadre.db")).await.unwrap();
    let base = sim.base_url();
    let providers = Providers::from_config(&config, &|_| None, Some((&base, "test-key"))).unwrap();
    let engine = Engine::new(config, store.clone(), providers);
    let options = JobOptions {
        batch: true,
        ..JobOptions::default()
    };
    let job = engine
        .create_job(
            "Rename `OldName` to `NewName`",
            &dir.path().join("ws"),
            &options,
            None,
            0,
        )
        .await
        .unwrap();

    // First run: stop it while the worker batch is still processing.
    let stop = CancellationToken::new();
    let first = tokio::spawn({
        let (engine, stop) = (engine.clone(), stop.clone());
        async move { engine.run_job(job, stop).await }
    });
    let mut waited = 0;
    loop {
        let recorded = store
            .list_attempts(job)
            .await
            .unwrap()
            .iter()
            .filter(|a| a.role == Role::Worker && a.batch_id.is_some())
            .count();
        if recorded == 4 {
            break;
        }
        waited += 1;
        assert!(waited < 200, "the worker batch was never sent");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    first.await.unwrap().unwrap();
    let interrupted = store
        .list_attempts(job)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| {
            a.role == Role::Worker
                && a.outcome == AttemptOutcome::Interrupted
                && a.batch_id.is_some()
        })
        .count();
    assert_eq!(
        interrupted, 4,
        "the stopped run leaves its batched attempts interrupted"
    );

    // Resume: the batch is polled to its end and its answers are replayed.
    let report = engine.run_job(job, CancellationToken::new()).await.unwrap();
    assert_eq!(report.status.as_str(), "completed", "{}", report.reason);
    let mut sent: BTreeMap<String, usize> = BTreeMap::new();
    for r in sim.request_log() {
        if r.method == "BATCH" {
            *sent
                .entry(r.subtask_path.clone().unwrap_or_default())
                .or_default() += 1;
        }
    }
    assert_eq!(sent.len(), 4, "{sent:?}");
    assert!(
        sent.values().all(|n| *n == 1),
        "a batched request was sent twice: {sent:?}"
    );
    assert!(report.cost.batch_usd > 0.0 && report.cost.batch_savings_usd > 0.0);
    let worker_calls = store
        .list_calls(job)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.role == Role::Worker)
        .count();
    assert_eq!(worker_calls, 4, "each worker answer is in the ledger once");
    sim.shutdown().await;
}
