//! `cadre sim serve`: the simulated Anthropic API, until interrupted.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};

use crate::session::termination;

/// `cadre sim serve`: prints the address it listens on, then serves
/// `scenario` until SIGINT/SIGTERM.
pub(super) async fn serve(scenario: &Path, listen: &str) -> Result<ExitCode> {
    let scenario = cadre_sim::Scenario::load(scenario).map_err(|e| anyhow!("{e}"))?;
    let listener = cadre_sim::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let server = cadre_sim::SimServer::start(scenario, listener)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    println!("cadre sim listening on {}", server.base_url());
    let _ = std::io::stdout().flush();
    termination().await;
    server.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
