//! `cadre cancel JOB`: ask the daemon to stop a job; dispatch stops and every
//! subtask ends.

use std::process::ExitCode;

use anyhow::Result;

use crate::args::{Cli, ServerArg};
use crate::client::DaemonClient;

/// `cadre cancel JOB`.
pub(super) async fn run(cli: &Cli, server: &ServerArg, job: &str) -> Result<ExitCode> {
    let client = DaemonClient::connect(cli, server)?;
    let answer = client.cancel(job).await?;
    if answer.cancel_requested {
        println!("cancel requested for job {job} (status {})", answer.status);
    } else {
        println!("job {job} had already ended (status {})", answer.status);
    }
    Ok(ExitCode::SUCCESS)
}
