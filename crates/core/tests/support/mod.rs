//! Shared support for the engine's integration tests: a generated workspace,
//! a real simulator on loopback and an engine over a real SQLite file.

#![allow(
    dead_code,
    clippy::unwrap_used,
    reason = "test support: a failed setup should panic the test"
)]

use std::path::Path;
use std::sync::Arc;

use cadre_config::Config;
use cadre_core::{Engine, JobOptions, Providers};
use cadre_store::Store;
use cadre_types::JobReport;
use tokio_util::sync::CancellationToken;

/// One file of a generated workspace: `def value_i(): return OldName(i)`.
pub struct GenFile {
    pub path: String,
    pub complexity: &'static str,
    /// `script` entries, e.g. `"claude-haiku-4-5" = ["syntax"]`.
    pub script: Option<String>,
}

/// Writes the files under `dir/ws` and returns the scenario text.
pub fn scenario(dir: &Path, files: &[GenFile], seed: u64, skills: [f64; 3]) -> String {
    let ws = dir.join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    let mut plan = String::new();
    let mut entries = String::new();
    for (i, f) in files.iter().enumerate() {
        std::fs::write(
            ws.join(&f.path),
            format!("def value_{i}():\n    return OldName({i})\n"),
        )
        .unwrap();
        plan.push_str(&format!(
            "[[plan.subtasks]]\npath = \"{}\"\ninstruction = \"Rename OldName to NewName.\"\ncomplexity = \"{}\"\nerror_cost = \"low\"\n",
            f.path, f.complexity
        ));
        entries.push_str(&format!(
            "[[files]]\npath = \"{}\"\nedits = [{{ old = \"return OldName({i})\", new = \"return NewName({i})\" }}]\n",
            f.path
        ));
        if let Some(script) = &f.script {
            entries.push_str(&format!("script = {{ {script} }}\n"));
        }
    }
    let [haiku, sonnet, opus] = skills;
    let model = |id: &str, skill: f64| {
        format!(
            "[models.\"{id}\"]\nskill = {{ mechanical = {skill}, generative = {skill}, reasoning = {skill} }}\nlatency_ms = {{ base = 0, jitter = 2 }}\n"
        )
    };
    format!(
        "seed = {seed}\nworkspace = \"ws\"\n[plan]\nnotes = \"Rename OldName to NewName.\"\n{plan}{entries}{}{}{}",
        model("claude-haiku-4-5", haiku),
        model("claude-sonnet-4-6", sonnet),
        model("claude-opus-4-7", opus)
    )
}

/// The default config with small `max_tokens` so test budgets stay small.
pub fn small_config() -> Config {
    let mut config = Config::default_embedded().unwrap();
    config.roles.planner.max_tokens = 2000;
    config.roles.reviewer.max_tokens = 2000;
    config.roles.worker.max_tokens = 3000;
    config.roles.worker.thinking = false;
    config
}

/// Runs one job over `dir/ws` against a fresh simulator, on the store at `db`.
pub async fn run_job(
    dir: &Path,
    scenario_text: &str,
    config: Config,
    db: &Path,
    budget: Option<f64>,
) -> JobReport {
    let scenario = cadre_sim::Scenario::from_toml_str(scenario_text, dir).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = cadre_sim::SimServer::start(scenario, listener)
        .await
        .unwrap();
    let config = Arc::new(config);
    let store = Store::open(db).await.unwrap();
    let base = sim.base_url();
    let providers = Providers::from_config(&config, &|_| None, Some((&base, "test-key"))).unwrap();
    let engine = Engine::new(config, store, providers);
    let job = engine
        .create_job(
            "Rename `OldName` to `NewName`",
            &dir.join("ws"),
            &JobOptions::default(),
            budget,
            0,
        )
        .await
        .unwrap();
    let report = engine.run_job(job, CancellationToken::new()).await.unwrap();
    sim.shutdown().await;
    report
}
