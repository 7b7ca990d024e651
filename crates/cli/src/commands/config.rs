//! `cadre config show`: the resolved configuration and where each value
//! came from.

use std::process::ExitCode;

use anyhow::Result;

use crate::args::Cli;
use crate::session::load_config;

/// `cadre config show`.
pub(super) fn show(cli: &Cli) -> Result<ExitCode> {
    let loaded = load_config(cli)?;
    print!("{}", loaded.render_show());
    Ok(ExitCode::SUCCESS)
}
