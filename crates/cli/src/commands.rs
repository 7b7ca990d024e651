//! One module per command (or family of commands), and [`run()`], which
//! dispatches a parsed command line to them.
//!
//! Command modules depend on the shared layers (`session`, `client`,
//! `foreground`, `output`, `progress`), never on each other.

mod apply;
mod cancel;
mod config;
mod daemon;
mod demo;
mod doctor;
mod jobs;
mod plan;
mod routing;
mod run;
mod sim;
mod stats;
mod status;
mod submit;
mod watch;

use std::process::ExitCode;

use anyhow::Result;

use crate::args::{Cli, Command, ConfigCommand, RoutingCommand, SimCommand};

/// Runs the command `cli` names; the exit code is the command's.
pub(crate) async fn run(cli: &Cli) -> Result<ExitCode> {
    match &cli.command {
        Command::Run(args) => run::run(cli, args).await,
        Command::Resume(args) => run::resume(cli, args).await,
        Command::Plan(args) => plan::run(cli, args).await,
        Command::Demo { json } => demo::run(cli, *json).await,
        Command::Jobs {
            limit,
            json,
            server,
        } => jobs::list(cli, server, *limit, *json).await,
        Command::Show { job, json } => jobs::show(cli, job, *json).await,
        Command::Diff { job } => jobs::diff(cli, job).await,
        Command::Cost { job, json } => jobs::cost(cli, job, *json).await,
        Command::Apply {
            job,
            branch,
            json,
            server,
        } => apply::run(cli, server, job, branch.as_deref(), *json).await,
        Command::Daemon(args) => daemon::run(cli, args).await,
        Command::Submit(args) => submit::run(cli, args).await,
        Command::Status { job, json, server } => status::run(cli, server, job, *json).await,
        Command::Watch { job, json, server } => watch::run(cli, server, job, *json).await,
        Command::Cancel { job, server } => cancel::run(cli, server, job).await,
        Command::Stats { since, json } => stats::run(cli, since.as_deref(), *json).await,
        Command::Routing { command } => match command {
            RoutingCommand::Replay(args) => routing::replay::run(cli, args),
            RoutingCommand::Explain(args) => routing::explain::run(cli, args).await,
        },
        Command::Config {
            command: ConfigCommand::Show,
        } => config::show(cli),
        Command::Doctor { json } => doctor::run(cli, *json).await,
        Command::Sim {
            command: SimCommand::Serve { scenario, listen },
        } => sim::serve(scenario, listen).await,
    }
}
