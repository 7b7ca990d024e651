//! Effort as a rung, learned live: on a ladder `haiku, sonnet, opus@medium,
//! opus@high`, the simulator's Opus solves generative work at medium effort
//! with fewer output tokens than at high effort, and Sonnet never solves it.
//! Once history has both Opus rungs, adaptive routing sends the class along
//! a learned path that skips sonnet and starts at `opus@medium`; the jobs'
//! output tokens and cost drop, and the report, the events and the store
//! name the rungs.
#![allow(
    clippy::unwrap_used,
    reason = "a test: a failed setup or lookup should panic"
)]

mod support;

use cadre_sim::{EffortSpec, ModelOverride, SkillSpec};
use cadre_store::Store;
use cadre_types::{EventKind, JobReport};
use support::{GenFile, run_job, scenario_builder, small_config};

const FILES: usize = 4;

fn generative_files() -> Vec<GenFile> {
    (0..FILES)
        .map(|i| GenFile {
            path: format!("gen_{i}.py"),
            complexity: "generative",
            script: &[],
        })
        .collect()
}

async fn round(
    root: &std::path::Path,
    n: u64,
    config: &cadre_config::Config,
    db: &std::path::Path,
) -> JobReport {
    let dir = root.join(format!("job{n}"));
    let files = generative_files();
    let spec = scenario_builder(&dir, &files, n, [1.0, 1.0, 1.0])
        .model(
            "claude-sonnet-4-6",
            ModelOverride::default()
                .skill(SkillSpec {
                    generative: Some(0.0),
                    ..SkillSpec::default()
                })
                .latency(0, 2),
        )
        .model(
            "claude-opus-4-7",
            ModelOverride::default()
                .skill(SkillSpec::uniform(1.0))
                .latency(0, 2)
                .effort("medium", EffortSpec::default().output_tokens_scale(0.5))
                .effort("high", EffortSpec::default().output_tokens_scale(3.0)),
        )
        .build_in(&dir)
        .unwrap();
    let report = run_job(&dir, spec, config.clone(), db, None).await;
    assert_eq!(
        report.status.as_str(),
        "completed",
        "round {n}: {}",
        report.reason
    );
    report
}

fn finals(report: &JobReport) -> Vec<String> {
    report
        .subtasks
        .iter()
        .map(|s| s.final_tier.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adaptive_routing_moves_generative_work_to_opus_at_medium_effort() {
    let root = tempfile::tempdir().unwrap();
    let db = root.path().join("cadre.db");
    let mut config = small_config();
    config.cascade.ladder = ["haiku", "sonnet", "opus@medium", "opus@high"]
        .map(String::from)
        .to_vec();
    config.routing.adaptive_min_samples = 4;
    config.routing.adaptive_prior_strength = 1.0;
    config.routing.explore_share = 0.0;
    assert!(config.problems().is_empty(), "{:?}", config.problems());

    // Round 0 (static): generative work starts at opus@high.
    let mut seed = config.clone();
    seed.routing.start_tier.generative = "opus@high".into();
    let high = round(root.path(), 0, &seed, &db).await;
    assert_eq!(finals(&high), vec!["opus@high"; FILES]);
    // Round 1 (static): from sonnet, which fails twice, up to opus@medium.
    let climb = round(root.path(), 1, &config, &db).await;
    assert_eq!(finals(&climb), vec!["opus@medium"; FILES]);

    // The store recorded each rung, and opus@high's answers were longer.
    let store = Store::open(&db).await.unwrap();
    let stats = store.rung_stats(None, "codemod").await.unwrap();
    let per_attempt = |rung: &str| {
        let rows: Vec<_> = stats.iter().filter(|r| r.rung == rung).collect();
        let attempts: u64 = rows.iter().map(|r| r.attempts).sum();
        let tokens: u64 = rows.iter().map(|r| r.output_tokens).sum();
        (attempts, tokens as f64 / attempts.max(1) as f64)
    };
    let (high_n, high_tokens) = per_attempt("opus@high");
    let (medium_n, medium_tokens) = per_attempt("opus@medium");
    assert_eq!((high_n, medium_n), (FILES as u64, FILES as u64));
    assert!(
        medium_tokens * 3.0 < high_tokens,
        "medium {medium_tokens} vs high {high_tokens} output tokens per attempt"
    );
    // opus@medium was only ever escalated into; opus@high only started at.
    assert!(
        stats
            .iter()
            .filter(|r| r.rung == "opus@medium")
            .all(|r| !r.started)
    );
    assert!(
        stats
            .iter()
            .filter(|r| r.rung == "opus@high")
            .all(|r| r.started)
    );

    // Round 2 (adaptive): the learned path skips the hopeless sonnet and
    // starts at opus@medium.
    let mut adaptive = config.clone();
    adaptive.routing.adaptive = true;
    let learned = round(root.path(), 2, &adaptive, &db).await;
    for s in &learned.subtasks {
        assert_eq!(
            (s.start_tier.as_str(), s.final_tier.as_str(), s.attempts),
            ("opus@medium", "opus@medium", 1),
            "{s:?}"
        );
    }
    let worker = |r: &JobReport| r.cost.by_role.get("worker").copied().unwrap_or(0.0);
    println!(
        "worker cost for {FILES} generative files: opus@high ${:.4}, sonnet -> opus@medium ${:.4}, learned path ${:.4}; output tokens per attempt: opus@high {high_tokens:.0}, opus@medium {medium_tokens:.0}",
        worker(&high),
        worker(&climb),
        worker(&learned)
    );
    assert!(
        worker(&learned) < worker(&high) && worker(&learned) < worker(&climb),
        "worker cost: high {} climb {} learned {}",
        worker(&high),
        worker(&climb),
        worker(&learned)
    );

    // The routed event carries the path and its estimate; the store keeps it.
    let events = store.list_events(learned.job_id, 0, 1000).await.unwrap();
    let routed: Vec<_> = events
        .iter()
        .filter(|e| e.kind == EventKind::Routed)
        .collect();
    assert_eq!(routed.len(), FILES);
    for e in &routed {
        let route = &e.data["route"];
        assert_eq!(route["path"][0], "opus@medium", "{}", e.data);
        assert!(route["solved_share"].as_f64().unwrap() > 0.9, "{}", e.data);
        assert!(route["cost_usd"].as_f64().unwrap() > 0.0, "{}", e.data);
        assert!(e.message.contains("learned path"), "{}", e.message);
    }
    let paths = store.subtask_paths(learned.job_id).await.unwrap();
    assert_eq!(paths.len(), FILES);
    assert!(
        paths
            .values()
            .all(|p| p.path[0] == "opus@medium" && !p.explored)
    );
    // The requests carried the rung's effort on the wire.
    let attempts = store.list_attempts_brief(learned.job_id).await.unwrap();
    assert!(
        attempts
            .iter()
            .filter(|a| a.tier == "opus@medium")
            .all(|a| a.effort.as_deref() == Some("medium"))
    );
}
