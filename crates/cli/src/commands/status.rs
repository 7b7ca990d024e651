//! `cadre status JOB`: a job's report, from the daemon.

use std::process::ExitCode;

use anyhow::Result;

use crate::args::{Cli, ServerArg};
use crate::client::DaemonClient;
use crate::output;

/// `cadre status JOB`: the job's report (`--json`: as `cadre run --json`
/// prints it).
pub(super) async fn run(cli: &Cli, server: &ServerArg, job: &str, json: bool) -> Result<ExitCode> {
    let client = DaemonClient::connect(cli, server)?;
    let report = client.report(job).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", output::render_report(&report));
    }
    Ok(ExitCode::SUCCESS)
}
