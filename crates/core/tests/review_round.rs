//! A review round of several chunks against a real simulator and a real
//! SQLite file: the first chunk's call goes alone (it writes the reviewer's
//! cache), the others go together, and a chunk that fails the review or a
//! stop waits for the calls still in flight, so every reviewer attempt is
//! accounted for.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed setup should panic the test"
)]

mod support;

use std::time::{Duration, Instant};

use cadre_core::Engine;
use cadre_sim::{
    FaultKind, FaultMatch, FaultSpec, LoggedRequest, ModelOverride, Role as SimRole, SimServer,
    SkillSpec,
};
use cadre_store::Store;
use cadre_types::{AttemptOutcome, JobId, JobStatus, Role, SubtaskStatus};
use tokio_util::sync::CancellationToken;

use support::{GenFile, engine_for, rename_job, scenario_builder, small_config};

/// The reviewer's (and planner's) latency.
const REVIEWER_MS: u64 = 400;

/// Files of the job: three review chunks of 100 (`m000.py` .. `m299.py`,
/// reviewed in path order).
const FILES: usize = 300;

struct Rig {
    _dir: tempfile::TempDir,
    sim: SimServer,
    store: Store,
    engine: Engine,
    job: JobId,
}

impl Rig {
    async fn new(faults: Vec<FaultSpec>) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<GenFile> = (0..FILES)
            .map(|i| GenFile {
                path: format!("m{i:03}.py"),
                complexity: "mechanical",
                script: &[],
            })
            .collect();
        // The top tier answers tersely, so a 300-file plan and a 100-file
        // review fit the test config's `max_tokens`.
        let mut builder = scenario_builder(dir.path(), &files, 7, [1.0, 1.0, 1.0]).model(
            "claude-opus-4-7",
            ModelOverride::default()
                .skill(SkillSpec::uniform(1.0))
                .latency(REVIEWER_MS, 0)
                .output_tokens_per_char(0.005),
        );
        for fault in faults {
            builder = builder.fault(fault);
        }
        let scenario = builder.build_in(dir.path()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sim = SimServer::start(scenario, listener).await.unwrap();
        let store = Store::open(&dir.path().join("cadre.db")).await.unwrap();
        let engine = engine_for(&sim, small_config(), store.clone());
        let job = rename_job(&engine, dir.path(), None).await;
        Rig {
            _dir: dir,
            sim,
            store,
            engine,
            job,
        }
    }

    /// The reviewer requests the simulator received, in arrival order.
    fn reviewer_requests(&self) -> Vec<LoggedRequest> {
        self.sim
            .request_log()
            .into_iter()
            .filter(|r| r.role == Some(SimRole::Reviewer))
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_chunk_is_reviewed_alone_and_the_others_together() {
    let rig = Rig::new(Vec::new()).await;
    let report = rig
        .engine
        .run_job(rig.job, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.status, JobStatus::Completed, "{}", report.reason);
    assert_eq!(report.subtasks.len(), FILES);

    let reviews = rig.reviewer_requests();
    assert_eq!(reviews.len(), 3, "one call per chunk of 100 files");
    assert!(reviews.iter().all(|r| r.status == 200 && r.complete));
    // The second and third chunks went once the first was answered...
    assert!(
        reviews[1].at_ms >= reviews[0].at_ms + REVIEWER_MS,
        "the first chunk went alone: {:?}",
        reviews.iter().map(|r| r.at_ms).collect::<Vec<_>>()
    );
    // ... and together, not one latency apart.
    assert!(
        reviews[2].at_ms < reviews[1].at_ms + REVIEWER_MS / 2,
        "the later chunks went together: {:?}",
        reviews.iter().map(|r| r.at_ms).collect::<Vec<_>>()
    );
    let subtasks = rig.store.list_subtasks_brief(rig.job).await.unwrap();
    assert!(subtasks.iter().all(|s| s.status == SubtaskStatus::Accepted));
    rig.sim.shutdown().await;
}

/// A fault on the first reviewer request that shows `path`.
fn on_path(kind: FaultKind, path: &str, delay_ms: u64) -> FaultSpec {
    FaultSpec {
        kind,
        matches: FaultMatch {
            role: Some(SimRole::Reviewer),
            model: None,
            path: Some(path.into()),
        },
        times: 1,
        after: 0,
        retry_after_secs: None,
        delay_ms,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_that_fails_the_review_waits_for_the_calls_in_flight() {
    // The second chunk's answer breaks the tool's schema at once; the third
    // chunk's call is still out (it takes 1.5 s more) when that fails the
    // review.
    let rig = Rig::new(vec![
        on_path(FaultKind::Schema, "m150.py", 0),
        on_path(FaultKind::Slow, "m250.py", 1_500),
    ])
    .await;
    let err = rig
        .engine
        .run_job(rig.job, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("unusable"),
        "the review failed on the unusable answer: {err}"
    );

    let reviews = rig.reviewer_requests();
    assert_eq!(reviews.len(), 3, "every chunk was sent once: {reviews:?}");
    // Every reviewer attempt ended: none is left running, the slow chunk's
    // call was waited for and its answer recorded.
    assert_eq!(
        reviewer_outcomes(&rig).await,
        [
            AttemptOutcome::Failed,
            AttemptOutcome::Passed,
            AttemptOutcome::Passed
        ]
    );
    rig.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_while_chunks_are_in_flight_interrupts_them_and_a_resume_reviews_them() {
    // The second and third chunks' calls take 30 s: the stop comes while
    // both are out.
    let rig = Rig::new(vec![
        on_path(FaultKind::Slow, "m150.py", 30_000),
        on_path(FaultKind::Slow, "m250.py", 30_000),
    ])
    .await;
    let stop = CancellationToken::new();
    let run = tokio::spawn({
        let (engine, job, stop) = (rig.engine.clone(), rig.job, stop.clone());
        async move { engine.run_job(job, stop).await }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while in_flight_reviews(&rig).await < 2 {
        assert!(Instant::now() < deadline, "the later chunks never went out");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    let report = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("the stop waited for the reviewer's 30 s answers")
        .unwrap()
        .unwrap();
    assert!(!report.status.is_terminal(), "{:?}", report.status);
    let outcomes = reviewer_outcomes(&rig).await;
    assert_eq!(
        outcomes,
        [
            AttemptOutcome::Interrupted,
            AttemptOutcome::Interrupted,
            AttemptOutcome::Passed
        ],
        "the first chunk's review stands, the two cut short are interrupted"
    );

    // A resume reviews the two interrupted chunks and finishes the job.
    let report = rig
        .engine
        .run_job(rig.job, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.status, JobStatus::Completed, "{}", report.reason);
    let subtasks = rig.store.list_subtasks_brief(rig.job).await.unwrap();
    assert!(subtasks.iter().all(|s| s.status == SubtaskStatus::Accepted));
    // The provider answered three reviews in all: the first chunk's before
    // the stop (the resume finds that answer in the ledger) and the two cut
    // short, again.
    let answered = rig
        .reviewer_requests()
        .iter()
        .filter(|r| r.complete)
        .count();
    assert_eq!(answered, 3);
    let outcomes = reviewer_outcomes(&rig).await;
    assert!(!outcomes.contains(&AttemptOutcome::Running), "{outcomes:?}");
    rig.sim.shutdown().await;
}

/// Reviewer attempts still running.
async fn in_flight_reviews(rig: &Rig) -> usize {
    reviewer_outcomes(rig)
        .await
        .into_iter()
        .filter(|o| *o == AttemptOutcome::Running)
        .count()
}

/// The outcomes of the job's reviewer attempts, sorted.
async fn reviewer_outcomes(rig: &Rig) -> Vec<AttemptOutcome> {
    let mut outcomes: Vec<AttemptOutcome> = rig
        .store
        .list_attempts_brief(rig.job)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.role == Role::Reviewer)
        .map(|a| a.outcome)
        .collect();
    outcomes.sort_by_key(|o| o.as_str());
    outcomes
}
