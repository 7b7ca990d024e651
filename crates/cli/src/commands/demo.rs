//! `cadre demo`: the bundled example against the in-process simulator.

use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};
use cadre_core::JobOptions;
use include_dir::{Dir, include_dir};

use crate::args::Cli;
use crate::foreground::drive_job;
use crate::session::Session;

/// The example workspace, its scenario and its instruction, embedded at build time.
static DEMO: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../../examples/demo");

/// The key the in-process simulator accepts; it never leaves this process.
const SIM_KEY: &str = "sim-demo-key";

fn demo_file(path: &str) -> Result<&'static str> {
    DEMO.get_file(path)
        .and_then(|f| f.contents_utf8())
        .ok_or_else(|| anyhow!("the bundled demo lacks {path}"))
}

/// Copies the example to a temporary folder, starts the simulator on
/// loopback, runs the job and prints the report and a diff summary.
pub(super) async fn run(cli: &Cli, json: bool) -> Result<ExitCode> {
    let session = Session::open(cli).await?;
    let instruction = demo_file("instruction.txt")?.trim().to_owned();
    let scenario_text = demo_file("scenario.toml")?;
    let root = tempfile::Builder::new()
        .prefix("cadre-demo-")
        .tempdir()
        .context("creating a temp folder")?
        .keep();
    DEMO.extract(&root)
        .with_context(|| format!("copying the demo to {}", root.display()))?;
    let workspace = root.join("workspace");
    let scenario = cadre_sim::Scenario::from_toml_str(scenario_text, &root)
        .map_err(|e| anyhow!("demo scenario: {e}"))?;
    let listener = cadre_sim::bind("127.0.0.1:0")
        .await
        .context("binding the simulator")?;
    let sim = cadre_sim::SimServer::start(scenario, listener)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let base = sim.base_url();
    if !json {
        eprintln!("demo workspace: {}", workspace.display());
        eprintln!("simulated provider: {base}");
        eprintln!("instruction: {instruction}");
    }
    let engine = session.engine(Some((&base, SIM_KEY)))?;
    let job = engine
        .create_job(&instruction, &workspace, &JobOptions::default(), None, 0)
        .await?;
    let code = drive_job(&engine, job, json, None).await;
    sim.shutdown().await;
    if !json {
        eprintln!("inspect it: cadre show {job} | cadre diff {job} | cadre apply {job}");
    }
    code
}
