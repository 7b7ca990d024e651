//! `cadre status JOB`: a job's report, from the daemon.

use std::process::ExitCode;

use anyhow::{Context, Result};
use cadre_types::JobReport;
use reqwest::Method;
use serde_json::Value;

use crate::args::{Cli, ServerArg};
use crate::client::DaemonClient;
use crate::output;

/// `cadre status JOB`: the job's report.
pub(super) async fn run(cli: &Cli, server: &ServerArg, job: &str, json: bool) -> Result<ExitCode> {
    let client = DaemonClient::connect(cli, server)?;
    let report: Value = client
        .call(Method::GET, &format!("/v1/jobs/{job}"), None)
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let report: JobReport = serde_json::from_value(report)
            .context("the daemon's report has an unexpected shape")?;
        print!("{}", output::render_report(&report));
    }
    Ok(ExitCode::SUCCESS)
}
