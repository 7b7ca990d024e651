//! Running a job in this process (`cadre run`, `cadre resume`, `cadre demo`):
//! live progress, stopping on a signal, the report, and the apply asked for.

use std::process::ExitCode;

use anyhow::Result;
use cadre_core::Engine;
use cadre_types::{JobId, JobStatus};
use tokio_util::sync::CancellationToken;

use crate::output;
use crate::progress::Progress;
use crate::session::stop_on_signal;

/// Runs a job with progress and signal handling, prints its report, then
/// applies it if asked: `apply` is `Some(None)` to write the working tree,
/// `Some(Some(branch))` to commit to a new branch, `None` to leave it.
///
/// Exits 0 completed, 2 needs_human, 1 otherwise, 130 when a signal stopped
/// the job (it stays resumable).
pub(crate) async fn drive_job(
    engine: &Engine,
    job: JobId,
    json: bool,
    apply: Option<Option<String>>,
) -> Result<ExitCode> {
    let stop = CancellationToken::new();
    let signals = stop_on_signal(stop.clone());
    let progress = (!json).then(|| Progress::start(engine, job));
    if !json {
        eprintln!("job {job}");
    }
    let result = engine.run_job(job, stop.clone()).await;
    signals.abort();
    if let Some(p) = progress {
        p.finish().await;
    }
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            if let Ok(report) = engine.report(job).await {
                if json {
                    println!("{}", serde_json::to_string_pretty(&report)?);
                } else {
                    print!("{}", output::render_report(&report));
                }
            }
            return Err(e.into());
        }
    };
    if stop.is_cancelled() {
        eprintln!("job {job} stopped; continue it with: cadre resume {job}");
        if json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        return Ok(ExitCode::from(130));
    }
    let patch = engine.store().job_patch(job).await?.unwrap_or_default();
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", output::render_report(&report));
        print!("{}", output::render_diff_summary(&patch));
    }
    if let Some(branch) = apply
        && matches!(report.status, JobStatus::Completed | JobStatus::NeedsHuman)
    {
        let outcome = engine.apply(job, branch).await?;
        if !json {
            print!("{}", output::render_apply(&outcome));
        }
    }
    Ok(output::job_exit_code(report.status))
}
