//! `cadre submit`: queue a job on the daemon and print its id.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Result, anyhow, bail};
use reqwest::Method;
use serde_json::{Value, json};

use crate::args::{Cli, SubmitArgs};
use crate::client::DaemonClient;

/// `cadre submit`: prints the new job's id.
pub(super) async fn run(cli: &Cli, args: &SubmitArgs) -> Result<ExitCode> {
    let client = DaemonClient::connect(cli, &args.server)?;
    let body = json!({
        "instruction": args.instruction,
        "workspace": workspace_path(&args.workspace)?,
        "files": args.files,
        "check": args.check,
        "file_check": args.file_check,
        "priority": args.priority,
        "batch": args.batch,
        "budget_usd": args.budget,
    });
    let answer: Value = client.call(Method::POST, "/v1/jobs", Some(body)).await?;
    let id = answer["job_id"]
        .as_str()
        .ok_or_else(|| anyhow!("the daemon's answer has no job_id: {answer}"))?;
    println!("{id}");
    Ok(ExitCode::SUCCESS)
}

/// The workspace as the daemon should see it: canonical when it exists here
/// (the usual case: the daemon runs on this machine), else as given if absolute.
fn workspace_path(path: &Path) -> Result<String> {
    match path.canonicalize() {
        Ok(p) => Ok(p.to_string_lossy().into_owned()),
        Err(_) if path.is_absolute() => Ok(path.to_string_lossy().into_owned()),
        Err(e) => bail!("workspace {}: {e}", path.display()),
    }
}
