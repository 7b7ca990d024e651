//! Hard budgets, as a property over many seeds and scenarios: the recorded
//! total never exceeds the cap, and every subtask ends in a terminal state.
//! Runs the real engine against the real simulator on loopback.

use std::path::Path;
use std::sync::Arc;

use cadre_config::Config;
use cadre_core::{Engine, JobOptions, Providers};
use cadre_store::Store;
use tokio_util::sync::CancellationToken;

/// A workspace of `n` small Python files and a scenario whose models fail
/// at seeded rates.
fn scenario(dir: &Path, n: usize, seed: u64, haiku_skill: f64, sonnet_skill: f64) -> String {
    let ws = dir.join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    let mut plan = String::new();
    let mut files = String::new();
    for i in 0..n {
        let path = format!("mod_{i}.py");
        std::fs::write(
            ws.join(&path),
            format!("def value_{i}():\n    return OldName({i})\n"),
        )
        .unwrap();
        let complexity = ["mechanical", "generative", "reasoning"][i % 3];
        plan.push_str(&format!(
            "[[plan.subtasks]]\npath = \"{path}\"\ninstruction = \"Rename OldName to NewName.\"\ncomplexity = \"{complexity}\"\nerror_cost = \"low\"\n"
        ));
        files.push_str(&format!(
            "[[files]]\npath = \"{path}\"\nedits = [{{ old = \"return OldName({i})\", new = \"return NewName({i})\" }}]\n"
        ));
    }
    format!(
        "seed = {seed}\nworkspace = \"ws\"\n[plan]\nnotes = \"Rename OldName to NewName.\"\n{plan}{files}\
         [models.\"claude-haiku-4-5\"]\nskill = {{ mechanical = {haiku_skill}, generative = {haiku_skill}, reasoning = {haiku_skill} }}\nlatency_ms = {{ base = 0, jitter = 2 }}\n\
         [models.\"claude-sonnet-4-6\"]\nskill = {{ mechanical = {sonnet_skill}, generative = {sonnet_skill}, reasoning = {sonnet_skill} }}\nlatency_ms = {{ base = 0, jitter = 2 }}\n\
         [models.\"claude-opus-4-7\"]\nskill = {{ mechanical = 0.8, generative = 0.8, reasoning = 0.8 }}\nlatency_ms = {{ base = 0, jitter = 2 }}\n"
    )
}

async fn run_once(
    seed: u64,
    n: usize,
    budget: f64,
    haiku: f64,
    sonnet: f64,
) -> (f64, Vec<String>, String) {
    let dir = tempfile::tempdir().unwrap();
    let text = scenario(dir.path(), n, seed, haiku, sonnet);
    let scenario = cadre_sim::Scenario::from_toml_str(&text, dir.path()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = cadre_sim::SimServer::start(scenario, listener)
        .await
        .unwrap();
    let mut config = Config::default_embedded().unwrap();
    config.roles.planner.max_tokens = 2000;
    config.roles.reviewer.max_tokens = 2000;
    config.roles.worker.max_tokens = 3000;
    config.roles.worker.thinking = false;
    let config = Arc::new(config);
    let store = Store::open(&dir.path().join("cadre.db")).await.unwrap();
    let base = sim.base_url();
    let providers = Providers::from_config(&config, &|_| None, Some((&base, "test-key"))).unwrap();
    let engine = Engine::new(config, store, providers);
    let job = engine
        .create_job(
            "Rename `OldName` to `NewName`",
            &dir.path().join("ws"),
            &JobOptions::default(),
            Some(budget),
            0,
        )
        .await
        .unwrap();
    let report = engine.run_job(job, CancellationToken::new()).await.unwrap();
    sim.shutdown().await;
    let statuses = report
        .subtasks
        .iter()
        .map(|s| s.status.to_string())
        .collect();
    (report.cost.total_usd, statuses, report.status.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recorded_total_never_exceeds_the_budget() {
    let mut exhausted = 0;
    for seed in 0..12u64 {
        let n = 3 + (seed as usize % 5);
        let budget = [0.02, 0.05, 0.08, 0.15, 0.3, 1.0][seed as usize % 6];
        let haiku = [0.2, 0.6, 1.0][seed as usize % 3];
        let sonnet = [0.5, 0.9][seed as usize % 2];
        let (total, statuses, status) = run_once(seed, n, budget, haiku, sonnet).await;
        assert!(
            total <= budget + 1e-9,
            "seed {seed}: spent {total} over the budget {budget}"
        );
        let terminal = ["accepted", "needs_human", "skipped", "cancelled"];
        for s in &statuses {
            assert!(
                terminal.contains(&s.as_str()),
                "seed {seed}: subtask left {s}"
            );
        }
        assert!(
            ["completed", "needs_human"].contains(&status.as_str()),
            "seed {seed}: job {status}"
        );
        if status == "needs_human" {
            exhausted += 1;
        }
    }
    assert!(
        exhausted > 0,
        "no seed ran out of budget: the property was not exercised"
    );
}
