//! The resolved configuration: plain structs, no `Option`s where a default exists.
//!
//! Every struct denies unknown fields so a typo in a user file is an error, not
//! a silently ignored setting.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The whole resolved configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Tier order, cheapest first.
    pub tiers: TiersConfig,
    /// Tier name -> model.
    pub models: BTreeMap<String, ModelConfig>,
    /// Provider name -> connection settings.
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Planner, worker and reviewer settings.
    pub roles: RolesConfig,
    /// Start-tier policy.
    pub routing: RoutingConfig,
    /// Escalation policy.
    pub cascade: CascadeConfig,
    /// Concurrency and size limits.
    pub limits: LimitsConfig,
    /// Cost caps.
    pub budget: BudgetConfig,
    /// Where the SQLite store lives.
    pub store: StoreConfig,
    /// `cadre daemon` settings.
    pub daemon: DaemonConfig,
}

/// The ordered list of tiers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TiersConfig {
    /// Cheapest first; every name must have a `[models.NAME]` entry.
    pub order: Vec<String>,
}

/// How a model thinks, if at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThinkingMode {
    /// No extended thinking; never send a `thinking` field.
    None,
    /// `{"type":"enabled","budget_tokens":N}`.
    Budget,
    /// `{"type":"adaptive"}`.
    Adaptive,
}

/// One tier's model: identity, prices and capabilities.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Key into `providers`.
    pub provider: String,
    /// The provider's model id.
    pub model: String,
    /// USD per million uncached input tokens.
    pub input_usd_per_mtok: f64,
    /// USD per million output tokens (thinking included).
    pub output_usd_per_mtok: f64,
    /// USD per million tokens written to the 5-minute cache.
    pub cache_write_5m_usd_per_mtok: f64,
    /// USD per million tokens written to the 1-hour cache.
    pub cache_write_1h_usd_per_mtok: f64,
    /// USD per million tokens read from cache.
    pub cache_read_usd_per_mtok: f64,
    /// Multiplier applied to batch requests (0.5 = half price).
    pub batch_discount: f64,
    /// Context window in tokens.
    pub context_window: u64,
    /// Maximum output tokens per call.
    pub max_output_tokens: u64,
    /// Thinking mode the model accepts.
    pub thinking: ThinkingMode,
    /// Whether `output_config.effort` may be sent.
    pub supports_effort: bool,
    /// Prefixes shorter than this are not cached by the provider.
    pub min_cacheable_tokens: u64,
    /// Prompts above this many tokens pay the long-context premium (0 = never).
    pub long_context_threshold_tokens: u64,
    /// Input price multiplier above the threshold.
    pub long_context_input_multiplier: f64,
    /// Output price multiplier above the threshold.
    pub long_context_output_multiplier: f64,
}

/// Wire protocol of a provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// Anthropic Messages API (and `cadre sim serve`).
    Anthropic,
    /// OpenAI-compatible Chat Completions (llama.cpp, vLLM, Ollama, gateways).
    Openai,
}

/// Connection settings for one provider. The API key is never here: only the
/// name of the environment variable that holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Wire protocol.
    pub kind: ProviderKind,
    /// Base URL, unless `base_url_env` is set in the environment. The Anthropic
    /// client adds `/v1/messages`, the OpenAI-compatible one `/chat/completions`.
    pub base_url: String,
    /// Environment variable holding the API key.
    pub api_key_env: String,
    /// Environment variable that overrides `base_url` when set.
    pub base_url_env: String,
    /// Whole-request timeout.
    pub timeout_secs: u64,
    /// TCP connect timeout.
    pub connect_timeout_secs: u64,
    /// Retries for 408/409/5xx/connection errors.
    pub max_retries: u32,
    /// Separate, longer retry budget for 429 and 529.
    pub overload_max_retries: u32,
    /// Cap on one backoff sleep for 429/529, seconds.
    pub overload_max_backoff_secs: f64,
    /// Whether a timed-out request is sent again; unset = yes for
    /// `anthropic`, no for `openai` (a local server keeps generating).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_timeouts: Option<bool>,
    /// `openai` only: how the server can be forced to call a tool.
    #[serde(default)]
    pub tool_choice: ToolChoiceMode,
    /// `openai` only: stream the answer (SSE). A streamed call has no
    /// whole-request timeout, only `idle_timeout_secs` between chunks, and
    /// dropping it closes the connection, which stops generation on servers
    /// that watch for that (llama.cpp, vLLM).
    #[serde(default)]
    pub stream: bool,
    /// `openai` only, with `stream`: the longest wait for the next chunk.
    #[serde(default = "default_idle_timeout_secs")]
    pub idle_timeout_secs: u64,
    /// `openai` only: extra body fields on every request (`repeat_penalty`,
    /// `top_k`, ...).
    #[serde(default)]
    pub extra_body: BTreeMap<String, toml::Value>,
    /// `openai` only: extra body fields per role (`planner`, `worker`,
    /// `reviewer`), e.g. `temperature`; planner and reviewer default to
    /// `temperature = 0`.
    #[serde(default)]
    pub sampling: BTreeMap<String, BTreeMap<String, toml::Value>>,
}

fn default_idle_timeout_secs() -> u64 {
    120
}

/// How an OpenAI-compatible server accepts a forced tool choice.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoiceMode {
    /// `"required"` (OpenAI, llama.cpp `llama-server`, vLLM >= 0.8.3).
    Required,
    /// Only a named function (llama-cpp-python; `llama-server` reads it as
    /// `auto`); a turn that may call several tools is sent as `auto`.
    #[default]
    Named,
    /// Never forced (Ollama, vLLM without a tool parser).
    Auto,
}

/// The three roles.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolesConfig {
    /// Splits the instruction.
    pub planner: RoleConfig,
    /// Edits files; its tier comes from routing, so `tier` is ignored.
    pub worker: RoleConfig,
    /// Reviews the combined change.
    pub reviewer: RoleConfig,
}

/// How one role calls its model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleConfig {
    /// Tier that plays the role (empty for the worker: routing decides).
    pub tier: String,
    /// `max_tokens` per call.
    pub max_tokens: u32,
    /// `output_config.effort` (low, medium, high, xhigh, max; empty = omit).
    pub effort: String,
    /// Whether to enable thinking (on models that support it).
    pub thinking: bool,
    /// Budget for models with `thinking = "budget"` (>= 1024 when used).
    pub thinking_budget_tokens: u32,
    /// Workers only: also think on mechanical subtasks.
    #[serde(default)]
    pub thinking_for_mechanical: bool,
}

/// Start-tier policy (docs/architecture.md section 5).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    /// Complexity -> start tier.
    pub start_tier: StartTiers,
    /// Tiers a high error cost raises the start.
    pub high_error_cost_raise: u32,
    /// Globs forcing error_cost = high.
    pub high_error_cost_paths: Vec<String>,
    /// Prompts above this skip tiers whose context cannot hold them.
    pub usable_context_tokens: u64,
    /// Learn start tiers from history.
    pub adaptive: bool,
    /// Samples needed before history overrides the static rule.
    pub adaptive_min_samples: u32,
    /// Mean of the Beta prior on a tier's per-attempt success chance, in [0, 1].
    pub adaptive_prior_success: f64,
    /// Weight of that prior in pseudo-attempts (>= 0; 0 = history alone).
    pub adaptive_prior_strength: f64,
    /// The solved share a learned path must reach per class: `top` (at
    /// least what the top tier alone solves in the history), a share in
    /// [0, 1] or a percentage (`95%`).
    #[serde(default = "default_min_solved_share")]
    pub min_solved_share: String,
    /// Effort of the start rung per class: `"<complexity>"` or
    /// `"<complexity>/<error_cost>"` -> effort; applied when the ladder has
    /// a rung of the start rung's tier with that effort.
    #[serde(default)]
    pub start_effort: BTreeMap<String, String>,
    /// Share of adaptively routed subtasks, in [0, 1], that explore: their
    /// path is chosen from estimates sampled from the posterior (Thompson
    /// sampling), so a rung that stopped getting traffic is tried again.
    #[serde(default = "default_explore_share")]
    pub explore_share: f64,
}

fn default_explore_share() -> f64 {
    0.05
}

fn default_min_solved_share() -> String {
    "top".to_owned()
}

/// Start tier per complexity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartTiers {
    /// For mechanical subtasks.
    pub mechanical: String,
    /// For generative subtasks.
    pub generative: String,
    /// For reasoning subtasks.
    pub reasoning: String,
}

/// Escalation policy (docs/architecture.md section 5).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CascadeConfig {
    /// Tier or rung -> attempts before escalating.
    pub attempts: BTreeMap<String, u32>,
    /// The rungs, cheapest first (`opus@medium`, `haiku+thinking`; see
    /// [`crate::Rung`]); empty = `tiers.order`.
    #[serde(default)]
    pub ladder: Vec<String>,
}

/// Concurrency and size limits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Model calls in flight across all tiers, shared by every job the
    /// process runs (each running job gets a fair share).
    pub max_concurrency: u32,
    /// Model calls in flight per tier, per job.
    pub per_tier_concurrency: BTreeMap<String, u32>,
    /// Files above this size are skipped.
    pub max_file_bytes: u64,
    /// Read-only tool turns a worker may take before it must edit.
    pub worker_tool_turns: u32,
    /// Review rounds before the job stops asking.
    pub review_rounds: u32,
    /// Integration-check rounds before the job stops re-running.
    pub integration_rounds: u32,
    /// Timeout for check commands.
    pub check_timeout_secs: u64,
    /// Workspace paths (globs) workers never edit, besides the files the
    /// check commands name (which are always protected).
    pub protected_paths: Vec<String>,
    /// Batch mode: a round is sent once no new request arrived for this long.
    pub batch_window_ms: u64,
    /// Batch mode: the longest pause between two polls of a batch.
    pub batch_poll_max_secs: u64,
    /// Answers (pages) a planner may take for one plan before the job ends.
    pub planner_pages: u32,
    /// Read-only searches of the index a planner may run for one plan
    /// (its `search` tool); 0 offers no search tool.
    pub planner_searches: u32,
}

impl LimitsConfig {
    /// Model calls a job may have in flight on `tier`: its
    /// `per_tier_concurrency` entry, else `max_concurrency`.
    pub fn tier_concurrency(&self, tier: &str) -> u32 {
        self.per_tier_concurrency
            .get(tier)
            .copied()
            .unwrap_or(self.max_concurrency)
    }
}

/// Cost caps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    /// Default per-job cap in USD; 0 = none.
    pub default_usd: f64,
}

/// Store location.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// SQLite file; empty = the user data dir.
    pub path: String,
    /// A PostgreSQL URL (`postgres://...`) shared by several daemons, or a
    /// `sqlite://` URL; when set it wins over `path`. Empty = use `path`.
    #[serde(default)]
    pub url: String,
}

/// Daemon settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// Listen address; non-loopback requires `CADRE_TOKEN`.
    pub listen: String,
    /// Workspaces must be under one of these.
    pub allowed_roots: Vec<String>,
    /// Jobs run concurrently.
    pub max_jobs: u32,
    /// Lease length for claimed jobs.
    pub lease_secs: u64,
    /// How long SIGTERM waits for in-flight calls.
    pub shutdown_grace_secs: u64,
    /// Request bodies above this are refused.
    pub max_body_bytes: u64,
    /// Clone cache and per-job worktrees of jobs on git repositories;
    /// empty = `checkouts/` beside the store file.
    #[serde(default)]
    pub checkouts_dir: String,
}
