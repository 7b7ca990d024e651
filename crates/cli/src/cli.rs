//! Arguments and command dispatch.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use cadre_config::{Config, ConfigSources, LoadedConfig};
use cadre_core::{Engine, JobOptions, Providers};
use cadre_store::Store;
use cadre_types::{JobId, JobStatus};
use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::output;
use crate::progress::Progress;

/// cadre: large code changes carried out by a team of models.
#[derive(Debug, Parser)]
#[command(name = "cadre", version, about)]
pub struct Cli {
    /// A user config file (TOML) layered over the built-in defaults [env: CADRE_CONFIG].
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Override one config value, e.g. -c limits.max_concurrency=8 (repeatable).
    #[arg(short = 'c', global = true, value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// The SQLite store (default: store.path, else the user data dir).
    #[arg(long, global = true, env = "CADRE_DB", value_name = "FILE")]
    db: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one job in the foreground: plan, fan out, validate, escalate, integrate, review.
    Run(RunArgs),
    /// Plan a job and show each subtask's route and the cost estimate; no worker calls.
    Plan(PlanArgs),
    /// Run the bundled example against the simulated provider (no key, no network).
    Demo {
        /// Print only the final report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List jobs, newest first.
    Jobs {
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// JSON output.
        #[arg(long)]
        json: bool,
        /// Ask this daemon instead of reading the store.
        #[command(flatten)]
        server: crate::remote::ServerArg,
    },
    /// Show a job's report.
    Show {
        /// The job id.
        job: String,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Print a job's patch as a unified diff.
    Diff {
        /// The job id.
        job: String,
    },
    /// Write a finished job's changes to its workspace (or to a new git branch).
    Apply {
        /// The job id.
        job: String,
        /// Commit to this new branch instead of writing the working tree.
        #[arg(long)]
        branch: Option<String>,
        /// JSON output.
        #[arg(long)]
        json: bool,
        /// Ask this daemon to apply it instead of writing from this process.
        #[command(flatten)]
        server: crate::remote::ServerArg,
    },
    /// Run the daemon: a durable job queue behind an HTTP API (until SIGINT/SIGTERM).
    Daemon(crate::remote::DaemonArgs),
    /// Queue a job on the daemon and print its id.
    Submit(crate::remote::SubmitArgs),
    /// Show a job's report, from the daemon.
    Status {
        /// The job id.
        job: String,
        /// JSON output (the same report as `cadre run --json`).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: crate::remote::ServerArg,
    },
    /// Stream a job's events from the daemon until it ends; exit 0 completed, 2 needs_human, 1 otherwise.
    Watch {
        /// The job id.
        job: String,
        /// Print each event as a JSON line.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: crate::remote::ServerArg,
    },
    /// Cancel a job on the daemon: dispatch stops and every subtask ends.
    Cancel {
        /// The job id.
        job: String,
        #[command(flatten)]
        server: crate::remote::ServerArg,
    },
    /// Continue a stopped or crashed job without repeating finished model calls.
    Resume(ResumeArgs),
    /// A job's cost: by tier, role and model, cache and batch savings, per subtask.
    Cost {
        /// The job id.
        job: String,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Across jobs: success rate per (complexity, error cost, tier), cost per accepted subtask, escalation rate.
    Stats {
        /// Only attempts since this date (YYYY-MM-DD, UTC).
        #[arg(long)]
        since: Option<String>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Routing that learns: replay policies over real outcomes, explain a plan's start tiers.
    Routing {
        #[command(subcommand)]
        command: crate::routing::RoutingCommand,
    },
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// The simulated model provider.
    Sim {
        #[command(subcommand)]
        command: SimCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the resolved configuration and where each value came from.
    Show,
}

#[derive(Debug, Subcommand)]
enum SimCommand {
    /// Serve the simulated Anthropic API until interrupted.
    Serve {
        /// The scenario file (TOML).
        #[arg(long)]
        scenario: PathBuf,
        /// Listen address; port 0 picks a free port (the address is printed).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
    },
}

#[derive(Debug, Args)]
struct JobArgs {
    /// What to do, in one sentence.
    instruction: String,
    /// The workspace root.
    #[arg(long)]
    workspace: PathBuf,
    /// Only files matching these globs (repeatable).
    #[arg(long = "files", value_name = "GLOB")]
    files: Vec<String>,
    /// Cost cap in USD.
    #[arg(long)]
    budget: Option<f64>,
    /// JSON output only.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct ApplyArgs {
    /// Write the changes to the workspace when the job finishes.
    #[arg(long, conflicts_with = "branch")]
    apply: bool,
    /// Commit the changes to this new git branch when the job finishes.
    #[arg(long)]
    branch: Option<String>,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    job: JobArgs,
    /// Integration check run on the combined change (e.g. "cargo check").
    #[arg(long)]
    check: Option<String>,
    /// Per-file check; {file} is replaced by the candidate file (e.g. "python -m py_compile {file}").
    #[arg(long = "file-check")]
    file_check: Option<String>,
    /// Send worker rounds as Message Batches (half price, slower).
    #[arg(long)]
    batch: bool,
    #[command(flatten)]
    apply: ApplyArgs,
}

#[derive(Debug, Args)]
struct PlanArgs {
    #[command(flatten)]
    job: JobArgs,
}

#[derive(Debug, Args)]
struct ResumeArgs {
    /// The job id.
    job: String,
    /// JSON output only.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    apply: ApplyArgs,
}

/// Everything a command needs: config, store, engine.
pub(crate) struct Session {
    pub(crate) loaded: LoadedConfig,
    pub(crate) store: Store,
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn load_config(cli: &Cli) -> Result<LoadedConfig> {
    let sources = ConfigSources::from_process_env(cli.config.clone(), cli.overrides.clone());
    cadre_config::load(&sources).map_err(|e| anyhow!("{e}"))
}

async fn open_store(cli: &Cli, config: &Config) -> Result<Store> {
    let path = match &cli.db {
        Some(p) => p.clone(),
        None => config.store.resolve_path(
            env_var("HOME").as_deref(),
            env_var("XDG_DATA_HOME").as_deref(),
        ),
    };
    Store::open(&path)
        .await
        .with_context(|| format!("opening the store at {}", path.display()))
}

async fn context(cli: &Cli) -> Result<Session> {
    let loaded = load_config(cli)?;
    let store = open_store(cli, &loaded.config).await?;
    Ok(Session { loaded, store })
}

pub(crate) fn engine_with(ctx: &Session, override_base: Option<(&str, &str)>) -> Result<Engine> {
    let config = Arc::new(ctx.loaded.config.clone());
    let providers = Providers::from_config(&config, &env_var, override_base)?;
    Ok(Engine::new(config, ctx.store.clone(), providers))
}

fn parse_job(id: &str) -> Result<JobId> {
    id.parse().map_err(|e| anyhow!("{e}"))
}

/// Stops the job on the first SIGINT/SIGTERM (leaving it resumable); the
/// returned task is aborted by the caller when the job ends.
fn stop_on_signal(stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        eprintln!(
            "\nstopping: in-flight calls are abandoned and the job stays resumable (cadre resume JOB)"
        );
        stop.cancel();
    })
}

/// Runs a job with progress and signal handling, then applies if asked.
pub(crate) async fn drive_job(
    engine: &Engine,
    job: JobId,
    json: bool,
    apply: Option<Option<String>>,
) -> Result<ExitCode> {
    let stop = CancellationToken::new();
    let signals = stop_on_signal(stop.clone());
    let progress = (!json).then(|| Progress::start(engine, job));
    if !json {
        eprintln!("job {job}");
    }
    let result = engine.run_job(job, stop.clone()).await;
    signals.abort();
    if let Some(p) = progress {
        p.finish().await;
    }
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            if let Ok(report) = engine.report(job).await {
                if json {
                    println!("{}", serde_json::to_string_pretty(&report)?);
                } else {
                    print!("{}", output::render_report(&report));
                }
            }
            return Err(e.into());
        }
    };
    if stop.is_cancelled() {
        eprintln!("job {job} stopped; continue it with: cadre resume {job}");
        if json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        return Ok(ExitCode::from(130));
    }
    let patch = engine.store().job_patch(job).await?.unwrap_or_default();
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", output::render_report(&report));
        print!("{}", output::render_diff_summary(&patch));
    }
    if let Some(branch) = apply
        && matches!(report.status, JobStatus::Completed | JobStatus::NeedsHuman)
    {
        let outcome = engine.apply(job, branch).await?;
        if !json {
            print!("{}", output::render_apply(&outcome));
        }
    }
    Ok(match report.status {
        JobStatus::Completed => ExitCode::SUCCESS,
        JobStatus::NeedsHuman => ExitCode::from(2),
        _ => ExitCode::FAILURE,
    })
}

fn apply_choice(args: &ApplyArgs) -> Option<Option<String>> {
    match (&args.branch, args.apply) {
        (Some(b), _) => Some(Some(b.clone())),
        (None, true) => Some(None),
        (None, false) => None,
    }
}

fn job_options(args: &JobArgs, check: Option<String>, file_check: Option<String>) -> JobOptions {
    JobOptions {
        files: args.files.clone(),
        check,
        file_check,
        batch: false,
    }
}

fn check_workspace(path: &Path) -> Result<()> {
    if !path.is_dir() {
        bail!("workspace {} is not a directory", path.display());
    }
    Ok(())
}

/// Dispatches a parsed command line.
pub async fn run(cli: Cli) -> Result<ExitCode> {
    init_tracing();
    match &cli.command {
        Command::Run(args) => {
            check_workspace(&args.job.workspace)?;
            let ctx = context(&cli).await?;
            let engine = engine_with(&ctx, None)?;
            let mut options = job_options(&args.job, args.check.clone(), args.file_check.clone());
            options.batch = args.batch;
            let job = engine
                .create_job(
                    &args.job.instruction,
                    &args.job.workspace,
                    &options,
                    args.job.budget,
                    0,
                )
                .await?;
            drive_job(&engine, job, args.job.json, apply_choice(&args.apply)).await
        }
        Command::Plan(args) => {
            check_workspace(&args.job.workspace)?;
            let ctx = context(&cli).await?;
            let engine = engine_with(&ctx, None)?;
            let options = job_options(&args.job, None, None);
            let job = engine
                .create_job(
                    &args.job.instruction,
                    &args.job.workspace,
                    &options,
                    args.job.budget,
                    0,
                )
                .await?;
            let stop = CancellationToken::new();
            let signals = stop_on_signal(stop.clone());
            let preview = engine.plan_job(job, stop).await;
            signals.abort();
            let preview = preview?;
            if args.job.json {
                println!("{}", serde_json::to_string_pretty(&preview)?);
            } else {
                print!("{}", output::render_plan(&preview));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { json } => {
            let ctx = context(&cli).await?;
            crate::demo::run(&ctx, *json).await
        }
        Command::Jobs {
            limit,
            json,
            server,
        } if server.server.is_some() => {
            let listen = load_config(&cli)?.config.daemon.listen;
            crate::remote::jobs(server, &listen, *limit, *json).await
        }
        Command::Jobs { limit, json, .. } => {
            let ctx = context(&cli).await?;
            let jobs = ctx.store.list_jobs(None, *limit).await?;
            if *json {
                let rows: Vec<serde_json::Value> = jobs
                    .iter()
                    .map(|j| {
                        serde_json::json!({"job_id": j.id, "status": j.status, "instruction": j.instruction,
                            "workspace": j.workspace, "created_at": j.created_at})
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", output::render_jobs(&jobs));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Show { job, json } => {
            let ctx = context(&cli).await?;
            let engine = engine_for_reading(&ctx);
            let report = engine.report(parse_job(job)?).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", output::render_report(&report));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Diff { job } => {
            let ctx = context(&cli).await?;
            let id = parse_job(job)?;
            let record = ctx
                .store
                .get_job_brief(id)
                .await?
                .ok_or_else(|| anyhow!("job {id} not found"))?;
            match ctx.store.job_patch(id).await? {
                Some(p) => print!("{p}"),
                None => bail!("job {id} has no patch yet (status {})", record.status),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Apply {
            job,
            branch,
            json,
            server,
        } if server.server.is_some() => {
            let listen = load_config(&cli)?.config.daemon.listen;
            crate::remote::apply(server, &listen, job, branch.as_deref(), *json).await
        }
        Command::Apply {
            job, branch, json, ..
        } => {
            let ctx = context(&cli).await?;
            let engine = engine_for_reading(&ctx);
            let outcome = engine.apply(parse_job(job)?, branch.clone()).await?;
            output::print_apply(&outcome, *json)
        }
        Command::Daemon(args) => {
            let ctx = context(&cli).await?;
            crate::remote::daemon(&ctx, args).await
        }
        Command::Submit(args) => {
            let listen = load_config(&cli)?.config.daemon.listen;
            crate::remote::submit(args, &listen).await
        }
        Command::Status { job, json, server } => {
            let listen = load_config(&cli)?.config.daemon.listen;
            crate::remote::status(server, &listen, job, *json).await
        }
        Command::Watch { job, json, server } => {
            let listen = load_config(&cli)?.config.daemon.listen;
            crate::remote::watch(server, &listen, job, *json).await
        }
        Command::Cancel { job, server } => {
            let listen = load_config(&cli)?.config.daemon.listen;
            crate::remote::cancel(server, &listen, job).await
        }
        Command::Resume(args) => {
            let ctx = context(&cli).await?;
            let engine = engine_with(&ctx, None)?;
            drive_job(
                &engine,
                parse_job(&args.job)?,
                args.json,
                apply_choice(&args.apply),
            )
            .await
        }
        Command::Cost { job, json } => {
            let ctx = context(&cli).await?;
            let report = engine_for_reading(&ctx).report(parse_job(job)?).await?;
            if *json {
                let per_subtask: Vec<serde_json::Value> = report
                    .subtasks
                    .iter()
                    .map(|s| serde_json::json!({"path": s.path, "attempts": s.attempts, "status": s.status, "cost_usd": s.cost_usd}))
                    .collect();
                let doc = serde_json::json!({"job_id": report.job_id, "cost": report.cost, "tokens": report.tokens,
                    "cache_read_share": report.cache_read_share, "cache_calls": report.cache_calls, "subtasks": per_subtask});
                println!("{}", serde_json::to_string_pretty(&doc)?);
            } else {
                print!("{}", crate::ledger::render_cost(&report));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Stats { since, json } => {
            let ctx = context(&cli).await?;
            print!(
                "{}",
                crate::ledger::stats(&ctx.store, since.as_deref(), *json).await?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Routing { command } => match command {
            crate::routing::RoutingCommand::Replay(args) => {
                crate::routing::run_replay(&load_config(&cli)?.config, args)
            }
            crate::routing::RoutingCommand::Explain(args) => {
                let ctx = context(&cli).await?;
                crate::routing::run_explain(&ctx, args).await
            }
        },
        Command::Config {
            command: ConfigCommand::Show,
        } => {
            let loaded = load_config(&cli)?;
            print!("{}", loaded.render_show());
            Ok(ExitCode::SUCCESS)
        }
        Command::Sim {
            command: SimCommand::Serve { scenario, listen },
        } => serve_sim(scenario, listen).await,
    }
}

/// An engine for commands that make no model calls (no keys needed).
fn engine_for_reading(ctx: &Session) -> Engine {
    Engine::new(
        Arc::new(ctx.loaded.config.clone()),
        ctx.store.clone(),
        Providers::default(),
    )
}

async fn serve_sim(scenario: &Path, listen: &str) -> Result<ExitCode> {
    let scenario = cadre_sim::Scenario::load(scenario).map_err(|e| anyhow!("{e}"))?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let server = cadre_sim::SimServer::start(scenario, listener)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    println!("cadre sim listening on {}", server.base_url());
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    server.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CADRE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
