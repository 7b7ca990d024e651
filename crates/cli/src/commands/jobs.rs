//! Reading jobs: `cadre jobs` (from the store, or `--server` from the
//! daemon), `cadre show`, `cadre diff` and `cadre cost`.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::{Result, anyhow, bail};
use cadre_types::JobReport;
use reqwest::Method;
use serde_json::Value;

use crate::args::{Cli, ServerArg};
use crate::client::DaemonClient;
use crate::output::{self, usd};
use crate::session::{Session, parse_job};

/// `cadre jobs [--server URL]`: newest first.
pub(super) async fn list(
    cli: &Cli,
    server: &ServerArg,
    limit: u32,
    json: bool,
) -> Result<ExitCode> {
    if server.server.is_some() {
        return list_remote(cli, server, limit, json).await;
    }
    let session = Session::open(cli).await?;
    let jobs = session.store.list_jobs(None, limit).await?;
    if json {
        let rows: Vec<Value> = jobs
            .iter()
            .map(|j| {
                serde_json::json!({"job_id": j.id, "status": j.status, "instruction": j.instruction,
                    "workspace": j.workspace, "created_at": j.created_at})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", output::render_jobs(&jobs));
    }
    Ok(ExitCode::SUCCESS)
}

async fn list_remote(cli: &Cli, server: &ServerArg, limit: u32, json: bool) -> Result<ExitCode> {
    let client = DaemonClient::connect(cli, server)?;
    let page: Value = client
        .call(
            Method::GET,
            &format!("/v1/jobs?limit={}", limit.clamp(1, 200)),
            None,
        )
        .await?;
    let rows = page["data"].as_array().cloned().unwrap_or_default();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        println!("no jobs");
    }
    for row in &rows {
        let instruction = row["instruction"].as_str().unwrap_or_default();
        let short: String = instruction.chars().take(80).collect();
        println!(
            "{}  {:<12}  {}",
            row["job_id"].as_str().unwrap_or_default(),
            row["status"].as_str().unwrap_or_default(),
            short
        );
    }
    Ok(ExitCode::SUCCESS)
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
