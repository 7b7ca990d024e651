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
use cadre_sim::{
    FileSpec, ModelOverride, OutcomeKind, Scenario, ScenarioBuilder, SimServer, SkillSpec,
    SubtaskSpec,
};
use cadre_store::Store;
use cadre_types::{JobId, JobReport};
use tokio_util::sync::CancellationToken;

/// One file of a generated workspace: `def value_i(): return OldName(i)`.
pub struct GenFile {
    pub path: String,
    pub complexity: &'static str,
    /// Scripted outcomes per model id, e.g. `&[("claude-haiku-4-5", &[OutcomeKind::Syntax])]`.
    pub script: &'static [(&'static str, &'static [OutcomeKind])],
}

/// Writes the files under `dir/ws` and returns the scenario, still open for
/// additions (`workspace = "ws"`, so build it with `build_in(dir)`).
pub fn scenario_builder(
    dir: &Path,
    files: &[GenFile],
    seed: u64,
    skills: [f64; 3],
) -> ScenarioBuilder {
    let ws = dir.join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    let mut builder = Scenario::builder()
        .seed(seed)
        .workspace("ws")
        .notes("Rename OldName to NewName.");
    for (i, f) in files.iter().enumerate() {
        std::fs::write(
            ws.join(&f.path),
            format!("def value_{i}():\n    return OldName({i})\n"),
        )
        .unwrap();
        builder = builder.subtask(
            SubtaskSpec::new(&f.path, "Rename OldName to NewName.").complexity(f.complexity),
        );
    }
    for (i, f) in files.iter().enumerate() {
        let mut file = FileSpec::with_edits(
            &f.path,
            [(
                format!("return OldName({i})"),
                format!("return NewName({i})"),
            )],
        );
        for (model, outcomes) in f.script {
            file = file.script(*model, outcomes.iter().copied());
        }
        builder = builder.file(file);
    }
    let [haiku, sonnet, opus] = skills;
    for (id, skill) in [
        ("claude-haiku-4-5", haiku),
        ("claude-sonnet-4-6", sonnet),
        ("claude-opus-4-7", opus),
    ] {
        builder = builder.model(
            id,
            ModelOverride::default()
                .skill(SkillSpec::uniform(skill))
                .latency(0, 2),
        );
    }
    builder
}

/// Writes the files under `dir/ws` and returns the scenario over them.
pub fn scenario(dir: &Path, files: &[GenFile], seed: u64, skills: [f64; 3]) -> Scenario {
    scenario_builder(dir, files, seed, skills)
        .build_in(dir)
        .unwrap()
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

/// An engine over `store` whose providers all send to the simulator `sim`.
pub fn engine_for(sim: &SimServer, config: Config, store: Store) -> Engine {
    let config = Arc::new(config);
    let base = sim.base_url();
    let providers = Providers::from_config(&config, &|_| None, Some((&base, "test-key"))).unwrap();
    Engine::new(config, store, providers)
}

/// Creates the job that renames `OldName` over `dir/ws`.
pub async fn rename_job(engine: &Engine, dir: &Path, budget: Option<f64>) -> JobId {
    engine
        .create_job(
            "Rename `OldName` to `NewName`",
            &dir.join("ws"),
            &JobOptions::default(),
            budget,
            0,
        )
        .await
        .unwrap()
}

/// Runs one job over `dir/ws` against a fresh simulator, on the store at `db`.
pub async fn run_job(
    dir: &Path,
    scenario: Scenario,
    config: Config,
    db: &Path,
    budget: Option<f64>,
) -> JobReport {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = SimServer::start(scenario, listener).await.unwrap();
    let engine = engine_for(&sim, config, Store::open(db).await.unwrap());
    let job = rename_job(&engine, dir, budget).await;
    let report = engine.run_job(job, CancellationToken::new()).await.unwrap();
    sim.shutdown().await;
    report
}
