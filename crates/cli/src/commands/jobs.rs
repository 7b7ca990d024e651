//! Reading jobs: `cadre jobs` (from the store, or `--server` from the
//! daemon), `cadre show`, `cadre diff` and `cadre cost`.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::{Result, anyhow, bail};
use cadre_store::Store;
use cadre_types::JobReport;
use cadre_types::api::{JobListQuery, JobSummary};
use serde_json::Value;

use crate::args::{Cli, ServerArg};
use crate::client::DaemonClient;
use crate::output::{self, codemod_line, usd};
use crate::session::{Session, parse_job};

/// `cadre jobs [--server URL]`: newest first. Both ways list the same
/// [`JobSummary`] rows, as `GET /v1/jobs` answers them.
pub(super) async fn list(
    cli: &Cli,
    server: &ServerArg,
    limit: u32,
    json: bool,
) -> Result<ExitCode> {
    let jobs = if server.server.is_some() {
        let client = DaemonClient::connect(cli, server)?;
        daemon_jobs(&client, limit).await?
    } else {
        let session = Session::open(cli).await?;
        stored_jobs(&session.store, limit).await?
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&jobs)?);
    } else {
        print!("{}", output::render_jobs(&jobs));
    }
    Ok(ExitCode::SUCCESS)
}

/// The newest `limit` jobs of the store, as the daemon would list them.
async fn stored_jobs(store: &Store, limit: u32) -> Result<Vec<JobSummary>> {
    let records = store.list_jobs(None, limit).await?;
    Ok(cadre_server::job_summaries(store, &records).await?)
}

/// The first page of the daemon's jobs (at most 200).
async fn daemon_jobs(client: &DaemonClient, limit: u32) -> Result<Vec<JobSummary>> {
    let query = JobListQuery {
        cursor: None,
        limit: Some(limit.clamp(1, 200)),
    };
    Ok(client.jobs(&query).await?.data)
}

/// `cadre show JOB`: the job's report.
pub(super) async fn show(cli: &Cli, job: &str, json: bool) -> Result<ExitCode> {
    let session = Session::open(cli).await?;
    let report = session.reading_engine().report(parse_job(job)?).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", output::render_report(&report));
    }
    Ok(ExitCode::SUCCESS)
}

/// `cadre diff JOB`: the job's patch, as a unified diff.
pub(super) async fn diff(cli: &Cli, job: &str) -> Result<ExitCode> {
    let session = Session::open(cli).await?;
    let id = parse_job(job)?;
    let record = session
        .store
        .get_job_brief(id)
        .await?
        .ok_or_else(|| anyhow!("job {id} not found"))?;
    match session.store.job_patch(id).await? {
        Some(p) => print!("{p}"),
        None => bail!("job {id} has no patch yet (status {})", record.status),
    }
    Ok(ExitCode::SUCCESS)
}

/// `cadre cost JOB`: by tier, role and model, cache and batch savings, per subtask.
pub(super) async fn cost(cli: &Cli, job: &str, json: bool) -> Result<ExitCode> {
    let session = Session::open(cli).await?;
    let report = session.reading_engine().report(parse_job(job)?).await?;
    if json {
        let per_subtask: Vec<Value> = report
            .subtasks
            .iter()
            .map(|s| serde_json::json!({"path": s.path, "attempts": s.attempts, "status": s.status, "cost_usd": s.cost_usd}))
            .collect();
        let doc = serde_json::json!({"job_id": report.job_id, "cost": report.cost, "tokens": report.tokens,
            "cache_read_share": report.cache_read_share, "cache_calls": report.cache_calls, "subtasks": per_subtask});
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!("{}", render_cost(&report));
    }
    Ok(ExitCode::SUCCESS)
}

/// The cost breakdown of one job.
fn render_cost(r: &JobReport) -> String {
    let c = &r.cost;
    let mut out = String::new();
    let _ = writeln!(out, "job {}  {}", r.job_id, r.status);
    let _ = writeln!(
        out,
        "total {}   all on the top tier {}   saved vs top tier {}",
        usd(c.total_usd),
        usd(c.all_top_tier_usd),
        usd(c.all_top_tier_usd - c.total_usd)
    );
    let _ = writeln!(
        out,
        "cache: saved {}, read share {:.1}%, calls wrote {} / read {} / missed {}",
        usd(c.cache_savings_usd),
        r.cache_read_share * 100.0,
        r.cache_calls.wrote,
        r.cache_calls.read,
        r.cache_calls.missed
    );
    if let Some(line) = codemod_line(&c.codemod) {
        let _ = writeln!(out, "{line}");
    }
    if c.batch_usd > 0.0 {
        let _ = writeln!(
            out,
            "batch: spent {}, discount saved {}",
            usd(c.batch_usd),
            usd(c.batch_savings_usd)
        );
    }
    if let Some(b) = c.budget_usd {
        let _ = writeln!(
            out,
            "budget {} ({:.0}% used)",
            usd(b),
            c.total_usd / b * 100.0
        );
    }
    for (title, map) in [
        ("tier", &c.by_tier),
        ("role", &c.by_role),
        ("model", &c.by_model),
    ] {
        let _ = writeln!(out, "by {title}:");
        for (k, v) in map {
            let _ = writeln!(out, "  {k:<24} {:>10}", usd(*v));
        }
    }
    let _ = writeln!(out, "per subtask (failed attempts included):");
    let mut rows: Vec<_> = r.subtasks.iter().collect();
    rows.sort_by(|a, b| b.cost_usd.total_cmp(&a.cost_usd));
    for s in rows {
        let _ = writeln!(
            out,
            "  {:>10}  {:>2} attempt(s)  {:<11}  {}",
            usd(s.cost_usd),
            s.attempts,
            s.status.as_str(),
            s.path
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use cadre_config::Config;
    use cadre_core::{Engine, JobOptions, Providers};
    use cadre_server::{AppState, DaemonOptions};
    use pretty_assertions::assert_eq;

    use super::*;

    /// `cadre jobs --json` printed 5 fields from the store but 13 through
    /// `--server`: both now list the daemon's rows.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs_from_the_store_and_from_the_daemon_are_the_same_rows() {
        let dir = tempfile::tempdir().unwrap();
        let workspace = dir.path().join("ws");
        std::fs::create_dir_all(&workspace).unwrap();
        std::fs::write(workspace.join("a.py"), "x = 1\n").unwrap();
        let config = Config::default_embedded().unwrap();
        let store = Store::open(&dir.path().join("cadre.db")).await.unwrap();
        let engine = Engine::new(
            Arc::new(config.clone()),
            store.clone(),
            Providers::default(),
        );
        for (instruction, budget, priority) in [("Rename a", None, 0), ("Rename b", Some(1.5), 3)] {
            engine
                .create_job(
                    instruction,
                    &workspace,
                    &JobOptions::default(),
                    budget,
                    priority,
                )
                .await
                .unwrap();
        }

        let mut options = DaemonOptions::from_config(&config.daemon);
        options.allowed_roots = vec![dir.path().to_owned()];
        let state = AppState::new(&config, store.clone(), Providers::default(), options).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server =
            tokio::spawn(async move { axum::serve(listener, cadre_server::app(state)).await });
        let client = DaemonClient::new(Some(&addr.to_string()), "unused").unwrap();

        let stored = stored_jobs(&store, 20).await.unwrap();
        assert_eq!(stored.len(), 2);
        assert_eq!(stored[0].instruction, "Rename b");
        assert_eq!(stored[0].budget_usd, Some(1.5));
        assert_eq!(daemon_jobs(&client, 20).await.unwrap(), stored);
        assert_eq!(daemon_jobs(&client, 1).await.unwrap(), stored[..1].to_vec());
        server.abort();
    }
}
