//! `cadre plan`: plan a job and show each subtask's route and the cost
//! estimate, without any worker call. The plan is saved; `cadre resume` runs it.

use std::process::ExitCode;

use anyhow::Result;
use cadre_core::JobOptions;

use tokio_util::sync::CancellationToken;

use crate::args::{Cli, PlanArgs};
use crate::output;
use crate::progress::Progress;
use crate::session::stop_on_signal;
use crate::session::{Session, check_workspace, read_rules};

/// `cadre plan`.
pub(super) async fn run(cli: &Cli, args: &PlanArgs) -> Result<ExitCode> {
    check_workspace(&args.job.workspace)?;
    let session = Session::open(cli).await?;
    let engine = session.engine(None)?;
    let options = JobOptions {
        files: args.job.files.clone(),
        check: None,
        file_check: None,
        batch: false,
        require_budget_fit: args.job.require_budget_fit,
        rules: read_rules(&args.job.rules)?,
        git: None,
    };
    let job = engine
        .create_job(
            &args.job.instruction,
            &args.job.workspace,
            &options,
            args.job.budget,
            0,
        )
        .await?;
    let stop = CancellationToken::new();
    let signals = stop_on_signal(stop.clone());
    // The planner's one call can take minutes on a local model: say what is
    // happening, with a spinner and the elapsed time on a terminal.
    let progress = (!args.job.json).then(|| {
        let planner = &engine.config().roles.planner.tier;
        eprintln!(
            "job {job}: planning with the {planner} tier (interrupt: the job stays resumable)"
        );
        Progress::start(&engine, job)
    });
    let preview = engine.plan_job(job, stop).await;
    signals.abort();
    if let Some(p) = progress {
        p.finish().await;
    }
    let preview = preview?;
    if args.job.json {
        println!("{}", serde_json::to_string_pretty(&preview)?);
    } else {
        print!("{}", output::render_plan(&preview));
    }
    Ok(ExitCode::SUCCESS)
}
