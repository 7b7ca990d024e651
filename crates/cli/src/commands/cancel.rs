//! `cadre cancel JOB`: ask the daemon to stop a job; dispatch stops and every
//! subtask ends.

use std::process::ExitCode;

use anyhow::Result;
use reqwest::Method;
use serde_json::Value;

use crate::args::{Cli, ServerArg};
use crate::client::DaemonClient;

/// `cadre cancel JOB`.
pub(super) async fn run(cli: &Cli, server: &ServerArg, job: &str) -> Result<ExitCode> {
    let client = DaemonClient::connect(cli, server)?;
    let answer: Value = client
        .call(Method::POST, &format!("/v1/jobs/{job}/cancel"), None)
        .await?;
    let status = answer["status"].as_str().unwrap_or("unknown");
    if answer["cancel_requested"] == true {
        println!("cancel requested for job {job} (status {status})");
    } else {
        println!("job {job} had already ended (status {status})");
    }
    Ok(ExitCode::SUCCESS)
}
