//! `cadre routing explain`: plan a job and show each subtask's static and
//! learned start rung, the path of rungs history supports for its class
//! (what adaptive routing follows), and why.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{Result, bail};
use cadre_core::learn::{LiveDecision, explain_start, learned_path, routed::attempt_rows};
use cadre_core::{Engine, JobOptions};
use cadre_types::{Complexity, ErrorCost, JobId, SubtaskStatus};
use serde::Serialize;

use super::{emit, render_table};
use crate::args::{Cli, ExplainArgs};
use crate::session::Session;

/// `cadre routing explain`.
pub(crate) async fn run(cli: &Cli, args: &ExplainArgs) -> Result<ExitCode> {
    let session = Session::open(cli).await?;
    if !args.workspace.is_dir() {
        bail!("workspace {} is not a directory", args.workspace.display());
    }
    let engine = session.engine(None)?;
    let explanation = explain_plan(&engine, args).await?;
    if args.json {
        emit(&format!(
            "{}\n",
            serde_json::to_string_pretty(&explanation)?
        ))?;
    } else {
        emit(&render_explain(&explanation))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// One subtask under `cadre routing explain`.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct ExplainedRoute {
    path: String,
    complexity: Complexity,
    error_cost: ErrorCost,
    language: String,
    /// What the engine's router chose (path rules and context included).
    planned_tier: String,
    planned_reason: String,
    /// The static rule for the class (complexity and error cost only).
    static_tier: String,
    /// What history recommends, when there is enough of it.
    learned_tier: Option<String>,
    learned_reason: String,
    /// The path of rungs history supports for the class (what adaptive
    /// routing follows, unless the subtask explores).
    learned_path: Option<Vec<String>>,
    /// Its expected solved share and cost, against the cascade and the top
    /// rung alone, or why there is none.
    path_reason: String,
    /// The path the planned subtask was given, when routing was adaptive.
    planned_path: Option<Vec<String>>,
}

/// The output of `cadre routing explain`.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Explanation {
    job_id: JobId,
    adaptive: bool,
    min_samples: u32,
    history_attempts: u64,
    routes: Vec<ExplainedRoute>,
}

/// Plans the instruction with `engine` and explains each subtask's start.
pub(crate) async fn explain_plan(engine: &Engine, args: &ExplainArgs) -> Result<Explanation> {
    let options = JobOptions {
        files: args.files.clone(),
        ..JobOptions::default()
    };
    let job = engine
        .create_job(&args.instruction, &args.workspace, &options, None, 0)
        .await?;
    let preview = engine
        .plan_job(job, tokio_util::sync::CancellationToken::new())
        .await?;
    let store = engine.store();
    let subtasks = store.list_subtasks(job).await?;
    let languages: BTreeMap<&str, &str> = subtasks
        .iter()
        .map(|s| (s.path.as_str(), s.language.as_str()))
        .collect();
    let rung_stats = store.rung_stats(None, cadre_config::CODEMOD_TIER).await?;
    let stats = attempt_rows(&rung_stats);
    let planned_paths = store.subtask_paths(job).await?;
    let ids: BTreeMap<&str, cadre_types::SubtaskId> =
        subtasks.iter().map(|s| (s.path.as_str(), s.id)).collect();
    let config = engine.config();
    let mut routes = Vec::new();
    for route in preview
        .routes
        .iter()
        .filter(|r| r.status != SubtaskStatus::Skipped)
    {
        let language = languages
            .get(route.path.as_str())
            .copied()
            .unwrap_or("other");
        let decision: LiveDecision =
            explain_start(config, &stats, route.complexity, route.error_cost, language);
        let (path, path_reason) = match learned_path(
            config,
            &rung_stats,
            route.complexity,
            route.error_cost,
            language,
            0,
            None,
        ) {
            Ok(routed) => (Some(routed.path.clone()), routed.reason),
            Err(why) => (None, why),
        };
        let planned_path = ids
            .get(route.path.as_str())
            .and_then(|id| planned_paths.get(id))
            .map(|p| p.path.clone());
        routes.push(ExplainedRoute {
            path: route.path.clone(),
            complexity: route.complexity,
            error_cost: route.error_cost,
            language: language.to_owned(),
            planned_tier: route.start_tier.clone(),
            planned_reason: route.reason.clone(),
            static_tier: decision.static_tier.clone(),
            learned_tier: decision.learned.as_ref().map(|l| l.tier.clone()),
            learned_reason: decision.reason,
            learned_path: path,
            path_reason,
            planned_path,
        });
    }
    Ok(Explanation {
        job_id: job,
        adaptive: config.routing.adaptive,
        min_samples: config.routing.adaptive_min_samples,
        history_attempts: stats.iter().map(|s| s.attempts).sum(),
        routes,
    })
}

/// The explanation as text for people.
pub(crate) fn render_explain(explanation: &Explanation) -> String {
    let mut out = format!(
        "history: {} finished worker attempts; learned routing needs {} at a class's static tier; routing.adaptive = {}\n\n",
        explanation.history_attempts, explanation.min_samples, explanation.adaptive
    );
    let mut rows = vec![
        [
            "path",
            "class",
            "planned",
            "static",
            "learned start",
            "learned path",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for r in &explanation.routes {
        rows.push(vec![
            r.path.clone(),
            format!("{}/{}/{}", r.complexity, r.error_cost, r.language),
            r.planned_tier.clone(),
            r.static_tier.clone(),
            r.learned_tier.clone().unwrap_or_else(|| "-".to_owned()),
            r.learned_path
                .as_ref()
                .map_or_else(|| "-".to_owned(), |p| p.join(" -> ")),
        ]);
    }
    out.push_str(&render_table(&rows));
    out.push_str("\nwhy:\n");
    for r in &explanation.routes {
        out.push_str(&format!(
            "  {}\n    planned: {}\n    learned start: {}\n    learned path: {}\n",
            r.path, r.planned_reason, r.learned_reason, r.path_reason
        ));
        if let Some(path) = &r.planned_path {
            out.push_str(&format!("    routed along: {}\n", path.join(" -> ")));
        }
    }
    out.push_str(&format!(
        "\nthe plan is saved as job {id}; run it with: cadre resume {id}\n",
        id = explanation.job_id
    ));
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use cadre_config::Config;
    use cadre_core::Providers;
    use cadre_store::Store;
    use tokio_util::sync::CancellationToken;

    use super::*;

    fn config() -> Config {
        Config::default_embedded().unwrap()
    }

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy_dir(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn routing_explain_shows_static_then_learned_starts() {
        let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/demo");
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&demo, dir.path());
        let scenario_text = std::fs::read_to_string(dir.path().join("scenario.toml")).unwrap();
        let scenario = cadre_sim::Scenario::from_toml_str(&scenario_text, dir.path()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sim = cadre_sim::SimServer::start(scenario, listener)
            .await
            .unwrap();
        let base = sim.base_url();
        let mut config = config();
        config.routing.adaptive_min_samples = 1;
        let config = Arc::new(config);
        let store = Store::open(&dir.path().join("cadre.db")).await.unwrap();
        let providers =
            Providers::from_config(&config, &|_: &str| None, Some((&base, "sim-key"))).unwrap();
        let engine = Engine::new(config, store, providers);
        let instruction = std::fs::read_to_string(dir.path().join("instruction.txt")).unwrap();
        let args = ExplainArgs {
            instruction: instruction.trim().to_owned(),
            workspace: dir.path().join("workspace"),
            files: Vec::new(),
            json: false,
        };

        // No history: every learned start is "-", with the sample count.
        let before = explain_plan(&engine, &args).await.unwrap();
        assert!(!before.routes.is_empty());
        assert_eq!(before.history_attempts, 0);
        for r in &before.routes {
            assert_eq!(r.learned_tier, None, "{r:?}");
            assert!(
                r.learned_reason.contains("has 0 of 1 samples needed"),
                "{r:?}"
            );
        }
        let text = render_explain(&before);
        assert!(text.contains("path"), "{text}");
        assert!(text.contains(&format!("cadre resume {}", before.job_id)));

        // Run the planned job: its attempts become history.
        engine
            .run_job(before.job_id, CancellationToken::new())
            .await
            .unwrap();
        let after = explain_plan(&engine, &args).await.unwrap();
        assert!(after.history_attempts > 0);
        let learned: Vec<&ExplainedRoute> = after
            .routes
            .iter()
            .filter(|r| r.learned_tier.is_some())
            .collect();
        assert!(!learned.is_empty(), "{after:?}");
        for r in learned {
            assert!(r.learned_reason.contains("-> start"), "{r:?}");
            assert!(r.learned_reason.contains(" p="), "{r:?}");
            // Either a path with its comparison, or why there is none.
            match &r.learned_path {
                Some(path) => {
                    assert!(!path.is_empty(), "{r:?}");
                    assert!(r.path_reason.contains("top alone"), "{r:?}");
                }
                None => assert!(r.path_reason.contains("no learned path: "), "{r:?}"),
            }
        }
        let text = render_explain(&after);
        assert!(text.contains("learned path: "), "{text}");
        let json = serde_json::to_value(&after).unwrap();
        assert!(json["routes"][0]["static_tier"].is_string());
        sim.shutdown().await;
    }
}
