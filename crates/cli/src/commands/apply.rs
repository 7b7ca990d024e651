//! `cadre apply JOB [--branch NAME] [--server URL]`: write a finished job's
//! changes to its workspace, or commit them to a new git branch; from this
//! process, or by asking the daemon. Exits 3 when some files were left alone.

use std::process::ExitCode;

use anyhow::Result;
use cadre_types::api::ApplyRequest;

use crate::args::{Cli, ServerArg};
use crate::client::DaemonClient;
use crate::output;
use crate::session::{Session, parse_job};

/// `cadre apply`.
pub(super) async fn run(
    cli: &Cli,
    server: &ServerArg,
    job: &str,
    branch: Option<&str>,
    json: bool,
) -> Result<ExitCode> {
    let outcome = if server.server.is_some() {
        let client = DaemonClient::connect(cli, server)?;
        let request = ApplyRequest {
            branch: branch.map(str::to_owned),
        };
        client.apply(job, &request).await?
    } else {
        let session = Session::open(cli).await?;
        session
            .reading_engine()
            .apply(parse_job(job)?, branch.map(str::to_owned))
            .await?
    };
    output::print_apply(&outcome, json)
}
