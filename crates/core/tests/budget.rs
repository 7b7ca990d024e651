//! Hard budgets, as a property over many seeds and scenarios: the recorded
//! total never exceeds the cap; every subtask ends terminal, or pending
//! because the budget could not cover it ("not started: budget"); and no
//! money is spent on a file that ends unreviewed because of the budget.
//! Runs the real engine against the real simulator on loopback.

mod support;

use cadre_types::SubtaskStatus;
use support::{GenFile, run_job, scenario, small_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recorded_total_never_exceeds_the_budget() {
    let mut exhausted = 0;
    for seed in 0..12u64 {
        let n = 3 + (seed as usize % 5);
        let budget = [0.02, 0.05, 0.08, 0.15, 0.3, 1.0][seed as usize % 6];
        let haiku = [0.2, 0.6, 1.0][seed as usize % 3];
        let sonnet = [0.5, 0.9][seed as usize % 2];
        let files: Vec<GenFile> = (0..n)
            .map(|i| GenFile {
                path: format!("mod_{i}.py"),
                complexity: ["mechanical", "generative", "reasoning"][i % 3],
                script: &[],
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let spec = scenario(dir.path(), &files, seed, [haiku, sonnet, 0.8]);
        let report = run_job(
            dir.path(),
            spec,
            small_config(),
            &dir.path().join("cadre.db"),
            Some(budget),
        )
        .await;
        let total = report.cost.total_usd;
        assert!(
            total <= budget + 1e-9,
            "seed {seed}: spent {total} over the budget {budget}"
        );
        for s in &report.subtasks {
            let not_started =
                s.status == SubtaskStatus::Pending && s.reason.starts_with("not started: budget");
            assert!(
                s.status.is_terminal() || not_started,
                "seed {seed}: {} left {} ({})",
                s.path,
                s.status,
                s.reason
            );
            assert!(
                !s.reason.contains("not reviewed"),
                "seed {seed}: {} was paid for and left unreviewed: {}",
                s.path,
                s.reason
            );
            if not_started {
                assert_eq!(s.attempts, 0, "seed {seed}: {} was started", s.path);
            }
        }
        assert!(
            ["completed", "needs_human"].contains(&report.status.as_str()),
            "seed {seed}: job {}",
            report.status
        );
        if report.status.as_str() == "needs_human" {
            exhausted += 1;
        }
    }
    assert!(
        exhausted > 0,
        "no seed ran out of budget: the property was not exercised"
    );
}
