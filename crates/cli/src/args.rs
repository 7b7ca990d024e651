//! The command line as clap types: every command, its flags and their help
//! text, and the environment variables that stand in for flags. Nothing here
//! runs anything; `commands` dispatches on [`Command`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Environment variable naming the daemon's URL (`--server`).
pub(crate) const SERVER_ENV: &str = "CADRE_SERVER";
/// Environment variable holding the bearer token (daemon and clients).
pub(crate) const TOKEN_ENV: &str = "CADRE_TOKEN";

/// cadre: large code changes carried out by a team of models.
#[derive(Debug, Parser)]
#[command(name = "cadre", version, about)]
pub(crate) struct Cli {
    /// A user config file (TOML) layered over the built-in defaults [env: CADRE_CONFIG].
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Override one config value, e.g. -c limits.max_concurrency=8 (repeatable).
    #[arg(short = 'c', global = true, value_name = "KEY=VALUE")]
    pub(crate) overrides: Vec<String>,
    /// The store: a SQLite file (a path or sqlite://PATH) or a PostgreSQL URL
    /// (postgres://...) for several daemons (default: store.url, else store.path, else the
    /// user data dir).
    #[arg(long, global = true, env = "CADRE_DB", value_name = "FILE|URL")]
    pub(crate) db: Option<String>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
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
        server: ServerArg,
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
        server: ServerArg,
    },
    /// Run the daemon: a durable job queue behind an HTTP API (until SIGINT/SIGTERM).
    Daemon(DaemonArgs),
    /// Queue a job on the daemon and print its id.
    Submit(SubmitArgs),
    /// Show a job's report, from the daemon.
    Status {
        /// The job id.
        job: String,
        /// JSON output (the same report as `cadre run --json`).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Stream a job's events from the daemon until it ends; exit 0 completed, 2 needs_human, 1 otherwise.
    Watch {
        /// The job id.
        job: String,
        /// Print each event as a JSON line.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Cancel a job on the daemon: dispatch stops and every subtask ends.
    Cancel {
        /// The job id.
        job: String,
        #[command(flatten)]
        server: ServerArg,
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
        command: RoutingCommand,
    },
    /// Check each tier's server: reachable, model listed, context length,
    /// tool calling and the forced-tool modes it accepts, streaming.
    Doctor {
        /// JSON output.
        #[arg(long)]
        json: bool,
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
pub(crate) enum ConfigCommand {
    /// Print the resolved configuration and where each value came from.
    Show,
}

#[derive(Debug, Subcommand)]
pub(crate) enum SimCommand {
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
pub(crate) struct JobArgs {
    /// What to do, in one sentence.
    pub(crate) instruction: String,
    /// The workspace root.
    #[arg(long)]
    pub(crate) workspace: PathBuf,
    /// Only files matching these globs (repeatable).
    #[arg(long = "files", value_name = "GLOB")]
    pub(crate) files: Vec<String>,
    /// Cost cap in USD.
    #[arg(long)]
    pub(crate) budget: Option<f64>,
    /// Stop before any worker call when the plan's expected cost is above the budget.
    #[arg(long)]
    pub(crate) require_budget_fit: bool,
    /// An ast-grep YAML rule file the codemod tier runs first on mechanical
    /// subtasks of its language (repeatable).
    #[arg(long = "rule", value_name = "FILE.yml")]
    pub(crate) rules: Vec<PathBuf>,
    /// JSON output only.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ApplyArgs {
    /// Write the changes to the workspace when the job finishes.
    #[arg(long, conflicts_with = "branch")]
    pub(crate) apply: bool,
    /// Commit the changes to this new git branch when the job finishes.
    #[arg(long)]
    pub(crate) branch: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) job: JobArgs,
    /// Integration check run on the combined change (e.g. "cargo check").
    #[arg(long)]
    pub(crate) check: Option<String>,
    /// Per-file check; {file} is replaced by the candidate file (e.g. "python -m py_compile {file}").
    #[arg(long = "file-check")]
    pub(crate) file_check: Option<String>,
    /// Send worker rounds as Message Batches (half price, slower).
    #[arg(long)]
    pub(crate) batch: bool,
    #[command(flatten)]
    pub(crate) apply: ApplyArgs,
}

#[derive(Debug, Args)]
pub(crate) struct PlanArgs {
    #[command(flatten)]
    pub(crate) job: JobArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ResumeArgs {
    /// The job id.
    pub(crate) job: String,
    /// Raise the job's budget to this many USD first (files it did not cover run).
    #[arg(long, value_name = "USD")]
    pub(crate) budget: Option<f64>,
    /// JSON output only.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) apply: ApplyArgs,
}

/// `cadre daemon` flags.
#[derive(Debug, Args)]
pub(crate) struct DaemonArgs {
    /// Listen address (default: daemon.listen, 127.0.0.1:7878). A non-loopback
    /// address requires CADRE_TOKEN. Port 0 picks a free port (printed).
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Option<String>,
    /// A folder whose workspaces the daemon may touch (repeatable; replaces
    /// daemon.allowed_roots). Without any, every submission is refused.
    #[arg(long = "allow-root", value_name = "DIR")]
    pub(crate) allow_root: Vec<PathBuf>,
    /// Jobs run at once (default: daemon.max_jobs).
    #[arg(long, value_name = "N")]
    pub(crate) max_jobs: Option<u32>,
}

/// Where the daemon is: `--server URL` or `CADRE_SERVER`.
#[derive(Debug, Args)]
pub(crate) struct ServerArg {
    /// The daemon's URL, e.g. http://127.0.0.1:7878 (default: daemon.listen).
    #[arg(long = "server", env = SERVER_ENV, value_name = "URL")]
    pub(crate) server: Option<String>,
}

/// `cadre submit` flags.
#[derive(Debug, Args)]
pub(crate) struct SubmitArgs {
    /// What to do, in one sentence.
    pub(crate) instruction: String,
    /// The workspace root (a path on the daemon's machine, inside one of its allowed roots).
    #[arg(long, required_unless_present_any = ["repo", "git"], conflicts_with_all = ["repo", "git"])]
    pub(crate) workspace: Option<PathBuf>,
    /// Run on a checkout of this git repository instead (https://, ssh://,
    /// user@host:path, file:// or an absolute path); each daemon clones it.
    #[arg(long, value_name = "URL", conflicts_with = "git")]
    pub(crate) repo: Option<String>,
    /// The revision of --repo (or of --git's clone) to run on; the daemon
    /// resolves it to a commit. Default: HEAD.
    #[arg(long, value_name = "REV")]
    pub(crate) rev: Option<String>,
    /// Run on the current directory's git repository: its `origin` URL and
    /// its HEAD commit (which must be pushed there).
    #[arg(long)]
    pub(crate) git: bool,
    /// With --repo or --git: commit the finished change on the revision and
    /// push it to the repository as this new branch.
    #[arg(long, value_name = "NAME")]
    pub(crate) push_branch: Option<String>,
    /// Queue priority; higher runs first.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub(crate) priority: i64,
    /// Send worker rounds as message batches (cheaper, slower).
    #[arg(long)]
    pub(crate) batch: bool,
    /// Cost cap in USD.
    #[arg(long, value_name = "USD")]
    pub(crate) budget: Option<f64>,
    /// Stop before any worker call when the plan's expected cost is above the budget.
    #[arg(long)]
    pub(crate) require_budget_fit: bool,
    /// Only files matching these globs (repeatable).
    #[arg(long = "files", value_name = "GLOB")]
    pub(crate) files: Vec<String>,
    /// An ast-grep YAML rule file the codemod tier runs first on mechanical
    /// subtasks of its language (repeatable).
    #[arg(long = "rule", value_name = "FILE.yml")]
    pub(crate) rules: Vec<PathBuf>,
    /// Integration check run on the combined change (e.g. "cargo check").
    #[arg(long)]
    pub(crate) check: Option<String>,
    /// Per-file check; {file} is replaced by the candidate file.
    #[arg(long = "file-check")]
    pub(crate) file_check: Option<String>,
    #[command(flatten)]
    pub(crate) server: ServerArg,
}

/// `cadre routing ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum RoutingCommand {
    /// Replay routing policies over a CSV of real per-task outcomes.
    Replay(ReplayArgs),
    /// Plan a job and show each subtask's static and learned start tier, and why.
    Explain(ExplainArgs),
}

/// `cadre routing replay`.
#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    /// The outcome table: task_id, optional class, per model `<model>` (solved
    /// 0/1 or a probability) and `<model>__cost_usd` (or `__cost_usd_list`, or
    /// `__input_tokens` + `__output_tokens`).
    #[arg(long, value_name = "FILE.csv")]
    pub(crate) outcomes: PathBuf,
    // A plain attribute, not a doc comment: rustdoc would read `<tier>` as an HTML tag.
    #[arg(
        long = "policy",
        value_name = "NAME",
        help = "A policy: always:<tier>, static, cascade, learned, path, oracle (repeatable; default: all)"
    )]
    pub(crate) policies: Vec<String>,
    /// Map a model column to a tier (or to `none`); default: the tier whose
    /// name the column contains (repeatable).
    #[arg(long = "map", value_name = "COLUMN=TIER")]
    pub(crate) maps: Vec<String>,
    /// Attempts at a tier before escalating (repeatable; default 1 each).
    #[arg(long = "attempts", value_name = "TIER=N")]
    pub(crate) attempts: Vec<String>,
    /// The static policy's start tier for a class (repeatable; default: a
    /// complexity name uses routing.start_tier, other classes the middle tier).
    #[arg(long = "class-tier", value_name = "CLASS=TIER")]
    pub(crate) class_tiers: Vec<String>,
    /// Chance the validator accepts a failed attempt.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) false_accept: f64,
    /// Chance the validator rejects a successful attempt.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) false_reject: f64,
    /// Cross-validation folds for `learned`.
    #[arg(long, default_value_t = 5)]
    pub(crate) folds: usize,
    /// Seed for folds and the bootstrap.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Bootstrap resamples for the 95% intervals (0 = none).
    #[arg(long, default_value_t = 1000)]
    pub(crate) bootstrap: usize,
    /// Use the task id's first word (up to `_`) as the class, for tables
    /// without a class column whose ids start with a category.
    #[arg(long, conflicts_with_all = ["class_column", "no_class"])]
    pub(crate) class_from_id: bool,
    /// The column holding each task's class (default: `class` when present).
    /// A label `a/b` borrows from `a` when thin.
    #[arg(long, value_name = "NAME", conflicts_with = "no_class")]
    pub(crate) class_column: Option<String>,
    /// Treat every task as one class, even when the file has a class column.
    #[arg(long)]
    pub(crate) no_class: bool,
    /// Solved cells at or above X count as solved, below as not; without it
    /// a fractional cell is the chance an attempt solves the task.
    #[arg(long, value_name = "X")]
    pub(crate) threshold: Option<f64>,
    /// Let model columns that are no configured tier be tiers of their own
    /// (priced from their `__cost_usd` / `__cost_usd_list` columns).
    #[arg(long)]
    pub(crate) ad_hoc_tiers: bool,
    /// The solved share the `path` policy must reach per class: `top` (what
    /// the top rung alone solves in training), a share or a percentage
    /// (default: routing.min_solved_share).
    #[arg(long, value_name = "SHARE")]
    pub(crate) min_solved: Option<String>,
    /// Also score `path` over a range of solved-share constraints.
    #[arg(long)]
    pub(crate) frontier: bool,
    /// The tier or column the "vs" cost column divides by (default: the top
    /// rung), so dropping a column never changes it.
    #[arg(long, value_name = "COL")]
    pub(crate) baseline: Option<String>,
    /// JSON output.
    #[arg(long)]
    pub(crate) json: bool,
}

/// `cadre routing explain`.
#[derive(Debug, Args)]
pub(crate) struct ExplainArgs {
    /// What to do, in one sentence.
    pub(crate) instruction: String,
    /// The workspace root.
    #[arg(long)]
    pub(crate) workspace: PathBuf,
    /// Only files matching these globs (repeatable).
    #[arg(long = "files", value_name = "GLOB")]
    pub(crate) files: Vec<String>,
    /// JSON output.
    #[arg(long)]
    pub(crate) json: bool,
}
