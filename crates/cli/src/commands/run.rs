//! `cadre run` (create a job and run it here) and `cadre resume` (continue
//! a stopped or crashed one without repeating finished model calls).

use std::process::ExitCode;

use anyhow::Result;
use cadre_core::JobOptions;

use crate::args::{ApplyArgs, Cli, ResumeArgs, RunArgs};
use crate::foreground::drive_job;
use crate::session::{Session, check_workspace, parse_job, read_rules};

/// `cadre run`.
pub(super) async fn run(cli: &Cli, args: &RunArgs) -> Result<ExitCode> {
    check_workspace(&args.job.workspace)?;
    let session = Session::open(cli).await?;
    let engine = session.engine(None)?;
    let options = JobOptions {
        files: args.job.files.clone(),
        check: args.check.clone(),
        file_check: args.file_check.clone(),
        batch: args.batch,
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
    drive_job(&engine, job, args.job.json, apply_choice(&args.apply)).await
}

/// `cadre resume`.
pub(super) async fn resume(cli: &Cli, args: &ResumeArgs) -> Result<ExitCode> {
    let session = Session::open(cli).await?;
    let engine = session.engine(None)?;
    let job = parse_job(&args.job)?;
    if let Some(budget) = args.budget {
        let status = engine.raise_budget(job, budget).await?;
        if !args.json {
            eprintln!("budget raised to ${budget:.2}; job {job} is {status}");
        }
    }
    drive_job(&engine, job, args.json, apply_choice(&args.apply)).await
}

/// `--apply` / `--branch NAME` as [`drive_job`] takes them.
fn apply_choice(args: &ApplyArgs) -> Option<Option<String>> {
    match (&args.branch, args.apply) {
        (Some(b), _) => Some(Some(b.clone())),
        (None, true) => Some(None),
        (None, false) => None,
    }
}
