//! The JSON the dashboard's pages read beyond the job API: the job list's
//! status filter and progress, a job's cost timeline from the ledger, and
//! `GET /v1/stats` (the codemod tier's figures included).

use pretty_assertions::assert_eq;
use serde_json::json;

use cadre_types::Role;
use cadre_types::api::{CostTimeline, JobPage, StatsReport};

use super::common::{Served, World, cases, scenario};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_filters_by_status_and_carries_progress_costs_and_stats() {
    let files = cases("app", 3);
    let world = World::new().await.with_sim(&files, 5).await;
    let ws = world.workspace("ws", &files);
    let served = Served::daemon(world.state(world.options())).await;
    let api = &served.api;

    let id = api.submit(&ws, json!({"budget_usd": 50.0})).await;
    let report = api.wait_terminal(&id).await;
    assert_eq!(report["status"], "completed", "{report:#}");
    let total = report["cost"]["total_usd"].as_f64().unwrap();
    assert!(total > 0.0, "{report:#}");

    // The listing carries each job's progress and cost, as the report has them.
    let page: JobPage = serde_json::from_value(api.get("/v1/jobs").await.json).unwrap();
    assert_eq!(page.data.len(), 1);
    let progress = page.data[0].progress.clone().unwrap();
    assert_eq!(
        (
            progress.files,
            progress.accepted,
            progress.needs_human,
            progress.in_flight
        ),
        (3, 3, 0, 0)
    );
    assert!(
        (progress.cost_usd - total).abs() < 1e-9,
        "{progress:?} vs {total}"
    );

    // The status filter runs in the store.
    for (filter, want) in [
        ("completed", 1),
        ("queued,running", 0),
        ("active", 0),
        ("completed,failed", 1),
        ("", 1),
    ] {
        let reply = api.get(&format!("/v1/jobs?status={filter}")).await;
        assert_eq!(reply.status, 200, "{filter}: {reply:#?}");
        let n = reply.json["data"].as_array().unwrap().len();
        assert_eq!(n, want, "status={filter}");
    }
    let message = api
        .get("/v1/jobs?status=done")
        .await
        .expect_error(400, "invalid_request");
    assert!(message.contains("\"done\""), "{message}");

    // Cost over time: every call of every role, from the ledger.
    let reply = api.get(&format!("/v1/jobs/{id}/costs")).await;
    assert_eq!(reply.status, 200, "{reply:#?}");
    let timeline: CostTimeline = serde_json::from_value(reply.json).unwrap();
    let roles: std::collections::BTreeSet<Role> = timeline.data.iter().map(|p| p.role).collect();
    assert!(
        roles.contains(&Role::Planner) && roles.contains(&Role::Worker),
        "{roles:?}"
    );
    let summed: f64 = timeline.data.iter().map(|p| p.cost_usd).sum();
    assert!((summed - total).abs() < 1e-9, "{summed} vs {total}");
    assert!(timeline.data.windows(2).all(|w| w[0].at <= w[1].at));
    api.get(&format!("/v1/jobs/{}/costs", cadre_types::JobId::new()))
        .await
        .expect_error(404, "not_found");

    // `cadre stats` as JSON.
    let reply = api.get("/v1/stats").await;
    assert_eq!(reply.status, 200, "{reply:#?}");
    let stats: StatsReport = serde_json::from_value(reply.json).unwrap();
    assert_eq!(
        (stats.subtasks, stats.accepted, stats.needs_human),
        (3, 3, 0)
    );
    let attempts: u64 = stats.classes.iter().map(|c| c.attempts).sum();
    let passed: u64 = stats.classes.iter().map(|c| c.passed).sum();
    assert!(attempts >= 3 && passed == 3, "{stats:#?}");
    for class in &stats.classes {
        let rate = class.passed as f64 / class.attempts as f64;
        assert!((class.success_rate - rate).abs() < 1e-12, "{class:?}");
    }
    assert!(stats.mean_cost_per_accepted_usd > 0.0, "{stats:#?}");
    assert!(!stats.learned.is_empty(), "{stats:#?}");
    for learned in &stats.learned {
        assert!(!learned.starts.is_empty(), "{learned:#?}");
        assert!(learned.reason.starts_with(&learned.class), "{learned:#?}");
    }
    // Nothing since the future.
    let later = api.get("/v1/stats?since=99999999999").await;
    assert_eq!(later.json["subtasks"], 0, "{later:#?}");
    assert_eq!(later.json["classes"], json!([]));
    api.get("/v1/stats?since=yesterday")
        .await
        .expect_error(400, "invalid_request");
    served.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_carry_the_codemod_tiers_attempts_acceptance_and_savings() {
    let files = cases("app", 3);
    let mut world = World::new().await;
    // The simulated reviewer knows the originals: no worker prompt shows
    // it a file the codemod tier rewrote.
    let mut served_scenario = scenario(&files, 5);
    for c in &files {
        served_scenario = served_scenario.with_original(&c.path, &c.original);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    world.sim = Some(
        cadre_sim::SimServer::start(served_scenario, listener)
            .await
            .unwrap(),
    );
    let ws = world.workspace("ws", &files);
    let served = Served::daemon(world.state(world.options())).await;
    let api = &served.api;
    let rule = "id: rename\nlanguage: python\nrule:\n  pattern: UserId\nfix: AccountId\n";
    let id = api.submit(&ws, json!({"rules": [rule]})).await;
    let report = api.wait_terminal(&id).await;
    assert_eq!(report["status"], "completed", "{report:#}");
    let in_report = &report["cost"]["codemod"];
    assert_eq!(
        (&in_report["attempts"], &in_report["accepted"]),
        (&json!(3), &json!(3)),
        "{report:#}"
    );

    let stats: StatsReport = serde_json::from_value(api.get("/v1/stats").await.json).unwrap();
    let codemod = stats.codemod;
    assert_eq!((codemod.attempts, codemod.accepted), (3, 3), "{stats:#?}");
    assert!((codemod.acceptance_rate - 1.0).abs() < 1e-12);
    assert!(codemod.saved_usd > 0.0, "{codemod:?}");
    assert_eq!(in_report["saved_usd"].as_f64(), Some(codemod.saved_usd));
    let at_codemod: Vec<(u64, u64)> = stats
        .classes
        .iter()
        .filter(|c| c.tier == "codemod")
        .map(|c| (c.attempts, c.passed))
        .collect();
    assert_eq!(at_codemod, [(3, 3)]);
    let later = api.get("/v1/stats?since=99999999999").await;
    assert_eq!(later.json["codemod"]["attempts"], 0, "{later:#?}");
    served.stop().await.unwrap();
}
