//! Budgets that deliver: the bundled demo (its whole job costs about $0.62)
//! run under budgets from $0.10 to $1.00 against the real simulator and a
//! real SQLite store. At every budget the recorded spend stays under the cap
//! and no accepted file ends unreviewed; files the budget cannot cover are
//! not started; the accepted count rises with the budget, and a budget above
//! the job's cost completes it. A budget raised afterwards finishes the job.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed setup should panic the test"
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cadre_config::Config;
use cadre_core::{Engine, JobOptions, Providers};
use cadre_store::Store;
use cadre_types::{EventKind, JobId, JobReport, JobStatus, SubtaskStatus};
use tokio_util::sync::CancellationToken;

fn demo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/demo")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

struct DemoRun {
    report: JobReport,
    expected_usd: f64,
    engine: Engine,
    job: JobId,
    sim: cadre_sim::SimServer,
}

async fn run_demo(dir: &Path, budget: f64) -> DemoRun {
    run_demo_with(dir, budget, JobOptions::default()).await
}

async fn run_demo_with(dir: &Path, budget: f64, options: JobOptions) -> DemoRun {
    let demo = demo_dir();
    copy_dir(&demo.join("workspace"), &dir.join("workspace"));
    let text = std::fs::read_to_string(demo.join("scenario.toml")).unwrap();
    let scenario = cadre_sim::Scenario::from_toml_str(&text, dir).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = cadre_sim::SimServer::start(scenario, listener)
        .await
        .unwrap();
    let config = Arc::new(Config::default_embedded().unwrap());
    let store = Store::open(&dir.join("cadre.db")).await.unwrap();
    let base = sim.base_url();
    let providers = Providers::from_config(&config, &|_| None, Some((&base, "k"))).unwrap();
    let engine = Engine::new(config, store.clone(), providers);
    let instruction = std::fs::read_to_string(demo.join("instruction.txt")).unwrap();
    let job = engine
        .create_job(
            instruction.trim(),
            &dir.join("workspace"),
            &options,
            Some(budget),
            0,
        )
        .await
        .unwrap();
    let report = engine.run_job(job, CancellationToken::new()).await.unwrap();
    let events = store.list_events(job, 0, 10_000).await.unwrap();
    let expected_usd = events
        .iter()
        .find(|e| e.kind == EventKind::BudgetEstimate)
        .and_then(|e| e.data["expected_usd"].as_f64())
        .unwrap_or(f64::NAN);
    DemoRun {
        report,
        expected_usd,
        engine,
        job,
        sim,
    }
}

/// Every accepted file got an `approve` verdict from the reviewer.
async fn reviewed(store: &Store, job: JobId, report: &JobReport) -> usize {
    let events = store.list_events(job, 0, 10_000).await.unwrap();
    let approved: Vec<&str> = events
        .iter()
        .filter(|e| e.kind == EventKind::ReviewVerdict && e.data["verdict"] == "approve")
        .filter_map(|e| e.data["path"].as_str())
        .collect();
    report
        .subtasks
        .iter()
        .filter(|s| s.status == SubtaskStatus::Accepted)
        .filter(|s| approved.contains(&s.path.as_str()))
        .count()
}

fn accepted(report: &JobReport) -> usize {
    report
        .subtasks
        .iter()
        .filter(|s| s.status == SubtaskStatus::Accepted)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_under_budgets_buys_reviewed_work_and_never_overspends() {
    let mut rows = Vec::new();
    let mut last_accepted = 0;
    for budget in [0.10, 0.30, 0.50, 0.70, 1.00] {
        let dir = tempfile::tempdir().unwrap();
        let run = run_demo(dir.path(), budget).await;
        let report = &run.report;
        let spent = report.cost.total_usd;
        let accepted = accepted(report);
        let reviewed = reviewed(run.engine.store(), run.job, report).await;
        rows.push(format!(
            "| ${budget:.2} | ${:.2} | ${spent:.4} | {accepted} | {reviewed} | {} |",
            run.expected_usd, report.status
        ));
        assert!(
            spent <= budget + 1e-9,
            "${budget}: spent ${spent} over the cap"
        );
        assert_eq!(
            accepted, reviewed,
            "${budget}: an accepted file was not approved by the reviewer"
        );
        for s in &report.subtasks {
            assert!(
                !s.reason.contains("not reviewed"),
                "${budget}: {} was paid for and left unreviewed: {}",
                s.path,
                s.reason
            );
            assert!(
                s.status.is_terminal()
                    || (s.status == SubtaskStatus::Pending
                        && s.reason.starts_with("not started: budget")),
                "${budget}: {} left {} ({})",
                s.path,
                s.status,
                s.reason
            );
        }
        assert!(
            accepted >= last_accepted,
            "${budget}: fewer files accepted than at a smaller budget"
        );
        last_accepted = accepted;
        if budget >= run.expected_usd * 1.2 {
            assert_eq!(
                report.status,
                JobStatus::Completed,
                "${budget} covers the expected ${:.4}: {}",
                run.expected_usd,
                report.reason
            );
        }
        if budget <= 0.30 {
            assert_eq!(report.status, JobStatus::NeedsHuman);
        }
        run.sim.shutdown().await;
    }
    assert!(last_accepted > 0);
    println!(
        "| budget | expected | spent | files accepted | reviewed | status |\n|---|---|---|---|---|---|"
    );
    for row in rows {
        println!("{row}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_raised_after_the_run_finishes_the_files_it_did_not_cover() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_demo(dir.path(), 0.30).await;
    assert_eq!(run.report.status, JobStatus::NeedsHuman);
    let pending = run
        .report
        .subtasks
        .iter()
        .filter(|s| s.status == SubtaskStatus::Pending)
        .count();
    assert!(pending > 0, "the small budget left nothing unstarted");
    assert!(
        run.report.reason.contains("not started: budget"),
        "{}",
        run.report.reason
    );
    let before = accepted(&run.report);
    let status = run.engine.raise_budget(run.job, 2.0).await.unwrap();
    assert_eq!(status, JobStatus::Queued);
    assert!(run.engine.raise_budget(run.job, 1.0).await.is_err());
    let report = run
        .engine
        .run_job(run.job, CancellationToken::new())
        .await
        .unwrap();
    assert!(report.cost.total_usd <= 2.0);
    assert!(accepted(&report) > before);
    let humans: Vec<String> = report
        .subtasks
        .iter()
        .filter(|s| s.status == SubtaskStatus::NeedsHuman)
        .map(|s| format!("{}: {}", s.path, s.reason))
        .collect();
    assert_eq!(report.status, JobStatus::Completed, "{humans:#?}");
    run.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_budget_fit_stops_before_any_worker_call_when_the_plan_does_not_fit() {
    let dir = tempfile::tempdir().unwrap();
    let options = JobOptions {
        require_budget_fit: true,
        ..JobOptions::default()
    };
    let run = run_demo_with(dir.path(), 0.50, options).await;
    assert!(run.expected_usd > 0.50, "the demo's expectation fits $0.50");
    assert_eq!(run.report.status, JobStatus::NeedsHuman);
    let workers = run
        .sim
        .request_log()
        .iter()
        .filter(|r| r.role == Some(cadre_sim::Role::Worker))
        .count();
    assert_eq!(
        workers, 0,
        "a worker was paid for after the estimate said no"
    );
    assert!(run.report.subtasks.iter().all(|s| {
        s.status == SubtaskStatus::Skipped
            || (s.status == SubtaskStatus::Pending && s.reason.starts_with("not started: budget"))
    }));
    // Only the plan was paid for.
    assert!(
        run.report.cost.total_usd < 0.2,
        "{}",
        run.report.cost.total_usd
    );
    run.sim.shutdown().await;
}
