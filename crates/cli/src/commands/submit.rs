//! `cadre submit`: queue a job on the daemon and print its id.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Result, bail};
use cadre_types::api::SubmitRequest;

use crate::args::{Cli, SubmitArgs};
use crate::client::DaemonClient;
use crate::session::read_rules;

/// `cadre submit`: prints the new job's id.
pub(super) async fn run(cli: &Cli, args: &SubmitArgs) -> Result<ExitCode> {
    let client = DaemonClient::connect(cli, &args.server)?;
    let request = SubmitRequest {
        instruction: args.instruction.clone(),
        workspace: workspace_path(&args.workspace)?,
        files: args.files.clone(),
        check: args.check.clone(),
        file_check: args.file_check.clone(),
        priority: args.priority,
        batch: args.batch,
        budget_usd: args.budget,
        require_budget_fit: args.require_budget_fit,
        rules: read_rules(&args.rules)?,
    };
    let answer = client.submit(&request).await?;
    println!("{}", answer.job_id);
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
